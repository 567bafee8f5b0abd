"""The kernel sum of a warp: resample an image, its variance and its mask at given positions.

`resampleArrays` is the array-level core of `dcrmodel.warp.exposure.warpExposure`. For
every output pixel it takes the source position that sees the same point of the sky
(`dcrmodel.warp.mapping`) and sums the source pixels around it with the separable weights
of a warping kernel (`dcrmodel.warp.kernels`), normalised to sum 1:

- image: ``sum_ij wy_j wx_i I[ky_j, kx_i]``;
- variance: ``sum_ij (wy_j wx_i)^2 V[ky_j, kx_i]``, the variance of that weighted sum of
  independent pixels (the output's noise is correlated between neighbouring pixels, which
  a per-pixel variance cannot say);
- mask: the OR of the bits of every source pixel whose weight is not zero.

An output pixel is *outside the footprint* (``noData``) when a tap of non-zero weight
falls outside the source array, when its position is NaN (the source WCS has no pixel
for it) or when a tap of non-zero weight is a non-finite image or variance value; its
image and variance are 0, never NaN.

The loops run over the kernel's rows of taps, never over pixels, in chunks of output
pixels that stay in the processor's cache: the sum is separable, so for each of the
kernel's rows (6 for Lanczos 3) one gather takes the row's taps of every output pixel of
the chunk from the flattened source (image and variance side by side, so one gather takes
both), and their sum weighted by ``wx`` (by ``wx^2`` for the variance) is weighted by
``wy`` (``wy^2``). Float32 images (with float32 or no variance)
are summed in float32 (the result differs from a float64 sum by a few 1e-7 of the largest
``|value|``), with the kernel's weights interpolated in a table of phases
(`dcrmodel.warp.kernels.WarpingKernel.tabulatedTaps`, within 1e-8 of the exact weights,
about twice as fast); for Lanczos kernels the table holds float32 weights and their
squares side by side (`WarpingKernel.tabulatedWeightPairs`), so that one gather per tap
gives both, already in the layout of the sums (a 1024^2 warp of image, variance and mask
about 1.1 times faster than float64 weights converted and squared per chunk; the results
within float32 rounding of theirs); any other dtype in float64, with the exact weights.
Positions that are all finite (known once per warp) spare the tests of each chunk. The mask's OR
needs no sum per tap: the taps of non-zero weight of an output pixel are a rectangle of
source pixels, and the OR over every rectangle of that size is tabulated once
(`_WindowOr`), so one gather per output pixel reads it; non-finite source values are
found the same way.

Float32 planes under a Lanczos kernel are summed by compiled code when the package was
built with it (`_kernelsum`, a Cython extension; `compiledKernelSums` tells): the same
weights from the same tables and the same sums in the same order, one output pixel at a
time, so the same result bit for bit, without the gathers and temporaries of the array
code (a 1024^2 warp of image, variance and mask about 3 times faster; the positions near
the source's first rows and columns, whose weights come from the exact kernel, are still
summed by the array code). Where the extension is not built, the array code sums
everything.

The chunks are independent (each writes its own slice of the outputs), so they are summed
by a pool of threads, one per available core by default (``threads``): numpy releases
the interpreter's lock in its gathers and arithmetic, and the result is the same, bit for
bit, for any number of threads. This is the same use of the machine's cores as the
solver's Fourier transforms (``scipy.fft`` with ``workers=-1``).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DcrShapeError
from ..parallel import resolveThreads
from .kernels import (
    _LANCZOS_GUARD,
    _TAP_TABLE_BITS,
    DEFAULT_WARPING_KERNEL,
    WarpingKernel,
    getWarpingKernel,
)

try:  # the compiled kernel sums (optional: built with the package where a compiler is)
    from . import _kernelsum
except ImportError:  # pragma: no cover - not built: the array code sums every chunk
    _kernelsum = None

__all__ = ["ResampledArrays", "resampleArrays", "sourceCoverage", "compiledKernelSums"]

# Output pixels per chunk: the arrays of a chunk stay in the processor's cache (measured
# fastest on a 1024 x 1024 warp among chunks of 2**11 to 2**16 pixels; 2**12 and 2**14
# within 5 %).
_CHUNK = 1 << 13
# The same for the compiled sums (`_compiledChunk`), whose work per pixel is all in one
# call: larger chunks spare the calls' overhead (2**15 to 2**17 within 3 % on a 1024 x 1024
# warp, 2**13 8 % slower with 2 threads).
_COMPILED_CHUNK = 1 << 15
# No mask to write (`_kernelsum.kernelSums`).
_NONE_INT32 = np.empty(0, dtype=np.int32)

# Pools of threads that sum chunks, by process and size (made on first use, kept for the
# process; a process forked from one that had a pool makes its own, the threads of the
# parent's not being there).
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    key = (os.getpid(), threads)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="dcrmodel-warp")
        return _POOLS[key]

# Output pixels per chunk of `sourceCoverage`: each chunk's bincount spans the whole source,
# so its chunks are large, but they hold every tap of every pixel (36 for Lanczos 3).
_COVERAGE_CHUNK = 1 << 16


@dataclass(frozen=True)
class ResampledArrays:
    """The result of `resampleArrays`, on the output positions' shape.

    Attributes
    ----------
    image : numpy.ndarray
        Resampled image; 0 where `noData`.
    variance : numpy.ndarray or None
        Propagated variance ``sum w^2 var``; 0 where `noData`; None if no variance was
        given.
    mask : numpy.ndarray or None
        int32 OR of the mask bits of the source pixels touched (non-zero weight); None if
        no mask was given.
    noData : numpy.ndarray of bool
        Output pixels whose kernel footprint is not fully inside the source, whose
        position is undefined, or that touch a non-finite source value.
    """

    image: np.ndarray
    variance: np.ndarray | None
    mask: np.ndarray | None
    noData: np.ndarray


def _checkPlane(name: str, array: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if array is None:
        return None
    arr = np.asarray(array)
    if arr.shape != shape:
        raise DcrShapeError(
            f"{name} shape {arr.shape} must match the image shape {shape}",
            shape=arr.shape, imageShape=shape,
        )
    return arr


def resampleArrays(
    image: Any,
    xSource: Any,
    ySource: Any,
    kernel: str | WarpingKernel = DEFAULT_WARPING_KERNEL,
    variance: Any = None,
    mask: Any = None,
    coverage: Any = None,
    threads: int | None = None,
) -> ResampledArrays:
    """Resample an image (with its variance and mask) at given source positions.

    Parameters
    ----------
    image : array_like
        Source pixels ``(ny, nx)``.
    xSource, ySource : array_like
        Positions to sample, in the source ARRAY's index coordinates (pixel ``[j, i]``
        is centred on ``x = i``, ``y = j``); any matching shapes, which the outputs take.
        NaN marks a position with no source.
    kernel : str or WarpingKernel, optional
        Warping kernel (`dcrmodel.warp.kernels.WARPING_KERNELS`); Lanczos 3 by default.
    variance : array_like, optional
        Source variance, shape of ``image``.
    mask : array_like of int, optional
        Source mask bits, shape of ``image``.
    coverage : array_like, optional
        Divide every source pixel by this (its variance by the square) before the sum:
        with the coverage of `sourceCoverage` the sum over the output is the sum over the
        source (flux is kept); values <= 0 count as 1.
    threads : int, optional
        Threads that sum the chunks of output pixels; None (the default) for one per
        available core, or the limit a caller set with `dcrmodel.parallel.threadLimit`
        (``--threads``; `dcrmodel.parallel.resolveThreads`). The result does not depend on
        it.

    Returns
    -------
    ResampledArrays
        The resampled image (dtype of ``image``, at least float32), variance, mask and the
        map of output pixels outside the footprint.

    Raises
    ------
    DcrShapeError
        If the arrays' shapes do not match.
    DcrConfigError
        If the kernel is unknown.

    Examples
    --------
    A shift by a whole pixel copies the image (exact zeros of the kernel):

    >>> image = np.arange(64.0).reshape(8, 8)
    >>> ys, xs = np.mgrid[0:8, 0:8] + 0.0
    >>> out = resampleArrays(image, xs + 1.0, ys)
    >>> bool(np.array_equal(out.image[:, :7], image[:, 1:])), bool(out.noData[:, 7].all())
    (True, True)
    """
    warpingKernel = getWarpingKernel(kernel)
    source = np.asarray(image)
    if source.ndim != 2:
        raise DcrShapeError("image must be two-dimensional (y, x)", shape=source.shape)
    var = _checkPlane("variance", variance, source.shape)
    bits = _checkPlane("mask", mask, source.shape)
    xs = np.asarray(xSource, dtype=np.float64)
    ys = np.asarray(ySource, dtype=np.float64)
    if xs.shape != ys.shape:
        raise DcrShapeError("xSource and ySource must have the same shape",
                            xShape=xs.shape, yShape=ys.shape)
    outType = np.result_type(source.dtype, np.float32)
    cover = _checkPlane("coverage", coverage, source.shape)
    planes = _SourcePlanes.fromArrays(source, var, bits, cover, warpingKernel.size)
    xFlat, yFlat = xs.ravel(), ys.ravel()
    n = xFlat.size
    outImage = np.zeros(n, dtype=outType)
    outVariance = None if var is None else np.zeros(n, dtype=np.result_type(var.dtype, np.float32))
    outMask = None if bits is None else np.zeros(n, dtype=np.int32)
    noData = np.zeros(n, dtype=bool)

    allFinite = bool(np.isfinite(xFlat).all() and np.isfinite(yFlat).all())
    chunkSize = _COMPILED_CHUNK if _compiles(planes, warpingKernel) else _CHUNK

    def run(start: int) -> None:
        chunk = slice(start, min(start + chunkSize, n))
        result = _resampleChunk(planes, xFlat[chunk], yFlat[chunk], warpingKernel, allFinite)
        outImage[chunk] = result[0]
        if outVariance is not None:
            outVariance[chunk] = result[1]
        if outMask is not None and result[2] is not None:
            outMask[chunk] = result[2]
        noData[chunk] = result[3]

    starts = range(0, n, chunkSize)
    workers = resolveThreads(threads)
    if workers > 1 and len(starts) > 1:
        for _ in _pool(min(workers, len(starts))).map(run, starts):
            pass
    else:
        for start in starts:
            run(start)
    return ResampledArrays(
        outImage.reshape(xs.shape),
        None if outVariance is None else outVariance.reshape(xs.shape),
        None if outMask is None else outMask.reshape(xs.shape),
        noData.reshape(xs.shape),
    )


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
class _SourcePlanes:
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
    ) -> _SourcePlanes:
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


def _axisTaps(
    kernel: WarpingKernel, positions: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Taps along one axis: source indices, weights, and whether the footprint is inside.

    A tap is touched when its weight is not zero and it lies in the source; the index of
    an untouched tap is ``length``, the pad. The footprint is inside when every tap of
    non-zero weight lies in the source.
    """
    first, weights = kernel.taps(positions)
    index = first[np.newaxis] + np.arange(kernel.size)[:, np.newaxis]
    nonZero = weights != 0.0
    inRange = (index >= 0) & (index < length)
    inside = np.all(inRange | ~nonZero, axis=0)
    return np.where(nonZero & inRange, index, length), weights, inside


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
    bit, about 2.5 times slower (float32 Lanczos warps; other warps always use the array
    code).
    """
    return _kernelsum is not None


def _resampleChunk(
    planes: _SourcePlanes, xs: np.ndarray, ys: np.ndarray, kernel: WarpingKernel,
    allFinite: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Kernel sums for one chunk of output positions (flat arrays).

    ``allFinite`` says that every position is finite (known for the whole warp), which
    spares the tests of each chunk. Float32 planes under a Lanczos kernel are summed by
    the compiled code when it is built (`_compiledChunk`), anything else by the array code
    (`_arrayChunk`); both give the same result, bit for bit.
    """
    if _compiles(planes, kernel):
        return _compiledChunk(planes, xs, ys, kernel, allFinite)
    return _arrayChunk(planes, xs, ys, kernel, allFinite)


def _compiles(planes: _SourcePlanes, kernel: WarpingKernel) -> bool:
    """Whether the compiled code sums these planes: float32 and a Lanczos kernel, if built."""
    return (_kernelsum is not None and planes.dtype == np.float32
            and kernel.name.startswith("lanczos"))


def _compiledChunk(
    planes: _SourcePlanes, xs: np.ndarray, ys: np.ndarray, kernel: WarpingKernel,
    allFinite: bool,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """`_resampleChunk` with the image and variance sums compiled (`_kernelsum`).

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
    image = np.empty(n, dtype=np.float32)
    variance = np.empty(n, dtype=np.float32) if planes.hasVariance else None
    noData = np.empty(n, dtype=bool)
    slow = np.empty(n, dtype=bool)
    mask = None if planes.mask is None else np.empty(n, dtype=np.int32)
    slowCount = _kernelsum.kernelSums(
        xs, ys, planes.pixels.view(np.float32), planes.width, planes.margin, nx, ny,
        table, slope, size, pairs, _TAP_TABLE_BITS, _LANCZOS_GUARD,
        image, image if variance is None else variance, noData.view(np.uint8),
        slow.view(np.uint8),
        *_windowPlanes(planes.mask, size, np.int32), _NONE_INT32 if mask is None else mask,
        *_windowPlanes(planes.nonFinite, size, np.uint8),
    )
    if slowCount:  # (nothing of theirs was written above)
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
    planes: _SourcePlanes, xs: np.ndarray, ys: np.ndarray, kernel: WarpingKernel,
    allFinite: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """`_resampleChunk` in numpy: the weights of every tap, then one gather per row of taps."""
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
    planes: _SourcePlanes, base: np.ndarray, wx: np.ndarray, wy: np.ndarray
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


def sourceCoverage(
    shape: tuple[int, int],
    xSource: Any,
    ySource: Any,
    kernel: str | WarpingKernel = DEFAULT_WARPING_KERNEL,
) -> np.ndarray:
    """Return how much of each source pixel the output pixels take: the kernel weights' sums.

    Parameters
    ----------
    shape : tuple of int
        Source array shape ``(ny, nx)``.
    xSource, ySource : array_like
        Positions of the output pixels in the source array's index coordinates (as for
        `resampleArrays`); NaN positions take nothing.
    kernel : str or WarpingKernel, optional
        Warping kernel.

    Returns
    -------
    coverage : numpy.ndarray
        ``c_k = sum_p w_pk`` over the output pixels ``p`` (normalised weights, taps inside
        the source only), shape ``shape``.

    Notes
    -----
    The output of `resampleArrays` sums to ``sum_k c_k I_k``: the kernel sum keeps
    surface brightness (each output pixel's weights sum to 1), not flux, and ``c_k``
    differs from 1 by a moire pattern of up to about 1 % (Lanczos 3, equal pixel scales)
    and by the ratio of pixel areas when the scales differ. Resampling ``I / c`` instead
    (``coverage=c``) keeps the sum exactly, for every source whose pixels are all covered
    by the positions given: give positions of an output grid that reaches beyond the
    pixels of interest by twice the kernel's radius.
    """
    warpingKernel = getWarpingKernel(kernel)
    ny, nx = (int(v) for v in shape)
    xs = np.asarray(xSource, dtype=np.float64).ravel()
    ys = np.asarray(ySource, dtype=np.float64).ravel()
    width = nx + 1  # untouched taps land in a pad column and row, dropped at the end
    total = np.zeros((ny + 1) * width)
    for start in range(0, xs.size, _COVERAGE_CHUNK):
        chunk = slice(start, min(start + _COVERAGE_CHUNK, xs.size))
        cx, cy = xs[chunk], ys[chunk]
        finite = np.isfinite(cx) & np.isfinite(cy)
        kx, wx, _ = _axisTaps(warpingKernel, np.where(finite, cx, 0.0), nx)
        ky, wy, _ = _axisTaps(warpingKernel, np.where(finite, cy, 0.0), ny)
        wy = np.where(finite, wy, 0.0)
        # every tap of the chunk in one bincount (tap (j, i) of pixel p: [j, i, p])
        index = ky[:, np.newaxis] * width + kx[np.newaxis]
        weights = wy[:, np.newaxis] * wx[np.newaxis]
        total += np.bincount(index.ravel(), weights=weights.ravel(), minlength=total.size)
    return total.reshape(ny + 1, width)[:ny, :nx]
