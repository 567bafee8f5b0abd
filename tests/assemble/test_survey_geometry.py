"""Tests of assembly from visits on their own detector grids (dcrmodel.assemble.placement).

The field (`helpers.survey.SurveyField`) is drawn directly on every rotated, dithered
detector frame and, for comparison, on the patch grid, with no warp: a model built from the
detector frames, warped one subregion at a time, is checked against the truth, against the
plain coadd and against the model of the same visits drawn on the grid. Visits already on
the grid must give the models of the code before warping existed, bit for bit
(``data/ongrid_models.json``).
"""

import dataclasses
import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import dcrmodel.assemble.placement as placement
import dcrmodel.assemble.task as assemble
from dcrmodel.assemble.config import DcrAssembleConfig
from dcrmodel.assemble.plaincoadd import deferredCoadd
from dcrmodel.assemble.task import DcrAssembleCoadd, assembleFromFiles
from dcrmodel.errors import (
    DcrConfigError,
    DcrMetadataError,
    DcrShapeError,
    DcrValueError,
    DcrWarning,
)
from dcrmodel.fits import ExposureFile, writeExposure
from dcrmodel.image import Box, Exposure
from dcrmodel.physics.dcr import calculateDcr
from dcrmodel.warp import localJacobian, mapPixels
from helpers import makeTanWcs
from helpers.survey import NOISE, SurveyField, detectorFrame

HELD_OUT = (-3.0, 1.0, 3.8)


@pytest.fixture(scope="module")
def field():
    return SurveyField()


@pytest.fixture()
def noWork(monkeypatch):
    """Fail the test if a subregion is solved or a statistics pass starts."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(assemble, "IterativeSubregion", refuse)
    monkeypatch.setattr(assemble, "DirectSubregion", refuse)
    monkeypatch.setattr(DcrAssembleCoadd, "_statisticsPass", refuse)


def _relativeResidual(template, truth, select):
    footprint = (truth > 0.01 * truth.max()) & select
    return math.sqrt(((template - truth)[footprint] ** 2).sum() / (truth[footprint] ** 2).sum())


def _template(result, field, visitInfo):
    return result.dcrModel.buildMatchedTemplate(
        visitInfo=visitInfo, bbox=field.patchBox, wcs=field.patchWcs).array


def _arrays(result):
    return np.array([image.array for image in result.dcrModel])


def _copy(exposure, **changes):
    values = dict(wcs=exposure.wcs, psf=exposure.psf, visitInfo=exposure.visitInfo,
                  filter=exposure.filter, photoCalib=exposure.photoCalib)
    values.update(changes)
    maskedImage = values.pop("maskedImage", exposure.maskedImage.clone())
    return Exposure(maskedImage, **values)


# ------------------------------------------------------------------------------------------
# Detector frames end to end
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["direct", "iterative"])
def test_detector_frames_give_the_model_of_the_same_visits_on_the_grid(field, solver):
    config = DcrAssembleConfig(solver=solver)
    detector = DcrAssembleCoadd(config).run(field.exposures, grid=field.grid)
    onGrid = DcrAssembleCoadd(config).run(field.onGrid)
    assert detector.summary["grid"] == "grid"
    assert all(visit["warped"] for visit in detector.summary["visits"])
    assert not any(visit["warped"] for visit in onGrid.summary["visits"])
    assert detector.dcrModel.bbox == field.patchBox
    coadd = np.mean([e.image.array for e in field.onGrid], axis=0)
    select = field.coverage >= 6
    for hourAngle in HELD_OUT:
        visitInfo, truth = field.heldOut(hourAngle)
        fromDetectors = _relativeResidual(_template(detector, field, visitInfo), truth, select)
        fromGrid = _relativeResidual(_template(onGrid, field, visitInfo), truth, select)
        plain = _relativeResidual(coadd, truth, select)
        # Measured (direct): 0.0122 / 0.0118, 0.0100 / 0.0089, 0.0216 / 0.0210 against the
        # coadd's 0.21, 0.11, 0.38; iterative 0.047 / 0.045, 0.037 / 0.035, 0.060 / 0.059.
        assert fromDetectors < 1.25 * fromGrid
        assert fromDetectors < (0.15 if solver == "direct" else 0.4) * plain


def test_detector_frames_give_the_same_model_with_one_and_two_threads(field):
    # The subregions read and warp their visits in threads (one visit per thread), and
    # add them in order: the model is the same bit for bit.
    results = [
        DcrAssembleCoadd(DcrAssembleConfig(threads=threads, subregionSize=(40, 40)))
        .run(field.exposures, grid=field.grid)
        for threads in (1, 2)
    ]
    assert len(results[0].summary["subregions"]) > 1
    np.testing.assert_array_equal(_arrays(results[0]), _arrays(results[1]))
    for one, two in zip(results[0].nImages, results[1].nImages, strict=True):
        np.testing.assert_array_equal(one.array, two.array)


def test_warped_visits_are_weighted_by_their_own_noise(field):
    # (the iterative solver's plan holds the plain coadd; the direct one's makes it later)
    config = DcrAssembleConfig(solver="iterative")
    plan = DcrAssembleCoadd(config).planSubregions(field.exposures, grid=field.grid)
    reference = DcrAssembleCoadd(config).planSubregions(field.onGrid)
    for warped, onGrid in zip(plan.prepared.inputs, reference.prepared.inputs, strict=True):
        # The warp lowers each pixel's variance to sum(w^2) of it; the visit's weight is
        # that of its own noise again (measured within 0.3 %).
        assert warped.warp.noiseFactor < 0.95
        assert warped.weight == pytest.approx(onGrid.weight, rel=0.02)
    # The plain coadd computed from the warped visits matches the one of the same visits
    # on the grid where every detector sees the sky, within the noise.
    select = field.coverage == len(field.exposures)
    difference = plan.prepared.coadd.image.array - reference.prepared.coadd.image.array
    assert np.sqrt(np.mean(difference[select] ** 2)) < 0.5 * NOISE


def test_the_direct_solver_makes_the_coadd_of_warped_visits_from_its_own_warps(field):
    # The direct solver's subregions sum the plain coadd from the warps they make for their
    # solve (each visit warped once per subregion): the coadd of the statistics pass (the
    # iterative solver's, warped one tile at a time) to the accuracy of the mapping.
    plan = DcrAssembleCoadd().planSubregions(field.exposures, grid=field.grid)
    assert plan.prepared.coaddDeferred and not plan.prepared.coadd.image.array.any()
    results = [assemble.assembleSubregion(plan.subregionTask(i))
               for i in range(plan.numSubregions)]
    assert all(r.coaddSums.shape == (2, *r.tile.shape) for r in results)
    config = DcrAssembleConfig(solver="iterative")
    reference = DcrAssembleCoadd(config).planSubregions(field.exposures, grid=field.grid)
    coadd = deferredCoadd(plan.config, plan.prepared, plan.tiles,
                          [r.coaddSums for r in results])
    expected = reference.prepared.coadd
    scale = np.abs(expected.image.array).max()
    np.testing.assert_allclose(coadd.image.array, expected.image.array, rtol=0,
                               atol=1e-5 * scale)
    np.testing.assert_allclose(coadd.variance.array, expected.variance.array, rtol=1e-5)
    np.testing.assert_array_equal(coadd.mask.array, expected.mask.array)
    # Results without the sums (saved by an earlier version): the tiles are warped again
    again = deferredCoadd(plan.config, plan.prepared, plan.tiles, [None] * len(results))
    np.testing.assert_array_equal(again.image.array, expected.image.array)
    # The run's outputs carry it: the stacked coadd's mask and variance, the model's mask
    result = DcrAssembleCoadd().finish(plan, results)
    np.testing.assert_array_equal(result.coadd.variance.array, coadd.variance.array)
    detected = coadd.mask.getPlaneBitMask("DETECTED")
    np.testing.assert_array_equal(result.dcrModel.mask.array & detected,
                                  coadd.mask.array & detected)
    assert result.summary["coadd"] == "computed"


def test_dcr_of_a_warped_visit_is_its_own_seen_through_the_grid(field):
    result = DcrAssembleCoadd().planSubregions(field.exposures, grid=field.grid)
    box = field.patchBox
    centre = box.center
    for inp, exposure in zip(result.prepared.inputs, field.exposures, strict=True):
        # The same visit's DCR in its own frame, at the detector pixel that sees the patch
        # centre, carried onto the patch by the inverse of the local Jacobian.
        x, y = mapPixels(field.patchWcs, exposure.wcs, centre[0], centre[1])
        local = Box(int(round(float(x))) - 1, int(round(float(y))) - 1, 3, 3)
        own = calculateDcr(exposure.visitInfo, exposure.wcs, 482.685, 180.5, 3,
                           splitSubfilters=True, bbox=local)
        toPatch = np.linalg.inv(localJacobian(field.patchWcs, exposure.wcs, centre))
        for (s0, s1), (t0, t1) in zip(inp.dcr, own, strict=True):
            for shift, ownShift in ((s0, t0), (s1, t1)):
                dx, dy = toPatch @ np.array([ownShift[1], ownShift[0]])
                assert shift[0] == pytest.approx(dy, abs=2e-3)
                assert shift[1] == pytest.approx(dx, abs=2e-3)


def test_from_files_with_a_grid_text(field, tmp_path):
    paths = []
    for i, exposure in enumerate(field.exposures):
        paths.append(tmp_path / f"detector{i}.fits")
        writeExposure(exposure, paths[-1])
    sky = field.patchWcs.pixel_to_world(*field.patchBox.center)
    spec = f"{float(sky.ra.deg)!r},{float(sky.dec.deg)!r},96,96,0.2"
    config = DcrAssembleConfig(subregionSize=(48, 48))
    fromFiles = assembleFromFiles(paths, tmp_path / "model", config=config, grid=spec)
    inMemory = DcrAssembleCoadd(config).run(field.exposures, grid=field.grid)
    np.testing.assert_array_equal(_arrays(fromFiles), _arrays(inMemory))
    assert (tmp_path / "model" / "summary.json").is_file()


def test_subregions_read_only_the_cutouts_they_warp(field, tmp_path, monkeypatch):
    paths = []
    for i, exposure in enumerate(field.exposures[:5]):
        paths.append(tmp_path / f"detector{i}.fits")
        writeExposure(exposure, paths[-1])
    reads = []
    original = ExposureFile.read

    def recording(self, bbox=None):
        reads.append((self.path, bbox))
        return original(self, bbox)

    monkeypatch.setattr(ExposureFile, "read", recording)
    config = DcrAssembleConfig(solver="iterative", maxNumIter=1, minNumIter=1,
                               subregionSize=(24, 24), subregionBuffer=4)
    plan = DcrAssembleCoadd(config).planSubregions(paths, grid=field.grid)
    assert plan.numSubregions == 16
    detectorArea = field.exposures[0].bbox.area
    for index in range(plan.numSubregions):
        reads.clear()
        task = plan.subregionTask(index)
        assemble.assembleSubregion(task)
        assert reads, "the subregion read no visit"
        for path, bbox in reads:
            inp = next(i for i in plan.prepared.inputs if i.path == path)
            # Only what the warp onto the subregion with its buffer needs: the solved box
            # mapped into the detector, grown by the kernel's reach.
            assert bbox == inp.warp.sourceBox(inp.bbox.intersection(task.bbox))
            # A solved box of 32 x 32 pixels turned by any angle: at most 32 sqrt(2)
            # pixels wide, plus the kernel's reach and a margin (6 pixels) on each side.
            side = max(task.bbox.width, task.bbox.height)
            assert max(bbox.width, bbox.height) <= side * math.sqrt(2) + 14
            assert bbox.area < detectorArea


def test_visits_mixed_on_and_off_the_grid(field):
    visits = field.onGrid[:4] + field.exposures[4:]
    result = DcrAssembleCoadd().run(visits, grid=field.grid)
    warped = [visit["warped"] for visit in result.summary["visits"]]
    assert warped == [False] * 4 + [True] * (len(visits) - 4)
    onGrid = DcrAssembleCoadd().run(field.onGrid)
    visitInfo, truth = field.heldOut(1.0)
    select = field.coverage >= 6
    mixed = _relativeResidual(_template(result, field, visitInfo), truth, select)
    reference = _relativeResidual(_template(onGrid, field, visitInfo), truth, select)
    assert mixed < 1.3 * reference


def test_a_visit_off_the_grid_is_left_out_with_a_warning(field):
    wcs, box = detectorFrame(field.patchWcs, field.patchBox, 30.0, (900.0, -400.0), (72, 72))
    far = _copy(field.exposures[2], wcs=wcs)
    assert far.bbox == box
    config = DcrAssembleConfig(subregionSize=(48, 48))
    with pytest.warns(DcrWarning, match=r"exposure 3 \(visit 102\) does not overlap the "
                      "model's grid and is left out"):
        result = DcrAssembleCoadd(config).run([*field.exposures[:3], far, *field.exposures[3:]],
                                              grid=field.grid)
    assert result.summary["skipped"] == ["exposure 3 (visit 102)"]
    without = DcrAssembleCoadd(config).run(field.exposures, grid=field.grid)
    np.testing.assert_array_equal(_arrays(result), _arrays(without))


def test_a_given_coadd_sets_the_grid_of_detector_frames(field):
    plainCoadd = DcrAssembleCoadd().planSubregions(field.onGrid).prepared.coadd
    coadd = Exposure(plainCoadd.maskedImage, wcs=field.patchWcs, filter=field.exposures[0].filter)
    withCoadd = DcrAssembleCoadd().run(field.exposures, coadd=coadd)
    assert withCoadd.summary["grid"] == "coadd" and withCoadd.summary["coadd"] == "given"
    both = DcrAssembleCoadd().run(field.exposures, coadd=coadd, grid=field.grid)
    np.testing.assert_array_equal(_arrays(withCoadd), _arrays(both))


# ------------------------------------------------------------------------------------------
# Visits already on the grid: the model of the code before warping existed, bit for bit
# ------------------------------------------------------------------------------------------
def _digest(array, dtype):
    values = np.ascontiguousarray(np.asarray(array, dtype=dtype))
    return hashlib.sha256(values.tobytes()).hexdigest()


def test_visits_on_the_grid_give_the_models_they_always_gave(monkeypatch):
    reference = json.loads((Path(__file__).parent / "data" / "ongrid_models.json").read_text())
    field = SurveyField(patchSize=64, detectorSize=48, hourAngles=(-3.0, -1.2, 0.3, 1.7, 3.2),
                        nSources=6, seed=5)

    def refuse(*args, **kwargs):
        raise AssertionError("a visit on the grid was warped")

    monkeypatch.setattr(placement, "warpImage", refuse)
    # The digests were taken with the PSF damping of that code (1e-3, the default then).
    runs = {
        "direct": DcrAssembleConfig(psfDamping=1e-3),
        "directTiled": DcrAssembleConfig(subregionSize=(32, 32), psfDamping=1e-3),
        "iterative": DcrAssembleConfig(solver="iterative", maxNumIter=2, minNumIter=1,
                                       psfDamping=1e-3),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, config in runs.items():
            expected = reference["models"][name]
            for grid in (None, field.grid):
                result = DcrAssembleCoadd(config).run(field.onGrid, grid=grid)
                assert _digest(_arrays(result), np.float64) == expected["model"], (name, grid)
                counts = [image.array for image in result.nImages]
                assert _digest(counts, np.int32) == expected["nImage"], (name, grid)


# ------------------------------------------------------------------------------------------
# Bad input: one clear error before any work
# ------------------------------------------------------------------------------------------
def test_detector_frames_without_a_grid(field, noWork):
    with pytest.raises(DcrShapeError, match=r"exposure 1 \(visit 101\) is not on the model's "
                       r"pixel grid.*give the model's grid \(grid=, --grid\) or a coadd"):
        DcrAssembleCoadd().run(field.exposures)


@pytest.mark.parametrize(("grid", "error", "match"), [
    ("150,-30,100", DcrValueError, "RA,DEC,WIDTH,HEIGHT,SCALE"),
    ("150,-30,100,100,-0.2", DcrValueError, "scale"),
    ("missing.fits", FileNotFoundError, "no such grid file"),
    (42, Exception, "grid must be a pair"),
])
def test_malformed_grids(field, noWork, grid, error, match):
    with pytest.raises(error, match=match):
        DcrAssembleCoadd().run(field.exposures, grid=grid)


def test_grid_with_a_linear_wcs(field, noWork):
    linear = WCS(naxis=2)
    linear.wcs.ctype = ["LINEAR", "LINEAR"]
    with pytest.raises(DcrValueError, match="the grid is not a two-axis celestial WCS"):
        DcrAssembleCoadd().run(field.exposures, grid=(linear, field.patchBox))


def test_coadd_and_grid_that_disagree(field, noWork):
    coadd = _copy(field.onGrid[0])
    with pytest.raises(DcrValueError, match="the coadd and the grid disagree: the coadd covers"):
        DcrAssembleCoadd().run(field.exposures, coadd=coadd,
                               grid=(field.patchWcs, Box(0, 0, 80, 96)))
    shifted = makeTanWcs(crval=(field.patchWcs.wcs.crval[0], field.patchWcs.wcs.crval[1]),
                         crpix=(47.0, 47.5))
    with pytest.raises(DcrValueError, match=r"the coadd and the grid disagree: .* 0\.5 pixels"):
        DcrAssembleCoadd().run(field.exposures, coadd=coadd, grid=(shifted, field.patchBox))


def test_visit_without_a_wcs_or_with_a_linear_one(field, noWork, tmp_path):
    visits = list(field.exposures)
    visits[2] = _copy(visits[2], wcs=None)
    with pytest.raises(DcrMetadataError, match=r"exposure 2 \(visit 102\) lacks .*: WCS"):
        DcrAssembleCoadd().run(visits, grid=field.grid)
    # A file whose WCS is not celestial: its exposure gets no WCS (warned when it is read),
    # and the visit is named as lacking one.
    paths = []
    for i, exposure in enumerate(field.exposures[:4]):
        paths.append(tmp_path / f"detector{i}.fits")
        writeExposure(exposure, paths[-1])
    with fits.open(paths[1], mode="update") as hdus:
        for hdu in hdus[1:]:
            hdu.header["CTYPE1"], hdu.header["CTYPE2"] = "LINEAR", "LINEAR"
    with pytest.raises(DcrMetadataError, match=r"detector1\.fits lacks .*: WCS"), \
            pytest.warns(DcrWarning, match="the WCS is not celestial"):
        assembleFromFiles(paths, tmp_path / "model", grid=field.grid)
    assert not (tmp_path / "model").exists()


def test_no_visit_overlaps_the_grid(field, noWork):
    wcs, _ = detectorFrame(field.patchWcs, field.patchBox, 10.0, (3000.0, 0.0), (96, 96))
    far = (wcs, Box(0, 0, 96, 96))
    with pytest.raises(DcrValueError, match="no visit overlaps the model's grid"), \
            pytest.warns(DcrWarning, match="does not overlap"):
        DcrAssembleCoadd().run(field.exposures, grid=far)
    wcs, box = detectorFrame(field.patchWcs, field.patchBox, 10.0, (3000.0, 0.0), (72, 72))
    visits = [_copy(e, wcs=wcs) for e in field.exposures[:6]] + list(field.exposures[6:])
    with pytest.raises(DcrValueError, match="only 2 visits overlap the model's grid, fewer "
                       "than the 3 subfilters"), pytest.warns(DcrWarning):
        DcrAssembleCoadd().run(visits, grid=field.grid)


def test_unknown_warping_kernel():
    with pytest.raises(DcrConfigError, match="unknown warpingKernel"):
        DcrAssembleConfig(warpingKernel="bicubic")
    assert dataclasses.replace(DcrAssembleConfig(), warpingKernel="lanczos4").warpingKernel \
        == "lanczos4"
