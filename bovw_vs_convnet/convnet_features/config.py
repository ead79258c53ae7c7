"""Settings of the ``convnet-features`` pipeline: :class:`ConvNetFeaturesConfig` (no torch).

Every field is a ``--set KEY=VALUE`` key; ``bvc run convnet-features --from RUN_ID``
sets ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from bovw_vs_convnet.errors import ConfigError


@dataclass(frozen=True)
class ConvNetFeaturesConfig:
    """Where the network comes from, the layer read, and the linear SVM trained on it.

    Exactly one of ``source`` and ``weights`` names the network:

    - ``source``: a stored ConvNet run: its run id (looked up in the runs folder this
      run is stored in), the path of its run folder, or ``MODEL@DATASET``, the newest
      finished ``convnet`` run of that model on that dataset there (what a suite names,
      since it cannot know run ids; the record keeps the id it resolved to).
    - ``weights``: a state-dict file the user already has (``.pt``/``.pth`` read with
      ``torch.load(weights_only=True)``, or ``.safetensors``) of the registered model
      ``weights_model`` (torchvision's ``alexnet`` layout by default), e.g. ImageNet weights from
      the user's own torchvision cache; never downloaded. A file holding more than
      tensors (a training checkpoint with its epoch and optimiser) is refused.
    """

    NOT_IDENTITY: ClassVar[tuple[str, ...]] = ("batch_size", "threads")

    source: str = ""  # a stored ConvNet run: RUN_ID, its folder, or MODEL@DATASET
    weights: str = ""  # a state-dict file of `model` (instead of source)
    weights_model: str = "alexnet"  # the registered model the weights file holds
    # the layer read: penultimate (the output layer's input: AlexNet's fc7, LeNet's F6),
    # pool (the classifier's input: the pooled, flattened conv maps) or a module name of
    # the network (e.g. features.7, classifier.1), its output flattened
    layer: str = "penultimate"
    # each feature vector to unit length (Razavian et al. 2014), standardised with the
    # training features' mean and one spread, or as read
    normalize: Literal["l2", "standardize", "none"] = "l2"
    C: float | None = None  # SVM cost (None: the best of C_grid on the validation images)
    C_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    svm_max_iter: int = 300  # L-BFGS iterations of each SVM fit
    batch_size: int = 256  # images read through the network at once
    # CPU threads of the network's forward pass and the SVMs' BLAS: auto (from the usable
    # CPUs and the network's multiply-adds per image, bovw_vs_convnet.threads), a count,
    # or 0 (the libraries' defaults)
    threads: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        """Refuse bad settings before any image is read (one line each)."""
        if bool(self.source) == bool(self.weights):
            raise ConfigError(
                "convnet-features needs exactly one of source (--from RUN_ID) and weights=PATH",
                key="source",
            )
        if not self.layer.strip():
            raise ConfigError(
                "layer must name a layer (penultimate, pool or a module)", key="layer"
            )
        if self.C is not None and not self.C > 0:
            raise ConfigError(f"C must be > 0, got {self.C}", key="C")
        if not self.C_grid or not min(self.C_grid) > 0:
            raise ConfigError(f"C_grid must hold costs > 0, got {self.C_grid!r}", key="C_grid")
        if self.threads != "auto" and self.threads < 0:
            raise ConfigError(f"threads must be auto or ≥ 0, got {self.threads}", key="threads")
        for name in ("svm_max_iter", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}", key=name)
