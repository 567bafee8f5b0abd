"""Exceptions and warnings raised by dcrmodel.

Every error is a subclass of a built-in exception (``ValueError``, ``TypeError``,
``OSError``) so callers that catch the built-in keep working, and each carries the
offending values so the message says what was wrong and what to do.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = [
    "DcrError",
    "DcrValueError",
    "DcrTypeError",
    "DcrShapeError",
    "DcrMetadataError",
    "DcrFitsError",
    "DcrConfigError",
    "DcrOutputError",
    "DcrWarning",
    "DcrOfflineWarning",
    "DcrPsfWarning",
    "externalStacklevel",
]


def _formatValues(values: dict[str, Any]) -> str:
    if not values:
        return ""
    parts = []
    for key, value in values.items():
        text = repr(value)
        if len(text) > 200:
            text = text[:197] + "..."
        parts.append(f"{key}={text}")
    return " [" + ", ".join(parts) + "]"


class DcrError(Exception):
    """Base class of every error raised by dcrmodel.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    **values
        The offending values; they are kept in ``self.values`` and appended to the
        message.
    """

    def __init__(self, message: str, **values: Any) -> None:
        self.message = message
        self.values = values
        super().__init__(message + _formatValues(values))


class DcrValueError(DcrError, ValueError):
    """An argument has the right type but an impossible value."""


class DcrTypeError(DcrError, TypeError):
    """An argument has the wrong type (for example a bare number where an angle is needed)."""


class DcrShapeError(DcrValueError):
    """Arrays, boxes or grids that must match do not."""


class DcrMetadataError(DcrValueError):
    """Metadata needed for a calculation (WCS, visit info, filter wavelengths) is missing."""


class DcrFitsError(DcrValueError):
    """A FITS file is unreadable, truncated or not in the expected layout."""


class DcrConfigError(DcrValueError):
    """A configuration value is out of range or unknown."""


class DcrOutputError(DcrError, OSError):
    """An output location cannot be used (for example it holds another run's files)."""


class DcrWarning(UserWarning):
    """Base class of dcrmodel's warnings: a degraded but usable result."""


class DcrOfflineWarning(DcrWarning):
    """Astropy's bundled Earth-orientation tables are used because no download is attempted."""


class DcrPsfWarning(DcrWarning):
    """A PSF was estimated or damped rather than taken as given."""


def externalStacklevel() -> int:
    """Return the ``stacklevel`` that attributes a warning to the first caller outside dcrmodel.

    Call it as the ``stacklevel`` argument of `warnings.warn` in the function that warns: the
    warning then names the user's line, however many of the package's own functions lie
    between (a hand-counted level is wrong as soon as a call path changes).

    Returns
    -------
    stacklevel : int
        ``1 + `` the number of dcrmodel frames above the warning function's own.

    Examples
    --------
    Inside a dcrmodel function::

        warnings.warn("look", DcrWarning, stacklevel=externalStacklevel())
    """
    frame = sys._getframe(1)  # the function that warns
    level = 1
    while frame.f_back is not None and str(frame.f_globals.get("__name__", "")).startswith(
        "dcrmodel."
    ):
        frame = frame.f_back
        level += 1
    return level
