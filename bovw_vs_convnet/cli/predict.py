"""`bvc predict RUN_ID IMAGE|FOLDER...`: a stored run's model bundle applied to image files.

The bundle is verified against the run's record before anything of it is read as a
model (``harness/bundle.py``), and the images are read and preprocessed as the run's
were (``harness/predict.py``). A header names the columns (``image``, then ``class 1``
and ``score 1`` to ``class K`` and ``score K``, best first), then one line per image.
File and class names are printed with control characters, newlines and undecodable
bytes escaped (:func:`~bovw_vs_convnet.printable.printable`), so no name can start a
line of its own or talk to the terminal; ``--json``: one object with every prediction,
the names exact (JSON escapes them itself).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from bovw_vs_convnet.cli.options import count_option, json_option, runs_dir_option
from bovw_vs_convnet.printable import printable


def _score(value: float) -> str:
    return f"{value:.4g}"


@click.command("predict")
@click.argument("run_id")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@count_option("--top", 5, "Classes shown per image, best first (at most the run's classes).")
@json_option
@runs_dir_option
def predict(run_id: str, images: tuple[Path, ...], top: int, as_json: bool, runs_dir: Path) -> None:
    """Top classes of each IMAGE (files, or folders of them) by stored run RUN_ID's model.

    The run's model bundle must match the sha256 in its record; the images are read at
    the run's size and channels and preprocessed as its test images were.
    """
    from bovw_vs_convnet.harness.bundle import load_bundle
    from bovw_vs_convnet.harness.predict import image_paths, predict_images
    from bovw_vs_convnet.harness.store import ResultStore

    paths = image_paths(images)  # a missing file is refused before the bundle is loaded
    bundle = load_bundle(ResultStore(runs_dir), run_id)
    predictions = list(predict_images(bundle, paths, top))
    if as_json:
        payload = {
            "run_id": run_id,
            "pipeline": bundle.manifest.get("pipeline"),
            "model": bundle.manifest.get("model"),
            "top": min(top, len(bundle.class_names)),
            "predictions": [p.as_json() for p in predictions],
        }
        click.echo(json.dumps(payload, allow_nan=False))
        return
    k = min(top, len(bundle.class_names))
    header = ["image"] + [f"{what} {r}" for r in range(1, k + 1) for what in ("class", "score")]
    rows = [header] + [
        [printable(p.image)] + [v for _, name, s in p.top for v in (printable(name), _score(s))]
        for p in predictions
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        click.echo("  ".join(v.ljust(wd) for v, wd in zip(row, widths, strict=True)).rstrip())
