"""Benchmark suites: a TOML file of datasets, pipelines, overrides, train sizes and seeds.

A suite expands into a list of :class:`RunSpec` (one per dataset × entry ×
train size × seed), which :func:`run_suite` runs through the harness. Runs that
are already stored with status ``ok`` under the same config key are skipped, so
an interrupted suite continues where it stopped; ``force`` reruns everything.
A run that raises is recorded as failed and the suite goes on.

Format (every key but ``datasets`` and the entries' ``pipeline`` is optional)::

    description = "what the suite answers"
    datasets = ["digits"]            # manifest names or ImageFolder paths; --dataset replaces them
    seeds = [0, 1, 2]                # several seeds give mean ± std in the tables
    train_sizes = ["full", 1000]     # "full" (or 0): the whole training part

    [defaults.convnet]               # overrides for every entry of one pipeline
    epochs = 10

    [[run]]
    pipeline = "bovw"                # a registered pipeline
    label = "bovw-tiny"              # optional; a name for the row
    set = { preset = "tiny" }        # config overrides, as with --set KEY=VALUE

    [[run]]
    pipeline = "convnet"
    models = ["lenet5", "alexnet-small"]   # one entry per model (sets `model`)
    grid = { ablate = ["none", "fc7"] }     # one entry per combination of these settings
    train_sizes = [100, 1000]        # an entry may replace datasets, seeds, train_sizes

A bad file is refused with a :class:`ConfigError` naming the file and the line
at fault.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bovw_vs_convnet.errors import ConfigError

log = logging.getLogger(__name__)

SUITE_KEYS = ("name", "description", "datasets", "seeds", "train_sizes", "defaults", "run")
ENTRY_KEYS = ("pipeline", "label", "set", "models", "grid", "datasets", "seeds", "train_sizes")
FULL = "full"


@dataclass(frozen=True)
class RunSpec:
    """One run of a suite: what :func:`bovw_vs_convnet.harness.run` is asked to do.

    Attributes:
        pipeline: registered pipeline name (``bovw``, ``convnet``, ``baseline``).
        dataset: manifest name or ImageFolder path.
        seed: split and training seed.
        train_size: class-balanced training subset size; ``None`` for the whole training part.
        overrides: config overrides (``--set`` keys) as sorted (key, value) pairs.
        label: the row's name (e.g. ``bovw-tiny``, ``lenet5``).
    """

    pipeline: str
    dataset: str
    seed: int
    train_size: int | None
    overrides: tuple[tuple[str, Any], ...]
    label: str

    @property
    def settings(self) -> dict[str, Any]:
        """The overrides as a dict, ready for :func:`bovw_vs_convnet.config.build_config`."""
        return dict(self.overrides)

    def describe(self) -> str:
        """One line naming the run, e.g. ``lenet5 on digits (n=1000, seed 0)``."""
        size = "full" if self.train_size is None else f"n={self.train_size}"
        return f"{self.label} on {self.dataset} ({size}, seed {self.seed})"


@dataclass(frozen=True)
class SuiteEntry:
    """One ``[[run]]`` table after expansion of ``models`` (one entry per model)."""

    pipeline: str
    label: str
    overrides: tuple[tuple[str, Any], ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    train_sizes: tuple[int | None, ...]


@dataclass(frozen=True)
class Suite:
    """A parsed suite: a name, a description and its entries."""

    name: str
    description: str
    source: str
    entries: tuple[SuiteEntry, ...] = field(default_factory=tuple)

    def specs(
        self,
        dataset: str | None = None,
        *,
        train_sizes: Sequence[int | None] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[RunSpec]:
        """Every run of the suite; each argument given replaces what every entry says.

        Args:
            dataset: run every entry on this dataset instead.
            train_sizes: run every entry at these training-set sizes (None: full).
            seeds: run every entry with these seeds.

        The order is dataset, then train size (ascending, full last), then entry,
        then seed, so that a partly finished suite already holds comparable rows
        for its smaller sizes. Duplicates (the same run listed twice) are kept once.
        """
        entries = [
            dataclasses.replace(
                e,
                train_sizes=tuple(train_sizes) if train_sizes else e.train_sizes,
                seeds=tuple(seeds) if seeds else e.seeds,
            )
            for e in self.entries
        ]
        datasets: list[str] = []
        for entry in entries:
            for d in (dataset,) if dataset else entry.datasets:
                if d not in datasets:
                    datasets.append(d)
        sizes = sorted(
            {s for e in entries for s in e.train_sizes},
            key=lambda s: (s is None, s or 0),
        )
        out: list[RunSpec] = []
        seen: set[RunSpec] = set()
        for d in datasets:
            for size in sizes:
                for entry in entries:
                    if size not in entry.train_sizes:
                        continue
                    if not dataset and d not in entry.datasets:
                        continue
                    for seed in entry.seeds:
                        spec = RunSpec(entry.pipeline, d, seed, size, entry.overrides, entry.label)
                        if spec not in seen:
                            seen.add(spec)
                            out.append(spec)
        return out


# --------------------------------------------------------------------------- loading


def builtin_suites() -> dict[str, str]:
    """Built-in suite names mapped to their one-line descriptions."""
    out: dict[str, str] = {}
    folder = resources.files("bovw_vs_convnet") / "suites"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            name = item.name[: -len(".toml")]
            try:
                out[name] = tomllib.loads(item.read_text(encoding="utf-8")).get("description", "")
            except tomllib.TOMLDecodeError:
                out[name] = "(unreadable)"
    return out


def load_suite(name_or_path: str | Path) -> Suite:
    """Load a built-in suite by name, or a suite TOML file by path.

    Raises :class:`ConfigError` for an unknown name, a missing file or a bad file
    (with the line at fault).
    """
    text: str
    source: str
    path = Path(name_or_path)
    builtin = resources.files("bovw_vs_convnet") / "suites" / f"{name_or_path}.toml"
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(f"suite file {str(path)!r} does not exist")
        text = path.read_text(encoding="utf-8")
        source = str(path)
        name = path.stem
    elif builtin.is_file():
        text = builtin.read_text(encoding="utf-8")
        source = f"{name_or_path}.toml"
        name = str(name_or_path)
    else:
        known = ", ".join(builtin_suites())
        raise ConfigError(
            f"unknown suite {str(name_or_path)!r}; built-in: {known} (or give a .toml path)"
        )
    return parse_suite(text, source=source, name=name)


def parse_suite(text: str, *, source: str = "<suite>", name: str = "suite") -> Suite:
    """Parse and validate suite TOML ``text``; errors read ``SOURCE:LINE: message``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        if m:
            raise ConfigError(
                f"{source}:{m.group(1)}: invalid TOML: {msg[: m.start()].strip()}"
            ) from None
        raise ConfigError(f"{source}: invalid TOML: {msg}") from None

    def fail(path: Sequence[str | int], message: str) -> ConfigError:
        line = locate_key(text, path)
        where = f"{source}:{line}" if line else source
        return ConfigError(f"{where}: {message}")

    for key in doc:
        if key not in SUITE_KEYS:
            raise fail((key,), f"unknown key {key!r}; known: {', '.join(SUITE_KEYS)}")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise fail(("description",), "'description' must be a string")
    suite_name = doc.get("name", name)
    if not isinstance(suite_name, str):
        raise fail(("name",), "'name' must be a string")

    top_datasets = _str_list(doc, "datasets", (), fail)
    top_seeds = _seed_list(doc, "seeds", (), fail, default=(0,))
    top_sizes = _size_list(doc, "train_sizes", (), fail, default=(None,))

    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise fail(("defaults",), "'defaults' must be a table of [defaults.PIPELINE] tables")
    from bovw_vs_convnet.harness.registry import PIPELINES

    for pipe, table in defaults.items():
        if pipe not in PIPELINES:
            raise fail(
                ("defaults", pipe),
                f"unknown pipeline {pipe!r} in [defaults]; known: {', '.join(sorted(PIPELINES))}",
            )
        if not isinstance(table, dict):
            raise fail(("defaults", pipe), f"[defaults.{pipe}] must be a table")

    runs = doc.get("run")
    if not isinstance(runs, list) or not runs:
        raise fail(("run",), "a suite needs at least one [[run]] table")

    entries: list[SuiteEntry] = []
    for i, raw in enumerate(runs):
        if not isinstance(raw, dict):
            raise fail(("run",), "'run' must be an array of tables ([[run]])")
        here: tuple[str | int, ...] = ("run", i)
        for key in raw:
            if key not in ENTRY_KEYS:
                raise fail(
                    (*here, key), f"unknown key {key!r} in [[run]]; known: {', '.join(ENTRY_KEYS)}"
                )
        pipeline = raw.get("pipeline")
        if not isinstance(pipeline, str):
            raise fail(here, 'every [[run]] needs pipeline = "NAME"')
        if pipeline not in PIPELINES:
            raise fail(
                (*here, "pipeline"),
                f"unknown pipeline {pipeline!r}; known: {', '.join(sorted(PIPELINES))}",
            )
        settings = raw.get("set", {})
        if not isinstance(settings, dict):
            raise fail((*here, "set"), "'set' must be a table of KEY = VALUE")
        merged = {**defaults.get(pipeline, {}), **settings}
        models = raw.get("models")
        if models is not None:
            if (
                not isinstance(models, list)
                or not models
                or not all(isinstance(m, str) for m in models)
            ):
                raise fail((*here, "models"), "'models' must be a non-empty list of names")
            if "model" in settings:
                raise fail((*here, "models"), "give either 'models' or set.model, not both")
        grid = raw.get("grid", {})
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise fail((*here, "grid"), "'grid' must be a table of KEY = [VALUE, ...] lists")
        for key in grid:
            if key in settings or (key == "model" and models is not None):
                raise fail((*here, "grid"), f"{key!r} is given both in 'grid' and elsewhere")
        combos = [
            dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())
        ]
        label = raw.get("label")
        if label is not None and not isinstance(label, str):
            raise fail((*here, "label"), "'label' must be a string")
        if label is not None and len(models or [None]) * len(combos) > 1:
            raise fail((*here, "label"), "'label' names one row; it cannot go with a list or grid")
        datasets = _str_list(raw, "datasets", here, fail) or top_datasets
        if not datasets:
            raise fail(here, "no datasets: give datasets = [...] at the top or in this [[run]]")
        seeds = _seed_list(raw, "seeds", here, fail, default=top_seeds)
        sizes = _size_list(raw, "train_sizes", here, fail, default=top_sizes)
        for model, combo in itertools.product(models or [None], combos):
            overrides = {**merged, **combo}
            if model is not None:
                overrides["model"] = model
            problem = _check_overrides(pipeline, overrides)
            if problem:
                key = problem[0]
                at = (*here, "set", key) if key in settings else (*here,)
                if key == "model" and models is not None:
                    at = (*here, "models")
                elif key in combo:
                    at = (*here, "grid", key)
                elif key in defaults.get(pipeline, {}) and key not in settings:
                    at = ("defaults", pipeline, key)
                raise fail(at, problem[1])
            own = {**settings, **combo, **({"model": model} if model else {})}
            entries.append(
                SuiteEntry(
                    pipeline=pipeline,
                    label=label or _default_label(pipeline, own),
                    overrides=tuple(sorted(overrides.items())),
                    datasets=tuple(datasets),
                    seeds=seeds,
                    train_sizes=sizes,
                )
            )
    return Suite(name=suite_name, description=description, source=source, entries=tuple(entries))


def _default_label(pipeline: str, overrides: Mapping[str, Any]) -> str:
    """``lenet5`` for a ConvNet, ``bovw-tiny`` for a preset, other settings in brackets."""
    label = str(overrides.get("model") or pipeline)
    if overrides.get("preset"):
        label += f"-{overrides['preset']}"
    rest = [f"{k}={v}" for k, v in sorted(overrides.items()) if k not in ("model", "preset")]
    return label + (f" ({', '.join(rest)})" if rest else "")


def _check_overrides(pipeline: str, overrides: Mapping[str, Any]) -> tuple[str, str] | None:
    """(key, message) when ``overrides`` do not build the pipeline's config, else None.

    A pipeline whose config module cannot be imported yet (not installed) is not checked.
    """
    from bovw_vs_convnet.config import build_config
    from bovw_vs_convnet.harness.registry import get_pipeline

    try:
        cls = get_pipeline(pipeline).config_class()
    except (ImportError, AttributeError):
        log.debug("config of pipeline %r not importable; overrides not checked", pipeline)
        return None
    try:
        build_config(cls, overrides)
    except ConfigError as exc:
        msg = str(exc)
        m = re.search(r"(?:unknown setting|setting) '([^']+)'", msg)
        key = m.group(1) if m else next(iter(overrides), "")
        if msg.startswith("unknown preset"):
            key = "preset"
        return key, f"{pipeline}: {msg}"
    return None


def _str_list(
    table: Mapping[str, Any], key: str, here: tuple[str | int, ...], fail: Any
) -> tuple[str, ...]:
    value = table.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail((*here, key), f"'{key}' must be a list of names")
    return tuple(value)


def _seed_list(
    table: Mapping[str, Any],
    key: str,
    here: tuple[str | int, ...],
    fail: Any,
    default: tuple[int, ...],
) -> tuple[int, ...]:
    value = table.get(key)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise fail((*here, key), f"'{key}' must be a non-empty list of integers >= 0")
    return tuple(dict.fromkeys(value))


def _size_list(
    table: Mapping[str, Any],
    key: str,
    here: tuple[str | int, ...],
    fail: Any,
    default: tuple[int | None, ...],
) -> tuple[int | None, ...]:
    value = table.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not value:
        raise fail((*here, key), f"'{key}' must be a non-empty list of sizes or \"full\"")
    out: list[int | None] = []
    for v in value:
        if v == FULL or (type(v) is int and v == 0):
            out.append(None)
        elif isinstance(v, int) and not isinstance(v, bool) and v > 0:
            out.append(v)
        else:
            raise fail((*here, key), f"'{key}': {v!r} is neither a positive integer nor \"full\"")
    return tuple(dict.fromkeys(out))


def locate_key(text: str, path: Sequence[str | int]) -> int | None:
    """The 1-based line of ``path`` (e.g. ``("run", 2, "set", "epochs")``) in TOML ``text``.

    Follows ``[table]`` and ``[[array]]`` headers and ``key =`` lines; falls back to
    the deepest enclosing table or key found (a key inside an inline table gives the
    line of that inline table). None when nothing matches.
    """
    header: tuple[str | int, ...] = ()
    counts: dict[tuple[str, ...], int] = {}
    best: tuple[int, int] | None = None  # (matched depth, line)
    target = tuple(path)

    def consider(full: tuple[str | int, ...], line_no: int, line: str) -> None:
        nonlocal best
        depth = 0
        while depth < min(len(full), len(target)) and full[depth] == target[depth]:
            depth += 1
        if depth < len(full):
            return
        # an inline table on this line may hold the rest of the path
        for extra in target[depth:]:
            if isinstance(extra, str) and re.search(rf"[{{,\s]{re.escape(extra)}\s*=", line):
                depth += 1
            else:
                break
        if depth and (best is None or depth > best[0]):
            best = (depth, line_no)

    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if '"' not in raw else raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^\[\[\s*([A-Za-z0-9_.\-]+)\s*\]\]", line)
        if m:
            names = tuple(m.group(1).split("."))
            idx = counts.get(names, -1) + 1
            counts[names] = idx
            header = (*names, idx)
            consider(header, line_no, "")
            continue
        m = re.match(r"^\[\s*([A-Za-z0-9_.\-]+)\s*\]", line)
        if m:
            header = tuple(m.group(1).split("."))
            consider(header, line_no, "")
            continue
        m = re.match(r"^([A-Za-z0-9_.\-\"]+)\s*=", line)
        if m:
            keys = tuple(k.strip('"') for k in m.group(1).split("."))
            consider((*header, *keys), line_no, line[m.end() :])
    return best[1] if best else None


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class RunOutcome:
    """What became of one run of a suite.

    Attributes:
        spec: the run.
        status: ``ran`` (stored now), ``skipped`` (already stored with status ok),
            ``failed`` (stored as failed with its error) or ``too-large`` (the
            training size exceeds the dataset's; nothing stored).
        record: the stored record (ran, skipped, failed) or None.
        error: the one-line error of a failed or too-large run.
        seconds: wall time spent on it, data loading included.
    """

    spec: RunSpec
    status: str
    record: dict[str, Any] | None
    error: str | None
    seconds: float


def run_suite(
    suite: Suite,
    *,
    runs_dir: Path | str,
    dataset: str | None = None,
    train_sizes: Sequence[int | None] | None = None,
    seeds: Sequence[int] | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
    force: bool = False,
    n_jobs: int = -1,
    progress: bool = True,
    on_start: Any = None,
    on_done: Any = None,
) -> list[RunOutcome]:
    """Run every spec of ``suite`` through :func:`bovw_vs_convnet.harness.run.run_pipeline`.

    ``dataset``, ``train_sizes`` and ``seeds`` replace what the suite's entries say
    (see :meth:`Suite.specs`).

    A spec already stored with status ``ok`` under the same config key (pipeline,
    config, dataset, split fingerprint, seed) is skipped unless ``force``; an
    interrupted run of a ConvNet resumes from its checkpoint. A run that raises
    is stored as ``failed`` and the suite goes on. When a spec finally succeeds,
    its earlier records (a failure, or the previous result under ``force``) are
    marked ``superseded`` so that every spec counts once in the tables.

    ``on_start(index, total, spec)`` and ``on_done(index, total, outcome)`` are
    called around each run (the CLI prints from them). A KeyboardInterrupt stops
    the suite at once and propagates; what was stored stays stored, so running
    the suite again finishes it with no run lost or duplicated.
    """
    from bovw_vs_convnet.errors import DataError
    from bovw_vs_convnet.harness.run import run_pipeline
    from bovw_vs_convnet.harness.store import ResultStore

    specs = suite.specs(dataset, train_sizes=train_sizes, seeds=seeds)
    store = ResultStore(runs_dir)
    store.recover()
    known = _run_ids(store)
    outcomes: list[RunOutcome] = []
    for index, spec in enumerate(specs):
        if on_start is not None:
            on_start(index, len(specs), spec)
        t0 = time.perf_counter()
        try:
            record = run_pipeline(
                spec.pipeline,
                spec.dataset,
                overrides=spec.settings,
                seed=spec.seed,
                train_size=spec.train_size,
                runs_dir=runs_dir,
                data_dir=data_dir,
                device=device,
                n_jobs=n_jobs,
                resume=not force,
                progress=progress,
                skip_existing=not force,
            )
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if isinstance(exc, DataError) and _TOO_LARGE.match(str(exc)):
                outcome = RunOutcome(spec, "too-large", None, str(exc), time.perf_counter() - t0)
            else:
                stored = _new_failure(store, known) or _store_failure(store, spec, message)
                # a repeated failure replaces the earlier one; it never hides a result
                store.supersede(
                    str(stored.get("config_key") or ""), str(stored["run_id"]), "failed"
                )
                outcome = RunOutcome(spec, "failed", stored, message, time.perf_counter() - t0)
                log.warning("run %s failed: %s", spec.describe(), message)
        else:
            skipped = str(record["run_id"]) in known
            if not skipped:
                store.supersede(str(record.get("config_key") or ""), str(record["run_id"]))
            outcome = RunOutcome(
                spec, "skipped" if skipped else "ran", record, None, time.perf_counter() - t0
            )
        known = _run_ids(store)
        outcomes.append(outcome)
        if on_done is not None:
            on_done(index, len(specs), outcome)
    return outcomes


_TOO_LARGE = re.compile(r"train size \d+ is larger than")


def _run_ids(store: Any) -> set[str]:
    """Every run id in the store, whatever its status."""
    return {str(r["run_id"]) for r in store.list_runs(status=None)}


def _new_failure(store: Any, known: set[str]) -> dict[str, Any] | None:
    """The failed record the harness stored for the run that just raised, if it stored one."""
    new = [r for r in store.list_runs(status="failed") if str(r["run_id"]) not in known]
    return new[-1] if new else None


def _store_failure(store: Any, spec: RunSpec, message: str) -> dict[str, Any]:
    """Store a failure that happened before the harness could (bad data, bad config)."""
    from datetime import UTC, datetime

    from bovw_vs_convnet.harness import provenance
    from bovw_vs_convnet.harness.store import new_run_id

    run_id = new_run_id(spec.pipeline)
    record = {
        "run_id": run_id,
        "status": "failed",
        "error": message,
        "pipeline": spec.pipeline,
        "model": spec.settings.get("model") or spec.settings.get("preset") or spec.pipeline,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "train_size": spec.train_size,
        "config": spec.settings,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "provenance": provenance.collect(),
    }
    stored: dict[str, Any] = store.record_failure(record)
    return stored
