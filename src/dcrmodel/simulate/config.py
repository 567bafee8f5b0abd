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

from .._validate import asFiniteFloat, asPositiveFloat, isNumber
from ..errors import DcrConfigError, DcrTypeError, DcrValueError
from ..image import Filter
from ..physics import Observatory, refraction
from .seeing import AtmosphericPsf
from .spectra import Bandpass

__all__ = ["ROLES", "DETECTOR_FRAME_OPTIONS", "VisitSpec", "SimulationConfig"]

#: Roles of visits: used to build the model (training) or held out (test).
ROLES = ("training", "test")

#: Options of `SimulationConfig` that act only with ``detectorFrames``.
DETECTOR_FRAME_OPTIONS = ("patchScale", "rotations", "offsetFraction", "offsets", "distortion")


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
        Width and height of the field in pixels (one number: a square), >= 32. With
        ``detectorFrames``: of each visit's detector.
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
    detectorFrames : bool
        Render each visit on its own detector grid (`dcrmodel.simulate.frames`): a
        detector of ``size`` pixels centred on the field's centre moved by the visit's
        pointing offset, turned by its rotator angle, optionally distorted. The sources,
        the plain coadd and the true model are on the *patch*: a tangent-plane grid
        centred on the field, ``patchScale`` times the detector's width and height, at
        ``origin`` and ``skyRotation``. False (the default): every visit on the one grid of
        ``size`` pixels, as before; the options below then must keep their defaults.
    patchScale : float
        Width of the patch in detector widths (1 to 4; 1.5: a patch 1.5 times wider and
        taller than a detector).
    rotations : astropy.coordinates.Angle or sequence of Angle, optional
        Rotator angles (``SKY`` convention: the position angle of the detector's +y axis,
        North through East): one for every visit, or one per visit in the plan's order
        (time order; explicit `VisitSpec` visits: their order). None: drawn uniformly in
        [0, 360) deg per visit.
    offsetFraction : float
        Largest pointing offset along each of East and North, as a fraction of the
        detector's width and height (0 to 0.25); offsets are drawn uniformly within it.
    offsets : sequence of (float, float), optional
        Pointing offsets ``(east, north)`` in arcsec, one per visit in the plan's order;
        None: drawn (``offsetFraction``).
    distortion : float
        Radial distortion of every detector, expressed as SIP polynomials: the corners
        move outward by this fraction of their distance from the centre, the plate scale
        changing quadratically with radius (`dcrmodel.simulate.frames.radialSipWcs`;
        -0.05 to 0.05; 0: none).
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

    detectorFrames: bool = False
    patchScale: float = 1.5
    rotations: Any = None
    offsetFraction: float = 0.03
    offsets: Any = None
    distortion: float = 0.0

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

    def numVisits(self) -> int:
        """Return the number of visits: the explicit ones, or training plus test."""
        if self.visits is not None:
            return len(self.visits)
        return _integer(self.numTraining, "numTraining", None) + _integer(
            self.numTest, "numTest", 0)

    def resolvePatchSize(self) -> tuple[int, int]:
        """Return the patch's ``(width, height)`` in pixels.

        With ``detectorFrames``: the detector's size times ``patchScale``, rounded to whole
        pixels; without: the field's size (the visits' grid is the patch).
        """
        width, height = self.resolveSize()
        if not self.detectorFrames:
            return width, height
        scale = _patchScale(self.patchScale)
        return int(round(scale * width)), int(round(scale * height))

    def resolveRotations(self) -> list[float] | None:
        """Return the given rotator angles, one per visit (deg), or None (drawn).

        Raises
        ------
        DcrTypeError
            If an angle is a bare number or not an angle.
        DcrValueError
            If a sequence does not have one angle per visit.
        """
        if self.rotations is None:
            return None
        n = self.numVisits()
        value = self.rotations
        if isinstance(value, u.Quantity) and value.isscalar:
            return [asDegrees(value, "rotations") % 360.0] * n
        if isinstance(value, u.Quantity):
            value = list(value.ravel())
        if isNumber(value):
            asDegrees(value, "rotations")  # a bare number: raises, naming the unit problem
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise DcrTypeError(
                "rotations must be an astropy Angle (for every visit) or a sequence of "
                "angles, one per visit", rotations=value,
            )
        if len(value) != n:
            raise DcrValueError(
                f"rotations has {len(value)} angle(s) for {n} visits; give one angle for "
                "every visit or one per visit", rotations=len(value), visits=n,
            )
        return [asDegrees(angle, f"rotations[{i}]") % 360.0 for i, angle in enumerate(value)]

    def resolveOffsets(self) -> list[tuple[float, float]] | None:
        """Return the given pointing offsets ``(east, north)`` per visit (arcsec), or None.

        Raises
        ------
        DcrTypeError, DcrValueError
            If the offsets are not one finite ``(east, north)`` pair per visit.
        """
        if self.offsets is None:
            return None
        n = self.numVisits()
        try:
            pairs = [tuple(pair) for pair in self.offsets]
        except TypeError:
            raise DcrTypeError(
                "offsets must be a sequence of (east, north) pairs in arcsec, one per visit",
                offsets=self.offsets,
            ) from None
        if len(pairs) != n or any(len(pair) != 2 for pair in pairs):
            raise DcrValueError(
                f"offsets must hold one (east, north) pair in arcsec per visit ({n})",
                offsets=len(pairs),
            )
        return [
            (asFiniteFloat(e, f"offsets[{i}][0]", "arcsec"),
             asFiniteFloat(v, f"offsets[{i}][1]", "arcsec"))
            for i, (e, v) in enumerate(pairs)
        ]

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
        self._validateFrames()

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

    def _validateFrames(self) -> None:
        """Check the detector-frame options (and that they are left alone without them)."""
        if not isinstance(self.detectorFrames, (bool, np.bool_)):
            raise DcrTypeError("detectorFrames must be True or False",
                               detectorFrames=self.detectorFrames)
        if not self.detectorFrames:
            defaults = {f.name: f.default for f in fields(self)
                        if f.name in DETECTOR_FRAME_OPTIONS}
            for name, default in defaults.items():
                value = getattr(self, name)
                same = value is None if default is None else (
                    isinstance(value, (int, float)) and not isinstance(value, bool)
                    and float(value) == default)
                if not same:
                    raise DcrConfigError(
                        f"{name} applies to detector-frame visits only; set "
                        "detectorFrames=True or leave it at its default",
                        **{name: value},
                    )
            return
        _patchScale(self.patchScale)
        fraction = asFiniteFloat(self.offsetFraction, "offsetFraction", "fraction")
        if not 0.0 <= fraction <= 0.25:
            raise DcrValueError(
                "offsetFraction must be in [0, 0.25] (a fraction of the detector's size)",
                offsetFraction=fraction,
            )
        k = asFiniteFloat(self.distortion, "distortion", "fraction of the corner radius")
        if abs(k) > 0.05:
            raise DcrValueError("distortion must be within [-0.05, 0.05]", distortion=k)
        self.resolveRotations()
        offsets = self.resolveOffsets()
        if offsets is not None:
            width, height = self.resolvePatchSize()
            scale = float(self.pixelScale)
            limit = (0.5 * width * scale, 0.5 * height * scale)
            for i, (east, north) in enumerate(offsets):
                if abs(east) > limit[0] or abs(north) > limit[1]:
                    raise DcrValueError(
                        f"offsets[{i}] moves the detector's centre off the patch (at most "
                        f"{limit[0]:g} arcsec East-West and {limit[1]:g} North-South)",
                        offset=(east, north),
                    )

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready description (angles in degrees, times in ISO UTC).

        The detector-frame options appear only with ``detectorFrames``.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in DETECTOR_FRAME_OPTIONS + ("detectorFrames",) and not self.detectorFrames:
                continue
            if f.name == "rotations":
                value = self.resolveRotations()
            elif f.name == "offsets":
                value = None if value is None else [list(p) for p in self.resolveOffsets()]
            elif f.name == "band":
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


def _patchScale(value: Any) -> float:
    scale = asFiniteFloat(value, "patchScale", "detector widths")
    if not 1.0 <= scale <= 4.0:
        raise DcrValueError(
            "patchScale must be in [1, 4] (the patch's width in detector widths)",
            patchScale=scale,
        )
    return scale


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
