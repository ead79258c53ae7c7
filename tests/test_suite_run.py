"""Running suites: skip what is stored, record failures and go on, resume after an interrupt."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import suite_pipelines

from bovw_vs_convnet.errors import RunFailed, TrainSizeTooLarge
from bovw_vs_convnet.harness import suite_runner
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.harness.suite import parse_suite
from bovw_vs_convnet.harness.suite_runner import run_suite

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _probe(monkeypatch: pytest.MonkeyPatch) -> None:
    from bovw_vs_convnet.harness import registry

    monkeypatch.setitem(registry.PIPELINES, "probe", suite_pipelines.SPEC)


def _suite(tmp_path: Path, seeds: str = "[0, 1]", sets: str = "", extra: str = "") -> Path:
    path = tmp_path / "probe.toml"
    path.write_text(
        f'datasets = ["digits"]\nseeds = {seeds}\n{extra}\n[[run]]\npipeline = "probe"\n'
        + (f"set = {{ {sets} }}\n" if sets else "")
    )
    return path


def _statuses(outcomes: list) -> list[str]:
    return [o.status for o in outcomes]


def _ok(runs: Path) -> list[dict]:
    return ResultStore(runs).list_runs()


def test_rerun_skips_runs_already_stored(tmp_path: Path) -> None:
    suite = parse_suite(_suite(tmp_path).read_text())
    runs = tmp_path / "runs"
    assert _statuses(run_suite(suite, runs_dir=runs, progress=False)) == ["ran", "ran"]
    again = run_suite(suite, runs_dir=runs, progress=False)
    assert _statuses(again) == ["skipped", "skipped"]
    assert len(_ok(runs)) == 2


def test_failed_run_is_stored_with_its_error_and_the_suite_goes_on(tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.write_text("")
    text = _suite(tmp_path, seeds="[0]", sets=f'fail_flag = "{flag}"').read_text()
    text += '[[run]]\npipeline = "probe"\n'
    outcomes = run_suite(parse_suite(text), runs_dir=tmp_path / "runs", progress=False)
    assert _statuses(outcomes) == ["failed", "ran"]
    (failed,) = ResultStore(tmp_path / "runs").list_runs(status="failed")
    assert failed["error"] == "ValueError: probe failed on purpose"
    assert outcomes[0].error == "ValueError: probe failed on purpose"


def test_a_failed_run_is_retried_and_its_failure_superseded(tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.write_text("")
    suite = parse_suite(_suite(tmp_path, seeds="[0]", sets=f'fail_flag = "{flag}"').read_text())
    runs = tmp_path / "runs"
    assert _statuses(run_suite(suite, runs_dir=runs, progress=False)) == ["failed"]
    assert _statuses(run_suite(suite, runs_dir=runs, progress=False)) == ["failed"]
    assert len(ResultStore(runs).list_runs(status="failed")) == 1  # the repeat replaced it
    flag.unlink()
    assert _statuses(run_suite(suite, runs_dir=runs, progress=False)) == ["ran"]
    assert ResultStore(runs).list_runs(status="failed") == []
    assert len(ResultStore(runs).list_runs(status="superseded")) == 2


def test_force_reruns_and_keeps_one_record_per_run(tmp_path: Path) -> None:
    suite = parse_suite(_suite(tmp_path).read_text())
    runs = tmp_path / "runs"
    first = {
        r["run_id"]
        for r in (o.record for o in run_suite(suite, runs_dir=runs, progress=False))
        if r
    }
    forced = run_suite(suite, runs_dir=runs, force=True, progress=False)
    assert _statuses(forced) == ["ran", "ran"]
    assert len(_ok(runs)) == 2
    assert {r["run_id"] for r in ResultStore(runs).list_runs(status="superseded")} == first


def test_keyboard_interrupt_stops_the_suite_and_a_rerun_finishes_it(tmp_path: Path) -> None:
    flag = tmp_path / "interrupt"
    flag.write_text("1")  # the run with seed 1 (the second of three) is interrupted
    suite = parse_suite(
        _suite(tmp_path, seeds="[0, 1, 2]", sets=f'interrupt_flag = "{flag}"').read_text()
    )
    runs = tmp_path / "runs"
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_suite(
            suite, runs_dir=runs, progress=False, on_done=lambda i, n, o: done.append(o.status)
        )
    assert done == ["ran"]
    assert [r["seed"] for r in _ok(runs)] == [0]
    flag.unlink()
    assert _statuses(run_suite(suite, runs_dir=runs, progress=False)) == ["skipped", "ran", "ran"]
    records = _ok(runs)
    assert sorted(r["seed"] for r in records) == [0, 1, 2]
    assert len({r["config_key"] for r in records}) == 3
    assert ResultStore(runs).list_runs(status="failed") == []


def test_train_size_larger_than_the_data_is_not_run(tmp_path: Path) -> None:
    suite = parse_suite(
        _suite(tmp_path, seeds="[0]", extra="train_sizes = [100, 5000]").read_text()
    )
    outcomes = run_suite(suite, runs_dir=tmp_path / "runs", progress=False)
    assert _statuses(outcomes) == ["ran", "too-large"]
    assert outcomes[1].error is not None
    assert outcomes[1].error.startswith("train size 5000 is larger than the")
    assert ResultStore(tmp_path / "runs").list_runs(status=None)[0]["n_train"] == 100


def test_a_failed_run_s_record_is_the_one_run_failed_carries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record: RunRecord = {"run_id": "r-1", "status": "failed", "error": "ValueError: boom"}

    def fail(*args: object, **kwargs: object) -> None:
        raise RunFailed(record) from ValueError("boom")

    monkeypatch.setattr(suite_runner, "run_pipeline", fail)
    suite = parse_suite(_suite(tmp_path, seeds="[0]").read_text())
    (outcome,) = run_suite(suite, runs_dir=tmp_path / "runs", progress=False)
    assert (outcome.status, outcome.record, outcome.error) == ("failed", record, "ValueError: boom")


def test_too_large_is_told_by_the_error_s_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def too_large(*args: object, **kwargs: object) -> None:
        raise TrainSizeTooLarge("no room", train_size=10, available=5, dataset="digits")

    monkeypatch.setattr(suite_runner, "run_pipeline", too_large)
    suite = parse_suite(_suite(tmp_path, seeds="[0]").read_text())
    (outcome,) = run_suite(suite, runs_dir=tmp_path / "runs", progress=False)
    assert (outcome.status, outcome.record, outcome.error) == ("too-large", None, "no room")
    assert ResultStore(tmp_path / "runs").list_runs(status=None) == []


def test_a_run_that_fails_before_its_split_is_stored_as_failed(tmp_path: Path) -> None:
    text = 'datasets = ["no-such-dataset"]\n[[run]]\npipeline = "probe"\nset = { sleep = 0 }\n'
    (outcome,) = run_suite(parse_suite(text), runs_dir=tmp_path / "runs", progress=False)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("DataError: unknown dataset 'no-such-dataset'")
    (stored,) = ResultStore(tmp_path / "runs").list_runs(status="failed")
    assert stored == outcome.record
    assert (stored["pipeline"], stored["model"], stored["dataset"]) == (
        "probe",
        "probe",
        "no-such-dataset",
    )
    assert (stored["config"], stored["train_size"]) == ({"sleep": 0}, None)


def _count_ok(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def test_killed_bench_resumes_with_no_run_lost_or_duplicated(tmp_path: Path) -> None:
    suite_file = _suite(tmp_path, seeds="[0, 1, 2, 3]", sets="sleep = 0.4")
    runs = tmp_path / "runs"
    code = (
        "import sys, suite_pipelines; suite_pipelines.register(); "
        "from bovw_vs_convnet.cli import main; "
        f"main(['bench', {str(suite_file)!r}, '--runs-dir', {str(runs)!r}, '--no-progress'])"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while _count_ok(runs / "results.sqlite") < 1:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the first run never landed"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    landed = _count_ok(runs / "results.sqlite")
    assert 1 <= landed < 4  # killed mid-suite

    outcomes = run_suite(parse_suite(suite_file.read_text()), runs_dir=runs, progress=False)
    assert _statuses(outcomes) == ["skipped"] * landed + ["ran"] * (4 - landed)
    records = _ok(runs)
    assert sorted(r["seed"] for r in records) == [0, 1, 2, 3]
    assert len({r["config_key"] for r in records}) == 4
