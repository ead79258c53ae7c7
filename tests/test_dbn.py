"""The dbn pipeline: RBMs by CD-1, the stack fine-tuned, its bundle read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bundle_runs import resign

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.dbn.config import DbnConfig, hidden_sizes
from bovw_vs_convnet.dbn.model import DeepBeliefNet, count_parameters
from bovw_vs_convnet.dbn.pipeline import input_side, visible_units
from bovw_vs_convnet.dbn.rbm import CdSchedule, Rbm, train_rbm
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.harness.bundle import load_bundle
from bovw_vs_convnet.harness.run import load_split, run_pipeline
from bovw_vs_convnet.harness.store import ResultStore

# about 10 % top-1 on digits in a few seconds
SMALL = {"hidden": "32,32", "pretrain_epochs": "10", "finetune_epochs": "20", "batch_size": "20"}


def _patterns() -> torch.Tensor:
    """40 noisy copies of two 16-pixel binary prototypes (5 % of the pixels flipped)."""
    rng = np.random.default_rng(0)
    protos = np.array([[1, 0] * 8, [1, 1, 0, 0] * 4], dtype=np.float32)
    x = protos[rng.integers(0, 2, 40)]
    flip = rng.random(x.shape) < 0.05
    return torch.from_numpy(np.where(flip, 1 - x, x))


def test_cd1_lowers_the_reconstruction_error_on_a_tiny_set() -> None:
    data = _patterns()
    g = torch.Generator().manual_seed(0)
    untrained = Rbm(torch.randn(8, 16, generator=g) * 0.01, torch.zeros(16), torch.zeros(8))
    rbm = train_rbm(data, 8, CdSchedule(epochs=30, batch_size=10), g)
    assert len(rbm.errors) == 30
    assert rbm.errors[-1] < 0.5 * rbm.errors[0]
    assert rbm.reconstruction_error(data) < 0.25 * untrained.reconstruction_error(data)


@pytest.mark.parametrize(
    ("visible", "hidden"),
    [
        (784, (500, 500, 2000)),
        (64, (250, 250, 1000)),
        (3072, (500, 500, 2000)),
        (588, (375, 375, 1500)),
    ],
)
def test_auto_sizes_scale_the_papers_net_to_the_input(
    visible: int, hidden: tuple[int, ...]
) -> None:
    assert hidden_sizes(visible) == hidden


def test_the_papers_net_has_its_parameter_count() -> None:
    net = DeepBeliefNet(784, (500, 500, 2000), 10)
    count = count_parameters(784, (500, 500, 2000), 10)
    assert count == sum(p.numel() for p in net.parameters()) == 1_665_010


def test_rgb_images_are_three_visible_units_a_pixel_and_large_ones_shrink() -> None:
    pixels = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    assert visible_units(pixels, (4, 4)).shape == (2, 48)
    assert input_side((300, 200), 32) == (32, 21)
    assert visible_units(np.zeros((1, 300, 200, 1), np.uint8), (32, 21)).shape == (1, 672)


def test_bad_sizes_are_refused_before_any_image_is_read() -> None:
    with pytest.raises(ConfigError, match="hidden must be sizes"):
        build_config(DbnConfig, {"hidden": "32,0"})
    assert build_config(DbnConfig, {"hidden": "300, 200"}).hidden == (300, 200)


@pytest.fixture(scope="module")
def dbn_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    runs = tmp_path_factory.mktemp("dbn") / "runs"
    record = run_pipeline(
        "dbn", "digits", overrides=SMALL, train_size=400, runs_dir=runs, n_jobs=1, progress=False
    )
    return {"runs": runs, "record": record}


def test_a_small_dbn_learns_digits_and_records_its_stages(dbn_run: dict[str, Any]) -> None:
    record = dbn_run["record"]
    extra = record["extra"]
    assert record["model"] == "dbn-32-32"
    assert (extra["hidden"], extra["visible"], extra["pretrain_epochs"]) == ([32, 32], 64, 10)
    assert len(extra["reconstruction_errors"]) == 2 and len(extra["val_err_by_epoch"]) == 20
    assert set(record["stage_seconds"]) == {"pretraining", "finetuning", "scoring"}
    assert record["top1_err"] < 0.25  # ten classes: chance is 0.9
    assert record["learned"] is True and extra["chance_test"]["p_value"] < 0.01
    assert extra["threads"]["why"].startswith("auto")  # threads=auto, the default


def test_the_dbn_bundle_scores_as_the_run_did(dbn_run: dict[str, Any]) -> None:
    runs, record = dbn_run["runs"], dbn_run["record"]
    bundle = load_bundle(ResultStore(runs), record["run_id"])
    _, split = load_split("digits", seed=0, train_size=400)
    stored, _, _ = ResultStore(runs).load_scores(record["run_id"])
    np.testing.assert_allclose(bundle.pipeline.decision_scores(split.test), stored, rtol=1e-5)


def test_the_dbn_exports_to_onnx_with_its_scores(dbn_run: dict[str, Any], tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from bovw_vs_convnet.dbn.bundle import export_onnx

    runs, record = dbn_run["runs"], dbn_run["record"]
    pipeline = load_bundle(ResultStore(runs), record["run_id"]).pipeline
    export_onnx(pipeline, tmp_path / "dbn.onnx")
    _, split = load_split("digits", seed=0, train_size=400)
    pixels = split.test.images.transpose(0, 3, 1, 2).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "dbn.onnx"))
    (logits,) = session.run(None, {"pixels": pixels})
    stored, _, _ = ResultStore(runs).load_scores(record["run_id"])
    np.testing.assert_allclose(logits, stored, rtol=1e-4, atol=1e-4)


def _resigned_copy(dbn_run: dict[str, Any], tmp_path: Path) -> tuple[Path, str]:
    """A copy of the stored DBN run whose bundle the test may change (then re-sign)."""
    import shutil

    record = dbn_run["record"]
    runs = tmp_path / "runs"
    shutil.copytree(dbn_run["runs"] / record["run_id"], runs / record["run_id"])
    ResultStore(runs).recover()
    return runs, str(record["run_id"])


def test_a_resigned_dbn_bundle_naming_a_huge_layer_is_refused_before_allocating(
    dbn_run: dict[str, Any], tmp_path: Path
) -> None:
    import json

    from bovw_vs_convnet.errors import DataError

    runs, run_id = _resigned_copy(dbn_run, tmp_path)
    manifest = runs / run_id / "bundle" / "bundle.json"
    data = json.loads(manifest.read_text())
    data["dbn"]["hidden"] = [200_000, 200_000]  # 40 G weights if it were built
    manifest.write_text(json.dumps(data))
    resign(runs, run_id)
    with pytest.raises(DataError, match=r"does not hold this DBN's weights \(at "):
        load_bundle(ResultStore(runs), run_id)


def test_a_resigned_dbn_bundle_with_weights_that_are_not_finite_is_refused(
    dbn_run: dict[str, Any], tmp_path: Path
) -> None:
    from safetensors.torch import load, save

    from bovw_vs_convnet.errors import DataError

    runs, run_id = _resigned_copy(dbn_run, tmp_path)
    weights = runs / run_id / "bundle" / "weights.safetensors"
    tensors = load(weights.read_bytes())
    first = sorted(tensors)[0]
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    weights.write_bytes(save(tensors, metadata={"format": "bvc-dbn-1"}))
    resign(runs, run_id)
    with pytest.raises(DataError, match="holds weights that are not finite"):
        load_bundle(ResultStore(runs), run_id)
