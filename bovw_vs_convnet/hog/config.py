"""HOG settings: :class:`HogConfig`, and the classifier it builds.

Every field is a ``--set KEY=VALUE`` key. The descriptor's defaults are Dalal and
Triggs' (9 unsigned orientations, 2×2-cell blocks, L2-Hys) with a cell that suits
the image size (``cell=auto``: 4 px for the 28–32 px sets, 2 px up to 16 px, the
paper's 8 px above 32 px); the classifier is BoVW's too,
:class:`~bovw_vs_convnet.estimators.kernel_svm.KernelSvm`, whose own checks run on
these settings before any image is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from bovw_vs_convnet.errors import ConfigError, unknown_name
from bovw_vs_convnet.estimators.kernel_svm import CONFIG_SETTINGS, KernelSvm
from bovw_vs_convnet.estimators.parameters import ParameterError
from bovw_vs_convnet.hog.features import BlockNorm

# KernelSvm's parameters and the HogConfig settings they come from
_CLASSIFIER_SETTINGS = {**CONFIG_SETTINGS, "linear_solver": "linear_solver"}


def auto_cell(side: int) -> int:
    """The cell side (px) of ``cell=auto`` for images whose shorter side is ``side`` px."""
    if side <= 16:
        return 2  # scikit-learn's 8×8 digits: 4×4 cells, 3×3 blocks
    if side <= 32:
        return 4  # Fashion-MNIST, CIFAR, the glyphs: 7×7 or 8×8 cells
    return 8  # Dalal and Triggs' 8×8-px cells (64×128-px windows)


@dataclass(frozen=True)
class HogConfig:
    """Every setting of the HOG pipeline; each is overridable with ``--set KEY=VALUE``."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # the field defaults: HOG + an RBF kernel map (Nystroem), linear SVMs by L-BFGS
        "default": {},
        # a linear SVM on the HOG vectors, as Dalal and Triggs' detector
        "linear": {"kernel": "linear", "C_grid": (0.01, 0.03, 0.1, 0.3)},
    }

    preset: str = "default"  # the preset these values came from (a record, not a setting)
    # descriptor
    cell: int | Literal["auto"] = "auto"  # cell side in px (auto: from the image size)
    block: int = 2  # block side in cells; blocks step one cell
    orientations: int = 9  # unsigned orientation bins over 0–180°
    block_norm: BlockNorm = "L2-Hys"
    # square-root (gamma) compression of the image first, as Dalal and Triggs found best
    # (Fashion-MNIST: 9.09 % against 9.52 % without)
    transform_sqrt: bool = True
    # classifier (KernelSvm)
    kernel: Literal["linear", "hellinger", "chi2", "rbf"] = "rbf"
    C: float | None = None  # SVM cost (None: the best of C_grid on the validation images)
    C_grid: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0)
    # Nystroem landmarks of the rbf map (Fashion-MNIST: 2 000 gave 10.20 %, 4 000 9.52 %)
    n_components: int = 4000
    gamma: float | None = None  # RBF width (None: 1 / (features × their variance), SVC's "scale")
    map_steps: int = 2  # χ² map samples
    select_max_train: int | None = 10_000  # choose C on this many training images, then refit
    svm_max_iter: int = 300  # iteration cap of each SVM fit
    linear_solver: Literal["lbfgs", "liblinear"] = "lbfgs"  # the linear SVMs after the map
    # execution
    chunk_images: int = 2048  # images described together (one process each)

    def __post_init__(self) -> None:
        """Refuse bad settings now, before any image is read (one line each)."""
        if self.preset not in self.PRESETS:
            raise ConfigError(unknown_name("preset", self.preset, self.PRESETS), key="preset")
        for name, low in (("block", 1), ("orientations", 1), ("chunk_images", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be ≥ {low}, got {getattr(self, name)}", key=name)
        if self.cell != "auto" and not (isinstance(self.cell, int) and self.cell >= 1):
            raise ConfigError(f"cell must be ≥ 1 (or auto), got {self.cell}", key="cell")
        try:
            make_classifier(self, n_classes=None).check_params()
        except ParameterError as exc:
            raise exc.renamed(_CLASSIFIER_SETTINGS.get(exc.param, exc.param)) from None

    def cell_for(self, shape: tuple[int, int]) -> int:
        """The cell side for (H, W) images: ``cell``, or :func:`auto_cell`."""
        return auto_cell(min(shape)) if self.cell == "auto" else int(self.cell)

    def descriptor_params(self, cell: int) -> dict[str, Any]:
        """The HOG descriptor's parameters with this ``cell`` side (``hog_features``'
        keywords, and what a model bundle says of its preprocessing).
        """
        return {
            "cell": cell,
            "block": self.block,
            "orientations": self.orientations,
            "block_norm": self.block_norm,
            "transform_sqrt": self.transform_sqrt,
        }


def make_classifier(
    cfg: HogConfig, n_classes: int | None, gamma: float | None = None, n_jobs: int = 1
) -> KernelSvm:
    """The SVM stage of ``cfg`` (``gamma`` replaces ``cfg.gamma`` when given)."""
    params = {param: getattr(cfg, setting) for param, setting in _CLASSIFIER_SETTINGS.items()}
    if gamma is not None:
        params["gamma"] = gamma
    return KernelSvm(**params, solver="map", n_classes=n_classes, n_jobs=n_jobs)
