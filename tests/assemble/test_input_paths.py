"""assembleFromFiles and assembleDistributed take a list of files, and say what a path is."""

from pathlib import Path

import pytest

from dcrmodel.assemble import assembleFromFiles
from dcrmodel.distributed import assembleDistributed
from dcrmodel.errors import DcrTypeError, DcrValueError
from helpers.safety import tinyField


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return tinyField(tmp_path_factory.mktemp("paths"))


@pytest.mark.parametrize("one", ["one.fits", Path("one.fits"), b"one.fits"])
def test_one_path_where_a_list_is_wanted(tmp_path, one):
    # before: a str was iterated ("o", "n", "e", ...: 8 files not found), a Path raised
    # TypeError: 'PosixPath' object is not iterable
    with pytest.raises(DcrTypeError, match=r"paths must be a list of exposure files, not one "
                       r"path; for one file pass \[paths\] \[paths='one.fits'\]"):
        assembleFromFiles(one, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_not_paths(tmp_path):
    with pytest.raises(DcrTypeError, match="paths must be a list of exposure files"):
        assembleFromFiles(3, tmp_path / "m")
    with pytest.raises(DcrTypeError, match=r"\(paths\), not of int"):
        assembleFromFiles(["a.fits", 3], tmp_path / "m")


def test_a_folder_is_not_called_missing(field, tmp_path):
    folder = tmp_path / "visit.fits"
    folder.mkdir()
    for call in (lambda: assembleFromFiles([folder, *field.training], tmp_path / "m"),
                 lambda: assembleFromFiles(field.training, tmp_path / "m", coaddPath=folder),
                 lambda: assembleDistributed([folder, *field.training], tmp_path / "m",
                                             resume=True)):
        with pytest.raises(DcrValueError, match=f"{folder} is a folder, not an exposure file; "
                           "give the file itself"):
            call()
    with pytest.raises(DcrValueError, match=r"and 1 more folder\(s\)"):
        assembleFromFiles([folder, tmp_path, *field.training], tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visit.fits"]
