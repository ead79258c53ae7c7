"""The trainer and the convnet pipeline on tiny synthetic sets (CPU, seconds)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet import train as train_module
from bovw_vs_convnet.convnet.augment import InputAdapter
from bovw_vs_convnet.convnet.batches import ResidentBatches
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.models import create_model
from bovw_vs_convnet.convnet.optim import build_optimizer
from bovw_vs_convnet.convnet.pipeline import (
    CHECKPOINT_NAME,
    CURVE_ARTIFACT,
    FILTERS_ARTIFACT,
    augmentations,
    build_pipeline,
)
from bovw_vs_convnet.convnet.stopping import learned_record
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.progress import ProgressMode
from bovw_vs_convnet.protocol import RunContext


def tiny_set(
    n: int = 48, classes: int = 4, seed: int = 0, name: str = "tiny", mirror_ok: bool = True
) -> ImageSet:
    """28×28 grayscale images: a bright bar whose row depends on the class, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 60, size=(n, 28, 28, 1), dtype=np.uint8)
    for i, c in enumerate(labels):
        images[i, 4 + 6 * c : 8 + 6 * c, 4:24, 0] = 220
    return ImageSet(
        images=images,
        labels=labels.astype(np.int64),
        ids=np.array([f"{name}-{seed}-{i}" for i in range(n)]),
        class_names=tuple(f"c{c}" for c in range(classes)),
        name=name,
        mirror_ok=mirror_ok,
    )


def context(run_dir: Path, resume: bool = False, progress: bool = False) -> RunContext:
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunContext(
        run_dir=run_dir,
        cache_dir=None,
        split_fingerprint="f" * 64,
        seed=3,
        device="cpu",
        resume=resume,
        progress=progress,
    )


def config(**overrides: str) -> ConvNetConfig:
    base = {"model": "lenet5", "epochs": "3", "batch_size": "16", "lr": "0.02", "threads": "1"}
    return build_config(ConvNetConfig, base | overrides)


def test_build_config_coerces_strings_from_the_command_line() -> None:
    cfg = build_config(
        ConvNetConfig, {"model": "lenet5", "epochs": "3", "augment": "translate,affine"}
    )
    assert (cfg.epochs, cfg.augment) == (3, ("translate", "affine"))


def test_unknown_augmentation_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown augmentation 'rotate'"):
        build_config(ConvNetConfig, {"augment": "rotate"})


def test_unknown_model_fails_when_the_pipeline_is_built(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet50'"):
        build_pipeline(config(model="resnet50"), context(tmp_path))


def test_one_optimiser_step_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=4, in_channels=1)
    x = torch.randn(16, 1, 32, 32)  # (B, C, H, W)
    y = torch.arange(16) % 4
    opt = build_optimizer(model, config(optimizer="sgd", lr="0.05"))
    before = F.cross_entropy(model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = F.cross_entropy(model(x), y)
    assert after.item() < before.item()


def test_clip_grad_bounds_the_size_of_one_sgd_step() -> None:
    torch.manual_seed(0)
    cfg = config(
        optimizer="sgd",
        lr="1",
        momentum="0",
        weight_decay="0",
        schedule="constant",
        clip_grad="0.001",
    )
    adapter = InputAdapter((28, 28), 1, 32, "pad", 1, mean=[0.5], std=[0.25])
    trainer = train_module.Trainer(
        create_model("lenet5", num_classes=4, in_channels=1),
        adapter,
        None,
        cfg,
        torch.device("cpu"),
        seed=0,
        identity={},
        checkpoint_path=None,
        progress=False,
    )
    source = ResidentBatches(tiny_set(16), torch.device("cpu"))
    trainer.setup(source)
    before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    xb, yb = next(source.batches(16, None))
    trainer._step(xb, yb, torch.Generator().manual_seed(0))
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    assert (after - before).norm().item() == pytest.approx(0.001, rel=1e-4)


def test_negative_clip_grad_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"setting 'clip_grad' must be >= 0, got -1\.0"):
        config(clip_grad="-1")


def test_save_artifacts_leaves_the_kept_filters_and_the_learning_curve(tmp_path: Path) -> None:
    pipe = build_pipeline(config(), context(tmp_path / "run")).fit(tiny_set(), tiny_set(16, seed=1))
    pipe.save_artifacts(tmp_path)
    filters = np.load(tmp_path / FILTERS_ARTIFACT, allow_pickle=False)
    assert pipe.trainer is not None
    kept = pipe.trainer.model.state_dict()["features.0.weight"]  # restored from the best epoch
    assert filters.shape == (6, 1, 5, 5) and filters.dtype == np.float32
    assert np.array_equal(filters, kept.numpy())
    curve = pipe.record_extra["learning_curve"]
    lines = (tmp_path / CURVE_ARTIFACT).read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_error"
    assert [float(x) for x in lines[1].split(",")] == [
        1,
        curve["train_loss"][0],
        curve["val_error"][0],
    ]
    assert len(lines) == 1 + 3


def test_an_unfitted_pipeline_saves_no_artefact(tmp_path: Path) -> None:
    build_pipeline(config(), context(tmp_path / "run")).save_artifacts(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_fit_records_learning_curves_and_scores_logits(tmp_path: Path) -> None:
    pipe = build_pipeline(config(), context(tmp_path)).fit(tiny_set(), tiny_set(16, seed=1))
    scores = pipe.decision_scores(tiny_set(8, seed=2))
    curve = pipe.record_extra["learning_curve"]
    assert scores.shape == (8, 4) and scores.dtype == np.float32
    assert len(curve["train_loss"]) == 3 and len(curve["val_error"]) == 3
    assert pipe.n_params == 61_706 - 6 * 84 - 6  # 4 classes instead of 10
    assert pipe.device == "cpu"
    assert pipe.record_extra["input"]["resize"] == "pad"
    assert pipe.record_extra["beat_majority_class"] is True
    assert {"warmup", "epochs", "scoring"} <= set(pipe.stage_seconds)


def test_a_model_left_at_chance_is_flagged_by_the_binomial_test(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bovw_vs_convnet.convnet.stopping")
    labels = np.arange(64) % 2  # two balanced classes: chance is 50 % error
    # 20 of 64 wrong (31.25 %): p = 0.0018 < 0.01; 24 wrong (37.5 %): p = 0.030, noise
    assert learned_record("lenet5", [0.5, 20 / 64], 2, labels)["learned"] is True
    record = learned_record("alexnet-2012", [0.5, 24 / 64], 2, labels)
    assert (record["learned"], record["beat_majority_class"]) == (False, False)
    assert record["chance_test"]["p_value"] == pytest.approx(0.02997, abs=1e-5)
    assert caplog.messages == [
        "alexnet-2012 did not learn: validation error 37.5% is not significantly below "
        "chance (50.0%, the most frequent class; binomial p = 0.03, 0.06 after 2 looks "
        "(Bonferroni)); try another recipe "
        "(--set preset=...)"
    ]


def test_same_seed_gives_identical_scores_in_deterministic_mode(tmp_path: Path) -> None:
    cfg = config(deterministic="true", augment="translate,flip,affine", epochs="2")
    a = build_pipeline(cfg, context(tmp_path / "a")).fit(tiny_set(), None)
    b = build_pipeline(cfg, context(tmp_path / "b")).fit(tiny_set(), None)
    test = tiny_set(8, seed=2)
    assert np.array_equal(a.decision_scores(test), b.decision_scores(test))


def test_resume_after_an_interruption_gives_the_uninterrupted_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rescues=0: at chance after 3 epochs, each fit would start afresh after an lr finder
    # (resuming a rescued run: tests/test_learning.py)
    cfg = config(model="alexnet-small", deterministic="true", epochs="3", lr="0.01", rescues="0")
    full = build_pipeline(cfg, context(tmp_path / "full")).fit(tiny_set(), tiny_set(16, seed=1))

    original = train_module.Trainer.train_epoch

    def interrupted(self: train_module.Trainer, source: object, epoch: int) -> object:
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, source, epoch)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module.Trainer, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_pipeline(cfg, context(tmp_path / "cut")).fit(tiny_set(), tiny_set(16, seed=1))
    monkeypatch.setattr(train_module.Trainer, "train_epoch", original)
    resumed = build_pipeline(cfg, context(tmp_path / "cut", resume=True))
    resumed.fit(tiny_set(), tiny_set(16, seed=1))

    assert resumed.record_extra["resumed_from_epoch"] == 2
    assert full.trainer is not None and resumed.trainer is not None
    a, b = full.trainer.model.state_dict(), resumed.trainer.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    build_pipeline(config(epochs="1"), context(tmp_path)).fit(tiny_set(), None)
    other = build_pipeline(config(model="lenet5-1998", epochs="1"), context(tmp_path, resume=True))
    with pytest.raises(ConfigError, match="is for model 'lenet5', not 'lenet5-1998'"):
        other.fit(tiny_set(), None)


def test_existing_checkpoint_without_resume_is_refused(tmp_path: Path) -> None:
    build_pipeline(config(epochs="1"), context(tmp_path)).fit(tiny_set(), None)
    with pytest.raises(ConfigError, match="already holds a checkpoint"):
        build_pipeline(config(epochs="1"), context(tmp_path)).fit(tiny_set(), None)


def test_resuming_a_finished_run_leaves_its_checkpoint_untouched(tmp_path: Path) -> None:
    build_pipeline(config(epochs="1"), context(tmp_path)).fit(tiny_set(), None)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    again = build_pipeline(config(epochs="1"), context(tmp_path, resume=True)).fit(tiny_set(), None)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert again.record_extra["resumed_from_epoch"] == 1


def test_cuda_request_without_cuda_is_a_config_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    ctx = RunContext(run_dir=tmp_path, cache_dir=None, split_fingerprint="f", device="cuda")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        build_pipeline(config(), ctx).fit(tiny_set(), None)


def test_lazy_image_sets_train_through_a_dataloader(tmp_path: Path) -> None:
    import cv2

    from bovw_vs_convnet.data.imageset import LazyImages

    eager = tiny_set(16)
    paths = []
    for i, img in enumerate(eager.array()):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), img[:, :, 0])
    lazy = ImageSet(
        images=LazyImages(paths, (28, 28), 1),
        labels=eager.labels,
        ids=eager.ids,
        class_names=eager.class_names,
        name="tiny",
    )
    pipe = build_pipeline(config(epochs="1", workers="0"), context(tmp_path / "run"))
    pipe.fit(lazy, None)
    assert pipe.record_extra["data_path"] == "dataloader"
    assert pipe.decision_scores(lazy).shape == (16, 4)


@pytest.mark.parametrize(
    ("model", "optimizer", "weight_decay", "augment"),
    [
        ("lenet5", "sgd", 5e-4, ("translate", "flip")),
        ("lenet5-1998", "adamw", 0.0, ("flip",)),
        ("alexnet-small", "adamw", 5e-2, ("translate", "flip")),
        ("alexnet-small-no-fc7", "adamw", 5e-2, ("translate", "flip")),
    ],
)
def test_each_model_gets_its_fixed_recipe_when_no_preset_is_named(
    model: str, optimizer: str, weight_decay: float, augment: tuple[str, ...]
) -> None:
    cfg = build_config(ConvNetConfig, {"model": model, "recipe": "fixed"})
    assert (cfg.optimizer, cfg.weight_decay, cfg.augment) == (optimizer, weight_decay, augment)


@pytest.mark.parametrize(
    ("model", "optimizer", "weight_decay", "augment"),
    [
        ("lenet5", "adamw", 5e-2, ("auto",)),
        ("lenet5-1998", "adamw", 0.0, ("flip",)),  # underfits with shifts
        ("alexnet-small", "adamw", 5e-2, ("auto",)),
        ("alexnet-small-no-fc7", "adamw", 5e-2, ("auto",)),
    ],
)
def test_each_model_gets_its_auto_optimiser_and_data_chosen_augmentation(
    model: str, optimizer: str, weight_decay: float, augment: tuple[str, ...]
) -> None:
    cfg = build_config(ConvNetConfig, {"model": model})
    assert (cfg.optimizer, cfg.weight_decay, cfg.augment) == (optimizer, weight_decay, augment)


def test_a_named_preset_overrides_the_model_recipe() -> None:
    cfg = build_config(ConvNetConfig, {"model": "alexnet-small", "preset": "alexnet-paper"})
    assert (cfg.optimizer, cfg.lr, cfg.schedule) == ("sgd", 0.01, "step")


@pytest.mark.parametrize(
    ("mirror_ok", "mirror", "augment"),
    [
        (True, "auto", ["translate", "flip"]),
        (False, "auto", ["translate"]),
        (False, "yes", ["translate", "flip"]),
        (True, "no", ["translate"]),
    ],
)
def test_flip_follows_the_sets_mirror_ok_unless_the_mirror_setting_says(
    mirror_ok: bool, mirror: str, augment: list[str]
) -> None:
    cfg = config(augment="translate,flip", mirror=mirror)
    assert augmentations(cfg, tiny_set(8, mirror_ok=mirror_ok)) == augment


def test_the_pipeline_trains_without_flips_on_a_set_that_may_not_be_mirrored(
    tmp_path: Path,
) -> None:
    pipe = build_pipeline(config(epochs="1", recipe="fixed"), context(tmp_path))
    pipe.fit(tiny_set(mirror_ok=False), None)
    assert pipe.record_extra["augment"] == ["translate"]
    auto = build_pipeline(config(epochs="1"), context(tmp_path / "auto"))
    auto.fit(tiny_set(mirror_ok=False), None)  # the auto recipe distorts instead
    assert auto.record_extra["augment"] == ["translate", "affine"]


def test_an_explicit_mirror_setting_is_part_of_the_checkpoint_identity(tmp_path: Path) -> None:
    build_pipeline(config(epochs="1"), context(tmp_path)).fit(tiny_set(), None)
    other = build_pipeline(config(epochs="1", mirror="no"), context(tmp_path, resume=True))
    with pytest.raises(ConfigError, match="was made with config="):
        other.fit(tiny_set(), None)


@pytest.mark.parametrize("epochs", [1, 2])
def test_off_a_terminal_each_epoch_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], epochs: int
) -> None:
    # progress=True is what a run asks for; captured stderr is not a terminal: lines, no bar.
    build_pipeline(config(epochs=str(epochs)), context(tmp_path, progress=True)).fit(
        tiny_set(), None
    )
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == epochs
    line = r"epoch %d/%d: 3/3 batch in \d+\.\d s \(loss=\d+\.\d{4}, img_s=[\d,]+\)"
    for epoch, text in enumerate(lines, start=1):
        assert re.fullmatch(line % (epoch, epochs), text), text


@pytest.mark.parametrize("progress", ["none", False])
def test_no_progress_prints_nothing(
    capsys: pytest.CaptureFixture[str], progress: ProgressMode | bool
) -> None:
    cfg = config(epochs="1")
    adapter = InputAdapter((28, 28), 1, 32, "pad", 1, mean=[0.5], std=[0.25])
    trainer = train_module.Trainer(
        create_model("lenet5", num_classes=4, in_channels=1),
        adapter,
        None,
        cfg,
        torch.device("cpu"),
        seed=0,
        identity={},
        checkpoint_path=None,
        progress=progress,
    )
    source = ResidentBatches(tiny_set(), torch.device("cpu"))
    trainer.setup(source)
    trainer.train_epoch(source, 1)
    assert capsys.readouterr().err == ""
