"""PrimalLinearSvm: LinearSVC's objective solved in the primal, warm starts, absent classes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.svm import LinearSVC

from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.estimators.linear_svm import PrimalLinearSvm


def _blobs(n: int = 300, d: int = 5, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes with correlated features (so C matters)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = rng.normal(size=(k, d)) * 1.5
    mix = rng.normal(size=(d, d))
    x = (rng.normal(size=(n, d)) @ mix + centres[y]).astype(np.float32)
    return x, y.astype(np.int64)


def _objective(svm: PrimalLinearSvm | LinearSVC, x: np.ndarray, y: np.ndarray) -> float:
    """Σ_k ½‖w_k‖² + C Σ_i max(0, 1 − y_ik f_ik)², in float64."""
    f = x.astype(np.float64) @ svm.coef_.T + svm.intercept_
    signs = np.where(y[:, None] == np.arange(f.shape[1]), 1.0, -1.0)
    hinge = np.maximum(0.0, 1.0 - signs * f)
    return float(0.5 * (svm.coef_**2).sum() + svm.C * (hinge**2).sum())


def test_the_solution_is_linearsvcs_with_an_unpenalised_intercept() -> None:
    x, y = _blobs()
    primal = PrimalLinearSvm(C=0.1, tol=1e-8, max_iter=2000).fit(x, y)
    # LinearSVC penalises its intercept as a feature of value intercept_scaling:
    # a large one makes that penalty vanish, leaving the same objective
    ref = LinearSVC(C=0.1, intercept_scaling=1000.0, tol=1e-10, max_iter=10_000, dual=False)
    ref.fit(x.astype(np.float64), y)
    assert _objective(primal, x, y) == pytest.approx(_objective(ref, x, y), rel=1e-6)
    np.testing.assert_allclose(primal.coef_, ref.coef_, atol=1e-3)  # float32 products
    np.testing.assert_allclose(primal.intercept_, ref.intercept_, atol=1e-3)


def test_a_warm_start_along_costs_ends_where_a_cold_fit_does() -> None:
    x, y = _blobs(seed=1)
    warm = PrimalLinearSvm(tol=1e-8, max_iter=2000, warm_start=True)
    for c in (0.01, 0.1, 1.0):
        warm.set_params(C=c).fit(x, y)
    cold = PrimalLinearSvm(C=1.0, tol=1e-8, max_iter=2000).fit(x, y)
    assert _objective(warm, x, y) == pytest.approx(_objective(cold, x, y), rel=1e-6)
    assert warm.n_iter_ < cold.n_iter_


def test_a_class_absent_from_training_ranks_last() -> None:
    x, y = _blobs(k=3)
    svm = PrimalLinearSvm(C=1.0, n_classes=4).fit(x, y)
    scores = svm.decision_function(x)
    assert scores.shape == (len(x), 4)
    assert (scores[:, 3] < scores[:, :3].min(axis=1)).all()
    assert svm.classes_.tolist() == [0, 1, 2]


def test_sparse_and_dense_input_give_the_same_model() -> None:
    import scipy.sparse as sp

    x, y = _blobs(seed=2)
    x[np.abs(x) < 0.5] = 0.0
    dense = PrimalLinearSvm(C=0.3, tol=1e-8, max_iter=2000).fit(x, y)
    sparse = PrimalLinearSvm(C=0.3, tol=1e-8, max_iter=2000).fit(sp.csr_matrix(x), y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-3)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"C": 0.0}, "C must be > 0, got 0.0"),
        ({"max_iter": 0}, "max_iter must be ≥ 1, got 0"),
        ({"tol": -1.0}, "tol must be > 0, got -1.0"),
    ],
)
def test_bad_parameters_name_themselves(params: dict[str, float], message: str) -> None:
    x, y = _blobs(n=30)
    with pytest.raises(ConfigError, match=message):
        PrimalLinearSvm(**params).fit(x, y)  # type: ignore[arg-type]


@pytest.mark.parametrize("sparse", [False, True])
def test_fewer_images_than_features_solve_in_their_span_as_in_the_full_eigenbasis(
    sparse: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bovw_vs_convnet.estimators import linear_svm

    x, y = _blobs(n=40, d=120, k=3, seed=2)  # n < d: the n×n Gram matrix's eigenbasis
    data = sp.csr_matrix(x) if sparse else x
    span = PrimalLinearSvm(C=0.001, tol=1e-8, max_iter=2000).fit(data, y)
    assert span._moments_[2] is not None and span._moments_[2].shape == (120, 39)  # rank n - 1
    monkeypatch.setattr(linear_svm, "_SPAN_WHEN_FEWER_ROWS", False)
    full = PrimalLinearSvm(C=0.001, tol=1e-8, max_iter=2000).fit(data, y)
    assert full._moments_[2] is not None and full._moments_[2].shape == (120, 120)
    assert _objective(span, x, y) == pytest.approx(_objective(full, x, y), rel=1e-6)
    # the two preconditioners take L-BFGS along different paths to the same optimum: the
    # weights (unique: ½‖w‖² is strictly convex) agree closely; the unpenalised intercept
    # lies in a flat valley of separable data, and agrees only to 1e-3
    np.testing.assert_allclose(span.coef_, full.coef_, atol=1e-5)
    np.testing.assert_allclose(span.intercept_, full.intercept_, atol=1e-3)
    np.testing.assert_array_equal(span.predict(x), full.predict(x))


def test_many_features_take_their_variances_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from bovw_vs_convnet.estimators import linear_svm

    x, y = _blobs(n=40, d=120, seed=2)
    monkeypatch.setattr(linear_svm, "_FULL_BASIS_MAX", 50)  # above it: a diagonal preconditioner
    svm = PrimalLinearSvm(C=0.001, tol=1e-8, max_iter=2000).fit(x, y)
    assert svm._moments_[2] is None and svm._moments_[1].shape == (120,)
