"""Synthetic skies with known truth: stars and galaxies observed through a refracting atmosphere.

This module plans and writes a simulated field; the pieces it composes live below it:

- `dcrmodel.simulate.spectra`: photon spectra (`BlackbodySpectrum`, `PowerLawSpectrum`) and the
  `Bandpass`, sampled at many wavelengths (14 per intended subfilter by default, 42 for
  three subfilters);
- `dcrmodel.simulate.sources`: profiles, `SourceComponent`, `Source` and `meanWavelength`;
- `dcrmodel.simulate.seeing`: the seeing (`AtmosphericPsf`: Gaussian, Moffat or Kolmogorov,
  optionally scaling with wavelength);
- `dcrmodel.simulate.render`: the exact Fourier-space renderer (`FourierSkyRenderer`,
  `TiledSkyRenderer`) and each wavelength's differential refraction
  (`wavelengthDisplacements`, Stone 1996) along the zenith direction measured through the
  exposure's WCS (`dcrmodel.physics.dcr.zenithDirection`).

Every source is thus rendered through the band at fine wavelength resolution, so the
subfilter model of `dcrmodel.model.core.DcrModel` is tested against a continuous truth, not
against its own approximation. The names of those modules are also importable from here.

Here: the configuration (`SimulationConfig`, `VisitSpec`), the catalogue of blue and red
stars and galaxies, and the visit plan. On top of the static sky: per-visit noise (sky
plus source, Gaussian with the Poisson variance, and the matching variance plane), mask
defects in some visits (bad columns, cosmic rays, a saturated core with its bleed trail,
flagged BAD, CR and SAT and corrupted as in real data), and optional transients (new point
sources) in chosen visits. Visits follow a field through one or more nights so that
airmass and parallactic angle vary naturally on both sides of the meridian; their
`VisitInfo` comes from astropy.

`simulateField` returns the field in memory; `runSimulation` writes Rubin-layout exposures
of every visit, noiseless truth images, the true subfilter model, a plain inverse-variance
coadd of the training visits and a manifest (``manifest.json``, read back with
`loadManifest`) describing all of it.

References
----------
R. C. Stone, 1996, PASP 108, 1051 (refraction).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time as _time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, Angle, SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from scipy import ndimage

from .._validate import asFiniteFloat, asPositiveFloat
from .._version import __version__
from ..atomic import atomicDirectory
from ..diffim import detectSources, footprintMask
from ..errors import DcrOutputError, DcrTypeError, DcrValueError
from ..fits import writeDcrModel, writeExposure
from ..image import Box, Exposure, Filter, Image, ImagePsf, Mask, MaskedImage, PhotoCalib
from ..model import DcrModel
from ..physics import (
    Observatory,
    VisitInfo,
    Weather,
    defaultWeather,
    offlineIers,
    refraction,
    zenithDirection,
)
from .render import FourierSkyRenderer, TiledSkyRenderer, wavelengthDisplacements
from .seeing import PSF_PROFILES, AtmosphericPsf
from .sources import (
    COLOUR_CLASSES,
    ExponentialProfile,
    GaussianProfile,
    PointProfile,
    Source,
    SourceComponent,
    meanWavelength,
)
from .spectra import Bandpass, BlackbodySpectrum, PowerLawSpectrum

__all__ = [
    "BlackbodySpectrum",
    "PowerLawSpectrum",
    "Bandpass",
    "PointProfile",
    "ExponentialProfile",
    "GaussianProfile",
    "SourceComponent",
    "Source",
    "AtmosphericPsf",
    "FourierSkyRenderer",
    "TiledSkyRenderer",
    "wavelengthDisplacements",
    "meanWavelength",
    "makeWcs",
    "VisitSpec",
    "SimulationConfig",
    "SimulatedVisit",
    "SimulatedField",
    "SimulationManifest",
    "simulateField",
    "runSimulation",
    "loadManifest",
    "MANIFEST_NAME",
    "ROLES",
    "PSF_PROFILES",
    "COLOUR_CLASSES",
]

_log = logging.getLogger(__name__)


def _degrees(value: Any, name: str) -> float:
    """Convert an angle given as `Angle`/`Quantity` to degrees; reject bare numbers."""
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


# --------------------------------------------------------------------------------------
# Field geometry
# --------------------------------------------------------------------------------------


def makeWcs(
    center: SkyCoord,
    bbox: Any,
    pixelScale: float,
    rotation: Angle | u.Quantity | None = None,
) -> WCS:
    """Return a tangent-plane WCS centred on a box, North up and East left when unrotated.

    Parameters
    ----------
    center : astropy.coordinates.SkyCoord
        Sky position of the box centre.
    bbox : dcrmodel.image.Box
        The region (parent pixels); the WCS maps parent pixels ``(x, y)``.
    pixelScale : float
        Pixel scale in arcsec per pixel.
    rotation : astropy.coordinates.Angle, optional
        Rotation of the sky on the pixel grid (counter-clockwise, North through East is
        kept: the parity is the sky's).

    Returns
    -------
    astropy.wcs.WCS
        A two-axis ``RA---TAN``/``DEC--TAN`` WCS.
    """
    scale = asPositiveFloat(pixelScale, "pixelScale", "arcsec per pixel") / 3600.0
    theta = math.radians(0.0 if rotation is None else _degrees(rotation, "rotation"))
    xc, yc = bbox.center
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    icrs = center.icrs
    wcs.wcs.crval = [float(icrs.ra.deg), float(icrs.dec.deg)]
    wcs.wcs.crpix = [xc + 1.0, yc + 1.0]
    c, s = math.cos(theta), math.sin(theta)
    wcs.wcs.cd = np.array([[-scale * c, scale * s], [scale * s, scale * c]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    return wcs


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------

#: Roles of visits: used to build the model (training) or held out (test).
ROLES = ("training", "test")

#: File name of the manifest in an output folder.
MANIFEST_NAME = "manifest.json"

_MANIFEST_FORMAT = "dcrmodel-simulation"
_MANIFEST_VERSION = 1

#: Blackbody temperature (K) dividing blue from red stars.
_BLUE_STAR_TEMPERATURE = 6500.0


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
        self.resolveSize()
        for i, value in enumerate(self.origin):
            _integer(value, f"origin[{i}]", None)
        asPositiveFloat(self.pixelScale, "pixelScale", "arcsec per pixel")
        _degrees(self.skyRotation, "skyRotation")
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
            _degrees(self.fieldRa, "fieldRa")
        dec = _degrees(self.fieldDec, "fieldDec")
        if not -90.0 <= dec <= 90.0:
            raise DcrValueError("fieldDec must be within [-90, 90] deg", fieldDec=dec)
        for name in ("trainingAirmass", "testAirmass"):
            lo, hi = _range(getattr(self, name), name, "airmass")
            if lo < 1.0:
                raise DcrValueError(f"{name} must be >= 1 (airmass)", **{name: (lo, hi)})
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
        asPositiveFloat(self.skyLevel, "skyLevel", "counts per pixel")
        asPositiveFloat(self.readNoise, "readNoise", "counts", allowZero=True)
        asPositiveFloat(self.exposureTime, "exposureTime", "s")
        asPositiveFloat(self.calibrationMean, "calibrationMean", "nJy per count")
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


# --------------------------------------------------------------------------------------
# The sky
# --------------------------------------------------------------------------------------


def _logUniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _fluxes(rng: np.random.Generator, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """Fluxes with ``dN/dlog F ~ F^-slope`` between ``lo`` and ``hi``."""
    uniform = rng.random(n)
    if slope == 0.0 or lo == hi:
        return lo * (hi / lo) ** uniform
    a, b = lo**-slope, hi**-slope
    return (a - uniform * (a - b)) ** (-1.0 / slope)


def _makeCatalogue(config: SimulationConfig, bbox: Any, rng: np.random.Generator) -> list[Source]:
    """Draw the stars (blackbodies, blue and red) and galaxies (disc + bulge)."""
    area = bbox.area
    numStars = (
        config.numStars if config.numStars is not None
        else int(round(config.starDensity * area / 1e4))
    )
    numGalaxies = (
        config.numGalaxies if config.numGalaxies is not None
        else int(round(config.galaxyDensity * area / 1e4))
    )
    m = config.edgeMargin

    def positions(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(bbox.minX + m, bbox.maxX - m, n)
        y = rng.uniform(bbox.minY + m, bbox.maxY - m, n)
        return x, y

    sources: list[Source] = []
    sx, sy = positions(numStars)
    blue = rng.random(numStars) < 0.5
    temperature = np.where(
        blue,
        _logUniform(rng, _BLUE_STAR_TEMPERATURE, 30000.0, numStars),
        _logUniform(rng, 3000.0, 5500.0, numStars),
    )
    flux = _fluxes(rng, numStars, *config.starFlux, config.fluxSlope)
    for i in range(numStars):
        component = SourceComponent(PointProfile(), BlackbodySpectrum(temperature[i]), flux[i])
        sources.append(
            Source(
                i + 1, sx[i], sy[i], "star", "blueStar" if blue[i] else "redStar", (component,)
            )
        )
    gx, gy = positions(numGalaxies)
    gflux = _fluxes(rng, numGalaxies, *config.galaxyFlux, config.fluxSlope)
    scale = _logUniform(rng, 1.0, 3.5, numGalaxies)
    axis = rng.uniform(0.35, 1.0, numGalaxies)
    angle = rng.uniform(0.0, 180.0, numGalaxies)
    bulgeFraction = rng.uniform(0.0, 0.5, numGalaxies)
    bulgeScale = rng.uniform(0.35, 0.6, numGalaxies)
    bulgeAxis = np.minimum(axis + rng.uniform(0.1, 0.3, numGalaxies), 1.0)
    discIndex = rng.uniform(-2.0, 0.5, numGalaxies)
    bulgeIndex = rng.uniform(1.5, 4.0, numGalaxies)
    for i in range(numGalaxies):
        components = [
            SourceComponent(
                ExponentialProfile(scale[i], axis[i], angle[i]),
                PowerLawSpectrum(discIndex[i]),
                gflux[i] * (1.0 - bulgeFraction[i]),
            )
        ]
        if bulgeFraction[i] >= 0.05:
            components.append(
                SourceComponent(
                    GaussianProfile(bulgeScale[i] * scale[i], bulgeAxis[i], angle[i]),
                    PowerLawSpectrum(bulgeIndex[i]),
                    gflux[i] * bulgeFraction[i],
                )
            )
        sources.append(
            Source(numStars + i + 1, gx[i], gy[i], "galaxy", "galaxy", tuple(components))
        )
    return sources


# --------------------------------------------------------------------------------------
# Visit plan
# --------------------------------------------------------------------------------------


@dataclass
class _PlannedVisit:
    time: Time
    role: str
    night: int
    seeing: float = 0.0
    defects: bool = False
    numTransients: int = 0


def _localMidnights(date: Time, longitude: float, nights: int) -> list[Time]:
    """Local mean midnight (UTC) following the evening of ``date``, for each night."""
    hours = (24.0 - longitude / 15.0 - 12.0) % 24.0 + 12.0
    return [date + (k * 24.0 + hours) * u.hour for k in range(nights)]


def _altitudeAndHourAngle(
    coord: SkyCoord, times: Time, observatory: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Return true altitude (deg) and hour angle (deg, [-180, 180), west > 0) at ``times``."""
    location = observatory.toEarthLocation()
    with offlineIers():
        frame = AltAz(obstime=times, location=location, pressure=0.0 * u.hPa)
        altitude = coord.icrs.transform_to(frame).alt.deg
        era = times.earth_rotation_angle(0.0 * u.deg).deg
    hourAngle = (era + observatory.longitude.deg - coord.icrs.ra.deg + 180.0) % 360.0 - 180.0
    return np.atleast_1d(altitude), np.atleast_1d(hourAngle)


def _fieldCoord(config: SimulationConfig, observatory: Any) -> SkyCoord:
    dec = _degrees(config.fieldDec, "fieldDec")
    if config.fieldRa is not None:
        ra = _degrees(config.fieldRa, "fieldRa") % 360.0
    else:

        midnight = _localMidnights(config.resolveDate(), observatory.longitude.deg, 1)[0]
        with offlineIers():
            era = midnight.earth_rotation_angle(0.0 * u.deg).deg
        ra = (era + observatory.longitude.deg) % 360.0
    return SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs")


def _planVisits(
    config: SimulationConfig, coord: SkyCoord, observatory: Any, rng: np.random.Generator
) -> list[_PlannedVisit]:
    """Choose the visit times: training on both sides of the meridian, tests at high airmass."""
    if config.visits is not None:
        times = Time([v.time for v in config.visits])
        altitude, _ = _altitudeAndHourAngle(coord, times, observatory)
        below = np.flatnonzero(altitude <= 0.0)
        if below.size:
            i = int(below[0])
            raise DcrValueError(
                f"visit {i} at {config.visits[i].time.utc.isot} has the field below the "
                f"horizon (altitude {altitude[i]:.1f} deg); no visit can be made then",
                visit=i,
                altitude=float(altitude[i]),
            )
        return [_PlannedVisit(v.time, v.role, 0) for v in config.visits]

    midnights = _localMidnights(config.resolveDate(), observatory.longitude.deg, config.nights)
    step = 2.0 / 60.0
    offsets = np.arange(-config.nightHours / 2.0, config.nightHours / 2.0 + 1e-9, step)
    times = Time(
        np.concatenate([(m + offsets * u.hour).utc.jd for m in midnights]),
        format="jd",
        scale="utc",
    )
    night = np.repeat(np.arange(config.nights), offsets.size)
    altitude, hourAngle = _altitudeAndHourAngle(coord, times, observatory)
    window = (
        f"{config.nights} night(s) from {config.resolveDate().isot[:10]}, "
        f"{config.nightHours:g} h around local midnight"
    )
    if not np.any(altitude > 0.0):
        raise DcrValueError(
            f"the field (RA {coord.ra.deg:.3f}, Dec {coord.dec.deg:.3f} deg) is never above "
            f"the horizon in the requested window ({window}); choose another field, date or "
            "observatory",
            maxAltitude=float(altitude.max()),
        )
    airmass = np.where(altitude > 0.0, 1.0 / np.sin(np.radians(np.clip(altitude, 1e-3, 90))),
                       np.inf)
    west = hourAngle >= 0.0
    trainLo, trainHi = config.trainingAirmass
    testLo, testHi = config.testAirmass
    usable = airmass <= max(trainHi, testHi) + 0.05
    if not np.any(usable):
        raise DcrValueError(
            f"the field never rises above airmass {max(trainHi, testHi) + 0.05:.2f} in the "
            f"requested window ({window}); its lowest airmass there is {airmass.min():.2f}. "
            "Choose another field or allow higher airmass",
            minAirmass=float(airmass.min()),
        )
    used = np.zeros(airmass.size, dtype=bool)

    def pick(target: float, isWest: bool, nightIndex: int, minimum: float) -> int | None:
        for sideFirst in (True, False):
            side = isWest if sideFirst else not isWest
            for restrictNight in (True, False):
                sel = usable & ~used & (west == side) & (airmass >= minimum - 1e-9)
                if restrictNight:
                    sel &= night == nightIndex
                if sel.any():
                    candidates = np.flatnonzero(sel)
                    best = int(candidates[np.argmin(np.abs(airmass[candidates] - target))])
                    used[max(best - 2, 0):best + 3] = True
                    return best
        return None

    chosen: list[tuple[int, str]] = []
    numTraining, numTest = config.numTraining, config.numTest
    sides = [False, True]  # east, west
    haveSide = {s: bool(np.any(usable & (west == s))) for s in sides}
    counts = {False: (numTraining + 1) // 2, True: numTraining // 2}
    if not all(haveSide.values()):
        only = next(s for s in sides if haveSide[s])
        counts = {only: numTraining, not only: 0}
        _log.warning("the window covers only one side of the meridian: the model is "
                     "constrained along one direction only")
    visitNumber = 0
    for side in sides:
        n = counts[side]
        if n == 0:
            continue
        sideAirmass = airmass[usable & (west == side)]
        lo = max(trainLo, float(sideAirmass.min()))
        hi = max(lo, min(trainHi, float(sideAirmass.max())))
        targets = np.linspace(lo, hi, n) if n > 1 else np.array([0.5 * (lo + hi)])
        if n > 2:
            spacing = (hi - lo) / (n - 1)
            targets[1:-1] += rng.uniform(-0.3, 0.3, n - 2) * spacing
        for target in targets:
            index = pick(float(target), side, visitNumber % config.nights, 1.0)
            visitNumber += 1
            if index is None:
                raise DcrValueError(
                    f"the window ({window}) has too few distinct times for "
                    f"{numTraining + numTest} visits; widen it or ask for fewer visits"
                )
            chosen.append((index, "training"))
    testTargets = (
        np.linspace(testLo, testHi, numTest) if numTest > 1 else np.array([testLo])
    )[:numTest]
    for j, target in enumerate(testTargets):
        index = pick(float(target), j % 2 == 0, (config.nights - 1 - j) % config.nights, testLo)
        if index is None:
            raise DcrValueError(
                f"no time in the requested window ({window}) has the field at airmass >= "
                f"{testLo:g} for the held-out test visits; widen the window, choose another "
                "field, or lower testAirmass",
                testAirmass=(testLo, testHi),
            )
        chosen.append((index, "test"))
    jitter = rng.uniform(-50.0, 50.0, len(chosen))
    plan = [
        _PlannedVisit(times[i] + jitter[k] * u.s, role, int(night[i]))
        for k, (i, role) in enumerate(chosen)
    ]
    plan.sort(key=lambda v: v.time.jd)
    return plan


def _finishPlan(
    config: SimulationConfig, plan: list[_PlannedVisit], rng: np.random.Generator
) -> None:
    """Draw each visit's seeing, defects and number of transients."""
    seeingLo, seeingHi = config.seeing
    n = len(plan)
    seeing = rng.uniform(seeingLo, seeingHi, n) if seeingHi > seeingLo else np.full(n, seeingLo)
    numDefects = int(round(config.defectFraction * n))
    defects = np.zeros(n, dtype=bool)
    if numDefects:
        defects[rng.choice(n, numDefects, replace=False)] = True
    specs = config.visits
    for i, visit in enumerate(plan):
        spec = specs[i] if specs is not None else None
        visit.seeing = spec.seeing if spec is not None and spec.seeing is not None else seeing[i]
        visit.defects = (
            spec.defects if spec is not None and spec.defects is not None else bool(defects[i])
        )
        default = config.transientsPerTestVisit if visit.role == "test" else 0
        visit.numTransients = (
            spec.numTransients if spec is not None and spec.numTransients is not None else default
        )


def _weather(observatory: Any, rng: np.random.Generator) -> Any:
    """Draw the weather of one visit: the site's standard atmosphere, cooler, with scatter.

    Air temperature 4 degC below the standard atmosphere's with 1.5 degC scatter, pressure
    within 0.2 %, humidity 8-40 % (typical of dry high sites such as Cerro Pachon).
    """
    standard = defaultWeather(observatory.elevation)
    temperature = standard.airTemperature - 4.0 + rng.normal(0.0, 1.5)
    pressure = standard.airPressure * (1.0 + rng.normal(0.0, 0.002))
    humidity = float(rng.uniform(8.0, 40.0))
    return Weather(float(temperature), float(pressure), humidity)


# --------------------------------------------------------------------------------------
# Transients and defects
# --------------------------------------------------------------------------------------


def _placeTransients(
    plan: list[_PlannedVisit],
    sources: list[Source],
    bbox: Any,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> dict[int, list[tuple[Source, int | None]]]:
    """Draw new point sources for each visit: alternately on a galaxy and in empty sky."""
    galaxies = [s for s in sources if s.kind == "galaxy"]
    stars = [s for s in sources if s.kind == "star"]
    brightest = max(stars, key=lambda s: s.flux) if stars else None
    xy = np.array([[s.x, s.y] for s in sources]) if sources else np.zeros((0, 2))
    flux = np.array([s.flux for s in sources]) if sources else np.zeros(0)
    margin = max(config.edgeMargin, 16)
    nextId = (max(s.id for s in sources) if sources else 0) + 1001
    out: dict[int, list[tuple[Source, int | None]]] = {}
    for index, visit in enumerate(plan):
        placed: list[tuple[Source, int | None]] = []
        for j in range(visit.numTransients):
            host: Source | None = None
            for _attempt in range(200):
                if j % 2 == 0 and galaxies:
                    candidate = galaxies[int(rng.integers(len(galaxies)))]
                    r = rng.uniform(0.5, 1.5) * max(candidate.halfLightRadius, 1.0)
                    phi = rng.uniform(0.0, 2.0 * math.pi)
                    x, y = candidate.x + r * math.cos(phi), candidate.y + r * math.sin(phi)
                    host = candidate
                else:
                    x = rng.uniform(bbox.minX + margin, bbox.maxX - margin)
                    y = rng.uniform(bbox.minY + margin, bbox.maxY - margin)
                    host = None
                if not (bbox.minX + margin <= x <= bbox.maxX - margin
                        and bbox.minY + margin <= y <= bbox.maxY - margin):
                    continue
                if brightest is not None and math.hypot(x - brightest.x, y - brightest.y) < 20:
                    continue
                if xy.size:
                    d = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
                    crowded = (d < 8.0) & (flux > 2.0e4)
                    if host is not None:
                        crowded &= np.array([s.id != host.id for s in sources])
                    if host is None and np.any(d < 6.0):
                        continue
                    if np.any(crowded):
                        continue
                if any(math.hypot(x - t.x, y - t.y) < 12.0 for t, _ in placed):
                    continue
                break
            else:
                raise DcrValueError(
                    "no room for a transient away from bright sources; simulate a larger "
                    "field or fewer sources",
                    visit=index,
                )
            temperature = float(_logUniform(rng, 8000.0, 20000.0, 1)[0])
            tflux = float(_fluxes(rng, 1, *config.transientFlux, 0.0)[0])
            component = SourceComponent(PointProfile(), BlackbodySpectrum(temperature), tflux)
            placed.append(
                (Source(nextId, x, y, "transient", "transient", (component,)),
                 None if host is None else host.id)
            )
            nextId += 1
        out[index] = placed
    return out


def _segmentPixels(x0: float, y0: float, length: float, angle: float) -> list[tuple[int, int]]:
    steps = max(int(math.ceil(length * 2)), 1)
    pixels = []
    for t in np.linspace(0.0, length, steps + 1):
        p = (int(round(y0 + t * math.sin(angle))), int(round(x0 + t * math.cos(angle))))
        if p not in pixels:
            pixels.append(p)
    return pixels


def _applyDefects(
    image: np.ndarray,
    mask: Any,
    truth: np.ndarray,
    bbox: Any,
    config: SimulationConfig,
    brightest: Source | None,
    avoid: list[tuple[float, float]],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Corrupt pixels like real detectors do and flag them: BAD, CR and SAT.

    A dead column (partial or whole) reads no charge (the subtracted sky makes it
    negative); cosmic-ray tracks of 1-8 pixels add 500-20000 counts; the brightest star's
    core is clipped at a full-well level set to 45 % of its noiseless peak, and the excess
    charge bleeds up and down its columns.
    """
    ny, nx = image.shape
    bad = mask.getPlaneBitMask("BAD")
    crBit = mask.getPlaneBitMask("CR")
    satBit = mask.getPlaneBitMask("SAT")
    record: dict[str, Any] = {"badColumns": [], "cosmicRays": 0, "saturatedSource": None}
    avoidLocal = [(ax - bbox.minX, ay - bbox.minY) for ax, ay in avoid]

    # A dead column.
    for _attempt in range(100):
        column = int(rng.integers(4, nx - 4))
        if all(abs(column - ax) > 6 for ax, _ in avoidLocal):
            break
    start = int(rng.integers(0, ny // 2)) if rng.random() < 0.5 else 0
    image[start:, column] = -config.skyLevel * rng.uniform(0.9, 1.0) + rng.normal(
        0.0, config.readNoise + 1.0, ny - start
    )
    mask.array[start:, column] |= bad
    record["badColumns"].append({"x": column + bbox.minX, "yStart": start + bbox.minY})

    # Cosmic rays.
    numRays = int(rng.integers(4, 10))
    for _ray in range(numRays):
        for _attempt in range(100):
            cx, cy = rng.uniform(2, nx - 3), rng.uniform(2, ny - 3)
            if all(math.hypot(cx - ax, cy - ay) > 8 for ax, ay in avoidLocal):
                break
        track = _segmentPixels(cx, cy, rng.uniform(0.0, 8.0), rng.uniform(0.0, 2 * math.pi))
        for py, px in track:
            if 0 <= py < ny and 0 <= px < nx:
                image[py, px] += rng.uniform(500.0, 20000.0)
                mask.array[py, px] |= crBit
    record["cosmicRays"] = numRays

    # A saturated core with its bleed trail.
    if brightest is not None:
        py = int(round(brightest.y)) - bbox.minY
        px = int(round(brightest.x)) - bbox.minX
        if 0 <= py < ny and 0 <= px < nx and truth[py, px] > 0:
            level = 0.45 * float(truth[py, px])
            above = image >= level
            labels, _ = ndimage.label(above)
            region = labels == labels[py, px] if above[py, px] else np.zeros_like(above)
            if region.any():
                excess = float((image[region] - level).sum())
                image[region] = level
                mask.array[region] |= satBit
                columns = np.flatnonzero(region.any(axis=0))
                share = excess / (2.0 * columns.size)
                for col in columns:
                    rows = np.flatnonzero(region[:, col])
                    for direction, row in ((-1, rows.min() - 1), (1, rows.max() + 1)):
                        charge = share
                        while charge > 0.0 and 0 <= row < ny:
                            need = level - image[row, col]
                            if need > charge:
                                image[row, col] += charge
                                charge = 0.0
                            else:
                                image[row, col] = level
                                charge -= max(need, 0.0)
                            mask.array[row, col] |= satBit
                            row += direction
                record["saturatedSource"] = brightest.id
                record["saturationLevel"] = level
    return record


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------


@dataclass
class SimulatedVisit:
    """One simulated visit.

    Attributes
    ----------
    id : int
        Visit identifier.
    role : str
        ``"training"`` or ``"test"``.
    exposure : dcrmodel.image.Exposure
        The observation: image with noise and defects, mask, variance, WCS, PSF, visit info.
    truth : dcrmodel.image.Exposure
        Noiseless image of everything in the visit (static sky and transients).
    truthStatic : dcrmodel.image.Exposure
        Noiseless image of the static sky alone, as this visit sees it: what a perfect
        template for the visit would be.
    record : dict
        The visit's manifest entry (conditions, defects, transients).
    """

    id: int
    role: str
    exposure: Any
    truth: Any
    truthStatic: Any
    record: dict[str, Any]


@dataclass
class SimulatedField:
    """A whole simulated field in memory (see `simulateField`).

    Attributes
    ----------
    visits : list of SimulatedVisit
        The visits, in time order (explicit `VisitSpec` visits: in the order given).
    coadd : dcrmodel.image.Exposure
        Plain inverse-variance coadd of the training visits, ``DETECTED`` set.
    truthModel : dcrmodel.model.core.DcrModel
        The true sky in each subfilter, through the reference (sharpest training) seeing.
    manifest : dict
        What `runSimulation` writes as the manifest, without file names.
    """

    visits: list[SimulatedVisit]
    coadd: Any
    truthModel: Any
    manifest: dict[str, Any]


ProgressCallback = Callable[[str, int, int], None]


class _Simulation:
    """Plan a field at construction (cheap, validates); render visits on demand."""

    def __init__(self, config: SimulationConfig, seed: int) -> None:

        if not isinstance(config, SimulationConfig):
            raise DcrTypeError("config must be a SimulationConfig", config=type(config).__name__)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or (
            seed < 0
        ):
            raise DcrValueError("seed must be a non-negative integer", seed=seed)
        config.validate()
        self.config = config
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.band = config.resolveBand()
        self.filter = self.band.toFilter()
        self.observatory = config.resolveObservatory()
        width, height = config.resolveSize()
        self.bbox = Box(int(config.origin[0]), int(config.origin[1]), width, height)
        self.coord = _fieldCoord(config, self.observatory)
        self.wcs = makeWcs(self.coord, self.bbox, config.pixelScale, config.skyRotation)
        self.photoCalib = PhotoCalib(config.calibrationMean)
        self.wavelengths, self.bandWeights, self.subfilter = self.band.sample(
            config.numSubfilters, config.samplesPerSubfilter
        )
        self.sources = _makeCatalogue(config, self.bbox, self.rng)
        self.plan = _planVisits(config, self.coord, self.observatory, self.rng)
        _finishPlan(config, self.plan, self.rng)
        self.transients = _placeTransients(self.plan, self.sources, self.bbox, config, self.rng)
        self._prepareVisits()

    def _prepareVisits(self) -> None:

        config = self.config
        self.visitInfos = []
        self.displacements = []
        self.psfs = []
        for index, visit in enumerate(self.plan):
            weather = _weather(self.observatory, self.rng)
            info = VisitInfo.fromAstropy(
                self.coord,
                visit.time,
                self.observatory,
                weather=weather,
                exposureTime=config.exposureTime,
                id=1000 + index,
            )
            self.visitInfos.append(info)
            vector = zenithDirection(info, self.wcs, self.bbox)
            self.displacements.append(
                wavelengthDisplacements(
                    self.wavelengths, self.band.effectiveWavelength, info.boresightAzAlt[1],
                    self.observatory, weather, vector,
                )
            )
            self.psfs.append(
                AtmosphericPsf(
                    config.psfProfile,
                    visit.seeing / config.pixelScale,
                    self.band.effectiveWavelength,
                    config.chromaticSeeing,
                    config.moffatBeta,
                )
            )
        training = [i for i, v in enumerate(self.plan) if v.role == "training"]
        sharpest = min(training, key=lambda i: self.plan[i].seeing)
        self.referencePsf = self.psfs[sharpest]
        lo, hi = self.band.support
        self.kernelSize = 2 * max(
            max(p.kernelRadius(lo), p.kernelRadius(hi)) for p in self.psfs
        ) + 1
        # PSF images written with the exposures must fit inside them (odd, centred).
        fieldSide = min(self.bbox.width, self.bbox.height)
        self.kernelSize = min(self.kernelSize, fieldSide if fieldSide % 2 else fieldSide - 1)
        largestShift = max(float(np.max(np.abs(d))) for d in self.displacements)
        extent = max([s.extent for s in self.sources] + [0.0])
        light = max(max(p.lightRadius(lo), p.lightRadius(hi)) for p in self.psfs)
        # Light travels at most shift + PSF radius + source extent from a source's centre.
        self.padding = int(math.ceil(largestShift + light + extent)) + 4

    # ------------------------------------------------------------------ records

    def sourceRecords(self) -> list[dict[str, Any]]:
        xs = np.array([s.x for s in self.sources])
        ys = np.array([s.y for s in self.sources])
        sky = self.wcs.pixel_to_world(xs, ys) if self.sources else None
        out = []
        for i, s in enumerate(self.sources):
            entry: dict[str, Any] = {
                "id": s.id,
                "type": s.kind,
                "colourClass": s.colourClass,
                "x": s.x,
                "y": s.y,
                "ra": float(sky.ra.deg[i]),
                "dec": float(sky.dec.deg[i]),
                "flux": s.flux,
                "meanWavelength": meanWavelength(s, self.band),
                "halfLightRadius": s.halfLightRadius,
                "components": [c.describe() for c in s.components],
            }
            if s.kind == "star":
                entry["temperature"] = s.components[0].spectrum.temperature
            out.append(entry)
        return out

    def transientRecords(self) -> list[dict[str, Any]]:
        out = []
        for index, placed in self.transients.items():
            for source, host in placed:
                sky = self.wcs.pixel_to_world(source.x, source.y)
                out.append(
                    {
                        "id": source.id,
                        "visit": self.visitInfos[index].id,
                        "x": source.x,
                        "y": source.y,
                        "ra": float(sky.ra.deg),
                        "dec": float(sky.dec.deg),
                        "flux": source.flux,
                        "temperature": source.components[0].spectrum.temperature,
                        "meanWavelength": meanWavelength(source, self.band),
                        "host": host,
                    }
                )
        return out

    def visitRecord(self, index: int, defects: dict[str, Any] | None) -> dict[str, Any]:
        visit = self.plan[index]
        info = self.visitInfos[index]
        az, alt = info.boresightAzAlt
        d = self.displacements[index]
        weather = info.weather
        edges = self.band.subfilterEdges(self.config.numSubfilters)
        vy, vx = d[0] - d[-1]
        return {
            "id": info.id,
            "role": visit.role,
            "night": visit.night,
            "date": info.date.utc.isot,
            "mjd": float(info.date.utc.mjd),
            "airmass": float(info.boresightAirmass),
            "altitude": float(alt.deg),
            "azimuth": float(az.deg),
            "hourAngle": float(info.hourAngle.wrap_at(180 * u.deg).deg),
            "side": "west" if info.hourAngle.wrap_at(180 * u.deg).deg >= 0 else "east",
            "parallacticAngle": float(info.boresightParAngle.wrap_at(180 * u.deg).deg),
            "seeing": float(visit.seeing),
            "seeingPixels": float(visit.seeing / self.config.pixelScale),
            "psf": self.psfs[index].describe(),
            "weather": {
                "airTemperature": weather.airTemperature,
                "airPressure": weather.airPressure,
                "humidity": weather.humidity,
            },
            "dcrSpan": float(math.hypot(vy, vx)),
            "dcrBandEdges": [float(edges[0]), float(edges[-1])],
            "skyLevel": self.config.skyLevel,
            "readNoise": self.config.readNoise,
            "defects": defects,
            "transients": [t.id for t, _ in self.transients.get(index, [])],
        }

    # ------------------------------------------------------------------ rendering

    def renderer(self, sources: Sequence[Source] | None = None) -> TiledSkyRenderer:
        return TiledSkyRenderer(
            self.sources if sources is None else sources, self.bbox, self.wavelengths,
            self.bandWeights, self.padding, maxMemory=self.config.maxMemory,
        )

    def _exposure(
        self, image: np.ndarray, variance: np.ndarray, mask: Any, index: int | None,
        psf: Any, metadata: Mapping[str, Any],
    ) -> Any:

        return Exposure(
            MaskedImage(
                Image(np.asarray(image, dtype=np.float32), bbox=self.bbox),
                mask,
                Image(np.asarray(variance, dtype=np.float32), bbox=self.bbox),
            ),
            wcs=self.wcs,
            psf=psf,
            visitInfo=None if index is None else self.visitInfos[index],
            filter=self.filter,
            photoCalib=self.photoCalib,
            metadata=fits.Header(list(metadata.items())),
        )

    def visits(
        self, renderer: TiledSkyRenderer, progress: ProgressCallback | None = None
    ) -> Iterator[SimulatedVisit]:

        config = self.config
        stars = [s for s in self.sources if s.kind == "star"]
        brightest = max(stars, key=lambda s: s.flux) if stars else None
        total = len(self.plan)
        for index, visit in enumerate(self.plan):
            psf = self.psfs[index]
            static = renderer.render(self.displacements[index], psf)
            full = static
            placed = self.transients.get(index, [])
            if placed:
                extra = self.renderer([t for t, _ in placed])
                full = static + extra.render(self.displacements[index], psf)
            variance = config.skyLevel + config.readNoise**2 + np.clip(full, 0.0, None)
            image = full + self.rng.standard_normal(full.shape) * np.sqrt(variance)
            mask = Mask.fromBox(self.bbox)
            defects = None
            if visit.defects:
                defects = _applyDefects(
                    image, mask, full, self.bbox, config, brightest,
                    [(t.x, t.y) for t, _ in placed], self.rng,
                )
            imagePsf = psf.toImagePsf(size=self.kernelSize)
            meta = {"SIMROLE": visit.role, "SIMSEED": self.seed, "SEEING": float(visit.seeing)}
            exposure = self._exposure(image, variance, mask, index, imagePsf, meta)
            truthMeta = dict(meta, SIMTRUTH="FULL")
            truth = self._exposure(full, variance, Mask.fromBox(self.bbox), index, imagePsf,
                                   truthMeta)
            truthStatic = truth
            if placed:
                truthStatic = self._exposure(
                    static, variance, Mask.fromBox(self.bbox), index, imagePsf,
                    dict(meta, SIMTRUTH="STATIC"),
                )
            record = self.visitRecord(index, defects)
            if progress is not None:
                progress(f"visit {index + 1}/{total}", index + 1, total)
            yield SimulatedVisit(
                self.visitInfos[index].id, visit.role, exposure, truth, truthStatic, record
            )

    def truthModel(self, renderer: TiledSkyRenderer) -> Any:

        images = []
        for k in range(self.config.numSubfilters):
            weights = (self.subfilter == k).astype(np.float64)
            images.append(Image(renderer.render(None, self.referencePsf, weights), bbox=self.bbox))
        return DcrModel(
            images,
            filterInfo=self.filter,
            psf=self.referencePsf.toImagePsf(size=self.kernelSize),
            mask=Mask.fromBox(self.bbox),
            variance=Image(np.zeros(self.bbox.shape), bbox=self.bbox),
            photoCalib=self.photoCalib,
            wcs=self.wcs,
        )

    def baseManifest(self) -> dict[str, Any]:

        return {
            "format": _MANIFEST_FORMAT,
            "formatVersion": _MANIFEST_VERSION,
            "dcrmodelVersion": __version__,
            "seed": self.seed,
            "config": self.config.toDict(),
            "band": self.band.describe(),
            "numSubfilters": self.config.numSubfilters,
            "numWavelengthSamples": int(self.wavelengths.size),
            "observatory": {
                "longitude": float(self.observatory.longitude.deg),
                "latitude": float(self.observatory.latitude.deg),
                "elevation": float(self.observatory.elevation),
            },
            "field": {"ra": float(self.coord.ra.deg), "dec": float(self.coord.dec.deg)},
            "pixelScale": self.config.pixelScale,
            "bbox": {
                "minX": self.bbox.minX,
                "minY": self.bbox.minY,
                "width": self.bbox.width,
                "height": self.bbox.height,
            },
            "referencePsf": self.referencePsf.describe(),
            "sources": self.sourceRecords(),
            "transients": self.transientRecords(),
            "visits": [],
        }


class _CoaddAccumulator:
    """Plain inverse-variance coadd: per-visit weights 1 / median variance, bad pixels out."""

    def __init__(self, simulation: _Simulation) -> None:
        shape = simulation.bbox.shape
        self._sim = simulation
        self._sum = np.zeros(shape)
        self._weight = np.zeros(shape)
        self._variance = np.zeros(shape)
        self._kernel = np.zeros((simulation.kernelSize, simulation.kernelSize))
        self._fwhm = 0.0
        self._total = 0.0
        self.visitIds: list[int] = []
        self.weights: dict[int, float] = {}

    def add(self, visit: SimulatedVisit) -> None:

        exposure = visit.exposure
        bad = exposure.mask.getBadPixels()
        good = ~bad
        variance = np.asarray(exposure.variance.array, dtype=np.float64)
        weight = 1.0 / float(np.median(variance[good]))
        self._sum += np.where(good, weight * exposure.image.array, 0.0)
        self._weight += weight * good
        self._variance += np.where(good, weight * weight * variance, 0.0)
        self._kernel += weight * exposure.psf.computeKernelImage()
        self._fwhm += weight * exposure.psf.fwhm
        self._total += weight
        self.visitIds.append(visit.id)
        self.weights[visit.id] = weight

    def finish(self) -> Any:

        sim = self._sim
        covered = self._weight > 0.0
        image = np.zeros_like(self._sum)
        variance = np.zeros_like(self._sum)
        image[covered] = self._sum[covered] / self._weight[covered]
        variance[covered] = self._variance[covered] / self._weight[covered] ** 2
        mask = Mask.fromBox(sim.bbox)
        mask.array[~covered] |= mask.getPlaneBitMask("NO_DATA")
        kernel = self._kernel / self._total
        fwhm = self._fwhm / self._total
        _, footprints = detectSources(
            image, variance, kernel, 5.0, badPixels=~covered, polarity="positive"
        )
        detected = footprintMask(footprints, int(round(fwhm)))
        mask.array[detected] |= mask.getPlaneBitMask("DETECTED")
        psf = ImagePsf(kernel, alpha=self._sim.config.chromaticSeeing,
                       effectiveWavelength=sim.band.effectiveWavelength, fwhm=fwhm)
        meta = {"SIMROLE": "coadd", "SIMSEED": sim.seed, "NINPUTS": len(self.visitIds)}
        return sim._exposure(image, variance, mask, None, psf, meta)


def simulateField(
    config: SimulationConfig | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> SimulatedField:
    """Simulate a field in memory.

    Parameters
    ----------
    config : SimulationConfig, optional
        What to simulate (default: the demo field).
    seed : int, optional
        Seed of the random generator (`numpy.random.default_rng`): the same seed and
        configuration give the same field.
    progress : callable, optional
        Called as ``progress(message, done, total)`` after each visit.

    Returns
    -------
    SimulatedField

    Raises
    ------
    DcrValueError, DcrTypeError
        For an impossible configuration (see `SimulationConfig.validate`), a field never
        above the horizon in the window, or no time at the requested test airmass; all
        before any rendering.
    """
    sim = _Simulation(SimulationConfig() if config is None else config, seed)
    renderer = sim.renderer()
    visits = []
    coadd = _CoaddAccumulator(sim)
    manifest = sim.baseManifest()
    for visit in sim.visits(renderer, progress):
        visits.append(visit)
        manifest["visits"].append(visit.record)
        if visit.role == "training":
            coadd.add(visit)
    truthModel = sim.truthModel(renderer)
    coaddExposure = coadd.finish()
    manifest["coadd"] = {"visits": coadd.visitIds,
                         "weights": {str(k): v for k, v in coadd.weights.items()}}
    return SimulatedField(visits, coaddExposure, truthModel, manifest)


# --------------------------------------------------------------------------------------
# Writing and reading
# --------------------------------------------------------------------------------------


def _readOwnManifest(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != _MANIFEST_FORMAT:
        return None
    return data


def _checkOutputDirectory(path: Path, overwrite: bool) -> None:
    """Refuse a folder that holds anything but an earlier simulation (that only with overwrite)."""
    if path.exists() and not path.is_dir():
        raise DcrOutputError(
            "the output path is a file; give a directory for the simulation", path=str(path)
        )
    if not path.exists() or not any(path.iterdir()):
        return
    earlier = _readOwnManifest(path / MANIFEST_NAME)
    if earlier is None:
        raise DcrOutputError(
            f"the output folder {path} holds files that dcrmodel simulate did not write; "
            "refusing to touch them, choose an empty or new folder",
            path=str(path),
        )
    listed = set(earlier.get("files", [])) | {MANIFEST_NAME}
    present = {
        p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()
    }
    foreign = sorted(present - listed)
    if foreign:
        raise DcrOutputError(
            f"the output folder {path} holds an earlier simulation plus files it did not "
            "write; refusing to replace them, choose an empty or new folder",
            path=str(path),
            foreign=foreign[:5],
        )
    if not overwrite:
        raise DcrOutputError(
            f"the output folder {path} holds an earlier simulation (seed "
            f"{earlier.get('seed')}); pass --overwrite (overwrite=True) to replace it, or "
            "choose another folder",
            path=str(path),
        )


def runSimulation(
    outDir: str | os.PathLike,
    config: SimulationConfig | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> SimulationManifest:
    """Simulate a field and write it to a folder, atomically.

    Parameters
    ----------
    outDir : str or os.PathLike
        Output folder. It must not exist, be empty, or hold an earlier simulation (then
        only with ``overwrite``). Everything is written into a temporary folder beside it
        and renamed into place at the end, so an interrupted run leaves the earlier
        contents as they were.
    config : SimulationConfig, optional
        What to simulate (default: the demo field).
    seed : int, optional
        Random seed: the same seed and configuration give the same files.
    overwrite : bool, optional
        Replace an earlier simulation in ``outDir``.
    progress : callable, optional
        ``progress(message, done, total)`` after each step.

    Returns
    -------
    SimulationManifest
        The manifest of what was written.

    Raises
    ------
    DcrOutputError
        If ``outDir`` is a file or holds other files (or an earlier simulation without
        ``overwrite``).
    DcrValueError, DcrTypeError
        For an impossible configuration; before anything is rendered or written.

    Examples
    --------
    >>> import tempfile, warnings
    >>> config = SimulationConfig(size=64, numTraining=4, numTest=1, nights=1)
    >>> with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     manifest = runSimulation(folder + "/field", config, seed=1)
    ...     print(len(manifest.visits("training")), len(manifest.visits("test")))
    4 1

    Notes
    -----
    Layout: ``manifest.json``; ``visits/visit_<id>.fits`` (each visit in the Rubin layout,
    with its PSF HDU); ``truth/visit_<id>_static.fits`` (noiseless static sky as the visit
    sees it) and, for visits with transients, ``truth/visit_<id>_full.fits`` (with them);
    ``truth/model/dcrCoadd_<k>.fits`` (the true subfilter images through the sharpest
    training seeing, readable with `dcrmodel.fits.model.readDcrModel`); ``coadd.fits`` (plain
    inverse-variance coadd of the training visits with ``DETECTED`` set). Truth files carry
    the visit's expected variance plane and an empty mask.
    """
    target = Path(os.fspath(outDir))
    _checkOutputDirectory(target, bool(overwrite))
    started = _time.monotonic()
    sim = _Simulation(SimulationConfig() if config is None else config, seed)
    total = len(sim.plan) + 2

    def report(message: str, done: int) -> None:
        if progress is not None:
            progress(message, done, total)

    report("rendering the sky", 0)
    renderer = sim.renderer()
    manifest = sim.baseManifest()
    files: list[str] = []
    coadd = _CoaddAccumulator(sim)
    with atomicDirectory(target) as tmp:
        (tmp / "visits").mkdir()
        (tmp / "truth").mkdir()
        for visit in sim.visits(renderer):
            name = f"visit_{visit.id:05d}"
            visitFile = f"visits/{name}.fits"
            staticFile = f"truth/{name}_static.fits"
            writeExposure(visit.exposure, tmp / visitFile)
            writeExposure(visit.truthStatic, tmp / staticFile)
            files += [visitFile, staticFile]
            truthFile = staticFile
            if visit.truth is not visit.truthStatic:
                truthFile = f"truth/{name}_full.fits"
                writeExposure(visit.truth, tmp / truthFile)
                files.append(truthFile)
            record = dict(visit.record, file=visitFile, truth=truthFile, truthStatic=staticFile)
            manifest["visits"].append(record)
            if visit.role == "training":
                coadd.add(visit)
            report(f"visit {len(manifest['visits'])}/{len(sim.plan)}", len(manifest["visits"]))
        model = sim.truthModel(renderer)
        writeDcrModel(model, tmp / "truth" / "model")
        modelFiles = sorted(
            p.relative_to(tmp).as_posix() for p in (tmp / "truth" / "model").iterdir()
        )
        files += modelFiles
        report("truth model", len(sim.plan) + 1)
        writeExposure(coadd.finish(), tmp / "coadd.fits")
        files.append("coadd.fits")
        manifest["coadd"] = {
            "file": "coadd.fits",
            "visits": coadd.visitIds,
            "weights": {str(k): v for k, v in coadd.weights.items()},
        }
        manifest["truthModel"] = {"directory": "truth/model", "files": modelFiles}
        manifest["files"] = files
        manifest["elapsedSeconds"] = round(_time.monotonic() - started, 3)
        with open(tmp / MANIFEST_NAME, "w", encoding="utf-8") as stream:
            json.dump(manifest, stream, indent=1)
            stream.write("\n")
        report("coadd and manifest", total)
    _log.info("simulated %d visits into %s in %.1f s", len(sim.plan), target,
              _time.monotonic() - started)
    return loadManifest(target)


class SimulationManifest(Mapping[str, Any]):
    """A simulation's manifest with the folder it describes (see `loadManifest`).

    Behaves as the manifest's dictionary, plus helpers that return absolute paths.

    Parameters
    ----------
    data : dict
        The manifest.
    directory : pathlib.Path
        The folder holding it.
    """

    def __init__(self, data: dict[str, Any], directory: Path) -> None:
        self._data = data
        self._directory = directory

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def directory(self) -> Path:
        """The simulation folder."""
        return self._directory

    def path(self, relative: str) -> Path:
        """Absolute path of a file named in the manifest."""
        return self._directory / relative

    def visits(self, role: str | None = None) -> list[dict[str, Any]]:
        """Visit entries, optionally of one role (``"training"`` or ``"test"``)."""
        if role is not None and role not in ROLES:
            raise DcrValueError(f"role must be one of {', '.join(ROLES)}", role=role)
        return [v for v in self._data["visits"] if role is None or v["role"] == role]

    def visit(self, visitId: int) -> dict[str, Any]:
        """Return the entry of one visit."""
        for v in self._data["visits"]:
            if v["id"] == visitId:
                return v
        raise DcrValueError("no such visit in the manifest", visit=visitId)

    def visitPaths(self, role: str | None = None) -> list[Path]:
        """Paths of the visit files, optionally of one role."""
        return [self.path(v["file"]) for v in self.visits(role)]

    def transients(self, visitId: int | None = None) -> list[dict[str, Any]]:
        """Injected transients, optionally of one visit."""
        return [t for t in self._data["transients"] if visitId is None or t["visit"] == visitId]

    @property
    def coaddPath(self) -> Path:
        """Path of the plain coadd."""
        return self.path(self._data["coadd"]["file"])

    @property
    def truthModelPath(self) -> Path:
        """Folder of the true subfilter model."""
        return self.path(self._data["truthModel"]["directory"])

    def __repr__(self) -> str:
        return (
            f"SimulationManifest({str(self._directory)!r}, {len(self._data['visits'])} visits, "
            f"seed {self._data['seed']})"
        )


def loadManifest(path: str | os.PathLike) -> SimulationManifest:
    """Read a simulation manifest and check that the files it names exist.

    Parameters
    ----------
    path : str or os.PathLike
        The simulation folder or its ``manifest.json``.

    Returns
    -------
    SimulationManifest

    Raises
    ------
    DcrValueError
        If there is no manifest, it is not a simulation manifest, or it names files that
        do not exist.
    """
    p = Path(os.fspath(path))
    manifestPath = p / MANIFEST_NAME if p.is_dir() else p
    try:
        with open(manifestPath, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        raise DcrValueError(
            f"no simulation manifest at {manifestPath}; run dcrmodel simulate first",
            path=str(manifestPath),
        ) from None
    except (OSError, ValueError) as error:
        raise DcrValueError(
            f"cannot read the manifest {manifestPath}: {error}", path=str(manifestPath)
        ) from None
    if not isinstance(data, dict) or data.get("format") != _MANIFEST_FORMAT:
        raise DcrValueError(
            f"{manifestPath} is not a dcrmodel simulation manifest", path=str(manifestPath)
        )
    directory = manifestPath.parent
    missing = [f for f in data.get("files", []) if not (directory / f).is_file()]
    if missing:
        raise DcrValueError(
            f"the manifest names {len(missing)} file(s) that do not exist in {directory}, "
            f"for example {missing[0]}; the simulation is incomplete or was moved piecemeal, "
            "run dcrmodel simulate again",
            missing=missing[:5],
        )
    return SimulationManifest(data, directory)
