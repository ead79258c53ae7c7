"""SIFT descriptor stages: dense SIFT on a grid (batched numpy or OpenCV) and DoG keypoints.

``DenseSift`` follows VLFeat's ``vl_dsift``/``vl_phow`` (Vedaldi & Fulkerson, 2008;
descriptor of Lowe, IJCV 2004); its ``numpy`` backend is
:func:`bovw_vs_convnet.bovw.dense_sift.dense_sift_numpy`, its ``opencv`` backend
OpenCV's ``SIFT.compute`` on the same grid. ``KeypointSift`` describes OpenCV's
DoG keypoints. Both are scikit-learn transformers from uint8 images to a
:class:`~bovw_vs_convnet.bovw.descriptors.DescriptorSet`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from threadpoolctl import ThreadpoolController

from bovw_vs_convnet.bovw.colour import COLOUR_CHANNELS, channels
from bovw_vs_convnet.bovw.dense_sift import (
    SIFT_DIM,
    DenseGeometry,
    dense_sift_numpy,
    grid_centres,
    normalise_sift,
    to_gray,
)
from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.estimators.parameters import ParameterError, at_least, positive, positive_ints

log = logging.getLogger(__name__)

# OpenCV's SIFT.compute weights samples with a fixed Gaussian window of σ = d/2 = 2 bins
# (``exp_scale = -1 / (d² / 2)`` in its calcSIFTDescriptor): Lowe's window, not settable
OPENCV_WINDOW = 2.0


# Bytes per analysed pixel of a numpy dense-SIFT batch: gradients, magnitude, angle (4 B
# each), angle bin (8 B), the 8 orientation planes (32 B), and their pooled maps
WORK_BYTES_PER_PIXEL = 64
# working memory of one dense-SIFT batch: batches hold fewer images as images grow
BATCH_BYTES = 64 << 20
# planning estimate of DoG keypoints: one per this many pixels (OpenCV finds ~300-3000 on
# a 300-px photograph upscaled ×2; 28-px digits ×4, a handful)
KEYPOINT_PIXELS = 100


@functools.lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    """threadpoolctl's view of the loaded BLAS libraries, found once: finding them reads the
    process's memory map (~5 ms), which images of many sizes (one batch each) paid per batch.
    """
    return ThreadpoolController()


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def shrunk_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) once an image whose longer side exceeds ``max_side`` is shrunk to it."""
    if max_side is None or max(h, w) <= max_side:
        return h, w
    f = max_side / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def shrink(gray: np.ndarray, max_side: int | None) -> np.ndarray:
    """float32 (N, H, W) gray images with the longer side shrunk to ``max_side`` (area
    averaging, OpenCV's ``INTER_AREA``), as VLFeat's ``phow_caltech101`` standardises
    its images before description; unchanged when they are no larger.
    """
    n, h, w = gray.shape
    h2, w2 = shrunk_size(h, w, max_side)
    if (h2, w2) == (h, w):
        return gray
    import cv2

    out = np.empty((n, h2, w2), np.float32)
    for i in range(n):
        out[i] = cv2.resize(gray[i], (w2, h2), interpolation=cv2.INTER_AREA)
    return out


def _to_uint8(gray: np.ndarray) -> np.ndarray:
    """float gray levels in [0, 1] back to uint8, as OpenCV's SIFT takes them."""
    return np.clip(np.round(gray * 255), 0, 255).astype(np.uint8)


def _upscaled(img: np.ndarray, upscale: float, size: tuple[int, int]) -> np.ndarray:
    """``img`` resized to ``size`` (width, height) bilinearly, unless ``upscale`` is 1."""
    import cv2

    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR) if upscale != 1 else img


def _opencv_dense_chunk(
    gray_u8: np.ndarray,
    upscale: float,
    bin_sizes: Sequence[int],
    step: int,
    magnif: float,
    contrast_threshold: float,
    root: bool,
) -> np.ndarray:
    """OpenCV ``SIFT.compute`` on the same grid as the numpy backend: (B, n_desc, 128).

    Its window is OpenCV's own (:data:`OPENCV_WINDOW`); ``magnif`` sets only the
    smoothing of the contrast measure, OpenCV smooths by the keypoint's scale.
    """
    import cv2

    cv2.setNumThreads(1)
    sift = cv2.SIFT.create()
    h, w = gray_u8.shape[1:]
    h2, w2 = round(h * upscale), round(w * upscale)
    out = []
    for img in gray_u8:
        big = _upscaled(img, upscale, (w2, h2))
        fbig = big.astype(np.float32) / 255.0
        per_size = []
        for bs in bin_sizes:
            cy, cx = grid_centres(h2, bs, step), grid_centres(w2, bs, step)
            # OpenCV's spatial bin is 3 * size / 2 pixels wide
            kps = [cv2.KeyPoint(float(x), float(y), bs / 1.5) for y in cy for x in cx]
            _, desc = sift.compute(big, kps)
            if desc is None or len(desc) != len(kps):
                raise DataError("OpenCV SIFT.compute dropped grid keypoints; use backend=numpy")
            sig = bs / magnif if magnif > 0 else 0
            sm = cv2.GaussianBlur(fbig, (0, 0), sig) if sig > 0.1 else fbig
            gy, gx = np.gradient(sm)
            mag = cv2.boxFilter(np.sqrt(gx * gx + gy * gy), -1, (4 * bs, 4 * bs))
            yy = np.clip(np.round(cy).astype(int), 0, h2 - 1)
            xx = np.clip(np.round(cx).astype(int), 0, w2 - 1)
            contrast = mag[np.ix_(yy, xx)].reshape(-1)
            raw = desc.astype(np.float32)
            normalise_sift(raw, contrast, contrast_threshold, root)
            per_size.append(raw)
        out.append(np.concatenate(per_size))
    return np.stack(out)


# The geometry of one image size and bin size, built once: a pass asks for one per chunk,
# and for 300-px images building one costs ~25 ms a bin size.
_geometry = functools.lru_cache(maxsize=32)(DenseGeometry)


class _StatelessTransformer(TransformerMixin, BaseEstimator):
    """A transformer that learns nothing: ``fit`` checks the parameters, ``transform``
    needs no ``fit``. Subclasses define ``check_params``.
    """

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for a parameter out of range (``fit`` calls it)."""
        raise NotImplementedError

    def fit(self, images: Any = None, y: Any = None) -> Self:
        """Validate the parameters (nothing is learned)."""
        self.check_params()
        return self

    def __sklearn_tags__(self) -> Any:
        """Stateless: ``transform`` needs no ``fit``."""
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class DenseSift(_StatelessTransformer):
    """Dense SIFT on a regular grid at one or several bin sizes (VLFeat's PHOW descriptors).

    Parameters:
        bin_sizes: side of one of the 4×4 spatial bins, in pixels of the upscaled
            image; one grid per size (PHOW uses 4, 6, 8, 10).
        step: grid step in pixels of the upscaled image.
        upscale: image magnification before description (2 for 28-px images).
        magnif: smoothing sigma is ``bin_size / magnif`` (VLFeat's default 6).
        window: Gaussian window sigma in bins (Lowe: 2, VLFeat: 1.5); the ``opencv``
            backend has Lowe's window built in and refuses another.
        contrast_threshold: patches whose mean gradient magnitude (gray in [0, 1])
            is below it give an all-zero descriptor.
        root: RootSIFT (Arandjelović & Zisserman 2012): L1 then square root.
        backend: ``numpy`` (batched, vectorised) or ``opencv`` (``SIFT.compute`` per image).
        resample: numpy backend only: resample the image to the upscaled size before
            taking gradients (exactly "upscale, then describe"); by default the grid
            is mapped onto the original pixels instead, ``upscale²`` times cheaper.
        max_side: images whose longer side exceeds it are shrunk to it first
            (:func:`shrink`), which bounds the descriptors per image; None: never.
        colour: the channels described (:mod:`bovw_vs_convnet.bovw.colour`): ``gray``
            (128 values), or a colour space of van de Sande et al. 2010, one SIFT
            per channel side by side (384): ``opponent``, ``rgb``, ``rg``, ``c``.
            numpy backend only.
        polarity: ``signed`` (Lowe's orientations over 2π) or ``unsigned``
            (modulo π): a shape light on dark and dark on light then give the same
            descriptor. numpy backend only.
        batch_size: at most this many images per vectorised batch (fewer for large
            images: a batch's working memory stays near :data:`BATCH_BYTES`).
        n_jobs: parallel workers (threads for numpy, processes for opencv).
    """

    def __init__(
        self,
        bin_sizes: Sequence[int] = (4,),
        step: int = 4,
        upscale: float = 1.0,
        magnif: float = 6.0,
        window: float = 2.0,
        contrast_threshold: float = 0.005,
        root: bool = True,
        backend: Literal["numpy", "opencv"] = "numpy",
        resample: bool = False,
        max_side: int | None = None,
        colour: str = "gray",
        polarity: str = "signed",
        batch_size: int = 128,
        n_jobs: int = 1,
    ) -> None:
        self.bin_sizes = bin_sizes
        self.step = step
        self.upscale = upscale
        self.magnif = magnif
        self.window = window
        self.contrast_threshold = contrast_threshold
        self.root = root
        self.backend = backend
        self.resample = resample
        self.max_side = max_side
        self.colour = colour
        self.polarity = polarity
        self.batch_size = batch_size
        self.n_jobs = n_jobs

    @property
    def dim(self) -> int:
        """Values of one descriptor: 128 per channel of ``colour``."""
        return SIFT_DIM * COLOUR_CHANNELS.get(self.colour, 1)

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for a parameter out of range (``fit`` calls it)."""
        positive_ints("bin_sizes", self.bin_sizes)
        if self.colour not in COLOUR_CHANNELS:
            known = ", ".join(repr(c) for c in COLOUR_CHANNELS)
            raise ParameterError("colour", f"must be one of {known}, got {self.colour!r}")
        if self.polarity not in ("signed", "unsigned"):
            raise ParameterError(
                "polarity", f"must be 'signed' or 'unsigned', got {self.polarity!r}"
            )
        if self.backend == "opencv":
            for name, plain in (("colour", "gray"), ("polarity", "signed")):
                if getattr(self, name) != plain:
                    raise ParameterError(
                        name, f"must be {plain!r} with the opencv backend; use backend=numpy"
                    )
        if self.max_side is not None:
            at_least("max_side", self.max_side, 1)
        at_least("step", self.step, 1)
        positive("upscale", self.upscale)
        at_least("magnif", self.magnif, 0)
        positive("window", self.window)
        at_least("batch_size", self.batch_size, 1)
        if self.backend not in ("numpy", "opencv"):
            raise ParameterError("backend", f"must be 'numpy' or 'opencv', got {self.backend!r}")
        if self.backend == "opencv" and self.window != OPENCV_WINDOW:
            raise ParameterError(
                "window",
                f"must be {OPENCV_WINDOW:g} with the opencv backend (OpenCV's SIFT has that "
                f"window built in), got {self.window!r}; the numpy backend takes any window",
            )

    def _geometries(self, h: int, w: int) -> list[DenseGeometry]:
        return [
            _geometry(
                h, w, self.upscale, int(b), self.step, self.magnif, self.window, self.resample
            )
            for b in self.bin_sizes
        ]

    def n_descriptors(self, h: int, w: int) -> int:
        """Descriptors of one image of ``h`` × ``w`` pixels (after :func:`shrink`)."""
        h, w = shrunk_size(h, w, self.max_side)
        h2, w2 = round(h * self.upscale), round(w * self.upscale)
        return sum(
            len(grid_centres(h2, int(b), self.step)) * len(grid_centres(w2, int(b), self.step))
            for b in self.bin_sizes
        )

    def _batch_images(self, h: int, w: int) -> int:
        """Images per batch: at most ``batch_size``, and a batch's working memory near
        :data:`BATCH_BYTES` (the numpy backend bins every analysed pixel 8 ways).
        """
        up = self.upscale if self.resample else 1.0
        pixels = round(h * up) * round(w * up)
        return int(max(1, min(self.batch_size, BATCH_BYTES // (pixels * WORK_BYTES_PER_PIXEL))))

    def _channels(self, images: np.ndarray) -> list[np.ndarray]:
        """The float32 (N, H, W) planes described, each shrunk to ``max_side``: the gray
        image as ever for plain SIFT, else the channels of ``colour`` centred on mid-gray
        (:func:`bovw_vs_convnet.bovw.colour.channels`).
        """
        if self.colour == "gray" and self.polarity == "signed":
            return [shrink(to_gray(images), self.max_side)]
        planes = channels(images, self.colour)
        return [
            shrink(np.ascontiguousarray(planes[:, c]), self.max_side)
            for c in range(planes.shape[1])
        ]

    def transform(self, images: np.ndarray) -> DescriptorSet:
        """Describe uint8 images (N, H, W[, C]); every image gets the same number of descriptors
        (of :attr:`dim` values: one 128-value SIFT per channel, side by side).
        """
        self.check_params()
        planes = self._channels(images)
        gray = planes[0]
        n, h, w = gray.shape
        geos = self._geometries(h, w)
        batch = self._batch_images(h, w)
        n_jobs = self.n_jobs if n > batch else 1
        per_image = sum(g.n_desc for g in geos)
        dim = SIFT_DIM * len(planes)
        if self.backend == "numpy":
            values: np.ndarray = np.empty((n, per_image, dim), np.float32)
            starts = np.cumsum([0] + [g.n_desc for g in geos])
            unsigned = self.polarity == "unsigned"

            def run(sl: slice) -> None:
                for g, s0 in zip(geos, starts, strict=False):
                    for c, plane in enumerate(planes):
                        dense_sift_numpy(
                            plane[sl],
                            g,
                            self.contrast_threshold,
                            self.root,
                            out=values[sl, s0 : s0 + g.n_desc, c * SIFT_DIM : (c + 1) * SIFT_DIM],
                            unsigned=unsigned,
                        )

            # sharedmem: run writes into values, which only threads share (under another
            # joblib backend, such as Dask's inside a chunk task, the writes were lost)
            with _blas_controller().limit(limits=1, user_api="blas"):
                Parallel(n_jobs=n_jobs, require="sharedmem")(
                    delayed(run)(sl) for sl in _batches(n, batch)
                )
        else:
            gray_u8 = _to_uint8(gray)
            parts = Parallel(n_jobs=n_jobs)(
                delayed(_opencv_dense_chunk)(
                    gray_u8[sl],
                    self.upscale,
                    [int(b) for b in self.bin_sizes],
                    self.step,
                    self.magnif,
                    self.contrast_threshold,
                    self.root,
                )
                for sl in _batches(n, max(self.batch_size, 256))
            )
            values = np.concatenate(parts) if parts else np.zeros((0, per_image, SIFT_DIM))
        flat: np.ndarray = values.reshape(-1, dim)
        pos = np.concatenate([g.positions for g in geos])
        scales = np.concatenate([np.full(g.n_desc, 4.0 * g.bin_size, np.float32) for g in geos])
        return DescriptorSet(
            values=flat.astype(np.float32, copy=False),
            positions=np.tile(pos, (n, 1)),
            offsets=np.arange(n + 1, dtype=np.int64) * per_image,
            scales=np.tile(scales, n),
        )


def _keypoint_chunk(
    gray_u8: np.ndarray, upscale: float, n_features: int, contrast: float, edge: float, root: bool
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    import cv2

    cv2.setNumThreads(1)
    sift = cv2.SIFT.create(nfeatures=n_features, contrastThreshold=contrast, edgeThreshold=edge)
    out = []
    h, w = gray_u8.shape[1:]
    h2, w2 = round(h * upscale), round(w * upscale)
    for img in gray_u8:
        big = _upscaled(img, upscale, (w2, h2))
        kps, desc = sift.detectAndCompute(big, None)
        if desc is None or not kps:
            out.append(
                (np.zeros((0, SIFT_DIM), np.float32), np.zeros((0, 2), np.float32), np.zeros(0))
            )
            continue
        raw = desc.astype(np.float32)
        normalise_sift(raw, np.ones(len(raw), np.float32), 0.0, root)
        pos = np.array([[(k.pt[0] + 0.5) / w2, (k.pt[1] + 0.5) / h2] for k in kps], np.float32)
        out.append((raw, np.clip(pos, 0, 0.999999), np.array([k.size for k in kps], np.float32)))
    return out


class KeypointSift(_StatelessTransformer):
    """OpenCV's DoG keypoints with SIFT descriptors (Lowe, IJCV 2004), via ``cv2.SIFT_create``.

    Small images find few keypoints (a 28×28 image ~4, often none), so they are
    upscaled first. An image with no keypoint yields an empty set, which later
    encodes to an all-zero histogram.

    Parameters:
        upscale: magnification before detection.
        n_features: keep at most this many keypoints per image (0: all).
        contrast_threshold, edge_threshold: OpenCV's detector thresholds.
        root: RootSIFT normalisation.
        max_side: images whose longer side exceeds it are shrunk to it first
            (:func:`shrink`); None: never.
        batch_size: images per worker task.
        n_jobs: worker processes.
    """

    def __init__(
        self,
        upscale: float = 4.0,
        n_features: int = 0,
        contrast_threshold: float = 0.04,
        edge_threshold: float = 10.0,
        root: bool = True,
        max_side: int | None = None,
        batch_size: int = 256,
        n_jobs: int = 1,
    ) -> None:
        self.upscale = upscale
        self.n_features = n_features
        self.contrast_threshold = contrast_threshold
        self.edge_threshold = edge_threshold
        self.root = root
        self.max_side = max_side
        self.batch_size = batch_size
        self.n_jobs = n_jobs

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for a parameter out of range (``fit`` calls it)."""
        positive("upscale", self.upscale)
        at_least("n_features", self.n_features, 0)
        if self.max_side is not None:
            at_least("max_side", self.max_side, 1)
        at_least("batch_size", self.batch_size, 1)

    def n_descriptors(self, h: int, w: int) -> int:
        """A planning estimate of one image's keypoints: ``n_features`` when set, else one
        per :data:`KEYPOINT_PIXELS` pixels of the upscaled image (DoG finds a varying
        number; this is what memory is planned for, not a limit).
        """
        if self.n_features > 0:
            return int(self.n_features)
        h, w = shrunk_size(h, w, self.max_side)
        return max(1, round(h * self.upscale) * round(w * self.upscale) // KEYPOINT_PIXELS)

    def transform(self, images: np.ndarray) -> DescriptorSet:
        """Detect and describe; images with no keypoint get zero descriptors."""
        self.check_params()
        gray_u8 = _to_uint8(shrink(to_gray(images), self.max_side))
        n = len(gray_u8)
        chunks = Parallel(n_jobs=self.n_jobs if n > self.batch_size else 1)(
            delayed(_keypoint_chunk)(
                gray_u8[sl],
                self.upscale,
                self.n_features,
                self.contrast_threshold,
                self.edge_threshold,
                self.root,
            )
            for sl in _batches(n, self.batch_size)
        )
        items = [it for ch in chunks for it in ch]
        return DescriptorSet.from_lists(
            [v for v, _, _ in items], [p for _, p, _ in items], [s for _, _, s in items], SIFT_DIM
        )
