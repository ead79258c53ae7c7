"""The glyph datasets on tiny fonts made in the test: which faces count, ids, split, errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from glyph_fonts import write_font, write_manifest

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.data import load_dataset, make_split
from bovw_vs_convnet.data.fonts import (
    apt_install_line,
    folder_font_files,
    font_set_fingerprint,
    missing_packages,
    package_font_files,
    scan_fonts,
)
from bovw_vs_convnet.data.glyphs import (
    CHARACTERS,
    GlyphSettings,
    build_glyphs,
    render_faces,
    scan_glyph_fonts,
)
from bovw_vs_convnet.data.manifest import get_manifest
from bovw_vs_convnet.errors import DataError

FAMILIES = ("Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta", "Eta", "Theta")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fonts(tmp_path: Path) -> Path:
    """Eight families of two styles each (16 faces), every one a design of its own."""
    folder = tmp_path / "fonts"
    for i, family in enumerate(FAMILIES):
        write_font(folder / f"{family}-Regular.ttf", family, "Regular", variant=2 * i)
        write_font(folder / f"{family}-Bold.ttf", family, "Bold", variant=2 * i + 1)
    return folder


@pytest.fixture
def tiny(tmp_path: Path, fonts: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Manifest ``tiny-glyphs`` over ``fonts`` on BVC_MANIFESTS_DIR; returns the data dir."""
    write_manifest(tmp_path / "m", "tiny-glyphs", [fonts], params="test_fraction = 0.25")
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    monkeypatch.delenv("BVC_DATA_DIR", raising=False)
    return tmp_path / "data"


def test_a_face_counts_once_and_only_with_all_62_characters(tmp_path: Path) -> None:
    d = tmp_path / "f"
    alpha = write_font(d / "alpha.ttf", "Alpha", variant=1)
    shutil.copy(alpha, d / "alpha-copy.ttf")  # the same file twice (a symlink, two packages)
    write_font(d / "alpha-bold.ttf", "Alpha", "Bold", variant=2)
    write_font(d / "beta.ttf", "Beta", variant=3)
    write_font(d / "beta-again.ttf", "Beta Two", variant=3)  # other bytes, the same outlines
    write_font(d / "no-z.ttf", "NoZed", variant=4, skip="z")
    write_font(d / "blank-q.ttf", "BlankQ", variant=5, empty="q")
    scan = scan_fonts(folder_font_files([d]), CHARACTERS)

    # of two faces with the same outlines, the one with the smaller key stays (on any machine)
    beta, again = _sha(d / "beta.ttf"), _sha(d / "beta-again.ttf")
    kept_beta = "Beta" if beta < again else "Beta Two"
    kept = sorted((f.family, f.style) for f in scan.faces)
    assert kept == [("Alpha", "Bold"), ("Alpha", "Regular"), (kept_beta, "Regular")]
    assert min(beta, again) in {f.key for f in scan.faces}
    reasons = {Path(p).name: why for p, why in scan.skipped}
    assert reasons["no-z.ttf"] == "no glyph for 'z'"
    assert reasons["blank-q.ttf"] == "an empty glyph among the characters"
    assert sum("same file as" in why for why in reasons.values()) == 1
    assert sum("same outlines as" in why for why in reasons.values()) == 1
    assert scan.n_files == 7


def test_excluded_families_do_not_count(tmp_path: Path) -> None:
    write_font(tmp_path / "a.ttf", "Alpha", variant=1)
    write_font(tmp_path / "b.ttf", "Symbolic", variant=2)
    scan = scan_fonts(folder_font_files([tmp_path]), CHARACTERS, exclude_families=["Symbolic"])
    assert [f.family for f in scan.faces] == ["Alpha"]


def test_fingerprint_and_ids_come_from_the_files_bytes_not_their_names(
    tmp_path: Path, fonts: Path
) -> None:
    moved = tmp_path / "elsewhere" / "deeper"
    for p in sorted(fonts.iterdir(), reverse=True):
        moved.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, moved / f"renamed-{p.stem[::-1]}.ttf")
    settings = GlyphSettings(font_dirs=(str(fonts),))
    a = scan_glyph_fonts(settings)
    b = scan_glyph_fonts(GlyphSettings(font_dirs=(str(moved),)))
    expected = hashlib.sha256(
        "".join(f"{_sha(p)}\n" for p in sorted(fonts.iterdir(), key=_sha)).encode()
    ).hexdigest()
    assert a.fingerprint == b.fingerprint == expected
    assert [f.face_id for f in a.faces] == [f.face_id for f in b.faces]
    assert [f.face_id for f in a.faces] == sorted(_sha(p)[:16] for p in fonts.iterdir())


def test_two_builds_give_the_same_ids_images_and_fingerprint(tiny: Path) -> None:
    manifest = get_manifest("tiny-glyphs")
    first = build_glyphs(manifest, tiny / "one")
    second = build_glyphs(manifest, tiny / "two")
    assert first.font_set_sha256 == second.font_set_sha256
    one = load_dataset("tiny-glyphs", tiny / "one")
    two = load_dataset("tiny-glyphs", tiny / "two")
    for a, b in ((one.train, two.train), (one.test, two.test)):
        assert b is not None and a is not None
        assert list(a.ids) == list(b.ids)
        assert np.array_equal(a.images, b.images)
        assert np.array_equal(a.labels, b.labels)
    assert (first.n_faces, first.n_families, first.n_train + first.n_test) == (16, 8, 16 * 62)
    face = sorted(_sha(p) for p in Path(manifest.params["font_dirs"][0]).iterdir())[0]
    ids = set(one.train.ids) | set(one.test.ids)  # type: ignore[union-attr]
    assert {f"{face[:16]}/{ch}" for ch in CHARACTERS} <= ids
    index = json.loads((tiny / "one" / "tiny-glyphs" / "index.json").read_text())
    assert index["font_set_sha256"] == font_set_fingerprint(f["key"] for f in index["faces"])


def test_no_family_is_on_two_sides_of_the_split(tiny: Path) -> None:
    build_glyphs(get_manifest("tiny-glyphs"), tiny)
    ds = load_dataset("tiny-glyphs", tiny)
    assert ds.test is not None and ds.test.groups is not None
    assert len(set(ds.test.groups)) == 2  # round(0.25 * 8) of the families
    for seed in range(4):
        for train_size in (None, 124, 372):
            s = make_split(ds, seed=seed, train_size=train_size, val_fraction=0.2)
            assert s.val is not None
            parts = [set(p.groups) for p in (s.train, s.val, s.test)]  # type: ignore[arg-type]
            assert parts[0].isdisjoint(parts[1])
            assert parts[0].isdisjoint(parts[2])
            assert parts[1].isdisjoint(parts[2])
            assert np.bincount(s.train.labels, minlength=62).min() >= 1


def test_same_design_families_share_a_group_and_a_side(
    tmp_path: Path, fonts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_manifest(
        tmp_path / "m", "tiny-glyphs", [fonts],
        params='same_design = [["Alpha", "Beta", "Gamma"]]\ntest_fraction = 0.5',
    )  # fmt: skip
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    build = build_glyphs(get_manifest("tiny-glyphs"), tmp_path / "data")
    assert build.n_groups == 6
    index = json.loads((build.path / "index.json").read_text())
    joined = [f for f in index["faces"] if f["family"] in ("Alpha", "Beta", "Gamma")]
    assert {f["group"] for f in joined} == {"Alpha"}
    assert len({f["part"] for f in joined}) == 1
    assert len({f["group"] for f in index["faces"] if f["part"] == "test"}) == 3  # of 6


def test_glyph_box_hides_size_and_em_box_keeps_it(tmp_path: Path) -> None:
    write_font(tmp_path / "f.ttf", "Case", variant=7, small_lower="cos")
    faces = scan_glyph_fonts(GlyphSettings(font_dirs=(str(tmp_path),))).faces

    def pair_difference(box: str, lower: str) -> float:
        images = render_faces(faces, GlyphSettings(box=box)).astype(np.int64)
        small, big = CHARACTERS.index(lower), CHARACTERS.index(lower.upper())
        return float(np.abs(images[small] - images[big]).mean())

    # c drawn as C at half size: one image in the glyph box (the edges aside), two in the em box
    assert pair_difference("glyph", "c") < 6.0
    assert pair_difference("em", "c") > 15.0
    assert pair_difference("glyph", "a") > 20.0  # a and A are two shapes in either box


def test_glyphs_wild_is_rgb_and_the_same_for_a_seed(fonts: Path) -> None:
    faces = scan_glyph_fonts(GlyphSettings(font_dirs=(str(fonts),))).faces[:2]
    wild = GlyphSettings(style="wild", channels=3, wild_seed=0)
    a = render_faces(faces, wild)
    b = render_faces(faces[::-1], wild)  # each image's draws are its own: order does not matter
    c = render_faces(faces, GlyphSettings(style="wild", channels=3, wild_seed=1))
    assert a.shape == (124, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, np.concatenate([b[62:], b[:62]]))
    assert not np.array_equal(a, c)
    assert float(np.abs(a.astype(int) - c.astype(int)).mean()) > 20.0
    # colour: the three channels differ (a grey image would have them equal)
    assert float(np.abs(a[..., 0].astype(int) - a[..., 1].astype(int)).mean()) > 10.0


def test_fetch_then_split_and_verify_from_the_command_line(tiny: Path) -> None:
    runner = CliRunner()
    fetch = runner.invoke(main, ["data", "fetch", "tiny-glyphs", "--data-dir", str(tiny)])
    assert fetch.exit_code == 0, fetch.output
    assert "992 images of 16 faces (8 families in 8 design groups)" in fetch.output
    assert "train 744, test 248" in fetch.output
    split = runner.invoke(main, ["data", "split", "tiny-glyphs", "--data-dir", str(tiny)])
    assert split.exit_code == 0, split.output
    assert split.output.startswith("tiny-glyphs: train ")
    verify = runner.invoke(main, ["data", "verify", "tiny-glyphs", "--data-dir", str(tiny)])
    assert verify.exit_code == 0, verify.output
    assert verify.output.splitlines()[-1] == "tiny-glyphs: verified"


def test_verify_names_the_fonts_that_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "fonts"
    for i, family in enumerate(("Alpha", "Beta", "Gamma")):
        write_font(folder / f"{family}.ttf", family, variant=i)
    settings = GlyphSettings(font_dirs=(str(folder),))
    from bovw_vs_convnet.data.glyphs import font_lines

    scan = scan_glyph_fonts(settings)
    recorded = ", ".join(f'"{line}"' for line in font_lines(scan))
    params = f'font_set_sha256 = "{scan.fingerprint}"\nfonts = [{recorded}]'
    write_manifest(tmp_path / "m", "tiny-glyphs", [folder], params=params)
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    gone = _sha(folder / "Beta.ttf")[:16]
    (folder / "Beta.ttf").unlink()
    write_font(folder / "Omega.ttf", "Omega", variant=9)
    new = _sha(folder / "Omega.ttf")[:16]

    result = CliRunner().invoke(
        main, ["data", "verify", "tiny-glyphs", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert f"missing  {gone} folder:Beta.ttf" in result.stdout
    assert f"extra    {new} folder:Omega.ttf" in result.stdout
    assert "2 face(s), listed above" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_packages_name_the_apt_get_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_manifest(tmp_path / "m", "tiny-glyphs", [], params='packages = ["fonts-bvc-absent"]')
    text = (tmp_path / "m" / "tiny-glyphs.toml").read_text().replace("font_dirs = []\n", "")
    (tmp_path / "m" / "tiny-glyphs.toml").write_text(text)
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    result = CliRunner().invoke(main, ["data", "fetch", "tiny-glyphs", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("apt-get install -y --no-install-recommends fonts-bvc-absent")
    assert "Traceback" not in result.output


def test_packages_are_read_from_dpkg_file_lists(tmp_path: Path) -> None:
    font = write_font(tmp_path / "share" / "a.ttf", "Alpha", variant=1)
    dpkg = tmp_path / "dpkg"
    dpkg.mkdir()
    (dpkg / "fonts-here.list").write_text(f"/.\n{font.parent}\n{font}\n{font.parent}/README\n")
    (dpkg / "fonts-multi:amd64.list").write_text(f"{font}\n")
    assert missing_packages(["fonts-here", "fonts-gone", "fonts-multi"], dpkg) == ["fonts-gone"]
    files = package_font_files(["fonts-here", "fonts-multi"], dpkg)
    assert files == [("fonts-here", font), ("fonts-multi", font)]
    with pytest.raises(DataError, match=r"install them with: apt-get install -y .* fonts-gone$"):
        package_font_files(["fonts-here", "fonts-gone"], dpkg)
    assert apt_install_line(["a", "b"]) == "apt-get install -y --no-install-recommends a b"


@pytest.mark.parametrize(
    ("params", "extra", "message"),
    [
        ("colour = 1", "", "unknown key 'params.colour'"),
        ('box = "round"', "", "'params.box' must be one of glyph, em"),
        ('style = "wild"', "", "style 'wild' renders 3 channel(s), manifest says 1"),
        ("margin = 0.6", "", "'params.margin' must be a float in [0.0, 0.3]"),
        ('same_design = [["Alpha"]]', "", "'params.same_design' must be a list of lists of 2+"),
        ('packages = ["Bad Name"]', "", "'Bad Name' is not a Debian package name"),
        ('base = "tiny-glyphs"', "", "'params.base' must name another glyph manifest"),
    ],
)
def test_a_wrong_manifest_is_one_line_and_exit_2(
    tmp_path: Path, fonts: Path, monkeypatch: pytest.MonkeyPatch, params: str, extra: str,
    message: str,
) -> None:  # fmt: skip
    write_manifest(tmp_path / "m", "tiny-glyphs", [fonts], params=params, extra=extra)
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path / "m"))
    result = CliRunner().invoke(main, ["data", "fetch", "tiny-glyphs", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_a_non_square_size_is_refused(tmp_path: Path, fonts: Path) -> None:
    path = write_manifest(tmp_path, "tiny-glyphs", [fonts])
    path.write_text(path.read_text().replace("[32, 32]", "[32, 48]"))
    from bovw_vs_convnet.data.glyphs import glyph_settings
    from bovw_vs_convnet.data.manifest import load_manifest

    with pytest.raises(DataError, match="glyph images are square"):
        glyph_settings(load_manifest(path))


def test_an_unrendered_set_says_how_to_render_it(tiny: Path) -> None:
    with pytest.raises(DataError, match=r"not rendered in .*; run `bvc data fetch tiny-glyphs`"):
        load_dataset("tiny-glyphs", tiny)
    result = CliRunner().invoke(main, ["data", "split", "tiny-glyphs", "--data-dir", str(tiny)])
    assert result.exit_code == 2
    assert "bvc data fetch tiny-glyphs" in result.stderr


def test_a_set_rendered_with_other_settings_is_refused(tiny: Path, tmp_path: Path) -> None:
    build_glyphs(get_manifest("tiny-glyphs"), tiny)
    path = tmp_path / "m" / "tiny-glyphs.toml"
    path.write_text(path.read_text().replace("test_fraction = 0.25", "test_fraction = 0.5"))
    with pytest.raises(DataError, match="rendered with other settings"):
        load_dataset("tiny-glyphs", tiny)


def test_a_variant_takes_fonts_and_split_from_its_base(
    tiny: Path, tmp_path: Path, fonts: Path
) -> None:
    write_manifest(tmp_path / "m", "tiny-wild", [], params='base = "tiny-glyphs"\nstyle = "wild"')
    path = tmp_path / "m" / "tiny-wild.toml"
    path.write_text(path.read_text().replace("channels = 1", "channels = 3").replace(
        "font_dirs = []\n", ""
    ))  # fmt: skip
    build_glyphs(get_manifest("tiny-glyphs"), tiny)
    build_glyphs(get_manifest("tiny-wild"), tiny)
    clean, wild = load_dataset("tiny-glyphs", tiny), load_dataset("tiny-wild", tiny)
    assert wild.train.channels == 3
    assert wild.test is not None and clean.test is not None
    assert list(wild.test.ids) == list(clean.test.ids)
    assert make_split(wild, seed=3).fingerprint == make_split(clean, seed=3).fingerprint
    path.write_text(path.read_text() + 'packages = ["fonts-x"]\n')
    with pytest.raises(DataError, match=r"'params\.packages' comes from the base 'tiny-glyphs'"):
        load_dataset("tiny-wild", tiny)


def test_worker_processes_draw_the_same_bytes(fonts: Path) -> None:
    faces = scan_glyph_fonts(GlyphSettings(font_dirs=(str(fonts),))).faces
    assert len(faces) == 16  # enough for render_faces to start workers
    wild = GlyphSettings(style="wild", channels=3, wild_seed=2)
    assert np.array_equal(render_faces(faces, wild, n_jobs=2), render_faces(faces, wild))
