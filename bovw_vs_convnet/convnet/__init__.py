"""ConvNets: LeNet-5 and AlexNet variants, a model registry, the trainer and the pipeline.

    from bovw_vs_convnet.convnet import create_model, list_models
    list_models("alex*")
    model = create_model("lenet5-1998", num_classes=10, in_channels=1)

Importing this package does not import torch; the names below load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["count_parameters", "create_model", "get_model_spec", "list_models", "register_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bovw_vs_convnet.convnet import registry

        return getattr(registry, name)
    raise AttributeError(name)
