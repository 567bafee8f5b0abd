"""What is known about one visit: pointing, time, site, weather (`VisitInfo`).

`VisitInfo` carries the visit metadata that DCR depends on, with the field names of the Rubin
pipelines' ``lsst.afw.image.VisitInfo``: boresight ICRS and horizontal coordinates, airmass,
rotator angle and type, observatory, weather, Earth rotation angle, date, exposure time and
identifier. The parallactic angle and hour angle are derived from them.

Users without Rubin files build one from astropy objects with `VisitInfo.fromAstropy`, which
computes the horizontal coordinates (without refraction) and the Earth rotation angle with
astropy, using its bundled Earth-orientation tables (`offlineIers`): nothing is downloaded.

`Observatory`, `Weather`, `defaultWeather` and `offlineIers` live in `dcrmodel.physics.site`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, Angle, EarthLocation, SkyCoord
from astropy.time import Time

from ..errors import DcrMetadataError, DcrShapeError, DcrTypeError, DcrValueError
from .site import Observatory, Weather, _toAngle, offlineIers

__all__ = [
    "VisitInfo",
    "ROT_TYPES",
]

#: Rotator angle conventions, as in the Rubin pipelines' ``RotType``: UNKNOWN; SKY (position
#: angle of the focal-plane +y axis on the sky, East of North); HORIZON (angle from the
#: direction of increasing altitude); MOUNT (angle of the rotator itself).
ROT_TYPES = ("UNKNOWN", "SKY", "HORIZON", "MOUNT")

# Airmass values a header may carry: sec z is never below 1, but some airmass formulas
# (Kasten & Young 1989, for one) dip a few 1e-4 below 1 at the zenith.
_MIN_AIRMASS = 0.99

_ZERO_ANGLE = Angle(0.0, u.deg)


def _optionalAngle(value: Any, name: str) -> float | None:
    """Return an angle in degrees, or None; bare numbers are rejected."""
    if value is None:
        return None
    angle = _toAngle(value, name)
    if angle.ndim != 0:
        raise DcrShapeError(f"{name} must be a single angle", **{name: value})
    degrees = float(angle.deg)
    if not math.isfinite(degrees):
        raise DcrValueError(f"{name} must be finite", **{name: value})
    return degrees


def _checkReal(value: Any, name: str, unitName: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (Real, np.integer, np.floating)):
        raise DcrTypeError(f"{name} must be a real number ({unitName})", **{name: value})
    number = float(value)
    if not math.isfinite(number):
        raise DcrValueError(f"{name} must be finite ({unitName})", **{name: value})
    return number


def _checkRaDec(boresightRaDec: Any) -> tuple[float, float] | None:
    """Return the boresight ``(ra, dec)`` in ICRS degrees, or None."""
    if boresightRaDec is None:
        return None
    if not isinstance(boresightRaDec, SkyCoord):
        raise DcrTypeError(
            "boresightRaDec must be an astropy SkyCoord, e.g. "
            "SkyCoord(ra * u.deg, dec * u.deg, frame='icrs')",
            boresightRaDec=boresightRaDec,
        )
    if not boresightRaDec.isscalar:
        raise DcrShapeError(
            "boresightRaDec must be a single position", boresightRaDec=boresightRaDec
        )
    if boresightRaDec.frame.name == "icrs":
        icrs = boresightRaDec
    else:
        # Frames of date (GCRS, CIRS, AltAz...) need Earth-orientation data.
        with offlineIers():
            icrs = boresightRaDec.icrs
    raDec = (float(icrs.ra.deg), float(icrs.dec.deg))
    if not (math.isfinite(raDec[0]) and math.isfinite(raDec[1])):
        raise DcrValueError("boresightRaDec must be finite", boresightRaDec=boresightRaDec)
    return raDec


def _checkAzAlt(boresightAzAlt: Any) -> tuple[float, float] | None:
    """Return the boresight ``(azimuth in [0, 360), altitude)`` in degrees, or None."""
    if boresightAzAlt is None:
        return None
    if isinstance(boresightAzAlt, (str, u.Quantity)) or len(boresightAzAlt) != 2:
        raise DcrTypeError(
            "boresightAzAlt must be a pair (azimuth, altitude) of astropy Angles",
            boresightAzAlt=boresightAzAlt,
        )
    az = _optionalAngle(boresightAzAlt[0], "boresight azimuth")
    alt = _optionalAngle(boresightAzAlt[1], "boresight altitude")
    if az is None or alt is None:
        raise DcrTypeError(
            "boresightAzAlt needs both angles (azimuth, altitude); pass None for an "
            "unknown pointing",
            boresightAzAlt=boresightAzAlt,
        )
    if abs(alt) > 90.0:
        raise DcrValueError(
            "boresight altitude must be within [-90, 90] degrees",
            boresightAzAlt=boresightAzAlt,
        )
    return (float(Angle(az, u.deg).wrap_at(360 * u.deg).deg), alt)


def _checkAirmass(boresightAirmass: Any) -> float | None:
    """Return the boresight airmass (dimensionless), or None."""
    if boresightAirmass is None:
        return None
    airmass = _checkReal(boresightAirmass, "boresightAirmass", "dimensionless")
    if airmass < _MIN_AIRMASS:
        raise DcrValueError(
            "boresightAirmass must be at least 1 (it is 1 at the zenith)",
            boresightAirmass=boresightAirmass,
        )
    return airmass


def _checkRotType(rotType: Any) -> str:
    """Return the rotator angle convention in upper case, one of `ROT_TYPES`."""
    if not isinstance(rotType, str):
        raise DcrTypeError(
            f"rotType must be one of {', '.join(ROT_TYPES)}", rotType=rotType
        )
    rotTypeUpper = rotType.strip().upper()
    if rotTypeUpper not in ROT_TYPES:
        raise DcrValueError(
            f"unknown rotType; use one of {', '.join(ROT_TYPES)}", rotType=rotType
        )
    return rotTypeUpper


def _checkSite(observatory: Any, weather: Any) -> None:
    """Check the types of the observatory and the weather (each may be None)."""
    if observatory is not None and not isinstance(observatory, Observatory):
        raise DcrTypeError(
            "observatory must be a dcrmodel Observatory (Observatory.fromEarthLocation "
            "converts an astropy EarthLocation)",
            observatory=observatory,
        )
    if weather is not None and not isinstance(weather, Weather):
        raise DcrTypeError(
            "weather must be a dcrmodel Weather(airTemperature degC, airPressure Pa, "
            "humidity %) or None",
            weather=weather,
        )


def _checkEra(era: Any) -> float | None:
    """Return the Earth rotation angle in [0, 360) degrees, or None."""
    eraDeg = _optionalAngle(era, "era")
    if eraDeg is not None:
        eraDeg = float(Angle(eraDeg, u.deg).wrap_at(360 * u.deg).deg)
    return eraDeg


def _checkDate(date: Any) -> None:
    """Check that the date, if given, is one valid astropy `Time`."""
    if date is None:
        return
    if not isinstance(date, Time):
        raise DcrTypeError(
            "date must be an astropy Time, e.g. Time('2026-03-15T04:00:00', "
            "scale='tai')",
            date=date,
        )
    if not date.isscalar:
        raise DcrShapeError("date must be a single time", date=date)
    if not (np.isfinite(date.jd1) and np.isfinite(date.jd2)):
        raise DcrValueError("date must be a valid time", date=date)


def _checkExposureTime(exposureTime: Any) -> float | None:
    """Return the exposure time in seconds, or None."""
    if exposureTime is None:
        return None
    expTime = _checkReal(exposureTime, "exposureTime", "seconds")
    if expTime < 0.0:
        raise DcrValueError(
            "exposureTime must be non-negative, in seconds", exposureTime=exposureTime
        )
    return expTime


def _checkId(id: Any) -> int | None:
    """Return the visit identifier as an int, or None."""
    if id is None:
        return None
    if isinstance(id, bool) or not isinstance(id, (Integral, np.integer)):
        raise DcrTypeError("id must be an integer", id=id)
    return int(id)


class VisitInfo:
    """Metadata of one visit: pointing, rotator, site, weather and time.

    Every argument is keyword-only and optional (None: unknown); calculations that need a
    missing field raise `DcrMetadataError`, and derived properties return None.

    Parameters
    ----------
    boresightRaDec : `astropy.coordinates.SkyCoord`, optional
        Boresight position; any celestial frame, stored as ICRS.
    boresightAzAlt : `tuple` [`astropy.coordinates.Angle`, `astropy.coordinates.Angle`], optional
        Boresight azimuth (East of North; stored wrapped to [0, 360) deg) and altitude
        (true, unrefracted; in [-90, 90] deg). Angles or angular Quantities.
    boresightAirmass : `float`, optional
        Airmass of the boresight (dimensionless, at least 1). `fromAstropy` uses the secant
        of the zenith distance.
    boresightRotAngle : `astropy.coordinates.Angle`, optional
        Rotator angle, in the convention given by ``rotType``.
    rotType : `str`, optional
        One of ``"UNKNOWN"`` (default), ``"SKY"``, ``"HORIZON"``, ``"MOUNT"`` (see
        `ROT_TYPES`); case-insensitive.
    observatory : `Observatory`, optional
        Telescope position.
    weather : `Weather`, optional
        Air temperature (degC), pressure (Pa) and humidity (%) during the visit. None means
        unknown: the refraction functions then use `defaultWeather` for the site.
    era : `astropy.coordinates.Angle`, optional
        Earth rotation angle at the middle of the exposure (stored wrapped to [0, 360) deg).
    date : `astropy.time.Time`, optional
        Middle of the exposure (a single time).
    exposureTime : `float`, optional
        Exposure time in seconds (non-negative).
    id : `int`, optional
        Visit (or exposure) identifier.

    Raises
    ------
    DcrTypeError
        If a value has the wrong type (for example a bare number for an angle).
    DcrValueError
        If a value is out of range (altitude beyond +-90 deg, airmass below 1, negative
        exposure time, unknown rotType).

    Notes
    -----
    Instances are immutable, comparable with ``==`` (exact equality of every field),
    hashable and picklable. Use `copyWith` to change fields.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.coordinates import SkyCoord
    >>> from astropy.time import Time
    >>> visit = VisitInfo(
    ...     boresightRaDec=SkyCoord(150.0 * u.deg, -30.0 * u.deg),
    ...     observatory=Observatory.rubin(),
    ...     era=150.0 * u.deg,
    ...     date=Time("2026-03-15T04:00:00", scale="utc"),
    ... )
    >>> print(f"{visit.hourAngle.deg:.6f}")
    -70.749417
    """

    __slots__ = (
        "_raDec",
        "_azAlt",
        "_airmass",
        "_rotAngle",
        "_rotType",
        "_observatory",
        "_weather",
        "_era",
        "_date",
        "_exposureTime",
        "_id",
    )

    def __init__(
        self,
        *,
        boresightRaDec: SkyCoord | None = None,
        boresightAzAlt: tuple[Angle, Angle] | None = None,
        boresightAirmass: float | None = None,
        boresightRotAngle: Angle | None = None,
        rotType: str = "UNKNOWN",
        observatory: Observatory | None = None,
        weather: Weather | None = None,
        era: Angle | None = None,
        date: Time | None = None,
        exposureTime: float | None = None,
        id: int | None = None,
    ) -> None:
        raDec = _checkRaDec(boresightRaDec)
        azAlt = _checkAzAlt(boresightAzAlt)
        airmass = _checkAirmass(boresightAirmass)
        rotAngle = _optionalAngle(boresightRotAngle, "boresightRotAngle")
        rotTypeUpper = _checkRotType(rotType)
        _checkSite(observatory, weather)
        eraDeg = _checkEra(era)
        _checkDate(date)
        expTime = _checkExposureTime(exposureTime)
        visitId = _checkId(id)

        setter = object.__setattr__
        setter(self, "_raDec", raDec)
        setter(self, "_azAlt", azAlt)
        setter(self, "_airmass", airmass)
        setter(self, "_rotAngle", rotAngle)
        setter(self, "_rotType", rotTypeUpper)
        setter(self, "_observatory", observatory)
        setter(self, "_weather", weather)
        setter(self, "_era", eraDeg)
        setter(self, "_date", date)
        setter(self, "_exposureTime", expTime)
        setter(self, "_id", visitId)

    # ------------------------------------------------------------------ construction

    @classmethod
    def fromAstropy(
        cls,
        skyCoord: SkyCoord,
        time: Time,
        location: EarthLocation | Observatory,
        weather: Weather | None = None,
        exposureTime: float = 30.0,
        rotAngle: Angle | u.Quantity = _ZERO_ANGLE,
        rotType: str = "SKY",
        id: int = 0,
    ) -> VisitInfo:
        """Make a VisitInfo from a pointing, a time and a site.

        Parameters
        ----------
        skyCoord : `astropy.coordinates.SkyCoord`
            Boresight position (any celestial frame; stored as ICRS).
        time : `astropy.time.Time`
            Middle of the exposure (a single time, any scale).
        location : `astropy.coordinates.EarthLocation` or `Observatory`
            Telescope position.
        weather : `Weather`, optional
            Weather during the visit; None leaves it unknown (the refraction functions
            then use the standard atmosphere of the site).
        exposureTime : `float`, optional
            Exposure time in seconds.
        rotAngle : `astropy.coordinates.Angle`, optional
            Rotator angle (0 deg by default).
        rotType : `str`, optional
            Rotator angle convention (`ROT_TYPES`); ``"SKY"`` by default.
        id : `int`, optional
            Visit identifier.

        Returns
        -------
        visitInfo : `VisitInfo`
            With the boresight azimuth and altitude from astropy's AltAz frame without
            refraction (pressure 0), the airmass ``sec z`` of that altitude, and the Earth
            rotation angle at Greenwich from ``Time.earth_rotation_angle``.

        Raises
        ------
        DcrTypeError
            If an argument has the wrong type.
        DcrValueError
            If the boresight is below the horizon at ``time`` (no observation possible), or
            another value is out of range.

        Notes
        -----
        The airmass is the plane-parallel ``sec z = 1 / sin(altitude)`` of the true
        (unrefracted) altitude, as astropy's ``AltAz.secz``; it exceeds the airmass of a
        spherical atmosphere (Kasten & Young 1989) by 0.3 % at airmass 2 and 1 % at airmass
        3. DCR does not use the airmass: it uses the altitude.

        The transforms run inside `offlineIers`: astropy's bundled Earth-orientation tables
        are used and nothing is downloaded (a `DcrOfflineWarning` says so once per process).
        """
        if not isinstance(skyCoord, SkyCoord):
            raise DcrTypeError(
                "skyCoord must be an astropy SkyCoord of the boresight", skyCoord=skyCoord
            )
        if not skyCoord.isscalar:
            raise DcrShapeError("skyCoord must be a single position", skyCoord=skyCoord)
        if not isinstance(time, Time):
            raise DcrTypeError(
                "time must be an astropy Time (the middle of the exposure)", time=time
            )
        if not time.isscalar:
            raise DcrShapeError("time must be a single time", time=time)
        if isinstance(location, Observatory):
            observatory = location
        elif isinstance(location, EarthLocation):
            observatory = Observatory.fromEarthLocation(location)
        else:
            raise DcrTypeError(
                "location must be an astropy EarthLocation or a dcrmodel Observatory",
                location=location,
            )
        rotAngleDeg = _optionalAngle(rotAngle, "rotAngle")

        earthLocation = observatory.toEarthLocation()
        with offlineIers():
            icrs = skyCoord.icrs
            frame = AltAz(obstime=time, location=earthLocation, pressure=0.0 * u.hPa)
            altAz = icrs.transform_to(frame)
            era = time.earth_rotation_angle(0.0 * u.deg)
        altDeg = float(altAz.alt.deg)
        azDeg = float(altAz.az.deg)
        if altDeg <= 0.0:
            raise DcrValueError(
                "the boresight is below the horizon at this time and place; check the "
                "coordinates, the time (and its scale) and the location",
                altitude=altDeg,
                time=time.isot,
            )
        airmass = 1.0 / math.sin(math.radians(altDeg))
        return cls(
            boresightRaDec=SkyCoord(
                ra=float(icrs.ra.deg) * u.deg, dec=float(icrs.dec.deg) * u.deg, frame="icrs"
            ),
            boresightAzAlt=(Angle(azDeg, u.deg), Angle(altDeg, u.deg)),
            boresightAirmass=airmass,
            boresightRotAngle=Angle(rotAngleDeg, u.deg),
            rotType=rotType,
            observatory=observatory,
            weather=weather,
            era=Angle(float(era.deg), u.deg),
            date=time,
            exposureTime=exposureTime,
            id=id,
        )

    def copyWith(self, **changes: Any) -> VisitInfo:
        """Return a copy with some fields replaced.

        Parameters
        ----------
        **changes
            Constructor arguments (``boresightRaDec``, ``weather``, ...) to replace.

        Returns
        -------
        visitInfo : `VisitInfo`
            The new, validated VisitInfo.
        """
        arguments = self._arguments()
        unknown = set(changes) - set(arguments)
        if unknown:
            raise DcrTypeError(
                f"unknown VisitInfo field(s); known ones are {', '.join(arguments)}",
                fields=sorted(unknown),
            )
        arguments.update(changes)
        return VisitInfo(**arguments)

    def _arguments(self) -> dict[str, Any]:
        return {
            "boresightRaDec": self.boresightRaDec,
            "boresightAzAlt": self.boresightAzAlt,
            "boresightAirmass": self._airmass,
            "boresightRotAngle": self.boresightRotAngle,
            "rotType": self._rotType,
            "observatory": self._observatory,
            "weather": self._weather,
            "era": self.era,
            "date": self._date,
            "exposureTime": self._exposureTime,
            "id": self._id,
        }

    # ------------------------------------------------------------------ fields

    @property
    def boresightRaDec(self) -> SkyCoord | None:
        """Boresight ICRS position (`astropy.coordinates.SkyCoord`), or None."""
        if self._raDec is None:
            return None
        return SkyCoord(ra=self._raDec[0] * u.deg, dec=self._raDec[1] * u.deg, frame="icrs")

    @property
    def boresightAzAlt(self) -> tuple[Angle, Angle] | None:
        """Boresight (azimuth, true altitude) as `Angle` (degrees), or None."""
        if self._azAlt is None:
            return None
        return (Angle(self._azAlt[0], u.deg), Angle(self._azAlt[1], u.deg))

    @property
    def boresightAirmass(self) -> float | None:
        """Boresight airmass (`float`, dimensionless), or None."""
        return self._airmass

    @property
    def boresightRotAngle(self) -> Angle | None:
        """Rotator angle (`Angle`), in the convention of `rotType`, or None."""
        return None if self._rotAngle is None else Angle(self._rotAngle, u.deg)

    @property
    def rotType(self) -> str:
        """Rotator angle convention, one of `ROT_TYPES` (`str`)."""
        return self._rotType

    @property
    def observatory(self) -> Observatory | None:
        """Telescope position (`Observatory`), or None."""
        return self._observatory

    @property
    def weather(self) -> Weather | None:
        """Weather during the visit (`Weather`), or None when unknown."""
        return self._weather

    @property
    def era(self) -> Angle | None:
        """Earth rotation angle in [0, 360) degrees (`Angle`), or None."""
        return None if self._era is None else Angle(self._era, u.deg)

    @property
    def date(self) -> Time | None:
        """Middle of the exposure (`astropy.time.Time`), or None."""
        return self._date

    @property
    def exposureTime(self) -> float | None:
        """Exposure time in seconds (`float`), or None."""
        return self._exposureTime

    @property
    def id(self) -> int | None:
        """Visit identifier (`int`), or None."""
        return self._id

    # ------------------------------------------------------------------ derived

    @property
    def hourAngle(self) -> Angle | None:
        """Hour angle of the boresight, ``era + longitude - ra``, in [-180, 180) degrees.

        Positive when the boresight is west of the meridian. None when the ERA, the
        observatory or the boresight position is unknown.

        Notes
        -----
        The right ascension is the ICRS one, as in the Rubin pipelines; the hour angle of
        the equator of date differs from it by precession and nutation of the right
        ascension (a few tenths of a degree in the 2020s).
        """
        if self._era is None or self._observatory is None or self._raDec is None:
            return None
        hourAngle = self._era + self._observatory._longitude - self._raDec[0]
        return Angle(hourAngle, u.deg).wrap_at(180 * u.deg)

    @property
    def boresightParAngle(self) -> Angle | None:
        """Parallactic angle of the boresight, in (-180, 180] degrees (`Angle`).

        The position angle of the zenith seen from the boresight, measured from North
        through East: positive when the boresight is west of the meridian; on the meridian
        it is 0 for a target south of the zenith (declination below the latitude) and 180
        degrees for a target north of it, in either hemisphere. None when the hour angle or
        the observatory is unknown.

        Notes
        -----
        ``q = atan2(sin H, tan(phi) cos(dec) - sin(dec) cos H)`` with ``H`` the hour angle
        (`hourAngle`), ``dec`` the ICRS declination and ``phi`` the latitude (e.g. Meeus
        1998, Astronomical Algorithms, eq. 14.1). Because ``H`` and ``dec`` are ICRS values,
        the result is the parallactic angle in the ICRS frame to within the precession of the
        equator (about 0.4 degree in 2026). For the zenith direction on an image,
        ``dcrmodel.physics.dcr`` goes through the full ICRS -> AltAz transform instead.
        """
        hourAngle = self.hourAngle
        if hourAngle is None:
            return None
        h = math.radians(float(hourAngle.deg))
        dec = math.radians(self._raDec[1])
        phi = math.radians(self._observatory._latitude)
        q = math.atan2(math.sin(h), math.tan(phi) * math.cos(dec) - math.sin(dec) * math.cos(h))
        return Angle(math.degrees(q), u.deg)

    def altAzFrame(self) -> AltAz:
        """Return the astropy AltAz frame of the visit, without refraction.

        Returns
        -------
        frame : `astropy.coordinates.AltAz`
            ``obstime`` = `date`, ``location`` = the observatory, ``pressure`` = 0 (so
            astropy applies no refraction: altitudes are true altitudes). Run transforms to
            it inside `offlineIers` to avoid IERS downloads.

        Raises
        ------
        DcrMetadataError
            If the date or the observatory is unknown.
        """
        if self._date is None or self._observatory is None:
            raise DcrMetadataError(
                "the AltAz frame of a visit needs its date and observatory; set them on the "
                "VisitInfo (VisitInfo.fromAstropy fills both)",
                date=self._date,
                observatory=self._observatory,
            )
        return AltAz(
            obstime=self._date,
            location=self._observatory.toEarthLocation(),
            pressure=0.0 * u.hPa,
        )

    # ------------------------------------------------------------------ protocol

    def _key(self) -> tuple[Any, ...]:
        date = None
        if self._date is not None:
            date = (self._date.scale, float(self._date.jd1), float(self._date.jd2))
        return (
            self._raDec,
            self._azAlt,
            self._airmass,
            self._rotAngle,
            self._rotType,
            self._observatory,
            self._weather,
            self._era,
            date,
            self._exposureTime,
            self._id,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VisitInfo):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("VisitInfo",) + self._key())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("VisitInfo is immutable; use copyWith() to change fields")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("VisitInfo is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_makeVisitInfo, (self._arguments(),))

    def __repr__(self) -> str:
        parts = []
        if self._id is not None:
            parts.append(f"id={self._id}")
        if self._raDec is not None:
            parts.append(f"boresightRaDec=({self._raDec[0]:.6f}, {self._raDec[1]:.6f}) deg ICRS")
        if self._azAlt is not None:
            parts.append(f"boresightAzAlt=({self._azAlt[0]:.6f}, {self._azAlt[1]:.6f}) deg")
        if self._airmass is not None:
            parts.append(f"boresightAirmass={self._airmass:.6f}")
        if self._rotAngle is not None:
            parts.append(f"boresightRotAngle={self._rotAngle:.6f} deg")
        parts.append(f"rotType={self._rotType!r}")
        if self._era is not None:
            parts.append(f"era={self._era:.6f} deg")
        if self._date is not None:
            parts.append(f"date={self._date.isot} {self._date.scale.upper()}")
        if self._exposureTime is not None:
            parts.append(f"exposureTime={self._exposureTime} s")
        if self._observatory is not None:
            parts.append(repr(self._observatory))
        if self._weather is not None:
            parts.append(repr(self._weather))
        return "VisitInfo(" + ", ".join(parts) + ")"


def _makeVisitInfo(arguments: dict[str, Any]) -> VisitInfo:
    """Rebuild a `VisitInfo` from its constructor arguments (used by pickle)."""
    return VisitInfo(**arguments)
