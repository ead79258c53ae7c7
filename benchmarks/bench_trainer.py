"""Training throughput: the convnet trainer against the canonical PyTorch loop, same run.

Both train ``lenet5`` (or ``--model``) with SGD (momentum 0.9, lr 0.01), batch 64, on
the same Fashion-MNIST images, for the same number of images. The canonical loop is
what most tutorials write: a DataLoader over a TensorDataset of pre-normalised fp32
32×32 images, ``.to(device)`` each step, fp32, ``loss.item()`` each step. The trainer
keeps uint8 images resident on the device, slices batches from a shuffled index,
pads/normalises on the device, uses a fused optimiser step and (where set) bf16,
channels_last and torch.compile. Warm-up steps are excluded from both timings.
Runs alternate (canonical, trainer, canonical, ...) so background load hits both alike.
Each repeat also times the canonical DataLoader alone: its share of a canonical step is
the most any loop can gain by not using it. ``--profile`` adds a torch.profiler table of
one trainer epoch (where a step goes).

    PYTHONPATH=. python3 benchmarks/bench_trainer.py --images 20000 --repeats 3 [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.augment import InputAdapter
from bovw_vs_convnet.convnet.batches import ResidentBatches
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.device import resolve_device
from bovw_vs_convnet.convnet.models import create_model, get_model_spec
from bovw_vs_convnet.convnet.pipeline import channel_stats
from bovw_vs_convnet.convnet.train import Trainer
from bovw_vs_convnet.data.imageset import ImageSet


def load_images(n: int, synthetic: bool) -> ImageSet:
    """The first ``n`` Fashion-MNIST training images, or random ones with ``synthetic``."""
    if synthetic:
        rng = np.random.default_rng(0)
        return ImageSet(
            images=rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
            labels=rng.integers(0, 10, n).astype(np.int64),
            ids=np.array([str(i) for i in range(n)]),
            class_names=tuple(str(i) for i in range(10)),
            name="synthetic",
        )
    from bovw_vs_convnet.data import load_dataset

    train = load_dataset("fashion-mnist").train
    return train.subset(np.arange(min(n, len(train))))


def loader_only(x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """Images/s of iterating the canonical loop's DataLoader with no training step.

    The most any training loop can save by not using it: its share of a canonical step.
    """
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=True
    )
    t0 = time.perf_counter()
    seen = sum(len(yb) for _, yb in loader)
    return seen / (time.perf_counter() - t0)


def canonical_epoch(
    model_name: str, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int
) -> float:
    """One timed epoch of the textbook loop after 5 untimed steps; returns images/s."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, in_channels=x.shape[1]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=True
    )
    model.train()

    def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
        xb, yb = xb.to(device), yb.to(device)
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        _ = loss.item()

    for i, (xb, yb) in enumerate(loader):  # untimed warm-up, as for the trainer
        if i == 5:
            break
        step(xb, yb)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seen, t0 = 0, time.perf_counter()
    for xb, yb in loader:
        step(xb, yb)
        seen += len(yb)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def make_trainer(
    model_name: str, images: ImageSet, device: torch.device, cfg: ConvNetConfig
) -> tuple[Trainer, ResidentBatches]:
    """A warmed-up :class:`Trainer` over ``images`` kept resident on ``device``."""
    torch.manual_seed(0)
    spec = get_model_spec(model_name)
    c = images.channels
    mean, std = channel_stats(images.array())
    adapter = InputAdapter(
        (28, 28), c, spec.input_size, spec.fit, spec.fixed_channels or c, mean, std
    )
    model = create_model(model_name, num_classes=10, in_channels=c)
    trainer = Trainer(
        model, adapter, None, cfg, device, seed=0, identity={}, checkpoint_path=None,
        progress=False,
    )  # fmt: skip
    source = ResidentBatches(images, device)
    trainer.setup(source)
    trainer.warmup(source)
    return trainer, source


def trainer_epoch(
    model_name: str, images: ImageSet, device: torch.device, cfg: ConvNetConfig
) -> float:
    """One epoch of :class:`Trainer` (resident uint8, device-side input); returns images/s."""
    trainer, source = make_trainer(model_name, images, device, cfg)
    _, _, rate = trainer.train_epoch(source, 1)
    return rate


def profile_trainer(
    model_name: str, images: ImageSet, device: torch.device, cfg: ConvNetConfig, top: int = 10
) -> dict[str, float]:
    """Profile one trainer epoch; print the ``top`` operators by self time, return their shares.

    Shows where a step goes: in compute kernels (convolution, pooling) or in the loop.
    """
    from torch.profiler import ProfilerActivity, profile

    trainer, source = make_trainer(model_name, images, device, cfg)
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        trainer.train_epoch(source, 1)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=top))
    total = sum(e.self_cpu_time_total for e in events)
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {e.key: round(e.self_cpu_time_total / total, 4) for e in ranked}


def main() -> None:
    """Parse arguments, run the alternating timings, print a summary (and JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--images", type=int, default=20_000, help="training images per timed epoch")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", action="append", default=[], help="trainer setting KEY=VALUE")
    ap.add_argument("--synthetic", action="store_true", help="random images instead of the dataset")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads for both (0: default)"
    )
    ap.add_argument(
        "--profile", action="store_true", help="also profile one trainer epoch (top operators)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    images = load_images(args.images, args.synthetic)
    settings = {
        "model": args.model, "batch_size": args.batch_size, "optimizer": "sgd", "lr": 0.01,
        "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "schedule": "constant",
        "augment": "", "epochs": 1, "warmup_steps": 5,
    }  # fmt: skip
    settings.update(dict(s.split("=", 1) for s in args.set))
    cfg = build_config(ConvNetConfig, settings)

    # The canonical loop gets its inputs ready-made: normalised, padded to 32×32, fp32.
    spec = get_model_spec(args.model)
    mean, std = channel_stats(images.array())
    adapter = InputAdapter((28, 28), images.channels, spec.input_size, spec.fit,
                           spec.fixed_channels or images.channels, mean, std)  # fmt: skip
    x = adapter(torch.from_numpy(images.array().transpose(0, 3, 1, 2).copy())).contiguous()
    y = torch.from_numpy(images.labels)

    base, fast, loader = [], [], []
    for _ in range(args.repeats):
        base.append(canonical_epoch(args.model, x, y, device, args.batch_size))
        fast.append(trainer_epoch(args.model, images, device, cfg))
        loader.append(loader_only(x, y, args.batch_size))
        if args.json:  # the figures so far, flushed: a time-out later keeps them
            partial = {"model": args.model, "device": str(device), "partial": True}
            partial |= {"canonical_img_s": [round(v, 1) for v in base]}
            partial |= {"trainer_img_s": [round(v, 1) for v in fast]}
            print(json.dumps(partial), flush=True)
    result = {
        "model": args.model,
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "images": len(images),
        "batch_size": args.batch_size,
        "canonical_img_s": [round(v, 1) for v in base],
        "trainer_img_s": [round(v, 1) for v in fast],
        "ratio_of_means": round(statistics.mean(fast) / statistics.mean(base), 2),
        "loader_only_img_s": [round(v, 1) for v in loader],
        # Share of a canonical step spent iterating its DataLoader: canonical rate / loader rate.
        "loader_share_of_canonical": round(statistics.mean(base) / statistics.mean(loader), 3),
        "torch": torch.__version__,
        "settings": {k: v for k, v in settings.items() if k != "model"},
    }
    if args.profile:
        result["trainer_self_cpu_share"] = profile_trainer(args.model, images, device, cfg)
    m = lambda v: f"{statistics.mean(v):,.0f} ± {statistics.pstdev(v):,.0f}"  # noqa: E731
    print(
        f"{args.model} on {device}, batch {args.batch_size}, {len(images)} images x {args.repeats}"
    )
    print(f"  canonical loop : {m(base)} images/s")
    print(f"  convnet trainer: {m(fast)} images/s")
    print(f"  ratio          : {result['ratio_of_means']}x")
    print(
        f"  DataLoader only: {m(loader)} images/s "
        f"({100 * result['loader_share_of_canonical']:.1f}% of a canonical step)"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
