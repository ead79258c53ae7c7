"""The ConvNet model bundle: weights as safetensors, the input adaptation as JSON.

``weights.safetensors`` holds the trained model's state dict (the epoch the run kept),
tensors only: a safetensors file is a JSON header and raw tensor bytes, and reading
it runs nothing. The manifest's ``convnet`` part says how to rebuild the network and
feed it: the registered model, its classes and input channels, and the run's input
adaptation (:class:`~.augment.InputAdapter`: the data's image size, the model's input
size, pad or resize, channel replication, the per-channel normalisation mean and std
of the training images) and whether scores average the mirror image (test-time
flip). Loading checks the adaptation against the model and the manifest's input (the
image size and channels, the model's input size and channels, one finite mean and one
finite, positive std per channel), builds the model on PyTorch's meta device to
compare every weight's shape before any memory is taken, refuses weights that are not
finite, then builds the model from the registry, loads the weights strictly (every
tensor, every shape), and scores through the run's own
:class:`~.pipeline.ConvNetPipeline` and :class:`~.train.Trainer` on the CPU in fp32.
A run trained on a GPU under autocast (bf16) therefore predicts with logits a little
different from its stored ones (its top-1 agrees but for near ties).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.augment import InputAdapter
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.models import create_model, get_model_spec
from bovw_vs_convnet.convnet.pipeline import ConvNetPipeline
from bovw_vs_convnet.convnet.train import Trainer
from bovw_vs_convnet.estimators.estimator_state import StateError
from bovw_vs_convnet.onnx_export import save_onnx
from bovw_vs_convnet.protocol import RunContext

WEIGHTS = "weights.safetensors"
FORMAT = "bvc-convnet-1"  # the safetensors header's metadata["format"]


def save_bundle(pipeline: ConvNetPipeline) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of the trained ``pipeline``'s bundle and what its manifest says of it."""
    from safetensors.torch import save

    trainer = pipeline.trainer
    if trainer is None:
        raise ValueError("the ConvNet pipeline is not fitted")
    adapter = trainer.adapter
    # contiguous CPU copies: channels_last and CUDA tensors are stored as plain ones
    weights = {k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
    described = {
        "model_name": pipeline.model_name,
        "in_channels": adapter.in_channels,
        "preprocessing": {
            "image_size": [int(v) for v in adapter.image_hw],
            "input_size": int(adapter.size),
            "fit": adapter.fit,
            "resize": adapter.mode,
            "out_channels": int(adapter.out_channels),
            "mean": [float(v) for v in adapter.mean.flatten().tolist()],
            "std": [float(v) for v in adapter.std.flatten().tolist()],
            "tta_flip": bool(pipeline.tta_flip),
        },
        "channels_last": bool(trainer.channels_last),
        "amp": trainer.amp,
        "weights": WEIGHTS,
    }
    return {WEIGHTS: save(weights, metadata={"format": FORMAT})}, described


def _weights(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise StateError(f"{WEIGHTS} is not a safetensors file ({exc})") from None
    return tensors


def load_bundle(
    files: Mapping[str, bytes], manifest: Mapping[str, Any], context: RunContext
) -> ConvNetPipeline:
    """The trained ConvNet the bundle's ``files`` hold, scoring on the CPU.

    StateError when the weights are not a safetensors file of this network (a tensor
    missing, extra or of another shape) or the manifest's input adaptation is not one.
    """
    if WEIGHTS not in files:
        raise StateError(f"the bundle has no {WEIGHTS}")
    tensors = _weights(files[WEIGHTS])
    part = manifest.get("convnet")
    if not isinstance(part, dict):
        raise StateError("the bundle manifest has no convnet part")
    config = build_config(ConvNetConfig, manifest["config"])
    # the CPU, eagerly, images read in this process
    config = dataclasses.replace(config, compile=False, workers=0)
    pipeline = ConvNetPipeline(config, context)
    try:
        pre = part["preprocessing"]
        name, in_channels = str(part["model_name"]), int(part["in_channels"])
        h, w = (int(v) for v in pre["image_size"])
        adapter = InputAdapter(
            (h, w),
            in_channels,
            int(pre["input_size"]),
            str(pre["fit"]),
            int(pre["out_channels"]),
            [float(v) for v in pre["mean"]],
            [float(v) for v in pre["std"]],
        )
        tta_flip = bool(pre["tta_flip"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"the bundle's input adaptation is not valid ({exc})") from None
    if name != pipeline.model_name:
        raise StateError(f"the bundle holds {name!r}, its settings name {pipeline.model_name!r}")
    _check_adapter(adapter, name, pre, manifest, config.input_size)
    n_classes = len(manifest["class_names"])
    size = adapter.size  # the input the run chose (convnet/input_size.py)
    check_weights(tensors, name, n_classes, in_channels, size)
    model = create_model(name, num_classes=n_classes, in_channels=in_channels, input_size=size)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        line = str(exc).splitlines()[0]
        raise StateError(f"{WEIGHTS} does not hold the weights of {name!r} ({line})") from None
    device = torch.device("cpu")
    pipeline.trainer = Trainer(
        model,
        adapter,
        None,
        config,
        device,
        seed=context.seed,
        identity={},
        checkpoint_path=None,
        progress=False,
    )
    pipeline.device = str(device)
    pipeline.tta_flip = tta_flip
    pipeline.n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return pipeline


def _check_adapter(
    adapter: InputAdapter,
    name: str,
    pre: Mapping[str, Any],
    manifest: Mapping[str, Any],
    setting: int | str = "auto",
) -> None:
    """StateError unless the input adaptation is the one model ``name`` takes from the
    manifest's input: its image size and channels, the model's input size (or, for
    larger images, one the ``input_size`` ``setting`` allows: the size given, or with
    ``auto`` up to the model's ``max_input_size``), fit and channels, one finite mean
    and one finite, positive std per channel.
    """
    spec = get_model_spec(name)
    sizes = (
        {spec.input_size, int(setting)}
        if setting != "auto"
        else set(range(spec.input_size, spec.max_input_size + 1))
    )
    size = tuple(int(v) for v in manifest["input"]["size"])
    channels = int(manifest["input"]["channels"])
    if tuple(adapter.image_hw) != size or adapter.in_channels != channels:
        raise StateError(f"the bundle's input adaptation does not take its {size} input")
    if (
        adapter.mode != pre.get("resize")
        or adapter.size not in sizes
        or adapter.fit != spec.fit
        or adapter.out_channels != (spec.fixed_channels or channels)
    ):
        raise StateError(f"the bundle's input adaptation does not fit model {name!r}")
    mean, std = adapter.mean.flatten(), adapter.std.flatten()
    if len(mean) != channels or len(std) != channels:
        raise StateError("the bundle's mean and std do not give one value per channel")
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise StateError("the bundle's mean and std are not finite, positive numbers")


def check_weights(
    tensors: Mapping[str, torch.Tensor],
    name: str,
    n_classes: int,
    in_channels: int,
    input_size: int | None = None,
) -> None:
    """StateError unless ``tensors`` are finite and have the names and shapes of model
    ``name`` (built on the meta device: no memory taken, whatever the class count) for
    ``input_size`` (None: its design size).
    """
    with torch.device("meta"):
        model = create_model(
            name, num_classes=n_classes, in_channels=in_channels, input_size=input_size
        )
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != shapes:
        wrong = sorted(set(got) ^ set(shapes)) or sorted(k for k in got if got[k] != shapes[k])
        raise StateError(
            f"{WEIGHTS} does not hold the weights of {name!r} for {n_classes} classes "
            f"({wrong[0][:60]!r})"
        )
    for key, tensor in sorted(tensors.items()):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise StateError(f"{WEIGHTS}: {key!r} holds values that are not finite")


class _Scorer(torch.nn.Module):
    """The run's whole scoring path as one module: pixels (0-255) in, logits out.

    The input adaptation (normalisation, pad or resize, channel replication) and the
    test-time flip are in the graph, so that an exported model needs nothing of ours.
    """

    def __init__(self, adapter: InputAdapter, model: torch.nn.Module, flip: bool) -> None:
        super().__init__()
        self.adapter, self.model, self.flip = adapter, model, flip

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.adapter(pixels / 255.0)  # (B, C', S, S) normalised
        logits = self.model(x)  # (B, K)
        if self.flip:
            logits = (logits + self.model(x.flip(3))) / 2
        return logits


def export_onnx(pipeline: ConvNetPipeline, path: Any, fmt: str = "onnx") -> dict[str, Any]:
    """Write the bundle's ConvNet as ONNX (torch's exporter) to ``path``; what was written.

    Input ``pixels``: float32 (batch, channels, height, width) at the run's image size,
    values 0-255 (the image as read, channels first); output ``logits`` (batch,
    classes). The batch size is free. ImportError when ``onnx`` (the ``[onnx]`` extra)
    is missing.
    """
    trainer = pipeline.trainer
    if trainer is None:
        raise ValueError("the ConvNet pipeline is not fitted")
    adapter = trainer.adapter
    model = trainer.model.to(memory_format=torch.contiguous_format).eval()
    scorer = _Scorer(adapter, model, pipeline.tta_flip).eval()
    h, w = adapter.image_hw
    save_onnx(scorer, torch.zeros(2, adapter.in_channels, h, w), path)
    return {
        "input": {
            "name": "pixels",
            "shape": ["batch", adapter.in_channels, h, w],
            "range": "0-255",
        },
        "output": {"name": "logits", "shape": ["batch", None]},
        "tta_flip": bool(pipeline.tta_flip),
    }
