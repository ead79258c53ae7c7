"""Top-k error, per-class error and confusion matrix against hand-computed cases."""

import numpy as np
import pytest

from bovw_vs_convnet.harness.metrics import (
    confusion_matrix,
    evaluate,
    per_class_error,
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
