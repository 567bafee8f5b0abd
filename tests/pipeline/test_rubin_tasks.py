import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lsst.pipe.base")

from lsst.daf.butler import Butler, DatasetRef, FileDataset  # noqa: E402
from lsst.pipe.base import Pipeline  # noqa: E402
from lsst.pipe.base.simple_pipeline_executor import SimplePipelineExecutor  # noqa: E402

from dcrmodel import (  # noqa: E402
    Box,
    DcrAssembleCoadd,
    DcrAssembleConfig,
    DcrModel,
    readDcrModel,
    writeResults,
)
from dcrmodel.cli.main import main  # noqa: E402
from dcrmodel.diffim import templateForExposure  # noqa: E402
from dcrmodel.errors import DcrConfigError, DcrValueError  # noqa: E402
from dcrmodel.fits import readExposure, writeExposure  # noqa: E402
from dcrmodel.pipeline import (  # noqa: E402
    PIPELINE_PATH,
    DcrAssembleCoaddConfig,
    DcrTemplateConfig,
    DcrTemplateTask,
    assembleFields,
    ingestFiles,
    initRepository,
    registerPipelineDatasetTypes,
    subfilterExposures,
    toAssembleConfig,
)
from helpers.rubin import PATCH, makeRepository, simulateField  # noqa: E402


def execute(root, label, inputs, output, where=""):
    butler = SimplePipelineExecutor.prep_butler(str(root), inputs=inputs, output=output)
    executor = SimplePipelineExecutor.from_pipeline_filename(
        f"{PIPELINE_PATH}#{label}", butler=butler, where=where
    )
    return butler, executor.run()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    field = simulateField(root)
    repo = root / "repo"
    makeRepository(repo, field)
    butler, quanta = execute(repo, "dcrAssembleCoadd", ["in"], "model")
    assert len(quanta) == 1
    templates, quanta = execute(repo, "dcrTemplate", ["model", "in-test"], "templates")
    assert len(quanta) == len(field.training) + len(field.test)
    # The same model made from the same files, in the same order, without a butler.
    reference = DcrAssembleCoadd(DcrAssembleConfig()).run(field.training, coadd=field.coadd)
    modelDir = writeResults(reference, root / "cli-model")
    return field, repo, butler, templates, modelDir


def test_model_equals_the_assembly_of_the_same_files_bit_for_bit(built):
    field, _, butler, _, modelDir = built
    for k in range(3):
        ref = butler.find_dataset("dcrCoadd", subfilter=k, **PATCH)
        stored = Path(butler.getURI(ref).ospath)
        assert stored.read_bytes() == (modelDir / f"dcrCoadd_{k}.fits").read_bytes()
    stacked = butler.get("dcrStackedCoadd", **PATCH)
    expected = readExposure(modelDir / "stackedCoadd.fits")
    np.testing.assert_array_equal(stacked.image.array, expected.image.array)


def test_template_task_equals_the_template_command(built, tmp_path):
    field, _, _, templates, modelDir = built
    science = field.test[0]
    out = tmp_path / "template.fits"
    assert main(["template", str(modelDir), str(science), "--out", str(out), "-q"]) == 0
    visit = int(readExposure(science).visitInfo.id)
    ref = templates.find_dataset("dcrTemplate", instrument="DcrModel", visit=visit, detector=0)
    assert Path(templates.getURI(ref).ospath).read_bytes() == out.read_bytes()


def test_pipetask_run_builds_the_model(built, tmp_path):
    field, repo, butler, _, _ = built
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")]))
    pipetask = Path(sys.executable).with_name("pipetask")
    command = [str(pipetask), "run", "-b", str(repo), "-i", "in", "-o", "pipetask-out",
               "-p", f"{PIPELINE_PATH}#dcrAssembleCoadd"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = Butler.from_config(str(repo), collections="pipetask-out")
    for k in range(3):
        ours = result.get("dcrCoadd", subfilter=k, **PATCH)
        np.testing.assert_array_equal(
            ours.image.array, butler.get("dcrCoadd", subfilter=k, **PATCH).image.array
        )


def test_config_fields_mirror_DcrAssembleConfig():
    names = {f.name for f in dataclasses.fields(DcrAssembleConfig)}
    config = DcrAssembleCoaddConfig()
    assert set(assembleFields()) == names
    assert names <= set(config.toDict())
    assert toAssembleConfig(config) == DcrAssembleConfig()
    for name in names:
        assert DcrAssembleCoaddConfig._fields[name].doc  # documented
    config.dcrNumSubfilters = 4
    config.subregionSize = [64, 32]
    config.modelPsf = "2.5"
    config.badMaskPlanes = ["BAD"]
    settings = toAssembleConfig(config)
    assert settings == DcrAssembleConfig(dcrNumSubfilters=4, subregionSize=(64, 32),
                                         modelPsf=2.5, badMaskPlanes=("BAD",))
    config.solver = "nonsense"
    with pytest.raises(DcrConfigError, match="unknown solver"):
        config.validate()
    template = DcrTemplateConfig()
    template.effectiveWavelength = 480.0
    with pytest.raises(DcrConfigError, match="together"):
        template.validate()
    template.bandwidth, template.engine = 150.0, "magic"
    with pytest.raises(DcrConfigError, match="unknown engine"):
        template.validate()
    template.engine, template.warpingKernel = None, "cubic"
    with pytest.raises(DcrConfigError, match="unknown warping kernel 'cubic'"):
        template.validate()
    template.warpingKernel = "lanczos5"
    template.validate()


def test_template_task_passes_its_warping_kernel(built, monkeypatch):
    import dcrmodel.pipeline.tasks as tasks

    field, _, _, _, modelDir = built
    model = readDcrModel(modelDir)
    seen = {}

    def record(models, exposure, **options):
        seen.update(options)
        return exposure, exposure

    monkeypatch.setattr(tasks, "templateForExposure", record)
    config = DcrTemplateConfig()
    config.warpingKernel = "lanczos5"
    handles = [Handle(e, k, 0) for k, e in enumerate(subfilterExposures(model))]
    DcrTemplateTask(config=config).run(readExposure(field.test[0]), [handles])
    assert seen == {"warpingKernel": "lanczos5"}


def test_band_without_subfilter_records_fails_at_graph_generation(built, tmp_path):
    field = built[0]
    repo = tmp_path / "repo"
    butler = initRepository(repo, bands=["r"])
    registerPipelineDatasetTypes(butler)
    ingestFiles(butler, field.training, "in", coadd=field.coadd)
    with pytest.raises(DcrConfigError, match="band g has no subfilter records"):
        execute(repo, "dcrAssembleCoadd", ["in"], "out")


def test_subfilter_count_must_match_the_configuration(built):
    _, repo, _, _, _ = built
    butler = SimplePipelineExecutor.prep_butler(str(repo), inputs=["in"], output="four")
    pipeline = Pipeline.from_uri(f"{PIPELINE_PATH}#dcrAssembleCoadd")
    pipeline.addConfigOverride("dcrAssembleCoadd", "dcrNumSubfilters", 4)
    with pytest.raises(DcrConfigError, match="band g has 3 subfilter records .* 4 are needed"):
        SimplePipelineExecutor.from_pipeline(pipeline, butler=butler).run()


def test_inputs_of_two_bands_are_refused_before_the_assembly(built, tmp_path):
    field, repo, _, _, _ = built
    # a file of band r ingested as visit 1000's warp (band g in the registry)
    other = readExposure(field.training[0])
    other.filter = dataclasses.replace(other.filter, bandName="r")
    path = tmp_path / "band-r.fits"
    writeExposure(other, path)
    butler = Butler.from_config(str(repo), writeable=True)
    visit = int(other.visitInfo.id)
    dataId = butler.registry.expandDataId(instrument="DcrModel", visit=visit, **PATCH)
    datasetType = butler.get_dataset_type("dcrWarp")
    butler.registry.registerRun("swap")
    ref = DatasetRef(datasetType, dataId.subset(datasetType.dimensions), run="swap")
    butler.ingest(FileDataset(path=str(path), refs=[ref]), transfer="direct")
    with pytest.raises(DcrValueError, match=rf"other bands: visit {visit} \(r\)"):
        execute(repo, "dcrAssembleCoadd", ["swap", "in"], "mixed-bands")


class Handle:
    """A deferred handle of one patch's subfilter (dataId and get)."""

    def __init__(self, exposure, subfilter, patch):
        self.dataId = {"band": "g", "skymap": "dcrmodel", "tract": 0, "patch": patch,
                       "subfilter": subfilter}
        self.exposure = exposure

    def get(self):
        return self.exposure


def test_template_of_a_visit_over_two_patches(built):
    field, _, _, _, modelDir = built
    model = readDcrModel(modelDir)
    box = model.bbox
    half = box.width // 2
    boxes = [Box(box.minX, box.minY, half, box.height),
             Box(box.minX + half, box.minY, box.width - half, box.height)]
    patches = []
    for patch, part in enumerate(boxes):
        piece = DcrModel([image[part] for image in model], filterInfo=model.filter,
                         psf=model.psf, mask=model.mask[part], variance=model.variance[part],
                         photoCalib=model.photoCalib, wcs=model.wcs)
        patches.append([Handle(e, k, patch) for k, e in enumerate(subfilterExposures(piece))])
    exposure = readExposure(field.test[0])
    task = DcrTemplateTask(config=DcrTemplateConfig())
    mosaic = task.run(exposure, patches).template
    assert mosaic.bbox == exposure.bbox.intersection(box)
    # the template of dcrmodel template with both models (multipatch)
    pieces = [DcrModel.fromQuantum(handles) for handles in patches]
    _, expected = templateForExposure(pieces, exposure)
    np.testing.assert_array_equal(mosaic.image.array, expected.image.array)
    for handles, part in zip(patches, boxes, strict=True):
        alone = task.run(exposure, [handles]).template
        assert alone.bbox == part
        np.testing.assert_array_equal(mosaic[part].image.array, alone.image.array)
        np.testing.assert_array_equal(mosaic[part].mask.array, alone.mask.array)
