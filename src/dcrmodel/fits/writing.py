"""Writing exposures in the Rubin "Exposure" layout: the HDU list and the atomic write.

`exposureToHduList` lays an exposure out as HDU 0 (the visit, band and calibration keys of
`dcrmodel.fits.headers`, then the metadata), the IMAGE, MASK and VARIANCE HDUs with their
WCS, origin and mask-plane keys (`dcrmodel.fits.layout`) and the optional PSF HDU
(`dcrmodel.fits.psfhdu`); `writeExposure` writes it atomically (a temporary file beside the
target, renamed into place). The layout is described in `dcrmodel.fits.exposure`, which
reads it and hands `writeExposure` on; `exposureToHduList` is shared with
`dcrmodel.fits.model`, which writes one exposure per subfilter.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from ..atomic import atomicPath
from ..errors import DcrOutputError, DcrTypeError, DcrValueError
from ..image import Exposure
from .headers import (
    CALIB_KEYS,
    FILTER_KEYS,
    VISIT_KEYS,
    filterToHeader,
    makeCard,
    setKey,
    visitInfoToHeader,
)
from .layout import isStructuralKey, maskPlanesToHeader, originHeader, wcsToLocalHeader
from .psfhdu import psfToHdu

__all__ = ["exposureToHduList", "writeExposure"]

_log = logging.getLogger(__name__)


def _isManagedKey(key: str) -> bool:
    """Return True for HDU 0 keys that readExposure turns into Exposure attributes."""
    return key in VISIT_KEYS or key in FILTER_KEYS or key in CALIB_KEYS


def _primaryHeader(exposure: Exposure, extra: fits.Header | None) -> fits.Header:
    """Compose HDU 0: visit keys, band, calibration, ``extra``, then the metadata."""
    header = fits.Header()
    if exposure.visitInfo is not None:
        header.extend(visitInfoToHeader(exposure.visitInfo), unique=True)
    if exposure.filter is not None:
        header.extend(filterToHeader(exposure.filter), unique=True)
    if exposure.photoCalib is not None:
        calibration = float(exposure.photoCalib.calibrationMean)
        setKey(header, "PHOTCALIB", calibration, "[nJy/count] photometric calibration")
    if extra is not None:
        for card in extra.cards:
            setKey(header, card.keyword, card.value, card.comment)
    metadata = exposure.metadata
    if metadata is not None:
        for card in metadata.cards:
            key = card.keyword
            if key in ("COMMENT", "HISTORY", ""):
                header.append(card, end=True)
                continue
            if isStructuralKey(key) or key in header:
                continue
            if _isManagedKey(key) and not (key == "FILTER" and exposure.filter is None):
                # Attributes, not stale copies in the metadata, decide these keys.
                continue
            value = card.value
            if isinstance(value, float) and not math.isfinite(value):
                _log.debug("metadata key %s is not finite; not written", key)
                continue
            header.append(makeCard(key, value, card.comment), end=True)
    return header


def _planeHdu(
    name: str, array: np.ndarray, dtype: type, x0: int, y0: int, wcs: WCS | None
) -> fits.ImageHDU:
    """Make one of the IMAGE/MASK/VARIANCE HDUs with its WCS and origin keys."""
    data = np.ascontiguousarray(array, dtype=dtype)
    header = fits.Header()
    if wcs is not None:
        header.extend(wcsToLocalHeader(wcs, x0, y0), unique=True)
    header.extend(originHeader(x0, y0), unique=True)
    hdu = fits.ImageHDU(data, header=header, name=name)
    return hdu


def exposureToHduList(exposure: Exposure, extra: fits.Header | None = None) -> fits.HDUList:
    """Lay out an exposure in the Rubin layout (validated before anything is built)."""
    if not isinstance(exposure, Exposure):
        raise DcrTypeError(
            "writeExposure needs a dcrmodel Exposure; make one with Exposure.fromArrays",
            exposure=type(exposure).__name__,
        )
    bbox = exposure.bbox
    x0, y0 = bbox.minX, bbox.minY
    image = np.asarray(exposure.image.array)
    variance = np.asarray(exposure.variance.array)
    image32 = image.astype(np.float32)
    variance32 = variance.astype(np.float32)
    for plane, original, converted in (
        ("IMAGE", image, image32), ("VARIANCE", variance, variance32)
    ):
        if not np.array_equal(np.isfinite(original), np.isfinite(converted)):
            raise DcrValueError(
                f"the {plane} plane has values beyond the float32 range of the file format; "
                f"rescale it (for example with a photometric calibration) before writing",
                plane=plane,
                maxAbs=float(np.nanmax(np.abs(original[np.isfinite(original)]))),
            )
    wcs = exposure.wcs
    hdus: list[fits.hdu.base.ExtensionHDU | fits.PrimaryHDU] = [
        fits.PrimaryHDU(header=_primaryHeader(exposure, extra))
    ]
    hdus.append(_planeHdu("IMAGE", image32, np.float32, x0, y0, wcs))
    maskHdu = _planeHdu("MASK", exposure.mask.array, np.int32, x0, y0, wcs)
    maskHdu.header.extend(maskPlanesToHeader(exposure.mask.planes), unique=True)
    hdus.append(maskHdu)
    hdus.append(_planeHdu("VARIANCE", variance32, np.float32, x0, y0, wcs))
    if exposure.psf is not None:
        hdus.append(psfToHdu(exposure.psf, wcs, exposure.filter))
    return fits.HDUList(hdus)


def _tempSuffix(path: Path) -> str:
    """Suffix of the temporary file: astropy picks compression from it (``.fits.gz``)."""
    suffixes = path.suffixes
    if suffixes and suffixes[-1].lower() in {".gz", ".bz2"}:
        return "".join(suffixes[-2:]) if len(suffixes) > 1 else suffixes[-1]
    return ".fits"


def _writeHduList(hduList: fits.HDUList, path: Path) -> None:
    """Write an HDU list atomically to ``path``."""
    with atomicPath(path, suffix=_tempSuffix(path)) as tmp:
        hduList.writeto(tmp, overwrite=True, output_verify="exception")


def writeExposure(exposure: Exposure, path: str | os.PathLike) -> None:
    """Write an exposure to a FITS file in the Rubin layout, atomically.

    Parameters
    ----------
    exposure : `dcrmodel.image.Exposure`
        The exposure. Its image and variance are written as float32 (a float64 image
        loses the digits beyond float32's 24-bit mantissa), its mask as int32 with one
        ``MP_<PLANE>`` key per plane. Its WCS, visit info, filter, photometric calibration,
        PSF and metadata are written when set.
    path : `str` or `os.PathLike`
        Output file. It is written to a temporary file in the same folder and renamed into
        place, so an earlier file at ``path`` survives a failed write. A ``.gz`` suffix
        gives a gzip-compressed file.

    Raises
    ------
    DcrTypeError
        If ``exposure`` is not an `Exposure` or its WCS is not an astropy WCS.
    DcrValueError
        If the image or variance has values beyond the float32 range, a mask plane name
        cannot be a FITS key, or the WCS is not a two-axis celestial WCS.
    DcrOutputError
        If ``path`` is an existing directory.

    Notes
    -----
    ``Exposure.metadata`` goes to HDU 0 after the keys that the exposure's attributes
    decide (visit keys, ``FILTER``/``FILT-EFF``/``FILT-BW``, ``PHOTCALIB``): a metadata key
    of the same name is not written, so the attributes always win. The PSF HDU holds
    ``psf.computeKernelImage()`` (float64), ``PSF-FWHM`` (arcsec; needs a WCS),
    ``PSF-ALPH``, and dcrmodel's ``PSF-FWPX`` (pixels), ``PSF-WAVE`` (nm) and ``PSF-MODL``
    (``GAUSSIAN`` or ``IMAGE``), with which `readExposure` restores the same kind of PSF.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.fits import readExposure
    >>> from dcrmodel.image import Exposure
    >>> exposure = Exposure.fromArrays(np.ones((20, 30), np.float32), origin=(100, 200))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "visit.fits"
    >>> writeExposure(exposure, path)
    >>> readExposure(path).bbox
    Box(minX=100, minY=200, width=30, height=20)
    """
    target = Path(os.fspath(path))
    if target.is_dir():
        raise DcrOutputError(
            "the output path is a directory; give a file name ending in .fits", path=str(path)
        )
    hduList = exposureToHduList(exposure)
    _writeHduList(hduList, target)
    _log.debug("wrote exposure %s to %s", exposure.bbox, target)
