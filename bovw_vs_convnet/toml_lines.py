"""Where in a TOML text a key was written: line numbers for one-line error messages.

tomllib gives values, not positions; :func:`locate_key` finds the line of a key
path by a small search of the text (headers cut it into blocks, then ``KEY =``
lines), and says None where it cannot tell honestly. :func:`decode_utf8` and
:func:`load_toml` give the line of a file that is not UTF-8 or not TOML.

It sits beside the settings, below ``data/`` and ``harness/``, so that every
reader of a TOML file (suites, dataset manifests) can share it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bovw_vs_convnet.errors import BvcError, ConfigError
from bovw_vs_convnet.file_limits import LimitError, check_toml

# where a value sits in the TOML document: ("run", 2, "set", "epochs")
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class TomlLines:
    """A TOML text and its name: turns (path, message) into ``SOURCE:LINE: message``."""

    text: str
    source: str

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """A ConfigError for ``path``, with its line when :func:`locate_key` finds one."""
        line = locate_key(self.text, path)
        return ConfigError(
            f"{self.source}:{line}: {message}" if line else f"{self.source}: {message}"
        )


def decode_utf8(data: bytes, source: str, what: str, error: type[BvcError] = ConfigError) -> str:
    """``data`` as text; bytes that are not UTF-8 raise ``error`` naming their line.

    The message reads ``SOURCE:LINE: not UTF-8 text (byte 0xNN); WHAT is TOML,
    which is UTF-8``, e.g. with ``what="a suite file"``.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"{source}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            f"{what} is TOML, which is UTF-8"
        ) from None


def load_toml(text: str, source: str) -> dict[str, Any]:
    """Parse TOML ``text``; a syntax error is a ConfigError ``SOURCE:LINE: invalid TOML: ...``.

    A text over :data:`~bovw_vs_convnet.file_limits.MAX_TOML_BYTES` or nested deeper than
    :data:`~bovw_vs_convnet.file_limits.MAX_DEPTH` is a ConfigError before it is parsed:
    tomllib recurses once per level and expands a long dotted key in quadratic time.
    """
    try:
        check_toml(text, source)
    except LimitError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError; also an integer of over 4 300 digits
        # Python 3.11's TOMLDecodeError has no line attribute; its message ends with it
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        if m:
            raise ConfigError(
                f"{source}:{m.group(1)}: invalid TOML: {msg[: m.start()].strip()}"
            ) from None
        raise ConfigError(f"{source}: invalid TOML: {msg}") from None


# a [table] or [[array]] header alone on its line (a line of a multi-line array is not one)
_HEADER = re.compile(r"^\s*(\[\[?)\s*([\w\-.\"' ]+?)\s*\]\]?\s*(#.*)?$")


def locate_key(text: str, path: Sequence[str | int]) -> int | None:
    """The 1-based line that gave ``path`` (e.g. ``("run", 2, "set", "epochs")``), or None.

    The text is cut into blocks at its ``[table]`` and ``[[array]]`` headers; in
    the deepest block that ``path`` lies in, the line ``KEY = ...`` of the next
    key on the path is the answer (for ``set.epochs`` that is the ``set = {...}``
    line). A key the block does not show gives the block's header line; a key
    of the file's top part that is not there gives None.
    """
    blocks: dict[KeyPath, tuple[int | None, list[tuple[int, str]]]] = {(): (None, [])}
    counts: dict[str, int] = {}
    current: KeyPath = ()
    for line_no, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m is None:
            blocks[current][1].append((line_no, line))
            continue
        names = tuple(n.strip().strip('"') for n in m.group(2).split("."))
        if m.group(1) == "[[":  # the next table of an array: ("run", 2)
            counts[names[0]] = counts.get(names[0], -1) + 1
            current = (names[0], counts[names[0]], *names[1:])
        elif names[0] in counts:  # a sub-table of the last array table: [run.set]
            current = (names[0], counts[names[0]], *names[1:])
        else:
            current = names
        blocks[current] = (line_no, [])
    depth = max(n for n in range(len(path) + 1) if tuple(path[:n]) in blocks)
    header, body = blocks[tuple(path[:depth])]
    rest = path[depth:]
    if rest and isinstance(rest[0], str):
        key = re.compile(rf"^\s*\"?{re.escape(rest[0])}\"?\s*=")
        for line_no, line in body:
            if key.match(line):
                return line_no
    return header
