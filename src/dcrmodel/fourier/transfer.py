"""Transfer functions of DCR on the ``rfft2`` grid: shifts, smears and split subfilters.

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
are available here, on the frequency grid of ``scipy.fft.rfft2`` of a padded array
(`dcrmodel.fourier.padding`); `dcrmodel.fourier.engine` applies them to images.

Conventions: arrays are ``(y, x)``, shifts ``(dy, dx)`` in pixels, and a positive shift moves
the content toward larger indices, as ``scipy.ndimage.shift`` does.

References
----------
R. N. Bracewell (2000), *The Fourier Transform and Its Applications*, 3rd ed., McGraw-Hill:
shift theorem and the transform of a box (rect -> sinc).
I. Sullivan, DMTN-037, "DCR-matched template generation", https://dmtn-037.lsst.io
(the mean and quarter-point subfilter shifts of the reference algorithm).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.fft

from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from ..parallel import forRowBlocks

__all__ = [
    "TRANSFER_MODES",
    "frequencyGrid",
    "shiftTransfer",
    "smearTransfer",
    "splitTransfer",
    "subfilterTransfer",
    "visitTransfers",
    "TransferRows",
    "transferRows",
    "dcrShiftArray",
    "hermitianize",
]

#: The representations of a subfilter's light in one visit: ``"mean"`` (one shift, the mean of
#: the edge shifts), ``"split"`` (average of the two quarter-point shifts, the reference's split
#: subfilters) and ``"smear"`` (uniform smear between the two edge shifts, exact for a flat
#: spectrum within the subfilter and refraction linear in wavelength).
TRANSFER_MODES = ("mean", "split", "smear")


# ---------------------------------------------------------------------------------------------
# Validation helpers (shared by the modules of dcrmodel.fourier)
# ---------------------------------------------------------------------------------------------


def checkShape(shape: Any, name: str = "shape") -> tuple[int, int]:
    """Return ``shape`` as a pair of positive ints ``(ny, nx)``.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` in pixels.
    name : str, optional
        Argument name used in the error messages.

    Raises
    ------
    DcrTypeError, DcrValueError
        Not a pair of positive ints.
    """
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


def checkMode(mode: Any) -> str:
    """Return ``mode`` if it is one of `TRANSFER_MODES`, else raise `DcrValueError`."""
    if mode not in TRANSFER_MODES:
        raise DcrValueError(
            f"unknown transfer mode; use one of {', '.join(TRANSFER_MODES)}", mode=mode
        )
    return mode


def complexDtype(dtype: Any) -> np.dtype:
    """Return the complex dtype (complex64 or complex128) matching ``dtype``."""
    dt = np.dtype(dtype)
    if dt in (np.dtype(np.complex64), np.dtype(np.float32)):
        return np.dtype(np.complex64)
    if dt in (np.dtype(np.complex128), np.dtype(np.float64)):
        return np.dtype(np.complex128)
    raise DcrTypeError("dtype must be float32/complex64 or float64/complex128", dtype=dtype)


def realDtype(cdtype: np.dtype) -> np.dtype:
    """Return the real dtype (float32 or float64) of the complex dtype ``cdtype``."""
    return np.dtype(np.float32) if cdtype == np.complex64 else np.dtype(np.float64)


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
    ny, nx = checkShape(shape)
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
    ny, nx = checkShape(shape)
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
        transfer *= envelope(_projected(shape, width, realDtype(cdtype)))
    return _aliasAveraged(transfer, shape, _segmentFunction(mean, width, envelope))


def _segmentFunction(mean: np.ndarray, width: np.ndarray,
                     envelope: Callable) -> Callable[..., np.ndarray]:
    """Return the analytic transfer of a segment at given frequencies (`_aliasAveraged`)."""
    ramp = _rampFunction(mean)

    def function(fy: Any, fx: Any) -> np.ndarray:
        phase = np.pi * (np.multiply(fy, width[0]) + np.multiply(fx, width[1]))
        values = envelope(np.array(phase, dtype=np.float64, ndmin=1))
        return ramp(fy, fx) * values.reshape(np.shape(phase))

    return function


class TransferRows:
    """The transfers of a visit's subfilters, computed for any block of rows of the grid.

    The 1-D ramps and phases are computed once; `fill` forms the outer products, the
    envelopes and the alias averages (`_aliasAveraged`) of the rows asked for, by the same
    operations as `_segmentTransfer` on the whole grid, so the values do not depend on how
    the rows are split.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) array.
    edges : `numpy.ndarray`
        ``(N, 2, 2)`` edge shifts of the subfilters, pixels (``"mean"``: equal edges).
    cdtype : `numpy.dtype`
        complex64 or complex128.
    envelope : callable
        ``_smearEnvelope`` or ``_splitEnvelope``.
    """

    def __init__(self, shape: tuple[int, int], edges: np.ndarray, cdtype: np.dtype,
                 envelope: Callable) -> None:
        self.shape = shape
        self.numSubfilters = len(edges)
        self.cdtype = cdtype
        self._fy, self._fx = frequencyGrid(shape)
        rdtype = realDtype(cdtype)
        self._factors = []
        fy, fx = self._fy[:, 0], self._fx[0]
        for edge in edges:
            mean = edge.mean(axis=0)
            width = edge[1] - edge[0]
            ey = np.exp(-2j * np.pi * fy * mean[0]).astype(cdtype)
            ex = np.exp(-2j * np.pi * fx * mean[1]).astype(cdtype)
            phases = None
            if np.any(width != 0):
                phases = ((np.pi * width[0] * fy).astype(rdtype),
                          (np.pi * width[1] * fx).astype(rdtype))
            self._factors.append((ey, ex, phases, envelope,
                                  _segmentFunction(mean, width, envelope)))

    def fill(self, rows: slice, out: np.ndarray) -> np.ndarray:
        """Write the transfers of ``rows`` into ``out``, ``(N, rows, nx // 2 + 1)``."""
        ny, nx = self.shape
        start, stop, _ = rows.indices(ny)
        nyquist = ny // 2 if ny % 2 == 0 and start <= ny // 2 < stop else None
        for k, (ey, ex, phases, envelope, function) in enumerate(self._factors):
            target = out[k]
            np.multiply(ey[rows, None], ex[None, :], out=target)
            if phases is not None:
                target *= envelope(np.add.outer(phases[0][rows], phases[1]))
            # The alias averages of _aliasAveraged, on these rows.
            if nyquist is not None:
                target[nyquist - start, :] = 0.5 * (function(-0.5, self._fx[0])
                                                     + function(0.5, self._fx[0]))
            if nx % 2 == 0:
                fy = self._fy[rows, 0]
                column = 0.5 * (function(fy, -0.5) + function(fy, 0.5))
                if nyquist is not None:
                    column[nyquist - start] = 0.25 * sum(
                        function(a, b) for a in (-0.5, 0.5) for b in (-0.5, 0.5))
                target[:, -1] = column
        return out


def _segmentTransfers(
    shape: tuple[int, int],
    edges: np.ndarray,
    cdtype: np.dtype,
    envelope: Callable,
    out: np.ndarray,
    threads: int,
) -> np.ndarray:
    """`_segmentTransfer` of every subfilter's ``edges[k]`` into ``out[k]``, in row blocks.

    The values do not depend on ``threads`` (`TransferRows`).
    """
    plan = TransferRows(shape, edges, cdtype, envelope)

    def block(rows: slice) -> None:
        plan.fill(rows, out[:, rows])

    forRowBlocks(block, shape[0], threads)
    return out


def transferRows(
    shape: tuple[int, int], dcrShifts: Any, mode: str = "smear", dtype: Any = np.complex128
) -> TransferRows:
    """Return a `TransferRows` of one visit's subfilters (see `visitTransfers`).

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) array.
    dcrShifts : sequence
        One DCR per subfilter (pixels), as `subfilterTransfer` takes them.
    mode : {"smear", "split", "mean"}, optional
        Representation of a subfilter's light.
    dtype : dtype, optional
        ``complex128`` (default) or ``complex64``.

    Returns
    -------
    TransferRows
        Its ``fill(rows, out)`` gives the transfers of any rows.
    """
    shape = checkShape(shape)
    mode = checkMode(mode)
    edges = asDcrList(dcrShifts, mode)
    envelope = {"smear": _smearEnvelope, "split": _splitEnvelope}.get(mode)
    if envelope is None:  # "mean": the ramp of the mean shift
        edges = np.repeat(edges.mean(axis=1)[:, None], 2, axis=1)
        envelope = _smearEnvelope
    return TransferRows(shape, edges, complexDtype(dtype), envelope)


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
    shape = checkShape(shape)
    cdtype = complexDtype(dtype)
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
    shape = checkShape(shape)
    cdtype = complexDtype(dtype)
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
    shape = checkShape(shape)
    cdtype = complexDtype(dtype)
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
    mode = checkMode(mode)
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
    return asDcrList(dcrShifts, checkMode(mode))


def asDcrList(dcrShifts: Any, mode: str, name: str = "dcrShifts") -> np.ndarray:
    """Return a visit's per-subfilter DCR as an (N, 2, 2) array of edge shifts (pixels).

    For ``mode="mean"`` single shifts ``(N, 2)`` are accepted and stored as equal edges.
    Like `dcrShiftArray`, for a ``mode`` already checked (`checkMode`) and with the argument
    ``name`` used in the error messages.
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
    shape: tuple[int, int],
    dcrShifts: Any,
    mode: str = "smear",
    dtype: Any = np.complex128,
    threads: int = 1,
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
    threads : int, optional
        Threads computing blocks of rows (`dcrmodel.parallel.forRowBlocks`; default 1).
        The values do not depend on it.

    Returns
    -------
    transfers : `numpy.ndarray`
        Complex array of shape ``(N, ny, nx // 2 + 1)``.
    """
    shape = checkShape(shape)
    mode = checkMode(mode)
    edges = asDcrList(dcrShifts, mode)
    cdtype = complexDtype(dtype)
    out = np.empty((len(edges), shape[0], shape[1] // 2 + 1), dtype=cdtype)
    envelope = {"smear": _smearEnvelope, "split": _splitEnvelope}.get(mode)
    if envelope is None:  # "mean": the ramp of the mean shift
        edges = np.repeat(edges.mean(axis=1)[:, None], 2, axis=1)
        envelope = _smearEnvelope
    return _segmentTransfers(shape, edges, cdtype, envelope, out, threads)
