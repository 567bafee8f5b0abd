"""Synthetic skies with known truth: stars and galaxies observed through a refracting atmosphere.

The simulator renders every source through the band at fine wavelength resolution: the
band is sampled at many wavelengths (14 per intended subfilter by default, 42 for three
subfilters), each sample weighted by the bandpass and by the source's own spectrum, and
each displaced by its own differential refraction (Stone 1996, `dcrmodel.refraction`) at
the visit's elevation, relative to the band's effective wavelength, along the zenith
direction measured through the exposure's WCS (`dcrmodel.dcr.zenithDirection`). The
subfilter model of `dcrmodel.model.DcrModel` is therefore tested against a continuous
truth, not against its own approximation.

Rendering is done in Fourier space, where it is exact up to the Nyquist frequency: for a
visit,

    FT(visit) = sum_lambda FT(sky_lambda) * exp(-2 pi i f . d_lambda) * OTF_lambda(f) * P(f)

with ``sky_lambda`` the sum of the sources' analytic profiles (points, elliptical
exponential discs, elliptical Gaussian bulges) at their sub-pixel positions weighted by
their photon spectra, ``d_lambda`` the refraction displacement, ``OTF_lambda`` the
transfer function of the seeing (Gaussian, Moffat or Kolmogorov, optionally scaling with
wavelength as ``lambda ** alpha``) and ``P(f) = sinc(fx) sinc(fy)`` the response of square
pixels. The grid is padded so that no light wraps around. The transform of the static sky
at each wavelength is computed once and shared by every visit.

On top of the static sky: per-visit noise (sky plus source, Gaussian with the Poisson
variance, and the matching variance plane), mask defects in some visits (bad columns,
cosmic rays, a saturated core with its bleed trail, flagged BAD, CR and SAT and corrupted
as in real data), and optional transients (new point sources) in chosen visits. Visits
follow a field through one or more nights so that airmass and parallactic angle vary
naturally on both sides of the meridian; their `VisitInfo` comes from astropy.

`runSimulation` writes Rubin-layout exposures of every visit, noiseless truth images,
the true subfilter model, a plain inverse-variance coadd of the training visits and a
manifest (``manifest.json``) describing all of it.

References
----------
R. C. Stone, 1996, PASP 108, 1051 (refraction).
D. L. Fried, 1966, JOSA 56, 1372; F. Roddier, 1981, Progress in Optics 19, 281 (the
long-exposure transfer function of Kolmogorov turbulence, ``exp(-3.44 (lambda f / r0)^(5/3))``,
and its FWHM ``0.976 lambda / r0``).
A. F. J. Moffat, 1969, A&A 3, 455 (the Moffat profile).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from scipy import fft as sfft
from scipy import special

from .errors import DcrTypeError, DcrValueError

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
    "wavelengthDisplacements",
    "meanWavelength",
    "PSF_PROFILES",
    "COLOUR_CLASSES",
]

_log = logging.getLogger(__name__)

#: Radiation constant hc/k in nm K (CODATA 2018: h c / k_B = 1.438776877e-2 m K).
_HC_OVER_K = 1.438776877e7

#: Seeing profiles that `AtmosphericPsf` knows.
PSF_PROFILES = ("gaussian", "moffat", "kolmogorov")

#: FWHM of a Gaussian in units of its standard deviation, 2 sqrt(2 ln 2).
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Kolmogorov long-exposure PSF: FWHM = 0.976 lambda / r0 and
#: OTF(f) = exp(-3.44 (lambda f / r0)^(5/3)) (Fried 1966; Roddier 1981).
_KOLMOGOROV_FWHM = 0.976
_KOLMOGOROV_COEFF = 3.44


def _finite(value: Any, name: str, unit: str) -> float:
    """Return ``value`` as a finite float or raise a clear error naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value})
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value}) from None
    if not math.isfinite(out):
        raise DcrValueError(f"{name} must be finite ({unit})", **{name: value})
    return out


def _positive(value: Any, name: str, unit: str, allowZero: bool = False) -> float:
    out = _finite(value, name, unit)
    if out < 0.0 or (out == 0.0 and not allowZero):
        relation = "non-negative" if allowZero else "positive"
        raise DcrValueError(f"{name} must be {relation} ({unit}); got {out:g}", **{name: value})
    return out


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
# Spectra
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlackbodySpectrum:
    """Photon spectrum of a blackbody.

    Parameters
    ----------
    temperature : float
        Temperature in K (stars: 3000-30000 K).

    Notes
    -----
    A detector counts photons, so the weight of a wavelength is the photon flux density
    ``B_lambda(T) lambda / (h c)``, proportional to ``lambda**-4 / (exp(hc / lambda k T) - 1)``
    (Planck's law). Only relative values matter: fluxes are normalised over the band.
    """

    temperature: float

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "temperature", _positive(self.temperature, "temperature", "K")
        )

    def photonDensity(self, wavelength: Any) -> np.ndarray:
        """Relative photon flux per unit wavelength at ``wavelength`` (nm)."""
        wl = np.asarray(wavelength, dtype=np.float64)
        x = _HC_OVER_K / (wl * self.temperature)
        # Normalised at 500 nm so that values stay near unity for every temperature.
        x0 = _HC_OVER_K / (500.0 * self.temperature)
        return (500.0 / wl) ** 4 * np.expm1(x0) / np.expm1(x)

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {"kind": "blackbody", "temperature": self.temperature}


@dataclass(frozen=True)
class PowerLawSpectrum:
    """Photon spectrum that is a power law of wavelength.

    Parameters
    ----------
    index : float
        Exponent ``p`` of the photon flux density ``N_lambda ~ (lambda / 500 nm) ** p``
        (dimensionless). A flat ``f_nu`` spectrum has ``p = -1``; blue star-forming discs
        have ``p`` around -2 to 0, red old bulges around 2 to 4.
    """

    index: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", _finite(self.index, "index", "dimensionless"))

    def photonDensity(self, wavelength: Any) -> np.ndarray:
        """Relative photon flux per unit wavelength at ``wavelength`` (nm)."""
        wl = np.asarray(wavelength, dtype=np.float64)
        return (wl / 500.0) ** self.index

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {"kind": "powerLaw", "index": self.index}


# --------------------------------------------------------------------------------------
# Bandpass
# --------------------------------------------------------------------------------------


class Bandpass:
    """Transmission of a photometric band: a top hat or a tabulated curve.

    Use `Bandpass.topHat` (effective wavelength and bandwidth) or `Bandpass.curve`
    (wavelengths and throughputs); `Bandpass.fromFilter` turns a `dcrmodel.image.Filter`
    into a top hat.

    Parameters
    ----------
    name : str
        Band name written to the files (``FILTER``).
    wavelength : numpy.ndarray
        Tabulated wavelengths in nm, increasing.
    throughput : numpy.ndarray
        Transmission at ``wavelength`` (dimensionless, >= 0), linearly interpolated
        between the samples and zero outside them.
    effectiveWavelength : float
        Effective wavelength of the band (nm), used as the refraction reference and as the
        `Filter`'s effective wavelength.
    bandwidth : float
        Width of the band (nm) for the `Filter` and the subfilters.
    isTopHat : bool
        Whether the band is a top hat (then the curve is exactly its two edges).
    """

    def __init__(
        self,
        name: str,
        wavelength: np.ndarray,
        throughput: np.ndarray,
        effectiveWavelength: float,
        bandwidth: float,
        isTopHat: bool = False,
    ) -> None:
        self._name = str(name)
        self._wavelength = np.asarray(wavelength, dtype=np.float64)
        self._throughput = np.asarray(throughput, dtype=np.float64)
        self._effectiveWavelength = float(effectiveWavelength)
        self._bandwidth = float(bandwidth)
        self._isTopHat = bool(isTopHat)
        nonzero = np.flatnonzero(self._throughput > 0.0)
        self._support = (
            float(self._wavelength[max(nonzero[0] - 1, 0)]),
            float(self._wavelength[min(nonzero[-1] + 1, self._wavelength.size - 1)]),
        )
        if self._isTopHat:
            self._support = (float(self._wavelength[0]), float(self._wavelength[-1]))

    @classmethod
    def topHat(cls, effectiveWavelength: float, bandwidth: float, name: str = "custom") -> Bandpass:
        """Return a top-hat band of full transmission over ``effectiveWavelength -/+ bandwidth/2``.

        Parameters
        ----------
        effectiveWavelength : float
            Centre of the band in nm.
        bandwidth : float
            Full width of the band in nm.
        name : str, optional
            Band name.

        Raises
        ------
        DcrValueError
            If a wavelength is not positive or the band reaches zero wavelength.
        """
        eff = _positive(effectiveWavelength, "effectiveWavelength", "nm")
        bw = _positive(bandwidth, "bandwidth", "nm")
        if bw >= 2.0 * eff:
            raise DcrValueError(
                "bandwidth must be less than twice the effective wavelength; check the units "
                "(nm)",
                effectiveWavelength=eff,
                bandwidth=bw,
            )
        edges = np.array([eff - bw / 2.0, eff + bw / 2.0])
        return cls(name, edges, np.ones(2), eff, bw, isTopHat=True)

    @classmethod
    def fromFilter(cls, filterInfo: Any) -> Bandpass:
        """Return the top hat of a `dcrmodel.image.Filter`."""
        from .image import Filter

        if not isinstance(filterInfo, Filter):
            raise DcrTypeError("fromFilter needs a dcrmodel Filter", filterInfo=filterInfo)
        return cls.topHat(filterInfo.effectiveWavelength, filterInfo.bandwidth, filterInfo.bandName)

    @classmethod
    def curve(
        cls,
        wavelength: Any,
        throughput: Any,
        name: str = "custom",
        effectiveWavelength: float | None = None,
        bandwidth: float | None = None,
    ) -> Bandpass:
        """Return a band from a tabulated transmission curve.

        Parameters
        ----------
        wavelength : array_like
            Wavelengths in nm, strictly increasing, at least 2.
        throughput : array_like
            Transmission at each wavelength (dimensionless, >= 0, not all zero).
        name : str, optional
            Band name.
        effectiveWavelength : float, optional
            Effective wavelength in nm; default: the transmission-weighted mean wavelength
            ``int lambda T dlambda / int T dlambda``.
        bandwidth : float, optional
            Band width in nm; default: the equivalent width ``int T dlambda / max T``.

        Raises
        ------
        DcrValueError
            For non-increasing wavelengths, negative or non-finite throughputs, a curve
            with no transmission, or mismatched lengths.
        """
        wl = np.asarray(wavelength, dtype=np.float64)
        tp = np.asarray(throughput, dtype=np.float64)
        if wl.ndim != 1 or tp.shape != wl.shape or wl.size < 2:
            raise DcrValueError(
                "wavelength and throughput must be 1-d arrays of the same length (>= 2)",
                wavelengthShape=wl.shape,
                throughputShape=tp.shape,
            )
        if not (np.all(np.isfinite(wl)) and np.all(np.isfinite(tp))):
            raise DcrValueError("the transmission curve has NaN or infinite values")
        if np.any(np.diff(wl) <= 0.0):
            raise DcrValueError("curve wavelengths must be strictly increasing (nm)")
        if np.any(wl <= 0.0):
            raise DcrValueError("curve wavelengths must be positive (nm)", minimum=float(wl[0]))
        if np.any(tp < 0.0):
            raise DcrValueError(
                "throughput must be non-negative", minimum=float(tp.min())
            )
        area = float(np.trapezoid(tp, wl))
        if not area > 0.0:
            raise DcrValueError("the transmission curve transmits no light (all zero)")
        eff = (
            float(np.trapezoid(tp * wl, wl)) / area
            if effectiveWavelength is None
            else _positive(effectiveWavelength, "effectiveWavelength", "nm")
        )
        bw = (
            area / float(tp.max())
            if bandwidth is None
            else _positive(bandwidth, "bandwidth", "nm")
        )
        return cls(name, wl, tp, eff, bw, isTopHat=False)

    @property
    def name(self) -> str:
        """Band name."""
        return self._name

    @property
    def effectiveWavelength(self) -> float:
        """Effective wavelength (nm)."""
        return self._effectiveWavelength

    @property
    def bandwidth(self) -> float:
        """Band width (nm)."""
        return self._bandwidth

    @property
    def isTopHat(self) -> bool:
        """Whether the band is a top hat."""
        return self._isTopHat

    @property
    def support(self) -> tuple[float, float]:
        """Bluest and reddest wavelengths (nm) where the band transmits."""
        return self._support

    def throughput(self, wavelength: Any) -> np.ndarray:
        """Transmission at ``wavelength`` (nm): linear interpolation, zero outside."""
        wl = np.asarray(wavelength, dtype=np.float64)
        if self._isTopHat:
            lo, hi = self._support
            return np.where((wl >= lo) & (wl <= hi), 1.0, 0.0)
        return np.interp(wl, self._wavelength, self._throughput, left=0.0, right=0.0)

    def toFilter(self) -> Any:
        """Return the `dcrmodel.image.Filter` (name, effective wavelength, bandwidth)."""
        from .image import Filter

        return Filter(self._name, self._effectiveWavelength, self._bandwidth)

    def subfilterEdges(self, numSubfilters: int) -> np.ndarray:
        """Edges (nm) of ``numSubfilters`` equal subfilters of the `Filter` (primer)."""
        lo = self._effectiveWavelength - self._bandwidth / 2.0
        return lo + self._bandwidth * np.arange(numSubfilters + 1) / numSubfilters

    def sample(
        self, numSubfilters: int = 3, samplesPerSubfilter: int = 14
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample the band for the wavelength integration.

        Parameters
        ----------
        numSubfilters : int, optional
            Number of subfilters the samples are grouped into.
        samplesPerSubfilter : int, optional
            Midpoint samples per subfilter.

        Returns
        -------
        wavelengths : numpy.ndarray
            Sample wavelengths (nm), increasing.
        weights : numpy.ndarray
            Transmission times the wavelength interval of each sample (nm): the midpoint
            rule for ``int T(lambda) S(lambda) dlambda``.
        subfilter : numpy.ndarray
            Index of the subfilter each sample belongs to.

        Notes
        -----
        A top hat is sampled at the midpoints of ``samplesPerSubfilter`` equal intervals of
        each subfilter, so each subfilter holds exactly its own light. A curve is sampled
        at ``numSubfilters * samplesPerSubfilter`` midpoints of its whole support; samples
        outside the `Filter` range (``effectiveWavelength -/+ bandwidth / 2``) are
        attributed to the nearest end subfilter.
        """
        n = int(numSubfilters) * int(samplesPerSubfilter)
        if self._isTopHat:
            edges = self.subfilterEdges(int(numSubfilters))
            width = (edges[1] - edges[0]) / samplesPerSubfilter
            wavelengths = edges[0] + width * (np.arange(n) + 0.5)
            weights = np.full(n, width)
            subfilter = np.repeat(np.arange(int(numSubfilters)), int(samplesPerSubfilter))
            return wavelengths, weights, subfilter
        lo, hi = self._support
        width = (hi - lo) / n
        wavelengths = lo + width * (np.arange(n) + 0.5)
        weights = self.throughput(wavelengths) * width
        edges = self.subfilterEdges(int(numSubfilters))
        subfilter = np.clip(
            np.searchsorted(edges, wavelengths, side="right") - 1, 0, int(numSubfilters) - 1
        )
        return wavelengths, weights, subfilter

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        out: dict[str, Any] = {
            "name": self._name,
            "kind": "topHat" if self._isTopHat else "curve",
            "effectiveWavelength": self._effectiveWavelength,
            "bandwidth": self._bandwidth,
            "support": list(self._support),
        }
        if not self._isTopHat:
            out["wavelength"] = self._wavelength.tolist()
            out["throughput"] = self._throughput.tolist()
        return out

    def __repr__(self) -> str:
        kind = "topHat" if self._isTopHat else "curve"
        return (
            f"Bandpass({self._name!r}, {kind}, effectiveWavelength={self._effectiveWavelength:.2f} "
            f"nm, bandwidth={self._bandwidth:.2f} nm)"
        )


# --------------------------------------------------------------------------------------
# Source profiles (Fourier transforms, frequencies in cycles per pixel)
# --------------------------------------------------------------------------------------


def _ellipticalRadius(
    fx: np.ndarray, fy: np.ndarray, major: float, minor: float, positionAngle: float
) -> np.ndarray:
    """``|A^T f|`` for the ellipse ``A = R(theta) diag(major, minor)`` (pixels, degrees).

    A profile ``g(|A^-1 x|) / det A`` has the transform ``g_hat(|A^T f|)``.
    """
    theta = math.radians(positionAngle)
    c, s = math.cos(theta), math.sin(theta)
    along = major * (c * fx + s * fy)
    across = minor * (-s * fx + c * fy)
    return np.sqrt(along * along + across * across)


@dataclass(frozen=True)
class PointProfile:
    """A point source (unresolved): its transform is 1."""

    def transform(self, fx: np.ndarray, fy: np.ndarray) -> np.ndarray | float:
        """Fourier transform at frequencies ``fx, fy`` (cycles per pixel); unit flux."""
        return 1.0

    @property
    def halfLightRadius(self) -> float:
        """Radius enclosing half the light (pixels): 0."""
        return 0.0

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {"kind": "point"}


@dataclass(frozen=True)
class ExponentialProfile:
    """An elliptical exponential disc, ``I ~ exp(-r)`` with ``r`` the elliptical radius.

    Parameters
    ----------
    scaleLength : float
        Scale length along the major axis (pixels).
    axisRatio : float, optional
        Minor over major axis, in (0, 1].
    positionAngle : float, optional
        Angle of the major axis from the +x pixel axis toward +y, in degrees (a
        pixel-frame shape parameter).

    Notes
    -----
    The transform of the unit-flux circular disc of scale ``h`` is
    ``(1 + (2 pi h k)^2)^(-3/2)``; the half-light radius is ``1.6783 h``.
    """

    scaleLength: float
    axisRatio: float = 1.0
    positionAngle: float = 0.0

    def __post_init__(self) -> None:
        scale = _positive(self.scaleLength, "scaleLength", "pixels")
        object.__setattr__(self, "scaleLength", scale)
        _checkAxisRatio(self.axisRatio)
        angle = _finite(self.positionAngle, "positionAngle", "deg")
        object.__setattr__(self, "positionAngle", angle)

    def transform(self, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
        """Fourier transform at frequencies ``fx, fy`` (cycles per pixel); unit flux."""
        k = _ellipticalRadius(
            fx, fy, self.scaleLength, self.scaleLength * self.axisRatio, self.positionAngle
        )
        return (1.0 + (2.0 * np.pi * k) ** 2) ** -1.5

    @property
    def halfLightRadius(self) -> float:
        """Half-light radius along the major axis (pixels)."""
        return 1.678347 * self.scaleLength

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "kind": "exponential",
            "scaleLength": self.scaleLength,
            "axisRatio": self.axisRatio,
            "positionAngle": self.positionAngle,
        }


@dataclass(frozen=True)
class GaussianProfile:
    """An elliptical Gaussian (a Sersic profile of index 1/2), for compact bulges.

    Parameters
    ----------
    sigma : float
        Standard deviation along the major axis (pixels).
    axisRatio : float, optional
        Minor over major axis, in (0, 1].
    positionAngle : float, optional
        Angle of the major axis from the +x pixel axis toward +y, in degrees.
    """

    sigma: float
    axisRatio: float = 1.0
    positionAngle: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma", _positive(self.sigma, "sigma", "pixels"))
        _checkAxisRatio(self.axisRatio)
        angle = _finite(self.positionAngle, "positionAngle", "deg")
        object.__setattr__(self, "positionAngle", angle)

    def transform(self, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
        """Fourier transform at frequencies ``fx, fy`` (cycles per pixel); unit flux."""
        k = _ellipticalRadius(fx, fy, self.sigma, self.sigma * self.axisRatio, self.positionAngle)
        return np.exp(-2.0 * (np.pi * k) ** 2)

    @property
    def halfLightRadius(self) -> float:
        """Half-light radius along the major axis (pixels): ``sqrt(2 ln 2) sigma``."""
        return math.sqrt(2.0 * math.log(2.0)) * self.sigma

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "kind": "gaussian",
            "sigma": self.sigma,
            "axisRatio": self.axisRatio,
            "positionAngle": self.positionAngle,
        }


def _checkAxisRatio(value: Any) -> None:
    q = _finite(value, "axisRatio", "dimensionless")
    if not 0.0 < q <= 1.0:
        raise DcrValueError("axisRatio must be in (0, 1] (minor over major axis)", axisRatio=value)


Profile = PointProfile | ExponentialProfile | GaussianProfile
Spectrum = BlackbodySpectrum | PowerLawSpectrum


@dataclass(frozen=True)
class SourceComponent:
    """One component of a source: a profile, a spectrum and a flux.

    Parameters
    ----------
    profile : PointProfile, ExponentialProfile or GaussianProfile
        Spatial profile (unit flux).
    spectrum : BlackbodySpectrum or PowerLawSpectrum
        Photon spectrum.
    flux : float
        Counts collected over the whole band in one visit (>= 0).
    """

    profile: Profile
    spectrum: Spectrum
    flux: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "flux", _positive(self.flux, "flux", "counts", allowZero=True))
        if not isinstance(self.profile, (PointProfile, ExponentialProfile, GaussianProfile)):
            raise DcrTypeError("profile must be a Point, Exponential or Gaussian profile",
                               profile=self.profile)
        if not isinstance(self.spectrum, (BlackbodySpectrum, PowerLawSpectrum)):
            raise DcrTypeError("spectrum must be a Blackbody or PowerLaw spectrum",
                               spectrum=self.spectrum)

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        return {
            "profile": self.profile.describe(),
            "spectrum": self.spectrum.describe(),
            "flux": self.flux,
        }


#: Colour classes of sources, used to split template residuals.
COLOUR_CLASSES = ("blueStar", "redStar", "galaxy", "transient")


@dataclass(frozen=True)
class Source:
    """A source of the sky: position and components.

    Parameters
    ----------
    id : int
        Identifier.
    x, y : float
        Position in parent pixel coordinates (0-based, pixel centres at integers).
    kind : str
        ``"star"``, ``"galaxy"`` or ``"transient"``.
    colourClass : str
        ``"blueStar"``, ``"redStar"``, ``"galaxy"`` or ``"transient"``.
    components : tuple of SourceComponent
        Its components (one for stars; disc and bulge for galaxies).
    """

    id: int
    x: float
    y: float
    kind: str
    colourClass: str
    components: tuple[SourceComponent, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _finite(self.x, "x", "pixels"))
        object.__setattr__(self, "y", _finite(self.y, "y", "pixels"))
        object.__setattr__(self, "components", tuple(self.components))
        if not self.components:
            raise DcrValueError("a source needs at least one component", id=self.id)
        if self.colourClass not in COLOUR_CLASSES:
            raise DcrValueError(
                f"colourClass must be one of {', '.join(COLOUR_CLASSES)}",
                colourClass=self.colourClass,
            )

    @property
    def flux(self) -> float:
        """Total counts over the band (sum of the components)."""
        return float(sum(c.flux for c in self.components))

    @property
    def halfLightRadius(self) -> float:
        """Largest half-light radius of the components (pixels); 0 for points."""
        return max(c.profile.halfLightRadius for c in self.components)

    @property
    def extent(self) -> float:
        """Radius (pixels) beyond which the source's own light is negligible, before seeing."""
        radius = 0.0
        for c in self.components:
            if isinstance(c.profile, ExponentialProfile):
                radius = max(radius, 10.0 * c.profile.scaleLength)
            elif isinstance(c.profile, GaussianProfile):
                radius = max(radius, 5.0 * c.profile.sigma)
        return radius


def meanWavelength(source: Source, bandpass: Bandpass, numSamples: int = 200) -> float:
    """Photon-weighted mean wavelength (nm) of a source through a band: its colour."""
    lo, hi = bandpass.support
    wl = lo + (hi - lo) * (np.arange(numSamples) + 0.5) / numSamples
    tp = bandpass.throughput(wl)
    total = np.zeros_like(wl)
    for c in source.components:
        density = c.spectrum.photonDensity(wl) * tp
        norm = density.sum()
        if norm > 0.0:
            total += c.flux * density / norm
    return float((total * wl).sum() / total.sum()) if total.sum() > 0.0 else float("nan")


# --------------------------------------------------------------------------------------
# Seeing
# --------------------------------------------------------------------------------------


class AtmosphericPsf:
    """A circular seeing profile whose size may scale with wavelength.

    Parameters
    ----------
    profile : str
        ``"gaussian"``, ``"moffat"`` or ``"kolmogorov"`` (long-exposure Kolmogorov
        turbulence, the physical seeing).
    fwhm : float
        FWHM at ``effectiveWavelength`` in pixels (> 0).
    effectiveWavelength : float
        Wavelength (nm) at which the size is ``fwhm``.
    alpha : float, optional
        Chromatic exponent: ``fwhm(lambda) = fwhm * (lambda / effectiveWavelength) ** alpha``
        (-0.2 for Kolmogorov turbulence; 0: achromatic).
    beta : float, optional
        Moffat index (> 1); only for ``"moffat"``.

    Notes
    -----
    Transfer functions (``k`` in cycles per pixel, ``w`` the FWHM in pixels):

    - Gaussian: ``exp(-2 pi^2 sigma^2 k^2)``, ``sigma = w / 2.3548``.
    - Moffat ``(1 + r^2/a^2)^-beta``: ``2 (pi a k)^nu K_nu(2 pi a k) / Gamma(nu)`` with
      ``nu = beta - 1`` and ``a = w / (2 sqrt(2^(1/beta) - 1))`` (the Hankel transform of the
      profile).
    - Kolmogorov: ``exp(-3.44 (k w / 0.976)^(5/3))`` (Fried 1966; Roddier 1981).

    The pixel response is not part of the PSF's transfer function; `computeKernelImage`
    includes it, as the PSF HDU of the files requires.
    """

    def __init__(
        self,
        profile: str,
        fwhm: float,
        effectiveWavelength: float,
        alpha: float = 0.0,
        beta: float = 3.5,
    ) -> None:
        if profile not in PSF_PROFILES:
            raise DcrValueError(
                f"unknown PSF profile {profile!r}; use one of {', '.join(PSF_PROFILES)}",
                profile=profile,
            )
        self._profile = profile
        self._fwhm = _positive(fwhm, "fwhm", "pixels")
        self._effectiveWavelength = _positive(effectiveWavelength, "effectiveWavelength", "nm")
        self._alpha = _finite(alpha, "alpha", "dimensionless")
        if not -1.0 <= self._alpha <= 1.0:
            raise DcrValueError("alpha must be in [-1, 1] (-0.2 for Kolmogorov seeing)",
                                alpha=alpha)
        self._beta = _finite(beta, "beta", "dimensionless")
        if self._beta <= 1.0:
            raise DcrValueError("the Moffat beta must be > 1 (finite flux)", beta=beta)

    @property
    def profile(self) -> str:
        """Profile name."""
        return self._profile

    @property
    def fwhm(self) -> float:
        """FWHM at the effective wavelength (pixels)."""
        return self._fwhm

    @property
    def alpha(self) -> float:
        """Chromatic exponent of the size."""
        return self._alpha

    @property
    def beta(self) -> float:
        """Moffat index."""
        return self._beta

    @property
    def effectiveWavelength(self) -> float:
        """Wavelength (nm) at which the size is `fwhm`."""
        return self._effectiveWavelength

    def computeFwhm(self, wavelength: float | None = None) -> float:
        """FWHM (pixels) at ``wavelength`` (nm; None: the effective wavelength)."""
        if wavelength is None or self._alpha == 0.0:
            return self._fwhm
        return self._fwhm * (float(wavelength) / self._effectiveWavelength) ** self._alpha

    def transfer(self, k: np.ndarray, wavelength: float | None = None) -> np.ndarray:
        """Optical transfer function at radial frequency ``k`` (cycles per pixel).

        Parameters
        ----------
        k : numpy.ndarray
            Radial spatial frequency, cycles per pixel (>= 0).
        wavelength : float, optional
            Wavelength in nm (None: the effective wavelength).

        Returns
        -------
        numpy.ndarray
            Transfer function (1 at ``k = 0``), same shape as ``k``.
        """
        w = self.computeFwhm(wavelength)
        k = np.asarray(k, dtype=np.float64)
        if self._profile == "gaussian":
            sigma = w / _FWHM_PER_SIGMA
            return np.exp(-2.0 * (np.pi * sigma) ** 2 * (k * k))
        if self._profile == "kolmogorov":
            return np.exp(-_KOLMOGOROV_COEFF * (k * (w / _KOLMOGOROV_FWHM)) ** (5.0 / 3.0))
        nu = self._beta - 1.0
        a = w / (2.0 * math.sqrt(2.0 ** (1.0 / self._beta) - 1.0))
        x = 2.0 * np.pi * a * k
        out = np.ones_like(x)
        positive = x > 1e-12
        xp = x[positive]
        with np.errstate(under="ignore"):
            out[positive] = 2.0 * (xp / 2.0) ** nu * special.kv(nu, xp) / special.gamma(nu)
        return out

    def kernelRadius(self, wavelength: float | None = None) -> int:
        """Half-width (pixels) of the stamp holding the PSF's light (~99.5 % or more)."""
        w = self.computeFwhm(wavelength)
        factor = {"gaussian": 2.5, "moffat": 5.0, "kolmogorov": 5.0}[self._profile]
        return max(int(math.ceil(factor * w)), 3)

    def computeKernelImage(self, wavelength: float | None = None, size: int | None = None
                           ) -> np.ndarray:
        """Return the PSF image, pixel response included, odd and centred, unit sum.

        Parameters
        ----------
        wavelength : float, optional
            Wavelength in nm (None: the effective wavelength).
        size : int, optional
            Odd stamp width (pixels); default ``2 * kernelRadius + 1`` at the largest size
            the band reaches.

        Returns
        -------
        numpy.ndarray
            The kernel: the PSF convolved with a square pixel, sampled at pixel centres
            (computed by an inverse FFT of the transfer function on a grid four times the
            stamp) and normalised to unit sum over the stamp.
        """
        if size is None:
            size = 2 * self.kernelRadius(wavelength) + 1
        size = int(size)
        if size < 1 or size % 2 == 0:
            raise DcrValueError("the PSF stamp size must be a positive odd integer", size=size)
        m = sfft.next_fast_len(max(4 * size, 64), real=True)
        fy = sfft.fftfreq(m)
        fx = sfft.rfftfreq(m)
        k = np.hypot(fy[:, None], fx[None, :])
        otf = self.transfer(k, wavelength) * (np.sinc(fy)[:, None] * np.sinc(fx)[None, :])
        full = sfft.irfft2(otf, s=(m, m))
        full = np.roll(full, (size // 2, size // 2), axis=(0, 1))[:size, :size]
        return full / full.sum()

    def toImagePsf(self, size: int | None = None) -> Any:
        """Return a `dcrmodel.image.ImagePsf` of the kernel at the effective wavelength."""
        from .image import ImagePsf

        return ImagePsf(
            self.computeKernelImage(size=size),
            alpha=self._alpha,
            effectiveWavelength=self._effectiveWavelength,
            fwhm=self._fwhm,
        )

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description."""
        out = {"profile": self._profile, "fwhm": self._fwhm, "alpha": self._alpha,
               "effectiveWavelength": self._effectiveWavelength}
        if self._profile == "moffat":
            out["beta"] = self._beta
        return out

    def __repr__(self) -> str:
        return (
            f"AtmosphericPsf({self._profile!r}, fwhm={self._fwhm:.3f} px, alpha={self._alpha:g})"
        )


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def _componentWeights(
    sources: Sequence[Source], wavelengths: np.ndarray, bandWeights: np.ndarray
) -> tuple[list[tuple[float, float, Profile]], np.ndarray]:
    """Flatten sources into components and their counts at each wavelength sample.

    Returns the components ``(x, y, profile)`` and ``W`` of shape ``(nWavelength,
    nComponent)``: counts of each component in each sample, summing to its flux.
    """
    components: list[tuple[float, float, Profile]] = []
    columns: list[np.ndarray] = []
    for source in sources:
        for c in source.components:
            density = c.spectrum.photonDensity(wavelengths) * bandWeights
            total = density.sum()
            if not (total > 0.0 and np.all(np.isfinite(density))):
                raise DcrValueError(
                    "a source's spectrum gives no light in this band; check its spectrum",
                    id=source.id,
                    spectrum=c.spectrum,
                )
            components.append((source.x, source.y, c.profile))
            columns.append(c.flux * density / total)
    if not columns:
        return components, np.zeros((wavelengths.size, 0))
    return components, np.stack(columns, axis=1)


class FourierSkyRenderer:
    """Render a static sky through DCR and seeing, exactly, in Fourier space.

    The transform of the sky at each wavelength sample is computed once at construction;
    each `render` call then costs one multiply-accumulate per wavelength sample on the
    padded half-plane grid and one inverse real FFT.

    Parameters
    ----------
    sources : sequence of Source
        The sources (parent pixel positions).
    bbox : dcrmodel.image.Box
        The region to render (parent pixels).
    wavelengths : numpy.ndarray
        Wavelength samples (nm).
    bandWeights : numpy.ndarray
        Bandpass weight of each sample (transmission times interval, nm).
    padding : int
        Pixels of padding on every side: at least the largest displacement plus the
        extent of the PSF and of the sources, so that no light wraps around.
    maxMemory : float, optional
        Bytes the wavelength cube may use; larger requests raise before any work.

    Raises
    ------
    DcrValueError
        If the padding is negative, the samples and weights disagree, or the cube would
        exceed ``maxMemory``.

    Notes
    -----
    A source component at ``(x, y)`` with unit-flux profile transform ``g(f)`` contributes
    ``w(lambda) g(f) exp(-2 pi i (fx u + fy v))`` (``u, v`` its position on the padded grid)
    to the sky at wavelength ``lambda``. A displacement ``d`` multiplies by
    ``exp(-2 pi i f . d)``, the seeing by its transfer function at that wavelength and the
    pixels by ``sinc(fx) sinc(fy)``. Sampling at pixel centres equals pixel integration of
    the band-limited image; the power beyond the Nyquist frequency is not folded back
    (below 1e-3 of the total for FWHM >= 3 pixels).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        bbox: Any,
        wavelengths: np.ndarray,
        bandWeights: np.ndarray,
        padding: int,
        maxMemory: float = 2.0e9,
    ) -> None:
        wavelengths = np.asarray(wavelengths, dtype=np.float64)
        bandWeights = np.asarray(bandWeights, dtype=np.float64)
        if wavelengths.ndim != 1 or wavelengths.shape != bandWeights.shape or wavelengths.size == 0:
            raise DcrValueError(
                "wavelengths and bandWeights must be 1-d arrays of the same, nonzero length",
                wavelengths=wavelengths.shape,
                bandWeights=bandWeights.shape,
            )
        padding = int(padding)
        if padding < 0:
            raise DcrValueError("padding must be >= 0 pixels", padding=padding)
        self._bbox = bbox
        self._padding = padding
        ny, nx = bbox.height, bbox.width
        self._shapeFull = (
            sfft.next_fast_len(ny + 2 * padding, real=True),
            sfft.next_fast_len(nx + 2 * padding, real=True),
        )
        nyFull, nxFull = self._shapeFull
        nxHalf = nxFull // 2 + 1
        cubeBytes = wavelengths.size * nyFull * nxHalf * 8
        if cubeBytes > maxMemory:
            raise DcrValueError(
                f"rendering needs {cubeBytes / 1e9:.1f} GB for the wavelength cube, more than "
                f"the allowed {maxMemory / 1e9:.1f} GB; simulate a smaller field or fewer "
                "wavelength samples",
                shape=(nyFull, nxFull),
                numWavelengths=wavelengths.size,
            )
        self._wavelengths = wavelengths
        self._fy = sfft.fftfreq(nyFull)
        self._fx = sfft.rfftfreq(nxFull)
        self._radius = np.hypot(self._fy[:, None], self._fx[None, :])
        self._pixel = np.sinc(self._fy)[:, None] * np.sinc(self._fx)[None, :]
        self._cube = self._skyCube(sources, wavelengths, bandWeights)

    @property
    def wavelengths(self) -> np.ndarray:
        """The wavelength samples (nm)."""
        return self._wavelengths.copy()

    @property
    def padding(self) -> int:
        """Padding on each side (pixels)."""
        return self._padding

    def _skyCube(
        self, sources: Sequence[Source], wavelengths: np.ndarray, bandWeights: np.ndarray
    ) -> np.ndarray:
        nyFull, nxFull = self._shapeFull
        nxHalf = self._fx.size
        cube = np.zeros((wavelengths.size, nyFull, nxHalf), dtype=np.complex64)
        components, weights = _componentWeights(sources, wavelengths, bandWeights)
        if not components:
            return cube
        gx0 = self._bbox.minX - self._padding
        gy0 = self._bbox.minY - self._padding
        u_ = np.array([c[0] - gx0 for c in components])
        v_ = np.array([c[1] - gy0 for c in components])
        phaseX = np.exp(-2j * np.pi * np.outer(u_, self._fx))  # (nComp, nxHalf)
        weightMatrix = weights.astype(np.complex128)
        # Rows per chunk: keep the (nComp, rows, nxHalf) complex block near 64 MB.
        rows = max(1, int(64e6 // (16 * len(components) * nxHalf)))
        for start in range(0, nyFull, rows):
            fy = self._fy[start:start + rows]
            phaseY = np.exp(-2j * np.pi * np.outer(v_, fy))  # (nComp, r)
            block = phaseY[:, :, None] * phaseX[:, None, :]
            fxGrid = self._fx[None, :]
            fyGrid = fy[:, None]
            for j, (_, _, profile) in enumerate(components):
                if not isinstance(profile, PointProfile):
                    block[j] *= profile.transform(fxGrid, fyGrid)
            chunk = weightMatrix @ block.reshape(len(components), -1)
            cube[:, start:start + rows, :] = chunk.reshape(wavelengths.size, fy.size, nxHalf)
        return cube

    def render(
        self,
        displacements: np.ndarray | None,
        psf: AtmosphericPsf,
        sampleWeights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Render the sky for one set of displacements and one PSF.

        Parameters
        ----------
        displacements : numpy.ndarray or None
            ``(nWavelength, 2)`` displacements ``(dy, dx)`` in pixels of each wavelength
            sample; None for no refraction.
        psf : AtmosphericPsf
            The seeing (its chromatic scaling is applied per sample).
        sampleWeights : numpy.ndarray, optional
            Multiplier of each sample (for example 1 inside one subfilter, 0 elsewhere).

        Returns
        -------
        numpy.ndarray
            The image in ``bbox`` (float64, counts per pixel).
        """
        n = self._wavelengths.size
        if displacements is None:
            displacements = np.zeros((n, 2))
        displacements = np.asarray(displacements, dtype=np.float64)
        if displacements.shape != (n, 2) or not np.all(np.isfinite(displacements)):
            raise DcrValueError(
                "displacements must be a finite (nWavelength, 2) array of (dy, dx) pixels",
                shape=displacements.shape,
                numWavelengths=n,
            )
        largest = float(np.max(np.abs(displacements))) if n else 0.0
        if largest > self._padding:
            raise DcrValueError(
                "a displacement is larger than the padding, light would wrap around; "
                "make the renderer with more padding",
                largest=largest,
                padding=self._padding,
            )
        if sampleWeights is None:
            sampleWeights = np.ones(n)
        sampleWeights = np.asarray(sampleWeights, dtype=np.float64)
        achromatic = psf.alpha == 0.0
        acc = np.zeros(self._cube.shape[1:], dtype=np.complex128)
        for i in range(n):
            if sampleWeights[i] == 0.0:
                continue
            dy, dx = displacements[i]
            ramp = np.exp(-2j * np.pi * dy * self._fy)[:, None] * np.exp(
                -2j * np.pi * dx * self._fx
            )[None, :]
            if sampleWeights[i] != 1.0:
                ramp *= sampleWeights[i]
            if not achromatic:
                ramp *= psf.transfer(self._radius, self._wavelengths[i])
            acc += self._cube[i] * ramp
        if achromatic:
            acc *= psf.transfer(self._radius)
        acc *= self._pixel
        full = sfft.irfft2(acc, s=self._shapeFull)
        p = self._padding
        return full[p:p + self._bbox.height, p:p + self._bbox.width]


def wavelengthDisplacements(
    wavelengths: np.ndarray,
    effectiveWavelength: float,
    elevation: Angle | u.Quantity,
    observatory: Any,
    weather: Any,
    zenithVector: tuple[float, float],
) -> np.ndarray:
    """Displacement (pixels) of each wavelength by differential refraction.

    Parameters
    ----------
    wavelengths : numpy.ndarray
        Wavelengths (nm).
    effectiveWavelength : float
        Reference wavelength (nm): it is not displaced.
    elevation : astropy.coordinates.Angle
        True elevation of the field.
    observatory : dcrmodel.site.Observatory
        Site.
    weather : dcrmodel.site.Weather or None
        Weather (None: the site's standard atmosphere).
    zenithVector : tuple of float
        ``(vy, vx)``: pixels per arcsec of altitude (`dcrmodel.dcr.zenithDirection`).

    Returns
    -------
    numpy.ndarray
        ``(nWavelength, 2)`` displacements ``(dy, dx)``; bluer than the reference moves
        toward the zenith.
    """
    from .refraction import differentialRefraction

    dr = np.atleast_1d(
        differentialRefraction(
            np.asarray(wavelengths, dtype=np.float64), float(effectiveWavelength), elevation,
            observatory, weather,
        ).to_value(u.arcsec)
    )
    vy, vx = zenithVector
    return np.stack([dr * vy, dr * vx], axis=1)
