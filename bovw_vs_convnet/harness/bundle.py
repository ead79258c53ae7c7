"""Model bundles: what a finished run keeps to predict with, in formats that cannot run code.

Every finished run of a pipeline whose registry entry names a bundle module
(``PipelineSpec.bundle``) keeps one, beside its record::

    <run>/bundle/bundle.json          the manifest (strict JSON): format, run id, pipeline,
                                      model, every setting, class names, the input (size,
                                      channels, how an image file is read) and the
                                      pipeline's own preprocessing
    <run>/bundle/weights.safetensors  a ConvNet's weights (safetensors: tensors and a JSON
                                      header, nothing executable)
    <run>/bundle/model.json + .npz    the other pipelines' fitted state: a JSON tree and
                                      plain arrays read without pickle
                                      (:mod:`bovw_vs_convnet.estimators.estimator_state`)

The record keeps ``bundle_files`` (file name -> sha256) and ``bundle_sha256`` (the
sha256 of that mapping's canonical JSON). :func:`load_bundle` trusts nothing in
the folder: the run must be stored and finished; the folder must hold exactly the
recorded files, each with its recorded sha256; each file is read once, and what
was hashed is what is parsed (no second read after the check); then the
pipeline's loader rebuilds the fitted pipeline from those bytes, refusing a file
that is not what it should be (a pickle in place of the safetensors or the npz).
Before anything is computed, the bundle is validated field by field: the manifest's
class names (at most :data:`MAX_CLASSES`, the record's own), its input size (within
the pixel limit of image files) and channels, its settings (through the same bounds
as ``--set``), and then, by the pipeline's bundle module, every array's shape and
dtype against those, the weights finite. Last, the fitted pipeline scores one blank
image of its input (:func:`probe`), which must give one finite score per class name.
Every refusal is a :class:`DataError`: one line, exit code 2; whatever a bundle holds,
loading it never ends in a traceback.

The bundle is written inside the run's staging folder, so it appears with the run
in the store's one atomic rename, or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from bovw_vs_convnet import __version__
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.errors import BvcError, DataError
from bovw_vs_convnet.estimators.estimator_state import load_json
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.record_json import canonical_json
from bovw_vs_convnet.harness.registry import PipelineSpec, get_pipeline
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.protocol import Pipeline, RunContext

log = logging.getLogger(__name__)

BUNDLE_DIR = "bundle"
MANIFEST = "bundle.json"
FORMAT = 1
MAX_FILE_BYTES = 4 * 1024**3  # a bundle file larger than this is not one we wrote
MAX_CLASSES = 100_000  # class names in a bundle (ImageNet-21k has 21 841)
MAX_NAME_CHARS = 1_000  # characters of one class name
# how an image file becomes the run's input: what the ImageFolder reader does
READ = {
    "resized": "OpenCV imread (grayscale when channels = 1, else RGB), resized to size "
    "(INTER_AREA)",
    "kept": "OpenCV imread (grayscale when channels = 1, else RGB) at its own aspect; the "
    "frame of size: covered and centre-cropped (a ConvNet's input); BoVW: the image itself",
}


def sha256_bytes(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def files_digest(files: Mapping[str, str]) -> str:
    """``bundle_sha256``: the sha256 of the canonical JSON of {file name: sha256}."""
    return sha256_bytes(canonical_json(dict(files)).encode())


def input_spec(images: ImageSet) -> dict[str, Any]:
    """The run's input: the size and channels every image was read at, and how.

    ``aspect``: ``resized`` (images of one size, or brought to it) or ``kept`` (a folder
    of mixed sizes: each image at its own aspect, cropped to the common frame ``size``).
    """
    h, w, c = images.image_shape
    aspect = "kept" if getattr(images, "aspect_kept", False) else "resized"
    return {"size": [h, w], "channels": c, "aspect": aspect, "read": READ[aspect]}


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"bovw_vs_convnet": __version__}
    for name in ("numpy", "scikit-learn", "torch", "safetensors"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _module(spec: PipelineSpec) -> Any:
    return importlib.import_module(spec.bundle)


def write_bundle(
    spec: PipelineSpec, model: Any, staging: Path, record: RunRecord, train: ImageSet
) -> RunRecord:
    """Write the fitted ``model``'s bundle into ``staging/bundle``; the record's bundle keys.

    Returns ``{"bundle_files": ..., "bundle_sha256": ...}``, or ``{}`` for a pipeline
    without a bundle module. A fitted state the bundle module cannot store is logged
    and kept as ``bundle_error`` (the run is not lost for its bundle); a write refused
    by the disk removes the folder and raises (the store turns it into one line).
    """
    if not getattr(spec, "bundle", ""):  # (a test's stand-in spec may have no such field)
        return {}
    folder = staging / BUNDLE_DIR
    shutil.rmtree(folder, ignore_errors=True)  # a resumed staging folder's earlier try
    try:
        files, described = _module(spec).save_bundle(model)
    except OSError:
        raise
    except Exception as exc:
        line = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log.warning("run %s keeps no model bundle: %s", record.get("run_id"), line)
        return {"bundle_files": {}, "bundle_sha256": None, "bundle_error": line}
    manifest = {
        "format": FORMAT,
        "run_id": record.get("run_id"),
        "pipeline": record.get("pipeline"),
        "model": getattr(model, "model_name", None) or record.get("model"),
        "dataset": record.get("dataset"),
        "config": record.get("config"),
        "class_names": record.get("class_names"),
        "input": input_spec(train),
        spec.name: described,
        "versions": _versions(),
    }
    text = json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False, default=str)
    files = {MANIFEST: (text + "\n").encode(), **files}
    try:
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a half-written bundle must not keep a disk full
            shutil.rmtree(folder)
        # a failed write() names no file: name the folder written to
        raise OSError(exc.errno, exc.strerror, exc.filename or str(folder)) from exc
    digests = {name: sha256_bytes(data) for name, data in sorted(files.items())}
    return {"bundle_files": digests, "bundle_sha256": files_digest(digests)}


def remove_bundle(staging: Path) -> None:
    """Remove the bundle from a staging folder whose commit failed (it is rewritten on resume)."""
    shutil.rmtree(staging / BUNDLE_DIR, ignore_errors=True)


@dataclass(frozen=True)
class Bundle:
    """A verified bundle, loaded: the fitted pipeline and what its manifest says."""

    run_id: str
    pipeline: Pipeline
    manifest: dict[str, Any]
    record: RunRecord

    @property
    def class_names(self) -> list[str]:
        """The run's class names, by label."""
        return [str(c) for c in self.manifest["class_names"]]

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) every image is read at."""
        h, w = self.manifest["input"]["size"]
        return int(h), int(w)

    @property
    def channels(self) -> int:
        """Channels every image is read with (1 grayscale, 3 RGB)."""
        return int(self.manifest["input"]["channels"])

    @property
    def aspect_kept(self) -> bool:
        """Whether the run read images of mixed sizes at their own aspect (``native``)."""
        return self.manifest["input"].get("aspect") == "kept"


def verified_files(record: RunRecord, folder: Path) -> dict[str, bytes]:
    """The bundle's files (name -> bytes), each checked against the record's sha256.

    Refused (DataError): a run without a bundle, a folder holding other files than the
    record lists, a file whose sha256 differs, a record whose file list does not give
    its ``bundle_sha256``.
    """
    run_id = record.get("run_id")
    expected = record.get("bundle_files") or {}
    if not expected:
        why = record.get("bundle_error") or "it was stored before runs kept bundles"
        raise DataError(f"run {run_id} has no model bundle ({why})")
    if record.get("bundle_sha256") != files_digest(expected):
        raise DataError(f"run {run_id}: its record's bundle_sha256 does not match its file list")
    if folder.is_symlink() or not folder.is_dir():
        raise DataError(f"run {run_id}: its bundle folder {folder} is missing")
    found = {p.name for p in folder.iterdir()}
    if found != set(expected):
        extra, missing = sorted(found - set(expected)), sorted(set(expected) - found)
        raise DataError(
            f"run {run_id}: bundle folder {folder} does not hold the recorded files"
            + (f" (not recorded: {', '.join(extra)})" if extra else "")
            + (f" (missing: {', '.join(missing)})" if missing else "")
        )
    out: dict[str, bytes] = {}
    for name, digest in sorted(expected.items()):
        path = folder / name
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            raise DataError(f"run {run_id}: bundle file {path} is not a plain file")
        data = path.read_bytes()
        if sha256_bytes(data) != digest:
            raise DataError(
                f"run {run_id}: bundle file {path} does not match the sha256 in the run's "
                "record (changed after the run); refusing it"
            )
        out[name] = data
    return out


def load_bundle(store: ResultStore, run_id: str, *, n_jobs: int = 1) -> Bundle:
    """The fitted pipeline of stored run ``run_id``, from its verified bundle.

    The pipeline is rebuilt by the bundle module its registry entry names
    (``load_bundle(files, manifest, context)``) and scores on the CPU. DataError for an
    unknown run, a failed one, a bundle that fails :func:`verified_files`, a manifest
    that is not this run's, or a file that is not what it should be.
    """
    record = store.get_run(run_id)  # DataError: no such run
    if record.get("status", "ok") != "ok":
        raise DataError(f"run {run_id} did not finish (status {record.get('status')})")
    folder = store.run_dir(run_id) / BUNDLE_DIR
    files = verified_files(record, folder)
    manifest = load_json(files.pop(MANIFEST, b""), f"run {run_id}: {MANIFEST}")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"run {run_id}: {MANIFEST} is not a bundle manifest of format {FORMAT}")
    for key in ("run_id", "pipeline"):
        if manifest.get(key) != record.get(key):
            raise DataError(f"run {run_id}: the bundle's {key} is {manifest.get(key)!r:.80}")
    spec = get_pipeline(str(record["pipeline"]))
    if not spec.bundle:
        raise DataError(f"pipeline {spec.name!r} keeps no model bundles")
    try:
        check_manifest(manifest, record, MANIFEST)
        context = RunContext(
            run_dir=folder,
            cache_dir=None,  # predicting never reads or writes a cache
            split_fingerprint=str(record.get("split_fingerprint") or ""),
            seed=int(record.get("seed") or 0),
            device="cpu",
            n_jobs=n_jobs,
            progress=False,
        )
        pipeline = _module(spec).load_bundle(files, manifest, context)
        bundle = Bundle(str(run_id), pipeline, manifest, record)
        probe(bundle)
    except BvcError as exc:
        raise DataError(f"run {run_id}: its bundle is refused: {exc}") from None
    except Exception as exc:  # foreign bytes: whatever they make fail is one line
        raise DataError(
            f"run {run_id}: its bundle is not a fitted {spec.name} model "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from None
    return bundle


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where} is not an integer")
    return value


def check_manifest(manifest: Mapping[str, Any], record: RunRecord, what: str) -> None:
    """DataError unless the manifest's class names and input are ones a run could have.

    Class names: a list of 1 to :data:`MAX_CLASSES` strings, the record's own where it
    keeps them. Input: a size of two integers within the pixel limit of image files
    (:func:`~bovw_vs_convnet.data.imagefolder.pixel_limit`), 1 or 3 channels, a known
    aspect. The settings must be a mapping (the pipeline's config parses them).
    """
    from bovw_vs_convnet.data.imagefolder import pixel_limit

    names = manifest.get("class_names")
    if (
        not isinstance(names, list)
        or not 1 <= len(names) <= MAX_CLASSES
        or not all(isinstance(c, str) and len(c) <= MAX_NAME_CHARS for c in names)
    ):
        raise DataError(f"{what}: class_names is not a list of 1 to {MAX_CLASSES} names")
    if record.get("class_names") not in (None, names):
        raise DataError(f"{what}: its {len(names)} class names are not the run's")
    if record.get("n_classes") not in (None, len(names)):
        raise DataError(f"{what}: {len(names)} class names for a run of {record.get('n_classes')}")
    given = manifest.get("input")
    size = given.get("size") if isinstance(given, dict) else None
    if not isinstance(given, dict) or not isinstance(size, list) or len(size) != 2:
        raise DataError(f"{what} has no valid input")
    h, w = (_count(v, f"{what}: input size") for v in size)
    channels = given.get("channels")
    aspect = given.get("aspect", "resized")
    if not isinstance(aspect, str) or aspect not in READ:
        raise DataError(f"{what} gives an unknown aspect")
    if min(h, w) < 1 or channels not in (1, 3) or isinstance(channels, bool):
        raise DataError(f"{what} gives input {h}x{w}x{channels}")
    limit = pixel_limit()
    if limit and h * w > limit:
        raise DataError(
            f"{what} gives input {h}x{w}, above the pixel limit of {limit / 1e6:g} megapixels"
        )
    if not isinstance(manifest.get("config"), dict):
        raise DataError(f"{what} has no settings")


def probe(bundle: Bundle) -> None:
    """Score one blank image of the bundle's input; DataError unless that gives one
    score per class name, none NaN or +infinity. The bundle module's ``PROBE_SIDE``
    (BoVW's) caps the image's sides: describing it costs what the image's size does,
    whatever the bundle holds.
    """
    h, w = bundle.image_size
    side = getattr(_module(get_pipeline(str(bundle.record["pipeline"]))), "PROBE_SIDE", None)
    if side is not None:
        h, w = min(h, side), min(w, side)
    blank = ImageSet(
        images=np.zeros((1, h, w, bundle.channels), np.uint8),
        labels=np.zeros(1, np.int64),
        ids=np.array(["probe"]),
        class_names=tuple(bundle.class_names),
        name=f"probe:{bundle.run_id}",
    )
    scores = np.asarray(bundle.pipeline.decision_scores(blank))
    if scores.shape != (1, len(bundle.class_names)):
        raise DataError(
            f"it gives scores of shape {scores.shape} for {len(bundle.class_names)} classes"
        )
    if np.isnan(scores).any() or np.isposinf(scores).any():  # -inf: a class never seen
        raise DataError("it scores a blank image with NaN or infinity")


EXPORT_FORMATS = ("onnx",)


def exporter(store: ResultStore, run_id: str, fmt: str) -> Any:
    """The function that writes run ``run_id``'s model as ``fmt``: its bundle module's
    ``export_<fmt>(pipeline, path)``. DataError for an unknown run or a pipeline that has
    none (only ConvNets export to ONNX); checked before the bundle is loaded.
    """
    record = store.get_run(run_id)
    spec = get_pipeline(str(record.get("pipeline")))
    found = getattr(_module(spec), f"export_{fmt}", None) if spec.bundle else None
    if found is None:
        raise DataError(
            f"run {run_id} is a {spec.name} run: it cannot be exported as {fmt} (ConvNet runs can)"
        )
    return found
