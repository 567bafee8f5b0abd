"""Checks of exposures shared by every command and function that takes one as input.

- `checkUsablePixels`: every pixel that no bad mask plane flags has a finite value and a
  positive, finite variance (a variance of 0 or below would make any residual there
  infinitely significant: a false detection, or an infinite weight in a model).
- `pixelDigest`: a digest of an image plane's values, to find a visit given twice under
  two names (a copy of its file).
- `bandKey` and `checkSameBand`: two filters are of one band (physical filter names such
  as ``g_6`` name the band before the underscore).

The assembly checks its visits with them, and templates and difference images check the
science exposure with them, so that one input is refused the same way everywhere.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..errors import DcrValueError
from .filters import Filter

__all__ = ["checkUsablePixels", "pixelDigest", "bandKey", "checkSameBand"]

#: Band names that say nothing about the band (a filter made from wavelengths alone).
_ANONYMOUS_BANDS = frozenset({"", "custom", "unknown"})


def checkUsablePixels(image: np.ndarray, variance: np.ndarray, good: np.ndarray,
                      name: str) -> None:
    """Raise `DcrValueError` if a good pixel is not finite or has no positive variance.

    Parameters
    ----------
    image, variance : numpy.ndarray
        The image and variance planes (image units, and their square).
    good : numpy.ndarray of bool
        The pixels that no bad mask plane flags (the only ones checked).
    name : str
        What the planes belong to, for the message (``"visit.fits"``, ``"exposure 2"``).

    Raises
    ------
    DcrValueError
        Naming ``name``, the number of such pixels, and the fix.
    """
    with np.errstate(invalid="ignore"):
        bad = good & ~(np.isfinite(image) & np.isfinite(variance) & (variance > 0))
    count = int(np.count_nonzero(bad))
    if count:
        raise DcrValueError(
            f"{name} has {count} unmasked pixels with a non-finite value or a variance that "
            "is not positive; flag them in a bad mask plane (BAD or NO_DATA) or fix the "
            "variance plane",
            visit=name, pixels=count,
        )


def pixelDigest(array: np.ndarray) -> str:
    """Return a digest (hex) of an image plane's shape and values.

    The values are taken as little-endian float64, so one image stored as float32 or
    float64, in either byte order, has one digest. Rows are hashed a block at a time
    (no copy of the whole plane).

    Parameters
    ----------
    array : numpy.ndarray
        A 2-d plane (image units).

    Returns
    -------
    str
        The BLAKE2b digest, 32 hex digits.
    """
    values = np.asarray(array)
    digest = hashlib.blake2b(repr(values.shape).encode(), digest_size=16)
    rows = max(1, (1 << 22) // max(1, values[0].size if values.ndim > 1 else values.size))
    for start in range(0, max(len(values), 1), rows):
        block = np.ascontiguousarray(values[start:start + rows], dtype="<f8")
        digest.update(block.tobytes())
    return digest.hexdigest()


def bandKey(filterInfo: Filter | None) -> str | None:
    """Return the band a filter is of (``'g'`` for ``'g'`` and ``'g_6'``); None if unknown.

    A filter without a name, or one named ``custom`` or ``unknown`` (made from
    wavelengths alone), has no known band.
    """
    if not isinstance(filterInfo, Filter):
        return None
    key = filterInfo.bandName.split("_")[0].strip()
    return None if key.lower() in _ANONYMOUS_BANDS else key


def checkSameBand(first: Any, second: Any, firstName: str, secondName: str,
                  fix: str = "") -> None:
    """Raise `DcrValueError` if two filters are of different known bands.

    Parameters
    ----------
    first, second : `Filter` or None
        The filters; a missing one, or one of no known band (`bandKey`), is not refused.
    firstName, secondName : str
        What each belongs to, for the message (``"the exposure"``, ``"the model"``).
    fix : str, optional
        What to do, appended to the message.

    Raises
    ------
    DcrValueError
        Naming both bands.
    """
    one, other = bandKey(first), bandKey(second)
    if one is not None and other is not None and one != other:
        raise DcrValueError(
            f"{firstName} (band {one}) and {secondName} (band {other}) are of different bands"
            + (f"; {fix}" if fix else ""),
            bands=[one, other],
        )
