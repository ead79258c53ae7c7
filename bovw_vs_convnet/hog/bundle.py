"""The HOG model bundle: the cell size and the kernel-mapped linear SVMs as arrays and JSON.

``model.npz`` + ``model.json`` (:mod:`bovw_vs_convnet.estimators.estimator_state`, no pickle)
hold what :meth:`HogPipeline.decision_scores` reads: the HOG cell chosen for the
run's image size (``cell_``; block, orientations and normalisation are settings)
and the fitted :class:`~bovw_vs_convnet.estimators.kernel_svm.KernelSvm` (its feature map,
the Nystroem landmarks and normalisation of the RBF map included, and the linear
SVMs' weights). Loading rebuilds the pipeline from the run's settings and gives it
those, so an image is described and scored as the run's test images were; first the
cell must be the run's for its image size and the SVMs must take that size's HOG
vector and give one score per class (:func:`check_fitted`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.estimators import state_checks as check
from bovw_vs_convnet.estimators.estimator_state import FittedState, StateError
from bovw_vs_convnet.estimators.kernel_svm import fitted_classes
from bovw_vs_convnet.hog.config import HogConfig
from bovw_vs_convnet.hog.features import hog_length
from bovw_vs_convnet.hog.pipeline import HogPipeline
from bovw_vs_convnet.protocol import RunContext

CLASSES = fitted_classes()
FITTED = ("cell_", "classifier_")
STATE = FittedState(FITTED, CLASSES)


def save_bundle(pipeline: HogPipeline) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of the fitted ``pipeline``'s bundle and what its manifest says of it."""
    described = {
        "preprocessing": pipeline.config.descriptor_params(pipeline.cell_),
        "classifier": pipeline.classifier_.description(),
    }
    return STATE.files(pipeline), described


def load_bundle(
    files: Mapping[str, bytes], manifest: Mapping[str, Any], context: RunContext
) -> HogPipeline:
    """The fitted HOG pipeline the bundle's ``files`` hold (StateError when they are not that)."""
    pipeline = HogPipeline(build_config(HogConfig, manifest["config"]), context)
    pipeline = STATE.restore(pipeline, files)
    check_fitted(pipeline, manifest)
    return pipeline


def check_fitted(pipeline: HogPipeline, manifest: Mapping[str, Any]) -> None:
    """StateError unless the cell is the run's and the SVMs take its HOG vectors."""
    h, w = (int(v) for v in manifest["input"]["size"])
    cfg = pipeline.config
    cell = check.integer(vars(pipeline)["cell_"], "cell_", 1, min(h, w))
    if cell != cfg.cell_for((h, w)):
        raise StateError(f"cell_ is {cell}, the settings give {cfg.cell_for((h, w))}")
    try:
        length = hog_length((h, w), cell, cfg.block, cfg.orientations)
    except DataError as exc:
        raise StateError(str(exc)) from None
    n = len(manifest["class_names"])
    check.kernel_svm(vars(pipeline)["classifier_"], "classifier_", length, n)
