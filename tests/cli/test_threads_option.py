"""The ``--threads N`` option of the commands that solve and make templates."""

from __future__ import annotations

import pytest

from dcrmodel.cli.main import main


@pytest.mark.parametrize("command", ["assemble", "assemble-patches", "template", "diff"])
def test_threads_option_is_checked_before_any_work(command, tmp_path, capsys):
    missing = str(tmp_path / "missing.fits")
    arguments = {
        "assemble": [missing, "--out", str(tmp_path / "m")],
        "assemble-patches": [str(tmp_path / "plan.toml")],
        "template": [str(tmp_path / "model"), missing, "--out", str(tmp_path / "t.fits")],
        "diff": [str(tmp_path / "model"), missing, "--out", str(tmp_path / "d.fits")],
    }[command]
    assert main([command, *arguments, "--threads", "0"]) == 2
    error = capsys.readouterr().err
    assert "threads must be a whole number of threads >= 1" in error
    assert error.count("\n") == 1
    assert main([command, *arguments, "--threads", "1.5"]) == 2
    assert "invalid int value: '1.5'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
