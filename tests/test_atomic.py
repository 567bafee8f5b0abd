import pytest

from dcrmodel.atomic import atomicDirectory, atomicPath


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomicPath(target) as tmp:
        assert tmp.suffix == ".txt" and tmp.parent == tmp_path
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomicPath(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_directory(tmp_path):
    target = tmp_path / "model"
    with atomicDirectory(target) as tmp:
        (tmp / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with pytest.raises(RuntimeError), atomicDirectory(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomicDirectory(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_outputs_have_ordinary_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        with atomicPath(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomicDirectory(tmp_path / "d") as tmp:
            (tmp / "a").write_text("1")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_one_output_folder_guard(tmp_path):
    import json

    from dcrmodel.atomic import guardOutputFolder
    from dcrmodel.errors import DcrOutputError

    def isOwn(folder):
        return (folder / "summary.json").is_file()

    def foreign(folder):
        return sorted(p.name for p in folder.iterdir()
                      if p.name not in ("summary.json", "data.fits") and p.name[0] != ".")

    new = tmp_path / "new"
    assert guardOutputFolder(new, False, "thing", isOwn, foreign) == new  # need not exist
    new.mkdir()
    (new / ".leftover.tmp").write_text("x")  # hidden leftovers do not count
    assert guardOutputFolder(new, False, "thing", isOwn, foreign) == new
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DcrOutputError, match="is a file, not a folder; choose a folder"):
        guardOutputFolder(afile, True, "thing", isOwn, foreign)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(DcrOutputError, match=r"already holds other files \(notes.txt\), not a"):
        guardOutputFolder(other, True, "thing", isOwn, foreign)
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "summary.json").write_text(json.dumps({}))
    (ours / "data.fits").write_text("x")
    with pytest.raises(DcrOutputError, match="another run's thing; pass --overwrite"):
        guardOutputFolder(ours, False, "thing", isOwn, foreign)
    assert guardOutputFolder(ours, True, "thing", isOwn, foreign) == ours
    (ours / "extra.txt").write_text("x")
    with pytest.raises(DcrOutputError, match=r"holds a dcrmodel thing and other files \(extra"):
        guardOutputFolder(ours, True, "thing", isOwn, foreign)
