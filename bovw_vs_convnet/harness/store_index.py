"""The runs folder's SQLite index, ``results.sqlite``: one row per run, read-only when it can be.

Each row holds the record's JSON and the columns tables filter on. SQLite runs in WAL
mode with a busy timeout, so that concurrent writers both land. Reading opens the
database read-only (SQLite's ``mode=ro``), so ``bvc leaderboard`` and ``bvc report``
work on a read-only folder; a write to a read-only or full one raises
:class:`StorageError` naming the folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness.record_json import SUPERSEDED
from bovw_vs_convnet.harness.run_folder import DB_NAME, write_failure

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_S = 60.0

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

_SQLITE_WRITE_ERRORS = ("SQLITE_READONLY", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_IOERR")
_SQLITE_DAMAGE = ("SQLITE_CORRUPT", "SQLITE_NOTADB")  # a zeroed page, random bytes
_SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's files beside the database


class DamagedIndex(DataError):
    """``results.sqlite`` is not a sound SQLite database (a zeroed page, random bytes)."""


def _error(db_path: Path, exc: sqlite3.DatabaseError) -> DataError:
    """The DataError of a failed read: :class:`DamagedIndex` when the file itself is damaged."""
    if getattr(exc, "sqlite_errorname", "").startswith(_SQLITE_DAMAGE):
        return DamagedIndex(f"results store {db_path} is damaged ({exc})")
    return DataError(f"results store {db_path}: {exc}")


class RunIndex:
    """``<runs_dir>/results.sqlite``: rows in, rows out, one transaction per write.

    The index is a copy of what the run folders hold. A damaged database file
    (:class:`DamagedIndex`) is moved aside to ``results.sqlite.damaged-<time>`` with one
    warning and built again by ``rebuild`` (the store indexes its run folders), and the
    read or write that met it goes on. Where the folder cannot be written, the index is
    rebuilt in a temporary file for this process instead, and the damaged file is left.

    Args:
        runs_dir: the runs folder.
        rebuild: fills an empty index from the run folders; None: a damaged file is an error.
    """

    def __init__(self, runs_dir: Path, rebuild: Callable[[], object] | None = None) -> None:
        self.runs_dir = runs_dir
        self.db_path = runs_dir / DB_NAME
        self.rebuild = rebuild
        self._initialised = False
        self._checked = False  # quick_check passed once in this process
        self._rebuilding = False

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A writing connection in WAL mode with a busy timeout; commits on success, closes always.

        Raises :class:`StorageError` when the folder is read-only or full.
        """
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S)
        except (OSError, sqlite3.OperationalError) as exc:
            raise write_failure(self.runs_dir, exc) from None
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
                raise write_failure(self.runs_dir, exc) from None
            raise _error(self.db_path, exc) from None
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

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """The rows of a read-only query; none when there is no database (or table) yet."""
        return self._repairing(lambda: self._query(sql, args))

    def _query(self, sql: str, args: Sequence[Any]) -> list[Any]:
        if not self.db_path.exists():
            return []
        try:
            conn = self._open_read_only()
        except sqlite3.DatabaseError as exc:
            raise _error(self.db_path, exc) from None
        try:
            if not self._checked:  # a damaged page a query's plan skips is still found
                (result,) = conn.execute("PRAGMA quick_check(1)").fetchone()
                if result != "ok":  # "*** in database main ***\nPage 2: ...": its last line
                    reason = str(result).strip().splitlines()[-1]
                    raise DamagedIndex(f"results store {self.db_path} is damaged ({reason})")
                self._checked = True
            return conn.execute(sql, list(args)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created, but its schema not yet written
                return []
            raise _error(self.db_path, exc) from None
        except sqlite3.DatabaseError as exc:
            raise _error(self.db_path, exc) from None
        finally:
            conn.close()

    def _repairing(self, operation: Callable[[], T]) -> T:
        """``operation()``; should it meet a damaged database, set it aside, rebuild, try again."""
        try:
            return operation()
        except DamagedIndex as exc:
            if self.rebuild is None or self._rebuilding:
                raise
            self._set_aside(exc)
        self._rebuilding = True
        try:
            self.rebuild()
        finally:
            self._rebuilding = False
        return operation()

    def _set_aside(self, exc: DamagedIndex) -> None:
        """Move the damaged database (and its side files) aside, or use a temporary index."""
        target = self.db_path.with_name(
            f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        )
        self._initialised = self._checked = False
        try:
            os.rename(self.db_path, target)
        except FileNotFoundError:  # another process moved it aside first
            return
        except OSError:  # a read-only folder: rebuild where this process can write
            temp = Path(tempfile.mkdtemp(prefix="bvc-index-"))
            weakref.finalize(self, shutil.rmtree, temp, True)
            log.warning(
                "%s and its folder cannot be written; this command reads an index rebuilt "
                "from the run folders in %s",
                exc,
                temp,
            )
            self.db_path = temp / DB_NAME
            return
        for side in _SIDE_FILES:  # a WAL of the damaged file must not meet the new one
            with contextlib.suppress(OSError):
                os.rename(f"{self.db_path}{side}", f"{target}{side}")
        log.warning("%s; moved to %s, and the index is rebuilt from the run folders", exc, target)

    def record_rows(self, filters: Mapping[str, Any]) -> list[Any]:
        """``(run_id, record JSON)`` rows whose columns equal ``filters``' values, oldest first.

        A filter whose value is None is left out.
        """
        where, args = [], []
        for column, value in filters.items():
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT run_id, record FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, run_id"
        return self.query(sql, args)

    def insert(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Add ``records`` (checked, strict JSON) in one transaction; a stored run id is kept."""
        self._repairing(lambda: self._insert(records))

    def _insert(self, records: Sequence[Mapping[str, Any]]) -> None:
        placeholders = ", ".join("?" for _ in range(len(_COLUMNS) + 1))
        sql = f"INSERT OR IGNORE INTO runs ({', '.join(_COLUMNS)}, record) VALUES ({placeholders})"
        with self.connect() as conn:
            for record in records:
                row = [record.get(c) for c in _COLUMNS]
                row[_COLUMNS.index("status")] = record.get("status", "ok")
                conn.execute(sql, [*row, json.dumps(record, allow_nan=False)])

    def superseded_by(self, key: str, keep: str, status: str | None = None) -> list[str]:
        """The runs that run ``keep`` supersedes: config key ``key`` (of ``status``, if given)."""
        if not key:
            return []
        sql = "SELECT run_id FROM runs WHERE config_key = ? AND run_id != ? AND status != ?"
        args = [key, keep, SUPERSEDED]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        return [str(row[0]) for row in self.query(sql, args)]

    def set_status(self, run_ids: Sequence[str], status: str) -> int:
        """Set the status of runs ``run_ids``: the row's column and its record JSON.

        Returns how many rows changed. A row whose JSON SQLite cannot read keeps its
        JSON (reading leaves it out, with a warning).
        """
        sql = (
            "UPDATE runs SET status = ?, record = CASE WHEN json_valid(record) "
            "THEN json_set(record, '$.status', ?) ELSE record END WHERE run_id = ?"
        )

        def update() -> int:
            with self.connect() as conn:
                return sum(conn.execute(sql, [status, status, r]).rowcount for r in run_ids)

        return self._repairing(update)
