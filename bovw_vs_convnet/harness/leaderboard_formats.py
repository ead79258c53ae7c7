"""Leaderboard tables as text: md, csv, html, latex and json, in two styles.

:func:`render` is the one entry point: it takes the tables
:func:`~bovw_vs_convnet.harness.leaderboard.build_tables` made and writes them in
one format, so that ``bvc leaderboard``, ``bvc bench``, ``bvc run --splits`` and the
HTML report print the same cells.

The ``default`` style shows timm-like columns (errors in percent, mean ± std over
seeds, the test of each row against the best) with a note under each table naming
the test; ``ci=True`` adds each error's 95 % interval to md, html and latex cells,
and csv and json always carry the intervals. The CSV columns are a contract
(``results/*.csv`` are written from them): new columns are appended, never moved.

A row that did not learn (``learned: false``) has a dagger for its rank (an empty
rank in csv and null in json) and ``did not learn`` for ``vs best``, with a note
under the table in every format that has notes.

The ``ilsvrc`` style mirrors the ILSVRC-2012 results table (Rank, Name, Error
rate, Description): ranked by top-5 error, shown in percent under ``top-5 err (%)``
like every table's errors, with a short description (what sets the row apart, its
training images, its seeds); its CSV keeps the fraction under ``error_rate``.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict
from typing import Any, Literal

from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.harness import stats
from bovw_vs_convnet.harness.formatting import (
    MISSING,
    interval,
    latex_escape,
    number,
    p_value,
    percent,
)
from bovw_vs_convnet.harness.leaderboard import (
    NOT_LEARNED,
    LeaderboardRow,
    LeaderboardTable,
    rank_rows,
)
from bovw_vs_convnet.harness.record import ERROR_METRICS

FORMATS = ("md", "csv", "html", "latex", "json")
STYLES = ("default", "ilsvrc")
Format = Literal["md", "csv", "html", "latex", "json"]
Style = Literal["default", "ilsvrc"]

CSV_COLUMNS = (
    "rank",
    "pipeline",
    "model",
    "top1_err",
    "top5_err",
    "n_params",
    "n_train",
    "train_seconds",
    "infer_images_per_s",
    "top1_err_std",
    "top5_err_std",
    "n_runs",
    "seeds",
    "dataset",
    "table",
    "variant",
    # added with the mean per-class error and the intervals (appended: positions stay)
    "mpc_err",
    "mpc_top5_err",
    "mpc_err_std",
    "mpc_top5_err_std",
    "top1_ci_low",
    "top1_ci_high",
    "top5_ci_low",
    "top5_ci_high",
    "mpc_ci_low",
    "mpc_ci_high",
    "mpc_top5_ci_low",
    "mpc_top5_ci_high",
    "ci_method",
    "vs_best",
    "p_vs_best",
    "test_vs_best",
)


def _title(table: LeaderboardTable) -> str:
    extra = ", ".join(
        f"{k}={v}" for k, v in table.split.items() if k != "dataset" and v is not None
    )
    fps = ", ".join(f[:12] for f in table.fingerprints)
    return f"{table.dataset}" + (f" ({extra})" if extra else "") + f", split {fps}"


# the mark of a row that did not learn, in its rank cell, and the note that explains it
DAGGER = "†"
NOT_LEARNED_NOTE = (
    f"{DAGGER} did not learn: the validation error the model kept is not significantly "
    "below chance (a one-sided binomial test against always answering the most frequent "
    "class, p ≥ 0.01); left unranked and out of the test against the best."
)


def _rank_cell(row: LeaderboardRow) -> str:
    return DAGGER if row.rank is None else str(row.rank)


def _vs_best_cell(row: LeaderboardRow) -> str:
    if row.vs_best == NOT_LEARNED:
        return f"{DAGGER} {NOT_LEARNED}"
    if row.vs_best == "best":
        return "best"
    if row.vs_best is None:
        return MISSING
    mark = "≈ best" if row.vs_best == "not worse" else "worse"
    return f"{mark} ({p_value(row.p_vs_best)})"


def table_notes(table: LeaderboardTable, style: str = "default", ci: bool = False) -> list[str]:
    """The sentences under a table: which test marks the rows, what the intervals are."""
    unlearned = [NOT_LEARNED_NOTE] if any(r.learned is False for r in table.rows) else []
    if style == "ilsvrc":
        return unlearned
    notes = list(unlearned)
    tested = [r for r in table.rows if r.test_vs_best]
    if tested:
        kinds = sorted({str(r.test_vs_best) for r in tested})
        named = []
        for kind in kinds:
            text = (
                f"the {kind} on top-1 correctness (the same test images)"
                if kind == stats.MCNEMAR_NAME
                else f"a two-sided {kind} on top-1 error over the matched seeds"
            )
            if len(kinds) > 1:
                text += " for " + ", ".join(r.name for r in tested if r.test_vs_best == kind)
            named.append(text)
        notes.append(
            f"vs best: each row against rank 1 by {'; '.join(named)}, Holm-corrected over "
            f"{len(tested)} row{'s' if len(tested) > 1 else ''} at α = {stats.ALPHA:g} "
            "(p: Holm's adjusted p-value); ≈ best: not significantly worse than the best."
        )
    untested = [r for r in table.rows if r.vs_best is None]
    if untested and len(table.rows) > 1:
        notes.append(
            f"vs best {MISSING}: no test (no stored test scores, or fewer than 2 matched seeds)."
        )
    if ci:
        notes.append(
            "[low, high]: 95 % interval; one run: Wilson for top-1/top-5, a class-stratified "
            f"bootstrap of the test images ({stats.BOOTSTRAP_RESAMPLES} resamples, seed "
            f"{stats.BOOTSTRAP_SEED}) for the mean per-class errors; several seeds: Student's t "
            "(clipped to [0, 100])."
        )
    return notes


def _error_cell(
    mean: float | None, std: float | None, ci_value: list[float] | None, ci: bool
) -> str:
    text = percent(mean, std)
    return f"{text} {interval(ci_value)}" if ci and mean is not None else text


def short_description(row: LeaderboardRow) -> str:
    """The ILSVRC table's Description: what sets the row apart, its training images, its seeds.

    The row's whole config stays in the json format and the report's provenance; a
    table cell says only what a reader compares (``k=50, 1,295 training images``).
    """
    parts = [row.variant] if row.variant else []
    if row.n_train is not None:
        parts.append(f"{row.n_train:,} training images")
    parts.append(f"mean of {row.n_runs} seeds" if row.n_runs > 1 else "1 seed")
    return ", ".join(parts)


def _cells(
    table: LeaderboardTable, style: Style, ci: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of a human-readable table (errors in percent for the default style)."""
    if style == "ilsvrc":
        rows = list(table.rows)
        rank_rows(rows, by="top5_err")
        header = ["Rank", "Name", "top-5 err (%)", "Description"]
        body = [
            [
                _rank_cell(r),
                r.name,
                _error_cell(r.top5_err, r.top5_err_std, r.top5_ci, ci),
                short_description(r),
            ]
            for r in rows
        ]
        rank_rows(table.rows, by="top1_err")
        return header, body
    header = [
        "rank",
        "pipeline",
        "model",
        "top-1 err (%)",
        "top-5 err (%)",
        "mpc err (%)",
        "mpc top-5 err (%)",
        "params",
        "train images",
        "train (s)",
        "infer (img/s)",
        "seeds",
        "vs best",
    ]
    body = [
        [
            _rank_cell(r),
            r.pipeline,
            r.model + (f" ({r.variant})" if r.variant else ""),
            _error_cell(r.top1_err, r.top1_err_std, r.top1_ci, ci),
            _error_cell(r.top5_err, r.top5_err_std, r.top5_ci, ci),
            _error_cell(r.mpc_err, r.mpc_err_std, r.mpc_ci, ci),
            _error_cell(r.mpc_top5_err, r.mpc_top5_err_std, r.mpc_top5_ci, ci),
            number(r.n_params),
            number(r.n_train),
            number(r.train_seconds, "{:,.2f}"),
            number(r.infer_images_per_s),
            str(r.n_runs),
            _vs_best_cell(r),
        ]
        for r in table.rows
    ]
    return header, body


def table_cells(
    table: LeaderboardTable, style: str = "default", ci: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of one table, as md, html and latex show them.

    Public so that the tables rendered from ``results/*.csv``
    (:mod:`~bovw_vs_convnet.harness.results_tables`) read exactly like ``bvc leaderboard``.
    """
    if style not in STYLES:
        raise ConfigError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
    return _cells(table, style, ci)  # type: ignore[arg-type]


def _md(tables: list[LeaderboardTable], style: Style, ci: bool) -> str:
    parts = []
    for table in tables:
        header, body = _cells(table, style, ci)
        lines = [f"### {_title(table)}", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "|".join("---:" if h.lower() == "rank" else "---" for h in header) + "|")
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        notes = table_notes(table, style, ci)
        for note in notes:
            lines += ["", note]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _html(tables: list[LeaderboardTable], style: Style, ci: bool) -> str:
    parts = []
    for table in tables:
        header, body = _cells(table, style, ci)
        rows = "\n".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
        )
        notes = "".join(
            f'<p class="note">{html.escape(n)}</p>\n' for n in table_notes(table, style, ci)
        )
        parts.append(
            f'<table class="leaderboard">\n<caption>{html.escape(_title(table))}</caption>\n'
            "<thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in header)
            + f"</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n{notes}".rstrip("\n")
        )
    return "\n".join(parts) + "\n"


def _latex(tables: list[LeaderboardTable], style: Style, ci: bool) -> str:
    parts = []
    for table in tables:
        header, body = _cells(table, style, ci)
        align = "".join("r" if h.lower() == "rank" else "l" for h in header)
        notes = table_notes(table, style, ci)
        lines = [
            r"\begin{table}",
            r"\centering",
            rf"\caption{{{latex_escape(_title(table))}}}",
            rf"\begin{{tabular}}{{{align}}}",
            r"\toprule",
            " & ".join(latex_escape(h) for h in header) + r" \\",
            r"\midrule",
            *[" & ".join(latex_escape(c) for c in row) + r" \\" for row in body],
            r"\bottomrule",
            r"\end{tabular}",
            *([r"\par\footnotesize " + " ".join(latex_escape(n) for n in notes)] if notes else []),
            r"\end{table}",
        ]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _csv_value(value: Any) -> Any:
    """Empty for missing, floats to 6 decimals (errors are fractions, so 4 significant digits)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return value


def _csv_row(row: LeaderboardRow, table: LeaderboardTable) -> dict[str, Any]:
    values = {
        **asdict(row),
        "seeds": " ".join(str(s) for s in row.seeds),
        "dataset": table.dataset,
        "table": table.table_id,
    }
    for metric in ERROR_METRICS:
        ci = values.pop(f"{metric}_ci")
        values[f"{metric}_ci_low"], values[f"{metric}_ci_high"] = ci if ci else (None, None)
    return values


def _csv(tables: list[LeaderboardTable], style: Style, ci: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if style == "ilsvrc":
        writer.writerow(["rank", "name", "error_rate", "description", "dataset", "table"])
        for table in tables:
            rows = list(table.rows)
            rank_rows(rows, by="top5_err")
            writer.writerows(
                [
                    *(_rank_cell(r), r.name, number(r.top5_err, "{:.5f}"), short_description(r)),
                    *(table.dataset, table.table_id),
                ]
                for r in rows
            )
            rank_rows(table.rows, by="top1_err")
        return buf.getvalue()
    writer.writerow(CSV_COLUMNS)
    for table in tables:
        for r in table.rows:
            values = _csv_row(r, table)
            writer.writerow([_csv_value(values[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def _json(tables: list[LeaderboardTable], style: Style, ci: bool) -> str:
    out = []
    for table in tables:
        rows = list(table.rows)
        if style == "ilsvrc":
            rank_rows(rows, by="top5_err")
        out.append(
            {
                "dataset": table.dataset,
                "split": table.split,
                "split_fingerprints": table.fingerprints,
                "rows": [{**asdict(r), "name": r.name} for r in rows],
                "notes": table_notes(table, style, ci=True),
            }
        )
        rank_rows(table.rows, by="top1_err")
    return json.dumps(out, indent=2, allow_nan=False) + "\n"


_RENDERERS = {"md": _md, "csv": _csv, "html": _html, "latex": _latex, "json": _json}


def render(
    tables: list[LeaderboardTable], fmt: str = "md", style: str = "default", *, ci: bool = False
) -> str:
    """The tables as text in format ``fmt`` (md, csv, html, latex, json) and ``style``.

    ``ci`` adds each error's 95 % interval to md, html and latex cells (``3.90
    [2.30, 6.50]``) and a note saying how it was made; csv and json always carry
    the intervals.
    """
    if fmt not in _RENDERERS:
        raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if style not in STYLES:
        raise ConfigError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
    return _RENDERERS[fmt](tables, style, ci)  # type: ignore[arg-type]
