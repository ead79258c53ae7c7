"""The results store: ``<runs-dir>/results.sqlite`` plus one folder per run.

The folder's layout is :mod:`~bovw_vs_convnet.harness.run_folder`'s; the SQLite index
is :mod:`~bovw_vs_convnet.harness.store_index`'s. This module makes the two one
transactional store. A run is built in a staging folder, renamed to its final name
in one step, and only then inserted into SQLite in one transaction. An interrupted
run therefore leaves at most a staging folder, never a row or a folder without its
record; earlier runs are never touched. A folder that was renamed but whose row was
not inserted (a crash between the two steps) is picked up again by
:meth:`ResultStore.recover`, so no finished result is lost.

A runs folder gets shared (a lab's NFS, a colleague's tarball), so nothing in it
is trusted to be well-formed:

- a record is checked (:func:`~.record_json.check_record`) before it is committed,
  and :meth:`ResultStore.recover` moves a folder whose record cannot be indexed to
  ``.quarantine/`` with one warning, so one bad file never locks the store;
- reading (``list_runs``, ``get_run``) works on a read-only folder; writing to a
  read-only or full one raises :class:`StorageError` naming the folder, and what the
  failed write had begun is removed;
- a staging folder is claimed before anyone works in it: a second process never
  resumes a folder that a live one is using; it starts its own and says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, cast

import numpy as np

from bovw_vs_convnet.errors import BvcError, DataError, StorageError
from bovw_vs_convnet.file_limits import LimitError, load_json, read_json_file
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.record_json import SUPERSEDED, check_record, to_jsonable
from bovw_vs_convnet.harness.run_folder import (
    MAX_RECORD_BYTES,
    PARTIAL_DIR,
    QUARANTINE_DIR,
    RECORD_NAME,
    StagingClaims,
    load_score_arrays,
    write_failure,
    write_score_arrays,
)
from bovw_vs_convnet.harness.store_index import RunIndex

log = logging.getLogger(__name__)


class ResultStore:
    """The runs folder and its SQLite index.

    Args:
        runs_dir: folder holding ``results.sqlite`` and one folder per run; created on demand.
    """

    def __init__(self, runs_dir: Path | str) -> None:
        self.runs_dir = Path(runs_dir)
        self.index = RunIndex(self.runs_dir, rebuild=self.recover)  # a damaged index: rebuilt
        self.claims = StagingClaims(self.runs_dir)
        self._warned: set[str] = set()  # warnings given once per store

    @property
    def db_path(self) -> Path:
        """The SQLite index (a temporary copy where a damaged one could not be moved aside)."""
        return self.index.db_path

    def check_writable(self) -> None:
        """Raise :class:`StorageError` now when the runs folder cannot be written.

        Called before a run loads its data, so that a read-only folder costs nothing.
        """
        partial = self.runs_dir / PARTIAL_DIR
        try:
            partial.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".probe-", dir=partial)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise write_failure(self.runs_dir, exc) from None

    # -- staging folders ------------------------------------------------------------------

    def claim(self, staging: Path) -> bool:
        """Claim ``staging`` for this process; False when a live process holds it."""
        return self.claims.claim(staging)

    def release(self, staging: Path, *, done: bool = False) -> None:
        """Give up the claim on ``staging``; ``done``: the folder is gone (see StagingClaims)."""
        self.claims.release(staging, done=done)

    def partial_dirs(self, key: str) -> list[Path]:
        """Staging folders of unfinished runs with config key ``key``, newest first."""
        found: list[tuple[float, Path]] = []
        for p in (self.runs_dir / PARTIAL_DIR).glob(f"{key[:16]}-*"):
            with contextlib.suppress(OSError):  # committed by another process meanwhile
                if p.is_dir():
                    found.append((p.stat().st_mtime, p))
        return [p for _, p in sorted(found, reverse=True)]

    def run_dir(self, run_id: str) -> Path:
        """The final folder of run ``run_id``."""
        return self.runs_dir / run_id

    def start_run(self, key: str, run_id: str, *, resume: bool = False) -> Path:
        """Create the staging folder of run ``run_id`` and return it.

        With ``resume`` the newest staging folder left by an interrupted run of
        the same config key is reused (its checkpoints are what resuming needs),
        unless another live process has claimed it: then this run starts its own
        folder and logs a warning saying so. Otherwise the folder is new and
        private to this run, so that two identical runs at once never share or
        delete each other's files. The folder stays claimed by this process until
        :meth:`commit` or :meth:`release`.
        """
        partial = self.runs_dir / PARTIAL_DIR
        try:
            partial.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_failure(self.runs_dir, exc) from None
        if resume:
            busy: list[Path] = []
            for earlier in self.partial_dirs(key):
                if not self.claim(earlier):
                    busy.append(earlier)
                elif earlier.is_dir():
                    return earlier
                else:  # committed between the listing and the claim
                    self.release(earlier, done=True)
            if busy:
                log.warning(
                    "%s is in use by another process; this run starts its own staging folder",
                    busy[0],
                )
        staging = partial / f"{key[:16]}-{run_id}"
        self.claim(staging)  # before the folder exists: nobody can claim it in between
        try:
            staging.mkdir(exist_ok=False)
        except OSError as exc:
            self.release(staging, done=True)
            raise write_failure(self.runs_dir, exc) from None
        return staging

    # -- writing --------------------------------------------------------------------------

    def commit(
        self,
        record: RunRecord,
        staging: Path,
        *,
        scores: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        ids: np.ndarray | None = None,
    ) -> RunRecord:
        """Write the record and score arrays into ``staging``, rename it, insert the row.

        Returns the stored record (with ``run_dir`` set to the final folder).
        A record that cannot be a row (:func:`check_record`) raises DataError before
        anything is written; a write that fails (full disk, read-only folder) removes
        the files this call wrote and raises :class:`StorageError`.
        """
        run_id = str(record["run_id"])
        final = self.run_dir(run_id)
        if final.exists():
            raise DataError(f"run folder {final} already exists")
        stored = to_jsonable({**record, "run_dir": str(final.resolve())})
        problem = check_record(stored)
        if problem is not None:
            raise DataError(f"run {run_id} cannot be stored: {problem}")
        written: list[Path] = []
        try:
            written += write_score_arrays(staging, scores=scores, labels=labels, ids=ids)
            tmp = staging / (RECORD_NAME + ".tmp")
            written += [tmp, staging / RECORD_NAME]
            tmp.write_text(json.dumps(stored, indent=2, allow_nan=False) + "\n")
            os.replace(tmp, staging / RECORD_NAME)
            os.rename(staging, final)  # atomic on one filesystem: the run appears whole or not
        except OSError as exc:
            for path in written:  # a half-written file must not keep a full disk full
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            raise write_failure(self.runs_dir, exc) from None
        self.release(staging, done=True)
        try:
            self.index.insert([stored])
        except StorageError as exc:
            raise StorageError(
                f"{exc} (run {run_id} is in {final}: the next command indexes it)"
            ) from None
        return cast(RunRecord, stored)  # the same keys, as JSON values

    def record_failure(self, record: RunRecord, staging: Path | None = None) -> RunRecord:
        """Store a run that failed (``status`` = ``failed``, ``error`` = the message)."""
        failed: RunRecord = {**record, "status": "failed"}
        own = staging is None
        if staging is None:
            staging = self.runs_dir / PARTIAL_DIR / f"failed-{failed['run_id']}"
        try:
            return self.commit(failed, staging)
        except BvcError:
            if own:  # nothing but what commit wrote: leave no empty folder behind
                shutil.rmtree(staging, ignore_errors=True)
            raise

    def supersede(self, key: str, keep: str, status: str | None = None) -> int:
        """Mark the other records with config key ``key`` (of ``status``, if given) superseded.

        Returns how many were marked. Each run folder's ``record.json`` changes first,
        then the row (its column and its record JSON): an index rebuilt from the folders
        keeps the status. A folder whose record cannot be rewritten keeps its status,
        with a warning; a failed write is a StorageError.
        """
        run_ids = self.index.superseded_by(key, keep, status)
        for run_id in run_ids:
            self._write_status(run_id, SUPERSEDED)
        return self.index.set_status(run_ids, SUPERSEDED)

    def _write_status(self, run_id: str, status: str) -> None:
        """Set ``status`` in run ``run_id``'s ``record.json``, replaced in one step."""
        path = self.run_dir(run_id) / RECORD_NAME
        try:
            record = read_json_file(path, max_bytes=MAX_RECORD_BYTES)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            record["status"] = status
            text = json.dumps(record, indent=2, allow_nan=False) + "\n"
        except (OSError, ValueError) as exc:
            self._warn_once(
                str(path), "run %s: %s not rewritten as %s (%s)", run_id, path, status, exc
            )
            return
        tmp = path.with_name(RECORD_NAME + ".tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise write_failure(self.runs_dir, exc) from None

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _quarantine(self, folder: Path, reason: str) -> None:
        """Move a run folder whose record cannot be indexed to ``.quarantine/``; warn once."""
        target = self.runs_dir / QUARANTINE_DIR / folder.name
        try:
            target.parent.mkdir(exist_ok=True)
            while target.exists():  # a folder of that name was quarantined before
                target = target.with_name(f"{target.name}-{uuid.uuid4().hex[:4]}")
            os.rename(folder, target)
        except OSError:
            self._warn_once(
                str(folder), "run folder %s cannot be indexed: %s (left in place)", folder, reason
            )
            return
        log.warning("run folder %s cannot be indexed: %s; moved to %s", folder, reason, target)

    def recover(self) -> int:
        """Index run folders whose record exists but whose row is missing; return how many.

        A folder whose record is not valid JSON, or cannot be a row
        (:func:`check_record`), is moved to ``.quarantine/`` with a warning naming it,
        and the others are indexed. In a read-only runs folder nothing is written:
        the folders not yet indexed are left out, with one warning.
        """
        if not self.runs_dir.is_dir():
            return 0
        known = self.run_ids()
        found: list[dict[str, Any]] = []
        for path in sorted(self.runs_dir.iterdir()):
            rec = path / RECORD_NAME
            if path.name.startswith(".") or path.name in known or not rec.is_file():
                continue
            try:
                record = read_json_file(rec, max_bytes=MAX_RECORD_BYTES)
            except OSError as exc:
                self._warn_once(str(path), "run folder %s is not readable: %s", path, exc)
                continue
            except LimitError as exc:  # too large, too deeply nested
                self._quarantine(path, str(exc))
                continue
            except ValueError as exc:  # not JSON, not UTF-8
                self._quarantine(path, f"{RECORD_NAME} is not valid JSON ({exc})")
                continue
            problem = check_record(record)
            if problem is not None:
                self._quarantine(path, problem)
            elif record["run_id"] == path.name:  # else a copy under another name: not indexed
                found.append(record)
        if not found:
            return 0
        try:
            self.index.insert(found)
        except StorageError as exc:
            self._warn_once(
                "read-only", "%d run folder(s) left out, not indexed: %s", len(found), exc
            )
            return 0
        return len(found)

    # -- reading --------------------------------------------------------------------------

    def list_runs(
        self,
        *,
        dataset: str | None = None,
        pipeline: str | None = None,
        split_fingerprint: str | None = None,
        config_key: str | None = None,
        status: str | None = "ok",
    ) -> list[RunRecord]:
        """Stored run records, oldest first, filtered by each argument that is not None.

        Read-only: works on a runs folder that cannot be written.
        """
        rows = self.index.record_rows(
            {
                "dataset": dataset,
                "pipeline": pipeline,
                "split_fingerprint": split_fingerprint,
                "config_key": config_key,
                "status": status,
            }
        )
        records = [self._parse_row(row) for row in rows]
        return [r for r in records if r is not None]

    def run_ids(self) -> set[str]:
        """The id of every stored run, whatever its status."""
        return {str(r[0]) for r in self.index.query("SELECT run_id FROM runs")}

    def get_run(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``; DataError when it is not stored."""
        rows = self.index.query("SELECT run_id, record FROM runs WHERE run_id = ?", [run_id])
        record = self._parse_row(rows[0]) if rows else None
        if record is None:
            raise DataError(f"no run {run_id!r} in {self.db_path}")
        return record

    def _parse_row(self, row: Any) -> RunRecord | None:
        """The record of a ``(run_id, record)`` row; None (with a warning) if it is damaged."""
        try:  # a row's JSON is as foreign as the folder it came from: bounded before parsing
            record = load_json(row[1], "its JSON", max_bytes=MAX_RECORD_BYTES)
        except (TypeError, ValueError) as exc:
            record, why = None, f" ({exc})"
        else:
            why = ""
        if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
            self._warn_once(
                str(row[0]), "run %s: its row in %s is damaged%s", row[0], self.db_path, why
            )
            return None
        # the folder may have moved with the runs dir; the store's location wins
        record["run_dir"] = str(self.run_dir(str(record["run_id"])).resolve())
        return cast(RunRecord, record)

    def load_scores(self, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, labels, ids) of a stored run's test set, for re-scoring and ensembles."""
        return load_score_arrays(self.run_dir(run_id), run_id)
