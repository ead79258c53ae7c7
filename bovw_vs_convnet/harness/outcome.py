"""What the suite runner and its Dask coordinator share: a suite's options and its outcomes.

:class:`SuiteOptions` says which runs of a suite are made and how each runs;
:class:`RunOutcome` what became of one (run here or on a Dask worker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.suite import RunSpec, Suite


@dataclass(frozen=True)
class SuiteOptions:
    """The runs of a suite and how each runs (see :func:`~.suite_runner.run_suite`).

    Attributes:
        runs_dir: the results store's folder.
        dataset, train_sizes, seeds, protocol: replace what the suite's entries say
            (:meth:`Suite.specs`; ``protocol`` holds ``train_per_class``,
            ``test_per_class``, ``short_classes``, ``splits``).
        data_dir, device, n_jobs: handed to every run.
        force: rerun what is stored (else it is skipped and interrupted runs resume).
    """

    runs_dir: Path
    dataset: str | None = None
    train_sizes: Sequence[int | None] | None = None
    seeds: Sequence[int] | None = None
    protocol: Mapping[str, Any] | None = None
    data_dir: Path | None = None
    device: str = "auto"
    force: bool = False
    n_jobs: int = -1

    def specs(self, suite: Suite) -> list[RunSpec]:
        """Every run of ``suite`` these options make, in the suite's order."""
        return suite.specs(
            self.dataset,
            train_sizes=self.train_sizes,
            seeds=self.seeds,
            **dict(self.protocol or {}),
        )


@dataclass(frozen=True)
class RunOutcome:
    """What became of one run of a suite.

    Attributes:
        spec: the run.
        status: ``ran`` (stored now), ``skipped`` (already stored with status ok),
            ``failed`` (stored as failed with its error) or ``too-large`` (the
            training size exceeds the dataset's; nothing stored).
        record: the stored record (ran, skipped, failed) or None.
        error: the one-line error of a failed or too-large run.
        seconds: wall time spent on it, data loading included.
        worker: the Dask worker that ran it (None when it ran here).
    """

    spec: RunSpec
    status: str
    record: RunRecord | None
    error: str | None
    seconds: float
    worker: str | None = None
