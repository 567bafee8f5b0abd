import json

import pytest

from dcrmodel.cli.demo import runDemo, summaryTable
from dcrmodel.errors import DcrOutputError, DcrValueError

SMALL = {"size": 128, "numTraining": 8, "numTest": 1}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    return runDemo(out, fields=["constant-seeing"], solvers=["direct"],
                   simulationOverrides=SMALL)


def test_demo_writes_report_and_figures(demo):
    assert demo.summaryMarkdown.read_text().startswith("# dcrmodel demo")
    names = sorted(p.name for p in demo.figures)
    assert names[0].startswith("difference-visit") and "residual-by-colour.png" in names
    for figure in demo.figures:
        assert figure.read_bytes()[:4] == b"\x89PNG"
    marker = json.loads((demo.outDir / "demo-summary.json").read_text())
    assert marker["kind"] == "dcrmodel-demo"
    assert (demo.outDir / "constant-seeing" / "model-direct" / "dcrCoadd_0.fits").exists()


def test_demo_dcr_template_beats_plain_coadd(demo):
    rows = {row["template"]: row for row in demo.rows}
    assert rows["DCR direct"]["residual"] < 0.5 * rows["plain coadd"]["residual"]
    assert rows["DCR direct"]["false det."] <= rows["plain coadd"]["false det."]
    text = summaryTable(demo)
    assert "DCR direct" in text and "plain coadd" in text


def test_demo_refuses_foreign_or_existing_folder(tmp_path, demo):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(DcrOutputError, match="not a dcrmodel demo"):
        runDemo(foreign, fields=["constant-seeing"], solvers=["direct"])
    assert (foreign / "thesis.tex").read_text() == "keep me"
    with pytest.raises(DcrOutputError, match="--overwrite"):
        runDemo(demo.outDir, fields=["constant-seeing"])


def test_demo_rejects_unknown_names(tmp_path):
    with pytest.raises(DcrValueError, match="demo field"):
        runDemo(tmp_path / "x", fields=["cloudy"])
    with pytest.raises(DcrValueError, match="solver"):
        runDemo(tmp_path / "x", solvers=["magic"])
    assert not (tmp_path / "x").exists()


def test_demo_reports_progress(tmp_path):
    calls = []
    runDemo(tmp_path / "p", fields=["constant-seeing"], solvers=["direct"],
            simulationOverrides={"size": 96, "numTraining": 6, "numTest": 1},
            progress=lambda e: calls.append((e["message"], e["done"], e["total"])))
    assert calls and all(isinstance(m, str) and 0 <= d <= t for m, d, t in calls)
    assert any("subregion" in m for m, _, _ in calls)


def test_demo_detector_frame_field(tmp_path):
    # Visits on their own rotated, dithered detector grids: the model on a patch, each
    # template warped back onto the held-out visit and measured where enough visits saw.
    result = runDemo(tmp_path / "d", fields=["detector-frames"], solvers=["direct"],
                     simulationOverrides={"size": 128, "numTraining": 8, "numTest": 1})
    rows = {row["template"]: row for row in result.rows}
    assert set(rows) == {"plain coadd", "DCR direct"}
    assert rows["DCR direct"]["residual"] < rows["plain coadd"]["residual"]
    summary = (tmp_path / "d" / "summary.md").read_text()
    assert "detector-frame field" in summary and "difference-visit" in summary
