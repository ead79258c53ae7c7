"""Images kept at their aspect: a folder of mixed sizes is never stretched to one size.

BoVW describes each image at its own aspect (longer side at most ``max_side``) and its
spatial pyramid divides that image's own frame; ConvNets train on random-resized
crops and score centre crops of a common frame (torchvision's convention); a folder
whose images all have one size is read as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bovw_vs_convnet.bovw.config import BovwConfig, make_extractor
from bovw_vs_convnet.bovw.dense_sift import grid_centres
from bovw_vs_convnet.bovw.encoding import pyramid_cells
from bovw_vs_convnet.bovw.memory import image_bytes
from bovw_vs_convnet.bovw.pipeline import stage_cache_key
from bovw_vs_convnet.bovw.sift import DenseSift
from bovw_vs_convnet.bovw.streaming import per_image_bytes, read_images
from bovw_vs_convnet.cli import main
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.batches import LoaderBatches, crop_box, make_batches
from bovw_vs_convnet.data.datasets import load_imagefolder
from bovw_vs_convnet.data.imageset import ImageSet, cover_crop


def _write(root: Path, layout: dict[str, list[tuple[int, int]]], seed: int = 0) -> None:
    """PNG files (lossless) of the given (height, width) sizes, one class folder each."""
    rng = np.random.default_rng(seed)
    for cls, sizes in layout.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i, (h, w) in enumerate(sizes):
            img = rng.integers(0, 256, (h, w, 3), np.uint8)
            cv2.imwrite(str(root / cls / f"{i:03d}.png"), img)


@pytest.fixture
def wide_folder(tmp_path: Path) -> ImageSet:
    """Image 0 is 300 px wide and 100 px high; the others are square."""
    _write(tmp_path, {"a": [(100, 300), (120, 120)], "b": [(80, 80), (90, 90)]})
    return load_imagefolder(tmp_path).train


def test_a_300x100_image_is_read_at_300x100(wide_folder: ImageSet) -> None:
    (img,) = read_images(wide_folder, np.array([0]), max_side=300)
    assert img.shape == (100, 300, 3)
    assert wide_folder.image_shape == (
        95,
        95,
        3,
    )  # the common frame: median shorter side (100, 120, 80, 90)


def test_max_side_brings_the_longer_side_down_at_the_image_aspect(wide_folder: ImageSet) -> None:
    imgs = read_images(wide_folder, np.array([0, 1]), max_side=150)
    assert [im.shape for im in imgs] == [(50, 150, 3), (120, 120, 3)]


def test_descriptor_frame_of_a_300x100_image_is_300x100(wide_folder: ImageSet) -> None:
    (img,) = read_images(wide_folder, np.array([0]), max_side=300)
    desc = DenseSift(bin_sizes=(4,), step=8, upscale=1.0).transform(img[None])
    cx, cy = grid_centres(300, 4, 8), grid_centres(100, 4, 8)
    assert (len(cx), len(cy)) == (36, 11)  # a square frame would give as many each way
    gy, gx = np.meshgrid(cy, cx, indexing="ij")
    expected = np.stack([(gx.ravel() + 0.5) / 300, (gy.ravel() + 0.5) / 100], axis=1)
    assert desc.counts().tolist() == [36 * 11]
    np.testing.assert_allclose(desc.positions, expected, rtol=0, atol=1e-6)


def test_spatial_pyramid_cells_divide_the_image_own_frame(wide_folder: ImageSet) -> None:
    (img,) = read_images(wide_folder, np.array([0]), max_side=300)
    desc = DenseSift(bin_sizes=(4,), step=8, upscale=1.0).transform(img[None])
    cells = pyramid_cells(desc.positions, (2,))[:, 0]
    cx, cy = grid_centres(300, 4, 8), grid_centres(100, 4, 8)
    gy, gx = np.meshgrid(cy, cx, indexing="ij")
    # 2×2 grid over 300×100 px: a column boundary at x = 150 px, a row boundary at y = 50 px
    expected = (gx.ravel() + 0.5 >= 150).astype(int) + 2 * (gy.ravel() + 0.5 >= 50).astype(int)
    assert cells.tolist() == expected.tolist()
    assert np.bincount(cells).tolist() == [
        18 * 5,
        18 * 5,
        18 * 6,
        18 * 6,
    ]  # rows at 10..90 px: 5 above 50


def test_chunks_are_planned_by_each_image_own_shape(wide_folder: ImageSet) -> None:
    cfg = build_config(BovwConfig, {"preset": "photo"})
    extractor = make_extractor(cfg, 1)
    sizes = per_image_bytes(wide_folder, cfg, extractor)
    shapes = [(100, 300, 3), (120, 120, 3), (80, 80, 3), (90, 90, 3)]
    assert sizes.tolist() == [image_bytes(cfg, extractor, s) for s in shapes]


def test_frame_view_is_a_centre_crop_never_a_stretch() -> None:
    img = np.tile(np.arange(300, dtype=np.uint8)[None, :, None], (100, 1, 3))  # 100×300
    out = cover_crop(img, (50, 50))
    small = cv2.resize(img, (150, 50), interpolation=cv2.INTER_AREA)
    assert np.array_equal(out, small[:, 50:100])


def test_a_folder_of_one_size_is_read_as_before(tmp_path: Path) -> None:
    _write(tmp_path, {"a": [(20, 30)] * 2, "b": [(20, 30)] * 2})
    ds = load_imagefolder(tmp_path)
    raw = cv2.cvtColor(cv2.imread(str(tmp_path / "a" / "000.png")), cv2.COLOR_BGR2RGB)
    assert (ds.train.native, ds.train.aspect_kept, ds.manifest.image_size) == (
        None,
        False,
        (20, 30),
    )
    assert np.array_equal(ds.train.images[0], raw)
    cfg = build_config(BovwConfig, {"preset": "tiny"})
    plain = ImageSet(ds.train.array(), ds.train.labels, ds.train.ids, ds.train.class_names, ds.name)
    assert stage_cache_key("vocabulary", cfg, "f", 0, ds.train) == stage_cache_key(
        "vocabulary", cfg, "f", 0, plain
    )


def test_random_resized_crop_box_is_seeded_and_inside_the_image() -> None:
    boxes = [crop_box(100, 300, torch.Generator().manual_seed(s)) for s in (3, 3, 4)]
    assert boxes[0] == boxes[1] != boxes[2]
    for top, left, ch, cw in boxes:
        assert top >= 0 and top + ch <= 100 and left >= 0 and left + cw <= 300
        assert 0.08 * 100 * 300 * 0.99 <= ch * cw <= 100 * 300
        assert 3 / 4 * 0.95 <= cw / ch <= 4 / 3 * 1.05


def test_convnet_trains_on_random_crops_and_scores_centre_crops(wide_folder: ImageSet) -> None:
    train = make_batches(wide_folder, torch.device("cpu"), workers=0, train=True)
    assert isinstance(train, LoaderBatches) and train.dataset.random_crop
    torch.manual_seed(0)
    xb, yb = next(train.batches(4, None))
    assert xb.shape == (4, 3, 95, 95) and yb.tolist() == [0, 0, 1, 1]
    test = make_batches(wide_folder, torch.device("cpu"), workers=0)
    xt, _ = next(test.batches(4, None))
    native = wide_folder.native
    assert native is not None
    centre = cover_crop(native.read_native(0), (95, 95))
    assert np.array_equal(xt[0].permute(1, 2, 0).numpy(), centre)


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """3 classes of 8 images each, sides 24-48 px drawn independently, class by colour."""
    rng = np.random.default_rng(1)
    root = tmp_path / "mixed"
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(8):
            h, w = (int(v) for v in rng.integers(24, 49, 2))
            img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
            img[..., c] += 150
            cv2.rectangle(img, (w // 4, h // 4), (w // 2, h // 2), (255, 255, 255), -1)
            cv2.imwrite(str(root / f"c{c}" / f"{i}.png"), img)
    return root


def _run(args: list[str]) -> dict:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_bvc_run_bovw_on_a_mixed_folder_describes_each_image_at_its_aspect(
    mixed_folder: Path, tmp_path: Path
) -> None:
    rec = _run(
        ["run", "bovw", "--dataset", str(mixed_folder), "--runs-dir", str(tmp_path / "r"),
         "--no-progress", "--json", "--set", "preset=tiny", "--set", "max_side=40"]
    )  # fmt: skip
    aspect = rec["extra"]["aspect"]
    assert (aspect["aspect"], aspect["max_side"]) == ("kept", 40)
    assert aspect["distinct_shapes"] > 1 and max(aspect["height"] + aspect["width"]) == 40
    assert rec["status"] == "ok" and rec["n_train"] + rec["n_val"] + rec["n_test"] == 24


def test_bvc_run_convnet_on_a_mixed_folder_records_its_crops(
    mixed_folder: Path, tmp_path: Path
) -> None:
    rec = _run(
        ["run", "convnet", "--dataset", str(mixed_folder), "--runs-dir", str(tmp_path / "r"),
         "--no-progress", "--json", "--set", "model=lenet5", "--set", "epochs=1"]
    )  # fmt: skip
    aspect = rec["extra"]["aspect"]
    side = rec["extra"]["input"]["image_size"][0]
    assert aspect["frame"] == [side, side] and aspect["aspect"] == "kept"
    assert aspect["train"].startswith("random-resized crop")
    assert rec["status"] == "ok"


def test_large_images_take_filtered_gradients_equal_to_the_products() -> None:
    from bovw_vs_convnet.bovw import dense_sift

    gray = np.random.default_rng(0).random((2, 100, 300)).astype(np.float32)
    fast = dense_sift.DenseGeometry(100, 300, 1.0, 6, 4, 6.0, 1.5)
    small = dense_sift.DenseGeometry(28, 28, 2.0, 4, 2, 6.0, 2.0)  # Fashion-MNIST's
    assert (fast.filtered, small.filtered) == (True, False)
    ry = dense_sift._smooth_resize(100, 100, 1.0)
    rx = dense_sift._smooth_resize(300, 300, 1.0)
    gx_products = ry.astype(np.float32) @ gray @ dense_sift._diff_rows(rx).T.astype(np.float32)
    gx, gy = dense_sift._filtered_gradients(gray, fast)
    gy_products = dense_sift._diff_rows(ry).astype(np.float32) @ gray @ rx.T.astype(np.float32)
    np.testing.assert_allclose(gx, gx_products, rtol=0, atol=1e-6)
    np.testing.assert_allclose(gy, gy_products, rtol=0, atol=1e-6)


def test_geometry_matrices_skip_identity_and_dense_difference_products() -> None:
    from bovw_vs_convnet.bovw import dense_sift

    for n, n_in, sigma in [(1, 1, 0.0), (28, 28, 0.67), (56, 28, 0.67), (300, 300, 1.67)]:
        dense = dense_sift._gauss_matrix(n, sigma) @ dense_sift._resize_matrix(n_in, n)
        assert np.array_equal(dense_sift._smooth_resize(n_in, n, sigma), dense)
        assert np.array_equal(dense_sift._diff_rows(dense), dense_sift._diff_matrix(n) @ dense)
