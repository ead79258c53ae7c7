"""How much of a glyphs run's top-1 error is characters that differ only in size or not at all.

Chars74K's glyph box (the character's own box, padded to a square and resized) makes
the upper- and lower-case forms of c, o, s, v, w, x, z the same shape, and 0/O/o and
1/l/I nearly so (de Campos et al. 2009). This reads the confusion matrix of each run
record (``record.json``, rows: true class, columns: predicted) and prints, per run,
its top-1 error, the share of its errors within those groups, and the share within
any upper/lower-case pair of the 26 letters:

    python tools/glyphs_confusions.py RUNS_DIR/RUN_ID [RUNS_DIR/RUN_ID ...] [--markdown]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# The ambiguous groups: 7 case pairs, 0/O (with o), 1/l/I.
AMBIGUOUS: tuple[frozenset[str], ...] = (
    *(frozenset({c, c.upper()}) for c in "cosvwxz"),
    frozenset({"0", "O", "o"}),
    frozenset({"1", "l", "I"}),
)


def same_group(a: str, b: str, groups: tuple[frozenset[str], ...]) -> bool:
    """True when the classes ``a`` and ``b`` (different) lie in one of ``groups``."""
    return any(a in g and b in g for g in groups)


def shares(record: dict) -> dict[str, float | int | str]:
    """Top-1 error, errors, and the fractions of errors in the ambiguous / any case pair."""
    names = [str(n) for n in record["class_names"]]
    confusion = np.asarray(record["confusion"], dtype=np.int64)  # (K, K): true x predicted
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    errors = int(off.sum())
    case = tuple(frozenset({c, c.upper()}) for c in "abcdefghijklmnopqrstuvwxyz")
    amb = sum(
        int(off[i, j]) for i, a in enumerate(names) for j, b in enumerate(names)
        if i != j and same_group(a, b, AMBIGUOUS)
    )  # fmt: skip
    any_case = sum(
        int(off[i, j]) for i, a in enumerate(names) for j, b in enumerate(names)
        if i != j and same_group(a, b, case)
    )  # fmt: skip
    return {
        "run_id": str(record["run_id"]),
        "top1_err": float(record["top1_err"]),
        "errors": errors,
        "ambiguous_share": amb / errors if errors else 0.0,
        "case_pair_share": any_case / errors if errors else 0.0,
    }


def main() -> None:
    """Print one line (or Markdown row) per run folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (holding record.json)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    for run in args.runs:
        record = json.loads((run / "record.json").read_text(encoding="utf-8"))
        s = shares(record)
        label = f"{record['pipeline']} {record.get('model') or ''}".strip()
        if args.markdown:
            print(
                f"| {label} | `{s['run_id']}` | {s['top1_err']:.2%} | {s['errors']} | "
                f"{s['ambiguous_share']:.0%} | {s['case_pair_share']:.0%} |"
            )
        else:
            print(
                f"{label:24s} {s['run_id']}  top-1 {s['top1_err']:.2%}  errors {s['errors']}  "
                f"c/C o/O/0 s/S v/V w/W x/X z/Z 1/l/I: {s['ambiguous_share']:.0%}  "
                f"any case pair: {s['case_pair_share']:.0%}"
            )


if __name__ == "__main__":
    main()
