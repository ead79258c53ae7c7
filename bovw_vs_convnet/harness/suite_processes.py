"""A suite's runs side by side in local processes, when the process may use several CPUs.

Small runs (the quick suite's: seconds each on digits) leave a second core idle: one
run's operators are too small to share between threads (``threads=auto`` gives a
LeNet one). Here independent runs take one process each, up to :func:`side_by_side`
of them. Each run chooses its own thread count as it would alone (from the
affinity and its work, never the load: :mod:`bovw_vs_convnet.threads`), so its
numbers are the ones it gives when run one by one. The workers stage their runs as
the Dask workers do (:func:`~bovw_vs_convnet.harness.cluster.run_on_worker`) and this
process alone commits them to the store.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from bovw_vs_convnet.errors import StorageError
from bovw_vs_convnet.harness.cluster import (
    SuiteLedger,
    _land,
    _plan_runs,
    _task,
    run_on_worker,
    shared_marker,
)
from bovw_vs_convnet.harness.outcome import RunOutcome, SuiteOptions
from bovw_vs_convnet.harness.run import error_line
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.harness.suite import Suite
from bovw_vs_convnet.threads import usable_cpus


def side_by_side(setting: int | str, n_runs: int) -> int:
    """Processes for ``n_runs`` runs: ``auto`` is one per usable CPU (affinity, quota), at most
    one per run; a number is taken as given (1: one run after another, in this process)."""
    wanted = usable_cpus()[0] if setting == "auto" else int(setting)
    return max(1, min(wanted, n_runs))


def run_suite_processes(
    suite: Suite,
    options: SuiteOptions,
    processes: int,
    on_done: Callable[[int, int, RunOutcome], object] | None = None,
) -> list[RunOutcome]:
    """Run ``suite`` in ``processes`` local processes; the outcomes in the suite's order.

    Stored runs are skipped, and bad specs stored as failed, before any process
    starts; ``on_done(index, total, outcome)`` is called as each run lands, in
    finishing order. A runs folder that cannot be written stops the suite.
    """
    ledger = SuiteLedger.open(suite, options, on_done)
    specs, store, finish = ledger.specs, ledger.store, ledger.finish
    plans = _plan_runs(specs, store, options, finish)
    if not plans:
        return ledger.landed()
    # spawn: a fork of a process whose torch or BLAS threads started may hang
    context = multiprocessing.get_context("spawn")
    pool_size = min(processes, len(plans))
    with (
        shared_marker(store.runs_dir) as marker_name,
        ProcessPoolExecutor(pool_size, mp_context=context) as pool,
    ):
        futures: dict[Future[dict[str, Any]], int] = {
            pool.submit(run_on_worker, _task(specs[i], options, fp, marker_name, 0)): i
            for i, (_key, fp) in plans.items()
        }
        try:
            _land_in_turn(futures, specs, plans, store, finish)
        except BaseException:  # Ctrl-C, a full runs folder: the rest are not started
            for future in futures:
                future.cancel()
            raise
    return ledger.landed()


def _land_in_turn(
    futures: dict[Future[dict[str, Any]], int],
    specs: list[Any],
    plans: dict[int, tuple[str, str]],
    store: ResultStore,
    finish: Callable[[int, RunOutcome], None],
) -> None:
    """Commit each run as it completes; a runs folder a worker cannot write stops all."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            index = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # a worker that died (killed, out of memory)
                result = {"status": "failed", "error": error_line(exc), "worker": None}
                result["seconds"] = 0.0
            if result["status"] == "storage":
                raise StorageError(result["error"])
            finish(index, _land(store, specs[index], result, plans[index][0]))
