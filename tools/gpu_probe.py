"""What the CPU tests cannot show about the GPU path, checked on the device in a few seconds.

Prints one JSON object (flushed after each check, the last line the most complete):

- ``runtime``: the device ``--device`` resolves to, the autocast dtype ``amp=auto``
  picks there and why (compute capability), the GPU's name;
- ``lrn_dtypes``: the dtype after each layer of ``alexnet-2012``'s ``features`` under
  that autocast (LRN must keep the convolution's dtype);
- ``deterministic``: for ``alexnet-2012`` and ``alexnet-small``, whether three training
  steps under ``torch.use_deterministic_algorithms(True, warn_only=False)`` run at all
  and give the same bits twice from the same seed (or the error, one line).

    PYTHONPATH=. python3 tools/gpu_probe.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import numpy as np
import torch

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.augment import InputAdapter
from bovw_vs_convnet.convnet.batches import ResidentBatches
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.device import Runtime, resolve_runtime
from bovw_vs_convnet.convnet.models import create_model, get_model_spec
from bovw_vs_convnet.convnet.train import Trainer
from bovw_vs_convnet.data.imageset import ImageSet


def layer_dtypes(runtime: Runtime) -> list[str]:
    """``type:dtype`` after each layer of alexnet-2012's features, under the run's autocast."""
    model = create_model("alexnet-2012", num_classes=10, in_channels=3).to(runtime.device)
    features = model.get_submodule("features")
    assert isinstance(features, torch.nn.Sequential)
    x = torch.randn(2, 3, 227, 227, device=runtime.device)
    dtype = runtime.autocast_dtype
    out = []
    with torch.autocast(runtime.device.type, dtype=dtype, enabled=dtype is not None):
        for layer in features:
            x = layer(x)
            out.append(f"{type(layer).__name__}:{str(x.dtype).removeprefix('torch.')}")
    return out


def three_steps(model_name: str, runtime: Runtime, batch: int) -> dict[str, torch.Tensor]:
    """The weights after three seeded training steps of ``model_name``."""
    spec = get_model_spec(model_name)
    size = spec.input_size
    rng = np.random.default_rng(0)
    n = 3 * batch
    images = ImageSet(
        images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        labels=(np.arange(n) % 10).astype(np.int64),
        ids=np.array([str(i) for i in range(n)]),
        class_names=tuple(str(i) for i in range(10)),
        name="probe",
    )
    cfg = build_config(
        ConvNetConfig,
        {"model": model_name, "batch_size": batch, "epochs": 1, "warmup_steps": 0,
         "deterministic": True, "augment": "translate,flip"},
    )  # fmt: skip
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, in_channels=3)
    adapter = InputAdapter((size, size), 3, size, spec.fit, 3, [0.5] * 3, [0.25] * 3)
    trainer = Trainer(
        model, adapter, None, cfg, runtime.device, seed=0, identity={}, checkpoint_path=None,
        progress=False, runtime=runtime,
    )  # fmt: skip
    source = ResidentBatches(images, runtime.device)
    trainer.setup(source)
    trainer.train_epoch(source, 1)
    return {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}


def deterministic(model_name: str, runtime: Runtime, batch: int) -> dict[str, Any]:
    """Whether strict deterministic mode runs ``model_name`` and repeats its bits."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.benchmark = False
    try:
        a = three_steps(model_name, runtime, batch)
        b = three_steps(model_name, runtime, batch)
    except Exception as exc:  # the op that has no deterministic kernel, named
        return {"ran": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    finally:
        torch.use_deterministic_algorithms(False)
    return {"ran": True, "same_bits": all(torch.equal(a[k], b[k]) for k in a)}


def main() -> None:
    """Run the checks, printing the JSON so far after each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--models", default="alexnet-small,alexnet-2012", help="models of the determinism check"
    )
    args = ap.parse_args()
    runtime = resolve_runtime(args.device, "auto")
    result: dict[str, Any] = {"runtime": {"device": str(runtime.device), **runtime.describe()}}
    print(json.dumps(result), flush=True)
    result["lrn_dtypes"] = layer_dtypes(runtime)
    print(json.dumps(result), flush=True)
    result["deterministic"] = {}
    for name in args.models.split(","):
        result["deterministic"][name] = deterministic(name, runtime, args.batch_size)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
