"""Dense and keypoint SIFT on small synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from bovw_vs_convnet.bovw.sift import DenseSift, KeypointSift, grid_centres
from bovw_vs_convnet.errors import ConfigError


def _blobs(n: int = 4, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 (n, size, size, 1) images of a few random bright squares on black."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size, 1), np.uint8)
    for img in out:
        for _ in range(3):
            y, x = rng.integers(2, size - 10, size=2)
            img[y : y + 8, x : x + 6] = rng.integers(100, 255)
    return out


def test_grid_centres_are_centred_and_stepped() -> None:
    assert grid_centres(28, bin_size=4, step=4).tolist() == [7.5, 11.5, 15.5, 19.5]


@pytest.mark.parametrize("backend", ["numpy", "opencv"])
def test_dense_shape_and_positions(backend: str) -> None:
    ds = DenseSift(bin_sizes=(4,), step=4, upscale=2.0, backend=backend)  # type: ignore[arg-type]
    d = ds.transform(_blobs(3, 28))
    # 56 px upscaled, 16 px patches every 4 px: 11 × 11 descriptors per image
    assert d.values.shape == (3 * 121, 128)
    assert d.offsets.tolist() == [0, 121, 242, 363]
    assert d.positions.min() > 0 and d.positions.max() < 1


def test_dense_several_sizes_concatenate() -> None:
    d = DenseSift(bin_sizes=(2, 3), step=2).transform(_blobs(2, 24))
    # size 2: (24-8)//2+1 = 9 → 81; size 3: (24-12)//2+1 = 7 → 49
    assert d.counts().tolist() == [130, 130]


def test_flat_image_gives_zero_descriptors() -> None:
    flat = np.full((1, 24, 24, 1), 128, np.uint8)
    d = DenseSift(bin_sizes=(3,), step=3).transform(flat)
    assert float(np.abs(d.values).max()) == 0.0


def test_rootsift_descriptors_have_unit_norm() -> None:
    d = DenseSift(bin_sizes=(4,), step=4, contrast_threshold=0.0).transform(_blobs(2, 32))
    norms = np.linalg.norm(d.values, axis=1)
    nonzero = norms[norms > 0]
    assert len(nonzero) > 20
    np.testing.assert_allclose(nonzero, 1.0, atol=1e-5)


def test_shifted_pattern_gives_shifted_descriptors() -> None:
    img = _blobs(1, 40)[0]
    shifted = np.zeros_like(img)
    shifted[:, 4:] = img[:, :-4]  # 4 px right = one grid step
    ds = DenseSift(bin_sizes=(3,), step=4, magnif=0.0)
    a = ds.transform(img[None]).values.reshape(8, 8, 128)
    b = ds.transform(shifted[None]).values.reshape(8, 8, 128)
    # columns 0..6 of the original reappear as columns 1..7 of the shifted image
    np.testing.assert_allclose(b[:, 1:], a[:, :-1], atol=1e-5)


def test_numpy_backend_agrees_with_opencv() -> None:
    imgs = _blobs(4, 28, seed=1)
    a = DenseSift(bin_sizes=(4,), step=4, upscale=2.0).transform(imgs).values
    b = DenseSift(bin_sizes=(4,), step=4, upscale=2.0, backend="opencv").transform(imgs).values
    both = (np.linalg.norm(a, axis=1) > 0) & (np.linalg.norm(b, axis=1) > 0)
    cos = (
        (a[both] * b[both]).sum(1)
        / np.linalg.norm(a[both], axis=1)
        / np.linalg.norm(b[both], axis=1)
    )
    assert both.sum() > 100
    assert np.median(cos) > 0.85


def test_keypoint_sift_on_blank_image_is_empty() -> None:
    imgs = np.concatenate([np.zeros((1, 28, 28, 1), np.uint8), _blobs(1, 28)])
    d = KeypointSift(upscale=4.0).transform(imgs)
    assert d.counts()[0] == 0
    assert d.counts()[1] > 0
    assert d.values.shape == (d.counts().sum(), 128)


def test_bad_parameters_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="step must be"):
        DenseSift(step=0).transform(_blobs(1))
    with pytest.raises(ConfigError, match="backend"):
        DenseSift(backend="cuda").transform(_blobs(1))  # type: ignore[arg-type]


@pytest.mark.parametrize("root", [True, False])
def test_numpy_batches_and_threads_do_not_change_descriptors(root: bool) -> None:
    """Batch size (chunk remainders), threads and several bin sizes: same descriptors."""
    images = _blobs(23, 28, seed=3)

    def sift(batch_size: int, n_jobs: int = 1) -> DenseSift:
        return DenseSift(
            (4, 6, 8), step=3, upscale=2.0, root=root, batch_size=batch_size, n_jobs=n_jobs
        )

    ref = sift(64).transform(images).values
    for batch_size, n_jobs in [(5, 1), (7, 2), (3, 2)]:
        d = sift(batch_size, n_jobs).transform(images)
        np.testing.assert_allclose(d.values, ref, rtol=0, atol=1e-6)
    norms = np.linalg.norm(ref, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)


def test_opencv_backend_refuses_another_window() -> None:
    """OpenCV's SIFT has Lowe's window (σ = 2 bins) built in: another is refused, not ignored."""
    with pytest.raises(ConfigError, match=r"^window must be 2 with the opencv backend"):
        DenseSift(backend="opencv", window=1.5).fit()
    assert DenseSift(backend="opencv", window=2.0).fit().window == 2.0  # its own is fine


def test_numpy_backend_honours_the_window() -> None:
    images = _blobs(2, 28, seed=4)
    narrow = DenseSift(bin_sizes=(4,), step=4, window=1.5, contrast_threshold=0.0)
    wide = DenseSift(bin_sizes=(4,), step=4, window=2.0, contrast_threshold=0.0)
    a, b = narrow.transform(images).values, wide.transform(images).values
    assert a.shape == b.shape
    assert np.abs(a - b).max() > 0.01
