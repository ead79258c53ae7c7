"""The ImageSet: images, integer labels, stable sample ids and class names, kept together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bovw_vs_convnet.data.folder_tree import open_image_file
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.printable import printable


def cover_crop(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` (H, W[, C]) resized to cover ``size`` (h, w) at its own aspect, then centre-cropped.

    torchvision's test transform (``Resize`` of the shorter side, ``CenterCrop``): the
    image is scaled by ``max(h / H, w / W)`` (OpenCV ``INTER_AREA`` when shrinking,
    ``INTER_LINEAR`` when enlarging) and the middle ``h`` × ``w`` kept; never stretched.
    """
    import cv2

    h, w = size
    ih, iw = img.shape[:2]
    if (ih, iw) == (h, w):
        return img
    f = max(h / ih, w / iw)
    rh, rw = max(h, round(ih * f)), max(w, round(iw * f))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    big = cv2.resize(img, (rw, rh), interpolation=interp) if (rh, rw) != (ih, iw) else img
    top, left = (rh - h) // 2, (rw - w) // 2
    return np.ascontiguousarray(big[top : top + h, left : left + w])


def fit_side(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) of an image whose longer side is brought down to ``max_side`` at its
    own aspect (unchanged when it is no longer, or ``max_side`` is None).
    """
    if max_side is None or max(h, w) <= max_side:
        return h, w
    f = max_side / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


class LazyImages:
    """Images read from files on demand, for folders too large to hold in memory.

    Indexing with an integer reads one image as a uint8 (H, W, C) array; indexing
    with an array or slice gives another ``LazyImages`` over those files. Every
    image is brought to ``size`` (H, W) and converted to ``channels`` so that
    the set behaves like an N×H×W×C array: resized to it (squashed, as before
    images kept their aspect) when ``native_sizes`` is None, which is how a folder
    of images of one size is read (nothing is resized then); with ``native_sizes``
    (each file's own (H, W), from its header) the images are of mixed sizes and
    ``size`` is a common frame that each image covers at its own aspect and is
    centre-cropped to (:func:`cover_crop`). :meth:`read_native` gives an image at
    its own aspect, for pipelines that take images of any size (BoVW).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        size: tuple[int, int],
        channels: int,
        native_sizes: Sequence[tuple[int, int]] | np.ndarray | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.size = (int(size[0]), int(size[1]))
        self.channels = int(channels)
        self.native_sizes: np.ndarray | None = None
        if native_sizes is not None:
            sizes = np.asarray(native_sizes, dtype=np.int64).reshape(-1, 2)
            if len(sizes) != len(self.paths):
                raise DataError(f"{len(sizes)} image sizes for {len(self.paths)} files")
            self.native_sizes = sizes

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, H, W, C), as for an in-memory array."""
        return (len(self.paths), self.size[0], self.size[1], self.channels)

    @property
    def aspect_kept(self) -> bool:
        """Whether the images are of mixed sizes, each kept at its own aspect."""
        return self.native_sizes is not None

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, i: int) -> np.ndarray:
        import cv2

        path = self.paths[i]
        flag = cv2.IMREAD_GRAYSCALE if self.channels == 1 else cv2.IMREAD_COLOR
        # read through Python, decoded from the bytes: only a regular file is opened, never
        # blocking, and a name that is not UTF-8 never reaches OpenCV (imread crashes on it)
        with open_image_file(path) as fh:
            data = np.frombuffer(fh.read(), np.uint8)
        img = cv2.imdecode(data, flag) if data.size else None
        if img is None:
            raise DataError(f"cannot read image {printable(path)} (missing or corrupt)")
        if self.channels == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return img

    def read(self, i: int) -> np.ndarray:
        """Read, convert and bring image ``i`` to ``size``; a file that cannot be decoded
        raises DataError.
        """
        import cv2

        img = self._decode(i)
        if self.native_sizes is not None:
            img = cover_crop(img, self.size)
        elif img.shape[:2] != self.size:
            img = cv2.resize(img, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        return img.reshape(self.size[0], self.size[1], self.channels)

    def native_shape(self, i: int, max_side: int | None = None) -> tuple[int, int, int]:
        """(H, W, C) of :meth:`read_native` ``(i, max_side)``, from the header (no read)."""
        if self.native_sizes is None:
            h, w = self.size
        else:
            h, w = (int(v) for v in self.native_sizes[i])
        return (*fit_side(h, w, max_side), self.channels)

    def read_native(self, i: int, max_side: int | None = None) -> np.ndarray:
        """Image ``i`` at its own aspect, its longer side brought down to ``max_side``
        (OpenCV ``INTER_AREA``; None: as stored), uint8 (H, W, C); never stretched.
        A set without ``native_sizes`` (one size) reads as :meth:`read`.
        """
        import cv2

        img = self.read(i) if self.native_sizes is None else self._decode(i)
        h, w, c = self.native_shape(i, max_side)
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        return img.reshape(h, w, c)

    def __getitem__(
        self, index: int | slice | np.ndarray | Sequence[int]
    ) -> np.ndarray | LazyImages:
        if isinstance(index, (int, np.integer)):
            return self.read(int(index))
        idx = np.arange(len(self.paths))[index]
        sizes = None if self.native_sizes is None else self.native_sizes[idx]
        return LazyImages([self.paths[i] for i in idx], self.size, self.channels, sizes)

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
        native: None for images of one size (``images`` are as they are stored); for
            a folder of mixed sizes, the :class:`LazyImages` of its files with each
            file's own size: ``images`` then holds each image centre-cropped to one
            common frame (resident or lazy), and ``native`` reads it at its own
            aspect (:meth:`LazyImages.read_native`). Set from a lazy ``images``
            that has native sizes when not given.
    """

    images: np.ndarray | LazyImages
    labels: np.ndarray
    ids: np.ndarray
    class_names: tuple[str, ...]
    name: str = ""
    mirror_ok: bool = True
    groups: np.ndarray | None = None
    native: LazyImages | None = None
    _id_index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.images)
        lazy_native = isinstance(self.images, LazyImages) and self.images.aspect_kept
        if self.native is None and lazy_native:
            object.__setattr__(self, "native", self.images)
        if self.native is not None and len(self.native) != n:
            raise DataError(f"ImageSet {self.name!r}: {n} images but {len(self.native)} files")
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
    def aspect_kept(self) -> bool:
        """Whether the images are of mixed sizes, each readable at its own aspect (``native``)."""
        return self.native is not None

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
            native=None if self.native is None else self._native_subset(idx),
        )

    def _native_subset(self, idx: np.ndarray) -> LazyImages:
        native = self.native
        assert native is not None
        sub = native[idx]
        assert isinstance(sub, LazyImages)
        return sub

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
