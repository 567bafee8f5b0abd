"""The optional PSF HDU of the Rubin exposure layout.

An exposure file may hold an HDU ``PSF`` (`PSF_EXTNAME`): the PSF image at the band's
effective wavelength (float64), with ``PSF-FWHM`` (arcsec; needs a WCS) and ``PSF-ALPH``
(exponent of the PSF size with wavelength), and dcrmodel's ``PSF-FWPX`` (pixels),
``PSF-WAVE`` (nm) and ``PSF-MODL`` (``GAUSSIAN`` or ``IMAGE``), with which the same kind of
PSF is restored. `psfToHdu` writes it and `psfFromHdu` reads it back; both are shared by the
modules of ``dcrmodel.fits`` and not handed on by it.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_area

from ..errors import DcrError, DcrFitsError, DcrTypeError
from ..image import Filter, GaussianPsf, ImagePsf, Psf
from .headers import headerFloat, headerStr, setKey

__all__ = ["PSF_EXTNAME", "psfToHdu", "psfFromHdu"]

#: EXTNAME of the PSF HDU.
PSF_EXTNAME = "PSF"

_PSF_MODEL_GAUSSIAN = "GAUSSIAN"
_PSF_MODEL_IMAGE = "IMAGE"


def _pixelScaleArcsec(wcs: WCS) -> float:
    """Return the pixel scale (arcsec), the square root of the pixel area at CRPIX."""
    return math.sqrt(proj_plane_pixel_area(wcs.celestial)) * 3600.0


def psfToHdu(psf: Psf, wcs: WCS | None, filterInfo: Filter | None) -> fits.ImageHDU:
    """Return the PSF HDU: the kernel image at the effective wavelength and its keys."""
    if not isinstance(psf, Psf):
        raise DcrTypeError("exposure.psf must be a dcrmodel Psf or None", psf=type(psf))
    kernel = np.asarray(psf.computeKernelImage(), dtype=np.float64)
    hdu = fits.ImageHDU(kernel, name=PSF_EXTNAME)
    header = hdu.header
    fwhm = psf.fwhm
    if fwhm is not None and math.isfinite(fwhm):
        if wcs is not None:
            setKey(header, "PSF-FWHM", float(fwhm) * _pixelScaleArcsec(wcs),
                   "[arcsec] PSF FWHM at the effective wavelength")
        setKey(header, "PSF-FWPX", float(fwhm), "[pixel] PSF FWHM at the effective wavelength")
    setKey(header, "PSF-ALPH", float(psf.alpha), "PSF size ~ (wavelength/eff)**PSF-ALPH")
    wavelength = psf.effectiveWavelength
    if wavelength is None and filterInfo is not None:
        wavelength = filterInfo.effectiveWavelength
    if wavelength is not None:
        setKey(header, "PSF-WAVE", float(wavelength), "[nm] wavelength of the PSF image")
    model = _PSF_MODEL_GAUSSIAN if isinstance(psf, GaussianPsf) else _PSF_MODEL_IMAGE
    setKey(header, "PSF-MODL", model, "PSF model (GAUSSIAN: analytic, IMAGE: kernel)")
    return hdu


def psfFromHdu(
    hdu: fits.ImageHDU, wcs: WCS | None, filterInfo: Filter | None, where: str
) -> Psf:
    """Read the PSF HDU back into a GaussianPsf (PSF-MODL = 'GAUSSIAN') or an ImagePsf."""
    header = hdu.header
    if header.get("NAXIS") != 2:
        raise DcrFitsError(f"{where}: the PSF HDU must hold a 2-d image", naxis=header.get("NAXIS"))
    alpha = headerFloat(header, "PSF-ALPH", where)
    alpha = 0.0 if alpha is None or math.isnan(alpha) else alpha
    fwhmPixels = headerFloat(header, "PSF-FWPX", where)
    if fwhmPixels is None or math.isnan(fwhmPixels):
        fwhmArcsec = headerFloat(header, "PSF-FWHM", where)
        fwhmPixels = None
        if fwhmArcsec is not None and not math.isnan(fwhmArcsec) and wcs is not None:
            fwhmPixels = fwhmArcsec / _pixelScaleArcsec(wcs)
    wavelength = headerFloat(header, "PSF-WAVE", where)
    if wavelength is None or math.isnan(wavelength):
        wavelength = None if filterInfo is None else filterInfo.effectiveWavelength
    model = headerStr(header, "PSF-MODL", where)
    try:
        if model == _PSF_MODEL_GAUSSIAN and fwhmPixels is not None:
            return GaussianPsf(fwhmPixels, alpha=alpha, effectiveWavelength=wavelength)
        kernel = np.asarray(hdu.data, dtype=np.float64)
        return ImagePsf(kernel, alpha=alpha, effectiveWavelength=wavelength, fwhm=fwhmPixels)
    except DcrError as error:
        raise DcrFitsError(f"{where}: the PSF HDU is not a valid PSF ({error})") from None
