"""Analytic scenes drawn directly on any pixel grid, for the tests of the warps.

- `renderScene`: circular Gaussians defined on the sky (in the pixel frame of a reference
  TAN WCS) drawn on the pixels of another WCS by supersampling: every pixel is the mean
  surface brightness over its area, in counts per reference pixel, so two frames of the
  same scene agree wherever a surface-brightness-conserving warp should make them agree.
- `sipWcs`: a TAN-SIP WCS with a distortion of a few pixels over a small image.
- `secondMoments`, `orientation`: the shape of a PSF image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy.wcs import WCS, Sip

from dcrmodel.image import Box
from dcrmodel.warp import mapPixels
from helpers import makeTanWcs

__all__ = ["renderScene", "sipWcs", "secondMoments", "orientation"]


def renderScene(
    wcs: WCS,
    box: Box,
    sources: Sequence[tuple[float, float, float]],
    refWcs: WCS,
    sigma: float,
    supersample: int = 4,
) -> np.ndarray:
    """Draw Gaussians defined in the pixel frame of ``refWcs`` on the pixels of ``wcs``.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The grid drawn on (parent pixels).
    box : Box
        Its pixels.
    sources : sequence of (x, y, flux)
        Centres in ``refWcs`` parent pixels and total fluxes (counts).
    refWcs : astropy.wcs.WCS
        The frame in which the sources are circular Gaussians of ``sigma`` pixels.
    sigma : float
        Standard deviation, reference pixels.
    supersample : int
        Sub-pixels per axis averaged in each pixel.

    Returns
    -------
    numpy.ndarray
        ``box.shape``: the mean surface brightness over each pixel, counts per reference
        pixel.
    """
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    ys, xs = np.mgrid[box.minY:box.maxY + 1, box.minX:box.maxX + 1].astype(float)
    subX = (xs[..., None, None] + offsets[None, None, None, :]).repeat(supersample, axis=2)
    subY = (ys[..., None, None] + offsets[None, None, :, None]).repeat(supersample, axis=3)
    rx, ry = mapPixels(wcs, refWcs, subX, subY)
    values = np.zeros(rx.shape)
    for x, y, flux in sources:
        r2 = (rx - x) ** 2 + (ry - y) ** 2
        values += flux / (2 * np.pi * sigma**2) * np.exp(-0.5 * r2 / sigma**2)
    return values.mean(axis=(2, 3))


def sipWcs(shape: tuple[int, int], crval=(150.0, -30.0), pixelScale: float = 0.2) -> WCS:
    """A TAN-SIP WCS centred on a ``shape`` image: up to ~1.5 pixel of distortion at its corners."""
    ny, nx = shape
    wcs = makeTanWcs(0.0, pixelScale, crval, crpix=((nx - 1) / 2, (ny - 1) / 2))
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[2, 0], a[0, 2], a[1, 1], a[3, 0] = 2e-4, -1e-4, 1.5e-4, 1e-6
    b[0, 2], b[2, 0], b[1, 1], b[0, 3] = 2e-4, 1e-4, -1e-4, 1e-6
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def secondMoments(image: np.ndarray) -> tuple[float, float, float]:
    """Return the second moments (xx, yy, xy) of an image about its centroid (pixels^2)."""
    yy, xx = np.indices(image.shape, dtype=float)
    total = image.sum()
    xc = (image * xx).sum() / total
    yc = (image * yy).sum() / total
    return (
        float((image * (xx - xc) ** 2).sum() / total),
        float((image * (yy - yc) ** 2).sum() / total),
        float((image * (xx - xc) * (yy - yc)).sum() / total),
    )


def orientation(image: np.ndarray) -> float:
    """Return the angle (degrees, from +x toward +y, in [-90, 90)) of an image's major axis."""
    mxx, myy, mxy = secondMoments(image)
    return float(np.rad2deg(0.5 * np.arctan2(2 * mxy, mxx - myy)))
