"""The results store: round trips, failures, recovery and concurrent writers."""

import json
import multiprocessing
import sqlite3

import numpy as np
import pytest

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness.record_json import config_key
from bovw_vs_convnet.harness.store import ResultStore


def _record(run_id: str, **extra):
    return {
        "run_id": run_id,
        "status": "ok",
        "created_at": "2026-01-01T00:00:00+00:00",
        "pipeline": "baseline",
        "model": "linear-svm",
        "dataset": "digits",
        "split_fingerprint": "ab" * 32,
        "config_key": "k" + run_id,
        "seed": 0,
        "n_train": 10,
        "n_test": 3,
        "top1_err": 0.25,
        "top5_err": 0.0,
        **extra,
    }


def _commit(store: ResultStore, run_id: str, **extra):
    staging = store.start_run("key-" + run_id, run_id)
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]])
    return store.commit(
        _record(run_id, **extra),
        staging,
        scores=scores,
        labels=np.array([1, 0, 1]),
        ids=np.array(["a", "b", "c"]),
    )


def test_commit_round_trips_record_and_scores(tmp_path):
    store = ResultStore(tmp_path)
    _commit(store, "r1")
    assert store.get_run("r1")["top1_err"] == 0.25
    scores, labels, ids = store.load_scores("r1")
    assert scores.shape == (3, 2)
    assert labels.tolist() == [1, 0, 1]
    assert ids.tolist() == ["a", "b", "c"]
    assert json.loads((tmp_path / "r1" / "record.json").read_text())["run_id"] == "r1"


def test_nan_becomes_null_in_the_record(tmp_path):
    store = ResultStore(tmp_path)
    _commit(store, "r1", per_class_err={"a": float("nan")})
    assert store.get_run("r1")["per_class_err"] == {"a": None}


def test_list_runs_filters(tmp_path):
    store = ResultStore(tmp_path)
    _commit(store, "r1")
    _commit(store, "r2", dataset="mnist")
    assert [r["run_id"] for r in store.list_runs(dataset="mnist")] == ["r2"]
    assert [r["run_id"] for r in store.list_runs(config_key="kr1")] == ["r1"]
    assert len(store.list_runs(pipeline="bovw")) == 0


def test_unfinished_run_leaves_no_record_and_keeps_earlier_ones(tmp_path):
    store = ResultStore(tmp_path)
    _commit(store, "r1")
    staging = store.start_run("interrupted", "r2")
    (staging / "checkpoint.pt").write_bytes(b"half")
    # the process dies here: nothing committed
    assert [r["run_id"] for r in ResultStore(tmp_path).list_runs(status=None)] == ["r1"]
    assert store.recover() == 0


def test_resume_reuses_the_newest_staging_folder_of_its_key(tmp_path):
    store = ResultStore(tmp_path)
    (store.start_run("key", "r1") / "checkpoint.pt").write_bytes(b"epoch 3")
    resumed = store.start_run("key", "r2", resume=True)
    assert (resumed / "checkpoint.pt").read_bytes() == b"epoch 3"
    assert store.start_run("other", "r3", resume=True).name == "other-r3"


def test_identical_runs_get_separate_staging_folders(tmp_path):
    store = ResultStore(tmp_path)
    (store.start_run("key", "r1") / "checkpoint.pt").write_bytes(b"mine")
    fresh = store.start_run("key", "r2")
    assert not (fresh / "checkpoint.pt").exists()
    assert len(store.partial_dirs("key")) == 2


def test_recover_indexes_a_renamed_folder_without_row(tmp_path):
    store = ResultStore(tmp_path)
    _commit(store, "r1")
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        conn.execute("DELETE FROM runs")
    assert store.list_runs() == []
    assert store.recover() == 1
    assert [r["run_id"] for r in store.list_runs()] == ["r1"]


def test_failed_run_is_stored_but_not_listed_as_ok(tmp_path):
    store = ResultStore(tmp_path)
    store.record_failure(_record("f1", error="DataError: boom"))
    assert store.list_runs() == []
    (failed,) = store.list_runs(status="failed")
    assert (failed["status"], failed["error"]) == ("failed", "DataError: boom")


def test_run_ids_holds_every_stored_run_whatever_its_status(tmp_path):
    store = ResultStore(tmp_path)
    assert store.run_ids() == set()  # no results.sqlite yet
    _commit(store, "r1")
    store.record_failure(_record("f1", error="DataError: boom"))
    assert store.run_ids() == {"r1", "f1"}


def test_unknown_run_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no run 'nope'"):
        ResultStore(tmp_path).get_run("nope")


def test_config_key_depends_on_seed_and_config_not_key_order():
    a = config_key("bovw", {"k": 1, "C": 2.0}, "fp", dataset="d", seed=0)
    assert a == config_key("bovw", {"C": 2.0, "k": 1}, "fp", dataset="d", seed=0)
    assert a != config_key("bovw", {"k": 1, "C": 2.0}, "fp", dataset="d", seed=1)
    assert a != config_key("bovw", {"k": 2, "C": 2.0}, "fp", dataset="d", seed=0)


def _writer(runs_dir: str, prefix: str, n: int) -> None:
    store = ResultStore(runs_dir)
    for i in range(n):
        _commit(store, f"{prefix}{i:02d}")


def test_two_processes_writing_at_once_both_land(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), p, 15)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    ids = sorted(r["run_id"] for r in ResultStore(tmp_path).list_runs())
    assert ids == sorted([f"a{i:02d}" for i in range(15)] + [f"b{i:02d}" for i in range(15)])


def test_a_staging_folder_claimed_elsewhere_is_not_resumed(tmp_path, caplog):
    owner = ResultStore(tmp_path)  # another process, as far as the lock goes
    busy = owner.start_run("key", "r1")
    second = ResultStore(tmp_path)
    with caplog.at_level("WARNING", logger="bovw_vs_convnet.harness.store"):
        own = second.start_run("key", "r2", resume=True)
    assert own != busy and own.name == "key-r2"
    assert [r.getMessage() for r in caplog.records] == [
        f"{busy} is in use by another process; this run starts its own staging folder"
    ]
    owner.release(busy)  # its process ends: the folder may be resumed
    assert ResultStore(tmp_path).start_run("key", "r3", resume=True) == busy  # r2 is in use


def test_commit_removes_the_claim_file_of_its_staging_folder(tmp_path):
    store = ResultStore(tmp_path)
    _commit(store, "r1")
    assert list((tmp_path / ".partial").iterdir()) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"seed": -1}, "'seed' is -1, not an integer from 0 to 4294967295"),
        ({"n_train": 2**63}, "'n_train' is 9223372036854775808, not an integer"),
        ({"top1_err": 1.5}, "'top1_err' is 1.5, out of range"),
        ({"top5_err": float("nan")}, "'top5_err' is nan, out of range"),
        ({"run_id": "../escape"}, "run_id '../escape' is not a folder name"),
        ({"status": "done"}, "status 'done' is not one of ok, failed, superseded"),
        ({"model": 3}, "'model' is not a string"),
        ({"extra": {"x": float("inf")}}, "it is not strict JSON"),
    ],
)
def test_check_record_says_why_a_record_cannot_be_a_row(change, reason):
    from bovw_vs_convnet.harness.record_json import check_record

    assert check_record(_record("r1")) is None
    assert check_record({**_record("r1"), **change}).startswith(reason)


def test_a_damaged_row_is_left_out_with_a_warning(tmp_path, caplog):
    store = ResultStore(tmp_path)
    _commit(store, "r1")
    _commit(store, "r2")
    with sqlite3.connect(tmp_path / "results.sqlite") as conn:
        conn.execute("UPDATE runs SET record = 'not json' WHERE run_id = 'r2'")
    with caplog.at_level("WARNING", logger="bovw_vs_convnet.harness.store"):
        assert [r["run_id"] for r in store.list_runs()] == ["r1"]
    assert caplog.records[0].getMessage().startswith("run r2: its row in ")
