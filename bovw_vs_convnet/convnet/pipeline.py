"""The ``convnet`` pipeline: a registered ConvNet trained on the split, scored as logits.

``build_pipeline(config, context)`` is the harness's factory (see
``harness/registry.py``). ``fit`` builds the model for the dataset's classes and
channels, adapts the input (pad/resize, grayscale replication, normalisation),
trains with checkpoints every epoch in ``context.run_dir``, keeps the epoch with the
lowest validation error, and records learning curves; ``decision_scores`` returns
logits; ``save_artifacts`` leaves the first-layer filters and the learning curve in the
run folder, for the report. Whether other processes train beside this one (torchrun)
is decided once, at the start of ``fit`` (:mod:`.distributed`). Example::

    cfg = build_config(ConvNetConfig, {"model": "lenet5", "epochs": "3"})
    pipe = build_pipeline(cfg, context).fit(split_train, split_val)
    scores = pipe.decision_scores(test)  # (n, n_classes)

``ConvNetConfig`` lives in :mod:`.config` (which imports no torch) and is importable
from here too. Whether ``flip`` may mirror the training images is the set's
``mirror_ok`` (from its manifest), or the ``mirror`` setting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from bovw_vs_convnet.config import config_to_dict, identity_settings
from bovw_vs_convnet.convnet import distributed
from bovw_vs_convnet.convnet.artifacts import first_conv_weights, write_learning_curve
from bovw_vs_convnet.convnet.augment import BatchAugment, InputAdapter
from bovw_vs_convnet.convnet.batches import aspect_record, make_batches
from bovw_vs_convnet.convnet.checkpoint import load_checkpoint
from bovw_vs_convnet.convnet.config import AUTO, ConvNetConfig
from bovw_vs_convnet.convnet.device import Runtime, choose_run_threads, resolve_runtime
from bovw_vs_convnet.convnet.input_size import InputChoice, choose_input_size, input_recipe
from bovw_vs_convnet.convnet.mirror_check import decide_mirroring
from bovw_vs_convnet.convnet.models import (
    count_parameters,
    create_model,
    get_model_spec,
    resolve_ablation,
)
from bovw_vs_convnet.convnet.recipes import DataShape, choose_recipe
from bovw_vs_convnet.convnet.stopping import NOT_LEARNING, learned_record, rescue_lr, rescue_record
from bovw_vs_convnet.convnet.train import History, Trainer, epoch_seed
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.protocol import RunContext

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
# the run's artefacts (save_artifacts), which the report draws; it knows these names
FILTERS_ARTIFACT = "first_layer_filters.npy"
CURVE_ARTIFACT = "learning_curve.csv"


def mirror_allowed(cfg: ConvNetConfig, train: ImageSet) -> bool:
    """Whether the ``flip`` augmentation may mirror ``train``'s images.

    ``cfg.mirror`` decides when set (``yes``/``no``); ``auto`` takes the set's own
    ``mirror_ok``, which its manifest gives (false for digits, whose classes change
    under a mirror; true for an ImageFolder).
    """
    return train.mirror_ok if cfg.mirror == "auto" else cfg.mirror == "yes"


def augmentations(cfg: ConvNetConfig, train: ImageSet) -> list[str]:
    """The augmentations to train ``train`` with: ``cfg.augment`` less a ``flip`` not allowed."""
    kinds = list(cfg.augment)
    if "flip" in kinds and not mirror_allowed(cfg, train):
        kinds.remove("flip")
        log.info("no horizontal flips for dataset %r (mirror=%s)", train.name, cfg.mirror)
    return kinds


def channel_stats(images: np.ndarray, limit: int = 10_000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units over (up to ``limit`` evenly spaced) images."""
    step = max(1, len(images) // limit)
    sample = images[::step].astype(np.float32) / 255.0  # (n, H, W, C)
    mean = sample.mean(axis=(0, 1, 2))
    std = sample.std(axis=(0, 1, 2))
    return [float(m) for m in mean], [float(max(s, 1e-3)) for s in std]


def stats_sample(train: ImageSet, limit: int = 2000) -> np.ndarray:
    """The images :func:`channel_stats` reads: all of a resident set, about ``limit`` of a lazy one.

    A lazy set (an ImageFolder) is read from its files, so only every k-th image is.
    """
    if not train.is_lazy:
        return train.array()
    return train.subset(np.arange(0, len(train), max(1, len(train) // limit))).array()


def check_sets(train: ImageSet, val: ImageSet | None) -> None:
    """DataError unless ``train`` has images and ``val`` (if any) has its classes and channels."""
    if len(train) == 0:
        raise DataError("cannot train a ConvNet on an empty training set")
    if val is not None and (val.n_classes != train.n_classes or val.channels != train.channels):
        raise DataError("validation set has different classes or channels from training set")


def checkpoint_identity(
    model_name: str,
    cfg: ConvNetConfig,
    train: ImageSet,
    ctx: RunContext,
    runtime: Runtime,
    input_size: int | None = None,
) -> dict[str, Any]:
    """What a checkpoint must have been made with to be resumed by this run.

    The model, classes, image shape, training size, split, seed, every setting that
    changes the result (settings added later, at their old value, are left out, so old
    checkpoints resume), the input size where it is not the model's design size, and, on
    CUDA, the device type and autocast dtype: a CPU checkpoint is not resumed there in
    another precision (nothing is added on the CPU).
    """
    h, w, c = train.image_shape
    larger = {} if input_size is None else {"input_size": input_size}
    return {
        **larger,
        "model": model_name,
        "num_classes": train.n_classes,
        "image_shape": [h, w, c],
        "n_train": len(train),
        "split_fingerprint": ctx.split_fingerprint,
        "seed": ctx.seed,
        "config": {
            k: v
            for k, v in identity_settings(ConvNetConfig, config_to_dict(cfg)).items()
            if k not in ("eval_batch_size", "workers")
        },
        **runtime.identity(),
    }


@dataclass
class TrainingPlan:
    """What ``fit`` builds before the epochs: the trainer and what the record says of it."""

    trainer: Trainer
    settings: ConvNetConfig  # the run's settings, "auto" replaced by the recipe's choice
    adapter: InputAdapter
    recipe: dict[str, Any]  # the recipe's choices and reasons, for the record
    augment: list[str]  # the augmentations trained with
    input_choice: InputChoice  # the input size and why (convnet/input_size.py)


class ConvNetPipeline:
    """A ConvNet from the model registry, trained by :class:`~.train.Trainer`."""

    def __init__(self, config: ConvNetConfig, context: RunContext) -> None:
        self.config = config
        self.context = context
        self.model_name = resolve_ablation(config.model, config.ablate)
        get_model_spec(self.model_name)  # unknown names fail before any data is read
        self.stage_seconds: dict[str, float] = {}
        self.record_extra: dict[str, Any] = {}
        self.n_params = 0
        self.device = ""
        self.trainer: Trainer | None = None
        self.tta_flip = config.tta_flip is True  # decided in fit when "auto"
        self.input_choice: InputChoice | None = None  # decided in fit (convnet/input_size.py)

    def _setup_torch(self, device: torch.device, in_channels: int, input_size: int) -> None:
        """Threads, determinism and TF32 for this run (torch's switches are per process).

        Threads: ``threads`` given, or chosen from the usable CPUs and the model's work
        per image (``threads=auto``, :func:`~bovw_vs_convnet.convnet.device.choose_run_threads`),
        the choice and its reason in the record's ``extra.threads``.

        ``deterministic=true`` is strict (``warn_only=False``): an op with no deterministic
        kernel raises instead of breaking the "same bits" promise unseen. The ops of
        these models that PyTorch lists as such are deterministic in the shapes used
        here, and the models route around them (``alexnet.LocalResponseNorm``,
        ``alexnet.AdaptiveAvgPool2d``): LRN's stride-1 ``avg_pool3d`` backward gathers
        without atomics, and an adaptive pool whose input is already its output size
        is the identity. On the CPU, same seed, same bits; on CUDA, also the same GPU
        model and software.
        """
        cfg = self.config
        if cfg.threads != 0:  # 0: torch's default (runs stored before threads=auto)
            choice = choose_run_threads(
                cfg.threads, get_model_spec(self.model_name), in_channels, input_size
            )
            torch.set_num_threads(choice.n)
            self.record_extra["threads"] = choice.describe()
        if cfg.deterministic:
            # cuBLAS reads this when it starts: set later (after a GPU run in this
            # process) it does not make cuBLAS deterministic. The bvc CLI sets it at start.
            if (
                device.type == "cuda"
                and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
                and torch.cuda.is_initialized()
            ):
                log.warning(
                    "CUDA started before CUBLAS_WORKSPACE_CONFIG was set: cuBLAS may not be "
                    "deterministic in this process (set CUBLAS_WORKSPACE_CONFIG=:4096:8 first)"
                )
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=False)
            torch.backends.cudnn.benchmark = False
        else:
            torch.use_deterministic_algorithms(False)
            torch.backends.cudnn.benchmark = device.type == "cuda"
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = not cfg.deterministic
            torch.backends.cudnn.allow_tf32 = not cfg.deterministic

    def fit(self, train: ImageSet, val: ImageSet | None) -> Self:
        """Train on ``train``; ``val`` selects the best epoch and gives the learning curve."""
        check_sets(train, val)
        cfg = self.config
        # the one decision about other processes: alone, or one rank of a torchrun job
        strategy = distributed.choose_strategy()
        runtime = resolve_runtime(self.context.device, cfg.amp)  # as the run's config key
        runtime = strategy.runtime(runtime)
        device = runtime.device
        self.device = str(device)
        spec = get_model_spec(self.model_name)
        self.input_choice = choose_input_size(cfg.input_size, spec, train, cfg.recipe == "fixed")
        self._setup_torch(device, train.channels, self.input_choice.size)
        t_setup = time.perf_counter()
        train, mirror_check = decide_mirroring(cfg, train, val)
        if mirror_check is not None:
            self.record_extra["mirror_check"] = mirror_check
        plan = self._plan(train, runtime)
        # larger images: the frames, cropped by the batch augmentation at the input size
        native = not self.input_choice.large
        train_src = strategy.shard(
            make_batches(train, device, cfg.workers, train=True, native_crops=native)
        )
        val_src = make_batches(val, device, cfg.workers) if val is not None and len(val) else None
        if plan.settings.lr == AUTO:
            self._find_lr(plan, train_src)
        resumed_from = self._resume(plan.trainer, train_src)
        self.stage_seconds["setup"] = time.perf_counter() - t_setup
        while True:  # a run at chance when its warm-up ends starts afresh (convnet/stopping.py)
            self.record_extra.update(strategy.wrap(plan.trainer, train_src))
            history = plan.trainer.fit(train_src, val_src, val.labels if val is not None else None)
            if history.stop_reason != NOT_LEARNING:
                break
            plan = self._rescue(plan, train, runtime, train_src)
        self.trainer = plan.trainer
        self._finish_recipe(plan, history, val_src, val)
        self.stage_seconds.update(plan.trainer.stage_seconds)
        if val is not None and (h := history).val_error:  # the chance test, for every look
            rec = learned_record(self.model_name, h.val_error, h.best_epoch, val.labels, h.rescues)
            self.record_extra.update(rec)
        self.record_extra["rescues"] = history.rescues
        self.record_extra.update(self._record(plan, history, runtime, train, resumed_from))
        return self

    def _rescue(
        self, plan: TrainingPlan, train: ImageSet, runtime: Runtime, train_src: Any
    ) -> TrainingPlan:
        """A fresh model at a lower rate, for a run at chance when its warm-up ended (or diverged).

        The rate is the finder's pick for the fresh model (Smith 2017) or a third of the
        failed one, whichever is lower (a rate 100 times too hot needs more than /3); a
        pick at the finder's floor is no pick (:func:`~.stopping.rescue_lr`).
        """
        old, h = plan.trainer, plan.trainer.history
        lr = float(old.cfg.lr)
        new = self._plan(train, runtime, attempt=len(h.rescues) + 1)
        try:
            finder: dict[str, Any] | None = new.trainer.find_lr(train_src)
        except ConfigError:  # fewer images than one batch: no finder
            finder = None
        new_lr, found = rescue_lr(lr, finder), finder["lr"] if finder else None
        done = [*h.rescues, rescue_record(h.val_error, h.val_p_value, lr, new_lr, found)]
        log.warning(
            "%s is at chance when its warm-up ends (epoch %d, validation error %s): "
            "rescue %d, a fresh start at lr %.3g",
            self.model_name,
            len(h.train_loss),
            f"{h.val_error[-1]:.1%}" if h.val_error else "none (diverged)",
            len(done),
            new_lr,
        )
        new.trainer.cfg = dataclasses.replace(new.trainer.cfg, lr=new_lr)
        new.trainer.history.rescues = done
        new.recipe = plan.recipe
        return new

    def _plan(self, train: ImageSet, runtime: Runtime, attempt: int = 0) -> TrainingPlan:
        """The model (seeded), its input adaptation, the recipe for ``train`` and the trainer.

        ``attempt`` > 0 (a rescue) draws a fresh initialisation from its own seed.
        """
        cfg, ctx = self.config, self.context
        spec = get_model_spec(self.model_name)
        choice = self.input_choice or choose_input_size(
            cfg.input_size, spec, train, cfg.recipe == "fixed"
        )
        torch.manual_seed(ctx.seed if not attempt else epoch_seed(ctx.seed, -10, attempt))
        model = create_model(
            self.model_name,
            num_classes=train.n_classes,
            in_channels=train.channels,
            init=cfg.init,
            input_size=choice.size,
        )
        self.n_params = count_parameters(model)
        h, w, c = train.image_shape
        mean, std = channel_stats(stats_sample(train))
        adapter = InputAdapter(
            (h, w), c, choice.size, spec.fit, spec.fixed_channels or c, mean, std
        )
        mirror = mirror_allowed(cfg, train)
        resolved, recipe = choose_recipe(cfg, DataShape(len(train), (h, w), c, mirror))
        resolved = input_recipe(cfg, resolved, recipe, choice)
        if "mirror_check" in self.record_extra:
            recipe["why"]["mirror"] = self.record_extra["mirror_check"]["why"]
        kinds = augmentations(resolved, train)
        augment = (
            BatchAugment(kinds, max_shift=cfg.max_shift, crop_size=choice.size) if kinds else None
        )
        trainer = Trainer(
            model,
            adapter,
            augment,
            resolved,
            runtime.device,
            seed=ctx.seed,
            identity=checkpoint_identity(self.model_name, cfg, train, ctx, runtime, choice.grown),
            checkpoint_path=ctx.run_dir / CHECKPOINT_NAME,
            progress=ctx.progress,
            runtime=runtime,
        )
        trainer.can_rescue = attempt < int(resolved.rescues)
        return TrainingPlan(trainer, resolved, adapter, recipe, kinds, choice)

    @staticmethod
    def _find_lr(plan: TrainingPlan, train_src: Any) -> None:
        """``lr=auto``: the finder's rate, into the trainer's settings and the recipe."""
        # seeded: a resumed run finds the same rate (on the CPU, the same bits)
        found = plan.trainer.find_lr(train_src)
        plan.trainer.cfg = dataclasses.replace(plan.settings, lr=found["lr"])
        plan.recipe["lr_finder"] = found
        plan.recipe["chosen"]["lr"] = found["lr"]
        plan.recipe["why"]["lr"] = "learning-rate finder (Smith 2017): lowest smoothed loss / 10"

    def _resume(self, trainer: Trainer, train_src: Any) -> int:
        """Load the run folder's checkpoint, if any (``resume`` must allow it); its epochs."""
        ctx = self.context
        path = trainer.checkpoint_path
        if path is None or not path.exists():
            return 0
        if not ctx.resume:
            raise ConfigError(
                f"{ctx.run_dir} already holds a checkpoint; resume it or use a new run folder"
            )
        trainer.load_state(load_checkpoint(path, trainer.identity), train_src)
        if trainer.history.rescues:  # a rescued attempt: its own rate and what is left
            trainer.cfg = dataclasses.replace(trainer.cfg, lr=trainer.history.rescues[-1]["new_lr"])
            trainer.can_rescue = len(trainer.history.rescues) < int(trainer.cfg.rescues)
        resumed_from = len(trainer.history.train_loss)
        log.info("resuming %s after epoch %d", self.model_name, resumed_from)
        return resumed_from

    def _finish_recipe(
        self, plan: TrainingPlan, history: History, val_src: Any, val: ImageSet | None
    ) -> None:
        """What the epochs decided (how many, why they stopped) and the test-time flip."""
        recipe = plan.recipe
        recipe["epochs_run"] = len(history.train_loss)
        recipe["stop_reason"] = history.stop_reason
        recipe["steps_run"] = recipe["steps_per_epoch"] * len(history.train_loss)
        if plan.settings.tta_flip == AUTO:
            self.tta_flip, recipe["tta_val_error"] = self._choose_tta(plan.trainer, val_src, val)
            recipe["chosen"]["tta_flip"] = self.tta_flip
        else:
            self.tta_flip = bool(plan.settings.tta_flip)

    def _record(
        self,
        plan: TrainingPlan,
        history: History,
        runtime: Runtime,
        train: ImageSet,
        resumed_from: int,
    ) -> dict[str, Any]:
        """What the run record keeps of the training (``extra``): curves, recipe, runtime."""
        trainer = plan.trainer
        n_epochs = len(history.train_loss)
        fresh = history.images_per_s[resumed_from:]  # the epochs this process ran
        return {
            "learning_curve": {
                "epoch": list(range(1, n_epochs + 1)),
                "train_loss": history.train_loss,
                "val_error": history.val_error,
            },
            "epoch_seconds": history.epoch_seconds,
            "best_epoch": history.best_epoch,
            "epochs_run": n_epochs,
            "resumed_from_epoch": resumed_from,
            "train_images_per_s": float(sum(fresh) / max(1, n_epochs - resumed_from))
            if n_epochs > resumed_from
            else None,
            "input": plan.adapter.describe(),
            "augment": plan.augment,
            "recipe": plan.recipe,
            "tta_flip": self.tta_flip,
            **_runtime_record(runtime),
            "compiled": trainer.compiled,
            "compile_error": trainer.compile_error,
            "channels_last": trainer.channels_last,
            "data_path": "resident" if not train.is_lazy else "dataloader",
            # images of mixed sizes: the crops
            **aspect_record(
                train, plan.input_choice.train_text() if plan.input_choice.large else None
            ),
            "torch": torch.__version__,
        }

    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """Logits of shape (len(images), n_classes), float32."""
        if self.trainer is None:
            raise ConfigError("the ConvNet pipeline must be fitted before scoring")
        t0 = time.perf_counter()
        device = torch.device(self.device)
        scores = self.trainer.predict(
            make_batches(images, device, self.config.workers), self.tta_flip
        )
        self.stage_seconds["scoring"] = (
            self.stage_seconds.get("scoring", 0.0) + time.perf_counter() - t0
        )
        return scores.numpy().astype(np.float32, copy=False)

    def save_artifacts(self, run_dir: Path) -> None:
        """Write what the report shows of the run: the first-layer filters and the curves.

        ``first_layer_filters.npy`` holds the kept weights' first convolution, float32
        (out, in, kh, kw) (the weights validation selected, or the last epoch's);
        ``learning_curve.csv`` has one row per epoch (``epoch, train_loss, val_error``,
        the error blank without a validation set). Nothing before ``fit``. A write that
        fails (a full disk) removes what it began and raises the OSError, with its errno.
        """
        if self.trainer is None:
            return
        run_dir = Path(run_dir)
        filters = first_conv_weights(self.trainer.model)
        curve = self.record_extra.get("learning_curve")
        begun: list[Path] = []
        try:
            if filters is not None:
                buffer = io.BytesIO()  # np.save to a path reports a short write without errno
                np.save(buffer, filters, allow_pickle=False)
                begun.append(run_dir / FILTERS_ARTIFACT)
                begun[-1].write_bytes(buffer.getvalue())
            if curve:
                begun.append(run_dir / CURVE_ARTIFACT)
                write_learning_curve(curve, begun[-1])
        except OSError as exc:
            for path in begun:  # a half-written artefact must not keep a full disk full
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            # a failed write() names no file: name the one being written
            raise OSError(
                exc.errno, exc.strerror, exc.filename or str(begun[-1] if begun else run_dir)
            ) from exc

    @staticmethod
    def _choose_tta(
        trainer: Trainer, val_src: Any, val: ImageSet | None
    ) -> tuple[bool, dict[str, float] | None]:
        """Test-time flip for ``tta_flip=auto`` (mirroring allowed): on unless it raises val error.

        Without a validation set it is on (mirroring is allowed, and a flip-trained model
        sees mirrors as its own images). Returns (choice, {"plain": err, "flip": err}).
        """
        if val_src is None or val is None:
            return True, None
        errors = {
            name: float((trainer.predict(val_src, flip).argmax(1).numpy() != val.labels).mean())
            for name, flip in (("plain", False), ("flip", True))
        }
        return errors["flip"] <= errors["plain"], errors


def _runtime_record(runtime: Runtime) -> dict[str, Any]:
    """``amp`` (fp32, bf16 or fp16), why, and the GPU's capability, for ``record_extra``."""
    return {**runtime.describe(), "grad_scaler": runtime.grad_scaler}


def build_pipeline(config: ConvNetConfig, context: RunContext) -> ConvNetPipeline:
    """The harness factory: an unfitted :class:`ConvNetPipeline`."""
    return ConvNetPipeline(config, context)
