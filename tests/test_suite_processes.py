"""bvc bench's runs side by side in local processes: the same numbers as one by one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bovw_vs_convnet.harness import suite_processes
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.harness.suite import parse_suite
from bovw_vs_convnet.harness.suite_processes import side_by_side
from bovw_vs_convnet.harness.suite_runner import run_suite

SUITE = """
datasets = ["digits"]
seeds = [0]

[[run]]
pipeline = "baseline"
set = { method = "nearest-mean" }

[[run]]
pipeline = "baseline"
set = { method = "nearest-mean", standardize = "none" }
"""


def test_auto_is_one_process_per_usable_cpu_and_at_most_one_per_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(suite_processes, "usable_cpus", lambda: (4, "4 CPUs in the affinity"))
    assert side_by_side("auto", 9) == 4
    assert side_by_side("auto", 3) == 3
    assert side_by_side(1, 9) == 1
    assert side_by_side(2, 9) == 2


def test_runs_side_by_side_give_the_errors_of_runs_one_by_one(tmp_path: Path) -> None:
    suite = parse_suite(SUITE)
    alone = run_suite(suite, runs_dir=tmp_path / "alone", progress=False)
    side = run_suite(suite, runs_dir=tmp_path / "side", progress=False, processes=2)
    assert [o.status for o in side] == ["ran", "ran"]
    assert [o.record["top1_err"] for o in side if o.record] == [
        o.record["top1_err"] for o in alone if o.record
    ]
    assert len(ResultStore(tmp_path / "side").list_runs()) == 2  # committed here, once each
    assert {o.worker for o in side} != {f"{os.uname().nodename}:{os.getpid()}"}
    again = run_suite(suite, runs_dir=tmp_path / "side", progress=False, processes=2)
    assert [o.status for o in again] == ["skipped", "skipped"]
