"""One-vs-rest linear SVMs trained together in the primal: squared hinge, L2, L-BFGS.

The raw-pixel baseline and :class:`~bovw_vs_convnet.estimators.kernel_svm.KernelSvm`
(for the HOG pipeline) train linear SVMs on dense features with many more
images than features (n ≫ d). liblinear's ``LinearSVC`` solves each class on its
own, by dual coordinate descent or a primal Newton method, both slow at this size
(``benchmarks/RESULTS-baselines.md``). Here the
objectives of all classes are summed and minimised at once by scipy's L-BFGS,
as the primal suits n ≫ d (Chapelle 2007, "Training a support vector machine in
the primal"): one evaluation is two BLAS products over the training rows
(``x @ W`` and ``x.T @ G``), so a fit costs at most ``max_iter`` (plus
line-search) evaluations of O(n·d·K), after one d×d covariance and its
eigendecomposition (with fewer images than features, n < d, the n×n Gram matrix of
the centred images and its eigendecomposition instead: the same nonzero eigenpairs).

The objective is LinearSVC's default (L2 penalty, squared hinge loss), for each
class k with ``y_ik = +1`` if image i is of class k and −1 otherwise::

    Σ_k ½‖w_k‖² + C Σ_i max(0, 1 − y_ik (w_k·x_i + b_k))²

except that the intercepts ``b_k`` are not penalised (liblinear penalises its
intercept as a feature of constant value).

Correlated features (neighbouring pixels) make this badly conditioned. The solver
works in the eigenbasis of the training features' covariance, each coordinate
scaled by the inverse square root of the Hessian's estimate there (1 + 2·C·n·ρ·λ,
ρ the share of each class's images inside the margin), which is a change of
variables, not of the problem: 61 iterations from zero and 15 from the previous
cost, where plain L-BFGS had not converged after 300. ``warm_start`` starts from
the last fit (and keeps the eigenbasis), so that a path of costs, smallest first,
takes few iterations per cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from bovw_vs_convnet.errors import ConfigError

# rows per block of one objective evaluation: whole arrays up to 256 MB of float32
# features (smaller blocks were slower: 1 024 rows 4x, measured on Fashion-MNIST)
_BLOCK_BYTES = 256 << 20
# features up to which the preconditioner is the full covariance eigenbasis (eigh of d×d)
_FULL_BASIS_MAX = 4096
# with fewer images than features, the eigenbasis from the n×n Gram matrix of the
# centred images (the same nonzero eigenpairs, eigh of n×n instead of d×d)
_SPAN_WHEN_FEWER_ROWS = True
# eigenvalues below this share of the largest are the centring's null space, not features
_SPAN_RTOL = 1e-10
# L-BFGS-B's own tests off: the gradient rule of PrimalLinearSvm.fit stops it
_NO_OTHER_STOP = {"ftol": 0.0, "gtol": 0.0}


def _initial_active(n_classes: int) -> float:
    """A first guess of the share of (image, class) pairs inside the margin at the optimum.

    Measured on Fashion-MNIST's standardised pixels: 0.06 to 0.40 by class, 0.18 on
    average; 2 / K (0.2 for 10 classes) halved the iterations of a fit from zero
    against 1 (the share at w = 0).
    """
    return min(1.0, max(0.02, 2.0 / n_classes))


def _to_weights(u: np.ndarray, eigvec: np.ndarray | None, scale: np.ndarray) -> np.ndarray:
    """Weights ``w`` (d, K) of the preconditioned coordinates ``u`` (d, K)."""
    return scale * u if eigvec is None else eigvec @ (scale * u)


def _objective(
    u: np.ndarray,
    x: Any,
    y: np.ndarray,
    c: float,
    mean: np.ndarray,
    eigvec: np.ndarray | None,
    scale: np.ndarray,
    block: int,
) -> tuple[float, np.ndarray]:
    """The SVM objective and its gradient in the preconditioned coordinates ``u``.

    ``w = eigvec @ (scale * u[:-1])`` (``eigvec`` (d, r): the covariance eigenvectors,
    None for the identity; ``scale`` (r, K): the inverse square root of each class's
    Hessian estimate along them) and the last row of ``u`` is the intercept of the
    centred features: ``f = (x - mean) @ w + b``. ``r`` is ``d``, or the rank of the
    centred images when they are fewer than the features (their span holds the optimum).
    """
    r, n_classes = scale.shape
    d = x.shape[1]
    u = u.reshape(r + 1, n_classes)
    w64 = _to_weights(u[:-1], eigvec, scale)
    w = w64.astype(np.float32)  # (d, K)
    b = (u[-1] - mean @ w64).astype(np.float32)  # the centring folded into the intercept
    loss = 0.0
    grad_xg = np.zeros((d, n_classes), dtype=np.float64)  # x.T @ G
    grad_g = np.zeros(n_classes, dtype=np.float64)  # 1.T @ G
    for start in range(0, x.shape[0], block):
        xb = x[start : start + block]
        rows = np.arange(xb.shape[0])
        yb = y[start : start + block]
        margin = np.asarray(xb @ w) + b  # (B, K) decision values
        margin[rows, yb] *= -1.0  # -y_ik f_ik
        slack = np.maximum(margin + 1.0, 0.0)  # max(0, 1 - y_ik f_ik)
        loss += float(np.einsum("ij,ij->", slack, slack, dtype=np.float64))
        g = 2.0 * slack  # d slack² / d f_ik = -2 y_ik slack_ik
        g[rows, yb] *= -1.0
        grad_xg += np.asarray(xb.T @ g, dtype=np.float64)
        grad_g += g.sum(axis=0, dtype=np.float64)
    f = 0.5 * float(np.einsum("ij,ij->", w64, w64)) + c * loss
    grad_w = w64 + c * (grad_xg - np.outer(mean, grad_g))  # d f / d w (centred features)
    grad_u = scale * (grad_w if eigvec is None else eigvec.T @ grad_w)
    return f, np.vstack([grad_u, c * grad_g[None, :]]).ravel()


def _span_basis(x: Any, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The covariance's nonzero eigenvalues (r,) and eigenvectors (d, r), for n < d images.

    The centred images ``c = x - mean`` span at most n - 1 directions, and the weights'
    optimum lies in their span (a zero gradient needs ``w = -C c.T @ G``); from zero,
    L-BFGS never leaves it either. The covariance ``c.T @ c / n`` and the n×n Gram
    matrix ``c @ c.T / n`` share their nonzero eigenvalues, and an eigenvector ``a`` of
    the Gram matrix gives ``c.T @ a / sqrt(n λ)`` of the covariance: an eigh of n×n
    instead of d×d (300 images of 1 764 HOG features: milliseconds instead of seconds).
    """
    n = x.shape[0]
    # n < d ≤ _FULL_BASIS_MAX: the centred images fit in memory as float64 (a centring
    # after float32 products would cancel the digits that tell the images apart)
    centred = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64) - mean
    eigval, coords = np.linalg.eigh(centred @ centred.T / n)
    keep = eigval > _SPAN_RTOL * max(float(eigval[-1]), 0.0)
    eigval, coords = eigval[keep], coords[:, keep]
    basis = (centred.T @ coords) / np.sqrt(n * eigval)[None, :]
    return eigval, basis


class PrimalLinearSvm(ClassifierMixin, BaseEstimator):
    """One-vs-rest linear SVMs (squared hinge, L2) solved together in the primal by L-BFGS.

    Parameters:
        C: SVM cost (LinearSVC's C: the weight of the summed squared hinge losses).
        max_iter: L-BFGS iterations at most; with ``tol`` it bounds a fit's cost.
        tol: stop when the gradient's norm is ``tol`` times its norm at w = 0
            (liblinear's rule for its primal solver).
        warm_start: start from the previous fit's coefficients (a path of costs).
        n_classes: width of the score matrix (None: ``max(y) + 1``); a class absent
            from the training labels scores below every other.

    Attributes:
        coef_: (n_classes, n_features) weights; intercept_: (n_classes,);
        classes_: labels seen in training; n_iter_: L-BFGS iterations of the last fit;
        n_features_in_.
    """

    coef_: np.ndarray
    intercept_: np.ndarray
    active_fraction_: np.ndarray
    _moments_: tuple[np.ndarray, np.ndarray, np.ndarray | None]
    _moments_key: tuple[Any, ...]

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 300,
        tol: float = 1e-4,
        warm_start: bool = False,
        n_classes: int | None = None,
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.n_classes = n_classes

    def check_params(self) -> None:
        """Raise :class:`ConfigError` (naming the parameter) for one out of range."""
        if not self.C > 0:
            raise ConfigError(f"C must be > 0, got {self.C!r}", key="C")
        if not self.max_iter >= 1:
            raise ConfigError(f"max_iter must be ≥ 1, got {self.max_iter!r}", key="max_iter")
        if not self.tol > 0:
            raise ConfigError(f"tol must be > 0, got {self.tol!r}", key="tol")

    def fit(self, x: Any, y: np.ndarray) -> PrimalLinearSvm:
        """Minimise the objective of every class at once (from the last fit if ``warm_start``)."""
        self.check_params()
        x, y = validate_data(
            self, x, y, accept_sparse="csr", dtype=np.float32, order="C", reset=True
        )
        check_classification_targets(y)
        y = np.asarray(y, dtype=np.int64)
        if y.min() < 0:
            raise ConfigError("PrimalLinearSvm needs class indices 0, 1, ... as labels")
        self.classes_ = np.unique(y)
        n_classes = int(self.n_classes or (y.max() + 1))
        if self.n_classes is not None and y.max() >= self.n_classes:
            raise ConfigError(f"label {y.max()} is out of range for n_classes={self.n_classes}")
        n, d = x.shape
        mean, eigval, eigvec = self._moments(x)
        warm = getattr(self, "coef_", None)
        warm_ok = self.warm_start and warm is not None and warm.shape == (n_classes, d)
        # the Hessian of the objective in the covariance eigenbasis is about
        # 1 + 2·C·n·ρ·λ_j (ρ: the share of (image, class) pairs inside the margin);
        # scaling coordinate j by its inverse square root makes it about the identity
        rho = self.active_fraction_ if warm_ok else np.full(n_classes, _initial_active(n_classes))
        scale = 1.0 / np.sqrt(1.0 + 2.0 * float(self.C) * n * rho[None, :] * eigval[:, None])
        r = eigval.shape[0]  # d, or the rank of the centred images when fewer than d
        u0 = np.zeros((r + 1, n_classes))
        if warm_ok:
            w = self.coef_.T
            u0[:-1] = (w if eigvec is None else eigvec.T @ w) / scale
            u0[-1] = self.intercept_ + mean @ w
        block = max(64, _BLOCK_BYTES // max(4 * d, 1))
        args = (x, y, float(self.C), mean, eigvec, scale, block)
        # liblinear's rule: stop when the gradient is tol times the one at w = 0
        _, g0 = _objective(np.zeros_like(u0).ravel(), *args)
        threshold = self.tol * float(np.linalg.norm(g0))
        last_grad: list[float] = [np.inf]
        blas = ThreadpoolController()
        threads = max(
            (p.num_threads for p in blas.select(user_api="blas").lib_controllers), default=1
        )

        def objective(u: np.ndarray) -> tuple[float, np.ndarray]:
            with blas.limit(limits=threads, user_api="blas"):
                f, g = _objective(u, *args)
            last_grad[0] = float(np.linalg.norm(g))
            return f, g

        def stop_when_small(intermediate_result: Any) -> None:
            if last_grad[0] <= threshold:
                raise StopIteration

        # L-BFGS-B's own vector steps on one BLAS thread: threaded, on 2 busy cores,
        # they took 87 ms a step for 13 000 unknowns instead of 1 ms
        with blas.limit(limits=1, user_api="blas"):
            result = minimize(
                objective,
                u0.ravel(),
                jac=True,
                method="L-BFGS-B",
                callback=stop_when_small,
                options={"maxiter": self.max_iter, "maxfun": 2 * self.max_iter, **_NO_OTHER_STOP},
            )
        u = result.x.reshape(r + 1, n_classes)
        w = _to_weights(u[:-1], eigvec, scale)
        self.coef_ = np.ascontiguousarray(w.T)
        self.intercept_ = u[-1] - mean @ w
        self.n_iter_ = int(result.nit)
        self.n_classes_ = n_classes
        margins = self.decision_function(x)
        margins[np.arange(n), y] *= -1.0
        self.active_fraction_ = (margins > -1.0).mean(axis=0)
        return self

    def _moments(self, x: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Mean, covariance eigenvalues and eigenvectors of ``x`` (kept for a warm start).

        Above ``_FULL_BASIS_MAX`` features only the variances (eigenvectors None).
        """
        key = (x.shape, float(np.asarray(x[:: max(1, x.shape[0] // 64)].sum())))
        if self.warm_start and getattr(self, "_moments_key", None) == key:
            return self._moments_
        n, d = x.shape
        mean = np.asarray(x.mean(axis=0), dtype=np.float64).ravel()
        moments: tuple[np.ndarray, np.ndarray, np.ndarray | None]
        if d > _FULL_BASIS_MAX:
            sq = x.multiply(x) if hasattr(x, "multiply") else x * x
            var = np.asarray(sq.mean(axis=0), dtype=np.float64).ravel() - mean**2
            moments = (mean, np.maximum(var, 0.0), None)
        elif n < d and _SPAN_WHEN_FEWER_ROWS:
            moments = (mean, *_span_basis(x, mean))
        else:
            gram = x.T @ x
            gram = np.asarray(gram.toarray() if sp.issparse(gram) else gram, dtype=np.float64)
            gram = gram / n - np.outer(mean, mean)
            # float32 is precise enough for a preconditioner, and faster (d = 3 072: 17 s
            # against 21 s under load)
            eigval, eigvec = np.linalg.eigh(gram.astype(np.float32))
            moments = (mean, np.maximum(eigval, 0.0).astype(np.float64), eigvec.astype(np.float64))
        self._moments_key, self._moments_ = key, moments
        return moments

    def decision_function(self, x: Any) -> np.ndarray:
        """(n, n_classes) decision values; classes absent from training rank last."""
        check_is_fitted(self)
        x = validate_data(self, x, accept_sparse="csr", dtype=np.float32, reset=False)
        w = self.coef_.T.astype(np.float32)
        scores = np.asarray(x @ w, dtype=np.float64) + self.intercept_
        absent = np.setdiff1d(np.arange(self.n_classes_), self.classes_)
        if absent.size:
            scores[:, absent] = scores[:, self.classes_].min() - 1.0
        return scores

    def predict(self, x: Any) -> np.ndarray:
        """The class with the highest decision value."""
        return np.asarray(self.decision_function(x).argmax(axis=1))

    def __sklearn_tags__(self) -> Any:
        """Dense or CSR input."""
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
