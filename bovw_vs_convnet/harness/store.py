"""The results store: ``<runs-dir>/results.sqlite`` plus one folder per run.

Layout::

    runs/
      results.sqlite            one row per run (the record JSON plus indexed columns)
      cache/                    costly intermediates shared by runs (see RunContext.cache_dir)
      .partial/<key>-<run_id>/  a run in progress (its checkpoints, for --resume)
      .partial/<key>-<run_id>.lock   its claim: locked while a process works in it
      .quarantine/<run_id>/     a run folder whose record could not be indexed, moved aside
      <run_id>/record.json      the full run record
      <run_id>/scores.npy       (n_test, n_classes) float test scores, rows in ids.npy order
      <run_id>/labels.npy       (n_test,) true labels
      <run_id>/ids.npy          (n_test,) test sample ids (strings)
      <run_id>/...              artefacts written by the pipeline

Writes are transactional. A run is built in a staging folder, renamed to its
final name in one step, and only then inserted into SQLite in one transaction.
An interrupted run therefore leaves at most a staging folder, never a row or a
folder without its record; earlier runs are never touched. A folder that was
renamed but whose row was not inserted (a crash between the two steps) is picked
up again by :meth:`ResultStore.recover`, so no finished result is lost. SQLite
runs in WAL mode with a busy timeout so that concurrent writers both land.

A runs folder gets shared (a lab's NFS, a colleague's tarball), so nothing in it
is trusted to be well-formed:

- a record is checked (:func:`check_record`) before it is committed, and
  :meth:`ResultStore.recover` moves a folder whose record cannot be indexed to
  ``.quarantine/`` with one warning, so one bad file never locks the store;
- reading (``list_runs``, ``get_run``) opens the database read-only (SQLite's
  ``mode=ro``), so ``bvc leaderboard`` and ``bvc report`` work on a read-only
  folder; writing to a read-only or full one raises :class:`StorageError` naming
  the folder, and what the failed write had begun is removed;
- a staging folder is claimed with an exclusive lock (``flock``, released by the
  system when its process dies) before anyone works in it: a second process
  never resumes a folder that a live one is using; it starts its own and says so.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from bovw_vs_convnet.errors import BvcError, DataError, StorageError
from bovw_vs_convnet.harness.record import RunRecord

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

DB_NAME = "results.sqlite"
PARTIAL_DIR = ".partial"
QUARANTINE_DIR = ".quarantine"
RECORD_NAME = "record.json"
LOCK_SUFFIX = ".lock"
STATUSES = ("ok", "failed", "superseded")
SEED_LIMIT = 2**32  # as config.SEED_LIMIT: numpy's seeds; the store's INTEGER holds them
BUSY_TIMEOUT_S = 60.0
SUPERSEDED = "superseded"  # status of a record replaced by a later run of the same config

_COLUMNS = (
    "run_id",
    "created_at",
    "status",
    "pipeline",
    "model",
    "dataset",
    "split_fingerprint",
    "config_key",
    "seed",
    "n_train",
    "n_test",
    "top1_err",
    "top5_err",
    "train_seconds",
    "infer_seconds",
    "n_params",
    "error",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    model TEXT,
    dataset TEXT,
    split_fingerprint TEXT,
    config_key TEXT,
    seed INTEGER,
    n_train INTEGER,
    n_test INTEGER,
    top1_err REAL,
    top5_err REAL,
    train_seconds REAL,
    infer_seconds REAL,
    n_params INTEGER,
    error TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_dataset ON runs (dataset);
CREATE INDEX IF NOT EXISTS runs_pipeline ON runs (pipeline);
CREATE INDEX IF NOT EXISTS runs_fingerprint ON runs (split_fingerprint);
CREATE INDEX IF NOT EXISTS runs_config_key ON runs (config_key);
"""


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the form every hash in the store is taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_key(
    pipeline: str,
    config: Mapping[str, Any],
    split_fingerprint: str,
    *,
    dataset: str = "",
    seed: int = 0,
) -> str:
    """sha256 of (pipeline, canonical config, dataset, split fingerprint, seed).

    Two runs with the same key would repeat each other; suites use it to skip
    runs already stored. The seed is part of it because it also seeds the
    pipeline (weight initialisation, k-means), not only the split.
    """
    payload = {
        "pipeline": pipeline,
        "config": dict(config),
        "dataset": dataset,
        "split_fingerprint": split_fingerprint,
        "seed": int(seed),
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def new_run_id(pipeline: str) -> str:
    """A unique, time-sortable run id such as ``20261126-172501-baseline-3f9a1c``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in pipeline)
    return f"{stamp}-{safe}-{uuid.uuid4().hex[:6]}"


def _to_jsonable(value: Any) -> Any:
    """Numpy scalars and arrays, tuples and paths become plain JSON values; NaN becomes null."""
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _to_jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def to_jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` that ``json.dumps`` accepts strictly (no NaN, no numpy types)."""
    out: dict[str, Any] = _to_jsonable(record)
    return out


_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TEXT_COLUMNS = ("model", "dataset", "split_fingerprint", "config_key", "error")
_INT_COLUMNS = {"seed": SEED_LIMIT, "n_train": 2**63, "n_test": 2**63, "n_params": 2**63}
_ERROR_COLUMNS = ("top1_err", "top5_err")  # fractions in [0, 1]
_SECONDS_COLUMNS = ("train_seconds", "infer_seconds")


def check_record(record: Any) -> str | None:
    """Why ``record`` cannot be a row of the store, or None when it can.

    The indexed columns must have their type and range (a seed in [0, 2**32), an
    error in [0, 1], finite numbers), and the whole record must be strict JSON (no
    NaN or Infinity): what a planted or damaged ``record.json`` gets wrong, and what
    once stopped every command in ``recover()``.
    """
    if not isinstance(record, dict):
        return "the record is not a JSON object"
    for key in ("run_id", "pipeline", "created_at"):
        if not isinstance(record.get(key), str) or not record[key]:
            return f"{key!r} is not a non-empty string"
    if not _RUN_ID.match(record["run_id"]):  # it names a folder: no "/", no ".."
        return f"run_id {record['run_id'][:60]!r} is not a folder name"
    if record.get("status", "ok") not in STATUSES:
        return f"status {record.get('status')!r} is not one of {', '.join(STATUSES)}"
    for key in _TEXT_COLUMNS:
        if record.get(key) is not None and not isinstance(record[key], str):
            return f"{key!r} is not a string"
    for key, limit in _INT_COLUMNS.items():
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
            return f"{key!r} is {str(value)[:40]}, not an integer from 0 to {limit - 1}"
    for key in (*_ERROR_COLUMNS, *_SECONDS_COLUMNS):
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key!r} is not a number"
        if not math.isfinite(value) or value < 0 or (key in _ERROR_COLUMNS and value > 1):
            return f"{key!r} is {value}, out of range"
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"it is not strict JSON ({exc})"
    return None


_SQLITE_WRITE_ERRORS = ("SQLITE_READONLY", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_IOERR")


def _write_hint(code: int | None) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free some space, or give another --runs-dir"
    return "give a writable --runs-dir (bvc leaderboard and bvc report read a read-only one)"


class ResultStore:
    """The runs folder and its SQLite index.

    Args:
        runs_dir: folder holding ``results.sqlite`` and one folder per run; created on demand.
    """

    def __init__(self, runs_dir: Path | str) -> None:
        self.runs_dir = Path(runs_dir)
        self.db_path = self.runs_dir / DB_NAME
        self._initialised = False
        self._claims: dict[Path, int] = {}  # staging folder -> the fd holding its lock
        self._warned: set[str] = set()  # warnings given once per store

    # -- connection -----------------------------------------------------------------------

    def storage_error(self, exc: OSError | sqlite3.Error) -> StorageError:
        """A one-line :class:`StorageError` naming the runs folder, from a failed write."""
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            if exc.filename:
                reason += f": {exc.filename}"
            code = exc.errno
            if code is None and " requested and " in str(exc):  # numpy's short write: disk full
                code, reason = errno.ENOSPC, os.strerror(errno.ENOSPC)
        else:
            reason = str(exc)
            # SQLite says "disk I/O error" for a full disk as often as "database or disk is full"
            name = getattr(exc, "sqlite_errorname", "")
            code = (
                errno.EROFS
                if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN"))
                else errno.ENOSPC
            )
        return StorageError(
            f"runs folder {self.runs_dir} cannot be written ({reason}); {_write_hint(code)}"
        )

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A writing connection in WAL mode with a busy timeout; commits on success, closes always.

        Raises :class:`StorageError` when the folder is read-only or full.
        """
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S)
        except (OSError, sqlite3.OperationalError) as exc:
            raise self.storage_error(exc) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not self._initialised:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                self._initialised = True
            with conn:  # one transaction: commit on success, roll back on error
                yield conn
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", "").startswith(_SQLITE_WRITE_ERRORS):
                raise self.storage_error(exc) from None
            raise DataError(f"results store {self.db_path}: {exc}") from None
        finally:
            conn.close()

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that never writes: the database of a read-only folder opens too.

        SQLite's ``mode=ro`` still needs the WAL's ``-shm`` file, which a read-only
        folder cannot create; there, without a ``-wal`` file (nothing unwritten to
        miss, and no writer can be at work), the file is opened as ``immutable``.
        """
        uri = self.db_path.resolve().as_uri()
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opening is lazy
            return conn
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
            wal = self.db_path.with_name(DB_NAME + "-wal")
            if os.access(self.runs_dir, os.W_OK):  # not the read-only case: a real error
                raise
            if wal.is_file() and wal.stat().st_size > 0:
                raise DataError(
                    f"results store {self.db_path} cannot be read ({exc}): its folder is "
                    "read-only and it has unfinished writes (-wal); copy the folder elsewhere"
                ) from None
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """The rows of a read-only query; none when there is no database (or table) yet."""
        if not self.db_path.exists():
            return []
        try:
            conn = self._open_read_only()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"results store {self.db_path}: {exc}") from None
        try:
            return conn.execute(sql, list(args)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created, but its schema not yet written
                return []
            raise DataError(f"results store {self.db_path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise DataError(f"results store {self.db_path}: {exc}") from None
        finally:
            conn.close()

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
            raise self.storage_error(exc) from None

    # -- claims on staging folders ----------------------------------------------------------

    def _claim(self, staging: Path) -> bool:
        """Lock ``staging``'s claim file for this process; False when another holds it.

        The lock is ``flock`` on ``<staging>.lock`` (beside the folder, so that it is
        never committed with it); the system drops it when its process dies, so a
        killed run's folder can be claimed again at once.
        """
        if staging in self._claims:
            return True
        if sys.platform == "win32":  # no flock: claims are not exclusive there
            self._claims[staging] = -1
            return True
        try:
            fd = os.open(staging.with_name(staging.name + LOCK_SUFFIX), os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise self.storage_error(exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: a live process works in this folder
            os.close(fd)
            return False
        self._claims[staging] = fd
        return True

    def release(self, staging: Path, *, done: bool = False) -> None:
        """Give up the claim on ``staging``; ``done``: the folder is gone, remove its lock file.

        A claim left unreleased ends with the process. The lock file is removed only
        while it is still locked, and a claimant checks that the folder still exists
        after locking, so removing it never lets two processes share a folder.
        """
        fd = self._claims.pop(staging, None)
        if fd is None:
            return
        if done:
            staging.with_name(staging.name + LOCK_SUFFIX).unlink(missing_ok=True)
        if fd >= 0:
            os.close(fd)  # drops the flock

    # -- writing --------------------------------------------------------------------------

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
            raise self.storage_error(exc) from None
        if resume:
            busy: list[Path] = []
            for earlier in self.partial_dirs(key):
                if not self._claim(earlier):
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
        self._claim(staging)  # before the folder exists: nobody can claim it in between
        try:
            staging.mkdir(exist_ok=False)
        except OSError as exc:
            self.release(staging, done=True)
            raise self.storage_error(exc) from None
        return staging

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
        arrays = {
            "scores.npy": None if scores is None else np.asarray(scores, dtype=np.float32),
            "labels.npy": None if labels is None else np.asarray(labels, dtype=np.int64),
            "ids.npy": None if ids is None else np.asarray(ids).astype(str),
        }
        written: list[Path] = []
        try:
            staging.mkdir(parents=True, exist_ok=True)
            for name, array in arrays.items():
                if array is not None:
                    written.append(staging / name)
                    np.save(staging / name, array)
            tmp = staging / (RECORD_NAME + ".tmp")
            written += [tmp, staging / RECORD_NAME]
            tmp.write_text(json.dumps(stored, indent=2, allow_nan=False) + "\n")
            os.replace(tmp, staging / RECORD_NAME)
            os.rename(staging, final)  # atomic on one filesystem: the run appears whole or not
        except OSError as exc:
            for path in written:  # a half-written file must not keep a full disk full
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            raise self.storage_error(exc) from None
        self.release(staging, done=True)
        try:
            self._insert(stored)
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

        Returns how many were marked. The row's column and its record JSON both change;
        the run folders stay as they are.
        """
        if not key:
            return 0
        sql = (
            "UPDATE runs SET status = ?, record = json_set(record, '$.status', ?) "
            "WHERE config_key = ? AND run_id != ? AND status != ?"
        )
        args = [SUPERSEDED, SUPERSEDED, key, keep, SUPERSEDED]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        with self.connect() as conn:
            return int(conn.execute(sql, args).rowcount)

    def _insert(self, record: Mapping[str, Any]) -> None:
        self._insert_many([record])

    def _insert_many(self, records: Sequence[Mapping[str, Any]]) -> None:
        placeholders = ", ".join("?" for _ in range(len(_COLUMNS) + 1))
        sql = f"INSERT OR IGNORE INTO runs ({', '.join(_COLUMNS)}, record) VALUES ({placeholders})"
        with self.connect() as conn:
            for record in records:
                row = [record.get(c) for c in _COLUMNS]
                row[_COLUMNS.index("status")] = record.get("status", "ok")
                conn.execute(sql, [*row, json.dumps(record, allow_nan=False)])

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
                record = json.loads(rec.read_text(encoding="utf-8"))
            except OSError as exc:
                self._warn_once(str(path), "run folder %s is not readable: %s", path, exc)
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
            self._insert_many(found)
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
        where, args = [], []
        for column, value in (
            ("dataset", dataset),
            ("pipeline", pipeline),
            ("split_fingerprint", split_fingerprint),
            ("config_key", config_key),
            ("status", status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT run_id, record FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, run_id"
        records = [self._parse_row(row) for row in self._query(sql, args)]
        return [r for r in records if r is not None]

    def run_ids(self) -> set[str]:
        """The id of every stored run, whatever its status."""
        return {str(r[0]) for r in self._query("SELECT run_id FROM runs")}

    def get_run(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``; DataError when it is not stored."""
        rows = self._query("SELECT run_id, record FROM runs WHERE run_id = ?", [run_id])
        record = self._parse_row(rows[0]) if rows else None
        if record is None:
            raise DataError(f"no run {run_id!r} in {self.db_path}")
        return record

    def _parse_row(self, row: Sequence[Any]) -> RunRecord | None:
        """The record of a ``(run_id, record)`` row; None (with a warning) if it is damaged."""
        try:
            record = json.loads(row[1])
        except (TypeError, ValueError):
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
            self._warn_once(str(row[0]), "run %s: its row in %s is damaged", row[0], self.db_path)
            return None
        return self._with_dir(cast(RunRecord, record))

    def load_scores(self, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, labels, ids) of a stored run's test set, for re-scoring and ensembles."""
        folder = self.run_dir(run_id)
        try:
            return (
                np.load(folder / "scores.npy", allow_pickle=False),  # arrays only, never code
                np.load(folder / "labels.npy", allow_pickle=False),
                np.load(folder / "ids.npy", allow_pickle=False),
            )
        except OSError as exc:
            raise DataError(f"run {run_id!r} has no stored scores: {exc}") from None

    def _with_dir(self, record: RunRecord) -> RunRecord:
        # the folder may have moved with the runs dir; the store's location wins
        record["run_dir"] = str(self.run_dir(str(record["run_id"])).resolve())
        return record
