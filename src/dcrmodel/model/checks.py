"""Checks of the arguments of `dcrmodel.model.core.DcrModel`, shared by the modules of the model.

The container (`dcrmodel.model.core`), its constructors (`dcrmodel.model.construction`), the
template machinery (`dcrmodel.model.templates`) and the conditioning
(`dcrmodel.model.conditioning`) validate their subfilter counts, indices, boxes, numbers,
filters and images with these functions, so that each argument is refused with the same
error wherever it is given. The phases of `DcrModel`'s own checks are here too: its subfilter
images, mask, variance and metadata, and the non-finite pixels that a bad plane flags. None
of these is handed on by ``dcrmodel.model``.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
from astropy.wcs import WCS

from ..errors import DcrMetadataError, DcrShapeError, DcrTypeError, DcrValueError
from ..image import (
    Box,
    Exposure,
    Filter,
    Image,
    Mask,
    PhotoCalib,
    Psf,
    StatisticsControl,
    checkSameBand,
)

__all__ = [
    "isInteger",
    "checkNumSubfilters",
    "subfilterIndex",
    "checkBox",
    "checkRegion",
    "checkFiniteNumber",
    "checkFilter",
    "resolveFilter",
    "CUSTOM_BAND_NAME",
    "requireFilter",
    "badPixels",
    "countUnmaskedNonFinite",
    "asImage",
    "checkModelImages",
    "checkMaskAndVariance",
    "checkMetadata",
    "zeroFlaggedNonFinite",
    "checkNewImage",
    "ownPixels",
    "assignedRegion",
    "checkExposureBand",
]

_log = logging.getLogger(__name__)

#: Band name of the `Filter` of a model given by its wavelengths alone (`resolveFilter`).
CUSTOM_BAND_NAME = "custom"


def isInteger(value: Any) -> bool:
    """Return whether ``value`` is an integer and not a `bool`."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def checkNumSubfilters(value: Any, name: str) -> int:
    """Return ``value`` as an int >= 1, or raise.

    Parameters
    ----------
    value : object
        The number of subfilters to check.
    name : str
        The argument's name, used in the message.

    Returns
    -------
    numSubfilters : int
        ``value`` as an int.

    Raises
    ------
    DcrTypeError
        If ``value`` is not an integer.
    DcrValueError
        If it is less than 1.
    """
    if not isInteger(value):
        raise DcrTypeError(
            f"{name} must be an integer number of subfilters (1 or more)", **{name: value}
        )
    if value < 1:
        raise DcrValueError(
            f"{name} must be at least 1: a DCR model needs one image per subfilter",
            **{name: value},
        )
    return int(value)


def subfilterIndex(subfilter: Any, n: int) -> int:
    """Return the index (0 .. n-1) of a subfilter given as ``-n .. n-1``, or raise.

    Parameters
    ----------
    subfilter : object
        The index to check; negative indices count from the end.
    n : int
        The number of subfilters.

    Returns
    -------
    index : int
        The index, 0 .. n-1.

    Raises
    ------
    DcrTypeError
        If ``subfilter`` is not an integer.
    IndexError
        If it is out of range.
    """
    if not isInteger(subfilter):
        raise DcrTypeError("a subfilter index must be an integer", subfilter=subfilter)
    if not -n <= subfilter < n:
        raise IndexError(
            f"subfilter index {subfilter} is out of range for a model of {n} subfilters "
            f"(valid: {-n} .. {n - 1})"
        )
    return int(subfilter) % n


def checkBox(bbox: Any, name: str) -> Box:
    """Return ``bbox`` if it is a non-empty `Box`, or raise.

    Parameters
    ----------
    bbox : object
        The box to check (parent pixels).
    name : str
        The argument's name, used in the message.

    Returns
    -------
    bbox : dcrmodel.image.Box
        ``bbox`` itself.

    Raises
    ------
    DcrTypeError
        If ``bbox`` is not a `Box`.
    DcrValueError
        If it is empty.
    """
    if not isinstance(bbox, Box):
        raise DcrTypeError(f"{name} must be a dcrmodel.image.Box", **{name: type(bbox).__name__})
    if bbox.isEmpty():
        raise DcrValueError(
            f"{name} is empty: give a region with at least one pixel", **{name: bbox}
        )
    return bbox


def checkRegion(bbox: Any, modelBBox: Box, name: str = "bbox") -> Box:
    """Validate that ``bbox`` is a non-empty Box inside the model's box.

    Parameters
    ----------
    bbox : object
        The region to check (parent pixels).
    modelBBox : dcrmodel.image.Box
        The model's box (parent pixels).
    name : str, optional
        The argument's name, used in the message.

    Returns
    -------
    bbox : dcrmodel.image.Box
        ``bbox`` itself.

    Raises
    ------
    DcrTypeError, DcrValueError
        As `checkBox`.
    DcrShapeError
        If ``bbox`` is not inside ``modelBBox``.
    """
    bbox = checkBox(bbox, name)
    if not modelBBox.contains(bbox):
        raise DcrShapeError(
            f"{name} {bbox} is not inside the model's box {modelBBox}; use a region of the "
            "model (for an exposure, cut it to the model: exposure[model.bbox])",
            **{name: bbox},
            modelBBox=modelBBox,
        )
    return bbox


def checkFiniteNumber(
    value: Any, name: str, minimum: float | None = None, strict: bool = False
) -> float:
    """Return ``value`` as a finite float (optionally >= or > ``minimum``), or raise.

    Parameters
    ----------
    value : object
        The number to check.
    name : str
        The argument's name, used in the message.
    minimum : float, optional
        The smallest value allowed (None: no limit).
    strict : bool, optional
        True: ``value`` must be greater than ``minimum``; False: at least ``minimum``.

    Returns
    -------
    number : float
        ``value`` as a float.

    Raises
    ------
    DcrTypeError
        If ``value`` is not a real number (a `bool` is not one).
    DcrValueError
        If it is not finite or below ``minimum``.
    """
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


def checkFilter(filterInfo: Any) -> Filter | None:
    """Return the band of a model: a `Filter`, the Rubin band of a name, or None.

    Parameters
    ----------
    filterInfo : dcrmodel.image.Filter, str or None
        The band (effective wavelength and bandwidth in nm), or the name of a Rubin band.

    Returns
    -------
    filterInfo : dcrmodel.image.Filter or None
        The band.

    Raises
    ------
    DcrTypeError
        If ``filterInfo`` is none of these.
    """
    if filterInfo is None or isinstance(filterInfo, Filter):
        return filterInfo
    if isinstance(filterInfo, str):
        return Filter.fromBand(filterInfo)
    raise DcrTypeError(
        "filterInfo must be a dcrmodel.image.Filter, a Rubin band name, or None",
        filterInfo=type(filterInfo).__name__,
    )


def resolveFilter(
    filterInfo: Any,
    effectiveWavelength: Any = None,
    bandwidth: Any = None,
    bandName: str = CUSTOM_BAND_NAME,
) -> Filter | None:
    """Return the band of a model, given as ``filterInfo`` or as its two wavelengths.

    The seed's constructors take the band as ``filterInfo``; the reference pipelines' current
    ones take ``effectiveWavelength`` and ``bandwidth`` instead. Either way gives the same
    `Filter`.

    Parameters
    ----------
    filterInfo : dcrmodel.image.Filter, str or None
        The band, or the name of a Rubin band (`checkFilter`).
    effectiveWavelength : float, optional
        Effective wavelength of the band, in nm.
    bandwidth : float, optional
        Full width of the band, in nm.
    bandName : str, optional
        Name of the band made from the two wavelengths (default `CUSTOM_BAND_NAME`).

    Returns
    -------
    filterInfo : dcrmodel.image.Filter or None
        ``checkFilter(filterInfo)`` without wavelengths; else
        ``Filter(bandName, effectiveWavelength, bandwidth)``.

    Raises
    ------
    DcrValueError
        If ``filterInfo`` is given together with ``effectiveWavelength`` or ``bandwidth``
        (the message names both), or a wavelength is not positive and finite, or the band
        would reach zero wavelength.
    DcrMetadataError
        If only one of ``effectiveWavelength`` and ``bandwidth`` is given.
    DcrTypeError
        If ``filterInfo`` is not a Filter, a band name or None, or a wavelength is not a
        number.

    Examples
    --------
    >>> resolveFilter(None, effectiveWavelength=480.0, bandwidth=150.0)
    Filter(bandName='custom', effectiveWavelength=480.0, bandwidth=150.0)
    """
    given = {
        name: value
        for name, value in (("effectiveWavelength", effectiveWavelength), ("bandwidth", bandwidth))
        if value is not None
    }
    if not given:
        return checkFilter(filterInfo)
    if filterInfo is not None:
        names = " and ".join(given)
        raise DcrValueError(
            f"both filterInfo and {names} were given; give the band either as filterInfo "
            "or as effectiveWavelength and bandwidth (nm), not both",
            filterInfo=filterInfo,
            **given,
        )
    if len(given) == 1:
        (name,) = given
        missing = "bandwidth" if name == "effectiveWavelength" else "effectiveWavelength"
        raise DcrMetadataError(
            f"{name} was given without {missing}; give both effectiveWavelength and "
            "bandwidth (nm), or filterInfo",
            **given,
        )
    return Filter(bandName, effectiveWavelength, bandwidth)


def requireFilter(filterInfo: Filter | None, what: str) -> Filter:
    """Return the model's band, or raise if it has none.

    Parameters
    ----------
    filterInfo : dcrmodel.image.Filter or None
        The model's band.
    what : str
        What needs the band (for example "bandwidth"), used in the message.

    Returns
    -------
    filterInfo : dcrmodel.image.Filter
        The band.

    Raises
    ------
    DcrMetadataError
        If ``filterInfo`` is None.
    """
    if filterInfo is None:
        raise DcrMetadataError(
            f"the model has no filter, so its {what} is unknown; give the model a filter "
            "(filterInfo=Filter(bandName, effectiveWavelength, bandwidth) or a band name, or "
            "effectiveWavelength and bandwidth in nm)",
            filter=None,
        )
    return filterInfo


def badPixels(
    mask: Mask | None, shape: tuple[int, int], statsCtrl: StatisticsControl | None = None
) -> np.ndarray:
    """Boolean array of the pixels flagged in one of the bad mask planes.

    Parameters
    ----------
    mask : dcrmodel.image.Mask or None
        The mask (None: no pixel is bad).
    shape : tuple of int
        Shape (height, width) of the result when there is no mask.
    statsCtrl : dcrmodel.image.StatisticsControl, optional
        Which mask planes are bad (None: the defaults).

    Returns
    -------
    bad : numpy.ndarray
        True where a bad plane is set.
    """
    if mask is None:
        return np.zeros(shape, dtype=bool)
    ctrl = statsCtrl if statsCtrl is not None else StatisticsControl()
    bits = ctrl.getAndMask(mask)
    return (mask.array & bits) != 0


def countUnmaskedNonFinite(array: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, int]:
    """Return (non-finite pixels, how many of them are not flagged bad).

    Parameters
    ----------
    array : numpy.ndarray
        The pixels.
    bad : numpy.ndarray
        The bad pixels (`badPixels`), same shape.

    Returns
    -------
    nonFinite : numpy.ndarray
        True where ``array`` is NaN or infinite.
    unmasked : int
        How many of those are not bad.
    """
    nonFinite = ~np.isfinite(array)
    return nonFinite, int(np.count_nonzero(nonFinite & ~bad))


def asImage(value: Any, bbox: Box | None, name: str) -> Image:
    """Return ``value`` as an Image; an ndarray is placed at ``bbox`` (or the origin).

    Parameters
    ----------
    value : dcrmodel.image.Image or numpy.ndarray
        The image, kept as it is, or a 2-D array.
    bbox : dcrmodel.image.Box or None
        Where an array goes (parent pixels); it must have the box's shape. None: at the
        origin ``(0, 0)``.
    name : str
        The argument's name, used in the message.

    Returns
    -------
    image : dcrmodel.image.Image
        ``value`` itself, or an Image around the array (not a copy).

    Raises
    ------
    DcrShapeError
        If an array does not have the shape of ``bbox``.
    DcrTypeError
        If ``value`` is neither an Image nor an array.
    """
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


# ----------------------------------------------------------------------------------------
# The phases of DcrModel's construction
# ----------------------------------------------------------------------------------------


def checkModelImages(modelImages: Any) -> list[Image]:
    """Return the subfilter images as a list of Images that share one box.

    Parameters
    ----------
    modelImages : list of dcrmodel.image.Image or numpy.ndarray
        One image per subfilter; arrays are placed on the box of the first image (at the
        origin if the first is an array too).

    Returns
    -------
    images : list of dcrmodel.image.Image
        The images (not copies).

    Raises
    ------
    DcrTypeError, DcrValueError, DcrShapeError
        As `DcrModel`: not a list, empty, or boxes that differ.
    """
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
    images = [asImage(img, firstBBox, f"modelImages[{k}]") for k, img in enumerate(images)]
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
    return images


def checkMaskAndVariance(mask: Any, variance: Any, bbox: Box) -> Image | None:
    """Check that the mask and the variance cover ``bbox``; return the variance as an Image.

    Parameters
    ----------
    mask : dcrmodel.image.Mask or None
        The model's mask.
    variance : dcrmodel.image.Image, numpy.ndarray or None
        The model's variance (counts²).
    bbox : dcrmodel.image.Box
        The box of the subfilter images.

    Returns
    -------
    variance : dcrmodel.image.Image or None
        The variance, as an Image.

    Raises
    ------
    DcrTypeError, DcrShapeError
        If the mask is not a `Mask`, or either does not cover exactly ``bbox``.
    """
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
        variance = asImage(variance, bbox, "variance")
        if variance.bbox != bbox:
            raise DcrShapeError(
                f"the variance covers {variance.bbox} but the subfilter images cover {bbox}; "
                "give a variance of the model's box",
                varianceBBox=variance.bbox,
                bbox=bbox,
            )
    return variance


def checkMetadata(psf: Any, photoCalib: Any, wcs: Any) -> None:
    """Check the types of a model's PSF, photometric calibration and WCS.

    Parameters
    ----------
    psf, photoCalib, wcs : object
        The model's `Psf`, `PhotoCalib` and ``astropy.wcs.WCS``, each or None.

    Raises
    ------
    DcrTypeError
        If one has another type.
    """
    if psf is not None and not isinstance(psf, Psf):
        raise DcrTypeError("psf must be a dcrmodel.image.Psf (or None)", psf=type(psf).__name__)
    if photoCalib is not None and not isinstance(photoCalib, PhotoCalib):
        raise DcrTypeError(
            "photoCalib must be a dcrmodel.image.PhotoCalib (or None)",
            photoCalib=type(photoCalib).__name__,
        )
    if wcs is not None and not isinstance(wcs, WCS):
        raise DcrTypeError("wcs must be an astropy.wcs.WCS (or None)", wcs=type(wcs).__name__)


def zeroFlaggedNonFinite(images: list[Image], variance: Image | None, mask: Mask | None) -> None:
    """Set to 0, in place, the non-finite pixels that a bad plane flags; refuse any other.

    Parameters
    ----------
    images : list of dcrmodel.image.Image
        The subfilter images.
    variance : dcrmodel.image.Image or None
        Their variance.
    mask : dcrmodel.image.Mask or None
        Their mask (`StatisticsControl` default bad planes).

    Raises
    ------
    DcrValueError
        If an image or the variance holds NaN or infinite values that no bad plane flags
        (nothing is changed then).
    """
    bad = badPixels(mask, images[0].bbox.shape)
    fixes = []
    for k, img in enumerate(images):
        nonFinite, unmasked = countUnmaskedNonFinite(img.array, bad)
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
        nonFinite, unmasked = countUnmaskedNonFinite(variance.array, bad)
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


def checkNewImage(maskedImage: Any, bbox: Box, mask: Mask | None, subfilter: Any) -> Image:
    """Return the new image of a subfilter, its flagged non-finite pixels set to 0.

    Parameters
    ----------
    maskedImage : dcrmodel.image.Image or numpy.ndarray
        The new image (an array must have the shape of ``bbox``).
    bbox : dcrmodel.image.Box
        The model's box.
    mask : dcrmodel.image.Mask or None
        The model's mask.
    subfilter : int
        The subfilter's index, used in the message.

    Returns
    -------
    image : dcrmodel.image.Image
        The image (not a copy).

    Raises
    ------
    DcrShapeError
        If the image's box (or the array's shape) differs from ``bbox``.
    DcrValueError
        If it holds NaN or infinite values in pixels no bad mask plane flags.
    """
    image = asImage(maskedImage, bbox, "the new subfilter image")
    if image.bbox != bbox:
        raise DcrShapeError(
            f"the new image covers {image.bbox} but the model covers {bbox}",
            bbox=image.bbox,
            expected=bbox,
        )
    bad = badPixels(mask, bbox.shape)
    nonFinite, unmasked = countUnmaskedNonFinite(image.array, bad)
    if unmasked:
        raise DcrValueError(
            f"the new image holds {unmasked} NaN or infinite pixels that no bad mask "
            "plane flags",
            subfilter=subfilter,
            count=unmasked,
        )
    if nonFinite.any():
        image.array[nonFinite] = 0.0
    return image


def ownPixels(image: Image, others: Iterable[Image | None]) -> Image:
    """Return ``image``, or a copy of it if its pixels are those of one of ``others``.

    A model keeps the images it is given, but each subfilter (and the variance) must own
    its pixels: given the same image or array twice (``DcrModel([a] * 3)``), a change to
    one subfilter, by the conditioning methods, `DcrModel.assign` or ``model[k].array``,
    would change the others too.

    Parameters
    ----------
    image : dcrmodel.image.Image
        The image to be kept.
    others : iterable of dcrmodel.image.Image or None
        The images already kept (None entries are skipped).

    Returns
    -------
    image : dcrmodel.image.Image
        ``image`` itself, or a copy of it if its array overlaps one of theirs.
    """
    for other in others:
        if other is not None and np.may_share_memory(image.array, other.array) and (
            np.shares_memory(image.array, other.array)
        ):
            return image.clone()
    return image


def assignedRegion(
    newSubfilters: int, subfilters: int, bbox: Any, modelBBox: Box, subModelBBox: Box
) -> Box:
    """Return the region of a model that `DcrModel.assign` overwrites with a sub-model.

    Parameters
    ----------
    newSubfilters : int
        Number of subfilters of the sub-model.
    subfilters : int
        Number of subfilters of the model.
    bbox : dcrmodel.image.Box or None
        The region to assign (parent pixels); None: the sub-model's box.
    modelBBox, subModelBBox : dcrmodel.image.Box
        The boxes of the model and the sub-model.

    Returns
    -------
    region : dcrmodel.image.Box
        The overlap of ``bbox`` and both boxes.

    Raises
    ------
    DcrValueError
        If the numbers of subfilters differ.
    DcrShapeError
        If the overlap is empty.
    """
    if newSubfilters != subfilters:
        raise DcrValueError(
            f"the new model has {newSubfilters} subfilters but this model has "
            f"{subfilters}; both must have the same number",
            newSubfilters=newSubfilters,
            subfilters=subfilters,
        )
    bbox = subModelBBox if bbox is None else checkBox(bbox, "bbox")
    region = bbox.intersection(modelBBox).intersection(subModelBBox)
    if region.isEmpty():
        raise DcrShapeError(
            f"nothing to assign: {bbox}, the model's box {modelBBox} and the sub-model's "
            f"box {subModelBBox} have no pixel in common",
            bbox=bbox,
        )
    return region


def checkExposureBand(modelFilter: Filter | None, exposure: Any, method: str) -> None:
    """Refuse an exposure of another band than the model's, before any work.

    A template of the g model for an r exposure would be labelled g and subtract the
    wrong sky. An exposure or model without a filter (or of no known band,
    `dcrmodel.image.bandKey`) is not refused.

    Parameters
    ----------
    modelFilter : `Filter` or None
        The model's band.
    exposure : object
        The exposure (anything but an `Exposure` is left to the caller's checks).
    method : str
        The function called, for the message.

    Raises
    ------
    DcrValueError
        Naming both bands.
    """
    if isinstance(exposure, Exposure):
        checkSameBand(exposure.filter, modelFilter, f"{method}: the exposure", "the DCR model",
                      "give an exposure of the model's band, or the model of the exposure's")
