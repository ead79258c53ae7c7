"""`bvc leaderboard`: stored runs as ranked tables (md, csv, html, latex, json)."""

from __future__ import annotations

from pathlib import Path

import click

from bovw_vs_convnet.cli.options import runs_dir_option, table_options


@click.command("leaderboard")
@click.option(
    "--dataset", default=None, help="Only runs on this dataset (a name or an ImageFolder path)."
)
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@table_options
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of stdout.",
)
@runs_dir_option
def leaderboard(
    dataset: str | None,
    pipeline: str | None,
    fmt: str,
    style: str,
    ci: bool,
    output: Path | None,
    runs_dir: Path,
) -> None:
    """Rank the stored runs; only runs on the same split fingerprints share a table."""
    from bovw_vs_convnet.harness.leaderboard import build_tables
    from bovw_vs_convnet.harness.leaderboard_formats import render
    from bovw_vs_convnet.harness.store import ResultStore

    if dataset is not None:
        from bovw_vs_convnet.data.datasets import IMAGEFOLDER_PREFIX, is_folder_reference

        if is_folder_reference(dataset) and not dataset.startswith(IMAGEFOLDER_PREFIX):
            dataset = f"{IMAGEFOLDER_PREFIX}{Path(dataset).resolve()}"  # as runs record it
    store = ResultStore(runs_dir)
    store.recover()
    runs = store.list_runs(dataset=dataset, pipeline=pipeline, status="ok")
    if not runs:
        click.echo(f"no finished runs in {runs_dir} match", err=True)
    text = render(build_tables(runs), fmt, style, ci=ci)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)
