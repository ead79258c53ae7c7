"""The analyses count pipelines by family: ConvNet (convnet, convnet-features), DBN, BoVW."""

from pathlib import Path

import pytest
from report_records import fake_record

from bovw_vs_convnet.harness.analysis import (
    FAMILIES,
    crossover_of,
    crossover_statements,
    family_answers,
    family_of,
    learning_history,
    training_size_curves,
)
from bovw_vs_convnet.harness.leaderboard import build_tables
from bovw_vs_convnet.harness.registry import PIPELINES
from bovw_vs_convnet.harness.report_figures import FigureWriter, dataset_figures


def _curve(pipeline: str, model: str, errors: dict[int, float], **kw: object) -> list[dict]:
    return [
        fake_record(pipeline, model, n_train=n, seed=0, top1=err, **kw)  # type: ignore[arg-type]
        for n, err in errors.items()
    ]


BOVW = _curve("bovw", "small", {100: 0.20, 1000: 0.10})


@pytest.mark.parametrize(
    ("pipeline", "family"),
    [
        ("convnet", "ConvNet"),
        ("convnet-features", "ConvNet"),
        ("dbn", "DBN"),
        ("bovw", "BoVW"),
        ("hog", None),
        ("baseline", None),
    ],
)
def test_each_registered_pipeline_has_its_family(pipeline: str, family: str | None) -> None:
    assert pipeline in PIPELINES
    assert family_of(pipeline) == family


def test_families_name_only_registered_pipelines() -> None:
    named = {p for members in FAMILIES.values() for p in members}
    assert named <= set(PIPELINES)


def test_convnet_features_can_be_the_best_convnet_of_a_crossover() -> None:
    runs = [
        *BOVW,
        *_curve("convnet", "lenet5", {100: 0.40, 1000: 0.12}),
        *_curve("convnet-features", "lenet5@glyphs-wild", {100: 0.15, 1000: 0.08}),
    ]
    (curves,) = training_size_curves(runs).values()
    cross = crossover_of(curves)
    assert cross is not None
    assert (cross.status, cross.statement) == (
        "convnet-always-better",
        "convnet-features/lenet5@glyphs-wild is at least as good as bovw/small at every "
        "measured size (100 to 1 000 images): the crossover is below 100.",
    )


def test_the_dbn_is_its_own_rival_never_the_best_convnet() -> None:
    runs = [*BOVW, *_curve("dbn", "dbn-500-500-2000", {100: 0.30, 1000: 0.05})]
    (curves,) = training_size_curves(runs).values()
    assert crossover_of(curves) is None  # no ConvNet row
    dbn = crossover_of(curves, "DBN")
    assert dbn is not None and dbn.status == "crosses"
    assert dbn.statement.startswith("dbn/dbn-500-500-2000 overtakes bovw/small at about")


def test_crossover_statements_give_the_convnet_then_the_dbn() -> None:
    runs = [
        *BOVW,
        *_curve("dbn", "dbn-500-500-2000", {100: 0.30, 1000: 0.15}),
        *_curve("convnet", "lenet5", {100: 0.10, 1000: 0.05}),
        *_curve("hog", "hog-default", {100: 0.01, 1000: 0.01}),  # in no family
    ]
    statements = crossover_statements(runs)
    assert [s.split(" ", 1)[0] for s in statements] == ["convnet/lenet5", "dbn/dbn-500-500-2000"]
    assert all("hog" not in s for s in statements)


def test_family_answers_set_bovw_against_convnets_and_against_the_dbn() -> None:
    runs = [
        fake_record("hog", "hog-default", n_train=100, seed=0, top1=0.05),
        fake_record("bovw", "small", n_train=100, seed=0, top1=0.20),
        fake_record("convnet-features", "lenet5@glyphs-wild", n_train=100, seed=0, top1=0.10),
        fake_record("dbn", "dbn-250-250-1000", n_train=100, seed=0, top1=0.30),
    ]
    answers = family_answers(build_tables(runs))
    assert [a.split(":", 1)[0] for a in answers] == [
        "BoVW against ConvNets on digits (100 training images, split fp-100-0)",
        "BoVW against the DBN on digits (100 training images, split fp-100-0)",
    ]
    assert "convnet-features/lenet5@glyphs-wild 10.00 %" in answers[0]
    assert "dbn/dbn-250-250-1000 30.00 %" in answers[1]


def test_learning_history_reads_the_dbn_fine_tuning_curve() -> None:
    record = {"extra": {"val_err_by_epoch": [0.5, 0.25], "best_epoch": 2}}
    assert learning_history(record) == {"val_error": [0.5, 0.25]}


def test_the_report_draws_the_dbn_learning_curve(tmp_path: Path) -> None:
    runs = [
        fake_record("bovw", "small", n_train=100, seed=0, top1=0.20),
        fake_record(
            "dbn", "dbn-8", n_train=100, seed=0, top1=0.3, extra={"val_err_by_epoch": [0.5, 0.3]}
        ),
    ]
    figures, _ = dataset_figures(runs, FigureWriter(tmp_path), "digits")
    assert [f.title for f in figures if "curves" in f.title.lower()] == [
        "Learning curves of dbn/dbn-8"
    ]
