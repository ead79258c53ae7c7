"""Font files for the ``glyphs`` datasets: where they lie, which faces count, their fingerprint.

The glyph datasets are rendered from the fonts of named Debian packages (the
manifest's ``params.packages``), so that every machine with the same packages
builds the same images. This module finds those packages' font files (dpkg's
file lists, ``/var/lib/dpkg/info/<package>.list``), reads each face with fontTools
and decides which faces count:

- **Formats.** TrueType and OpenType files (``.ttf``, ``.otf``) and collections
  (``.ttc``, ``.otc``, every face by its ``fontNumber``). Type 1 files (``.pfb``,
  ``.t1``) are not read: the packages that ship them (fonts-urw-base35) ship the
  same faces as OpenType too, which Pillow's FreeType and fontTools both read.
- **Coverage.** A face counts only if its best Unicode character map (fontTools'
  ``getBestCmap``: a symbol font's (3, 0) map is not one) maps every character of
  the dataset, and every one of those glyphs has an outline (a face that maps a
  letter to an empty glyph would render a blank image).
- **Duplicates.** Files with the same sha256 count once (a package's symlinks,
  the same file in two packages). So do faces whose outlines of the dataset's
  characters are identical (the same design shipped under two names: STIX and
  STIXGeneral, Latin Modern Math and LM Roman 10); of those, the face with the
  smallest key is kept, so the choice is the same on every machine.
- **Keys and ids.** A face's key is its file's sha256 (with ``#k`` for face k of a
  collection); its id is the key's first 16 hex digits (``.k`` for a collection).
  Image ids are ``<face id>/<character>``.
- **Family** is the typographic family name of the name table (nameID 16, else 1),
  the unit the split keeps on one side.
- **Fingerprint** of a font set: the sha256 of its sorted face keys, one a line.

Debian is the expected platform; elsewhere (or in tests) ``params.font_dirs``
names folders to scan instead of, or besides, packages.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bovw_vs_convnet.data.locate import file_sha256
from bovw_vs_convnet.errors import DataError

log = logging.getLogger(__name__)

FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
COLLECTION_SUFFIXES = (".ttc", ".otc")
DPKG_INFO_DIR = Path("/var/lib/dpkg/info")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


@dataclass(frozen=True)
class FontFace:
    """One face that counts: where it lies and what it is.

    Attributes:
        key: the file's sha256, with ``#k`` appended for face k of a collection.
        path: the font file (symlinks resolved).
        font_number: the face's index in a collection (0 for a single-face file).
        package: the Debian package that ships it ("" for a face from a folder).
        family: the typographic family name (nameID 16, else 1).
        style: the typographic subfamily name (nameID 17, else 2).
    """

    key: str
    path: Path
    font_number: int
    package: str
    family: str
    style: str

    @property
    def sha256(self) -> str:
        """The font file's sha256."""
        return self.key.split("#", 1)[0]

    @property
    def face_id(self) -> str:
        """The short id of the face in image ids: 16 hex digits, ``.k`` in a collection."""
        head = self.sha256[:16]
        return head if "#" not in self.key else f"{head}.{self.font_number}"


@dataclass(frozen=True)
class FontScan:
    """The outcome of reading a set of font files.

    Attributes:
        faces: the faces that count, sorted by key.
        skipped: (path, reason) for each face or file that does not count.
        n_files: font files read (before the sha256 de-duplication).
    """

    faces: tuple[FontFace, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    n_files: int = 0
    families: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "families", tuple(sorted({f.family for f in self.faces})))

    @property
    def fingerprint(self) -> str:
        """sha256 over the sorted face keys (see :func:`font_set_fingerprint`)."""
        return font_set_fingerprint(f.key for f in self.faces)


def font_set_fingerprint(keys: Iterable[str]) -> str:
    """sha256 hex over the sorted face keys, one a line: the identity of a font set."""
    h = hashlib.sha256()
    for key in sorted(set(keys)):
        h.update(key.encode("ascii") + b"\n")
    return h.hexdigest()


def _dpkg_list(package: str, dpkg_dir: Path) -> Path | None:
    """dpkg's file list of an installed package (``pkg.list`` or ``pkg:arch.list``)."""
    plain = dpkg_dir / f"{package}.list"
    if plain.is_file():
        return plain
    return next(iter(sorted(dpkg_dir.glob(f"{package}:*.list"))), None)


def check_package_names(packages: Sequence[str], where: str) -> None:
    """Refuse a package name that is not a Debian package name (it goes into a command line)."""
    for p in packages:
        if not isinstance(p, str) or not _PACKAGE_RE.match(p):
            raise DataError(f"{where}: {p!r} is not a Debian package name")


def missing_packages(packages: Sequence[str], dpkg_dir: Path = DPKG_INFO_DIR) -> list[str]:
    """The packages of ``packages`` that are not installed, in the order given."""
    return [p for p in packages if _dpkg_list(p, dpkg_dir) is None]


def apt_install_line(packages: Sequence[str]) -> str:
    """The one command that installs ``packages`` (the CLI prints it when fonts are missing)."""
    return "apt-get install -y --no-install-recommends " + " ".join(packages)


def package_font_files(
    packages: Sequence[str], dpkg_dir: Path = DPKG_INFO_DIR
) -> list[tuple[str, Path]]:
    """(package, path) of every font file the installed ``packages`` ship, in package order.

    Raises DataError naming the missing packages and the ``apt-get install`` line
    that brings them.
    """
    missing = missing_packages(packages, dpkg_dir)
    if missing:
        if not dpkg_dir.is_dir():
            raise DataError(
                f"the glyph datasets are rendered from Debian font packages, and this "
                f"machine has no dpkg database ({dpkg_dir}); on Debian or Ubuntu run: "
                f"{apt_install_line(missing)} (or name font folders in params.font_dirs)"
            )
        raise DataError(
            f"{len(missing)} of {len(packages)} font packages are not installed "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
            f"install them with: {apt_install_line(missing)}"
        )
    out: list[tuple[str, Path]] = []
    for p in packages:
        listing = _dpkg_list(p, dpkg_dir)
        assert listing is not None
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            path = Path(line.strip())
            if path.suffix.lower() in FONT_SUFFIXES and path.is_file():
                out.append((p, path))
    return out


def folder_font_files(folders: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """("", path) of every font file under ``folders`` (recursively, sorted by path)."""
    out: list[tuple[str, Path]] = []
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise DataError(f"font folder {root} not found")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
        out += [("", p) for p in files if p.is_file()]
    return out


def _names(font: object) -> tuple[str, str]:
    """(family, style) from the name table: typographic names first (IDs 16, 17), then 1, 2."""
    table = font["name"]  # type: ignore[index]
    family = table.getDebugName(16) or table.getDebugName(1) or ""
    style = table.getDebugName(17) or table.getDebugName(2) or ""
    return " ".join(str(family).split()), " ".join(str(style).split())


def _outline_digest(font: object, cmap: dict[int, str], characters: str) -> str | None:
    """sha256 of the decomposed outlines of ``characters`` (None when one glyph is empty).

    Components are decomposed, so a glyph built from parts (i = dotless i + dot)
    hashes as what it draws. The units per em go in too: the same outline drawn on
    another grid is another size.
    """
    from fontTools.pens.recordingPen import DecomposingRecordingPen

    glyphs = font.getGlyphSet()  # type: ignore[attr-defined]
    h = hashlib.sha256(str(font["head"].unitsPerEm).encode())  # type: ignore[index]
    for ch in characters:
        pen = DecomposingRecordingPen(glyphs)
        glyphs[cmap[ord(ch)]].draw(pen)
        if not any(op in ("lineTo", "curveTo", "qCurveTo") for op, _ in pen.value):
            return None
        h.update(repr(pen.value).encode())
    return h.hexdigest()


def _read_faces(
    package: str, path: Path, sha: str, characters: str
) -> tuple[list[tuple[FontFace, str]], list[tuple[str, str]]]:
    """The faces of one file that cover ``characters``, each with its outline digest."""
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    kept: list[tuple[FontFace, str]] = []
    skipped: list[tuple[str, str]] = []
    is_collection = path.suffix.lower() in COLLECTION_SUFFIXES
    try:
        if is_collection:
            fonts = list(TTCollection(path, lazy=True).fonts)
        else:
            fonts = [TTFont(path, lazy=True)]
    except (TTLibError, OSError, ValueError, KeyError, AssertionError) as exc:
        return [], [(str(path), f"not readable by fontTools ({type(exc).__name__})")]
    for k, font in enumerate(fonts):
        where = f"{path}#{k}" if is_collection else str(path)
        try:
            cmap = font.getBestCmap() or {}
            uncovered = [ch for ch in characters if ord(ch) not in cmap]
            if uncovered:
                skipped.append((where, f"no glyph for {''.join(uncovered[:8])!r}"))
                continue
            digest = _outline_digest(font, cmap, characters)
            if digest is None:
                skipped.append((where, "an empty glyph among the characters"))
                continue
            family, style = _names(font)
        except Exception as exc:  # a broken table anywhere in a third-party file: skip the face
            skipped.append((where, f"unreadable table ({type(exc).__name__}: {exc})"))
            continue
        if not family:
            skipped.append((where, "no family name"))
            continue
        key = f"{sha}#{k}" if is_collection else sha
        face = FontFace(key, path, k if is_collection else 0, package, family, style)
        kept.append((face, digest))
    return kept, skipped


def scan_fonts(
    files: Iterable[tuple[str, Path]],
    characters: str,
    *,
    exclude_families: Iterable[str] = (),
) -> FontScan:
    """Read font files and keep the faces that count (see the module docstring).

    Args:
        files: (package, path) pairs, as :func:`package_font_files` gives.
        characters: every character a face must have (the dataset's classes).
        exclude_families: family names left out on purpose (the manifest says why).
    """
    excluded = set(exclude_families)
    by_sha: dict[str, tuple[str, Path]] = {}
    skipped: list[tuple[str, str]] = []
    n_files = 0
    for package, path in files:
        n_files += 1
        real = path.resolve()
        sha = file_sha256(real)
        if sha in by_sha:
            skipped.append((str(path), f"same file as {by_sha[sha][1]}"))
            continue
        by_sha[sha] = (package, real)
    candidates: list[tuple[FontFace, str]] = []
    fonttools_log = logging.getLogger("fontTools")
    level = fonttools_log.level
    fonttools_log.setLevel(logging.ERROR)  # "timestamp seems very low" and the like, per file
    try:
        for sha in sorted(by_sha):
            package, real = by_sha[sha]
            kept, why = _read_faces(package, real, sha, characters)
            candidates += kept
            skipped += why
    finally:
        fonttools_log.setLevel(level)
    faces: list[FontFace] = []
    by_outline: dict[str, FontFace] = {}
    for face, digest in sorted(candidates, key=lambda fd: fd[0].key):
        if face.family in excluded:
            skipped.append((str(face.path), f"family {face.family!r} excluded by the manifest"))
        elif digest in by_outline:
            skipped.append((str(face.path), f"same outlines as {by_outline[digest].path}"))
        else:
            by_outline[digest] = face
            faces.append(face)
    n_families = len({f.family for f in faces})
    log.info("fonts: %d files, %d faces count, in %d families", n_files, len(faces), n_families)
    return FontScan(faces=tuple(faces), skipped=tuple(skipped), n_files=n_files)
