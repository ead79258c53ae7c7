"""SIFT descriptors: OpenCV's DoG keypoints, and dense SIFT on a grid (fast batched, or OpenCV).

``DenseSift`` follows VLFeat's ``vl_dsift``/``vl_phow`` (Vedaldi & Fulkerson, 2008;
descriptor of Lowe, IJCV 2004): on a regular grid, at one or several bin sizes,
a 4×4×8 histogram of gradient orientations with bilinear spatial and orientation
interpolation and a Gaussian window; patches of too low contrast give zero
descriptors. Its ``numpy`` backend computes whole batches of images at once:
smoothing, resizing and differentiation are matrix products on the image rows
and columns, orientation binning is one vectorised pass, and spatial pooling
is two more matrix products. The pooled cells, times each distinct window weight
(and square-rooted for RootSIFT), are then gathered into descriptors a few images
at a time, so that clipping and normalisation run in cache; descriptor norms and
contrasts come from per-cell sums. No scale space is built (unlike OpenCV's
``SIFT.compute``, kept as the ``opencv`` backend).

Differences from Lowe: no orientation assignment (dense descriptors are
upright), and the Gaussian smoothing is ``bin_size / magnif`` as in VLFeat.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, TransformerMixin
from threadpoolctl import threadpool_limits

from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.parameters import ParameterError, at_least, positive, positive_ints
from bovw_vs_convnet.errors import DataError

log = logging.getLogger(__name__)

SIFT_DIM = 128
# OpenCV's SIFT.compute weights samples with a fixed Gaussian window of σ = d/2 = 2 bins
# (``exp_scale = -1 / (d² / 2)`` in its calcSIFTDescriptor): Lowe's window, not settable
OPENCV_WINDOW = 2.0


def to_gray(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) or (N, H, W) images to float32 (N, H, W) gray levels in [0, 1]."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise DataError(f"expected images of shape (N, H, W, C), got {arr.shape}")
    scale = 1.0 / 255.0 if arr.dtype == np.uint8 else 1.0
    if arr.shape[-1] == 1:
        return arr[..., 0].astype(np.float32) * np.float32(scale)
    weights = np.array([0.299, 0.587, 0.114], np.float32) * np.float32(scale)
    out: np.ndarray = arr[..., :3].astype(np.float32) @ weights
    return out


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation with half-pixel centres (as cv2.INTER_LINEAR)."""
    if n_in == n_out:
        return np.eye(n_in, dtype=np.float64)
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    x = np.clip(x, 0, n_in - 1)
    i0 = np.floor(x).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = x - i0
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), i0] += 1 - w
    m[np.arange(n_out), i1] += w
    return m


def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) Gaussian smoothing with replicated borders; identity for sigma ≤ 0.1."""
    if sigma <= 0.1:
        return np.eye(n)
    r = math.ceil(4 * sigma)
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    m = np.zeros((n, n))
    for k, t in zip(range(-r, r + 1), taps, strict=True):
        idx = np.clip(np.arange(n) + k, 0, n - 1)
        m[np.arange(n), idx] += t
    return m


def _diff_matrix(n: int) -> np.ndarray:
    """(n, n) central difference (one-sided at the borders)."""
    m = np.zeros((n, n))
    i = np.arange(1, n - 1)
    m[i, i + 1] = 0.5
    m[i, i - 1] = -0.5
    if n > 1:
        m[0, 0], m[0, 1] = -1.0, 1.0
        m[n - 1, n - 1], m[n - 1, n - 2] = 1.0, -1.0
    return m


def grid_centres(n: int, bin_size: int, step: int) -> np.ndarray:
    """Descriptor centres along one axis of ``n`` pixels: the 4-bin patch inside, grid centred."""
    count = max(1, (n - 4 * bin_size) // step + 1)
    first = (n - 1) / 2 - (count - 1) * step / 2
    return first + step * np.arange(count)


def _sift_scale(
    raw: np.ndarray,
    contrast: np.ndarray,
    threshold: float,
    root: bool,
    norm: np.ndarray | None = None,
) -> np.ndarray:
    """In place on (M, 128) ``raw``: clip at 0.2 L2 norm (Lowe), and with ``root`` the
    square root; returns the (M,) factors that finish the normalisation (zero where
    contrast < threshold). ``norm``: the rows' L2 norms, when known already.
    """
    if norm is None:
        norm = np.sqrt(np.einsum("ij,ij->i", raw, raw))
    np.minimum(raw, (0.2 * norm)[:, None], out=raw)
    keep = contrast >= threshold
    if root:
        l1 = raw @ _ONES128  # (a BLAS product: much faster than .sum(axis=1) here)
        np.sqrt(raw, out=raw)
        scale = np.where(keep, 1.0 / np.sqrt(np.maximum(l1, 1e-12)), 0.0)
    else:
        norm = np.sqrt(np.einsum("ij,ij->i", raw, raw))
        scale = np.where(keep, 1.0 / np.maximum(norm, 1e-12), 0.0)
    return scale.astype(raw.dtype, copy=False)


def _normalise_sift(raw: np.ndarray, contrast: np.ndarray, threshold: float, root: bool) -> None:
    """In place: L2, clip at 0.2, L2 again (Lowe); zero where contrast < threshold; RootSIFT.

    With ``root`` the second L2 step is skipped: the L1 normalisation that
    follows makes it a no-op.
    """
    raw *= _sift_scale(raw, contrast, threshold, root)[:, None]


# Soft orientation binning by table: 64 angle steps (≤ 2.8° from exact interpolation),
# each row the bilinear weights of the two nearest of 8 orientation bins.
_N_ANGLES = 64
_ORIENT_TABLE = np.maximum(
    0.0,
    1.0
    - np.abs(((np.arange(_N_ANGLES)[:, None] * 8 / _N_ANGLES - np.arange(8)[None]) + 4) % 8 - 4),
).astype(np.float32)
_ORIENT_ROWS = np.ascontiguousarray(_ORIENT_TABLE).view(np.complex128)  # 8 floats = 4 items
_ONES8 = np.ones(8, np.float32)
_ONES128 = np.ones(SIFT_DIM, np.float32)


class _DenseGeometry:
    """Precomputed matrices of the numpy dense SIFT for one image size and bin size.

    Grid centres, bin size and smoothing are defined on the image upscaled by
    ``upscale``. With ``resample`` the image is resampled to that size first;
    without, the same grid is mapped back onto the original pixels (bins of
    ``bin_size / upscale`` pixels), which describes the same patches with
    ``upscale²`` times fewer pixels to bin.
    """

    def __init__(
        self,
        h: int,
        w: int,
        upscale: float,
        bin_size: int,
        step: int,
        magnif: float,
        window: float,
        resample: bool = False,
    ) -> None:
        self.h_out, self.w_out = round(h * upscale), round(w * upscale)
        ha, wa = (self.h_out, self.w_out) if resample else (h, w)  # analysis resolution
        sy, sx = self.h_out / ha, self.w_out / wa
        self.ha, self.wa = ha, wa
        sigma = bin_size / magnif / sy if magnif > 0 else 0.0
        ry = _gauss_matrix(ha, sigma) @ _resize_matrix(h, ha)
        rx = _gauss_matrix(wa, sigma) @ _resize_matrix(w, wa)
        self.ay = ry.astype(np.float32)  # (Ha, H) smooth∘resize along rows
        self.ax_t = rx.T.astype(np.float32)  # (W, Wa)
        # derivatives per upscaled pixel, so that contrast does not depend on ``resample``
        self.dy = (_diff_matrix(ha) @ ry / sy).astype(np.float32)
        self.dx_t = (_diff_matrix(wa) @ rx / sx).T.astype(np.float32)
        self.cy = grid_centres(self.h_out, bin_size, step)
        self.cx = grid_centres(self.w_out, bin_size, step)
        offs = (np.arange(4) - 1.5) * bin_size
        # spatial-bin centres shared by neighbouring descriptors are pooled once
        by, iy = np.unique(self.cy[:, None] + offs[None], return_inverse=True)
        bx, ix = np.unique(self.cx[:, None] + offs[None], return_inverse=True)
        iy, ix = iy.reshape(len(self.cy), 4), ix.reshape(len(self.cx), 4)
        # flat index into the (Uy * Ux) pooled map, in descriptor order (ny, nx, 4y, 4x)
        self.flat = (iy[:, None, :, None] * len(bx) + ix[None, :, None, :]).astype(np.intp)
        self.py = _tri_matrix(ha, (by + 0.5) / sy - 0.5, bin_size / sy).astype(np.float32)
        self.px_t = _tri_matrix(wa, (bx + 0.5) / sx - 0.5, bin_size / sx).T.astype(np.float32)
        # VLFeat's "fast" window: flat inside a bin, Gaussian weight of the bin centre
        g = np.exp(-0.5 * (offs / (window * bin_size)) ** 2)
        self.bin_weight = np.outer(g, g).astype(np.float32)  # (4y, 4x)
        # its few distinct values (3 for the symmetric window), and for each descriptor
        # bin the cell of the pooled map times its weight, stacked value after value
        self.weight_values, which = np.unique(self.bin_weight, return_inverse=True)
        n_cells = len(by) * len(bx)
        self.weighted_flat = (which.reshape(1, 1, 4, 4) * n_cells + self.flat).reshape(-1)
        # total window weight, to turn a descriptor's sum into a mean gradient magnitude
        self.weight = float(self.bin_weight.sum() * (bin_size / sy) * (bin_size / sx))
        gy, gx = np.meshgrid(self.cy, self.cx, indexing="ij")
        self.positions = np.stack(
            [(gx.ravel() + 0.5) / self.w_out, (gy.ravel() + 0.5) / self.h_out], axis=1
        ).astype(np.float32)
        self.n_desc = len(self.cy) * len(self.cx)
        self.bin_size = bin_size


def _tri_matrix(n: int, centres: np.ndarray, width: float) -> np.ndarray:
    """(len(centres), n) bilinear (triangular) pooling weights of bins centred at ``centres``."""
    pix = np.arange(n)[None, :]
    return np.maximum(0.0, 1.0 - np.abs(pix - centres[:, None]) / width)


# Images per pass of the per-descriptor steps (gather, clip, normalise): their
# (c, n_desc, 128) working array then stays in the L2 cache (~0.9 MB for 4 images
# of 441 descriptors) instead of streaming a whole batch through memory per step.
_POST_CHUNK = 4


def dense_sift_numpy(
    gray: np.ndarray,
    geo: _DenseGeometry,
    contrast_threshold: float,
    root: bool,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Dense SIFT of a batch: float32 (B, H, W) in [0, 1] → (B, n_desc, 128), vectorised.

    ``out``, when given, is a float32 (B, n_desc, 128) array (a view is fine) to fill.
    """
    b = gray.shape[0]
    gx = geo.ay @ gray @ geo.dx_t  # (B, Ha, Wa)
    gy = geo.dy @ gray @ geo.ax_t
    mag = np.sqrt(gx * gx + gy * gy)
    # image y grows downwards; angle counter-clockwise as in OpenCV's SIFT; arctan2 ≥ -π
    t = np.arctan2(-gy, gx)
    t *= np.float32(_N_ANGLES / (2 * math.pi))
    t += np.float32(_N_ANGLES + 0.5)
    q = t.astype(np.intp)
    q &= _N_ANGLES - 1
    o = np.take(_ORIENT_ROWS, q, axis=0).view(np.float32)  # (B, Ha, Wa, 8)
    o *= mag[..., None]
    p = geo.py @ o.reshape(b, geo.ha, geo.wa * 8)  # (B, Uy, Wa*8)
    # (a contiguous left operand: with the transposed view, numpy 2.4 / OpenBLAS 0.3.31
    # gave wrong products now and then when two threads ran batches of different sizes)
    pt = np.ascontiguousarray(p.reshape(b, -1, geo.wa, 8).transpose(0, 1, 3, 2)) @ geo.px_t
    uy, ux = pt.shape[1], pt.shape[3]
    n_cells = uy * ux
    # per cell: sum over orientations (in the order of numpy's pairwise sum of 8, so
    # that contrast is unchanged) and sum of squares
    o_ = [pt[:, :, k] for k in range(8)]
    cell_mag = ((o_[0] + o_[1]) + (o_[2] + o_[3])) + ((o_[4] + o_[5]) + (o_[6] + o_[7]))
    cell_mag = cell_mag.reshape(b, n_cells)
    cell_sq = (_ONES8 @ (pt * pt)).reshape(b, n_cells)
    # the pooled map, orientation last, times each distinct window weight, so that one
    # gather gives the weighted descriptors: raw[..., k, :] = w_k * p[cell_k]. RootSIFT
    # takes square roots after clipping, and sqrt(min(x, t)) = min(sqrt(x), sqrt(t)):
    # with ``root`` they are taken here, on the cells (~3× fewer values than descriptors)
    nw = len(geo.weight_values)
    pw = np.empty((b, nw * n_cells, 8), np.float32)
    cells = np.empty((b, uy, ux, 8), np.float32)
    if root:
        np.sqrt(pt.transpose(0, 1, 3, 2), out=cells)
        wv = np.sqrt(geo.weight_values)
    else:
        cells[...] = pt.transpose(0, 1, 3, 2)
        wv = geo.weight_values
    np.multiply(cells[:, None], wv[:, None, None, None], out=pw.reshape(b, nw, uy, ux, 8))
    flat = geo.flat.reshape(geo.n_desc, 16)
    wflat = geo.weighted_flat  # (n_desc * 16,) into pw's cells
    if out is None:
        out = np.empty((b, geo.n_desc, SIFT_DIM), np.float32)
    c = min(_POST_CHUNK, b)
    buf = np.empty((c, geo.n_desc * 16, 8), np.float32)
    inv_weight = 1.0 / geo.weight
    w16 = geo.bin_weight.reshape(16)
    w16_sq = w16 * w16
    for i in range(0, b, c):
        j = min(i + c, b)
        raw = buf[: j - i]
        np.take(pw[i:j], wflat, axis=1, out=raw, mode="clip")
        pooled_mag = np.take(cell_mag[i:j], flat, axis=1, mode="clip")  # (c, n_desc, 16)
        contrast = (pooled_mag.reshape(-1, 16) @ w16) * inv_weight
        norm2 = np.take(cell_sq[i:j], flat, axis=1, mode="clip").reshape(-1, 16) @ w16_sq
        raw2 = raw.reshape(-1, SIFT_DIM)
        if root:
            np.minimum(raw2, np.sqrt(0.2 * np.sqrt(norm2))[:, None], out=raw2)
            l1 = np.einsum("ij,ij->i", raw2, raw2)  # of the clipped values, before roots
            scale = np.where(
                contrast >= contrast_threshold, 1.0 / np.sqrt(np.maximum(l1, 1e-12)), 0.0
            ).astype(np.float32)
        else:
            scale = _sift_scale(raw2, contrast, contrast_threshold, root, np.sqrt(norm2))
        np.multiply(
            raw.reshape(j - i, geo.n_desc, SIFT_DIM),
            scale.reshape(j - i, geo.n_desc, 1),
            out=out[i:j],
        )
    return out


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


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
        big = cv2.resize(img, (w2, h2), interpolation=cv2.INTER_LINEAR) if upscale != 1 else img
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
            _normalise_sift(raw, contrast, contrast_threshold, root)
            per_size.append(raw)
        out.append(np.concatenate(per_size))
    return np.stack(out)


class DenseSift(TransformerMixin, BaseEstimator):
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
        batch_size: images per vectorised batch.
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
        self.batch_size = batch_size
        self.n_jobs = n_jobs

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for a parameter out of range (``fit`` calls it)."""
        positive_ints("bin_sizes", self.bin_sizes)
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

    def fit(self, images: Any = None, y: Any = None) -> DenseSift:
        """Validate the parameters (nothing is learned)."""
        self.check_params()
        return self

    def __sklearn_tags__(self) -> Any:
        """Stateless: ``transform`` needs no ``fit``."""
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags

    def _geometries(self, h: int, w: int) -> list[_DenseGeometry]:
        return [
            _DenseGeometry(
                h, w, self.upscale, int(b), self.step, self.magnif, self.window, self.resample
            )
            for b in self.bin_sizes
        ]

    def transform(self, images: np.ndarray) -> DescriptorSet:
        """Describe uint8 images (N, H, W[, C]); every image gets the same number of descriptors."""
        self.check_params()
        gray = to_gray(images)
        n, h, w = gray.shape
        geos = self._geometries(h, w)
        n_jobs = self.n_jobs if n > self.batch_size else 1
        per_image = sum(g.n_desc for g in geos)
        if self.backend == "numpy":
            values: np.ndarray = np.empty((n, per_image, SIFT_DIM), np.float32)
            starts = np.cumsum([0] + [g.n_desc for g in geos])

            def run(sl: slice) -> None:
                for g, s0 in zip(geos, starts, strict=False):
                    dense_sift_numpy(
                        gray[sl],
                        g,
                        self.contrast_threshold,
                        self.root,
                        out=values[sl, s0 : s0 + g.n_desc],
                    )

            with threadpool_limits(limits=1, user_api="blas"):
                Parallel(n_jobs=n_jobs, prefer="threads")(
                    delayed(run)(sl) for sl in _batches(n, self.batch_size)
                )
        else:
            gray_u8 = np.clip(np.round(gray * 255), 0, 255).astype(np.uint8)
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
        flat: np.ndarray = values.reshape(-1, SIFT_DIM)
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
        big = cv2.resize(img, (w2, h2), interpolation=cv2.INTER_LINEAR) if upscale != 1 else img
        kps, desc = sift.detectAndCompute(big, None)
        if desc is None or not kps:
            out.append(
                (np.zeros((0, SIFT_DIM), np.float32), np.zeros((0, 2), np.float32), np.zeros(0))
            )
            continue
        raw = desc.astype(np.float32)
        _normalise_sift(raw, np.ones(len(raw), np.float32), 0.0, root)
        pos = np.array([[(k.pt[0] + 0.5) / w2, (k.pt[1] + 0.5) / h2] for k in kps], np.float32)
        out.append((raw, np.clip(pos, 0, 0.999999), np.array([k.size for k in kps], np.float32)))
    return out


class KeypointSift(TransformerMixin, BaseEstimator):
    """OpenCV's DoG keypoints with SIFT descriptors (Lowe, IJCV 2004), via ``cv2.SIFT_create``.

    Small images find few keypoints (a 28×28 image ~4, often none), so they are
    upscaled first. An image with no keypoint yields an empty set, which later
    encodes to an all-zero histogram.

    Parameters:
        upscale: magnification before detection.
        n_features: keep at most this many keypoints per image (0: all).
        contrast_threshold, edge_threshold: OpenCV's detector thresholds.
        root: RootSIFT normalisation.
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
        batch_size: int = 256,
        n_jobs: int = 1,
    ) -> None:
        self.upscale = upscale
        self.n_features = n_features
        self.contrast_threshold = contrast_threshold
        self.edge_threshold = edge_threshold
        self.root = root
        self.batch_size = batch_size
        self.n_jobs = n_jobs

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for a parameter out of range (``fit`` calls it)."""
        positive("upscale", self.upscale)
        at_least("n_features", self.n_features, 0)
        at_least("batch_size", self.batch_size, 1)

    def fit(self, images: Any = None, y: Any = None) -> KeypointSift:
        """Validate the parameters (nothing is learned)."""
        self.check_params()
        return self

    def __sklearn_tags__(self) -> Any:
        """Stateless: ``transform`` needs no ``fit``."""
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags

    def transform(self, images: np.ndarray) -> DescriptorSet:
        """Detect and describe; images with no keypoint get zero descriptors."""
        self.check_params()
        gray_u8 = np.clip(np.round(to_gray(images) * 255), 0, 255).astype(np.uint8)
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
