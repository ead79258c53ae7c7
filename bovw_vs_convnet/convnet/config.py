"""Settings of a ConvNet run: :class:`ConvNetConfig`, its presets and each model's recipe.

This module imports no torch, so the suite parser and ``bvc run --set`` can check
settings before any model is loaded. Example::

    from bovw_vs_convnet.config import build_config
    cfg = build_config(ConvNetConfig, {"model": "alexnet-small", "epochs": "3"})
    cfg.optimizer  # "adamw": the model's recipe (AUTO_PRESETS) when no preset is named
    cfg.epochs  # "auto": chosen from the training set when the run starts (convnet/recipes.py)

Two recipes: ``recipe="auto"`` (the default) leaves the settings that depend on the data
at ``"auto"`` (epochs, schedule, label smoothing, augmentation, patience, test-time
flip) and :func:`bovw_vs_convnet.convnet.recipes.choose_recipe` fills them in from the
training set when the run starts; ``recipe="fixed"`` is the recipe of the runs stored
before it: each ``"auto"`` left becomes its old default (:data:`FIXED_DEFAULTS`), so a
fixed run's settings, and so its config key, are those of the old runs. ``recipe`` is
in ``SETTINGS_SINCE`` at ``"fixed"``, ``"auto"`` is not: an auto run never takes an old
run's key, and an old run still reads as what it was. A setting given explicitly wins
in both recipes (``--set epochs=10`` means 10 epochs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from bovw_vs_convnet.config import Bound
from bovw_vs_convnet.errors import ConfigError

# The batch augmentations of :class:`~bovw_vs_convnet.convnet.augment.BatchAugment`;
# "crop" (random-resized crops to the input size) is added to augment=auto for large
# images (convnet/input_size.py).
AUGMENTATIONS = ("translate", "flip", "affine", "jitter", "crop")
AUTO = "auto"
# Models whose ``init`` setting can choose a scheme (AlexNet2012.init_weights); their
# "auto" is Kaiming (torchvision's), every other model keeps its own (init=auto).
INIT_MODELS = ("alexnet-2012",)

# The auto recipe's revision (convnet/recipes.py), raised whenever a rule there changes
# what an auto run trains. It is part of an auto run's identity (convnet/device.py:
# run_identity), so that a runs folder does not return a run of an older recipe for
# today's. 1: the runs before the number (lenet5 on SGD; batch 128 at every size).
# 3: patience counts from learning (convnet/stopping.py), rescues, mirroring decided
# from the data for folders. 4: a rescued attempt holds dropout off until it learns
# (convnet/stopping.py), each epoch's chance test is corrected for the epochs looked at
# (Bonferroni), a finder pick at its floor is no rescue rate, and the input size follows
# a folder's images (input_size=auto).
RECIPE_VERSION = 4
# What recipe="fixed" puts in place of a setting left at "auto": the defaults of every
# run stored before the auto recipe, so that those runs keep their config keys.
FIXED_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 128,
    "schedule": "onecycle",
    "label_smoothing": 0.0,
    "augment": ("translate", "flip"),
    "patience": 0,
    "tta_flip": False,
}


@dataclass(frozen=True)
class ConvNetConfig:
    """Settings of one ConvNet run; every field can be set with ``--set KEY=VALUE``."""

    # settings added after runs were stored, with the value those runs had
    # (config.identity_settings: at that value they leave a run's identity as it was)
    # (recipe="auto" is not: it changes what the defaults mean, so its runs get new keys)
    # (init: stored alexnet-2012 runs had the paper's, and get new keys as they should)
    SETTINGS_SINCE: ClassVar[dict[str, Any]] = {
        "mirror": "auto",
        "recipe": "fixed",
        "init": "auto",
        "rescues": "auto",  # a fixed run resolves it to 0 (no rescue), as runs before it had
        "input_size": "auto",  # auto is the model's design size for images no larger
    }
    # what the hardware adds to a run's identity (device type, autocast dtype), resolved at
    # run time by the harness as "module:attribute" (this module imports no torch)
    RUNTIME_IDENTITY: ClassVar[str] = "bovw_vs_convnet.convnet.device:run_identity"
    # ranges checked when a setting is parsed (config.check_bounds), before any training
    BOUNDS: ClassVar[dict[str, Bound]] = {
        "epochs": Bound(1, 10_000),
        "batch_size": Bound(1, 65_536),
        "eval_batch_size": Bound(1, 65_536),
        "lr": Bound(0, low_open=True),
        "momentum": Bound(0, 1, high_open=True),
        "weight_decay": Bound(0),
        "warmup_fraction": Bound(0, 1),  # a share of the steps (OneCycleLR's pct_start)
        "step_epochs": Bound(1, 10_000),
        "step_gamma": Bound(0, 1, low_open=True),
        "label_smoothing": Bound(0, 1, high_open=True),  # 1 would make every target uniform
        "clip_grad": Bound(0),
        "max_shift": Bound(0, 1_024),  # pixels of padding each way
        "patience": Bound(0, 10_000),
        "workers": Bound(0, 1_024),
        "warmup_steps": Bound(0, 10_000),
        "threads": Bound(0, 4_096),
        "input_size": Bound(16, 1_024),  # pixels a side of the square model input
    }

    model: str = "lenet5"  # registry name (bvc models); with ablate, a Zeiler–Fergus variant
    ablate: str = "none"  # removed layers: none | fc7 | fc6-fc7 | conv3-conv4-fc6-fc7
    # weight initialisation: auto = the model's own (for alexnet-2012 resolved to kaiming,
    # torchvision's scheme); paper = Krizhevsky et al.'s N(0, 0.01) with biases 1, which
    # stays at chance on 10-62 classes (benchmarks/RESULTS-convnet.md); alexnet-2012 only
    init: Literal["auto", "kaiming", "paper"] = "auto"
    # auto: the data-dependent settings left at "auto" are chosen from the training set
    # (convnet/recipes.py); fixed: they take the old defaults (FIXED_DEFAULTS)
    recipe: Literal["auto", "fixed"] = "auto"
    epochs: int | Literal["auto"] = "auto"  # passes over the training set (at most: patience)
    # images per optimiser step; auto: 128, fewer for a set of under 512 images, with lr
    # scaled to the batch (convnet/recipes.py: choose_batch)
    batch_size: int | Literal["auto"] = "auto"
    optimizer: Literal["sgd", "adamw"] = "sgd"  # SGD with momentum, or AdamW
    # peak learning rate (one-cycle max, cosine/step start); auto: a learning-rate finder
    # (Smith 2017) picks it on the training part before training (convnet/train.py: find_lr);
    # with batch_size=auto, the rate at batch 128, scaled where the batch is smaller
    lr: float | Literal["auto"] = 0.05
    momentum: float = 0.9  # SGD momentum (AlexNet paper: 0.9)
    nesterov: bool = True  # Nesterov momentum for SGD
    weight_decay: float = 5e-4  # on weights only, not biases (AlexNet paper: 5e-4)
    # per step; warmup-cosine: linear warm-up to lr, then cosine decay to 0
    schedule: Literal["auto", "onecycle", "warmup-cosine", "cosine", "step", "constant"] = "auto"
    warmup_fraction: float = 0.2  # one-cycle / warmup-cosine: fraction of steps rising to lr
    step_epochs: int = 10  # step schedule: epochs between drops
    step_gamma: float = 0.1  # step schedule: lr multiplier at each drop (AlexNet: /10)
    label_smoothing: float | Literal["auto"] = "auto"  # cross-entropy smoothing, 0 = one-hot
    clip_grad: float = 0.0  # clip the global gradient norm to this before each step; 0 = off
    # of translate, flip, affine, jitter; "" for none; auto: chosen from the data
    augment: tuple[str, ...] = ("auto",)
    max_shift: int = 2  # translate: pixels each way at the image's own resolution
    mirror: Literal["auto", "yes", "no"] = "auto"  # may "flip" mirror? auto: the set's mirror_ok
    # side of the square model input; auto: the model's design size (32 for LeNet-5 and
    # alexnet-small), larger for a folder of larger images, up to the model's largest
    # (convnet/input_size.py: 64-128 px for 100-300 px photographs, then trained on
    # random-resized crops)
    input_size: int | Literal["auto"] = "auto"
    val_select: bool = True  # keep the weights of the epoch with the lowest val error
    patience: int | Literal["auto"] = (
        "auto"  # stop after this many epochs without val gain; 0 never
    )
    # fresh starts at a third of the rate for a run still at chance when its warm-up ends
    # (convnet/stopping.py); auto: 2 (convnet/recipes.py), 0 with recipe=fixed
    rescues: int | Literal["auto"] = "auto"
    # average logits of each test image and its mirror; auto: where mirroring is allowed
    # and it does not raise the validation error
    tta_flip: bool | Literal["auto"] = "auto"
    # autocast: auto = fp32 on the CPU; on CUDA (auto or bf16) bf16 from compute capability
    # 8.0, fp16 with a GradScaler at 7.x, fp32 below (convnet/device.py: choose_amp)
    amp: Literal["auto", "bf16", "off"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"  # auto: on (CPU and CUDA)
    compile: bool = False  # torch.compile the model (minutes of warm-up, faster epochs)
    fused_optimizer: bool = True  # fused optimiser kernels (one call per step)
    deterministic: bool = False  # deterministic kernels (errors on any that is not): same bits
    eval_batch_size: int = 1024  # images per batch when scoring
    workers: int = 2  # DataLoader workers, only for lazy (ImageFolder) sets
    warmup_steps: int = 3  # untimed steps before epoch 1 (compilation, autotuning), undone
    # CPU threads for torch; auto: from the CPUs this process may use and the model's work
    # per image, never from the load (bovw_vs_convnet/threads.py); 0 = torch's default, the
    # value of runs stored before auto (which keep their keys: their settings say 0)
    threads: int | Literal["auto"] = "auto"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # The paper's recipe (section 5): SGD 0.01, momentum 0.9, wd 5e-4, batch 128, lr/10 steps.
        "alexnet-paper": {
            "optimizer": "sgd",
            "lr": 0.01,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 5e-4,
            "batch_size": 128,
            "schedule": "step",
            "step_epochs": 30,
        },
        # A short AdamW recipe that suits small nets on 28–32 px images.
        "adamw": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 5e-2, "schedule": "onecycle"},
        # The 1998 net (60 000 weights, RBF output) underfits with decay and shifts.
        "lenet5-1998": {
            "optimizer": "adamw",
            "lr": 2e-3,
            "weight_decay": 0.0,
            "schedule": "onecycle",
            "augment": ("flip",),
        },
        # The auto recipe's optimisers (benchmarks/sweep_recipes.py); no schedule, epochs
        # or augmentation here: those are chosen from the data (convnet/recipes.py).
        # SGD 0.05 before: AdamW 4e-3 won the sweep and, at full length, gave 7.98 % on
        # Fashion-MNIST against SGD's 8.49 % (benchmarks/RESULTS-convnet.md)
        "auto-lenet5": {"optimizer": "adamw", "lr": 4e-3, "weight_decay": 5e-2},
        # the 1998 net underfits with shifts: on Fashion-MNIST (15 epochs) 13.47 % with
        # translate + flip, 11.76 % with flip alone (benchmarks/RESULTS-convnet.md)
        "auto-lenet5-1998": {
            "optimizer": "adamw",
            "lr": 2e-3,
            "weight_decay": 0.0,
            "augment": ("flip",),
        },
        "auto-alexnet": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 5e-2},
        # The 2012 net (61 M weights, Kaiming init): AdamW at 3e-4 left chance in 30 steps
        # of 32 glyphs where 2e-3 is too hot for it; batch 64 takes sqrt(2) x that rate
        # (the square-root rule for adaptive optimisers); the first steps' gradient norms
        # of 20-27 are clipped to 5; warm-up and length come from the auto recipe
        # (benchmarks/RESULTS-convnet.md, "alexnet-2012 that learns").
        "auto-alexnet-2012": {
            "optimizer": "adamw",
            "lr": 4e-4,
            "weight_decay": 5e-2,
            "batch_size": 64,
            "clip_grad": 5.0,
            "eval_batch_size": 256,
        },
    }
    # The preset a model gets when none is named, with recipe="fixed": with the SGD
    # defaults, lenet5-1998 stays at 52.8 % and alexnet-small at chance on Fashion-MNIST
    # (benchmarks/RESULTS-convnet.md).
    MODEL_PRESETS: ClassVar[dict[str, str]] = {
        "lenet5-1998": "lenet5-1998",
        "alexnet-small": "adamw",
    }
    # The optimiser a model gets with recipe="auto" when no preset is named: the winners
    # of benchmarks/sweep_recipes.py (benchmarks/RESULTS-convnet.md, "Default recipes");
    # the other settings of the auto recipe come from the data.
    AUTO_PRESETS: ClassVar[dict[str, str]] = {
        "lenet5-1998": "auto-lenet5-1998",
        "alexnet-2012": "auto-alexnet-2012",  # before "alexnet", which it starts with
        "alexnet": "auto-alexnet",
        "lenet5": "auto-lenet5",
    }

    @classmethod
    def default_preset(cls, overrides: Mapping[str, Any]) -> str | None:
        """The preset ``model`` trains well with when none is named.

        ``AUTO_PRESETS`` with the auto recipe (the default), ``MODEL_PRESETS`` with
        ``recipe=fixed`` (what runs stored before the auto recipe got).
        """
        model = str(overrides.get("model", cls.model))
        fixed = str(overrides.get("recipe", cls.recipe)) == "fixed"
        table = cls.MODEL_PRESETS if fixed else cls.AUTO_PRESETS
        return next((p for m, p in table.items() if model.startswith(m)), None)

    def __post_init__(self) -> None:
        if self.recipe == "fixed":
            # frozen: the old defaults go in once, here, so the stored settings are concrete
            for name, old in FIXED_DEFAULTS.items():
                if getattr(self, name) in (AUTO, (AUTO,)):
                    object.__setattr__(self, name, old)
        if self.model.startswith(INIT_MODELS):
            if self.init == AUTO:  # recorded as what runs, in the config and its key
                object.__setattr__(self, "init", "kaiming")
        elif self.init != AUTO:
            raise ConfigError(
                f"setting 'init' applies to {', '.join(INIT_MODELS)} only (model "
                f"{self.model!r} keeps its own: init=auto), got {self.init!r}",
                key="init",
            )
        if AUTO in self.augment and len(self.augment) > 1:
            raise ConfigError(
                "augment=auto cannot be combined with other augmentations", key="augment"
            )
        if not isinstance(self.rescues, str) and self.rescues < 0:
            raise ConfigError(f"setting 'rescues' must be >= 0, got {self.rescues}", key="rescues")
        for name in ("epochs", "batch_size", "eval_batch_size", "input_size"):
            if getattr(self, name) != AUTO and getattr(self, name) < 1:
                raise ConfigError(
                    f"setting {name!r} must be >= 1, got {getattr(self, name)}", key=name
                )
        if not isinstance(self.lr, str) and self.lr <= 0:
            raise ConfigError(f"setting 'lr' must be > 0, got {self.lr}", key="lr")
        if self.clip_grad < 0:
            raise ConfigError(
                f"setting 'clip_grad' must be >= 0, got {self.clip_grad}", key="clip_grad"
            )
        bad = [a for a in self.augment if a not in (*AUGMENTATIONS, AUTO)]
        if bad:
            raise ConfigError(
                f"unknown augmentation {bad[0]!r}; known: {', '.join(AUGMENTATIONS)}", key="augment"
            )
