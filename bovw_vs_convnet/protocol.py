"""The pipeline protocol and the context a pipeline runs in.

A pipeline is anything with ``fit(train, val) -> self`` and
``decision_scores(images) -> (n, n_classes)`` scores, higher meaning more likely.
Pipelines never compute metrics: the harness does, from the scores.

Optional attributes a pipeline may set during ``fit``/``decision_scores``, which
the harness copies into the run record when present:

- ``stage_seconds: dict[str, float]`` time per stage (descriptors, vocabulary, epochs, ...)
- ``n_params: int`` number of trainable parameters (or learned numbers, for BoVW)
- ``device: str`` where it ran (``cpu``, ``cuda:0``)
- ``model_name: str`` the model or preset, for the ``model`` column
- ``record_extra: dict`` anything else worth keeping (learning curves, keypoint counts)

and a method ``save_artifacts(run_dir: Path) -> None`` for files (galleries,
checkpoints are written during fit into ``context.run_dir``).

A pipeline whose registry entry names a bundle module (``PipelineSpec.bundle``)
keeps a model bundle with every finished run (``harness/bundle.py``): the module's
``save_bundle(pipeline) -> (files, description)`` gives the bytes of each file, in
formats that run no code when read (safetensors; arrays in ``.npz`` and JSON, see
``estimator_state.py``), and ``load_bundle(files, manifest, context) -> Pipeline``
rebuilds the fitted pipeline from them, whose ``decision_scores`` then scores new
images as the run scored its test images.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.progress import ProgressMode


@runtime_checkable
class Pipeline(Protocol):
    """What the harness needs of a pipeline."""

    def fit(self, train: ImageSet, val: ImageSet | None) -> Self:
        """Learn from ``train``; ``val`` (same classes) may be used for model selection."""
        ...

    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """Scores of shape (len(images), n_classes); higher means more likely."""
        ...


@dataclass(frozen=True)
class RunContext:
    """Where and how a pipeline runs; built by the harness, handed to the pipeline factory.

    Attributes:
        run_dir: this run's folder (checkpoints, artefacts); exists before ``fit``.
        cache_dir: shared on-disk cache for costly intermediates (joblib Memory location).
        split_fingerprint: the split's sha256, part of every cache key.
        seed: the run's seed.
        device: ``auto``, ``cpu`` or ``cuda`` (ConvNets; others ignore it).
        n_jobs: parallel workers for CPU stages (-1: all cores).
        resume: continue an interrupted run from its last checkpoint.
        progress: how loops a person waits for show progress (``progress.ProgressMode``;
            True is ``auto``, False ``none``).
    """

    run_dir: Path
    cache_dir: Path | None
    split_fingerprint: str
    seed: int = 0
    device: str = "auto"
    n_jobs: int = -1
    resume: bool = False
    progress: ProgressMode | bool = True


def cpu_workers(n_jobs: int | None) -> int:
    """Workers for ``n_jobs``: a positive number as it is, anything else every core."""
    return int(n_jobs) if n_jobs is not None and n_jobs > 0 else (os.cpu_count() or 1)


class CpuPipeline:
    """What the pipelines that run on the CPU share: the record attributes above, set to
    nothing yet, the context's number of workers, and time added up per stage.
    """

    def __init__(self, model_name: str, context: RunContext) -> None:
        self.context = context
        self.model_name = model_name
        self.device = "cpu"
        self.stage_seconds: dict[str, float] = {}
        self.record_extra: dict[str, Any] = {}
        self.n_params = 0
        self.n_jobs = cpu_workers(context.n_jobs)

    def add_seconds(self, times: Mapping[str, float]) -> None:
        """Add ``times`` (seconds per stage) to :attr:`stage_seconds`."""
        for stage, seconds in times.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + float(seconds)
