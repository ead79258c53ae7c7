"""Input adaptation and augmentation on whole batches, on the training device.

Images stay uint8 (B, C, H, W) until a batch is drawn; then :class:`BatchAugment`
shifts, flips and distorts the batch at its native resolution, and
:class:`InputAdapter` pads or resizes it to the model's input size, replicates
grayscale where the model needs three channels, and normalises. No per-image
Python loop runs in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bovw_vs_convnet.convnet.config import AUGMENTATIONS
from bovw_vs_convnet.convnet.input_size import CROP_RATIO, CROP_SCALE


class InputAdapter(nn.Module):
    """uint8 (B, C, H, W) → normalised float (B, C', S, S) at the model's input size.

    ``fit="pad"`` centre-pads images smaller than ``size`` but at least half of it
    (LeNet-5's 28→32 padding) and resizes the others (an 8×8 digit padded into 32×32
    would vanish under the pooling layers); ``fit="resize"`` always resizes (bilinear, with
    antialiasing when shrinking). ``out_channels`` larger than the data's replicates
    a grayscale channel. ``mean``/``std`` are per data channel, in [0, 1] units.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        image_hw: tuple[int, int],
        in_channels: int,
        size: int,
        fit: str,
        out_channels: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.image_hw, self.size, self.fit = image_hw, size, fit
        self.in_channels, self.out_channels = in_channels, out_channels
        if out_channels != in_channels and in_channels != 1:
            raise ValueError(f"cannot adapt {in_channels} channels to {out_channels}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        h, w = image_hw
        if (h, w) == (size, size):
            self.mode = "none"
        elif fit == "pad" and size // 2 <= min(h, w) and max(h, w) <= size:
            self.mode = "pad"
        else:
            self.mode = "resize"

    def describe(self) -> dict[str, object]:
        """What is done to each image, for the run record."""
        return {
            "image_size": list(self.image_hw),
            "input_size": [self.size, self.size],
            "resize": self.mode,
            "channels": f"{self.in_channels}->{self.out_channels}"
            + (" (replicated)" if self.out_channels != self.in_channels else ""),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)  # (B, C, H, W) in [0, 1]
        x = (x - self.mean) / self.std  # (B, C, H, W)
        if self.mode == "pad":
            h, w = x.shape[-2:]
            top, left = (self.size - h) // 2, (self.size - w) // 2
            # Pad with the normalised value of black, as the raw images would be padded.
            value = -self.mean / self.std  # (1, C, 1, 1)
            out = value.expand(x.shape[0], -1, self.size, self.size).clone()
            out[:, :, top : top + h, left : left + w] = x
            x = out  # (B, C, S, S)
        elif self.mode == "resize" and tuple(x.shape[-2:]) != (self.size, self.size):
            # (a batch already at the input size: random-resized crops, BatchAugment "crop")
            x = F.interpolate(
                x,
                size=(self.size, self.size),
                mode="bilinear",
                align_corners=False,
                antialias=x.shape[-1] > self.size,
            )
        if self.out_channels != self.in_channels:
            x = x.expand(-1, self.out_channels, -1, -1)  # (B, 3, S, S)
        return x


class BatchAugment:
    """Random shifts, horizontal flips, small affine distortions and colour jitter of a batch.

    ``translate``: shift by up to ``max_shift`` pixels each way, filling with black
    (the random-crop-after-padding of AlexNet and CIFAR recipes). ``flip``: mirror half
    the images. ``affine``: LeNet-style distortions (Simard et al. 2003; LeCun et al.
    1998 section V.C): rotation ±``max_rotate`` degrees, scale ×(1 ± ``max_scale``),
    shear ±``max_shear``. ``jitter``: brightness, contrast and saturation each scaled by
    ×(1 ± ``max_jitter``) per image (AlexNet's colour augmentation in torchvision's
    ``ColorJitter`` form), for RGB batches. ``crop``: a random-resized crop of each image
    (``crop_scale`` of its area, aspect in ``crop_ratio``, at a random place), resized to
    ``crop_size`` × ``crop_size`` (torchvision's ``RandomResizedCrop`` on the batch; for
    images larger than the model's input, :mod:`.input_size`); it runs first, so the
    others work on the model's input size. Draws come from ``generator`` so a seeded
    epoch repeats.
    """

    def __init__(
        self,
        kinds: Sequence[str],
        max_shift: int = 2,
        max_rotate: float = 10.0,
        max_scale: float = 0.1,
        max_shear: float = 0.1,
        max_jitter: float = 0.2,
        crop_size: int = 32,
        crop_scale: tuple[float, float] = CROP_SCALE,
        crop_ratio: tuple[float, float] = CROP_RATIO,
    ) -> None:
        unknown = set(kinds) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"unknown augmentation {sorted(unknown)[0]!r}; known: {AUGMENTATIONS}")
        self.kinds = tuple(kinds)
        self.max_shift, self.max_rotate = max_shift, max_rotate
        self.max_scale, self.max_shear = max_scale, max_shear
        self.max_jitter = max_jitter
        self.crop_size, self.crop_scale, self.crop_ratio = crop_size, crop_scale, crop_ratio

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment the float (B, C, H, W) batch ``x`` (values in any range, 0 = black)."""
        if "crop" in self.kinds:
            x = self._crop(x, generator)  # (B, C, S, S)
        if "affine" in self.kinds:
            x = self._affine(x, generator)
        if "translate" in self.kinds and self.max_shift > 0:
            x = self._translate(x, generator)
        if "jitter" in self.kinds and x.shape[1] == 3 and self.max_jitter > 0:
            x = self._jitter(x, generator)
        if "flip" in self.kinds:
            flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5  # (B,)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        return x

    def _translate(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.max_shift
        padded = F.pad(x, (p, p, p, p))  # (B, C, H+2p, W+2p)
        off = torch.randint(0, 2 * p + 1, (2, b), generator=g, device=x.device)  # (2, B)
        rows = off[0].view(b, 1) + torch.arange(h, device=x.device)  # (B, H)
        cols = off[1].view(b, 1) + torch.arange(w, device=x.device)  # (B, W)
        bi = torch.arange(b, device=x.device).view(b, 1, 1)
        out = padded.permute(0, 2, 3, 1)[bi, rows.view(b, h, 1), cols.view(b, 1, w)]  # (B, H, W, C)
        return out.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)

    def _crop(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, s = x.shape[0], self.crop_size
        u = torch.rand(4, b, generator=g, device=x.device)  # (4, B) in [0, 1)
        area = self.crop_scale[0] + u[0] * (self.crop_scale[1] - self.crop_scale[0])
        lo, hi = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        aspect = torch.exp(lo + u[1] * (hi - lo))  # width over height, of the image's shares
        w = torch.sqrt(area * aspect).clamp(max=1.0)  # shares of the image's width, height
        h = torch.sqrt(area / aspect).clamp(max=1.0)
        cx, cy = (u[2] * 2 - 1) * (1 - w), (u[3] * 2 - 1) * (1 - h)  # centres in [-1, 1]
        zero = torch.zeros_like(w)
        theta = torch.stack([torch.stack([w, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)
        # sampled at twice the size and averaged: a shrinking crop without aliasing
        shrink = x.shape[-2] > s or x.shape[-1] > s
        out = s * 2 if shrink else s
        grid = F.affine_grid(theta.to(x.dtype), [b, x.shape[1], out, out], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return F.avg_pool2d(x, 2) if shrink else x  # (B, C, S, S)

    def _jitter(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b = x.shape[0]
        f = 1 + (torch.rand(3, b, 1, 1, 1, generator=g, device=x.device) * 2 - 1) * self.max_jitter
        top = x.amax(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1): keeps the value range
        gray = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = gray + (x - gray) * f[2]  # saturation, (B, C, H, W)
        mean = gray.mean(dim=(2, 3), keepdim=True)  # (B, 1, 1, 1)
        x = mean + (x - mean) * f[1]  # contrast
        return torch.minimum((x * f[0]).clamp_min(0), top)  # brightness, within [0, max]

    def _affine(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b = x.shape[0]
        u = torch.rand(4, b, generator=g, device=x.device) * 2 - 1  # (4, B) in [-1, 1]
        angle = u[0] * math.radians(self.max_rotate)
        scale = 1 + u[1] * self.max_scale
        shear = u[2] * self.max_shear
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin + shear, torch.zeros_like(cos)], 1),
             torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1,
        )  # fmt: skip  # (B, 2, 3): kept as the matrix's two rows
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
