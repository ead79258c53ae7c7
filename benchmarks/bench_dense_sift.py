"""Dense SIFT: this package's batched numpy extractor against OpenCV's ``SIFT.compute``, same run.

Both describe the same Fashion-MNIST training images on the same grid (the
``small`` preset: images upscaled ×2 to 56×56, 4-px bins i.e. 16-px patches,
a descriptor every 2 px, 441 per image) with the same normalisation (RootSIFT,
contrast threshold). OpenCV runs ``SIFT.compute`` image by image, on one core
and then in two worker processes; the numpy extractor runs on one thread and on
two; and the numpy ``resample`` mode (resample to 56×56 first, then describe:
exactly "upscale, then describe"). The first round is a warm-up and is not
counted; timings are the mean ± std of ``--repeats`` rounds, each round running
every variant in turn so that background load hits all alike.

    PYTHONPATH=. python benchmarks/bench_dense_sift.py --images 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np

from bovw_vs_convnet.bovw.sift import DenseSift


def _images(n: int) -> np.ndarray:
    try:
        from bovw_vs_convnet.data import load_dataset

        return load_dataset("fashion-mnist").train.array()[:n]
    except Exception as exc:  # no data: synthetic 28×28 images of the same kind
        print(f"# fashion-mnist not available ({exc}); using synthetic images")
        from sklearn.datasets import load_digits

        d = load_digits().images
        rng = np.random.default_rng(0)
        big = np.kron(d[rng.integers(0, len(d), n)], np.ones((3, 3)))[:, :28, :28]
        return (np.pad(big, ((0, 0), (2, 2), (2, 2)))[:, :28, :28] * 16).astype(np.uint8)


def main() -> None:
    """Print one JSON line per variant (images/s mean and std) and the speed-up ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000, help="images described per round")
    parser.add_argument("--opencv-images", type=int, default=2000, help="fewer for OpenCV")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", type=int, default=2, help="grid step (px of the ×2 image)")
    args = parser.parse_args()
    images = _images(args.images)
    grid: dict[str, Any] = {"bin_sizes": (4,), "step": args.step, "upscale": 2.0}
    variants = {
        "opencv_1core": (DenseSift(**grid, backend="opencv", n_jobs=1), args.opencv_images),
        "opencv_2proc": (DenseSift(**grid, backend="opencv", n_jobs=2), args.opencv_images),
        "numpy_1thread": (DenseSift(**grid, n_jobs=1, batch_size=256), args.images),
        "numpy_2threads": (DenseSift(**grid, n_jobs=2, batch_size=256), args.images),
        "numpy_resample_2threads": (
            DenseSift(**grid, n_jobs=2, batch_size=256, resample=True),
            args.images,
        ),
    }
    secs: dict[str, list[float]] = {name: [] for name in variants}
    for rnd in range(args.repeats + 1):  # round 0 is a warm-up
        for name, (extractor, n) in variants.items():
            start = time.perf_counter()
            extractor.transform(images[:n])
            if rnd:
                secs[name].append(time.perf_counter() - start)
    rates: dict[str, float] = {}
    for name, (_, n) in variants.items():
        per_s = [n / s for s in secs[name]]
        rates[name] = statistics.mean(per_s)
        std = statistics.stdev(per_s) if len(per_s) > 1 else 0.0
        row = {"variant": name, "images": n, "images_per_s": round(rates[name]), "std": round(std)}
        print(json.dumps(row))
    for ours in ("numpy_2threads", "numpy_resample_2threads"):
        for base in ("opencv_1core", "opencv_2proc"):
            print(f"{ours} / {base}: {rates[ours] / rates[base]:.1f}x")


if __name__ == "__main__":
    main()
