"""The trainer: augmentation on the device, a per-step schedule, checkpoints every epoch.

:class:`Trainer` draws batches from a :mod:`~bovw_vs_convnet.convnet.batches` source
(resident on the device, or a DataLoader for lazy sets), augments and normalises them
there, and runs in channels_last under the autocast dtype of
:func:`~bovw_vs_convnet.convnet.device.choose_amp`, optionally ``torch.compile``-d (a
compile failure falls back to eager with one warning). Every random draw of an epoch
(order, augmentation, dropout) comes from generators seeded by (seed, epoch), so a run
resumed after epoch e repeats epochs e+1... as an uninterrupted run would: the same
bits on the CPU, and on CUDA with ``deterministic=true`` (otherwise to rounding:
``cudnn.benchmark`` picks its algorithms anew in each process). Optimiser and schedule:
:mod:`~bovw_vs_convnet.convnet.optim`; checkpoints: :mod:`~bovw_vs_convnet.convnet.checkpoint`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bovw_vs_convnet.convnet.augment import BatchAugment, InputAdapter
from bovw_vs_convnet.convnet.batches import BatchSource
from bovw_vs_convnet.convnet.checkpoint import CHECKPOINT_FORMAT, write_checkpoint
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.device import Runtime, resolve_runtime
from bovw_vs_convnet.convnet.optim import (
    build_optimizer,
    build_scheduler,
    lr_range_scheduler,
    require_chosen,
)
from bovw_vs_convnet.convnet.stopping import (
    NOT_LEARNING,
    StoppingRule,
    check_epoch,
    epoch_verdict,
    holds_dropout,
)
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.progress import Progress, ProgressMode
from bovw_vs_convnet.significance import chance_test, majority_error

log = logging.getLogger(__name__)

DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)  # held off


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A seed for one random stream of one epoch, independent of what ran before it."""
    return (seed * 1_000_003 + epoch * 7919 + stream * 104_729) % (2**63 - 1)


def _unresolved(cfg: ConvNetConfig) -> bool:
    """Whether a setting the recipe chooses is still "auto" (``tta_flip`` is the pipeline's)."""
    names = ("epochs", "batch_size", "schedule", "label_smoothing", "patience")
    return any(getattr(cfg, n) == "auto" for n in names) or cfg.augment == ("auto",)


@dataclass
class History:
    """Learning curves and timings, one entry per finished epoch."""

    train_loss: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    best_epoch: int = 0  # 1-based epoch whose weights are kept (0: none yet)
    best_val_error: float = float("inf")
    stop_reason: str = ""  # "epochs", "patience", "not learning" (stopping.py), "" (running)
    learning_epoch: int = 0  # the first epoch significantly below chance (0: none)
    val_p_value: list[float] = field(default_factory=list)  # each epoch's chance test
    rescues: list[dict[str, Any]] = field(default_factory=list)  # earlier attempts (pipeline)
    dropout_held_epochs: int = 0  # a rescued attempt's epochs with dropout off (stopping.py)


class Trainer:
    """Trains ``model`` on batches from a :class:`BatchSource`, checkpointing every epoch.

    ``adapter`` turns uint8 batches into model inputs, after ``augment`` (or None); :meth:`fit`
    runs the remaining epochs. ``runtime``: the resolved device and autocast dtype (by
    default from ``device`` and ``cfg.amp``). With ``cfg.compile`` a graph that fails to
    build (no C compiler, an old GPU or Python) is caught on its first call, before it has
    changed anything: training goes on eagerly (:attr:`compiled`, :attr:`compile_error`).
    """

    def __init__(
        self,
        model: nn.Module,
        adapter: InputAdapter,
        augment: BatchAugment | None,
        cfg: ConvNetConfig,
        device: torch.device,
        *,
        seed: int,
        identity: dict[str, Any],
        checkpoint_path: Path | None,
        progress: ProgressMode | bool,
        runtime: Runtime | None = None,
    ) -> None:
        if _unresolved(cfg):
            # a config no recipe was chosen for (a benchmark's own Trainer): what is left
            # at "auto" trains as the fixed recipe would (convnet/config.py: FIXED_DEFAULTS)
            cfg = dataclasses.replace(cfg, recipe="fixed")
        self.model = model.to(device)
        self.adapter = adapter.to(device)
        self.augment, self.cfg, self.device, self.seed = augment, cfg, device, seed
        self.identity = identity
        self.checkpoint_path, self.progress = checkpoint_path, progress
        # channels_last measured faster for these nets with cuDNN and with oneDNN on CPU.
        self.channels_last = cfg.channels_last in ("auto", "on")
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.runtime = runtime or resolve_runtime(device, cfg.amp)
        self.amp = self.runtime.amp  # "fp32", "bf16" or "fp16", for the record
        self.amp_dtype = self.runtime.autocast_dtype
        # fp16's range loses small gradients unless the loss is scaled up first
        self.scaler = torch.amp.GradScaler(device.type) if self.runtime.grad_scaler else None
        self.forward: Callable[[torch.Tensor], torch.Tensor] = self.model
        self.compiled = False  # whether compiled graphs run (False: eager)
        self.compile_error: str | None = None  # why compiling failed, one line
        self._compiled_ok: set[str] = set()  # graphs ("train", "eval") that have run once
        if cfg.compile:
            try:
                self.forward = torch.compile(self.model)
                self.compiled = True
            except Exception as exc:  # e.g. an unsupported Python fails at once
                self._fall_back_to_eager(exc)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.history = History()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stage_seconds: dict[str, float] = {}
        self.can_rescue = False  # stop at the warm-up's end when at chance (a rescue is left)
        self.dropouts = [m for m in self.model.modules() if isinstance(m, DROPOUTS)]
        self.validating = False  # whether fit has a validation set (which ends holding dropout)

    # --- one batch ---------------------------------------------------------------------
    def _inputs(self, xb: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        x = xb.float()  # (B, C, H, W), 0..255
        if gen is not None and self.augment is not None:
            x = self.augment(x, gen)
        x = self.adapter(x.div_(255.0))  # (B, C', S, S) normalised
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _fall_back_to_eager(self, exc: BaseException) -> None:
        self.forward, self.compiled = self.model, False
        self.compile_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        log.warning("torch.compile failed, training eagerly instead: %s", self.compile_error)

    def _guarded(self, graph: str, run: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``run()``; if it is the first call of a compiled ``graph`` and fails, eagerly.

        A compile error surfaces on a graph's first call (tracing, Triton, the backward
        pass), before any parameter or optimiser state has changed, so the eager retry
        starts from the same state. After one good call, errors are the model's own.
        """
        if not self.compiled or graph in self._compiled_ok:
            return run()
        try:
            out = run()
        except Exception as exc:
            self._fall_back_to_eager(exc)
            return run()
        self._compiled_ok.add(graph)
        return out

    def _forward_backward(self, x: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        assert self.optimizer is not None
        with self._autocast():
            logits = self.forward(x)  # (B, K)
            loss = F.cross_entropy(
                logits.float(),
                yb,
                label_smoothing=require_chosen(self.cfg.label_smoothing, "label_smoothing"),
            )
        self.optimizer.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        return loss.detach()

    def _step(self, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        assert self.optimizer is not None and self.scheduler is not None
        x = self._inputs(xb, gen)
        loss = self._guarded("train", partial(self._forward_backward, x, yb))
        if self.cfg.clip_grad > 0:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)  # clip the true gradients
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad, foreach=True)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when a gradient overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        return loss

    # --- epochs ------------------------------------------------------------------------
    def _generator(self, epoch: int, stream: int) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(epoch_seed(self.seed, epoch, stream))

    def _aug_generator(self, epoch: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(epoch_seed(self.seed, epoch, 1))

    @property
    def batch_size(self) -> int:
        """Images per optimiser step (the recipe has chosen it: the constructor checks)."""
        return int(require_chosen(self.cfg.batch_size, "batch_size"))

    def _drop_last(self, source: BatchSource) -> bool:
        # Compiled graphs are specialised to the batch shape; a short last batch would recompile.
        return self.cfg.compile and len(source) > self.batch_size

    def setup(self, source: BatchSource) -> None:
        """Create the optimiser and schedule for ``source``'s number of batches per epoch."""
        steps = source.n_batches(self.batch_size, self._drop_last(source))
        self.optimizer = build_optimizer(self.model, self.cfg)
        self.scheduler = build_scheduler(self.optimizer, self.cfg, steps)

    def warmup(self, source: BatchSource) -> float:
        """Run a few steps (compilation, kernel selection), then restore the exact prior state.

        When compiling, at least one step runs, so that the graph is built (or fails and
        falls back to eager) before the timed, seeded epochs.
        """
        steps = max(self.cfg.warmup_steps, 1 if self.compiled else 0)
        if steps <= 0:
            return 0.0
        assert self.optimizer is not None and self.scheduler is not None
        t0 = time.perf_counter()
        saved = (
            copy.deepcopy(self.model.state_dict()),
            copy.deepcopy(self.optimizer.state_dict()),
            copy.deepcopy(self.scheduler.state_dict()),
            copy.deepcopy(self.scaler.state_dict()) if self.scaler is not None else None,
        )
        gen = self._aug_generator(-1)
        self.model.train()
        for i, (xb, yb) in enumerate(source.batches(self.batch_size, self._generator(-1, 0), True)):
            if i >= steps:
                break
            self._step(xb, yb, gen)
        self._sync()
        self.model.load_state_dict(saved[0])
        self.optimizer.load_state_dict(saved[1])
        self.scheduler.load_state_dict(saved[2])
        if self.scaler is not None and saved[3] is not None:
            self.scaler.load_state_dict(saved[3])
        return time.perf_counter() - t0

    def find_lr(
        self, source: BatchSource, start: float = 1e-6, end: float = 1.0, steps: int = 100
    ) -> dict[str, Any]:
        """A learning-rate range test (Smith 2017; fastai's ``lr_find``); the model is unchanged.

        Trains ``steps`` batches with the rate rising exponentially from ``start`` to
        ``end``, tracking a smoothed (debiased, factor 0.98) loss, and stops once it exceeds
        4 times its minimum (divergence). The pick is the rate of the lowest smoothed loss
        / 10 (fastai's rule: well before the loss turns up), never below ``start``. The
        weights are put back; the returned dict (for the record) holds ``lr`` (the pick),
        the ``ramp`` bounds, ``steps_run``, ``min_loss_lr`` and the ``lrs`` / ``losses``.
        """
        if not 0 < start < end:
            raise ConfigError(f"lr finder needs 0 < start < end, got {start} and {end}")
        probe = copy.copy(self)
        probe.cfg = dataclasses.replace(self.cfg, lr=start)
        saved = copy.deepcopy(self.model.state_dict())
        probe.optimizer = build_optimizer(self.model, probe.cfg)
        ratio = (end / start) ** (1 / max(1, steps - 1))
        probe.scheduler = lr_range_scheduler(probe.optimizer, ratio)
        gen, lrs, losses = self._aug_generator(-2), [], []
        avg, best, i = 0.0, float("inf"), 0
        self.model.train()
        torch.manual_seed(epoch_seed(self.seed, -2, 2))
        while i < steps:
            batches = source.batches(self.batch_size, self._generator(-2, i), True)
            n_before = i
            for xb, yb in batches:
                lr = start * ratio**i
                loss = float(probe._step(xb, yb, gen))
                avg = 0.98 * avg + 0.02 * loss
                smooth = avg / (1 - 0.98 ** (i + 1))
                i += 1
                if not math.isfinite(smooth):
                    break
                lrs.append(lr)
                losses.append(smooth)
                best = min(best, smooth)
                if smooth > 4 * best or i >= steps:
                    break
            if i == n_before or (losses and losses[-1] > 4 * best) or not math.isfinite(avg):
                break  # too few images for one full batch, or diverged
        self.model.load_state_dict(saved)
        if not losses:
            raise ConfigError("lr=auto: the finder ran no step (fewer images than one batch?)")
        at_min = lrs[int(np.argmin(losses))]
        pick = max(start, at_min / 10)
        log.info("lr finder: lowest loss at lr %.3g, picked %.3g", at_min, pick)
        return {
            "lr": pick,
            "ramp": [start, end],
            "steps_run": len(lrs),
            "min_loss_lr": at_min,
            "lrs": lrs,
            "losses": losses,
        }

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_epoch(self, source: BatchSource, epoch: int) -> tuple[float, float, float]:
        """One pass over ``source`` (epoch is 1-based); returns (mean loss, seconds, images/s)."""
        torch.manual_seed(epoch_seed(self.seed, epoch, 2))  # dropout draws
        order_gen, aug_gen = self._generator(epoch, 0), self._aug_generator(epoch)
        drop_last = self._drop_last(source)
        n_batches = source.n_batches(self.batch_size, drop_last)
        self.model.train()
        h, warm = self.history, epoch <= self.stopping_rule().check_epoch
        if holds_dropout(
            bool(self.dropouts), bool(h.rescues), self.validating, h.learning_epoch, warm
        ):
            for m in self.dropouts:
                m.eval()  # the identity, as at test time
            h.dropout_held_epochs += 1
        total = torch.zeros((), device=self.device)
        seen, t0 = 0, time.perf_counter()
        desc = f"epoch {epoch}/{self.cfg.epochs}"
        with Progress(n_batches, desc, mode=self.progress, unit="batch") as bar:
            batches = source.batches(self.batch_size, order_gen, drop_last)
            for i, (xb, yb) in enumerate(batches):
                loss = self._step(xb, yb, aug_gen)
                total += loss * len(yb)
                seen += len(yb)
                # .item() waits for the device: only when shown, and every 20 batches.
                if bar.mode != "none" and (i % 20 == 19 or i == n_batches - 1):
                    rate = seen / max(time.perf_counter() - t0, 1e-9)
                    bar.update(i + 1, loss=f"{total.item() / seen:.4f}", img_s=f"{rate:,.0f}")
            self._sync()
            seconds = time.perf_counter() - t0
        return total.item() / max(seen, 1), seconds, seen / max(seconds, 1e-9)

    @torch.inference_mode()
    def predict(self, source: BatchSource, flip: bool = False) -> torch.Tensor:
        """Logits (N, K), float32 on the CPU, in the source's order; ``flip`` adds the mirror."""
        self.model.eval()
        out = []
        for xb, _ in source.batches(self.cfg.eval_batch_size, None):
            x = self._inputs(xb, None)
            out.append(self._guarded("eval", partial(self._logits, x, flip)).cpu())
        return torch.cat(out) if out else torch.empty(0)

    def _logits(self, x: torch.Tensor, flip: bool) -> torch.Tensor:
        with self._autocast():
            logits = self.forward(x).float()  # (B, K)
            if flip:
                logits = (logits + self.forward(x.flip(3)).float()) / 2
        return logits

    def stopping_rule(self) -> StoppingRule:
        """Patience, warm-up, rescue and the looks to correct for (stopping.looks_taken)."""
        epochs = int(require_chosen(self.cfg.epochs, "epochs"))
        return StoppingRule(
            patience=int(require_chosen(self.cfg.patience, "patience")),
            check_epoch=check_epoch(epochs, self.cfg.warmup_fraction),
            stop_if_not_learning=self.can_rescue,
            select=self.cfg.val_select,
            looks=epochs + sum(r["epochs_run"] for r in self.history.rescues),
        )

    def _validate(self, val: BatchSource, val_labels: np.ndarray, epoch: int, rule: Any) -> str:
        """Score ``val`` after ``epoch``, keep a new best, and say whether to stop (and why)."""
        h = self.history
        err = float((self.predict(val).argmax(1).numpy() != val_labels).mean())
        test = chance_test(err, len(val_labels), majority_error(val_labels), looks=rule.looks)
        h.val_error.append(err)
        h.val_p_value.append(test.p_value)
        verdict = epoch_verdict(
            rule,
            epoch,
            err,
            test.significant,
            best_epoch=h.best_epoch,
            best_err=h.best_val_error,
            learning_epoch=h.learning_epoch,
        )
        h.learning_epoch = verdict.learning_epoch
        if verdict.best:
            h.best_val_error, h.best_epoch = err, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        log.info("epoch %d: val error %.4f (chance test p %.2g)", epoch, err, test.p_value)
        return verdict.stop

    def fit(
        self, train: BatchSource, val: BatchSource | None, val_labels: np.ndarray | None
    ) -> History:
        """Train the remaining epochs, evaluating on ``val`` and checkpointing after each.

        Stopping follows :func:`~bovw_vs_convnet.convnet.stopping.epoch_verdict`: patience
        counts from the first epoch significantly below chance, never inside the warm-up.
        """
        cfg = self.cfg
        if self.optimizer is None:
            self.setup(train)
        epochs = int(require_chosen(cfg.epochs, "epochs"))
        rule = self.stopping_rule()
        start = len(self.history.train_loss) + 1
        if self.history.stop_reason:  # a finished checkpoint: nothing left to run
            start = epochs + 1
        if start == 1:
            self.stage_seconds["warmup"] = self.warmup(train)
        self.validating = val is not None and val_labels is not None and len(val) > 0
        val_seconds = 0.0
        for epoch in range(start, epochs + 1):
            loss, seconds, rate = self.train_epoch(train, epoch)
            if not np.isfinite(loss) and self.can_rescue:  # a fresh start at a lower rate
                log.warning("training diverged at epoch %d (loss %s)", epoch, loss)
                self.history.stop_reason = NOT_LEARNING
                break
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged at epoch {epoch} (loss {loss}); lower lr"
                )
            h = self.history
            h.train_loss.append(loss)
            h.epoch_seconds.append(seconds)
            h.images_per_s.append(rate)
            log.info("epoch %d: loss %.4f (%.0f img/s)", epoch, loss, rate)
            stop = ""
            if val is not None and val_labels is not None and len(val):
                t0 = time.perf_counter()
                stop = self._validate(val, val_labels, epoch, rule)
                val_seconds += time.perf_counter() - t0
            if stop or epoch == epochs:
                h.stop_reason = stop or "epochs"
            self.save_checkpoint(finished=epoch == epochs or bool(stop))
            if stop:
                log.info("stopped at epoch %d (%s; best %d)", epoch, stop, h.best_epoch)
                break
        self.stage_seconds["epochs"] = float(sum(self.history.epoch_seconds))
        self.stage_seconds["validation"] = self.stage_seconds.get("validation", 0.0) + val_seconds
        if cfg.val_select and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history

    # --- checkpoints -------------------------------------------------------------------
    def state(self, finished: bool) -> dict[str, Any]:
        """Everything needed to continue: weights, optimiser, schedule, curves, identity.

        Tensors and plain values only (state dicts, numbers, strings, lists, dicts), so
        that :func:`~bovw_vs_convnet.convnet.checkpoint.load_checkpoint` can read it with
        ``weights_only=True``.
        """
        assert self.optimizer is not None and self.scheduler is not None
        return {
            "format": CHECKPOINT_FORMAT,
            "identity": self.identity,
            "finished": finished,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": dict(self.history.__dict__),
            "best_state": self.best_state,
        }

    def save_checkpoint(self, finished: bool) -> None:
        """Write :meth:`state` to the checkpoint path, atomically; nothing without a path."""
        if self.checkpoint_path is None:
            return
        write_checkpoint(self.state(finished), self.checkpoint_path)

    def load_state(self, ckpt: dict[str, Any], train: BatchSource) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (identity already checked)."""
        self.setup(train)
        assert self.optimizer is not None and self.scheduler is not None
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.history = History(**ckpt["history"])
        self.best_state = ckpt["best_state"]
