"""Raw-pixel baseline: the primal L-BFGS linear SVM against the old LinearSVC path, same run.

Each side is one ``bvc run baseline`` in a subprocess with its own fresh runs
folder, so its wall time is end to end (start-up, reading the images, the split,
fitting, scoring, storing): the project's default (``solver=lbfgs``, pixels
standardised on the training images, C chosen on the validation images along
``C_grid``) and the baseline as it was before (``solver=liblinear
standardize=none C=0.1 max_iter=5000``: one-vs-rest ``LinearSVC`` on raw
pixels), the latter stopped after ``--old-timeout`` seconds. Prints one JSON line
per side (wall seconds, top-1 error) and the time ratio, a lower bound when the
old side was stopped.

    BVC_DATA_DIR=/usr/share/datasets PYTHONPATH=. python benchmarks/bench_baseline.py \\
        --dataset fashion-mnist
    PYTHONPATH=. python benchmarks/bench_baseline.py --dataset glyphs-wild --data-dir DIR \\
        --old-timeout 600
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OLD = ["solver=liblinear", "standardize=none", "C=0.1", "max_iter=5000"]


def run_side(
    dataset: str, data_dir: str | None, settings: list[str], timeout: float
) -> dict[str, Any]:
    """One ``bvc run baseline`` in a fresh runs folder: wall seconds and the record (or None)."""
    with tempfile.TemporaryDirectory(prefix="bench_baseline_") as runs:
        cmd = [sys.executable, "-m", "bovw_vs_convnet", "run", "baseline", "--dataset", dataset]
        cmd += ["--runs-dir", runs, "--no-progress", "--json"]
        cmd += ["--data-dir", data_dir] if data_dir else []
        for item in settings:
            cmd += ["--set", item]
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            return {"seconds": time.perf_counter() - start, "stopped": True, "record": None}
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "stopped": False, "record": json.loads(done.stdout)}


def main() -> None:
    """Time both sides on one dataset; print a JSON line each and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="a dataset name or folder")
    parser.add_argument("--data-dir", default=None, help="where the dataset is looked for")
    parser.add_argument("--old-timeout", type=float, default=900.0, help="seconds for the old side")
    parser.add_argument("--skip-old", action="store_true", help="time the new side only")
    args = parser.parse_args()
    if not Path("bovw_vs_convnet").is_dir():
        sys.exit("run from the repository root (PYTHONPATH=. python benchmarks/bench_baseline.py)")
    sides: dict[str, tuple[list[str], float]] = {"new": ([], 3600.0)}
    if not args.skip_old:
        sides["old"] = (OLD, args.old_timeout)
    results = {}
    for name, (settings, timeout) in sides.items():
        out = run_side(args.dataset, args.data_dir, settings, timeout)
        record = out["record"]
        line = {
            "side": name,
            "dataset": args.dataset,
            "settings": settings or "defaults",
            "wall_seconds": round(out["seconds"], 1),
            "stopped": out["stopped"],
            "top1_err": None if record is None else round(record["top1_err"], 4),
            "fit_seconds": None if record is None else round(record["train_seconds"], 1),
            "n_train": None if record is None else record["n_train"],
            "C": None if record is None else record["extra"].get("C"),
        }
        print(json.dumps(line), flush=True)
        results[name] = out
    if "old" in results:
        new, old = results["new"]["seconds"], results["old"]["seconds"]
        bound = "≥ " if results["old"]["stopped"] else ""
        print(f"old / new wall time: {bound}{old / new:.1f}x")


if __name__ == "__main__":
    main()
