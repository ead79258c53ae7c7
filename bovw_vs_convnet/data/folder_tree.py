"""The files of an ImageFolder tree (``root/class_name/*.png|jpg``, torchvision's layout).

When ``root/train/`` and ``root/test/`` each hold class subfolders, that division is
kept; otherwise the whole tree is one part. Sample ids are POSIX paths relative to
``root``. A tree may come from anywhere, so symbolic links are followed only while
they stay inside ``root``; a link that leads out of it is skipped, and the number
skipped is logged (a warning). Each file is read once, by its resolved path, and
belongs to the class folder it really lies in: a loop (``a/loop -> ..``) or a link
into another class or part adds no image and mislabels none. No pixel is read here.

Only regular files are images: a FIFO, socket or device named ``x.png`` would block
or never end when read, so it is skipped (:func:`image_file_problem`), and so is a
file whose name is not valid UTF-8 (sample ids are text; OpenCV cannot open such a
name); each kind is counted in one warning. :func:`open_image_file` is how every
image file is opened: without blocking, refused unless it is a regular file.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.printable import printable

log = logging.getLogger(__name__)

NOT_UTF8 = "a name that is not UTF-8"
# image_file_problem's reasons, as a warning counts the files skipped for them
SKIPPED = {
    "not a regular file": (
        "file that is not a regular file (a FIFO, socket or device)",
        "files that are not regular files (FIFOs, sockets, devices)",
    ),
    NOT_UTF8: (
        "file or folder whose name is not UTF-8",
        "files or folders whose names are not UTF-8",
    ),
    "missing": ("link to nothing", "links to nothing"),
}


def skipped_count(problem: str, n: int) -> str:
    """``n`` files skipped for ``problem`` (an :func:`image_file_problem`), as words."""
    one, many = SKIPPED[problem]
    return f"{n} {one if n == 1 else many} skipped"


EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_file_problem(path: str | Path) -> str | None:
    """Why ``path`` is not read as an image file (None: it may be).

    ``"not a regular file"`` (a FIFO, socket, device, folder, or a link to one: reading
    it could block or never end), ``"a name that is not UTF-8"`` (sample ids and the
    store are text), ``"missing"``.
    """
    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as lone surrogates
        return NOT_UTF8
    try:
        mode = os.stat(name).st_mode
    except OSError:
        return "missing"
    return None if stat.S_ISREG(mode) else "not a regular file"


def open_image_file(path: str | Path) -> BinaryIO:
    """``path`` opened for reading; DataError unless it is a regular file.

    Opened without blocking (``O_NONBLOCK``: a FIFO does not wait for a writer), then
    checked on the open descriptor (``fstat``), so nothing swapped in between is read.
    Works for any file name, UTF-8 or not (the name goes to the system as bytes).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise DataError(
            f"cannot read image {printable(os.fspath(path))} ({exc.strerror})"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"image {printable(os.fspath(path))} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


@dataclass(frozen=True)
class FolderTree:
    """The files of an ImageFolder tree, before any pixel is read."""

    root: Path
    classes: tuple[str, ...]
    parts: dict[str, list[tuple[Path, int]]]  # "train"/"test" (or "all") -> [(file, label)]


def _inside(path: str, root: str) -> bool:
    """Whether the resolved ``path`` is ``root`` or lies under it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Walk:
    """What walking one tree found: where each file really is, and what was skipped."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)
        self.outside: list[str] = []  # links leading out of the root, not followed
        self.seen: set[str] = set()  # resolved paths of the files kept so far
        self.duplicates = 0  # other paths to a file already kept
        self.skipped: dict[str, list[str]] = {}  # why -> files not read (image_file_problem)

    def class_dirs(self, folder: Path) -> list[str]:
        """Class subfolders of ``folder`` (not hidden; a link out of the root is skipped)."""
        out = []
        for d in folder.iterdir():
            if d.name.startswith(".") or not d.is_dir():
                continue
            if image_file_problem(d) == NOT_UTF8:  # a class name is text
                self.skipped.setdefault(NOT_UTF8, []).append(printable(str(d)))
                continue
            if not _inside(os.path.realpath(d), self.root):
                self.outside.append(str(d))
                continue
            out.append(d.name)
        return sorted(out)

    def files(self, class_dir: Path, homes: dict[str, str], home: str) -> Iterator[Path]:
        """Image files under ``class_dir``, recursively, as torchvision's ``make_dataset``.

        Links are followed while they stay inside the root, each directory once (a
        loop ends there). A file is yielded only where it really lies: ``homes``
        maps the resolved class folders of the tree to their ``part/class`` names,
        and a file whose resolved path is inside another one than ``home`` belongs
        to that one (it is found there); each file once.
        """
        walked: set[str] = set()
        for dirpath, dirs, names in os.walk(class_dir, followlinks=True):
            real_dir = os.path.realpath(dirpath)
            if not _inside(real_dir, self.root):
                self.outside.append(dirpath)
                dirs[:] = []
                continue
            if real_dir in walked:  # a loop, or a second way into one folder
                dirs[:] = []
                continue
            walked.add(real_dir)
            dirs.sort()
            for fname in sorted(names):
                if not fname.lower().endswith(EXTENSIONS):
                    continue
                path = Path(dirpath) / fname
                problem = image_file_problem(path)
                if problem is not None:
                    self.skipped.setdefault(problem, []).append(printable(os.fspath(path)))
                    continue
                # one lstat, not realpath's one per component, for the files that are no links
                real = (
                    os.path.realpath(path) if path.is_symlink() else os.path.join(real_dir, fname)
                )
                if not _inside(real, self.root):
                    self.outside.append(str(path))
                elif _home(real, homes) not in (home, None) or real in self.seen:
                    self.duplicates += 1
                else:
                    self.seen.add(real)
                    yield path


def _home(real: str, homes: dict[str, str]) -> str | None:
    """The ``part/class`` whose resolved folder holds ``real`` (the deepest), or None."""
    folder = os.path.dirname(real)
    while folder not in homes:
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return homes[folder]


def _files(
    walk: _Walk, parts: dict[str, tuple[Path, tuple[str, ...]]]
) -> dict[str, list[tuple[Path, int]]]:
    """``part -> [(file, label)]`` for ``parts`` (``part -> (folder, classes)``), each file once.

    Written here rather than imported: ``torchvision.datasets.folder`` imports torch
    (seconds), which a BoVW run on a folder never needs.
    """
    homes: dict[str, str] = {}
    for part, (folder, classes) in parts.items():
        for cls in classes:  # a class folder linked to another: the first name keeps it
            homes.setdefault(os.path.realpath(folder / cls), f"{part}/{cls}")
    out: dict[str, list[tuple[Path, int]]] = {}
    for part, (folder, classes) in parts.items():
        found: list[tuple[Path, int]] = []
        for label, cls in enumerate(classes):
            class_dir = folder / cls
            if class_dir.is_dir():
                found += [(p, label) for p in walk.files(class_dir, homes, f"{part}/{cls}")]
        out[part] = sorted(found)
    return out


def scan_tree(root: str | Path) -> FolderTree:
    """Find the classes and files of an ImageFolder tree (with or without train/test)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    walk = _Walk(root)
    train, test = root / "train", root / "test"
    probe = _Walk(root)  # whether train/ and test/ hold classes, before counting anything
    train_classes = probe.class_dirs(train) if train.is_dir() else []
    test_classes = probe.class_dirs(test) if test.is_dir() else []
    if train_classes and test_classes:
        classes = tuple(walk.class_dirs(train))
        extra = sorted(set(walk.class_dirs(test)) - set(classes))
        if extra:
            raise DataError(f"image folder {root}: test class {extra[0]!r} is not in train/")
        parts = _files(walk, {"train": (train, classes), "test": (test, classes)})
    else:
        classes = tuple(walk.class_dirs(root))
        parts = _files(walk, {"all": (root, classes)})
    skipped = ""
    if walk.outside:
        skipped = f" ({len(walk.outside)} links leading out of it skipped)"
        log.warning(
            "image folder %s: %d symbolic links lead out of it and were skipped (first: %s)",
            root,
            len(walk.outside),
            walk.outside[0],
        )
    for why, paths in walk.skipped.items():
        log.warning(
            "image folder %s: %s (first: %s)",
            printable(root),
            skipped_count(why, len(paths)),
            paths[0],
        )
    if walk.duplicates:
        log.info("image folder %s: %d more paths to files already read", root, walk.duplicates)
    if len(classes) < 2:
        raise DataError(
            f"image folder {root}: needs at least 2 class subfolders, found {len(classes)}"
            + skipped
        )
    for part, files in parts.items():
        if not files:
            where = part if part != "all" else "it"
            raise DataError(f"image folder {root}: no images in {where}{skipped}")
    return FolderTree(root, classes, parts)
