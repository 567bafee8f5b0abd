"""``dcrMakeWarp``: each visit's pixels for each patch it overlaps (``dcrWarp``).

The Rubin pipelines resample every calibrated exposure onto the grid of every patch it
overlaps in a step of its own (``makeWarp``) and build the coadd from those warps.
`DcrMakeWarpTask` is that step here: one quantum per visit and patch (instrument, visit,
skymap, tract, patch), made by the quantum graph only for the pairs whose sky regions
overlap (the visit's region from its WCS, written by ``dcrmodel butler ingest``, and the
patch's), reading the visit (``dcrVisitImage``) and the patch's grid (``dcrPatchGrid``),
writing ``dcrWarp``.

What a warp holds
-----------------
- A visit **on the patch's pixel grid** (its WCS puts its box within
  `dcrmodel.image.WCS_GRID_TOLERANCE` pixels of where the patch's does): its pixels inside
  the patch's box, as they are.
- A visit **on its own detector grid** (any pointing, rotation, distortion): the part of the
  visit's own pixels that a warp onto the patch reads (the patch's outline mapped into the
  visit's frame, grown by `SOURCE_MARGIN` pixels), not resampled, with the visit's whole box
  in its header (`dcrmodel.pipeline.handles.VISIT_BOX_KEYS`). `DcrAssembleCoaddTask` warps
  it onto the patch one subregion at a time, as ``dcrmodel assemble --grid`` warps a visit
  file, because the assembly measures a warped visit's weight and its share of the plain
  coadd on the visit's own pixels (`dcrmodel.assemble.placement`: a weight measured on
  resampled pixels would favour visits by their rotation and dither, the kernel sum
  lowering the variance of a warped pixel by 0.2 to 1 depending on its sub-pixel phase).
  A resampled warp would have lost them; this one gives the model of
  ``dcrmodel assemble --grid`` bit for bit, and each subregion reads only its cutout.

A visit whose box does not overlap the patch's box on the sky
(`dcrmodel.warp.boxesOverlap`; the graph's region test is coarser) is skipped with a
warning (`lsst.pipe.base.NoWorkFound`): no ``dcrWarp`` is written and the assembly does not
see it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import lsst.pipe.base.connectionTypes as cT
import numpy as np
from lsst.pipe.base import (
    NoWorkFound,
    PipelineTask,
    PipelineTaskConfig,
    PipelineTaskConnections,
    Struct,
)

from ..errors import DcrValueError
from ..image import WCS_GRID_TOLERANCE, Box, Exposure, wcsGridOffset
from ..warp import WARPING_KERNELS, boxesOverlap, getWarpingKernel, mapPixels
from .handles import VISIT_BOX_KEYS
from .storage import EXPOSURE_STORAGE_CLASS, GRID_STORAGE_CLASS, PatchGrid

__all__ = [
    "SOURCE_MARGIN",
    "DcrMakeWarpConnections",
    "DcrMakeWarpConfig",
    "DcrMakeWarpTask",
    "warpForPatch",
]

_log = logging.getLogger(__name__)

#: Visit pixels kept beyond the patch's outline mapped into the visit's frame: the reach
#: of the widest warping kernel (``size // 2 + 1``), the assembly's own margin (2) and 4
#: more for the curvature of the mapping between the points of the outline.
SOURCE_MARGIN = max(getWarpingKernel(name).size // 2 + 1 for name in WARPING_KERNELS) + 6

#: Patch pixels between the points of its outline mapped into a visit's frame.
_OUTLINE_STEP = 8


def _onGrid(exposure: Exposure, grid: PatchGrid) -> bool:
    try:
        offset = wcsGridOffset(exposure.wcs, grid.wcs, exposure.bbox)
    except Exception:  # astropy raises many kinds for WCSs that cannot be compared
        return False
    return bool(math.isfinite(offset) and offset <= WCS_GRID_TOLERANCE)


def _sourceBox(exposure: Exposure, grid: PatchGrid) -> Box:
    """Return the visit's pixels a warp onto the patch reads, grown by `SOURCE_MARGIN`."""
    box = grid.bbox
    xs = np.unique(np.append(np.arange(box.minX - 0.5, box.maxX + 0.5, _OUTLINE_STEP),
                             box.maxX + 0.5))
    ys = np.unique(np.append(np.arange(box.minY - 0.5, box.maxY + 0.5, _OUTLINE_STEP),
                             box.maxY + 0.5))
    x = np.concatenate([xs, xs, np.full(ys.size, xs[0]), np.full(ys.size, xs[-1])])
    y = np.concatenate([np.full(xs.size, ys[0]), np.full(xs.size, ys[-1]), ys, ys])
    sx, sy = mapPixels(grid.wcs, exposure.wcs, x, y)
    if not (np.all(np.isfinite(sx)) and np.all(np.isfinite(sy))):
        return exposure.bbox  # the outline leaves the visit's projection: keep it all
    outline = Box.fromCorners(
        math.floor(float(sx.min()) + 0.5) - SOURCE_MARGIN,
        math.floor(float(sy.min()) + 0.5) - SOURCE_MARGIN,
        math.floor(float(sx.max()) + 0.5) + SOURCE_MARGIN,
        math.floor(float(sy.max()) + 0.5) + SOURCE_MARGIN,
    )
    return outline.intersection(exposure.bbox)


def warpForPatch(exposure: Exposure, grid: PatchGrid, name: str = "the visit") -> Exposure:
    """Return what the ``dcrWarp`` of a visit for a patch holds (module notes).

    Parameters
    ----------
    exposure : dcrmodel.image.Exposure
        The visit, with a celestial WCS.
    grid : PatchGrid
        The patch's grid.
    name : str, optional
        The visit's name, for messages.

    Returns
    -------
    dcrmodel.image.Exposure
        On the patch's grid: the visit's pixels inside the patch's box. Otherwise: the
        part of the visit that a warp onto the patch reads, on the visit's grid, with the
        visit's whole box in its header (`VISIT_BOX_KEYS`).

    Raises
    ------
    lsst.pipe.base.NoWorkFound
        If the visit does not overlap the patch.
    DcrValueError
        If the visit has no WCS.
    """
    if exposure.wcs is None:
        raise DcrValueError(f"{name} has no WCS; it cannot be placed on a patch", visit=name)
    if _onGrid(exposure, grid):
        box = exposure.bbox.intersection(grid.bbox)
        if box.isEmpty():
            raise NoWorkFound(f"{name} does not overlap the patch's box {grid.bbox}")
        return exposure if box == exposure.bbox else exposure[box]
    if not boxesOverlap(exposure.wcs, exposure.bbox, grid.wcs, grid.bbox):
        raise NoWorkFound(f"{name} does not overlap the patch's box {grid.bbox} on the sky")
    source = _sourceBox(exposure, grid)
    if source.isEmpty():
        raise NoWorkFound(f"{name} has no pixel that a warp onto the patch reads")
    header = exposure.metadata.copy()
    whole = exposure.bbox
    comments = ("first column of the visit (parent pixels)",
                "first row of the visit (parent pixels)",
                "visit width (pixels)", "visit height (pixels)")
    for key, value, comment in zip(
        VISIT_BOX_KEYS, (whole.minX, whole.minY, whole.width, whole.height), comments,
        strict=True,
    ):
        header[key] = (int(value), comment)
    cutout = exposure[source]
    return Exposure(cutout.maskedImage, wcs=exposure.wcs, psf=exposure.psf,
                    visitInfo=exposure.visitInfo, filter=exposure.filter,
                    photoCalib=exposure.photoCalib, metadata=header)


class DcrMakeWarpConnections(
    PipelineTaskConnections, dimensions=("instrument", "visit", "skymap", "tract", "patch")
):
    """Connections of `DcrMakeWarpTask`."""

    visitImages = cT.Input(
        doc="The visit's detector images (dcrmodel Exposures on their own WCS).",
        name="dcrVisitImage",
        storageClass=EXPOSURE_STORAGE_CLASS,
        dimensions=("instrument", "visit", "detector"),
        multiple=True,
        deferLoad=True,
    )
    patchGrid = cT.PrerequisiteInput(
        doc="The patch's pixel grid (WCS and box).",
        name="dcrPatchGrid",
        storageClass=GRID_STORAGE_CLASS,
        dimensions=("skymap", "tract", "patch"),
    )
    warp = cT.Output(
        doc="The visit's pixels for the patch (on the patch's grid or, cut, on its own).",
        name="dcrWarp",
        storageClass=EXPOSURE_STORAGE_CLASS,
        dimensions=("instrument", "visit", "skymap", "tract", "patch"),
    )


class DcrMakeWarpConfig(PipelineTaskConfig, pipelineConnections=DcrMakeWarpConnections):
    """Configuration of `DcrMakeWarpTask` (it has no settings of its own)."""


class DcrMakeWarpTask(PipelineTask):
    """Write a visit's pixels for one patch it overlaps (`warpForPatch`)."""

    ConfigClass = DcrMakeWarpConfig
    _DefaultName = "dcrMakeWarp"

    def runQuantum(self, butlerQC: Any, inputRefs: Any, outputRefs: Any) -> None:
        """Read the visit and the patch's grid, write the warp (or skip, warned)."""
        handles = butlerQC.get(inputRefs.visitImages)
        grid = butlerQC.get(inputRefs.patchGrid)
        dataId = butlerQC.quantum.dataId
        name = f"visit {dataId['visit']}"
        try:
            result = self.run(handles, grid, name)
        except NoWorkFound as skip:
            _log.warning("%s; no dcrWarp for patch %s of tract %s", skip, dataId["patch"],
                         dataId["tract"])
            raise
        butlerQC.put(result.warp, outputRefs.warp)

    def run(self, visitImages: Sequence[Any], grid: PatchGrid, name: str = "the visit") -> Struct:
        """Make the warp of one visit for one patch.

        Parameters
        ----------
        visitImages : sequence of handles or dcrmodel.image.Exposure
            The visit's detector images: one (dcrmodel's instruments have one detector).
        grid : PatchGrid
            The patch's grid.
        name : str, optional
            The visit's name, for messages.

        Returns
        -------
        lsst.pipe.base.Struct
            ``warp`` (dcrmodel.image.Exposure).

        Raises
        ------
        lsst.pipe.base.NoWorkFound
            If the visit does not overlap the patch.
        DcrValueError
            If the visit has several detector images, or none.
        """
        if len(visitImages) != 1:
            raise DcrValueError(
                f"{name} has {len(visitImages)} detector images; dcrMakeWarp takes a visit "
                "of one detector", visit=name,
            )
        (visit,) = visitImages
        exposure = visit if isinstance(visit, Exposure) else visit.get()
        return Struct(warp=warpForPatch(exposure, grid, name))
