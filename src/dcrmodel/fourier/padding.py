"""Padding for Fourier-space DCR: grids on which shifts never wrap, embedding and cropping.

Images are embedded in a larger, FFT-friendly array (`paddedShape`) and the margin is filled
by extending the edges (`padToShape`), so that what a shift moves out of one side never wraps
around into the other; `cropFromPadded` takes the image back out. `maxShiftOf` gives the
largest shift a set of DCR shifts needs, `allowedShift` the largest a padded grid holds, and
`fillBadPixels` fills unusable pixels before a transform.

Conventions: arrays are ``(y, x)``, shifts ``(dy, dx)`` and sizes in pixels.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage

from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from .transfer import checkShape

__all__ = [
    "maxShiftOf",
    "paddedShape",
    "allowedShift",
    "padToShape",
    "cropFromPadded",
    "fillBadPixels",
]

#: Extra pixels kept on each side beyond the largest shift: the Fourier interpolation kernel
#: of a sub-pixel shift has tails, and this keeps the fill at the far edge of the margin (where
#: the two extended edges meet) away from the image.
_WRAP_MARGIN = 8

_PAD_MODES = ("edge", "reflect", "symmetric", "constant")


# ---------------------------------------------------------------------------------------------
# Shifts a grid must hold
# ---------------------------------------------------------------------------------------------


def maxShiftOf(dcrShifts: Any) -> tuple[float, float]:
    """Return the largest ``|dy|`` and ``|dx|`` (pixels) over any nesting of shifts.

    Parameters
    ----------
    dcrShifts : sequence
        Shifts ``(dy, dx)`` at any depth: one visit's per-subfilter DCR, or a list of visits'.

    Returns
    -------
    maxShift : tuple of float
        ``(max |dy|, max |dx|)`` in pixels.
    """
    try:
        array = np.asarray(dcrShifts, dtype=float)
    except (TypeError, ValueError) as error:
        raise DcrTypeError(
            "shifts must be nested sequences of (dy, dx) floats", shifts=dcrShifts
        ) from error
    if array.ndim < 1 or array.shape[-1] != 2:
        raise DcrShapeError("shifts must end in (dy, dx) pairs", shape=array.shape)
    if not np.all(np.isfinite(array)):
        raise DcrValueError("shifts must be finite (pixels)", shifts=dcrShifts)
    flat = np.abs(array.reshape(-1, 2))
    if flat.size == 0:
        return 0.0, 0.0
    return float(flat[:, 0].max()), float(flat[:, 1].max())


# ---------------------------------------------------------------------------------------------
# Padded grids
# ---------------------------------------------------------------------------------------------


def asMaxShift(maxShift: Any) -> tuple[float, float]:
    """Return ``maxShift`` (a number or a (dy, dx) pair, pixels) as two floats >= 0.

    Raises
    ------
    DcrTypeError, DcrValueError
        Not numbers; negative or non-finite values.
    """
    try:
        values = np.broadcast_to(np.asarray(maxShift, dtype=float), (2,))
    except (TypeError, ValueError) as error:
        raise DcrTypeError(
            "maxShift must be a number or a (dy, dx) pair, in pixels", maxShift=maxShift
        ) from error
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise DcrValueError("maxShift must be finite and >= 0 (pixels)", maxShift=maxShift)
    return float(values[0]), float(values[1])


def psfHalf(psfSize: Any) -> int:
    """Return half the width ``psfSize // 2`` (pixels) of a kernel of width ``psfSize`` >= 0."""
    if not isinstance(psfSize, numbers.Integral) or isinstance(psfSize, bool) or psfSize < 0:
        raise DcrValueError(
            "psfSize must be an int >= 0 (pixels, the PSF kernel width)", psfSize=psfSize
        )
    return int(psfSize) // 2


def paddedShape(shape: tuple[int, int], maxShift: Any, psfSize: int = 0) -> tuple[int, int]:
    """Choose an FFT-friendly padded shape in which shifts up to ``maxShift`` never wrap.

    The image sits in the middle of the padded array; each side gets at least
    ``ceil(maxShift) + psfSize // 2 + 8`` pixels (8 pixels for the tails of the Fourier
    interpolation kernel), and each axis is rounded up with ``scipy.fft.next_fast_len``.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image.
    maxShift : float or tuple of float
        Largest ``|dy|`` and ``|dx|`` to support, in pixels (one number for both axes).
    psfSize : int, optional
        Width in pixels of a convolution kernel applied on top of the shifts (for example a
        PSF-matching kernel); 0 when there is none.

    Returns
    -------
    padded : tuple of int
        ``(ny, nx)`` of the padded array.

    Raises
    ------
    DcrValueError
        Non-positive shape, negative or non-finite maxShift, negative psfSize.
    """
    ny, nx = checkShape(shape)
    maxDy, maxDx = asMaxShift(maxShift)
    half = psfHalf(psfSize)
    out = []
    for n, s in ((ny, maxDy), (nx, maxDx)):
        side = math.ceil(s) + half + _WRAP_MARGIN
        out.append(scipy.fft.next_fast_len(n + 2 * side, real=True))
    return out[0], out[1]


def _offsets(shape: tuple[int, int], padded: tuple[int, int]) -> tuple[int, int]:
    return (padded[0] - shape[0]) // 2, (padded[1] - shape[1]) // 2


def allowedShift(
    shape: tuple[int, int], padded: tuple[int, int], psfSize: int = 0
) -> tuple[float, float]:
    """Return the largest ``(|dy|, |dx|)`` (pixels) that ``padded`` holds for ``shape``.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the image.
    padded : tuple of int
        ``(ny, nx)`` of the padded array.
    psfSize : int, optional
        Width of an additional convolution kernel, pixels.

    Returns
    -------
    maxShift : tuple of float
        ``(max |dy|, max |dx|)`` in pixels.
    """
    shape = checkShape(shape)
    padded = checkShape(padded, "padded")
    if padded[0] < shape[0] or padded[1] < shape[1]:
        raise DcrShapeError("padded shape is smaller than the image", shape=shape, padded=padded)
    half = psfHalf(psfSize)
    by, bx = _offsets(shape, padded)
    return float(by - half - _WRAP_MARGIN), float(bx - half - _WRAP_MARGIN)


def checkFits(maxShift: tuple[float, float], allowed: tuple[float, float]) -> None:
    """Raise `DcrValueError` if ``maxShift`` (pixels) exceeds the ``allowed`` shift."""
    if maxShift[0] > allowed[0] or maxShift[1] > allowed[1]:
        raise DcrValueError(
            "DCR shifts exceed the padding of the Fourier grid, so the template would wrap "
            "around the edges; build the engine (or paddedShape) with a maxShift at least as "
            "large as the largest shift",
            largestShift=maxShift,
            allowedShift=allowed,
        )


def checkPadMode(padMode: Any) -> str:
    """Return ``padMode`` if `padToShape` knows it, else raise `DcrValueError`."""
    if padMode not in _PAD_MODES:
        raise DcrValueError(f"padMode must be one of {', '.join(_PAD_MODES)}", padMode=padMode)
    return padMode


def padToShape(array: np.ndarray, padded: tuple[int, int], padMode: str = "edge") -> np.ndarray:
    """Embed ``array`` in the middle of an array of shape ``padded``.

    Parameters
    ----------
    array : `numpy.ndarray`
        2-D image.
    padded : tuple of int
        ``(ny, nx)`` of the result (at least the image's shape).
    padMode : {"edge", "reflect", "symmetric", "constant"}, optional
        How the margin is filled (``numpy.pad`` modes; ``"constant"`` fills zeros). The default
        ``"edge"`` extends the edge values, as the spline engine's ``mode="nearest"`` does.

    Returns
    -------
    padded : `numpy.ndarray`
        New array of shape ``padded``, same dtype.
    """
    checkPadMode(padMode)
    shape = array.shape
    if len(shape) != 2:
        raise DcrShapeError("padToShape needs a 2-D array", shape=shape)
    padded = checkShape(padded, "padded")
    if padded[0] < shape[0] or padded[1] < shape[1]:
        raise DcrShapeError("padded shape is smaller than the image", shape=shape, padded=padded)
    by, bx = _offsets(shape, padded)
    widths = ((by, padded[0] - shape[0] - by), (bx, padded[1] - shape[1] - bx))
    return np.pad(array, widths, mode=padMode)


def cropFromPadded(padded: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return the view of ``padded`` where `padToShape` put an image of ``shape``.

    Parameters
    ----------
    padded : `numpy.ndarray`
        Array whose last two axes are the padded grid.
    shape : tuple of int
        ``(ny, nx)`` of the image.

    Returns
    -------
    view : `numpy.ndarray`
        View of shape ``(..., ny, nx)``.
    """
    shape = checkShape(shape)
    by, bx = _offsets(shape, padded.shape[-2:])
    return padded[..., by : by + shape[0], bx : bx + shape[1]]


def fillBadPixels(array: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Return a copy of ``array`` with bad pixels replaced by their nearest good neighbour.

    Parameters
    ----------
    array : `numpy.ndarray`
        2-D image (may hold NaNs at bad pixels).
    bad : `numpy.ndarray`
        Boolean array of the same shape, True where ``array`` must not be used.

    Returns
    -------
    filled : `numpy.ndarray`
        Copy of ``array`` without bad values (nearest-neighbour fill, from
        ``scipy.ndimage.distance_transform_edt``).

    Raises
    ------
    DcrValueError
        Every pixel is bad.
    """
    if not bad.any():
        return array.copy()
    if bad.all():
        raise DcrValueError("every pixel is masked; there is nothing to fill from")
    _, (iy, ix) = ndimage.distance_transform_edt(bad, return_distances=True, return_indices=True)
    return array[iy, ix]
