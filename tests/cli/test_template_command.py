"""``dcrmodel template`` and ``dcrmodel diff`` on a detector-frame visit, end to end.

Small files: models of a 112 x 96 patch (whole, and cut into two overlapping halves) and a
64 x 64 visit rotated by 37 degrees that reaches beyond the patch.
"""

import json
import warnings

import numpy as np
import pytest

from dcrmodel.cli.main import main
from dcrmodel.fits import readDcrModel, readExposure, writeDcrModel, writeExposure
from dcrmodel.image import Box, Filter, GaussianPsf, Image
from dcrmodel.model import DcrModel, buildMatchedExposureFromModels
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

PATCH = Box(0, 0, 112, 96)
HALVES = (Box(0, 0, 72, 96), Box(48, 0, 64, 96))
VISIT = Box(3000, 1000, 64, 64)
TRANSIENT = (VISIT.minX + 30.4, VISIT.minY + 25.7)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("detector")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        visitInfo = makeVisitInfo(airmass=1.5, azimuth=230.0)
    patchWcs = visitFrame(visitInfo, 0.0, PATCH)
    scene = Scene.random(patchWcs, PATCH, 16, seed=3, border=6)
    psf = GaussianPsf(2.3548 * SIGMA)
    whole = patchModel(scene, patchWcs, PATCH, psf=psf, variance=0.01)
    writeDcrModel(whole, root / "whole")
    for name, box in zip(("left", "right"), HALVES, strict=True):
        writeDcrModel(patchModel(scene, patchWcs, box, psf=psf, variance=0.01), root / name)
    red = DcrModel([Image(np.zeros((8, 8))) for _ in range(3)],
                   filterInfo=Filter("r", 620.0, 140.0), wcs=patchWcs)
    writeDcrModel(red, root / "red")
    wcs = visitFrame(visitInfo, 37.0, VISIT, offset=(30.0, 10.0))
    image = expectedTemplate(scene, visitInfo, wcs, VISIT, mode="mean")
    image += renderGaussians(VISIT.shape, [(*TRANSIENT, 900.0)], sigma=SIGMA,
                             origin=VISIT.begin)
    image += np.random.default_rng(1).normal(0.0, 1.5, VISIT.shape)
    writeExposure(visitExposure(visitInfo, wcs, VISIT, image=image, psf=psf, variance=2.25),
                  root / "visit.fits")
    far = visitFrame(visitInfo, 37.0, VISIT, offset=(30.0, 3000.0))
    writeExposure(visitExposure(visitInfo, far, VISIT, psf=psf), root / "far.fits")
    return root


def test_template_of_a_detector_frame_visit(files):
    out = files / "template.fits"
    assert main(["template", str(files / "whole"), str(files / "visit.fits"), "--out",
                 str(out), "--engine", "spline", "-q"]) == 0
    template = readExposure(out)
    visit = readExposure(files / "visit.fits")
    assert template.bbox == visit.bbox == VISIT
    corners = ([0.0, 63.0, 3000.0], [0.0, 40.0, 1063.0])
    np.testing.assert_allclose(template.wcs.all_pix2world(*corners, 0),
                               visit.wcs.all_pix2world(*corners, 0), rtol=0, atol=1e-9)
    api = buildMatchedExposureFromModels([readDcrModel(files / "whole")], visit,
                                         engine="spline")
    np.testing.assert_allclose(template.image.array, api.image.array, rtol=1e-6, atol=1e-5)
    noData = template.mask.getBadPixels("NO_DATA")
    np.testing.assert_array_equal(noData, api.mask.getBadPixels("NO_DATA"))
    assert 100 < noData.sum() < 0.5 * VISIT.area  # the visit reaches beyond the patch
    assert (template.image.array[noData] == 0).all()
    assert template.psf is not None and template.visitInfo is not None


def test_template_with_another_warping_kernel(files):
    out = files / "template-lanczos5.fits"
    assert main(["template", str(files / "whole"), str(files / "visit.fits"), "--out",
                 str(out), "--warping-kernel", "lanczos5", "-q"]) == 0
    visit = readExposure(files / "visit.fits")
    api = buildMatchedExposureFromModels([readDcrModel(files / "whole")], visit,
                                         warpingKernel="lanczos5")
    default = buildMatchedExposureFromModels([readDcrModel(files / "whole")], visit)
    template = readExposure(out)
    np.testing.assert_allclose(template.image.array, api.image.array, rtol=1e-6, atol=1e-5)
    assert not np.allclose(template.image.array, default.image.array, rtol=1e-4, atol=1e-3)


def test_template_merged_from_two_models(files):
    out = files / "merged.fits"
    assert main(["template", str(files / "left"), str(files / "right"),
                 str(files / "visit.fits"), "--out", str(out), "-q"]) == 0
    merged = readExposure(out)
    visit = readExposure(files / "visit.fits")
    model = readDcrModel(files / "whole")
    whole = buildMatchedExposureFromModels([model], visit)
    valid = ~merged.mask.getBadPixels("NO_DATA")
    np.testing.assert_array_equal(valid, ~whole.mask.getBadPixels("NO_DATA"))
    # away from the patch's outer edges (where the PSF matching's padding differs with the
    # size of the model) the two halves give the whole patch's template
    ys, xs = np.mgrid[VISIT.minY:VISIT.maxY + 1, VISIT.minX:VISIT.maxX + 1]
    px, py = skyToPixels(visit.wcs, model.wcs, xs, ys)
    inner = (px > 10) & (px < PATCH.maxX - 10) & (py > 10) & (py < PATCH.maxY - 10)
    assert inner.sum() > 0.4 * VISIT.area
    np.testing.assert_allclose(merged.image.array[inner], whole.image.array[inner],
                               atol=2e-4 * whole.image.array.max())


def test_diff_of_a_detector_frame_visit(files):
    out = files / "diff.fits"
    assert main(["diff", str(files / "left"), str(files / "right"), str(files / "visit.fits"),
                 "--out", str(out), "-q", "--match-to", "template"]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["models"] == [str(files / "left"), str(files / "right")]
    assert report["numDetections"] >= 1
    nearest = min(np.hypot(d["x"] - TRANSIENT[0], d["y"] - TRANSIENT[1])
                  for d in report["detections"])
    assert nearest < 2.0
    difference = readExposure(out)
    assert difference.bbox == VISIT
    noData = difference.mask.getBadPixels("NO_DATA")
    assert noData.any() and not difference.mask.getBadPixels("DETECTED")[noData].any()


def test_bad_input(files, capsys):
    out = files / "bad.fits"
    assert main(["template", str(files / "whole"), str(files / "red"),
                 str(files / "visit.fits"), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "different bands" in error and len(error.strip().splitlines()) == 1
    assert main(["template", str(files / "whole"), str(files / "far.fits"), "--out",
                 str(out)]) == 2
    assert "does not overlap" in capsys.readouterr().err
    assert main(["diff", str(files / "left"), str(files / "red"), str(files / "visit.fits"),
                 "--out", str(out)]) == 2
    assert "different bands" in capsys.readouterr().err
    assert main(["template", str(files / "whole"), str(files / "visit.fits"), "--out",
                 str(out), "--warping-kernel", "cubic"]) == 2
    assert "invalid choice: 'cubic'" in capsys.readouterr().err
    assert not out.exists() and not out.with_suffix(".json").exists()
