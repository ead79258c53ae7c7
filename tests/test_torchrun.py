"""ConvNets under torchrun: two gloo processes on the CPU train one model with DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bovw_vs_convnet.harness.store import ResultStore

TESTS = Path(__file__).parent


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
        start_new_session=True,  # a hung rank is killed with the launcher
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
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
