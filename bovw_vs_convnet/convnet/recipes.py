"""The auto recipe: the data-dependent settings of a ConvNet run, chosen from its training set.

With ``recipe="auto"`` (the default) the settings left at ``"auto"`` are filled in here,
when the run starts and the training set is known; every one given explicitly is kept.
:func:`choose_recipe` returns the resolved config and what it chose and why, for the
run record (``extra["recipe"]``). It imports no torch, so it is tested on synthetic
sizes alone. Example::

    cfg = build_config(ConvNetConfig, {"model": "lenet5"})
    resolved, why = choose_recipe(cfg, DataShape(54_000, (28, 28), 1, mirror_ok=True))
    resolved.epochs, resolved.augment  # 24, ("translate", "flip")

The rules:

- **Batch**: 128 images a step, or, for a set of under 512 images, the largest power
  of two (at least 16) that leaves 4 steps a pass. The learning rate given (by the
  model's preset or ``--set lr``) is the rate at batch 128 and is scaled to the smaller
  batch: by its square root for AdamW, linearly for SGD (Krizhevsky 2014; Goyal et al.
  2017; timm's ``--lr-base``). On 100 Fashion-MNIST images lenet5 at batch 16 erred
  34.8 % against 44.4 % at 128 (3 seeds), on 300 at batch 64 25.9 % against 27.8 %; on
  1 000 a smaller batch was worse (``benchmarks/RESULTS-convnet.md``, "Default recipes").
- **Length**: a budget of optimiser steps (:data:`STEP_BUDGET`) and a minimum of epochs
  that grows as the set shrinks (:func:`min_epochs`: ``24 * sqrt(50 000 / n)``, from 3
  to 100), whichever is longer, at most :data:`MAX_EPOCHS`. Small sets need many
  passes for enough steps; large ones enough passes to see each image several times.
  The reference of 24 epochs is measured: at 15, ``lenet5`` on Fashion-MNIST stopped
  at 8.72 % with its validation error still falling; at 24, 8.49 %
  (``benchmarks/RESULTS-convnet.md``, "Default recipes").
- **Schedule**: linear warm-up then cosine decay (``warmup-cosine``; Goyal et al. 2017,
  Loshchilov and Hutter 2017).
- **Label smoothing** 0.1 (Szegedy et al. 2016, section 7).
- **Early stopping** on the validation error, the best weights restored: patience
  ``max(5, epochs // 4)`` epochs (a safety net: under cosine decay the error mostly
  falls to the end), counted only from the first epoch whose validation error is
  significantly below chance and never inside the warm-up (``convnet/stopping.py``).
- **Rescues**: a run still at chance when its warm-up ends restarts from a fresh
  initialisation at a third of the rate, at most :data:`RESCUES` times
  (``convnet/pipeline.py``), and trains with its dropout off through its warm-up and
  until an epoch is significantly below chance ("late dropout", Liu et al. 2023;
  ``stopping.holds_dropout``): dropout 0.5 before FC6 and FC7 kept ``alexnet-small`` at
  chance on 62 hard glyph classes, and it left chance without it. A run that never
  leaves chance is recorded as ``learned: false``.
- **Augmentation** from the data: ``translate`` (random crop of the padded image) for
  small images (16 to 64 px a side; an 8-px digit has no pixels to spare); ``flip``
  where mirroring keeps the class (the set's ``mirror_ok``, or the ``mirror``
  setting); ``jitter`` (brightness, contrast, saturation) for RGB sets; ``affine``
  (LeNet-style small rotations, scalings and shears; LeCun et al. 1998, section V.C;
  Simard et al. 2003) for sets that mirroring would mislabel: digits and glyphs.
- **Test-time flip** where mirroring is allowed, kept only if it does not raise the
  validation error (decided after training, ``convnet/pipeline.py``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from bovw_vs_convnet.convnet.config import AUTO, RECIPE_VERSION, ConvNetConfig

STEP_BUDGET = 5_000  # optimiser steps a run aims for
REFERENCE_SIZE = 50_000  # training images at which the minimum is REFERENCE_EPOCHS
REFERENCE_EPOCHS = 24  # 15 before: Fashion-MNIST still improving at its 15th epoch
MIN_EPOCHS_FLOOR, MIN_EPOCHS_CEILING = 3, 100
REFERENCE_BATCH = 128  # batch_size=auto: the batch of a large set, at which lr is given
# batch_size=auto on a small set (lenet5, Fashion-MNIST, 3 seeds; RESULTS-convnet.md): at
# 100 images batch 16 erred 34.8 % against 44.4 % at 128, at 300 batch 64 25.9 % against
# 27.8 %; at 1 000, batch 32 was worse (20.1 % against 18.9 %)
MIN_BATCH, MIN_STEPS_PER_EPOCH = 16, 4
MAX_EPOCHS = 100  # the same as the ceiling of the minimum: digits-sized sets stop here
LABEL_SMOOTHING = 0.1
RESCUES = 2  # fresh starts at lr / 3 for a run at chance when its warm-up ends
SMALL_IMAGE = (16, 64)  # sides (px) at which translation is used: at least, at most


@dataclass(frozen=True)
class DataShape:
    """What the recipe looks at: training-set size, image size, channels, mirroring."""

    n_train: int
    image_hw: tuple[int, int]
    channels: int
    mirror_ok: bool  # whether a mirror image keeps its class (mirror setting applied)


def min_epochs(n_train: int) -> int:
    """The fewest epochs for a training set of ``n_train`` images (more for smaller sets)."""
    scaled = REFERENCE_EPOCHS * math.sqrt(REFERENCE_SIZE / max(n_train, 1))
    return int(min(MIN_EPOCHS_CEILING, max(MIN_EPOCHS_FLOOR, math.ceil(scaled))))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps in one pass (the last batch may be short)."""
    return max(1, -(-n_train // batch_size))


def choose_batch(n_train: int) -> tuple[int, str]:
    """The batch for ``n_train`` images: 128, or fewer to leave 4 steps a pass; with why."""
    if n_train >= REFERENCE_BATCH * MIN_STEPS_PER_EPOCH:
        return REFERENCE_BATCH, f"{REFERENCE_BATCH} images a step"
    batch = max(MIN_BATCH, 2 ** math.floor(math.log2(max(n_train, 1) / MIN_STEPS_PER_EPOCH)))
    return batch, (
        f"small set ({n_train} images): {batch} images a step for at least "
        f"{MIN_STEPS_PER_EPOCH} steps a pass (at least {MIN_BATCH})"
    )


def scale_lr(lr: float, batch: int, optimizer: str) -> tuple[float, str]:
    """``lr``, the rate at batch 128, for ``batch``: square-root rule (AdamW), linear (SGD)."""
    ratio = batch / REFERENCE_BATCH
    if optimizer == "adamw":
        return lr * math.sqrt(ratio), f"{lr:g} at batch {REFERENCE_BATCH}, x sqrt({ratio:g})"
    return lr * ratio, f"{lr:g} at batch {REFERENCE_BATCH}, x {ratio:g}"


def choose_epochs(n_train: int, batch_size: int) -> tuple[int, str]:
    """Epochs for the step budget or the size's minimum, the longer; with the reason."""
    spe = steps_per_epoch(n_train, batch_size)
    for_budget = math.ceil(STEP_BUDGET / spe)
    floor = min_epochs(n_train)
    epochs = min(MAX_EPOCHS, max(floor, for_budget))
    if epochs == MAX_EPOCHS and max(floor, for_budget) > MAX_EPOCHS:
        why = f"capped at {MAX_EPOCHS} (the step budget {STEP_BUDGET} needs {for_budget})"
    elif for_budget >= floor:
        why = f"step budget: {STEP_BUDGET} steps at {spe} steps per epoch"
    else:
        why = f"minimum for {n_train} images: {floor} epochs ({epochs * spe} steps)"
    return epochs, why


def choose_augment(data: DataShape) -> tuple[tuple[str, ...], str]:
    """The augmentations for ``data``, with the reason."""
    kinds: list[str] = []
    reasons: list[str] = []
    lo, hi = SMALL_IMAGE
    if lo <= min(data.image_hw) and max(data.image_hw) <= hi:
        kinds.append("translate")
        reasons.append(f"translate: small images ({data.image_hw[0]}x{data.image_hw[1]})")
    if data.mirror_ok:
        kinds.append("flip")
        reasons.append("flip: mirroring allowed")
    else:
        kinds.append("affine")
        reasons.append("affine: mirroring not allowed (digits, glyphs), small distortions")
    if data.channels == 3:
        kinds.append("jitter")
        reasons.append("jitter: RGB")
    return tuple(kinds), "; ".join(reasons)


def choose_recipe(cfg: ConvNetConfig, data: DataShape) -> tuple[ConvNetConfig, dict[str, Any]]:
    """``cfg`` with each setting left at ``"auto"`` chosen for ``data``; and the record.

    The record (``extra["recipe"]``) holds ``recipe``, ``chosen`` (setting -> value, only
    those chosen here), ``why`` (setting -> reason), ``steps_per_epoch`` and
    ``planned_steps``. ``tta_flip`` stays ``"auto"`` when mirroring is allowed (the
    validation error decides after training) and becomes false otherwise. A fixed
    recipe has no ``"auto"`` left (but ``lr``, which the finder resolves, and
    ``rescues``, which becomes 0 as in the runs stored before rescues existed).
    """
    changes: dict[str, Any] = {}
    why: dict[str, str] = {}
    batch = cfg.batch_size
    if batch == AUTO:
        batch, why["batch_size"] = choose_batch(data.n_train)
        changes["batch_size"] = batch
        if batch != REFERENCE_BATCH and cfg.lr != AUTO:  # the finder measures its own
            changes["lr"], why["lr"] = scale_lr(float(cfg.lr), batch, cfg.optimizer)
    if cfg.epochs == AUTO:
        changes["epochs"], why["epochs"] = choose_epochs(data.n_train, int(batch))
    if cfg.schedule == AUTO:
        changes["schedule"] = "warmup-cosine"
        why["schedule"] = f"linear warm-up ({cfg.warmup_fraction:.0%} of steps), cosine decay"
    if cfg.label_smoothing == AUTO:
        changes["label_smoothing"] = LABEL_SMOOTHING
        why["label_smoothing"] = "Szegedy et al. 2016"
    if cfg.augment == (AUTO,):
        changes["augment"], why["augment"] = choose_augment(data)
    epochs = changes.get("epochs", cfg.epochs)
    if cfg.patience == AUTO:
        changes["patience"] = max(5, int(epochs) // 4) if cfg.val_select else 0
        why["patience"] = (
            "early stopping on the validation error, max(5, epochs // 4), counted from "
            "the first epoch significantly below chance, never inside the warm-up"
            if cfg.val_select
            else "val_select=false: no early stopping"
        )
    if cfg.rescues == AUTO and cfg.recipe == "fixed":
        changes["rescues"] = 0
        why["rescues"] = "recipe=fixed: no rescue, as the runs stored before it"
    elif cfg.rescues == AUTO:
        changes["rescues"] = RESCUES
        why["rescues"] = (
            "a run at chance when its warm-up ends restarts afresh at lr / 3, dropout off "
            f"through its warm-up and until it leaves chance, at most {RESCUES} times"
        )
    if cfg.tta_flip == AUTO and not data.mirror_ok:
        changes["tta_flip"] = False
        why["tta_flip"] = "mirroring not allowed"
    elif cfg.tta_flip == AUTO:
        why["tta_flip"] = "mirroring allowed: kept if it does not raise the validation error"
    resolved = dataclasses.replace(cfg, **changes) if changes else cfg
    spe = steps_per_epoch(data.n_train, int(batch))
    record = {
        "recipe": cfg.recipe,
        "version": RECIPE_VERSION if cfg.recipe == AUTO else None,
        "chosen": {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()},
        "why": why,
        "steps_per_epoch": spe,
        "planned_steps": spe * int(resolved.epochs) if resolved.epochs != AUTO else None,
    }
    return resolved, record
