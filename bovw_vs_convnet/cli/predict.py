"""`bvc predict RUN_ID IMAGE|FOLDER...`: a stored run's model bundle applied to image files.

The bundle is verified against the run's record before anything of it is read as a
model (``harness/bundle.py``), and the images are read and preprocessed as the run's
were (``harness/predict.py``). One line per image: the file, then the top K classes
with their scores, best first; ``--json``: one object with every prediction.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from bovw_vs_convnet.cli.options import count_option, json_option, runs_dir_option


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
    width = max(len(p.image) for p in predictions)
    for p in predictions:
        ranked = "  ".join(f"{name} {_score(score)}" for _, name, score in p.top)
        click.echo(f"{p.image:<{width}}  {ranked}")
