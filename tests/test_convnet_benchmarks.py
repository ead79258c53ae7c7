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


def test_gpu_figures_folds_each_step_into_one_json_then_draws_it(tmp_path: Path) -> None:
    figures = _bench_module("gpu_figures")
    record = {
        "run_id": "r1", "model": "lenet5", "top1_err": 0.0898, "top5_err": 0.001,
        "train_seconds": 12.5, "device": "cuda:0", "confusion": [[1, 0], [0, 1]],
        "extra": {
            "epochs_run": 2, "train_images_per_s": 50_000.0, "amp": "bf16",
            "learning_curve": {"epoch": [1, 2], "train_loss": [0.9, 0.5], "val_error": [0.2, 0.1]},
        },
    }  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "run.out").write_text("progress text\n" + json.dumps(record) + "\n")
    bench = {"model": "lenet5", "canonical_img_s": [100.0], "trainer_img_s": [250.0]}
    partial = {"model": "lenet5", "canonical_img_s": [100.0], "trainer_img_s": []}
    (tmp_path / "bench.out").write_text(json.dumps(partial) + "\n" + json.dumps(bench) + "\n")
    (tmp_path / "crash.out").write_text("Traceback (most recent call last):\nOops\n")
    for name, status, output in [
        ("run_lenet5", "ok", "run.out"),
        ("bench_trainer_lenet5", "ok", "bench.out"),
        ("bench_alexnet", "failed (exit 1)", "crash.out"),
    ]:
        figures.add_step(out / "gpu_check.json", name, status, 3.0, tmp_path / output)
    steps = json.loads((out / "gpu_check.json").read_text())["steps"]
    assert "confusion" not in steps["run_lenet5"]["result"]  # cut to the summary's figures
    assert steps["bench_trainer_lenet5"]["result"] == bench  # the last JSON line printed
    assert steps["bench_alexnet"] == {
        "status": "failed (exit 1)", "seconds": 3.0, "result": None,
        "tail": ["Traceback (most recent call last):", "Oops"],
    }  # fmt: skip
    figures.figures(out)
    summary = (out / "summary.md").read_text().splitlines()
    assert "| bench_alexnet | failed (exit 1) | 3.0 |" in summary
    assert "| lenet5 | 2 | 0.0898 | 0.0010 | 12.5 | 50,000 | cuda:0 | bf16 |" in summary
    assert (out / "learning_curves.png").stat().st_size > 0
    assert (out / "throughput.png").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == [
        "gpu_check.json", "learning_curves.png", "summary.md", "throughput.png",
    ]  # fmt: skip


def test_bench_trainer_profile_ranks_lenet5_convolutions_among_top_operators() -> None:
    bench = _bench_module("bench_trainer")
    images = bench.load_images(128, synthetic=True)
    settings = {"model": "lenet5", "batch_size": 64, "epochs": 1, "warmup_steps": 1, "augment": ""}
    cfg = bench.build_config(bench.ConvNetConfig, settings)
    shares = bench.profile_trainer("lenet5", images, bench.torch.device("cpu"), cfg, top=10)
    assert len(shares) == 10
    assert "aten::convolution_backward" in shares
    assert 0 < sum(shares.values()) <= 1
