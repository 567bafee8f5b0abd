"""Atmospheric refraction as a function of wavelength (Stone 1996).

The refraction of a star seen at true elevation ``h`` (zenith distance ``z = 90 deg - h``)
through a plane-parallel-corrected, spherically stratified atmosphere is, to order
``tan^3 z`` (Stone 1996, eq. 3 with the constants of eqs. 4-5),

    R = kappa * A * (1 - beta) * tan z - kappa * A * (beta - A / 2) * tan^3 z,

where ``A = n - 1`` is the refractivity of the air at the telescope for the wavelength
(eqs. 14-16, after Owens 1967), ``beta = 4.5908e-6 * T[K]`` is the ratio of the
atmosphere's scale height to the Earth's radius, and ``kappa`` (eq. 4) corrects for the
variation of gravity with latitude ``phi`` and height ``H`` (metres):
``kappa = 1 + 0.005302 sin^2 phi - 0.00000583 sin^2(2 phi) - 0.000000315 H``.
The ``tan^3 z`` term is subtracted: the second refraction constant is negative, as in
ERFA's ``refco`` (the model behind astropy's AltAz refraction), with which this module
agrees to about 0.1 % at 20-90 degrees of elevation.

The water-vapour partial pressure comes from the relative humidity through the dew point
(Stone eq. 18, a Magnus-type inversion) and the saturation pressure over water at the dew
point (eq. 20, in mmHg). At 0 % humidity there is no water vapour.

References
----------
R. C. Stone, 1996, "An Accurate Method for Computing Atmospheric Refraction",
PASP 108, 1051, doi:10.1086/133831.
J. C. Owens, 1967, "Optical Refractive Index of Air: Dependence on Pressure, Temperature
and Composition", Applied Optics 6, 51, doi:10.1364/AO.6.000051.
"""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle

from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from .site import Observatory, Weather, defaultWeather

__all__ = [
    "refraction",
    "differentialRefraction",
    "refractivity",
    "waterVaporPressure",
    "MIN_WAVELENGTH",
    "MAX_WAVELENGTH",
]

# Wavelength range (nm) over which Stone's refractive index formula holds (Stone 1996, §3).
MIN_WAVELENGTH = 230.2
MAX_WAVELENGTH = 2058.6

_ZERO_CELSIUS = 273.15  # K
_MMHG_TO_PA = 133.32239  # Pa per mmHg
_PA_PER_MBAR = 100.0


def _checkWavelength(wavelength: Any, name: str) -> np.ndarray:
    """Return wavelengths in nm as a float array, validated against Stone's range.

    Parameters
    ----------
    wavelength : `float`, array-like or `astropy.units.Quantity`
        Wavelength(s) in nm (a Quantity of length is converted to nm).
    name : `str`
        Argument name, for error messages.

    Returns
    -------
    wavelength : `numpy.ndarray`
        The wavelengths in nm, float64.

    Raises
    ------
    DcrTypeError
        If the values are not real numbers (or a length Quantity).
    DcrValueError
        If any wavelength is not finite or is outside [230.2, 2058.6] nm.
    """
    if isinstance(wavelength, u.Quantity):
        if not wavelength.unit.is_equivalent(u.nm):
            raise DcrTypeError(
                f"{name} has units of {wavelength.unit}; give wavelengths as floats in nm",
                **{name: wavelength},
            )
        values = np.asarray(wavelength.to_value(u.nm), dtype=np.float64)
    else:
        array = np.asarray(wavelength)
        if array.dtype == bool or not (
            np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
        ):
            raise DcrTypeError(
                f"{name} must be a real number or array of real numbers, in nm",
                **{name: wavelength},
            )
        values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise DcrValueError(f"{name} must be finite, in nm", **{name: wavelength})
    if values.size and (
        np.min(values) < MIN_WAVELENGTH or np.max(values) > MAX_WAVELENGTH
    ):
        raise DcrValueError(
            f"{name} is outside the range of Stone's refraction formula, "
            f"{MIN_WAVELENGTH}-{MAX_WAVELENGTH} nm; wavelengths are in nm (500.0 for 500 nm, "
            f"not 5e-7 m or 0.5 um)",
            **{name: wavelength},
        )
    return values


def _checkElevation(elevation: Any) -> np.ndarray:
    """Return elevations in degrees, validated to lie in (0, 90].

    Parameters
    ----------
    elevation : `astropy.coordinates.Angle` or `astropy.units.Quantity`
        Elevation(s) above the horizon.

    Returns
    -------
    elevation : `numpy.ndarray`
        Elevations in degrees, float64.

    Raises
    ------
    DcrTypeError
        If ``elevation`` is a bare number or has non-angular units.
    DcrValueError
        If any elevation is not finite or is outside (0, 90] degrees.
    """
    if not isinstance(elevation, u.Quantity):
        raise DcrTypeError(
            "elevation must have angular units; use an astropy Angle or Quantity in degrees, "
            "for example Angle(45.0, 'deg') or 45.0 * astropy.units.deg",
            elevation=elevation,
        )
    if not elevation.unit.is_equivalent(u.deg):
        raise DcrTypeError(
            f"elevation has units of {elevation.unit}, not of angle; use an astropy Angle "
            f"or Quantity in degrees",
            elevation=elevation,
        )
    degrees = np.asarray(elevation.to_value(u.deg), dtype=np.float64)
    if not np.all(np.isfinite(degrees)):
        raise DcrValueError("elevation must be finite", elevation=elevation)
    if degrees.size and (np.min(degrees) <= 0.0 or np.max(degrees) > 90.0):
        raise DcrValueError(
            "elevation must be within (0, 90] degrees above the horizon (the altitude, not "
            "the zenith distance)",
            elevation=elevation,
        )
    return degrees


def _checkSite(observatory: Any, weather: Any) -> tuple[Observatory, Weather]:
    """Validate the observatory and weather, filling in the default weather."""
    if not isinstance(observatory, Observatory):
        raise DcrTypeError(
            "observatory must be a dcrmodel Observatory, e.g. Observatory.rubin() or "
            "Observatory.fromEarthLocation(location)",
            observatory=observatory,
        )
    if weather is None:
        weather = defaultWeather(observatory.elevation)
    elif not isinstance(weather, Weather):
        raise DcrTypeError(
            "weather must be a dcrmodel Weather(airTemperature degC, airPressure Pa, "
            "humidity %) or None for the standard atmosphere",
            weather=weather,
        )
    return observatory, weather


def waterVaporPressure(weather: Weather) -> float:
    """Return the partial pressure of water vapour in the air.

    Parameters
    ----------
    weather : `Weather`
        Air temperature (degC) and relative humidity (%).

    Returns
    -------
    pressure : `float`
        Water-vapour partial pressure in Pascals; 0 at 0 % humidity.

    Notes
    -----
    The dew point ``Td`` (degC) follows from the relative humidity ``RH`` and temperature
    ``t`` (degC) by Stone (1996) eq. 18, with ``x = ln(RH / 100)``:
    ``Td = 238.3 (x (t + 238.3) + 17.2694 t) / ((t + 238.3)(17.2694 - x) - 17.2694 t)``,
    and the vapour pressure is the saturation pressure at the dew point, eq. 20:
    ``Pw[mmHg] = 4.50874 + 0.341724 Td + 0.0106778 Td^2 + 0.184889e-3 Td^3
    + 0.238294e-5 Td^4 + 0.203447e-7 Td^5``. ``x`` is minus infinity at 0 % humidity,
    where the pressure is 0 by definition.
    """
    if weather.humidity == 0.0:
        return 0.0
    temperature = weather.airTemperature
    x = np.log(weather.humidity / 100.0)
    # Stone (1996) eq. 18.
    numerator = x * (temperature + 238.3) + 17.2694 * temperature
    denominator = (temperature + 238.3) * (17.2694 - x) - 17.2694 * temperature
    dewPoint = 238.3 * numerator / denominator
    # Stone (1996) eq. 20 (mmHg), as a Horner polynomial.
    coefficients = (4.50874, 0.341724, 0.0106778, 0.184889e-3, 0.238294e-5, 0.203447e-7)
    pressureMmHg = 0.0
    for coefficient in reversed(coefficients):
        pressureMmHg = pressureMmHg * dewPoint + coefficient
    return float(pressureMmHg * _MMHG_TO_PA)


def _refractivity(wavelength: np.ndarray, weather: Weather) -> np.ndarray:
    """Return n - 1 of air for validated wavelengths (nm) and weather (no checks).

    Uses only arithmetic (no transcendental functions), so equal wavelengths give
    bit-identical results whatever the array layout.
    """
    temperature = weather.airTemperature + _ZERO_CELSIUS  # K
    waterPressure = waterVaporPressure(weather) / _PA_PER_MBAR  # mbar
    dryPressure = weather.airPressure / _PA_PER_MBAR - waterPressure  # mbar
    # Density factors of dry air (eq. 15) and water vapour (eq. 16; the last coefficient is
    # 7.75141e4 / T^3, Owens 1967 eq. 31).
    dryDensity = (dryPressure / temperature) * (
        1.0
        + dryPressure
        * (57.90e-8 - 9.3250e-4 / temperature + 0.25844 / temperature**2)
    )
    waterDensity = (waterPressure / temperature) * (
        1.0
        + waterPressure
        * (1.0 + 3.7e-4 * waterPressure)
        * (
            -2.37321e-3
            + 2.23366 / temperature
            - 710.792 / temperature**2
            + 7.75141e4 / temperature**3
        )
    )
    # Eq. 14, with the wavenumber sigma in inverse micrometres.
    sigma2 = (1.0e3 / wavelength) ** 2
    dryTerm = 2371.34 + 683939.7 / (130.0 - sigma2) + 4547.3 / (38.9 - sigma2)
    waterTerm = 6487.31 + sigma2 * (58.058 + sigma2 * (-0.71150 + sigma2 * 0.08851))
    return 1.0e-8 * (dryTerm * dryDensity + waterTerm * waterDensity)


def refractivity(wavelength: Any, weather: Weather) -> np.ndarray | float:
    """Return the refractivity ``n - 1`` of moist air (Stone 1996, eqs. 14-16).

    Parameters
    ----------
    wavelength : `float` or array-like
        Vacuum wavelength(s) in nm, within [230.2, 2058.6] nm.
    weather : `Weather`
        Air temperature (degC), pressure (Pa) and relative humidity (%).

    Returns
    -------
    refractivity : `float` or `numpy.ndarray`
        ``n - 1`` (dimensionless), same shape as ``wavelength``.

    Raises
    ------
    DcrValueError
        If a wavelength is outside the formula's range.
    DcrTypeError
        If ``weather`` is not a `Weather`.
    """
    if not isinstance(weather, Weather):
        raise DcrTypeError("weather must be a dcrmodel Weather", weather=weather)
    values = _checkWavelength(wavelength, "wavelength")
    result = _refractivity(values, weather)
    return float(result) if result.ndim == 0 else result


def _kappa(observatory: Observatory) -> float:
    """Gravity correction of Stone (1996) eq. 4 for the observatory latitude and height."""
    phi = np.radians(observatory._latitude)
    return float(
        1.0
        + 0.005302 * np.sin(phi) ** 2
        - 0.00000583 * np.sin(2.0 * phi) ** 2
        - 0.000000315 * observatory.elevation
    )


def _zenithTangent(elevationDeg: np.ndarray) -> np.ndarray:
    """Return tan z for elevations in degrees (exactly 0 at 90 degrees)."""
    return np.tan(np.radians(90.0 - elevationDeg))


def _broadcastShape(name1: str, shape1: tuple, name2: str, shape2: tuple) -> tuple:
    try:
        return np.broadcast_shapes(shape1, shape2)
    except ValueError:
        raise DcrShapeError(
            f"{name1} and {name2} must be scalars or arrays that broadcast together",
            **{f"{name1}Shape": shape1, f"{name2}Shape": shape2},
        ) from None


def refraction(
    wavelength: Any,
    elevation: Angle | u.Quantity,
    observatory: Observatory,
    weather: Weather | None = None,
) -> Angle:
    """Return the atmospheric refraction at a wavelength and elevation (Stone 1996).

    Parameters
    ----------
    wavelength : `float` or array-like
        Vacuum wavelength(s) in nm, within [230.2, 2058.6] nm.
    elevation : `astropy.coordinates.Angle` or `astropy.units.Quantity`
        True (unrefracted) elevation(s) above the horizon, in (0, 90] degrees. Bare
        numbers are rejected. Broadcast against ``wavelength``.
    observatory : `Observatory`
        Telescope position (latitude and height enter the gravity correction).
    weather : `Weather`, optional
        Air temperature (degC), pressure (Pa) and relative humidity (%) at the telescope;
        None uses `defaultWeather` at the observatory's elevation.

    Returns
    -------
    refraction : `astropy.coordinates.Angle`
        Amount by which the apparent position is raised toward the zenith (positive), in
        arcseconds, with the broadcast shape of ``wavelength`` and ``elevation``. Zero at
        the zenith.

    Raises
    ------
    DcrTypeError
        If ``elevation`` is a bare number or not an angle, or ``observatory``/``weather``
        have the wrong type.
    DcrValueError
        If a wavelength is outside [230.2, 2058.6] nm or an elevation outside (0, 90] deg.
    DcrShapeError
        If ``wavelength`` and ``elevation`` do not broadcast together.

    Notes
    -----
    ``R = kappa A (1 - beta) tan z - kappa A (beta - A/2) tan^3 z`` (see the module
    docstring). The expansion in ``tan z`` is accurate to about 0.1 % down to roughly
    15-20 degrees of elevation and degrades toward the horizon.

    References
    ----------
    R. C. Stone, 1996, PASP 108, 1051, doi:10.1086/133831.

    Examples
    --------
    >>> import astropy.units as u
    >>> from dcrmodel.physics.site import Observatory, Weather
    >>> r = refraction(480.0, 30 * u.deg, Observatory.rubin(), Weather(20.0, 73892.0, 10.0))
    >>> print(f"{r.arcsec:.3f}")
    71.215
    """
    values = _checkWavelength(wavelength, "wavelength")
    elevationDeg = _checkElevation(elevation)
    observatory, weather = _checkSite(observatory, weather)
    _broadcastShape("wavelength", values.shape, "elevation", elevationDeg.shape)

    a = _refractivity(values, weather)
    beta = 4.5908e-6 * (weather.airTemperature + _ZERO_CELSIUS)
    kappa = _kappa(observatory)
    tanZ = _zenithTangent(elevationDeg)
    radians = kappa * a * (1.0 - beta) * tanZ - kappa * a * (beta - a / 2.0) * tanZ**3
    return Angle(np.degrees(radians) * 3600.0, u.arcsec)


def differentialRefraction(
    wavelength: Any,
    wavelengthRef: Any,
    elevation: Angle | u.Quantity,
    observatory: Observatory,
    weather: Weather | None = None,
) -> Angle:
    """Return the refraction at ``wavelength`` minus that at ``wavelengthRef``.

    Parameters
    ----------
    wavelength : `float` or array-like
        Vacuum wavelength(s) in nm, within [230.2, 2058.6] nm.
    wavelengthRef : `float` or array-like
        Reference wavelength(s) in nm (usually the band's effective wavelength), same range.
    elevation : `astropy.coordinates.Angle` or `astropy.units.Quantity`
        True elevation(s) above the horizon, in (0, 90] degrees.
    observatory : `Observatory`
        Telescope position.
    weather : `Weather`, optional
        Weather at the telescope; None uses `defaultWeather` at the observatory's elevation.

    Returns
    -------
    differentialRefraction : `astropy.coordinates.Angle`
        ``refraction(wavelength) - refraction(wavelengthRef)`` in arcseconds, with the
        broadcast shape of the three array arguments. Positive for a wavelength bluer than
        the reference: it is displaced further toward the zenith. Exactly zero where the two
        wavelengths are equal.

    Raises
    ------
    DcrTypeError
        As `refraction`.
    DcrValueError
        As `refraction`, for either wavelength.
    DcrShapeError
        If the array arguments do not broadcast together.

    Examples
    --------
    >>> import astropy.units as u
    >>> from dcrmodel.physics.site import Observatory
    >>> dr = differentialRefraction(400.0, 475.0, 45 * u.deg, Observatory.rubin())
    >>> bool(dr.arcsec > 0)
    True
    """
    values = _checkWavelength(wavelength, "wavelength")
    valuesRef = _checkWavelength(wavelengthRef, "wavelengthRef")
    elevationDeg = _checkElevation(elevation)
    observatory, weather = _checkSite(observatory, weather)
    shape = _broadcastShape("wavelength", values.shape, "wavelengthRef", valuesRef.shape)
    _broadcastShape("wavelength", shape, "elevation", elevationDeg.shape)

    a = _refractivity(values, weather)
    aRef = _refractivity(valuesRef, weather)
    beta = 4.5908e-6 * (weather.airTemperature + _ZERO_CELSIUS)
    kappa = _kappa(observatory)
    tanZ = _zenithTangent(elevationDeg)
    # Written as a difference of refractivities so that equal wavelengths give exactly 0:
    # A(beta - A/2) - A0(beta - A0/2) = (A - A0)(beta - (A + A0)/2).
    deltaA = a - aRef
    radians = kappa * deltaA * (
        (1.0 - beta) * tanZ - (beta - (a + aRef) / 2.0) * tanZ**3
    )
    return Angle(np.degrees(radians) * 3600.0, u.arcsec)
