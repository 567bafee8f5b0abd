"""Tests of dcrmodel.diffim.metrics: matched-filter detection, template residuals, difference
imaging.

Analytic cases: the matched filter's noise is unit variance and its peak significance for
a point source is ``F sqrt(sum K^2) / sigma``; a template scaled by 1.1 has a relative
residual of exactly 0.1; false alarms of pure noise at 5 sigma are rare.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from dcrmodel.diffim.metrics import (
    TemplateEvaluation,
    describeImprovement,
    detectSources,
    differenceImageMetrics,
    evaluateVisit,
    footprintMask,
    improvement,
    significanceImage,
    sourceFootprints,
    subtractTemplate,
    templateResidual,
)
from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.image import Box, Exposure, GaussianPsf, Image

FWHM = 3.0
KERNEL = GaussianPsf(FWHM).computeKernelImage()


def _stamp(shape, sources):
    """Sum of Gaussian point sources (x, y, flux) sampled at pixel centres."""
    sigma = FWHM / (2 * math.sqrt(2 * math.log(2)))
    yy, xx = np.indices(shape, dtype=float)
    image = np.zeros(shape)
    for x, y, flux in sources:
        image += flux * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) / (
            2 * math.pi * sigma**2
        )
    return image


def _exposure(image, variance, origin=(0, 0), psf=True):
    return Exposure.fromArrays(
        image, variance=variance, origin=origin, psf=GaussianPsf(FWHM) if psf else None
    )


# --------------------------------------------------------------------------------------
# Matched filter and detection
# --------------------------------------------------------------------------------------


def test_matched_filter_of_noise_has_unit_variance():
    rng = np.random.default_rng(1)
    variance = np.full((256, 256), 25.0)
    snr = significanceImage(rng.normal(0, 5.0, variance.shape), variance, KERNEL)
    assert snr[20:-20, 20:-20].std() == pytest.approx(1.0, abs=0.03)
    detections, _ = detectSources(rng.normal(0, 5.0, variance.shape), variance, KERNEL, 5.0)
    assert len(detections) <= 1  # p(|z| > 5) = 6e-7 per independent beam


def test_point_source_significance_is_analytic():
    flux, sigma = 2000.0, 10.0
    image = _stamp((64, 64), [(32.0, 32.0, flux)])
    snr = significanceImage(image, np.full(image.shape, sigma**2), KERNEL)
    k = KERNEL / KERNEL.sum()
    expected = flux * np.sum(_stamp(k.shape, [(k.shape[1] // 2, k.shape[0] // 2, 1.0)]) * k) / (
        sigma * math.sqrt(np.sum(k * k))
    )
    assert snr[32, 32] == pytest.approx(expected, rel=1e-6)
    assert snr.max() == snr[32, 32]


def test_detections_positions_kinds_dipoles_and_origin():
    image = _stamp((80, 100), [(20.0, 30.0, 3000.0), (70.0, 50.0, 3000.0)])
    image -= _stamp((80, 100), [(72.5, 50.0, 3000.0)])  # dipole with the second source
    image -= _stamp((80, 100), [(40.0, 65.0, 2000.0)])  # lone negative
    detections, footprints = detectSources(
        image, np.full(image.shape, 25.0), KERNEL, origin=(1000, 2000)
    )
    kinds = sorted(d.kind for d in detections)
    assert kinds == ["dipole", "negative", "positive"]
    positive = next(d for d in detections if d.kind == "positive")
    assert (positive.x, positive.y) == (1020.0, 2030.0)
    negative = next(d for d in detections if d.kind == "negative")
    assert negative.significance < 0 and (negative.x, negative.y) == (1040.0, 2065.0)
    assert footprints[30, 20] and not footprints[5, 5]
    onlyPositive, _ = detectSources(image, np.full(image.shape, 25.0), KERNEL,
                                    polarity="positive", mergeRadius=0)
    assert {d.kind for d in onlyPositive} == {"positive"} and len(onlyPositive) == 2


def test_bad_pixels_are_left_out():
    image = np.zeros((64, 64))
    image[30, 30] = 1e6
    bad = np.zeros(image.shape, dtype=bool)
    bad[30, 30] = True
    variance = np.full(image.shape, 1.0)
    assert len(detectSources(image, variance, KERNEL)[0]) == 1
    assert detectSources(image, variance, KERNEL, badPixels=bad)[0] == []


def test_footprint_mask_grows_by_a_disc():
    seed = np.zeros((21, 21), dtype=bool)
    seed[10, 10] = True
    grown = footprintMask(seed, 3)
    assert grown.sum() == sum(1 for y in range(-3, 4) for x in range(-3, 4) if x * x + y * y <= 9)
    assert footprintMask(seed, 0).sum() == 1


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: detectSources(np.zeros((9, 9)), np.ones((9, 9)), np.ones((4, 4))),
         DcrValueError, "odd sides"),
        (lambda: detectSources(np.zeros((9, 9)), np.ones((9, 9)), KERNEL, threshold=0),
         DcrValueError, "positive number of sigma"),
        (lambda: detectSources(np.zeros((9, 9)), np.ones((9, 9)), KERNEL, polarity="up"),
         DcrValueError, "polarity"),
        (lambda: significanceImage(np.zeros((9, 9)), np.ones((8, 9)), KERNEL),
         DcrShapeError, "differ in shape"),
    ],
)
def test_detection_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------------------
# Template against truth
# --------------------------------------------------------------------------------------

CATALOGUE = [
    {"x": 20.0, "y": 20.0, "colourClass": "blueStar"},
    {"x": 44.0, "y": 20.0, "colourClass": "redStar"},
    {"x": 30.0, "y": 45.0, "colourClass": "galaxy", "halfLightRadius": 2.0},
]


def _truth():
    image = _stamp((64, 64), [(c["x"], c["y"], 5000.0) for c in CATALOGUE])
    return _exposure(image, np.full(image.shape, 100.0))


def test_source_footprints_assign_pixels_to_the_nearest_source():
    labels, entries = sourceFootprints(
        [{"x": 10.0, "y": 10.0}, {"x": 16.0, "y": 10.0}], Box(0, 0, 30, 20), 2.0
    )
    assert labels[10, 10] == 0 and labels[10, 16] == 1
    assert labels[10, 12] == 0 and labels[10, 14] == 1
    assert labels[0, 29] == -1
    assert len(entries) == 2


def test_template_residual_analytic_cases():
    truth = _truth()
    perfect = templateResidual(truth.image, truth, CATALOGUE)
    assert perfect.relativeResidual == 0.0 and perfect.worstSigma == 0.0
    scaled = templateResidual(truth.image.array * 1.1, truth, CATALOGUE)
    assert scaled.relativeResidual == pytest.approx(0.1, rel=1e-12)
    assert all(v == pytest.approx(0.1) for v in scaled.byClass.values())
    # Change only the red star: only its class shows residual.
    template = truth.image.array.copy()
    template += _stamp(template.shape, [(44.0, 20.0, 500.0)])
    split = templateResidual(template, truth, CATALOGUE)
    assert split.byClass["blueStar"] < 1e-3 and split.byClass["galaxy"] < 1e-3
    assert split.byClass["redStar"] == pytest.approx(0.1, rel=0.02)
    assert split.numPixelsByClass["galaxy"] > split.numPixelsByClass["redStar"]
    # Worst residual in noise sigmas: one pixel 50 counts off, sigma 10.
    spike = truth.image.array.copy()
    spike[60, 3] += 50.0
    assert templateResidual(spike, truth, CATALOGUE).worstSigma == pytest.approx(5.0)
    assert templateResidual(spike, truth, CATALOGUE, border=5).worstSigma < 1e-9


def test_template_residual_on_a_sub_box_and_with_masked_template_pixels():
    truth = _truth()
    box = Box(10, 10, 40, 30)
    template = Image(truth.image.array[10:40, 10:50] * 1.2, bbox=box)
    result = templateResidual(template, truth, CATALOGUE)
    assert result.relativeResidual == pytest.approx(0.2)
    masked = truth.clone()
    masked.image.array[18:23, 18:23] = np.nan
    masked.mask.array[18:23, 18:23] |= masked.mask.getPlaneBitMask("NO_DATA")
    assert math.isfinite(templateResidual(masked, truth, CATALOGUE).relativeResidual)


def test_template_residual_bad_input():
    truth = _truth()
    with pytest.raises(DcrTypeError, match="'x' and 'y'"):
        templateResidual(truth.image, truth, [{"colourClass": "galaxy"}])
    with pytest.raises(DcrShapeError, match="do not overlap"):
        templateResidual(Image(np.zeros((5, 5)), bbox=Box(500, 500, 5, 5)), truth, CATALOGUE)
    with pytest.raises(DcrValueError, match="give fwhm"):
        templateResidual(truth.image, truth.image, CATALOGUE)
    with pytest.raises(DcrValueError, match="no variance"):
        templateResidual(truth.image, truth.image, CATALOGUE, fwhm=3.0)
    with pytest.raises(DcrValueError, match="no unmasked footprint"):
        templateResidual(truth.image, truth, [{"x": 900.0, "y": 900.0}])
    with pytest.raises(DcrTypeError, match="Exposure, MaskedImage, Image or numpy"):
        templateResidual([1, 2], truth, CATALOGUE)


# --------------------------------------------------------------------------------------
# Difference imaging
# --------------------------------------------------------------------------------------


def _scene(seed=3):
    rng = np.random.default_rng(seed)
    truth = _stamp((96, 96), [(20.0, 20.0, 2e4), (60.0, 30.0, 3e4), (40.0, 70.0, 1e4)])
    transients = [{"x": 75.0, "y": 75.0}, {"x": 20.0, "y": 60.0}]
    full = truth + _stamp(truth.shape, [(t["x"], t["y"], 3000.0) for t in transients])
    variance = 100.0 + full
    science = _exposure(full + rng.normal(size=full.shape) * np.sqrt(variance), variance)
    return science, truth, transients


def test_difference_with_a_perfect_template_finds_only_the_transients():
    science, truth, transients = _scene()
    result = differenceImageMetrics(science, truth, transients)
    assert result.numRecovered == 2 and result.recoveredFraction == 1.0
    assert result.numFalse == 0 and result.numDetections == 2


def test_difference_with_a_shifted_template_makes_dipoles():
    science, truth, transients = _scene()
    shifted = np.roll(truth, 2, axis=1)  # a 2-pixel misregistration, like DCR
    result = differenceImageMetrics(science, shifted, transients)
    assert result.numRecovered == 2
    assert result.numFalse == 3
    assert {d.kind for d in result.falseDetections} == {"dipole"}
    # A template missing nothing but holding a source the science lacks: a negative
    # detection at a transient position does not recover it.
    negativeOnly = differenceImageMetrics(science, truth + _stamp(truth.shape, [
        (75.0, 75.0, 9000.0)]), transients[:1])
    assert negativeOnly.numRecovered == 0 and negativeOnly.numFalse == 2


def test_subtract_template_adds_variances_and_marks_template_holes():
    science, truth, _ = _scene()
    template = _exposure(truth, np.full(truth.shape, 4.0))
    template.mask.array[5, 5] = template.mask.getPlaneBitMask("BAD")
    difference = subtractTemplate(science, template)
    np.testing.assert_allclose(difference.variance.array, science.variance.array + 4.0)
    assert difference.mask.array[5, 5] & difference.mask.getPlaneBitMask("NO_DATA")
    assert difference.image.array[5, 5] == 0.0
    assert difference.psf is science.psf
    small = subtractTemplate(science, Image(truth[10:30, 10:40], bbox=Box(10, 10, 30, 20)))
    assert small.bbox == Box(10, 10, 30, 20)
    with pytest.raises(DcrTypeError, match="science must be of type Exposure"):
        subtractTemplate(science.image, truth)
    with pytest.raises(DcrValueError, match="give fwhm"):
        differenceImageMetrics(_exposure(truth, np.ones(truth.shape), psf=False), truth)


def test_transient_on_a_masked_pixel_and_the_border():
    science, truth, transients = _scene()
    science.mask.array[70:81, 70:81] |= science.mask.getPlaneBitMask("CR")
    result = differenceImageMetrics(science, truth, transients)
    assert result.numRecovered == 1 and result.numFalse == 0
    edge = differenceImageMetrics(science, truth, transients, border=40)
    assert edge.numDetections == 0


def test_improvement_ratios_and_sentence():
    science, truth, transients = _scene()
    good = TemplateEvaluation(
        templateResidual(truth * 1.01, _exposure(truth, science.variance.array), [
            {"x": 20.0, "y": 20.0}]),
        differenceImageMetrics(science, truth, transients),
    )
    bad = TemplateEvaluation(
        templateResidual(truth * 1.2, _exposure(truth, science.variance.array), [
            {"x": 20.0, "y": 20.0}]),
        differenceImageMetrics(science, np.roll(truth, 2, axis=1), transients),
    )
    ratios = improvement(good, bad)
    assert ratios["residualRatio"] == pytest.approx(20.0)
    assert ratios["falseDetectionRatio"] == math.inf
    assert math.isnan(improvement(good, good)["falseDetectionRatio"])
    assert improvement(bad, bad)["falseDetectionRatio"] == 1.0
    text = describeImprovement(good, bad)
    assert "20.0 times less residual" in text
    assert "no false detections where the plain coadd has 3" in text
    assert "2/2 transients recovered" in text
    assert "more false detections" in describeImprovement(bad, good)


# --------------------------------------------------------------------------------------
# On a simulated field
# --------------------------------------------------------------------------------------


def test_evaluate_visit_on_a_simulation_ranks_the_truth_above_the_coadd(tmp_path):
    from dcrmodel.fits.exposure import readExposure
    from dcrmodel.simulate import SimulationConfig, runSimulation

    config = SimulationConfig(size=96, numTraining=4, numTest=1, nights=1, numStars=12,
                              numGalaxies=4, defectFraction=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = runSimulation(tmp_path / "sim", config, seed=4)
    visit = manifest.visits("test")[0]
    truth = readExposure(manifest.path(visit["truthStatic"]))
    results = evaluateVisit(manifest, visit["id"], {"truth": truth})
    assert set(results) == {"truth", "coadd"}
    assert results["truth"].residual.relativeResidual == 0.0
    assert results["truth"].difference.numFalse == 0
    assert results["truth"].difference.recoveredFraction == 1.0
    coadd = results["coadd"]
    # At airmass >= 1.5 the plain coadd leaves DCR residuals of several percent and dipoles.
    assert coadd.residual.relativeResidual > 0.05
    assert coadd.difference.numFalse >= 3
    assert coadd.residual.worstSigma > 5.0
    assert set(coadd.residual.byClass) == {"blueStar", "redStar", "galaxy"}
    with pytest.raises(DcrValueError, match="already named 'coadd'"):
        evaluateVisit(manifest, visit["id"], {"coadd": truth})
