"""Visual vocabularies: k-means on a bounded, seeded sample of descriptors; nearest words."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from bovw_vs_convnet.errors import ConfigError
from bovw_vs_convnet.estimators.parameters import ParameterError, at_least

log = logging.getLogger(__name__)

ENGINES = ("minibatch", "kmeans", "faiss")  # k-means implementations, see KMeansVocabulary


def sample_rows(x: np.ndarray, max_rows: int, random_state: Any) -> np.ndarray:
    """At most ``max_rows`` rows of ``x``, drawn without replacement, in their original order."""
    if len(x) <= max_rows:
        return x
    rng = check_random_state(random_state)
    return x[np.sort(rng.choice(len(x), size=max_rows, replace=False))]


def sq_norms(x: np.ndarray) -> np.ndarray:
    """Squared L2 norm of each row of ``x`` ((n,), the dtype of ``x``)."""
    return np.einsum("ij,ij->i", x, x)


def sq_distances(
    x: np.ndarray, centers: np.ndarray, centers_sq: np.ndarray | None = None
) -> np.ndarray:
    """(n, k) squared Euclidean distances of the rows of ``x`` to ``centers``, clipped at 0.

    One matrix product, ``‖x‖² - 2 x·c + ‖c‖²``, in the dtype of the inputs (float32
    for descriptors); ``centers_sq`` (``sq_norms(centers)``) may be passed when known.
    Rounding can make an exact zero slightly negative, hence the clip.
    """
    if centers_sq is None:
        centers_sq = sq_norms(centers)
    d = x @ centers.T
    d *= -2.0
    d += centers_sq[None, :]
    d += sq_norms(x)[:, None]
    np.maximum(d, 0.0, out=d)
    return d


# Distances per block of :func:`nearest_word` and soft assignment: a (32768, 256)
# float32 block is 32 MiB, so memory stays bounded whatever the number of descriptors
# (the memory plan's allowance; the blocks used are smaller, see CACHE_ELEMENTS).
NEAREST_ELEMENTS = 32768 * 256
# Entries of the distance block the nearest words are picked from: 1 MiB of float32,
# so that the block stays in a core's cache through the passes that pick them (an
# argmin per neighbour); larger blocks only add trips to memory.
CACHE_ELEMENTS = 1024 * 256
# Up to this many neighbours are picked by repeated argmin (one vectorised pass over
# the cached block each); more by argpartition, whose per-row cost is several passes'
SEQUENTIAL_KNN = 8


def nearest_rows(k: int) -> int:
    """Rows per distance block against ``k`` words: :data:`CACHE_ELEMENTS` entries
    (1 024 rows for 256 words), at least 64 and at most :data:`NEAREST_ELEMENTS` entries.
    """
    k = max(int(k), 1)
    return max(64, min(CACHE_ELEMENTS // k, NEAREST_ELEMENTS // k))


def _distance_blocks(
    x: np.ndarray, centers: np.ndarray, centers_sq: np.ndarray | None, chunk: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, d)`` for row blocks of ``x``: ``d = ‖c‖² - 2 x·c`` (float32 (rows, k)),
    the squared distances less each row's ``‖x‖²`` (the same for every centre, so the
    order of a row's centres is that of their distances).

    One float32 GEMM per block against ``-2 cᵀ`` (scaling by 2 is exact) written into
    one reused buffer, and one addition. The buffer is overwritten by the next block.
    """
    k = len(centers)
    if centers_sq is None:
        centers_sq = sq_norms(centers)
    rows = nearest_rows(k) if chunk is None else max(int(chunk), 1)
    dtype = np.result_type(x.dtype, centers.dtype, np.float32)
    m2ct = np.ascontiguousarray(-2.0 * centers.T, dtype=dtype)  # (D, k)
    csq = np.asarray(centers_sq, dtype)
    buf = np.empty((min(rows, len(x)), k), dtype)
    for s in range(0, len(x), rows):
        xb = np.asarray(x[s : s + rows], dtype)
        d = buf[: len(xb)]
        np.matmul(xb, m2ct, out=d)
        d += csq
        yield s, d


def nearest_word(
    x: np.ndarray,
    centers: np.ndarray,
    centers_sq: np.ndarray | None = None,
    chunk: int | None = None,
) -> np.ndarray:
    """Index of the nearest of ``centers`` to each row of ``x`` (int64 (n,)), in row blocks.

    The one nearest-word search of the package (vocabulary, hard and VLAD encoding).
    ``‖x‖²`` is the same for every centre of a row, so the argmin needs only
    ``‖c‖² - 2 x·c``: one product and one addition per entry fewer than
    :func:`sq_distances`. ``chunk``: rows per block (None: :func:`nearest_rows`).
    """
    out = np.empty(len(x), np.int64)
    for s, d in _distance_blocks(x, centers, centers_sq, chunk):
        out[s : s + len(d)] = d.argmin(axis=1)
    return out


def nearest_words(
    x: np.ndarray,
    centers: np.ndarray,
    knn: int,
    centers_sq: np.ndarray | None = None,
    chunk: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``knn`` nearest of ``centers`` to each row of ``x``, nearest first, and their
    squared distances: int64 (n, knn) and (n, knn) in the dtype of the inputs, clipped at 0.

    The soft assignment's search, at the speed of the distance GEMM: the block of
    ``‖c‖² - 2 x·c`` stays in cache (:func:`nearest_rows`) while up to
    :data:`SEQUENTIAL_KNN` neighbours are picked by one argmin each (the pick then set
    to infinity; ties go to the lower index), more by ``argpartition``; ``‖x‖²`` is
    added to the ``knn`` kept distances only. ``knn`` at or above ``len(centers)``
    returns every centre.
    """
    k = len(centers)
    knn = min(int(knn), k)
    dtype = np.result_type(x.dtype, centers.dtype, np.float32)
    words = np.empty((len(x), knn), np.int64)
    dist = np.empty((len(x), knn), dtype)
    for s, d in _distance_blocks(x, centers, centers_sq, chunk):
        rows = len(d)
        if knn <= SEQUENTIAL_KNN:
            flat = d.reshape(-1)
            base = np.arange(rows) * k
            for j in range(knn):
                pick = d.argmin(axis=1)
                words[s : s + rows, j] = pick
                pos = base + pick
                dist[s : s + rows, j] = flat[pos]
                flat[pos] = np.inf
        else:
            idx = np.argpartition(d, knn - 1, axis=1)[:, :knn] if knn < k else None
            part = d if idx is None else np.take_along_axis(d, idx, axis=1)
            order = np.argsort(part, axis=1, kind="stable")
            words[s : s + rows] = order if idx is None else np.take_along_axis(idx, order, axis=1)
            dist[s : s + rows] = np.take_along_axis(part, order, axis=1)
    dist += sq_norms(np.asarray(x, dtype))[:, None]
    np.maximum(dist, 0.0, out=dist)
    return words, dist


class KMeansVocabulary(BaseEstimator):
    """A visual vocabulary: ``k`` k-means centres of a seeded sample of descriptors.

    Parameters:
        k: number of visual words.
        max_samples: at most this many descriptors are clustered (drawn at random).
        engine: ``minibatch`` (scikit-learn ``MiniBatchKMeans``), ``kmeans``
            (scikit-learn ``KMeans``, Lloyd), or ``faiss`` (``faiss.Kmeans``, if installed).
        n_init: k-means restarts (the best inertia is kept).
        max_iter: iterations (epochs for ``minibatch``).
        random_state: seed of the sample and of k-means.

    Attributes:
        vocabulary_: float32 (k, D) centres, the visual words.
        n_samples_: descriptors actually clustered.
        n_iter_: k-means iterations run (of the best restart); n_features_in_: D.
    """

    def __init__(
        self,
        k: int = 256,
        max_samples: int = 100_000,
        engine: Literal["minibatch", "kmeans", "faiss"] = "minibatch",
        n_init: int = 1,
        max_iter: int = 50,
        random_state: Any = 0,
    ) -> None:
        self.k = k
        self.max_samples = max_samples
        self.engine = engine
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for a parameter out of range (``fit`` calls it)."""
        at_least("k", self.k, 1)
        at_least("max_samples", self.max_samples, 1)
        if self.engine not in ENGINES:
            raise ParameterError(
                "engine", f"must be one of {', '.join(ENGINES)}, got {self.engine!r}"
            )
        at_least("n_init", self.n_init, 1)
        at_least("max_iter", self.max_iter, 1)

    def fit(self, descriptors: np.ndarray, y: Any = None) -> KMeansVocabulary:
        """Cluster a sample of the (M, D) ``descriptors``; refuses ``k`` larger than the sample."""
        self.check_params()
        x = validate_data(self, descriptors, dtype=np.float32)  # 2-d, finite, sets n_features_in_
        x = sample_rows(x, int(self.max_samples), self.random_state)
        if self.k > len(x):
            raise ConfigError(
                f"k={self.k} visual words but only {len(x)} descriptors to cluster; "
                "lower k or give more images"
            )
        self.n_samples_ = len(x)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        if self.engine == "minibatch":
            from sklearn.cluster import MiniBatchKMeans
            from threadpoolctl import threadpool_limits

            # its steps are small: thread start-up and sync cost more than they save,
            # badly so on a busy machine (measured 6.6 s vs 0.14 s for k=32 on 5 000 rows)
            with threadpool_limits(limits=1):
                km: Any = MiniBatchKMeans(
                    n_clusters=self.k,
                    batch_size=max(4096, 4 * self.k),
                    n_init=self.n_init,
                    max_iter=self.max_iter,
                    random_state=seed,
                    compute_labels=False,
                ).fit(x)
            centres, n_iter = km.cluster_centers_, km.n_iter_
        elif self.engine == "kmeans":
            from sklearn.cluster import KMeans

            km = KMeans(
                n_clusters=self.k, n_init=self.n_init, max_iter=self.max_iter, random_state=seed
            ).fit(x)
            centres, n_iter = km.cluster_centers_, km.n_iter_
        else:  # faiss (check_params refused any other engine)
            try:
                import faiss
            except ImportError:
                raise ConfigError("engine='faiss' needs the faiss-cpu package") from None
            fk = faiss.Kmeans(
                x.shape[1],
                self.k,
                niter=self.max_iter,
                nredo=self.n_init,
                seed=seed,
                max_points_per_centroid=max(256, len(x) // self.k + 1),
            )
            fk.train(np.ascontiguousarray(x))
            centres, n_iter = fk.centroids, self.max_iter  # faiss runs all its iterations
        self.vocabulary_ = np.ascontiguousarray(centres, dtype=np.float32)
        self.n_iter_ = int(n_iter)
        return self

    def predict(self, descriptors: np.ndarray) -> np.ndarray:
        """Nearest visual word of each descriptor (int64 (M,))."""
        return nearest_word(self._validate(descriptors), self.vocabulary_)

    def inertia(self, descriptors: np.ndarray) -> float:
        """Mean squared distance of ``descriptors`` to their nearest word (lower is better)."""
        d = sq_distances(self._validate(descriptors), self.vocabulary_)
        return float(d.min(axis=1).mean())

    def _validate(self, descriptors: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        x: np.ndarray = validate_data(self, descriptors, dtype=np.float32, reset=False)
        return x


# descriptors per image for each Gaussian (fisher) or word (vlad) under k_auto: a
# Fisher block is twice as long as a VLAD one, so both rules give codes of one length
DESCRIPTORS_PER_COMPONENT = {"fisher": 32, "vlad": 16}
K_AUTO_MIN = 16


def k_for_images(n_descriptors: int, encoding: str, k_max: int) -> int:
    """The ``k_auto`` rule: the power of two at or below ``n_descriptors`` /
    :data:`DESCRIPTORS_PER_COMPONENT` (32 per Gaussian, 16 per VLAD word), between
    :data:`K_AUTO_MIN` and ``k_max``.

    Why: a component's gradient in one image is an average over the descriptors it
    takes, so a small image (28 px: ~730 dense descriptors) gets 16 Gaussians and a
    photograph (thousands of descriptors) the 256 of Chatfield et al.; the code
    length, and so the memory of the codes, follows the image size too. Histogram
    encodings keep ``k_max``.
    """
    per = DESCRIPTORS_PER_COMPONENT.get(encoding)
    if per is None:
        return int(k_max)
    k = 1 << max(math.floor(math.log2(max(n_descriptors / per, 1.0))), 0)
    return int(min(k_max, max(K_AUTO_MIN, k)))
