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
(`dcrmodel.psf.matching.psfMatchingTransfer`, damped where the visit is sharper than the model), and
the model's images are the sky seen through the model PSF (``modelPsf``: by default the
sharpest input PSF at the subfilter where it is sharpest), with a per-frequency ridge
pulling the model toward 0 where that PSF has no power (`dcrmodel.psf.matching.modelPsfRidge`).
Inputs without a PSF get one estimated from their stars (`dcrmodel.psf.matching.estimatePsf`,
warned and recorded in the summary). The iterative solver and the direct one with
``usePsf=False`` assume every visit has the same PSF; they warn (`DcrPsfWarning`) when the
inputs' FWHMs range over more than 40 % (DMTN-121 found the reference's templates degrade
beyond about 46 %).

`writeResults` writes one ``dcrCoadd`` exposure per subfilter, the stacked coadd, the
per-subfilter image counts and a JSON summary, atomically. `assembleFromFiles` does a
whole run from exposure files, for the command line.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import logging
import math
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
from astropy.io import fits as pyfits
from astropy.wcs import WCS
from scipy import ndimage

from .._version import __version__
from ..atomic import atomicDirectory
from ..errors import (
    DcrConfigError,
    DcrError,
    DcrMetadataError,
    DcrOutputError,
    DcrPsfWarning,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
    DcrWarning,
)
from ..fits import ExposureFile, readExposure, writeDcrModel, writeExposure
from ..fourier import maxShiftOf, paddedShape
from ..image import (
    WCS_GRID_TOLERANCE,
    Box,
    Exposure,
    Filter,
    Image,
    ImagePsf,
    Mask,
    MaskedImage,
    Psf,
    StatisticsControl,
    wcsGridOffset,
)
from ..model import DcrModel, applyDcr
from ..physics import (
    calculateDcr,
    wavelengthGenerator,
    zenithDirections,
    zenithDirectionsOfVisits,
)
from ..psf import (
    DampedPsfMatcher,
    effectiveKernelSize,
    estimatePsf,
    maxKernelSize,
    modelPsfFor,
    modelPsfRidge,
    psfAtWavelength,
    psfFwhmAt,
    validatePsf,
)
from .config import DcrAssembleConfig
from .direct import ArrayPool

__all__ = [
    "AssembleResult",
    "AssemblyPlan",
    "SubregionTask",
    "SubregionResult",
    "DcrAssembleCoadd",
    "assembleSubregion",
    "writeResults",
    "assembleFromFiles",
    "calculateGain",
    "automaticBuffer",
    "featherWidth",
    "stitchWeights",
    "subregionTiles",
    "checkOutputFolder",
    "SEEING_RANGE_LIMIT",
    "SUMMARY_NAME",
    "STACKED_COADD_NAME",
    "NIMAGE_NAME",
]

_log = logging.getLogger(__name__)

#: File names inside an output folder.
SUMMARY_NAME = "summary.json"
STACKED_COADD_NAME = "stackedCoadd.fits"
NIMAGE_NAME = "nImage.fits"
_MODEL_PREFIX = "dcrCoadd_"
_SUMMARY_KIND = "dcrmodel-assemble"

#: Seeing range (largest over smallest input FWHM, minus 1) above which a PSF-unaware model
#: is warned about: DMTN-121 found the reference algorithm's templates degrade beyond ~46 %.
SEEING_RANGE_LIMIT = 0.4

#: Fraction of a PSF kernel's flux allowed outside the padding of the direct solver's grid
#: (`dcrmodel.psf.matching.effectiveKernelSize`).
_PSF_TAIL = 1e-2

ProgressCallback = Callable[[dict[str, Any]], None]


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class AssembleResult:
    """What `DcrAssembleCoadd.run` returns.

    Attributes
    ----------
    dcrModel : `dcrmodel.model.core.DcrModel`
        The DCR model: one image of the unrefracted sky per subfilter, bluest first, with
        the coadd's mask and the variance of an even split of the coadd.
    coadd : `dcrmodel.image.Exposure`
        The stacked coadd: the sum of the subfilter images (the sky as seen at the
        zenith), with the coadd's mask and variance.
    nImages : list of `dcrmodel.image.Image`
        Per subfilter, the number of visits contributing to each pixel.
    summary : dict
        The run summary (JSON-ready): configuration, band, visits with their airmass,
        parallactic angle and weight, per-subregion convergence and gain histories, and
        timings in seconds.
    """

    dcrModel: Any
    coadd: Exposure
    nImages: list[Image]
    summary: dict[str, Any]


# ------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------
class _Scratch(dict):
    """Values computed once per run and reused by its subregions; pickles empty.

    Subregion tasks sent to other processes carry their inputs; what one process computed
    for its subregions is not worth shipping (and may be large), so it is left behind.
    """

    def __reduce__(self) -> tuple[type, tuple]:
        return (_Scratch, ())


#: Largest memory (bytes) of the PSF factors the direct solver keeps between subregions
#: (all visits and grids together): subregions of the same shape share one FFT grid, and the PSF is
#: the same across a patch, so each visit's factors are computed once.
_PSF_FACTOR_CACHE = 128 * 2**20


class _Input:
    """One visit: an in-memory exposure or a file read one region at a time."""

    def __init__(self, source: Any, index: int) -> None:
        self.index = index
        if isinstance(source, Exposure):
            self.exposure: Exposure | None = source
            self.path: Path | None = None
            self.name = f"exposure {index}"
            if source.visitInfo is not None and source.visitInfo.id is not None:
                self.name = f"exposure {index} (visit {source.visitInfo.id})"
            info = source
            self.bbox = source.bbox
        elif isinstance(source, str | os.PathLike):
            self.exposure = None
            self.path = Path(source)
            self.name = str(self.path)
            self.file = _openFile(self.path)
            self.bbox, info = self.file.bbox, self.file.info
        else:
            raise DcrTypeError(
                "inputs must be dcrmodel Exposures or paths of exposure files",
                index=index,
                type=type(source).__name__,
            )
        self.planes = info.mask.planes
        self.wcs = info.wcs
        self.visitInfo = info.visitInfo
        self.filter = info.filter
        self.psf = info.psf
        self.photoCalib = info.photoCalib
        self.weight = 0.0
        self.goodPixels = 0
        self.dcr: list = []
        self.psfEstimate: dict[str, Any] | None = None
        self.zenith: dict[Box, tuple[float, float]] = {}
        self.scratch = _Scratch()

    def zenithAt(self, bbox: Box, regions: Callable[[], list[Box]]) -> tuple[float, float]:
        """Return the zenith direction (pixels per arcsec) at the centre of ``bbox``.

        On the first call the directions at the centres of all ``regions()`` (the plan's
        subregions with their buffer) and of ``bbox`` are measured in one vectorised
        transform (`dcrmodel.physics.dcr.zenithDirections`) and kept, so that the subregions of
        a patch share one astropy frame transform per visit instead of one each.
        """
        zenith = self.__dict__.setdefault("zenith", {})
        if bbox not in zenith:
            boxes = list(dict.fromkeys([bbox, *regions()]))
            zenith.update(zip(boxes, zenithDirections(self.visitInfo, self.wcs, boxes),
                              strict=True))
        return zenith[bbox]

    def read(self, bbox: Box) -> Exposure | None:
        """Return the cutout of this visit inside ``bbox`` (None if they do not overlap)."""
        box = self.bbox.intersection(bbox)
        if box.isEmpty():
            return None
        if self.exposure is not None:
            return self.exposure[box]
        return self.file.read(box)


def _measureZeniths(inputs: list[_Input], boxes: list[Box]) -> None:
    """Keep every input's zenith direction at the centres of ``boxes``, measured at once.

    One astropy transform for all visits (`dcrmodel.physics.dcr.zenithDirectionsOfVisits`). If it
    fails (bad metadata), nothing is kept: the per-visit measurements that follow raise
    the error, naming the visit.
    """
    missing = [inp for inp in inputs if any(box not in inp.zenith for box in boxes)]
    if not missing:
        return
    try:
        directions = zenithDirectionsOfVisits(
            [inp.visitInfo for inp in missing], [inp.wcs for inp in missing],
            [boxes] * len(missing),
        )
    except DcrError:
        return
    for inp, values in zip(missing, directions, strict=True):
        inp.zenith.update(zip(boxes, values, strict=True))


def _openFile(path: Path) -> Any:
    """Return the `dcrmodel.fits.exposure.ExposureFile` of an input (headers read once)."""
    if not path.is_file():
        raise DcrValueError("input exposure file does not exist", path=str(path))
    return ExposureFile(path)


def _checkMetadata(inp: _Input, needAirmass: bool) -> None:
    """Raise DcrMetadataError naming the visit and every piece of metadata DCR needs."""
    missing = []
    if inp.wcs is None:
        missing.append("WCS")
    vi = inp.visitInfo
    if vi is None:
        missing.append("visit info (VisitInfo: date, observatory, boresight)")
    else:
        for attr, label in (
            ("date", "date of observation (visitInfo.date)"),
            ("observatory", "observatory (visitInfo.observatory)"),
            ("boresightAzAlt", "boresight altitude (visitInfo.boresightAzAlt)"),
            ("boresightRaDec", "boresight RA/Dec (visitInfo.boresightRaDec)"),
        ):
            if getattr(vi, attr, None) is None:
                missing.append(label)
        airmass = getattr(vi, "boresightAirmass", None)
        if needAirmass and (airmass is None or not math.isfinite(airmass)):
            missing.append(
                "boresight airmass (visitInfo.boresightAirmass), which doAirmassWeight needs"
            )
    if missing:
        raise DcrMetadataError(
            f"{inp.name} lacks the metadata DCR needs: {'; '.join(missing)}. Give the "
            "exposure a WCS and a VisitInfo (VisitInfo.fromAstropy builds one), or write the "
            "visit keys of the Rubin layout in the file's primary header",
            visit=inp.name,
        )


def _checkGrid(inp: _Input, refWcs: WCS, bbox: Box) -> None:
    """Raise DcrShapeError unless ``inp`` maps the corners of ``bbox`` like ``refWcs``."""
    try:
        offset = wcsGridOffset(inp.wcs, refWcs, bbox)
    except Exception as exc:  # astropy raises many kinds for incompatible frames
        raise DcrShapeError(
            f"{inp.name}: its WCS cannot be compared with the model's ({exc}); warp the "
            "exposures onto the coadd's pixel grid first",
            visit=inp.name,
        ) from exc
    if not math.isfinite(offset) or offset > WCS_GRID_TOLERANCE:
        raise DcrShapeError(
            f"{inp.name} is not on the model's pixel grid: its WCS puts the box corners "
            f"{offset:.3g} pixels from where the model's WCS does (tolerance "
            f"{WCS_GRID_TOLERANCE:g} pixel); warp every exposure onto the coadd's pixel "
            "grid (same WCS, parent coordinates) first",
            visit=inp.name,
            offsetPixels=offset,
        )


def _bandOf(config: DcrAssembleConfig, inputs: list[_Input], coadd: Exposure | None) -> Filter:
    """Return the band: the configuration's override, else the coadd's or inputs' filter."""
    filters = [inp.filter for inp in inputs if inp.filter is not None]
    # Physical filter names such as 'g_6' name the band before the underscore.
    names = sorted({f.bandName.split("_")[0] for f in filters})
    if len(names) > 1:
        raise DcrValueError(
            f"the inputs are in different bands ({', '.join(names)}); a DCR model is built "
            "from exposures of one band",
            bands=names,
        )
    if config.effectiveWavelength is not None:
        name = names[0] if names else (coadd.filter.bandName if coadd and coadd.filter else "")
        return Filter(name or "custom", config.effectiveWavelength, config.bandwidth)
    if coadd is not None and coadd.filter is not None:
        return coadd.filter
    if filters:
        return filters[0]
    raise DcrMetadataError(
        "no filter wavelengths: neither the inputs nor the coadd carry a filter; set "
        "effectiveWavelength and bandwidth (nm) in the configuration, or write FILTER "
        "(and FILT-EFF, FILT-BW) in the files' headers"
    )


def _goodPixels(exposure: Exposure, badPlanes: StatisticsControl) -> np.ndarray:
    """Return the boolean map of usable pixels of ``exposure``."""
    bits = badPlanes.getAndMask(exposure.mask)
    return (exposure.mask.array & bits) == 0


def _checkFinite(inp: _Input, exposure: Exposure, good: np.ndarray) -> None:
    image = exposure.image.array
    variance = exposure.variance.array
    badValues = good & ~(np.isfinite(image) & np.isfinite(variance) & (variance > 0))
    if badValues.any():
        raise DcrValueError(
            f"{inp.name} has {int(badValues.sum())} unmasked pixels with a non-finite value "
            "or a variance that is not positive; flag them in a bad mask plane (BAD or "
            "NO_DATA) or fix the variance plane",
            visit=inp.name,
        )


def subregionTiles(bbox: Box, size: tuple[int, int]) -> list[Box]:
    """Split a patch into the subregions that are solved one at a time.

    Parameters
    ----------
    bbox : `dcrmodel.image.Box`
        The patch, parent pixels.
    size : tuple of int
        ``(width, height)`` of a subregion in pixels (`DcrAssembleConfig.subregionSize`);
        those along the patch's far edges are smaller when the patch is not a multiple.

    Returns
    -------
    tiles : list of `dcrmodel.image.Box`
        Row by row from ``(minX, minY)``; they cover the patch without overlap (the buffers
        solved around them are added by the plan).

    Examples
    --------
    >>> from dcrmodel.image import Box
    >>> [t.width for t in subregionTiles(Box(0, 0, 1100, 512), (512, 512))]
    [512, 512, 76]
    """
    width, height = size
    boxes = []
    for y in range(bbox.minY, bbox.maxY + 1, height):
        for x in range(bbox.minX, bbox.maxX + 1, width):
            boxes.append(
                Box.fromCorners(x, y, min(x + width - 1, bbox.maxX), min(y + height - 1, bbox.maxY))
            )
    return boxes


def _splitShifts(
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


def _wholePixelShift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Return ``out[y, x] = mask[y + dy, x + dx]`` (False where that is outside ``mask``)."""
    ny, nx = mask.shape
    out = np.zeros_like(mask)
    outY = slice(max(0, -dy), max(0, min(ny, ny - dy)))
    outX = slice(max(0, -dx), max(0, min(nx, nx - dx)))
    inY = slice(max(0, dy), max(0, min(ny, ny + dy)))
    inX = slice(max(0, dx), max(0, min(nx, nx + dx)))
    out[outY, outX] = mask[inY, inX]
    return out


def automaticBuffer(maxShift: float, solver: str) -> int:
    """Return the default DCR buffer around each subregion, in pixels.

    Parameters
    ----------
    maxShift : float
        Largest DCR shift of any subfilter edge in any visit, pixels.
    solver : str
        ``"iterative"`` or ``"direct"``.

    Returns
    -------
    int
        Iterative solver: ``2 * ceil(maxShift) + 2``. Each iteration moves information
        by one shift forwards (the template) and one back (the residual), so the border
        must hold twice the shift for the subregions to join without seams (the reference
        pipelines use once the shift plus one pixel, which leaves visible joins).
        Direct solver: ``max(8 * ceil(maxShift), 32)``: its per-frequency solution
        depends on the region as a whole. On simulated fields, held-out templates from
        64-pixel subregions with this border differed from the whole-patch solution by
        0.3-1.2 % of the brightest pixel, against 4-11 % with a border of 2-3 shifts,
        cut hard at the joins; blended across them (`featherWidth`) 0.24 %.
    """
    shift = int(math.ceil(maxShift))
    if solver == "direct":
        return max(8 * shift, 32)
    return 2 * shift + 2


def featherWidth(buffer: int, solver: str) -> int:
    """Return the half-width of the band over which neighbouring subregions are blended.

    Parameters
    ----------
    buffer : int
        The DCR buffer solved around each subregion, pixels.
    solver : str
        ``"iterative"`` or ``"direct"``.

    Returns
    -------
    int
        Pixels on each side of a join, never more than ``buffer``. Direct solver:
        ``buffer // 2``. Its subfilter images carry components that no training visit
        sees (they cancel in every template) and that differ between two subregions'
        solutions by about a noise sigma; cut hard at a join, the template of a new
        visit combines subfilters of both solutions, shifted by its DCR, and the
        cancellation fails in a band as wide as the shifts (about one sigma there against
        0.2 elsewhere on the test field). Blended over a band much wider than the shifts,
        the step becomes a slope that no template resolves. Half the buffer keeps every
        pixel used at least half the buffer away from the edge of its solved box.
        Iterative solver: 0 (a hard cut): with a fixed number of iterations its
        subregions already match the whole-patch solution near the joins, while its
        solution in the outer part of the buffer has seen the edge.
    """
    if solver == "direct":
        return int(buffer) // 2
    return 0


def _rise(offsets: np.ndarray, width: int) -> np.ndarray:
    """Smooth step from 0 to 1 across ``[-width, width]`` (offsets are half-integers)."""
    if width == 0:
        return (offsets > 0).astype(np.float64)
    t = np.clip(offsets / width, -1.0, 1.0)
    return 0.5 * (1.0 + np.sin(0.5 * np.pi * t))


def stitchWeights(tile: Box, bbox: Box, patch: Box, width: int) -> np.ndarray:
    """Return the blending weight of one subregion's solution over ``bbox``.

    The weight is separable. Along x it is ``r(x - xLeft) - r(x - xRight)``, with the
    smooth step ``r(t) = (1 + sin(pi t / (2 width))) / 2`` across ``|t| < width``
    (0 before, 1 after), ``xLeft`` and ``xRight`` the tile's joins (half-way between the
    last pixel of one tile and the first of the next); where the tile has no neighbour
    the step is replaced by 1 (left) or 0 (right), so the weight is 1 up to the edge of
    the patch; likewise along y. The tiles of a patch form a grid, so the weights of all
    subregions add up to 1 at every pixel (what one tile gains across a join its
    neighbour loses), and each weight is 0 beyond ``width`` pixels outside its tile.

    Parameters
    ----------
    tile : `dcrmodel.image.Box`
        The subregion, parent pixels.
    bbox : `dcrmodel.image.Box`
        The box the weight is wanted over (the tile grown by ``width``, clipped to the
        patch).
    patch : `dcrmodel.image.Box`
        The model's box, parent pixels.
    width : int
        Half-width of the blending band, pixels (0: a hard cut at the join).

    Returns
    -------
    `numpy.ndarray`
        ``(height, width)`` float64 weights in [0, 1] over ``bbox``.
    """
    x = np.arange(bbox.minX, bbox.maxX + 1, dtype=np.float64)
    y = np.arange(bbox.minY, bbox.maxY + 1, dtype=np.float64)

    def profile(coords: np.ndarray, lo: int, hi: int, patchLo: int, patchHi: int) -> np.ndarray:
        # The rise across the near join minus the rise across the far one: summed over a
        # row of tiles the terms cancel in pairs, also where a tile is narrower than the
        # band and its two ramps overlap.
        weight = np.ones_like(coords)
        if lo > patchLo:
            weight = _rise(coords - (lo - 0.5), width)
        if hi < patchHi:
            weight = weight - _rise(coords - (hi + 0.5), width)
        return weight

    wx = profile(x, tile.minX, tile.maxX, patch.minX, patch.maxX)
    wy = profile(y, tile.minY, tile.maxY, patch.minY, patch.maxY)
    return wy[:, None] * wx[None, :]


# ------------------------------------------------------------------------------------------
# Gain and convergence
# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Prepared:
    inputs: list[_Input]
    band: Filter
    bbox: Box
    wcs: WCS
    buffer: int
    coadd: Exposure
    coaddGiven: bool
    statsCtrl: StatisticsControl
    leftOut: list[str]
    psfAware: bool = False
    modelPsf: Psf | None = None
    psfSummary: dict[str, Any] = dataclasses.field(default_factory=dict)
    scratch: _Scratch = dataclasses.field(default_factory=lambda: _Scratch())


@dataclasses.dataclass
class SubregionTask:
    """Everything needed to solve one subregion, holding only its cutouts.

    Made by `AssemblyPlan.subregionTask` and solved by `assembleSubregion`, in this
    process or in another one: the object pickles to the size of the subregion with its
    buffer (visit files are referenced by path and read there one cutout at a time;
    in-memory visits are carried as cutouts).

    Attributes
    ----------
    index : int
        Position of the subregion in the plan (0-based).
    count : int
        Number of subregions of the plan.
    tile : `dcrmodel.image.Box`
        The subregion, parent pixels.
    bbox : `dcrmodel.image.Box`
        The box solved: ``tile`` grown by the DCR buffer and clipped to the patch.
    config : `DcrAssembleConfig`
        The settings.
    prepared : object
        The run's preparation (visits with their weights, band, coadd) cut to ``bbox``.
    model : `dcrmodel.model.core.DcrModel`
        The starting model (the coadd split evenly among subfilters) in ``bbox``.
    modelWeights : `numpy.ndarray` or None
        The model weights in ``bbox`` (None when not used).
    """

    index: int
    count: int
    tile: Box
    bbox: Box
    config: DcrAssembleConfig
    prepared: _Prepared
    model: Any
    modelWeights: np.ndarray | None


@dataclasses.dataclass
class SubregionResult:
    """One solved subregion (what `assembleSubregion` returns).

    Attributes
    ----------
    index : int
        Position of the subregion in the plan (0-based).
    tile : `dcrmodel.image.Box`
        The subregion, parent pixels.
    modelArrays : `numpy.ndarray`
        ``(N, height, width)`` float64 subfilter images over ``bbox``, counts, with the
        subfilter differences amplified by ``accelerateModel`` as in the output model.
    nImages : `numpy.ndarray`
        ``(N, height, width)`` int32 over ``tile``: per subfilter, the number of visits
        contributing to each pixel.
    summary : dict
        The subregion's record (JSON-ready): boxes, number of visits, convergence and gain
        per iteration or the direct solver's residuals, stop reason and seconds.
    bbox : `dcrmodel.image.Box` or None
        The box of ``modelArrays``: the tile grown by the blending band (`featherWidth`)
        and clipped to the patch, which `DcrAssembleCoadd.finish` blends with the
        neighbours' solutions. None: the tile.
    """

    index: int
    tile: Box
    modelArrays: np.ndarray
    nImages: np.ndarray
    summary: dict[str, Any]
    bbox: Box | None = None

    @property
    def modelBox(self) -> Box:
        """The box of ``modelArrays``, parent pixels."""
        return self.tile if self.bbox is None else self.bbox


@dataclasses.dataclass
class AssemblyPlan:
    """A prepared run split into subregions (what `DcrAssembleCoadd.planSubregions` returns).

    The plan holds the patch-wide products of the preparation (the visits' weights, the
    plain coadd, the starting model and the model weights). `subregionTask` cuts from them
    the independent `SubregionTask` of each subregion, and `DcrAssembleCoadd.finish`
    stitches the `SubregionResult` of every subregion into the `AssembleResult`.

    Attributes
    ----------
    config : `DcrAssembleConfig`
        The settings.
    prepared : object
        The run's preparation (visits, band, box, WCS, buffer, coadd).
    model : `dcrmodel.model.core.DcrModel`
        The starting model: the coadd split evenly among subfilters.
    modelWeights : `numpy.ndarray` or None
        The patch's model weights (None when not used).
    tiles : list of `dcrmodel.image.Box`
        The subregions, in the order they are numbered.
    timings : dict
        Seconds spent so far (``"prepare"``).
    """

    config: DcrAssembleConfig
    prepared: _Prepared
    model: Any
    modelWeights: np.ndarray | None
    tiles: list[Box]
    timings: dict[str, float]

    @property
    def bbox(self) -> Box:
        """The model's box, parent pixels."""
        return self.prepared.bbox

    @property
    def buffer(self) -> int:
        """The DCR buffer solved around each subregion, pixels."""
        return self.prepared.buffer

    @property
    def numSubregions(self) -> int:
        """The number of subregions."""
        return len(self.tiles)

    @property
    def feather(self) -> int:
        """Half-width of the band blending neighbouring subregions, pixels (`featherWidth`)."""
        return featherWidth(self.prepared.buffer, self.config.solver)

    def modelBox(self, index: int) -> Box:
        """Return the box of subregion ``index``'s model: its tile grown by `feather`."""
        return self.tiles[index].grow(self.feather).clippedTo(self.prepared.bbox)

    def solvedBox(self, index: int) -> Box:
        """Return the box solved for subregion ``index``: its tile grown by the buffer."""
        return self.tiles[index].grow(self.prepared.buffer).clippedTo(self.prepared.bbox)

    def subregionTask(self, index: int) -> SubregionTask:
        """Return the task of subregion ``index``, holding only its cutouts.

        Parameters
        ----------
        index : int
            The subregion, 0 to ``numSubregions - 1``.

        Returns
        -------
        SubregionTask
            The subregion's inputs. Its arrays are views of the plan's (pickling copies
            only the views); in-memory visits are cut to the solved box.

        Raises
        ------
        DcrValueError
            If ``index`` is out of range.
        """
        if not 0 <= index < len(self.tiles):
            raise DcrValueError(
                f"subregion index out of range; the plan has {len(self.tiles)} subregions",
                index=index,
            )
        prepared = self.prepared
        bbox = self.solvedBox(index)
        inner = bbox.slices(prepared.bbox)
        inputs = []
        for inp in prepared.inputs:
            # The zenith directions of all subregions, measured on the first task and
            # shared by the later ones (the copies below share the dict; pickled tasks
            # carry it).
            inp.zenithAt(bbox, lambda: [self.solvedBox(i) for i in range(len(self.tiles))])
            if inp.exposure is not None:
                inp = copy.copy(inp)
                inp.bbox = inp.bbox.intersection(bbox)
                inp.exposure = None if inp.bbox.isEmpty() else inp.exposure[inp.bbox]
            inputs.append(inp)
        model = self.model
        cut = DcrModel(
            [Image(image.array[inner], bbox=bbox) for image in model],
            filterInfo=model.filter,
            psf=model.psf,
            variance=Image(model.variance.array[inner], bbox=bbox),
            photoCalib=model.photoCalib,
        )
        return SubregionTask(
            index=index,
            count=len(self.tiles),
            tile=self.tiles[index],
            bbox=bbox,
            config=self.config,
            prepared=dataclasses.replace(
                prepared, inputs=inputs, bbox=bbox, coadd=prepared.coadd[bbox]
            ),
            model=cut,
            modelWeights=None if self.modelWeights is None else self.modelWeights[inner],
        )


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
    DcrConfigError
        For ``solver="direct"`` when `dcrmodel.assemble.direct` is not installed.
    """
    if not isinstance(task, SubregionTask):
        raise DcrTypeError("task must be a SubregionTask", task=type(task).__name__)
    runner = DcrAssembleCoadd(task.config)
    solve = runner._directSolver() if task.config.solver == "direct" else None
    tic = time.perf_counter()
    region = _Subregion(
        runner, task.prepared, task.model, task.modelWeights, task.tile, task.index, task.count
    )
    if solve is not None:
        record = region.solveDirect(solve)
    else:
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
      given, come from one pass over the inputs, one subregion at a time.
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
        progress: ProgressCallback | None = None,
    ) -> AssembleResult:
        """Build the DCR model.

        Parameters
        ----------
        exposures : sequence of `Exposure` or path
            The visits: in-memory exposures, or paths of exposure files (Rubin layout)
            that are read one subregion at a time. All on the model's pixel grid (same
            WCS, parent coordinates), each with a WCS, a `VisitInfo` and (unless the
            configuration sets the band) a filter.
        coadd : `Exposure` or path, optional
            A plain coadd of the same patch to start from; its box is the model's box and
            its DETECTED pixels mark the sources. None: computed from the inputs
            (inverse-variance weighted mean of their good pixels, sources detected at
            ``config.detectionThreshold`` sigma).
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
            For a visit that does not overlap the model's box or is not on its grid, or
            (PSF-aware solver) a PSF kernel larger than its exposure.
        DcrConfigError
            For an unknown mask plane, or ``solver="direct"`` when `dcrmodel.assemble.direct` is
            not installed.

        Warns
        -----
        DcrPsfWarning
            For each visit whose PSF had to be estimated (PSF-aware solver), and when a
            PSF-unaware solver gets inputs whose seeing ranges over more than 40 %.
        """
        plan = self.planSubregions(exposures, coadd)
        tic = time.perf_counter()
        results = []
        for index in range(plan.numSubregions):
            result = assembleSubregion(plan.subregionTask(index), progress)
            results.append(result)
            if progress is not None:
                progress(
                    {
                        "subregion": index,
                        "nSubregions": plan.numSubregions,
                        "finished": True,
                        "iterations": result.summary.get("iterations"),
                        "stopReason": result.summary.get("stopReason"),
                    }
                )
        return self.finish(plan, results, timings={"solve": time.perf_counter() - tic})

    def planSubregions(
        self,
        exposures: Sequence[Exposure | str | os.PathLike],
        coadd: Exposure | str | os.PathLike | None = None,
    ) -> AssemblyPlan:
        """Check the inputs, compute the plain coadd and split the patch into subregions.

        The first step of `run`: every check of the inputs, one pass over the visits for
        their weights and the plain coadd, the starting model and the model weights. The
        subregions of the plan are then solved independently (`assembleSubregion`) and
        stitched by `finish`.

        Parameters
        ----------
        exposures, coadd
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
        config = self.config
        start = time.perf_counter()
        if config.solver == "direct":
            self._directSolver()
        prepared = self._prepare(exposures, coadd)
        coaddExposure = prepared.coadd
        model = DcrModel.fromImage(
            coaddExposure.maskedImage,
            config.dcrNumSubfilters,
            filterInfo=prepared.band,
            psf=prepared.modelPsf if prepared.psfAware else coaddExposure.psf,
            photoCalib=coaddExposure.photoCalib,
            wcs=prepared.wcs,
        )
        plan = AssemblyPlan(
            config=config,
            prepared=prepared,
            model=model,
            modelWeights=self._modelWeights(coaddExposure.mask),
            tiles=subregionTiles(prepared.bbox, config.subregionSize),
            timings={},
        )
        # The zenith directions of every visit at every subregion, in one transform.
        _measureZeniths(prepared.inputs, [plan.solvedBox(i) for i in range(plan.numSubregions)])
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
        model = plan.model
        n = self.config.dcrNumSubfilters
        bbox = plan.prepared.bbox
        feather = plan.feather
        for result in byIndex.values():
            box = result.modelBox
            if (
                not box.contains(result.tile)
                or not bbox.contains(box)
                or result.modelArrays.shape != (n, *box.shape)
                or result.nImages.shape != (n, *result.tile.shape)
            ):
                raise DcrValueError(
                    "a result's arrays do not match its boxes; was it solved for another plan?",
                    index=result.index,
                    bbox=box,
                    modelShape=result.modelArrays.shape,
                )
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
        stacked = self._stack(model, plan.prepared)
        allTimings = dict(plan.timings)
        allTimings.update(timings or {})
        allTimings.setdefault("total", sum(allTimings.values()) + time.perf_counter() - tic)
        summary = self._summary(
            plan.prepared, [byIndex[i].summary for i in range(plan.numSubregions)], allTimings
        )
        return AssembleResult(dcrModel=model, coadd=stacked, nImages=nImages, summary=summary)

    def _directSolver(self) -> Callable[..., Any]:
        """Return `dcrmodel.assemble.direct.solveDirectFromShifts`, or raise if it is missing."""
        try:
            module = importlib.import_module("dcrmodel.assemble.direct")
        except ImportError as exc:
            if exc.name != "dcrmodel.assemble.direct":
                raise
            module = None
        solve = getattr(module, "solveDirectFromShifts", None) if module is not None else None
        if solve is None:
            raise DcrConfigError(
                "solver 'direct' is not available in this installation (dcrmodel.assemble.direct "
                "with solveDirectFromShifts is missing); use solver='iterative'",
                solver="direct",
            )
        return solve

    # ----------------------------------------------------------------------- prepare
    def _prepare(self, exposures: Any, coadd: Any) -> _Prepared:
        config = self.config
        if isinstance(exposures, Exposure | str | os.PathLike):
            exposures = [exposures]
        try:
            sources = list(exposures)
        except TypeError:
            raise DcrTypeError(
                "exposures must be a sequence of Exposures or paths",
                exposures=type(exposures).__name__,
            ) from None
        n = config.dcrNumSubfilters
        if len(sources) < n:
            raise DcrValueError(
                f"{len(sources)} visits cannot constrain {n} subfilters: give at least as "
                "many visits as subfilters (better several times more, at a range of "
                "airmasses on both sides of the meridian), or lower dcrNumSubfilters",
                nVisits=len(sources),
                dcrNumSubfilters=n,
            )
        inputs = [_Input(source, i) for i, source in enumerate(sources)]
        coaddGiven = coadd is not None
        if coaddGiven:
            coadd = self._loadCoadd(coadd)
            config.validate(mask=coadd.mask)
        known: set[str] = set()
        for inp in inputs:
            known.update(inp.planes)
        unknown = [plane for plane in config.badMaskPlanes if plane not in known]
        if unknown:
            raise DcrConfigError(
                f"badMaskPlanes names mask plane(s) {', '.join(unknown)} that no input "
                f"defines; known planes: {', '.join(sorted(known))}",
                badMaskPlanes=config.badMaskPlanes,
            )
        for inp in inputs:
            _checkMetadata(inp, config.doAirmassWeight)
        band = _bandOf(config, inputs, coadd)

        if coaddGiven:
            bbox = coadd.bbox
            refWcs = coadd.wcs if coadd.wcs is not None else inputs[0].wcs
        else:
            bbox = inputs[0].bbox
            for inp in inputs[1:]:
                bbox = Box.fromCorners(
                    min(bbox.minX, inp.bbox.minX),
                    min(bbox.minY, inp.bbox.minY),
                    max(bbox.maxX, inp.bbox.maxX),
                    max(bbox.maxY, inp.bbox.maxY),
                )
            refWcs = inputs[0].wcs
        for inp in inputs:
            if not inp.bbox.overlaps(bbox):
                raise DcrShapeError(
                    f"{inp.name} does not overlap the model's box: its pixels cover "
                    f"{inp.bbox} and the model {bbox}; give exposures of the coadd's patch",
                    visit=inp.name,
                )
            _checkGrid(inp, refWcs, bbox)

        # DCR of every visit at the centre of the patch: for the buffer and the summary.
        _measureZeniths(inputs, [bbox])
        maxShift = 0.0
        for inp in inputs:
            try:
                pairs = calculateDcr(
                    inp.visitInfo,
                    inp.wcs,
                    band.effectiveWavelength,
                    band.bandwidth,
                    n,
                    splitSubfilters=True,
                    bbox=bbox,
                    zenith=inp.zenith.get(bbox),
                )
            except DcrError as exc:
                raise type(exc)(f"{inp.name}: {exc.message}", **exc.values) from exc
            inp.dcr = pairs
            for s0, s1 in pairs:
                maxShift = max(maxShift, math.hypot(*s0), math.hypot(*s1))
        if config.subregionBuffer is None:
            buffer = automaticBuffer(maxShift, config.solver)
        else:
            buffer = config.subregionBuffer
        self._preflight(inputs[0], band, bbox)
        psfAware, modelPsf, psfSummary = self._preparePsfs(inputs, band, bbox)

        statsCtrl = StatisticsControl(badMaskPlanes=config.badMaskPlanes)
        coaddExposure = self._statisticsPass(inputs, bbox, statsCtrl, coadd if coaddGiven else None)
        if not coaddGiven:
            coaddExposure = Exposure(
                coaddExposure.maskedImage,
                wcs=refWcs,
                psf=inputs[0].psf,
                filter=band,
                photoCalib=inputs[0].photoCalib,
            )
        usable = [inp for inp in inputs if inp.goodPixels > 0]
        if not usable:
            raise DcrValueError(
                "all pixels of all visits are masked (bad mask planes "
                f"{', '.join(config.badMaskPlanes)}) inside the model's box; check the "
                "masks or the badMaskPlanes setting",
                bbox=bbox,
            )
        for inp in inputs:
            if inp.goodPixels == 0:
                warnings.warn(
                    f"{inp.name} has no usable pixel inside the model's box and is left out",
                    DcrWarning,
                    stacklevel=3,
                )
        if len(usable) < n:
            raise DcrValueError(
                f"only {len(usable)} visits have usable pixels, fewer than the {n} subfilters",
                nVisits=len(usable),
                dcrNumSubfilters=n,
            )
        if config.doAirmassWeight:
            for inp in usable:
                inp.weight *= float(inp.visitInfo.boresightAirmass)
        return _Prepared(
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
        )

    def _preparePsfs(
        self, inputs: list[_Input], band: Filter, bbox: Box
    ) -> tuple[bool, Psf | None, dict[str, Any]]:
        """Check the inputs' PSFs, estimate missing ones, choose the model PSF.

        Returns whether the forward model is PSF-aware, the model PSF (None if not) and the
        PSF part of the run summary.
        """
        config = self.config
        aware = config.solver == "direct" and config.usePsf
        centres = [
            0.5 * (lo + hi)
            for lo, hi in wavelengthGenerator(
                band.effectiveWavelength, band.bandwidth, config.dcrNumSubfilters
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
                self._estimatePsf(inp, band, bbox)
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

    def _estimatePsf(self, inp: _Input, band: Filter, bbox: Box) -> None:
        """Estimate the PSF of an input that has none, from its stars (warns)."""
        exposure = inp.read(bbox)
        try:
            if exposure is None:
                raise DcrValueError("the visit does not overlap the model's box")
            with warnings.catch_warnings():
                # estimatePsf warns on its own; the warning below names the visit
                warnings.simplefilter("ignore", DcrPsfWarning)
                estimate = estimatePsf(exposure, effectiveWavelength=band.effectiveWavelength)
        except DcrError as exc:
            raise type(exc)(
                f"{inp.name} has no PSF and none can be estimated from it ({exc.message}); "
                "give the exposure a PSF (Exposure.psf, or a PSF HDU in its file), or use "
                "usePsf=False",
                **exc.values,
            ) from exc
        inp.psf = estimate.psf
        inp.psfEstimate = estimate.toDict()
        warnings.warn(
            f"{inp.name} has no PSF: using one estimated from {estimate.nStars} stars "
            f"(FWHM {estimate.fwhm:.2f} pixels, recorded in the run summary)",
            DcrPsfWarning,
            stacklevel=5,
        )

    def _preflight(self, inp: _Input, band: Filter, bbox: Box) -> None:
        """Build one tiny template with the run's settings, so that they fail before work."""
        config = self.config
        box = Box(int(round(bbox.center[0])) - 1, int(round(bbox.center[1])) - 1, 3, 3)
        tiny = DcrModel(
            [Image(np.zeros(box.shape), bbox=box) for _ in range(config.dcrNumSubfilters)],
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

    def _loadCoadd(self, coadd: Any) -> Exposure:
        if isinstance(coadd, str | os.PathLike):

            if not Path(coadd).is_file():
                raise DcrValueError("coadd file does not exist", path=str(coadd))
            coadd = readExposure(coadd)
        if not isinstance(coadd, Exposure):
            raise DcrTypeError(
                "coadd must be an Exposure or the path of an exposure file",
                coadd=type(coadd).__name__,
            )
        return coadd

    def _statisticsPass(
        self,
        inputs: list[_Input],
        bbox: Box,
        statsCtrl: StatisticsControl,
        coadd: Exposure | None,
    ) -> Exposure:
        """Read every visit once per subregion: weights, checks, and the plain coadd.

        Each visit's weight is the inverse of the mean variance of its good pixels. When
        no coadd is given it is the inverse-variance weighted mean of the good pixels.
        """
        config = self.config
        sumVariance = np.zeros(len(inputs))
        if coadd is None:
            numerator = np.zeros(bbox.shape)
            denominator = np.zeros(bbox.shape)
        for tile in subregionTiles(bbox, config.subregionSize):
            for i, inp in enumerate(inputs):
                cutout = inp.read(tile)
                if cutout is None:
                    continue
                good = _goodPixels(cutout, statsCtrl)
                _checkFinite(inp, cutout, good)
                variance = cutout.variance.array
                inp.goodPixels += int(good.sum())
                sumVariance[i] += float(variance[good].sum())
                if coadd is None:
                    sub = cutout.bbox.slices(bbox)
                    weight = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0)
                    numerator[sub] += weight * np.where(good, cutout.image.array, 0.0)
                    denominator[sub] += weight
        for i, inp in enumerate(inputs):
            if inp.goodPixels > 0:
                inp.weight = inp.goodPixels / sumVariance[i]
        if coadd is not None:
            return self._prepareGivenCoadd(coadd, statsCtrl)
        covered = denominator > 0
        image = np.zeros(bbox.shape)
        variance = np.full(bbox.shape, np.inf)
        image[covered] = numerator[covered] / denominator[covered]
        variance[covered] = 1.0 / denominator[covered]
        mask = Mask.fromBox(bbox)
        noData = mask.getPlaneBitMask("NO_DATA")
        mask.array[~covered] |= noData
        if covered.any():
            fill = float(np.median(variance[covered]))
            variance[~covered] = fill
        else:
            variance[:] = 1.0
        self._detect(image, variance, covered, mask)
        return Exposure(MaskedImage(Image(image, bbox=bbox), mask, Image(variance, bbox=bbox)))

    def _detect(
        self, image: np.ndarray, variance: np.ndarray, good: np.ndarray, mask: Mask
    ) -> None:
        """Mark the sources of a coadd in its convergence mask planes.

        Pixels whose signal-to-noise ratio exceeds ``config.detectionThreshold`` after a
        light smoothing (a Gaussian of 1 pixel, which favours sources over noise) are
        flagged, then grown by one pixel.
        """
        config = self.config
        smooth = ndimage.gaussian_filter(np.where(good, image, 0.0), 1.0, mode="constant")
        norm = ndimage.gaussian_filter(good.astype(float), 1.0, mode="constant")
        # The smoothed noise of white noise with a unit-sum Gaussian kernel of sigma 1 is
        # sigma_pixel / (2 sqrt(pi)).
        noise = np.sqrt(np.where(good, variance, np.inf)) / (2.0 * math.sqrt(math.pi))
        with np.errstate(invalid="ignore", divide="ignore"):
            snr = np.where(norm > 0.5, smooth / norm / noise, 0.0)
        detected = ndimage.binary_dilation(snr > config.detectionThreshold, iterations=1) & good
        for plane in config.convergenceMaskPlanes:
            bit = mask.addMaskPlane(plane)
            mask.array[detected] |= 1 << bit
        _log.info(
            "detected %d source pixels in the computed coadd (%.1f sigma)",
            int(detected.sum()),
            config.detectionThreshold,
        )

    def _prepareGivenCoadd(self, coadd: Exposure, statsCtrl: StatisticsControl) -> Exposure:
        """Return a copy of a given coadd with masked pixels filled and sources marked."""
        config = self.config
        coadd = coadd.clone()
        good = _goodPixels(coadd, statsCtrl)
        image = coadd.image.array
        variance = coadd.variance.array
        finite = np.isfinite(image)
        if (good & ~finite).any():
            raise DcrValueError(
                f"the coadd has {int((good & ~finite).sum())} unmasked non-finite pixels; "
                "flag them in a bad mask plane (BAD or NO_DATA)"
            )
        image[~good | ~finite] = 0.0
        badVariance = ~np.isfinite(variance) | (variance <= 0)
        if badVariance.any():
            okay = ~badVariance & good
            variance[badVariance] = float(np.median(variance[okay])) if okay.any() else 1.0
        bits = coadd.mask.getPlaneBitMask(config.convergenceMaskPlanes)
        if not (coadd.mask.array & bits).any():
            _log.warning(
                "the coadd marks no pixel in %s; detecting its sources at %.1f sigma",
                ", ".join(config.convergenceMaskPlanes),
                config.detectionThreshold,
            )
            self._detect(image, variance, good, coadd.mask)
        return coadd

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

    def _stack(self, model: Any, prepared: _Prepared) -> Exposure:
        total = np.zeros(prepared.bbox.shape)
        for image in model:
            total += image.array
        coadd = prepared.coadd
        return Exposure(
            MaskedImage(
                Image(total.astype(np.float32), bbox=prepared.bbox),
                coadd.mask.clone(),
                coadd.variance.clone(),
            ),
            wcs=prepared.wcs,
            psf=model.psf,
            filter=prepared.band,
            photoCalib=coadd.photoCalib,
        )

    def _summary(
        self,
        prepared: _Prepared,
        subregions: list[dict[str, Any]],
        timings: dict[str, float],
    ) -> dict[str, Any]:

        visits = []
        for inp in prepared.inputs:
            vi = inp.visitInfo
            parAngle = getattr(vi, "boresightParAngle", None)
            visits.append(
                {
                    "name": inp.name,
                    "id": vi.id,
                    "airmass": None if vi.boresightAirmass is None else float(vi.boresightAirmass),
                    "parallacticAngle": None if parAngle is None else float(parAngle.deg),
                    "weight": float(inp.weight),
                    "goodPixels": int(inp.goodPixels),
                    "dcrEdgeShifts": [[list(s0), list(s1)] for s0, s1 in inp.dcr],
                    "psfFwhm": None if inp.psf is None else float(inp.psf.fwhm),
                    "psfEstimated": inp.psfEstimate is not None,
                }
            )
        bbox = prepared.bbox
        return {
            "kind": _SUMMARY_KIND,
            "runId": uuid.uuid4().hex,
            "dcrmodelVersion": __version__,
            "config": self.config.toDict(),
            "band": {
                "name": prepared.band.bandName,
                "effectiveWavelength": prepared.band.effectiveWavelength,
                "bandwidth": prepared.band.bandwidth,
            },
            "bbox": [bbox.minX, bbox.minY, bbox.width, bbox.height],
            "coadd": "given" if prepared.coaddGiven else "computed",
            "bufferPixels": prepared.buffer,
            "featherPixels": featherWidth(prepared.buffer, self.config.solver),
            "visits": visits,
            "leftOut": list(prepared.leftOut),
            "psf": prepared.psfSummary,
            "subregions": subregions,
            "timings": {k: float(v) for k, v in timings.items()},
        }


class _Subregion:
    """One subregion with its DCR buffer: the visits' cutouts and the model being fitted."""

    def __init__(
        self,
        task: DcrAssembleCoadd,
        prepared: _Prepared,
        model: Any,
        modelWeights: np.ndarray | None,
        tile: Box,
        index: int,
        count: int,
    ) -> None:

        config = task.config
        self.config = config
        self.task = task
        self.tile = tile
        self.index = index
        self.count = count
        self.n = config.dcrNumSubfilters
        self.bbox = tile.grow(prepared.buffer).clippedTo(prepared.bbox)
        patch = prepared.bbox
        inner = self.bbox.slices(patch)
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
        self.visits = []

        def regions() -> list[Box]:
            return [tile.grow(prepared.buffer).clippedTo(patch)
                    for tile in subregionTiles(patch, config.subregionSize)]

        # The direct solver works in the inputs' single precision (its normal equations are
        # accumulated in double), on stacks of all visits that its solve takes as they are;
        # the iterative one in double, one visit at a time, as the reference.
        direct = config.solver == "direct"
        stacks = None
        self.pool = None
        self.runScratch = prepared.scratch
        if direct:

            # One pool of memory for the run's subregions (see ArrayPool).
            self.pool = prepared.scratch.setdefault("arrays", ArrayPool())
            shape = (len(prepared.inputs), *self.bbox.shape)
            stacks = tuple(self.pool.take(shape, dtype) for dtype in (np.float32, np.float32, bool))
            stacks[0].fill(0.0)
            stacks[1].fill(1.0)
            stacks[2].fill(False)
        for inp in prepared.inputs:
            cutout = inp.read(self.bbox)
            if cutout is None:
                continue
            good = _goodPixels(cutout, self.statsCtrl)
            if not good.any():
                continue
            sub = cutout.bbox.slices(self.bbox)
            variance = None
            if stacks is not None:
                # The direct solver only needs where the visit is good (its weight is a
                # scalar); the iterative one multiplies its residuals by the weight image.
                index = len(self.visits)
                data, variance, weight = (stack[index] for stack in stacks)
                weight[sub] = good
                np.copyto(variance[sub], cutout.variance.array, where=good, casting="unsafe")
            else:
                data = np.zeros(self.bbox.shape)
                weight = np.zeros(self.bbox.shape)
                weight[sub] = np.where(good, inp.weight, 0.0)
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
            shifts = _splitShifts(pairs, config.splitSubfilters, config.splitThreshold)
            self.visits.append(_Visit(inp, data, weight, shifts, pairs, variance))
        self._stacks = (
            None if stacks is None else tuple(stack[: len(self.visits)] for stack in stacks)
        )
        if config.solver == "direct":
            self._wholePixelCoverage()
        else:
            self._normalisation()

    # ------------------------------------------------------------------------ weights
    def _normalisation(self) -> None:
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

    def _wholePixelCoverage(self) -> None:
        """Count the visits per pixel (nImage) for the direct solver, with whole-pixel shifts.

        The direct solver needs neither the weights' normalisation nor the coverage of
        the iterative update, only the count of visits per pixel and subfilter
        (``nImage``). Rather than spline-shifting every visit's coverage map once per
        subfilter (`_normalisation`), each good-pixel map is moved back by the
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
                counts[k] += _wholePixelShift(good, dy, dx)
        everywhere = np.ones(self.bbox.shape, dtype=bool)
        for k in range(self.n):
            everywhere &= counts[k] > 0
        self.nImages = [np.where(everywhere, c, 0) for c in counts]
        self.covered = everywhere

    # ----------------------------------------------------------------------- iterate
    def _templates(self) -> list[np.ndarray]:
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
        minIter = config.resolveMinNumIter()
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
        if not self.visits or not self.covered.any():
            record["stopReason"] = "no data"
            _log.warning("subregion %d/%d %s: no usable data; the coadd is kept",
                         self.index + 1, self.count, self.tile)
            return record
        if not (self.converge & self.covered).any() and self.weights is not None:
            record["stopReason"] = "no sources"
            _log.info("subregion %d/%d %s: no sources; the coadd is kept",
                      self.index + 1, self.count, self.tile)
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
            metric = self._convergence(templates) if config.useConvergence else None
            if config.useConvergence:
                if metric is None:
                    record["stopReason"] = "no convergence pixels"
                    break
                convergence.append(metric)
                if iteration > 0:
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
                        iteration -= 1
                        record["stopReason"] = "diverged"
                        break
                    if iteration >= minIter and improvement < config.convergenceThreshold:
                        record["stopReason"] = "converged"
                        break
                else:
                    _log.info("subregion %d/%d initial convergence %.6g",
                              self.index + 1, self.count, metric)
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

    def _report(self, progress: ProgressCallback | None, iteration: int,
                metric: float | None, gain: float) -> None:
        if progress is None:
            return
        progress(
            {
                "subregion": self.index,
                "nSubregions": self.count,
                "finished": False,
                "iteration": iteration,
                "convergence": metric,
                "gain": gain if math.isfinite(gain) else None,
            }
        )

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
        central wavelength to the model's PSF (`dcrmodel.psf.matching.psfMatchingTransfer`),
        computed by `dcrmodel.psf.matching.DampedPsfMatcher` in single precision (float32 when
        real, i.e. for point-symmetric kernels, else complex64: the factors are smooth and
        of order 1, so single precision costs nothing measurable). The model's damped
        inverse is computed once per grid. Real factors are kept with the visit for the
        run's other subregions on the same grid (the PSF is the same across the patch),
        up to `_PSF_FACTOR_CACHE` bytes in all (all visits and grids of the run).

        The grid is padded by the DCR shifts plus the width holding all but 1 % of every
        kernel (`dcrmodel.psf.matching.effectiveKernelSize`), not by whole PSF images, whose far
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
        # Each visit's kernel at each subfilter's centre, resampled once per run, as
        # achromatic PSFs.
        eff = band.effectiveWavelength
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


@dataclasses.dataclass
class _Visit:
    input: _Input
    data: np.ndarray
    weight: np.ndarray  # float64 weights (iterative) or a boolean good-pixel map (direct)
    shifts: list[tuple[Any, bool]]
    edgeShifts: list
    variance: np.ndarray | None = None


# ------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------
def checkOutputFolder(outDir: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an output folder that holds files of another run, before any work.

    Parameters
    ----------
    outDir : str or os.PathLike
        The folder a model is to be written to (it need not exist).
    overwrite : bool
        Whether an earlier model's files there may be replaced.

    Returns
    -------
    path : `pathlib.Path`
        The folder.

    Raises
    ------
    DcrOutputError
        If the path is a file, or the folder holds files that are not a model's, or a
        model's without ``overwrite``.
    """
    out = Path(outDir)
    if out.exists() and not out.is_dir():
        raise DcrOutputError(
            "the output path exists and is not a folder; choose a folder name", outDir=str(out)
        )
    if not out.exists():
        return out
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return out
    summary = out / SUMMARY_NAME
    ours = False
    if summary.is_file():
        try:
            ours = json.loads(summary.read_text()).get("kind") == _SUMMARY_KIND
        except (OSError, ValueError, AttributeError):
            ours = False
    if ours and overwrite:
        foreign = [
            name for name in entries
            if not (name == SUMMARY_NAME or name == STACKED_COADD_NAME or name == NIMAGE_NAME
                    or name.startswith(_MODEL_PREFIX))
        ]
        if not foreign:
            return out
        raise DcrOutputError(
            f"the output folder holds files that are not a dcrmodel model "
            f"({', '.join(foreign[:5])}); choose an empty folder",
            outDir=str(out),
        )
    what = "another run's model" if ours else "other files"
    hint = "pass overwrite=True (--overwrite) to replace it" if ours else "choose an empty folder"
    raise DcrOutputError(
        f"the output folder already holds {what} ({', '.join(entries[:5])}); {hint}",
        outDir=str(out),
    )


def _writeNImages(nImages: list[Image], wcs: WCS | None, path: Path) -> None:
    """Write the per-subfilter image counts as int32 image HDUs ``NIMAGE_<k>``."""
    hdus = [pyfits.PrimaryHDU()]
    for k, image in enumerate(nImages):
        header = wcs.to_header(relax=True) if wcs is not None else pyfits.Header()
        header["EXTNAME"] = f"NIMAGE_{k}"
        header["DCR-SUBF"] = (k, "subfilter index")
        header["LTV1"] = -image.bbox.minX
        header["LTV2"] = -image.bbox.minY
        if wcs is not None:
            # The WCS maps parent pixels; the file's pixel 1 is parent pixel x0.
            header["CRPIX1"] = wcs.wcs.crpix[0] - image.bbox.minX
            header["CRPIX2"] = wcs.wcs.crpix[1] - image.bbox.minY
        hdus.append(pyfits.ImageHDU(np.asarray(image.array, dtype=np.int32), header=header))
    pyfits.HDUList(hdus).writeto(path)


def writeResults(
    result: AssembleResult, outDir: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write an assembly's outputs into a folder, atomically.

    The folder receives ``dcrCoadd_<k>.fits`` (one exposure per subfilter, as
    `dcrmodel.fits.model.writeDcrModel` writes them), ``stackedCoadd.fits`` (the stacked
    coadd), ``nImage.fits`` (the per-subfilter image counts, HDUs ``NIMAGE_<k>``) and
    ``summary.json``. Everything is written into a temporary folder beside ``outDir`` and
    renamed into place at the end, so an interrupted write leaves no partial output.

    Parameters
    ----------
    result : AssembleResult
        What `DcrAssembleCoadd.run` returned.
    outDir : str or os.PathLike
        The output folder: new, empty, or (with ``overwrite``) holding an earlier model.
    overwrite : bool, optional
        Replace an earlier dcrmodel model in ``outDir``. Folders holding other files are
        never replaced.

    Returns
    -------
    pathlib.Path
        The output folder.

    Raises
    ------
    DcrOutputError
        If ``outDir`` holds another run's files (and ``overwrite`` is False) or files that
        are not a dcrmodel model.
    """
    if not isinstance(result, AssembleResult):
        raise DcrTypeError("result must be an AssembleResult", result=type(result).__name__)
    out = checkOutputFolder(outDir, overwrite)
    with atomicDirectory(out) as tmp:
        modelDir = tmp / "_model"
        writeDcrModel(result.dcrModel, modelDir)
        for item in sorted(modelDir.iterdir()):
            os.replace(item, tmp / item.name)
        shutil.rmtree(modelDir)
        writeExposure(result.coadd, tmp / STACKED_COADD_NAME)
        _writeNImages(result.nImages, result.coadd.wcs, tmp / NIMAGE_NAME)
        (tmp / SUMMARY_NAME).write_text(json.dumps(result.summary, indent=2, allow_nan=True))
    _log.info("wrote the DCR model to %s", out)
    return out


def assembleFromFiles(
    paths: Sequence[str | os.PathLike],
    outDir: str | os.PathLike,
    coaddPath: str | os.PathLike | None = None,
    config: DcrAssembleConfig | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> AssembleResult:
    """Build a DCR model from exposure files and write it to a folder.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Exposure files (Rubin layout) of the visits, on the coadd's pixel grid.
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

    Returns
    -------
    AssembleResult
        The result, also written to ``outDir``.
    """
    checkOutputFolder(outDir, overwrite)
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if coaddPath is not None and not Path(coaddPath).is_file():
        missing.append(str(coaddPath))
    if missing:
        raise DcrValueError(
            f"input file(s) not found: {', '.join(missing[:5])}", nMissing=len(missing)
        )
    task = DcrAssembleCoadd(config)
    result = task.run(paths, coadd=coaddPath, progress=progress)
    writeResults(result, outDir, overwrite=overwrite)
    return result
