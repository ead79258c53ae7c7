"""The baseline's model bundle: its standardisation and linear weights (or class means) as arrays.

``model.npz`` + ``model.json`` (:mod:`bovw_vs_convnet.estimators.estimator_state`, no pickle) hold
what :meth:`BaselinePipeline.decision_scores` reads: the classes seen, the training
pixels' mean image and spread (``scaler_``), and the SVM's ``coef_`` and
``intercept_`` (a :class:`~bovw_vs_convnet.estimators.linear_svm.PrimalLinearSvm` or liblinear's
``LinearSVC``) or the class means. Loading rebuilds the pipeline from the run's
settings and gives it those attributes, so it scores images exactly as the run did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.svm import LinearSVC

from bovw_vs_convnet.baseline.pipeline import BaselineConfig, BaselinePipeline, PixelStandardizer
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.estimators.estimator_state import FittedState
from bovw_vs_convnet.estimators.linear_svm import PrimalLinearSvm
from bovw_vs_convnet.protocol import RunContext

CLASSES = (PixelStandardizer, PrimalLinearSvm, LinearSVC)
FITTED = ("n_classes_", "classes_", "scaler_", "means_", "svm_", "C_")
REQUIRED = ("n_classes_", "classes_", "scaler_")
STATE = FittedState(FITTED, CLASSES)


def save_bundle(pipeline: BaselinePipeline) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of the fitted ``pipeline``'s bundle and what its manifest says of it."""
    cfg = pipeline.config
    described = {
        "method": cfg.method,
        "preprocessing": {
            "pixels": "flattened, divided by 255",
            "standardize": cfg.standardize if cfg.method == "linear-svm" else "none",
        },
        "C": getattr(pipeline, "C_", None),
    }
    return STATE.files(pipeline), described


def load_bundle(
    files: Mapping[str, bytes], manifest: Mapping[str, Any], context: RunContext
) -> BaselinePipeline:
    """The fitted baseline the bundle's ``files`` hold (StateError when they are not that)."""
    config = build_config(BaselineConfig, manifest["config"])
    pipeline = BaselinePipeline(config, seed=context.seed)
    need = (*REQUIRED, "means_" if config.method == "nearest-mean" else "svm_")
    return STATE.restore(pipeline, files, need)
