"""Pixel-to-pixel mapping through two WCSs (dcrmodel.warp.mapping)."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from dcrmodel.errors import DcrMetadataError, DcrTypeError, DcrValueError
from dcrmodel.image import Box
from dcrmodel.warp.mapping import (
    MAPPING_TOLERANCE,
    boxesOverlap,
    checkCelestialWcs,
    localJacobian,
    mapBox,
    mapPixels,
)
from helpers import makeTanWcs
from helpers.warp import sipWcs

CENTRE = (150.0, -30.0)


def _rotated(angle, shift=(0.0, 0.0), scale=0.2, n=128):
    """A TAN WCS rotated by ``angle`` about the same tangent point, its centre shifted."""
    return makeTanWcs(angle, scale, CENTRE, crpix=((n - 1) / 2 + shift[0], (n - 1) / 2 + shift[1]))


def test_same_wcs_maps_to_itself():
    wcs = _rotated(0.0)
    xs, ys = mapPixels(wcs, wcs, np.array([[0.0, 17.25], [100.0, -3.5]]), np.array(5.0))
    np.testing.assert_allclose(xs, [[0.0, 17.25], [100.0, -3.5]], atol=1e-9)
    np.testing.assert_allclose(ys, 5.0, atol=1e-9)
    assert xs.shape == (2, 2)


def test_rotation_about_the_tangent_point_is_a_rotation():
    # Two TAN projections with one tangent point differ by a rotation of the pixel axes
    # (and the shift of the reference pixels): exactly, whatever the distance from it.
    angle, shift = 37.0, (3.3, -1.7)
    src, dest = _rotated(0.0), _rotated(angle, shift)
    x = np.array([0.0, 63.5, 127.0, 20.0])
    y = np.array([0.0, 63.5, 10.0, 120.0])
    xs, ys = mapPixels(dest, src, x, y)
    theta = np.deg2rad(angle)
    dx, dy = x - (63.5 + shift[0]), y - (63.5 + shift[1])
    # makeTanWcs: rotation is the position angle of +y; East left, so +x turns with it
    ex = np.cos(theta) * dx - np.sin(theta) * dy + 63.5
    ey = np.sin(theta) * dx + np.cos(theta) * dy + 63.5
    np.testing.assert_allclose(xs, ex, atol=1e-7)
    np.testing.assert_allclose(ys, ey, atol=1e-7)
    jacobian = localJacobian(dest, src, (40.0, 70.0))
    np.testing.assert_allclose(
        jacobian, [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], atol=1e-7
    )


def test_map_box_interpolation_is_within_tolerance_with_sip():
    src = sipWcs((512, 512))
    dest = makeTanWcs(23.0, 0.2, (150.002, -30.001), crpix=(255.5, 255.5))
    box = Box(-20, 10, 530, 500)
    mapping = mapBox(dest, src, box, gridSpacing=32)
    ys, xs = np.mgrid[box.minY:box.maxY + 1, box.minX:box.maxX + 1].astype(float)
    ex, ey = mapPixels(dest, src, xs, ys)
    error = np.hypot(mapping.x - ex, mapping.y - ey)
    assert error.max() <= MAPPING_TOLERANCE
    assert mapping.maxError <= MAPPING_TOLERANCE and mapping.numExact == 0
    # the SIP terms matter here: ignoring them moves points by pixels
    lon, lat = dest.all_pix2world(xs[::50, ::50], ys[::50, ::50], 0)
    plain = np.array(src.wcs_world2pix(lon, lat, 0))
    assert np.hypot(plain[0] - ex[::50, ::50], plain[1] - ey[::50, ::50]).max() > 1.0


def test_map_box_refines_cells_that_miss_the_tolerance():
    src = sipWcs((256, 256))
    dest = _rotated(10.0, n=256)
    box = Box(0, 0, 256, 256)
    ys, xs = np.mgrid[0:256, 0:256].astype(float)
    ex, ey = mapPixels(dest, src, xs, ys)
    loose = mapBox(dest, src, box, gridSpacing=64, tolerance=1.0)
    assert loose.numExact == 0 and loose.maxError > 0
    # half the worst cell's error: some cells (not all) are mapped exactly
    tolerance = loose.maxError / 2
    refined = mapBox(dest, src, box, gridSpacing=64, tolerance=tolerance)
    assert 0 < refined.numExact < box.area
    assert refined.maxError <= tolerance
    error = np.hypot(refined.x - ex, refined.y - ey)
    assert np.count_nonzero(error == 0.0) >= refined.numExact
    assert error.max() <= 2 * tolerance  # the checks sit where a cubic spline errs most


def test_small_box_and_undefined_points_are_mapped_exactly():
    src, dest = _rotated(0.0), _rotated(5.0)
    mapping = mapBox(dest, src, Box(3, 4, 20, 30))
    assert mapping.numExact == 600 and mapping.x.shape == (30, 20)
    # the far side of the sky has no pixel in a TAN projection
    far = makeTanWcs(0.0, 0.2, (330.0, 30.0))
    xs, ys = mapPixels(far, src, np.array([0.0]), np.array([0.0]))
    assert np.isnan(xs).all() and np.isnan(ys).all()


def test_other_celestial_frame():
    src = _rotated(0.0)
    galactic = WCS(naxis=2)
    galactic.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
    centre = SkyCoord(*CENTRE, unit="deg").galactic
    galactic.wcs.crval = [centre.l.deg, centre.b.deg]
    galactic.wcs.crpix = [50.0, 60.0]
    galactic.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    galactic.wcs.set()
    x, y = np.array([0.0, 30.0, 80.0]), np.array([5.0, 60.0, 90.0])
    xs, ys = mapPixels(galactic, src, x, y)
    sky = galactic.pixel_to_world(x, y)
    ex, ey = src.world_to_pixel(sky)
    np.testing.assert_allclose(xs, ex, atol=1e-6)
    np.testing.assert_allclose(ys, ey, atol=1e-6)


def test_boxes_overlap():
    src = _rotated(0.0)
    box = Box(0, 0, 128, 128)
    assert boxesOverlap(src, box, _rotated(37.0, (60.0, 0.0)), box)
    # a small destination box inside the source, and a large one around it
    assert boxesOverlap(src, box, src, Box(60, 60, 2, 2))
    assert boxesOverlap(src, Box(60, 60, 2, 2), src, Box(-500, -500, 1200, 1200))
    assert not boxesOverlap(src, box, src, Box(140, 0, 50, 50))
    far = makeTanWcs(0.0, 0.2, (151.0, -30.0))
    assert not boxesOverlap(src, box, far, box)
    assert not boxesOverlap(src, box, src, Box(0, 0, 0, 0))


def test_check_celestial_wcs():
    wcs = _rotated(0.0)
    assert checkCelestialWcs(wcs, "x") is wcs
    with pytest.raises(DcrMetadataError, match="the exposure has no WCS"):
        checkCelestialWcs(None, "the exposure")
    with pytest.raises(DcrTypeError, match="must be an astropy.wcs.WCS"):
        checkCelestialWcs("RA---TAN", "the grid")
    linear = WCS(naxis=2)
    linear.wcs.ctype = ["LINEAR", "LINEAR"]
    with pytest.raises(DcrValueError, match="not a two-axis celestial WCS"):
        checkCelestialWcs(linear, "the grid")


def test_grid_spacing_and_jacobian_errors():
    src = _rotated(0.0)
    with pytest.raises(DcrValueError, match="gridSpacing must be at least 2"):
        mapBox(src, src, Box(0, 0, 10, 10), gridSpacing=1)
    far = makeTanWcs(0.0, 0.2, (330.0, 30.0))
    with pytest.raises(DcrValueError, match="no pixels near"):
        localJacobian(far, src, (0.0, 0.0))


def test_jacobian_of_a_scale_change():
    src = _rotated(0.0, scale=0.2)
    dest = _rotated(0.0, scale=0.3)
    jacobian = localJacobian(dest, src, (63.5, 63.5))
    np.testing.assert_allclose(jacobian, [[1.5, 0.0], [0.0, 1.5]], atol=1e-6)
    assert u.isclose(abs(np.linalg.det(jacobian)), 2.25, rtol=1e-6)
