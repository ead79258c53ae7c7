"""The Python parts of the benchmarks: GPU-check figures and summary, the trainer profile."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench_module(name: str):  # benchmarks/ is not a package
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_figures_writes_curves_throughput_and_summary(tmp_path: Path) -> None:
    record = {
        "model": "lenet5", "top1_err": 0.0898, "top5_err": 0.001, "train_seconds": 12.5,
        "device": "cuda:0",
        "extra": {
            "epochs_run": 2, "train_images_per_s": 50_000.0,
            "learning_curve": {"epoch": [1, 2], "train_loss": [0.9, 0.5], "val_error": [0.2, 0.1]},
        },
    }  # fmt: skip
    (tmp_path / "run_lenet5.json").write_text("progress text\n" + json.dumps(record) + "\n")
    bench = {"model": "lenet5", "canonical_img_s": [100.0], "trainer_img_s": [250.0]}
    (tmp_path / "bench_trainer_lenet5.json").write_text(json.dumps(bench))
    _bench_module("gpu_figures").main(tmp_path)
    summary = (tmp_path / "summary.md").read_text().splitlines()
    assert summary[2] == "| lenet5 | 2 | 0.0898 | 0.0010 | 12.5 | 50,000 | cuda:0 |"
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert (tmp_path / "throughput.png").stat().st_size > 0


def test_bench_trainer_profile_ranks_lenet5_convolutions_among_top_operators() -> None:
    bench = _bench_module("bench_trainer")
    images = bench.load_images(128, synthetic=True)
    settings = {"model": "lenet5", "batch_size": 64, "epochs": 1, "warmup_steps": 1, "augment": ""}
    cfg = bench.build_config(bench.ConvNetConfig, settings)
    shares = bench.profile_trainer("lenet5", images, bench.torch.device("cpu"), cfg, top=10)
    assert len(shares) == 10
    assert "aten::convolution_backward" in shares
    assert 0 < sum(shares.values()) <= 1
