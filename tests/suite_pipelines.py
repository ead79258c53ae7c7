"""A test pipeline for the suite runner: slow, failing or interrupting on request.

Registered under the name ``probe`` by :func:`register` (tests patch the registry;
the kill test's subprocess calls it before starting the CLI).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.harness import registry


@dataclass(frozen=True)
class ProbeConfig:
    """What the probe does in ``fit``."""

    sleep: float = 0.0  # seconds to sleep, to give a test time to kill the process
    fail_flag: str = ""  # a file: while it exists, fit raises ValueError
    interrupt_flag: str = (
        ""  # a file holding a seed: the run with that seed raises KeyboardInterrupt
    )


class ProbePipeline:
    """Scores every image with the training set's class frequencies."""

    def __init__(self, config: ProbeConfig, context: Any) -> None:
        self.config = config
        self.seed = context.seed

    def fit(self, train: ImageSet, val: ImageSet | None) -> Self:
        """Sleep, fail or interrupt as configured, then count the classes."""
        flag = Path(self.config.interrupt_flag) if self.config.interrupt_flag else None
        if flag is not None and flag.exists() and int(flag.read_text()) == self.seed:
            raise KeyboardInterrupt
        if self.config.fail_flag and Path(self.config.fail_flag).exists():
            raise ValueError("probe failed on purpose")
        time.sleep(self.config.sleep)
        self.prior_ = np.bincount(train.labels, minlength=train.n_classes).astype(float)
        return self

    def decision_scores(self, images: ImageSet) -> np.ndarray:
        """The same class frequencies for every image."""
        return np.tile(self.prior_, (len(images), 1))


def build_pipeline(config: ProbeConfig, context: Any) -> ProbePipeline:
    """The registry's factory."""
    return ProbePipeline(config, context)


SPEC = registry.PipelineSpec(
    "probe", "suite_pipelines:ProbeConfig", "suite_pipelines:build_pipeline", "test probe"
)


def register() -> None:
    """Add ``probe`` to the pipeline registry of this process."""
    registry.PIPELINES["probe"] = SPEC
