"""The toolkit's exceptions.

:class:`BvcError` and its subclasses mean "bad input": the CLI turns them into
one line and exit code 2. :class:`RunFailed` means "a run failed after its
record was made": it carries that record, and its cause says which of the two
kinds of failure it was.
"""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bovw_vs_convnet.harness.record import RunRecord


class BvcError(Exception):
    """Base class for every error caused by the user's input (data, flags, files).

    The command line prints ``str(error)`` on one line and exits with code 2;
    anything else that escapes is an unexpected failure (exit code 1).
    """


class ConfigError(BvcError):
    """An unknown setting, a value of the wrong type, an unknown preset.

    Attributes:
        key: the setting at fault (``"preset"`` for an unknown preset), or None
            when the error is not about one setting (a bad ``--set`` item, a
            check across several settings). Suite files use it to point at the
            line that gave the setting.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class DataError(BvcError):
    """A missing dataset, a corrupt image, a checksum mismatch, a split that cannot be made."""


class StorageError(BvcError):
    """A folder the toolkit writes to cannot take the write: read-only, full, no permission.

    The message names the folder (the runs folder, a cache) and the system's reason;
    nothing half-written is left behind by the store.
    """


# what a full disk, a read-only folder or a missing permission raises
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
)


def storage_error(exc: BaseException | None) -> StorageError | None:
    """The :class:`StorageError` that ``exc`` is or stands for, else None.

    An ``OSError`` of a full disk, a read-only folder or a missing permission
    (:data:`WRITE_ERRNOS`), raised by whatever wrote (a pipeline's cache, a
    checkpoint), becomes one line naming the folder and the file.
    """
    if isinstance(exc, StorageError):
        return exc
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return None
    reason = exc.strerror or str(exc)
    if exc.filename:
        name = os.fsdecode(exc.filename)
        reason = f"folder {os.path.dirname(name) or '.'}: {reason} ({name})"
    hint = (
        "free some space or choose another folder"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        else "choose a folder you can write to"
    )
    return StorageError(f"{reason}; {hint}")


class TrainSizeTooLarge(DataError):
    """A training subset larger than the training images there are.

    A suite that lists sizes for several datasets meets this on the smaller
    ones; it reports the run as not run rather than failed.

    Attributes:
        train_size: the size asked for.
        available: the training images there are (after holding out the test part).
        dataset: the dataset's name.
    """

    def __init__(self, message: str, train_size: int, available: int, dataset: str) -> None:
        super().__init__(message)
        self.train_size = train_size
        self.available = available
        self.dataset = dataset

    def __reduce__(self) -> tuple[type, tuple[str, int, int, str]]:
        # pickling (joblib, dask workers) rebuilds an exception from these arguments
        return type(self), (str(self), self.train_size, self.available, self.dataset)


class RunFailed(Exception):
    """A run raised while fitting or scoring; its failed record is already stored.

    Raised by :func:`bovw_vs_convnet.harness.run.run_pipeline` as
    ``raise RunFailed(record) from exc``: ``__cause__`` is the original error
    (a :class:`BvcError` for bad input, anything else for an unexpected
    failure) and ``str()`` is the record's one-line error, e.g.
    ``"ValueError: probe failed on purpose"``. Not a :class:`BvcError`: whether
    it is the user's fault is the cause's to say.

    Attributes:
        record: the stored record (status ``failed``, ``error`` set). Should
            storing it have failed too, the record as it was built (not stored).
    """

    def __init__(self, record: RunRecord) -> None:
        super().__init__(record.get("error") or "run failed")
        self.record = record

    def __reduce__(self) -> tuple[type, tuple[RunRecord]]:
        # pickling (joblib, dask workers) rebuilds an exception from these arguments
        return type(self), (self.record,)


def unknown_name(
    kind: str, name: str, known: Iterable[str], *, where: str = "", hint: str = ""
) -> str:
    """The one line for a name that is not one of ``known``, with the closest ones offered.

    ``unknown model 'lenet' (did you mean 'lenet5' or ...?); known: ...``: up to
    three suggestions by :func:`difflib.get_close_matches` (case ignored), closest first,
    then every known name, so a misspelling is fixed without a second command. Every
    refusal of a dataset, model, pipeline, suite, preset or setting name says it this way.

    Args:
        kind: what the name names (``model``, ``dataset``, ``setting``).
        name: the name given.
        known: the names that exist.
        where: text right after the name, e.g. `` in [[run]]``.
        hint: text after the list, e.g. ``(or give the path of an image folder)``.
    """
    names = list(dict.fromkeys(known))
    lowered = {n.lower(): n for n in reversed(names)}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=3, cutoff=0.6)
    text = f"unknown {kind} {name!r}{where}"
    if close:
        offered = [repr(lowered[c]) for c in close]
        text += f" (did you mean {' or '.join(offered)}?)"
    text += f"; known: {', '.join(names) or 'none'}"
    return f"{text} {hint}" if hint else text
