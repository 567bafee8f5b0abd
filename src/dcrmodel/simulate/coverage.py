"""Known-truth evaluation of templates on detector-frame visits, over well-covered pixels.

On a detector-frame field (`SimulationConfig.detectorFrames`) each visit has its own grid
and covers only part of the patch, so a template for a held-out visit rests on many
training visits in some pixels and on few (or none) in others. The measures of
`dcrmodel.diffim` (residual against the truth, false 5-sigma detections, transients
recovered) are therefore taken over the pixels that enough training visits saw:

- `validPixelMap` warps one exposure's valid pixels into another frame: an output pixel
  is valid when the warping kernel that would resample it (Lanczos 3 by default, the
  warps' own) touches only good input pixels (no ``BAD``, ``SAT``, ``CR``, ``EDGE`` or
  ``NO_DATA``) and lies inside the input's footprint. It is the mask of
  `dcrmodel.warp.warpImage`, so a pixel counts as seen exactly when a warp of the visit
  would deliver it;
- `coverageMap` counts, for every pixel of a frame, the exposures that saw it;
- `frameCatalogue` moves a manifest's sources or transients onto a frame through their sky
  positions;
- `evaluateDetectorVisit` evaluates templates on a held-out visit of a simulation folder
  beside the plain coadd seen from the visit's frame (the coadd warped onto it), with
  `dcrmodel.diffim.evaluateTemplates`, after flagging ``NO_DATA`` in every template where
  fewer than ``minCoverage`` training visits saw the sky; transients outside those pixels
  are left out (and counted).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.wcs import WCS

from .._validate import asInt
from ..diffim import TemplateEvaluation, evaluateTemplates
from ..errors import DcrTypeError, DcrValueError
from ..fits import readExposure
from ..image import BAD_MASK_PLANES, Box, Exposure, Image, MaskedImage
from ..warp import DEFAULT_WARPING_KERNEL, boxesOverlap, warpExposure, warpImage

__all__ = [
    "DEFAULT_MIN_COVERAGE",
    "DetectorVisitEvaluation",
    "validPixelMap",
    "coverageMap",
    "frameCatalogue",
    "restrictTemplate",
    "evaluateDetectorVisit",
]

#: Training visits that must have seen a pixel for it to count in `evaluateDetectorVisit`.
DEFAULT_MIN_COVERAGE = 6


def _asExposure(value: Any, name: str) -> Exposure:
    if isinstance(value, Exposure):
        return value
    if isinstance(value, (str, os.PathLike)):
        return readExposure(value)
    raise DcrTypeError(f"{name} must be an Exposure or the path of an exposure file",
                       **{name: type(value).__name__})


def validPixelMap(
    exposure: Exposure | str | os.PathLike,
    destWcs: WCS,
    destBBox: Box,
    badMaskPlanes: Iterable[str] = BAD_MASK_PLANES,
    kernel: str = DEFAULT_WARPING_KERNEL,
) -> np.ndarray:
    """Return which pixels of a frame an exposure saw, as a warp of it would deliver them.

    Parameters
    ----------
    exposure : dcrmodel.image.Exposure or path
        The exposure (its WCS, box and mask are used).
    destWcs : astropy.wcs.WCS
        WCS of the frame (0-based parent pixels).
    destBBox : dcrmodel.image.Box
        The frame's pixels.
    badMaskPlanes : iterable of str, optional
        Mask planes that make a pixel unseen (``NO_DATA`` is always one).
    kernel : str, optional
        Warping kernel (`dcrmodel.warp.WARPING_KERNELS`): an output pixel is seen when
        every input pixel under its kernel is good.

    Returns
    -------
    numpy.ndarray of bool
        ``destBBox.shape``; all False when the exposure does not overlap the frame.
    """
    exposure = _asExposure(exposure, "exposure")
    if not isinstance(destBBox, Box):
        raise DcrTypeError("destBBox must be a dcrmodel Box", destBBox=type(destBBox).__name__)
    if exposure.wcs is None or not boxesOverlap(exposure.wcs, exposure.bbox, destWcs, destBBox):
        return np.zeros(destBBox.shape, dtype=bool)
    zeros = Image(np.zeros(exposure.bbox.shape, dtype=np.float32), bbox=exposure.bbox)
    source = MaskedImage(zeros, exposure.mask.clone(), zeros.clone())
    warped = warpImage(source, exposure.wcs, destWcs, destBBox, kernel=kernel)
    planes = set(badMaskPlanes) | {"NO_DATA"}
    known = [p for p in planes if p in warped.mask.planes]
    return ~warped.mask.getBadPixels(known)


def coverageMap(
    exposures: Sequence[Exposure | str | os.PathLike],
    destWcs: WCS,
    destBBox: Box,
    badMaskPlanes: Iterable[str] = BAD_MASK_PLANES,
    kernel: str = DEFAULT_WARPING_KERNEL,
) -> np.ndarray:
    """Count, for every pixel of a frame, the exposures that saw it (`validPixelMap`).

    Parameters
    ----------
    exposures : sequence of Exposure or path
        The exposures (for example a simulation's training visits), each on its own WCS.
    destWcs : astropy.wcs.WCS
        WCS of the frame (0-based parent pixels).
    destBBox : dcrmodel.image.Box
        The frame's pixels.
    badMaskPlanes, kernel
        See `validPixelMap`.

    Returns
    -------
    numpy.ndarray of int32
        ``destBBox.shape``: the number of exposures that saw each pixel.

    Examples
    --------
    >>> from dcrmodel.warp import tangentPlaneGrid
    >>> wcs, box = tangentPlaneGrid(150.0, -30.0, 40, 40, 0.2)
    >>> visit = Exposure.fromArrays(np.zeros((40, 40), np.float32), wcs=wcs)
    >>> count = coverageMap([visit, visit], wcs, Box(20, 0, 40, 40))
    >>> int(count[20, 0]), int(count[20, -1])
    (2, 0)
    """
    planes = tuple(badMaskPlanes)
    count = np.zeros(destBBox.shape, dtype=np.int32)
    for exposure in exposures:
        count += validPixelMap(exposure, destWcs, destBBox, planes, kernel)
    return count


def frameCatalogue(
    entries: Iterable[Mapping[str, Any]], wcs: WCS, bbox: Box | None = None
) -> list[dict[str, Any]]:
    """Return catalogue entries with ``x``, ``y`` moved onto a frame through ``ra``, ``dec``.

    Parameters
    ----------
    entries : iterable of mapping
        Entries with ``ra``, ``dec`` (ICRS degrees), as a simulation manifest's
        ``sources`` and ``transients``.
    wcs : astropy.wcs.WCS
        The frame's WCS (0-based parent pixels; distortion included).
    bbox : dcrmodel.image.Box, optional
        Keep only the entries inside it (within half a pixel).

    Returns
    -------
    list of dict
        Copies of the entries with ``x``, ``y`` in the frame's parent pixels (entries the
        WCS cannot place, or outside ``bbox``, are dropped).
    """
    entries = list(entries)
    if not entries:
        return []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "ra" not in entry or "dec" not in entry:
            raise DcrTypeError("catalogue entries need 'ra' and 'dec' (ICRS degrees)", entry=i)
    ra = np.array([float(e["ra"]) for e in entries])
    dec = np.array([float(e["dec"]) for e in entries])
    x, y = wcs.all_world2pix(ra, dec, 0, quiet=True)
    out = []
    for entry, px, py in zip(entries, np.atleast_1d(x), np.atleast_1d(y), strict=True):
        if not (np.isfinite(px) and np.isfinite(py)):
            continue
        if bbox is not None and not (bbox.minX - 0.5 <= px <= bbox.maxX + 0.5
                                     and bbox.minY - 0.5 <= py <= bbox.maxY + 0.5):
            continue
        out.append(dict(entry, x=float(px), y=float(py)))
    return out


def restrictTemplate(template: Any, keep: np.ndarray, bbox: Box) -> Any:
    """Return a copy of a template with the pixels outside ``keep`` left out.

    Parameters
    ----------
    template : Exposure, MaskedImage, Image or numpy.ndarray
        A template on (part of) ``bbox``; an array must cover ``bbox``.
    keep : numpy.ndarray of bool
        Pixels of ``bbox`` to keep.
    bbox : dcrmodel.image.Box
        The frame ``keep`` covers.

    Returns
    -------
    Exposure, MaskedImage, Image or numpy.ndarray
        The same kind: ``NO_DATA`` set outside ``keep`` for exposures and masked images
        (their pixels unchanged); NaN there for images and arrays, which the measures of
        `dcrmodel.diffim` leave out as they do masked pixels.
    """
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != bbox.shape:
        raise DcrValueError("keep must have the frame's shape", shape=keep.shape, bbox=bbox)
    if isinstance(template, (Exposure, MaskedImage)):
        out = template.clone()
        box = out.bbox.intersection(bbox)
        mask = out.mask
        bit = mask.getPlaneBitMask("NO_DATA") if "NO_DATA" in mask.planes else (
            1 << mask.addMaskPlane("NO_DATA"))
        drop = np.ones(out.bbox.shape, dtype=bool)
        drop[box.slices(out.bbox)] = ~keep[box.slices(bbox)]
        mask.array[drop] |= np.int32(bit)
        return out
    if isinstance(template, Image):
        out = Image(np.array(template.array, dtype=np.float64), bbox=template.bbox)
        box = out.bbox.intersection(bbox)
        drop = np.ones(out.bbox.shape, dtype=bool)
        drop[box.slices(out.bbox)] = ~keep[box.slices(bbox)]
        out.array[drop] = np.nan
        return out
    if isinstance(template, np.ndarray):
        if template.shape != bbox.shape:
            raise DcrValueError("an array template must cover the frame",
                                shape=template.shape, bbox=bbox)
        return np.where(keep, np.asarray(template, dtype=np.float64), np.nan)
    raise DcrTypeError("template must be an Exposure, MaskedImage, Image or numpy array",
                       template=type(template).__name__)


@dataclass(frozen=True)
class DetectorVisitEvaluation:
    """The templates of one held-out visit, measured over its well-covered pixels.

    Attributes
    ----------
    evaluations : dict of str to dcrmodel.diffim.TemplateEvaluation
        By template name (``"coadd"``: the plain coadd warped onto the visit's frame).
    coverage : numpy.ndarray of int32
        Training visits that saw each pixel of the visit (`coverageMap`).
    minCoverage : int
        Pixels seen by fewer training visits were left out.
    numPixels : int
        Pixels measured (coverage at least ``minCoverage``).
    transients : list of dict
        The visit's transients inside those pixels (frame positions), the ones scored.
    numTransientsOutside : int
        The visit's transients left out (outside those pixels).
    """

    evaluations: dict[str, TemplateEvaluation]
    coverage: np.ndarray
    minCoverage: int
    numPixels: int
    transients: list[dict[str, Any]]
    numTransientsOutside: int

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary (without the coverage map)."""
        return {
            "evaluations": {k: v.toDict() for k, v in self.evaluations.items()},
            "minCoverage": self.minCoverage,
            "numPixels": self.numPixels,
            "numTransients": len(self.transients),
            "numTransientsOutside": self.numTransientsOutside,
        }


def evaluateDetectorVisit(
    manifest: Any,
    visitId: int,
    templates: Mapping[str, Any],
    minCoverage: int = DEFAULT_MIN_COVERAGE,
    includeCoadd: bool = True,
    coverage: np.ndarray | None = None,
    threshold: float = 5.0,
    border: int = 0,
) -> DetectorVisitEvaluation:
    """Evaluate templates on a held-out visit of a detector-frame simulation.

    Parameters
    ----------
    manifest : dcrmodel.simulate.manifest.SimulationManifest
        A simulation folder (`dcrmodel.simulate.loadManifest`); detector-frame or not.
    visitId : int
        The visit (any role; usually a test visit).
    templates : mapping of str to template
        Templates on the visit's own frame (Exposure, MaskedImage, Image or array).
    minCoverage : int, optional
        Leave out the pixels fewer training visits saw (default 6).
    includeCoadd : bool, optional
        Add the simulation's plain coadd, warped onto the visit's frame
        (`dcrmodel.warp.warpExposure`, Lanczos 3), as the template ``"coadd"``.
    coverage : numpy.ndarray, optional
        The training visits' coverage of the visit's frame, if already computed
        (`coverageMap`); default: computed from the training visits' files.
    threshold, border
        See `dcrmodel.diffim.differenceImageMetrics`.

    Returns
    -------
    DetectorVisitEvaluation

    Raises
    ------
    DcrValueError
        If a template is already named ``"coadd"``, the coverage has the wrong shape, or
        no pixel is seen by ``minCoverage`` training visits.
    """
    minCoverage = asInt(minCoverage, "minCoverage")
    if minCoverage < 0:
        raise DcrValueError("minCoverage must be >= 0 (training visits)", minCoverage=minCoverage)
    chosen = dict(templates)
    if includeCoadd and "coadd" in chosen:
        raise DcrValueError("a template is already named 'coadd'; rename it")
    visit = manifest.visit(visitId)
    science = readExposure(manifest.path(visit["file"]))
    truth = readExposure(manifest.path(visit["truthStatic"]))
    box = science.bbox
    if coverage is None:
        training = [manifest.path(v["file"]) for v in manifest.visits("training")]
        coverage = coverageMap(training, science.wcs, box)
    coverage = np.asarray(coverage)
    if coverage.shape != box.shape:
        raise DcrValueError("coverage must have the visit's shape", shape=coverage.shape,
                            bbox=box)
    keep = coverage >= minCoverage
    if not keep.any():
        raise DcrValueError(
            f"no pixel of visit {visitId} is seen by {minCoverage} training visits; lower "
            "minCoverage", visit=visitId, maxCoverage=int(coverage.max()),
        )
    if includeCoadd:
        chosen["coadd"] = warpExposure(readExposure(manifest.coaddPath), science.wcs, box)
    restricted = {name: restrictTemplate(t, keep, box) for name, t in chosen.items()}
    sources = frameCatalogue(manifest["sources"], science.wcs)
    transients = frameCatalogue(manifest.transients(visitId), science.wcs, box)
    rows = [min(max(int(round(t["y"])) - box.minY, 0), box.height - 1) for t in transients]
    columns = [min(max(int(round(t["x"])) - box.minX, 0), box.width - 1) for t in transients]
    inside = [t for t, r, c in zip(transients, rows, columns, strict=True) if keep[r, c]]
    evaluations = evaluateTemplates(science, truth, restricted, sources, inside,
                                    threshold=threshold, border=border)
    outside = len(manifest.transients(visitId)) - len(inside)
    return DetectorVisitEvaluation(evaluations, coverage, minCoverage, int(keep.sum()),
                                   inside, outside)
