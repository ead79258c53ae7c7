"""The run record: what one run leaves in the store, named once.

The keys are a contract (``docs/ARCHITECTURE.md``, "The run record"): scripts
outside the project read them from ``bvc run --json``, ``record.json`` and
``results.sqlite``. Add keys freely; never rename one.

A record is a plain JSON-ready dict at run time; :class:`RunRecord` lets mypy
check that readers ask for keys that exist. Every key is optional to the type
(``total=False``) because a failed run stops filling the record where it failed,
and records written by older versions lack the newer keys: read with ``.get``
where a key may be missing.
"""

from __future__ import annotations

from typing import Any, TypedDict


class RunRecord(TypedDict, total=False):
    """One stored run (status ``ok``, ``failed`` or ``superseded``); errors are fractions."""

    # identity
    run_id: str  # "<utc time>-<pipeline>-<random>"
    status: str  # ok | failed | superseded
    error: str | None  # the one-line error of a failed run
    created_at: str  # ISO 8601, UTC
    bvc_version: str
    # what ran, on what
    pipeline: str  # registry name: baseline, bovw, convnet
    model: str  # the row's model: a ConvNet name, a BoVW preset, the baseline's classifier
    dataset: str  # manifest name or "folder:PATH"
    split_fingerprint: str  # sha256 of the split's ids
    split: dict[str, Any]  # the split's parameters (seed, train size, fractions)
    seed: int
    train_size: int | None  # only in failures stored before the split was made
    n_train: int
    n_val: int
    n_test: int
    n_classes: int
    class_names: list[str]
    config: dict[str, Any]  # every setting of the pipeline's frozen config
    config_key: str  # sha256 of (pipeline, config, dataset, fingerprint, seed)
    device: str  # where it ran: cpu, cuda:0
    # results
    top1_err: float
    top5_err: float
    top5_k: int  # min(5, n_classes)
    per_class_err: dict[str, float]  # class name -> top-1 error
    per_class_top5_err: dict[str, float]  # class name -> top-5 (top5_k) error
    mpc_err: float  # 1 - mean per-class recall (VLFeat's measure): the mean of per_class_err
    mpc_top5_err: float  # the mean of per_class_top5_err
    # 95 % intervals [low, high]: Wilson for top-1/top-5, a class-stratified bootstrap
    # (2000 resamples, seed 0) for the per-class means (harness/stats.py)
    top1_ci: list[float] | None
    top5_ci: list[float] | None
    mpc_ci: list[float] | None
    mpc_top5_ci: list[float] | None
    confusion: list[list[int]]  # rows: true class, columns: predicted
    # cost
    train_seconds: float
    infer_seconds: float
    infer_images_per_s: float | None
    n_params: int | None  # trainable parameters, or the learned numbers of BoVW
    stage_seconds: dict[str, float]  # stage name -> seconds
    # what the pipeline adds (learning curves, cache hits, descriptor counts, ...)
    extra: dict[str, Any]
    provenance: dict[str, Any]  # package versions, CPU/GPU, threads, git revision, command
    run_dir: str  # the run's folder, set by the store on read
