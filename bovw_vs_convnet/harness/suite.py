"""Benchmark suites: a TOML file of datasets, pipelines, overrides, train sizes and seeds.

This module reads suite files (built-in by name, or a path) into a :class:`Suite`,
whose entries :mod:`~bovw_vs_convnet.harness.suite_checks` has checked. A suite
expands into a list of :class:`RunSpec` (one per dataset × entry × train size ×
seed), which :func:`bovw_vs_convnet.harness.suite_runner.run_suite` runs through
the harness, skipping what is stored and going on past a failed run.

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
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bovw_vs_convnet.errors import ConfigError, unknown_name
from bovw_vs_convnet.file_limits import MAX_TOML_BYTES
from bovw_vs_convnet.harness.suite_checks import MAX_RUNS, SuiteEntry, check_suite, entry_runs
from bovw_vs_convnet.toml_lines import TomlLines, decode_utf8, load_toml


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
        run listed twice) are kept once. More than :data:`MAX_RUNS` runs (counted before
        any is made) is a ConfigError.
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
        _check_run_count(self.name, entries, dataset)
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
                        entry.pipeline,
                        d,
                        seed,
                        size,
                        entry.overrides,
                        entry.label,
                        train_per_class=n,
                        test_per_class=p.test_per_class,
                        short_classes=p.short_classes,
                        split_index=index,
                    )
                    if spec not in seen:
                        seen.add(spec)
                        out.append(spec)
        return out


def _check_run_count(name: str, entries: Sequence[SuiteEntry], dataset: str | None) -> None:
    """Refuse more than :data:`MAX_RUNS` runs, counted before any run is made."""
    total = sum(
        entry_runs(dataclasses.replace(e, datasets=(dataset,)) if dataset else e) for e in entries
    )
    if total > MAX_RUNS:
        raise ConfigError(
            f"suite {name!r} expands into {total:,} runs with these options, "
            f"over the limit of {MAX_RUNS:,}"
        )


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
        raise ConfigError(
            unknown_name(
                "suite", str(name_or_path), builtin_suites(), hint="(or give a .toml path)"
            )
        )
    return parse_suite(text, source=source, name=name)


def _read_text(path: Path) -> str:
    """The file's text; a file that is not UTF-8 (or cannot be read) is one ConfigError."""
    try:
        size = path.stat().st_size
        if size > MAX_TOML_BYTES:  # before reading: a suite file is a few kB
            raise ConfigError(
                f"suite file {str(path)!r} is {size:,} bytes, over the limit of {MAX_TOML_BYTES:,}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"suite file {str(path)!r} cannot be read: {exc.strerror}") from None
    return decode_utf8(data, str(path), "a suite file", ConfigError)


def parse_suite(text: str, *, source: str = "<suite>", name: str = "suite") -> Suite:
    """Parse and validate suite TOML ``text``; errors read ``SOURCE:LINE: message``.

    The line is left out (``SOURCE: message``) where the file has no line that
    gave the value at fault, e.g. a missing ``[[run]]``
    (:func:`~bovw_vs_convnet.harness.suite_checks.check_suite` says what is checked).
    """
    doc = load_toml(text, source)
    suite_name, description, entries = check_suite(doc, TomlLines(text, source), name)
    return Suite(name=suite_name, description=description, source=source, entries=entries)
