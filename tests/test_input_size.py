"""ConvNets on photographs at a size that keeps the object (convnet/input_size.py).

A folder of large images is fed to the small nets at 64-128 px instead of 32, trained
on random-resized crops, through a stem for that size; the built-in 8-32 px sets are fed
as before, to the same nets, module for module.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_convnet_train import config, context, tiny_set

from bovw_vs_convnet.config import config_to_dict
from bovw_vs_convnet.convnet.augment import BatchAugment
from bovw_vs_convnet.convnet.bundle import load_bundle, save_bundle
from bovw_vs_convnet.convnet.input_size import choose_input_size, rule_size
from bovw_vs_convnet.convnet.models import count_parameters, create_model, get_model_spec
from bovw_vs_convnet.convnet.pipeline import build_pipeline
from bovw_vs_convnet.data.datasets import load_imagefolder
from bovw_vs_convnet.data.imageset import ImageSet

SMALL_NETS = ("lenet5", "lenet5-1998", "alexnet-small", "alexnet-small-no-conv3-conv4-fc6-fc7")


def _folder(root: Path, sizes: list[tuple[int, int]], classes: int = 2) -> ImageSet:
    """RGB PNGs of the given (height, width) sizes, a bright square whose place is the class."""
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        c = i % classes
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 60, (h, w, 3), np.uint8)
        x = w // 8 if c == 0 else w // 2
        img[h // 3 : h // 3 + h // 4, x : x + w // 4] = 230
        cv2.imwrite(str(root / f"c{c}" / f"{i:03d}.png"), img)
    return load_imagefolder(root).train


def test_a_folder_of_150x200_images_is_fed_at_96_px(tmp_path: Path) -> None:
    train = _folder(tmp_path, [(150, 200)] * 12)
    choice = choose_input_size("auto", get_model_spec("lenet5"), train)
    # 150 x sqrt(0.35) = 88.7 -> the nearest multiple of 16
    assert (choice.size, choice.large) == (96, True)
    assert choice.why.startswith("images 150x200 px -> 96 px")


def test_a_folder_of_mixed_sizes_follows_its_median_shorter_side(tmp_path: Path) -> None:
    sizes = [(90, 120), (300, 200), (170, 260), (180, 170), (240, 300), (100, 150)]
    train = _folder(tmp_path, sizes)
    choice = choose_input_size("auto", get_model_spec("alexnet-small"), train)
    # shorter sides 90, 200, 170, 170, 240, 100 (all six: no test part): median 170
    assert choice.size == 96 and "median shorter side 170 -> 96 px" in choice.why
    assert "random-resized crops" in choice.why


@pytest.mark.parametrize(("short", "size"), [(28, 32), (60, 32), (100, 64), (170, 96), (600, 128)])
def test_the_rule_rounds_to_16_and_stays_within_32_to_128(short: int, size: int) -> None:
    assert rule_size(short, 32, 128) == size


def test_28_and_8_px_sets_keep_the_design_size() -> None:
    for images in (tiny_set(8), _digits_like()):
        choice = choose_input_size("auto", get_model_spec("lenet5"), images)
        assert (choice.size, choice.large) == (32, False)


def _digits_like() -> ImageSet:
    images = np.zeros((4, 8, 8, 1), np.uint8)
    return ImageSet(images, np.arange(4) % 2, np.array(list("abcd")), ("a", "b"), "d8")


def test_alexnet_2012_stays_at_227_and_a_setting_wins(tmp_path: Path) -> None:
    train = _folder(tmp_path, [(300, 400)] * 4)
    assert choose_input_size("auto", get_model_spec("alexnet-2012"), train).size == 227
    set_64 = choose_input_size(64, get_model_spec("lenet5"), train)
    assert (set_64.size, set_64.large) == (64, True) and "set by input_size" in set_64.why
    fixed = choose_input_size("auto", get_model_spec("lenet5"), train, fixed=True)
    assert (fixed.size, fixed.large) == (32, False)


@pytest.mark.parametrize("name", SMALL_NETS)
def test_at_32_px_the_small_nets_are_the_nets_they_were(name: str) -> None:
    torch.manual_seed(0)
    default = create_model(name, num_classes=10, in_channels=3)
    torch.manual_seed(0)
    at_32 = create_model(name, num_classes=10, in_channels=3, input_size=32)
    assert repr(at_32) == repr(default)
    assert all(
        torch.equal(a, b)
        for a, b in zip(*(m.state_dict().values() for m in (default, at_32)), strict=True)
    )


@pytest.mark.parametrize("name", SMALL_NETS)
@pytest.mark.parametrize("size", [64, 96, 128])
def test_the_stem_keeps_parameter_names_and_count(name: str, size: int) -> None:
    small = create_model(name, num_classes=10, in_channels=3)
    large = create_model(name, num_classes=10, in_channels=3, input_size=size)
    shapes = {k: v.shape for k, v in small.state_dict().items()}
    assert {k: v.shape for k, v in large.state_dict().items()} == shapes
    assert count_parameters(large) == count_parameters(small)
    assert large(torch.zeros(2, 3, size, size)).shape == (2, 10)


def test_random_resized_crops_give_the_input_size() -> None:
    x = torch.rand(5, 3, 150, 200, generator=torch.Generator().manual_seed(0)) * 255
    crop = BatchAugment(["crop"], crop_size=48)
    out = crop(x, torch.Generator().manual_seed(1))
    again = crop(x, torch.Generator().manual_seed(1))
    assert out.shape == (5, 3, 48, 48) and torch.equal(out, again)
    flat = crop(torch.full((2, 3, 150, 200), 7.0), torch.Generator().manual_seed(2))
    assert torch.allclose(flat, torch.full((2, 3, 48, 48), 7.0))


def test_the_record_says_the_input_size_and_why(tmp_path: Path) -> None:
    train = _folder(tmp_path / "data", [(120, 160)] * 8)
    pipe = build_pipeline(config(epochs="1", rescues="0"), context(tmp_path / "run"))
    pipe.fit(train, None)
    extra = pipe.record_extra
    assert extra["input"]["input_size"] == [64, 64]
    assert extra["recipe"]["chosen"]["input_size"] == 64
    assert extra["recipe"]["why"]["input_size"].startswith("images 120x160 px -> 64 px")
    assert extra["augment"][0] == "crop"
    scores = pipe.decision_scores(train)
    # the bundle keeps the size: it loads at 64 px and scores the same
    files, part = save_bundle(pipe)
    assert part["preprocessing"]["input_size"] == 64
    manifest = {
        "config": config_to_dict(pipe.config),
        "convnet": part,
        "class_names": list(train.class_names),
        "input": {"size": list(train.image_shape[:2]), "channels": train.channels},
    }
    loaded = load_bundle(files, manifest, context(tmp_path / "loaded"))
    assert loaded.trainer is not None and loaded.trainer.adapter.size == 64
    np.testing.assert_allclose(loaded.decision_scores(train), scores, rtol=1e-5, atol=1e-5)
