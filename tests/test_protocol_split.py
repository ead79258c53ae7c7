"""The per-class protocol (--train-per-class N, --test-per-class M) and resampled splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.data import Dataset, ImageSet, make_split
from bovw_vs_convnet.data.manifest import Manifest
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness.leaderboard import build_tables


def _imageset(counts: list[int], part: str, groups: int | None = None) -> ImageSet:
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
    n = len(labels)
    ids = np.array([f"{part}/{i:05d}" for i in range(n)])
    # groups: image i of each class in group i % groups (every group spans the classes)
    within = np.concatenate([np.arange(k) for k in counts])
    grp = None if groups is None else np.array([f"g{j % groups:02d}" for j in within])
    classes = tuple(f"c{i}" for i in range(len(counts)))
    images = np.zeros((n, 1, 1, 1), dtype=np.uint8)
    return ImageSet(images, labels, ids, classes, "toy", groups=grp)


def _dataset(
    counts: list[int], test_counts: list[int] | None = None, groups: int | None = None
) -> Dataset:
    manifest = Manifest(
        name="toy",
        description="",
        format="synthetic",
        classes=tuple(f"c{i}" for i in range(len(counts))),
        image_size=(1, 1),
        channels=1,
        licence="",
        official_split=test_counts is not None,
    )
    test = _imageset(test_counts, "test") if test_counts is not None else None
    return Dataset("toy", _imageset(counts, "train", groups), test, manifest)


def _counts(s: ImageSet | None, n_classes: int) -> list[int]:
    c = Counter([] if s is None else s.labels.tolist())
    return [c[k] for k in range(n_classes)]


def test_counts_are_exact_and_validation_is_carved_from_the_n() -> None:
    s = make_split(_dataset([40, 60, 100]), seed=1, train_per_class=20, test_per_class=15)
    # val: max(1, round(0.1 * 20)) = 2 of each class's 20; test: 15 of each, the rest unused
    assert _counts(s.train, 3) == [18, 18, 18]
    assert _counts(s.val, 3) == [2, 2, 2]
    assert _counts(s.test, 3) == [15, 15, 15]


def test_no_validation_with_val_fraction_zero_trains_on_all_n() -> None:
    s = make_split(_dataset([40, 40]), train_per_class=30, test_per_class=10, val_fraction=0)
    assert s.val is None
    assert _counts(s.train, 2) == [30, 30]


def test_parts_are_disjoint() -> None:
    s = make_split(_dataset([50, 50, 50]), seed=4, train_per_class=30, test_per_class=15)
    train, val, test = set(s.train.ids), set(s.val.ids), set(s.test.ids)  # type: ignore[union-attr]
    assert not (train & val) and not (train & test) and not (val & test)


def test_training_images_are_nested_across_n_and_the_test_stays() -> None:
    ds = _dataset([80, 80, 80])
    small = make_split(ds, seed=2, train_per_class=15, test_per_class=50)
    large = make_split(ds, seed=2, train_per_class=30, test_per_class=50)
    labelled = lambda s: set(s.train.ids) | set(s.val.ids)  # noqa: E731
    assert set(small.train.ids) < set(large.train.ids)
    assert labelled(small) < labelled(large)
    # every class has N + M images for both N: the same test images
    assert small.test.ids.tolist() == large.test.ids.tolist()


def test_deterministic_per_seed_and_split_index() -> None:
    ds = _dataset([50, 50])
    a = make_split(ds, seed=3, train_per_class=10, test_per_class=10, split_index=1)
    b = make_split(_dataset([50, 50]), seed=3, train_per_class=10, test_per_class=10, split_index=1)
    assert a.fingerprint == b.fingerprint
    assert a.train.ids.tolist() == b.train.ids.tolist()


def test_fingerprint_changes_with_n_m_and_the_split_index() -> None:
    ds = _dataset([50, 50])
    base = dict(seed=0, train_per_class=10, test_per_class=10)
    prints = {
        make_split(ds, **base).fingerprint,  # type: ignore[arg-type]
        make_split(ds, **{**base, "train_per_class": 11}).fingerprint,  # type: ignore[arg-type]
        make_split(ds, **{**base, "test_per_class": 11}).fingerprint,  # type: ignore[arg-type]
        make_split(ds, **base, split_index=1).fingerprint,  # type: ignore[arg-type]
        make_split(ds, **base, split_index=2).fingerprint,  # type: ignore[arg-type]
    }
    assert len(prints) == 5


def test_params_name_the_protocol_and_the_split() -> None:
    s = make_split(_dataset([30, 30]), seed=7, train_per_class=5, test_per_class=5, split_index=2)
    assert s.params == {
        "dataset": "toy",
        "seed": 7,
        "train_size": None,
        "val_fraction": 0.1,
        "test_fraction": None,
        "train_per_class": 5,
        "test_per_class": 5,
        "short_classes": "refuse",
        "split_index": 2,
    }


def test_split_zero_of_the_fraction_protocol_is_the_stored_split() -> None:
    ds = _dataset([30, 30])
    before = make_split(ds, seed=5, train_size=20)
    again = make_split(ds, seed=5, train_size=20, split_index=0)
    other = make_split(ds, seed=5, train_size=20, split_index=1)
    assert again.fingerprint == before.fingerprint and again.params == before.params
    assert other.fingerprint != before.fingerprint and other.params["split_index"] == 1


def test_a_short_class_is_refused_by_name() -> None:
    with pytest.raises(DataError) as err:
        make_split(_dataset([50, 25, 50]), train_per_class=15, test_per_class=15)
    assert str(err.value) == (
        "class 'c1' has 25 image(s); the split needs 30 "
        "(--short-classes take-rest gives its test what is left)"
    )


def test_take_rest_gives_a_short_class_what_is_left() -> None:
    s = make_split(
        _dataset([50, 25, 50]), train_per_class=15, test_per_class=15, short_classes="take-rest"
    )
    assert _counts(s.test, 3) == [15, 10, 15]
    assert _counts(s.train, 3) == [13, 13, 13]


def test_take_rest_still_needs_one_test_image() -> None:
    with pytest.raises(DataError, match="class 'c1' has 15 image"):
        make_split(
            _dataset([50, 15]), train_per_class=15, test_per_class=5, short_classes="take-rest"
        )


def test_official_parts_train_from_train_and_test_from_test() -> None:
    ds = _dataset([40, 40], test_counts=[30, 12])
    s = make_split(ds, train_per_class=10, test_per_class=12)
    assert all(i.startswith("test/") for i in s.test.ids)
    assert _counts(s.test, 2) == [12, 12]
    assert _counts(s.train, 2) == [9, 9]
    with pytest.raises(DataError, match="class 'c1' has 12 image\\(s\\) in the test part"):
        make_split(ds, train_per_class=10, test_per_class=20)


def test_groups_stay_on_one_side() -> None:
    ds = _dataset([40, 40, 40], groups=20)
    s = make_split(ds, seed=1, train_per_class=10, test_per_class=6, test_fraction=0.3)
    sides = [set(part.groups.tolist()) for part in (s.train, s.val, s.test)]  # type: ignore[union-attr]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert _counts(s.train, 3) == [9, 9, 9]
    assert _counts(s.val, 3) == [1, 1, 1]
    assert _counts(s.test, 3) == [6, 6, 6]


def test_train_size_and_train_per_class_together_are_refused() -> None:
    with pytest.raises(DataError, match="not both"):
        make_split(_dataset([30, 30]), train_size=10, train_per_class=5)


def test_bvc_run_splits_are_k_runs_with_their_own_fingerprints(tmp_path: Path) -> None:
    args = ["run", "baseline", "--dataset", "digits", "--train-per-class", "10"]
    args += ["--test-per-class", "20", "--splits", "3", "--json", "--runs-dir", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--progress", "none"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["split"]["split_index"] for r in records] == [0, 1, 2]
    assert len({r["split_fingerprint"] for r in records}) == 3
    assert {(r["n_train"], r["n_val"], r["n_test"]) for r in records} == {(90, 10, 200)}
    (table,) = build_tables(records, significance=False)
    assert len(table.rows) == 1 and table.rows[0].n_runs == 3 and table.rows[0].ci_method == "t"


def test_bvc_run_refuses_a_short_class_with_exit_2(tmp_path: Path) -> None:
    args = ["run", "baseline", "--dataset", "digits", "--train-per-class", "150"]
    args += ["--test-per-class", "50", "--runs-dir", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "class '0' has 178 image(s); the split needs 200" in result.output
    assert "Traceback" not in result.output


SUITE = """
datasets = ["digits"]
train_per_class = [20, 10]
test_per_class = 30
splits = 2

[[run]]
pipeline = "baseline"
"""


def test_suite_keys_expand_into_runs_per_n_and_split() -> None:
    from bovw_vs_convnet.harness.suite import parse_suite

    specs = parse_suite(SUITE).specs()
    assert [(s.train_per_class, s.split_index) for s in specs] == [
        (10, 0),
        (10, 1),
        (20, 0),
        (20, 1),
    ]
    assert specs[1].split_options == {"train_per_class": 10, "test_per_class": 30, "split_index": 1}
    assert specs[1].describe() == "baseline on digits (10/class, test 30/class, seed 0, split 1)"


def test_suite_protocol_is_replaced_from_the_command_line() -> None:
    from bovw_vs_convnet.harness.suite import parse_suite

    specs = parse_suite(SUITE).specs(train_per_class=[5], splits=1, short_classes="take-rest")
    assert [s.split_options for s in specs] == [
        {"train_per_class": 5, "test_per_class": 30, "short_classes": "take-rest"}
    ]


def test_suite_refuses_train_sizes_with_train_per_class() -> None:
    from bovw_vs_convnet.errors import ConfigError
    from bovw_vs_convnet.harness.suite import parse_suite

    text = 'datasets = ["digits"]\ntrain_sizes = [100]\n[[run]]\npipeline = "baseline"\n'
    text += "train_per_class = 5\n"
    with pytest.raises(ConfigError, match=r"<suite>:5: give train_sizes or train_per_class"):
        parse_suite(text)


def test_suite_refuses_a_bad_splits_value() -> None:
    from bovw_vs_convnet.errors import ConfigError
    from bovw_vs_convnet.harness.suite import parse_suite

    with pytest.raises(ConfigError, match=r"<suite>:2: 'splits' must be a positive integer"):
        parse_suite('datasets = ["digits"]\nsplits = 0\n[[run]]\npipeline = "baseline"\n')


def test_bench_runs_the_protocol_and_skips_stored_splits(tmp_path: Path) -> None:
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE)
    args = ["bench", str(suite), "--train-per-class", "10", "--splits", "2", "--json"]
    args += ["--runs-dir", str(tmp_path / "runs"), "--progress", "none"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    runs = json.loads(first.stdout)["runs"]
    assert [(r["train_per_class"], r["split_index"], r["status"]) for r in runs] == [
        (10, 0, "ran"),
        (10, 1, "ran"),
    ]
    again = json.loads(CliRunner().invoke(main, args).stdout)["runs"]
    assert [r["status"] for r in again] == ["skipped", "skipped"]
    (table,) = json.loads(first.stdout)["leaderboard"]
    assert len(table["rows"]) == 1 and table["rows"][0]["n_runs"] == 2


def test_train_per_class_from_the_command_line_replaces_the_suite_sizes() -> None:
    from bovw_vs_convnet.harness.suite import parse_suite

    text = 'datasets = ["digits"]\ntrain_sizes = [100, "full"]\n[[run]]\npipeline = "baseline"\n'
    specs = parse_suite(text).specs(train_per_class=[30])
    assert [(s.train_size, s.train_per_class) for s in specs] == [(None, 30)]


def test_recipe_command_repeats_the_per_class_protocol_and_split() -> None:
    from bovw_vs_convnet.harness.analysis import recipe_command

    record = {
        "pipeline": "baseline",
        "dataset": "caltech101",
        "seed": 0,
        "config": {},
        "split": {"train_per_class": 30, "test_per_class": 50, "short_classes": "take-rest",
                  "split_index": 2, "val_fraction": 0.1},
    }  # fmt: skip
    assert recipe_command(record) == (  # type: ignore[arg-type]
        "bvc run baseline --dataset caltech101 --train-per-class 30 --test-per-class 50 "
        "--short-classes take-rest --splits 3"
    )


def test_data_split_shows_the_split_a_run_of_splits_uses() -> None:
    args = ["data", "split", "digits", "--train-per-class", "10", "--test-per-class", "20"]
    shown = json.loads(CliRunner().invoke(main, [*args, "--split-index", "1", "--json"]).output)
    assert (shown["n_train"], shown["n_val"], shown["n_test"]) == (90, 10, 200)
    assert shown["split_index"] == 1
    from bovw_vs_convnet.data import load_dataset

    ds = load_dataset("digits")
    s = make_split(ds, train_per_class=10, test_per_class=20, split_index=1)
    assert shown["split_fingerprint"] == s.fingerprint


def test_a_split_index_that_could_only_repeat_split_zero_is_refused() -> None:
    ds = _dataset([20, 20], test_counts=[5, 5])
    with pytest.raises(DataError, match="split 1 of 'toy' would repeat split 0"):
        make_split(ds, val_fraction=0, split_index=1)
    # with a held-out test part, split 1 draws another test part
    held = _dataset([20, 20])
    a, b = make_split(held, split_index=0), make_split(held, split_index=1)
    assert set(a.test.ids) != set(b.test.ids)
    assert _counts(a.test, 2) == _counts(b.test, 2) == [4, 4]


def test_the_dask_coordinator_plans_the_split_the_worker_will_use() -> None:
    from bovw_vs_convnet.data import load_dataset
    from bovw_vs_convnet.harness.cluster import plan_key
    from bovw_vs_convnet.harness.suite import RunSpec

    spec = RunSpec("baseline", "digits", 0, None, (), "baseline", 10, 20, None, 2)
    _, fingerprint = plan_key(spec, data_dir=None, device="cpu", splits={})
    expected = make_split(
        load_dataset("digits"), train_per_class=10, test_per_class=20, split_index=2
    )
    assert fingerprint == expected.fingerprint
