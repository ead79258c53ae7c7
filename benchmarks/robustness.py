"""The robustness bench (issue 23, item 6): each pipeline's defaults on folders nobody tuned.

For every named folder of ``robustness_folders.py`` and every pipeline (raw pixels,
HOG, BoVW, lenet5, alexnet-small), the bench

1. runs the pipeline's default (``bvc run ... --dataset FOLDER --json``, no ``--set``)
   on the folder drawn with the reported seed;
2. sweeps a few settings (the default and 2-3 others: the baseline's C, HOG's cell
   side, BoVW's preset, the ConvNets' learning rate ×3 and ÷3) on the folder drawn
   with another seed of the same generator, and takes the best by top-1 there;
3. runs that best setting on the reported seed (when it is not the default),

and writes a Markdown table: default top-1/top-5 (``†`` where the record says
``learned: false``), chance, the sweep's best setting and its top-1 on the reported
seed, default − best, the commit and the load. Each finished run is appended to a
JSON-lines ledger beside ``--out``, so a rerun continues where the last one stopped
and ``--render`` rebuilds the table from what finished.

The runs use a snapshot of the repository's HEAD (``git archive`` into the scratch
folder, on ``PYTHONPATH``), so uncommitted edits in the working tree do not leak into a
row, and each row names the commit it ran at. Usage::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/robustness.py --scale small \\
        --folders photo glyphs-hard --pipelines bovw lenet5 --out RESULTS.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PIPELINES: dict[str, list[str]] = {
    "baseline": ["baseline"],
    "hog": ["hog"],
    "bovw": ["bovw"],
    "lenet5": ["convnet", "--model", "lenet5"],
    "alexnet-small": ["convnet", "--model", "alexnet-small"],
}
DEFAULT = "default"


def _generator() -> ModuleType:
    """``robustness_folders``, loaded from beside this file (benchmarks/ is no package)."""
    name = "robustness_folders"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError("benchmarks/robustness_folders.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def scaled(factors: Any, scale: str) -> Any:
    """A folder's factors at ``scale``: tiny (8 + 5 a class, a smoke test), small (as
    named), full (62 and 100 classes at 30 + 30 a class, as the others)."""
    if scale == "tiny":
        return replace(factors, train=min(factors.train, 8), test=min(factors.test, 5))
    if scale == "full" and factors.source != "digits" and factors.style == "compose":
        return replace(factors, train=30, test=30)
    return factors


def sweep_settings(pipeline: str, record: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The settings swept beside the default, derived from the default's record."""
    cfg, extra = record.get("config", {}), record.get("extra", {})
    if pipeline == "baseline":
        return [
            ("C=0.001", ["C=0.001"]),
            ("C=0.1", ["C=0.1"]),
            ("standardize=pixel", ["standardize=pixel"]),
        ]
    if pipeline == "hog":
        cell = int(extra.get("cell") or 8)
        return [(f"cell={c}", [f"cell={c}"]) for c in sorted({max(2, cell // 2), cell * 2})]
    if pipeline == "bovw":
        used = cfg.get("preset")
        return [(f"preset={p}", [f"preset={p}"]) for p in ("small", "photo", "fisher") if p != used]
    lr = float(cfg.get("lr") or 0.002)
    return [(f"lr={lr * 3:.3g}", [f"lr={lr * 3:.3g}"]), (f"lr={lr / 3:.3g}", [f"lr={lr / 3:.3g}"])]


@dataclass
class Bench:
    """Where the bench works and what it has measured so far (the ledger)."""

    scale: str
    seed: int
    sweep_seed: int
    work: Path
    ledger: Path
    src: Path
    commit: str
    max_run_s: float
    deadline: dt.datetime | None
    done: dict[str, dict[str, Any]]
    lock: threading.Lock

    def folder(self, name: str, seed: int) -> Path:
        """The folder ``name`` drawn with ``seed`` at this scale (written when missing)."""
        path = self.work / "folders" / f"{name}-{self.scale}-{seed}"
        with self.lock:
            if not (path / "generator.json").exists():
                gen = _generator()
                gen.write_folder(path, scaled(gen.FOLDERS[name], self.scale), seed)
        return path

    def run(
        self, name: str, seed: int, pipeline: str, label: str, sets: list[str]
    ) -> dict[str, Any]:
        """One ``bvc run`` (or its ledger entry): top-1, top-5, learned, time and load."""
        key = f"{name}|{seed}|{pipeline}|{label}"
        if key in self.done:
            return self.done[key]
        if self.deadline and dt.datetime.now(dt.UTC) > self.deadline:
            return {"key": key, "status": "not run (deadline)"}
        folder = self.folder(name, seed)
        cmd = [sys.executable, "-m", "bovw_vs_convnet", "run", *PIPELINES[pipeline]]
        cmd += ["--dataset", str(folder), "--json", "--progress", "none"]
        cmd += ["--runs-dir", str(self.work / "runs")]
        for s in sets:
            cmd += ["--set", s]
        entry = self._execute(cmd, key)
        entry.update(folder=name, seed=seed, pipeline=pipeline, label=label, sets=sets)
        entry["command"] = "bvc " + " ".join(cmd[3:]).replace(str(self.work), "WORK")
        with self.lock:
            self.done[key] = entry
            with self.ledger.open("a") as fh:
                fh.write(json.dumps(entry) + "\n")
        return entry

    def _execute(self, cmd: list[str], key: str) -> dict[str, Any]:
        env = dict(os.environ, PYTHONPATH=str(self.src))
        load0, t0 = os.getloadavg()[0], time.monotonic()
        print(f"[{time.strftime('%H:%M:%S')}] start {key}", flush=True)
        try:
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=self.max_run_s, cwd=self.work
            )
        except subprocess.TimeoutExpired:
            return {"key": key, "status": f"not measured (over {self.max_run_s:.0f} s)"}
        wall, load1 = time.monotonic() - t0, os.getloadavg()[0]
        base = {"key": key, "commit": self.commit, "wall_s": round(wall, 1)}
        base["load"] = [round(load0, 1), round(load1, 1)]
        print(f"[{time.strftime('%H:%M:%S')}] done {key} in {wall:.0f} s", flush=True)
        try:
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return base | {
                "status": f"failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
            }
        return base | _summary(rec)

    def chain(self, name: str, pipeline: str) -> None:
        """The default on both seeds, the sweep on the sweep seed, the best on the reported."""
        self.run(name, self.seed, pipeline, DEFAULT, [])
        ref = self.run(name, self.sweep_seed, pipeline, DEFAULT, [])
        if "top1_err" not in ref:
            return
        for label, sets in sweep_settings(pipeline, ref):
            self.run(name, self.sweep_seed, pipeline, label, sets)
        best = self.best(name, pipeline)
        if best and best["label"] != DEFAULT:
            self.run(name, self.seed, pipeline, best["label"], best["sets"])

    def best(self, name: str, pipeline: str) -> dict[str, Any] | None:
        """The sweep's best entry (lowest top-1 on the sweep seed; the default wins ties)."""
        rows = [
            e
            for e in self.done.values()
            if e.get("folder") == name
            and e.get("seed") == self.sweep_seed
            and e.get("pipeline") == pipeline
            and "top1_err" in e
        ]
        rows.sort(key=lambda e: (e["top1_err"], e["label"] != DEFAULT))
        return rows[0] if rows else None


def _summary(rec: dict[str, Any]) -> dict[str, Any]:
    """What the table needs from a run record."""
    extra = rec.get("extra", {})
    keep = ("input_size", "preset", "cell", "rescues", "C", "aspect", "mirror_check")
    return {
        "status": rec.get("status", "ok"),
        "run_id": rec.get("run_id"),
        "top1_err": rec.get("top1_err"),
        "top5_err": rec.get("top5_err"),
        "learned": rec.get("learned"),
        "n_classes": rec.get("n_classes"),
        "n_train": rec.get("n_train"),
        "n_test": rec.get("n_test"),
        "train_seconds": rec.get("train_seconds"),
        "config": rec.get("config"),
        "extra": {k: extra[k] for k in keep if k in extra},
    }


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def chance_p(entry: dict[str, Any] | None) -> float | None:
    """One-sided exact binomial p that the test part's top-1 beats 1/classes by luck."""
    if not entry or entry.get("top1_err") is None or not entry.get("n_test"):
        return None
    from scipy.stats import binomtest

    n = int(entry["n_test"])
    right = n - round(entry["top1_err"] * n)
    return float(binomtest(right, n, 1.0 / entry["n_classes"], alternative="greater").pvalue)


def _cell(entry: dict[str, Any] | None) -> str:
    """``top-1 / top-5`` (``†`` when not learned) or why there is no figure."""
    if entry is None:
        return "not run"
    if "top1_err" not in entry or entry["top1_err"] is None:
        return entry.get("status", "not run")
    mark = " †" if entry.get("learned") is False else ""
    return f"{_pct(entry['top1_err'])} / {_pct(entry['top5_err'])}{mark}"


def _row(bench: Bench, name: str, p: str) -> str:
    """One Markdown row: the default, chance, the sweep, the best, the gap, commit, time."""
    d = bench.done.get(f"{name}|{bench.seed}|{p}|{DEFAULT}")
    dref = bench.done.get(f"{name}|{bench.sweep_seed}|{p}|{DEFAULT}")
    best = bench.best(name, p)
    swept = {
        e["label"]: e
        for e in bench.done.values()
        if e.get("folder") == name and e.get("seed") == bench.sweep_seed and e.get("pipeline") == p
    }
    n = (d or dref or {}).get("n_classes")
    chance = f"{100 * (1 - 1 / n):.1f}" if n else ""
    pv = chance_p(d)
    if pv is not None:
        chance += f" (p {pv:.0e})" if pv < 0.01 else f" (p {pv:.2f}: at chance)"
    b_rep = bench.done.get(f"{name}|{bench.seed}|{p}|{best['label']}") if best else None
    gap = ""
    if d and b_rep and d.get("top1_err") is not None and b_rep.get("top1_err") is not None:
        gap = f"{100 * (d['top1_err'] - b_rep['top1_err']):+.2f}"
    sweep = ", ".join(f"{lab} {_pct(e.get('top1_err')) or '–'}" for lab, e in sorted(swept.items()))
    best_txt = f"{best['label']}: {_cell(b_rep)}" if best else "not run"
    commit, when = "", ""
    if d and d.get("wall_s"):
        load = "–".join(str(x) for x in d["load"])
        commit, when = d.get("commit", ""), f"{d['wall_s']:.0f} s, load {load}"
    cells = [name, p, _cell(d), chance, sweep or "not run", best_txt, gap, commit, when]
    return "| " + " | ".join(cells) + " |"


def table_rows(bench: Bench, folders: list[str], pipelines: list[str]) -> list[str]:
    """One Markdown row per folder × pipeline, from the ledger."""
    return [_row(bench, name, p) for name in folders for p in pipelines]


def render(bench: Bench, folders: list[str], pipelines: list[str], out: Path) -> None:
    """Write the table (the ledger's runs for these folders and pipelines) to ``out``."""
    gen = _generator()
    head = [
        f"Robustness bench, scale `{bench.scale}`: reported seed {bench.seed}, sweep seed "
        f"{bench.sweep_seed}; top-1 / top-5 error % on each folder's test part; † = the "
        "record says `learned: false`; chance = 1 − 1/classes (balanced test parts). "
        'The sweep column gives each setting\'s top-1 on the sweep seed; "best" is the '
        "best of those, run on the reported seed (the default when it won); "
        "default − best is in top-1 points. Time: the default run's wall seconds and the "
        "1-minute load at its start and end. p: the one-sided exact binomial test of the "
        "default's test top-1 against chance (p ≥ 0.01: at chance).",
        "",
        "| folder | pipeline | default top-1 / top-5 | chance | sweep (top-1 on the sweep seed) "
        "| best on the reported seed | default − best | commit | default's time @ load |",
        "|---|---|---:|---:|---|---|---:|---|---|",
    ]
    base = ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(gen.BASE).items())
    lines = head + table_rows(bench, folders, pipelines) + ["", f"Folders (the base: {base}):", ""]
    for name in folders:
        f = scaled(gen.FOLDERS[name], bench.scale)
        counts = f"{f.train} train / {f.test} test a class"
        diff = ", ".join(
            f"{k} {v}" for k, v in gen.describe(f).items() if k not in ("train", "test")
        )
        lines.append(f"- `{name}`: {diff or 'the plain base'} ({counts})")
    out.write_text("\n".join(lines) + "\n")


def _snapshot(work: Path) -> tuple[Path, str]:
    """HEAD's package, manifests and benchmarks, unpacked under ``work``; and the commit."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    src = work / f"src-{commit}"
    if not (src / "bovw_vs_convnet").is_dir():
        src.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "HEAD", "bovw_vs_convnet", "data_manifests"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    return src, commit


def _load_ledger(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                e = json.loads(line)
                if "top1_err" in e:  # failed or unfinished runs are tried again
                    done[e["key"]] = e
    return done


def main(argv: list[str] | None = None) -> None:
    """Command line: generate the folders, run the chains, write the table."""
    gen = _generator()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=("tiny", "small", "full"), default="small")
    ap.add_argument(
        "--folders", nargs="+", default=list(gen.FOLDERS), help="names, in priority order"
    )
    ap.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=list(PIPELINES))
    ap.add_argument("--out", type=Path, default=Path("robustness.md"), help="the Markdown table")
    ap.add_argument(
        "--work", type=Path, default=Path("/tmp/robustness-bench"), help="folders, runs"
    )
    ap.add_argument("--seed", type=int, default=5101, help="the reported folders' generator seed")
    ap.add_argument("--sweep-seed", type=int, default=5102, help="the sweep's generator seed")
    ap.add_argument("--parallel", type=int, default=1, help="chains run side by side")
    ap.add_argument(
        "--max-run-s", type=float, default=1800.0, help="a run over this is not measured"
    )
    ap.add_argument("--deadline", help="HH:MM UTC today: no run starts after it")
    ap.add_argument("--defaults-only", action="store_true", help="only the default runs")
    ap.add_argument("--no-sweep", nargs="*", default=[], help="pipelines run at their default only")
    ap.add_argument("--render", action="store_true", help="only rewrite the table from the ledger")
    args = ap.parse_args(argv)
    unknown = [f for f in args.folders if f not in gen.FOLDERS]
    if unknown or args.seed == args.sweep_seed or 31337 in (args.seed, args.sweep_seed):
        ap.error(f"unknown folders {unknown}, or seeds equal, or 31337 (a tuned seed)")
    args.work.mkdir(parents=True, exist_ok=True)
    src, commit = _snapshot(args.work)
    deadline = None
    if args.deadline:
        hh, mm = (int(x) for x in args.deadline.split(":"))
        deadline = dt.datetime.now(dt.UTC).replace(hour=hh, minute=mm, second=0, microsecond=0)
    ledger = args.out.with_suffix(".jsonl")
    bench = Bench(
        args.scale,
        args.seed,
        args.sweep_seed,
        args.work,
        ledger,
        src,
        commit,
        args.max_run_s,
        deadline,
        _load_ledger(ledger),
        threading.Lock(),
    )
    if not args.render:
        jobs: list[Callable[[], Any]] = []
        for name in args.folders:
            for p in args.pipelines:
                if args.defaults_only or p in args.no_sweep:
                    jobs.append(partial(bench.run, name, bench.seed, p, DEFAULT, []))
                else:
                    jobs.append(partial(bench.chain, name, p))
        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            for fut in [pool.submit(j) for j in jobs]:
                fut.result()
    render(bench, args.folders, args.pipelines, args.out)
    print(f"wrote {args.out} (ledger {ledger}, commit {commit})")


if __name__ == "__main__":
    main()
