"""Hand-made run records for the report and figure tests (no pipeline is run)."""

from __future__ import annotations

from typing import Any


def fake_record(
    pipeline: str,
    model: str,
    *,
    n_train: int,
    seed: int,
    top1: float,
    dataset: str = "digits",
    status: str = "ok",
    train_seconds: float = 1.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A run record with the keys the store and leaderboard read."""
    run_id = f"r-{pipeline}-{model}-{n_train}-{seed}-{status}"
    return {
        "run_id": run_id,
        "status": status,
        "error": None if status == "ok" else "ValueError: boom",
        "pipeline": pipeline,
        "model": model,
        "dataset": dataset,
        "split_fingerprint": f"fp-{n_train}-{seed}",
        "split": {"dataset": dataset, "seed": seed, "train_size": n_train, "val_fraction": 0.1},
        "seed": seed,
        "n_train": n_train,
        "n_test": 100,
        "class_names": ["a", "b"],
        "config": {"model": model},
        "config_key": f"key-{run_id}",
        "top1_err": top1 if status == "ok" else None,
        "top5_err": 0.0 if status == "ok" else None,
        "confusion": [[40, 10], [5, 45]],
        "train_seconds": train_seconds,
        "infer_seconds": 0.1,
        "infer_images_per_s": 1000.0,
        "n_params": 1000,
        "device": "cpu",
        "extra": extra or {},
        "provenance": {"git": {"commit": "0123456789abcdef", "dirty": False}, "cpu": "test cpu"},
        "created_at": "2026-11-26T17:00:00+00:00",
    }


def crossover_records() -> list[dict[str, Any]]:
    """BoVW better at 100 images, the ConvNet better at 10 000, two seeds each."""
    out = []
    for seed in (0, 1):
        out.append(fake_record("bovw", "tiny", n_train=100, seed=seed, top1=0.20))
        out.append(fake_record("bovw", "tiny", n_train=10000, seed=seed, top1=0.10))
        out.append(fake_record("convnet", "lenet5", n_train=100, seed=seed, top1=0.30))
        out.append(
            fake_record(
                "convnet",
                "lenet5",
                n_train=10000,
                seed=seed,
                top1=0.0,
                train_seconds=5.0,
                extra={
                    "learning_curve": {
                        "epoch": [1, 2],
                        "train_loss": [1.0, 0.5],
                        "val_error": [0.4, 0.3],
                    },
                },  # as the ConvNet pipeline records it
            )
        )
    return out
