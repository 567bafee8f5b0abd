"""Fourier-space DCR applied to images: single images and the template engine.

`applyTransfer` and `fourierShift` move one image by a transfer function
(`dcrmodel.fourier.transfer`) on a padded grid (`dcrmodel.fourier.padding`).
`FourierTemplateEngine` caches the ``rfft2`` of a model's subfilter images, so that a
DCR-matched template, the sum over subfilters of each subfilter's model image moved (or
smeared) by its DCR, is one inverse FFT of the sum of the model's transforms times their
transfer functions.

Conventions: arrays are ``(y, x)``, shifts ``(dy, dx)`` in pixels, and a positive shift moves
the content toward larger indices, as ``scipy.ndimage.shift`` does. Images are embedded in a
larger, FFT-friendly array (`dcrmodel.fourier.padding.paddedShape`) and the margin is filled by
extending the edges, so that what leaves one side never wraps around into the other.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage

from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from ..parallel import availableCores, forRowBlocks, resolveThreads
from .padding import (
    allowedShift,
    asMaxShift,
    checkFits,
    checkPadMode,
    cropFromPadded,
    fillBadPixels,
    maxShiftOf,
    paddedShape,
    padToShape,
    psfHalf,
)
from .transfer import (
    asDcrList,
    checkMode,
    checkShape,
    complexDtype,
    realDtype,
    subfilterTransfer,
    transferRows,
    visitTransfers,
)

__all__ = [
    "applyTransfer",
    "fourierShift",
    "FourierTemplateEngine",
]

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Single images
# ---------------------------------------------------------------------------------------------


def _floatImage(image: Any, name: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 2:
        raise DcrShapeError(f"{name} must be a 2-D array (y, x)", shape=array.shape)
    if array.dtype.kind in "iub":
        array = array.astype(np.float64)
    if array.dtype not in (np.float32, np.float64):
        raise DcrTypeError(f"{name} must be a float32 or float64 array", dtype=array.dtype)
    return array


def applyTransfer(
    image: np.ndarray,
    transfer: np.ndarray,
    padded: tuple[int, int],
    padMode: str = "edge",
    workers: int | None = None,
) -> np.ndarray:
    """Apply a transfer function to one image: pad, ``rfft2``, multiply, ``irfft2``, crop.

    Parameters
    ----------
    image : `numpy.ndarray`
        2-D float image, finite.
    transfer : `numpy.ndarray`
        Complex array of shape ``(padded[0], padded[1] // 2 + 1)``.
    padded : tuple of int
        ``(ny, nx)`` of the padded grid the transfer was computed on.
    padMode : str, optional
        How the margin is filled (see `padToShape`).
    workers : int, optional
        Threads for ``scipy.fft`` (None: scipy's default).

    Returns
    -------
    result : `numpy.ndarray`
        Array of the image's shape and dtype.
    """
    array = _floatImage(image, "image")
    padded = checkShape(padded, "padded")
    if transfer.shape != (padded[0], padded[1] // 2 + 1):
        raise DcrShapeError(
            "transfer does not match the padded grid (ny, nx // 2 + 1)",
            transferShape=transfer.shape,
            padded=padded,
        )
    if not np.all(np.isfinite(array)):
        raise DcrValueError("image has NaN or infinite pixels; fill or mask them first")
    spectrum = scipy.fft.rfft2(padToShape(array, padded, padMode), workers=workers)
    spectrum *= transfer
    out = scipy.fft.irfft2(spectrum, s=padded, workers=workers)
    return np.ascontiguousarray(cropFromPadded(out, array.shape), dtype=array.dtype)


def fourierShift(
    image: np.ndarray,
    dcr: Any,
    mode: str = "mean",
    useInverse: bool = False,
    padMode: str = "edge",
    workers: int | None = None,
) -> np.ndarray:
    """Move one image by a subfilter's DCR in Fourier space (the Fourier analogue of applyDcr).

    Parameters
    ----------
    image : `numpy.ndarray`
        2-D float image, finite.
    dcr : sequence
        ``(dy, dx)`` (``mode="mean"``) or the edge shifts ``((dy0, dx0), (dy1, dx1))``, pixels.
    mode : {"mean", "split", "smear"}, optional
        Representation of the subfilter (`subfilterTransfer`); default ``"mean"``: one shift.
    useInverse : bool, optional
        Apply the adjoint: negated shifts (for a smear, the smear along the negated segment).
    padMode : str, optional
        How the margin is filled (see `padToShape`).
    workers : int, optional
        Threads for ``scipy.fft``.

    Returns
    -------
    shifted : `numpy.ndarray`
        Array of the image's shape and dtype.
    """
    array = _floatImage(image, "image")
    mode = checkMode(mode)
    edges = asDcrList([dcr], mode, "dcr")[0]
    if useInverse:
        edges = -edges
    padded = paddedShape(array.shape, maxShiftOf(edges))
    transfer = subfilterTransfer(padded, edges, mode, complexDtype(array.dtype))
    return applyTransfer(array, transfer, padded, padMode, workers)


# ---------------------------------------------------------------------------------------------
# Template engine
# ---------------------------------------------------------------------------------------------


def _fingerprint(arrays: Sequence[np.ndarray]) -> tuple[int, ...]:
    """CRC32 of each array's bytes: detects any change made to the arrays in place."""
    out = []
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        out.append(zlib.crc32(memoryview(contiguous).cast("B")))
    return tuple(out)


TransferSource = np.ndarray | Callable[[tuple[int, int]], np.ndarray]


class FourierTemplateEngine:
    """Build DCR-matched templates from a model's subfilter images with one inverse FFT.

    The model's ``rfft2`` (of the images embedded in a padded grid, margins filled by
    extending the edges) is computed once and cached; a template for any set of per-subfilter
    transfer functions ``H_k`` is then ``irfft2(sum_k M_k(f) H_k(f))`` cropped back to the
    model's shape. The cache is recomputed when `invalidate` is called (the model does so after
    ``assign`` or ``__setitem__``) and, with ``checkCache=True``, whenever the model arrays
    have changed in place since the transform was taken (a CRC32 of their bytes, checked before
    every template): a stale transform never gives a silently wrong template. The engine keeps
    references to the arrays it was given: when the model replaces an array by a new one
    (rather than writing into it), hand the new arrays over with `setModel`.

    Parameters
    ----------
    modelArrays : sequence of `numpy.ndarray` or `numpy.ndarray`
        The N subfilter images, each ``(ny, nx)`` (or one ``(N, ny, nx)`` array). Kept by
        reference (not copied). float32 models are transformed in single precision.
    maxShift : float or tuple of float
        Largest ``|dy|``, ``|dx|`` of any edge shift the engine must support, pixels.
    psfSize : int, optional
        Width (pixels) of an extra convolution applied through ``extraTransfers`` (for example
        a PSF-matching kernel), so that the padding holds it too.
    badMask : `numpy.ndarray`, optional
        Boolean ``(ny, nx)`` or ``(N, ny, nx)``, True at model pixels that must not be used.
        They (and any NaN there) are replaced by their nearest good neighbour before the
        transform; `templateBadMask` says which template pixels they reach.
    padMode : str, optional
        How the margin is filled (see `padToShape`); default ``"edge"``, like the spline
        engine's ``mode="nearest"``.
    workers : int, optional
        Threads for ``scipy.fft`` (-1: every core). None (default): the default of the
        context when the transform is taken (`dcrmodel.parallel.resolveThreads`: the
        caller's `dcrmodel.parallel.threadLimit`, else every core). The templates do not
        depend on it.
    checkCache : bool, optional
        Verify before each template that the model arrays are unchanged (default True).

    Raises
    ------
    DcrShapeError
        Model images of different shapes, or a mask of another shape.
    DcrValueError
        NaN or infinite values at unmasked model pixels; a fully masked model.
    """

    def __init__(
        self,
        modelArrays: Sequence[np.ndarray] | np.ndarray,
        maxShift: Any,
        psfSize: int = 0,
        badMask: np.ndarray | None = None,
        padMode: str = "edge",
        workers: int | None = None,
        checkCache: bool = True,
    ) -> None:
        checkPadMode(padMode)
        self._maxShiftRequested = asMaxShift(maxShift)
        psfHalf(psfSize)
        self._psfSize = int(psfSize)
        self._padMode = padMode
        self._workers = workers
        self._checkCache = bool(checkCache)
        self._arrays: list[np.ndarray] = []
        self._badMask: np.ndarray | None = None
        self._transforms: np.ndarray | None = None
        self._fingerprint: tuple[int, ...] | None = None
        self.setModel(modelArrays, badMask)

    # -- model -----------------------------------------------------------------------------

    def setModel(
        self, modelArrays: Sequence[np.ndarray] | np.ndarray, badMask: np.ndarray | None = None
    ) -> None:
        """Replace the model images (and mask) and drop the cached transform.

        Parameters
        ----------
        modelArrays : sequence of `numpy.ndarray` or `numpy.ndarray`
            N images of one shape ``(ny, nx)``; the shape may differ from the previous model's
            (the padded grid is recomputed).
        badMask : `numpy.ndarray`, optional
            Boolean ``(ny, nx)`` or ``(N, ny, nx)``, True at unusable model pixels.
        """
        arrays = self._checkModel(modelArrays)
        mask = self._checkBadMask(badMask, arrays)
        self._arrays = arrays
        self._badMask = mask
        self._shape = arrays[0].shape
        self._dtype = np.result_type(*[a.dtype for a in arrays])
        self._cdtype = complexDtype(self._dtype)
        self._padded = paddedShape(self._shape, self._maxShiftRequested, self._psfSize)
        self._allowed = allowedShift(self._shape, self._padded, self._psfSize)
        self.invalidate()

    @staticmethod
    def _checkModel(modelArrays: Any) -> list[np.ndarray]:
        if isinstance(modelArrays, np.ndarray):
            if modelArrays.ndim != 3:
                raise DcrShapeError(
                    "modelArrays must be N images (y, x) or one (N, ny, nx) array",
                    shape=modelArrays.shape,
                )
            arrays = list(modelArrays)
        else:
            try:
                arrays = [np.asarray(a) for a in modelArrays]
            except TypeError as error:
                raise DcrTypeError(
                    "modelArrays must be a sequence of 2-D arrays", type=type(modelArrays).__name__
                ) from error
        if not arrays:
            raise DcrValueError("the model has no subfilter images; give at least one")
        for k, array in enumerate(arrays):
            if array.ndim != 2:
                raise DcrShapeError(f"model image {k} is not 2-D", shape=array.shape)
            if array.dtype not in (np.float32, np.float64):
                raise DcrTypeError(
                    f"model image {k} must be float32 or float64", dtype=str(array.dtype)
                )
            if array.shape != arrays[0].shape:
                raise DcrShapeError(
                    "model images must all have the same shape",
                    shape0=arrays[0].shape,
                    **{f"shape{k}": array.shape},
                )
        return arrays

    @staticmethod
    def _checkBadMask(badMask: Any, arrays: list[np.ndarray]) -> np.ndarray | None:
        n = len(arrays)
        shape = arrays[0].shape
        if badMask is None:
            mask = None
        else:
            mask = np.asarray(badMask)
            if mask.dtype != bool:
                raise DcrTypeError("badMask must be a boolean array", dtype=str(mask.dtype))
            if mask.shape == shape:
                mask = np.broadcast_to(mask, (n, *shape))
            elif mask.shape != (n, *shape):
                raise DcrShapeError(
                    "badMask must have the model's shape (ny, nx) or (N, ny, nx)",
                    maskShape=mask.shape,
                    modelShape=(n, *shape),
                )
        for k, array in enumerate(arrays):
            finite = np.isfinite(array)
            good = finite if mask is None else (finite | mask[k])
            if not good.all():
                raise DcrValueError(
                    f"model image {k} has NaN or infinite values at unmasked pixels; pass them in "
                    "badMask (or fill them)",
                    count=int((~good).sum()),
                )
            if mask is not None and mask[k].all():
                raise DcrValueError(f"every pixel of model image {k} is masked")
        return None if mask is None or not mask.any() else np.array(mask)

    def _fftWorkers(self) -> int:
        """Threads of the FFTs: ``workers``, or the context's default (every core)."""
        return resolveThreads() if self._workers is None else self._workers

    def _threads(self) -> int:
        """Threads of the per-frequency sums: as the FFTs' (-1 and below: every core)."""
        workers = self._fftWorkers()
        return workers if workers > 0 else availableCores()

    def invalidate(self) -> None:
        """Drop the cached transform; the next template recomputes it from the model arrays."""
        self._transforms = None
        self._fingerprint = None

    @property
    def numSubfilters(self) -> int:
        """Number of subfilter images (int)."""
        return len(self._arrays)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(ny, nx)`` of the model images and templates."""
        return self._shape

    @property
    def paddedShape(self) -> tuple[int, int]:
        """Shape ``(ny, nx)`` of the padded FFT grid."""
        return self._padded

    @property
    def maxShift(self) -> tuple[float, float]:
        """Largest ``(|dy|, |dx|)`` in pixels that the padding holds."""
        return self._allowed

    @property
    def dtype(self) -> np.dtype:
        """Real dtype of the templates."""
        return np.dtype(self._dtype)

    @property
    def badMask(self) -> np.ndarray | None:
        """Boolean ``(N, ny, nx)`` of unusable model pixels, or None."""
        return self._badMask

    def _isStale(self) -> bool:
        if self._transforms is None:
            return True
        if self._checkCache:
            return self._fingerprint != _fingerprint(self._arrays)
        return False

    @property
    def modelTransforms(self) -> np.ndarray:
        """The cached ``rfft2`` of the padded model images, ``(N, ny, nx // 2 + 1)`` complex."""
        if self._isStale():
            if self._transforms is not None:
                _log.debug("model arrays changed in place; recomputing their Fourier transforms")
            self._computeTransforms()
        return self._transforms

    def _computeTransforms(self) -> None:
        fingerprint = _fingerprint(self._arrays) if self._checkCache else None
        transforms = np.empty(
            (self.numSubfilters, self._padded[0], self._padded[1] // 2 + 1), dtype=self._cdtype
        )
        rdtype = realDtype(self._cdtype)
        for k, array in enumerate(self._arrays):
            good = np.isfinite(array)
            if self._badMask is not None:
                good |= self._badMask[k]
            if not good.all():
                raise DcrValueError(
                    f"model image {k} now has NaN or infinite values at unmasked pixels; pass "
                    "them in badMask (FourierTemplateEngine.setModel) or fill them"
                )
            source = array if self._badMask is None else fillBadPixels(array, self._badMask[k])
            padded = padToShape(source.astype(rdtype, copy=False), self._padded, self._padMode)
            transforms[k] = scipy.fft.rfft2(padded, workers=self._fftWorkers())
        self._transforms = transforms
        self._fingerprint = fingerprint

    # -- transfers and templates -----------------------------------------------------------

    def transfers(self, dcrShifts: Any, mode: str = "smear") -> np.ndarray:
        """Per-subfilter transfer functions of one visit on this engine's grid.

        Parameters
        ----------
        dcrShifts : sequence
            One DCR per subfilter (pixels): edge pairs ``((dy0, dx0), (dy1, dx1))``
            (``calculateDcr(..., splitSubfilters=True)``), or single ``(dy, dx)`` shifts for
            ``mode="mean"``.
        mode : {"smear", "split", "mean"}, optional
            Representation of a subfilter's light (`subfilterTransfer`).

        Returns
        -------
        transfers : `numpy.ndarray`
            ``(N, ny, nx // 2 + 1)`` complex.

        Raises
        ------
        DcrValueError
            Wrong number of subfilters, or shifts larger than the padding.
        """
        mode = checkMode(mode)
        edges = asDcrList(dcrShifts, mode)
        if len(edges) != self.numSubfilters:
            raise DcrShapeError(
                "the DCR must have one entry per model subfilter",
                numShifts=len(edges),
                numSubfilters=self.numSubfilters,
            )
        checkFits(maxShiftOf(edges), self._allowed)
        return visitTransfers(self._padded, edges, mode, self._cdtype)

    def _extra(self, extraTransfers: TransferSource | None) -> np.ndarray | None:
        if extraTransfers is None:
            return None
        extra = extraTransfers(self._padded) if callable(extraTransfers) else extraTransfers
        extra = np.asarray(extra)
        grid = (self._padded[0], self._padded[1] // 2 + 1)
        if extra.shape not in (grid, (self.numSubfilters, *grid)):
            raise DcrShapeError(
                "extraTransfers must be (ny, nx // 2 + 1) or (N, ny, nx // 2 + 1) on the engine's "
                "padded grid (engine.paddedShape)",
                extraShape=extra.shape,
                expected=(self.numSubfilters, *grid),
            )
        if not np.all(np.isfinite(extra)):
            raise DcrValueError("extraTransfers has NaN or infinite values")
        return np.broadcast_to(extra, (self.numSubfilters, *grid))

    def buildTemplateFromTransfers(
        self, transfers: np.ndarray, extraTransfers: TransferSource | None = None
    ) -> np.ndarray:
        """Template ``sum_k M_k H_k (E_k)`` for given transfer functions, one inverse FFT.

        Parameters
        ----------
        transfers : `numpy.ndarray`
            ``(N, ny, nx // 2 + 1)`` complex, on `paddedShape`.
        extraTransfers : `numpy.ndarray` or callable, optional
            Extra multiplicative transfer per subfilter (e.g. the ratio of a visit's PSF to the
            model's at each subfilter's wavelength): ``(ny, nx // 2 + 1)`` for all subfilters
            or ``(N, ny, nx // 2 + 1)``, or a callable taking `paddedShape` and returning one.

        Returns
        -------
        template : `numpy.ndarray`
            ``(ny, nx)`` in the model's dtype.
        """
        grid = (self._padded[0], self._padded[1] // 2 + 1)
        transfers = np.asarray(transfers)
        if transfers.shape != (self.numSubfilters, *grid):
            raise DcrShapeError(
                "transfers must be (N, ny, nx // 2 + 1) on the engine's padded grid",
                transferShape=transfers.shape,
                expected=(self.numSubfilters, *grid),
            )
        extra = self._extra(extraTransfers)
        models = self.modelTransforms
        total = np.zeros(grid, dtype=self._cdtype)

        def block(rows: slice) -> None:
            part = total[rows]
            term = np.empty(part.shape, dtype=self._cdtype)
            for k in range(self.numSubfilters):
                np.multiply(models[k][rows], transfers[k][rows], out=term)
                if extra is not None:
                    term *= extra[k][rows]
                part += term

        forRowBlocks(block, grid[0], self._threads())
        out = scipy.fft.irfft2(total, s=self._padded, workers=self._fftWorkers())
        return np.ascontiguousarray(cropFromPadded(out, self._shape), dtype=self._dtype)

    def buildTemplate(
        self,
        dcrShifts: Any,
        mode: str = "smear",
        extraTransfers: TransferSource | None = None,
    ) -> np.ndarray:
        """DCR-matched template: every subfilter moved (or smeared) by its DCR, summed.

        Parameters
        ----------
        dcrShifts : sequence
            One DCR per subfilter, pixels (see `transfers`).
        mode : {"smear", "split", "mean"}, optional
            ``"smear"`` (default): uniform smear between the edge shifts; ``"split"``: the
            reference's quarter-point average; ``"mean"``: the mean shift.
        extraTransfers : `numpy.ndarray` or callable, optional
            Extra per-subfilter transfer (see `buildTemplateFromTransfers`).

        Returns
        -------
        template : `numpy.ndarray`
            ``(ny, nx)`` in the model's dtype.
        """
        mode = checkMode(mode)
        edges = asDcrList(dcrShifts, mode)
        if len(edges) != self.numSubfilters:
            raise DcrShapeError(
                "the DCR must have one entry per model subfilter",
                numShifts=len(edges),
                numSubfilters=self.numSubfilters,
            )
        checkFits(maxShiftOf(edges), self._allowed)
        extra = self._extra(extraTransfers)
        models = self.modelTransforms
        grid = (self._padded[0], self._padded[1] // 2 + 1)
        total = np.zeros(grid, dtype=self._cdtype)
        plan = transferRows(self._padded, edges, mode, self._cdtype)

        def block(rows: slice) -> None:
            # The subfilters' transfers of these rows (subfilterTransfer's values).
            part = total[rows]
            terms = plan.fill(rows, np.empty((len(edges), *part.shape), self._cdtype))
            for k in range(len(edges)):
                term = terms[k]
                term *= models[k][rows]
                if extra is not None:
                    term *= extra[k][rows]
                part += term

        forRowBlocks(block, grid[0], self._threads())
        out = scipy.fft.irfft2(total, s=self._padded, workers=self._fftWorkers())
        return np.ascontiguousarray(cropFromPadded(out, self._shape), dtype=self._dtype)

    def templateBadMask(self, dcrShifts: Any, mode: str = "smear") -> np.ndarray:
        """Template pixels that receive light from masked model pixels.

        The union over subfilters of the model's bad mask moved over every integer offset that
        the subfilter's shift (or smear between its edge shifts) touches, plus one pixel of
        interpolation on each side of each offset.

        Parameters
        ----------
        dcrShifts : sequence
            One DCR per subfilter, pixels (see `transfers`).
        mode : {"smear", "split", "mean"}, optional
            Representation of a subfilter's light.

        Returns
        -------
        mask : `numpy.ndarray`
            Boolean ``(ny, nx)``; all False when the model has no bad pixels.
        """
        mode = checkMode(mode)
        edges = asDcrList(dcrShifts, mode)
        out = np.zeros(self._shape, dtype=bool)
        if self._badMask is None:
            return out
        for k, edge in enumerate(edges):
            if mode == "mean":
                points = edge.mean(axis=0)[None, :]
            else:
                t = np.linspace(0.0, 1.0, 17)[:, None]
                points = edge[0] * (1 - t) + edge[1] * t
            offsets = {
                (int(oy), int(ox))
                for py, px in points
                for oy in range(math.floor(py), math.ceil(py) + 1)
                for ox in range(math.floor(px), math.ceil(px) + 1)
            }
            for oy, ox in offsets:
                out |= _shiftBool(self._badMask[k], oy, ox)
        return ndimage.binary_dilation(out, iterations=1)

    def __repr__(self) -> str:
        return (
            f"FourierTemplateEngine(numSubfilters={self.numSubfilters}, shape={self._shape}, "
            f"paddedShape={self._padded}, maxShift={self._allowed}, dtype={self.dtype})"
        )


def _shiftBool(mask: np.ndarray, oy: int, ox: int) -> np.ndarray:
    """Move a boolean mask by whole pixels ``(oy, ox)``, filling with False."""
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    if abs(oy) >= ny or abs(ox) >= nx:
        return out
    src = mask[max(0, -oy) : ny - max(0, oy), max(0, -ox) : nx - max(0, ox)]
    out[max(0, oy) : ny - max(0, -oy), max(0, ox) : nx - max(0, -ox)] = src
    return out
