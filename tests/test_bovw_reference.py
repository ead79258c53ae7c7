"""VLAD and Fisher encodings against plain numpy references written from VLFeat's formulas.

The references follow VLFeat's documentation, one descriptor at a time:
``vl_vlad(..., 'NormalizeComponents')`` (residual sums to the nearest centre, each
centre's block L2-normalised, then the whole vector) and ``vl_fisher(..., 'Improved')``
(``u_k = Σ q_ik (x_i - μ_k) / σ_k / (N √π_k)``, ``v_k = Σ q_ik ((x_i - μ_k)² / σ_k² - 1)
/ (N √(2 π_k))``, posteriors of the diagonal GMM, laid out ``[u_1 … u_K, v_1 … v_K]``,
then signed square root and L2). A fixed example: 300 descriptors of 6 values in two
images, fixed centres and a fixed GMM.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.encoding import Method, SpatialPyramidEncoder

K, D = 4, 6


def _example() -> tuple[DescriptorSet, np.ndarray, SimpleNamespace]:
    rng = np.random.default_rng(27)
    counts = (180, 120)
    values = [rng.normal(size=(c, D)).astype(np.float32) for c in counts]
    positions = [rng.uniform(0, 1, size=(c, 2)).astype(np.float32) for c in counts]
    ds = DescriptorSet.from_lists(values, positions, [np.full(c, 8.0) for c in counts], D)
    centres = rng.normal(size=(K, D)).astype(np.float32)
    gmm = SimpleNamespace(
        weights_=np.array([0.1, 0.2, 0.3, 0.4]),
        means_=centres.astype(np.float64),
        covariances_=rng.uniform(0.5, 2.0, size=(K, D)),
    )
    return ds, centres, gmm


def _encoder(method: Method, centres: np.ndarray, gmm: SimpleNamespace, **kw: object) -> Any:
    params: dict[str, Any] = {"levels": (1,), **kw}
    enc = SpatialPyramidEncoder(method=method, k=K, **params)
    enc.vocabulary_ = centres
    enc.word_sq_ = (centres * centres).sum(axis=1)
    enc.gmm_ = gmm
    enc.pca_ = None
    enc.n_features_in_ = D
    enc.dim_per_cell_ = enc._dim_per_cell(D)
    enc.n_features_out_ = enc.dim_per_cell_
    return enc


def vl_vlad_normalize_components(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """VLFeat's vl_vlad with NormalizeComponents, descriptor by descriptor (float64)."""
    x, c = x.astype(np.float64), centres.astype(np.float64)
    enc = np.zeros((K, D))
    for xi in x:
        k = int(np.argmin(((c - xi) ** 2).sum(axis=1)))
        enc[k] += xi - c[k]
    for k in range(K):
        enc[k] /= max(float(np.sqrt((enc[k] ** 2).sum())), 1e-12)
    out = enc.reshape(-1)
    return out / max(float(np.linalg.norm(out)), 1e-12)


def vl_fisher_improved(x: np.ndarray, gmm: SimpleNamespace) -> np.ndarray:
    """VLFeat's vl_fisher with Improved (its documented formulas), descriptor by descriptor."""
    x = x.astype(np.float64)
    pi, mu, var = gmm.weights_, gmm.means_, gmm.covariances_
    sd = np.sqrt(var)
    u, v = np.zeros((K, D)), np.zeros((K, D))
    for xi in x:
        dens = np.array(
            [
                pi[k]
                * np.prod(np.exp(-0.5 * (xi - mu[k]) ** 2 / var[k]) / np.sqrt(2 * np.pi * var[k]))
                for k in range(K)
            ]
        )
        q = dens / dens.sum()
        for k in range(K):
            z = (xi - mu[k]) / sd[k]
            u[k] += q[k] * z
            v[k] += q[k] * (z * z - 1)
    n = len(x)
    u /= n * np.sqrt(pi)[:, None]
    v /= n * np.sqrt(2 * pi)[:, None]
    out = np.concatenate([u.reshape(-1), v.reshape(-1)])
    out = np.sign(out) * np.sqrt(np.abs(out))
    return out / np.linalg.norm(out)


def test_vlad_matches_vl_vlad_normalize_components() -> None:
    ds, centres, gmm = _example()
    codes = _encoder("vlad", centres, gmm, intra=True, norm="l2").transform(ds)
    for i in range(2):
        ref = vl_vlad_normalize_components(ds.values[ds.offsets[i] : ds.offsets[i + 1]], centres)
        assert np.abs(codes[i] - ref).max() <= 1e-5


def test_fisher_matches_vl_fisher_improved() -> None:
    ds, centres, gmm = _example()
    codes = _encoder("fisher", centres, gmm, power=0.5, norm="l2").transform(ds)
    assert codes.shape == (2, 2 * K * D)
    for i in range(2):
        ref = vl_fisher_improved(ds.values[ds.offsets[i] : ds.offsets[i + 1]], gmm)
        assert np.abs(codes[i] - ref).max() <= 1e-5


def test_pyramid_cell_blocks_are_the_cells_own_fisher_vectors() -> None:
    """With levels (1, 2), each 2×2 cell's block is the unnormalised Fisher vector of
    the cell's own descriptors (the whole vector is normalised once, after concatenation).
    """
    ds, centres, gmm = _example()
    enc = _encoder("fisher", centres, gmm, levels=(1, 2), norm="none")
    enc.n_features_out_ = 5 * enc.dim_per_cell_
    codes = enc.transform(ds)
    single = _encoder("fisher", centres, gmm, norm="none")
    x, pos = ds.values[:180], ds.positions[:180]
    cell = (pos[:, 1] >= 0.5).astype(int) * 2 + (pos[:, 0] >= 0.5).astype(int)
    members = cell == 3
    part = DescriptorSet.from_lists([x[members]], [pos[members]], [np.full(members.sum(), 8.0)], D)
    block = codes[0, 4 * 2 * K * D :]
    np.testing.assert_allclose(block, single.transform(part)[0], atol=1e-6)
