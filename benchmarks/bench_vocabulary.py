"""Vocabulary: this package's k-means engines against scikit-learn's ``KMeans``, same run.

All cluster the same seeded sample of dense-SIFT descriptors of Fashion-MNIST
training images (the ``small`` preset's grid) into ``k`` words; the quality of
each vocabulary is its mean squared quantisation error on held-out descriptors
(lower is better). The baseline is scikit-learn ``KMeans`` (Lloyd, k-means++,
one init) with the same iteration cap; ``minibatch`` (the default engine) and
``faiss`` (if ``faiss-cpu`` is installed) are timed against it. Both cores.

    PYTHONPATH=. python benchmarks/bench_vocabulary.py --samples 100000 --k 256
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bovw_vs_convnet.bovw.sift import DenseSift
from bovw_vs_convnet.bovw.vocabulary import KMeansVocabulary


def main() -> None:
    """Print one JSON line per engine: seconds, held-out quantisation error, ratio to KMeans."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--engines", default="kmeans,minibatch,faiss")
    args = parser.parse_args()
    from bovw_vs_convnet.data import load_dataset

    images = load_dataset("fashion-mnist").train.array()[:4000]
    desc = DenseSift(bin_sizes=(4,), step=4, upscale=2.0, n_jobs=2).transform(images).values
    rng = np.random.default_rng(0)
    order = rng.permutation(len(desc))
    train, held_out = desc[order[: args.samples]], desc[order[-50_000:]]
    results = {}
    for engine in args.engines.split(","):
        try:
            start = time.perf_counter()
            vocab = KMeansVocabulary(
                k=args.k,
                max_samples=args.samples,
                engine=engine,
                max_iter=args.iters,
                random_state=0,
            ).fit(train)
            secs = time.perf_counter() - start
        except Exception as exc:
            print(json.dumps({"engine": engine, "error": str(exc)}))
            continue
        results[engine] = secs
        row = {
            "engine": engine,
            "seconds": round(secs, 2),
            "held_out_mse": round(vocab.inertia(held_out), 5),
            "speedup_vs_kmeans": round(results.get("kmeans", float("nan")) / secs, 1),
        }
        print(json.dumps(row))


if __name__ == "__main__":
    main()
