"""convnet-features chooses its CPU threads as every pipeline does: threads=auto by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bovw_vs_convnet.config import build_config, identity_settings
from bovw_vs_convnet.convnet.device import forward_macs
from bovw_vs_convnet.convnet.models import create_model, get_model_spec
from bovw_vs_convnet.convnet_features.config import ConvNetFeaturesConfig
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.harness.run import run_pipeline
from bovw_vs_convnet.threads import choose_threads


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("threads") / "lenet5.pth"
    torch.save(create_model("lenet5", num_classes=7).state_dict(), path)
    return path


def _run(weights: Path, runs: Path, **over: str) -> dict:
    overrides = {"weights": str(weights), "weights_model": "lenet5", "C": "1", **over}
    return run_pipeline(
        "convnet-features", "synthetic", overrides=overrides, train_size=60, runs_dir=runs,
        n_jobs=1, progress=False,
    )  # fmt: skip


def test_threads_default_to_auto_from_the_network_work(weights: Path, tmp_path: Path) -> None:
    torch_threads = torch.get_num_threads()
    try:
        record = _run(weights, tmp_path / "runs")
    finally:
        torch.set_num_threads(torch_threads)
    work = float(forward_macs(get_model_spec("lenet5"), 1))
    assert record["extra"]["threads"] == choose_threads("auto", work).describe()
    assert record["extra"]["threads"]["why"].startswith("auto")


def test_a_set_thread_count_is_recorded_as_set(weights: Path, tmp_path: Path) -> None:
    torch_threads = torch.get_num_threads()
    try:
        record = _run(weights, tmp_path / "runs", threads="1")
    finally:
        torch.set_num_threads(torch_threads)
    assert record["extra"]["threads"] == {"n": 1, "why": "threads=1: set"}


def test_threads_are_not_part_of_a_run_identity() -> None:
    settings = {"source": "lenet5@glyphs-wild", "threads": 2}
    assert identity_settings(ConvNetFeaturesConfig, settings) == {"source": "lenet5@glyphs-wild"}


def test_a_negative_thread_count_is_refused() -> None:
    with pytest.raises(ConfigError, match="threads"):
        build_config(ConvNetFeaturesConfig, {"source": "a", "threads": "-1"})
