"""``bvc report``: one self-contained HTML page of the stored runs (tables, figures, provenance).

The page embeds everything it shows (figures as base64 SVG, the BoVW galleries as
base64 PNG, styles inline), so it opens offline and can be mailed as one file.
Every figure is also written beside it as PNG and SVG under ``figures/``.

Sections, per dataset: the leaderboard tables (mean ± std over seeds, 95 %
intervals, the mean per-class errors, each row tested against the best; one table
per split), the answer to BoVW against ConvNets on each table with its test, the
ILSVRC-style table, error against training-set size with the
estimated BoVW→ConvNet crossover, error against training time with its Pareto
front, the confusion matrix of each pipeline's best row, ConvNet learning curves
and first-layer filters, BoVW visual-word galleries; then the provenance of every
run and the failed runs with their errors.

This module is how the page looks: what its tables and sentences say comes from
:mod:`~bovw_vs_convnet.harness.analysis` and :mod:`~bovw_vs_convnet.harness.leaderboard`,
which figures each section shows from :mod:`~bovw_vs_convnet.harness.report_figures`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bovw_vs_convnet.harness.analysis import (
    ablation_cells,
    ablation_rows,
    family_answers,
    recipe_command,
)
from bovw_vs_convnet.harness.formatting import MISSING, percent
from bovw_vs_convnet.harness.leaderboard import build_tables, row_name
from bovw_vs_convnet.harness.leaderboard_formats import render
from bovw_vs_convnet.harness.record import RunRecord, is_learned
from bovw_vs_convnet.harness.report_figures import FigureWriter, dataset_figures, slug
from bovw_vs_convnet.harness.store import ResultStore

REPORT_NAME = "index.html"


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
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 30em), 1fr));
  gap: 0 1.5em; }
figure { margin: 1em 0; }
figure img { display: block; width: 100%; height: auto; }
figure.raster img { width: auto; max-width: 100%; min-width: min(100%, 20em);
  image-rendering: pixelated; }
figcaption { font-size: 0.85em; }
pre { font-size: 0.75em; max-height: 20em; overflow: auto; }
tr.detail td { border-top: none; }
table.provenance { font-size: 0.75em; }
table.provenance code { word-break: break-all; }
.statement { font-weight: bold; }
p.note { font-size: 0.8em; margin: -0.5em 0 0.5em; color: #444; }
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
    writer = FigureWriter(output / "figures")
    all_records = list(records)
    ok = [r for r in all_records if r.get("status", "ok") == "ok"]
    failed = [r for r in all_records if r.get("status") == "failed"]

    parts: list[str] = []  # the page's sections, one block of HTML each
    toc: list[str] = []
    for ds in sorted({str(r.get("dataset")) for r in all_records}):
        anchor = slug(f"dataset-{ds}")
        toc.append(f'<li><a href="#{anchor}">{html.escape(ds)}</a></li>')
        recs = [r for r in ok if str(r.get("dataset")) == ds]
        parts += _dataset_section(ds, anchor, recs, writer)
    toc.append('<li><a href="#provenance">Provenance</a></li>')
    parts += _provenance_section(all_records)
    if failed:
        toc.append('<li><a href="#failed">Failed runs</a></li>')
        parts += _failed_section(failed)

    now = datetime.now(UTC).isoformat(timespec="seconds")
    summary = (
        f"{len(ok)} finished and {len(failed)} failed runs"
        + (f" from <code>{html.escape(source)}</code>" if source else "")
        + f"; generated {now}."
    )
    path = output / REPORT_NAME
    path.write_text(_page(title, summary, toc, parts), encoding="utf-8")
    return path


def _dataset_section(
    dataset: str, anchor: str, records: list[RunRecord], writer: FigureWriter
) -> list[str]:
    """One dataset's section: its tables, the family answers, the ablation and the figures."""
    parts = [f'<section id="{anchor}"><h2>{html.escape(dataset)}</h2>']
    if not records:
        return [*parts, "<p>No finished run.</p></section>"]
    tables = build_tables(records)
    parts.append("<h3>Leaderboard</h3>")
    parts.append(
        "<p>Errors in percent, mean ± standard deviation over seeds, with their 95 % "
        "intervals; mpc: the mean per-class error (1 − mean per-class recall). Rows in one "
        "table share their split fingerprints; the note under each table names the test "
        "of each row against the best.</p>"
    )
    parts.append(render(tables, "html", ci=True))
    for answer in family_answers(tables):
        parts.append(f'<p class="statement answer">{html.escape(answer)}</p>')
    unlearned = sorted({row_name(r) for r in records if not is_learned(r)})
    if unlearned:  # never ranked: said here too, not only in the tables' notes
        parts.append(
            f'<p class="statement warning">{html.escape(", ".join(unlearned))} did not learn '
            "(the validation error not significantly below chance): marked † and never "
            "ranked.</p>"
        )
    parts.append("<h3>ILSVRC-2012 style (top-5 error)</h3>")
    parts.append(render(tables, "html", style="ilsvrc"))
    ablation = _ablation_html(records)
    if ablation:
        parts.append("<h3>Depth ablation</h3>")
        parts.append(ablation)
    figs, statements = dataset_figures(records, writer, dataset)
    for s in statements:
        parts.append(f'<p class="statement">{html.escape(s)}</p>')
    if figs:
        parts.append("<h3>Figures</h3>")
        parts.append('<div class="figures">')
        parts.extend(f.to_html() for f in figs)
        parts.append("</div>")
    parts.append("</section>")
    return parts


def _provenance_section(records: list[RunRecord]) -> list[str]:
    """Every stored run's provenance (:func:`_provenance_rows`), or a line saying there is none."""
    return [
        '<section id="provenance"><h2>Provenance</h2>',
        "<p>Every stored run: its split fingerprint, git revision, hardware and full record.</p>",
        _provenance_rows(records) if records else "<p>No run is stored.</p>",
        "</section>",
    ]


def _failed_section(failed: list[RunRecord]) -> list[str]:
    """The failed runs, each with its row name, dataset, seed and error."""
    items = [
        f"<li><code>{html.escape(r['run_id'])}</code> {html.escape(row_name(r))} "
        f"on {html.escape(str(r.get('dataset')))} (seed {r.get('seed')}): "
        f"{html.escape(str(r.get('error')))}</li>"
        for r in failed
    ]
    return ['<section id="failed"><h2>Failed runs</h2><ul>', *items, "</ul></section>"]


def _page(title: str, summary: str, toc: list[str], parts: list[str]) -> str:
    """The whole HTML document: head with the inline style, title, summary, contents, sections."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p>{summary}</p>\n<ul class="toc">{"".join(toc)}</ul>\n'
        + "\n".join(parts)
        + "\n</body>\n</html>\n"
    )
