"""Statistics of masked pixels: `StatisticsControl` (bad mask planes, sigma clipping)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .._validate import asInt, asPositiveFloat
from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from .geometry import Box
from .pixels import BAD_MASK_PLANES, Image, Mask

__all__ = ["StatisticsControl"]


class StatisticsControl:
    """Which mask planes exclude pixels from statistics, and how to sigma-clip.

    Parameters
    ----------
    badMaskPlanes : iterable of str, optional
        Mask planes whose pixels are left out.
    numSigmaClip : float, optional
        Clipping threshold, in standard deviations.
    numIter : int, optional
        Maximum number of clipping iterations (0: no clipping).

    Notes
    -----
    Each iteration keeps the pixels within ``numSigmaClip`` standard deviations of the
    median of the pixels kept so far and stops early when nothing changes; the mean and
    population standard deviation (ddof=0) of the survivors are returned. This is the
    algorithm of `astropy.stats.sigma_clipped_stats` with its default median centre and
    ``maxiters=numIter``.
    """

    def __init__(
        self,
        badMaskPlanes: Iterable[str] = BAD_MASK_PLANES,
        numSigmaClip: float = 3.0,
        numIter: int = 2,
    ) -> None:
        if isinstance(badMaskPlanes, str):
            badMaskPlanes = (badMaskPlanes,)
        self.badMaskPlanes = tuple(badMaskPlanes)
        for name in self.badMaskPlanes:
            if not isinstance(name, str):
                raise DcrTypeError("badMaskPlanes must be plane names (strings)", name=name)
        self.numSigmaClip = asPositiveFloat(numSigmaClip, "numSigmaClip", "standard deviations")
        self.numIter = asInt(numIter, "numIter")
        if self.numIter < 0:
            raise DcrValueError("numIter must be >= 0", numIter=numIter)

    def getAndMask(self, mask: Mask) -> int:
        """Return the bits of the bad planes that ``mask`` defines (others are skipped)."""
        if not isinstance(mask, Mask):
            raise DcrTypeError("getAndMask needs a Mask", mask=type(mask).__name__)
        planes = mask.planes
        value = 0
        for name in self.badMaskPlanes:
            if name in planes:
                value |= 1 << planes[name]
        return value

    def clippedStats(
        self,
        array: np.ndarray | Image,
        maskArray: np.ndarray | None = None,
        mask: Mask | None = None,
    ) -> tuple[float, float]:
        """Return the sigma-clipped mean and standard deviation of the good pixels.

        Parameters
        ----------
        array : numpy.ndarray or Image
            Pixel values.
        maskArray : numpy.ndarray of int, optional
            Mask bits with the default plane layout (`DEFAULT_MASK_PLANES`).
        mask : Mask, optional
            A mask with its own planes (give ``maskArray`` or ``mask``, not both).

        Returns
        -------
        mean, std : float
            Statistics of the unmasked, finite, unclipped pixels; NaN when no pixel is
            left.
        """
        values = array.array if isinstance(array, Image) else np.asarray(array, dtype=np.float64)
        if maskArray is not None and mask is not None:
            raise DcrValueError("give maskArray or mask, not both")
        good = np.isfinite(values)
        if mask is not None:
            if not isinstance(mask, Mask):
                raise DcrTypeError("mask must be a Mask", mask=type(mask).__name__)
            bits, maskValues = self.getAndMask(mask), mask.array
        elif maskArray is not None:
            maskValues = np.asarray(maskArray)
            bits = self.getAndMask(Mask.fromBox(Box(0, 0, 0, 0)))
        else:
            maskValues, bits = None, 0
        if maskValues is not None:
            if maskValues.shape != values.shape:
                raise DcrShapeError(
                    f"array shape {values.shape} and mask shape {maskValues.shape} must match",
                    arrayShape=values.shape,
                    maskShape=maskValues.shape,
                )
            good &= (maskValues & bits) == 0
        data = values[good].astype(np.float64)
        for _ in range(self.numIter):
            if data.size == 0:
                break
            centre = np.median(data)
            std = data.std()
            keep = np.abs(data - centre) <= self.numSigmaClip * std
            if keep.all():
                break
            data = data[keep]
        if data.size == 0:
            return (math.nan, math.nan)
        return (float(data.mean()), float(data.std()))

    def __repr__(self) -> str:
        return (
            f"StatisticsControl(badMaskPlanes={self.badMaskPlanes!r}, "
            f"numSigmaClip={self.numSigmaClip!r}, numIter={self.numIter!r})"
        )
