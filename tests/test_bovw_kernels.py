"""Exact kernels against hand computations; feature maps against exact kernels; the SVM stage."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bovw_vs_convnet.estimators.kernel_svm import KernelSvm
from bovw_vs_convnet.estimators.kernels import KernelFeatureMap, chi2_kernel, intersection_kernel


def test_chi2_kernel_matches_hand_computation() -> None:
    x = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    # k(x0, x1) = 2·0.5·0.2/0.7 + 2·0.5·0.3/0.8 + 0 = 0.285714 + 0.375
    k = chi2_kernel(x)
    assert k[0, 1] == pytest.approx(0.2857142857 + 0.375)
    assert k[0, 0] == pytest.approx(1.0)  # Σ 2x²/2x = Σ x = 1 for an L1 histogram
    np.testing.assert_allclose(chi2_kernel(sp.csr_matrix(x)), k)


def test_intersection_kernel_matches_hand_computation() -> None:
    x = np.array([[0.5, 0.5, 0.0]])
    y = np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(intersection_kernel(x, y), [[0.5, 0.5]])


def test_chi2_feature_map_approximates_exact_kernel() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((30, 20))
    x /= x.sum(axis=1, keepdims=True)
    phi = KernelFeatureMap("chi2", sample_steps=3).fit(x).transform(x)
    approx = phi @ phi.T
    np.testing.assert_allclose(approx, chi2_kernel(x), rtol=0.02)


def test_hellinger_map_is_exact() -> None:
    x = np.array([[0.25, 0.75], [1.0, 0.0]])
    phi = KernelFeatureMap("hellinger").fit(x).transform(x)
    assert (phi @ phi.T)[0, 1] == pytest.approx(0.5)


def _separable(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.random((n, 9)) * 0.2
    x[np.arange(n), y * 3] += 1.0
    return x / x.sum(axis=1, keepdims=True), y


@pytest.mark.parametrize("solver", ["exact", "map"])
def test_svm_separates_and_scores_absent_class_last(solver: str) -> None:
    x, y = _separable()
    clf = KernelSvm(solver=solver, C=1.0, n_classes=4).fit(x, y)  # type: ignore[arg-type]
    scores = clf.decision_function(x)
    assert scores.shape == (60, 4)
    assert (scores.argmax(axis=1) == y).mean() == 1.0
    assert (scores[:, 3] < scores[:, :3].min(axis=1)).all()
    assert clf.solver_ == solver


def test_svm_auto_solver_switches_on_size_and_picks_c_on_val() -> None:
    x, y = _separable()
    clf = KernelSvm(exact_max_train=50, C_grid=(0.01, 1.0)).fit(x, y, x, y)
    assert clf.solver_ == "map"
    assert set(clf.val_errors_) == {0.01, 1.0}
    assert min(clf.val_errors_, key=lambda c: (clf.val_errors_[c], c)) == clf.C_


def test_c_is_chosen_on_a_stratified_subset_then_refit_on_everything() -> None:
    x, y = _separable()
    clf = KernelSvm(solver="map", C_grid=(0.1, 1.0), select_max_train=30).fit(x, y, x, y)
    assert clf.selected_on_ == 30
    from sklearn.svm import LinearSVC

    phi = KernelFeatureMap("chi2").fit(x).transform(x)
    full = LinearSVC(C=clf.C_, dual=True, max_iter=1000, tol=1e-3, random_state=0)
    full.fit(phi, y == 0)
    np.testing.assert_allclose(clf.models_[0].coef_, full.coef_, rtol=1e-6)


@pytest.mark.parametrize(
    ("solver", "linear_solver"), [("exact", "liblinear"), ("map", "liblinear"), ("map", "lbfgs")]
)
def test_a_fixed_c_is_still_scored_on_the_validation_images(
    solver: str, linear_solver: str
) -> None:
    x, y = _separable()
    y_val = y.copy()
    y_val[:6] = (y[:6] + 1) % 3  # 6 of 60 answers the features do not predict: 10 % error
    clf = KernelSvm(solver=solver, C=1.0, linear_solver=linear_solver)  # type: ignore[arg-type]
    clf.fit(x, y, x, y_val)
    assert (clf.val_errors_, clf.selected_on_) == ({1.0: 0.1}, 0)  # nothing chosen, one look
    assert KernelSvm(solver=solver, C=1.0).fit(x, y).val_errors_ == {}  # type: ignore[arg-type]
