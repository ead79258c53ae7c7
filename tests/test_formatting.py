"""The one percent formatter every table and message uses, and its number sibling."""

import pytest

from bovw_vs_convnet.cli.options import percent as cli_percent
from bovw_vs_convnet.harness.formatting import interval, latex_escape, number, p_value, percent


@pytest.mark.parametrize(
    ("args", "kwargs", "text"),
    [
        ((0.0846,), {}, "8.46"),
        ((0.0846, 0.0012), {}, "8.46 ± 0.12"),
        ((0.0136,), {"signed": True}, "+1.36"),
        ((-0.0136,), {"signed": True}, "-1.36"),
        ((0.0,), {"signed": True}, "+0.00"),
        ((None,), {}, "–"),
        ((None, 0.01), {"missing": "n/a"}, "n/a"),
        ((0.0846,), {"unit": " %"}, "8.46 %"),
        ((0.2, 0.0), {}, "20.00 ± 0.00"),
    ],
)
def test_percent(args: tuple, kwargs: dict, text: str) -> None:
    assert percent(*args, **kwargs) == text


def test_cli_percent_is_the_message_form() -> None:
    assert (cli_percent(0.0846), cli_percent(None)) == ("8.46 %", "n/a")


def test_number_separates_thousands_and_marks_missing() -> None:
    assert (number(1293), number(1.234, "{:,.2f}"), number(None)) == ("1,293", "1.23", "–")


def test_interval_reads_in_percent_and_marks_missing() -> None:
    assert (interval([0.0230, 0.0650]), interval(None)) == ("[2.30, 6.50]", "–")


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.021484375, "p = 0.02148"), (1.0, "p = 1"), (0.00003, "p < 0.0001"), (None, "–")],
)
def test_p_value_has_four_significant_digits(p: float | None, text: str) -> None:
    assert p_value(p) == text


def test_latex_escapes_the_marks_of_the_tests() -> None:
    assert latex_escape("≈ best, α ≤ 0.05") == r"$\approx$ best, $\alpha$ $\leq$ 0.05"
