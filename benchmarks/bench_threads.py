"""threads=auto against fixed thread counts: ConvNets beside 0, 1 and 2 busy processes.

``--mode steps`` (the default) times training steps (forward, backward, AdamW; batch
128 at the model's input size, which every set is resized or padded to, so the step is
the same on digits and Fashion-MNIST): one child process per model, in which
1 and 2 threads alternate ``--repeats`` times, the median ms per step of each; auto's count
is what ``threads=auto`` chooses for the model here, and its ratio is that count's time
over the best count's. ``--mode runs`` times whole ``bvc run convnet`` runs instead:

for each load (``--loads``: how many ``python3 -c "while True: pass"`` run beside), each
model and dataset, one ``bvc run convnet`` per thread setting (``--threads``, in turn,
each in a fresh runs folder), timed as a whole (wall) and by its training time. The
settings of one (load, model, dataset) cell run back to back, so their ratios compare
like with like on a machine whose other load drifts; the load average (``uptime``'s
one-minute figure) is printed beside every time. The last column is auto's training
time over the best fixed count's (the target: at most 1.1, never above 1.3).

    PYTHONPATH=. python3 benchmarks/bench_threads.py --loads 0,1,2 --repeats 3
    PYTHONPATH=. python3 benchmarks/bench_threads.py --mode runs --loads 0,1,2 --epochs 2 \\
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

from bovw_vs_convnet.threads import ThreadChoice

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


CHILD = """
import json, statistics, sys, time
from bovw_vs_convnet.threads import passive_waiting
passive_waiting()
import torch
from bovw_vs_convnet.convnet.models import create_model, get_model_spec
model_name, repeats, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
spec = get_model_spec(model_name)
torch.manual_seed(0)
model = create_model(model_name, num_classes=10, in_channels=1)
channels, side = spec.fixed_channels or 1, spec.input_size
x, y = torch.randn(128, channels, side, side), torch.randint(0, 10, (128,))
opt = torch.optim.AdamW(model.parameters(), 1e-3)
def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
times = {1: [], 2: []}
for _ in range(repeats):
    for threads in (1, 2):
        torch.set_num_threads(threads)
        step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times[threads].append(1000 * (time.perf_counter() - t0) / steps)
print(json.dumps({t: statistics.median(v) for t, v in times.items()}))
"""


def step_ms(model: str, repeats: int, steps: int) -> dict[int, float]:
    """Median milliseconds per training step of ``model`` at 1 and 2 threads, one process.

    The counts alternate (1, 2, 1, 2, ...) ``repeats`` times in the same process, so that
    a drift in the machine's other load hits both alike.
    """
    command = [sys.executable, "-c", CHILD, model, str(repeats), str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    medians = json.loads(done.stdout.strip().splitlines()[-1])
    return {int(t): float(ms) for t, ms in medians.items()}


def auto_count(model: str) -> ThreadChoice:
    """What threads=auto chooses for ``model`` in this process (a grayscale set)."""
    from bovw_vs_convnet.convnet.device import choose_run_threads
    from bovw_vs_convnet.convnet.models import get_model_spec

    return choose_run_threads("auto", get_model_spec(model), 1)


def steps_row(load: int, model: str, args: argparse.Namespace) -> str:
    """One markdown row of the steps mode: ms per step at 1 and 2 threads, auto's ratio."""
    before = load_average()
    median = step_ms(model, args.repeats, args.steps)
    loads = [before, load_average()]
    auto = auto_count(model)
    ratio = median[min(auto.n, 2)] / min(median.values())
    gain = median[1] / median[2]
    return (
        f"| {load} busy | {model} | {median[1]:.1f} | {median[2]:.1f} | {gain:.2f} "
        f"| {auto.n} | {ratio:.2f} | {min(loads):.1f}-{max(loads):.1f} |"
    )


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
    parser.add_argument("--mode", choices=("steps", "runs"), default="steps")
    parser.add_argument("--loads", default="0,1,2", help="busy processes beside, in turn")
    parser.add_argument("--models", default="lenet5,lenet5-1998,alexnet-small")
    parser.add_argument("--datasets", default="digits,fashion-mnist", help="runs mode")
    parser.add_argument("--threads", default="1,2,auto", help="runs mode")
    parser.add_argument("--epochs", type=int, default=2, help="runs mode")
    parser.add_argument("--train-size", type=int, default=2000, help="runs mode, not digits")
    parser.add_argument("--repeats", type=int, default=3, help="steps mode")
    parser.add_argument("--steps", type=int, default=20, help="steps mode: timed steps")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, mode {args.mode}")
    if args.mode == "steps":
        print(
            "| load | model | 1 thread (ms/step) | 2 threads (ms/step) | 1 / 2 | auto | "
            "auto / best | load average |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---|")
    else:
        columns = " | ".join(f"threads={t}: train / wall" for t in args.threads.split(","))
        print(f"| load | model | dataset | {columns} | auto / best |")
        print("|---|---|---|" + "---:|" * (len(args.threads.split(",")) + 1))
    for busy_count in (int(x) for x in args.loads.split(",")):
        busy = [subprocess.Popen(BUSY) for _ in range(busy_count)]
        try:
            for model in args.models.split(","):
                if args.mode == "steps":
                    print(steps_row(busy_count, model, args), flush=True)
                    continue
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
