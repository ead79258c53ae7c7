"""Runs written before the house was reorganised still read: records, scores, bundles.

``tests/fixtures/runs-b9fbd1e`` is a runs folder written by main at ``b9fbd1e``: one run
of each pipeline on 300 training digits (seed 0). Its bundles name the estimator classes
where they lived then; its ConvNet run kept no artefacts but its record.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bovw_vs_convnet.harness.bundle import load_bundle
from bovw_vs_convnet.harness.leaderboard import build_tables
from bovw_vs_convnet.harness.run import load_split
from bovw_vs_convnet.harness.store import ResultStore

FIXTURE = Path(__file__).parent / "fixtures" / "runs-b9fbd1e"
PIPELINES = ("baseline", "bovw", "convnet", "hog")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ResultStore:
    runs = tmp_path_factory.mktemp("legacy") / "runs"
    shutil.copytree(FIXTURE, runs)
    return ResultStore(runs)


def run_of(store: ResultStore, pipeline: str) -> str:
    (record,) = [r for r in store.list_runs() if r["pipeline"] == pipeline]
    return str(record["run_id"])


def test_every_legacy_record_lists_as_ok(store: ResultStore) -> None:
    records = store.list_runs()
    assert sorted(r["pipeline"] for r in records) == list(PIPELINES)
    assert {r["status"] for r in records} == {"ok"}


def test_legacy_runs_make_one_leaderboard_table(store: ResultStore) -> None:
    (table,) = build_tables(store.list_runs())
    assert sorted(row.pipeline for row in table.rows) == list(PIPELINES)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_legacy_bundle_scores_the_test_set_as_stored(store: ResultStore, pipeline: str) -> None:
    run_id = run_of(store, pipeline)
    bundle = load_bundle(store, run_id)
    _, split = load_split("digits", seed=0, train_size=300)
    scores, labels, ids = store.load_scores(run_id)
    assert list(ids) == [str(i) for i in split.test.ids]
    assert np.array_equal(labels, split.test.labels)
    again = np.asarray(bundle.pipeline.decision_scores(split.test))
    np.testing.assert_allclose(again, scores, rtol=1e-4, atol=1e-4)
