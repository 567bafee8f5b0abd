"""The plain coadd computed from the visits: before the solve, or from the subregions' warps.

When no coadd is given, the model's plain coadd is the inverse-variance weighted mean of the
visits' good pixels (`dcrmodel.assemble.inputs.computedCoadd`). Its sums over the visits
(`addToCoaddSums`) are taken in one of two places:

- before the subregions are solved, one tile at a time, by the run's statistics pass: always
  for visits on the grid (reading them costs little) and for the iterative solver, which
  starts from the coadd and tapers to it;
- by the subregions themselves (a *deferred* coadd), when the direct solver builds a model
  from visits warped onto the grid: each subregion adds the part of every visit it has warped
  (with its buffer) for its solve that falls in its tile (`Subregion.coaddSums`), and
  `DcrAssembleCoadd.finish` makes the coadd from the tiles' sums (`deferredCoadd`). Each
  visit is then warped once per subregion instead of twice (once per tile for the coadd,
  once per subregion for the solve), which was about a quarter of a build from detector
  frames. The direct solver needs nothing of the coadd to solve (it fills masked pixels
  and its margin from the visits' own inverse-variance coadd); the coadd gives the model's
  mask (``NO_DATA``, the detected sources), its variance and the stacked coadd's.

A warped pixel's value at a grid pixel does not depend on the box it was warped onto beyond
the interpolated mapping (`dcrmodel.warp.mapBox`, within 1e-3 pixel of the exact one): the
deferred coadd of detector frames equals the one of the statistics pass to that accuracy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..image import Box, Exposure, Image, Mask, MaskedImage
from .config import DcrAssembleConfig
from .inputs import PreparedRun, computedCoadd, goodPixels

__all__ = [
    "addToCoaddSums",
    "defersCoadd",
    "tileCoaddSums",
    "deferredCoadd",
    "placeholderCoadd",
]


def addToCoaddSums(
    numerator: np.ndarray,
    denominator: np.ndarray,
    sub: tuple[slice, slice],
    cutout: Exposure,
    good: np.ndarray,
    factor: float | None,
) -> None:
    """Add a visit's good pixels to the sums of the inverse-variance weighted coadd.

    Parameters
    ----------
    numerator, denominator : `numpy.ndarray`
        float64 sums over the visits of ``w * image`` and of ``w``, ``w = 1 / variance``
        (times ``factor``) on good pixels; updated in place at ``sub``.
    sub : tuple of slice
        Where the cutout lies in the sums.
    cutout : `dcrmodel.image.Exposure`
        The visit's pixels (on the grid).
    good : `numpy.ndarray`
        Its good pixels.
    factor : float or None
        A warped visit's ``noiseFactor`` (`dcrmodel.assemble.placement`); None for a visit
        on the grid.
    """
    variance = cutout.variance.array
    weight = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0)
    if factor is not None:
        weight *= factor
    numerator[sub] += weight * np.where(good, cutout.image.array, 0.0)
    denominator[sub] += weight


def tileCoaddSums(prepared: PreparedRun, tile: Box) -> np.ndarray:
    """Return the coadd's sums over a tile, every visit read (warped) onto the tile.

    What a subregion returns in ``coaddSums``, for a result that lacks it (one saved by an
    earlier version of a resumable run).

    Returns
    -------
    `numpy.ndarray`
        ``(2, height, width)`` float64: numerator and denominator (`addToCoaddSums`).
    """
    sums = np.zeros((2, *tile.shape))
    for inp in prepared.inputs:
        cutout = inp.read(tile)
        if cutout is None:
            continue
        good = goodPixels(cutout, prepared.statsCtrl)
        factor = None if inp.warp is None else inp.warp.noiseFactor
        addToCoaddSums(sums[0], sums[1], cutout.bbox.slices(tile), cutout, good, factor)
    return sums


def placeholderCoadd(bbox: Box) -> Exposure:
    """Return the stand-in of a deferred coadd while the subregions are solved.

    Zeros, variance 1, an empty mask: what the direct solver's subregions cut from it (the
    starting model, which the solution replaces) carries nothing into the model.
    """
    return Exposure(MaskedImage(Image(np.zeros(bbox.shape, dtype=np.float32), bbox=bbox),
                                Mask.fromBox(bbox),
                                Image(np.ones(bbox.shape, dtype=np.float32), bbox=bbox)))


def deferredCoadd(
    config: DcrAssembleConfig,
    prepared: PreparedRun,
    tiles: list[Box],
    sums: list[np.ndarray | None],
) -> Exposure:
    """Return the plain coadd made from the subregions' sums over their tiles.

    Parameters
    ----------
    config : `DcrAssembleConfig`
        The run's settings (detection threshold, convergence mask planes).
    prepared : `dcrmodel.assemble.inputs.PreparedRun`
        The run's preparation (box, WCS, band, visits).
    tiles : list of `dcrmodel.image.Box`
        The subregions' tiles, which cover the box once.
    sums : list of `numpy.ndarray` or None
        Per tile, its ``(2, height, width)`` sums (`addToCoaddSums`); None: computed here
        (`tileCoaddSums`).

    Returns
    -------
    `dcrmodel.image.Exposure`
        The coadd of `computedCoadd`, with the grid's WCS, the first visit's PSF and
        calibration and the band, as the statistics pass makes it.
    """
    bbox = prepared.bbox
    numerator = np.zeros(bbox.shape)
    denominator = np.zeros(bbox.shape)
    for tile, tileSums in zip(tiles, sums, strict=True):
        if tileSums is None:
            tileSums = tileCoaddSums(prepared, tile)
        inner = tile.slices(bbox)
        numerator[inner] = tileSums[0]
        denominator[inner] = tileSums[1]
    coadd = computedCoadd(config, numerator, denominator, bbox)
    first = prepared.inputs[0]
    return Exposure(coadd.maskedImage, wcs=prepared.wcs, psf=first.psf, filter=prepared.band,
                    photoCalib=first.photoCalib)


def defersCoadd(config: DcrAssembleConfig, coadd: Any, numWarped: int) -> bool:
    """Whether a run makes its plain coadd from its subregions' warps (see the module notes).

    Only without a given coadd, with the direct solver and with visits to warp: runs of
    visits all on the grid compute the coadd before the solve, as they always did.
    """
    return coadd is None and config.solver == "direct" and numWarped > 0
