# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
"""Compiled kernel sums of a float32 warp with a tabulated Lanczos kernel.

The same arithmetic as the array code of `dcrmodel.warp.resample` (its float32 path with
the weight tables of `dcrmodel.warp.kernels.WarpingKernel.tabulatedWeightPairs`), one output
pixel at a time: the position clipped, its phase taken exactly, every weight interpolated
in the table (float32, ``slope * fraction + table``), each row of taps summed in order and
weighted, then the rows summed in order. The result is the same bit for bit, provided the
compiler does not fuse a multiply and an add (built with ``-ffp-contract=off``).

Positions whose weights the array code takes from the exact kernel instead of the table
(within ``size`` pixels of 0, or within 1e-8 of the end of a table interval) are only
flagged here (``slow``): the caller sums them with the array code.
"""

from libc.math cimport floor
from libc.stdint cimport int32_t, int64_t, uint8_t

cdef enum:
    MAX_TAPS = 32  # twice the largest Lanczos order's taps (16): pairs of w and w^2


def kernelSums(
    const double[::1] xs,
    const double[::1] ys,
    const float[::1] pixels,
    Py_ssize_t width,
    Py_ssize_t margin,
    Py_ssize_t nx,
    Py_ssize_t ny,
    const float[:, ::1] table,
    const float[:, ::1] slope,
    int size,
    int pairs,
    int phaseBits,
    double guard,
    float[::1] image,
    float[::1] variance,
    uint8_t[::1] noData,
    uint8_t[::1] slow,
    const int32_t[::1] maskPlane,
    const int32_t[::1] maskWindows,
    int32_t[::1] mask,
    const uint8_t[::1] badPlane,
    const uint8_t[::1] badWindows,
):
    """Sum the kernel over ``pixels`` at every position; return the number of slow ones.

    Parameters
    ----------
    xs, ys : memoryview of float64
        Finite positions (source array index coordinates), ``n``.
    pixels : memoryview of float32
        The padded source planes, flattened: ``pairs`` values per pixel (the image, and
        the variance beside it when ``pairs`` is 2), rows of ``width`` pixels, ``margin``
        pixels of zeros on every side of the ``ny x nx`` source.
    table, slope : memoryview of float32
        ``(phases, size * pairs)``: per phase, the weights of the taps (and their squares
        beside them), and the difference to the next phase.
    size, pairs, phaseBits : int
        Taps per axis, values per pixel (1 or 2), log2 of the number of phases.
    guard : float
        Positions within this of the end of the last phase interval are slow (1e-8).
    image, variance : memoryview of float32
        Outputs, ``n`` (``variance`` is not written when ``pairs`` is 1).
    noData : memoryview of uint8
        Output: 1 where a tap of non-zero weight lies outside the ``ny x nx`` source or on
        a non-finite value (``badPlane``), the image and variance then 0; else 0.
    slow : memoryview of uint8
        Output: 1 where the array code takes the kernel's exact weights (nothing else of
        that position is written), else 0.
    maskPlane : memoryview of int32
        The padded source mask (as ``pixels``, one value per pixel), or empty for none.
    maskWindows : memoryview of int32
        The OR of ``maskPlane`` over every window of ``size x size`` pixels, indexed by the
        window's first pixel (empty when ``maskPlane`` is): one read for a full footprint.
    mask : memoryview of int32
        Output (written when ``maskPlane`` is not empty): the OR of ``maskPlane`` over the
        taps of non-zero weight.
    badPlane : memoryview of uint8
        The padded map of non-finite source values, or empty for none: a tap of non-zero
        weight on one also makes the position no data.
    badWindows : memoryview of uint8
        The OR of ``badPlane`` over every window of ``size x size`` pixels, as
        ``maskWindows``.
    """
    _checkArguments(xs.shape[0], ys.shape[0], pixels.shape[0], width, margin, nx, ny,
                    table.shape[0], table.shape[1], slope.shape[0], slope.shape[1], size,
                    pairs, phaseBits, image.shape[0], variance.shape[0], noData.shape[0],
                    slow.shape[0], maskPlane.shape[0], maskWindows.shape[0], mask.shape[0],
                    badPlane.shape[0], badWindows.shape[0])
    cdef Py_ssize_t n = xs.shape[0]
    cdef Py_ssize_t p, j, i, base
    cdef const float* source
    cdef int half = size // 2 - 1
    cdef const float* tx
    cdef const float* ux
    cdef const float* ty
    cdef const float* uy
    cdef int64_t phases = (<int64_t>1) << phaseBits
    cdef int64_t last = phases - 1
    cdef double scale = <double>phases
    cdef double loX = -2.0 * size - 0.5, hiX = nx - 0.5 + 2.0 * size
    cdef double loY = -2.0 * size - 0.5, hiY = ny - 0.5 + 2.0 * size
    cdef double limit = 1.0 - guard * scale
    cdef double x, y, sx, sy, wholeX, wholeY
    cdef int64_t stepX, stepY, indexX, indexY, firstX, firstY
    cdef int64_t startX, countX, startY, countY
    cdef float fx, fy, rowImage, rowVariance
    cdef float sumImage = 0.0, sumVariance = 0.0
    cdef float wx[MAX_TAPS]
    cdef float wy[MAX_TAPS]
    cdef int64_t slowCount = 0
    cdef int count = size * pairs
    cdef bint hasMask = maskPlane.shape[0] > 0
    cdef bint hasBad = badPlane.shape[0] > 0
    cdef uint8_t bad
    cdef bint full
    with nogil:
        for p in range(n):
            x = xs[p]
            y = ys[p]
            # as numpy.clip (positions further out touch only the margin either way)
            if x < loX:
                x = loX
            elif x > hiX:
                x = hiX
            if y < loY:
                y = loY
            elif y > hiY:
                y = hiY
            sx = x * scale
            sy = y * scale
            wholeX = floor(sx)
            wholeY = floor(sy)
            stepX = <int64_t>wholeX
            stepY = <int64_t>wholeY
            indexX = stepX & last
            indexY = stepY & last
            sx = sx - wholeX
            sy = sy - wholeY
            if ((-size < x < size) or (-size < y < size)
                    or (indexX == last and sx > limit) or (indexY == last and sy > limit)):
                slow[p] = 1
                slowCount += 1
                noData[p] = 0
                if hasMask:
                    mask[p] = 0
                continue
            slow[p] = 0
            fx = <float>sx
            fy = <float>sy
            firstX = (stepX >> phaseBits) - half
            firstY = (stepY >> phaseBits) - half
            tx = &table[indexX, 0]
            ux = &slope[indexX, 0]
            ty = &table[indexY, 0]
            uy = &slope[indexY, 0]
            _weights(tx, ux, fx, wx, count)
            _weights(ty, uy, fy, wy, count)
            _footprint(wx, size, pairs, firstX, &startX, &countX)
            _footprint(wy, size, pairs, firstY, &startY, &countY)
            base = ((firstY + margin) * width + firstX + margin) * pairs
            # (the sums stay in this loop: moved into an inline function they measured 17 %
            # slower, 41 against 35 ms per million positions)
            if pairs == 2:
                for j in range(size):
                    source = &pixels[base + j * width * 2]
                    rowImage = source[0] * wx[0]
                    rowVariance = source[1] * wx[1]
                    for i in range(1, size):
                        rowImage = rowImage + source[2 * i] * wx[2 * i]
                        rowVariance = rowVariance + source[2 * i + 1] * wx[2 * i + 1]
                    if j == 0:
                        sumImage = rowImage * wy[0]
                        sumVariance = rowVariance * wy[1]
                    else:
                        sumImage = sumImage + rowImage * wy[2 * j]
                        sumVariance = sumVariance + rowVariance * wy[2 * j + 1]
                image[p] = sumImage
                variance[p] = sumVariance
            else:
                for j in range(size):
                    source = &pixels[base + j * width]
                    rowImage = source[0] * wx[0]
                    for i in range(1, size):
                        rowImage = rowImage + source[i] * wx[i]
                    if j == 0:
                        sumImage = rowImage * wy[0]
                    else:
                        sumImage = sumImage + rowImage * wy[j]
                image[p] = sumImage
            bad = 0
            if hasMask or hasBad:
                base = (startY + margin) * width + startX + margin
                full = countX == size and countY == size
                if hasMask:
                    mask[p] = (maskWindows[base] if full else
                               _windowOr(&maskPlane[base], width, countX, countY))
                if hasBad:
                    bad = (badWindows[base] if full else
                           _windowOr(&badPlane[base], width, countX, countY))
            if (bad or startX < 0 or startX + countX > nx
                    or startY < 0 or startY + countY > ny):
                noData[p] = 1
                image[p] = 0.0
                if pairs == 2:
                    variance[p] = 0.0
            else:
                noData[p] = 0
    return slowCount


cdef void _checkArguments(
    Py_ssize_t numX, Py_ssize_t numY, Py_ssize_t numPixels, Py_ssize_t width,
    Py_ssize_t margin, Py_ssize_t nx, Py_ssize_t ny, Py_ssize_t tableRows,
    Py_ssize_t tableColumns, Py_ssize_t slopeRows, Py_ssize_t slopeColumns, int size,
    int pairs, int phaseBits, Py_ssize_t numImage, Py_ssize_t numVariance,
    Py_ssize_t numNoData, Py_ssize_t numSlow, Py_ssize_t numMaskPlane,
    Py_ssize_t numMaskWindows, Py_ssize_t numMask, Py_ssize_t numBadPlane,
    Py_ssize_t numBadWindows,
) except *:
    """Raise ValueError unless every buffer of `kernelSums` holds what the loop reads."""
    cdef Py_ssize_t planeSize = (ny + 2 * margin) * width
    if size < 1 or pairs < 1 or pairs > 2 or size * pairs > MAX_TAPS:
        raise ValueError(f"{size} taps of {pairs} values do not fit {MAX_TAPS} weights")
    if margin < 3 * size or width != nx + 2 * margin:
        raise ValueError("the planes need a margin of 3 kernel sizes on every side")
    if numPixels != planeSize * pairs:
        raise ValueError("the planes' size does not match their shape and margin")
    if ((numMaskPlane > 0 and (numMaskPlane != planeSize or numMaskWindows != numMaskPlane
                               or numMask < numX))
            or (numBadPlane > 0 and (numBadPlane != planeSize
                                     or numBadWindows != numBadPlane))):
        raise ValueError("the mask or non-finite planes do not match the pixels")
    if (numY != numX or numImage < numX or (pairs == 2 and numVariance < numX)
            or numNoData < numX or numSlow < numX):
        raise ValueError("the positions and outputs differ in length")
    if tableColumns < size * pairs or slopeColumns < size * pairs:
        raise ValueError("the weight tables have fewer columns than taps")
    if tableRows < (1 << phaseBits) or slopeRows < (1 << phaseBits):
        raise ValueError("the weight tables have fewer rows than phases")


cdef inline void _weights(const float* table, const float* slope, float fraction,
                          float* weights, int count) noexcept nogil:
    """`_interpolate`, with a constant count for the common kernels (Lanczos 2 to 4, with
    and without the variance), which lets the compiler use vector instructions."""
    if count == 12:
        _interpolate(table, slope, fraction, weights, 12)
    elif count == 16:
        _interpolate(table, slope, fraction, weights, 16)
    elif count == 8:
        _interpolate(table, slope, fraction, weights, 8)
    else:
        _interpolate(table, slope, fraction, weights, count)


ctypedef fused WindowValue:
    int32_t
    uint8_t


cdef inline WindowValue _windowOr(const WindowValue* plane, Py_ssize_t width, int64_t countX,
                                  int64_t countY) noexcept nogil:
    """The OR of a window of ``countY`` rows of ``countX`` values (mask bits, or the map of
    non-finite values)."""
    cdef int64_t j, i
    cdef WindowValue bits = 0
    for j in range(countY):
        for i in range(countX):
            bits = bits | plane[j * width + i]
    return bits


cdef inline void _interpolate(const float* table, const float* slope, float fraction,
                              float* weights, int count) noexcept nogil:
    """The weights of one phase, ``slope * fraction + table``, rounded as numpy rounds them
    (a product, then a sum)."""
    cdef int k
    for k in range(count):
        weights[k] = slope[k] * fraction
        weights[k] = weights[k] + table[k]


cdef inline void _footprint(float* weights, int size, int pairs, int64_t first,
                            int64_t* start, int64_t* count) noexcept nogil:
    """The taps of non-zero weight: all ``size`` from ``first`` unless the first or last
    weight is 0 (a position on a pixel centre), then from the first non-zero one."""
    cdef int k, found = -1, nonZero = 0
    if weights[0] != 0.0 and weights[(size - 1) * pairs] != 0.0:
        start[0] = first
        count[0] = size
        return
    for k in range(size):
        if weights[k * pairs] != 0.0:
            nonZero += 1
            if found < 0:
                found = k
    start[0] = first + (found if found >= 0 else 0)
    count[0] = nonZero
