import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lsst.pipe.base")

from lsst.daf.butler import Butler  # noqa: E402

from dcrmodel import DcrModel, readDcrModel  # noqa: E402
from dcrmodel.cli.main import main  # noqa: E402
from dcrmodel.pipeline import PIPELINE_PATH  # noqa: E402
from dcrmodel.pipeline.bps import BPS_SITE_PATH  # noqa: E402
from helpers.rubin import PATCH, simulateField  # noqa: E402


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return simulateField(tmp_path_factory.mktemp("cli"))


def test_init_ingest_pipeline(field, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert main(["butler", "init", str(repo), "--bands", "g", "r", "--subfilters", "3"]) == 0
    assert "created the repository" in capsys.readouterr().out
    assert main(["butler", "ingest", str(repo), *map(str, field.training), "--coadd",
                 str(field.coadd), "--run", "in"]) == 0
    out = capsys.readouterr().out
    assert f"{len(field.training)} dcrWarp" in out and "1 dcrInputCoadd" in out
    assert main(["butler", "pipeline"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == Path(str(PIPELINE_PATH)) and path.is_file()
    assert "dcrAssembleCoadd:" in path.read_text() and "dcrTemplate:" in path.read_text()
    butler = Butler.from_config(str(repo), collections="in")
    # copied into the repository
    uri = butler.getURI("dcrInputCoadd", **PATCH)
    assert Path(uri.ospath).is_relative_to(repo)
    registered = {t.name for t in butler.registry.queryDatasetTypes()}
    assert {"dcrAssembleCoadd_metadata", "dcrTemplate_log", "packages"} <= registered


def test_ingest_a_model_folder(field, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["assemble", *map(str, field.training), "--coadd", str(field.coadd), "--out",
                 str(model), "-q"]) == 0
    repo = tmp_path / "repo"
    assert main(["butler", "init", str(repo), "-q"]) == 0
    # a model folder (dcrmodel assemble's output) stands for its subfilter files
    assert main(["butler", "ingest", str(repo), str(model), "--run", "models",
                 "--transfer", "direct", "-q"]) == 0
    butler = Butler.from_config(str(repo), collections="models")
    loaded = DcrModel.fromDataRef(butler, numSubfilters=3, dataId=PATCH)
    expected = readDcrModel(model)
    for ours, theirs in zip(loaded, expected, strict=True):
        np.testing.assert_array_equal(ours.array, theirs.array)


def test_bad_repository_paths(field, tmp_path, capsys):
    assert main(["butler", "ingest", str(tmp_path / "nowhere"), str(field.training[0]),
                 "--run", "in"]) == 2
    assert "dcrmodel butler init" in capsys.readouterr().err
    Butler.makeRepo(tmp_path / "plain")
    assert main(["butler", "ingest", str(tmp_path / "plain"), str(field.training[0]),
                 "--run", "in"]) == 2
    assert "does not know dcrmodel's storage classes" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("DCRMODEL_TEST_BPS"),
                    reason="a BPS submission takes about 35 s; set DCRMODEL_TEST_BPS=1")
def test_bps_with_parsl_on_this_machine(field, tmp_path):
    repo = tmp_path / "repo"
    assert main(["butler", "init", str(repo), "-q"]) == 0
    assert main(["butler", "ingest", str(repo), *map(str, field.training), "--coadd",
                 str(field.coadd), "--run", "in", "-q"]) == 0
    submit = tmp_path / "submit.yaml"
    submit.write_text(
        f"includeConfigs:\n  - {BPS_SITE_PATH}\n"
        f"pipelineYaml: \"{PIPELINE_PATH}#dcrModel\"\n"
        f"operator: test\npayload:\n  payloadName: dcrModel\n  butlerConfig: {repo}\n"
        f"  inCollection: in\n  dataQuery: \"\"\n"
    )
    prefix = sys.prefix
    path = os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                            os.environ.get("PYTHONPATH", "")])
    # BPS puts its submit folder under ${PWD}, which a child inherits: point it here
    env = dict(os.environ, CTRL_MPEXEC_DIR=prefix, DAF_BUTLER_DIR=prefix, PYTHONPATH=path,
               PWD=str(tmp_path))
    bps = Path(sys.executable).with_name("bps")
    done = subprocess.run([str(bps), "submit", str(submit)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    butler = Butler.from_config(str(repo), collections="u/test/dcrModel")
    assert len(butler.query_datasets("dcrCoadd", explain=False)) == 3


def test_ingest_grid_is_checked_before_any_work(field, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert main(["butler", "init", str(repo), "--bands", "g", "-q"]) == 0
    capsys.readouterr()
    assert main(["butler", "ingest", str(repo), str(field.training[0]), "--grid", "1,2,3",
                 "--run", "in"]) == 2
    assert "RA,DEC,WIDTH,HEIGHT,SCALE" in capsys.readouterr().err
    assert main(["butler", "ingest", str(repo), str(field.training[0]), "--grid",
                 str(field.coadd), "--coadd", str(field.coadd), "--run", "in"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    butler = Butler.from_config(str(repo))
    assert not butler.query_datasets("dcrVisitImage", collections="*", find_first=False,
                                     explain=False)
