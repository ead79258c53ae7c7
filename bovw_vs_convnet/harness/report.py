"""``bvc report``: one self-contained HTML page of the stored runs (tables, figures, provenance).

The page embeds everything it shows (figures as base64 SVG, the BoVW galleries as
base64 PNG, styles inline), so it opens offline and can be mailed as one file.
Every figure is also written beside it as PNG and SVG under ``figures/``.

Sections, per dataset: the leaderboard tables (mean ± std over seeds, one table
per split), the ILSVRC-style table, error against training-set size with the
estimated BoVW→ConvNet crossover, error against training time with its Pareto
front, the confusion matrix of each pipeline's best row, ConvNet learning curves
and first-layer filters, BoVW visual-word galleries; then the provenance of every
run and the failed runs with their errors.

This module is how the page looks; what its tables and sentences say comes from
:mod:`bovw_vs_convnet.harness.analysis` and :mod:`bovw_vs_convnet.harness.leaderboard`.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bovw_vs_convnet.harness import figures
from bovw_vs_convnet.harness.analysis import (
    BOVW_PIPELINES,
    CONVNET_PIPELINES,
    ablation_cells,
    ablation_rows,
    crossover_of,
    learning_history,
    recipe_command,
    training_size_curves,
)
from bovw_vs_convnet.harness.formatting import MISSING, percent
from bovw_vs_convnet.harness.leaderboard import build_tables, render, row_name
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.store import ResultStore

log = logging.getLogger(__name__)

REPORT_NAME = "index.html"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


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
        """An ``<figure>`` with the image as a data URI."""
        uri = f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"
        return (
            f'<figure id="{html.escape(self.anchor)}">'
            f'<img src="{uri}" alt="{html.escape(self.title)}">'
            f"<figcaption><b>{html.escape(self.title)}.</b> {html.escape(self.caption)}"
            "</figcaption></figure>"
        )


# --------------------------------------------------------------------------- run folders


def _files(record: RunRecord, suffixes: Sequence[str]) -> list[Path]:
    """The files of a run's folder with one of ``suffixes``, sorted; none without a folder."""
    run_dir = record.get("run_dir")
    if not run_dir or not Path(run_dir).is_dir():
        return []
    folder = Path(run_dir)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


# --------------------------------------------------------------------------- building


class _FigureWriter:
    """Renders figures to ``figures/`` and keeps their SVG for embedding."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def add(self, fig: Any, slug: str, title: str, caption: str) -> Figure:
        self.count += 1
        stem = self.folder / f"{self.count:02d}-{_slug(slug)}"
        png, svg = figures.save_figure(fig, stem)
        return Figure(stem.name, title, caption, "image/svg+xml", svg.read_bytes(), [png, svg])


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60] or "figure"


def _dataset_figures(
    records: list[RunRecord], writer: _FigureWriter, dataset: str
) -> tuple[list[Figure], list[str]]:
    """The figures of one dataset and the crossover statements found on the way."""
    out: list[Figure] = []
    statements: list[str] = []
    ok = [r for r in records if r.get("status", "ok") == "ok" and r.get("top1_err") is not None]
    for all_curves in training_size_curves(ok).values():
        # a row measured at one size is a point in the tables, not a curve
        curves = {name: points for name, points in all_curves.items() if len(points) >= 2}
        if not curves:
            continue
        cross = crossover_of(curves)
        caption = "Mean top-1 error over seeds, bars ± one standard deviation; nested subsets."
        if cross is not None:
            statements.append(cross.statement)
            caption += " " + cross.statement
        fig = figures.error_vs_train_size_figure(
            curves, crossover=cross, title=f"{dataset}: top-1 error against training-set size"
        )
        out.append(
            writer.add(fig, f"{dataset}-error-vs-size", "Error against training-set size", caption)
        )

    # the remaining figures use the largest table: the most training images
    tables = [t for t in build_tables(ok) if t.rows]
    if not tables:
        return out, statements
    largest = max(tables, key=lambda t: (max(r.n_train or 0 for r in t.rows), len(t.rows)))
    timed = [r for r in largest.rows if r.train_seconds is not None and r.top1_err is not None]
    if len(timed) >= 2:
        fig = figures.error_vs_time_figure(
            [r.name for r in timed],
            [float(r.train_seconds or 0.0) for r in timed],
            [float(r.top1_err or 0.0) for r in timed],
            title=f"{dataset}: top-1 error against training time",
        )
        out.append(
            writer.add(
                fig,
                f"{dataset}-error-vs-time",
                "Error against training time",
                f"One point per row of the table with {largest.rows[0].n_train} training images; "
                "the red steps join the rows no other row beats on both time and error.",
            )
        )

    by_id = {str(r["run_id"]): r for r in ok}
    seen_pipelines: set[str] = set()
    for row in largest.rows:  # ranked best first: the best row of each pipeline
        if row.pipeline in seen_pipelines:
            continue
        seen_pipelines.add(row.pipeline)
        runs = [by_id[i] for i in row.run_ids if i in by_id]
        with_cm = [r for r in runs if r.get("confusion") and r.get("class_names")]
        if with_cm:
            r = with_cm[0]
            fig = figures.confusion_matrix_figure(
                _as_array(r["confusion"]),
                r["class_names"],
                title=f"{row.name} (seed {r.get('seed')})",
            )
            out.append(
                writer.add(
                    fig,
                    f"{dataset}-confusion-{row.name}",
                    f"Confusion matrix of {row.name}",
                    f"Run {r['run_id']}; rows are true classes, normalised to sum to 1.",
                )
            )

    for row in largest.rows:
        if row.pipeline not in CONVNET_PIPELINES:
            continue
        runs = [by_id[i] for i in row.run_ids if i in by_id]
        for r in runs[:1]:
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
            for ckpt in _files(r, CHECKPOINT_SUFFIXES)[:1]:
                try:
                    weights = figures.first_conv_weights(ckpt)
                except Exception as exc:  # a checkpoint we cannot read costs one figure only
                    log.warning("no filters from %s: %s", ckpt, exc)
                    continue
                fig = figures.conv_filters_figure(weights, title=f"{row.name}: first-layer filters")
                out.append(
                    writer.add(
                        fig,
                        f"{dataset}-filters-{row.name}",
                        f"First-layer filters of {row.name}",
                        f"{weights.shape[0]} filters of {weights.shape[2]}×{weights.shape[3]} "
                        f"from {ckpt.name} of run {r['run_id']}.",
                    )
                )

    for row in largest.rows:
        if row.pipeline not in BOVW_PIPELINES:
            continue
        runs = [by_id[i] for i in row.run_ids if i in by_id]
        for r in runs[:1]:
            for png in _files(r, (".png",))[:2]:
                out.append(
                    Figure(
                        _slug(f"{dataset}-{row.name}-{png.stem}"),
                        f"{row.name}: {png.stem.replace('_', ' ')}",
                        f"Saved by the pipeline in run {r['run_id']}.",
                        "image/png",
                        png.read_bytes(),
                        [png],
                    )
                )
    return out, statements


def _as_array(value: Any) -> Any:
    import numpy as np

    return np.asarray(value, dtype=float)


def _ablation_html(records: list[RunRecord]) -> str:
    """The depth-ablation table (:func:`~bovw_vs_convnet.harness.analysis.ablation_rows`); ''."""
    rows = ablation_rows(records)
    if not rows:
        return ""
    header, body = ablation_cells(rows)
    cells = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
    )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return (
        '<table class="ablation"><caption>Depth ablation: errors and changes against the '
        f"full network</caption><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>\n"
    )


def _provenance_rows(records: list[RunRecord]) -> str:
    """A table with one line per run and its full record (scores aside) in a <details>."""
    head = (
        "<tr><th>run</th><th>status</th><th>dataset</th><th>row</th><th>seed</th>"
        "<th>train images</th><th>top-1 err (%)</th><th>split</th><th>git</th>"
        "<th>device</th><th>cpu / gpu</th><th>created</th><th>command</th></tr>"
    )
    lines = []
    for r in records:
        prov = dict(r.get("provenance") or {})
        git = prov.get("git") or {}
        commit = str(git.get("commit", ""))[:10] + ("+dirty" if git.get("dirty") else "")
        hw = " / ".join(str(x) for x in (prov.get("cpu"), prov.get("gpu")) if x)
        slim = {k: v for k, v in r.items() if k not in ("confusion",)}
        lines.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (
                    r.get("run_id"),
                    r.get("status", "ok"),
                    r.get("dataset"),
                    row_name(r),
                    r.get("seed"),
                    r.get("n_train"),
                    percent(r.get("top1_err")),
                    str(r.get("split_fingerprint", ""))[:12],
                    commit or MISSING,
                    r.get("device"),
                    hw or MISSING,
                    r.get("created_at"),
                )
            )
            + f"<td><code>{html.escape(recipe_command(r))}</code></td>"
            + '</tr>\n<tr class="detail"><td colspan="13"><details><summary>record</summary>'
            f"<pre>{html.escape(json.dumps(slim, indent=1, default=str))}</pre></details></td></tr>"
        )
    return (
        f'<table class="provenance">\n<thead>{head}</thead>\n<tbody>\n'
        + "\n".join(lines)
        + "\n</tbody></table>"
    )


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
caption { font-weight: bold; text-align: left; padding: 0.3em 0; }
figure { display: inline-block; margin: 1em; max-width: 46em; vertical-align: top; }
figure img { max-width: 100%; }
figcaption { font-size: 0.85em; }
pre { font-size: 0.75em; max-height: 20em; overflow: auto; }
tr.detail td { border-top: none; }
table.provenance { font-size: 0.75em; }
table.provenance code { word-break: break-all; }
.statement { font-weight: bold; }
"""


def build_report(
    runs_dir: Path | str,
    output: Path | str,
    *,
    dataset: str | None = None,
    title: str = "BoVW against ConvNets: benchmark report",
) -> Path:
    """Write ``OUTPUT/index.html`` (and ``OUTPUT/figures/*``) from the store in ``runs_dir``.

    ``dataset`` limits the page to one dataset. Returns the page's path. A store
    without runs still gives a page that says so.
    """
    store = ResultStore(runs_dir)
    store.recover()
    # superseded runs (replaced by a forced or successful rerun) stay out of the page
    records = [
        r
        for r in store.list_runs(dataset=dataset, status=None)
        if r.get("status", "ok") in ("ok", "failed")
    ]
    return write_report(records, output, title=title, source=str(Path(runs_dir)))


def write_report(
    records: Sequence[RunRecord],
    output: Path | str,
    *,
    title: str = "BoVW against ConvNets: benchmark report",
    source: str = "",
) -> Path:
    """Write the report of ``records`` (run records as the store returns them) into ``output``."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    writer = _FigureWriter(output / "figures")
    all_records = list(records)
    ok = [r for r in all_records if r.get("status", "ok") == "ok"]
    failed = [r for r in all_records if r.get("status") == "failed"]
    datasets = sorted({str(r.get("dataset")) for r in all_records})

    parts: list[str] = []
    toc: list[str] = []
    for ds in datasets:
        recs = [r for r in ok if str(r.get("dataset")) == ds]
        anchor = _slug(f"dataset-{ds}")
        toc.append(f'<li><a href="#{anchor}">{html.escape(ds)}</a></li>')
        parts.append(f'<section id="{anchor}"><h2>{html.escape(ds)}</h2>')
        if not recs:
            parts.append("<p>No finished run.</p></section>")
            continue
        tables = build_tables(recs)
        parts.append("<h3>Leaderboard</h3>")
        parts.append(
            "<p>Errors in percent, mean ± standard deviation over seeds; rows in one table "
            "share their split fingerprints.</p>"
        )
        parts.append(render(tables, "html"))
        parts.append("<h3>ILSVRC-2012 style (top-5 error)</h3>")
        parts.append(render(tables, "html", style="ilsvrc"))
        ablation = _ablation_html(recs)
        if ablation:
            parts.append("<h3>Depth ablation</h3>")
            parts.append(ablation)
        figs, statements = _dataset_figures(recs, writer, ds)
        for s in statements:
            parts.append(f'<p class="statement">{html.escape(s)}</p>')
        if figs:
            parts.append("<h3>Figures</h3>")
            parts.extend(f.to_html() for f in figs)
        parts.append("</section>")

    toc.append('<li><a href="#provenance">Provenance</a></li>')
    parts.append('<section id="provenance"><h2>Provenance</h2>')
    parts.append(
        "<p>Every stored run: its split fingerprint, git revision, hardware and full record.</p>"
    )
    parts.append(_provenance_rows(all_records) if all_records else "<p>No run is stored.</p>")
    parts.append("</section>")
    if failed:
        toc.append('<li><a href="#failed">Failed runs</a></li>')
        parts.append('<section id="failed"><h2>Failed runs</h2><ul>')
        for r in failed:
            parts.append(
                f"<li><code>{html.escape(str(r.get('run_id')))}</code> {html.escape(row_name(r))} "
                f"on {html.escape(str(r.get('dataset')))} (seed {r.get('seed')}): "
                f"{html.escape(str(r.get('error')))}</li>"
            )
        parts.append("</ul></section>")

    now = datetime.now(UTC).isoformat(timespec="seconds")
    summary = (
        f"{len(ok)} finished and {len(failed)} failed runs"
        + (f" from <code>{html.escape(source)}</code>" if source else "")
        + f"; generated {now}."
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p>{summary}</p>\n<ul class="toc">{"".join(toc)}</ul>\n'
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )
    path = output / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path
