"""The kernel sums of one chunk of output pixels (`dcrmodel.warp.resample`).

`SourcePlanes` holds a warp's source planes ready for the sums (padded, flattened, the
image and variance side by side); `sumChunk` sums the kernel over them at a chunk of
positions, giving the image, variance, mask and ``NO_DATA`` of those output pixels as
`dcrmodel.warp.resample.resampleArrays` defines them.

The array code's loops run over the kernel's rows of taps, never over pixels, in chunks of
output pixels that stay in the processor's cache: the sum is separable, so for each of the
kernel's rows (6 for Lanczos 3) one gather takes the row's taps of every output pixel of
the chunk from the flattened source (image and variance side by side, so one gather takes
both), and their sum weighted by ``wx`` (by ``wx^2`` for the variance) is weighted by
``wy`` (``wy^2``). Float32 images (with float32 or no variance) are summed in float32 (the
result differs from a float64 sum by a few 1e-7 of the largest ``|value|``), with the
kernel's weights interpolated in a table of phases
(`dcrmodel.warp.kernels.WarpingKernel.tabulatedTaps`, within 1e-8 of the exact weights,
about twice as fast); for Lanczos kernels the table holds float32 weights and their
squares side by side (`WarpingKernel.tabulatedWeightPairs`), so that one gather per tap
gives both, already in the layout of the sums (a 1024^2 warp of image, variance and mask
about 1.1 times faster than float64 weights converted and squared per chunk; the results
within float32 rounding of theirs); any other dtype in float64, with the exact weights.
Positions that are all finite (known once per warp) spare the tests of each chunk. The
mask's OR needs no sum per tap: the taps of non-zero weight of an output pixel are a
rectangle of source pixels, and the OR over every rectangle of that size is tabulated once
(`_WindowOr`), so one gather per output pixel reads it; non-finite source values are found
the same way.

Float32 planes under a Lanczos kernel are summed by compiled code when the package was
built with it (`_kernelsum`, a Cython extension; `compiledKernelSums` tells): the same
weights from the same tables and the same sums in the same order, one output pixel at a
time, so the same result bit for bit, without the gathers and temporaries of the array
code (the kernel sum of a 1024^2 warp of image and variance 2.8 times faster on one thread,
4.7 times on two); it reads the mask and the non-finite map over the same footprints, from
the same tables of window ORs. The positions near the source's first rows and columns,
whose weights come from the exact kernel, are still summed by the array code. Where the
extension is not built, the array code sums everything.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .kernels import _LANCZOS_GUARD, _TAP_TABLE_BITS, WarpingKernel

try:  # the compiled kernel sums (optional: built with the package where a compiler is)
    from . import _kernelsum
except ImportError:  # pragma: no cover - not built: the array code sums every chunk
    _kernelsum = None

__all__ = ["ChunkSums", "SourcePlanes", "compiledKernelSums", "sumChunk", "usesCompiledSums"]

#: The sums of a chunk: image, variance (or None), mask (or None) and ``NO_DATA``.
ChunkSums = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]

# Most taps per axis of the compiled sums (their buffers hold 32 weights: pairs of 16).
_COMPILED_MAX_TAPS = 16
# No mask to write (`_kernelsum.kernelSums`).
_NONE_INT32 = np.empty(0, dtype=np.int32)


class _WindowOr:
    """The OR of an integer (or bool) plane over every window of ``ly x lx`` pixels.

    ``table(ly, lx)[r, c]`` is the OR of ``plane[r:r + ly, c:c + lx]`` (nothing beyond the
    plane's edge), built on first use and kept, so that the OR over the taps of an output
    pixel is one gather.
    """

    def __init__(self, plane: np.ndarray) -> None:
        self.plane = plane
        self._tables: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def table(self, ly: int, lx: int) -> np.ndarray:
        """Return the ORs over the windows of ``ly`` rows and ``lx`` columns, flattened."""
        with self._lock:  # chunks summed by several threads share the tables
            if (ly, lx) not in self._tables:
                rows = _slidingOr(self.plane, lx, axis=1)
                self._tables[(ly, lx)] = _slidingOr(rows, ly, axis=0).ravel()
            return self._tables[(ly, lx)]

    def gather(self, index: np.ndarray, ly: np.ndarray | int, lx: np.ndarray | int) -> np.ndarray:
        """Return the ORs over the ``ly x lx`` windows whose first pixel is at flat ``index``.

        ``ly`` and ``lx`` are per window, or one size for all.
        """
        if isinstance(ly, int) and isinstance(lx, int):
            return np.take(self.table(ly, lx), index)
        key = ly * 256 + lx
        if key.min() == key.max():
            return np.take(self.table(int(ly[0]), int(lx[0])), index)
        out = np.empty(index.shape, dtype=self.plane.dtype)
        for value in np.flatnonzero(np.bincount(key)):
            select = key == value
            table = self.table(int(value) // 256, int(value) % 256)
            out[select] = np.take(table, index[select])
        return out


def _slidingOr(plane: np.ndarray, length: int, axis: int) -> np.ndarray:
    """OR of ``plane`` over windows of ``length`` pixels from each pixel along ``axis``.

    Windows double until the next doubling would pass ``length`` (1, 2, 4 pixels), then
    two overlapping ones make up the length (6 = 4 | 4 shifted by 2): three shifted ORs
    for 6 pixels, not five. Windows are cut at the plane's edge.
    """
    result, covered = plane, 1
    while covered < length:
        shift = min(covered, length - covered)
        grown = np.empty_like(result)
        lead = [slice(None)] * plane.ndim
        lead[axis] = slice(None, -shift)
        tail = list(lead)
        tail[axis] = slice(shift, None)
        end = list(lead)
        end[axis] = slice(-shift, None)
        np.bitwise_or(result[tuple(lead)], result[tuple(tail)], out=grown[tuple(lead)])
        grown[tuple(end)] = result[tuple(end)]
        result, covered = grown, covered + shift
    return result


@dataclass(frozen=True)
class SourcePlanes:
    """Source planes with a margin of zeros on every side, ready for the kernel sums.

    ``pixels`` holds the image, or the image and variance side by side (pixel ``p`` is
    ``pixels[p]``, a pair viewed as one item, so that one gather takes both), flattened:
    float32 for a float32 image (and variance), float64 otherwise. Non-finite values are
    replaced by 0 and flagged in `nonFinite`. The margin holds every tap of a position
    clipped to within ``2 size`` pixels of the source (`_axisFootprint`), so the kernel
    sums need no test per tap; taps outside the source read zeros.
    """

    shape: tuple[int, int]
    margin: int
    dtype: np.dtype
    pixels: np.ndarray
    hasVariance: bool
    mask: _WindowOr | None  # None when no mask was given or no bit is set
    nonFinite: _WindowOr | None  # None when every value is finite

    @property
    def width(self) -> int:
        """Row length of the padded planes."""
        return self.shape[1] + 2 * self.margin

    @classmethod
    def fromArrays(
        cls,
        image: np.ndarray,
        variance: np.ndarray | None,
        mask: np.ndarray | None,
        coverage: np.ndarray | None,
        kernelSize: int,
    ) -> SourcePlanes:
        """Return the planes of ``image`` (with ``variance`` and ``mask`` when given).

        Each source pixel is divided by ``coverage`` (its variance by the square) when
        given (`dcrmodel.warp.resample.resampleArrays`); ``kernelSize`` sets the margin.
        """
        # float32 of either byte order (FITS data are big-endian), summed in native float32
        single = _isFloat32(image.dtype) and (variance is None or _isFloat32(variance.dtype))
        dtype = np.dtype(np.float32 if single else np.float64)
        margin = 3 * kernelSize
        work = dtype if coverage is None else np.float64  # divide in float64
        values = np.asarray(image, dtype=work)
        bad = ~np.isfinite(values)
        if variance is not None:
            variance = np.asarray(variance, dtype=work)
            bad |= ~np.isfinite(variance)
        if coverage is not None:
            cover = np.asarray(coverage, dtype=np.float64)
            cover = np.where(cover > 0.0, cover, 1.0)
            with np.errstate(invalid="ignore", over="ignore"):
                values = values / cover
                if variance is not None:
                    variance = variance / cover**2
        nonFinite = None
        if bad.any():
            nonFinite = _WindowOr(_padded(bad, margin))
            values = np.where(bad, 0.0, values)
            if variance is not None:
                variance = np.where(bad, 0.0, variance)
        if variance is None:
            pixels = _padded(values.astype(dtype, copy=False), margin).ravel()
        else:
            pixels = np.zeros((values.shape[0] + 2 * margin, values.shape[1] + 2 * margin, 2),
                              dtype=dtype)
            inner = (slice(margin, -margin), slice(margin, -margin))
            pixels[inner + (0,)] = values
            pixels[inner + (1,)] = variance
            pixels = pixels.view(np.int64 if single else np.complex128).ravel()
        bits = None
        if mask is not None and np.any(mask):
            bits = _WindowOr(_padded(np.asarray(mask, dtype=np.int32), margin))
        return cls(values.shape, margin, dtype, pixels, variance is not None, bits, nonFinite)


def _isFloat32(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is a 4-byte float, in either byte order."""
    return dtype.kind == "f" and dtype.itemsize == 4


def _padded(array: np.ndarray, margin: int) -> np.ndarray:
    """Return ``array`` with ``margin`` rows and columns of zeros on every side."""
    return np.pad(array, margin)


@dataclass(frozen=True)
class _AxisFootprint:
    """The taps of a chunk of positions along one axis (see `_axisFootprint`)."""

    first: np.ndarray
    weights: np.ndarray
    start: np.ndarray
    count: np.ndarray
    inside: np.ndarray
    full: bool  # every position has all its taps of non-zero weight (count == size)


def _axisFootprint(
    kernel: WarpingKernel, positions: np.ndarray, length: int, tabulated: bool,
    pairs: int = 0,
) -> _AxisFootprint:
    """Taps along one axis of finite positions, and which of them carry weight.

    The positions are first clipped to within ``2 kernel.size`` pixels of the source: a
    position further out touches only pixels outside the source either way. ``first`` and
    ``weights`` are those of `WarpingKernel.taps`, or with ``tabulated`` of
    `WarpingKernel.tabulatedTaps` (the same taps and zeros, weights within 1e-8); the taps
    of non-zero weight are the ``count`` taps from ``start`` (a source index). They are
    contiguous for every kernel: all taps but those beyond the support, or the one tap at
    offset 0 of a position on a pixel centre. ``inside`` tells whether all of them lie in
    the source. With ``pairs`` (1 or 2; tabulated Lanczos kernels only) the weights are
    those of `WarpingKernel.tabulatedWeightPairs`, float32 ``(size, n, pairs)``: ``w``, and
    ``w^2`` beside it when ``pairs`` is 2.
    """
    size = kernel.size
    # (half-way between pixels, so that the clipped positions' taps all carry weight)
    clipped = np.clip(positions, -2 * size - 0.5, length - 0.5 + 2 * size)
    if pairs:
        first, weights = kernel.tabulatedWeightPairs(clipped, pairs == 2)
        plain = weights[..., 0]
        # a Lanczos weight is 0 only off the one tap of a position on a pixel centre (or
        # beyond the support near 0), and then so is the first or the last tap's
        partial = plain[0] == 0.0
        partial |= plain[-1] == 0.0
    else:
        first, plain = kernel.tabulatedTaps(clipped) if tabulated else kernel.taps(clipped)
        weights = plain
        partial = ~np.logical_and.reduce(plain, axis=0)  # some weight is 0
    full = not partial.any()
    if full:  # (the common case: no test per position)
        start, count = first, np.full(first.shape, size)
        inside = first >= 0
        inside &= first <= length - size
        return _AxisFootprint(first, weights, start, count, inside, full)
    start = first.copy()
    count = np.full(first.shape, size)
    some = plain[:, partial] != 0.0
    start[partial] += some.argmax(axis=0)
    count[partial] = np.count_nonzero(some, axis=0)
    inside = (start >= 0) & (start + count <= length)
    return _AxisFootprint(first, weights, start, count, inside, full)


def compiledKernelSums() -> bool:
    """Return whether the compiled kernel sums are available (built with the package).

    Without them every chunk is summed by the array code, with the same result bit for
    bit, slower (a 1024^2 float32 Lanczos 3 kernel sum with variance: 2.8 times on one
    thread, 4.7 times on two; other warps always use the array code).
    """
    return _kernelsum is not None


def sumChunk(
    planes: SourcePlanes, xs: np.ndarray, ys: np.ndarray, kernel: WarpingKernel,
    allFinite: bool = False, out: ChunkSums | None = None,
) -> ChunkSums:
    """Kernel sums for one chunk of output positions (flat arrays).

    Returns the image, variance (None without one), mask (None without a mask bit set)
    and ``NO_DATA`` of the chunk's output pixels; with ``out`` (arrays of the chunk's
    length, of those dtypes: float32 or float64, int32, bool), written into those instead.
    ``allFinite`` says that every position is finite (known for the whole warp), which
    spares the tests of each chunk. Float32 planes under a Lanczos kernel are summed by
    the compiled code when it is built (`_compiledChunk`), anything else by the array code
    (`_arrayChunk`); both give the same result, bit for bit.
    """
    if usesCompiledSums(planes, kernel):
        return _compiledChunk(planes, xs, ys, kernel, allFinite, out)
    result = _arrayChunk(planes, xs, ys, kernel, allFinite)
    if out is None:
        return result
    for target, values in zip(out, result, strict=True):
        if target is not None and values is not None:
            target[...] = values
    return out


def usesCompiledSums(planes: SourcePlanes, kernel: WarpingKernel) -> bool:
    """Whether the compiled code sums these planes: float32 and a Lanczos kernel, if built.

    The compiled code holds at most `_COMPILED_MAX_TAPS` taps per axis (Lanczos 8).
    """
    return (_kernelsum is not None and planes.dtype == np.float32
            and kernel.name.startswith("lanczos") and kernel.size <= _COMPILED_MAX_TAPS)


def _compiledChunk(
    planes: SourcePlanes, xs: np.ndarray, ys: np.ndarray, kernel: WarpingKernel,
    allFinite: bool, out: ChunkSums | None = None,
) -> ChunkSums:
    """`sumChunk` with the image and variance sums compiled (`_kernelsum`).

    The compiled code sums each position in the array code's order, from the same float32
    weight tables (`WarpingKernel.phaseTables`), and ORs the mask and the non-finite map
    over the same footprint of taps of non-zero weight; the few positions whose weights
    the array code takes from the exact kernel (within ``size`` pixels of the source's
    first row or column, or at the very end of a table interval) are summed by the array
    code itself.
    """
    ny, nx = planes.shape
    finite = None
    if not allFinite:
        finite = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = np.where(finite, xs, 0.0), np.where(finite, ys, 0.0)
    xs = np.ascontiguousarray(xs, dtype=np.float64)
    ys = np.ascontiguousarray(ys, dtype=np.float64)
    n = xs.size
    size, pairs = kernel.size, (2 if planes.hasVariance else 1)
    table, slope = kernel.phaseTables(planes.hasVariance)
    if out is None:
        out = (np.empty(n, dtype=np.float32),
               np.empty(n, dtype=np.float32) if planes.hasVariance else None,
               None if planes.mask is None else np.empty(n, dtype=np.int32),
               np.empty(n, dtype=bool))
    image, variance, noData = out[0], out[1] if planes.hasVariance else None, out[3]
    mask = None if planes.mask is None else out[2]
    slow = np.empty(n, dtype=bool)
    slowCount = _kernelsum.kernelSums(
        xs, ys, planes.pixels.view(np.float32), planes.width, planes.margin, nx, ny,
        table, slope, size, pairs, _TAP_TABLE_BITS, _LANCZOS_GUARD,
        image, image if variance is None else variance, noData.view(np.uint8),
        slow.view(np.uint8),
        *_windowPlanes(planes.mask, size, np.int32), _NONE_INT32 if mask is None else mask,
        *_windowPlanes(planes.nonFinite, size, np.uint8),
    )
    if slowCount:  # (their sums were not made above)
        again = _arrayChunk(planes, xs[slow], ys[slow], kernel, True)
        image[slow] = again[0]
        if variance is not None:
            variance[slow] = again[1]
        if mask is not None:
            mask[slow] = again[2]
        noData[slow] = again[3]
    if finite is not None:
        noData |= ~finite
        image[~finite] = 0.0
        if variance is not None:
            variance[~finite] = 0.0
    return image, variance, mask, noData


def _windowPlanes(
    windows: _WindowOr | None, size: int, dtype: type
) -> tuple[np.ndarray, np.ndarray]:
    """Return a padded plane and its ORs over ``size x size`` windows, flat (`_kernelsum`).

    Empty arrays for no plane.
    """
    if windows is None:
        empty = np.empty(0, dtype=dtype)
        return empty, empty
    return windows.plane.view(dtype).ravel(), windows.table(size, size).view(dtype)


def _arrayChunk(
    planes: SourcePlanes, xs: np.ndarray, ys: np.ndarray, kernel: WarpingKernel,
    allFinite: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """`sumChunk` in numpy: the weights of every tap, then one gather per row of taps."""
    ny, nx = planes.shape
    # float32 sums round to a few 1e-8: tabulated weights (within 1e-8) are enough there,
    # in float32 with their squares for the variance (Lanczos kernels)
    tabulated = planes.dtype == np.float32
    pairs = (2 if planes.hasVariance else 1) if (
        tabulated and kernel.name.startswith("lanczos")) else 0
    if allFinite:
        finite = None
    else:
        # Undefined positions sample pixel 0 (harmlessly) and are flagged below.
        finite = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = np.where(finite, xs, 0.0), np.where(finite, ys, 0.0)
    footX = _axisFootprint(kernel, xs, nx, tabulated, pairs)
    footY = _axisFootprint(kernel, ys, ny, tabulated, pairs)
    inside = footX.inside & footY.inside
    if finite is not None:
        inside &= finite
    noData = ~inside
    margin, width = planes.margin, planes.width
    image, variance = _kernelSums(planes, (footY.first + margin) * width + footX.first + margin,
                                  footX.weights, footY.weights)
    mask = None
    if planes.mask is not None or planes.nonFinite is not None:
        windows = (footY.start + margin) * width + footX.start + margin
        # every window size*size (the common case): one table, no test per position
        counts = (kernel.size, kernel.size) if footX.full and footY.full else (
            footY.count, footX.count)
        if planes.mask is not None:
            mask = planes.mask.gather(windows, *counts)
        if planes.nonFinite is not None:
            noData |= planes.nonFinite.gather(windows, *counts)
    if not inside.all():
        image[noData] = 0.0
        if variance is not None:
            variance[noData] = 0.0
    return image, variance, mask, noData


def _kernelSums(
    planes: SourcePlanes, base: np.ndarray, wx: np.ndarray, wy: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """``sum_j wy_j sum_i wx_i I[base + j width + i]``, and the variance's with ``w^2``.

    One gather per row of taps (the row's taps of every position at once, image and
    variance together), and the sums in the planes' dtype. ``wx`` and ``wy`` are the
    weights ``(size, n)``, or already ``(size, n, pairs)`` in the planes' dtype with their
    squares beside them (`WarpingKernel.tabulatedWeightPairs`).
    """
    size, n = wx.shape[:2]
    dtype = planes.dtype
    pairs = 2 if planes.hasVariance else 1
    if wx.ndim == 3:
        weightsX, weightsY = wx, wy
    else:
        weightsX = np.empty((size, n, pairs), dtype=dtype)
        weightsY = np.empty((size, n, pairs), dtype=dtype)
        weightsX[..., 0] = wx
        weightsY[..., 0] = wy
        if planes.hasVariance:
            np.multiply(weightsX[..., 0], weightsX[..., 0], out=weightsX[..., 1])
            np.multiply(weightsY[..., 0], weightsY[..., 0], out=weightsY[..., 1])
    index = base + np.arange(size)[:, np.newaxis]  # the first row's taps
    gathered = np.empty((size, n), dtype=planes.pixels.dtype)
    values = gathered.view(dtype).reshape(size, n, pairs)
    rows = np.empty((size, n, pairs), dtype=dtype)
    for j in range(size):
        # row j's taps: the same indices in the planes from row j on; every index is
        # inside the padded planes ("clip" only spares the bounds test)
        np.take(planes.pixels[j * planes.width:], index, out=gathered, mode="clip")
        values *= weightsX
        np.add.reduce(values, axis=0, out=rows[j])
    rows *= weightsY
    sums = np.add.reduce(rows, axis=0)
    return sums[:, 0], (sums[:, 1] if planes.hasVariance else None)
