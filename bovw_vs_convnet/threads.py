"""How many CPU threads a run uses: ``threads=auto``, from what the process may use and the work.

The count comes from two things that do not change while a machine stays as it is:

- the CPUs this process may run on: its affinity mask (``os.sched_getaffinity``),
  capped by the cgroup's CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us``), which a container's ``--cpus`` sets;
- the work of one operator: a second thread pays for itself only when each parallel
  region has enough arithmetic to share (a tiny net's operators are over in
  microseconds, alexnet-2012's take milliseconds).

It never comes from the momentary load (``os.getloadavg``): the same command on the
same machine chooses the same count, and so gives the same numbers (PyTorch's CPU
kernels sum in a different order with a different thread count). Example::

    choice = choose_threads("auto", work=1.8e5)  # multiply-adds per image: lenet5-1998
    choice.n, choice.why  # on 2 CPUs: (2, "auto: 2 CPUs in the affinity (1.8e+05 ...)")

:func:`passive_waiting` makes OpenMP's idle threads sleep instead of spinning; it must
run before torch is imported (libgomp reads its settings when it loads).

No torch import here: the BoVW, HOG and baseline pipelines use :func:`blas_threads`
(threadpoolctl) with the same rule.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from bovw_vs_convnet.errors import ConfigError

AUTO = "auto"
P = ParamSpec("P")
R = TypeVar("R")
CGROUP = Path("/sys/fs/cgroup")
# multiply-adds per image (at the model's input size) per thread of a ConvNet run: with
# passive waiting, 2 threads beat 1 in 7 of 9 paired timings on a loaded 2-core machine
# (lenet5, 0.42 M: 0.87x to 4.7x; lenet5-1998, 0.18 M: 0.72x to 2x; alexnet-small, 22 M:
# 1.07x to 1.5x; benchmarks/RESULTS-threads.md); a net of under 0.1 M keeps one thread
CONVNET_WORK_PER_THREAD = 5e4
# at most this many threads for any run: beyond, the sync costs of small operators win
MAX_AUTO_THREADS = 16
# OpenMP's settings for passive waiting: a thread done with its share sleeps at once
# rather than spinning for a peer that a busy machine has descheduled
PASSIVE_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0", "GOMP_SPINCOUNT": "0"}


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why it was chosen, for the run's record.

    Attributes:
        n: threads for the run's compute (torch's intra-op pool, BLAS).
        why: the setting and the facts that gave ``n``.
    """

    n: int
    why: str

    def describe(self) -> dict[str, Any]:
        """The record's view: ``{"n": ..., "why": ...}``."""
        return {"n": self.n, "why": self.why}


def affinity_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_quota(root: Path = CGROUP) -> float | None:
    """The cgroup's CPU quota in CPUs (``200000 100000`` -> 2.0); None when unlimited or unknown.

    cgroup v2 (``cpu.max``: ``QUOTA PERIOD`` or ``max PERIOD``) first, then v1
    (``cpu/cpu.cfs_quota_us``, -1 for none, and ``cpu/cpu.cfs_period_us``).
    """
    text = _read(root / "cpu.max")
    if text is not None:
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            return _quota(parts[0], parts[1])
        return None
    for folder in (root / "cpu", root / "cpu,cpuacct"):
        quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _quota(quota, period)
    return None


def _quota(quota: str, period: str) -> float | None:
    try:
        q, p = float(quota), float(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def usable_cpus() -> tuple[int, str]:
    """The CPUs this process may use, and where that number comes from.

    The affinity mask, capped by the cgroup quota rounded up (a quota of 1.5 CPUs still
    runs two threads at once, for part of each period).
    """
    cpus = affinity_cpus()
    quota = cgroup_quota()
    if quota is not None and math.ceil(quota) < cpus:
        return max(1, math.ceil(quota)), f"cgroup quota {quota:g} CPUs of {cpus} in the affinity"
    return cpus, f"{cpus} CPUs in the affinity"


def parse_threads(value: int | str) -> int | str:
    """A ``threads`` setting checked: ``auto``, or a count ≥ 0 (0: the library's default)."""
    if isinstance(value, str):
        if value.strip().lower() == AUTO:
            return AUTO
        try:
            value = int(value)
        except ValueError:
            raise ConfigError(
                f"setting 'threads' must be auto or a whole number >= 0, got {value!r}",
                key="threads",
            ) from None
    if value < 0:
        raise ConfigError(f"setting 'threads' must be auto or >= 0, got {value}", key="threads")
    return value


def choose_threads(
    setting: int | str, work: float | None = None, per_thread: float = CONVNET_WORK_PER_THREAD
) -> ThreadChoice:
    """The thread count for ``setting`` (``auto`` or a count) and a run of ``work``.

    A count is taken as given (0: the library's own default, which is the usable CPUs).
    ``auto``: one thread for every ``per_thread`` of ``work`` (multiply-adds per image
    for a ConvNet), at least one, at most the usable CPUs (:func:`usable_cpus`);
    ``work=None`` (the BLAS of BoVW, HOG and the baseline, large products) takes them all.
    """
    chosen = parse_threads(setting)
    if chosen != AUTO:
        n = int(chosen)
        if n == 0:
            return ThreadChoice(usable_cpus()[0], "threads=0: the library's default")
        return ThreadChoice(n, f"threads={n}: set")
    cpus, where = usable_cpus()
    cap = min(cpus, MAX_AUTO_THREADS)
    user = _user_threads()
    if user is not None and user < cap:  # the user's OMP_NUM_THREADS caps every pool
        cap, where = user, f"OMP_NUM_THREADS={user}, {where}"
    if work is None:
        return ThreadChoice(cap, f"auto: {where}")
    share = max(1, int(work // per_thread))
    n = min(cap, share)
    if share < cap:
        why = f"auto: {work:.3g} multiply-adds per image, one thread per {per_thread:.3g}"
        return ThreadChoice(n, f"{why} ({where})")
    return ThreadChoice(n, f"auto: {where} ({work:.3g} multiply-adds per image)")


def _user_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a count, None when unset or not a single whole number."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def passive_waiting() -> dict[str, str]:
    """Make OpenMP's waiting threads sleep: the variables of :data:`PASSIVE_ENV` not yet set.

    Only variables the user has not set, and only before the OpenMP runtime starts
    (before torch is imported): later it has read them already. Returns what it set.
    """
    set_now = {k: v for k, v in PASSIVE_ENV.items() if k not in os.environ}
    os.environ.update(set_now)
    return set_now


@contextmanager
def blas_threads(choice: ThreadChoice) -> Iterator[None]:
    """BLAS and OpenMP (numpy, scipy, scikit-learn) limited to ``choice.n`` threads inside."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=choice.n):
        yield


def auto_blas_threads(
    method: Callable[Concatenate[Any, P], R],
) -> Callable[Concatenate[Any, P], R]:
    """A pipeline method run with BLAS at ``threads=auto``, the choice in ``record_extra``.

    For the pipelines without a ConvNet (BoVW, HOG, the baseline): their products are
    large, so auto means every usable CPU (the cgroup quota and ``OMP_NUM_THREADS``
    included), and never the momentary load.
    """

    @functools.wraps(method)
    def run(self: Any, *args: P.args, **kwargs: P.kwargs) -> R:
        choice = choose_threads(AUTO)
        extra = getattr(self, "record_extra", None)
        if isinstance(extra, dict):
            extra["threads"] = choice.describe()
        with blas_threads(choice):
            return method(self, *args, **kwargs)

    return run
