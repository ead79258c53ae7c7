"""BoVW encoding against its GEMM bound, and against the encoding it replaced, same run.

The ``small`` preset's encoding (soft assignment to the ``knn`` = 5 nearest of 256
words, 1×1 + 2×2 + 4×4 pyramid, L1) of Fashion-MNIST training images, described
chunk by chunk as the pipeline does. For every chunk, interleaved:

- ``bound``: the float32 GEMM of the distances alone, a plain ``x @ c.T`` of the
  chunk's descriptors against the words (in blocks of 32 768 rows, as the old
  encoder did): n_desc × 128 × 256 × 2 flops, the least any exact encoder must do;
- ``encoder``: the project's ``SpatialPyramidEncoder.transform``;
- ``reference`` (unless ``--no-reference``): the encoding as it was before the
  speed path (float32 distances with ``‖x‖²``, ``argpartition``, histograms summed
  in dense float64 blocks by ``bincount``), kept here as the baseline; the codes of
  the two are compared.

Everything runs on one thread (BLAS limited to 1), so the ratios compare like with
like; the pipeline runs two such chunks at once. ``--classifier`` then trains the
preset's classifier on the codes (the first 5/6 of the images, C chosen on the rest)
and times its fit and its scores.

    PYTHONPATH=. python benchmarks/bench_encoding.py --images 10000 [--classifier]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bovw_vs_convnet.bovw.config import BovwConfig, make_classifier, make_encoder, make_extractor
from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.encoding import (
    SpatialPyramidEncoder,
    _normalise_rows,
    n_cells,
    pyramid_cells,
)
from bovw_vs_convnet.bovw.vocabulary import sq_distances

BOUND_ROWS = 32768


def reference_soft(enc: SpatialPyramidEncoder, desc: DescriptorSet) -> sp.csr_matrix:
    """The soft encoding before the speed path (as of the 2026-12-06 morning)."""
    x, k, knn = desc.values, int(enc.k), min(int(enc.knn), int(enc.k))
    cells = pyramid_cells(desc.positions, enc.levels)
    img, n, n_cell = desc.image_index(), desc.n_images, n_cells(enc.levels)
    words = np.empty((len(x), knn), np.int64)
    weights = np.empty((len(x), knn), np.float32)
    for s in range(0, len(x), BOUND_ROWS):
        d = sq_distances(x[s : s + BOUND_ROWS], enc.vocabulary_, enc.word_sq_)
        idx = np.argpartition(d, knn - 1, axis=1)[:, :knn]
        dk = np.take_along_axis(d, idx, axis=1)
        w = np.exp(-(dk - dk.min(axis=1, keepdims=True)) / (2 * float(enc.sigma_ or 1.0) ** 2))
        words[s : s + BOUND_ROWS] = idx
        weights[s : s + BOUND_ROWS] = w / w.sum(axis=1, keepdims=True)
    n_lev, width = cells.shape[1], n_cell * k
    cols = (cells[:, :, None] * k + words[:, None, :]).reshape(-1)
    rows = np.repeat(img, n_lev * knn)
    vals = np.broadcast_to(weights[:, None, :], (len(x), n_lev, knn)).reshape(-1)
    blocks, per_row = [], n_lev * knn
    rows_per = max(1, min(1024, 1024 * 21 * 256 // width))
    bounds = np.searchsorted(img, np.arange(0, n + rows_per, rows_per).clip(max=n)) * per_row
    for b, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        first = b * rows_per
        rows_b = min(rows_per, n - first)
        if rows_b <= 0:
            break
        flat = (rows[lo:hi] - first) * width + cols[lo:hi]
        dense = np.bincount(flat, weights=vals[lo:hi], minlength=rows_b * width)
        blocks.append(sp.csr_matrix(dense.reshape(rows_b, width).astype(np.float32)))
    return _normalise_rows(sp.vstack(blocks, format="csr"), enc.power, enc.norm)


def gemm_bound(x: np.ndarray, words: np.ndarray) -> float:
    """Seconds of the plain float32 distance GEMM ``x @ words.T``, in row blocks."""
    t0 = time.perf_counter()
    for s in range(0, len(x), BOUND_ROWS):
        _ = x[s : s + BOUND_ROWS] @ words.T
    return time.perf_counter() - t0


def _fit_encoder(cfg: BovwConfig, extractor: Any, images: np.ndarray) -> SpatialPyramidEncoder:
    """The encoder fitted as the pipeline does: 50 descriptors of each of 2 000 images."""
    sample = extractor.transform(images[:2000]).sample(50, np.arange(min(2000, len(images))), 0)
    return make_encoder(cfg, 0).fit(sample)


def encode_all(
    cfg: BovwConfig, images: np.ndarray, chunk: int, reference: bool
) -> tuple[dict[str, float], sp.csr_matrix, dict[str, Any]]:
    """Describe and encode ``images`` chunk by chunk; the seconds of each part and the codes."""
    extractor = make_extractor(cfg, 1)
    enc = _fit_encoder(cfg, extractor, images)
    secs = {"descriptors": 0.0, "bound": 0.0, "encoder": 0.0, "reference": 0.0}
    codes, n_desc, worst, differ = [], 0, 0.0, 0
    for s in range(0, len(images), chunk):
        t0 = time.perf_counter()
        desc = extractor.transform(images[s : s + chunk])
        t1 = time.perf_counter()
        secs["bound"] += gemm_bound(desc.values, enc.vocabulary_)
        t2 = time.perf_counter()
        x = enc.transform(desc)
        secs["encoder"] += time.perf_counter() - t2
        secs["descriptors"] += t1 - t0
        n_desc += len(desc.values)
        codes.append(x)
        if reference:
            t3 = time.perf_counter()
            old = reference_soft(enc, desc)
            secs["reference"] += time.perf_counter() - t3
            diff = abs(x - old).max(axis=1).toarray().ravel()
            worst, differ = max(worst, float(diff.max())), differ + int((diff > 1e-5).sum())
    info = {"descriptors": n_desc, "max_abs_diff": worst, "images_differing_1e-5": differ}
    return secs, sp.vstack(codes, format="csr"), info


def time_classifier(cfg: BovwConfig, codes: sp.csr_matrix, labels: np.ndarray) -> dict[str, Any]:
    """Fit the preset's classifier on the first 5/6 of the codes (C chosen on the rest)."""
    n_train = len(labels) * 5 // 6
    clf = make_classifier(cfg, 10, n_jobs=2)  # as the pipeline on this machine
    t0 = time.perf_counter()
    clf.fit(codes[:n_train], labels[:n_train], codes[n_train:], labels[n_train:])
    t1 = time.perf_counter()
    scores = clf.decision_function(codes[n_train:])
    t2 = time.perf_counter()
    err = float((scores.argmax(axis=1) != labels[n_train:]).mean())
    return {
        "classifier_s": round(t1 - t0, 3),
        "scoring_s": round(t2 - t1, 3),
        "C": clf.C_,
        "val_errors_by_C": clf.val_errors_,
        "val_err_of_kept_C": err,
    }


def main() -> None:
    """Print one JSON line: stage seconds, the ratio to the GEMM bound, old against new."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--chunk", type=int, default=404, help="images per chunk (the plan's)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--classifier", action="store_true")
    args = parser.parse_args()
    from bovw_vs_convnet.data import load_dataset

    train = load_dataset("fashion-mnist").train
    images, labels = train.array()[: args.images], np.asarray(train.labels[: args.images])
    cfg = BovwConfig()
    with threadpool_limits(limits=1):
        secs, codes, info = encode_all(cfg, images, args.chunk, not args.no_reference)
        out: dict[str, Any] = {"images": len(images), **info}
        out.update({f"{k}_s": round(v, 3) for k, v in secs.items()})
        out["bound_gflops"] = round(info["descriptors"] * 128 * 256 * 2 / secs["bound"] / 1e9, 1)
        out["encoder_over_bound"] = round(secs["encoder"] / secs["bound"], 2)
        if not args.no_reference:
            out["reference_over_bound"] = round(secs["reference"] / secs["bound"], 2)
            out["reference_over_encoder"] = round(secs["reference"] / secs["encoder"], 2)
        if args.classifier:
            out.update(time_classifier(cfg, codes, labels))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
