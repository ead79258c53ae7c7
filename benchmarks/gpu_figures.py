"""Figures and a summary table from the files ``gpu_check.sh`` leaves in its output folder.

Reads ``run_*.json`` (``bvc run --json`` records) and ``bench_*.json``; writes
``learning_curves.png``, ``throughput.png`` and ``summary.md`` into the same folder.

    python benchmarks/gpu_figures.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _last_json(path: Path) -> dict[str, Any] | None:
    """The last line of ``path`` that parses as a JSON object (scripts print text before it)."""
    if not path.is_file():
        return None
    for line in reversed(path.read_text().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def main(out: Path) -> None:
    """Write the figures and summary for the folder ``out``."""
    runs = {p.stem[4:]: r for p in sorted(out.glob("run_*.json")) if (r := _last_json(p))}
    lines = [
        "| model | epochs | top1_err | top5_err | train s | train images/s | device |",
        "|---|---|---|---|---|---|---|",
    ]
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in runs.items():
        extra = r.get("extra", {})
        curve = extra.get("learning_curve", {})
        ep = curve.get("epoch", [])
        if ep:
            ax_loss.plot(ep, curve.get("train_loss", []), label=name)
            if curve.get("val_error"):
                ax_err.plot(ep, [100 * e for e in curve["val_error"]], label=name)
        rate = extra.get("train_images_per_s") or 0
        lines.append(
            f"| {r.get('model')} | {extra.get('epochs_run')} | {r.get('top1_err', 0):.4f} "
            f"| {r.get('top5_err', 0):.4f} | {r.get('train_seconds', 0):.1f} | {rate:,.0f} "
            f"| {r.get('device')} |"
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
    for p in sorted(out.glob("bench_*.json")):
        b = _last_json(p)
        if not b:
            continue
        lines.append("")
        lines.append(f"{p.stem}: `{json.dumps(b)}`")
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
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
