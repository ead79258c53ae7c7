"""What the stored runs say: training-size curves, the crossover, the depth ablation, recipes.

Everything here turns run records into numbers, rows and sentences; nothing here
knows how a page looks. ``bvc bench`` prints these (the ablation table, the
crossover statements) and the HTML report (:mod:`bovw_vs_convnet.harness.report`)
lays them out.

- :func:`training_size_curves`: error against training-set size, per row and seed.
- :func:`crossover_of`, :func:`crossover_statements`: where the best ConvNet row
  overtakes the best BoVW row, and the best DBN row the best BoVW row
  (:mod:`bovw_vs_convnet.harness.crossover` estimates it).
- :func:`ablation_rows`, :func:`ablation_cells`, :func:`ablation_table`: each
  ``BASE-no-LAYERS`` network against ``BASE`` (Zeiler and Fergus's depth ablation).
- :func:`family_answer`, :func:`family_answers`: BoVW against ConvNets (and against
  the DBN) on each table, the best row of each family, with the test that says whether
  the difference is real (:mod:`~bovw_vs_convnet.harness.comparison`).

Families (:data:`FAMILIES`, :func:`family_of`): the analyses pit one family of
pipelines against another, never a pipeline name against a pipeline name.

- **ConvNet**: ``convnet`` (trained end to end) and ``convnet-features`` (a trained
  ConvNet read at one layer under linear SVMs, DeCAF's transfer). The features come
  from a ConvNet in both, which is what the ConvNet-against-BoVW question asks about;
  the leaderboard's rows keep the two apart.
- **DBN**: ``dbn``. Its features are learned too, but by a stack of RBMs, not by
  convolutions: a family of its own, set against BoVW in statements of its own and
  never counted as the best ConvNet.
- **BoVW**: ``bovw``, the hand-crafted side of every comparison.
- ``hog`` and ``baseline`` belong to no family: reference rows of the tables, in no
  crossover and no family answer.

A pipeline registered later has no family until :data:`FAMILIES` names it.
- :func:`learning_history`: the per-epoch series a ConvNet run recorded.
- :func:`recipe_command`: the ``bvc run`` command that repeats a stored run.

Row names come from :func:`bovw_vs_convnet.harness.leaderboard.row_name`, so a
curve's label and the table row of the same runs are the same text.
"""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

from bovw_vs_convnet.harness.crossover import Crossover, estimate_crossover
from bovw_vs_convnet.harness.formatting import number, percent
from bovw_vs_convnet.harness.leaderboard import LeaderboardTable, build_tables, row_name
from bovw_vs_convnet.harness.record import RunRecord
from bovw_vs_convnet.harness.record_json import canonical_json

# family -> its pipelines (the module docstring says why each is where it is)
FAMILIES: dict[str, tuple[str, ...]] = {
    "ConvNet": ("convnet", "convnet-features"),
    "DBN": ("dbn",),
    "BoVW": ("bovw",),
}
CONVNET_PIPELINES = FAMILIES["ConvNet"]
DBN_PIPELINES = FAMILIES["DBN"]
BOVW_PIPELINES = FAMILIES["BoVW"]
# the learned families, each set against BoVW (crossovers, family answers), in this order
RIVALS = ("ConvNet", "DBN")
# how a family answer names each rival: "BoVW against ConvNets on ..."
_PLURAL = {"ConvNet": "ConvNets", "DBN": "the DBN"}
ABLATION_MARK = "-no-"  # alexnet-small-no-fc6-fc7: alexnet-small without fc6 and fc7

# curve group -> row name -> training-set size -> the top-1 errors of its seeds
Curves = Mapping[str, Mapping[int, Sequence[float]]]


# --------------------------------------------------------------------------- curves


def _curve_group(record: RunRecord) -> str:
    """Records that differ only in seed and training-set size share a curve group."""
    split = {
        k: v
        for k, v in (record.get("split") or {}).items()
        if k not in ("seed", "train_size", "split_index")
    }
    return canonical_json([record.get("dataset"), split])


def training_size_curves(
    records: Iterable[RunRecord],
) -> dict[str, dict[str, dict[int, list[float]]]]:
    """Curve group → row name → training-set size → top-1 errors of its seeds.

    Only ``ok`` records with a top-1 error count. A curve group is a dataset and
    split protocol (everything but seed and size), so its sizes are nested subsets.
    A row may use another recipe at each size (the crossover suite does); when one
    size holds several configs of a row, the newest config stands and its seeds count.
    """
    newest: dict[tuple[str, str, int], tuple[str, str]] = {}  # -> (created_at, config)
    usable: list[tuple[tuple[str, str, int], str, float]] = []
    for r in records:
        err, n_train = r.get("top1_err"), r.get("n_train")
        if r.get("status", "ok") != "ok" or err is None or not n_train:
            continue
        cfg = canonical_json({k: v for k, v in (r.get("config") or {}).items() if k != "seed"})
        at = (_curve_group(r), row_name(r), int(n_train))
        stamp = (r.get("created_at", ""), cfg)
        if at not in newest or stamp > newest[at]:
            newest[at] = stamp
        usable.append((at, cfg, float(err)))
    out: dict[str, dict[str, dict[int, list[float]]]] = {}
    for (group, name, size), cfg, err in usable:
        if newest[(group, name, size)][1] != cfg:
            continue
        out.setdefault(group, {}).setdefault(name, {}).setdefault(size, []).append(err)
    return out


def family_of(pipeline: str) -> str | None:
    """The family of ``pipeline`` (``ConvNet``, ``DBN``, ``BoVW``); None for the rest."""
    return next((f for f, members in FAMILIES.items() if pipeline in members), None)


def _best(curves: Curves, pipelines: Sequence[str]) -> str | None:
    """The row of a family with the lowest mean error at the largest size it was measured at."""
    family = {k: v for k, v in curves.items() if k.split("/", 1)[0] in pipelines}
    if not family:
        return None
    largest = max(max(points) for points in family.values())
    at_largest = {k: v for k, v in family.items() if largest in v} or family

    def key(name: str) -> tuple[float, str]:
        points = at_largest[name]
        return (statistics.fmean(points[max(points)]), name)

    return min(at_largest, key=key)


def crossover_of(curves: Curves, rival: str = "ConvNet") -> Crossover | None:
    """Where the best row of ``rival``'s family overtakes the best BoVW row.

    ``rival`` is a learned family of :data:`RIVALS`: ``ConvNet`` (the best of the
    ``convnet`` and ``convnet-features`` rows) or ``DBN``. None unless both rows
    share 2+ sizes.
    """
    bovw = _best(curves, BOVW_PIPELINES)
    other = _best(curves, FAMILIES[rival])
    if bovw is None or other is None:
        return None
    b = {n: statistics.fmean(v) for n, v in curves[bovw].items()}
    c = {n: statistics.fmean(v) for n, v in curves[other].items()}
    if len(set(b) & set(c)) < 2:
        return None
    return estimate_crossover(b, c, bovw_name=bovw, convnet_name=other)


def crossover_statements(records: Iterable[RunRecord]) -> list[str]:
    """The crossover sentences of every curve group: each rival of :data:`RIVALS` against BoVW.

    A curve group gives a sentence for each learned family measured beside BoVW at
    2+ common sizes: the ConvNet's first, then the DBN's.
    """
    out = []
    for curves in training_size_curves(records).values():
        for rival in RIVALS:
            cross = crossover_of(curves, rival)
            if cross is not None:
                out.append(cross.statement)
    return out


# --------------------------------------------------------------------------- depth ablation


class AblationRow(TypedDict):
    """One network of a depth ablation; errors and their changes are fractions."""

    dataset: str
    model: str
    removed: list[str]  # layer names; empty for the full network
    top1_err: float | None
    top5_err: float | None
    d_top1: float | None  # against the full network, positive when removing the layers hurts
    d_top5: float | None
    n_params: int | None


def ablation_rows(records: Iterable[RunRecord]) -> list[AblationRow]:
    """Depth-ablation rows: each ``BASE-no-LAYERS`` model against ``BASE`` in the same table.

    The full network comes first with zero changes, then the ablated ones, fewest
    layers removed first. Tables without a full network give no row.
    """
    out: list[AblationRow] = []
    for table in build_tables(records, significance=False):
        models = {r.model: r for r in table.rows}
        bases = sorted(
            {m.split(ABLATION_MARK, 1)[0] for m in models if ABLATION_MARK in m} & set(models)
        )
        for base in bases:
            full = models[base]
            ablated = sorted(
                (r for m, r in models.items() if m.startswith(base + ABLATION_MARK)),
                key=lambda r: (r.model.count("-"), r.model),
            )
            for r in [full, *ablated]:
                removed = r.model[len(base) + len(ABLATION_MARK) :] if r is not full else ""
                out.append(
                    {
                        "dataset": table.dataset,
                        "model": r.model,
                        "removed": removed.split("-") if removed else [],
                        "top1_err": r.top1_err,
                        "top5_err": r.top5_err,
                        "d_top1": _diff(r.top1_err, full.top1_err),
                        "d_top5": _diff(r.top5_err, full.top5_err),
                        "n_params": r.n_params,
                    }
                )
    return out


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def ablation_cells(rows: Sequence[AblationRow]) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of the ablation table: errors in percent, changes signed."""
    header = ["model", "removed", "top-1 err (%)", "Δ top-1", "top-5 err (%)", "Δ top-5", "params"]
    body = [
        [
            r["model"],
            ", ".join(r["removed"]) or "(full network)",
            percent(r["top1_err"]),
            percent(r["d_top1"], signed=True),
            percent(r["top5_err"]),
            percent(r["d_top5"], signed=True),
            number(r["n_params"]),
        ]
        for r in rows
    ]
    return header, body


def ablation_table(records: Iterable[RunRecord]) -> str:
    """The depth-ablation rows of ``records`` as a Markdown table; '' when there are none."""
    rows = ablation_rows(records)
    if not rows:
        return ""
    header, body = ablation_cells(rows)
    lines = [
        "Depth ablation (changes against the full network, percentage points):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- BoVW or ConvNet?


def family_answer(table: LeaderboardTable, rival: str = "ConvNet") -> str | None:
    """BoVW against ``rival``'s family on one table: the best row of each and the verdict.

    ``rival``: ``ConvNet`` (``convnet`` and ``convnet-features`` rows) or ``DBN``. The
    test is :meth:`~bovw_vs_convnet.harness.leaderboard.LeaderboardTable.top1_test`'s
    (exact McNemar on one run each, a paired t-test over 2+ matched seeds). None
    when the table lacks one of the families.
    """
    bovw = next((r for r in table.rows if r.pipeline in BOVW_PIPELINES), None)
    other = next((r for r in table.rows if r.pipeline in FAMILIES[rival]), None)
    if bovw is None or other is None:
        return None
    n_train = f"{number(bovw.n_train)} training images, " if bovw.n_train else ""
    where = f"BoVW against {_PLURAL[rival]} on {table.dataset} ({n_train}split {table.table_id})"
    found = table.top1_test(bovw, other)
    if found is None:
        return (
            f"{where}: {bovw.name} {percent(bovw.top1_err, unit=' %')} against {other.name} "
            f"{percent(other.top1_err, unit=' %')} top-1 error; untested (no stored test "
            "scores, or fewer than 2 matched seeds)."
        )
    comparison, test = found
    return f"{where}: {comparison.verdict(test)}."


def family_answers(tables: Iterable[LeaderboardTable]) -> list[str]:
    """:func:`family_answer` of every table and rival (:data:`RIVALS`) that has both rows."""
    return [
        a for t in tables for a in (family_answer(t, rival) for rival in RIVALS) if a is not None
    ]


# --------------------------------------------------------------------------- single runs


def learning_history(record: RunRecord) -> dict[str, list[float]]:
    """The per-epoch series of a ConvNet or DBN run (``train_loss``, ``val_error``), by name.

    The ConvNet pipeline records them as ``extra["learning_curve"]``, a mapping of
    lists next to their ``epoch`` numbers; the DBN its fine-tuning's validation error
    as ``extra["val_err_by_epoch"]`` (read as ``val_error``). Empty series
    (``val_error`` of a run without a validation set) are left out; a record without
    curves gives ``{}``.
    """
    extra = record.get("extra") or {}
    curve = extra.get("learning_curve")
    if not isinstance(curve, Mapping):
        # the DBN records its fine-tuning's validation error per epoch on its own
        dbn = extra.get("val_err_by_epoch")
        return {"val_error": [float(v) for v in dbn]} if isinstance(dbn, list) and dbn else {}
    return {
        str(name): [float(v) for v in values]
        for name, values in curve.items()
        if name != "epoch" and isinstance(values, list) and values
    }


def recipe_command(record: RunRecord) -> str:
    """The ``bvc run`` command that repeats a stored run (settings that differ from defaults).

    Settings are compared with the pipeline's defaults, or with its preset's
    values when the record names a preset; ``model`` becomes ``--model``.
    """
    from bovw_vs_convnet.config import build_config, canonical_settings, config_to_dict
    from bovw_vs_convnet.harness.registry import get_pipeline

    pipeline = str(record.get("pipeline"))
    config = dict(record.get("config") or {})
    split = dict(record.get("split") or {})
    words = ["bvc", "run", pipeline, "--dataset", str(record.get("dataset"))]
    if split.get("train_size"):
        words += ["--train-size", str(split["train_size"])]
    if seed := record.get("seed"):
        words += ["--seed", str(seed)]
    for key, usual in (("val_fraction", 0.1), ("test_fraction", 0.2)):
        if key in split and split[key] != usual:
            words += [f"--{key.replace('_', '-')}", str(split[key])]
    for key in ("train_per_class", "test_per_class"):  # the per-class protocol (data/split.py)
        if split.get(key) is not None:
            words += [f"--{key.replace('_', '-')}", str(split[key])]
    if split.get("short_classes") not in (None, "refuse"):
        words += ["--short-classes", str(split["short_classes"])]
    if split.get("split_index"):  # split k is the last of --splits k + 1
        words += ["--splits", str(int(split["split_index"]) + 1)]
    preset = config.get("preset")
    default: dict[str, Any]
    base: dict[str, Any]
    since: dict[str, Any] = {}
    try:
        cls = get_pipeline(pipeline).config_class()
        config = canonical_settings(cls, config)  # a renamed setting under its name
        # a setting added later, absent from an older record, had its old value
        # (ConvNet recipe=fixed: the old defaults are then the base, not the new ones)
        since = dict(getattr(cls, "SETTINGS_SINCE", {}))
        config = {**{k: v for k, v in since.items() if k not in config}, **config}
        default = config_to_dict(build_config(cls))
        held = {k: config[k] for k in since}
        base = config_to_dict(build_config(cls, {**held, **({"preset": preset} if preset else {})}))
    except Exception:  # an unknown or changed pipeline: spell out every setting
        default, base = {}, {}
    if config.get("model"):
        words += ["--model", str(config["model"])]
    if preset and preset != default.get("preset"):
        words += ["--set", f"preset={preset}"]
    for key, value in config.items():
        if (
            key in ("model", "preset")
            or (base if key not in since else default).get(key, object()) == value
        ):
            continue
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        words += ["--set", f"{key}={text}"]
    return " ".join(shlex.quote(w) for w in words)
