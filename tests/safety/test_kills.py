"""SIGKILL during an assembly into an existing model folder.

A forked child runs `assembleFromFiles` over an earlier model and is killed, by itself at a
chosen point of its writing or by the test at several delays into the run. After every kill
a reader finds the complete old model or the complete new one (where the file system cannot
exchange two folders in one step, the documented window between two renames leaves the old
model hidden beside the path, and the next run puts it back); the next run on the output
writes the new model and leaves nothing hidden behind.
"""

import json
import os
import shutil
import signal
import time
import types

import pytest

from dcrmodel.assemble import DcrAssembleConfig, assembleFromFiles
from dcrmodel.errors import DcrFitsError
from dcrmodel.fits import DcrModelDataRef, readDcrModel
from helpers.safety import MODEL_FILES, hidden, runChild, snapshot, tinyField

#: The new run's settings differ from the old model's, so that the two can be told apart.
NEW = DcrAssembleConfig(doAirmassWeight=True)


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _beforeWriting():
    import dcrmodel.assemble.task as task

    task.writeResults = lambda *args, **kwargs: _die()


def _afterTwoFiles():
    from astropy.io import fits

    original, count = fits.HDUList.writeto, [0]

    def writeto(self, *args, **kwargs):
        original(self, *args, **kwargs)
        count[0] += 1
        if count[0] == 2:
            _die()

    fits.HDUList.writeto = writeto


def _beforeTheExchange():
    import dcrmodel.atomic as atomic

    atomic.exchangePaths = lambda first, second: _die()


def _afterTheExchange():
    import dcrmodel.atomic as atomic

    original = atomic.exchangePaths

    def exchange(first, second):
        original(first, second)
        _die()

    atomic.exchangePaths = exchange


def _whileTheOldIsRemoved():
    import dcrmodel.atomic as atomic

    def rmtree(path, *args, **kwargs):
        names = sorted(os.listdir(path)) if os.path.isdir(path) else []
        if "summary.json" in names:  # the old model, swapped out
            os.unlink(os.path.join(path, names[0]))
            _die()
        shutil.rmtree(path, *args, **kwargs)

    atomic.shutil = types.SimpleNamespace(rmtree=rmtree)


def _beforeTheLockIsReleased():
    import dcrmodel.atomic as atomic

    real = os

    def unlink(path, *args, **kwargs):
        if str(path).endswith("/.m.lock"):  # the output's lock, not a nested writer's
            _die()
        real.unlink(path, *args, **kwargs)

    atomic.os = types.SimpleNamespace(**{name: getattr(real, name) for name in dir(real)
                                         if not name.startswith("__")})
    atomic.os.unlink = unlink


def _betweenTwoRenames():
    import dcrmodel.atomic as atomic

    atomic.exchangePaths = lambda first, second: False  # a file system without exchange
    original = os.replace

    def replace(source, destination):
        original(source, destination)
        if str(destination).endswith(".old"):
            _die()

    os.replace = replace


POINTS = {
    "before writing": _beforeWriting,
    "after two files of the new model": _afterTwoFiles,
    "just before the exchange": _beforeTheExchange,
    "just after the exchange": _afterTheExchange,
    "while the old model is removed": _whileTheOldIsRemoved,
    "before the lock is released": _beforeTheLockIsReleased,
    "between two renames (no exchange)": _betweenTwoRenames,
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    field = tinyField(root)
    reference = root / "new"
    tic = time.perf_counter()
    assembleFromFiles(field.training, reference, config=NEW)
    seconds = time.perf_counter() - tic
    old, new = snapshot(field.model), snapshot(reference)
    assert _fits(old) != _fits(new)
    return field, old, new, seconds


def _fits(files):
    return {name: data for name, data in files.items() if name.endswith(".fits")}


def _state(out, old, new):
    files = snapshot(out)
    if files == old:
        return "old"
    if sorted(files) == MODEL_FILES and _fits(files) == _fits(new):
        json.loads(files["summary.json"])
        return "new"
    return f"neither: {sorted(files)}"


def _killed(setup, tmp_path, prepare=None, delay=None):
    field, old, new, _ = setup
    out = tmp_path / "m"
    shutil.copytree(field.model, out)

    def child(gate):
        if prepare is not None:
            prepare()
        assembleFromFiles(field.training, out, config=NEW, overwrite=True)
        if prepare is not None:
            return 3  # the chosen point was never reached

    process = runChild(child)
    if delay is not None:
        time.sleep(delay)
        process.kill()
    code, err = process.wait()
    return out, code, err


def _rerun(setup, out):
    field, old, new, _ = setup
    assembleFromFiles(field.training, out, config=NEW, overwrite=True)
    assert _state(out, old, new) == "new"
    assert hidden(out.parent) == []


@pytest.mark.parametrize("point", list(POINTS))
def test_a_kill_at_a_chosen_point(setup, tmp_path, point):
    field, old, new, _ = setup
    out, code, err = _killed(setup, tmp_path, POINTS[point])
    assert code == -signal.SIGKILL, err
    state = _state(out, old, new)
    if point.startswith("between two renames"):
        # the window of a file system without exchange: the old model waits hidden
        assert state == "neither: []" and not out.exists()
        (waiting,) = [n for n in hidden(tmp_path) if n.endswith(".old")]
        assert snapshot(tmp_path / waiting) == old
        with pytest.raises(FileNotFoundError, match=f"no such DCR model directory: {out}; a "
                           f"run was killed .* previous model waits beside it in {waiting}"):
            readDcrModel(out)
        with pytest.raises(DcrFitsError, match=f"the folder does not exist; .* {waiting}"):
            DcrModelDataRef(out)
    else:
        assert state == ("old" if point in ("before writing", "after two files of the new "
                                            "model", "just before the exchange") else "new")
    _rerun(setup, out)


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.9, 1.2])
def test_a_kill_at_a_time_into_the_run(setup, tmp_path, fraction):
    field, old, new, seconds = setup
    out, code, err = _killed(setup, tmp_path, delay=fraction * seconds)
    assert code in (0, -signal.SIGKILL), err
    assert _state(out, old, new) in ("old", "new")
    _rerun(setup, out)
