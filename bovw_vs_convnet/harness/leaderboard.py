"""Leaderboards: stored runs grouped into comparable tables, rendered as md, csv, html, latex, json.

Grouping, in two steps:

1. **Rows.** Runs of the same pipeline, model, config and split protocol (dataset
   and split parameters other than the seed) form one row; their metrics are
   averaged and, with two or more runs, given a sample standard deviation
   (mean ± std over seeds). A repeated run (same config key: same config,
   split and seed) counts once, the latest standing, so ``n_runs`` counts seeds.
2. **Tables.** Only rows measured on exactly the same set of split fingerprints
   share a table, so every number in a table comes from the same images.

Rows are ranked by mean top-1 error (then top-5 error, then name). The
``ilsvrc`` style mirrors the ILSVRC-2012 results table (Rank, Name, Error rate,
Description) with the top-5 error as the error rate, ranked by that error.
"""

from __future__ import annotations

import csv
import html
import io
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.harness.formatting import latex_escape, number, percent
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.store import canonical_json

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
)


def row_model(record: RunRecord) -> str:
    """The model a record's row shows: its ``model``, or its pipeline's name when it has none."""
    return record.get("model") or record.get("pipeline", "?")


def row_name(record: RunRecord) -> str:
    """A record's name in every table, curve and figure: ``pipeline`` or ``pipeline/model``.

    The model is left out when it is the pipeline's own name (``bovw``), so one
    record reads the same in a leaderboard row and in a curve's legend.
    """
    pipeline, model = record.get("pipeline", "?"), row_model(record)
    return pipeline if model == pipeline else f"{pipeline}/{model}"


@dataclass
class LeaderboardRow:
    """One (pipeline, model, config) on one split protocol, aggregated over its runs."""

    rank: int
    pipeline: str
    model: str
    description: str
    config: dict[str, Any]
    top1_err: float | None
    top1_err_std: float | None
    top5_err: float | None
    top5_err_std: float | None
    n_params: int | None
    n_train: int | None
    n_test: int | None
    train_seconds: float | None
    train_seconds_std: float | None
    infer_images_per_s: float | None
    n_runs: int
    seeds: list[int]
    run_ids: list[str]
    variant: str = ""  # the settings that tell it apart from same-model rows of its table

    @property
    def name(self) -> str:
        """``pipeline`` or ``pipeline/model`` when they differ (:func:`row_name`)."""
        return row_name({"pipeline": self.pipeline, "model": self.model})


@dataclass
class LeaderboardTable:
    """Rows that share the same split fingerprints, ranked best first."""

    dataset: str
    split: dict[str, Any]
    fingerprints: list[str]
    rows: list[LeaderboardRow] = field(default_factory=list)

    @property
    def table_id(self) -> str:
        """A short name of the table: the first 12 hex digits of its (first) fingerprint."""
        return ",".join(f[:12] for f in self.fingerprints)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def _std(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.stdev(vals) if len(vals) >= 2 else None


def _protocol(record: RunRecord) -> dict[str, Any]:
    split = dict(record.get("split") or {})
    split.pop("seed", None)
    return {"dataset": record.get("dataset"), **split}


def _identity(record: RunRecord) -> dict[str, Any]:
    """The record's settings that tell runs apart (no seed; later settings at their old value)."""
    from bovw_vs_convnet.config import identity_settings
    from bovw_vs_convnet.harness.registry import PIPELINES

    config = {k: v for k, v in dict(record.get("config") or {}).items() if k != "seed"}
    spec = PIPELINES.get(str(record.get("pipeline")))
    return identity_settings(spec.config_class(), config) if spec else config


def _repeat_key(record: RunRecord) -> str:
    return str(
        record.get("config_key") or f"{record.get('split_fingerprint')}:{record.get('seed', 0)}"
    )


def _describe(pipeline: str, config: Mapping[str, Any], n_runs: int) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in sorted(config.items()) if k not in ("model",))
    text = pipeline + (f" ({settings})" if settings else "")
    return text + (f"; mean of {n_runs} seeds" if n_runs > 1 else "")


def build_tables(runs: Iterable[RunRecord]) -> list[LeaderboardTable]:
    """Group finished run records into ranked leaderboard tables (see the module docstring)."""
    groups: dict[str, list[RunRecord]] = {}
    for record in runs:
        if record.get("status", "ok") != "ok":
            continue
        key = canonical_json(
            [record["pipeline"], record.get("model"), _identity(record), _protocol(record)]
        )
        groups.setdefault(key, []).append(record)

    tables: dict[tuple[str, ...], LeaderboardTable] = {}
    for group in groups.values():
        # a repeat of the same config, split and seed counts once: the latest run stands
        latest = {_repeat_key(r): r for r in group}
        members = list(latest.values())
        first = members[0]
        fingerprints = sorted({str(r["split_fingerprint"]) for r in members})
        config = _identity(first)
        n_params = _mean([r.get("n_params") for r in members])
        n_train = _mean([r.get("n_train") for r in members])
        n_test = _mean([r.get("n_test") for r in members])
        row = LeaderboardRow(
            rank=0,
            pipeline=str(first["pipeline"]),
            model=row_model(first),
            description=_describe(str(first["pipeline"]), config, len(members)),
            config=config,
            top1_err=_mean([r.get("top1_err") for r in members]),
            top1_err_std=_std([r.get("top1_err") for r in members]),
            top5_err=_mean([r.get("top5_err") for r in members]),
            top5_err_std=_std([r.get("top5_err") for r in members]),
            n_params=round(n_params) if n_params is not None else None,
            n_train=round(n_train) if n_train is not None else None,
            n_test=round(n_test) if n_test is not None else None,
            train_seconds=_mean([r.get("train_seconds") for r in members]),
            train_seconds_std=_std([r.get("train_seconds") for r in members]),
            infer_images_per_s=_mean([r.get("infer_images_per_s") for r in members]),
            n_runs=len(members),
            seeds=sorted({int(r.get("seed", 0)) for r in members}),
            run_ids=[str(r["run_id"]) for r in members],
        )
        table = tables.setdefault(
            tuple(fingerprints),
            LeaderboardTable(str(first.get("dataset")), _protocol(first), fingerprints),
        )
        table.rows.append(row)

    out = sorted(tables.values(), key=lambda t: (t.dataset, t.rows[0].n_train or 0, t.table_id))
    for table in out:
        _mark_variants(table.rows)
        rank_rows(table.rows, by="top1_err")
    return out


def _mark_variants(rows: list[LeaderboardRow]) -> None:
    """Set ``variant`` to the settings that differ between rows of the same pipeline and model."""
    by_model: dict[tuple[str, str], list[LeaderboardRow]] = {}
    for row in rows:
        by_model.setdefault((row.pipeline, row.model), []).append(row)
    for same in by_model.values():
        if len(same) < 2:
            continue
        keys = sorted({k for r in same for k in r.config})
        varying = [k for k in keys if len({canonical_json(r.config.get(k)) for r in same}) > 1]
        for row in same:
            row.variant = ", ".join(f"{k}={row.config.get(k)}" for k in varying)


def rank_rows(rows: list[LeaderboardRow], by: Literal["top1_err", "top5_err"] = "top1_err") -> None:
    """Sort ``rows`` in place, best first by mean ``by`` error (missing last), and number them."""
    other = "top5_err" if by == "top1_err" else "top1_err"

    def key(row: LeaderboardRow) -> tuple[float, float, str]:
        first, second = getattr(row, by), getattr(row, other)
        inf = float("inf")
        return (inf if first is None else first, inf if second is None else second, row.name)

    rows.sort(key=key)
    for i, row in enumerate(rows, start=1):
        row.rank = i


# -- rendering ---------------------------------------------------------------------------------


def _title(table: LeaderboardTable) -> str:
    extra = ", ".join(
        f"{k}={v}" for k, v in table.split.items() if k != "dataset" and v is not None
    )
    fps = ", ".join(f[:12] for f in table.fingerprints)
    return f"{table.dataset}" + (f" ({extra})" if extra else "") + f", split {fps}"


def _cells(table: LeaderboardTable, style: Style) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of a human-readable table (errors in percent for the default style)."""
    if style == "ilsvrc":
        rows = list(table.rows)
        rank_rows(rows, by="top5_err")
        header = ["Rank", "Name", "Error rate", "Description"]
        body = [
            [
                str(r.rank),
                r.name,
                number(r.top5_err, "{:.5f}"),
                r.description,
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
        "params",
        "train images",
        "train (s)",
        "infer (img/s)",
        "seeds",
    ]
    body = [
        [
            str(r.rank),
            r.pipeline,
            r.model + (f" ({r.variant})" if r.variant else ""),
            percent(r.top1_err, r.top1_err_std),
            percent(r.top5_err, r.top5_err_std),
            number(r.n_params),
            number(r.n_train),
            number(r.train_seconds, "{:,.2f}"),
            number(r.infer_images_per_s),
            str(r.n_runs),
        ]
        for r in table.rows
    ]
    return header, body


def _md(tables: list[LeaderboardTable], style: Style) -> str:
    parts = []
    for table in tables:
        header, body = _cells(table, style)
        lines = [f"### {_title(table)}", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "|".join("---:" if h.lower() == "rank" else "---" for h in header) + "|")
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _html(tables: list[LeaderboardTable], style: Style) -> str:
    parts = []
    for table in tables:
        header, body = _cells(table, style)
        rows = "\n".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
        )
        parts.append(
            f'<table class="leaderboard">\n<caption>{html.escape(_title(table))}</caption>\n'
            "<thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in header)
            + f"</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
        )
    return "\n".join(parts) + "\n"


def _latex(tables: list[LeaderboardTable], style: Style) -> str:
    parts = []
    for table in tables:
        header, body = _cells(table, style)
        align = "".join("r" if h.lower() == "rank" else "l" for h in header)
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


def _csv(tables: list[LeaderboardTable], style: Style) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if style == "ilsvrc":
        writer.writerow(["rank", "name", "error_rate", "description", "dataset", "table"])
        for table in tables:
            _, body = _cells(table, style)
            writer.writerows([*row, table.dataset, table.table_id] for row in body)
        return buf.getvalue()
    writer.writerow(CSV_COLUMNS)
    for table in tables:
        for r in table.rows:
            values = {
                **asdict(r),
                "seeds": " ".join(str(s) for s in r.seeds),
                "dataset": table.dataset,
                "table": table.table_id,
            }
            writer.writerow([_csv_value(values[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def _json(tables: list[LeaderboardTable], style: Style) -> str:
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
            }
        )
        rank_rows(table.rows, by="top1_err")
    return json.dumps(out, indent=2, allow_nan=False) + "\n"


_RENDERERS = {"md": _md, "csv": _csv, "html": _html, "latex": _latex, "json": _json}


def render(tables: list[LeaderboardTable], fmt: str = "md", style: str = "default") -> str:
    """The tables as text in format ``fmt`` (md, csv, html, latex, json) and ``style``."""
    if fmt not in _RENDERERS:
        raise ConfigError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if style not in STYLES:
        raise ConfigError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
    return _RENDERERS[fmt](tables, style)  # type: ignore[arg-type]
