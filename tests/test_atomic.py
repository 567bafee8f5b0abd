import os

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


def test_folder_swap_is_one_exchange(tmp_path):
    from dcrmodel.atomic import exchangePaths

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not exchangePaths(a, b):
        pytest.skip("this file system cannot exchange two paths in one step")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_second_writer_fails_at_once_and_the_lock_is_released(tmp_path):
    import subprocess
    import sys

    from dcrmodel.atomic import outputLock
    from dcrmodel.errors import DcrOutputError

    target = tmp_path / "model"
    other = (
        "import sys\n"
        "from dcrmodel.atomic import outputLock\n"
        "from dcrmodel.errors import DcrOutputError\n"
        "try:\n"
        "    with outputLock(sys.argv[1]):\n"
        "        pass\n"
        "except DcrOutputError as error:\n"
        "    print(error); sys.exit(2)\n"
    )
    with outputLock(target):
        with outputLock(target):  # the same process may nest
            pass
        result = subprocess.run([sys.executable, "-c", other, str(target)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert "another dcrmodel run is writing" in result.stdout
    result = subprocess.run([sys.executable, "-c", other, str(target)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    assert list(tmp_path.iterdir()) == []  # no lock file left
    with pytest.raises(DcrOutputError, match="is a file, not a folder"):
        afile = tmp_path / "afile"
        afile.write_text("x")
        with atomicPath(afile / "under" / "out.fits"):
            pass


def test_leftovers_of_killed_runs_are_removed_and_a_half_swap_is_restored(tmp_path):
    target = tmp_path / "model"
    with atomicDirectory(target) as tmp:
        (tmp / "a").write_text("1")
    # what a run killed mid-write leaves: a temporary folder and a temporary file
    (tmp_path / ".model.abc123.tmp").mkdir()
    (tmp_path / ".model.abc123.tmp" / "half").write_text("x")
    (tmp_path / ".model.tmp.xyz.fits").write_text("x")
    with atomicDirectory(target) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    # a run killed between the two renames of a swap (no exchange): the output is back
    os.replace(target, tmp_path / ".model.def456.old")
    assert not target.exists()
    with atomicDirectory(target) as tmp:
        assert (target / "b").read_text() == "2"  # restored before the new write
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_full_disk_is_a_one_line_error_and_the_old_output_stays(tmp_path):
    import resource
    import subprocess
    import sys

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    script = (
        "import resource, sys\n"
        "from dcrmodel.atomic import atomicPath\n"
        "from dcrmodel.errors import DcrOutputError\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        "    with atomicPath(sys.argv[1]) as tmp:\n"
        "        tmp.write_bytes(b'x' * 100000)\n"
        "except DcrOutputError as error:\n"
        "    print(error); sys.exit(2)\n"
    )
    assert resource.RLIMIT_FSIZE  # the file-size limit stands in for a full disk
    result = subprocess.run([sys.executable, "-c", script, str(target)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"cannot write {target}" in result.stdout and "too large" in result.stdout
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_holds_output_lock_for_the_whole_call(tmp_path):
    from dcrmodel.atomic import _HELD, holdsOutputLock

    seen = []

    @holdsOutputLock("out")
    def write(data, out="default-out", overwrite=False):
        """Write things."""
        seen.append(dict(_HELD))
        return data

    assert write.__name__ == "write" and write.__doc__ == "Write things."
    assert write(1, tmp_path / "a") == 1
    assert list(seen[-1]) == [str((tmp_path / "a").absolute())]
    assert write(2, out=str(tmp_path / "b")) == 2
    assert list(seen[-1]) == [str((tmp_path / "b").absolute())]
    assert _HELD == {} and sorted(p.name for p in tmp_path.iterdir()) == []
    write(3, None)  # not a path: passed on unlocked, for the function's own checks
    assert seen[-1] == {}
    with pytest.raises(TypeError):
        write()
    with pytest.raises(TypeError, match="has no parameter 'output'"):
        holdsOutputLock("output")(write)


def test_a_failed_run_leaves_no_folders_made_for_its_lock(tmp_path):
    from dcrmodel.atomic import outputLock

    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), outputLock(target):
        assert (tmp_path / "a" / "b").is_dir()
        raise RuntimeError("bad input")
    assert list(tmp_path.iterdir()) == []
    with atomicDirectory(target) as tmp:
        (tmp / "x").write_text("1")
    assert (target / "x").read_text() == "1"  # kept when the output was written


def test_a_short_write_without_errno_is_a_one_line_error(tmp_path):
    from dcrmodel.errors import DcrOutputError

    target = tmp_path / "out.fits"
    target.write_bytes(b"old")
    # what astropy raises when numpy's tofile hits a full disk or a file-size limit
    with pytest.raises(DcrOutputError, match=r"cannot write .*out.fits: the disk is full or "
                       r"a file-size limit was reached \(8649 requested and 1830 written\)"):
        with atomicPath(target):
            raise OSError("8649 requested and 1830 written")
    with pytest.raises(DcrOutputError, match="cannot write .*model: the disk is full"):
        with atomicDirectory(tmp_path / "model"):
            raise OSError("Not enough space on disk: requested 9, available 1. "
                          "9 requested and 1 written")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.fits"]
    with pytest.raises(FileNotFoundError), atomicPath(target):  # not an error of writing
        raise FileNotFoundError(2, "No such file or directory", "input.fits")


def test_an_error_of_a_nested_writer_names_the_output_not_its_temporary_path(tmp_path):
    import errno
    import re

    from dcrmodel.errors import DcrOutputError

    final = tmp_path / "model"
    with pytest.raises(DcrOutputError, match=re.escape(
            f"cannot write {final}: File too large [path='{final}']")):
        with atomicDirectory(final) as tmp, atomicPath(tmp / "a.fits"):
            raise OSError(errno.EFBIG, "File too large")
    with pytest.raises(DcrOutputError, match="another dcrmodel run|holds other"):  # as it is
        with atomicDirectory(final):
            raise DcrOutputError("the output folder x already holds other files", path="x")
    assert list(tmp_path.iterdir()) == []


def test_the_lock_is_one_for_every_spelling_of_the_output(tmp_path, monkeypatch):
    from dcrmodel.atomic import outputLock

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    with outputLock(tmp_path / "real" / "m"), outputLock("link/m"), outputLock("real/m"):
        pass  # nested in one process: no wait for itself
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == []
