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

The sums of each chunk of output pixels are those of `dcrmodel.warp.chunksums` (the array
code, or compiled code where the package was built with it: the same result bit for bit).

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
from .chunksums import SourcePlanes, sumChunk, usesCompiledSums
from .kernels import DEFAULT_WARPING_KERNEL, WarpingKernel, getWarpingKernel

__all__ = ["ResampledArrays", "resampleArrays", "sourceCoverage"]

# Output pixels per chunk: the arrays of a chunk stay in the processor's cache (measured
# fastest on a 1024 x 1024 warp among chunks of 2**11 to 2**16 pixels; 2**12 and 2**14
# within 5 %).
_CHUNK = 1 << 13
# The same for the compiled sums (`dcrmodel.warp.chunksums`), whose work per pixel is all in one
# call: larger chunks spare the calls' overhead (2**15 to 2**17 within 3 % on a 1024 x 1024
# warp, 2**13 8 % slower with 2 threads).
_COMPILED_CHUNK = 1 << 15

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
    planes = SourcePlanes.fromArrays(source, var, bits, cover, warpingKernel.size)
    xFlat, yFlat = xs.ravel(), ys.ravel()
    n = xFlat.size
    outImage = np.zeros(n, dtype=outType)
    outVariance = None if var is None else np.zeros(n, dtype=np.result_type(var.dtype, np.float32))
    outMask = None if bits is None else np.zeros(n, dtype=np.int32)
    noData = np.zeros(n, dtype=bool)

    allFinite = bool(np.isfinite(xFlat).all() and np.isfinite(yFlat).all())
    chunkSize = _COMPILED_CHUNK if usesCompiledSums(planes, warpingKernel) else _CHUNK

    def run(start: int) -> None:
        chunk = slice(start, min(start + chunkSize, n))
        sumChunk(planes, xFlat[chunk], yFlat[chunk], warpingKernel, allFinite, out=(
            outImage[chunk], None if outVariance is None else outVariance[chunk],
            None if outMask is None else outMask[chunk], noData[chunk]))

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
