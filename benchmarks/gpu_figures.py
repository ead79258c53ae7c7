"""The GPU check's one JSON and its figures: what ``gpu_check.sh`` brings back.

    python3 benchmarks/gpu_figures.py env                    # JSON: torch, CUDA, the GPU, git
    python3 benchmarks/gpu_figures.py add JSON NAME STATUS SECONDS OUTPUT   # fold in a step
    python3 benchmarks/gpu_figures.py figures OUT_DIR        # summary.md and two PNGs

``add`` rewrites ``gpu_check.json`` whole after every step, through a temporary file
and an atomic rename, so that the script, killed at any moment, leaves a JSON that
parses and holds every finished step. A step's figures are the last JSON object its
output printed (the benchmarks print the result so far after each measurement, so a
time-out keeps the earlier ones); a run record is cut down to the figures the summary
uses. ``figures`` reads that JSON and writes ``summary.md``, ``learning_curves.png``
and ``throughput.png`` beside it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

JSON_NAME = "gpu_check.json"
RECORD_KEYS = (
    "run_id", "model", "dataset", "n_train", "n_test", "top1_err", "top5_err",
    "train_seconds", "infer_seconds", "n_params", "device", "config_key",
)  # fmt: skip
EXTRA_KEYS = (
    "epochs_run", "best_epoch", "train_images_per_s", "learning_curve", "amp", "amp_reason",
    "capability", "gpu", "grad_scaler", "compiled", "compile_error", "data_path",
)  # fmt: skip


def last_json(text: str) -> dict[str, Any] | list[Any] | None:
    """The last line of ``text`` that parses as a JSON object or array (text may surround it)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, (dict, list)):
                return obj
    return None


def slim(result: dict[str, Any] | list[Any]) -> dict[str, Any] | list[Any]:
    """A ``bvc run --json`` record cut to the summary's figures; anything else as it is."""
    if not isinstance(result, dict) or "run_id" not in result or "top1_err" not in result:
        return result
    out = {k: result.get(k) for k in RECORD_KEYS}
    extra = result.get("extra") or {}
    out["extra"] = {k: extra.get(k) for k in EXTRA_KEYS if k in extra}
    prov = result.get("provenance") or {}
    out["provenance"] = {k: prov.get(k) for k in ("device", "gpu")}
    return out


def load(path: Path) -> dict[str, Any]:
    """The check's JSON so far (an empty one when absent)."""
    if path.is_file():
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            return data
    return {"format": 1, "steps": {}}


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


def add_step(path: Path, name: str, status: str, seconds: float, output: Path) -> None:
    """Fold step ``name`` (its status, seconds and printed figures) into the JSON at ``path``."""
    data = load(path)
    text = output.read_text(errors="replace") if output.is_file() else ""
    result = last_json(text)
    step: dict[str, Any] = {"status": status, "seconds": seconds}
    step["result"] = slim(result) if result is not None else None
    if result is None:  # what it printed instead, for the reader of a failure
        step["tail"] = [line[:300] for line in text.splitlines()[-3:]]
    data.setdefault("steps", {})[name] = step
    write_atomically(path, data)


def environment() -> dict[str, Any]:
    """torch, torchvision, CUDA, the GPU and what ``amp=auto`` picks there; git; nvidia-smi.

    torchvision's version is read from its files: importing it would take longer than
    the rest of this step, which runs under the script's shortest limit.
    """
    import torch

    from bovw_vs_convnet.convnet.device import resolve_runtime

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": _torchvision_version(),
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "arch_list": list(torch.cuda.get_arch_list()) if torch.cuda.is_available() else [],
        "dry_run": os.environ.get("GPU_CHECK_DRY") == "1",
    }
    runtime = resolve_runtime("auto", "auto")
    info["runtime"] = {"device": str(runtime.device), **runtime.describe()}
    for key, cmd in (("git", ["git", "rev-parse", "HEAD"]), ("nvidia_smi", ["nvidia-smi", "-L"])):
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True)
            info[key] = run.stdout.strip()[:500]
        except (OSError, subprocess.SubprocessError):
            info[key] = None
    return info


def _torchvision_version() -> str | None:
    """torchvision's ``__version__``, without importing torchvision; None when not installed.

    Read from its ``version.py``, which keeps the local tag (``0.29.1+cu130``) that the
    installed metadata may leave out; the metadata's version when that file has none.
    """
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).with_name("version.py")
    text = path.read_text() if path.is_file() else ""
    found = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return found.group(1) if found else metadata.version("torchvision")


def _steps(data: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    return {
        name[len(prefix) :]: step["result"]
        for name, step in data.get("steps", {}).items()
        if name.startswith(prefix) and isinstance(step.get("result"), dict)
    }


def figures(out: Path) -> list[str]:
    """Write ``summary.md``, ``learning_curves.png`` and ``throughput.png``; the summary's lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = load(out / JSON_NAME)
    lines = ["| step | status | seconds |", "|---|---|---|"]
    for name, step in data.get("steps", {}).items():
        lines.append(f"| {name} | {step.get('status')} | {step.get('seconds')} |")
    lines += [
        "",
        "| model | epochs | top1_err | top5_err | train s | train images/s | device | amp |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in _steps(data, "run_").items():
        extra = r.get("extra") or {}
        curve = extra.get("learning_curve") or {}
        ep = curve.get("epoch", [])
        if ep:
            ax_loss.plot(ep, curve.get("train_loss", []), label=name)
            if curve.get("val_error"):
                ax_err.plot(ep, [100 * e for e in curve["val_error"]], label=name)
        rate = extra.get("train_images_per_s") or 0
        lines.append(
            f"| {r.get('model')} | {extra.get('epochs_run')} | {r.get('top1_err') or 0:.4f} "
            f"| {r.get('top5_err') or 0:.4f} | {r.get('train_seconds') or 0:.1f} | {rate:,.0f} "
            f"| {r.get('device')} | {extra.get('amp')} |"
        )
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="Training loss")
    ax_err.set(xlabel="epoch", ylabel="validation error (%)", title="Validation error")
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=120)
    plt.close(fig)

    bars: dict[str, float] = {}
    for name, b in _steps(data, "bench_").items():
        lines += ["", f"bench_{name}: `{json.dumps(b)}`"]
        if "img_s" in b:  # bench_alexnet
            for k, v in b["img_s"].items():
                bars[f"alexnet 227px\n{k}"] = sum(v) / len(v)
        elif "canonical_img_s" in b:  # bench_trainer
            m = b["model"]
            bars[f"{m}\ncanonical"] = sum(b["canonical_img_s"]) / len(b["canonical_img_s"])
            bars[f"{m}\ntrainer"] = sum(b["trainer_img_s"]) / len(b["trainer_img_s"])
    if bars:
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(bars)), 4))
        ax.bar(list(bars), list(bars.values()), color="tab:blue")
        ax.set(ylabel="training images/s", title="Training throughput (same run)")
        ax.set_yscale("log")
        for i, v in enumerate(bars.values()):
            ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=120)
        plt.close(fig)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return lines


def main(argv: list[str]) -> None:
    """Dispatch ``env``, ``add`` or ``figures`` (see the module docstring)."""
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "env":
        print(json.dumps(environment()))
    elif command == "add" and len(args) == 5:
        add_step(Path(args[0]), args[1], args[2], float(args[3]), Path(args[4]))
    elif command == "figures" and len(args) == 1:
        print("\n".join(figures(Path(args[0]))))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
