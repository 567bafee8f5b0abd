"""A small field seen as a survey sees it: visits on rotated, dithered detector frames.

The sources are defined in the pixels of a patch (a North-up tangent-plane grid centred on
`meridianFieldCentre`) and drawn directly on every frame, without any warp: each power-law
source is integrated over the g band at 12 wavelengths, each displaced by its own
differential refraction (Stone 1996 through `dcrmodel.physics.refraction`) along the zenith
direction measured through that frame's own WCS, and the pixel-integrated circular Gaussians
are placed where the frame's WCS puts the sources' sky positions.

- `detectorFrame`: the WCS and box of a detector rotated by any angle and pointed at an
  offset from the patch centre.
- `renderFrame`: the noiseless sky of a visit on any frame.
- `SurveyField`: training visits on detector frames (and the same visits on the patch
  grid), their footprints on the patch, and the truth of held-out visits on the patch.
"""

from __future__ import annotations

from collections.abc import Sequence

import astropy.units as u
import numpy as np
from astropy.wcs import WCS

from dcrmodel.image import Box, Exposure, Filter, GaussianPsf, MaskedImage
from dcrmodel.physics.dcr import zenithDirection
from dcrmodel.physics.refraction import differentialRefraction
from dcrmodel.warp import mapPixels
from helpers import makeTanWcs, meridianFieldCentre, meridianVisitInfo, renderGaussians

__all__ = ["BAND", "SIGMA", "NOISE", "detectorFrame", "renderFrame", "SurveyField"]

BAND = Filter.fromBand("g")
SIGMA = 1.5  # Gaussian PSF, pixels
NOISE = 2.0  # counts per pixel
PIXEL_SCALE = 0.2  # arcsec


def detectorFrame(patchWcs: WCS, patchBox: Box, rotation: float, offset: tuple[float, float],
                  size: tuple[int, int]) -> tuple[WCS, Box]:
    """Return a detector's WCS and box (parent origin 0).

    Parameters
    ----------
    patchWcs, patchBox
        The patch.
    rotation : float
        Position angle of the detector's +y axis, degrees East of North.
    offset : (float, float)
        Patch pixels from the patch centre to the detector centre, ``(dx, dy)``.
    size : (int, int)
        ``(width, height)`` of the detector, pixels.
    """
    cx, cy = patchBox.center
    sky = patchWcs.pixel_to_world(cx + offset[0], cy + offset[1])
    width, height = size
    wcs = makeTanWcs(rotation, PIXEL_SCALE, crval=(float(sky.ra.deg), float(sky.dec.deg)),
                     crpix=((width - 1) / 2, (height - 1) / 2))
    return wcs, Box(0, 0, width, height)


def renderFrame(sources: Sequence[tuple[float, float, float, float]], visitInfo, wcs: WCS,
                box: Box, patchWcs: WCS, numSamples: int = 12) -> np.ndarray:
    """Noiseless image of power-law sources (patch pixels ``x, y``, flux, slope) on a frame."""
    edges = np.linspace(BAND.lambdaMin, BAND.lambdaMax, numSamples + 1)
    wavelengths = 0.5 * (edges[1:] + edges[:-1])
    refraction = differentialRefraction(
        wavelengths, BAND.effectiveWavelength, visitInfo.boresightAzAlt[1],
        visitInfo.observatory, visitInfo.weather,
    ).to_value(u.arcsec)
    vy, vx = zenithDirection(visitInfo, wcs, box)
    xs, ys = mapPixels(patchWcs, wcs, [s[0] for s in sources], [s[1] for s in sources])
    image = np.zeros(box.shape)
    for (_, _, flux, slope), x, y in zip(sources, xs, ys, strict=True):
        spectrum = (wavelengths / BAND.effectiveWavelength) ** slope
        spectrum = flux * spectrum / spectrum.sum()
        points = [(x + r * vx, y + r * vy, f) for r, f in zip(refraction, spectrum, strict=True)]
        image += renderGaussians(box.shape, points, sigma=SIGMA, origin=box.begin)
    return image


def _exposure(image: np.ndarray, wcs: WCS, box: Box, visitInfo) -> Exposure:
    maskedImage = MaskedImage.fromArrays(
        image.astype(np.float32), variance=np.full(box.shape, NOISE**2, dtype=np.float32),
        origin=box.begin,
    )
    return Exposure(maskedImage, wcs=wcs, visitInfo=visitInfo, filter=BAND,
                    psf=GaussianPsf(2.3548 * SIGMA))


class SurveyField:
    """Training visits of a patch on rotated, dithered detectors, with known truth.

    Parameters
    ----------
    patchSize : int
        Width and height of the patch, pixels.
    detectorSize : int
        Width and height of every detector, pixels.
    hourAngles : sequence of float
        One training visit per hour angle (hours from the meridian).
    maxOffset : float
        Largest pointing offset of a detector from the patch centre, patch pixels.
    nSources : int
        Power-law sources.
    sourceMargin : int, optional
        Pixels between the sources and the patch's edges; None: a quarter of the patch, so
        that every source is seen by every detector.
    seed : int
        Seed of the rotations, offsets, sources and noise.

    Attributes
    ----------
    patchWcs, patchBox
        The patch's grid.
    exposures : list of Exposure
        The training visits on their detectors (float32, noise ``NOISE``).
    onGrid : list of Exposure
        The same visits (same sources, same noise level) drawn on the patch grid.
    footprints : list of numpy.ndarray
        Boolean maps on the patch of the pixels each detector covers.
    rotations : list of float
        The detectors' position angles, degrees.
    """

    def __init__(self, patchSize: int = 96, detectorSize: int = 72,
                 hourAngles: Sequence[float] = (-3.5, -2.6, -1.6, -0.6, 0.5, 1.5, 2.5, 3.4),
                 maxOffset: float = 6.0, nSources: int = 10, sourceMargin: int | None = None,
                 seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        n = patchSize
        self.patchWcs = makeTanWcs(crval=meridianFieldCentre(), crpix=((n - 1) / 2, (n - 1) / 2))
        self.patchBox = Box(0, 0, n, n)
        margin = n // 4 if sourceMargin is None else sourceMargin
        self.sources = [
            (rng.uniform(margin, n - 1 - margin), rng.uniform(margin, n - 1 - margin),
             10 ** rng.uniform(3.0, 4.0), rng.choice([-4.0, -2.0, 0.0, 2.0, 4.0]))
            for _ in range(nSources)
        ]
        ys, xs = np.mgrid[0:n, 0:n].astype(float)
        self.exposures: list[Exposure] = []
        self.onGrid: list[Exposure] = []
        self.footprints: list[np.ndarray] = []
        self.rotations: list[float] = []
        for i, hourAngle in enumerate(hourAngles):
            visitInfo = meridianVisitInfo(hourAngle, 100 + i)
            rotation = float(rng.uniform(0.0, 360.0))
            offset = tuple(rng.uniform(-maxOffset, maxOffset, 2))
            wcs, box = detectorFrame(self.patchWcs, self.patchBox, rotation, offset,
                                     (detectorSize, detectorSize))
            image = renderFrame(self.sources, visitInfo, wcs, box, self.patchWcs)
            self.exposures.append(
                _exposure(image + rng.normal(0.0, NOISE, box.shape), wcs, box, visitInfo))
            gridImage = renderFrame(self.sources, visitInfo, self.patchWcs, self.patchBox,
                                    self.patchWcs)
            self.onGrid.append(_exposure(gridImage + rng.normal(0.0, NOISE, (n, n)),
                                         self.patchWcs, self.patchBox, visitInfo))
            dx, dy = mapPixels(self.patchWcs, wcs, xs, ys)
            self.footprints.append((dx >= -0.5) & (dx <= box.maxX + 0.5)
                                   & (dy >= -0.5) & (dy <= box.maxY + 0.5))
            self.rotations.append(rotation)

    @property
    def grid(self) -> tuple[WCS, Box]:
        """The patch's grid, ``(wcs, box)``."""
        return self.patchWcs, self.patchBox

    @property
    def coverage(self) -> np.ndarray:
        """The number of training detectors covering each patch pixel."""
        return np.sum(self.footprints, axis=0)

    def heldOut(self, hourAngle: float) -> tuple[object, np.ndarray]:
        """The visit info and noiseless patch image of a held-out visit."""
        visitInfo = meridianVisitInfo(hourAngle, 999)
        return visitInfo, renderFrame(self.sources, visitInfo, self.patchWcs, self.patchBox,
                                      self.patchWcs)
