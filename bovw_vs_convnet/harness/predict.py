"""Predicting with a stored run: image files in, the top classes and their scores out.

:func:`image_paths` expands the files and folders given; :func:`predict_images`
reads them as the run's data was read (the size and channels of its bundle's
``input``: OpenCV, grayscale or RGB, resized with ``INTER_AREA`` as the ImageFolder
reader does; for a run on a folder of mixed sizes, each image kept at its own aspect,
covering and centre-cropped to the run's frame, and readable at its own size for
BoVW), after every header has been checked against the pixel limit, and scores
them with the bundle's fitted pipeline, whose own preprocessing (a ConvNet's pad or
resize and normalisation, BoVW's descriptors and pyramid, HOG's cells) is the run's.

A folder is expanded to its regular image files only: a FIFO, socket or device named
like an image, or a file whose name is not UTF-8, is skipped with a warning (see
:func:`~bovw_vs_convnet.data.folder_tree.image_file_problem`). Images are scored a
chunk at a time, the chunk sized so its decoded pixels stay within
:data:`CHUNK_BYTES`, whatever the run's image size; a failure of the bundle's pipeline
on them is one line (DataError), never a traceback.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bovw_vs_convnet.data.folder_tree import EXTENSIONS, image_file_problem, skipped_count
from bovw_vs_convnet.data.imagefolder import read_headers
from bovw_vs_convnet.data.imageset import ImageSet, LazyImages
from bovw_vs_convnet.errors import BvcError, DataError
from bovw_vs_convnet.harness.bundle import Bundle
from bovw_vs_convnet.harness.metrics import ranked_classes
from bovw_vs_convnet.printable import printable

log = logging.getLogger(__name__)

CHUNK = 256  # images scored at once: memory stays that of one chunk, whatever the folder
CHUNK_BYTES = 64 * 1024**2  # decoded pixels of one chunk, at most (one image at the least)


def image_paths(args: Sequence[Path | str]) -> list[Path]:
    """The image files named, folders expanded (every image file below, sorted; links to
    folders not followed). DataError for a path that does not exist or a folder without
    images.
    """
    out: list[Path] = []
    skipped: dict[str, list[Path]] = {}
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = []
            for root, dirs, files in os.walk(path):  # followlinks=False: no loop, no escape
                dirs.sort()
                for name in sorted(files):
                    if not name.lower().endswith(EXTENSIONS):
                        continue
                    problem = image_file_problem(Path(root) / name)
                    if problem is None:
                        found.append(Path(root) / name)
                    else:
                        skipped.setdefault(problem, []).append(Path(root) / name)
            if not found:
                raise DataError(
                    f"folder {printable(path)} holds no image files ({', '.join(EXTENSIONS)})"
                )
            out += found
        elif path.is_file():  # a named file is read whatever its name (through its bytes)
            out.append(path)
        else:
            raise DataError(f"no image file {printable(path)} (or not a regular file)")
    for problem, paths in skipped.items():
        log.warning("%s (first: %s)", skipped_count(problem, len(paths)), printable(paths[0]))
    if not out:
        raise DataError("no images given")
    return out


@dataclass(frozen=True)
class Prediction:
    """One image's top classes, best first: (label, class name, score)."""

    image: str
    top: list[tuple[int, str, float]]

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict; a score that is not finite (a class never seen) is null."""
        return {
            "image": self.image,
            "top": [
                {"label": label, "class": name, "score": score if math.isfinite(score) else None}
                for label, name, score in self.top
            ],
        }


def read_images(
    bundle: Bundle, paths: Sequence[Path], sizes: Sequence[tuple[int, int]] | None = None
) -> ImageSet:
    """``paths`` as an in-memory ImageSet read as the run's data was (labels are 0).

    A run on images of mixed sizes (``aspect`` kept) gets each image's frame (covered,
    centre-cropped) and, as ``native``, the image at its own size (``sizes``: each
    file's (height, width), from its header).
    """
    kept = bundle.aspect_kept and sizes is not None
    files = LazyImages(list(paths), bundle.image_size, bundle.channels, sizes if kept else None)
    n = len(paths)
    return ImageSet(
        images=files.materialize(),  # DataError names a file that cannot be decoded
        labels=np.zeros(n, dtype=np.int64),
        ids=np.array([str(p) for p in paths]),
        class_names=tuple(bundle.class_names),
        name=f"predict:{bundle.run_id}",
        native=files if kept else None,
    )


def scores_of(bundle: Bundle, paths: Sequence[Path]) -> np.ndarray:
    """(len(paths), n_classes) scores of the run's pipeline for these image files."""
    # every header, against the pixel limit, before any image is decoded
    sizes = [(h, w) for h, w, _ in read_headers(list(paths))]
    h, w = bundle.image_size
    step = max(1, min(CHUNK, CHUNK_BYTES // (h * w * bundle.channels)))
    parts = []
    for i in range(0, len(paths), step):
        images = read_images(bundle, paths[i : i + step], sizes[i : i + step])
        try:
            scores = np.asarray(bundle.pipeline.decision_scores(images), dtype=np.float64)
        except BvcError:
            raise
        except Exception as exc:  # the bundle's code on foreign weights: one line
            raise DataError(
                f"run {bundle.run_id}: its model cannot score these images "
                f"({type(exc).__name__}: {str(exc)[:200]})".splitlines()[0]
            ) from None
        if scores.shape != (len(images), len(bundle.class_names)):
            raise DataError(f"run {bundle.run_id}: its model gives scores of shape {scores.shape}")
        parts.append(scores)
    return np.concatenate(parts) if parts else np.zeros((0, len(bundle.class_names)))


def top_k(
    scores: np.ndarray, class_names: Sequence[str], k: int
) -> list[list[tuple[int, str, float]]]:
    """Each row's ``k`` best (label, name, score), best first; ties keep the lower label."""
    order = ranked_classes(scores, k)  # the metrics' own ranking: ties and NaN alike
    return [
        [(int(c), str(class_names[c]), float(row[c])) for c in idx]
        for row, idx in zip(scores, order, strict=True)
    ]


def predict_images(bundle: Bundle, paths: Sequence[Path], k: int = 5) -> Iterator[Prediction]:
    """The top ``k`` classes of each image, in the order given."""
    paths = list(paths)
    scores = scores_of(bundle, paths)
    for path, top in zip(paths, top_k(scores, bundle.class_names, k), strict=True):
        yield Prediction(str(path), top)
