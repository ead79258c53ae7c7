"""The optimiser and the per-step learning-rate schedule of a ConvNet run.

:func:`build_optimizer` and :func:`build_scheduler` turn a resolved
:class:`~bovw_vs_convnet.convnet.config.ConvNetConfig` (the recipe has replaced every
``"auto"``, see :mod:`~bovw_vs_convnet.convnet.recipes`) into PyTorch objects;
:func:`require_chosen` is the check that a setting has been given its number;
:func:`lr_range_scheduler` is the exponential ramp of the learning-rate finder
(:meth:`~bovw_vs_convnet.convnet.train.Trainer.find_lr`).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.errors import ConfigError


def require_chosen(value: float | str, name: str) -> float:
    """``value`` once the recipe (or the lr finder) has chosen it; ConfigError if still a word.

    A setting the recipe chooses holds ``"auto"`` until then; training with it would fail
    deep inside PyTorch, so the builders and the trainer assert it here, by name.
    """
    if isinstance(value, str):
        raise ConfigError(
            f"setting {name!r} is still {value!r}: choose it before training", key=name
        )
    return value


def build_optimizer(model: nn.Module, cfg: ConvNetConfig) -> torch.optim.Optimizer:
    """SGD (momentum, optionally Nesterov) or AdamW; no weight decay on biases or 1-d parameters.

    The parameters' own device decides where the optimiser's state lives.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # Fused kernels: one launch per step instead of one per parameter (CPU and CUDA).
    fused = cfg.fused_optimizer
    foreach = None if fused else True
    lr = require_chosen(cfg.lr, "lr")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            fused=fused,
            foreach=foreach,
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=fused, foreach=foreach)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; use sgd or adamw")


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ConvNetConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step schedule: one-cycle, warm-up + cosine, cosine, step (×gamma) or constant.

    ``warmup-cosine`` rises linearly to ``lr`` over ``warmup_fraction`` of the steps, then
    decays to 0 along a half cosine (Goyal et al. 2017; Loshchilov and Hutter 2017).
    """
    if cfg.schedule == "auto":
        raise ConfigError("the schedule must be chosen (convnet/recipes.py) before training")
    total = max(1, int(require_chosen(cfg.epochs, "epochs")) * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=require_chosen(cfg.lr, "lr"),
            total_steps=total,
            pct_start=cfg.warmup_fraction,
            cycle_momentum=False,
        )
    if cfg.schedule == "warmup-cosine":
        warm = max(1, round(cfg.warmup_fraction * total))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(_warmup_cosine, warm, total))
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=max(1, cfg.step_epochs * steps_per_epoch), gamma=cfg.step_gamma
        )
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise ConfigError(f"unknown schedule {cfg.schedule!r}")


def lr_range_scheduler(
    optimizer: torch.optim.Optimizer, ratio: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """The finder's ramp: the learning rate multiplied by ``ratio`` after every step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(_ramp, ratio))


def _ramp(ratio: float, step: int) -> float:
    """The lr multiplier of the finder's exponential ramp at ``step``."""
    return float(ratio**step)


def _warmup_cosine(warm: int, total: int, step: int) -> float:
    """The lr multiplier at ``step``: linear to 1 over ``warm`` steps, then cosine to 0."""
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
