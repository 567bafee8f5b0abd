"""One subregion with its DCR buffer, as both solvers see it: the visits' cutouts and the model.

A `Subregion` reads every visit's cutout of the solved box (the tile grown by the DCR buffer)
with its good pixels and DCR shifts (`SubregionVisit`), and cuts the starting model, the
coadd's mask and the model weights to that box; `Subregion.tileArrays` returns the solution.
Each solver is a subclass, which decides how a visit's pixels are held and how the visits
covering a pixel are counted: `dcrmodel.assemble.iterative.IterativeSubregion` (the reference's
iterative forward modelling) and `dcrmodel.assemble.directregion.DirectSubregion` (the direct
per-frequency solver).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..image import Box, Exposure, Image
from ..model import DcrModel
from ..physics import calculateDcr
from .config import DcrAssembleConfig
from .inputs import PreparedRun, VisitInput, goodPixels
from .plaincoadd import addToCoaddSums
from .tiling import subregionTiles

__all__ = ["Subregion", "SubregionVisit"]


@dataclasses.dataclass
class SubregionVisit:
    """One visit's cutout of a subregion's solved box.

    Attributes
    ----------
    input : `dcrmodel.assemble.inputs.VisitInput`
        The visit.
    data : `numpy.ndarray`
        Its image over the solved box, counts (0 at bad pixels and outside the visit).
    weight : `numpy.ndarray`
        float64 weights (iterative solver: the visit's weight on its good pixels) or a
        boolean good-pixel map (direct solver).
    shifts : list
        Per subfilter, the shift applied by the iterative solver and whether the subfilter
        is split in two (`splitShifts`).
    edgeShifts : list
        Per subfilter, the DCR of its two wavelength edges, pixels ``((dy0, dx0), (dy1, dx1))``.
    variance : `numpy.ndarray` or None
        Its variance over the solved box (direct solver only), counts^2.
    """

    input: VisitInput
    data: np.ndarray
    weight: np.ndarray  # float64 weights (iterative) or a boolean good-pixel map (direct)
    shifts: list[tuple[Any, bool]]
    edgeShifts: list
    variance: np.ndarray | None = None


def splitShifts(
    pairs: Sequence, splitSubfilters: bool, splitThreshold: float
) -> list[tuple[Any, bool]]:
    """Turn edge-shift pairs into the shift applied to each subfilter.

    A subfilter is split (two quarter-point shifts) when ``splitSubfilters`` is set and
    the DCR of its two edges differs by more than ``splitThreshold`` pixels; otherwise it
    moves by the mean of its edges' shifts.
    """
    result = []
    for s0, s1 in pairs:
        spread = math.hypot(s1[0] - s0[0], s1[1] - s0[1])
        if splitSubfilters and spread > splitThreshold:
            result.append(((tuple(s0), tuple(s1)), True))
        else:
            result.append((((s0[0] + s1[0]) / 2.0, (s0[1] + s1[1]) / 2.0), False))
    return result


class Subregion:
    """One subregion with its DCR buffer: the visits' cutouts and the model being fitted.

    Parameters
    ----------
    config : `DcrAssembleConfig`
        The settings.
    prepared : `dcrmodel.assemble.inputs.PreparedRun`
        The run's preparation (visits with their weights, band, coadd); its box is the
        model's.
    model : `dcrmodel.model.core.DcrModel`
        The starting model over the preparation's box.
    modelWeights : `numpy.ndarray` or None
        The model weights over the preparation's box (None when not used).
    tile : `dcrmodel.image.Box`
        The subregion, parent pixels; the box solved is the tile grown by the buffer and
        clipped to the model's box.
    index, count : int
        Position of the subregion and number of subregions (for the messages).

    Notes
    -----
    Subclasses say how a visit's pixels are held (`_visitArrays`, with `_takeStacks` for
    stacks of all visits) and count the visits per pixel (`_coverage`).
    """

    def __init__(
        self,
        config: DcrAssembleConfig,
        prepared: PreparedRun,
        model: Any,
        modelWeights: np.ndarray | None,
        tile: Box,
        index: int,
        count: int,
    ) -> None:
        self.config = config
        self.tile = tile
        self.index = index
        self.count = count
        self.n = config.dcrNumSubfilters
        self.bbox = tile.grow(prepared.buffer).clippedTo(prepared.bbox)
        self._cutModel(prepared, model, modelWeights)
        self.visits: list[SubregionVisit] = []
        patch = prepared.bbox

        def regions() -> list[Box]:
            return [tile.grow(prepared.buffer).clippedTo(patch)
                    for tile in subregionTiles(patch, config.subregionSize)]

        # The direct solver works in the inputs' single precision (its normal equations are
        # accumulated in double), on stacks of all visits that its solve takes as they are;
        # the iterative one in double, one visit at a time, as the reference.
        self.pool = None
        self.runScratch = prepared.scratch
        # The plain coadd's sums over the tile, when the run makes it from the subregions'
        # warps (dcrmodel.assemble.plaincoadd)
        self.coaddSums = np.zeros((2, *tile.shape)) if prepared.coaddDeferred else None
        stacks = self._takeStacks(len(prepared.inputs))
        for inp in prepared.inputs:
            self._readVisit(inp, prepared, stacks, regions)
        self._stacks = (
            None if stacks is None else tuple(stack[: len(self.visits)] for stack in stacks)
        )
        self._coverage()

    def _cutModel(self, prepared: PreparedRun, model: Any, modelWeights: np.ndarray | None) -> None:
        """Cut the coadd, its mask, the model weights and the starting model to the box."""
        config = self.config
        inner = self.bbox.slices(prepared.bbox)
        coadd = prepared.coadd
        self.coaddImage = np.array(coadd.image.array[inner], dtype=np.float64)
        self.mask = coadd.mask[self.bbox].clone()
        convergeBits = self.mask.getPlaneBitMask(config.convergenceMaskPlanes)
        self.converge = (self.mask.array & convergeBits) != 0
        self.weights = None if modelWeights is None else modelWeights[inner]
        self.band = prepared.band
        self.statsCtrl = prepared.statsCtrl
        self.psfAware = prepared.psfAware
        self.model = DcrModel(
            [Image(np.array(image.array[inner], dtype=np.float64), bbox=self.bbox)
             for image in model],
            filterInfo=prepared.band,
            psf=model.psf,
            mask=self.mask,
            variance=Image(
                np.array(model.variance.array[inner], dtype=np.float64), bbox=self.bbox
            ),
            photoCalib=coadd.photoCalib,
            wcs=prepared.wcs,
        )

    def _readVisit(
        self,
        inp: VisitInput,
        prepared: PreparedRun,
        stacks: tuple[np.ndarray, ...] | None,
        regions: Callable[[], list[Box]],
    ) -> None:
        """Add a visit's cutout of the solved box to `visits` (unless it has no good pixel)."""
        config = self.config
        cutout = inp.read(self.bbox)
        if cutout is None:
            return
        good = goodPixels(cutout, self.statsCtrl)
        if not good.any():
            return
        if self.coaddSums is not None:
            self._addToCoadd(inp, cutout, good)
        sub = cutout.bbox.slices(self.bbox)
        data, weight, variance = self._visitArrays(inp, cutout, good, sub, stacks)
        np.copyto(data[sub], cutout.image.array, where=good, casting="unsafe")
        pairs = calculateDcr(
            inp.visitInfo,
            inp.wcs,
            prepared.band.effectiveWavelength,
            prepared.band.bandwidth,
            self.n,
            splitSubfilters=True,
            bbox=self.bbox,
            zenith=inp.zenithAt(self.bbox, regions),
        )
        shifts = splitShifts(pairs, config.splitSubfilters, config.splitThreshold)
        self.visits.append(SubregionVisit(inp, data, weight, shifts, pairs, variance))

    def _addToCoadd(self, inp: VisitInput, cutout: Exposure, good: np.ndarray) -> None:
        """Add the part of a visit's cutout in the tile to the plain coadd's sums."""
        box = cutout.bbox.intersection(self.tile)
        if box.isEmpty():
            return
        factor = None if inp.warp is None else inp.warp.noiseFactor
        addToCoaddSums(self.coaddSums[0], self.coaddSums[1], box.slices(self.tile),
                       cutout[box], good[box.slices(cutout.bbox)], factor)

    # ------------------------------------------------------------------ solver hooks
    def _takeStacks(self, numInputs: int) -> tuple[np.ndarray, ...] | None:
        """Return the stacks holding all visits' arrays, or None (one array per visit)."""
        return None

    def _visitArrays(
        self,
        inp: VisitInput,
        cutout: Exposure,
        good: np.ndarray,
        sub: tuple[slice, slice],
        stacks: tuple[np.ndarray, ...] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return a visit's data (to be filled), weight and variance arrays over the box."""
        raise NotImplementedError

    def _coverage(self) -> None:
        """Count the visits covering each pixel per subfilter (``nImages``, ``covered``)."""
        raise NotImplementedError

    # -------------------------------------------------------------------------- store
    def tileArrays(self, modelBox: Box | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the subregion's model over ``modelBox`` and its image counts over the tile.

        The differences between subfilters are amplified by ``accelerateModel`` on the
        way out, as the iterations fitted the data with the amplified model.

        Parameters
        ----------
        modelBox : `dcrmodel.image.Box`, optional
            Part of the solved box to return the model over (the tile grown by the
            blending band); None: the tile.

        Returns
        -------
        modelArrays : `numpy.ndarray`
            ``(N, height, width)`` float64 over ``modelBox``.
        nImages : `numpy.ndarray`
            ``(N, height, width)`` int32 over the tile.
        """
        amplify = self.config.accelerateModel if self.config.solver == "iterative" else 1.0
        outer = (self.tile if modelBox is None else modelBox).slices(self.bbox)
        inner = self.tile.slices(self.bbox)
        arrays = np.array([image.array[outer] for image in self.model], dtype=np.float64)
        if amplify != 1.0:
            mean = np.mean(arrays, axis=0)
            arrays = np.array([mean + amplify * (array - mean) for array in arrays])
        counts = np.array([count[inner] for count in self.nImages], dtype=np.int32)
        return arrays, counts
