"""The ImageSet: images, integer labels, stable sample ids and class names, kept together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bovw_vs_convnet.errors import DataError


class LazyImages:
    """Images read from files on demand, for folders too large to hold in memory.

    Indexing with an integer reads one image as a uint8 (H, W, C) array; indexing
    with an array or slice gives another ``LazyImages`` over those files. Every
    image is resized to ``size`` (H, W) and converted to ``channels`` so that
    the set behaves like an N×H×W×C array.
    """

    def __init__(self, paths: Sequence[str | Path], size: tuple[int, int], channels: int) -> None:
        self.paths = [Path(p) for p in paths]
        self.size = (int(size[0]), int(size[1]))
        self.channels = int(channels)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, H, W, C), as for an in-memory array."""
        return (len(self.paths), self.size[0], self.size[1], self.channels)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        """Read, convert and resize image ``i``; a file that cannot be decoded raises DataError."""
        import cv2

        path = self.paths[i]
        flag = cv2.IMREAD_GRAYSCALE if self.channels == 1 else cv2.IMREAD_COLOR
        img = cv2.imread(str(path), flag)
        if img is None:
            raise DataError(f"cannot read image {path} (missing or corrupt)")
        if self.channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if img.shape[:2] != self.size:
            img = cv2.resize(img, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        return img.reshape(self.size[0], self.size[1], self.channels)

    def __getitem__(
        self, index: int | slice | np.ndarray | Sequence[int]
    ) -> np.ndarray | LazyImages:
        if isinstance(index, (int, np.integer)):
            return self.read(int(index))
        idx = np.arange(len(self.paths))[index]
        return LazyImages([self.paths[i] for i in idx], self.size, self.channels)

    def materialize(self) -> np.ndarray:
        """Read every image into one uint8 (N, H, W, C) array."""
        out = np.empty(self.shape, dtype=np.uint8)
        for i in range(len(self.paths)):
            out[i] = self.read(i)
        return out


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A set of labelled images: what every pipeline fits on and scores.

    Attributes:
        images: uint8 array of shape (N, H, W, C), or :class:`LazyImages`.
        labels: int64 array of shape (N,), values in ``range(len(class_names))``.
        ids: array of shape (N,) of stable sample ids (strings), unique in the dataset.
        class_names: the name of each class, indexed by label.
        name: the dataset's name (for records and cache keys).
        mirror_ok: whether a mirror image keeps its class, so that training may flip
            images horizontally (false for digits and letters). Loaders set it from the
            dataset's manifest; True, as for an ImageFolder of photographs, when made here.
        groups: None, or an array of shape (N,) naming each image's group (a font's
            design, for ``glyphs``): images of one group are never on both sides of the
            train/validation split (:func:`~bovw_vs_convnet.data.split.make_split`).
    """

    images: np.ndarray | LazyImages
    labels: np.ndarray
    ids: np.ndarray
    class_names: tuple[str, ...]
    name: str = ""
    mirror_ok: bool = True
    groups: np.ndarray | None = None
    _id_index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.labels.shape != (n,) or self.ids.shape != (n,):
            raise DataError(
                f"ImageSet {self.name!r}: {n} images but labels {self.labels.shape} "
                f"and ids {self.ids.shape}"
            )
        if self.groups is not None and self.groups.shape != (n,):
            raise DataError(f"ImageSet {self.name!r}: {n} images but groups {self.groups.shape}")
        if isinstance(self.images, np.ndarray) and (
            self.images.ndim != 4 or self.images.dtype != np.uint8
        ):
            raise DataError(
                f"ImageSet {self.name!r}: images must be uint8 (N, H, W, C), "
                f"got {self.images.dtype} {self.images.shape}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        """Number of classes of the dataset (not only those present in this subset)."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        h, w, c = self.images.shape[1:]
        return (int(h), int(w), int(c))

    @property
    def channels(self) -> int:
        """Number of channels (1 for grayscale, 3 for RGB)."""
        return self.image_shape[2]

    @property
    def is_lazy(self) -> bool:
        """True when images are read from files on demand."""
        return isinstance(self.images, LazyImages)

    def subset(self, index: np.ndarray | Sequence[int]) -> ImageSet:
        """The images at positions ``index`` (in that order), as a new ImageSet."""
        idx = np.asarray(index, dtype=np.int64)
        return ImageSet(
            images=self.images[idx],
            labels=self.labels[idx],
            ids=self.ids[idx],
            class_names=self.class_names,
            name=self.name,
            mirror_ok=self.mirror_ok,
            groups=None if self.groups is None else self.groups[idx],
        )

    def select_ids(self, ids: Sequence[str] | np.ndarray) -> ImageSet:
        """The images with these sample ids, in the order given."""
        if not self._id_index:
            self._id_index.update({str(s): i for i, s in enumerate(self.ids)})
        try:
            idx = [self._id_index[str(s)] for s in ids]
        except KeyError as exc:
            raise DataError(f"sample id {exc.args[0]!r} is not in dataset {self.name!r}") from None
        return self.subset(idx)

    def array(self) -> np.ndarray:
        """All images as one uint8 (N, H, W, C) array (reads lazy files)."""
        if isinstance(self.images, LazyImages):
            return self.images.materialize()
        return self.images
