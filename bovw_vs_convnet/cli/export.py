"""`bvc export RUN_ID --format onnx`: a stored ConvNet run as an ONNX model.

The run's bundle is verified as for ``bvc predict``; the network is exported with
its input adaptation (normalisation, pad or resize) and test-time flip in the graph
through torch's exporter (``torch.onnx.export(dynamo=True)``), so the file takes the
image's pixels as read (float32, 0-255, channels first) and gives the logits. Where
onnxruntime is installed, the file is run once on a batch and compared with PyTorch.
Logits that are not finite are one line, exit 2: PyTorch's before anything is written,
onnxruntime's with the file removed.
Needs the ``[onnx]`` extra.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import click

from bovw_vs_convnet.cli.options import choice_option, json_option, runs_dir_option
from bovw_vs_convnet.errors import ConfigError, DataError

HINT = "ONNX export needs the onnx extra: pip install -e '.[onnx]' (onnx, onnxscript, onnxruntime)"


def _check_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError(HINT) from None


def _random_pixels(bundle: Any) -> Any:
    """4 seeded random images at the bundle's input, uint8 (N, C, H, W)."""
    import numpy as np

    h, w = bundle.image_size
    return np.random.default_rng(0).integers(
        0, 256, size=(4, bundle.channels, h, w), dtype=np.uint8
    )


def _torch_logits(bundle: Any, pixels: Any) -> Any:
    """The bundle's PyTorch logits for ``pixels``; DataError when one is not finite (nothing
    is exported then).
    """
    import numpy as np

    from bovw_vs_convnet.data.imageset import ImageSet

    images = ImageSet(
        images=np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)),  # (N, H, W, C)
        labels=np.zeros(len(pixels), dtype=np.int64),
        ids=np.array([str(i) for i in range(len(pixels))]),
        class_names=tuple(bundle.class_names),
    )
    logits = np.asarray(bundle.pipeline.decision_scores(images))
    if not np.isfinite(logits).all():
        raise DataError(f"run {bundle.run_id}: its model gives logits that are not finite")
    return logits


def _onnxruntime_gap(path: Path, pixels: Any, want: Any) -> float | None:
    """The largest |logit difference| between onnxruntime on ``path`` and PyTorch's ``want``
    for ``pixels``; None without onnxruntime. DataError (the file removed) when the ONNX
    logits are not finite.
    """
    try:
        import onnxruntime
    except ImportError:
        return None
    import numpy as np

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"pixels": pixels.astype(np.float32)})
    if not np.isfinite(got).all():
        path.unlink(missing_ok=True)
        raise DataError(f"{path}: the exported model gives logits that are not finite; removed")
    return float(np.abs(np.asarray(got) - want).max())


@click.command("export")
@click.argument("run_id")
@choice_option("--format", ["onnx"], "onnx", "The file format.", dest="fmt")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The file written. [default: RUNS_DIR/exports/RUN_ID.onnx]",
)
@json_option
@runs_dir_option
def export(run_id: str, fmt: str, output: Path | None, as_json: bool, runs_dir: Path) -> None:
    """Write stored ConvNet run RUN_ID's model as an ONNX file."""
    from bovw_vs_convnet.harness.bundle import exporter, load_bundle
    from bovw_vs_convnet.harness.store import ResultStore

    store = ResultStore(runs_dir)
    write = exporter(store, run_id, fmt)  # a BoVW run is refused here, before any loading
    _check_onnx()
    bundle = load_bundle(store, run_id)
    pixels = _random_pixels(bundle)
    want = _torch_logits(bundle, pixels)  # finite, or nothing is written
    path = output or runs_dir / "exports" / f"{run_id}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter's own progress lines
        info = write(bundle.pipeline, path)
    gap = _onnxruntime_gap(path, pixels, want)
    if as_json:
        summary = {"run_id": run_id, "format": fmt, "path": str(path), **info}
        click.echo(json.dumps({**summary, "onnxruntime_max_abs_diff": gap}))
        return
    shape = "x".join(str(v) for v in info["input"]["shape"])
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes): pixels {shape} (0-255) -> logits")
    if gap is not None:
        click.echo(
            f"onnxruntime agrees with PyTorch to {gap:.2g} (largest logit difference, "
            "4 random images)"
        )
