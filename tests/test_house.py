"""The house's own rules, checked like behaviour: size limits and the README's front door."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _check_sizes():  # tools/ is not a package: load the script by its path
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / "tools" / "check_sizes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_package_file_or_function_over_its_limit() -> None:
    assert _check_sizes().breaches() == []


def test_the_size_check_finds_a_long_function(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    (package / "long.py").write_text(f"def long() -> None:\n{body}\n", encoding="utf-8")
    check = _check_sizes()
    check.ROOT = tmp_path
    assert check.breaches(package) == ["pkg/long.py:1: long is 86 lines (limit 80)"]
