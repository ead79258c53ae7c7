"""The model registry, in the manner of timm: a container the model modules fill.

Each model module decorates its builders with :func:`register_model`; this module
imports no model, so it can be imported by them without a circle. The public
look-ups (``list_models``, ``get_model_spec``, ``create_model``) live in
:mod:`bovw_vs_convnet.convnet.models`, which imports every model module first, so
they never answer from a half-filled registry.

Each entry records what the pipeline needs to feed the model: the input size it
was designed for, how smaller or larger images are brought to it (``pad`` as
LeNet-5 pads 28×28 digits to 32×32, or ``resize``), and whether its first
convolution adapts to the dataset's channels or needs three (grayscale is then
replicated).

The built-in names are also written out here (:data:`BUILTIN_MODELS`), so that an
unknown ``--model`` or ``ablate`` is refused (:func:`check_config`) without importing
the model modules, and with them torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from bovw_vs_convnet.errors import ConfigError, unknown_name

if TYPE_CHECKING:
    from torch import nn

    from bovw_vs_convnet.convnet.config import ConvNetConfig

ModelBuilder = Callable[..., "nn.Module"]

# The largest input the 32-px nets (LeNet-5, alexnet-small) are fed: larger images are
# brought to at most this side (convnet/input_size.py)
SMALL_MAX_INPUT = 128


def stem_stride(input_size: int, design: int = 32) -> int:
    """The first convolution's stride for a small net fed ``input_size`` px: its stem.

    1 below 1.5 times the design size, 2 from there: a 64-128 px input then costs the
    net about 1-4 times its 32-px work, and its receptive fields grow with the image
    (whose object is as many pixels wider as the input is larger).
    """
    return 1 if input_size * 2 < design * 3 else 2


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
        max_input_size: the largest side :mod:`~bovw_vs_convnet.convnet.input_size` may
            choose for larger images (``input_size=auto``); equal to ``input_size`` for a
            model that keeps its design size whatever the images. A builder of a model
            that may grow takes ``input_size=S`` too.
    """

    name: str
    builder: ModelBuilder
    input_size: int
    fit: Literal["pad", "resize"]
    fixed_channels: int | None
    description: str
    max_input_size: int = 0  # 0: input_size (set in __post_init__)

    def __post_init__(self) -> None:
        if self.max_input_size < self.input_size:
            object.__setattr__(self, "max_input_size", self.input_size)


_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    input_size: int,
    fit: Literal["pad", "resize"] = "resize",
    fixed_channels: int | None = None,
    description: str = "",
    max_input_size: int = 0,
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``builder(num_classes, in_channels)`` under ``name``.

    ``max_input_size`` above ``input_size``: the model may be fed larger images at up to
    that side, and its builder then also takes ``input_size=S``.
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = ModelSpec(
            name, builder, input_size, fit, fixed_channels, description, max_input_size
        )
        return builder

    return decorate


def registered() -> Mapping[str, ModelSpec]:
    """A read-only view of what has been registered so far (by the modules imported so far)."""
    return MappingProxyType(_MODELS)


# What lenet.py and alexnet.py register, known without importing them (and torch);
# tests/test_convnet_models.py checks it against the registry they fill.
BUILTIN_MODELS = (
    "alexnet",
    "alexnet-2012",
    "alexnet-2012-no-conv3-conv4-fc6-fc7",
    "alexnet-2012-no-fc6-fc7",
    "alexnet-2012-no-fc7",
    "alexnet-small",
    "alexnet-small-no-conv3-conv4-fc6-fc7",
    "alexnet-small-no-fc6-fc7",
    "alexnet-small-no-fc7",
    "lenet5",
    "lenet5-1998",
)


def model_names() -> list[str]:
    """Every model name, sorted: the built-in ones and any registered since (a user's own)."""
    return sorted({*BUILTIN_MODELS, *_MODELS})


def resolve_ablation(model: str, ablate: str) -> str:
    """The registry name of ``model`` with depth ablation ``ablate`` (``""``/``none``: unchanged).

    ``ablate`` names removed layers joined by ``-`` or ``,``: ``fc7``, ``fc6-fc7``,
    ``conv3-conv4-fc6-fc7`` (Zeiler & Fergus 2014, Table 3).
    """
    key = ablate.strip().lower().replace(",", "-").replace("+", "-").replace(" ", "")
    if key in ("", "none"):
        return model
    name = f"{model}-no-{key}"
    if name not in model_names():
        prefix = f"{model}-no-"
        known = [n.removeprefix(prefix) for n in model_names() if n.startswith(prefix)]
        raise ConfigError(
            unknown_name("ablation", ablate, known, where=f" of model {model!r}"), key="ablate"
        )
    return name


def check_config(config: ConvNetConfig) -> None:
    """Refuse an unknown ``model`` or ``ablate`` before torch is imported or data is read.

    Raises ConfigError whose ``key`` names the setting, so a suite points at its line.
    """
    if config.model not in model_names():
        raise ConfigError(unknown_name("model", config.model, model_names()), key="model")
    resolve_ablation(config.model, config.ablate)
