"""Checks of the plain values that dcrmodel's objects are built from.

The one home for argument validation shared across the package: each function turns a
value into a Python number of the kind wanted, or raises a `dcrmodel.errors` exception
that names the argument, its unit and what to do. A `bool` is never accepted as a number.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from .errors import DcrTypeError, DcrValueError

__all__ = ["asFiniteFloat", "asPositiveFloat", "asInt", "isNumber"]


def isNumber(value: Any) -> bool:
    """Return whether ``value`` is a real number and not a `bool`."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def asFiniteFloat(value: Any, name: str, unit: str) -> float:
    """Return ``value`` as a finite float, or raise an error naming ``name``.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        The argument's name, used in the message.
    unit : str
        The unit the number is in, used in the message.

    Raises
    ------
    DcrTypeError
        If ``value`` is not a number (a `bool` is not one).
    DcrValueError
        If it is not finite.
    """
    if isinstance(value, (bool, np.bool_)):
        raise DcrTypeError(f"{name} must be a number in {unit}, not a bool", **{name: value})
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value}) from None
    if not math.isfinite(out):
        raise DcrValueError(f"{name} must be finite ({unit})", **{name: value})
    return out


def asPositiveFloat(value: Any, name: str, unit: str, allowZero: bool = False) -> float:
    """Return ``value`` as a positive (or, with ``allowZero``, non-negative) finite float.

    Raises
    ------
    DcrTypeError
        If ``value`` is not a number (a `bool` is not one).
    DcrValueError
        If it is not finite, or negative, or zero without ``allowZero``.
    """
    if isinstance(value, (bool, np.bool_)):
        raise DcrTypeError(f"{name} must be a number in {unit}, not a bool", **{name: value})
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value}) from None
    if not math.isfinite(out) or out < 0.0 or (out == 0.0 and not allowZero):
        relation = "non-negative" if allowZero else "positive"
        raise DcrValueError(
            f"{name} must be {relation} and finite ({unit}); got {out:g}", **{name: value}
        )
    return out


def asInt(value: Any, name: str) -> int:
    """Return ``value`` as a Python int, or raise `DcrTypeError` if it is not whole.

    Whole-valued floats (``2.0``, numpy floats) are accepted; fractions and `bool` are not.
    """
    if isinstance(value, (bool, np.bool_)):
        raise DcrTypeError(f"{name} must be an integer, not a bool", **{name: value})
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise DcrTypeError(
        f"{name} must be a whole number of pixels; round it explicitly",
        **{name: value},
    )
