"""Fitted estimators as arrays and JSON: written and read back without pickle.

A fitted scikit-learn-style estimator is its class and its attributes: numbers,
strings, arrays, sparse matrices, and other estimators (a PCA inside an encoder,
the per-class SVMs of a one-vs-rest classifier). :func:`encode` turns such an
object into a JSON tree and a set of named numeric arrays; :func:`state_files`
makes them the two files of a model bundle (``<name>.json`` and ``<name>.npz``,
``numpy.savez`` of plain arrays) and :func:`read_state` reads them back.

Reading runs no code of the files: the arrays are read with
``numpy.load(allow_pickle=False)`` and no object dtype is accepted; the JSON is
strict (no NaN or Infinity literals). Nothing is parsed before it is bounded: a JSON
file of more than :data:`MAX_JSON_BYTES` or nested deeper than :data:`MAX_DEPTH` is
refused before ``json.loads`` sees it, and each ``.npz`` member's header (dtype and
shape) is read and checked against the member's stored size before the member is
read, so an archive cannot inflate (its members are stored, not compressed, as
``numpy.savez`` writes them). An attribute may not take the name of a method or
property of its class (a number in place of ``decision_function``), and a state read
from a bundle holds only finite floating arrays. An object is rebuilt only for a class the
caller allows (``allowed``, by ``"module:QualName"``), made with
``object.__new__`` and given its attributes, so neither ``__init__`` nor
``__setstate__`` nor any function the file names runs. Anything else in the
files (an unknown class, a missing array, an array no node refers to) is refused
with :class:`StateError`, so that a file that is not what it should be is never
half-trusted. This is the idea of skops' "trusted types", kept to the few types
the pipelines fit. A class that has moved is still read under the name it was
written with (:data:`RENAMED`), and only as the allowed class of its new name.

Attributes that are only caches of a fit (a warm start's covariance eigenbasis)
are left out by class (:data:`SKIP`): they are large and scoring never reads them.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import scipy.sparse as sp

from bovw_vs_convnet.errors import DataError
from bovw_vs_convnet.file_limits import MAX_DEPTH, MAX_JSON_BYTES, json_depth

T = TypeVar("T")

FORMAT = 1  # of the JSON tree; written into it and checked on reading
_KINDS = "biufcUS"  # array dtypes admitted: bool, integers, floats, complex, text (never objects)
TAG = "$"  # the key that says what a JSON object stands for

# "module:QualName" -> attributes left out: caches of a fit, never read when scoring
_HERE = "bovw_vs_convnet.estimators"
SKIP: dict[str, frozenset[str]] = {
    # the warm start's (mean, eigenvalues, eigenvectors): d x d floats, fit-time only
    "bovw_vs_convnet.estimators.linear_svm:PrimalLinearSvm": frozenset(
        {"_moments_key", "_moments_"}
    ),
    # KernelSvm's warm-start template (its models_ hold the fitted SVMs)
    f"{_HERE}.kernel_svm:KernelSvm": frozenset({"primal_"}),
}
# "module:QualName" a state file may hold -> the class's name now: where a class lived when
# bundles were written with it (the SVMs were BoVW's before HOG shared them)
RENAMED: dict[str, str] = {
    "bovw_vs_convnet.bovw.classifier:KernelSvm": f"{_HERE}.kernel_svm:KernelSvm",
    "bovw_vs_convnet.bovw.kernels:KernelFeatureMap": f"{_HERE}.kernels:KernelFeatureMap",
    # the package-root modules that became bovw_vs_convnet.estimators
    "bovw_vs_convnet.kernel_svm:KernelSvm": f"{_HERE}.kernel_svm:KernelSvm",
    "bovw_vs_convnet.kernels:KernelFeatureMap": f"{_HERE}.kernels:KernelFeatureMap",
    "bovw_vs_convnet.linear_svm:PrimalLinearSvm": f"{_HERE}.linear_svm:PrimalLinearSvm",
}


MAX_MEMBERS = 100_000  # arrays in one .npz
_NPY_HEADER_BYTES = 10_000  # numpy's own bound on an .npy header


class StateError(DataError):
    """A state file that is not what it should be: unreadable, pickled, of a class not allowed."""


def class_path(cls: type) -> str:
    """``"module:QualName"``: how a class is named in a state file."""
    return f"{cls.__module__}:{cls.__qualname__}"


def allow(classes: Iterable[type]) -> dict[str, type]:
    """The ``allowed`` mapping of :func:`decode` for these classes."""
    return {class_path(c): c for c in classes}


class _Encoder:
    def __init__(self, classes: Mapping[str, type]) -> None:
        self.classes = classes
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, a: np.ndarray, where: str) -> str:
        if a.dtype.kind not in _KINDS:
            raise StateError(f"{where}: an array of dtype {a.dtype} cannot be stored")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = a
        return name

    def value(self, v: Any, where: str) -> Any:
        if isinstance(v, np.ndarray):
            return {TAG: "array", "name": self.array(v, where)}
        if isinstance(v, np.generic):  # before float: np.float64 is a float, kept as itself
            return {TAG: "scalar", "name": self.array(np.asarray(v), where)}
        if v is None or isinstance(v, (bool, str, int)):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else {TAG: "float", "value": repr(v)}
        if isinstance(v, np.dtype):
            return {TAG: "dtype", "value": v.str}
        if sp.issparse(v):
            csr = v.tocsr() if v.format != "csc" else v
            return {
                TAG: "sparse",
                "format": csr.format,
                "matrix": isinstance(v, sp.spmatrix),
                "shape": [int(s) for s in csr.shape],
                "data": self.array(csr.data, where),
                "indices": self.array(csr.indices, where),
                "indptr": self.array(csr.indptr, where),
            }
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, tuple):
            return {
                TAG: "tuple",
                "items": [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)],
            }
        if isinstance(v, dict):
            return {
                TAG: "dict",
                "items": [
                    [self.value(k, where), self.value(x, f"{where}[{k!r}]")] for k, x in v.items()
                ],
            }
        path = class_path(type(v))
        if path in self.classes:
            skip = SKIP.get(path, frozenset())
            state = {k: self.value(x, f"{where}.{k}") for k, x in vars(v).items() if k not in skip}
            return {TAG: "object", "class": path, "state": state}
        raise StateError(f"{where}: a {type(v).__module__}.{type(v).__qualname__} cannot be stored")


def encode(obj: Any, allowed: Iterable[type]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``obj`` as a JSON-ready tree and the arrays it refers to by name.

    ``obj`` may be a dict of attributes (a pipeline's fitted ones), a list, an estimator
    of an ``allowed`` class, or any plain value; StateError names the first part that
    cannot be stored.
    """
    enc = _Encoder(allow(allowed))
    tree = enc.value(obj, "state")
    return {"format": FORMAT, "state": tree}, enc.arrays


def state_files(obj: Any, allowed: Iterable[type], name: str = "model") -> dict[str, bytes]:
    """The bytes of ``<name>.json`` (the tree) and ``<name>.npz`` (its arrays, no pickle)."""
    tree, arrays = encode(obj, allowed)
    buf = io.BytesIO()
    # plain numeric and text arrays (encode refuses object ones): savez pickles nothing
    cast(Any, np.savez)(buf, **arrays)
    text = json.dumps(tree, indent=1, allow_nan=False, sort_keys=True) + "\n"
    return {f"{name}.json": text.encode(), f"{name}.npz": buf.getvalue()}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def load_json(data: bytes, what: str) -> Any:
    """Strict JSON from bytes (no NaN or Infinity); StateError naming ``what`` otherwise.

    Bounded before it is parsed: at most :data:`MAX_JSON_BYTES`, nested at most
    :data:`MAX_DEPTH` deep.
    """
    if len(data) > MAX_JSON_BYTES:
        raise StateError(f"{what} is larger than {MAX_JSON_BYTES // 1024**2} MiB")
    try:
        text = data.decode("utf-8")
        depth = json_depth(text)
        if depth > MAX_DEPTH:
            raise StateError(f"{what} nests {depth} deep (at most {MAX_DEPTH})")
        return json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StateError(f"{what} is not valid JSON ({str(exc)[:200]})") from None


def _member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> None:
    """Check one ``.npz`` member by its ``.npy`` header, before any of its data is read.

    Stored (not compressed), its dtype admitted, and its declared shape and dtype
    exactly the member's size: what is read afterwards is what the header says.
    """
    name = info.filename[:80]
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise StateError(f"{what}: array {name!r} is compressed (bundle arrays are stored plainly)")
    try:
        with archive.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            read = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read is None:
                raise ValueError(f"npy format {version}")
            shape, _, dtype = read(fh, max_header_size=_NPY_HEADER_BYTES)
            header = fh.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
        raise StateError(f"{what}: array {name!r} has no valid header ({exc})") from None
    if dtype.kind not in _KINDS or dtype.hasobject:
        raise StateError(f"{what}: array {name!r} has dtype {dtype}")
    size = math.prod(int(d) for d in shape) * dtype.itemsize
    if header + size != info.file_size:
        raise StateError(
            f"{what}: array {name!r} declares {size} bytes in a member of {info.file_size}"
        )


def load_arrays(data: bytes, what: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` held in ``data``, read without pickle; StateError otherwise.

    Every member's header is checked (:func:`_member_header`) before any array is read.
    """
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise StateError(f"{what} is not an npz archive")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise StateError(f"{what} holds {len(members)} arrays (at most {MAX_MEMBERS})")
            for info in members:
                _member_header(archive, info, what)
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except StateError:
        raise
    except Exception as exc:  # a pickled or object array, a truncated member: never trusted
        raise StateError(
            f"{what} cannot be read as plain arrays ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    for name, a in arrays.items():
        if a.dtype.kind not in _KINDS:
            raise StateError(f"{what}: array {name!r} has dtype {a.dtype}")
    return arrays


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray], classes: Mapping[str, type]) -> None:
        self.arrays, self.classes = arrays, classes
        self.used: set[str] = set()

    def array(self, name: Any) -> np.ndarray:
        if not isinstance(name, str) or name not in self.arrays:
            raise StateError(f"the state refers to a missing array {name!r}")
        self.used.add(name)
        return self.arrays[name]

    def value(self, v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict):
            raise StateError(f"unexpected JSON value {str(v)[:40]!r} in the state")
        kind = v.get(TAG)
        if kind == "float":
            text = v.get("value")
            if text not in ("nan", "inf", "-inf"):
                raise StateError(f"bad float {str(text)[:20]!r} in the state")
            return float(text)
        if kind == "array":
            return self.array(v.get("name"))
        if kind == "scalar":
            a = self.array(v.get("name"))
            if a.ndim != 0:
                raise StateError("a scalar of the state is not 0-d")
            return a[()]
        if kind == "dtype":
            try:
                dtype = np.dtype(str(v.get("value")))
            except TypeError as exc:
                raise StateError(f"bad dtype in the state ({exc})") from None
            if dtype.kind not in _KINDS:
                raise StateError(f"dtype {dtype} is not admitted")
            return dtype
        if kind == "sparse":
            return self.sparse(v)
        if kind == "tuple":
            return tuple(self.value(x) for x in self.items(v))
        if kind == "dict":
            out = {}
            for pair in self.items(v):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise StateError("a dict item of the state is not a [key, value] pair")
                key = self.value(pair[0])
                if not isinstance(key, (str, int, float, bool, tuple)) and key is not None:
                    raise StateError("a dict key of the state is not a plain value")
                out[key] = self.value(pair[1])
            return out
        if kind == "object":
            return self.object(v)
        raise StateError(f"unknown node {str(kind)[:20]!r} in the state")

    @staticmethod
    def items(v: dict[str, Any]) -> list[Any]:
        items = v.get("items")
        if not isinstance(items, list):
            raise StateError("a tuple or dict of the state has no item list")
        return items

    def sparse(self, v: dict[str, Any]) -> Any:
        fmt, shape = v.get("format"), v.get("shape")
        if fmt not in ("csr", "csc") or not (
            isinstance(shape, list) and len(shape) == 2 and all(isinstance(s, int) for s in shape)
        ):
            raise StateError("a sparse matrix of the state has a bad format or shape")
        parts = [self.array(v.get(n)) for n in ("data", "indices", "indptr")]
        if parts[1].dtype.kind not in "iu" or parts[2].dtype.kind not in "iu":
            raise StateError("sparse indices of the state are not integers")
        make = (
            {"csr": sp.csr_matrix, "csc": sp.csc_matrix}[fmt]
            if v.get("matrix", True)
            else {"csr": sp.csr_array, "csc": sp.csc_array}[fmt]
        )
        try:
            m = make((parts[0], parts[1], parts[2]), shape=tuple(shape))
            m.check_format(full_check=True)  # every index in range, rows in order
        except ValueError as exc:
            raise StateError(f"bad sparse matrix in the state ({exc})") from None
        return m

    def object(self, v: dict[str, Any]) -> Any:
        path, state = v.get("class"), v.get("state")
        cls = self.classes.get(RENAMED.get(path, path)) if isinstance(path, str) else None
        if cls is None:
            raise StateError(f"class {str(path)[:80]!r} is not one this bundle may hold")
        if not isinstance(state, dict):
            raise StateError(f"the {path} of the state has no attributes")
        obj: Any = object.__new__(cls)  # no __init__, no __setstate__: attributes only
        for key, x in state.items():
            if not isinstance(key, str) or not key.isidentifier() or key.startswith("__"):
                raise StateError(f"bad attribute name {str(key)[:40]!r} in the state")
            if _behaviour(cls, key):
                raise StateError(f"the state gives {path}.{key}, a method of its class, a value")
            obj.__dict__[key] = self.value(x)
        # scikit-learn's estimators score with every parameter of their __init__: none missing
        # (ours may lack one added after a bundle was written: fit-time settings only)
        names = getattr(cls, "_get_param_names", None)
        ours = cls.__module__.startswith("bovw_vs_convnet.")
        missing = [n for n in names() if n not in obj.__dict__] if callable(names) else []
        missing = [] if ours else missing
        if missing:
            raise StateError(f"the {path} of the state lacks its parameter {missing[0]!r}")
        return obj


def _behaviour(cls: type, name: str) -> bool:
    """Whether ``name`` is code of ``cls`` (a method, property or other descriptor), which an
    instance attribute of that name would shadow: the allowlist admits data there, never code.
    """
    try:
        found = inspect.getattr_static(cls, name)
    except AttributeError:
        return False
    return callable(found) or hasattr(found, "__get__")


def finite_arrays(arrays: Mapping[str, np.ndarray], what: str) -> None:
    """StateError when a floating (or complex) array holds NaN or infinity: a model's
    weights that are not finite score nothing but NaN.
    """
    for name, a in arrays.items():
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise StateError(f"{what}: array {name!r} holds values that are not finite")


def decode(tree: Any, arrays: dict[str, np.ndarray], allowed: Iterable[type]) -> Any:
    """The object :func:`encode` stored, rebuilt from ``allowed`` classes only.

    Raises StateError for a tree of another format, a class not allowed, a missing
    array or one that no node refers to.
    """
    if not isinstance(tree, dict) or tree.get("format") != FORMAT or "state" not in tree:
        raise StateError(f"the state is not of format {FORMAT}")
    dec = _Decoder(arrays, allow(allowed))
    obj: Any = dec.value(tree["state"])
    extra = set(arrays) - dec.used
    if extra:
        raise StateError(f"the state holds arrays it does not use: {', '.join(sorted(extra)[:5])}")
    return obj


def read_state(files: Mapping[str, bytes], allowed: Iterable[type], name: str = "model") -> Any:
    """The object whose :func:`state_files` are in ``files`` (file name -> bytes)."""
    for suffix in (".json", ".npz"):
        if f"{name}{suffix}" not in files:
            raise StateError(f"the bundle has no {name}{suffix}")
    tree = load_json(files[f"{name}.json"], f"{name}.json")
    arrays = load_arrays(files[f"{name}.npz"], f"{name}.npz")
    finite_arrays(arrays, f"{name}.npz")
    return decode(tree, arrays, allowed)


def fitted_files(
    obj: Any, names: Iterable[str], allowed: Iterable[type], name: str = "model"
) -> dict[str, bytes]:
    """:func:`state_files` of ``obj``'s fitted attributes ``names`` (those it has)."""
    state = {n: getattr(obj, n) for n in names if hasattr(obj, n)}
    return state_files(state, allowed, name)


def restore_fitted(
    obj: Any,
    files: Mapping[str, bytes],
    names: Iterable[str],
    required: Iterable[str],
    allowed: Iterable[type],
    name: str = "model",
) -> Any:
    """Give ``obj`` the fitted attributes :func:`fitted_files` stored; return ``obj``.

    StateError when the state is not a mapping of those ``names`` holding every one of
    ``required``.
    """
    state = read_state(files, allowed, name)
    known = set(names)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise StateError(f"{name}.json does not hold fitted attributes")
    unknown, missing = set(state) - known, set(required) - set(state)
    if unknown or missing:
        raise StateError(
            f"{name}.json holds {', '.join(sorted(unknown)) or 'nothing unknown'} and lacks "
            f"{', '.join(sorted(missing)) or 'nothing'}"
        )
    for key, value in state.items():
        setattr(obj, key, value)
    return obj


@dataclass(frozen=True)
class FittedState:
    """Which fitted attributes of a pipeline its bundle keeps, and the classes they may hold:
    :func:`fitted_files` and :func:`restore_fitted` with those two fixed.
    """

    names: tuple[str, ...]
    classes: tuple[type, ...]

    def files(self, obj: Any) -> dict[str, bytes]:
        """The bundle files of ``obj``'s fitted attributes."""
        return fitted_files(obj, self.names, self.classes)

    def restore(
        self, obj: T, files: Mapping[str, bytes], required: Iterable[str] | None = None
    ) -> T:
        """``obj`` given the fitted attributes ``files`` hold; StateError unless they hold
        every one of ``required`` (None: every one of :attr:`names`).
        """
        need = self.names if required is None else required
        return cast(T, restore_fitted(obj, files, self.names, need, self.classes))
