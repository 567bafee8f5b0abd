"""Photon spectra of sources and the transmission of the band they are observed through.

A detector counts photons, so a source's weight at each wavelength is its photon flux
density: a blackbody for stars (Planck's law) or a power law of wavelength for the discs
and bulges of galaxies. The `Bandpass` (a top hat or a tabulated transmission curve)
samples the band at fine wavelength resolution for the simulation's integration over
wavelength, grouping the samples into the subfilters of a `dcrmodel.model.core.DcrModel`.

Only relative values matter: fluxes are normalised over the band by the caller
(`dcrmodel.simulate.render`, `dcrmodel.simulate.sources.meanWavelength`).

References
----------
M. Planck, 1901, Annalen der Physik 309, 553 (the blackbody spectrum); radiation constant
hc/k from CODATA 2018.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validate import asFiniteFloat, asPositiveFloat
from ..errors import DcrTypeError, DcrValueError
from ..image import Filter

__all__ = [
    "BlackbodySpectrum",
    "PowerLawSpectrum",
    "Bandpass",
]

#: Radiation constant hc/k in nm K (CODATA 2018: h c / k_B = 1.438776877e-2 m K).
_HC_OVER_K = 1.438776877e7


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

    Examples
    --------
    >>> hot, cool = BlackbodySpectrum(20000.0), BlackbodySpectrum(3500.0)
    >>> bool(hot.photonDensity(400.0) > hot.photonDensity(550.0))
    True
    >>> bool(cool.photonDensity(400.0) > cool.photonDensity(550.0))
    False
    """

    temperature: float

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "temperature", asPositiveFloat(self.temperature, "temperature", "K")
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
        object.__setattr__(self, "index", asFiniteFloat(self.index, "index", "dimensionless"))

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

    Examples
    --------
    >>> band = Bandpass.topHat(480.0, 150.0, "g")
    >>> wavelengths, weights, subfilter = band.sample(numSubfilters=3, samplesPerSubfilter=14)
    >>> wavelengths.size, round(float(weights.sum()), 9), int(subfilter[0]), int(subfilter[-1])
    (42, 150.0, 0, 2)
    >>> print(f"{band.effectiveWavelength:.1f}")
    480.0
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
        eff = asPositiveFloat(effectiveWavelength, "effectiveWavelength", "nm")
        bw = asPositiveFloat(bandwidth, "bandwidth", "nm")
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
            else asPositiveFloat(effectiveWavelength, "effectiveWavelength", "nm")
        )
        bw = (
            area / float(tp.max())
            if bandwidth is None
            else asPositiveFloat(bandwidth, "bandwidth", "nm")
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


#: The photon spectra a source component can have.
Spectrum = BlackbodySpectrum | PowerLawSpectrum
