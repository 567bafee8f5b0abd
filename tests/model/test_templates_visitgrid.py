"""Templates for a visit on its own grid (`dcrmodel.model.visitgrid`).

The analytic case: a model of Gaussian sources with known subfilter images on a patch, a
visit whose frame is rotated by 37 degrees and shifted. Its template must match the
Gaussians drawn directly in the visit's frame at the positions its own WCS gives them
(astropy), moved by each subfilter's DCR computed independently through the visit's WCS
(`dcrmodel.physics.calculateDcr`). The tolerance is that of the Lanczos 3 warp: its
weights do not reproduce a linear ramp (their first moment at a 0.18 pixel offset is 0.161
pixel), which costs about 5e-3 of the peak on a 1.6-pixel Gaussian.
"""

import warnings

import numpy as np
import pytest

from dcrmodel.errors import DcrConfigError, DcrShapeError, DcrValueError
from dcrmodel.image import Box, GaussianPsf, ImagePsf, Mask
from dcrmodel.model import templateRegion, visitgrid
from dcrmodel.model.templates import TemplateCache
from dcrmodel.model.templates import buildMatchedExposure as onGridExposure
from dcrmodel.model.templates import buildMatchedTemplate as onGridTemplate
from dcrmodel.warp import getWarpingKernel, localJacobian, warpImage, warpPsf
from helpers import makeVisitInfo
from helpers.visitgrid import (
    SIGMA,
    Scene,
    expectedTemplate,
    patchModel,
    skyToPixels,
    visitExposure,
    visitFrame,
)
from helpers.warp import orientation

PATCH = Box(0, 0, 128, 128)
VISIT = Box(1000, 2000, 72, 72)  # the visit's own parent box, nowhere near the patch's


@pytest.fixture(scope="module")
def field():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        visitInfo = makeVisitInfo(airmass=1.8, azimuth=250.0)
    patchWcs = visitFrame(visitInfo, 0.0, PATCH)
    scene = Scene.random(patchWcs, PATCH, 14, seed=4, border=20)
    mask = Mask.fromBox(PATCH)
    mask.array[15, 40] |= mask.getPlaneBitMask("BAD")
    mask.array[5:15, 60:70] |= np.int32(1 << mask.addMaskPlane("DCR_LOW_COVERAGE"))
    model = patchModel(scene, patchWcs, PATCH, psf=GaussianPsf(2.3548 * SIGMA), mask=mask)
    return visitInfo, scene, model


def _visit(visitInfo, rotation=37.0, offset=(3.3, -2.1), box=VISIT, psf=None):
    wcs = visitFrame(visitInfo, rotation, box, offset)
    return visitExposure(visitInfo, wcs, box, psf=psf)


@pytest.mark.parametrize("mode, engine", [("mean", "fourier"), ("split", "spline")])
def test_rotated_visit_matches_gaussians_drawn_in_its_frame(field, mode, engine):
    visitInfo, scene, model = field
    visit = _visit(visitInfo)
    template = model.buildMatchedExposure(exposure=visit, mode=mode, engine=engine,
                                          matchPsf=False)
    assert template.bbox == VISIT and template.wcs is visit.wcs
    noData = template.mask.getBadPixels("NO_DATA")
    assert not noData.any()  # the visit lies inside the patch
    expected = expectedTemplate(scene, visitInfo, visit.wcs, VISIT, mode=mode)
    residual = template.image.array - expected
    peak = expected.max()
    assert np.abs(residual).max() < 1e-2 * peak
    sources = expected > 0.05 * peak
    rms = np.sqrt(np.mean(residual[sources] ** 2))
    assert rms < 5e-3 * np.sqrt(np.mean(expected[sources] ** 2))
    # against the same Gaussians without DCR the template is far off: the test sees the DCR
    unshifted = expectedTemplate(scene, visitInfo, visit.wcs, VISIT, mode=None)
    assert np.abs(template.image.array - unshifted).max() > 20 * np.abs(residual).max()


def test_a_wider_warping_kernel_is_closer_to_the_gaussians_drawn_in_the_visit_frame(field):
    visitInfo, scene, model = field
    visit = _visit(visitInfo)
    expected = expectedTemplate(scene, visitInfo, visit.wcs, VISIT, mode="mean")
    sources = expected > 0.05 * expected.max()
    rms, images = {}, {}
    for kernel in ("lanczos3", "lanczos4", "lanczos5"):
        template = model.buildMatchedExposure(exposure=visit, mode="mean", matchPsf=False,
                                              warpingKernel=kernel)
        images[kernel] = template.image.array
        residual = template.image.array - expected
        rms[kernel] = np.sqrt(np.mean(residual[sources] ** 2))
    # Lanczos 4 and 5 reproduce the well-sampled Gaussians more exactly than Lanczos 3
    # (measured: rms residual 0.060 with Lanczos 5 against 0.183)
    assert rms["lanczos5"] < 0.7 * rms["lanczos3"]
    assert rms["lanczos4"] < rms["lanczos3"]
    default = model.buildMatchedExposure(exposure=visit, mode="mean", matchPsf=False)
    np.testing.assert_array_equal(default.image.array, images["lanczos4"])


def test_an_unknown_warping_kernel_is_refused_before_any_work(field, monkeypatch):
    visitInfo, _, model = field

    def refuse(*args, **kwargs):
        raise AssertionError("a template was made")

    monkeypatch.setattr(visitgrid, "_offGridTemplate", refuse)
    monkeypatch.setattr(visitgrid.templates, "buildMatchedExposure", refuse)
    monkeypatch.setattr(visitgrid.templates, "buildMatchedTemplate", refuse)
    onGrid = dict(visitInfo=visitInfo, bbox=Box(10, 10, 40, 40), wcs=model.wcs)
    for where in ({"exposure": _visit(visitInfo)}, onGrid):
        with pytest.raises(DcrConfigError, match="unknown warping kernel 'cubic'"):
            model.buildMatchedExposure(**where, warpingKernel="cubic")
        with pytest.raises(DcrConfigError, match="unknown warping kernel"):
            model.buildMatchedTemplate(**where, warpingKernel=None)


def test_equals_the_on_grid_template_warped(field):
    visitInfo, _, model = field
    y, x = np.mgrid[-10:11, -10:11]
    visitPsf = ImagePsf(np.exp(-0.5 * ((x / 2.6) ** 2 + (y / 1.7) ** 2)))
    visit = _visit(visitInfo, rotation=20.0, offset=(-4.6, 5.2), psf=visitPsf)
    template = model.buildMatchedExposure(exposure=visit)
    where = templateRegion(model, visit.wcs, VISIT)
    assert where.region == where.footprint  # inside the patch: nothing clipped
    # the visit's PSF sampled on the patch with Lanczos 8, matched there divided by the
    # warp back's mean response
    patchPsf = warpPsf(visitPsf, localJacobian(model.wcs, visit.wcs, where.centre),
                       "lanczos8")
    kernel = visitgrid.TEMPLATE_WARPING_KERNEL
    patchPsf = visitgrid._compensatedPsf(patchPsf, model.wcs, visit.wcs, VISIT, kernel)
    onPatch = model.buildMatchedExposure(visitInfo=visitInfo, bbox=where.region,
                                         wcs=model.wcs, psf=patchPsf)
    warped = warpImage(onPatch.maskedImage, model.wcs, visit.wcs, VISIT, kernel=kernel)
    np.testing.assert_allclose(template.image.array, warped.image.array,
                               atol=1e-6 * warped.image.array.max())
    np.testing.assert_allclose(template.variance.array, warped.variance.array, rtol=1e-6)
    np.testing.assert_array_equal(template.mask.array, warped.mask.array)
    assert template.psf is visitPsf  # the template carries the visit's own PSF
    # the variance is the warp's sum w^2 var of N times the model's
    assert 0.5 * 3 * 0.5 < float(np.median(template.variance.array)) < 0.5 * 3


def test_psf_matched_in_the_visit_frame(field):
    # A point source, a visit near the zenith (no DCR smear) with a PSF elongated along its
    # own x axis, 37 degrees from the patch's: the template's source is elongated along the
    # visit's x, not along the patch's (which would show at -37 degrees).
    visitInfo, _, _ = field
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zenith = makeVisitInfo(airmass=1.001, azimuth=250.0)
    patchWcs = visitFrame(zenith, 0.0, PATCH)
    point = Scene(patchWcs, [(64.0, 64.0)], np.full((3, 1), 300.0))
    model = patchModel(point, patchWcs, PATCH, psf=GaussianPsf(2.3548 * SIGMA))
    y, x = np.mgrid[-12:13, -12:13]
    visitPsf = ImagePsf(np.exp(-0.5 * ((x / 3.0) ** 2 + (y / 1.8) ** 2)))
    wcs = visitFrame(zenith, 37.0, VISIT)
    template = model.buildMatchedExposure(exposure=visitExposure(zenith, wcs, VISIT,
                                                                 psf=visitPsf))
    cx, cy = skyToPixels(patchWcs, wcs, [64.0], [64.0])
    ix, iy = int(round(cx[0])) - VISIT.minX, int(round(cy[0])) - VISIT.minY
    stamp = template.image.array[iy - 12:iy + 13, ix - 12:ix + 13]
    assert abs(orientation(stamp)) < 2.0
    assert abs(orientation(visitPsf.computeKernelImage())) < 1e-6


@pytest.mark.parametrize("order", [3, 4])
def test_no_data_where_the_model_does_not_cover_and_planes_grow(field, order):
    visitInfo, _, model = field
    box = Box(-40, -30, 96, 96)
    visit = _visit(visitInfo, rotation=37.0, offset=(60.0, 50.0), box=box)
    template = model.buildMatchedExposure(exposure=visit, matchPsf=False,
                                          warpingKernel=f"lanczos{order}")
    ys, xs = np.mgrid[box.minY:box.maxY + 1, box.minX:box.maxX + 1]
    px, py = skyToPixels(visit.wcs, model.wcs, xs, ys)
    noData = template.mask.getBadPixels("NO_DATA")
    outside = (px < -0.5) | (px > PATCH.maxX + 0.5) | (py < -0.5) | (py > PATCH.maxY + 0.5)
    inside = ((px >= order - 0.5) & (px <= PATCH.maxX - order - 0.5)
              & (py >= order - 0.5) & (py <= PATCH.maxY - order - 0.5))
    assert outside.sum() > 1000 and inside.sum() > 1000
    assert noData[outside].all() and not noData[inside].any()
    assert (template.image.array[noData] == 0).all()
    assert (template.variance.array[noData] == 0).all()
    assert np.isfinite(template.image.array).all() and np.isfinite(template.variance.array).all()
    # the model's BAD pixel and low-coverage block flag every visit pixel whose Lanczos
    # taps (floor - order + 1 .. floor + order on each axis) reach them
    fx, fy = np.floor(px), np.floor(py)
    below, above = order - 1, order

    def reaches(x0, x1, y0, y1):
        return ((fx - below <= x1) & (fx + above >= x0) & (fy - below <= y1)
                & (fy + above >= y0) & ~noData)

    # (compared where there is data: a pixel without data may carry the bits too)
    bad = template.mask.getBadPixels("BAD") & ~noData
    np.testing.assert_array_equal(bad, reaches(40, 40, 15, 15))
    low = template.mask.getBadPixels("DCR_LOW_COVERAGE") & ~noData
    np.testing.assert_array_equal(low, reaches(60, 69, 5, 14))
    assert bad.sum() > 20 and low.sum() > 100


def test_on_grid_path_is_unchanged(field, monkeypatch):
    visitInfo, scene, original = field

    def fresh():  # a model with an empty cache (the Fourier engine's padding has a history)
        return patchModel(scene, original.wcs, PATCH, psf=original.psf, mask=original.mask)

    box = Box(10, 20, 80, 70)
    visit = visitExposure(visitInfo, original.wcs, box, psf=GaussianPsf(4.2))
    import dcrmodel.model.visitgrid as visitgrid

    def refuse(*args, **kwargs):
        raise AssertionError("a visit on the model's grid must not be warped")

    monkeypatch.setattr(visitgrid, "warpImage", refuse)
    for options in ({}, {"engine": "spline"}, {"matchPsf": False, "mode": "mean"}):
        model, other = fresh(), fresh()
        new = model.buildMatchedExposure(exposure=visit, **options)
        old = onGridExposure(other, TemplateCache(), visit, **options)
        assert new.bbox == old.bbox == box
        for plane in ("image", "variance", "mask"):
            np.testing.assert_array_equal(getattr(new, plane).array, getattr(old, plane).array)
        assert new.mask.planes == old.mask.planes
        assert new.psf is old.psf and new.wcs is old.wcs
    model, other = fresh(), fresh()
    np.testing.assert_array_equal(model.buildMatchedTemplate(visit).array,
                                  onGridTemplate(other, TemplateCache(), visit).array)
    # a box reaching beyond the model on its grid is refused as before
    with pytest.raises(DcrShapeError, match="model"):
        model.buildMatchedExposure(exposure=visitExposure(visitInfo, model.wcs,
                                                          Box(100, 100, 40, 40)))


def test_build_matched_template_off_grid_flags_the_given_mask(field):
    visitInfo, _, model = field
    box = Box(-40, -30, 96, 96)
    visit = _visit(visitInfo, offset=(60.0, 50.0), box=box)
    mask = Mask.fromBox(box.grow(2))
    image = model.buildMatchedTemplate(visit, mask=mask, matchPsf=False)
    exposure = model.buildMatchedExposure(exposure=visit, matchPsf=False)
    np.testing.assert_array_equal(image.array, exposure.image.array)
    noData = mask[box].getBadPixels("NO_DATA")
    np.testing.assert_array_equal(noData, exposure.mask.getBadPixels("NO_DATA"))
    # a given mask replaces the model's in the template exposure; NO_DATA is added
    template = model.buildMatchedExposure(exposure=visit, mask=Mask.fromBox(box),
                                          matchPsf=False)
    assert not template.mask.getBadPixels("BAD").any()
    np.testing.assert_array_equal(template.mask.getBadPixels("NO_DATA"), noData)


def test_off_grid_bad_input(field):
    visitInfo, _, model = field
    far = visitExposure(visitInfo, visitFrame(visitInfo, 10.0, VISIT, (900.0, 0.0)), VISIT)
    with pytest.raises(DcrValueError, match="does not overlap the DCR model"):
        model.buildMatchedExposure(exposure=far)
    visit = _visit(visitInfo)
    with pytest.raises(DcrShapeError, match="does not contain the template's box"):
        model.buildMatchedExposure(exposure=visit, mask=Mask.fromBox(Box(0, 0, 4, 4)))
    with pytest.raises(DcrValueError, match="order"):
        model.buildMatchedExposure(exposure=visit, order=9)


def test_warp_response_of_bilinear_interpolation_is_the_triangle_transform():
    # phases spread evenly over a pixel: the mean response of linear interpolation is the
    # Fourier transform of its triangle kernel, sinc^2(f)
    positions = 10.0 + (np.arange(4000) + 0.5) / 4000
    f = np.array([0.0, 0.1, 0.2, 0.3, 0.45])
    np.testing.assert_allclose(visitgrid.warpResponse("bilinear", positions, f),
                               np.sinc(f) ** 2, atol=1e-6)
    # whole-pixel positions copy the grid: no smoothing at any frequency
    np.testing.assert_allclose(visitgrid.warpResponse("lanczos3", np.arange(-20.0, 30.0), f),
                               1.0, atol=1e-12)


def test_warp_response_tap_by_tap():
    # against the definition written out with the kernel's values, tap by tap
    kernel = getWarpingKernel("lanczos3")
    positions = np.random.default_rng(2).uniform(-30.0, 300.0, 300)
    f = np.array([0.05, 0.2, 0.35, 0.5])
    expected = np.zeros(f.size)
    for x in positions:
        taps = np.floor(x) + np.arange(-2, 4)
        weights = kernel(x - taps)
        weights /= weights.sum()
        expected += (weights[:, None] * np.cos(2 * np.pi * f * (taps - x)[:, None])).sum(0)
    np.testing.assert_allclose(visitgrid.warpResponse("lanczos3", positions, f),
                               expected / positions.size, atol=1e-12)


def test_compensation_brings_the_warped_template_closer_to_the_visit_psf(field):
    # A template matched on the patch and warped back is smoothed by the warp beyond the
    # visit's PSF; matched to the compensated PSF it is closer to the template drawn in
    # the visit's frame with the visit's PSF.
    visitInfo, scene, model = field
    visit = _visit(visitInfo, rotation=33.0, offset=(2.3, -1.4), psf=GaussianPsf(4.2))
    expected = expectedTemplate(scene, visitInfo, visit.wcs, VISIT, mode="mean",
                                sigma=4.2 / 2.3548)
    errors = []
    for compensate in (False, True):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(visitgrid, "COMPENSATE_WARP_RESPONSE", compensate)
            template = model.buildMatchedExposure(exposure=visit, mode="mean")
        errors.append(np.sqrt(np.mean((template.image.array - expected) ** 2)))
    # measured 0.0485 against 0.0523 (the rest: PSF matching and the warp's phase-dependent
    # error, which no mean response removes)
    assert errors[1] < 0.95 * errors[0]


def test_an_image_psf_is_carried_to_the_patch_without_a_second_smoothing(field):
    # A visit PSF given as an image is resampled into the patch frame; a circular Gaussian
    # given as a GaussianPsf is carried exactly (the analytic reference). The template
    # matched to the image PSF is close to the one matched to the Gaussian, and closer than
    # with the PSF image sampled by the warp's Lanczos 3 (which would smooth the target
    # once more, beyond the warp back's compensated smoothing).
    visitInfo, scene, model = field
    fwhm = 4.2
    sigma = fwhm / 2.3548
    y, x = np.mgrid[-15:16, -15:16]
    imagePsf = ImagePsf(np.exp(-0.5 * (x**2 + y**2) / sigma**2))
    exact = model.buildMatchedExposure(
        exposure=_visit(visitInfo, rotation=33.0, psf=GaussianPsf(fwhm)), mode="mean")
    good = ~exact.mask.getBadPixels("NO_DATA")
    scale = np.abs(exact.image.array[good]).max()
    errors = {}
    for kernel in ("lanczos3", visitgrid._TARGET_PSF_KERNEL):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(visitgrid, "_TARGET_PSF_KERNEL", kernel)
            template = model.buildMatchedExposure(
                exposure=_visit(visitInfo, rotation=33.0, psf=imagePsf), mode="mean")
        difference = (template.image.array - exact.image.array)[good]
        errors[kernel] = np.sqrt(np.mean(difference**2)) / scale
    # measured: 4.4e-5 of the peak with Lanczos 8, 1.8e-4 with Lanczos 3
    assert errors[visitgrid._TARGET_PSF_KERNEL] < 0.5 * errors["lanczos3"]
    assert errors[visitgrid._TARGET_PSF_KERNEL] < 1e-4
