"""The kernel sum over image, variance and mask (dcrmodel.warp.resample)."""

import numpy as np
import pytest

from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.warp.kernels import getWarpingKernel
from dcrmodel.warp.resample import resampleArrays, sourceCoverage


def _rotatedPositions(shape, angle=37.0, shift=(0.31, -0.27), centre=None):
    """Source positions of an output grid rotated by ``angle`` degrees and shifted."""
    ny, nx = shape
    cy, cx = ((ny - 1) / 2, (nx - 1) / 2) if centre is None else centre
    ys, xs = np.mgrid[0:ny, 0:nx].astype(float)
    t = np.deg2rad(angle)
    x = np.cos(t) * (xs - cx) - np.sin(t) * (ys - cy) + cx + shift[0]
    y = np.sin(t) * (xs - cx) + np.cos(t) * (ys - cy) + cy + shift[1]
    return x, y


def _outside(kernel, positions, length):
    """Independent footprint test: a tap of non-zero weight lies outside [0, length)."""
    reach = np.ceil(kernel.radius) if kernel.name != "nearest" else 0.5
    if kernel.name == "nearest":
        nearest = np.floor(positions + 0.5)
        return (nearest < 0) | (nearest > length - 1)
    lo = np.floor(positions - reach + 1)  # first pixel within the open support
    hi = np.ceil(positions + reach - 1)
    return (lo < 0) | (hi > length - 1)


def test_constant_image_stays_constant_and_variance_follows_the_weights():
    image = np.full((40, 40), 7.0)
    variance = np.full((40, 40), 2.0)
    x, y = _rotatedPositions((40, 40), angle=20.0)
    out = resampleArrays(image, x, y, "lanczos3", variance=variance)
    inside = ~out.noData
    assert inside.sum() > 500
    np.testing.assert_allclose(out.image[inside], 7.0, rtol=1e-12)
    # sum w^2 var: less than var (noise averaged), more than var / 36
    assert np.all(out.variance[inside] < 2.0) and np.all(out.variance[inside] > 2.0 / 36)
    kernel = getWarpingKernel("lanczos3")
    _, wx = kernel.taps(x)
    _, wy = kernel.taps(y)
    expected = 2.0 * (wx**2).sum(axis=0) * (wy**2).sum(axis=0)
    np.testing.assert_allclose(out.variance[inside], expected[inside], rtol=1e-12)


@pytest.mark.parametrize("kernel", ["lanczos3", "bilinear"])
def test_variance_against_monte_carlo(kernel):
    # 2000 noise realisations with a variance that changes across the image, side by side
    # in one wide image (tiles of 24 x 24, outputs in the centre of each tile, so no kernel
    # reaches a neighbouring tile); the empirical variance of each output pixel over the
    # realisations must match sum w^2 var. With 2000 realisations a per-pixel variance
    # is known to sqrt(2/1999) = 3.2 %.
    rng = np.random.default_rng(5)
    realisations, size = 2000, 24
    ys, xs = np.mgrid[0:size, 0:size]
    tileVariance = 0.5 + 2.0 * xs / size + 1.0 * (ys > 12)
    variance = np.tile(tileVariance, (1, realisations))
    image = rng.normal(0.0, np.sqrt(variance))
    x, y = _rotatedPositions((8, 8), angle=31.0, centre=(3.5, 3.5))
    x, y = x + 8.0, y + 8.0
    offsets = size * np.arange(realisations)
    out = resampleArrays(image, x[None] + offsets[:, None, None],
                         np.broadcast_to(y, (realisations, 8, 8)), kernel, variance=variance)
    assert not out.noData.any()
    empirical = out.image.var(axis=0, ddof=1)
    propagated = out.variance[0]
    np.testing.assert_allclose(out.variance, np.broadcast_to(propagated, out.variance.shape))
    ratio = empirical / propagated
    assert np.all(np.abs(ratio - 1.0) < 5 * np.sqrt(2 / (realisations - 1)))
    assert abs(ratio.mean() - 1.0) < 0.015
    # interpolating the variance (sum w var) instead would be off by 27 % (Lanczos 3) to 2x
    naive = resampleArrays(variance[:, :size], x, y, kernel).image
    assert np.mean(naive / propagated) > 1.2


@pytest.mark.parametrize("kernel", ["lanczos3", "lanczos2", "bilinear", "nearest"])
def test_one_bad_pixel_flags_exactly_the_outputs_whose_kernel_touches_it(kernel):
    mask = np.zeros((50, 50), dtype=np.int32)
    mask[24, 27] = 0b101
    x, y = _rotatedPositions((50, 50))
    out = resampleArrays(np.zeros((50, 50)), x, y, kernel, mask=mask)
    warpingKernel = getWarpingKernel(kernel)
    if kernel == "nearest":
        touches = (np.floor(x + 0.5) == 27) & (np.floor(y + 0.5) == 24)
    else:
        touches = (np.abs(x - 27) < warpingKernel.radius) & (np.abs(y - 24) < warpingKernel.radius)
    assert np.array_equal(out.mask != 0, touches)
    assert np.all(out.mask[touches] == 0b101)
    expectedCount = {"lanczos3": 36, "lanczos2": 16, "bilinear": 4, "nearest": 1}[kernel]
    assert abs(touches.sum() - expectedCount) <= expectedCount // 3 + 1


@pytest.mark.parametrize("kernel", ["lanczos3", "bilinear", "nearest"])
def test_no_data_outside_the_footprint(kernel):
    rng = np.random.default_rng(2)
    image = rng.normal(size=(30, 40)) + 5.0
    x, y = _rotatedPositions((50, 50), angle=37.0, centre=(24.5, 24.5))
    x, y = x - 5.0, y - 10.0
    out = resampleArrays(image, x, y, kernel, variance=np.ones_like(image))
    warpingKernel = getWarpingKernel(kernel)
    expected = _outside(warpingKernel, x, 40) | _outside(warpingKernel, y, 30)
    assert np.array_equal(out.noData, expected)
    assert 0 < expected.sum() < expected.size
    assert np.all(out.image[expected] == 0.0) and np.all(out.variance[expected] == 0.0)
    assert np.all(out.image[~expected] != 0.0)
    assert np.all(np.isfinite(out.image)) and np.all(np.isfinite(out.variance))


def test_undefined_positions_and_non_finite_inputs():
    image = np.ones((30, 30))
    image[15, 15] = np.nan
    variance = np.ones((30, 30))
    variance[5, 5] = np.inf
    x, y = _rotatedPositions((30, 30), angle=10.0)
    x[0, :3] = np.nan
    out = resampleArrays(image, x, y, "lanczos3", variance=variance)
    assert out.noData[0, :3].all()
    near = (np.abs(x - 15) < 3) & (np.abs(y - 15) < 3)
    near |= (np.abs(x - 5) < 3) & (np.abs(y - 5) < 3)
    assert out.noData[near].all()
    assert np.all(np.isfinite(out.image)) and np.all(np.isfinite(out.variance))
    assert np.all(out.image[out.noData] == 0.0)


def test_whole_pixel_shift_copies_everything():
    rng = np.random.default_rng(3)
    image = rng.normal(size=(20, 30)).astype(np.float32)
    variance = rng.uniform(1.0, 2.0, size=(20, 30)).astype(np.float32)
    mask = rng.integers(0, 4, size=(20, 30)).astype(np.int32)
    ys, xs = np.mgrid[0:20, 0:30].astype(float)
    out = resampleArrays(image, xs - 2.0, ys + 1.0, "lanczos3", variance=variance, mask=mask)
    assert out.image.dtype == np.float32
    np.testing.assert_array_equal(out.image[:-1, 2:], image[1:, :-2])
    np.testing.assert_array_equal(out.variance[:-1, 2:], variance[1:, :-2])
    np.testing.assert_array_equal(out.mask[:-1, 2:], mask[1:, :-2])
    assert out.noData[-1].all() and out.noData[:, :2].all() and not out.noData[:-1, 2:].any()


def test_coverage_keeps_the_sum():
    rng = np.random.default_rng(4)
    image = np.zeros((60, 60))
    image[20:40, 20:40] = rng.uniform(0.0, 1.0, size=(20, 20))
    x, y = _rotatedPositions((60, 60), angle=8.0)
    coverage = sourceCoverage(image.shape, x, y, "lanczos3")
    assert np.all(np.abs(coverage[15:45, 15:45] - 1.0) < 0.02)
    plain = resampleArrays(image, x, y, "lanczos3")
    kept = resampleArrays(image, x, y, "lanczos3", coverage=coverage)
    np.testing.assert_allclose(plain.image.sum(), (coverage * image).sum(), rtol=1e-12)
    np.testing.assert_allclose(kept.image.sum(), image.sum(), rtol=1e-12)


def test_shape_errors():
    with pytest.raises(DcrShapeError, match="variance shape .* must match the image shape"):
        resampleArrays(np.zeros((4, 4)), np.zeros(3), np.zeros(3), variance=np.zeros((4, 5)))
    with pytest.raises(DcrShapeError, match="xSource and ySource must have the same shape"):
        resampleArrays(np.zeros((4, 4)), np.zeros(3), np.zeros(4))
    with pytest.raises(DcrShapeError, match="two-dimensional"):
        resampleArrays(np.zeros(4), np.zeros(3), np.zeros(3))


def _referenceWeight(kernel, d):
    """The kernel at one offset, written out: exact zeros at the integer offsets."""
    if kernel.name == "nearest":
        return 1.0 if -0.5 <= d < 0.5 else 0.0
    if kernel.name == "bilinear":
        return max(1.0 - abs(d), 0.0)
    a = kernel.radius
    if abs(d) >= a or (d != 0.0 and d == round(d)):
        return 0.0
    return float(np.sinc(d) * np.sinc(d / a))  # Duchon (1979)


def _referenceAxis(kernel, position):
    """Source indices and normalised weights of one position along one axis."""
    first = int(np.floor(position + 1.0 - kernel.size / 2.0))
    taps = [first + k for k in range(kernel.size)]
    weights = [_referenceWeight(kernel, position - t) for t in taps]
    total = sum(weights)
    return taps, [w / total for w in weights]


def _referenceResample(kernel, image, variance, mask, xs, ys):
    """The kernel sum pixel by pixel and tap by tap, in float64, as the module notes say."""
    ny, nx = image.shape
    out = np.zeros(xs.shape)
    outVariance = np.zeros(xs.shape)
    outMask = np.zeros(xs.shape, dtype=np.int32)
    noData = np.zeros(xs.shape, dtype=bool)
    for p in np.ndindex(xs.shape):
        x, y = float(xs[p]), float(ys[p])
        defined = np.isfinite(x) and np.isfinite(y)
        if not defined:  # an undefined position samples pixel 0 and is flagged
            x, y = 0.0, 0.0
        tapsX, wx = _referenceAxis(kernel, x)
        tapsY, wy = _referenceAxis(kernel, y)
        total = totalVariance = 0.0
        bits, outside = 0, not defined
        for j, wj in zip(tapsY, wy, strict=True):
            for i, wi in zip(tapsX, wx, strict=True):
                if wj == 0.0 or wi == 0.0:
                    continue
                if not (0 <= i < nx and 0 <= j < ny):
                    outside = True
                    continue
                value, var = float(image[j, i]), float(variance[j, i])
                outside |= not (np.isfinite(value) and np.isfinite(var))
                total += wj * wi * value
                totalVariance += (wj * wi) ** 2 * var
                bits |= int(mask[j, i])
        outMask[p] = bits
        noData[p] = outside
        if not outside:
            out[p], outVariance[p] = total, totalVariance
    return out, outVariance, outMask, noData


@pytest.mark.parametrize("kernel", ["lanczos3", "lanczos2", "lanczos4", "bilinear", "nearest"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_sum_against_a_pixel_by_pixel_reference(kernel, dtype):
    # The vectorised sum (separable, one gather per row of taps, float32 sums for float32
    # planes, the mask OR from tables of windows) against the sum written out tap by tap:
    # a bright source on a sky with noise, a varying variance, random mask bits, a NaN
    # image pixel and an infinite variance; positions on a rotated grid reaching past
    # every edge, on pixel centres (one axis or both), half-way between pixels, one ulp
    # from a pixel centre near 0, undefined, and far outside.
    rng = np.random.default_rng(11)
    ny, nx = 21, 26
    yy, xx = np.mgrid[0:ny, 0:nx]
    image = 1000.0 * np.exp(-((xx - 12.3) ** 2 + (yy - 9.6) ** 2) / 4.0)
    image = (image + rng.normal(0.0, 3.0, image.shape)).astype(dtype)
    variance = rng.uniform(1.0, 40.0, image.shape).astype(dtype)
    mask = np.where(rng.uniform(size=image.shape) < 0.1,
                    rng.integers(1, 1 << 20, image.shape), 0).astype(np.int32)
    image[3, 20] = np.nan
    variance[15, 4] = np.inf
    x, y = _rotatedPositions((18, 22), angle=23.0, centre=(8.5, 10.5))
    x, y = 1.15 * x - 1.0, 1.15 * y - 1.0  # past every edge
    x[0], y[1] = np.round(x[0]), np.round(y[1])
    x[2, :8], y[2, :8] = np.round(x[2, :8]), np.round(y[2, :8])
    x[3] = np.floor(x[3]) + 0.5
    x[4, :6] = np.nextafter(np.arange(-1.0, 5.0), np.inf)
    y[4, 6:12] = np.nextafter(np.arange(0.0, 6.0), -np.inf)
    x[5, :3] = np.nan
    y[6, :3] = [np.inf, -1e9, 1e9]
    out = resampleArrays(image, x, y, kernel, variance=variance, mask=mask)
    expected, expectedVariance, expectedMask, expectedNoData = _referenceResample(
        getWarpingKernel(kernel), image, variance, mask, x, y)
    assert 0.1 < expectedNoData.mean() < 0.6
    np.testing.assert_array_equal(out.noData, expectedNoData)
    np.testing.assert_array_equal(out.mask, expectedMask)
    assert np.count_nonzero(expectedMask) >= 20
    assert out.image.dtype == dtype and out.variance.dtype == dtype
    # float32: a few 1e-7 of the largest value (float32 sums); float64: rounding only
    tolerance = 1e-6 if dtype == np.float32 else 1e-12
    peak = np.abs(expected).max()
    assert np.abs(out.image - expected).max() <= tolerance * peak
    assert np.abs(out.variance - expectedVariance).max() <= tolerance * expectedVariance.max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_give_the_same_result(dtype):
    # the chunks are summed by a pool of threads: bit for bit the result of one thread
    rng = np.random.default_rng(3)
    image = rng.normal(100.0, 5.0, (150, 140)).astype(dtype)
    variance = rng.uniform(1.0, 9.0, image.shape).astype(dtype)
    mask = np.where(rng.uniform(size=image.shape) < 0.01, 4, 0).astype(np.int32)
    x, y = _rotatedPositions((160, 150), angle=31.0, centre=(70.0, 75.0))
    one = resampleArrays(image, x, y, variance=variance, mask=mask, threads=1)
    for threads in (2, 3, None):
        many = resampleArrays(image, x, y, variance=variance, mask=mask, threads=threads)
        for a, b in zip(one.__dict__.values(), many.__dict__.values(), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(DcrValueError, match="threads must be a whole number of threads >= 1"):
        resampleArrays(image, x, y, threads=0)
    with pytest.raises(DcrTypeError, match="threads must be a whole number"):
        resampleArrays(image, x, y, threads=1.5)


def test_threads_in_a_forked_process():
    # a process forked after the pool was made has none of its threads: it makes its own
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    image = np.random.default_rng(4).normal(size=(120, 120))
    x, y = _rotatedPositions((120, 120), angle=17.0)
    expected = resampleArrays(image, x, y, threads=2).image
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(resampleArrays, (image, x, y), {"threads": 2})
        np.testing.assert_array_equal(result.get(timeout=60).image, expected)
