"""One template from the models of several patches (`dcrmodel.model.multipatch`).

Two overlapping patches cut from one sky must give, merged, the template of one model
covering both; patches on different tangent planes (tracts) must give the Gaussians drawn
directly in the visit's frame; models of different bands or subfilter counts are refused
before any work.
"""

import warnings

import numpy as np
import pytest

import dcrmodel.model.multipatch as multipatch
from dcrmodel.errors import DcrMetadataError, DcrTypeError, DcrValueError
from dcrmodel.image import Box, Filter, GaussianPsf, Image, Mask
from dcrmodel.model import DcrModel, buildMatchedExposureFromModels, checkModelsCompatible
from helpers import makeTanWcs, makeVisitInfo
from helpers.visitgrid import (
    BAND,
    SIGMA,
    Scene,
    expectedTemplate,
    patchModel,
    visitExposure,
    visitFrame,
)

BIG = Box(0, 0, 176, 112)
LEFT = Box(0, 0, 104, 112)
RIGHT = Box(72, 0, 104, 112)  # 32 columns shared with LEFT
VISIT = Box(500, 300, 96, 96)
PSF = GaussianPsf(2.3548 * SIGMA)


@pytest.fixture(scope="module")
def sky():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        visitInfo = makeVisitInfo(airmass=1.6, azimuth=120.0)
    wcs = visitFrame(visitInfo, 0.0, BIG)
    scene = Scene.random(wcs, BIG, 30, seed=7, border=6)
    big = patchModel(scene, wcs, BIG)
    return visitInfo, wcs, scene, [image.array for image in big]


def _model(sky, box, mask=None):
    """A model of the sky on part of the big patch (its pixels cut from the big one's)."""
    _, wcs, scene, arrays = sky
    images = [Image(array[box.slices(BIG)].copy(), bbox=box) for array in arrays]
    return DcrModel(images, filterInfo=BAND, psf=PSF, wcs=wcs,
                    variance=Image(np.full(box.shape, 0.5), bbox=box),
                    mask=mask if mask is not None else Mask.fromBox(box))


def _visit(visitInfo, rotation=37.0, offset=(0.0, 0.0), psf=None):
    return visitExposure(visitInfo, visitFrame(visitInfo, rotation, VISIT, offset), VISIT,
                         psf=psf)


def _valid(exposure):
    return ~exposure.mask.getBadPixels("NO_DATA")


@pytest.mark.parametrize("engine", ["fourier", "spline"])
def test_two_patches_merged_equal_one_big_patch(sky, engine):
    visitInfo, wcs, scene, _ = sky
    models = [_model(sky, box) for box in (LEFT, RIGHT)]
    big = _model(sky, BIG)
    visit = _visit(visitInfo, psf=GaussianPsf(4.4))
    merged = buildMatchedExposureFromModels(models, visit, engine=engine)
    single = big.buildMatchedExposure(exposure=visit, engine=engine)
    assert merged.bbox == VISIT and merged.wcs is visit.wcs and merged.psf is visit.psf
    both = _valid(merged) & _valid(single)
    np.testing.assert_array_equal(_valid(merged), _valid(single))
    assert both.sum() > 0.6 * VISIT.area and (~both).sum() > 100  # the visit leaves the patch
    peak = single.image.array.max()
    np.testing.assert_allclose(merged.image.array[both], single.image.array[both],
                               atol=2e-4 * peak)
    np.testing.assert_allclose(merged.variance.array, single.variance.array, rtol=1e-6)
    assert (merged.image.array[~both] == 0).all() and (merged.variance.array[~both] == 0).all()
    # each model gave part of it, and each pixel came from the model where it is farthest
    # from the edge: left of the middle of the overlap from LEFT, right of it from RIGHT
    left = models[0].buildMatchedExposure(exposure=visit, engine=engine)
    right = models[1].buildMatchedExposure(exposure=visit, engine=engine)
    fromLeft = (merged.image.array == left.image.array) & both
    fromRight = (merged.image.array == right.image.array) & both
    assert fromLeft.sum() > 1000 and fromRight.sum() > 1000
    assert (fromLeft | fromRight)[both].all()


def test_patches_of_two_tracts_match_gaussians_drawn_in_the_visit_frame(sky):
    visitInfo, wcs, scene, _ = sky
    left = _model(sky, LEFT)
    # the other tract: its own tangent plane, rotated by 10 degrees, another origin
    otherWcs = makeTanWcs(10.0, 0.2, visitInfo.boresightRaDec, crpix=(-400.0, 1250.0))
    otherBox = Box(-380, 1190, 110, 120)
    right = patchModel(scene, otherWcs, otherBox, psf=PSF)
    visit = _visit(visitInfo, rotation=-60.0, offset=(0.0, 5.0))
    merged = buildMatchedExposureFromModels([left, right], visit, mode="mean", matchPsf=False)
    expected = expectedTemplate(scene, visitInfo, visit.wcs, VISIT, mode="mean")
    valid = _valid(merged)
    assert valid.sum() > 0.6 * VISIT.area
    residual = merged.image.array - expected
    assert np.abs(residual[valid]).max() < 1e-2 * expected.max()
    alone = buildMatchedExposureFromModels([left], visit, mode="mean", matchPsf=False)
    assert (valid & ~_valid(alone)).sum() > 500  # the other tract filled part of the visit
    # the PSF (matchPsf=False): the model's, carried onto the visit's grid
    assert merged.psf.fwhm == pytest.approx(PSF.fwhm, rel=0.05)


def test_low_coverage_pixels_are_taken_from_another_patch(sky):
    visitInfo, wcs, scene, _ = sky
    mask = Mask.fromBox(LEFT)
    plane = mask.addMaskPlane(multipatch.LOW_COVERAGE_PLANE)
    mask.array[:, 64:] |= np.int32(1 << plane)  # LEFT's last 40 columns rest on few visits
    left = _model(sky, LEFT, mask)
    right = _model(sky, RIGHT)
    visit = _visit(visitInfo)
    merged = buildMatchedExposureFromModels([left, right], visit, matchPsf=False)
    fromRight = right.buildMatchedExposure(exposure=visit, matchPsf=False)
    low = merged.mask.getBadPixels(multipatch.LOW_COVERAGE_PLANE)
    # wherever RIGHT covers, it is taken; LEFT's low-coverage pixels remain only beyond it
    covered = _valid(fromRight)
    np.testing.assert_array_equal(merged.image.array[covered], fromRight.image.array[covered])
    assert not low[covered].any() and low.any()


def test_one_model_is_the_model_s_own_template(sky):
    visitInfo, wcs, scene, _ = sky
    models = [_model(sky, BIG) for _ in range(2)]
    visit = _visit(visitInfo, psf=GaussianPsf(4.0))
    merged = buildMatchedExposureFromModels(models[:1], visit)
    own = models[1].buildMatchedExposure(exposure=visit)
    for plane in ("image", "variance", "mask"):
        np.testing.assert_array_equal(getattr(merged, plane).array, getattr(own, plane).array)


def test_visit_on_the_grid_of_two_patches(sky):
    # the patches of one tract share its WCS: a visit on that grid spanning both takes the
    # unchanged on-grid path of each over its part
    visitInfo, wcs, scene, _ = sky
    models = [_model(sky, box) for box in (LEFT, RIGHT)]
    big = _model(sky, BIG)
    box = Box(30, 20, 120, 70)
    visit = visitExposure(visitInfo, wcs, box, psf=GaussianPsf(4.0))
    merged = buildMatchedExposureFromModels(models, visit)
    single = big.buildMatchedExposure(exposure=visit)
    assert merged.bbox == box and not merged.mask.getBadPixels("NO_DATA").any()
    np.testing.assert_allclose(merged.image.array, single.image.array,
                               atol=2e-4 * single.image.array.max())


def test_models_that_do_not_belong_together_are_refused_before_any_work(sky, monkeypatch):
    visitInfo, wcs, scene, _ = sky
    model = _model(sky, LEFT)
    box = Box(0, 0, 8, 8)
    other = DcrModel([Image(np.zeros((8, 8)), bbox=box)] * 3,
                     filterInfo=Filter("r", 620.0, 140.0), wcs=wcs)
    two = DcrModel([Image(np.zeros((8, 8)), bbox=box)] * 2, filterInfo=model.filter, wcs=wcs)

    def noWork(*args, **kwargs):
        raise AssertionError("work started before the models were checked")

    monkeypatch.setattr(multipatch, "overlappingModels", noWork)
    visit = _visit(visitInfo)
    with pytest.raises(DcrValueError, match=r"different bands given together: model 0 is g"):
        buildMatchedExposureFromModels([model, other], visit)
    with pytest.raises(DcrValueError, match="different numbers of subfilters"):
        buildMatchedExposureFromModels([model, two], visit)
    with pytest.raises(DcrMetadataError, match="model 1 has no WCS"):
        buildMatchedExposureFromModels([model, DcrModel([Image(np.zeros((8, 8)))] * 3,
                                                        filterInfo=model.filter)], visit)
    with pytest.raises(DcrTypeError, match="sequence"):
        checkModelsCompatible(model)
    with pytest.raises(DcrValueError, match="no DCR model"):
        checkModelsCompatible([])


def test_a_visit_that_no_model_sees(sky):
    visitInfo, wcs, scene, _ = sky
    models = [_model(sky, box) for box in (LEFT, RIGHT)]
    far = _visit(visitInfo, offset=(0.0, 2000.0))
    with pytest.raises(DcrValueError, match="does not overlap any of the 2 DCR model"):
        buildMatchedExposureFromModels(models, far)
