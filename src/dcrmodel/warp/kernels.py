"""Resampling kernels for warping: Lanczos of orders 2 to 8, bilinear and nearest pixel.

A warping kernel is a one-dimensional function ``K(d)`` of the offset ``d`` (pixels)
between a source pixel centre and the position being sampled; the two-dimensional kernel
is the separable product ``K(dx) K(dy)``. `WarpingKernel.taps` gives, for many positions
at once, the first source pixel and the weights of the ``size`` pixels it touches; for the
Lanczos kernels it takes the weights of all taps of a position from one sine (the
angle-addition formula, `_lanczosWeights`) rather than two ``sinc`` per tap.

The kernels (``name``: support radius, number of taps):

- ``lanczos2``, ``lanczos3``, ``lanczos4``: ``K(d) = sinc(d) sinc(d / a)`` for
  ``|d| < a`` (``a`` = 2, 3, 4), 0 beyond; ``2a`` taps. ``lanczos3`` is the default, as in
  the Rubin pipelines' warping (``lsst.afw.math.WarperConfig.warpingKernelName``): it keeps
  a well-sampled image to a few parts in a thousand at a moderate cost (36 taps).
  ``lanczos4`` is closer still to ideal (band-limited) interpolation at 64 taps;
  ``lanczos2`` (16 taps) smooths more and rings less.
- ``lanczos5`` to ``lanczos8``: the same formula with a wider window, for warps that must
  keep a well-sampled image to better than Lanczos 3's few parts in a thousand, at
  ``(2a)^2`` taps (100 to 256; a 1024^2 warp costs about ``(a / 3)^2`` times Lanczos 3's).
  Measured (``tests/warp/test_warp_exposure.py``): a field of 3-pixel-FWHM Gaussians
  warped onto a grid rotated by 37 degrees and back differs from the original by
  1.3e-2 of its rms over the sources with ``lanczos3``, 6.8e-3 ``lanczos4``, 3.7e-3
  ``lanczos5``, 2.0e-3 ``lanczos6``, 1.2e-3 ``lanczos7`` and 8.3e-4 ``lanczos8``: the
  error is the window's attenuation of the passband (each warp smooths a little), which
  falls about as ``1 / a^2``.
- ``bilinear``: ``K(d) = 1 - |d|`` for ``|d| < 1``; 2 taps. No ringing and no negative
  weights, but it smooths the image (and correlates its noise) the most; the Rubin
  pipelines use it to grow the mask planes.
- ``nearest``: the one pixel whose centre is nearest (``-1/2 <= d < 1/2``); 1 tap. It
  moves pixels without mixing them (no smoothing, no correlated noise) at the price of
  positional errors of up to half a pixel: for masks or quick looks, not for photometry.

References
----------
C. E. Duchon (1979), "Lanczos filtering in one and two dimensions", Journal of Applied
Meteorology 18, 1016, doi:10.1175/1520-0450(1979)018<1016:LFIOAT>2.0.CO;2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import DcrConfigError

__all__ = [
    "WarpingKernel",
    "WARPING_KERNELS",
    "DEFAULT_WARPING_KERNEL",
    "TAP_TABLE_PHASES",
    "getWarpingKernel",
]

#: Names of the warping kernels, for `getWarpingKernel`.
WARPING_KERNELS = ("lanczos3", "lanczos2", "lanczos4", "lanczos5", "lanczos6", "lanczos7",
                   "lanczos8", "bilinear", "nearest")

#: The kernel used when none is named (as in the Rubin pipelines).
DEFAULT_WARPING_KERNEL = "lanczos3"

#: Phases per pixel at which `WarpingKernel.tabulatedTaps` tabulates the weights (a power of
#: 2, so that a position's index in the table is exact).
TAP_TABLE_PHASES = 8192
_TAP_TABLE_BITS = 13  # TAP_TABLE_PHASES = 2 ** _TAP_TABLE_BITS

# Positions whose Lanczos weights are computed at once (the temporaries stay in cache).
_TAPS_BLOCK = 1 << 13

# Lanczos weights of positions within this of the far end of their taps' range
# (``x - first`` from ``order - _LANCZOS_GUARD`` to ``order``) are evaluated tap by tap.
_LANCZOS_GUARD = 1e-8


@dataclass(frozen=True)
class WarpingKernel:
    """A separable resampling kernel.

    Parameters
    ----------
    name : str
        One of `WARPING_KERNELS`.
    size : int
        Number of source pixels (taps) along each axis that a sample may touch.
    radius : float
        Half-width of the support in pixels: ``K(d) = 0`` for ``|d| >= radius``.

    Notes
    -----
    Make kernels with `getWarpingKernel`. The weights returned by `taps` are exactly zero
    at the kernel's zeros (for Lanczos kernels, every non-zero integer offset), so a
    sample that falls on a pixel centre touches that pixel alone and an integer shift
    copies the image exactly.

    Examples
    --------
    >>> kernel = getWarpingKernel("bilinear")
    >>> first, weights = kernel.taps(np.array([2.25]))
    >>> int(first[0]), weights[:, 0].tolist()
    (2, [0.75, 0.25])
    """

    name: str
    size: int
    radius: float

    def __call__(self, offsets: np.ndarray) -> np.ndarray:
        """Return the kernel's value at ``offsets`` (pixels), not normalised.

        Parameters
        ----------
        offsets : numpy.ndarray
            Offsets ``d`` (pixels) between sampled positions and source pixel centres.

        Returns
        -------
        numpy.ndarray
            ``K(d)``, float64, with exact zeros outside the support and at the kernel's
            zeros.
        """
        d = np.asarray(offsets, dtype=np.float64)
        if self.name == "nearest":
            return ((d >= -0.5) & (d < 0.5)).astype(np.float64)
        if self.name == "bilinear":
            return np.maximum(1.0 - np.abs(d), 0.0)
        order = self.radius
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.sinc(d) * np.sinc(d / order)
        # sin(pi k) is not exactly 0 in floating point: zero the integer offsets exactly.
        whole = d == np.round(d)
        values = np.where(whole & (d != 0.0), 0.0, values)
        return np.where(np.abs(d) < order, values, 0.0)

    def taps(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the source pixels and weights that sample ``positions``.

        Parameters
        ----------
        positions : numpy.ndarray
            Positions along one axis, in source pixel index coordinates (pixel ``i``
            covers ``i - 1/2 .. i + 1/2``); any shape ``S``.

        Returns
        -------
        first : numpy.ndarray of int64
            Index of the first source pixel touched, shape ``S``; the taps are
            ``first + j`` for ``j = 0 .. size - 1``.
        weights : numpy.ndarray
            Shape ``(size,) + S``: the weight of each tap, normalised to sum 1 over the
            taps (a row of zeros cannot occur: some tap is always within the support).
        """
        return self._taps(positions, tabulated=False)

    def _taps(self, positions: np.ndarray, tabulated: bool) -> tuple[np.ndarray, np.ndarray]:
        """`taps` (``tabulated`` False) or `tabulatedTaps` (True)."""
        x = np.asarray(positions, dtype=np.float64)
        first = np.floor(x + 1.0 - self.size / 2.0).astype(np.int64)
        if not self.name.startswith("lanczos"):
            return first, self._normalisedWeights(x, first)
        firstOffset = x - first
        if tabulated:
            weights = _tabulatedWeights(self, firstOffset)
        else:
            weights = np.empty((self.size,) + x.shape)
            flatOffsets, flatWeights = firstOffset.reshape(-1), weights.reshape(self.size, -1)
            for start in range(0, flatOffsets.size, _TAPS_BLOCK):  # blocks stay in cache
                block = slice(start, start + _TAPS_BLOCK)
                _lanczosWeights(flatOffsets[block], int(self.radius), out=flatWeights[:, block])
        # Tap by tap with `__call__` where rounding could decide differently which weights
        # are exactly zero: within `size` of 0, where x - (first + k) may round to a coarser
        # grid than x (1.9999999999999998 - 4 is -2.0; further out x and first + k have
        # one sign and are within a factor 2, so the difference is exact), and next to the
        # zero crossings of taps 0 and `order` at firstOffset = order (where the formula of
        # `_lanczosWeights` cancels).
        slow = (np.abs(x) < self.size) | (firstOffset > self.radius - _LANCZOS_GUARD)
        if slow.any():
            weights[:, slow] = self._normalisedWeights(x[slow], first[slow])
        return first, weights

    def tabulatedTaps(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the taps of `taps`, their weights interpolated in a table of phases.

        Parameters
        ----------
        positions : numpy.ndarray
            Finite positions along one axis, source pixel index coordinates; any shape
            ``S``.

        Returns
        -------
        first : numpy.ndarray of int64
            As `taps`.
        weights : numpy.ndarray
            Shape ``(size,) + S``: the normalised weights at the position's phase
            of the first tap, interpolated linearly between the exact weights (`taps`)
            at the `TAP_TABLE_PHASES` + 1 phases ``m / TAP_TABLE_PHASES``; where `taps`
            computes the weights tap by tap (near 0, or where rounding decides which
            weights are exactly zero), the same exact weights.

        Notes
        -----
        A warp's weights depend on a position only through its phase; a table of them
        replaces the sine, square root and divisions of each position by two gathers and
        a multiply-add per tap (about twice as fast for Lanczos 3). The error of the
        linear interpolation is at most ``h^2 / 8`` times the weights' second derivative
        (``h = 1 / TAP_TABLE_PHASES``): measured at most 6.5e-9 for Lanczos 3 (8.6e-9
        Lanczos 2, 6.2e-9 Lanczos 8, over a million random positions), below the rounding
        of the float32 sums of a float32 image. A position on a pixel centre gets the
        exact weights (one 1, zeros), so whole-pixel shifts still copy pixels, and the
        weights that are exactly zero are those of `taps`, so the footprints (and
        ``NO_DATA``) of a warp do not change; the weights sum to 1 within rounding (both
        table rows do). Bilinear and nearest kernels use `taps` itself.
        """
        return self._taps(positions, tabulated=True)

    def tabulatedWeightPairs(
        self, positions: np.ndarray, squares: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the taps of `tabulatedTaps` with float32 weights, and their squares.

        Parameters
        ----------
        positions : numpy.ndarray
            Finite positions along one axis, source pixel index coordinates; flat, ``n``.
        squares : bool
            Whether to return the squared weights beside the weights.

        Returns
        -------
        first : numpy.ndarray of int64
            As `taps`.
        weights : numpy.ndarray of float32
            Shape ``(size, n, 2)``: the weight ``w`` of each tap and ``w^2`` side by side
            (``(size, n, 1)``, ``w`` alone, without ``squares``), as a kernel sum of an
            image and its variance (``sum w^2 var``) takes them.

        Notes
        -----
        Interpolated linearly, like `tabulatedTaps`, in float32 tables of ``w`` and of
        ``w^2`` at the `TAP_TABLE_PHASES` + 1 phases (one gather per tap takes both), from
        the position's phase taken exactly (the position times the number of phases, a
        power of 2): the weights are those of `tabulatedTaps` to float32 rounding (a few
        1e-8), the squares within 1e-7 of the squares of `taps`; the weights of positions
        on a pixel centre are exact (a 1 and zeros). The taps are those of `taps`; positions
        within `size` of 0, and those within 1e-8 of the far end of their phase range
        (where float32 interpolation could turn the tiny weights next to a zero crossing
        into zeros, and where `taps` may round its first tap one pixel further), get the
        exact weights of `taps`, as there. For Lanczos kernels only
        (float32 kernel sums of float32 images, `dcrmodel.warp.resample`), in fewer
        passes over the positions than `tabulatedTaps` followed by a conversion to float32
        and the squares.
        """
        x = np.asarray(positions, dtype=np.float64)
        # The position in units of table phases, exact (times a power of 2): its integer
        # part holds the pixel (high bits) and the table's column, the phase (low bits).
        scaled = x * TAP_TABLE_PHASES
        whole = np.floor(scaled)
        steps = whole.astype(np.int64)
        first = np.right_shift(steps, _TAP_TABLE_BITS)
        first -= self.size // 2 - 1
        index = np.bitwise_and(steps, TAP_TABLE_PHASES - 1)
        scaled -= whole
        fraction = scaled.astype(np.float32)
        pairs = 2 if squares else 1
        if squares:  # the fraction of each pair's two items side by side (long inner loops)
            fraction = np.repeat(fraction, 2)
        table, slope = _pairTable(self, squares)
        flat = np.take(slope, index, axis=1).view(np.float32)  # (size, n * pairs)
        flat *= fraction
        flat += np.take(table, index, axis=1).view(np.float32)
        weights = flat.reshape(self.size, -1, pairs)
        slow = (x > -self.size) & (x < self.size)
        # within `_LANCZOS_GUARD` of the end of the phases, float32 interpolation could
        # turn the tiny weights of the taps next to a zero crossing into zeros
        slow |= (index == TAP_TABLE_PHASES - 1) & (
            scaled > 1.0 - _LANCZOS_GUARD * TAP_TABLE_PHASES)
        if slow.any():  # the taps and weights of `taps` there
            near = x[slow]
            first[slow] = np.floor(near + 1.0 - self.size / 2.0).astype(np.int64)
            exact = self._normalisedWeights(near, first[slow])
            weights[:, slow, 0] = exact
            if squares:
                weights[:, slow, 1] = exact * exact
        return first, weights

    def phaseTables(self, squares: bool) -> tuple[np.ndarray, np.ndarray]:
        """Return the float32 tables of `tabulatedWeightPairs`, one row per phase.

        Parameters
        ----------
        squares : bool
            Whether each weight has its square beside it.

        Returns
        -------
        table, slope : numpy.ndarray of float32
            ``(TAP_TABLE_PHASES, size * pairs)``: row ``m`` holds the weights of the taps
            ``first + k`` of a position of phase ``m / TAP_TABLE_PHASES`` (``w``, and
            ``w^2`` after each when ``squares``), and their differences to the next phase:
            the values `tabulatedWeightPairs` interpolates, laid out so that one
            position's weights are contiguous (for the compiled kernel sums of
            `dcrmodel.warp.resample`). Read-only; Lanczos kernels only.
        """
        return _phaseTables(self, squares)

    def _normalisedWeights(self, x: np.ndarray, first: np.ndarray) -> np.ndarray:
        """Weights of the taps ``first + k`` of positions ``x``, tap by tap with `__call__`."""
        offsets = x[np.newaxis] - (first[np.newaxis] + np.arange(self.size).reshape(
            (self.size,) + (1,) * x.ndim))
        weights = self(offsets)
        total = weights.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            weights /= total
        return weights


def _tabulatedWeights(kernel: WarpingKernel, firstOffset: np.ndarray) -> np.ndarray:
    """Weights of the taps from the offset of the first (in ``[order - 1, order)``), tabulated."""
    # the phase times TAP_TABLE_PHASES is exact (a power of 2); it may round to the end of
    # the last interval
    scaled = (firstOffset - (kernel.size // 2 - 1)) * TAP_TABLE_PHASES
    index = np.clip(scaled.astype(np.int64), 0, TAP_TABLE_PHASES - 1)
    fraction = scaled - index
    table, slope = _tapTable(kernel)
    weights = np.take(slope, index, axis=1)
    weights *= fraction
    weights += np.take(table, index, axis=1)
    # g < 0 (first rounded one too high): the last tap is beyond the support, as in
    # `_lanczosWeights`
    weights[-1][scaled < 0.0] = 0.0
    return weights


@functools.cache
def _tapTable(kernel: WarpingKernel) -> tuple[np.ndarray, np.ndarray]:
    """Exact normalised weights at the phases ``m / TAP_TABLE_PHASES``, and their slopes.

    Returns ``table`` (``size`` x ``phases + 1``: column ``m`` holds the weights of the
    taps ``first + k`` of a position ``first + size / 2 - 1 + m / phases``) and ``slope``
    (``size`` x ``phases``: the difference of neighbouring columns), read-only.
    """
    phases = TAP_TABLE_PHASES
    u = np.arange(phases + 1, dtype=np.float64) / phases
    offsets = u[np.newaxis] + (kernel.size // 2 - 1 - np.arange(kernel.size))[:, np.newaxis]
    table = kernel(offsets)
    table /= table.sum(axis=0)
    slope = np.diff(table, axis=1)
    table, slope = np.ascontiguousarray(table[:, :-1]), np.ascontiguousarray(slope)
    for array in (table, slope):
        array.flags.writeable = False
    return table, slope


@functools.cache
def _pairTable(kernel: WarpingKernel, squares: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return the tables of `_tapTable` in float32, with the squared weights beside them.

    Returns ``table`` and ``slope`` (``size`` x ``phases``), whose items are the pairs
    ``(w, w^2)`` (and their differences between neighbouring phases) viewed as int64, so
    that one gather takes both; without ``squares``, ``w`` alone as float32. Read-only.
    """
    phases = TAP_TABLE_PHASES
    u = np.arange(phases + 1, dtype=np.float64) / phases
    offsets = u[np.newaxis] + (kernel.size // 2 - 1 - np.arange(kernel.size))[:, np.newaxis]
    weights = kernel(offsets)
    weights /= weights.sum(axis=0)
    values = np.stack([weights, weights * weights], axis=-1) if squares else weights[..., None]
    table = np.ascontiguousarray(values[:, :-1], dtype=np.float32)
    slope = np.ascontiguousarray(np.diff(values, axis=1), dtype=np.float32)
    if squares:
        table, slope = table.view(np.int64)[..., 0], slope.view(np.int64)[..., 0]
    else:
        table, slope = table[..., 0], slope[..., 0]
    for array in (table, slope):
        array.flags.writeable = False
    return table, slope


@functools.cache
def _phaseTables(kernel: WarpingKernel, squares: bool) -> tuple[np.ndarray, np.ndarray]:
    """`_pairTable`'s tables as float32 ``(phases, size * pairs)`` (`phaseTables`)."""
    pairs = 2 if squares else 1
    result = []
    for array in _pairTable(kernel, squares):
        values = array.view(np.float32).reshape(kernel.size, TAP_TABLE_PHASES, pairs)
        arranged = np.ascontiguousarray(values.transpose(1, 0, 2)).reshape(
            TAP_TABLE_PHASES, kernel.size * pairs)
        arranged.flags.writeable = False
        result.append(arranged)
    return result[0], result[1]


@functools.cache
def _lanczosCoefficients(order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the constants of `_lanczosWeights`, one row per tap ``k``.

    ``(-1)^k cos(phi_k)``, ``(-1)^k sin(phi_k)`` with ``phi_k = pi (order - 1 - k) / order``,
    and ``order - 1 - k`` (read-only).
    """
    k = np.arange(2 * order)
    sign = np.where(k % 2 == 1, -1.0, 1.0)
    phase = np.pi * (order - 1 - k) / order
    # exact 0 and +-1 at multiples of pi/2 (sin(pi) is 1.2e-16 in floating point)
    cosine, sine = (np.where(np.abs(v) < 1e-15, 0.0, v) for v in (np.cos(phase), np.sin(phase)))
    constants = (sign * cosine, sign * sine, order - 1.0 - k)
    for constant in constants:
        constant.flags.writeable = False
    return tuple(constant.reshape(2 * order, 1) for constant in constants)


def _lanczosWeights(
    firstOffset: np.ndarray, order: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Normalised Lanczos weights of the ``2 order`` taps of every position, from one sine.

    Returns (or writes to ``out``, shape ``(2 order, n)``) the weights of the ``n``
    positions of the flat ``firstOffset``, the offset ``d_0 = x - first`` of the first tap, in
    ``[order - 1, order - _LANCZOS_GUARD]`` (`WarpingKernel.taps` evaluates the others tap
    by tap); tap ``k`` has ``d_k = d_0 - k``. With ``sin(pi d_k) = (-1)^k sin(pi d_0)``
    common to all taps (it cancels in the normalisation, as does ``order / pi^2``), the
    weight of tap ``k`` is proportional to ``(-1)^k sin(pi d_k / order) / d_k^2``, and
    ``sin(pi d_k / order) = sin(t + phi_k)`` with ``t = pi g / order``,
    ``g = d_0 - (order - 1)`` and ``phi_k = pi (order - 1 - k) / order`` comes from
    ``sin t`` and ``cos t`` by the angle-addition formula: one sine per position (and
    ``cos t = sqrt(1 - sin^2 t)``, without loss as ``t < pi / 3``; a cosine for Lanczos 2)
    instead of two ``sinc`` per tap.

    Accuracy: the sums of the formula cancel only where ``sin(t + phi_k)`` crosses 0,
    at ``g = 0`` for taps ``order - 1`` and ``2 order - 1`` (whose ``sin phi_k`` is exactly
    0, so no sum is made) and at ``g = 1`` for taps 0 and ``order``. There the absolute
    error of about 1e-16 is a large relative error of a small weight, but in the
    normalised weights it stays about 1e-16 (the other weights scale with it), as long as
    the sign is right: ``g`` stays ``_LANCZOS_GUARD`` below 1 for that. The weights agree
    with ``sinc(d) sinc(d / order)`` normalised to a few 1e-16; positions on a pixel
    centre (``g = 0``) get exactly one weight 1 and zeros, and a tap at ``|d| >= order``
    (``g < 0`` when the rounding of ``first`` leaves one) exactly 0, as
    `WarpingKernel.__call__` gives.
    """
    cosine, sine, shift = _lanczosCoefficients(order)
    g = firstOffset - (order - 1)
    whole = g == 0.0
    anyWhole = bool(whole.any())
    angle = np.where(whole, 0.5, g) if anyWhole else g.copy()
    angle *= np.pi / order
    sinT = np.sin(angle)
    if order == 2:  # t up to pi / 2, where sqrt(1 - sin^2) would lose cos t
        cosT = np.cos(angle)
    else:
        cosT = np.sqrt(1.0 - sinT * sinT)
    weights = np.multiply(sinT, cosine, out=out)
    weights += cosT * sine
    offsets = (np.where(whole, 0.5, g) if anyWhole else g) + shift
    offsets *= offsets
    # g = 1 gives 0/0 here and in the normalisation: those columns are replaced by `taps`
    with np.errstate(invalid="ignore", divide="ignore"):
        weights /= offsets
        # g < 0 (first rounded one too high): the last tap is at d < -order, beyond the
        # support
        weights[-1][g < 0.0] = 0.0
        total = np.add.reduce(weights, axis=0)
        weights *= np.divide(1.0, total, out=total)
    if anyWhole:
        weights[:, whole] = 0.0
        weights[order - 1, whole] = 1.0
    return weights


_KERNELS = {
    "lanczos2": WarpingKernel("lanczos2", 4, 2.0),
    "lanczos3": WarpingKernel("lanczos3", 6, 3.0),
    "lanczos4": WarpingKernel("lanczos4", 8, 4.0),
    "lanczos5": WarpingKernel("lanczos5", 10, 5.0),
    "lanczos6": WarpingKernel("lanczos6", 12, 6.0),
    "lanczos7": WarpingKernel("lanczos7", 14, 7.0),
    "lanczos8": WarpingKernel("lanczos8", 16, 8.0),
    "bilinear": WarpingKernel("bilinear", 2, 1.0),
    "nearest": WarpingKernel("nearest", 1, 0.5),
}


def getWarpingKernel(name: str | WarpingKernel) -> WarpingKernel:
    """Return the warping kernel called ``name``.

    Parameters
    ----------
    name : str or WarpingKernel
        One of `WARPING_KERNELS` (case-insensitive); a `WarpingKernel` is returned as is.

    Returns
    -------
    WarpingKernel

    Raises
    ------
    DcrConfigError
        If the kernel is unknown (the message lists the known ones).

    Examples
    --------
    >>> getWarpingKernel("Lanczos3")
    WarpingKernel(name='lanczos3', size=6, radius=3.0)
    """
    if isinstance(name, WarpingKernel):
        return name
    key = name.lower() if isinstance(name, str) else None
    if key not in _KERNELS:
        raise DcrConfigError(
            f"unknown warping kernel {name!r}; choose one of {', '.join(WARPING_KERNELS)}",
            kernel=name,
        )
    return _KERNELS[key]
