"""The results store: ``<runs-dir>/results.sqlite`` plus one folder per run.

Layout::

    runs/
      results.sqlite            one row per run (the record JSON plus indexed columns)
      cache/                    costly intermediates shared by runs (see RunContext.cache_dir)
      .partial/<key>-<run_id>/  a run in progress (its checkpoints, for --resume)
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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness.record import RunRecord

DB_NAME = "results.sqlite"
PARTIAL_DIR = ".partial"
RECORD_NAME = "record.json"
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


class ResultStore:
    """The runs folder and its SQLite index.

    Args:
        runs_dir: folder holding ``results.sqlite`` and one folder per run; created on demand.
    """

    def __init__(self, runs_dir: Path | str) -> None:
        self.runs_dir = Path(runs_dir)
        self.db_path = self.runs_dir / DB_NAME
        self._initialised = False

    # -- connection -----------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in WAL mode with a busy timeout; commits on success, closes always."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not self._initialised:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                self._initialised = True
            with conn:  # one transaction: commit on success, roll back on error
                yield conn
        except sqlite3.DatabaseError as exc:
            raise DataError(f"results store {self.db_path}: {exc}") from None
        finally:
            conn.close()

    # -- writing --------------------------------------------------------------------------

    def partial_dirs(self, key: str) -> list[Path]:
        """Staging folders of unfinished runs with config key ``key``, newest first."""
        found = (self.runs_dir / PARTIAL_DIR).glob(f"{key[:16]}-*")
        return sorted((p for p in found if p.is_dir()), key=lambda p: p.stat().st_mtime)[::-1]

    def run_dir(self, run_id: str) -> Path:
        """The final folder of run ``run_id``."""
        return self.runs_dir / run_id

    def start_run(self, key: str, run_id: str, *, resume: bool = False) -> Path:
        """Create the staging folder of run ``run_id`` and return it.

        With ``resume`` the newest staging folder left by an interrupted run of
        the same config key is reused (its checkpoints are what resuming needs).
        Otherwise the folder is new and private to this run, so that two
        identical runs at once never share or delete each other's files.
        """
        if resume:
            earlier = self.partial_dirs(key)
            if earlier:
                return earlier[0]
        staging = self.runs_dir / PARTIAL_DIR / f"{key[:16]}-{run_id}"
        staging.mkdir(parents=True, exist_ok=False)
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
        """
        run_id = str(record["run_id"])
        final = self.run_dir(run_id)
        if final.exists():
            raise DataError(f"run folder {final} already exists")
        stored = to_jsonable({**record, "run_dir": str(final.resolve())})
        staging.mkdir(parents=True, exist_ok=True)
        if scores is not None:
            np.save(staging / "scores.npy", np.asarray(scores, dtype=np.float32))
        if labels is not None:
            np.save(staging / "labels.npy", np.asarray(labels, dtype=np.int64))
        if ids is not None:
            np.save(staging / "ids.npy", np.asarray(ids).astype(str))
        tmp = staging / (RECORD_NAME + ".tmp")
        tmp.write_text(json.dumps(stored, indent=2, allow_nan=False) + "\n")
        os.replace(tmp, staging / RECORD_NAME)
        os.rename(staging, final)  # atomic on one filesystem: the run appears whole or not at all
        self._insert(stored)
        return cast(RunRecord, stored)  # the same keys, as JSON values

    def record_failure(self, record: RunRecord, staging: Path | None = None) -> RunRecord:
        """Store a run that failed (``status`` = ``failed``, ``error`` = the message)."""
        failed: RunRecord = {**record, "status": "failed"}
        if staging is None:
            staging = self.runs_dir / PARTIAL_DIR / f"failed-{failed['run_id']}"
        return self.commit(failed, staging)

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
        row = [record.get(c) for c in _COLUMNS]
        row[_COLUMNS.index("status")] = record.get("status", "ok")
        placeholders = ", ".join("?" for _ in range(len(_COLUMNS) + 1))
        with self.connect() as conn:
            conn.execute(
                f"INSERT OR IGNORE INTO runs ({', '.join(_COLUMNS)}, record) "
                f"VALUES ({placeholders})",
                [*row, json.dumps(record, allow_nan=False)],
            )

    def recover(self) -> int:
        """Index run folders whose record exists but whose row is missing; return how many."""
        if not self.runs_dir.is_dir():
            return 0
        with self.connect() as conn:
            known = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
        added = 0
        for path in sorted(self.runs_dir.iterdir()):
            rec = path / RECORD_NAME
            if path.name.startswith(".") or path.name in known or not rec.is_file():
                continue
            try:
                record = json.loads(rec.read_text())
            except (OSError, ValueError):
                continue
            if record.get("run_id") == path.name:
                self._insert(record)
                added += 1
        return added

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
        """Stored run records, oldest first, filtered by each argument that is not None."""
        if not self.db_path.exists():
            return []
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
        sql = "SELECT record FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, run_id"
        with self.connect() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [self._with_dir(json.loads(r[0])) for r in rows]

    def run_ids(self) -> set[str]:
        """The id of every stored run, whatever its status."""
        if not self.db_path.exists():
            return set()
        with self.connect() as conn:
            return {str(r[0]) for r in conn.execute("SELECT run_id FROM runs")}

    def get_run(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``; DataError when it is not stored."""
        if self.db_path.exists():
            with self.connect() as conn:
                row = conn.execute("SELECT record FROM runs WHERE run_id = ?", [run_id]).fetchone()
            if row is not None:
                return self._with_dir(json.loads(row[0]))
        raise DataError(f"no run {run_id!r} in {self.db_path}")

    def load_scores(self, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scores, labels, ids) of a stored run's test set, for re-scoring and ensembles."""
        folder = self.run_dir(run_id)
        try:
            return (
                np.load(folder / "scores.npy"),
                np.load(folder / "labels.npy"),
                np.load(folder / "ids.npy"),
            )
        except OSError as exc:
            raise DataError(f"run {run_id!r} has no stored scores: {exc}") from None

    def _with_dir(self, record: RunRecord) -> RunRecord:
        # the folder may have moved with the runs dir; the store's location wins
        record["run_dir"] = str(self.run_dir(str(record["run_id"])).resolve())
        return record
