"""The crossover estimate on hand-made error curves."""

import math

import pytest

from bovw_vs_convnet.harness.crossover import estimate_crossover


def test_crossing_is_interpolated_linearly_in_log_size() -> None:
    # difference +0.10 at 100, -0.10 at 10 000: zero halfway in log10, i.e. at 1 000
    bovw = {100: 0.20, 10_000: 0.10}
    convnet = {100: 0.30, 10_000: 0.00}
    result = estimate_crossover(bovw, convnet)
    assert result.status == "crosses"
    assert result.bracket == (100, 10_000)
    assert result.size == pytest.approx(1000.0)


def test_crossing_uses_the_last_sign_change_to_convnet() -> None:
    bovw = {100: 0.10, 300: 0.10, 1000: 0.10, 3000: 0.10}
    convnet = {100: 0.20, 300: 0.05, 1000: 0.15, 3000: 0.05}
    # ahead at 300, behind at 1000, ahead for good from 3000: d = +0.05 at 1000, -0.05 at 3000
    result = estimate_crossover(bovw, convnet)
    assert result.bracket == (1000, 3000)
    assert result.size == pytest.approx(math.sqrt(1000 * 3000))
    assert result.differences == pytest.approx((0.10, -0.05, 0.05, -0.05))


def test_convnet_never_overtakes_in_the_range() -> None:
    result = estimate_crossover({100: 0.1, 1000: 0.05}, {100: 0.3, 1000: 0.2})
    assert result.size is None
    assert result.status == "bovw-always-better"
    assert result.statement == (
        "ConvNet does not overtake BoVW in the measured range (100 to 1 000 images)."
    )


def test_convnet_better_everywhere_says_the_crossover_is_below_the_range() -> None:
    result = estimate_crossover({300: 0.2, 3000: 0.1}, {300: 0.2, 3000: 0.05})
    assert result.size is None
    assert result.status == "convnet-always-better"
    assert "below 300" in result.statement


def test_convnet_behind_at_the_largest_size_is_not_a_crossing() -> None:
    result = estimate_crossover({100: 0.2, 1000: 0.1}, {100: 0.1, 1000: 0.2})
    assert result.size is None
    assert result.status == "bovw-better-at-largest"


def test_tie_counts_as_caught_up_and_statement_names_the_size() -> None:
    result = estimate_crossover(
        {100: 0.3, 1000: 0.2}, {100: 0.4, 1000: 0.2}, bovw_name="bovw-tiny", convnet_name="lenet5"
    )
    assert result.size == pytest.approx(1000.0)
    assert result.statement.startswith("lenet5 overtakes bovw-tiny at about 1 000 training images")


def test_only_common_sizes_are_used() -> None:
    result = estimate_crossover({100: 0.2, 500: 0.9, 1000: 0.1}, {100: 0.3, 1000: 0.0})
    assert result.sizes == (100, 1000)


def test_no_common_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="share no training-set size"):
        estimate_crossover({100: 0.1}, {200: 0.1})
