"""The model's pixel grid and each visit's place on it: on the grid, warped onto it, or away.

The grid of a model (its WCS and parent box) comes from a given coadd, from a ``grid``
(`resolveGrid`: a WCS and box, an exposure file whose IMAGE header gives them, or the text
``"RA,DEC,WIDTH,HEIGHT,SCALE"`` of a North-up tangent-plane patch), or, when neither is
given, from the visits themselves (the box covering them all on the first visit's WCS, as
before any warping existed; `modelGrid`).

`placeVisits` then sorts the visits (`VisitPlacement` records what it decided):

- a visit on the grid (its WCS maps the model's box within `dcrmodel.image.WCS_GRID_TOLERANCE`
  of the grid's) takes the path it always took, cut to each subregion and read as it is;
- a visit on another pixel grid (a detector frame: any pointing, rotation, distortion) is
  warped onto the grid as part of the assembly, one subregion at a time (`VisitWarp`):
  only the cutout of the visit that the subregion with its buffer needs is read, and
  warped with `dcrmodel.warp.warpImage` (Lanczos 3 by default, ``warpingKernel``; variance
  ``sum w^2 var``; every mask bit of a touched pixel carried; ``NO_DATA`` outside the
  visit's footprint). Its PSF is the visit's PSF carried by the local Jacobian at the centre
  of its footprint on the grid (`dcrmodel.warp.warpPsf`), once per visit, so that every
  subregion sees one PSF as for a visit on the grid. The visit's WCS becomes the grid's:
  its DCR is computed from its own visit information seen through the grid's WCS, which is
  the direction the DCR takes on the grid;
- a visit that does not overlap the grid on the sky is left out with a `DcrWarning` naming
  it, and named in the run summary (``skipped``).

Weights of warped visits. A visit's weight is the inverse of the mean variance of its own
good pixels that map onto the grid (`sourceStatistics`): the kernel sum lowers the variance of
each warped pixel to ``sum w^2`` times the source's (about 0.2 to 1 with Lanczos 3, depending
on the pixel's sub-pixel phase) and correlates neighbouring pixels, while leaving the noise at
low spatial frequencies, where the model's sources are, as it was, so a weight taken from the
warped variance would favour visits by their rotation and dither. For the same reason a plain
coadd computed from warped visits weights their pixels by the inverse of their variance
divided by the mean of ``sum w^2`` over the footprint (``noiseFactor``, measured once per visit
by resampling a unit variance plane). Measuring the weights on the visit's own pixels
(`visitStatistics`: each pixel read and mapped once, in blocks of the visit's own rows) also
means that the preparation warps nothing when a coadd is given, or when the direct solver's
subregions sum the plain coadd from their own warps (`dcrmodel.assemble.plaincoadd`): a
visit is then warped once per subregion, for its solve.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import warnings
from typing import Any

import numpy as np
from astropy.wcs import WCS

from ..errors import DcrError, DcrShapeError, DcrTypeError, DcrValueError, DcrWarning
from ..fits import gridFromSpec
from ..image import (
    WCS_GRID_TOLERANCE,
    Box,
    Exposure,
    MaskedImage,
    StatisticsControl,
    wcsGridOffset,
)
from ..warp import (
    boxesOverlap,
    checkCelestialWcs,
    localJacobian,
    mapBox,
    mapPixels,
    resampleArrays,
    warpImage,
    warpPsf,
)
from .inputs import VisitInput, checkFinite, goodPixels

__all__ = [
    "GRID_SOURCES",
    "VisitWarp",
    "VisitPlacement",
    "resolveGrid",
    "modelGrid",
    "placeVisits",
    "sourceStatistics",
    "visitStatistics",
]

#: Where a model's grid came from (``grid`` of the run summary).
GRID_SOURCES = ("coadd", "grid", "visits")

# Pixels between the points of a box's outline that are mapped to find its footprint in
# another frame (the mapping is smooth: its extremes lie on the outline).
_OUTLINE_STEP = 16

# Extra source pixels read around what a subregion's kernel taps reach (a safety margin for
# the mapping between the outline points).
_SOURCE_MARGIN = 2

# Half-size (pixels) of the box in which a warped visit's noise factor is measured.
_NOISE_SAMPLE = 48

# Source pixels per block of a warped visit's statistics (`visitStatistics`): about a
# subregion's, so that one block of a file is in memory at a time.
_STATISTICS_BLOCK = 1 << 18


def resolveGrid(grid: Any) -> tuple[WCS, Box] | None:
    """Return a model grid as ``(wcs, bbox)``, or None when none is given.

    Parameters
    ----------
    grid : tuple, str, os.PathLike or None
        ``(astropy.wcs.WCS, Box)``; the path of an exposure file whose IMAGE header gives
        the WCS and box (`dcrmodel.fits.readGrid`); or the text
        ``"RA,DEC,WIDTH,HEIGHT,SCALE"`` (degrees, degrees, pixels, pixels, arcsec per
        pixel) of a North-up tangent-plane patch (`dcrmodel.fits.gridFromSpec`).

    Returns
    -------
    tuple of (astropy.wcs.WCS, Box) or None

    Raises
    ------
    DcrTypeError
        For anything else, or a pair whose items are not a WCS and a `Box`.
    DcrValueError
        For a malformed grid text, a WCS that is not celestial, or an empty box.
    DcrFitsError, FileNotFoundError
        For a grid file that cannot be read (`dcrmodel.fits.readGrid`).
    """
    if grid is None:
        return None
    if isinstance(grid, str | os.PathLike):
        wcs, bbox = gridFromSpec(grid)
    elif isinstance(grid, tuple | list) and len(grid) == 2:
        wcs, bbox = grid
        if not isinstance(bbox, Box):
            raise DcrTypeError("a grid is a pair (astropy.wcs.WCS, dcrmodel Box)",
                               bbox=type(bbox).__name__)
    else:
        raise DcrTypeError(
            "grid must be a pair (astropy.wcs.WCS, Box), the path of an exposure file or "
            "the text RA,DEC,WIDTH,HEIGHT,SCALE",
            grid=type(grid).__name__,
        )
    checkCelestialWcs(wcs, "the grid")
    if bbox.isEmpty():
        raise DcrValueError("the grid's box is empty; give it a width and height", bbox=bbox)
    return wcs, bbox


def modelGrid(
    inputs: list[VisitInput], coadd: Exposure | None, grid: tuple[WCS, Box] | None
) -> tuple[Box, WCS, str]:
    """Return the model's box, the WCS of its pixel grid and where they came from.

    Parameters
    ----------
    inputs : list of `dcrmodel.assemble.inputs.VisitInput`
        The visits (their metadata checked).
    coadd : `dcrmodel.image.Exposure` or None
        A given plain coadd.
    grid : tuple of (astropy.wcs.WCS, Box) or None
        A given grid (`resolveGrid`).

    Returns
    -------
    bbox : Box
    wcs : astropy.wcs.WCS
    source : str
        ``"grid"``, ``"coadd"`` or ``"visits"`` (see `GRID_SOURCES`): the grid's, the
        coadd's (its box; its WCS, else the first visit's), or the box covering every
        visit on the first visit's WCS.

    Raises
    ------
    DcrValueError
        If a coadd and a grid are both given and disagree (another box, or a WCS off the
        grid's pixels by more than `dcrmodel.image.WCS_GRID_TOLERANCE`).
    """
    if grid is not None:
        wcs, bbox = grid
        if coadd is not None:
            _checkCoaddOnGrid(coadd, wcs, bbox)
        return bbox, wcs, "grid"
    if coadd is not None:
        return coadd.bbox, coadd.wcs if coadd.wcs is not None else inputs[0].wcs, "coadd"
    bbox = inputs[0].bbox
    for inp in inputs[1:]:
        bbox = Box.fromCorners(
            min(bbox.minX, inp.bbox.minX),
            min(bbox.minY, inp.bbox.minY),
            max(bbox.maxX, inp.bbox.maxX),
            max(bbox.maxY, inp.bbox.maxY),
        )
    return bbox, inputs[0].wcs, "visits"


def _checkCoaddOnGrid(coadd: Exposure, wcs: WCS, bbox: Box) -> None:
    """Raise DcrValueError unless a given coadd lies on the given grid."""
    if coadd.bbox != bbox:
        raise DcrValueError(
            f"the coadd and the grid disagree: the coadd covers {coadd.bbox} and the grid "
            f"{bbox}; give one of them, or a coadd on the grid",
            coaddBBox=coadd.bbox,
            gridBBox=bbox,
        )
    if coadd.wcs is None:
        return
    offset = _gridOffset(coadd.wcs, wcs, bbox)
    if not offset <= WCS_GRID_TOLERANCE:
        raise DcrValueError(
            f"the coadd and the grid disagree: the coadd's WCS puts the grid's corners "
            f"{offset:.3g} pixels from the grid's WCS; give one of them, or a coadd on the grid",
            offsetPixels=offset,
        )


def _gridOffset(wcs: WCS, refWcs: WCS, bbox: Box) -> float:
    """`dcrmodel.image.wcsGridOffset`, infinite where the two WCSs cannot be compared."""
    try:
        return wcsGridOffset(wcs, refWcs, bbox)
    except Exception:  # astropy raises many kinds for incompatible frames
        return math.inf


# ------------------------------------------------------------------------------------------
# Warping a visit one subregion at a time
# ------------------------------------------------------------------------------------------
def _outline(bbox: Box) -> tuple[np.ndarray, np.ndarray]:
    """Points (x, y) along the edges of a box's pixels, every `_OUTLINE_STEP` pixels."""
    xs = np.unique(np.append(np.arange(bbox.minX - 0.5, bbox.maxX + 0.5, _OUTLINE_STEP),
                             bbox.maxX + 0.5))
    ys = np.unique(np.append(np.arange(bbox.minY - 0.5, bbox.maxY + 0.5, _OUTLINE_STEP),
                             bbox.maxY + 0.5))
    x = np.concatenate([xs, xs, np.full(ys.size, xs[0]), np.full(ys.size, xs[-1])])
    y = np.concatenate([np.full(xs.size, ys[0]), np.full(xs.size, ys[-1]), ys, ys])
    return x, y


def _boundingBox(x: np.ndarray, y: np.ndarray, grow: int) -> Box | None:
    """Return the box of pixels holding the finite points (x, y), grown (None: no point)."""
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        return None
    return Box.fromCorners(
        math.floor(float(x[finite].min()) + 0.5) - grow,
        math.floor(float(y[finite].min()) + 0.5) - grow,
        math.floor(float(x[finite].max()) + 0.5) + grow,
        math.floor(float(y[finite].max()) + 0.5) + grow,
    )


@dataclasses.dataclass(frozen=True)
class VisitWarp:
    """How a visit on another pixel grid is warped onto the model's, one region at a time.

    Attributes
    ----------
    sourceWcs : astropy.wcs.WCS
        The visit's own WCS (parent pixels of its file or exposure).
    sourceBBox : Box
        The visit's pixels (or, in a subregion's task, the cutout it carries).
    gridWcs : astropy.wcs.WCS
        The WCS of the model's grid.
    kernel : str
        The warping kernel (`dcrmodel.warp.WARPING_KERNELS`).
    radius : int
        Source pixels the kernel reaches on either side of a position.
    noiseFactor : float
        Mean of ``sum w^2`` over the visit's footprint (see the module notes).
    """

    sourceWcs: WCS
    sourceBBox: Box
    gridWcs: WCS
    kernel: str
    radius: int
    noiseFactor: float = 1.0

    def sourceBox(self, bbox: Box) -> Box | None:
        """Return the visit's pixels that a warp onto ``bbox`` (grid pixels) reads.

        The outline of ``bbox`` mapped into the visit's frame, grown by the kernel's
        reach, and clipped to `sourceBBox`; None if that is empty.
        """
        x, y = _outline(bbox)
        sx, sy = mapPixels(self.gridWcs, self.sourceWcs, x, y)
        box = _boundingBox(sx, sy, self.radius + _SOURCE_MARGIN)
        if box is None:
            return None
        box = box.intersection(self.sourceBBox)
        return None if box.isEmpty() else box

    def warp(self, cutout: Exposure, bbox: Box) -> MaskedImage | None:
        """Warp a cutout of the visit (holding `sourceBox` of ``bbox``) onto ``bbox``.

        Returns the masked image of `dcrmodel.warp.warpImage` (``NO_DATA``, image and
        variance 0, outside the visit's footprint), or None when the cutout does not
        overlap ``bbox`` on the sky (it then holds only pixels the kernel could reach from
        beyond the visit's edge).
        """
        try:
            return warpImage(cutout.maskedImage, self.sourceWcs, self.gridWcs, bbox,
                             kernel=self.kernel)
        except DcrValueError:
            if boxesOverlap(self.sourceWcs, cutout.bbox, self.gridWcs, bbox):
                raise
            return None


def _canonical(wcs: WCS) -> WCS:
    """Return a copy of a WCS as a copy pickled to another process holds it.

    astropy pickles a WCS through its FITS header, whose numbers keep 16 or 17
    significant digits (a TAN WCS's reference point moves by about 1e-12 degree); a
    second round trip changes nothing. The warps of a run use this copy wherever a
    subregion is solved, so that a subregion solved in a worker process warps with the
    very numbers of a serial run.
    """
    return pickle.loads(pickle.dumps(wcs))


def _footprintOnGrid(inp: VisitInput, wcs: WCS, bbox: Box) -> Box | None:
    """Return the part of the grid's box that the visit's pixels reach (None: none)."""
    x, y = _outline(inp.bbox)
    gx, gy = mapPixels(inp.wcs, wcs, x, y)
    box = _boundingBox(gx, gy, 1)
    if box is None:
        return None
    box = box.intersection(bbox)
    if box.isEmpty():
        return None
    return box


def _noiseFactor(warp: VisitWarp, footprint: Box) -> float:
    """Mean ``sum w^2`` of the kernel over a sample of the footprint (see the module notes)."""
    cx, cy = (int(round(c)) for c in footprint.center)
    sample = Box.fromCorners(cx - _NOISE_SAMPLE, cy - _NOISE_SAMPLE,
                             cx + _NOISE_SAMPLE, cy + _NOISE_SAMPLE).intersection(footprint)
    source = warp.sourceBox(sample)
    if source is None:
        return 1.0
    mapping = mapBox(warp.gridWcs, warp.sourceWcs, sample)
    ones = np.ones(source.shape)
    resampled = resampleArrays(ones, mapping.x - source.minX, mapping.y - source.minY,
                               warp.kernel, variance=ones)
    inside = ~resampled.noData
    if not inside.any():
        return 1.0
    return float(np.mean(resampled.variance[inside]))


def visitStatistics(
    inp: VisitInput, bbox: Box, statsCtrl: StatisticsControl
) -> tuple[int, float]:
    """Count a warped visit's own good pixels that map into the model's box, sum their variance.

    One pass over the visit's pixels that a warp onto its footprint reads, in blocks of
    rows of about `_STATISTICS_BLOCK` pixels (each pixel read and mapped once:
    `sourceStatistics` of each block over the whole box). The good pixels that a warp onto
    the box may read (those within the kernel's reach of it) are checked first
    (`dcrmodel.assemble.inputs.checkFinite`).

    Parameters
    ----------
    inp : `dcrmodel.assemble.inputs.VisitInput`
        A warped visit (`VisitInput.warpOnto` done).
    bbox : Box
        The model's box.
    statsCtrl : `dcrmodel.image.StatisticsControl`
        The bad mask planes.

    Returns
    -------
    count : int
        The good pixels whose centres map into ``bbox``.
    varianceSum : float
        The sum of their variances, counts^2.

    Raises
    ------
    DcrValueError
        If a good pixel a warp may read is not finite or has no variance.
    """
    warp = inp.warp
    source = warp.sourceBox(inp.bbox)
    if source is None:
        return 0, 0.0
    rows = max(1, _STATISTICS_BLOCK // source.width)
    reach = bbox.grow(warp.radius + _SOURCE_MARGIN)
    count, varianceSum = 0, 0.0
    for y0 in range(source.minY, source.maxY + 1, rows):
        block = Box.fromCorners(source.minX, y0, source.maxX, min(y0 + rows - 1, source.maxY))
        cutout = inp.readOwn(block)
        good = goodPixels(cutout, statsCtrl)
        gx, gy = _gridPixels(warp, block)
        checkFinite(inp, cutout, good & _within(reach, gx, gy))
        selected = good & _within(bbox, gx, gy)
        count += int(selected.sum())
        varianceSum += float(cutout.variance.array[selected].sum(dtype=np.float64))
    return count, varianceSum


def _gridPixels(warp: VisitWarp, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """Return the grid pixels (x, y) into which the centres of the visit's pixels in ``box`` map."""
    mapping = mapBox(warp.sourceWcs, warp.gridWcs, box)
    with np.errstate(invalid="ignore"):
        return np.floor(mapping.x + 0.5), np.floor(mapping.y + 0.5)


def _within(box: Box, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Whether the grid pixels (x, y) lie in ``box`` (NaN: no)."""
    with np.errstate(invalid="ignore"):
        return (gx >= box.minX) & (gx <= box.maxX) & (gy >= box.minY) & (gy <= box.maxY)


def sourceStatistics(warp: VisitWarp, cutout: Exposure, tile: Box,
                     good: np.ndarray) -> tuple[int, float]:
    """Count a warped visit's own good pixels that fall in a tile of the grid, sum their variance.

    Each of the visit's pixels belongs to the grid pixel its centre maps into, so that the
    tiles of a patch count every pixel once.

    Parameters
    ----------
    warp : VisitWarp
        The visit's warp.
    cutout : `dcrmodel.image.Exposure`
        A cutout of the visit's own pixels (`dcrmodel.assemble.inputs.VisitInput.readSource`).
    tile : Box
        The tile of the grid.
    good : `numpy.ndarray`
        Boolean map of the cutout's good pixels.

    Returns
    -------
    count : int
        The good pixels whose centres map into ``tile``.
    varianceSum : float
        The sum of their variances, counts^2.
    """
    gx, gy = _gridPixels(warp, cutout.bbox)
    selected = good & _within(tile, gx, gy)
    return int(selected.sum()), float(cutout.variance.array[selected].sum(dtype=np.float64))


@dataclasses.dataclass
class VisitPlacement:
    """What `placeVisits` decided.

    Attributes
    ----------
    inputs : list of `dcrmodel.assemble.inputs.VisitInput`
        The visits kept, those to be warped set up for it.
    skipped : list of str
        The names of the visits left out because they do not overlap the grid.
    numWarped : int
        How many of the kept visits are warped.
    """

    inputs: list[VisitInput]
    skipped: list[str]
    numWarped: int


def placeVisits(
    inputs: list[VisitInput],
    bbox: Box,
    wcs: WCS,
    kernel: str,
    gridGiven: bool,
    radius: int,
) -> VisitPlacement:
    """Sort the visits: on the grid, to be warped onto it, or left out (warned).

    Parameters
    ----------
    inputs : list of `dcrmodel.assemble.inputs.VisitInput`
        The visits, metadata checked (each has a WCS).
    bbox : Box
        The model's box.
    wcs : astropy.wcs.WCS
        The WCS of the model's grid.
    kernel : str
        The warping kernel.
    gridGiven : bool
        Whether the grid was given (a grid or a coadd); otherwise the grid is the first
        visit's and a visit off it is an error.
    radius : int
        Source pixels the kernel reaches on either side of a position.

    Returns
    -------
    VisitPlacement

    Raises
    ------
    DcrShapeError
        Without a given grid, for a visit that is not on the first visit's grid.
    DcrValueError
        For a visit whose WCS is not celestial (off the grid), or when no visit overlaps
        the grid.
    DcrTypeError
        For a WCS that is not an astropy WCS.

    Warns
    -----
    DcrWarning
        For each visit that does not overlap the grid, naming it.
    """
    kept: list[VisitInput] = []
    skipped: list[str] = []
    numWarped = 0
    gridWcs = None  # the grid's WCS as a pickled copy holds it, made once
    for inp in inputs:
        offset = _gridOffset(inp.wcs, wcs, bbox)
        if offset <= WCS_GRID_TOLERANCE:
            if inp.bbox.overlaps(bbox):
                kept.append(inp)
            else:
                skipped.append(inp.name)
            continue
        if not gridGiven:
            raise DcrShapeError(
                f"{inp.name} is not on the model's pixel grid: its WCS puts the box corners "
                f"{offset:.3g} pixels from where the first visit's does (tolerance "
                f"{WCS_GRID_TOLERANCE:g} pixel); give the model's grid (grid=, --grid) or a "
                "coadd, onto which visits on other grids are warped",
                visit=inp.name,
                offsetPixels=offset,
            )
        try:
            checkCelestialWcs(inp.wcs, inp.name)
        except DcrError as exc:
            raise type(exc)(f"{exc.message}; it cannot be warped onto the model's grid",
                            visit=inp.name, **exc.values) from exc
        footprint = _footprintOnGrid(inp, wcs, bbox)
        if footprint is None:
            skipped.append(inp.name)
            continue
        if gridWcs is None:
            gridWcs = _canonical(wcs)
        warp = VisitWarp(_canonical(inp.wcs), inp.bbox, gridWcs, kernel, radius)
        if warp.sourceBox(footprint) is None:
            skipped.append(inp.name)
            continue
        warp = dataclasses.replace(warp, noiseFactor=_noiseFactor(warp, footprint))
        psf = inp.psf
        if psf is not None:
            psf = warpPsf(psf, localJacobian(wcs, inp.wcs, footprint.center), kernel)
        inp.warpOnto(warp, footprint, psf)
        kept.append(inp)
        numWarped += 1
    for name in skipped:
        # Attributed to the caller of DcrAssembleCoadd.planSubregions.
        warnings.warn(f"{name} does not overlap the model's grid and is left out",
                      DcrWarning, stacklevel=4)
    if not kept:
        raise DcrValueError(
            f"no visit overlaps the model's grid {bbox}; give visits of the grid's patch of "
            "sky, or another grid",
            bbox=bbox,
            skipped=skipped[:10],
        )
    return VisitPlacement(kept, skipped, numWarped)
