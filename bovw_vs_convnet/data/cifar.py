"""CIFAR-10 in torchvision's python-pickle layout (``cifar-10-batches-py/``).

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


def parse_batch(content: bytes, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A batch file's bytes as (images uint8 (N, 32, 32, 3), labels int64 (N,)).

    Unpickled with :class:`BatchUnpickler`; anything but a dict of a (N, 3072) uint8
    ``data`` array and N integer ``labels`` (``fine_labels`` for CIFAR-100) is refused.
    """
    try:
        entry = BatchUnpickler(io.BytesIO(content), encoding="latin1").load()
    except Exception as exc:  # untrusted bytes: whatever the unpickler raises is bad data
        raise DataError(f"cannot read CIFAR batch {path}: {exc}") from None
    if not isinstance(entry, dict) or "data" not in entry:
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


def _part(manifest: Manifest, found: dict[str, Path], part: str) -> ImageSet:
    entries = [e for e in manifest.files if e.part == part]
    if not entries:
        raise DataError(f"manifest {manifest.name!r}: no {part} batches listed")
    batches = [read_batch(found[e.path], e) for e in entries]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    if labels.size and not (labels.min() >= 0 and labels.max() < manifest.n_classes):
        raise DataError(
            f"dataset {manifest.name!r}: {part} labels outside 0..{manifest.n_classes - 1}"
        )
    ids = np.char.add(f"{part}/", np.char.zfill(np.arange(len(labels)).astype(str), 5))
    return ImageSet(images, labels, ids, manifest.classes, manifest.name)


def load_cifar10(
    manifest: Manifest, data_dir: str | Path | None = None
) -> tuple[ImageSet, ImageSet]:
    """The official train (50 000) and test (10 000) parts of CIFAR-10, each file verified."""
    found = locate_or_raise(manifest, data_dir)
    return _part(manifest, found, "train"), _part(manifest, found, "test")
