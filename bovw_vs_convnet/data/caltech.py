"""Caltech-101 and Caltech-256 in their official archives' layouts, read as image folders.

Fei-Fei, Fergus, Perona (2004), "Learning generative visual models from few training
examples" (Caltech-101: ``101_ObjectCategories/<class>/image_NNNN.jpg``); Griffin,
Holub, Perona (2007), "Caltech-256 Object Category Dataset"
(``256_ObjectCategories/NNN.name/NNN_NNNN.jpg``). Neither has an official split: the
literature draws N training and up to M test images per class
(:func:`~bovw_vs_convnet.data.split.make_split`'s per-class protocol).

A manifest of format ``caltech`` names, in ``params``: ``tree`` (the folder of class
folders), ``exclude`` (class folders left out: ``BACKGROUND_Google`` and
``257.clutter``, as in the literature; the ``caltech101-background`` and
``caltech256-clutter`` manifests keep them), ``archive`` with its ``archive_sha256`` and
``archive_md5``, and the official ``url`` (with ``url_md5``, and ``url_member`` when the
download is a zip that holds the archive, as CaltechDATA's Caltech-101 is).

The dataset is looked for under the data directory, in ``<subdir>/`` then the
directory itself: an extracted tree is read as it is (through the ImageFolder reader,
:mod:`bovw_vs_convnet.data.imagefolder`); else the archive, whose checksums are checked
on the file (streamed, never held in memory) before it is unpacked beside it
(tar's ``data`` filter: no path leaves the folder, no links out, no devices). Where a
network is, :func:`fetch_caltech` downloads the official file first. An extracted tree
has no checksum of its own; its classes must be the manifest's, and its image count
the manifest's ``split.train`` where that is given.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.locate import FileCheck, resolve_data_dir
from bovw_vs_convnet.data.manifest import Manifest
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.printable import printable

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read at a time when hashing or downloading


def _param(manifest: Manifest, key: str) -> str:
    value = manifest.params.get(key)
    if not isinstance(value, str) or not value:
        raise DataError(f"manifest {manifest.name!r}: params.{key} must be a non-empty string")
    return value


def _folders(manifest: Manifest, data_dir: str | Path | None) -> list[Path]:
    root = resolve_data_dir(data_dir)
    out = [root / manifest.subdir, root]
    out += [Path(d) for d in manifest.source.get("system_dirs", [])]
    return list(dict.fromkeys(out))


def _first(
    manifest: Manifest, data_dir: str | Path | None, param: str, found: Callable[[Path], bool]
) -> Path | None:
    """``<folder>/<params.PARAM>`` in the first folder where it is ``found``, else None."""
    name = _param(manifest, param)
    return next((f / name for f in _folders(manifest, data_dir) if found(f / name)), None)


def find_tree(manifest: Manifest, data_dir: str | Path | None = None) -> Path | None:
    """The extracted tree (``<folder>/<params.tree>/``), or None when there is none."""
    return _first(manifest, data_dir, "tree", Path.is_dir)


def find_archive(manifest: Manifest, data_dir: str | Path | None = None) -> Path | None:
    """The archive file (``<folder>/<params.archive>``), or None when there is none."""
    return _first(manifest, data_dir, "archive", Path.is_file)


def _digests(path: Path) -> dict[str, str]:
    """sha256 and md5 hex digests of a file, read in chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    try:
        with path.open("rb") as fh:
            while block := fh.read(CHUNK):
                sha.update(block)
                md5.update(block)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def verify_archive(manifest: Manifest, path: Path) -> FileCheck:
    """Check the archive against ``params.archive_sha256`` and ``archive_md5``.

    A mismatch is a DataError naming the file, the digest found and the one expected.
    """
    expected = {
        algo: str(manifest.params[f"archive_{algo}"]).lower()
        for algo in ("sha256", "md5")
        if manifest.params.get(f"archive_{algo}")
    }
    if not expected:
        raise DataError(f"manifest {manifest.name!r}: no archive_sha256 or archive_md5 in params")
    got = _digests(path)
    for algo, want in expected.items():
        if got[algo] != want:
            raise DataError(f"checksum mismatch: {path} {algo} {got[algo]}, expected {want}")
    return FileCheck(path, tuple(expected))


def extract_archive(manifest: Manifest, archive: Path) -> Path:
    """Unpack the (verified) archive beside itself; the tree's path.

    It is unpacked into a temporary folder first and moved into place whole, so an
    interrupted unpacking never leaves a partial tree that would later pass for the
    dataset.
    """
    name = _param(manifest, "tree")
    dest = archive.parent
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / name).is_dir():
            raise DataError(f"archive {archive} holds no {name}/ folder")
        os.replace(tmp / name, dest / name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot unpack {archive} (corrupt?): {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("unpacked %s into %s", archive, dest / name)
    return dest / name


def _check_inside(manifest: Manifest, tree: Path) -> None:
    """DataError, before anything is walked, when ``tree`` resolves outside the folder it
    was found in (a link to ``/`` would be walked whole) or its class folders are not the
    manifest's (the top level only: one listing, not a walk).
    """
    real, home = os.path.realpath(tree), os.path.realpath(tree.parent)
    if not real.startswith(home.rstrip(os.sep) + os.sep):
        raise DataError(
            f"dataset {manifest.name!r}: its tree {printable(tree)} resolves to "
            f"{printable(real)}, outside {printable(home)}; refusing to read it (put the "
            "tree itself there)"
        )
    found = {d.name for d in Path(real).iterdir() if d.is_dir() and not d.name.startswith(".")}
    missing = sorted(set(manifest.classes) - found)
    if missing:
        raise DataError(
            f"dataset {manifest.name!r}: the tree {printable(tree)} lacks class "
            f"{printable(missing[0])!r} of the manifest's {manifest.n_classes} (a different "
            "version of the dataset?)"
        )


def locate_tree(manifest: Manifest, data_dir: str | Path | None = None) -> Path:
    """The extracted tree; an archive found instead is verified and unpacked first.

    Raises DataError when neither is there (saying how to get them) or when the archive's
    checksum does not match (nothing is unpacked then).
    """
    tree = find_tree(manifest, data_dir)
    if tree is not None:
        _check_inside(manifest, tree)
        return tree
    archive = find_archive(manifest, data_dir)
    if archive is None:
        where = ", ".join(str(d) for d in _folders(manifest, data_dir))
        raise DataError(
            f"dataset {manifest.name!r} not found (looked for {manifest.params.get('tree')}/ "
            f"and {manifest.params.get('archive')} in {where}); {manifest.source['how']}"
        )
    verify_archive(manifest, archive)
    return extract_archive(manifest, archive)


def load_caltech(
    manifest: Manifest, data_dir: str | Path | None = None, *, lazy: bool | None = None
) -> ImageSet:
    """Every image of the tree but the excluded classes, one ImageSet (no official test part).

    Labels index the manifest's classes (the class folders, sorted); sample ids are paths
    relative to the tree (``accordion/image_0001.jpg``). ``lazy`` as for an image folder.
    """
    from bovw_vs_convnet.data.folder_tree import FolderTree, scan_tree
    from bovw_vs_convnet.data.imagefolder import load_tree

    tree = scan_tree(locate_tree(manifest, data_dir))
    exclude = {str(c) for c in manifest.params.get("exclude", [])}
    kept = tuple(c for c in tree.classes if c not in exclude)
    if kept != manifest.classes:
        extra = sorted(set(kept) - set(manifest.classes))
        missing = sorted(set(manifest.classes) - set(kept))
        what = f"has class {extra[0]!r}" if extra else f"lacks class {missing[0]!r}"
        raise DataError(
            f"dataset {manifest.name!r}: the tree {tree.root} {what} of the manifest's "
            f"{manifest.n_classes} (a different version of the dataset?)"
        )
    relabel = {tree.classes.index(c): i for i, c in enumerate(kept)}
    files = [(p, relabel[y]) for p, y in tree.parts["all"] if y in relabel]
    kept_tree = FolderTree(tree.root, kept, {"all": files})
    parts, _, _ = load_tree(
        kept_tree,
        channels=manifest.channels,
        lazy=lazy,
        name=manifest.name,
        mirror_ok=manifest.mirror_ok,
    )
    images = parts["all"]
    if manifest.n_train is not None and len(images) != manifest.n_train:
        raise DataError(
            f"dataset {manifest.name!r}: the tree {tree.root} has {len(images)} images of its "
            f"classes, the manifest says {manifest.n_train}"
        )
    per_class = np.bincount(images.labels)
    log.info(
        "caltech %s: %d images of %d classes (%d to %d a class)",
        manifest.name,
        len(images),
        len(kept),
        int(per_class.min()),
        int(per_class.max()),
    )
    return images


def where_caltech(manifest: Manifest, data_dir: str | Path | None = None) -> str | None:
    """Where the tree is, else the archive (to be unpacked when first read), else None."""
    found = find_tree(manifest, data_dir) or find_archive(manifest, data_dir)
    return str(found) if found is not None else None


def verify_caltech(manifest: Manifest, data_dir: str | Path | None = None) -> list[FileCheck]:
    """The archive's checksums where the archive is; else the tree's classes and count."""
    archive = find_archive(manifest, data_dir)
    if archive is not None:
        return [verify_archive(manifest, archive)]
    images = load_caltech(manifest, data_dir, lazy=True)  # classes and count, no pixels
    checks = ("classes", "count") if manifest.n_train is not None else ("classes",)
    log.info("%s: %d images, no archive to checksum", manifest.name, len(images))
    return [FileCheck(locate_tree(manifest, data_dir), checks)]


def _download(url: str, dest: Path) -> None:
    """``url`` into ``dest`` (through ``dest.part``, renamed when complete)."""
    part = dest.with_name(dest.name + ".part")
    log.info("downloading %s into %s", url, dest)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, part.open("wb") as out:
            while block := response.read(CHUNK):
                out.write(block)
        os.replace(part, dest)
    except Exception as exc:  # urllib/HTTP/socket errors vary: report them as one line
        part.unlink(missing_ok=True)
        reason = " ".join(str(exc).split())
        raise DataError(
            f"download of {url} failed ({type(exc).__name__}: {reason}); with no network, "
            f"put the archive into {dest.parent} by hand"
        ) from None


def fetch_caltech(
    manifest: Manifest, data_dir: str | Path | None = None
) -> tuple[str, list[FileCheck]]:
    """Locate the dataset, else download the official file into ``<data-dir>/<subdir>/``.

    A download is checked (``url_md5``) before the archive is taken out of it (a zip's
    ``url_member``); the archive is then checked against its own checksums and unpacked.
    Returns (the tree, the checks made).
    """
    checks: list[FileCheck] = []
    if find_tree(manifest, data_dir) is None and find_archive(manifest, data_dir) is None:
        url = _param(manifest, "url")
        folder = resolve_data_dir(data_dir) / manifest.subdir
        folder.mkdir(parents=True, exist_ok=True)
        archive = folder / _param(manifest, "archive")
        member = manifest.params.get("url_member")
        download = folder / Path(url).name if member else archive
        _download(url, download)
        if manifest.params.get("url_md5"):
            got = _digests(download)["md5"]
            if got != manifest.params["url_md5"]:
                download.unlink()
                raise DataError(
                    f"checksum mismatch: {url} md5 {got}, expected {manifest.params['url_md5']}"
                )
        if member:
            part = archive.with_name(archive.name + ".part")
            try:
                with (
                    zipfile.ZipFile(download) as zf,
                    zf.open(str(member)) as src,
                    part.open("wb") as out,
                ):
                    shutil.copyfileobj(src, out, CHUNK)
                os.replace(part, archive)
            except (zipfile.BadZipFile, KeyError, OSError) as exc:
                part.unlink(missing_ok=True)
                raise DataError(f"cannot take {member} out of {download}: {exc}") from None
            download.unlink()
        try:
            checks.append(verify_archive(manifest, archive))
        except DataError:
            archive.unlink()  # a download that is not the dataset is not kept
            raise
    archive_found = find_archive(manifest, data_dir)
    if archive_found is not None and not checks:
        checks.append(verify_archive(manifest, archive_found))
    if find_tree(manifest, data_dir) is None and archive_found is not None:
        extract_archive(manifest, archive_found)
    return str(locate_tree(manifest, data_dir)), checks
