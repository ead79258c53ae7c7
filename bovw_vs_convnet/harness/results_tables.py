"""The docs' result tables, rendered from ``results/*.csv`` between markers.

A Markdown page marks a generated table with ``<!-- results:NAME:begin -->`` and
``<!-- results:NAME:end -->`` (``results:NAME:ci:begin`` and ``…:ci:end`` for the
errors with their 95 % intervals, ``results:NAME:ilsvrc:begin`` and ``…:ilsvrc:end``
for the columns of the ILSVRC-2012 results page, as ``bvc leaderboard --style ilsvrc``
shows them); :func:`render_page` replaces what lies between them with the table of
``results/NAME.csv``, and :func:`check_pages` reports every marked
table whose text differs from what its CSV renders (the CI's drift check).

A CSV renders as a leaderboard, with ``bvc leaderboard``'s cells
(:func:`~bovw_vs_convnet.harness.leaderboard_formats.table_cells`) and notes; columns
with no value in any row are left out, and a ``command`` column is added when the
rows come from different commands. When most rows (a pipeline and model each) were
measured at several training-set sizes, the CSV renders as a crossover instead: one
line per row, one column per size, the best error of each column in bold.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness.formatting import MISSING, number, p_value, percent
from bovw_vs_convnet.harness.leaderboard import NOT_LEARNED, LeaderboardRow, LeaderboardTable
from bovw_vs_convnet.harness.leaderboard_formats import table_cells, table_notes
from bovw_vs_convnet.harness.results_export import PROVENANCE_COLUMNS
from bovw_vs_convnet.harness.results_figures import render_figures

MARKED = re.compile(
    r"(?P<begin><!-- results:(?P<name>[A-Za-z0-9._-]+)(?P<variant>(?::ci|:ilsvrc)?):begin -->\n)"
    r"(?P<body>.*?)(?P<end><!-- results:(?P=name)(?P=variant):end -->)",
    re.S,
)
_KEPT = {"rank", "pipeline", "model"}  # columns shown even when empty
# what a file must have; a leaderboard column added later reads as empty in older files
REQUIRED = ("pipeline", "model", "top1_err", "dataset", "table", *PROVENANCE_COLUMNS)


def read_results(path: Path) -> list[dict[str, str]]:
    """The rows of one ``results/*.csv``; refuses a file without the :data:`REQUIRED` columns."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
            rows = [{k: v or "" for k, v in row.items()} for row in reader]
    except FileNotFoundError:
        raise DataError(f"no results file {path}") from None
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)}")
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _float(text: str) -> float | None:
    return float(text) if text.strip() else None


def _int(text: str) -> int | None:
    return int(float(text)) if text.strip() else None


def _interval(row: dict[str, str], metric: str) -> list[float] | None:
    low, high = _float(row[f"{metric}_ci_low"]), _float(row[f"{metric}_ci_high"])
    return None if low is None or high is None else [low, high]


def leaderboard_row(values: dict[str, str]) -> LeaderboardRow:
    """One CSV row back as the leaderboard row it was written from (what tables show)."""
    row: dict[str, str] = defaultdict(str, values)  # a column the file lacks reads as empty
    seeds = [int(s) for s in row["seeds"].split()]
    return LeaderboardRow(
        rank=_int(row["rank"]),  # empty: a row that did not learn, never ranked
        pipeline=row["pipeline"],
        model=row["model"],
        description="",
        config={},
        top1_err=_float(row["top1_err"]),
        top1_err_std=_float(row["top1_err_std"]),
        top5_err=_float(row["top5_err"]),
        top5_err_std=_float(row["top5_err_std"]),
        n_params=_int(row["n_params"]),
        n_train=_int(row["n_train"]),
        n_test=None,
        train_seconds=_float(row["train_seconds"]),
        train_seconds_std=None,
        infer_images_per_s=_float(row["infer_images_per_s"]),
        n_runs=_int(row["n_runs"]) or max(len(seeds), 1),
        seeds=seeds,
        run_ids=[],
        variant=row["variant"],
        mpc_err=_float(row["mpc_err"]),
        mpc_err_std=_float(row["mpc_err_std"]),
        mpc_top5_err=_float(row["mpc_top5_err"]),
        mpc_top5_err_std=_float(row["mpc_top5_err_std"]),
        top1_ci=_interval(row, "top1"),
        top5_ci=_interval(row, "top5"),
        mpc_ci=_interval(row, "mpc"),
        mpc_top5_ci=_interval(row, "mpc_top5"),
        ci_method=row["ci_method"],
        vs_best=row["vs_best"] or None,
        p_vs_best=_float(row["p_vs_best"]),
        test_vs_best=row["test_vs_best"] or None,
        learned=False if row["vs_best"] == NOT_LEARNED else None,
    )


@dataclass
class _Part:
    """One table of a CSV (its ``table`` column) with the commands of its rows."""

    table: LeaderboardTable
    commands: list[str]


def _parts(rows: Sequence[dict[str, str]]) -> list[_Part]:
    parts: dict[str, _Part] = {}
    for row in rows:
        key = row["table"] or "-"
        if key not in parts:
            parts[key] = _Part(LeaderboardTable(row["dataset"], {}, []), [])
        parts[key].table.rows.append(leaderboard_row(row))
        parts[key].commands.append(row["command"])
    return list(parts.values())


def _md_lines(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---:" if h.lower() == "rank" else "---" for h in header) + "|")
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return lines


def _leaderboard_md(part: _Part, ci: bool = False, style: str = "default") -> list[str]:
    header, body = table_cells(part.table, style=style, ci=ci)
    keep = [i for i, h in enumerate(header) if h in _KEPT or any(r[i] != MISSING for r in body)]
    header, body = [header[i] for i in keep], [[r[i] for i in keep] for r in body]
    if len(set(part.commands)) > 1:
        header.append("command")
        for cells, command in zip(body, part.commands, strict=True):
            cells.append(f"`{command}`")
    lines = _md_lines(header, body)
    tested = "vs best" in header
    for note in table_notes(part.table, style=style, ci=ci):
        if tested or not note.startswith("vs best"):
            lines += ["", note]
    return lines


def _is_crossover(rows: Sequence[LeaderboardRow]) -> bool:
    sizes: dict[tuple[str, str, str], set[int | None]] = {}
    for row in rows:
        sizes.setdefault((row.pipeline, row.model, row.variant), set()).add(row.n_train)
    return 2 * sum(len(s) > 1 for s in sizes.values()) > len(sizes)  # most rows: several sizes


def _bold_best(cells: dict[tuple[str, int], float | None]) -> set[tuple[str, int]]:
    best: dict[int, float] = {}
    for (_, size), value in cells.items():
        if value is not None:
            best[size] = min(value, best.get(size, value))
    return {k for k, v in cells.items() if v is not None and v == best[k[1]]}


def _crossover_md(rows: Sequence[LeaderboardRow], per_class: bool = False) -> list[str]:
    """One line per pipeline and model, one column per training-set size.

    ``per_class``: the rows' ``n_train`` hold the images a class of a per-class split.
    Rows tested against the best of their size (``vs_best``) are listed under the table.
    """
    sizes = sorted({r.n_train for r in rows if r.n_train is not None})
    names = list(dict.fromkeys(r.model + (f" ({r.variant})" if r.variant else "") for r in rows))
    top1: dict[tuple[str, int], float | None] = {}
    top5: dict[tuple[str, int], float | None] = {}
    for r in rows:
        if r.n_train is not None:
            key = (r.model + (f" ({r.variant})" if r.variant else ""), r.n_train)
            top1[key], top5[key] = r.top1_err, r.top5_err
    both = any(v is not None for v in top5.values())
    bold1, bold5 = _bold_best(top1), _bold_best(top5)

    def cell(key: tuple[str, int]) -> str:
        if key not in top1:
            return MISSING
        text = percent(top1[key])
        text = f"**{text}**" if key in bold1 else text
        if both:
            five = percent(top5[key])
            text += " / " + (f"**{five}**" if key in bold5 else five)
        return text

    what = "top-1 / top-5 err (%)" if both else "top-1 err (%)"
    unit = "training images a class" if per_class else "training images"
    header = [f"{what} by {unit}", *(number(s) for s in sizes)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(sizes)]
    lines += ["| " + " | ".join([n, *(cell((n, s)) for s in sizes)]) + " |" for n in names]
    return lines + _size_tests(rows, unit)


def _size_tests(rows: Sequence[LeaderboardRow], unit: str) -> list[str]:
    """The note under a crossover: each size's rows against its best row, as tested."""
    tested = [r for r in rows if r.vs_best in ("worse", "not worse") and r.n_train is not None]
    if not tested:
        return []
    by_size = [
        f"{number(r.n_train)}: {r.model} "
        f"{'worse' if r.vs_best == 'worse' else 'not significantly worse'} "
        f"({p_value(r.p_vs_best)})"
        for r in sorted(tested, key=lambda r: (r.n_train or 0, r.model))
    ]
    test = next((r.test_vs_best for r in tested if r.test_vs_best), None)
    how = f" ({test}, Holm-corrected within each size)" if test else ""
    return ["", f"Against the best row of each size{how}, by {unit}: " + "; ".join(by_size) + "."]


def render_results(
    rows: Sequence[dict[str, str]], *, ci: bool = False, style: str = "default"
) -> str:
    """The Markdown a marked block holds for these CSV rows (see the module's docstring).

    ``ci``: each error with its 95 % interval, as ``bvc leaderboard --ci`` shows it (a
    block marked ``results:NAME:ci:begin``); ``style``: ``"ilsvrc"`` for a block marked
    ``results:NAME:ilsvrc:begin`` (rank, name, top-5 error, description).
    """
    parts = _parts(rows)
    if _is_crossover([r for p in parts for r in p.table.rows]):
        # a per-class split: its columns are the images a class (train_per_class)
        per_class = all(r.get("train_per_class", "").strip() for r in rows)
        sized = [
            replace(leaderboard_row(r), n_train=int(r["train_per_class"])) if per_class
            else leaderboard_row(r)
            for r in rows
        ]  # fmt: skip
        return "\n".join(_crossover_md(sized, per_class)) + "\n"
    blocks = []
    for part in parts:
        lines = _leaderboard_md(part, ci, style)
        if len(parts) > 1:
            sizes = {r.n_train for r in part.table.rows}
            size = sizes.pop() if len(sizes) == 1 else None
            lines = [f"*{number(size)} training images:*", "", *lines]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_page(text: str, results_dir: Path) -> tuple[str, list[str]]:
    """``text`` with every marked table rendered from ``results_dir/NAME.csv``.

    Returns the new text and the names of the tables whose text changed.
    """
    changed: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        variant = match["variant"]
        body = render_results(
            read_results(results_dir / f"{name}.csv"),
            ci=variant == ":ci",
            style="ilsvrc" if variant == ":ilsvrc" else "default",
        )
        if body != match["body"]:
            changed.append(name)
        return match["begin"] + body + match["end"]

    return MARKED.sub(fill, text), changed


def marked_names(text: str) -> list[str]:
    """The names of the marked tables in ``text``, in order."""
    return [m["name"] for m in MARKED.finditer(text)]


def check_pages(pages: Sequence[Path], results_dir: Path, *, write: bool = False) -> list[str]:
    """``page: NAME`` for every marked table or figure that differs from its CSV.

    A figure (:mod:`~bovw_vs_convnet.harness.results_figures`) reads ``page: NAME
    (figure)``. ``write`` rewrites the tables and links and redraws the figures.
    """
    drift = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        new, changed = render_page(text, results_dir)
        new, drawn = render_figures(page, new, results_dir, read_results, write=write)
        drift += [f"{page}: {name}" for name in changed]
        drift += [f"{page}: {name} (figure)" for name in drawn]
        if write and new != text:
            page.write_text(new, encoding="utf-8")
    return drift
