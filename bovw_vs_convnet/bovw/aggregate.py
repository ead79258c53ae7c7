"""VLAD and Fisher vectors per spatial-pyramid cell, from the cells' assignment moments.

Both encodings are linear in three sums over the descriptors ``x`` of a cell with
weights ``q`` (hard one-hot assignments for VLAD, GMM posteriors for Fisher):

    S0[k] = Σ q_ik,   S1[k] = Σ q_ik x_i,   S2[k] = Σ q_ik x_i²  (element-wise)

VLAD (Jégou et al. 2010; VLFeat ``vl_vlad``) is ``v_k = S1[k] - S0[k] μ_k``, with
``intra`` each ``v_k`` L2-normalised on its own (VLFeat's ``NormalizeComponents``;
Arandjelović and Zisserman 2013). The Fisher vector (Perronnin, Sánchez and
Mensink 2010; VLFeat ``vl_fisher``) of a cell of ``N`` descriptors is

    u_k = (S1[k] - S0[k] μ_k) / (σ_k N √π_k)
    v_k = ((S2[k] - 2 μ_k S1[k] + μ_k² S0[k]) / σ_k² - S0[k]) / (N √(2 π_k))

laid out ``[u_1 … u_K, v_1 … v_K]`` as VLFeat does. The sums are batched matrix
products over the cells' descriptors (zero-padded to the longest cell), a block of
cells at a time, in float64 so that the expanded variance term keeps its digits.
The power and L2 normalisations that make them "improved" are the encoder's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

# entries of the float64 moments' temporaries per block (the memory plan's allowance)
CELL_BLOCK = 1 << 22
# rows gathered together for the moments' products (a few MiB: cache-sized)
MOMENT_ROWS = 8192
# rows per block of the GMM posteriors (float64 (rows, k) and (rows, D) temporaries)
POSTERIOR_ROWS = 16384


def gmm_posteriors(
    x: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """Posterior of each diagonal Gaussian for each row of ``x``: float32 (M, k).

    ``log π_k + log N(x; μ_k, diag σ_k²)``, normalised by a log-sum-exp per row;
    the quadratic form is expanded into matrix products, in float64 (its terms are
    large and nearly cancel) and by blocks of :data:`POSTERIOR_ROWS` rows.
    """
    prec = 1.0 / np.asarray(variances, np.float64)  # (k, D)
    mu = np.asarray(means, np.float64)
    const = (
        np.log(np.asarray(weights, np.float64))
        - 0.5 * np.log(np.asarray(variances, np.float64)).sum(axis=1)
        - 0.5 * mu.shape[1] * math.log(2 * math.pi)
        - 0.5 * (mu * mu * prec).sum(axis=1)
    )
    lin = (mu * prec).T  # (D, k)
    out = np.empty((len(x), len(mu)), np.float32)
    for s in range(0, len(x), POSTERIOR_ROWS):
        xb = np.asarray(x[s : s + POSTERIOR_ROWS], np.float64)
        ll = xb @ lin - 0.5 * ((xb * xb) @ prec.T) + const
        ll -= ll.max(axis=1, keepdims=True)
        np.exp(ll, out=ll)
        ll /= ll.sum(axis=1, keepdims=True)
        out[s : s + POSTERIOR_ROWS] = ll
    return out


def add_cell_moments(
    x: np.ndarray,
    q: np.ndarray,
    keys: np.ndarray,
    s0: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray | None,
) -> None:
    """Add each group's ``S0`` (G, k), ``S1`` (G, k, D) and ``S2`` (G, k, D, if given).

    ``keys`` (M,) is each row's group in ``0 .. G - 1`` (one image's cell). One
    float32 matrix product per group, ``q_gᵀ [x_g, x_g²]``, summed into the float64
    moments: a Python loop over groups of BLAS calls runs several times faster than
    NumPy's batched ``matmul`` on these small matrices.
    """
    if len(x) == 0:
        return
    order = np.argsort(keys, kind="stable")
    present, starts, lengths = np.unique(keys[order], return_index=True, return_counts=True)
    ends = starts + lengths
    d = x.shape[1]
    # blocks of whole groups, about MOMENT_ROWS rows each, gathered in sorted order:
    # small enough to stay in cache for their products
    first = 0
    while first < len(present):
        last = max(first + 1, int(np.searchsorted(ends, starts[first] + MOMENT_ROWS, "right")))
        a, b = int(starts[first]), int(ends[last - 1])
        rows = order[a:b]
        xb = x[rows]
        if s2 is not None:
            xb = np.concatenate([xb, xb * xb], axis=1)
        qb = q[rows]
        qt = np.ascontiguousarray(qb.T)  # (k, rows): a group's block is a column slice
        groups = present[first:last]
        s0[groups] += np.add.reduceat(qb, starts[first:last] - a, axis=0)
        for g, lo, hi in zip(
            groups.tolist(),
            (starts[first:last] - a).tolist(),
            (ends[first:last] - a).tolist(),
            strict=True,
        ):
            prod = qt[:, lo:hi] @ xb[lo:hi]
            s1[g] += prod[:, :d]
            if s2 is not None:
                s2[g] += prod[:, d:]
        first = last


def _nested_cells(levels: Sequence[int]) -> dict[int, tuple[int, np.ndarray]]:
    """For each level that divides a finer one: that finer level's position and, for
    each of its cells (row-major), the coarser cell it falls in (offset included)."""
    offsets = np.cumsum([0, *[lev * lev for lev in levels]])
    out: dict[int, tuple[int, np.ndarray]] = {}
    for j, lev in enumerate(levels):
        finer = [f for f, fl in enumerate(levels) if fl > lev and fl % lev == 0]
        if not finer:
            continue
        f = max(finer, key=lambda i: levels[i])
        fl = levels[f]
        rows, cols = np.divmod(np.arange(fl * fl), fl)
        parent = offsets[j] + (rows // (fl // lev)) * lev + cols // (fl // lev)
        out[j] = (f, parent)
    return out


def pyramid_moments(
    x: np.ndarray,
    q: np.ndarray,
    cells: np.ndarray,
    img: np.ndarray,
    n: int,
    n_cell: int,
    second: bool,
    levels: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The moments of every (image, cell) of every level, and each one's descriptor count.

    Groups are numbered ``image * n_cell + cell``. Only the levels no finer level
    nests are summed over the descriptors; a nested level's cells (1×1 in 2×2, 2×2 in
    4×4) are the sums of the finer cells inside them.
    """
    g = n * n_cell
    s0, s1 = np.zeros((g, q.shape[1])), np.zeros((g, q.shape[1], x.shape[1]))
    s2 = np.zeros_like(s1) if second else None
    counts = np.zeros(g)
    nested = _nested_cells(levels)
    offsets = np.cumsum([0, *[lev * lev for lev in levels]])
    for j in range(len(levels)):
        if j not in nested:
            keys = img * n_cell + cells[:, j]
            add_cell_moments(x, q, keys, s0, s1, s2)
            counts += np.bincount(keys, minlength=g)
    for j in sorted(nested, key=lambda i: -levels[i]):  # finest first: chains (1 in 2 in 4)
        f, parent = nested[j]
        for arr in (s0, s1, s2, counts):
            if arr is None:
                continue
            per_image = arr.reshape(n, n_cell, *arr.shape[1:])
            fine = per_image[:, offsets[f] : offsets[f] + len(parent)]
            for cell in range(offsets[j], offsets[j] + levels[j] ** 2):
                per_image[:, cell] = fine[:, parent == cell].sum(axis=1)
    return s0, s1, s2, counts


def vlad_from_moments(s0: np.ndarray, s1: np.ndarray, means: np.ndarray, intra: bool) -> np.ndarray:
    """(G, k·D) VLAD of each group: residual sums, each word's block L2-normalised
    with ``intra``.
    """
    v = s1 - s0[:, :, None] * np.asarray(means, np.float64)[None]
    if intra:
        norms = np.sqrt((v * v).sum(axis=2, keepdims=True))
        v /= np.maximum(norms, 1e-12)
    return v.reshape(len(v), -1)


def fisher_from_moments(
    s0: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    counts: np.ndarray,
    gmm: Any,
) -> np.ndarray:
    """(G, 2·k·D) Fisher vector of each group (``[u_1 … u_K, v_1 … v_K]``, unnormalised)."""
    mu = np.asarray(gmm.means_, np.float64)[None]
    var = np.asarray(gmm.covariances_, np.float64)[None]
    prior = np.asarray(gmm.weights_, np.float64)[None, :, None]
    n = np.maximum(counts, 1.0)[:, None, None]
    s0e = s0[:, :, None]
    u = (s1 - s0e * mu) / np.sqrt(var) / (n * np.sqrt(prior))
    v = ((s2 - 2 * mu * s1 + mu * mu * s0e) / var - s0e) / (n * np.sqrt(2 * prior))
    return np.concatenate([u, v], axis=1).reshape(len(s0), -1)
