"""First training steps of ``alexnet-2012`` from the paper's initialisation, step by step.

Prints the loss, the logits' standard deviation and the gradient norm for each step on
ten fixed batches of Fashion-MNIST training images (resized to 227×227, bf16 autocast on
the CPU), to show whether a recipe blows up before it learns:

    BVC_DATA_DIR=/usr/share/datasets PYTHONPATH=. python tools/diag_alexnet_init.py --lr 0.01
    ... --optimizer adamw --lr 1e-4        # AdamW instead of SGD (momentum 0.9, wd 5e-4)
    ... --hidden-bias 0.1                  # Caffe's biases instead of the paper's 1
    ... --clip 2                           # gradient norm clipping
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from bovw_vs_convnet.convnet.augment import InputAdapter
from bovw_vs_convnet.convnet.batches import to_nchw_uint8
from bovw_vs_convnet.convnet.models import create_model, get_model_spec
from bovw_vs_convnet.convnet.pipeline import channel_stats
from bovw_vs_convnet.data import load_dataset


def main() -> None:
    """Parse arguments, train ``--steps`` steps, print one line per step."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--hidden-bias", type=float, default=1.0, help="bias of conv2/4/5, FC6/7")
    ap.add_argument("--clip", type=float, default=0.0, help="max gradient norm (0: none)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    torch.manual_seed(0)
    train = load_dataset("fashion-mnist").train.subset(torch.arange(10 * args.batch_size).numpy())
    spec = get_model_spec("alexnet-2012")
    mean, std = channel_stats(train.array())
    adapter = InputAdapter((28, 28), 1, spec.input_size, spec.fit, 1, mean, std)
    x = adapter(to_nchw_uint8(train.array()).float().div_(255.0))  # (640, 1, 227, 227)
    y = torch.from_numpy(train.labels)

    model = create_model("alexnet-2012", num_classes=10, in_channels=1)
    with torch.no_grad():  # the layers the paper starts at bias 1
        for name, p in model.named_parameters():
            if name.endswith("bias") and bool((p == 1).all()):
                p.fill_(args.hidden_bias)
    if args.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4
        )
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    model.train()
    for step in range(args.steps):
        batch = slice((step % 10) * args.batch_size, (step % 10 + 1) * args.batch_size)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x[batch]).float()  # (B, 10)
        loss = F.cross_entropy(logits, y[batch])
        opt.zero_grad()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip or float("inf"))
        opt.step()
        print(
            f"step {step:3d}  loss {loss.item():7.3f}  logit std {logits.std().item():6.3f}  "
            f"grad norm {norm.item():7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
