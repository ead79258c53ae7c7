"""A suite's runs on a Dask cluster (``bvc bench SUITE --workers N`` / ``--scheduler ADDRESS``).

Dask (``dask.distributed``) schedules; this module only says what one task is and
what the coordinator does with its result. The rules:

- The coordinator (the ``bvc bench`` process) is the only writer of
  ``results.sqlite``. It computes every run's config key first (loading each split
  once, for its fingerprint), skips the runs already stored, and submits the others,
  one Dask task per run (:func:`run_on_worker`), with the split fingerprint it
  expects.
- A worker runs :func:`~bovw_vs_convnet.harness.run.run_pipeline` into a
  :class:`~bovw_vs_convnet.harness.sinks.WorkerStaging`: it checks that its split
  fingerprint is the coordinator's before training (different data on one node must
  not pollute a table), works in a staging folder under the runs folder (so the runs
  folder must be on storage every worker shares: a worker that cannot see it fails
  the run with one line naming the path), and returns the record.
- The coordinator commits each returned run as a local one is committed (its claim on
  the staging folder, ``record.json``, the atomic rename, one SQLite transaction) and
  marks the records it replaces superseded.

Faults: a worker that dies mid-run (kill -9, out of memory) has its run started again
on another worker once (``distributed.scheduler.allowed-failures`` = 1 on a local
cluster, ``retries=1`` for a task that raises), resuming from the run's checkpoint in
its staging folder; a second death is recorded as a failed run. A coordinator that
dies loses nothing stored: rerunning the command skips what is stored and resumes the
staging folders. A KeyboardInterrupt cancels the submitted runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bovw_vs_convnet.errors import (
    BvcError,
    ConfigError,
    RunFailed,
    StorageError,
    TrainSizeTooLarge,
    storage_error,
)
from bovw_vs_convnet.harness import provenance
from bovw_vs_convnet.harness.outcome import (
    RunOutcome,
    SuiteOptions,
    failed_outcome,
    spec_failure_record,
)
from bovw_vs_convnet.harness.run import (
    checked_config,
    error_line,
    load_split,
    plan_run,
    run_pipeline,
)
from bovw_vs_convnet.harness.run_folder import PARTIAL_DIR, write_failure
from bovw_vs_convnet.harness.sinks import WorkerStaging
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.harness.suite import RunSpec, Suite

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[cluster]"'
MARKER_PREFIX = ".cluster-"  # in <runs>/.partial/: a worker that cannot see it cannot share
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class ClusterUnavailable(ConfigError):
    """dask.distributed is not installed, or the scheduler cannot be reached."""


def require_distributed() -> Any:
    """The ``distributed`` module, or ClusterUnavailable with the install command (exit 2)."""
    try:
        import distributed
    except ImportError:
        raise ClusterUnavailable(
            f"--workers and --scheduler need dask.distributed: {INSTALL_HINT}"
        ) from None
    return distributed


def usable_cores() -> int:
    """The cores this process may run on (the affinity mask, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_name() -> str:
    """The Dask worker's address, or ``host:pid`` outside a worker."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


# -- the worker's side ----------------------------------------------------------------------


def run_on_worker(task: dict[str, Any]) -> dict[str, Any]:
    """One run on a Dask worker; returns what the coordinator needs to store it.

    ``task`` holds the spec's fields, the (absolute) runs folder, the marker file the
    coordinator left in it, the split fingerprint it expects and the run options. The
    result's ``status`` is ``ran``, ``skipped``, ``failed``, ``too-large`` or
    ``storage`` (a runs folder this worker cannot write: the suite stops), with the
    record and its staging folder (for the coordinator's commit) where there is one,
    the one-line error, the seconds and the worker's address. Nothing raises: a task
    that raised would be retried by Dask, and a run's failure is a result.
    """
    t0 = time.perf_counter()
    worker = worker_name()
    runs_dir = Path(task["runs_dir"])
    result: dict[str, Any] = {"record": None, "staging": None, "error": None, "worker": worker}

    def done(status: str, **fields: Any) -> dict[str, Any]:
        return {**result, **fields, "status": status, "seconds": time.perf_counter() - t0}

    marker = runs_dir / PARTIAL_DIR / task["marker"]
    if not marker.is_file():
        return done(
            "failed",
            error=f"runs folder {runs_dir} is not visible on worker {worker} "
            "(put it on storage every worker shares)",
        )
    sink = WorkerStaging(ResultStore(runs_dir))
    try:
        record = run_pipeline(
            task["pipeline"],
            task["dataset"],
            overrides=task["settings"],
            seed=task["seed"],
            train_size=task["train_size"],
            runs_dir=runs_dir,
            data_dir=Path(task["data_dir"]) if task["data_dir"] else None,
            device=task["device"],
            n_jobs=task["n_jobs"],
            resume=not task["force"],
            progress="none",
            skip_existing=not task["force"],
            sink=sink,
            expect_fingerprint=task["fingerprint"],
            split_options=task.get("split_options"),
        )
    except TrainSizeTooLarge as exc:
        return done("too-large", error=str(exc))
    except StorageError as exc:
        return done("storage", error=str(exc))
    except RunFailed as exc:
        full = storage_error(exc.__cause__)
        if full is not None:
            return done("storage", error=str(full))
        staged = sink.staged.get(str(exc.record["run_id"]))
        return done(
            "failed",
            record=exc.record,
            staging=str(staged) if staged else None,
            error=exc.record.get("error"),
        )
    except Exception as exc:  # before run_pipeline made its record (the fingerprint check too)
        return done("failed", error=error_line(exc))
    staged = sink.staged.get(str(record["run_id"]))
    if staged is None:  # stored meanwhile (another coordinator): skip_existing returned it
        return done("skipped", record=record)
    return done("ran", record=record, staging=str(staged))


# -- the coordinator's side -----------------------------------------------------------------


def plan_key(
    spec: RunSpec,
    *,
    data_dir: Path | None,
    device: str,
    splits: dict[tuple[Any, ...], tuple[str, Any]],
) -> tuple[str, str]:
    """(config key, split fingerprint) of ``spec``: :func:`plan_run`, as run_pipeline plans it.

    ``splits`` caches the loaded splits by (dataset, seed, train size, split options)
    across specs. Raises what run_pipeline would raise before its record exists (bad
    settings, a dataset that will not load, a training size larger than the data).
    """
    _, config = checked_config(spec.pipeline, spec.settings)
    where = (spec.dataset, spec.seed, spec.train_size, *sorted(spec.split_options.items()))

    def cached(dataset: str, **options: Any) -> tuple[str, Any]:
        if where not in splits:
            splits[where] = load_split(dataset, **options)
        return splits[where]

    plan = plan_run(
        spec.pipeline,
        config,
        spec.dataset,
        overrides=spec.settings,
        seed=spec.seed,
        device=device,
        train_size=spec.train_size,
        data_dir=data_dir,
        split_options=spec.split_options,
        load=cached,
    )
    return plan.key, str(plan.split.fingerprint)


@contextlib.contextmanager
def dask_client(
    workers: int | None, scheduler: str | None, threads: int
) -> Iterator[tuple[Any, int]]:
    """A Client on a new LocalCluster of ``workers`` processes, or on ``scheduler``.

    Yields (client, number of workers). Local workers run one task at a time with
    ``threads`` threads for torch and BLAS each (their ``OMP_NUM_THREADS`` and kin),
    and a task whose worker dies twice is given up (``allowed-failures`` = 1).
    """
    distributed = require_distributed()
    import dask

    # the scheduler's and nannies' INFO lines would bury the one line per run
    logging.getLogger("distributed").setLevel(logging.WARNING)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        if scheduler:
            try:
                client = distributed.Client(scheduler, timeout="20s")
            except OSError as exc:
                raise ClusterUnavailable(
                    f"cannot reach the Dask scheduler at {scheduler}: {exc}"
                ) from None
            cluster = None
        else:
            env = dict.fromkeys(THREAD_VARS, str(threads))
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,  # one run per worker at a time
                processes=True,
                env=env,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster)
        try:
            n = len(client.scheduler_info().get("workers", {}))
            yield client, n
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _land(store: ResultStore, spec: RunSpec, result: dict[str, Any], key: str) -> RunOutcome:
    """Commit one worker's ``result`` (or a failure before submitting) in ``store``."""
    status, record = result["status"], result.get("record")
    staging = Path(result["staging"]) if result.get("staging") else None
    seconds, worker = float(result.get("seconds") or 0.0), result.get("worker")
    if status == "too-large":
        return RunOutcome(spec, status, None, result["error"], seconds, worker=worker)
    if status == "skipped":
        return RunOutcome(spec, status, record, None, seconds, worker=worker)
    if status == "ran" and record is not None and staging is not None:
        if record.get("config_key") != key:  # both plan_run's: the worker has another WORLD_SIZE
            log.warning("run %s: its config key differs from the planned one", spec.describe())
        store.claim(staging)  # the worker released it; commit releases it again
        stored = store.commit(record, staging)
        store.supersede(stored.get("config_key") or "", stored["run_id"])
        return RunOutcome(spec, "ran", stored, None, seconds, worker=worker)
    # failed: the worker's own record, or one made here (worker died, folder not visible)
    if record is None:
        record = spec_failure_record(spec)
        record.update(
            {"status": "failed", "error": result["error"], "provenance": provenance.collect()}
        )
        if key:  # the planned key: a repeated failure replaces this one
            record["config_key"] = key
    try:
        if staging is not None:
            store.claim(staging)
        failed = store.record_failure(record, staging)
    except BvcError as exc:
        log.warning("could not store the failed run %s: %s", record.get("run_id"), exc)
        failed = record
    return failed_outcome(store, spec, failed, seconds, worker=worker)


def _plan_runs(
    specs: list[RunSpec],
    store: ResultStore,
    options: SuiteOptions,
    finish: Callable[[int, RunOutcome], None],
) -> dict[int, tuple[str, str]]:
    """(config key, split fingerprint) of each spec to submit, by index; the others finished.

    A spec already stored is skipped (unless ``options.force``); one whose settings or
    data fail, or whose training size is too large, is finished here, never submitted.
    """
    plans: dict[int, tuple[str, str]] = {}
    splits: dict[tuple[Any, ...], tuple[str, Any]] = {}  # the workers load their own
    for index, spec in enumerate(specs):
        t0 = time.perf_counter()
        try:
            key, fingerprint = plan_key(
                spec, data_dir=options.data_dir, device=options.device, splits=splits
            )
        except TrainSizeTooLarge as exc:
            finish(index, RunOutcome(spec, "too-large", None, str(exc), time.perf_counter() - t0))
            continue
        except Exception as exc:  # bad settings or data: stored as failed, never submitted
            failure = {"status": "failed", "error": error_line(exc)}
            finish(index, _land(store, spec, {**failure, "seconds": time.perf_counter() - t0}, ""))
            continue
        done = [] if options.force else store.list_runs(config_key=key)
        if done:
            finish(index, RunOutcome(spec, "skipped", done[-1], None, time.perf_counter() - t0))
        else:
            plans[index] = (key, fingerprint)
    return plans


def _task(
    spec: RunSpec, options: SuiteOptions, fingerprint: str, marker: str, threads: int
) -> dict[str, Any]:
    """What :func:`run_on_worker` is given for ``spec``: plain values a worker can unpickle."""
    return {
        "pipeline": spec.pipeline,
        "dataset": spec.dataset,
        "settings": dict(spec.settings),
        "seed": spec.seed,
        "train_size": spec.train_size,
        "split_options": spec.split_options,
        "runs_dir": str(options.runs_dir.resolve()),
        "marker": marker,
        "fingerprint": fingerprint,
        "data_dir": str(options.data_dir) if options.data_dir else None,
        "device": options.device,
        "n_jobs": threads if threads and options.n_jobs == -1 else options.n_jobs,
        "force": options.force,
    }


def _land_as_completed(
    futures: dict[Any, int],
    specs: list[RunSpec],
    plans: dict[int, tuple[str, str]],
    store: ResultStore,
    finish: Callable[[int, RunOutcome], None],
) -> None:
    """Commit each run as its future completes; a runs folder a worker cannot write stops all."""
    distributed = require_distributed()
    for future in distributed.as_completed(list(futures)):
        index = futures.pop(future)
        try:
            result = future.result()
        except Exception as exc:  # KilledWorker: died twice; or a lost scheduler
            result = {"status": "failed", "error": error_line(exc), "worker": None, "seconds": 0.0}
        if result["status"] == "storage":
            raise StorageError(result["error"])
        outcome = _land(store, specs[index], result, plans[index][0])
        future.release()  # landed: a worker lost now must not recompute it
        finish(index, outcome)


@dataclass
class SuiteLedger:
    """A suite's specs, its runs folder's store, and the outcomes as they land.

    What a coordinator (Dask or local processes) holds while its workers run: the
    store is checked writable and recovered when the ledger opens; :meth:`finish`
    records an outcome and tells ``on_done``.
    """

    specs: list[RunSpec]
    store: ResultStore
    on_done: Callable[[int, int, RunOutcome], object] | None
    outcomes: list[RunOutcome | None] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        suite: Suite,
        options: SuiteOptions,
        on_done: Callable[[int, int, RunOutcome], object] | None,
    ) -> SuiteLedger:
        """The ledger of ``suite``'s runs in ``options.runs_dir`` (resolved: workers share it)."""
        specs = options.specs(suite)
        store = ResultStore(options.runs_dir.resolve())
        store.check_writable()
        store.recover()
        return cls(specs, store, on_done, [None] * len(specs))

    def finish(self, index: int, outcome: RunOutcome) -> None:
        """Record run ``index``'s outcome."""
        self.outcomes[index] = outcome
        if self.on_done is not None:
            self.on_done(index, len(self.specs), outcome)

    def landed(self) -> list[RunOutcome]:
        """The outcomes, in the suite's order."""
        return [o for o in self.outcomes if o is not None]


@contextlib.contextmanager
def shared_marker(runs_dir: Path) -> Iterator[str]:
    """A marker file in ``<runs>/.partial/`` that workers look for (its name), removed after.

    A worker that cannot see it is not on the coordinator's storage and refuses to run.
    """
    name = f"{MARKER_PREFIX}{uuid.uuid4().hex[:8]}"
    marker = runs_dir / PARTIAL_DIR / name
    try:
        marker.write_text(datetime.now(UTC).isoformat(timespec="seconds") + "\n")
    except OSError as exc:
        raise write_failure(runs_dir, exc) from None
    try:
        yield name
    finally:
        marker.unlink(missing_ok=True)


def run_suite_dask(
    suite: Suite,
    options: SuiteOptions,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    on_info: Callable[[str], object] | None = None,
    on_done: Callable[[int, int, RunOutcome], object] | None = None,
) -> list[RunOutcome]:
    """Run ``suite`` on a Dask cluster; the outcomes in the suite's order (see run_suite).

    ``workers``: start a LocalCluster of that many processes, each with
    ``cores // workers`` threads; ``scheduler``: submit to an existing scheduler
    (``tcp://HOST:8786``). ``on_info(line)`` hears the cluster's address and dashboard;
    ``on_done(index, total, outcome)`` is called as each run lands, in finishing order.
    """
    require_distributed()  # before any data is loaded
    info = on_info or (lambda _line: None)
    ledger = SuiteLedger.open(suite, options, on_done)
    specs, store, finish = ledger.specs, ledger.store, ledger.finish
    plans = _plan_runs(specs, store, options, finish)
    if not plans:
        return ledger.landed()
    threads = max(1, usable_cores() // workers) if workers else 0
    with (
        shared_marker(store.runs_dir) as marker_name,
        dask_client(workers, scheduler, threads) as (client, n_workers),
    ):
        where = scheduler or f"a local cluster, {threads} thread(s) each"
        info(f"dask: {len(plans)} runs on {n_workers} workers ({where})")
        if "dashboard" in client.scheduler_info().get("services", {}):
            info(f"dask dashboard: {client.dashboard_link}")
        futures: dict[Any, int] = {}
        for index, (key, fingerprint) in plans.items():
            task = _task(specs[index], options, fingerprint, marker_name, threads)
            name = f"bvc-run-{index}-{key[:12]}-{uuid.uuid4().hex[:6]}"
            futures[client.submit(run_on_worker, task, key=name, retries=1, pure=False)] = index
        try:
            _land_as_completed(futures, specs, plans, store, finish)
        except BaseException:  # KeyboardInterrupt, a full runs folder: stop the others
            client.cancel(list(futures), force=True)
            raise
    return ledger.landed()  # every one, once the loop ran to its end
