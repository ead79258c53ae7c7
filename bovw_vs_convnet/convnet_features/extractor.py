"""A trained network read at one layer: images in, that layer's activations out.

:class:`LayerReader` brings each image to what the network was trained on (its
channels, then the source run's own input adaptation: pad or resize to the model's
input size, channel replication, the source's normalisation) and runs the network
up to the layer named, in evaluation mode (dropout off), without gradients. The
forward pass stops at that layer (a hook raises once it has the activations), so an
early layer costs only the layers below it, and no in-place operation after it can
change what was read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bovw_vs_convnet.convnet.augment import InputAdapter
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError, DataError

# ITU-R BT.601 luma: an RGB image for a network trained on grayscale ones
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class InputSpec:
    """How a network's training images were fed to it (the source run's input adaptation).

    Attributes: ``in_channels`` the channels it was trained on (its data's), ``input_size``
    the model's square input side, ``fit`` ``pad`` or ``resize``, ``out_channels`` the
    channels its first layer takes (grayscale replicated up to them), ``mean``/``std``
    per channel of ``in_channels``, in [0, 1] units.
    """

    in_channels: int
    input_size: int
    fit: str
    out_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def adapter(self, image_hw: tuple[int, int]) -> InputAdapter:
        """The source's adaptation for images of ``image_hw`` (H, W)."""
        return InputAdapter(
            image_hw,
            self.in_channels,
            self.input_size,
            self.fit,
            self.out_channels,
            list(self.mean),
            list(self.std),
        )


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (N, H, W, C) images as ``channels`` channels: grayscale replicated, RGB to luma."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 1:
        return np.repeat(images, channels, axis=-1)
    if have == 3 and channels == 1:
        gray = images.astype(np.float32) @ _LUMA  # (N, H, W)
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., None]
    raise DataError(f"cannot feed {have}-channel images to a network trained on {channels}")


def layer_names(model: nn.Module) -> list[str]:
    """The names :func:`find_layer` takes for ``model``: penultimate, pool and its modules."""
    named = [name for name, _ in model.named_modules() if name]
    special = [
        "penultimate",
        *(["pool"] if isinstance(getattr(model, "classifier", None), nn.Module) else []),
    ]
    return special + named


def find_layer(model: nn.Module, layer: str) -> tuple[nn.Module, bool]:
    """The module to read for ``layer`` and whether its input (True) or output is read.

    ``penultimate``: the input of the output layer (the classifier's last module, or the
    network's last module); ``pool``: the classifier's input; else a module name of
    ``model.named_modules()``, its output. ConfigError (key ``layer``) for another name.
    """
    classifier = getattr(model, "classifier", None)
    if layer == "penultimate":
        if isinstance(classifier, nn.Sequential) and len(classifier):
            return classifier[-1], True
        leaves = [m for m in model.modules() if not list(m.children())]
        return leaves[-1], True
    if layer == "pool" and isinstance(classifier, nn.Module):
        return classifier, True
    modules = dict(model.named_modules())
    if layer and layer in modules:
        return modules[layer], False
    known = layer_names(model)
    shown = ", ".join(known[:24]) + (", ..." if len(known) > 24 else "")
    raise ConfigError(f"the network has no layer {layer!r}; known: {shown}", key="layer")


class _Read(Exception):  # a signal that carries the activations, not an error
    """Raised by the hook with the activations, which stops the forward pass there."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value


def _raise_input(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    raise _Read(inputs[0])


def _raise_output(module: nn.Module, inputs: Sequence[torch.Tensor], output: torch.Tensor) -> None:
    raise _Read(output)


class LayerReader:
    """``model`` read at ``layer`` for images of ``image_hw`` with ``data_channels`` channels.

    Attributes: ``layer`` (the name asked for), ``adapter`` (the source's adaptation for
    these images), ``channels`` (what the images are converted to first).
    """

    def __init__(
        self,
        model: nn.Module,
        spec: InputSpec,
        layer: str,
        image_hw: tuple[int, int],
        data_channels: int,
    ) -> None:
        if data_channels not in (1, 3) or spec.in_channels not in (1, 3):
            raise DataError(f"images of {data_channels} channels cannot be read by this network")
        self.model = model.float().eval()
        self.spec, self.layer = spec, layer
        self.module, self.reads_input = find_layer(self.model, layer)
        self.adapter = spec.adapter(image_hw).eval()
        self.channels = spec.in_channels
        self.data_channels = data_channels

    def describe(self) -> dict[str, object]:
        """What is done to each image before the network, for the run record."""
        conversion = "as they are"
        if self.data_channels != self.channels:
            conversion = "replicated to RGB" if self.data_channels == 1 else "RGB to luma (BT.601)"
        return {**self.adapter.describe(), "data_channels": f"{self.data_channels} ({conversion})"}

    @torch.no_grad()
    def read(self, pixels: np.ndarray) -> np.ndarray:
        """(N, D) float32 activations of uint8 (N, H, W, C) ``pixels`` at the layer, flattened."""
        x = torch.from_numpy(np.ascontiguousarray(to_channels(pixels, self.channels)))
        x = self.adapter(x.permute(0, 3, 1, 2))  # (N, C', S, S) normalised
        hook = (
            self.module.register_forward_pre_hook(_raise_input)
            if self.reads_input
            else self.module.register_forward_hook(_raise_output)
        )
        try:
            self.model(x)
        except _Read as got:
            value = got.value
        else:
            raise ConfigError(f"layer {self.layer!r} is not on the network's path", key="layer")
        finally:
            hook.remove()
        return value.detach().float().reshape(len(pixels), -1).numpy().astype(np.float32)

    def features(self, images: ImageSet, batch_size: int) -> np.ndarray:
        """(len(images), D) activations of every image, ``batch_size`` at a time."""
        if len(images) == 0:
            raise DataError("convnet-features got an empty image set")
        parts = [
            self.read(images.subset(np.arange(s, min(s + batch_size, len(images)))).array())
            for s in range(0, len(images), batch_size)
        ]
        return np.concatenate(parts)
