"""A one-line progress bar for long steps, drawn on standard error when it is a terminal.

Library code reports progress through callbacks; this bar is one such callback, used by
the command line. It never draws when the stream is not a terminal (logs, CI), unless
asked to.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["ProgressBar", "fromAssembleProgress"]


class ProgressBar:
    """A one-line progress bar on a stream, usable as a ``progress(message, done, total)``.

    Parameters
    ----------
    label : str
        What is progressing.
    stream : file, optional
        Where to draw (standard error by default).
    enabled : bool or None, optional
        None: draw only when ``stream`` is a terminal.
    width : int, optional
        Characters of the bar.
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
        self._started = time.monotonic()
        self._drawn = False

    def __call__(self, message: str, done: int, total: int) -> None:
        """Redraw the bar at ``done`` of ``total`` steps."""
        if not self._enabled:
            return
        fraction = 0.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
        filled = int(round(fraction * self._width))
        elapsed = time.monotonic() - self._started
        line = (
            f"\r{self._label} [{'#' * filled}{'.' * (self._width - filled)}] "
            f"{done}/{total} {message} ({elapsed:.1f} s)"
        )
        self._stream.write(line.ljust(80))
        self._stream.flush()
        self._drawn = True
        if total > 0 and done >= total:
            self.close()

    def close(self) -> None:
        """End the bar's line."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def fromAssembleProgress(
    callback: Callable[[str, int, int], None] | None,
) -> Callable[[dict[str, Any]], None] | None:
    """Adapt a ``(message, done, total)`` callback to the assembly's progress dictionaries.

    Parameters
    ----------
    callback : callable or None
        A bar-style callback such as `ProgressBar`; None gives None.

    Returns
    -------
    callable or None
        A callback for `dcrmodel.assemble.task.DcrAssembleCoadd.run`, counting subregions.
    """
    if callback is None:
        return None

    def progress(info: dict[str, Any]) -> None:
        total = int(info.get("nSubregions", 1))
        index = int(info.get("subregion", 0))
        if info.get("finished"):
            callback(f"subregion {index + 1} done ({info.get('stopReason', '')})", index + 1,
                     total)
        else:
            callback(f"subregion {index + 1}, iteration {info.get('iteration', '?')}", index,
                     total)

    return progress
