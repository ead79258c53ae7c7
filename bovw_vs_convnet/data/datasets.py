"""Load a dataset by manifest name or ImageFolder path; locate, download and verify its files.

``load_dataset("fashion-mnist")`` reads the manifest ``data_manifests/fashion-mnist.toml``
and its files; ``load_dataset("/path/to/root")`` reads an ImageFolder tree with a
manifest generated on the fly. The result keeps the official train and test
parts apart; :func:`bovw_vs_convnet.data.split.make_split` makes the common split.

=============== ============================= ============ ======================
dataset          source                        test part    sample ids
=============== ============================= ============ ======================
fashion-mnist    IDX files (.gz or raw)        official     ``train/00042``
mnist            IDX files (.gz or raw)        official     ``test/00007``
cifar10          torchvision's pickle batches  official     ``train/00042``
cifar100         the official pickle files     official     ``train/00042``
caltech101/256   the archive's class folders   none         ``accordion/image_0001.jpg``
digits           scikit-learn, bundled         held out     ``00042``
synthetic        generated from a seed         official     ``train/00042``
glyphs           rendered from Debian's fonts  by family    ``3fa9c0d1e2b4a5c6/A``
a folder path    ImageFolder tree              ``test/``    relative file path
=============== ============================= ============ ======================

Images are uint8 (N, H, W, C); a folder of more than 20 000 images is read lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.locate import FileCheck, locate, resolve_data_dir, verify
from bovw_vs_convnet.data.manifest import Manifest, get_manifest, manifest_paths
from bovw_vs_convnet.errors import DataError

log = logging.getLogger(__name__)

IMAGEFOLDER_PREFIX = "imagefolder:"


@dataclass(frozen=True)
class Dataset:
    """A dataset as its manifest divides it.

    Attributes:
        name: the manifest name, or ``imagefolder:<absolute path>``.
        train: the official train part (everything, when there is no official split).
        test: the official test part; None when there is none.
        manifest: the manifest it was loaded from (generated for an ImageFolder).
    """

    name: str
    train: ImageSet
    test: ImageSet | None
    manifest: Manifest

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names, indexed by label."""
        return self.manifest.classes


def is_folder_reference(name_or_path: str) -> bool:
    """True when ``name_or_path`` names a folder (a path) rather than a manifest.

    A bare word is a manifest name when such a manifest exists, even if a folder of
    that name lies in the working directory (write ``./mnist`` for the folder).
    """
    if name_or_path.startswith(IMAGEFOLDER_PREFIX):
        return True
    if "/" in name_or_path or "\\" in name_or_path:
        return True
    return name_or_path not in manifest_paths() and Path(name_or_path).is_dir()


def _folder_manifest(
    name: str,
    root: Path,
    classes: tuple[str, ...],
    size: tuple[int, int],
    channels: int,
    official: bool,
    n_train: int,
    n_test: int | None,
    mirror_ok: bool,
) -> Manifest:
    return Manifest(
        name=name,
        description=f"ImageFolder tree at {root}",
        format="imagefolder",
        classes=classes,
        image_size=size,
        channels=channels,
        licence="unknown (a local folder)",
        mirror_ok=mirror_ok,
        source={"how": f"local folder {root}", "subdir": "."},
        official_split=official,
        n_train=n_train,
        n_test=n_test,
    )


def load_imagefolder(
    root: str | Path,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    lazy: bool | None = None,
    name: str | None = None,
    mirror_ok: bool = True,
    max_pixels: int | None = None,
) -> Dataset:
    """An ImageFolder tree as a Dataset (see :mod:`bovw_vs_convnet.data.imagefolder`).

    ``image_size`` and ``channels`` default to the common frame of a folder's images (its
    one size, or for images of mixed sizes the median shorter side, each image kept at its
    aspect and centre-cropped: :func:`~bovw_vs_convnet.data.imagefolder.load_tree`) and to
    grayscale only when every image is; ``name`` defaults to ``imagefolder:<absolute path>``.
    ``max_pixels``: the largest image accepted (None: ``$BVC_MAX_PIXELS``, else 40
    megapixels; 0: no limit); every header is read, and a larger image is a DataError.
    ``mirror_ok`` (may training mirror the images?) defaults to true, as for photographs;
    a folder of digits or letters says false here or with the ConvNet's ``mirror=no``.
    """
    from bovw_vs_convnet.data.folder_tree import scan_tree
    from bovw_vs_convnet.data.imagefolder import load_tree

    tree = scan_tree(root)
    name = name or f"{IMAGEFOLDER_PREFIX}{tree.root}"
    parts, size, channels = load_tree(
        tree,
        image_size=image_size,
        channels=channels,
        lazy=lazy,
        name=name,
        mirror_ok=mirror_ok,
        max_pixels=max_pixels,
    )
    official = "test" in parts
    train = parts["train"] if official else parts["all"]
    test = parts.get("test")
    manifest = _folder_manifest(
        name,
        tree.root,
        tree.classes,
        size,
        channels,
        official,
        len(train),
        len(test) if test is not None else None,
        mirror_ok,
    )
    return Dataset(name, train, test, manifest)


def load_from_manifest(
    manifest: Manifest, data_dir: str | Path | None = None, *, lazy: bool | None = None
) -> Dataset:
    """Read the dataset a manifest describes (files looked for as in :mod:`.locate`).

    ``lazy``: a Caltech tree's images read from their files on demand (True), into
    memory (False) or by its size (None); other formats ignore it.
    """
    fmt = manifest.format
    test: ImageSet | None
    if fmt == "idx":
        from bovw_vs_convnet.data.idx import load_idx

        train, test = load_idx(manifest, data_dir)
    elif fmt == "cifar10":
        from bovw_vs_convnet.data.cifar import load_cifar10

        train, test = load_cifar10(manifest, data_dir)
    elif fmt == "cifar100":
        from bovw_vs_convnet.data.cifar import load_cifar100

        train, test = load_cifar100(manifest, data_dir)
    elif fmt == "caltech":
        from bovw_vs_convnet.data.caltech import load_caltech

        train, test = load_caltech(manifest, data_dir, lazy=lazy), None
    elif fmt == "sklearn-digits":
        from bovw_vs_convnet.data.digits import load_digits_set

        train, test = load_digits_set(manifest), None
    elif fmt == "synthetic":
        train, test = _synthetic_parts(manifest)
    elif fmt == "imagefolder":
        train, test = _manifest_folder_parts(manifest, data_dir)
    elif fmt == "glyphs":
        from bovw_vs_convnet.data.glyphs import load_glyphs

        # the rendered set's own part sizes: another font set renders other counts
        train, test, manifest = load_glyphs(manifest, data_dir)
    else:  # parse_manifest refuses other formats
        raise DataError(f"dataset {manifest.name!r}: unknown format {fmt!r}")
    # The readers of each format know pixels, not this: the manifest says it once here.
    train = replace(train, mirror_ok=manifest.mirror_ok)
    test = replace(test, mirror_ok=manifest.mirror_ok) if test is not None else None
    log.info(
        "loaded %s: %d train, %s test images of %s",
        manifest.name,
        len(train),
        "no" if test is None else len(test),
        "x".join(map(str, (*manifest.image_size, manifest.channels))),
    )
    _check_part_sizes(manifest, train, test)
    return Dataset(manifest.name, train, test, manifest)


def _synthetic_parts(manifest: Manifest) -> tuple[ImageSet, ImageSet]:
    """The synthetic set's train and test parts, generated from the manifest's params."""
    from bovw_vs_convnet.data.synthetic import synthetic_imageset

    p = dict(manifest.params)
    seed, size = int(p.get("seed", 0)), manifest.image_size[0]
    noise, classes = float(p.get("noise", 10.0)), manifest.classes
    train = synthetic_imageset(
        int(p.get("train_per_class", 200)),
        part="train",
        seed=seed,
        size=size,
        noise=noise,
        classes=classes,
        name=manifest.name,
    )
    test = synthetic_imageset(
        int(p.get("test_per_class", 100)),
        part="test",
        seed=int(p.get("test_seed", seed + 1)),
        size=size,
        noise=noise,
        classes=classes,
        name=manifest.name,
    )
    return train, test


def _manifest_folder_parts(
    manifest: Manifest, data_dir: str | Path | None
) -> tuple[ImageSet, ImageSet | None]:
    """An ``imagefolder`` manifest's tree under the data directory, its classes checked."""
    folder = resolve_data_dir(data_dir) / manifest.subdir
    common = manifest.image_size if manifest.params.get("resize", True) else None
    ds = load_imagefolder(
        folder,
        image_size=common,
        channels=manifest.channels,
        name=manifest.name,
        mirror_ok=manifest.mirror_ok,
    )
    if ds.manifest.classes != manifest.classes:
        raise DataError(
            f"dataset {manifest.name!r}: folder classes {list(ds.manifest.classes)[:5]}... "
            f"differ from the manifest's"
        )
    return ds.train, ds.test


def _check_part_sizes(manifest: Manifest, train: ImageSet, test: ImageSet | None) -> None:
    """Refuse parts whose sizes differ from the sizes the manifest gives."""
    for part, n_expected, got in (
        ("train", manifest.n_train, train),
        ("test", manifest.n_test, test),
    ):
        if n_expected is not None and got is not None and len(got) != n_expected:
            raise DataError(
                f"dataset {manifest.name!r}: {part} part has {len(got)} images, "
                f"manifest says {n_expected}"
            )


def load_dataset(
    name_or_path: str,
    data_dir: Path | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    lazy: bool | None = None,
) -> Dataset:
    """Load a dataset by manifest name (``fashion-mnist``) or ImageFolder path.

    Args:
        name_or_path: a manifest name, a folder path, or ``imagefolder:<path>``.
        data_dir: where to look for downloaded files (default ``$BVC_DATA_DIR``,
            then ``./data``; system folders named by the manifest come after).
        image_size: (height, width) of an ImageFolder's common frame (default: its one
            size, or the median shorter side of images of mixed sizes, cropped at aspect).
            Refused for manifest datasets, whose size is fixed.
        lazy: an ImageFolder path's (or a Caltech tree's) images read from their files on
            demand (True), into memory (False) or by the folder's size (None); other
            datasets ignore it.

    Raises:
        DataError: unknown name, files not found (with how to get them), corrupt data.
    """
    if is_folder_reference(name_or_path):
        return load_imagefolder(
            name_or_path.removeprefix(IMAGEFOLDER_PREFIX), image_size=image_size, lazy=lazy
        )
    if image_size is not None:
        raise DataError(
            f"image_size applies to image folders only; {name_or_path!r} has a fixed size"
        )
    return load_from_manifest(get_manifest(name_or_path), data_dir, lazy=lazy)


def where_found(manifest: Manifest, data_dir: str | Path | None = None) -> str | None:
    """Where the dataset lies (a folder), ``"built in"`` for generated ones, None if absent."""
    if manifest.format in ("sklearn-digits", "synthetic"):
        return "built in"
    if manifest.format == "imagefolder":
        folder = resolve_data_dir(data_dir) / manifest.subdir
        return str(folder) if folder.is_dir() else None
    if manifest.format == "glyphs":
        folder = resolve_data_dir(data_dir) / manifest.subdir
        return str(folder) if (folder / "index.json").is_file() else None
    if manifest.format == "caltech":
        from bovw_vs_convnet.data.caltech import where_caltech

        return where_caltech(manifest, data_dir)
    found = locate(manifest, data_dir)
    if found is None:
        return None
    return str(next(iter(found.values())).parent)


def fetch_dataset(name: str, data_dir: Path | None = None) -> tuple[str, list[FileCheck]]:
    """Locate the dataset, else download it (torchvision, or Caltech's own URL); verify.

    Returns (where it lies, the checks made). Raises DataError when the download
    fails (no network) or a checksum does not match.
    """
    manifest = get_manifest(name)
    if manifest.format == "glyphs":  # rendered from the installed fonts, every time
        from bovw_vs_convnet.data.glyphs import build_glyphs

        return str(build_glyphs(manifest, data_dir).path), []
    if manifest.format == "caltech":  # the official archive, from its own URL
        from bovw_vs_convnet.data.caltech import fetch_caltech

        return fetch_caltech(manifest, data_dir)
    where = where_found(manifest, data_dir)
    if where is None:
        tv = manifest.source.get("torchvision")
        if not tv:
            raise DataError(
                f"dataset {name!r} not found and cannot be downloaded: {manifest.source['how']}"
            )
        root = resolve_data_dir(data_dir)
        _download_with_torchvision(str(tv), root)
        where = where_found(manifest, data_dir)
        if where is None:
            raise DataError(f"dataset {name!r}: downloaded, but its files are not where expected")
    checks = verify_dataset(name, data_dir, manifest=manifest)
    return where, checks


def _download_with_torchvision(class_name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = getattr(tvd, class_name, None)
    if cls is None:
        raise DataError(f"torchvision has no dataset class {class_name!r}")
    root.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s into %s", class_name, root)
    try:
        for train in (True, False):
            cls(root=str(root), train=train, download=True)
    except Exception as exc:  # urllib/HTTP/socket errors vary: report them as one line
        reason = " ".join(str(exc).split())  # one line: urllib's messages span several
        raise DataError(
            f"download of {class_name} into {root} failed ({type(exc).__name__}: {reason}); "
            "with no network, copy the files there by hand"
        ) from None


def verify_dataset(
    name: str, data_dir: Path | None = None, *, manifest: Manifest | None = None
) -> list[FileCheck]:
    """Check every checksum of a dataset's files; the first mismatch raises DataError.

    Built-in datasets (digits, synthetic) have no files and verify trivially.
    """
    manifest = manifest or get_manifest(name)
    if manifest.format == "caltech":  # the archive's checksums (or the tree's classes)
        from bovw_vs_convnet.data.caltech import verify_caltech

        return verify_caltech(manifest, data_dir)
    if not manifest.files:
        return []
    return verify(manifest, data_dir)
