"""Difference images of a visit on its own grid, from one DCR model or several.

The science visit is drawn directly in its own frame (rotated by 37 degrees against the
patch): the sky's Gaussians at their DCR-shifted positions, noise, a transient, and two
bright impostors where no template should be trusted (outside every model, and where the
model rests on too few visits). Only the transient may be detected. The visit is drawn with
each subfilter's light at its mean shift, so the templates are made with ``mode="mean"``.
"""

import warnings

import numpy as np
import pytest

from dcrmodel.diffim import makeDifference, templateForExposure
from dcrmodel.errors import DcrValueError
from dcrmodel.image import Box, Filter, GaussianPsf, Image, Mask
from dcrmodel.model import LOW_COVERAGE_PLANE, DcrModel
from helpers import makeVisitInfo, renderGaussians
from helpers.visitgrid import (
    SIGMA,
    Scene,
    expectedTemplate,
    patchModel,
    skyToPixels,
    visitExposure,
    visitFrame,
)

PATCH = Box(0, 0, 144, 112)
VISIT = Box(200, 100, 96, 96)
NOISE = 2.0
PSF = GaussianPsf(2.3548 * SIGMA)


@pytest.fixture(scope="module")
def field():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        visitInfo = makeVisitInfo(airmass=1.7, azimuth=240.0)
    patchWcs = visitFrame(visitInfo, 0.0, PATCH)
    scene = Scene.random(patchWcs, PATCH, 25, seed=11, border=8)
    mask = Mask.fromBox(PATCH)
    # the block of patch pixels (88-103, 69-84) rests on too few visits
    mask.array[69:85, 88:104] |= np.int32(1 << mask.addMaskPlane(LOW_COVERAGE_PLANE))
    model = patchModel(scene, patchWcs, PATCH, psf=PSF, variance=0.01, mask=mask)
    wcs = visitFrame(visitInfo, 37.0, VISIT, offset=(-10.0, -30.0))
    # in the visit's pixels: the transient inside the patch (at patch pixel ~(56, 47)), one
    # impostor beyond the patch, one in the low-coverage block (at patch pixel ~(96, 77))
    spots = {
        "transient": (VISIT.minX + 20.3, VISIT.minY + 20.6),
        "beyond": (VISIT.minX + 75.0, VISIT.minY + 90.0),
        "lowCoverage": (VISIT.minX + 70.0, VISIT.minY + 20.0),
    }
    px, py = skyToPixels(wcs, patchWcs, *np.transpose(list(spots.values())))
    assert 8 < px[0] < PATCH.maxX - 8 and 8 < py[0] < PATCH.maxY - 8
    assert py[1] > PATCH.maxY + 10
    assert 90 < px[2] < 102 and 71 < py[2] < 83

    def science(sigma):
        image = expectedTemplate(scene, visitInfo, wcs, VISIT, mode="mean", sigma=sigma)
        image += renderGaussians(VISIT.shape, [(x, y, 800.0) for x, y in spots.values()],
                                 sigma=sigma, origin=VISIT.begin)
        image += np.random.default_rng(5).normal(0.0, NOISE, VISIT.shape)
        return visitExposure(visitInfo, wcs, VISIT, image=image, psf=GaussianPsf(2.3548 * sigma),
                             variance=NOISE**2)

    return model, science(SIGMA), spots, science(0.75 * SIGMA)


def _near(detections, spot, radius=3.0):
    return [d for d in detections if np.hypot(d.x - spot[0], d.y - spot[1]) < radius]


def test_difference_on_the_visit_grid_detects_only_the_transient(field):
    model, science, spots, _ = field
    result = makeDifference(model, science, mode="mean")
    assert result.matchTo == "template"
    assert result.difference.bbox == science.bbox and result.template.bbox == science.bbox
    assert len(_near(result.detections, spots["transient"])) == 1
    assert len(result.detections) == 1, [d.toDict() for d in result.detections]
    mask = result.difference.mask
    x, y = (int(round(v)) for v in spots["beyond"])
    assert mask.getBadPixels("NO_DATA")[y - VISIT.minY, x - VISIT.minX]
    x, y = (int(round(v)) for v in spots["lowCoverage"])
    assert mask.getBadPixels(LOW_COVERAGE_PLANE)[y - VISIT.minY, x - VISIT.minX]
    # the difference is flat (noise) wherever the template is trusted
    good = ~mask.getBadPixels(["NO_DATA", LOW_COVERAGE_PLANE])
    transient = np.hypot(*np.subtract(np.mgrid[0:96, 0:96][::-1],
                                      np.reshape(np.subtract(spots["transient"], VISIT.begin),
                                                 (2, 1, 1)))) < 8
    residual = result.difference.image.array[good & ~transient]
    assert np.std(residual) < 1.15 * NOISE


def test_difference_from_two_patches(field):
    model, science, spots, _ = field
    left = DcrModel([Image(image.array[:, :90].copy(), bbox=Box(0, 0, 90, 112))
                     for image in model], filterInfo=model.filter, psf=model.psf,
                    wcs=model.wcs, variance=Image(model.variance.array[:, :90].copy(),
                                                  bbox=Box(0, 0, 90, 112)),
                    mask=Mask(model.mask.array[:, :90].copy(), bbox=Box(0, 0, 90, 112),
                              planes=model.mask.planes))
    rightBox = Box(60, 0, 84, 112)
    right = DcrModel([Image(image.array[:, 60:].copy(), bbox=rightBox) for image in model],
                     filterInfo=model.filter, psf=model.psf, wcs=model.wcs,
                     variance=Image(model.variance.array[:, 60:].copy(), bbox=rightBox),
                     mask=Mask(model.mask.array[:, 60:].copy(), bbox=rightBox,
                               planes=model.mask.planes))
    result = makeDifference([left, right], science, mode="mean")
    assert [len(_near(result.detections, spots["transient"]))] == [1] == [
        len(result.detections)]
    science2, template = templateForExposure([left, right], science, mode="mean")
    assert science2 is science
    single = makeDifference(model, science, mode="mean")
    valid = ~template.mask.getBadPixels("NO_DATA")
    np.testing.assert_allclose(template.image.array[valid],
                               single.template.image.array[valid], atol=0.05)


def test_science_mode_on_the_visit_grid(field):
    # a science visit sharper than the model is convolved to the model's PSF (carried onto
    # its grid); "auto" chooses that too
    model, _, spots, science = field
    result = makeDifference(model, science, mode="mean")
    assert result.matchTo == "science"
    assert result.template.psf.fwhm == pytest.approx(PSF.fwhm, rel=0.05)
    assert len(_near(result.detections, spots["transient"])) == 1
    assert len(result.detections) == 1


def test_models_of_different_bands(field):
    model, science, _, _ = field
    other = DcrModel([Image(image.array.copy(), bbox=model.bbox) for image in model],
                     filterInfo=Filter("r", 620.0, 140.0), wcs=model.wcs)
    with pytest.raises(DcrValueError, match="different bands"):
        makeDifference([model, other], science)
