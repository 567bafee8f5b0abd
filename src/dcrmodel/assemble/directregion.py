"""The direct solver on one subregion: the visits' stacks, the PSF factors, the image counts.

`DirectSubregion` holds every visit's cutout of the solved box in stacks of all visits, in the
inputs' single precision, and hands them with the visits' DCR, weights and (PSF-aware model)
PSF factors to `dcrmodel.assemble.direct.solveDirectFromShifts`; the solution replaces the
subregion's model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft

from ..fourier import maxShiftOf, paddedShape
from ..image import Exposure, Image, ImagePsf
from ..physics import wavelengthGenerator
from ..psf import (
    DampedPsfMatcher,
    effectiveKernelSize,
    maxKernelSize,
    modelPsfRidge,
    psfAtWavelength,
    psfFwhmAt,
)
from .inputs import VisitInput
from .subregion import Subregion
from .workspace import ArrayPool

__all__ = ["DirectSubregion", "wholePixelShift"]

#: Fraction of a PSF kernel's flux allowed outside the padding of the direct solver's grid
#: (`dcrmodel.psf.effectiveKernelSize`).
_PSF_TAIL = 1e-2

#: Largest memory (bytes) of the PSF factors the direct solver keeps between subregions
#: (all visits and grids together): subregions of the same shape share one FFT grid, and the PSF is
#: the same across a patch, so each visit's factors are computed once.
_PSF_FACTOR_CACHE = 128 * 2**20


def wholePixelShift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Return ``out[y, x] = mask[y + dy, x + dx]`` (False where that is outside ``mask``)."""
    ny, nx = mask.shape
    out = np.zeros_like(mask)
    outY = slice(max(0, -dy), max(0, min(ny, ny - dy)))
    outX = slice(max(0, -dx), max(0, min(nx, nx - dx)))
    inY = slice(max(0, dy), max(0, min(ny, ny + dy)))
    inX = slice(max(0, dx), max(0, min(nx, nx + dx)))
    out[outY, outX] = mask[inY, inX]
    return out


class DirectSubregion(Subregion):
    """A subregion solved by the direct per-frequency solver.

    The visits are held in stacks of all visits (data and variance in float32, the good
    pixels as booleans), taken from the run's `dcrmodel.assemble.workspace.ArrayPool`; see
    `dcrmodel.assemble.subregion.Subregion` for the parameters.
    """

    def _takeStacks(self, numInputs: int) -> tuple[np.ndarray, ...]:
        """Return the data, variance and good-pixel stacks of all visits, from the pool."""
        # One pool of memory for the run's subregions (see ArrayPool).
        self.pool = self.runScratch.setdefault("arrays", ArrayPool())
        shape = (numInputs, *self.bbox.shape)
        stacks = tuple(self.pool.take(shape, dtype) for dtype in (np.float32, np.float32, bool))
        stacks[0].fill(0.0)
        stacks[1].fill(1.0)
        stacks[2].fill(False)
        return stacks

    def _visitArrays(
        self,
        inp: VisitInput,
        cutout: Exposure,
        good: np.ndarray,
        sub: tuple[slice, slice],
        stacks: tuple[np.ndarray, ...] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Return the visit's views of the stacks, its good pixels and variance filled in.

        The direct solver only needs where the visit is good (its weight is a scalar).
        """
        index = len(self.visits)
        data, variance, weight = (stack[index] for stack in stacks)
        weight[sub] = good
        np.copyto(variance[sub], cutout.variance.array, where=good, casting="unsafe")
        return data, weight, variance

    def _coverage(self) -> None:
        """Count the visits per pixel (nImage) for the direct solver, with whole-pixel shifts.

        The direct solver needs neither the weights' normalisation nor the coverage of
        the iterative update, only the count of visits per pixel and subfilter
        (``nImage``). Rather than spline-shifting every visit's coverage map once per
        subfilter (`IterativeSubregion._coverage`), each good-pixel map is moved back by the
        subfilter's mean DCR rounded to whole pixels (a slice copy). The counts can differ
        from the spline-shifted ones only along the edges of masked areas and of the
        visits, by at most one pixel's offset; the model itself does not depend on them.
        """
        counts = [np.zeros(self.bbox.shape, dtype=np.int32) for _ in range(self.n)]
        for visit in self.visits:
            good = visit.weight > 0
            for k, (s0, s1) in enumerate(visit.edgeShifts):
                # Model pixel (y, x) sees the visit's pixel (y + dy, x + dx).
                dy = math.floor(0.5 * (s0[0] + s1[0]) + 0.5)
                dx = math.floor(0.5 * (s0[1] + s1[1]) + 0.5)
                counts[k] += wholePixelShift(good, dy, dx)
        everywhere = np.ones(self.bbox.shape, dtype=bool)
        for k in range(self.n):
            everywhere &= counts[k] > 0
        self.nImages = [np.where(everywhere, c, 0) for c in counts]
        self.covered = everywhere

    def solveDirect(self, solve: Callable[..., Any]) -> dict[str, Any]:
        """Solve the subregion with `dcrmodel.assemble.direct.solveDirectFromShifts`.

        The visits' cutouts (with the DCR buffer), variances, bad-pixel maps, DCR edge
        shifts and weights (the same as the iterative solver's, airmass weighting
        included) are handed over; the solution replaces the model of the subregion.
        """
        record: dict[str, Any] = {
            "bbox": [self.tile.minX, self.tile.minY, self.tile.width, self.tile.height],
            "solvedBBox": [self.bbox.minX, self.bbox.minY, self.bbox.width, self.bbox.height],
            "nVisits": len(self.visits),
            "solver": "direct",
        }
        if not self.visits:
            record["stopReason"] = "no data"
            return record
        options: dict[str, Any] = {}
        if self.psfAware:
            record["psfAware"] = True
            options["extraTransfers"], options["padded"] = self._psfTransfers()
            modelPsf, damping = self.model.psf, self.config.psfDamping
            options["frequencyRidge"] = lambda padded: modelPsfRidge(modelPsf, padded, damping)
        # The visits' arrays are views of the stacks, which the solve takes as they are; they
        # are handed back to the pool after it.
        images, variances, good = self._stacks
        self._stacks = None
        options["workspace"] = self.pool
        options["threads"] = self.config.resolveThreads()
        for visit in self.visits:
            visit.data = visit.variance = None
        solution = solve(
            images,
            variances,
            ~good,
            [visit.edgeShifts for visit in self.visits],
            mode=self.config.transferMode,
            weights=np.array([visit.input.weight for visit in self.visits]),
            **options,
        )
        for stack in (images, variances, good):
            self.pool.give(stack.base if stack.base is not None else stack)
        del images, variances, good
        arrays = np.asarray(solution.modelArrays, dtype=np.float64)
        for k in range(self.n):
            self.model[k] = Image(np.array(arrays[k]), bbox=self.bbox)
        residuals = getattr(solution, "visitResiduals", None)
        if residuals is not None:
            record["visitResiduals"] = [float(r) for r in residuals]
        return record

    def _psfTransfers(
        self,
    ) -> tuple[Callable[[int, tuple[int, int]], np.ndarray], tuple[int, int]]:
        """Return the PSF factors of the direct solver's forward model and the FFT grid.

        Visit ``j``, subfilter ``k``: the damped ratio of the visit's PSF at the subfilter's
        central wavelength to the model's PSF (`dcrmodel.psf.psfMatchingTransfer`),
        computed by `dcrmodel.psf.DampedPsfMatcher` in single precision (float32 when
        real, i.e. for point-symmetric kernels, else complex64: the factors are smooth and
        of order 1, so single precision costs nothing measurable). The model's damped
        inverse is computed once per grid. Real factors are kept with the visit for the
        run's other subregions on the same grid (the PSF is the same across the patch),
        up to `_PSF_FACTOR_CACHE` bytes in all (all visits and grids of the run).

        The grid is padded by the DCR shifts plus the width holding all but 1 % of every
        kernel (`dcrmodel.psf.effectiveKernelSize`), not by whole PSF images, whose far
        wings would double the FFT area; it is at least as large as the largest kernel,
        which must fit it. Light wrapped around the grid crosses both margins before it
        reaches the image, so what reaches it is the kernel's flux beyond twice that width
        (for Kolmogorov seeing, about a third of the 1 %, spread over the far edge).
        """
        band = self.band
        damping = self.config.psfDamping
        modelPsf = self.model.psf
        centres = [
            0.5 * (lo + hi)
            for lo, hi in wavelengthGenerator(band.effectiveWavelength, band.bandwidth, self.n)
        ]
        psfs = self._subfilterPsfs(centres)
        kernels = [p.array for row in psfs for p in row]
        psfSize = max(
            effectiveKernelSize(kernels, tailFraction=_PSF_TAIL),
            effectiveKernelSize([modelPsf], tailFraction=_PSF_TAIL),
        )
        fullSize = max(max(k.shape[0] for k in kernels), maxKernelSize([modelPsf]))
        maxShift = maxShiftOf([visit.edgeShifts for visit in self.visits])
        grid = paddedShape(self.bbox.shape, maxShift, psfSize)
        grid = tuple(
            max(g, scipy.fft.next_fast_len(fullSize, real=True)) for g in grid
        )
        matchers: dict[tuple[int, int], DampedPsfMatcher] = {}
        runScratch = self.runScratch

        def transfers(j: int, padded: tuple[int, int]) -> np.ndarray:
            padded = tuple(padded)
            scratch = self.visits[j].input.scratch
            key = ("psfFactors", tuple(centres), padded, damping)
            if key in scratch:
                return scratch[key]
            if padded not in matchers:
                matchers[padded] = DampedPsfMatcher(modelPsf, padded, damping=damping)
            factors = matchers[padded].factors(psfs[j])
            kept = runScratch.get("psfFactorBytes", 0)
            if factors.dtype == np.float32 and kept + factors.nbytes <= _PSF_FACTOR_CACHE:
                scratch[key] = factors
                runScratch["psfFactorBytes"] = kept + factors.nbytes
            return factors

        return transfers, grid

    def _subfilterPsfs(self, centres: list[float]) -> list[list[ImagePsf]]:
        """Return each visit's PSF at each subfilter's central wavelength (nm).

        Each visit's kernel at each subfilter's centre, resampled once per run, as
        achromatic PSFs.
        """
        eff = self.band.effectiveWavelength
        psfs = []
        for visit in self.visits:
            key = ("kernels", tuple(centres))
            if key not in visit.input.scratch:
                visit.input.scratch[key] = [
                    ImagePsf(
                        psfAtWavelength(visit.input.psf, centre, eff),
                        fwhm=psfFwhmAt(visit.input.psf, centre, eff),
                    )
                    for centre in centres
                ]
            psfs.append(visit.input.scratch[key])
        return psfs
