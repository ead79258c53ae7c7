"""IDX files (MNIST, Fashion-MNIST), read with ``np.frombuffer`` on the decompressed bytes.

The format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a
type code (0x08 for unsigned bytes), the number of dimensions, then each
dimension as a big-endian int32, then the data in C order.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.locate import locate_or_raise, read_bytes
from bovw_vs_convnet.data.manifest import Manifest
from bovw_vs_convnet.errors import DataError


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an unsigned-byte IDX file into a uint8 array of its shape."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{source}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{source}: IDX type code {data[2]:#04x} unsupported (want 0x08, uint8)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: IDX header truncated")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - header != expected:
        raise DataError(
            f"{source}: IDX data has {len(data) - header} bytes, header says {expected}"
        )
    # a writable copy: torch.from_numpy warns on the read-only buffer of ``bytes``
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) into a uint8 array."""
    return parse_idx(read_bytes(path), str(path))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">i4").tobytes()
    data = header + arr.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def _part(manifest: Manifest, found: dict[str, Path], part: str) -> ImageSet:
    entries = {e.role: e for e in manifest.files if e.part == part}
    if "images" not in entries or "labels" not in entries:
        raise DataError(f"manifest {manifest.name!r}: part {part!r} needs images and labels files")
    images = read_idx(found[entries["images"].path])
    labels = read_idx(found[entries["labels"].path])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"dataset {manifest.name!r} {part}: images {images.shape} and labels "
            f"{labels.shape} do not match"
        )
    if images.shape[1:] != manifest.image_size:
        raise DataError(
            f"dataset {manifest.name!r} {part}: images are {images.shape[1:]}, "
            f"manifest says {manifest.image_size}"
        )
    if labels.size and int(labels.max()) >= manifest.n_classes:
        raise DataError(
            f"dataset {manifest.name!r} {part}: label {int(labels.max())} but only "
            f"{manifest.n_classes} classes"
        )
    n = len(labels)
    ids = np.char.add(f"{part}/", np.char.zfill(np.arange(n).astype(str), 5))
    return ImageSet(
        images=images[..., None],  # (N, H, W, 1)
        labels=labels.astype(np.int64),
        ids=ids,
        class_names=manifest.classes,
        name=manifest.name,
    )


def load_idx(manifest: Manifest, data_dir: str | Path | None = None) -> tuple[ImageSet, ImageSet]:
    """The official train and test parts of an IDX dataset (MNIST layout)."""
    found = locate_or_raise(manifest, data_dir)
    return _part(manifest, found, "train"), _part(manifest, found, "test")
