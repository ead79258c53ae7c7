"""threads=auto: the count from the affinity, the cgroup quota and the work, never the load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bovw_vs_convnet import threads
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.threads import ThreadChoice, cgroup_quota, choose_threads, passive_waiting


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Eight CPUs in the affinity, no quota, no OMP_NUM_THREADS; returns the fake cgroup root."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(threads, "CGROUP", tmp_path)
    monkeypatch.setattr(threads.cgroup_quota, "__defaults__", (tmp_path,))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return tmp_path


def test_cgroup_v2_quota_in_cpus(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None


def test_cgroup_v1_quota_in_cpus(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_quota(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cgroup_quota(tmp_path) is None


def test_no_cgroup_files_is_no_quota(tmp_path: Path) -> None:
    assert cgroup_quota(tmp_path) is None


def test_auto_takes_the_affinity_when_there_is_no_quota(machine: Path) -> None:
    assert choose_threads("auto") == ThreadChoice(8, "auto: 8 CPUs in the affinity")


def test_auto_is_capped_by_the_quota_rounded_up(machine: Path) -> None:
    (machine / "cpu.max").write_text("250000 100000")
    choice = choose_threads("auto")
    assert choice.n == 3
    assert choice.why == "auto: cgroup quota 2.5 CPUs of 8 in the affinity"


def test_auto_gives_small_operators_one_thread_and_large_ones_more(machine: Path) -> None:
    assert choose_threads("auto", work=2e4).n == 1  # a tiny net: 20 000 multiply-adds per image
    assert choose_threads("auto", work=1.8e5).n == 3  # lenet5-1998: 0.18 M
    assert choose_threads("auto", work=1.2e7, per_thread=5e6).n == 2
    assert choose_threads("auto", work=6.5e8).n == 8  # alexnet-2012: all eight


def test_auto_never_reads_the_load(machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_load() -> tuple[float, float, float]:
        raise AssertionError("the load must not choose the thread count")

    monkeypatch.setattr(os, "getloadavg", no_load)
    assert choose_threads("auto", work=6.5e8) == choose_threads("auto", work=6.5e8)


def test_the_users_omp_num_threads_caps_auto(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads("auto", work=6.5e8).n == 3


def test_a_count_is_taken_as_given_and_a_bad_one_refused(machine: Path) -> None:
    assert choose_threads(2, work=1e4) == ThreadChoice(2, "threads=2: set")
    assert choose_threads("3").n == 3
    assert choose_threads(0).why == "threads=0: the library's default"
    with pytest.raises(ConfigError, match="threads"):
        choose_threads("many")
    with pytest.raises(ConfigError, match="threads"):
        choose_threads(-1)


def test_passive_waiting_leaves_the_users_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in threads.PASSIVE_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert passive_waiting() == {"KMP_BLOCKTIME": "0", "GOMP_SPINCOUNT": "0"}
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert passive_waiting() == {}


def test_a_convnets_work_is_counted_from_its_layers(machine: Path) -> None:
    from bovw_vs_convnet.convnet.device import choose_run_threads, forward_macs
    from bovw_vs_convnet.convnet.models import get_model_spec

    lenet = get_model_spec("lenet5")
    # conv1 6×28×28×25 + conv2 16×10×10×150 + fc 400·120 + 120·84 + 84·10
    assert forward_macs(lenet, in_channels=1) == 117_600 + 240_000 + 48_000 + 10_080 + 840
    assert choose_run_threads("auto", lenet, 1).n == 8
    assert choose_run_threads("auto", get_model_spec("lenet5-1998"), 1).n == 3
    assert choose_run_threads("auto", get_model_spec("alexnet-2012"), 3).n == 8
    assert choose_run_threads(4, lenet, 1) == ThreadChoice(4, "threads=4: set")


@pytest.mark.slow
@pytest.mark.parametrize(
    "pipeline, settings",
    [
        ("baseline", []),
        ("hog", []),
        ("bovw", ["--set", "preset=tiny"]),
        ("convnet", ["--model", "lenet5", "--epochs", "2"]),
        ("convnet", ["--model", "alexnet-small", "--epochs", "1"]),
    ],
)
def test_the_same_command_twice_gives_the_same_errors(
    pipeline: str, settings: list[str], tmp_path: Path
) -> None:
    """threads=auto as a user gets it (no OMP_NUM_THREADS): the same count, the same errors."""
    import json
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", *threads.PASSIVE_ENV)
    }
    results = []
    for attempt in ("first", "second"):
        command = [sys.executable, "-m", "bovw_vs_convnet", "run", pipeline, "--dataset", "digits"]
        command += [*settings, "--device", "cpu", "--runs-dir", str(tmp_path / attempt)]
        done = subprocess.run(
            [*command, "--no-progress", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        record = json.loads(done.stdout)
        results.append((record["top1_err"], record["top5_err"], record["extra"]["threads"]))
    assert results[0] == results[1]
