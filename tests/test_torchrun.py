"""ConvNets under torchrun: two gloo processes on the CPU train one model with DDP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bovw_vs_convnet.harness.store import ResultStore

TESTS = Path(__file__).parent


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the ranks (torchrun may start them in sessions of their own), then the launcher."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    for pid in [*pids, proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def _torchrun(tmp_path: Path, n: int, *args: str, timeout: float = 120) -> dict:
    """Run tests/torchrun_probe.py on ``n`` processes; the JSON record rank 0 printed."""
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    probe = str(TESTS / "torchrun_probe.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           str(n), probe, str(out), str(tmp_path / "runs"), *args]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            _kill(proc)
    assert proc.returncode == 0, stderr[-3000:]
    (line,) = [x for x in stdout.splitlines() if x.startswith("{")]  # rank 0 only
    return dict(json.loads(line))


SETTINGS = ("--dataset", "synthetic", "--train-size", "192", "--model", "lenet5",
            "--set", "recipe=fixed", "--set", "epochs=4", "--set", "schedule=constant",
            "--set", "lr=0.02", "--set", "augment=", "--set", "patience=0",
            "--set", "warmup_steps=0")  # fmt: skip


def test_two_gloo_ranks_keep_identical_weights_and_the_loss_falls(tmp_path: Path) -> None:
    record = _torchrun(tmp_path, 2, *SETTINGS, "--set", "batch_size=16")
    ranks = [torch.load(tmp_path / "out" / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0]["model"].keys() == ranks[1]["model"].keys()
    for name, weight in ranks[0]["model"].items():
        assert torch.equal(weight, ranks[1]["model"][name]), name
    loss = ranks[0]["loss"]
    assert len(loss) == 4 and loss[-1] < loss[0]
    assert record["extra"]["world_size"] == 2
    assert record["extra"]["global_batch_size"] == 32
    assert record["extra"]["backend"] == "gloo"
    (stored,) = ResultStore(tmp_path / "runs").list_runs(status=None)  # rank 0's, once
    assert stored["run_id"] == record["run_id"]


@pytest.mark.slow
def test_two_ranks_of_batch_16_train_as_one_process_of_batch_32(tmp_path: Path) -> None:
    _torchrun(tmp_path / "two", 2, *SETTINGS, "--set", "batch_size=16")
    _torchrun(tmp_path / "one", 1, *SETTINGS, "--set", "batch_size=32")
    two = torch.load(tmp_path / "two" / "out" / "rank0.pt")["model"]
    one = torch.load(tmp_path / "one" / "out" / "rank0.pt")["model"]
    for name, weight in one.items():  # the same steps; sums in another order
        torch.testing.assert_close(two[name], weight, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_lenet5_on_digits_over_two_ranks_errs_as_one_process(tmp_path: Path) -> None:
    """The quick suite's LeNet-5 (batch 32, 15 epochs) against 2 ranks of 16: within 1.5 points."""
    args = ("--dataset", "digits", "--model", "lenet5", "--set", "epochs=15")
    one = _torchrun(tmp_path / "one", 1, *args, "--set", "batch_size=32", timeout=600)
    two = _torchrun(tmp_path / "two", 2, *args, "--set", "batch_size=16", timeout=600)
    assert two["split_fingerprint"] == one["split_fingerprint"]
    assert abs(two["top1_err"] - one["top1_err"]) <= 0.015, (one["top1_err"], two["top1_err"])


@pytest.mark.slow
def test_a_killed_torchrun_job_resumes_from_rank_0s_checkpoint(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
            "2", "-m", "bovw_vs_convnet", "run", "convnet", *SETTINGS[:6], "--set",
            "recipe=fixed", "--set", "epochs=60", "--set", "patience=0", "--set",
            "batch_size=16", "--runs-dir", str(runs), "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list((runs / ".partial").glob("*/checkpoint.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.1)
    finally:
        _kill(proc)
    assert ResultStore(runs).list_runs(status=None) == []
    done = subprocess.run([*args, "--resume", "--json"], env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("{")]
    record = json.loads(line)
    assert record["extra"]["resumed_from_epoch"] >= 1
    assert record["extra"]["epochs_run"] == 60
    assert [r["run_id"] for r in ResultStore(runs).list_runs(status=None)] == [record["run_id"]]
