"""The pipeline on visits on their own detector grids (rotated, dithered), in a repository."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lsst.pipe.base")

from astropy.io import fits  # noqa: E402
from astropy.wcs import WCS  # noqa: E402
from lsst.daf.butler import Butler  # noqa: E402
from lsst.pipe.base import NoWorkFound, Pipeline  # noqa: E402
from lsst.pipe.base.simple_pipeline_executor import SimplePipelineExecutor  # noqa: E402

from dcrmodel import DcrAssembleCoadd, DcrAssembleConfig  # noqa: E402
from dcrmodel.cli.main import main  # noqa: E402
from dcrmodel.errors import DcrConfigError, DcrFitsError, DcrValueError  # noqa: E402
from dcrmodel.fits import readExposure, readGrid, writeExposure  # noqa: E402
from dcrmodel.image import Box  # noqa: E402
from dcrmodel.pipeline import (  # noqa: E402
    PIPELINE_PATH,
    ExposureFormatter,
    HandleReader,
    PatchGrid,
    ingestFiles,
    initRepository,
    registerPipelineDatasetTypes,
    subfilterExposures,
    visitBox,
    warpForPatch,
)
from helpers.rubin import PATCH, simulateField  # noqa: E402

GRID = {key: PATCH[key] for key in ("skymap", "tract", "patch")}


def execute(root, pipeline, inputs, output):
    butler = SimplePipelineExecutor.prep_butler(str(root), inputs=inputs, output=output)
    if isinstance(pipeline, str):
        pipeline = Pipeline.from_uri(f"{PIPELINE_PATH}#{pipeline}")
    executor = SimplePipelineExecutor.from_pipeline(pipeline, butler=butler)
    return butler, executor.run()


def farVisit(path, out):
    """A copy of a visit moved 0.2 degree North (and given another visit ID)."""
    exposure = readExposure(path)
    exposure.wcs.wcs.crval[1] += 0.2
    exposure.visitInfo = exposure.visitInfo.copyWith(id=2000)
    writeExposure(exposure, out)
    return out


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    field = simulateField(root, size=64, visits=8, detectorFrames=True)
    far = farVisit(field.training[0], root / "far.fits")
    repo = root / "repo"
    assert main(["butler", "init", str(repo), "--bands", "g", "-q"]) == 0
    # the patch's grid is the coadd file's (its WCS and box), the visits on their own grids
    assert main(["butler", "ingest", str(repo), *map(str, field.training), str(far),
                 "--grid", str(field.coadd), "--run", "in", "-q"]) == 0
    assert main(["butler", "ingest", str(repo), *map(str, field.test), "--grid",
                 str(field.coadd), "--run", "in-test", "-q"]) == 0
    butler, quanta = execute(repo, "dcrModel", ["in"], "model")
    cliModel = root / "cli-model"
    assert main(["assemble", *map(str, field.training), "--grid", str(field.coadd), "--out",
                 str(cliModel), "-q"]) == 0
    return field, repo, butler, quanta, cliModel


def test_ingest_keeps_detector_frame_visits_as_visit_images(frames):
    field, repo, _, _, _ = frames
    butler = Butler.from_config(str(repo), collections="in")
    counts = {name: len(butler.query_datasets(name, explain=False))
              for name in ("dcrVisitImage", "dcrWarp", "dcrPatchGrid")}
    # no visit is on the patch's grid: no warp at ingest; the far one is a visit image too
    assert counts == {"dcrVisitImage": len(field.training) + 1, "dcrWarp": 0,
                      "dcrPatchGrid": 1}
    grid = butler.get("dcrPatchGrid", **GRID)
    wcs, bbox = readGrid(field.coadd)
    assert grid.bbox == bbox
    np.testing.assert_allclose(grid.wcs.wcs_pix2world([[3.0, 90.0]], 0),
                               wcs.wcs_pix2world([[3.0, 90.0]], 0), rtol=0)
    visit = butler.query_dimension_records("visit", instrument="DcrModel", visit=1000,
                                           explain=False)[0]
    assert visit.region is not None


def test_warps_only_for_visits_that_overlap_the_patch(frames):
    field, _, butler, quanta, _ = frames
    warps = butler.query_datasets("dcrWarp", explain=False)
    visits = sorted(ref.dataId["visit"] for ref in warps)
    expected = sorted(int(readExposure(p).visitInfo.id) for p in field.training)
    assert visits == expected  # none for the visit 0.2 degree away
    labels = [q.task_node.label if hasattr(q, "task_node") else None for q in quanta]
    assert len(quanta) == len(field.training) + 1, labels  # dcrMakeWarp per visit, 1 model


def test_model_equals_assemble_with_the_grid_bit_for_bit(frames):
    _, _, butler, _, cliModel = frames
    for k in range(3):
        ref = butler.find_dataset("dcrCoadd", subfilter=k, **PATCH)
        stored = Path(butler.getURI(ref).ospath)
        assert stored.read_bytes() == (cliModel / f"dcrCoadd_{k}.fits").read_bytes()


def test_template_task_equals_the_template_command(frames, tmp_path):
    field, repo, _, _, cliModel = frames
    templates, quanta = execute(repo, "dcrTemplate", ["model", "in-test"], "templates")
    # every visit of the patch, none for the far one
    assert len(quanta) == len(field.training) + len(field.test)
    for science in field.test:
        out = tmp_path / f"{science.stem}.fits"
        assert main(["template", str(cliModel), str(science), "--out", str(out), "-q"]) == 0
        visit = int(readExposure(science).visitInfo.id)
        ref = templates.find_dataset("dcrTemplate", instrument="DcrModel", visit=visit,
                                     detector=0)
        stored = Path(templates.getURI(ref).ospath)
        # the template is on the visit's own detector grid
        template = readExposure(stored)
        assert template.bbox == readExposure(science).bbox
        assert stored.read_bytes() == out.read_bytes()


def test_assembly_reads_subregion_cutouts(frames, tmp_path, monkeypatch):
    field, _, _, _, _ = frames
    repo = tmp_path / "repo"
    butler = initRepository(repo, bands=["g"])
    registerPipelineDatasetTypes(butler)
    ingestFiles(butler, field.training, "in", coadd=field.coadd, transfer="direct")
    reads = []
    original = ExposureFormatter.read_from_local_file

    def spy(self, path, component=None, expected_size=-1):
        bbox = (self.file_descriptor.parameters or {}).get("bbox")
        reads.append((self.dataset_ref.datasetType.name, component, bbox))
        return original(self, path, component, expected_size)

    monkeypatch.setattr(ExposureFormatter, "read_from_local_file", spy)
    pipeline = Pipeline.from_uri(f"{PIPELINE_PATH}#dcrModel")
    pipeline.addConfigOverride("dcrAssembleCoadd", "subregionSize", [48, 48])
    result, _ = execute(repo, pipeline, ["in"], "model")
    warpReads = [(component, bbox) for name, component, bbox in reads if name == "dcrWarp"]
    # every read of a warp is its box (headers) or a cutout, never the whole warp
    assert warpReads and all(component == "bbox" or bbox is not None
                             for component, bbox in warpReads)
    cutouts = [bbox for component, bbox in warpReads if component is None]
    stored = {ref.dataId["visit"]: result.get(ref.makeComponentRef("bbox"))
              for ref in result.query_datasets("dcrWarp", explain=False)}
    largest = max(box.width * box.height for box in stored.values())
    assert len(cutouts) >= 4 * len(field.training)  # 4 subregions
    assert min(box.width * box.height for box in cutouts) < largest
    # the model is the one of the same files
    config = DcrAssembleConfig(subregionSize=(48, 48))
    expected = DcrAssembleCoadd(config).run(field.training, coadd=field.coadd).dcrModel
    for k, exposure in enumerate(subfilterExposures(expected)):
        ours = result.get("dcrCoadd", subfilter=k, **PATCH)
        np.testing.assert_array_equal(ours.image.array,
                                      exposure.image.array.astype(np.float32))


def test_handle_reader_refuses_reads_beyond_the_stored_cutout(frames):
    _, _, butler, _, _ = frames
    ref = butler.query_datasets("dcrWarp", explain=False)[0]
    reader = HandleReader(butler.getDeferred(ref))
    assert reader.stored == butler.get(ref.makeComponentRef("bbox"))
    assert reader.info.wcs is not None and reader.bbox.contains(reader.stored)
    beyond = reader.stored.grow(1)
    with pytest.raises(DcrValueError, match="not within the stored pixels"):
        reader.read(beyond)


def test_patch_grid_round_trip_and_refusals(frames, tmp_path):
    field, repo, _, _, _ = frames
    wcs, bbox = readGrid(field.coadd)
    grid = PatchGrid(wcs, bbox)
    again = PatchGrid.fromHeader(grid.header())
    assert again.bbox == bbox
    np.testing.assert_array_equal(again.wcs.wcs.crval, wcs.wcs.crval)
    writeable = Butler.from_config(str(repo), writeable=True)
    with pytest.raises(DcrValueError, match="by --coadd or by --grid, not both"):
        ingestFiles(writeable, field.test, "other", coadd=field.coadd, grid=field.coadd)
    with pytest.raises(DcrValueError, match="RA,DEC,WIDTH,HEIGHT,SCALE"):
        ingestFiles(writeable, field.test, "other", grid="1,2,3")
    moved = f"{wcs.wcs.crval[0]},{wcs.wcs.crval[1] + 0.01},96,96,0.2"
    with pytest.raises(DcrValueError, match="already holds another grid"):
        ingestFiles(writeable, field.test, "in-test", grid=moved)


def test_patch_grid_keeps_a_distorted_wcs_exactly():
    header = fits.Header()
    for key, value in dict(
        CTYPE1="RA---TAN-SIP", CTYPE2="DEC--TAN-SIP", CRPIX1=32.5, CRPIX2=30.25,
        CRVAL1=10.123456789012345, CRVAL2=-35.1, CD1_1=-5.5e-5, CD1_2=1.1e-6, CD2_1=1.3e-6,
        CD2_2=5.6e-5, A_ORDER=2, B_ORDER=2, A_2_0=1.234567890123e-6, B_0_2=-2.2e-6,
        A_1_1=3.3e-7,
    ).items():
        header[key] = value
    wcs = WCS(header)
    again = PatchGrid.fromHeader(PatchGrid(wcs, Box(-5, 3, 64, 60)).header())
    assert again.bbox == Box(-5, 3, 64, 60)
    np.testing.assert_array_equal(again.wcs.sip.a, wcs.sip.a)
    np.testing.assert_array_equal(again.wcs.sip.b, wcs.sip.b)
    corners = [[-5.0, 3.0], [58.0, 62.0]]
    np.testing.assert_array_equal(again.wcs.wcs_pix2world(corners, 0),
                                  wcs.wcs_pix2world(corners, 0))
    with pytest.raises(DcrFitsError, match="lacks the keys DCRGNX"):
        bad = again.header()
        del bad["DCRGNX"]
        PatchGrid.fromHeader(bad)


def test_band_without_subfilters_is_named_before_any_warp(frames, tmp_path):
    field = frames[0]
    repo = tmp_path / "repo"
    butler = initRepository(repo, bands=["r"])
    registerPipelineDatasetTypes(butler)
    ingestFiles(butler, field.training, "in", grid=field.coadd, transfer="direct")
    with pytest.raises(DcrConfigError, match="band g has no subfilter records"):
        execute(repo, "dcrModel", ["in"], "out")
    assert not Butler.from_config(str(repo)).query_datasets(
        "dcrWarp", collections="*", find_first=False, explain=False)


def test_warp_for_a_patch_on_and_off_its_grid(frames):
    field = frames[0]
    wcs, bbox = readGrid(field.coadd)
    grid = PatchGrid(wcs, bbox)
    visit = readExposure(field.training[0])
    cut = warpForPatch(visit, grid, "visit 1000")
    # off the grid: the visit's own pixels (not resampled) and its whole box in the header
    assert visitBox(cut) == visit.bbox and visit.bbox.contains(cut.bbox)
    np.testing.assert_array_equal(cut.image.array, visit[cut.bbox].image.array)
    assert cut.wcs is visit.wcs
    # on the grid: the part inside the patch's box, as it is
    coadd = readExposure(field.coadd)
    inner = Box(bbox.minX + 10, bbox.minY + 20, 30, 40)
    small = PatchGrid(wcs, inner)
    onGrid = warpForPatch(coadd, small)
    assert onGrid.bbox == inner and visitBox(onGrid) == inner
    np.testing.assert_array_equal(onGrid.image.array, coadd[inner].image.array)
    # a patch elsewhere on the sky: no work, so no warp
    far = wcs.deepcopy()
    far.wcs.crval[1] += 0.2
    with pytest.raises(NoWorkFound, match="does not overlap the patch"):
        warpForPatch(visit, PatchGrid(far, bbox), "visit 1000")
    with pytest.raises(NoWorkFound, match="does not overlap the patch's box"):
        warpForPatch(coadd, PatchGrid(wcs, Box(bbox.maxX + 5, bbox.minY, 10, 10)))
