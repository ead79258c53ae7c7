"""`bvc run PIPELINE --dataset NAME ...`: one run, stored, summarised or printed as JSON."""

from __future__ import annotations

import json
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
    split_options,
)
from bovw_vs_convnet.config import check_seed, parse_set_options
from bovw_vs_convnet.errors import ConfigError

if TYPE_CHECKING:
    from bovw_vs_convnet.harness.record import RunRecord


SET_HELP = (
    "Override one setting of the pipeline's config (repeatable). BoVW presets "
    "(--set preset=NAME): {presets} (docs/recipes.md)."
)


class SetOption(click.Option):
    """``--set``, whose help lists the presets of :attr:`BovwConfig.PRESETS` (every name of
    the table, a new one included), read when the help is shown: ``bvc`` itself starts
    without importing the BoVW stages.
    """

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        """The option's help line, :data:`SET_HELP` with the presets' names filled in."""
        from bovw_vs_convnet.bovw.config import BovwConfig

        self.help = SET_HELP.format(presets=", ".join(BovwConfig.PRESETS))
        return super().get_help_record(ctx)


def summary(record: RunRecord) -> str:
    """A few lines for a person: what ran, on which split, its errors and times."""
    ips = record.get("infer_images_per_s")
    index = (record.get("split") or {}).get("split_index")
    lines = [
        f"run {record['run_id']}: {record['pipeline']} {record['model']} on {record['dataset']} "
        f"(split {record['split_fingerprint'][:12]}, {record['n_train']} train / "
        f"{record['n_val']} val / {record['n_test']} test, seed {record['seed']}"
        + (f", split {index}" if index is not None else "")
        + ")",
        f"  top-1 error {percent(record['top1_err'])}   top-{record.get('top5_k', 5)} error "
        f"{percent(record['top5_err'])}",
        f"  train {record['train_seconds']:.2f} s   inference {record['infer_seconds']:.3f} s"
        + (f" ({ips:,.0f} images/s)" if ips else "")
        + f"   device {record['device']}"
        + (f"   {record['n_params']:,} parameters" if record.get("n_params") is not None else ""),
        f"  stored in {record['run_dir']}",
    ]
    return "\n".join(lines)


def not_learned_warning(record: RunRecord) -> str:
    """The one line ``bvc run`` prints (stderr) for a run whose record says ``learned: false``."""
    test = (record.get("extra") or {}).get("chance_test") or {}
    name = record.get("model") or record.get("pipeline")
    detail = ""
    if test:
        detail = (
            f": validation error {100 * test['error']:.2f} % is not significantly below chance "
            f"({100 * test['chance_err']:.2f} %, binomial p = {test['p_value']:.2g}"
        )
        if int(test.get("looks", 1)) > 1:
            detail += f", {test['p_adjusted']:.2g} after {test['looks']} looks (Bonferroni)"
        detail += ")"
    return (
        f"warning: {name} did not learn{detail}; the run is stored, marked and never ranked "
        "(docs/statistics.md)"
    )


def checked_source(pipeline: str, source: str, overrides: dict[str, Any], runs_dir: Path) -> str:
    """``--from``'s run for ``--set source``: refused for another pipeline, or a run id that
    ``runs_dir`` does not hold (a folder or MODEL@DATASET is checked when the run starts).
    """
    if pipeline != "convnet-features":
        raise ConfigError(f"--from reads a stored ConvNet for convnet-features, not {pipeline}")
    if "source" in overrides:
        raise ConfigError("--from and --set source=... both given")
    if "/" not in source and "@" not in source:
        from bovw_vs_convnet.harness.store import ResultStore

        ResultStore(runs_dir).get_run(source)  # DataError: no such run
    return source


@click.command("run")
@click.argument("pipeline")
@click.option("--dataset", required=True, help="Manifest name or path of an ImageFolder tree.")
@size_and_seed_options()
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.1,
    show_default=True,
    help="Fraction of the training images held out for validation.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Test fraction held out when the dataset has no official test set.",
)
@protocol_options()
@click.option("--set", "settings", cls=SetOption, multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--model", default=None, help="Shorthand for --set model=M (ConvNets).")
@click.option(
    "--from",
    "source_run",
    default=None,
    metavar="RUN_ID",
    help="convnet-features: the stored ConvNet run whose features are read (its id in "
    "--runs-dir, its folder, or MODEL@DATASET); shorthand for --set source=...",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Shorthand for --set epochs=E."
)
@compute_options
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint."
)
@progress_options
@run_folder_options
def run(
    pipeline: str,
    dataset: str,
    train_size: int | None,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    train_per_class: int | None,
    test_per_class: int | None,
    short_classes: str | None,
    splits: int | None,
    settings: tuple[str, ...],
    model: str | None,
    source_run: str | None,
    epochs: int | None,
    device: str,
    n_jobs: int,
    resume: bool,
    progress: str,
    no_progress: bool,
    as_json: bool,
    runs_dir: Path,
    data_dir: Path | None,
) -> None:
    """Fit PIPELINE (baseline, bovw, hog, convnet, convnet-features, dbn), score the test
    set, store the run.

    convnet-features reads a stored ConvNet run (--from RUN_ID) on another dataset.

    With --splits K: K runs, one per seeded resampling of the split, then their table
    (mean ± 95 % interval over the splits); with --json, one record a line.
    """
    from bovw_vs_convnet.harness.run import run_pipeline

    check_seed(seed, "--seed")
    overrides: dict[str, Any] = parse_set_options(settings)
    for key, value in (("model", model), ("epochs", epochs)):
        if value is not None:
            if key in overrides:
                raise ConfigError(f"--{key} and --set {key}=... both given")
            overrides[key] = value
    if source_run is not None:
        overrides["source"] = checked_source(pipeline, source_run, overrides, runs_dir)
    protocol = split_options(train_per_class, test_per_class, short_classes)
    records: list[RunRecord] = []
    for index in range(splits or 1):
        record = run_pipeline(
            pipeline,
            dataset,
            overrides=overrides,
            seed=seed,
            train_size=train_size,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            runs_dir=runs_dir,
            data_dir=data_dir,
            device=device,
            n_jobs=n_jobs,
            resume=resume,
            progress=progress_mode(progress, no_progress),
            split_options={**protocol, **({"split_index": index} if index else {})},
        )
        if record.get("status") == "ok" and record.get("top1_err") is None:
            continue  # a torchrun rank other than 0: rank 0 scored, stored and reports the run
        records.append(record)
        if as_json:
            click.echo(json.dumps(record, allow_nan=False))
        else:
            click.echo(summary(record))
        if record.get("learned") is False:
            click.echo(not_learned_warning(record), err=True)
    if len(records) > 1 and not as_json:
        from bovw_vs_convnet.harness.leaderboard import build_tables
        from bovw_vs_convnet.harness.leaderboard_formats import render

        click.echo("")
        click.echo(render(build_tables(records), "md", ci=True).rstrip("\n"))
