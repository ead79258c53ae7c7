"""Top-k error, per-class error and confusion matrix against hand-computed cases."""

import numpy as np
import pytest

from bovw_vs_convnet.harness.metrics import (
    confusion_matrix,
    evaluate,
    mean_per_class_error,
    per_class_error,
    per_class_topk_error,
    ranked_classes,
    topk_error,
)

# 4 samples, 3 classes; labels 0, 1, 2, 2
SCORES = np.array(
    [
        [0.9, 0.05, 0.05],  # label 0: top-1 right
        [0.5, 0.3, 0.2],  # label 1: second
        [0.1, 0.2, 0.7],  # label 2: top-1 right
        [0.6, 0.3, 0.1],  # label 2: third
    ]
)
LABELS = np.array([0, 1, 2, 2])


def test_top1_error_counts_wrong_argmax():
    assert topk_error(SCORES, LABELS, 1) == 0.5


def test_top2_error_counts_labels_outside_best_two():
    assert topk_error(SCORES, LABELS, 2) == 0.25


def test_k_larger_than_classes_is_clipped_to_zero_error():
    assert topk_error(SCORES, LABELS, 5) == 0.0
    assert evaluate(SCORES, LABELS, k=5).top5_k == 3


def test_ties_go_to_the_lower_class_index():
    scores = np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 2.0]])
    assert ranked_classes(scores).tolist() == [[0, 1, 2], [1, 2, 0]]
    # label 1 ties with class 0 in row 0: the lower index wins, so it is an error
    assert topk_error(scores, np.array([1, 2]), 1) == 1.0
    assert topk_error(scores, np.array([1, 2]), 2) == 0.0


def test_nan_scores_rank_last():
    scores = np.array([[np.nan, 0.0, -1.0]])
    assert ranked_classes(scores).tolist() == [[1, 2, 0]]
    assert topk_error(scores, np.array([0]), 2) == 1.0


def test_confusion_matrix_rows_are_true_columns_predicted():
    expected = [[1, 0, 0], [1, 0, 0], [1, 0, 1]]
    assert confusion_matrix(SCORES, LABELS).tolist() == expected


def test_per_class_error_is_nan_for_absent_class():
    err = per_class_error(np.array([[2, 0, 0], [1, 3, 0], [0, 0, 0]]))
    assert err[0] == 0.0
    assert err[1] == 0.25
    assert np.isnan(err[2])


def test_evaluate_collects_everything():
    m = evaluate(SCORES, LABELS)
    assert (m.n, m.n_classes, m.top1_err, m.top5_err) == (4, 3, 0.5, 0.0)
    assert m.per_class_err.tolist() == [0.0, 1.0, 0.5]


def test_mismatched_labels_are_refused():
    with pytest.raises(ValueError, match="4 rows but labels have shape"):
        evaluate(SCORES, LABELS[:3])


def test_label_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        evaluate(SCORES, np.array([0, 1, 2, 3]))


def _one_hot_scores(labels: list[int], predicted: list[int], n_classes: int) -> np.ndarray:
    """Scores whose top-1 class is ``predicted`` and whose runner-up is the next class."""
    scores = np.zeros((len(labels), n_classes))
    for i, p in enumerate(predicted):
        scores[i, p] = 2.0
        scores[i, (p + 1) % n_classes] = 1.0
    return scores


# a hand-made confusion: class 0 has 8 test images (2 taken for class 1), class 1 has 2 (both right)
IMBALANCED_LABELS = [0] * 8 + [1] * 2
IMBALANCED_PRED = [0] * 6 + [1] * 2 + [1] * 2


def test_mean_per_class_error_weighs_each_class_once():
    scores = _one_hot_scores(IMBALANCED_LABELS, IMBALANCED_PRED, 3)
    m = evaluate(scores, np.array(IMBALANCED_LABELS))
    assert m.confusion.tolist() == [[6, 2, 0], [0, 2, 0], [0, 0, 0]]
    assert m.top1_err == pytest.approx(0.2)  # 2 of 10 images
    assert m.mpc_err == pytest.approx(0.125)  # (2/8 + 0/2) / 2; class 2 has no image
    assert mean_per_class_error(per_class_error(m.confusion)) == pytest.approx(0.125)


def test_per_class_top5_error_counts_labels_outside_the_best_k():
    labels = np.array([0, 0, 1, 2])
    scores = np.array(
        [[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0], [1.0, 2.0, 3.0]]
    )  # label ranks: 1st, 3rd, 3rd, 1st
    assert per_class_topk_error(scores, labels, 2).tolist() == [0.5, 1.0, 0.0]
    m = evaluate(scores, labels, k=2)
    assert (m.top5_k, m.top5_err, m.mpc_top5_err) == (2, 0.5, 0.5)


def test_evaluate_gives_wilson_intervals_of_the_errors():
    scores = _one_hot_scores(IMBALANCED_LABELS, IMBALANCED_PRED, 3)
    m = evaluate(scores, np.array(IMBALANCED_LABELS))
    assert m.top1_ci == pytest.approx((0.05668, 0.50984), abs=1e-5)  # Wilson, 2 wrong of 10
    assert m.top5_ci == pytest.approx((0.0, 0.27753), abs=1e-5)  # 0 wrong of 10


def test_mean_per_class_interval_is_a_seeded_class_stratified_bootstrap():
    scores = _one_hot_scores(IMBALANCED_LABELS, IMBALANCED_PRED, 3)
    m = evaluate(scores, np.array(IMBALANCED_LABELS))
    assert m.mpc_ci is not None
    low, high = m.mpc_ci
    # class 1 is always right, so a resample's mean is half of class 0's error: k/16 for k wrong
    assert low == pytest.approx(0.0) and high == pytest.approx(0.3125)
    assert evaluate(scores, np.array(IMBALANCED_LABELS)).mpc_ci == m.mpc_ci  # same seed
