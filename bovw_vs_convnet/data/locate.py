"""Where a dataset's files are, and whether they are the right ones (checksums).

A dataset with files is looked for, in order, in:

1. the data directory given (``--data-dir``), else ``$BVC_DATA_DIR``, else ``./data``;
   inside it, the folders ``<subdir>/`` (the manifest's ``source.subdir``),
   ``<TorchvisionName>/raw/`` and ``<TorchvisionName>/`` (torchvision's layouts);
2. the manifest's ``source.system_dirs`` (Debian's ``/usr/share/datasets/...``).

A file ``name`` is also accepted as ``name.gz``; checksums in the manifest are
of the decompressed content, so any gzip copy verifies.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from bovw_vs_convnet.data.manifest import FileEntry, Manifest
from bovw_vs_convnet.errors import DataError

DATA_DIR_ENV = "BVC_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data directory: the argument, else ``$BVC_DATA_DIR``, else ``./data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else DEFAULT_DATA_DIR


def candidate_dirs(manifest: Manifest, data_dir: str | Path | None = None) -> list[Path]:
    """Folders that may hold the dataset's files, in search order."""
    root = resolve_data_dir(data_dir)
    out = [root / manifest.subdir]
    tv = manifest.source.get("torchvision")
    if tv:
        out += [root / tv / "raw", root / tv]
    out.append(root)
    out += [Path(d) for d in manifest.source.get("system_dirs", [])]
    seen: list[Path] = []
    for d in out:
        if d not in seen:
            seen.append(d)
    return seen


def find_file(folder: Path, entry: FileEntry) -> Path | None:
    """The file of ``entry`` in ``folder``, raw preferred over ``.gz``; None when absent."""
    raw = folder / entry.path
    if raw.is_file():
        return raw
    gz = folder / (entry.path + ".gz")
    return gz if gz.is_file() else None


def locate(manifest: Manifest, data_dir: str | Path | None = None) -> dict[str, Path] | None:
    """Map each manifest file path to where it lies, from the first folder that has them all.

    Returns None when no candidate folder holds every file.
    """
    if not manifest.files:
        return None
    for folder in candidate_dirs(manifest, data_dir):
        found = {e.path: find_file(folder, e) for e in manifest.files}
        if all(p is not None for p in found.values()):
            return {k: v for k, v in found.items() if v is not None}
    return None


def locate_or_raise(manifest: Manifest, data_dir: str | Path | None = None) -> dict[str, Path]:
    """Like :func:`locate`, but a missing dataset raises DataError saying how to get it."""
    found = locate(manifest, data_dir)
    if found is None:
        where = ", ".join(str(d) for d in candidate_dirs(manifest, data_dir))
        fetch = (
            f"run `bvc data fetch {manifest.name}` (downloads; needs a network), or "
            if manifest.source.get("torchvision")
            else ""
        )
        raise DataError(
            f"dataset {manifest.name!r} not found (looked in {where}); "
            f"{fetch}{manifest.source['how']}"
        )
    return found


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in blocks of 1 MiB (never whole in memory)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when its name ends in ``.gz``."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"cannot read {path} (corrupt?): {exc}") from None


@dataclass(frozen=True)
class FileCheck:
    """The outcome of checking one file: which checks ran (``size``, ``sha256``, ...)."""

    path: Path
    checks: tuple[str, ...]


def verify_file(entry: FileEntry, path: Path, content: bytes | None = None) -> FileCheck:
    """Check one file against its manifest entry; the first mismatch raises DataError.

    The content checksums (``sha256``, ``md5``) are of the decompressed bytes. The
    upstream ``download_md5`` (of the gzip file) is used only when no content
    checksum is given; for a raw file it is checked on a ``.gz`` copy beside it.
    ``content``: the file's (decompressed) bytes when the caller has read them
    already, so that what is checked is exactly what is then parsed.
    """
    checks: list[str] = []
    if content is None and (entry.size is not None or entry.sha256 or entry.md5):
        content = read_bytes(path)
    if entry.size is not None:
        assert content is not None
        if len(content) != entry.size:
            raise DataError(
                f"checksum mismatch: {path} has {len(content)} bytes, expected {entry.size}"
            )
        checks.append("size")
    for algo in ("sha256", "md5"):
        expected = getattr(entry, algo)
        if expected:
            assert content is not None
            got = hashlib.new(algo, content).hexdigest()
            if got != expected:
                raise DataError(f"checksum mismatch: {path} {algo} {got}, expected {expected}")
            checks.append(algo)
    if entry.download_md5 and not (entry.sha256 or entry.md5):
        gz = path if path.suffix == ".gz" else path.with_name(path.name + ".gz")
        if gz.is_file():
            got = hashlib.md5(gz.read_bytes()).hexdigest()
            if got != entry.download_md5:
                raise DataError(f"checksum mismatch: {gz} md5 {got}, expected {entry.download_md5}")
            checks.append("download_md5")
    if not checks:
        raise DataError(f"{path}: no checksum in the manifest applies to this file")
    return FileCheck(path, tuple(checks))


def verify(manifest: Manifest, data_dir: str | Path | None = None) -> list[FileCheck]:
    """Check every file of the dataset; the first mismatch raises DataError naming the file."""
    found = locate_or_raise(manifest, data_dir)
    return [verify_file(e, found[e.path]) for e in manifest.files]
