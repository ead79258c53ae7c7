"""Whether two runs, or two leaderboard rows, differ for real.

Two kinds of evidence, chosen by what the runs share:

- **The same test images** (one run on each side; the same ids in each run
  folder's ``ids.npy``): the exact McNemar test on the per-image top-1 and top-k
  correctness recomputed from the stored ``scores.npy`` (Dietterich 1998: the
  test with an acceptable type-I error for two classifiers on one test set).
- **Matched seeds or splits** (two or more pairs of runs with the same split
  fingerprint and seed): a paired test over the pairs of errors, Student's paired
  t-test by default or the Wilcoxon signed-rank test.

Runs on different test images are refused (:class:`DifferentTestImages`). The
tests themselves are :mod:`~bovw_vs_convnet.harness.stats`; this module pairs
the runs, reads their scores and says the result in one line.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness import stats
from bovw_vs_convnet.harness.formatting import p_value, percent
from bovw_vs_convnet.harness.metrics import correct_at_k
from bovw_vs_convnet.harness.record import RunRecord, error_value
from bovw_vs_convnet.harness.run_folder import DamagedScores, load_score_arrays

log = logging.getLogger(__name__)

Kind = Literal["mcnemar", "paired"]
METRIC_LABELS = {"top1": "top-1", "top5": "top-5", "mpc": "mean per-class", "mpc_top5": "mpc top-5"}
MCNEMAR_METRICS = ("top1", "top5")  # per-image correctness exists for these
PAIRED_METRICS = ("top1", "top5", "mpc")


class DifferentTestImages(DataError):
    """Two runs to be compared image by image were not scored on the same test images."""


class NoScores(DataError):
    """A run's folder holds no stored test scores (``scores.npy``, ``labels.npy``, ``ids.npy``)."""


@dataclass(frozen=True)
class MetricTest:
    """One metric's test between A and B.

    Attributes:
        metric: ``top1``, ``top5`` or ``mpc`` (the record key without ``_err``).
        test: the test's name (``exact McNemar test``, ``paired t-test``, ...).
        a_err, b_err: the errors compared (means over the pairs for a paired test).
        p_value: two-sided.
        n: test images (McNemar) or matched pairs (paired test).
        table: McNemar's 2×2 table [[both right, A only], [B only, both wrong]].
        statistic: the paired test's statistic (t or W); None for McNemar.
    """

    metric: str
    test: str
    a_err: float | None
    b_err: float | None
    p_value: float
    n: int
    table: tuple[tuple[int, int], tuple[int, int]] | None = None
    statistic: float | None = None

    def lower(self) -> Literal["a", "b"] | None:
        """The side with the lower error; None for equal or missing errors."""
        if self.a_err is None or self.b_err is None or self.a_err == self.b_err:
            return None
        return "a" if self.a_err < self.b_err else "b"

    def better(self, alpha: float = stats.ALPHA) -> Literal["a", "b"] | None:
        """The side with the lower error when the difference is significant at ``alpha``."""
        return self.lower() if self.p_value <= alpha else None

    def evidence(self) -> str:
        """The test and its numbers: ``exact McNemar test on 15 test images, b = 1, c = 9, ...``."""
        if self.table is not None:
            (_, b), (c, _) = self.table
            counts = f"b = {b}, c = {c}"
            return f"{self.test} on {self.n} test images, {counts}, {p_value(self.p_value)}"
        symbol = "W" if self.test == stats.PAIRED_TEST_NAMES["wilcoxon"] else "t"
        stat = "" if self.statistic is None else f", {symbol} = {self.statistic:.3g}"
        return f"{self.test} over {self.n} matched seeds{stat}, {p_value(self.p_value)}"


@dataclass(frozen=True)
class Comparison:
    """The tests of A against B, and the run pairs they rest on."""

    name_a: str
    name_b: str
    kind: Kind
    tests: list[MetricTest]
    pairs: list[tuple[str, str]]  # (run id of A, run id of B), matched
    alpha: float = stats.ALPHA

    def test_of(self, metric: str) -> MetricTest | None:
        """The test of ``metric`` (``top1``, ``top5``, ``mpc``), if there is one."""
        return next((t for t in self.tests if t.metric == metric), None)

    def verdict(self, test: MetricTest) -> str:
        """One line: who is better on the metric, or that the difference is not significant."""
        label = METRIC_LABELS.get(test.metric, test.metric)
        a = f"{self.name_a} ({percent(test.a_err, unit=' %')})"
        b = f"{self.name_b} ({percent(test.b_err, unit=' %')})"
        side = test.better(self.alpha)
        if side is None:
            return (
                f"{label}: no significant difference between {a} and {b} at α = {self.alpha:g} "
                f"({test.evidence()})"
            )
        winner, loser = (a, b) if side == "a" else (b, a)
        return f"{label}: {winner} is better than {loser} at α = {self.alpha:g} ({test.evidence()})"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (``bvc compare --json``)."""
        return {
            "a": self.name_a,
            "b": self.name_b,
            "kind": self.kind,
            "alpha": self.alpha,
            "pairs": [list(p) for p in self.pairs],
            "tests": [
                {
                    "metric": t.metric,
                    "test": t.test,
                    "a_err": t.a_err,
                    "b_err": t.b_err,
                    "p_value": t.p_value,
                    "n": t.n,
                    "table": [list(r) for r in t.table] if t.table else None,
                    "statistic": t.statistic,
                    "better": {"a": self.name_a, "b": self.name_b, None: None}[
                        t.better(self.alpha)
                    ],
                    "verdict": self.verdict(t),
                }
                for t in self.tests
            ],
        }


_WARNED: set[str] = set()  # damaged run folders already named in a warning, once per process


def warn_damaged(exc: DamagedScores) -> None:
    """Log one warning line naming a run whose scores are damaged, once per process.

    A table leaves such a run untested and goes on (the leaderboard, the report, a
    bench's tables); ``bvc compare`` of that run is the one-line error instead.
    """
    if str(exc) not in _WARNED:
        _WARNED.add(str(exc))
        log.warning("%s; its tests on the test images are left out", exc)


@functools.lru_cache(maxsize=64)
def _correctness(run_dir: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, correct) of a committed run's test set; run folders never change once committed."""
    folder = Path(run_dir)
    try:
        scores, labels, ids = load_score_arrays(folder, folder.name)
    except DamagedScores:
        raise
    except DataError as exc:
        raise NoScores(f"run folder {folder} has no stored test scores ({exc})") from None
    return ids.astype(str), correct_at_k(scores, labels, k)


def correctness(record: RunRecord, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(test ids, per-image top-``k`` correctness) of a stored run.

    Raises :class:`NoScores` when the arrays are absent, :class:`DamagedScores` when
    they are there but fail a check (a foreign dtype, a truncated file, labels that
    are not columns of the scores): a run folder may come from elsewhere.
    """
    run_dir = record.get("run_dir")
    if not run_dir:
        raise NoScores(f"run {record.get('run_id')!r} has no run folder with stored test scores")
    return _correctness(str(run_dir), int(k))


def _top_k(a: RunRecord, b: RunRecord) -> int:
    return int(min(a.get("top5_k") or 5, b.get("top5_k") or 5))


def mcnemar_runs(
    a: RunRecord,
    b: RunRecord,
    *,
    name_a: str | None = None,
    name_b: str | None = None,
    metrics: Sequence[str] = MCNEMAR_METRICS,
    alpha: float = stats.ALPHA,
) -> Comparison:
    """Exact McNemar tests of run ``a`` against run ``b`` on their common test images.

    Raises:
        DifferentTestImages: the two runs' ``ids.npy`` do not hold the same ids.
        NoScores: a run has no stored scores.
    """
    name_a = name_a or str(a.get("run_id"))
    name_b = name_b or str(b.get("run_id"))
    k5 = _top_k(a, b)
    tests = []
    for metric in metrics:
        if metric not in MCNEMAR_METRICS:
            raise ValueError(f"McNemar's test needs per-image correctness; {metric!r} has none")
        k = 1 if metric == "top1" else k5
        ids_a, ok_a = correctness(a, k)
        ids_b, ok_b = correctness(b, k)
        ok_b = _aligned(ids_a, ids_b, ok_b, a, b)
        result = stats.mcnemar_exact(ok_a, ok_b)
        n = result.n
        tests.append(
            MetricTest(
                metric,
                stats.MCNEMAR_NAME,
                float(1 - ok_a.mean()) if n else None,
                float(1 - ok_b.mean()) if n else None,
                result.p_value,
                n,
                table=result.table,
            )
        )
    pair = (str(a.get("run_id")), str(b.get("run_id")))
    return Comparison(name_a, name_b, "mcnemar", tests, [pair], alpha)


def _aligned(
    ids_a: np.ndarray, ids_b: np.ndarray, ok_b: np.ndarray, a: RunRecord, b: RunRecord
) -> np.ndarray:
    """``ok_b`` reordered to ``ids_a``'s order; DifferentTestImages unless the ids are the same."""
    if ids_a.shape == ids_b.shape and np.array_equal(ids_a, ids_b):
        return ok_b
    common = np.intersect1d(ids_a, ids_b)
    if not (common.size == ids_a.size == ids_b.size and len(set(ids_a.tolist())) == ids_a.size):
        raise DifferentTestImages(
            f"runs {a.get('run_id')} and {b.get('run_id')} were scored on different test images "
            f"({ids_a.size} and {ids_b.size} ids, {common.size} in common); "
            "McNemar's test needs the same ones"
        )
    where = {s: i for i, s in enumerate(ids_b.tolist())}
    return ok_b[[where[s] for s in ids_a.tolist()]]


def _pair_key(record: RunRecord) -> tuple[str, int]:
    return (str(record.get("split_fingerprint")), int(record.get("seed", 0)))


def pair_runs(
    runs_a: Sequence[RunRecord], runs_b: Sequence[RunRecord]
) -> list[tuple[RunRecord, RunRecord]]:
    """Pairs of runs on one split fingerprint and seed, by seed (a repeat: the later run)."""
    by_a = {_pair_key(r): r for r in runs_a}
    by_b = {_pair_key(r): r for r in runs_b}
    common = sorted(set(by_a) & set(by_b), key=lambda key: (key[1], key[0]))  # by seed
    return [(by_a[k], by_b[k]) for k in common]


def paired_runs(
    pairs: Sequence[tuple[RunRecord, RunRecord]],
    *,
    name_a: str,
    name_b: str,
    method: stats.PairedMethod = "t",
    metrics: Sequence[str] = PAIRED_METRICS,
    alpha: float = stats.ALPHA,
) -> Comparison:
    """A paired test of each metric over matched runs (two or more pairs with the metric)."""
    tests = []
    for metric in metrics:
        values = [(error_value(a, metric), error_value(b, metric)) for a, b in pairs]
        kept = [(float(x), float(y)) for x, y in values if x is not None and y is not None]
        result = stats.paired_test([x for x, _ in kept], [y for _, y in kept], method)
        if result is None:
            continue
        tests.append(
            MetricTest(
                metric,
                result.test,
                float(np.mean([x for x, _ in kept])),
                float(np.mean([y for _, y in kept])),
                result.p_value,
                result.n,
                statistic=result.statistic,
            )
        )
    ids = [(str(a.get("run_id")), str(b.get("run_id"))) for a, b in pairs]
    return Comparison(name_a, name_b, "paired", tests, ids, alpha)


def compare_runs(
    runs_a: Sequence[RunRecord],
    runs_b: Sequence[RunRecord],
    *,
    name_a: str,
    name_b: str,
    method: stats.PairedMethod = "t",
    metrics: Sequence[str] | None = None,
    alpha: float = stats.ALPHA,
) -> Comparison:
    """The test the runs allow: paired over 2+ matched seeds, else McNemar on one pair.

    A single run on each side is compared image by image even when their split
    fingerprints differ (two training-set sizes tested on one official test set),
    as long as their test ids are the same.

    Raises:
        DifferentTestImages: one run each, on different test images.
        NoScores: one pair to compare and no stored scores.
        DataError: several runs on a side and fewer than two matched pairs.
    """
    pairs = pair_runs(runs_a, runs_b)
    if len(pairs) >= 2:
        return paired_runs(
            pairs,
            name_a=name_a,
            name_b=name_b,
            method=method,
            metrics=metrics or PAIRED_METRICS,
            alpha=alpha,
        )
    if len(pairs) == 1:
        a, b = pairs[0]
    elif len(runs_a) == 1 and len(runs_b) == 1:
        a, b = runs_a[0], runs_b[0]
    else:
        raise DataError(
            f"{name_a} and {name_b} share no seed and split: nothing to pair "
            f"({len(runs_a)} and {len(runs_b)} runs)"
        )
    use = [m for m in (metrics or MCNEMAR_METRICS) if m in MCNEMAR_METRICS]
    return mcnemar_runs(a, b, name_a=name_a, name_b=name_b, metrics=use, alpha=alpha)
