"""Statistics of masked pixels: `StatisticsControl` (bad mask planes, sigma clipping)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .._validate import asInt, asPositiveFloat
from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from .geometry import Box
from .pixels import BAD_MASK_PLANES, DEFAULT_MASK_PLANES, Image, Mask

__all__ = ["StatisticsControl"]


def _asBool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise DcrTypeError(f"{name} must be True or False", **{name: value})
    return bool(value)


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

    Scripts written for ``lsst.afw.math.StatisticsControl`` work unchanged: the setters
    ``setNumSigmaClip``, ``setNumIter``, ``setAndMask``, ``setNanSafe``, ``setWeighted``
    and ``setCalcErrorFromInputVariance`` and their getters without arguments. An and-mask
    given as an integer is read in the default plane layout (`DEFAULT_MASK_PLANES`).

    Examples
    --------
    >>> from dcrmodel.image import Mask, StatisticsControl
    >>> ctrl = StatisticsControl()
    >>> ctrl.setNumSigmaClip(5.0)
    >>> ctrl.setAndMask(Mask.fromBox(Box(0, 0, 1, 1)).getPlaneBitMask(["BAD", "SAT"]))
    >>> ctrl.getNumSigmaClip(), ctrl.badMaskPlanes, ctrl.getAndMask()
    (5.0, ('BAD', 'SAT'), 3)
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
        self.nanSafe = True
        self.weighted = False
        self.calcErrorFromInputVariance = False

    # -- the afw-style accessors ---------------------------------------------------------
    def setNumSigmaClip(self, numSigmaClip: float) -> None:
        """Set the clipping threshold, in standard deviations."""
        self.numSigmaClip = asPositiveFloat(numSigmaClip, "numSigmaClip", "standard deviations")

    def getNumSigmaClip(self) -> float:
        """Return the clipping threshold, in standard deviations."""
        return self.numSigmaClip

    def setNumIter(self, numIter: int) -> None:
        """Set the maximum number of clipping iterations (0: no clipping)."""
        value = asInt(numIter, "numIter")
        if value < 0:
            raise DcrValueError("numIter must be >= 0", numIter=numIter)
        self.numIter = value

    def getNumIter(self) -> int:
        """Return the maximum number of clipping iterations."""
        return self.numIter

    def setAndMask(self, andMask: int | str | Iterable[str]) -> None:
        """Set the bad mask planes, as plane names or as bits of the default layout.

        Parameters
        ----------
        andMask : int, str or iterable of str
            An integer is the OR of ``1 << bit`` over planes of `DEFAULT_MASK_PLANES`
            (as ``Mask.getPlaneBitMask`` gives it for a mask with the default planes).

        Raises
        ------
        DcrValueError
            If the integer sets a bit that no default plane has.
        """
        if isinstance(andMask, (int, np.integer)) and not isinstance(andMask, (bool, np.bool_)):
            bits = int(andMask)
            names = tuple(n for n, b in DEFAULT_MASK_PLANES.items() if bits & (1 << b))
            known = sum(1 << DEFAULT_MASK_PLANES[n] for n in names)
            if bits < 0 or bits != known:
                raise DcrValueError(
                    "andMask sets bits that no default mask plane has; give plane names "
                    "for a mask with other planes",
                    andMask=andMask,
                )
            self.badMaskPlanes = names
            return
        planes = (andMask,) if isinstance(andMask, str) else tuple(andMask)
        for name in planes:
            if not isinstance(name, str):
                raise DcrTypeError("andMask must be an integer or plane names", name=name)
        self.badMaskPlanes = planes

    def setNanSafe(self, nanSafe: bool) -> None:
        """Leave non-finite pixels out (True, the default) or let them make the result NaN."""
        self.nanSafe = _asBool(nanSafe, "nanSafe")

    def getNanSafe(self) -> bool:
        """Return whether non-finite pixels are left out."""
        return self.nanSafe

    def setWeighted(self, weighted: bool) -> None:
        """Weight the mean by inverse variance when `clippedStats` is given a variance."""
        self.weighted = _asBool(weighted, "weighted")

    def getWeighted(self) -> bool:
        """Return whether the mean is weighted by inverse variance."""
        return self.weighted

    def setCalcErrorFromInputVariance(self, calcError: bool) -> None:
        """Give the noise level from the input variance instead of the pixels' scatter."""
        self.calcErrorFromInputVariance = _asBool(calcError, "calcErrorFromInputVariance")

    def getCalcErrorFromInputVariance(self) -> bool:
        """Return whether the noise level comes from the input variance."""
        return self.calcErrorFromInputVariance

    def getAndMask(self, mask: Mask | None = None) -> int:
        """Return the bits of the bad planes that ``mask`` defines (others are skipped).

        Without a mask, the bits in the default plane layout (`DEFAULT_MASK_PLANES`).
        """
        if mask is None:
            return sum(1 << DEFAULT_MASK_PLANES[n] for n in set(self.badMaskPlanes)
                       if n in DEFAULT_MASK_PLANES)
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
        variance: np.ndarray | Image | None = None,
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
        variance : numpy.ndarray or Image, optional
            Variance of each pixel (pixel value units squared). Used with ``weighted``
            (inverse-variance weighted mean of the survivors) and
            ``calcErrorFromInputVariance`` (``std`` is the square root of the survivors'
            mean variance); ignored otherwise.

        Returns
        -------
        mean, std : float
            Statistics of the unmasked, finite, unclipped pixels; NaN when no pixel is
            left, or when ``nanSafe`` is False and an unmasked pixel is not finite.
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
        if not self.nanSafe and not np.isfinite(values[(maskValues & bits) == 0]
                                                if maskValues is not None else values).all():
            return (math.nan, math.nan)
        varianceValues = None
        if variance is not None and (self.weighted or self.calcErrorFromInputVariance):
            varianceValues = (variance.array if isinstance(variance, Image)
                              else np.asarray(variance, dtype=np.float64))
            if varianceValues.shape != values.shape:
                raise DcrShapeError(
                    f"array shape {values.shape} and variance shape {varianceValues.shape} "
                    "must match",
                    arrayShape=values.shape,
                    varianceShape=varianceValues.shape,
                )
            good &= np.isfinite(varianceValues) & (varianceValues > 0)
        data = values[good].astype(np.float64)
        kept = np.arange(data.size)
        for _ in range(self.numIter):
            if kept.size == 0:
                break
            centre = np.median(data[kept])
            std = data[kept].std()
            keep = np.abs(data[kept] - centre) <= self.numSigmaClip * std
            if keep.all():
                break
            kept = kept[keep]
        if kept.size == 0:
            return (math.nan, math.nan)
        survivors = data[kept]
        mean, std = float(survivors.mean()), float(survivors.std())
        if varianceValues is not None:
            var = varianceValues[good].astype(np.float64)[kept]
            if self.weighted:
                mean = float(np.sum(survivors / var) / np.sum(1.0 / var))
            if self.calcErrorFromInputVariance:
                std = float(np.sqrt(var.mean()))
        return (mean, std)

    def __repr__(self) -> str:
        return (
            f"StatisticsControl(badMaskPlanes={self.badMaskPlanes!r}, "
            f"numSigmaClip={self.numSigmaClip!r}, numIter={self.numIter!r})"
        )
