"""BoVW settings: :class:`BovwConfig` with its presets, and the stages it builds.

Every field is a ``--set KEY=VALUE`` key. Each estimator checks its own
parameters (``check_params``); the config runs those same checks on the stages it
would build, so a bad setting is refused before any image is read, and checks
itself only what depends on several settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder
from bovw_vs_convnet.bovw.sift import DenseSift, KeypointSift
from bovw_vs_convnet.config import Bound
from bovw_vs_convnet.errors import ConfigError, unknown_name
from bovw_vs_convnet.estimators.kernel_svm import CONFIG_SETTINGS, KernelSvm
from bovw_vs_convnet.estimators.parameters import ParameterError

if TYPE_CHECKING:
    from bovw_vs_convnet.data.imageset import ImageSet

# Each stage's estimator parameters and the BovwConfig settings they come from:
# the make_* factories build the estimators from these tables, BovwConfig runs the
# estimators' own checks with them, and the cache keys take their settings.
_DENSE_SETTINGS = {
    "bin_sizes": "bin_sizes",
    "step": "step",
    "upscale": "upscale",
    "magnif": "magnif",
    "window": "window",
    "contrast_threshold": "contrast_threshold",
    "root": "root_sift",
    "backend": "sift_backend",
    "resample": "resample",
    "max_side": "max_side",
    "colour": "colour",
    "polarity": "polarity",
}
_KEYPOINT_SETTINGS = {"upscale": "upscale", "root": "root_sift", "max_side": "max_side"}
_ENCODER_SETTINGS = {
    "method": "encoding",
    "k": "k",
    "levels": "levels",
    "power": "power",
    "norm": "norm",
    "knn": "knn",
    "sigma": "sigma",
    "pca_dim": "pca_dim",
    "max_samples": "vocab_samples",
    "engine": "kmeans_engine",
    "max_iter": "kmeans_iter",
    "intra": "vlad_intra",
    "gmm_samples": "gmm_samples",
    "gmm_iter": "gmm_iter",
}
_CLASSIFIER_SETTINGS = {
    **CONFIG_SETTINGS,
    "solver": "solver",
    "exact_max_train": "exact_max_train",
    "linear_solver": "linear_solver",
}

# settings the cached stages depend on (changing C must not re-encode)
DESCRIPTOR_FIELDS = ("descriptor", *_DENSE_SETTINGS.values())  # keypoint's are among them
ENCODER_FIELDS = (*DESCRIPTOR_FIELDS, *_ENCODER_SETTINGS.values(), "vocab_images", "k_auto")


# VLFeat apps/phow_caltech101.m: PHOW (dense SIFT at 4 sizes, step 3), 600 words,
# 2×2 and 4×4 spatial histograms, χ² kernel map, linear SVM with C = 10
_PHOW: dict[str, Any] = {
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
}


# The 2012 runner-up's encodings as Chatfield et al. (BMVC 2011) and VLFeat build
# them: dense multi-scale RootSIFT (16- and 24-px patches every 2 px of the ×2 image),
# PCA to 64 dimensions, 1×1 + 2×2 regions, power (signed square root) and L2
# normalisation, one-vs-rest linear SVMs (primal, float32: the codes are dense). k
# follows the descriptors per image (k_auto; vocabulary.k_for_images), at most 256.
_ENCODINGS_2012: dict[str, Any] = {
    "bin_sizes": (4, 6),
    "step": 2,
    "upscale": 2.0,
    "root_sift": True,
    "pca_dim": 64,
    "k": 256,
    "k_auto": True,
    "levels": (1, 2),
    "power": 0.5,
    "norm": "l2",
    "kernel": "linear",
    "solver": "map",
    "linear_solver": "lbfgs",
    "C_grid": (1.0, 3.0, 10.0, 30.0),
    "max_side": 300,
}


@dataclass(frozen=True)
class BovwConfig:
    """Every setting of the BoVW pipeline; each is overridable with ``--set KEY=VALUE``."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # tuned on Fashion-MNIST (28×28): these are the field defaults. Dense RootSIFT
        # (16-px patches every 2 px of the ×2 image), 256 words, soft assignment to 5,
        # 1×1 + 2×2 + 4×4 pyramid, Hellinger map, linear SVMs (see RESULTS-bovw.md)
        "small": {},
        # for photographs, the default above SMALL_SIDE px: phow's settings with images
        # shrunk to 300 px on their longer side first (phow_caltech101 standardises its
        # images too) and a grid step of 4, which bounds an image at ~19 000 descriptors;
        # orientations modulo π (an object light on dark or dark on light alike) and a
        # 1×1 + 2×2 + 4×4 pyramid: on the robustness bench's photo folders (seen seed
        # 101, confirmed on unseen 6207) they took photo-plain from 59 % to 23 % top-1
        # (benchmarks/RESULTS-bovw-photo.md)
        "photo": {
            **_PHOW,
            "step": 4,
            "max_side": 300,
            "vocab_images": 500,
            "polarity": "unsigned",
            "levels": (1, 2, 4),
        },
        # VLFeat apps/phow_caltech101.m (see _PHOW)
        "phow": _PHOW,
        # improved Fisher vectors (Perronnin, Sánchez and Mensink 2010) on a diagonal GMM
        "fisher": {**_ENCODINGS_2012, "encoding": "fisher"},
        # VLAD (Jégou et al. 2010), intra-normalised (Arandjelović and Zisserman 2013)
        "vlad": {**_ENCODINGS_2012, "encoding": "vlad", "vlad_intra": True},
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

    # settings added after runs were stored, with the value those runs had: at that value
    # they leave a run's identity as it was (config.identity_settings)
    SETTINGS_SINCE: ClassVar[dict[str, Any]] = {
        "max_side": None,
        "memory_mib": None,
        "k_auto": False,
        "vlad_intra": False,
        "gmm_samples": 50_000,
        "gmm_iter": 30,
        "linear_solver": "liblinear",
        "colour": "gray",
        "polarity": "signed",
    }
    # how the work is spread, never what it computes: no part of a run's identity
    NOT_IDENTITY: ClassVar[tuple[str, ...]] = ("executor",)
    # old names of renamed settings, still read from --set, suites and stored runs
    ALIASES: ClassVar[dict[str, str]] = {"backend": "executor"}
    # ranges checked when a setting is parsed (config.check_bounds) that no estimator's own
    # check covers: the lower bounds of the stages' parameters are theirs (check_params)
    BOUNDS: ClassVar[dict[str, Bound]] = {
        "upscale": Bound(0, 16, low_open=True),  # magnification: 16x is already 256x the pixels
        "magnif": Bound(0),  # 0: no smoothing
        "contrast_threshold": Bound(0),
        "gallery_words": Bound(0, 10_000),
        "gallery_patches": Bound(0, 1_000),
    }
    # images up to this many px on their longer side get ``small`` when no preset is
    # named, larger ones ``photo`` (preset_for_images)
    SMALL_SIDE: ClassVar[int] = 64
    # the pipeline reads each image once per pass, a chunk at a time: the harness has an
    # image folder read from its files as the passes go, not held in memory
    STREAMS_IMAGES: ClassVar[bool] = True

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
    max_side: int | None = None  # px: a longer image side is shrunk to this first (None: never)
    # channels described (bovw/colour.py): gray SIFT (128 values), or one SIFT per channel
    # of a colour space of van de Sande et al. 2010 (384): opponent, rgb, rg, c
    colour: Literal["gray", "opponent", "rgb", "rg", "c"] = "gray"
    # gradient orientation over 2π (signed, Lowe) or modulo π (unsigned: a shape light on
    # dark and dark on light give the same descriptor)
    polarity: Literal["signed", "unsigned"] = "signed"
    # vocabulary and encoding
    encoding: Literal["hard", "soft", "vlad", "fisher"] = "soft"
    k: int = 256  # visual words (Gaussians for fisher); at most this many with k_auto
    # k from the descriptors per image of the largest image (vocabulary.k_for_images):
    # fewer Gaussians (words) for small images, stated in the run record
    k_auto: bool = False
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
    vlad_intra: bool = False  # vlad: L2-normalise each word's residual sum (intra-normalisation)
    gmm_samples: int = 50_000  # fisher: descriptors of the vocabulary sample the GMM is fitted on
    gmm_iter: int = 30  # fisher: EM iterations from the k-means centres
    # classifier
    kernel: Literal["chi2", "intersection", "rbf", "hellinger", "linear"] = "hellinger"
    solver: Literal["auto", "exact", "map"] = "auto"  # exact kernel SVM or feature map
    exact_max_train: int = 5000  # auto: exact kernel up to this many training images
    # map: one liblinear LinearSVC per class (float64 copy), or all classes at once by
    # L-BFGS in the primal on float32 (dense VLAD / Fisher codes)
    linear_solver: Literal["liblinear", "lbfgs"] = "liblinear"
    C: float | None = None  # SVM cost (None: best of C_grid on the validation images)
    C_grid: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)
    select_max_train: int | None = 10_000  # choose C on this many training images, then refit
    map_steps: int = 2  # χ² feature map samples (output 2·steps-1 times wider)
    n_components: int = 2000  # Nystroem landmarks (rbf, intersection maps)
    gamma: float | None = None  # RBF width
    svm_max_iter: int = 1000
    # execution and artefacts
    chunk_images: int = 2048  # images described and encoded together, at most
    memory_mib: int | None = None  # MiB for the chunks in flight (None: 1/32 of the machine's)
    # where the chunks of the two passes run: joblib's threads here (local), or joblib's
    # Dask backend over a Dask cluster (dask); auto: dask on a Dask worker while more
    # than one of the cluster's workers is free (bovw/streaming.py: chunk_executor)
    executor: Literal["auto", "local", "dask"] = "auto"
    gallery_words: int = 16  # words in the visual-word gallery (0: none)
    gallery_patches: int = 8  # patches per word

    def __post_init__(self) -> None:
        """Refuse bad settings now, before any image is read.

        Each stage's settings are checked by the stage's estimator itself
        (``check_params``, the check its ``fit`` runs), reported under the setting's
        name; here only what no estimator owns: the pipeline's own settings and
        settings that must agree with each other.
        """
        if self.preset not in self.PRESETS:
            raise ConfigError(unknown_name("preset", self.preset, self.PRESETS), key="preset")
        for estimator, settings in self._stages():
            try:
                estimator.check_params()
            except ParameterError as exc:
                raise exc.renamed(settings.get(exc.param, exc.param)) from None
        for name in ("vocab_images", "chunk_images", "memory_mib"):  # the pipeline's own
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {value}", key=name)
        if self.descriptor == "keypoint":
            for name, plain in (("colour", "gray"), ("polarity", "signed")):
                if getattr(self, name) != plain:
                    raise ConfigError(
                        f"{name}={getattr(self, name)} needs descriptor=dense "
                        f"(keypoint SIFT describes the gray image, {name}={plain})",
                        key=name,
                    )
        if self.kernel in ("chi2", "intersection") and self.encoding in ("vlad", "fisher"):
            raise ConfigError(
                f"kernel {self.kernel!r} needs non-negative histograms; "
                f"use kernel=linear or rbf with encoding={self.encoding}"
            )

    @classmethod
    def preset_for_images(cls, images: ImageSet) -> str:
        """The preset for these training images when none is named: ``small`` (tuned on
        28-px Fashion-MNIST) up to :attr:`SMALL_SIDE` px on the longer side, ``photo``
        (PHOW-like, as VLFeat's ``phow_caltech101``) above.
        """
        h, w, _ = images.image_shape
        return "small" if max(h, w) <= cls.SMALL_SIDE else "photo"

    def _stages(self) -> list[tuple[Any, dict[str, str]]]:
        """Each stage's estimator, unfitted, with its parameter → setting table."""
        extractor = make_extractor(self)
        table = _KEYPOINT_SETTINGS if isinstance(extractor, KeypointSift) else _DENSE_SETTINGS
        return [
            (extractor, table),
            (make_encoder(self, seed=0), _ENCODER_SETTINGS),
            (make_classifier(self, n_classes=None), _CLASSIFIER_SETTINGS),
        ]

    def subset(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The named settings, as a plain dict (a cache key)."""
        return {n: getattr(self, n) for n in names}


def _params(cfg: BovwConfig, settings: dict[str, str]) -> dict[str, Any]:
    """Estimator keyword arguments from ``cfg``: ``{parameter: cfg.<setting>}``."""
    return {param: getattr(cfg, setting) for param, setting in settings.items()}


def make_extractor(cfg: BovwConfig, n_jobs: int = 1) -> DenseSift | KeypointSift:
    """The descriptor stage of ``cfg``."""
    if cfg.descriptor == "keypoint":
        return KeypointSift(**_params(cfg, _KEYPOINT_SETTINGS), n_jobs=n_jobs)
    return DenseSift(**_params(cfg, _DENSE_SETTINGS), batch_size=256, n_jobs=n_jobs)


def make_encoder(cfg: BovwConfig, seed: int) -> SpatialPyramidEncoder:
    """The vocabulary + encoding stage of ``cfg``."""
    return SpatialPyramidEncoder(**_params(cfg, _ENCODER_SETTINGS), random_state=seed)


def make_classifier(cfg: BovwConfig, n_classes: int | None, n_jobs: int = 1) -> KernelSvm:
    """The SVM stage of ``cfg``."""
    return KernelSvm(**_params(cfg, _CLASSIFIER_SETTINGS), n_classes=n_classes, n_jobs=n_jobs)
