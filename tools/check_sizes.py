"""The house's size limits: no package file over 500 lines, no function over 80 lines.

Run by ``.ci/run`` (and ``tests/test_house.py``): prints each breach on one line and exits 1
when there is one. :data:`ALLOWED` names the few exceptions, each with its reason.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bovw_vs_convnet"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80

# "path" or "path:function" -> why it may be longer
ALLOWED: dict[str, str] = {}


def function_lengths(path: Path) -> Iterator[tuple[str, int, int]]:
    """(qualified name, first line, number of lines) of every function in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                end = child.end_lineno or child.lineno
                yield name, child.lineno, end - child.lineno + 1
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")

    yield from walk(tree, "")


def breaches(package: Path = PACKAGE) -> list[str]:
    """One line per file or function over its limit and not in :data:`ALLOWED`."""
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_FILE_LINES and rel not in ALLOWED:
            out.append(f"{rel}: {n} lines (limit {MAX_FILE_LINES})")
        for name, line, length in function_lengths(path):
            if length > MAX_FUNCTION_LINES and f"{rel}:{name}" not in ALLOWED:
                out.append(f"{rel}:{line}: {name} is {length} lines (limit {MAX_FUNCTION_LINES})")
    return out


def main() -> int:
    """Print the breaches; 1 when there is any."""
    found = breaches()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
