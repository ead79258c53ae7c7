"""The BoVW stage cache: results stored as arrays and JSON, so that loading runs no code.

Caches get shared (a lab's NFS, a colleague's tarball), so an entry must not be
able to run code when it is read: pickles (joblib's ``output.pkl`` included) can.
Each entry here is one ``.npz`` file, ``<cache>/bovw/<stage>-<key>.npz``, a flat
set of numeric (or text) arrays read with ``numpy.load(allow_pickle=False)``:

- the vocabulary stage: the encoder's parameters as JSON text and its learned
  arrays (words, PCA, GMM), the positions of the images it was learned on, its times;
- an encoding stage: the codes (CSR parts, or a dense array), descriptors per
  image, times.

Every entry is verified when read (its stage and key, no object arrays, the
shapes and the CSR structure); one that fails is warned about, removed and
recomputed, never trusted. Entries are written to a temporary name and renamed,
so a reader never sees half an entry.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from bovw_vs_convnet.bovw.encoding import SpatialPyramidEncoder
from bovw_vs_convnet.file_limits import check_npz

log = logging.getLogger(__name__)

FORMAT = 1  # of the entries; part of every entry's metadata
_KINDS = "biuf"  # the dtypes an entry may hold besides its JSON text: bool, int, float


class CacheEntryError(ValueError):
    """A cache entry that cannot be trusted: unreadable, pickled, or not what it claims."""


class StageCache:
    """Stage results under ``root`` (``<runs>/cache`` or ``$BVC_CACHE_DIR``), one file each."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root) / "bovw"

    def path(self, stage: str, key: str) -> Path:
        """The file of ``stage``'s entry under ``key``."""
        return self.root / f"{stage}-{key}.npz"

    def load(self, stage: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays of the entry, or None when there is none or it cannot be trusted
        (then a warning names it and it is removed).
        """
        path = self.path(stage, key)
        if not path.is_file():
            return None
        try:
            return _read(path, stage, key)
        except CacheEntryError as exc:
            log.warning("ignoring cache entry %s (%s): recomputing it", path, exc)
            path.unlink(missing_ok=True)
            return None

    def save(self, stage: str, key: str, arrays: dict[str, np.ndarray]) -> None:
        """Store ``arrays`` as the entry (atomically); a cache that cannot be written is
        warned about and skipped, the run goes on.
        """
        path = self.path(stage, key)
        meta = {"format": FORMAT, "stage": stage, "key": key}
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                payload: dict[str, Any] = {"__meta__": np.array(json.dumps(meta)), **arrays}
                np.savez(f, **payload)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not write cache entry %s (%s); going on without it", path, exc)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def _read(path: Path, stage: str, key: str) -> dict[str, np.ndarray]:
    try:
        check_npz(path, kinds=_KINDS + "U")  # headers first: no member inflates, none is code
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise CacheEntryError("not an npz archive")
            arrays = {name: z[name] for name in z.files}
    except CacheEntryError:
        raise
    except Exception as exc:  # pickled, truncated, not a zip, an object array: never trusted
        raise CacheEntryError(f"{type(exc).__name__}: {exc}") from None
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except (KeyError, ValueError) as exc:
        raise CacheEntryError(f"no metadata ({exc})") from None
    if meta != {"format": FORMAT, "stage": stage, "key": key}:
        raise CacheEntryError(f"it holds {meta}, not {stage} {key[:12]}")
    for name, a in arrays.items():
        if a.dtype.kind not in _KINDS and not (name == "params" and a.dtype.kind == "U"):
            raise CacheEntryError(f"array {name!r} has dtype {a.dtype}")
    return arrays


def take_array(arrays: dict[str, np.ndarray], name: str, ndim: int) -> np.ndarray:
    """``arrays[name]``, checked to have ``ndim`` dimensions; raises :class:`CacheEntryError`."""
    if name not in arrays:
        raise CacheEntryError(f"missing array {name!r}")
    a = arrays[name]
    if a.ndim != ndim:
        raise CacheEntryError(f"array {name!r} has {a.ndim} dimensions, expected {ndim}")
    return a


def _shape(a: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if a.shape != shape:
        raise CacheEntryError(f"array {name!r} has shape {a.shape}, expected {shape}")
    return a


# -- the vocabulary stage: a fitted encoder ---------------------------------------


def encoder_arrays(encoder: SpatialPyramidEncoder) -> dict[str, np.ndarray]:
    """A fitted encoder as arrays: its parameters (JSON) and everything it learned."""
    params = encoder.get_params()
    params["levels"] = [int(v) for v in params["levels"]]
    out = {
        "params": np.array(json.dumps(params)),
        "vocabulary": encoder.vocabulary_,
        "word_sq": encoder.word_sq_,
        "ints": np.array(
            [encoder.n_iter_, encoder.n_features_in_, encoder.dim_per_cell_], np.int64
        ),
        "sigma": np.array(np.nan if encoder.sigma_ is None else encoder.sigma_, np.float64),
    }
    if encoder.pca_ is not None:
        out["pca_components"] = encoder.pca_.components_
        out["pca_mean"] = encoder.pca_.mean_
        out["pca_explained_variance"] = encoder.pca_.explained_variance_
    if encoder.method == "fisher":
        gmm = encoder.gmm_
        out["gmm_weights"] = gmm.weights_
        out["gmm_means"] = gmm.means_
        out["gmm_covariances"] = gmm.covariances_
        out["gmm_precisions_cholesky"] = gmm.precisions_cholesky_
    return out


def encoder_from_arrays(arrays: dict[str, np.ndarray]) -> SpatialPyramidEncoder:
    """The encoder :func:`encoder_arrays` stored; raises :class:`CacheEntryError`."""
    try:
        params = json.loads(str(take_array(arrays, "params", 0)))
        params["levels"] = tuple(int(v) for v in params["levels"])
        encoder = SpatialPyramidEncoder(**params)
        encoder.check_params()
    except CacheEntryError:
        raise
    except Exception as exc:  # bad JSON, unknown or bad parameters
        raise CacheEntryError(f"bad encoder parameters ({exc})") from None
    n_iter, n_in, per_cell = (int(v) for v in _shape(take_array(arrays, "ints", 1), "ints", (3,)))
    k = int(encoder.k)
    vocab = take_array(arrays, "vocabulary", 2)
    d = vocab.shape[1]
    _shape(vocab, "vocabulary", (k, d))
    encoder.vocabulary_ = np.ascontiguousarray(vocab, np.float32)
    encoder.word_sq_ = _shape(take_array(arrays, "word_sq", 1), "word_sq", (k,)).astype(np.float32)
    sigma = float(take_array(arrays, "sigma", 0))
    encoder.sigma_ = None if np.isnan(sigma) else sigma
    encoder.n_iter_, encoder.n_features_in_ = n_iter, n_in
    encoder.pca_ = None
    if encoder.pca_dim is not None:
        from sklearn.decomposition import PCA

        comp = _shape(take_array(arrays, "pca_components", 2), "pca_components", (d, n_in))
        pca = PCA(d, random_state=0)
        pca.components_ = comp
        pca.mean_ = _shape(take_array(arrays, "pca_mean", 1), "pca_mean", (n_in,))
        ev = take_array(arrays, "pca_explained_variance", 1)
        pca.explained_variance_ = _shape(ev, "pca_explained_variance", (d,))
        pca.n_components_, pca.n_features_in_ = d, n_in
        encoder.pca_ = pca
    elif d != n_in:
        raise CacheEntryError(f"words of {d} values for descriptors of {n_in}")
    if encoder.method == "fisher":
        from sklearn.mixture import GaussianMixture

        gmm = GaussianMixture(k, covariance_type="diag")
        gmm.weights_ = _shape(take_array(arrays, "gmm_weights", 1), "gmm_weights", (k,))
        gmm.means_ = _shape(take_array(arrays, "gmm_means", 2), "gmm_means", (k, d))
        cov = take_array(arrays, "gmm_covariances", 2)
        gmm.covariances_ = _shape(cov, "gmm_covariances", (k, d))
        chol = take_array(arrays, "gmm_precisions_cholesky", 2)
        gmm.precisions_cholesky_ = _shape(chol, "gmm_precisions_cholesky", (k, d))
        gmm.n_features_in_, gmm.converged_ = d, True
        encoder.gmm_ = gmm
    if per_cell != encoder._dim_per_cell(d):
        raise CacheEntryError(f"{per_cell} values per cell, expected {encoder._dim_per_cell(d)}")
    encoder.dim_per_cell_ = per_cell
    encoder.n_features_out_ = per_cell * sum(v * v for v in encoder.levels)
    return encoder


# -- an encoding stage: codes ---------------------------------------------------


def codes_arrays(x: Any) -> dict[str, np.ndarray]:
    """Codes (CSR or dense) as arrays."""
    if sp.issparse(x):
        x = x.tocsr()
        return {
            "data": x.data,
            "indices": x.indices,
            "indptr": x.indptr,
            "shape": np.array(x.shape, np.int64),
        }
    return {"dense": np.asarray(x)}


def codes_from_arrays(arrays: dict[str, np.ndarray]) -> Any:
    """The codes :func:`codes_arrays` stored, checked; raises :class:`CacheEntryError`."""
    if "dense" in arrays:
        return take_array(arrays, "dense", 2)
    shape = tuple(int(v) for v in _shape(take_array(arrays, "shape", 1), "shape", (2,)))
    data, indices, indptr = (take_array(arrays, n, 1) for n in ("data", "indices", "indptr"))
    if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        raise CacheEntryError("CSR indices are not integers")
    try:
        x = sp.csr_matrix((data, indices, indptr), shape=shape)
        x.check_format(full_check=True)  # every column in range, rows in order
    except ValueError as exc:
        raise CacheEntryError(f"bad CSR codes ({exc})") from None
    return x
