"""Destination grids for warps: a tangent-plane patch of the sky, from numbers or a string.

`tangentPlaneGrid` makes the WCS and box of a patch in the style of a survey's sky map:
a gnomonic (TAN) projection centred on a sky position, North up and East left, at a given
pixel scale, with parent origin (0, 0). `parseGridSpec` makes the same from the text
``"RA,DEC,WIDTH,HEIGHT,SCALE"`` of a command line. (A grid read from an existing exposure
file is `dcrmodel.fits.grid.readGrid`.)
"""

from __future__ import annotations

import math
from typing import Any

import astropy.units as u
from astropy.coordinates import Angle
from astropy.wcs import WCS

from .._validate import asInt, asPositiveFloat, isNumber
from ..errors import DcrTypeError, DcrValueError
from ..image import Box

__all__ = ["tangentPlaneGrid", "parseGridSpec", "GRID_SPEC_FORMAT"]

#: The form of a grid given as text (degrees, degrees, pixels, pixels, arcsec per pixel).
GRID_SPEC_FORMAT = "RA,DEC,WIDTH,HEIGHT,SCALE"


def _degrees(value: Any, name: str) -> float:
    """Return an angle in degrees from an astropy Angle/Quantity or a number (degrees)."""
    if isinstance(value, u.Quantity):
        try:
            out = float(Angle(value).deg)
        except (u.UnitsError, TypeError, ValueError):
            raise DcrTypeError(f"{name} must be an angle (degrees or an astropy Angle)",
                               **{name: value}) from None
    elif isNumber(value):
        out = float(value)
    else:
        raise DcrTypeError(f"{name} must be an angle (degrees or an astropy Angle)",
                           **{name: value})
    if not math.isfinite(out):
        raise DcrValueError(f"{name} must be finite (degrees)", **{name: value})
    return out


def _arcsec(value: Any) -> float:
    """Return a pixel scale in arcsec from an angle Quantity or a number (arcsec)."""
    if isinstance(value, u.Quantity):
        try:
            value = float(value.to_value(u.arcsec))
        except u.UnitsError:
            raise DcrTypeError("scale must be in arcsec per pixel (a number or an angle)",
                               scale=value) from None
    return asPositiveFloat(value, "scale", "arcsec per pixel")


def tangentPlaneGrid(
    ra: float | Angle, dec: float | Angle, width: int, height: int, scale: float | u.Quantity
) -> tuple[WCS, Box]:
    """Make a tangent-plane (TAN) patch of sky: its WCS and parent box.

    Parameters
    ----------
    ra, dec : float or astropy.coordinates.Angle
        ICRS position of the patch centre; plain numbers are degrees.
    width, height : int
        Size of the patch in pixels (> 0).
    scale : float or astropy.units.Quantity
        Pixel scale, arcsec per pixel (> 0); an angle Quantity is converted.

    Returns
    -------
    wcs : astropy.wcs.WCS
        ICRS gnomonic WCS of 0-based parent pixels, North up (+y) and East left (-x),
        tangent point at the centre of the box, ``(width - 1) / 2, (height - 1) / 2``.
    bbox : Box
        ``Box(0, 0, width, height)``.

    Raises
    ------
    DcrTypeError
        If a value has the wrong type (a size that is not whole, an angle in the wrong
        unit).
    DcrValueError
        If the declination is outside [-90, 90] degrees, or a size or the scale is not
        positive.

    Examples
    --------
    >>> wcs, box = tangentPlaneGrid(150.0, -30.0, 101, 51, 0.2)
    >>> box
    Box(minX=0, minY=0, width=101, height=51)
    >>> sky = wcs.pixel_to_world(50, 25)
    >>> round(float(sky.ra.deg), 9), round(float(sky.dec.deg), 9)
    (150.0, -30.0)
    """
    raDeg = _degrees(ra, "ra") % 360.0
    decDeg = _degrees(dec, "dec")
    if not -90.0 <= decDeg <= 90.0:
        raise DcrValueError("dec must be within [-90, 90] degrees", dec=dec)
    width = asInt(width, "width")
    height = asInt(height, "height")
    if width <= 0 or height <= 0:
        raise DcrValueError("the grid's width and height must be positive (pixels)",
                            width=width, height=height)
    scaleDeg = _arcsec(scale) / 3600.0
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [raDeg, decDeg]
    # FITS CRPIX is 1-based: parent pixel p is FITS pixel p + 1.
    wcs.wcs.crpix = [(width - 1) / 2.0 + 1.0, (height - 1) / 2.0 + 1.0]
    wcs.wcs.cd = [[-scaleDeg, 0.0], [0.0, scaleDeg]]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    return wcs, Box(0, 0, width, height)


def parseGridSpec(text: str) -> tuple[WCS, Box]:
    """Make a tangent-plane grid from the text ``"RA,DEC,WIDTH,HEIGHT,SCALE"``.

    Parameters
    ----------
    text : str
        Right ascension and declination of the centre (ICRS, degrees), width and height
        (whole pixels) and the pixel scale (arcsec per pixel), separated by commas.

    Returns
    -------
    wcs : astropy.wcs.WCS
    bbox : Box
        As `tangentPlaneGrid` makes them.

    Raises
    ------
    DcrValueError
        If the text does not have five numbers, a size is not a whole number, or a value
        is out of range; the message repeats the expected form.

    Examples
    --------
    >>> wcs, box = parseGridSpec("150.0, -30.0, 200, 100, 0.2")
    >>> box
    Box(minX=0, minY=0, width=200, height=100)
    """
    if not isinstance(text, str):
        raise DcrTypeError(f"a grid spec is a string {GRID_SPEC_FORMAT}",
                           spec=type(text).__name__)
    fields = [field.strip() for field in text.split(",")]
    if len(fields) != 5:
        raise DcrValueError(
            f"a grid spec is {GRID_SPEC_FORMAT} (degrees, degrees, pixels, pixels, "
            f"arcsec/pixel); got {len(fields)} field(s) in {text!r}",
        )
    names = ("RA", "DEC", "WIDTH", "HEIGHT", "SCALE")
    values: list[float] = []
    for name, field in zip(names, fields, strict=True):
        try:
            value = float(field)
        except ValueError:
            raise DcrValueError(
                f"grid spec {text!r}: {name} is not a number ({field!r}); expected "
                f"{GRID_SPEC_FORMAT}",
            ) from None
        if not math.isfinite(value):
            raise DcrValueError(f"grid spec {text!r}: {name} must be finite")
        values.append(value)
    ra, dec, width, height, scale = values
    for name, value in (("WIDTH", width), ("HEIGHT", height)):
        if not value.is_integer():
            raise DcrValueError(
                f"grid spec {text!r}: {name} must be a whole number of pixels", value=value
            )
    try:
        return tangentPlaneGrid(ra, dec, int(width), int(height), scale)
    except DcrValueError as error:
        raise DcrValueError(f"grid spec {text!r}: {error.message}", **error.values) from None
