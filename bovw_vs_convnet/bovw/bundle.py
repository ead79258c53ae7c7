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
were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from bovw_vs_convnet.bovw.config import BovwConfig
from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder
from bovw_vs_convnet.bovw.pipeline import BovwPipeline
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.estimators.estimator_state import FittedState
from bovw_vs_convnet.estimators.kernel_svm import fitted_classes
from bovw_vs_convnet.protocol import RunContext

CLASSES = (SpatialPyramidEncoder, PCA, GaussianMixture, *fitted_classes())
FITTED = ("n_classes_", "encoder_", "classifier_")
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
    return STATE.restore(BovwPipeline(build_config(BovwConfig, manifest["config"]), context), files)
