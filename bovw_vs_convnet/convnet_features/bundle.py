"""The ``convnet-features`` model bundle: the network it reads, and its SVMs, nothing executable.

``weights.safetensors`` holds the whole network's state dict (so that the bundle
predicts without the source run, which may be deleted or moved), ``model.json`` +
``model.npz`` (:mod:`bovw_vs_convnet.estimators.estimator_state`) the feature
standardisation and the fitted linear SVMs. The manifest's ``convnet-features`` part
names the registered model, its classes and channels, how its images were fed (the
source's input adaptation, its input size included), the layer read and where the
network came from. Loading builds the model from the registry at that input size (a
source trained on larger images has its stem for them:
:mod:`bovw_vs_convnet.convnet.input_size`), loads the weights strictly, and reads images
as the run read its test images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.bundle import check_weights
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.models import create_model
from bovw_vs_convnet.convnet_features.config import ConvNetFeaturesConfig
from bovw_vs_convnet.convnet_features.extractor import InputSpec
from bovw_vs_convnet.convnet_features.pipeline import ConvNetFeaturesPipeline
from bovw_vs_convnet.convnet_features.source import Network
from bovw_vs_convnet.estimators.estimator_state import FittedState, StateError
from bovw_vs_convnet.estimators.kernel_svm import fitted_classes
from bovw_vs_convnet.protocol import RunContext

WEIGHTS = "weights.safetensors"
FORMAT = "bvc-convnet-features-1"  # the safetensors header's metadata["format"]
# the input sides a source ConvNet run may have been trained at (its input_size setting)
INPUT_SIZES = ConvNetConfig.BOUNDS["input_size"]
STATE = FittedState(("feature_mean_", "feature_scale_", "classifier_"), fitted_classes())


def save_bundle(pipeline: ConvNetFeaturesPipeline) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of the fitted ``pipeline``'s bundle and what its manifest says of it."""
    from safetensors.torch import save

    network = pipeline.network_
    weights = {k: v.detach().cpu().contiguous() for k, v in network.model.state_dict().items()}
    spec = network.spec
    described = {
        "network": {
            "model_name": network.name,
            "num_classes": network.num_classes,
            "in_channels": spec.in_channels,
            "input_size": spec.input_size,
            "fit": spec.fit,
            "out_channels": spec.out_channels,
            "mean": list(spec.mean),
            "std": list(spec.std),
        },
        "layer": pipeline.config.layer,
        "source": network.provenance,
        "classifier": pipeline.classifier_.description(),
        "weights": WEIGHTS,
    }
    files = {WEIGHTS: save(weights, metadata={"format": FORMAT}), **STATE.files(pipeline)}
    return files, described


def _network(files: Mapping[str, bytes], part: Mapping[str, Any]) -> Network:
    """The network the bundle holds, its weights loaded strictly (StateError otherwise)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if WEIGHTS not in files:
        raise StateError(f"the bundle has no {WEIGHTS}")
    try:
        tensors = load(files[WEIGHTS])
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise StateError(f"{WEIGHTS} is not a safetensors file ({exc})") from None
    try:
        net = part["network"]
        name, num_classes = str(net["model_name"]), int(net["num_classes"])
        spec = InputSpec(
            int(net["in_channels"]),
            int(net["input_size"]),
            str(net["fit"]),
            int(net["out_channels"]),
            tuple(float(v) for v in net["mean"]),
            tuple(float(v) for v in net["std"]),
        )
        provenance = dict(part["source"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"the bundle's network description is not valid ({exc})") from None
    if not INPUT_SIZES.holds(spec.input_size):
        raise StateError(f"the bundle's input size {spec.input_size} is not {INPUT_SIZES.text()}")
    # the network as the source run trained it: at its input size (its stem for that size)
    check_weights(tensors, name, num_classes, spec.in_channels, spec.input_size)  # meta device
    model = create_model(
        name, num_classes=num_classes, in_channels=spec.in_channels, input_size=spec.input_size
    )
    model.load_state_dict(tensors, strict=True)
    return Network(model.eval(), name, num_classes, spec, provenance)


def load_bundle(
    files: Mapping[str, bytes], manifest: Mapping[str, Any], context: RunContext
) -> ConvNetFeaturesPipeline:
    """The fitted pipeline the bundle's ``files`` hold, scoring on the CPU."""
    part = manifest.get("convnet-features")
    if not isinstance(part, dict):
        raise StateError("the bundle manifest has no convnet-features part")
    config = build_config(ConvNetFeaturesConfig, manifest["config"])
    pipeline = ConvNetFeaturesPipeline(config, context)
    h, w = (int(v) for v in manifest["input"]["size"])
    pipeline.use_network(_network(files, part), (h, w, int(manifest["input"]["channels"])))
    return STATE.restore(
        pipeline, {k: v for k, v in files.items() if k != WEIGHTS}, ("classifier_",)
    )
