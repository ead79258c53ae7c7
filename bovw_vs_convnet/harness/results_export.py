"""A suite's stored runs as ``results/SUITE-DATASET.csv``: result tables as data.

:func:`export_suite` picks the finished runs of a runs folder that a suite's entries
asked for (pipeline, dataset, seed, training-set size, split protocol and every
``set`` value the run's config holds), ranks them as ``bvc leaderboard`` does, and
writes one CSV per dataset: the leaderboard's CSV columns
(:data:`~bovw_vs_convnet.harness.leaderboard_formats.CSV_COLUMNS`), then, per row,
the command that produces it, the toolkit version, the device, the date and the
source, and the images a class of a per-class split.
:mod:`~bovw_vs_convnet.harness.results_tables` renders the docs' tables from
these files, so a figure in the docs is a figure in a CSV.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.harness.leaderboard import LeaderboardTable, build_tables
from bovw_vs_convnet.harness.leaderboard_formats import CSV_COLUMNS, render
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.harness.suite import RunSpec, Suite

# appended to the leaderboard's columns: where each row's figures come from, then (added
# later, so appended: positions stay) the images a class of a per-class split, empty for
# the fraction protocol and absent from files written before it
PROVENANCE_COLUMNS = ("command", "bvc_version", "device", "date", "source")
SPLIT_COLUMNS = ("train_per_class",)
RESULT_COLUMNS = (*CSV_COLUMNS, *PROVENANCE_COLUMNS, *SPLIT_COLUMNS)
EXPORTED = "bvc results export"  # the source of a row written from a runs folder

_SPLIT_KEYS = ("train_per_class", "test_per_class", "short_classes")
# what a split key left unset means (data/split.py's default): a per-class run stores it
_SPLIT_DEFAULTS = {"short_classes": "refuse"}


def _same_value(stored: Any, wanted: Any) -> bool:
    """Whether a stored config value is a suite's ``set`` value (``"4,6"`` is ``[4, 6]``)."""
    if isinstance(stored, list | tuple) and isinstance(wanted, str):
        return ",".join(map(str, stored)) == wanted.replace(" ", "")
    return bool(stored == wanted) or str(stored).lower() == str(wanted).lower()


def spec_matches(spec: RunSpec, record: RunRecord) -> bool:
    """Whether ``record`` is the run ``spec`` asks for.

    Pipeline, dataset, seed, training-set size and split protocol must be equal (a split
    setting left unset counts as its default: ``short_classes`` "refuse"), and
    every ``set`` value of the spec that the run's config holds (a preset that expands
    into other keys is not itself a config key) must be the stored one.
    """
    split = record.get("split") or {}
    if record.get("pipeline") != spec.pipeline or record.get("seed") != spec.seed:
        return False
    if record.get("dataset") != spec.dataset or split.get("train_size") != spec.train_size:
        return False
    for key in _SPLIT_KEYS:
        default = _SPLIT_DEFAULTS.get(key)
        stored, wanted = split.get(key), getattr(spec, key)
        if (default if stored is None else stored) != (default if wanted is None else wanted):
            return False
    if int(split.get("split_index") or 0) != spec.split_index:
        return False
    config = record.get("config") or {}
    return all(_same_value(config[k], v) for k, v in spec.overrides if k in config)


def suite_records(
    suite: Suite, records: Sequence[RunRecord], **spec_options: Any
) -> list[RunRecord]:
    """The records among ``records`` that one of ``suite.specs(**spec_options)`` asks for."""
    specs = suite.specs(**spec_options)
    return [r for r in records if any(spec_matches(s, r) for s in specs)]


def device_text(record: RunRecord) -> str:
    """The hardware a run measured on, in words: ``cpu (Intel Xeon, 2 cores)`` or the GPU."""
    prov = record.get("provenance") or {}
    device = str(record.get("device") or prov.get("device") or "?")
    if device.startswith("cuda") and prov.get("gpu"):
        gpu = prov["gpu"]
        return f"{device} ({gpu.get('name', gpu) if isinstance(gpu, dict) else gpu})"
    cores = (prov.get("threads") or {}).get("usable_cpus")
    parts = [p for p in (prov.get("cpu"), f"{cores} cores" if cores else None) if p]
    return f"{device} ({', '.join(parts)})" if parts else device


def _joined(values: Sequence[str]) -> str:
    return "; ".join(dict.fromkeys(v for v in values if v))


def _dates(records: Sequence[RunRecord]) -> str:
    days = sorted({str(r.get("created_at") or "")[:10] for r in records} - {""})
    if not days:
        return ""
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def result_rows(tables: list[LeaderboardTable], command: str) -> list[dict[str, str]]:
    """The rows of ``tables`` as ``results/*.csv`` holds them (:data:`RESULT_COLUMNS`)."""
    reader = csv.DictReader(io.StringIO(render(tables, "csv")))
    leaderboard = list(reader)  # the same order: table by table, row by row
    out = []
    members = [(table, row) for table in tables for row in table.rows]
    for values, (table, row) in zip(leaderboard, members, strict=True):
        runs = table.row_runs(row)
        out.append(
            {
                **values,
                "command": command,
                "bvc_version": _joined([str(r.get("bvc_version") or "") for r in runs]),
                "device": _joined([device_text(r) for r in runs]),
                "date": _dates(runs),
                "source": EXPORTED,
                "train_per_class": _joined(
                    [str((r.get("split") or {}).get("train_per_class") or "") for r in runs]
                ),
            }
        )
    return out


def write_results(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    """Write ``rows`` to ``path`` with :data:`RESULT_COLUMNS` as the header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def results_stem(name: str, dataset: str) -> str:
    """The file name (no ``.csv``) of a suite's results on one dataset: ``quick-digits``."""
    dataset = dataset.rstrip("/").rsplit("/", 1)[-1]  # an ImageFolder: the folder's name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{name}-{dataset}").strip("-")


def export_suite(
    runs_dir: Path,
    suite: Suite,
    output_dir: Path,
    *,
    command: str,
    name: str | None = None,
    **spec_options: Any,
) -> list[Path]:
    """Write ``output_dir/NAME-DATASET.csv`` for each dataset of ``suite``'s stored runs.

    Args:
        runs_dir: the runs folder the suite ran into.
        suite: the suite whose runs are exported.
        output_dir: where the CSV files go (``results/``).
        command: the command that produces the runs, written in each row.
        name: the file name's first part (default: the suite's name).
        spec_options: :meth:`~bovw_vs_convnet.harness.suite.Suite.specs`'s keywords
            (``dataset``, ``seeds``, ``train_sizes``), as ``bvc bench`` was given them.

    Raises:
        DataError: when no finished run of the runs folder belongs to the suite.
    """
    store = ResultStore(runs_dir)
    store.recover()
    records = suite_records(suite, store.list_runs(status="ok"), **spec_options)
    if not records:
        raise DataError(
            f"no finished run in {runs_dir} belongs to suite {suite.name!r}; "
            f"run `{command}` with this runs folder first"
        )
    written = []
    for dataset in dict.fromkeys(str(r.get("dataset")) for r in records):
        tables = build_tables(r for r in records if r.get("dataset") == dataset)
        path = output_dir / f"{results_stem(name or suite.name, dataset)}.csv"
        written.append(write_results(path, result_rows(tables, command)))
    return written
