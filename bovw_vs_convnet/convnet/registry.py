"""A small model registry in the manner of timm: register_model, list_models, create_model.

Each entry records what the pipeline needs to feed the model: the input size it
was designed for, how smaller or larger images are brought to it (``pad`` as
LeNet-5 pads 28×28 digits to 32×32, or ``resize``), and whether its first
convolution adapts to the dataset's channels or needs three (grayscale is then
replicated).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from bovw_vs_convnet.errors import ConfigError

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes:
        name: the ``--model`` name.
        builder: ``builder(num_classes=K, in_channels=C) -> nn.Module``.
        input_size: side in pixels of the square input the model was designed for.
        fit: ``pad`` (centre-pad smaller images, resize larger ones) or ``resize`` (always resize).
        fixed_channels: the channels the model insists on (grayscale is replicated), or None
            when the first convolution takes the dataset's channels.
        description: one line for ``bvc models``.
    """

    name: str
    builder: ModelBuilder
    input_size: int
    fit: Literal["pad", "resize"]
    fixed_channels: int | None
    description: str


_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    input_size: int,
    fit: Literal["pad", "resize"] = "resize",
    fixed_channels: int | None = None,
    description: str = "",
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``builder(num_classes, in_channels)`` under ``name``."""

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = ModelSpec(name, builder, input_size, fit, fixed_channels, description)
        return builder

    return decorate


def _ensure_loaded() -> None:
    # The model modules register themselves on import.
    from bovw_vs_convnet.convnet import alexnet, lenet  # noqa: F401


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (e.g. ``"alex*"``), sorted."""
    _ensure_loaded()
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ConfigError listing the known names otherwise."""
    _ensure_loaded()
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def create_model(name: str, *, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Build the registered model ``name`` for ``num_classes`` classes and ``in_channels`` channels.

    A model with fixed input channels (torchvision's AlexNet) is built with those; the
    pipeline replicates grayscale images to match.
    """
    if num_classes < 1 or in_channels < 1:
        raise ConfigError(
            f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}"
        )
    spec = get_model_spec(name)
    channels = spec.fixed_channels or in_channels
    return spec.builder(num_classes=num_classes, in_channels=channels)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``), as the papers count them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def resolve_ablation(model: str, ablate: str) -> str:
    """The registry name of ``model`` with depth ablation ``ablate`` (``""``/``none``: unchanged).

    ``ablate`` names removed layers joined by ``-`` or ``,``: ``fc7``, ``fc6-fc7``,
    ``conv3-conv4-fc6-fc7`` (Zeiler & Fergus 2014, Table 3).
    """
    key = ablate.strip().lower().replace(",", "-").replace("+", "-").replace(" ", "")
    if key in ("", "none"):
        return model
    name = f"{model}-no-{key}"
    _ensure_loaded()
    if name not in _MODELS:
        known = sorted(n.split("-no-", 1)[1] for n in _MODELS if n.startswith(f"{model}-no-"))
        raise ConfigError(
            f"model {model!r} has no ablation {ablate!r}; known: {', '.join(known) or 'none'}"
        )
    return name
