"""Tests of the Dask path with visits on their own detector grids (dcrmodel.distributed).

Each subregion's task reads and warps its own cutouts of the visit files, as a serial run
does: the cluster's model must be the serial one's, bit for bit. Plans name a patch's grid
with ``grid = "..."``.
"""

import json

import numpy as np
import pytest

from dcrmodel.assemble.config import DcrAssembleConfig
from dcrmodel.assemble.output import SUMMARY_NAME
from dcrmodel.assemble.task import assembleFromFiles
from dcrmodel.distributed.cluster import clusterClient
from dcrmodel.distributed.plan import PatchPlan, loadPlan
from dcrmodel.distributed.runner import assembleDistributed, assemblePatches
from dcrmodel.distributed.scratch import scratchManifest
from dcrmodel.errors import DcrConfigError, DcrValueError
from dcrmodel.fits import readDcrModel, writeExposure
from helpers.survey import SurveyField

pytest.importorskip("distributed")

CONFIG = DcrAssembleConfig(subregionSize=(48, 48))


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    field = SurveyField(hourAngles=(-3.4, -2.0, -0.7, 0.6, 2.0, 3.3), seed=8)
    folder = tmp_path_factory.mktemp("detectors")
    paths = []
    for i, exposure in enumerate(field.exposures):
        paths.append(folder / f"detector{i}.fits")
        writeExposure(exposure, paths[-1])
    sky = field.patchWcs.pixel_to_world(*field.patchBox.center)
    spec = f"{float(sky.ra.deg)!r},{float(sky.dec.deg)!r},96,96,0.2"
    return field, paths, spec


@pytest.fixture(scope="module")
def serial(survey, tmp_path_factory):
    _, paths, spec = survey
    out = tmp_path_factory.mktemp("serial") / "model"
    return assembleFromFiles(paths, out, config=CONFIG, grid=spec), out


def _arrays(model):
    return np.array([image.array for image in model])


def test_cluster_warps_like_the_serial_run(survey, serial, tmp_path):
    _, paths, spec = survey
    serialResult, _ = serial
    assert serialResult.summary["grid"] == "grid"
    assert all(v["warped"] for v in serialResult.summary["visits"])
    with clusterClient(workers=2) as client:
        result = assembleDistributed(paths, tmp_path / "model", config=CONFIG, client=client,
                                     grid=spec)
    assert len(result.summary["subregions"]) == 4
    np.testing.assert_array_equal(_arrays(result.dcrModel), _arrays(serialResult.dcrModel))
    for a, b in zip(result.nImages, serialResult.nImages, strict=True):
        np.testing.assert_array_equal(a.array, b.array)
    written = readDcrModel(tmp_path / "model")
    np.testing.assert_array_equal(written.mask.array, serialResult.dcrModel.mask.array)


def test_plan_with_a_grid_per_patch(survey, serial, tmp_path):
    _, paths, spec = survey
    serialResult, _ = serial
    plan = tmp_path / "plan.toml"
    plan.write_text(
        "[config]\nsubregionSize = [48, 48]\n\n[[patch]]\nname = \"p1\"\n"
        f"visits = {json.dumps([str(p) for p in paths])}\ngrid = \"{spec}\"\n"
        "out = \"models/p1\"\n"
    )
    loaded = loadPlan(plan)
    assert loaded.patches[0].grid == spec
    assert scratchManifest(loaded.patches[0])["grid"] == spec
    rows = assemblePatches(loaded)
    assert rows[0]["status"] == "done", rows[0]["error"]
    model = readDcrModel(tmp_path / "models" / "p1")
    np.testing.assert_array_equal(_arrays(model), _arrays(readDcrModel(serial[1])))
    summary = json.loads((tmp_path / "models" / "p1" / SUMMARY_NAME).read_text())
    assert summary["grid"] == "grid"


def test_plan_grid_file_relative_to_the_plan(survey, tmp_path):
    field, paths, _ = survey
    grid = tmp_path / "grids" / "patch.fits"
    grid.parent.mkdir()
    writeExposure(field.onGrid[0], grid)
    plan = PatchPlan.fromDict(
        {"patch": [{"visits": [str(p) for p in paths], "grid": "grids/patch.fits",
                    "out": "m"}]}, base=tmp_path)
    assert plan.patches[0].grid == str(grid)
    plan.validate()


@pytest.mark.parametrize(("grid", "error", "match"), [
    ("150,-30,100", DcrValueError, r"patch 'p1': grid '150,-30,100': .*RA,DEC,WIDTH"),
    ("grids/none.fits", DcrValueError, r"patch 'p1': grid .*none\.fits.*no such grid file"),
    (7, DcrConfigError, "grid must be the name of an exposure file"),
])
def test_plan_with_a_bad_grid(survey, tmp_path, grid, error, match):
    _, paths, _ = survey
    with pytest.raises(error, match=match):
        plan = PatchPlan.fromDict(
            {"patch": [{"name": "p1", "visits": [str(p) for p in paths], "grid": grid,
                        "out": "m"}]}, base=tmp_path)
        plan.validate()
    assert not (tmp_path / "m").exists()
