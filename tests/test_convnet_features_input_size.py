"""convnet-features reads a source run at the input size it was trained at, not its design size.

The source is a lenet5 (designed for 32 px) trained with ``input_size=48`` on 64-px
images: its stem is strided for 48 px (convnet/input_size.py). The features run, its
thread choice and its own bundle all take the network at 48 px.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bundle_runs import assert_predicts_stored_scores, invoke, one_line, resign

from bovw_vs_convnet.convnet.device import forward_macs
from bovw_vs_convnet.convnet.models import get_model_spec
from bovw_vs_convnet.convnet_features.extractor import LayerReader
from bovw_vs_convnet.convnet_features.source import from_run
from bovw_vs_convnet.harness.bundle import BUNDLE_DIR, load_bundle
from bovw_vs_convnet.harness.store import ResultStore
from bovw_vs_convnet.protocol import RunContext
from bovw_vs_convnet.threads import choose_threads

SIZE = 48  # lenet5's design size is 32
SOURCE = {"model": "lenet5", "epochs": "1", "recipe": "fixed", "input_size": str(SIZE)}


def _shapes_folder(root: Path) -> Path:
    """train/ and test/ of 64-px gray discs, squares and stripes on noise."""
    import cv2

    rng = np.random.default_rng(0)
    for part, n in (("train", 12), ("test", 4)):
        for kind in ("disc", "square", "stripes"):
            folder = root / part / kind
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 40, (64, 64), dtype=np.uint8)
                if kind == "disc":
                    cv2.circle(img, (32, 32), 18, 220, -1)
                elif kind == "square":
                    cv2.rectangle(img, (14, 14), (50, 50), 220, -1)
                else:
                    img[:, ::6] = 220
                cv2.imwrite(str(folder / f"{i}.png"), img)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from bovw_vs_convnet.harness.run import run_pipeline

    root = tmp_path_factory.mktemp("features_input_size")
    data, runs = _shapes_folder(root / "data"), root / "runs"
    common: dict[str, Any] = {"runs_dir": runs, "n_jobs": 1, "progress": False}
    torch_threads = torch.get_num_threads()
    try:
        source = run_pipeline("convnet", str(data), overrides=SOURCE, **common)
        features = run_pipeline(
            "convnet-features", str(data), overrides={"source": source["run_id"]}, **common
        )
    finally:
        torch.set_num_threads(torch_threads)
    return {"runs": runs, "data": data, "source": source, "features": features}


def test_the_source_network_is_fed_at_its_own_input_size(runs: dict[str, Any]) -> None:
    staging = runs["runs"] / ".partial" / "features"  # where a run looks its source up
    context = RunContext(run_dir=staging, cache_dir=staging, split_fingerprint="", seed=0)
    network = from_run(runs["source"]["run_id"], context)
    assert network.spec.input_size == SIZE
    reader = LayerReader(network.model, network.spec, "penultimate", (64, 64), 1)
    pixels = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 1), dtype=np.uint8)
    fed = reader.adapter(torch.from_numpy(pixels).permute(0, 3, 1, 2))
    assert tuple(fed.shape) == (5, 1, SIZE, SIZE)
    assert reader.read(pixels).shape == (5, 84)
    extra = runs["features"]["extra"]
    assert (extra["input"]["input_size"], extra["feature_dim"]) == ([SIZE, SIZE], 84)


def test_threads_are_chosen_for_the_work_at_the_source_input_size(runs: dict[str, Any]) -> None:
    work = float(forward_macs(get_model_spec("lenet5"), 1, input_size=SIZE))
    assert work != float(forward_macs(get_model_spec("lenet5"), 1))  # 32 px: another count
    assert runs["features"]["extra"]["threads"] == choose_threads("auto", work).describe()


def test_the_features_bundle_rebuilds_the_network_at_that_size(runs: dict[str, Any]) -> None:
    store, record = ResultStore(runs["runs"]), runs["features"]
    pipeline = load_bundle(store, record["run_id"]).pipeline
    assert pipeline.reader_.adapter.size == SIZE
    assert pipeline.network_.model.features[0].stride == (2, 2)  # the 48-px stem
    assert_predicts_stored_scores(runs["runs"], record["run_id"], runs["data"] / "test", top=3)


def test_a_resigned_features_bundle_with_a_huge_input_size_is_refused(
    runs: dict[str, Any], tmp_path: Path
) -> None:
    record = runs["features"]
    copy = tmp_path / "runs"
    shutil.copytree(runs["runs"] / record["run_id"], copy / record["run_id"])
    ResultStore(copy).recover()
    manifest = copy / record["run_id"] / BUNDLE_DIR / "bundle.json"
    data = json.loads(manifest.read_text())
    data["convnet-features"]["network"]["input_size"] = 100_000  # 40 GB a batch if read
    manifest.write_text(json.dumps(data))
    resign(copy, record["run_id"])
    image = sorted((runs["data"] / "test" / "disc").iterdir())[0]
    result = invoke("predict", record["run_id"], str(image), "--runs-dir", str(copy))
    assert result.exit_code == 2, result.output
    assert one_line(result.output) == (
        f"error: run {record['run_id']}: its bundle is refused: "
        "the bundle's input size 100000 is not in [16, 1024]"
    )
