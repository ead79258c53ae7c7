"""Dense SIFT in batched numpy: the ``numpy`` backend of ``bovw.sift.DenseSift``.

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

Images of :data:`FILTER_MIN_SIDE` px or more on their shorter side, described at their
own size (no resampling), are smoothed by a separable filter instead
(``cv2.sepFilter2D``, the same Gaussian taps and replicated borders) and differentiated
by differences of neighbouring pixels: O(n²·r) rather than the O(n³) of the matrix
products, which then dominate (a 300-px photograph, each image its own size). The
values agree with the products to float32 rounding; smaller images (Fashion-MNIST,
CIFAR, glyphs) and resampled ones take the products.

Differences from Lowe: no orientation assignment (dense descriptors are
upright), and the Gaussian smoothing is ``bin_size / magnif`` as in VLFeat.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from bovw_vs_convnet.errors import DataError

SIFT_DIM = 128
# shorter side (px) from which gradients come from a separable filter, not matrix products
FILTER_MIN_SIDE = 96
# pooling axes kept (each ~0.1 MB for a 300-px side, so at most ~65 MB): the sides and bin
# sizes of a folder of photographs of every size (151 sides × 4 bin sizes for 150–300 px)
POOL_AXES_CACHED = 640


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


def _gauss_taps(sigma: float) -> np.ndarray:
    """The normalised Gaussian taps of :func:`_gauss_matrix` (radius ``ceil(4 sigma)``)."""
    r = math.ceil(4 * sigma)
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return taps / taps.sum()


def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) Gaussian smoothing with replicated borders; identity for sigma ≤ 0.1."""
    if sigma <= 0.1:
        return np.eye(n)
    r = math.ceil(4 * sigma)
    taps = _gauss_taps(sigma)
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


def _diff_rows(m: np.ndarray) -> np.ndarray:
    """``_diff_matrix(len(m)) @ m`` in O(n²) instead of a dense product (the same values:
    products by ±0.5 and ±1 are exact, so one subtraction rounds as the product's sum).
    """
    out = np.empty_like(m)
    n = len(m)
    if n == 1:
        out[0] = 0.0
        return out
    out[1:-1] = 0.5 * m[2:] - 0.5 * m[:-2]
    out[0] = m[1] - m[0]
    out[-1] = m[-1] - m[-2]
    return out


def _smooth_resize(n_in: int, n_out: int, sigma: float) -> np.ndarray:
    """``_gauss_matrix(n_out, sigma) @ _resize_matrix(n_in, n_out)``, with no product by an
    identity matrix when the sizes are equal (the same values: a product by 1 is exact).
    Built once per image side, so images of many sizes cost little each.
    """
    g = _gauss_matrix(n_out, sigma)
    return g if n_in == n_out else g @ _resize_matrix(n_in, n_out)


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


def normalise_sift(raw: np.ndarray, contrast: np.ndarray, threshold: float, root: bool) -> None:
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


class DenseGeometry:
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
        self.sy, self.sx = sy, sx
        # large images at their own size: a separable filter (see the module docstring)
        self.filtered = (ha, wa) == (h, w) and min(h, w) >= FILTER_MIN_SIDE
        self.taps = _gauss_taps(sigma).astype(np.float32) if sigma > 0.1 else None
        if not self.filtered:
            ry = _smooth_resize(h, ha, sigma)
            rx = _smooth_resize(w, wa, sigma)
            self.ay = ry.astype(np.float32)  # (Ha, H) smooth∘resize along rows
            self.ax_t = rx.T.astype(np.float32)  # (W, Wa)
            # derivatives per upscaled pixel, so that contrast does not depend on ``resample``
            self.dy = (_diff_rows(ry) / sy).astype(np.float32)
            self.dx_t = (_diff_rows(rx) / sx).T.astype(np.float32)
        offs = (np.arange(4) - 1.5) * bin_size
        # per axis (cached: images of many sizes share their sides): grid centres, the
        # spatial-bin centres shared by neighbouring descriptors (pooled once), each
        # descriptor's 4 bins among them, and the pooling matrix
        self.cy, by, iy, self.py = _pool_axis(self.h_out, ha, bin_size, step)
        self.cx, bx, ix, py_x = _pool_axis(self.w_out, wa, bin_size, step)
        self.px_t = py_x.T  # (Wa, Ux), a transposed view (Fortran order)
        # flat index into the (Uy * Ux) pooled map, in descriptor order (ny, nx, 4y, 4x)
        self.flat = (iy[:, None, :, None] * len(bx) + ix[None, :, None, :]).astype(np.intp)
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


@functools.lru_cache(maxsize=POOL_AXES_CACHED)
def _pool_axis(
    n_out: int, n_a: int, bin_size: int, step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One axis of a :class:`DenseGeometry`: descriptor centres (px of the upscaled side
    ``n_out``), the distinct spatial-bin centres, each descriptor's 4 bins among them
    (int (n, 4)) and the float32 (U, n_a) pooling matrix on the ``n_a`` analysed pixels.
    Read-only: shared by every geometry with this side.
    """
    s = n_out / n_a
    centres = grid_centres(n_out, bin_size, step)
    offs = (np.arange(4) - 1.5) * bin_size
    bins, inverse = np.unique(centres[:, None] + offs[None], return_inverse=True)
    pool = _tri_matrix(n_a, (bins + 0.5) / s - 0.5, bin_size / s).astype(np.float32)
    out = (centres, bins, inverse.reshape(len(centres), 4), pool)
    for a in out:
        a.flags.writeable = False
    return out


def _tri_matrix(n: int, centres: np.ndarray, width: float) -> np.ndarray:
    """(len(centres), n) bilinear (triangular) pooling weights of bins centred at ``centres``."""
    pix = np.arange(n)[None, :]
    return np.maximum(0.0, 1.0 - np.abs(pix - centres[:, None]) / width)


# Images per pass of the per-descriptor steps (gather, clip, normalise): their
# (c, n_desc, 128) working array then stays in the L2 cache (~0.9 MB for 4 images
# of 441 descriptors) instead of streaming a whole batch through memory per step.
_POST_CHUNK = 4


def _filtered_gradients(gray: np.ndarray, geo: DenseGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(gx, gy) of a batch of float32 (B, H, W) images by a separable Gaussian filter and
    central differences (one-sided at the borders), per upscaled pixel: what the matrix
    products of :class:`DenseGeometry` compute, in O(n²·r).
    """
    import cv2

    b, h, w = gray.shape
    gx = np.empty((b, h, w), np.float32)
    gy = np.empty((b, h, w), np.float32)
    for i in range(b):
        if geo.taps is None:
            sm = gray[i]
        else:
            sm = cv2.sepFilter2D(
                gray[i], cv2.CV_32F, geo.taps, geo.taps, borderType=cv2.BORDER_REPLICATE
            )
        _diff_axis(sm, 1, gx[i])
        _diff_axis(sm, 0, gy[i])
    if geo.sx != 1:
        gx /= np.float32(geo.sx)
    if geo.sy != 1:
        gy /= np.float32(geo.sy)
    return gx, gy


def _diff_axis(m: np.ndarray, axis: int, out: np.ndarray) -> None:
    """Central differences of 2-d ``m`` along ``axis`` into ``out`` (one-sided at the ends)."""
    a = np.moveaxis(m, axis, 0)
    o = np.moveaxis(out, axis, 0)
    if a.shape[0] == 1:
        o[...] = 0.0
        return
    np.subtract(a[2:], a[:-2], out=o[1:-1])
    o[1:-1] *= np.float32(0.5)
    o[0] = a[1] - a[0]
    o[-1] = a[-1] - a[-2]


def dense_sift_numpy(
    gray: np.ndarray,
    geo: DenseGeometry,
    contrast_threshold: float,
    root: bool,
    out: np.ndarray | None = None,
    unsigned: bool = False,
) -> np.ndarray:
    """Dense SIFT of a batch: float32 (B, H, W) in [0, 1] → (B, n_desc, 128), vectorised.

    ``out``, when given, is a float32 (B, n_desc, 128) array (a view is fine) to fill.
    ``unsigned``: orientations modulo π (:func:`_folded`), so that a light shape on a
    dark ground and the same shape dark on light give the same descriptor.
    """
    b = gray.shape[0]
    pooled = _pooled_orientations(gray, geo, unsigned)  # (B, Uy, 8, Ux)
    cell_mag, cell_sq = _cell_sums(pooled)  # (B, Uy * Ux) each
    weighted = _weighted_cells(pooled, geo, root)  # (B, n_weights * Uy * Ux, 8)
    if out is None:
        out = np.empty((b, geo.n_desc, SIFT_DIM), np.float32)
    c = min(_POST_CHUNK, b)
    buf = np.empty((c, geo.n_desc * 16, 8), np.float32)
    for i in range(0, b, c):
        j = min(i + c, b)
        _gather_descriptors(
            weighted[i:j],
            cell_mag[i:j],
            cell_sq[i:j],
            geo,
            contrast_threshold,
            root,
            buf[: j - i],
            out[i:j],
        )
    return out


def _folded(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients turned by π where needed so that each points right (gx > 0), or up when
    vertical (gx = 0, gy ≤ 0): the orientation modulo π. A gradient and its negative
    fold to the same values exactly (only signs change), so an image and its negative
    give the same descriptors.
    """
    flip = (gx < 0) | ((gx == 0) & (gy > 0))
    return np.where(flip, -gx, gx), np.where(flip, -gy, gy)


def _pooled_orientations(gray: np.ndarray, geo: DenseGeometry, unsigned: bool) -> np.ndarray:
    """Gradient magnitudes binned by orientation and pooled over the spatial-bin centres:
    float32 (B, Uy, 8, Ux) from a batch of float32 (B, H, W) images. ``unsigned``: the
    orientation modulo π (8 bins of 22.5°), blind to contrast polarity.
    """
    b = gray.shape[0]
    if geo.filtered:
        gx, gy = _filtered_gradients(gray, geo)  # (B, H, W)
    else:
        gx = geo.ay @ gray @ geo.dx_t  # (B, Ha, Wa)
        gy = geo.dy @ gray @ geo.ax_t
    mag = np.sqrt(gx * gx + gy * gy)
    if unsigned:
        gx, gy = _folded(gx, gy)
    # image y grows downwards; angle counter-clockwise as in OpenCV's SIFT; arctan2 ≥ -π
    t = np.arctan2(-gy, gx)
    # unsigned: the folded angle is in [-π/2, π/2]; the 8 bins then span π, not 2π
    t *= np.float32(_N_ANGLES / (math.pi if unsigned else 2 * math.pi))
    t += np.float32(_N_ANGLES + 0.5)
    q = t.astype(np.intp)
    q &= _N_ANGLES - 1
    o = np.take(_ORIENT_ROWS, q, axis=0).view(np.float32)  # (B, Ha, Wa, 8)
    o *= mag[..., None]
    p = geo.py @ o.reshape(b, geo.ha, geo.wa * 8)  # (B, Uy, Wa*8)
    # (a contiguous left operand: with the transposed view, numpy 2.4 / OpenBLAS 0.3.31
    # gave wrong products now and then when two threads ran batches of different sizes)
    pooled: np.ndarray = (
        np.ascontiguousarray(p.reshape(b, -1, geo.wa, 8).transpose(0, 1, 3, 2)) @ geo.px_t
    )
    return pooled


def _cell_sums(pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of the (B, Uy, 8, Ux) pooled map: the sum over orientations and the sum of
    squares, each (B, Uy * Ux).
    """
    b, uy, _, ux = pooled.shape
    # in the order of numpy's pairwise sum of 8, so that contrast is unchanged
    o_ = [pooled[:, :, k] for k in range(8)]
    cell_mag = ((o_[0] + o_[1]) + (o_[2] + o_[3])) + ((o_[4] + o_[5]) + (o_[6] + o_[7]))
    cell_sq = _ONES8 @ (pooled * pooled)
    return cell_mag.reshape(b, uy * ux), cell_sq.reshape(b, uy * ux)


def _weighted_cells(pooled: np.ndarray, geo: DenseGeometry, root: bool) -> np.ndarray:
    """The pooled map, orientation last, times each distinct window weight: float32
    (B, n_weights * Uy * Ux, 8), so that one gather (``geo.weighted_flat``) gives the
    weighted descriptors: ``raw[..., k, :] = w_k * p[cell_k]``.

    RootSIFT takes square roots after clipping, and sqrt(min(x, t)) = min(sqrt(x), sqrt(t)):
    with ``root`` they are taken here, on the cells (~3× fewer values than descriptors).
    """
    b, uy, _, ux = pooled.shape
    nw = len(geo.weight_values)
    weighted = np.empty((b, nw * uy * ux, 8), np.float32)
    cells = np.empty((b, uy, ux, 8), np.float32)
    if root:
        np.sqrt(pooled.transpose(0, 1, 3, 2), out=cells)
        wv = np.sqrt(geo.weight_values)
    else:
        cells[...] = pooled.transpose(0, 1, 3, 2)
        wv = geo.weight_values
    np.multiply(cells[:, None], wv[:, None, None, None], out=weighted.reshape(b, nw, uy, ux, 8))
    return weighted


def _gather_descriptors(
    weighted: np.ndarray,
    cell_mag: np.ndarray,
    cell_sq: np.ndarray,
    geo: DenseGeometry,
    contrast_threshold: float,
    root: bool,
    buf: np.ndarray,
    out: np.ndarray,
) -> None:
    """Into ``out`` (c, n_desc, 128): the descriptors of c images (at most
    :data:`_POST_CHUNK`), gathered from their weighted cells into ``buf``, clipped and
    normalised; norms and contrasts come from the per-cell sums.
    """
    c = len(out)
    flat = geo.flat.reshape(geo.n_desc, 16)
    w16 = geo.bin_weight.reshape(16)
    np.take(weighted, geo.weighted_flat, axis=1, out=buf, mode="clip")
    pooled_mag = np.take(cell_mag, flat, axis=1, mode="clip")  # (c, n_desc, 16)
    contrast = (pooled_mag.reshape(-1, 16) @ w16) * (1.0 / geo.weight)
    norm2 = np.take(cell_sq, flat, axis=1, mode="clip").reshape(-1, 16) @ (w16 * w16)
    raw = buf.reshape(-1, SIFT_DIM)
    if root:
        np.minimum(raw, np.sqrt(0.2 * np.sqrt(norm2))[:, None], out=raw)
        l1 = np.einsum("ij,ij->i", raw, raw)  # of the clipped values, before roots
        scale = np.where(
            contrast >= contrast_threshold, 1.0 / np.sqrt(np.maximum(l1, 1e-12)), 0.0
        ).astype(np.float32)
    else:
        scale = _sift_scale(raw, contrast, contrast_threshold, root, np.sqrt(norm2))
    np.multiply(buf.reshape(c, geo.n_desc, SIFT_DIM), scale.reshape(c, geo.n_desc, 1), out=out)
