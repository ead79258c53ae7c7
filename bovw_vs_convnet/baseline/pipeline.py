"""Raw pixels into a linear model: the baseline row every leaderboard keeps.

Images are flattened to pixels in [0, 1]. ``nearest-mean`` scores a sample by its
negated squared distance to each class mean. ``linear-svm`` (the default) is a
one-vs-rest linear SVM on the pixels standardised with the training images' mean
image and spread (never the validation or test images'): with ``solver=lbfgs``
all classes are solved at once in the primal
(:class:`~bovw_vs_convnet.estimators.linear_svm.PrimalLinearSvm`, preconditioned L-BFGS: at
most ``max_iter`` evaluations of two matrix products per cost), along ``C_grid``
from the smallest cost up, each fit warm-started from the last; the cost with
the lowest validation error is kept (the path stops at the first cost that does
worse than the best so far). ``path_tol`` looser than ``tol`` runs the path
faster and refits the kept cost to ``tol``.
``solver=liblinear`` is scikit-learn's ``LinearSVC`` per cost (dual coordinate
descent, one class at a time): the same objective, much slower on large sets.

Expected error (``benchmarks/RESULTS-baselines.md`` has the runs and their time):
Fashion-MNIST (54 000 training images) about 15.9 % top-1; scikit-learn's 8×8
digits about 3.1 %; glyphs-wild (cluttered 32×32 RGB glyphs, 62 classes) about 95 %.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.estimators.linear_svm import PrimalLinearSvm
from bovw_vs_convnet.protocol import RunContext
from bovw_vs_convnet.threads import auto_blas_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineConfig:
    """Settings of the raw-pixel baseline; each is a ``--set KEY=VALUE`` key."""

    method: Literal["nearest-mean", "linear-svm"] = "linear-svm"  # the classifier on raw pixels
    # linear-svm: lbfgs (every class at once in the primal, warm starts along C_grid)
    # or liblinear (scikit-learn's LinearSVC, one cost and one class at a time)
    solver: Literal["lbfgs", "liblinear"] = "lbfgs"
    # linear-svm: pixels less the training mean image, over the training images' spread:
    # one number (global), per pixel (pixel), or raw pixels in [0, 1] (none)
    standardize: Literal["global", "pixel", "none"] = "global"
    C: float | None = None  # SVM cost (None: the best of C_grid on the validation images)
    # costs tried, smallest first, until one does worse on validation than the best
    # before it; LinearSVC's C weighs the summed losses, so the best falls as images
    # are added (Fashion-MNIST, 54 000 images: 0.001; digits, 1 295: larger)
    C_grid: tuple[float, ...] = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0)
    max_iter: int = 300  # per cost: L-BFGS iterations (lbfgs) or liblinear's (liblinear)
    tol: float = 1e-4  # lbfgs: stop at this share of the gradient at w = 0
    # lbfgs: tol along C_grid (None: tol), the cost kept then refit to tol. Off by
    # default: 1e-3 halved Fashion-MNIST's time, but its early-stopped models chose
    # another C on digits (3.90 % against 3.06 %; RESULTS-baselines.md)
    path_tol: float | None = None

    def __post_init__(self) -> None:
        if self.C is not None and not self.C > 0:
            raise ConfigError(f"C must be > 0, got {self.C}", key="C")
        if not self.C_grid or not min(self.C_grid) > 0:
            raise ConfigError(f"C_grid must hold costs > 0, got {self.C_grid!r}", key="C_grid")
        if self.max_iter < 1:
            raise ConfigError(f"max_iter must be ≥ 1, got {self.max_iter}", key="max_iter")
        for name in ("tol", "path_tol"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}", key=name)


class PixelStandardizer:
    """Pixels less the training mean image, over the training pixels' standard deviation.

    ``per_pixel``: one deviation per pixel (scikit-learn's ``StandardScaler``), else one
    for all pixels. One number keeps the pixels' relative scale: per pixel, the near-
    constant border pixels of 8×8 digits are blown up to the scale of the strokes, and
    the linear SVM's error there rose from 3.06 % to 3.90 % (Fashion-MNIST: 15.8 %
    either way; ``benchmarks/RESULTS-baselines.md``).

    Attributes: ``mean_`` (n_features,), ``scale_`` (n_features,; 1 where a pixel is constant).
    """

    def __init__(self, per_pixel: bool = False) -> None:
        self.per_pixel = per_pixel

    def fit(self, x: np.ndarray) -> PixelStandardizer:
        """Learn the mean image and the spread from ``x`` (the training images' pixels)."""
        self.mean_ = x.mean(axis=0, dtype=np.float64)
        var = x.var(axis=0, dtype=np.float64)
        spread = np.sqrt(var) if self.per_pixel else np.full(x.shape[1], np.sqrt(var.mean()))
        self.scale_ = np.where(spread > 0, spread, 1.0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(x - mean_) / scale_, as float32 (no float64 copy of the images)."""
        return (x - self.mean_.astype(np.float32)) / self.scale_.astype(np.float32)


def _pixels(images: ImageSet) -> np.ndarray:
    """(N, H*W*C) float32 pixels in [0, 1]."""
    x = images.array()
    return x.reshape(len(x), -1).astype(np.float32) / 255.0


class BaselinePipeline:
    """Raw-pixel classifier following the pipeline protocol (``fit`` / ``decision_scores``).

    Attributes set by ``fit``: ``scaler_`` (the training images' standardisation, or
    None), ``svm_`` or ``means_``, ``C_`` and ``val_errors_`` ({C: validation top-1
    error}); ``record_extra`` holds them for the run record.
    """

    def __init__(self, config: BaselineConfig, seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self.model_name = config.method
        self.device = "cpu"
        self.stage_seconds: dict[str, float] = {}
        self.record_extra: dict[str, Any] = {}
        self.n_params: int | None = None

    @auto_blas_threads
    def fit(self, train: ImageSet, val: ImageSet | None = None) -> Self:
        """Learn class means or linear SVMs from ``train``; choose C on ``val``."""
        if len(train) == 0:
            raise DataError("baseline: the training set is empty")
        cfg = self.config
        t0 = time.perf_counter()
        x = _pixels(train)
        y = train.labels
        self.n_classes_ = train.n_classes
        self.classes_ = np.unique(y)
        self.scaler_: PixelStandardizer | None = None
        if cfg.method == "linear-svm" and cfg.standardize != "none":
            # fitted on the training images only: validation and test are scored, not seen
            self.scaler_ = PixelStandardizer(per_pixel=cfg.standardize == "pixel").fit(x)
            x = self.scaler_.transform(x)
        has_val = cfg.method == "linear-svm" and val is not None and len(val) > 0
        x_val = self._features(val) if has_val and val is not None else None
        self.stage_seconds["features"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if cfg.method == "nearest-mean":
            self.means_ = np.stack([x[y == c].mean(axis=0) for c in self.classes_])
            self.n_params = int(self.means_.size)
        else:
            if self.classes_.size < 2:
                raise DataError("baseline: linear-svm needs at least 2 classes in the training set")
            y_val = None if x_val is None or val is None else val.labels
            self._fit_svm(x, y, x_val, y_val)
            self.n_params = int(self.svm_.coef_.size + np.size(self.svm_.intercept_))
        self.stage_seconds["classifier"] = time.perf_counter() - t0
        return self

    def _costs(self, has_val: bool) -> list[float]:
        """The costs to try: C, the grid (with validation images) or the grid's middle."""
        cfg = self.config
        if cfg.C is not None:
            return [float(cfg.C)]
        grid = sorted(float(c) for c in cfg.C_grid)
        return grid if has_val else [grid[len(grid) // 2]]

    def _fit_svm(
        self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None, y_val: np.ndarray | None
    ) -> None:
        """Fit along the costs; keep the one with the lowest validation error.

        With lbfgs and several costs, the path runs at ``path_tol`` and the cost kept
        is then polished to ``tol`` from where it stopped.
        """
        cfg = self.config
        costs = self._costs(x_val is not None)
        path = cfg.solver == "lbfgs" and len(costs) > 1 and x_val is not None
        self.val_errors_: dict[float, float] = {}
        best: Any = None
        best_err = np.inf
        iterations = []
        svm: Any = None
        for c in costs:
            if cfg.solver == "lbfgs":
                if svm is None:
                    tol = max(cfg.tol, cfg.path_tol or cfg.tol) if path else cfg.tol
                    svm = PrimalLinearSvm(
                        c, cfg.max_iter, tol, warm_start=True, n_classes=self.n_classes_
                    )
                svm.set_params(C=c).fit(x, y)
                model = copy.copy(svm)  # fit replaces its arrays: the copy keeps this cost's
            else:
                from sklearn.svm import LinearSVC

                model = LinearSVC(C=c, max_iter=cfg.max_iter, random_state=self.seed).fit(x, y)
            iterations.append(int(np.max(model.n_iter_)))
            if x_val is None or y_val is None:  # one cost given is still scored: ``learned``
                best = model
                break
            err = float((self._known_scores(model, x_val).argmax(axis=1) != y_val).mean())
            self.val_errors_[c] = err
            log.info("baseline C=%g: validation top-1 error %.4f", c, err)
            if err < best_err:  # a tie keeps the smaller cost, and walks on
                best, best_err = model, err
            elif err > best_err:  # past the best of a (typically U-shaped) validation curve
                break
        polish = 0
        if path and best.tol > cfg.tol:
            best.set_params(tol=cfg.tol).fit(x, y)  # warm: from the path's solution
            polish = best.n_iter_
        self.svm_ = best
        self.C_ = float(best.C)
        self.record_extra.update(
            {
                "solver": cfg.solver,
                "standardize": cfg.standardize,
                "C": self.C_,
                "val_errors_by_C": {str(c): e for c, e in self.val_errors_.items()},
                "iterations_by_C": dict(zip(map(str, costs), iterations, strict=False)),
                "polish_iterations": polish,
            }
        )

    def _features(self, images: ImageSet) -> np.ndarray:
        """Pixels of ``images``, standardised as the training pixels were."""
        x = _pixels(images)
        return x if self.scaler_ is None else self.scaler_.transform(x)

    def _known_scores(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Decision values of ``model`` for the classes seen in training."""
        known = np.asarray(model.decision_function(x))
        if isinstance(model, PrimalLinearSvm):
            return known[:, self.classes_]
        if known.ndim == 1:  # LinearSVC, binary: one column, positive means classes_[1]
            known = np.stack([-known, known], axis=1)
        return known

    @auto_blas_threads
    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """(n, n_classes) scores: negated squared distance or SVM decision values."""
        t0 = time.perf_counter()
        x = self._features(images)
        if self.config.method == "nearest-mean":
            d2 = (x**2).sum(1)[:, None] - 2.0 * x @ self.means_.T + (self.means_**2).sum(1)[None]
            known = -d2
        else:
            known = self._known_scores(self.svm_, x)
        scores = np.full((len(x), self.n_classes_), -np.inf, dtype=np.float64)
        scores[:, self.classes_] = known
        self.stage_seconds["scoring"] = time.perf_counter() - t0
        return scores


def build_pipeline(config: BaselineConfig, context: RunContext) -> BaselinePipeline:
    """The registry's factory: a fresh baseline seeded from the run context."""
    return BaselinePipeline(config, seed=context.seed)
