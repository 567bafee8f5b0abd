"""FITS header keys of an exposure's HDU 0 in the Rubin layout: visit, band and calibration.

HDU 0 of an exposure file (primer, "The on-disk format") holds the visit metadata
(`VISIT_KEYS`: ``BORE-RA``, ``BORE-DEC``, ``BORE-AZ``, ``BORE-ALT``, ``BORE-AIRMASS``,
``BORE-ROTANG``, ``ROTTYPE``, ``OBS-LONG``, ``OBS-LAT``, ``OBS-ELEV``, ``AIRTEMP``,
``AIRPRESS``, ``HUMIDITY``, ``DATE-AVG``, ``TIMESYS``, ``MJD-AVG-UT1``, ``AVG-ERA``,
``EXPTIME``, ``IDNUM``), the band (``FILTER``, and dcrmodel's optional ``FILT-EFF``/``FILT-BW``
in nm) and the photometric calibration (``PHOTCALIB``, nJy per count, or ``FLUXMAG0``). This
module converts `VisitInfo`, `Filter` and `PhotoCalib` to and from those keys, and holds the
header card helpers that the rest of the FITS input/output shares: cards whose floats are
written with every digit needed to read back exactly (`makeCard`, `setKey`), and readers of
header values that raise `DcrFitsError` naming the HDU and key at fault (`headerFloat`,
`headerInt`, `headerStr`). Those helpers and the key lists `FILTER_KEYS` and `CALIB_KEYS`
are shared by the modules of ``dcrmodel.fits`` and are not handed on (not in ``__all__``).

Headers written by other software are read as long as their meaning is unambiguous, with a
`DcrWarning` for what had to be completed: a missing ``BORE-AZ``/``BORE-ALT``,
``BORE-AIRMASS`` or ``AVG-ERA`` is computed from the pointing, the date and the site; a
missing ``DATE-AVG`` is the start (``DATE-BEG``/``DATE-OBS``) plus half of ``EXPTIME``.
Values that are impossible in the layout's units (an air temperature in kelvin, a pressure
in hPa) are rejected, and a ``BORE-ALT`` that contradicts the pointing by more than a degree
is warned about.

Examples
--------
>>> from dcrmodel.image import Filter
>>> header = filterToHeader(Filter.fromBand("g"))
>>> filterFromHeader(header) == Filter.fromBand("g")
True
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import astropy.units as u
import erfa
import numpy as np
from astropy.coordinates import AltAz, Angle, SkyCoord
from astropy.io import fits
from astropy.time import Time

from ..errors import (
    DcrError,
    DcrFitsError,
    DcrTypeError,
    DcrValueError,
    DcrWarning,
    externalStacklevel,
)
from ..image import RUBIN_BANDS, Filter, PhotoCalib
from ..physics import ROT_TYPES, Observatory, VisitInfo, Weather, defaultWeather, offlineIers

__all__ = [
    "visitInfoToHeader",
    "visitInfoFromHeader",
    "filterToHeader",
    "filterFromHeader",
    "photoCalibFromHeader",
    "VISIT_KEYS",
]

#: Keys of HDU 0 that hold the visit metadata (primer), in the order they are written.
VISIT_KEYS = (
    "BORE-RA",
    "BORE-DEC",
    "BORE-AZ",
    "BORE-ALT",
    "BORE-AIRMASS",
    "BORE-ROTANG",
    "ROTTYPE",
    "OBS-LONG",
    "OBS-LAT",
    "OBS-ELEV",
    "AIRTEMP",
    "AIRPRESS",
    "HUMIDITY",
    "DATE-AVG",
    "TIMESYS",
    "MJD-AVG-UT1",
    "AVG-ERA",
    "EXPTIME",
    "IDNUM",
)
#: Keys of HDU 0 that hold the band.
FILTER_KEYS = ("FILTER", "FILT-EFF", "FILT-BW")
#: Keys of HDU 0 that hold the photometric calibration.
CALIB_KEYS = ("PHOTCALIB", "FLUXMAG0")

# AB magnitude zero point: a source of magnitude 0 has 3631 Jy (Oke & Gunn 1983, ApJ 266,
# 713), i.e. 3.631e12 nJy; FLUXMAG0 is the instrumental flux (counts) of such a source.
_AB_ZERO_POINT_NJY = 3.631e12

# Earth rotation angle, IERS Conventions (2010), eq. 5.15 (Capitaine et al. 2000):
# ERA(Du) = 2 pi (0.7790572732640 + 1.00273781191135448 Du), Du = JD(UT1) - 2451545.0.
_ERA_AT_J2000 = 0.7790572732640  # turns
_ERA_RATE = 1.00273781191135448  # turns per UT1 day
_MJD_OF_J2000 = 51544.5
# Largest distance (s) between the UT1 of a visit's ERA and its date for the two to belong
# together (the scales differ by up to ~100 s; the ERA turns 1.25 deg in 300 s).
_ERA_DATE_TOLERANCE = 300.0

# FITS times scales that astropy's Time knows, as written in TIMESYS.
_TIME_SCALES = {"UTC", "TAI", "TT", "UT1", "TCG", "TCB", "TDB"}


# --------------------------------------------------------------------------------------
# Header helpers
# --------------------------------------------------------------------------------------


def _formatFloat(value: float) -> str:
    """Return the shortest text that reads back as exactly ``value`` (FITS real syntax)."""
    text = repr(float(value)).upper()
    mantissa, _, exponent = text.partition("E")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + ("E" + exponent if exponent else "")


def makeCard(key: str, value: Any, comment: str = "") -> fits.Card:
    """Make a header card; floats are written with all the digits needed to read back exactly.

    astropy shortens float values to 20 characters, which can drop the last digits of a
    double; the card image is therefore composed here for floats. Keys longer than eight
    characters use the HIERARCH convention, as the Rubin files do.
    """
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise DcrValueError(
                f"header key {key} cannot hold a non-finite number in FITS; leave it out "
                f"or give a finite value",
                key=key,
                value=value,
            )
        valueText = _formatFloat(float(value))
        if _needsHierarch(key):
            image = f"HIERARCH {key} = {valueText}"
        else:
            image = f"{key:<8}= {valueText:>20}"
        if comment and len(image) + 3 + len(comment) <= 80:
            image += " / " + comment
        if len(image) > 80:
            raise DcrValueError("header card too long for FITS", key=key, value=value)
        return fits.Card.fromstring(image.ljust(80))
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, np.bool_):
        value = bool(value)
    keyword = f"HIERARCH {key}" if _needsHierarch(key) else key
    return fits.Card(keyword, value, comment)


def _needsHierarch(key: str) -> bool:
    """Return True if ``key`` is not a standard FITS keyword (too long or other characters)."""
    if key in ("COMMENT", "HISTORY", ""):
        return False
    return len(key) > 8 or not all(c.isupper() or c.isdigit() or c in "-_" for c in key)


def setKey(header: fits.Header, key: str, value: Any, comment: str = "") -> None:
    """Set ``key`` in ``header`` (replacing an earlier value) with an exact float card."""
    if key in header:
        del header[key]
    header.append(makeCard(key, value, comment), end=True)


def _isMissing(value: Any) -> bool:
    """Return True for header values that stand for "unknown": blank, NaN or 'NaN' text."""
    if value is None or isinstance(value, fits.card.Undefined):
        return True
    if isinstance(value, str):
        return value.strip().upper() in {"", "NAN", "NONE", "UNKNOWN"}
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return not math.isfinite(float(value))
    return False


def headerFloat(
    header: fits.Header, key: str, where: str, *, allowMissing: bool = True
) -> float | None:
    """Read a real number from ``header``; None if absent; NaN if it stands for unknown.

    Raises
    ------
    DcrFitsError
        If the value is not a number (naming ``where`` and ``key``), or the key is absent
        and ``allowMissing`` is False.
    """
    if key not in header:
        if allowMissing:
            return None
        raise DcrFitsError(f"{where}: key {key} is missing", key=key)
    value = header[key]
    if _isMissing(value):
        return math.nan
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DcrFitsError(
            f"{where}: key {key} must be a number, not {type(value).__name__}; fix the header",
            key=key,
            value=value,
        )
    return float(value)


def headerInt(header: fits.Header, key: str, where: str) -> int | None:
    """Read an integer from ``header`` (None if absent or unknown)."""
    if key not in header or _isMissing(header[key]):
        return None
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DcrFitsError(
            f"{where}: key {key} must be an integer, not {type(value).__name__}; fix the header",
            key=key,
            value=value,
        )
    if isinstance(value, numbers.Integral):
        return int(value)
    if not float(value).is_integer():
        raise DcrFitsError(f"{where}: key {key} must be an integer", key=key, value=value)
    return int(value)


def headerStr(header: fits.Header, key: str, where: str) -> str | None:
    """Read a text value from ``header`` (None if absent or blank)."""
    if key not in header:
        return None
    value = header[key]
    if value is None or isinstance(value, fits.card.Undefined):
        return None
    if not isinstance(value, str):
        raise DcrFitsError(
            f"{where}: key {key} must be text, not {type(value).__name__}; fix the header",
            key=key,
            value=value,
        )
    value = value.strip()
    return value or None


# --------------------------------------------------------------------------------------
# Visit metadata
# --------------------------------------------------------------------------------------


def _degrees(value: Any) -> float:
    """Return an angle (Angle or angular Quantity) in degrees."""
    return float(Angle(value).to_value(u.deg))


def _ut1MjdFromEra(era: float, date: Time) -> float:
    """Return the MJD (UT1) at which the Earth rotation angle is ``era`` (degrees).

    The ERA is linear in UT1 (IERS Conventions 2010, eq. 5.15); inverting it needs no
    Earth-orientation table. The whole number of turns comes from ``date`` (UT1 is within a
    second of UTC, far less than the 0.997-day period).
    """
    # Days since J2000 in the date's own scale: every FITS time scale is within two minutes
    # of UT1, so no conversion (and no Earth-orientation table) is needed here.
    approxDays = date.mjd - _MJD_OF_J2000
    turns = era / 360.0
    whole = round(_ERA_AT_J2000 + _ERA_RATE * approxDays - turns)
    du = (turns + whole - _ERA_AT_J2000) / _ERA_RATE
    return _MJD_OF_J2000 + du


def _ut1Mjd(eraDeg: float | None, date: Time) -> float:
    """Return the MJD (UT1) of the visit: from its ERA when that fits its date, else from the date.

    UT1 is within 0.9 s of UTC and within two minutes of every other FITS time scale, so
    an ERA that puts UT1 more than five minutes from the date belongs to another time; the
    date then decides, through astropy's UT1 (bundled Earth-orientation tables,
    `dcrmodel.physics.site.offlineIers`).
    """
    if eraDeg is not None:
        mjd = _ut1MjdFromEra(eraDeg, date)
        offset = abs(mjd - date.mjd) * 86400.0
        if offset < _ERA_DATE_TOLERANCE:
            return mjd
        warnings.warn(
            f"the visit's Earth rotation angle ({eraDeg:.6f} deg) is that of a time "
            f"{offset:.0f} s from its date; MJD-AVG-UT1 is computed from the date",
            DcrWarning,
            stacklevel=externalStacklevel(),
        )
    with offlineIers():
        return float(date.ut1.mjd)


def visitInfoToHeader(visitInfo: VisitInfo) -> fits.Header:
    """Write the visit metadata as the HDU 0 keys of the Rubin layout.

    Parameters
    ----------
    visitInfo : `dcrmodel.physics.observation.VisitInfo`
        The visit. Attributes that are None are left out of the header.

    Returns
    -------
    header : `astropy.io.fits.Header`
        ``BORE-RA``/``BORE-DEC`` (ICRS, deg), ``BORE-AZ``/``BORE-ALT`` (deg),
        ``BORE-AIRMASS``, ``BORE-ROTANG`` (deg), ``ROTTYPE``, ``OBS-LONG``/``OBS-LAT`` (deg,
        positive East), ``OBS-ELEV`` (m), ``AIRTEMP`` (degC), ``AIRPRESS`` (Pa),
        ``HUMIDITY`` (%), ``DATE-AVG`` (ISO-8601 in the time's own scale, to the
        nanosecond) with ``TIMESYS``, ``MJD-AVG-UT1``, ``AVG-ERA`` (deg), ``EXPTIME`` (s)
        and ``IDNUM``. Floats are written with every digit needed to read back exactly.

    Raises
    ------
    DcrTypeError
        If ``visitInfo`` is not a `VisitInfo`.

    Notes
    -----
    ``MJD-AVG-UT1`` is derived from the Earth rotation angle (``AVG-ERA``) by inverting its
    defining linear relation with UT1 (IERS Conventions 2010, eq. 5.15), so it needs no
    Earth-orientation table and agrees with ``AVG-ERA`` exactly. Without an ERA, or with
    one that does not belong to the date (a warning), it comes from the date through
    astropy's UT1. It is informative only: `visitInfoFromHeader` reads the date from
    ``DATE-AVG``.

    Warns
    -----
    DcrWarning
        If the Earth rotation angle is that of a time more than five minutes from the date.
    """
    if not isinstance(visitInfo, VisitInfo):
        raise DcrTypeError(
            "visitInfo must be a dcrmodel VisitInfo", visitInfo=type(visitInfo).__name__
        )
    header = fits.Header()
    raDec = visitInfo.boresightRaDec
    if raDec is not None:
        icrs = raDec.icrs if hasattr(raDec, "icrs") else raDec
        setKey(header, "BORE-RA", float(icrs.ra.deg), "[deg] boresight ICRS right ascension")
        setKey(header, "BORE-DEC", float(icrs.dec.deg), "[deg] boresight ICRS declination")
    azAlt = visitInfo.boresightAzAlt
    if azAlt is not None:
        setKey(header, "BORE-AZ", _degrees(azAlt[0]), "[deg] boresight azimuth")
        setKey(header, "BORE-ALT", _degrees(azAlt[1]), "[deg] boresight altitude")
    if visitInfo.boresightAirmass is not None and math.isfinite(visitInfo.boresightAirmass):
        setKey(header, "BORE-AIRMASS", float(visitInfo.boresightAirmass), "boresight airmass")
    if visitInfo.boresightRotAngle is not None:
        setKey(
            header, "BORE-ROTANG", _degrees(visitInfo.boresightRotAngle),
            "[deg] rotation angle",
        )
    if visitInfo.rotType is not None:
        setKey(header, "ROTTYPE", str(visitInfo.rotType), "type of rotation angle")
    observatory = visitInfo.observatory
    if observatory is not None:
        setKey(header, "OBS-LONG", _degrees(observatory.longitude), "[deg] East longitude")
        setKey(header, "OBS-LAT", _degrees(observatory.latitude), "[deg] latitude")
        setKey(header, "OBS-ELEV", float(observatory.elevation), "[m] elevation")
    weather = visitInfo.weather
    if weather is not None:
        setKey(header, "AIRTEMP", float(weather.airTemperature), "[degC] air temperature")
        setKey(header, "AIRPRESS", float(weather.airPressure), "[Pa] air pressure")
        setKey(header, "HUMIDITY", float(weather.humidity), "[%] relative humidity")
    date = visitInfo.date
    if date is not None:
        if date.scale.upper() not in _TIME_SCALES:
            raise DcrValueError(
                "the visit date must be in a FITS time scale (utc, tai, tt, ut1, tcg, tcb, "
                "tdb)",
                scale=date.scale,
            )
        exact = date.copy(format="isot")
        exact.precision = 9
        setKey(header, "DATE-AVG", str(exact.isot), "mid-exposure date")
        setKey(header, "TIMESYS", date.scale.upper(), "time scale of DATE-AVG")
    era = visitInfo.era
    eraDeg = None if era is None else _degrees(era)
    if date is not None:
        setKey(header, "MJD-AVG-UT1", _ut1Mjd(eraDeg, date), "[d] mid-exposure UT1")
    if eraDeg is not None:
        setKey(header, "AVG-ERA", eraDeg, "[deg] Earth rotation angle")
    if visitInfo.exposureTime is not None and math.isfinite(visitInfo.exposureTime):
        setKey(header, "EXPTIME", float(visitInfo.exposureTime), "[s] exposure time")
    if visitInfo.id is not None:
        setKey(header, "IDNUM", int(visitInfo.id), "visit identifier")
    return header


def visitInfoFromHeader(header: fits.Header, where: str = "HDU 0") -> VisitInfo | None:
    """Read the visit metadata from the HDU 0 keys of the Rubin layout.

    Parameters
    ----------
    header : `astropy.io.fits.Header`
        Header holding the keys listed in `visitInfoToHeader`.
    where : `str`, optional
        Name of the header's HDU (or file) for error messages.

    Returns
    -------
    visitInfo : `dcrmodel.physics.observation.VisitInfo` or None
        None when the header has none of the visit keys (a coadd, for example). Keys that
        are absent give None attributes.

    Raises
    ------
    DcrFitsError
        If a value is not of the right kind (text where a number is needed, a date that
        cannot be parsed, an unknown ``TIMESYS``) or the values are out of their range,
        including a weather value that is implausible in the layout's unit (``AIRTEMP``
        outside -100..70 degC, ``AIRPRESS`` outside 1e4..1.2e5 Pa: kelvin or hPa).

    Warns
    -----
    DcrWarning
        When a weather value is NaN or blank (unknown): it is replaced by the
        standard-atmosphere default at the observatory's elevation
        (`dcrmodel.physics.site.defaultWeather`). When ``BORE-AZ``/``BORE-ALT`` are missing or
        unknown but the pointing, the date and the site are known: they are computed with
        astropy's ``AltAz`` (no refraction); when ``BORE-AIRMASS`` is missing or unknown
        and the altitude known: it is ``sec z``; when ``AVG-ERA`` is missing or unknown and
        the date known: it is computed from the date. When ``DATE-AVG`` and ``MJD-AVG-UT1`` are
        missing and the start of the exposure is given (``DATE-BEG`` or ``DATE-OBS``, in
        ``TIMESYS``): the date is the start plus half of ``EXPTIME``.
    """
    if not isinstance(header, fits.Header):
        raise DcrTypeError("header must be an astropy.io.fits.Header", header=type(header))
    if not any(key in header for key in VISIT_KEYS):
        return None

    def number(key: str) -> float | None:
        value = headerFloat(header, key, where)
        return None if value is None or math.isnan(value) else value

    kwargs: dict[str, Any] = {}
    try:
        ra, dec = number("BORE-RA"), number("BORE-DEC")
        if ra is not None and dec is not None:
            kwargs["boresightRaDec"] = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
        az, alt = number("BORE-AZ"), number("BORE-ALT")
        if az is not None and alt is not None:
            kwargs["boresightAzAlt"] = (Angle(az, u.deg), Angle(alt, u.deg))
        airmass = number("BORE-AIRMASS")
        if airmass is not None and airmass <= 0.0:
            # 0, -1, -99: a writer's placeholder for an unknown airmass. (A positive value
            # below 1 is no placeholder but a wrong airmass, and is rejected.)
            warnings.warn(
                f"{where}: BORE-AIRMASS = {airmass:g} is a placeholder, not an airmass (at "
                f"least 1); read as unknown",
                DcrWarning,
                stacklevel=externalStacklevel(),
            )
            airmass = None
        if airmass is not None:
            kwargs["boresightAirmass"] = airmass
        rotAngle = number("BORE-ROTANG")
        if rotAngle is not None:
            kwargs["boresightRotAngle"] = Angle(rotAngle, u.deg)
        rotType = headerStr(header, "ROTTYPE", where)
        if rotType is not None:
            if rotType.upper() not in ROT_TYPES:
                # DCR does not use it: a label of another convention does not stop the read.
                warnings.warn(
                    f"{where}: ROTTYPE = {rotType!r} is not one of {', '.join(ROT_TYPES)}; "
                    f"read as UNKNOWN",
                    DcrWarning,
                    stacklevel=externalStacklevel(),
                )
                rotType = "UNKNOWN"
            kwargs["rotType"] = rotType
        lon, lat, elev = number("OBS-LONG"), number("OBS-LAT"), number("OBS-ELEV")
        observatory = None
        if lon is not None and lat is not None and elev is not None:
            observatory = Observatory(lon * u.deg, lat * u.deg, elev)
            kwargs["observatory"] = observatory
        weather = _weatherFromHeader(header, where, observatory)
        if weather is not None:
            kwargs["weather"] = weather
        date = _dateFromHeader(header, where)
        if date is not None:
            kwargs["date"] = date
        era = number("AVG-ERA")
        if era is not None:
            kwargs["era"] = Angle(era, u.deg)
        exposureTime = number("EXPTIME")
        if exposureTime is not None:
            kwargs["exposureTime"] = exposureTime
        visitId = headerInt(header, "IDNUM", where)
        if visitId is not None:
            kwargs["id"] = visitId
        _fillAzAlt(kwargs, where)
        return VisitInfo(**kwargs)
    except DcrFitsError:
        raise
    except (DcrError, ValueError, TypeError) as error:
        raise DcrFitsError(
            f"{where}: the visit metadata is invalid ({error}); fix the header keys",
            keys=[key for key in VISIT_KEYS if key in header],
        ) from error


def _fillAzAlt(kwargs: dict[str, Any], where: str) -> None:
    """Fill a missing (or NaN) boresight azimuth/altitude, ERA and airmass from what is known.

    The azimuth and altitude come from the pointing, the date and the site through astropy's
    AltAz without refraction (the true altitude); the Earth rotation angle from the date's
    UT1 (`erfa.era00`); the airmass is ``sec z = 1 / sin(alt)`` of the altitude, as
    `VisitInfo.fromAstropy` computes it. Each with a warning; nothing is filled when what it
    needs is unknown too.
    """
    raDec = kwargs.get("boresightRaDec")
    observatory = kwargs.get("observatory")
    date = kwargs.get("date")
    if "boresightAzAlt" not in kwargs and None not in (raDec, observatory, date):
        frame = AltAz(obstime=date, location=observatory.toEarthLocation(), pressure=0 * u.hPa)
        with offlineIers():
            horizontal = raDec.transform_to(frame)
        kwargs["boresightAzAlt"] = (Angle(horizontal.az.deg, u.deg),
                                    Angle(horizontal.alt.deg, u.deg))
        warnings.warn(
            f"{where}: BORE-AZ/BORE-ALT are missing or unknown; computed from BORE-RA/BORE-DEC, "
            f"the date and the site without refraction (altitude {horizontal.alt.deg:.4f} deg)",
            DcrWarning,
            stacklevel=externalStacklevel(),
        )
    if "era" not in kwargs and date is not None:
        with offlineIers():
            ut1 = date.ut1
        kwargs["era"] = Angle(math.degrees(erfa.era00(ut1.jd1, ut1.jd2)), u.deg)
        warnings.warn(
            f"{where}: AVG-ERA is missing or unknown; computed from the date "
            f"({kwargs['era'].deg:.6f} deg)",
            DcrWarning,
            stacklevel=externalStacklevel(),
        )
    _checkAltitude(kwargs, where)
    if "boresightAirmass" not in kwargs and "boresightAzAlt" in kwargs:
        altitude = float(kwargs["boresightAzAlt"][1].deg)
        if 0.0 < altitude <= 90.0:
            kwargs["boresightAirmass"] = 1.0 / math.sin(math.radians(altitude))
            warnings.warn(
                f"{where}: BORE-AIRMASS is missing or unknown; taken as sec z of the altitude "
                f"({kwargs['boresightAirmass']:.4f})",
                DcrWarning,
                stacklevel=externalStacklevel(),
            )


# Largest difference (deg) between BORE-ALT and the altitude that BORE-RA/BORE-DEC, AVG-ERA,
# OBS-LONG and OBS-LAT give before a warning. That altitude mixes ICRS coordinates with the
# Earth rotation angle (off by up to ~0.4 deg of precession in the 2020s) and BORE-ALT may
# include refraction (< 0.3 deg above 10 deg elevation): only keys in another convention
# (a zenith distance, a West-positive longitude, another time) are flagged.
_ALTITUDE_TOLERANCE_DEG = 1.0


def _checkAltitude(kwargs: dict[str, Any], where: str) -> None:
    """Warn if BORE-ALT disagrees with the altitude of the pointing at the visit's ERA."""
    raDec = kwargs.get("boresightRaDec")
    observatory = kwargs.get("observatory")
    era = kwargs.get("era")
    azAlt = kwargs.get("boresightAzAlt")
    if None in (raDec, observatory, era, azAlt):
        return
    hourAngle = math.radians(
        float(era.deg) + float(observatory.longitude.deg) - float(raDec.ra.deg)
    )
    dec = math.radians(float(raDec.dec.deg))
    lat = math.radians(float(observatory.latitude.deg))
    sinAlt = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(hourAngle)
    altitude = math.degrees(math.asin(min(1.0, max(-1.0, sinAlt))))
    given = float(azAlt[1].deg)
    if abs(given - altitude) > _ALTITUDE_TOLERANCE_DEG:
        warnings.warn(
            f"{where}: BORE-ALT = {given:.3f} deg, but BORE-RA/BORE-DEC at the hour angle of "
            f"AVG-ERA and OBS-LONG are at altitude {altitude:.3f} deg for OBS-LAT; the "
            f"refraction uses BORE-ALT: check the keys' conventions (altitude, not zenith "
            f"distance; East-positive longitude; one time for all)",
            DcrWarning,
            stacklevel=externalStacklevel(),
        )


# Plausible weather at an observatory, in the units of the layout; values outside are in
# another unit, and would give a refraction off by orders of magnitude. Extremes: -89.2 and
# 56.7 degC recorded at the surface; 33.7 kPa on the summit of Everest.
_WEATHER_RANGES = {
    "AIRTEMP": (-100.0, 70.0, "degC", "a value in kelvin? subtract 273.15"),
    "AIRPRESS": (1.0e4, 1.2e5, "Pa", "a value in hPa or mbar? multiply by 100"),
}


def _weatherFromHeader(
    header: fits.Header, where: str, observatory: Observatory | None
) -> Weather | None:
    """Read AIRTEMP, AIRPRESS, HUMIDITY; unknown values become the site's default weather."""
    keys = ("AIRTEMP", "AIRPRESS", "HUMIDITY")
    values = [headerFloat(header, key, where) for key in keys]
    if all(value is None for value in values):
        return None
    for key, value in zip(keys, values, strict=True):
        if value is None or math.isnan(value) or key not in _WEATHER_RANGES:
            continue
        low, high, unit, hint = _WEATHER_RANGES[key]
        if not low <= value <= high:
            raise DcrFitsError(
                f"{where}: key {key} = {value:g} is not a plausible value in {unit} "
                f"({low:g} to {high:g}); the layout's unit is {unit} ({hint})",
                key=key,
                value=value,
            )
    unknown = [key for key, value in zip(keys, values, strict=True)
               if value is None or math.isnan(value)]
    if unknown:
        if observatory is None:
            warnings.warn(
                f"{where}: weather keys {', '.join(unknown)} are unknown and the observatory "
                f"is not given, so no default weather can be made; refraction will use the "
                f"standard atmosphere when it knows the site",
                DcrWarning,
                stacklevel=externalStacklevel(),
            )
            return None
        default = defaultWeather(observatory.elevation)
        defaults = (default.airTemperature, default.airPressure, default.humidity)
        values = [d if key in unknown else v
                  for key, v, d in zip(keys, values, defaults, strict=True)]
        warnings.warn(
            f"{where}: weather keys {', '.join(unknown)} are unknown (NaN or blank); using the "
            f"standard-atmosphere default for the observatory's elevation "
            f"({observatory.elevation:.0f} m) for them",
            DcrWarning,
            stacklevel=externalStacklevel(),
        )
    return Weather(*values)


def _dateFromHeader(header: fits.Header, where: str) -> Time | None:
    """Read DATE-AVG (in TIMESYS), or failing that MJD-AVG-UT1, or DATE-BEG/DATE-OBS."""
    text = headerStr(header, "DATE-AVG", where)
    scaleText = headerStr(header, "TIMESYS", where) or "UTC"  # FITS default time scale
    if scaleText.upper() not in _TIME_SCALES:
        raise DcrFitsError(
            f"{where}: key TIMESYS names an unknown time scale; use one of "
            f"{', '.join(sorted(_TIME_SCALES))}",
            key="TIMESYS",
            value=scaleText,
        )
    if text is not None:
        try:
            return Time(text, format="isot", scale=scaleText.lower(), precision=9)
        except ValueError as error:
            raise DcrFitsError(
                f"{where}: key DATE-AVG is not an ISO-8601 date ({error})",
                key="DATE-AVG",
                value=text,
            ) from None
    mjd = headerFloat(header, "MJD-AVG-UT1", where)
    if mjd is not None and not math.isnan(mjd):
        return Time(mjd, format="mjd", scale="ut1")
    return _dateFromStart(header, where, scaleText.lower())


def _dateFromStart(header: fits.Header, where: str, scale: str) -> Time | None:
    """Mid-exposure date from the start (DATE-BEG or DATE-OBS) plus half of EXPTIME."""
    for key in ("DATE-BEG", "DATE-OBS"):
        text = headerStr(header, key, where)
        if text is None:
            continue
        try:
            start = Time(text, format="isot", scale=scale, precision=9)
        except ValueError as error:
            raise DcrFitsError(
                f"{where}: key {key} is not an ISO-8601 date ({error})", key=key, value=text
            ) from None
        exposureTime = headerFloat(header, "EXPTIME", where)
        if exposureTime is None or math.isnan(exposureTime):
            exposureTime = 0.0
        warnings.warn(
            f"{where}: DATE-AVG is missing; the mid-exposure date is taken as {key} (the "
            f"start) plus half of EXPTIME ({exposureTime:g} s)",
            DcrWarning,
            stacklevel=externalStacklevel(),
        )
        return start + (exposureTime / 2.0) * u.s
    return None


# --------------------------------------------------------------------------------------
# Filter and calibration
# --------------------------------------------------------------------------------------


def filterToHeader(filterInfo: Filter) -> fits.Header:
    """Write a band as the keys ``FILTER``, ``FILT-EFF`` and ``FILT-BW`` (nm).

    Parameters
    ----------
    filterInfo : `dcrmodel.image.Filter`
        The band.

    Returns
    -------
    header : `astropy.io.fits.Header`
        The three keys.
    """
    if not isinstance(filterInfo, Filter):
        raise DcrTypeError("filterInfo must be a dcrmodel Filter", filterInfo=filterInfo)
    header = fits.Header()
    setKey(header, "FILTER", str(filterInfo.bandName), "band")
    setKey(header, "FILT-EFF", float(filterInfo.effectiveWavelength),
           "[nm] effective wavelength of the band")
    setKey(header, "FILT-BW", float(filterInfo.bandwidth), "[nm] bandwidth of the band")
    return header


def filterFromHeader(header: fits.Header, where: str = "HDU 0") -> Filter | None:
    """Read the band of an exposure from its header.

    Parameters
    ----------
    header : `astropy.io.fits.Header`
        Header with the key ``FILTER`` and optionally ``FILT-EFF`` and ``FILT-BW`` (nm).
    where : `str`, optional
        Name of the header's HDU (or file) for error messages.

    Returns
    -------
    filterInfo : `dcrmodel.image.Filter` or None
        With ``FILT-EFF`` and ``FILT-BW``, a Filter of those wavelengths. Otherwise the
        band's entry in ``dcrmodel.image.RUBIN_BANDS``: the name itself (``'g'``) or the
        band before an underscore, as in Rubin physical filter names (``'g_6'``), keeping
        the header's name as ``bandName``. None without a ``FILTER`` key, or (with a
        warning) for a band that is not in the table and has no wavelengths in the header.

    Raises
    ------
    DcrFitsError
        If ``FILT-EFF`` is given without ``FILT-BW`` or the other way round, or the values
        are not positive numbers.

    Warns
    -----
    DcrWarning
        For an unknown band without wavelengths: DCR cannot be computed for such an
        exposure until its filter is set.
    """
    name = headerStr(header, "FILTER", where)
    eff = headerFloat(header, "FILT-EFF", where)
    bw = headerFloat(header, "FILT-BW", where)
    eff = None if eff is not None and math.isnan(eff) else eff
    bw = None if bw is not None and math.isnan(bw) else bw
    if (eff is None) != (bw is None):
        present, absent = ("FILT-EFF", "FILT-BW") if bw is None else ("FILT-BW", "FILT-EFF")
        raise DcrFitsError(
            f"{where}: key {present} is given without {absent}; give both the effective "
            f"wavelength and the bandwidth (nm) or neither",
            key=absent,
        )
    if name is None:
        if eff is not None:
            raise DcrFitsError(
                f"{where}: FILT-EFF and FILT-BW are given without FILTER; add the band name",
                key="FILTER",
            )
        return None
    if eff is not None and bw is not None:
        try:
            return Filter(name, eff, bw)
        except DcrError as error:
            raise DcrFitsError(
                f"{where}: keys FILT-EFF/FILT-BW are not a valid band ({error})",
                key="FILT-EFF",
                effectiveWavelength=eff,
                bandwidth=bw,
            ) from None
    for band in (name, name.split("_")[0]):
        if band in RUBIN_BANDS:
            known = Filter.fromBand(band)
            return Filter(name, known.effectiveWavelength, known.bandwidth)
    warnings.warn(
        f"{where}: band {name!r} is not in the built-in table ({', '.join(RUBIN_BANDS)}) and "
        f"the header has no FILT-EFF/FILT-BW; the exposure has no filter (its name is kept in "
        f"the metadata) and DCR cannot be computed until exposure.filter is set",
        DcrWarning,
        stacklevel=externalStacklevel(),
    )
    return None


def photoCalibFromHeader(header: fits.Header, where: str = "HDU 0") -> PhotoCalib | None:
    """Read the photometric calibration from a header.

    Parameters
    ----------
    header : `astropy.io.fits.Header`
        Header with ``PHOTCALIB`` (nJy per count, written by dcrmodel) or ``FLUXMAG0``
        (counts of a source of AB magnitude 0, an older convention of the Rubin and HSC
        pipelines).
    where : `str`, optional
        Name of the header's HDU (or file) for error messages.

    Returns
    -------
    photoCalib : `dcrmodel.image.PhotoCalib` or None
        ``PHOTCALIB`` if present, else ``3.631e12 / FLUXMAG0`` nJy per count (AB magnitude
        0 is 3631 Jy; Oke & Gunn 1983), else None.

    Raises
    ------
    DcrFitsError
        If the value is not a finite positive number.
    """
    for key in CALIB_KEYS:
        value = headerFloat(header, key, where)
        if value is None or math.isnan(value):
            continue
        if value <= 0.0:
            raise DcrFitsError(f"{where}: key {key} must be positive", key=key, value=value)
        calibration = value if key == "PHOTCALIB" else _AB_ZERO_POINT_NJY / value
        return PhotoCalib(calibration)
    return None
