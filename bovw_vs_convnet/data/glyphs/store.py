"""A rendered glyph set on disk: build it, load it as ImageSets, verify it against its manifest.

``bvc data fetch glyphs`` renders the set into ``<data-dir>/glyphs/``: ``images.npy``
(uint8 N×H×W×C, face by face in key order, each face's 62 characters in class
order; read without pickle) and ``index.json`` (the settings, the font set's
fingerprint, the faces with family, group and part, the sha256 of ``images.npy``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bovw_vs_convnet.data.fonts import DPKG_INFO_DIR, FontScan
from bovw_vs_convnet.data.glyphs.groups import (
    design_groups,
    font_lines,
    held_out_groups,
    scan_glyph_fonts,
)
from bovw_vs_convnet.data.glyphs.render import render_faces
from bovw_vs_convnet.data.glyphs.settings import CHARACTERS, GlyphSettings, glyph_settings
from bovw_vs_convnet.data.imageset import ImageSet
from bovw_vs_convnet.data.locate import file_sha256, resolve_data_dir
from bovw_vs_convnet.data.manifest import Manifest
from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.progress import ProgressMode

log = logging.getLogger(__name__)

INDEX_FORMAT = "bvc-glyphs/1"
INDEX_FILE = "index.json"
IMAGES_FILE = "images.npy"


@dataclass(frozen=True)
class GlyphBuild:
    """What ``bvc data fetch`` made: where, from how many faces, parts, time, fingerprints."""

    path: Path
    n_faces: int
    n_families: int
    n_groups: int
    n_train: int
    n_test: int
    seconds: float
    font_set_sha256: str
    expected_sha256: str

    @property
    def matches_manifest(self) -> bool:
        """True when the font set is the manifest's (or the manifest records none)."""
        return not self.expected_sha256 or self.expected_sha256 == self.font_set_sha256


def _face_entries(scan: FontScan, settings: GlyphSettings) -> list[dict[str, Any]]:
    """The index's faces, in key order: id, key, family, style, design group, part, file."""
    group_of = design_groups(sorted(scan.families), settings.same_design)
    tests = held_out_groups(list(group_of.values()), settings.test_fraction, settings.split_seed)
    return [
        {
            "id": f.face_id,
            "key": f.key,
            "family": f.family,
            "style": f.style,
            "group": group_of[f.family],
            "part": "test" if group_of[f.family] in tests else "train",
            "package": f.package,
            "file": str(f.path),
            "font_number": f.font_number,
        }
        for f in scan.faces
    ]


def _write_set(final: Path, images: np.ndarray, index: dict[str, Any]) -> None:
    """Write ``images.npy`` and ``index.json`` (its ``images_sha256`` filled in) into ``final``.

    The folder is written beside its final place and renamed into it (one rename),
    so a reader never sees half a set; an older set there is replaced.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.partial-{os.getpid()}-{time.time_ns()}")
    staging.mkdir()  # with the umask's permissions
    try:
        np.save(staging / IMAGES_FILE, images, allow_pickle=False)
        index = {**index, "images_sha256": file_sha256(staging / IMAGES_FILE)}
        (staging / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        if final.exists():
            old = final.with_name(f".{final.name}-old-{os.getpid()}")
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build_glyphs(
    manifest: Manifest,
    data_dir: str | Path | None = None,
    *,
    n_jobs: int | None = None,
    dpkg_dir: Path = DPKG_INFO_DIR,
    progress: ProgressMode | bool = "none",
) -> GlyphBuild:
    """Render a glyph manifest's set into ``<data-dir>/<subdir>/`` (replacing an older one).

    A reader never sees half a set (see :func:`_write_set`). Raises DataError when
    fonts are missing (with the ``apt-get install`` line) or the manifest is wrong.
    """
    start = time.perf_counter()
    settings = glyph_settings(manifest)
    scan = scan_glyph_fonts(settings, dpkg_dir=dpkg_dir)
    faces = _face_entries(scan, settings)
    jobs = n_jobs if n_jobs is not None else min(os.cpu_count() or 1, 8)
    images = render_faces(scan.faces, settings, n_jobs=jobs, progress=progress)
    n_test = len(CHARACTERS) * sum(f["part"] == "test" for f in faces)
    final = resolve_data_dir(data_dir) / manifest.subdir
    index = {
        "format": INDEX_FORMAT,
        "dataset": manifest.name,
        "characters": CHARACTERS,
        "render": settings.render_key(),
        "split": settings.split_key(),
        "font_set_sha256": scan.fingerprint,
        "images_sha256": "",  # of the file written (see _write_set)
        "shape": list(images.shape),
        "n_train": len(images) - n_test,
        "n_test": n_test,
        "faces": faces,
    }
    _write_set(final, images, index)
    return GlyphBuild(
        path=final,
        n_faces=len(scan.faces),
        n_families=len(scan.families),
        n_groups=len({f["group"] for f in faces}),
        n_train=len(images) - n_test,
        n_test=n_test,
        seconds=time.perf_counter() - start,
        font_set_sha256=scan.fingerprint,
        expected_sha256=settings.font_set_sha256,
    )


def _read_index(manifest: Manifest, folder: Path) -> dict[str, Any]:
    path = folder / INDEX_FILE
    if not path.is_file() or not (folder / IMAGES_FILE).is_file():
        raise DataError(
            f"dataset {manifest.name!r} is not rendered in {folder}; run "
            f"`bvc data fetch {manifest.name}` (it renders the set from Debian's font packages)"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a glyph index ({exc}); run `bvc data fetch` again") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise DataError(f"{path}: not a {INDEX_FORMAT} index; run `bvc data fetch` again")
    return index


def _read_images(
    manifest: Manifest, settings: GlyphSettings, folder: Path, n_faces: int
) -> np.ndarray:
    """``images.npy``, checked to hold ``n_faces`` faces' 62 images in the manifest's format."""
    try:
        images = np.load(folder / IMAGES_FILE, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {folder / IMAGES_FILE} ({exc}); fetch it again") from None
    expected = (n_faces * len(CHARACTERS), settings.size, settings.size, settings.channels)
    if images.dtype != np.uint8 or images.shape != expected:
        raise DataError(
            f"{folder / IMAGES_FILE}: {images.dtype} {images.shape}, expected uint8 {expected}; "
            f"run `bvc data fetch {manifest.name}` again"
        )
    return images


def _parts(
    manifest: Manifest, images: np.ndarray, faces: list[dict[str, Any]]
) -> dict[str, ImageSet]:
    """``train`` and ``test`` ImageSets by each face's part, ids ``<face id>/<character>``."""
    n_chars = len(CHARACTERS)
    ids = np.array([f"{f['id']}/{ch}" for f in faces for ch in CHARACTERS], dtype=object)
    groups = np.array([f["group"] for f in faces for _ in CHARACTERS], dtype=object)
    labels = np.tile(np.arange(n_chars, dtype=np.int64), len(faces))
    is_test = np.repeat([f["part"] == "test" for f in faces], n_chars)
    parts = {}
    for part, where in (("train", ~is_test), ("test", is_test)):
        pos = np.flatnonzero(where)
        parts[part] = ImageSet(
            images=np.ascontiguousarray(images[pos]),
            labels=labels[pos],
            ids=ids[pos],
            class_names=manifest.classes,
            name=manifest.name,
            mirror_ok=manifest.mirror_ok,
            groups=groups[pos],
        )
    return parts


def load_glyphs(
    manifest: Manifest, data_dir: str | Path | None = None
) -> tuple[ImageSet, ImageSet, Manifest]:
    """The rendered set as (train, test, the manifest with the rendered part sizes).

    Image ids are ``<face id>/<character>``; each ImageSet's ``groups`` holds the
    design group of every image. A set rendered with other settings than the
    manifest's, or missing, raises DataError saying to render it again; a font
    set other than the manifest's is loaded with a warning (``bvc data verify``
    names the fonts that differ).
    """
    settings = glyph_settings(manifest)
    folder = resolve_data_dir(data_dir) / manifest.subdir
    index = _read_index(manifest, folder)
    if index.get("render") != settings.render_key() or index.get("split") != settings.split_key():
        raise DataError(
            f"dataset {manifest.name!r} in {folder} was rendered with other settings than "
            f"its manifest's; run `bvc data fetch {manifest.name}` again"
        )
    faces = index.get("faces", [])
    images = _read_images(manifest, settings, folder, len(faces))
    if settings.font_set_sha256 and index.get("font_set_sha256") != settings.font_set_sha256:
        log.warning(
            "%s: the fonts here differ from the manifest's font set (`bvc data verify %s` "
            "names them); ids and split fingerprints will differ from other machines'",
            manifest.name,
            manifest.name,
        )
    parts = _parts(manifest, images, faces)
    loaded = replace(manifest, n_train=len(parts["train"]), n_test=len(parts["test"]))
    return parts["train"], parts["test"], loaded


@dataclass(frozen=True)
class GlyphCheck:
    """``bvc data verify`` for a glyph set: the fonts here against the manifest's, the files.

    Attributes:
        font_set_sha256: the fingerprint of the fonts found here.
        expected_sha256: the manifest's ("" when it records none).
        missing: manifest entries (``"<face id> <package>:<file>"``) not found here.
        extra: faces found here that the manifest does not list (same form).
        rendered: the rendered folder, None when the set is not rendered.
        rendered_ok: whether that folder holds this font set with the manifest's
            settings and its images file's sha256 matches its index.
    """

    font_set_sha256: str
    expected_sha256: str
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    rendered: Path | None
    rendered_ok: bool

    @property
    def fonts_match(self) -> bool:
        """True when the fonts here are the manifest's font set."""
        if self.expected_sha256:
            return self.font_set_sha256 == self.expected_sha256
        return not self.missing and not self.extra


def verify_glyphs(
    manifest: Manifest, data_dir: str | Path | None = None, *, dpkg_dir: Path = DPKG_INFO_DIR
) -> GlyphCheck:
    """Compare the fonts here with the manifest's font set, and check the rendered files."""
    settings = glyph_settings(manifest)
    scan = scan_glyph_fonts(settings, dpkg_dir=dpkg_dir)
    here = font_lines(scan)
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    if settings.fonts:
        here_ids = {line.split()[0]: line for line in here}
        want_ids = {line.split()[0]: line for line in settings.fonts}
        missing = tuple(want_ids[i] for i in sorted(set(want_ids) - set(here_ids)))
        extra = tuple(here_ids[i] for i in sorted(set(here_ids) - set(want_ids)))
    folder = resolve_data_dir(data_dir) / manifest.subdir
    rendered: Path | None = None
    ok = False
    if (folder / INDEX_FILE).is_file():
        rendered = folder
        index = _read_index(manifest, folder)
        ok = (
            index.get("font_set_sha256") == scan.fingerprint
            and index.get("render") == settings.render_key()
            and index.get("split") == settings.split_key()
            and (folder / IMAGES_FILE).is_file()
            and index.get("images_sha256") == file_sha256(folder / IMAGES_FILE)
        )
    return GlyphCheck(
        font_set_sha256=scan.fingerprint,
        expected_sha256=settings.font_set_sha256,
        missing=missing,
        extra=extra,
        rendered=rendered,
        rendered_ok=ok,
    )
