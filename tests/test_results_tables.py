"""results/*.csv: written from a runs folder, rendered into the docs, and checked against them."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner
from report_records import fake_record

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.harness.leaderboard import build_tables
from bovw_vs_convnet.harness.results_export import (
    RESULT_COLUMNS,
    result_rows,
    suite_records,
    write_results,
)
from bovw_vs_convnet.harness.results_tables import (
    check_pages,
    marked_names,
    read_results,
    render_results,
)
from bovw_vs_convnet.harness.suite import parse_suite

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUITE = parse_suite(
    'datasets = ["digits"]\nseeds = [0]\n[[run]]\npipeline = "bovw"\nset = { k = 50 }\n'
    '[[run]]\npipeline = "convnet"\nset = { model = "lenet5", preset = "adamw" }\n',
    name="tiny",
)


def _record(pipeline: str, model: str, top1: float, **config: object) -> dict[str, object]:
    record = fake_record(pipeline, model, n_train=100, seed=0, top1=top1)
    record["split"] = {"dataset": "digits", "seed": 0, "train_size": None}
    record["config"] = {"model": model, **config}
    return record


def test_every_marked_table_in_the_docs_matches_its_csv() -> None:
    assert check_pages(PAGES, ROOT / "results") == []


def test_every_results_csv_is_shown_in_the_docs_and_every_table_has_one() -> None:
    marked = {name for page in PAGES for name in marked_names(page.read_text(encoding="utf-8"))}
    files = {p.stem for p in (ROOT / "results").glob("*.csv")}
    assert marked == files
    assert "quick-digits" in marked_names((ROOT / "README.md").read_text(encoding="utf-8"))


def test_a_changed_cell_is_drift(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    page.write_text(text.replace(first_row, first_row.replace("| 1 |", "| 9 |")), "utf-8")
    assert check_pages([page], ROOT / "results") == [f"{page}: quick-digits"]
    result = CliRunner().invoke(
        main, ["results", "render", "--check", "--results", str(ROOT / "results"), str(page)]
    )
    assert result.exit_code == 1
    assert f"differs from its CSV: {page}: quick-digits" in result.output
    assert check_pages([page], ROOT / "results", write=True) == [f"{page}: quick-digits"]
    assert check_pages([page], ROOT / "results") == []


def test_a_ci_marker_renders_each_error_with_its_interval(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- results:x:ci:begin -->\n<!-- results:x:ci:end -->\n", "utf-8")
    record = fake_record("bovw", "bovw-small", n_train=100, seed=0, top1=0.1)
    record["top1_ci"] = [0.05, 0.2]
    write_results(tmp_path / "x.csv", result_rows(build_tables([record]), "bvc"))
    assert check_pages([page], tmp_path, write=True) == [f"{page}: x"]
    assert "| 10.00 [5.00, 20.00] |" in page.read_text(encoding="utf-8")


def test_an_ilsvrc_marker_renders_the_2012_results_page_columns(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- results:x:ilsvrc:begin -->\n<!-- results:x:ilsvrc:end -->\n", "utf-8")
    record = fake_record("bovw", "bovw-small", n_train=100, seed=0, top1=0.1)
    record["top5_err"] = 0.0525
    write_results(tmp_path / "x.csv", result_rows(build_tables([record]), "bvc"))
    assert check_pages([page], tmp_path, write=True) == [f"{page}: x"]
    lines = page.read_text(encoding="utf-8").splitlines()
    assert lines[1] == "| Rank | Name | top-5 err (%) | Description |"
    assert lines[3] == "| 1 | bovw/bovw-small | 5.25 | 100 training images, 1 seed |"
    assert check_pages([page], tmp_path) == []


def test_a_marker_without_its_csv_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- results:nowhere:begin -->\n<!-- results:nowhere:end -->\n", "utf-8")
    result = CliRunner().invoke(main, ["results", "render", "--results", str(tmp_path), str(page)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: no results file {tmp_path / 'nowhere.csv'}"


def test_a_list_setting_given_as_text_in_a_suite_matches_the_stored_list() -> None:
    suite = parse_suite(
        'datasets = ["digits"]\nseeds = [0]\n[[run]]\npipeline = "bovw"\n'
        'set = { bin_sizes = "4,6" }\n',
        name="lists",
    )
    asked = _record("bovw", "bovw-small", 0.1, bin_sizes=[4, 6])
    other = _record("bovw", "bovw-small", 0.2, bin_sizes=[4, 6, 8])
    assert [r["top1_err"] for r in suite_records(suite, [asked, other])] == [0.1]


def test_a_suite_takes_the_runs_its_entries_asked_for() -> None:
    chosen = _record("bovw", "bovw-small", 0.1, k=50)
    other_k = _record("bovw", "bovw-small", 0.2, k=100)
    convnet = _record("convnet", "lenet5", 0.3, optimizer="adamw")  # preset: not a config key
    other_seed = {**_record("bovw", "bovw-small", 0.1, k=50), "seed": 1}
    got = suite_records(SUITE, [chosen, other_k, convnet, other_seed])
    assert [r["top1_err"] for r in got] == [0.1, 0.3]


def test_a_per_class_run_matches_a_spec_that_leaves_short_classes_to_its_default() -> None:
    suite = parse_suite(
        'datasets = ["digits"]\nseeds = [0]\n[[run]]\npipeline = "bovw"\ntrain_per_class = [5]\n',
        name="per-class",
    )
    record = _record("bovw", "bovw-small", 0.1)
    split = {"train_per_class": 5, "short_classes": "refuse", "split_index": 0}
    record["split"] = {"dataset": "digits", "seed": 0, "train_size": None, **split}
    take_rest = {**record, "split": {**record["split"], "short_classes": "take-rest"}}
    assert suite_records(suite, [record, take_rest]) == [record]


def test_exported_rows_carry_command_version_device_and_date(tmp_path: Path) -> None:
    records = [_record("bovw", "bovw-small", 0.1, k=50), _record("convnet", "lenet5", 0.3)]
    for record in records:
        record["bvc_version"] = "0.1.0"
        record["provenance"] = {"cpu": "test cpu", "threads": {"usable_cpus": 2}}
    path = write_results(tmp_path / "tiny-digits.csv", result_rows(build_tables(records), "bvc"))
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == RESULT_COLUMNS
    assert [(r["model"], r["top1_err"]) for r in rows] == [("bovw-small", "0.1"), ("lenet5", "0.3")]
    assert rows[1]["command"] == "bvc"
    assert rows[1]["bvc_version"] == "0.1.0"
    assert rows[1]["device"] == "cpu (test cpu, 2 cores)"
    assert rows[1]["date"] == "2026-11-26"
    assert rows[1]["source"] == "bvc results export"


def test_bvc_results_export_writes_one_csv_per_dataset(tmp_path: Path) -> None:
    suite = tmp_path / "one.toml"
    suite.write_text('datasets = ["digits"]\nseeds = [0]\n[[run]]\npipeline = "baseline"\n')
    runs = tmp_path / "runs"
    runner = CliRunner()
    ran = runner.invoke(main, ["bench", str(suite), "--runs-dir", str(runs), "--no-progress"])
    assert ran.exit_code == 0, ran.output
    out = tmp_path / "results"
    result = runner.invoke(
        main, ["results", "export", str(suite), "--runs-dir", str(runs), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out / 'one-digits.csv'}\n"
    (row,) = read_results(out / "one-digits.csv")
    assert (row["pipeline"], row["n_train"]) == ("baseline", "1295")
    assert row["command"] == "bvc bench one"


def test_export_without_runs_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["results", "export", "quick", "--runs-dir", str(tmp_path / "none")]
    )
    assert result.exit_code == 2
    assert "no finished run in" in result.output
    assert "run `bvc bench quick` with this runs folder first" in result.output


def test_rows_at_several_sizes_render_as_a_crossover(tmp_path: Path) -> None:
    records = []
    for size, (bovw, lenet) in {100: (0.25, 0.5), 1000: (0.15, 0.1)}.items():
        for pipeline, model, top1 in (("bovw", "bovw-small", bovw), ("convnet", "lenet5", lenet)):
            records.append(fake_record(pipeline, model, n_train=size, seed=0, top1=top1))
    path = write_results(tmp_path / "x.csv", result_rows(build_tables(records), "bvc"))
    assert render_results(read_results(path)).splitlines() == [
        "| top-1 / top-5 err (%) by training images | 100 | 1,000 |",
        "|---|---:|---:|",
        "| bovw-small | **25.00** / **0.00** | 15.00 / **0.00** |",
        "| lenet5 | 50.00 / **0.00** | **10.00** / **0.00** |",
    ]


def _per_class_csv(path: Path) -> Path:
    """A transfer-like CSV: two rows at 5 and 15 images a class, tested at each size."""
    records = []
    for per_class, (features, bovw) in {5: (0.15, 0.17), 15: (0.13, 0.12)}.items():
        for pipeline, model, top1 in (
            ("convnet-features", "lenet5@glyphs-wild", features),
            ("bovw", "bovw-small", bovw),
        ):
            record = fake_record(pipeline, model, n_train=per_class * 4, seed=0, top1=top1)
            record["split"]["train_per_class"] = per_class
            records.append(record)
    rows = result_rows(build_tables(records), "bvc bench transfer")
    for row in rows:  # as a McNemar test would leave them
        if row["rank"] == "2":
            row.update(vs_best="worse", p_vs_best="0.001", test_vs_best="exact McNemar")
    return write_results(path, rows)


def test_a_per_class_crossover_has_a_column_per_images_a_class(tmp_path: Path) -> None:
    path = _per_class_csv(tmp_path / "t.csv")
    assert read_results(path)[0]["train_per_class"] == "5"
    assert render_results(read_results(path)).splitlines() == [
        "| top-1 / top-5 err (%) by training images a class | 5 | 15 |",
        "|---|---:|---:|",
        "| lenet5@glyphs-wild | **15.00** / **0.00** | 13.00 / **0.00** |",
        "| bovw-small | 17.00 / **0.00** | **12.00** / **0.00** |",
        "",
        "Against the best row of each size (exact McNemar, Holm-corrected within each size), "
        "by training images a class: 5: bovw-small worse (p = 0.001); "
        "15: lenet5@glyphs-wild worse (p = 0.001).",
    ]


def test_a_marked_figure_is_drawn_from_its_csv_and_its_drift_found(tmp_path: Path) -> None:
    results = tmp_path / "results"
    path = _per_class_csv(results / "t.csv")
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text("<!-- results-figure:t:begin -->\n<!-- results-figure:t:end -->\n", "utf-8")
    assert check_pages([page], results) == [f"{page}: t (figure)"]  # no SVG yet
    assert check_pages([page], results, write=True) == [f"{page}: t (figure)"]
    svg = tmp_path / "docs" / "figures" / "t.svg"
    assert "](figures/t.svg)" in page.read_text(encoding="utf-8")
    assert svg.read_bytes().startswith(b"<?xml") and b"training images a class" in svg.read_bytes()
    assert check_pages([page], results) == []
    path.write_text(path.read_text().replace("0.15", "0.16"), encoding="utf-8")
    assert check_pages([page], results) == [f"{page}: t (figure)"]  # drawn from another CSV


def test_a_figure_drawn_twice_is_the_same_bytes(tmp_path: Path) -> None:
    from bovw_vs_convnet.harness.results_figures import figure_svg

    rows = read_results(_per_class_csv(tmp_path / "t.csv"))
    assert figure_svg(rows, "0" * 64, "t") == figure_svg(rows, "0" * 64, "t")
