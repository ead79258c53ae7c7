"""Settings of the ``dbn`` pipeline: :class:`DbnConfig` (no torch) and the sizes it resolves.

Every field is a ``--set KEY=VALUE`` key. ``auto`` values are chosen from the data
when the pipeline fits (:func:`hidden_sizes`, :func:`epochs_for`) and recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from bovw_vs_convnet.errors import ConfigError

# Hinton, Osindero & Teh 2006: 784 pixels, 500-500-2000 hidden units
PAPER_VISIBLE, PAPER_HIDDEN = 784, (500, 500, 2000)


def hidden_sizes(n_visible: int) -> tuple[int, ...]:
    """``hidden=auto``: the paper's 500-500-2000 for 784 pixels, scaled by the input's size.

    The factor is n_visible / 784 held to [0.5, 1]: 8×8 digits get 250-250-1000 (fewer
    units would be a narrow net, not a small one), RGB images no more than the paper's.
    """
    factor = min(max(n_visible / PAPER_VISIBLE, 0.5), 1.0)
    return tuple(max(1, round(h * factor)) for h in PAPER_HIDDEN)


def epochs_for(setting: int | str, n_train: int, images: int, low: int, high: int) -> int:
    """Epochs of ``setting``; ``auto``: about ``images`` image presentations, within [low, high]."""
    if setting != "auto":
        return int(setting)
    return min(max(math.ceil(images / max(n_train, 1)), low), high)


@dataclass(frozen=True)
class DbnConfig:
    """Every setting of the DBN; each is overridable with ``--set KEY=VALUE``."""

    NOT_IDENTITY: ClassVar[tuple[str, ...]] = ("threads",)

    hidden: tuple[int, ...] | Literal["auto"] = "auto"  # hidden layer sizes, bottom first
    # images larger than this (longer side, px) are shrunk to it first (OpenCV INTER_AREA):
    # every pixel is a visible unit
    max_side: int = 32
    batch_size: int = 100  # the paper's mini-batches of 100 (pre-training and fine-tuning)
    # pre-training, per layer: CD-1 (auto: about 300 000 images, 5 to 100 epochs)
    pretrain_epochs: int | Literal["auto"] = "auto"
    pretrain_lr: float = 0.1  # the paper's learning rate for weights and biases
    momentum: float = 0.9  # after the first 5 epochs (0.5 before, as in the paper's code)
    weight_decay: float = 2e-4  # L2 on the RBM weights (the paper's code: 0.0002)
    # fine-tuning of the whole stack by back-propagation (auto: about 1 000 000 images,
    # 15 to 200 epochs); SGD with Nesterov momentum 0.9, the rate decayed on a cosine
    finetune_epochs: int | Literal["auto"] = "auto"
    finetune_lr: float = 0.1
    finetune_weight_decay: float = 1e-5
    # torch's CPU threads: auto (from the usable CPUs and the net's work per image,
    # bovw_vs_convnet.threads), a count, or 0 (torch's default)
    threads: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        """Refuse bad settings before any image is read (one line each)."""
        if self.hidden != "auto" and (not self.hidden or min(self.hidden) < 1):
            raise ConfigError(
                f"hidden must be sizes ≥ 1 (or auto), got {self.hidden!r}", key="hidden"
            )
        if self.threads != "auto" and self.threads < 0:
            raise ConfigError(f"threads must be auto or ≥ 0, got {self.threads}", key="threads")
        for name, low in (("max_side", 4), ("batch_size", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be ≥ {low}, got {getattr(self, name)}", key=name)
        for name in ("pretrain_epochs", "finetune_epochs"):
            value = getattr(self, name)
            if value != "auto" and value < (0 if name == "pretrain_epochs" else 1):
                raise ConfigError(f"{name} out of range: {value}", key=name)
        for name in ("pretrain_lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}", key=name)
        for name in ("momentum", "weight_decay", "finetune_weight_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}", key=name)
