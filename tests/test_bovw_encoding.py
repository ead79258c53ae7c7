"""Vocabulary and encodings: histogram sums, pyramid layout, VLAD and Fisher shapes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder, n_cells, pyramid_cells
from bovw_vs_convnet.bovw.vocabulary import KMeansVocabulary, nearest_word, sq_distances
from bovw_vs_convnet.errors import ConfigError


def _descriptors(
    n_images: int = 5, per_image: int = 20, dim: int = 8, seed: int = 0
) -> DescriptorSet:
    rng = np.random.default_rng(seed)
    counts = [per_image] * n_images
    return DescriptorSet.from_lists(
        [np.abs(rng.normal(size=(c, dim))).astype(np.float32) for c in counts],
        [rng.uniform(0, 1, size=(c, 2)).astype(np.float32) for c in counts],
        [np.full(c, 8.0) for c in counts],
        dim,
    )


def test_vocabulary_refuses_k_larger_than_sample() -> None:
    x = np.zeros((10, 4), np.float32)
    with pytest.raises(ConfigError, match=r"k=11 visual words but only 10 descriptors"):
        KMeansVocabulary(k=11).fit(x)


def test_vocabulary_is_seeded() -> None:
    x = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
    a = KMeansVocabulary(k=5, random_state=3).fit(x).vocabulary_
    b = KMeansVocabulary(k=5, random_state=3).fit(x).vocabulary_
    np.testing.assert_array_equal(a, b)


def test_nearest_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    x, c = rng.normal(size=(300, 6)).astype(np.float32), rng.normal(size=(7, 6)).astype(np.float32)
    brute = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(nearest_word(x, c, chunk=64), brute)


def test_sq_distances_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    x, c = rng.random((200, 16), np.float32), rng.random((9, 16), np.float32)
    brute = ((x[:, None].astype(np.float64) - c[None]) ** 2).sum(-1)
    d = sq_distances(x, c)
    assert d.dtype == np.float32 and d.shape == (200, 9)
    np.testing.assert_allclose(d, brute, rtol=1e-4, atol=1e-5)
    assert sq_distances(c, c).min() == 0.0  # a centre's distance to itself, clipped at zero


def test_nearest_word_keeps_the_encoders_arithmetic() -> None:
    """Bit for bit the float32 ``‖c‖² - 2 x·c`` argmin the encoders computed inline."""
    rng = np.random.default_rng(3)
    x = rng.random((5000, 128), np.float32)  # RootSIFT-like: non-negative, 128-d
    c = rng.random((256, 128), np.float32)
    d = x @ c.T
    d *= -2.0
    d += np.einsum("ij,ij->i", c, c)[None, :]
    np.testing.assert_array_equal(nearest_word(x, c, chunk=1024), d.argmin(axis=1))


def test_hard_histogram_counts_nearest_words() -> None:
    d = _descriptors(n_images=3)
    enc = SpatialPyramidEncoder(k=6, levels=(1,), norm="none").fit(d)
    words = nearest_word(d.values, enc.vocabulary_)
    expected = np.stack([np.bincount(words[i * 20 : (i + 1) * 20], minlength=6) for i in range(3)])
    np.testing.assert_array_equal(enc.transform(d).toarray(), expected)


def test_pyramid_cells_layout() -> None:
    pos = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.6, 0.6]], np.float32)
    cells = pyramid_cells(pos, (1, 2))
    # level 1: cell 0; level 2: cells 1..4, row-major (top-left, top-right, bottom-left, ...)
    assert cells.tolist() == [[0, 1], [0, 2], [0, 3], [0, 4]]
    assert n_cells((1, 2, 4)) == 21


def test_hard_histogram_counts_every_descriptor_once_per_level() -> None:
    d = _descriptors()
    enc = SpatialPyramidEncoder(k=6, levels=(1, 2), norm="none").fit(d)
    x = enc.transform(d)
    assert sp.issparse(x) and x.shape == (5, 6 * 5)
    np.testing.assert_allclose(np.asarray(x.sum(axis=1)).ravel(), 20 * 2)
    # level 0 block holds the whole image's histogram
    np.testing.assert_allclose(x[:, :6].sum(axis=1), 20)


def test_soft_histogram_l1_normalised() -> None:
    d = _descriptors()
    x = SpatialPyramidEncoder("soft", k=6, levels=(1, 2), knn=3).fit(d).transform(d)
    np.testing.assert_allclose(np.asarray(x.sum(axis=1)).ravel(), 1.0, rtol=1e-5)


def test_image_without_descriptors_encodes_to_zero() -> None:
    d = _descriptors()
    empty = DescriptorSet.concatenate(
        [d, DescriptorSet.from_lists([np.zeros((0, 8))], [np.zeros((0, 2))], [np.zeros(0)], 8)]
    )
    x = SpatialPyramidEncoder(k=6, levels=(1, 2)).fit(d).transform(empty)
    assert x.shape[0] == 6
    assert x[5].nnz == 0


@pytest.mark.parametrize(("method", "per_cell"), [("vlad", 4 * 8), ("fisher", 2 * 4 * 8)])
def test_vlad_and_fisher_dimensions_and_l2(method: str, per_cell: int) -> None:
    d = _descriptors()
    enc = SpatialPyramidEncoder(method, k=4, levels=(1, 2), power=0.5, norm="l2").fit(d)  # type: ignore[arg-type]
    x = enc.transform(d)
    assert isinstance(x, np.ndarray) and x.shape == (5, 5 * per_cell)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)


def test_vlad_level_zero_is_sum_of_residuals() -> None:
    d = _descriptors(n_images=1)
    enc = SpatialPyramidEncoder("vlad", k=3, levels=(1,), norm="none").fit(d)
    x = enc.transform(d).reshape(3, 8)
    words = nearest_word(d.values, enc.vocabulary_)
    expected = np.stack([(d.values[words == j] - enc.vocabulary_[j]).sum(0) for j in range(3)])
    np.testing.assert_allclose(x, expected, atol=1e-4)


def test_encoder_checks_its_vocabulary_parameters() -> None:
    with pytest.raises(ConfigError, match=r"^max_samples must be ≥ 1, got 0$"):
        SpatialPyramidEncoder(k=4, max_samples=0).fit(_descriptors())


def test_transform_takes_a_descriptor_set() -> None:
    d = _descriptors()
    enc = SpatialPyramidEncoder(k=4).fit(d.values)
    with pytest.raises(TypeError, match="transform takes a DescriptorSet, got ndarray"):
        enc.transform(d.values)  # type: ignore[arg-type]


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown encoding 'bag'"):
        SpatialPyramidEncoder("bag").fit(_descriptors())  # type: ignore[arg-type]
