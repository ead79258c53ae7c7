"""threads=auto against fixed thread counts: ConvNet runs beside 0, 1 and 2 busy processes.

For each load (``--loads``: how many ``python3 -c "while True: pass"`` run beside), each
model and dataset, one ``bvc run convnet`` per thread setting (``--threads``, in turn,
each in a fresh runs folder), timed as a whole (wall) and by its training time. The
settings of one (load, model, dataset) cell run back to back, so their ratios compare
like with like on a machine whose other load drifts; the load average (``uptime``'s
one-minute figure) is printed beside every time. The last column is auto's training
time over the best fixed count's (the target: at most 1.1, never above 1.3).

    PYTHONPATH=. python3 benchmarks/bench_threads.py --loads 0,1,2 --epochs 2 \\
        --models lenet5,lenet5-1998,alexnet-small --datasets digits,fashion-mnist
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = [sys.executable, "-c", "while True: pass"]


def load_average() -> float:
    """The one-minute load average."""
    return os.getloadavg()[0]


def one_run(model: str, dataset: str, threads: str, args: argparse.Namespace) -> dict[str, float]:
    """Wall and training seconds, errors and the thread count of one ``bvc run convnet``."""
    with tempfile.TemporaryDirectory() as runs:
        command = [
            sys.executable, "-m", "bovw_vs_convnet", "run", "convnet",
            "--model", model, "--dataset", dataset, "--epochs", str(args.epochs),
            "--set", f"threads={threads}", "--device", "cpu",
            "--runs-dir", runs, "--no-progress", "--json",
        ]  # fmt: skip
        if dataset != "digits":
            command += ["--train-size", str(args.train_size)]
        load = load_average()
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
    record = json.loads(done.stdout)
    chosen = (record.get("extra") or {}).get("threads") or {}
    return {
        "wall": wall,
        "train": float(record["train_seconds"]),
        "top1": float(record["top1_err"]),
        "top5": float(record["top5_err"]),
        "n": chosen.get("n", 0),
        "load": load,
    }


def cell(model: str, dataset: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Every thread setting of one (model, dataset) at the current load."""
    return {t: one_run(model, dataset, t, args) for t in args.threads.split(",")}


def report(load: int, model: str, dataset: str, results: dict[str, dict[str, float]]) -> str:
    """One markdown row: each setting's training / wall seconds and load, auto / best fixed."""
    parts = [
        f"{r['train']:.1f} / {r['wall']:.1f} s (n={r['n']}, top-1 {100 * r['top1']:.2f} %, "
        f"load {r['load']:.1f})"
        for r in results.values()
    ]
    fixed = [r["train"] for t, r in results.items() if t != "auto"]
    ratio = results["auto"]["train"] / min(fixed) if "auto" in results and fixed else float("nan")
    return f"| {load} busy | {model} | {dataset} | " + " | ".join(parts) + f" | {ratio:.2f} |"


def main() -> None:
    """Run the matrix and print it as a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="0,1,2", help="busy processes beside, in turn")
    parser.add_argument("--models", default="lenet5,lenet5-1998,alexnet-small")
    parser.add_argument("--datasets", default="digits,fashion-mnist")
    parser.add_argument("--threads", default="1,2,auto")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=2000, help="for sets other than digits")
    args = parser.parse_args()
    settings = args.threads.split(",")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, epochs {args.epochs}")
    columns = " | ".join(f"threads={t}: train / wall" for t in settings)
    print(f"| load | model | dataset | {columns} | auto / best |")
    print("|---|---|---|" + "---:|" * (len(settings) + 1))
    for busy_count in (int(x) for x in args.loads.split(",")):
        busy = [subprocess.Popen(BUSY) for _ in range(busy_count)]
        try:
            for model in args.models.split(","):
                for dataset in args.datasets.split(","):
                    results = cell(model, dataset, args)
                    print(report(busy_count, model, dataset, results), flush=True)
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    main()
