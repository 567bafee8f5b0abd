"""The configuration of a simulated field: `SimulationConfig`, `VisitSpec` and their checks.

`SimulationConfig` holds everything that defines a simulated field (its size and pixel
scale, the band and its sampling, the visit plan or explicit `VisitSpec` visits, the
seeing, noise, sources, defects and transients), with defaults for the demo field, and
checks every value before anything is planned or rendered (`SimulationConfig.validate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.time import Time

from .._validate import asFiniteFloat, asPositiveFloat
from ..errors import DcrTypeError, DcrValueError
from ..image import Filter
from ..physics import Observatory, refraction
from .seeing import AtmosphericPsf
from .spectra import Bandpass

__all__ = ["ROLES", "VisitSpec", "SimulationConfig"]

#: Roles of visits: used to build the model (training) or held out (test).
ROLES = ("training", "test")


def asDegrees(value: Any, name: str) -> float:
    """Convert an angle given as `Angle`/`Quantity` to degrees; reject bare numbers.

    Parameters
    ----------
    value : astropy.coordinates.Angle or astropy.units.Quantity
        The angle (any angular unit).
    name : str
        The argument's name, used in the message.

    Returns
    -------
    float
        The angle in degrees.

    Raises
    ------
    DcrTypeError
        If ``value`` is a bare number or not an angle.
    """
    if isinstance(value, u.Quantity):
        try:
            return float(Angle(value).to_value(u.deg))
        except (u.UnitsError, TypeError, ValueError):
            raise DcrTypeError(
                f"{name} must be an angle (astropy Angle or Quantity in degrees)", **{name: value}
            ) from None
    raise DcrTypeError(
        f"{name} must be an astropy Angle or Quantity (for example 30 * u.deg), not a bare "
        "number whose unit is ambiguous",
        **{name: value},
    )


@dataclass(frozen=True)
class VisitSpec:
    """An explicitly requested visit.

    Parameters
    ----------
    time : astropy.time.Time
        Middle of the exposure.
    role : str, optional
        ``"training"`` or ``"test"``.
    seeing : float, optional
        Seeing FWHM at the effective wavelength, arcsec; None: drawn from the
        configuration's range.
    defects : bool, optional
        Whether the visit has mask defects; None: drawn.
    numTransients : int, optional
        Transients injected in this visit; None: the configuration's number for its role.
    """

    time: Time
    role: str = "training"
    seeing: float | None = None
    defects: bool | None = None
    numTransients: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.time, Time) or not self.time.isscalar:
            raise DcrTypeError("VisitSpec.time must be a single astropy Time", time=self.time)
        if self.role not in ROLES:
            raise DcrValueError(f"role must be one of {', '.join(ROLES)}", role=self.role)
        if self.seeing is not None:
            object.__setattr__(self, "seeing", asPositiveFloat(self.seeing, "seeing", "arcsec"))
        if self.numTransients is not None and (
            not isinstance(self.numTransients, (int, np.integer)) or self.numTransients < 0
        ):
            raise DcrValueError("numTransients must be a non-negative integer",
                                numTransients=self.numTransients)


def _angleDefault(value: float) -> Callable[[], Angle]:
    return lambda: Angle(value, u.deg)


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated field, with defaults for the demo field.

    Parameters
    ----------
    size : int or tuple of int
        Width and height of the field in pixels (one number: a square), >= 32.
    origin : tuple of int
        Parent coordinates ``(x0, y0)`` of the field's first pixel.
    pixelScale : float
        Arcsec per pixel (Rubin: 0.2).
    skyRotation : astropy.coordinates.Angle
        Rotation of the sky on the pixel grid (0: North up, East left).
    band : str, dcrmodel.image.Filter or Bandpass
        The band: a Rubin band name (a top hat from `dcrmodel.image.RUBIN_BANDS`), a
        `Filter` (top hat) or a `Bandpass` (top hat or transmission curve).
    numSubfilters : int
        Subfilters of the intended model (for the truth model and the sampling).
    samplesPerSubfilter : int
        Wavelength samples per subfilter; at least 20 samples over the band in total.
    numTraining, numTest : int
        Number of training (>= 2) and held-out test visits (generated plan).
    nights : int
        Nights over which the visits are spread (>= 1).
    date : str or astropy.time.Time
        Date (UTC) of the evening that starts the first night.
    nightHours : float
        Length of each night's window, centred on local midnight (hours, <= 24).
    fieldRa : astropy.coordinates.Angle, optional
        Right ascension of the field; None: the field crosses the meridian at the first
        local midnight.
    fieldDec : astropy.coordinates.Angle
        Declination; the default (-35 deg) passes 5 deg from the zenith at Cerro Pachon so
        that airmass spans 1.0 to beyond 2 and the parallactic angle turns widely.
    observatory : dcrmodel.physics.site.Observatory, optional
        Site (None: Rubin on Cerro Pachon).
    trainingAirmass : tuple of float
        Airmass range the training visits span, both sides of the meridian.
    testAirmass : tuple of float
        Airmass range of the held-out visits.
    visits : tuple of VisitSpec, optional
        Explicit visits; when given they replace the generated plan.
    seeing : tuple of float
        Range (arcsec) of the per-visit seeing FWHM at the effective wavelength; equal
        values give constant seeing.
    chromaticSeeing : float
        Exponent ``alpha`` of the seeing with wavelength (``-0.2`` Kolmogorov; 0: none).
    psfProfile : str
        ``"kolmogorov"``, ``"moffat"`` or ``"gaussian"``.
    moffatBeta : float
        Moffat index when ``psfProfile == "moffat"``.
    skyLevel : float
        Sky background (counts per pixel; subtracted from the images, kept in the noise).
    readNoise : float
        Read noise (counts per pixel, rms).
    exposureTime : float
        Seconds.
    calibrationMean : float
        nJy per count of the photometric calibration.
    numStars, numGalaxies : int, optional
        Number of sources; None: from ``starDensity``, ``galaxyDensity``.
    starDensity, galaxyDensity : float
        Sources per 10^4 pixels when the numbers are not given.
    starFlux, galaxyFlux : tuple of float
        Flux ranges (counts over the band per visit); fluxes follow
        ``dN/dlog F ~ F^-fluxSlope``.
    fluxSlope : float
        Slope of the flux distribution (>= 0; 0: log-uniform).
    defectFraction : float
        Fraction of visits with mask defects (bad column, cosmic rays, saturated core).
    transientsPerTestVisit : int
        Transients injected in each test visit.
    transientFlux : tuple of float
        Flux range of transients (counts).
    edgeMargin : int
        Sources are placed at least this many pixels inside the field.
    maxMemory : float
        Bytes the renderer's wavelength cube may use.
    """

    size: int | tuple[int, int] = 320
    origin: tuple[int, int] = (0, 0)
    pixelScale: float = 0.2
    skyRotation: Angle = field(default_factory=_angleDefault(0.0))
    band: Any = "g"
    numSubfilters: int = 3
    samplesPerSubfilter: int = 14
    numTraining: int = 14
    numTest: int = 4
    nights: int = 2
    date: Any = "2026-09-15"
    nightHours: float = 10.0
    fieldRa: Angle | None = None
    fieldDec: Angle = field(default_factory=_angleDefault(-35.0))
    observatory: Any = None
    trainingAirmass: tuple[float, float] = (1.0, 2.1)
    testAirmass: tuple[float, float] = (1.5, 2.0)
    visits: tuple[VisitSpec, ...] | None = None
    seeing: tuple[float, float] = (0.7, 0.7)
    chromaticSeeing: float = 0.0
    psfProfile: str = "kolmogorov"
    moffatBeta: float = 3.5
    skyLevel: float = 800.0
    readNoise: float = 5.0
    exposureTime: float = 30.0
    calibrationMean: float = 1.0
    numStars: int | None = None
    numGalaxies: int | None = None
    starDensity: float = 12.0
    galaxyDensity: float = 5.0
    starFlux: tuple[float, float] = (3.0e3, 1.0e6)
    galaxyFlux: tuple[float, float] = (5.0e3, 3.0e5)
    fluxSlope: float = 0.5
    defectFraction: float = 0.3
    transientsPerTestVisit: int = 2
    transientFlux: tuple[float, float] = (5.0e3, 2.0e4)
    edgeMargin: int = 8

    maxMemory: float = 2.0e9

    # ------------------------------------------------------------------ resolution

    def resolveSize(self) -> tuple[int, int]:
        """Return ``(width, height)`` in pixels."""
        if isinstance(self.size, (tuple, list)):
            width, height = self.size
        else:
            width = height = self.size
        return _integer(width, "size", 32), _integer(height, "size", 32)

    def resolveBand(self) -> Bandpass:
        """Return the band as a `Bandpass`."""
        if isinstance(self.band, Bandpass):
            return self.band
        if isinstance(self.band, Filter):
            return Bandpass.fromFilter(self.band)
        if isinstance(self.band, str):
            return Bandpass.fromFilter(Filter.fromBand(self.band))
        raise DcrTypeError(
            "band must be a Rubin band name, a Filter or a Bandpass", band=self.band
        )

    def resolveObservatory(self) -> Any:
        """Return the observatory (Rubin when None)."""
        if self.observatory is None:
            return Observatory.rubin()
        if not isinstance(self.observatory, Observatory):
            raise DcrTypeError("observatory must be a dcrmodel Observatory",
                               observatory=self.observatory)
        return self.observatory

    def resolveDate(self) -> Time:
        """Return the first night's evening date as a UTC `Time` at 00:00."""
        try:
            t = self.date if isinstance(self.date, Time) else Time(str(self.date), scale="utc")
        except ValueError:
            raise DcrValueError(
                "date must be a date such as '2026-09-15' or an astropy Time", date=self.date
            ) from None
        if not t.isscalar:
            raise DcrValueError("date must be a single date", date=self.date)
        return Time(t.utc.isot[:10] + "T00:00:00", scale="utc")


    # ------------------------------------------------------------------ validation

    def validate(self) -> None:
        """Check every value; raise a clear error for the first impossible one.

        Raises
        ------
        DcrValueError
            For impossible values: fewer than 2 training visits, negative seeing or fluxes,
            a band outside the refraction formula's range, and so on.
        DcrTypeError
            For values of the wrong type.
        """
        band = self._validateImaging()
        self._validateVisits()
        self._validateSeeing(band)
        self._validateDetector()
        self._validateSources()

    def _validateImaging(self) -> Bandpass:
        """Check the grid, the band and its sampling; return the band."""
        self.resolveSize()
        for i, value in enumerate(self.origin):
            _integer(value, f"origin[{i}]", None)
        asPositiveFloat(self.pixelScale, "pixelScale", "arcsec per pixel")
        asDegrees(self.skyRotation, "skyRotation")
        n = _integer(self.numSubfilters, "numSubfilters", 1)
        per = _integer(self.samplesPerSubfilter, "samplesPerSubfilter", 1)
        if n * per < 20:
            raise DcrValueError(
                "the band needs at least 20 wavelength samples for the integration; raise "
                "samplesPerSubfilter",
                numSubfilters=n,
                samplesPerSubfilter=per,
            )
        band = self.resolveBand()
        observatory = self.resolveObservatory()
        _checkBandInRefractionRange(band, observatory)
        return band

    def _validateVisits(self) -> None:
        """Check the visits: their number, the nights, the field and the airmass ranges."""
        if self.visits is None:
            training = _integer(self.numTraining, "numTraining", None)
            _integer(self.numTest, "numTest", 0)
        else:
            if not all(isinstance(v, VisitSpec) for v in self.visits):
                raise DcrTypeError("visits must be VisitSpec objects")
            training = sum(1 for v in self.visits if v.role == "training")
        if training < 2:
            raise DcrValueError(
                f"fewer than 2 training visits ({training}): a DCR model needs at least 2 "
                "(and at least as many as subfilters, on both sides of the meridian); ask "
                "for more visits",
                numTraining=training,
            )
        _integer(self.nights, "nights", 1)
        hours = asPositiveFloat(self.nightHours, "nightHours", "hours")
        if hours > 24.0:
            raise DcrValueError("nightHours must be at most 24", nightHours=hours)
        self.resolveDate()
        if self.fieldRa is not None:
            asDegrees(self.fieldRa, "fieldRa")
        dec = asDegrees(self.fieldDec, "fieldDec")
        if not -90.0 <= dec <= 90.0:
            raise DcrValueError("fieldDec must be within [-90, 90] deg", fieldDec=dec)
        for name in ("trainingAirmass", "testAirmass"):
            lo, hi = _range(getattr(self, name), name, "airmass")
            if lo < 1.0:
                raise DcrValueError(f"{name} must be >= 1 (airmass)", **{name: (lo, hi)})

    def _validateSeeing(self, band: Bandpass) -> None:
        """Check the seeing range, its chromatic exponent and the PSF profile."""
        lo, hi = _range(self.seeing, "seeing", "arcsec")
        if lo <= 0.0:
            raise DcrValueError(
                "seeing must be positive (FWHM in arcsec)", seeing=tuple(self.seeing)
            )
        alpha = asFiniteFloat(self.chromaticSeeing, "chromaticSeeing", "dimensionless")
        if not -1.0 <= alpha <= 1.0:
            raise DcrValueError("chromaticSeeing must be in [-1, 1] (-0.2 for Kolmogorov)",
                                chromaticSeeing=alpha)
        AtmosphericPsf(self.psfProfile, 1.0, band.effectiveWavelength, alpha, self.moffatBeta)

    def _validateDetector(self) -> None:
        """Check the sky level, read noise, exposure time and calibration."""
        asPositiveFloat(self.skyLevel, "skyLevel", "counts per pixel")
        asPositiveFloat(self.readNoise, "readNoise", "counts", allowZero=True)
        asPositiveFloat(self.exposureTime, "exposureTime", "s")
        asPositiveFloat(self.calibrationMean, "calibrationMean", "nJy per count")

    def _validateSources(self) -> None:
        """Check the sources, fluxes, defects, transients, margin and memory."""
        for name in ("numStars", "numGalaxies"):
            if getattr(self, name) is not None:
                _integer(getattr(self, name), name, 0)
        asPositiveFloat(self.starDensity, "starDensity", "per 10^4 pixels", allowZero=True)
        asPositiveFloat(self.galaxyDensity, "galaxyDensity", "per 10^4 pixels", allowZero=True)
        for name in ("starFlux", "galaxyFlux", "transientFlux"):
            lo, hi = _range(getattr(self, name), name, "counts")
            if lo <= 0.0:
                raise DcrValueError(
                    f"{name} must be positive (counts); negative fluxes are not light",
                    **{name: tuple(getattr(self, name))},
                )
        asPositiveFloat(self.fluxSlope, "fluxSlope", "dimensionless", allowZero=True)
        fraction = asFiniteFloat(self.defectFraction, "defectFraction", "fraction")
        if not 0.0 <= fraction <= 1.0:
            raise DcrValueError("defectFraction must be in [0, 1]", defectFraction=fraction)
        _integer(self.transientsPerTestVisit, "transientsPerTestVisit", 0)
        width, height = self.resolveSize()
        margin = _integer(self.edgeMargin, "edgeMargin", 0)
        if 2 * margin >= min(width, height) - 8:
            raise DcrValueError("edgeMargin leaves no room for sources", edgeMargin=margin)
        asPositiveFloat(self.maxMemory, "maxMemory", "bytes")

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready description (angles in degrees, times in ISO UTC)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "band":
                value = self.resolveBand().describe()
            elif f.name == "observatory":
                obs = self.resolveObservatory()
                value = {
                    "longitude": float(obs.longitude.deg),
                    "latitude": float(obs.latitude.deg),
                    "elevation": float(obs.elevation),
                }
            elif f.name == "visits" and value is not None:
                value = [
                    {
                        "time": v.time.utc.isot,
                        "role": v.role,
                        "seeing": v.seeing,
                        "defects": v.defects,
                        "numTransients": v.numTransients,
                    }
                    for v in value
                ]
            elif f.name == "date":
                value = self.resolveDate().isot[:10]
            elif isinstance(value, Angle | u.Quantity):
                value = float(Angle(value).deg)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


def _integer(value: Any, name: str, minimum: int | None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise DcrTypeError(f"{name} must be an integer", **{name: value})
    out = int(value)
    if minimum is not None and out < minimum:
        raise DcrValueError(f"{name} must be >= {minimum}", **{name: out})
    return out


def _range(value: Any, name: str, unit: str) -> tuple[float, float]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a (minimum, maximum) pair in {unit}",
                           **{name: value}) from None
    lo = asFiniteFloat(lo, name, unit)
    hi = asFiniteFloat(hi, name, unit)
    if lo > hi:
        raise DcrValueError(f"{name}: the minimum exceeds the maximum", **{name: (lo, hi)})
    return lo, hi


def _checkBandInRefractionRange(band: Bandpass, observatory: Any) -> None:
    """Raise if the band reaches outside the wavelengths the refraction formula covers."""
    lo, hi = band.support
    try:
        refraction(np.array([lo, hi]), 45.0 * u.deg, observatory)
    except DcrValueError as error:
        raise DcrValueError(
            f"the band {band.name!r} spans {lo:.1f}-{hi:.1f} nm, outside the range of the "
            f"refraction formula ({error.message}); use a band within it",
            band=band.name,
            support=(lo, hi),
        ) from None
