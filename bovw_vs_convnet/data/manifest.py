"""Dataset manifests: one TOML file per dataset in ``data_manifests/``, validated on load.

A manifest names a dataset's source, its files and their checksums, its class
names, image size and channels, its official train/test division and its licence.
Example (abridged)::

    name = "fashion-mnist"
    description = "Zalando's 28x28 grayscale clothing images."
    format = "idx"                      # one of FORMATS: idx, cifar10, imagefolder, glyphs, ...
    classes = ["T-shirt/top", "Trouser", ...]
    image_size = [28, 28]               # (height, width)
    channels = 1
    mirror_ok = true                    # a mirrored image keeps its class (see below)
    licence = "MIT"
    citation = "Xiao, Rasul, Vollgraf (2017) ..."

    [source]
    how = "apt-get install dataset-fashion-mnist, or `bvc data fetch fashion-mnist`"
    subdir = "fashion-mnist"            # folder under the data directory
    torchvision = "FashionMNIST"        # torchvision class used to download
    system_dirs = ["/usr/share/datasets/fashion-mnist"]

    [split]
    official = true
    train = 60000
    test = 10000

    [[files]]
    path = "train-images-idx3-ubyte"    # relative to the dataset folder; ".gz" also accepted
    part = "train"
    role = "images"
    size = 47040016                     # bytes of the (decompressed) content
    sha256 = "..."                      # of the decompressed content: any gzip copy verifies
    download_md5 = "..."                # of the gzip file torchvision downloads (fallback)

``mirror_ok`` says whether a horizontal mirror keeps an image's class, so that the
ConvNet's ``flip`` augmentation may be used: true for clothes, objects and scenes,
false for digits and letters (a mirrored 2 or b is no longer one). Absent, it is
false: a wrong true teaches wrong labels without a sign, a wrong false only forgoes
an augmentation. (A folder without a manifest is taken as true, as photographs are;
``--set mirror=yes|no`` overrides either.)

Manifests are found in the top-level ``data_manifests/`` folder next to the
package source, and in every folder listed in the ``BVC_MANIFESTS_DIR``
environment variable (``os.pathsep``-separated); a later folder's manifest
replaces an earlier one of the same name.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bovw_vs_convnet.errors import DataError, unknown_name
from bovw_vs_convnet.toml_lines import decode_utf8

FORMATS = (
    "idx",
    "cifar10",
    "cifar100",
    "sklearn-digits",
    "synthetic",
    "imagefolder",
    "glyphs",
    "caltech",
)
PARTS = ("train", "test", "meta")
MANIFESTS_ENV = "BVC_MANIFESTS_DIR"

_TOP_KEYS = {
    "name": True,  # True: required
    "description": True,
    "format": True,
    "classes": True,
    "image_size": True,
    "channels": True,
    "mirror_ok": False,
    "licence": True,
    "citation": False,
    "source": True,
    "split": True,
    "files": False,
    "params": False,
}
_SOURCE_KEYS = {"how": True, "subdir": False, "torchvision": False, "system_dirs": False}
_SPLIT_KEYS = {"official": True, "train": False, "test": False}
_FILE_KEYS = {
    "path": True,
    "part": True,
    "role": False,
    "size": False,
    "sha256": False,
    "md5": False,
    "download_md5": False,
}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_HEX_RE = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}


@dataclass(frozen=True)
class FileEntry:
    """One file of a dataset, with what is known to check it.

    Attributes:
        path: relative POSIX path inside the dataset folder (a ``.gz`` copy is accepted too).
        part: ``train``, ``test`` or ``meta``.
        role: what the file holds (``images``, ``labels``, ``batch``, ``meta``).
        size: bytes of the decompressed content, when known.
        sha256: sha256 of the decompressed content, when known.
        md5: md5 of the decompressed content, when known.
        download_md5: md5 of the gzip file as distributed upstream (used when no content
            checksum is given).
    """

    path: str
    part: str
    role: str = ""
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    download_md5: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated dataset manifest (see the module docstring for the TOML layout).

    Attributes:
        name: the dataset's name (``fashion-mnist``), or ``imagefolder:<abs path>``.
        description: one or two sentences.
        format: how the files are read, one of :data:`FORMATS`.
        classes: class names, indexed by label.
        image_size: (height, width) of every image.
        channels: 1 (grayscale) or 3 (RGB).
        mirror_ok: whether a horizontally mirrored image keeps its class (flip
            augmentation allowed); false when the manifest does not say.
        licence: the dataset's licence.
        citation: how to cite it.
        source: how to obtain it (``how``), its folder under the data directory
            (``subdir``), the torchvision class that downloads it, system folders.
        official_split: whether the dataset has an official train/test division.
        n_train: size of the official train part (or of the whole dataset), when known.
        n_test: size of the official test part, when known.
        files: the dataset's files, with checksums.
        params: format-specific parameters (the synthetic generator's, for instance).
        path: the TOML file it came from (None when generated on the fly).
    """

    name: str
    description: str
    format: str
    classes: tuple[str, ...]
    image_size: tuple[int, int]
    channels: int
    licence: str
    citation: str = ""
    mirror_ok: bool = False
    source: Mapping[str, Any] = field(default_factory=dict)
    official_split: bool = False
    n_train: int | None = None
    n_test: int | None = None
    files: tuple[FileEntry, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def subdir(self) -> str:
        """The dataset's folder under a data directory (defaults to its name)."""
        return str(self.source.get("subdir", self.name))


def _check_keys(where: str, table: Mapping[str, Any], spec: Mapping[str, bool]) -> None:
    unknown = sorted(set(table) - set(spec))
    if unknown:
        raise DataError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(spec))}")
    missing = [k for k, required in spec.items() if required and k not in table]
    if missing:
        raise DataError(f"{where}: missing required key {missing[0]!r}")


def _expect(where: str, key: str, value: Any, tp: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and tp is int:
        raise DataError(f"{where}: {key!r} must be an integer, got {value!r}")
    if not isinstance(value, tp):
        names = tp.__name__ if isinstance(tp, type) else "/".join(t.__name__ for t in tp)
        raise DataError(f"{where}: {key!r} must be {names}, got {type(value).__name__}")
    return value


def check_relative_path(where: str, path: str) -> str:
    """Refuse a file path that is absolute or climbs out of the dataset folder (``..``)."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise DataError(f"{where}: file path {path!r} must be relative to the data directory")
    if any(part == ".." for part in p.parts):
        raise DataError(f"{where}: file path {path!r} escapes the data directory")
    return str(p)


def _name_and_where(raw: Mapping[str, Any], origin: str) -> tuple[str, str]:
    """The manifest's name, and how errors name the manifest."""
    name = _expect(origin, "name", raw["name"], str)
    if not _NAME_RE.match(name):
        raise DataError(f"{origin}: name {name!r} must be lower-case letters, digits, '.-_'")
    return name, f"manifest {name!r} ({origin})" if origin != name else f"manifest {name!r}"


def _classes(where: str, raw: Mapping[str, Any], fmt: str) -> tuple[str, ...]:
    """Distinct non-empty class names, at least 2 (an image folder's may come later)."""
    classes = _expect(where, "classes", raw["classes"], list)
    if not all(isinstance(c, str) and c for c in classes):
        raise DataError(f"{where}: 'classes' must be a list of non-empty strings")
    if len(set(classes)) != len(classes):
        raise DataError(f"{where}: 'classes' has duplicate names")
    if fmt != "imagefolder" and len(classes) < 2:
        raise DataError(f"{where}: a dataset needs at least 2 classes, got {len(classes)}")
    return tuple(classes)


def _image_format(where: str, raw: Mapping[str, Any]) -> tuple[tuple[int, int], int]:
    """``image_size`` as (height, width) and ``channels`` (1 or 3)."""
    size = _expect(where, "image_size", raw["image_size"], list)
    if len(size) != 2 or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size
    ):
        raise DataError(f"{where}: 'image_size' must be [height, width] of positive integers")
    channels = _expect(where, "channels", raw["channels"], int)
    if channels not in (1, 3):
        raise DataError(f"{where}: 'channels' must be 1 or 3, got {channels}")
    return (int(size[0]), int(size[1])), channels


def _source(where: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[source]`` table: how to obtain the files, and where they lie."""
    source = _expect(where, "source", raw["source"], dict)
    _check_keys(f"{where} [source]", source, _SOURCE_KEYS)
    _expect(where, "source.how", source["how"], str)
    if "subdir" in source:
        check_relative_path(
            f"{where} [source]", _expect(where, "source.subdir", source["subdir"], str)
        )
    if "system_dirs" in source:
        dirs = _expect(where, "source.system_dirs", source["system_dirs"], list)
        if not all(isinstance(d, str) for d in dirs):
            raise DataError(f"{where}: 'source.system_dirs' must be a list of strings")
    return dict(source)


def _split(where: str, raw: Mapping[str, Any]) -> tuple[bool, int | None, int | None]:
    """The ``[split]`` table: (official, train size, test size)."""
    split = _expect(where, "split", raw["split"], dict)
    _check_keys(f"{where} [split]", split, _SPLIT_KEYS)
    official = _expect(where, "split.official", split["official"], bool)
    n_train = split.get("train")
    n_test = split.get("test")
    for key, n in (("split.train", n_train), ("split.test", n_test)):
        if n is not None and (_expect(where, key, n, int) <= 0):
            raise DataError(f"{where}: {key!r} must be positive, got {n}")
    if n_test is not None and not official:
        raise DataError(f"{where}: 'split.test' given but 'split.official' is false")
    return official, n_train, n_test


def _file_entry(fwhere: str, entry: Any, seen: set[str]) -> FileEntry:
    """One ``[[files]]`` entry: a relative path not listed before, a part, a checksum."""
    _expect(fwhere, "files[]", entry, dict)
    _check_keys(fwhere, entry, _FILE_KEYS)
    path = check_relative_path(fwhere, _expect(fwhere, "path", entry["path"], str))
    if path in seen:
        raise DataError(f"{fwhere}: file {path!r} listed twice")
    seen.add(path)
    part = _expect(fwhere, "part", entry["part"], str)
    if part not in PARTS:
        raise DataError(f"{fwhere}: 'part' must be one of {', '.join(PARTS)}, got {part!r}")
    for key in ("sha256", "md5", "download_md5"):
        if key in entry:
            value = _expect(fwhere, key, entry[key], str).lower()
            if not _HEX_RE["sha256" if key == "sha256" else "md5"].match(value):
                raise DataError(f"{fwhere}: {key!r} is not a hex digest: {entry[key]!r}")
    if not any(k in entry for k in ("sha256", "md5", "download_md5")):
        raise DataError(f"{fwhere}: file {path!r} has no checksum (sha256, md5 or download_md5)")
    fsize = entry.get("size")
    if fsize is not None and _expect(fwhere, "size", fsize, int) <= 0:
        raise DataError(f"{fwhere}: 'size' must be positive")
    return FileEntry(
        path=path,
        part=part,
        role=str(entry.get("role", "")),
        size=fsize,
        sha256=entry.get("sha256", "").lower() or None,
        md5=entry.get("md5", "").lower() or None,
        download_md5=entry.get("download_md5", "").lower() or None,
    )


def parse_manifest(raw: Mapping[str, Any], origin: str = "<manifest>") -> Manifest:
    """Validate a manifest's parsed TOML and build a :class:`Manifest`.

    Raises :class:`DataError` naming ``origin`` for an unknown key, a missing field,
    a value of the wrong type, a bad checksum string or a file path that escapes
    the data directory.
    """
    _check_keys(origin, raw, _TOP_KEYS)
    name, where = _name_and_where(raw, origin)
    fmt = _expect(where, "format", raw["format"], str)
    if fmt not in FORMATS:
        raise DataError(f"{where}: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    classes = _classes(where, raw, fmt)
    image_size, channels = _image_format(where, raw)
    mirror_ok = _expect(where, "mirror_ok", raw.get("mirror_ok", False), bool)
    source = _source(where, raw)
    official, n_train, n_test = _split(where, raw)
    seen: set[str] = set()
    files = [
        _file_entry(f"{where} files[{i}]", entry, seen)
        for i, entry in enumerate(_expect(where, "files", raw.get("files", []), list))
    ]
    params = _expect(where, "params", raw.get("params", {}), dict)
    return Manifest(
        name=name,
        description=_expect(where, "description", raw["description"], str),
        format=fmt,
        classes=classes,
        image_size=image_size,
        channels=channels,
        licence=_expect(where, "licence", raw["licence"], str),
        citation=_expect(where, "citation", raw.get("citation", ""), str),
        mirror_ok=mirror_ok,
        source=source,
        official_split=official,
        n_train=n_train,
        n_test=n_test,
        files=tuple(files),
        params=dict(params),
    )


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate one manifest TOML file; errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"manifest file {path} not found") from None
    except OSError as exc:  # a folder, no permission
        raise DataError(f"manifest file {path} cannot be read: {exc.strerror}") from None
    text = decode_utf8(data, f"manifest {path}", "a manifest", DataError)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"manifest {path}: invalid TOML: {exc}") from None
    manifest = parse_manifest(raw, origin=str(path))
    if manifest.name != path.stem:
        raise DataError(f"manifest {path}: name {manifest.name!r} differs from the file name")
    return _with_path(manifest, path)


def _with_path(manifest: Manifest, path: Path) -> Manifest:
    from dataclasses import replace

    return replace(manifest, path=path)


def manifest_dirs() -> list[Path]:
    """Folders searched for manifests: ``data_manifests/``, then ``$BVC_MANIFESTS_DIR``."""
    dirs = [Path(__file__).resolve().parents[2] / "data_manifests"]
    extra = os.environ.get(MANIFESTS_ENV, "")
    dirs += [Path(p).expanduser() for p in extra.split(os.pathsep) if p.strip()]
    return dirs


def manifest_paths() -> dict[str, Path]:
    """Every manifest file by dataset name (later folders override earlier ones)."""
    found: dict[str, Path] = {}
    for d in manifest_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found[p.stem] = p
    return dict(sorted(found.items()))


def list_manifests() -> list[Manifest]:
    """Every known manifest, validated, sorted by name."""
    return [load_manifest(p) for p in manifest_paths().values()]


def get_manifest(name: str) -> Manifest:
    """The manifest of dataset ``name``; an unknown name raises DataError listing the known ones."""
    paths = manifest_paths()
    if name not in paths:
        hint = "(or give the path of an image folder)"
        raise DataError(unknown_name("dataset", name, paths, hint=hint))
    return load_manifest(paths[name])
