"""Difference imaging with a DCR-matched template.

One function that does what a survey pipeline does with a DCR model: build the template
matched to a science exposure's observing conditions (`DcrModel.buildMatchedExposure`),
subtract it, and detect what is left at a threshold in sigma with the PSF-matched filter
of `dcrmodel.metrics`. The difference exposure carries the detections' footprints in its
``DETECTED`` mask plane (and ``DETECTED_NEGATIVE`` for negative ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DcrShapeError, DcrTypeError, DcrValueError
from .image import Exposure
from .metrics import (
    BAD_MASK_PLANES,
    Detection,
    detectSources,
    significanceImage,
    subtractTemplate,
)

__all__ = ["DifferenceResult", "makeDifference"]


@dataclass
class DifferenceResult:
    """What `makeDifference` returns.

    Attributes
    ----------
    template : `dcrmodel.image.Exposure`
        The DCR-matched template, on the science exposure's box.
    difference : `dcrmodel.image.Exposure`
        ``science - template`` with the summed variance; ``DETECTED`` and
        ``DETECTED_NEGATIVE`` mark the detections' footprints.
    detections : list of `dcrmodel.metrics.Detection`
        Detections at or above the threshold, brightest first, in parent pixels.
    threshold : float
        The detection threshold (sigma).
    """

    template: Exposure
    difference: Exposure
    detections: list[Detection]
    threshold: float

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (the detections as dictionaries)."""
        return {
            "threshold": self.threshold,
            "numDetections": len(self.detections),
            "detections": [d.toDict() for d in self.detections],
        }


def _detectionKernel(exposure: Exposure) -> np.ndarray:
    if exposure.psf is not None:
        return np.asarray(exposure.psf.computeKernelImage(), dtype=float)
    from .psf import estimatePsf

    return np.asarray(estimatePsf(exposure).psf.computeKernelImage(), dtype=float)


def makeDifference(
    model: Any,
    exposure: Exposure,
    threshold: float = 5.0,
    **templateOptions: Any,
) -> DifferenceResult:
    """Subtract a DCR-matched template from an exposure and detect what remains.

    Parameters
    ----------
    model : `dcrmodel.model.DcrModel`
        The DCR model of the field.
    exposure : `dcrmodel.image.Exposure`
        The science exposure, on the model's pixel grid; parts outside the model's box are
        left out. It needs a WCS, a `VisitInfo` and a PSF (without one, the PSF is
        estimated from its stars, with a warning).
    threshold : float, optional
        Detection threshold in sigma of the difference image (default 5).
    **templateOptions
        Passed to `DcrModel.buildMatchedExposure` (for example ``engine``).

    Returns
    -------
    DifferenceResult
        The template, the difference exposure and the detections.

    Raises
    ------
    DcrTypeError
        If ``exposure`` is not an `Exposure`.
    DcrShapeError
        If the exposure does not overlap the model.
    DcrValueError
        For a threshold that is not a positive number.
    """
    if not isinstance(exposure, Exposure):
        raise DcrTypeError("exposure must be a dcrmodel Exposure (see dcrmodel.readExposure)",
                           type=type(exposure).__name__)
    if not (isinstance(threshold, int | float) and np.isfinite(threshold) and threshold > 0):
        raise DcrValueError("threshold must be a positive number of sigma", threshold=threshold)
    box = exposure.bbox.intersection(model.bbox)
    if box.isEmpty():
        raise DcrShapeError(
            "The exposure does not overlap the DCR model; give an exposure of the model's "
            "patch.", exposure=exposure.bbox, model=model.bbox,
        )
    science = exposure[box] if box != exposure.bbox else exposure
    kernel = _detectionKernel(science)
    template = model.buildMatchedExposure(exposure=science, **templateOptions)
    difference = subtractTemplate(science, template)
    mask = difference.mask
    bad = (mask.array & mask.getPlaneBitMask(
        [p for p in BAD_MASK_PLANES if p in mask.planes])) != 0
    detections, _ = detectSources(
        difference.image, difference.variance, kernel, threshold=threshold,
        badPixels=bad, origin=difference.bbox.begin,
    )
    snr = significanceImage(difference.image, difference.variance, kernel, bad)
    for plane, above in (("DETECTED", snr >= threshold), ("DETECTED_NEGATIVE", snr <= -threshold)):
        bit = np.int32(mask.getPlaneBitMask(plane) if plane in mask.planes
                       else 1 << mask.addMaskPlane(plane))
        bits = mask.array
        bits &= ~bit
        bits[above] |= bit
    return DifferenceResult(template, difference, detections, float(threshold))
