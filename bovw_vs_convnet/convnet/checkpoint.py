"""Checkpoint files of a ConvNet run: written atomically, read only with safe unpickling.

A checkpoint is the dict :meth:`~bovw_vs_convnet.convnet.train.Trainer.state` builds:
tensors and plain values only, so :func:`load_checkpoint` reads it with
``torch.load(weights_only=True)`` and a planted file cannot run code. It resumes a run
only when the same setup made it (``identity``). Checkpoints are the trainer's own: what
the harness shows of a run comes from the pipeline's artefacts, not from here.
"""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from bovw_vs_convnet.errors import ConfigError, StorageError

CHECKPOINT_FORMAT = 1


def write_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically (a crash mid-write leaves the previous one).

    A write that fails (a full disk, a read-only folder) removes its temporary file,
    which would otherwise keep the disk full, and ends in a one-line StorageError.
    The file is written through a Python file object, whose OSError torch lets through
    (given a path, its own writer says only "unexpected pos"); torch's RuntimeError
    while closing the archive keeps that OSError as its context.
    """
    tmp = path.with_suffix(".tmp")
    try:
        with tmp.open("wb") as fh:
            torch.save(state, fh)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        cause = _os_error(exc)
        if cause is not None:
            full = cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
            raise StorageError(
                f"cannot write a checkpoint in {path.parent}: {cause.strerror or cause}; "
                + (
                    "free some space, or give another --runs-dir"
                    if full
                    else "give a writable --runs-dir"
                )
            ) from exc
        raise


def _os_error(exc: BaseException | None) -> OSError | None:
    """The OSError ``exc`` is or was raised while handling (its ``__context__`` chain)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__context__
    return None


def load_checkpoint(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint; refuse it (ConfigError, one line) unless the same setup made it.

    It is read with ``torch.load(weights_only=True)``: tensors and plain values only, so
    a planted file (a runs folder is shared, config keys are predictable) cannot run
    code; one that needs more is refused, unread. ``identity`` holds the model name,
    classes, channels, split fingerprint, seed, every setting that changes the result
    and, on CUDA, the device type and autocast dtype; the first mismatch is named.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # what the weights-only unpickler raises for any other object
        raise ConfigError(
            f"refusing checkpoint {path}: it holds more than tensors and plain values "
            "(loading it could run code); delete it to start the run afresh"
        ) from None
    except Exception as exc:  # a truncated or foreign file
        raise ConfigError(f"cannot read checkpoint {path}: {exc}".splitlines()[0]) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not a bvc convnet checkpoint")
    theirs = ckpt.get("identity", {})
    if theirs.get("model") != identity.get("model"):
        raise ConfigError(
            f"checkpoint {path} is for model {theirs.get('model')!r}, not {identity.get('model')!r}"
        )
    for key in sorted(set(identity) | set(theirs)):
        if theirs.get(key) != identity.get(key):
            # an absent device_type / amp_dtype is a CPU checkpoint (Runtime.identity)
            raise ConfigError(
                f"checkpoint {path} was made with {key}={theirs.get(key, 'unset')!r}, "
                f"this run has {key}={identity.get(key, 'unset')!r}"
            )
    return ckpt
