"""Seeing: the point-spread function of the atmosphere, optionally chromatic.

`AtmosphericPsf` is a circular Gaussian, Moffat or long-exposure Kolmogorov profile whose
FWHM may scale with wavelength as ``lambda ** alpha``. It gives its optical transfer
function (what the Fourier renderer, `dcrmodel.simulate.render`, multiplies by) and its kernel
image with the pixel response included (what the PSF HDU of an exposure holds).

References
----------
D. L. Fried, 1966, JOSA 56, 1372; F. Roddier, 1981, Progress in Optics 19, 281 (the
long-exposure transfer function of Kolmogorov turbulence, ``exp(-3.44 (lambda f / r0)^(5/3))``,
and its FWHM ``0.976 lambda / r0``).
A. F. J. Moffat, 1969, A&A 3, 455 (the Moffat profile).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import special

from .._validate import asFiniteFloat, asPositiveFloat
from ..errors import DcrValueError
from ..image import FWHM_PER_SIGMA, ImagePsf

__all__ = [
    "AtmosphericPsf",
    "PSF_PROFILES",
]

#: Seeing profiles that `AtmosphericPsf` knows.
PSF_PROFILES = ("gaussian", "moffat", "kolmogorov")


#: Kolmogorov long-exposure PSF: FWHM = 0.976 lambda / r0 and
#: OTF(f) = exp(-3.44 (lambda f / r0)^(5/3)) (Fried 1966; Roddier 1981).
_KOLMOGOROV_FWHM = 0.976
_KOLMOGOROV_COEFF = 3.44


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

    Examples
    --------
    >>> psf = AtmosphericPsf("kolmogorov", fwhm=3.5, effectiveWavelength=480.0, alpha=-0.2)
    >>> kernel = psf.computeKernelImage()
    >>> kernel.shape, round(float(kernel.sum()), 12)
    ((93, 93), 1.0)
    >>> print(f"{psf.computeFwhm(400.0):.3f}")
    3.630
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
        self._fwhm = asPositiveFloat(fwhm, "fwhm", "pixels")
        self._effectiveWavelength = asPositiveFloat(
            effectiveWavelength, "effectiveWavelength", "nm"
        )
        self._alpha = asFiniteFloat(alpha, "alpha", "dimensionless")
        if not -1.0 <= self._alpha <= 1.0:
            raise DcrValueError("alpha must be in [-1, 1] (-0.2 for Kolmogorov seeing)",
                                alpha=alpha)
        self._beta = asFiniteFloat(beta, "beta", "dimensionless")
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
            sigma = w / FWHM_PER_SIGMA
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
        """Half-width (pixels) of a stamp that holds all but ~0.1 % of the PSF's light.

        2.5 FWHM for a Gaussian, 5 for a Moffat (beta 3.5: 0.02 % outside), 13 for
        Kolmogorov seeing, whose wings fall only as ``r^(-11/3)`` (0.1 % outside; 0.5 %
        outside 5 FWHM).
        """
        w = self.computeFwhm(wavelength)
        factor = {"gaussian": 2.5, "moffat": 5.0, "kolmogorov": 13.0}[self._profile]
        return max(int(math.ceil(factor * w)), 3)

    def lightRadius(self, wavelength: float | None = None) -> float:
        """Radius (pixels) beyond which the PSF is below ~2e-6 of its peak.

        8 FWHM for Kolmogorov and Moffat seeing, 4 for a Gaussian: the distance beyond which
        even the brightest source adds a small fraction of a count.
        """
        w = self.computeFwhm(wavelength)
        return (4.0 if self._profile == "gaussian" else 8.0) * w

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
