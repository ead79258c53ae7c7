"""ConvNets: LeNet-5 and AlexNet variants, a model registry, the trainer and the pipeline.

    from bovw_vs_convnet.convnet import create_model, list_models
    list_models("alex*")
    model = create_model("lenet5-1998", num_classes=10, in_channels=1)

Layers, each importing only those below it (``pyproject.toml``'s import contract is
the full list): ``registry`` and ``config`` (no torch) < ``lenet``, ``alexnet`` (they
register themselves) < ``models``, ``augment``, ``batches``, ``device``, ``recipes``,
``optim``, ``checkpoint`` < ``train`` (the Trainer) < ``distributed`` < ``pipeline`` (the
harness's ``convnet`` pipeline) < ``bundle``.

Importing this package does not import torch (``bvc run bovw`` never needs it); the
names below load :mod:`.models` on first use.
"""

from __future__ import annotations

from typing import Any

from bovw_vs_convnet.threads import passive_waiting

# OpenMP's idle threads sleep rather than spin (unless the user set otherwise): libgomp
# reads this when torch loads it, so before any module of this package imports torch
passive_waiting()

__all__ = ["count_parameters", "create_model", "get_model_spec", "list_models", "register_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bovw_vs_convnet.convnet import models

        return getattr(models, name)
    raise AttributeError(name)
