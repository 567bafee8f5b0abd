"""Direct least-squares solution of the DCR model, one small linear system per frequency.

The forward model of visit ``j`` is linear in the N subfilter images ``x_k`` and, being a
sum of translations and smears (and, with a PSF-aware model, convolutions), diagonal in
Fourier space: ``y_j(f) = sum_k A_jk(f) x_k(f) + noise``, ``A_jk`` being the transfer of
subfilter ``k`` in visit ``j`` (`dcrmodel.fourier.subfilterTransfer`, times any extra
per-subfilter transfer). With one weight ``w_j`` per visit the weighted least-squares problem
separates into one N x N Hermitian system per spatial frequency,

    (A^H W A + lambda_f R + rho W_tot I) x(f) = A^H W y(f),

solved for all frequencies at once (a vectorised Cholesky factorisation of the stacked
systems). The separation needs one weight per visit (by default the inverse of the median
variance of its good pixels): differences of variance within a visit, such as the photon noise
of bright sources, are not weighted. ``R`` pulls the subfilters toward a smooth (by default
flat) spectrum where the data do not tell them apart: at ``f = 0`` every transfer is 1, so the
data fix only the sum of the subfilters and ``R`` alone decides the split.

Choice of lambda. ``lambda_f = regularization * trace(A^H W A)(f) / N``: the regulariser's
weight is a fixed fraction of the mean diagonal of the data term at that frequency, i.e. of the
information the visits carry about one subfilter there, so ``regularization`` is dimensionless
and independent of the number of visits, their noise level or any PSF attenuation. With pure
shifts, the phase between two subfilters whose DCR differs by ``ds`` pixels is
``phi = 2 pi f.ds``: the data see the tilt of the spectrum across subfilters with weight of
order ``W phi^2`` and its curvature with ``W phi^4``. Where that falls below ``lambda_f``, the
subfilters follow ``R`` instead of the noise. With the default ``1e-5`` the tilt is free down
to ``phi ~ 3e-3`` and the curvature down to ``phi ~ (3e-5)^(1/4) ~ 0.07``, i.e. only scales
above roughly ``100 ds`` pixels are flattened. The held-out templates, which are what the model
is for, change by a few per cent of the noise when ``regularization`` moves a decade either
side of the default (tested at a peak signal-to-noise of 600 per visit); the subfilter images
themselves carry more low-frequency noise the smaller lambda is (they are poorly constrained
there, templates are not). Templates for visits outside the range of the training visits' DCR
(a larger airmass, another parallactic angle) extrapolate, and their noise grows (on pure
noise, 12 visits: 0.47 sigma inside the range, 1.3-1.5 sigma at 1.25-1.5 times the largest
training DCR with the default, 0.55-0.75 sigma with ``1e-2``); a larger ``regularization``
(1e-3 to 1e-2) trades accuracy on the brightest sources for less noise there. ``rho``
(default 1e-6) is a tiny ridge relative to the total weight that keeps every system positive
definite, including frequencies that no visit constrains.

Masked pixels break the diagonal structure. The first solve fills them with the inverse-variance
coadd of the visits (no DCR); the result is then refined by conjugate gradients on the problem
restricted to each visit's unmasked pixels, preconditioned by the unmasked Fourier solution
``P^-1`` (equivalent to, and much faster than, refilling the masked pixels with the current
prediction and solving again). Pixels masked in every visit have no data: they keep the
nearest good pixel's coadd value as pseudo-data (a boundary condition, as in the margin, which
keeps the otherwise unconstrained model there stable) and are flagged (``noDataMask``). The
image is embedded in a padded FFT grid (`dcrmodel.fourier.paddedShape`) whose margin holds the
edge-extended coadd as pseudo-data (a boundary condition, like the spline engine's
``mode="nearest"``), so no visit wraps around the edges; without masked pixels the first solve
is the exact least-squares solution and no refinement is needed.

Partial coverage. Visits that see only part of the region (rotated, dithered detectors warped
onto a patch, ``NO_DATA`` outside their footprints) are masked pixels like any other: the
refinement fits each visit on its own good pixels. Measured on simulated fields of 12
training visits on 256-pixel detectors over a 384-pixel patch (``benchmarks/bench_coverage.py``):
where a subset of the visits sees the sky, the templates are those of a model built from that
subset alone covering the whole patch (within a few per cent of each other's residual); where
fewer visits than subfilters see a pixel they are about as good as a plain coadd of those
visits (0.6 to 2.1 times its residual). Refining further (60 iterations, tolerance 1e-4)
changed the well-covered templates by under 2 % and made those resting on 1 to 5 visits worse
(noise in directions few visits constrain); a real-space penalty on the spectral structure
where coverage is low, tried as an alternative, did not improve the well-covered templates
measurably and cost 2-3 times the refinement. `dcrmodel.assemble.task.DcrAssembleCoadd` flags
the pixels resting on too few visits (``DCR_LOW_COVERAGE``).

Cost: one ``rfft2`` per visit for the normal equations, a Cholesky factorisation of the
stacked N x N systems, then per refinement iteration one inverse and one forward FFT per visit.
Memory: the normal matrix (N(N+1)/2 complex128 arrays on the half-plane grid), the solution, a
few per-visit work arrays and, below a limit (``transferCache``), the J x N transfers, so that
they are computed once rather than in every pass; never a copy of the stack.

Threads (``threads``, default every core): every step but the FFTs works frequency by
frequency (or pixel by pixel) and runs in blocks of rows of its grid in a pool of threads
(`dcrmodel.parallel.forRowBlocks`; numpy releases the interpreter lock in its loops), the
FFTs on ``scipy.fft``'s threads. Each value is computed by the same operations in the same
order whatever the number of threads, so the solution is the same bit for bit; the memory
grows only by a block's temporaries per thread.

This module holds the solver's interface and its steps; the normal equations, their stacked
Cholesky factorisation and the refinement are in `dcrmodel.assemble.normal`, the memory reused
between solves (`ArrayPool`) in `dcrmodel.assemble.workspace`.

References
----------
I. Sullivan, DMTN-037, "DCR-matched template generation", https://dmtn-037.lsst.io
(the forward model and the iterative solution it replaces).
A. N. Tikhonov & V. Y. Arsenin (1977), *Solutions of Ill-Posed Problems*, Winston
(regularised least squares).
M. R. Hestenes & E. Stiefel (1952), J. Res. Natl. Bur. Stand. 49, 409 (conjugate gradients);
Y. Saad (2003), *Iterative Methods for Sparse Linear Systems*, 2nd ed., SIAM, sect. 9.2
(preconditioned conjugate gradients).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft

from ..errors import DcrError, DcrShapeError, DcrTypeError, DcrValueError, DcrWarning
from ..fourier import (
    TRANSFER_MODES,
    cropFromPadded,
    dcrShiftArray,
    fillBadPixels,
    maxShiftOf,
    paddedShape,
    padToShape,
    visitTransfers,
)
from ..image import Image, Mask
from ..model import DcrModel
from ..parallel import forRowBlocks, resolveThreads
from .normal import (
    SolveGrid,
    accumulateNormalEquations,
    batchesOf,
    cholesky,
    choleskySolve,
    conditionNumbers,
    predictMany,
    refineMasked,
    visitTransfer,
)
from .workspace import ArrayPool

__all__ = [
    "DEFAULT_REGULARIZATION",
    "DEFAULT_RIDGE",
    "DEFAULT_TRANSFER_CACHE",
    "DirectSolution",
    "visitWeights",
    "regularizerMatrix",
    "solveDirect",
    "solveDirectFromShifts",
]

#: Default dimensionless regularisation strength (relative to the mean diagonal of A^H W A).
DEFAULT_REGULARIZATION = 1e-5

#: Default ridge, relative to the total weight of the visits.
DEFAULT_RIDGE = 1e-6

#: Default memory limit (bytes) of the visits' transfers kept between the solver's passes
#: (256 MiB; 24 visits x 3 subfilters on a 640 x 321 half-plane grid take 118 MB).
DEFAULT_TRANSFER_CACHE = 1 << 28

TransferCallable = Callable[[int, tuple[int, int]], np.ndarray]


@dataclass
class DirectSolution:
    """The result of `solveDirect`.

    Attributes
    ----------
    modelArrays : `numpy.ndarray`
        ``(N, ny, nx)`` subfilter images, in the images' float dtype.
    noDataMask : `numpy.ndarray`
        Boolean ``(ny, nx)``: pixels masked in every visit (no data; the model there holds
        the nearest good pixels' coadd in sum). Set ``NO_DATA`` there in a model's mask.
    weights : `numpy.ndarray`
        ``(J,)`` per-visit weights used (1 / counts^2 for the default inverse median
        variance).
    visitResiduals : `numpy.ndarray` or None
        ``(J,)`` reduced chi of each visit against its forward model,
        ``sqrt(mean((y - A x)^2 / variance))`` over its unmasked pixels (about 1 for a model
        that fits to the noise); None when diagnostics were not requested.
    conditionNumbers : dict
        Condition numbers of the regularised per-frequency systems: ``"max"``, ``"median"``,
        ``"p99"`` and ``"zeroFrequency"``; empty when diagnostics were not requested. On
        grids of more than 32,768 frequencies they are taken over a regular subsample (every
        s-th row and column, zero frequency included), whose maximum can miss the largest
        value by a little.
    passChanges : list of float
        Size of each refinement step relative to the whole refinement so far (L2 over the
        padded grid); the first is 1.
    paddedShape : tuple of int
        The padded FFT grid ``(ny, nx)``.
    regularization : float
        The dimensionless regularisation strength used.
    mode : str or None
        The subfilter representation, when known (`solveDirectFromShifts`).
    """

    modelArrays: np.ndarray
    noDataMask: np.ndarray
    weights: np.ndarray
    visitResiduals: np.ndarray | None
    conditionNumbers: dict[str, float] = field(default_factory=dict)
    passChanges: list[float] = field(default_factory=list)
    paddedShape: tuple[int, int] = (0, 0)
    regularization: float = DEFAULT_REGULARIZATION
    mode: str | None = None

    @property
    def numSubfilters(self) -> int:
        """Number of subfilters N (int)."""
        return int(self.modelArrays.shape[0])

    def toDcrModel(
        self,
        filterInfo: Any = None,
        psf: Any = None,
        origin: tuple[int, int] = (0, 0),
        photoCalib: Any = None,
        wcs: Any = None,
        variance: np.ndarray | None = None,
    ) -> DcrModel:
        """Wrap the solution in a `dcrmodel.model.core.DcrModel`.

        Parameters
        ----------
        filterInfo : `dcrmodel.image.Filter` or str, optional
            The band (effective wavelength and bandwidth in nm).
        psf : `dcrmodel.image.Psf`, optional
            The model's PSF.
        origin : tuple of int, optional
            Parent coordinates ``(x0, y0)`` of pixel ``[0, 0]``.
        photoCalib : `dcrmodel.image.PhotoCalib`, optional
            Calibration of the model images (nJy per count).
        wcs : `astropy.wcs.WCS`, optional
            WCS of the model's pixel grid.
        variance : `numpy.ndarray`, optional
            ``(ny, nx)`` variance of the model images, counts^2.

        Returns
        -------
        model : `dcrmodel.model.core.DcrModel`
            One image per subfilter; its mask has ``NO_DATA`` set at `noDataMask`.
        """
        images = [Image(np.array(a), origin=origin) for a in self.modelArrays]
        mask = Mask(np.zeros(self.noDataMask.shape, dtype=np.int32), origin=origin)
        mask.array[self.noDataMask] |= mask.getPlaneBitMask("NO_DATA")
        varianceImage = None if variance is None else Image(np.array(variance), origin=origin)
        return DcrModel(
            images,
            filterInfo=filterInfo,
            psf=psf,
            mask=mask,
            variance=varianceImage,
            photoCalib=photoCalib,
            wcs=wcs,
        )


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _floatStack(array: Any, name: str) -> np.ndarray:
    out = np.asarray(array)
    if out.ndim != 3:
        raise DcrShapeError(f"{name} must be a (J, ny, nx) stack of visits", shape=out.shape)
    if out.dtype.kind in "iu":
        out = out.astype(np.float64)
    if out.dtype not in (np.float32, np.float64):
        raise DcrTypeError(f"{name} must be float32 or float64", dtype=str(out.dtype))
    return out


def _checkInputs(
    images: Any, variances: Any, badMasks: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = _floatStack(images, "images")
    variances = _floatStack(variances, "variances")
    badMasks = np.asarray(badMasks)
    if badMasks.dtype != bool:
        raise DcrTypeError(
            "badMasks must be boolean (True = do not use); from a Mask use "
            "(mask.array & mask.getPlaneBitMask(planes)) != 0",
            dtype=str(badMasks.dtype),
        )
    if variances.shape != images.shape or badMasks.shape != images.shape:
        raise DcrShapeError(
            "images, variances and badMasks must have the same (J, ny, nx) shape",
            images=images.shape,
            variances=variances.shape,
            badMasks=badMasks.shape,
        )
    if images.shape[0] < 1 or images.shape[1] < 1 or images.shape[2] < 1:
        raise DcrShapeError("the stack of visits is empty", shape=images.shape)
    for j in range(images.shape[0]):
        good = ~badMasks[j]
        bad = good & ~np.isfinite(images[j])
        if bad.any():
            raise DcrValueError(
                f"visit {j} has NaN or infinite pixels that are not masked; set them in badMasks",
                visit=j,
                count=int(bad.sum()),
            )
        var = variances[j]
        bad = good & ~(np.isfinite(var) & (var > 0))
        if bad.any():
            raise DcrValueError(
                f"visit {j} has non-finite or non-positive variance at unmasked pixels; mask "
                "them or fix the variance plane",
                visit=j,
                count=int(bad.sum()),
            )
    if badMasks.all():
        raise DcrValueError("every pixel of every visit is masked; there is nothing to solve")
    return images, variances, badMasks


def visitWeights(variances: np.ndarray, badMasks: np.ndarray) -> np.ndarray:
    """Per-visit weights: the inverse of the median variance of each visit's good pixels.

    Parameters
    ----------
    variances : `numpy.ndarray`
        ``(J, ny, nx)`` variance planes, counts^2.
    badMasks : `numpy.ndarray`
        Boolean ``(J, ny, nx)``, True at pixels not to use.

    Returns
    -------
    weights : `numpy.ndarray`
        ``(J,)`` float64, 1/counts^2; 0 for a visit with no good pixel (with a `DcrWarning`).
        Multiply by any extra factor (for example an airmass weighting) before passing them to
        `solveDirect`.

    Raises
    ------
    DcrValueError
        A good pixel with a non-finite or non-positive variance.
    """
    variances = _floatStack(variances, "variances")
    badMasks = np.asarray(badMasks, dtype=bool)
    if badMasks.shape != variances.shape:
        raise DcrShapeError(
            "variances and badMasks must have the same shape",
            variances=variances.shape,
            badMasks=badMasks.shape,
        )
    weights = np.zeros(variances.shape[0])
    for j in range(variances.shape[0]):
        good = variances[j][~badMasks[j]]
        if good.size == 0:
            warnings.warn(
                f"visit {j} has no unmasked pixel; it gets weight 0", DcrWarning, stacklevel=2
            )
            continue
        median = float(np.median(good))
        if not np.isfinite(median) or median <= 0:
            raise DcrValueError(
                f"visit {j}: the median variance of its good pixels is {median}; the weight "
                "1/median would not be finite and positive; fix its variance plane",
                visit=j,
            )
        weights[j] = 1.0 / median
    return weights


def _checkWeights(weights: Any, numVisits: int) -> np.ndarray:
    try:
        out = np.asarray(weights, dtype=float)
    except (TypeError, ValueError) as error:
        raise DcrTypeError("weights must be J numbers (one per visit)", weights=weights) from error
    if out.shape != (numVisits,):
        raise DcrShapeError(
            "weights must hold one number per visit", shape=out.shape, numVisits=numVisits
        )
    notFinite = np.flatnonzero(~np.isfinite(out))
    if notFinite.size:
        raise DcrValueError(
            "non-finite weights for some visits; give every visit a finite weight >= 0 (0 "
            "drops it)",
            visits=notFinite.tolist(),
        )
    if np.any(out < 0):
        raise DcrValueError("weights must be >= 0", visits=np.flatnonzero(out < 0).tolist())
    if not np.any(out > 0):
        raise DcrValueError("every visit has weight 0; there is nothing to solve")
    return out


def regularizerMatrix(regularizer: Any, numSubfilters: int) -> np.ndarray:
    """Return the N x N matrix R of the regularisation term ``lambda x^H R x``.

    Parameters
    ----------
    regularizer : {"difference", "identity"} or `numpy.ndarray`
        ``"difference"`` (default of `solveDirect`): ``D^T D`` with ``D`` the first
        difference between adjacent subfilters, which penalises spectral structure and
        leaves the sum free (its null space is the flat spectrum), so it decides the split
        where only the sum is constrained; ``"identity"``: a ridge on each subfilter (pulls
        unconstrained components to zero); or an explicit real symmetric positive
        semi-definite ``(N, N)`` array.
    numSubfilters : int
        N.

    Returns
    -------
    matrix : `numpy.ndarray`
        ``(N, N)`` float64.
    """
    n = int(numSubfilters)
    if isinstance(regularizer, str):
        if regularizer == "difference":
            difference = np.diff(np.eye(n), axis=0)
            return difference.T @ difference
        if regularizer == "identity":
            return np.eye(n)
        raise DcrValueError(
            "unknown regularizer; use 'difference', 'identity' or an (N, N) array",
            regularizer=regularizer,
        )
    matrix = np.asarray(regularizer, dtype=float)
    if matrix.shape != (n, n):
        raise DcrShapeError("regularizer must be (N, N)", shape=matrix.shape, numSubfilters=n)
    if not np.all(np.isfinite(matrix)) or not np.allclose(matrix, matrix.T):
        raise DcrValueError("regularizer must be a finite symmetric matrix")
    if np.linalg.eigvalsh(matrix).min() < -1e-12 * max(1.0, np.abs(matrix).max()):
        raise DcrValueError("regularizer must be positive semi-definite")
    return matrix


def _checkNonNegative(value: Any, name: str) -> float:
    if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
        raise DcrValueError(f"{name} must be a finite number >= 0", **{name: value})
    return float(value)


# ---------------------------------------------------------------------------------------------
# The solver
# ---------------------------------------------------------------------------------------------


def _transferGetter(
    transfers: Any, numVisits: int, padded: tuple[int, int] | None
) -> tuple[Callable[[int, tuple[int, int]], np.ndarray], tuple[int, int] | None]:
    if callable(transfers):
        return transfers, padded
    array = np.asarray(transfers)
    if array.ndim != 4 or array.shape[0] != numVisits:
        raise DcrShapeError(
            "transfers must be a callable (j, paddedShape) -> (N, ny, nx // 2 + 1) or an array "
            "(J, N, ny, nx // 2 + 1)",
            shape=array.shape,
            numVisits=numVisits,
        )
    if padded is None:
        raise DcrValueError(
            "transfers given as an array need padded=(ny, nx), the real-space grid they were "
            "computed on (dcrmodel.fourier.paddedShape)"
        )
    return (lambda j, shape: array[j]), padded


def solveDirect(
    images: np.ndarray,
    variances: np.ndarray,
    badMasks: np.ndarray,
    transfers: TransferCallable | np.ndarray,
    *,
    maxShift: Any = None,
    padded: tuple[int, int] | None = None,
    psfSize: int = 0,
    regularization: float = DEFAULT_REGULARIZATION,
    regularizer: Any = "difference",
    ridge: float = DEFAULT_RIDGE,
    weights: np.ndarray | None = None,
    maskPasses: int = 8,
    maskTolerance: float = 1e-2,
    padMode: str = "edge",
    workers: int | None = None,
    threads: int | None = None,
    diagnostics: bool = True,
    frequencyRidge: Callable[[tuple[int, int]], np.ndarray] | None = None,
    transferCache: int = DEFAULT_TRANSFER_CACHE,
    workspace: ArrayPool | None = None,
) -> DirectSolution:
    """Solve for the N subfilter images from J visits by per-frequency least squares.

    Parameters
    ----------
    images : `numpy.ndarray`
        ``(J, ny, nx)`` visits on the model's pixel grid, counts (float32 or float64; float32
        inputs are transformed in single precision, and each visit's terms of the normal
        equations are formed and summed over up to 8 visits in single precision; the sums
        are accumulated and solved in double precision. On a 1024^2 field of 24 visits the
        subfilter images then differ from sums taken in double precision visit by visit by
        up to 0.2 noise sigma in components that no visit constrains, which cancel in every
        template: templates differ by under 1e-3 sigma).
    variances : `numpy.ndarray`
        ``(J, ny, nx)`` variance planes, counts^2.
    badMasks : `numpy.ndarray`
        Boolean ``(J, ny, nx)``, True at pixels not to use (their image values, NaN included,
        are ignored).
    transfers : callable or `numpy.ndarray`
        The forward model: ``transfers(j, paddedShape)`` returning ``(N, ny, nx // 2 + 1)``
        complex transfer functions of visit ``j`` on the ``rfft2`` grid of ``paddedShape``, or
        an array ``(J, N, ny, nx // 2 + 1)`` (then give ``padded``). The transfers must be of
        real operators (see `dcrmodel.fourier.hermitianize`).
    maxShift : float or tuple of float, optional
        Largest ``|dy|``, ``|dx|`` (pixels) of the visits' shifts; sets the padding
        (`dcrmodel.fourier.paddedShape`). Required unless ``padded`` is given.
    padded : tuple of int, optional
        The padded FFT grid ``(ny, nx)`` to use instead.
    psfSize : int, optional
        Width in pixels of any convolution inside the transfers (PSF matching), for the
        padding.
    regularization : float, optional
        Dimensionless strength lambda (see the module notes); default 1e-5.
    regularizer : {"difference", "identity"} or `numpy.ndarray`, optional
        The matrix R (`regularizerMatrix`).
    ridge : float, optional
        Ridge relative to the total weight (default 1e-6), so every system is definite.
    weights : `numpy.ndarray`, optional
        ``(J,)`` visit weights (1/counts^2), finite and >= 0; default `visitWeights`.
    maskPasses : int, optional
        Maximum number of conjugate-gradient iterations refining the solution around masked
        pixels (default 8; each costs two FFTs per visit with masked pixels); 0 keeps the
        first solve, in which masked pixels hold the inverse-variance coadd. Not used when
        no pixel is masked.
    maskTolerance : float, optional
        Stop the refinement when an iteration's step is smaller than this fraction of the
        whole refinement so far (L2 over the padded grid, from the transforms by Parseval's
        theorem; default 1e-2). Measured against the refinement rather than the model, so
        that a few masked pixels in a large image are still refined to convergence.
    padMode : str, optional
        How the coadd is extended into the margin (`dcrmodel.fourier.padToShape`).
    workers : int, optional
        Threads for ``scipy.fft`` (-1: all cores); default None: ``threads``.
    threads : int, optional
        Threads for the FFTs and the per-frequency work (transfers, normal equations,
        factorisation, solves, refinement), which is split in blocks of rows of the
        frequency grid (`dcrmodel.parallel.forRowBlocks`); None (default): the default of
        the context (`dcrmodel.parallel.threadLimit`), else every core. The solution is the
        same, bit for bit, for every number of threads.
    diagnostics : bool, optional
        Compute per-visit residuals and condition numbers (one more inverse FFT per visit and
        an eigenvalue decomposition per frequency).
    frequencyRidge : callable, optional
        ``frequencyRidge(paddedShape)`` returning a real array ``(ny, nx // 2 + 1)`` >= 0: an
        extra ridge per frequency, relative to the total weight, added to every subfilter's
        diagonal (a prior pulling the model toward 0 there). A PSF-aware forward model uses
        it where the model's PSF has no power, which no visit can constrain. None: no extra
        ridge.
    transferCache : int, optional
        Memory limit in bytes (default `DEFAULT_TRANSFER_CACHE`, 256 MiB) for keeping every
        visit's transfers between the solver's passes (the normal equations, each refinement
        iteration and the diagnostics each need them). If the J x N transfers fit (in
        complex64, 8 bytes per value), they are computed once, rounded to single precision
        and used so in every pass; otherwise they are computed again in every pass, at the
        precision of the images (less memory, more time; the models differ at the level of
        single-precision rounding). 0 never keeps them.
    workspace : `ArrayPool`, optional
        Where the kept transfers are taken from and handed back to at the end: give the same
        pool to consecutive solves on the same grid (the subregions of a model) to reuse their
        memory. None: a pool of this call only.

    Returns
    -------
    solution : `DirectSolution`
        The model images ``(N, ny, nx)``, the no-data mask and diagnostics.

    Raises
    ------
    DcrShapeError
        Stacks of different shapes, transfers of the wrong shape.
    DcrTypeError
        Non-float images, non-boolean masks.
    DcrValueError
        NaN/inf at unmasked pixels, non-positive or non-finite variances or weights, a fully
        masked stack, non-finite transfers, negative regularisation.
    """
    threads = resolveThreads(threads)
    if workers is None:
        workers = threads
    images, variances, badMasks = _checkInputs(images, variances, badMasks)
    numVisits, ny, nx = images.shape
    shape = (ny, nx)
    regularization, ridge, maskTolerance, workspace = _checkOptions(
        regularization, ridge, maskPasses, maskTolerance, transferCache, workspace
    )
    getter, padded = _transferGetter(transfers, numVisits, padded)
    padded = _paddedGrid(padded, maxShift, shape, psfSize)
    weights = (
        visitWeights(variances, badMasks) if weights is None else _checkWeights(weights, numVisits)
    )
    visits = [j for j in range(numVisits) if weights[j] > 0]
    realDtype = np.dtype(np.float32) if images.dtype == np.float32 else np.dtype(np.float64)
    cdtype = np.dtype(np.complex64) if realDtype == np.float32 else np.dtype(np.complex128)
    grid = SolveGrid(shape, padded, realDtype, cdtype, workers, threads)

    firstFill, noData = _firstFill(images, badMasks, weights, visits, grid, padMode)
    # Pass 0: accumulate the normal matrix (lower triangle) and the right-hand side.
    system, rhs, kept, n = accumulateNormalEquations(
        images, badMasks, weights, visits, getter, firstFill, grid, transferCache, workspace
    )

    def transferOf(j: int) -> np.ndarray:
        if j in kept:
            return kept[j].astype(cdtype, copy=False)
        return visitTransfer(getter, j, padded, n, cdtype, check=False)

    _regularize(system, n, regularization, regularizer, ridge, weights, frequencyRidge, grid)
    conditions = conditionNumbers(system, n, grid.halfPlane, grid.threads) if diagnostics else {}
    factor = cholesky(system, n, grid.threads)
    solution = choleskySolve(factor, rhs, n, grid.threads)
    del rhs
    changes = refineMasked(
        solution, factor, badMasks, noData, visits, weights, firstFill, transferOf, n, grid,
        maskPasses, maskTolerance,
    )
    models = _modelImages(solution, n, grid)
    residuals = None
    if diagnostics:
        residuals = _visitResiduals(images, variances, badMasks, solution, visits, transferOf,
                                    grid)
    for value in kept.values():
        workspace.give(value)
    kept.clear()
    return DirectSolution(
        modelArrays=models,
        noDataMask=noData,
        weights=weights,
        visitResiduals=residuals,
        conditionNumbers=conditions,
        passChanges=changes,
        paddedShape=tuple(padded),
        regularization=regularization,
    )


def _checkOptions(
    regularization: Any,
    ridge: Any,
    maskPasses: Any,
    maskTolerance: Any,
    transferCache: Any,
    workspace: Any,
) -> tuple[float, float, float, ArrayPool]:
    """Check the numerical options of `solveDirect`; return them with the workspace to use."""
    regularization = _checkNonNegative(regularization, "regularization")
    ridge = _checkNonNegative(ridge, "ridge")
    if not isinstance(maskPasses, numbers.Integral) or maskPasses < 0:
        raise DcrValueError("maskPasses must be an int >= 0", maskPasses=maskPasses)
    maskTolerance = _checkNonNegative(maskTolerance, "maskTolerance")
    if not isinstance(transferCache, numbers.Integral) or transferCache < 0:
        raise DcrValueError(
            "transferCache must be an int >= 0 (bytes; 0 recomputes the transfers in every pass)",
            transferCache=transferCache,
        )
    if workspace is None:
        workspace = ArrayPool()
    elif not isinstance(workspace, ArrayPool):
        raise DcrTypeError("workspace must be a dcrmodel.assemble.direct.ArrayPool or None",
                           type=type(workspace).__name__)
    return regularization, ridge, maskTolerance, workspace


def _paddedGrid(
    padded: tuple[int, int] | None, maxShift: Any, shape: tuple[int, int], psfSize: int
) -> tuple[int, int]:
    """Return the padded FFT grid: ``padded`` if given, else from the shifts and PSF size."""
    if padded is None:
        if maxShift is None:
            raise DcrValueError(
                "give maxShift (the largest |dy|, |dx| of the visits' shifts, pixels) or padded"
            )
        padded = paddedShape(shape, maxShift, psfSize)
    if padded[0] < shape[0] or padded[1] < shape[1]:
        raise DcrShapeError("padded is smaller than the images", padded=padded, shape=shape)
    return padded


def _firstFill(
    images: np.ndarray,
    badMasks: np.ndarray,
    weights: np.ndarray,
    visits: list[int],
    grid: SolveGrid,
    padMode: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the padded first fill and the map of pixels masked in every visit.

    The first fill is the inverse-variance coadd of the good pixels (no DCR),
    nearest-neighbour filled where no visit has data, extended into the margin.
    """
    shape = grid.shape
    numerator, denominator = _weightedSums(images, badMasks, weights, visits, grid.threads)
    noData = denominator == 0
    coadd = np.divide(numerator, denominator, out=np.zeros(shape), where=~noData)
    del numerator, denominator
    if noData.any():
        coadd = fillBadPixels(coadd, noData)
    return padToShape(coadd.astype(grid.realDtype), grid.padded, padMode), noData


def _weightedSums(
    images: np.ndarray, badMasks: np.ndarray, weights: np.ndarray, visits: list[int],
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the sums over visits of weight times good pixels, and of weight, per pixel.

    In blocks of rows, in ``threads`` threads; each pixel's sums are taken over the visits
    in order, whatever ``threads``.
    """
    numerator = np.zeros(images.shape[1:])
    denominator = np.zeros(images.shape[1:])

    def block(rows: slice) -> None:
        sumRows, weightRows = numerator[rows], denominator[rows]
        for j in visits:
            good = ~badMasks[j][rows]
            sumRows += weights[j] * np.where(good, images[j][rows], 0.0)
            weightRows += weights[j] * good

    forRowBlocks(block, images.shape[1], threads)
    return numerator, denominator


def _regularize(
    system: dict[tuple[int, int], np.ndarray],
    n: int,
    regularization: float,
    regularizer: Any,
    ridge: float,
    weights: np.ndarray,
    frequencyRidge: Callable[[tuple[int, int]], np.ndarray] | None,
    grid: SolveGrid,
) -> None:
    """Add the regularisation and the ridges to the normal matrix, in place.

    ``lambda_f = regularization * trace / N`` times the regulariser matrix, plus a ridge on
    the total weight (and the optional per-frequency ridge).
    """
    halfPlane = grid.halfPlane
    trace = sum(system[i, i].real for i in range(n))
    regularizerValues = regularizerMatrix(regularizer, n)
    lambdaF = (regularization / n) * trace
    del trace
    ridgeValue: float | np.ndarray = ridge * float(weights.sum())
    if frequencyRidge is not None:
        extraRidge = np.asarray(frequencyRidge(tuple(grid.padded)), dtype=np.float64)
        if extraRidge.shape != halfPlane or not np.all(
            np.isfinite(extraRidge) & (extraRidge >= 0)
        ):
            raise DcrValueError(
                "frequencyRidge must give finite values >= 0 of shape (ny, nx // 2 + 1) on the "
                "padded grid",
                shape=extraRidge.shape,
                expected=halfPlane,
            )
        ridgeValue = ridgeValue + float(weights.sum()) * extraRidge
    for i in range(n):
        for m in range(i + 1):
            if regularizerValues[i, m] != 0:
                system[i, m] += lambdaF * regularizerValues[i, m]
        system[i, i] += ridgeValue


def _modelImages(solution: np.ndarray, n: int, grid: SolveGrid) -> np.ndarray:
    """Return the ``(N, ny, nx)`` model images of a Fourier solution, in the images' dtype."""
    models = np.empty((n, *grid.shape), dtype=grid.realDtype)
    for k in range(n):
        full = scipy.fft.irfft2(solution[k].astype(grid.complexDtype), s=grid.padded,
                                workers=grid.workers)
        models[k] = cropFromPadded(full, grid.shape)
    return models


def _visitResiduals(
    images: np.ndarray,
    variances: np.ndarray,
    badMasks: np.ndarray,
    solution: np.ndarray,
    visits: list[int],
    transferOf: Callable[[int], np.ndarray],
    grid: SolveGrid,
) -> np.ndarray:
    """Return each visit's reduced chi against its forward model (NaN for weight-0 visits)."""
    realDtype = grid.realDtype
    residuals = np.full(images.shape[0], np.nan)
    solutionC = solution.astype(grid.complexDtype, copy=False)
    # Visits in batches (`batchesOf`) whose inverse transforms run together.
    for batch in batchesOf(visits, grid.threads):
        predictions = predictMany([transferOf(j) for j in batch], solutionC, grid.padded,
                                  grid.workers, grid.threads)
        for j, full in zip(batch, predictions, strict=True):
            residuals[j] = _reducedChi(images[j], variances[j], badMasks[j],
                                       cropFromPadded(full, grid.shape), realDtype,
                                       grid.threads)
    return residuals


def _reducedChi(image: np.ndarray, variance: np.ndarray, bad: np.ndarray,
                prediction: np.ndarray, realDtype: np.dtype, threads: int) -> float:
    """Return one visit's reduced chi against its forward model (NaN without good pixels)."""
    chi2 = np.empty(image.shape, dtype=realDtype)

    def block(rows: slice) -> None:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # Masked pixels (NaN data, zero variance) are dropped below.
            part = chi2[rows]
            np.subtract(image[rows], prediction[rows], out=part, dtype=realDtype)
            part *= part
            part /= variance[rows]

    forRowBlocks(block, image.shape[0], threads)
    if bad.any():
        chi2 = chi2[~bad]
    if not chi2.size:
        return math.nan
    return float(np.sqrt(np.mean(chi2, dtype=np.float64)))


def _checkExtra(value: Any, j: int, n: int, grid: tuple[int, int]) -> np.ndarray:
    array = np.asarray(value)
    if array.shape not in (grid, (n, *grid)):
        raise DcrShapeError(
            f"extraTransfers for visit {j} must be (ny, nx // 2 + 1) or (N, ny, nx // 2 + 1) on "
            "the padded grid",
            shape=array.shape,
            expected=(n, *grid),
        )
    return array


def solveDirectFromShifts(
    images: np.ndarray,
    variances: np.ndarray,
    badMasks: np.ndarray,
    dcrShifts: Sequence[Any],
    mode: str = "smear",
    extraTransfers: Callable[[int, tuple[int, int]], np.ndarray] | None = None,
    psfSize: int = 0,
    **kwargs: Any,
) -> DirectSolution:
    """`solveDirect` with the visits' DCR given as shifts.

    Parameters
    ----------
    images, variances, badMasks : `numpy.ndarray`
        As in `solveDirect`.
    dcrShifts : sequence
        One entry per visit: its per-subfilter DCR in pixels, edge pairs
        ``((dy0, dx0), (dy1, dx1))`` (``calculateDcr(..., splitSubfilters=True)``), or single
        ``(dy, dx)`` shifts for ``mode="mean"``.
    mode : {"smear", "split", "mean"}, optional
        Representation of a subfilter's light (`dcrmodel.fourier.subfilterTransfer`); default
        the smear between the edge shifts.
    extraTransfers : callable, optional
        ``extraTransfers(j, paddedShape)`` returning an extra multiplicative transfer for
        visit ``j``, ``(ny, nx // 2 + 1)`` or ``(N, ny, nx // 2 + 1)`` (for example the ratio
        of the visit's PSF to the model's at each subfilter's wavelength).
    psfSize : int, optional
        Width in pixels of the convolution in ``extraTransfers``, for the padding.
    **kwargs
        Passed to `solveDirect` (``regularization``, ``weights``, ``maskPasses``, ...).

    Returns
    -------
    solution : `DirectSolution`
        With ``mode`` recorded.
    """
    if mode not in TRANSFER_MODES:
        raise DcrValueError(
            f"unknown transfer mode; use one of {', '.join(TRANSFER_MODES)}", mode=mode
        )
    numVisits = np.shape(images)[0] if np.ndim(images) == 3 else None
    try:
        raw = list(dcrShifts)
    except TypeError as error:
        raise DcrTypeError(
            "dcrShifts must be a sequence with one entry per visit",
            type=type(dcrShifts).__name__,
        ) from error
    if numVisits is not None and len(raw) != numVisits:
        raise DcrShapeError(
            "dcrShifts must hold one entry per visit", numShifts=len(raw), numVisits=numVisits
        )
    # Validate every visit's shifts before any work.
    shifts = []
    for j, value in enumerate(raw):
        try:
            shifts.append(dcrShiftArray(value, mode))
        except DcrError as error:
            raise type(error)(f"visit {j}: {error.message}", **error.values) from error
    if len({len(s) for s in shifts}) > 1:
        raise DcrShapeError(
            "every visit must give the DCR of the same number of subfilters",
            numSubfilters=[len(s) for s in shifts],
        )
    if "padded" not in kwargs and "maxShift" not in kwargs:
        kwargs["maxShift"] = maxShiftOf(np.array(shifts)) if shifts else 0.0
    if extraTransfers is not None and not callable(extraTransfers):
        raise DcrTypeError(
            "extraTransfers must be a callable (j, paddedShape) -> transfer array",
            type=type(extraTransfers).__name__,
        )
    dtype = np.complex64 if np.asarray(images).dtype == np.float32 else np.complex128
    threads = kwargs["threads"] = resolveThreads(kwargs.get("threads"))

    def transfers(j: int, padded: tuple[int, int]) -> np.ndarray:
        out = visitTransfers(padded, shifts[j], mode, dtype, threads)
        if extraTransfers is not None:
            extra = _checkExtra(extraTransfers(j, padded), j, out.shape[0], out.shape[1:])
            if extra.ndim == 2:
                extra = extra[None]

            def block(rows: slice) -> None:
                target = out[:, rows]
                target *= extra[:, rows]

            forRowBlocks(block, out.shape[1], threads)
        return out

    solution = solveDirect(images, variances, badMasks, transfers, psfSize=psfSize, **kwargs)
    solution.mode = mode
    return solution
