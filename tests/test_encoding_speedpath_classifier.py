"""The classifier stage's fits: liblinear's in processes give the sequential result."""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp

from bovw_vs_convnet.estimators.kernel_svm import KernelSvm, liblinear_jobs


def _histograms(n: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.random((n, 60)) * (rng.random((n, 60)) < 0.3)
    x[np.arange(n), y * 15 + rng.integers(0, 15, n)] += 1.0  # a class-dependent word
    x /= x.sum(axis=1, keepdims=True)
    return sp.csr_matrix(x.astype(np.float32)), y


def test_liblinear_fits_in_processes_equal_the_sequential_fits() -> None:
    x, y = _histograms(300, 0)
    xv, yv = _histograms(100, 1)

    def fit(n_jobs: int) -> KernelSvm:
        svm = KernelSvm("hellinger", solver="map", C_grid=(0.3, 3.0), n_jobs=n_jobs)
        return svm.fit(x, y, xv, yv)

    one, two = fit(1), fit(2)
    assert one.val_errors_ == two.val_errors_ and one.C_ == two.C_
    for a, b in zip(one.models_, two.models_, strict=True):
        np.testing.assert_array_equal(a.coef_, b.coef_)
        np.testing.assert_array_equal(a.intercept_, b.intercept_)


def test_liblinear_jobs_is_one_below_a_thread() -> None:
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(liblinear_jobs(2)))
    worker.start()
    worker.join()
    assert seen == [1] and liblinear_jobs(2) == 2 and liblinear_jobs(1) == 1
