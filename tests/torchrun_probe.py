"""Run under torchrun by tests/test_torchrun.py: one ConvNet run, each rank's weights saved.

``python -m torch.distributed.run --nproc-per-node 2 tests/torchrun_probe.py OUT RUNS ARGS``
runs ``bvc run convnet ARGS --runs-dir RUNS`` on every rank, and after training each
rank saves its model's weights and training losses to ``OUT/rank<r>.pt``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from bovw_vs_convnet.cli import main
from bovw_vs_convnet.convnet.pipeline import ConvNetPipeline

out, runs, *args = sys.argv[1:]
fit = ConvNetPipeline.fit


def fit_and_save(self: ConvNetPipeline, *a: Any, **k: Any) -> ConvNetPipeline:
    """The pipeline's fit, then this rank's weights and losses to OUT/rank<r>.pt."""
    result = fit(self, *a, **k)
    assert self.trainer is not None
    torch.save(
        {"model": self.trainer.model.state_dict(), "loss": self.trainer.history.train_loss},
        Path(out) / f"rank{os.environ.get('RANK', '0')}.pt",
    )
    return result


ConvNetPipeline.fit = fit_and_save  # type: ignore[method-assign]
main(["run", "convnet", *args, "--runs-dir", runs, "--no-progress", "--json"])
