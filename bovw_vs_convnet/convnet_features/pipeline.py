"""The ``convnet-features`` pipeline: a stored ConvNet read at one layer, a linear SVM on top.

DeCAF's experiment (Donahue et al. 2014) in the harness: a network trained on one
dataset (a stored ``convnet`` run, or a state-dict file) is frozen; every image of
this run's dataset goes through the source run's own input adaptation and the
network up to ``layer`` (:mod:`.extractor`; the penultimate layer by default, as
DeCAF's fc7 and Razavian et al.'s); the activations, each scaled to unit length
(``normalize``), train one-vs-rest linear SVMs
(:class:`~bovw_vs_convnet.estimators.kernel_svm.KernelSvm` with the linear kernel, the
classes solved together by L-BFGS) whose cost is chosen on the validation images, as
for every other SVM in the harness. ``threads=auto`` (the default, as in every
pipeline) chooses the CPU threads from the usable CPUs and the network's
multiply-adds per image, for the forward pass and the SVMs' BLAS alike, and records
the choice in ``extra.threads``. Stages are timed (``stage_seconds``: network,
features, classifier, scoring); the record's ``extra.source`` names the run (or
file, with its sha256) the network came from, and ``extra.layer`` what was read.

Example::

    bvc run convnet --dataset glyphs-wild --model alexnet-small        # run A
    bvc run convnet-features --from A_RUN_ID --dataset glyphs --train-per-class 30
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any

import numpy as np
import torch

from bovw_vs_convnet.convnet.device import choose_run_threads
from bovw_vs_convnet.convnet.models import get_model_spec
from bovw_vs_convnet.convnet_features.config import ConvNetFeaturesConfig
from bovw_vs_convnet.convnet_features.extractor import LayerReader
from bovw_vs_convnet.convnet_features.source import Network, load_network
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.estimators.kernel_svm import KernelSvm
from bovw_vs_convnet.protocol import CpuPipeline, RunContext
from bovw_vs_convnet.threads import ThreadChoice, blas_threads

log = logging.getLogger(__name__)


def make_classifier(cfg: ConvNetFeaturesConfig, n_classes: int, n_jobs: int = 1) -> KernelSvm:
    """The linear SVMs of ``cfg``: every class at once in the primal, C along ``C_grid``."""
    return KernelSvm(
        kernel="linear",
        solver="map",
        C=cfg.C,
        C_grid=cfg.C_grid,
        n_classes=n_classes,
        select_max_train=None,
        max_iter=cfg.svm_max_iter,
        linear_solver="lbfgs",
        n_jobs=n_jobs,
    )


class ConvNetFeaturesPipeline(CpuPipeline):
    """``fit(train, val)`` reads the network's features and trains the SVMs; ``decision_scores``.

    Fitted attributes: ``reader_`` (the network at its layer), ``feature_mean_`` and
    ``feature_scale_`` (``normalize=standardize``; else None), ``classifier_``.
    """

    def __init__(self, config: ConvNetFeaturesConfig, context: RunContext) -> None:
        super().__init__("convnet-features", context)
        self.config = config
        self.feature_mean_: np.ndarray | None = None
        self.feature_scale_: np.ndarray | None = None

    def use_network(self, network: Network, image_shape: tuple[int, ...]) -> None:
        """Read ``network`` at the configured layer, for images of ``image_shape`` (H, W, C)."""
        h, w, c = image_shape
        self.network_ = network
        self.reader_ = LayerReader(network.model, network.spec, self.config.layer, (h, w), c)
        self.n_params = 0
        prov = network.provenance
        origin = prov.get("dataset") or str(prov.get("sha256", ""))[:12]
        layer = "" if self.config.layer == "penultimate" else f":{self.config.layer}"
        self.model_name = f"{network.name}@{origin}{layer}"

    def _normalised(self, x: np.ndarray) -> np.ndarray:
        """``x`` (N, D) as ``normalize`` says: unit rows, or standardised as the training rows."""
        if self.config.normalize == "l2":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        elif self.config.normalize == "standardize":
            assert self.feature_mean_ is not None and self.feature_scale_ is not None
            x = (x - self.feature_mean_) / self.feature_scale_
        return x.astype(np.float32, copy=False)

    def _features(self, images: ImageSet) -> np.ndarray:
        """The normalised features of ``images`` (timed as ``features``)."""
        t0 = time.perf_counter()
        x = self._normalised(self.reader_.features(images, self.config.batch_size))
        self.add_seconds({"features": time.perf_counter() - t0})
        return x

    def choose_threads(self) -> ThreadChoice | None:
        """Set torch's threads as ``threads`` says, from the loaded network's work per image.

        ``auto``: one thread per 50 000 multiply-adds of one image through the whole
        network at the input size it is fed, the source run's, which may differ from the
        model's design size (:func:`~bovw_vs_convnet.convnet.device.forward_macs`),
        at most the usable CPUs; the choice goes to ``extra.threads``. ``0``: torch's
        default, nothing recorded (None).
        """
        if self.config.threads == 0:
            return None
        spec = get_model_spec(self.network_.name)
        feed = self.network_.spec
        choice = choose_run_threads(self.config.threads, spec, feed.out_channels, feed.input_size)
        torch.set_num_threads(choice.n)
        self.record_extra["threads"] = choice.describe()
        return choice

    def fit(self, train: ImageSet, val: ImageSet | None) -> ConvNetFeaturesPipeline:
        """Load the network, read ``train`` (and ``val``) at the layer, train the SVMs."""
        t0 = time.perf_counter()
        self.use_network(load_network(self.config, self.context), train.image_shape)
        self.add_seconds({"network": time.perf_counter() - t0})
        choice = self.choose_threads()
        with blas_threads(choice) if choice is not None else contextlib.nullcontext():
            return self._fit(train, val)

    def _fit(self, train: ImageSet, val: ImageSet | None) -> ConvNetFeaturesPipeline:
        """Read ``train`` (and ``val``) at the layer and train the SVMs on the features."""
        cfg = self.config
        t0 = time.perf_counter()
        raw = self.reader_.features(train, cfg.batch_size)
        if cfg.normalize == "standardize":  # the training rows' mean and one spread
            self.feature_mean_ = raw.mean(axis=0)
            spread = float(np.sqrt(raw.var(axis=0).mean()))
            self.feature_scale_ = np.full(1, spread if spread > 0 else 1.0, dtype=np.float32)
        x_train = self._normalised(raw)
        self.add_seconds({"features": time.perf_counter() - t0})
        x_val = self._features(val) if val is not None and len(val) else None
        t0 = time.perf_counter()
        self.classifier_ = make_classifier(cfg, train.n_classes, self.n_jobs).fit(
            x_train, train.labels, x_val, None if val is None else val.labels
        )
        self.add_seconds({"classifier": time.perf_counter() - t0})
        self.n_params = self._count_params()
        self.record_extra.update(self._extra(x_train.shape[1]))
        return self

    def _count_params(self) -> int:
        """Learned numbers of this run: the SVMs' weights and intercepts (the network is frozen)."""
        models = [m for m in self.classifier_.models_ if m is not None]
        return sum(int(m.coef_.size + np.size(m.intercept_)) for m in models)

    def _extra(self, dim: int) -> dict[str, Any]:
        clf = self.classifier_
        return {
            "source": dict(self.network_.provenance),
            "layer": self.config.layer,
            "feature_dim": int(dim),
            "input": self.reader_.describe(),
            "normalize": self.config.normalize,
            "C": clf.C_,
            "val_errors_by_C": {str(c): e for c, e in clf.val_errors_.items()},
            "svm_iterations": clf.n_iter_,
        }

    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """(len(images), n_classes) one-vs-rest SVM decision values."""
        if not hasattr(self, "classifier_"):
            raise DataError("the convnet-features pipeline must be fitted before scoring")
        x = self._features(images)
        t0 = time.perf_counter()
        scores = self.classifier_.decision_function(x)
        self.add_seconds({"scoring": time.perf_counter() - t0})
        return np.asarray(scores, dtype=np.float64)


def build_pipeline(config: ConvNetFeaturesConfig, context: RunContext) -> ConvNetFeaturesPipeline:
    """The registry's factory: a fresh, unfitted convnet-features pipeline."""
    if not isinstance(config, ConvNetFeaturesConfig):
        raise ConfigError(f"expected a ConvNetFeaturesConfig, got {type(config).__name__}")
    return ConvNetFeaturesPipeline(dataclasses.replace(config), context)


def check_config(config: ConvNetFeaturesConfig) -> None:
    """Refuse an unknown ``weights_model`` before any data is read (the registry's check)."""
    if config.weights:
        from bovw_vs_convnet.convnet.models import get_model_spec

        try:
            get_model_spec(config.weights_model)
        except ConfigError as exc:
            raise ConfigError(str(exc), key="weights_model") from None
