"""The whole BoVW run on Fashion-MNIST, as a user runs it, against the same run on OpenCV SIFT.

Runs ``bvc run bovw --dataset fashion-mnist --json`` (54 000 training images,
6 000 for validation, the official 10 000 for test) in a fresh runs folder, so
that nothing comes from the cache: descriptors, vocabulary, encoding, SVM and
scoring are all timed. Then the same command with ``--set sift_backend=opencv``
(OpenCV ``SIFT.compute`` on the same grid) as the baseline. Prints, for each,
top-1 and top-5 error, wall time, peak memory of the run (max RSS of the child
process) and the stage times; then the targets (≤ 10 % top-1, ≤ 1 % top-5,
≤ 15 min, ≤ 8 GiB) and the backend swap's effect on top-1 (≤ 1 point).

    PYTHONPATH=. python benchmarks/bench_bovw_fashion_mnist.py [--set KEY=VALUE ...] [--skip-opencv]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from typing import Any


def _run(sets: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as runs:
        cmd = [
            sys.executable,
            "-m",
            "bovw_vs_convnet",
            "run",
            "bovw",
            "--dataset",
            "fashion-mnist",
            "--json",
            "--no-progress",
            "--runs-dir",
            runs,
        ]
        for s in sets:
            cmd += ["--set", s]
        # GNU time reports the child's peak RSS; the wall clock includes start-up and loading
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    record = json.loads(proc.stdout)
    record["wall_seconds"] = wall
    record["peak_rss_gib"] = int(proc.stderr.strip().splitlines()[-1]) / 2**20
    return record


def _summary(name: str, r: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": name,
        "top1_err": round(r["top1_err"], 4),
        "top5_err": round(r["top5_err"], 4),
        "wall_min": round(r["wall_seconds"] / 60, 2),
        "peak_rss_gib": round(r["peak_rss_gib"], 2),
        "stage_seconds": {k: round(v, 1) for k, v in r["stage_seconds"].items()},
        "C": r["extra"].get("C"),
        "classifier": r["extra"].get("classifier"),
    }


def main() -> None:
    """Run both, print one JSON line each and the target check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--skip-opencv", action="store_true", help="only the numpy run")
    args = parser.parse_args()
    ours = _run(args.sets)
    print(json.dumps(_summary("numpy dense SIFT", ours)))
    t1, t5 = ours["top1_err"], ours["top5_err"]
    wall, rss = ours["wall_seconds"] / 60, ours["peak_rss_gib"]
    print(
        f"targets: top-1 {100 * t1:.2f}% (≤10: {'met' if t1 <= 0.10 else 'MISSED'}), "
        f"top-5 {100 * t5:.2f}% (≤1: {'met' if t5 <= 0.01 else 'MISSED'}), "
        f"wall {wall:.1f} min (≤15: {'met' if wall <= 15 else 'MISSED'}), "
        f"peak {rss:.2f} GiB (≤8: {'met' if rss <= 8 else 'MISSED'})"
    )
    if args.skip_opencv:
        return
    base = _run([*args.sets, "sift_backend=opencv"])
    print(json.dumps(_summary("opencv SIFT.compute", base)))
    delta = 100 * (t1 - base["top1_err"])
    print(
        f"backend swap: top-1 numpy - opencv = {delta:+.2f} points "
        f"(≤1: {'met' if abs(delta) <= 1 else 'MISSED'}); "
        f"whole run opencv / numpy time: {base['wall_seconds'] / ours['wall_seconds']:.2f}x"
    )


if __name__ == "__main__":
    main()
