"""Options and output formatting shared by several commands, defined once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from bovw_vs_convnet.data.split import SHORT_CLASSES
from bovw_vs_convnet.harness import formatting
from bovw_vs_convnet.harness.leaderboard_formats import FORMATS, STYLES
from bovw_vs_convnet.progress import PROGRESS_MODES, ProgressMode

F = TypeVar("F", bound=Callable[..., Any])


def percent(value: float | None) -> str:
    """An error fraction as ``"8.46 %"``; ``"n/a"`` when there is none (a message's form)."""
    return formatting.percent(value, unit=" %", missing="n/a")


runs_dir_option = click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    envvar="BVC_RUNS_DIR",
    show_default=True,
    show_envvar=True,
    help="Folder holding results.sqlite and one folder per run.",
)

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="BVC_DATA_DIR",
    show_envvar=True,
    help="Where datasets are looked for and downloaded to.",
)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON on stdout."
)


class DeviceType(click.ParamType):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (checked here; resolved by the ConvNet side)."""

    name = "auto|cpu|cuda|cuda:N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower()
        if re.fullmatch(r"auto|cpu|cuda(:\d+)?", text) is None:
            self.fail(f"{value!r} is not auto, cpu, cuda or cuda:N", param, ctx)
        return text


device_option = click.option(
    "--device",
    type=DeviceType(),
    default="auto",
    show_default=True,
    help="Where ConvNets run (auto: GPU 0 if this PyTorch build can drive it); others ignore it.",
)

jobs_option = click.option(
    "--jobs", "n_jobs", type=int, default=-1, show_default=True, help="CPU workers (-1: all cores)."
)


def progress_options(command: F) -> F:
    """``--progress auto|bar|lines|none``; ``--no-progress`` is ``--progress none``."""
    command = click.option("--no-progress", is_flag=True, help="The same as --progress none.")(
        command
    )
    return click.option(
        "--progress",
        type=click.Choice(PROGRESS_MODES),
        default="auto",
        show_default=True,
        help="auto: a bar on a terminal, else one line per epoch or stage (logs, CI, | tee).",
    )(command)


def progress_mode(progress: str, no_progress: bool) -> ProgressMode:
    """The mode the two progress options ask for."""
    return "none" if no_progress else cast(ProgressMode, progress)


format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="md",
    show_default=True,
    help="Format of the leaderboard.",
)

style_option = click.option(
    "--style",
    type=click.Choice(STYLES),
    default="default",
    show_default=True,
    help="default: timm-like columns; ilsvrc: Rank, Name, Error rate (top-5), Description.",
)

ci_option = click.option(
    "--ci",
    is_flag=True,
    help="Show each error's 95 % interval in md, html and latex tables (csv and json: always).",
)


def protocol_options(*, several_sizes: bool = False, splits: bool = True) -> Callable[[F], F]:
    """The per-class protocol and resampled splits, for ``bvc run``, ``bench`` and ``data split``.

    ``--train-per-class N``, ``--test-per-class M``, ``--short-classes refuse|take-rest``
    and ``--splits K`` (see :func:`bovw_vs_convnet.data.split.make_split`);
    ``several_sizes``: ``--train-per-class`` repeatable (bench: one row per N);
    ``splits``: False leaves ``--splits`` out (``bvc data split`` shows one split).
    """

    def decorate(command: F) -> F:
        if splits:
            command = click.option(
                "--splits",
                type=click.IntRange(min=1),
                default=None,
                help="Run K seeded resamplings of the train/test partition (split 0 .. K-1, "
                "each its own fingerprint); tables show mean ± interval over them. [default: 1]",
            )(command)
        command = click.option(
            "--short-classes",
            type=click.Choice(SHORT_CLASSES),
            default=None,
            help="A class with fewer than N + M images: refuse (exit 2, naming it) or "
            "take-rest (its test takes what is left after the N). [default: refuse]",
        )(command)
        command = click.option(
            "--test-per-class",
            type=click.IntRange(min=1),
            default=None,
            help="At most M test images per class (the rest unused). [default: all the rest]",
        )(command)
        return click.option(
            "--train-per-class",
            "train_per_class",
            type=click.IntRange(min=1),
            multiple=several_sizes,
            default=None,
            help="N training images per class (validation carved from them; nested across N)"
            + (" (repeatable)" if several_sizes else "")
            + ". [default: the fraction protocol]",
        )(command)

    return decorate


def split_options(
    train_per_class: int | None, test_per_class: int | None, short_classes: str | None
) -> dict[str, Any]:
    """The split keywords the three protocol flags ask for (none given: an empty dict)."""
    out: dict[str, Any] = {}
    if train_per_class is not None:
        out["train_per_class"] = train_per_class
    if test_per_class is not None:
        out["test_per_class"] = test_per_class
    if short_classes is not None:
        if not out:
            raise click.UsageError("--short-classes goes with --train-per-class/--test-per-class")
        out["short_classes"] = short_classes
    return out
