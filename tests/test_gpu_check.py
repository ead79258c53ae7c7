"""benchmarks/gpu_check.sh on the CPU: at most 8 files under $OUT, a JSON that always parses.

The GPU machine returns at most 8 files from $OUT, and a check stopped by its time
limit must still return the figures it had: runs and scratch live outside $OUT, and
gpu_check.json is rewritten whole (atomic rename) after every step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STATUSES = ("ok", "timed out after ", "failed (exit ", "skipped: out of time", "done")


def start(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    """The dry run of gpu_check.sh on digits, writing under tmp_path/out; its process and $OUT."""
    out = tmp_path / "out"
    full_env = {
        **os.environ, "GPU_CHECK_DRY": "1", "GPU_CHECK_DATASET": "digits", "OUT": str(out),
        "GPU_CHECK_SCRATCH": str(tmp_path / "scratch"), "PYTHON": sys.executable, **env,
    }  # fmt: skip
    proc = subprocess.Popen(
        ["bash", str(SCRIPT)], cwd=ROOT, env=full_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, out


def watch(proc: subprocess.Popen[bytes], path: Path, until: str | None = None) -> list[dict]:
    """Every version of the JSON at ``path`` seen while ``proc`` runs, each parsed.

    Stops when ``proc`` ends or, with ``until``, once a version has that step.
    """
    versions: list[dict] = []
    last = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else None
        if text is not None and text != last:
            last = text
            versions.append(json.loads(text))  # raises if a reader ever saw half a file
            if until is not None and until in versions[-1]["steps"]:
                return versions
        if proc.poll() is not None:
            return versions
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("gpu_check.sh did not finish")


def test_stopped_midway_it_leaves_a_json_with_every_finished_step(tmp_path: Path) -> None:
    # the environment step imports torch: on a busy CPU that may take past its 15 s
    proc, out = start(tmp_path, GPU_CHECK_ENV_S="240")
    try:
        versions = watch(proc, out / "gpu_check.json", until="env")
        proc.send_signal(signal.SIGTERM)  # what a time limit sends; it stops the step too
        assert proc.wait(timeout=30) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    steps = json.loads((out / "gpu_check.json").read_text())["steps"]
    assert list(versions[-1]["steps"]) == ["env"]
    assert list(steps) == ["env"]
    assert steps["env"]["status"] == "ok"
    assert steps["env"]["result"]["dry_run"] is True
    assert len(list(out.iterdir())) <= 8


def test_a_step_past_its_limit_keeps_what_it_printed_and_the_rest_wait_for_no_one(
    tmp_path: Path,
) -> None:
    # a probe that prints its first figures, then hangs; an environment step that is instant
    python = tmp_path / "python3"
    python.write_text(
        "#!/usr/bin/env bash\n"
        "if [[ $1 == tools/gpu_probe.py ]]; then\n"
        """  echo '{"runtime": "so far"}'; exec sleep 60\n"""
        "fi\n"
        'if [[ $1 == benchmarks/gpu_figures.py && $2 == env ]]; then echo "{}"; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    # 19 s: the probe gets 19 - 15 (kept for the figures) - the seconds gone (under 1 at
    # idle) = 3 or 4 s; then time is up, the rest have < 1 s each and are skipped
    proc, out = start(
        tmp_path, PYTHON=str(python), GPU_CHECK_BUDGET_S="19", GPU_CHECK_MIN_STEP_S="1"
    )
    try:
        versions = watch(proc, out / "gpu_check.json")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    steps = versions[-1]["steps"]
    # every version seen parsed, and each held the steps finished so far, in order
    assert all(list(v["steps"]) == list(steps)[: len(v["steps"])] for v in versions)
    assert steps["probe"]["status"].startswith("timed out after ")
    assert steps["probe"]["result"] == {"runtime": "so far"}
    later = [name for name in steps if name not in ("env", "probe", "total")]
    assert later == [
        "models", "run_lenet5", "run_lenet5-1998", "run_alexnet-small", "bench_alexnet",
        "bench_trainer_lenet5",
    ]  # fmt: skip
    assert {steps[name]["status"] for name in later} == {"skipped: out of time"}
    assert sorted(p.name for p in out.iterdir()) == [
        "gpu_check.json", "gpu_check.log", "learning_curves.png", "summary.md",
    ]  # fmt: skip


@pytest.mark.slow
def test_the_dry_run_on_the_cpu_returns_every_figure_in_at_most_8_files(tmp_path: Path) -> None:
    proc, out = start(tmp_path)
    try:
        versions = watch(proc, out / "gpu_check.json")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    steps = versions[-1]["steps"]
    assert all(v["status"].startswith(STATUSES) for v in steps.values())
    assert {name: step["status"] for name, step in steps.items()} == {
        name: "ok" if name != "total" else "done" for name in steps
    }
    assert steps["run_lenet5"]["result"]["extra"]["amp"] == "fp32"
    assert steps["bench_alexnet"]["result"]["img_s"].keys() == {"torchvision-fp32", "trainer"}
    assert steps["probe"]["result"]["deterministic"] == {
        "alexnet-small": {"ran": True, "same_bits": True}
    }
    assert sorted(p.name for p in out.iterdir()) == [
        "gpu_check.json", "gpu_check.log", "learning_curves.png", "summary.md", "throughput.png",
    ]  # fmt: skip
    assert (tmp_path / "scratch" / "runs" / "results.sqlite").exists()  # outside $OUT


@pytest.mark.slow
def test_the_glyphs_script_dry_run_scores_both_alexnets_into_four_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ, "GPU_GLYPHS_DRY": "1", "GPU_GLYPHS_DATASET": "digits", "OUT": str(out),
        "GPU_GLYPHS_SCRATCH": str(tmp_path / "scratch"), "PYTHON": sys.executable,
    }  # fmt: skip
    script = ROOT / "benchmarks" / "gpu_glyphs.sh"
    subprocess.run(["bash", str(script)], cwd=ROOT, env=env, check=True, timeout=600)
    assert sorted(p.name for p in out.iterdir()) == [
        "alexnet-2012.json", "alexnet-2012.log", "alexnet-torchvision.json",
        "alexnet-torchvision.log",
    ]  # fmt: skip
    records = {
        n: json.loads((out / f"{n}.json").read_text())
        for n in ("alexnet-2012", "alexnet-torchvision")
    }
    assert {n: (r["status"], r["model"], r["n_train"]) for n, r in records.items()} == {
        "alexnet-2012": ("ok", "alexnet-2012", 62),
        "alexnet-torchvision": ("ok", "alexnet", 62),  # --train-size: the training part
    }
    assert records["alexnet-2012"]["config"]["init"] == "kaiming"
    assert (tmp_path / "scratch" / "runs" / "results.sqlite").exists()  # outside $OUT
