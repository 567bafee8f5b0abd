"""Tests of dcrmodel.physics.horizontal: ICRS <-> horizontal directions with ERFA directly.

The reference is astropy's own transform (``SkyCoord.transform_to(AltAz(...))`` and back,
built on the same ERFA functions): the ERFA path must give its results bit for bit (at
most 1e-12 relative is asserted), and the zenith directions measured with it must equal
those measured through astropy's frames (the path used for WCSs whose frame is not ICRS).
"""

import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import FK5, ICRS, AltAz, SkyCoord, solar_system_ephemeris
from astropy.coordinates.erfa_astrom import ErfaAstromInterpolator, erfa_astrom
from astropy.time import Time
from astropy.wcs import WCS

from dcrmodel.image import Box
from dcrmodel.physics import dcr, horizontal
from dcrmodel.physics.dcr import zenithDirection, zenithDirections, zenithDirectionsOfVisits
from dcrmodel.physics.observation import VisitInfo
from dcrmodel.physics.site import Observatory, offlineIers
from helpers import RUBIN_LOCATION, makeTanWcs, makeVisitAndWcs

pytestmark = pytest.mark.filterwarnings("ignore::dcrmodel.errors.DcrOfflineWarning")


def _randomWcs(rng, radesys=None):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [rng.uniform(0.0, 360.0), rng.uniform(-85.0, 25.0)]
    wcs.wcs.crpix = [rng.uniform(0.0, 4000.0), rng.uniform(0.0, 4000.0)]
    angle = rng.uniform(0.0, 2.0 * np.pi)
    scale = 0.2 / 3600.0
    wcs.wcs.cd = [[-scale * np.cos(angle), scale * np.sin(angle)],
                  [scale * np.sin(angle), scale * np.cos(angle)]]
    if radesys is not None:
        wcs.wcs.radesys = radesys
    return wcs


def test_transforms_equal_astropys():
    rng = np.random.default_rng(17)
    with offlineIers(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dates beyond the bundled tables
        for scale in ("utc", "tai", "tt"):
            times = Time(rng.uniform(55000.0, 62500.0, 6), format="mjd", scale=scale)
            ra, dec = rng.uniform(0.0, 360.0, 6), rng.uniform(-89.0, 89.0, 6)
            frame = AltAz(obstime=times, location=RUBIN_LOCATION, pressure=0.0 * u.hPa)
            reference = SkyCoord(ra * u.deg, dec * u.deg, frame=ICRS()).transform_to(frame)
            astrom = horizontal.observerAstrometry(times, RUBIN_LOCATION)
            az, alt = horizontal.icrsToHorizontal(ra, dec, astrom)
            np.testing.assert_allclose(az, reference.az.to_value(u.deg), rtol=1e-12, atol=0)
            np.testing.assert_allclose(alt, reference.alt.to_value(u.arcsec), rtol=1e-12,
                                       atol=0)
            back = SkyCoord(az=az * u.deg, alt=alt * u.arcsec, frame=frame).transform_to(ICRS())
            raBack, decBack = horizontal.horizontalToIcrs(az, alt, astrom)
            np.testing.assert_allclose(raBack, back.spherical.lon.to_value(u.radian),
                                       rtol=1e-12, atol=0)
            np.testing.assert_allclose(decBack, back.spherical.lat.to_value(u.radian),
                                       rtol=1e-12, atol=1e-15)
            # and the round trip comes home (to a few micro-arcsec, as astropy's does)
            np.testing.assert_allclose(np.degrees(raBack), ra, rtol=0, atol=1e-8)
            np.testing.assert_allclose(np.degrees(decBack), dec, rtol=0, atol=1e-8)


def test_pixels_equal_the_wcs_high_level_calls():
    rng = np.random.default_rng(3)
    wcs = _randomWcs(rng, "ICRS")
    x, y = rng.uniform(-500.0, 4500.0, 5), rng.uniform(-500.0, 4500.0, 5)
    sky = wcs.pixel_to_world(x, y)
    ra, dec = horizontal.pixelsToIcrs(wcs, x, y)
    assert np.array_equal(ra, sky.ra.to_value(u.deg))
    assert np.array_equal(dec, sky.dec.to_value(u.deg))
    px, py = horizontal.icrsToPixels(wcs, np.radians(ra), np.radians(dec))
    np.testing.assert_allclose(px, x, rtol=0, atol=1e-8)
    np.testing.assert_allclose(py, y, rtol=0, atol=1e-8)


def _throughAstropy(monkeypatch, function, *args):
    with monkeypatch.context() as patch:
        patch.setattr(horizontal, "erfaPathUsable", lambda wcs: False)
        return function(*args)


def test_zenith_directions_equal_the_astropy_path(monkeypatch):
    """The ERFA path gives the directions of the path through astropy's frames."""
    rng = np.random.default_rng(5)
    mauna = Observatory(-155.4681 * u.deg, 19.8253 * u.deg, 4139.0)
    visits, wcss, boxes = [], [], []
    for index in range(6):
        wcs = _randomWcs(rng, "ICRS" if index % 2 else None)
        date = Time(rng.uniform(58000.0, 61500.0), format="mjd", scale=("utc", "tai")[index % 2])
        # only the date and the place matter to the direction (any altitude will do)
        visits.append(VisitInfo(observatory=mauna if index == 3 else Observatory.rubin(),
                                date=date))
        wcss.append(wcs)
        boxes.append([Box(0, 0, 99, 99), Box(int(rng.uniform(0, 3000)), 10, 999, 999)])
    for visitInfo, wcs, regions in zip(visits, wcss, boxes, strict=True):
        fast = zenithDirections(visitInfo, wcs, regions)
        slow = _throughAstropy(monkeypatch, zenithDirections, visitInfo, wcs, regions)
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=0)
        one = zenithDirection(visitInfo, wcs, regions[1])
        np.testing.assert_allclose(
            one, _throughAstropy(monkeypatch, zenithDirection, visitInfo, wcs, regions[1]),
            rtol=1e-12, atol=0)
    fast = zenithDirectionsOfVisits(visits, wcss, boxes)
    slow = _throughAstropy(monkeypatch, zenithDirectionsOfVisits, visits, wcss, boxes)
    np.testing.assert_allclose(np.array(fast), np.array(slow), rtol=1e-12, atol=0)


def test_the_path_is_chosen_by_the_wcs_frame_and_astropy_settings(monkeypatch):
    rng = np.random.default_rng(8)
    wcs = _randomWcs(rng)
    assert horizontal.erfaPathUsable(wcs)
    assert horizontal.erfaPathUsable(_randomWcs(rng, "ICRS"))
    assert not horizontal.erfaPathUsable(_randomWcs(rng, "FK5"))
    galactic = WCS(naxis=2)
    galactic.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
    assert not horizontal.erfaPathUsable(galactic)
    # astropy's interpolating astrometry or another ephemeris: astropy's transforms
    with erfa_astrom.set(ErfaAstromInterpolator(300 * u.s)):
        assert not horizontal.erfaPathUsable(wcs)
    monkeypatch.setattr(solar_system_ephemeris, "get", lambda: "de432s")
    assert not horizontal.erfaPathUsable(wcs)


def test_fk5_wcs_goes_through_astropy(monkeypatch):
    """A WCS in FK5 (J2000) is taken to ICRS by astropy: its zenith direction is measured
    through astropy's frames and agrees with the ICRS WCS of the same pointing."""
    visitInfo, icrsWcs = makeVisitAndWcs(elevation=50.0, azimuth=140.0, rotation=25.0)
    centre = SkyCoord(*icrsWcs.wcs.crval, unit="deg", frame=ICRS()).transform_to(FK5())
    fk5Wcs = makeTanWcs(crval=(centre.ra.deg, centre.dec.deg), rotation=25.0)
    fk5Wcs.wcs.radesys = "FK5"
    fk5Wcs.wcs.equinox = 2000.0
    calls = []
    original = dcr._zenithDirectionsErfa
    monkeypatch.setattr(dcr, "_zenithDirectionsErfa",
                        lambda *args: calls.append(args) or original(*args))
    fk5 = zenithDirection(visitInfo, fk5Wcs)
    assert calls == []
    icrs = zenithDirection(visitInfo, icrsWcs)
    assert len(calls) == 1
    # FK5 J2000 and ICRS differ by ~20 mas: the same direction to ~1e-6
    np.testing.assert_allclose(fk5, icrs, rtol=1e-5)
