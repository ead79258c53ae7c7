"""Where and with what a run was made: package versions, hardware, threads, git revision.

Nothing here imports torch: package versions come from the installed metadata, and
the GPU model is read only when torch is already imported and the run's own device is
a GPU: a ``--device cpu`` ConvNet run, or a BoVW run later in the same ``bvc bench``
process, reports no GPU although torch sees one.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bovw_vs_convnet import __version__
from bovw_vs_convnet.threads import affinity_cpus, cgroup_quota

PACKAGES = (
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "torchvision",
    "opencv-python-headless",
    "opencv-python",
    "joblib",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed version of each package in ``names`` (absent ones are left out)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else the platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_model(device: str | None = None) -> str | None:
    """The name of the GPU ``device`` names (``cuda``, ``cuda:1``); None for any other device.

    Read only when torch is already imported (a ConvNet run) and sees CUDA.
    """
    text = (device or "").strip().lower()
    if not text.startswith("cuda"):
        return None
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    _, _, index = text.partition(":")
    try:
        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(int(index) if index.isdigit() else 0))
    except Exception:  # a broken driver must not lose a finished run
        return None
    return None


# the environment that sets thread counts and how idle OpenMP threads wait
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
)


def thread_count() -> dict[str, int | float | str | None]:
    """CPUs this process may use, torch's intra-op threads (when imported), OMP/BLAS env.

    ``usable_cpus`` is the affinity mask; ``cgroup_quota`` the container's CPU quota
    (absent when unlimited), both of which ``threads=auto`` reads.
    """
    torch = sys.modules.get("torch")
    torch_threads = int(torch.get_num_threads()) if torch is not None else None
    out: dict[str, int | float | str | None] = {
        "cpu_count": os.cpu_count(),
        "usable_cpus": affinity_cpus(),
        "torch_threads": torch_threads,
    }
    quota = cgroup_quota()
    if quota is not None:
        out["cgroup_quota"] = quota
    for var in THREAD_ENV:
        if var in os.environ:
            out[var] = os.environ[var]
    return out


def _git(args: list[str], where: Path, timeout: float) -> str:
    """The stripped output of ``git ARGS`` run in ``where``."""
    done = subprocess.run(
        ["git", *args], cwd=where, capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout.strip()


def git_revision(path: Path | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path``; None outside git."""
    where = path or Path(__file__).resolve().parent
    try:
        sha = _git(["rev-parse", "HEAD"], where, timeout=5)
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], where, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha, "dirty": bool(dirty)} if sha else None


def collect(device: str | None = None) -> dict[str, Any]:
    """Every provenance field of a run record, as a JSON-ready dict.

    ``device`` is where the run ran (``cpu``, ``cuda:0``; None when not known): ``gpu``
    names that device's GPU, and is None for a run on the CPU.
    """
    return {
        "bvc_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "cpu": cpu_model(),
        "device": device,
        "gpu": gpu_model(device),
        "threads": thread_count(),
        "git": git_revision(),
        "argv": list(sys.argv),
    }
