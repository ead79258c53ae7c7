"""Checks of a suite file's tables, each refusal naming the line at fault.

:func:`check_suite` walks a parsed suite TOML document (see the format in
:mod:`~bovw_vs_convnet.harness.suite`): it refuses unknown keys, values of the wrong
type, unknown pipelines, settings and models, and seeds outside [0, 2**32), and
expands every ``[[run]]`` table into one :class:`SuiteEntry` per model × grid
combination, with the datasets, seeds, sizes and split protocol it inherits from
the top of the file. Each error is a :class:`ConfigError` reading
``SOURCE:LINE: message`` (:class:`~bovw_vs_convnet.toml_lines.TomlLines`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bovw_vs_convnet.config import SEED_LIMIT
from bovw_vs_convnet.data.split import SHORT_CLASSES
from bovw_vs_convnet.errors import ConfigError, unknown_name
from bovw_vs_convnet.toml_lines import KeyPath, TomlLines

log = logging.getLogger(__name__)

PROTOCOL_KEYS = ("train_per_class", "test_per_class", "short_classes", "splits")
SUITE_KEYS = (
    "name",
    "description",
    "datasets",
    "seeds",
    "train_sizes",
    *PROTOCOL_KEYS,
    "defaults",
    "run",
)
ENTRY_KEYS = (
    "pipeline",
    "label",
    "set",
    "models",
    "grid",
    "datasets",
    "seeds",
    "train_sizes",
    *PROTOCOL_KEYS,
)
FULL = "full"
MAX_RUNS = 10_000  # runs one suite may expand into: a grid of 9 keys × 10 values is 10**9


@dataclass(frozen=True)
class SplitProtocol:
    """The per-class protocol and the number of splits of a suite or ``[[run]]``."""

    train_per_class: tuple[int | None, ...] = (None,)
    test_per_class: int | None = None
    short_classes: str | None = None
    splits: int = 1

    def replace(
        self,
        train_per_class: Sequence[int] | None = None,
        test_per_class: int | None = None,
        short_classes: str | None = None,
        splits: int | None = None,
    ) -> SplitProtocol:
        """This protocol with what is given (not None, not empty) in its place."""
        return SplitProtocol(
            tuple(train_per_class) if train_per_class else self.train_per_class,
            test_per_class if test_per_class is not None else self.test_per_class,
            short_classes if short_classes is not None else self.short_classes,
            splits if splits is not None else self.splits,
        )


@dataclass(frozen=True)
class SuiteEntry:
    """One ``[[run]]`` table after expansion of ``models`` (one entry per model)."""

    pipeline: str
    label: str
    overrides: tuple[tuple[str, Any], ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    train_sizes: tuple[int | None, ...]
    protocol: SplitProtocol = field(default_factory=lambda: SplitProtocol())


@dataclass(frozen=True)
class _Axes:
    """What a ``[[run]]`` inherits from the top of the file unless it says otherwise."""

    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    train_sizes: tuple[int | None, ...]
    protocol: SplitProtocol = field(default_factory=lambda: SplitProtocol())


def check_suite(
    doc: Mapping[str, Any], where: TomlLines, name: str
) -> tuple[str, str, tuple[SuiteEntry, ...]]:
    """The suite's name (``name`` unless the file gives one), description and entries.

    Raises the first :class:`ConfigError` the document gives, in the file's order:
    the top-level keys, then the ``[defaults.PIPELINE]`` tables, then each ``[[run]]``.
    """
    from bovw_vs_convnet.harness.registry import PIPELINES

    _known_keys(doc, SUITE_KEYS, (), where)
    description = _string(doc, "description", "", where)
    suite_name = _string(doc, "name", name, where)
    top = _axes(doc, (), where, inherit=_Axes(datasets=(), seeds=(0,), train_sizes=(None,)))
    top = dataclasses.replace(top, protocol=_protocol(doc, (), where, SplitProtocol()))
    pipelines = set(PIPELINES)
    defaults = _defaults(doc, pipelines, where)
    runs = doc.get("run")
    if not isinstance(runs, list) or not runs:
        raise where.error(("run",), "a suite needs at least one [[run]] table")
    entries: list[SuiteEntry] = []
    for i, raw in enumerate(runs):
        entries += _entries(raw, ("run", i), top, defaults, pipelines, where)
        total = sum(entry_runs(e) for e in entries)
        if total > MAX_RUNS:  # checked per table: the whole list is never built
            raise where.error(
                ("run", i),
                f"the suite expands into {total:,} or more runs, over the limit of {MAX_RUNS:,}",
            )
    return suite_name, description, tuple(entries)


def entry_runs(entry: SuiteEntry) -> int:
    """How many runs ``entry`` expands into: datasets × seeds × sizes × per-class sizes × splits."""
    return _run_count(entry.datasets, entry.seeds, entry.train_sizes, entry.protocol)


def _run_count(
    datasets: Sequence[str], seeds: Sequence[int], sizes: Sequence[Any], p: SplitProtocol
) -> int:
    return len(datasets) * len(seeds) * len(sizes) * len(p.train_per_class) * p.splits


def _known_keys(
    table: Mapping[str, Any], known: Sequence[str], here: KeyPath, where: TomlLines
) -> None:
    for key in table:
        if key not in known:
            inside = " in [[run]]" if here else ""
            raise where.error((*here, key), unknown_name("key", key, known, where=inside))


def _string(table: Mapping[str, Any], key: str, default: str, where: TomlLines) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise where.error((key,), f"'{key}' must be a string")
    return value


def _pipeline(
    name: Any, known: set[str], path: KeyPath, where: TomlLines, context: str = ""
) -> str:
    if name not in known:
        raise where.error(path, unknown_name("pipeline", name, sorted(known), where=context))
    return str(name)


def _defaults(
    doc: Mapping[str, Any], pipelines: set[str], where: TomlLines
) -> dict[str, dict[str, Any]]:
    """The ``[defaults.PIPELINE]`` tables, each checked to name a registered pipeline."""
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise where.error(("defaults",), "'defaults' must be a table of [defaults.PIPELINE] tables")
    for pipe, table in defaults.items():
        _pipeline(pipe, pipelines, ("defaults", pipe), where, " in [defaults]")
        if not isinstance(table, dict):
            raise where.error(("defaults", pipe), f"[defaults.{pipe}] must be a table")
    return defaults


def _entries(
    raw: Any,
    here: KeyPath,
    top: _Axes,
    defaults: Mapping[str, Mapping[str, Any]],
    pipelines: set[str],
    where: TomlLines,
) -> list[SuiteEntry]:
    """The entries of one ``[[run]]`` table: one per model × grid combination."""
    if not isinstance(raw, dict):
        raise where.error(("run",), "'run' must be an array of tables ([[run]])")
    _known_keys(raw, ENTRY_KEYS, here, where)
    if not isinstance(raw.get("pipeline"), str):
        raise where.error(here, 'every [[run]] needs pipeline = "NAME"')
    pipeline = _pipeline(raw["pipeline"], pipelines, (*here, "pipeline"), where)
    settings = raw.get("set", {})
    if not isinstance(settings, dict):
        raise where.error((*here, "set"), "'set' must be a table of KEY = VALUE")
    models = _models(raw, settings, here, where)
    axes = _axes(raw, here, where, inherit=top)
    protocol = _protocol(raw, here, where, top.protocol)
    if protocol.train_per_class != (None,) and axes.train_sizes != (None,):
        raise where.error(
            (*here, "train_per_class"), "give train_sizes or train_per_class, not both"
        )
    if not axes.datasets:
        raise where.error(here, "no datasets: give datasets = [...] at the top or in this [[run]]")
    per_combo = _run_count(axes.datasets, axes.seeds, axes.train_sizes, protocol)
    combos = _grid(raw, settings, len(models or (None,)) * per_combo, here, where)
    label = _label(raw, len(models or (None,)) * len(combos), here, where)

    own_defaults = defaults.get(pipeline, {})
    entries: list[SuiteEntry] = []
    for model, combo in itertools.product(models or (None,), combos):
        own = {**settings, **combo, **({"model": model} if model else {})}
        overrides = {**own_defaults, **own}
        problem = _check_overrides(pipeline, overrides)
        if problem is not None:
            # where each setting was given; a later source replaces an earlier one
            origin: dict[str | None, KeyPath] = {
                **{k: ("defaults", pipeline, k) for k in own_defaults},
                **{k: (*here, "set", k) for k in settings},
                **{k: (*here, "grid", k) for k in combo},
                **({"model": (*here, "models")} if model else {}),
            }
            raise where.error(origin.get(problem.key, here), f"{pipeline}: {problem}")
        entries.append(
            SuiteEntry(
                pipeline=pipeline,
                label=label or _default_label(pipeline, own),
                overrides=tuple(sorted(overrides.items())),
                datasets=axes.datasets,
                seeds=axes.seeds,
                train_sizes=axes.train_sizes,
                protocol=protocol,
            )
        )
    return entries


def _models(
    raw: Mapping[str, Any], settings: Mapping[str, Any], here: KeyPath, where: TomlLines
) -> list[str] | None:
    models = raw.get("models")
    if models is None:
        return None
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise where.error((*here, "models"), "'models' must be a non-empty list of names")
    if "model" in settings:
        raise where.error((*here, "models"), "give either 'models' or set.model, not both")
    return models


def _grid(
    raw: Mapping[str, Any],
    settings: Mapping[str, Any],
    runs_per_combo: int,
    here: KeyPath,
    where: TomlLines,
) -> list[dict[str, Any]]:
    """Every combination of the ``grid`` settings (one empty combination without a grid).

    The number of runs (combinations × ``runs_per_combo``) is counted before any
    combination is made, and refused over :data:`MAX_RUNS`.
    """
    grid = raw.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise where.error((*here, "grid"), "'grid' must be a table of KEY = [VALUE, ...] lists")
    for key in grid:
        if key in settings or (key == "model" and "models" in raw):
            raise where.error((*here, "grid"), f"{key!r} is given both in 'grid' and elsewhere")
    runs = math.prod(len(v) for v in grid.values()) * runs_per_combo
    if runs > MAX_RUNS:
        sizes = " × ".join(str(len(v)) for v in grid.values())
        raise where.error(
            (*here, "grid"),
            f"this [[run]] expands into {runs:,} runs (grid {sizes}), "
            f"over the limit of {MAX_RUNS:,}",
        )
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def _label(raw: Mapping[str, Any], n_rows: int, here: KeyPath, where: TomlLines) -> str | None:
    label = raw.get("label")
    if label is not None and not isinstance(label, str):
        raise where.error((*here, "label"), "'label' must be a string")
    if label is not None and n_rows > 1:
        raise where.error(
            (*here, "label"), "'label' names one row; it cannot go with a list or grid"
        )
    return label


def _default_label(pipeline: str, overrides: Mapping[str, Any]) -> str:
    """``lenet5`` for a ConvNet, ``bovw-tiny`` for a preset, other settings in brackets."""
    label = str(overrides.get("model") or pipeline)
    if overrides.get("preset"):
        label += f"-{overrides['preset']}"
    rest = [f"{k}={v}" for k, v in sorted(overrides.items()) if k not in ("model", "preset")]
    return label + (f" ({', '.join(rest)})" if rest else "")


def _check_overrides(pipeline: str, overrides: Mapping[str, Any]) -> ConfigError | None:
    """The error ``overrides`` give when they build the pipeline's config, or None.

    The pipeline's own check (a ConvNet's model name, see
    :meth:`~bovw_vs_convnet.harness.registry.PipelineSpec.check_config`) runs too. A
    pipeline whose config or check cannot be imported (not installed) is not checked.
    """
    from bovw_vs_convnet.config import build_config
    from bovw_vs_convnet.harness.registry import get_pipeline

    spec = get_pipeline(pipeline)
    try:
        cls = spec.config_class()
    except (ImportError, AttributeError):
        log.debug("config of pipeline %r not importable; overrides not checked", pipeline)
        return None
    try:
        spec.check_config(build_config(cls, overrides))
    except ConfigError as exc:
        return exc
    except ImportError:  # the check needs an extra (torch) that is not installed
        log.debug("pipeline %r: model names not checked (its check is not importable)", pipeline)
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seed(value: Any) -> bool:
    return _is_count(value) and value < SEED_LIMIT


def _axes(table: Mapping[str, Any], here: KeyPath, where: TomlLines, *, inherit: _Axes) -> _Axes:
    """``datasets``, ``seeds`` and ``train_sizes`` of ``table``; what it lacks, from ``inherit``."""
    datasets = table.get("datasets", [])
    if isinstance(datasets, str):
        datasets = [datasets]
    if not isinstance(datasets, list) or not all(isinstance(v, str) and v for v in datasets):
        raise where.error((*here, "datasets"), "'datasets' must be a list of names")

    seeds = table.get("seeds", inherit.seeds)
    if _is_count(seeds):
        seeds = [seeds]
    if not isinstance(seeds, (list, tuple)) or not seeds or not all(_is_seed(v) for v in seeds):
        raise where.error(
            (*here, "seeds"),
            f"'seeds' must be a non-empty list of integers >= 0 and < 2**32 ({SEED_LIMIT})",
        )

    sizes = table.get("train_sizes", inherit.train_sizes)
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise where.error(
            (*here, "train_sizes"), "'train_sizes' must be a non-empty list of sizes or \"full\""
        )
    for v in sizes:
        if not (v is None or v == FULL or _is_count(v)):
            raise where.error(
                (*here, "train_sizes"),
                f"'train_sizes': {v!r} is neither a positive integer nor \"full\"",
            )
    return _Axes(
        datasets=tuple(datasets) or inherit.datasets,
        seeds=tuple(dict.fromkeys(seeds)),
        # "full" and 0 both mean the whole training part
        train_sizes=tuple(dict.fromkeys(None if v in (FULL, 0) else v for v in sizes)),
    )


def _protocol(
    table: Mapping[str, Any], here: KeyPath, where: TomlLines, inherit: SplitProtocol
) -> SplitProtocol:
    """The protocol keys of ``table`` (``train_per_class`` and the others); the rest inherited."""
    raw_n = table.get("train_per_class")
    if _is_count(raw_n):
        raw_n = [raw_n]
    if raw_n is not None and (
        not isinstance(raw_n, list) or not raw_n or not all(_is_count(v) and v > 0 for v in raw_n)
    ):
        raise where.error(
            (*here, "train_per_class"),
            "'train_per_class' must be a positive integer or a list of them",
        )
    m = table.get("test_per_class")
    if m is not None and not (_is_count(m) and m > 0):
        raise where.error((*here, "test_per_class"), "'test_per_class' must be a positive integer")
    short = table.get("short_classes")
    if short is not None and short not in SHORT_CLASSES:
        raise where.error(
            (*here, "short_classes"), f"'short_classes' must be one of {', '.join(SHORT_CLASSES)}"
        )
    splits = table.get("splits")
    if splits is not None and not (_is_count(splits) and splits > 0):
        raise where.error((*here, "splits"), "'splits' must be a positive integer")
    return inherit.replace(list(dict.fromkeys(raw_n)) if raw_n else None, m, short, splits)
