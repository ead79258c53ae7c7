"""Encodings of a set of local descriptors into one vector per image, with spatial pyramids.

Methods:

- ``hard``: histogram of nearest visual words (Sivic & Zisserman 2003; Csurka et al. 2004).
- ``soft``: kernel codebook (van Gemert et al. 2010), localised to the ``knn``
  nearest words (Liu et al. 2011): each descriptor spreads a unit of mass over
  them with Gaussian weights ``exp(-d² / 2σ²)``.
- ``vlad``: sums of residuals to the nearest word (Jégou et al. 2010), each word's
  block L2-normalised first with ``intra`` (Arandjelović and Zisserman 2013).
- ``fisher``: Fisher vectors on a diagonal GMM, gradients with respect to means and
  variances (Perronnin et al. 2010); ``power=0.5, norm="l2"`` makes them "improved".

VLAD and Fisher follow VLFeat's ``vl_vlad`` and ``vl_fisher`` (:mod:`.aggregate`).

Every method is computed per spatial-pyramid cell (Lazebnik et al. 2006; levels
``(1, 2, 4)`` mean 1×1, 2×2 and 4×4 grids) and the cells are concatenated,
level after level, cell by cell in row-major order, each cell a block of
``dim_per_cell`` numbers. Histograms (hard, soft) are returned as sparse CSR
matrices, VLAD and Fisher as dense arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from bovw_vs_convnet.bovw.aggregate import (
    fisher_from_moments,
    gmm_posteriors,
    pyramid_moments,
    vlad_from_moments,
)
from bovw_vs_convnet.bovw.descriptors import DescriptorSet
from bovw_vs_convnet.bovw.vocabulary import (
    KMeansVocabulary,
    nearest_word,
    nearest_words,
    sample_rows,
    sq_distances,
    sq_norms,
)
from bovw_vs_convnet.errors import ConfigError, DataError
from bovw_vs_convnet.estimators.parameters import ParameterError, at_least, positive, positive_ints

Method = Literal["hard", "soft", "vlad", "fisher"]

# the memory plan's allowance for the entries of one image's histograms while they are
# pooled (pool_histograms makes no dense block; a row holds at most n_cell * k entries)
HISTOGRAM_BLOCK = 1024 * 21 * 256


def pyramid_cells(positions: np.ndarray, levels: Sequence[int]) -> np.ndarray:
    """For (M, 2) positions in [0, 1), the cell index at every level: int64 (M, n_levels).

    Level ``l`` is an l×l grid; its cells are numbered after those of earlier
    levels, row-major (cell = offset + row * l + column).
    """
    out = np.empty((len(positions), len(levels)), np.int64)
    offset = 0
    pos = np.clip(positions, 0.0, np.nextafter(1.0, 0.0))
    for j, lev in enumerate(levels):
        col = (pos[:, 0] * lev).astype(np.int64)
        row = (pos[:, 1] * lev).astype(np.int64)
        out[:, j] = offset + row * lev + col
        offset += lev * lev
    return out


def n_cells(levels: Sequence[int]) -> int:
    """Number of cells of a pyramid (1 + 4 + 16 = 21 for levels 1, 2, 4)."""
    return int(sum(lev * lev for lev in levels))


def soft_weights(dist: np.ndarray, sigma: float) -> np.ndarray:
    """Kernel-codebook weights of each descriptor's nearest words: float32 (M, knn).

    ``exp(-d² / 2σ²)`` over the ``dist`` (M, knn) squared distances, normalised to sum
    to 1 per row; the smallest distance is taken off first (it cancels in the
    normalisation), so that no row underflows to zeros. ``dist`` is overwritten.
    """
    w = np.asarray(dist, np.float32)
    w -= w.min(axis=1, keepdims=True)
    w /= np.float32(-2.0 * sigma**2)
    np.exp(w, out=w)
    w /= w.sum(axis=1, keepdims=True)
    return w


def pool_histograms(
    words: np.ndarray,
    weights: np.ndarray,
    cells: np.ndarray,
    img: np.ndarray,
    n: int,
    n_cell: int,
    k: int,
) -> sp.csr_matrix:
    """Spatial-pyramid histograms as one sparse product: float32 CSR (n, n_cell · k).

    ``words`` and ``weights`` (M, m) are each descriptor's words and the mass it gives
    them, ``cells`` (M, L) its cell at each level, ``img`` (M,) its image. The
    assignments ``A`` (M, k; m entries a row) are summed per (image, cell) by
    ``P @ A``, where ``P`` (n · n_cell, M) has a 1 at each descriptor's cell of every
    level; rows ``image * n_cell + cell`` of the product are then laid end to end, cell
    after cell, as each image's row (the CSR arrays reused, no copy of the values).
    Entries sum in float32; indices are sorted and exact zeros dropped, as in a CSR
    matrix made from the dense histograms.
    """
    m_desc, m = words.shape
    n_lev = cells.shape[1]
    assign = sp.csr_matrix(
        (weights.reshape(-1), words.reshape(-1), np.arange(0, m_desc * m + 1, m)),
        shape=(m_desc, k),
    )
    pool = sp.csc_matrix(
        (
            np.ones(m_desc * n_lev, np.float32),
            (img[:, None] * n_cell + cells).reshape(-1),
            np.arange(0, m_desc * n_lev + 1, n_lev),
        ),
        shape=(n * n_cell, m_desc),
    ).tocsr()
    h = pool @ assign  # (n * n_cell, k)
    h.sum_duplicates()  # sorts each row's words; a product has no duplicates to add
    h.eliminate_zeros()
    cell_of = np.repeat(np.arange(n * n_cell) % n_cell, np.diff(h.indptr))
    indices = h.indices.astype(np.int64) + cell_of * k
    index_dtype = np.int32 if n_cell * k <= np.iinfo(np.int32).max else np.int64
    return sp.csr_matrix(
        (h.data.astype(np.float32, copy=False), indices.astype(index_dtype), h.indptr[::n_cell]),
        shape=(n, n_cell * k),
    )


def _normalise_rows(x: Any, power: float, norm: str) -> Any:
    """Signed power, then L1 or L2 normalisation of each row (dense or CSR, in place when CSR)."""
    if sp.issparse(x):
        data: np.ndarray = x.data
        if power != 1.0:
            np.power(np.abs(data), power, out=data)  # histograms are non-negative
        if norm in ("l1", "l2"):
            sq = np.abs(data) if norm == "l1" else data * data
            rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
            sums = np.bincount(rows, weights=sq, minlength=x.shape[0])
            if norm == "l2":
                sums = np.sqrt(sums)
            scale = 1.0 / np.maximum(sums, 1e-12)
            data *= np.repeat(scale, np.diff(x.indptr)).astype(data.dtype)
        return x
    if power != 1.0:
        x = np.sign(x) * np.abs(x) ** power
    if norm == "l1":
        x = x / np.maximum(np.abs(x).sum(axis=1, keepdims=True), 1e-12)
    elif norm == "l2":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x.astype(np.float32, copy=False)


class SpatialPyramidEncoder(TransformerMixin, BaseEstimator):
    """Encode each image's descriptors against a learned vocabulary, per spatial-pyramid cell.

    Parameters:
        method: ``hard``, ``soft``, ``vlad`` or ``fisher`` (see the module docstring).
        k: visual words (Gaussians for ``fisher``).
        levels: pyramid grid sizes, e.g. ``(1, 2, 4)``.
        power: exponent applied to every entry before ``norm`` (0.5: square root /
            Hellinger for histograms, power normalisation for VLAD and Fisher).
        norm: ``l1``, ``l2`` or ``none``, over the whole concatenated vector.
        knn: nearest words that share a descriptor's mass in ``soft``.
        sigma: Gaussian width of ``soft`` (None: the median distance of a
            descriptor to its nearest word in the training sample).
        pca_dim: project descriptors on this many principal components first (None: no PCA).
        max_samples: descriptors sampled to learn PCA and the vocabulary.
        engine, max_iter: k-means engine and iterations (see :class:`KMeansVocabulary`).
        intra: ``vlad``: L2-normalise each word's residual sum before ``power`` and ``norm``.
        gmm_samples, gmm_iter: ``fisher``: descriptors of the sample the GMM is fitted
            on (drawn from it at random) and its EM iterations, from the k-means centres.
        random_state: seed of the sample, k-means and the GMM.

    Attributes:
        vocabulary_: float32 (k, D) visual words (GMM means for ``fisher``).
        pca_: the fitted ``sklearn.decomposition.PCA`` or None.
        sigma_: the ``soft`` width used.
        gmm_: the fitted diagonal ``GaussianMixture`` (``fisher``).
        n_iter_: k-means iterations of the vocabulary; n_features_in_: descriptor length D;
        dim_per_cell_, n_features_out_: code length per pyramid cell and in all.
    """

    def __init__(
        self,
        method: Method = "hard",
        k: int = 256,
        levels: Sequence[int] = (1, 2),
        power: float = 1.0,
        norm: Literal["l1", "l2", "none"] = "l1",
        knn: int = 5,
        sigma: float | None = None,
        pca_dim: int | None = None,
        max_samples: int = 100_000,
        engine: Literal["minibatch", "kmeans", "faiss"] = "minibatch",
        max_iter: int = 50,
        intra: bool = False,
        gmm_samples: int = 50_000,
        gmm_iter: int = 30,
        random_state: Any = 0,
    ) -> None:
        self.method = method
        self.k = k
        self.levels = levels
        self.power = power
        self.norm = norm
        self.knn = knn
        self.sigma = sigma
        self.pca_dim = pca_dim
        self.max_samples = max_samples
        self.engine = engine
        self.max_iter = max_iter
        self.intra = intra
        self.gmm_samples = gmm_samples
        self.gmm_iter = gmm_iter
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------

    def check_params(self) -> None:
        """Raise :class:`ParameterError` for a parameter out of range (``fit`` calls it).

        ``k``, ``max_samples``, ``engine`` and ``max_iter`` are checked by the
        :class:`KMeansVocabulary` they are handed to.
        """
        if self.method not in ("hard", "soft", "vlad", "fisher"):
            raise ConfigError(f"unknown encoding {self.method!r}; known: hard, soft, vlad, fisher")
        positive_ints("levels", self.levels)
        if self.norm not in ("l1", "l2", "none"):
            raise ParameterError("norm", f"must be l1, l2 or none, got {self.norm!r}")
        positive("power", self.power)
        at_least("knn", self.knn, 1)
        if self.sigma is not None:
            positive("sigma", self.sigma)
        if self.pca_dim is not None:
            at_least("pca_dim", self.pca_dim, 1)
        at_least("gmm_samples", self.gmm_samples, 1)
        at_least("gmm_iter", self.gmm_iter, 1)
        self._vocabulary(self.max_samples, self.random_state).check_params()

    def _vocabulary(self, max_samples: int, random_state: Any) -> KMeansVocabulary:
        return KMeansVocabulary(
            k=self.k,
            max_samples=max_samples,
            engine=self.engine,
            max_iter=self.max_iter,
            random_state=random_state,
        )

    def fit(self, descriptors: DescriptorSet | np.ndarray, y: Any = None) -> SpatialPyramidEncoder:
        """Learn PCA (optional) and the vocabulary (or GMM) on a sample of descriptors."""
        self.check_params()
        values = descriptors.values if isinstance(descriptors, DescriptorSet) else descriptors
        values = validate_data(self, values, dtype=np.float32)  # 2-d, finite; n_features_in_
        x = sample_rows(values, int(self.max_samples), self.random_state)
        self.pca_ = None
        if self.pca_dim is not None:
            from sklearn.decomposition import PCA

            if not 1 <= self.pca_dim <= x.shape[1]:
                raise ConfigError(f"pca_dim must be in 1..{x.shape[1]}, got {self.pca_dim}")
            self.pca_ = PCA(self.pca_dim, random_state=0).fit(x)
            x = self._project(x)
        seed = check_random_state(self.random_state).randint(2**31 - 1)
        # x is the sample already (at least 1: no descriptors is the vocabulary's error to tell)
        vocab = self._vocabulary(max(len(x), 1), seed).fit(x)
        self.vocabulary_ = vocab.vocabulary_
        self.n_iter_ = vocab.n_iter_
        self.word_sq_ = sq_norms(self.vocabulary_)
        self.sigma_ = self.sigma
        if self.method == "soft" and self.sigma is None:
            d = sq_distances(x[:20000], self.vocabulary_, self.word_sq_)
            self.sigma_ = float(np.sqrt(np.median(d.min(axis=1))) + 1e-6)
        if self.method == "fisher":
            self.gmm_ = fit_gmm(self.vocabulary_, x, self.gmm_samples, self.gmm_iter, seed)
            self.vocabulary_ = self.gmm_.means_.astype(np.float32)
        self.dim_per_cell_ = self._dim_per_cell(x.shape[1])
        self.n_features_out_ = self.dim_per_cell_ * n_cells(self.levels)
        return self

    def _dim_per_cell(self, d: int) -> int:
        if self.method in ("hard", "soft"):
            return int(self.k)
        if self.method == "vlad":
            return int(self.k * d)
        return int(2 * self.k * d)

    def _project(self, x: np.ndarray) -> np.ndarray:
        if self.pca_ is None:
            return x
        return np.asarray(self.pca_.transform(x), np.float32)

    # -- encoding ----------------------------------------------------------------

    def transform(self, descriptors: DescriptorSet) -> np.ndarray | sp.csr_matrix:
        """(n_images, n_features_out_) codes: CSR for histograms, dense for VLAD/Fisher."""
        check_is_fitted(self)
        if not isinstance(descriptors, DescriptorSet):
            # an image's code needs its descriptors' positions (the pyramid cells)
            raise TypeError(
                f"transform takes a DescriptorSet, got {type(descriptors).__name__}; "
                "fit also takes a plain (M, D) array of descriptors"
            )
        if descriptors.dim != self.n_features_in_:
            raise DataError(
                f"descriptors of {descriptors.dim} values, but the encoder was fitted "
                f"on {self.n_features_in_}"
            )
        n = descriptors.n_images
        if len(descriptors.values) == 0:
            if self.method in ("hard", "soft"):
                return sp.csr_matrix((n, self.n_features_out_), dtype=np.float32)
            return np.zeros((n, self.n_features_out_), np.float32)
        x = self._project(np.asarray(descriptors.values, np.float32))
        cells = pyramid_cells(descriptors.positions, self.levels)  # (M, L)
        img = descriptors.image_index()
        n_cell = n_cells(self.levels)
        if self.method in ("hard", "soft"):
            out = self._histograms(x, cells, img, n, n_cell)
        elif self.method == "vlad":
            out = self._vlad(x, cells, img, n, n_cell)
        else:
            out = self._fisher(x, cells, img, n, n_cell)
        return _normalise_rows(out, self.power, self.norm)

    def _histograms(
        self, x: np.ndarray, cells: np.ndarray, img: np.ndarray, n: int, n_cell: int
    ) -> sp.csr_matrix:
        if self.method == "hard":
            words = nearest_word(x, self.vocabulary_, self.word_sq_)[:, None]
            weights = np.ones((len(x), 1), np.float32)
        else:
            words, dist = nearest_words(x, self.vocabulary_, self.knn, self.word_sq_)
            weights = soft_weights(dist, float(self.sigma_ or 1.0))
        return pool_histograms(words, weights, cells, img, n, n_cell, int(self.k))

    def _vlad(
        self, x: np.ndarray, cells: np.ndarray, img: np.ndarray, n: int, n_cell: int
    ) -> np.ndarray:
        k = len(self.vocabulary_)
        q = np.zeros((len(x), k), np.float32)
        q[np.arange(len(x)), nearest_word(x, self.vocabulary_, self.word_sq_)] = 1.0
        s0, s1, _, _ = pyramid_moments(x, q, cells, img, n, n_cell, False, self.levels)
        return vlad_from_moments(s0, s1, self.vocabulary_, bool(self.intra)).reshape(n, -1)

    def _fisher(
        self, x: np.ndarray, cells: np.ndarray, img: np.ndarray, n: int, n_cell: int
    ) -> np.ndarray:
        gmm = self.gmm_
        q = gmm_posteriors(x, gmm.weights_, gmm.means_, gmm.covariances_)
        s0, s1, s2, counts = pyramid_moments(x, q, cells, img, n, n_cell, True, self.levels)
        assert s2 is not None
        return fisher_from_moments(s0, s1, s2, counts, gmm).reshape(n, -1)


def fit_gmm(centres: np.ndarray, x: np.ndarray, max_samples: int, max_iter: int, seed: int) -> Any:
    """A diagonal GMM on at most ``max_samples`` rows of ``x`` (drawn with ``seed``),
    ``max_iter`` EM steps from the k-means ``centres``, with one BLAS thread: bounded
    in memory and time like the k-means vocabulary (and as fast on a busy machine).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    sample = sample_rows(x, int(max_samples), seed)
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        # a few tens of EM steps from the k-means centres are enough for an encoding
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(
            len(centres),
            covariance_type="diag",
            means_init=centres,
            max_iter=int(max_iter),
            reg_covar=1e-4,
            random_state=seed,
        ).fit(sample)
