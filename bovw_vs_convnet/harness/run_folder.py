"""The runs folder on disk: its layout, claims on staging folders, and a run's score arrays.

Layout::

    runs/
      results.sqlite            one row per run (harness/store_index.py)
      cache/                    costly intermediates shared by runs (see RunContext.cache_dir)
      .partial/<key>-<run_id>/  a run in progress (its checkpoints, for --resume)
      .partial/<key>-<run_id>.lock   its claim: locked while a process works in it
      .quarantine/<run_id>/     a run folder whose record could not be indexed, moved aside
      <run_id>/record.json      the full run record
      <run_id>/scores.npy       (n_test, n_classes) float test scores, rows in ids.npy order
      <run_id>/labels.npy       (n_test,) true labels
      <run_id>/ids.npy          (n_test,) test sample ids (strings)
      <run_id>/...              artefacts written by the pipeline

A staging folder is claimed with an exclusive lock (``flock``, released by the system
when its process dies) before anyone works in it: a second process never resumes a
folder that a live one is using. A write that fails (a read-only or full folder) is
one :class:`StorageError` line naming the folder, from :func:`write_failure`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bovw_vs_convnet.errors import DataError, StorageError
from bovw_vs_convnet.file_limits import LimitError, load_npy

if sys.platform != "win32":
    import fcntl

DB_NAME = "results.sqlite"
PARTIAL_DIR = ".partial"
QUARANTINE_DIR = ".quarantine"
RECORD_NAME = "record.json"
LOCK_SUFFIX = ".lock"
SCORES_NAME, LABELS_NAME, IDS_NAME = "scores.npy", "labels.npy", "ids.npy"
# a record is a few kB; ImageNet's 1 000 × 1 000 confusion matrix makes it a few MB
MAX_RECORD_BYTES = 16 << 20


def _write_hint(code: int | None) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free some space, or give another --runs-dir"
    return "give a writable --runs-dir (bvc leaderboard and bvc report read a read-only one)"


def write_failure(runs_dir: Path, exc: OSError | sqlite3.Error) -> StorageError:
    """A one-line :class:`StorageError` naming ``runs_dir``, from a failed write."""
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
            errno.EROFS if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) else errno.ENOSPC
        )
    return StorageError(f"runs folder {runs_dir} cannot be written ({reason}); {_write_hint(code)}")


class DamagedScores(DataError):
    """A run folder's score arrays are there but unusable: foreign, truncated, inconsistent."""


class ScoreArrays(NamedTuple):
    """A run's test scores, one row per test image, in one order."""

    scores: np.ndarray  # (n_test, n_classes) float, higher meaning more likely
    labels: np.ndarray  # (n_test,) true labels
    ids: np.ndarray  # (n_test,) sample ids


def write_score_arrays(
    folder: Path,
    *,
    scores: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    ids: np.ndarray | None = None,
) -> list[Path]:
    """Write a run's test scores (float32), labels (int64) and ids (str) into ``folder``.

    Returns the files written (an array given as None is not). A write that fails
    (a full disk) removes the files this call began, so that they do not keep a full
    disk full, and raises OSError.
    """
    arrays = {
        SCORES_NAME: None if scores is None else np.asarray(scores, dtype=np.float32),
        LABELS_NAME: None if labels is None else np.asarray(labels, dtype=np.int64),
        IDS_NAME: None if ids is None else np.asarray(ids).astype(str),
    }
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for name, array in arrays.items():
            if array is not None:
                written.append(folder / name)
                np.save(folder / name, array)
    except OSError:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise
    return written


def load_score_arrays(folder: Path, run_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, labels, ids) in run ``run_id``'s ``folder``, each checked before it is read.

    A run folder may come from elsewhere, so each header is checked first
    (:func:`~bovw_vs_convnet.file_limits.check_npy`: float scores of 2 dimensions, integer
    labels and text ids of one, no objects, no truncated file, at most
    :data:`~bovw_vs_convnet.file_limits.MAX_ARRAY_BYTES` each), then that the three agree
    (one row, label and id per test image; each label a column of the scores).
    Raises :class:`DamagedScores` for arrays that fail a check, DataError (its base)
    when they are missing.
    """
    try:
        scores = load_npy(folder / SCORES_NAME, kinds="f", ndim=2)  # arrays only, never code
        labels = load_npy(folder / LABELS_NAME, kinds="iu", ndim=1)
        ids = load_npy(folder / IDS_NAME, kinds="U", ndim=1)
    except OSError as exc:
        raise DataError(f"run {run_id!r} has no stored scores: {exc}") from None
    except LimitError as exc:
        raise DamagedScores(f"run {run_id!r}: {exc}") from None
    n = scores.shape[0]
    if labels.shape != (n,) or ids.shape != (n,):
        raise DamagedScores(
            f"run {run_id!r}: {n} rows of scores, {labels.size} labels and {ids.size} ids "
            f"in {folder}"
        )
    if n and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise DamagedScores(
            f"run {run_id!r}: labels.npy in {folder} holds a label outside "
            f"[0, {scores.shape[1] - 1}]"
        )
    return scores, labels, ids


class StagingClaims:
    """This process's claims on staging folders: an exclusive ``flock`` per folder.

    The lock is on ``<staging>.lock`` (beside the folder, so that it is never committed
    with it); the system drops it when its process dies, so a killed run's folder can
    be claimed again at once.
    """

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self._fds: dict[Path, int] = {}  # staging folder -> the fd holding its lock

    def claim(self, staging: Path) -> bool:
        """Lock ``staging``'s claim file for this process; False when another holds it."""
        if staging in self._fds:
            return True
        if sys.platform == "win32":  # no flock: claims are not exclusive there
            self._fds[staging] = -1
            return True
        try:
            fd = os.open(staging.with_name(staging.name + LOCK_SUFFIX), os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise write_failure(self.runs_dir, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: a live process works in this folder
            os.close(fd)
            return False
        self._fds[staging] = fd
        return True

    def release(self, staging: Path, *, done: bool = False) -> None:
        """Give up the claim on ``staging``; ``done``: the folder is gone, remove its lock file.

        A claim left unreleased ends with the process. The lock file is removed only
        while it is still locked, and a claimant checks that the folder still exists
        after locking, so removing it never lets two processes share a folder.
        """
        fd = self._fds.pop(staging, None)
        if fd is None:
            return
        if done:
            staging.with_name(staging.name + LOCK_SUFFIX).unlink(missing_ok=True)
        if fd >= 0:
            os.close(fd)  # drops the flock
