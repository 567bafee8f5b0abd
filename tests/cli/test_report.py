import numpy as np
import pytest

from dcrmodel.cli.report import (
    formatMarkdownTable,
    formatTextTable,
    plotConvergence,
    plotDifferenceComparison,
    plotResidualByColour,
)
from dcrmodel.errors import DcrShapeError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_difference_comparison_writes_png(tmp_path):
    rng = np.random.default_rng(1)
    science = rng.normal(size=(32, 32))
    path = plotDifferenceComparison(science, science * 2, science / 2, tmp_path / "d.png",
                                    title="visit 3")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]


def test_difference_comparison_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(DcrShapeError, match="one shape"):
        plotDifferenceComparison(np.zeros((4, 4)), np.zeros((4, 5)), np.zeros((4, 4)),
                                 tmp_path / "d.png")
    assert not (tmp_path / "d.png").exists()


def test_convergence_and_residual_plots(tmp_path):
    plotConvergence({"0,0": [1.0, 0.5, 0.3], "0,1": [1.0, 0.4]}, tmp_path / "c.png",
                    gains=[0.5, 0.6])
    plotResidualByColour({"plain coadd": {"blue stars": 0.3, "galaxies": 0.1},
                          "DCR model": {"blue stars": 0.03, "galaxies": 0.02}},
                         tmp_path / "r.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "r.png").read_bytes()[:8] == PNG_MAGIC


def test_tables():
    rows = [{"visit": 3, "airmass": 1.5234, "ratio": float("nan")}]
    md = formatMarkdownTable(rows, ["visit", "airmass", "ratio"])
    assert md.splitlines() == ["| visit | airmass | ratio |", "|---|---|---|", "| 3 | 1.52 | n/a |"]
    text = formatTextTable(rows, ["visit", "airmass"])
    assert text.splitlines()[0] == "visit  airmass"
    assert text.splitlines()[2] == "    3     1.52"
