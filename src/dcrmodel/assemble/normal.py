"""The normal equations of the direct solver, one N x N Hermitian system per frequency.

`dcrmodel.assemble.direct.solveDirect` forms, on the ``rfft2`` grid of the padded images, the
systems ``A^H W A x(f) = A^H W y(f)`` of the N subfilters (`accumulateNormalEquations`), factors
all of them at once (`cholesky`, a vectorised Cholesky factorisation, with `choleskySolve` and
`choleskyMultiply`), measures them (`conditionNumbers`) and refines the solution around masked
pixels by preconditioned conjugate gradients (`refineMasked`). A stack of systems is a dict
mapping an entry ``(i, l)`` of the lower triangle to its array over the frequencies.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable

import numpy as np
import scipy.fft

from ..errors import DcrShapeError, DcrValueError
from ..fourier import cropFromPadded
from ..parallel import forRowBlocks
from .workspace import ArrayPool

__all__ = [
    "SolveGrid",
    "visitTransfer",
    "accumulateNormalEquations",
    "cholesky",
    "choleskySolve",
    "choleskyMultiply",
    "conditionNumbers",
    "predict",
    "predictMany",
    "batchesOf",
    "refineMasked",
]

_log = logging.getLogger(__name__)

#: Precision of the transfers kept between passes: single, like the PSF factors of a
#: PSF-aware model (the transfers are smooth factors of order 1).
_KEPT_DTYPE = np.dtype(np.complex64)

#: Visits whose products are summed in single precision before they are added to the normal
#: equations (kept in double precision).
_PARTIAL_VISITS = 8

#: Most visits whose Fourier transforms are made in one call (`batchesOf`; with ``threads``
#: >= 2 the transforms of a batch run on the threads together, see `predictMany`).
_TRANSFORM_BATCH = 4

#: Frequencies per block when computing condition numbers (bounds the temporary memory).
_CONDITION_BLOCK = 1 << 16

#: Largest number of frequencies whose condition numbers are computed: larger grids are
#: sampled on every s-th row and column (a regular subsample that keeps zero frequency), which
#: describes the systems as well at a small fraction of the cost of one eigenvalue
#: decomposition per frequency.
_CONDITION_SAMPLES = 1 << 15

TransferGetter = Callable[[int, tuple[int, int]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class SolveGrid:
    """The grids and precisions of one direct solve.

    Attributes
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the images, pixels.
    padded : tuple of int
        ``(ny, nx)`` of the padded FFT grid, pixels (as given to the solver).
    realDtype : `numpy.dtype`
        float32 or float64: the precision in which the images are transformed.
    complexDtype : `numpy.dtype`
        complex64 or complex128, the complex type of ``realDtype``.
    workers : int or None
        Threads for ``scipy.fft``.
    threads : int
        Threads for the per-frequency work, split in blocks of rows of the half-plane grid
        (`dcrmodel.parallel.forRowBlocks`); the values do not depend on it.
    """

    shape: tuple[int, int]
    padded: tuple[int, int]
    realDtype: np.dtype
    complexDtype: np.dtype
    workers: int | None
    threads: int = 1

    @property
    def halfPlane(self) -> tuple[int, int]:
        """The ``rfft2`` grid of `padded`: ``(ny, nx // 2 + 1)``."""
        return (self.padded[0], self.padded[1] // 2 + 1)


def visitTransfer(
    getter: TransferGetter,
    j: int,
    padded: tuple[int, int],
    n: int | None,
    cdtype: np.dtype,
    check: bool = True,
) -> np.ndarray:
    """Return the transfers of visit ``j``, checked, in ``cdtype``.

    Parameters
    ----------
    getter : callable
        ``getter(j, padded)`` returning the ``(N, ny, nx // 2 + 1)`` transfers of visit ``j``.
    j : int
        The visit.
    padded : tuple of int
        The padded FFT grid ``(ny, nx)``, pixels.
    n : int or None
        The number of subfilters N, when known.
    cdtype : `numpy.dtype`
        The complex type to return.
    check : bool, optional
        Refuse non-finite values (the first pass over the visits checks them once).

    Raises
    ------
    DcrShapeError
        Transfers of the wrong shape.
    DcrValueError
        Non-finite transfers (with ``check``).
    """
    grid = (padded[0], padded[1] // 2 + 1)
    value = np.asarray(getter(j, padded))
    if value.ndim != 3 or value.shape[1:] != grid or (n is not None and value.shape[0] != n):
        raise DcrShapeError(
            f"the transfers of visit {j} must be (N, ny, nx // 2 + 1) on the padded grid",
            shape=value.shape,
            expected=("N", *grid) if n is None else (n, *grid),
        )
    if check and not np.all(np.isfinite(value)):
        raise DcrValueError(f"the transfers of visit {j} have NaN or infinite values", visit=j)
    return value.astype(cdtype, copy=False)


# ---------------------------------------------------------------------------------------------
# Pass 0: the normal equations
# ---------------------------------------------------------------------------------------------


def accumulateNormalEquations(
    images: np.ndarray,
    badMasks: np.ndarray,
    weights: np.ndarray,
    visits: list[int],
    getter: TransferGetter,
    firstFill: np.ndarray,
    grid: SolveGrid,
    transferCache: int,
    workspace: ArrayPool,
) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray, dict[int, np.ndarray], int]:
    """Accumulate the normal matrix (lower triangle) and the right-hand side over the visits.

    Each visit's good pixels are written over the padded first fill (the coadd, extended into
    the margin) and transformed once. Its terms are formed in the transfers' precision and
    summed over up to 8 visits before they are added to the double precision sums.

    Parameters
    ----------
    images : `numpy.ndarray`
        ``(J, ny, nx)`` visits, counts.
    badMasks : `numpy.ndarray`
        Boolean ``(J, ny, nx)``, True at pixels not to use.
    weights : `numpy.ndarray`
        ``(J,)`` visit weights, 1/counts^2.
    visits : list of int
        The visits of weight > 0, in order.
    getter : callable
        ``getter(j, padded)`` returning the transfers of visit ``j``.
    firstFill : `numpy.ndarray`
        The padded first fill, in ``grid.realDtype``.
    grid : `SolveGrid`
        The grids and precisions.
    transferCache : int
        Memory limit in bytes for keeping every visit's transfers for the later passes.
    workspace : `ArrayPool`
        Where the kept transfers are taken from.

    Returns
    -------
    system : dict
        ``(i, l) -> (ny, nx // 2 + 1)`` lower triangle of ``A^H W A`` (float64 on the
        diagonal, complex128 elsewhere).
    rhs : `numpy.ndarray`
        ``(N, ny, nx // 2 + 1)`` complex128 ``A^H W y``.
    kept : dict
        ``j -> (N, ny, nx // 2 + 1)`` complex64 transfers of every visit, when they all fit in
        ``transferCache`` (taken from ``workspace``); else empty.
    n : int
        The number of subfilters N.
    """
    padded = grid.padded
    realDtype, cdtype = grid.realDtype, grid.complexDtype
    numSubfilters: int | None = None
    system: dict[tuple[int, int], np.ndarray] = {}
    rhs: np.ndarray | None = None
    # Each visit's transfers, kept for the later passes if they all fit in transferCache.
    kept: dict[int, np.ndarray] = {}
    keep = False
    # The visits are transformed in batches (`batchesOf`), one rfft2 call per batch (see
    # `predictMany`), then added one by one in order.
    batches = batchesOf(visits, grid.threads)
    works = np.empty((len(batches[0]), *padded), dtype=realDtype)
    done = 0
    for batch in batches:
        transfers = []
        for j in batch:
            # Checked for non-finite values block by block below.
            transfer = visitTransfer(getter, j, padded, numSubfilters, cdtype, check=False)
            if numSubfilters is None:
                keep = len(visits) * transfer.size * _KEPT_DTYPE.itemsize <= transferCache
                numSubfilters = transfer.shape[0]
                system, rhs, partialSystem, partialRhs = _emptySums(numSubfilters, grid)
            transfers.append(transfer)
        work = works[:len(batch)]
        for j, slot in zip(batch, work, strict=True):
            _paddedData(slot, firstFill, images[j], badMasks[j], grid)
        spectra = scipy.fft.rfft2(work, axes=(-2, -1), workers=grid.workers)
        for j, transfer, spectrum in zip(batch, transfers, spectra, strict=True):
            # Every pass, this one included, uses the kept (single-precision) values.
            keptArray = None
            if keep:
                keptArray = kept[j] = workspace.take(transfer.shape, _KEPT_DTYPE)
            done += 1
            flush = done % _PARTIAL_VISITS == 0 or j == visits[-1]
            _accumulateVisit(j, (partialSystem, partialRhs), transfer, keptArray, spectrum,
                             weights[j], numSubfilters, (system, rhs) if flush else None,
                             grid)
    assert rhs is not None and numSubfilters is not None
    return system, rhs, kept, numSubfilters


def _emptySums(
    n: int, grid: SolveGrid
) -> tuple[dict[tuple[int, int], np.ndarray], np.ndarray, dict[tuple[int, int], np.ndarray],
           np.ndarray]:
    """Zeroed sums of the normal equations of N subfilters, and their partial sums.

    The double precision sums are the lower triangle of ``A^H W A`` (its diagonal real, as
    float64) and ``A^H W y``. The partial sums, over up to `_PARTIAL_VISITS` visits, are
    in the transfers' precision and added to the double precision sums every
    `_PARTIAL_VISITS` visits (half the memory traffic of adding every visit to them; the
    rounding of a partial sum of k products is k times the single-precision epsilon, far
    below the regularisation).
    """
    halfPlane = grid.halfPlane
    system = {
        (i, m): np.zeros(halfPlane, dtype=np.float64 if i == m else np.complex128)
        for i in range(n)
        for m in range(i + 1)
    }
    rhs = np.zeros((n, *halfPlane), dtype=np.complex128)
    partialSystem = {
        key: np.zeros(halfPlane, dtype=grid.complexDtype if key[0] != key[1]
                      else grid.realDtype)
        for key in system
    }
    partialRhs = np.zeros((n, *halfPlane), dtype=grid.complexDtype)
    return system, rhs, partialSystem, partialRhs


def _paddedData(
    work: np.ndarray, firstFill: np.ndarray, image: np.ndarray, bad: np.ndarray, grid: SolveGrid
) -> None:
    """Write the first fill into ``work``, then the visit's good pixels over it (row blocks)."""

    def fill(rows: slice) -> None:
        np.copyto(work[rows], firstFill[rows])

    forRowBlocks(fill, work.shape[0], grid.threads)
    inner = cropFromPadded(work, grid.shape)

    def insert(rows: slice) -> None:
        np.copyto(inner[rows], image[rows], where=~bad[rows], casting="unsafe")

    forRowBlocks(insert, grid.shape[0], grid.threads)


def _accumulateVisit(
    j: int,
    partial: tuple[dict, np.ndarray],
    transfer: np.ndarray,
    keptArray: np.ndarray | None,
    spectrum: np.ndarray,
    weight: float,
    n: int,
    flushTo: tuple[dict, np.ndarray] | None,
    grid: SolveGrid,
) -> None:
    """Add visit ``j`` to the partial sums, in blocks of rows: check, keep and accumulate.

    Each block of its transfers is checked for non-finite values, copied into
    ``keptArray`` (when the transfers are kept; the kept single-precision values are then
    used) and added to the sums (`_accumulateBlock`).

    Raises
    ------
    DcrValueError
        If the transfers have NaN or infinite values.
    """
    nonFinite: list[slice] = []
    partialSystem, partialRhs = partial

    def block(rows: slice) -> None:
        values = transfer[:, rows]
        if not np.all(np.isfinite(values)):
            nonFinite.append(rows)
            return
        if keptArray is not None:
            np.copyto(keptArray[:, rows], values, casting="same_kind")
            values = keptArray[:, rows].astype(grid.complexDtype, copy=False)
        _accumulateBlock(partialSystem, partialRhs, values, spectrum, weight, n, rows, flushTo)

    forRowBlocks(block, spectrum.shape[0], grid.threads)
    if nonFinite:
        raise DcrValueError(f"the transfers of visit {j} have NaN or infinite values", visit=j)


def _accumulateRows(
    system: dict | None,
    rhs: np.ndarray,
    transfer: np.ndarray,
    spectrum: np.ndarray,
    weight: float,
    n: int,
    threads: int,
    flushTo: tuple[dict, np.ndarray] | None = None,
) -> None:
    """`_accumulate` (with the system when given) in blocks of rows, in ``threads`` threads.

    With ``flushTo`` = ``(totalSystem, totalRhs)`` the partial sums are then added to those
    and zeroed, block by block. Every value is formed by the same operations as one call of
    `_accumulate` on the whole grid.
    """

    def block(rows: slice) -> None:
        _accumulateBlock(system, rhs, transfer[:, rows], spectrum, weight, n, rows, flushTo)

    forRowBlocks(block, spectrum.shape[0], threads)


def _accumulateBlock(
    system: dict | None,
    rhs: np.ndarray,
    transferRows: np.ndarray,
    spectrum: np.ndarray,
    weight: float,
    n: int,
    rows: slice,
    flushTo: tuple[dict, np.ndarray] | None,
) -> None:
    """`_accumulate` on the ``rows`` of the sums (the transfers given on those rows already).

    With ``flushTo`` the partial sums of those rows are then added to it and zeroed.
    """
    partial = None if system is None else {key: value[rows] for key, value in system.items()}
    partialRhs = rhs[:, rows]
    _accumulate(partial, partialRhs, transferRows, spectrum[rows], weight, n,
                withSystem=system is not None)
    if flushTo is not None:
        totalSystem, totalRhs = flushTo
        if partial is not None:
            for key, value in partial.items():
                target = totalSystem[key][rows]
                target += value
                value.fill(0)
        target = totalRhs[:, rows]
        target += partialRhs
        partialRhs.fill(0)


def _accumulate(
    system: dict | None,
    rhs: np.ndarray,
    transfer: np.ndarray,
    spectrum: np.ndarray,
    weight: float,
    n: int,
    withSystem: bool,
) -> None:
    """Add one visit to A^H W y (``rhs``) and, with ``withSystem``, to A^H W A (lower).

    The products are formed in the transfers' precision and added to the (double
    precision) sums; the diagonal of A^H W A, ``w |A_i|^2``, is real.
    """
    weighted = np.empty_like(transfer[0])
    product = np.empty_like(weighted)
    for i in range(n):
        np.conjugate(transfer[i], out=weighted)
        weighted *= weighted.real.dtype.type(weight)
        if withSystem and system is not None:
            for m in range(i):
                np.multiply(weighted, transfer[m], out=product)
                system[i, m] += product
            diagonal = system[i, i]
            diagonal += weight * (transfer[i].real**2 + transfer[i].imag**2)
        np.multiply(weighted, spectrum, out=product)
        rhs[i] += product


# ---------------------------------------------------------------------------------------------
# Vectorised Hermitian solves on stacked N x N systems (layout: entry (i, l) -> array over f)
# ---------------------------------------------------------------------------------------------


def _rowsOf(factor: dict, rows: slice) -> dict:
    """Return the entries of a stack of systems restricted to some rows of their grid."""
    return {key: value[rows] for key, value in factor.items()}


def cholesky(system: dict[tuple[int, int], np.ndarray], n: int, threads: int = 1) -> dict:
    """Factor P = L L^H in place for every frequency; ``system`` holds the lower triangle.

    The frequencies are factored in blocks of rows of their grid in ``threads`` threads
    (`dcrmodel.parallel.forRowBlocks`; grids of one dimension in one block): every value
    is computed by the same operations whatever ``threads``. The diagonal becomes real.

    Raises
    ------
    DcrValueError
        If a system is not positive definite.
    """
    factor = system
    for j in range(n):
        if np.iscomplexobj(factor[j, j]):
            factor[j, j] = factor[j, j].real.copy()
    notDefinite: list[int] = []

    def block(rows: slice) -> None:
        sub = _rowsOf(factor, rows)
        for j in range(n):
            diagonal = sub[j, j].copy()
            for m in range(j):
                diagonal -= sub[j, m].real ** 2 + sub[j, m].imag ** 2
            if not np.all(diagonal > 0):
                notDefinite.append(int(np.count_nonzero(~(diagonal > 0))))
                return
            np.sqrt(diagonal, out=sub[j, j])
            for i in range(j + 1, n):
                value = sub[i, j]
                for m in range(j):
                    value -= sub[i, m] * np.conj(sub[j, m])
                value /= sub[j, j]

    _forFrequencies(block, factor[0, 0], threads)
    if notDefinite:
        raise DcrValueError(
            "the normal equations are not positive definite at some frequencies; increase "
            "the regularization or the ridge",
            frequencies=sum(notDefinite),
        )
    return factor


def _forFrequencies(function: Callable[[slice], None], grid: np.ndarray, threads: int) -> None:
    """`forRowBlocks` over the rows of a frequency grid (its first axis; 1-D: one block)."""
    if grid.ndim < 2:
        function(slice(None))
    else:
        forRowBlocks(function, grid.shape[0], threads)


def choleskySolve(factor: dict, rhs: np.ndarray, n: int, threads: int = 1) -> np.ndarray:
    """Solve L L^H x = rhs for every frequency; rhs is (N, ...) complex.

    In blocks of rows of the frequency grid, in ``threads`` threads (values independent of
    it). Returns a new array of ``rhs``'s dtype.
    """
    out = np.empty(rhs.shape, dtype=rhs.dtype)

    def block(rows: slice) -> None:
        sub = _rowsOf(factor, rows)
        x = out[:, rows]
        for i in range(n):
            value = x[i]
            value[...] = rhs[i][rows]
            for m in range(i):
                value -= sub[i, m] * x[m]
            value /= sub[i, i]
        for i in reversed(range(n)):
            value = x[i]
            for m in range(i + 1, n):
                value -= np.conj(sub[m, i]) * x[m]
            value /= sub[i, i]

    _forFrequencies(block, rhs[0], threads)
    return out


def choleskyMultiply(factor: dict, vector: np.ndarray, n: int, threads: int = 1) -> np.ndarray:
    """Return P v = L (L^H v) for every frequency; vector is (N, ...) complex.

    In blocks of rows of the frequency grid, in ``threads`` threads (values independent of
    it).
    """
    out = np.empty(vector.shape, dtype=np.result_type(vector, factor[n - 1, 0]))

    def block(rows: slice) -> None:
        sub = _rowsOf(factor, rows)
        part = vector[:, rows]
        half = []
        for i in range(n):
            value = sub[i, i] * part[i]
            for m in range(i + 1, n):
                value = value + np.conj(sub[m, i]) * part[m]
            half.append(value)
        for i in range(n):
            value = sub[i, i] * half[i]
            for m in range(i):
                value = value + sub[i, m] * half[m]
            out[i, rows] = value

    _forFrequencies(block, vector[0], threads)
    return out


def conditionNumbers(
    system: dict, n: int, shape: tuple[int, ...], threads: int = 1
) -> dict[str, float]:
    """Condition numbers (max / min eigenvalue) of the stacked Hermitian systems.

    Grids of more than ``_CONDITION_SAMPLES`` frequencies are subsampled on every s-th row
    and column. The eigenvalues are found in blocks in ``threads`` threads.
    """
    step = max(1, math.ceil(math.sqrt(int(np.prod(shape)) / _CONDITION_SAMPLES)))
    flat = {key: value[::step, ::step].reshape(-1) for key, value in system.items()}
    size = next(iter(flat.values())).size
    conditions = np.empty(size)

    def eigenBlock(part: slice) -> None:
        block = np.empty((part.stop - part.start, n, n), dtype=np.complex128)
        for i in range(n):
            for m in range(i + 1):
                block[:, i, m] = flat[i, m][part]
                block[:, m, i] = np.conj(flat[i, m][part])
        eigen = np.linalg.eigvalsh(block)
        conditions[part] = eigen[:, -1] / eigen[:, 0]

    forRowBlocks(eigenBlock, size, threads,
                 min(_CONDITION_BLOCK, math.ceil(size / max(1, threads))))
    return {
        "max": float(conditions.max()),
        "median": float(np.median(conditions)),
        "p99": float(np.percentile(conditions, 99)),
        "zeroFrequency": float(conditions[0]),
    }


def predict(
    transfer: np.ndarray,
    solution: np.ndarray,
    padded: tuple[int, int],
    workers: int | None,
    threads: int = 1,
) -> np.ndarray:
    """Return the padded forward model ``irfft2(sum_k A_k X_k)`` of one visit.

    ``solution`` must already have the transfer's dtype. The sum is formed in blocks of
    rows in ``threads`` threads (values independent of it).
    """
    return predictMany([transfer], solution, padded, workers, threads)[0]


def predictMany(
    transfers: list[np.ndarray],
    solution: np.ndarray,
    padded: tuple[int, int],
    workers: int | None,
    threads: int = 1,
) -> np.ndarray:
    """Return the padded forward models of several visits, ``(len(transfers), ny, nx)``.

    Each is `predict`'s, bit for bit: the sums are formed visit by visit, and the inverse
    transforms of the stack are one ``scipy.fft.irfft2`` call, which transforms each image
    by the same operations as a call of its own but runs them on ``workers`` threads
    together. Measured at 625^2 on 2 threads: a batch of 2 transforms is 1.68 (forward) and
    1.78 (inverse) times faster per transform than one thread, a single transform 1.38 and
    1.52 times.
    """
    dtype = np.result_type(transfers[0], solution)
    totals = np.empty((len(transfers), *transfers[0].shape[1:]), dtype=dtype)
    for transfer, total in zip(transfers, totals, strict=True):

        def block(rows: slice, transfer: np.ndarray = transfer,
                  total: np.ndarray = total) -> None:
            target = total[rows]
            np.multiply(transfer[0][rows], solution[0][rows], out=target)
            term = np.empty_like(target)
            for k in range(1, transfer.shape[0]):
                np.multiply(transfer[k][rows], solution[k][rows], out=term)
                target += term

        forRowBlocks(block, total.shape[0], threads)
    return scipy.fft.irfft2(totals, s=padded, axes=(-2, -1), workers=workers)


def batchesOf(items: list[int], threads: int) -> list[list[int]]:
    """Split ``items`` in order into batches whose transforms are made in one call.

    A batch holds ``threads`` items, but at most `_TRANSFORM_BATCH` (each item of a batch
    holds its images in memory at the same time) and at least one.
    """
    size = max(1, min(int(threads), _TRANSFORM_BATCH))
    return [items[start:start + size] for start in range(0, len(items), size)]


# ---------------------------------------------------------------------------------------------
# Refinement around masked pixels
# ---------------------------------------------------------------------------------------------


def refineMasked(
    solution: np.ndarray,
    factor: dict,
    badMasks: np.ndarray,
    noData: np.ndarray,
    visits: list[int],
    weights: np.ndarray,
    firstFill: np.ndarray,
    transferOf: Callable[[int], np.ndarray],
    n: int,
    grid: SolveGrid,
    maskPasses: int,
    maskTolerance: float,
) -> list[float]:
    """Refine ``solution`` (in place) on the problem restricted to the unmasked pixels.

    Parameters
    ----------
    solution : `numpy.ndarray`
        ``(N, ny, nx // 2 + 1)`` complex128 first solution, updated in place.
    factor : dict
        The Cholesky factor of the regularised systems (`cholesky`): the preconditioner.
    badMasks : `numpy.ndarray`
        Boolean ``(J, ny, nx)``, True at pixels not to use.
    noData : `numpy.ndarray`
        Boolean ``(ny, nx)``: pixels masked in every visit.
    visits : list of int
        The visits of weight > 0.
    weights : `numpy.ndarray`
        ``(J,)`` visit weights.
    firstFill : `numpy.ndarray`
        The padded first fill (the data of the margin and of the no-data pixels).
    transferOf : callable
        ``transferOf(j)``: the transfers of visit ``j`` in ``grid.complexDtype``.
    n : int
        The number of subfilters N.
    grid : `SolveGrid`
        The grids and precisions.
    maskPasses : int
        Maximum number of conjugate-gradient iterations.
    maskTolerance : float
        Stop when a step is smaller than this fraction of the whole refinement so far.

    Returns
    -------
    list of float
        The size of each step relative to the refinement so far; empty without masked
        pixels or passes.
    """
    # Refinement: conjugate gradients on the problem restricted to the unmasked pixels (the
    # margin keeps the extended coadd as its data: a boundary condition), preconditioned by the
    # unmasked Fourier solution P^-1. Without masked pixels the first solve is already exact.
    # With P = A^H W A + Reg over all pixels (what the first solve inverted), the operator of
    # the masked problem is K = P - sum_j w_j A_j^H B_j A_j (B_j: the visit's masked pixels),
    # so only visits with masked pixels cost FFTs; and since P x0 = b for the coadd-filled
    # data, the first residual is sum_j w_j A_j^H B_j (A_j x0 - coadd).
    # Pixels masked in every visit have no data at all: like the margin, they keep the filled
    # coadd as pseudo-data (otherwise nothing but the tiny ridge would hold the model there).
    def refinedMask(j: int) -> np.ndarray:
        return badMasks[j] & ~noData if noData.any() else badMasks[j]

    maskedVisits = [j for j in visits if refinedMask(j).any()]
    if not (maskPasses > 0 and maskedVisits):
        return []
    # Flat indices in the padded grid of each masked visit's refined pixels: the masked term
    # scatters the prediction there into one reused array instead of masking whole images.
    paddedIndex = np.arange(grid.padded[0] * grid.padded[1]).reshape(grid.padded)
    innerIndex = cropFromPadded(paddedIndex, grid.shape)
    maskedIndices = {j: innerIndex[refinedMask(j)] for j in maskedVisits}
    del paddedIndex, innerIndex
    maskedTerm = _maskedTerm(
        maskedVisits, maskedIndices, firstFill.reshape(-1), transferOf, weights, n, grid
    )
    # The refinement works at the images' precision: it corrects a solution found in
    # double precision by a small amount, to a relative tolerance far above rounding.
    factorCg = {
        key: value.astype(grid.complexDtype if np.iscomplexobj(value) else grid.realDtype,
                          copy=False)
        for key, value in factor.items()
    }
    return _conjugateGradients(
        solution, factorCg, maskedTerm, n, _parsevalWeights(grid.padded), int(maskPasses),
        maskTolerance, grid.threads,
    )


def _maskedTerm(
    maskedVisits: list[int],
    maskedIndices: dict[int, np.ndarray],
    fillValues: np.ndarray,
    transferOf: Callable[[int], np.ndarray],
    weights: np.ndarray,
    n: int,
    grid: SolveGrid,
) -> Callable[[np.ndarray, bool], np.ndarray]:
    """Return ``maskedTerm(x, minusCoadd)``: ``sum_j w_j A_j^H B_j (A_j x [- coadd])``."""
    padded, workers, threads = grid.padded, grid.workers, grid.threads
    cdtype, realDtype = grid.complexDtype, grid.realDtype

    def maskedTerm(vector: np.ndarray, minusCoadd: bool) -> np.ndarray:
        out = np.zeros(vector.shape, dtype=cdtype)
        vectorC = vector.astype(cdtype, copy=False)
        # Visits in batches (`batchesOf`) whose transforms run together (`predictMany`);
        # each visit's term is then added in order, as one visit at a time would.
        batches = batchesOf(maskedVisits, threads)
        works = np.zeros((len(batches[0]), *padded), dtype=realDtype)
        for batch in batches:
            transfers = [transferOf(j) for j in batch]
            predictions = predictMany(transfers, vectorC, padded, workers, threads)
            work = works[:len(batch)]
            flatWorks = work.reshape(len(batch), -1)
            for j, flatWork, prediction in zip(batch, flatWorks,
                                               predictions.reshape(len(batch), -1),
                                               strict=True):
                indices = maskedIndices[j]
                flatWork[indices] = prediction[indices]
                if minusCoadd:
                    flatWork[indices] -= fillValues[indices]
            del predictions
            spectra = scipy.fft.rfft2(work, axes=(-2, -1), workers=workers)
            for j, flatWork in zip(batch, flatWorks, strict=True):
                flatWork[maskedIndices[j]] = 0.0
            for j, transfer, spectrum in zip(batch, transfers, spectra, strict=True):
                _accumulateRows(None, out, transfer, spectrum, weights[j], n, threads)
        return out

    return maskedTerm


def _conjugateGradients(
    solution: np.ndarray,
    factorCg: dict,
    maskedTerm: Callable[[np.ndarray, bool], np.ndarray],
    n: int,
    columnWeights: np.ndarray,
    maskPasses: int,
    maskTolerance: float,
    threads: int = 1,
) -> list[float]:
    """Preconditioned conjugate gradients on ``K = P - maskedTerm``; update ``solution``."""
    changes: list[float] = []
    residual = maskedTerm(solution, True)
    preconditioned = choleskySolve(factorCg, residual, n, threads)
    direction = preconditioned.copy()
    rz = _dot(residual, preconditioned, columnWeights)
    initial = np.sqrt(max(rz, 0.0))
    # The refinement so far, in Fourier space: its size (and each step's) over the
    # padded grid follows from Parseval's theorem, without inverse transforms.
    correction = np.zeros_like(residual)
    for _ in range(maskPasses):
        if initial == 0.0 or rz <= 0.0:
            break
        product = choleskyMultiply(factorCg, direction, n, threads)
        _inBlocks(threads, _subtract, product, maskedTerm(direction, False))
        curvature = _dot(direction, product, columnWeights)
        if not curvature > 0:
            break
        alpha = rz / curvature
        _inBlocks(threads, _addScaled, solution, alpha, direction)
        _inBlocks(threads, _addScaled, residual, -alpha, product)
        preconditioned = choleskySolve(factorCg, residual, n, threads)
        rzNew = _dot(residual, preconditioned, columnWeights)
        _inBlocks(threads, _addScaled, correction, alpha, direction)
        stepNorm = abs(alpha) * math.sqrt(max(_dot(direction, direction, columnWeights), 0.0))
        correctionNorm = math.sqrt(max(_dot(correction, correction, columnWeights), 0.0))
        change = float(stepNorm / max(correctionNorm, 1e-300))
        changes.append(change)
        _log.debug(
            "direct solver refinement %d: step/correction %.3g, preconditioned residual %.3g",
            len(changes),
            change,
            np.sqrt(max(rzNew, 0.0)) / initial,
        )
        if change < maskTolerance:
            break
        _inBlocks(threads, _scaleAdd, direction, rzNew / rz, preconditioned)
        rz = rzNew
    return changes


def _inBlocks(threads: int, function: Callable[..., None], target: np.ndarray,
              *operands: object) -> None:
    """Call ``function(target[:, rows], *operands[:, rows])`` for blocks of the grid's rows.

    Arrays among ``operands`` are sliced like ``target``; numbers are passed as they are.
    """

    def block(rows: slice) -> None:
        function(target[:, rows], *(value[:, rows] if isinstance(value, np.ndarray) else value
                                     for value in operands))

    forRowBlocks(block, target.shape[1], threads)


def _subtract(target: np.ndarray, value: np.ndarray) -> None:
    target -= value


def _addScaled(target: np.ndarray, scale: float, value: np.ndarray) -> None:
    """``target += scale * value`` (``target -= a * value`` for ``scale = -a``)."""
    if scale < 0:
        target -= (-scale) * value
    else:
        target += scale * value


def _scaleAdd(target: np.ndarray, scale: float, value: np.ndarray) -> None:
    target *= scale
    target += value


def _parsevalWeights(padded: tuple[int, int]) -> np.ndarray:
    """Per-column weights of the rfft2 grid: 1 on self-conjugate columns, 2 elsewhere."""
    weights = np.full(padded[1] // 2 + 1, 2.0)
    weights[0] = 1.0
    if padded[1] % 2 == 0:
        weights[-1] = 1.0
    return weights


def _dot(a: np.ndarray, b: np.ndarray, columnWeights: np.ndarray) -> float:
    """Real-space inner product of two real fields given by their rfft2 (up to 1/size)."""
    return float(np.sum(columnWeights * np.real(np.conj(a) * b).sum(axis=(0, 1),
                                                                  dtype=np.float64)))
