"""PSF tools for a PSF-aware DCR forward model: kernels, transfer functions, estimation.

A DCR model's subfilter images are the sky seen through the model's PSF. To forward-model
visit ``j`` in subfilter ``k`` the model image is moved by its DCR and re-blurred from the
model's PSF to the visit's PSF at the subfilter's wavelength, a product of transfer functions
on the ``rfft2`` grid of a padded array (`dcrmodel.fourier.engine`). This module supplies the PSF
factors of that product and what they need:

- `psfAtWavelength`: the kernel image of a PSF at a wavelength, its size scaled by
  ``(wavelength / effectiveWavelength) ** alpha`` (``alpha = -0.2`` for Kolmogorov seeing).
- `psfTransfer`: the optical transfer function (OTF) of a PSF on the ``rfft2`` grid, placed so
  that it introduces no shift.
- `psfMatchingTransfer`: ``OTF_visit / OTF_model``, damped where the model's OTF is too small
  to divide by (a visit sharper than the model), with a map of where the damping lost signal.
- `estimatePsf`: the PSF of an exposure that has none, from bright isolated stars, measured
  across the zenith direction where DCR does not broaden them.
- `modelPsfFor`, `sharpestPsf`: the model PSF chosen from the inputs' PSFs.
- `validatePsfImage`, `validatePsfAlpha`, `validatePsf`: checks of user-supplied PSFs.

Conventions: arrays are ``(y, x)``; sizes and FWHMs in pixels; wavelengths in nm. A PSF kernel
is an odd-sized square array, centred on its middle pixel, summing to 1, with the pixel response
included (the primer's PSF HDU convention). The transfer function of a kernel is its discrete
Fourier transform with the kernel's centre at array index ``(0, 0)``, so it equals 1 at zero
frequency and is real for a point-symmetric kernel.

References
----------
A. F. J. Moffat (1969), A&A 3, 455: the Moffat profile ``(1 + r^2/a^2) ** -beta``.
N. Wiener (1949), *Extrapolation, Interpolation, and Smoothing of Stationary Time Series*,
MIT Press: the damped (Wiener) inverse filter.
I. Sullivan, DMTN-121, "Variable seeing in DCR-matched templates", https://dmtn-121.lsst.io.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage, optimize

from ..errors import (
    DcrMetadataError,
    DcrPsfWarning,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
)
from ..image import (
    DEFAULT_MASK_PLANES,
    FWHM_PER_SIGMA,
    Exposure,
    GaussianPsf,
    Image,
    ImagePsf,
    Mask,
    MaskedImage,
    Psf,
)
from ..physics import dcr

__all__ = [
    "MODEL_PSF_POLICIES",
    "DEFAULT_BAD_MASK_PLANES",
    "PsfEstimate",
    "PsfMatch",
    "psfAtWavelength",
    "psfFwhmAt",
    "maxKernelSize",
    "effectiveKernelSize",
    "psfTransfer",
    "psfMatchingTransfer",
    "DampedPsfMatcher",
    "modelPsfRidge",
    "estimatePsf",
    "sharpestPsf",
    "modelPsfFor",
    "validatePsfAlpha",
    "validatePsfImage",
    "validatePsf",
]

_log = logging.getLogger(__name__)


#: Named model-PSF policies of `modelPsfFor` (a number, a FWHM in pixels, or a `Psf` also work).
MODEL_PSF_POLICIES = ("sharpest", "median", "sharpestInput")

#: Mask planes whose pixels disqualify a star from PSF estimation.
DEFAULT_BAD_MASK_PLANES = ("BAD", "SAT", "NO_DATA", "EDGE", "CR", "SUSPECT", "INTRP")

#: Largest Moffat-like index ``eta = 1 / beta`` fitted by `estimatePsf` (beta >= 1.25, so the
#: profile's cross-section, ``(1 + ...) ** -(beta - 1/2)``, has a finite integral).
_MAX_ETA = 0.8


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _finiteFloat(value: Any, name: str, unit: str) -> float:
    if isinstance(value, bool):
        raise DcrTypeError(f"{name} must be a number ({unit}), not a bool", **{name: value})
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a number ({unit})", **{name: value}) from None
    if not math.isfinite(out):
        raise DcrValueError(f"{name} must be finite ({unit})", **{name: value})
    return out


def asPositiveFloat(value: Any, name: str, unit: str) -> float:
    out = _finiteFloat(value, name, unit)
    if out <= 0.0:
        raise DcrValueError(f"{name} must be positive ({unit})", **{name: value})
    return out


def _wholeNumber(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise DcrTypeError(f"{name} must be an integer", **{name: value})
    if int(value) < minimum:
        raise DcrValueError(f"{name} must be at least {minimum}", **{name: value})
    return int(value)


def _checkGrid(shape: Any) -> tuple[int, int]:
    try:
        values = tuple(shape)
    except TypeError:
        raise DcrTypeError("shape must be a pair of positive ints (ny, nx)", shape=shape) from None
    if len(values) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise DcrValueError("shape must be a pair of positive ints (ny, nx)", shape=shape)
    return int(values[0]), int(values[1])


def _checkPsfType(psf: Any, name: str = "psf") -> Psf:
    if not isinstance(psf, Psf):
        raise DcrTypeError(
            f"{name} must be a dcrmodel Psf (GaussianPsf or ImagePsf); estimate one with "
            "estimatePsf if the exposure has none",
            **{name: type(psf).__name__},
        )
    return psf


def validatePsfAlpha(alpha: Any, name: str = "PSF-ALPH") -> float:
    """Check a PSF's chromatic exponent.

    Parameters
    ----------
    alpha : float
        Exponent of the PSF size with wavelength (dimensionless): the size is proportional to
        ``wavelength ** alpha``.
    name : str, optional
        Name used in the error message (the FITS key by default).

    Returns
    -------
    alpha : float
        The exponent as a float.

    Raises
    ------
    DcrTypeError
        If ``alpha`` is not a number.
    DcrValueError
        If ``alpha`` is not finite or lies outside [-1, 1]. Seeing has -0.2 (Kolmogorov
        turbulence) and a diffraction-limited PSF +1; nothing physical lies beyond.
    """
    value = _finiteFloat(alpha, name, "dimensionless exponent")
    if not -1.0 <= value <= 1.0:
        raise DcrValueError(
            f"{name} must be in [-1, 1]: the PSF size scales as wavelength ** {name} "
            "(-0.2 for Kolmogorov seeing, 0 for an achromatic PSF); fix the value",
            **{name.replace("-", "_"): alpha},
        )
    return value


def validatePsfImage(array: Any, exposureShape: tuple[int, int] | None = None) -> np.ndarray:
    """Check a PSF given as an image and return it normalised to unit sum.

    Parameters
    ----------
    array : array_like
        The PSF image: 2-d, square, odd-sized, centred on its middle pixel, finite, with a
        positive sum.
    exposureShape : tuple of int, optional
        ``(ny, nx)`` of the exposure the PSF belongs to; the PSF image must not be larger.

    Returns
    -------
    kernel : numpy.ndarray
        A float64 copy normalised to unit sum.

    Raises
    ------
    DcrValueError
        Even-sized, non-square, off-centre, non-finite or non-positive-sum images (the checks
        of `dcrmodel.image.ImagePsf`).
    DcrShapeError
        If the image is larger than ``exposureShape``.
    """
    kernel = np.array(array, dtype=np.float64)
    if kernel.ndim != 2:
        raise DcrShapeError("PSF image must be a 2-d array (y, x)", shape=kernel.shape)
    if exposureShape is not None:
        ny, nx = _checkGrid(exposureShape)
        if kernel.shape[0] > ny or kernel.shape[1] > nx:
            raise DcrShapeError(
                f"PSF image {kernel.shape} is larger than the exposure {(ny, nx)}; crop it to an "
                "odd size no larger than the exposure",
                psfShape=kernel.shape,
                exposureShape=(ny, nx),
            )
    # ImagePsf checks odd/square, finite, positive sum and centring, and normalises.
    return ImagePsf(kernel).array


def validatePsf(
    psf: Any,
    exposureShape: tuple[int, int] | None = None,
    wavelengths: Iterable[float] | None = None,
    effectiveWavelength: float | None = None,
) -> Psf:
    """Check a `Psf` before use: its type, its chromatic exponent and its size.

    Parameters
    ----------
    psf : Psf
        The PSF.
    exposureShape : tuple of int, optional
        ``(ny, nx)`` of the exposure; the kernel must not be larger at any wavelength.
    wavelengths : iterable of float, optional
        Wavelengths (nm) at which the PSF will be evaluated (None: the effective wavelength).
    effectiveWavelength : float, optional
        Band effective wavelength (nm), used when the PSF has none (see `psfAtWavelength`).

    Returns
    -------
    psf : Psf
        The same object.

    Raises
    ------
    DcrTypeError
        If ``psf`` is not a `Psf`.
    DcrValueError
        If its ``alpha`` is outside [-1, 1], or it is chromatic without any effective
        wavelength.
    DcrShapeError
        If its kernel is larger than the exposure.
    """
    _checkPsfType(psf)
    validatePsfAlpha(psf.alpha, "psf.alpha (PSF-ALPH)")
    if exposureShape is not None:
        ny, nx = _checkGrid(exposureShape)
        size = maxKernelSize([psf], wavelengths, effectiveWavelength)
        if size > min(ny, nx):
            raise DcrShapeError(
                f"the PSF kernel ({size} x {size} pixels) is larger than the exposure "
                f"{(ny, nx)}; supply a smaller PSF image",
                kernelSize=size,
                exposureShape=(ny, nx),
            )
    return psf


# ---------------------------------------------------------------------------------------------
# Kernels at a wavelength
# ---------------------------------------------------------------------------------------------


def _sizeScale(psf: Psf, wavelength: float | None, effectiveWavelength: float | None) -> float:
    """Return ``(wavelength / lambdaEff) ** alpha`` (1 when no wavelength or alpha = 0)."""
    if wavelength is None:
        return 1.0
    wl = asPositiveFloat(wavelength, "wavelength", "nm")
    if psf.alpha == 0.0:
        return 1.0
    reference = psf.effectiveWavelength
    if reference is None:
        if effectiveWavelength is None:
            raise DcrValueError(
                "the PSF is chromatic (alpha != 0) but neither it nor the call gives an "
                "effective wavelength; pass effectiveWavelength (nm, the band's)",
                alpha=psf.alpha,
                wavelength=wavelength,
            )
        reference = asPositiveFloat(effectiveWavelength, "effectiveWavelength", "nm")
    elif effectiveWavelength is not None:
        given = asPositiveFloat(effectiveWavelength, "effectiveWavelength", "nm")
        if abs(given - reference) > 1e-6 * reference:
            _log.debug(
                "PSF effective wavelength %.3f nm used instead of the band's %.3f nm",
                reference,
                given,
            )
    return (wl / reference) ** psf.alpha


def psfFwhmAt(
    psf: Psf, wavelength: float | None = None, effectiveWavelength: float | None = None
) -> float:
    """Return a PSF's FWHM (pixels) at a wavelength.

    Parameters
    ----------
    psf : Psf
        The PSF.
    wavelength : float, optional
        Wavelength in nm (None: the PSF's effective wavelength).
    effectiveWavelength : float, optional
        Wavelength (nm) at which the PSF has size ``psf.fwhm``, used only when the PSF does not
        carry one itself.

    Returns
    -------
    float
        ``psf.fwhm * (wavelength / effectiveWavelength) ** psf.alpha``.
    """
    _checkPsfType(psf)
    return psf.fwhm * _sizeScale(psf, wavelength, effectiveWavelength)


def _resampleKernel(kernel: np.ndarray, scale: float) -> np.ndarray:
    """Resample a centred kernel so that its size is multiplied by ``scale``.

    The output grid grows with ``scale`` (odd side ``2 ceil(half * scale) + 1``) so that a
    broadened kernel is not truncated; values come from a cubic spline through the input
    (`scipy.ndimage.map_coordinates`, zero outside) and are renormalised to unit sum.
    """
    half = kernel.shape[0] // 2
    outHalf = max(math.ceil(half * scale - 1e-9), 1)
    coord = np.arange(-outHalf, outHalf + 1, dtype=np.float64)
    yy, xx = np.meshgrid(coord, coord, indexing="ij")
    coords = np.array([yy / scale + half, xx / scale + half])
    out = ndimage.map_coordinates(kernel, coords, order=3, mode="constant", cval=0.0)
    total = out.sum()
    if not total > 0.0:
        raise DcrValueError(
            "the PSF resampled to this wavelength has no flux; its image is too small",
            scale=scale,
        )
    return out / total


def psfAtWavelength(
    psf: Psf, wavelength: float | None = None, effectiveWavelength: float | None = None
) -> np.ndarray:
    """Return the PSF kernel image at a wavelength.

    Parameters
    ----------
    psf : Psf
        The PSF; its size at ``wavelength`` is ``psf.fwhm * (wavelength / lambdaEff) **
        psf.alpha``.
    wavelength : float, optional
        Wavelength in nm (None: the effective wavelength, i.e. the kernel as given).
    effectiveWavelength : float, optional
        The band's effective wavelength (nm). The PSF's own ``effectiveWavelength`` wins when
        it has one; this value is the fallback for a chromatic PSF without one.

    Returns
    -------
    kernel : numpy.ndarray
        Odd-sized square float64 array, centred on its middle pixel, summing to 1.

    Raises
    ------
    DcrTypeError
        If ``psf`` is not a `Psf`.
    DcrValueError
        If ``wavelength`` is not positive and finite, or the PSF is chromatic and no effective
        wavelength is known.

    Notes
    -----
    A `GaussianPsf` is evaluated analytically (a Gaussian of standard deviation
    ``sigma * scale`` sampled at pixel centres, on the stamp `GaussianPsf` chooses). An
    `ImagePsf` is
    resampled about its centre with a cubic spline onto a grid enlarged by ``scale`` (so a
    broader kernel keeps its wings) and renormalised to unit sum; the pixel response inside the
    image is scaled with it, a second-order effect for the few per cent that ``alpha = -0.2``
    changes across a band. Other `Psf` subclasses use their own ``_kernel(scale)``.
    """
    _checkPsfType(psf)
    scale = _sizeScale(psf, wavelength, effectiveWavelength)
    if scale == 1.0:
        return np.array(psf.computeKernelImage(), dtype=np.float64)
    if isinstance(psf, ImagePsf):
        return _resampleKernel(psf.array, scale)
    # GaussianPsf (analytic) and other subclasses: their own kernel at the scaled size.
    return np.array(psf._kernel(scale), dtype=np.float64)


def maxKernelSize(
    psfs: Iterable[Psf],
    wavelengths: Iterable[float] | None = None,
    effectiveWavelength: float | None = None,
) -> int:
    """Return the widest kernel (pixels) of some PSFs over some wavelengths.

    Use it as ``psfSize`` of `dcrmodel.fourier.engine.paddedShape` so a PSF-matched template does
    not
    wrap around the padded grid.

    Parameters
    ----------
    psfs : iterable of Psf
        The PSFs.
    wavelengths : iterable of float, optional
        Wavelengths in nm (None: each PSF at its effective wavelength).
    effectiveWavelength : float, optional
        Fallback effective wavelength (nm), see `psfAtWavelength`.

    Returns
    -------
    int
        Largest kernel side in pixels (0 for no PSFs).
    """
    waves: list[float | None] = [None] if wavelengths is None else list(wavelengths)
    size = 0
    for psf in psfs:
        for wl in waves:
            if isinstance(psf, ImagePsf):
                # the side `_resampleKernel` gives, without resampling
                scale = _sizeScale(psf, wl, effectiveWavelength)
                half = psf.array.shape[0] // 2
                side = psf.array.shape[0] if scale == 1.0 else (
                    2 * max(math.ceil(half * scale - 1e-9), 1) + 1
                )
            else:
                side = psfAtWavelength(psf, wl, effectiveWavelength).shape[0]
            size = max(size, side)
    return size


def effectiveKernelSize(
    psfs: Iterable[Psf | np.ndarray],
    wavelengths: Iterable[float] | None = None,
    effectiveWavelength: float | None = None,
    tailFraction: float = 1e-3,
) -> int:
    """Return the side (pixels) of the centred box holding all but a fraction of each kernel.

    A PSF image often extends far beyond its core (a Kolmogorov kernel's wings fall only as
    ``r ** (-11/3)``). Padding a Fourier grid by the whole kernel costs FFT area; what wraps
    around a grid padded by this smaller size is at most ``tailFraction`` of the flux of a
    source at the very edge, spread over the far side of the margin.

    Parameters
    ----------
    psfs : iterable of Psf or numpy.ndarray
        The PSFs, or kernel images already evaluated (used as given, at every wavelength).
    wavelengths : iterable of float, optional
        Wavelengths in nm (None: each PSF at its effective wavelength).
    effectiveWavelength : float, optional
        Fallback effective wavelength (nm), see `psfAtWavelength`.
    tailFraction : float, optional
        Fraction of the kernel's absolute sum allowed outside the box (0 < value < 1).

    Returns
    -------
    int
        Largest odd side over the PSFs and wavelengths (0 for no PSFs).

    Examples
    --------
    >>> from dcrmodel.image import GaussianPsf
    >>> psf = GaussianPsf(4.0)
    >>> effectiveKernelSize([psf]) <= maxKernelSize([psf])
    True
    """
    fraction = asPositiveFloat(tailFraction, "tailFraction", "fraction of the kernel's sum")
    if fraction >= 1.0:
        raise DcrValueError("tailFraction must be below 1", tailFraction=tailFraction)
    waves: list[float | None] = [None] if wavelengths is None else list(wavelengths)
    size = 0
    for psf in psfs:
        for wl in waves if isinstance(psf, Psf) else [None]:
            if isinstance(psf, Psf):
                kernel = np.abs(psfAtWavelength(psf, wl, effectiveWavelength))
            else:
                kernel = np.abs(np.asarray(psf, dtype=np.float64))
            half = kernel.shape[0] // 2
            total = kernel.sum()
            # sum inside the centred box of half-size h, for h = 0 .. half
            ring = np.maximum(
                np.abs(np.arange(kernel.shape[0]) - half)[:, None],
                np.abs(np.arange(kernel.shape[1]) - half)[None, :],
            )
            inside = np.cumsum(np.bincount(ring.ravel(), weights=kernel.ravel()))
            h = int(np.argmax(inside >= (1.0 - fraction) * total))
            size = max(size, 2 * h + 1)
    return size


# ---------------------------------------------------------------------------------------------
# Transfer functions
# ---------------------------------------------------------------------------------------------


def _complexType(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt in (np.dtype(np.complex64), np.dtype(np.float32)):
        return np.dtype(np.complex64)
    if dt in (np.dtype(np.complex128), np.dtype(np.float64)):
        return np.dtype(np.complex128)
    raise DcrTypeError("dtype must be complex64/float32 or complex128/float64", dtype=dtype)


def _kernelTransfer(kernel: np.ndarray, shape: tuple[int, int], cdtype: np.dtype) -> np.ndarray:
    """DFT on the rfft2 grid of ``shape`` of a centred kernel placed with its centre at (0, 0)."""
    ny, nx = shape
    ky, kx = kernel.shape
    if ky > ny or kx > nx:
        raise DcrShapeError(
            f"the PSF kernel ({ky} x {kx} pixels) does not fit the Fourier grid {shape}; pad "
            "the grid (dcrmodel.fourier.engine.paddedShape with psfSize=maxKernelSize(...))",
            kernelShape=kernel.shape,
            shape=shape,
        )
    hy, hx = ky // 2, kx // 2
    # Single precision where the caller wants it: the transform of a unit-sum kernel is of
    # order 1 everywhere, so float32 rounding (1e-7) is far below any use of it.
    realType = np.float32 if cdtype == np.dtype(np.complex64) else np.float64
    embedded = np.zeros(shape, dtype=realType)
    rows = np.arange(-hy, hy + 1) % ny
    cols = np.arange(-hx, hx + 1) % nx
    embedded[np.ix_(rows, cols)] = kernel
    transfer = scipy.fft.rfft2(embedded)
    # A point-symmetric kernel has a real transform; drop the round-off imaginary part.
    if np.allclose(kernel, kernel[::-1, ::-1], rtol=0.0, atol=1e-12 * np.abs(kernel).max()):
        transfer.imag = 0.0
    return transfer.astype(cdtype, copy=False)


def psfTransfer(
    psf: Psf,
    shape: tuple[int, int],
    wavelength: float | None = None,
    effectiveWavelength: float | None = None,
    dtype: Any = np.complex128,
) -> np.ndarray:
    """Return the optical transfer function of a PSF on the ``rfft2`` grid of ``shape``.

    Parameters
    ----------
    psf : Psf
        The PSF.
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) array; the grid is that of
        `dcrmodel.fourier.engine.frequencyGrid`.
    wavelength : float, optional
        Wavelength in nm at which to evaluate the PSF (None: its effective wavelength).
    effectiveWavelength : float, optional
        Fallback effective wavelength (nm), see `psfAtWavelength`.
    dtype : numpy dtype, optional
        ``complex128`` (default) or ``complex64``.

    Returns
    -------
    transfer : numpy.ndarray
        Complex array of shape ``(ny, nx // 2 + 1)``: the discrete Fourier transform of the
        kernel (`psfAtWavelength`) with its centre pixel at index ``(0, 0)`` (the other pixels
        wrapped around), so multiplying a spectrum by it convolves with the PSF without moving
        anything. It is 1 at zero frequency, and its imaginary part is exactly 0 for a
        point-symmetric kernel.

    Raises
    ------
    DcrShapeError
        If the kernel is larger than ``shape``.

    Notes
    -----
    The kernel is the PSF sampled on the pixel grid, so its transform is the PSF's continuous
    transfer function summed over the aliases ``f + n`` (Poisson summation) and truncated to
    the kernel's stamp; for a Gaussian of standard deviation ``sigma`` that is
    ``sum_n exp(-2 pi^2 sigma^2 (f + n)^2) / sum_n exp(-2 pi^2 sigma^2 n^2)`` per axis.

    Examples
    --------
    >>> from dcrmodel.image import GaussianPsf
    >>> otf = psfTransfer(GaussianPsf(3.0), (16, 16))
    >>> otf.shape, round(float(otf[0, 0].real), 12), bool(np.all(otf.imag == 0))
    ((16, 9), 1.0, True)
    """
    _checkPsfType(psf)
    grid = _checkGrid(shape)
    cdtype = _complexType(dtype)
    kernel = psfAtWavelength(psf, wavelength, effectiveWavelength)
    return _kernelTransfer(kernel, grid, cdtype)


@dataclass(frozen=True, eq=False)
class PsfMatch:
    """A damped PSF-matching transfer function and where the damping lost signal.

    Attributes
    ----------
    transfer : numpy.ndarray
        Complex ``(ny, nx // 2 + 1)`` transfer ``H`` taking the model's PSF to the visit's.
    loss : numpy.ndarray
        Float ``(ny, nx // 2 + 1)``: ``|OTF_visit - H * OTF_model|``, the part of the visit's
        transfer function that the model cannot supply (0 where no damping acted; the OTFs are
        1 at zero frequency, so this is a fraction of a point source's transform).
    flagged : numpy.ndarray
        Boolean ``(ny, nx // 2 + 1)``: ``loss > threshold``.
    epsilon : float
        Damping level ``damping * max|OTF_model|``.
    threshold : float
        Loss above which a frequency is flagged.
    shape : tuple of int
        ``(ny, nx)`` of the real-space grid.
    """

    transfer: np.ndarray
    loss: np.ndarray
    flagged: np.ndarray
    epsilon: float
    threshold: float
    shape: tuple[int, int]

    @property
    def isDamped(self) -> bool:
        """True if damping lost signal above the threshold at any frequency."""
        return bool(self.flagged.any())

    @property
    def maxLoss(self) -> float:
        """Largest loss over the grid."""
        return float(self.loss.max())

    def residualKernel(self) -> np.ndarray:
        """Return the real-space kernel of ``OTF_visit - H * OTF_model``, centred.

        The sky convolved with it is what the damped template misses (for a point source of
        flux ``F``: ``F`` times this kernel); its centre is at index ``(ny // 2, nx // 2)``.
        """
        otfVisit = self._otfVisit
        otfModel = self._otfModel
        residual = otfVisit - self.transfer * otfModel
        kernel = scipy.fft.irfft2(residual, s=self.shape)
        return scipy.fft.fftshift(kernel)

    def residualFraction(self) -> float:
        """Return the largest fraction of a point source's flux that the template misses.

        This is the L1 norm of `residualKernel`: a point source of flux ``F`` leaves at most
        ``F * residualFraction()`` of summed absolute residual in the template. Small (below
        1e-3 for the cases in the Notes of `psfMatchingTransfer`) when the visit is nowhere
        sharper than the model.
        """
        return float(np.abs(self.residualKernel()).sum())

    # The two OTFs are kept privately for residualKernel; they are not part of the value.
    _otfVisit: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _otfModel: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]


def _modelOtf(modelPsf: Psf | np.ndarray, grid: tuple[int, int], cdtype: Any) -> np.ndarray:
    """Return the model PSF's transfer function on ``grid``: computed, or checked if given."""
    if isinstance(modelPsf, np.ndarray):
        expected = (grid[0], grid[1] // 2 + 1)
        if modelPsf.shape != expected:
            raise DcrShapeError(
                "modelPsf transfer does not match the rfft2 grid (ny, nx // 2 + 1) of shape",
                transferShape=modelPsf.shape,
                expected=expected,
            )
        if not np.all(np.isfinite(modelPsf)):
            raise DcrValueError("modelPsf transfer has NaN or infinite values")
        return modelPsf.astype(cdtype, copy=False)
    _checkPsfType(modelPsf, "modelPsf")
    return psfTransfer(modelPsf, grid, dtype=cdtype)


def _dampedInverse(otfModel: np.ndarray, damping: float, order: int) -> tuple[np.ndarray, float]:
    """Return ``conj(OTF_m) |OTF_m|^(2p-2) / (|OTF_m|^(2p) + eps^(2p))`` and ``eps``.

    The damped inverse of the model's transfer function (see `psfMatchingTransfer`), in the
    precision of ``otfModel`` (computed in float64); real when ``otfModel`` is.
    """
    absModel = np.abs(otfModel).astype(np.float64)
    epsilon = damping * float(absModel.max())
    if not epsilon > 0.0:
        raise DcrValueError("the model PSF's transfer function is zero everywhere")
    power = absModel**2
    weight = power ** (order - 1) / (power**order + epsilon ** (2 * order))
    if np.iscomplexobj(otfModel) and np.any(otfModel.imag != 0):
        return (np.conj(otfModel) * weight).astype(otfModel.dtype), epsilon
    real = otfModel.real if np.iscomplexobj(otfModel) else otfModel
    return (real * weight).astype(real.dtype), epsilon


class DampedPsfMatcher:
    """The damped PSF-matching transfers of many visit PSFs to one model PSF, on one grid.

    Gives the same ``H`` as `psfMatchingTransfer` (``maxGain=None``) for any number of visit
    PSFs, without its loss map and flags: the model's damped inverse is computed once, in
    the constructor, and each visit's transfer function in single precision. This is what
    a PSF-aware forward model needs for every visit and subfilter.

    Parameters
    ----------
    modelPsf : Psf or numpy.ndarray
        The model's PSF, or its transfer function on this grid (`psfTransfer`).
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) grid.
    damping : float, optional
        ``epsilon = damping * max|OTF_model|`` (dimensionless, > 0).
    order : int, optional
        Sharpness ``p`` of the damping (>= 1).

    Examples
    --------
    >>> from dcrmodel.image import GaussianPsf
    >>> matcher = DampedPsfMatcher(GaussianPsf(3.0), (32, 32))
    >>> factors = matcher.factors([GaussianPsf(4.0), GaussianPsf(3.0)])
    >>> factors.shape, factors.dtype.name, round(float(factors[1].max()), 6)
    ((2, 32, 17), 'float32', 1.0)
    """

    def __init__(
        self,
        modelPsf: Psf | np.ndarray,
        shape: tuple[int, int],
        damping: float = 1e-3,
        order: int = 2,
    ) -> None:
        grid = _checkGrid(shape)
        eps = asPositiveFloat(damping, "damping", "fraction of max |OTF_model|")
        p = _wholeNumber(order, "order", 1)
        otfModel = _modelOtf(modelPsf, grid, np.complex128)
        inverse, self.epsilon = _dampedInverse(otfModel, eps, p)
        self.shape = grid
        self._inverse = inverse.astype(
            np.complex64 if np.iscomplexobj(inverse) else np.float32
        )

    def factors(self, visitPsfs: Sequence[Psf]) -> np.ndarray:
        """Return the transfers of ``visitPsfs`` (each at its own effective wavelength).

        Parameters
        ----------
        visitPsfs : sequence of Psf
            The visit PSFs, already at the wavelengths wanted (e.g. `ImagePsf` of
            `psfAtWavelength`).

        Returns
        -------
        factors : numpy.ndarray
            ``(len(visitPsfs), ny, nx // 2 + 1)``: float32 when every kernel and the model
            are point-symmetric (real transfers), else complex64.
        """
        for psf in visitPsfs:
            _checkPsfType(psf, "visitPsf")
        otfs = [psfTransfer(psf, self.shape, dtype=np.complex64) for psf in visitPsfs]
        real = not np.iscomplexobj(self._inverse) and not any(np.any(o.imag) for o in otfs)
        out = np.empty(
            (len(otfs), *self._inverse.shape), dtype=np.float32 if real else np.complex64
        )
        for index, otf in enumerate(otfs):
            np.multiply(otf.real if real else otf, self._inverse, out=out[index])
        return out


def psfMatchingTransfer(
    visitPsf: Psf,
    modelPsf: Psf | np.ndarray,
    shape: tuple[int, int],
    wavelength: float | None = None,
    effectiveWavelength: float | None = None,
    damping: float = 1e-3,
    order: int = 2,
    flagThreshold: float | None = None,
    dtype: Any = np.complex128,
    maxGain: float | None = None,
) -> PsfMatch:
    """Return the transfer function from the model's PSF to a visit's PSF, damped.

    Parameters
    ----------
    visitPsf : Psf
        The visit's PSF; evaluated at ``wavelength`` (its size scaled by
        ``(wavelength / effectiveWavelength) ** alpha``).
    modelPsf : Psf or numpy.ndarray
        The model's PSF, evaluated at its effective wavelength (the subfilter images all share
        it), or its transfer function already computed with `psfTransfer` on this grid.
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) grid.
    wavelength : float, optional
        Wavelength (nm) of the subfilter, usually its central wavelength (None: the visit
        PSF's effective wavelength).
    effectiveWavelength : float, optional
        The band's effective wavelength (nm), fallback for PSFs that carry none.
    damping : float, optional
        Damping level relative to ``max|OTF_model|`` (dimensionless, > 0): ``epsilon =
        damping * max|OTF_model|``.
    order : int, optional
        Sharpness ``p`` of the damping (>= 1): ``H = (OTF_v / OTF_m) * |OTF_m|^(2p) /
        (|OTF_m|^(2p) + epsilon^(2p))``. ``p = 1`` is the classic Wiener filter ``OTF_v *
        conj(OTF_m) / (|OTF_m|^2 + epsilon^2)``.
    flagThreshold : float, optional
        Loss above which a frequency is flagged (None: ``epsilon``).
    dtype : numpy dtype, optional
        ``complex128`` (default) or ``complex64``.
    maxGain : float, optional
        Largest allowed ``|H|`` (> 0): where the damped quotient exceeds it, ``H`` keeps its
        phase and is scaled down to ``maxGain``. Where a visit is sharper than the model,
        ``|H| > 1`` amplifies the model's noise along with its signal; a template made from
        a model of ``J`` visits stays below a visit's own noise with a gain of order
        ``sqrt(J)``. None: no limit beyond the damping.

    Returns
    -------
    PsfMatch
        The transfer, the loss map, the flags and the damping level.

    Raises
    ------
    DcrTypeError, DcrValueError, DcrShapeError
        Bad PSFs, grid, wavelengths or damping settings.

    Notes
    -----
    Where the model's PSF is broader than the visit's at some frequency, ``OTF_v / OTF_m``
    amplifies whatever the model holds there (noise, regularisation residue) without bound;
    damping caps the gain at about ``|OTF_v| / epsilon`` (``0.57 |OTF_v| / epsilon`` for
    ``p = 2``, ``|OTF_v| / (2 epsilon)`` for ``p = 1``). The default ``p = 2`` keeps the
    quotient exact to a relative ``(epsilon / |OTF_m|)^4`` wherever the model's OTF is not
    small, so a visit at the model's PSF gets ``H = 1`` to better than 1e-8 wherever
    ``|OTF_m| >= 0.1`` with the default ``damping = 1e-3`` (``p = 1`` would leave 1e-4 there),
    while the gain stays below ``570 |OTF_v|``.

    The default ``damping = 1e-3`` keeps the gain moderate where it matters: the gain is
    also proportional to ``|OTF_v|``, which is itself small where ``|OTF_m| < epsilon``
    unless the visit is much sharper (for Gaussians of FWHM 2.5 and 4 pixels, about 40 at
    most). A larger damping also cuts real signal: a Moffat PSF's transfer function falls
    only exponentially, so at the highest frequencies it exceeds that of a Gaussian model of
    smaller FWHM; with ``damping = 1e-2`` the template of a Moffat visit (beta 3.5, FWHM 4.5
    pixels) from a Gaussian model (FWHM 3 pixels) misses 1.5e-3 of the peak, with ``1e-3``
    1.5e-4. The loss ``|OTF_v - H OTF_m| = |OTF_v| epsilon^(2p) / (|OTF_m|^(2p) +
    epsilon^(2p))`` stays below ``0.57 epsilon`` (``p = 2``) wherever the visit is not sharper
    than the model (``|OTF_v| <= |OTF_m|``), so the default threshold ``epsilon`` flags the
    frequencies at which a visit is sharper than the model and has signal to lose. For the
    total effect on a template use `PsfMatch.residualFraction`, which sums the loss over all
    frequencies.

    Examples
    --------
    >>> from dcrmodel.image import GaussianPsf
    >>> broader = psfMatchingTransfer(GaussianPsf(4.0), GaussianPsf(3.0), (32, 32))
    >>> broader.transfer.shape, broader.isDamped
    ((32, 17), False)
    >>> psfMatchingTransfer(GaussianPsf(2.0), GaussianPsf(4.0), (32, 32)).isDamped
    True
    """
    _checkPsfType(visitPsf, "visitPsf")
    grid = _checkGrid(shape)
    cdtype = _complexType(dtype)
    eps = asPositiveFloat(damping, "damping", "fraction of max |OTF_model|")
    p = _wholeNumber(order, "order", 1)
    if flagThreshold is not None:
        flagThreshold = asPositiveFloat(flagThreshold, "flagThreshold", "fraction of the OTF at 0")
    if maxGain is not None:
        cap = asPositiveFloat(maxGain, "maxGain", "dimensionless")
    otfModel = _modelOtf(modelPsf, grid, cdtype)
    otfVisit = psfTransfer(visitPsf, grid, wavelength, effectiveWavelength, dtype=cdtype)

    inverse, epsilon = _dampedInverse(otfModel, eps, p)
    transfer = (otfVisit * inverse).astype(cdtype, copy=False)
    if maxGain is not None:
        gain = np.abs(transfer)
        over = gain > cap
        if over.any():
            transfer[over] *= (cap / gain[over]).astype(transfer.real.dtype)
    loss = np.abs(otfVisit - transfer * otfModel).astype(np.float64)
    threshold = epsilon if flagThreshold is None else flagThreshold
    flagged = loss > threshold
    if flagged.any():
        _log.debug(
            "PSF matching damped: %d of %d frequencies lose more than %.3g",
            int(flagged.sum()),
            flagged.size,
            threshold,
        )
    return PsfMatch(
        transfer=transfer,
        loss=loss,
        flagged=flagged,
        epsilon=epsilon,
        threshold=threshold,
        shape=grid,
        _otfVisit=otfVisit,
        _otfModel=otfModel,
    )


def modelPsfRidge(
    modelPsf: Psf | np.ndarray,
    shape: tuple[int, int],
    damping: float = 1e-3,
    maxValue: float = 1e12,
) -> np.ndarray:
    """Return a per-frequency ridge ``(epsilon / |OTF_model|)^2`` for a PSF-aware solver.

    A model whose images are the sky seen through ``modelPsf`` holds (almost) nothing at
    the frequencies where that PSF's transfer function is small, and a PSF-aware forward
    model (whose factors `psfMatchingTransfer` damps there) does not constrain them: without
    a prior a least-squares solution fills them with amplified noise. Added to the diagonal
    of the normal equations, relative to the total weight, this ridge pulls the model toward
    0 where ``|OTF_model| < epsilon`` and leaves it free (relative bias ``(epsilon /
    |OTF_model|)^2``) elsewhere.

    Parameters
    ----------
    modelPsf : Psf or numpy.ndarray
        The model's PSF, or its transfer function on this grid (`psfTransfer`).
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) grid.
    damping : float, optional
        ``epsilon = damping * max|OTF_model|`` (dimensionless, > 0), as in
        `psfMatchingTransfer`.
    maxValue : float, optional
        Upper bound of the ridge (where the OTF vanishes), > 0.

    Returns
    -------
    ridge : numpy.ndarray
        Real float64 ``(ny, nx // 2 + 1)``, >= 0.

    Examples
    --------
    >>> from dcrmodel.image import GaussianPsf
    >>> ridge = modelPsfRidge(GaussianPsf(3.0), (32, 32))
    >>> float(ridge[0, 0]) == 1e-6, bool(ridge.max() > 1.0)
    (True, True)
    """
    grid = _checkGrid(shape)
    eps = asPositiveFloat(damping, "damping", "fraction of max |OTF_model|")
    cap = asPositiveFloat(maxValue, "maxValue", "dimensionless")
    otf = np.abs(_modelOtf(modelPsf, grid, np.complex128))
    epsilon = eps * float(otf.max())
    with np.errstate(divide="ignore"):
        ridge = np.where(otf > 0, (epsilon / np.maximum(otf, 1e-300)) ** 2, np.inf)
    return np.minimum(ridge, cap)


# ---------------------------------------------------------------------------------------------
# Model PSF
# ---------------------------------------------------------------------------------------------


def _checkPsfList(psfs: Any) -> list[Psf]:
    if isinstance(psfs, Psf):
        return [psfs]
    try:
        items = list(psfs)
    except TypeError:
        raise DcrTypeError("psfs must be a sequence of Psf objects", psfs=type(psfs)) from None
    if not items:
        raise DcrValueError("psfs is empty; give at least one input PSF")
    for index, psf in enumerate(items):
        if psf is None:
            raise DcrValueError(
                f"input {index} has no PSF; estimate it with estimatePsf, or supply one "
                "(a PSF HDU in its file or an explicit psf argument)",
                index=index,
            )
        _checkPsfType(psf, f"psfs[{index}]")
    return items


def _sharpestFwhm(
    psf: Psf, wavelengths: list[float] | None, effectiveWavelength: float | None
) -> float:
    if not wavelengths:
        return psf.fwhm
    return min(psfFwhmAt(psf, wl, effectiveWavelength) for wl in wavelengths)


def modelPsfFor(
    psfs: Sequence[Psf],
    policy: str | float | Psf = "sharpest",
    wavelengths: Iterable[float] | None = None,
    effectiveWavelength: float | None = None,
) -> Psf:
    """Choose the PSF of a DCR model from its inputs' PSFs.

    Parameters
    ----------
    psfs : sequence of Psf
        The input visits' PSFs (none may be None).
    policy : str, float or Psf, optional
        ``"sharpest"`` (default): a `GaussianPsf` with the smallest FWHM among the inputs, the
        sharpest model the inputs support. ``"median"``: a `GaussianPsf` with the median FWHM.
        ``"sharpestInput"``: the sharpest input PSF itself, made achromatic (its kernel at its
        effective wavelength as an `ImagePsf`), so that its visit needs no matching. A number:
        a `GaussianPsf` of that FWHM (pixels). A `Psf`: used as given (validated).
    wavelengths : iterable of float, optional
        Wavelengths (nm), e.g. the subfilters' central wavelengths. A chromatic input's FWHM is
        then its smallest over them (with ``alpha = -0.2`` the reddest is sharpest), so that
        no visit is sharper than the model in any subfilter. None: FWHMs at the effective
        wavelength.
    effectiveWavelength : float, optional
        The band's effective wavelength (nm): fallback for inputs without one, and the
        effective wavelength given to the returned PSF.

    Returns
    -------
    Psf
        The model PSF, achromatic (``alpha = 0``).

    Raises
    ------
    DcrValueError, DcrTypeError
        Empty list, a missing PSF, an unknown policy or a non-positive FWHM.

    Notes
    -----
    A Gaussian model of the same FWHM as a Moffat-like input is not sharper than it at every
    frequency (a Moffat's transfer function falls exponentially, a Gaussian's faster), so the
    PSF matching of the sharpest visit is then damped at the highest frequencies;
    ``"sharpestInput"`` avoids that.
    """
    items = _checkPsfList(psfs)
    waves = None if wavelengths is None else [
        asPositiveFloat(wl, "wavelengths", "nm") for wl in wavelengths
    ]
    lambdaEff = (
        None
        if effectiveWavelength is None
        else asPositiveFloat(effectiveWavelength, "effectiveWavelength", "nm")
    )
    if lambdaEff is None:
        known = {p.effectiveWavelength for p in items if p.effectiveWavelength is not None}
        lambdaEff = known.pop() if len(known) == 1 else None
    if isinstance(policy, Psf):
        validatePsfAlpha(policy.alpha, "policy.alpha (PSF-ALPH)")
        return policy
    if isinstance(policy, numbers.Real) and not isinstance(policy, bool):
        fwhm = asPositiveFloat(policy, "policy (model FWHM)", "pixels")
        return GaussianPsf(fwhm, alpha=0.0, effectiveWavelength=lambdaEff)
    if policy not in MODEL_PSF_POLICIES:
        raise DcrValueError(
            f"unknown model PSF policy; use one of {', '.join(MODEL_PSF_POLICIES)}, a FWHM in "
            "pixels or a Psf",
            policy=policy,
        )
    widths = np.array([_sharpestFwhm(p, waves, effectiveWavelength) for p in items])
    if policy == "median":
        return GaussianPsf(float(np.median(widths)), alpha=0.0, effectiveWavelength=lambdaEff)
    index = int(np.argmin(widths))
    if policy == "sharpest":
        return GaussianPsf(float(widths[index]), alpha=0.0, effectiveWavelength=lambdaEff)
    sharpest = items[index]
    wave = None
    if waves:
        wave = min(waves, key=lambda wl: psfFwhmAt(sharpest, wl, effectiveWavelength))
    kernel = psfAtWavelength(sharpest, wave, effectiveWavelength)
    return ImagePsf(kernel, alpha=0.0, effectiveWavelength=lambdaEff, fwhm=float(widths[index]))


def sharpestPsf(
    psfs: Sequence[Psf],
    wavelengths: Iterable[float] | None = None,
    effectiveWavelength: float | None = None,
) -> GaussianPsf:
    """Return a `GaussianPsf` with the smallest FWHM among ``psfs`` (``modelPsfFor`` default).

    Parameters
    ----------
    psfs : sequence of Psf
        The input PSFs.
    wavelengths : iterable of float, optional
        Wavelengths (nm) over which each input's smallest FWHM is taken.
    effectiveWavelength : float, optional
        The band's effective wavelength (nm).

    Returns
    -------
    GaussianPsf
        Achromatic, FWHM in pixels.
    """
    psf = modelPsfFor(psfs, "sharpest", wavelengths, effectiveWavelength)
    assert isinstance(psf, GaussianPsf)
    return psf


# ---------------------------------------------------------------------------------------------
# PSF estimation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PsfEstimate:
    """A PSF estimated from the stars of an exposure.

    Attributes
    ----------
    psf : Psf
        The estimate (an `ImagePsf` of the fitted profile, or a `GaussianPsf`).
    fwhm : float
        Median FWHM of the stars used, pixels (pixel response included).
    nStars : int
        Number of stars used.
    fwhmScatter : float
        Robust standard deviation (1.4826 x median absolute deviation) of their FWHMs, pixels.
    beta : float
        Median Moffat index of the fitted profiles (``inf``: Gaussian).
    starPositions : numpy.ndarray
        ``(nStars, 2)`` parent pixel coordinates ``(x, y)`` of the stars used.
    zenithDirection : tuple of float or None
        Unit vector ``(uy, ux)`` of the direction along which widths were NOT measured (the
        zenith direction, or the stars' common elongation when it was not given).
    """

    psf: Psf
    fwhm: float
    nStars: int
    fwhmScatter: float
    beta: float
    starPositions: np.ndarray
    zenithDirection: tuple[float, float] | None

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (for run summaries)."""
        return {
            "psfType": type(self.psf).__name__,
            "fwhm": self.fwhm,
            "nStars": self.nStars,
            "fwhmScatter": self.fwhmScatter,
            "beta": None if math.isinf(self.beta) else self.beta,
            "zenithDirection": None
            if self.zenithDirection is None
            else list(self.zenithDirection),
        }


def _toArray(value: Any, name: str) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, (Image, Mask)):
        return value.array
    array = np.asarray(value)
    if array.ndim != 2:
        raise DcrShapeError(f"{name} must be a 2-d array (y, x)", shape=array.shape)
    return array


def _badPixels(
    mask: Any, shape: tuple[int, int], badMaskPlanes: Sequence[str]
) -> np.ndarray:
    """Boolean map of pixels flagged in ``badMaskPlanes`` (True = do not use)."""
    if mask is None:
        return np.zeros(shape, dtype=bool)
    if isinstance(mask, Mask):
        planes = mask.planes
        array = mask.array
    else:
        array = _toArray(mask, "mask")
        planes = DEFAULT_MASK_PLANES
    if array.shape != shape:
        raise DcrShapeError("mask and image shapes differ", maskShape=array.shape, shape=shape)
    if array.dtype == bool:
        return array.copy()
    if array.dtype.kind not in "iu":
        raise DcrTypeError("mask must be an integer bit mask, a boolean array or a Mask",
                           dtype=array.dtype)
    bits = 0
    for name in badMaskPlanes:
        if name in planes:
            bits |= 1 << planes[name]
    return (array.astype(np.int64) & bits) != 0


def _unpackSource(source: Any) -> tuple[np.ndarray, np.ndarray | None, Any, tuple[int, int]]:
    """Return (image, variance, mask, origin (x0, y0)) of an Exposure, MaskedImage or tuple."""
    if isinstance(source, Exposure):
        source = source.maskedImage
    if isinstance(source, MaskedImage):
        origin = source.image.origin
        return source.image.array, source.variance.array, source.mask, tuple(origin)
    if isinstance(source, (Image, np.ndarray)):
        source = (source, None, None)
    if not isinstance(source, (tuple, list)) or len(source) not in (1, 2, 3):
        raise DcrTypeError(
            "estimatePsf needs an Exposure, a MaskedImage or a tuple (image, variance, mask) "
            "of arrays (variance and mask may be None)",
            source=type(source).__name__,
        )
    parts = list(source) + [None] * (3 - len(source))
    image = _toArray(parts[0], "image")
    if image is None:
        raise DcrValueError("estimatePsf needs an image")
    origin = tuple(parts[0].origin) if isinstance(parts[0], Image) else (0, 0)
    variance = _toArray(parts[1], "variance")
    if variance is not None and variance.shape != image.shape:
        raise DcrShapeError(
            "variance and image shapes differ", varianceShape=variance.shape, shape=image.shape
        )
    return image, variance, parts[2], origin


def _unitDirection(direction: Any) -> tuple[float, float] | None:
    try:
        vy, vx = (float(v) for v in direction)
    except (TypeError, ValueError):
        raise DcrTypeError(
            "zenithDirection must be a pair (vy, vx) of numbers (pixels), None or 'auto'",
            zenithDirection=direction,
        ) from None
    if not (math.isfinite(vy) and math.isfinite(vx)):
        raise DcrValueError("zenithDirection must be finite", zenithDirection=direction)
    norm = math.hypot(vy, vx)
    if norm == 0.0:
        return None
    return vy / norm, vx / norm


def _profileFwhm(width: float, eta: float) -> float:
    """FWHM of ``(1 + eta r^2 / (2 w^2)) ** (-1/eta)`` (the Gaussian ``exp(-r^2/2w^2)`` at 0)."""
    if eta < 1e-8:
        return 2.0 * width * math.sqrt(2.0 * math.log(2.0))
    return 2.0 * width * math.sqrt(2.0 * (2.0**eta - 1.0) / eta)


def _profile(q: np.ndarray, eta: float) -> np.ndarray:
    """Evaluate the circular profile ``(1 + eta q) ** (-1/eta)`` (``exp(-q)`` as eta -> 0)."""
    if eta < 1e-8:
        return np.exp(-q)
    return np.exp(-np.log1p(eta * q) / eta)


def _marginalModel(t: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Cross-section of a circular Moffat-like profile, integrated along the other axis.

    The circular profile ``(1 + eta r^2 / (2 w^2)) ** (-1/eta)`` (a Moffat with ``beta =
    1/eta``; a Gaussian of standard deviation ``w`` as eta -> 0) integrates along one axis to
    ``(1 + eta t^2 / (2 w^2)) ** -(1/eta - 1/2)``.
    """
    amplitude, centre, logWidth, eta, background = params
    q = (t - centre) ** 2 / (2.0 * math.exp(2.0 * logWidth))
    if eta < 1e-8:
        shape = np.exp(-q)
    else:
        shape = np.exp(-(1.0 / eta - 0.5) * np.log1p(eta * q))
    return amplitude * shape + background


def _elongationAxis(
    data: np.ndarray, positions: list[tuple[int, int]], radius: int
) -> tuple[float, float] | None:
    """Median major axis ``(uy, ux)`` of the stars' Gaussian-weighted second moments."""
    e1s, e2s = [], []
    coord = np.arange(-radius, radius + 1, dtype=np.float64)
    yy, xx = np.meshgrid(coord, coord, indexing="ij")
    weight = np.exp(-(xx**2 + yy**2) / (2.0 * (radius / 2.5) ** 2))
    for y, x in positions:
        stamp = data[y - radius : y + radius + 1, x - radius : x + radius + 1] * weight
        total = stamp.sum()
        if not total > 0.0:
            continue
        ixx = (stamp * xx**2).sum() / total
        iyy = (stamp * yy**2).sum() / total
        ixy = (stamp * xx * yy).sum() / total
        trace = ixx + iyy
        if trace > 0.0:
            e1s.append((ixx - iyy) / trace)
            e2s.append(2.0 * ixy / trace)
    if not e1s:
        return None
    angle = 0.5 * math.atan2(float(np.median(e2s)), float(np.median(e1s)))
    return math.sin(angle), math.cos(angle)


def _fitStar(
    data: np.ndarray,
    noiseVar: np.ndarray,
    x0: float,
    y0: float,
    along: tuple[float, float],
    radius: int,
    widthGuess: float,
) -> tuple[float, float] | None:
    """Fit the cross-zenith marginal profile of one star; return (fwhm, eta) or None."""
    zy, zx = along
    uy, ux = zx, -zy  # perpendicular to the zenith direction
    # Work on a local cut-out: the spline prefilter then costs nothing on large images.
    reach = math.ceil(radius * math.sqrt(2.0)) + 3
    iy, ix = int(round(y0)), int(round(x0))
    cutData = data[iy - reach : iy + reach + 1, ix - reach : ix + reach + 1]
    cutVar = noiseVar[iy - reach : iy + reach + 1, ix - reach : ix + reach + 1]
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    tt, ss = np.meshgrid(t, t, indexing="ij")
    xs = x0 - (ix - reach) + tt * ux + ss * zx
    ys = y0 - (iy - reach) + tt * uy + ss * zy
    values = ndimage.map_coordinates(cutData, [ys, xs], order=3, mode="nearest")
    variances = ndimage.map_coordinates(cutVar, [ys, xs], order=0, mode="nearest")
    marginal = values.sum(axis=1)
    sigma = np.sqrt(np.maximum(variances.sum(axis=1), 1e-30))
    edge = np.concatenate([marginal[:2], marginal[-2:]])
    background = float(np.median(edge))
    amplitude = float(marginal.max() - background)
    if not amplitude > 0.0:
        return None
    start = np.array(
        [amplitude, 0.0, math.log(max(widthGuess, 0.5)), 0.15, min(background, 0.0)]
    )
    lower = [0.0, -2.0, math.log(0.2), 0.0, -np.inf]
    upper = [np.inf, 2.0, math.log(2.0 * radius), _MAX_ETA, np.inf]

    def residuals(params: np.ndarray) -> np.ndarray:
        return (_marginalModel(t, params) - marginal) / sigma

    try:
        result = optimize.least_squares(residuals, start, bounds=(lower, upper), x_scale="jac")
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not result.success:
        return None
    _, centre, logWidth, eta, _ = result.x
    width = math.exp(logWidth)
    if abs(centre) > 1.5 or width <= 0.2 * 1.001 or width >= 2.0 * radius * 0.999:
        return None
    return _profileFwhm(width, float(eta)), float(eta)


def _clipOutliers(values: np.ndarray, clipSigma: float, floor: float) -> np.ndarray:
    """Boolean keep-mask after iterative median/MAD clipping (at least ``floor`` x median)."""
    keep = np.ones(values.size, dtype=bool)
    for _ in range(10):
        median = float(np.median(values[keep]))
        scatter = 1.4826 * float(np.median(np.abs(values[keep] - median)))
        limit = max(clipSigma * scatter, floor * median)
        newKeep = np.abs(values - median) <= limit
        if not newKeep.any() or np.array_equal(newKeep, keep):
            break
        keep = newKeep
    return keep


def estimatePsf(
    source: Any,
    zenithDirection: Any = "auto",
    *,
    minSnr: float = 50.0,
    minStars: int = 3,
    maxStars: int = 100,
    stampRadius: int | None = None,
    isolationRadius: float | None = None,
    saturation: float | None = None,
    badMaskPlanes: Sequence[str] = DEFAULT_BAD_MASK_PLANES,
    clipSigma: float = 3.0,
    profile: str = "fit",
    alpha: float = 0.0,
    effectiveWavelength: float | None = None,
) -> PsfEstimate:
    """Estimate an exposure's PSF from its bright, isolated, unmasked stars.

    Parameters
    ----------
    source : Exposure, MaskedImage or tuple
        The pixels: an `Exposure`, a `MaskedImage`, or ``(image, variance, mask)`` arrays
        (variance None: the sky noise measured from the image; mask None, an integer bit mask
        with the default planes, a boolean array (True = bad) or a `Mask`). The image should be
        background-subtracted; a residual constant background is measured and removed.
    zenithDirection : tuple of float, None or "auto", optional
        ``(vy, vx)`` (any length) along which DCR smears the stars; widths are measured
        perpendicular to it. ``"auto"``: from the exposure's visit info and WCS
        (`dcrmodel.physics.dcr.zenithDirection`) when ``source`` is an `Exposure` that has both,
        else
        as None. None: unknown; the stars' median elongation axis is used instead.
    minSnr : float, optional
        Minimum signal-to-noise ratio of a star (flux within one FWHM of its peak).
    minStars : int, optional
        Minimum number of usable stars.
    maxStars : int, optional
        At most this many of the brightest usable stars are fitted.
    stampRadius : int, optional
        Half-size (pixels) of the square region measured around each star (None: three times
        a first size estimate, at least 4).
    isolationRadius : float, optional
        Stars with a brighter source closer than this (pixels) are skipped, as are stars with
        a source brighter than 1 % of them inside their stamp (None: twice the stamp radius).
    saturation : float, optional
        Pixel value (image units) at or above which a pixel is treated as saturated, in
        addition to the SAT mask plane.
    badMaskPlanes : sequence of str, optional
        Mask planes that disqualify a star when set anywhere in its stamp.
    clipSigma : float, optional
        Stars whose FWHM differs from the median by more than ``clipSigma`` robust standard
        deviations (and by more than 2 %) are rejected (galaxies, blends, cosmic rays).
    profile : {"fit", "gaussian"}, optional
        ``"fit"``: return an `ImagePsf` of the median fitted profile (Moffat-like, Gaussian in
        the limit); ``"gaussian"``: a `GaussianPsf` of the median FWHM.
    alpha : float, optional
        Chromatic exponent given to the estimate (one broadband image cannot measure it).
    effectiveWavelength : float, optional
        Wavelength (nm) of the estimate (None: the exposure's filter, if any).

    Returns
    -------
    PsfEstimate
        The PSF, its FWHM (pixels), the number of stars used, their FWHM scatter and more.

    Raises
    ------
    DcrValueError
        Fewer than ``minStars`` usable stars (the message says how to supply a PSF instead),
        or bad settings.
    DcrTypeError, DcrShapeError
        Unusable inputs.

    Warns
    -----
    DcrPsfWarning
        Always, on success: the PSF was estimated rather than given.

    Notes
    -----
    Peaks of the image smoothed by a unit Gaussian, at least 5 sigma above the sky, are
    sources, one per connected region above that threshold (its highest peak; a region with a
    second peak above a tenth of the first is a blend and skipped). A source is a candidate
    if its S/N exceeds ``minSnr``, no source brighter than 1 % of it lies inside its stamp
    and none brighter than it within ``isolationRadius``, and its stamp lies inside the
    image and holds no pixel flagged in ``badMaskPlanes``, none at or above ``saturation``
    and none non-finite.

    Each star is resampled (cubic spline) on a grid aligned with the zenith direction and
    summed along it. That cross-zenith profile is exactly independent of DCR: refraction
    moves light along the zenith direction only, and summing along it undoes any such
    movement. The profile is fitted (weighted least squares) by the cross-section of a
    circular Moffat-like profile ``(1 + eta r^2 / (2 w^2)) ** (-1/eta)`` (Moffat 1969, ``beta
    = 1/eta``; a Gaussian of standard deviation ``w`` as ``eta -> 0``), whose integral along
    one axis is ``(1 + eta t^2 / (2 w^2)) ** -(1/eta - 1/2)``. A star's FWHM is that of the
    fitted circular profile, ``2 w sqrt(2 (2^eta - 1) / eta)``. Fitting the profile's shape
    rather than converting a second moment with a Gaussian assumption matters: the
    Gaussian-equivalent width of a Moffat star's second moment overestimates its FWHM by
    10-16 % for beta between 4.8 and 2.5, while the fit recovers Gaussian and Moffat FWHMs to
    0.3 % and that of Kolmogorov seeing (outside the family: its wings fall as r^(-11/3)) to
    about 2 % (low). The widths include the pixel response (the fit is to pixel values), like
    the PSF HDU's images.

    The estimate is the median FWHM and the median ``eta`` of the stars left after clipping
    outliers; the PSF is assumed circular.
    """
    # ---- validation, before any work
    image, variance, mask, origin = _unpackSource(source)
    minSnr = asPositiveFloat(minSnr, "minSnr", "signal-to-noise ratio")
    minStars = _wholeNumber(minStars, "minStars", 1)
    maxStars = _wholeNumber(maxStars, "maxStars", minStars)
    if stampRadius is not None:
        stampRadius = _wholeNumber(stampRadius, "stampRadius", 2)
    if isolationRadius is not None:
        isolationRadius = asPositiveFloat(isolationRadius, "isolationRadius", "pixels")
    if saturation is not None:
        saturation = _finiteFloat(saturation, "saturation", "image units")
    if isinstance(badMaskPlanes, str):
        badMaskPlanes = (badMaskPlanes,)
    badMaskPlanes = tuple(badMaskPlanes)
    clipSigma = asPositiveFloat(clipSigma, "clipSigma", "standard deviations")
    if profile not in ("fit", "gaussian"):
        raise DcrValueError("profile must be 'fit' or 'gaussian'", profile=profile)
    alpha = validatePsfAlpha(alpha, "alpha")
    if effectiveWavelength is None and isinstance(source, Exposure) and source.filter is not None:
        effectiveWavelength = source.filter.effectiveWavelength
    if effectiveWavelength is not None:
        effectiveWavelength = asPositiveFloat(effectiveWavelength, "effectiveWavelength", "nm")
    if isinstance(zenithDirection, str):
        if zenithDirection != "auto":
            raise DcrValueError(
                "zenithDirection must be (vy, vx), None or 'auto'", zenithDirection=zenithDirection
            )
        along = None
        if (
            isinstance(source, Exposure)
            and source.visitInfo is not None
            and source.wcs is not None
        ):
            try:
                along = _unitDirection(
                    dcr.zenithDirection(source.visitInfo, source.wcs, source.bbox)
                )
            except DcrMetadataError as error:
                _log.info("zenith direction unknown (%s); using the stars' elongation", error)
    elif zenithDirection is None:
        along = None
    else:
        along = _unitDirection(zenithDirection)
    if image.dtype.kind not in "fiu":
        raise DcrTypeError("image must be a real numeric array", dtype=image.dtype)
    shape = image.shape
    bad = _badPixels(mask, shape, badMaskPlanes)

    # ---- pixels, background, noise
    data = np.asarray(image, dtype=np.float64)
    bad |= ~np.isfinite(data)
    if saturation is not None:
        bad |= np.where(np.isfinite(data), data, -np.inf) >= saturation
    if variance is not None:
        var = np.asarray(variance, dtype=np.float64)
        bad |= ~np.isfinite(var) | (var <= 0.0)
    good = ~bad
    if good.sum() < 16:
        raise DcrValueError(
            "too few unmasked pixels to estimate a PSF; supply one (a PSF HDU in the file or "
            "an explicit psf argument)",
            goodPixels=int(good.sum()),
        )
    from astropy.stats import sigma_clipped_stats

    _, skyLevel, skyNoise = sigma_clipped_stats(data[good], sigma=3.0, maxiters=5)
    data = np.where(good, data - skyLevel, 0.0)
    if variance is None:
        var = np.full(shape, max(float(skyNoise) ** 2, 1e-30))
    var = np.where(good, var, np.inf)

    # ---- detection
    smooth = ndimage.gaussian_filter(data, 1.0, mode="constant")
    _, _, smoothNoise = sigma_clipped_stats(smooth[good], sigma=3.0, maxiters=5)
    peaks = (
        (smooth == ndimage.maximum_filter(smooth, size=3, mode="constant"))
        & (smooth > 5.0 * max(float(smoothNoise), 1e-30))
        & good
    )
    # One source per connected region above the threshold (the noise bumps on a bright
    # star's wings are local maxima too, but of the same region): its highest peak. A region
    # with a second peak above a tenth of its highest is a blend.
    labels, numRegions = ndimage.label((smooth > 5.0 * max(float(smoothNoise), 1e-30)) & good)
    py, px = np.nonzero(peaks)
    order = np.argsort(-smooth[py, px])
    py, px = py[order], px[order]
    chosen: dict[int, tuple[int, int]] = {}
    blended: set[int] = set()
    for y, x in zip(py, px, strict=True):
        label = int(labels[y, x])
        if label not in chosen:
            chosen[label] = (int(y), int(x))
        elif smooth[y, x] > 0.1 * smooth[chosen[label]]:
            blended.add(label)
    sources = list(chosen.items())
    py = np.array([yx[0] for _, yx in sources], dtype=int)
    px = np.array([yx[1] for _, yx in sources], dtype=int)
    isBlend = np.array([label in blended for label, _ in sources], dtype=bool)
    peakValues = smooth[py, px] if py.size else np.zeros(0)
    _log.debug("%d sources (%d blended) from %d peaks", py.size, int(isBlend.sum()),
               int(peaks.sum()))

    # ---- a first size from the brightest clean peaks: area above half maximum
    firstSizes = []
    half = 10
    for y, x in zip(py[:50], px[:50], strict=False):
        if y < half or x < half or y + half >= shape[0] or x + half >= shape[1]:
            continue
        stamp = data[y - half : y + half + 1, x - half : x + half + 1]
        if bad[y - half : y + half + 1, x - half : x + half + 1].any():
            continue
        labels, _ = ndimage.label(stamp > 0.5 * stamp[half, half])
        area = np.count_nonzero(labels == labels[half, half])
        firstSizes.append(2.0 * math.sqrt(area / math.pi))
    firstFwhm = float(np.median(firstSizes)) if firstSizes else 3.0
    radius = stampRadius if stampRadius is not None else max(math.ceil(3.0 * firstFwhm), 4)
    isolation = isolationRadius if isolationRadius is not None else 2.0 * radius
    reach = math.ceil(radius * math.sqrt(2.0)) + 3  # the rotated stamp plus spline support
    aperture = max(firstFwhm, 1.5)

    # ---- candidate stars
    points = np.column_stack([py, px]).astype(np.float64)
    candidates: list[tuple[int, int]] = []
    for index, (y, x) in enumerate(zip(py, px, strict=False)):
        if isBlend[index]:
            continue
        if y < reach or x < reach or y + reach >= shape[0] or x + reach >= shape[1]:
            continue
        if bad[y - reach : y + reach + 1, x - reach : x + reach + 1].any():
            continue
        # isolated: no source brighter than 1 % of this one inside its stamp, and none
        # brighter than it within the isolation radius (whose wings would dominate)
        distance = np.hypot(points[:, 0] - y, points[:, 1] - x)
        distance[index] = np.inf
        if np.any((distance < radius) & (peakValues > 0.01 * peakValues[index])) or np.any(
            (distance < isolation) & (peakValues > peakValues[index])
        ):
            continue
        r = math.ceil(aperture)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        inside = yy**2 + xx**2 <= aperture**2
        flux = data[y - r : y + r + 1, x - r : x + r + 1][inside].sum()
        noise = math.sqrt(var[y - r : y + r + 1, x - r : x + r + 1][inside].sum())
        if not flux > minSnr * noise:
            continue
        candidates.append((int(y), int(x)))
        if len(candidates) >= maxStars:
            break

    # ---- the direction along which widths are not measured
    if along is None and candidates:
        along = _elongationAxis(data, candidates, radius)
    axis = along if along is not None else (1.0, 0.0)

    # ---- measurements
    fwhms, etas, positions = [], [], []
    widthGuess = firstFwhm / FWHM_PER_SIGMA
    for y, x in candidates:
        window = data[y - 1 : y + 2, x - 1 : x + 2]
        weights = np.clip(window, 0.0, None)
        total = weights.sum()
        offsets = np.array([-1.0, 0.0, 1.0])
        yc = y + (weights.sum(axis=1) * offsets).sum() / total if total > 0 else float(y)
        xc = x + (weights.sum(axis=0) * offsets).sum() / total if total > 0 else float(x)
        measured = _fitStar(data, var, xc, yc, axis, radius, widthGuess)
        if measured is None:
            continue
        fwhms.append(measured[0])
        etas.append(measured[1])
        positions.append((xc + origin[0], yc + origin[1]))
    fwhmArray = np.array(fwhms)
    keep = _clipOutliers(fwhmArray, clipSigma, 0.02) if fwhmArray.size else fwhmArray.astype(bool)
    nStars = int(keep.sum())
    if nStars < minStars:
        raise DcrValueError(
            f"only {nStars} usable stars to estimate the PSF (bright: S/N > {minSnr:g}, "
            f"isolated, unmasked, unsaturated, point-like); at least {minStars} are needed. "
            "Supply the PSF instead: a PSF HDU in the exposure's file (an odd-sized, centred "
            "image summing to 1 with keys PSF-FWHM and PSF-ALPH, see the primer) or an "
            "explicit psf argument (GaussianPsf(fwhm) or ImagePsf(kernel))",
            usableStars=nStars,
            candidates=len(candidates),
            minStars=minStars,
        )
    kept = fwhmArray[keep]
    fwhm = float(np.median(kept))
    eta = float(np.median(np.array(etas)[keep]))
    scatter = 1.4826 * float(np.median(np.abs(kept - fwhm))) if nStars > 1 else 0.0
    beta = math.inf if eta < 1e-8 else 1.0 / eta

    if profile == "gaussian":
        psf: Psf = GaussianPsf(fwhm, alpha=alpha, effectiveWavelength=effectiveWavelength)
    else:
        width = fwhm / _profileFwhm(1.0, eta)
        kernelHalf = max(min(math.ceil(4.0 * fwhm), (min(shape) - 1) // 2), 1)
        coord = np.arange(-kernelHalf, kernelHalf + 1, dtype=np.float64)
        rr = coord[:, None] ** 2 + coord[None, :] ** 2
        kernel = _profile(rr / (2.0 * width * width), eta)
        psf = ImagePsf(kernel, alpha=alpha, effectiveWavelength=effectiveWavelength, fwhm=fwhm)

    estimate = PsfEstimate(
        psf=psf,
        fwhm=fwhm,
        nStars=nStars,
        fwhmScatter=scatter,
        beta=beta,
        starPositions=np.array(positions, dtype=np.float64)[keep].reshape(-1, 2),
        zenithDirection=None if along is None else (float(along[0]), float(along[1])),
    )
    _log.info(
        "estimated PSF FWHM %.3f px (scatter %.3f px) from %d stars", fwhm, scatter, nStars
    )
    warnings.warn(
        f"no PSF given: estimated one from {nStars} stars, FWHM {fwhm:.3f} pixels (scatter "
        f"{scatter:.3f}); supply a PSF HDU or an explicit psf to use a measured PSF",
        DcrPsfWarning,
        stacklevel=2,
    )
    return estimate
