import numpy as np
import pytest

from dcrmodel.assemble import DcrAssembleCoadd
from dcrmodel.config import DcrAssembleConfig
from dcrmodel.diffim import makeDifference
from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.fits import readExposure
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
