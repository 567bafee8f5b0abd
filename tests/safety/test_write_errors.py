"""A full disk, a file-size limit, a path under a file: one line, exit 2, earlier outputs intact.

A full disk is stood in for by ``RLIMIT_FSIZE`` in a forked child: a write beyond the limit
fails with EFBIG (Python ignores SIGXFSZ), as a write on a full disk fails with ENOSPC; both
reach the same code (astropy re-raises either as a bare OSError).
"""

import json
import warnings

import numpy as np
import pytest

from dcrmodel.assemble import DcrAssembleConfig, assembleFromFiles
from dcrmodel.cli.main import main
from dcrmodel.errors import DcrOutputError
from helpers.safety import MODEL_FILES, hidden, runChild, snapshot, tinyField

#: File-size limits (bytes), all below the size of every FITS file of the tiny field's
#: outputs (46-78 kB): a write that starts beyond the limit fails with EFBIG; one that
#: crosses it is cut short (numpy reports "N requested and M written", no errno); astropy
#: re-raises either as a bare OSError.
LIMITS = [3_000, 10_000, 40_000, 60_000]


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return tinyField(tmp_path_factory.mktemp("full-disk"))


def _fullDisk(argv, limit):
    return runChild(lambda gate: main([*map(str, argv), "-q"]), fileSizeLimit=limit).wait()


def _oneLine(code, err, output):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"cannot write {output}" in lines[0], lines[0]
    assert lines[0].split(": ", 3)[3].startswith(("the disk is full or a file-size limit was "
                                                  "reached", "File too large")), lines[0]
    assert "Errno" not in lines[0] and ".tmp" not in lines[0]


@pytest.mark.parametrize("limit", LIMITS)
def test_assemble_on_a_full_disk_keeps_the_old_model(field, tmp_path, limit):
    out = tmp_path / "m"
    assembleFromFiles(field.training, out, config=DcrAssembleConfig(doAirmassWeight=True))
    before = snapshot(out)
    code, err = _fullDisk(["assemble", *field.training, "--out", out, "--overwrite"], limit)
    _oneLine(code, err, out)
    assert snapshot(out) == before
    assert hidden(tmp_path) == []
    code, err = runChild(lambda gate: main(["assemble", *map(str, field.training), "--out",
                                            str(out), "--overwrite", "-q"])).wait()
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == MODEL_FILES and hidden(tmp_path) == []


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("command", ["template", "diff"])
def test_template_and_diff_on_a_full_disk_keep_the_earlier_output(field, tmp_path, command,
                                                                   limit):
    out = tmp_path / "o.fits"
    assert runChild(lambda gate: main([command, str(field.model), str(field.test), "--out",
                                       str(out), "-q"])).wait()[0] == 0
    before = snapshot(tmp_path)
    assert sorted(before) == (["o.fits", "o.json"] if command == "diff" else ["o.fits"])
    code, err = _fullDisk([command, field.model, field.test, "--out", out, "--overwrite"],
                          limit)
    _oneLine(code, err, out)
    assert snapshot(tmp_path) == before
    assert hidden(tmp_path) == []


def test_simulate_on_a_full_disk_leaves_nothing(tmp_path):
    out = tmp_path / "s"
    code, err = _fullDisk(["simulate", "--out", out, "--size", "48", "--visits", "4",
                           "--transients", "0"], 10_000)
    _oneLine(code, err, out)
    assert list(tmp_path.iterdir()) == []


def test_api_writers_under_a_regular_file(field, tmp_path):
    from dcrmodel import SimulationConfig, readDcrModel, runSimulation, writeDcrModel
    from dcrmodel.fits import readExposure, writeExposure

    afile = tmp_path / "afile"
    afile.write_text("x")
    model = readDcrModel(field.model)
    writers = {
        "writeDcrModel": lambda out: writeDcrModel(model, out),
        "writeExposure": lambda out: writeExposure(readExposure(field.test), out / "e.fits"),
        "assembleFromFiles": lambda out: assembleFromFiles(field.training, out),
        "runSimulation": lambda out: runSimulation(out, SimulationConfig(size=32, numTraining=3,
                                                                         numTest=1, nights=1)),
    }
    for name, write in writers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(DcrOutputError, match=f"cannot write {afile}/sub.*: {afile} is "
                               "a file, not a folder"):
                write(afile / "sub")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"], name


def test_a_diff_that_could_not_be_written_can_be_written_again(field, tmp_path):
    out = tmp_path / "d.fits"
    code, err = _fullDisk(["diff", field.model, field.test, "--out", out], 60_000)
    _oneLine(code, err, out)
    assert list(tmp_path.iterdir()) == []
    assert runChild(lambda gate: main(["diff", str(field.model), str(field.test), "--out",
                                       str(out), "-q"])).wait()[0] == 0
    detections = json.loads(out.with_suffix(".json").read_text())
    assert np.isfinite(detections["numDetections"])
