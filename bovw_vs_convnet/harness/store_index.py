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
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness.record_json import SUPERSEDED
from bovw_vs_convnet.harness.run_folder import DB_NAME, write_failure

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


class RunIndex:
    """``<runs_dir>/results.sqlite``: rows in, rows out, one transaction per write."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self.db_path = runs_dir / DB_NAME
        self._initialised = False

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

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
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
        placeholders = ", ".join("?" for _ in range(len(_COLUMNS) + 1))
        sql = f"INSERT OR IGNORE INTO runs ({', '.join(_COLUMNS)}, record) VALUES ({placeholders})"
        with self.connect() as conn:
            for record in records:
                row = [record.get(c) for c in _COLUMNS]
                row[_COLUMNS.index("status")] = record.get("status", "ok")
                conn.execute(sql, [*row, json.dumps(record, allow_nan=False)])

    def supersede(self, key: str, keep: str, status: str | None = None) -> int:
        """Mark the other records with config key ``key`` (of ``status``, if given) superseded.

        Returns how many were marked. The row's column and its record JSON both change.
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
