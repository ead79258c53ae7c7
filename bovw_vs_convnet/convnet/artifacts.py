"""What a ConvNet run leaves for the report: its first-layer filters and its learning curve.

:meth:`~.pipeline.ConvNetPipeline.save_artifacts` writes them into the run folder; the
report (which imports no torch) draws from those files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def first_conv_weights(model: torch.nn.Module) -> np.ndarray | None:
    """The first 4-d weight, (out, in, kh, kw), of ``model`` as float32 numpy; None if none."""
    for name, tensor in model.state_dict().items():
        if name.endswith("weight") and tensor.ndim == 4:
            return np.asarray(tensor.detach().float().cpu().numpy())
    return None


def write_learning_curve(curve: dict[str, list[Any]], path: Path) -> None:
    """``curve`` (``epoch``, ``train_loss``, ``val_error`` lists) as CSV, one row per epoch."""
    val_error = curve.get("val_error") or []
    rows = ["epoch,train_loss,val_error"]
    for i, (epoch, loss) in enumerate(zip(curve["epoch"], curve["train_loss"], strict=True)):
        err = repr(float(val_error[i])) if i < len(val_error) else ""
        rows.append(f"{epoch},{float(loss)!r},{err}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
