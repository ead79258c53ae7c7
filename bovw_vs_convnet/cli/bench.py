"""`bvc bench SUITE|FILE`: run a suite, skipping what is stored, then print its leaderboard."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bovw_vs_convnet.cli.options import (
    compute_options,
    percent,
    progress_mode,
    progress_options,
    protocol_options,
    run_folder_options,
    size_and_seed_options,
    table_options,
)

if TYPE_CHECKING:
    from bovw_vs_convnet.harness.record import RunRecord
    from bovw_vs_convnet.harness.suite import RunSpec, Suite
    from bovw_vs_convnet.harness.suite_runner import RunOutcome

Say = Callable[[str], None]


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


def _check_flags(seeds: tuple[int, ...], workers: int | None, scheduler: str | None) -> None:
    """Refuse a seed outside [0, 2**32) and both ways to a cluster at once."""
    from bovw_vs_convnet.config import check_seed

    for seed in seeds:
        check_seed(seed, "--seed")
    if workers and scheduler:
        raise click.UsageError("give --workers (a local cluster) or --scheduler, not both")


def _load_suite(suite: str | None, *, on_cluster: bool) -> Suite:
    """The suite named or given as a file; on a cluster, the hint before any data is loaded."""
    from bovw_vs_convnet.harness.suite import load_suite

    if suite is None:
        raise click.UsageError(
            "give a suite name or file (bvc bench --list shows the built-in ones)"
        )
    parsed = load_suite(suite)
    if on_cluster:
        from bovw_vs_convnet.harness.cluster import require_distributed

        require_distributed()
    return parsed


def _list_suites(as_json: bool) -> None:
    """Print the built-in suites with their descriptions (``--list``)."""
    from bovw_vs_convnet.harness.suite import builtin_suites

    suites = builtin_suites()
    if as_json:
        click.echo(json.dumps(suites))
        return
    width = max(len(n) for n in suites)
    for name, description in suites.items():
        click.echo(f"{name:<{width}}  {description}")


def _protocol(
    train_per_class: tuple[int, ...],
    test_per_class: int | None,
    short_classes: str | None,
    splits: int | None,
) -> dict[str, Any]:
    """The protocol flags as :func:`~bovw_vs_convnet.harness.suite_runner.run_suite` takes them."""
    if short_classes and not (train_per_class or test_per_class):
        raise click.UsageError("--short-classes goes with --train-per-class/--test-per-class")
    return {
        "train_per_class": train_per_class or None,
        "test_per_class": test_per_class,
        "short_classes": short_classes,
        "splits": splits,
    }


def _processes(value: str) -> int | str:
    """``--processes``: ``auto`` or a count ≥ 1 (a bad one: a usage error, exit 2)."""
    text = value.strip().lower()
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise click.BadParameter(f"expected auto or a whole number >= 1, got {value!r}")
    return int(text)


def _outcome_text(outcome: RunOutcome, *, on_cluster: bool) -> str:
    """What became of one run, in a few words; on a cluster the line is shorter."""
    record: RunRecord = outcome.record or {}
    top1 = percent(record.get("top1_err"))
    if outcome.status == "ran":
        if on_cluster:
            return f"top-1 {top1}"
        top5 = percent(record.get("top5_err"))
        return f"done in {outcome.seconds:.1f} s: top-1 {top1}, top-5 {top5}"
    if outcome.status == "skipped":
        stored = f"already stored ({record.get('run_id')})"
        return stored if on_cluster else f"{stored}: top-1 {top1}"
    if outcome.status == "too-large":
        return f"not run: {outcome.error}"
    return f"FAILED: {outcome.error}"


class _SuiteProgress:
    """The ``on_start`` and ``on_done`` lines of a suite run, printed through ``say``.

    Locally an indented line under each run's start line when it ends; on a cluster,
    where runs end in any order, one whole line per run as it finishes, naming its worker.
    """

    def __init__(self, say: Say, *, on_cluster: bool) -> None:
        self.say = say
        self.on_cluster = on_cluster

    def on_start(self, index: int, total: int, spec: RunSpec) -> None:
        """``[i/n] what ...`` as a run starts."""
        self.say(f"[{index + 1}/{total}] {spec.describe()} ...")

    def on_done(self, index: int, total: int, outcome: RunOutcome) -> None:
        """What became of a run, as it ends."""
        text = _outcome_text(outcome, on_cluster=self.on_cluster)
        if not self.on_cluster:
            self.say(f"    {text}")
            return
        where = f" on {outcome.worker}" if outcome.worker else ""
        self.say(
            f"[{index + 1}/{total}] {outcome.spec.describe()}: {text}, "
            f"{outcome.seconds:.1f} s{where}"
        )


def _run_suite(parsed: Suite, progress_lines: _SuiteProgress, **options: Any) -> list[RunOutcome]:
    """:func:`~bovw_vs_convnet.harness.suite_runner.run_suite`; Ctrl-C exits 130, runs kept."""
    from bovw_vs_convnet.harness.suite_runner import run_suite

    try:
        return run_suite(
            parsed, on_start=progress_lines.on_start, on_done=progress_lines.on_done, **options
        )
    except KeyboardInterrupt:
        click.echo(
            "interrupted: finished runs are stored; run the same command again to continue",
            err=True,
        )
        raise SystemExit(130) from None


def _print_results(
    parsed: Suite,
    outcomes: list[RunOutcome],
    wall: float,
    *,
    fmt: str,
    style: str,
    ci: bool,
    as_json: bool,
) -> None:
    """The suite's leaderboard, ablation and crossover (or all as JSON); exit 1 if a run failed."""
    from bovw_vs_convnet.harness.analysis import ablation_table, crossover_statements
    from bovw_vs_convnet.harness.leaderboard import build_tables
    from bovw_vs_convnet.harness.leaderboard_formats import render

    records = [o.record for o in outcomes if o.record and o.status in ("ran", "skipped")]
    tables = build_tables(records)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ran", "skipped", "failed")}
    if as_json:
        summary = {
            "suite": parsed.name,
            "wall_seconds": round(wall, 3),
            "runs": [_outcome_json(o) for o in outcomes],
            "leaderboard": json.loads(render(tables, "json")),
            "crossover": crossover_statements(records),
        }
        click.echo(json.dumps(summary, allow_nan=False))
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


@click.command("bench")
@click.argument("suite", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the built-in suites and exit.")
@click.option(
    "--dataset",
    default=None,
    help="Run every entry on this dataset instead (a manifest name or an ImageFolder path).",
)
@size_and_seed_options(several=True)
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
    "--processes",
    default="1",
    metavar="N|auto",
    help="Run N of the suite's runs side by side in local processes (auto: one per CPU this "
    "process may use); each run keeps the thread count it has alone, so the same numbers.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run the suite on an existing Dask scheduler (tcp://HOST:8786); the runs folder "
    "must be on storage every worker shares.",
)
@compute_options
@progress_options
@table_options
@run_folder_options
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
    processes: str,
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
    _check_flags(seeds, workers, scheduler)
    if list_only:
        _list_suites(as_json)
        return
    side = _processes(processes)
    parsed = _load_suite(suite, on_cluster=bool(workers or scheduler))
    protocol = _protocol(train_per_class, test_per_class, short_classes, splits)
    n_specs = len(parsed.specs(dataset, train_sizes=train_sizes, seeds=seeds, **protocol))
    say: Say = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    say(f"suite {parsed.name}: {n_specs} runs, results in {runs_dir}")
    t0 = time.perf_counter()
    outcomes = _run_suite(
        parsed,
        _SuiteProgress(say, on_cluster=bool(workers or scheduler or side != 1)),
        runs_dir=runs_dir,
        dataset=dataset,
        train_sizes=train_sizes or None,
        seeds=seeds or None,
        data_dir=data_dir,
        device=device,
        force=force,
        n_jobs=n_jobs,
        progress="none" if as_json else progress_mode(progress, no_progress),
        workers=workers,
        scheduler=scheduler,
        processes=side,
        on_info=say,
        protocol=protocol,
    )
    wall = time.perf_counter() - t0
    _print_results(parsed, outcomes, wall, fmt=fmt, style=style, ci=ci, as_json=as_json)
