"""The two passes over the images, chunk by chunk: the vocabulary sample, then the codes.

Images are read (from memory or, for a lazy set, from their files), described and
encoded a chunk at a time; a chunk's size is planned in bytes
(:mod:`bovw_vs_convnet.bovw.memory`), its descriptors are dropped as soon as they
are encoded or sampled, and chunks run in parallel threads (NumPy and OpenCV free
the GIL). Inside a chunk, images are grouped by shape and each group described in
one batch, so a chunk may hold images of different shapes (the order of the
images is kept). A set of mixed sizes (``ImageSet.native``) is read image by image
at each image's own aspect, its longer side brought down to ``max_side``: never
stretched to a common size, so each image's descriptors, and the spatial pyramid
over their positions (fractions of the image's own width and height), follow its
own frame.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed, parallel_config
from threadpoolctl import threadpool_limits

from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.memory import MemoryPlan, image_bytes
from bovw_vs_convnet.data.imageset import ImageSet, LazyImages
from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.progress import ProgressMode, track


def read_images(
    images: ImageSet, positions: np.ndarray, max_side: int | None = None
) -> list[np.ndarray]:
    """The uint8 (H, W, C) images at ``positions``: views of an in-memory set, or read
    from a lazy set's files now (one at a time, so a chunk never holds more). Images
    of mixed sizes are read at their own aspect, the longer side at most ``max_side``
    (:meth:`~bovw_vs_convnet.data.imageset.LazyImages.read_native`).
    """
    if images.native is not None:
        native = images.native
        return [native.read_native(int(i), max_side) for i in positions]
    src = images.images
    if isinstance(src, LazyImages):
        return [src.read(int(i)) for i in positions]
    return [src[int(i)] for i in positions]


def native_shapes(images: ImageSet, max_side: int | None = None) -> list[tuple[int, int, int]]:
    """The (H, W, C) of every image as :func:`read_images` gives it (from the headers)."""
    if images.native is None:
        return [images.image_shape] * len(images)
    native = images.native
    return [native.native_shape(i, max_side) for i in range(len(images))]


def image_shapes(images: ImageSet, max_side: int | None = None) -> list[tuple[int, int, int]]:
    """The distinct (H, W, C) shapes of the set's images as they are described: the one
    shape of a set of one size, or each image's own (longer side at most ``max_side``).
    """
    if images.native is None:
        return [images.image_shape]
    return sorted(set(native_shapes(images, max_side)))


def per_image_bytes(images: ImageSet, cfg: Any, extractor: Any) -> np.ndarray:
    """Working bytes of each image of the set in a chunk (int64 (N,)), by its own shape."""
    if images.native is None:
        return np.full(len(images), image_bytes(cfg, extractor, images.image_shape), np.int64)
    shapes = native_shapes(images, getattr(cfg, "max_side", None))
    cost = {s: image_bytes(cfg, extractor, s) for s in set(shapes)}
    return np.array([cost[s] for s in shapes], np.int64)


def shape_groups(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Positions of the images of each shape, shapes in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault(tuple(img.shape), []).append(i)
    return [np.array(g, np.int64) for g in groups.values()]


def _stack(images: Sequence[np.ndarray], members: np.ndarray) -> np.ndarray:
    return np.stack([images[int(i)] for i in members])


def describe(extractor: Any, images: Sequence[np.ndarray]) -> DescriptorSet:
    """Descriptors of images of any shapes, image after image in the given order."""
    groups = shape_groups(images)
    parts = [extractor.transform(_stack(images, g)) for g in groups]
    if len(parts) == 1:
        return parts[0]
    order = np.argsort(np.concatenate(groups), kind="stable")
    return DescriptorSet.concatenate(parts).select_images(order)


def encode_chunk(
    extractor: Any, encoder: Any, images: Sequence[np.ndarray]
) -> tuple[Any, np.ndarray, float, float]:
    """Describe and encode images of any shapes, one shape group at a time.

    Returns the codes (one row per image, in order), each image's number of
    descriptors, and the seconds spent describing and encoding.
    """
    groups = shape_groups(images)
    codes, counts = [], []
    t_desc = t_enc = 0.0
    for g in groups:
        t0 = time.perf_counter()
        desc = extractor.transform(_stack(images, g))
        t1 = time.perf_counter()
        codes.append(encoder.transform(desc))
        counts.append(desc.counts())
        del desc  # the group's descriptors go before the next group's are made
        t_desc, t_enc = t_desc + t1 - t0, t_enc + time.perf_counter() - t1
    x = _stack_codes(codes)
    count = np.concatenate(counts)
    if len(groups) > 1:
        order = np.argsort(np.concatenate(groups), kind="stable")
        x, count = x[order], count[order]
    return x, count, t_desc, t_enc


def _stack_codes(codes: Sequence[Any]) -> Any:
    if sp.issparse(codes[0]):
        return sp.vstack(codes, format="csr") if len(codes) > 1 else codes[0].tocsr()
    return np.concatenate(codes) if len(codes) > 1 else codes[0]


def chunk_executor(setting: str) -> str:
    """``local`` or ``dask``: where the chunks run, for the ``executor`` setting.

    ``dask`` needs a Dask client (a Dask worker has one: ``bvc bench --workers`` or
    ``--scheduler``); ``auto`` is dask on a Dask worker while more than one of the
    cluster's workers has nothing to do, local otherwise.
    """
    if setting == "local":
        return "local"
    try:
        from distributed import get_client, get_worker
    except ImportError:
        if setting == "dask":
            raise ConfigError(
                'executor=dask needs dask.distributed: pip install -e ".[cluster]"', key="executor"
            ) from None
        return "local"
    if setting == "dask":
        try:
            get_client()
        except ValueError:
            raise ConfigError(
                "executor=dask needs a Dask cluster: run inside bvc bench --workers N or "
                "--scheduler ADDRESS (or with a distributed.Client in this process)",
                key="executor",
            ) from None
        return "dask"
    try:
        get_worker()
        idle = [w for w, tasks in get_client().processing().items() if not tasks]
    except ValueError:  # not on a Dask worker
        return "local"
    return "dask" if len(idle) > 1 else "local"


def _run_chunks(
    fn: Any, chunks: Sequence[np.ndarray], n_jobs: int, images: ImageSet, cfg: Any
) -> Iterator[Any]:
    """``fn(positions, images)`` for every chunk, in order: in ``n_jobs`` threads, or on Dask
    (``cfg.executor``, :func:`chunk_executor`).

    ``images`` is an argument, not captured by ``fn``, so that joblib's Dask backend
    sends it to each worker once (``scatter``) rather than with every chunk.
    """
    if chunk_executor(getattr(cfg, "executor", "local")) == "dask":
        with parallel_config(backend="dask", scatter=[images]):
            tasks = Parallel(return_as="generator")(delayed(fn)(c, images) for c in chunks)
            yield from tasks
        return
    results: Iterator[Any] = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
        delayed(fn)(c, images) for c in chunks
    )
    yield from results


def vocabulary_sample(
    extractor: Any,
    images: ImageSet,
    positions: np.ndarray,
    per_image: int,
    seed: int,
    plan: MemoryPlan,
    cfg: Any,
    n_jobs: int,
) -> DescriptorSet:
    """At most ``per_image`` descriptors of each image at ``positions``, chunk by chunk.

    Image ``p``'s descriptors are drawn with the seed ``(seed, p)``
    (:meth:`DescriptorSet.sample`), so the sample does not depend on the chunking;
    only the kept descriptors outlive their chunk.
    """
    sizes = per_image_bytes(images, cfg, extractor)[positions]
    chunks = plan.chunks(sizes, cfg.chunk_images)

    def run(local: np.ndarray, images: ImageSet) -> DescriptorSet:
        pos = positions[local]
        batch = read_images(images, pos, getattr(cfg, "max_side", None))
        groups = shape_groups(batch)
        kept = [
            extractor.transform(_stack(batch, g)).sample(per_image, pos[g], seed) for g in groups
        ]
        if len(kept) == 1:
            return kept[0]
        order = np.argsort(np.concatenate(groups), kind="stable")
        return DescriptorSet.concatenate(kept).select_images(order)

    with threadpool_limits(limits=1, user_api="blas"):
        parts = list(_run_chunks(run, chunks, n_jobs, images, cfg))
    return DescriptorSet.concatenate(parts)


def encode_pass(
    extractor: Any,
    encoder: Any,
    images: ImageSet,
    plan: MemoryPlan,
    cfg: Any,
    n_jobs: int,
    progress: ProgressMode | bool = False,
    desc: str = "bovw: encode",
) -> tuple[Any, np.ndarray, dict[str, float]]:
    """Codes of every image of ``images`` (CSR or dense, one row per image), chunk by chunk.

    Returns the codes, each image's number of descriptors, and the wall time split
    between description and encoding.
    """
    chunks = plan.chunks(per_image_bytes(images, cfg, extractor), cfg.chunk_images)

    def run(pos: np.ndarray, images: ImageSet) -> tuple[Any, np.ndarray, float, float]:
        return encode_chunk(
            extractor, encoder, read_images(images, pos, getattr(cfg, "max_side", None))
        )

    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        results = _run_chunks(run, chunks, n_jobs, images, cfg)
        parts = list(track(results, total=len(chunks), desc=desc, mode=progress, unit="chunk"))
    wall = time.perf_counter() - t0
    x = _stack_codes([p[0] for p in parts])
    desc_t, enc_t = sum(p[2] for p in parts), sum(p[3] for p in parts)
    share = desc_t / max(desc_t + enc_t, 1e-9)
    times = {"descriptors": wall * share, "encoding": wall * (1 - share)}
    return x, np.concatenate([p[1] for p in parts]), times
