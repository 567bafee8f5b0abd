"""Analytic DCR models on a patch and visits on their own grids, for the template tests.

- `Scene`: point sources on the sky (given in the pixels of a reference WCS) with one flux
  per subfilter, drawn as circular Gaussians of `SIGMA` pixels.
- `patchModel`: a `DcrModel` whose subfilter images are the scene drawn on a patch grid.
- `visitFrame`: a TAN WCS of a visit rotated and shifted against the patch.
- `expectedTemplate`: the template drawn directly in the visit's frame: each subfilter's
  Gaussians at their sky positions seen through the visit's WCS (astropy, not dcrmodel),
  moved by that subfilter's DCR computed independently with `dcrmodel.physics.calculateDcr`
  through the visit's own WCS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

from dcrmodel.image import Box, Exposure, Filter, Image, Mask, MaskedImage
from dcrmodel.model import DcrModel
from dcrmodel.physics import calculateDcr
from helpers import makeTanWcs
from helpers.warp import renderScene

__all__ = ["SIGMA", "BAND", "Scene", "patchModel", "visitFrame", "visitExposure",
           "expectedTemplate", "skyToPixels"]

#: Standard deviation (pixels) of the sources, in every frame (all grids are 0.2"/pixel).
SIGMA = 1.6

#: The band of every model here.
BAND = Filter("g", 480.0, 150.0)


def skyToPixels(fromWcs: WCS, toWcs: WCS, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Map pixel positions of one WCS to another through the sky, with astropy alone."""
    sky = fromWcs.pixel_to_world(np.asarray(x, float), np.asarray(y, float))
    px, py = toWcs.world_to_pixel(sky)
    return np.asarray(px, float), np.asarray(py, float)


@dataclass
class Scene:
    """Point sources at ``(x, y)`` in ``refWcs`` pixels, ``fluxes[k][i]`` in subfilter k."""

    refWcs: WCS
    positions: list[tuple[float, float]]
    fluxes: np.ndarray  # (numSubfilters, numSources)

    @classmethod
    def random(cls, refWcs: WCS, box: Box, count: int, numSubfilters: int = 3,
               seed: int = 0, border: int = 8) -> Scene:
        rng = np.random.default_rng(seed)
        xs = rng.uniform(box.minX + border, box.maxX - border, count)
        ys = rng.uniform(box.minY + border, box.maxY - border, count)
        # colours: blue, flat and red sources
        fluxes = rng.uniform(200.0, 1000.0, (numSubfilters, count))
        return cls(refWcs, list(zip(xs.tolist(), ys.tolist(), strict=True)), fluxes)

    def subfilter(self, k: int) -> list[tuple[float, float, float]]:
        return [(x, y, float(f)) for (x, y), f in zip(self.positions, self.fluxes[k],
                                                      strict=True)]


def patchModel(scene: Scene, wcs: WCS, box: Box, psf=None, variance: float = 0.5,
               mask: Mask | None = None) -> DcrModel:
    """A DCR model whose subfilter images are the scene drawn on ``wcs`` over ``box``."""
    images = [Image(renderScene(wcs, box, scene.subfilter(k), scene.refWcs, SIGMA), bbox=box)
              for k in range(len(scene.fluxes))]
    return DcrModel(images, filterInfo=BAND, psf=psf, wcs=wcs,
                    variance=Image(np.full(box.shape, variance), bbox=box),
                    mask=mask if mask is not None else Mask.fromBox(box))


def visitFrame(visitInfo, rotation: float, box: Box, offset=(0.0, 0.0)) -> WCS:
    """A TAN WCS at the visit's boresight, rotated by ``rotation`` degrees, whose box centre
    is ``offset`` pixels from the boresight."""
    centre = box.center
    return makeTanWcs(rotation, 0.2, visitInfo.boresightRaDec,
                      crpix=(centre[0] + offset[0], centre[1] + offset[1]))


def visitExposure(visitInfo, wcs: WCS, box: Box, image=None, psf=None, variance: float = 1.0):
    """An Exposure on the visit's grid (image zeros unless given)."""
    array = np.zeros(box.shape) if image is None else np.asarray(image, float)
    masked = MaskedImage(Image(array, bbox=box), Mask.fromBox(box),
                         Image(np.full(box.shape, variance), bbox=box))
    return Exposure(masked, wcs=wcs, visitInfo=visitInfo, filter=BAND, psf=psf)


def expectedTemplate(scene: Scene, visitInfo, wcs: WCS, box: Box, mode: str = "mean",
                     supersample: int = 4, sigma: float = SIGMA) -> np.ndarray:
    """The template drawn in the visit's frame (``mode`` "mean" or "split", see module).

    ``mode=None`` draws the sources without DCR; ``sigma`` (pixels) is their width.
    """
    n = len(scene.fluxes)
    xs, ys = skyToPixels(scene.refWcs, wcs, [p[0] for p in scene.positions],
                         [p[1] for p in scene.positions])
    split = mode == "split"
    shifts = calculateDcr(visitInfo, wcs, BAND.effectiveWavelength, BAND.bandwidth, n,
                          splitSubfilters=split, bbox=box)
    if mode is None:
        shifts = [(0.0, 0.0)] * n
    out = np.zeros(box.shape)
    for k in range(n):
        if split:
            s0, s1 = np.asarray(shifts[k][0]), np.asarray(shifts[k][1])
            moves = [(0.75 * s0 + 0.25 * s1, 0.5), (0.25 * s0 + 0.75 * s1, 0.5)]
        else:
            moves = [(np.asarray(shifts[k]), 1.0)]
        for (dy, dx), weight in moves:
            sources = [(x + dx, y + dy, weight * float(f))
                       for x, y, f in zip(xs, ys, scene.fluxes[k], strict=True)]
            out += renderScene(wcs, box, sources, wcs, sigma, supersample=supersample)
    return out
