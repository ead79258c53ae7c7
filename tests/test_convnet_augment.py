"""Input adaptation and batch augmentation on the device."""

from __future__ import annotations

import torch

from bovw_vs_convnet.convnet.augment import BatchAugment, InputAdapter


def test_adapter_pads_28_to_32_with_normalised_black() -> None:
    adapter = InputAdapter((28, 28), 1, 32, "pad", 1, mean=[0.5], std=[0.25])
    x = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)  # white images
    out = adapter(x)  # (2, 1, 32, 32)
    assert out.shape == (2, 1, 32, 32)
    assert out[0, 0, 0, 0].item() == -2.0  # (0 - 0.5) / 0.25
    assert out[0, 0, 2, 2].item() == 2.0  # (1 - 0.5) / 0.25
    assert adapter.describe()["resize"] == "pad"


def test_adapter_resizes_and_replicates_grayscale_for_alexnet() -> None:
    adapter = InputAdapter((28, 28), 1, 227, "resize", 3, mean=[0.0], std=[1.0])
    out = adapter(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    assert out.shape == (2, 3, 227, 227)
    assert adapter.describe()["channels"] == "1->3 (replicated)"


def test_translate_moves_a_pixel_by_at_most_the_shift() -> None:
    x = torch.zeros(64, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    out = BatchAugment(["translate"], max_shift=2)(x, torch.Generator().manual_seed(0))
    pos = out.view(64, -1).argmax(1)  # (64,)
    rows, cols = pos // 9, pos % 9
    assert out.sum().item() == 64.0  # nothing lost inside a 2-pixel shift
    assert int((rows - 4).abs().max()) == 2 and int((cols - 4).abs().max()) == 2


def test_flip_mirrors_about_half_the_batch_reproducibly() -> None:
    x = torch.arange(4.0).view(1, 1, 1, 4).repeat(100, 1, 1, 1)
    aug = BatchAugment(["flip"])
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    flipped = int((a[:, 0, 0, 0] == 3.0).sum())
    assert torch.equal(a, b)
    assert 35 <= flipped <= 65


def test_adapter_resizes_images_under_half_the_input_instead_of_padding() -> None:
    adapter = InputAdapter((8, 8), 1, 32, "pad", 1, mean=[0.0], std=[1.0])
    out = adapter(torch.full((2, 1, 8, 8), 255, dtype=torch.uint8))  # (2, 1, 32, 32)
    assert adapter.describe()["resize"] == "resize"
    assert out.shape == (2, 1, 32, 32) and out.min().item() == 1.0  # filled, not padded
