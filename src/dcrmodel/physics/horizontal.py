"""ICRS <-> horizontal directions (no refraction) computed with ERFA directly.

The zenith direction of a visit (`dcrmodel.physics.dcr`) takes points of an image to the
visit's horizontal frame, raises them in altitude and takes them back. Through astropy's
``SkyCoord.transform_to(AltAz(...))`` most of the time of the first such transform in a
process goes to building frames, representations and the transform graph's path, not to
the astrometry. This module computes the same astrometry from the same ingredients with
the ERFA functions that astropy calls (pyerfa), so a command pays a few milliseconds
instead of a few hundredths of a second:

- the astrometry context of an observer: ``erfa.apco`` with TT and UT1 from
  `astropy.time.Time`, polar motion and UT1-UTC from astropy's Earth-orientation table
  (`astropy.utils.iers`), the Earth's position and velocity from ``erfa.epv00`` (TDB),
  the CIP and CIO locator (IAU 2006/2000A: ``erfa.pnm06a``, ``erfa.bpn2xy``,
  ``erfa.s06``), ``erfa.sp00`` and the observatory's WGS84 geodetic position;
- ICRS -> horizontal: light deflection by the Sun (``erfa.ld``), aberration
  (``erfa.ab``), bias-precession-nutation (``erfa.rxp``) -- the algorithm of
  ``eraAtciqz`` -- then ``erfa.atioq``;
- horizontal -> ICRS: ``erfa.atoiq``, then the inverse of the above, iterated (the
  algorithm of ``eraAticq``).

The steps, their order and the deflection limit (1e-6) follow astropy's transforms
between ICRS and AltAz (``astropy.coordinates.builtin_frames.icrs_observed_transforms``
and ``utils.atciqz``/``aticq``, astropy 6-8), so the results equal astropy's to
rounding; `tests/physics/test_horizontal.py` checks them against ``SkyCoord`` to 1e-12
relative. `erfaPathUsable` says when this path applies: an ICRS WCS, astropy's built-in
ephemeris and its default astrometry provider; otherwise the callers use astropy.

References
----------
IAU SOFA Board, "SOFA Tools for Earth Attitude" and "SOFA Astrometry Tools"
(eraApco, eraAtciqz, eraAticq, eraAtioq, eraAtoiq), https://www.iausofa.org
"""

from __future__ import annotations

import warnings

import astropy.units as u
import erfa
import numpy as np
from astropy.coordinates import ICRS, EarthLocation, solar_system_ephemeris
from astropy.coordinates.erfa_astrom import ErfaAstrom, erfa_astrom
from astropy.time import Time
from astropy.utils import iers
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame

__all__ = ["erfaPathUsable", "observerAstrometry", "icrsToHorizontal", "horizontalToIcrs",
           "pixelsToIcrs", "icrsToPixels"]

#: Polar motion used where the Earth-orientation table has no value (astropy's default,
#: the 50-year mean), arcsec.
_DEFAULT_POLAR_MOTION = (0.035, 0.29)

# Unit scales as astropy applies them (Quantity.to_value multiplies by these).
_DEG_TO_RAD = u.deg.to(u.radian)
_RAD_TO_DEG = u.radian.to(u.deg)
_DEG_TO_ARCSEC = u.deg.to(u.arcsec)
_ARCSEC_TO_RAD = u.arcsec.to(u.radian)
_HALF_PI = np.pi / 2.0


def erfaPathUsable(wcs: WCS) -> bool:
    """Whether the ERFA path gives astropy's results for this WCS.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        A celestial WCS.

    Returns
    -------
    bool
        True when the WCS's celestial frame is ICRS, astropy's solar-system ephemeris is
        ``"builtin"`` (``erfa.epv00``) and its astrometry provider is the default
        (``ErfaAstrom``, not an interpolating one).
    """
    if solar_system_ephemeris.get() != "builtin" or type(erfa_astrom.get()) is not ErfaAstrom:
        return False
    try:
        return type(wcs_to_celestial_frame(wcs)) is ICRS
    except ValueError:
        return False


def _jd12(time: Time, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Two-part Julian date of ``time`` in ``scale``; the time itself when the table ends."""
    if time.scale != scale:
        try:
            time = getattr(time, scale)
        except iers.IERSRangeError as error:
            warnings.warn(f"{error.args[0]} Assuming UT1-UTC=0 for coordinate transformations.",
                          AstropyWarning, stacklevel=3)
    return time.jd1, time.jd2


def _polarMotion(time: Time) -> tuple[np.ndarray, np.ndarray]:
    """Polar motion (x, y) in radians; the 50-year mean outside the table (with a warning)."""
    xp, yp, status = iers.earth_orientation_table.get().pm_xy(time, return_status=True)
    for flag, where in ((iers.TIME_BEFORE_IERS_RANGE, "before"),
                        (iers.TIME_BEYOND_IERS_RANGE, "after")):
        outside = status == flag
        if np.any(outside):
            xp[outside] = _DEFAULT_POLAR_MOTION[0] * u.arcsec
            yp[outside] = _DEFAULT_POLAR_MOTION[1] * u.arcsec
            warnings.warn(
                f"Tried to get polar motions for times {where} IERS data is valid. Defaulting "
                "to polar motion from the 50-yr mean for those. This may affect precision at "
                "the arcsec level.", AstropyWarning, stacklevel=3)
    return xp.to_value(u.radian), yp.to_value(u.radian)


def observerAstrometry(times: Time, location: EarthLocation) -> np.ndarray:
    """Return ERFA's astrometry context of observers on the ground, without refraction.

    Parameters
    ----------
    times : astropy.time.Time
        The dates (an array, one per observer).
    location : astropy.coordinates.EarthLocation
        The observers' positions (an array of the same length as ``times``).

    Returns
    -------
    numpy.ndarray
        ``erfa.dt_eraASTROM`` records, one per observer (``erfa.apco``).

    Notes
    -----
    Call it inside `dcrmodel.physics.site.offlineIers`: UT1-UTC and polar motion come
    from astropy's Earth-orientation table.
    """
    geodetic = location.to_geodetic("WGS84")
    jd1, jd2 = _jd12(times, "tt")
    xp, yp = _polarMotion(times)
    sp = erfa.sp00(jd1, jd2)
    x, y = erfa.bpn2xy(erfa.pnm06a(jd1, jd2))
    s = erfa.s06(jd1, jd2, x, y)
    era = erfa.era00(*_jd12(times, "ut1"))
    heliocentric, barycentric = erfa.epv00(*_jd12(times, "tdb"))
    refa, refb = erfa.refco(0.0, 0.0, 0.0, 1.0)  # pressure 0: no refraction
    return erfa.apco(jd1, jd2, barycentric, heliocentric["p"], x, y, s, era,
                     geodetic.lon.to_value(u.radian), geodetic.lat.to_value(u.radian),
                     geodetic.height.to_value(u.m), xp, yp, sp, refa, refb)


def _normalized(p: np.ndarray) -> np.ndarray:
    return p / np.sqrt(np.einsum("...i,...i", p, p))[..., np.newaxis]


def icrsToHorizontal(
    ra: np.ndarray, dec: np.ndarray, astrom: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Take ICRS directions to the observers' horizontal frames (no refraction).

    Parameters
    ----------
    ra, dec : numpy.ndarray
        ICRS right ascension and declination, deg (a distant source: no parallax).
    astrom : numpy.ndarray
        `observerAstrometry` of each point's observer.

    Returns
    -------
    az, alt : numpy.ndarray
        Azimuth (deg, East of North) and altitude (arcsec), through degrees as astropy's
        ``AltAz`` gives them.
    """
    pco = erfa.s2c(np.asarray(ra, dtype=float) * _DEG_TO_RAD,
                   np.asarray(dec, dtype=float) * _DEG_TO_RAD)
    pnat = erfa.ld(1.0, pco, pco, astrom["eh"], astrom["em"], 1e-6)
    ppr = erfa.ab(pnat, astrom["v"], astrom["em"], astrom["bm1"])
    ri, di = erfa.c2s(erfa.rxp(astrom["bpn"], ppr))
    az, zenithDistance, _, _, _ = erfa.atioq(erfa.anp(ri), di, astrom)
    return (np.asarray(az) * _RAD_TO_DEG,
            np.asarray(_HALF_PI - zenithDistance) * _RAD_TO_DEG * _DEG_TO_ARCSEC)


def horizontalToIcrs(
    az: np.ndarray, alt: np.ndarray, astrom: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Take directions in the observers' horizontal frames (no refraction) to ICRS.

    Parameters
    ----------
    az : numpy.ndarray
        Azimuth, deg East of North.
    alt : numpy.ndarray
        Altitude, arcsec.
    astrom : numpy.ndarray
        `observerAstrometry` of each point's observer.

    Returns
    -------
    ra, dec : numpy.ndarray
        ICRS right ascension and declination, radians.
    """
    zenithDistance = _HALF_PI - np.asarray(alt, dtype=float) * _ARCSEC_TO_RAD
    ri, di = erfa.atoiq("A", np.asarray(az, dtype=float) * _DEG_TO_RAD, zenithDistance, astrom)
    ppr = erfa.trxp(astrom["bpn"], erfa.s2c(ri, di))
    d = np.zeros_like(ppr)
    for _ in range(2):  # aberration, inverted by iteration
        before = _normalized(ppr - d)
        d = erfa.ab(before, astrom["v"], astrom["em"], astrom["bm1"]) - before
    pnat = _normalized(ppr - d)
    d = np.zeros_like(pnat)
    for _ in range(5):  # light deflection by the Sun, inverted by iteration
        before = _normalized(pnat - d)
        d = erfa.ld(1.0, before, before, astrom["eh"], astrom["em"], 1e-6) - before
    rc, dc = erfa.c2s(_normalized(pnat - d))
    return erfa.anp(rc), dc


def _wrapped(lon: np.ndarray) -> np.ndarray:
    """Longitudes (deg) in [0, 360), wrapped as astropy's ``Longitude`` wraps them."""
    lon = np.array(lon, dtype=float)
    if np.any((lon < 0.0) | (lon >= 360.0)):
        wraps = lon // 360.0
        valid = np.isfinite(wraps) & (wraps != 0)
        lon[valid] -= wraps[valid] * 360.0
        lon[lon >= 360.0] -= 360.0
        lon[lon < 0.0] += 360.0
    return lon


def pixelsToIcrs(wcs: WCS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the ICRS (ra, dec) in deg of 0-based pixels, as ``wcs.pixel_to_world`` does.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        A celestial WCS whose frame is ICRS (`erfaPathUsable`).
    x, y : numpy.ndarray
        0-based pixel positions.

    Returns
    -------
    ra, dec : numpy.ndarray
        Degrees; ra in [0, 360).
    """
    ra, dec = wcs.pixel_to_world_values(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return _wrapped(ra), np.asarray(dec, dtype=float)


def icrsToPixels(wcs: WCS, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the 0-based pixels of ICRS directions given in radians (``wcs.world_to_pixel``).

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        A celestial WCS whose frame is ICRS (`erfaPathUsable`).
    ra, dec : numpy.ndarray
        Radians.

    Returns
    -------
    x, y : numpy.ndarray
        0-based pixel positions.
    """
    x, y = wcs.world_to_pixel_values(np.asarray(ra) * _RAD_TO_DEG, np.asarray(dec) * _RAD_TO_DEG)
    return np.asarray(x), np.asarray(y)
