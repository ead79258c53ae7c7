"""A record as the store keeps it: strict JSON, its hashes, its id, and the checks a row must pass.

Every hash in the store (a run's config key, a bundle's digest, a table's grouping) is
taken of :func:`canonical_json`, so that equal settings hash equally whatever their
order. A runs folder is shared (a lab's NFS, a colleague's tarball), so a record is
checked by :func:`check_record` before it becomes a row, and again when
:meth:`~bovw_vs_convnet.harness.store.ResultStore.recover` finds a folder not yet
indexed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bovw_vs_convnet.config import SEED_LIMIT

STATUSES = ("ok", "failed", "superseded")
SUPERSEDED = "superseded"  # status of a record replaced by a later run of the same config


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
    if "learned" in record and not isinstance(record["learned"], bool):
        return f"'learned' is {str(record['learned'])[:40]}, not true or false"
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"it is not strict JSON ({exc})"
    return None
