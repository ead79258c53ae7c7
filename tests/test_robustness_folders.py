"""benchmarks/robustness_folders.py: seeded folders that vary one factor at a time."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
from glyph_fonts import write_font

ROOT = Path(__file__).resolve().parents[1]


def _generator() -> ModuleType:  # benchmarks/ is not a package
    name = "robustness_folders"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_images(tmp_path: Path) -> None:
    gen = _generator()
    f = replace(gen.FOLDERS["photo"], train=2, test=1)
    gen.write_folder(tmp_path / "a", f, 5101)
    gen.write_folder(tmp_path / "b", f, 5101)
    gen.write_folder(tmp_path / "c", f, 5102)
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) == 10 * 3 + 1  # 10 classes x (2 + 1) images + generator.json
    images = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != c[k] for k in images)


def test_class_counts_and_image_sizes_follow_the_folder(tmp_path: Path) -> None:
    gen = _generator()
    counts = gen.write_folder(
        tmp_path / "p", replace(gen.FOLDERS["classes-100"], train=1, test=1), 7
    )
    assert counts == {"train": 100, "test": 100}
    assert sorted(p.name for p in (tmp_path / "p" / "train").iterdir())[:3] == ["00", "01", "02"]
    gen.write_folder(tmp_path / "s", replace(gen.FOLDERS["side-28"], train=1, test=1), 7)
    shapes = {
        cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape for p in (tmp_path / "s").rglob("*.png")
    }
    assert shapes == {(28, 28)}
    gen.write_folder(tmp_path / "q", replace(gen.FOLDERS["photo"], train=3, test=3), 7)
    sides = {cv2.imread(str(p)).shape for p in (tmp_path / "q").rglob("*.jpg")}
    assert all(max(h, w) in range(90, 301) and c == 3 for h, w, c in sides)
    assert len({h / w for h, w, _ in sides}) > 10  # any aspect


def test_the_object_share_and_polarity_are_what_the_factors_say() -> None:
    gen = _generator()
    plain = replace(gen.BASE, noise=0.0, rotate=0.0, side=(100, 100))
    ink = np.ones((20, 20), np.float32)
    for share in (0.1, 0.8):
        img = gen.compose(ink, replace(plain, share=(share, share)), np.random.default_rng(1))
        assert abs(np.mean(img > int(img.min()) + 30) - share) < 0.02  # light ink, flat ground
    light = [
        gen.compose(ink, replace(plain, polarity="mixed"), np.random.default_rng(s))
        for s in range(20)
    ]
    brighter = [
        float(im[40:60, 40:60].mean() > np.median(np.concatenate([im[0], im[-1]]))) for im in light
    ]
    assert 0 < sum(brighter) < 20
    dark = gen.compose(
        ink, replace(plain, polarity="dark", share=(0.2, 0.2)), np.random.default_rng(3)
    )
    assert dark.min() < 100 < np.median(dark)


def test_glyph_classes_come_from_fonts_with_test_designs_held_out(tmp_path: Path) -> None:
    gen = _generator()
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for i, family in enumerate(["Alpha", "Beta", "Gamma", "Delta", "Epsilon"]):
        write_font(fonts / f"{family}.ttf", family, variant=i)
    f = replace(gen.FOLDERS["classes-62"], train=2, test=1)
    pools = gen.pools_for(f, 9, font_dirs=[str(fonts)])
    assert len(pools["train"].classes) == 62 and pools["train"].classes[10] == "c10_uA"
    train_masks = {m.tobytes() for ms in pools["train"].masks for m in ms}
    assert not train_masks & {m.tobytes() for ms in pools["test"].masks for m in ms}
    counts = gen.write_folder(tmp_path / "g", f, 9, font_dirs=[str(fonts)])
    assert counts == {"train": 124, "test": 62}


def _runner() -> ModuleType:
    name = "robustness"
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_sweep_follows_the_default_record_and_chance_is_an_exact_binomial_p() -> None:
    bench = _runner()
    assert bench.sweep_settings("lenet5", {"config": {"lr": 0.004}}) == [
        ("lr=0.012", ["lr=0.012"]),
        ("lr=0.00133", ["lr=0.00133"]),
    ]
    assert [s for s, _ in bench.sweep_settings("bovw", {"config": {"preset": "photo"}})] == [
        "preset=small",
        "preset=fisher",
    ]
    assert [s for s, _ in bench.sweep_settings("hog", {"extra": {"cell": 8}})] == [
        "cell=4",
        "cell=16",
    ]
    p = bench.chance_p({"top1_err": 0.5, "n_test": 10, "n_classes": 10})
    assert abs(p - 0.0016349374) < 1e-9  # P(at least 5 of 10 right at 1/10)
