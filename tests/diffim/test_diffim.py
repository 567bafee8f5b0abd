import numpy as np
import pytest

from dcrmodel.assemble.config import DcrAssembleConfig
from dcrmodel.assemble.task import DcrAssembleCoadd
from dcrmodel.diffim.difference import makeDifference
from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.fits.exposure import readExposure
from dcrmodel.image import Box
from dcrmodel.simulate import SimulationConfig, runSimulation


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    manifest = runSimulation(out / "sim", config=SimulationConfig(size=128, numTraining=8,
                                                                  numTest=1), seed=3)
    training = [manifest.path(v["file"]) for v in manifest.visits() if v["role"] == "training"]
    model = DcrAssembleCoadd(DcrAssembleConfig(solver="direct")).run(
        training, coadd=manifest.coaddPath).dcrModel
    test = [v for v in manifest.visits() if v["role"] == "test"][0]
    return manifest, model, test


def test_difference_finds_the_transients(field):
    manifest, model, visit = field
    science = readExposure(manifest.path(visit["file"]))
    result = makeDifference(model, science)
    assert result.difference.bbox == science.bbox
    residual = science.image.array - result.template.image.array
    np.testing.assert_allclose(result.difference.image.array, residual, atol=1e-3)
    transients = manifest.transients(visit["id"])
    assert transients
    for transient in transients:
        distance = [np.hypot(d.x - transient["x"], d.y - transient["y"])
                    for d in result.detections]
        assert min(distance) < 3.0
    detected = result.difference.mask.getPlaneBitMask("DETECTED")
    x, y = int(round(transients[0]["x"])), int(round(transients[0]["y"]))
    assert result.difference.mask.array[y, x] & detected
    assert result.toDict()["numDetections"] == len(result.detections)


def test_difference_bad_input(field):
    manifest, model, visit = field
    science = readExposure(manifest.path(visit["file"]))
    with pytest.raises(DcrTypeError, match="Exposure"):
        makeDifference(model, science.image.array)
    with pytest.raises(DcrValueError, match="threshold"):
        makeDifference(model, science, threshold=-1)
    far = readExposure(manifest.path(visit["file"]), bbox=Box(0, 0, 16, 16))
    away = model[0].bbox.shiftedBy(1000, 1000)
    with pytest.raises(DcrShapeError, match="does not overlap"):
        makeDifference(model, _moved(far, away))


def _moved(exposure, box):
    from dcrmodel.image import Exposure, Image, Mask, MaskedImage

    shape = exposure.image.array.shape
    sub = Box(box.minX, box.minY, shape[1], shape[0])
    masked = MaskedImage(Image(exposure.image.array.copy(), bbox=sub),
                         Mask(exposure.mask.array.copy(), bbox=sub),
                         Image(exposure.variance.array.copy(), bbox=sub))
    return Exposure(masked, wcs=exposure.wcs, psf=exposure.psf, visitInfo=exposure.visitInfo,
                    filter=exposure.filter)


# ---------------------------------------------------------------------------------------------
# matchTo: convolve the science exposure when it is sharper than the model
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sharpField():
    """Training visits at 0.75-1.2", two held-out visits at 0.5" and one at 1.0".

    The field is 176 pixels wide: the simulator's PSF images (165 pixels for this seeing)
    must fit the exposures at every subfilter wavelength.
    """
    import dataclasses
    import warnings

    from astropy.time import Time

    from dcrmodel.errors import DcrPsfWarning
    from dcrmodel.simulate import VisitSpec, simulateField

    base = SimulationConfig(size=176, numTraining=12, numTest=2, nights=2,
                            seeing=(0.6, 1.2), chromaticSeeing=-0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = simulateField(base, seed=3)
        specs, training = [], 0
        for record in plan.manifest["visits"]:
            when = Time(record["mjd"], format="mjd", scale="utc")
            if record["role"] == "training":
                specs.append(VisitSpec(when, "training", seeing=0.75 + 0.45 * (training % 5) / 4))
                training += 1
            else:
                specs.append(VisitSpec(when, "test", seeing=0.5))
        specs.append(VisitSpec(when, "test", seeing=1.0))
        field = simulateField(dataclasses.replace(base, visits=tuple(specs)), seed=3)
        warnings.simplefilter("ignore", DcrPsfWarning)
        model = DcrAssembleCoadd(DcrAssembleConfig()).run(
            [v.exposure for v in field.visits if v.role == "training"],
            coadd=field.coadd).dcrModel
    tests = [v for v in field.visits if v.role == "test"]
    sharp = [v for v in tests if v.record["seeing"] == pytest.approx(0.5)]
    ordinary = [v for v in tests if v.record["seeing"] == pytest.approx(1.0)]
    assert len(sharp) == 2 and len(ordinary) == 1
    return field, model, sharp, ordinary[0]


def _falseAndRecovered(result, transients, radius=3.0):
    recovered = set()
    false = 0
    for d in result.detections:
        near = [i for i, t in enumerate(transients)
                if np.hypot(d.x - t["x"], d.y - t["y"]) <= radius]
        if near and d.kind != "negative":
            recovered.update(near)
        else:
            false += 1
    return false, len(recovered)


def test_science_mode_beats_template_mode_for_a_sharp_visit(sharpField):
    import warnings

    field, model, sharp, _ = sharpField
    for visit in sharp:
        transients = [t for t in field.manifest["transients"] if t["visit"] == visit.id]
        assert transients
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            template = makeDifference(model, visit.exposure, matchTo="template")
        science = makeDifference(model, visit.exposure, matchTo="science")
        falseTemplate, _ = _falseAndRecovered(template, transients)
        falseScience, recovered = _falseAndRecovered(science, transients)
        assert recovered == len(transients)
        assert falseTemplate >= 20
        assert 5 * falseScience <= falseTemplate
        assert science.matchTo == "science" and template.matchTo == "template"
        # the difference is at the model's PSF, the template made without PSF matching
        assert science.difference.psf is model.psf
        assert science.template.psf is model.psf
        assert "PSF_DAMPED" not in science.template.mask.planes or not np.any(
            science.template.mask.array & science.template.mask.getPlaneBitMask("PSF_DAMPED"))
        assert science.noiseCorrelation > 1.0
        summary = science.toDict()
        assert summary["matchTo"] == "science"
        assert summary["noiseCorrelation"] == pytest.approx(science.noiseCorrelation)


def test_auto_picks_science_only_for_the_sharp_visit(sharpField):
    from dcrmodel.diffim.difference import AUTO_MISSING_FRACTION, chooseMatchTo

    field, model, sharp, ordinary = sharpField
    result = makeDifference(model, sharp[0].exposure)
    assert result.matchTo == "science"
    assert result.missingFraction > AUTO_MISSING_FRACTION
    auto = makeDifference(model, ordinary.exposure)
    assert auto.matchTo == "template"
    assert auto.missingFraction < AUTO_MISSING_FRACTION
    assert auto.toDict()["matchTo"] == "template"
    from dcrmodel.errors import DcrPsfWarning

    with pytest.warns(DcrPsfWarning, match="broader than the target PSF"):
        makeDifference(model, ordinary.exposure, matchTo="science")
    explicit = makeDifference(model, ordinary.exposure, matchTo="template")
    np.testing.assert_array_equal(auto.difference.image.array, explicit.difference.image.array)
    # every training visit is at least as broad as the model: template mode
    for visit in (v for v in field.visits if v.role == "training"):
        assert chooseMatchTo(model, visit.exposure.psf)[0] == "template"


def test_convolve_to_psf_against_gaussians():
    from scipy.signal import fftconvolve

    from dcrmodel.diffim.difference import convolveToPsf, noiseCorrelationFactor
    from dcrmodel.image import Exposure, GaussianPsf, Image, Mask, MaskedImage

    size, sharp, broad = 96, 2.5, 4.0
    y, x = np.mgrid[:size, :size]

    def gaussian(fwhm, x0, y0, flux):
        s = fwhm / (2 * np.sqrt(2 * np.log(2)))
        return flux * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * s * s)) / (2 * np.pi * s * s)

    image = gaussian(sharp, 40.0, 50.0, 1000.0)
    image[70, 70] = 1e6  # a bad pixel that must not leak
    mask = Mask.fromBox(Box(0, 0, size, size))
    mask.array[70, 70] |= mask.getPlaneBitMask("BAD")
    exposure = Exposure(MaskedImage(Image(image), mask, Image(np.full((size, size), 4.0))),
                        psf=GaussianPsf(sharp))
    convolved, kernel = convolveToPsf(exposure, GaussianPsf(broad), fill=np.zeros((size, size)))
    expected = gaussian(broad, 40.0, 50.0, 1000.0)
    near = (np.hypot(x - 40, y - 50) < 12)
    assert np.max(np.abs(convolved.image.array - expected)[near]) < 2e-3 * expected.max()
    assert convolved.psf.fwhm == broad
    # the bad pixel was filled before convolving and its neighbourhood is flagged
    radius = kernel.shape[0] // 2
    assert radius >= 2
    bad = (convolved.mask.array & convolved.mask.getPlaneBitMask("BAD")) != 0
    assert bad[70 - radius: 71 + radius, 70 - radius: 71 + radius].all()
    assert np.abs(convolved.image.array[60:80, 60:80]).max() < 1e-3
    # border flagged EDGE; interior not
    edge = (convolved.mask.array & convolved.mask.getPlaneBitMask("EDGE")) != 0
    assert edge[:radius].all() and not edge[radius:-radius, radius:-radius].any()
    # constant variance -> variance * sum(kernel^2); kernel = Gaussian of the FWHM difference
    sk = np.sqrt(broad**2 - sharp**2) / (2 * np.sqrt(2 * np.log(2)))
    assert np.median(convolved.variance.array[edge == 0]) == pytest.approx(
        4.0 / (4 * np.pi * sk**2), rel=0.03)
    # noise correlation factor of Gaussians: 4 pi sk^2 sd^2 / (sk^2 + sd^2)
    sd = broad / (2 * np.sqrt(2 * np.log(2)))
    detection = np.asarray(GaussianPsf(broad).computeKernelImage())
    assert noiseCorrelationFactor(kernel, detection) == pytest.approx(
        4 * np.pi * sk**2 * sd**2 / (sk**2 + sd**2), rel=0.05)
    # an independent empirical check: white noise through the kernel and a matched filter
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(512, 512))
    smoothed = fftconvolve(noise, kernel, mode="same")
    d = detection / detection.sum()
    filtered = fftconvolve(smoothed, d, mode="same")[40:-40, 40:-40]
    assumed = np.sum(kernel**2) * np.sum(d**2)
    assert filtered.var() / assumed == pytest.approx(
        noiseCorrelationFactor(kernel, detection), rel=0.1)


def test_match_to_bad_input(sharpField):
    from dcrmodel.errors import DcrMetadataError
    from dcrmodel.image import Exposure
    from dcrmodel.model.core import DcrModel

    _, model, sharp, _ = sharpField
    science = sharp[0].exposure
    with pytest.raises(DcrValueError, match="matchTo must be one of 'auto', 'template'"):
        makeDifference(model, science, matchTo="model")
    with pytest.raises(DcrValueError, match="matchTo must be one of"):
        makeDifference(model, science, matchTo=None)
    noPsf = Exposure(science.maskedImage, wcs=science.wcs, psf=None,
                     visitInfo=science.visitInfo, filter=science.filter,
                     photoCalib=science.photoCalib)
    with pytest.raises(DcrMetadataError, match="science exposure has no PSF"):
        makeDifference(model, noPsf, matchTo="science")
    blind = DcrModel(model.modelImages, filterInfo=model.filter, psf=None, mask=model.mask,
                     variance=model.variance, photoCalib=model.photoCalib, wcs=model.wcs)
    with pytest.raises(DcrMetadataError, match="DCR model has no PSF"):
        makeDifference(blind, science, matchTo="science")
    with pytest.raises(DcrValueError, match="matchPsf cannot be given with matchTo='science'"):
        makeDifference(model, science, matchTo="science", matchPsf=True)
