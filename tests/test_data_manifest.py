"""Manifests: the bundled ones are valid; bad ones fail with a message that names the problem."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bovw_vs_convnet.data.manifest import (
    get_manifest,
    list_manifests,
    load_manifest,
    parse_manifest,
)
from bovw_vs_convnet.errors import DataError

GOOD: dict[str, Any] = {
    "name": "tiny",
    "description": "A tiny test set.",
    "format": "idx",
    "classes": ["a", "b"],
    "image_size": [4, 4],
    "channels": 1,
    "licence": "CC0",
    "source": {"how": "made by the test"},
    "split": {"official": True, "train": 4, "test": 2},
    "files": [
        {"path": "train-images-idx3-ubyte", "part": "train", "role": "images", "sha256": "a" * 64}
    ],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """GOOD with one key (dotted, ``files.0.path``) set, or deleted when value is ...."""
    raw = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: Any = raw
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return raw


def test_good_manifest_parses() -> None:
    m = parse_manifest(GOOD)
    assert (m.name, m.format, m.classes, m.image_size, m.channels) == (
        "tiny",
        "idx",
        ("a", "b"),
        (4, 4),
        1,
    )
    assert (m.official_split, m.n_train, m.n_test, m.subdir) == (True, 4, 2, "tiny")
    assert m.files[0].sha256 == "a" * 64


def test_bundled_manifests_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BVC_MANIFESTS_DIR", raising=False)
    names = [m.name for m in list_manifests()]
    assert names == [
        "caltech101", "caltech101-background", "caltech256", "caltech256-clutter", "cifar10",
        "cifar100", "digits", "fashion-mnist", "glyphs", "glyphs-64", "glyphs-wild", "mnist",
        "synthetic",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("colour", "red", "unknown key 'colour'"),
        ("licence", ..., "missing required key 'licence'"),
        ("source.how", ..., "missing required key 'how'"),
        ("split.flavour", 1, "unknown key 'flavour'"),
        ("files.0.path", "../outside", "escapes the data directory"),
        ("files.0.path", "sub/../../outside", "escapes the data directory"),
        ("files.0.path", "/etc/passwd", "must be relative"),
        ("files.0.sha256", "xyz", "not a hex digest"),
        ("files.0.sha256", ..., "has no checksum"),
        ("files.0.part", "validation", "'part' must be one of"),
        ("format", "hdf5", "unknown format 'hdf5'"),
        ("classes", ["only"], "at least 2 classes"),
        ("classes", ["a", "a"], "duplicate"),
        ("channels", 2, "'channels' must be 1 or 3"),
        ("image_size", [4], "'image_size' must be [height, width]"),
        ("split.train", "many", "'split.train' must be int"),
        ("name", "Not A Name", "must be lower-case"),
    ],
)
def test_bad_manifest_is_refused(path: str, value: Any, message: str) -> None:
    with pytest.raises(DataError) as info:
        parse_manifest(_with(path, value), origin="tiny")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_manifest_name_must_match_file_name(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('name = "tiny"\n')
    with pytest.raises(DataError, match="missing required key"):
        load_manifest(path)
    path.write_text(
        'name = "tiny"\ndescription = "d"\nformat = "synthetic"\nclasses = ["a", "b"]\n'
        'image_size = [8, 8]\nchannels = 1\nlicence = "CC0"\n'
        '[source]\nhow = "x"\n[split]\nofficial = false\n'
    )
    with pytest.raises(DataError, match="name 'tiny' differs from the file name"):
        load_manifest(path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(DataError, match=r"broken\.toml: invalid TOML"):
        load_manifest(path)


def test_env_folder_adds_a_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shapes2.toml").write_text(
        'name = "shapes2"\ndescription = "d"\nformat = "synthetic"\n'
        'classes = ["circle", "square"]\nimage_size = [16, 16]\nchannels = 1\n'
        'licence = "CC0"\n[source]\nhow = "generated"\n[split]\nofficial = true\n'
    )
    monkeypatch.setenv("BVC_MANIFESTS_DIR", str(tmp_path))
    m = get_manifest("shapes2")
    assert (m.classes, m.image_size, m.path) == (
        ("circle", "square"),
        (16, 16),
        tmp_path / "shapes2.toml",
    )


def test_unknown_dataset_lists_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BVC_MANIFESTS_DIR", raising=False)
    with pytest.raises(
        DataError,
        match=r"unknown dataset 'nope'; known: caltech101, caltech101-background, caltech256, "
        r"caltech256-clutter, cifar10, cifar100, digits",
    ):
        get_manifest("nope")


@pytest.mark.parametrize("value", [True, False])
def test_mirror_ok_is_read_from_the_manifest(value: bool) -> None:
    assert parse_manifest(_with("mirror_ok", value)).mirror_ok is value


def test_mirror_ok_is_false_when_the_manifest_does_not_say() -> None:
    assert "mirror_ok" not in GOOD
    assert parse_manifest(GOOD).mirror_ok is False


def test_mirror_ok_that_is_not_a_boolean_is_refused_naming_the_file(tmp_path: Path) -> None:
    text = (
        'name = "tiny"\ndescription = "d"\nformat = "synthetic"\nclasses = ["a", "b"]\n'
        'image_size = [4, 4]\nchannels = 1\nlicence = "CC0"\nmirror_ok = "yes"\n'
        '[source]\nhow = "made by the test"\n[split]\nofficial = false\n'
    )
    (tmp_path / "tiny.toml").write_text(text)
    with pytest.raises(DataError) as err:
        load_manifest(tmp_path / "tiny.toml")
    assert str(err.value) == (
        f"manifest 'tiny' ({tmp_path / 'tiny.toml'}): 'mirror_ok' must be bool, got str"
    )


@pytest.mark.parametrize(
    ("name", "mirror_ok"),
    [("cifar10", True), ("digits", False), ("fashion-mnist", True), ("mnist", False),
     ("synthetic", True)],
)  # fmt: skip
def test_bundled_manifests_say_whether_a_mirror_keeps_the_class(
    name: str, mirror_ok: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The answers the name guess of convnet/pipeline.py gave before the manifests said it.
    monkeypatch.delenv("BVC_MANIFESTS_DIR", raising=False)
    assert get_manifest(name).mirror_ok is mirror_ok
