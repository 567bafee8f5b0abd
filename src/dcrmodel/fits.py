"""Read and write exposures and DCR models as FITS files in the Rubin "Exposure" layout.

An exposure file holds (primer, "The on-disk format"):

- HDU 0: a header only, with the visit metadata (``BORE-RA``, ``BORE-DEC``, ``BORE-AZ``,
  ``BORE-ALT``, ``BORE-AIRMASS``, ``BORE-ROTANG``, ``ROTTYPE``, ``OBS-LONG``, ``OBS-LAT``,
  ``OBS-ELEV``, ``AIRTEMP``, ``AIRPRESS``, ``HUMIDITY``, ``DATE-AVG``, ``TIMESYS``,
  ``MJD-AVG-UT1``, ``AVG-ERA``, ``EXPTIME``, ``IDNUM``), the band (``FILTER``, and
  dcrmodel's optional ``FILT-EFF``/``FILT-BW`` in nm), the photometric calibration
  (``PHOTCALIB``, nJy per count) and any further keys of ``Exposure.metadata``.
- HDUs ``IMAGE`` (float32), ``MASK`` (int32, one ``MP_<PLANE> = bit`` key per mask plane)
  and ``VARIANCE`` (float32). Each carries the celestial WCS written for its own (local)
  FITS pixel grid, so that any FITS viewer shows the right sky coordinates, the parent
  origin as ``LTV1 = -x0``, ``LTV2 = -y0``, and the alternate linear WCS ``A``
  (``WCSNAMEA = 'PHYSICAL'``) that maps FITS pixels to 0-based parent pixels.
- An optional HDU ``PSF``: the PSF image at the band's effective wavelength, with
  ``PSF-FWHM`` (arcsec) and ``PSF-ALPH`` (exponent of the PSF size with wavelength).
- Anything else (the binary tables that the Rubin pipelines append) is skipped.

In memory ``Exposure.wcs`` maps PARENT 0-based pixels ``(x, y)`` to ICRS; on disk the WCS
is that of the local grid: FITS pixel ``p`` (1-based) of an image whose parent origin is
``x0`` is parent pixel ``x0 + p - 1``, so ``CRPIX(disk) = CRPIX(memory) - x0``.

A DCR model is a directory of one exposure file per subfilter, ``dcrCoadd_<k>.fits``, each
with the subfilter index, the number of subfilters and the subfilter's wavelength range in
its HDU 0 (``DCR-SUBF``, ``DCR-NSUB``, ``DCR-WMIN``, ``DCR-WMAX``), as the Rubin
``dcrCoadd`` datasets have; `DcrModelDataRef` gives ``DcrModel.fromDataRef`` access to it.

Every write is atomic (a temporary file or directory beside the target, renamed into
place), and every read checks the layout before it reads pixels, raising `DcrFitsError`
with the name of the HDU or key at fault.

Files written by other software are read as long as their meaning is unambiguous, with a
`DcrWarning` for what had to be completed: a missing ``BORE-AZ``/``BORE-ALT``,
``BORE-AIRMASS`` or ``AVG-ERA`` is computed from the pointing, the date and the site; a
missing ``DATE-AVG`` is the start (``DATE-BEG``/``DATE-OBS``) plus half of ``EXPTIME``; a
MASK without ``MP_`` keys has the Rubin default planes; a plane HDU without origin keys
shares the others'; the WCS may sit on any of the three planes. Values that are impossible
in the layout's units (an air temperature in kelvin, a pressure in hPa) are rejected, and a
``BORE-ALT`` that contradicts the pointing by more than a degree is warned about.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import astropy.units as u
import erfa
import numpy as np
from astropy.coordinates import AltAz, Angle, SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, WCSHDO_P17, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_area
from astropy.wcs.wcs import WCSHDO_SIP

from .atomic import atomicDirectory, atomicPath
from .errors import (
    DcrError,
    DcrFitsError,
    DcrOutputError,
    DcrTypeError,
    DcrValueError,
    DcrWarning,
)
from .image import (
    DEFAULT_MASK_PLANES,
    Box,
    Exposure,
    Filter,
    GaussianPsf,
    Image,
    ImagePsf,
    Mask,
    MaskedImage,
    PhotoCalib,
    Psf,
)
from .observation import ROT_TYPES, VisitInfo
from .site import Observatory, Weather, defaultWeather, offlineIers

if TYPE_CHECKING:
    from .model import DcrModel

__all__ = [
    "readExposure",
    "readExposureBBox",
    "writeExposure",
    "visitInfoToHeader",
    "visitInfoFromHeader",
    "filterToHeader",
    "filterFromHeader",
    "photoCalibFromHeader",
    "writeDcrModel",
    "readDcrModel",
    "DcrModelDataRef",
    "VISIT_KEYS",
]

_log = logging.getLogger(__name__)

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
_FILTER_KEYS = ("FILTER", "FILT-EFF", "FILT-BW")
_CALIB_KEYS = ("PHOTCALIB", "FLUXMAG0")
_PLANE_NAMES = ("IMAGE", "MASK", "VARIANCE")
_PSF_EXTNAME = "PSF"
_MASK_PREFIX = "MP_"

# Keys that describe the structure of an HDU; astropy writes them itself.
_STRUCTURAL_KEYS = frozenset(
    {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME",
     "EXTVER", "BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM", "END"}
)
_NAXIS_KEY = re.compile(r"^NAXIS\d+$")
# Rubin files point from HDU 0 to their binary-table archive with AR_HDU and integer
# "<COMPONENT>_ID" keys; those tables are not copied, so the pointers are dropped on read.
_ARCHIVE_ID_KEY = re.compile(r"^[A-Z0-9]+(_[A-Z0-9]+)*_ID$")

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

_PSF_MODEL_GAUSSIAN = "GAUSSIAN"
_PSF_MODEL_IMAGE = "IMAGE"


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


def _makeCard(key: str, value: Any, comment: str = "") -> fits.Card:
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


def _setKey(header: fits.Header, key: str, value: Any, comment: str = "") -> None:
    """Set ``key`` in ``header`` (replacing an earlier value) with an exact float card."""
    if key in header:
        del header[key]
    header.append(_makeCard(key, value, comment), end=True)


def _isMissing(value: Any) -> bool:
    """Return True for header values that stand for "unknown": blank, NaN or 'NaN' text."""
    if value is None or isinstance(value, fits.card.Undefined):
        return True
    if isinstance(value, str):
        return value.strip().upper() in {"", "NAN", "NONE", "UNKNOWN"}
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return not math.isfinite(float(value))
    return False


def _headerFloat(
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


def _headerInt(header: fits.Header, key: str, where: str) -> int | None:
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


def _headerStr(header: fits.Header, key: str, where: str) -> str | None:
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
    `dcrmodel.site.offlineIers`).
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
            stacklevel=3,
        )
    with offlineIers():
        return float(date.ut1.mjd)


def visitInfoToHeader(visitInfo: VisitInfo) -> fits.Header:
    """Write the visit metadata as the HDU 0 keys of the Rubin layout.

    Parameters
    ----------
    visitInfo : `dcrmodel.observation.VisitInfo`
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
        _setKey(header, "BORE-RA", float(icrs.ra.deg), "[deg] boresight ICRS right ascension")
        _setKey(header, "BORE-DEC", float(icrs.dec.deg), "[deg] boresight ICRS declination")
    azAlt = visitInfo.boresightAzAlt
    if azAlt is not None:
        _setKey(header, "BORE-AZ", _degrees(azAlt[0]), "[deg] boresight azimuth")
        _setKey(header, "BORE-ALT", _degrees(azAlt[1]), "[deg] boresight altitude")
    if visitInfo.boresightAirmass is not None and math.isfinite(visitInfo.boresightAirmass):
        _setKey(header, "BORE-AIRMASS", float(visitInfo.boresightAirmass), "boresight airmass")
    if visitInfo.boresightRotAngle is not None:
        _setKey(
            header, "BORE-ROTANG", _degrees(visitInfo.boresightRotAngle),
            "[deg] rotation angle",
        )
    if visitInfo.rotType is not None:
        _setKey(header, "ROTTYPE", str(visitInfo.rotType), "type of rotation angle")
    observatory = visitInfo.observatory
    if observatory is not None:
        _setKey(header, "OBS-LONG", _degrees(observatory.longitude), "[deg] East longitude")
        _setKey(header, "OBS-LAT", _degrees(observatory.latitude), "[deg] latitude")
        _setKey(header, "OBS-ELEV", float(observatory.elevation), "[m] elevation")
    weather = visitInfo.weather
    if weather is not None:
        _setKey(header, "AIRTEMP", float(weather.airTemperature), "[degC] air temperature")
        _setKey(header, "AIRPRESS", float(weather.airPressure), "[Pa] air pressure")
        _setKey(header, "HUMIDITY", float(weather.humidity), "[%] relative humidity")
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
        _setKey(header, "DATE-AVG", str(exact.isot), "mid-exposure date")
        _setKey(header, "TIMESYS", date.scale.upper(), "time scale of DATE-AVG")
    era = visitInfo.era
    eraDeg = None if era is None else _degrees(era)
    if date is not None:
        _setKey(header, "MJD-AVG-UT1", _ut1Mjd(eraDeg, date), "[d] mid-exposure UT1")
    if eraDeg is not None:
        _setKey(header, "AVG-ERA", eraDeg, "[deg] Earth rotation angle")
    if visitInfo.exposureTime is not None and math.isfinite(visitInfo.exposureTime):
        _setKey(header, "EXPTIME", float(visitInfo.exposureTime), "[s] exposure time")
    if visitInfo.id is not None:
        _setKey(header, "IDNUM", int(visitInfo.id), "visit identifier")
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
    visitInfo : `dcrmodel.observation.VisitInfo` or None
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
        (`dcrmodel.site.defaultWeather`). When ``BORE-AZ``/``BORE-ALT`` are missing or
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
        value = _headerFloat(header, key, where)
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
                stacklevel=3,
            )
            airmass = None
        if airmass is not None:
            kwargs["boresightAirmass"] = airmass
        rotAngle = number("BORE-ROTANG")
        if rotAngle is not None:
            kwargs["boresightRotAngle"] = Angle(rotAngle, u.deg)
        rotType = _headerStr(header, "ROTTYPE", where)
        if rotType is not None:
            if rotType.upper() not in ROT_TYPES:
                # DCR does not use it: a label of another convention does not stop the read.
                warnings.warn(
                    f"{where}: ROTTYPE = {rotType!r} is not one of {', '.join(ROT_TYPES)}; "
                    f"read as UNKNOWN",
                    DcrWarning,
                    stacklevel=3,
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
        visitId = _headerInt(header, "IDNUM", where)
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
            stacklevel=4,
        )
    if "era" not in kwargs and date is not None:
        with offlineIers():
            ut1 = date.ut1
        kwargs["era"] = Angle(math.degrees(erfa.era00(ut1.jd1, ut1.jd2)), u.deg)
        warnings.warn(
            f"{where}: AVG-ERA is missing or unknown; computed from the date "
            f"({kwargs['era'].deg:.6f} deg)",
            DcrWarning,
            stacklevel=4,
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
                stacklevel=4,
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
            stacklevel=5,
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
    values = [_headerFloat(header, key, where) for key in keys]
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
                stacklevel=3,
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
            stacklevel=3,
        )
    return Weather(*values)


def _dateFromHeader(header: fits.Header, where: str) -> Time | None:
    """Read DATE-AVG (in TIMESYS), or failing that MJD-AVG-UT1, or DATE-BEG/DATE-OBS."""
    text = _headerStr(header, "DATE-AVG", where)
    scaleText = _headerStr(header, "TIMESYS", where) or "UTC"  # FITS default time scale
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
    mjd = _headerFloat(header, "MJD-AVG-UT1", where)
    if mjd is not None and not math.isnan(mjd):
        return Time(mjd, format="mjd", scale="ut1")
    return _dateFromStart(header, where, scaleText.lower())


def _dateFromStart(header: fits.Header, where: str, scale: str) -> Time | None:
    """Mid-exposure date from the start (DATE-BEG or DATE-OBS) plus half of EXPTIME."""
    for key in ("DATE-BEG", "DATE-OBS"):
        text = _headerStr(header, key, where)
        if text is None:
            continue
        try:
            start = Time(text, format="isot", scale=scale, precision=9)
        except ValueError as error:
            raise DcrFitsError(
                f"{where}: key {key} is not an ISO-8601 date ({error})", key=key, value=text
            ) from None
        exposureTime = _headerFloat(header, "EXPTIME", where)
        if exposureTime is None or math.isnan(exposureTime):
            exposureTime = 0.0
        warnings.warn(
            f"{where}: DATE-AVG is missing; the mid-exposure date is taken as {key} (the "
            f"start) plus half of EXPTIME ({exposureTime:g} s)",
            DcrWarning,
            stacklevel=4,
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
    _setKey(header, "FILTER", str(filterInfo.bandName), "band")
    _setKey(header, "FILT-EFF", float(filterInfo.effectiveWavelength),
            "[nm] effective wavelength of the band")
    _setKey(header, "FILT-BW", float(filterInfo.bandwidth), "[nm] bandwidth of the band")
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
    from .image import RUBIN_BANDS

    name = _headerStr(header, "FILTER", where)
    eff = _headerFloat(header, "FILT-EFF", where)
    bw = _headerFloat(header, "FILT-BW", where)
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
        stacklevel=2,
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
    for key in _CALIB_KEYS:
        value = _headerFloat(header, key, where)
        if value is None or math.isnan(value):
            continue
        if value <= 0.0:
            raise DcrFitsError(f"{where}: key {key} must be positive", key=key, value=value)
        calibration = value if key == "PHOTCALIB" else _AB_ZERO_POINT_NJY / value
        return PhotoCalib(calibration)
    return None


# --------------------------------------------------------------------------------------
# WCS and origin
# --------------------------------------------------------------------------------------


def _wcsToLocalHeader(wcs: WCS, x0: int, y0: int) -> fits.Header:
    """Return the FITS keys of ``wcs`` (parent pixels) for the local grid of origin (x0, y0)."""
    if not isinstance(wcs, WCS):
        raise DcrTypeError("exposure.wcs must be an astropy.wcs.WCS or None", wcs=type(wcs))
    if not wcs.has_celestial or wcs.naxis != 2:
        raise DcrValueError(
            "exposure.wcs must be a two-axis celestial WCS", ctype=list(wcs.wcs.ctype)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        header = wcs.to_header(relax=WCSHDO_P17 | WCSHDO_SIP)
    _setKey(header, "CRPIX1", float(wcs.wcs.crpix[0]) - x0, "Pixel coordinate of reference point")
    _setKey(header, "CRPIX2", float(wcs.wcs.crpix[1]) - y0, "Pixel coordinate of reference point")
    return header


def _originHeader(x0: int, y0: int) -> fits.Header:
    """Return LTV1/LTV2 and the alternate 'PHYSICAL' WCS that give the parent origin."""
    header = fits.Header()
    _setKey(header, "LTV1", float(-x0), "parent origin: local pixel = parent pixel + LTV1")
    _setKey(header, "LTV2", float(-y0), "parent origin: local pixel = parent pixel + LTV2")
    _setKey(header, "WCSNAMEA", "PHYSICAL", "0-based parent pixel coordinates")
    _setKey(header, "CTYPE1A", "LINEAR", "")
    _setKey(header, "CTYPE2A", "LINEAR", "")
    _setKey(header, "CRPIX1A", 1.0, "")
    _setKey(header, "CRPIX2A", 1.0, "")
    _setKey(header, "CRVAL1A", float(x0), "parent x of the first pixel")
    _setKey(header, "CRVAL2A", float(y0), "parent y of the first pixel")
    _setKey(header, "CDELT1A", 1.0, "")
    _setKey(header, "CDELT2A", 1.0, "")
    return header


def _hasOriginKeys(header: fits.Header) -> bool:
    """Return True if ``header`` gives a parent origin (LTV or the alternate WCS 'A')."""
    return any(key in header for key in ("LTV1", "LTV2", "CRVAL1A", "CRVAL2A"))


def _originFromHeader(header: fits.Header, where: str) -> tuple[int, int]:
    """Return the parent origin (x0, y0) from LTV1/LTV2, else from the 'A' linear WCS."""
    origin = []
    for axis in (1, 2):
        ltv = _headerFloat(header, f"LTV{axis}", where)
        crval = None
        cdelt = _headerFloat(header, f"CDELT{axis}A", where)
        if _headerStr(header, f"CTYPE{axis}A", where) == "LINEAR" and cdelt in (None, 1.0):
            # A unit-step linear WCS 'A' gives the parent coordinate of FITS pixel CRPIX.
            crval = _headerFloat(header, f"CRVAL{axis}A", where)
            crpix = _headerFloat(header, f"CRPIX{axis}A", where)
            crpix = 1.0 if crpix is None else crpix
            if crval is not None and not math.isnan(crval + crpix):
                crval = crval - (crpix - 1.0)
        if ltv is not None and not math.isnan(ltv):
            value, key = -ltv, f"LTV{axis}"
        elif crval is not None and not math.isnan(crval):
            value, key = crval, f"CRVAL{axis}A"
        else:
            origin.append(0)
            continue
        if not float(value).is_integer():
            raise DcrFitsError(
                f"{where}: key {key} must be a whole number of pixels (the parent origin)",
                key=key,
                value=header[key],
            )
        if crval is not None and not math.isnan(crval) and crval != value:
            raise DcrFitsError(
                f"{where}: the parent origin from LTV{axis} ({value:g}) disagrees with the "
                f"alternate WCS CRVAL{axis}A ({crval:g}); fix one of them",
                key=f"LTV{axis}",
            )
        origin.append(int(value))
    return origin[0], origin[1]


def _wcsFromHeader(header: fits.Header, x0: int, y0: int, where: str) -> WCS | None:
    """Read the celestial WCS of an image HDU and move it to parent pixel coordinates."""
    if "CTYPE1" not in header and "CTYPE2" not in header:
        return None
    local = header.copy(strip=True)
    for key in list(local.keys()):
        # Keep the pixel-shape keys out, so that the WCS does not claim the local image size
        # as the extent of the parent grid.
        if _NAXIS_KEY.match(key) or key == "NAXIS":
            del local[key]
    try:
        crpix1 = _headerFloat(header, "CRPIX1", where)
        crpix2 = _headerFloat(header, "CRPIX2", where)
        crpix1 = 0.0 if crpix1 is None else crpix1
        crpix2 = 0.0 if crpix2 is None else crpix2
        _setKey(local, "CRPIX1", crpix1 + x0)
        _setKey(local, "CRPIX2", crpix2 + y0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(local, naxis=2)
    except DcrFitsError:
        raise
    except Exception as error:  # astropy raises several kinds for a broken WCS
        raise DcrFitsError(
            f"{where}: the WCS keys cannot be read ({error}); fix or remove them",
            ctype1=header.get("CTYPE1"),
        ) from None
    if not wcs.has_celestial:
        warnings.warn(
            f"{where}: the WCS is not celestial (CTYPE {list(wcs.wcs.ctype)}); the exposure "
            f"gets no WCS",
            DcrWarning,
            stacklevel=3,
        )
        return None
    wcs.pixel_shape = None
    return wcs


def _pixelScaleArcsec(wcs: WCS) -> float:
    """Return the pixel scale (arcsec), the square root of the pixel area at CRPIX."""
    return math.sqrt(proj_plane_pixel_area(wcs.celestial)) * 3600.0


# --------------------------------------------------------------------------------------
# Mask planes
# --------------------------------------------------------------------------------------


def _maskPlanesToHeader(planes: dict[str, int]) -> fits.Header:
    """Return the ``MP_<PLANE> = bit`` keys of a mask."""
    header = fits.Header()
    for name, bit in sorted(planes.items(), key=lambda item: item[1]):
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise DcrValueError(
                "mask plane names may hold only letters, digits, '_' and '-' to be written "
                "as FITS keys; rename the plane",
                plane=name,
            )
        _setKey(header, _MASK_PREFIX + name, int(bit), "mask plane bit")
    return header


def _maskPlanesFromHeader(header: fits.Header, where: str) -> dict[str, int]:
    """Read and check the ``MP_<PLANE> = bit`` keys of a MASK HDU."""
    planes: dict[str, int] = {}
    for key, value in header.items():
        if not key.upper().startswith(_MASK_PREFIX):
            continue
        name = key[len(_MASK_PREFIX):]
        if not name:
            raise DcrFitsError(f"{where}: key {key} names no mask plane", key=key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # some writers store every number as a real
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise DcrFitsError(
                f"{where}: mask plane key {key} must be an integer bit number (0-31), "
                f"not {value!r}",
                key=key,
                value=value,
            )
        bit = int(value)
        if not 0 <= bit < 32:
            raise DcrFitsError(
                f"{where}: mask plane key {key} gives bit {bit}, outside 0-31 of an int32 mask",
                key=key,
                value=bit,
            )
        if bit in planes.values():
            other = next(n for n, b in planes.items() if b == bit)
            raise DcrFitsError(
                f"{where}: mask plane keys {_MASK_PREFIX}{other} and {key} both use bit {bit}",
                key=key,
                value=bit,
            )
        planes[name] = bit
    return planes


# --------------------------------------------------------------------------------------
# PSF
# --------------------------------------------------------------------------------------


def _psfToHdu(psf: Psf, wcs: WCS | None, filterInfo: Filter | None) -> fits.ImageHDU:
    """Return the PSF HDU: the kernel image at the effective wavelength and its keys."""
    if not isinstance(psf, Psf):
        raise DcrTypeError("exposure.psf must be a dcrmodel Psf or None", psf=type(psf))
    kernel = np.asarray(psf.computeKernelImage(), dtype=np.float64)
    hdu = fits.ImageHDU(kernel, name=_PSF_EXTNAME)
    header = hdu.header
    fwhm = psf.fwhm
    if fwhm is not None and math.isfinite(fwhm):
        if wcs is not None:
            _setKey(header, "PSF-FWHM", float(fwhm) * _pixelScaleArcsec(wcs),
                    "[arcsec] PSF FWHM at the effective wavelength")
        _setKey(header, "PSF-FWPX", float(fwhm), "[pixel] PSF FWHM at the effective wavelength")
    _setKey(header, "PSF-ALPH", float(psf.alpha), "PSF size ~ (wavelength/eff)**PSF-ALPH")
    wavelength = psf.effectiveWavelength
    if wavelength is None and filterInfo is not None:
        wavelength = filterInfo.effectiveWavelength
    if wavelength is not None:
        _setKey(header, "PSF-WAVE", float(wavelength), "[nm] wavelength of the PSF image")
    model = _PSF_MODEL_GAUSSIAN if isinstance(psf, GaussianPsf) else _PSF_MODEL_IMAGE
    _setKey(header, "PSF-MODL", model, "PSF model (GAUSSIAN: analytic, IMAGE: kernel)")
    return hdu


def _psfFromHdu(
    hdu: fits.ImageHDU, wcs: WCS | None, filterInfo: Filter | None, where: str
) -> Psf:
    """Read the PSF HDU back into a GaussianPsf (PSF-MODL = 'GAUSSIAN') or an ImagePsf."""
    header = hdu.header
    if header.get("NAXIS") != 2:
        raise DcrFitsError(f"{where}: the PSF HDU must hold a 2-d image", naxis=header.get("NAXIS"))
    alpha = _headerFloat(header, "PSF-ALPH", where)
    alpha = 0.0 if alpha is None or math.isnan(alpha) else alpha
    fwhmPixels = _headerFloat(header, "PSF-FWPX", where)
    if fwhmPixels is None or math.isnan(fwhmPixels):
        fwhmArcsec = _headerFloat(header, "PSF-FWHM", where)
        fwhmPixels = None
        if fwhmArcsec is not None and not math.isnan(fwhmArcsec) and wcs is not None:
            fwhmPixels = fwhmArcsec / _pixelScaleArcsec(wcs)
    wavelength = _headerFloat(header, "PSF-WAVE", where)
    if wavelength is None or math.isnan(wavelength):
        wavelength = None if filterInfo is None else filterInfo.effectiveWavelength
    model = _headerStr(header, "PSF-MODL", where)
    try:
        if model == _PSF_MODEL_GAUSSIAN and fwhmPixels is not None:
            return GaussianPsf(fwhmPixels, alpha=alpha, effectiveWavelength=wavelength)
        kernel = np.asarray(hdu.data, dtype=np.float64)
        return ImagePsf(kernel, alpha=alpha, effectiveWavelength=wavelength, fwhm=fwhmPixels)
    except DcrError as error:
        raise DcrFitsError(f"{where}: the PSF HDU is not a valid PSF ({error})") from None


# --------------------------------------------------------------------------------------
# Exposure <-> HDU list
# --------------------------------------------------------------------------------------


def _isManagedKey(key: str) -> bool:
    """Return True for HDU 0 keys that readExposure turns into Exposure attributes."""
    return key in VISIT_KEYS or key in _FILTER_KEYS or key in _CALIB_KEYS


def _isStructuralKey(key: str) -> bool:
    return key in _STRUCTURAL_KEYS or bool(_NAXIS_KEY.match(key))


def _primaryHeader(exposure: Exposure, extra: fits.Header | None) -> fits.Header:
    """Compose HDU 0: visit keys, band, calibration, ``extra``, then the metadata."""
    header = fits.Header()
    if exposure.visitInfo is not None:
        header.extend(visitInfoToHeader(exposure.visitInfo), unique=True)
    if exposure.filter is not None:
        header.extend(filterToHeader(exposure.filter), unique=True)
    if exposure.photoCalib is not None:
        calibration = float(exposure.photoCalib.calibrationMean)
        _setKey(header, "PHOTCALIB", calibration, "[nJy/count] photometric calibration")
    if extra is not None:
        for card in extra.cards:
            _setKey(header, card.keyword, card.value, card.comment)
    metadata = exposure.metadata
    if metadata is not None:
        for card in metadata.cards:
            key = card.keyword
            if key in ("COMMENT", "HISTORY", ""):
                header.append(card, end=True)
                continue
            if _isStructuralKey(key) or key in header:
                continue
            if _isManagedKey(key) and not (key == "FILTER" and exposure.filter is None):
                # Attributes, not stale copies in the metadata, decide these keys.
                continue
            value = card.value
            if isinstance(value, float) and not math.isfinite(value):
                _log.debug("metadata key %s is not finite; not written", key)
                continue
            header.append(_makeCard(key, value, card.comment), end=True)
    return header


def _planeHdu(
    name: str, array: np.ndarray, dtype: type, x0: int, y0: int, wcs: WCS | None
) -> fits.ImageHDU:
    """Make one of the IMAGE/MASK/VARIANCE HDUs with its WCS and origin keys."""
    data = np.ascontiguousarray(array, dtype=dtype)
    header = fits.Header()
    if wcs is not None:
        header.extend(_wcsToLocalHeader(wcs, x0, y0), unique=True)
    header.extend(_originHeader(x0, y0), unique=True)
    hdu = fits.ImageHDU(data, header=header, name=name)
    return hdu


def _exposureToHduList(exposure: Exposure, extra: fits.Header | None = None) -> fits.HDUList:
    """Lay out an exposure in the Rubin layout (validated before anything is built)."""
    if not isinstance(exposure, Exposure):
        raise DcrTypeError(
            "writeExposure needs a dcrmodel Exposure; make one with Exposure.fromArrays",
            exposure=type(exposure).__name__,
        )
    bbox = exposure.bbox
    x0, y0 = bbox.minX, bbox.minY
    image = np.asarray(exposure.image.array)
    variance = np.asarray(exposure.variance.array)
    image32 = image.astype(np.float32)
    variance32 = variance.astype(np.float32)
    for plane, original, converted in (
        ("IMAGE", image, image32), ("VARIANCE", variance, variance32)
    ):
        if not np.array_equal(np.isfinite(original), np.isfinite(converted)):
            raise DcrValueError(
                f"the {plane} plane has values beyond the float32 range of the file format; "
                f"rescale it (for example with a photometric calibration) before writing",
                plane=plane,
                maxAbs=float(np.nanmax(np.abs(original[np.isfinite(original)]))),
            )
    wcs = exposure.wcs
    hdus: list[fits.hdu.base.ExtensionHDU | fits.PrimaryHDU] = [
        fits.PrimaryHDU(header=_primaryHeader(exposure, extra))
    ]
    hdus.append(_planeHdu("IMAGE", image32, np.float32, x0, y0, wcs))
    maskHdu = _planeHdu("MASK", exposure.mask.array, np.int32, x0, y0, wcs)
    maskHdu.header.extend(_maskPlanesToHeader(exposure.mask.planes), unique=True)
    hdus.append(maskHdu)
    hdus.append(_planeHdu("VARIANCE", variance32, np.float32, x0, y0, wcs))
    if exposure.psf is not None:
        hdus.append(_psfToHdu(exposure.psf, wcs, exposure.filter))
    return fits.HDUList(hdus)


def _tempSuffix(path: Path) -> str:
    """Suffix of the temporary file: astropy picks compression from it (``.fits.gz``)."""
    suffixes = path.suffixes
    if suffixes and suffixes[-1].lower() in {".gz", ".bz2"}:
        return "".join(suffixes[-2:]) if len(suffixes) > 1 else suffixes[-1]
    return ".fits"


def _writeHduList(hduList: fits.HDUList, path: Path) -> None:
    """Write an HDU list atomically to ``path``."""
    with atomicPath(path, suffix=_tempSuffix(path)) as tmp:
        hduList.writeto(tmp, overwrite=True, output_verify="exception")


def writeExposure(exposure: Exposure, path: str | os.PathLike) -> None:
    """Write an exposure to a FITS file in the Rubin layout, atomically.

    Parameters
    ----------
    exposure : `dcrmodel.image.Exposure`
        The exposure. Its image and variance are written as float32 (a float64 image
        loses the digits beyond float32's 24-bit mantissa), its mask as int32 with one
        ``MP_<PLANE>`` key per plane. Its WCS, visit info, filter, photometric calibration,
        PSF and metadata are written when set.
    path : `str` or `os.PathLike`
        Output file. It is written to a temporary file in the same folder and renamed into
        place, so an earlier file at ``path`` survives a failed write. A ``.gz`` suffix
        gives a gzip-compressed file.

    Raises
    ------
    DcrTypeError
        If ``exposure`` is not an `Exposure` or its WCS is not an astropy WCS.
    DcrValueError
        If the image or variance has values beyond the float32 range, a mask plane name
        cannot be a FITS key, or the WCS is not a two-axis celestial WCS.
    DcrOutputError
        If ``path`` is an existing directory.

    Notes
    -----
    ``Exposure.metadata`` goes to HDU 0 after the keys that the exposure's attributes
    decide (visit keys, ``FILTER``/``FILT-EFF``/``FILT-BW``, ``PHOTCALIB``): a metadata key
    of the same name is not written, so the attributes always win. The PSF HDU holds
    ``psf.computeKernelImage()`` (float64), ``PSF-FWHM`` (arcsec; needs a WCS),
    ``PSF-ALPH``, and dcrmodel's ``PSF-FWPX`` (pixels), ``PSF-WAVE`` (nm) and ``PSF-MODL``
    (``GAUSSIAN`` or ``IMAGE``), with which `readExposure` restores the same kind of PSF.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Exposure
    >>> exposure = Exposure.fromArrays(np.ones((20, 30), np.float32), origin=(100, 200))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "visit.fits"
    >>> writeExposure(exposure, path)
    >>> readExposure(path).bbox
    Box(minX=100, minY=200, width=30, height=20)
    """
    target = Path(os.fspath(path))
    if target.is_dir():
        raise DcrOutputError(
            "the output path is a directory; give a file name ending in .fits", path=str(path)
        )
    hduList = _exposureToHduList(exposure)
    _writeHduList(hduList, target)
    _log.debug("wrote exposure %s to %s", exposure.bbox, target)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


def _openFits(path: Path) -> tuple[fits.HDUList, dict[str, int]]:
    """Open a FITS file lazily with memory mapping and index its HDUs by EXTNAME.

    Only headers are read. Returns the open HDU list and ``EXTNAME -> index`` (the first
    HDU of each name).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DcrFitsError
        If the file is not FITS, or is truncated or corrupt (a header cut short, data that
        run past the end of the file).
    """
    if not path.exists():
        raise FileNotFoundError(f"no such FITS file: {path}")
    if path.is_dir():
        raise DcrFitsError("the path is a directory, not a FITS file", path=str(path))
    indices: dict[str, int] = {}
    hduList = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyUserWarning)
        warnings.simplefilter("always", fits.verify.VerifyWarning)
        try:
            hduList = fits.open(path, memmap=True, lazy_load_hdus=True, mode="readonly")
            for index, hdu in enumerate(hduList):
                name = str(hdu.header.get("EXTNAME", "")).strip().upper()
                if name and name not in indices:
                    indices[name] = index
        except (OSError, ValueError, TypeError, IndexError, KeyError) as error:
            if hduList is not None:
                hduList.close()
            raise DcrFitsError(
                f"{path.name} is not a readable FITS file ({error}); check that it is a "
                f"complete FITS file",
                path=str(path),
            ) from None
    problems = [
        str(warning.message).splitlines()[0]
        for warning in caught
        if "truncated" in str(warning.message) or "Error validating header" in str(
            warning.message
        )
    ]
    if problems:
        where = _truncationPlace(hduList, path)
        hduList.close()
        raise DcrFitsError(
            f"{path.name} is truncated: {where}; the file was cut short, write or copy it "
            f"again",
            path=str(path),
            astropy=problems[0],
        )
    for warning in caught:
        if not issubclass(warning.category, (AstropyUserWarning, fits.verify.VerifyWarning)):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return hduList, indices


def _hduLabel(hduList: fits.HDUList, index: int) -> str:
    """Return ``'HDU <EXTNAME>'`` (or ``'HDU <index>'`` for an unnamed HDU)."""
    name = str(hduList[index].header.get("EXTNAME", "")).strip()
    return f"HDU {name}" if name else f"HDU {index}"


def _dataBytes(header: fits.Header) -> int:
    """Size in bytes of an HDU's data, without padding (FITS standard 4.0, eq. 2)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    count = 1
    for axis in range(1, naxis + 1):
        count *= int(header.get(f"NAXIS{axis}", 0))
    bitpix = abs(int(header.get("BITPIX", 8)))
    return bitpix // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + count)


def _truncationPlace(hduList: fits.HDUList, path: Path) -> str:
    """Say where a truncated file ends: in the data of a named HDU, or in a header."""
    size = path.stat().st_size
    for index in range(len(hduList)):
        info = hduList.fileinfo(index)
        missing = info["datLoc"] + _dataBytes(hduList[index].header) - size
        if missing > 0:
            return (
                f"the data of {_hduLabel(hduList, index)} end {missing} bytes past the end of "
                f"the file"
            )
    last = len(hduList) - 1
    if last < 0:
        return "the first header is cut short"
    return f"the header after {_hduLabel(hduList, last)} (or its padding) is cut short"


def _checkPlaneHdu(
    hduList: fits.HDUList, index: int, name: str, path: Path, fileSize: int | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Check one IMAGE/MASK/VARIANCE HDU; return its shape (ny, nx) and origin (x0, y0)."""
    hdu = hduList[index]
    where = f"{path.name}, HDU {name}"
    if not isinstance(hdu, (fits.ImageHDU, fits.CompImageHDU, fits.PrimaryHDU)):
        raise DcrFitsError(
            f"{where} is a {type(hdu).__name__}, not an image", hdu=name
        )
    header = hdu.header
    if isinstance(hdu, fits.CompImageHDU):
        naxis = header.get("ZNAXIS", header.get("NAXIS"))
        shape = tuple(int(header.get(f"ZNAXIS{i}", header.get(f"NAXIS{i}", 0)))
                      for i in (2, 1))
    else:
        naxis = header.get("NAXIS")
        shape = tuple(int(header.get(f"NAXIS{i}", 0)) for i in (2, 1))
    if naxis != 2:
        raise DcrFitsError(f"{where} must hold a 2-d image, not NAXIS = {naxis}", hdu=name)
    if fileSize is not None and not isinstance(hdu, fits.CompImageHDU):
        info = hduList.fileinfo(index)
        nbytes = abs(int(header["BITPIX"])) // 8 * shape[0] * shape[1]
        if info["datLoc"] + nbytes > fileSize:
            raise DcrFitsError(
                f"{where}: the file ends {info['datLoc'] + nbytes - fileSize} bytes before "
                f"the end of this HDU's data; the file is truncated",
                hdu=name,
                fileSize=fileSize,
            )
    origin = _originFromHeader(header, where)
    return (shape[0], shape[1]), origin


def _readSection(
    hduList: fits.HDUList, index: int, name: str, sy: slice, sx: slice, path: Path
) -> np.ndarray:
    """Read ``[sy, sx]`` of an image HDU through its section (only those pixels)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            data = hduList[index].section[sy, sx]
    except (OSError, ValueError, TypeError, IndexError) as error:
        raise DcrFitsError(
            f"{path.name}, HDU {name}: the pixels cannot be read ({error}); the file is "
            f"truncated or corrupt",
            hdu=name,
        ) from None
    return np.asarray(data)


def _toNative(array: np.ndarray, dtype: type) -> np.ndarray:
    """Return ``array`` as ``dtype`` in native byte order (a new array)."""
    return np.array(array, dtype=np.dtype(dtype).newbyteorder("="), copy=True)


def _imageDtype(array: np.ndarray) -> type:
    """Floating dtype for an image plane: float64 stays float64, all else float32."""
    return np.float64 if array.dtype.kind == "f" and array.dtype.itemsize == 8 else np.float32


def _planesBox(hduList: fits.HDUList, indices: dict[str, int], source: Path) -> Box:
    """Check the IMAGE, MASK and VARIANCE HDUs and return the parent box they cover."""
    missing = [name for name in _PLANE_NAMES if name not in indices]
    if missing:
        raise DcrFitsError(
            f"{source.name} has no {', '.join(missing)} HDU (EXTNAME); an exposure file "
            f"needs IMAGE, MASK and VARIANCE image HDUs",
            hdus=sorted(indices),
        )
    compressed = source.suffix.lower() in {".gz", ".bz2", ".zip"}
    fileSize = None if compressed else source.stat().st_size
    geometry = {
        name: _checkPlaneHdu(hduList, indices[name], name, source, fileSize)
        for name in _PLANE_NAMES
    }
    # A plane without any origin keys is taken to share the others' origin (the file's
    # writer put them on one HDU only); planes that give one must agree.
    withOrigin = [name for name in _PLANE_NAMES
                  if _hasOriginKeys(hduList[indices[name]].header)]
    shape = geometry["IMAGE"][0]
    originHdu = withOrigin[0] if withOrigin else "IMAGE"
    origin = geometry[originHdu][1]
    for name in _PLANE_NAMES:
        otherShape, otherOrigin = geometry[name]
        if name not in withOrigin:
            otherOrigin = origin
        if otherShape != shape:
            raise DcrFitsError(
                f"{source.name}: HDU {name} has shape {otherShape} but IMAGE has {shape} "
                f"(ny, nx); the planes of an exposure must match",
                hdu=name,
            )
        if otherOrigin != origin:
            raise DcrFitsError(
                f"{source.name}: HDU {name} has parent origin {otherOrigin} but "
                f"{originHdu} has {origin} (LTV1/LTV2); the planes of an exposure must match",
                hdu=name,
            )
    return Box(origin[0], origin[1], shape[1], shape[0])


def readExposureBBox(path: str | os.PathLike) -> Box:
    """Return the parent box of an exposure file, reading only its headers.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        A file in the Rubin layout.

    Returns
    -------
    bbox : `dcrmodel.image.Box`
        The parent pixels that the file's IMAGE, MASK and VARIANCE HDUs cover (origin from
        ``LTV1``/``LTV2``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DcrFitsError
        For the same layout problems as `readExposure` (not FITS, truncated, a plane
        missing, planes of different shapes or origins).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Exposure
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "visit.fits"
    >>> writeExposure(Exposure.fromArrays(np.zeros((20, 30)), origin=(-4, 9)), path)
    >>> readExposureBBox(path)
    Box(minX=-4, minY=9, width=30, height=20)
    """
    source = Path(os.fspath(path))
    hduList, indices = _openFits(source)
    with hduList:
        return _planesBox(hduList, indices, source)


def readExposure(path: str | os.PathLike, bbox: Box | None = None) -> Exposure:
    """Read an exposure from a FITS file in the Rubin layout.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The file. HDUs ``IMAGE``, ``MASK`` and ``VARIANCE`` are found by ``EXTNAME``
        wherever they are; an HDU ``PSF`` is read if present; other HDUs are skipped.
    bbox : `dcrmodel.image.Box`, optional
        Region to read, in PARENT pixel coordinates; it must lie inside the file's image.
        Only the pixels of this region are read from disk (astropy's section access on a
        memory-mapped file), so a small cutout of a large file is cheap. None reads the
        whole image.

    Returns
    -------
    exposure : `dcrmodel.image.Exposure`
        The image (float32, or float64 if the file has it), the mask (int32, planes from
        the ``MP_*`` keys, or the Rubin default planes if the MASK HDU has none), the
        variance, the WCS mapping PARENT 0-based pixels to ICRS, the
        visit info, the filter, the photometric calibration, the PSF and the remaining HDU 0
        keys as ``metadata``. The WCS is that of the IMAGE HDU, or of MASK or VARIANCE
        when IMAGE has none.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DcrTypeError
        If ``bbox`` is not a `Box`.
    DcrFitsError
        If the file is not FITS, is truncated, lacks an ``IMAGE``, ``MASK`` or ``VARIANCE``
        HDU, the three differ in shape or origin, a ``MP_`` key is malformed, a metadata
        value is not a number where one is needed, or ``bbox`` is not inside the image.
        The message names the HDU or key.

    Warns
    -----
    DcrWarning
        For unknown weather values (replaced by the site's default weather), a boresight
        azimuth/altitude computed because it is missing (see `visitInfoFromHeader`), a
        mask with bits set but no ``MP_*`` keys (read as the Rubin default planes), and
        for a band with no known wavelengths (the exposure gets no filter).

    Notes
    -----
    The parent origin comes from ``LTV1``/``LTV2`` (``x0 = -LTV1``), or from the alternate
    linear WCS ``A`` if those are missing, or is (0, 0). A plane HDU without any of these
    keys shares the origin of the planes that have them. The metadata holds the HDU 0 keys
    that are not turned into attributes, without the structural keys and without Rubin's
    pointers into its binary-table archive (``AR_HDU`` and integer ``*_ID`` keys), which
    would be wrong in a file that does not carry those tables.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Box, Exposure
    >>> values = np.arange(600, dtype=np.float32).reshape(20, 30)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "visit.fits"
    >>> writeExposure(Exposure.fromArrays(values, origin=(100, 200)), path)
    >>> cutout = readExposure(path, bbox=Box(110, 205, 3, 2))  # parent coordinates
    >>> cutout.image.array
    array([[160., 161., 162.],
           [190., 191., 192.]], dtype=float32)
    """
    if bbox is not None and not isinstance(bbox, Box):
        raise DcrTypeError(
            "bbox must be a dcrmodel Box in parent pixel coordinates, or None",
            bbox=bbox,
        )
    source = Path(os.fspath(path))
    hduList, indices = _openFits(source)
    with hduList:
        fileBox = _planesBox(hduList, indices, source)
        origin = fileBox.begin
        if bbox is None:
            readBox = fileBox
        else:
            if bbox.isEmpty() or not fileBox.contains(bbox):
                raise DcrFitsError(
                    f"{source.name}: the requested bbox is not inside the image (HDU IMAGE "
                    f"covers parent x {fileBox.minX}..{fileBox.maxX}, y "
                    f"{fileBox.minY}..{fileBox.maxY}); clip it with bbox.clippedTo",
                    bbox=bbox,
                    imageBox=fileBox,
                )
            readBox = bbox
        maskWhere = f"{source.name}, HDU MASK"
        planes = _maskPlanesFromHeader(hduList[indices["MASK"]].header, maskWhere)

        primary = hduList[0].header
        primaryWhere = f"{source.name}, HDU 0"
        visitInfo = visitInfoFromHeader(primary, primaryWhere)
        filterInfo = filterFromHeader(primary, primaryWhere)
        photoCalib = photoCalibFromHeader(primary, primaryWhere)
        # The WCS of the IMAGE HDU, or of the first other plane that has one.
        wcsPlane = next(
            (name for name in _PLANE_NAMES
             if any(key in hduList[indices[name]].header for key in ("CTYPE1", "CTYPE2"))),
            "IMAGE",
        )
        wcs = _wcsFromHeader(hduList[indices[wcsPlane]].header, origin[0], origin[1],
                             f"{source.name}, HDU {wcsPlane}")
        psf = None
        if _PSF_EXTNAME in indices:
            psfHdu = hduList[indices[_PSF_EXTNAME]]
            if isinstance(psfHdu, (fits.ImageHDU, fits.CompImageHDU)):
                psf = _psfFromHdu(psfHdu, wcs, filterInfo, f"{source.name}, HDU PSF")
            else:
                _log.debug("%s: HDU PSF is a %s; skipped", source.name, type(psfHdu).__name__)

        sy, sx = readBox.slices(fileBox)
        imageData = _readSection(hduList, indices["IMAGE"], "IMAGE", sy, sx, source)
        maskData = _readSection(hduList, indices["MASK"], "MASK", sy, sx, source)
        varianceData = _readSection(hduList, indices["VARIANCE"], "VARIANCE", sy, sx, source)
        if maskData.dtype.kind not in "iu":
            raise DcrFitsError(
                f"{maskWhere} must hold integers (int32), not {maskData.dtype}", hdu="MASK"
            )
        if not planes:
            # No MP_ keys at all: the bits mean what they mean in the Rubin layout.
            planes = dict(DEFAULT_MASK_PLANES)
            if np.any(maskData):
                warnings.warn(
                    f"{maskWhere} has no MP_<PLANE> keys; its bits are read as the Rubin "
                    f"default planes ({', '.join(f'{n} {b}' for n, b in planes.items())}); "
                    f"add the keys if they mean something else",
                    DcrWarning,
                    stacklevel=2,
                )
        metadata = _metadataFromHeader(
            primary, keepFilter=filterInfo is None, keepVisit=visitInfo is None
        )

    imageArray = _toNative(imageData, _imageDtype(imageData))
    varianceArray = _toNative(varianceData, _imageDtype(varianceData))
    maskArray = _toNative(maskData, np.int32)
    maskedImage = MaskedImage(
        Image(imageArray, bbox=readBox),
        Mask(maskArray, bbox=readBox, planes=planes),
        Image(varianceArray, bbox=readBox),
    )
    return Exposure(
        maskedImage,
        wcs=wcs,
        psf=psf,
        visitInfo=visitInfo,
        filter=filterInfo,
        photoCalib=photoCalib,
        metadata=metadata,
    )


def _metadataFromHeader(primary: fits.Header, keepFilter: bool, keepVisit: bool) -> fits.Header:
    """Return the HDU 0 keys that are not structure, archive pointers or attributes."""
    metadata = fits.Header()
    for card in primary.cards:
        key = card.keyword
        if _isStructuralKey(key) or key == "AR_HDU":
            continue
        if _ARCHIVE_ID_KEY.match(key) and isinstance(card.value, int) and not isinstance(
            card.value, bool
        ):
            continue
        if key in _FILTER_KEYS and not (keepFilter and key == "FILTER"):
            continue
        if key in _CALIB_KEYS or (key in VISIT_KEYS and not keepVisit):
            continue
        metadata.append(_makeCard(key, card.value, card.comment), end=True)
    return metadata


# --------------------------------------------------------------------------------------
# DcrModel persistence
# --------------------------------------------------------------------------------------

_DEFAULT_DATASET = "dcrCoadd"
_DATASET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _checkDatasetType(datasetType: Any) -> str:
    if not isinstance(datasetType, str) or not _DATASET_NAME.match(datasetType):
        raise DcrValueError(
            "datasetType must be a name of letters, digits and '_' (for example 'dcrCoadd')",
            datasetType=datasetType,
        )
    return datasetType


# Suffixes of compressed model files found when ``<datasetType>_<k>.fits`` is absent.
_COMPRESSED_SUFFIXES = (".gz", ".fz")


def _modelFileName(datasetType: str, subfilter: int) -> str:
    return f"{datasetType}_{subfilter}.fits"


def _isModelDirectory(path: Path) -> bool:
    """Return True if ``path`` holds only subfilter files of DCR models (or nothing)."""
    pattern = re.compile(r"^[A-Za-z][A-Za-z0-9_]*_\d+\.fits$")
    entries = [entry for entry in path.iterdir()]
    if not entries:
        return True
    if not all(entry.is_file() and pattern.match(entry.name) for entry in entries):
        return False
    try:
        header = fits.getheader(entries[0], 0)
    except (OSError, ValueError):
        return False
    return "DCR-NSUB" in header and "DCR-SUBF" in header


def writeDcrModel(
    model: DcrModel, path: str | os.PathLike, datasetType: str = _DEFAULT_DATASET
) -> None:
    """Write a DCR model as a directory of one exposure file per subfilter, atomically.

    Parameters
    ----------
    model : `dcrmodel.model.DcrModel`
        The model.
    path : `str` or `os.PathLike`
        Output directory. It receives ``<datasetType>_<k>.fits`` for ``k`` in
        ``0..N-1``: subfilter ``k``'s image with the model's shared mask and variance, WCS,
        PSF, filter and photometric calibration, and in HDU 0 ``DCR-SUBF`` (``k``),
        ``DCR-NSUB`` (``N``) and, when the model has a filter, ``DCR-WMIN``/``DCR-WMAX``
        (the subfilter's wavelength range, nm). The directory is built beside ``path`` and
        renamed into place; an existing model directory at ``path`` is replaced only once
        the new one is complete.
    datasetType : `str`, optional
        File name stem, ``'dcrCoadd'`` by default (the Rubin dataset name).

    Raises
    ------
    DcrTypeError
        If ``model`` is not a `DcrModel`.
    DcrOutputError
        If ``path`` is a file, or a directory that holds anything but model files.

    Notes
    -----
    A model without a mask or variance is written with an empty mask and unit variance
    (what `dcrmodel.image.MaskedImage` supplies), and is read back with them.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Filter, Image
    >>> from dcrmodel.model import DcrModel
    >>> images = [Image(np.full((4, 5), k, np.float32)) for k in range(3)]
    >>> model = DcrModel(images, filterInfo=Filter.fromBand("g"))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> writeDcrModel(model, path)
    >>> sorted(p.name for p in path.iterdir())
    ['dcrCoadd_0.fits', 'dcrCoadd_1.fits', 'dcrCoadd_2.fits']
    >>> readDcrModel(path).dcrNumSubfilters
    3
    """
    from .dcr import wavelengthGenerator
    from .model import DcrModel

    if not isinstance(model, DcrModel):
        raise DcrTypeError("writeDcrModel needs a DcrModel", model=type(model).__name__)
    datasetType = _checkDatasetType(datasetType)
    target = Path(os.fspath(path))
    if target.exists():
        if not target.is_dir():
            raise DcrOutputError(
                "the output path is a file; a DCR model is written as a directory, give a "
                "new directory name",
                path=str(target),
            )
        if not _isModelDirectory(target):
            raise DcrOutputError(
                "the output directory holds files that are not a DCR model; refusing to "
                "replace it, give an empty or new directory",
                path=str(target),
            )
    numSubfilters = model.dcrNumSubfilters
    filterInfo = model.filter
    ranges: list[tuple[float, float]] | None = None
    if filterInfo is not None:
        ranges = list(
            wavelengthGenerator(
                filterInfo.effectiveWavelength, filterInfo.bandwidth, numSubfilters
            )
        )
    hduLists = []
    for k, modelImage in enumerate(model.modelImages):
        exposure = Exposure(
            MaskedImage(modelImage, model.mask, model.variance),
            wcs=model.wcs,
            psf=model.psf,
            filter=filterInfo,
            photoCalib=model.photoCalib,
        )
        extra = fits.Header()
        _setKey(extra, "DCR-SUBF", k, "subfilter index (0 is the bluest)")
        _setKey(extra, "DCR-NSUB", numSubfilters, "number of subfilters of the model")
        if ranges is not None:
            _setKey(extra, "DCR-WMIN", ranges[k][0], "[nm] subfilter start wavelength")
            _setKey(extra, "DCR-WMAX", ranges[k][1], "[nm] subfilter end wavelength")
        hduLists.append(_exposureToHduList(exposure, extra))
    with atomicDirectory(target) as tmp:
        for k, hduList in enumerate(hduLists):
            hduList.writeto(tmp / _modelFileName(datasetType, k), output_verify="exception")
    _log.debug("wrote a %d-subfilter DCR model to %s", numSubfilters, target)


class DcrModelDataRef:
    """Data reference to a directory of DCR model files, for ``DcrModel.fromDataRef``.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        Directory written by `writeDcrModel` (one patch's model).
    datasetType : `str`, optional
        File name stem of the files whose `numSubfilters` is reported, ``'dcrCoadd'`` by
        default; `get` takes its own ``datasetType``.

    Raises
    ------
    DcrFitsError
        If ``path`` is not a directory.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Image
    >>> from dcrmodel.model import DcrModel
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> writeDcrModel(DcrModel([Image(np.zeros((4, 5))) for _ in range(3)]), path)
    >>> ref = DcrModelDataRef(path)
    >>> ref.numSubfilters
    3
    >>> ref.get("dcrCoadd", subfilter=2, numSubfilters=3).bbox
    Box(minX=0, minY=0, width=5, height=4)
    >>> DcrModel.fromDataRef(ref).dcrNumSubfilters
    3
    """

    def __init__(self, path: str | os.PathLike, datasetType: str = _DEFAULT_DATASET) -> None:
        self.path = Path(os.fspath(path))
        self.datasetType = _checkDatasetType(datasetType)
        if not self.path.is_dir():
            raise DcrFitsError(
                "a DCR model is a directory of <datasetType>_<k>.fits files; this path is "
                "not a directory",
                path=str(self.path),
            )

    def __repr__(self) -> str:
        return f"DcrModelDataRef({str(self.path)!r})"

    @property
    def numSubfilters(self) -> int:
        """Number of subfilters of the stored model (``DCR-NSUB`` of subfilter 0's file).

        Files without the key (written by other software) count as one subfilter each,
        numbered from 0 without gaps (with a warning); their ``DCR-SUBF`` is taken from the
        file name. ``DcrModel.fromDataRef`` uses it when called without ``numSubfilters``.
        """
        file = self._file(self.datasetType, 0)
        header = self._header(file)
        where = f"{file.name}, HDU 0"
        value = _headerInt(header, "DCR-NSUB", where)
        if value is None and "DCR-NSUB" not in header:
            # Files without the key (another writer): one subfilter per file, numbered
            # from 0 without gaps.
            value = self._countFiles(self.datasetType)
            warnings.warn(
                f"{where}: key DCR-NSUB is missing; the model directory holds {value} "
                f"subfilter files {self.datasetType}_0..{value - 1}, so it has {value} "
                f"subfilters",
                DcrWarning,
                stacklevel=2,
            )
        if value is None or value < 1:
            raise DcrFitsError(
                f"{where}: key DCR-NSUB (number of subfilters) is unknown or below 1",
                key="DCR-NSUB",
                value=header.get("DCR-NSUB"),
            )
        return value

    def _countFiles(self, datasetType: str) -> int:
        """Count the subfilter files ``<datasetType>_0``, ``_1``, ... present without a gap."""
        count = 0
        while True:
            try:
                self._file(datasetType, count)
            except DcrFitsError:
                return count
            count += 1

    def _file(self, datasetType: str, subfilter: int) -> Path:
        file = self.path / _modelFileName(datasetType, subfilter)
        if not file.is_file():
            # Compressed copies (gzip, or fpack's tile compression) of the same layout.
            for suffix in _COMPRESSED_SUFFIXES:
                compressed = file.with_name(file.name + suffix)
                if compressed.is_file():
                    return compressed
            if file.with_suffix(".fz").is_file():
                return file.with_suffix(".fz")
            raise DcrFitsError(
                f"no file {file.name} for subfilter {subfilter} in the model directory",
                path=str(self.path),
                files=sorted(entry.name for entry in self.path.iterdir())[:20],
            )
        return file

    @staticmethod
    def _header(file: Path) -> fits.Header:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyUserWarning)
                return fits.getheader(file, 0)
        except (OSError, ValueError, TypeError, IndexError) as error:
            raise DcrFitsError(
                f"{file.name} is not a readable FITS file ({error})", path=str(file)
            ) from None

    def get(
        self,
        datasetType: str | None = None,
        subfilter: int | None = None,
        numSubfilters: int | None = None,
        bbox: Box | None = None,
        **kwargs: Any,
    ) -> Exposure:
        """Read subfilter ``subfilter`` of the model as an Exposure.

        Parameters
        ----------
        datasetType : `str`, optional
            File name stem; None means the reference's own ``datasetType``.
        subfilter : `int`
            Subfilter index, 0 (bluest) to ``numSubfilters - 1``.
        numSubfilters : `int`, optional
            Expected number of subfilters, checked against ``DCR-NSUB``.
        bbox : `dcrmodel.image.Box`, optional
            Region to read, in parent pixel coordinates (see `readExposure`).
        **kwargs
            Further data-id keys (``tract``, ``patch``, ...) are accepted for
            compatibility with butler data references and ignored: a directory holds one
            patch.

        Returns
        -------
        exposure : `dcrmodel.image.Exposure`
            The subfilter image with the model's mask, variance, WCS, PSF, filter and
            photometric calibration. Without ``FILT-EFF``/``FILT-BW``, the filter's
            wavelengths come from the file's ``DCR-WMIN``/``DCR-WMAX`` (the band of which
            they are subfilter ``DCR-SUBF`` of ``DCR-NSUB``) rather than from the built-in
            table of its ``FILTER`` name, which need not be the model's band.

        Raises
        ------
        DcrValueError
            If ``subfilter`` or ``numSubfilters`` is not a valid integer.
        DcrFitsError
            If the file is missing or its ``DCR-SUBF``/``DCR-NSUB`` disagree with the
            request, or the file is unreadable (see `readExposure`).
        """
        datasetType = self.datasetType if datasetType is None else _checkDatasetType(datasetType)
        if isinstance(subfilter, bool) or not isinstance(subfilter, numbers.Integral):
            raise DcrValueError(
                "get needs the subfilter index as an integer, subfilter=k", subfilter=subfilter
            )
        subfilter = int(subfilter)
        if numSubfilters is not None:
            if isinstance(numSubfilters, bool) or not isinstance(numSubfilters, numbers.Integral):
                raise DcrValueError(
                    "numSubfilters must be an integer", numSubfilters=numSubfilters
                )
            numSubfilters = int(numSubfilters)
            if not 0 <= subfilter < numSubfilters:
                raise DcrValueError(
                    f"subfilter must be in 0..{numSubfilters - 1}",
                    subfilter=subfilter,
                    numSubfilters=numSubfilters,
                )
        elif subfilter < 0:
            raise DcrValueError("subfilter must be 0 or more", subfilter=subfilter)
        if kwargs:
            _log.debug("DcrModelDataRef.get ignores data-id keys %s", sorted(kwargs))
        file = self._file(datasetType, subfilter)
        header = self._header(file)
        where = f"{file.name}, HDU 0"
        storedIndex = _headerInt(header, "DCR-SUBF", where)
        storedCount = _headerInt(header, "DCR-NSUB", where)
        if storedIndex is None and "DCR-SUBF" not in header:
            storedIndex = subfilter  # the file name says which subfilter it holds
        if storedCount is None and "DCR-NSUB" not in header:
            storedCount = (
                numSubfilters if numSubfilters is not None else self._countFiles(datasetType)
            )
        if storedIndex is None or storedCount is None:
            raise DcrFitsError(
                f"{where}: key {'DCR-SUBF' if storedIndex is None else 'DCR-NSUB'} is blank; "
                f"give the subfilter index and count, or leave the keys out",
                key="DCR-SUBF" if storedIndex is None else "DCR-NSUB",
            )
        if storedIndex != subfilter:
            raise DcrFitsError(
                f"{where}: key DCR-SUBF = {storedIndex} but the file name says subfilter "
                f"{subfilter}; the model directory is inconsistent",
                key="DCR-SUBF",
            )
        if numSubfilters is not None and storedCount != numSubfilters:
            raise DcrFitsError(
                f"{where}: key DCR-NSUB = {storedCount}, but numSubfilters={numSubfilters} was "
                f"requested; read the model with numSubfilters={storedCount}",
                key="DCR-NSUB",
            )
        exposure = readExposure(file, bbox=bbox)
        if "FILT-EFF" not in header:
            band = self._bandFromRanges(datasetType, header, storedIndex, storedCount, where)
            if band is not None:
                exposure.filter = band
        return exposure

    def _bandFromRanges(
        self, datasetType: str, header: fits.Header, subfilter: int, numSubfilters: int,
        where: str,
    ) -> Filter | None:
        """Band of the model from subfilter 0's DCR-WMIN/DCR-WMAX, checked against this file's.

        Every subfilter gets the same band (computed from one file, so no rounding
        differences between subfilters); a file whose range is not its subfilter of that
        band belongs to another model.
        """
        first = header if subfilter == 0 else self._header(self._file(datasetType, 0))
        firstWhere = where if subfilter == 0 else f"{_modelFileName(datasetType, 0)}, HDU 0"
        band = _bandFromSubfilterRange(first, 0, numSubfilters, firstWhere)
        if band is None or subfilter == 0:
            return band
        own = _bandFromSubfilterRange(header, subfilter, numSubfilters, where)
        if own is None:
            return band
        from .dcr import wavelengthGenerator

        expected = list(
            wavelengthGenerator(band.effectiveWavelength, band.bandwidth, numSubfilters)
        )[subfilter]
        actual = (header["DCR-WMIN"], header["DCR-WMAX"])
        for key, value, wanted in zip(("DCR-WMIN", "DCR-WMAX"), actual, expected, strict=True):
            if not math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-9):
                raise DcrFitsError(
                    f"{where}: key {key} = {value} nm disagrees with subfilter {subfilter} of "
                    f"the band of {_modelFileName(datasetType, 0)} ({wanted} nm); the files do "
                    f"not belong together",
                    key=key,
                )
        return band


def _bandFromSubfilterRange(
    header: fits.Header, subfilter: int, numSubfilters: int, where: str
) -> Filter | None:
    """Return the band whose subfilter ``subfilter`` of ``numSubfilters`` is DCR-WMIN..DCR-WMAX.

    Subfilter ``k`` of ``N`` covers ``[lambdaMin + k w, lambdaMin + (k+1) w)`` with
    ``w = bandwidth / N`` (primer), so one file's range gives the whole band. A model file
    knows its own wavelengths: they override the built-in table of its FILTER name (another
    pipeline's band of the same name may differ). None without both keys.
    """
    start = _headerFloat(header, "DCR-WMIN", where)
    end = _headerFloat(header, "DCR-WMAX", where)
    if start is None or end is None or math.isnan(start) or math.isnan(end):
        return None
    width = end - start
    if not width > 0.0 or start <= 0.0:
        raise DcrFitsError(
            f"{where}: keys DCR-WMIN = {start} and DCR-WMAX = {end} are not a wavelength range "
            f"(nm, DCR-WMIN < DCR-WMAX); fix the model file",
            key="DCR-WMIN",
        )
    bandwidth = width * numSubfilters
    lambdaMin = start - width * subfilter
    name = _headerStr(header, "FILTER", where) or "unknown"
    try:
        return Filter(name, lambdaMin + bandwidth / 2.0, bandwidth)
    except DcrError as error:
        raise DcrFitsError(
            f"{where}: keys DCR-WMIN/DCR-WMAX do not give a valid band ({error})",
            key="DCR-WMIN",
        ) from None


def readDcrModel(
    path: str | os.PathLike, bbox: Box | None = None, datasetType: str = _DEFAULT_DATASET
) -> DcrModel:
    """Read a DCR model written by `writeDcrModel`.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The model directory: ``<datasetType>_<k>.fits`` for each subfilter ``k``, or
        compressed copies (``.fits.gz``, ``.fits.fz`` or ``.fz``) of them.
    bbox : `dcrmodel.image.Box`, optional
        Region to read, in parent pixel coordinates; None reads everything.
    datasetType : `str`, optional
        File name stem, ``'dcrCoadd'`` by default.

    Returns
    -------
    model : `dcrmodel.model.DcrModel`
        The model, built by ``DcrModel.fromDataRef`` over a `DcrModelDataRef`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DcrFitsError
        If a subfilter file is missing, unreadable or inconsistent (``DCR-SUBF``,
        ``DCR-NSUB``, or ``DCR-WMIN``/``DCR-WMAX`` that disagree with the filter), or the
        directory holds subfilters beyond ``DCR-NSUB``.
    """
    from .dcr import wavelengthGenerator
    from .model import DcrModel

    directory = Path(os.fspath(path))
    if not directory.exists():
        raise FileNotFoundError(f"no such DCR model directory: {directory}")
    datasetType = _checkDatasetType(datasetType)
    dataRef = DcrModelDataRef(directory, datasetType)
    numSubfilters = dataRef.numSubfilters
    pattern = re.compile(rf"^{re.escape(datasetType)}_(\d+)\.f(its(\.gz|\.fz)?|z)$")
    extra = sorted(
        entry.name
        for entry in directory.iterdir()
        if (match := pattern.match(entry.name)) and int(match.group(1)) >= numSubfilters
    )
    if extra:
        raise DcrFitsError(
            f"the model directory holds {', '.join(extra)} beyond DCR-NSUB = {numSubfilters}; "
            f"it mixes two models, rewrite it with writeDcrModel",
            path=str(directory),
        )
    model = DcrModel.fromDataRef(
        dataRef, datasetType=datasetType, numSubfilters=numSubfilters, bbox=bbox
    )
    if model.filter is not None:
        _checkSubfilterRanges(
            dataRef, datasetType, numSubfilters,
            list(wavelengthGenerator(model.filter.effectiveWavelength, model.filter.bandwidth,
                                     numSubfilters)),
        )
    return model


def _checkSubfilterRanges(
    dataRef: DcrModelDataRef,
    datasetType: str,
    numSubfilters: int,
    ranges: Iterable[tuple[float, float]],
) -> None:
    """Check DCR-WMIN/DCR-WMAX of each file against the filter's subfilter ranges."""
    for k, (start, end) in enumerate(ranges):
        file = dataRef._file(datasetType, k)
        header = dataRef._header(file)
        where = f"{file.name}, HDU 0"
        for key, expected in (("DCR-WMIN", start), ("DCR-WMAX", end)):
            value = _headerFloat(header, key, where)
            if value is None or math.isnan(value):
                continue
            if not math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9):
                raise DcrFitsError(
                    f"{where}: key {key} = {value} nm disagrees with subfilter {k} of the "
                    f"filter ({expected} nm for {numSubfilters} subfilters); the files do not "
                    f"belong together",
                    key=key,
                )
