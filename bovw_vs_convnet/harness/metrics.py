"""Every metric of a run, computed once from the (n, C) score matrix.

Pipelines return scores (higher means more likely); this module turns them into
top-1 and top-k error, per-class error and a confusion matrix, the same way for
BoVW decision values, ConvNet logits and the baseline.

Ties are broken deterministically: among classes with equal scores the lower
class index ranks first (a stable sort of the negated scores). A NaN score ranks
below every number, so a pipeline that emits NaN is counted wrong, not lucky.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    """

    n: int
    n_classes: int
    top1_err: float
    top5_err: float
    top5_k: int
    per_class_err: np.ndarray
    confusion: np.ndarray


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


def topk_error(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of samples whose label is not among the ``k`` highest scores (k clipped to C)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    scores, labels = _check(scores, labels)
    if labels.size == 0:
        return float("nan")
    top = ranked_classes(scores, k)
    hit = (top == labels[:, None]).any(axis=1)
    return float(1.0 - hit.mean())


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
    return Metrics(
        n=int(labels.size),
        n_classes=n_classes,
        top1_err=topk_error(scores, labels, 1),
        top5_err=topk_error(scores, labels, k),
        top5_k=min(k, n_classes),
        per_class_err=per_class_error(confusion),
        confusion=confusion,
    )
