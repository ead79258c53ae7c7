"""One-vs-rest kernel SVMs: exact on a precomputed kernel for small training sets,
an explicit feature map and a linear SVM past a size threshold; C chosen on validation data.

The classifier of both hand-crafted pipelines (BoVW's codes, HOG's vectors), so it
sits below them, with its kernels (:mod:`bovw_vs_convnet.estimators.kernels`) and parameter
checks (:mod:`bovw_vs_convnet.estimators.parameters`).
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from bovw_vs_convnet.estimators.kernels import KERNELS, KernelFeatureMap, KernelName, exact_kernel
from bovw_vs_convnet.estimators.linear_svm import PrimalLinearSvm
from bovw_vs_convnet.estimators.parameters import ParameterError, at_least, positive

log = logging.getLogger(__name__)

# KernelSvm's parameters that the hand-crafted pipelines' configs (BoVW, HOG) set, and
# the names of those settings: the configs build the SVM from it and report its
# parameter errors under the setting's name
CONFIG_SETTINGS = {
    "kernel": "kernel",
    "C": "C",
    "C_grid": "C_grid",
    "map_steps": "map_steps",
    "n_components": "n_components",
    "gamma": "gamma",
    "select_max_train": "select_max_train",
    "max_iter": "svm_max_iter",
}


def _fit_binary_exact(k_train: np.ndarray, target: np.ndarray, c: float, max_iter: int) -> Any:
    from sklearn.svm import SVC

    # libsvm counts single SMO steps: no cap (a liblinear-sized one stops it half-way)
    return SVC(kernel="precomputed", C=c, max_iter=-1).fit(k_train, target)


def _fit_binary_linear(x: Any, target: np.ndarray, c: float, max_iter: int) -> Any:
    from sklearn.svm import LinearSVC

    # dual coordinate descent: 2-6x faster than the primal Newton solver on these
    # sparse codes (measured 2.1 s vs 12.5 s, 10 000 χ²-mapped histograms, C = 1)
    return LinearSVC(C=c, dual=True, max_iter=max_iter, tol=1e-3, random_state=0).fit(x, target)


def liblinear_jobs(n_jobs: int) -> int:
    """Processes for liblinear's fits: ``n_jobs``, or 1 where this process may not start
    its own (a daemon, such as a Dask worker, or below a thread).

    Why processes: liblinear's solver shuffles its coordinates with one random generator
    per process (scikit-learn's ``newrand``), reseeded at each fit; fits in threads of
    one process draw from it in turns that change from run to run, and so do their
    coefficients. In processes every fit is the one a sequential run makes.
    """
    if n_jobs == 1:
        return 1
    if threading.current_thread() is not threading.main_thread():
        return 1
    if multiprocessing.current_process().daemon:
        return 1
    return n_jobs


def _min_value(x: Any) -> float:
    """The smallest entry of a dense or sparse matrix (0 for an empty one)."""
    data = x.data if sp.issparse(x) else np.asarray(x)
    return float(data.min()) if data.size else 0.0


def fitted_classes() -> tuple[type, ...]:
    """Every class a fitted :class:`KernelSvm` holds: a model bundle's allowlist for it.

    Itself, its feature map and the scikit-learn map inside (χ² sampler, Nystroem),
    libsvm's and liblinear's SVMs, and :class:`PrimalLinearSvm`
    (:mod:`bovw_vs_convnet.estimators.estimator_state` rebuilds only these).
    """
    from sklearn.kernel_approximation import AdditiveChi2Sampler, Nystroem
    from sklearn.svm import SVC, LinearSVC

    return (
        KernelSvm,
        KernelFeatureMap,
        AdditiveChi2Sampler,
        Nystroem,
        SVC,
        LinearSVC,
        PrimalLinearSvm,
    )


class KernelSvm(ClassifierMixin, BaseEstimator):
    """One-vs-rest SVMs whose decision values are the pipeline's class scores.

    Parameters:
        kernel: ``chi2``, ``intersection``, ``rbf``, ``hellinger`` or ``linear``.
        solver: ``exact`` (libsvm ``SVC`` on the precomputed kernel), ``map``
            (:class:`KernelFeatureMap` + liblinear ``LinearSVC``) or ``auto``
            (``exact`` up to ``exact_max_train`` training images, ``map`` above).
        exact_max_train: size threshold of ``auto``.
        C: SVM cost; None picks the best of ``C_grid`` on the validation set
            (the first of the grid's middle when there is none).
        C_grid: costs tried when ``C`` is None.
        map_steps, n_components, gamma: feature-map settings (see KernelFeatureMap).
        n_classes: width of the score matrix (None: ``max(y) + 1``); classes absent
            from training get a score below every other.
        select_max_train: when choosing C on a larger training set, compare the
            costs on a seeded, class-stratified subset of this many images, then
            train once on everything with the best (None: always on everything).
        max_iter: liblinear (or L-BFGS) iteration cap (the exact libsvm solver runs to
            convergence).
        linear_solver: the linear SVMs of ``map``: ``liblinear`` (one ``LinearSVC`` per
            class, dual coordinate descent: fast on sparse codes) or ``lbfgs`` (every class
            at once in the primal, :class:`~bovw_vs_convnet.estimators.linear_svm.PrimalLinearSvm`,
            warm-started along ``C_grid``: fast on dense features with n ≫ d, as HOG's).
        n_jobs: SVMs trained in parallel (libsvm's in threads, liblinear's in processes:
            :func:`liblinear_jobs`).

    Attributes:
        solver_: the solver used; C_: the cost kept; val_errors_: {C: top-1 error on val}
            (the one cost given, when nothing is chosen but validation images are);
        selected_on_: training images C was chosen with (0: not chosen);
        n_iter_: the most solver iterations any one-vs-rest SVM ran; n_features_in_.
    """

    def __init__(
        self,
        kernel: KernelName = "chi2",
        solver: Literal["auto", "exact", "map"] = "auto",
        exact_max_train: int = 5000,
        C: float | None = None,
        C_grid: Sequence[float] = (0.1, 1.0, 10.0),
        map_steps: int = 2,
        n_components: int = 2000,
        gamma: float | None = None,
        n_classes: int | None = None,
        select_max_train: int | None = 10_000,
        max_iter: int = 1000,
        n_jobs: int = 1,
        random_state: int = 0,
        linear_solver: Literal["liblinear", "lbfgs"] = "liblinear",
    ) -> None:
        self.kernel = kernel
        self.solver = solver
        self.exact_max_train = exact_max_train
        self.C = C
        self.C_grid = C_grid
        self.map_steps = map_steps
        self.n_components = n_components
        self.gamma = gamma
        self.n_classes = n_classes
        self.select_max_train = select_max_train
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.linear_solver = linear_solver

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for a parameter out of range (``fit`` calls it)."""
        if self.kernel not in KERNELS:
            raise ParameterError(
                "kernel", f"must be one of {', '.join(KERNELS)}, got {self.kernel!r}"
            )
        if self.solver not in ("auto", "exact", "map"):
            raise ParameterError("solver", f"must be auto, exact or map, got {self.solver!r}")
        at_least("exact_max_train", self.exact_max_train, 0)
        if self.C is not None:
            positive("C", self.C)
        if not self.C_grid or not min(self.C_grid) > 0:
            raise ParameterError("C_grid", f"must hold costs > 0, got {tuple(self.C_grid)!r}")
        at_least("map_steps", self.map_steps, 1)
        at_least("n_components", self.n_components, 1)
        if self.gamma is not None:
            positive("gamma", self.gamma)
        if self.n_classes is not None:
            at_least("n_classes", self.n_classes, 1)
        if self.select_max_train is not None:
            at_least("select_max_train", self.select_max_train, 1)
        at_least("max_iter", self.max_iter, 1)
        if self.linear_solver not in ("liblinear", "lbfgs"):
            raise ParameterError(
                "linear_solver", f"must be liblinear or lbfgs, got {self.linear_solver!r}"
            )

    def _primal(self) -> bool:
        """Whether the linear SVMs are one PrimalLinearSvm (map solver, lbfgs)."""
        return self.solver_ == "map" and self.linear_solver == "lbfgs"

    def _fit_ovr(self, x: Any, y: np.ndarray, c: float) -> list[Any]:
        return self._fit_grid(x, y, [c])[c]

    def _fit_grid(self, x: Any, y: np.ndarray, grid: Sequence[float]) -> dict[float, list[Any]]:
        """The one-vs-rest SVMs for each cost of ``grid``: ``{C: [model per class]}``.

        The primal solver runs along the grid in order, warm-started. libsvm's fits run
        in threads. liblinear's run in ``n_jobs`` processes (:func:`liblinear_jobs`),
        every (cost, class) pair of the grid in one batch, the largest costs (the
        slowest fits) first, so that no worker waits at the end of each cost.
        """
        if self._primal():  # one model for every class, warm-started from the last fit
            out = {}
            for c in grid:
                self.primal_.set_params(C=c).fit(x, y)
                out[c] = [copy.copy(self.primal_)]  # fit replaces, never mutates, its arrays
            return out
        fit: Callable[[Any, np.ndarray, float, int], Any] = _fit_binary_linear
        jobs, prefer = liblinear_jobs(self.n_jobs), "processes"
        if self.solver_ == "exact":
            fit, jobs, prefer = _fit_binary_exact, self.n_jobs, "threads"
        tasks = [(c, cls) for c in sorted(grid, reverse=True) for cls in self.classes_]
        models = Parallel(n_jobs=jobs, prefer=prefer)(
            delayed(fit)(x, (y == cls).astype(np.int64), c, self.max_iter) for c, cls in tasks
        )
        by_task = dict(zip(tasks, models, strict=True))
        return {c: [by_task[c, cls] for cls in self.classes_] for c in grid}

    def _prepare(self, x: Any, train: bool) -> Any:
        if self.solver_ == "exact":
            return exact_kernel(self.kernel, x, None if train else self.train_x_, gamma=self.gamma)
        mapped = self.map_.transform(x)
        if self._primal():  # float32 BLAS products: no copy to float64
            return mapped if sp.issparse(mapped) else np.asarray(mapped, dtype=np.float32)
        # liblinear wants float64: convert once here, not once per fit
        if sp.issparse(mapped):
            return sp.csr_matrix(mapped, dtype=np.float64)
        return np.ascontiguousarray(mapped, dtype=np.float64)

    def _scores(self, models: list[Any], prepared: Any) -> np.ndarray:
        n = prepared.shape[0]
        if self._primal() and models != [None]:  # already (n, n_classes), absent classes last
            return np.asarray(models[0].decision_function(prepared), dtype=np.float64)
        if len(models) == 1:  # one class seen: constant score for it
            s = np.zeros((n, 1))
        else:
            s = np.stack([m.decision_function(prepared) for m in models], axis=1)
        out = np.full((n, self.n_classes_), -np.inf)
        out[:, self.classes_] = s
        finite_min = s.min() if s.size else 0.0
        out[np.isinf(out)] = finite_min - 1.0  # absent classes rank last
        return out

    def fit(
        self, x: Any, y: np.ndarray, x_val: Any | None = None, y_val: np.ndarray | None = None
    ) -> KernelSvm:
        """Train one SVM per class present in ``y``; choose C on ``(x_val, y_val)`` if C is None."""
        self.check_params()
        # 2-d, finite, as many rows as labels (dense or sparse, never copied); n_features_in_
        x, y = validate_data(self, x, y, accept_sparse=("csr", "csc"))
        check_classification_targets(y)
        if self.kernel in ("chi2", "intersection") and _min_value(x) < 0:
            # (scikit-learn's wording, whichever solver: AdditiveChi2Sampler's for map)
            raise ValueError(
                f"Negative values in data passed to KernelSvm: kernel {self.kernel!r} "
                "needs non-negative histograms"
            )
        y = np.asarray(y, np.int64)  # class indices: column i of the scores is class i
        if x_val is not None:
            x_val = validate_data(self, x_val, accept_sparse=("csr", "csc"), reset=False)
        self.classes_ = np.unique(y)
        self.n_classes_ = int(self.n_classes or (y.max() + 1))
        self.solver_ = (
            self.solver
            if self.solver != "auto"
            else ("exact" if len(y) <= self.exact_max_train else "map")
        )
        if self.solver_ == "exact":
            self.train_x_ = x
        else:
            self.map_ = KernelFeatureMap(
                self.kernel, self.map_steps, self.n_components, self.gamma
            ).fit(x)
            if self.linear_solver == "lbfgs":
                self.primal_ = PrimalLinearSvm(
                    max_iter=self.max_iter, warm_start=True, n_classes=self.n_classes_
                )
        xp = self._prepare(x, train=True)
        if self.C is not None:
            grid = [float(self.C)]
        elif x_val is None or y_val is None or len(y_val) == 0:
            grid = [float(sorted(self.C_grid)[len(self.C_grid) // 2])]
        else:
            grid = [float(c) for c in self.C_grid]
        if len(self.classes_) == 1:
            self.models_: list[Any] = [None]
            self.C_ = grid[0]
            self.val_errors_: dict[float, float] = {}
            self.selected_on_ = 0
            self.n_iter_ = 0
            return self
        self.val_errors_ = {}
        if len(grid) > 1:
            xv = self._prepare(x_val, train=False)
            sel = self._selection_subset(y)
            xs, ys = (xp, y) if sel is None else (xp[sel], y[sel])
            fitted = self._fit_grid(xs, ys, grid)
            for c in grid:
                err = float((self._scores(fitted[c], xv).argmax(axis=1) != y_val).mean())
                self.val_errors_[c] = err
                log.info("C=%g: validation top-1 error %.4f", c, err)
            self.C_ = min(grid, key=lambda c: (self.val_errors_[c], c))
            if sel is not None and self._primal():  # refit from the chosen C's solution
                self.primal_ = copy.copy(fitted[self.C_][0])
            self.models_ = fitted[self.C_] if sel is None else self._fit_ovr(xp, y, self.C_)
            self.selected_on_ = len(y) if sel is None else len(sel)
        else:
            self.C_ = grid[0]
            self.models_ = self._fit_ovr(xp, y, self.C_)
            self.selected_on_ = 0
            if x_val is not None and y_val is not None and len(y_val):
                # nothing chosen, but the held-out error still says whether it learned
                scores = self._scores(self.models_, self._prepare(x_val, train=False))
                self.val_errors_[self.C_] = float((scores.argmax(axis=1) != y_val).mean())
        self.n_iter_ = max(int(np.max(m.n_iter_)) for m in self.models_)
        return self

    def __sklearn_tags__(self) -> Any:
        """Sparse codes are welcome; χ² and intersection need non-negative ones."""
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = self.kernel in ("chi2", "intersection")
        return tags

    def _selection_subset(self, y: np.ndarray) -> np.ndarray | None:
        """Positions of a class-stratified subset for choosing C, or None for all of ``y``."""
        if (
            self.solver_ == "exact"  # rows of a kernel matrix: not subset here
            or self.select_max_train is None
            or len(y) <= self.select_max_train
        ):
            return None
        from sklearn.model_selection import train_test_split

        try:
            idx, _ = train_test_split(
                np.arange(len(y)),
                train_size=self.select_max_train,
                stratify=y,
                random_state=self.random_state,
            )
        except ValueError:  # a class too small to stratify: choose on everything
            return None
        if len(np.unique(y[idx])) != len(self.classes_):
            return None
        return np.sort(idx)

    def decision_function(self, x: Any) -> np.ndarray:
        """(n, n_classes) one-vs-rest decision values."""
        check_is_fitted(self)
        x = validate_data(self, x, accept_sparse=("csr", "csc"), reset=False)
        prepared = self._prepare(x, train=False)
        if self.models_ == [None]:
            return self._scores([None], prepared)
        return self._scores(self.models_, prepared)

    def predict(self, x: Any) -> np.ndarray:
        """Class with the highest decision value."""
        return np.asarray(self.decision_function(x).argmax(axis=1))

    def description(self) -> dict[str, Any]:
        """What a model bundle's manifest says of the fitted SVMs: kernel, solver used, C kept."""
        check_is_fitted(self)
        return {"kernel": self.kernel, "solver": self.solver_, "C": self.C_}
