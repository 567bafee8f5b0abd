"""Tangent-plane destination grids and their text form (dcrmodel.warp.grid)."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle
from astropy.wcs.utils import proj_plane_pixel_scales

from dcrmodel.errors import DcrTypeError, DcrValueError
from dcrmodel.image import Box
from dcrmodel.warp.grid import parseGridSpec, tangentPlaneGrid


def test_tangent_plane_grid_is_centred_north_up_east_left():
    wcs, box = tangentPlaneGrid(150.0, -30.0, 200, 100, 0.2)
    assert box == Box(0, 0, 200, 100)
    assert wcs.wcs.ctype[0] == "RA---TAN" and wcs.wcs.radesys == "ICRS"
    centre = wcs.pixel_to_world(99.5, 49.5)
    assert abs(centre.ra.deg - 150.0) < 1e-10 and abs(centre.dec.deg + 30.0) < 1e-10
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs) * 3600, [0.2, 0.2], rtol=1e-12)
    up = wcs.pixel_to_world(99.5, 59.5)
    left = wcs.pixel_to_world(89.5, 49.5)
    assert up.dec.deg > centre.dec.deg and abs(up.ra.deg - centre.ra.deg) < 1e-9
    assert left.ra.deg > centre.ra.deg  # East is left
    assert abs(centre.separation(up).arcsec - 2.0) < 1e-6


def test_angles_and_quantities():
    wcs, box = tangentPlaneGrid(Angle("10h00m00s"), Angle(-30.0, u.deg), 11, 11,
                                0.5 * u.arcsec)
    assert abs(wcs.wcs.crval[0] - 150.0) < 1e-12 and box.width == 11
    wcs, _ = tangentPlaneGrid(-10.0, 0.0, 11, 11, 1.0 / 3600 * u.deg)
    assert wcs.wcs.crval[0] == 350.0
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs) * 3600, [1.0, 1.0], rtol=1e-12)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((150.0, 95.0, 10, 10, 0.2), DcrValueError, r"dec must be within \[-90, 90\]"),
        ((150.0, -30.0, 0, 10, 0.2), DcrValueError, "width and height must be positive"),
        ((150.0, -30.0, 10.5, 10, 0.2), DcrTypeError, "width must be a whole number"),
        ((150.0, -30.0, 10, 10, -0.2), DcrValueError, "scale must be positive"),
        ((150.0, -30.0, 10, 10, 2 * u.m), DcrTypeError, "scale must be in arcsec per pixel"),
        (("150", -30.0, 10, 10, 0.2), DcrTypeError, "ra must be an angle"),
        ((150.0 * u.m, -30.0, 10, 10, 0.2), DcrTypeError, "ra must be an angle"),
        ((np.nan, -30.0, 10, 10, 0.2), DcrValueError, "ra must be finite"),
    ],
)
def test_tangent_plane_grid_errors(args, error, match):
    with pytest.raises(error, match=match):
        tangentPlaneGrid(*args)


def test_parse_grid_spec():
    wcs, box = parseGridSpec(" 150.5, -30.25 ,300,200, 0.2 ")
    assert box == Box(0, 0, 300, 200)
    np.testing.assert_allclose(wcs.wcs.crval, [150.5, -30.25])


@pytest.mark.parametrize(
    "text, match",
    [
        ("150,-30,100,100", "got 4 field"),
        ("150,-30,100,100,0.2,1", "got 6 field"),
        ("ra,-30,100,100,0.2", "RA is not a number"),
        ("150,-30,100.5,100,0.2", "WIDTH must be a whole number"),
        ("150,-30,100,100,0", "scale must be positive"),
        ("150,-95,100,100,0.2", r"dec must be within \[-90, 90\]"),
        ("150,nan,100,100,0.2", "DEC must be finite"),
    ],
)
def test_parse_grid_spec_errors(text, match):
    with pytest.raises(DcrValueError, match=match) as info:
        parseGridSpec(text)
    assert "\n" not in str(info.value)
    with pytest.raises(DcrTypeError, match="a grid spec is a string"):
        parseGridSpec(42)
