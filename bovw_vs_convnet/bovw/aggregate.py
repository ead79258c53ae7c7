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
from collections.abc import Iterator
from typing import Any

import numpy as np

# entries of one padded block of cells (float64): 32 MiB
CELL_BLOCK = 1 << 22
# rows per block of the GMM posteriors (float64 (rows, k) and (rows, D) temporaries)
POSTERIOR_ROWS = 16384


def gmm_posteriors(
    x: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """Posterior of each diagonal Gaussian for each row of ``x``: float64 (M, k).

    ``log π_k + log N(x; μ_k, diag σ_k²)``, normalised by a log-sum-exp per row;
    the quadratic form is expanded into matrix products, in float64 and by blocks
    of :data:`POSTERIOR_ROWS` rows.
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
    out = np.empty((len(x), len(mu)), np.float64)
    for s in range(0, len(x), POSTERIOR_ROWS):
        xb = np.asarray(x[s : s + POSTERIOR_ROWS], np.float64)
        ll = xb @ lin - 0.5 * ((xb * xb) @ prec.T) + const
        ll -= ll.max(axis=1, keepdims=True)
        np.exp(ll, out=ll)
        ll /= ll.sum(axis=1, keepdims=True)
        out[s : s + POSTERIOR_ROWS] = ll
    return out


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by key, and each present key with its start and length in that order."""
    order = np.argsort(keys, kind="stable")
    present, starts, lengths = np.unique(keys[order], return_index=True, return_counts=True)
    return order, present, starts, lengths


def _blocks(lengths: np.ndarray, width: int) -> Iterator[slice]:
    """Consecutive segments whose padded block holds at most :data:`CELL_BLOCK` entries."""
    longest = int(lengths.max()) if len(lengths) else 1
    per = max(1, CELL_BLOCK // max(longest * width, 1))
    for s in range(0, len(lengths), per):
        yield slice(s, s + per)


def add_cell_moments(
    x: np.ndarray,
    q: np.ndarray,
    keys: np.ndarray,
    s0: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray | None,
) -> None:
    """Add each group's ``S0`` (G, k), ``S1`` (G, k, D) and ``S2`` (G, k, D, if given).

    ``keys`` (M,) is each row's group in ``0 .. G - 1`` (one image's cell of one
    pyramid level). float64 sums, a padded block of groups at a time.
    """
    if len(x) == 0:
        return
    order, present, starts, lengths = _segments(keys)
    xs, qs = x[order], q[order]
    for block in _blocks(lengths, q.shape[1] + 2 * x.shape[1]):
        lens = lengths[block]
        span = np.arange(int(lens.max()))
        idx = np.minimum(starts[block, None] + span[None, :], len(xs) - 1)
        mask = (span[None, :] < lens[:, None]).astype(np.float64)
        qp = np.asarray(qs[idx], np.float64) * mask[:, :, None]  # (B, L, k), padding 0
        xp = np.asarray(xs[idx], np.float64)  # (B, L, D)
        qt = qp.transpose(0, 2, 1)
        groups = present[block]  # distinct: plain fancy-index addition is exact
        s0[groups] += qp.sum(axis=1)
        s1[groups] += np.matmul(qt, xp)
        if s2 is not None:
            s2[groups] += np.matmul(qt, xp * xp)


def pyramid_moments(
    x: np.ndarray,
    q: np.ndarray,
    cells: np.ndarray,
    img: np.ndarray,
    n: int,
    n_cell: int,
    second: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The moments of every (image, cell) of every level, and each one's descriptor count.

    Groups are numbered ``image * n_cell + cell`` (a level's cells partition an
    image's descriptors, so each level is one pass).
    """
    g = n * n_cell
    s0, s1 = np.zeros((g, q.shape[1])), np.zeros((g, q.shape[1], x.shape[1]))
    s2 = np.zeros_like(s1) if second else None
    counts = np.zeros(g)
    for j in range(cells.shape[1]):
        keys = img * n_cell + cells[:, j]
        add_cell_moments(x, q, keys, s0, s1, s2)
        counts += np.bincount(keys, minlength=g)
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
