"""Score the test set again from a finished convnet run's checkpoint, with and without TTA flip.

Rebuilds the run's split and pipeline from its ``record.json``, loads the final
checkpoint (no training: the run is finished) and prints top-1/top-5 test error of
the kept weights, plain and with logits averaged over each image and its mirror.

    PYTHONPATH=. python tools/rescore_checkpoint.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.convnet.config import ConvNetConfig
from bovw_vs_convnet.convnet.pipeline import CHECKPOINT_NAME, build_pipeline
from bovw_vs_convnet.data import load_dataset, make_split
from bovw_vs_convnet.protocol import RunContext


def errors(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(top-1, top-5) error fractions."""
    top5 = np.argsort(-scores, axis=1)[:, :5]
    return float((top5[:, 0] != labels).mean()), float((top5 != labels[:, None]).all(1).mean())


def main() -> None:
    """Parse the run folder, rescore, print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    args = ap.parse_args()
    record = json.loads((args.run_dir / "record.json").read_text())
    split_params = record["split"]
    ds = load_dataset(record["dataset"])
    split = make_split(
        ds, seed=split_params["seed"], train_size=split_params.get("train_size"),
        val_fraction=split_params["val_fraction"],
    )  # fmt: skip
    assert split.fingerprint == record["split_fingerprint"], "split differs from the run's"
    cfg = build_config(ConvNetConfig, record["config"])
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(args.run_dir / CHECKPOINT_NAME, Path(tmp) / CHECKPOINT_NAME)
        ctx = RunContext(
            run_dir=Path(tmp), cache_dir=None, split_fingerprint=split.fingerprint,
            seed=record["seed"], device="cpu", resume=True, progress=False,
        )  # fmt: skip
        pipe = build_pipeline(cfg, ctx).fit(split.train, split.val)
        assert pipe.trainer is not None
        from bovw_vs_convnet.convnet.batches import make_batches

        source = make_batches(split.test, pipe.trainer.device, 0)
        plain = pipe.trainer.predict(source, flip=False).numpy()
        flip = pipe.trainer.predict(source, flip=True).numpy()
    labels = split.test.labels
    out = {
        "run_id": record["run_id"], "model": record["model"],
        "record_top1_err": record["top1_err"], "record_top5_err": record["top5_err"],
        "plain": errors(plain, labels), "tta_flip": errors(flip, labels),
    }  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
