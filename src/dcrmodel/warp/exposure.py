"""Warp a masked image or an exposure onto another WCS and box.

`warpExposure` resamples an `dcrmodel.image.Exposure` onto a destination WCS and parent
box (for example a patch of a survey's sky map, `dcrmodel.warp.grid.tangentPlaneGrid`):

- the destination pixels are mapped to source pixels through both WCSs, distortion
  included (`dcrmodel.warp.mapping.mapBox`: exact on a coarse grid, interpolated, checked
  to 1e-3 pixel and refined where it is off);
- image, variance and mask are resampled by the kernel sum of
  `dcrmodel.warp.resample.resampleArrays` (Lanczos 3 by default, weights normalised to sum
  1 per output pixel; variance ``sum w^2 var``; every mask bit of a touched pixel is
  carried; ``NO_DATA``, image 0 and variance 0 outside the footprint);
- the PSF is the source PSF image carried by the local Jacobian at the box centre
  (`dcrmodel.warp.warpedpsf.warpPsf`), with its chromatic exponent;
- visit info, filter, photometric calibration and metadata are carried unchanged; the new
  exposure has the destination WCS and box.

Surface brightness or flux
--------------------------
``conserve`` chooses what the pixel values keep:

- ``"surfaceBrightness"`` (the default, as in the Rubin pipelines' warps): the weights of
  every output pixel sum to 1, so a pixel value stays counts per source pixel area and the
  source's photometric calibration applies to each pixel. Sums over sources then scale
  with the ratio of the pixel areas; with equal pixel areas they are kept as well as the
  kernel interpolates. A rotated grid samples the source pixels unevenly (a moire pattern
  in the weight each source pixel gives out, `dcrmodel.warp.resample.sourceCoverage`,
  within 1.5 % of 1 for Lanczos 3): for single 3-pixel-FWHM sources the tests measure
  flux kept to about 1e-5 at a 37-degree rotation but only to 1e-3 at 5 to 15 degrees,
  where the pattern is as wide as a source; over a field of many sources it averages out.
- ``"flux"``: each output pixel is also multiplied by its area in source pixels (the
  Jacobian determinant of the pixel mapping, pixel by pixel) and its variance by the
  square, so that sums over sources follow a change of pixel scale; cheap, and as exact
  as the interpolation (the same moire).
- ``"exactFlux"``: every source pixel is divided by the weight it gives out before the
  kernel sum (its variance by the square), so that the output sums to the input's flux
  exactly for every source that both grids cover, at any rotation. The price is a scatter
  of the weights of a destination box grown by twice the kernel's radius (the warp takes
  about 2.8 times as long, `benchmarks/bench_warp.py`) and pixel values that carry the
  moire: against an analytic field the largest pixel error
  about doubles (1.3e-2 of the peak instead of 7e-3, Lanczos 3 at 37 degrees). The weights
  a source pixel gives out are only well behaved when the destination pixels are not
  larger than the source pixels (coarser grids alias: some source pixels give out little
  or negative weight), so this mode refuses destination pixels more than
  `EXACT_FLUX_MAX_AREA_RATIO` times the source pixel area.

Why not ``reproject`` or ``scipy.ndimage``
------------------------------------------
``reproject.reproject_interp`` interpolates with ``scipy.ndimage.map_coordinates``
(nearest, bilinear, biquadratic, bicubic splines), ``reproject_adaptive`` with a Hann or
Gaussian kernel and ``reproject_exact`` by polygon overlap: none offers a Lanczos kernel,
and all resample a single array with a footprint, with no variance propagated through the
kernel weights and no mask bits carried to the pixels a flagged input touches. Neither
does ``map_coordinates`` (spline interpolation, whose prefilter spreads a bad pixel over
the whole image). The kernel sum here is vectorised numpy (separable: one gather per row of
kernel taps over a chunk of output pixels, `dcrmodel.warp.resample`), with no dependency
beyond numpy, scipy and astropy; at 1024^2 a Lanczos 3 warp of image, variance and mask
takes about 2.3 times as long as ``map_coordinates`` of the image alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from astropy.wcs import WCS

from ..errors import DcrConfigError, DcrShapeError, DcrTypeError, DcrValueError
from ..image import Box, Exposure, Image, Mask, MaskedImage
from .kernels import DEFAULT_WARPING_KERNEL, WarpingKernel, getWarpingKernel
from .mapping import (
    DEFAULT_GRID_SPACING,
    MAPPING_TOLERANCE,
    boxesOverlap,
    checkCelestialWcs,
    localJacobian,
    mapBox,
    mapPixels,
)
from .resample import resampleArrays, sourceCoverage
from .warpedpsf import warpPsf

__all__ = [
    "warpImage",
    "warpExposure",
    "checkWarpInputs",
    "CONSERVE_MODES",
    "EXACT_FLUX_MAX_AREA_RATIO",
]

#: What a warp's pixel values keep (``conserve``; see the module notes).
CONSERVE_MODES = ("surfaceBrightness", "flux", "exactFlux")

#: Largest destination pixel area, in source pixels, that ``conserve="exactFlux"`` takes.
EXACT_FLUX_MAX_AREA_RATIO = 1.1


def checkWarpInputs(
    srcWcs: Any,
    srcBBox: Box,
    destWcs: Any,
    destBBox: Any,
    kernel: str | WarpingKernel = DEFAULT_WARPING_KERNEL,
    conserve: str = "surfaceBrightness",
    what: str = "the exposure",
) -> WarpingKernel:
    """Validate the inputs of a warp before any pixel is touched.

    Parameters
    ----------
    srcWcs : astropy.wcs.WCS
        WCS of the source parent pixels.
    srcBBox : Box
        Source pixels.
    destWcs : astropy.wcs.WCS
        WCS of the destination parent pixels.
    destBBox : Box
        Destination pixels.
    kernel : str or WarpingKernel, optional
        Warping kernel name.
    conserve : str, optional
        One of `CONSERVE_MODES`.
    what : str, optional
        What is warped, for the messages.

    Returns
    -------
    WarpingKernel
        The kernel.

    Raises
    ------
    DcrConfigError
        If the kernel or ``conserve`` is unknown.
    DcrMetadataError
        If a WCS is missing.
    DcrTypeError
        If a WCS is not an astropy WCS or ``destBBox`` not a `Box`.
    DcrShapeError
        If a box is empty.
    DcrValueError
        If a WCS is not celestial, the source does not overlap the destination box on the
        sky (`dcrmodel.warp.mapping.boxesOverlap`), or ``conserve="exactFlux"`` meets
        destination pixels larger than `EXACT_FLUX_MAX_AREA_RATIO` source pixels.
    """
    warpingKernel = getWarpingKernel(kernel)
    if conserve not in CONSERVE_MODES:
        raise DcrConfigError(
            f"unknown conserve mode {conserve!r}; choose one of {', '.join(CONSERVE_MODES)}",
            conserve=conserve,
        )
    checkCelestialWcs(srcWcs, what)
    checkCelestialWcs(destWcs, "the destination grid")
    if not isinstance(destBBox, Box):
        raise DcrTypeError("destBBox must be a dcrmodel Box in parent pixel coordinates",
                           destBBox=type(destBBox).__name__)
    if destBBox.isEmpty():
        raise DcrShapeError("the destination box is empty; give it a width and height",
                            destBBox=destBBox)
    if srcBBox.isEmpty():
        raise DcrShapeError(f"{what} has no pixels", bbox=srcBBox)
    if not boxesOverlap(srcWcs, srcBBox, destWcs, destBBox):
        raise DcrValueError(
            f"{what} does not overlap the destination box on the sky; nothing to warp",
            bbox=srcBBox, destBBox=destBBox,
        )
    if conserve == "exactFlux":
        area = abs(float(np.linalg.det(_centreJacobian(destWcs, srcWcs, srcBBox, destBBox))))
        if area > EXACT_FLUX_MAX_AREA_RATIO:
            raise DcrValueError(
                f"conserve='exactFlux' needs destination pixels no larger than the source "
                f"pixels, but they are {area:.3g} times their area; use conserve='flux'",
                areaRatio=area,
            )
    return warpingKernel


def warpImage(
    maskedImage: MaskedImage,
    srcWcs: WCS,
    destWcs: WCS,
    destBBox: Box,
    kernel: str | WarpingKernel = DEFAULT_WARPING_KERNEL,
    conserve: str = "surfaceBrightness",
    gridSpacing: int = DEFAULT_GRID_SPACING,
    tolerance: float = MAPPING_TOLERANCE,
) -> MaskedImage:
    """Warp a masked image from one WCS onto another WCS and parent box.

    Parameters
    ----------
    maskedImage : MaskedImage
        Source pixels, mask and variance.
    srcWcs : astropy.wcs.WCS
        Celestial WCS of the source parent pixels.
    destWcs : astropy.wcs.WCS
        Celestial WCS of the destination parent pixels.
    destBBox : Box
        Destination pixels (parent coordinates).
    kernel : str or WarpingKernel, optional
        ``lanczos3`` (default), ``lanczos2``, ``lanczos4`` to ``lanczos8``, ``bilinear``
        or ``nearest`` (`dcrmodel.warp.kernels`).
    conserve : str, optional
        ``"surfaceBrightness"`` (default), ``"flux"`` or ``"exactFlux"``: what the pixel
        values keep (see the module notes).
    gridSpacing : int, optional
        Pixels between the nodes of the exact mapping (`dcrmodel.warp.mapping.mapBox`).
    tolerance : float, optional
        Largest error (pixels) of the interpolated mapping.

    Returns
    -------
    MaskedImage
        On ``destBBox``, the dtype of the source image (at least float32); the source
        mask planes plus ``NO_DATA``, which flags the pixels outside the source footprint
        (image and variance 0 there).

    Raises
    ------
    DcrConfigError, DcrMetadataError, DcrTypeError, DcrShapeError, DcrValueError
        For an unknown kernel or mode, a missing or non-celestial WCS, an empty box or no
        overlap, before any work (`checkWarpInputs`).
    """
    if not isinstance(maskedImage, MaskedImage):
        raise DcrTypeError("maskedImage must be a MaskedImage",
                           maskedImage=type(maskedImage).__name__)
    warpingKernel = checkWarpInputs(srcWcs, maskedImage.bbox, destWcs, destBBox, kernel,
                                    conserve, what="the image")
    return _warpPixels(maskedImage, srcWcs, destWcs, destBBox, warpingKernel, conserve,
                       gridSpacing, tolerance)


def _warpPixels(
    maskedImage: MaskedImage,
    srcWcs: WCS,
    destWcs: WCS,
    destBBox: Box,
    kernel: WarpingKernel,
    conserve: str,
    gridSpacing: int,
    tolerance: float,
) -> MaskedImage:
    """`warpImage` after its inputs were checked."""
    x0, y0 = maskedImage.bbox.begin
    coverage = None
    if conserve == "exactFlux":
        margin = _coverageMargin(destWcs, srcWcs, maskedImage.bbox, destBBox, kernel)
        wide = mapBox(destWcs, srcWcs, destBBox.grow(margin), gridSpacing=gridSpacing,
                      tolerance=tolerance)
        coverage = sourceCoverage(maskedImage.image.shape, wide.x - x0, wide.y - y0, kernel)
        inner = destBBox.slices(wide.bbox)
        xs, ys = wide.x[inner], wide.y[inner]
    else:
        mapping = mapBox(destWcs, srcWcs, destBBox, gridSpacing=gridSpacing,
                         tolerance=tolerance)
        xs, ys = mapping.x, mapping.y
    resampled = resampleArrays(
        maskedImage.image.array,
        xs - x0,
        ys - y0,
        kernel,
        variance=maskedImage.variance.array,
        mask=maskedImage.mask.array,
        coverage=coverage,
    )
    image, variance = resampled.image, resampled.variance
    if conserve == "flux":
        areas = _pixelAreas(xs, ys, destWcs, srcWcs, maskedImage.bbox, destBBox)
        image = (image * areas).astype(image.dtype)
        variance = variance * areas**2
    mask = Mask(resampled.mask, bbox=destBBox, planes=maskedImage.mask.planes)
    noDataBit = mask.addMaskPlane("NO_DATA")
    np.bitwise_or(mask.array, np.int32(1 << noDataBit), out=mask.array, where=resampled.noData)
    return MaskedImage(Image(image, bbox=destBBox), mask,
                       Image(variance.astype(image.dtype, copy=False), bbox=destBBox))


def _pixelAreas(
    xs: np.ndarray, ys: np.ndarray, destWcs: WCS, srcWcs: WCS, srcBBox: Box, destBBox: Box
) -> np.ndarray | float:
    """Area of each destination pixel in source pixels (|det| of the mapping's Jacobian)."""
    if min(destBBox.shape) < 2:
        jacobian = _centreJacobian(destWcs, srcWcs, srcBBox, destBBox)
        return abs(float(np.linalg.det(jacobian)))
    dxdy, dxdx = np.gradient(xs)
    dydy, dydx = np.gradient(ys)
    areas = np.abs(dxdx * dydy - dxdy * dydx)
    return np.where(np.isfinite(areas), areas, 0.0)


def _coverageMargin(
    destWcs: WCS, srcWcs: WCS, srcBBox: Box, destBBox: Box, kernel: WarpingKernel
) -> int:
    """Destination pixels beyond the box whose weights reach the box's source pixels.

    An output pixel of the box touches source pixels within the kernel's radius of its
    position, and those are touched by output pixels within twice the radius: that
    distance in destination pixels, with the local scale at the box centre (plus one
    pixel for the variation of the scale over the box).
    """
    jacobian = _centreJacobian(destWcs, srcWcs, srcBBox, destBBox)
    stretch = float(np.linalg.svd(np.linalg.inv(jacobian), compute_uv=False)[0])
    return int(np.ceil(2.0 * kernel.radius * stretch)) + 1


def _centreJacobian(destWcs: WCS, srcWcs: WCS, srcBBox: Box, destBBox: Box) -> np.ndarray:
    """Jacobian of the pixel mapping at the destination box centre.

    When the source WCS is undefined there (a destination box far larger than the
    source), the Jacobian is taken where the source box centre lands instead.
    """
    try:
        return localJacobian(destWcs, srcWcs, destBBox.center)
    except DcrValueError:
        x, y = mapPixels(srcWcs, destWcs, srcBBox.center[0], srcBBox.center[1])
        return localJacobian(destWcs, srcWcs, (float(x), float(y)))


def warpExposure(
    exposure: Exposure,
    destWcs: WCS,
    destBBox: Box,
    kernel: str | WarpingKernel = DEFAULT_WARPING_KERNEL,
    conserve: str = "surfaceBrightness",
    gridSpacing: int = DEFAULT_GRID_SPACING,
    tolerance: float = MAPPING_TOLERANCE,
) -> Exposure:
    """Warp an exposure onto another WCS and parent box.

    Parameters
    ----------
    exposure : Exposure
        The exposure; it needs a celestial WCS.
    destWcs : astropy.wcs.WCS
        Celestial WCS of the destination parent pixels (0-based, to ICRS or any celestial
        frame astropy knows).
    destBBox : Box
        Destination pixels (parent coordinates).
    kernel : str or WarpingKernel, optional
        ``lanczos3`` (default, as in the Rubin pipelines), ``lanczos2``, ``lanczos4`` to
        ``lanczos8`` (``lanczos7`` keeps a round trip of a well-sampled field to about 1e-3
        of its rms, Lanczos 3 to about 1e-2), ``bilinear`` or ``nearest``
        (`dcrmodel.warp.kernels`).
    conserve : str, optional
        ``"surfaceBrightness"`` (default), ``"flux"`` or ``"exactFlux"``: what the pixel
        values keep (see the module notes).
    gridSpacing : int, optional
        Pixels between the nodes of the exact mapping.
    tolerance : float, optional
        Largest error (pixels) of the interpolated mapping.

    Returns
    -------
    Exposure
        On ``destBBox`` with a copy of ``destWcs``: the warped masked image
        (`warpImage`), the PSF warped by the local Jacobian at the box centre (an
        `ImagePsf` with the source's chromatic exponent; None if the source has none),
        and the visit info, filter, photometric calibration and a copy of the metadata of
        the source.

    Raises
    ------
    DcrTypeError
        If ``exposure`` is not an `Exposure`, or a WCS or the box has the wrong type.
    DcrConfigError
        If the kernel or ``conserve`` is unknown.
    DcrMetadataError
        If the exposure has no WCS.
    DcrShapeError
        If a box is empty.
    DcrValueError
        If a WCS is not celestial, or the exposure does not overlap the destination box.

    Examples
    --------
    >>> from dcrmodel.warp.grid import tangentPlaneGrid
    >>> wcs, box = tangentPlaneGrid(150.0, -30.0, 40, 40, 0.2)
    >>> exposure = Exposure.fromArrays(np.ones((40, 40), np.float32), wcs=wcs)
    >>> patch = Box(10, 10, 40, 40)  # reaches 10 pixels beyond the exposure
    >>> warped = warpExposure(exposure, wcs, patch)
    >>> warped.bbox, float(warped.image.array[0, 0])
    (Box(minX=10, minY=10, width=40, height=40), 1.0)
    >>> int(warped.mask.array[-1, -1]) == warped.mask.getPlaneBitMask("NO_DATA")
    True
    """
    if not isinstance(exposure, Exposure):
        raise DcrTypeError("exposure must be a dcrmodel Exposure",
                           exposure=type(exposure).__name__)
    warpingKernel = checkWarpInputs(exposure.wcs, exposure.bbox, destWcs, destBBox, kernel,
                                    conserve)
    maskedImage = _warpPixels(exposure.maskedImage, exposure.wcs, destWcs, destBBox,
                              warpingKernel, conserve, gridSpacing, tolerance)
    psf = None
    if exposure.psf is not None:
        jacobian = _centreJacobian(destWcs, exposure.wcs, exposure.bbox, destBBox)
        psf = warpPsf(exposure.psf, jacobian, warpingKernel)
    return Exposure(
        maskedImage,
        wcs=destWcs.deepcopy(),
        psf=psf,
        visitInfo=exposure.visitInfo,
        filter=exposure.filter,
        photoCalib=exposure.photoCalib,
        metadata=exposure.metadata.copy(),
    )
