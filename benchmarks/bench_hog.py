"""HOG: scikit-image's ``hog`` against OpenCV's ``HOGDescriptor`` on one grid, and the
project's batched extractor against a one-image-at-a-time loop, same run.

The grid: the dataset's images (28×28 Fashion-MNIST by default), 4-px cells,
2×2-cell blocks stepping one cell, 9 unsigned orientation bins, L2-Hys (1 296
numbers per 28×28 image). OpenCV's side runs where ``cv2.HOGDescriptor`` exists:
OpenCV 5 no longer has it, so point ``PYTHONPATH`` at an OpenCV 4 installed
aside (``pip install --target /tmp/cv4 "opencv-python-headless<5"``). Prints
images/s of each, the ratios, and how far the outputs are apart (OpenCV weighs
each block with a Gaussian window and spreads votes between cells and bins;
scikit-image does neither, so the two differ).

    BVC_DATA_DIR=/usr/share/datasets PYTHONPATH=.:/tmp/cv4 python benchmarks/bench_hog.py \\
        --images 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from bovw_vs_convnet.hog.features import hog_features


def best_of(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    """The fastest of ``repeats`` calls (seconds) and the last result."""
    times, out = [], np.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    """Time every side on the same images; print one JSON line each, then the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="processes of the batched side")
    args = parser.parse_args()
    from skimage.feature import hog

    from bovw_vs_convnet.data import load_dataset

    images = load_dataset(args.dataset).train.array()[: args.images]
    n, h, w, _ = images.shape
    gray = images[..., 0]

    def skimage_loop() -> np.ndarray:
        return np.stack(
            [hog(im, orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2)) for im in gray]
        ).astype(np.float32)

    sides: dict[str, Callable[[], np.ndarray]] = {
        "skimage, one image at a time": skimage_loop,
        f"project (skimage, {args.jobs} processes)": lambda: hog_features(
            images, cell=4, block=2, orientations=9, n_jobs=args.jobs
        ),
    }
    import cv2

    if hasattr(cv2, "HOGDescriptor"):
        # window = the image; 8-px blocks of 4-px cells stepping 4 px: the same grid
        descriptor = cv2.HOGDescriptor((w // 4 * 4, h // 4 * 4), (8, 8), (4, 4), (4, 4), 9)
        crop = np.ascontiguousarray(gray[:, : h // 4 * 4, : w // 4 * 4])
        sides["OpenCV HOGDescriptor, one image at a time"] = lambda: np.stack(
            [descriptor.compute(im).ravel() for im in crop]
        )
    else:
        print(json.dumps({"side": "OpenCV", "skipped": f"cv2 {cv2.__version__}: no HOGDescriptor"}))
    rates, outputs = {}, {}
    for name, fn in sides.items():
        fn()  # warm-up: imports, worker processes
        seconds, out = best_of(fn, args.repeats)
        rates[name], outputs[name] = n / seconds, out
        print(
            json.dumps(
                {"side": name, "images": n, "dim": out.shape[1], "img_per_s": round(n / seconds)}
            )
        )
    reference = outputs["skimage, one image at a time"]
    for name, out in outputs.items():
        same = out.shape == reference.shape and bool(np.array_equal(out, reference))
        gap = float(np.abs(out - reference).max()) if out.shape == reference.shape else None
        print(json.dumps({"side": name, "equal_to_skimage": same, "max_abs_difference": gap}))
    base = rates["skimage, one image at a time"]
    for name, rate in rates.items():
        print(f"{name}: {rate / base:.2f}x skimage's loop")


if __name__ == "__main__":
    main()
