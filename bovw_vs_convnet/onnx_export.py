"""One ONNX writer for the pipelines that score with a torch module (ConvNets, the DBN).

The scorer takes ``pixels``, float32 (batch, channels, height, width) with values 0-255,
and returns ``logits`` (batch, classes); the batch size stays free in the graph. torch is
imported by the caller's module, never by this one's import.
"""

from __future__ import annotations

from typing import Any


def save_onnx(scorer: Any, example: Any, path: Any) -> None:
    """Export ``scorer`` (a torch module, in eval mode) traced on ``example`` to ``path``.

    ImportError when ``onnx`` (the ``[onnx]`` extra) is missing, checked before exporting.
    """
    import onnx  # noqa: F401  (the exporter's own dependency, checked here first)
    import torch

    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        scorer,
        (example,),
        input_names=["pixels"],
        output_names=["logits"],
        dynamic_shapes={"pixels": {0: batch}},
        dynamo=True,
        verbose=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path))
