"""Running a suite: every run spec through the harness, skipping what is stored.

Runs that are already stored with status ``ok`` under the same config key are
skipped, so an interrupted suite continues where it stopped; ``force`` reruns
everything. A run that raises is recorded as failed and the suite goes on; a
training size larger than a dataset's is reported as not run. A runs folder that
cannot be written (read-only, full) stops the suite at once: every later run
would fail the same way.

With ``workers`` or ``scheduler`` the runs go to a Dask cluster instead
(:mod:`bovw_vs_convnet.harness.cluster`); this process stays the only writer of the
store and the outcomes are the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bovw_vs_convnet.errors import RunFailed, StorageError, TrainSizeTooLarge, storage_error
from bovw_vs_convnet.harness.outcome import (
    RunOutcome,
    SuiteOptions,
    failed_outcome,
    spec_failure_record,
)
from bovw_vs_convnet.harness.run import run_pipeline, store_failure
from bovw_vs_convnet.harness.sinks import StoreSink
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.harness.suite import RunSpec, Suite
from bovw_vs_convnet.harness.suite_processes import run_suite_processes, side_by_side
from bovw_vs_convnet.progress import ProgressMode


def run_suite(
    suite: Suite,
    *,
    runs_dir: Path | str,
    dataset: str | None = None,
    train_sizes: Sequence[int | None] | None = None,
    seeds: Sequence[int] | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
    force: bool = False,
    n_jobs: int = -1,
    progress: ProgressMode | bool = True,
    on_start: Callable[[int, int, RunSpec], object] | None = None,
    on_done: Callable[[int, int, RunOutcome], object] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    on_info: Callable[[str], object] | None = None,
    protocol: Mapping[str, Any] | None = None,
    processes: int | str = 1,
) -> list[RunOutcome]:
    """Run every spec of ``suite`` through :func:`bovw_vs_convnet.harness.run.run_pipeline`.

    ``dataset``, ``train_sizes``, ``seeds`` and ``protocol`` (``train_per_class``,
    ``test_per_class``, ``short_classes``, ``splits``) replace what the suite's entries
    say (see :meth:`Suite.specs`).

    A spec already stored with status ``ok`` under the same config key (pipeline,
    config, dataset, split fingerprint, seed) is skipped unless ``force``; an
    interrupted run of a ConvNet resumes from its checkpoint. A run that raises
    is stored as ``failed`` and the suite goes on. When a spec finally succeeds,
    its earlier records (a failure, or the previous result under ``force``) are
    marked ``superseded`` so that every spec counts once in the tables.

    ``on_start(index, total, spec)`` and ``on_done(index, total, outcome)`` are
    called around each run (the CLI prints from them). A KeyboardInterrupt stops
    the suite at once and propagates; what was stored stays stored, so running
    the suite again finishes it with no run lost or duplicated.

    ``workers`` (a LocalCluster of that many processes) or ``scheduler`` (the address
    of a running Dask scheduler) run the suite on Dask
    (:func:`~bovw_vs_convnet.harness.cluster.run_suite_dask`): the stored runs are
    skipped before anything is submitted, ``on_start`` is not called, ``on_done``
    comes in finishing order and ``on_info`` hears the cluster's address.

    ``processes`` (``auto``: one per usable CPU) runs side by side in local processes
    (:mod:`.suite_processes`), ``on_done`` in finishing order, the numbers as one by one.
    """
    options = SuiteOptions(
        runs_dir=Path(runs_dir),
        dataset=dataset,
        train_sizes=train_sizes,
        seeds=seeds,
        protocol=protocol,
        data_dir=data_dir,
        device=device,
        force=force,
        n_jobs=n_jobs,
    )
    if workers or scheduler:
        from bovw_vs_convnet.harness.cluster import run_suite_dask

        return run_suite_dask(
            suite, options, workers=workers, scheduler=scheduler, on_info=on_info, on_done=on_done
        )
    specs = options.specs(suite)
    pool = side_by_side(processes, len(specs)) if processes != 1 else 1
    if pool > 1:
        return run_suite_processes(suite, options, pool, on_done=on_done)
    store = ResultStore(options.runs_dir)
    store.recover()
    outcomes: list[RunOutcome] = []
    for index, spec in enumerate(specs):
        if on_start is not None:
            on_start(index, len(specs), spec)
        outcome = _run_one(spec, store, options, progress)
        outcomes.append(outcome)
        if on_done is not None:
            on_done(index, len(specs), outcome)
    return outcomes


def _run_one(
    spec: RunSpec, store: ResultStore, options: SuiteOptions, progress: ProgressMode | bool
) -> RunOutcome:
    """Run one spec; store what became of it and mark the records it replaces superseded."""
    t0 = time.perf_counter()
    known = store.run_ids()  # a record returned with one of these ids was stored before: skipped
    try:
        record = run_pipeline(
            spec.pipeline,
            spec.dataset,
            overrides=spec.settings,
            seed=spec.seed,
            train_size=spec.train_size,
            runs_dir=options.runs_dir,
            data_dir=options.data_dir,
            device=options.device,
            n_jobs=options.n_jobs,
            resume=not options.force,
            progress=progress,
            skip_existing=not options.force,
            split_options=spec.split_options,
        )
    except TrainSizeTooLarge as exc:
        return RunOutcome(spec, "too-large", None, str(exc), time.perf_counter() - t0)
    except StorageError:
        raise
    except RunFailed as exc:
        full = storage_error(exc.__cause__)
        if full is not None:  # the pipeline could not write (a cache, a checkpoint)
            raise full from exc
        failed = exc.record
    except Exception as exc:  # before run_pipeline made its record: bad data, bad config
        failed = store_failure(StoreSink(store), spec_failure_record(spec), exc)
    else:
        skipped = record["run_id"] in known
        if not skipped:
            store.supersede(record.get("config_key") or "", record["run_id"])
        status = "skipped" if skipped else "ran"
        return RunOutcome(spec, status, record, None, time.perf_counter() - t0)
    return failed_outcome(store, spec, failed, time.perf_counter() - t0)
