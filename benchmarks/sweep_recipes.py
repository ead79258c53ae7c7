"""A short optimiser sweep per model: learning rate × optimiser × seeds, on small datasets.

Each cell is one ``bvc run convnet`` through the harness (``run_pipeline``) with the
auto recipe (schedule, label smoothing, augmentation from the data) but a fixed, short
number of epochs, so that the grid finishes on a shared CPU; a cell is scored by its
**validation** error (mean over the seeds: what the defaults may be chosen by), its
test error is shown beside it. Runs go to ``--runs-dir`` (stored runs are reused). The
winners per model are the lowest mean validation error over all datasets swept (a
cell whose training diverged counts as 100 % error and is printed as such); they
are what ``ConvNetConfig.AUTO_PRESETS`` should name (``benchmarks/RESULTS-convnet.md``).

    BVC_DATA_DIR=/usr/share/datasets PYTHONPATH=. .venv/bin/python benchmarks/sweep_recipes.py \\
        --models lenet5 --datasets digits fashion-mnist:5000 --epochs 20 3 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bovw_vs_convnet.errors import RunFailed
from bovw_vs_convnet.harness.run import run_pipeline

GRID: dict[str, tuple[float, ...]] = {
    "sgd": (0.02, 0.05, 0.1),
    "adamw": (1e-3, 2e-3, 4e-3),
}
WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 5e-2}  # the presets' values, not swept


def parse_dataset(text: str) -> tuple[str, int | None]:
    """``name`` or ``name:train_size``."""
    name, _, size = text.partition(":")
    return name, int(size) if size else None


def best_val(record: Any) -> float:
    """The lowest validation error of the run's learning curve (the epoch kept)."""
    return float(min(record["extra"]["learning_curve"]["val_error"]))


def main() -> None:
    """Run the grid, print one Markdown table per model and the winners (and JSON with --json)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lenet5", "alexnet-small"])
    ap.add_argument("--datasets", nargs="+", default=["digits", "fashion-mnist:5000"])
    ap.add_argument(
        "--epochs", nargs="+", type=int, default=[20, 3], help="one per dataset, in order"
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--runs-dir", type=Path, default=Path("/tmp/bvc_sweep_runs"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if len(args.epochs) != len(args.datasets):
        ap.error("--epochs needs one value per dataset")
    cells: dict[tuple[str, str, str, float], list[tuple[float, float]]] = defaultdict(list)
    t0 = time.perf_counter()
    for model in args.models:
        for text, epochs in zip(args.datasets, args.epochs, strict=True):
            dataset, size = parse_dataset(text)
            for opt, lrs in GRID.items():
                for lr in lrs:
                    for seed in args.seeds:
                        overrides = {
                            "model": model, "optimizer": opt, "lr": lr, "epochs": epochs,
                            "weight_decay": WEIGHT_DECAY[opt], "threads": args.threads,
                        }  # fmt: skip
                        name = f"{model} {text} {opt} lr={lr:g} seed={seed}"
                        try:
                            rec = run_pipeline(
                                "convnet", dataset, overrides=overrides, seed=seed,
                                train_size=size, runs_dir=args.runs_dir, progress=False,
                                skip_existing=True,
                            )  # fmt: skip
                        except RunFailed as exc:  # e.g. a loss that went to nan
                            cells[(model, text, opt, lr)].append((1.0, 1.0))
                            print(f"{name}: failed ({exc})", flush=True)
                            continue
                        cells[(model, text, opt, lr)].append((best_val(rec), rec["top1_err"]))
                        print(
                            f"{name}: val {best_val(rec):.2%} test {rec['top1_err']:.2%}",
                            flush=True,
                        )
    wall = time.perf_counter() - t0
    winners: dict[str, dict[str, Any]] = {}
    for model in args.models:
        print(f"\n### {model} ({len(args.seeds)} seeds; mean val / test top-1 error)\n")
        print("| optimiser | lr | " + " | ".join(args.datasets) + " | mean val |")
        print("|---|---:|" + "---:|" * len(args.datasets) + "---:|")
        scores = []
        for opt, lrs in GRID.items():
            for lr in lrs:
                row, vals = [], []
                for text in args.datasets:
                    runs = cells[(model, text, opt, lr)]
                    v = statistics.mean(r[0] for r in runs)
                    t = statistics.mean(r[1] for r in runs)
                    row.append(f"{v:.2%} / {t:.2%}")
                    vals.append(v)
                mean_val = statistics.mean(vals)
                scores.append((mean_val, opt, lr))
                print(f"| {opt} | {lr:g} | " + " | ".join(row) + f" | {mean_val:.2%} |")
        best = min(scores)
        winners[model] = {"optimizer": best[1], "lr": best[2], "mean_val_err": best[0]}
        print(f"\nwinner for {model}: {best[1]} lr={best[2]:g} (mean val {best[0]:.2%})")
    print(f"\nwall: {wall:.0f} s")
    if args.json:
        out = {f"{k[0]}|{k[1]}|{k[2]}|{k[3]}": v for k, v in cells.items()}
        print(json.dumps({"cells": out, "winners": winners, "wall_s": wall}))


if __name__ == "__main__":
    main()
