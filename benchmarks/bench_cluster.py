"""Suites on Dask against the sequential run of the same suite, in the same invocation.

``quick``: the built-in quick suite (ConvNets with ``deterministic=true`` and 1 thread,
as a worker has here: with 2 threads torch's reductions, hence the bits, differ) run
sequentially into one runs folder, then with ``--workers 2`` (a LocalCluster of 2
processes, 1 thread each on a 2-core machine) into another: the wall-time ratio, and
per run whether the split fingerprints and the top-1 errors are the same.

``bovw``: BoVW (``small``) descriptors and encoding of 10 000 Fashion-MNIST training
images on joblib's Dask backend (a LocalCluster of 2 workers, 1 thread each) against
joblib's threads (2) in this process, the same encoder: the ratio, and whether the
histograms are identical (their sums printed).

``grid``: a crossover-style grid (BoVW tiny and LeNet-5 at 5 training sizes on digits)
on a LocalCluster of 2 workers, one of them killed (SIGKILL) as soon as the first run
has landed: every run must end stored once (one ``ok`` row per config key, none
failed), against the sequential run of the same grid for the wall-time ratio.

    PYTHONPATH=. python benchmarks/bench_cluster.py quick
    PYTHONPATH=. python benchmarks/bench_cluster.py grid
    PYTHONPATH=. python benchmarks/bench_cluster.py bovw

Prints one JSON object per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.harness.suite import parse_suite
from bovw_vs_convnet.harness.suite_runner import RunOutcome, run_suite

GRID = """
description = "crossover-style grid for bench_cluster: BoVW tiny and LeNet-5 at 5 sizes"
datasets = ["digits"]
seeds = [0]
train_sizes = [100, 200, 400, 800, "full"]

[[run]]
pipeline = "bovw"
set = { preset = "tiny" }

[[run]]
pipeline = "convnet"
set = { model = "lenet5", batch_size = 32, epochs = 8, deterministic = true }
"""


def _timed(suite_text: str, runs: Path, **kwargs: Any) -> tuple[list[RunOutcome], float]:
    t0 = time.perf_counter()
    outcomes = run_suite(parse_suite(suite_text), runs_dir=runs, progress=False, **kwargs)
    return outcomes, time.perf_counter() - t0


def _by_label(outcomes: list[RunOutcome]) -> dict[str, dict[str, Any]]:
    return {
        f"{o.spec.label}/{o.spec.train_size or 'full'}": {
            "status": o.status,
            "fingerprint": (o.record or {}).get("split_fingerprint"),
            "top1_err": (o.record or {}).get("top1_err"),
        }
        for o in outcomes
    }


def _compare(seq: list[RunOutcome], par: list[RunOutcome]) -> dict[str, Any]:
    a, b = _by_label(seq), _by_label(par)
    return {
        "same_fingerprints": all(a[k]["fingerprint"] == b[k]["fingerprint"] for k in a),
        "same_top1_errors": all(a[k]["top1_err"] == b[k]["top1_err"] for k in a),
        "runs": {k: {"sequential": a[k]["top1_err"], "dask": b[k]["top1_err"]} for k in a},
    }


def quick(tmp: Path) -> dict[str, Any]:
    """The quick suite, sequential then on 2 local workers."""
    text = resources.files("bovw_vs_convnet.suites").joinpath("quick.toml").read_text()
    # the same bits need the same threads: a worker of 2 on 2 cores has 1 (torch's
    # reductions split by thread count), so the ConvNets take 1 thread in both
    text += "\n[defaults.convnet]\ndeterministic = true\nthreads = 1\n"
    seq, t_seq = _timed(text, tmp / "seq")
    par, t_par = _timed(text, tmp / "dask", workers=2)
    return {
        "benchmark": "quick suite, --workers 2 vs sequential",
        "sequential_s": round(t_seq, 1),
        "dask_2_workers_s": round(t_par, 1),
        "ratio_sequential_over_dask": round(t_seq / t_par, 2),
        **_compare(seq, par),
    }


def _rows(runs: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(runs / "results.sqlite") as conn:
        return [(str(k), str(s)) for k, s in conn.execute("SELECT config_key, status FROM runs")]


def grid(tmp: Path) -> dict[str, Any]:
    """The grid sequentially, then on 2 workers with one killed after the first landing."""
    import dask
    import distributed

    seq, t_seq = _timed(GRID, tmp / "seq")
    runs = tmp / "dask"
    killed: list[int] = []
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        ) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip

        def kill_after_first(index: int, total: int, outcome: RunOutcome) -> None:
            if not killed:  # the other worker is mid-run now (2 workers, 10 runs)
                pids = client.run(os.getpid)  # {worker address: pid}
                victim = next(p for a, p in pids.items() if a != outcome.worker)
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)

        t0 = time.perf_counter()
        par = run_suite(
            parse_suite(GRID), runs_dir=runs, scheduler=cluster.scheduler_address,
            on_done=kill_after_first,
        )  # fmt: skip
        t_par = time.perf_counter() - t0
    rows = _rows(runs)
    keys = [k for k, s in rows if s == "ok"]
    return {
        "benchmark": "grid (BoVW tiny, LeNet-5 x 5 sizes), 2 workers, one killed mid-suite",
        "sequential_s": round(t_seq, 1),
        "dask_2_workers_one_killed_s": round(t_par, 1),
        "ratio_sequential_over_dask": round(t_seq / t_par, 2),
        "killed_worker_pid": killed[0] if killed else None,
        "runs": len(par),
        "statuses": sorted({o.status for o in par}),
        "rows": len(rows),
        "ok_rows": len(keys),
        "each_run_stored_once": len(keys) == len(set(keys)) == len(par) == len(rows),
        "stored_once_all_ok": len(ResultStore(runs).list_runs()) == len(par),
        **_compare(seq, par),
    }


def bovw(tmp: Path, n_images: int = 10_000) -> dict[str, Any]:
    """Descriptors + encoding of Fashion-MNIST training images: Dask (2 workers) vs threads."""
    import dataclasses

    import distributed
    import numpy as np

    from bovw_vs_convnet.bovw.config import BovwConfig
    from bovw_vs_convnet.bovw.pipeline import encode_images, learn_encoder, plan_for
    from bovw_vs_convnet.config import build_config
    from bovw_vs_convnet.data import load_dataset

    ds = load_dataset("fashion-mnist")
    images = ds.train.subset(np.arange(n_images))
    local = build_config(BovwConfig, {"preset": "small", "executor": "local"})
    plan = plan_for(local, images, 2)
    encoder, _, _ = learn_encoder(local, 0, images, 2, plan)  # once, for both
    t0 = time.perf_counter()
    x_local, _, _ = encode_images(local, encoder, images, 2, plan)
    t_local = time.perf_counter() - t0
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        ) as cluster,
        distributed.Client(cluster),
    ):  # fmt: skip
        on_dask = dataclasses.replace(local, executor="dask")
        t0 = time.perf_counter()
        x_dask, _, _ = encode_images(on_dask, encoder, images, 2, plan)
        t_dask = time.perf_counter() - t0
    same = (
        (x_local != x_dask).nnz == 0
        if hasattr(x_local, "nnz")
        else bool(np.array_equal(x_local, x_dask))
    )
    return {
        "benchmark": f"BoVW small: descriptors + encoding of {n_images} Fashion-MNIST images",
        "joblib_threads_2_s": round(t_local, 1),
        "dask_2_workers_s": round(t_dask, 1),
        "ratio_threads_over_dask": round(t_local / t_dask, 2),
        "histogram_sum_threads": float(x_local.sum()),
        "histogram_sum_dask": float(x_dask.sum()),
        "identical_histograms": same,
    }


def main() -> None:
    """Run the chosen measurement(s) in a temporary folder; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=("quick", "grid", "bovw"), nargs="+")
    args = parser.parse_args()
    for which in args.which:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
            result = {"quick": quick, "grid": grid, "bovw": bovw}[which](Path(tmp))
        print(json.dumps(result, indent=1), flush=True)


if __name__ == "__main__":
    main()
