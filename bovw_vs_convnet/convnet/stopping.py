"""Early stopping that waits for learning: what one epoch's validation error decides.

:func:`epoch_verdict` is the rule :class:`~bovw_vs_convnet.convnet.train.Trainer` applies
after each epoch (no torch here, so it is tested on numbers alone):

- an epoch counts as **best** only if its validation error is significantly below
  chance (:func:`~bovw_vs_convnet.significance.chance_test`, p < 0.01) and lower than
  the best so far: a dip inside chance-level noise is not a model worth keeping. The
  test is Bonferroni-corrected for every epoch the run may look at
  (:attr:`StoppingRule.looks`): the best of 100 epochs at chance would otherwise pass
  p < 0.01 by luck alone;
- **patience** counts only from the first such epoch (``learning_epoch``), and never
  stops a run before the warm-up has ended (``check_epoch``);
- at the warm-up's end a run with no such epoch stops as ``"not learning"`` when the
  caller can rescue it (a fresh start at a lower rate, ``convnet/pipeline.py``, which
  trains with its dropout off until it leaves chance: :func:`holds_dropout`);
  otherwise it trains on to the end.

A model that scores a 97.99 % validation error on 62 balanced classes during the
warm-up is at chance (p = 0.085 on 2 077 images); the old rule kept it as best and
stopped 9 epochs later.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bovw_vs_convnet.significance import chance_test_labels

log = logging.getLogger(__name__)

NOT_LEARNING = "not learning"  # the stop reason of a run at chance when its warm-up ends


def check_epoch(epochs: int, warmup_fraction: float) -> int:
    """The epoch at which the warm-up ends and learning is checked (1-based, at least 1).

    Schedules with no warm-up are checked at the same fraction of the epochs.
    """
    return max(1, min(epochs, math.ceil(warmup_fraction * epochs)))


@dataclass(frozen=True)
class StoppingRule:
    """What the trainer knows before the epochs: patience, the warm-up's end, rescue."""

    patience: int  # epochs without a new best (counted from learning) before stopping; 0 never
    check_epoch: int  # the warm-up's last epoch (:func:`check_epoch`)
    stop_if_not_learning: bool  # stop at check_epoch when nothing learned (a rescue is left)
    select: bool = True  # whether a best epoch is kept (``val_select``)
    # validation errors the run may look at: this attempt's planned epochs plus the epochs
    # its earlier (rescued) attempts ran; each epoch is tested at alpha / looks
    looks: int = 1


@dataclass(frozen=True)
class Verdict:
    """What an epoch decided."""

    best: bool  # a new best epoch: keep its weights
    learning_epoch: int  # the first epoch significantly below chance (0: none yet)
    stop: str  # "" (go on), "patience" or NOT_LEARNING


def epoch_verdict(
    rule: StoppingRule,
    epoch: int,
    err: float,
    significant: bool,
    *,
    best_epoch: int,
    best_err: float,
    learning_epoch: int,
) -> Verdict:
    """The decision after ``epoch`` (1-based) with validation error ``err``.

    ``significant``: whether ``err`` is significantly below chance. ``best_epoch``,
    ``best_err`` and ``learning_epoch`` are the history so far (0 / inf / 0 at the start).
    """
    if significant and not learning_epoch:
        learning_epoch = epoch
    best = rule.select and significant and err < best_err
    if best:
        best_epoch = epoch
    stop = ""
    if epoch >= rule.check_epoch:
        if not learning_epoch and rule.stop_if_not_learning and epoch == rule.check_epoch:
            stop = NOT_LEARNING
        elif rule.patience and learning_epoch:
            since = best_epoch or learning_epoch  # no best kept (val_select off): from learning
            if epoch - since >= rule.patience:
                stop = "patience"
    return Verdict(best, learning_epoch, stop)


def holds_dropout(
    has_dropout: bool, rescued: bool, validating: bool, learning_epoch: int, in_warmup: bool
) -> bool:
    """Whether an epoch trains with the net's dropout off: a rescued attempt not yet learning.

    Dropout 0.5 before FC6 and FC7 keeps ``alexnet-small`` at chance on 62 hard glyph
    classes, where the same net without it leaves chance within 150 steps
    (benchmarks/RESULTS-glyphs.md, issue 23). A run rescued from chance therefore trains
    without dropout through its warm-up and until its first epoch significantly below
    chance (``learning_epoch``), then with it: "late dropout" (Liu et al., "Dropout
    reduces underfitting", ICML 2023). Dropout switched back on at a first, marginal
    significant epoch inside the warm-up sent a rescued run back to chance, hence the
    warm-up. Runs that learn before their warm-up ends are never rescued, so never
    affected; a run without a validation set could not tell when to stop, so never holds.
    """
    return has_dropout and rescued and validating and (in_warmup or not learning_epoch)


def rescue_lr(lr: float, finder: dict[str, Any] | None) -> float:
    """The rate of a rescued attempt: ``lr / 3``, or the finder's pick when that is lower.

    ``finder``: the learning-rate finder's result for the fresh model (None where it could
    not run). Its pick is a tenth of the rate of its lowest smoothed loss, never below the
    ramp's start; a pick at the start means the loss never fell along the ramp, so the
    pick is the ramp's floor, not a rate (a rescue at 1e-6 stays at chance), and
    ``lr / 3`` is taken instead.
    """
    if finder is None or float(finder["lr"]) <= float(finder["ramp"][0]):
        return lr / 3
    return min(lr / 3, float(finder["lr"]))


def rescue_record(
    val_error: list[float],
    val_p: list[float],
    lr: float,
    new_lr: float,
    finder_lr: float | None,
) -> dict[str, Any]:
    """What ``extra.rescues`` keeps of an attempt stopped at chance: its curve and the rates.

    ``new_lr`` comes from :func:`rescue_lr`; ``finder_lr`` is the finder's pick for the
    fresh model (None where the finder could not run).
    """
    return {
        "epochs_run": len(val_error),
        "val_error": list(val_error),
        "val_p_value": list(val_p),
        "lr": lr,
        "finder_lr": finder_lr,
        "new_lr": new_lr,
        "next": "a fresh initialisation at new_lr, dropout off through its warm-up and "
        "until an epoch is significantly below chance",
        "reason": "validation error not significantly below chance when the warm-up ended"
        if val_error
        else "the loss diverged",
    }


def kept_error(val_error: list[float], best_epoch: int) -> float:
    """The validation error of the weights a run keeps: its best epoch's, else its last."""
    return val_error[best_epoch - 1] if best_epoch else val_error[-1]


def looks_taken(epochs: int, rescues: list[dict[str, Any]]) -> int:
    """The validation errors of ``epochs`` epochs and of the rescued attempts' (at least 1).

    ``rescues``: the attempts stopped before this one (:func:`rescue_record`), whose
    epochs were looked at too before this attempt was started.
    """
    return max(1, epochs + sum(int(r.get("epochs_run", 0)) for r in rescues))


def learned_record(
    model: str,
    val_error: list[float],
    best_epoch: int,
    val_labels: np.ndarray,
    rescues: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``learned``, ``beat_majority_class`` (the same verdict) and ``chance_test``, for the record.

    The kept weights' validation error is tested against chance, Bonferroni-corrected for
    every validation error the run looked at (:func:`looks_taken`: its epochs, and those
    of the attempts it was rescued from): the kept error is the lowest of them, so an
    uncorrected test would call the luckiest chance-level epoch of a long run learned.
    A run of one epoch is tested as before. A run that is not significantly below chance
    scores like a constant answer (a diverged first step, dead ReLUs, a rate too hot or
    too cold). The log says so at INFO: ``bvc run`` prints the one warning line from the
    record's ``learned``.
    """
    looks = looks_taken(len(val_error), rescues or [])
    test = chance_test_labels(kept_error(val_error, best_epoch), val_labels, looks=looks)
    if not test.significant:
        log.info(
            "%s did not learn: validation error %.1f%% is not significantly below chance "
            "(%.1f%%, the most frequent class; binomial %s); try another recipe "
            "(--set preset=...)",
            model,
            100 * test.error,
            100 * test.chance_err,
            test.p_text(),
        )
    return {
        "learned": test.significant,
        "beat_majority_class": test.significant,
        "chance_test": test.record(),
    }
