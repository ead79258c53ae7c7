"""Benchmark suites: a TOML file of datasets, pipelines, overrides, train sizes and seeds.

This module reads and checks suite files. A suite expands into a list of
:class:`RunSpec` (one per dataset × entry × train size × seed), which
:func:`bovw_vs_convnet.harness.suite_runner.run_suite` runs through the harness,
skipping what is stored and going on past a failed run.

Format (every key but ``datasets`` and the entries' ``pipeline`` is optional)::

    description = "what the suite answers"
    datasets = ["digits"]            # manifest names or ImageFolder paths; --dataset replaces them
    seeds = [0, 1, 2]                # several seeds give mean ± std in the tables
    train_sizes = ["full", 1000]     # "full" (or 0): the whole training part
    # the per-class protocol (Caltech-101's), instead of train_sizes; see data/split.py
    train_per_class = [15, 30]       # N training images per class (one row per N)
    test_per_class = 50              # at most M test images per class
    short_classes = "take-rest"      # a class with fewer than N + M: "refuse" (default)
    splits = 3                       # K seeded resamplings of the split (mean ± interval)

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
                                     # and the protocol keys above

A bad file is refused with a :class:`ConfigError` naming the file and the line
at fault, when it is parsed: an unknown pipeline, setting or model (a ConvNet's
``model``, checked through the pipeline registry, which imports torch for it), a
seed outside [0, 2**32), a file that is not UTF-8 text.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bovw_vs_convnet.config import SEED_LIMIT
from bovw_vs_convnet.data.split import SHORT_CLASSES
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.harness.toml_lines import KeyPath, TomlLines, load_toml

log = logging.getLogger(__name__)

PROTOCOL_KEYS = ("train_per_class", "test_per_class", "short_classes", "splits")
SUITE_KEYS = (
    "name", "description", "datasets", "seeds", "train_sizes", *PROTOCOL_KEYS, "defaults", "run",
)  # fmt: skip
ENTRY_KEYS = (
    "pipeline", "label", "set", "models", "grid", "datasets", "seeds", "train_sizes",
    *PROTOCOL_KEYS,
)  # fmt: skip
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
        train_per_class, test_per_class, short_classes: the per-class protocol (None:
            the fraction protocol; see :func:`~bovw_vs_convnet.data.split.make_split`).
        split_index: which seeded resampling of the split (0 .. splits - 1).
    """

    pipeline: str
    dataset: str
    seed: int
    train_size: int | None
    overrides: tuple[tuple[str, Any], ...]
    label: str
    train_per_class: int | None = None
    test_per_class: int | None = None
    short_classes: str | None = None
    split_index: int = 0

    @property
    def settings(self) -> dict[str, Any]:
        """The overrides as a dict, ready for :func:`bovw_vs_convnet.config.build_config`."""
        return dict(self.overrides)

    @property
    def split_options(self) -> dict[str, Any]:
        """The split keywords of :func:`~bovw_vs_convnet.harness.run.run_pipeline` beyond
        the train size and seed: the per-class protocol and the split index (none given:
        an empty dict, the split every run had before)."""
        out: dict[str, Any] = {}
        for key in ("train_per_class", "test_per_class", "short_classes"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.split_index:
            out["split_index"] = self.split_index
        return out

    def describe(self) -> str:
        """One line naming the run, e.g. ``lenet5 on digits (n=1000, seed 0)``."""
        if self.train_per_class is not None or self.test_per_class is not None:
            size = "all" if self.train_per_class is None else f"{self.train_per_class}"
            size += "/class" + (
                f", test {self.test_per_class}/class" if self.test_per_class else ""
            )
        else:
            size = "full" if self.train_size is None else f"n={self.train_size}"
        split = f", split {self.split_index}" if self.split_index else ""
        return f"{self.label} on {self.dataset} ({size}, seed {self.seed}{split})"


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
        train_per_class: Sequence[int] | None = None,
        test_per_class: int | None = None,
        short_classes: str | None = None,
        splits: int | None = None,
    ) -> list[RunSpec]:
        """Every run of the suite; each argument given replaces what every entry says.

        Args:
            dataset: run every entry on this dataset instead.
            train_sizes: run every entry at these training-set sizes (None: full).
            seeds: run every entry with these seeds.
            train_per_class, test_per_class, short_classes, splits: the per-class
                protocol and the number of seeded resamplings of the split.

        The order is dataset, then train size (ascending, full last), then training
        images per class, then entry, then seed, then split, so that a partly finished
        suite already holds comparable rows for its smaller sizes. Duplicates (the same
        run listed twice) are kept once.
        """
        entries = [
            dataclasses.replace(
                e,
                # training images per class from the command line replace the sizes too
                train_sizes=tuple(train_sizes)
                if train_sizes
                else ((None,) if train_per_class else e.train_sizes),
                seeds=tuple(seeds) if seeds else e.seeds,
                protocol=e.protocol.replace(train_per_class, test_per_class, short_classes, splits),
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
        per_class = sorted(
            {n for e in entries for n in e.protocol.train_per_class},
            key=lambda n: (n is None, n or 0),
        )
        out: list[RunSpec] = []
        seen: set[RunSpec] = set()
        for d, size, n in itertools.product(datasets, sizes, per_class):
            for entry in entries:
                p = entry.protocol
                if size not in entry.train_sizes or n not in p.train_per_class:
                    continue
                if not dataset and d not in entry.datasets:
                    continue
                for seed, index in itertools.product(entry.seeds, range(p.splits)):
                    spec = RunSpec(
                        entry.pipeline, d, seed, size, entry.overrides, entry.label,
                        train_per_class=n, test_per_class=p.test_per_class,
                        short_classes=p.short_classes, split_index=index,
                    )  # fmt: skip
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
        if path.is_dir():
            raise ConfigError(f"suite {str(path)!r} is a folder; give a suite TOML file")
        if not path.is_file():
            raise ConfigError(f"suite file {str(path)!r} does not exist")
        text = _read_text(path)
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


def _read_text(path: Path) -> str:
    """The file's text; a file that is not UTF-8 (or cannot be read) is one ConfigError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"suite file {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "a suite file is TOML, which is UTF-8"
        ) from None


def parse_suite(text: str, *, source: str = "<suite>", name: str = "suite") -> Suite:
    """Parse and validate suite TOML ``text``; errors read ``SOURCE:LINE: message``.

    The line is left out (``SOURCE: message``) where the file has no line that
    gave the value at fault, e.g. a missing ``[[run]]``.
    """
    from bovw_vs_convnet.harness.registry import PIPELINES

    doc = load_toml(text, source)
    where = TomlLines(text, source)
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
    entries = [
        entry
        for i, raw in enumerate(runs)
        for entry in _entries(raw, ("run", i), top, defaults, pipelines, where)
    ]
    return Suite(name=suite_name, description=description, source=source, entries=tuple(entries))


# --------------------------------------------------------------------------- validators

# where a value sits in the TOML document: ("run", 2, "set", "epochs")


@dataclass(frozen=True)
class _Axes:
    """What a ``[[run]]`` inherits from the top of the file unless it says otherwise."""

    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    train_sizes: tuple[int | None, ...]
    protocol: SplitProtocol = field(default_factory=lambda: SplitProtocol())


def _known_keys(
    table: Mapping[str, Any], known: Sequence[str], here: KeyPath, where: TomlLines
) -> None:
    for key in table:
        if key not in known:
            inside = " in [[run]]" if here else ""
            raise where.error(
                (*here, key), f"unknown key {key!r}{inside}; known: {', '.join(known)}"
            )


def _string(table: Mapping[str, Any], key: str, default: str, where: TomlLines) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise where.error((key,), f"'{key}' must be a string")
    return value


def _pipeline(
    name: Any, known: set[str], path: KeyPath, where: TomlLines, context: str = ""
) -> str:
    if name not in known:
        raise where.error(
            path, f"unknown pipeline {name!r}{context}; known: {', '.join(sorted(known))}"
        )
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
    combos = _grid(raw, settings, models, here, where)
    label = _label(raw, len(models or (None,)) * len(combos), here, where)
    axes = _axes(raw, here, where, inherit=top)
    protocol = _protocol(raw, here, where, top.protocol)
    if protocol.train_per_class != (None,) and axes.train_sizes != (None,):
        raise where.error(
            (*here, "train_per_class"), "give train_sizes or train_per_class, not both"
        )
    if not axes.datasets:
        raise where.error(here, "no datasets: give datasets = [...] at the top or in this [[run]]")

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
    models: list[str] | None,
    here: KeyPath,
    where: TomlLines,
) -> list[dict[str, Any]]:
    """Every combination of the ``grid`` settings (one empty combination without a grid)."""
    grid = raw.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise where.error((*here, "grid"), "'grid' must be a table of KEY = [VALUE, ...] lists")
    for key in grid:
        if key in settings or (key == "model" and models is not None):
            raise where.error((*here, "grid"), f"{key!r} is given both in 'grid' and elsewhere")
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
