"""PrimalLinearSvm above _FULL_BASIS_MAX features: the partial eigenbasis and the span path."""

from __future__ import annotations

import numpy as np
import pytest

from bovw_vs_convnet.estimators import linear_svm
from bovw_vs_convnet.estimators.linear_svm import PrimalLinearSvm


def _blobs(n: int, d: int, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes with correlated features (so C matters)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = rng.normal(size=(k, d)) * 1.5
    mix = rng.normal(size=(d, d))
    x = (rng.normal(size=(n, d)) @ mix + centres[y]).astype(np.float32)
    return x, y.astype(np.int64)


def _objective(svm: PrimalLinearSvm, x: np.ndarray, y: np.ndarray) -> float:
    """Σ_k ½‖w_k‖² + C Σ_i max(0, 1 − y_ik f_ik)², in float64."""
    f = x.astype(np.float64) @ svm.coef_.T + svm.intercept_
    signs = np.where(y[:, None] == np.arange(f.shape[1]), 1.0, -1.0)
    hinge = np.maximum(0.0, 1.0 - signs * f)
    return float(0.5 * (svm.coef_**2).sum() + svm.C * (hinge**2).sum())


def test_a_partial_basis_reaches_the_full_eigenbasis_optimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = _blobs(n=300, d=60, seed=3)
    full = PrimalLinearSvm(C=0.01, tol=1e-8, max_iter=3000).fit(x, y)
    monkeypatch.setattr(linear_svm, "_FULL_BASIS_MAX", 20)
    monkeypatch.setattr(linear_svm, "_PARTIAL_BASIS", True)
    monkeypatch.setattr(linear_svm, "_PARTIAL_RANK", 8)
    monkeypatch.setattr(linear_svm, "_PARTIAL_ROWS", 100)
    partial = PrimalLinearSvm(C=0.01, tol=1e-8, max_iter=3000).fit(x, y)
    basis = partial._moments_
    assert basis.eigvec is not None and basis.eigvec.shape == (60, 8)
    assert basis.rest is not None and basis.rest > 0
    assert _objective(partial, x, y) == pytest.approx(_objective(full, x, y), rel=1e-6)


def test_the_change_of_variables_inverts() -> None:
    rng = np.random.default_rng(0)
    vec, _ = np.linalg.qr(rng.normal(size=(30, 5)))
    basis = linear_svm._Basis(np.zeros(30), np.linspace(1.0, 0.1, 5), vec, 0.05)
    coords = linear_svm._preconditioner(basis, 2.0, 100, np.array([0.1, 0.3, 0.5]))
    w = rng.normal(size=(30, 3))
    np.testing.assert_allclose(coords.weights(coords.coordinates(w)), w, atol=1e-12)


def test_many_features_take_their_variances_by_default() -> None:
    x, y = _blobs(n=40, d=120, seed=2)
    svm = PrimalLinearSvm(C=0.001, tol=1e-8, max_iter=2000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(linear_svm, "_FULL_BASIS_MAX", 50)
        svm.fit(x, y)
    assert svm._moments_.eigvec is None and svm._moments_.eigval.shape == (120,)
