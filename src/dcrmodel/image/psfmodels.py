"""Point-spread function models: `Psf` and its `GaussianPsf` and `ImagePsf` kinds.

A PSF here is a kernel image of a given size at the band's effective wavelength, scaled
with wavelength by a power law. The PSF tools built on these models (estimation from an
exposure, matching kernels) are in `dcrmodel.psf.matching`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validate import asInt, asPositiveFloat
from ..errors import DcrTypeError, DcrValueError

__all__ = ["FWHM_PER_SIGMA", "Psf", "GaussianPsf", "ImagePsf"]

#: FWHM of a Gaussian in units of its standard deviation, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


class Psf:
    """Base class of point-spread functions.

    A PSF has a size (`fwhm`, pixels) at the band's effective wavelength and may vary
    with wavelength as ``fwhm(lambda) = fwhm * (lambda / effectiveWavelength) ** alpha``
    (``alpha = -0.2`` for Kolmogorov seeing, 0 for an achromatic PSF).

    Parameters
    ----------
    fwhm : float
        Full width at half maximum at the effective wavelength, in pixels.
    alpha : float, optional
        Chromatic exponent of the PSF size (dimensionless).
    effectiveWavelength : float, optional
        Wavelength (nm) at which the PSF has size ``fwhm``; needed only to evaluate a
        chromatic PSF (``alpha != 0``) at another wavelength.

    Notes
    -----
    Subclasses implement ``_kernel(scale)``, the kernel image with its size multiplied
    by ``scale``.
    """

    def __init__(
        self, fwhm: float, alpha: float = 0.0, effectiveWavelength: float | None = None
    ) -> None:
        try:
            fwhmValue = float(fwhm)
            alphaValue = float(alpha)
        except (TypeError, ValueError):
            raise DcrTypeError(
                "fwhm (pixels) and alpha must be numbers", fwhm=fwhm, alpha=alpha
            ) from None
        if not math.isfinite(fwhmValue) or fwhmValue < 0.0:
            raise DcrValueError("fwhm must be a finite, non-negative number of pixels", fwhm=fwhm)
        if not math.isfinite(alphaValue):
            raise DcrValueError("alpha must be finite", alpha=alpha)
        self._fwhm = fwhmValue
        self._alpha = alphaValue
        self._effectiveWavelength = (
            None
            if effectiveWavelength is None
            else asPositiveFloat(effectiveWavelength, "effectiveWavelength", "nm")
        )

    @property
    def fwhm(self) -> float:
        """Full width at half maximum at the effective wavelength (pixels)."""
        return self._fwhm

    @property
    def alpha(self) -> float:
        """Chromatic exponent: size is proportional to ``wavelength ** alpha``."""
        return self._alpha

    @property
    def effectiveWavelength(self) -> float | None:
        """Wavelength (nm) at which the PSF has size `fwhm`, or None."""
        return self._effectiveWavelength

    def _scale(self, wavelength: float | None) -> float:
        if wavelength is None or self._alpha == 0.0:
            if wavelength is not None:
                asPositiveFloat(wavelength, "wavelength", "nm")
            return 1.0
        wl = asPositiveFloat(wavelength, "wavelength", "nm")
        if self._effectiveWavelength is None:
            raise DcrValueError(
                "this PSF is chromatic (alpha != 0) but has no effectiveWavelength; "
                "give effectiveWavelength (nm) when making it",
                alpha=self._alpha,
                wavelength=wavelength,
            )
        return (wl / self._effectiveWavelength) ** self._alpha

    def computeFwhm(self, wavelength: float | None = None) -> float:
        """Return the FWHM (pixels) at ``wavelength`` (nm; None: the effective wavelength)."""
        return self._fwhm * self._scale(wavelength)

    def computeKernelImage(self, wavelength: float | None = None) -> np.ndarray:
        """Return the PSF image at ``wavelength``.

        Parameters
        ----------
        wavelength : float, optional
            Wavelength in nm; None for the effective wavelength.

        Returns
        -------
        numpy.ndarray
            Odd-sized square float64 array, centred on its middle pixel, summing to 1.
        """
        return self._kernel(self._scale(wavelength))

    def _kernel(self, scale: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define its kernel")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(fwhm={self._fwhm:.4g}, alpha={self._alpha:.4g}, "
            f"effectiveWavelength={self._effectiveWavelength})"
        )


class GaussianPsf(Psf):
    """A circular Gaussian PSF.

    Parameters
    ----------
    fwhm : float
        Full width at half maximum at the effective wavelength, in pixels (> 0).
    alpha : float, optional
        Chromatic exponent of the size (dimensionless; 0: achromatic).
    effectiveWavelength : float, optional
        Wavelength (nm) at which the size is ``fwhm``.
    kernelSize : int, optional
        Odd width (pixels) of the kernel images; by default ``2 * ceil(5 sigma) + 1`` of
        the requested wavelength, at least 3.

    Notes
    -----
    The kernel samples the Gaussian at pixel centres and is normalised to unit sum
    (no extra pixel-response convolution).
    """

    def __init__(
        self,
        fwhm: float,
        alpha: float = 0.0,
        effectiveWavelength: float | None = None,
        kernelSize: int | None = None,
    ) -> None:
        super().__init__(fwhm, alpha, effectiveWavelength)
        if self._fwhm <= 0.0:
            raise DcrValueError("GaussianPsf fwhm must be positive (pixels)", fwhm=fwhm)
        if kernelSize is not None:
            kernelSize = asInt(kernelSize, "kernelSize")
            if kernelSize < 1 or kernelSize % 2 == 0:
                raise DcrValueError(
                    "kernelSize must be a positive odd integer", kernelSize=kernelSize
                )
        self._kernelSize = kernelSize

    @property
    def sigma(self) -> float:
        """Gaussian standard deviation at the effective wavelength (pixels)."""
        return self._fwhm / FWHM_PER_SIGMA

    def _kernel(self, scale: float) -> np.ndarray:
        sigma = self.sigma * scale
        size = self._kernelSize
        if size is None:
            size = max(2 * math.ceil(5.0 * sigma) + 1, 3)
        half = size // 2
        coord = np.arange(-half, half + 1, dtype=np.float64)
        profile = np.exp(-0.5 * (coord / sigma) ** 2)
        kernel = np.outer(profile, profile)
        return kernel / kernel.sum()


def _measureFwhm(kernel: np.ndarray, upsample: int = 8) -> float:
    """Full width at half maximum (pixels) of a centred kernel image.

    The kernel is resampled ``upsample`` times finer with a cubic spline around its core,
    and the FWHM is the diameter of the circle whose area equals that of the region above
    half the peak: exact for circular profiles of any shape (Gaussian, Moffat,
    Kolmogorov), unlike a second-moment width, which wide wings inflate.
    """
    from scipy import ndimage

    peak = float(kernel.max())
    ys, xs = np.nonzero(kernel >= 0.25 * peak)
    y0, y1 = max(ys.min() - 2, 0), min(ys.max() + 3, kernel.shape[0])
    x0, x1 = max(xs.min() - 2, 0), min(xs.max() + 3, kernel.shape[1])
    core = np.asarray(kernel[y0:y1, x0:x1], dtype=np.float64)
    fine = ndimage.zoom(core, upsample, order=3, mode="nearest", grid_mode=True)
    area = np.count_nonzero(fine >= 0.5 * fine.max()) / upsample**2
    return 2.0 * math.sqrt(area / math.pi)


class ImagePsf(Psf):
    """A PSF given as an image.

    Parameters
    ----------
    array : array_like
        Square kernel with odd size, its peak on the middle pixel, finite values and a
        positive sum; it is copied and normalised to unit sum.
    alpha : float, optional
        Chromatic exponent of the size (dimensionless; 0: achromatic).
    effectiveWavelength : float, optional
        Wavelength (nm) at which ``array`` applies.
    fwhm : float, optional
        FWHM in pixels; measured from the image's half-maximum area when None
        (Gaussian-equivalent width).

    Raises
    ------
    DcrValueError
        If the image is not square with odd sides, is off-centre (its maximum is not the
        middle pixel, or its centroid is more than half a pixel from it), has non-finite
        values or a sum <= 0.

    Notes
    -----
    At another wavelength the kernel is resampled about its centre by the factor
    ``(wavelength / effectiveWavelength) ** alpha`` with a cubic spline
    (`scipy.ndimage.map_coordinates`) on the same grid and renormalised.
    """

    def __init__(
        self,
        array: Any,
        alpha: float = 0.0,
        effectiveWavelength: float | None = None,
        fwhm: float | None = None,
    ) -> None:
        kernel = np.array(array, dtype=np.float64)
        if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
            raise DcrValueError(
                f"PSF image must be square with odd sides so it has a centre pixel; got shape "
                f"{kernel.shape}; pad or crop it to an odd size",
                shape=kernel.shape,
            )
        if not np.all(np.isfinite(kernel)):
            raise DcrValueError(
                "PSF image has NaN or infinite pixels; replace them (e.g. with 0)",
                numBad=int(np.count_nonzero(~np.isfinite(kernel))),
            )
        total = kernel.sum()
        if not total > 0.0:
            raise DcrValueError("PSF image must have a positive sum", sum=float(total))
        half = kernel.shape[0] // 2
        if kernel[half, half] < kernel.max():
            peak = np.unravel_index(int(np.argmax(kernel)), kernel.shape)
            raise DcrValueError(
                f"PSF image is off-centre: its peak is at (y, x) = {tuple(int(v) for v in peak)}, "
                f"not at the centre ({half}, {half}); recentre it",
                peak=tuple(int(v) for v in peak),
                centre=(half, half),
            )
        coord = np.arange(kernel.shape[0], dtype=np.float64) - half
        yc = float((kernel.sum(axis=1) * coord).sum() / total)
        xc = float((kernel.sum(axis=0) * coord).sum() / total)
        if math.hypot(xc, yc) > 0.5:
            raise DcrValueError(
                f"PSF image is off-centre: its centroid is ({xc:.3f}, {yc:.3f}) pixels (x, y) "
                "from the centre pixel; recentre it",
                centroid=(xc, yc),
            )
        kernel /= total
        measured = _measureFwhm(kernel) if fwhm is None else fwhm
        super().__init__(measured, alpha, effectiveWavelength)
        if fwhm is not None and self._fwhm <= 0.0:
            raise DcrValueError("ImagePsf fwhm must be positive (pixels)", fwhm=fwhm)
        self._array = kernel

    @property
    def array(self) -> np.ndarray:
        """A copy of the normalised kernel at the effective wavelength."""
        return self._array.copy()

    def _kernel(self, scale: float) -> np.ndarray:
        if scale == 1.0:
            return self._array.copy()
        from scipy import ndimage

        half = self._array.shape[0] // 2
        coord = np.arange(self._array.shape[0], dtype=np.float64) - half
        yy, xx = np.meshgrid(coord, coord, indexing="ij")
        coords = np.array([yy / scale + half, xx / scale + half])
        kernel = ndimage.map_coordinates(self._array, coords, order=3, mode="constant", cval=0.0)
        total = kernel.sum()
        if not total > 0.0:
            raise DcrValueError(
                "PSF resampled to this wavelength has no flux; the kernel is too small",
                scale=scale,
            )
        return kernel / total
