"""Kernels for histograms and their explicit feature maps.

Exact kernels (for precomputed-kernel SVMs on small training sets):

- additive χ²: ``k(x, y) = Σ_i 2 x_i y_i / (x_i + y_i)`` (the kernel VLFeat's
  ``vl_homkermap`` approximates; Vedaldi & Zisserman, PAMI 2012),
- histogram intersection: ``k(x, y) = Σ_i min(x_i, y_i)`` (Swain & Ballard 1991),
- RBF and linear (scikit-learn's).

χ² and intersection vanish wherever one histogram is zero, so on sparse
histograms they are summed column by column over co-occurring non-zeros only.

Feature maps (for linear SVMs on large ones): ``additive_chi2`` (scikit-learn's
``AdditiveChi2Sampler``, the homogeneous kernel map), ``hellinger`` (the exact map
``√x``), ``nystroem`` (scikit-learn's ``Nystroem``) and ``linear`` (identity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from bovw_vs_convnet.errors import ConfigError

KernelName = Literal["chi2", "intersection", "rbf", "linear", "hellinger"]
KERNELS: tuple[str, ...] = get_args(KernelName)


def _chi2_terms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    s = a[:, None] + b[None, :]
    return 2.0 * a[:, None] * b[None, :] / np.where(s > 0, s, 1.0)


def _min_terms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.minimum(a[:, None], b[None, :])


def _columnwise_kernel(
    x: Any, y: Any, terms: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Σ over columns of ``terms`` on the rows where both ``x`` and ``y`` are non-zero."""
    xc = sp.csc_matrix(x, dtype=np.float64)
    yc = sp.csc_matrix(y, dtype=np.float64)
    if xc.shape[1] != yc.shape[1]:
        raise ConfigError(f"kernel inputs differ in width: {xc.shape[1]} and {yc.shape[1]}")
    if (xc.data < 0).any() or (yc.data < 0).any():
        raise ConfigError("χ² and intersection kernels need non-negative histograms")
    k = np.zeros((xc.shape[0], yc.shape[0]))
    for j in range(xc.shape[1]):
        xa, xb = xc.indptr[j], xc.indptr[j + 1]
        ya, yb = yc.indptr[j], yc.indptr[j + 1]
        if xa == xb or ya == yb:
            continue
        rows, cols = xc.indices[xa:xb], yc.indices[ya:yb]
        k[np.ix_(rows, cols)] += terms(xc.data[xa:xb], yc.data[ya:yb])
    return k


def chi2_kernel(x: Any, y: Any | None = None) -> np.ndarray:
    """Additive χ² kernel matrix ``Σ_i 2 x_i y_i / (x_i + y_i)`` (dense or sparse inputs)."""
    return _columnwise_kernel(x, x if y is None else y, _chi2_terms)


def intersection_kernel(x: Any, y: Any | None = None) -> np.ndarray:
    """Histogram intersection kernel matrix ``Σ_i min(x_i, y_i)``."""
    return _columnwise_kernel(x, x if y is None else y, _min_terms)


def exact_kernel(name: str, x: Any, y: Any | None = None, gamma: float | None = None) -> np.ndarray:
    """The kernel ``name`` between rows of ``x`` and of ``y`` (default ``x``)."""
    from sklearn.metrics.pairwise import linear_kernel, rbf_kernel

    if name == "chi2":
        return chi2_kernel(x, y)
    if name == "intersection":
        return intersection_kernel(x, y)
    if name == "rbf":
        return np.asarray(rbf_kernel(x, y, gamma=gamma))
    if name == "linear":
        return np.asarray(linear_kernel(x, y))
    if name == "hellinger":
        return np.asarray(linear_kernel(_sqrt(x), None if y is None else _sqrt(y)))
    raise ConfigError(f"unknown kernel {name!r}; known: chi2, intersection, rbf, linear, hellinger")


def _sqrt(x: Any) -> Any:
    if sp.issparse(x):
        out = sp.csr_matrix(x, copy=True)
        np.sqrt(np.abs(out.data), out=out.data)
        return out
    return np.sqrt(np.abs(x))


# Sampling periods of the χ² map with the smallest worst-case relative error on L1
# histograms (measured: 4.4 % for 2 steps, 1.5 % for 3; scikit-learn's defaults give
# 10 % and 5 %).
_CHI2_INTERVALS = {2: 0.6, 3: 0.5}


class KernelFeatureMap(TransformerMixin, BaseEstimator):
    """An explicit feature map whose dot products approximate (or equal) a kernel.

    Parameters:
        kernel: ``chi2`` (additive χ², homogeneous kernel map with ``sample_steps``),
            ``hellinger`` (exact √x map), ``rbf`` / ``intersection`` (Nystroem with
            ``n_components``), ``linear`` (identity).
        sample_steps: χ² map samples: output is ``2 * sample_steps - 1`` times wider.
        n_components: Nystroem landmarks.
        gamma: RBF width (None: 1 / n_features).
        random_state: Nystroem landmark seed.
    """

    def __init__(
        self,
        kernel: KernelName = "chi2",
        sample_steps: int = 2,
        n_components: int = 2000,
        gamma: float | None = None,
        random_state: Any = 0,
    ) -> None:
        self.kernel = kernel
        self.sample_steps = sample_steps
        self.n_components = n_components
        self.gamma = gamma
        self.random_state = random_state

    def fit(self, x: Any, y: Any = None) -> KernelFeatureMap:
        """Fit the map (landmarks for Nystroem; nothing for the others)."""
        self.map_: Any = None
        if self.kernel == "chi2":
            from sklearn.kernel_approximation import AdditiveChi2Sampler

            self.map_ = AdditiveChi2Sampler(
                sample_steps=self.sample_steps,
                sample_interval=_CHI2_INTERVALS.get(self.sample_steps),
            ).fit(x)
        elif self.kernel in ("rbf", "intersection"):
            from sklearn.kernel_approximation import Nystroem

            n_comp = min(self.n_components, x.shape[0])
            if self.kernel == "rbf":
                self.map_ = Nystroem(
                    kernel="rbf",
                    gamma=self.gamma,
                    n_components=n_comp,
                    random_state=self.random_state,
                ).fit(x)
            else:
                rng = np.random.default_rng(0 if self.random_state is None else self.random_state)
                self.landmarks_ = x[np.sort(rng.choice(x.shape[0], n_comp, replace=False))]
                kl = intersection_kernel(self.landmarks_)
                u, s, vt = np.linalg.svd(kl)
                self.normalisation_ = (u / np.sqrt(np.maximum(s, 1e-12))) @ vt
        elif self.kernel not in ("hellinger", "linear"):
            raise ConfigError(
                f"unknown kernel {self.kernel!r}; known: chi2, intersection, rbf, linear, hellinger"
            )
        return self

    def transform(self, x: Any) -> Any:
        """Map rows of ``x`` (dense or CSR); the χ², √ and identity maps keep sparsity."""
        if self.kernel == "hellinger":
            return _sqrt(x)
        if self.kernel == "linear":
            return x
        if self.kernel == "intersection":
            return intersection_kernel(x, self.landmarks_) @ self.normalisation_.T
        out = self.map_.transform(x)
        return out.astype(np.float32)
