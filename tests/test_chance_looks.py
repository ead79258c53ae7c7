"""The chance test corrected for the number of validation errors a run looked at (Bonferroni).

10 balanced classes, 100 validation images: chance is 90 % error; 19 right (81 %) has
p = 0.00458 alone, so it passes p < 0.01 once, but not as the best of 3 or more looks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bovw_vs_convnet.convnet.stopping import (
    StoppingRule,
    epoch_verdict,
    learned_record,
    looks_taken,
)
from bovw_vs_convnet.harness.record import learned_fields
from bovw_vs_convnet.significance import chance_test

LABELS = np.arange(100) % 10  # chance: 90 % error
P19 = 0.004580754180004488  # P(X >= 19), X ~ B(100, 0.1)


def test_one_look_is_the_plain_test_bit_for_bit() -> None:
    test = chance_test(0.81, 100, 0.9)
    assert test.p_value == pytest.approx(P19, rel=1e-12)
    assert (test.p_adjusted, test.looks, test.significant) == (test.p_value, 1, True)


def test_the_lowest_of_several_errors_is_tested_at_alpha_over_the_looks() -> None:
    two, three = chance_test(0.81, 100, 0.9, looks=2), chance_test(0.81, 100, 0.9, looks=3)
    p = two.p_value
    assert (two.p_adjusted, two.significant) == (2 * p, True)
    assert (three.p_adjusted, three.significant) == (3 * p, False)
    assert chance_test(0.81, 100, 0.9, looks=1000).p_adjusted == 1.0
    assert three.record()["looks"] == 3 and three.record()["p_adjusted"] == 3 * p


def test_no_looks_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one look"):
        chance_test(0.5, 10, 0.9, looks=0)


def test_a_best_epoch_that_passes_only_alone_does_not_make_a_run_learned() -> None:
    curve = [0.90, 0.88, 0.81, 0.86, 0.89]  # the dip at epoch 3: 19 right
    alone = learned_record("lenet5", [0.81], 1, LABELS)
    assert (alone["learned"], alone["chance_test"]["looks"]) == (True, 1)
    record = learned_record("lenet5", curve, 3, LABELS)
    assert (record["learned"], record["beat_majority_class"]) == (False, False)
    assert record["chance_test"]["looks"] == 5
    assert record["chance_test"]["p_adjusted"] == pytest.approx(5 * P19, rel=1e-12)


def test_a_rescued_attempts_epochs_count_as_looks() -> None:
    rescues = [{"epochs_run": 2, "val_error": [0.9, 0.9]}]
    assert looks_taken(1, rescues) == 3 and looks_taken(0, []) == 1
    record = learned_record("lenet5", [0.81], 1, LABELS, rescues)
    assert (record["learned"], record["chance_test"]["looks"]) == (False, 3)


def test_a_run_that_learns_clearly_is_still_learned_after_many_looks() -> None:
    curve = [0.90, 0.60, 0.35, 0.25, 0.30] + [0.28] * 95  # 75 right: p ~ 1e-40
    record = learned_record("lenet5", curve, 4, LABELS)
    assert (record["learned"], record["chance_test"]["looks"]) == (True, 100)


def _best_and_learning(rule: StoppingRule, errors: list[float]) -> tuple[int, int]:
    """Best and learning epoch as the trainer finds them: each epoch tested at alpha / looks."""
    best_epoch, best_err, learning = 0, math.inf, 0
    for epoch, err in enumerate(errors, start=1):
        significant = chance_test(err, 100, 0.9, looks=rule.looks).significant
        v = epoch_verdict(
            rule, epoch, err, significant, best_epoch=best_epoch, best_err=best_err,
            learning_epoch=learning,
        )  # fmt: skip
        learning = v.learning_epoch
        if v.best:
            best_epoch, best_err = epoch, err
    return best_epoch, learning


def test_a_chance_level_dip_is_no_best_epoch_when_the_run_plans_many() -> None:
    errors = [0.90, 0.88, 0.81, 0.86, 0.89]
    one = StoppingRule(patience=0, check_epoch=1, stop_if_not_learning=False, looks=1)
    many = StoppingRule(patience=0, check_epoch=1, stop_if_not_learning=False, looks=100)
    assert _best_and_learning(one, errors) == (3, 3)
    assert _best_and_learning(many, errors) == (0, 0)
    assert _best_and_learning(many, [*errors, 0.70, 0.75]) == (6, 6)  # 30 right: p ~ 1e-8


def test_a_pipeline_that_tried_several_costs_is_corrected_for_them() -> None:
    one = learned_fields({"val_errors_by_C": {"1.0": 0.81}}, LABELS)
    three = learned_fields({"val_errors_by_C": {"0.1": 0.9, "1.0": 0.81, "10.0": 0.85}}, LABELS)
    assert (one["learned"], one["extra"]["chance_test"]["looks"]) == (True, 1)
    assert (three["learned"], three["extra"]["chance_test"]["looks"]) == (False, 3)


def test_bvc_runs_warning_gives_the_corrected_p_after_several_looks() -> None:
    from bovw_vs_convnet.cli.run import not_learned_warning

    test = chance_test(0.81, 100, 0.9, looks=5).record()
    warning = not_learned_warning({"model": "lenet5", "extra": {"chance_test": test}})
    assert "(90.00 %, binomial p = 0.0046, 0.023 after 5 looks (Bonferroni));" in warning
