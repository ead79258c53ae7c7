"""The BoVW model bundle: the vocabulary, PCA, encoder and SVMs as arrays and JSON.

``model.npz`` + ``model.json`` (:mod:`bovw_vs_convnet.estimators.estimator_state`, no
pickle) hold what :meth:`BovwPipeline.decision_scores` reads: the fitted
:class:`~.encoding.SpatialPyramidEncoder` (its settings, the visual words, the PCA and the
Fisher GMM when used) and the fitted
:class:`~bovw_vs_convnet.estimators.kernel_svm.KernelSvm` (its settings and, for the exact
solver, the training codes with each class's support vector duals and intercept; for a
feature map, the map's parameters, Nystroem landmarks included, and the linear SVMs'
weights). The descriptors are rebuilt from the run's settings, which hold every parameter of
the extractor and the pyramid. Loading rebuilds the pipeline from those settings and gives
it these fitted parts, so an image is described, encoded and scored as the run's test images
were. Before that, the parts are checked against the settings and the class names
(:func:`check_fitted`): the encoder's method, words, pyramid and PCA are the settings',
its arrays have their shapes (the descriptor's length is 128 values per channel of the
settings' colour space), and the SVMs take its code length and give one score per class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from bovw_vs_convnet.bovw.config import BovwConfig, make_encoder
from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder, n_cells
from bovw_vs_convnet.bovw.memory import descriptor_dim
from bovw_vs_convnet.bovw.pipeline import BovwPipeline
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.estimators import state_checks as check
from bovw_vs_convnet.estimators.estimator_state import FittedState, StateError
from bovw_vs_convnet.estimators.kernel_svm import fitted_classes
from bovw_vs_convnet.protocol import RunContext

CLASSES = (SpatialPyramidEncoder, PCA, GaussianMixture, *fitted_classes())
FITTED = ("n_classes_", "encoder_", "classifier_")
# the sides (px) of the blank image a loaded bundle is tried on (harness/bundle.py: probe):
# describing it costs what the image's size does, whatever the bundle holds
PROBE_SIDE = 64
# the encoder's parameters that set its arrays' shapes: a bundle's must be its settings'
SHAPING = ("method", "k", "levels", "pca_dim")
STATE = FittedState(FITTED, CLASSES)


def save_bundle(pipeline: BovwPipeline) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of the fitted ``pipeline``'s bundle and what its manifest says of it."""
    cfg, encoder, clf = pipeline.config, pipeline.encoder_, pipeline.classifier_
    described = {
        "preprocessing": {
            "descriptor": cfg.descriptor,
            "max_side": cfg.max_side,
            "upscale": cfg.upscale,
            "encoding": encoder.method,
            "pyramid_levels": [int(v) for v in encoder.levels],
            "vocabulary_size": int(encoder.vocabulary_.shape[0]),
            "pca_dim": None if encoder.pca_ is None else int(encoder.pca_.n_components_),
        },
        "classifier": clf.description(),
    }
    return STATE.files(pipeline), described


def load_bundle(
    files: Mapping[str, bytes], manifest: Mapping[str, Any], context: RunContext
) -> BovwPipeline:
    """The fitted BoVW pipeline the bundle's ``files`` hold (StateError when they are not that)."""
    pipeline = BovwPipeline(build_config(BovwConfig, manifest["config"]), context)
    pipeline = STATE.restore(pipeline, files)
    check_fitted(pipeline, manifest)
    return pipeline


def _check_encoder(enc: Any, cfg: BovwConfig) -> int:
    """StateError unless ``enc`` is the settings' encoder with arrays of its shapes; its
    code length.
    """
    if not isinstance(enc, SpatialPyramidEncoder):
        raise StateError("encoder_ is not a SpatialPyramidEncoder")
    state, want = vars(enc), make_encoder(cfg, seed=0).get_params()
    for name in SHAPING:
        if state.get(name) != want[name]:
            raise StateError(
                f"encoder_.{name} is {state.get(name)!r}, the settings give {want[name]!r}"
            )
    # the described descriptor's length follows the settings' colour space (128 per
    # channel: gray SIFT 128, opponent / rgb / rg / c 384); PCA maps it to pca_dim
    k, sift_dim = int(want["k"]), descriptor_dim(cfg)
    dim = want["pca_dim"] or sift_dim
    # the settings' knn, which may exceed k: the soft assignment then shares among all k words
    knn = check.integer(state.get("knn"), "encoder_.knn", 1)
    if knn != want["knn"]:
        raise StateError(f"encoder_.knn is {knn}, the settings give {want['knn']!r}")
    pca = state.get("pca_")
    if (pca is None) != (want["pca_dim"] is None) or (pca is not None and not isinstance(pca, PCA)):
        raise StateError("encoder_.pca_ is not the settings' PCA")
    if pca is not None:
        if getattr(pca, "whiten", True):
            raise StateError("encoder_.pca_ whitens")
        check.array(vars(pca).get("components_"), "encoder_.pca_.components_", (dim, sift_dim))
        check.array(vars(pca).get("mean_"), "encoder_.pca_.mean_", (sift_dim,))
    check.array(state.get("vocabulary_"), "encoder_.vocabulary_", (k, dim))
    check.array(state.get("word_sq_"), "encoder_.word_sq_", (k,))
    if want["method"] == "soft":
        sigma = state.get("sigma_")
        if not isinstance(sigma, float) or not 0 < sigma < float("inf"):
            raise StateError("encoder_.sigma_ is not a positive number")
    if want["method"] == "fisher":
        gmm = state.get("gmm_")
        if not isinstance(gmm, GaussianMixture) or gmm.covariance_type != "diag":
            raise StateError("encoder_.gmm_ is not a diagonal GaussianMixture")
        check.array(vars(gmm).get("weights_"), "encoder_.gmm_.weights_", (k,))
        check.array(vars(gmm).get("means_"), "encoder_.gmm_.means_", (k, dim))
        var = check.array(vars(gmm).get("covariances_"), "encoder_.gmm_.covariances_", (k, dim))
        if not (var > 0).all():
            raise StateError("encoder_.gmm_.covariances_ holds values that are not positive")
    per_cell = enc._dim_per_cell(dim)
    check.integer(state.get("dim_per_cell_"), "encoder_.dim_per_cell_", per_cell, per_cell)
    width = per_cell * n_cells(want["levels"])
    return check.integer(state.get("n_features_out_"), "encoder_.n_features_out_", width, width)


def check_fitted(pipeline: BovwPipeline, manifest: Mapping[str, Any]) -> None:
    """StateError unless the encoder is the settings' and the SVMs take its codes into one
    score per class name.
    """
    n = len(manifest["class_names"])
    state = vars(pipeline)
    check.integer(state["n_classes_"], "n_classes_", n, n)
    width = _check_encoder(state["encoder_"], pipeline.config)
    check.kernel_svm(state["classifier_"], "classifier_", width, n)
