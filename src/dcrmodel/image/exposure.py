"""Exposures: a masked image with its WCS, PSF, filter and calibration.

`Exposure` keeps a `MaskedImage` together with its astropy WCS, PSF, visit information,
filter and photometric calibration, in the style of the Rubin pipelines'
``lsst.afw.image.Exposure``, and converts to and from `astropy.nddata.CCDData`.

Nothing here knows about differential chromatic refraction.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from .calibration import PhotoCalib
from .filters import Filter
from .geometry import Box
from .pixels import BAD_MASK_PLANES, Image, Mask, MaskedImage
from .psfmodels import Psf
from .statistics import StatisticsControl

__all__ = ["Exposure"]

log = logging.getLogger(__name__)


_EXPOSURE_ATTRIBUTES = ("wcs", "psf", "visitInfo", "filter", "photoCalib", "metadata")


def _checkWcs(wcs: Any) -> WCS | None:
    if wcs is None:
        return None
    if not isinstance(wcs, WCS):
        raise DcrTypeError("wcs must be an astropy.wcs.WCS or None", wcs=type(wcs).__name__)
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise DcrValueError(
            "wcs must be a 2-axis celestial WCS (use wcs.celestial)", naxis=wcs.naxis
        )
    return wcs


def _shiftedWcs(wcs: WCS, dx: float, dy: float) -> WCS:
    """Return a copy of ``wcs`` whose pixel coordinates are shifted by ``-(dx, dy)``.

    A pixel at ``(x, y)`` in the input frame is at ``(x - dx, y - dy)`` in the output
    frame; SIP distortion (defined relative to CRPIX) moves with the reference pixel.
    """
    from astropy.wcs import Sip

    out = wcs.deepcopy()
    out.wcs.crpix = out.wcs.crpix - np.array([dx, dy])
    if out.sip is not None:
        out.sip = Sip(out.sip.a, out.sip.b, out.sip.ap, out.sip.bp, out.wcs.crpix)
    return out


def _isStructuralKey(key: str) -> bool:
    """Return True for FITS keys that describe the data layout rather than the exposure."""
    if key in ("SIMPLE", "BITPIX", "EXTEND", "PCOUNT", "GCOUNT", "XTENSION", "EXTNAME", "BUNIT"):
        return True
    return key.startswith("NAXIS") or key in ("BSCALE", "BZERO")


def _setHeaderKey(header: fits.Header, key: str, value: Any) -> None:
    """Set ``key`` in ``header``, as a HIERARCH card when it is not a standard FITS keyword."""
    upper = key.upper()
    if len(upper) <= 8 and all(c.isupper() or c.isdigit() or c in "-_" for c in upper):
        header[upper] = value
    else:
        header.set(f"HIERARCH {key}", value)


class Exposure:
    """A masked image with its WCS, PSF, visit information, filter and calibration.

    Parameters
    ----------
    maskedImage : MaskedImage
        Pixels, mask and variance.
    wcs : astropy.wcs.WCS, optional
        Celestial WCS mapping PARENT 0-based pixel coordinates ``(x, y)`` to ICRS sky
        coordinates. Cutouts keep the same WCS object.
    psf : Psf, optional
        Point-spread function.
    visitInfo : object, optional
        Visit metadata (`dcrmodel.physics.observation.VisitInfo`).
    filter : Filter, optional
        Band of the exposure.
    photoCalib : PhotoCalib, optional
        Counts to nJy.
    metadata : astropy.io.fits.Header or dict, optional
        Extra header keys.

    Raises
    ------
    DcrTypeError
        If an argument has the wrong class.
    """

    def __init__(
        self,
        maskedImage: MaskedImage,
        wcs: WCS | None = None,
        psf: Psf | None = None,
        visitInfo: Any = None,
        filter: Filter | None = None,
        photoCalib: PhotoCalib | None = None,
        metadata: fits.Header | Mapping[str, Any] | None = None,
    ) -> None:
        # Validated by the property setters below, in argument order.
        self.maskedImage = maskedImage
        self.wcs = wcs
        self.psf = psf
        self.visitInfo = visitInfo
        self.filter = filter
        self.photoCalib = photoCalib
        self.metadata = metadata

    @property
    def maskedImage(self) -> MaskedImage:
        """Pixels, mask and variance."""
        return self._maskedImage

    @maskedImage.setter
    def maskedImage(self, value: MaskedImage) -> None:
        if not isinstance(value, MaskedImage):
            raise DcrTypeError(
                "maskedImage must be a MaskedImage; use Exposure.fromArrays for numpy arrays",
                maskedImage=type(value).__name__,
            )
        self._maskedImage = value

    @property
    def wcs(self) -> WCS | None:
        """Celestial WCS from parent 0-based pixel coordinates ``(x, y)`` to ICRS, or None."""
        return self._wcs

    @wcs.setter
    def wcs(self, value: WCS | None) -> None:
        self._wcs = _checkWcs(value)

    @property
    def psf(self) -> Psf | None:
        """Point-spread function, or None."""
        return self._psf

    @psf.setter
    def psf(self, value: Psf | None) -> None:
        if value is not None and not isinstance(value, Psf):
            raise DcrTypeError(
                "psf must be a Psf (GaussianPsf, ImagePsf) or None", psf=type(value).__name__
            )
        self._psf = value

    @property
    def filter(self) -> Filter | None:
        """Band of the exposure, or None."""
        return self._filter

    @filter.setter
    def filter(self, value: Filter | None) -> None:
        if value is not None and not isinstance(value, Filter):
            raise DcrTypeError(
                "filter must be a Filter or None (for a Rubin band use Filter.fromBand)",
                filter=type(value).__name__,
            )
        self._filter = value

    @property
    def photoCalib(self) -> PhotoCalib | None:
        """Calibration from counts to nJy, or None."""
        return self._photoCalib

    @photoCalib.setter
    def photoCalib(self, value: PhotoCalib | None) -> None:
        if value is not None and not isinstance(value, PhotoCalib):
            raise DcrTypeError(
                "photoCalib must be a PhotoCalib or None", photoCalib=type(value).__name__
            )
        self._photoCalib = value

    @property
    def metadata(self) -> fits.Header:
        """Extra header keys (an astropy Header)."""
        return self._metadata

    @metadata.setter
    def metadata(self, value: fits.Header | Mapping[str, Any] | None) -> None:
        if value is None:
            header = fits.Header()
        elif isinstance(value, fits.Header):
            header = value
        elif isinstance(value, Mapping):
            header = fits.Header()
            for key, item in value.items():
                _setHeaderKey(header, str(key), item)
        else:
            raise DcrTypeError(
                "metadata must be an astropy Header or a dict", metadata=type(value).__name__
            )
        self._metadata = header

    @property
    def image(self) -> Image:
        """Pixel values."""
        return self.maskedImage.image

    @property
    def mask(self) -> Mask:
        """Mask bits."""
        return self.maskedImage.mask

    @property
    def variance(self) -> Image:
        """Per-pixel variance."""
        return self.maskedImage.variance

    @property
    def bbox(self) -> Box:
        """Parent box of the pixels."""
        return self.maskedImage.bbox

    def _with(self, maskedImage: MaskedImage, wcs: WCS | None, metadata: fits.Header) -> Exposure:
        return Exposure(
            maskedImage,
            wcs=wcs,
            psf=self.psf,
            visitInfo=self.visitInfo,
            filter=self.filter,
            photoCalib=self.photoCalib,
            metadata=metadata,
        )

    def __getitem__(self, box: Box) -> Exposure:
        """Return a cutout (a view of the pixels) sharing the WCS and the other metadata."""
        return self._with(self.maskedImage[box], self.wcs, self.metadata)

    def clone(self) -> Exposure:
        """Return a deep copy of the pixels, WCS and header (PSF etc. are shared, immutable)."""
        return self._with(
            self.maskedImage.clone(),
            None if self.wcs is None else self.wcs.deepcopy(),
            self.metadata.copy(),
        )

    @classmethod
    def fromArrays(
        cls,
        image: Any,
        variance: Any = None,
        mask: Any = None,
        origin: tuple[int, int] = (0, 0),
        **metadata: Any,
    ) -> Exposure:
        """Make an exposure from numpy arrays.

        Parameters
        ----------
        image : array_like
            Pixel values (counts), ``(y, x)``.
        variance : array_like, optional
            Variance (counts squared); ones when None.
        mask : array_like of int or Mask, optional
            Mask bits (default planes); zeros when None.
        origin : tuple of int, optional
            Parent coordinates ``(x0, y0)`` of ``image[0, 0]``.
        **metadata
            ``wcs``, ``psf``, ``visitInfo``, ``filter``, ``photoCalib`` and ``metadata``
            set the exposure's attributes; any other keyword with a string, number or
            bool value becomes a header key of `metadata`.
        """
        attributes = {k: metadata.pop(k) for k in list(metadata) if k in _EXPOSURE_ATTRIBUTES}
        header = attributes.pop("metadata", None)
        header = (
            fits.Header()
            if header is None
            else (
                header.copy()
                if isinstance(header, fits.Header)
                else fits.Header(list(dict(header).items()))
            )
        )
        for key, value in metadata.items():
            if not isinstance(value, str | numbers.Number | bool):
                raise DcrTypeError(
                    f"unknown keyword {key!r}; Exposure attributes are "
                    f"{', '.join(_EXPOSURE_ATTRIBUTES)}, and extra header keys take "
                    "string, number or bool values",
                    key=key,
                )
            _setHeaderKey(header, key, value)
        maskedImage = MaskedImage.fromArrays(image, mask=mask, variance=variance, origin=origin)
        return cls(maskedImage, metadata=header, **attributes)

    def toCCDData(
        self,
        unit: str = "adu",
        badMaskPlanes: Iterable[str] = BAD_MASK_PLANES,
    ) -> Any:
        """Return an `astropy.nddata.CCDData` copy of this exposure.

        Parameters
        ----------
        unit : str, optional
            Unit of the pixel values.
        badMaskPlanes : iterable of str, optional
            Mask planes whose pixels are flagged in the boolean ``CCDData.mask``; planes
            this mask does not define are skipped.

        Returns
        -------
        astropy.nddata.CCDData
            ``data`` the image; ``uncertainty`` a ``VarianceUncertainty``; ``mask`` True
            where a bad plane is set; ``flags`` the int32 mask bits; ``wcs`` the WCS
            shifted to the array's own 0-based pixels; ``meta`` the header plus
            ``MP_<PLANE> = bit`` for every mask plane and ``LTV1 = -x0``,
            ``LTV2 = -y0`` for the parent origin.

        Notes
        -----
        The PSF, visit information, filter and calibration are not carried; give them to
        `fromCCDData`. ``CCDData.write`` keeps the mask bits only with
        ``hdu_flags="FLAGS"``; the dcrmodel FITS writer keeps everything.
        """
        from astropy.nddata import CCDData, VarianceUncertainty

        meta = self.metadata.copy()
        for name, bit in self.mask.planes.items():
            _setHeaderKey(meta, f"MP_{name}", bit)
        x0, y0 = self.bbox.begin
        meta["LTV1"] = -x0
        meta["LTV2"] = -y0
        wcs = None if self.wcs is None else _shiftedWcs(self.wcs, x0, y0)
        bad = StatisticsControl(badMaskPlanes=badMaskPlanes).getAndMask(self.mask)
        return CCDData(
            self.image.array.copy(),
            unit=unit,
            uncertainty=VarianceUncertainty(self.variance.array.copy()),
            mask=(self.mask.array & bad) != 0,
            flags=self.mask.array.copy(),
            wcs=wcs,
            meta=meta,
        )

    @classmethod
    def fromCCDData(
        cls,
        ccd: Any,
        psf: Psf | None = None,
        visitInfo: Any = None,
        filter: Filter | None = None,
        photoCalib: PhotoCalib | None = None,
    ) -> Exposure:
        """Make an exposure from an `astropy.nddata.CCDData`.

        The parent origin comes from ``LTV1``/``LTV2`` in ``ccd.meta`` (0 when absent),
        mask planes from its ``MP_*`` keys (the default planes when none). Integer
        ``ccd.flags`` are taken as the mask bits; otherwise the boolean ``ccd.mask`` sets
        the BAD plane. A ``VarianceUncertainty``, ``StdDevUncertainty`` or
        ``InverseVariance`` becomes the variance (ones when absent). The WCS is shifted
        from the array's pixels to parent pixels.
        """
        from astropy.nddata import (
            CCDData,
            InverseVariance,
            StdDevUncertainty,
            VarianceUncertainty,
        )

        if not isinstance(ccd, CCDData):
            raise DcrTypeError(
                "fromCCDData needs an astropy.nddata.CCDData", ccd=type(ccd).__name__
            )
        meta = fits.Header()
        planes: dict[str, int] = {}
        for key, value in ccd.meta.items():
            upper = str(key).upper()
            if upper.startswith("MP_"):
                planes[upper[3:]] = int(value)
            elif upper not in ("LTV1", "LTV2") and not _isStructuralKey(upper):
                meta[key] = value
        x0 = -int(round(float(ccd.meta.get("LTV1", 0))))
        y0 = -int(round(float(ccd.meta.get("LTV2", 0))))
        data = np.asarray(ccd.data)
        image = Image(
            np.array(data, dtype=data.dtype if data.dtype.kind == "f" else np.float64),
            origin=(x0, y0),
        )
        uncertainty = ccd.uncertainty
        if uncertainty is None:
            variance = None
        else:
            values = np.asarray(uncertainty.array, dtype=image.dtype)
            if isinstance(uncertainty, VarianceUncertainty):
                variance = values.copy()
            elif isinstance(uncertainty, StdDevUncertainty):
                variance = values**2
            elif isinstance(uncertainty, InverseVariance):
                with np.errstate(divide="ignore"):
                    variance = 1.0 / values
            else:
                raise DcrTypeError(
                    "unsupported uncertainty class; use VarianceUncertainty",
                    uncertainty=type(uncertainty).__name__,
                )
            variance = Image(np.broadcast_to(variance, image.shape).copy(), bbox=image.bbox)
        maskPlanes = planes or None
        flags = getattr(ccd, "flags", None)
        if isinstance(flags, np.ndarray) and flags.dtype.kind in "iu":
            if flags.shape != image.shape:
                raise DcrShapeError(
                    f"CCDData data shape {image.shape} and flags shape {flags.shape} must match",
                )
            mask = Mask(flags.copy(), bbox=image.bbox, planes=maskPlanes)
        else:
            mask = Mask.fromBox(image.bbox, planes=maskPlanes)
            if ccd.mask is not None:
                flagged = np.broadcast_to(np.asarray(ccd.mask, dtype=bool), image.shape)
                mask.addMaskPlane("BAD")
                mask.array[flagged] |= mask.getPlaneBitMask("BAD")
        wcs = None
        if ccd.wcs is not None:
            wcs = _shiftedWcs(ccd.wcs, -x0, -y0)
        return cls(
            MaskedImage(image, mask, variance),
            wcs=wcs,
            psf=psf,
            visitInfo=visitInfo,
            filter=filter,
            photoCalib=photoCalib,
            metadata=meta,
        )

    def __repr__(self) -> str:
        return (
            f"Exposure(bbox={self.bbox!r}, filter={self.filter!r}, "
            f"wcs={'set' if self.wcs is not None else None}, psf={self.psf!r})"
        )
