"""Outputs made of several files are one output: a difference pair, a model's subfilters.

- ``dcrmodel diff`` writes ``D.fits`` and ``D.json`` with one identity; a run killed
  between the two renames leaves a pair that readers refuse and the next run explains
  (without ``--overwrite``) or replaces (with it).
- Every subfilter file of a model carries the model's identity (``DCR-RUN``); a folder
  mixing files of two runs of one band and box is refused naming the odd file; folders
  written before identities are read.
"""

import json
import os
import re
import shutil
import signal

import numpy as np
import pytest
from astropy.io import fits

from dcrmodel.assemble import DcrAssembleConfig, assembleFromFiles
from dcrmodel.cli.main import main
from dcrmodel.diffim import DIFFERENCE_ID_KEY, readDifference
from dcrmodel.errors import DcrFitsError, DcrMetadataError
from dcrmodel.fits import DcrModelDataRef, readDcrModel, writeDcrModel
from dcrmodel.model import DcrModel, oddRunIdentity
from helpers.safety import hidden, runChild, snapshot, tinyField


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return tinyField(tmp_path_factory.mktemp("pairs"))


@pytest.fixture(scope="module")
def otherModel(field, tmp_path_factory):
    """A model of the same band and box from another run (other settings)."""
    out = tmp_path_factory.mktemp("other") / "m"
    assembleFromFiles(field.training, out, config=DcrAssembleConfig(doAirmassWeight=True))
    return out


def _cli(capsys, *argv):
    code = main([*map(str, argv), "-q"])
    return code, capsys.readouterr().err.strip()


# ------------------------------------------------------------------------------------------
# item 3: the difference image and its detections
# ------------------------------------------------------------------------------------------
def _diff(field, out, *extra):
    return runChild(lambda gate: main(["diff", str(field.model), str(field.test), "--out",
                                       str(out), "-q", *extra])).wait()


def _killBeforeTheDetections(field, out, threshold):
    """Run diff in a child killed (SIGKILL) just before the detections are renamed."""
    real = os.replace

    def replace(source, target, *args, **kwargs):
        if str(target) == str(out.with_suffix(".json")):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(source, target, *args, **kwargs)

    def child(gate):
        os.replace = replace
        return main(["diff", str(field.model), str(field.test), "--out", str(out), "-q",
                     "--overwrite", "--threshold", threshold])

    return runChild(child).wait()


def test_a_pair_reads_back_as_one(field, tmp_path):
    out = tmp_path / "d.fits"
    assert _diff(field, out)[0] == 0
    difference, detections = readDifference(out)
    assert difference.metadata[DIFFERENCE_ID_KEY] == detections["differenceId"]
    assert detections["numDetections"] == len(detections["detections"])
    # the same inputs give the same pair, byte for byte
    before = snapshot(tmp_path)
    assert _diff(field, out, "--overwrite")[0] == 0
    assert snapshot(tmp_path) == before


def test_a_run_killed_between_the_two_files_is_found_and_recovered(field, tmp_path, capsys):
    out = tmp_path / "d.fits"
    assert _diff(field, out, "--threshold", "5")[0] == 0
    old = snapshot(tmp_path)
    code, err = _killBeforeTheDetections(field, out, "3")
    assert code == -signal.SIGKILL, err
    now = snapshot(tmp_path)
    # the new image beside the old detections: never taken for one pair
    assert now["d.fits"] != old["d.fits"] and now["d.json"] == old["d.json"]
    with pytest.raises(DcrFitsError, match=r"d.fits and d.json are not one pair .* run "
                       "'dcrmodel diff' again with --overwrite"):
        readDifference(out)
    # the next run without --overwrite says what it found; with it, makes a whole pair
    code, err = _cli(capsys, "diff", field.model, field.test, "--out", out)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert re.search(r"d.fits and d.json are not one pair \(their identities DCR-DIFF differ\): "
                     "an earlier run was stopped while writing them; pass --overwrite", err), err
    code, err = _cli(capsys, "diff", field.model, field.test, "--out", out, "--overwrite",
                     "--threshold", "3")
    assert code == 0, err
    difference, detections = readDifference(out)
    assert detections["threshold"] == 3.0
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("lone", ["d.fits", "d.json"])
def test_a_lone_file_of_a_pair_is_named_and_replaced(field, tmp_path, capsys, lone):
    out = tmp_path / "d.fits"
    assert _diff(field, out)[0] == 0
    other = {"d.fits": "d.json", "d.json": "d.fits"}[lone]
    (tmp_path / other).unlink()
    code, err = _cli(capsys, "diff", field.model, field.test, "--out", out)
    assert code == 2, err
    missing = "detections" if lone == "d.fits" else "difference image"
    assert f"{lone} exists without its {missing} {other}: an earlier run was stopped" in err
    assert "pass --overwrite" in err
    with pytest.raises(FileNotFoundError, match=f"no such file: .*{other}"):
        readDifference(out)
    code, err = _cli(capsys, "diff", field.model, field.test, "--out", out, "--overwrite")
    assert code == 0, err
    readDifference(out)


def test_a_whole_pair_is_refused_without_overwrite(field, tmp_path, capsys):
    out = tmp_path / "d.fits"
    assert _diff(field, out)[0] == 0
    code, err = _cli(capsys, "diff", field.model, field.test, "--out", out)
    assert code == 2 and "d.fits and d.json exist; pass --overwrite to replace them" in err, err


def test_a_pair_written_before_identities_still_reads(field, tmp_path):
    out = tmp_path / "d.fits"
    assert _diff(field, out)[0] == 0
    with fits.open(out, mode="update") as hdus:
        del hdus[0].header[DIFFERENCE_ID_KEY]
    content = json.loads(out.with_suffix(".json").read_text())
    del content["differenceId"]
    out.with_suffix(".json").write_text(json.dumps(content))
    difference, detections = readDifference(out)
    assert "differenceId" not in detections


# ------------------------------------------------------------------------------------------
# item 8: a model's identity in every subfilter file
# ------------------------------------------------------------------------------------------
def _mixed(field, otherModel, tmp_path, subfilter=1):
    mixed = tmp_path / "mixed"
    shutil.copytree(field.model, mixed)
    name = f"dcrCoadd_{subfilter}.fits"
    shutil.copyfile(otherModel / name, mixed / name)
    return mixed


def test_every_subfilter_file_carries_one_identity(field):
    identities = {fits.getheader(field.model / f"dcrCoadd_{k}.fits", 0)["DCR-RUN"]
                  for k in range(3)}
    assert len(identities) == 1 and re.fullmatch(r"[0-9a-f]{32}", identities.pop())


@pytest.mark.parametrize("subfilter", [0, 1, 2])
def test_a_subfilter_file_of_another_run_is_refused_naming_it(field, otherModel, tmp_path,
                                                              capsys, subfilter):
    mixed = _mixed(field, otherModel, tmp_path, subfilter)
    name = f"dcrCoadd_{subfilter}.fits"
    with pytest.raises(DcrFitsError, match=rf"{name} was written by run [0-9a-f]+ \(DCR-RUN\)"
                       rf" but the others by run [0-9a-f]+: the model folder .*mixed mixes "
                       "files of different runs"):
        readDcrModel(mixed)
    for command in ("template", "diff"):
        code, err = _cli(capsys, command, mixed, field.test, "--out", tmp_path / f"{command}.fits")
        assert code == 2 and len(err.splitlines()) == 1 and name in err, err
    # the model's own reader of data references refuses it too
    with pytest.raises(DcrMetadataError, match=rf"of subfilter {subfilter} was written by run"):
        DcrModel.fromDataRef(DcrModelDataRef(mixed), numSubfilters=3)


def _strip(folder, subfilters):
    for k in subfilters:
        with fits.open(folder / f"dcrCoadd_{k}.fits", mode="update") as hdus:
            del hdus[0].header["DCR-RUN"]


def test_a_model_written_before_identities_reads(field, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(field.model, old)
    _strip(old, range(3))
    model = readDcrModel(old)
    reference = readDcrModel(field.model)
    for k in range(3):
        np.testing.assert_array_equal(model[k].array, reference[k].array)


def test_a_mix_of_files_with_and_without_an_identity_is_refused(field, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(field.model, mixed)
    _strip(mixed, [2])
    with pytest.raises(DcrFitsError, match=r"dcrCoadd_2.fits has no run identity \(DCR-RUN\) "
                       "but the others have"):
        readDcrModel(mixed)


def test_the_identity_is_the_models_and_the_same_write_twice(field, tmp_path):
    model = readDcrModel(field.model)
    writeDcrModel(model, tmp_path / "a")
    writeDcrModel(model, tmp_path / "b")
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    changed = readDcrModel(field.model)
    changed[1].array[0, 0] += 1.0
    writeDcrModel(changed, tmp_path / "c")
    first = fits.getheader(tmp_path / "a" / "dcrCoadd_0.fits", 0)["DCR-RUN"]
    assert fits.getheader(tmp_path / "c" / "dcrCoadd_0.fits", 0)["DCR-RUN"] != first


def test_oddRunIdentity_names_the_odd_one():
    assert oddRunIdentity(["a", "a", "a"]) is None
    assert oddRunIdentity([None, None]) is None
    assert oddRunIdentity(["a", "b", "a"])[0] == 1
    assert oddRunIdentity(["b", "a", "a"])[0] == 0
    assert oddRunIdentity(["a", "b"])[0] == 1  # a tie: subfilter 0's is the model's
    assert oddRunIdentity(["a", None, "a"]) == (1, "has no run identity (DCR-RUN) but the "
                                                   "others have a")


class _Handle:
    """A stand-in for a butler's deferred dataset handle of one subfilter."""

    def __init__(self, folder, subfilter):
        self.dataId = {"subfilter": subfilter}
        self.path = folder / f"dcrCoadd_{subfilter}.fits"

    def get(self, parameters=None, **kwargs):
        from dcrmodel.fits import readExposure

        return readExposure(self.path)


def test_fromQuantum_refuses_handles_of_two_runs(field, otherModel, tmp_path):
    handles = [_Handle(field.model, 0), _Handle(otherModel, 1), _Handle(field.model, 2)]
    with pytest.raises(DcrMetadataError, match=r"of subfilter 1 was written by run [0-9a-f]+ "
                       r"\(DCR-RUN\) but the others by run"):
        DcrModel.fromQuantum(handles)
    model = DcrModel.fromQuantum([_Handle(field.model, k) for k in range(3)])
    np.testing.assert_array_equal(model[1].array, readDcrModel(field.model)[1].array)
