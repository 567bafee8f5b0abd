"""Exposures and checks shared by the tests of the FITS modules (fits, headers, modelio)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from dcrmodel.image import (
    Box,
    Exposure,
    Filter,
    GaussianPsf,
    Image,
    Mask,
    MaskedImage,
    PhotoCalib,
)
from dcrmodel.physics.observation import VisitInfo
from dcrmodel.physics.site import Observatory, Weather
from helpers import makeTanWcs

ORIGIN = (1000, 2000)
SHAPE = (30, 40)  # (ny, nx)
PLANES = {
    "BAD": 0,
    "SAT": 1,
    "INTRP": 2,
    "CR": 3,
    "EDGE": 4,
    "DETECTED": 5,
    "DETECTED_NEGATIVE": 6,
    "SUSPECT": 7,
    "NO_DATA": 8,
    "STREAK": 12,
    "myPlane": 31,
}


_DATE = Time("2026-03-15T04:00:00.123456789", scale="tai")
# The Earth rotation angle of _DATE (IAU 2000, with UT1 - TAI of the bundled IERS tables;
# the last digits do not matter, the angle must only belong to the date within a minute).
_ERA = Angle(232.28786456059703, u.deg)


def _visitInfo() -> VisitInfo:
    """A visit with awkward floats (long reprs) in every numeric field."""
    return VisitInfo(
        boresightRaDec=SkyCoord(150.12345678901234 * u.deg, -30.987654321098765 * u.deg),
        boresightAzAlt=(Angle(271.00000000000006, u.deg), Angle(47.123456789012344, u.deg)),
        boresightAirmass=1.3651234567890123,
        boresightRotAngle=Angle(-0.00012345678901234567, u.deg),
        rotType="SKY",
        observatory=Observatory(-70.749417 * u.deg, -30.244639 * u.deg, 2663.0),
        weather=Weather(11.123456789012345, 74315.12345678901, 13.000000000000002),
        era=_ERA,
        date=_DATE,
        exposureTime=1.2345678901234567e-05,
        id=2026031500123,
    )


def _makeExposure(
    origin: tuple[int, int] = ORIGIN,
    shape: tuple[int, int] = SHAPE,
    seed: int = 1,
    wcs: WCS | None = None,
) -> Exposure:
    rng = np.random.default_rng(seed)
    ny, nx = shape
    image = rng.normal(0.0, 100.0, size=shape).astype(np.float32)
    image[0, 0] = np.float32(-1.5e-42)  # subnormal float32
    image[0, 1] = np.float32(3.4e38)
    variance = rng.uniform(1e-30, 1e4, size=shape).astype(np.float32)
    mask = rng.integers(0, 2**31 - 1, size=shape, dtype=np.int64).astype(np.int32)
    mask[1, 1] = np.int32(-(2**31))  # bit 31 alone
    maskedImage = MaskedImage(
        Image(image, origin=origin),
        Mask(mask, origin=origin, planes=PLANES),
        Image(variance, origin=origin),
    )
    if wcs is None:
        wcs = makeTanWcs(
            rotation=33.0, pixelScale=0.2, crval=(150.1, -30.9),
            crpix=(origin[0] + nx / 2.0 + 0.25, origin[1] + ny / 2.0 - 0.5),
        )
    metadata = fits.Header()
    metadata["OBSERVER"] = "somebody"
    metadata["HIERARCH LONG-KEYWORD-NAME"] = 1.0000000000000002
    metadata["SEEING"] = 0.7
    return Exposure(
        maskedImage,
        wcs=wcs,
        psf=GaussianPsf(3.5, alpha=-0.2, effectiveWavelength=482.685),
        visitInfo=_visitInfo(),
        filter=Filter.fromBand("g"),
        photoCalib=PhotoCalib(0.0575),
        metadata=metadata,
    )


def _parentPixels(bbox: Box) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([bbox.minX, bbox.maxX, bbox.minX + 7.25, bbox.maxX - 3.5, 0.0, -500.0])
    y = np.array([bbox.minY, bbox.maxY, bbox.maxY - 2.75, bbox.minY + 11.0, 0.0, 800.0])
    return x, y


def _assertSameSky(wcs1: WCS, wcs2: WCS, x: np.ndarray, y: np.ndarray) -> None:
    ra1, dec1 = wcs1.pixel_to_world_values(x, y)
    ra2, dec2 = wcs2.pixel_to_world_values(x, y)
    np.testing.assert_allclose(ra1, ra2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dec1, dec2, rtol=0, atol=1e-10)


def _assertVisitInfoEqual(read: VisitInfo, written: VisitInfo) -> None:
    assert read.boresightRaDec.ra.deg == written.boresightRaDec.ra.deg
    assert read.boresightRaDec.dec.deg == written.boresightRaDec.dec.deg
    assert read.boresightAzAlt[0].deg == written.boresightAzAlt[0].deg
    assert read.boresightAzAlt[1].deg == written.boresightAzAlt[1].deg
    assert read.boresightAirmass == written.boresightAirmass
    assert read.boresightRotAngle.deg == written.boresightRotAngle.deg
    assert read.rotType == written.rotType
    assert read.observatory == written.observatory
    assert read.weather == written.weather
    assert read.era.deg == written.era.deg
    assert read.date.scale == written.date.scale
    assert abs((read.date - written.date).to_value(u.ns)) < 1.0
    assert read.exposureTime == written.exposureTime
    assert read.id == written.id
