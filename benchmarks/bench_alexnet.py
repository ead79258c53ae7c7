"""AlexNet training images/s at 227×227: the convnet trainer against torchvision in plain fp32.

Baseline: torchvision's ``alexnet`` (61.1 M parameters), a plain loop: fp32, NCHW,
``cudnn.benchmark`` off (PyTorch's default), inputs already normalised fp32 on the
device (the baseline pays nothing for data). Trainer: ``alexnet-2012`` (the paper's
network, 61.0 M parameters) through :class:`Trainer` with uint8 images resident on
the device, normalisation on the device, channels_last, the autocast dtype
``amp=auto`` picks (bf16 from compute capability 8.0, fp16 at 7.x) and, with
``--compile``, ``torch.compile`` (measured last, once: a compile that fails falls back
to eager, and ``compiled`` says which ran). Same synthetic 227×227×3 images, same batch
size, SGD with momentum for both; warm-up (and compilation) excluded from timings.

With ``--json`` the result so far is printed as one JSON line, and flushed, after
every measurement: a time-out or a crash in a later one keeps the earlier figures
(the last JSON line is the most complete).

    PYTHONPATH=. python3 benchmarks/bench_alexnet.py --device cuda --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.augment import InputAdapter
from bovw_vs_convnet.convnet.batches import ResidentBatches
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.device import resolve_device
from bovw_vs_convnet.convnet.models import count_parameters, create_model
from bovw_vs_convnet.convnet.train import Trainer
from bovw_vs_convnet.data.imageset import ImageSet

SIZE = 227
MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def synthetic(n: int) -> ImageSet:
    """``n`` random uint8 RGB images of 227×227 in 1000 classes."""
    rng = np.random.default_rng(0)
    return ImageSet(
        images=rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8),
        labels=rng.integers(0, 1000, n).astype(np.int64),
        ids=np.array([str(i) for i in range(n)]),
        class_names=tuple(str(i) for i in range(1000)),
        name="synthetic-227",
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def baseline(images: ImageSet, device: torch.device, batch: int, steps: int, warmup: int) -> float:
    """torchvision alexnet, plain fp32 loop over resident fp32 batches; images/s."""
    torch.backends.cudnn.benchmark = False
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None, num_classes=1000).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.from_numpy(images.array()[: batch * 4]).to(device).permute(0, 3, 1, 2).float() / 255
    x = ((x - 0.5) / 0.25).contiguous()  # (4B, 3, 227, 227) fp32, ready-made
    y = torch.from_numpy(images.labels[: batch * 4]).to(device)
    model.train()
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        j = (i % 4) * batch
        opt.zero_grad()
        loss = F.cross_entropy(model(x[j : j + batch]), y[j : j + batch])
        loss.backward()
        opt.step()
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


def trainer(
    images: ImageSet, device: torch.device, batch: int, steps: int, warmup: int, compile: bool
) -> tuple[float, Trainer]:
    """alexnet-2012 through the convnet Trainer (resident uint8, amp=auto); images/s, trainer."""
    torch.backends.cudnn.benchmark = device.type == "cuda"
    torch.manual_seed(0)
    cfg = build_config(
        ConvNetConfig,
        {
            "model": "alexnet-2012", "batch_size": batch, "optimizer": "sgd", "lr": 0.01,
            "nesterov": False, "schedule": "constant", "augment": "", "epochs": 1,
            "warmup_steps": warmup, "compile": compile,
        },
    )  # fmt: skip
    adapter = InputAdapter((SIZE, SIZE), 3, SIZE, "resize", 3, MEAN, STD)
    model = create_model("alexnet-2012", num_classes=1000, in_channels=3)
    t = Trainer(
        model, adapter, None, cfg, device, seed=0, identity={}, checkpoint_path=None,
        progress=False,
    )  # fmt: skip
    source = ResidentBatches(images.subset(np.arange(min(len(images), batch * steps))), device)
    t.setup(source)
    t.warmup(source)
    _, _, rate = t.train_epoch(source, 1)
    return rate, t


def main() -> None:
    """Alternate baseline and trainer ``--repeats`` times; print images/s and the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps before timing")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--compile", action="store_true", help="also time the trainer with torch.compile (once)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = resolve_device(args.device)
    images = synthetic(args.batch_size * args.steps)
    variants = ["trainer"] + (["trainer+compile"] if args.compile else [])
    rates: dict[str, list[float]] = {"torchvision-fp32": [], **{v: [] for v in variants}}
    result: dict[str, Any] = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "image_size": SIZE,
        "params": {
            "alexnet-2012": count_parameters(
                create_model("alexnet-2012", num_classes=1000, in_channels=3)
            ),
            "torchvision-alexnet": 61_100_840,
        },
    }

    def measured(name: str, rate: float) -> None:
        """Keep one measurement and print the result so far (a later failure keeps it)."""
        rates[name].append(rate)
        base = statistics.mean(rates["torchvision-fp32"]) if rates["torchvision-fp32"] else None
        result["img_s"] = {k: [round(r, 1) for r in v] for k, v in rates.items() if v}
        result["ratio"] = {
            v: round(statistics.mean(rates[v]) / base, 2) for v in variants if rates[v] and base
        }
        print(f"{name:>18}: {rate:,.0f} images/s", flush=True)
        if args.json:
            print(json.dumps(result), flush=True)

    # eager measurements first, compilation (a minute, and the likeliest to fail) last
    for _ in range(args.repeats):
        measured(
            "torchvision-fp32", baseline(images, device, args.batch_size, args.steps, args.warmup)
        )
        rate, t = trainer(images, device, args.batch_size, args.steps, args.warmup, False)
        result["amp"] = t.amp
        measured("trainer", rate)
    if args.compile:
        rate, t = trainer(images, device, args.batch_size, args.steps, args.warmup, True)
        result["compiled"], result["compile_error"] = t.compiled, t.compile_error
        measured("trainer+compile", rate)
    for v in variants:
        if v in result.get("ratio", {}):
            print(f"{v} / torchvision-fp32: {result['ratio'][v]:.2f}x")


if __name__ == "__main__":
    main()
