"""Text from files made safe to print on one line: file names, class names, record fields.

A file or class name comes from whoever made the folder or the bundle. Printed as it
is, a newline in it starts a line the toolkit never wrote (a forged result), and an
escape sequence (``ESC ] ... BEL``, an OSC) talks to the terminal. :func:`printable`
writes such characters as Python escapes (``\\n``, ``\\x1b``, ``\\u202e``; a byte of a
name that is not UTF-8, which Python keeps as a lone surrogate, as ``\\xff``) and a
backslash as ``\\\\``, so that what is printed names the text exactly and stays on its
line. JSON output needs none of this: ``json.dumps`` escapes every control character.
"""

from __future__ import annotations

_SURROGATE_BYTES = range(0xDC80, 0xDD00)  # os.fsdecode's stand-ins for bytes 0x80-0xFF


def _escape(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    if code in _SURROGATE_BYTES:
        return f"\\x{code - 0xDC00:02x}"
    return char.encode("unicode_escape", "backslashreplace").decode("ascii")


def printable(text: object) -> str:
    """``str(text)`` with control, format and separator characters (newlines, ESC, the
    bidirectional overrides), undecodable bytes and backslashes escaped: one printable
    line that names the text exactly.
    """
    value = str(text)
    if value.isprintable() and "\\" not in value:
        return value
    return "".join(_escape(c) for c in value)
