"""Tests of dcrmodel.model.shift.applyDcr.

References used: exact integer shifts built with index arithmetic (np.roll and edge
clipping), analytic pixel-integrated Gaussians, scipy.ndimage.shift for the split mode, and
the partition of unity of B-splines for flux conservation (Unser 1999).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.model.shift import applyDcr
from helpers import renderGaussians


def _randomImage(shape=(37, 45), seed=1):
    return np.random.default_rng(seed).normal(size=shape)


def _nearestShiftReference(image, dy, dx):
    """Whole-pixel shift with edge replication, by index arithmetic."""
    ny, nx = image.shape
    rows = np.clip(np.arange(ny) - dy, 0, ny - 1)
    cols = np.clip(np.arange(nx) - dx, 0, nx - 1)
    return image[np.ix_(rows, cols)]


@pytest.mark.parametrize("order", [1, 3, 5])
@pytest.mark.parametrize("shift", [(3, -5), (0, 7), (-2, 0), (4, 4), (0, 0)])
def test_integer_shifts_are_exact(order, shift):
    image = _randomImage()
    dy, dx = shift
    result = applyDcr(image, (float(dy), float(dx)), order=order)
    # Bit-for-bit equal to the index-arithmetic reference everywhere (mode "nearest") ...
    np.testing.assert_array_equal(result, _nearestShiftReference(image, dy, dx))
    # ... and to numpy.roll away from the edges.
    rolled = np.roll(image, shift, axis=(0, 1))
    inner = (slice(max(dy, 0), image.shape[0] + min(dy, 0)),
             slice(max(dx, 0), image.shape[1] + min(dx, 0)))
    np.testing.assert_array_equal(result[inner], rolled[inner])


def test_integer_split_shift_is_exact():
    image = _randomImage()
    # Edge shifts (0, 0) and (4, -8): quarter points (1, -2) and (3, -6), both whole pixels.
    result = applyDcr(image, ((0.0, 0.0), (4.0, -8.0)), splitSubfilters=True)
    expected = 0.5 * (_nearestShiftReference(image, 1, -2) + _nearestShiftReference(image, 3, -6))
    np.testing.assert_array_equal(result, expected)


@settings(max_examples=25, deadline=None)
@given(
    dy=st.integers(-6, 6),
    dx=st.integers(-6, 6),
    inverse=st.booleans(),
)
def test_integer_shifts_property(dy, dx, inverse):
    image = _randomImage((20, 23), seed=(dy + 6) * 13 + dx + 6)
    result = applyDcr(image, (dy, dx), useInverse=inverse)
    sign = -1 if inverse else 1
    np.testing.assert_array_equal(result, _nearestShiftReference(image, sign * dy, sign * dx))


def test_source_moves_by_plus_shift():
    image = np.zeros((30, 30))
    image[10, 12] = 1.0
    result = applyDcr(image, (5.0, -3.0))
    assert tuple(np.argwhere(result == 1.0)[0]) == (15, 9)
    back = applyDcr(result, (5.0, -3.0), useInverse=True)
    np.testing.assert_array_equal(back, image)


def _gaussianImage(centre, shape=(64, 64), sigma=2.0, flux=1000.0):
    return renderGaussians(shape, [(centre[0], centre[1], flux)], sigma=sigma)


@pytest.mark.parametrize("shift", [(0.37, -1.61), (-2.25, 0.5), (0.0, 0.8), (1.3, 1.3)])
def test_fractional_shift_matches_analytic_gaussian(shift):
    dy, dx = shift
    x0, y0 = 31.2, 30.7
    image = _gaussianImage((x0, y0))
    expected = _gaussianImage((x0 + dx, y0 + dy))
    result = applyDcr(image, shift)
    peak = expected.max()
    # A cubic spline on a sigma = 2 px Gaussian interpolates to a few 1e-3 of the peak.
    assert np.max(np.abs(result - expected)) < 5e-3 * peak
    # The centroid moves by the shift.
    yy, xx = np.indices(image.shape)
    assert result.sum() == pytest.approx(image.sum(), rel=1e-10)
    cx = (xx * result).sum() / result.sum()
    cy = (yy * result).sum() / result.sum()
    assert cx == pytest.approx(x0 + dx, abs=1e-3)
    assert cy == pytest.approx(y0 + dy, abs=1e-3)


@pytest.mark.parametrize("order", [1, 3, 5])
def test_flux_is_conserved_away_from_edges(order):
    # B-splines are a partition of unity, so a spline shift keeps the sum of a compact
    # source exactly (up to rounding) as long as it stays away from the edges.
    image = _gaussianImage((30.3, 33.8), sigma=1.2)
    for shift in [(0.5, 0.5), (-1.7, 2.9), (3.33, -0.12)]:
        result = applyDcr(image, shift, order=order)
        assert result.sum() == pytest.approx(image.sum(), rel=1e-9)
        split = applyDcr(image, (shift, (0.0, 0.0)), splitSubfilters=True, order=order)
        assert split.sum() == pytest.approx(image.sum(), rel=1e-9)


@pytest.mark.parametrize(("sigma", "order"), [(2.5, 3), (2.0, 5)])
def test_shift_then_inverse_recovers_gaussian(sigma, order):
    # Well sampled: FWHM 4.7-5.9 px. A cubic spline round trip at sigma = 2.5 px leaves
    # < 1e-3 of the peak (measured 5e-4 to 9e-4); quintic at sigma = 2 px, ~1e-4.
    image = _gaussianImage((32.4, 31.9), sigma=sigma)
    for shift in [(0.43, -1.27), (2.6, 0.9), (-0.5, -0.5)]:
        forward = applyDcr(image, shift, order=order)
        back = applyDcr(forward, shift, useInverse=True, order=order)
        assert np.max(np.abs(back - image)) < 1e-3 * image.max()


def test_split_shift_then_inverse_is_a_known_blur():
    # Forward and inverse split shifts average the four differences of the quarter
    # points q0, q1: 0 (twice) and +-(q0 - q1) = +-(s0 - s1)/2, so the round trip is
    # 0.5 * image + 0.25 * (image moved by +d) + 0.25 * (image moved by -d).
    x0, y0, sigma = 32.4, 31.9, 2.5
    image = _gaussianImage((x0, y0), sigma=sigma)
    s0, s1 = np.array([0.2, -0.9]), np.array([1.4, 0.6])
    pair = (tuple(s0), tuple(s1))
    back = applyDcr(applyDcr(image, pair, splitSubfilters=True), pair, splitSubfilters=True,
                    useInverse=True)
    dy, dx = 0.5 * (s0 - s1)
    expected = (0.5 * image + 0.25 * _gaussianImage((x0 + dx, y0 + dy), sigma=sigma)
                + 0.25 * _gaussianImage((x0 - dx, y0 - dy), sigma=sigma))
    assert np.max(np.abs(back - expected)) < 1e-3 * image.max()
    assert back.sum() == pytest.approx(image.sum(), rel=1e-9)


def test_use_inverse_negates_shift():
    image = _randomImage()
    np.testing.assert_array_equal(
        applyDcr(image, (0.3, -1.2), useInverse=True), applyDcr(image, (-0.3, 1.2))
    )


@pytest.mark.parametrize("order", [1, 3])
def test_split_equals_mean_of_quarter_point_shifts(order):
    image = _gaussianImage((30.0, 29.0), sigma=1.5) + _randomImage((64, 64), seed=3)
    s0 = np.array([0.9, -1.3])
    s1 = np.array([-0.2, 0.7])
    q0 = 0.75 * s0 + 0.25 * s1
    q1 = 0.25 * s0 + 0.75 * s1
    expected = 0.5 * (
        ndimage.shift(image, q0, order=order, mode="nearest")
        + ndimage.shift(image, q1, order=order, mode="nearest")
    )
    result = applyDcr(image, (tuple(s0), tuple(s1)), splitSubfilters=True, order=order)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-12)
    inverse = applyDcr(image, (tuple(s0), tuple(s1)), splitSubfilters=True, useInverse=True,
                       order=order)
    expectedInverse = 0.5 * (
        ndimage.shift(image, -q0, order=order, mode="nearest")
        + ndimage.shift(image, -q1, order=order, mode="nearest")
    )
    np.testing.assert_allclose(inverse, expectedInverse, rtol=0, atol=1e-12)


def test_split_with_equal_edges_is_a_single_shift():
    image = _randomImage()
    single = applyDcr(image, (0.4, 1.7))
    split = applyDcr(image, ((0.4, 1.7), (0.4, 1.7)), splitSubfilters=True)
    np.testing.assert_allclose(split, single, rtol=0, atol=1e-12)


def test_mode_is_passed_on():
    image = _randomImage()
    np.testing.assert_allclose(
        applyDcr(image, (0.6, -0.4), mode="constant"),
        ndimage.shift(image, (0.6, -0.4), order=3, mode="constant"),
        rtol=0,
        atol=1e-12,
    )
    np.testing.assert_array_equal(
        applyDcr(image, (2.0, 3.0), mode="grid-wrap"), np.roll(image, (2, 3), axis=(0, 1))
    )


def test_dtypes_and_input_untouched():
    image32 = _randomImage().astype(np.float32)
    copy = image32.copy()
    result = applyDcr(image32, (0.5, 0.25))
    assert result.dtype == np.float32
    np.testing.assert_array_equal(image32, copy)
    assert applyDcr(np.arange(20).reshape(4, 5), (1.0, 0.0)).dtype == np.float64
    same = applyDcr(image32, (0.0, 0.0))
    assert same is not image32
    np.testing.assert_array_equal(same, image32)


def test_errors():
    image = _randomImage()
    bad = image.copy()
    bad[3, 4] = np.nan
    with pytest.raises(DcrValueError, match="NaN or infinite"):
        applyDcr(bad, (0.5, 0.5))
    with pytest.raises(DcrShapeError, match="2-D"):
        applyDcr(np.zeros((3, 4, 5)), (0.5, 0.5))
    with pytest.raises(DcrShapeError, match="splitSubfilters=True"):
        applyDcr(image, ((0.1, 0.2), (0.3, 0.4)))
    with pytest.raises(DcrShapeError, match="two edge shifts"):
        applyDcr(image, (0.1, 0.2), splitSubfilters=True)
    with pytest.raises(DcrValueError, match="finite"):
        applyDcr(image, (np.inf, 0.0))
    with pytest.raises(DcrTypeError, match="dcr must be"):
        applyDcr(image, ("a", "b"))
    with pytest.raises(DcrValueError, match="spline order"):
        applyDcr(image, (0.5, 0.5), order=6)
    with pytest.raises(DcrValueError, match="mode must be one of"):
        applyDcr(image, (0.5, 0.5), mode="edge")
    with pytest.raises(DcrTypeError, match="real numeric array"):
        applyDcr(np.full((4, 4), "x"), (0.5, 0.5))
    with pytest.raises(DcrTypeError, match="splitSubfilters must be True or False"):
        applyDcr(image, (0.5, 0.5), splitSubfilters="yes")
