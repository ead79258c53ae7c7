"""tools/glyphs_confusions.py: the share of errors within the glyphs' ambiguous groups."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "glyphs_confusions.py"
_SPEC = importlib.util.spec_from_file_location("glyphs_confusions", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
confusions = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(confusions)


def test_shares_count_ambiguous_and_case_pair_errors() -> None:
    names = ["0", "O", "o", "1", "l", "A", "a", "B"]
    k = len(names)
    confusion = [[0] * k for _ in range(k)]
    for i in range(k):
        confusion[i][i] = 10  # correct answers do not count
    confusion[0][1] = 3  # 0 -> O: ambiguous, not a case pair
    confusion[2][1] = 2  # o -> O: ambiguous and a case pair
    confusion[3][4] = 1  # 1 -> l: ambiguous
    confusion[5][6] = 4  # A -> a: a case pair, not one of the ambiguous groups
    confusion[7][5] = 10  # B -> A: neither
    record = {"run_id": "r", "top1_err": 0.25, "class_names": names, "confusion": confusion}
    out = confusions.shares(record)
    assert out["errors"] == 20
    assert out["ambiguous_share"] == pytest.approx(6 / 20)
    assert out["case_pair_share"] == pytest.approx(6 / 20)


def test_shares_of_a_perfect_run_are_zero() -> None:
    record = {
        "run_id": "r",
        "top1_err": 0.0,
        "class_names": ["c", "C"],
        "confusion": [[5, 0], [0, 5]],
    }
    out = confusions.shares(record)
    assert (out["errors"], out["ambiguous_share"], out["case_pair_share"]) == (0, 0.0, 0.0)
