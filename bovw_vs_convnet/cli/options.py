"""Options and output formatting shared by several commands, defined once."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from bovw_vs_convnet.data.split import SHORT_CLASSES
from bovw_vs_convnet.harness import formatting
from bovw_vs_convnet.harness.leaderboard_formats import FORMATS, STYLES
from bovw_vs_convnet.progress import PROGRESS_MODES, ProgressMode

F = TypeVar("F", bound=Callable[..., Any])


class SentenceHelpGroup(click.Group):
    """A click group whose command list shows each command's whole first sentence.

    click cuts a short help to what fits beside the names, mid-sentence with
    ``...``; here the list wraps the sentence instead, so ``bvc --help`` reads whole.
    """

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def together(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``decorators`` as if stacked in this order (and so listed in help)."""

    def decorate(command: F) -> F:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return decorate


def choice_option(
    flag: str, choices: Sequence[str], default: str, help: str, *, dest: str | None = None
) -> Callable[[F], F]:
    """``flag`` taking one of ``choices``, its default shown in ``--help``."""
    names = (flag, dest) if dest else (flag,)
    return click.option(
        *names, type=click.Choice(choices), default=default, show_default=True, help=help
    )


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


def count_option(flag: str, default: int, help: str, *, low: int = 1) -> Callable[[F], F]:
    """``flag`` taking a whole number of at least ``low``, its default shown in ``--help``."""
    return click.option(
        flag, type=click.IntRange(min=low), default=default, show_default=True, help=help
    )


def progress_options(command: F) -> F:
    """``--progress auto|bar|lines|none``; ``--no-progress`` is ``--progress none``."""
    command = click.option("--no-progress", is_flag=True, help="The same as --progress none.")(
        command
    )
    return choice_option(
        "--progress",
        PROGRESS_MODES,
        "auto",
        "auto: a bar on a terminal, else one line per epoch or stage (logs, CI, | tee).",
    )(command)


def progress_mode(progress: str, no_progress: bool) -> ProgressMode:
    """The mode the two progress options ask for."""
    return "none" if no_progress else cast(ProgressMode, progress)


format_option = choice_option("--format", FORMATS, "md", "Format of the leaderboard.", dest="fmt")

style_option = choice_option(
    "--style",
    STYLES,
    "default",
    "default: timm-like columns; ilsvrc: Rank, Name, top-5 err (%), Description.",
)

ci_option = click.option(
    "--ci",
    is_flag=True,
    help="Show each error's 95 % interval in md, html and latex tables (csv and json: always).",
)

# the leaderboard's format, style and intervals (bvc leaderboard, bvc bench)
table_options = together(format_option, style_option, ci_option)
# where ConvNets run and how many CPU workers the others use (bvc run, bvc bench)
compute_options = together(device_option, jobs_option)
# the JSON switch, the runs folder and the data folder of a command that runs pipelines
run_folder_options = together(json_option, runs_dir_option, data_dir_option)


def size_and_seed_options(*, several: bool = False) -> Callable[[F], F]:
    """``--train-size N`` and ``--seed S``, one of each for ``bvc run``.

    ``several``: both repeatable, each replacing what a suite's entries say
    (``bvc bench``), passed on as ``train_sizes`` and ``seeds``.
    """
    if several:
        size_help = "Run every entry at this training-set size instead (repeatable)."
        seed_help = (
            "Run every entry with this seed instead (0 to 2**32 - 1; repeatable; several give "
            "mean ± std)."
        )
    else:
        size_help = (
            "Class-balanced training subset of N images (nested across sizes). [default: all]"
        )
        seed_help = "Seeds the split and the pipeline (0 to 2**32 - 1)."
    return together(
        click.option(
            "--train-size",
            "train_sizes" if several else "train_size",
            type=click.IntRange(min=1),
            multiple=several,
            default=None,
            help=size_help,
        ),
        click.option(
            "--seed",
            "seeds" if several else "seed",
            type=int,
            multiple=several,
            default=None if several else 0,
            show_default=not several,
            help=seed_help,
        ),
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
