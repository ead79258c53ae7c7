"""The model zoo: every registered ConvNet, and the functions that look them up.

Importing this module imports each model module (``lenet``, ``alexnet``), whose
decorators fill :mod:`~bovw_vs_convnet.convnet.registry`; the look-ups below can
therefore trust the registry to be complete. A new model module is one more import
here. Example::

    from bovw_vs_convnet.convnet.models import create_model, list_models
    list_models("alex*")
    model = create_model("lenet5-1998", num_classes=10, in_channels=1)
"""

from __future__ import annotations

import fnmatch

from torch import nn

# Imported for their side effect: each registers its builders.
from bovw_vs_convnet.convnet import alexnet, lenet  # noqa: F401
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.registry import ModelSpec, register_model, registered
from bovw_vs_convnet.errors import ConfigError

__all__ = [
    "ModelSpec",
    "check_config",
    "count_parameters",
    "create_model",
    "get_model_spec",
    "list_models",
    "register_model",
    "resolve_ablation",
]


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (e.g. ``"alex*"``), sorted."""
    return sorted(n for n in registered() if fnmatch.fnmatchcase(n, pattern))


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ConfigError listing the known names otherwise."""
    try:
        return registered()[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def create_model(
    name: str, *, num_classes: int = 10, in_channels: int = 1, init: str = "auto"
) -> nn.Module:
    """Build the registered model ``name`` for ``num_classes`` classes and ``in_channels`` channels.

    A model with fixed input channels (torchvision's AlexNet) is built with those; the
    pipeline replicates grayscale images to match. ``init`` (the ``init`` setting):
    ``"auto"`` keeps the model's own initialisation; any other scheme is drawn afresh
    by the model's ``init_weights`` (``alexnet-2012``: ``kaiming`` or ``paper``), and a
    model without one, or a scheme it does not know, is a ConfigError.
    """
    if num_classes < 1 or in_channels < 1:
        raise ConfigError(
            f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}"
        )
    spec = get_model_spec(name)
    channels = spec.fixed_channels or in_channels
    model: nn.Module = spec.builder(num_classes=num_classes, in_channels=channels)
    if init != "auto":
        reinit = getattr(model, "init_weights", None)
        if reinit is None:
            raise ConfigError(
                f"model {name!r} has only its own initialisation (init=auto)", key="init"
            )
        try:
            reinit(init)
        except ValueError as exc:
            raise ConfigError(str(exc), key="init") from None
    return model


def check_config(config: ConvNetConfig) -> None:
    """Refuse an unknown ``model`` or ``ablate`` before any data is read (the registry's check).

    Raises ConfigError whose ``key`` names the setting, so a suite points at its line.
    """
    try:
        get_model_spec(config.model)
    except ConfigError as exc:
        raise ConfigError(str(exc), key="model") from None
    try:
        get_model_spec(resolve_ablation(config.model, config.ablate))
    except ConfigError as exc:
        raise ConfigError(str(exc), key="ablate") from None


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
    if name not in registered():
        prefix = f"{model}-no-"
        known = sorted(n.removeprefix(prefix) for n in registered() if n.startswith(prefix))
        raise ConfigError(
            f"model {model!r} has no ablation {ablate!r}; known: {', '.join(known) or 'none'}"
        )
    return name
