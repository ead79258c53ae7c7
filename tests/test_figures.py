"""Figures: each one drawn from hand-made numbers, written as PNG and SVG."""

from pathlib import Path

import numpy as np
import pytest

from bovw_vs_convnet.harness import figures
from bovw_vs_convnet.harness.crossover import estimate_crossover


def test_save_figure_writes_png_and_svg(tmp_path: Path) -> None:
    fig = figures.learning_curves_figure({"train_loss": [1.0, 0.5]})
    png, svg = figures.save_figure(fig, tmp_path / "sub" / "curves")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:400]


def test_error_vs_size_uses_a_log_axis_and_marks_the_crossover() -> None:
    curves = {"bovw/tiny": {100: [0.2], 10000: [0.1]}, "convnet/lenet5": {100: [0.3], 10000: [0.0]}}
    cross = estimate_crossover({100: 0.2, 10000: 0.1}, {100: 0.3, 10000: 0.0})
    fig = figures.error_vs_train_size_figure(curves, crossover=cross)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["bovw/tiny", "convnet/lenet5"]
    assert any("crossover ≈ 1 000" in t.get_text() for t in ax.texts)


def test_confusion_matrix_rows_are_normalised() -> None:
    fig = figures.confusion_matrix_figure(np.array([[3, 1], [0, 0]]), ["a", "b"])
    image = np.asarray(fig.axes[0].get_images()[0].get_array())
    assert image.tolist() == [[0.75, 0.25], [0.0, 0.0]]


def test_confusion_matrix_checks_its_shape() -> None:
    with pytest.raises(ValueError, match="C = 3 classes"):
        figures.confusion_matrix_figure(np.zeros((2, 2)), ["a", "b", "c"])


def test_learning_curves_split_losses_and_errors_into_two_panels() -> None:
    fig = figures.learning_curves_figure(
        {"train_loss": [2.0, 1.0, 0.5], "val_error": [0.5, 0.3, 0.2]}
    )
    assert len(fig.axes) == 2
    assert np.asarray(fig.axes[1].get_lines()[0].get_ydata()).tolist() == pytest.approx(
        [50.0, 30.0, 20.0]
    )


@pytest.mark.parametrize(
    ("seconds", "errors", "front"),
    [
        ([1.0, 2.0, 3.0], [0.3, 0.2, 0.1], [0, 1, 2]),
        ([1.0, 2.0, 3.0], [0.1, 0.2, 0.05], [0, 2]),
        ([5.0, 1.0, 1.0], [0.1, 0.3, 0.2], [2, 0]),
    ],
)
def test_pareto_front(seconds: list[float], errors: list[float], front: list[int]) -> None:
    assert figures.pareto_front(seconds, errors) == front


def test_error_vs_time_draws_the_front_as_steps() -> None:
    fig = figures.error_vs_time_figure(["a", "b", "c"], [1.0, 2.0, 3.0], [0.1, 0.2, 0.05])
    (front,) = fig.axes[0].get_lines()
    assert np.asarray(front.get_ydata()).tolist() == pytest.approx([10.0, 5.0])


def test_conv_filters_one_panel_per_filter() -> None:
    weights = np.random.default_rng(0).normal(size=(6, 1, 5, 5))
    fig = figures.conv_filters_figure(weights)
    assert len(fig.axes) == 6
    assert np.asarray(fig.axes[0].get_images()[0].get_array()).shape == (5, 5)
