"""Where does the ConvNet overtake BoVW? The crossover of two error-vs-training-size curves.

Given each family's error at the same training-set sizes, the difference
``d(n) = err_convnet(n) - err_bovw(n)`` is interpolated linearly in ``log n``
between neighbouring measured sizes. The crossover is the size where ``d``
last goes from positive (BoVW better) to zero or below (ConvNet better) and stays
there up to the largest measured size. When the ConvNet is ahead at every size,
or behind at the largest one, the answer says so instead of extrapolating.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Crossover:
    """The estimated crossover and a sentence that states it.

    Attributes:
        size: estimated training-set size at which the ConvNet's error drops to
            BoVW's; ``None`` when it does not happen inside the measured range.
        bracket: the two measured sizes around ``size`` (or ``None``).
        status: ``crosses``, ``convnet-always-better``, ``bovw-always-better``
            or ``bovw-better-at-largest`` (the ConvNet led somewhere but not at the end).
        sizes: the sizes measured by both families, ascending.
        differences: ``err_convnet - err_bovw`` at each of ``sizes``.
        statement: one sentence for tables, figures and the README.
    """

    size: float | None
    bracket: tuple[int, int] | None
    status: str
    sizes: tuple[int, ...]
    differences: tuple[float, ...]
    statement: str


def estimate_crossover(
    bovw: Mapping[int, float],
    convnet: Mapping[int, float],
    *,
    bovw_name: str = "BoVW",
    convnet_name: str = "ConvNet",
) -> Crossover:
    """Estimate the training-set size at which ``convnet`` overtakes ``bovw``.

    Args:
        bovw: training-set size → error (fraction) of the BoVW pipeline.
        convnet: training-set size → error of the ConvNet, at (some of) the same sizes.
        bovw_name: name used in the statement.
        convnet_name: name used in the statement.

    Only sizes measured by both are used; at least two are needed for an
    interpolated estimate. Equal errors count as the ConvNet having caught up.

    Raises:
        ValueError: no common size, or a size that is not positive.
    """
    common = sorted(set(bovw) & set(convnet))
    if not common:
        raise ValueError("the two curves share no training-set size")
    if common[0] <= 0:
        raise ValueError(f"training-set sizes must be positive, got {common[0]}")
    diffs = [float(convnet[n]) - float(bovw[n]) for n in common]
    sizes = tuple(int(n) for n in common)
    lo, hi = sizes[0], sizes[-1]

    def result(
        size: float | None, bracket: tuple[int, int] | None, status: str, text: str
    ) -> Crossover:
        return Crossover(size, bracket, status, sizes, tuple(diffs), text)

    if all(d <= 0 for d in diffs):
        return result(
            None,
            None,
            "convnet-always-better",
            f"{convnet_name} is at least as good as {bovw_name} at every measured size "
            f"({format_size(lo)} to {format_size(hi)} images): "
            f"the crossover is below {format_size(lo)}.",
        )
    if diffs[-1] > 0:
        if all(d > 0 for d in diffs):
            return result(
                None,
                None,
                "bovw-always-better",
                f"{convnet_name} does not overtake {bovw_name} in the measured range "
                f"({format_size(lo)} to {format_size(hi)} images).",
            )
        return result(
            None,
            None,
            "bovw-better-at-largest",
            f"{convnet_name} does not stay ahead of {bovw_name} in the measured range: "
            f"{bovw_name} is better at the largest size ({format_size(hi)} images).",
        )
    # last index where BoVW is strictly better; the ConvNet leads (or ties) from i+1 on
    i = max(k for k, d in enumerate(diffs) if d > 0)
    n0, n1 = sizes[i], sizes[i + 1]
    d0, d1 = diffs[i], diffs[i + 1]
    t = d0 / (d0 - d1)  # d0 > 0 >= d1, so t in (0, 1]
    size = math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0)))
    return result(
        size,
        (n0, n1),
        "crosses",
        f"{convnet_name} overtakes {bovw_name} at about {format_size(size)} training images "
        f"(between {format_size(n0)} and {format_size(n1)}, log-linear interpolation).",
    )


def format_size(n: float) -> str:
    """A size for a sentence or a label: ``1 000``-style, 2 significant digits above 100."""
    if n >= 100:
        digits = math.floor(math.log10(n)) - 1
        n = round(n / 10**digits) * 10**digits
    return f"{round(n):,}".replace(",", " ")
