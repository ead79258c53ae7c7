"""`bvc results`: result tables as data (``results/*.csv``) and the docs rendered from them."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from bovw_vs_convnet.cli.options import (
    SentenceHelpGroup,
    runs_dir_option,
    size_and_seed_options,
)


def _default_pages() -> list[Path]:
    """README.md and every docs/*.md page of the current folder (a clone's root)."""
    readme = [Path("README.md")] if Path("README.md").is_file() else []
    return readme + sorted(Path("docs").glob("*.md"))


@click.group("results", cls=SentenceHelpGroup)
def results() -> None:
    """Write results/*.csv from a runs folder; render the docs' tables from them."""


def _bench_command(
    suite: str, dataset: str | None, train_sizes: tuple[int, ...], seeds: tuple[int, ...]
) -> str:
    words = ["bvc", "bench", suite]
    words += [w for d in ([dataset] if dataset else []) for w in ("--dataset", d)]
    words += [w for n in train_sizes for w in ("--train-size", str(n))]
    words += [w for s in seeds for w in ("--seed", str(s))]
    return shlex.join(words)


@results.command("export")
@click.argument("suite")
@click.option("--dataset", default=None, help="The dataset `bvc bench --dataset` was given.")
@size_and_seed_options(several=True)
@click.option(
    "--name",
    default=None,
    help="First part of the file name, NAME-DATASET.csv. [default: the suite's name]",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder for the CSV files.",
)
@runs_dir_option
def export(
    suite: str,
    dataset: str | None,
    train_sizes: tuple[int, ...],
    seeds: tuple[int, ...],
    name: str | None,
    output: Path,
    runs_dir: Path,
) -> None:
    """Write SUITE's stored runs as results/SUITE-DATASET.csv, one file per dataset.

    Give the same --dataset, --train-size and --seed options as to `bvc bench
    SUITE`; each row records that command, the toolkit version, the device and the
    date.
    """
    from bovw_vs_convnet.harness.results_export import export_suite
    from bovw_vs_convnet.harness.suite import load_suite

    parsed = load_suite(suite)
    command = _bench_command(parsed.name, dataset, train_sizes, seeds)
    written = export_suite(
        runs_dir,
        parsed,
        output,
        command=command,
        name=name,
        dataset=dataset,
        train_sizes=train_sizes or None,
        seeds=seeds or None,
    )
    for path in written:
        click.echo(f"wrote {path}")


@results.command("render")
@click.argument("pages", nargs=-1, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--results",
    "results_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder of the CSV files.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Change nothing; exit 1 if a table or figure differs from its CSV.",
)
def render(pages: tuple[Path, ...], results_dir: Path, check: bool) -> None:
    """Render the marked tables and figures of PAGES (default: README.md, docs/*.md) from the CSVs.

    A table sits between `<!-- results:NAME:begin -->` and `<!-- results:NAME:end -->`
    and is rendered from RESULTS/NAME.csv. A figure sits between `<!--
    results-figure:NAME:begin -->` and `<!-- results-figure:NAME:end -->`: error
    against training-set size (top-1 and top-5) drawn from RESULTS/NAME.csv into
    figures/NAME.svg beside the page; --check finds one drawn from another CSV.
    """
    from bovw_vs_convnet.harness.results_figures import marked_figures
    from bovw_vs_convnet.harness.results_tables import check_pages, marked_names

    chosen = list(pages) or _default_pages()
    if not chosen:
        raise click.UsageError("no pages given, and no README.md or docs/*.md here")
    drift = check_pages(chosen, results_dir, write=not check)
    for line in drift:
        click.echo(f"{'differs from its CSV' if check else 'rendered'}: {line}")
    if check and drift:
        click.echo("run `bvc results render` to render them", err=True)
        raise SystemExit(1)
    if not drift:
        texts = [p.read_text(encoding="utf-8") for p in chosen]
        n = sum(len(marked_names(t)) for t in texts)
        m = sum(len(marked_figures(t)) for t in texts)
        click.echo(
            f"{len(chosen)} page(s), {n} marked table(s), {m} figure(s): "
            f"each matches {results_dir}/"
        )
