"""Tests of the PSF-aware DCR model: the direct solver with each visit's PSF, variable seeing.

The fields come from `dcrmodel.simulate.field`, which renders every visit independently of the
model's approximations: the sky integrated over the band at fine wavelength resolution, each
wavelength displaced by its own refraction and blurred by the visit's Kolmogorov PSF at that
wavelength (chromatic seeing, ``alpha = -0.2``). The model has 3 subfilters, Gaussian model
PSFs and per-subfilter PSF factors, so it is checked against a continuous truth.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

import dcrmodel.assemble.task as assemble
from dcrmodel.assemble.config import DcrAssembleConfig
from dcrmodel.assemble.inputs import VisitInput
from dcrmodel.assemble.task import DcrAssembleCoadd
from dcrmodel.diffim.metrics import evaluateTemplates
from dcrmodel.errors import DcrFitsError, DcrPsfWarning, DcrShapeError, DcrValueError
from dcrmodel.fits.exposure import writeExposure
from dcrmodel.image import Exposure, GaussianPsf, ImagePsf, MaskedImage
from dcrmodel.psf.kernels import psfAtWavelength

simulate = pytest.importorskip("dcrmodel.simulate")

#: Half-size of the PSF images kept from the simulator's (which exceed a small field).
PSF_HALF = 31


def _cropPsf(exposure):
    """Crop a simulated visit's PSF image to 63 x 63 (keeping its FWHM and chromaticity)."""
    psf = exposure.psf
    centre = psf.array.shape[0] // 2
    cut = slice(centre - PSF_HALF, centre + PSF_HALF + 1)
    exposure.psf = ImagePsf(psf.array[cut, cut], alpha=psf.alpha,
                            effectiveWavelength=psf.effectiveWavelength, fwhm=psf.fwhm)


def _simulate(config, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        field = simulate.simulateField(config, seed=seed)
    for visit in field.visits:
        _cropPsf(visit.exposure)
    return field


def _variableConfig(**changes):
    settings = dict(size=160, numTraining=14, numTest=4, nights=2, seeing=(0.6, 1.2),
                    chromaticSeeing=-0.2)
    settings.update(changes)
    return simulate.SimulationConfig(**settings)


def _evaluate(field, model, visit):
    """Template residual relative to the coadd's, and false detections of both."""
    template = model.buildMatchedExposure(visit.exposure)
    transients = [t for t in field.manifest["transients"] if t["visit"] == visit.id]
    evaluations = evaluateTemplates(visit.exposure, visit.truthStatic,
                                    {"dcr": template, "coadd": field.coadd},
                                    field.manifest["sources"], transients)
    dcr, coadd = evaluations["dcr"], evaluations["coadd"]
    return {
        "ratio": dcr.residual.relativeResidual / coadd.residual.relativeResidual,
        "false": dcr.difference.numFalse,
        "coaddFalse": coadd.difference.numFalse,
        "recovered": dcr.difference.numRecovered,
        "transients": dcr.difference.numTransients,
        "template": template,
    }


def _run(field, **settings):
    training = [v.exposure for v in field.visits if v.role == "training"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DcrPsfWarning)
        return DcrAssembleCoadd(DcrAssembleConfig(**settings)).run(training, coadd=field.coadd)


@pytest.fixture(scope="module")
def variableField():
    return _simulate(_variableConfig(), seed=3)


@pytest.fixture(scope="module")
def variableRuns(variableField):
    aware = _run(variableField)
    unaware = _run(variableField, usePsf=False)
    tests = [v for v in variableField.visits if v.role == "test"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DcrPsfWarning)
        rows = [
            (visit, _evaluate(variableField, aware.dcrModel, visit),
             _evaluate(variableField, unaware.dcrModel, visit))
            for visit in tests
        ]
    return aware, unaware, rows


def test_psf_aware_direct_solver_beats_the_psf_unaware_one(variableRuns):
    aware, unaware, rows = variableRuns
    assert aware.summary["psf"]["psfAware"] is True
    assert unaware.summary["psf"]["psfAware"] is False
    # seeing 0.6-1.2 arcsec: a range of about 80 %
    assert aware.summary["psf"]["seeingRange"] > 0.6
    for visit, psfAware, psfUnaware in rows:
        # Measured (seed 3, airmass 1.5-2.0): PSF-aware 0.013-0.043 of the plain coadd's
        # residual, PSF-unaware 0.10-0.23; the ratio between them 0.12-0.22.
        assert psfAware["ratio"] < 0.1, (visit.id, psfAware["ratio"])
        assert psfAware["ratio"] < 0.4 * psfUnaware["ratio"], (visit.id, psfAware, psfUnaware)
        assert psfAware["recovered"] == psfAware["transients"]
        # measured 0-3 false detections, against 4-24 (PSF-unaware) and 20-30 (coadd)
        assert psfAware["false"] <= psfUnaware["false"]
        assert psfAware["false"] * 4 < psfAware["coaddFalse"]
    totalAware = sum(r[1]["false"] for r in rows)
    totalUnaware = sum(r[2]["false"] for r in rows)
    assert 3 * totalAware < totalUnaware, (totalAware, totalUnaware)


def test_model_and_templates_carry_their_psfs(variableRuns, variableField):
    aware, _, rows = variableRuns
    model = aware.dcrModel
    fwhms = [v.exposure.psf.fwhm for v in variableField.visits if v.role == "training"]
    # the model PSF is the sharpest the inputs support: the sharpest input's at its
    # reddest subfilter (alpha = -0.2 makes red the sharpest), so below every input's FWHM
    assert isinstance(model.psf, ImagePsf) and model.psf.alpha == 0.0
    assert model.psf.fwhm <= min(fwhms)
    assert model.psf.fwhm > 0.9 * min(fwhms)
    sharpest = min((v.exposure for v in variableField.visits if v.role == "training"),
                   key=lambda e: e.psf.fwhm)
    # the centre of the reddest subfilter
    reddest = model.filter.lambdaMax - model.filter.bandwidth / (2 * model.dcrNumSubfilters)
    np.testing.assert_allclose(model.psf.array, psfAtWavelength(sharpest.psf, reddest),
                               atol=1e-12)
    assert aware.coadd.psf is model.psf
    for visit, psfAware, _ in rows:
        assert psfAware["template"].psf is visit.exposure.psf
    # the template at the model's PSF (no matching) is another image
    visit = rows[0][0]
    unmatched = model.buildMatchedTemplate(visit.exposure, matchPsf=False).array
    matched = rows[0][1]["template"].image.array
    assert np.abs(unmatched - matched).max() > 0.05 * matched.max()


@pytest.fixture(scope="module")
def sharperField(variableField):
    """The same nights, the training visits in 0.75-1.2 arcsec, the test visits at 0.5."""
    specs = []
    for record in variableField.manifest["visits"]:
        time = Time(record["mjd"], format="mjd", scale="utc")
        if record["role"] == "training":
            seeing = 0.75 + 0.45 * (len(specs) % 5) / 4
            specs.append(simulate.VisitSpec(time, "training", seeing=seeing))
        else:
            specs.append(simulate.VisitSpec(time, "test", seeing=0.5))
    return _simulate(_variableConfig(visits=tuple(specs)), seed=5)


def test_visit_sharper_than_every_training_visit(sharperField):
    field = sharperField
    result = _run(field)
    model = result.dcrModel
    training = [v.exposure.psf.fwhm for v in field.visits if v.role == "training"]
    tests = [v for v in field.visits if v.role == "test"]
    with pytest.warns(DcrPsfWarning, match="sharper than the DCR model's PSF"):
        rows = [_evaluate(field, model, visit) for visit in tests]
    for visit, row in zip(tests, rows, strict=True):
        assert visit.exposure.psf.fwhm < 0.8 * min(training)
        template = row["template"]
        damped = (template.mask.array & template.mask.getPlaneBitMask("PSF_DAMPED")) != 0
        # the damped pixels are those around the sources, not the whole image
        assert 0 < damped.mean() < 0.8
        brightest = max(field.manifest["sources"], key=lambda s: s["flux"])
        x, y = (int(round(brightest[k])) - o for k, o in zip("xy", template.bbox.begin,
                                                               strict=True))
        assert damped[y, x]
        # how it fares: much worse than visits within the training seeing (the template
        # cannot be as sharp as the visit), still better than the plain coadd against the
        # truth (measured 0.26 of its residual with the default gain limit of 2; 34-45 false
        # detections against the coadd's 40-43; 40 % of the pixels flagged)
        assert row["ratio"] < 0.5


# ------------------------------------------------------------------------------------------
# Bad input: clear errors before any work
# ------------------------------------------------------------------------------------------
@pytest.fixture()
def noWork(monkeypatch):
    """Fail the test if the statistics pass starts: errors must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(assemble.DcrAssembleCoadd, "_statisticsPass", refuse)


@pytest.fixture(scope="module")
def smallField():
    config = simulate.SimulationConfig(size=64, numTraining=4, numTest=1, nights=1,
                                       psfProfile="gaussian", seeing=(0.7, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate.simulateField(config, seed=1)


def _training(field, **changes):
    out = []
    for visit in field.visits:
        if visit.role != "training":
            continue
        e = visit.exposure
        attributes = dict(wcs=e.wcs, psf=e.psf, visitInfo=e.visitInfo, filter=e.filter)
        attributes.update(changes)
        out.append(Exposure(e.maskedImage.clone(), **attributes))
    return out


def test_psf_larger_than_the_exposure(smallField, noWork):
    exposures = _training(smallField)
    exposures[1].psf = ImagePsf(np.pad(exposures[1].psf.array, 40))
    with pytest.raises(DcrShapeError, match=r"exposure 1 .*larger than the exposure \(64, 64\)"):
        DcrAssembleCoadd().run(exposures)


def test_chromatic_psf_image_that_fits_the_exposure_is_accepted(smallField):
    # A chromatic PSF image as large as the exposure allows: its rescaled copy at the
    # bluest subfilter is larger (alpha < 0), which needs only grid padding, not a refusal.
    exposures = _training(smallField)
    side = min(exposures[0].bbox.shape) - 1
    for e in exposures:
        kernel = GaussianPsf(e.psf.fwhm, kernelSize=side).computeKernelImage()
        e.psf = ImagePsf(kernel, alpha=-0.2, effectiveWavelength=482.685)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = DcrAssembleCoadd().run(exposures).dcrModel
    assert all(np.isfinite(image.array).all() for image in model)


def test_psf_alpha_out_of_range(smallField, noWork):
    exposures = _training(smallField)
    exposures[2].psf = GaussianPsf(4.0, alpha=1.5, effectiveWavelength=480.0)
    with pytest.raises(DcrValueError, match=r"exposure 2 .*must be in \[-1, 1\]"):
        DcrAssembleCoadd().run(exposures)


def test_missing_psf_that_cannot_be_estimated(smallField, noWork):
    exposures = _training(smallField)
    blank = exposures[0]
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, blank.bbox.shape)
    exposures[0] = Exposure(
        MaskedImage.fromArrays(noise, variance=np.ones(blank.bbox.shape)),
        wcs=blank.wcs, visitInfo=blank.visitInfo, filter=blank.filter,
    )
    with pytest.raises(DcrValueError, match="exposure 0 .* has no PSF and none can be "
                                            "estimated .*give the exposure a PSF"):
        DcrAssembleCoadd().run(exposures)
    # the PSF-unaware solvers do not need it
    with pytest.raises(AssertionError, match="work started"):
        DcrAssembleCoadd(DcrAssembleConfig(usePsf=False)).run(exposures)


def test_missing_psf_is_estimated_and_recorded():
    config = simulate.SimulationConfig(size=224, numTraining=4, numTest=1, nights=1,
                                       seeing=(0.6, 1.0), chromaticSeeing=-0.2,
                                       galaxyDensity=2.0, defectFraction=0.0)
    field = _simulate(config, seed=4)
    exposures = [v.exposure for v in field.visits if v.role == "training"]
    original = exposures[3]
    exposures[3] = Exposure(original.maskedImage, wcs=original.wcs,
                            visitInfo=original.visitInfo, filter=original.filter)
    with pytest.warns(DcrPsfWarning, match="exposure 3 .* has no PSF: using one estimated"):
        task = DcrAssembleCoadd()
        inputs = [VisitInput(e, i) for i, e in enumerate(exposures)]
        band = original.filter
        aware, modelPsf, summary = task._preparePsfs(inputs, band, original.bbox)
    estimate = summary["estimated"][f"exposure 3 (visit {original.visitInfo.id})"]
    assert estimate["nStars"] >= 3
    # the cross-zenith width of Kolmogorov stars: within 10 % of the true FWHM
    assert estimate["fwhm"] == pytest.approx(original.psf.fwhm, rel=0.1)
    assert aware and modelPsf is not None


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: np.pad(a, ((0, 1), (0, 1))), "square with odd sides"),
        (lambda a: np.roll(a, 3, axis=1), "off-centre"),
        (lambda a: -a, "positive sum"),
        (lambda a: np.where(a == a.max(), np.nan, a), "NaN or infinite"),
    ],
)
def test_bad_psf_hdu_in_a_file(smallField, tmp_path, noWork, change, match):
    exposures = _training(smallField)
    paths = []
    for i, exposure in enumerate(exposures):
        path = tmp_path / f"visit{i}.fits"
        writeExposure(exposure, path)
        paths.append(path)
    with fits.open(paths[1], mode="update") as hdus:
        hdus["PSF"].data = change(np.array(hdus["PSF"].data))
    with pytest.raises(DcrFitsError, match=f"visit1.fits, HDU PSF.*{match}"):
        DcrAssembleCoadd().run(paths)


def test_psf_alpha_out_of_range_in_a_file(smallField, tmp_path, noWork):
    exposures = _training(smallField)
    paths = []
    for i, exposure in enumerate(exposures):
        path = tmp_path / f"visit{i}.fits"
        writeExposure(exposure, path)
        paths.append(path)
    with fits.open(paths[2], mode="update") as hdus:
        hdus["PSF"].header["PSF-ALPH"] = -1.5
    with pytest.raises(DcrValueError, match=r"visit2.fits: .*PSF-ALPH.*must be in \[-1, 1\]"):
        DcrAssembleCoadd().run(paths)


def test_iterative_solver_warns_about_variable_seeing(variableField, noWork):
    training = [v.exposure for v in variableField.visits if v.role == "training"]
    with (pytest.warns(DcrPsfWarning, match=r"seeing ranges over \d+ %.*iterative solver"),
          pytest.raises(AssertionError, match="work started")):
        DcrAssembleCoadd(DcrAssembleConfig(solver="iterative")).run(training)
    with (pytest.warns(DcrPsfWarning, match="direct solver with usePsf=False"),
          pytest.raises(AssertionError, match="work started")):
        DcrAssembleCoadd(DcrAssembleConfig(usePsf=False)).run(training)
    # constant seeing: no warning
    same = [Exposure(e.maskedImage, wcs=e.wcs, visitInfo=e.visitInfo, filter=e.filter,
                     psf=GaussianPsf(4.0)) for e in training]
    with (warnings.catch_warnings(), pytest.raises(AssertionError, match="work started")):
        warnings.simplefilter("error", DcrPsfWarning)
        DcrAssembleCoadd(DcrAssembleConfig(solver="iterative")).run(same)


# ------------------------------------------------------------------------------------------
# The direct solver's per-frequency ridge (the prior of a PSF-aware model)
# ------------------------------------------------------------------------------------------
def _noiseStack(numVisits=4, shape=(24, 20), seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(0.0, 1.0, (numVisits, *shape))
    variances = np.ones_like(images)
    bad = np.zeros(images.shape, dtype=bool)
    shifts = [[((0.1 * j, 0.2), (-0.1 * j, -0.2))] * 3 for j in range(numVisits)]
    return images, variances, bad, shifts


def test_frequency_ridge_pulls_the_model_to_zero_where_it_is_large():
    from dcrmodel.assemble.direct import solveDirectFromShifts
    from dcrmodel.fourier.transfer import frequencyGrid

    images, variances, bad, shifts = _noiseStack()
    plain = solveDirectFromShifts(images, variances, bad, shifts, diagnostics=False)
    zero = solveDirectFromShifts(images, variances, bad, shifts, diagnostics=False,
                                 frequencyRidge=lambda padded: np.zeros(
                                     (padded[0], padded[1] // 2 + 1)))
    np.testing.assert_array_equal(plain.modelArrays, zero.modelArrays)

    def highPass(padded):
        fy, fx = frequencyGrid(padded)
        return np.where(np.hypot(fy, fx) > 0.25, 1e8, 0.0)

    lowPassed = solveDirectFromShifts(images, variances, bad, shifts, diagnostics=False,
                                      frequencyRidge=highPass)
    # the model keeps (almost) no power above 0.25 cycles per pixel; white noise had half
    # of its power there
    for model in (plain.modelArrays, lowPassed.modelArrays):
        assert np.all(np.isfinite(model))
    power = np.abs(np.fft.rfft2(lowPassed.modelArrays.sum(axis=0))) ** 2
    fy = np.fft.fftfreq(images.shape[1])[:, None]
    fx = np.fft.rfftfreq(images.shape[2])[None, :]
    high = np.hypot(fy, fx) > 0.35
    plainPower = np.abs(np.fft.rfft2(plain.modelArrays.sum(axis=0))) ** 2
    assert power[high].sum() < 0.05 * plainPower[high].sum()
    with pytest.raises(DcrValueError, match="frequencyRidge must give finite values >= 0"):
        solveDirectFromShifts(images, variances, bad, shifts,
                              frequencyRidge=lambda padded: np.ones((3, 3)))
