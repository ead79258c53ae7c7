"""ImageFolder trees: ``root/class_name/*.png|jpg`` (torchvision's layout).

When ``root/train/`` and ``root/test/`` each hold class subfolders, that
division is kept as the official split; otherwise the whole tree is one part
and the common split holds out a stratified test fraction.

A folder whose images all have one size is read as it is (resized, OpenCV
``INTER_AREA``, only to a manifest's ``image_size`` that differs). A folder of
mixed sizes keeps each image at its own aspect (``aspect="kept"``, the default):
the ImageSet's ``native`` reads every image at its own size (BoVW describes it so,
its longer side at most ``max_side``), and its array view is one common frame that
each image covers and is centre-cropped to (torchvision's ``Resize`` of the shorter
side, then ``CenterCrop``): the manifest's ``image_size`` when given, else a square
of the median shorter side. Nothing is stretched. ``aspect="squash"`` resizes
every image to the median height and median width (or ``image_size``).
Channels: 1 when every image is grayscale, else 3.
A tree whose decoded pixels fit the memory budget (:func:`resident_budget`: default
:data:`DEFAULT_RESIDENT_BYTES`, ``$BVC_RESIDENT_MB`` or the ``resident_bytes``
argument change it) is decoded once, in threads, into one uint8 array; a larger one
becomes :class:`LazyImages`, read on demand. The decoded array of a tree of
:data:`CACHE_MIN_FILES` files or more is kept as a plain ``.npy`` (no pickle; read with
``allow_pickle=False``) in the decoded cache (:func:`decoded_cache_dir`), under a key of
the files' paths, sizes and modification times and the common format, so the next run
skips the decoding; a changed, added or removed file changes the key. A checksum of the
array and that key, kept beside it, must match before a cached array is used. Sample ids are
POSIX paths relative to ``root``. A file that cannot be decoded raises DataError naming it.

A tree may come from anywhere, so its files are found as :mod:`.folder_tree` says
(symbolic links followed only inside ``root``, each file once, in the class folder it
really lies in), and every image's header is read before any pixel (a header costs
little next to a decode): an image of more than the pixel limit (:func:`pixel_limit`:
default :data:`DEFAULT_MAX_PIXELS`, 40 megapixels; ``$BVC_MAX_PIXELS`` or the
``max_pixels`` argument change it, 0 turns it off) is refused with a DataError naming
the file, before a decompression bomb is decoded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

from bovw_vs_convnet.data.folder_tree import FolderTree, open_image_file
from bovw_vs_convnet.data.imageset import ImageSet, LazyImages
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.file_limits import LimitError, load_npy, read_json_file
from bovw_vs_convnet.printable import printable
from bovw_vs_convnet.progress import ProgressMode, track

log = logging.getLogger(__name__)

# Decoded bytes (N*H*W*C) up to which a tree is held in memory: the 23 000-image
# 32x32 RGB glyph folder is 70 MB, Fashion-MNIST-sized folders 55 MB, ImageNet's
# training set at 64x64 15 GB (lazy).
DEFAULT_RESIDENT_BYTES = 2 * 1024**3
RESIDENT_ENV = "BVC_RESIDENT_MB"
CACHE_MIN_FILES = 2_000  # trees of fewer files decode in a moment: no cache file
CACHE_FORMAT = 1
ASPECTS = ("kept", "squash")
PROGRESS_THRESHOLD = 1_000  # images; a quicker read shows no progress
HEADER_SAMPLE = 2_000  # image headers read to choose the common size of a large tree
MAX_PIXELS_ENV = "BVC_MAX_PIXELS"
# 40 megapixels: above any photograph a classifier is trained on (a 7952x5304 camera
# frame is 42 MP), far below what a decoder can be made to allocate (a 20000x20000
# PNG of a few kilobytes decodes to 1.2 GB).
DEFAULT_MAX_PIXELS = 40_000_000


def _env_number(name: str) -> tuple[str, float]:
    """``$name``'s text (stripped; "" when unset) and its value (-1.0 when not a number)."""
    text = os.environ.get(name, "").strip()
    try:
        return text, float(text)
    except ValueError:
        return text, -1.0


def pixel_limit(value: int | None = None) -> int:
    """The pixel limit per image: ``value``, else ``$BVC_MAX_PIXELS``, else the default.

    0 means no limit of ours (Pillow's own decompression-bomb limit, 179 megapixels,
    still applies and is reported the same way). A bad ``$BVC_MAX_PIXELS`` is a DataError.
    """
    if value is None:
        text, number = _env_number(MAX_PIXELS_ENV)
        if not text:
            return DEFAULT_MAX_PIXELS
        if not (number >= 0 and number.is_integer()):
            raise DataError(f"${MAX_PIXELS_ENV} must be a whole number of pixels, got {text!r}")
        value = int(number)
    if value < 0:
        raise DataError(f"the pixel limit must be >= 0 (0: none), got {value}")
    return value


def resident_budget(value: int | None = None) -> int:
    """Bytes of decoded pixels a tree may take in memory: ``value``, ``$BVC_RESIDENT_MB``
    (mebibytes), else :data:`DEFAULT_RESIDENT_BYTES`. A bad ``$BVC_RESIDENT_MB`` is a DataError.
    """
    if value is not None:
        if value < 0:
            raise DataError(f"the resident memory budget must be >= 0 bytes, got {value}")
        return int(value)
    text, mb = _env_number(RESIDENT_ENV)
    if not text:
        return DEFAULT_RESIDENT_BYTES
    if not (mb >= 0 and math.isfinite(mb)):
        raise DataError(f"${RESIDENT_ENV} must be a number of mebibytes >= 0, got {text!r}")
    return int(mb * 1024**2)


def decoded_bytes(n_images: int, size: tuple[int, int], channels: int) -> int:
    """Bytes of ``n_images`` decoded uint8 images of ``size`` (H, W) and ``channels``."""
    return int(n_images) * int(size[0]) * int(size[1]) * int(channels)


def fits_in_memory(
    n_images: int, size: tuple[int, int], channels: int, budget: int | None = None
) -> bool:
    """Whether a tree's decoded pixels fit the resident budget (:func:`resident_budget`)."""
    return decoded_bytes(n_images, size, channels) <= resident_budget(budget)


def decoded_cache_dir() -> Path:
    """Where decoded arrays are kept: ``$BVC_CACHE_DIR/decoded``, else the user's cache folder
    (``$XDG_CACHE_HOME/bvc/decoded``, ``~/.cache/bvc/decoded``)."""
    base = os.environ.get("BVC_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "decoded"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "bvc" / "decoded"


def decoded_key(
    paths: list[Path], size: tuple[int, int], channels: int, cropped: bool = False
) -> str:
    """The cache key of these files decoded at ``size`` and ``channels``.

    sha256 of every file's absolute path, size in bytes and modification time (ns),
    the format and :data:`CACHE_FORMAT`: touching, replacing, adding or removing a file
    gives another key. ``cropped``: images of mixed sizes centre-cropped to ``size``
    at their aspect (a key of its own; squashed arrays keep theirs). One ``stat`` a
    file, no read.
    """
    fmt = f"{CACHE_FORMAT}|{size[0]}x{size[1]}x{channels}" + ("|crop" if cropped else "")
    digest = hashlib.sha256(fmt.encode())
    for p in paths:
        st = os.stat(p)
        digest.update(f"\n{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def read_cached(
    images: LazyImages, cache_dir: Path | None, progress: ProgressMode | bool = "auto"
) -> np.ndarray:
    """:func:`read_all`, through the decoded cache (``cache_dir``; None: no cache).

    Beside each cached ``<key>.npy`` a ``<key>.json`` holds the sha256 of the array
    (with its shape and dtype) and the key of the source files' list it was decoded
    from. A cached array is used only when its header has the expected shape and dtype
    (checked before it is read, :func:`~bovw_vs_convnet.file_limits.check_npy`) and both
    checksums match; otherwise (a replaced, damaged or moved file) a warning says so and
    the files are decoded again and the cache rewritten (temporary files, then renames).
    A cache that cannot be written is logged and skipped: the run goes on.
    """
    if cache_dir is None:
        return read_all(images, progress=progress)
    key = decoded_key(images.paths, images.size, images.channels, images.aspect_kept)
    path = cache_dir / f"{key}.npy"
    if path.exists():
        arr = _load_checked(path, key, images.shape)
        if arr is not None:
            log.info("decoded images from cache %s", path)
            return arr
    arr = read_all(images, progress=progress)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _save_checked(path, key, arr)
    except OSError as exc:
        log.warning("cannot write the decoded cache in %s: %s", cache_dir, exc)
    return arr


def _array_sha256(arr: np.ndarray) -> str:
    digest = hashlib.sha256(f"{arr.dtype.str}|{arr.shape}|".encode())
    digest.update(np.ascontiguousarray(arr).data)
    return digest.hexdigest()


def _load_checked(path: Path, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array at ``path`` if it is what ``key`` decodes to; None (with a warning)."""
    sums = path.with_suffix(".json")
    try:
        arr = load_npy(path, kinds="u", ndim=len(shape), max_bytes=math.prod(shape))
        if arr.shape != shape or arr.dtype != np.uint8:
            raise LimitError(f"shape {arr.shape} {arr.dtype}, not {shape} uint8")
        meta = read_json_file(sums, max_bytes=4096) if sums.exists() else None
    except (OSError, ValueError) as exc:
        log.warning("decoded cache %s unreadable (%s); decoding again", path, exc)
        return None
    if meta is None:  # written before the cache kept checksums
        log.info("decoded cache %s has no checksums; decoding again", path)
        return None
    if not isinstance(meta, dict) or meta.get("files") != key:
        log.warning("decoded cache %s is not of these files; decoding again", path)
        return None
    if meta.get("array_sha256") != _array_sha256(arr):
        log.warning("decoded cache %s does not match its checksum; decoding again", path)
        return None
    return arr


def _save_checked(path: Path, key: str, arr: np.ndarray) -> None:
    """Write ``arr`` and its checksums beside it, each through a temporary file and a rename."""
    meta = json.dumps({"format": CACHE_FORMAT, "files": key, "array_sha256": _array_sha256(arr)})
    for target, write in (
        (path, lambda fh: np.save(fh, arr, allow_pickle=False)),
        (path.with_suffix(".json"), lambda fh: fh.write(meta.encode())),
    ):
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=target.suffix + ".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _too_large(path: Path, pixels: float, limit: int) -> DataError:
    return DataError(
        f"image {printable(path)} has {pixels / 1e6:.1f} megapixels, above the limit of "
        f"{limit / 1e6:g} (${MAX_PIXELS_ENV} sets it; 0: no limit)"
    )


def _header(path: Path, limit: int = 0) -> tuple[int, int, bool]:
    """(height, width, is_grayscale) from the file header (no full decode).

    An image of more than ``limit`` pixels (0: no limit) is a DataError naming it;
    so is one above Pillow's own decompression-bomb limit, which Pillow refuses
    before it gives the size.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 megapixels; the limit is checked here, in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_image_file(path) as fh, Image.open(fh) as im:  # a regular file only
                w, h = im.size
                gray = im.mode in ("1", "L", "I", "I;16", "F", "LA")
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = float(found.group(1)) if found else float("nan")
        raise _too_large(path, pixels, limit or 2 * (Image.MAX_IMAGE_PIXELS or 0)) from None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(
            f"cannot read image {printable(path)} (corrupt or not an image: {exc})"
        ) from None
    if limit and h * w > limit:
        raise _too_large(path, h * w, limit)
    return h, w, gray


def read_headers(paths: list[Path], limit: int | None = None) -> list[tuple[int, int, bool]]:
    """The header of every image, (height, width, is_grayscale); none above the pixel limit.

    ``limit``: pixels per image (None: :func:`pixel_limit`). Every header is read, not
    a sample, so that no image is decoded before its size is known.
    """
    pixels = pixel_limit(limit)
    return [_header(p, pixels) for p in paths]


def common_format(
    paths: list[Path],
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    headers: list[tuple[int, int, bool]] | None = None,
) -> tuple[tuple[int, int], int]:
    """The common (height, width) and channel count for these images.

    Size: ``image_size`` when given, else the median of the (sampled) headers.
    Channels: ``channels`` when given, else 1 when every sampled image is grayscale, else 3.
    ``headers``: those of ``paths`` when read already (:func:`read_headers`); the
    same sample of them is used, so the common size is what it always was.
    """
    if image_size is not None and channels is not None:
        return image_size, channels
    step = max(1, len(paths) // HEADER_SAMPLE)
    heads = headers[::step] if headers is not None else [_header(p) for p in paths[::step]]
    if image_size is None:
        hs = np.array([h for h, _, _ in heads])
        ws = np.array([w for _, w, _ in heads])
        image_size = (int(np.median(hs)), int(np.median(ws)))
    if channels is None:
        channels = 1 if all(g for _, _, g in heads) else 3
    return image_size, channels


def mixed_frame(
    headers: list[tuple[int, int, bool]],
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> tuple[tuple[int, int], int]:
    """The common frame and channels of images of mixed sizes kept at their aspect.

    Frame: ``image_size`` when given, else a square of the median shorter side
    (torchvision's ``Resize(S)`` + ``CenterCrop(S)``: each image's shorter side
    becomes S, the middle S × S is kept). Channels as :func:`common_format`.
    """
    step = max(1, len(headers) // HEADER_SAMPLE)
    heads = headers[::step]
    if image_size is None:
        side = int(np.median([min(h, w) for h, w, _ in heads]))
        image_size = (side, side)
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
    max_pixels: int | None = None,
    resident_bytes: int | None = None,
    cache_dir: Path | bool | None = True,
    aspect: str = "kept",
) -> tuple[dict[str, ImageSet], tuple[int, int], int]:
    """Read each part of ``tree`` into an ImageSet; returns (parts, (H, W), channels).

    Images of mixed sizes: with ``aspect="kept"`` each ImageSet has ``native`` (every
    image at its own size) and (H, W) is the common frame they are centre-cropped to
    (:func:`mixed_frame`); ``"squash"`` resizes them to (H, W) as before. A folder of
    one size is read the same either way.

    ``lazy=None`` reads lazily only when the decoded pixels exceed the memory budget
    (``resident_bytes``; None: :func:`resident_budget`). A resident tree of
    :data:`CACHE_MIN_FILES` files or more goes through the decoded cache: ``cache_dir``
    True is :func:`decoded_cache_dir`, a path that folder (for any number of files),
    False or None no cache. ``mirror_ok``
    is carried on each ImageSet (see :class:`~bovw_vs_convnet.data.imageset.ImageSet`).
    Every header is read first; an image above ``max_pixels`` (None:
    :func:`pixel_limit`) is a DataError naming it.
    """
    if aspect not in ASPECTS:
        raise DataError(f"aspect must be one of {', '.join(ASPECTS)}, got {aspect!r}")
    all_paths = [p for files in tree.parts.values() for p, _ in files]
    headers = read_headers(all_paths, max_pixels)
    mixed = aspect == "kept" and len({(h, w) for h, w, _ in headers}) > 1
    if mixed:
        size, channels = mixed_frame(headers, image_size, channels)
        log.info("image folder %s: mixed sizes kept at their aspect, frame %dx%d", tree.root, *size)
    else:
        size, channels = common_format(all_paths, image_size, channels, headers)
    native_of = {p: (h, w) for p, (h, w, _) in zip(all_paths, headers, strict=True)}
    if lazy is None:
        lazy = not fits_in_memory(len(all_paths), size, channels, resident_bytes)
        mb = decoded_bytes(len(all_paths), size, channels) / 1e6
        how = "lazy" if lazy else "resident"
        log.info("image folder %s: %.0f MB decoded, %s", tree.root, mb, how)
    cache: Path | None = None
    if cache_dir is True:
        cache = decoded_cache_dir() if len(all_paths) >= CACHE_MIN_FILES else None
    elif isinstance(cache_dir, Path):
        cache = cache_dir
    out: dict[str, ImageSet] = {}
    for part, files in tree.parts.items():
        paths = [p for p, _ in files]
        sizes = [native_of[p] for p in paths] if mixed else None
        files_view = LazyImages(paths, size, channels, sizes)
        images: np.ndarray | LazyImages = files_view if lazy else read_cached(files_view, cache)
        labels = np.array([y for _, y in files], dtype=np.int64)
        ids = np.array([p.relative_to(tree.root).as_posix() for p in paths])
        native = files_view if mixed else None
        out[part] = ImageSet(
            images, labels, ids, tree.classes, name, mirror_ok=mirror_ok, native=native
        )
    return out, size, channels
