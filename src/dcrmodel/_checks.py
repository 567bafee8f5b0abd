"""Checks of the plain numbers the simulation's objects are built from.

Private to the simulation modules (`dcrmodel.spectra`, `dcrmodel.sources`,
`dcrmodel.seeing`, `dcrmodel.simulate`): each turns a value into a float or raises a
`dcrmodel.errors` exception that names the argument and its unit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import DcrTypeError, DcrValueError

__all__: list[str] = []


def _finite(value: Any, name: str, unit: str) -> float:
    """Return ``value`` as a finite float or raise a clear error naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value})
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value}) from None
    if not math.isfinite(out):
        raise DcrValueError(f"{name} must be finite ({unit})", **{name: value})
    return out


def _positive(value: Any, name: str, unit: str, allowZero: bool = False) -> float:
    out = _finite(value, name, unit)
    if out < 0.0 or (out == 0.0 and not allowZero):
        relation = "non-negative" if allowZero else "positive"
        raise DcrValueError(f"{name} must be {relation} ({unit}); got {out:g}", **{name: value})
    return out
