"""Fourier-space DCR: transfer functions of shifts and smears, and a template engine.

A translation by ``s = (dy, dx)`` pixels is a phase ramp in Fourier space, ``exp(-2 pi i f.s)``
(``f`` in cycles per pixel), so a DCR-matched template, the sum over subfilters of each
subfilter's model image moved by its DCR, is one inverse FFT of the sum of the model's
transforms times their ramps. Within one visit a subfilter's light is not moved by one shift:
DCR spreads it along the zenith direction between the shifts ``s0`` and ``s1`` of the
subfilter's two wavelength edges. A uniform smear between ``s0`` and ``s1`` has the exact
transfer function

    H(f) = exp(-2 pi i f.(s0 + s1)/2) * sinc(f.(s1 - s0)),

with numpy's normalised ``sinc(u) = sin(pi u) / (pi u)``. The reference pipelines use the
mean shift (subfilters not split), or the average of two images moved to the subfilter's
quarter points ``0.75 s0 + 0.25 s1`` and ``0.25 s0 + 0.75 s1`` (split subfilters). All three
are available here, on the frequency grid of ``scipy.fft.rfft2`` of a padded array.

Conventions: arrays are ``(y, x)``, shifts ``(dy, dx)`` in pixels, and a positive shift moves
the content toward larger indices, as ``scipy.ndimage.shift`` does. Images are embedded in a
larger, FFT-friendly array (`paddedShape`) and the margin is filled by extending the edges, so
that what leaves one side never wraps around into the other.

References
----------
R. N. Bracewell (2000), *The Fourier Transform and Its Applications*, 3rd ed., McGraw-Hill:
shift theorem and the transform of a box (rect -> sinc).
I. Sullivan, DMTN-037, "DCR-matched template generation", https://dmtn-037.lsst.io
(the mean and quarter-point subfilter shifts of the reference algorithm).
"""

from __future__ import annotations

import logging
import math
import numbers
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage

from ..errors import DcrShapeError, DcrTypeError, DcrValueError

__all__ = [
    "TRANSFER_MODES",
    "frequencyGrid",
    "shiftTransfer",
    "smearTransfer",
    "splitTransfer",
    "subfilterTransfer",
    "visitTransfers",
    "dcrShiftArray",
    "hermitianize",
    "maxShiftOf",
    "paddedShape",
    "allowedShift",
    "padToShape",
    "cropFromPadded",
    "applyTransfer",
    "fourierShift",
    "fillBadPixels",
    "FourierTemplateEngine",
]

_log = logging.getLogger(__name__)

#: The representations of a subfilter's light in one visit: ``"mean"`` (one shift, the mean of
#: the edge shifts), ``"split"`` (average of the two quarter-point shifts, the reference's split
#: subfilters) and ``"smear"`` (uniform smear between the two edge shifts, exact for a flat
#: spectrum within the subfilter and refraction linear in wavelength).
TRANSFER_MODES = ("mean", "split", "smear")

#: Extra pixels kept on each side beyond the largest shift: the Fourier interpolation kernel
#: of a sub-pixel shift has tails, and this keeps the fill at the far edge of the margin (where
#: the two extended edges meet) away from the image.
_WRAP_MARGIN = 8

_PAD_MODES = ("edge", "reflect", "symmetric", "constant")


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------


def _checkShape(shape: Any, name: str = "shape") -> tuple[int, int]:
    """Return ``shape`` as a pair of positive ints ``(ny, nx)``."""
    try:
        values = tuple(shape)
    except TypeError as error:
        raise DcrTypeError(
            f"{name} must be a pair of positive ints (ny, nx)", **{name: shape}
        ) from error
    if len(values) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise DcrValueError(f"{name} must be a pair of positive ints (ny, nx)", **{name: shape})
    return int(values[0]), int(values[1])


def _asShift(value: Any, name: str) -> np.ndarray:
    """Return one shift ``(dy, dx)`` as a finite float array of shape (2,)."""
    try:
        shift = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise DcrTypeError(
            f"{name} must be a (dy, dx) pair of floats in pixels", **{name: value}
        ) from error
    if shift.shape != (2,):
        raise DcrShapeError(
            f"{name} must be one (dy, dx) pair of floats in pixels", **{name: value}
        )
    if not np.all(np.isfinite(shift)):
        raise DcrValueError(f"{name} must be finite (pixels)", **{name: value})
    return shift


def _asEdges(value: Any, name: str) -> np.ndarray:
    """Return a subfilter's edge shifts ``((dy0, dx0), (dy1, dx1))`` as a (2, 2) float array."""
    try:
        edges = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise DcrTypeError(
            f"{name} must be the two edge shifts ((dy0, dx0), (dy1, dx1)) in pixels",
            **{name: value},
        ) from error
    if edges.shape != (2, 2):
        raise DcrShapeError(
            f"{name} must be the two edge shifts ((dy0, dx0), (dy1, dx1)) in pixels, as "
            "calculateDcr(..., splitSubfilters=True) returns",
            **{name: value},
        )
    if not np.all(np.isfinite(edges)):
        raise DcrValueError(f"{name} must be finite (pixels)", **{name: value})
    return edges


def _checkMode(mode: Any) -> str:
    if mode not in TRANSFER_MODES:
        raise DcrValueError(
            f"unknown transfer mode; use one of {', '.join(TRANSFER_MODES)}", mode=mode
        )
    return mode


def _complexDtype(dtype: Any) -> np.dtype:
    """Return the complex dtype (complex64 or complex128) matching ``dtype``."""
    dt = np.dtype(dtype)
    if dt in (np.dtype(np.complex64), np.dtype(np.float32)):
        return np.dtype(np.complex64)
    if dt in (np.dtype(np.complex128), np.dtype(np.float64)):
        return np.dtype(np.complex128)
    raise DcrTypeError("dtype must be float32/complex64 or float64/complex128", dtype=dtype)


def _realDtype(complexDtype: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if complexDtype == np.complex64 else np.dtype(np.float64)


# ---------------------------------------------------------------------------------------------
# Transfer functions
# ---------------------------------------------------------------------------------------------


def frequencyGrid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Return the spatial frequencies of the ``rfft2`` grid of a real array of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) array.

    Returns
    -------
    fy : `numpy.ndarray`
        Frequencies along y, cycles per pixel, shape ``(ny, 1)`` (``scipy.fft.fftfreq``).
    fx : `numpy.ndarray`
        Frequencies along x, cycles per pixel, shape ``(1, nx // 2 + 1)``
        (``scipy.fft.rfftfreq``).
    """
    ny, nx = _checkShape(shape)
    return scipy.fft.fftfreq(ny)[:, None], scipy.fft.rfftfreq(nx)[None, :]


def hermitianize(transfer: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Make a transfer function describe a real operator exactly, in place.

    ``irfft2`` keeps only the Hermitian part of the columns at ``fx = 0`` and, for even
    ``nx``, at the Nyquist frequency ``fx = 1/2``, whose coefficients are their own partners.
    There the transfer that actually acts is ``(H(k) + conj(H(-k))) / 2`` (for a phase ramp at
    a Nyquist frequency: ``cos(pi s)`` instead of ``exp(-i pi s)``). Replacing ``H`` by that
    value on those columns makes ``H`` act on the stored coefficients as a diagonal real
    operator whose adjoint is ``conj(H)``, which the direct solver's per-frequency normal
    equations rely on. Integer shifts are unchanged (their Nyquist factor is already +-1).

    Parameters
    ----------
    transfer : `numpy.ndarray`
        Complex array of shape ``(..., ny, nx // 2 + 1)``; modified in place.
    shape : tuple of int
        ``(ny, nx)`` of the real-space array.

    Returns
    -------
    transfer : `numpy.ndarray`
        The same array.
    """
    ny, nx = _checkShape(shape)
    if transfer.shape[-2:] != (ny, nx // 2 + 1):
        raise DcrShapeError(
            "transfer does not match the rfft2 grid of shape (ny, nx // 2 + 1)",
            transferShape=transfer.shape,
            shape=shape,
        )
    partner = (-np.arange(ny)) % ny
    columns = [0] if nx % 2 else [0, nx // 2]
    for column in columns:
        values = transfer[..., :, column]
        values[...] = 0.5 * (values + np.conj(values[..., partner]))
    return transfer


def _aliasAveraged(
    transfer: np.ndarray, shape: tuple[int, int], function: Callable[..., np.ndarray]
) -> np.ndarray:
    """Replace the Nyquist row/column of ``transfer`` by the average over their aliases.

    On an even axis the Nyquist coefficient stands for both ``f = -1/2`` and ``f = +1/2``
    (numpy labels it -1/2 along y and +1/2 along x). Using one label would make the operator
    act on the pair of frequencies asymmetrically; averaging the analytic transfer over the
    aliases makes it symmetric, Hermitian-consistent (a real operator, see `hermitianize`) and,
    for a shift, equal to ``cos(pi s)`` there: +-1, exact, for whole-pixel shifts.
    ``function(fy, fx)`` evaluates the analytic transfer (broadcasting).
    """
    ny, nx = shape
    fy, fx = frequencyGrid(shape)
    if ny % 2 == 0:
        transfer[ny // 2, :] = 0.5 * (function(-0.5, fx[0]) + function(0.5, fx[0]))
    if nx % 2 == 0:
        column = 0.5 * (function(fy[:, 0], -0.5) + function(fy[:, 0], 0.5))
        if ny % 2 == 0:
            column[ny // 2] = 0.25 * sum(function(a, b) for a in (-0.5, 0.5) for b in (-0.5, 0.5))
        transfer[:, -1] = column
    return transfer


def _rampFunction(shift: np.ndarray) -> Callable[..., np.ndarray]:
    def function(fy: Any, fx: Any) -> np.ndarray:
        return np.exp(-2j * np.pi * (np.multiply(fy, shift[0]) + np.multiply(fx, shift[1])))

    return function


def _ramp(
    shape: tuple[int, int], shift: np.ndarray, cdtype: np.dtype, out: np.ndarray | None = None
) -> np.ndarray:
    """Phase ramp on the standard rfft2 grid (separable: outer product of two 1-D ramps)."""
    fy, fx = frequencyGrid(shape)
    ey = np.exp(-2j * np.pi * fy[:, 0] * shift[0]).astype(cdtype)
    ex = np.exp(-2j * np.pi * fx[0] * shift[1]).astype(cdtype)
    return np.multiply(ey[:, None], ex[None, :], out=out)


def _projected(shape: tuple[int, int], vector: np.ndarray, rdtype: np.dtype) -> np.ndarray:
    """Return ``pi f . vector`` on the rfft2 grid (radians), shape ``(ny, nx // 2 + 1)``.

    Computed as one outer sum of the two 1-D terms, in ``rdtype``.
    """
    fy, fx = frequencyGrid(shape)
    return np.add.outer(
        (np.pi * vector[0] * fy[:, 0]).astype(rdtype), (np.pi * vector[1] * fx[0]).astype(rdtype)
    )


def _sincOfPhase(phase: np.ndarray) -> np.ndarray:
    """Return ``sin(x) / x`` (1 at 0) of an array of radians, overwriting it.

    Works in the array's own precision with one temporary, which matters on large grids:
    ``numpy.sinc`` takes several float64-sized passes.
    """
    value = np.sin(phase)
    zero = phase == 0
    phase[zero] = 1.0
    value[zero] = 1.0
    value /= phase
    return value


def _smearEnvelope(phase: np.ndarray) -> np.ndarray:
    return _sincOfPhase(phase)


def _segmentTransfer(
    shape: tuple[int, int],
    edges: np.ndarray,
    cdtype: np.dtype,
    envelope: Callable,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Mean-shift ramp times a real even ``envelope(pi f . (s1 - s0))``, alias-averaged.

    Written into ``out`` (complex, of the rfft2 grid) when given.
    """
    mean = edges.mean(axis=0)
    width = edges[1] - edges[0]
    transfer = _ramp(shape, mean, cdtype, out=out)
    if np.any(width != 0):
        transfer *= envelope(_projected(shape, width, _realDtype(cdtype)))
    ramp = _rampFunction(mean)

    def function(fy: Any, fx: Any) -> np.ndarray:
        phase = np.pi * (np.multiply(fy, width[0]) + np.multiply(fx, width[1]))
        values = envelope(np.array(phase, dtype=np.float64, ndmin=1))
        return ramp(fy, fx) * values.reshape(np.shape(phase))

    return _aliasAveraged(transfer, shape, function)


def _splitEnvelope(phase: np.ndarray) -> np.ndarray:
    phase *= 0.5
    return np.cos(phase, out=phase)


def shiftTransfer(
    shape: tuple[int, int], shift: Sequence[float], dtype: Any = np.complex128
) -> np.ndarray:
    """Transfer function of a translation: ``exp(-2 pi i f.s)`` on the rfft2 grid.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) array.
    shift : tuple of float
        ``(dy, dx)`` in pixels; the content moves by ``+shift`` (``scipy.ndimage.shift``).
    dtype : dtype, optional
        ``complex128`` (default) or ``complex64``.

    Returns
    -------
    transfer : `numpy.ndarray`
        Complex array of shape ``(ny, nx // 2 + 1)``. On an even axis the Nyquist coefficient
        gets the average over its two aliases ``f = +-1/2`` (``cos(pi s)`` instead of
        ``exp(-+i pi s)``), which makes the operator real and symmetric (`hermitianize`).
    """
    shape = _checkShape(shape)
    cdtype = _complexDtype(dtype)
    value = _asShift(shift, "shift")
    return _aliasAveraged(_ramp(shape, value, cdtype), shape, _rampFunction(value))


def smearTransfer(
    shape: tuple[int, int], edgeShifts: Sequence[Sequence[float]], dtype: Any = np.complex128
) -> np.ndarray:
    """Transfer function of a uniform smear along the segment from ``s0`` to ``s1``.

    ``H(f) = exp(-2 pi i f.(s0 + s1)/2) * sinc(f.(s1 - s0))``: the Fourier transform of a unit
    line segment (a box along its direction) centred on the mean shift. This is exactly what a
    subfilter does to its light when its spectrum is flat across the subfilter and the
    differential refraction is linear in wavelength between its edges. With ``s0 == s1`` it is
    the shift ramp.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) array.
    edgeShifts : sequence
        ``((dy0, dx0), (dy1, dx1))``: the shifts of the subfilter's two wavelength edges, in
        pixels (``calculateDcr(..., splitSubfilters=True)``).
    dtype : dtype, optional
        ``complex128`` (default) or ``complex64``.

    Returns
    -------
    transfer : `numpy.ndarray`
        Complex array of shape ``(ny, nx // 2 + 1)``.
    """
    shape = _checkShape(shape)
    cdtype = _complexDtype(dtype)
    return _segmentTransfer(shape, _asEdges(edgeShifts, "edgeShifts"), cdtype, _smearEnvelope)


def splitTransfer(
    shape: tuple[int, int], edgeShifts: Sequence[Sequence[float]], dtype: Any = np.complex128
) -> np.ndarray:
    """Transfer function of the reference's split subfilters: mean of two quarter-point ramps.

    The average of the ramps of ``q0 = 0.75 s0 + 0.25 s1`` and ``q1 = 0.25 s0 + 0.75 s1``,
    computed as ``exp(-2 pi i f.(s0 + s1)/2) * cos(pi f.(s1 - s0) / 2)`` (the two ramps are
    the mean ramp times ``exp(+-i pi f.(s1 - s0) / 2)``).

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) array.
    edgeShifts : sequence
        ``((dy0, dx0), (dy1, dx1))``, the subfilter's edge shifts in pixels.
    dtype : dtype, optional
        ``complex128`` (default) or ``complex64``.

    Returns
    -------
    transfer : `numpy.ndarray`
        Complex array of shape ``(ny, nx // 2 + 1)``.
    """
    shape = _checkShape(shape)
    cdtype = _complexDtype(dtype)
    return _segmentTransfer(shape, _asEdges(edgeShifts, "edgeShifts"), cdtype, _splitEnvelope)


def subfilterTransfer(
    shape: tuple[int, int], dcr: Any, mode: str = "smear", dtype: Any = np.complex128
) -> np.ndarray:
    """Transfer function of one subfilter in one visit.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) array.
    dcr : sequence
        The subfilter's DCR in pixels: its two edge shifts ``((dy0, dx0), (dy1, dx1))``
        (``calculateDcr(..., splitSubfilters=True)``), or, for ``mode="mean"`` only, one
        ``(dy, dx)`` shift (``calculateDcr(...)`` without split).
    mode : {"smear", "split", "mean"}, optional
        ``"smear"`` (default, `smearTransfer`), ``"split"`` (`splitTransfer`) or ``"mean"``
        (`shiftTransfer` of the mean of the edge shifts).
    dtype : dtype, optional
        ``complex128`` (default) or ``complex64``.

    Returns
    -------
    transfer : `numpy.ndarray`
        Complex array of shape ``(ny, nx // 2 + 1)``.

    Raises
    ------
    DcrValueError
        Unknown mode, or a single shift given for ``"split"``/``"smear"``.
    """
    mode = _checkMode(mode)
    array = np.asarray(dcr, dtype=float) if _isNumeric(dcr) else None
    if array is not None and array.shape == (2,):
        if mode != "mean":
            raise DcrValueError(
                f"mode {mode!r} needs the two edge shifts of each subfilter "
                "((dy0, dx0), (dy1, dx1)); compute them with calculateDcr(..., "
                "splitSubfilters=True), or use mode='mean'",
                dcr=dcr,
            )
        return shiftTransfer(shape, array, dtype)
    if mode == "mean":
        return shiftTransfer(shape, _asEdges(dcr, "dcr").mean(axis=0), dtype)
    if mode == "split":
        return splitTransfer(shape, dcr, dtype)
    return smearTransfer(shape, dcr, dtype)


def _isNumeric(value: Any) -> bool:
    try:
        np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return False
    return True


def dcrShiftArray(dcrShifts: Any, mode: str = "smear") -> np.ndarray:
    """Return one visit's per-subfilter DCR as an ``(N, 2, 2)`` array of edge shifts.

    Parameters
    ----------
    dcrShifts : sequence
        One DCR per subfilter, pixels: edge pairs ``((dy0, dx0), (dy1, dx1))``
        (``calculateDcr(..., splitSubfilters=True)``), or, for ``mode="mean"`` only, single
        ``(dy, dx)`` shifts (``calculateDcr(...)``), stored as two equal edges.
    mode : {"smear", "split", "mean"}, optional
        The representation the shifts are for.

    Returns
    -------
    edges : `numpy.ndarray`
        ``(N, 2, 2)`` float64: ``edges[k, e] = (dy, dx)`` of edge ``e`` of subfilter ``k``.

    Raises
    ------
    DcrValueError
        Unknown mode, non-finite shifts, single shifts for ``"split"``/``"smear"``.
    DcrShapeError
        Not one DCR per subfilter.
    """
    return _asDcrList(dcrShifts, _checkMode(mode))


def _asDcrList(dcrShifts: Any, mode: str, name: str = "dcrShifts") -> np.ndarray:
    """Return a visit's per-subfilter DCR as an (N, 2, 2) array of edge shifts (pixels).

    For ``mode="mean"`` single shifts ``(N, 2)`` are accepted and stored as equal edges.
    """
    try:
        array = np.asarray(dcrShifts, dtype=float)
    except (TypeError, ValueError) as error:
        raise DcrTypeError(
            f"{name} must hold one DCR per subfilter: edge pairs ((dy0, dx0), (dy1, dx1)) "
            "in pixels",
            **{name: dcrShifts},
        ) from error
    if array.ndim == 2 and array.shape[1] == 2:
        if mode != "mean":
            raise DcrValueError(
                f"mode {mode!r} needs the two edge shifts of each subfilter; compute them with "
                "calculateDcr(..., splitSubfilters=True), or use mode='mean'",
                shape=array.shape,
            )
        array = np.repeat(array[:, None, :], 2, axis=1)
    if array.ndim != 3 or array.shape[1:] != (2, 2) or array.shape[0] < 1:
        raise DcrShapeError(
            f"{name} must hold one DCR per subfilter, each ((dy0, dx0), (dy1, dx1)) in pixels "
            "(shape (N, 2, 2))",
            shape=array.shape,
        )
    if not np.all(np.isfinite(array)):
        raise DcrValueError(f"{name} must be finite (pixels)", **{name: dcrShifts})
    return array


def visitTransfers(
    shape: tuple[int, int], dcrShifts: Any, mode: str = "smear", dtype: Any = np.complex128
) -> np.ndarray:
    """Transfer functions of every subfilter in one visit, stacked.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) array.
    dcrShifts : sequence
        One DCR per subfilter (pixels), as `subfilterTransfer` takes them.
    mode : {"smear", "split", "mean"}, optional
        Representation of a subfilter's light (see `subfilterTransfer`).
    dtype : dtype, optional
        ``complex128`` (default) or ``complex64``.

    Returns
    -------
    transfers : `numpy.ndarray`
        Complex array of shape ``(N, ny, nx // 2 + 1)``.
    """
    shape = _checkShape(shape)
    mode = _checkMode(mode)
    edges = _asDcrList(dcrShifts, mode)
    cdtype = _complexDtype(dtype)
    out = np.empty((len(edges), shape[0], shape[1] // 2 + 1), dtype=cdtype)
    envelope = {"smear": _smearEnvelope, "split": _splitEnvelope}.get(mode)
    for k, edge in enumerate(edges):
        if envelope is None:  # "mean": the ramp of the mean shift
            _segmentTransfer(shape, np.repeat(edge.mean(axis=0)[None], 2, 0), cdtype,
                             _smearEnvelope, out=out[k])
        else:
            _segmentTransfer(shape, edge, cdtype, envelope, out=out[k])
    return out


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
# Padding
# ---------------------------------------------------------------------------------------------


def _asMaxShift(maxShift: Any) -> tuple[float, float]:
    """Return ``maxShift`` (a number or a (dy, dx) pair, pixels) as two floats >= 0."""
    try:
        values = np.broadcast_to(np.asarray(maxShift, dtype=float), (2,))
    except (TypeError, ValueError) as error:
        raise DcrTypeError(
            "maxShift must be a number or a (dy, dx) pair, in pixels", maxShift=maxShift
        ) from error
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise DcrValueError("maxShift must be finite and >= 0 (pixels)", maxShift=maxShift)
    return float(values[0]), float(values[1])


def _psfHalf(psfSize: Any) -> int:
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
    ny, nx = _checkShape(shape)
    maxDy, maxDx = _asMaxShift(maxShift)
    half = _psfHalf(psfSize)
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
    shape = _checkShape(shape)
    padded = _checkShape(padded, "padded")
    if padded[0] < shape[0] or padded[1] < shape[1]:
        raise DcrShapeError("padded shape is smaller than the image", shape=shape, padded=padded)
    half = _psfHalf(psfSize)
    by, bx = _offsets(shape, padded)
    return float(by - half - _WRAP_MARGIN), float(bx - half - _WRAP_MARGIN)


def _checkFits(maxShift: tuple[float, float], allowed: tuple[float, float]) -> None:
    if maxShift[0] > allowed[0] or maxShift[1] > allowed[1]:
        raise DcrValueError(
            "DCR shifts exceed the padding of the Fourier grid, so the template would wrap "
            "around the edges; build the engine (or paddedShape) with a maxShift at least as "
            "large as the largest shift",
            largestShift=maxShift,
            allowedShift=allowed,
        )


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
    if padMode not in _PAD_MODES:
        raise DcrValueError(f"padMode must be one of {', '.join(_PAD_MODES)}", padMode=padMode)
    shape = array.shape
    if len(shape) != 2:
        raise DcrShapeError("padToShape needs a 2-D array", shape=shape)
    padded = _checkShape(padded, "padded")
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
    shape = _checkShape(shape)
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


# ---------------------------------------------------------------------------------------------
# Single images
# ---------------------------------------------------------------------------------------------


def _floatImage(image: Any, name: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 2:
        raise DcrShapeError(f"{name} must be a 2-D array (y, x)", shape=array.shape)
    if array.dtype.kind in "iub":
        array = array.astype(np.float64)
    if array.dtype not in (np.float32, np.float64):
        raise DcrTypeError(f"{name} must be a float32 or float64 array", dtype=array.dtype)
    return array


def applyTransfer(
    image: np.ndarray,
    transfer: np.ndarray,
    padded: tuple[int, int],
    padMode: str = "edge",
    workers: int | None = None,
) -> np.ndarray:
    """Apply a transfer function to one image: pad, ``rfft2``, multiply, ``irfft2``, crop.

    Parameters
    ----------
    image : `numpy.ndarray`
        2-D float image, finite.
    transfer : `numpy.ndarray`
        Complex array of shape ``(padded[0], padded[1] // 2 + 1)``.
    padded : tuple of int
        ``(ny, nx)`` of the padded grid the transfer was computed on.
    padMode : str, optional
        How the margin is filled (see `padToShape`).
    workers : int, optional
        Threads for ``scipy.fft`` (None: scipy's default).

    Returns
    -------
    result : `numpy.ndarray`
        Array of the image's shape and dtype.
    """
    array = _floatImage(image, "image")
    padded = _checkShape(padded, "padded")
    if transfer.shape != (padded[0], padded[1] // 2 + 1):
        raise DcrShapeError(
            "transfer does not match the padded grid (ny, nx // 2 + 1)",
            transferShape=transfer.shape,
            padded=padded,
        )
    if not np.all(np.isfinite(array)):
        raise DcrValueError("image has NaN or infinite pixels; fill or mask them first")
    spectrum = scipy.fft.rfft2(padToShape(array, padded, padMode), workers=workers)
    spectrum *= transfer
    out = scipy.fft.irfft2(spectrum, s=padded, workers=workers)
    return np.ascontiguousarray(cropFromPadded(out, array.shape), dtype=array.dtype)


def fourierShift(
    image: np.ndarray,
    dcr: Any,
    mode: str = "mean",
    useInverse: bool = False,
    padMode: str = "edge",
    workers: int | None = None,
) -> np.ndarray:
    """Move one image by a subfilter's DCR in Fourier space (the Fourier analogue of applyDcr).

    Parameters
    ----------
    image : `numpy.ndarray`
        2-D float image, finite.
    dcr : sequence
        ``(dy, dx)`` (``mode="mean"``) or the edge shifts ``((dy0, dx0), (dy1, dx1))``, pixels.
    mode : {"mean", "split", "smear"}, optional
        Representation of the subfilter (`subfilterTransfer`); default ``"mean"``: one shift.
    useInverse : bool, optional
        Apply the adjoint: negated shifts (for a smear, the smear along the negated segment).
    padMode : str, optional
        How the margin is filled (see `padToShape`).
    workers : int, optional
        Threads for ``scipy.fft``.

    Returns
    -------
    shifted : `numpy.ndarray`
        Array of the image's shape and dtype.
    """
    array = _floatImage(image, "image")
    mode = _checkMode(mode)
    edges = _asDcrList([dcr], mode, "dcr")[0]
    if useInverse:
        edges = -edges
    padded = paddedShape(array.shape, maxShiftOf(edges))
    transfer = subfilterTransfer(padded, edges, mode, _complexDtype(array.dtype))
    return applyTransfer(array, transfer, padded, padMode, workers)


# ---------------------------------------------------------------------------------------------
# Template engine
# ---------------------------------------------------------------------------------------------


def _fingerprint(arrays: Sequence[np.ndarray]) -> tuple[int, ...]:
    """CRC32 of each array's bytes: detects any change made to the arrays in place."""
    out = []
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        out.append(zlib.crc32(memoryview(contiguous).cast("B")))
    return tuple(out)


TransferSource = np.ndarray | Callable[[tuple[int, int]], np.ndarray]


class FourierTemplateEngine:
    """Build DCR-matched templates from a model's subfilter images with one inverse FFT.

    The model's ``rfft2`` (of the images embedded in a padded grid, margins filled by
    extending the edges) is computed once and cached; a template for any set of per-subfilter
    transfer functions ``H_k`` is then ``irfft2(sum_k M_k(f) H_k(f))`` cropped back to the
    model's shape. The cache is recomputed when `invalidate` is called (the model does so after
    ``assign`` or ``__setitem__``) and, with ``checkCache=True``, whenever the model arrays
    have changed in place since the transform was taken (a CRC32 of their bytes, checked before
    every template): a stale transform never gives a silently wrong template. The engine keeps
    references to the arrays it was given: when the model replaces an array by a new one
    (rather than writing into it), hand the new arrays over with `setModel`.

    Parameters
    ----------
    modelArrays : sequence of `numpy.ndarray` or `numpy.ndarray`
        The N subfilter images, each ``(ny, nx)`` (or one ``(N, ny, nx)`` array). Kept by
        reference (not copied). float32 models are transformed in single precision.
    maxShift : float or tuple of float
        Largest ``|dy|``, ``|dx|`` of any edge shift the engine must support, pixels.
    psfSize : int, optional
        Width (pixels) of an extra convolution applied through ``extraTransfers`` (for example
        a PSF-matching kernel), so that the padding holds it too.
    badMask : `numpy.ndarray`, optional
        Boolean ``(ny, nx)`` or ``(N, ny, nx)``, True at model pixels that must not be used.
        They (and any NaN there) are replaced by their nearest good neighbour before the
        transform; `templateBadMask` says which template pixels they reach.
    padMode : str, optional
        How the margin is filled (see `padToShape`); default ``"edge"``, like the spline
        engine's ``mode="nearest"``.
    workers : int, optional
        Threads for ``scipy.fft`` (None: scipy's default).
    checkCache : bool, optional
        Verify before each template that the model arrays are unchanged (default True).

    Raises
    ------
    DcrShapeError
        Model images of different shapes, or a mask of another shape.
    DcrValueError
        NaN or infinite values at unmasked model pixels; a fully masked model.
    """

    def __init__(
        self,
        modelArrays: Sequence[np.ndarray] | np.ndarray,
        maxShift: Any,
        psfSize: int = 0,
        badMask: np.ndarray | None = None,
        padMode: str = "edge",
        workers: int | None = None,
        checkCache: bool = True,
    ) -> None:
        if padMode not in _PAD_MODES:
            raise DcrValueError(f"padMode must be one of {', '.join(_PAD_MODES)}", padMode=padMode)
        self._maxShiftRequested = _asMaxShift(maxShift)
        _psfHalf(psfSize)
        self._psfSize = int(psfSize)
        self._padMode = padMode
        self._workers = workers
        self._checkCache = bool(checkCache)
        self._arrays: list[np.ndarray] = []
        self._badMask: np.ndarray | None = None
        self._transforms: np.ndarray | None = None
        self._fingerprint: tuple[int, ...] | None = None
        self.setModel(modelArrays, badMask)

    # -- model -----------------------------------------------------------------------------

    def setModel(
        self, modelArrays: Sequence[np.ndarray] | np.ndarray, badMask: np.ndarray | None = None
    ) -> None:
        """Replace the model images (and mask) and drop the cached transform.

        Parameters
        ----------
        modelArrays : sequence of `numpy.ndarray` or `numpy.ndarray`
            N images of one shape ``(ny, nx)``; the shape may differ from the previous model's
            (the padded grid is recomputed).
        badMask : `numpy.ndarray`, optional
            Boolean ``(ny, nx)`` or ``(N, ny, nx)``, True at unusable model pixels.
        """
        arrays = self._checkModel(modelArrays)
        mask = self._checkBadMask(badMask, arrays)
        self._arrays = arrays
        self._badMask = mask
        self._shape = arrays[0].shape
        self._dtype = np.result_type(*[a.dtype for a in arrays])
        self._cdtype = _complexDtype(self._dtype)
        self._padded = paddedShape(self._shape, self._maxShiftRequested, self._psfSize)
        self._allowed = allowedShift(self._shape, self._padded, self._psfSize)
        self.invalidate()

    @staticmethod
    def _checkModel(modelArrays: Any) -> list[np.ndarray]:
        if isinstance(modelArrays, np.ndarray):
            if modelArrays.ndim != 3:
                raise DcrShapeError(
                    "modelArrays must be N images (y, x) or one (N, ny, nx) array",
                    shape=modelArrays.shape,
                )
            arrays = list(modelArrays)
        else:
            try:
                arrays = [np.asarray(a) for a in modelArrays]
            except TypeError as error:
                raise DcrTypeError(
                    "modelArrays must be a sequence of 2-D arrays", type=type(modelArrays).__name__
                ) from error
        if not arrays:
            raise DcrValueError("the model has no subfilter images; give at least one")
        for k, array in enumerate(arrays):
            if array.ndim != 2:
                raise DcrShapeError(f"model image {k} is not 2-D", shape=array.shape)
            if array.dtype not in (np.float32, np.float64):
                raise DcrTypeError(
                    f"model image {k} must be float32 or float64", dtype=str(array.dtype)
                )
            if array.shape != arrays[0].shape:
                raise DcrShapeError(
                    "model images must all have the same shape",
                    shape0=arrays[0].shape,
                    **{f"shape{k}": array.shape},
                )
        return arrays

    @staticmethod
    def _checkBadMask(badMask: Any, arrays: list[np.ndarray]) -> np.ndarray | None:
        n = len(arrays)
        shape = arrays[0].shape
        if badMask is None:
            mask = None
        else:
            mask = np.asarray(badMask)
            if mask.dtype != bool:
                raise DcrTypeError("badMask must be a boolean array", dtype=str(mask.dtype))
            if mask.shape == shape:
                mask = np.broadcast_to(mask, (n, *shape))
            elif mask.shape != (n, *shape):
                raise DcrShapeError(
                    "badMask must have the model's shape (ny, nx) or (N, ny, nx)",
                    maskShape=mask.shape,
                    modelShape=(n, *shape),
                )
        for k, array in enumerate(arrays):
            finite = np.isfinite(array)
            good = finite if mask is None else (finite | mask[k])
            if not good.all():
                raise DcrValueError(
                    f"model image {k} has NaN or infinite values at unmasked pixels; pass them in "
                    "badMask (or fill them)",
                    count=int((~good).sum()),
                )
            if mask is not None and mask[k].all():
                raise DcrValueError(f"every pixel of model image {k} is masked")
        return None if mask is None or not mask.any() else np.array(mask)

    def invalidate(self) -> None:
        """Drop the cached transform; the next template recomputes it from the model arrays."""
        self._transforms = None
        self._fingerprint = None

    @property
    def numSubfilters(self) -> int:
        """Number of subfilter images (int)."""
        return len(self._arrays)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(ny, nx)`` of the model images and templates."""
        return self._shape

    @property
    def paddedShape(self) -> tuple[int, int]:
        """Shape ``(ny, nx)`` of the padded FFT grid."""
        return self._padded

    @property
    def maxShift(self) -> tuple[float, float]:
        """Largest ``(|dy|, |dx|)`` in pixels that the padding holds."""
        return self._allowed

    @property
    def dtype(self) -> np.dtype:
        """Real dtype of the templates."""
        return np.dtype(self._dtype)

    @property
    def badMask(self) -> np.ndarray | None:
        """Boolean ``(N, ny, nx)`` of unusable model pixels, or None."""
        return self._badMask

    def _isStale(self) -> bool:
        if self._transforms is None:
            return True
        if self._checkCache:
            return self._fingerprint != _fingerprint(self._arrays)
        return False

    @property
    def modelTransforms(self) -> np.ndarray:
        """The cached ``rfft2`` of the padded model images, ``(N, ny, nx // 2 + 1)`` complex."""
        if self._isStale():
            if self._transforms is not None:
                _log.debug("model arrays changed in place; recomputing their Fourier transforms")
            self._computeTransforms()
        return self._transforms

    def _computeTransforms(self) -> None:
        fingerprint = _fingerprint(self._arrays) if self._checkCache else None
        transforms = np.empty(
            (self.numSubfilters, self._padded[0], self._padded[1] // 2 + 1), dtype=self._cdtype
        )
        rdtype = _realDtype(self._cdtype)
        for k, array in enumerate(self._arrays):
            good = np.isfinite(array)
            if self._badMask is not None:
                good |= self._badMask[k]
            if not good.all():
                raise DcrValueError(
                    f"model image {k} now has NaN or infinite values at unmasked pixels; pass "
                    "them in badMask (FourierTemplateEngine.setModel) or fill them"
                )
            source = array if self._badMask is None else fillBadPixels(array, self._badMask[k])
            padded = padToShape(source.astype(rdtype, copy=False), self._padded, self._padMode)
            transforms[k] = scipy.fft.rfft2(padded, workers=self._workers)
        self._transforms = transforms
        self._fingerprint = fingerprint

    # -- transfers and templates -----------------------------------------------------------

    def transfers(self, dcrShifts: Any, mode: str = "smear") -> np.ndarray:
        """Per-subfilter transfer functions of one visit on this engine's grid.

        Parameters
        ----------
        dcrShifts : sequence
            One DCR per subfilter (pixels): edge pairs ``((dy0, dx0), (dy1, dx1))``
            (``calculateDcr(..., splitSubfilters=True)``), or single ``(dy, dx)`` shifts for
            ``mode="mean"``.
        mode : {"smear", "split", "mean"}, optional
            Representation of a subfilter's light (`subfilterTransfer`).

        Returns
        -------
        transfers : `numpy.ndarray`
            ``(N, ny, nx // 2 + 1)`` complex.

        Raises
        ------
        DcrValueError
            Wrong number of subfilters, or shifts larger than the padding.
        """
        mode = _checkMode(mode)
        edges = _asDcrList(dcrShifts, mode)
        if len(edges) != self.numSubfilters:
            raise DcrShapeError(
                "the DCR must have one entry per model subfilter",
                numShifts=len(edges),
                numSubfilters=self.numSubfilters,
            )
        _checkFits(maxShiftOf(edges), self._allowed)
        return visitTransfers(self._padded, edges, mode, self._cdtype)

    def _extra(self, extraTransfers: TransferSource | None) -> np.ndarray | None:
        if extraTransfers is None:
            return None
        extra = extraTransfers(self._padded) if callable(extraTransfers) else extraTransfers
        extra = np.asarray(extra)
        grid = (self._padded[0], self._padded[1] // 2 + 1)
        if extra.shape not in (grid, (self.numSubfilters, *grid)):
            raise DcrShapeError(
                "extraTransfers must be (ny, nx // 2 + 1) or (N, ny, nx // 2 + 1) on the engine's "
                "padded grid (engine.paddedShape)",
                extraShape=extra.shape,
                expected=(self.numSubfilters, *grid),
            )
        if not np.all(np.isfinite(extra)):
            raise DcrValueError("extraTransfers has NaN or infinite values")
        return np.broadcast_to(extra, (self.numSubfilters, *grid))

    def buildTemplateFromTransfers(
        self, transfers: np.ndarray, extraTransfers: TransferSource | None = None
    ) -> np.ndarray:
        """Template ``sum_k M_k H_k (E_k)`` for given transfer functions, one inverse FFT.

        Parameters
        ----------
        transfers : `numpy.ndarray`
            ``(N, ny, nx // 2 + 1)`` complex, on `paddedShape`.
        extraTransfers : `numpy.ndarray` or callable, optional
            Extra multiplicative transfer per subfilter (e.g. the ratio of a visit's PSF to the
            model's at each subfilter's wavelength): ``(ny, nx // 2 + 1)`` for all subfilters
            or ``(N, ny, nx // 2 + 1)``, or a callable taking `paddedShape` and returning one.

        Returns
        -------
        template : `numpy.ndarray`
            ``(ny, nx)`` in the model's dtype.
        """
        grid = (self._padded[0], self._padded[1] // 2 + 1)
        transfers = np.asarray(transfers)
        if transfers.shape != (self.numSubfilters, *grid):
            raise DcrShapeError(
                "transfers must be (N, ny, nx // 2 + 1) on the engine's padded grid",
                transferShape=transfers.shape,
                expected=(self.numSubfilters, *grid),
            )
        extra = self._extra(extraTransfers)
        models = self.modelTransforms
        total = np.zeros(grid, dtype=self._cdtype)
        term = np.empty(grid, dtype=self._cdtype)
        for k in range(self.numSubfilters):
            np.multiply(models[k], transfers[k], out=term)
            if extra is not None:
                term *= extra[k]
            total += term
        out = scipy.fft.irfft2(total, s=self._padded, workers=self._workers)
        return np.ascontiguousarray(cropFromPadded(out, self._shape), dtype=self._dtype)

    def buildTemplate(
        self,
        dcrShifts: Any,
        mode: str = "smear",
        extraTransfers: TransferSource | None = None,
    ) -> np.ndarray:
        """DCR-matched template: every subfilter moved (or smeared) by its DCR, summed.

        Parameters
        ----------
        dcrShifts : sequence
            One DCR per subfilter, pixels (see `transfers`).
        mode : {"smear", "split", "mean"}, optional
            ``"smear"`` (default): uniform smear between the edge shifts; ``"split"``: the
            reference's quarter-point average; ``"mean"``: the mean shift.
        extraTransfers : `numpy.ndarray` or callable, optional
            Extra per-subfilter transfer (see `buildTemplateFromTransfers`).

        Returns
        -------
        template : `numpy.ndarray`
            ``(ny, nx)`` in the model's dtype.
        """
        mode = _checkMode(mode)
        edges = _asDcrList(dcrShifts, mode)
        if len(edges) != self.numSubfilters:
            raise DcrShapeError(
                "the DCR must have one entry per model subfilter",
                numShifts=len(edges),
                numSubfilters=self.numSubfilters,
            )
        _checkFits(maxShiftOf(edges), self._allowed)
        extra = self._extra(extraTransfers)
        models = self.modelTransforms
        grid = (self._padded[0], self._padded[1] // 2 + 1)
        total = np.zeros(grid, dtype=self._cdtype)
        for k, edge in enumerate(edges):
            term = subfilterTransfer(self._padded, edge, mode, self._cdtype)
            term *= models[k]
            if extra is not None:
                term *= extra[k]
            total += term
        out = scipy.fft.irfft2(total, s=self._padded, workers=self._workers)
        return np.ascontiguousarray(cropFromPadded(out, self._shape), dtype=self._dtype)

    def templateBadMask(self, dcrShifts: Any, mode: str = "smear") -> np.ndarray:
        """Template pixels that receive light from masked model pixels.

        The union over subfilters of the model's bad mask moved over every integer offset that
        the subfilter's shift (or smear between its edge shifts) touches, plus one pixel of
        interpolation on each side of each offset.

        Parameters
        ----------
        dcrShifts : sequence
            One DCR per subfilter, pixels (see `transfers`).
        mode : {"smear", "split", "mean"}, optional
            Representation of a subfilter's light.

        Returns
        -------
        mask : `numpy.ndarray`
            Boolean ``(ny, nx)``; all False when the model has no bad pixels.
        """
        mode = _checkMode(mode)
        edges = _asDcrList(dcrShifts, mode)
        out = np.zeros(self._shape, dtype=bool)
        if self._badMask is None:
            return out
        for k, edge in enumerate(edges):
            if mode == "mean":
                points = edge.mean(axis=0)[None, :]
            else:
                t = np.linspace(0.0, 1.0, 17)[:, None]
                points = edge[0] * (1 - t) + edge[1] * t
            offsets = {
                (int(oy), int(ox))
                for py, px in points
                for oy in range(math.floor(py), math.ceil(py) + 1)
                for ox in range(math.floor(px), math.ceil(px) + 1)
            }
            for oy, ox in offsets:
                out |= _shiftBool(self._badMask[k], oy, ox)
        return ndimage.binary_dilation(out, iterations=1)

    def __repr__(self) -> str:
        return (
            f"FourierTemplateEngine(numSubfilters={self.numSubfilters}, shape={self._shape}, "
            f"paddedShape={self._padded}, maxShift={self._allowed}, dtype={self.dtype})"
        )


def _shiftBool(mask: np.ndarray, oy: int, ox: int) -> np.ndarray:
    """Move a boolean mask by whole pixels ``(oy, ox)``, filling with False."""
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    if abs(oy) >= ny or abs(ox) >= nx:
        return out
    src = mask[max(0, -oy) : ny - max(0, oy), max(0, -ox) : nx - max(0, ox)]
    out[max(0, oy) : ny - max(0, -oy), max(0, ox) : nx - max(0, -ox)] = src
    return out
