"""The HOG pipeline: HOG descriptors of every image, then a kernel SVM with C chosen on validation.

Dalal and Triggs (CVPR 2005) with the settings of
:class:`~bovw_vs_convnet.hog.config.HogConfig`: scikit-image's ``hog`` on each
image (:mod:`bovw_vs_convnet.hog.features`), the vectors of the training images
into :class:`~bovw_vs_convnet.estimators.kernel_svm.KernelSvm`, as BoVW's (an explicit
kernel map, then one-vs-rest linear SVMs solved together by L-BFGS), the cost
chosen on the validation images. Stages are timed like BoVW's
(``stage_seconds``: descriptors, classifier, scoring).

Expected error (``benchmarks/RESULTS-baselines.md`` has the runs and their time):
``bvc run hog --dataset fashion-mnist`` about 9.1 % top-1 (the published HOG + SVM
figure, 7.4 %, is not reached); scikit-learn's digits about 3.1 %.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.hog.config import HogConfig, make_classifier
from bovw_vs_convnet.hog.features import hog_features
from bovw_vs_convnet.progress import ProgressMode, track
from bovw_vs_convnet.protocol import CpuPipeline, RunContext
from bovw_vs_convnet.threads import auto_blas_threads

log = logging.getLogger(__name__)


def scale_gamma(x: np.ndarray) -> float:
    """SVC's ``gamma="scale"``: 1 / (number of features × variance of all entries)."""
    var = float(x.var())
    return 1.0 / (x.shape[1] * var) if var > 0 else 1.0


class HogPipeline(CpuPipeline):
    """The ``hog`` pipeline of the harness: ``fit(train, val)`` and ``decision_scores(images)``.

    Attributes set while running (copied into the run record by the harness):
    ``stage_seconds``, ``n_params``, ``model_name``, ``device``, ``record_extra``.
    """

    def __init__(self, config: HogConfig, context: RunContext) -> None:
        super().__init__(f"hog-{config.preset}", context)
        self.config = config

    def _describe(self, images: ImageSet, part: str) -> np.ndarray:
        """HOG vectors of ``images``, chunk by chunk (timed as ``descriptors``)."""
        if len(images) == 0:
            raise DataError("the HOG pipeline got an empty image set")
        cfg = self.config
        t0 = time.perf_counter()
        size = cfg.chunk_images
        # chunks of n_jobs × chunk_images: each described by n_jobs processes
        step = size * self.n_jobs
        starts = range(0, len(images), step)
        mode: ProgressMode | bool = self.context.progress
        parts = [
            hog_features(
                images.subset(np.arange(s, min(s + step, len(images)))).array(),
                **cfg.descriptor_params(self.cell_),
                n_jobs=self.n_jobs,
                chunk=size,
            )
            for s in track(starts, total=len(starts), desc=f"hog: {part}", mode=mode, unit="chunk")
        ]
        self.add_seconds({"descriptors": time.perf_counter() - t0})
        return np.concatenate(parts)

    @auto_blas_threads
    def fit(self, train: ImageSet, val: ImageSet | None) -> HogPipeline:
        """Describe ``train`` (and ``val``), train the SVMs (C chosen on ``val``)."""
        cfg = self.config
        self.cell_ = cfg.cell_for(train.image_shape[:2])
        x_train = self._describe(train, "train")
        x_val = self._describe(val, "val") if val is not None and len(val) else None
        t0 = time.perf_counter()
        gamma = cfg.gamma
        if cfg.kernel == "rbf" and gamma is None:
            gamma = scale_gamma(x_train)
        self.classifier_ = make_classifier(cfg, train.n_classes, gamma, self.n_jobs).fit(
            x_train, train.labels, x_val, None if val is None else val.labels
        )
        self.add_seconds({"classifier": time.perf_counter() - t0})
        clf = self.classifier_
        self.record_extra.update(
            {
                "classifier": f"{clf.solver_}-{cfg.kernel}-{cfg.linear_solver}",
                "cell": self.cell_,
                "feature_dim": int(x_train.shape[1]),
                "gamma": gamma,
                "C": clf.C_,
                "C_selected_on": clf.selected_on_,
                "val_errors_by_C": {str(c): e for c, e in clf.val_errors_.items()},
                "svm_iterations": clf.n_iter_,
            }
        )
        self.n_params = self._count_params()
        return self

    def _count_params(self) -> int:
        """Learned numbers: the SVM weights and intercepts, and the Nystroem landmarks."""
        n = 0
        for m in self.classifier_.models_:
            if m is not None:
                n += int(m.coef_.size + np.size(m.intercept_))
        feature_map = getattr(self.classifier_.map_, "map_", None)
        landmarks = getattr(feature_map, "components_", None)
        return n + (int(landmarks.size) if landmarks is not None else 0)

    @auto_blas_threads
    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """(len(images), n_classes) one-vs-rest SVM decision values."""
        if not hasattr(self, "classifier_"):
            raise DataError("the HOG pipeline must be fitted before scoring")
        x = self._describe(images, "test")
        t0 = time.perf_counter()
        scores = self.classifier_.decision_function(x)
        self.add_seconds({"scoring": time.perf_counter() - t0})
        return np.asarray(scores, dtype=np.float64)


def build_pipeline(config: HogConfig, context: RunContext) -> HogPipeline:
    """The registry's factory: a fresh, unfitted HOG pipeline."""
    if not isinstance(config, HogConfig):
        raise ConfigError(f"expected a HogConfig, got {type(config).__name__}")
    return HogPipeline(dataclasses.replace(config), context)
