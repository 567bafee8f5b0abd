"""Sources of a simulated sky: spatial profiles, spectra and fluxes.

A `Source` is a position and one or more `SourceComponent` objects, each a unit-flux
spatial profile (a point, an elliptical exponential disc or an elliptical Gaussian bulge)
with a photon spectrum (`dcrmodel.simulate.spectra`) and a flux: stars have one component, galaxies
a disc and a bulge of different colours. Profiles are defined by their Fourier transforms
(frequencies in cycles per pixel), which is what the renderer (`dcrmodel.simulate.render`) needs
to draw them exactly up to the Nyquist frequency. `meanWavelength` gives a source's colour
through a band.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import asFiniteFloat, asPositiveFloat
from ..diffim import COLOUR_CLASSES
from ..errors import DcrTypeError, DcrValueError
from .spectra import Bandpass, BlackbodySpectrum, PowerLawSpectrum, Spectrum

__all__ = [
    "PointProfile",
    "ExponentialProfile",
    "GaussianProfile",
    "SourceComponent",
    "Source",
    "meanWavelength",
]

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


def quadraticForm(profiles: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(A, B, C)`` of ``|A^T f|^2 = A fx^2 + 2 B fx fy + C fy^2`` per profile.

    Parameters
    ----------
    profiles : sequence of ExponentialProfile or GaussianProfile
        Elliptical profiles (scale length or sigma in pixels, position angle in degrees).

    Returns
    -------
    tuple of numpy.ndarray
        ``A``, ``B`` and ``C`` (pixels squared), one value per profile.
    """
    major = np.array([p.scaleLength if isinstance(p, ExponentialProfile) else p.sigma
                      for p in profiles])
    minor = major * np.array([p.axisRatio for p in profiles])
    theta = np.radians([p.positionAngle for p in profiles])
    c, s = np.cos(theta), np.sin(theta)
    return (
        major**2 * c * c + minor**2 * s * s,
        (major**2 - minor**2) * c * s,
        major**2 * s * s + minor**2 * c * c,
    )


def exponentialTransform(k2: np.ndarray) -> np.ndarray:
    """Return the transform of the unit exponential disc at squared frequency ``k2`` (unit scale).

    Parameters
    ----------
    k2 : numpy.ndarray
        Squared scaled frequency ``|A^T f|^2`` (dimensionless; see `quadraticForm`).

    Returns
    -------
    numpy.ndarray
        ``(1 + 4 pi^2 k2)^(-3/2)``.
    """
    return (1.0 + (4.0 * np.pi**2) * k2) ** -1.5


def gaussianTransform(k2: np.ndarray) -> np.ndarray:
    """Return the transform of the unit Gaussian at squared frequency ``k2`` (unit sigma).

    Parameters
    ----------
    k2 : numpy.ndarray
        Squared scaled frequency ``|A^T f|^2`` (dimensionless; see `quadraticForm`).

    Returns
    -------
    numpy.ndarray
        ``exp(-2 pi^2 k2)``.
    """
    return np.exp((-2.0 * np.pi**2) * k2)


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
        scale = asPositiveFloat(self.scaleLength, "scaleLength", "pixels")
        object.__setattr__(self, "scaleLength", scale)
        _checkAxisRatio(self.axisRatio)
        angle = asFiniteFloat(self.positionAngle, "positionAngle", "deg")
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
        object.__setattr__(self, "sigma", asPositiveFloat(self.sigma, "sigma", "pixels"))
        _checkAxisRatio(self.axisRatio)
        angle = asFiniteFloat(self.positionAngle, "positionAngle", "deg")
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
    q = asFiniteFloat(value, "axisRatio", "dimensionless")
    if not 0.0 < q <= 1.0:
        raise DcrValueError("axisRatio must be in (0, 1] (minor over major axis)", axisRatio=value)


Profile = PointProfile | ExponentialProfile | GaussianProfile


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
        object.__setattr__(self, "flux", asPositiveFloat(self.flux, "flux", "counts",
        allowZero=True))
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
        object.__setattr__(self, "x", asFiniteFloat(self.x, "x", "pixels"))
        object.__setattr__(self, "y", asFiniteFloat(self.y, "y", "pixels"))
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
