"""Build a DCR model of the sky from many exposures (DCR coadd assembly).

`DcrAssembleCoadd` implements the iterative forward-modelling algorithm of DMTN-037
(I. Sullivan, "DCR-matched template generation", https://dmtn-037.lsst.io):

1. Start from a plain coadd of the inputs (given, or an inverse-variance weighted mean of
   their good pixels) split evenly among the subfilters (`DcrModel.fromImage`).
2. Work on one subregion at a time, solved with a border (the DCR buffer) so that shifts
   near its edges see real data; only the inputs' cutouts of that region are in memory.
   The direct solver's neighbouring subregions are blended across their joins
   (`featherWidth`, `stitchWeights`); the iterative solver's are cut at them.
3. Each visit's good pixels, weighted, are shifted back like the residuals will be: their
   sum per subfilter normalises the model update, and the number of visits covering a
   pixel is the subfilter's ``nImage``.
4. Each iteration forward-models every visit (`DcrModel.buildMatchedTemplate`, with the
   differences between subfilters amplified by ``accelerateModel``), takes the weighted
   residuals, shifts them back by each subfilter's DCR and adds their normalised sum to
   that subfilter. The new solution is clamped against the previous iteration
   (`DcrModel.regularizeModelIter`) and between subfilters
   (`DcrModel.regularizeModelFreq`), averaged with the previous solution by a gain
   (`DcrModel.conditionDcrModel`), and tapered to the plain coadd away from detected
   sources (the model weights).
5. A convergence metric (the mean absolute residual of the visits relative to the data,
   weighted towards significant pixels) decides when to stop; the gain grows from its
   base value when the history shows the iterations behaving as predicted.

The output model carries the subfilter differences amplified by ``accelerateModel``, as
the iterations fit the data with the amplified model.

The default solver is the direct one (`dcrmodel.assemble.direct`): the forward model is linear and
diagonal in Fourier space, so the least-squares model is solved per spatial frequency. It
is PSF-aware (``usePsf``, the default): visit ``j`` sees subfilter ``k`` through the smear of
its DCR times its own PSF at the subfilter's central wavelength (size scaled by
``(lambda_k / lambda_eff) ** alpha``) divided by the model's PSF
(`dcrmodel.psf.psfMatchingTransfer`, damped where the visit is sharper than the model), and
the model's images are the sky seen through the model PSF (``modelPsf``: by default the
sharpest input PSF at the subfilter where it is sharpest), with a per-frequency ridge
pulling the model toward 0 where that PSF has no power (`dcrmodel.psf.modelPsfRidge`).
Inputs without a PSF get one estimated from their stars (`dcrmodel.psf.estimatePsf`,
warned and recorded in the summary). The iterative solver and the direct one with
``usePsf=False`` assume every visit has the same PSF; they warn (`DcrPsfWarning`) when the
inputs' FWHMs range over more than 40 % (DMTN-121 found the reference's templates degrade
beyond about 46 %).

`writeResults` writes one ``dcrCoadd`` exposure per subfilter, the stacked coadd, the
per-subfilter image counts and a JSON summary, atomically. `assembleFromFiles` does a
whole run from exposure files, for the command line.

This module orchestrates a run; its steps live beside it: the checks of the inputs and the
plain coadd in `dcrmodel.assemble.inputs`, the model's grid and the visits warped onto it
(visits on their own detector grids) in `dcrmodel.assemble.placement`, the subregions and
their joins in
`dcrmodel.assemble.tiling`, the plan of a run in `dcrmodel.assemble.plan`, a subregion's
cutouts in `dcrmodel.assemble.subregion`, the iterative solver (steps 3 to 5) in
`dcrmodel.assemble.iterative`, the direct one in `dcrmodel.assemble.direct` (on a subregion:
`dcrmodel.assemble.directregion`) and the outputs in `dcrmodel.assemble.output`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from .._validate import asPathList, refuseFolders
from ..atomic import holdsOutputLock
from ..errors import DcrError, DcrPsfWarning, DcrTypeError, DcrValueError
from ..image import Box, Exposure, Filter, Image, Mask, Psf, StatisticsControl
from ..model import LOW_COVERAGE_PLANE, DcrModel
from ..physics import wavelengthGenerator
from ..progress import ProgressCallback, reportProgress
from ..psf import modelPsfFor, validatePsf
from ..warp import getWarpingKernel
from .config import DcrAssembleConfig
from .direct import solveDirectFromShifts
from .directregion import DirectSubregion
from .inputs import (
    PreparedRun,
    VisitInput,
    bandOf,
    checkBadMaskPlanes,
    checkFinite,
    checkMetadata,
    computedCoadd,
    estimateMissingPsf,
    goodPixels,
    loadCoadd,
    measureDcr,
    measureZeniths,
    openInputs,
    prepareGivenCoadd,
    usableInputs,
)
from .iterative import IterativeSubregion
from .output import (
    AssembleResult,
    checkOutputFolder,
    flagLowCoverage,
    runSummary,
    stackedCoadd,
    writeResults,
)
from .placement import modelGrid, placeVisits, resolveGrid, visitStatistics
from .plaincoadd import addToCoaddSums, deferredCoadd, defersCoadd, placeholderCoadd
from .plan import AssemblyPlan, SubregionResult, SubregionTask
from .subfilters import MIN_AUTO_SUBFILTERS, SubfilterChoice, chooseSubfilters
from .tiling import automaticBuffer, featherWidth, stitchWeights, subregionTiles

__all__ = [
    "DcrAssembleCoadd",
    "assembleSubregion",
    "assembleFromFiles",
    "SEEING_RANGE_LIMIT",
]

_log = logging.getLogger(__name__)

#: Seeing range (largest over smallest input FWHM, minus 1) above which a PSF-unaware model
#: is warned about: DMTN-121 found the reference algorithm's templates degrade beyond ~46 %.
SEEING_RANGE_LIMIT = 0.4


def assembleSubregion(
    task: SubregionTask, progress: ProgressCallback | None = None
) -> SubregionResult:
    """Solve one subregion with its DCR buffer: the unit of work of an assembly.

    `DcrAssembleCoadd.run` calls this for every subregion in turn, and
    `dcrmodel.distributed.runner` in worker processes. Only the visits' cutouts of the solved box
    are read.

    Parameters
    ----------
    task : SubregionTask
        The subregion (`AssemblyPlan.subregionTask`).
    progress : callable, optional
        Called after each iteration of the iterative solver (see `DcrAssembleCoadd.run`).

    Returns
    -------
    SubregionResult
        The model and image counts of the subregion without its buffer, and its record.

    Raises
    ------
    DcrTypeError
        If ``task`` is not a `SubregionTask`.
    """
    if not isinstance(task, SubregionTask):
        raise DcrTypeError("task must be a SubregionTask", task=type(task).__name__)
    solve = solveDirectFromShifts if task.config.solver == "direct" else None
    tic = time.perf_counter()
    arguments = (task.config, task.prepared, task.model, task.modelWeights, task.tile,
                 task.index, task.count)
    region: DirectSubregion | IterativeSubregion
    if solve is not None:
        region = DirectSubregion(*arguments)
        record = region.solveDirect(solve)
    else:
        region = IterativeSubregion(*arguments)
        record = region.solveIterative(progress)
    feather = featherWidth(task.prepared.buffer, task.config.solver)
    modelBox = task.tile.grow(feather).clippedTo(task.bbox)
    modelArrays, nImages = region.tileArrays(modelBox)
    record["seconds"] = time.perf_counter() - tic
    return SubregionResult(
        index=task.index,
        tile=task.tile,
        modelArrays=modelArrays,
        nImages=nImages,
        summary=record,
        bbox=modelBox,
        coaddSums=region.coaddSums,
    )


def _startingModel(config: DcrAssembleConfig, prepared: PreparedRun) -> DcrModel:
    """Return the model a run starts from: its plain coadd split evenly among subfilters."""
    coaddExposure = prepared.coadd
    return DcrModel.fromImage(
        coaddExposure.maskedImage,
        config.dcrNumSubfilters,
        filterInfo=prepared.band,
        psf=prepared.modelPsf if prepared.psfAware else coaddExposure.psf,
        photoCalib=coaddExposure.photoCalib,
        wcs=prepared.wcs,
    )


class DcrAssembleCoadd:
    """Build a `DcrModel` from exposures of one patch of sky (DMTN-037).

    Parameters
    ----------
    config : `DcrAssembleConfig`, optional
        The settings; defaults when None.

    Notes
    -----
    Choices made where DMTN-037 leaves room, all documented here:

    - Each subregion is solved on its own, with its own convergence history and gains, as
      in the reference pipelines; with convergence-based stopping two subregions may stop
      after different numbers of iterations. With a fixed number of iterations the
      subregions join without seams once the buffer is at least twice the largest DCR
      shift (the default, see `DcrAssembleConfig.subregionBuffer`), since each iteration
      moves information by one shift forwards and one back.
    - The direct solver's subregions return their model over the tile grown by half the
      buffer, and `finish` blends neighbours across each join with weights that add up to
      1 (`stitchWeights`): its subfilter images carry components no training visit sees,
      different in each subregion's solution, which a hard cut turns into steps in the
      templates of new visits (about one noise sigma on the test fields; 0.08 blended).
      The image counts (``nImage``) are cut at the joins.
    - The convergence metric of a model and the next update use the same forward-modelled
      templates, so each iteration forward-models every visit once.
    - On divergence (the metric rises after the minimum number of iterations) the model
      of the previous iteration, the better one, is kept.
    - The sources over which convergence is measured are the coadd's convergence mask
      planes (DETECTED), combined with each visit's good pixels; the visits' metrics are
      combined with the visits' weights.
    - A pixel's ``nImage`` in a subfilter counts the visits whose good pixels, shifted back
      by that subfilter's DCR, cover at least half of it. The model is updated only where
      every subfilter has at least one visit; elsewhere it keeps the evenly split coadd
      and ``nImage`` is 0.
    - The statistics of each visit (its weight: the inverse mean variance of its good
      pixels, times the airmass with ``doAirmassWeight``) and the plain coadd, when none is
      given, come from one pass over the inputs, one subregion at a time; a visit warped
      onto the grid is measured on its own pixels, read once. With the direct solver and
      visits to warp, the plain coadd is summed instead by the subregions from the warps
      they make for their solve, and made by `finish` (`dcrmodel.assemble.plaincoadd`):
      each visit is warped once per subregion.
    - PSFs are checked before any work (chromatic exponent in [-1, 1]; for the PSF-aware
      solver, kernels no larger than their exposure at any subfilter's wavelength; PSF HDUs
      that are even-sized, off-centre, of non-positive sum or non-finite are refused when
      the files are opened). Missing PSFs are estimated then too, with the chromatic
      exponent 0 (one broadband image cannot measure it); a visit with fewer than 3 usable
      stars is an error naming it.
    - The PSF-aware model's PSF is the returned model's ``psf`` and the stacked coadd's.

    Examples
    --------
    >>> task = DcrAssembleCoadd(DcrAssembleConfig(dcrNumSubfilters=3))  # doctest: +SKIP
    >>> result = task.run(["visit1.fits", "visit2.fits", ...])  # doctest: +SKIP
    >>> template = result.dcrModel.buildMatchedTemplate(newExposure)  # doctest: +SKIP
    """

    def __init__(self, config: DcrAssembleConfig | None = None) -> None:
        if config is None:
            config = DcrAssembleConfig()
        if not isinstance(config, DcrAssembleConfig):
            raise DcrTypeError(
                "config must be a DcrAssembleConfig", config=type(config).__name__
            )
        config.validate()
        self.config = config

    # --------------------------------------------------------------------------- run
    def run(
        self,
        exposures: Sequence[Exposure | str | os.PathLike],
        coadd: Exposure | str | os.PathLike | None = None,
        grid: Any = None,
        progress: ProgressCallback | None = None,
    ) -> AssembleResult:
        """Build the DCR model.

        Parameters
        ----------
        exposures : sequence of `Exposure` or path
            The visits: in-memory exposures, or paths of exposure files (Rubin layout)
            that are read one subregion at a time, each with a celestial WCS, a
            `VisitInfo` and (unless the configuration sets the band) a filter. A visit on
            the model's pixel grid is used as it is; a visit on another grid (a detector
            frame) is warped onto it one subregion at a time
            (`dcrmodel.assemble.placement`); a visit that does not overlap the grid is left
            out with a warning. Without a ``grid`` or ``coadd`` every visit must be on the
            first visit's grid.
        coadd : `Exposure` or path, optional
            A plain coadd of the same patch to start from; its box and WCS are the model's
            grid (unless ``grid`` is given, which it must then agree with) and its DETECTED
            pixels mark the sources. None: computed from the (warped) inputs
            (inverse-variance weighted mean of their good pixels, sources detected at
            ``config.detectionThreshold`` sigma).
        grid : tuple or str or path, optional
            The model's grid: ``(astropy.wcs.WCS, Box)``, the path of an exposure file whose
            IMAGE header gives them, or ``"RA,DEC,WIDTH,HEIGHT,SCALE"`` (degrees, degrees,
            pixels, pixels, arcsec per pixel) for a North-up, East-left tangent-plane patch
            (`dcrmodel.assemble.placement.resolveGrid`). None: the coadd's grid, else the
            box covering every visit on the first visit's WCS.
        progress : callable, optional
            Called with a dict after each iteration: ``subregion`` (index) and
            ``nSubregions``, ``finished`` False, ``iteration``, ``convergence`` (None when
            not computed) and ``gain``; and once a subregion is done: ``subregion``,
            ``nSubregions``, ``finished`` True, ``iterations`` and ``stopReason``.

        Returns
        -------
        AssembleResult
            The model, the stacked coadd, the per-subfilter image counts and the summary.

        Raises
        ------
        DcrTypeError
            For inputs that are neither exposures nor paths.
        DcrValueError
            For fewer visits than subfilters, missing files, unmasked non-finite pixels,
            all pixels masked, visits in different bands, a PSF whose chromatic exponent is
            outside [-1, 1], or (PSF-aware solver) a visit without a PSF whose stars cannot
            give one.
        DcrFitsError
            For a PSF HDU that is not a valid PSF image (even-sized, off-centre,
            non-positive sum, non-finite).
        DcrMetadataError
            For a visit without the WCS, visit info or band DCR needs (named).
        DcrShapeError
            Without a ``grid`` or ``coadd``, for a visit that is not on the first visit's
            grid; (PSF-aware solver) for a PSF kernel larger than its exposure.
        DcrValueError
            Also for a malformed ``grid``, a ``coadd`` and ``grid`` that disagree, a visit
            to be warped whose WCS is not celestial, no visit overlapping the grid, or fewer
            overlapping visits than subfilters.
        DcrConfigError
            For an unknown mask plane, or ``solver="direct"`` when `dcrmodel.assemble.direct` is
            not installed.

        Warns
        -----
        DcrPsfWarning
            For each visit whose PSF had to be estimated (PSF-aware solver), and when a
            PSF-unaware solver gets inputs whose seeing ranges over more than 40 %.
        DcrWarning
            For each visit that does not overlap the model's grid (left out).
        """
        plan = self.planSubregions(exposures, coadd, grid)
        tic = time.perf_counter()
        results = []
        for index in range(plan.numSubregions):
            result = assembleSubregion(plan.subregionTask(index), progress)
            results.append(result)
            stopReason = result.summary.get("stopReason")
            reportProgress(
                progress,
                f"subregion {index + 1} done ({stopReason or ''})",
                index + 1,
                plan.numSubregions,
                subregion=index,
                nSubregions=plan.numSubregions,
                finished=True,
                iterations=result.summary.get("iterations"),
                stopReason=stopReason,
            )
        return self.finish(plan, results, timings={"solve": time.perf_counter() - tic})

    def planSubregions(
        self,
        exposures: Sequence[Exposure | str | os.PathLike],
        coadd: Exposure | str | os.PathLike | None = None,
        grid: Any = None,
    ) -> AssemblyPlan:
        """Check the inputs, compute the plain coadd and split the patch into subregions.

        The first step of `run`: every check of the inputs, one pass over the visits for
        their weights and the plain coadd, the starting model and the model weights. The
        subregions of the plan are then solved independently (`assembleSubregion`) and
        stitched by `finish`.

        Parameters
        ----------
        exposures, coadd, grid
            As in `run`.

        Returns
        -------
        AssemblyPlan
            The prepared run.

        Raises
        ------
        DcrError
            For the bad inputs listed in `run`, before any subregion is solved.
        """
        start = time.perf_counter()
        prepared, config, choice = self._prepare(exposures, coadd, grid)
        plan = AssemblyPlan(
            config=config,
            prepared=prepared,
            model=_startingModel(config, prepared),
            modelWeights=self._modelWeights(prepared.coadd.mask),
            tiles=subregionTiles(prepared.bbox, config.subregionSize),
            timings={},
            subfilters=choice.toDict(),
        )
        # The zenith directions of every visit at every subregion, in one transform.
        measureZeniths(prepared.inputs, [plan.solvedBox(i) for i in range(plan.numSubregions)])
        plan.timings["prepare"] = time.perf_counter() - start
        return plan

    def finish(
        self,
        plan: AssemblyPlan,
        results: Sequence[SubregionResult],
        timings: dict[str, float] | None = None,
    ) -> AssembleResult:
        """Stitch the solved subregions of a plan into the run's result.

        Parameters
        ----------
        plan : AssemblyPlan
            The plan (`planSubregions`); its starting model becomes the result's model.
        results : sequence of SubregionResult
            One per subregion of the plan, in any order.
        timings : dict, optional
            Further timings in seconds for the summary (for example ``"solve"``).

        Returns
        -------
        AssembleResult
            The model, the stacked coadd, the per-subfilter image counts and the summary.

        Raises
        ------
        DcrTypeError
            If an item of ``results`` is not a `SubregionResult`.
        DcrValueError
            If the results do not cover every subregion of the plan exactly once.
        """
        tic = time.perf_counter()
        byIndex = self._checkResults(plan, results)
        model = plan.model
        config = plan.config
        prepared = plan.prepared
        if prepared.coaddDeferred:
            # The plain coadd from the subregions' own warps (dcrmodel.assemble.plaincoadd)
            coaddExposure = deferredCoadd(
                config, prepared, plan.tiles,
                [byIndex[i].coaddSums for i in range(plan.numSubregions)])
            prepared = dataclasses.replace(prepared, coadd=coaddExposure, coaddDeferred=False)
            model = _startingModel(config, prepared)
        n = config.dcrNumSubfilters
        bbox = prepared.bbox
        feather = plan.feather
        # Every subregion started from the evenly split coadd, also in its buffer: the
        # solutions go to a separate set of images, never read back. Neighbouring
        # solutions are blended across each join (`stitchWeights`); the weights add up to
        # 1, and dividing by their sum also covers results that hold only their tile.
        total = np.zeros((n, *bbox.shape))
        weightSum = np.zeros(bbox.shape)
        nImages = [Image(np.zeros(bbox.shape, dtype=np.float32), bbox=bbox) for _ in range(n)]
        for index in range(plan.numSubregions):
            result = byIndex[index]
            box = result.modelBox
            weight = stitchWeights(result.tile, box, bbox, feather)
            outer = box.slices(bbox)
            total[(slice(None), *outer)] += weight * result.modelArrays
            weightSum[outer] += weight
            inner = result.tile.slices(bbox)
            for k in range(n):
                nImages[k].array[inner] = result.nImages[k]
        for k in range(n):
            model[k] = Image(total[k] / weightSum, bbox=bbox)
        stacked = stackedCoadd(model, prepared)
        lowCoverage = flagLowCoverage(nImages, config.resolveMinCoverage(), [model.mask])
        allTimings = dict(plan.timings)
        allTimings.update(timings or {})
        allTimings.setdefault("total", sum(allTimings.values()) + time.perf_counter() - tic)
        summary = runSummary(
            config, prepared, [byIndex[i].summary for i in range(plan.numSubregions)],
            allTimings,
        )
        summary["subfilters"] = dict(plan.subfilters)
        summary["coverage"] = {
            "minCoverage": config.resolveMinCoverage(),
            "plane": LOW_COVERAGE_PLANE,
            "lowCoverageFraction": float(lowCoverage.mean()),
        }
        return AssembleResult(dcrModel=model, coadd=stacked, nImages=nImages, summary=summary)

    def _checkResults(
        self, plan: AssemblyPlan, results: Sequence[SubregionResult]
    ) -> dict[int, SubregionResult]:
        """Return the results by subregion index, once each checked against the plan."""
        byIndex: dict[int, SubregionResult] = {}
        for result in results:
            if not isinstance(result, SubregionResult):
                raise DcrTypeError(
                    "results must be SubregionResults", result=type(result).__name__
                )
            if result.index in byIndex or not 0 <= result.index < plan.numSubregions:
                raise DcrValueError(
                    "results must hold each subregion of the plan once", index=result.index
                )
            if result.tile != plan.tiles[result.index]:
                raise DcrValueError(
                    "a result's subregion is not the plan's; was it solved for another plan?",
                    index=result.index,
                    tile=result.tile,
                    expected=plan.tiles[result.index],
                )
            byIndex[result.index] = result
        missing = [i for i in range(plan.numSubregions) if i not in byIndex]
        if missing:
            raise DcrValueError(
                f"{len(missing)} subregion(s) of the plan have no result", missing=missing[:10]
            )
        n = plan.config.dcrNumSubfilters
        bbox = plan.prepared.bbox
        for result in byIndex.values():
            box = result.modelBox
            if (
                not box.contains(result.tile)
                or not bbox.contains(box)
                or result.modelArrays.shape != (n, *box.shape)
                or result.nImages.shape != (n, *result.tile.shape)
                or (result.coaddSums is not None
                    and result.coaddSums.shape != (2, *result.tile.shape))
            ):
                raise DcrValueError(
                    "a result's arrays do not match its boxes; was it solved for another plan?",
                    index=result.index,
                    bbox=box,
                    modelShape=result.modelArrays.shape,
                )
        return byIndex

    # ----------------------------------------------------------------------- prepare
    def _prepare(
        self, exposures: Any, coadd: Any, grid: Any
    ) -> tuple[PreparedRun, DcrAssembleConfig, SubfilterChoice]:
        """Check the inputs, measure their DCR, PSFs and weights, make the plain coadd.

        The checks run in this order, before any pass over the pixels: the visits, the
        grid, the coadd, the bad mask planes, the visits' metadata and band, their place on
        the model's grid (`placeVisits`: on it, warped onto it, or left out), their DCR, a
        tiny template with the run's settings and the PSFs. Then the number of subfilters
        is chosen (``"auto"``) or checked (`chooseSubfilters`), and the run's configuration
        (with that number) is returned beside the preparation and the choice. (One long
        function: its steps must run in this order, each using the last one's results.)
        """
        config = self.config
        n = config.leastNumSubfilters()
        inputs = openInputs(exposures, n)
        givenGrid = resolveGrid(grid)
        coaddGiven = coadd is not None
        if coaddGiven:
            coadd = loadCoadd(coadd)
            config.validate(mask=coadd.mask)
        checkBadMaskPlanes(inputs, config.badMaskPlanes)
        for inp in inputs:
            checkMetadata(inp, config.doAirmassWeight)
        band = bandOf(config, inputs, coadd)
        bbox, refWcs, gridSource = modelGrid(inputs, coadd if coaddGiven else None, givenGrid)
        kernel = getWarpingKernel(config.warpingKernel)
        placement = placeVisits(inputs, bbox, refWcs, kernel.name, gridSource != "visits",
                                kernel.size // 2 + 1)
        inputs = placement.inputs
        if len(inputs) < n:
            raise DcrValueError(
                f"only {len(inputs)} visits overlap the model's grid, fewer than the {n} "
                "subfilters",
                nVisits=len(inputs),
                dcrNumSubfilters=n,
                skipped=placement.skipped[:10],
            )

        # DCR of every visit at the centre of the patch: for the buffer and the summary.
        maxShift = measureDcr(inputs, band, bbox, n)
        self._preflight(inputs[0], band, bbox, n)
        psfAware, modelPsf, psfSummary = self._preparePsfs(inputs, band, bbox, n)
        choice = self._chooseSubfilters(inputs, band, bbox, psfAware, modelPsf, coadd)
        if config.autoSubfilters:
            config = config.withSubfilters(choice.number)
        if choice.number != n:
            n = choice.number
            maxShift, modelPsf, psfSummary = self._useSubfilters(
                inputs, band, bbox, n, psfAware, modelPsf, psfSummary)

        badPlanes = config.badMaskPlanes
        if placement.numWarped and "NO_DATA" not in badPlanes:
            # Outside its footprint a warped visit has no pixels: never data.
            badPlanes = (*badPlanes, "NO_DATA")
        statsCtrl = StatisticsControl(badMaskPlanes=badPlanes)
        deferred = defersCoadd(config, coadd, placement.numWarped)
        coaddExposure = self._statisticsPass(inputs, bbox, statsCtrl,
                                             coadd if coaddGiven else None, deferred)
        if not coaddGiven and not deferred:
            coaddExposure = Exposure(
                coaddExposure.maskedImage,
                wcs=refWcs,
                psf=inputs[0].psf,
                filter=band,
                photoCalib=inputs[0].photoCalib,
            )
        if self.config.autoSubfilters:
            usable = usableInputs(inputs, config.withSubfilters(MIN_AUTO_SUBFILTERS), bbox)
            if len(usable) < n:
                # Visits without usable pixels left too few for the number chosen.
                choice = self._chooseSubfilters(usable, band, bbox, psfAware, modelPsf, coadd)
                config = self.config.withSubfilters(choice.number)
                n = choice.number
                maxShift, modelPsf, psfSummary = self._useSubfilters(
                    usable, band, bbox, n, psfAware, modelPsf, psfSummary)
        else:
            usable = usableInputs(inputs, config, bbox)
        buffer = (automaticBuffer(maxShift, config.solver) if config.subregionBuffer is None
                  else config.subregionBuffer)
        prepared = PreparedRun(
            inputs=usable,
            band=band,
            bbox=bbox,
            wcs=refWcs,
            buffer=buffer,
            coadd=coaddExposure,
            coaddGiven=coaddGiven,
            statsCtrl=statsCtrl,
            leftOut=[inp.name for inp in inputs if inp.goodPixels == 0],
            psfAware=psfAware,
            modelPsf=modelPsf,
            psfSummary=psfSummary,
            gridSource=gridSource,
            skipped=placement.skipped,
            coaddDeferred=deferred,
        )
        return prepared, config, choice

    def _chooseSubfilters(
        self,
        inputs: list[VisitInput],
        band: Filter,
        bbox: Box,
        psfAware: bool,
        modelPsf: Psf | None,
        coadd: Exposure | None,
    ) -> SubfilterChoice:
        """Choose (``"auto"``) or check the number of subfilters; log the reason.

        The model PSF is the PSF-aware model's (as chosen for the least number of
        subfilters); otherwise the model's PSF is the given coadd's, else the first
        visit's, else the sharpest input PSF.
        """
        if psfAware and modelPsf is not None:
            psf = modelPsf
        elif coadd is not None and coadd.psf is not None:
            psf = coadd.psf
        else:
            known = [inp.psf for inp in inputs if inp.psf is not None]
            psf = inputs[0].psf if inputs[0].psf is not None else (
                min(known, key=lambda p: float(p.fwhm)) if known else None)
        fwhm = None if psf is None else float(psf.fwhm)
        choice = chooseSubfilters(self.config.dcrNumSubfilters, inputs, band, bbox, fwhm)
        _log.info("%s", choice.reason)
        return choice

    def _useSubfilters(
        self,
        inputs: list[VisitInput],
        band: Filter,
        bbox: Box,
        n: int,
        psfAware: bool,
        modelPsf: Psf | None,
        psfSummary: dict[str, Any],
    ) -> tuple[float, Psf | None, dict[str, Any]]:
        """Redo the steps that depend on the number of subfilters for ``n`` of them.

        The visits' DCR, the preflight template and (PSF-aware) the model PSF; returns the
        largest DCR shift (pixels), the model PSF and the PSF summary.
        """
        maxShift = measureDcr(inputs, band, bbox, n)
        self._preflight(inputs[0], band, bbox, n)
        if psfAware:
            _, modelPsf, psfSummary = self._preparePsfs(inputs, band, bbox, n)
        return maxShift, modelPsf, psfSummary

    def _preparePsfs(
        self, inputs: list[VisitInput], band: Filter, bbox: Box,
        numSubfilters: int | None = None,
    ) -> tuple[bool, Psf | None, dict[str, Any]]:
        """Check the inputs' PSFs, estimate missing ones, choose the model PSF.

        Returns whether the forward model is PSF-aware, the model PSF (None if not; chosen
        over the centres of ``numSubfilters`` subfilters, by default the configuration's
        or, for ``"auto"``, 3) and the PSF part of the run summary.
        """
        config = self.config
        if numSubfilters is None:
            numSubfilters = config.leastNumSubfilters()
        aware = config.solver == "direct" and config.usePsf
        centres = [
            0.5 * (lo + hi)
            for lo, hi in wavelengthGenerator(
                band.effectiveWavelength, band.bandwidth, numSubfilters
            )
        ]
        for inp in inputs:
            if inp.psf is None:
                continue
            try:
                # The kernel's size matters only where the forward model convolves with it;
                # the image as given must fit (its rescaled copies at the subfilters'
                # wavelengths only need the grid padding, see effectiveKernelSize).
                shape = inp.bbox.shape if aware else None
                validatePsf(inp.psf, shape, None, band.effectiveWavelength)
            except DcrError as exc:
                raise type(exc)(f"{inp.name}: {exc.message}", **exc.values) from exc
        missing = [inp for inp in inputs if inp.psf is None]
        if aware:
            for inp in missing:
                estimateMissingPsf(inp, band, bbox)
        known = [inp for inp in inputs if inp.psf is not None]
        fwhms = [float(inp.psf.fwhm) for inp in known]
        seeingRange = max(fwhms) / min(fwhms) - 1.0 if fwhms else None
        summary: dict[str, Any] = {
            "psfAware": aware,
            "seeingRange": seeingRange,
            "estimated": {inp.name: inp.psfEstimate for inp in inputs if inp.psfEstimate},
        }
        if not aware:
            if seeingRange is not None and seeingRange > SEEING_RANGE_LIMIT:
                what = (
                    "the iterative solver"
                    if config.solver == "iterative"
                    else "the direct solver with usePsf=False"
                )
                warnings.warn(
                    f"the inputs' seeing ranges over {100 * seeingRange:.0f} % (FWHM "
                    f"{min(fwhms):.2f} to {max(fwhms):.2f} pixels), but {what} assumes every "
                    "visit has the same PSF: its templates degrade beyond about "
                    f"{100 * SEEING_RANGE_LIMIT:.0f} %; use solver='direct' (PSF-aware)",
                    DcrPsfWarning,
                    stacklevel=4,
                )
            elif missing and seeingRange is None:
                _log.debug("no input has a PSF: the seeing range is not checked")
            return False, None, summary
        modelPsf = modelPsfFor(
            [inp.psf for inp in inputs], config.modelPsf, centres, band.effectiveWavelength
        )
        summary["modelPsf"] = {
            "policy": config.modelPsf,
            "type": type(modelPsf).__name__,
            "fwhm": float(modelPsf.fwhm),
        }
        _log.info(
            "PSF-aware model: seeing FWHM %.2f-%.2f px, model PSF FWHM %.2f px (%s)",
            min(fwhms),
            max(fwhms),
            modelPsf.fwhm,
            config.modelPsf,
        )
        return True, modelPsf, summary

    def _preflight(self, inp: VisitInput, band: Filter, bbox: Box, numSubfilters: int) -> None:
        """Build one tiny template with the run's settings, so that they fail before work."""
        config = self.config
        box = Box(int(round(bbox.center[0])) - 1, int(round(bbox.center[1])) - 1, 3, 3)
        tiny = DcrModel(
            [Image(np.zeros(box.shape), bbox=box) for _ in range(numSubfilters)],
            filterInfo=band,
        )
        tiny.buildMatchedTemplate(
            visitInfo=inp.visitInfo,
            bbox=box,
            wcs=inp.wcs,
            order=config.imageInterpOrder,
            splitSubfilters=config.splitSubfilters,
            splitThreshold=config.splitThreshold,
            amplifyModel=config.accelerateModel,
            engine=config.engine,
        )

    def _statisticsPass(
        self,
        inputs: list[VisitInput],
        bbox: Box,
        statsCtrl: StatisticsControl,
        coadd: Exposure | None,
        deferred: bool = False,
    ) -> Exposure:
        """Read every visit once per subregion: weights, checks, and the plain coadd.

        Each visit's weight is the inverse of the mean variance of its good pixels (for a
        warped visit: its own pixels that map onto the grid, read once in blocks of its own
        frame, `visitStatistics`). When no coadd is given it is the inverse-variance
        weighted mean of the good pixels (a warped visit's variances divided by its
        ``noiseFactor``; see `dcrmodel.assemble.placement`), summed here one tile at a time
        unless ``deferred`` (the subregions then sum it from their own warps,
        `dcrmodel.assemble.plaincoadd`, and a stand-in is returned): warped visits are
        warped here only when the coadd is summed here.
        """
        config = self.config
        sumVariance = np.zeros(len(inputs))
        summed = coadd is None and not deferred
        if summed:
            numerator = np.zeros(bbox.shape)
            denominator = np.zeros(bbox.shape)
        for i, inp in enumerate(inputs):
            if inp.warp is not None:
                count, sumVariance[i] = visitStatistics(inp, bbox, statsCtrl)
                inp.goodPixels += count
        for tile in subregionTiles(bbox, config.subregionSize):
            for i, inp in enumerate(inputs):
                if inp.warp is not None and not summed:
                    continue
                cutout = inp.read(tile)
                if cutout is None:
                    continue
                good = goodPixels(cutout, statsCtrl)
                factor = None
                if inp.warp is None:
                    checkFinite(inp, cutout, good)
                    inp.goodPixels += int(good.sum())
                    sumVariance[i] += float(cutout.variance.array[good].sum())
                else:
                    factor = inp.warp.noiseFactor
                if summed:
                    addToCoaddSums(numerator, denominator, cutout.bbox.slices(bbox), cutout,
                                   good, factor)
        for i, inp in enumerate(inputs):
            if inp.goodPixels > 0:
                inp.weight = inp.goodPixels / sumVariance[i]
        if coadd is not None:
            return prepareGivenCoadd(config, coadd, statsCtrl)
        if deferred:
            return placeholderCoadd(bbox)
        return computedCoadd(config, numerator, denominator, bbox)

    # ------------------------------------------------------------------------- solve
    def _modelWeights(self, mask: Mask) -> np.ndarray | None:
        """Return the patch's model weights (None when not used).

        The convergence-mask footprint smoothed by a Gaussian of ``modelWeightsWidth``
        pixels and scaled to a maximum of 1: 1 on sources, falling to 0 away from them.
        """
        config = self.config
        if not config.useModelWeights:
            return None
        bits = mask.getPlaneBitMask(config.convergenceMaskPlanes)
        footprint = ((mask.array & bits) != 0).astype(float)
        if config.modelWeightsWidth > 0:
            footprint = ndimage.gaussian_filter(
                footprint, config.modelWeightsWidth, mode="constant"
            )
        peak = float(footprint.max()) if footprint.size else 0.0
        return footprint / peak if peak > 0 else footprint


@holdsOutputLock("outDir")
def assembleFromFiles(
    paths: Sequence[str | os.PathLike],
    outDir: str | os.PathLike,
    coaddPath: str | os.PathLike | None = None,
    config: DcrAssembleConfig | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    grid: Any = None,
) -> AssembleResult:
    """Build a DCR model from exposure files and write it to a folder.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Exposure files (Rubin layout) of the visits: on the model's grid, or on their own
        (detector) grids, warped onto it (see `DcrAssembleCoadd.run`).
    outDir : str or os.PathLike
        Output folder (see `writeResults`); checked before any work.
    coaddPath : str or os.PathLike, optional
        A plain coadd to start from; computed from the visits when None.
    config : DcrAssembleConfig, optional
        Settings; defaults when None.
    overwrite : bool, optional
        Replace an earlier model in ``outDir``.
    progress : callable, optional
        Called after each iteration (see `DcrAssembleCoadd.run`).
    grid : tuple or str or os.PathLike, optional
        The model's grid (see `DcrAssembleCoadd.run`): ``(WCS, Box)``, an exposure file or
        ``"RA,DEC,WIDTH,HEIGHT,SCALE"``; checked before any work.

    Returns
    -------
    AssembleResult
        The result, also written to ``outDir``.

    Raises
    ------
    DcrOutputError
        If another run is writing ``outDir`` (at once: the output's lock is held for the
        whole run), or ``outDir`` holds other files or, without ``overwrite``, a model.
    DcrTypeError
        If ``paths`` is one path rather than a list of them.
    DcrValueError
        For missing files, folders given as files, and the bad inputs of
        `DcrAssembleCoadd.run`.
    """
    checkOutputFolder(outDir, overwrite)
    grid = resolveGrid(grid)
    paths = asPathList(paths, "paths")
    refuseFolders([*paths, coaddPath])
    missing = [str(p) for p in paths if not p.is_file()]
    if coaddPath is not None and not Path(coaddPath).is_file():
        missing.append(str(coaddPath))
    if missing:
        raise DcrValueError(
            f"input file(s) not found: {', '.join(missing[:5])}", nMissing=len(missing)
        )
    task = DcrAssembleCoadd(config)
    result = task.run(paths, coadd=coaddPath, grid=grid, progress=progress)
    writeResults(result, outDir, overwrite=overwrite)
    return result
