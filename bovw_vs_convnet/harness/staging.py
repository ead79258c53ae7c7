"""Stores for processes that must not write ``results.sqlite``: Dask workers, torchrun ranks.

The rule (docs/ARCHITECTURE.md): one process writes a runs folder's index. On a Dask
cluster that is the coordinator (the ``bvc bench`` process); under torchrun it is rank 0.
:func:`~bovw_vs_convnet.harness.run.run_pipeline` takes the store it writes through, so
the same code runs everywhere and only the store differs:

- :class:`StagingStore` (a Dask worker) works in a staging folder under the runs folder
  as a local run does (claims, checkpoints, ``--resume``), writes the test scores there,
  and stops short of the commit: the folder stays staged, and the coordinator commits it
  (its own claim, ``record.json``, the atomic rename, the SQLite row) as it commits a
  local run;
- :class:`RankStore` (a torchrun rank other than 0) writes nothing in the runs folder:
  its staging folder is a private temporary one, removed when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import cast

import numpy as np

from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.store import ResultStore, to_jsonable


def process_rank() -> int:
    """This process's rank under torchrun (``RANK``, set by it on every process); 0 otherwise."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


class StagingStore(ResultStore):
    """A Dask worker's view of the runs folder: staging folders yes, the index never.

    :meth:`commit` and :meth:`record_failure` leave the run in its staging folder
    (scores, labels and ids written there, the claim released) and note the folder in
    :attr:`staged`, by run id, for the coordinator to commit.
    """

    def __init__(self, runs_dir: Path | str) -> None:
        super().__init__(runs_dir)
        self.staged: dict[str, Path] = {}  # run id -> its staging folder, left for the coordinator

    def recover(self) -> int:
        """Nothing: indexing folders is the coordinator's job."""
        return 0

    def supersede(self, key: str, keep: str, status: str | None = None) -> int:
        """Nothing: the coordinator marks superseded records when it commits."""
        return 0

    def commit(
        self,
        record: RunRecord,
        staging: Path,
        *,
        scores: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        ids: np.ndarray | None = None,
    ) -> RunRecord:
        """Write the score arrays into ``staging``, release it; return the record, unstored."""
        arrays = {
            "scores.npy": None if scores is None else np.asarray(scores, dtype=np.float32),
            "labels.npy": None if labels is None else np.asarray(labels, dtype=np.int64),
            "ids.npy": None if ids is None else np.asarray(ids).astype(str),
        }
        try:
            staging.mkdir(parents=True, exist_ok=True)
            for name, array in arrays.items():
                if array is not None:
                    np.save(staging / name, array)
        except OSError as exc:
            raise self.storage_error(exc) from None
        self.staged[str(record["run_id"])] = staging
        self.release(staging)  # the coordinator claims it before it commits
        return cast(RunRecord, to_jsonable(record))

    def record_failure(self, record: RunRecord, staging: Path | None = None) -> RunRecord:
        """The failed record, unstored; its staging folder (if any) is left for the coordinator."""
        failed: RunRecord = {**record, "status": "failed"}
        if staging is not None:
            self.staged[str(record["run_id"])] = staging
            self.release(staging)
        return failed


class RankStore(ResultStore):
    """A torchrun rank other than 0: reads the index like rank 0, writes nothing to the folder."""

    def check_writable(self) -> None:
        """Nothing: rank 0 checks the folder it writes."""

    def recover(self) -> int:
        """Nothing: rank 0 indexes."""
        return 0

    def supersede(self, key: str, keep: str, status: str | None = None) -> int:
        """Nothing: rank 0 stores."""
        return 0

    def start_run(self, key: str, run_id: str, *, resume: bool = False) -> Path:
        """A private temporary folder (the rank's checkpoints are rank 0's, broadcast to it)."""
        return Path(tempfile.mkdtemp(prefix=f"bvc-rank{process_rank()}-"))

    def release(self, staging: Path, *, done: bool = False) -> None:
        """Remove the temporary folder."""
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)

    def commit(
        self,
        record: RunRecord,
        staging: Path,
        *,
        scores: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        ids: np.ndarray | None = None,
    ) -> RunRecord:
        """The record, unstored; the temporary folder is removed."""
        self.release(staging)
        return record

    def record_failure(self, record: RunRecord, staging: Path | None = None) -> RunRecord:
        """The failed record, unstored (rank 0 stores the run's failure)."""
        if staging is not None:
            self.release(staging)
        return {**record, "status": "failed"}
