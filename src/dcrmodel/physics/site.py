"""Where and under what sky a visit was taken: observatory position and weather.

`Observatory` holds the geodetic position of a telescope, `Weather` the air temperature,
pressure and relative humidity at the telescope during a visit, and `defaultWeather` the
standard-atmosphere conditions used when the weather was not recorded. These are the
inputs of the refraction model in `dcrmodel.physics.refraction`.

`offlineIers` is the context manager inside which every Earth-orientation dependent
calculation of dcrmodel runs (sidereal and Earth rotation angles, AltAz transforms): it
makes astropy use the Earth-orientation (IERS) tables bundled with it instead of
downloading fresh ones, so the package works on clusters and CI machines without internet;
the table astropy parses from those files is kept between processes
(`dcrmodel.physics.eopcache`).
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator
from numbers import Real
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, EarthLocation
from astropy.utils import iers

from ..errors import DcrOfflineWarning, DcrTypeError, DcrValueError
from .eopcache import loadCachedTable, saveCachedTable

__all__ = [
    "Observatory",
    "Weather",
    "defaultWeather",
    "offlineIers",
    "RUBIN_LONGITUDE",
    "RUBIN_LATITUDE",
    "RUBIN_ELEVATION",
]

# Cerro Pachon, the site of the Vera C. Rubin Observatory (geodetic, WGS84; the values the
# Rubin observatory metadata use).
RUBIN_LONGITUDE = -70.749417  # degrees, positive East
RUBIN_LATITUDE = -30.244639  # degrees
RUBIN_ELEVATION = 2663.0  # metres above sea level

# Standard atmosphere used when the weather of a visit is unknown.
_SEA_LEVEL_PRESSURE = 101325.0  # Pa
_SEA_LEVEL_TEMPERATURE = 19.0  # degC, typical for observatory sites at night
_LAPSE_RATE = -6.5e-3  # degC per metre (International Standard Atmosphere troposphere)
_DEFAULT_HUMIDITY = 40.0  # percent
_GRAVITY = 9.80665  # m s^-2, standard gravity
_MOLAR_MASS_DRY_AIR = 0.0289644  # kg mol^-1
_GAS_CONSTANT = 8.314462618  # J mol^-1 K^-1 (CODATA 2018)
_ZERO_CELSIUS = 273.15  # K

# Altitudes (m) over which the standard-atmosphere default is meaningful: from below the
# Dead Sea to the top of the troposphere, where the constant lapse rate stops holding.
_MIN_DEFAULT_ALTITUDE = -500.0
_MAX_DEFAULT_ALTITUDE = 11000.0


def _toAngle(value: Any, name: str) -> Angle:
    """Convert an astropy angle or angular Quantity to an `Angle`, rejecting bare numbers.

    Parameters
    ----------
    value : `astropy.coordinates.Angle` or `astropy.units.Quantity`
        An angle with angular units (any shape).
    name : `str`
        Name of the argument, for the error message.

    Returns
    -------
    angle : `astropy.coordinates.Angle`
        The same angle as a plain `Angle` (not a `Latitude`/`Longitude` subclass).

    Raises
    ------
    DcrTypeError
        If ``value`` is not a Quantity with angular units.
    """
    if not isinstance(value, u.Quantity):
        raise DcrTypeError(
            f"{name} must have angular units; use an astropy Angle or Quantity in degrees, "
            f"for example Angle(30.0, 'deg') or 30.0 * astropy.units.deg",
            **{name: value},
        )
    if not value.unit.is_equivalent(u.deg):
        raise DcrTypeError(
            f"{name} has units of {value.unit}, not of angle; use an astropy Angle or Quantity "
            f"in degrees",
            **{name: value},
        )
    return Angle(value.to_value(u.deg), u.deg)


def _toFloat(value: Any, name: str, unit: u.UnitBase, unitName: str) -> float:
    """Convert a plain number, or a Quantity convertible to ``unit``, to a float in ``unit``.

    Parameters
    ----------
    value : `float` or `astropy.units.Quantity`
        The value.
    name : `str`
        Name of the argument, for the error message.
    unit : `astropy.units.UnitBase`
        The unit that bare numbers are taken to be in.
    unitName : `str`
        Human-readable name of ``unit``.

    Returns
    -------
    number : `float`
        The value in ``unit``.

    Raises
    ------
    DcrTypeError
        If ``value`` is not a real number or a compatible Quantity.
    """
    if isinstance(value, u.Quantity):
        try:
            if unit == u.deg_C:
                number = value.to_value(u.deg_C, equivalencies=u.temperature())
            else:
                number = value.to_value(unit)
        except u.UnitConversionError:
            raise DcrTypeError(
                f"{name} has units of {value.unit}; give it in {unitName}", **{name: value}
            ) from None
        if np.ndim(number) != 0:
            raise DcrTypeError(f"{name} must be a single number in {unitName}", **{name: value})
        return float(number)
    if isinstance(value, bool) or not isinstance(value, (Real, np.integer, np.floating)):
        raise DcrTypeError(f"{name} must be a real number in {unitName}", **{name: value})
    return float(value)


class Observatory:
    """Geodetic position of a telescope.

    Parameters
    ----------
    longitude : `astropy.coordinates.Angle` or `astropy.units.Quantity`
        Geodetic longitude, positive East (angle; bare numbers are rejected). Stored wrapped
        to [-180, 180) degrees.
    latitude : `astropy.coordinates.Angle` or `astropy.units.Quantity`
        Geodetic latitude, in [-90, 90] degrees (angle).
    elevation : `float` or `astropy.units.Quantity`
        Height above sea level (WGS84 ellipsoid) in metres. ``elevation_m`` is accepted as
        an alias keyword.

    Raises
    ------
    DcrTypeError
        If an angle is a bare number or a value has the wrong units.
    DcrValueError
        If the latitude is outside [-90, 90] degrees or a value is not finite.

    Notes
    -----
    Instances are immutable, hashable, comparable with ``==`` and picklable.

    Examples
    --------
    >>> import astropy.units as u
    >>> obs = Observatory(-70.749417 * u.deg, -30.244639 * u.deg, 2663.0)
    >>> obs == Observatory.rubin()
    True
    """

    __slots__ = ("_longitude", "_latitude", "_elevation")

    def __init__(
        self,
        longitude: Angle | u.Quantity,
        latitude: Angle | u.Quantity,
        elevation: float | u.Quantity | None = None,
        *,
        elevation_m: float | None = None,
    ) -> None:
        if elevation is None and elevation_m is None:
            raise DcrTypeError("Observatory needs its elevation above sea level in metres")
        if elevation is not None and elevation_m is not None:
            raise DcrTypeError(
                "give the observatory elevation once, as elevation or elevation_m",
                elevation=elevation,
                elevation_m=elevation_m,
            )
        height = elevation if elevation is not None else elevation_m
        lon = _toAngle(longitude, "longitude")
        lat = _toAngle(latitude, "latitude")
        if lon.ndim != 0 or lat.ndim != 0:
            raise DcrValueError(
                "observatory longitude and latitude must be single angles",
                longitude=longitude,
                latitude=latitude,
            )
        if not (np.isfinite(lon.deg) and np.isfinite(lat.deg)):
            raise DcrValueError(
                "observatory longitude and latitude must be finite",
                longitude=longitude,
                latitude=latitude,
            )
        if abs(lat.deg) > 90.0:
            raise DcrValueError(
                "observatory latitude must be within [-90, 90] degrees", latitude=latitude
            )
        heightM = _toFloat(height, "elevation", u.m, "metres")
        if not math.isfinite(heightM):
            raise DcrValueError("observatory elevation must be finite, in metres", elevation=height)
        object.__setattr__(self, "_longitude", float(lon.wrap_at(180 * u.deg).deg))
        object.__setattr__(self, "_latitude", float(lat.deg))
        object.__setattr__(self, "_elevation", heightM)

    @classmethod
    def rubin(cls) -> Observatory:
        """Return the Vera C. Rubin Observatory on Cerro Pachon.

        Returns
        -------
        observatory : `Observatory`
            Longitude -70.749417 deg, latitude -30.244639 deg, elevation 2663 m.
        """
        return cls(RUBIN_LONGITUDE * u.deg, RUBIN_LATITUDE * u.deg, RUBIN_ELEVATION)

    @classmethod
    def fromEarthLocation(cls, location: EarthLocation) -> Observatory:
        """Make an Observatory from an astropy `EarthLocation`.

        Parameters
        ----------
        location : `astropy.coordinates.EarthLocation`
            A single location; its geodetic coordinates (WGS84) are used.

        Returns
        -------
        observatory : `Observatory`
            The same position.

        Raises
        ------
        DcrTypeError
            If ``location`` is not a scalar `EarthLocation`.
        """
        if not isinstance(location, EarthLocation) or location.ndim != 0:
            raise DcrTypeError(
                "location must be a single astropy EarthLocation", location=location
            )
        geodetic = location.to_geodetic("WGS84")
        return cls(geodetic.lon, geodetic.lat, float(geodetic.height.to_value(u.m)))

    def toEarthLocation(self) -> EarthLocation:
        """Return the position as an astropy `EarthLocation` (WGS84 geodetic).

        Returns
        -------
        location : `astropy.coordinates.EarthLocation`
            The observatory position.
        """
        return EarthLocation.from_geodetic(
            lon=self._longitude * u.deg,
            lat=self._latitude * u.deg,
            height=self._elevation * u.m,
            ellipsoid="WGS84",
        )

    @property
    def longitude(self) -> Angle:
        """Geodetic longitude, positive East, in [-180, 180) degrees (`Angle`)."""
        return Angle(self._longitude, u.deg)

    @property
    def latitude(self) -> Angle:
        """Geodetic latitude (`Angle`)."""
        return Angle(self._latitude, u.deg)

    @property
    def elevation(self) -> float:
        """Height above sea level in metres (`float`)."""
        return self._elevation

    def _key(self) -> tuple[float, float, float]:
        return (self._longitude, self._latitude, self._elevation)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Observatory):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("Observatory",) + self._key())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Observatory is immutable; make a new one instead")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Observatory is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_makeObservatory, self._key())

    def __repr__(self) -> str:
        return (
            f"Observatory(longitude={self._longitude!r} deg, latitude={self._latitude!r} deg, "
            f"elevation={self._elevation!r} m)"
        )


def _makeObservatory(longitude: float, latitude: float, elevation: float) -> Observatory:
    """Rebuild an `Observatory` from degrees and metres (used by pickle)."""
    return Observatory(longitude * u.deg, latitude * u.deg, elevation)


class Weather:
    """Weather at the telescope during a visit.

    Parameters
    ----------
    airTemperature : `float` or `astropy.units.Quantity`
        Air temperature in degrees Celsius; must be finite and above -273.15 degC.
    airPressure : `float` or `astropy.units.Quantity`
        Air pressure in Pascals; must be finite and positive.
    humidity : `float` or `astropy.units.Quantity`
        Relative humidity in percent, in [0, 100].

    Raises
    ------
    DcrTypeError
        If a value is not a real number (or a Quantity of the right kind).
    DcrValueError
        If a value is not finite or is outside its physical range. Unknown weather is not
        represented by NaN: pass ``weather=None`` to the refraction functions, or use
        `defaultWeather`.

    Notes
    -----
    Instances are immutable, hashable, comparable with ``==`` and picklable.

    Examples
    --------
    >>> Weather(20.0, 73892.0, 10.0).airPressure
    73892.0
    """

    __slots__ = ("_airTemperature", "_airPressure", "_humidity")

    def __init__(
        self,
        airTemperature: float | u.Quantity,
        airPressure: float | u.Quantity,
        humidity: float | u.Quantity,
    ) -> None:
        temperature = _toFloat(airTemperature, "airTemperature", u.deg_C, "degrees Celsius")
        pressure = _toFloat(airPressure, "airPressure", u.Pa, "Pascals")
        relHumidity = _toFloat(humidity, "humidity", u.percent, "percent")
        if not math.isfinite(temperature) or temperature <= -_ZERO_CELSIUS:
            raise DcrValueError(
                "air temperature must be finite and above absolute zero, in degrees Celsius; "
                "if it is unknown pass weather=None to use the standard atmosphere",
                airTemperature=airTemperature,
            )
        if not math.isfinite(pressure) or pressure <= 0.0:
            raise DcrValueError(
                "air pressure must be finite and positive, in Pascals (sea level is about "
                "101325 Pa); if it is unknown pass weather=None to use the standard atmosphere",
                airPressure=airPressure,
            )
        if not math.isfinite(relHumidity) or not 0.0 <= relHumidity <= 100.0:
            raise DcrValueError(
                "relative humidity must be within [0, 100] percent; if it is unknown pass "
                "weather=None to use the standard atmosphere",
                humidity=humidity,
            )
        object.__setattr__(self, "_airTemperature", temperature)
        object.__setattr__(self, "_airPressure", pressure)
        object.__setattr__(self, "_humidity", relHumidity)

    @property
    def airTemperature(self) -> float:
        """Air temperature in degrees Celsius (`float`)."""
        return self._airTemperature

    @property
    def airPressure(self) -> float:
        """Air pressure in Pascals (`float`)."""
        return self._airPressure

    @property
    def humidity(self) -> float:
        """Relative humidity in percent (`float`)."""
        return self._humidity

    def _key(self) -> tuple[float, float, float]:
        return (self._airTemperature, self._airPressure, self._humidity)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Weather):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("Weather",) + self._key())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Weather is immutable; make a new one instead")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Weather is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Weather, self._key())

    def __repr__(self) -> str:
        return (
            f"Weather(airTemperature={self._airTemperature!r} degC, "
            f"airPressure={self._airPressure!r} Pa, humidity={self._humidity!r} %)"
        )


def defaultWeather(altitude: float | u.Quantity) -> Weather:
    """Return the standard-atmosphere weather at a given altitude.

    Parameters
    ----------
    altitude : `float` or `astropy.units.Quantity`
        Altitude above sea level in metres, within [-500, 11000] m (the troposphere).

    Returns
    -------
    weather : `Weather`
        Temperature ``T = 19 degC - 6.5 degC/km * altitude``, pressure from the barometric
        formula at that temperature, and 40 % relative humidity.

    Raises
    ------
    DcrTypeError
        If ``altitude`` is not a number of metres.
    DcrValueError
        If ``altitude`` is not finite or is outside [-500, 11000] m.

    Notes
    -----
    The pressure is ``P = 101325 Pa * exp(-g M h / (R T))`` with ``g = 9.80665 m s^-2``,
    ``M = 0.0289644 kg/mol`` (dry air), ``R = 8.314462618 J/(mol K)`` and ``T`` the
    temperature in kelvin at altitude ``h``: an isothermal atmosphere at the site's
    temperature, the convention of the Rubin pipelines' default weather. At Cerro Pachon
    (2663 m) this gives 1.69 degC and 72 771 Pa, close to the site's typical night-time
    conditions and 1 % below the U.S. Standard Atmosphere (1976) pressure at that height.

    Examples
    --------
    >>> round(defaultWeather(0.0).airPressure)
    101325
    """
    height = _toFloat(altitude, "altitude", u.m, "metres")
    if not math.isfinite(height) or not (
        _MIN_DEFAULT_ALTITUDE <= height <= _MAX_DEFAULT_ALTITUDE
    ):
        raise DcrValueError(
            f"the standard-atmosphere default only holds for altitudes within "
            f"[{_MIN_DEFAULT_ALTITUDE:g}, {_MAX_DEFAULT_ALTITUDE:g}] m; give the measured "
            f"Weather instead",
            altitude=altitude,
        )
    temperature = _SEA_LEVEL_TEMPERATURE + _LAPSE_RATE * height
    temperatureK = temperature + _ZERO_CELSIUS
    pressure = _SEA_LEVEL_PRESSURE * math.exp(
        -_GRAVITY * _MOLAR_MASS_DRY_AIR * height / (_GAS_CONSTANT * temperatureK)
    )
    return Weather(temperature, pressure, _DEFAULT_HUMIDITY)


_offlineWarned = False
_offlineLock = threading.Lock()

_OFFLINE_MESSAGE = (
    "dcrmodel does not download Earth-orientation (IERS) tables: astropy's bundled tables "
    "are used, so UT1-UTC and polar motion after their last entry are predictions or "
    "defaults (arcsecond-level effect on AltAz, negligible for DCR). To use a fresh table, "
    "download it yourself (astropy.utils.iers) before calling dcrmodel."
)


def _warnOfflineOnce() -> None:
    """Emit `DcrOfflineWarning` the first time it is called in this process."""
    global _offlineWarned
    with _offlineLock:
        if _offlineWarned:
            return
        _offlineWarned = True
    warnings.warn(_OFFLINE_MESSAGE, DcrOfflineWarning, stacklevel=4)


def _resetOfflineWarning() -> None:
    """Let the next `offlineIers` call warn again (for tests)."""
    global _offlineWarned
    with _offlineLock:
        _offlineWarned = False


_OFFLINE_SETTINGS = (
    ("auto_download", False),
    ("auto_max_age", None),
    ("iers_degraded_accuracy", "warn"),
)
_offlineDepth = 0
_offlineSaved: dict[str, Any] = {}
#: Whether astropy reads its bundled Earth-orientation files in this offline span (no
#: usable cache, `dcrmodel.physics.eopcache`), so that the table is cached at its end.
_tableToCache = False


def _enterOffline() -> None:
    global _offlineDepth, _tableToCache
    with _offlineLock:
        if _offlineDepth == 0:
            for name, value in _OFFLINE_SETTINGS:
                _offlineSaved[name] = getattr(iers.conf, name)
                setattr(iers.conf, name, value)
            _tableToCache = _tableToCache or loadCachedTable()
        _offlineDepth += 1


def _exitOffline() -> None:
    global _offlineDepth, _tableToCache
    with _offlineLock:
        _offlineDepth -= 1
        if _offlineDepth == 0:
            if _tableToCache and iers.IERS_Auto.iers_table is not None:
                saveCachedTable()
                _tableToCache = False
            for name, _ in _OFFLINE_SETTINGS:
                setattr(iers.conf, name, _offlineSaved.pop(name))


@contextlib.contextmanager
def offlineIers() -> Iterator[None]:
    """Run Earth-orientation dependent astropy code without downloading IERS tables.

    Inside the context astropy's ``iers.conf.auto_download`` is False, ``auto_max_age`` is
    None (old predictions are accepted instead of raising) and ``iers_degraded_accuracy``
    is ``'warn'`` (times beyond the tables warn instead of raising). The previous settings
    are restored when the last of any nested or concurrent (threaded) uses exits, so one
    thread leaving cannot switch downloads back on under another. The first use in a
    process emits a `DcrOfflineWarning` saying that the bundled tables are used.

    Yields
    ------
    None

    Examples
    --------
    >>> import warnings
    >>> import astropy.units as u
    >>> from astropy.time import Time
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     with offlineIers():
    ...         era = Time("2026-03-01T04:00:00", scale="utc").earth_rotation_angle(0 * u.deg)
    """
    _warnOfflineOnce()
    _enterOffline()
    try:
        yield
    finally:
        _exitOffline()
