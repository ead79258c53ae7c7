"""Pipelines and a worker plugin for the Dask tests (importable on spawned workers).

Dask's local workers are spawned processes that inherit this process's ``sys.path``,
so they import this module; :class:`RegisterPipelines` adds the test pipelines to the
registry of every worker, restarted ones included.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import suite_pipelines
from distributed.diagnostics.plugin import WorkerPlugin

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.harness import registry


@dataclass(frozen=True)
class KillerConfig:
    """``deaths``: a file holding how many more starts kill their own worker (kill -9)."""

    deaths: str = ""
    starts: str = ""  # a file that gets one line per start of fit


class KillerPipeline:
    """Kills its own process while ``deaths`` says so; otherwise the class frequencies."""

    def __init__(self, config: KillerConfig, context: Any) -> None:
        self.config = config

    def fit(self, train: ImageSet, val: ImageSet | None) -> Self:
        """Note the start; die (SIGKILL) if deaths are left, counting one down."""
        if self.config.starts:
            with open(self.config.starts, "a") as f:
                f.write(f"{os.getpid()}\n")
        deaths = Path(self.config.deaths) if self.config.deaths else None
        if deaths is not None and deaths.exists():
            left = int(deaths.read_text())
            if left > 0:
                deaths.write_text(str(left - 1))
                os.kill(os.getpid(), signal.SIGKILL)
        self.prior_ = np.bincount(train.labels, minlength=train.n_classes).astype(float)
        return self

    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """The training class frequencies for every image."""
        return np.tile(self.prior_, (len(images), 1))


def build_killer(config: KillerConfig, context: Any) -> KillerPipeline:
    """The registry's factory."""
    return KillerPipeline(config, context)


KILLER = registry.PipelineSpec(
    "killer", "cluster_helpers:KillerConfig", "cluster_helpers:build_killer", "test killer"
)


def register() -> None:
    """Add ``probe`` and ``killer`` to this process's pipeline registry."""
    suite_pipelines.register()
    registry.PIPELINES["killer"] = KILLER


class RegisterPipelines(WorkerPlugin):
    """Registers the test pipelines on each worker as it starts."""

    def setup(self, worker: Any) -> None:
        """Called by Dask on every worker, restarted ones too."""
        register()
