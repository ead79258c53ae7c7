"""One run: data and split, config, fit (timed), score the test set (timed), metrics, store.

:func:`run_pipeline` is what ``bvc run`` and the suite runner call. It never
prints; it returns the record its sink stored (a :class:`RunRecord`, a JSON-ready
dict). Its steps, in order: :func:`checked_config`, :func:`plan_run` (data, split and
store key), :func:`planned_record`, :func:`fit_score_and_store` (with
:func:`result_fields`), and on failure :func:`store_failure`, which the suite runner
also uses for a run that failed before :func:`run_pipeline` could make its record.
Where the results go is the sink's business (:mod:`~bovw_vs_convnet.harness.sinks`).
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bovw_vs_convnet import __version__
from bovw_vs_convnet.config import build_config, check_seed, config_to_dict, identity_settings
from bovw_vs_convnet.data.split import Split
from bovw_vs_convnet.errors import BvcError, DataError, RunFailed, StorageError, storage_error
from bovw_vs_convnet.harness import metrics as metrics_mod
from bovw_vs_convnet.harness import provenance
from bovw_vs_convnet.harness.bundle import remove_bundle, write_bundle
from bovw_vs_convnet.harness.record import RunRecord, learned_fields
from bovw_vs_convnet.harness.record_json import config_key, new_run_id
from bovw_vs_convnet.harness.registry import PipelineSpec, get_pipeline
from bovw_vs_convnet.harness.run_folder import ScoreArrays
from bovw_vs_convnet.harness.sinks import RunSink, sink_for_process
from bovw_vs_convnet.progress import ProgressMode
from bovw_vs_convnet.protocol import RunContext

log = logging.getLogger(__name__)

CACHE_ENV = "BVC_CACHE_DIR"


def load_split(
    dataset: str,
    *,
    seed: int = 0,
    train_size: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    data_dir: Path | None = None,
    lazy: bool | None = None,
    split_options: Mapping[str, Any] | None = None,
) -> tuple[str, Split]:
    """Load ``dataset`` (a manifest name or an ImageFolder path): its name and common split.

    ``lazy``: an ImageFolder's images read from their files on demand (True), into
    memory (False), or by the folder's size (None). ``split_options``: more keywords of
    :func:`~bovw_vs_convnet.data.split.make_split` (``train_per_class``,
    ``test_per_class``, ``short_classes``, ``split_index``).
    """
    from bovw_vs_convnet.data import load_dataset, make_split

    ds = load_dataset(dataset, data_dir=data_dir, lazy=lazy)
    split = make_split(
        ds,
        seed=seed,
        train_size=train_size,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        **dict(split_options or {}),
    )
    return ds.name, split


def cache_dir_for(runs_dir: Path) -> Path:
    """Where pipelines cache costly intermediates: ``$BVC_CACHE_DIR`` or ``<runs-dir>/cache``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(runs_dir) / "cache"


def runtime_identity(config: Any, device: str) -> dict[str, Any]:
    """What the hardware adds to a run's identity: ``{}``, or a ConvNet's device type and dtype.

    A config class names its resolver in ``RUNTIME_IDENTITY`` as ``"module:attribute"``
    (resolved here at run time: the harness imports no pipeline), called as
    ``resolver(config, device)``; ConvNets return nothing on the CPU, where every run
    stored before keys were device-aware ran, so those keys stay as they were.
    """
    path = getattr(type(config), "RUNTIME_IDENTITY", None)
    if not path:
        return {}
    module, _, attr = str(path).partition(":")
    return dict(getattr(importlib.import_module(module), attr)(config, device))


def run_config_key(
    pipeline: str, config: Any, split_fingerprint: str, *, dataset: str, seed: int, device: str
) -> str:
    """The store's key of a run of ``config`` on ``device``: what :func:`run_pipeline` uses.

    Settings added after runs were stored are left out at their old value
    (``config.identity_settings``); :func:`runtime_identity` adds where it runs, and a
    torchrun job its number of processes (``WORLD_SIZE``, when above 1).
    """
    settings = identity_settings(type(config), config_to_dict(config))
    settings.update(runtime_identity(config, device))
    world = int(os.environ.get("WORLD_SIZE", "1") or "1")
    if world > 1:  # under torchrun the global batch is world × batch_size: another run
        settings["world_size"] = world
    return config_key(pipeline, settings, split_fingerprint, dataset=dataset, seed=seed)


SplitLoader = Callable[..., tuple[str, Split]]  # load_split's signature


def checked_config(pipeline: str, overrides: Mapping[str, Any] | None) -> tuple[PipelineSpec, Any]:
    """``pipeline``'s registry entry and its config from ``overrides``, checked.

    What the config alone cannot check (an unknown model) is refused here, before any
    data is loaded (ConfigError).
    """
    spec = get_pipeline(pipeline)
    config = build_config(spec.config_class(), overrides)
    spec.check_config(config)
    return spec, config


@dataclass(frozen=True)
class RunPlan:
    """What a run will be, known before it trains: its config, data and store key."""

    config: Any  # the config it runs (a BoVW preset chosen by the image size included)
    dataset: str  # the dataset's name
    split: Split
    key: str  # the store's config key (:func:`run_config_key`)


def plan_run(
    pipeline: str,
    config: Any,
    dataset: str,
    *,
    overrides: Mapping[str, Any] | None,
    seed: int,
    device: str,
    train_size: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    data_dir: Path | None = None,
    split_options: Mapping[str, Any] | None = None,
    expect_fingerprint: str | None = None,
    load: SplitLoader | None = None,
) -> RunPlan:
    """Load the split of a run of ``config`` (from :func:`checked_config`) and plan it.

    What :func:`run_pipeline` runs and the Dask coordinator plans alike, so that the
    key a worker's run is stored under is the one its coordinator looked up. ``load``:
    one that caches its splits (the coordinator's, across a suite's runs), or None for
    :func:`load_split` (looked up at the call, where a test may have replaced it).
    ``expect_fingerprint``: the split fingerprint a cluster's coordinator computed; a
    different one here raises DataError.
    """
    name, data = (load or load_split)(
        dataset,
        seed=seed,
        train_size=train_size,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        data_dir=data_dir,
        # a pipeline that passes over each image once per stage (BoVW) reads a folder's
        # files as it goes instead of holding every image in memory
        lazy=True if getattr(type(config), "STREAMS_IMAGES", False) else None,
        split_options=split_options,
    )
    if expect_fingerprint is not None and data.fingerprint != expect_fingerprint:
        raise DataError(
            f"split fingerprint {data.fingerprint[:12]} of {dataset!r} here differs from the "
            f"coordinator's {expect_fingerprint[:12]}: this node has different data "
            f"(data dir {data_dir or 'default'}); give every worker the same files"
        )
    choose = getattr(type(config), "preset_for_images", None)  # BoVW: by the image size
    if choose is not None and "preset" not in (overrides or {}):
        config = build_config(type(config), {**(overrides or {}), "preset": choose(data.train)})
    key = run_config_key(pipeline, config, data.fingerprint, dataset=name, seed=seed, device=device)
    return RunPlan(config=config, dataset=name, split=data, key=key)


def model_name(pipeline: str, config: Any = None, model: Any = None) -> str:
    """The record's ``model``: what names the row in a leaderboard.

    The fitted pipeline's ``model_name`` (the baseline's classifier), else the
    config's ``model`` (a ConvNet) or ``preset`` (a BoVW preset), else the
    pipeline's registry name. ``config`` is the frozen config, or the mapping of
    settings of a run whose config could not be built.
    """

    def setting(name: str) -> Any:
        return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)

    for value in (getattr(model, "model_name", None), setting("model"), setting("preset")):
        if value:
            return str(value)
    return pipeline


def error_line(exc: BaseException) -> str:
    """A failed record's ``error``: ``"ValueError: probe failed"``, first line only."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def store_failure(
    sink: RunSink, record: RunRecord, exc: BaseException, staging: Path | None = None
) -> RunRecord:
    """Mark ``record`` failed with ``exc``'s one-line error, hand it to ``sink``; return that.

    Should storing fail too, that is logged and the record returned unstored:
    the run's own error matters more than the failed bookkeeping. When both are the
    disk's (full, read-only), the run's own error says it all: the second is not repeated.
    """
    record.update(
        {
            "status": "failed",
            "error": error_line(exc),
            "provenance": provenance.collect(device=record.get("device")),
        }
    )
    try:
        return sink.fail(record, staging)
    except BvcError as store_exc:  # a full or read-only runs folder: one line, no traceback
        same_disk = storage_error(exc) is not None and isinstance(store_exc, StorageError)
        level = logging.INFO if same_disk else logging.WARNING
        log.log(level, "could not store the failed run %s: %s", record.get("run_id"), store_exc)
        return record
    except Exception:
        log.exception("could not store the failed run %s", record.get("run_id"))
        return record


def run_pipeline(
    pipeline: str,
    dataset: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
    train_size: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    runs_dir: Path | str = Path("runs"),
    data_dir: Path | None = None,
    device: str = "auto",
    n_jobs: int = -1,
    resume: bool = False,
    progress: ProgressMode | bool = True,
    skip_existing: bool = False,
    sink: RunSink | None = None,
    expect_fingerprint: str | None = None,
    split_options: Mapping[str, Any] | None = None,
) -> RunRecord:
    """Run ``pipeline`` on ``dataset`` once and store the record; return the stored record.

    ``pipeline`` is a registered name (``baseline``, ``bovw``, ``convnet``), ``dataset`` a
    manifest name or an ImageFolder path, ``overrides`` settings of the pipeline's config
    (strings or typed values), and ``seed`` seeds the split and the pipeline. The split
    is made from ``train_size`` (a class-balanced subset; None: all), ``val_fraction``,
    ``test_fraction`` and ``split_options`` (the per-class protocol and split index) on
    the data in ``data_dir`` (:func:`load_split`). ``device``, ``n_jobs``, ``resume`` and
    ``progress`` go to the pipeline in its RunContext. ``skip_existing`` returns the
    stored record of an identical finished run (same config key) instead of running.
    ``sink`` says where the results go (:mod:`~bovw_vs_convnet.harness.sinks`): by
    default ``runs_dir``'s store, or under torchrun on ranks other than 0 a RankSink
    (the run returns unscored after training). ``expect_fingerprint``: the split
    fingerprint a cluster's coordinator computed; a different one raises DataError.

    Raises RunFailed when fitting or scoring raised: the run is stored as ``failed``, the
    exception carries that record and its ``__cause__`` is the original error (a
    :class:`BvcError` for bad input). Raises BvcError for bad input found before the run
    starts (an unknown pipeline or setting, a dataset that will not load, a train size
    larger than the data): nothing is stored. A KeyboardInterrupt stores nothing and
    leaves the staging folder for ``resume``.
    """
    seed = check_seed(seed)
    spec, config = checked_config(pipeline, overrides)
    sink = sink if sink is not None else sink_for_process(runs_dir)
    sink.prepare()  # a read-only or full runs folder is refused before any work is spent
    plan = plan_run(
        pipeline,
        config,
        dataset,
        overrides=overrides,
        seed=seed,
        device=device,
        train_size=train_size,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        data_dir=data_dir,
        split_options=split_options,
        expect_fingerprint=expect_fingerprint,
    )
    if skip_existing and (done := sink.stored(plan.key)) is not None:
        log.info("run %s already stored with key %s", done["run_id"], plan.key[:12])
        return done
    run_id = new_run_id(pipeline)
    staging = sink.start(plan.key, run_id, resume=resume)
    context = RunContext(
        run_dir=staging,
        cache_dir=cache_dir_for(Path(runs_dir)),
        split_fingerprint=plan.split.fingerprint,
        seed=seed,
        device=device,
        n_jobs=n_jobs,
        resume=resume,
        progress=progress,
    )
    record = planned_record(run_id, pipeline, plan, seed=seed, device=device)
    return fit_score_and_store(spec, plan, context, record, sink)


def planned_record(
    run_id: str, pipeline: str, plan: RunPlan, *, seed: int, device: str
) -> RunRecord:
    """A run's record before it trains: what runs, on what data; status ``ok`` until it fails."""
    data = plan.split
    return {
        "run_id": run_id,
        "status": "ok",
        "error": None,
        "pipeline": pipeline,
        "model": model_name(pipeline, plan.config),
        "dataset": plan.dataset,
        "split_fingerprint": data.fingerprint,
        "split": data.params,
        "seed": seed,
        "n_train": len(data.train),
        "n_val": len(data.val) if data.val is not None else 0,
        "n_test": len(data.test),
        "n_classes": data.test.n_classes,
        "class_names": list(data.test.class_names),
        "config": config_to_dict(plan.config),
        "config_key": plan.key,
        "device": device,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "bvc_version": __version__,
    }


def fit_score_and_store(
    spec: PipelineSpec, plan: RunPlan, context: RunContext, record: RunRecord, sink: RunSink
) -> RunRecord:
    """Fit the planned run in ``context.run_dir``, score its test set, hand both to ``sink``.

    A sink that does not score (a torchrun rank > 0) gets the folder back after fitting,
    and the record is returned as planned. What fitting or scoring raises is handed to
    the sink as a failed run and raised as :class:`RunFailed`.
    """
    staging, test = context.run_dir, plan.split.test
    try:
        model = spec.build(plan.config, context)
        t0 = time.perf_counter()
        model.fit(plan.split.train, plan.split.val)
        train_seconds = time.perf_counter() - t0
        if not sink.scores_runs:  # torchrun, rank > 0: rank 0 scores and stores
            sink.leave(staging)
            return record
        t0 = time.perf_counter()
        scores = np.asarray(model.decision_scores(test))
        infer_seconds = time.perf_counter() - t0
        result = metrics_mod.evaluate(scores, test.labels)
        if hasattr(model, "save_artifacts"):
            model.save_artifacts(staging)
        # the model bundle (harness/bundle.py), in the staging folder: it is renamed with the run
        bundle_keys = write_bundle(spec, model, staging, record, plan.split.train)
    except KeyboardInterrupt:
        sink.leave(staging)  # the folder stays for --resume; another process may take it
        raise
    except Exception as exc:
        raise RunFailed(store_failure(sink, record, exc, staging)) from exc
    scored = result_fields(record, plan, model, result, train_seconds, infer_seconds)
    val_labels = plan.split.val.labels if plan.split.val is not None else None
    scored.update(learned_fields(scored.get("extra") or {}, val_labels))  # "learned"
    record.update({**scored, **bundle_keys})  # the bundle's keys last, as records always had them
    try:
        return sink.finish(record, staging, ScoreArrays(scores, test.labels, test.ids))
    except BvcError:  # a full disk: the staging folder keeps nothing a failed commit wrote
        remove_bundle(staging)
        raise


def result_fields(
    record: RunRecord,
    plan: RunPlan,
    model: Any,
    result: metrics_mod.Metrics,
    train_seconds: float,
    infer_seconds: float,
) -> RunRecord:
    """The record's keys a scored run adds: errors, intervals, times, size, provenance."""
    device = str(record.get("device"))
    run_device = str(getattr(model, "device", None) or ("cpu" if device == "auto" else device))
    test = plan.split.test
    names = test.class_names

    def interval(ci: Any) -> list[float] | None:
        return list(ci) if ci else None

    return {
        "model": model_name(str(record["pipeline"]), plan.config, model),
        "top1_err": result.top1_err,
        "top5_err": result.top5_err,
        "top5_k": result.top5_k,
        "per_class_err": {n: float(e) for n, e in zip(names, result.per_class_err, strict=True)},
        "per_class_top5_err": {
            n: float(e) for n, e in zip(names, result.per_class_top5_err, strict=True)
        },
        "mpc_err": result.mpc_err,
        "mpc_top5_err": result.mpc_top5_err,
        "top1_ci": interval(result.top1_ci),
        "top5_ci": interval(result.top5_ci),
        "mpc_ci": interval(result.mpc_ci),
        "mpc_top5_ci": interval(result.mpc_top5_ci),
        "confusion": result.confusion.tolist(),
        "train_seconds": train_seconds,
        "infer_seconds": infer_seconds,
        "infer_images_per_s": len(test) / infer_seconds if infer_seconds > 0 else None,
        "n_params": getattr(model, "n_params", None),
        "device": run_device,
        "stage_seconds": dict(getattr(model, "stage_seconds", None) or {}),
        "extra": dict(getattr(model, "record_extra", None) or {}),
        "provenance": provenance.collect(device=run_device),
    }
