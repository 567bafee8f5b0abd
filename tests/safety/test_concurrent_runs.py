"""One writer per output: a second concurrent run fails at once, the first is unharmed.

Two runs are two forked processes; the first is held at a gate inside its run (after it
started, before it writes) while the second is tried, so the overlap is certain.
"""

import json
import warnings

import pytest

from dcrmodel.assemble import DcrAssembleConfig, assembleFromFiles
from dcrmodel.atomic import outputLock
from dcrmodel.cli.main import main
from dcrmodel.errors import DcrOutputError
from helpers.safety import MODEL_FILES, hidden, runChild, snapshot, tinyField, waitAtGate


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return tinyField(tmp_path_factory.mktemp("concurrent"))


def _heldAssemble(field, out, extra=()):
    """A child running ``dcrmodel assemble`` that waits at its gate before writing."""

    def child(gate):
        import dcrmodel.assemble.task as task

        original = task.writeResults

        def held(*args, **kwargs):
            (gate.parent / "ready").write_text("")
            waitAtGate(gate)
            return original(*args, **kwargs)

        task.writeResults = held
        return main(["assemble", *map(str, field.training), "--out", str(out), "-q", *extra])

    first = runChild(child)
    ready = first.gate.parent / "ready"
    for _ in range(6000):
        if ready.exists():
            break
        import time

        time.sleep(0.01)
    assert ready.exists(), first.wait()
    return first


def _cli(argv):
    """Run the command in a child; return its exit status and standard error."""
    return runChild(lambda gate: main(argv)).wait()


@pytest.mark.parametrize("overwrite", [False, True], ids=["new-output", "overwrite"])
def test_second_assemble_fails_at_once_first_succeeds_third_works(field, tmp_path, overwrite):
    out = tmp_path / "m"
    extra = ["--overwrite"] if overwrite else []
    if overwrite:
        assembleFromFiles(field.training, out, config=DcrAssembleConfig(doAirmassWeight=True))
    before = snapshot(out)
    first = _heldAssemble(field, out, extra)
    try:
        code, err = _cli(["assemble", *map(str, field.training), "--out", str(out), "-q",
                          *extra])
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "another dcrmodel run is writing" in lines[0] and str(out) in lines[0]
        assert snapshot(out) == before  # the second run wrote nothing
    finally:
        first.open()
    code, err = first.wait()
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == MODEL_FILES
    assert snapshot(out) != before
    assert hidden(tmp_path) == []
    # a third run, after both, works (and needs --overwrite, the model being there)
    code, err = _cli(["assemble", *map(str, field.training), "--out", str(out), "-q"])
    assert code == 2 and "--overwrite" in err
    code, err = _cli(["assemble", *map(str, field.training), "--out", str(out), "-q",
                      "--overwrite"])
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == MODEL_FILES
    assert hidden(tmp_path) == []


def test_assemble_with_resume_fails_at_once_beside_a_running_assemble(field, tmp_path):
    out = tmp_path / "m"
    first = _heldAssemble(field, out)
    try:
        code, err = _cli(["assemble", *map(str, field.training), "--out", str(out), "-q",
                          "--resume"])
        assert code == 2 and "another dcrmodel run is writing" in err, err
        assert hidden(tmp_path) == [".m.lock"]  # the first run's lock; no scratch folder
    finally:
        first.open()
    assert first.wait()[0] == 0
    assert hidden(tmp_path) == []


def _holdLock(target):
    """A child holding the output lock of ``target`` until its gate opens."""

    def child(gate):
        with outputLock(target):
            (gate.parent / "ready").write_text("")
            waitAtGate(gate)

    holder = runChild(child)
    ready = holder.gate.parent / "ready"
    import time

    for _ in range(6000):
        if ready.exists():
            break
        time.sleep(0.01)
    assert ready.exists(), holder.wait()
    return holder


def _writers(field):
    from dcrmodel import SimulationConfig, runSimulation, writeDcrModel, writeResults
    from dcrmodel.cli.demo import runDemo
    from dcrmodel.distributed import assembleDistributed
    from dcrmodel.fits import readDcrModel

    small = SimulationConfig(size=32, numTraining=3, numTest=1, nights=1)
    model = readDcrModel(field.model)

    def result():
        from dcrmodel.assemble import DcrAssembleCoadd

        return DcrAssembleCoadd().run(field.training)

    return {
        "assembleFromFiles": lambda out: assembleFromFiles(field.training, out),
        "assembleDistributed --resume": lambda out: assembleDistributed(
            field.training, out, resume=True),
        "runSimulation": lambda out: runSimulation(out, small),
        "runDemo": lambda out: runDemo(out, fields=["constant-seeing"], solvers=["direct"]),
        "writeDcrModel": lambda out: writeDcrModel(model, out),
        "writeResults": lambda out: writeResults(result(), out),
    }


def test_every_writer_refuses_an_output_another_process_writes(field, tmp_path):
    writers = _writers(field)
    for name, write in writers.items():
        out = tmp_path / name.split()[0]
        holder = _holdLock(out)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(DcrOutputError, match="another dcrmodel run is writing"):
                    write(out)
            assert not out.exists(), name  # refused before any work
        finally:
            holder.open()
        assert holder.wait()[0] == 0
        assert hidden(tmp_path) == [], name


def test_assemble_patches_refuses_a_plan_whose_output_is_being_written(field, tmp_path):
    out = tmp_path / "p1"
    plan = tmp_path / "plan.toml"
    plan.write_text(f"[[patch]]\nname = 'p1'\nvisits = {json.dumps(list(map(str, field.training)))}"
                    f"\nout = '{out}'\n")
    holder = _holdLock(out)
    try:
        code, err = _cli(["assemble-patches", str(plan), "--resume", "-q"])
    finally:
        holder.open()
    holder.wait()
    assert code == 2 and "another dcrmodel run is writing" in err, err
    assert not out.exists()
    assert hidden(tmp_path) == []  # refused before its scratch folder was made


def test_every_command_refuses_an_output_another_run_writes(field, tmp_path):
    # before: two template (or diff, warp) runs on one new --out both passed the check for
    # an existing output, and the later silently replaced the earlier without --overwrite
    commands = {
        "template": lambda out: ["template", field.model, field.test, "--out", out],
        "diff": lambda out: ["diff", field.model, field.test, "--out", out],
        "warp": lambda out: ["warp", field.test, "--grid", field.test, "--out", out],
        "simulate": lambda out: ["simulate", "--out", out, "--size", "32", "--visits", "4"],
    }
    # the first step of each command's work, which must not be reached
    work = {"template": ("dcrmodel.cli.templates", "readDcrModel"),
            "diff": ("dcrmodel.cli.templates", "readDcrModel"),
            "warp": ("dcrmodel.cli.commands", "readExposure"),
            "simulate": ("dcrmodel.simulate.field", "_Simulation")}

    def refused(name, argv):
        def child(gate):
            import importlib

            def started(*args, **kwargs):
                raise AssertionError(f"{name} started its work")

            setattr(importlib.import_module(work[name][0]), work[name][1], started)
            return main(argv)

        return runChild(child).wait()

    for name, argv in commands.items():
        out = tmp_path / f"{name}.out"
        holder = _holdLock(out)
        try:
            code, err = refused(name, [*map(str, argv(out)), "-q"])
        finally:
            holder.open()
        assert holder.wait()[0] == 0
        assert code == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"dcrmodel {name}: error: another dcrmodel run is writing " \
            f"{out}" in lines[0], (name, err)
        assert sorted(p.name for p in tmp_path.iterdir()) == [], name
