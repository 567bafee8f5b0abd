"""The DCR model of the sky and the DCR-matched templates made from it.

A `DcrModel` holds one image of the true, unrefracted sky per *subfilter* (equal-width
wavelength slices of a band), on a common pixel grid, with a common mask and variance.
It forward-models a visit: each subfilter image is moved by that subfilter's differential
chromatic refraction in the visit (``dcrmodel.physics.dcr.calculateDcr``,
``dcrmodel.model.shift.applyDcr``)
and the shifted images are summed into a DCR-matched template
(`DcrModel.buildMatchedTemplate`, `DcrModel.buildMatchedExposure`).

It also carries the conditioning steps that the iterative forward-modelling assembly of the
model uses between iterations (DMTN-037): averaging two iterations' solutions with a gain
(`DcrModel.conditionDcrModel`), limiting the change of a subfilter between iterations
(`DcrModel.regularizeModelIter`) and between subfilters (`DcrModel.regularizeModelFreq`),
both through `DcrModel.applyImageThresholds`, which ignores isolated noisy pixels by a
binary opening (erosion then dilation) of the flagged pixels.

The public names, arguments and documented behaviour follow ``lsst.ip.diffim.DcrModel``;
where its documentation is silent the choices made here are stated in the Notes of each
method.

References
----------
I. Sullivan, DMTN-037, "DCR-matched template generation", https://dmtn-037.lsst.io
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.fft
from astropy.wcs import WCS
from scipy import ndimage

from ..errors import (
    DcrConfigError,
    DcrMetadataError,
    DcrPsfWarning,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
)
from ..fourier import (
    TRANSFER_MODES,
    FourierTemplateEngine,
    allowedShift,
    applyTransfer,
    cropFromPadded,
    paddedShape,
    padToShape,
    subfilterTransfer,
)
from ..image import (
    WCS_GRID_TOLERANCE,
    Box,
    Exposure,
    Filter,
    Image,
    Mask,
    MaskedImage,
    PhotoCalib,
    Psf,
    StatisticsControl,
    wcsGridOffset,
)
from ..physics import calculateDcr, wavelengthGenerator
from ..psf import (
    PsfMatch,
    effectiveKernelSize,
    maxKernelSize,
    psfMatchingTransfer,
    psfTransfer,
    validatePsfAlpha,
)
from .shift import applyDcr

__all__ = ["DcrModel", "PSF_DAMPED_PLANE", "DEFAULT_PSF_DAMPING", "DEFAULT_PSF_MAX_GAIN"]

_log = logging.getLogger(__name__)

#: Template engines known to `DcrModel.buildMatchedTemplate`: spline shifts
#: (``dcrmodel.model.shift.applyDcr``) or phase ramps on the model's cached Fourier transforms
#: (``dcrmodel.fourier.engine.FourierTemplateEngine``).
_ENGINES = ("spline", "fourier")

#: Mask plane of a PSF-matched template flagging the pixels where the damping of the PSF
#: matching (a visit sharper than the model) lost light above the noise.
PSF_DAMPED_PLANE = "PSF_DAMPED"

#: Default damping of the PSF matching, relative to the largest value of the model's optical
#: transfer function (`dcrmodel.psf.matching.psfMatchingTransfer`).
DEFAULT_PSF_DAMPING = 1e-3

#: Default largest gain of a template's PSF matching (`dcrmodel.psf.matching.psfMatchingTransfer`):
#: where a visit is sharper than the model, a larger gain would amplify the model's noise
#: into the template more than it restores the visit's sharper light.
DEFAULT_PSF_MAX_GAIN = 2.0

#: Fraction of a PSF kernel's flux allowed outside the padding of a PSF-matching grid.
_PSF_TAIL = 1e-2

#: Smallest model PSF FWHM (pixels) for which the Fourier engine is the default: phase ramps
#: of an undersampled image ring, where the spline engine stays accurate.
_MIN_FOURIER_FWHM = 2.0

#: Extra pixels, beyond the largest DCR shift, of model taken around a template's box before
#: shifting, so that the spline prefilter's boundary handling (an IIR filter whose influence
#: falls by a factor ~0.27 per pixel for cubic splines) does not reach the box: 0.27**8 ~ 3e-5.
_SHIFT_MARGIN = 8

#: Largest border (pixels) excluded from the noise estimate of `DcrModel.regularizeModelFreq`.
_FREQ_NOISE_BUFFER = 5


# ----------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------


def _isInteger(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _checkNumSubfilters(value: Any, name: str) -> int:
    """Return ``value`` as an int >= 1, or raise."""
    if not _isInteger(value):
        raise DcrTypeError(
            f"{name} must be an integer number of subfilters (1 or more)", **{name: value}
        )
    if value < 1:
        raise DcrValueError(
            f"{name} must be at least 1: a DCR model needs one image per subfilter",
            **{name: value},
        )
    return int(value)


def _checkBox(bbox: Any, name: str) -> Box:
    if not isinstance(bbox, Box):
        raise DcrTypeError(f"{name} must be a dcrmodel.image.Box", **{name: type(bbox).__name__})
    if bbox.isEmpty():
        raise DcrValueError(
            f"{name} is empty: give a region with at least one pixel", **{name: bbox}
        )
    return bbox


def _checkFiniteNumber(
    value: Any, name: str, minimum: float | None = None, strict: bool = False
) -> float:
    """Return ``value`` as a finite float (optionally >= or > ``minimum``), or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise DcrTypeError(f"{name} must be a real number", **{name: value})
    result = float(value)
    if not math.isfinite(result):
        raise DcrValueError(f"{name} must be finite", **{name: value})
    if minimum is not None:
        if strict and not result > minimum:
            raise DcrValueError(f"{name} must be greater than {minimum:g}", **{name: value})
        if not strict and not result >= minimum:
            raise DcrValueError(f"{name} must be at least {minimum:g}", **{name: value})
    return result


def _checkWidth(regularizationWidth: Any) -> int:
    if not _isInteger(regularizationWidth) or regularizationWidth < 0:
        raise DcrConfigError(
            "regularizationWidth must be an integer radius in pixels, 0 or more "
            "(0 switches off the erosion/dilation that spares isolated pixels)",
            regularizationWidth=regularizationWidth,
        )
    return int(regularizationWidth)


def _checkFactor(regularizationFactor: Any) -> float:
    factor = _checkFiniteNumber(regularizationFactor, "regularizationFactor")
    if factor < 1.0:
        raise DcrConfigError(
            "regularizationFactor is a maximum ratio and must be at least 1 (for example 2 or 4)",
            regularizationFactor=regularizationFactor,
        )
    return factor


def _badPixels(
    mask: Mask | None, shape: tuple[int, int], statsCtrl: StatisticsControl | None = None
) -> np.ndarray:
    """Boolean array of the pixels flagged in one of the bad mask planes."""
    if mask is None:
        return np.zeros(shape, dtype=bool)
    ctrl = statsCtrl if statsCtrl is not None else StatisticsControl()
    bits = ctrl.getAndMask(mask)
    return (mask.array & bits) != 0


def _countUnmaskedNonFinite(array: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, int]:
    """Return (non-finite pixels, how many of them are not flagged bad)."""
    nonFinite = ~np.isfinite(array)
    return nonFinite, int(np.count_nonzero(nonFinite & ~bad))


def _asImage(value: Any, bbox: Box | None, name: str) -> Image:
    """Return ``value`` as an Image; an ndarray is placed at ``bbox`` (or the origin)."""
    if isinstance(value, Image):
        return value
    if isinstance(value, np.ndarray):
        if bbox is not None:
            if value.shape != bbox.shape:
                raise DcrShapeError(
                    f"{name} has shape {value.shape} but the model's box has shape {bbox.shape} "
                    "(height, width); give an Image or an array of the model's shape",
                    shape=value.shape,
                    bbox=bbox,
                )
            return Image(value, bbox=bbox)
        return Image(value)
    raise DcrTypeError(
        f"{name} must be a dcrmodel.image.Image (or a 2-D numpy array)",
        **{name: type(value).__name__},
    )


def _regionArray(value: Any, bbox: Box, name: str) -> np.ndarray:
    """Return a writable float view of ``value`` over ``bbox``.

    ``value`` is an Image whose box contains ``bbox``, or a 2-D float array of ``bbox``'s shape.
    """
    if isinstance(value, Image):
        if not value.bbox.contains(bbox):
            raise DcrShapeError(
                f"{name} covers {value.bbox}, which does not contain the region {bbox}; "
                "give images that cover the region",
                imageBBox=value.bbox,
                bbox=bbox,
            )
        return value.array[bbox.slices(value.bbox)]
    if isinstance(value, np.ndarray):
        if value.ndim != 2 or value.shape != bbox.shape:
            raise DcrShapeError(
                f"{name} has shape {value.shape} but the region {bbox} has shape {bbox.shape} "
                "(height, width)",
                shape=value.shape,
                bbox=bbox,
            )
        if value.dtype.kind != "f":
            raise DcrTypeError(
                f"{name} must be a floating-point array (it is modified in place)",
                dtype=str(value.dtype),
            )
        return value
    raise DcrTypeError(
        f"{name} must be a dcrmodel.image.Image or a 2-D numpy array",
        **{name: type(value).__name__},
    )


def _checkMaskPlanes(planes: Any) -> str | tuple[str, ...]:
    if isinstance(planes, str):
        return planes
    if isinstance(planes, Iterable):
        names = tuple(planes)
        if names and all(isinstance(p, str) for p in names):
            return names
    raise DcrConfigError(
        "convergenceMaskPlanes must be a mask plane name or a list of names "
        "(for example 'DETECTED')",
        convergenceMaskPlanes=planes,
    )


def _disk(radius: int) -> np.ndarray:
    """Binary disk structuring element of the given radius (pixels)."""
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y) <= radius * radius


def _openFlags(flags: np.ndarray, radius: int) -> np.ndarray:
    """Keep only the flagged pixels that belong to a region wider than a disk of ``radius``.

    A binary opening: erosion then dilation by the same disk. The erosion treats the area
    beyond the array as flagged, so that a region touching the edge is judged by the part
    of it inside the array instead of being eaten away from the edge.
    """
    if radius == 0 or not flags.any():
        return flags
    structure = _disk(radius)
    eroded = ndimage.binary_erosion(flags, structure=structure, border_value=1)
    opened = ndimage.binary_dilation(eroded, structure=structure)
    return opened & flags


def _thresholdArray(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise DcrTypeError(
            f"{name} must be a number or an array of numbers", **{name: type(value).__name__}
        ) from error
    try:
        return np.broadcast_to(array, shape)
    except ValueError as error:
        raise DcrShapeError(
            f"{name} has shape {array.shape}, which does not match the image's shape {shape}",
            thresholdShape=array.shape,
            imageShape=shape,
        ) from error


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------


class DcrModel:
    """A model of the true sky after correcting chromatic effects.

    The model holds one image per subfilter of a band, all on the same box of the parent
    pixel grid, plus a common mask and a common variance. It can be forward-modelled to
    produce Differential Chromatic Refraction (DCR) matched templates for a visit, and
    provides the utilities that condition the model during its iterative assembly.

    Parameters
    ----------
    modelImages : list of dcrmodel.image.Image
        One image per subfilter, bluest first, all with the same box. The images are
        kept, not copied: the conditioning methods and ``model[k] = ...`` work on them.
        2-D numpy arrays are accepted and placed on the box of the first image (at the
        origin ``(0, 0)`` if the first is an array too).
    filterInfo : dcrmodel.image.Filter or str, optional
        The band (effective wavelength and bandwidth in nm), or the name of a Rubin band.
        Required for any calculation of DCR, including matched templates.
    psf : dcrmodel.image.Psf, optional
        Point spread function of the model.
    mask : dcrmodel.image.Mask, optional
        Common mask of the subfilter images; same box.
    variance : dcrmodel.image.Image, optional
        Common variance of each subfilter image (counts²); same box.
    photoCalib : dcrmodel.image.PhotoCalib, optional
        Calibration from counts to nJy.
    wcs : astropy.wcs.WCS, optional
        Celestial WCS of the model's pixel grid (0-based parent pixels to ICRS).

    Raises
    ------
    DcrValueError
        If there are no subfilter images, or a subfilter image (or the variance) holds NaN
        or infinite values in pixels that no bad mask plane flags.
    DcrShapeError
        If the subfilter images, the mask and the variance do not share one box.
    DcrTypeError
        If an argument has the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from dcrmodel.image import Filter, MaskedImage
    >>> coadd = MaskedImage.fromArrays(np.ones((8, 8)), variance=np.full((8, 8), 3.0))
    >>> model = DcrModel.fromImage(coadd, 3, filterInfo=Filter("g", 480.0, 150.0))
    >>> len(model), round(float(model[-1].array[0, 0]), 4), float(model.variance.array[0, 0])
    (3, 0.3333, 1.0)
    >>> model.getReferenceImage().shape
    (8, 8)

    Notes
    -----
    Non-finite values in pixels flagged by a bad mask plane (``BAD``, ``SAT``, ``NO_DATA``,
    ``EDGE``, ``CR``: `StatisticsControl` defaults) are set to 0 in place, in the images and
    the variance, so that no NaN is spread over the template by the spline shifts.
    """

    def __init__(
        self,
        modelImages: Sequence[Image],
        filterInfo: Filter | str | None = None,
        psf: Psf | None = None,
        mask: Mask | None = None,
        variance: Image | None = None,
        photoCalib: PhotoCalib | None = None,
        wcs: WCS | None = None,
    ) -> None:
        if isinstance(modelImages, (Image, np.ndarray)) or not isinstance(modelImages, Iterable):
            raise DcrTypeError(
                "modelImages must be a list of Images, one per subfilter",
                modelImages=type(modelImages).__name__,
            )
        images = list(modelImages)
        if len(images) == 0:
            raise DcrValueError(
                "modelImages is empty: a DCR model needs at least one subfilter image",
                dcrNumSubfilters=0,
            )
        first = images[0]
        firstBBox = first.bbox if isinstance(first, Image) else None
        images = [_asImage(img, firstBBox, f"modelImages[{k}]") for k, img in enumerate(images)]
        bbox = images[0].bbox
        for k, img in enumerate(images[1:], start=1):
            if img.bbox != bbox:
                raise DcrShapeError(
                    f"subfilter image {k} covers {img.bbox} but subfilter 0 covers {bbox}; "
                    "every subfilter image must share one box",
                    subfilter=k,
                    bbox=img.bbox,
                    expected=bbox,
                )
            if img.dtype != images[0].dtype:
                _log.debug(
                    "subfilter image %d is %s, subfilter 0 is %s", k, img.dtype, images[0].dtype
                )
        if mask is not None:
            if not isinstance(mask, Mask):
                raise DcrTypeError("mask must be a dcrmodel.image.Mask", mask=type(mask).__name__)
            if mask.bbox != bbox:
                raise DcrShapeError(
                    f"the mask covers {mask.bbox} but the subfilter images cover {bbox}; "
                    "give a mask of the model's box",
                    maskBBox=mask.bbox,
                    bbox=bbox,
                )
        if variance is not None:
            variance = _asImage(variance, bbox, "variance")
            if variance.bbox != bbox:
                raise DcrShapeError(
                    f"the variance covers {variance.bbox} but the subfilter images cover {bbox}; "
                    "give a variance of the model's box",
                    varianceBBox=variance.bbox,
                    bbox=bbox,
                )
        filterInfo = self._checkFilter(filterInfo)
        if psf is not None and not isinstance(psf, Psf):
            raise DcrTypeError("psf must be a dcrmodel.image.Psf (or None)", psf=type(psf).__name__)
        if photoCalib is not None and not isinstance(photoCalib, PhotoCalib):
            raise DcrTypeError(
                "photoCalib must be a dcrmodel.image.PhotoCalib (or None)",
                photoCalib=type(photoCalib).__name__,
            )
        if wcs is not None and not isinstance(wcs, WCS):
            raise DcrTypeError("wcs must be an astropy.wcs.WCS (or None)", wcs=type(wcs).__name__)

        bad = _badPixels(mask, bbox.shape)
        fixes = []
        for k, img in enumerate(images):
            nonFinite, unmasked = _countUnmaskedNonFinite(img.array, bad)
            if unmasked:
                raise DcrValueError(
                    f"subfilter image {k} holds {unmasked} NaN or infinite pixels that no bad "
                    "mask plane flags; flag them (for example NO_DATA) or replace them",
                    subfilter=k,
                    count=unmasked,
                )
            if nonFinite.any():
                fixes.append((img.array, nonFinite))
        if variance is not None:
            nonFinite, unmasked = _countUnmaskedNonFinite(variance.array, bad)
            if unmasked:
                raise DcrValueError(
                    f"the variance holds {unmasked} NaN or infinite pixels that no bad mask "
                    "plane flags; flag them (for example NO_DATA) or replace them",
                    count=unmasked,
                )
            if nonFinite.any():
                fixes.append((variance.array, nonFinite))
        for array, nonFinite in fixes:
            array[nonFinite] = 0.0

        self._modelImages: list[Image] = images
        self._filter = filterInfo
        self._psf = psf
        self._mask = mask
        self._variance = variance
        self._photoCalib = photoCalib
        self._wcs = wcs
        self._fourier: FourierTemplateEngine | None = None
        self._psfHeadroom = 0
        self._otfCache: tuple[Any, np.ndarray] | None = None
        self._warnedDamping = False

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _checkFilter(filterInfo: Any) -> Filter | None:
        if filterInfo is None or isinstance(filterInfo, Filter):
            return filterInfo
        if isinstance(filterInfo, str):
            return Filter.fromBand(filterInfo)
        raise DcrTypeError(
            "filterInfo must be a dcrmodel.image.Filter, a Rubin band name, or None",
            filterInfo=type(filterInfo).__name__,
        )

    @classmethod
    def fromImage(
        cls,
        maskedImage: MaskedImage | Exposure,
        dcrNumSubfilters: int,
        filterInfo: Filter | str | None = None,
        psf: Psf | None = None,
        photoCalib: PhotoCalib | None = None,
        wcs: WCS | None = None,
    ) -> DcrModel:
        """Initialize a DcrModel by dividing a coadd between the subfilters.

        Parameters
        ----------
        maskedImage : dcrmodel.image.MaskedImage or dcrmodel.image.Exposure
            Input coadded image (counts) to divide equally between the subfilters. An
            Exposure also provides the defaults of ``filterInfo``, ``psf``, ``photoCalib``
            and ``wcs``.
        dcrNumSubfilters : int
            Number of subfilters used to model chromatic effects within a band.
        filterInfo : dcrmodel.image.Filter or str, optional
            The band (nm). Required for any calculation of DCR, including matched templates.
        psf : dcrmodel.image.Psf, optional
            Point spread function of the model.
        photoCalib : dcrmodel.image.PhotoCalib, optional
            Calibration to convert counts to nJy.
        wcs : astropy.wcs.WCS, optional
            Celestial WCS of the coadd's pixel grid.

        Returns
        -------
        dcrModel : DcrModel
            Each subfilter image is ``image / dcrNumSubfilters``; the mask is a copy of the
            coadd's; the variance is ``variance / dcrNumSubfilters``.

        Raises
        ------
        DcrValueError
            (a ``ValueError``) If there are NaN or infinite values in pixels of the image or
            the variance that no bad mask plane flags (the message gives their number), or
            ``dcrNumSubfilters`` < 1.
        DcrTypeError
            If ``maskedImage`` is not a MaskedImage or Exposure.

        Notes
        -----
        The subfilters are taken as independent, so each gets 1/N of the coadd's variance:
        the sum of the N subfilter images (a template) has the coadd's variance again.
        The coadd's own inputs are not changed. Non-finite values in pixels flagged by a
        bad mask plane (`StatisticsControl` defaults: ``BAD``, ``SAT``, ``NO_DATA``,
        ``EDGE``, ``CR``) are set to 0 in the model's image and variance.
        """
        if isinstance(maskedImage, Exposure):
            exposure = maskedImage
            maskedImage = exposure.maskedImage
            filterInfo = filterInfo if filterInfo is not None else exposure.filter
            psf = psf if psf is not None else exposure.psf
            photoCalib = photoCalib if photoCalib is not None else exposure.photoCalib
            wcs = wcs if wcs is not None else exposure.wcs
        if not isinstance(maskedImage, MaskedImage):
            raise DcrTypeError(
                "maskedImage must be a dcrmodel.image.MaskedImage or Exposure",
                maskedImage=type(maskedImage).__name__,
            )
        n = _checkNumSubfilters(dcrNumSubfilters, "dcrNumSubfilters")
        image = maskedImage.image
        mask = maskedImage.mask
        variance = maskedImage.variance
        bad = _badPixels(mask, image.array.shape)
        nonFiniteImage, unmaskedImage = _countUnmaskedNonFinite(image.array, bad)
        nonFiniteVar, unmaskedVar = (None, 0)
        if variance is not None:
            nonFiniteVar, unmaskedVar = _countUnmaskedNonFinite(variance.array, bad)
        if unmaskedImage or unmaskedVar:
            raise DcrValueError(
                f"the coadd holds {unmaskedImage} NaN or infinite image pixels and "
                f"{unmaskedVar} NaN or infinite variance pixels that no bad mask plane flags; "
                "flag them (for example NO_DATA) or replace them before making a model",
                unmaskedNonFiniteImage=unmaskedImage,
                unmaskedNonFiniteVariance=unmaskedVar,
            )

        model = image.clone()
        model.array[nonFiniteImage] = 0.0
        model /= n
        modelVariance = None
        if variance is not None:
            modelVariance = variance.clone()
            modelVariance.array[nonFiniteVar] = 0.0
            modelVariance /= n
        modelMask = mask.clone() if mask is not None else None
        modelImages = [model] + [model.clone() for _ in range(n - 1)]
        return cls(
            modelImages,
            filterInfo=filterInfo,
            psf=psf,
            mask=modelMask,
            variance=modelVariance,
            photoCalib=photoCalib,
            wcs=wcs,
        )

    @classmethod
    def _fromExposures(cls, exposures: Sequence[Exposure], source: str) -> DcrModel:
        """Build a model from one Exposure per subfilter (subfilter 0 first)."""
        for k, exposure in enumerate(exposures):
            if not isinstance(exposure, Exposure):
                raise DcrTypeError(
                    f"{source} returned a {type(exposure).__name__} for subfilter {k}; "
                    "it must return a dcrmodel.image.Exposure",
                    subfilter=k,
                )
        first = exposures[0]
        for k, exposure in enumerate(exposures[1:], start=1):
            if exposure.bbox != first.bbox:
                raise DcrShapeError(
                    f"the exposure of subfilter {k} covers {exposure.bbox} but subfilter 0 "
                    f"covers {first.bbox}; every subfilter must share one box",
                    subfilter=k,
                    bbox=exposure.bbox,
                    expected=first.bbox,
                )
            if (
                exposure.filter is not None
                and first.filter is not None
                and exposure.filter != first.filter
            ):
                raise DcrMetadataError(
                    f"the exposure of subfilter {k} is in filter {exposure.filter} but "
                    f"subfilter 0 in {first.filter}; a model holds one band",
                    subfilter=k,
                )

        def firstSet(attribute: str) -> Any:
            for exposure in exposures:
                value = getattr(exposure, attribute)
                if value is not None:
                    return value
            return None

        return cls(
            [exposure.image for exposure in exposures],
            filterInfo=firstSet("filter"),
            psf=firstSet("psf"),
            mask=first.mask,
            variance=first.variance,
            photoCalib=firstSet("photoCalib"),
            wcs=firstSet("wcs"),
        )

    @classmethod
    def fromDataRef(
        cls,
        dataRef: Any,
        datasetType: str = "dcrCoadd",
        numSubfilters: int | None = None,
        **kwargs: Any,
    ) -> DcrModel:
        """Load an existing DcrModel from a data reference.

        Parameters
        ----------
        dataRef : object
            Any object with a method ``get(datasetType, subfilter=k, numSubfilters=N,
            **kwargs)`` returning the `Exposure` of subfilter ``k`` (for example
            ``dcrmodel.fits.model.DcrModelDataRef`` over a directory of model files).
        datasetType : str, optional
            Name of the model's dataset, {"dcrCoadd", "dcrCoadd_sub"}.
        numSubfilters : int, optional
            Number of subfilters used to model chromatic effects within a band. None: the
            data reference's own ``numSubfilters`` attribute.
        **kwargs
            Additional keyword arguments passed on to ``dataRef.get`` (for example tract,
            patch, bbox).

        Returns
        -------
        dcrModel : DcrModel
            Best fit model of the true sky after correcting chromatic effects. Its filter,
            PSF, photometric calibration and WCS are the first ones the subfilter exposures
            carry; its mask and variance are those of subfilter 0.

        Raises
        ------
        DcrValueError
            If ``numSubfilters`` is None and the data reference has no ``numSubfilters``, or
            it is less than 1.
        DcrTypeError
            If ``dataRef`` has no ``get`` method or ``get`` does not return an Exposure.
        DcrShapeError
            If the subfilter exposures do not share one box.
        """
        get = getattr(dataRef, "get", None)
        if not callable(get):
            raise DcrTypeError(
                "dataRef must have a get(datasetType, subfilter=k, numSubfilters=N, **kwargs) "
                "method returning an Exposure",
                dataRef=type(dataRef).__name__,
            )
        if numSubfilters is None:
            numSubfilters = getattr(dataRef, "numSubfilters", None)
            if numSubfilters is None:
                raise DcrValueError(
                    "numSubfilters is not given and the data reference has no numSubfilters "
                    "attribute; pass numSubfilters=N",
                    dataRef=type(dataRef).__name__,
                )
        n = _checkNumSubfilters(numSubfilters, "numSubfilters")
        if not isinstance(datasetType, str):
            raise DcrTypeError(
                "datasetType must be a string such as 'dcrCoadd'", datasetType=datasetType
            )
        exposures = [get(datasetType, subfilter=k, numSubfilters=n, **kwargs) for k in range(n)]
        return cls._fromExposures(exposures, f"dataRef.get({datasetType!r}, ...)")

    @classmethod
    def fromQuantum(cls, availableCoaddRefs: Mapping[Any, Any] | Iterable[Any]) -> DcrModel:
        """Load an existing DcrModel from a set of dataset handles.

        Parameters
        ----------
        availableCoaddRefs : dict or iterable of handles
            Handles of the subfilter coadds of one patch (the values are used when it is a
            dict). Each has ``dataId["subfilter"]`` (its subfilter index) and a ``get()``
            method returning its `Exposure` (the protocol of the Rubin data butler's
            deferred dataset handles).

        Returns
        -------
        dcrModel : DcrModel
            Best fit model of the true sky after correcting chromatic effects, with its
            subfilters in the order of their index.

        Raises
        ------
        DcrValueError
            If there are no handles, a subfilter index is repeated, or the indices are not
            exactly 0 .. N-1 (the message names the missing ones). Checked before any
            ``get()``.
        DcrTypeError
            If a handle lacks ``dataId["subfilter"]`` or ``get``, or ``get()`` does not
            return an Exposure.
        """
        if isinstance(availableCoaddRefs, Mapping):
            handles = list(availableCoaddRefs.values())
        elif isinstance(availableCoaddRefs, Iterable) and not isinstance(availableCoaddRefs, str):
            handles = list(availableCoaddRefs)
        else:
            raise DcrTypeError(
                "availableCoaddRefs must be a dict or a list of dataset handles",
                availableCoaddRefs=type(availableCoaddRefs).__name__,
            )
        if not handles:
            raise DcrValueError(
                "availableCoaddRefs is empty: a DCR model needs one coadd per subfilter",
                count=0,
            )
        bySubfilter: dict[int, Any] = {}
        for handle in handles:
            dataId = getattr(handle, "dataId", None)
            try:
                subfilter = dataId["subfilter"]  # type: ignore[index]
            except (TypeError, KeyError) as error:
                raise DcrTypeError(
                    "every handle needs dataId['subfilter'] (its subfilter index)",
                    handle=repr(handle),
                ) from error
            if not callable(getattr(handle, "get", None)):
                raise DcrTypeError("every handle needs a get() method", handle=repr(handle))
            if not _isInteger(subfilter):
                raise DcrTypeError(
                    "dataId['subfilter'] must be an integer subfilter index",
                    subfilter=subfilter,
                )
            subfilter = int(subfilter)
            if subfilter in bySubfilter:
                raise DcrValueError(
                    f"subfilter {subfilter} appears more than once in availableCoaddRefs; "
                    "give one handle per subfilter",
                    subfilter=subfilter,
                )
            bySubfilter[subfilter] = handle
        n = len(bySubfilter)
        missing = sorted(set(range(n)) - set(bySubfilter))
        if missing:
            raise DcrValueError(
                f"the subfilter indices must be 0 .. {n - 1}; missing {missing}, unexpected "
                f"{sorted(set(bySubfilter) - set(range(n)))}",
                subfilters=sorted(bySubfilter),
            )
        exposures = [bySubfilter[k].get() for k in range(n)]
        return cls._fromExposures(exposures, "handle.get()")

    # ------------------------------------------------------------------ container protocol

    def __len__(self) -> int:
        """Return the number of subfilters."""
        return len(self._modelImages)

    def _index(self, subfilter: Any) -> int:
        if not _isInteger(subfilter):
            raise DcrTypeError("a subfilter index must be an integer", subfilter=subfilter)
        n = len(self._modelImages)
        if not -n <= subfilter < n:
            raise IndexError(
                f"subfilter index {subfilter} is out of range for a model of {n} subfilters "
                f"(valid: {-n} .. {n - 1})"
            )
        return int(subfilter) % n

    def __getitem__(self, subfilter: int) -> Image:
        """Return the model image of one subfilter (negative indices count from the end).

        Parameters
        ----------
        subfilter : int
            Index of the subfilter, ``-N .. N-1``.

        Returns
        -------
        modelImage : dcrmodel.image.Image
            The image itself, not a copy.
        """
        return self._modelImages[self._index(subfilter)]

    def __setitem__(self, subfilter: int, maskedImage: Image | np.ndarray) -> None:
        """Replace the model image of one subfilter.

        Parameters
        ----------
        subfilter : int
            Index of the subfilter, ``-N .. N-1``.
        maskedImage : dcrmodel.image.Image or numpy.ndarray
            The new image, with the model's box (an array must have its shape). Kept, not
            copied.

        Raises
        ------
        DcrShapeError
            If the image's box (or the array's shape) differs from the model's.
        DcrValueError
            If it holds NaN or infinite values in pixels no bad mask plane flags.
        """
        index = self._index(subfilter)
        image = _asImage(maskedImage, self.bbox, "the new subfilter image")
        if image.bbox != self.bbox:
            raise DcrShapeError(
                f"the new image covers {image.bbox} but the model covers {self.bbox}",
                bbox=image.bbox,
                expected=self.bbox,
            )
        bad = _badPixels(self._mask, self.bbox.shape)
        nonFinite, unmasked = _countUnmaskedNonFinite(image.array, bad)
        if unmasked:
            raise DcrValueError(
                f"the new image holds {unmasked} NaN or infinite pixels that no bad mask "
                "plane flags",
                subfilter=subfilter,
                count=unmasked,
            )
        if nonFinite.any():
            image.array[nonFinite] = 0.0
        self._modelImages[index] = image
        self._fourier = None

    def __iter__(self) -> Iterator[Image]:
        """Iterate over the subfilter images, bluest first."""
        return iter(list(self._modelImages))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fourier"] = None  # a cache: recomputed on demand, not shipped
        state["_otfCache"] = None
        return state

    def __repr__(self) -> str:
        band = self._filter.bandName if self._filter is not None else None
        return f"DcrModel(dcrNumSubfilters={len(self)}, bbox={self.bbox!r}, filter={band!r})"

    # ------------------------------------------------------------------ attributes

    @property
    def modelImages(self) -> list[Image]:
        """The list of subfilter images, bluest first (the list itself)."""
        return self._modelImages

    @property
    def dcrNumSubfilters(self) -> int:
        """Number of subfilters used to model chromatic effects within the band."""
        return len(self._modelImages)

    @property
    def bbox(self) -> Box:
        """Return the common bounding box of each subfilter image."""
        return self._modelImages[0].bbox

    @property
    def filter(self) -> Filter | None:
        """Return the filter of the model (None if unknown)."""
        return self._filter

    @property
    def mask(self) -> Mask | None:
        """Return the common mask of each subfilter image."""
        return self._mask

    @property
    def psf(self) -> Psf | None:
        """Return the psf of the model."""
        return self._psf

    @property
    def variance(self) -> Image | None:
        """Return the common variance of each subfilter image (counts²)."""
        return self._variance

    @property
    def photoCalib(self) -> PhotoCalib | None:
        """Return the photometric calibration of the model (counts to nJy)."""
        return self._photoCalib

    @property
    def wcs(self) -> WCS | None:
        """Return the celestial WCS of the model's pixel grid."""
        return self._wcs

    def _requireFilter(self, what: str) -> Filter:
        if self._filter is None:
            raise DcrMetadataError(
                f"the model has no filter, so its {what} is unknown; give the model a filter "
                "(filterInfo=Filter(bandName, effectiveWavelength, bandwidth) or a band name)",
                filter=None,
            )
        return self._filter

    @property
    def effectiveWavelength(self) -> float:
        """Return the effective wavelength of the model's band, in nm.

        Raises
        ------
        DcrMetadataError
            If the model has no filter.
        """
        return float(self._requireFilter("effective wavelength").effectiveWavelength)

    @property
    def bandwidth(self) -> float:
        """Return the full width of the model's band, in nm.

        Raises
        ------
        DcrMetadataError
            If the model has no filter.
        """
        return float(self._requireFilter("bandwidth").bandwidth)

    # ------------------------------------------------------------------ regions

    def _checkRegion(self, bbox: Any, name: str = "bbox") -> Box:
        """Validate that ``bbox`` is a non-empty Box inside the model's box."""
        bbox = _checkBox(bbox, name)
        if not self.bbox.contains(bbox):
            raise DcrShapeError(
                f"{name} {bbox} is not inside the model's box {self.bbox}; use a region of the "
                "model (for an exposure, cut it to the model: exposure[model.bbox])",
                **{name: bbox},
                modelBBox=self.bbox,
            )
        return bbox

    def getReferenceImage(self, bbox: Box | None = None) -> np.ndarray:
        """Calculate a reference image from the average of the subfilter images.

        Parameters
        ----------
        bbox : dcrmodel.image.Box, optional
            Sub-region of the model (parent pixels). Returns the entire image if None.

        Returns
        -------
        refImage : numpy.ndarray
            The reference image with no chromatic effects applied: the mean of the
            subfilter images over ``bbox``, a new array.

        Raises
        ------
        DcrShapeError
            If ``bbox`` is not inside the model's box.
        """
        bbox = self.bbox if bbox is None else self._checkRegion(bbox)
        slices = bbox.slices(self.bbox)
        total = np.array(self._modelImages[0].array[slices], dtype=np.float64)
        for image in self._modelImages[1:]:
            total += image.array[slices]
        total /= len(self._modelImages)
        return total.astype(self._modelImages[0].dtype, copy=False)

    def assign(self, dcrSubModel: DcrModel, bbox: Box | None = None) -> None:
        """Update a sub-region of the DcrModel with new values.

        Parameters
        ----------
        dcrSubModel : DcrModel
            New model of the true scene after correcting chromatic effects.
        bbox : dcrmodel.image.Box, optional
            Sub-region of the model. Defaults to the bounding box of ``dcrSubModel``.

        Raises
        ------
        DcrValueError
            (a ``ValueError``) If the new model has a different number of subfilters.
        DcrShapeError
            If ``bbox``, this model's box and the sub-model's box have no pixel in common.

        Notes
        -----
        The subfilter images are copied over the overlap of ``bbox``, this model's box and
        the sub-model's box. The mask and the variance, which describe the input data
        rather than the solution, are not changed.
        """
        if not isinstance(dcrSubModel, DcrModel):
            raise DcrTypeError(
                "dcrSubModel must be a DcrModel", dcrSubModel=type(dcrSubModel).__name__
            )
        if len(dcrSubModel) != len(self):
            raise DcrValueError(
                f"the new model has {len(dcrSubModel)} subfilters but this model has "
                f"{len(self)}; both must have the same number",
                newSubfilters=len(dcrSubModel),
                subfilters=len(self),
            )
        bbox = dcrSubModel.bbox if bbox is None else _checkBox(bbox, "bbox")
        region = bbox.intersection(self.bbox).intersection(dcrSubModel.bbox)
        if region.isEmpty():
            raise DcrShapeError(
                f"nothing to assign: {bbox}, the model's box {self.bbox} and the sub-model's "
                f"box {dcrSubModel.bbox} have no pixel in common",
                bbox=bbox,
            )
        target = region.slices(self.bbox)
        source = region.slices(dcrSubModel.bbox)
        for model, subModel in zip(self._modelImages, dcrSubModel.modelImages, strict=True):
            model.array[target] = subModel.array[source]
        if self._fourier is not None:
            self._fourier.invalidate()

    # ------------------------------------------------------------------ templates

    def _resolveVisit(
        self, exposure: Any, visitInfo: Any, bbox: Any, wcs: Any, method: str
    ) -> tuple[Any, Box, WCS]:
        """Return (visitInfo, bbox, wcs) from an exposure or the separate arguments."""
        if exposure is not None:
            if not isinstance(exposure, Exposure):
                raise DcrTypeError(
                    f"{method}: exposure must be a dcrmodel.image.Exposure",
                    exposure=type(exposure).__name__,
                )
            missing = [name for name in ("visitInfo", "wcs") if getattr(exposure, name) is None]
            if missing:
                raise DcrMetadataError(
                    f"{method}: the exposure has no {' and no '.join(missing)}, which DCR needs; "
                    "set them on the exposure",
                    missing=[f"exposure.{name}" for name in missing],
                )
            return exposure.visitInfo, exposure.bbox, exposure.wcs
        missing = [
            name
            for name, value in (("visitInfo", visitInfo), ("bbox", bbox), ("wcs", wcs))
            if value is None
        ]
        if missing:
            raise DcrMetadataError(
                f"{method} needs either an exposure or all of visitInfo, bbox and wcs; "
                f"missing: {', '.join(missing)}",
                missing=missing,
            )
        if not isinstance(wcs, WCS):
            raise DcrTypeError(f"{method}: wcs must be an astropy.wcs.WCS", wcs=type(wcs).__name__)
        return visitInfo, _checkBox(bbox, "bbox"), wcs

    def _checkGrid(self, wcs: WCS, bbox: Box, method: str) -> None:
        """Refuse an exposure whose WCS puts ``bbox`` elsewhere than the model's WCS does."""
        if self._wcs is None:
            return
        offset = wcsGridOffset(wcs, self._wcs, bbox)
        if not np.isfinite(offset) or offset > WCS_GRID_TOLERANCE:
            raise DcrShapeError(
                f"{method}: the exposure is not on the model's pixel grid (its WCS puts the "
                f"box {offset:.3g} pixels from where the model's WCS does); warp it onto the "
                "model's grid (same WCS, parent coordinates) first",
                offsetPixels=offset,
            )

    def _checkTemplateMask(self, mask: Any, bbox: Box) -> Mask | None:
        if mask is None:
            return None
        if not isinstance(mask, Mask):
            raise DcrTypeError("mask must be a dcrmodel.image.Mask", mask=type(mask).__name__)
        if not mask.bbox.contains(bbox):
            raise DcrShapeError(
                f"the mask covers {mask.bbox}, which does not contain the template's box {bbox}",
                maskBBox=mask.bbox,
                bbox=bbox,
            )
        return mask

    def _resolveEngine(self, engine: Any) -> str:
        """Return the template engine: ``engine``, or the default for this model (None)."""
        if engine is None:
            psf = self._psf
            if psf is not None and psf.fwhm < _MIN_FOURIER_FWHM:
                return "spline"
            return "fourier"
        if engine not in _ENGINES:
            raise DcrConfigError(
                f"unknown template engine {engine!r}; known engines: {', '.join(_ENGINES)}",
                engine=engine,
            )
        return str(engine)

    @staticmethod
    def _resolveMode(mode: Any, engine: str, splitSubfilters: bool) -> str:
        """Return how a subfilter's light is represented: "smear", "split" or "mean"."""
        if mode is None:
            if not splitSubfilters:
                return "mean"
            return "smear" if engine == "fourier" else "split"
        if mode not in TRANSFER_MODES:
            raise DcrConfigError(
                f"unknown subfilter mode {mode!r}; known modes: {', '.join(TRANSFER_MODES)}",
                mode=mode,
            )
        if mode == "smear" and engine != "fourier":
            raise DcrConfigError(
                "mode 'smear' (the exact smear of a subfilter between its edge shifts) needs "
                "engine='fourier'; use mode='split' or 'mean' with the spline engine",
                mode=mode,
                engine=engine,
            )
        return str(mode)

    def _subfilterCentres(self) -> list[float]:
        """Central wavelengths (nm) of the subfilters, bluest first."""
        return [
            0.5 * (start + end)
            for start, end in wavelengthGenerator(
                self.effectiveWavelength, self.bandwidth, len(self)
            )
        ]

    def _targetPsf(self, exposure: Any, psf: Any, matchPsf: Any) -> Psf | None:
        """Return the PSF to match the template to, or None for a template at the model's."""
        if not isinstance(matchPsf, (bool, np.bool_)):
            raise DcrTypeError("matchPsf must be True or False", matchPsf=matchPsf)
        if psf is not None and not isinstance(psf, Psf):
            raise DcrTypeError(
                "psf must be a dcrmodel.image.Psf (the PSF to match the template to) or None",
                psf=type(psf).__name__,
            )
        target = psf if psf is not None else (exposure.psf if exposure is not None else None)
        if not matchPsf or target is None or self._psf is None:
            return None
        validatePsfAlpha(target.alpha, "the target PSF's alpha (PSF-ALPH)")
        return target

    def buildMatchedTemplate(
        self,
        exposure: Exposure | None = None,
        order: int = 3,
        visitInfo: Any = None,
        bbox: Box | None = None,
        wcs: WCS | None = None,
        mask: Mask | None = None,
        splitSubfilters: bool = True,
        splitThreshold: float = 0.0,
        amplifyModel: float = 1.0,
        *,
        engine: str | None = None,
        mode: str | None = None,
        psf: Psf | None = None,
        matchPsf: bool = True,
        psfDamping: float = DEFAULT_PSF_DAMPING,
        psfMaxGain: float | None = DEFAULT_PSF_MAX_GAIN,
    ) -> Image:
        """Create a DCR-matched template image for an exposure.

        Parameters
        ----------
        exposure : dcrmodel.image.Exposure, optional
            The input exposure to build a matched template for. May be omitted if all of
            the metadata is supplied separately.
        order : int, optional
            Interpolation (spline) order of the DCR shift, 0 to 5 (spline engine only).
        visitInfo : dcrmodel.physics.observation.VisitInfo, optional
            Metadata for the exposure. Ignored if exposure is set.
        bbox : dcrmodel.image.Box, optional
            Sub-region of the model (parent pixels). Ignored if exposure is set.
        wcs : astropy.wcs.WCS, optional
            Coordinate system definition (wcs) for the exposure. Ignored if exposure is set.
        mask : dcrmodel.image.Mask, optional
            Reference mask to use for the template image. Checked to cover the template's
            box. The template image itself does not depend on it; when the template is
            PSF-matched and the damping of the matching (see Notes) loses significant light,
            the affected pixels are flagged in its ``PSF_DAMPED`` plane (added if missing).
        splitSubfilters : bool, optional
            Represent each subfilter's light by its spread between the DCR of the
            subfilter's two wavelength edges rather than by one shift at its midpoint:
            the exact uniform smear between the two edge shifts (Fourier engine, default) or
            the reference's average of two copies shifted to the quarter points between
            them (spline engine, or ``mode="split"``). Default: True.
        splitThreshold : float, optional
            Minimum DCR difference (pixels) between the two edges of a subfilter required to
            use ``splitSubfilters``; below it, or at it, the subfilter is shifted once by the
            mean of its edge shifts.
        amplifyModel : float, optional
            Multiplication factor to amplify differences between model planes, used to
            speed the convergence of iterative forward modelling: each subfilter image
            ``m_k`` is replaced by ``ref + amplifyModel * (m_k - ref)``, ``ref`` being the
            reference image (`getReferenceImage`).
        engine : {"fourier", "spline"}, optional
            Keyword only. ``"fourier"``: exact phase ramps (and smears) on the model's
            Fourier transforms, computed once and cached on the model (``order`` is not
            used). ``"spline"``: the reference, ``dcrmodel.model.shift.applyDcr`` with a spline of
            ``order``. None (default): ``"fourier"``, except for a model whose PSF is
            undersampled (FWHM below 2 pixels), where phase ramps ring and the spline is the
            more accurate.
        mode : {"smear", "split", "mean"}, optional
            Keyword only. How a subfilter's light is represented, overriding
            ``splitSubfilters``: ``"smear"`` (Fourier engine only), ``"split"`` or
            ``"mean"``. None (default): as described under ``splitSubfilters``.
        psf : dcrmodel.image.Psf, optional
            Keyword only. The PSF to give the template (None: the exposure's PSF, if any).
        matchPsf : bool, optional
            Keyword only. Give the template the target PSF (``psf`` or the exposure's) when
            both it and the model's PSF are known (default True). False, or either PSF
            unknown: the template is at the model's PSF.
        psfDamping : float, optional
            Keyword only. Damping level of the PSF matching relative to the largest value of
            the model's optical transfer function (`dcrmodel.psf.matching.psfMatchingTransfer`).
        psfMaxGain : float or None, optional
            Keyword only. Largest gain ``|H|`` of the PSF matching (default 2): where the
            visit is sharper than the model, larger gains put more of the model's noise into
            the template than they restore of the visit's light (a model of ``J`` visits has
            about ``1 / sqrt(J)`` of a visit's noise). None: damping only.

        Returns
        -------
        templateImage : dcrmodel.image.Image
            The DCR-matched template over the exposure's box: the sum over subfilters of the
            model moved by each subfilter's DCR in the visit (and, PSF-matched, re-blurred
            from the model's PSF to the visit's at the subfilter's central wavelength). Same
            dtype as the model.

        Raises
        ------
        DcrMetadataError
            (a ``ValueError``) If neither exposure nor all of visitInfo, bbox and wcs are
            set (the message names what is missing), if the exposure lacks a WCS or visit
            info, or if the model has no filter wavelengths.
        DcrShapeError
            If the template's box is not inside the model's box, or the mask does not
            cover it.
        DcrValueError, DcrConfigError, DcrTypeError
            For an impossible ``order``, ``splitThreshold``, ``amplifyModel``, ``engine``,
            ``mode``, ``psf`` or ``psfDamping``; a target PSF whose ``alpha`` is outside
            [-1, 1].

        Warns
        -----
        DcrPsfWarning
            Once per model, the first time a template's PSF matching is damped (the visit is
            sharper than the model somewhere in the band): the template misses part of the
            visit's high-frequency light there (flagged in ``PSF_DAMPED``).

        Notes
        -----
        The shift is measured at the centre of the template's box (``calculateDcr`` with
        ``bbox``). Each subfilter image is shifted over the template's box grown by the
        largest shift plus a margin (within the model's box), then cut to the box, so that
        the template does not depend on how the model was cut into regions; beyond the
        model's edges the edge pixels are repeated (``mode="nearest"``). The Fourier engine
        transforms the whole model (padded by repeating its edge pixels) once, caches the
        transforms until the model images change, and cuts each template to ``bbox``.

        PSF matching. The model's subfilter images are the sky seen through the model's PSF
        (`psf`). The visit sees subfilter ``k`` through its own PSF at the subfilter's
        central wavelength (size scaled by ``(lambda_k / lambda_eff) ** alpha``), so each
        subfilter's transfer is multiplied by ``OTF_visit,k / OTF_model``, damped where the
        model's OTF is too small to divide by (`dcrmodel.psf.matching.psfMatchingTransfer`). Where
        the
        visit is sharper than the model the damping removes light the model does not hold;
        the template then lacks, for each subfilter, the model convolved with the
        residual kernel of the matching. Pixels where the sum over subfilters of ``|model|``
        convolved with ``|residual kernel|`` (moved by the DCR) exceeds the noise (the
        exposure's standard deviation, else that of the template from the model's variance,
        else 1e-3 of the template's peak) are flagged.
        """
        template, _ = self._matchedTemplate(
            "buildMatchedTemplate",
            exposure,
            order,
            visitInfo,
            bbox,
            wcs,
            mask,
            splitSubfilters,
            splitThreshold,
            amplifyModel,
            engine,
            mode,
            psf,
            matchPsf,
            psfDamping,
            psfMaxGain,
        )
        return template

    def _matchedTemplate(
        self,
        method: str,
        exposure: Any,
        order: Any,
        visitInfo: Any,
        bbox: Any,
        wcs: Any,
        mask: Any,
        splitSubfilters: Any,
        splitThreshold: Any,
        amplifyModel: Any,
        engine: Any,
        mode: Any,
        psf: Any,
        matchPsf: Any,
        psfDamping: Any,
        psfMaxGain: Any,
    ) -> tuple[Image, Psf | None]:
        """Build a template; flag damped pixels in ``mask``; return it and its PSF."""
        visitInfo, bbox, wcs = self._resolveVisit(exposure, visitInfo, bbox, wcs, method)
        self._checkGrid(wcs, bbox, method)
        bbox = self._checkRegion(bbox)
        mask = self._checkTemplateMask(mask, bbox)
        effectiveWavelength = self.effectiveWavelength
        bandwidth = self.bandwidth
        if not _isInteger(order) or not 0 <= order <= 5:
            raise DcrValueError("order must be an integer spline order from 0 to 5", order=order)
        if not isinstance(splitSubfilters, (bool, np.bool_)):
            raise DcrTypeError(
                "splitSubfilters must be True or False", splitSubfilters=splitSubfilters
            )
        splitThreshold = _checkFiniteNumber(splitThreshold, "splitThreshold", minimum=0.0)
        amplifyModel = _checkFiniteNumber(amplifyModel, "amplifyModel", minimum=0.0)
        engine = self._resolveEngine(engine)
        mode = self._resolveMode(mode, engine, bool(splitSubfilters))
        psfDamping = _checkFiniteNumber(psfDamping, "psfDamping", minimum=0.0)
        if not psfDamping > 0:
            raise DcrValueError("psfDamping must be > 0", psfDamping=psfDamping)
        if psfMaxGain is not None:
            psfMaxGain = _checkFiniteNumber(psfMaxGain, "psfMaxGain", minimum=0.0)
            if not psfMaxGain > 0:
                raise DcrValueError("psfMaxGain must be > 0 (or None)", psfMaxGain=psfMaxGain)
        target = self._targetPsf(exposure, psf, matchPsf)

        edges = mode != "mean"
        dcrShifts = calculateDcr(
            visitInfo,
            wcs,
            effectiveWavelength,
            bandwidth,
            len(self),
            splitSubfilters=edges,
            bbox=bbox,
        )
        shifts = np.asarray(dcrShifts, dtype=float)
        if edges:
            spans = np.hypot(*(shifts[:, 1] - shifts[:, 0]).T)
            useSplit = spans > splitThreshold
            _log.debug(
                "edge shifts %s px, spans %s px, %s %s",
                shifts.tolist(),
                spans.tolist(),
                mode,
                useSplit.tolist(),
            )
        else:
            useSplit = np.zeros(len(self), dtype=bool)
            _log.debug("shifts %s px", shifts.tolist())
        if engine == "fourier":
            template, damped = self._fourierTemplate(
                bbox, shifts, useSplit, amplifyModel, mode, target, (psfDamping, psfMaxGain),
                exposure,
            )
        else:
            template, damped = self._splineTemplate(
                bbox, shifts, useSplit, amplifyModel, int(order), target,
                (psfDamping, psfMaxGain), exposure,
            )
        if damped is not None and mask is not None:
            bit = mask.addMaskPlane(PSF_DAMPED_PLANE)
            region = mask.array[bbox.slices(mask.bbox)]
            region[damped] |= np.int32(1 << bit)
        image = Image(template.astype(self._modelImages[0].dtype, copy=False), bbox=bbox)
        return image, target

    @staticmethod
    def _meanShift(shift: np.ndarray) -> np.ndarray:
        """Return the single shift of a subfilter: itself, or the mean of its two edge shifts."""
        return shift.mean(axis=0) if shift.ndim == 2 else shift

    # ---- PSF matching

    def _modelOtf(self, padded: tuple[int, int], cdtype: np.dtype) -> np.ndarray:
        """Return the model PSF's transfer function on ``padded`` (cached per grid)."""
        key = (id(self._psf), tuple(padded), np.dtype(cdtype).str)
        cached = self._otfCache
        if cached is None or cached[0] != key:
            cached = (key, psfTransfer(self._psf, padded, dtype=cdtype))
            self._otfCache = cached
        return cached[1]

    def _psfSize(self, target: Psf) -> tuple[int, int]:
        """Kernel widths (pixels) of the target PSF over the subfilters and the model PSF.

        Returns the width to pad by (holding all but 1 % of each kernel,
        `dcrmodel.psf.matching.effectiveKernelSize`: light wrapped around the grid must cross both
        margins to reach the image) and the widest whole kernel (which the grid must hold).
        """
        centres = self._subfilterCentres()
        wl = self.effectiveWavelength
        padding = max(
            effectiveKernelSize([target], centres, wl, tailFraction=_PSF_TAIL),
            effectiveKernelSize([self._psf], tailFraction=_PSF_TAIL),
        )
        full = max(maxKernelSize([target], centres, wl), maxKernelSize([self._psf]))
        return padding, full

    def _psfMatches(
        self,
        target: Psf,
        padded: tuple[int, int],
        cdtype: np.dtype,
        damping: tuple[float, float | None],
    ) -> list[PsfMatch]:
        """Return the damped matching transfers from the model PSF to ``target``, per subfilter.

        ``damping`` is ``(psfDamping, psfMaxGain)``.
        """
        otfModel = self._modelOtf(padded, cdtype)
        return [
            psfMatchingTransfer(
                target,
                otfModel,
                padded,
                wavelength=centre,
                effectiveWavelength=self.effectiveWavelength,
                damping=damping[0],
                dtype=cdtype,
                maxGain=damping[1],
            )
            for centre in self._subfilterCentres()
        ]

    def _noiseFor(self, exposure: Any, bbox: Box, templateArray: np.ndarray) -> np.ndarray:
        """Noise (standard deviation per pixel) against which lost light is judged."""
        if exposure is not None and exposure.variance is not None:
            variance = np.asarray(exposure.variance.array[bbox.slices(exposure.bbox)], float)
            good = np.isfinite(variance) & (variance > 0)
            if good.any():
                return np.sqrt(np.where(good, variance, np.median(variance[good])))
        if self._variance is not None:
            variance = len(self) * np.asarray(self._variance.array[bbox.slices(self.bbox)], float)
            good = np.isfinite(variance) & (variance > 0)
            if good.any():
                return np.sqrt(np.where(good, variance, np.median(variance[good])))
        peak = float(np.max(np.abs(templateArray))) if templateArray.size else 0.0
        return np.full(bbox.shape, max(1e-3 * peak, np.finfo(float).tiny))

    def _dampedPixels(
        self,
        matches: list[PsfMatch],
        models: list[np.ndarray],
        dcrTransfers: np.ndarray | None,
        padded: tuple[int, int],
        cut: tuple[slice, slice],
        noise: np.ndarray,
    ) -> np.ndarray | None:
        """Template pixels where the damping of the PSF matching lost light above the noise.

        ``models`` are the subfilter images on a region embedded (edge-extended) in
        ``padded``, ``cut`` selects the template's box inside that region, and
        ``dcrTransfers`` (or None) moves each subfilter by its DCR. The light that can be
        lost is that of the model's sources: each subfilter image's pixels more than 3
        standard deviations of its noise (from the model's variance, else the image's
        robust scatter) above 0.
        """
        if not any(match.isDamped for match in matches):
            return None
        total = np.zeros((padded[0], padded[1] // 2 + 1), dtype=np.complex128)
        for k, match in enumerate(matches):
            if not match.isDamped:
                continue
            residual = np.abs(scipy.fft.ifftshift(match.residualKernel()))
            model = np.asarray(models[k], dtype=float)
            if self._variance is not None:
                sigma = math.sqrt(max(float(np.median(self._variance.array)), 0.0))
            else:
                sigma = 1.4826 * float(np.median(np.abs(model - np.median(model))))
            sources = np.where(model > 3.0 * sigma, model, 0.0)
            term = scipy.fft.rfft2(padToShape(sources, padded))
            term *= scipy.fft.rfft2(residual)
            if dcrTransfers is not None:
                term *= dcrTransfers[k]
            total += term
        lost = cropFromPadded(scipy.fft.irfft2(total, s=padded), models[0].shape)[cut]
        damped = lost > noise
        if not damped.any():
            return None
        if not self._warnedDamping:
            warnings.warn(
                "the visit is sharper than the DCR model's PSF in part of the band, so PSF "
                "matching of the template was damped and it misses some of the visit's "
                "high-frequency light; the pixels concerned are flagged "
                f"{PSF_DAMPED_PLANE} in the template's mask (build the model with a sharper "
                "model PSF to avoid this)",
                DcrPsfWarning,
                stacklevel=5,
            )
            self._warnedDamping = True
        _log.info("PSF matching damped: %d template pixels flagged", int(damped.sum()))
        return damped

    # ---- engines

    def _splineTemplate(
        self,
        bbox: Box,
        shifts: np.ndarray,
        useSplit: np.ndarray,
        amplifyModel: float,
        order: int,
        target: Psf | None = None,
        psfDamping: tuple[float, float | None] = (DEFAULT_PSF_DAMPING, None),
        exposure: Any = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Sum of the subfilter images shifted by splines (``applyDcr``), over ``bbox``.

        With a target PSF each shifted subfilter image is then convolved with its matching
        transfer (one FFT pair per subfilter).
        """
        maxShift = float(np.max(np.abs(shifts))) if shifts.size else 0.0
        psfSize, fullSize = self._psfSize(target) if target is not None else (0, 0)
        grow = int(math.ceil(maxShift)) + _SHIFT_MARGIN + psfSize // 2
        work = bbox.grow(grow).intersection(self.bbox)
        workSlices = work.slices(self.bbox)
        cut = bbox.slices(work)
        reference = None
        if amplifyModel != 1.0:
            reference = self.getReferenceImage(work).astype(np.float64)
        matches = None
        padded = None
        if target is not None:
            padded = paddedShape(work.shape, 0.0, psfSize)
            padded = tuple(max(p, scipy.fft.next_fast_len(fullSize, real=True)) for p in padded)
            matches = self._psfMatches(target, padded, np.dtype(np.complex128), psfDamping)
        template = np.zeros(bbox.shape, dtype=np.float64)
        models = []
        for k, (image, shift, split) in enumerate(
            zip(self._modelImages, shifts, useSplit, strict=True)
        ):
            model = image.array[workSlices]
            if reference is not None:
                model = reference + amplifyModel * (model - reference)
            if split:
                shifted = applyDcr(model, shift, splitSubfilters=True, order=order)
            else:
                shifted = applyDcr(model, self._meanShift(shift), order=order)
            if matches is not None:
                models.append(shifted)
                shifted = applyTransfer(
                    np.asarray(shifted, dtype=np.float64), matches[k].transfer, padded
                )
            template += shifted[cut]
        damped = None
        if matches is not None:
            damped = self._dampedPixels(
                matches, models, None, padded, cut, self._noiseFor(exposure, bbox, template)
            )
        return template, damped

    def _fourierEngine(
        self, maxShift: float, psfSize: int = 0, fullSize: int = 0
    ) -> FourierTemplateEngine:
        """Return the cached Fourier engine, rebuilt if it cannot hold the shifts and PSF.

        The grid is padded by ``psfSize`` (pixels) and holds a whole kernel of ``fullSize``.
        """
        engine = self._fourier
        if engine is not None:
            allowed = allowedShift(engine.shape, engine.paddedShape, psfSize)
            if min(allowed) < maxShift or min(engine.paddedShape) < fullSize:
                engine = None
        if engine is None and min(self.bbox.shape) + psfSize < fullSize:
            psfSize = fullSize
        if engine is None:
            # Leave room for the larger shifts of other visits, so that the transforms of
            # the model are computed once for a whole set of templates.
            room = max(1.5 * maxShift, maxShift + 2.0)
            size = max(psfSize, self._psfHeadroom)
            engine = FourierTemplateEngine(
                [image.array for image in self._modelImages], room, psfSize=size
            )
            self._psfHeadroom = size
            self._fourier = engine
            _log.debug("Fourier engine %r for shifts up to %.2f px", engine, room)
        return engine

    def _fourierTemplate(
        self,
        bbox: Box,
        shifts: np.ndarray,
        useSplit: np.ndarray,
        amplifyModel: float,
        mode: str = "split",
        target: Psf | None = None,
        psfDamping: tuple[float, float | None] = (DEFAULT_PSF_DAMPING, None),
        exposure: Any = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Sum of the subfilter images moved by phase ramps (or smeared), over ``bbox``.

        Amplification is linear in the model, so it goes into the transfer functions:
        ``sum_k (ref + a (m_k - ref)) H_k = sum_k m_k (a H_k + (1 - a) mean_j H_j)``.
        PSF matching multiplies each ``H_k`` by the subfilter's matching transfer.
        """
        maxShift = float(np.max(np.abs(shifts))) if shifts.size else 0.0
        psfSize, fullSize = self._psfSize(target) if target is not None else (0, 0)
        engine = self._fourierEngine(maxShift, psfSize, fullSize)
        padded = engine.paddedShape
        complexType = np.result_type(engine.dtype, np.complex64)
        transfers = np.stack(
            [
                subfilterTransfer(padded, shift, mode, complexType)
                if split
                else subfilterTransfer(padded, self._meanShift(shift), "mean", complexType)
                for shift, split in zip(shifts, useSplit, strict=True)
            ]
        )
        matches = None
        dcrTransfers = None
        if target is not None:
            matches = self._psfMatches(target, padded, np.dtype(complexType), psfDamping)
            dcrTransfers = transfers.copy()
            for k, match in enumerate(matches):
                transfers[k] *= match.transfer
        if amplifyModel != 1.0:
            mean = transfers.mean(axis=0)
            transfers *= amplifyModel
            transfers += (1.0 - amplifyModel) * mean
        full = engine.buildTemplateFromTransfers(transfers)
        cut = bbox.slices(self.bbox)
        template = np.asarray(full[cut], dtype=np.float64)
        damped = None
        if matches is not None:
            damped = self._dampedPixels(
                matches,
                [image.array for image in self._modelImages],
                dcrTransfers,
                padded,
                cut,
                self._noiseFor(exposure, bbox, template),
            )
        return template, damped

    def buildMatchedExposure(
        self,
        exposure: Exposure | None = None,
        visitInfo: Any = None,
        bbox: Box | None = None,
        wcs: WCS | None = None,
        mask: Mask | None = None,
        order: int = 3,
        splitSubfilters: bool = True,
        splitThreshold: float = 0.0,
        *,
        engine: str | None = None,
        mode: str | None = None,
        psf: Psf | None = None,
        matchPsf: bool = True,
        psfDamping: float = DEFAULT_PSF_DAMPING,
        psfMaxGain: float | None = DEFAULT_PSF_MAX_GAIN,
    ) -> Exposure:
        """Create an exposure from a template image (a wrapper of `buildMatchedTemplate`).

        Parameters
        ----------
        exposure : dcrmodel.image.Exposure, optional
            The input exposure to build a matched template for. May be omitted if all of
            the metadata is supplied separately.
        visitInfo : dcrmodel.physics.observation.VisitInfo, optional
            Metadata for the exposure. Ignored if exposure is set.
        bbox : dcrmodel.image.Box, optional
            Sub-region of the model. Ignored if exposure is set.
        wcs : astropy.wcs.WCS, optional
            Coordinate system definition (wcs) for the exposure. Ignored if exposure is set.
        mask : dcrmodel.image.Mask, optional
            Reference mask to use for the template image. None: the model's mask.
        order, splitSubfilters, splitThreshold
            Passed to `buildMatchedTemplate`.
        engine, mode, psf, matchPsf, psfDamping, psfMaxGain
            Keyword only; passed to `buildMatchedTemplate`.

        Returns
        -------
        templateExposure : dcrmodel.image.Exposure
            The DCR-matched template over the exposure's box, with the visit's WCS and
            visit info, the model's filter and photometric calibration, and the PSF of the
            template: the target PSF when it was PSF-matched, else the model's.

        Raises
        ------
        DcrMetadataError, DcrShapeError, DcrValueError
            As `buildMatchedTemplate`.

        Notes
        -----
        - Mask: a copy of ``mask`` (or of the model's mask) cut to the box; all zero if the
          model has none. Pixels where the PSF matching was damped enough to lose light
          above the noise are flagged in its ``PSF_DAMPED`` plane (see
          `buildMatchedTemplate`).
        - Variance: the template is the sum of ``N`` subfilter images, each with the
          model's (per-subfilter) variance and taken as independent, so its variance is
          ``N`` times the model's. For a model made by `fromImage` this is the variance of
          the coadd it was made from. The correlation the interpolating shifts (and the
          PSF matching) introduce between neighbouring pixels is not tracked. If the model
          has no variance the exposure gets the unit variance of a `MaskedImage` without
          one.
        """
        method = "buildMatchedExposure"
        visitInfo, bbox, wcs = self._resolveVisit(exposure, visitInfo, bbox, wcs, method)
        self._checkGrid(wcs, bbox, method)
        bbox = self._checkRegion(bbox)
        mask = self._checkTemplateMask(mask, bbox)
        sourceMask = mask if mask is not None else self._mask
        if sourceMask is not None:
            templateMask = Mask(
                sourceMask.array[bbox.slices(sourceMask.bbox)].copy(),
                bbox=bbox,
                planes=sourceMask.planes,
            )
        else:
            templateMask = Mask.fromBox(bbox)
        template, target = self._matchedTemplate(
            method,
            exposure,
            order,
            visitInfo,
            bbox,
            wcs,
            templateMask,
            splitSubfilters,
            splitThreshold,
            1.0,
            engine,
            mode,
            psf,
            matchPsf,
            psfDamping,
            psfMaxGain,
        )
        templateVariance = None
        if self._variance is not None:
            templateVariance = Image(
                self._variance.array[bbox.slices(self.bbox)] * len(self), bbox=bbox
            )
        maskedImage = MaskedImage(template, mask=templateMask, variance=templateVariance)
        return Exposure(
            maskedImage,
            wcs=wcs,
            psf=target if target is not None else self._psf,
            visitInfo=visitInfo,
            filter=self._filter,
            photoCalib=self._photoCalib,
        )

    # ------------------------------------------------------------------ conditioning

    def calculateNoiseCutoff(
        self,
        image: Image | np.ndarray,
        statsCtrl: StatisticsControl | None,
        bufferSize: int,
        convergenceMaskPlanes: str | Sequence[str] = "DETECTED",
        mask: Mask | None = None,
        bbox: Box | None = None,
        numSigma: float = 1.0,
    ) -> float:
        """Calculate the background noise level of an image.

        Parameters
        ----------
        image : dcrmodel.image.Image or numpy.ndarray
            The input image to evaluate the background noise properties of (counts). An
            array is taken to cover ``bbox`` (default: the model's box).
        statsCtrl : dcrmodel.image.StatisticsControl or None
            Which mask planes are bad, and the sigma clipping. None: the defaults.
        bufferSize : int
            Number of additional pixels to exclude from the edges of the bounding box.
        convergenceMaskPlanes : str or list of str, optional
            Mask planes that mark sources (default ``DETECTED``); their pixels are excluded.
        mask : dcrmodel.image.Mask, optional
            Optional alternate mask; default the model's mask.
        bbox : dcrmodel.image.Box, optional
            Sub-region to calculate the noise level over. Default: the image's box (for an
            Image) or the model's box.
        numSigma : float, optional
            The cutoff in units of the noise's standard deviation.

        Returns
        -------
        noiseCutoff : float
            The threshold value to treat pixels as noise in an image (counts).

        Raises
        ------
        DcrValueError
            If ``bufferSize`` leaves no pixels, or no background pixel remains.
        DcrShapeError
            If the image or the mask does not cover ``bbox``.
        DcrConfigError
            If a mask plane is unknown (from the mask) or the arguments are malformed.

        Notes
        -----
        The background pixels are those of ``bbox`` shrunk by ``bufferSize`` on every side
        that are finite, not in a bad mask plane of ``statsCtrl`` and not in a convergence
        mask plane. The cutoff is ``numSigma`` times their sigma-clipped standard deviation
        (``statsCtrl.clippedStats``: ``numSigmaClip`` and ``numIter``), so that a few
        unflagged faint sources do not raise it. Without any mask every pixel counts.
        """
        statsCtrl = statsCtrl if statsCtrl is not None else StatisticsControl()
        if not isinstance(statsCtrl, StatisticsControl):
            raise DcrTypeError(
                "statsCtrl must be a dcrmodel.image.StatisticsControl (or None)",
                statsCtrl=type(statsCtrl).__name__,
            )
        if not _isInteger(bufferSize) or bufferSize < 0:
            raise DcrValueError(
                "bufferSize must be an integer number of pixels, 0 or more", bufferSize=bufferSize
            )
        planes = _checkMaskPlanes(convergenceMaskPlanes)
        numSigma = _checkFiniteNumber(numSigma, "numSigma", minimum=0.0, strict=True)
        if bbox is None:
            bbox = image.bbox if isinstance(image, Image) else self.bbox
        bbox = _checkBox(bbox, "bbox")
        if isinstance(image, Image):
            values = _regionArray(image, bbox, "image")
        elif isinstance(image, np.ndarray):
            if image.shape != bbox.shape:
                raise DcrShapeError(
                    f"image has shape {image.shape} but the region {bbox} has shape {bbox.shape}",
                    shape=image.shape,
                    bbox=bbox,
                )
            values = image
        else:
            raise DcrTypeError(
                "image must be an Image or a 2-D numpy array", image=type(image).__name__
            )
        mask = mask if mask is not None else self._mask
        if mask is not None:
            if not isinstance(mask, Mask):
                raise DcrTypeError("mask must be a dcrmodel.image.Mask", mask=type(mask).__name__)
            if not mask.bbox.contains(bbox):
                raise DcrShapeError(
                    f"the mask covers {mask.bbox}, which does not contain the region {bbox}",
                    maskBBox=mask.bbox,
                    bbox=bbox,
                )
            rejectBits = statsCtrl.getAndMask(mask) | mask.getPlaneBitMask(planes)
        if 2 * int(bufferSize) >= min(bbox.width, bbox.height):
            raise DcrValueError(
                f"bufferSize {bufferSize} leaves no pixels of the region {bbox}; use a smaller "
                "bufferSize or a larger region",
                bufferSize=bufferSize,
                bbox=bbox,
            )
        shrunk = bbox.grow(-int(bufferSize))
        inner = shrunk.slices(bbox)
        selected = values[inner]
        good = np.isfinite(selected)
        if mask is not None:
            good &= (mask.array[shrunk.slices(mask.bbox)] & rejectBits) == 0
        background = np.asarray(selected[good], dtype=np.float64)
        if background.size < 2:
            raise DcrValueError(
                "no background pixels to measure the noise: every pixel of the region is "
                "masked (bad or convergence planes) or within the buffer",
                bbox=bbox,
                bufferSize=bufferSize,
                convergenceMaskPlanes=planes,
            )
        _, std = statsCtrl.clippedStats(background)
        return float(numSigma * std)

    def _subfilterArrays(self, modelImages: Any, bbox: Box, method: str) -> list[np.ndarray]:
        if isinstance(modelImages, (Image, np.ndarray)) or not isinstance(modelImages, Sequence):
            raise DcrTypeError(
                f"{method}: modelImages must be a list with one image per subfilter",
                modelImages=type(modelImages).__name__,
            )
        if len(modelImages) != len(self):
            raise DcrValueError(
                f"{method}: {len(modelImages)} images given for a model of {len(self)} "
                "subfilters; give one per subfilter",
                given=len(modelImages),
                subfilters=len(self),
            )
        return [_regionArray(m, bbox, f"modelImages[{k}]") for k, m in enumerate(modelImages)]

    def conditionDcrModel(
        self, modelImages: Sequence[Image | np.ndarray], bbox: Box, gain: float = 1.0
    ) -> None:
        """Average two iterations' solutions to reduce oscillations.

        Parameters
        ----------
        modelImages : list of dcrmodel.image.Image or numpy.ndarray
            The new DCR model images from the current iteration, one per subfilter, covering
            ``bbox``. The values will be modified in place.
        bbox : dcrmodel.image.Box
            Sub-region of the model.
        gain : float, optional
            Relative weight to give the new solution when updating the model. Defaults to
            1.0, which gives equal weight to both solutions.

        Raises
        ------
        DcrValueError
            If the number of images differs from the model's, or ``gain`` is not a positive
            finite number.
        DcrShapeError
            If an image does not cover ``bbox`` or ``bbox`` is outside the model.

        Notes
        -----
        ``new <- (gain * new + old) / (1 + gain)`` pixel by pixel, ``old`` being this model's
        image of the same subfilter over ``bbox``.
        """
        bbox = self._checkRegion(bbox)
        arrays = self._subfilterArrays(modelImages, bbox, "conditionDcrModel")
        gain = _checkFiniteNumber(gain, "gain", minimum=0.0, strict=True)
        slices = bbox.slices(self.bbox)
        for array, old in zip(arrays, self._modelImages, strict=True):
            array *= gain
            array += old.array[slices]
            array /= 1.0 + gain

    def regularizeModelIter(
        self,
        subfilter: int,
        newModel: Image | np.ndarray,
        bbox: Box,
        regularizationFactor: float,
        regularizationWidth: int = 2,
    ) -> None:
        """Restrict large variations in the model between iterations.

        Parameters
        ----------
        subfilter : int
            Index of the current subfilter within the full band.
        newModel : dcrmodel.image.Image or numpy.ndarray
            The new DCR model for one subfilter from the current iteration, covering
            ``bbox``. Values in newModel that are extreme compared with the last iteration
            are modified in place.
        bbox : dcrmodel.image.Box
            Sub-region of the model.
        regularizationFactor : float
            Maximum relative change of the model allowed between iterations (>= 1).
        regularizationWidth : int, optional
            Minimum radius of a region to include in regularization, in pixels.

        Raises
        ------
        DcrConfigError
            If ``regularizationFactor`` < 1 or ``regularizationWidth`` is not an integer >= 0.
        DcrShapeError
            If ``newModel`` does not cover ``bbox`` or ``bbox`` is outside the model.

        Notes
        -----
        With ``old`` this model's image of the subfilter and ``f`` the factor, the new value
        may grow to at most ``f * |old|``; where ``old`` is positive it may not fall below
        ``old / f``, and where ``old`` is negative or zero not below ``-f * |old|`` (a relative
        bound on a value near zero or below it is only meaningful in magnitude). Pixels
        outside these limits are clamped to them by `applyImageThresholds`, which leaves
        regions narrower than ``regularizationWidth`` alone.
        """
        index = self._index(subfilter)
        bbox = self._checkRegion(bbox)
        array = _regionArray(newModel, bbox, "newModel")
        factor = _checkFactor(regularizationFactor)
        width = _checkWidth(regularizationWidth)
        old = np.asarray(self._modelImages[index].array[bbox.slices(self.bbox)], dtype=np.float64)
        magnitude = np.abs(old)
        highThreshold = magnitude * factor
        lowThreshold = np.where(old > 0, old / factor, -magnitude * factor)
        self.applyImageThresholds(
            array,
            highThreshold=highThreshold,
            lowThreshold=lowThreshold,
            regularizationWidth=width,
        )

    def regularizeModelFreq(
        self,
        modelImages: Sequence[Image | np.ndarray],
        bbox: Box,
        statsCtrl: StatisticsControl | None,
        regularizationFactor: float,
        regularizationWidth: int = 2,
        mask: Mask | None = None,
        convergenceMaskPlanes: str | Sequence[str] = "DETECTED",
    ) -> None:
        """Restrict large variations in the model between subfilters.

        Parameters
        ----------
        modelImages : list of dcrmodel.image.Image or numpy.ndarray
            The new DCR model images from the current iteration, one per subfilter, covering
            ``bbox``. The values will be modified in place.
        bbox : dcrmodel.image.Box
            Sub-region of the model.
        statsCtrl : dcrmodel.image.StatisticsControl or None
            Statistics control (bad mask planes, clipping) for the noise level.
        regularizationFactor : float
            Maximum relative change of the model allowed between subfilters (>= 1).
        regularizationWidth : int, optional
            Minimum radius of a region to include in regularization, in pixels.
        mask : dcrmodel.image.Mask, optional
            Optional alternate mask; default the model's mask.
        convergenceMaskPlanes : str or list of str, optional
            Mask planes of the sources, excluded from the noise estimate.

        Raises
        ------
        DcrValueError
            If the number of images differs from the model's.
        DcrConfigError
            If ``regularizationFactor`` < 1, ``regularizationWidth`` < 0, or a mask plane is
            unknown.
        DcrShapeError
            If an image or the mask does not cover ``bbox``.

        Notes
        -----
        This implementation of frequency regularization restricts each subfilter image to
        be a smoothly-varying function times a reference image. The reference is the mean of
        the new subfilter images. Where it is above the noise cutoff (`calculateNoiseCutoff`
        of the reference, one sigma, over ``bbox`` less a border of up to 5 pixels), each
        subfilter image is restricted to between ``ref / sqrt(f)`` and ``ref * sqrt(f)``, so
        that any two subfilters differ by at most the factor ``f`` between them, as the
        factor is defined. The limits are applied with `applyImageThresholds`: only regions
        at least ``regularizationWidth`` in radius are clamped, so noise is left alone, while
        the coherent holes and wings that degenerate solutions put beside a source in some
        subfilters (chromatic sidelobes) are flattened. Pixels at or below the noise cutoff
        are not restricted.
        """
        bbox = self._checkRegion(bbox)
        arrays = self._subfilterArrays(modelImages, bbox, "regularizeModelFreq")
        factor = _checkFactor(regularizationFactor)
        width = _checkWidth(regularizationWidth)
        planes = _checkMaskPlanes(convergenceMaskPlanes)
        if len(arrays) == 1:
            return
        reference = np.zeros(bbox.shape, dtype=np.float64)
        for array in arrays:
            reference += array
        reference /= len(arrays)
        buffer = max(0, min(_FREQ_NOISE_BUFFER, (min(bbox.width, bbox.height) - 1) // 4))
        noiseCutoff = self.calculateNoiseCutoff(
            reference,
            statsCtrl,
            bufferSize=buffer,
            convergenceMaskPlanes=planes,
            mask=mask,
            bbox=bbox,
        )
        significant = reference > noiseCutoff
        if not significant.any():
            _log.debug("regularizeModelFreq: no pixel above the noise cutoff %g", noiseCutoff)
            return
        maxRatio = math.sqrt(factor)
        highThreshold = np.where(significant, reference * maxRatio, np.inf)
        lowThreshold = np.where(significant, reference / maxRatio, -np.inf)
        for array in arrays:
            self.applyImageThresholds(
                array,
                highThreshold=highThreshold,
                lowThreshold=lowThreshold,
                regularizationWidth=width,
            )

    @staticmethod
    def applyImageThresholds(
        image: np.ndarray | Image,
        highThreshold: np.ndarray | float | None = None,
        lowThreshold: np.ndarray | float | None = None,
        regularizationWidth: int = 2,
    ) -> None:
        """Restrict image values to be between upper and lower limits.

        This method flags all pixels in an image that are outside of the given threshold
        values. The threshold values are taken from a reference image, so noisy pixels are
        likely to get flagged. In order to exclude those noisy pixels, the array of flags is
        eroded and dilated, which removes isolated pixels outside of the thresholds from the
        list of pixels to be modified. Pixels that remain flagged after this operation have
        their values set to the appropriate upper or lower threshold value.

        Parameters
        ----------
        image : numpy.ndarray or dcrmodel.image.Image
            The image to apply the thresholds to (floating point). The values will be
            modified in place.
        highThreshold : numpy.ndarray or float, optional
            Array of upper limit values for each pixel of image (same units as image).
        lowThreshold : numpy.ndarray or float, optional
            Array of lower limit values for each pixel of image.
        regularizationWidth : int, optional
            Minimum radius of a region to include in regularization, in pixels.

        Raises
        ------
        DcrShapeError
            If a threshold array does not match the image's shape.
        DcrTypeError
            If the image is not a floating-point 2-D array or Image.
        DcrConfigError
            If ``regularizationWidth`` is not an integer >= 0.

        Notes
        -----
        The erosion and dilation use a disk of radius ``regularizationWidth``
        (``scipy.ndimage`` binary morphology): a flagged pixel is kept only if it lies in a
        flagged region that contains a whole disk of that radius, so isolated pixels and
        thin streaks are left as they are. Regions touching the image's edge are judged by
        their part inside the image. A width of 0 clamps every flagged pixel. NaN
        thresholds never flag.

        Examples
        --------
        >>> import numpy as np
        >>> image = np.zeros((9, 9))
        >>> image[0, 0] = 5.0  # an isolated pixel above the threshold
        >>> image[3:, 3:] = 5.0  # a region above the threshold
        >>> DcrModel.applyImageThresholds(image, highThreshold=1.0, regularizationWidth=1)
        >>> float(image[0, 0]), float(image[6, 6])
        (5.0, 1.0)
        """
        array = image.array if isinstance(image, Image) else image
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype.kind != "f":
            raise DcrTypeError(
                "image must be a 2-D floating-point numpy array or Image (it is modified in place)",
                image=type(image).__name__,
                dtype=str(getattr(array, "dtype", None)),
            )
        width = _checkWidth(regularizationWidth)
        high = _thresholdArray(highThreshold, array.shape, "highThreshold")
        low = _thresholdArray(lowThreshold, array.shape, "lowThreshold")
        if high is not None:
            flags = _openFlags(array > high, width)
            array[flags] = high[flags]
        if low is not None:
            flags = _openFlags(array < low, width)
            array[flags] = low[flags]
