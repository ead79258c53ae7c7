"""The statistics against textbook values: Wilson, t-interval, exact McNemar, Holm, paired tests."""

import numpy as np
import pytest

from bovw_vs_convnet.harness.stats import (
    class_mean_interval,
    holm,
    mcnemar_exact,
    paired_test,
    t_interval,
    wilson_interval,
)


def test_wilson_interval_of_8_successes_in_10():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=5e-5)


def test_wilson_interval_at_zero_errors_is_not_degenerate():
    low, high = wilson_interval(0, 359) or (None, None)
    assert low == 0.0
    assert high == pytest.approx(0.010587, abs=1e-6)  # z² / (n + z²)


def test_wilson_interval_of_no_sample_is_none_and_bad_counts_are_refused():
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match=r"successes must lie in \[0, 10\]"):
        wilson_interval(11, 10)


def test_t_interval_of_five_values():
    # 3 ± t(0.975, 4) · s / √5 = 3 ± 2.7764 · 1.5811 / 2.2361
    assert t_interval([1, 2, 3, 4, 5]) == pytest.approx((1.0368, 4.9632), abs=5e-5)


def test_t_interval_needs_two_values():
    assert t_interval([0.1]) is None


def test_exact_mcnemar_with_one_and_nine_discordant_pairs():
    a = np.array([True] * 1 + [False] * 9 + [True] * 5)  # 5 images both get right
    b = np.array([False] * 1 + [True] * 9 + [True] * 5)
    result = mcnemar_exact(a, b)
    assert result.table == ((5, 1), (9, 0))
    assert (result.b, result.c, result.n) == (1, 9, 15)
    assert result.p_value == pytest.approx(0.02148, abs=5e-6)  # 2 · 11 / 1024


def test_mcnemar_of_classifiers_that_never_disagree_has_p_one():
    same = np.array([True, False, True])
    assert mcnemar_exact(same, same).p_value == 1.0


def test_holm_rejects_the_hypotheses_below_the_step_down_thresholds():
    rejected, adjusted = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    # sorted: 0.005 < 0.05/4, 0.01 < 0.05/3, then 0.03 > 0.05/2 stops
    assert rejected == [True, False, False, True]
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_paired_t_test_matches_the_one_sample_t_on_the_differences():
    result = paired_test([0.10, 0.20, 0.30], [0.20, 0.25, 0.50], "t")
    assert result is not None
    # differences -0.10, -0.05, -0.20: mean -0.1167, s 0.0764, t = -2.6458 on 2 degrees of freedom
    assert (result.test, result.n) == ("paired t-test", 3)
    assert result.statistic == pytest.approx(-2.6458, abs=5e-5)
    assert result.p_value == pytest.approx(0.11808, abs=5e-6)


def test_wilcoxon_with_three_pairs_cannot_go_below_a_quarter():
    result = paired_test([0.10, 0.20, 0.30], [0.20, 0.25, 0.50], "wilcoxon")
    assert result is not None
    assert (result.test, result.statistic, result.p_value) == (
        "Wilcoxon signed-rank test",
        0.0,
        0.25,
    )


def test_paired_test_of_equal_values_has_p_one_and_of_one_pair_is_none():
    result = paired_test([0.1, 0.2], [0.1, 0.2])
    assert result is not None and (result.p_value, result.statistic) == (1.0, None)
    assert paired_test([0.1], [0.2]) is None


def test_class_mean_interval_is_seeded_and_leaves_out_empty_classes():
    first = class_mean_interval([2, 5, 0], [30, 30, 0])
    assert first == class_mean_interval([2, 5, 0], [30, 30, 0])  # the same seed
    assert first is not None
    low, high = first
    assert low < (2 / 30 + 5 / 30) / 2 < high
    assert class_mean_interval([0, 0], [0, 0]) is None


def test_class_mean_interval_is_wider_than_wilson_for_a_small_class():
    # 90 images of class 0 (9 wrong) and 10 of class 1 (1 wrong): the mean per-class error
    # is 0.10 as the top-1 error is, but its small class weighs half, so it is less certain
    mpc = class_mean_interval([9, 1], [90, 10])
    top1 = wilson_interval(10, 100)
    assert mpc is not None and top1 is not None
    assert mpc[1] - mpc[0] > top1[1] - top1[0]


def test_the_same_difference_on_every_pair_leaves_the_t_test_no_spread():
    # float noise aside (0.3 - 0.2 != 0.2 - 0.1), both pairs differ by 0.1: t is infinite
    result = paired_test([0.2, 0.3], [0.1, 0.2], "t")
    assert result is not None
    assert (result.statistic, result.p_value) == (float("inf"), 0.0)
    assert result.mean_difference == pytest.approx(0.1)
