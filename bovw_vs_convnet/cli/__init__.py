"""The `bvc` command line: a click group with one module per command.

This layer only parses, calls the library and prints. Every error derived from
:class:`bovw_vs_convnet.errors.BvcError` becomes one line on stderr and exit code 2,
also when it made a run fail (a :class:`~bovw_vs_convnet.errors.RunFailed` whose
cause it is); so does a write that a full disk, a read-only folder or a missing
permission refused (an ``OSError`` of :data:`~bovw_vs_convnet.errors.WRITE_ERRNOS`,
named with its folder). Anything else is an unexpected failure (a traceback, exit
code 1).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from bovw_vs_convnet import __version__
from bovw_vs_convnet.cli.options import SentenceHelpGroup
from bovw_vs_convnet.errors import BvcError, RunFailed, storage_error
from bovw_vs_convnet.printable import printable
from bovw_vs_convnet.threads import passive_waiting


class BvcGroup(SentenceHelpGroup):
    """A click group that turns the toolkit's input errors into exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BvcError as exc:
            click.echo(f"error: {printable(exc)}", err=True)
            ctx.exit(2)
        except RunFailed as exc:
            # the failed run is stored; whether it is the user's fault is its cause's to say
            cause = exc.__cause__
            user = cause if isinstance(cause, BvcError) else storage_error(cause)
            if user is None:
                raise
            click.echo(f"error: {printable(user)}", err=True)
            ctx.exit(2)
        except OSError as exc:
            full = storage_error(exc)  # a full disk, a read-only folder: not a bug
            if full is None:
                raise
            click.echo(f"error: {printable(full)}", err=True)
            ctx.exit(2)


@click.group(cls=BvcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bvc")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Bag-of-visual-words + SVM against LeNet-5 and AlexNet, on the same split."""
    # cuBLAS reads this once, when CUDA starts: set before any run, so that a
    # deterministic run after an earlier GPU run in this process is deterministic too
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # OpenMP's waiting threads sleep instead of spinning, read when torch or scikit-learn
    # loads its OpenMP runtime, so before any run (bovw_vs_convnet/threads.py)
    passive_waiting()
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    from bovw_vs_convnet.cli import (
        bench,
        compare,
        data,
        export,
        leaderboard,
        models,
        predict,
        report,
        results,
        run,
    )

    main.add_command(data.data)
    main.add_command(run.run)
    main.add_command(models.models)
    main.add_command(bench.bench)
    main.add_command(leaderboard.leaderboard)
    main.add_command(report.report)
    main.add_command(compare.compare)
    main.add_command(predict.predict)
    main.add_command(export.export)
    main.add_command(results.results)


_register()
