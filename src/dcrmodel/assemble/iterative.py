"""The reference's iterative forward-modelling solver of one subregion (DMTN-037).

`IterativeSubregion.solveIterative` carries out the iterations of
`dcrmodel.assemble.task.DcrAssembleCoadd` with ``solver="iterative"``:

- Each visit's good pixels, weighted, are shifted back like the residuals will be: their
  sum per subfilter normalises the model update, and the number of visits covering a
  pixel is the subfilter's ``nImage``.
- Each iteration forward-models every visit (`DcrModel.buildMatchedTemplate`, with the
  differences between subfilters amplified by ``accelerateModel``), takes the weighted
  residuals, shifts them back by each subfilter's DCR and adds their normalised sum to
  that subfilter. The new solution is clamped against the previous iteration
  (`DcrModel.regularizeModelIter`) and between subfilters
  (`DcrModel.regularizeModelFreq`), averaged with the previous solution by a gain
  (`DcrModel.conditionDcrModel`), and tapered to the plain coadd away from detected
  sources (the model weights).
- A convergence metric (the mean absolute residual of the visits relative to the data,
  weighted towards significant pixels) decides when to stop; the gain grows from its
  base value when the history shows the iterations behaving as predicted
  (`calculateGain`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DcrError, DcrValueError
from ..image import Exposure, Image
from ..model import applyDcr
from ..progress import ProgressCallback, reportProgress
from .inputs import VisitInput
from .subregion import Subregion

__all__ = [
    "calculateGain",
    "IterativeSubregion",
]

_log = logging.getLogger(__name__)

#: A progress callback of `dcrmodel.assemble.task.DcrAssembleCoadd.run`: called with a dict.


def calculateGain(
    convergenceList: Sequence[float],
    gainList: Sequence[float],
    baseGain: float,
    useProgressiveGain: bool,
) -> float:
    """Return the gain of the next model update.

    Parameters
    ----------
    convergenceList : sequence of float
        Convergence metric of the initial model and after each update so far.
    gainList : sequence of float
        Gains of the updates so far (one fewer than ``convergenceList``).
    baseGain : float
        The smallest gain to use.
    useProgressiveGain : bool
        If False, always return ``baseGain``.

    Returns
    -------
    float
        The gain, at least ``baseGain``.

    Notes
    -----
    DMTN-037's progressive gain: an update with gain ``g`` replaces the model by
    ``(old + g·new)/(1 + g)``, so if the new solution were perfect (metric ``F``) the
    metric would become ``(c_old + g·F)/(1 + g)``. Each past update thus gives an
    estimate ``F = ((1 + g)·c_new − c_old)/g`` of the final metric (clipped at zero);
    the median of the latest few is compared with what the last update achieved. The
    closer the measured metric is to the prediction, relative to the improvement
    predicted, the closer the new gain is to 1; it is averaged with the last gain to
    avoid oscillation and never falls below ``baseGain``.
    """
    if len(convergenceList) != len(gainList) + 1:
        raise DcrValueError(
            "convergenceList must hold one more value than gainList",
            nConvergence=len(convergenceList),
            nGain=len(gainList),
        )
    if not useProgressiveGain or len(convergenceList) < 3 or not math.isfinite(baseGain):
        return baseGain
    metrics = np.asarray(convergenceList, dtype=float)
    gains = np.asarray(gainList, dtype=float)
    finals = ((1.0 + gains) * metrics[1:] - metrics[:-1]) / gains
    finals = np.clip(finals, 0.0, None)
    final = float(np.median(finals[-4:]))
    lastGain = float(gains[-1])
    before, after = float(metrics[-2]), float(metrics[-1])
    predicted = (before + lastGain * final) / (1.0 + lastGain)
    expectedGain = (before - final) / (1.0 + lastGain)
    if expectedGain <= 0 or not math.isfinite(expectedGain):
        return baseGain
    deviation = (predicted - after) / expectedGain
    newGain = 0.5 * ((1.0 - abs(deviation)) + lastGain)
    return max(baseGain, float(newGain))


def _singleConvergence(
    data: np.ndarray,
    template: np.ndarray,
    significance: np.ndarray,
    usable: np.ndarray,
) -> float | None:
    """Return one visit's convergence metric, or None without usable pixels.

    The metric is ``Σ s·|data − template| / Σ s·|data + template|/2`` over the usable
    pixels, ``s`` the significance weight: the mean absolute residual relative to the
    mean absolute signal.
    """
    if not usable.any():
        return None
    diff = np.abs(data[usable] - template[usable]) * significance[usable]
    ref = 0.5 * np.abs(data[usable] + template[usable]) * significance[usable]
    total = float(ref.sum())
    if total <= 0:
        return None
    return float(diff.sum()) / total


class IterativeSubregion(Subregion):
    """A subregion solved by the reference's iterative forward modelling (DMTN-037).

    Each visit is held in double precision with its weight image (the visit's weight on its
    good pixels); see `dcrmodel.assemble.subregion.Subregion` for the parameters.
    """

    def _visitArrays(
        self,
        inp: VisitInput,
        cutout: Exposure,
        good: np.ndarray,
        sub: tuple[slice, slice],
        stacks: tuple[np.ndarray, ...] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return new double precision data and weight arrays of a visit (no variance).

        The iterative solver multiplies its residuals by the weight image.
        """
        data = np.zeros(self.bbox.shape)
        weight = np.zeros(self.bbox.shape)
        weight[sub] = np.where(good, inp.weight, 0.0)
        return data, weight, None

    # ------------------------------------------------------------------------ weights
    def _coverage(self) -> None:
        """Shift each visit's weights back per subfilter: normalisation and nImage."""
        order = self.config.imageInterpOrder
        sums = [np.zeros(self.bbox.shape) for _ in range(self.n)]
        counts = [np.zeros(self.bbox.shape, dtype=np.int32) for _ in range(self.n)]
        for visit in self.visits:
            # The weight map is the visit's scalar weight on its good pixels, so the shifted
            # map divided by that weight is the shifted coverage.
            unit = (visit.weight > 0).astype(float)
            scale = visit.input.weight
            for k, (shift, split) in enumerate(visit.shifts):
                covered = applyDcr(unit, shift, useInverse=True, splitSubfilters=split,
                                   order=order, mode="constant")
                sums[k] += scale * np.clip(covered, 0.0, None)
                counts[k] += covered > 0.5
        everywhere = np.ones(self.bbox.shape, dtype=bool)
        for k in range(self.n):
            everywhere &= counts[k] > 0
        self.nImages = [np.where(everywhere, c, 0) for c in counts]
        self.inverseWeights = []
        for k in range(self.n):
            inverse = np.zeros(self.bbox.shape)
            ok = everywhere & (sums[k] > 0)
            inverse[ok] = 1.0 / sums[k][ok]
            self.inverseWeights.append(inverse)
        self.covered = everywhere

    # ----------------------------------------------------------------------- iterate
    def _templates(self) -> list[np.ndarray]:
        """Return every visit's template of the current model over the box, float64."""
        config = self.config
        templates = []
        for visit in self.visits:
            template = self.model.buildMatchedTemplate(
                visitInfo=visit.input.visitInfo,
                bbox=self.bbox,
                wcs=visit.input.wcs,
                order=config.imageInterpOrder,
                splitSubfilters=config.splitSubfilters,
                splitThreshold=config.splitThreshold,
                amplifyModel=config.accelerateModel,
                engine=config.engine,
            )
            templates.append(np.asarray(template.array, dtype=np.float64))
        return templates

    def _convergence(self, templates: list[np.ndarray]) -> float | None:
        """Return the convergence metric of the current model (None without usable pixels).

        Each visit's metric (`_singleConvergence`) is weighted by the visit's weight. The
        significance weights are the absolute mean subfilter image plus three times its
        background noise, so that bright sources dominate but noise still counts.
        """
        reference = np.mean([image.array for image in self.model], axis=0)
        noise = self._noiseLevel()
        significance = np.abs(reference) + 3.0 * noise
        if not np.any(significance > 0):
            significance = np.ones_like(significance)
        total, weightSum = 0.0, 0.0
        for visit, template in zip(self.visits, templates, strict=True):
            usable = (visit.weight > 0) & self.converge & self.covered
            metric = _singleConvergence(visit.data, template, significance, usable)
            if metric is None:
                continue
            total += visit.input.weight * metric
            weightSum += visit.input.weight
        if weightSum == 0:
            return None
        return total / weightSum

    def _noiseLevel(self) -> float:
        """Return the background noise of the mean subfilter image (computed once)."""
        if not hasattr(self, "_noise"):
            reference = Image(
                np.mean([image.array for image in self.model], axis=0), bbox=self.bbox
            )
            try:
                noise = float(
                    self.model.calculateNoiseCutoff(
                        reference,
                        self.statsCtrl,
                        0,
                        convergenceMaskPlanes=list(self.config.convergenceMaskPlanes),
                        mask=self.mask,
                        bbox=self.bbox,
                    )
                )
            except DcrError:
                noise = 0.0
            self._noise = noise if math.isfinite(noise) and noise > 0 else 0.0
        return self._noise

    def _update(self, templates: list[np.ndarray], gain: float) -> None:
        """One forward-modelling update of the model (DMTN-037)."""
        config = self.config
        order = config.imageInterpOrder
        updates = [np.zeros(self.bbox.shape) for _ in range(self.n)]
        for visit, template in zip(self.visits, templates, strict=True):
            residual = (visit.data - template) * visit.weight
            for k, (shift, split) in enumerate(visit.shifts):
                updates[k] += applyDcr(residual, shift, useInverse=True, splitSubfilters=split,
                                       order=order, mode="constant")
        newImages = []
        for k in range(self.n):
            old = self.model[k].array
            new = old + updates[k] * self.inverseWeights[k]
            bad = ~np.isfinite(new)
            new[bad] = old[bad]
            image = Image(new, bbox=self.bbox)
            if config.regularizeModelIterations > 0:
                self.model.regularizeModelIter(
                    k, image, self.bbox, config.regularizeModelIterations,
                    regularizationWidth=config.regularizationWidth,
                )
            newImages.append(image)
        if config.regularizeModelFrequency > 0 and self.n > 1:
            try:
                self.model.regularizeModelFreq(
                    newImages,
                    self.bbox,
                    self.statsCtrl,
                    config.regularizeModelFrequency,
                    regularizationWidth=config.regularizationWidth,
                    mask=self.mask,
                    convergenceMaskPlanes=list(config.convergenceMaskPlanes),
                )
            except DcrValueError as exc:
                # A subregion without background pixels has no noise level to regularise
                # against; the other conditioning steps still apply.
                _log.debug("subregion %s: frequency regularisation skipped (%s)", self.tile, exc)
        if math.isfinite(gain):
            self.model.conditionDcrModel(newImages, self.bbox, gain=gain)
        self._taper(newImages)
        for k, image in enumerate(newImages):
            self.model[k] = image

    def _taper(self, images: list[Image]) -> None:
        """Blend the model into the evenly split coadd away from sources (model weights)."""
        if self.weights is None:
            return
        share = self.coaddImage / self.n
        for image in images:
            image.array[:] = self.weights * image.array + (1.0 - self.weights) * share

    def solveIterative(self, progress: ProgressCallback | None) -> dict[str, Any]:
        """Iterate until the stopping rules say so; return the history record."""
        config = self.config
        maxIter = config.resolveMaxNumIter()
        baseGain = config.resolveBaseGain()
        record: dict[str, Any] = {
            "bbox": [self.tile.minX, self.tile.minY, self.tile.width, self.tile.height],
            "solvedBBox": [self.bbox.minX, self.bbox.minY, self.bbox.width, self.bbox.height],
            "nVisits": len(self.visits),
            "convergence": [],
            "gain": [],
            "iterations": 0,
            "stopReason": "",
        }
        if self._nothingToFit(record):
            return record

        convergence: list[float] = []
        gains: list[float] = []
        previous = None
        iteration = 0
        while True:
            if not config.useConvergence and iteration >= maxIter:
                if iteration > 0:
                    self._report(progress, iteration, None, gains[-1])
                record["stopReason"] = "maximum iterations"
                break
            templates = self._templates()
            if config.useConvergence:
                reason = self._stopRule(
                    self._convergence(templates), convergence, gains, previous, iteration,
                    progress,
                )
                if reason is not None:
                    if reason == "diverged":
                        iteration -= 1
                    record["stopReason"] = reason
                    break
            elif iteration > 0:
                self._report(progress, iteration, None, gains[-1])
            if iteration >= maxIter:
                record["stopReason"] = "maximum iterations"
                if config.useConvergence:
                    _log.warning(
                        "subregion %d/%d reached %d iterations before the convergence "
                        "threshold %g", self.index + 1, self.count, maxIter,
                        config.convergenceThreshold,
                    )
                break
            if config.useConvergence:
                gain = calculateGain(convergence, gains, baseGain, config.useProgressiveGain)
            else:
                gain = baseGain
            gains.append(gain)
            if config.useConvergence:
                previous = [image.clone() for image in self.model]
            self._update(templates, gain)
            iteration += 1
        record["convergence"] = [float(c) for c in convergence]
        record["gain"] = [float(g) if math.isfinite(g) else None for g in gains]
        record["iterations"] = iteration
        _log.info("subregion %d/%d finished after %d iterations (%s)",
                  self.index + 1, self.count, iteration, record["stopReason"])
        return record

    def _nothingToFit(self, record: dict[str, Any]) -> bool:
        """Say (and record why) the subregion keeps the coadd: no data, or no sources."""
        if not self.visits or not self.covered.any():
            record["stopReason"] = "no data"
            _log.warning("subregion %d/%d %s: no usable data; the coadd is kept",
                         self.index + 1, self.count, self.tile)
            return True
        if not (self.converge & self.covered).any() and self.weights is not None:
            record["stopReason"] = "no sources"
            _log.info("subregion %d/%d %s: no sources; the coadd is kept",
                      self.index + 1, self.count, self.tile)
            return True
        return False

    def _stopRule(
        self,
        metric: float | None,
        convergence: list[float],
        gains: list[float],
        previous: list[Image] | None,
        iteration: int,
        progress: ProgressCallback | None,
    ) -> str | None:
        """Record the metric of the current model; return why to stop, or None to go on.

        On divergence (the metric rises after the minimum number of iterations) the model of
        the previous iteration is restored and the last metric and gain are dropped.
        """
        config = self.config
        minIter = config.resolveMinNumIter()
        if metric is None:
            return "no convergence pixels"
        convergence.append(metric)
        if iteration == 0:
            _log.info("subregion %d/%d initial convergence %.6g",
                      self.index + 1, self.count, metric)
            return None
        if metric > 0:
            improvement = (convergence[-2] - metric) / metric
        else:  # a perfect fit: converged once it stays perfect
            improvement = math.inf if convergence[-2] > 0 else 0.0
        _log.info(
            "subregion %d/%d iteration %d: convergence %.6g, improvement %.4f%% "
            "(gain %.3g)",
            self.index + 1, self.count, iteration, metric, 100 * improvement,
            gains[-1],
        )
        self._report(progress, iteration, metric, gains[-1])
        if improvement < 0 and iteration > minIter:
            _log.warning(
                "subregion %d/%d diverged at iteration %d (convergence %.6g after "
                "%.6g); keeping the previous model",
                self.index + 1, self.count, iteration, metric, convergence[-2],
            )
            for k, image in enumerate(previous):
                self.model[k] = image
            convergence.pop()
            gains.pop()
            return "diverged"
        if iteration >= minIter and improvement < config.convergenceThreshold:
            return "converged"
        return None

    def _report(self, progress: ProgressCallback | None, iteration: int,
                metric: float | None, gain: float) -> None:
        """Call ``progress`` (if given) after an iteration."""
        if progress is None:
            return
        reportProgress(
            progress,
            f"subregion {self.index + 1}, iteration {iteration}",
            self.index,
            self.count,
            subregion=self.index,
            nSubregions=self.count,
            finished=False,
            iteration=iteration,
            convergence=metric,
            gain=gain if math.isfinite(gain) else None,
        )
