"""The convnet-features pipeline: a stored ConvNet read at one layer, linear SVMs on top."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.models import create_model
from bovw_vs_convnet.convnet_features.config import ConvNetFeaturesConfig
from bovw_vs_convnet.convnet_features.extractor import InputSpec, LayerReader, to_channels
from bovw_vs_convnet.errors import ConfigError, DataError, RunFailed
from bovw_vs_convnet.harness.bundle import load_bundle
from bovw_vs_convnet.harness.run import load_split, run_pipeline
from bovw_vs_convnet.harness.store import ResultStore

SPEC = InputSpec(1, 32, "pad", 1, (0.5,), (0.25,))
# a lenet5 that learns the six shapes in a few seconds (about 20 % test error)
SOURCE = {"model": "lenet5", "epochs": "10", "recipe": "fixed", "optimizer": "adamw",
          "lr": "0.003", "batch_size": "32"}  # fmt: skip


def _reader(layer: str, channels: int = 1) -> LayerReader:
    torch.manual_seed(0)
    return LayerReader(create_model("lenet5", num_classes=10), SPEC, layer, (28, 28), channels)


@pytest.mark.parametrize(
    ("layer", "dim"),
    [("penultimate", 84), ("pool", 400), ("features.3", 16 * 10 * 10), ("classifier.0", 120)],
)
def test_features_have_the_width_of_the_layer_read(layer: str, dim: int) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    assert _reader(layer).read(pixels).shape == (5, dim)


def test_the_penultimate_layer_is_the_input_of_the_output_layer() -> None:
    reader = _reader("penultimate")
    pixels = np.random.default_rng(1).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    x = reader.adapter(torch.from_numpy(pixels).permute(0, 3, 1, 2))
    with torch.no_grad():
        logits = reader.model(x).numpy()
    head = reader.model.classifier[-1]
    rebuilt = reader.read(pixels) @ head.weight.detach().numpy().T + head.bias.detach().numpy()
    np.testing.assert_allclose(rebuilt, logits, rtol=1e-4, atol=1e-5)


def test_an_unknown_layer_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no layer 'fc9'; known: penultimate, pool, features"):
        _reader("fc9")


def test_grayscale_images_are_replicated_for_an_rgb_network() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)[..., :1]
    assert to_channels(gray, 3).tolist() == np.repeat(gray, 3, axis=-1).tolist()
    assert to_channels(np.full((1, 1, 1, 3), 100, np.uint8), 1).tolist() == [[[[100]]]]


def test_a_config_names_exactly_one_network() -> None:
    with pytest.raises(ConfigError, match="exactly one of source"):
        build_config(ConvNetFeaturesConfig, {})
    with pytest.raises(ConfigError, match="exactly one of source"):
        build_config(ConvNetFeaturesConfig, {"source": "a", "weights": "b"})


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    runs = tmp_path_factory.mktemp("features") / "runs"
    record = run_pipeline(
        "convnet", "synthetic", overrides=SOURCE, train_size=360, runs_dir=runs, progress=False
    )
    return {"runs": runs, "record": record}


def test_transfer_from_a_stored_run_names_it_and_predicts_from_its_own_bundle(
    source_run: dict[str, Any],
) -> None:
    runs, source = source_run["runs"], source_run["record"]
    record = run_pipeline(
        "convnet-features",
        "synthetic",
        overrides={"source": source["run_id"]},
        seed=1,
        train_size=120,
        runs_dir=runs,
        n_jobs=1,
        progress=False,
    )
    extra = record["extra"]
    assert extra["source"]["run_id"] == source["run_id"]
    assert extra["source"]["weights_sha256"] == source["bundle_files"]["weights.safetensors"]
    assert (extra["layer"], extra["feature_dim"]) == ("penultimate", 84)
    assert record["model"] == "lenet5@synthetic"
    assert record["top1_err"] < 0.5  # six classes: chance is 0.83
    bundle = load_bundle(ResultStore(runs), record["run_id"])
    _, split = load_split("synthetic", seed=1, train_size=120)
    stored, _, _ = ResultStore(runs).load_scores(record["run_id"])
    np.testing.assert_allclose(bundle.pipeline.decision_scores(split.test), stored, rtol=1e-5)


def test_a_source_named_by_model_and_dataset_is_the_newest_such_run(
    source_run: dict[str, Any],
) -> None:
    runs, source = source_run["runs"], source_run["record"]
    over = {"source": "lenet5@synthetic", "layer": "pool", "C": "1"}
    record = run_pipeline(
        "convnet-features", "synthetic", overrides=over, train_size=60, runs_dir=runs,
        n_jobs=1, progress=False,
    )  # fmt: skip
    assert (record["extra"]["source"]["run_id"], record["extra"]["feature_dim"]) == (
        source["run_id"],
        400,
    )


def test_a_source_that_is_not_a_convnet_run_is_refused(source_run: dict[str, Any]) -> None:
    runs = source_run["runs"]
    with pytest.raises(RunFailed) as failed:
        run_pipeline(
            "convnet-features", "synthetic", overrides={"source": "nosuchrun"}, train_size=60,
            runs_dir=runs, n_jobs=1, progress=False,
        )  # fmt: skip
    assert isinstance(failed.value.__cause__, DataError)
    assert "no run 'nosuchrun'" in str(failed.value.__cause__)


def _weights_run(path: Path, runs: Path, model: str = "lenet5") -> dict[str, Any]:
    over = {"weights": str(path), "weights_model": model, "C": "1"}
    return run_pipeline(
        "convnet-features", "synthetic", overrides=over, train_size=60, runs_dir=runs,
        n_jobs=1, progress=False,
    )  # fmt: skip


def test_a_state_dict_file_is_read_and_named_by_its_sha256(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "lenet5.pth"
    torch.save(create_model("lenet5", num_classes=7).state_dict(), path)
    record = _weights_run(path, tmp_path / "runs")
    import hashlib

    assert record["extra"]["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["extra"]["feature_dim"] == 84


def test_a_weights_file_holding_more_than_tensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pth"
    state = create_model("lenet5", num_classes=7).state_dict()
    torch.save({"model": state, "epoch": 3}, path)
    with pytest.raises(RunFailed) as failed:
        _weights_run(path, tmp_path / "runs")
    line = str(failed.value.__cause__)
    assert isinstance(failed.value.__cause__, DataError)
    assert "holds more than tensors ('model': OrderedDict)" in line and "\n" not in line


def test_a_pickled_object_in_a_weights_file_never_runs(tmp_path: Path) -> None:
    from bundle_runs import Plant

    path, marker = tmp_path / "hostile.pth", tmp_path / "planted"
    torch.save(Plant(marker), path)
    with pytest.raises(RunFailed) as failed:
        _weights_run(path, tmp_path / "runs")
    assert "is not a plain state dict" in str(failed.value.__cause__)
    assert not marker.exists()


@pytest.mark.slow
def test_a_torchvision_alexnet_state_dict_is_read_at_fc7(tmp_path: Path) -> None:
    path = tmp_path / "alexnet.pth"
    torch.save(create_model("alexnet", num_classes=6).state_dict(), path)
    record = _weights_run(path, tmp_path / "runs", model="alexnet")
    assert record["extra"]["feature_dim"] == 4096
    assert record["extra"]["input"]["input_size"] == [224, 224]


def test_bvc_compare_pairs_a_features_run_with_its_source_on_the_same_images(
    source_run: dict[str, Any],
) -> None:
    from bundle_runs import invoke

    runs, source = source_run["runs"], source_run["record"]
    result = invoke(
        "run", "convnet-features", "--dataset", "synthetic", "--train-size", "360",
        "--from", source["run_id"], "--runs-dir", str(runs), "--jobs", "1", "--json",
        "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    features = json.loads(result.stdout)
    assert features["split_fingerprint"] == source["split_fingerprint"]
    compared = invoke("compare", source["run_id"], features["run_id"], "--runs-dir", str(runs))
    assert compared.exit_code == 0, compared.output
    assert "McNemar" in compared.output


def test_from_names_a_stored_run_of_the_runs_folder(tmp_path: Path) -> None:
    from bundle_runs import invoke, one_line

    result = invoke(
        "run", "convnet-features", "--dataset", "synthetic", "--from", "nosuchrun",
        "--runs-dir", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 2
    assert one_line(result.output).startswith("error: no run 'nosuchrun' in ")


def test_bvc_run_help_names_every_pipeline_and_bvc_models_the_dbn() -> None:
    from bundle_runs import invoke

    from bovw_vs_convnet.harness.registry import PIPELINES

    text = " ".join(invoke("run", "--help").output.split())
    assert all(name in text for name in PIPELINES)
    rows = json.loads(invoke("models", "--json").output)
    assert rows[-1]["model"] == "dbn" and rows[-1]["param_count"] == 1_665_010


def test_a_resigned_bundle_naming_a_billion_classes_is_refused_before_building(
    source_run: dict[str, Any], tmp_path: Path
) -> None:
    import json
    import shutil

    from bundle_runs import resign

    from bovw_vs_convnet.errors import DataError

    runs, source = source_run["runs"], source_run["record"]
    record = run_pipeline(
        "convnet-features",
        "synthetic",
        overrides={"source": source["run_id"]},
        seed=1,
        train_size=120,
        runs_dir=runs,
        n_jobs=1,
        progress=False,
        skip_existing=True,
    )
    copy = tmp_path / "runs"
    shutil.copytree(runs / record["run_id"], copy / record["run_id"])
    ResultStore(copy).recover()
    manifest = copy / record["run_id"] / "bundle" / "bundle.json"
    data = json.loads(manifest.read_text())
    data["convnet-features"]["network"]["num_classes"] = 10**9  # 84 G weights if built
    manifest.write_text(json.dumps(data))
    resign(copy, record["run_id"])
    with pytest.raises(DataError, match="does not hold the weights of 'lenet5' for 1000000000"):
        load_bundle(ResultStore(copy), record["run_id"])
