"""Leaderboards: stored runs in comparable ranked tables, each row tested against the best.

Grouping, in two steps:

1. **Rows.** Runs of the same pipeline, model, config and split protocol (dataset
   and split parameters other than the seed) form one row; their metrics are
   averaged and, with two or more runs, given a sample standard deviation
   (mean ± std over seeds). A repeated run (same config key: same config,
   split and seed) counts once, the latest standing, so ``n_runs`` counts seeds.
2. **Tables.** Only rows measured on exactly the same set of split fingerprints
   share a table, so every number in a table comes from the same images.

Rows are ranked by mean top-1 error (then top-5 error, then name). A row with a run
that did not learn (``learned: false``: its validation error not significantly below
chance) is never ranked: it follows the ranked rows with no rank (``None``; the
tables mark it with a dagger), is left out of the test against the best, and its
``vs_best`` says :data:`NOT_LEARNED`. Each error
has a 95 % interval: one run's own (Wilson for top-1/top-5, a class-stratified
bootstrap for the mean per-class errors, see :mod:`~bovw_vs_convnet.harness.stats`),
or Student's t over a row's seeds.

Every row is tested against the best (rank 1) on top-1
(:func:`~bovw_vs_convnet.harness.comparison.compare_runs`: the exact McNemar test
when each row is one run with stored scores on the same test images, else a
paired t-test over the matched seeds), Holm-corrected over the tested rows at
α = 0.05; ``vs_best`` says ``best``, ``not worse`` (not significantly worse than
the best) or ``worse``.

This module makes the tables; :mod:`~bovw_vs_convnet.harness.leaderboard_formats`
writes them as md, csv, html, latex or json.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness import stats
from bovw_vs_convnet.harness.comparison import (
    MCNEMAR_METRICS,
    Comparison,
    DamagedScores,
    MetricTest,
    compare_runs,
    warn_damaged,
)
from bovw_vs_convnet.harness.record import (
    ERROR_METRICS,
    RunRecord,
    error_interval,
    error_value,
    is_learned,
)
from bovw_vs_convnet.harness.record_json import canonical_json


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

    rank: int | None  # None: a row that did not learn (never ranked)
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
    mpc_err: float | None = None  # mean per-class top-1 error (1 - mean per-class recall)
    mpc_err_std: float | None = None
    mpc_top5_err: float | None = None
    mpc_top5_err_std: float | None = None
    # 95 % intervals [low, high] of the (mean) errors, see ci_method
    top1_ci: list[float] | None = None
    top5_ci: list[float] | None = None
    mpc_ci: list[float] | None = None
    mpc_top5_ci: list[float] | None = None
    ci_method: str = ""  # "run": the run's own intervals; "t": Student's t over the seeds
    vs_best: str | None = None  # best | not worse | worse | did not learn; None: no test
    p_vs_best: float | None = None  # Holm-adjusted p-value of the test against the best row
    test_vs_best: str | None = None  # the test's name: exact McNemar test, paired t-test
    # False: a run of the row did not learn (record key learned: false); None: unknown
    learned: bool | None = None

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
    runs: dict[str, RunRecord] = field(default_factory=dict, repr=False)  # run id -> record

    def row_runs(self, row: LeaderboardRow) -> list[RunRecord]:
        """The records of ``row``'s runs."""
        return [self.runs[i] for i in row.run_ids if i in self.runs]

    @property
    def table_id(self) -> str:
        """A short name of the table: the first 12 hex digits of its (first) fingerprint."""
        return ",".join(f[:12] for f in self.fingerprints)

    def top1_test(
        self, a: LeaderboardRow, b: LeaderboardRow, alpha: float = stats.ALPHA
    ) -> tuple[Comparison, MetricTest] | None:
        """Row ``a`` against row ``b`` on top-1, and the comparison it belongs to.

        The test is :func:`~bovw_vs_convnet.harness.comparison.compare_runs`'s
        choice: exact McNemar on the stored scores when both rows are one run on
        the same test images, a paired t-test over their matched seeds when they
        have two or more. None where neither is possible (no stored scores,
        nothing to pair): the rows stay untested.
        """
        try:
            comparison = compare_runs(
                self.row_runs(a),
                self.row_runs(b),
                name_a=a.name,
                name_b=b.name,
                metrics=MCNEMAR_METRICS[:1],
                alpha=alpha,
            )
        except DamagedScores as exc:  # a damaged run folder costs its tests, not the table
            warn_damaged(exc)
            return None
        except DataError:
            return None
        test = comparison.test_of("top1")
        return None if test is None else (comparison, test)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def _std(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.stdev(vals) if len(vals) >= 2 else None


def _protocol(record: RunRecord) -> dict[str, Any]:
    split = dict(record.get("split") or {})
    split.pop("seed", None)
    split.pop("split_index", None)  # --splits K: resamplings group into one row, as seeds do
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


def _interval(members: Sequence[RunRecord], metric: str) -> tuple[list[float] | None, str]:
    """A row's 95 % interval of ``metric`` and how it was made (``run`` or ``t``)."""
    if len(members) == 1:
        return _run_interval(members[0], metric), "run"
    values = [v for v in (error_value(r, metric) for r in members) if v is not None]
    ci = stats.t_interval(values)
    # an error lies in [0, 1]; a t-interval over few seeds can reach past either end
    return ([max(0.0, ci[0]), min(1.0, ci[1])] if ci else None), "t"


def _run_interval(record: RunRecord, metric: str) -> list[float] | None:
    """A run's stored interval, or one made from what older records hold (errors, confusion)."""
    stored = error_interval(record, metric)
    if stored is not None:
        return stored
    n_test, confusion = record.get("n_test"), record.get("confusion")
    ci: stats.Interval | None = None
    err = error_value(record, metric)
    if metric in ("top1", "top5") and err is not None and n_test:
        ci = stats.wilson_interval(round(err * n_test), int(n_test))
    elif metric == "mpc" and confusion:
        n = [sum(row) for row in confusion]
        ci = stats.class_mean_interval(
            [t - row[i] for i, (t, row) in enumerate(zip(n, confusion, strict=True))], n
        )
    return list(ci) if ci else None


def build_tables(runs: Iterable[RunRecord], *, significance: bool = True) -> list[LeaderboardTable]:
    """Group finished run records into ranked leaderboard tables (see the module docstring).

    ``significance`` tests every row against the best (:func:`mark_against_best`),
    reading stored test scores; callers that only need the numbers skip it.
    """
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
        mpc = [error_value(r, "mpc") for r in members]
        mpc5 = [error_value(r, "mpc_top5") for r in members]
        intervals = {m: _interval(members, m) for m in ERROR_METRICS}
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
            mpc_err=_mean(mpc),
            mpc_err_std=_std(mpc),
            mpc_top5_err=_mean(mpc5),
            mpc_top5_err_std=_std(mpc5),
            top1_ci=intervals["top1"][0],
            top5_ci=intervals["top5"][0],
            mpc_ci=intervals["mpc"][0],
            mpc_top5_ci=intervals["mpc_top5"][0],
            ci_method=intervals["top1"][1],
            learned=_row_learned(members),
        )
        row.vs_best = NOT_LEARNED if row.learned is False else None
        table = tables.setdefault(
            tuple(fingerprints),
            LeaderboardTable(str(first.get("dataset")), _protocol(first), fingerprints),
        )
        table.rows.append(row)
        table.runs.update({str(r["run_id"]): r for r in members})

    out = sorted(tables.values(), key=lambda t: (t.dataset, t.rows[0].n_train or 0, t.table_id))
    for table in out:
        _mark_variants(table.rows)
        rank_rows(table.rows, by="top1_err")
        if significance:
            mark_against_best(table)
    return out


NOT_LEARNED = "did not learn"  # vs_best of a row with a run at chance (never compared)


def _row_learned(members: Sequence[RunRecord]) -> bool | None:
    """False if any run did not learn, True if every run says it did, else None (old records)."""
    if not all(is_learned(r) for r in members):
        return False
    return True if all(r.get("learned") is True for r in members) else None


def mark_against_best(table: LeaderboardTable, alpha: float = stats.ALPHA) -> None:
    """Test every row against the best (rank 1) on top-1, Holm-corrected; set ``vs_best``.

    The test for a row is :meth:`LeaderboardTable.top1_test`'s; a row it cannot
    test (no stored scores) stays untested (None). A row that did not learn is
    neither the best nor tested: its ``vs_best`` is :data:`NOT_LEARNED`.
    """
    for row in table.rows:
        row.vs_best = NOT_LEARNED if row.learned is False else None
        row.p_vs_best = row.test_vs_best = None
    ranked = [r for r in table.rows if r.learned is not False]  # a row at chance: no test
    if not ranked:
        return
    best, *others = ranked
    best.vs_best = "best"
    tested = []
    for row in others:
        found = table.top1_test(best, row, alpha)
        if found is not None:
            tested.append((row, found[1]))
    rejected, adjusted = stats.holm([t.p_value for _, t in tested], alpha)
    for (row, test), reject, p in zip(tested, rejected, adjusted, strict=True):
        # rejected, and the row's error is the higher one (the best's is never higher)
        row.vs_best = "worse" if reject and test.lower() == "a" else "not worse"
        row.p_vs_best = p
        row.test_vs_best = test.test


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
    """Sort ``rows`` in place, best first by mean ``by`` error (missing last), and number them.

    Rows that did not learn (``learned`` false) come after the rest, unnumbered (None).
    """
    other = "top5_err" if by == "top1_err" else "top1_err"

    def key(row: LeaderboardRow) -> tuple[bool, float, float, str]:
        first, second = getattr(row, by), getattr(row, other)
        inf = float("inf")
        unranked = row.learned is False
        return (
            unranked,
            inf if first is None else first,
            inf if second is None else second,
            row.name,
        )

    rows.sort(key=key)
    for i, row in enumerate(rows, start=1):
        row.rank = None if row.learned is False else i
