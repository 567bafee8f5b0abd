"""Chromatic PSF kernels: a PSF at a wavelength, kernel sizes, optical transfer functions.

A DCR model's subfilter images are the sky seen through the model's PSF. To forward-model
visit ``j`` in subfilter ``k`` the model image is moved by its DCR and re-blurred from the
model's PSF to the visit's PSF at the subfilter's wavelength, a product of transfer functions
on the ``rfft2`` grid of a padded array (`dcrmodel.fourier`). This module supplies the PSF
kernels of that product and their transfer functions (the matching itself is in
`dcrmodel.psf.matching`):

- `psfAtWavelength`: the kernel image of a PSF at a wavelength, its size scaled by
  ``(wavelength / effectiveWavelength) ** alpha`` (``alpha = -0.2`` for Kolmogorov seeing);
  `psfFwhmAt`: its FWHM there.
- `maxKernelSize`, `effectiveKernelSize`: the padding a PSF-matched Fourier grid needs.
- `psfTransfer`: the optical transfer function (OTF) of a PSF on the ``rfft2`` grid, placed so
  that it introduces no shift.
- `validatePsfImage`, `validatePsfAlpha`, `validatePsf`: checks of user-supplied PSFs.

Conventions: arrays are ``(y, x)``; sizes and FWHMs in pixels; wavelengths in nm. A PSF kernel
is an odd-sized square array, centred on its middle pixel, summing to 1, with the pixel response
included (the primer's PSF HDU convention). The transfer function of a kernel is its discrete
Fourier transform with the kernel's centre at array index ``(0, 0)``, so it equals 1 at zero
frequency and is real for a point-symmetric kernel.

References
----------
I. Sullivan, DMTN-121, "Variable seeing in DCR-matched templates", https://dmtn-121.lsst.io.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage

from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from ..image import ImagePsf, Psf

__all__ = [
    "psfAtWavelength",
    "psfFwhmAt",
    "maxKernelSize",
    "effectiveKernelSize",
    "psfTransfer",
    "validatePsfAlpha",
    "validatePsfImage",
    "validatePsf",
]

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Validation (shared by the modules of dcrmodel.psf)
# ---------------------------------------------------------------------------------------------


def finiteFloat(value: Any, name: str, unit: str) -> float:
    """Return ``value`` as a finite float; errors name ``name`` and its ``unit``."""
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
    """Return ``value`` as a positive finite float; errors name ``name`` and its ``unit``."""
    out = finiteFloat(value, name, unit)
    if out <= 0.0:
        raise DcrValueError(f"{name} must be positive ({unit})", **{name: value})
    return out


def wholeNumber(value: Any, name: str, minimum: int) -> int:
    """Return ``value`` (an integer, or a float with an integer value) as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise DcrTypeError(f"{name} must be an integer", **{name: value})
    if int(value) < minimum:
        raise DcrValueError(f"{name} must be at least {minimum}", **{name: value})
    return int(value)


def checkGrid(shape: Any) -> tuple[int, int]:
    """Return a grid ``shape`` as a pair of positive ints ``(ny, nx)`` (pixels)."""
    try:
        values = tuple(shape)
    except TypeError:
        raise DcrTypeError("shape must be a pair of positive ints (ny, nx)", shape=shape) from None
    if len(values) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise DcrValueError("shape must be a pair of positive ints (ny, nx)", shape=shape)
    return int(values[0]), int(values[1])


def checkPsfType(psf: Any, name: str = "psf") -> Psf:
    """Return ``psf`` if it is a `Psf`, else raise `DcrTypeError` naming ``name``."""
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
    value = finiteFloat(alpha, name, "dimensionless exponent")
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
        ny, nx = checkGrid(exposureShape)
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
    checkPsfType(psf)
    validatePsfAlpha(psf.alpha, "psf.alpha (PSF-ALPH)")
    if exposureShape is not None:
        ny, nx = checkGrid(exposureShape)
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
    checkPsfType(psf)
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
    checkPsfType(psf)
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

    Use it as ``psfSize`` of `dcrmodel.fourier.padding.paddedShape` so a PSF-matched template
    does not wrap around the padded grid.

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


def complexType(dtype: Any) -> np.dtype:
    """Return the complex dtype (complex64 or complex128) matching ``dtype``."""
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
            "the grid (dcrmodel.fourier.padding.paddedShape with psfSize=maxKernelSize(...))",
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
        `dcrmodel.fourier.transfer.frequencyGrid`.
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
    checkPsfType(psf)
    grid = checkGrid(shape)
    cdtype = complexType(dtype)
    kernel = psfAtWavelength(psf, wavelength, effectiveWavelength)
    return _kernelTransfer(kernel, grid, cdtype)
