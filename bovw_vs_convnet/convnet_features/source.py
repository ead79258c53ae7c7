"""Where the network of ``convnet-features`` comes from: a stored ConvNet run, or a weights file.

A stored run is read through its model bundle, verified as ``bvc predict`` verifies it
(:func:`bovw_vs_convnet.harness.bundle.load_bundle`: each file's sha256 against the
run's record), and brings its own input adaptation. A weights file is a state dict
the user already has (torchvision's ``alexnet`` layout by default): read with
``torch.load(weights_only=True)`` (no code runs) or from safetensors, refused when it
holds anything but named tensors, and fed as torchvision's ImageNet models are fed
(resized to the model's input, ImageNet's channel means and deviations).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bovw_vs_convnet.convnet.models import create_model, get_model_spec
from bovw_vs_convnet.convnet_features.config import ConvNetFeaturesConfig
from bovw_vs_convnet.convnet_features.extractor import InputSpec
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.harness.bundle import load_bundle
from bovw_vs_convnet.harness.run_folder import PARTIAL_DIR
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.protocol import RunContext

# torchvision's ImageNet normalisation (RGB); its channel average for grayscale images
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class Network:
    """A trained network and what the pipeline needs to feed it and to record it.

    Attributes: ``model`` (in evaluation mode, on the CPU), ``name`` (its registered
    model), ``num_classes`` (its output layer's), ``spec`` (how its images were fed),
    ``provenance`` (the run or file it came from, for the record).
    """

    model: nn.Module
    name: str
    num_classes: int
    spec: InputSpec
    provenance: dict[str, Any]


def runs_folder(context: RunContext) -> Path | None:
    """The runs folder this run is stored in (its staging folder's), or None elsewhere."""
    staging = Path(context.run_dir)
    return staging.parent.parent if staging.parent.name == PARTIAL_DIR else None


def _store_and_id(source: str, context: RunContext) -> tuple[ResultStore, str]:
    """The store holding the run ``source`` names, and its run id."""
    path = Path(source).expanduser()
    if "/" in source or path.is_dir():
        folder = path.parent if path.name == "bundle" else path
        return ResultStore(folder.parent), folder.name
    runs = runs_folder(context)
    if runs is None:
        raise ConfigError(
            f"source {source!r} is looked up in a runs folder; give the run folder's path",
            key="source",
        )
    store = ResultStore(runs)
    if "@" not in source:
        return store, source
    model, _, dataset = source.partition("@")
    found = [
        r
        for r in store.list_runs(dataset=dataset, pipeline="convnet")
        if r.get("model") == model and r.get("bundle_files")
    ]
    if not found:
        raise ConfigError(
            f"no finished convnet run of {model!r} on {dataset!r} in {runs}", key="source"
        )
    return store, str(found[-1]["run_id"])  # oldest first: the newest is the last


def from_run(source: str, context: RunContext) -> Network:
    """The network of the stored ConvNet run ``source`` (run id, folder or MODEL@DATASET)."""
    store, run_id = _store_and_id(source, context)
    record = store.get_run(run_id)  # DataError: no such run
    if record.get("pipeline") != "convnet":
        raise ConfigError(
            f"run {run_id} is a {record.get('pipeline')} run; convnet-features reads convnet runs",
            key="source",
        )
    bundle = load_bundle(store, run_id)
    trainer = getattr(bundle.pipeline, "trainer", None)
    if trainer is None:
        raise DataError(f"run {run_id}: its bundle holds no trained network")
    adapter, part = trainer.adapter, bundle.manifest["convnet"]
    spec = InputSpec(
        int(adapter.in_channels),
        int(adapter.size),
        str(adapter.fit),
        int(adapter.out_channels),
        tuple(float(v) for v in adapter.mean.flatten().tolist()),
        tuple(float(v) for v in adapter.std.flatten().tolist()),
    )
    provenance = {
        "kind": "run",
        "run_id": run_id,
        "model": part["model_name"],
        "dataset": record.get("dataset"),
        "split_fingerprint": record.get("split_fingerprint"),
        "n_train": record.get("n_train"),
        "top1_err": record.get("top1_err"),
        "bundle_sha256": record.get("bundle_sha256"),
        "weights_sha256": (record.get("bundle_files") or {}).get(part.get("weights", "")),
    }
    name = str(part["model_name"])
    return Network(
        trainer.model.cpu().float().eval(), name, len(bundle.class_names), spec, provenance
    )


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of the state-dict file ``path`` and the file's sha256.

    ``.safetensors`` files are read as such; others with ``torch.load(weights_only=True)``.
    DataError (one line) for a file that is not one, or that holds anything but a
    mapping of names to tensors (a checkpoint with its epoch, optimiser or config).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"weights file {path} cannot be read: {exc.strerror}", key="weights"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return dict(load(data)), digest
        except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
            raise DataError(f"weights file {path} is not a safetensors file ({exc})") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, AttributeError) as exc:
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"weights file {path} is not a plain state dict ({line[:160]})") from None
    if not isinstance(state, dict) or not state:
        raise DataError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise DataError(
                f"weights file {path} holds more than tensors ({key!r}: {type(value).__name__}); "
                "give the model's state_dict() alone"
            )
    return state, digest


def from_weights(cfg: ConvNetFeaturesConfig) -> Network:
    """The registered model ``cfg.weights_model`` with the weights file ``cfg.weights``."""
    path = Path(cfg.weights).expanduser()
    tensors, digest = read_state_dict(path)
    spec = get_model_spec(cfg.weights_model)
    matrices = [t for t in tensors.values() if t.dim() == 2]
    kernels = [t for t in tensors.values() if t.dim() == 4]
    if not matrices:
        raise DataError(f"weights file {path} holds no output layer of {spec.name!r}")
    num_classes = int(matrices[-1].shape[0])  # the output layer's (K, features) comes last
    in_channels = spec.fixed_channels or (int(kernels[0].shape[1]) if kernels else 1)
    model = create_model(spec.name, num_classes=num_classes, in_channels=in_channels)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        line = str(exc).splitlines()[0]
        raise DataError(
            f"weights file {path} is not a state dict of {spec.name!r} ({line})"
        ) from None
    out_channels = spec.fixed_channels or in_channels
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if in_channels == 3 else ((0.449,), (0.226,))
    feed = InputSpec(in_channels, spec.input_size, spec.fit, out_channels, mean, std)
    provenance = {"kind": "weights", "file": str(path), "sha256": digest, "model": spec.name}
    return Network(model.eval(), spec.name, num_classes, feed, provenance)


def load_network(cfg: ConvNetFeaturesConfig, context: RunContext) -> Network:
    """The network ``cfg`` names: its ``source`` run or its ``weights`` file."""
    return from_run(cfg.source, context) if cfg.source else from_weights(cfg)
