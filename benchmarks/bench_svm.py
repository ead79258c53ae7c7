"""Classifier: χ² feature map + linear SVM against an exact precomputed-χ² SVC, same run.

Both train one-vs-rest SVMs on the same BoVW codes (``small`` preset's descriptors
and vocabulary with hard assignment on a 4-px grid: dense RootSIFT, 256 words,
1×1 + 2×2 + 4×4 pyramid, L1 histograms) of a class-balanced
subset of Fashion-MNIST training images, and are scored on the 10 000 official
test images. The exact side computes the additive χ² kernel (train × train and
test × train) and fits libsvm ``SVC(kernel="precomputed")`` per class; the map
side fits scikit-learn's ``AdditiveChi2Sampler`` (2 steps) and liblinear
``LinearSVC`` per class. Both use the same C and both cores (classes in threads).
Prints the time of each (kernel or map included), their test top-1 errors, the
time ratio and the error difference.

    PYTHONPATH=. python benchmarks/bench_svm.py --train 10000 --C 1

``--primal`` instead times :class:`PrimalLinearSvm` with fewer images than features,
the n×n Gram span (the default) against the full d×d eigenbasis, in one run, on
synthetic L2-normalised codes whose covariance spectrum decays like that of
Fashion-MNIST's Fisher vectors. It prints each fit's CPU time, iterations and
objective, and the ratio.

    PYTHONPATH=. python benchmarks/bench_svm.py --primal
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bovw_vs_convnet.bovw.pipeline import BovwConfig, encode_images, learn_encoder
from bovw_vs_convnet.config import build_config
from bovw_vs_convnet.estimators import linear_svm
from bovw_vs_convnet.estimators.kernel_svm import KernelSvm
from bovw_vs_convnet.estimators.linear_svm import PrimalLinearSvm


def _codes(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised codes of 10 classes: class means plus noise of a power-law spectrum."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    spectrum = 1.0 / np.sqrt(np.arange(1, d + 1))  # eigenvalues ~ 1/j
    noise = rng.standard_normal((n, d)) * spectrum
    x = noise @ np.linalg.qr(rng.standard_normal((d, d)).astype(np.float32))[0]  # correlated
    x = x + 0.3 * rng.standard_normal((10, d))[y] * spectrum.mean()
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y.astype(np.int64)


def _timed_fit(x: np.ndarray, y: np.ndarray, c: float, **switches: object) -> dict[str, float]:
    """CPU seconds, iterations and objective of one PrimalLinearSvm fit under ``switches``."""
    saved = {k: getattr(linear_svm, k) for k in switches}
    for k, v in switches.items():
        setattr(linear_svm, k, v)
    try:
        start = time.process_time()
        svm = PrimalLinearSvm(C=c, max_iter=3000).fit(x, y)
        secs = time.process_time() - start
    finally:
        for k, v in saved.items():
            setattr(linear_svm, k, v)
    f = x.astype(np.float64) @ svm.coef_.T + svm.intercept_
    signs = np.where(y[:, None] == np.arange(10), 1.0, -1.0)
    hinge = np.maximum(0.0, 1.0 - signs * f)
    objective = float(0.5 * (svm.coef_**2).sum() + c * (hinge**2).sum())
    return {"cpu_s": round(secs, 2), "iter": float(svm.n_iter_), "objective": objective}


def primal(c: float) -> None:
    """n < d: the Gram span against the full eigenbasis, CPU time and objective."""
    x, y = _codes(600, 2048)
    span = _timed_fit(x, y, c)
    full = _timed_fit(x, y, c, _SPAN_WHEN_FEWER_ROWS=False)
    print(json.dumps({"case": "600 x 2048", "span": span, "full": full}))
    print(f"full eigenbasis / Gram span CPU time: {full['cpu_s'] / span['cpu_s']:.1f}x")


def main() -> None:
    """Encode once, then time and score both classifiers; print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10_000, help="training images")
    parser.add_argument("--test", type=int, default=10_000, help="test images")
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument(
        "--primal",
        action="store_true",
        help="PrimalLinearSvm: Gram span against the full eigenbasis",
    )
    args = parser.parse_args()
    if args.primal:
        primal(args.C)
        return
    from bovw_vs_convnet.data import load_dataset

    ds = load_dataset("fashion-mnist")
    assert ds.test is not None
    rng = np.random.default_rng(0)
    per_class = args.train // ds.train.n_classes
    idx = np.concatenate(
        [rng.permutation(np.flatnonzero(ds.train.labels == c))[:per_class] for c in range(10)]
    )
    train = ds.train.subset(np.sort(idx))
    test = ds.test.subset(np.arange(min(args.test, len(ds.test))))
    # hard histograms: the exact χ² kernel sums over co-occurring non-zeros, which
    # soft assignment on a step-2 grid makes ~15x more numerous
    cfg = build_config(BovwConfig, {"preset": "small", "encoding": "hard", "step": 4})
    # called directly, not through the disk cache
    encoder, _, _ = learn_encoder(cfg, 0, train, 2)
    x_train, _, _ = encode_images(cfg, encoder, train, 2)
    x_test, _, _ = encode_images(cfg, encoder, test, 2)
    results = {}
    for solver in ("map", "exact"):
        start = time.perf_counter()
        clf = KernelSvm(kernel="chi2", solver=solver, C=args.C, n_classes=10, n_jobs=2)
        clf.fit(x_train, train.labels)
        err = float((clf.decision_function(x_test).argmax(axis=1) != test.labels).mean())
        secs = time.perf_counter() - start
        results[solver] = (secs, err)
        print(
            json.dumps(
                {
                    "solver": solver,
                    "train": len(train),
                    "test": len(test),
                    "seconds": round(secs, 1),
                    "top1_err": round(err, 4),
                }
            )
        )
    (t_map, e_map), (t_exact, e_exact) = results["map"], results["exact"]
    print(
        f"exact / map time: {t_exact / t_map:.1f}x; "
        f"error map - exact: {100 * (e_map - e_exact):+.2f} points"
    )


if __name__ == "__main__":
    main()
