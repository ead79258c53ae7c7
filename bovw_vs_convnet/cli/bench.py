"""`bvc bench SUITE|FILE`: run a suite, skipping what is stored, then print its leaderboard."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bovw_vs_convnet.cli.options import (
    ci_option,
    data_dir_option,
    device_option,
    format_option,
    jobs_option,
    json_option,
    percent,
    progress_mode,
    progress_options,
    protocol_options,
    runs_dir_option,
    style_option,
)

if TYPE_CHECKING:
    from bovw_vs_convnet.harness.record import RunRecord
    from bovw_vs_convnet.harness.suite import RunSpec
    from bovw_vs_convnet.harness.suite_runner import RunOutcome


def _outcome_json(outcome: RunOutcome) -> dict[str, Any]:
    spec = outcome.spec
    record: RunRecord = outcome.record or {}
    return {
        "label": spec.label,
        "pipeline": spec.pipeline,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "train_size": spec.train_size,
        "train_per_class": spec.train_per_class,
        "test_per_class": spec.test_per_class,
        "split_index": spec.split_index,
        "settings": spec.settings,
        "status": outcome.status,
        "run_id": record.get("run_id"),
        "top1_err": record.get("top1_err"),
        "top5_err": record.get("top5_err"),
        "error": outcome.error,
        "seconds": round(outcome.seconds, 3),
        "worker": outcome.worker,
    }


@click.command("bench")
@click.argument("suite", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the built-in suites and exit.")
@click.option(
    "--dataset",
    default=None,
    help="Run every entry on this dataset instead (a manifest name or an ImageFolder path).",
)
@click.option(
    "--train-size",
    "train_sizes",
    type=click.IntRange(min=1),
    multiple=True,
    help="Run every entry at this training-set size instead (repeatable).",
)
@click.option(
    "--seed",
    "seeds",
    type=int,
    multiple=True,
    help="Run every entry with this seed instead (0 to 2**32 - 1; repeatable; several give "
    "mean ± std).",
)
@protocol_options(several_sizes=True)
@click.option("--force", is_flag=True, help="Rerun runs that are already stored.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Run the suite on a local Dask cluster of N worker processes (cores // N threads "
    'each; needs pip install -e ".[cluster]").',
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run the suite on an existing Dask scheduler (tcp://HOST:8786); the runs folder "
    "must be on storage every worker shares.",
)
@device_option
@jobs_option
@progress_options
@format_option
@style_option
@ci_option
@json_option
@runs_dir_option
@data_dir_option
def bench(
    suite: str | None,
    list_only: bool,
    dataset: str | None,
    train_sizes: tuple[int, ...],
    seeds: tuple[int, ...],
    train_per_class: tuple[int, ...],
    test_per_class: int | None,
    short_classes: str | None,
    splits: int | None,
    force: bool,
    workers: int | None,
    scheduler: str | None,
    device: str,
    n_jobs: int,
    progress: str,
    no_progress: bool,
    fmt: str,
    style: str,
    ci: bool,
    as_json: bool,
    runs_dir: Path,
    data_dir: Path | None,
) -> None:
    """Run SUITE (a built-in name, see --list, or a suite TOML file) and print its leaderboard.

    Runs already stored with the same config and split are skipped, so an
    interrupted suite continues where it stopped; a failed run is stored with its
    error and the suite goes on (exit code 1 at the end).
    """
    from bovw_vs_convnet.config import check_seed
    from bovw_vs_convnet.harness.suite import builtin_suites, load_suite

    for seed in seeds:
        check_seed(seed, "--seed")
    if workers and scheduler:
        raise click.UsageError("give --workers (a local cluster) or --scheduler, not both")

    if list_only:
        suites = builtin_suites()
        if as_json:
            click.echo(json.dumps(suites))
        else:
            width = max(len(n) for n in suites)
            for name, description in suites.items():
                click.echo(f"{name:<{width}}  {description}")
        return
    if suite is None:
        raise click.UsageError(
            "give a suite name or file (bvc bench --list shows the built-in ones)"
        )

    from bovw_vs_convnet.harness.analysis import ablation_table, crossover_statements
    from bovw_vs_convnet.harness.leaderboard import build_tables
    from bovw_vs_convnet.harness.leaderboard_formats import render
    from bovw_vs_convnet.harness.suite_runner import run_suite

    parsed = load_suite(suite)
    if workers or scheduler:  # the hint before any data is loaded
        from bovw_vs_convnet.harness.cluster import require_distributed

        require_distributed()
    if short_classes and not (train_per_class or test_per_class):
        raise click.UsageError("--short-classes goes with --train-per-class/--test-per-class")
    protocol: dict[str, Any] = {
        "train_per_class": train_per_class or None,
        "test_per_class": test_per_class,
        "short_classes": short_classes,
        "splits": splits,
    }
    n_specs = len(parsed.specs(dataset, train_sizes=train_sizes, seeds=seeds, **protocol))
    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    say(f"suite {parsed.name}: {n_specs} runs, results in {runs_dir}")

    def on_start(index: int, total: int, spec: RunSpec) -> None:
        say(f"[{index + 1}/{total}] {spec.describe()} ...")

    def on_done(index: int, total: int, outcome: RunOutcome) -> None:
        record: RunRecord = outcome.record or {}
        if workers or scheduler:  # in finishing order: one line per run, with its worker
            if outcome.status == "ran":
                text = f"top-1 {percent(record.get('top1_err'))}"
            elif outcome.status == "skipped":
                text = f"already stored ({record.get('run_id')})"
            elif outcome.status == "too-large":
                text = f"not run: {outcome.error}"
            else:
                text = f"FAILED: {outcome.error}"
            where = f" on {outcome.worker}" if outcome.worker else ""
            say(f"[{index + 1}/{total}] {outcome.spec.describe()}: {text}, "
                f"{outcome.seconds:.1f} s{where}")  # fmt: skip
            return
        if outcome.status == "skipped":
            top1 = percent(record.get("top1_err"))
            text = f"already stored ({record.get('run_id')}): top-1 {top1}"
        elif outcome.status == "ran":
            text = (
                f"done in {outcome.seconds:.1f} s: top-1 {percent(record.get('top1_err'))}, "
                f"top-5 {percent(record.get('top5_err'))}"
            )
        elif outcome.status == "too-large":
            text = f"not run: {outcome.error}"
        else:
            text = f"FAILED: {outcome.error}"
        say(f"    {text}")

    t0 = time.perf_counter()
    try:
        outcomes = run_suite(
            parsed,
            runs_dir=runs_dir,
            dataset=dataset,
            train_sizes=train_sizes or None,
            seeds=seeds or None,
            data_dir=data_dir,
            device=device,
            force=force,
            n_jobs=n_jobs,
            progress="none" if as_json else progress_mode(progress, no_progress),
            on_start=on_start,
            on_done=on_done,
            workers=workers,
            scheduler=scheduler,
            on_info=say,
            protocol=protocol,
        )
    except KeyboardInterrupt:
        click.echo(
            "interrupted: finished runs are stored; run the same command again to continue",
            err=True,
        )
        raise SystemExit(130) from None
    wall = time.perf_counter() - t0

    records = [o.record for o in outcomes if o.record and o.status in ("ran", "skipped")]
    tables = build_tables(records)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ran", "skipped", "failed")}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "suite": parsed.name,
                    "wall_seconds": round(wall, 3),
                    "runs": [_outcome_json(o) for o in outcomes],
                    "leaderboard": json.loads(render(tables, "json")),
                    "crossover": crossover_statements(records),
                },
                allow_nan=False,
            )
        )
    else:
        click.echo(
            f"\nsuite {parsed.name}: {counts['ran']} ran, {counts['skipped']} already stored, "
            f"{counts['failed']} failed in {wall:.1f} s\n"
        )
        if tables:
            click.echo(render(tables, fmt, style=style, ci=ci).rstrip("\n"))
        ablation = ablation_table(records)
        if ablation:
            click.echo("\n" + ablation.rstrip("\n"))
        for statement in crossover_statements(records):
            click.echo("\n" + statement)
    if failed:
        click.echo(f"{len(failed)} run(s) failed; their errors are stored with them", err=True)
        raise SystemExit(1)
