"""Tests of dcrmodel.simulate.coverage: which pixels the training visits saw, and the
known-truth evaluation of templates restricted to them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dcrmodel.errors import DcrTypeError, DcrValueError
from dcrmodel.fits.exposure import readExposure
from dcrmodel.image import Exposure, Image
from dcrmodel.simulate.config import SimulationConfig
from dcrmodel.simulate.coverage import (
    coverageMap,
    evaluateDetectorVisit,
    frameCatalogue,
    restrictTemplate,
    validPixelMap,
)
from dcrmodel.simulate.field import runSimulation
from dcrmodel.warp import tangentPlaneGrid


def _exposure(ra=150.0, dec=-30.0, size=40):
    wcs, _ = tangentPlaneGrid(ra, dec, size, size, 0.2)
    return Exposure.fromArrays(np.zeros((size, size), np.float32), wcs=wcs)


def test_coverage_counts_the_visits_that_saw_each_pixel():
    a, b = _exposure(), _exposure()
    b.mask.array[20, 10] |= b.mask.getPlaneBitMask("CR")
    far = _exposure(ra=151.0)
    # A frame of 41 pixels about the same centre: its pixel i sees the exposures' i - 0.5,
    # where Lanczos 3 takes the 6 pixels i - 3 .. i + 2.
    frame, box = tangentPlaneGrid(150.0, -30.0, 41, 41, 0.2)
    count = coverageMap([a, b, far], frame, box)
    expected = np.zeros((41, 41), dtype=np.int32)
    expected[3:38, 3:38] = 2  # every tap inside the 40-pixel exposures
    expected[18:24, 8:14] = 1  # the kernels that touch b's flagged pixel (x 10, y 20)
    assert np.array_equal(count, expected)
    assert not validPixelMap(far, frame, box).any()


def test_frame_catalogue_and_restricted_templates():
    exposure = _exposure()
    sky = exposure.wcs.pixel_to_world([3.0, 30.5, 60.0], [4.0, 12.25, 5.0])
    entries = [{"id": i, "ra": float(s.ra.deg), "dec": float(s.dec.deg), "x": -1.0}
               for i, s in enumerate(sky)]
    moved = frameCatalogue(entries, exposure.wcs, exposure.bbox)
    assert [e["id"] for e in moved] == [0, 1]
    assert (moved[1]["x"], moved[1]["y"]) == pytest.approx((30.5, 12.25), abs=1e-8)
    with pytest.raises(DcrTypeError, match="'ra' and 'dec'"):
        frameCatalogue([{"x": 1.0, "y": 2.0}], exposure.wcs)
    keep = np.zeros(exposure.bbox.shape, dtype=bool)
    keep[5:10, 5:10] = True
    restricted = restrictTemplate(exposure, keep, exposure.bbox)
    assert np.array_equal(restricted.mask.getBadPixels("NO_DATA"), ~keep)
    assert not exposure.mask.getBadPixels().any()  # the original is untouched
    image = restrictTemplate(Image(np.ones((40, 40)), bbox=exposure.bbox), keep, exposure.bbox)
    assert np.isnan(image.array[~keep]).all() and (image.array[keep] == 1).all()
    array = restrictTemplate(np.ones((40, 40)), keep, exposure.bbox)
    assert np.isnan(array[0, 0]) and array[6, 6] == 1
    with pytest.raises(DcrValueError, match="keep must have the frame's shape"):
        restrictTemplate(exposure, keep[:-1], exposure.bbox)


@pytest.fixture(scope="module")
def detectorField(tmp_path_factory):
    config = SimulationConfig(size=64, numTraining=6, numTest=1, nights=1, numStars=8,
                              numGalaxies=3, defectFraction=0.3, transientsPerTestVisit=2,
                              detectorFrames=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runSimulation(tmp_path_factory.mktemp("coverage") / "field", config, seed=3)


def test_evaluation_over_well_covered_pixels(detectorField):
    manifest = detectorField
    visit = manifest.visits("test")[0]
    truth = readExposure(manifest.path(visit["truthStatic"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluateDetectorVisit(manifest, visit["id"], {"perfect": truth},
                                       minCoverage=4)
    assert result.numPixels == int((result.coverage >= 4).sum())
    assert 0 < result.numPixels < truth.bbox.area
    assert result.coverage.max() <= 6
    perfect, coadd = result.evaluations["perfect"], result.evaluations["coadd"]
    assert perfect.residual.relativeResidual == 0.0
    assert coadd.residual.relativeResidual > 0.02
    assert perfect.difference.numFalse <= 1
    assert len(result.transients) + result.numTransientsOutside == 2
    assert perfect.difference.numRecovered == len(result.transients)
    # Pixels outside the well-covered ones do not count: spoil them, nothing changes.
    spoiled = truth.clone()
    spoiled.image.array[result.coverage < 4] += 1e5
    again = evaluateDetectorVisit(manifest, visit["id"], {"spoiled": spoiled},
                                  minCoverage=4, includeCoadd=False,
                                  coverage=result.coverage)
    assert again.evaluations["spoiled"].residual.relativeResidual == 0.0
    assert again.evaluations["spoiled"].difference.numFalse == perfect.difference.numFalse
    assert set(result.toDict()) == {"evaluations", "minCoverage", "numPixels",
                                    "numTransients", "numTransientsOutside"}


def test_evaluation_refuses_impossible_requests(detectorField):
    manifest = detectorField
    visit = manifest.visits("test")[0]
    with pytest.raises(DcrValueError, match="seen by 7 training visits"):
        evaluateDetectorVisit(manifest, visit["id"], {}, minCoverage=7)
    with pytest.raises(DcrValueError, match="already named 'coadd'"):
        evaluateDetectorVisit(manifest, visit["id"], {"coadd": None})
    with pytest.raises(DcrValueError, match="coverage must have the visit's shape"):
        evaluateDetectorVisit(manifest, visit["id"], {}, coverage=np.zeros((3, 3)))
    with pytest.raises(DcrValueError, match="minCoverage must be >= 0"):
        evaluateDetectorVisit(manifest, visit["id"], {}, minCoverage=-1)
