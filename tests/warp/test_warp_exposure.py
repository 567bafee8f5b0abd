"""Warping exposures onto another WCS and box (dcrmodel.warp.exposure).

The scenes are circular Gaussians on the sky drawn directly on each grid
(`helpers.warp.renderScene`), so a warp is compared with the truth on the destination grid,
not with another resampler. Tolerances are the measured errors of the Lanczos 3 kernel
with some margin (see each test); 3-pixel-FWHM sources are well sampled, but Lanczos 3
still misses a 1-d shift of them by up to 6e-3 of the peak.
"""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from dcrmodel.errors import (
    DcrConfigError,
    DcrMetadataError,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
)
from dcrmodel.image import Box, Exposure, Filter, ImagePsf, MaskedImage, PhotoCalib
from dcrmodel.warp.exposure import warpExposure, warpImage
from dcrmodel.warp.mapping import mapBox
from helpers import makeTanWcs, makeVisitInfo
from helpers.warp import orientation, renderScene, sipWcs

N = 96
BOX = Box(0, 0, N, N)
CENTRE = (150.0, -30.0)
SIGMA = 3.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # 3-pixel FWHM: well sampled
SOURCES = [(40.3, 44.7, 1000.0), (55.2, 51.9, 700.0), (47.6, 58.1, 1500.0), (52.8, 38.4, 400.0)]


def _frame(angle, shift=(0.0, 0.0), scale=0.2):
    return makeTanWcs(angle, scale, CENTRE, crpix=((N - 1) / 2 + shift[0], (N - 1) / 2 + shift[1]))


SOURCE_WCS = _frame(0.0)
ROTATED_WCS = _frame(37.0, (3.3, -1.7))


def _exposure(wcs=SOURCE_WCS, refWcs=SOURCE_WCS, **kwargs):
    image = renderScene(wcs, BOX, SOURCES, refWcs, SIGMA)
    return Exposure.fromArrays(image, variance=np.full(image.shape, 4.0), wcs=wcs, **kwargs)


def _noData(exposure):
    return (exposure.mask.array & exposure.mask.getPlaneBitMask("NO_DATA")) != 0


@pytest.fixture(scope="module")
def source():
    return _exposure()


@pytest.fixture(scope="module")
def rotated(source):
    return warpExposure(source, ROTATED_WCS, BOX)


def test_warp_matches_the_scene_drawn_on_the_rotated_grid(rotated):
    truth = renderScene(ROTATED_WCS, BOX, SOURCES, SOURCE_WCS, SIGMA)
    good = ~_noData(rotated)
    assert good.sum() > 0.5 * BOX.area
    error = np.abs(rotated.image.array - truth)[good]
    # measured 6.95e-3 of the peak (the Lanczos 3 interpolation of 3-pixel-FWHM Gaussians)
    assert error.max() < 1.0e-2 * truth.max()


def test_warp_from_a_distorted_grid():
    # the source grid has SIP distortion (about a pixel at its corners) and its tangent
    # point 30 pixels North of the scene, where the distortion moves the sources by 0.2
    # pixel; the scene is defined on the rotated grid
    sip = sipWcs((N, N), (CENTRE[0], CENTRE[1] + 30 * 0.2 / 3600))
    exposure = _exposure(wcs=sip, refWcs=ROTATED_WCS)
    warped = warpExposure(exposure, ROTATED_WCS, BOX)
    truth = renderScene(ROTATED_WCS, BOX, SOURCES, ROTATED_WCS, SIGMA)
    good = ~_noData(warped)
    assert np.abs(warped.image.array - truth)[good].max() < 1.0e-2 * truth.max()
    # all_pix2world/all_world2pix carry the distortion: without it the sources land off
    plain = sip.deepcopy()
    plain.sip = None
    plain.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    plain.wcs.set()
    exposure.wcs = plain
    wrong = warpExposure(exposure, ROTATED_WCS, BOX)
    assert np.abs(wrong.image.array - truth)[good].max() > 3e-2 * truth.max()


def test_round_trip_and_flux(source, rotated):
    back = warpExposure(rotated, SOURCE_WCS, BOX)
    original = source.image.array
    yy, xx = np.mgrid[0:N, 0:N]
    onSources = (original > 1e-3 * original.max()) & ~_noData(back)
    onSources &= np.hypot(xx - 47.5, yy - 47.5) < 30  # away from the edges
    rms = np.sqrt(np.mean((back.image.array - original)[onSources] ** 2))
    relative = rms / np.sqrt(np.mean(original[onSources] ** 2))
    # measured 1.30e-2 for Lanczos 3 (1-d shifts of these sources err by up to 6e-3 of the
    # peak each way), 6.8e-3 for Lanczos 4: the 2e-3 of issue 13 is beyond both kernels
    # (see test_round_trip_with_a_wider_kernel)
    assert relative < 1.5e-2
    # equal pixel scales: the flux of the field is kept (measured 1.1e-5 there, 2.1e-5 back)
    assert abs(rotated.image.array.sum() / original.sum() - 1.0) < 1e-4
    assert abs(back.image.array.sum() / original.sum() - 1.0) < 1e-4


def _roundTrip(source, kernel):
    """Relative rms of (back - original) over the sources, and the flux kept each way."""
    there = warpExposure(source, ROTATED_WCS, BOX, kernel=kernel)
    back = warpExposure(there, SOURCE_WCS, BOX, kernel=kernel)
    original = source.image.array
    yy, xx = np.mgrid[0:N, 0:N]
    onSources = (original > 1e-3 * original.max()) & ~_noData(back)
    onSources &= np.hypot(xx - 47.5, yy - 47.5) < 30
    rms = np.sqrt(np.mean((back.image.array - original)[onSources] ** 2))
    relative = rms / np.sqrt(np.mean(original[onSources] ** 2))
    total = original.sum()
    return relative, there.image.array.sum() / total, back.image.array.sum() / total


@pytest.mark.parametrize(("kernel", "limit"), [("lanczos5", 4.5e-3), ("lanczos7", 1.5e-3)])
def test_round_trip_with_a_wider_kernel(source, kernel, limit):
    # Issue 13: rotated by 37 degrees and back, within 2e-3 of the rms over the sources,
    # flux to 1e-4. The error is the Lanczos window's attenuation of the passband, about
    # 1 / a^2: measured 3.74e-3 (lanczos5), 2.01e-3 (lanczos6), 1.24e-3 (lanczos7).
    relative, there, back = _roundTrip(source, kernel)
    assert relative < limit
    assert abs(there - 1.0) < 1e-5 and abs(back - 1.0) < 1e-5


def test_conserve_modes():
    single = [(47.3, 48.6, 1000.0)]
    image = renderScene(SOURCE_WCS, BOX, single, SOURCE_WCS, SIGMA)
    exposure = Exposure.fromArrays(image, wcs=SOURCE_WCS)
    total = image.sum()
    tilted = _frame(13.0, (3.3, -1.7))
    # 13 degrees: the moire of the sampling is as wide as a source; surface brightness
    # keeps its flux to 1e-3 only (measured 7.6e-4), exactFlux to rounding
    plain = warpExposure(exposure, tilted, BOX)
    exact = warpExposure(exposure, tilted, BOX, conserve="exactFlux")
    assert abs(plain.image.array.sum() / total - 1.0) < 2e-3
    assert abs(exact.image.array.sum() / total - 1.0) < 1e-10
    # destination pixels 1.5 times larger (2.25 times the area)
    coarse = _frame(13.0, scale=0.3)
    brightness = warpExposure(exposure, coarse, BOX)
    flux = warpExposure(exposure, coarse, BOX, conserve="flux")
    assert abs(brightness.image.array.sum() * 2.25 / total - 1.0) < 5e-3
    assert abs(flux.image.array.sum() / total - 1.0) < 5e-3
    np.testing.assert_allclose(flux.image.array, 2.25 * brightness.image.array, rtol=1e-4,
                               atol=1e-6 * image.max())
    np.testing.assert_allclose(flux.variance.array[~_noData(flux)],
                               2.25**2 * brightness.variance.array[~_noData(flux)], rtol=1e-4)
    with pytest.raises(DcrValueError, match="exactFlux' needs destination pixels no larger"):
        warpExposure(exposure, coarse, BOX, conserve="exactFlux")
    with pytest.raises(DcrConfigError, match="unknown conserve mode 'counts'"):
        warpExposure(exposure, tilted, BOX, conserve="counts")


def test_psf_turns_with_the_grid():
    y, x = np.mgrid[-10:11, -10:11].astype(float)
    psf = ImagePsf(np.exp(-0.5 * ((x / 2.4) ** 2 + (y / 1.4) ** 2)), alpha=-0.2,
                   effectiveWavelength=480.0)
    exposure = _exposure(psf=psf)
    warped = warpExposure(exposure, ROTATED_WCS, BOX)
    image = warped.psf.computeKernelImage()
    assert isinstance(warped.psf, ImagePsf) and image.shape[0] % 2 == 1
    assert abs(image.sum() - 1.0) < 1e-12
    assert warped.psf.alpha == -0.2 and warped.psf.effectiveWavelength == 480.0
    # the major axis points East-West on the sky; the grid is turned by 37 degrees, so on
    # it the axis is at -37 degrees from +x (measured -37.0)
    assert abs(orientation(psf.computeKernelImage())) < 1e-6
    assert abs(orientation(image) + 37.0) < 0.3


def test_one_bad_pixel_flags_the_pixels_whose_kernel_touches_it():
    exposure = _exposure()
    bad = exposure.mask.getPlaneBitMask("BAD")
    exposure.mask.array[51, 47] |= bad
    exposure.image.array[51, 47] = np.nan  # a bad pixel's value must not leak either
    warped = warpExposure(exposure, ROTATED_WCS, BOX)
    mapping = mapBox(ROTATED_WCS, SOURCE_WCS, BOX)
    touches = (np.abs(mapping.x - 47) < 3) & (np.abs(mapping.y - 51) < 3)
    flagged = (warped.mask.array & bad) != 0
    assert np.array_equal(flagged, touches) and 30 <= touches.sum() <= 42
    assert np.all(np.isfinite(warped.image.array)) and np.all(np.isfinite(warped.variance.array))
    assert np.all(_noData(warped)[touches])  # the NaN is not summed into them


def test_no_data_outside_the_footprint(source):
    # a destination box reaching beyond the exposure on two sides
    box = Box(30, -20, 90, 70)
    warped = warpExposure(source, ROTATED_WCS, box)
    mapping = mapBox(ROTATED_WCS, SOURCE_WCS, box)
    outside = np.zeros(box.shape, dtype=bool)
    for coord in (mapping.x, mapping.y):
        outside |= (np.floor(coord) - 2 < 0) | (np.floor(coord) + 3 > N - 1)
    noData = _noData(warped)
    assert np.array_equal(noData, outside) and 0 < noData.sum() < box.area
    assert np.all(warped.image.array[noData] == 0.0)
    assert np.all(warped.variance.array[noData] == 0.0)
    assert np.all(warped.variance.array[~noData] > 0.0)


def test_everything_else_is_carried(source):
    visitInfo = makeVisitInfo(elevation=60.0, id=42)
    header = fits.Header([("OBSERVER", "someone"), ("SEEING", 0.7)])
    exposure = Exposure.fromArrays(
        source.image.array.astype(np.float32), variance=np.ones((N, N), np.float32),
        wcs=SOURCE_WCS, visitInfo=visitInfo, filter=Filter.fromBand("g"),
        photoCalib=PhotoCalib(57.5), metadata=header,
    )
    exposure.mask.addMaskPlane("STREAK")
    warped = warpExposure(exposure, ROTATED_WCS, Box(10, 20, 50, 40), kernel="lanczos4")
    assert warped.bbox == Box(10, 20, 50, 40)
    assert warped.image.dtype == np.float32 and warped.variance.dtype == np.float32
    assert warped.visitInfo is visitInfo and warped.filter == exposure.filter
    assert warped.photoCalib is exposure.photoCalib
    assert warped.metadata["OBSERVER"] == "someone" and warped.metadata is not header
    assert warped.mask.planes["STREAK"] == exposure.mask.planes["STREAK"]
    assert warped.wcs is not ROTATED_WCS
    np.testing.assert_allclose(warped.wcs.wcs.crval, ROTATED_WCS.wcs.crval)
    np.testing.assert_allclose(warped.wcs.wcs.cd, ROTATED_WCS.wcs.cd)
    assert warped.psf is None


def test_warp_image_is_the_pixels_of_warp_exposure(source, rotated):
    maskedImage = warpImage(source.maskedImage, SOURCE_WCS, ROTATED_WCS, BOX)
    assert isinstance(maskedImage, MaskedImage)
    np.testing.assert_array_equal(maskedImage.image.array, rotated.image.array)
    np.testing.assert_array_equal(maskedImage.mask.array, rotated.mask.array)
    np.testing.assert_array_equal(maskedImage.variance.array, rotated.variance.array)


def test_bad_inputs(source):
    noWcs = Exposure.fromArrays(np.zeros((10, 10)))
    with pytest.raises(DcrMetadataError, match="the exposure has no WCS"):
        warpExposure(noWcs, ROTATED_WCS, BOX)
    linear = WCS(naxis=2)
    linear.wcs.ctype = ["LINEAR", "LINEAR"]
    with pytest.raises(DcrValueError, match="destination grid is not a two-axis celestial"):
        warpExposure(source, linear, BOX)
    with pytest.raises(DcrMetadataError, match="the destination grid has no WCS"):
        warpExposure(source, None, BOX)
    with pytest.raises(DcrShapeError, match="the destination box is empty"):
        warpExposure(source, ROTATED_WCS, Box(0, 0, 0, 10))
    with pytest.raises(DcrTypeError, match="destBBox must be a dcrmodel Box"):
        warpExposure(source, ROTATED_WCS, (0, 0, 10, 10))
    with pytest.raises(DcrValueError, match="does not overlap the destination box"):
        warpExposure(source, ROTATED_WCS, Box(500, 500, 50, 50))
    elsewhere = makeTanWcs(0.0, 0.2, (200.0, 10.0))
    with pytest.raises(DcrValueError, match="does not overlap the destination box"):
        warpExposure(source, elsewhere, BOX)
    with pytest.raises(DcrConfigError, match="unknown warping kernel 'lanczos9'"):
        warpExposure(source, ROTATED_WCS, BOX, kernel="lanczos9")
    with pytest.raises(DcrTypeError, match="exposure must be a dcrmodel Exposure"):
        warpExposure(source.maskedImage, ROTATED_WCS, BOX)
    with pytest.raises(DcrTypeError, match="maskedImage must be a MaskedImage"):
        warpImage(source, SOURCE_WCS, ROTATED_WCS, BOX)
