"""Suites on Dask: the coordinator writes the store, workers stage their runs.

Real LocalClusters of two worker processes. The fault tests (a worker killed once or
twice, the coordinator killed) are marked slow.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
import cluster_helpers  # noqa: E402  (needs distributed)
import dask  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from bovw_vs_convnet.cli import main  # noqa: E402
from bovw_vs_convnet.harness.cluster import run_on_worker  # noqa: E402
from bovw_vs_convnet.harness.run import load_split  # noqa: E402
from bovw_vs_convnet.harness.run_folder import PARTIAL_DIR  # noqa: E402
from bovw_vs_convnet.harness.store import ResultStore  # noqa: E402
from bovw_vs_convnet.harness.suite import parse_suite  # noqa: E402
from bovw_vs_convnet.harness.suite_runner import run_suite  # noqa: E402

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def _pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    from bovw_vs_convnet.harness import registry

    monkeypatch.setitem(registry.PIPELINES, "probe", cluster_helpers.suite_pipelines.SPEC)
    monkeypatch.setitem(registry.PIPELINES, "killer", cluster_helpers.KILLER)


@pytest.fixture()
def scheduler() -> Iterator[str]:
    """A LocalCluster of 2 worker processes with the test pipelines registered on each.

    A task whose worker dies twice is given up, as the README tells a cluster's user to
    configure (``allowed-failures`` = 1; ``--workers`` sets it itself).
    """
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.register_plugin(cluster_helpers.RegisterPipelines())
        yield cluster.scheduler_address


def _suite(text: str) -> str:
    return 'datasets = ["digits"]\n' + text


BASELINE = _suite('seeds = [0, 1, 2]\n[[run]]\npipeline = "baseline"\n')


def _partial_dirs(runs: Path) -> list[Path]:
    return [p for p in (runs / PARTIAL_DIR).iterdir() if p.is_dir()]


def test_two_workers_store_the_same_runs_as_one_process(tmp_path: Path) -> None:
    suite = parse_suite(BASELINE)
    alone = run_suite(suite, runs_dir=tmp_path / "alone", progress=False)
    lines: list[str] = []
    outcomes = run_suite(suite, runs_dir=tmp_path / "dask", workers=2, on_info=lines.append)
    assert [o.status for o in outcomes] == ["ran"] * 3
    assert all(o.worker and o.worker.startswith("tcp://") for o in outcomes)
    assert lines[0].startswith("dask: 3 runs on 2 workers")
    mine = {r["seed"]: r for r in ResultStore(tmp_path / "dask").list_runs()}
    for o in alone:
        assert o.record is not None
        other = mine[o.spec.seed]
        assert other["config_key"] == o.record["config_key"]
        assert other["split_fingerprint"] == o.record["split_fingerprint"]
        assert other["top1_err"] == o.record["top1_err"]
    assert _partial_dirs(tmp_path / "dask") == []  # every staging folder was committed

    lines.clear()  # stored runs are skipped before a cluster is started
    again = run_suite(suite, runs_dir=tmp_path / "dask", workers=2, on_info=lines.append)
    assert [o.status for o in again] == ["skipped"] * 3
    assert lines == []


def test_a_worker_checks_the_split_fingerprint_before_training(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / PARTIAL_DIR).mkdir(parents=True)
    (runs / PARTIAL_DIR / ".cluster-t").write_text("")
    _, split = load_split("digits", seed=0)
    task = {
        "pipeline": "baseline", "dataset": "digits", "settings": {}, "seed": 0,
        "train_size": None, "runs_dir": str(runs), "marker": ".cluster-t",
        "fingerprint": "0" * 64, "data_dir": None, "device": "cpu", "n_jobs": 1,
        "force": False,
    }  # fmt: skip
    result = run_on_worker(task)
    assert result["status"] == "failed"
    assert result["error"] == (
        f"DataError: split fingerprint {split.fingerprint[:12]} of 'digits' here differs from "
        "the coordinator's 000000000000: this node has different data (data dir default); "
        "give every worker the same files"
    )
    assert result["record"] is None and not (runs / "results.sqlite").exists()
    assert run_on_worker({**task, "fingerprint": split.fingerprint})["status"] == "ran"
    assert not (runs / "results.sqlite").exists()  # a worker never writes the index


def test_a_worker_that_cannot_see_the_runs_folder_fails_the_run_naming_it(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "elsewhere"
    task = {"runs_dir": str(runs), "marker": ".cluster-x"}
    result = run_on_worker(task)
    assert result["status"] == "failed"
    assert result["error"].startswith(f"runs folder {runs} is not visible on worker ")
    assert result["error"].endswith("(put it on storage every worker shares)")


def test_workers_without_dask_is_a_one_line_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    (tmp_path / "s.toml").write_text(BASELINE)
    result = CliRunner().invoke(
        main, ["bench", str(tmp_path / "s.toml"), "--workers", "2", "--runs-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert (
        result.output.strip()
        .splitlines()[-1]
        .endswith('--workers and --scheduler need dask.distributed: pip install -e ".[cluster]"')
    )
    assert not (tmp_path / "results.sqlite").exists()


def test_an_interrupt_cancels_the_runs_and_a_rerun_finishes_them(
    tmp_path: Path, scheduler: str
) -> None:
    suite = parse_suite(
        _suite('seeds = [0, 1, 2, 3]\n[[run]]\npipeline = "probe"\nset = { sleep = 0.5 }\n')
    )
    runs = tmp_path / "runs"

    def interrupt(index: int, total: int, outcome: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, runs_dir=runs, scheduler=scheduler, on_done=interrupt)
    assert len(ResultStore(runs).list_runs(status=None)) == 1  # the one that landed
    again = run_suite(suite, runs_dir=runs, scheduler=scheduler)
    assert sorted(o.status for o in again) == ["ran", "ran", "ran", "skipped"]
    records = ResultStore(runs).list_runs(status=None)  # each run once, none failed
    assert sorted((r["seed"], r["status"]) for r in records) == [(s, "ok") for s in range(4)]


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_once(tmp_path: Path, scheduler: str) -> None:
    deaths, starts = tmp_path / "deaths", tmp_path / "starts"
    deaths.write_text("1")
    suite = parse_suite(
        _suite(f'seeds = [0]\n[[run]]\npipeline = "killer"\nset = {{ deaths = "{deaths}", '
               f'starts = "{starts}" }}\n')
    )  # fmt: skip
    runs = tmp_path / "runs"
    (outcome,) = run_suite(suite, runs_dir=runs, scheduler=scheduler)
    assert outcome.status == "ran"
    assert len(starts.read_text().splitlines()) == 2  # killed once, then run again
    assert len(ResultStore(runs).list_runs(status=None)) == 1


@pytest.mark.slow
def test_a_run_whose_worker_dies_twice_is_stored_as_failed(tmp_path: Path, scheduler: str) -> None:
    deaths, starts = tmp_path / "deaths", tmp_path / "starts"
    deaths.write_text("5")
    suite = parse_suite(
        _suite(f'seeds = [0]\n[[run]]\npipeline = "killer"\nset = {{ deaths = "{deaths}", '
               f'starts = "{starts}" }}\n[[run]]\npipeline = "probe"\n')
    )  # fmt: skip
    runs = tmp_path / "runs"
    killed, probe = run_suite(suite, runs_dir=runs, scheduler=scheduler)
    assert killed.status == "failed" and killed.error is not None
    assert killed.error.startswith("KilledWorker: ")
    assert len(starts.read_text().splitlines()) == 2  # retried once, not more
    assert probe.status == "ran"
    (failed,) = ResultStore(runs).list_runs(status="failed")
    assert failed["pipeline"] == "killer" and failed["error"] == killed.error


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_a_killed_coordinator_resumes_with_nothing_lost_or_run_twice(
    tmp_path: Path, scheduler: str
) -> None:
    text = _suite(
        'seeds = [0, 1, 2, 3, 4, 5]\n[[run]]\npipeline = "probe"\nset = { sleep = 1.0 }\n'
    )
    (tmp_path / "s.toml").write_text(text)
    runs = tmp_path / "runs"
    code = (
        "import cluster_helpers; cluster_helpers.register(); "
        "from bovw_vs_convnet.cli import main; "
        f"main(['bench', {str(tmp_path / 's.toml')!r}, '--scheduler', {scheduler!r}, "
        f"'--runs-dir', {str(runs)!r}, '--no-progress'])"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _count(runs / "results.sqlite") < 1:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no run landed"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    landed = _count(runs / "results.sqlite")
    assert 1 <= landed < 6
    outcomes = run_suite(parse_suite(text), runs_dir=runs, scheduler=scheduler)
    assert sorted(o.status for o in outcomes).count("skipped") == landed
    records = ResultStore(runs).list_runs(status=None)
    assert sorted(r["seed"] for r in records) == [0, 1, 2, 3, 4, 5]
