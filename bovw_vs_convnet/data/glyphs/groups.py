"""The faces a glyph set is drawn from, their design groups, and the official test groups.

Font families are put into design groups (a family alone, or the families
``params.same_design`` lists together: the same design sold under two names, as
Nimbus Roman and TeX Gyre Termes), and a seeded ``test_fraction`` of the groups is
the test part (the official train/test division). The ImageSet carries the group
of each image (``groups``), so the validation part, carved from the train part by
:func:`bovw_vs_convnet.data.split.make_split`, also takes whole groups: a model is
scored on fonts whose design it has never seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from bovw_vs_convnet.data.fonts import (
    DPKG_INFO_DIR,
    FontScan,
    folder_font_files,
    package_font_files,
    scan_fonts,
)
from bovw_vs_convnet.data.glyphs.settings import CHARACTERS, GlyphSettings
from bovw_vs_convnet.errors import DataError


def scan_glyph_fonts(settings: GlyphSettings, *, dpkg_dir: Path = DPKG_INFO_DIR) -> FontScan:
    """The faces that count for ``settings`` (missing packages: DataError with the apt line)."""
    files = package_font_files(settings.packages, dpkg_dir) if settings.packages else []
    files += folder_font_files(settings.font_dirs)
    scan = scan_fonts(files, CHARACTERS, exclude_families=settings.exclude_families)
    if not scan.faces:
        raise DataError(f"no font covers the 62 characters among {scan.n_files} font files")
    return scan


def design_groups(families: Sequence[str], same_design: Sequence[Sequence[str]]) -> dict[str, str]:
    """Each family's design group: the first family of its ``same_design`` list, else itself."""
    group = {f: f for f in families}
    for names in same_design:
        for f in names:
            group[f] = names[0]
    return {f: group[f] for f in families}


def held_out_groups(groups: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The test part's groups: a seeded ``round(fraction * G)`` of the G distinct groups
    (at least one, never all).

    The groups are ranked by the sha256 of (seed, name) and the first ones taken, so
    a group's rank does not depend on which other groups are there (nor on a random
    generator's version): a machine that lacks one family moves at most a group or
    two across, instead of drawing another test part.
    """
    names = sorted(set(groups))
    if len(names) < 2:
        raise DataError(f"a font-family split needs at least 2 families, got {len(names)}")
    k = min(len(names) - 1, max(1, round(fraction * len(names))))
    ranked = sorted(names, key=lambda g: hashlib.sha256(f"{seed}\n{g}".encode()).hexdigest())
    return set(ranked[:k])


def font_line(face_id: str, package: str, file: str | Path) -> str:
    """One entry of the manifest's ``params.fonts``: ``"<face id> <package>:<file name>"``."""
    return f"{face_id} {package or 'folder'}:{Path(file).name}"


def font_lines(scan: FontScan) -> list[str]:
    """The manifest's ``params.fonts`` entries for a scan, in key order."""
    return [font_line(f.face_id, f.package, f.path) for f in scan.faces]
