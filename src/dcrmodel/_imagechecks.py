"""Checks of the plain numbers the image classes are built from.

Private to the image layer (`dcrmodel.geometry`, `dcrmodel.pixels`, `dcrmodel.filters`,
`dcrmodel.psfmodels`, `dcrmodel.calibration`, `dcrmodel.statistics`): each turns a value
into an int or a float, or raises a `dcrmodel.errors` exception that names the argument.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from .errors import DcrTypeError, DcrValueError

__all__: list[str] = []


def _asInt(value: Any, name: str) -> int:
    """Return ``value`` as a Python int, or raise `DcrTypeError` if it is not whole."""
    if isinstance(value, bool):
        raise DcrTypeError(f"{name} must be an integer, not a bool", **{name: value})
    try:
        return operator.index(value)
    except TypeError:
        pass
    # Whole-valued floats (2.0, numpy floats) are accepted; fractions are not.
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise DcrTypeError(
        f"{name} must be a whole number of pixels; round it explicitly",
        **{name: value},
    )


def _positiveFinite(value: Any, name: str, unit: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value}) from None
    if not math.isfinite(out) or out <= 0.0:
        raise DcrValueError(f"{name} must be a positive, finite number in {unit}", **{name: value})
    return out
