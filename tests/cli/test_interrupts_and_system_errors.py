"""One line and a documented exit status, never a traceback: Ctrl-C while the command starts,
system errors (OSError) that are not dcrmodel's, outputs under a regular file, folders given
where files are wanted."""

import errno
import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dcrmodel.cli.main import main
from helpers.safety import hidden, runChild, tinyField

climain = importlib.import_module("dcrmodel.cli.main")  # the module, not the function

SRC = Path(__file__).resolve().parents[2] / "src"
#: The console script, as pip writes it for ``dcrmodel = "dcrmodel_command:main"``.
CONSOLE = "import sys\nfrom dcrmodel_command import main\nsys.exit(main())\n"


def _defaultSigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a test runner may have it ignored


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return tinyField(tmp_path_factory.mktemp("cli-errors"))


def _command(*args, prelude="", **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", prelude + CONSOLE, *map(str, args)],
        env=dict(os.environ, PYTHONPATH=str(SRC)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=_defaultSigint, **kwargs)


def test_ctrl_c_while_the_package_is_imported(tmp_path):
    # The interrupt arrives while scipy is being imported: the parser imports nothing heavy,
    # so that is when the subcommand's work is imported, and the subcommand is named.
    prelude = ("import builtins, os, signal\n"
               "_import = builtins.__import__\n"
               "def _interrupting(name, *args, **kwargs):\n"
               "    if name.startswith('scipy'):\n"
               "        builtins.__import__ = _import\n"
               "        os.kill(os.getpid(), signal.SIGINT)\n"
               "    return _import(name, *args, **kwargs)\n"
               "builtins.__import__ = _interrupting\n")
    process = _command("assemble", "a.fits", "--out", tmp_path / "m", prelude=prelude)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err == "dcrmodel assemble: interrupted\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8])
def test_ctrl_c_at_any_time_of_the_start_up(field, tmp_path, tmp_path_factory, delay):
    import time

    # The delay counts from the console script's first line: an interrupt while the
    # interpreter itself starts (before any code of ours runs) is Python's to handle.
    started = tmp_path_factory.mktemp("marker") / "started"
    prelude = f"open({str(started)!r}, 'w').close()\n"
    process = _command("assemble", *field.training, "--out", tmp_path / "m", "-q",
                       prelude=prelude)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    if process.returncode == 0:  # a fast machine: the run was over
        return
    if process.returncode == -signal.SIGINT and err == "":
        # The run was over and the interpreter was exiting (its finalisation restores the
        # default SIGINT action): the model must be whole, nothing left behind.
        assert (tmp_path / "m" / "summary.json").is_file()
        assert hidden(tmp_path) == []
        return
    if "init_import_site" in err:  # a loaded machine: Python itself was still starting
        return
    assert process.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("interrupted"), err
    assert hidden(tmp_path) == [] and not (tmp_path / "m").exists()


def test_ctrl_c_while_the_arguments_are_read(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(climain, "buildParser", interrupted)
    assert main(["assemble", "a.fits", "--out", "m"]) == 130
    assert capsys.readouterr().err == "dcrmodel: interrupted\n"


@pytest.mark.parametrize(
    "error, line",
    [
        (PermissionError(errno.EACCES, "Permission denied", "/data/visit.fits"),
         "/data/visit.fits: Permission denied"),
        (OSError(errno.EIO, "Input/output error"), "Input/output error"),
        (OSError("a device said\nno"), "a device said no"),
    ],
)
def test_system_errors_are_one_line(monkeypatch, capsys, error, line):
    def failing(args):
        raise error

    parser = climain.buildParser()
    monkeypatch.setattr(climain, "buildParser", lambda: parser)
    parser._subparsers._group_actions[0].choices["warp"].set_defaults(handler=failing)
    assert main(["warp", "a.fits", "--grid", "g.fits", "--out", "w"]) == 2
    assert capsys.readouterr().err == f"dcrmodel warp: error: {line}\n"


def _run(argv):
    return runChild(lambda gate: main(argv)).wait()


def test_outputs_under_a_regular_file(field, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    under = afile / "sub"
    commands = {
        "assemble": ["assemble", *field.training, "--out", under / "m"],
        "template": ["template", field.model, field.test, "--out", under / "t.fits"],
        "diff": ["diff", field.model, field.test, "--out", under / "d.fits"],
        "simulate": ["simulate", "--out", under / "s", "--size", "32", "--visits", "4"],
        "warp": ["warp", field.test, "--grid", field.test, "--out", under / "w"],
    }
    for name, argv in commands.items():
        code, err = _run([*map(str, argv), "-q"])
        assert code == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (name, err)
        assert lines[0].startswith(f"dcrmodel {name}: error: cannot write {under}"), lines
        assert f"{afile} is a file, not a folder" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_folders_given_where_files_are_wanted(field, tmp_path):
    folder = tmp_path / "visit.fits"
    folder.mkdir()
    training = list(map(str, field.training))
    commands = {
        "assemble": ["assemble", folder, *training, "--out", tmp_path / "m1"],
        "assemble --resume": ["assemble", folder, *training, "--out", tmp_path / "m2",
                              "--resume"],
        "assemble --coadd": ["assemble", *training, "--coadd", folder, "--out", tmp_path / "m3"],
        "template": ["template", field.model, folder, "--out", tmp_path / "t.fits"],
        "diff": ["diff", field.model, folder, "--out", tmp_path / "d.fits"],
        "warp": ["warp", folder, "--grid", field.test, "--out", tmp_path / "w"],
        "warp --grid": ["warp", field.test, "--grid", folder, "--out", tmp_path / "w"],
    }
    for name, argv in commands.items():
        code, err = _run([*map(str, argv), "-q"])
        assert code == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (name, err)
        assert f"{folder} is a folder, not " in lines[0], (name, lines[0])
        assert "not found" not in lines[0] and "no such" not in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visit.fits"]
