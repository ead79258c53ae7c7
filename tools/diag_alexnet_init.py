"""First training steps of ``alexnet-2012`` from one initialisation, step by step.

Trains on a small class-balanced set of training images (resized to 227×227, bf16
autocast on the CPU) and prints the loss, the logits' standard deviation and the
gradient norm for each step, to show whether a recipe blows up or stays at chance
before it learns; ``--eval N`` then scores N images a class of the test part (for
glyphs: fonts never seen in training) and prints the top-1 error next to chance:

    BVC_DATA_DIR=/usr/share/datasets PYTHONPATH=. python tools/diag_alexnet_init.py \\
        --init paper --lr 0.01                 # the paper: N(0, 0.01), biases 1
    ... --optimizer adamw --lr 1e-4            # AdamW instead of SGD (momentum 0.9, wd 5e-4)
    ... --hidden-bias 0.1                      # (paper) Caffe's biases instead of 1
    ... --clip 2                               # gradient norm clipping
    PYTHONPATH=. python tools/diag_alexnet_init.py --dataset glyphs \\
        --data-dir /tmp/glyphs_meas --per-class 5 --epochs 2 --warmup 10 --eval 2
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bovw_vs_convnet.convnet.augment import InputAdapter
from bovw_vs_convnet.convnet.batches import to_nchw_uint8
from bovw_vs_convnet.convnet.models import create_model, get_model_spec
from bovw_vs_convnet.convnet.pipeline import channel_stats
from bovw_vs_convnet.data import load_dataset
from bovw_vs_convnet.data.imageset import ImageSet


def balanced(images: ImageSet, per_class: int, seed: int) -> ImageSet:
    """``per_class`` seeded images of each class (fewer where a class has fewer)."""
    rng = np.random.default_rng(seed)
    picks = [
        rng.permutation(np.flatnonzero(images.labels == k))[:per_class]
        for k in range(images.n_classes)
    ]
    return images.subset(np.sort(np.concatenate(picks)))


def main() -> None:
    """Parse arguments, train, print one line per step (and the test error with --eval)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--init", choices=("kaiming", "paper"), default="paper")
    ap.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=None, help="default: 5e-4 / 0.05")
    ap.add_argument(
        "--hidden-bias", type=float, default=1.0, help="paper: bias of conv2/4/5, FC6/7"
    )
    ap.add_argument("--clip", type=float, default=0.0, help="max gradient norm (0: none)")
    ap.add_argument("--warmup", type=int, default=0, help="steps of linear lr warm-up")
    ap.add_argument("--steps", type=int, default=20, help="without --epochs")
    ap.add_argument("--epochs", type=int, default=0, help="passes over the training images")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--per-class", type=int, default=0, help="training images a class (0: 10 batches)"
    )
    ap.add_argument("--eval", type=int, default=0, help="test images a class to score at the end")
    args = ap.parse_args()

    torch.manual_seed(0)
    ds = load_dataset(args.dataset, args.data_dir)
    if args.per_class:
        train = balanced(ds.train, args.per_class, seed=0)
    else:
        train = ds.train.subset(np.arange(10 * args.batch_size))
    spec = get_model_spec("alexnet-2012")
    mean, std = channel_stats(train.array())
    h, w, c = train.image_shape
    adapter = InputAdapter((h, w), c, spec.input_size, spec.fit, c, mean, std)
    x = adapter(to_nchw_uint8(train.array()).float().div_(255.0))  # (N, C, 227, 227)
    y = torch.from_numpy(train.labels).long()

    model = create_model("alexnet-2012", num_classes=train.n_classes, in_channels=c, init=args.init)
    if args.init == "paper":
        with torch.no_grad():  # the layers the paper starts at bias 1
            for name, p in model.named_parameters():
                if name.endswith("bias") and bool((p == 1).all()):
                    p.fill_(args.hidden_bias)
    if args.optimizer == "sgd":
        wd = 5e-4 if args.weight_decay is None else args.weight_decay
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=args.lr, momentum=0.9, weight_decay=wd
        )
    else:
        wd = 0.05 if args.weight_decay is None else args.weight_decay
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=wd)
    n = len(train)
    per_epoch = math.ceil(n / args.batch_size)
    steps = args.epochs * per_epoch if args.epochs else args.steps
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    print(f"{n} training images, {train.n_classes} classes, {steps} steps", flush=True)
    model.train()
    t0 = time.perf_counter()
    for step in range(steps):
        if step and step % per_epoch == 0:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(step))
        k = step % per_epoch
        batch = order[k * args.batch_size : (k + 1) * args.batch_size]
        for group in opt.param_groups:  # linear warm-up (Goyal et al. 2017), then constant
            group["lr"] = args.lr * min(1.0, (step + 1) / args.warmup) if args.warmup else args.lr
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x[batch]).float()  # (B, K)
        loss = F.cross_entropy(logits, y[batch])
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip or float("inf"))
        opt.step()
        print(
            f"step {step:3d}  loss {loss.item():7.3f}  logit std {logits.std().item():6.3f}  "
            f"grad norm {norm.item():7.2f}  {time.perf_counter() - t0:6.0f} s",
            flush=True,
        )
    if args.eval and ds.test is not None:
        test = balanced(ds.test, args.eval, seed=1)
        xt = adapter(to_nchw_uint8(test.array()).float().div_(255.0))
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            pred = torch.cat(
                [model(xt[i : i + 256]).float().argmax(1) for i in range(0, len(test), 256)]
            )
        err = float((pred.numpy() != test.labels).mean())
        chance = 1 - 1 / test.n_classes
        print(f"test top-1 error {err:.1%} on {len(test)} images (chance {chance:.1%})")


if __name__ == "__main__":
    main()
