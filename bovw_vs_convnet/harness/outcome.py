"""What the suite runner and its Dask coordinator share: a suite's options and its outcomes.

:class:`SuiteOptions` says which runs of a suite are made and how each runs;
:class:`RunOutcome` what became of one (run here or on a Dask worker);
:func:`spec_failure_record` and :func:`failed_outcome` how a failed run is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bovw_vs_convnet import __version__
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.record_json import new_run_id
from bovw_vs_convnet.harness.run import model_name
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.harness.suite import RunSpec, Suite

log = logging.getLogger(__name__)


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


def spec_failure_record(spec: RunSpec) -> RunRecord:
    """The record of ``spec``'s run that failed before the run made its own.

    A bad config or a dataset that will not load leaves no split and no config to
    record; this record keeps what was asked (the overrides as given, the train size)
    so that the suite lists the run as failed. Store it with
    :func:`~bovw_vs_convnet.harness.run.store_failure`.
    """
    return {
        "run_id": new_run_id(spec.pipeline),
        "status": "failed",
        "error": None,
        "pipeline": spec.pipeline,
        "model": model_name(spec.pipeline, spec.settings),
        "dataset": spec.dataset,
        "seed": spec.seed,
        "train_size": spec.train_size,
        "config": spec.settings,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "bvc_version": __version__,
    }


def failed_outcome(
    store: ResultStore, spec: RunSpec, failed: RunRecord, seconds: float, worker: str | None = None
) -> RunOutcome:
    """The outcome of ``spec``'s stored failure, which replaces an earlier failure of it.

    A repeated failure supersedes the earlier one (same config key); it never hides a result.
    """
    store.supersede(failed.get("config_key") or "", failed["run_id"], "failed")
    log.warning("run %s failed: %s", spec.describe(), failed.get("error"))
    return RunOutcome(spec, "failed", failed, failed.get("error"), seconds, worker=worker)
