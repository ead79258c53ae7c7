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
from bovw_vs_convnet.convnet.registry import (
    ModelSpec,
    check_config,
    register_model,
    registered,
    resolve_ablation,
)
from bovw_vs_convnet.errors import ConfigError, unknown_name

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
        raise ConfigError(unknown_name("model", name, list_models()), key="model") from None


def create_model(
    name: str,
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    init: str = "auto",
    input_size: int | None = None,
) -> nn.Module:
    """Build the registered model ``name`` for ``num_classes`` classes and ``in_channels`` channels.

    A model with fixed input channels (torchvision's AlexNet) is built with those; the
    pipeline replicates grayscale images to match. ``init`` (the ``init`` setting):
    ``"auto"`` keeps the model's own initialisation; any other scheme is drawn afresh
    by the model's ``init_weights`` (``alexnet-2012``: ``kaiming`` or ``paper``), and a
    model without one, or a scheme it does not know, is a ConfigError. ``input_size``:
    the side it will be fed (None: its design size); a model registered with a larger
    ``max_input_size`` is built for it (its stem, :mod:`.input_size`), any other is
    built as designed.
    """
    if num_classes < 1 or in_channels < 1:
        raise ConfigError(
            f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}"
        )
    spec = get_model_spec(name)
    channels = spec.fixed_channels or in_channels
    extra = {}
    if input_size is not None and input_size != spec.input_size < spec.max_input_size:
        extra["input_size"] = input_size  # the stem for that size (lenet.py, alexnet.py)
    model: nn.Module = spec.builder(num_classes=num_classes, in_channels=channels, **extra)
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


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``), as the papers count them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
