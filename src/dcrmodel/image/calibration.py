"""Photometric calibration: `PhotoCalib`, a constant factor from counts to nanojansky."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import asPositiveFloat
from ..errors import DcrValueError
from .pixels import Image

__all__ = ["PhotoCalib"]


def _scaleValues(values: Any, factor: float) -> Any:
    """Multiply a number, array or `Image` by ``factor``, returning the same kind."""
    if isinstance(values, Image):
        return values * factor
    if np.isscalar(values):
        return float(values) * factor
    return np.asarray(values, dtype=np.float64) * factor


class PhotoCalib:
    """Photometric calibration: a constant factor from counts to nanojansky.

    Parameters
    ----------
    calibrationMean : float
        Flux density in nJy of one count (instrumental flux unit).
    """

    def __init__(self, calibrationMean: float) -> None:
        self._calibrationMean = asPositiveFloat(calibrationMean, "calibrationMean", "nJy per count")

    @classmethod
    def fromZeroPoint(cls, zeroPoint: float) -> PhotoCalib:
        """Make the calibration of an AB magnitude zero point (magnitude of one count).

        One nJy is AB magnitude 31.4 (AB: m = -2.5 log10(f / 3631 Jy), Oke & Gunn 1983),
        so one count is ``10 ** ((31.4 - zeroPoint) / 2.5)`` nJy.
        """
        zp = float(zeroPoint)
        if not math.isfinite(zp):
            raise DcrValueError("zeroPoint must be finite (AB mag)", zeroPoint=zeroPoint)
        return cls(10.0 ** ((31.4 - zp) / 2.5))

    @property
    def calibrationMean(self) -> float:
        """Flux density in nJy of one count."""
        return self._calibrationMean

    def getCalibrationMean(self) -> float:
        """Return nJy per count."""
        return self._calibrationMean

    def instFluxToNanojansky(self, instFlux: Any) -> Any:
        """Convert instrumental flux (counts; number, array or `Image`) to nJy."""
        return _scaleValues(instFlux, self._calibrationMean)

    def nanojanskyToInstFlux(self, flux: Any) -> Any:
        """Convert flux density in nJy (number, array or `Image`) to counts."""
        return _scaleValues(flux, 1.0 / self._calibrationMean)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhotoCalib) and other._calibrationMean == self._calibrationMean

    def __hash__(self) -> int:
        return hash(("PhotoCalib", self._calibrationMean))

    def __repr__(self) -> str:
        return f"PhotoCalib(calibrationMean={self._calibrationMean!r})"
