"""`bvc compare A B`: whether two runs, or two leaderboard rows, differ for real.

A and B are run ids or leaderboard row names (``bovw/bovw-tiny``, ``convnet/lenet5``,
or a model name alone when it names one row). One run on each side, scored on the
same test images: the exact McNemar test on top-1 and top-5 correctness, with its
2×2 table. Rows with two or more matched seeds or splits: a paired test over them
(``--test t`` or ``wilcoxon``) on the top-1, top-5 and mean per-class errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bovw_vs_convnet.cli.options import choice_option, json_option, percent, runs_dir_option
from bovw_vs_convnet.errors import DataError

if TYPE_CHECKING:
    from bovw_vs_convnet.harness.comparison import Comparison, MetricTest
    from bovw_vs_convnet.harness.leaderboard import LeaderboardRow, LeaderboardTable
    from bovw_vs_convnet.harness.record import RunRecord


def _row_matches(row: LeaderboardRow, name: str) -> bool:
    """A row answers to ``pipeline/model``, its model alone, and either with ``(variant)``."""
    labels = {row.name, row.model}
    if row.variant:
        labels |= {f"{row.name} ({row.variant})", f"{row.model} ({row.variant})"}
    return name in labels


def _tables_with(name: str, tables: list[LeaderboardTable]) -> list[LeaderboardTable]:
    """The tables with a row named ``name``; refused when one table has several."""
    out = []
    for table in tables:
        rows = [r for r in table.rows if _row_matches(r, name)]
        if len(rows) > 1:
            variants = "; ".join(r.variant for r in rows)
            raise DataError(
                f"several rows match {name!r} ({variants}): name one as 'NAME (VARIANT)'"
            )
        if rows:
            out.append(table)
    if not out:
        raise DataError(f"{name!r} is neither a stored run id nor a leaderboard row name")
    return out


def _ids(tables: list[LeaderboardTable]) -> str:
    return ", ".join(t.table_id for t in tables)


def _one_table(names: list[str], candidates: list[list[LeaderboardTable]]) -> LeaderboardTable:
    """The one table that holds every named row."""
    shared = [t for t in candidates[0] if all(any(t is x for x in c) for c in candidates[1:])]
    if not shared:
        on = "; ".join(f"{n!r} on {_ids(c)}" for n, c in zip(names, candidates, strict=True))
        raise DataError(f"no leaderboard table holds both rows ({on}): use run ids")
    if len(shared) > 1:
        raise DataError(
            f"{' and '.join(repr(n) for n in names)} {'is' if len(names) == 1 else 'are'} on "
            f"{len(shared)} tables "
            f"({_ids(shared)}); choose one with --table"
        )
    return shared[0]


def resolve(
    args: tuple[str, str],
    records: list[RunRecord],
    *,
    table_id: str | None = None,
    dataset: str | None = None,
) -> list[tuple[str, list[RunRecord]]]:
    """Each argument's display name and runs: a run id's record, or a row's runs on one table."""
    from bovw_vs_convnet.harness.leaderboard import build_tables, row_name

    by_id = {str(r["run_id"]): r for r in records}
    for arg in args:
        status = by_id[arg].get("status", "ok") if arg in by_id else "ok"
        if status != "ok":
            raise DataError(f"run {arg} has status {status}: nothing to compare")
    row_args = [arg for arg in args if arg not in by_id]
    table = None
    if row_args:
        ok = [r for r in records if r.get("status", "ok") == "ok"]
        if dataset is not None:
            ok = [r for r in ok if str(r.get("dataset")) == dataset]
        tables = [
            t
            for t in build_tables(ok, significance=False)
            if table_id is None or t.table_id.startswith(table_id)
        ]
        table = _one_table(row_args, [_tables_with(arg, tables) for arg in row_args])
    out = []
    for arg in args:
        if arg in by_id:
            out.append((f"{row_name(by_id[arg])} ({arg})", [by_id[arg]]))
        else:
            assert table is not None
            row = next(r for r in table.rows if _row_matches(r, arg))
            out.append(
                (row.name + (f" ({row.variant})" if row.variant else ""), table.row_runs(row))
            )
    return out


def not_learned(runs: Sequence[RunRecord]) -> bool:
    """Whether any of ``runs`` is recorded as ``learned: false`` (old records: unknown)."""
    from bovw_vs_convnet.harness.record import is_learned

    return not all(is_learned(r) for r in runs)


def _mcnemar_lines(test: MetricTest, cmp: Comparison) -> list[str]:
    """McNemar's 2×2 table and the verdict line."""
    from bovw_vs_convnet.harness.comparison import METRIC_LABELS

    assert test.table is not None
    (both, only_a), (only_b, neither) = test.table
    w = max(9, *(len(str(v)) + 2 for v in (both, only_a, only_b, neither)))
    return [
        f"{METRIC_LABELS.get(test.metric, test.metric):<10}{'B right':>{w}}{'B wrong':>{w}}",
        f"{'  A right':<10}{both:>{w}}{only_a:>{w}}",
        f"{'  A wrong':<10}{only_b:>{w}}{neither:>{w}}",
        cmp.verdict(test),
    ]


def _paired_lines(cmp: Comparison, records: dict[str, RunRecord]) -> list[str]:
    """One line per matched pair with both sides' errors, then the verdict lines."""
    from bovw_vs_convnet.harness.comparison import METRIC_LABELS
    from bovw_vs_convnet.harness.record import error_value

    metrics = [t.metric for t in cmp.tests]
    lines = [
        f"  {'seed':<6}{'split':<14}"
        + "".join(f"{'A ' + METRIC_LABELS[m]:>18}{'B ' + METRIC_LABELS[m]:>18}" for m in metrics)
    ]
    for run_a, run_b in cmp.pairs:
        ra, rb = records[run_a], records[run_b]
        cells = "".join(
            f"{percent(error_value(ra, m)):>18}{percent(error_value(rb, m)):>18}" for m in metrics
        )
        split = str(ra.get("split_fingerprint"))[:12]
        lines.append(f"  {ra.get('seed', 0)!s:<6}{split:<14}{cells}")
    return [*lines, *(cmp.verdict(t) for t in cmp.tests)]


def _runs(n: int) -> str:
    return f"{n} run" + ("s" if n != 1 else "")


@click.command("compare")
@click.argument("a")
@click.argument("b")
@click.option(
    "--table",
    "table_id",
    default=None,
    help="For row names: the leaderboard table, by its split id as `bvc leaderboard` shows it.",
)
@click.option("--dataset", default=None, help="For row names: only this dataset's runs.")
@choice_option(
    "--test",
    ["t", "wilcoxon"],
    "t",
    "The paired test over matched seeds: Student's paired t or Wilcoxon signed-rank.",
    dest="method",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Significance level of the verdicts.",
)
@json_option
@runs_dir_option
def compare(
    a: str,
    b: str,
    table_id: str | None,
    dataset: str | None,
    method: str,
    alpha: float,
    as_json: bool,
    runs_dir: Path,
) -> None:
    """Test whether A and B (run ids or leaderboard row names) differ for real.

    One run each on the same test images: the exact McNemar test on top-1 and
    top-5 correctness, with its 2×2 table. Two or more matched seeds or splits: a
    paired test over them. Runs on different test images are refused (exit code 2).
    """
    from bovw_vs_convnet.harness.comparison import compare_runs
    from bovw_vs_convnet.harness.record_json import to_jsonable
    from bovw_vs_convnet.harness.store import ResultStore

    store = ResultStore(runs_dir)
    store.recover()
    records = store.list_runs(status=None)
    (name_a, runs_a), (name_b, runs_b) = resolve(
        (a, b), records, table_id=table_id, dataset=dataset
    )
    if name_a == name_b:
        raise DataError(f"A and B are the same: {name_a}")
    cmp = compare_runs(
        runs_a,
        runs_b,
        name_a=name_a,
        name_b=name_b,
        method="wilcoxon" if method == "wilcoxon" else "t",
        alpha=alpha,
    )
    unlearned = [n for n, runs in ((name_a, runs_a), (name_b, runs_b)) if not_learned(runs)]
    if as_json:
        out = {**cmp.to_json(), "not_learned": unlearned}
        click.echo(json.dumps(to_jsonable(out), allow_nan=False))
        return
    click.echo(f"A: {name_a}, {_runs(len(runs_a))}")
    click.echo(f"B: {name_b}, {_runs(len(runs_b))}")
    for name in unlearned:
        click.echo(
            f"† {name} did not learn: its validation error is not significantly below chance "
            "(docs/statistics.md); its errors are those of a constant answer, not a result"
        )
    if not cmp.tests:
        raise DataError("no error is recorded on both sides: nothing to test")
    first = cmp.tests[0]
    if cmp.kind == "mcnemar":
        click.echo(f"{first.test} on {first.n} test images (the same ids in both runs), two-sided")
        for test in cmp.tests:
            click.echo("")
            for line in _mcnemar_lines(test, cmp):
                click.echo(line)
    else:
        click.echo(f"{first.test} over {first.n} matched seeds (same split and seed), two-sided")
        by_id = {str(r["run_id"]): r for r in [*runs_a, *runs_b]}
        for line in _paired_lines(cmp, by_id):
            click.echo(line)
