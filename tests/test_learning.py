"""Training that waits for learning, rescues, `learned`, and mirroring decided from the data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_convnet_train import config, context, tiny_set

from bovw_vs_convnet.convnet.device import resolve_runtime
from bovw_vs_convnet.convnet.mirror_check import decide_mirroring
from bovw_vs_convnet.convnet.pipeline import build_pipeline
from bovw_vs_convnet.convnet.stopping import (
    NOT_LEARNING,
    StoppingRule,
    check_epoch,
    epoch_verdict,
    holds_dropout,
    rescue_lr,
    rescue_record,
)
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.harness.record import is_learned, learned_fields
from bovw_vs_convnet.harness.record_json import check_record
from bovw_vs_convnet.significance import chance_test, chance_test_labels, mirror_test


@pytest.mark.parametrize(
    ("error", "n", "chance_err", "p"),
    [
        (0.1, 10, 0.5, 11 / 1024),  # 9 of 10 right at a coin's rate: (C(10,9) + 1) / 2^10
        (0.0, 4, 0.75, 0.25**4),  # 4 of 4 right where chance is 1 in 4
        (0.5, 4, 0.5, 11 / 16),  # 2 of 4 right at a coin's rate: 1 - 5/16
    ],
)
def test_the_chance_test_gives_the_exact_binomial_p(
    error: float, n: int, chance_err: float, p: float
) -> None:
    assert chance_test(error, n, chance_err).p_value == pytest.approx(p, rel=1e-12)


def test_a_9799_percent_error_on_62_balanced_classes_is_not_significant() -> None:
    labels = np.arange(62 * 34) % 62  # 2 108 validation images, 34 a class
    test = chance_test_labels(0.9799, labels)  # 42 right where chance expects 34
    assert test.chance_err == pytest.approx(61 / 62)
    assert (test.significant, round(test.p_value, 4)) == (False, 0.1001)
    assert chance_test_labels(0.9700, labels).significant is True  # 63 right: p < 0.01


RULE = StoppingRule(patience=2, check_epoch=5, stop_if_not_learning=False)


def _run(rule: StoppingRule, errors: list[float], significant: list[bool]) -> list[tuple]:
    """(best epoch, learning epoch, stop) after each epoch, as the trainer keeps them."""
    best_epoch, best_err, learning, out = 0, math.inf, 0, []
    for epoch, (err, sig) in enumerate(zip(errors, significant, strict=True), start=1):
        v = epoch_verdict(
            rule, epoch, err, sig, best_epoch=best_epoch, best_err=best_err, learning_epoch=learning
        )
        learning = v.learning_epoch
        if v.best:
            best_epoch, best_err = epoch, err
        out.append((best_epoch, learning, v.stop))
        if v.stop:
            break
    return out


def test_patience_is_held_until_the_warm_up_ends() -> None:
    # best at epoch 1; patience 2 would stop at epoch 3, but the warm-up lasts 5 epochs
    steps = _run(RULE, [0.3, 0.4, 0.4, 0.4, 0.4, 0.4], [True] * 6)
    assert [s[2] for s in steps] == ["", "", "", "", "patience"]


def test_a_best_epoch_inside_chance_noise_does_not_count_and_patience_waits_for_learning() -> None:
    # epoch 2 dips (not significant), learning starts at epoch 6; patience counts from there
    errors = [0.98, 0.95, 0.97, 0.98, 0.97, 0.50, 0.40, 0.45, 0.45, 0.45]
    significant = [False] * 5 + [True] * 5
    steps = _run(RULE, errors, significant)
    assert steps[4] == (0, 0, "")  # the warm-up over, nothing learned: no stop without a rescue
    assert steps[-1] == (7, 6, "patience") and len(steps) == 9


def test_a_run_at_chance_stops_for_a_rescue_when_its_warm_up_ends() -> None:
    rule = StoppingRule(patience=2, check_epoch=3, stop_if_not_learning=True)
    steps = _run(rule, [0.9] * 6, [False] * 6)
    assert steps == [(0, 0, ""), (0, 0, ""), (0, 0, NOT_LEARNING)]


@pytest.mark.parametrize(("epochs", "fraction", "epoch"), [(38, 0.2, 8), (4, 0.2, 1), (10, 0.0, 1)])
def test_learning_is_checked_when_the_warm_up_ends(
    epochs: int, fraction: float, epoch: int
) -> None:
    assert check_epoch(epochs, fraction) == epoch


def test_a_run_made_to_stall_with_lr_10_is_rescued_and_the_rescue_recorded(tmp_path: Path) -> None:
    cfg = config(epochs="2", optimizer="sgd", lr="10", schedule="constant")
    pipe = build_pipeline(cfg, context(tmp_path)).fit(tiny_set(96), tiny_set(48, seed=1))
    (rescue,) = pipe.record_extra["rescues"]
    assert (rescue["lr"], rescue["epochs_run"], rescue["val_error"]) == (10.0, 1, [0.75])
    assert rescue["new_lr"] == min(10 / 3, rescue["finder_lr"]) < 0.1
    assert pipe.record_extra["learned"] is True
    assert pipe.record_extra["chance_test"]["looks"] == 3  # the rescued epoch and 2 more
    assert pipe.trainer is not None and pipe.trainer.stopping_rule().looks == 3
    assert pipe.record_extra["recipe"]["chosen"]["rescues"] == 2


def test_a_run_that_never_leaves_chance_is_recorded_as_not_learned(tmp_path: Path) -> None:
    val = tiny_set(48, seed=1)
    val = ImageSet(val.images, np.zeros_like(val.labels) + 1, val.ids, val.class_names, "tiny")
    val.labels[:12] = 0  # answers that the images do not predict
    cfg = config(epochs="2", optimizer="adamw", lr="0.01", rescues="1")
    pipe = build_pipeline(cfg, context(tmp_path)).fit(tiny_set(96), val)
    extra = pipe.record_extra
    assert (len(extra["rescues"]), extra["learned"], extra["beat_majority_class"]) == (
        1,
        False,
        False,
    )
    assert extra["chance_test"]["chance_err"] == 0.25


def test_a_fixed_recipe_never_rescues() -> None:
    cfg = config(recipe="fixed")
    assert cfg.rescues == "auto"  # resolved to 0 when the run starts (convnet/recipes.py)
    from bovw_vs_convnet.convnet.recipes import DataShape, choose_recipe

    resolved, why = choose_recipe(cfg, DataShape(100, (28, 28), 1, mirror_ok=False))
    assert resolved.rescues == 0 and why["why"]["rescues"].startswith("recipe=fixed")


def test_a_pipeline_that_chooses_c_on_validation_is_judged_on_its_best_error() -> None:
    labels = np.arange(100) % 4  # chance 75 %
    learned = learned_fields({"val_errors_by_C": {"1.0": 0.70, "10.0": 0.40}}, labels)
    assert learned["learned"] is True and learned["extra"]["chance_test"]["error"] == 0.40
    at_chance = learned_fields({"val_errors_by_C": {"1.0": 0.72}}, labels)
    assert at_chance["learned"] is False
    assert learned_fields({"val_errors_by_C": {}}, labels) == {}  # no validation score
    assert learned_fields({"learned": False}, None) == {"learned": False}  # a ConvNet's own


def test_old_records_without_the_key_count_as_learned_and_the_store_checks_its_type() -> None:
    assert is_learned({}) is True and is_learned({"learned": False}) is False
    record = {"run_id": "r1", "pipeline": "bovw", "created_at": "2026", "learned": "no"}
    assert check_record(record) == "'learned' is no, not true or false"


def test_the_mirror_test_counts_only_the_discordant_images() -> None:
    plain = np.array([True] * 10 + [False] * 2)
    mirror = np.array([False] * 8 + [True] * 2 + [True] * 0 + [False] * 2)
    test = mirror_test(plain, mirror)
    assert (test.only_plain_right, test.only_mirror_right) == (8, 0)
    assert test.p_value == pytest.approx(0.5**8) and test.worse is True


def _folder(n: int, side: str, seed: int) -> ImageSet:
    """16x16 images of 2 classes told apart by a bar on the left or the right (or not at all)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 40, size=(n, 16, 16, 1), dtype=np.uint8)
    for i, c in enumerate(labels):
        if side == "sides":  # class 0: left, class 1: right; a mirror swaps them
            images[i, 2:14, (1 if c == 0 else 12) : (4 if c == 0 else 15), 0] = 220
        elif side == "rows":  # class 0: top, class 1: bottom; a mirror keeps them
            images[i, (1 if c == 0 else 12) : (4 if c == 0 else 15), 2:14, 0] = 220
    ids = np.array([f"{side}-{seed}-{i}" for i in range(n)])
    return ImageSet(images, labels.astype(np.int64), ids, ("a", "b"), "imagefolder:/tmp/x")


@pytest.mark.parametrize(("kind", "flips"), [("sides", "off"), ("rows", "on"), ("none", "on")])
def test_mirroring_of_a_folder_is_decided_from_its_images(kind: str, flips: str) -> None:
    train, val = _folder(200, kind, 0), _folder(100, kind, 1)
    decided, record = decide_mirroring(config(), train, val)
    assert record is not None and record["flips"] == flips
    assert decided.mirror_ok is (flips == "on")
    if kind == "none":  # classes the images do not tell apart: the test says nothing
        assert "at chance" in record["why"]


def test_a_manifests_word_on_mirroring_is_not_second_guessed() -> None:
    train = _folder(40, "sides", 0)
    named = ImageSet(train.images, train.labels, train.ids, train.class_names, "glyphs-wild")
    assert decide_mirroring(config(), named, _folder(20, "sides", 1)) == (named, None)
    assert decide_mirroring(config(mirror="yes"), train, _folder(20, "sides", 1))[1] is None


def _record(run_id: str, model: str, top1: float, learned: bool | None) -> dict:
    record = {
        "run_id": run_id,
        "status": "ok",
        "pipeline": "convnet",
        "model": model,
        "dataset": "glyphs",
        "split": {"seed": 0},
        "split_fingerprint": "fp0",
        "seed": 0,
        "config": {},
        "top1_err": top1,
        "top5_err": top1 / 2,
        "n_test": 100,
    }
    return record if learned is None else {**record, "learned": learned}


# alexnet-small's 20 % would top the table, had it learned; lenet5 is an old record (no key)
RECORDS = [
    _record("a", "alexnet-small", 0.20, False),
    _record("b", "lenet5", 0.40, None),
    _record("c", "alexnet", 0.30, True),
]


def test_a_row_that_did_not_learn_is_left_unranked_and_out_of_vs_best() -> None:
    from bovw_vs_convnet.harness.leaderboard import NOT_LEARNED, build_tables

    (table,) = build_tables(RECORDS)
    got = [(r.model, r.rank, r.learned, r.vs_best) for r in table.rows]
    assert got == [
        ("alexnet", 1, True, "best"),
        ("lenet5", 2, None, None),  # no stored scores: untested
        ("alexnet-small", None, False, NOT_LEARNED),
    ]


@pytest.mark.parametrize("fmt", ["md", "html", "latex", "json", "csv"])
@pytest.mark.parametrize("style", ["default", "ilsvrc"])
def test_every_format_marks_the_row_that_did_not_learn(fmt: str, style: str) -> None:
    import csv
    import io
    import json

    from bovw_vs_convnet.harness.leaderboard import build_tables
    from bovw_vs_convnet.harness.leaderboard_formats import DAGGER, NOT_LEARNED_NOTE, render

    text = render(build_tables(RECORDS), fmt, style)
    if fmt == "json":
        (table,) = json.loads(text)
        last = table["rows"][-1]
        assert (last["model"], last["rank"], last["learned"]) == ("alexnet-small", None, False)
        assert NOT_LEARNED_NOTE in table["notes"]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        ranks = [r["rank"] for r in rows]
        assert ranks == ["1", "2", DAGGER if style == "ilsvrc" else ""]
        if style == "default":
            assert rows[-1]["vs_best"] == "did not learn"
    else:
        assert text.count(DAGGER) >= 2  # the row's rank cell and the note
        assert "did not learn" in text
        assert text.index("alexnet-small") > text.index("lenet5")  # after the ranked rows


def test_bvc_run_prints_one_warning_line_for_a_run_that_did_not_learn() -> None:
    from bovw_vs_convnet.cli.run import not_learned_warning

    record = {
        **_record("a", "alexnet-small", 0.98, False),
        "extra": {"chance_test": {"error": 0.9799, "chance_err": 61 / 62, "p_value": 0.1001}},
    }
    assert not_learned_warning(record) == (
        "warning: alexnet-small did not learn: validation error 97.99 % is not significantly "
        "below chance (98.39 %, binomial p = 0.1); the run is stored, marked and never ranked "
        "(docs/statistics.md)"
    )


def test_a_rescued_run_resumes_with_its_rescues_and_its_rate(tmp_path: Path) -> None:
    cfg = config(epochs="2", optimizer="sgd", lr="10", schedule="constant")
    first = build_pipeline(cfg, context(tmp_path)).fit(tiny_set(96), tiny_set(48, seed=1))
    again = build_pipeline(cfg, context(tmp_path, resume=True))
    again.fit(tiny_set(96), tiny_set(48, seed=1))  # the finished checkpoint: no epoch runs
    assert again.record_extra["rescues"] == first.record_extra["rescues"]
    assert again.trainer is not None and first.trainer is not None
    assert (
        again.trainer.cfg.lr == first.trainer.cfg.lr == first.record_extra["rescues"][0]["new_lr"]
    )
    test = tiny_set(8, seed=2)
    assert np.array_equal(again.decision_scores(test), first.decision_scores(test))


def test_bvc_run_of_a_run_at_chance_warns_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bovw_vs_convnet.cli import main

    args = ["run", "convnet", "--dataset", "digits", "--model", "lenet5", "--train-size", "300"]
    args += ["--epochs", "2", "--set", "lr=3", "--set", "rescues=0", "--set", "threads=1"]
    args += ["--runs-dir", str(tmp_path), "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if "warn" in line.lower()]
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: lenet5 did not learn: validation error 90.00 %")


@pytest.mark.slow  # the rescue's lr finder on alexnet-small: about 30 s on a loaded CPU
def test_a_rescued_attempt_trains_without_dropout_until_it_leaves_chance(tmp_path: Path) -> None:
    cfg = config(model="alexnet-small", epochs="1", optimizer="sgd", lr="10", rescues="1")
    pipe = build_pipeline(cfg, context(tmp_path)).fit(tiny_set(64), tiny_set(32, seed=1))
    assert pipe.trainer is not None and len(pipe.record_extra["rescues"]) == 1
    assert pipe.trainer.history.dropout_held_epochs == 1  # its one epoch, before any verdict


def test_an_attempt_after_a_rescue_trains_its_warm_up_without_dropout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the slow test above without its lr finder: the first attempt's history is given an
    # earlier attempt stopped at chance, as the pipeline's rescue gives it one
    from bovw_vs_convnet.convnet.pipeline import ConvNetPipeline

    plan = ConvNetPipeline._plan

    def rescued(self: ConvNetPipeline, *args: Any, **kwargs: Any) -> Any:
        made = plan(self, *args, **kwargs)
        made.trainer.history.rescues = [rescue_record([0.75], [0.5], 0.03, 0.01, None)]
        return made

    monkeypatch.setattr(ConvNetPipeline, "_plan", rescued)
    cfg = config(model="alexnet-small", epochs="1", optimizer="sgd", lr="0.01", rescues="0")
    pipe = build_pipeline(cfg, context(tmp_path)).fit(tiny_set(16), tiny_set(8, seed=1))
    assert pipe.trainer is not None and pipe.trainer.history.dropout_held_epochs == 1


@pytest.mark.parametrize(
    ("model", "rescued", "learning_epoch", "held"),
    [
        ("alexnet-small", False, 0, False),  # a first attempt: as before
        ("alexnet-small", True, 0, True),  # rescued, still at chance
        ("alexnet-small", True, 3, False),  # rescued and learning: dropout back on
        ("lenet5", True, 0, False),  # no dropout to hold
    ],
)
def test_only_a_rescued_attempt_at_chance_holds_its_dropout(
    tmp_path: Path, model: str, rescued: bool, learning_epoch: int, held: bool
) -> None:
    pipe = build_pipeline(config(model=model, epochs="1"), context(tmp_path))
    trainer = pipe._plan(tiny_set(48), resolve_runtime("cpu", "auto")).trainer
    assert holds_dropout(bool(trainer.dropouts), rescued, True, learning_epoch, False) is held
    assert holds_dropout(bool(trainer.dropouts), rescued, True, learning_epoch, True) is (
        rescued and model != "lenet5"  # inside the warm-up, held even when learning
    )


def test_a_rescue_takes_the_finders_pick_only_when_the_loss_fell_along_the_ramp() -> None:
    ramp = [1e-6, 1.0]
    assert rescue_lr(3e-3, {"lr": 2e-4, "ramp": ramp}) == 2e-4  # below lr / 3: taken
    assert rescue_lr(3e-3, {"lr": 5e-3, "ramp": ramp}) == pytest.approx(1e-3)  # lr / 3 lower
    # the lowest loss at the ramp's first rates: the pick is the floor, no rate at all
    assert rescue_lr(3e-3, {"lr": 1e-6, "ramp": ramp}) == pytest.approx(1e-3)
    assert rescue_lr(3e-3, None) == pytest.approx(1e-3)  # no finder (too few images)
