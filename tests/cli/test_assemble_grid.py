"""Tests of ``dcrmodel assemble --grid`` and plans with a grid: visits on detector frames."""

import json

import numpy as np
import pytest

from dcrmodel.cli.main import main
from dcrmodel.fits import readDcrModel, writeExposure
from helpers.survey import SurveyField


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    field = SurveyField(hourAngles=(-3.2, -1.5, 0.2, 1.8, 3.3), seed=4)
    folder = tmp_path_factory.mktemp("detectors")
    paths = []
    for i, exposure in enumerate(field.exposures):
        paths.append(folder / f"detector{i}.fits")
        writeExposure(exposure, paths[-1])
    grid = folder / "patch.fits"
    writeExposure(field.onGrid[0], grid)
    sky = field.patchWcs.pixel_to_world(*field.patchBox.center)
    spec = f"{float(sky.ra.deg)!r},{float(sky.dec.deg)!r},96,96,0.2"
    return field, [str(p) for p in paths], spec, str(grid)


def test_assemble_with_a_grid_text_or_file(detectors, tmp_path, capsys):
    field, paths, spec, gridFile = detectors
    assert main(["assemble", *paths, "--grid", spec, "--out", str(tmp_path / "a")]) == 0
    assert "(5 warped onto the grid)" in capsys.readouterr().out
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["grid"] == "grid" and all(v["warped"] for v in summary["visits"])
    assert main(["assemble", *paths, "--grid", gridFile, "--out", str(tmp_path / "b"),
                 "-q"]) == 0
    a, b = readDcrModel(tmp_path / "a"), readDcrModel(tmp_path / "b")
    assert a.bbox == b.bbox == field.patchBox
    np.testing.assert_array_equal(np.array([i.array for i in a]), np.array([i.array for i in b]))


@pytest.mark.parametrize(("grid", "message"), [
    ("150,-30,100", "RA,DEC,WIDTH,HEIGHT,SCALE"),
    ("nowhere.fits", "no such grid file"),
])
def test_malformed_grid_is_refused_before_work(detectors, tmp_path, capsys, grid, message):
    _, paths, _, _ = detectors
    assert main(["assemble", *paths, "--grid", grid, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_detector_frames_without_a_grid(detectors, tmp_path, capsys):
    _, paths, _, _ = detectors
    assert main(["assemble", *paths, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "is not on the model's pixel grid" in err and "--grid" in err
    assert not (tmp_path / "m").exists()


def test_assemble_patches_plan_with_a_grid(detectors, tmp_path, capsys):
    _, paths, spec, _ = detectors
    plan = tmp_path / "plan.toml"
    plan.write_text(f"[[patch]]\nname = \"p\"\nvisits = {json.dumps(paths)}\n"
                    f"grid = \"{spec}\"\nout = \"models/p\"\n")
    assert main(["assemble-patches", str(plan), "-q"]) == 0
    assert (tmp_path / "models" / "p" / "summary.json").is_file()
    bad = tmp_path / "bad.toml"
    bad.write_text(f"[[patch]]\nname = \"p\"\nvisits = {json.dumps(paths)}\n"
                   "grid = \"1,2\"\nout = \"models/q\"\n")
    assert main(["assemble-patches", str(bad)]) == 2
    assert "patch 'p': grid '1,2'" in capsys.readouterr().err
    assert not (tmp_path / "models" / "q").exists()
