"""Limits on files from elsewhere, checked before they are parsed or read.

A runs folder, a suite file or a bundle may come from anyone (a colleague's tarball,
a lab's NFS). Python's JSON and TOML parsers recurse once per level of nesting, so a
file of 100 000 ``[`` ends in RecursionError; ``numpy.load`` trusts an array's header
(an object dtype, a truncated file, a shape the file does not hold). This module
bounds each of those before the parser or the reader runs:

- :func:`load_json` and :func:`check_toml` refuse a text over its size limit or
  nested deeper than :data:`MAX_DEPTH`, measured without recursion (strings and
  comments blanked, then a running count of brackets; for TOML also the longest
  dotted key, which tomllib expands in quadratic time and memory);
- :func:`check_npy` reads an ``.npy`` header only and checks its dtype, number of
  dimensions and declared size against the file's size and a limit;
  :func:`load_npy` reads the array after that check; :func:`check_npz` checks every
  member of an ``.npz`` the same way (stored, not compressed: it cannot inflate).

Every refusal is a :class:`LimitError` (a ValueError, as a parse error is), whose
message says which limit the file passed; callers turn it into their own one line.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MAX_DEPTH = 64  # records, bundles and suites nest fewer than 10 levels
MAX_JSON_BYTES = 64 << 20  # a run record is a few kB, a bundle's JSON tree a few MB at most
MAX_TOML_BYTES = 1 << 20  # a suite file is a few kB
MAX_ARRAY_BYTES = 1 << 29  # ImageNet's test scores (50 000 × 1 000 float32) are 200 MB

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# TOML: multi-line strings first, then one-line strings, then comments (to the line's end)
_TOML_SKIPPED = re.compile(
    r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"|\'[^\'\n]*\'|#[^\n]*',
    re.DOTALL,
)
_TOML_DOTTED = re.compile(r'(?:[\w-]+|"")(?:[ \t]*\.[ \t]*(?:[\w-]+|""))+')


_KIND_NAMES = {
    "b": "booleans",
    "i": "integers",
    "u": "unsigned integers",
    "f": "floats",
    "c": "complex numbers",
    "U": "text",
    "S": "bytes",
}


class LimitError(ValueError):
    """A file over a limit of this module: too large, too deeply nested, an unexpected array."""


def _bracket_depth(code: str) -> int:
    """The largest running sum of +1 per ``[`` or ``{`` and -1 per ``]`` or ``}``."""
    raw = np.frombuffer(code.encode("utf-8", "surrogatepass"), np.uint8)
    opens = (raw == ord("[")) | (raw == ord("{"))
    closes = (raw == ord("]")) | (raw == ord("}"))
    steps = opens[opens | closes].astype(np.int64) * 2 - 1  # +1 per opening, -1 per closing
    return int(np.cumsum(steps).max(initial=0))


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a JSON text, counted without recursion.

    Strings are blanked first; an unterminated one leaves its brackets counted, which
    can only overstate the depth of a text that does not parse anyway.
    """
    return _bracket_depth(_JSON_STRING.sub("", text))


def toml_depth(text: str) -> int:
    """An upper bound on the nesting of a TOML text, counted without recursion.

    TOML nests two ways: brackets (arrays, inline tables) and dotted keys
    (``a.b.c = 1``, ``[a.b.c]``), which Python's parser expands in time and memory
    quadratic in their length. The bound is the bracket depth plus the longest
    dotted chain, with strings and comments blanked first (a float's one dot counts
    as a chain of one).
    """
    code = _TOML_SKIPPED.sub('""', text)
    chain = max((m.group().count(".") for m in _TOML_DOTTED.finditer(code)), default=0)
    return _bracket_depth(code) + chain


def _check_text(text: str | bytes, source: str, limit: int, depth_of: Callable[[str], int]) -> str:
    """``text`` (decoded), once its size and depth are within the limits."""
    if len(text) > limit:
        raise LimitError(f"{source} is {len(text):,} bytes, over the limit of {limit:,}")
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError too
    depth = depth_of(text)
    if depth > MAX_DEPTH:
        raise LimitError(f"{source} nests {depth:,} levels deep, over the limit of {MAX_DEPTH}")
    return text


def load_json(text: str | bytes, source: str, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse JSON from a file of elsewhere, its size and depth checked first.

    Raises ValueError: :class:`LimitError` over ``max_bytes`` or :data:`MAX_DEPTH`,
    ``json.JSONDecodeError`` for what is not JSON, UnicodeDecodeError for bytes that
    are not UTF-8. ``NaN`` and ``Infinity`` are parsed (as Python's json does): a
    caller that needs strict JSON checks the values (``check_record`` does).
    """
    checked = _check_text(text, source, max_bytes, json_depth)
    return json.loads(checked)


def read_json_file(path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """:func:`load_json` of a file, whose size is checked before it is read.

    Raises OSError when it cannot be read, ValueError as :func:`load_json` does.
    """
    size = path.stat().st_size
    if size > max_bytes:
        raise LimitError(f"{path} is {size:,} bytes, over the limit of {max_bytes:,}")
    return load_json(path.read_bytes(), str(path), max_bytes=max_bytes)


def check_toml(text: str, source: str, *, max_bytes: int = MAX_TOML_BYTES) -> None:
    """Raise :class:`LimitError` when a TOML text is over ``max_bytes`` or :data:`MAX_DEPTH`."""
    _check_text(text, source, max_bytes, toml_depth)


def _npy_header(fh: Any, source: str) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    """(shape, dtype, header length) of the ``.npy`` stream ``fh``, read no further."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise LimitError(f"{source}: .npy format {version} is not read here")
    except LimitError:
        raise
    except (ValueError, SyntaxError, TypeError, EOFError) as exc:
        raise LimitError(f"{source} is not an .npy array ({exc})") from None
    return tuple(shape), dtype, fh.tell()


def _declared_bytes(
    shape: tuple[int, ...], dtype: np.dtype[Any], source: str, kinds: str, ndim: int | None
) -> int:
    """The bytes an array header declares, once its dtype and dimensions are admitted."""
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in kinds:
        expected = " or ".join(_KIND_NAMES.get(k, k) for k in kinds)
        raise LimitError(f"{source} holds {dtype} values, not {expected}")
    if ndim is not None and len(shape) != ndim:
        raise LimitError(f"{source} has shape {shape}, not {ndim}-d")
    return math.prod(shape) * dtype.itemsize


def check_npy(
    path: Path, *, kinds: str, ndim: int | None = None, max_bytes: int = MAX_ARRAY_BYTES
) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """The (shape, dtype) an ``.npy`` file declares, checked against the file and the caller.

    Only the header is read. Refused with :class:`LimitError`: a dtype whose kind is
    not in ``kinds`` (numpy's letters: ``"f"`` floats, ``"iu"`` integers, ``"U"`` text;
    objects and records are never admitted), a number of dimensions other than
    ``ndim``, a declared size over ``max_bytes``, and a file that holds fewer bytes
    than its header declares (truncated). OSError when the file cannot be read.
    """
    with path.open("rb") as fh:
        shape, dtype, header = _npy_header(fh, str(path))
    body = path.stat().st_size - header
    declared = _declared_bytes(shape, dtype, str(path), kinds, ndim)
    if declared > max_bytes:
        raise LimitError(f"{path} declares {declared:,} bytes, over the limit of {max_bytes:,}")
    if body < declared:
        raise LimitError(f"{path} is truncated: {body:,} of {declared:,} bytes")
    return shape, dtype


def check_npz(path: Path, *, kinds: str, max_members: int = 10_000) -> None:
    """Check every member of an ``.npz`` by its zip entry and ``.npy`` header, reading no array.

    A member must be stored, not compressed (``numpy.savez`` never compresses, and a
    compressed member can inflate a few MB into GBs), hold a dtype of ``kinds``, and be
    exactly as long as its header declares: what ``numpy.load`` reads afterwards takes
    no more memory than the file's size. :class:`LimitError` otherwise; OSError when it
    cannot be read. A file that is not a zip archive is left to ``numpy.load`` (which
    refuses a pickle with its own message): nothing in it can inflate.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > max_members:
                raise LimitError(f"{path} holds {len(members):,} members, over {max_members:,}")
            for info in members:
                source = f"{path}: member {info.filename[:80]!r}"
                if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                    raise LimitError(f"{source} is compressed (numpy.savez stores arrays plainly)")
                with archive.open(info) as fh:
                    shape, dtype, header = _npy_header(fh, source)
                declared = _declared_bytes(shape, dtype, source, kinds, None)
                if header + declared != info.file_size:
                    raise LimitError(
                        f"{source} declares {declared:,} bytes in {info.file_size:,} of member"
                    )
    except zipfile.BadZipFile as exc:
        raise LimitError(f"{path} is not an .npz archive ({exc})") from None


def load_npy(
    path: Path, *, kinds: str, ndim: int | None = None, max_bytes: int = MAX_ARRAY_BYTES
) -> np.ndarray:
    """The array of an ``.npy`` file after :func:`check_npy`; never unpickles.

    Raises :class:`LimitError` as :func:`check_npy` does, OSError when it cannot be read.
    """
    check_npy(path, kinds=kinds, ndim=ndim, max_bytes=max_bytes)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:  # changed between the check and the read
        raise LimitError(f"{path} cannot be read as an array ({exc})") from None
