"""`bvc report --output DIR`: one self-contained HTML page of the stored runs."""

from __future__ import annotations

from pathlib import Path

import click

from bovw_vs_convnet.cli.options import runs_dir_option


@click.command("report")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for index.html and figures/ (PNG and SVG of every figure). "
    "[default: RUNS_DIR/report]",
)
@click.option("--dataset", default=None, help="Only the runs on this dataset. [default: all]")
@click.option(
    "--title",
    default="BoVW against ConvNets: benchmark report",
    show_default=True,
    help="The page's title.",
)
@runs_dir_option
def report(output: Path | None, dataset: str | None, title: str, runs_dir: Path) -> None:
    """Write a self-contained HTML report (tables, figures, provenance) of the stored runs."""
    from bovw_vs_convnet.harness.report import build_report

    page = build_report(runs_dir, output or runs_dir / "report", dataset=dataset, title=title)
    click.echo(f"report written to {page}")
