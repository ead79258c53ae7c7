"""Options and output formatting shared by several commands, defined once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from bovw_vs_convnet.harness import formatting
from bovw_vs_convnet.harness.leaderboard import FORMATS, STYLES
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
