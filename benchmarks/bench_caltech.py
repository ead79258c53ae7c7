"""BoVW on a Caltech-101-shaped folder, images at their own aspect: the whole run, and dense
SIFT against OpenCV's ``SIFT.compute`` on the same grid, in the same run.

The stand-in (generated under a temporary folder, removed at the end unless
``--keep``): 102 classes, 9 144 seeded synthetic RGB JPEGs whose height and width
are drawn independently in 150–300 px (``bench_bovw_memory.make_folder``), so
nearly every image has its own size and aspect, as in Caltech-101.

1. **Dense SIFT.** ``--sift-images`` images of the folder, read at their own aspect
   (longer side at most 300 px, as the ``photo`` preset reads them), described with the
   preset's grid (bins 4, 6, 8, 10 px, step 4, no upscaling) by this package's numpy
   extractor grouped by shape as the pipeline does (``streaming.encode_chunk``; its geometry
   cache emptied first, so every new size pays for its matrices), and by OpenCV's
   ``SIFT.compute`` on the same keypoints (the grid of each bin size, image by image);
   both on one thread, rounds interleaved, the first a warm-up. Both use Lowe's window
   (2 bins; OpenCV's is built in, the preset's 1.5 costs the same). OpenCV's time is
   that of ``SIFT.compute`` alone (no normalisation, no contrast): the baseline at its
   fastest.
2. **The whole run.** ``bvc run bovw --dataset FOLDER --train-per-class 30
   --test-per-class 50 --set preset=photo --no-progress --json`` in a fresh runs folder
   under ``/usr/bin/time`` (wall time, CPU time, peak RSS). ``photo`` is VLFeat's
   ``phow_caltech101`` settings (PHOW, 600 words, 2×2 + 4×4 pyramid, χ² map, C = 10)
   with a grid step of 4, images shrunk to 300 px and 500 vocabulary images.

Example (the figures of ``RESULTS-bovw.md``), and a smaller folder to try commands on::

    PYTHONPATH=. .venv/bin/python benchmarks/bench_caltech.py
    PYTHONPATH=. .venv/bin/python benchmarks/bench_caltech.py --classes 20 --images 900 \
        --keep /tmp/photos --generate-only
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bovw_memory import make_folder, run_bvc

# the photo preset's grid (bovw/config.py: _PHOW with step 4, max_side 300)
BIN_SIZES = (4, 6, 8, 10)
STEP = 4
MAX_SIDE = 300


def sift_images(folder: Path, n: int) -> list[np.ndarray]:
    """``n`` images of the folder, evenly spaced, as the pipeline reads them (own aspect)."""
    from bovw_vs_convnet.bovw.streaming import read_images
    from bovw_vs_convnet.data.datasets import load_imagefolder

    train = load_imagefolder(folder, lazy=True).train
    pos = np.linspace(0, len(train) - 1, n).round().astype(np.int64)
    return read_images(train, pos, MAX_SIDE)


def opencv_compute(images: list[np.ndarray]) -> int:
    """OpenCV ``SIFT.compute`` on the numpy extractor's grid, image by image; descriptors made."""
    import cv2

    from bovw_vs_convnet.bovw.dense_sift import grid_centres, to_gray

    cv2.setNumThreads(1)
    sift = cv2.SIFT.create()
    made = 0
    for img in images:
        gray = np.clip(np.round(to_gray(img[None])[0] * 255), 0, 255).astype(np.uint8)
        h, w = gray.shape
        for bs in BIN_SIZES:
            cy, cx = grid_centres(h, bs, STEP), grid_centres(w, bs, STEP)
            # as DenseSift's opencv backend: OpenCV's spatial bin is 3 * size / 2 px wide
            kps = [cv2.KeyPoint(float(x), float(y), bs / 1.5) for y in cy for x in cx]
            _, desc = sift.compute(gray, kps)
            made += 0 if desc is None else len(desc)
    return made


def numpy_describe(images: list[np.ndarray]) -> int:
    """This package's dense SIFT on the same grid, grouped by shape as the pipeline does."""
    from bovw_vs_convnet.bovw.sift import DenseSift, _geometry
    from bovw_vs_convnet.bovw.streaming import shape_groups

    _geometry.cache_clear()  # every size pays for its geometry, as in a first pass
    extractor = DenseSift(
        bin_sizes=BIN_SIZES, step=STEP, upscale=1.0, window=2.0, root=False,
        max_side=MAX_SIDE, n_jobs=1,
    )  # fmt: skip
    made = 0
    for g in shape_groups(images):  # one batch per shape, as streaming.encode_chunk
        made += int(extractor.transform(np.stack([images[i] for i in g])).counts().sum())
    return made


def bench_sift(folder: Path, n: int, repeats: int) -> dict[str, Any]:
    """Images per second of both extractors (mean of ``repeats`` interleaved rounds)."""
    from threadpoolctl import threadpool_limits

    images = sift_images(folder, n)
    secs: dict[str, list[float]] = {"numpy": [], "opencv": []}
    counts: dict[str, int] = {}
    with threadpool_limits(limits=1):
        for rnd in range(repeats + 1):  # round 0 is a warm-up
            for name, fn in (("numpy", numpy_describe), ("opencv", opencv_compute)):
                t0 = time.perf_counter()
                counts[name] = fn(images)
                if rnd:
                    secs[name].append(time.perf_counter() - t0)
    rate = {k: n / float(np.mean(v)) for k, v in secs.items()}
    shapes = {im.shape for im in images}
    return {
        "images": n,
        "distinct_shapes": len(shapes),
        "descriptors": counts,
        "numpy_images_per_s": round(rate["numpy"], 1),
        "opencv_images_per_s": round(rate["opencv"], 1),
        "ratio": round(rate["numpy"] / rate["opencv"], 1),
    }


def main() -> None:
    """Generate the folder, time dense SIFT against OpenCV, run bvc; print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=102)
    parser.add_argument("--images", type=int, default=9144)
    parser.add_argument("--sift-images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-per-class", type=int, default=30)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--folder", type=Path, default=None, help="use this generated folder")
    parser.add_argument("--keep", type=Path, default=None, help="generate into DIR and keep it")
    parser.add_argument("--skip-run", action="store_true", help="dense SIFT only")
    parser.add_argument(
        "--generate-only", action="store_true", help="write the folder (--keep DIR) and stop"
    )
    parser.add_argument("--set", action="append", default=[], help="extra --set for bvc run")
    args = parser.parse_args()
    if args.generate_only and args.keep is None:
        parser.error("--generate-only needs --keep DIR")
    work = Path(tempfile.mkdtemp(prefix="bench_caltech_"))
    try:
        folder = args.folder
        if folder is None:
            folder = args.keep or work / "caltech"
            t0 = time.perf_counter()
            make_folder(folder, args.classes, args.images, 150, 300, seed=0)
            gen = round(time.perf_counter() - t0, 1)
            print(json.dumps({"generated": str(folder), "seconds": gen}), flush=True)
        if args.generate_only:
            return
        print(json.dumps({"dense_sift": bench_sift(folder, args.sift_images, args.repeats)}))
        if not args.skip_run:
            extra = ["--train-per-class", str(args.train_per_class)]
            extra += ["--test-per-class", str(args.test_per_class), "--set", "preset=photo"]
            extra += [w for s in args.set for w in ("--set", s)]
            res = run_bvc(folder, work / "runs", None, None, extra)
            print(json.dumps({"run": res}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
