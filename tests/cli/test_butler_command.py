"""``dcrmodel butler`` without the Rubin middleware: a one-line hint, exit status 2."""

from dcrmodel.cli import butler
from dcrmodel.cli.main import main


def test_butler_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    def missing(name):
        raise ImportError("No module named 'lsst'")

    monkeypatch.setattr(butler.importlib, "import_module", missing)
    assert main(["butler", "pipeline"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'dcrmodel[rubin]'" in err and err.count("\n") == 1


def test_butler_needs_an_action(capsys):
    assert main(["butler"]) == 2
    assert "ACTION" in capsys.readouterr().err
