"""The real glyph sets, rendered from Debian's font packages (slow; skipped without the fonts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bovw_vs_convnet.data import load_dataset, make_split
from bovw_vs_convnet.data.fonts import missing_packages
from bovw_vs_convnet.data.glyphs import build_glyphs, glyph_settings, verify_glyphs
from bovw_vs_convnet.data.manifest import get_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """glyphs and glyphs-wild rendered into a fresh data dir (skips when fonts are missing)."""
    manifest = get_manifest("glyphs")
    missing = missing_packages(glyph_settings(manifest).packages)
    if missing:
        pytest.skip(f"{len(missing)} font packages not installed ({', '.join(missing[:3])}, ...)")
    root = tmp_path_factory.mktemp("glyphs-data")
    build_glyphs(manifest, root)
    build_glyphs(get_manifest("glyphs-wild"), root)
    return root


def test_the_real_set_has_the_manifests_fonts_and_counts(data_dir: Path) -> None:
    manifest = get_manifest("glyphs")
    settings = glyph_settings(manifest)
    ds = load_dataset("glyphs", data_dir)
    assert ds.test is not None
    check = verify_glyphs(manifest, data_dir)
    assert check.fonts_match, f"fonts differ: {check.missing[:3]} missing, {check.extra[:3]} extra"
    assert check.font_set_sha256 == settings.font_set_sha256 and check.rendered_ok
    assert (len(ds.train), len(ds.test)) == (manifest.n_train, manifest.n_test)
    assert len(ds.train) + len(ds.test) == 62 * len(settings.fonts)
    assert ds.train.images.shape[1:] == (32, 32, 1)
    assert np.bincount(ds.test.labels, minlength=62).min() == len(ds.test) // 62


def test_the_real_split_keeps_designs_apart(data_dir: Path) -> None:
    ds = load_dataset("glyphs", data_dir)
    s = make_split(ds, seed=0)
    assert s.val is not None
    parts = [set(p.groups) for p in (s.train, s.val, s.test)]  # type: ignore[arg-type]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])


def test_glyphs_wild_has_the_same_ids_in_colour(data_dir: Path) -> None:
    clean, wild = load_dataset("glyphs", data_dir), load_dataset("glyphs-wild", data_dir)
    assert wild.test is not None and clean.test is not None
    assert list(wild.test.ids) == list(clean.test.ids)
    assert wild.train.images.shape[1:] == (32, 32, 3)
