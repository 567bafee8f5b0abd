"""The conditioning of a DCR model between the iterations of its assembly (DMTN-037).

The iterative forward-modelling assembly of a `dcrmodel.model.core.DcrModel` conditions each
new solution against the model of the previous iteration: it averages the two iterations'
solutions with a gain (`conditionDcrModel`), limits the change of a subfilter between
iterations (`regularizeModelIter`), both through `applyImageThresholds`, which ignores
isolated noisy pixels by a binary opening (erosion then dilation) of the flagged pixels,
and restricts each subfilter image to a smoothly-varying colour ratio times the reference
image, the mean of the subfilters (`referenceImage`), after clamping it to that reference
through `applyImageThresholds` (`regularizeModelFreq`); the noise level that sets the
offsets and decides which pixels are background is `calculateNoiseCutoff`'s.

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
    "referenceImage",
    "calculateNoiseCutoff",
    "conditionDcrModel",
    "regularizeModelIter",
    "regularizeModelFreq",
    "applyImageThresholds",
]

_log = logging.getLogger(__name__)

#: Largest border (pixels) excluded from the noise estimate of `regularizeModelFreq`.
_FREQ_NOISE_BUFFER = 5
#: Offset added to the smoothed images of `regularizeModelFreq`, in units of their noise level.
_FREQ_NOISE_OFFSET = 3.0
#: Strength ``alpha`` of the unsharp mask that sharpens the colour ratio of `regularizeModelFreq`.
_FREQ_SHARPEN_ALPHA = 3.0
#: Floor of the smoothed, offset subfilter images of `regularizeModelFreq`, relative to the
#: offset: where the light is negative, a subfilter's share of it stays between 0 and 1.
_RATIO_FLOOR = 1e-6


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


def _checkThresholdOrder(high: np.ndarray, low: np.ndarray) -> None:
    """Refuse a low threshold above the high one (NaN thresholds do not count)."""
    crossed = low > high
    count = int(np.count_nonzero(crossed))
    if count:
        y, x = (int(i) for i in np.argwhere(crossed)[0])
        raise DcrValueError(
            f"lowThreshold exceeds highThreshold in {count} pixel(s) (first at y={y}, x={x}: "
            f"{low[y, x]:g} > {high[y, x]:g}); give lowThreshold <= highThreshold",
            pixels=count,
        )


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
# Reference image and noise level
# ----------------------------------------------------------------------------------------


def referenceImage(
    modelImages: Sequence[Image], slices: tuple[slice, slice]
) -> np.ndarray:
    """Return the mean of the subfilter images over a region (`DcrModel.getReferenceImage`).

    Parameters
    ----------
    modelImages : list of dcrmodel.image.Image
        The subfilter images, all on one box.
    slices : tuple of slice
        The region, as array slices of that box.

    Returns
    -------
    refImage : numpy.ndarray
        A new array, summed in double precision and returned in the images' dtype.
    """
    total = np.array(modelImages[0].array[slices], dtype=np.float64)
    for image in modelImages[1:]:
        total += image.array[slices]
    total /= len(modelImages)
    return total.astype(modelImages[0].dtype, copy=False)


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

    Each subfilter image becomes the reference image (the mean of the subfilters) times a
    smoothly-varying colour ratio; `DcrModel.regularizeModelFreq` gives the algorithm and
    its maths in full.

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

    Notes
    -----
    How this differs from the reference pipelines (``lsst.ip.diffim.DcrModel``), whose
    steps it otherwise follows (smoothing by ``regularizationWidth``, an offset of three
    times the smoothed noise, the clamp to ``sqrt(f)`` of the smoothed reference through
    `applyImageThresholds`, and an unsharp mask with ``alpha = 3`` and an inner Gaussian of
    ``regularizationWidth / 3``):

    - Their reference is the mean of the model's own subfilter images (the previous
      iteration's solution in the assembly), not of ``modelImages``; multiplying the new
      ratios by it brings back the previous total flux. Here it is the mean of
      ``modelImages``, as documented for this method.
    - They set the reference to 0 where it is not positive and multiply the ratio by that
      clipped reference, which zeroes the negative half of the sky noise in every
      subfilter (a positive bias of the background). Here ``r`` is used as it is.
    - They divide the smoothed, clamped subfilter by the smoothed, unclamped reference, so
      the ratios do not sum to ``N`` where the clamp acts and the sum over subfilters
      changes there. Here the ratios are normalized by the clamped subfilters
      (``q_k = N n_k / sum_j n_j``): the same ratio where the clamp does not act, and the
      sum over subfilters is kept everywhere. With ``r`` not clipped, dividing by
      ``G_s(r) + c`` would also be unstable where the smoothed sky is near ``-c``; the
      floored numerators keep every ``q_k`` between 0 and ``N`` before sharpening.
    - Their noise level is the standard deviation of subfilter 0 divided by
      ``2 * regularizationWidth`` (an approximation of the effect of the smoothing on
      white noise). Here it is measured on the smoothed subfilter images themselves (the
      rms over subfilters of their sigma-clipped `calculateNoiseCutoff`), which accounts
      for the correlated noise of a model.
    - Their smoothing Gaussians take zero outside the region; here the images are mirrored
      at its edges, so that the smoothed reference does not fall off towards the edges
      of a subregion.
    """
    bbox = checkRegion(bbox, model.bbox)
    arrays = _subfilterArrays(model, modelImages, bbox, "regularizeModelFreq")
    factor = _checkFactor(regularizationFactor)
    width = _checkWidth(regularizationWidth)
    planes = _checkMaskPlanes(convergenceMaskPlanes)
    if len(arrays) == 1:
        return
    finite = np.logical_and.reduce([np.isfinite(array) for array in arrays])
    values = [np.where(finite, array, 0.0) for array in arrays]
    reference = np.mean(values, axis=0)
    offset = _FREQ_NOISE_OFFSET * _smoothedNoiseLevel(
        model, values, width, statsCtrl, planes, mask, bbox
    )
    _clampToReference(values, _smooth(reference, width) + offset, factor, width)
    fractions = _colourFractions(values, width, offset)
    for array, fraction in zip(arrays, fractions, strict=True):
        array[finite] = (reference * len(arrays) * _unsharpMask(fraction, width))[finite]


def _clampToReference(
    values: list[np.ndarray], smoothReference: np.ndarray, factor: float, width: int
) -> None:
    """Clamp each subfilter between ``smoothReference / sqrt(f)`` and ``* sqrt(f)``, in place.

    Where the smoothed, offset reference is not positive there is no relative limit and the
    subfilters are left alone (NaN thresholds never flag).
    """
    positive = smoothReference > 0
    maxRatio = math.sqrt(factor)
    highThreshold = np.where(positive, smoothReference * maxRatio, np.nan)
    lowThreshold = np.where(positive, smoothReference / maxRatio, np.nan)
    for value in values:
        applyImageThresholds(
            value, highThreshold=highThreshold, lowThreshold=lowThreshold,
            regularizationWidth=width,
        )


def _colourFractions(values: list[np.ndarray], width: int, offset: float) -> list[np.ndarray]:
    """Return each subfilter's smoothed, offset share of the light, ``w_k`` (they sum to 1).

    ``w_k = n_k / sum_j n_j`` with ``n_k = gaussian(m_k, width) + offset``, each ``n_k``
    floored at `_RATIO_FLOOR` times the offset (or, without noise, times the largest
    ``|n_k|``) so that the shares stay between 0 and 1 where the light is negative.
    """
    numerators = [_smooth(value, width) + offset for value in values]
    scale = offset if offset > 0 else max(float(np.max(np.abs(n))) for n in numerators)
    floor = _RATIO_FLOOR * scale if scale > 0 else np.finfo(float).tiny
    for numerator in numerators:
        np.maximum(numerator, floor, out=numerator)
    total = np.sum(numerators, axis=0)
    return [numerator / total for numerator in numerators]


def _smooth(image: np.ndarray, width: float) -> np.ndarray:
    """Gaussian of standard deviation ``width`` (pixels); edges mirrored; 0: a copy."""
    return ndimage.gaussian_filter(image, sigma=width, mode="reflect")


def _unsharpMask(image: np.ndarray, width: float) -> np.ndarray:
    """Sharpen an image smoothed by a Gaussian of ``width`` with an unsharp mask.

    ``image + alpha * (image - gaussian(image, width / alpha))``, ``alpha`` being
    `_FREQ_SHARPEN_ALPHA`. It is linear and keeps a constant image unchanged.
    """
    inner = _smooth(image, width / _FREQ_SHARPEN_ALPHA)
    return image + _FREQ_SHARPEN_ALPHA * (image - inner)


def _smoothedNoiseLevel(
    model: DcrModel,
    values: list[np.ndarray],
    width: int,
    statsCtrl: StatisticsControl | None,
    planes: str | tuple[str, ...],
    mask: Mask | None,
    bbox: Box,
) -> float:
    """Noise level of the smoothed subfilter images: the rms of their `calculateNoiseCutoff`."""
    buffer = max(0, min(_FREQ_NOISE_BUFFER, (min(bbox.width, bbox.height) - 1) // 4))
    levels = [
        calculateNoiseCutoff(
            model, _smooth(value, width), statsCtrl, bufferSize=buffer,
            convergenceMaskPlanes=planes, mask=mask, bbox=bbox,
        )
        for value in values
    ]
    return math.sqrt(sum(level * level for level in levels) / len(levels))


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
    DcrShapeError, DcrTypeError, DcrConfigError, DcrValueError
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
    if high is not None and low is not None:
        _checkThresholdOrder(high, low)
    if high is not None:
        flags = _openFlags(array > high, width)
        array[flags] = high[flags]
    if low is not None:
        flags = _openFlags(array < low, width)
        array[flags] = low[flags]
