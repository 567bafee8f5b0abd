"""The command line's progress bar: a `ProgressCallback` drawn with tqdm on standard error.

Library code reports progress through callbacks (`dcrmodel.progress`); this bar is the
command line's. It draws only when its stream is a terminal (never in logs or CI) unless
asked to, and `logToBar` keeps log messages on their own lines above it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from ..progress import ProgressEvent

__all__ = ["ProgressBar", "logToBar"]


class ProgressBar:
    """A progress bar on a stream, usable as a ``progress`` callback.

    Parameters
    ----------
    label : str
        What is progressing.
    stream : file, optional
        Where to draw (standard error by default).
    enabled : bool or None, optional
        None: draw only when ``stream`` is a terminal.
    width : int, optional
        Characters of the bar itself.

    Notes
    -----
    Each call takes a `ProgressEvent` and moves the bar to its ``done`` of ``total``
    steps, with its ``message`` after the bar. The bar closes itself when ``done``
    reaches ``total``; a later event opens a new one.
    """

    def __init__(
        self, label: str, stream: TextIO | None = None, enabled: bool | None = None,
        width: int = 30,
    ) -> None:
        self._label = label
        self._stream = sys.stderr if stream is None else stream
        if enabled is None:
            enabled = bool(getattr(self._stream, "isatty", lambda: False)())
        self._enabled = enabled
        self._width = width
        self._bar: Any = None

    def __call__(self, event: ProgressEvent) -> None:
        """Move the bar to the event's ``done`` of ``total`` steps."""
        if not self._enabled:
            return
        total = max(int(event.get("total", 0)), 0)
        done = int(event.get("done", 0))
        if self._bar is None or self._bar.total != total:
            self.close()
            # an unsized terminal (0 x 0) would make tqdm hide the bar
            size = shutil.get_terminal_size(fallback=(100, 24))
            from tqdm import tqdm  # imported when a bar is first drawn (not for --help)

            self._bar = tqdm(
                total=total, desc=self._label, file=self._stream, leave=True,
                unit=str(event.get("message", "")),
                ncols=size.columns or 100, nrows=size.lines or 24,
                bar_format="{desc} |{bar:" + str(self._width)
                + "}| {n_fmt}/{total_fmt} {unit} ({elapsed})",
            )
        self._bar.unit = str(event.get("message", ""))
        self._bar.n = min(max(done, 0), total) if total else done
        self._bar.refresh()
        if total > 0 and done >= total:
            self.close()

    def close(self) -> None:
        """End the bar's line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _writesToTerminal(logger: logging.Logger) -> bool:
    """Whether one of ``logger``'s handlers writes to standard output or error on a terminal."""
    for handler in logger.handlers:
        stream = getattr(handler, "stream", None)
        if (isinstance(handler, logging.StreamHandler) and stream in (sys.stdout, sys.stderr)
                and getattr(stream, "isatty", lambda: False)()):
            return True
    return False


@contextlib.contextmanager
def logToBar(logger: logging.Logger) -> Iterator[None]:
    """Route ``logger``'s console messages through tqdm so they print above the bar.

    Only when the logger writes to a terminal, the only place a command draws its bars
    (`ProgressBar` draws on a terminal unless told otherwise). Elsewhere (a log file, a
    pipe, a test) the messages are the same either way, and tqdm, with the asyncio it
    imports (a few hundredths of a second), is not imported.
    """
    if not _writesToTerminal(logger):
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm  # imported when a command runs

    with logging_redirect_tqdm(loggers=[logger]):
        yield
