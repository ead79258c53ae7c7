"""The auto recipe (convnet/recipes.py), early stopping, the warm-up schedule and the lr finder."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bovw_vs_convnet.config import build_config, config_to_dict, identity_settings
from bovw_vs_convnet.convnet.augment import InputAdapter
from bovw_vs_convnet.convnet.batches import ResidentBatches
from bovw_vs_convnet.convnet.config import FIXED_DEFAULTS, ConvNetConfig
from bovw_vs_convnet.convnet.device import run_identity
from bovw_vs_convnet.convnet.models import create_model
from bovw_vs_convnet.convnet.optim import build_optimizer, build_scheduler
from bovw_vs_convnet.convnet.pipeline import build_pipeline
from bovw_vs_convnet.convnet.recipes import DataShape, choose_batch, choose_epochs, choose_recipe
from bovw_vs_convnet.convnet.train import Trainer
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.protocol import RunContext


def auto(**overrides: str) -> ConvNetConfig:
    return build_config(ConvNetConfig, {"model": "lenet5", **overrides})


@pytest.mark.parametrize(
    ("n_train", "epochs", "reason"),
    [
        (54_000, 24, "minimum for 54000 images"),  # Fashion-MNIST: 422 steps an epoch
        (21_514, 37, "minimum for 21514 images"),  # the glyph sets: 169 steps an epoch
        (10_000, 64, "step budget"),  # 79 steps an epoch: 64 x 79 >= 5 000
        (1_000, 100, "capped at 100"),  # 8 steps an epoch
        (500_000, 8, "minimum for 500000 images"),  # 3907 steps an epoch
    ],
)
def test_the_length_comes_from_the_step_budget_or_the_sizes_minimum(
    n_train: int, epochs: int, reason: str
) -> None:
    chosen, why = choose_epochs(n_train, 128)
    assert chosen == epochs
    assert why.startswith(reason)


@pytest.mark.parametrize(
    ("shape", "augment"),
    [
        (DataShape(54_000, (28, 28), 1, mirror_ok=True), ["translate", "flip"]),  # Fashion-MNIST
        (DataShape(1_200, (8, 8), 1, mirror_ok=False), ["affine"]),  # digits
        (DataShape(23_000, (32, 32), 1, mirror_ok=False), ["translate", "affine"]),  # glyphs
        (DataShape(23_000, (32, 32), 3, False), ["translate", "affine", "jitter"]),  # glyphs-wild
        (DataShape(45_000, (32, 32), 3, mirror_ok=True), ["translate", "flip", "jitter"]),  # CIFAR
        (DataShape(9_000, (224, 224), 3, mirror_ok=True), ["flip", "jitter"]),  # photographs
    ],
)
def test_the_augmentation_is_chosen_from_the_data(shape: DataShape, augment: list[str]) -> None:
    _, record = choose_recipe(auto(), shape)
    assert record["chosen"]["augment"] == augment


def test_the_auto_recipe_fills_in_every_auto_and_says_why() -> None:
    resolved, record = choose_recipe(auto(), DataShape(54_000, (28, 28), 1, mirror_ok=True))
    assert (resolved.epochs, resolved.schedule, resolved.label_smoothing, resolved.patience) == (
        24, "warmup-cosine", 0.1, 6,
    )  # fmt: skip
    assert resolved.tta_flip == "auto"  # mirroring allowed: the validation error decides
    assert record["steps_per_epoch"] == 422 and record["planned_steps"] == 24 * 422
    assert set(record["why"]) == {
        "batch_size", "epochs", "schedule", "label_smoothing", "augment", "patience", "tta_flip",
        "rescues",
    }  # fmt: skip
    assert (resolved.batch_size, resolved.lr) == (128, 4e-3)  # a large set: lr as given


def test_explicit_settings_win_over_the_auto_recipe() -> None:
    cfg = auto(epochs="10", augment="flip", label_smoothing="0", tta_flip="false")
    resolved, record = choose_recipe(cfg, DataShape(54_000, (28, 28), 1, mirror_ok=True))
    assert (resolved.epochs, resolved.augment, resolved.label_smoothing) == (10, ("flip",), 0.0)
    assert resolved.tta_flip is False
    assert set(record["chosen"]) == {"batch_size", "schedule", "patience", "rescues"}


def test_the_fixed_recipe_is_the_old_defaults_and_keeps_the_old_identity() -> None:
    fixed = build_config(ConvNetConfig, {"model": "lenet5", "recipe": "fixed"})
    settings = identity_settings(ConvNetConfig, config_to_dict(fixed))
    # as in the runs stored before these settings existed (no rescue then)
    assert "recipe" not in settings and "rescues" not in settings
    assert {k: settings[k] for k in FIXED_DEFAULTS} == {
        "epochs": 10, "batch_size": 128, "schedule": "onecycle", "label_smoothing": 0.0,
        "augment": ["translate", "flip"], "patience": 0, "tta_flip": False,
    }  # fmt: skip
    auto_settings = identity_settings(ConvNetConfig, config_to_dict(auto()))
    assert (auto_settings["recipe"], auto_settings["epochs"]) == ("auto", "auto")


@pytest.mark.parametrize(
    ("n_train", "batch"), [(10, 16), (100, 16), (300, 64), (511, 64), (512, 128), (54_000, 128)]
)
def test_a_small_set_gets_a_smaller_batch_that_leaves_four_steps_a_pass(
    n_train: int, batch: int
) -> None:
    assert choose_batch(n_train)[0] == batch


@pytest.mark.parametrize(("optimizer", "lr"), [("adamw", 4e-3 / 8**0.5), ("sgd", 4e-3 / 8)])
def test_the_rate_given_at_batch_128_is_scaled_to_the_smaller_batch(
    optimizer: str, lr: float
) -> None:
    cfg = auto(optimizer=optimizer, lr="0.004")
    resolved, record = choose_recipe(cfg, DataShape(100, (28, 28), 1, mirror_ok=True))
    assert resolved.batch_size == 16 and resolved.lr == pytest.approx(lr)  # 16/128: sqrt, linear
    assert record["steps_per_epoch"] == 7 and record["chosen"]["lr"] == pytest.approx(lr)


def test_a_batch_given_keeps_its_rate_on_a_small_set() -> None:
    resolved, record = choose_recipe(auto(batch_size="32"), DataShape(100, (28, 28), 1, True))
    assert (resolved.batch_size, resolved.lr) == (32, 4e-3)
    assert "batch_size" not in record["chosen"] and "lr" not in record["chosen"]


def test_an_auto_runs_identity_names_the_recipes_revision_and_a_fixed_ones_does_not() -> None:
    fixed = build_config(ConvNetConfig, {"model": "lenet5", "recipe": "fixed"})
    assert run_identity(auto(), "cpu") == {"recipe_version": 4}
    assert run_identity(fixed, "cpu") == {}


def test_warmup_cosine_rises_linearly_then_decays_to_zero() -> None:
    model = torch.nn.Linear(2, 2)
    cfg = auto(epochs="1", schedule="warmup-cosine", warmup_fraction="0.2", lr="1")
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert lrs[-1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 7 / 8)))
    assert all(a >= b for a, b in itertools.pairwise(lrs[1:]))


def tiny_set(n: int = 64, classes: int = 4, seed: int = 0, random_labels: bool = False) -> ImageSet:
    """28×28 grayscale: a bright bar whose row is the class; ``random_labels`` breaks that."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 60, size=(n, 28, 28, 1), dtype=np.uint8)
    for i, c in enumerate(labels):
        images[i, 4 + 6 * c : 8 + 6 * c, 4:24, 0] = 220
    if random_labels:
        labels = rng.integers(0, classes, n)
    return ImageSet(
        images, labels.astype(np.int64), np.array([f"t{seed}-{i}" for i in range(n)]),
        tuple(f"c{c}" for c in range(classes)), "tiny",
    )  # fmt: skip


class SnapshotTrainer(Trainer):
    """A Trainer that keeps a copy of the weights after every epoch."""

    snapshots: list[dict[str, torch.Tensor]]

    def save_checkpoint(self, finished: bool) -> None:
        self.snapshots.append({k: v.clone() for k, v in self.model.state_dict().items()})


def make_trainer(cfg: ConvNetConfig, cls: type[Trainer] = Trainer) -> Trainer:
    torch.manual_seed(0)
    adapter = InputAdapter((28, 28), 1, 32, "pad", 1, mean=[0.1], std=[0.3])
    return cls(
        create_model("lenet5", num_classes=4, in_channels=1), adapter, None, cfg,
        torch.device("cpu"), seed=0, identity={}, checkpoint_path=None, progress=False,
    )  # fmt: skip


def test_early_stopping_restores_the_weights_of_the_best_epoch() -> None:
    # the val error falls to its floor and stays there: training stops `patience` epochs
    # after its best, and the weights are that epoch's
    cfg = auto(
        epochs="30", patience="2", batch_size="16", lr="0.05", schedule="constant",
        label_smoothing="0", augment="", threads="1",
    )  # fmt: skip
    trainer = make_trainer(cfg, SnapshotTrainer)
    assert isinstance(trainer, SnapshotTrainer)
    trainer.snapshots = []
    val = tiny_set(32, seed=1)
    history = trainer.fit(
        ResidentBatches(tiny_set(), torch.device("cpu")),
        ResidentBatches(val, torch.device("cpu")),
        val.labels,
    )
    run = len(history.train_loss)
    assert history.stop_reason == "patience" and run < 30
    assert run - history.best_epoch == 2
    best = trainer.snapshots[history.best_epoch - 1]
    last = trainer.snapshots[-1]
    state = trainer.model.state_dict()
    assert all(torch.equal(state[k], best[k]) for k in best)
    assert not all(torch.equal(best[k], last[k]) for k in best)


def test_the_lr_finder_picks_a_rate_within_its_ramp_and_leaves_the_model_as_it_was() -> None:
    cfg = auto(batch_size="16", label_smoothing="0", epochs="1", threads="1")
    trainer = make_trainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    found = trainer.find_lr(ResidentBatches(tiny_set(), torch.device("cpu")), 1e-5, 10.0, 40)
    assert 1e-5 <= found["lr"] < found["min_loss_lr"] <= 10.0
    assert found["lr"] == pytest.approx(found["min_loss_lr"] / 10)
    assert 10 < found["steps_run"] <= 40  # more than a few steps, stopped at or before the end
    assert min(found["losses"]) < found["losses"][0]  # the loss fell somewhere on the ramp
    state = trainer.model.state_dict()
    assert all(torch.equal(state[k], before[k]) for k in before)


def context(run_dir: Path) -> RunContext:
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunContext(
        run_dir=run_dir, cache_dir=None, split_fingerprint="f" * 64, seed=3,
        device="cpu", resume=False, progress=False,
    )  # fmt: skip


def test_a_run_records_what_the_recipe_chose_and_why_it_stopped(tmp_path: Path) -> None:
    cfg = auto(epochs="2", batch_size="16", lr="auto", threads="1")
    pipe = build_pipeline(cfg, context(tmp_path)).fit(tiny_set(), tiny_set(16, seed=1))
    recipe: dict[str, Any] = pipe.record_extra["recipe"]
    assert (recipe["recipe"], recipe["epochs_run"], recipe["stop_reason"]) == ("auto", 2, "epochs")
    assert recipe["steps_run"] == 2 * 4  # 64 images in batches of 16
    assert recipe["chosen"]["lr"] == recipe["lr_finder"]["lr"]
    ramp = recipe["lr_finder"]["ramp"]
    assert ramp[0] <= recipe["chosen"]["lr"] <= ramp[1]
    assert set(recipe["tta_val_error"]) == {"plain", "flip"}  # mirroring allowed: measured
    flip_wins = recipe["tta_val_error"]["flip"] <= recipe["tta_val_error"]["plain"]
    assert pipe.record_extra["tta_flip"] is flip_wins


def test_the_command_of_a_run_stored_before_the_auto_recipe_names_recipe_fixed() -> None:
    from bovw_vs_convnet.harness.analysis import recipe_command

    old = build_config(
        ConvNetConfig, {"model": "lenet5", "recipe": "fixed", "epochs": 30, "tta_flip": True}
    )
    config = {k: v for k, v in config_to_dict(old).items() if k not in ("recipe", "mirror")}
    record: Any = {"pipeline": "convnet", "dataset": "fashion-mnist", "config": config, "seed": 0}
    assert recipe_command(record) == (
        "bvc run convnet --dataset fashion-mnist --model lenet5 --set recipe=fixed "
        "--set epochs=30 --set tta_flip=True"
    )


def test_colour_jitter_changes_rgb_batches_within_their_range_and_repeats_by_seed() -> None:
    from bovw_vs_convnet.convnet.augment import BatchAugment

    x = torch.rand(8, 3, 6, 6, generator=torch.Generator().manual_seed(0)) * 255
    jitter = BatchAugment(["jitter"])
    a = jitter(x.clone(), torch.Generator().manual_seed(1))
    b = jitter(x.clone(), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.allclose(a, x)
    assert a.min() >= 0 and (a.amax(dim=(1, 2, 3)) <= x.amax(dim=(1, 2, 3)) + 1e-4).all()
    gray = torch.rand(4, 1, 6, 6) * 255  # one channel: jitter leaves it alone
    assert torch.equal(jitter(gray.clone(), torch.Generator().manual_seed(1)), gray)


def test_the_crossover_auto_suite_is_the_crossover_with_lenet5_on_its_default_recipe() -> None:
    from bovw_vs_convnet.harness.suite import load_suite

    fixed, auto_suite = load_suite("crossover"), load_suite("crossover-auto")
    bovw = [e for e in fixed.entries if e.pipeline == "bovw"]
    assert [e for e in auto_suite.entries if e.pipeline == "bovw"] == bovw  # stored runs reused
    (lenet,) = [e for e in auto_suite.entries if e.pipeline == "convnet"]
    assert lenet.overrides == (("model", "lenet5"),)  # no recipe, epochs or batch: all auto
    sizes = sorted(
        (s for e in fixed.entries if e.pipeline == "convnet" for s in e.train_sizes),
        key=lambda s: s or 10**9,
    )
    assert list(lenet.train_sizes) == sizes == [100, 300, 1000, 3000, 10000, None]
    assert all(("recipe", "fixed") in e.overrides for e in fixed.entries if e.pipeline == "convnet")
