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

from collections.abc import Mapping
from typing import Any, TypedDict, cast

import numpy as np


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
    # whether the validation error the model kept is significantly below chance (one-sided
    # binomial test against the most frequent class, p < 0.01; bovw_vs_convnet/significance.py);
    # absent where there is no validation score, and in records stored before the key:
    # read with is_learned(). A run with learned false is marked and never ranked.
    learned: bool
    # cost
    train_seconds: float
    infer_seconds: float
    infer_images_per_s: float | None
    n_params: int | None  # trainable parameters, or the learned numbers of BoVW
    stage_seconds: dict[str, float]  # stage name -> seconds
    # what the pipeline adds (learning curves, cache hits, descriptor counts, ...)
    extra: dict[str, Any]
    provenance: dict[str, Any]  # package versions, CPU/GPU, threads, git revision, command
    # the model bundle in <run>/bundle/ (harness/bundle.py): file name -> sha256, and the
    # sha256 of that mapping's canonical JSON; bundle_error: why a run keeps none
    bundle_files: dict[str, str]
    bundle_sha256: str | None
    bundle_error: str
    run_dir: str  # the run's folder, set by the store on read


# The errors a record holds, by short name: ``top1`` is ``top1_err`` with ``top1_ci``, ...
ERROR_METRICS = ("top1", "top5", "mpc", "mpc_top5")


def _known(metric: str) -> str:
    """``metric`` itself, once it is checked to be one of :data:`ERROR_METRICS`."""
    if metric not in ERROR_METRICS:
        raise ValueError(f"unknown error {metric!r}; known: {', '.join(ERROR_METRICS)}")
    return metric


def error_value(record: RunRecord, metric: str) -> float | None:
    """The record's ``<metric>_err``; None where it is missing.

    Records stored before the mean per-class error existed get ``mpc`` from their
    ``per_class_err`` (the same arithmetic: the mean over classes with a test image).
    """
    # every <metric>_err key of RunRecord is a float; mypy cannot see it through the f-string
    value = cast("float | None", record.get(f"{_known(metric)}_err"))
    if value is None and metric == "mpc" and record.get("per_class_err"):
        per_class = [v for v in (record.get("per_class_err") or {}).values() if v is not None]
        value = sum(per_class) / len(per_class) if per_class else None
    return None if value is None else float(value)


def error_interval(record: RunRecord, metric: str) -> list[float] | None:
    """The record's stored 95 % interval ``<metric>_ci`` as [low, high]; None where missing."""
    ci = cast("list[float] | None", record.get(f"{_known(metric)}_ci"))
    return [float(ci[0]), float(ci[1])] if ci else None


def is_learned(record: Mapping[str, Any]) -> bool:
    """False only for a run recorded as ``learned: false``; unknown (an old record) is True."""
    return record.get("learned") is not False


def learned_fields(extra: Mapping[str, Any], val_labels: np.ndarray | None) -> RunRecord:
    """``learned`` for the record, from what the pipeline's ``extra`` says of its validation.

    A ConvNet decides it itself (``extra["learned"]``: the chance test of the weights it
    kept). A pipeline that chooses its SVM cost on the validation images
    (``extra["val_errors_by_C"]``: BoVW, HOG, the baseline) or keeps its best validation
    epoch (``extra["val_err_by_epoch"]``: the DBN) is judged on the lowest of those
    errors, by the same one-sided binomial test against the most frequent class of the
    validation part, Bonferroni-corrected for the number of errors it was the lowest of
    (one cost, one look: the plain test); its test goes to ``extra["chance_test"]``.
    Without a validation score nothing is said (an empty dict: the key stays absent).
    """
    from bovw_vs_convnet.significance import chance_test_labels

    if isinstance(extra.get("learned"), bool):
        return RunRecord(learned=extra["learned"])
    by_c = list((extra.get("val_errors_by_C") or {}).values())
    errors = [float(e) for e in by_c + list(extra.get("val_err_by_epoch") or []) if e is not None]
    if not errors or val_labels is None or len(val_labels) == 0:
        return RunRecord()
    test = chance_test_labels(min(errors), np.asarray(val_labels), looks=len(errors))
    return RunRecord(learned=test.significant, extra={**extra, "chance_test": test.record()})
