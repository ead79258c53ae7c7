"""CIFAR-10 and CIFAR-100 in the official python-pickle layouts.

CIFAR-10: ``cifar-10-batches-py/`` (``data_batch_1`` .. ``_5``, ``test_batch``);
CIFAR-100: ``cifar-100-python/{train,test,meta}``, whose fine labels are the classes
and whose coarse labels (the 20 superclasses) are metadata: the manifest's
``params.coarse_of`` maps each fine class to its superclass, and every image's coarse
label is checked against it when the set is read (:func:`coarse_labels` gives them).

Krizhevsky (2009), "Learning Multiple Layers of Features from Tiny Images".
Each batch is a pickled dict with ``data`` (N, 3072) uint8 in channel-first
order and ``labels``, read as torchvision's ``CIFAR10`` reads it, with two
differences, because a pickle can run code when it is loaded and a data folder
is often someone else's download:

- each batch is checked against the manifest's checksum (md5 or sha256) before
  anything of it is unpickled, on the very bytes that are then unpickled;
- it is unpickled by :class:`BatchUnpickler`, which admits only what a batch
  holds (dicts, lists, strings, numbers and numpy arrays): a pickle naming any
  other callable is refused with a DataError instead of running it.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.locate import locate_or_raise, read_bytes, verify_file
from bovw_vs_convnet.data.manifest import FileEntry, Manifest
from bovw_vs_convnet.errors import DataError

_SAMPLE = np.zeros(1, dtype=np.uint8)
# The only globals a batch names: numpy's array rebuilders (under the module names of
# the numpy that pickled it: numpy.core before 2.0, numpy._core since), ndarray and
# dtype, and codecs.encode (how Python 3 pickles bytes under protocol 2).
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _SAMPLE.__reduce__()[0],
    ("numpy._core.multiarray", "_reconstruct"): _SAMPLE.__reduce__()[0],
    ("numpy.core.numeric", "_frombuffer"): _SAMPLE.__reduce_ex__(5)[0],
    ("numpy._core.numeric", "_frombuffer"): _SAMPLE.__reduce_ex__(5)[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class BatchUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR batches: any global outside :data:`ALLOWED_GLOBALS` is refused.

    A pickle calls code only through the globals it names (``find_class``), so
    refusing every other one means loading runs nothing but numpy's own array
    rebuilding (Python's documentation, "Restricting Globals").
    """

    def find_class(self, module: str, name: str) -> Any:
        """The allowed global ``module.name``; UnpicklingError for anything else."""
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it calls {module}.{name}, which a CIFAR batch never holds (refused, not run)"
            ) from None


def unpickle(content: bytes, path: Path) -> dict[str, Any]:
    """A CIFAR file's bytes as the dict it holds, unpickled by :class:`BatchUnpickler`."""
    try:
        entry = BatchUnpickler(io.BytesIO(content), encoding="latin1").load()
    except Exception as exc:  # untrusted bytes: whatever the unpickler raises is bad data
        raise DataError(f"cannot read CIFAR batch {path}: {exc}") from None
    if not isinstance(entry, dict):
        raise DataError(f"cannot read CIFAR batch {path}: not a dict")
    return entry


def parse_batch(content: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A batch file's bytes as (images uint8 (N, 32, 32, 3), labels int64 (N,)).

    Unpickled with :class:`BatchUnpickler`; anything but a dict of a (N, 3072) uint8
    ``data`` array and N integer ``labels`` (``fine_labels`` for CIFAR-100) is refused.
    """
    return batch_arrays(unpickle(content, path), path)


def batch_arrays(entry: dict[str, Any], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An unpickled batch's (images uint8 (N, 32, 32, 3), labels int64 (N,)), checked."""
    if "data" not in entry:
        raise DataError(f"cannot read CIFAR batch {path}: not a dict with 'data'")
    data = entry["data"]
    labels_raw = entry.get("labels", entry.get("fine_labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"cannot read CIFAR batch {path}: 'data' is not a uint8 (N, 3072) array")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"cannot read CIFAR batch {path}: rows of {data.shape[1]} bytes, not 3072")
    if not isinstance(labels_raw, (list, np.ndarray)) or len(labels_raw) != len(data):
        raise DataError(f"cannot read CIFAR batch {path}: no label for each of its images")
    if not all(isinstance(y, (int, np.integer)) and not isinstance(y, bool) for y in labels_raw):
        raise DataError(f"cannot read CIFAR batch {path}: labels are not integers")
    labels = np.asarray(labels_raw, dtype=np.int64)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, H, W, C)
    return np.ascontiguousarray(images), labels


def read_batch(path: Path, entry: FileEntry | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch file as (images uint8 (N, 32, 32, 3), labels int64 (N,)).

    With ``entry`` (its manifest line), the file's checksums are verified before
    anything is unpickled; a mismatch raises DataError and nothing is loaded.
    """
    content = read_bytes(path)
    if entry is not None:
        verify_file(entry, path, content)
    return parse_batch(content, path)


def _check_labels(manifest: Manifest, labels: np.ndarray, part: str) -> None:
    """Refuse labels outside the manifest's classes."""
    if labels.size and not (labels.min() >= 0 and labels.max() < manifest.n_classes):
        raise DataError(
            f"dataset {manifest.name!r}: {part} labels outside 0..{manifest.n_classes - 1}"
        )


def _part_ids(part: str, n: int) -> np.ndarray:
    """Sample ids ``<part>/00042`` of a part's ``n`` images, in file order."""
    return np.char.add(f"{part}/", np.char.zfill(np.arange(n).astype(str), 5))


def _part(manifest: Manifest, found: dict[str, Path], part: str) -> ImageSet:
    entries = [e for e in manifest.files if e.part == part]
    if not entries:
        raise DataError(f"manifest {manifest.name!r}: no {part} batches listed")
    batches = [read_batch(found[e.path], e) for e in entries]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    _check_labels(manifest, labels, part)
    return ImageSet(images, labels, _part_ids(part, len(labels)), manifest.classes, manifest.name)


def load_cifar10(
    manifest: Manifest, data_dir: str | Path | None = None
) -> tuple[ImageSet, ImageSet]:
    """The official train (50 000) and test (10 000) parts of CIFAR-10, each file verified."""
    found = locate_or_raise(manifest, data_dir)
    return _part(manifest, found, "train"), _part(manifest, found, "test")


def _names(entry: dict[str, Any], key: str, path: Path) -> list[str]:
    names = entry.get(key)
    if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
        raise DataError(f"cannot read CIFAR-100 meta {path}: no list of {key}")
    return [n.decode() if isinstance(n, bytes) else n for n in names]


def coarse_map(manifest: Manifest) -> tuple[tuple[str, ...], np.ndarray]:
    """(coarse class names, the coarse label of each fine label) from the manifest's params."""
    coarse = tuple(str(c) for c in manifest.params.get("coarse_classes", ()))
    of = dict(manifest.params.get("coarse_of", {}))
    missing = [c for c in manifest.classes if of.get(c) not in coarse]
    if not coarse or missing:
        raise DataError(
            f"manifest {manifest.name!r}: params.coarse_of names no coarse class of "
            f"params.coarse_classes for {missing[0] if missing else 'any class'!r}"
        )
    return coarse, np.array([coarse.index(of[c]) for c in manifest.classes], dtype=np.int64)


def coarse_labels(images: ImageSet, manifest: Manifest) -> np.ndarray:
    """The coarse label (superclass index into ``params.coarse_classes``) of every image."""
    return coarse_map(manifest)[1][images.labels]


def _cifar100_part(manifest: Manifest, path: Path, entry: FileEntry, part: str) -> ImageSet:
    """One CIFAR-100 file (``train`` or ``test``), verified, unpickled, coarse labels checked."""
    content = read_bytes(path)
    verify_file(entry, path, content)  # before any unpickling, on the bytes then unpickled
    batch = unpickle(content, path)
    if "fine_labels" not in batch:
        raise DataError(f"cannot read CIFAR-100 file {path}: no 'fine_labels'")
    images, labels = batch_arrays(batch, path)
    _check_labels(manifest, labels, part)
    raw = batch.get("coarse_labels")
    if not isinstance(raw, list) or len(raw) != len(labels):
        raise DataError(f"cannot read CIFAR-100 file {path}: no coarse label for each image")
    coarse_names, coarse_of = coarse_map(manifest)
    wrong = np.flatnonzero(np.asarray(raw, dtype=np.int64) != coarse_of[labels])
    if wrong.size:
        i = int(wrong[0])
        raise DataError(
            f"dataset {manifest.name!r}: {part} image {i} ({manifest.classes[labels[i]]!r}) has "
            f"coarse label {raw[i]}, the manifest says {coarse_names[coarse_of[labels[i]]]!r}"
        )
    return ImageSet(images, labels, _part_ids(part, len(labels)), manifest.classes, manifest.name)


def load_cifar100(
    manifest: Manifest, data_dir: str | Path | None = None
) -> tuple[ImageSet, ImageSet]:
    """The official train (50 000) and test (10 000) parts of CIFAR-100, each file verified.

    ``meta``'s fine and coarse label names must be the manifest's classes and
    ``params.coarse_classes``, in order (labels index them).
    """
    found = locate_or_raise(manifest, data_dir)
    by_part = {e.part: e for e in manifest.files}
    for part in ("train", "test", "meta"):
        if part not in by_part:
            raise DataError(f"manifest {manifest.name!r}: no {part} file listed")
    meta_path = found[by_part["meta"].path]
    content = read_bytes(meta_path)
    verify_file(by_part["meta"], meta_path, content)
    meta = unpickle(content, meta_path)
    coarse_names, _ = coarse_map(manifest)
    for key, expected in (
        ("fine_label_names", manifest.classes),
        ("coarse_label_names", coarse_names),
    ):
        if tuple(_names(meta, key, meta_path)) != tuple(expected):
            raise DataError(
                f"dataset {manifest.name!r}: {meta_path} {key} differ from the manifest's"
            )
    train = _cifar100_part(manifest, found[by_part["train"].path], by_part["train"], "train")
    test = _cifar100_part(manifest, found[by_part["test"].path], by_part["test"], "test")
    return train, test
