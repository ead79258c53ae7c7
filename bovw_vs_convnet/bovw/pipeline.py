"""The BoVW pipeline, top to bottom: descriptors, vocabulary, spatial-pyramid encoding, kernel SVM.

In the manner of VLFeat's ``phow_caltech101.m``: one configuration block
(:class:`BovwConfig`, with presets), the stages in order, each costly stage
cached on disk (joblib) under a key of the settings it depends on and the
split fingerprint, and a ``tiny`` preset for a quick run.

Expected figures (measured, see ``benchmarks/RESULTS-bovw.md``): Fashion-MNIST
with the ``small`` preset (the default), 54 000 training images: 8.46 % top-1,
0.18 % top-5, 6.4 min for the whole run on 2 busy cores, 2.6 GiB peak; digits
with ``tiny``: 3.9 % top-1 in seconds.

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
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from joblib import Memory, Parallel, delayed
from threadpoolctl import threadpool_limits

from bovw_vs_convnet.bovw.classifier import KernelSvm
from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder
from bovw_vs_convnet.bovw.sift import DenseSift, KeypointSift
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.protocol import RunContext

log = logging.getLogger(__name__)

# fields each cached stage depends on (changing C must not re-encode)
_DESCRIPTOR_FIELDS = (
    "descriptor", "sift_backend", "bin_sizes", "step", "upscale", "magnif", "window",
    "contrast_threshold", "root_sift", "resample",
)  # fmt: skip
_ENCODER_FIELDS = (
    *_DESCRIPTOR_FIELDS, "encoding", "k", "levels", "power", "norm", "knn", "sigma", "pca_dim",
    "vocab_images", "vocab_samples", "kmeans_engine", "kmeans_iter",
)  # fmt: skip


@dataclass(frozen=True)
class BovwConfig:
    """Every setting of the BoVW pipeline; each is overridable with ``--set KEY=VALUE``."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # tuned on Fashion-MNIST (28×28): these are the field defaults. Dense RootSIFT
        # (16-px patches every 2 px of the ×2 image), 256 words, soft assignment to 5,
        # 1×1 + 2×2 + 4×4 pyramid, Hellinger map, linear SVMs (see RESULTS-bovw.md)
        "small": {},
        # VLFeat apps/phow_caltech101.m: PHOW (dense SIFT at 4 sizes, step 3), 600 words,
        # 2×2 and 4×4 spatial histograms, χ² kernel map, linear SVM with C = 10
        "phow": {
            "bin_sizes": (4, 6, 8, 10),
            "step": 3,
            "upscale": 1.0,
            "magnif": 6.0,
            "window": 1.5,
            "contrast_threshold": 0.005,
            "root_sift": False,
            "encoding": "hard",
            "k": 600,
            "levels": (2, 4),
            "power": 1.0,
            "norm": "l1",
            "vocab_samples": 100_000,
            "kmeans_iter": 50,
            "kernel": "chi2",
            "solver": "map",
            "C": 10.0,
        },
        # a smoke test: seconds on scikit-learn's digits
        "tiny": {
            "bin_sizes": (2,),
            "step": 2,
            "upscale": 2.0,
            "k": 32,
            "levels": (1, 2),
            "encoding": "hard",
            "kernel": "chi2",
            "vocab_images": 200,
            "vocab_samples": 10_000,
            "kmeans_iter": 10,
            "C": 1.0,
            "exact_max_train": 2000,
            "gallery_words": 8,
        },
    }

    preset: str = "small"  # the preset these values came from (a record, not a setting)
    # descriptors
    descriptor: Literal["dense", "keypoint"] = "dense"  # dense SIFT grid or DoG keypoints
    sift_backend: Literal["numpy", "opencv"] = "numpy"  # dense SIFT: batched numpy or OpenCV
    bin_sizes: tuple[int, ...] = (4,)  # spatial bin side, px of the upscaled image
    step: int = 2  # grid step, px of the upscaled image
    upscale: float = 2.0  # image magnification before description
    magnif: float = 6.0  # smoothing sigma = bin_size / magnif
    window: float = 2.0  # Gaussian window sigma, in bins
    contrast_threshold: float = 0.005  # mean gradient below which a descriptor is zeroed
    root_sift: bool = True  # RootSIFT (Hellinger) descriptors
    resample: bool = False  # numpy backend: resample to the upscaled size first (slower)
    # vocabulary and encoding
    encoding: Literal["hard", "soft", "vlad", "fisher"] = "soft"
    k: int = 256  # visual words (Gaussians for fisher)
    levels: tuple[int, ...] = (1, 2, 4)  # spatial pyramid grids
    power: float = 1.0  # power applied to the code before norm (0.5: square root)
    norm: Literal["l1", "l2", "none"] = "l1"
    knn: int = 5  # soft assignment: nearest words sharing a descriptor
    sigma: float | None = None  # soft assignment width (None: from the data)
    pca_dim: int | None = None  # PCA of descriptors before the vocabulary
    vocab_images: int = 2000  # training images described for the vocabulary
    vocab_samples: int = 100_000  # descriptors clustered at most
    kmeans_engine: Literal["minibatch", "kmeans", "faiss"] = "minibatch"
    kmeans_iter: int = 20  # k-means iterations (epochs for minibatch)
    # classifier
    kernel: Literal["chi2", "intersection", "rbf", "hellinger", "linear"] = "hellinger"
    solver: Literal["auto", "exact", "map"] = "auto"  # exact kernel SVM or feature map
    exact_max_train: int = 5000  # auto: exact kernel up to this many training images
    C: float | None = None  # SVM cost (None: best of C_grid on the validation images)
    C_grid: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)
    select_max_train: int | None = 10_000  # choose C on this many training images, then refit
    map_steps: int = 2  # χ² feature map samples (output 2·steps-1 times wider)
    n_components: int = 2000  # Nystroem landmarks (rbf, intersection maps)
    gamma: float | None = None  # RBF width
    svm_max_iter: int = 1000
    # execution and artefacts
    chunk_images: int = 2048  # images described and encoded together
    gallery_words: int = 16  # words in the visual-word gallery (0: none)
    gallery_patches: int = 8  # patches per word

    def __post_init__(self) -> None:
        checks = [
            (self.k >= 1, f"k must be ≥ 1, got {self.k}"),
            (self.step >= 1, f"step must be ≥ 1, got {self.step}"),
            (self.upscale > 0, f"upscale must be > 0, got {self.upscale}"),
            (bool(self.bin_sizes) and min(self.bin_sizes) >= 1, "bin_sizes must be ≥ 1"),
            (bool(self.levels) and min(self.levels) >= 1, "levels must be ≥ 1"),
            (self.vocab_images >= 1, "vocab_images must be ≥ 1"),
            (self.vocab_samples >= 1, "vocab_samples must be ≥ 1"),
            (self.chunk_images >= 1, "chunk_images must be ≥ 1"),
            (self.C is None or self.C > 0, f"C must be > 0, got {self.C}"),
            (bool(self.C_grid) and min(self.C_grid) > 0, "C_grid must hold costs > 0"),
            (self.power > 0, f"power must be > 0, got {self.power}"),
            (self.knn >= 1, f"knn must be ≥ 1, got {self.knn}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.preset not in self.PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; known: {', '.join(self.PRESETS)}")

    def subset(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The named settings, as a plain dict (a cache key)."""
        return {n: getattr(self, n) for n in names}


def make_extractor(cfg: BovwConfig, n_jobs: int = 1) -> DenseSift | KeypointSift:
    """The descriptor stage of ``cfg``."""
    if cfg.descriptor == "keypoint":
        return KeypointSift(upscale=cfg.upscale, root=cfg.root_sift, n_jobs=n_jobs)
    return DenseSift(
        bin_sizes=cfg.bin_sizes,
        step=cfg.step,
        upscale=cfg.upscale,
        magnif=cfg.magnif,
        window=cfg.window,
        contrast_threshold=cfg.contrast_threshold,
        root=cfg.root_sift,
        backend=cfg.sift_backend,
        resample=cfg.resample,
        batch_size=256,
        n_jobs=n_jobs,
    )


def make_encoder(cfg: BovwConfig, seed: int) -> SpatialPyramidEncoder:
    """The vocabulary + encoding stage of ``cfg``."""
    return SpatialPyramidEncoder(
        method=cfg.encoding,
        k=cfg.k,
        levels=cfg.levels,
        power=cfg.power,
        norm=cfg.norm,
        knn=cfg.knn,
        sigma=cfg.sigma,
        pca_dim=cfg.pca_dim,
        max_samples=cfg.vocab_samples,
        engine=cfg.kmeans_engine,
        max_iter=cfg.kmeans_iter,
        random_state=seed,
    )


def make_classifier(cfg: BovwConfig, n_classes: int, n_jobs: int) -> KernelSvm:
    """The SVM stage of ``cfg``."""
    return KernelSvm(
        kernel=cfg.kernel,
        solver=cfg.solver,
        exact_max_train=cfg.exact_max_train,
        C=cfg.C,
        C_grid=cfg.C_grid,
        map_steps=cfg.map_steps,
        n_components=cfg.n_components,
        gamma=cfg.gamma,
        n_classes=n_classes,
        select_max_train=cfg.select_max_train,
        max_iter=cfg.svm_max_iter,
        n_jobs=n_jobs,
    )


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


def learn_encoder(
    cfg_key: dict[str, Any], fingerprint: str, seed: int, images: ImageSet, n_jobs: int
) -> tuple[SpatialPyramidEncoder, np.ndarray, dict[str, float]]:
    """Describe a sample of training images and fit the encoder (PCA, vocabulary) on it.

    ``cfg_key``, ``fingerprint`` and ``seed`` are the cache key; returns the fitted
    encoder, the positions of the sampled images, and the stage times.
    """
    cfg = BovwConfig(**cfg_key)
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
    cfg_key: dict[str, Any],
    fingerprint: str,
    seed: int,
    part: str,
    encoder: SpatialPyramidEncoder,
    images: ImageSet,
    n_jobs: int,
    progress: bool = False,
) -> tuple[Any, np.ndarray, dict[str, float]]:
    """Describe and encode every image, chunk by chunk in parallel.

    ``cfg_key``, ``fingerprint``, ``seed`` (which fixed the encoder) and ``part``
    are the cache key. Returns the codes (CSR or dense, one row per image), each image's number of
    descriptors, and the wall time split between description and encoding.
    """
    cfg = BovwConfig(**cfg_key)
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
        if progress:
            from tqdm.auto import tqdm

            results = tqdm(results, total=len(chunks), desc=f"bovw: encode {part}", leave=False)
        parts = list(results)
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
        if config.kernel in ("chi2", "intersection") and config.encoding in ("vlad", "fisher"):
            raise ConfigError(
                f"kernel {config.kernel!r} needs non-negative histograms; "
                f"use kernel=linear or rbf with encoding={config.encoding}"
            )
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

    def _call_cached(
        self, fn: Callable[..., Any], ignore: list[str], name: str, *args: Any
    ) -> tuple[Any, bool]:
        """Call ``fn`` through the disk cache (if any); also say whether it was a cache hit."""
        if self._memory is None:
            return fn(*args), False
        cached_fn = self._memory.cache(fn, ignore=ignore)
        hit = bool(cached_fn.check_call_in_cache(*args))
        if hit:
            self.record_extra.setdefault("cache_hits", []).append(name)
        return cached_fn(*args), hit

    def _add_time(self, times: dict[str, float]) -> None:
        for key, value in times.items():
            self.stage_seconds[key] = self.stage_seconds.get(key, 0.0) + float(value)

    def _check_images(self, images: ImageSet) -> None:
        if len(images) == 0:
            raise DataError("the BoVW pipeline got an empty image set")

    def _encode(self, images: ImageSet, part: str) -> Any:
        key = self.config.subset(_ENCODER_FIELDS)
        t0 = time.perf_counter()
        (x, counts, times), hit = self._call_cached(
            encode_images,
            ["encoder", "images", "n_jobs", "progress"],
            f"encode_{part}",
            key,
            self.context.split_fingerprint,
            self.context.seed,
            part,
            self.encoder_,
            images,
            self.n_jobs,
            self.context.progress,
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
        key = self.config.subset(_ENCODER_FIELDS)
        t0 = time.perf_counter()
        (encoder, idx, times), hit = self._call_cached(
            learn_encoder,
            ["images", "n_jobs"],
            "vocabulary",
            key,
            self.context.split_fingerprint,
            self.context.seed,
            train,
            self.n_jobs,
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
