"""The house's own rules, checked like behaviour: size limits and the README's front door."""

from __future__ import annotations

import importlib.util
import re
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


# The front door: README.md and docs/ say how things work now; run ids, /tmp paths, the
# machine's load and commit hashes belong in benchmarks/RESULTS-*.md and CHANGELOG.md.
FRONT_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TMP = re.compile(r"/tmp/")
RUN_ID = re.compile(r"\d{8}-\d{6}-\w+-[0-9a-f]{6}")
LOAD = re.compile(r"load average|load avg|\bload (of )?\d", re.IGNORECASE)
# a short or a full commit hash as a word of its own (a path like runs-b9fbd1e is a name;
# 12-hex split fingerprints and 64-hex checksums are what the toolkit prints)
COMMIT = re.compile(
    r"(?<![\w/.-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)(?:[0-9a-f]{7,10}|[0-9a-f]{40})(?![\w-])"
)


def front_door_breaches(page: Path) -> list[str]:
    """``page:line: what`` for each /tmp path, run id, load remark or commit hash in ``page``."""
    found = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        for what, pattern in (("/tmp path", TMP), ("run id", RUN_ID), ("load", LOAD)):
            found += [f"{page.name}:{number}: {what} {m[0]!r}" for m in pattern.finditer(line)]
        found += [f"{page.name}:{number}: commit {m[0]!r}" for m in COMMIT.finditer(line)]
    return found


def test_readme_is_at_most_200_lines() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_readme_and_docs_hold_no_tmp_path_run_id_load_or_commit() -> None:
    assert [b for page in FRONT_PAGES for b in front_door_breaches(page)] == []


def test_the_front_door_check_finds_each_kind(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "PYTHONPATH=.:/tmp/cv4\nrun 20261202-002429-convnet-ec7385\n(load average 6)\n"
        "until `8e91188`\nsplit 75ca21b07b06, fixtures/runs-b9fbd1e\n",
        encoding="utf-8",
    )
    assert front_door_breaches(page) == [
        "page.md:1: /tmp path '/tmp/'",
        "page.md:2: run id '20261202-002429-convnet-ec7385'",
        "page.md:3: load 'load average'",
        "page.md:4: commit '8e91188'",
    ]


def test_readme_gives_install_main_job_and_tests_in_its_first_40_lines() -> None:
    head = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:40])
    for command in ("pip install -e", "bvc bench quick", "python -m pytest"):
        assert command in head
