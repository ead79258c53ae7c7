"""Colour SIFT (van de Sande et al. 2010) and unsigned orientations in the dense SIFT stage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bovw_vs_convnet.bovw.colour import COLOUR_CHANNELS, channels, opponent
from bovw_vs_convnet.bovw.config import BovwConfig, make_extractor
from bovw_vs_convnet.bovw.memory import descriptor_bytes, descriptor_dim
from bovw_vs_convnet.bovw.sift import DenseSift
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.errors import ConfigError


def _images(n: int = 2, h: int = 30, w: int = 34, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_opponent_channels_of_pure_colours_are_the_papers_formulas() -> None:
    rgb = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    s2, s6, s3 = math.sqrt(2), math.sqrt(6), math.sqrt(3)
    want = np.array(
        [
            [1 / s2, 1 / s6, 1 / s3],
            [-1 / s2, 1 / s6, 1 / s3],
            [0.0, -2 / s6, 1 / s3],
            [0.0, 0.0, 3 / s3],
        ]
    )
    np.testing.assert_allclose(opponent(rgb), want, rtol=0, atol=1e-15)


def test_opponent_planes_of_a_tiny_image_are_its_centred_opponent_values() -> None:
    img = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    planes = channels(img[None], "opponent")[0]  # (3, 2, 2)
    centred = (img.astype(np.float64) - 127.5) / 255
    want = np.stack(
        [
            centred @ row
            for row in np.array([[1, -1, 0], [1, 1, -2], [1, 1, 1]])
            / np.array([[math.sqrt(2)], [math.sqrt(6)], [math.sqrt(3)]])
        ]
    )
    np.testing.assert_allclose(planes, want, rtol=0, atol=1e-7)  # float32 rounding
    assert planes.dtype == np.float32


@pytest.mark.parametrize("colour", sorted(COLOUR_CHANNELS))
def test_each_colour_space_gives_128_values_per_channel(colour: str) -> None:
    sift = DenseSift(bin_sizes=(4,), step=4, colour=colour)
    d = sift.transform(_images())
    assert d.dim == sift.dim == 128 * COLOUR_CHANNELS[colour]
    assert d.values.shape == (2 * sift.n_descriptors(30, 34), sift.dim)
    assert d.n_images == 2


def test_the_opponent_intensity_block_is_gray_sift_of_the_intensity() -> None:
    img = _images()
    d = DenseSift(bin_sizes=(4,), step=4, colour="opponent").transform(img).values
    o3 = channels(img, "opponent")[:, 2]  # a gray image: its own SIFT
    plain = DenseSift(bin_sizes=(4,), step=4).transform(
        np.clip(np.round((o3 / math.sqrt(3) + 0.5) * 255), 0, 255).astype(np.uint8)
    )
    # the same gradients up to the uint8 rounding of the reference: same words, near
    assert np.abs(d[:, 256:] - plain.values).max() < 0.1


@pytest.mark.parametrize("colour", ["gray", "opponent", "rgb"])
def test_unsigned_orientations_describe_an_image_and_its_negative_alike(colour: str) -> None:
    img = _images(h=40, w=44)
    sift = DenseSift(bin_sizes=(4, 6), step=3, colour=colour, polarity="unsigned")
    a, b = sift.transform(img).values, sift.transform(255 - img).values
    assert np.array_equal(a, b)
    assert np.abs(a).sum() > 0


def test_signed_orientations_tell_an_image_from_its_negative() -> None:
    img = _images(h=40, w=44)
    sift = DenseSift(bin_sizes=(4,), step=3)
    assert not np.allclose(sift.transform(img).values, sift.transform(255 - img).values)


def test_unsigned_orientation_bins_span_half_a_turn() -> None:
    # a vertical edge, dark to light left to right: gradient along +x, orientation bin 0;
    # its negative points along -x, bin 4 signed and bin 0 unsigned
    ramp = np.zeros((1, 24, 24), np.uint8)
    ramp[:, :, 12:] = 255
    for pol, img, hot in (
        ("signed", ramp, 0),
        ("signed", 255 - ramp, 4),
        ("unsigned", 255 - ramp, 0),
    ):
        v = DenseSift(bin_sizes=(4,), step=100, polarity=pol, root=False).transform(img).values
        per_bin = v.reshape(-1, 16, 8).sum(axis=(0, 1))
        assert int(np.argmax(per_bin)) == hot


def test_the_default_gray_sift_is_unchanged_by_the_colour_setting() -> None:
    img = _images()
    plain = DenseSift(bin_sizes=(4,), step=4).transform(img).values
    gray = DenseSift(bin_sizes=(4,), step=4, colour="gray").transform(img).values
    assert np.array_equal(plain, gray)


def test_colour_and_polarity_are_refused_where_they_cannot_apply() -> None:
    with pytest.raises(ConfigError, match="colour"):
        BovwConfig(colour="hsv")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="descriptor=dense"):
        BovwConfig(descriptor="keypoint", colour="opponent")
    with pytest.raises(ConfigError, match="numpy"):
        BovwConfig(sift_backend="opencv", window=2.0, polarity="unsigned")


def test_the_settings_reach_the_extractor_and_the_memory_plan() -> None:
    cfg = build_config(BovwConfig, {"colour": "opponent", "polarity": "unsigned"})
    sift = make_extractor(cfg)
    assert (sift.colour, sift.polarity, sift.dim) == ("opponent", "unsigned", 384)
    assert descriptor_dim(cfg) == 384
    assert descriptor_bytes(cfg) == descriptor_bytes(BovwConfig()) + 256 * 4


def test_photo_takes_unsigned_orientations_and_every_other_preset_plain_gray_sift() -> None:
    photo = build_config(BovwConfig, {"preset": "photo"})
    assert (photo.colour, photo.polarity, photo.levels) == ("gray", "unsigned", (1, 2, 4))
    for name in BovwConfig.PRESETS:
        if name != "photo":
            cfg = build_config(BovwConfig, {"preset": name})
            assert (cfg.colour, cfg.polarity) == ("gray", "signed")
