"""One template from several DCR models: a visit whose detector spans more than one patch.

A survey's sky map cuts the sky into tracts and patches that overlap a little, and a DCR
model is built per patch. A science visit's detector can see several of them;
`buildMatchedExposureFromModels` makes the template of each model that overlaps the visit
(`DcrModel.buildMatchedExposure`: forward-modelled on the model's grid and warped onto the
visit's, or the unchanged path for a visit on the model's grid) and merges them on the
visit's box.

How the patches are merged
--------------------------
Each pixel of the visit takes its template from one model: of the models whose template has
data there (not ``NO_DATA``), preferably one that does not flag it `LOW_COVERAGE_PLANE`
(too few visits under the model there), the one in which the pixel lies farthest from the
edge of the model's box (in that model's pixels). A pixel no model covers is ``NO_DATA``
(image and variance 0). One model per pixel, rather than an inverse-variance average of the
overlapping ones:

- the models of overlapping patches are built from the same visits, so their errors are
  correlated and an average would report a variance smaller than the truth; one model's
  template keeps its own variance, exactly;
- a model is least constrained near its edges (the DCR shifts and PSF kernels reach beyond
  them, edge values are extended), so the pixel is taken where its model sees the most sky
  around it. Two patches cut from one sky give, merged, the template of a model covering
  both, to the precision of the template engines near a model's edge (the tests measure
  2e-4 of the peak or better with 24 to 32 shared columns, PSF-matched; exactly, to
  rounding, without PSF matching).

The merge is a seam: where two models differ (their noise, their regularisation), the
template steps from one to the other along the line where the distances to the two edges
are equal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DcrMetadataError, DcrTypeError, DcrValueError
from ..image import Box, Exposure, Image, Mask, MaskedImage, Psf
from ..warp import boxesOverlap, mapBox
from .checks import checkExposureBand
from .core import DcrModel
from .templates import DEFAULT_PSF_DAMPING, DEFAULT_PSF_MAX_GAIN
from .visitgrid import TEMPLATE_WARPING_KERNEL, onModelGrid

__all__ = [
    "LOW_COVERAGE_PLANE",
    "checkModelsCompatible",
    "overlappingModels",
    "buildMatchedExposureFromModels",
]

#: Mask plane of a DCR model (and of its templates) flagging the pixels whose model rests
#: on too few visits; a merge prefers a model that does not flag a pixel, and difference
#: images do not detect there.
LOW_COVERAGE_PLANE = "DCR_LOW_COVERAGE"

# Added to the edge distance of a pixel that is not low-coverage, so that any such pixel
# ranks above every low-coverage one (larger than any model's size in pixels).
_WELL_COVERED = 1e9


def _bandText(model: DcrModel) -> str:
    band = model.filter
    if band is None:
        return "no band"
    return f"{band.bandName} ({band.effectiveWavelength:g} nm wide {band.bandwidth:g} nm)"


def checkModelsCompatible(models: Any) -> list[DcrModel]:
    """Check that DCR models can be used together (one band, one subfilter count).

    Parameters
    ----------
    models : sequence of dcrmodel.model.core.DcrModel
        The models, for example of neighbouring patches.

    Returns
    -------
    list of DcrModel
        The models.

    Raises
    ------
    DcrTypeError
        If ``models`` is not a sequence of `DcrModel`.
    DcrValueError
        If it is empty, or the models have different numbers of subfilters or bands
        (effective wavelength and bandwidth, to 1e-9 relative).
    DcrMetadataError
        If a model has no filter, or, for several models, one has no WCS (the models are
        placed on the sky by their WCSs).
    """
    if isinstance(models, DcrModel) or not isinstance(models, Sequence):
        raise DcrTypeError("models must be a sequence (list) of DcrModel",
                           models=type(models).__name__)
    models = list(models)
    if not models:
        raise DcrValueError("no DCR model given; give at least one")
    for index, model in enumerate(models):
        if not isinstance(model, DcrModel):
            raise DcrTypeError(f"models[{index}] is not a DcrModel", model=type(model).__name__)
    counts = [len(model) for model in models]
    if len(set(counts)) > 1:
        raise DcrValueError(
            "models with different numbers of subfilters given together ("
            + ", ".join(f"model {i}: {n}" for i, n in enumerate(counts))
            + "); give models of one band and one subfilter count",
            numSubfilters=counts,
        )
    for index, model in enumerate(models):
        if model.filter is None:
            raise DcrMetadataError(f"model {index} has no filter; a template needs its band",
                                   model=index)
    first = models[0].filter
    for index, model in enumerate(models[1:], start=1):
        band = model.filter
        if not (math.isclose(band.effectiveWavelength, first.effectiveWavelength, rel_tol=1e-9)
                and math.isclose(band.bandwidth, first.bandwidth, rel_tol=1e-9)):
            raise DcrValueError(
                f"models of different bands given together: model 0 is {_bandText(models[0])}"
                f", model {index} is {_bandText(model)}; give models of one band",
                bands=[_bandText(m) for m in models],
            )
    if len(models) > 1:
        for index, model in enumerate(models):
            if model.wcs is None:
                raise DcrMetadataError(
                    f"model {index} has no WCS; several models are placed on the sky by "
                    "their WCSs", model=index,
                )
    return models


def _checkExposure(exposure: Any) -> Exposure:
    if not isinstance(exposure, Exposure):
        raise DcrTypeError("exposure must be a dcrmodel.image.Exposure",
                           exposure=type(exposure).__name__)
    missing = [name for name in ("visitInfo", "wcs") if getattr(exposure, name) is None]
    if missing:
        raise DcrMetadataError(
            f"the exposure has no {' and no '.join(missing)}, which a template needs; "
            "set them on the exposure", missing=[f"exposure.{name}" for name in missing],
        )
    return exposure


def overlappingModels(models: Sequence[DcrModel], exposure: Exposure) -> list[int]:
    """Return the indices of the models that see part of an exposure's box.

    Parameters
    ----------
    models : sequence of dcrmodel.model.core.DcrModel
        The models.
    exposure : dcrmodel.image.Exposure
        The visit, with a WCS.

    Returns
    -------
    list of int
        For a model on the exposure's grid (`onModelGrid`), whether the boxes share a
        pixel; otherwise whether they see a common part of the sky
        (`dcrmodel.warp.boxesOverlap`).
    """
    found = []
    for index, model in enumerate(models):
        if onModelGrid(model, exposure.wcs, exposure.bbox):
            if exposure.bbox.overlaps(model.bbox):
                found.append(index)
        elif boxesOverlap(exposure.wcs, exposure.bbox, model.wcs, model.bbox):
            found.append(index)
    return found


def _edgeDistance(model: DcrModel, exposure: Exposure, onGrid: bool) -> np.ndarray:
    """Distance (model pixels) of every visit pixel from the nearest edge of the model's box.

    Negative outside the box; -inf where the pixel has no position on the model's grid.
    """
    box = exposure.bbox
    if onGrid:
        ys, xs = np.mgrid[box.minY:box.maxY + 1, box.minX:box.maxX + 1].astype(np.float64)
    else:
        mapping = mapBox(exposure.wcs, model.wcs, box)
        xs, ys = mapping.x, mapping.y
    bounds = model.bbox
    distance = np.minimum.reduce([xs - bounds.minX, bounds.maxX - xs,
                                  ys - bounds.minY, bounds.maxY - ys])
    return np.where(np.isfinite(distance), distance, -np.inf)


def _onVisitBox(template: Exposure, box: Box) -> Exposure:
    """Place a template on part of the visit's box on the whole box (``NO_DATA`` beyond)."""
    if template.bbox == box:
        return template
    mask = Mask.fromBox(box, planes=template.mask.planes)
    mask.array[...] = np.int32(1 << mask.addMaskPlane("NO_DATA"))
    image = Image.fromBox(box, dtype=template.image.dtype)
    variance = Image.fromBox(box, dtype=template.variance.dtype)
    inner = template.bbox.slices(box)
    image.array[inner] = template.image.array
    variance.array[inner] = template.variance.array
    mask.array[inner] = template.mask.array
    return Exposure(MaskedImage(image, mask, variance), wcs=template.wcs, psf=template.psf,
                    visitInfo=template.visitInfo, filter=template.filter,
                    photoCalib=template.photoCalib)


def _mergedPlanes(templates: list[Exposure]) -> Mask:
    """Return an empty mask on the templates' box with the planes of all of them (by name)."""
    merged = Mask.fromBox(templates[0].bbox, planes=templates[0].mask.planes)
    for template in templates[1:]:
        for name in template.mask.planes:
            merged.addMaskPlane(name)
    merged.addMaskPlane("NO_DATA")
    return merged


def _copyBits(target: Mask, source: Mask, chosen: np.ndarray) -> None:
    """Copy the bits of ``source`` at ``chosen`` into ``target``, plane by plane (by name)."""
    bits = source.array[chosen]
    values = np.zeros(bits.shape, dtype=np.int32)
    for name, bit in source.planes.items():
        values |= ((bits >> bit) & 1).astype(np.int32) << target.getMaskPlane(name)
    target.array[chosen] = values


def _merge(templates: list[Exposure], scores: list[np.ndarray]) -> Exposure:
    """Take each pixel from the template of highest score; ``NO_DATA`` where none scores."""
    stacked = np.stack(scores)
    choice = np.argmax(stacked, axis=0)
    covered = np.isfinite(np.max(stacked, axis=0))
    box = templates[0].bbox
    image = Image.fromBox(box, dtype=np.result_type(*(t.image.dtype for t in templates)))
    variance = Image.fromBox(box, dtype=np.result_type(*(t.variance.dtype for t in templates)))
    mask = _mergedPlanes(templates)
    counts = []
    for index, template in enumerate(templates):
        chosen = covered & (choice == index)
        counts.append(int(chosen.sum()))
        image.array[chosen] = template.image.array[chosen]
        variance.array[chosen] = template.variance.array[chosen]
        _copyBits(mask, template.mask, chosen)
    mask.array[~covered] = np.int32(1 << mask.getMaskPlane("NO_DATA"))
    main = templates[int(np.argmax(counts))]
    psf: Psf | None = main.psf
    return Exposure(MaskedImage(image, mask, variance), wcs=main.wcs, psf=psf,
                    visitInfo=main.visitInfo, filter=main.filter, photoCalib=main.photoCalib)


def buildMatchedExposureFromModels(
    models: Sequence[DcrModel],
    exposure: Exposure,
    *,
    order: int = 3,
    splitSubfilters: bool = True,
    splitThreshold: float = 0.0,
    engine: str | None = None,
    mode: str | None = None,
    psf: Psf | None = None,
    matchPsf: bool = True,
    psfDamping: float = DEFAULT_PSF_DAMPING,
    psfMaxGain: float | None = DEFAULT_PSF_MAX_GAIN,
    warpingKernel: str = TEMPLATE_WARPING_KERNEL,
) -> Exposure:
    """Build the DCR-matched template of a visit from the models of several patches.

    Parameters
    ----------
    models : sequence of dcrmodel.model.core.DcrModel
        Models of one band and subfilter count (for example of neighbouring patches), each
        with a WCS when there are several.
    exposure : dcrmodel.image.Exposure
        The science visit, on any WCS, with its visit info (and a PSF to match to).
    order, splitSubfilters, splitThreshold, engine, mode, psf, matchPsf, psfDamping, psfMaxGain
        Keyword only; as `DcrModel.buildMatchedExposure`, for every model.
    warpingKernel : str, optional
        Keyword only; as `DcrModel.buildMatchedExposure`: the kernel of the warps of the
        templates made on other grids than the visit's (default ``"lanczos4"``).

    Returns
    -------
    dcrmodel.image.Exposure
        The template on the exposure's box and WCS: each pixel from one model (module
        notes), ``NO_DATA`` with image and variance 0 where none covers it; the mask planes
        of all the models' templates (by name); the PSF, filter and photometric calibration
        of the template that gives the most pixels (when PSF-matched, every template has the
        visit's PSF). With one model that covers the whole visit, exactly
        ``model.buildMatchedExposure(exposure=exposure, ...)``.

    Raises
    ------
    DcrTypeError
        If ``models`` is not a sequence of `DcrModel` or ``exposure`` not an `Exposure`.
    DcrValueError
        If the models have different bands or subfilter counts, the exposure is of another
        band than theirs, or none overlaps the exposure (checked before any template is
        built); else as
        `DcrModel.buildMatchedExposure`.
    DcrMetadataError
        If the exposure has no WCS or visit info, or a model lacks a filter (or a WCS, for
        several models).

    Notes
    -----
    A model on the visit's grid (the patches of one tract share a WCS) takes the unchanged
    path of `DcrModel.buildMatchedExposure` over the part of the visit inside its box; any
    other model forward-models the visit on its own grid and warps the template onto the
    visit's (`dcrmodel.model.visitgrid`).
    """
    models = checkModelsCompatible(models)
    exposure = _checkExposure(exposure)
    checkExposureBand(models[0].filter, exposure, "buildMatchedExposureFromModels")
    covering = overlappingModels(models, exposure)
    if not covering:
        raise DcrValueError(
            f"the exposure (box {exposure.bbox}) does not overlap any of the {len(models)} "
            "DCR model(s) on the sky; give the models of the patches it sees",
            bbox=exposure.bbox, models=len(models),
        )
    options = {"order": order, "splitSubfilters": splitSubfilters,
               "splitThreshold": splitThreshold, "engine": engine, "mode": mode, "psf": psf,
               "matchPsf": matchPsf, "psfDamping": psfDamping, "psfMaxGain": psfMaxGain,
               "warpingKernel": warpingKernel}
    box = exposure.bbox
    templatesMade: list[Exposure] = []
    scores: list[np.ndarray] = []
    for index in covering:
        model = models[index]
        onGrid = onModelGrid(model, exposure.wcs, box)
        if len(covering) == 1 and (not onGrid or model.bbox.contains(box)):
            return model.buildMatchedExposure(exposure=exposure, **options)
        inner = box.intersection(model.bbox) if onGrid else box
        science = exposure if inner == box else exposure[inner]
        template = _onVisitBox(model.buildMatchedExposure(exposure=science, **options), box)
        valid = ~template.mask.getBadPixels("NO_DATA")
        wellCovered = ~template.mask.getBadPixels(LOW_COVERAGE_PLANE)
        score = _edgeDistance(model, exposure, onGrid) + np.where(wellCovered, _WELL_COVERED, 0)
        templatesMade.append(template)
        scores.append(np.where(valid, score, -np.inf))
    return _merge(templatesMade, scores)
