"""The figures of a dataset's section of the report: which runs each one shows.

:func:`dataset_figures` picks the numbers (from :mod:`~bovw_vs_convnet.harness.analysis`
and the leaderboard tables), :mod:`~bovw_vs_convnet.harness.figures` draws them,
and :class:`FigureWriter` writes each as PNG and SVG under ``figures/`` and keeps
the SVG for the page to embed. Figures come from records and from the artefacts a
pipeline saved in its run folder: the BoVW galleries are embedded as they are, the
ConvNet's first-layer filters (an array) are drawn.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bovw_vs_convnet.harness import figures
from bovw_vs_convnet.harness.analysis import (
    BOVW_PIPELINES,
    RIVALS,
    crossover_of,
    learning_history,
    training_size_curves,
)
from bovw_vs_convnet.harness.leaderboard import LeaderboardRow, LeaderboardTable, build_tables
from bovw_vs_convnet.harness.record import RunRecord

log = logging.getLogger(__name__)

# the array of first-layer filters a ConvNet run leaves (convnet/pipeline.py: save_artifacts)
FILTERS_ARTIFACT = "first_layer_filters.npy"


@dataclass
class Figure:
    """A figure of the report: a title, a caption and the embedded image."""

    anchor: str
    title: str
    caption: str
    mime: str
    data: bytes
    files: list[Path] = field(default_factory=list)

    def to_html(self) -> str:
        """An ``<figure>`` with the image as a data URI.

        Drawings (SVG) fill their column of the page's figure grid; a raster image (a
        pipeline's PNG) is shown at least 20em wide, its pixels kept sharp (the
        report's style).
        """
        uri = f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"
        raster = ' class="raster"' if self.mime == "image/png" else ""
        return (
            f'<figure id="{html.escape(self.anchor)}"{raster}>'
            f'<img src="{uri}" alt="{html.escape(self.title)}">'
            f"<figcaption><b>{html.escape(self.title)}.</b> {html.escape(self.caption)}"
            "</figcaption></figure>"
        )


def _files(record: RunRecord, suffixes: Sequence[str]) -> list[Path]:
    """The files of a run's folder with one of ``suffixes``, sorted; none without a folder."""
    run_dir = record.get("run_dir")
    if not run_dir or not Path(run_dir).is_dir():
        return []
    folder = Path(run_dir)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


class FigureWriter:
    """Writes figures to ``folder`` (PNG and SVG) and keeps their SVG for embedding."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def add(self, fig: Any, name: str, title: str, caption: str) -> Figure:
        """Write ``fig`` as ``figures/NN-NAME.{png,svg}`` (NN: its place on the page)."""
        self.count += 1
        stem = self.folder / f"{self.count:02d}-{slug(name)}"
        png, svg = figures.save_figure(fig, stem)
        return Figure(stem.name, title, caption, "image/svg+xml", svg.read_bytes(), [png, svg])


def slug(text: str) -> str:
    """``text`` as a file name and an HTML anchor: lower case, letters and digits, dashes."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60] or "figure"


def dataset_figures(
    records: list[RunRecord], writer: FigureWriter, dataset: str
) -> tuple[list[Figure], list[str]]:
    """The figures of one dataset and the crossover statements found on the way.

    Error against size comes first (one figure per curve group); the others use the
    table with the most training images: error against time, then the confusion
    matrix of each pipeline's best row, then the learning curves and first-layer
    filters of every row whose first run recorded them (``convnet``, ``dbn``; a
    ``convnet-features`` run trains no network and has none), and the BoVW family's
    own images, each from a row's first run.
    """
    ok = [r for r in records if r.get("status", "ok") == "ok" and r.get("top1_err") is not None]
    out, statements = _size_figures(ok, writer, dataset)
    tables = [t for t in build_tables(ok, significance=False) if t.rows]
    if not tables:
        return out, statements
    largest = max(tables, key=lambda t: (max(r.n_train or 0 for r in t.rows), len(t.rows)))
    out += _time_figure(largest, writer, dataset)
    by_id = {r["run_id"]: r for r in ok}
    row_runs = [(row, [by_id[i] for i in row.run_ids if i in by_id]) for row in largest.rows]
    seen_pipelines: set[str] = set()
    for row, runs in row_runs:  # ranked best first: the best row of each pipeline
        if row.pipeline not in seen_pipelines:
            seen_pipelines.add(row.pipeline)
            with_cm = [r for r in runs if r.get("confusion") and r.get("class_names")]
            out += [_confusion_figure(row, r, writer, dataset) for r in with_cm[:1]]
    for row, runs in row_runs:  # what a trained network left: the ConvNets', the DBN's
        for r in runs[:1]:
            out += _training_figures(row, r, writer, dataset)
    for row, runs in row_runs:
        if row.pipeline in BOVW_PIPELINES:
            for r in runs[:1]:
                out += _pipeline_images(row, r, dataset)
    return out, statements


def _size_figures(
    ok: list[RunRecord], writer: FigureWriter, dataset: str
) -> tuple[list[Figure], list[str]]:
    """Error against training-set size per curve group, with the crossover when there is one."""
    out: list[Figure] = []
    statements: list[str] = []
    for all_curves in training_size_curves(ok).values():
        # a row measured at one size is a point in the tables, not a curve
        curves = {name: points for name, points in all_curves.items() if len(points) >= 2}
        if not curves:
            continue
        # the ConvNet family's crossover is drawn; each rival's is said (analysis.RIVALS)
        crosses = {rival: crossover_of(curves, rival) for rival in RIVALS}
        cross = crosses["ConvNet"]
        caption = "Mean top-1 error over seeds, bars ± one standard deviation; nested subsets."
        for found in crosses.values():
            if found is not None:
                statements.append(found.statement)
                caption += " " + found.statement
        fig = figures.error_vs_train_size_figure(
            curves, crossover=cross, title=f"{dataset}: top-1 error against training-set size"
        )
        out.append(
            writer.add(fig, f"{dataset}-error-vs-size", "Error against training-set size", caption)
        )
    return out, statements


def _time_figure(table: LeaderboardTable, writer: FigureWriter, dataset: str) -> list[Figure]:
    """Error against training time of a table's rows, when two or more have both."""
    timed = [r for r in table.rows if r.train_seconds is not None and r.top1_err is not None]
    if len(timed) < 2:
        return []
    fig = figures.error_vs_time_figure(
        [r.name for r in timed],
        [float(r.train_seconds or 0.0) for r in timed],
        [float(r.top1_err or 0.0) for r in timed],
        title=f"{dataset}: top-1 error against training time",
    )
    caption = (
        f"One point per row of the table with {table.rows[0].n_train} training images; "
        "the red steps join the rows no other row beats on both time and error."
    )
    return [writer.add(fig, f"{dataset}-error-vs-time", "Error against training time", caption)]


def _confusion_figure(
    row: LeaderboardRow, r: RunRecord, writer: FigureWriter, dataset: str
) -> Figure:
    """The confusion matrix of one of a row's runs (a record with ``confusion``)."""
    fig = figures.confusion_matrix_figure(
        np.asarray(r.get("confusion"), dtype=float),
        r.get("class_names") or [],
        title=f"{row.name} (seed {r.get('seed')})",
    )
    return writer.add(
        fig,
        f"{dataset}-confusion-{row.name}",
        f"Confusion matrix of {row.name}",
        f"Run {r['run_id']}; rows are true classes, normalised to sum to 1.",
    )


def _training_figures(
    row: LeaderboardRow, r: RunRecord, writer: FigureWriter, dataset: str
) -> list[Figure]:
    """A run's learning curves (its record) and the first-layer filters it saved, if any."""
    out: list[Figure] = []
    history = learning_history(r)
    if history:
        fig = figures.learning_curves_figure(history, title=f"{row.name}: learning curves")
        out.append(
            writer.add(
                fig,
                f"{dataset}-curves-{row.name}",
                f"Learning curves of {row.name}",
                f"Run {r['run_id']}, per epoch.",
            )
        )
    weights = saved_filters(r)
    if weights is not None:
        fig = figures.conv_filters_figure(weights, title=f"{row.name}: first-layer filters")
        out.append(
            writer.add(
                fig,
                f"{dataset}-filters-{row.name}",
                f"First-layer filters of {row.name}",
                f"{weights.shape[0]} filters of {weights.shape[2]}×{weights.shape[3]} "
                f"saved by run {r['run_id']}.",
            )
        )
    return out


def saved_filters(record: RunRecord) -> np.ndarray | None:
    """The first-layer filters a ConvNet run saved, (out, in, kh, kw); None without them.

    Runs stored before the pipeline saved them have none, and a file that does not
    read as a 4-d array costs its figure only (with a warning), never the report.
    """
    run_dir = record.get("run_dir")
    path = Path(run_dir) / FILTERS_ARTIFACT if run_dir else None
    if path is None or not path.is_file():
        return None
    try:
        weights = np.load(path, allow_pickle=False)
    except Exception as exc:  # truncated, foreign, pickled: one figure less
        log.warning("no filters from %s: %s", path, exc)
        return None
    if weights.ndim != 4:
        log.warning("no filters from %s: shape %s is not (out, in, kh, kw)", path, weights.shape)
        return None
    return np.asarray(weights)


def _pipeline_images(row: LeaderboardRow, r: RunRecord, dataset: str) -> list[Figure]:
    """The first two PNGs a pipeline saved in its run folder (the BoVW galleries), as they are."""
    return [
        Figure(
            slug(f"{dataset}-{row.name}-{png.stem}"),
            f"{row.name}: {png.stem.replace('_', ' ')}",
            f"Saved by the pipeline in run {r['run_id']}.",
            "image/png",
            png.read_bytes(),
            [png],
        )
        for png in _files(r, (".png",))[:2]
    ]
