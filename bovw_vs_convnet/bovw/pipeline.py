"""The BoVW pipeline, top to bottom: descriptors, vocabulary, spatial-pyramid encoding, kernel SVM.

In the manner of VLFeat's ``phow_caltech101.m``: one configuration block
(:class:`~bovw_vs_convnet.bovw.config.BovwConfig`, with presets), the stages in
order, each costly stage cached on disk (joblib) under a key of everything its
result depends on (:func:`stage_cache_key`), and a ``tiny`` preset for a quick run.

Expected figures (measured, see the README and ``benchmarks/RESULTS-bovw.md``):
``bvc run bovw --dataset fashion-mnist`` (the ``small`` preset, 54 000 training
images, nothing cached) gives 8.46 % top-1 and 0.18 % top-5 in 1 min 59 s wall
with a 2.74 GiB peak on the idle 2-core machine; digits with ``tiny``: 3.9 % top-1
in seconds.

Stages:

1. descriptors of ``vocab_images`` training images (dense SIFT by default);
2. PCA (optional) and the vocabulary (k-means) on at most ``vocab_samples`` of them;
3. every image described and encoded chunk by chunk (never all descriptors in
   memory), chunks in parallel (joblib threads);
4. one-vs-rest SVMs, exact on a precomputed kernel or a feature map + linear SVM,
   C chosen on the validation images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from joblib import Memory, Parallel, delayed
from threadpoolctl import threadpool_limits

from bovw_vs_convnet.bovw.config import (
    ENCODER_FIELDS,
    BovwConfig,
    make_classifier,
    make_encoder,
    make_extractor,
)
from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.progress import ProgressMode, track
from bovw_vs_convnet.protocol import RunContext

log = logging.getLogger(__name__)


def make_sklearn_pipeline(cfg: BovwConfig, n_classes: int, seed: int = 0, n_jobs: int = 1) -> Any:
    """The stages of ``cfg`` as one scikit-learn ``Pipeline`` on uint8 image arrays.

    ``fit(images, labels)`` then ``decision_function(images)``; all descriptors are
    held in memory and nothing is cached, so use it for small sets and experiments
    (:class:`BovwPipeline` streams, caches and chooses C on validation images).
    """
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("sift", make_extractor(cfg, n_jobs)),
            ("encode", make_encoder(cfg, seed)),
            ("svm", make_classifier(cfg, n_classes, n_jobs)),
        ]
    )


def _vocabulary_images(images: ImageSet, n: int, seed: int) -> np.ndarray:
    """A seeded, sorted choice of at most ``n`` image positions."""
    rng = np.random.default_rng(seed)
    take = min(n, len(images))
    return np.sort(rng.choice(len(images), size=take, replace=False))


def stage_cache_key(
    stage: str, cfg: BovwConfig, split_fingerprint: str, seed: int, images: ImageSet
) -> str:
    """The disk-cache key of a stage's result: a sha256 of everything that result depends on.

    That is the stage's name (``vocabulary``, ``encode_train``, ...), the settings
    of the descriptors, the vocabulary and the encoding (not the classifier's:
    changing C must not re-encode), the split fingerprint, the seed (it fixes
    the vocabulary) and the images read (dataset name and sample ids).
    """
    ids = hashlib.sha256("\n".join(map(str, images.ids)).encode()).hexdigest()
    parts = {
        "stage": stage,
        "settings": cfg.subset(ENCODER_FIELDS),
        "split_fingerprint": split_fingerprint,
        "seed": seed,
        "images": [images.name, len(images), ids],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def learn_encoder(
    cache_key: str, cfg: BovwConfig, seed: int, images: ImageSet, n_jobs: int
) -> tuple[SpatialPyramidEncoder, np.ndarray, dict[str, float]]:
    """Describe a sample of training images and fit the encoder (PCA, vocabulary) on it.

    ``cache_key`` (:func:`stage_cache_key`) is the only argument the disk cache
    looks at, and is otherwise unused; ``seed`` chooses the images and seeds the
    vocabulary. Returns the fitted encoder, the positions of the sampled images,
    and the stage times.
    """
    t0 = time.perf_counter()
    idx = _vocabulary_images(images, cfg.vocab_images, seed)
    sample = make_extractor(cfg, n_jobs).transform(images.subset(idx).array())
    t1 = time.perf_counter()
    if len(sample.values) == 0:
        raise DataError("no descriptors found in the vocabulary images (all images flat?)")
    encoder = make_encoder(cfg, seed).fit(sample)
    t2 = time.perf_counter()
    return encoder, idx, {"descriptors": t1 - t0, "vocabulary": t2 - t1}


def encode_images(
    cache_key: str,
    cfg: BovwConfig,
    encoder: SpatialPyramidEncoder,
    images: ImageSet,
    n_jobs: int,
    progress: ProgressMode | bool = False,
    part: str = "",
) -> tuple[Any, np.ndarray, dict[str, float]]:
    """Describe and encode every image, chunk by chunk in parallel.

    ``cache_key`` (:func:`stage_cache_key`) is the only argument the disk cache
    looks at, and is otherwise unused. ``progress`` is the mode of the progress
    display (see :mod:`bovw_vs_convnet.progress`), ``part`` names the images in it.
    Returns the codes (CSR or dense, one row per image), each image's number of
    descriptors, and the wall time split between description and encoding.
    """
    extractor = make_extractor(cfg, 1)
    n = len(images)
    chunks = [slice(s, min(s + cfg.chunk_images, n)) for s in range(0, n, cfg.chunk_images)]

    def run(sl: slice) -> tuple[Any, np.ndarray, float, float]:
        t0 = time.perf_counter()
        desc = extractor.transform(images.subset(np.arange(sl.start, sl.stop)).array())
        t1 = time.perf_counter()
        codes = encoder.transform(desc)
        return codes, desc.counts(), t1 - t0, time.perf_counter() - t1

    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        results: Any = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
            delayed(run)(sl) for sl in chunks
        )
        desc = f"bovw: encode {part}".rstrip()
        parts = list(track(results, total=len(chunks), desc=desc, mode=progress, unit="chunk"))
    wall = time.perf_counter() - t0
    codes = [p[0] for p in parts]
    x = sp.vstack(codes, format="csr") if sp.issparse(codes[0]) else np.concatenate(codes)
    desc_t, enc_t = sum(p[2] for p in parts), sum(p[3] for p in parts)
    share = desc_t / max(desc_t + enc_t, 1e-9)
    times = {"descriptors": wall * share, "encoding": wall * (1 - share)}
    return x, np.concatenate([p[1] for p in parts]), times


class BovwPipeline:
    """The ``bovw`` pipeline of the harness: ``fit(train, val)`` and ``decision_scores(images)``.

    Attributes set while running (copied into the run record by the harness):
    ``stage_seconds``, ``n_params``, ``model_name``, ``device``, ``record_extra``.
    """

    def __init__(self, config: BovwConfig, context: RunContext) -> None:
        self.config = config
        self.context = context
        self.model_name = f"bovw-{config.preset}"
        self.device = "cpu"
        self.stage_seconds: dict[str, float] = {}
        self.record_extra: dict[str, Any] = {}
        self.n_params = 0
        n_jobs = context.n_jobs
        if n_jobs is None or n_jobs < 1:
            import os

            n_jobs = os.cpu_count() or 1
        self.n_jobs = int(n_jobs)
        self._memory = Memory(str(context.cache_dir), verbose=0) if context.cache_dir else None

    def _cache_key(self, stage: str, images: ImageSet) -> str:
        ctx = self.context
        return stage_cache_key(stage, self.config, ctx.split_fingerprint, ctx.seed, images)

    def _call_cached(
        self, fn: Callable[..., Any], name: str, cache_key: str, **inputs: Any
    ) -> tuple[Any, bool]:
        """``fn(cache_key, **inputs)`` through the disk cache (if any), keyed on ``cache_key``
        alone; also say whether it was a cache hit (recorded under ``name``).
        """
        if self._memory is None:
            return fn(cache_key, **inputs), False
        cached_fn = self._memory.cache(fn, ignore=list(inputs))
        hit = bool(cached_fn.check_call_in_cache(cache_key, **inputs))
        if hit:
            self.record_extra.setdefault("cache_hits", []).append(name)
        return cached_fn(cache_key, **inputs), hit

    def _add_time(self, times: dict[str, float]) -> None:
        for key, value in times.items():
            self.stage_seconds[key] = self.stage_seconds.get(key, 0.0) + float(value)

    def _check_images(self, images: ImageSet) -> None:
        if len(images) == 0:
            raise DataError("the BoVW pipeline got an empty image set")

    def _encode(self, images: ImageSet, part: str) -> Any:
        stage = f"encode_{part}"
        t0 = time.perf_counter()
        (x, counts, times), hit = self._call_cached(
            encode_images,
            stage,
            self._cache_key(stage, images),
            cfg=self.config,
            encoder=self.encoder_,
            images=images,
            n_jobs=self.n_jobs,
            progress=self.context.progress,
            part=part,
        )
        self._add_time({"encoding": time.perf_counter() - t0} if hit else times)
        self.record_extra[f"zero_descriptor_images_{part}"] = int((counts == 0).sum())
        self.record_extra[f"descriptors_per_image_{part}"] = float(counts.mean())
        return x

    def fit(self, train: ImageSet, val: ImageSet | None) -> BovwPipeline:
        """Learn the vocabulary on ``train``, encode it, train the SVMs (C chosen on ``val``)."""
        self._check_images(train)
        cfg = self.config
        if cfg.descriptor == "dense" and train.image_shape[0] * cfg.upscale < 4 * min(
            cfg.bin_sizes
        ):
            log.warning("images smaller than one descriptor patch; one centred descriptor each")
        self.n_classes_ = train.n_classes
        t0 = time.perf_counter()
        (encoder, idx, times), hit = self._call_cached(
            learn_encoder,
            "vocabulary",
            self._cache_key("vocabulary", train),
            cfg=cfg,
            seed=self.context.seed,
            images=train,
            n_jobs=self.n_jobs,
        )
        self._add_time({"vocabulary": time.perf_counter() - t0} if hit else times)
        self.encoder_ = encoder
        self._gallery_images = train.subset(idx[:500]).array()
        x_train = self._encode(train, "train")
        x_val = self._encode(val, "val") if val is not None and len(val) else None
        t0 = time.perf_counter()
        self.classifier_ = make_classifier(cfg, train.n_classes, self.n_jobs).fit(
            x_train, train.labels, x_val, None if val is None else val.labels
        )
        self._add_time({"classifier": time.perf_counter() - t0})
        clf = self.classifier_
        self.record_extra.update(
            {
                "classifier": f"{clf.solver_}-{cfg.kernel}"
                + (f"-map{cfg.map_steps}" if clf.solver_ == "map" and cfg.kernel == "chi2" else ""),
                "C": clf.C_,
                "C_selected_on": clf.selected_on_,
                "val_errors_by_C": {str(c): e for c, e in clf.val_errors_.items()},
                "feature_dim": int(x_train.shape[1]),
                "vocabulary_size": int(cfg.k),
            }
        )
        self.n_params = self._count_params()
        return self

    def _count_params(self) -> int:
        n = int(self.encoder_.vocabulary_.size)
        if self.encoder_.pca_ is not None:
            n += int(self.encoder_.pca_.components_.size)
        for m in self.classifier_.models_:
            if m is None:
                continue
            if hasattr(m, "coef_") and self.classifier_.solver_ == "map":
                n += int(m.coef_.size + np.size(m.intercept_))
            else:
                n += int(m.dual_coef_.size + np.size(m.intercept_))
        return n

    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """(len(images), n_classes) one-vs-rest SVM decision values."""
        if not hasattr(self, "classifier_"):
            raise DataError("the BoVW pipeline must be fitted before scoring")
        self._check_images(images)
        x = self._encode(images, "test")
        t0 = time.perf_counter()
        scores = self.classifier_.decision_function(x)
        self._add_time({"scoring": time.perf_counter() - t0})
        return np.asarray(scores, dtype=np.float64)

    def save_artifacts(self, run_dir: Path) -> None:
        """Write ``visual_words.png``: the patches nearest to the most used words."""
        if self.config.gallery_words <= 0 or not hasattr(self, "encoder_"):
            return
        from bovw_vs_convnet.bovw.gallery import save_gallery, word_gallery

        images = self._gallery_images
        sample = make_extractor(self.config, self.n_jobs).transform(images)
        values = self.encoder_._project(sample.values)
        grid = word_gallery(
            images,
            sample,
            values,
            self.encoder_.vocabulary_,
            self.config.gallery_words,
            self.config.gallery_patches,
            upscale=self.config.upscale,
        )
        save_gallery(grid, Path(run_dir) / "visual_words.png")


def build_pipeline(config: BovwConfig, context: RunContext) -> BovwPipeline:
    """The registry's factory: a fresh, unfitted BoVW pipeline."""
    if not isinstance(config, BovwConfig):
        raise ConfigError(f"expected a BovwConfig, got {type(config).__name__}")
    return BovwPipeline(dataclasses.replace(config), context)
