"""Progress of the loops a person waits for: a tqdm bar on a terminal, plain lines elsewhere.

On a terminal, tqdm redraws one line in place. Written to a log file, CI or
``| tee``, those redraws become hundreds of ``\\r`` frames; there the same loop
prints one line when it ends (an epoch, a stage) and at most one a minute while
it runs. The mode is chosen once per run (``bvc ... --progress auto|bar|lines|none``):

- ``auto``: ``bar`` when stderr is a terminal, ``lines`` otherwise;
- ``bar``: tqdm always; ``lines``: lines always; ``none``: nothing.

``True`` and ``False`` mean ``auto`` and ``none``, so a flag is a mode too.
Like tqdm, both write to stderr: progress is not a result, so stdout stays clean for
``--json``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar

ProgressMode = Literal["auto", "bar", "lines", "none"]
PROGRESS_MODES: tuple[str, ...] = ("auto", "bar", "lines", "none")
LINE_INTERVAL_S = 60.0  # lines mode: the longest silence while a loop runs

T = TypeVar("T")


def resolve_mode(mode: ProgressMode | bool) -> Literal["bar", "lines", "none"]:
    """The concrete mode for ``mode``: ``auto`` (or True) looks at whether stderr is a terminal."""
    if mode is True or mode == "auto":
        isatty = getattr(sys.stderr, "isatty", None)
        return "bar" if isatty is not None and isatty() else "lines"
    if mode is False or mode == "none":
        return "none"
    if mode in ("bar", "lines"):
        return mode
    raise ValueError(f"progress mode must be one of {', '.join(PROGRESS_MODES)}, got {mode!r}")


class Progress:
    """Progress of one loop of ``total`` steps, shown as ``mode`` says.

    Use it as a context manager, call :meth:`update` with the number of steps done
    (and values to show, e.g. ``loss="0.31"``); leaving the block closes it, which in
    lines mode prints the closing line ``desc: 938/938 batch in 12.3 s (loss=0.31)``.
    """

    def __init__(
        self, total: int, desc: str, *, mode: ProgressMode | bool = "auto", unit: str = "it"
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.mode = resolve_mode(mode)
        self.done = 0
        self.postfix: dict[str, Any] = {}
        self._t0 = self._last_line = time.perf_counter()
        self._bar: Any = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True
            )

    def update(self, done: int, **postfix: Any) -> None:
        """Record that ``done`` of ``total`` steps are finished; ``postfix`` values are shown."""
        self.postfix.update(postfix)
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(self.postfix, refresh=False)
            self._bar.update(done - self.done)
        elif self.mode == "lines" and done < self.total:
            now = time.perf_counter()
            if now - self._last_line >= LINE_INTERVAL_S:
                self._last_line = now
                self._line(done, now)
        self.done = done

    def close(self) -> None:
        """End the display: close the bar, or print the closing line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines":
            self._line(self.done, time.perf_counter())
            self.mode = "none"  # closing twice prints once

    def _line(self, done: int, now: float) -> None:
        extra = ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        text = f"{self.desc}: {done}/{self.total} {self.unit} in {now - self._t0:.1f} s"
        print(text + (f" ({extra})" if extra else ""), file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._bar is not None:  # an error: no closing line that reads like success
            self._bar.close()
            self._bar = None


def track(
    items: Iterable[T],
    *,
    total: int,
    desc: str,
    mode: ProgressMode | bool = "auto",
    unit: str = "it",
) -> Iterator[T]:
    """Yield ``items`` while showing their progress (one step per item)."""
    with Progress(total, desc, mode=mode, unit=unit) as bar:
        for i, item in enumerate(items, start=1):
            yield item
            bar.update(i)
