"""The DBN model bundle: the fine-tuned weights as safetensors, the sizes as JSON; ONNX export.

``weights.safetensors`` holds the :class:`~.model.DeepBeliefNet`'s state dict (tensors
only: reading it runs nothing); the manifest's ``dbn`` part gives the sizes (visible,
hidden, classes) and the size images are read at. Loading rebuilds the network, loads
the weights strictly, and scores images as the run scored its test images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.dbn.config import DbnConfig
from bovw_vs_convnet.dbn.model import DeepBeliefNet
from bovw_vs_convnet.dbn.pipeline import DbnPipeline
from bovw_vs_convnet.estimators.estimator_state import StateError
from bovw_vs_convnet.onnx_export import save_onnx
from bovw_vs_convnet.protocol import RunContext

WEIGHTS = "weights.safetensors"
FORMAT = "bvc-dbn-1"  # the safetensors header's metadata["format"]


def save_bundle(pipeline: DbnPipeline) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of the fitted ``pipeline``'s bundle and what its manifest says of it."""
    from safetensors.torch import save

    model = pipeline.model_
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    layers = model.rbm_layers()
    described = {
        "visible": layers[0].in_features,
        "hidden": [layer.out_features for layer in layers],
        "num_classes": model.classifier.out_features,
        "preprocessing": {
            "input_size": list(pipeline.input_hw_),
            "pixels": "resized to input_size (OpenCV INTER_AREA) when larger, H·W·C "
            "intensities (channels last) divided by 255",
        },
        "weights": WEIGHTS,
    }
    return {WEIGHTS: save(weights, metadata={"format": FORMAT})}, described


def load_bundle(
    files: Mapping[str, bytes], manifest: Mapping[str, Any], context: RunContext
) -> DbnPipeline:
    """The fine-tuned DBN the bundle's ``files`` hold (StateError when they are not that)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    part = manifest.get("dbn")
    if not isinstance(part, dict) or WEIGHTS not in files:
        raise StateError(f"the bundle has no dbn part or no {WEIGHTS}")
    try:
        tensors = load(files[WEIGHTS])
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise StateError(f"{WEIGHTS} is not a safetensors file ({exc})") from None
    try:
        visible, classes = int(part["visible"]), int(part["num_classes"])
        hidden = [int(h) for h in part["hidden"]]
        h, w = (int(v) for v in part["preprocessing"]["input_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"the bundle's dbn part is not valid ({exc})") from None
    _check_weights(tensors, visible, hidden, classes)
    model = DeepBeliefNet(visible, hidden, classes)
    model.load_state_dict(tensors, strict=True)
    pipeline = DbnPipeline(build_config(DbnConfig, manifest["config"]), context)
    pipeline.model_ = model.eval()
    pipeline.input_hw_ = (h, w)
    pipeline.n_params = sum(p.numel() for p in model.parameters())
    return pipeline


def _check_weights(
    tensors: Mapping[str, torch.Tensor], visible: int, hidden: list[int], classes: int
) -> None:
    """StateError unless ``tensors`` are exactly the named DBN's weights, all finite.

    The net is laid out on PyTorch's meta device first, so sizes from the manifest
    allocate nothing until the stored tensors (bounded by the bundle's file size) match.
    """
    if min([visible, classes, *hidden], default=0) < 1:
        raise StateError(f"the bundle's dbn part gives a layer of size < 1 ({visible}, {hidden})")
    with torch.device("meta"):
        layout = DeepBeliefNet(visible, hidden, classes).state_dict()
    expected = {k: tuple(v.shape) for k, v in layout.items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or sorted(
            k for k in expected if found[k] != expected[k]
        )
        raise StateError(f"{WEIGHTS} does not hold this DBN's weights (at {wrong[0]})")
    if not all(bool(torch.isfinite(v).all()) for v in tensors.values()):
        raise StateError(f"{WEIGHTS} holds weights that are not finite")


class _Scorer(torch.nn.Module):
    """Pixels (B, C, H, W) 0-255 in, logits out: the bundle's reading of an image in the graph."""

    def __init__(self, model: DeepBeliefNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 2, 3, 1).flatten(1) / 255.0  # (B, H·W·C), channels last
        return self.model(x)  # (B, K)


def export_onnx(pipeline: DbnPipeline, path: Any, fmt: str = "onnx") -> dict[str, Any]:
    """Write the DBN as ONNX (torch's exporter) to ``path``; what was written.

    Input ``pixels``: float32 (batch, channels, height, width), values 0-255, at the size
    the run read images at (``input_size``: images larger than ``max_side`` are shrunk
    before); output ``logits`` (batch, classes). ImportError without ``onnx``.
    """
    model = pipeline.model_.eval()
    h, w = pipeline.input_hw_
    channels = model.rbm_layers()[0].in_features // (h * w)
    save_onnx(_Scorer(model).eval(), torch.zeros(2, channels, h, w), path)
    return {
        "input": {"name": "pixels", "shape": ["batch", channels, h, w], "range": "0-255"},
        "output": {"name": "logits", "shape": ["batch", model.classifier.out_features]},
    }
