"""What became of one run of a suite: :class:`RunOutcome` (run here or on a Dask worker)."""

from __future__ import annotations

from dataclasses import dataclass

from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.suite import RunSpec


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
