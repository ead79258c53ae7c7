"""The baseline's model bundle: its standardisation and linear weights (or class means) as arrays.

``model.npz`` + ``model.json`` (:mod:`bovw_vs_convnet.estimators.estimator_state`, no pickle) hold
what :meth:`BaselinePipeline.decision_scores` reads: the classes seen, the training
pixels' mean image and spread (``scaler_``), and the SVM's ``coef_`` and
``intercept_`` (a :class:`~bovw_vs_convnet.estimators.linear_svm.PrimalLinearSvm` or liblinear's
``LinearSVC``) or the class means. Loading rebuilds the pipeline from the run's
settings and gives it those attributes, so it scores images exactly as the run did.
Before that, every attribute is checked against the bundle's input and classes
(:func:`check_fitted`): the mean image and spread have one entry per pixel of the
run's image size, the weights or means one row per class seen and one column per pixel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.svm import LinearSVC

from bovw_vs_convnet.baseline.pipeline import BaselineConfig, BaselinePipeline, PixelStandardizer
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.estimators import state_checks as check
from bovw_vs_convnet.estimators.estimator_state import FittedState, StateError
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
    pipeline = STATE.restore(pipeline, files, need)
    check_fitted(pipeline, manifest)
    return pipeline


def check_fitted(pipeline: BaselinePipeline, manifest: Mapping[str, Any]) -> None:
    """StateError unless the restored attributes fit the bundle's input and class names."""
    n = len(manifest["class_names"])
    h, w = manifest["input"]["size"]
    d = int(h) * int(w) * int(manifest["input"]["channels"])  # pixels of one image
    state = vars(pipeline)
    check.integer(state["n_classes_"], "n_classes_", n, n)
    known = check.labels(state["classes_"], "classes_", n)
    scaler = state["scaler_"]
    if scaler is not None:
        if not isinstance(scaler, PixelStandardizer):
            raise StateError("scaler_ is not a PixelStandardizer")
        check.array(vars(scaler).get("mean_"), "scaler_.mean_", (d,))
        scale = check.array(vars(scaler).get("scale_"), "scaler_.scale_", (d,))
        if not (scale > 0).all():
            raise StateError("scaler_.scale_ holds values that are not positive")
    if pipeline.config.method == "nearest-mean":
        check.array(state["means_"], "means_", (len(known), d))
        return
    svm = state["svm_"]
    if isinstance(svm, PrimalLinearSvm):
        check.primal_svm(svm, "svm_", d, n)
    elif isinstance(svm, LinearSVC):
        check.array(vars(svm).get("classes_"), "svm_.classes_", (len(known),), "iu")
        check.linear(svm, "svm_", d, 1 if len(known) == 2 else len(known))
    else:
        raise StateError("svm_ is not a linear SVM")
