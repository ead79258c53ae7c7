"""Figures of stored runs (matplotlib, Agg backend), saved as PNG and SVG.

Each ``*_figure`` function takes plain numbers (not records) and returns a
matplotlib ``Figure``; :func:`save_figure` writes it as ``STEM.png`` and
``STEM.svg``. The report gathers the numbers from the store.

- :func:`error_vs_train_size_figure`: top-1 error against training-set size
  (log x axis), one line per pipeline, mean ± std over seeds, crossover marked.
- :func:`confusion_matrix_figure`: row-normalised confusion matrix.
- :func:`learning_curves_figure`: a ConvNet's loss and error per epoch.
- :func:`error_vs_time_figure`: error against training time with the Pareto front.
- :func:`conv_filters_figure`: the first-layer convolution filters of a ConvNet.

Nothing here reads a pipeline's internals: the filters come from the array the ConvNet
pipeline saves in its run folder (``first_layer_filters.npy``), the curves from its record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import numpy as np
from matplotlib.figure import Figure

from bovw_vs_convnet.harness.crossover import Crossover, format_size

# svg text stays text (searchable, small); a fixed hash salt keeps SVG output reproducible
matplotlib.rcParams["svg.fonttype"] = "none"
matplotlib.rcParams["svg.hashsalt"] = "bovw_vs_convnet"


def save_figure(fig: Figure, stem: Path | str, *, dpi: int = 110) -> tuple[Path, Path]:
    """Write ``fig`` as ``STEM.png`` and ``STEM.svg``; return both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=dpi, bbox_inches="tight")
    fig.savefig(svg, bbox_inches="tight", metadata={"Date": None})
    return png, svg


def error_vs_train_size_figure(
    curves: Mapping[str, Mapping[int, Sequence[float]]],
    *,
    crossover: Crossover | None = None,
    title: str = "Top-1 error against training-set size",
) -> Figure:
    """One line per pipeline: mean top-1 error (in %) over seeds at each size, ± std bars.

    Args:
        curves: label → training-set size → the errors (fractions) of its seeds.
        crossover: when given and it crosses, a vertical line at the estimated size.
        title: the axes title.
    """
    if not curves:
        raise ValueError("no curve to plot")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    for label, points in curves.items():
        sizes = sorted(points)
        mean = [100 * float(np.mean(points[n])) for n in sizes]
        std = [100 * float(np.std(points[n])) for n in sizes]
        ax.errorbar(sizes, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("top-1 error (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if crossover is not None and crossover.size is not None:
        ax.axvline(crossover.size, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(
            f"crossover ≈ {format_size(crossover.size)}",
            xy=(crossover.size, 0.95),
            xycoords=("data", "axes fraction"),
            ha="center",
            fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.6"},
        )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def confusion_matrix_figure(
    confusion: np.ndarray,
    class_names: Sequence[str],
    *,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> Figure:
    """Heat map of a (C, C) confusion matrix, rows true class, columns predicted.

    With ``normalize`` each row is divided by its count (a row of zeros stays zero);
    non-zero cells are annotated when there are at most 12 classes.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(
            f"confusion must be (C, C) with C = {len(class_names)} classes, got {cm.shape}"
        )
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    c = cm.shape[0]
    side = min(8.0, 2.0 + 0.3 * c)
    fig = Figure(figsize=(side + 0.8, side))
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(c)
    ax.set_xticks(ticks, labels=list(class_names), rotation=90 if c > 6 else 0, fontsize=7)
    ax.set_yticks(ticks, labels=list(class_names), fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if c <= 12:
        for i in range(c):
            for j in range(c):
                v = cm[i, j]
                if v == 0:
                    continue  # blank cells read faster than a grid of zeros
                text = f"{v:.2f}" if normalize else f"{int(v)}"
                color = "white" if v > 0.5 * (cm.max() or 1) else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=6, color=color)
    fig.tight_layout()
    return fig


def learning_curves_figure(
    history: Mapping[str, Sequence[float]], *, title: str = "Learning curves"
) -> Figure:
    """Per-epoch series: losses on the left panel, errors (fractions, shown in %) on the right.

    ``history`` maps a series name (``train_loss``, ``val_err``, ...) to one value
    per epoch; names containing ``loss`` go left, the others right.
    """
    losses = {k: v for k, v in history.items() if "loss" in k}
    others = {k: v for k, v in history.items() if "loss" not in k}
    if not losses and not others:
        raise ValueError("empty history")
    fig = Figure(figsize=(8.0, 3.4))
    panels = [(losses, "loss", 1.0), (others, "error (%)", 100.0)]
    panels = [p for p in panels if p[0]]
    for i, (series, ylabel, scale) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for name, values in series.items():
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, scale * np.asarray(values, dtype=float), marker=".", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def pareto_front(seconds: Sequence[float], errors: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both time and error, fastest first.

    A point is on the front when every faster point has a strictly higher error.
    """
    order = sorted(range(len(seconds)), key=lambda i: (seconds[i], errors[i]))
    front: list[int] = []
    best = math.inf
    for i in order:
        if errors[i] < best:
            front.append(i)
            best = errors[i]
    return front


def error_vs_time_figure(
    labels: Sequence[str],
    seconds: Sequence[float],
    errors: Sequence[float],
    *,
    title: str = "Top-1 error against training time",
) -> Figure:
    """Scatter of training time (log x) against top-1 error, the Pareto front drawn as steps."""
    if not (len(labels) == len(seconds) == len(errors)) or not labels:
        raise ValueError("labels, seconds and errors must be non-empty and of equal length")
    t = np.maximum(np.asarray(seconds, dtype=float), 1e-3)
    e = 100 * np.asarray(errors, dtype=float)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    ax.scatter(t, e, color="tab:blue", zorder=3)
    for label, x, y in zip(labels, t, e, strict=True):
        ax.annotate(label, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    front = pareto_front(list(t), list(e))
    ax.step(t[front], e[front], where="post", color="tab:red", label="Pareto front", zorder=2)
    ax.scatter(t[front], e[front], s=90, facecolors="none", edgecolors="tab:red", zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("training time (s, log scale)")
    ax.set_ylabel("top-1 error (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def conv_filters_figure(weights: np.ndarray, *, title: str = "First-layer filters") -> Figure:
    """A grid of first-layer convolution filters, shape (out, in, kh, kw).

    Three input channels are shown as RGB, otherwise the mean over input channels
    in grey; each filter is scaled to [0, 1] on its own.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"filters must be (out, in, kh, kw), got shape {w.shape}")
    n = w.shape[0]
    cols = min(n, 16)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(0.6 * cols + 0.4, 0.6 * rows + 0.6))
    for k in range(n):
        ax = fig.add_subplot(rows, cols, k + 1)
        f = w[k]
        img = np.transpose(f, (1, 2, 0)) if f.shape[0] == 3 else f.mean(axis=0)
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img, cmap=None if img.ndim == 3 else "gray", interpolation="nearest")
        ax.set_axis_off()
    fig.suptitle(title)
    return fig
