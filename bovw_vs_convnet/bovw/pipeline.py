"""The BoVW pipeline, top to bottom: descriptors, vocabulary, spatial-pyramid encoding, kernel SVM.

In the manner of VLFeat's ``phow_caltech101.m``: one configuration block
(:class:`~bovw_vs_convnet.bovw.config.BovwConfig`, with presets), the stages in
order, each costly stage cached on disk as arrays (:mod:`~bovw_vs_convnet.bovw.cache`)
under a key of everything its result depends on (:func:`stage_cache_key`), and a
``tiny`` preset for a quick run.

Expected error (``benchmarks/RESULTS-bovw.md`` has the runs, their time and memory):
``bvc run bovw --dataset fashion-mnist`` (the ``small`` preset) about 8.3 % top-1
and 0.2 % top-5; scikit-learn's digits with ``tiny`` about 4 % top-1. Memory does
not grow with the number of images: a folder of photographs (the ``photo`` preset,
chosen by the image size) peaks the same for 2 000 images as for 9 000.

Stages, each pass over the images chunk by chunk in bytes (:mod:`~bovw_vs_convnet.bovw.memory`,
:mod:`~bovw_vs_convnet.bovw.streaming`), so that memory does not grow with the
number or the size of the images:

1. a bounded number of descriptors from each of ``vocab_images`` training images
   (dense SIFT by default), ``vocab_samples`` in all;
2. PCA (optional) and the vocabulary (k-means) on that sample;
3. every image described and encoded, one histogram per image, each chunk's
   descriptors freed before the next; chunks in parallel (joblib threads);
4. one-vs-rest SVMs, exact on a precomputed kernel or a feature map + linear SVM,
   C chosen on the validation images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bovw_vs_convnet.bovw import cache as cache_mod
from bovw_vs_convnet.bovw.config import (
    ENCODER_FIELDS,
    BovwConfig,
    make_classifier,
    make_encoder,
    make_extractor,
)
from bovw_vs_convnet.bovw.dense_sift import to_gray
from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder
from bovw_vs_convnet.bovw.memory import MemoryPlan, plan_memory
from bovw_vs_convnet.bovw.sift import shrink
from bovw_vs_convnet.bovw.streaming import (
    describe,
    encode_pass,
    image_shapes,
    native_shapes,
    read_images,
    vocabulary_sample,
)
from bovw_vs_convnet.bovw.vocabulary import DESCRIPTORS_PER_COMPONENT, K_AUTO_MIN, k_for_images
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.progress import ProgressMode
from bovw_vs_convnet.protocol import CpuPipeline, RunContext
from bovw_vs_convnet.threads import auto_blas_threads

log = logging.getLogger(__name__)

# encoder settings added after cache entries were made: left out of a key at their old value
NEWER_ENCODER_FIELDS = ("k_auto", "vlad_intra", "gmm_samples", "gmm_iter", "colour", "polarity")

# visual-word gallery: at most this many images, and descriptors drawn from them
GALLERY_IMAGES = 500
GALLERY_DESCRIPTORS = 250_000


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


def plan_for(cfg: BovwConfig, images: ImageSet, n_jobs: int) -> MemoryPlan:
    """The memory plan of ``cfg`` for these images (refuses what cannot fit)."""
    return plan_memory(cfg, make_extractor(cfg, 1), image_shapes(images, cfg.max_side), n_jobs)


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
    changing C must not re-encode; nor the chunking's, which changes no result),
    the split fingerprint, the seed (it fixes the vocabulary), the images read
    (dataset name and sample ids) and the format of the cache entries; for images of
    mixed sizes, also that they are kept at their aspect (entries made from images
    squashed to one size are not read back; a set of one size keeps its keys).
    """
    ids = hashlib.sha256("\n".join(map(str, images.ids)).encode()).hexdigest()
    settings = cfg.subset(ENCODER_FIELDS)
    for name in NEWER_ENCODER_FIELDS:  # at the value of the entries made before them: as then
        if settings[name] == BovwConfig.SETTINGS_SINCE[name]:
            del settings[name]
    parts = {
        "stage": stage,
        "settings": settings,
        "split_fingerprint": split_fingerprint,
        "seed": seed,
        "images": [images.name, len(images), ids],
        "format": cache_mod.FORMAT,
    }
    if images.aspect_kept:
        parts["aspect"] = "kept"
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def learn_encoder(
    cfg: BovwConfig, seed: int, images: ImageSet, n_jobs: int, plan: MemoryPlan | None = None
) -> tuple[SpatialPyramidEncoder, np.ndarray, dict[str, float]]:
    """Sample descriptors of some training images and fit the encoder (PCA, vocabulary).

    ``seed`` chooses the ``vocab_images`` images and, with each image's position,
    the ``ceil(vocab_samples / vocab_images)`` descriptors kept of it (all, when it
    has fewer), and seeds the vocabulary. Images are described chunk by chunk as
    ``plan`` says (None: :func:`plan_for`), and only the kept descriptors stay.
    Returns the fitted encoder, the positions of the sampled images, and the stage
    times.
    """
    plan = plan or plan_for(cfg, images, n_jobs)
    t0 = time.perf_counter()
    idx = _vocabulary_images(images, cfg.vocab_images, seed)
    per_image = math.ceil(cfg.vocab_samples / len(idx))
    extractor = make_extractor(cfg, 1)
    sample = vocabulary_sample(extractor, images, idx, per_image, seed, plan, cfg, n_jobs)
    t1 = time.perf_counter()
    if len(sample.values) == 0:
        raise DataError("no descriptors found in the vocabulary images (all images flat?)")
    encoder = make_encoder(cfg, seed).fit(sample)
    t2 = time.perf_counter()
    return encoder, idx, {"descriptors": t1 - t0, "vocabulary": t2 - t1}


def encode_images(
    cfg: BovwConfig,
    encoder: SpatialPyramidEncoder,
    images: ImageSet,
    n_jobs: int,
    plan: MemoryPlan | None = None,
    progress: ProgressMode | bool = False,
    part: str = "",
) -> tuple[Any, np.ndarray, dict[str, float]]:
    """Describe and encode every image, chunk by chunk (as ``plan`` says; None:
    :func:`plan_for`) in parallel.

    ``progress`` is the mode of the progress display (see
    :mod:`bovw_vs_convnet.progress`), ``part`` names the images in it. Returns the
    codes (CSR or dense, one row per image), each image's number of descriptors,
    and the wall time split between description and encoding.
    """
    plan = plan or plan_for(cfg, images, n_jobs)
    desc = f"bovw: encode {part}".rstrip()
    return encode_pass(make_extractor(cfg, 1), encoder, images, plan, cfg, n_jobs, progress, desc)


class BovwPipeline(CpuPipeline):
    """The ``bovw`` pipeline of the harness: ``fit(train, val)`` and ``decision_scores(images)``.

    Attributes set while running (copied into the run record by the harness):
    ``stage_seconds``, ``n_params``, ``model_name``, ``device``, ``record_extra``
    (with the memory plan, ``memory_plan``).
    """

    def __init__(self, config: BovwConfig, context: RunContext) -> None:
        super().__init__(f"bovw-{config.preset}", context)
        self.config = config
        self._cache = cache_mod.StageCache(context.cache_dir) if context.cache_dir else None
        self._planned_shapes: set[tuple[int, int, int]] = set()

    def _cache_key(self, stage: str, images: ImageSet) -> str:
        ctx = self.context
        return stage_cache_key(stage, self.config, ctx.split_fingerprint, ctx.seed, images)

    def _cached(
        self,
        stage: str,
        images: ImageSet,
        compute: Callable[[], Any],
        to_arrays: Callable[[Any], dict[str, np.ndarray]],
        from_arrays: Callable[[dict[str, np.ndarray]], Any],
    ) -> tuple[Any, bool]:
        """``compute()``, or its result read back from the stage cache; say whether it
        was read (a hit, recorded under ``stage``). An entry that does not read back
        (see :mod:`~bovw_vs_convnet.bovw.cache`) is recomputed with a warning.
        """
        if self._cache is None:
            return compute(), False
        key = self._cache_key(stage, images)
        arrays = self._cache.load(stage, key)
        if arrays is not None:
            try:
                result = from_arrays(arrays)
            except cache_mod.CacheEntryError as exc:
                log.warning("ignoring cache entry %s (%s): recomputing it", stage, exc)
                self._cache.path(stage, key).unlink(missing_ok=True)
            else:
                self.record_extra.setdefault("cache_hits", []).append(stage)
                return result, True
        result = compute()
        self._cache.save(stage, key, to_arrays(result))
        return result, False

    def _check_images(self, images: ImageSet) -> None:
        if len(images) == 0:
            raise DataError("the BoVW pipeline got an empty image set")

    def _plan(self, *sets: ImageSet | None) -> MemoryPlan:
        """The memory plan for images of these sets' shapes (refuses what cannot fit)."""
        shapes = {
            s
            for images in sets
            if images is not None
            for s in image_shapes(images, self.config.max_side)
        }
        plan = plan_memory(self.config, make_extractor(self.config, 1), sorted(shapes), self.n_jobs)
        log.info(plan.summary())
        self.record_extra["memory_plan"] = plan.record()
        self._planned_shapes = shapes
        self.plan_ = plan
        return plan

    def _encode(self, images: ImageSet, part: str) -> Any:
        stage = f"encode_{part}"
        t0 = time.perf_counter()
        (x, counts, times), hit = self._cached(
            stage,
            images,
            lambda: encode_images(
                self.config,
                self.encoder_,
                images,
                self.n_jobs,
                self._plan_for(images),
                self.context.progress,
                part,
            ),
            lambda r: {
                **cache_mod.codes_arrays(r[0]),
                "counts": r[1],
                "times": np.array([r[2]["descriptors"], r[2]["encoding"]]),
            },
            _codes_from_arrays,
        )
        self.add_seconds({"encoding": time.perf_counter() - t0} if hit else times)
        self.record_extra[f"zero_descriptor_images_{part}"] = int((counts == 0).sum())
        self.record_extra[f"descriptors_per_image_{part}"] = float(counts.mean())
        return x

    def _plan_for(self, images: ImageSet) -> MemoryPlan:
        """The fit's plan, or a new one for images of a shape it did not plan for."""
        if set(image_shapes(images, self.config.max_side)) <= self._planned_shapes:
            return self.plan_
        return self._plan(images)

    @auto_blas_threads
    def fit(self, train: ImageSet, val: ImageSet | None) -> BovwPipeline:
        """Learn the vocabulary on ``train``, encode it, train the SVMs (C chosen on ``val``)."""
        self._check_images(train)
        if self.config.k_auto:
            self.config = resolve_k(self.config, train, val)
            self.record_extra["k_rule"] = k_rule_record(self.config, train, val)
        cfg = self.config
        if cfg.descriptor == "dense" and train.image_shape[0] * cfg.upscale < 4 * min(
            cfg.bin_sizes
        ):
            log.warning("images smaller than one descriptor patch; one centred descriptor each")
        self.n_classes_ = train.n_classes
        # planned, and refused if it cannot fit, before any image is described
        self._plan(train, val)
        if train.aspect_kept:
            self.record_extra["aspect"] = aspect_record(cfg, train, val)
        t0 = time.perf_counter()
        (encoder, idx, times), hit = self._cached(
            "vocabulary",
            train,
            lambda: learn_encoder(cfg, self.context.seed, train, self.n_jobs, self.plan_),
            lambda r: {
                **cache_mod.encoder_arrays(r[0]),
                "idx": r[1],
                "times": np.array([r[2]["descriptors"], r[2]["vocabulary"]]),
            },
            _encoder_from_arrays,
        )
        self.add_seconds({"vocabulary": time.perf_counter() - t0} if hit else times)
        self.encoder_ = encoder
        self._gallery = (train, idx[:GALLERY_IMAGES])
        x_train = self._encode(train, "train")
        x_val = self._encode(val, "val") if val is not None and len(val) else None
        t0 = time.perf_counter()
        self.classifier_ = make_classifier(cfg, train.n_classes, self.n_jobs).fit(
            x_train, train.labels, x_val, None if val is None else val.labels
        )
        self.add_seconds({"classifier": time.perf_counter() - t0})
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

    @auto_blas_threads
    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """(len(images), n_classes) one-vs-rest SVM decision values."""
        if not hasattr(self, "classifier_"):
            raise DataError("the BoVW pipeline must be fitted before scoring")
        self._check_images(images)
        x = self._encode(images, "test")
        t0 = time.perf_counter()
        scores = self.classifier_.decision_function(x)
        self.add_seconds({"scoring": time.perf_counter() - t0})
        return np.asarray(scores, dtype=np.float64)

    def save_artifacts(self, run_dir: Path) -> None:
        """Write ``visual_words.png``: the patches nearest to the most used words.

        The patches come from at most :data:`GALLERY_IMAGES` of the vocabulary's
        images and :data:`GALLERY_DESCRIPTORS` of their descriptors (drawn evenly),
        described one chunk at a time.
        """
        if self.config.gallery_words <= 0 or not hasattr(self, "encoder_"):
            return
        from bovw_vs_convnet.bovw.gallery import save_gallery, word_gallery

        cfg = self.config
        train, idx = self._gallery
        per_image = max(1, GALLERY_DESCRIPTORS // max(len(idx), 1))
        extractor = make_extractor(cfg, 1)
        plan = self.plan_
        gray: list[np.ndarray] = []
        parts: list[DescriptorSet] = []
        with threadpool_limits(limits=1, user_api="blas"):
            for chunk in plan.chunks(np.full(len(idx), plan.bytes_per_image), cfg.chunk_images):
                images = read_images(train, idx[chunk], cfg.max_side)
                # the patches are cut from the images as they were described
                gray += [shrink(to_gray(im[None]), cfg.max_side)[0] * 255 for im in images]
                parts.append(describe(extractor, images).sample(per_image, idx[chunk], 0))
        sample = DescriptorSet.concatenate(parts)
        values = self.encoder_._project(sample.values)
        grid = word_gallery(
            gray,
            sample,
            values,
            self.encoder_.vocabulary_,
            cfg.gallery_words,
            cfg.gallery_patches,
            upscale=cfg.upscale,
        )
        save_gallery(grid, Path(run_dir) / "visual_words.png")


def _largest_descriptor_count(cfg: BovwConfig, *sets: ImageSet | None) -> int:
    """Descriptors of the largest image of these sets as ``cfg`` describes them."""
    extractor = make_extractor(cfg, 1)
    shapes = {
        s for images in sets if images is not None for s in image_shapes(images, cfg.max_side)
    }
    return max(int(extractor.n_descriptors(h, w)) for h, w, _ in shapes)


def resolve_k(cfg: BovwConfig, *sets: ImageSet | None) -> BovwConfig:
    """``cfg`` with ``k`` set by the ``k_auto`` rule (:func:`k_for_images`) for these images."""
    n_desc = _largest_descriptor_count(cfg, *sets)
    return dataclasses.replace(cfg, k=k_for_images(n_desc, cfg.encoding, cfg.k))


def k_rule_record(cfg: BovwConfig, *sets: ImageSet | None) -> dict[str, Any]:
    """What the ``k_auto`` rule chose and why, for the run record (``extra.k_rule``)."""
    per = DESCRIPTORS_PER_COMPONENT.get(cfg.encoding)
    return {
        "k": int(cfg.k),
        "descriptors_per_image": _largest_descriptor_count(cfg, *sets),
        "rule": (
            f"power of two at or below descriptors per image / {per}, "
            f"between {K_AUTO_MIN} and the k setting"
            if per
            else "the k setting (histogram encodings)"
        ),
    }


def aspect_record(cfg: BovwConfig, *sets: ImageSet | None) -> dict[str, Any]:
    """What was done to images of mixed sizes, for the run record (``extra.aspect``).

    Each image described at its own aspect, its longer side at most ``max_side``; the
    distinct shapes described and their range.
    """
    shapes = [
        s for images in sets if images is not None for s in native_shapes(images, cfg.max_side)
    ]
    hs, ws = [s[0] for s in shapes], [s[1] for s in shapes]
    return {
        "aspect": "kept",
        "max_side": cfg.max_side,
        "distinct_shapes": len(set(shapes)),
        "height": [min(hs), max(hs)],
        "width": [min(ws), max(ws)],
    }


def _encoder_from_arrays(
    arrays: dict[str, np.ndarray],
) -> tuple[SpatialPyramidEncoder, np.ndarray, dict[str, float]]:
    encoder = cache_mod.encoder_from_arrays(arrays)
    idx = cache_mod.take_array(arrays, "idx", 1)
    t = cache_mod.take_array(arrays, "times", 1)
    return encoder, idx.astype(np.int64), {"descriptors": float(t[0]), "vocabulary": float(t[1])}


def _codes_from_arrays(arrays: dict[str, np.ndarray]) -> tuple[Any, np.ndarray, dict[str, float]]:
    x = cache_mod.codes_from_arrays(arrays)
    counts = cache_mod.take_array(arrays, "counts", 1)
    if len(counts) != x.shape[0]:
        raise cache_mod.CacheEntryError(f"{len(counts)} counts for {x.shape[0]} codes")
    t = cache_mod.take_array(arrays, "times", 1)
    return x, counts, {"descriptors": float(t[0]), "encoding": float(t[1])}


def build_pipeline(config: BovwConfig, context: RunContext) -> BovwPipeline:
    """The registry's factory: a fresh, unfitted BoVW pipeline."""
    if not isinstance(config, BovwConfig):
        raise ConfigError(f"expected a BovwConfig, got {type(config).__name__}")
    return BovwPipeline(dataclasses.replace(config), context)
