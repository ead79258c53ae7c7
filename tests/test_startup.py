"""What a process imports before it needs it: many tests and every user start ``bvc``.

scipy.stats and torchvision each take longer to import than the rest of a short
command; the code that uses them imports them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


PROBE = """
import sys
import bovw_vs_convnet.cli
print("scipy.stats" in sys.modules, "torch" in sys.modules)
"""


def test_bvc_starts_without_scipy_stats_or_torch() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def _imports(path: Path, function: str | None) -> set[str]:
    """The modules ``path`` imports at its top level, or in the body of ``function``."""
    body = ast.parse(path.read_text()).body
    if function is not None:
        (node,) = [n for n in body if isinstance(n, ast.FunctionDef) and n.name == function]
        body = list(ast.walk(node))
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("path", "function"),
    [
        ("bovw_vs_convnet/convnet/alexnet.py", None),  # every process that builds a model
        ("benchmarks/gpu_figures.py", "environment"),  # the GPU check's step with 15 s
    ],
)
def test_torchvision_is_imported_only_where_it_is_used(path: str, function: str | None) -> None:
    imports = _imports(ROOT / path, function)
    assert "torch" in imports  # the parse saw the imports
    assert not {name for name in imports if name.split(".")[0] == "torchvision"}
