"""Every metric of a run, computed once from the (n, C) score matrix.

Pipelines return scores (higher means more likely); this module turns them into
top-1 and top-k error, per-class error, the mean per-class error (VLFeat's
``phow_caltech101`` measure: 1 − the mean over classes of each class's recall, so
a large class counts as much as a small one), a confusion matrix and the 95 %
interval of each error (:mod:`~bovw_vs_convnet.harness.stats`), the same way for
BoVW decision values, ConvNet logits and the baseline.

Ties are broken deterministically: among classes with equal scores the lower
class index ranks first (a stable sort of the negated scores). A NaN score ranks
below every number, so a pipeline that emits NaN is counted wrong, not lucky.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bovw_vs_convnet.harness import stats


@dataclass(frozen=True)
class Metrics:
    """The metrics of one scored test set.

    Attributes:
        n: number of scored samples.
        n_classes: number of classes (columns of the score matrix).
        top1_err: fraction of samples whose highest-scoring class is wrong.
        top5_err: fraction whose label is not among the ``top5_k`` best classes.
        top5_k: the k actually used, ``min(5, n_classes)``.
        per_class_err: top-1 error per true class, shape (n_classes,); NaN for a
            class with no test sample.
        confusion: (n_classes, n_classes) counts, rows the true class, columns
            the predicted (top-1) class.
        per_class_top5_err: top-``top5_k`` error per true class; NaN as above.
        mpc_err: mean per-class top-1 error, over the classes with a test sample.
        mpc_top5_err: mean per-class top-``top5_k`` error.
        top1_ci, top5_ci: Wilson 95 % intervals of the two errors.
        mpc_ci, mpc_top5_ci: class-stratified bootstrap 95 % intervals of the
            two mean per-class errors (:func:`~bovw_vs_convnet.harness.stats.class_mean_interval`).
        The intervals are None for an empty test set.
    """

    n: int
    n_classes: int
    top1_err: float
    top5_err: float
    top5_k: int
    per_class_err: np.ndarray
    confusion: np.ndarray
    per_class_top5_err: np.ndarray
    mpc_err: float
    mpc_top5_err: float
    top1_ci: stats.Interval | None
    top5_ci: stats.Interval | None
    mpc_ci: stats.Interval | None
    mpc_top5_ci: stats.Interval | None


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-d (n, n_classes) array, got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(f"scores have {scores.shape[0]} rows but labels have shape {labels.shape}")
    if scores.shape[1] < 1:
        raise ValueError("scores have no class column")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {scores.shape[1] - 1}], got [{labels.min()}, {labels.max()}]"
        )
    return scores, labels.astype(np.int64)


def ranked_classes(scores: np.ndarray, k: int | None = None) -> np.ndarray:
    """Class indices of each row, best first, shape (n, k) (all classes when ``k`` is None).

    ``k`` is clipped to the number of classes. Equal scores keep class order
    (lower index first); NaN ranks last.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-d (n, n_classes) array, got shape {scores.shape}")
    keyed = np.where(np.isnan(scores), np.inf, -scores)  # ascending sort of -score, NaN last
    order = np.argsort(keyed, axis=1, kind="stable")
    if k is None:
        return order
    return order[:, : max(1, min(int(k), scores.shape[1]))]


def correct_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(n,) bool: whether each sample's label is among its ``k`` highest scores (k clipped to C).

    The per-image correctness McNemar's test compares between two runs.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    scores, labels = _check(scores, labels)
    top = ranked_classes(scores, k)
    hit: np.ndarray = (top == labels[:, None]).any(axis=1)
    return hit


def topk_error(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose label is not among the ``k`` highest scores (k clipped to C)."""
    hit = correct_at_k(scores, labels, k)
    if hit.size == 0:
        return float("nan")
    return float(1.0 - hit.mean())


def _class_counts(hit: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, ...]:
    """(wrong answers, test samples) of each class."""
    n = np.bincount(labels, minlength=n_classes)
    wrong = np.bincount(labels, weights=~hit, minlength=n_classes).astype(np.int64)
    return wrong, n


def _rate(wrong: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, wrong / np.where(n > 0, n, 1), np.nan)


def per_class_topk_error(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` error of each true class, shape (n_classes,); NaN where a class has no sample."""
    scores, labels = _check(scores, labels)
    wrong, n = _class_counts(correct_at_k(scores, labels, k), labels, scores.shape[1])
    return _rate(wrong, n)


def mean_per_class_error(per_class_err: np.ndarray) -> float:
    """1 − mean per-class recall: the mean of the per-class errors over classes with a sample.

    NaN when no class has a sample. A confusion [[8, 2], [1, 9]] (the first class
    20 % wrong, the second 10 %) gives 0.15.
    """
    errs = np.asarray(per_class_err, dtype=np.float64)
    errs = errs[~np.isnan(errs)]
    return float(errs.mean()) if errs.size else float("nan")


def confusion_matrix(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C, C) int64 counts of (true class, top-1 predicted class)."""
    scores, labels = _check(scores, labels)
    n_classes = scores.shape[1]
    pred = ranked_classes(scores, 1)[:, 0]
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (labels, pred), 1)
    return out


def per_class_error(confusion: np.ndarray) -> np.ndarray:
    """Top-1 error of each true class from a confusion matrix; NaN where a class has no sample."""
    confusion = np.asarray(confusion)
    totals = confusion.sum(axis=1).astype(np.float64)
    correct = np.diag(confusion).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 1.0 - correct / np.where(totals > 0, totals, 1.0), np.nan)


def evaluate(scores: np.ndarray, labels: np.ndarray, k: int = 5) -> Metrics:
    """All metrics of a score matrix against the true labels.

    Args:
        scores: (n, n_classes) scores, higher meaning more likely.
        labels: (n,) true class indices.
        k: the k of the top-k error (5 for the ILSVRC-style top-5), clipped to n_classes.
    """
    scores, labels = _check(scores, labels)
    confusion = confusion_matrix(scores, labels)
    n_classes = scores.shape[1]
    n = int(labels.size)
    hit1, hit5 = correct_at_k(scores, labels, 1), correct_at_k(scores, labels, k)
    wrong1, per_class_n = _class_counts(hit1, labels, n_classes)
    wrong5, _ = _class_counts(hit5, labels, n_classes)
    per_class_top5 = _rate(wrong5, per_class_n)
    per_class = per_class_error(confusion)
    return Metrics(
        n=n,
        n_classes=n_classes,
        top1_err=float(1.0 - hit1.mean()) if n else float("nan"),
        top5_err=float(1.0 - hit5.mean()) if n else float("nan"),
        top5_k=min(k, n_classes),
        per_class_err=per_class,
        confusion=confusion,
        per_class_top5_err=per_class_top5,
        mpc_err=mean_per_class_error(per_class),
        mpc_top5_err=mean_per_class_error(per_class_top5),
        top1_ci=stats.wilson_interval(int(wrong1.sum()), n),
        top5_ci=stats.wilson_interval(int(wrong5.sum()), n),
        mpc_ci=stats.class_mean_interval(wrong1, per_class_n),
        mpc_top5_ci=stats.class_mean_interval(wrong5, per_class_n),
    )
