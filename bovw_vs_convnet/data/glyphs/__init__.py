"""The ``glyphs`` datasets: 62 characters rendered from computer fonts, split by font family.

After Chars74K's font subset (T. E. de Campos, B. R. Babu, M. Varma, "Character
recognition in natural images", VISAPP 2009): 62 classes (0-9, A-Z, a-z), each
image one character of one font. The fonts are those of the Debian packages the
manifest names (:mod:`bovw_vs_convnet.data.fonts` says which faces count), so
every machine with the same packages renders the same set with the same ids.

- :mod:`.settings`: the manifest's ``params``, checked (a variant such as
  ``glyphs-wild`` or ``glyphs-64`` inherits its base's fonts and split);
- :mod:`.groups`: the faces that count, their design groups and the official
  test groups (whole designs on one side);
- :mod:`.render`: drawing one face's 62 characters, clean or ``wild``;
- :mod:`.store`: the rendered set on disk (``images.npy``, ``index.json``): build,
  load as ImageSets, verify.
"""

from bovw_vs_convnet.data.glyphs.groups import font_line, font_lines, scan_glyph_fonts
from bovw_vs_convnet.data.glyphs.render import render_faces
from bovw_vs_convnet.data.glyphs.settings import CHARACTERS, GlyphSettings, glyph_settings
from bovw_vs_convnet.data.glyphs.store import (
    IMAGES_FILE,
    INDEX_FILE,
    build_glyphs,
    load_glyphs,
    verify_glyphs,
)

__all__ = [
    "CHARACTERS",
    "IMAGES_FILE",
    "INDEX_FILE",
    "GlyphSettings",
    "build_glyphs",
    "font_line",
    "font_lines",
    "glyph_settings",
    "load_glyphs",
    "render_faces",
    "scan_glyph_fonts",
    "verify_glyphs",
]
