"""Progress reports: the one callback type through which the library tells how far it is.

Nothing below the command line prints. Long operations (simulating a field, assembling a
model, running on a cluster) take an optional ``progress`` callback and call it with one
`ProgressEvent` per step: a dictionary that always holds

- ``"message"`` (str): what was just done, for a person;
- ``"done"`` (int): steps done so far;
- ``"total"`` (int): steps in all (``done == total`` when finished);

and, depending on the operation, more keys that describe the step (``"subregion"``,
``"iteration"``, ``"patch"``, ...; each operation documents its own). The command line's
progress bar (`dcrmodel.cli.progress.ProgressBar`) is one such callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ProgressEvent", "ProgressCallback", "progressEvent", "reportProgress"]

#: One progress report: ``message``, ``done`` and ``total``, plus operation-specific keys.
ProgressEvent = dict[str, Any]

#: A callable that receives each `ProgressEvent`.
ProgressCallback = Callable[[ProgressEvent], None]


def progressEvent(message: str, done: int, total: int, **fields: Any) -> ProgressEvent:
    """Return a progress event.

    Parameters
    ----------
    message : str
        What was just done.
    done, total : int
        Steps done so far, and in all.
    **fields
        Operation-specific keys.

    Examples
    --------
    >>> progressEvent("visit 2/5", 2, 5, event="simulate")
    {'event': 'simulate', 'message': 'visit 2/5', 'done': 2, 'total': 5}
    """
    return {**fields, "message": str(message), "done": int(done), "total": int(total)}


def reportProgress(
    callback: ProgressCallback | None, message: str, done: int, total: int, **fields: Any
) -> None:
    """Call ``callback`` (when not None) with a `progressEvent`."""
    if callback is not None:
        callback(progressEvent(message, done, total, **fields))
