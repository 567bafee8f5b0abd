"""The conditioning of a DCR model between the iterations of its assembly (DMTN-037).

The iterative forward-modelling assembly of a `dcrmodel.model.core.DcrModel` conditions each
new solution against the model of the previous iteration: it averages the two iterations'
solutions with a gain (`conditionDcrModel`), limits the change of a subfilter between
iterations (`regularizeModelIter`) and between subfilters (`regularizeModelFreq`), both
through `applyImageThresholds`, which ignores isolated noisy pixels by a binary opening
(erosion then dilation) of the flagged pixels, and measures the noise level that decides
which pixels are significant (`calculateNoiseCutoff`).

These are the implementations of the `DcrModel` methods of the same names, which document
the arguments and the behaviour in full; the functions take the model as their first
argument.

References
----------
I. Sullivan, DMTN-037, "DCR-matched template generation", https://dmtn-037.lsst.io
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from ..errors import DcrConfigError, DcrShapeError, DcrTypeError, DcrValueError
from ..image import Box, Image, Mask, StatisticsControl
from .checks import checkBox, checkFiniteNumber, checkRegion, isInteger

if TYPE_CHECKING:
    from .core import DcrModel

__all__ = [
    "calculateNoiseCutoff",
    "conditionDcrModel",
    "regularizeModelIter",
    "regularizeModelFreq",
    "applyImageThresholds",
]

_log = logging.getLogger(__name__)

#: Largest border (pixels) excluded from the noise estimate of `regularizeModelFreq`.
_FREQ_NOISE_BUFFER = 5


# ----------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------


def _checkWidth(regularizationWidth: Any) -> int:
    if not isInteger(regularizationWidth) or regularizationWidth < 0:
        raise DcrConfigError(
            "regularizationWidth must be an integer radius in pixels, 0 or more "
            "(0 switches off the erosion/dilation that spares isolated pixels)",
            regularizationWidth=regularizationWidth,
        )
    return int(regularizationWidth)


def _checkFactor(regularizationFactor: Any) -> float:
    factor = checkFiniteNumber(regularizationFactor, "regularizationFactor")
    if factor < 1.0:
        raise DcrConfigError(
            "regularizationFactor is a maximum ratio and must be at least 1 (for example 2 or 4)",
            regularizationFactor=regularizationFactor,
        )
    return factor


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


def _subfilterArrays(
    model: DcrModel, modelImages: Any, bbox: Box, method: str
) -> list[np.ndarray]:
    if isinstance(modelImages, (Image, np.ndarray)) or not isinstance(modelImages, Sequence):
        raise DcrTypeError(
            f"{method}: modelImages must be a list with one image per subfilter",
            modelImages=type(modelImages).__name__,
        )
    if len(modelImages) != len(model):
        raise DcrValueError(
            f"{method}: {len(modelImages)} images given for a model of {len(model)} "
            "subfilters; give one per subfilter",
            given=len(modelImages),
            subfilters=len(model),
        )
    return [_regionArray(m, bbox, f"modelImages[{k}]") for k, m in enumerate(modelImages)]


# ----------------------------------------------------------------------------------------
# Noise level
# ----------------------------------------------------------------------------------------


def calculateNoiseCutoff(
    model: DcrModel,
    image: Image | np.ndarray,
    statsCtrl: StatisticsControl | None,
    bufferSize: int,
    convergenceMaskPlanes: str | Sequence[str] = "DETECTED",
    mask: Mask | None = None,
    bbox: Box | None = None,
    numSigma: float = 1.0,
) -> float:
    """Calculate the background noise level of an image (`DcrModel.calculateNoiseCutoff`).

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model, whose box and mask are the defaults of ``bbox`` and ``mask``.
    image, statsCtrl, bufferSize, convergenceMaskPlanes, mask, bbox, numSigma
        As `DcrModel.calculateNoiseCutoff`.

    Returns
    -------
    noiseCutoff : float
        The threshold value to treat pixels as noise in an image (counts).

    Raises
    ------
    DcrValueError, DcrShapeError, DcrConfigError, DcrTypeError
        As `DcrModel.calculateNoiseCutoff`.
    """
    statsCtrl = statsCtrl if statsCtrl is not None else StatisticsControl()
    if not isinstance(statsCtrl, StatisticsControl):
        raise DcrTypeError(
            "statsCtrl must be a dcrmodel.image.StatisticsControl (or None)",
            statsCtrl=type(statsCtrl).__name__,
        )
    if not isInteger(bufferSize) or bufferSize < 0:
        raise DcrValueError(
            "bufferSize must be an integer number of pixels, 0 or more", bufferSize=bufferSize
        )
    planes = _checkMaskPlanes(convergenceMaskPlanes)
    numSigma = checkFiniteNumber(numSigma, "numSigma", minimum=0.0, strict=True)
    if bbox is None:
        bbox = image.bbox if isinstance(image, Image) else model.bbox
    bbox = checkBox(bbox, "bbox")
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
    mask = mask if mask is not None else model.mask
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


# ----------------------------------------------------------------------------------------
# Conditioning between iterations and between subfilters
# ----------------------------------------------------------------------------------------


def conditionDcrModel(
    model: DcrModel, modelImages: Sequence[Image | np.ndarray], bbox: Box, gain: float = 1.0
) -> None:
    """Average two iterations' solutions to reduce oscillations (`DcrModel.conditionDcrModel`).

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model of the previous iteration.
    modelImages, bbox, gain
        As `DcrModel.conditionDcrModel`; ``modelImages`` are modified in place.

    Raises
    ------
    DcrValueError, DcrShapeError
        As `DcrModel.conditionDcrModel`.
    """
    bbox = checkRegion(bbox, model.bbox)
    arrays = _subfilterArrays(model, modelImages, bbox, "conditionDcrModel")
    gain = checkFiniteNumber(gain, "gain", minimum=0.0, strict=True)
    slices = bbox.slices(model.bbox)
    for array, old in zip(arrays, model.modelImages, strict=True):
        array *= gain
        array += old.array[slices]
        array /= 1.0 + gain


def regularizeModelIter(
    model: DcrModel,
    subfilter: int,
    newModel: Image | np.ndarray,
    bbox: Box,
    regularizationFactor: float,
    regularizationWidth: int = 2,
) -> None:
    """Restrict large variations in the model between iterations (`DcrModel.regularizeModelIter`).

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model of the previous iteration.
    subfilter, newModel, bbox, regularizationFactor, regularizationWidth
        As `DcrModel.regularizeModelIter`; ``newModel`` is modified in place.

    Raises
    ------
    DcrConfigError, DcrShapeError
        As `DcrModel.regularizeModelIter`.
    """
    oldImage = model[subfilter]
    bbox = checkRegion(bbox, model.bbox)
    array = _regionArray(newModel, bbox, "newModel")
    factor = _checkFactor(regularizationFactor)
    width = _checkWidth(regularizationWidth)
    old = np.asarray(oldImage.array[bbox.slices(model.bbox)], dtype=np.float64)
    magnitude = np.abs(old)
    highThreshold = magnitude * factor
    lowThreshold = np.where(old > 0, old / factor, -magnitude * factor)
    applyImageThresholds(
        array,
        highThreshold=highThreshold,
        lowThreshold=lowThreshold,
        regularizationWidth=width,
    )


def regularizeModelFreq(
    model: DcrModel,
    modelImages: Sequence[Image | np.ndarray],
    bbox: Box,
    statsCtrl: StatisticsControl | None,
    regularizationFactor: float,
    regularizationWidth: int = 2,
    mask: Mask | None = None,
    convergenceMaskPlanes: str | Sequence[str] = "DETECTED",
) -> None:
    """Restrict large variations in the model between subfilters (`DcrModel.regularizeModelFreq`).

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model, whose box and mask (the default of ``mask``) are used.
    modelImages, bbox, statsCtrl, regularizationFactor, regularizationWidth, mask
        As `DcrModel.regularizeModelFreq`; ``modelImages`` are modified in place.
    convergenceMaskPlanes
        As `DcrModel.regularizeModelFreq`.

    Raises
    ------
    DcrValueError, DcrConfigError, DcrShapeError
        As `DcrModel.regularizeModelFreq`.
    """
    bbox = checkRegion(bbox, model.bbox)
    arrays = _subfilterArrays(model, modelImages, bbox, "regularizeModelFreq")
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
    noiseCutoff = calculateNoiseCutoff(
        model,
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
        applyImageThresholds(
            array,
            highThreshold=highThreshold,
            lowThreshold=lowThreshold,
            regularizationWidth=width,
        )


def applyImageThresholds(
    image: np.ndarray | Image,
    highThreshold: np.ndarray | float | None = None,
    lowThreshold: np.ndarray | float | None = None,
    regularizationWidth: int = 2,
) -> None:
    """Restrict image values to be between upper and lower limits (`DcrModel.applyImageThresholds`).

    Parameters
    ----------
    image : numpy.ndarray or dcrmodel.image.Image
        The image to apply the thresholds to (floating point), modified in place.
    highThreshold, lowThreshold, regularizationWidth
        As `DcrModel.applyImageThresholds`.

    Raises
    ------
    DcrShapeError, DcrTypeError, DcrConfigError
        As `DcrModel.applyImageThresholds`.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((9, 9))
    >>> image[0, 0] = 5.0  # an isolated pixel above the threshold
    >>> image[3:, 3:] = 5.0  # a region above the threshold
    >>> applyImageThresholds(image, highThreshold=1.0, regularizationWidth=1)
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
