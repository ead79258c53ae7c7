"""The two tests a pipeline makes while it trains: is it above chance, is the mirror worse?

Both are exact binomial tests (``scipy.stats.binomtest``), here in a low module so that
the ConvNet trainer (which must not import the harness) and the harness (which computes
``learned`` for the other pipelines) ask the same question the same way. Example::

    test = chance_test(0.9799, n=2077, chance_err=1 - 1 / 62)
    test.significant  # False: 97.99 % on 62 balanced classes is chance-level noise

- :func:`chance_test`: a one-sided binomial test of the correct answers on a validation
  part against the rate of always answering its most frequent class. A run whose error
  is not significantly below that rate (p >= :data:`CHANCE_ALPHA`) did not learn. An
  error that is the lowest of several looked at (the best of many epochs, of several SVM
  costs) is tested with a Bonferroni correction for the number of ``looks``: the
  minimum of 100 independent chance-level errors would pass an uncorrected p < 0.01 up to
  1 - 0.99^100 = 63 % of the time.
- :func:`mirror_test`: a one-sided exact McNemar test (a binomial test on the
  discordant pairs) of whether scoring mirrored images is worse than scoring them as
  they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# the level of both tests: strict, since a false "learned" would let a chance-level run be ranked
CHANCE_ALPHA = 0.01


@dataclass(frozen=True)
class ChanceTest:
    """A validation error against chance: the counts, the one-sided p-value and the verdict."""

    error: float  # the validation error tested, a fraction
    n: int  # validation images
    chance_err: float  # the error of always answering the most frequent class
    p_value: float  # P(at least this many correct | each answer right at the chance rate)
    significant: bool  # p_adjusted < alpha: significantly below chance
    looks: int = 1  # validation errors the tested one was the lowest of (Bonferroni)
    p_adjusted: float = 1.0  # min(1, looks * p_value); p_value itself for one look

    def record(self) -> dict[str, Any]:
        """The test as plain values, for the run record."""
        return {
            "error": self.error,
            "n": self.n,
            "chance_err": self.chance_err,
            "p_value": self.p_value,
            "significant": self.significant,
            "alpha": CHANCE_ALPHA,
            "looks": self.looks,
            "p_adjusted": self.p_adjusted,
        }

    def p_text(self) -> str:
        """The p-value for a message: ``p = 0.03``, and the corrected one after several looks."""
        text = f"p = {self.p_value:.2g}"
        if self.looks > 1:
            text += f", {self.p_adjusted:.2g} after {self.looks} looks (Bonferroni)"
        return text


def majority_error(labels: np.ndarray) -> float:
    """The error of always answering the most frequent class of ``labels`` (chance)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError("no labels: chance is undefined")
    return float(1.0 - np.bincount(labels).max() / labels.size)


def chance_test(
    error: float, n: int, chance_err: float, alpha: float = CHANCE_ALPHA, looks: int = 1
) -> ChanceTest:
    """Whether ``error`` on ``n`` images is significantly below ``chance_err`` (one-sided).

    The number correct, ``round((1 - error) * n)``, is tested against a binomial of
    ``n`` trials at the chance rate of being right, ``1 - chance_err``. A model that
    answers at chance gets, on 62 balanced classes and 2 077 images, 33.5 right on
    average with a standard deviation of 5.7, so 42 right (97.99 % error) is noise
    (p = 0.085); that is why a bare "below the majority rate" is not a verdict.

    ``looks``: how many validation errors ``error`` is the lowest of (the epochs a run
    looked at, the SVM costs it tried). The verdict is then Bonferroni's: significant
    when ``looks * p`` is below ``alpha``, whatever the dependence between the looks
    (successive epochs of one run are strongly correlated, where Bonferroni is the
    conservative side). One look is the plain test, bit for bit.
    """
    from scipy.stats import binomtest

    if n <= 0:
        raise ValueError("chance_test needs at least one image")
    if looks < 1:
        raise ValueError("chance_test needs at least one look")
    correct = round((1.0 - error) * n)
    p_right = min(max(1.0 - chance_err, 0.0), 1.0)
    p = float(binomtest(correct, n, p_right, alternative="greater").pvalue)
    p_adj = min(1.0, looks * p)
    return ChanceTest(float(error), int(n), float(chance_err), p, p_adj < alpha, int(looks), p_adj)


def chance_test_labels(
    error: float, labels: np.ndarray, alpha: float = CHANCE_ALPHA, looks: int = 1
) -> ChanceTest:
    """:func:`chance_test` of ``error`` on the images whose true ``labels`` are given."""
    return chance_test(error, len(labels), majority_error(labels), alpha, looks)


@dataclass(frozen=True)
class MirrorTest:
    """Plain against mirrored scoring of the same images: errors, discordant pairs, verdict."""

    plain_err: float
    mirror_err: float
    only_plain_right: int  # images right as they are and wrong when mirrored
    only_mirror_right: int  # images wrong as they are and right when mirrored
    p_value: float  # one-sided exact McNemar: the mirror is worse
    worse: bool  # p_value < alpha: the mirror is significantly worse

    def record(self) -> dict[str, Any]:
        """The test as plain values, for the run record."""
        return {
            "plain_err": self.plain_err,
            "mirror_err": self.mirror_err,
            "only_plain_right": self.only_plain_right,
            "only_mirror_right": self.only_mirror_right,
            "p_value": self.p_value,
            "worse": self.worse,
            "alpha": CHANCE_ALPHA,
        }


def mirror_test(
    plain_right: np.ndarray, mirror_right: np.ndarray, alpha: float = CHANCE_ALPHA
) -> MirrorTest:
    """Whether answers on mirrored images are significantly worse (exact McNemar, one-sided).

    ``plain_right`` and ``mirror_right`` are per-image booleans for the same images.
    Only the discordant images count: under "the mirror changes nothing" each is
    equally likely to be right in either version.
    """
    from scipy.stats import binomtest

    plain = np.asarray(plain_right, dtype=bool)
    mirror = np.asarray(mirror_right, dtype=bool)
    b = int((plain & ~mirror).sum())
    c = int((~plain & mirror).sum())
    p = float(binomtest(b, b + c, 0.5, alternative="greater").pvalue) if b + c else 1.0
    n = max(len(plain), 1)
    return MirrorTest(float(1 - plain.sum() / n), float(1 - mirror.sum() / n), b, c, p, p < alpha)
