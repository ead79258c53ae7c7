"""The statistics that say how sure a number is and when a difference is real.

Pure arithmetic on counts, correctness vectors and per-seed values; scipy.stats
does the distributions, imported by the function that needs it (importing it costs
more than the rest of ``bvc``'s start-up, and most commands ask for no interval).
Nothing here reads a run record (that is :mod:`~bovw_vs_convnet.harness.comparison`).

- :func:`wilson_interval`: a 95 % interval for one run's error (top-1, top-5):
  Wilson's score interval (Wilson 1927), through ``scipy.stats.binomtest``. It
  stays inside [0, 1] and is not degenerate at 0 errors, unlike the normal one.
- :func:`class_mean_interval`: a 95 % interval for the mean per-class error: a
  percentile bootstrap over the test images, resampled within each class (the
  protocol fixes the test images per class, so the class sizes are held), with a
  fixed seed so the same scores give the same interval. Resampling the n_c images
  of class c with replacement leaves a Binomial(n_c, e_c) number of errors (e_c
  its observed error), so each replicate draws those counts directly. Wilson's
  interval on the mean with n = all test images would be wrong: the mean weighs
  the images of small classes more, so its variance is larger than a plain
  proportion's. Where every class has error 0 (or 1) no resample differs and the
  interval is the point itself; the Wilson interval of top-1 is then the guide.
- :func:`t_interval`: mean ± Student's t over seeds or splits.
- :func:`mcnemar_exact`: McNemar's test on two classifiers' correctness on the
  same test images, exact (a two-sided binomial test on the discordant pairs, as
  Dietterich 1998 recommends for comparing classifiers).
- :func:`paired_test`: a paired t-test or a Wilcoxon signed-rank test over
  matched seeds or splits.
- :func:`holm`: Holm's step-down correction of several p-values (Holm 1979).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

CONFIDENCE = 0.95  # every interval of the toolkit
ALPHA = 0.05  # every test of the toolkit
BOOTSTRAP_RESAMPLES = 2000  # percentile bootstrap of the mean per-class error
BOOTSTRAP_SEED = 0  # fixed: the same scores give the same interval

PairedMethod = Literal["t", "wilcoxon"]
PAIRED_METHODS: tuple[PairedMethod, ...] = ("t", "wilcoxon")
PAIRED_TEST_NAMES = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test"}
MCNEMAR_NAME = "exact McNemar test"

Interval = tuple[float, float]


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval | None:
    """Wilson's score interval of the proportion ``successes / n``; None when ``n`` is 0.

    For an error, pass the number of wrong answers: 2 wrong of 10 gives
    (0.0567, 0.5098); 8 of 10 gives (0.4902, 0.9433).
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    from scipy import stats as sps

    ci = sps.binomtest(int(successes), int(n)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return float(ci.low), float(ci.high)


def class_mean_interval(
    errors_per_class: Sequence[int] | np.ndarray,
    n_per_class: Sequence[int] | np.ndarray,
    confidence: float = CONFIDENCE,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval | None:
    """Percentile-bootstrap interval of the mean per-class error (see the module docstring).

    Args:
        errors_per_class: wrong answers of each class.
        n_per_class: test images of each class; classes with none are left out,
            as they are of the mean itself.
        confidence: the interval's level.
        resamples: bootstrap replicates.
        seed: the generator's seed.

    Returns None when no class has a test image.
    """
    wrong = np.asarray(errors_per_class, dtype=np.int64)
    n = np.asarray(n_per_class, dtype=np.int64)
    if wrong.shape != n.shape or wrong.ndim != 1:
        raise ValueError(f"errors {wrong.shape} and counts {n.shape} must be two equal 1-d arrays")
    if np.any(wrong < 0) or np.any(wrong > n):
        raise ValueError("every class's errors must lie in [0, its test images]")
    present = n > 0
    if not present.any():
        return None
    wrong, n = wrong[present], n[present]
    rng = np.random.default_rng(seed)
    rate = wrong / n
    means = np.empty(resamples)
    chunk = max(1, 4_000_000 // n.size)  # bounded memory for ImageNet-sized class counts
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        draws = rng.binomial(n, rate, size=(size, n.size))  # (size, classes) resampled errors
        means[start : start + size] = (draws / n).mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval | None:
    """Mean ± Student's t interval of ``values`` (one per seed or split); None below 2 values.

    [1, 2, 3, 4, 5] gives 3 ± 2.776 · 1.581 / √5 = (1.037, 4.963).
    """
    vals = np.asarray([float(v) for v in values], dtype=np.float64)
    if vals.size < 2:
        return None
    from scipy import stats as sps

    mean = float(vals.mean())
    half = float(
        sps.t.ppf(0.5 + confidence / 2, df=vals.size - 1) * vals.std(ddof=1) / np.sqrt(vals.size)
    )
    return mean - half, mean + half


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test of two classifiers A and B on the same test images.

    Attributes:
        table: [[both right, A right and B wrong], [A wrong and B right, both wrong]].
        b: A right, B wrong (the first discordant count).
        c: A wrong, B right.
        p_value: two-sided exact p-value: a binomial test of b against b + c at 1/2
            (1.0 when the two never disagree).
    """

    table: tuple[tuple[int, int], tuple[int, int]]
    b: int
    c: int
    p_value: float

    @property
    def n(self) -> int:
        """Test images counted."""
        return sum(sum(row) for row in self.table)


def mcnemar_exact(
    a_correct: Sequence[bool] | np.ndarray, b_correct: Sequence[bool] | np.ndarray
) -> McNemarResult:
    """Exact McNemar test on two boolean correctness vectors over the same test images.

    b = 1 and c = 9 give p = 2 · (1 + 10) / 2¹⁰ = 0.02148 (two-sided).
    """
    a = np.asarray(a_correct, dtype=bool)
    b_ = np.asarray(b_correct, dtype=bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise ValueError(f"correctness vectors {a.shape} and {b_.shape} must be equal and 1-d")
    both = int(np.sum(a & b_))
    only_a = int(np.sum(a & ~b_))
    only_b = int(np.sum(~a & b_))
    neither = int(np.sum(~a & ~b_))
    discordant = only_a + only_b
    from scipy import stats as sps

    p = 1.0 if discordant == 0 else float(sps.binomtest(only_a, discordant, 0.5).pvalue)
    return McNemarResult(((both, only_a), (only_b, neither)), only_a, only_b, min(p, 1.0))


@dataclass(frozen=True)
class PairedResult:
    """A paired test over matched seeds or splits.

    Attributes:
        method: ``t`` (paired t-test) or ``wilcoxon`` (Wilcoxon signed-rank test).
        n: matched pairs.
        mean_difference: mean of a − b.
        statistic: the test statistic (t, or Wilcoxon's W); None when every
            difference is zero.
        p_value: two-sided; 1.0 when every difference is zero.
    """

    method: PairedMethod
    n: int
    mean_difference: float
    statistic: float | None
    p_value: float

    @property
    def test(self) -> str:
        """The test's name, as tables and messages print it."""
        return PAIRED_TEST_NAMES[self.method]


def paired_test(
    a: Sequence[float], b: Sequence[float], method: PairedMethod = "t"
) -> PairedResult | None:
    """Two-sided paired test of ``a`` against ``b`` (``ttest_rel`` or ``wilcoxon``).

    None below 2 pairs. With every difference zero there is nothing to test:
    p = 1. The same non-zero difference on every pair gives the t-test no spread
    to weigh it against (t infinite, p = 0, Student's limit); few seeds make that
    possible, so read such a p with the count of pairs. With 3 pairs the exact
    Wilcoxon test cannot go below p = 0.25, so the t-test is the default for a
    handful of seeds.
    """
    if method not in PAIRED_METHODS:
        raise ValueError(f"unknown paired test {method!r}; known: {', '.join(PAIRED_METHODS)}")
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values {x.shape} and {y.shape} must be equal and 1-d")
    if x.size < 2:
        return None
    # errors are counts over the test set: round away float noise (0.3 - 0.2 != 0.2 - 0.1)
    diff = np.round(x - y, 12)
    if np.all(diff == 0):
        return PairedResult(method, int(x.size), 0.0, None, 1.0)
    if method == "t" and np.ptp(diff) == 0:
        # the same non-zero difference on every pair leaves no spread: t is infinite
        return PairedResult(
            method, int(x.size), float(diff[0]), float(np.sign(diff[0]) * np.inf), 0.0
        )
    from scipy import stats as sps

    res = sps.ttest_1samp(diff, 0.0) if method == "t" else sps.wilcoxon(diff)
    p = float(res.pvalue)
    statistic = float(res.statistic)
    return PairedResult(
        method, int(x.size), float(diff.mean()), statistic, 1.0 if np.isnan(p) else min(p, 1.0)
    )


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> tuple[list[bool], list[float]]:
    """Holm's step-down correction: which hypotheses are rejected, and the adjusted p-values.

    The i-th smallest of m p-values is compared with alpha / (m − i + 1), stopping
    at the first that exceeds it; the adjusted p-value is the running maximum
    of (m − i + 1) · p, capped at 1. [0.01, 0.04, 0.03, 0.005] at 0.05 rejects
    the first and the last.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return [bool(a <= alpha) for a in adjusted], [float(a) for a in adjusted]
