"""Cell text, formatted in one place: numbers as tables, the report and the CLI show them.

Errors are stored as fractions in [0, 1]; everything a person reads shows them in
percent with two decimals, so one run's error reads the same in ``bvc run``,
``bvc bench``, the leaderboard, the ablation table and the report; a 95 % interval
of an error reads ``[2.30, 6.50]`` (:func:`interval`), a p-value four significant
digits (:func:`p_value`). LaTeX tables escape their cells with :func:`latex_escape`.
"""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "–"  # an en dash: a table cell without a value (a failed run, a metric not measured)


def percent(
    value: float | None,
    std: float | None = None,
    *,
    signed: bool = False,
    unit: str = "",
    missing: str = MISSING,
) -> str:
    """A fraction in percent with two decimals: ``"8.46"``, ``"8.46 ± 0.12"``, ``"+1.36"``.

    Args:
        value: the fraction (0.0846 reads ``"8.46"``); None gives ``missing``.
        std: a standard deviation (a fraction too), appended as ``" ± 0.12"`` when given.
        signed: a ``+`` before positive values, for changes in percentage points.
        unit: text after the number(s), e.g. ``" %"`` where no column header says percent.
        missing: the text when ``value`` is None.
    """
    if value is None:
        return missing
    text = f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"
    if std is not None:
        text += f" ± {100 * std:.2f}"
    return text + unit


def interval(ci: Sequence[float] | None, *, missing: str = MISSING) -> str:
    """A 95 % interval of a fraction in percent: ``"[2.30, 6.50]"``; ``missing`` without one."""
    if ci is None or len(ci) != 2 or any(v is None for v in ci):
        return missing
    return f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"


def p_value(p: float | None, *, missing: str = MISSING) -> str:
    """A p-value as a sentence says it: ``"p = 0.02148"`` (4 digits), or ``"p < 0.0001"``."""
    if p is None:
        return missing
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4g}"


def number(value: float | None, fmt: str = "{:,.0f}", *, missing: str = MISSING) -> str:
    """``value`` through ``fmt`` (by default: thousands separated, no decimals), or ``missing``."""
    return missing if value is None else fmt.format(value)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "≈": r"$\approx$",
    "≤": r"$\leq$",
    "α": r"$\alpha$",
    "–": "--",
}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)
