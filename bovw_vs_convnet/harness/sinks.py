"""Where a run's results go: one :class:`RunSink` protocol, three implementations.

The rule (docs/ARCHITECTURE.md): one process writes a runs folder's index. Locally that
is the process that runs; on a Dask cluster it is the coordinator (the ``bvc bench``
process); under torchrun it is rank 0. :func:`~bovw_vs_convnet.harness.run.run_pipeline`
runs the same steps everywhere and hands its staging folder and results to a sink:

- :class:`StoreSink` (a local run, or rank 0) commits through the
  :class:`~bovw_vs_convnet.harness.store.ResultStore`: ``record.json``, the atomic
  rename, the SQLite row;
- :class:`WorkerStaging` (a Dask worker) works in a staging folder under the runs
  folder as a local run does (claims, checkpoints, ``--resume``), writes the test
  scores there, and stops short of the commit: the folder stays staged, and the
  coordinator commits it as it commits a local run;
- :class:`RankSink` (a torchrun rank other than 0) trains in a private temporary folder,
  removed when the run ends, and neither scores nor stores: rank 0 does.

Each holds a ResultStore for what it reads (a stored run of the same key) and what it
shares of the folder (claims on staging folders); none is a ResultStore.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol, cast

from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.record_json import to_jsonable
from bovw_vs_convnet.harness.run_folder import ScoreArrays, write_failure, write_score_arrays
from bovw_vs_convnet.harness.store import ResultStore


class RunSink(Protocol):
    """Where one run's staging folder comes from and where its record goes."""

    @property
    def scores_runs(self) -> bool:
        """Whether this process scores the test set and hands the results on after training."""
        ...

    def prepare(self) -> None:
        """Check the runs folder before any data is loaded (StorageError when it cannot be used)."""
        ...

    def stored(self, key: str) -> RunRecord | None:
        """The newest finished run stored under config key ``key``, or None."""
        ...

    def start(self, key: str, run_id: str, *, resume: bool = False) -> Path:
        """The staging folder run ``run_id`` works in, claimed for this process."""
        ...

    def finish(self, record: RunRecord, staging: Path, arrays: ScoreArrays) -> RunRecord:
        """Hand on a scored run: its record and test scores; the record as handed on."""
        ...

    def fail(self, record: RunRecord, staging: Path | None = None) -> RunRecord:
        """Hand on a failed run (``status`` ``failed``, ``error`` set); the record as handed on."""
        ...

    def leave(self, staging: Path) -> None:
        """Stop working in ``staging`` unfinished (interrupted, or a rank done training)."""
        ...


def process_rank() -> int:
    """This process's rank under torchrun (``RANK``, set by it on every process); 0 otherwise."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def sink_for_process(runs_dir: Path | str) -> RunSink:
    """The sink of a run in this process: the store, or under torchrun on ranks > 0 a RankSink."""
    store = ResultStore(runs_dir)
    return StoreSink(store) if process_rank() == 0 else RankSink(store)


def _newest(store: ResultStore, key: str) -> RunRecord | None:
    done = store.list_runs(config_key=key)
    return done[-1] if done else None


class _RunsFolderStaging:
    """What the two sinks that stage under the runs folder share: the store's claimed folders."""

    scores_runs = True

    def __init__(self, store: ResultStore) -> None:
        self.store = store

    def stored(self, key: str) -> RunRecord | None:
        """The newest finished run stored under ``key``."""
        return _newest(self.store, key)

    def start(self, key: str, run_id: str, *, resume: bool = False) -> Path:
        """A staging folder under the runs folder (see :meth:`ResultStore.start_run`)."""
        return self.store.start_run(key, run_id, resume=resume)

    def leave(self, staging: Path) -> None:
        """Release the claim: the folder stays for ``--resume``, another process may take it."""
        self.store.release(staging)


class StoreSink(_RunsFolderStaging):
    """A run stored where it runs (locally, rank 0, the Dask coordinator's early failures)."""

    def prepare(self) -> None:
        """Refuse a read-only or full folder now; index run folders left unindexed."""
        self.store.check_writable()
        self.store.recover()

    def finish(self, record: RunRecord, staging: Path, arrays: ScoreArrays) -> RunRecord:
        """Commit the run: the stored record."""
        return self.store.commit(
            record, staging, scores=arrays.scores, labels=arrays.labels, ids=arrays.ids
        )

    def fail(self, record: RunRecord, staging: Path | None = None) -> RunRecord:
        """Store the failed run: the stored record."""
        return self.store.record_failure(record, staging)


class WorkerStaging(_RunsFolderStaging):
    """A Dask worker's runs: staged under the shared runs folder, committed by the coordinator.

    :meth:`finish` and :meth:`fail` leave the run in its staging folder (scores, labels
    and ids written there, the claim released) and note the folder in :attr:`staged`, by
    run id, for the coordinator to commit.
    """

    def __init__(self, store: ResultStore) -> None:
        super().__init__(store)
        self.staged: dict[str, Path] = {}  # run id -> its staging folder, left for the coordinator

    def prepare(self) -> None:
        """Refuse a folder this worker cannot write; indexing is the coordinator's job."""
        self.store.check_writable()

    def finish(self, record: RunRecord, staging: Path, arrays: ScoreArrays) -> RunRecord:
        """Write the score arrays into ``staging``, leave it staged; the record, unstored."""
        try:
            write_score_arrays(staging, scores=arrays.scores, labels=arrays.labels, ids=arrays.ids)
        except OSError as exc:
            raise write_failure(self.store.runs_dir, exc) from None
        self._stage(record, staging)
        return cast(RunRecord, to_jsonable(record))

    def fail(self, record: RunRecord, staging: Path | None = None) -> RunRecord:
        """The failed record, unstored; its staging folder (if any) is left for the coordinator."""
        if staging is not None:
            self._stage(record, staging)
        return {**record, "status": "failed"}

    def _stage(self, record: RunRecord, staging: Path) -> None:
        self.staged[str(record["run_id"])] = staging
        self.store.release(staging)  # the coordinator claims it before it commits


class RankSink:
    """A torchrun rank other than 0: trains in a private folder, reads the store, writes nothing."""

    scores_runs = False  # rank 0 scores the test set and stores the run

    def __init__(self, store: ResultStore) -> None:
        self.store = store

    def prepare(self) -> None:
        """Nothing: rank 0 checks and indexes the folder it writes."""

    def stored(self, key: str) -> RunRecord | None:
        """The newest finished run stored under ``key``: every rank skips what rank 0 would."""
        return _newest(self.store, key)

    def start(self, key: str, run_id: str, *, resume: bool = False) -> Path:
        """A private temporary folder (the rank's checkpoints are rank 0's, broadcast to it)."""
        return Path(tempfile.mkdtemp(prefix=f"bvc-rank{process_rank()}-"))

    def finish(self, record: RunRecord, staging: Path, arrays: ScoreArrays) -> RunRecord:
        """The record, unstored; the temporary folder is removed."""
        self.leave(staging)
        return record

    def fail(self, record: RunRecord, staging: Path | None = None) -> RunRecord:
        """The failed record, unstored (rank 0 stores the run's failure)."""
        if staging is not None:
            self.leave(staging)
        return {**record, "status": "failed"}

    def leave(self, staging: Path) -> None:
        """Remove the temporary folder."""
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
