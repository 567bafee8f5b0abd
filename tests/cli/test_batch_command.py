"""Batches of ``dcrmodel template`` and ``dcrmodel diff`` (``--out-dir``): one process, the
same files as one command per exposure, every refusal before any work."""

import json
import shutil
import time
import warnings

import pytest

from dcrmodel.atomic import outputLock
from dcrmodel.cli.main import main
from helpers.safety import runChild, waitAtGate


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A 64x64 field: a model of 4 training visits and 3 held-out visits (3 airmasses)."""
    from dcrmodel import SimulationConfig, assembleFromFiles, runSimulation

    root = tmp_path_factory.mktemp("batch")
    config = SimulationConfig(size=64, numTraining=4, numTest=3, nights=1,
                              transientsPerTestVisit=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = runSimulation(root / "field", config, seed=5)
        training = [manifest.path(v["file"]) for v in manifest.visits("training")]
        tests = [manifest.path(v["file"]) for v in manifest.visits("test")]
        assembleFromFiles(training, root / "model")
    return root, root / "model", tests


def _run(argv):
    return main([*map(str, argv), "-q"])


@pytest.mark.parametrize("command", ["template", "diff"])
def test_a_batch_writes_the_files_of_one_command_per_exposure(field, tmp_path, command):
    root, model, visits = field
    assert _run([command, model, *visits, "--out-dir", tmp_path / "batch"]) == 0
    names = sorted(p.name for p in (tmp_path / "batch").iterdir())
    stems = [v.stem for v in visits]
    expected = [v.name for v in visits] + ([f"{s}.json" for s in stems] if command == "diff"
                                           else [])
    assert names == sorted(expected)
    for visit in visits:
        single = tmp_path / "single" / visit.name
        assert _run([command, model, visit, "--out", single]) == 0
        batch = tmp_path / "batch" / visit.name
        assert batch.read_bytes() == single.read_bytes(), visit.name
        if command == "diff":
            assert (json.loads(batch.with_suffix(".json").read_text())
                    == json.loads(single.with_suffix(".json").read_text()))


def test_the_models_and_their_transforms_are_made_once(field, tmp_path, monkeypatch):
    from dcrmodel.fourier import FourierTemplateEngine
    from dcrmodel.model import templates

    root, model, visits = field
    read = []
    built = []
    import dcrmodel.cli.templates as clitemplates

    readDcrModel = clitemplates.readDcrModel
    monkeypatch.setattr(clitemplates, "readDcrModel",
                        lambda path: read.append(path) or readDcrModel(path))

    class Counting(FourierTemplateEngine):
        def __init__(self, *args, **kwargs):
            built.append(args[1])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(templates, "FourierTemplateEngine", Counting)
    assert _run(["template", model, *visits, "--out-dir", tmp_path / "b",
                 "--engine", "fourier"]) == 0
    assert len(read) == 1
    assert 1 <= len(built) < len(visits)  # visits of one field share the padded grid


def _refused(argv, capsys, match):
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and match in err, err
    return err


def test_refusals_before_any_work(field, tmp_path, capsys):
    root, model, visits = field
    out = tmp_path / "out"
    # two exposures of one file name
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(visits[0], other / visits[0].name)
    _refused(["template", model, visits[0], other / visits[0].name, "--out-dir", out], capsys,
             "would both be written to")
    # a missing exposure among good ones, named
    _refused(["diff", model, visits[0], tmp_path / "missing.fits", visits[1], "--out-dir",
              out], capsys, "missing.fits")
    # a damaged exposure last: refused before the first is made
    bad = tmp_path / "bad.fits"
    bad.write_bytes(visits[0].read_bytes()[:5000])
    _refused(["template", model, *visits, bad, "--out-dir", out], capsys, "bad.fits")
    # a folder after the exposures, and a first path that is not a model folder
    _refused(["template", model, visits[0], other, "--out-dir", out], capsys,
             "model folders come first")
    _refused(["template", visits[0], visits[1], "--out-dir", out], capsys,
             "is not a model folder")
    # the exposures' own folder, a model folder, a file as --out-dir
    _refused(["template", model, visits[0], "--out-dir", visits[0].parent], capsys,
             "is an input exposure")
    _refused(["template", model, visits[0], "--out-dir", model], capsys, "is a model folder")
    _refused(["template", model, visits[0], "--out-dir", visits[1]], capsys, "is a file")
    assert not out.exists()
    # --out and --out-dir together, or neither: a usage error
    assert _run(["template", model, visits[0], "--out", tmp_path / "t.fits", "--out-dir",
                 out]) == 2
    assert _run(["template", model, visits[0]]) == 2
    assert not out.exists() and not (tmp_path / "t.fits").exists()


def test_existing_outputs_need_overwrite(field, tmp_path, capsys):
    root, model, visits = field
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{visits[1].stem}.json").write_text("{}")
    _refused(["diff", model, *visits, "--out-dir", out], capsys,
             f"{visits[1].stem}.json exists without its difference image")
    assert sorted(p.name for p in out.iterdir()) == [f"{visits[1].stem}.json"]
    assert _run(["diff", model, *visits, "--out-dir", out, "--overwrite"]) == 0
    assert json.loads((out / f"{visits[1].stem}.json").read_text())["exposure"] == str(visits[1])


def test_a_second_run_on_the_same_folder_fails_at_once(field, tmp_path, capsys):
    root, model, visits = field
    out = tmp_path / "out"

    def child(gate):
        with outputLock(out):
            (gate.parent / "ready").write_text("")
            waitAtGate(gate)

    holder = runChild(child)
    ready = holder.gate.parent / "ready"
    for _ in range(6000):
        if ready.exists():
            break
        time.sleep(0.01)
    try:
        _refused(["template", model, *visits, "--out-dir", out], capsys,
                 "another dcrmodel run is writing")
    finally:
        holder.open()
    assert holder.wait()[0] == 0
    assert not out.exists() or list(out.iterdir()) == []
