"""The arguments of a `dcrmodel.model.core.DcrModel` made from other data.

`DcrModel.fromImage` divides a coadd between the subfilters (`coaddArguments`);
`DcrModel.fromDataRef` and `DcrModel.fromQuantum` load one exposure per subfilter, from a
data reference (`dataRefGetter`, `readSubfilters`: a data butler's ``get`` gets the
subfilter in its data ID) or from dataset handles (`handlesBySubfilter`, checked by
`checkHandleIds`), and take the model's images and metadata from them
(`exposureArguments`, `bandArgument`) after checking that they form one model
(`checkSubfilterExposures`). Each function checks what
it is given and returns what the next step needs; the methods of `DcrModel` document the
arguments and the behaviour in full.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from astropy.wcs import WCS

from ..errors import DcrMetadataError, DcrShapeError, DcrTypeError, DcrValueError
from ..image import Exposure, Filter, Image, Mask, MaskedImage, PhotoCalib, Psf, pixelDigest
from ..physics import wavelengthGenerator
from .checks import (
    CUSTOM_BAND_NAME,
    badPixels,
    checkMaskAndVariance,
    checkMetadata,
    checkModelImages,
    checkNumSubfilters,
    countUnmaskedNonFinite,
    isInteger,
    ownPixels,
    resolveFilter,
    zeroFlaggedNonFinite,
)

__all__ = [
    "modelParts",
    "coaddArguments",
    "exposureArguments",
    "dataRefGetter",
    "readSubfilters",
    "handlesBySubfilter",
    "checkHandleIds",
    "checkSubfilterExposures",
    "bandArgument",
    "RUN_ID_KEY",
    "checkRunIdentities",
    "modelIdentity",
    "oddRunIdentity",
]

#: The header key of a model file that holds the identity of the model it is a subfilter
#: of (`modelIdentity`: 32 hex digits, the same in every subfilter file of one model).
RUN_ID_KEY = "DCR-RUN"


def modelParts(
    modelImages: Any,
    filterInfo: Any,
    psf: Any,
    mask: Any,
    variance: Any,
    photoCalib: Any,
    wcs: Any,
    effectiveWavelength: Any = None,
    bandwidth: Any = None,
) -> tuple[list[Image], Image | None, Filter | None]:
    """Check the arguments of `DcrModel` and return its images, variance and band.

    Parameters
    ----------
    modelImages, filterInfo, psf, mask, variance, photoCalib, wcs
        As `DcrModel`.
    effectiveWavelength, bandwidth
        As `DcrModel` (nm): the band in place of ``filterInfo`` (`resolveFilter`).

    Returns
    -------
    images : list of dcrmodel.image.Image
        The subfilter images (arrays placed on a box).
    variance : dcrmodel.image.Image or None
        The variance.
    filterInfo : dcrmodel.image.Filter or None
        The band.

    Raises
    ------
    DcrValueError, DcrShapeError, DcrTypeError, DcrMetadataError
        As `DcrModel`.

    Notes
    -----
    The checks run in this order: images, mask and variance, band, metadata; then the
    non-finite values in pixels a bad plane flags are set to 0 in place. An image (or the
    variance) whose pixels are those of an earlier subfilter is copied (`ownPixels`).
    """
    images = checkModelImages(modelImages)
    images = [ownPixels(image, images[:k]) for k, image in enumerate(images)]
    variance = checkMaskAndVariance(mask, variance, images[0].bbox)
    if variance is not None:
        variance = ownPixels(variance, images)
    band = resolveFilter(filterInfo, effectiveWavelength, bandwidth)
    checkMetadata(psf, photoCalib, wcs)
    zeroFlaggedNonFinite(images, variance, mask)
    return images, variance, band


def _divideCoadd(
    maskedImage: MaskedImage, n: int
) -> tuple[list[Image], Mask | None, Image | None]:
    """Divide a coadd between ``n`` subfilters: (images, mask, variance) of the model."""
    image = maskedImage.image
    mask = maskedImage.mask
    variance = maskedImage.variance
    bad = badPixels(mask, image.array.shape)
    nonFiniteImage, unmaskedImage = countUnmaskedNonFinite(image.array, bad)
    nonFiniteVar, unmaskedVar = (None, 0)
    if variance is not None:
        nonFiniteVar, unmaskedVar = countUnmaskedNonFinite(variance.array, bad)
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
    return modelImages, modelMask, modelVariance


def coaddArguments(
    maskedImage: MaskedImage | Exposure,
    dcrNumSubfilters: int,
    filterInfo: Filter | str | None = None,
    psf: Psf | None = None,
    photoCalib: PhotoCalib | None = None,
    wcs: WCS | None = None,
    effectiveWavelength: float | None = None,
    bandwidth: float | None = None,
) -> dict[str, Any]:
    """Return the arguments of a model that divides a coadd between the subfilters.

    Parameters
    ----------
    maskedImage, dcrNumSubfilters, filterInfo, psf, photoCalib, wcs
        As `DcrModel.fromImage`.
    effectiveWavelength, bandwidth
        As `DcrModel.fromImage` (nm); the band made from them (`resolveFilter`) takes the
        name of an Exposure's filter if it has one.

    Returns
    -------
    arguments : dict
        The keyword arguments of `DcrModel`: each subfilter image is ``image /
        dcrNumSubfilters``, the mask a copy of the coadd's, the variance ``variance /
        dcrNumSubfilters``.

    Raises
    ------
    DcrValueError, DcrTypeError
        As `DcrModel.fromImage`.
    """
    exposureFilter = None
    if isinstance(maskedImage, Exposure):
        exposure = maskedImage
        maskedImage = exposure.maskedImage
        exposureFilter = exposure.filter
        psf = psf if psf is not None else exposure.psf
        photoCalib = photoCalib if photoCalib is not None else exposure.photoCalib
        wcs = wcs if wcs is not None else exposure.wcs
    if not isinstance(maskedImage, MaskedImage):
        raise DcrTypeError(
            "maskedImage must be a dcrmodel.image.MaskedImage or Exposure",
            maskedImage=type(maskedImage).__name__,
        )
    n = checkNumSubfilters(dcrNumSubfilters, "dcrNumSubfilters")
    modelImages, modelMask, modelVariance = _divideCoadd(maskedImage, n)
    if effectiveWavelength is not None or bandwidth is not None:
        bandName = exposureFilter.bandName if exposureFilter is not None else CUSTOM_BAND_NAME
        filterInfo = resolveFilter(filterInfo, effectiveWavelength, bandwidth, bandName)
    elif filterInfo is None:
        filterInfo = exposureFilter
    return {
        "modelImages": modelImages,
        "filterInfo": filterInfo,
        "psf": psf,
        "mask": modelMask,
        "variance": modelVariance,
        "photoCalib": photoCalib,
        "wcs": wcs,
    }


def exposureArguments(exposures: Sequence[Exposure], source: str) -> dict[str, Any]:
    """Return the arguments of a model of one Exposure per subfilter (subfilter 0 first).

    Parameters
    ----------
    exposures : list of dcrmodel.image.Exposure
        The subfilter exposures.
    source : str
        What returned them (for example ``"handle.get()"``), used in the messages.

    Returns
    -------
    arguments : dict
        The keyword arguments of `DcrModel`: the exposures' images; the first filter, PSF,
        photometric calibration and WCS they carry; the mask and variance of subfilter 0.

    Raises
    ------
    DcrTypeError
        If one is not an Exposure.
    DcrShapeError
        If they do not share one box.
    DcrMetadataError
        If two are in different filters.
    """
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

    return {
        "modelImages": [exposure.image for exposure in exposures],
        "filterInfo": firstSet("filter"),
        "psf": firstSet("psf"),
        "mask": first.mask,
        "variance": first.variance,
        "photoCalib": firstSet("photoCalib"),
        "wcs": firstSet("wcs"),
    }


def dataRefGetter(
    dataRef: Any, datasetType: Any, numSubfilters: Any
) -> tuple[Callable[..., Any], int]:
    """Return the ``get`` method of a data reference and the number of subfilters.

    Parameters
    ----------
    dataRef, datasetType, numSubfilters
        As `DcrModel.fromDataRef`.

    Returns
    -------
    get : callable
        ``dataRef.get``.
    numSubfilters : int
        ``numSubfilters``, or the data reference's own.

    Raises
    ------
    DcrTypeError, DcrValueError
        As `DcrModel.fromDataRef`.
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
    n = checkNumSubfilters(numSubfilters, "numSubfilters")
    if not isinstance(datasetType, str):
        raise DcrTypeError(
            "datasetType must be a string such as 'dcrCoadd'", datasetType=datasetType
        )
    return get, n


def handlesBySubfilter(availableCoaddRefs: Mapping[Any, Any] | Iterable[Any]) -> list[Any]:
    """Return the dataset handles in the order of their subfilter index.

    Parameters
    ----------
    availableCoaddRefs : dict or iterable of handles
        As `DcrModel.fromQuantum`.

    Returns
    -------
    handles : list
        The handles of subfilters 0 .. N-1 (none of them read).

    Raises
    ------
    DcrValueError, DcrTypeError
        As `DcrModel.fromQuantum`.
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
        if not isInteger(subfilter):
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
    return [bySubfilter[k] for k in range(n)]


def _takesDataId(get: Callable[..., Any]) -> bool:
    """Return True for a data butler's ``get(datasetType, dataId=..., **dataIdKeys)``.

    Such a ``get`` takes the data ID (with ``subfilter``) and has no ``numSubfilters``
    keyword: it would take one for a dimension and refuse it. The older data-reference
    protocol (``get(datasetType, subfilter=k, numSubfilters=N, **kwargs)``) is kept for
    everything else.
    """
    try:
        parameters = inspect.signature(get).parameters
    except (TypeError, ValueError):
        return False
    return "dataId" in parameters and "numSubfilters" not in parameters


def readSubfilters(
    get: Callable[..., Any], datasetType: str, numSubfilters: int, kwargs: dict[str, Any]
) -> tuple[list[Any], bool]:
    """Read the subfilters ``0 .. numSubfilters - 1`` through a data reference's ``get``.

    Parameters
    ----------
    get : callable
        What `dataRefGetter` returned.
    datasetType : str
        The model's dataset type.
    numSubfilters : int
        Number of subfilters.
    kwargs : dict
        The further keyword arguments of `DcrModel.fromDataRef`.

    Returns
    -------
    exposures : list
        What ``get`` returned for each subfilter.
    butler : bool
        True when ``get`` is a data butler's: each call was ``get(datasetType,
        subfilter=k, **kwargs)`` with ``bbox`` moved into ``parameters``. Otherwise each
        call was ``get(datasetType, subfilter=k, numSubfilters=N, **kwargs)``.
    """
    if not _takesDataId(get):
        return [
            get(datasetType, subfilter=k, numSubfilters=numSubfilters, **kwargs)
            for k in range(numSubfilters)
        ], False
    options = dict(kwargs)
    bbox = options.pop("bbox", None)
    if bbox is not None:
        options["parameters"] = {**(options.get("parameters") or {}), "bbox": bbox}
    return [get(datasetType, subfilter=k, **options) for k in range(numSubfilters)], True


def checkHandleIds(handles: Sequence[Any], numSubfilters: Any = None) -> None:
    """Check that the handles of `handlesBySubfilter` can be one model (before any read).

    Parameters
    ----------
    handles : sequence of handles
        The handles of subfilters 0 .. N-1, in order.
    numSubfilters : int, optional
        The number of subfilters the caller expects.

    Raises
    ------
    DcrValueError
        If there are not ``numSubfilters`` handles, or their data IDs name different
        bands, tracts, patches or skymaps.
    """
    n = len(handles)
    if numSubfilters is not None and checkNumSubfilters(numSubfilters, "numSubfilters") != n:
        raise DcrValueError(
            f"numSubfilters={numSubfilters} but the handles hold subfilters 0 .. {n - 1}; "
            "give the handles of every subfilter of one model",
            numSubfilters=numSubfilters,
            handles=n,
        )
    for key in ("band", "skymap", "tract", "patch"):
        values = []
        for handle in handles:
            try:
                values.append(handle.dataId[key])
            except (KeyError, LookupError, TypeError):
                continue
        if len(set(values)) > 1:
            raise DcrValueError(
                f"the handles name {len(set(values))} different {key} values "
                f"({', '.join(sorted(map(str, set(values))))}); a model holds one band of "
                "one patch",
                key=key,
            )


def _nearly(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def checkSubfilterExposures(
    exposures: Sequence[Exposure], band: Filter | None, source: str
) -> None:
    """Check that subfilter exposures form one model, from their DCR keys.

    A subfilter file written by `dcrmodel.fits.writeDcrModel` (or the butler formatter of
    ``dcrCoadd``) carries ``DCR-SUBF`` (its index), ``DCR-NSUB`` (the number of
    subfilters) and ``DCR-WMIN``/``DCR-WMAX`` (its wavelength range) in its metadata;
    keys that are absent are not checked.

    Parameters
    ----------
    exposures : sequence of dcrmodel.image.Exposure
        Subfilters 0 .. N-1, in order.
    band : dcrmodel.image.Filter or None
        The band of the exposures; the wavelength ranges are checked against its
        subfilters.
    source : str
        Where the exposures came from, for the messages.

    Raises
    ------
    DcrMetadataError
        If the exposures' run identities (``DCR-RUN``, `oddRunIdentity`) differ, or an
        exposure's ``DCR-NSUB`` is not N, its ``DCR-SUBF`` is not its position, or
        its wavelength range is not its subfilter's of the band: the exposures come from
        different models (for example from two runs of a collection chain).
    """
    n = len(exposures)
    ranges = None
    if band is not None:
        ranges = list(wavelengthGenerator(band.effectiveWavelength, band.bandwidth, n))
    for k, exposure in enumerate(exposures):
        metadata = exposure.metadata
        stored = metadata.get("DCR-NSUB")
        if stored is not None and int(stored) != n:
            counts = [e.metadata.get("DCR-NSUB") for e in exposures]
            raise DcrMetadataError(
                f"{source} of subfilter {k} belongs to a {stored}-subfilter model but "
                f"{n} subfilters were given (DCR-NSUB of subfilters 0 .. {n - 1}: "
                f"{', '.join(map(str, counts))}); they do not form one model: take every "
                "subfilter from one run",
                subfilter=k,
            )
        index = metadata.get("DCR-SUBF")
        if index is not None and int(index) != k:
            raise DcrMetadataError(
                f"{source} of subfilter {k} holds subfilter {index} (DCR-SUBF); they do "
                "not form one model",
                subfilter=k,
            )
        if ranges is None:
            continue
        for key, expected in zip(("DCR-WMIN", "DCR-WMAX"), ranges[k], strict=True):
            value = metadata.get(key)
            if isinstance(value, int | float) and math.isfinite(value) and not _nearly(
                float(value), expected
            ):
                raise DcrMetadataError(
                    f"{source} of subfilter {k} has {key} = {value} nm but subfilter {k} of "
                    f"{n} of band {band.bandName} ({band.effectiveWavelength} nm, "
                    f"{band.bandwidth} nm wide) has {expected} nm; they do not form one model",
                    subfilter=k,
                    key=key,
                )
    checkRunIdentities(exposures, source)


def checkRunIdentities(exposures: Sequence[Exposure], source: str) -> None:
    """Refuse subfilter exposures whose model identities (``DCR-RUN``) differ.

    Raises
    ------
    DcrMetadataError
        Naming the odd subfilter (`oddRunIdentity`).
    """
    odd = oddRunIdentity([exposure.metadata.get(RUN_ID_KEY) for exposure in exposures])
    if odd is not None:
        raise DcrMetadataError(
            f"{source} of subfilter {odd[0]} {odd[1]}; they do not form one model: take "
            "every subfilter from one run", subfilter=odd[0], key=RUN_ID_KEY,
        )


def modelIdentity(model: Any) -> str:
    """Return the identity of a model that every one of its subfilter files carries.

    A digest (BLAKE2b, 32 hex digits) of the model's box, band, subfilter images, mask
    and variance (`dcrmodel.image.pixelDigest`): two runs give one identity only when
    they give the same model, so a subfilter file of another run (another model of the
    same band and box) is told apart, and writing the same model twice gives the same
    files, byte for byte.

    Parameters
    ----------
    model : `dcrmodel.model.DcrModel`
        The model.

    Returns
    -------
    str
        The identity.
    """
    digest = hashlib.blake2b(digest_size=16)
    band = model.filter
    digest.update(repr((model.bbox, len(model.modelImages), None if band is None else (
        band.bandName, band.effectiveWavelength, band.bandwidth))).encode())
    planes = [image.array for image in model.modelImages]
    planes += [plane.array for plane in (model.mask, model.variance) if plane is not None]
    for array in planes:
        digest.update(pixelDigest(array).encode())
    return digest.hexdigest()


def oddRunIdentity(identities: Sequence[Any]) -> tuple[int, str] | None:
    """Find the subfilter whose run identity (``DCR-RUN``) is not the model's.

    Every subfilter file of one model carries the identity of the run that wrote it.
    Files written before identities existed carry none: a model none of whose files has
    one is accepted, a mix of files with and without one is not.

    Parameters
    ----------
    identities : sequence of str or None
        The identity of each subfilter, 0 .. N-1 (None: the file has none).

    Returns
    -------
    tuple of (int, str) or None
        The odd subfilter (the first that differs from the identity most subfilters
        carry, subfilter 0's on a tie) and what is wrong with it; None if all agree.
    """
    values = [None if value is None else str(value) for value in identities]
    if len(set(values)) <= 1:
        return None
    counts = {value: values.count(value) for value in values}
    usual = max(counts, key=lambda value: (counts[value], value == values[0]))
    k = next(i for i, value in enumerate(values) if value != usual)
    if values[k] is None:
        return k, f"has no run identity ({RUN_ID_KEY}) but the others have {usual}"
    if usual is None:
        return k, f"has the run identity {values[k]} ({RUN_ID_KEY}) but the others have none"
    return k, f"was written by run {values[k]} ({RUN_ID_KEY}) but the others by run {usual}"


def bandArgument(
    filterInfo: Filter | None, effectiveWavelength: Any, bandwidth: Any
) -> Filter | None:
    """Return the model's band: the exposures', or one of the given wavelengths (nm).

    Parameters
    ----------
    filterInfo : dcrmodel.image.Filter or None
        The exposures' band.
    effectiveWavelength, bandwidth : float or None
        The band's effective wavelength and width in nm (the arguments of the reference's
        ``fromQuantum``); both or neither.

    Returns
    -------
    filterInfo : dcrmodel.image.Filter or None
        ``filterInfo`` when no wavelengths are given, else a band of that name (or
        ``"unknown"``) with the given wavelengths.

    Raises
    ------
    DcrValueError
        If only one of the wavelengths is given, or they are not a valid band.
    """
    if effectiveWavelength is None and bandwidth is None:
        return filterInfo
    if effectiveWavelength is None or bandwidth is None:
        raise DcrValueError(
            "give effectiveWavelength and bandwidth together (nm), or neither",
            effectiveWavelength=effectiveWavelength,
            bandwidth=bandwidth,
        )
    name = filterInfo.bandName if filterInfo is not None else "unknown"
    return Filter(name, effectiveWavelength, bandwidth)
