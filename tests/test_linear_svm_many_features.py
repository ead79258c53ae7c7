"""PrimalLinearSvm above _FULL_BASIS_MAX features: a diagonal preconditioner."""

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


def test_many_features_take_their_variances_by_default() -> None:
    x, y = _blobs(n=40, d=120, seed=2)
    svm = PrimalLinearSvm(C=0.001, tol=1e-8, max_iter=2000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(linear_svm, "_FULL_BASIS_MAX", 50)
        svm.fit(x, y)
    assert svm._moments_[2] is None and svm._moments_[1].shape == (120,)
