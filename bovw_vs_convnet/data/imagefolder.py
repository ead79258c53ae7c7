"""ImageFolder trees: ``root/class_name/*.png|jpg`` (torchvision's layout).

When ``root/train/`` and ``root/test/`` each hold class subfolders, that
division is kept as the official split; otherwise the whole tree is one part
and the common split holds out a stratified test fraction.

Images of different sizes are resized (OpenCV ``INTER_AREA``) to one common
size: the manifest's ``image_size`` when given, else the median height and
median width of the images. Channels: 1 when every image is grayscale, else 3.
Up to :data:`LAZY_THRESHOLD` images are read into memory; larger trees become
:class:`LazyImages`, read on demand. Sample ids are POSIX paths relative to
``root``. A file that cannot be decoded raises DataError naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet, LazyImages
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.progress import ProgressMode, track

LAZY_THRESHOLD = 20_000  # images; above this a tree is read lazily
PROGRESS_THRESHOLD = 1_000  # images; a quicker read shows no progress
HEADER_SAMPLE = 2_000  # image headers read to choose the common size of a large tree
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class FolderTree:
    """The files of an ImageFolder tree, before any pixel is read."""

    root: Path
    classes: tuple[str, ...]
    parts: dict[str, list[tuple[Path, int]]]  # "train"/"test" (or "all") -> [(file, label)]


def _class_dirs(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _files(folder: Path, classes: tuple[str, ...]) -> list[tuple[Path, int]]:
    """Image files under each class folder (recursively), as torchvision's ``make_dataset``.

    Written here rather than imported: ``torchvision.datasets.folder`` imports torch
    (seconds), which a BoVW run on a folder never needs.
    """
    out: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        class_dir = folder / cls
        if not class_dir.is_dir():
            continue
        for dirpath, _dirs, names in sorted(os.walk(class_dir, followlinks=True)):
            for fname in sorted(names):
                if fname.lower().endswith(EXTENSIONS):
                    out.append((Path(dirpath) / fname, label))
    return sorted(out)


def scan_tree(root: str | Path) -> FolderTree:
    """Find the classes and files of an ImageFolder tree (with or without train/test)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    train, test = root / "train", root / "test"
    if train.is_dir() and test.is_dir() and _class_dirs(train) and _class_dirs(test):
        classes = tuple(_class_dirs(train))
        extra = sorted(set(_class_dirs(test)) - set(classes))
        if extra:
            raise DataError(f"image folder {root}: test class {extra[0]!r} is not in train/")
        parts = {"train": _files(train, classes), "test": _files(test, classes)}
    else:
        classes = tuple(_class_dirs(root))
        parts = {"all": _files(root, classes)}
    if len(classes) < 2:
        raise DataError(
            f"image folder {root}: needs at least 2 class subfolders, found {len(classes)}"
        )
    for part, files in parts.items():
        if not files:
            raise DataError(f"image folder {root}: no images in {part if part != 'all' else 'it'}")
    return FolderTree(root, classes, parts)


def _header(path: Path) -> tuple[int, int, bool]:
    """(height, width, is_grayscale) from the file header (no full decode)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            gray = im.mode in ("1", "L", "I", "I;16", "F", "LA")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"cannot read image {path} (corrupt or not an image: {exc})") from None
    return h, w, gray


def common_format(
    paths: list[Path], image_size: tuple[int, int] | None = None, channels: int | None = None
) -> tuple[tuple[int, int], int]:
    """The common (height, width) and channel count for these images.

    Size: ``image_size`` when given, else the median of the (sampled) headers.
    Channels: ``channels`` when given, else 1 when every sampled image is grayscale, else 3.
    """
    if image_size is not None and channels is not None:
        return image_size, channels
    step = max(1, len(paths) // HEADER_SAMPLE)
    heads = [_header(p) for p in paths[::step]]
    if image_size is None:
        hs = np.array([h for h, _, _ in heads])
        ws = np.array([w for _, w, _ in heads])
        image_size = (int(np.median(hs)), int(np.median(ws)))
    if channels is None:
        channels = 1 if all(g for _, _, g in heads) else 3
    return image_size, channels


def read_all(
    images: LazyImages, workers: int | None = None, progress: ProgressMode | bool = "auto"
) -> np.ndarray:
    """Decode every file into one uint8 (N, H, W, C) array, in threads (OpenCV frees the GIL).

    Shows its progress (a bar on a terminal, a closing line elsewhere; see
    :mod:`bovw_vs_convnet.progress`) for more than :data:`PROGRESS_THRESHOLD` images.
    """
    from concurrent.futures import ThreadPoolExecutor

    out = np.empty(images.shape, dtype=np.uint8)

    def read_one(i: int) -> None:
        out[i] = images.read(i)

    workers = workers or min(8, os.cpu_count() or 1)
    n = len(images)
    mode = progress if n > PROGRESS_THRESHOLD else "none"
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = pool.map(read_one, range(n))
        for _ in track(done, total=n, desc="reading images", mode=mode, unit="img"):
            pass  # consuming the results re-raises the first DataError (an undecodable file)
    return out


def load_tree(
    tree: FolderTree,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    lazy: bool | None = None,
    name: str = "",
    mirror_ok: bool = True,
) -> tuple[dict[str, ImageSet], tuple[int, int], int]:
    """Read each part of ``tree`` into an ImageSet; returns (parts, (H, W), channels).

    ``lazy=None`` reads lazily only above :data:`LAZY_THRESHOLD` images; ``mirror_ok``
    is carried on each ImageSet (see :class:`~bovw_vs_convnet.data.imageset.ImageSet`).
    """
    all_paths = [p for files in tree.parts.values() for p, _ in files]
    size, channels = common_format(all_paths, image_size, channels)
    if lazy is None:
        lazy = len(all_paths) > LAZY_THRESHOLD
    out: dict[str, ImageSet] = {}
    for part, files in tree.parts.items():
        paths = [p for p, _ in files]
        files_view = LazyImages(paths, size, channels)
        images: np.ndarray | LazyImages = files_view if lazy else read_all(files_view)
        labels = np.array([y for _, y in files], dtype=np.int64)
        ids = np.array([p.relative_to(tree.root).as_posix() for p in paths])
        out[part] = ImageSet(images, labels, ids, tree.classes, name, mirror_ok=mirror_ok)
    return out, size, channels
