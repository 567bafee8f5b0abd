"""Tests of the ``dcrmodel simulate`` command: outputs, exit codes, messages, flags."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys

import pytest

from dcrmodel.cli.main import EXIT_BAD_INPUT, EXIT_OK, ProgressBar, main

SMALL = ["--size", "64", "--visits", "5", "--nights", "1"]


def _simulate(out, *extra):
    return main(["simulate", "--out", str(out), *SMALL, *extra])


def test_simulate_writes_a_field_and_reports_it(tmp_path, capsys):
    out = tmp_path / "field"
    assert _simulate(out, "--seed", "3") == EXIT_OK
    captured = capsys.readouterr()
    assert "simulated 5 visits (4 training, 1 test" in captured.out
    assert str(out / "manifest.json") in captured.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3
    assert manifest["bbox"]["width"] == 64
    assert [v["role"] for v in manifest["visits"]].count("test") == 1
    for name in manifest["files"]:
        assert (out / name).is_file()


def test_quiet_prints_nothing(tmp_path, capsys):
    assert _simulate(tmp_path / "f", "-q") == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "field"
    assert _simulate(out, "-q") == EXIT_OK
    assert _simulate(out, "-q") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("dcrmodel simulate: error: ") and "--overwrite" in err
    assert _simulate(out, "-q", "--overwrite", "--seed", "9") == EXIT_OK
    assert json.loads((out / "manifest.json").read_text())["seed"] == 9


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--visits", "2"], "fewer than 2 training visits"),
        (["--seeing", "-0.5", "1.0"], "seeing must be positive"),
        (["--dec", "70"], "never above the horizon"),
        (["--band", "q"], "unknown band"),
        (["--effective-wavelength", "480"], "give both --effective-wavelength and --bandwidth"),
        (["--effective-wavelength", "2000", "--bandwidth", "300"],
         "outside the range of the refraction formula"),
        (["--chromatic-seeing", "3"], "chromaticSeeing must be in"),
        (["--visits", "5", "--test-visits", "9"], "--test-visits exceeds --visits"),
        (["--rotations", "30", "--sip", "0.01"], "--rotations, --sip needs --detector-frames"),
        (["--detector-frames", "--patch-scale", "0.5"], "patchScale must be in [1, 4]"),
        (["--detector-frames", "--rotations", "10", "20"], "rotations has 2 angle(s)"),
        (["--detector-frames", "--sip", "0.5"], "distortion must be within"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, extra, match):
    out = tmp_path / "field"
    assert main(["simulate", "--out", str(out), *SMALL[:2], *extra]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err
    assert not out.exists()


def test_usage_errors_and_version(capsys):
    assert main(["simulate"]) == EXIT_BAD_INPUT  # --out missing
    assert "--out" in capsys.readouterr().err
    assert main(["simulate", "--out", "x", "--visits", "zero"]) == EXIT_BAD_INPUT
    assert main([]) == EXIT_BAD_INPUT
    assert "choose a command" in capsys.readouterr().err
    assert main(["--version"]) == EXIT_OK
    assert "dcrmodel" in capsys.readouterr().out


def test_variable_and_chromatic_seeing_flags(tmp_path):
    out = tmp_path / "field"
    assert _simulate(out, "-q", "--seeing", "0.6", "1.2", "--chromatic-seeing", "-0.2",
                     "--psf", "moffat", "--no-defects", "--transients", "1") == EXIT_OK
    manifest = json.loads((out / "manifest.json").read_text())
    seeing = [v["seeing"] for v in manifest["visits"]]
    assert all(0.6 <= s <= 1.2 for s in seeing) and len(set(seeing)) == len(seeing)
    assert all(v["psf"]["alpha"] == -0.2 and v["psf"]["profile"] == "moffat"
               for v in manifest["visits"])
    assert all(v["defects"] is None for v in manifest["visits"])
    assert len(manifest["transients"]) == 1


def test_detector_frames(tmp_path, capsys):
    out = tmp_path / "field"
    assert _simulate(out, "--detector-frames", "--patch-scale", "1.25", "--rotations", "30",
                     "--offset-fraction", "0.02", "--sip", "0.001", "--no-defects") == EXIT_OK
    assert "of 64x64 detectors over a 80x80 g-band field (the patch)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["bbox"]["width"] == 80 and manifest["config"]["detectorFrames"] is True
    assert manifest["detectorFrames"]["distortion"] == 0.001
    for visit in manifest["visits"]:
        frame = visit["frame"]
        assert frame["rotation"] == 30.0 and frame["bbox"]["width"] == 64
        assert max(abs(o) for o in frame["offset"]) <= 0.02 * 64 * 0.2
        assert frame["wcs"]["CTYPE1"] == "RA---TAN-SIP"


def test_transmission_curve_file(tmp_path, capsys):
    curve = tmp_path / "gcurve.txt"
    rows = [f"{w:.1f} {math.exp(-0.5 * ((w - 480.0) / 40.0) ** 2):.6f}"
            for w in range(380, 581, 5)]
    curve.write_text("# wavelength_nm throughput\n" + "\n".join(rows) + "\n")
    out = tmp_path / "field"
    assert _simulate(out, "-q", "--bandpass", str(curve)) == EXIT_OK
    band = json.loads((out / "manifest.json").read_text())["band"]
    assert band["kind"] == "curve" and band["name"] == "gcurve"
    assert band["effectiveWavelength"] == pytest.approx(480.0, abs=0.5)
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n4 5 6\n")
    assert _simulate(tmp_path / "f2", "--bandpass", str(bad)) == EXIT_BAD_INPUT
    assert "two columns" in capsys.readouterr().err
    assert _simulate(tmp_path / "f3", "--bandpass", str(tmp_path / "none.txt")) == EXIT_BAD_INPUT
    assert "cannot read the bandpass file" in capsys.readouterr().err


def test_progress_bar_draws_only_when_enabled():
    stream = io.StringIO()
    bar = ProgressBar("simulate", stream=stream, enabled=True, width=10)
    bar({"message": "visit 1/2", "done": 1, "total": 2})
    bar({"message": "visit 2/2", "done": 2, "total": 2})
    text = stream.getvalue()
    assert "simulate |#####     | 1/2 visit 1/2" in text
    assert "|##########| 2/2 visit 2/2" in text
    assert text.endswith("\n")
    quiet = io.StringIO()
    ProgressBar("simulate", stream=quiet)({"message": "x", "done": 1, "total": 2})
    assert quiet.getvalue() == ""  # StringIO is not a terminal


def test_progress_in_a_terminal_keeps_log_lines_above_the_bar(tmp_path):
    # A real pseudo-terminal: the bar is drawn, a warning logged mid-run gets a line of
    # its own (not glued into the bar's line) and no stale characters follow a shorter
    # message.
    import pty

    script = (
        "import logging, sys, time\n"
        "from dcrmodel.cli.main import _configureLogging\n"
        "from dcrmodel.cli.progress import ProgressBar, logToBar\n"
        "log = logging.getLogger('dcrmodel')\n"
        "_configureLogging(0, False)\n"
        "bar = ProgressBar('assemble')\n"
        "with logToBar(log):\n"
        "    bar({'message': 'subregion 1, iteration 12 (a long message)',"
        " 'done': 0, 'total': 2})\n"
        "    log.warning('something to see')\n"
        "    bar({'message': 'short', 'done': 1, 'total': 2})\n"
        "    bar({'message': 'done', 'done': 2, 'total': 2})\n"
    )
    output = bytearray()

    def read(fd):
        data = os.read(fd, 4096)
        output.extend(data)
        return data

    env = dict(os.environ, COLUMNS="100")
    pid, fd = pty.fork()
    if pid == 0:  # child: the pseudo-terminal is its standard error
        os.execve(sys.executable, [sys.executable, "-c", script], env)
    try:
        while True:
            try:
                if not read(fd):
                    break
            except OSError:
                break
    finally:
        os.waitpid(pid, 0)
    text = output.decode("utf-8", "replace").replace("\r\n", "\n")
    assert "assemble |" in text and "2/2 done" in text
    lines = [line for chunk in text.split("\n") for line in chunk.split("\r")]
    warning = [line for line in lines if "something to see" in line]
    assert warning and all("|" not in line for line in warning)
    assert not any("short" in line and "long message)" in line for line in lines)


def test_the_command_runs_as_a_program_with_its_exit_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dcrmodel.cli.main", "simulate", "--out", str(tmp_path / "f"),
         "--visits", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == EXIT_BAD_INPUT
    assert "fewer than 2 training visits" in result.stderr
    assert "Traceback" not in result.stderr
