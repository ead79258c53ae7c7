"""Checks of a fitted state read from a model bundle, field by field, before it scores anything.

:mod:`~bovw_vs_convnet.estimators.estimator_state` rebuilds only allowed classes from
plain values and arrays; these checks say whether what was rebuilt is a fitted model
of the expected shape: every array of the expected dtype kind and shape (its sizes
agreeing with the image size, the code length and the class count of the bundle),
every index in range before it reaches compiled code (libsvm reads a support index
unchecked), every count a plain integer. So a bundle whose arrays disagree with its
settings is refused in one line (:class:`StateError`) before an image is scored, and
no field can make scoring allocate more than the arrays themselves hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from bovw_vs_convnet.estimators.estimator_state import StateError

Shape = Sequence[int | None]  # None: any length on that axis


def integer(value: Any, where: str, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int when it is a plain integer in [low, high]; StateError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise StateError(f"{where} is not an integer")
    if value < low or (high is not None and value > high):
        raise StateError(f"{where} is {int(value)}, outside [{low}, {high}]")
    return int(value)


def array(value: Any, where: str, shape: Shape, kinds: str = "f") -> np.ndarray:
    """``value`` when it is an ndarray of a dtype kind in ``kinds`` and of ``shape``."""
    if not isinstance(value, np.ndarray):
        raise StateError(f"{where} is not an array")
    if value.dtype.kind not in kinds:
        raise StateError(f"{where} has dtype {value.dtype}")
    if value.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(value.shape, shape, strict=True)
    ):
        want_text = "x".join("*" if s is None else str(s) for s in shape)
        raise StateError(f"{where} has shape {value.shape}, not {want_text}")
    return value


def matrix(value: Any, where: str, n_columns: int) -> int:
    """Rows of a dense or sparse (CSR/CSC) float matrix of ``n_columns`` columns."""
    if sp.issparse(value):
        if value.dtype.kind != "f" or value.shape[1] != n_columns:
            raise StateError(f"{where} is not a float matrix of {n_columns} columns")
        return int(value.shape[0])
    return len(array(value, where, (None, n_columns)))


def labels(value: Any, where: str, n_classes: int) -> np.ndarray:
    """Sorted, distinct class indices in [0, n_classes) (a classifier's ``classes_``)."""
    a = array(value, where, (None,), "iu")
    if a.size == 0 or a.min() < 0 or a.max() >= n_classes or np.any(np.diff(a) <= 0):
        raise StateError(f"{where} are not distinct classes below {n_classes}")
    return a


def linear(model: Any, where: str, n_features: int, n_outputs: int) -> None:
    """A linear model's ``coef_`` (n_outputs, n_features) and ``intercept_`` (n_outputs,)."""
    array(getattr(model, "coef_", None), f"{where}.coef_", (n_outputs, n_features))
    array(getattr(model, "intercept_", None), f"{where}.intercept_", (n_outputs,))
    if getattr(model, "n_features_in_", n_features) != n_features:
        raise StateError(f"{where}.n_features_in_ is not {n_features}")


def primal_svm(model: Any, where: str, n_features: int, n_classes: int) -> None:
    """A :class:`~.linear_svm.PrimalLinearSvm` of ``n_classes`` columns."""
    integer(model.__dict__.get("n_classes_"), f"{where}.n_classes_", n_classes, n_classes)
    labels(model.__dict__.get("classes_"), f"{where}.classes_", n_classes)
    linear(model, where, n_features, n_classes)


def liblinear_svm(model: Any, where: str, n_features: int) -> None:
    """One binary ``LinearSVC`` (one row of weights; classes 0 and 1)."""
    array(getattr(model, "classes_", None), f"{where}.classes_", (2,), "iub")
    linear(model, where, n_features, 1)


def libsvm_precomputed(model: Any, where: str, n_train: int) -> None:
    """One binary ``SVC`` on a precomputed kernel of ``n_train`` training images.

    libsvm indexes the kernel row by ``support_`` without a check: every index, and
    every array it walks, is checked here.
    """
    if getattr(model, "kernel", None) != "precomputed" or getattr(model, "_sparse", True):
        raise StateError(f"{where} is not an SVM on a precomputed dense kernel")
    support = array(getattr(model, "support_", None), f"{where}.support_", (None,), "i")
    n_sv = len(support)
    if n_sv and (support.min() < 0 or support.max() >= n_train):
        raise StateError(f"{where}.support_ indexes outside the {n_train} training images")
    n_support = array(getattr(model, "_n_support", None), f"{where}._n_support", (2,), "i")
    if n_support.min() < 0 or int(n_support.sum()) != n_sv:
        raise StateError(f"{where}._n_support does not count its support vectors")
    for name in ("dual_coef_", "_dual_coef_"):
        array(getattr(model, name, None), f"{where}.{name}", (1, n_sv))
    for name in ("intercept_", "_intercept_"):
        array(getattr(model, name, None), f"{where}.{name}", (1,))
    for name in ("_probA", "_probB"):
        array(getattr(model, name, None), f"{where}.{name}", (0,))
    array(getattr(model, "support_vectors_", None), f"{where}.support_vectors_", (0, 0))
    array(getattr(model, "classes_", None), f"{where}.classes_", (2,), "iub")
    shape_fit = getattr(model, "shape_fit_", None)
    if not isinstance(shape_fit, tuple) or tuple(shape_fit) != (n_train, n_train):
        raise StateError(f"{where}.shape_fit_ is not ({n_train}, {n_train})")
    if getattr(model, "n_features_in_", None) != n_train:
        raise StateError(f"{where} is not fitted on {n_train} training images")


def mapped_width(fmap: Any, where: str, n_features: int) -> int:
    """The width of a :class:`~.kernels.KernelFeatureMap`'s output for ``n_features`` inputs,
    its parameters checked against its arrays.
    """
    kernel = getattr(fmap, "kernel", None)
    if kernel in ("hellinger", "linear"):
        return n_features
    inner = fmap.__dict__.get("map_")
    if kernel == "chi2":
        steps = integer(getattr(inner, "sample_steps", None), f"{where}.sample_steps", 1, 3)
        if getattr(fmap, "sample_steps", None) != steps:
            raise StateError(f"{where}.sample_steps disagrees with its sampler's")
        return n_features * (2 * steps - 1)
    if kernel == "rbf":
        comps = array(
            getattr(inner, "components_", None), f"{where}.components_", (None, n_features)
        )
        m = len(comps)
        array(getattr(inner, "normalization_", None), f"{where}.normalization_", (m, m))
        return m
    if kernel == "intersection":
        marks = array(fmap.__dict__.get("landmarks_"), f"{where}.landmarks_", (None, n_features))
        m = len(marks)
        array(fmap.__dict__.get("normalisation_"), f"{where}.normalisation_", (m, m))
        return m
    raise StateError(f"{where} has an unknown kernel {str(kernel)[:20]!r}")


def kernel_svm(clf: Any, where: str, n_features: int, n_classes: int) -> None:
    """A fitted :class:`~.kernel_svm.KernelSvm` scoring ``n_features`` inputs into ``n_classes``."""
    from bovw_vs_convnet.estimators.kernel_svm import KernelSvm

    if not isinstance(clf, KernelSvm):
        raise StateError(f"{where} is not a KernelSvm")
    state = clf.__dict__
    integer(state.get("n_classes_"), f"{where}.n_classes_", n_classes, n_classes)
    known = labels(state.get("classes_"), f"{where}.classes_", n_classes)
    integer(state.get("n_features_in_"), f"{where}.n_features_in_", n_features, n_features)
    models = state.get("models_")
    if not isinstance(models, list) or not models:
        raise StateError(f"{where}.models_ is not a list of SVMs")
    solver = state.get("solver_")
    if solver == "map":
        width = mapped_width(state.get("map_"), f"{where}.map_", n_features)
        if getattr(clf, "linear_solver", None) == "lbfgs":  # every class in one model
            if len(models) != 1:
                raise StateError(f"{where}.models_ holds {len(models)} primal SVMs, not 1")
            if models != [None]:
                primal_svm(models[0], f"{where}.models_[0]", width, n_classes)
            return
    elif solver == "exact":
        n_train = matrix(state.get("train_x_"), f"{where}.train_x_", n_features)
    else:
        raise StateError(f"{where}.solver_ is {str(solver)[:20]!r}")
    if models == [None] and len(known) == 1:  # one class seen: a constant score
        return
    if len(models) != len(known) or len(known) == 1:
        raise StateError(f"{where}.models_ holds {len(models)} SVMs for {len(known)} classes")
    for i, model in enumerate(models):
        if solver == "exact":
            libsvm_precomputed(model, f"{where}.models_[{i}]", n_train)
        else:
            liblinear_svm(model, f"{where}.models_[{i}]", width)
