"""One set of input checks for every command and function that takes the input.

- The science exposure of ``template`` and ``diff`` is checked as ``assemble`` checks its
  visits: unmasked pixels finite with a positive variance, and the model's band.
- A coadd of another band than the visits is refused.
- A visit given twice (one path, a copy, one visit id and date on the same sky, one
  object) is refused before any work, by ``assemble``, ``assemble-patches`` and the API.
- The difference API refuses None and wrong types with `DcrTypeError`.
"""

import re
import shutil
import warnings

import numpy as np
import pytest

from dcrmodel.assemble import DcrAssembleCoadd, DcrAssembleConfig, assembleFromFiles
from dcrmodel.assemble.inputs import VisitInput, refuseDuplicateVisits
from dcrmodel.cli.main import main
from dcrmodel.diffim import cropToModel, makeDifference, templateForExposure
from dcrmodel.errors import DcrTypeError, DcrValueError
from dcrmodel.fits import ExposureFile, readDcrModel, readExposure, writeExposure
from dcrmodel.image import Box, Filter
from dcrmodel.simulate import loadManifest
from helpers.safety import hidden, tinyField


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return tinyField(tmp_path_factory.mktemp("inputs"))


def _run(capsys, *argv):
    code = main([*map(str, argv), "-q"])
    err = capsys.readouterr().err.strip()
    return code, err


def _oneLine(code, err, pattern):
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert re.search(pattern, err), err


def _withPixels(field, tmp_path, change, name="science.fits"):
    exposure = readExposure(field.test)
    change(exposure)
    path = tmp_path / name
    writeExposure(exposure, path)
    return path


# ------------------------------------------------------------------------------------------
# item 4: the science exposure of template and diff
# ------------------------------------------------------------------------------------------
def _negativePatch(exposure):
    exposure.variance.array[10:20, 10:20] = -1.0


def _zeroVariance(exposure):
    exposure.variance.array[:] = 0.0


@pytest.mark.parametrize("command", ["template", "diff"])
@pytest.mark.parametrize("change", [_negativePatch, _zeroVariance])
def test_template_and_diff_refuse_a_variance_that_is_not_positive(field, tmp_path, capsys,
                                                                  command, change):
    science = _withPixels(field, tmp_path, change)
    out = tmp_path / "o.fits"
    code, err = _run(capsys, command, field.model, science, "--out", out)
    _oneLine(code, err, r"the science exposure has \d+ unmasked pixels with a non-finite value "
             r"or a variance that is not positive; flag them in a bad mask plane")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["science.fits"]
    assert hidden(tmp_path) == []


def test_diff_of_a_non_finite_pixel_is_refused_and_a_masked_one_is_not(field, tmp_path, capsys):
    model = readDcrModel(field.model)
    exposure = readExposure(field.test)
    exposure.image.array[5, 7] = np.nan
    with pytest.raises(DcrValueError, match="the science exposure has 1 unmasked pixels"):
        makeDifference(model, exposure)
    with pytest.raises(DcrValueError, match="the science exposure has 1 unmasked pixels"):
        templateForExposure(model, exposure)
    # flagged BAD (and its variance broken too): not searched, no error
    exposure.mask.array[5, 7] |= exposure.mask.getPlaneBitMask("BAD")
    exposure.variance.array[5, 7] = -1.0
    result = makeDifference(model, exposure)
    assert np.isfinite(result.difference.image.array[~result.difference.mask.getBadPixels()]).all()


def test_a_masked_negative_patch_gives_the_same_difference(field, tmp_path):
    # the check refuses only what detection would misread: masked pixels are left alone
    model = readDcrModel(field.model)
    exposure = readExposure(field.test)
    plain = makeDifference(model, exposure)
    exposure.variance.array[10:20, 10:20] = -1.0
    exposure.mask.array[10:20, 10:20] |= exposure.mask.getPlaneBitMask("BAD")
    masked = makeDifference(model, exposure)
    outside = np.ones(exposure.image.array.shape, bool)
    outside[6:24, 6:24] = False
    assert len(masked.detections) <= len(plain.detections)
    np.testing.assert_array_equal(masked.difference.image.array[outside],
                                  plain.difference.image.array[outside])


@pytest.mark.parametrize("command", ["template", "diff"])
def test_an_exposure_of_another_band_is_refused_naming_both(field, tmp_path, capsys, command):
    def toR(exposure):
        exposure.filter = Filter.fromBand("r")

    science = _withPixels(field, tmp_path, toR)
    code, err = _run(capsys, command, field.model, science, "--out", tmp_path / "o.fits")
    _oneLine(code, err, r"the exposure \(band r\) and the DCR model \(band g\) are of different "
             r"bands")
    assert not (tmp_path / "o.fits").exists()


def test_the_api_refuses_an_exposure_of_another_band(field):
    model = readDcrModel(field.model)
    exposure = readExposure(field.test)
    exposure.filter = Filter.fromBand("r")
    for call in (lambda: model.buildMatchedExposure(exposure=exposure),
                 lambda: model.buildMatchedTemplate(exposure=exposure),
                 lambda: makeDifference(model, exposure),
                 lambda: templateForExposure([model], exposure)):
        with pytest.raises(DcrValueError, match=r"\(band r\) and the DCR model \(band g\)"):
            call()
    # a physical filter name of the same band is the same band
    exposure.filter = Filter("g_6", exposure.filter.effectiveWavelength,
                             exposure.filter.bandwidth)
    model.buildMatchedExposure(exposure=exposure)


# ------------------------------------------------------------------------------------------
# item 5: a coadd of another band
# ------------------------------------------------------------------------------------------
def test_assemble_refuses_a_coadd_of_another_band(field, tmp_path, capsys):
    manifest = loadManifest(field.root / "field")
    coadd = readExposure(manifest.coaddPath)
    coadd.filter = Filter.fromBand("r")
    path = tmp_path / "coadd-r.fits"
    writeExposure(coadd, path)
    code, err = _run(capsys, "assemble", *field.training, "--coadd", path, "--out",
                     tmp_path / "m")
    _oneLine(code, err, r"the visits \(band g\) and the coadd \(band r\) are of different bands")
    assert not (tmp_path / "m").exists()
    with pytest.raises(DcrValueError, match="are of different bands"):
        DcrAssembleCoadd().run(field.training, coadd=coadd)


# ------------------------------------------------------------------------------------------
# item 6: a visit given twice
# ------------------------------------------------------------------------------------------
def test_assemble_refuses_one_path_given_twice(field, tmp_path, capsys):
    first = field.training[0]
    code, err = _run(capsys, "assemble", *field.training, first, "--out", tmp_path / "m")
    _oneLine(code, err, rf"{first} and {first} are the same file: one visit given twice would "
             "count as two independent visits")
    # the same path four times cannot pass the "as many visits as subfilters" check
    code, err = _run(capsys, "assemble", first, first, first, first, "--out", tmp_path / "m")
    _oneLine(code, err, "are the same file")
    assert not (tmp_path / "m").exists()


def test_assemble_refuses_a_copy_a_link_and_a_reprocessing(field, tmp_path, capsys):
    first = field.training[0]
    copy = tmp_path / "copy.fits"
    shutil.copyfile(first, copy)
    code, err = _run(capsys, "assemble", *field.training, copy, "--out", tmp_path / "m")
    _oneLine(code, err, rf"{first} and {copy} have the same visit id \d+, date and sky")
    link = tmp_path / "link.fits"
    link.symlink_to(first)
    code, err = _run(capsys, "assemble", *field.training, link, "--out", tmp_path / "m")
    _oneLine(code, err, "are the same file")
    # another processing of the same visit: other pixels, same visit id, date and sky
    redone = readExposure(first)
    redone.image.array[:] *= 1.01
    other = tmp_path / "redone.fits"
    writeExposure(redone, other)
    code, err = _run(capsys, "assemble", *field.training, other, "--out", tmp_path / "m")
    _oneLine(code, err, "have the same visit id")
    assert not (tmp_path / "m").exists()


def test_a_copy_without_visit_id_is_found_by_its_pixels(field, tmp_path):
    exposures = [readExposure(path) for path in field.training]
    for exposure in exposures:
        exposure.visitInfo = exposure.visitInfo.copyWith(id=None)
    twin = exposures[1].clone()
    with pytest.raises(DcrValueError, match=r"exposure 1 and exposure 4 have identical pixels, "
                       "date and exposure time on the same sky"):
        DcrAssembleCoadd().run([*exposures, twin])


def test_the_api_refuses_one_exposure_object_twice(field, tmp_path):
    exposures = [readExposure(path) for path in field.training]
    with pytest.raises(DcrValueError, match=r"exposure 0 \(visit \d+\) and exposure 4 \(visit "
                       r"\d+\) are the same exposure object"):
        DcrAssembleCoadd().run([*exposures, exposures[0]])
    with pytest.raises(DcrValueError, match="have the same visit id"):
        DcrAssembleCoadd().run([*exposures, exposures[2].clone()])
    with pytest.raises(DcrValueError, match="are the same file"):
        assembleFromFiles([*field.training, field.training[3]], tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_region_readers_are_told_apart_and_one_given_twice_is_refused(field):
    # Readers read one region at a time (a butler handle's, an ExposureFile) have no path
    # and no exposure: distinct readers are distinct visits, one reader twice is not.
    readers = [ExposureFile(path) for path in field.training]
    refuseDuplicateVisits([VisitInput(reader, k) for k, reader in enumerate(readers)])
    with pytest.raises(DcrValueError, match="are the same region reader"):
        refuseDuplicateVisits([VisitInput(reader, k)
                               for k, reader in enumerate([*readers, readers[1]])])


def _plan(tmp_path, visits, out="m"):
    lines = ["[[patch]]", 'name = "p"', "visits = [" + ", ".join(f'"{v}"' for v in visits) + "]",
             f'out = "{out}"']
    path = tmp_path / "plan.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_assemble_patches_refuses_a_copy_and_names_a_folder(field, tmp_path, capsys):
    copy = tmp_path / "copy.fits"
    shutil.copyfile(field.training[0], copy)
    plan = _plan(tmp_path, [*field.training, copy])
    code, err = _run(capsys, "assemble-patches", plan)
    _oneLine(code, err, r"patch 'p': .* and .*copy.fits have the same visit id")
    folder = tmp_path / "visits.fits"
    folder.mkdir()
    plan = _plan(tmp_path, [*field.training, folder])
    code, err = _run(capsys, "assemble-patches", plan)
    _oneLine(code, err, r"patch 'p': .*visits.fits is a folder, not an exposure file")
    assert not (tmp_path / "m").exists()


def test_detectors_of_one_visit_are_not_duplicates(field):
    # one visit id on two boxes that see different skies: two detectors of one visit
    visit = readExposure(field.training[0])
    box = visit.bbox
    left = visit[Box(box.minX, box.minY, 20, 48)]
    right = visit[Box(box.minX + 28, box.minY, 20, 48)]
    refuseDuplicateVisits([VisitInput(left, 0), VisitInput(right, 1)])
    with pytest.raises(DcrValueError, match="same visit id"):
        refuseDuplicateVisits([VisitInput(left, 0), VisitInput(left.clone(), 1)])


# ------------------------------------------------------------------------------------------
# item 12: the difference API refuses None and wrong types
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [None, "model", 3])
def test_makeDifference_refuses_what_is_not_a_model(field, bad):
    exposure = readExposure(field.test)
    with pytest.raises(DcrTypeError, match="model must be a DcrModel"):
        makeDifference(bad, exposure)
    with pytest.raises(DcrTypeError, match="model must be a DcrModel"):
        templateForExposure(bad, exposure)
    with pytest.raises(DcrTypeError, match="model must be a DcrModel"):
        cropToModel(bad, exposure)


@pytest.mark.parametrize("bad", [None, "exposure.fits", np.zeros((4, 4))])
def test_makeDifference_refuses_what_is_not_an_exposure(field, bad):
    model = readDcrModel(field.model)
    for call in (makeDifference, templateForExposure, cropToModel):
        with pytest.raises(DcrTypeError, match="exposure must be a dcrmodel Exposure"):
            call(model, bad)


def test_a_bool_threshold_is_refused(field):
    with pytest.raises(DcrValueError, match="threshold must be a positive number"):
        makeDifference(readDcrModel(field.model), readExposure(field.test), threshold=True)


def test_valid_inputs_give_the_same_model_as_before(field, tmp_path):
    # the checks change nothing for inputs that were valid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = assembleFromFiles(field.training, tmp_path / "m",
                                   config=DcrAssembleConfig())
    before = readDcrModel(field.model)
    for k in range(3):
        np.testing.assert_array_equal(result.dcrModel[k].array, before[k].array)


# ------------------------------------------------------------------------------------------
# an output never replaces an input
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["template", "diff"])
def test_the_output_is_never_an_input(field, tmp_path, capsys, command):
    science = tmp_path / "science.fits"
    shutil.copyfile(field.test, science)
    link = tmp_path / "link.fits"
    link.symlink_to(science)
    model = tmp_path / "model"
    shutil.copytree(field.model, model)
    before = {p: p.read_bytes() for p in [science, *model.iterdir()]}
    for out, pattern in ((science, "is the input .*science.fits itself"),
                         (link, "is the input .*science.fits itself"),
                         (model / "dcrCoadd_1.fits", "is inside the input folder .*model")):
        code, err = _run(capsys, command, model, science, "--out", out, "--overwrite")
        _oneLine(code, err, rf"the output .* {pattern}; write the output elsewhere")
    assert {p: p.read_bytes() for p in before} == before


def test_diff_never_writes_its_detections_over_its_exposure(field, tmp_path, capsys):
    science = tmp_path / "sci.json"  # an exposure file under an odd name
    shutil.copyfile(field.test, science)
    code, err = _run(capsys, "diff", field.model, science, "--out", tmp_path / "sci.fits",
                     "--overwrite")
    _oneLine(code, err, r"the output .*sci.json is the input .*sci.json itself")
    assert science.read_bytes() == field.test.read_bytes()


def test_template_to_a_folder_says_it_is_a_folder(field, tmp_path, capsys):
    code, err = _run(capsys, "template", field.model, field.test, "--out", tmp_path,
                     "--overwrite")
    _oneLine(code, err, rf"{tmp_path} is a folder; give a file name ending in .fits")
