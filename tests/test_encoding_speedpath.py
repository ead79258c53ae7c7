"""The encoding's speed path (blocked float32 GEMM, top-k by argmin, pooling as one sparse
product) against plain float64 references on small synthetic examples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.encoding import (
    SpatialPyramidEncoder,
    n_cells,
    pool_histograms,
    pyramid_cells,
    soft_weights,
)
from bovw_vs_convnet.bovw.vocabulary import nearest_words


def _reference_distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(M, k) squared distances in float64, by differences (no expansion)."""
    diff = x.astype(np.float64)[:, None, :] - c.astype(np.float64)[None, :, :]
    return (diff * diff).sum(axis=2)


def _descriptors(n_images: int = 7, per_image: int = 40, dim: int = 16) -> DescriptorSet:
    rng = np.random.default_rng(11)
    counts = rng.integers(0, per_image, n_images)
    counts[0] = per_image  # at least one full image
    m = int(counts.sum())
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return DescriptorSet(
        values=rng.random((m, dim), np.float32),
        positions=rng.random((m, 2), np.float32),
        offsets=offsets,
        scales=np.full(m, 16.0, np.float32),
    )


def _reference_codes(enc: SpatialPyramidEncoder, d: DescriptorSet) -> np.ndarray:
    """Soft or hard pyramid histograms, L1, by loops over images, levels and words (float64)."""
    dist = _reference_distances(d.values, enc.vocabulary_)
    knn = 1 if enc.method == "hard" else min(enc.knn, enc.k)
    cells = pyramid_cells(d.positions, enc.levels)
    out = np.zeros((d.n_images, n_cells(enc.levels) * enc.k))
    for i, img in enumerate(d.image_index()):
        order = np.argsort(dist[i])[:knn]
        sigma = enc.sigma_ or 1.0
        w = np.exp(-(dist[i, order] - dist[i, order[0]]) / (2 * sigma**2))
        w = np.ones(1) if enc.method == "hard" else w / w.sum()
        for cell in cells[i]:
            out[img, cell * enc.k + order] += w
    sums = out.sum(axis=1, keepdims=True)
    return out / np.maximum(sums, 1e-12)


@pytest.mark.parametrize("knn", [1, 3, 5, 8, 9, 12])
def test_nearest_words_are_the_reference_nearest_in_order(knn: int) -> None:
    rng = np.random.default_rng(knn)
    x = rng.random((500, 16), np.float32)
    c = rng.random((12, 16), np.float32)
    ref = _reference_distances(x, c)
    words, dist = nearest_words(x, c, knn, chunk=64)
    expected = np.argsort(ref, axis=1, kind="stable")[:, :knn]
    np.testing.assert_array_equal(words, expected)
    np.testing.assert_allclose(dist, np.take_along_axis(ref, expected, axis=1), rtol=1e-5)
    assert dist.dtype == np.float32 and words.dtype == np.int64


def test_nearest_words_past_the_vocabulary_returns_every_word_nearest_first() -> None:
    rng = np.random.default_rng(0)
    x, c = rng.random((30, 4), np.float32), rng.random((6, 4), np.float32)
    words, _ = nearest_words(x, c, 50)
    assert words.shape == (30, 6)
    np.testing.assert_array_equal(words, np.argsort(_reference_distances(x, c), axis=1))


def test_soft_weights_are_the_normalised_gaussians() -> None:
    dist = np.array([[0.5, 0.7, 1.5], [2.0, 2.0, 2.0]], np.float32)
    w = soft_weights(dist.copy(), 0.5)
    g = np.exp(-np.array([[0.5, 0.7, 1.5]]) / 0.5)
    np.testing.assert_allclose(w[0], (g / g.sum())[0], rtol=1e-6)
    np.testing.assert_allclose(w[1], 1 / 3, rtol=1e-6)
    assert w.dtype == np.float32


def test_pool_histograms_sums_each_cell_of_each_image() -> None:
    # two images; image 0 has descriptors in cells (0, 1) and (0, 2), image 1 one in (0, 4)
    words = np.array([[0, 2], [2, 1], [1, 0]])
    weights = np.array([[0.75, 0.25], [0.5, 0.5], [1.0, 0.0]], np.float32)
    cells = np.array([[0, 1], [0, 2], [0, 4]])
    img = np.array([0, 0, 1])
    h = pool_histograms(words, weights, cells, img, 2, 5, 3)
    expected = np.zeros((2, 15), np.float32)
    expected[0, [0, 2]] = [0.75, 0.75]  # cell 0: words 0, 2 (0.25 + 0.5), 1 (0.5)
    expected[0, 1] = 0.5
    expected[0, [3, 5]] = [0.75, 0.25]  # cell 1
    expected[0, [8, 7]] = [0.5, 0.5]  # cell 2
    expected[1, [1, 13]] = [1.0, 1.0]  # cells 0 and 4, word 1; its 0 weight dropped
    assert sp.isspmatrix_csr(h) and h.has_sorted_indices and h.dtype == np.float32
    assert h.nnz == 9  # no explicit zero
    np.testing.assert_array_equal(h.toarray(), expected)


@pytest.mark.parametrize(
    ("method", "levels"), [("soft", (1, 2, 4)), ("hard", (1, 3)), ("soft", (2,))]
)
def test_encoder_matches_the_looped_reference(method: str, levels: tuple[int, ...]) -> None:
    d = _descriptors()
    enc = SpatialPyramidEncoder(method, k=10, levels=levels, knn=4).fit(d)  # type: ignore[arg-type]
    x = enc.transform(d)
    assert sp.isspmatrix_csr(x) and x.dtype == np.float32 and x.has_sorted_indices
    np.testing.assert_allclose(x.toarray(), _reference_codes(enc, d), rtol=1e-5, atol=1e-7)
