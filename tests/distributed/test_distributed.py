"""Tests of dcrmodel.distributed (runner, plan, cluster, tasks, scratch): DCR model assembly on
a Dask cluster.

A run on the cluster must give the serial run's model (same code, same numbers, wherever a
subregion is solved), survive a worker killed in the middle of a task, leave no output when
the driver is interrupted and reuse the finished subregions when resumed. One local cluster
of two worker processes is shared by the module.

The test field is rendered independently of the model's approximation: each Gaussian source
is integrated over the band at 12 wavelengths, each displaced by its own differential
refraction (Stone 1996 through `dcrmodel.physics.refraction`) along the zenith direction measured
through the WCS.
"""

import dataclasses
import functools
import json
import os
import pickle
import signal
import time

import astropy.units as u
import numpy as np
import pytest

import dcrmodel
import dcrmodel.distributed.cluster as dcluster
import dcrmodel.distributed.runner as dd
import dcrmodel.distributed.scratch as dscratch
from dcrmodel.assemble.config import DcrAssembleConfig
from dcrmodel.assemble.output import NIMAGE_NAME, STACKED_COADD_NAME, SUMMARY_NAME
from dcrmodel.assemble.plan import SubregionResult, SubregionTask
from dcrmodel.assemble.task import DcrAssembleCoadd, assembleFromFiles
from dcrmodel.distributed.cluster import clusterClient
from dcrmodel.distributed.plan import Patch, PatchPlan, loadPlan
from dcrmodel.distributed.runner import assembleDistributed, assemblePatches, formatSummaryTable
from dcrmodel.distributed.scratch import scratchFolder
from dcrmodel.distributed.tasks import (
    MEMORY_FACTORS,
    MEMORY_OVERHEAD,
    estimateSubregionMemory,
    solveSubregion,
)
from dcrmodel.errors import DcrConfigError, DcrOutputError, DcrTypeError, DcrValueError
from dcrmodel.image import Exposure, Filter, GaussianPsf, MaskedImage
from dcrmodel.physics.dcr import zenithDirection
from dcrmodel.physics.refraction import differentialRefraction
from helpers import makeTanWcs, renderGaussians
from helpers import meridianFieldCentre as _fieldCentre
from helpers import meridianVisitInfo as _visitInfo

distributed = pytest.importorskip("distributed")

BAND = Filter.fromBand("g")
SIGMA = 1.5  # Gaussian PSF, pixels
NOISE = 2.0  # counts per pixel
SHAPE = (64, 64)
HOUR_ANGLES = (-3.5, -1.8, 0.4, 2.0, 3.5)
TILE = (32, 32)
# A bright source on the corner where the four subregions meet, and others across the joins.
SOURCES = [
    (31.5, 31.5, 20000.0, -3.0),
    (31.7, 12.0, 8000.0, 3.0),
    (14.0, 32.3, 6000.0, 0.0),
    (48.0, 47.0, 5000.0, 2.0),
    (50.0, 18.0, 3000.0, -2.0),
]
CONFIG = DcrAssembleConfig(subregionSize=TILE, minNumIter=1, maxNumIter=3, solver="iterative")


# ------------------------------------------------------------------------------------------
# A small field with known truth, written as Rubin-layout files
# ------------------------------------------------------------------------------------------
def _render(visitInfo, wcs, shape, sources=SOURCES, numSamples=12):
    edges = np.linspace(BAND.lambdaMin, BAND.lambdaMax, numSamples + 1)
    wavelengths = 0.5 * (edges[1:] + edges[:-1])
    refraction = differentialRefraction(
        wavelengths, BAND.effectiveWavelength, visitInfo.boresightAzAlt[1],
        visitInfo.observatory, visitInfo.weather,
    ).to_value(u.arcsec)
    vy, vx = zenithDirection(visitInfo, wcs)
    image = np.zeros(shape)
    for x, y, flux, slope in sources:
        spectrum = (wavelengths / BAND.effectiveWavelength) ** slope
        spectrum = flux * spectrum / spectrum.sum()
        points = [(x + r * vx, y + r * vy, f) for r, f in zip(refraction, spectrum, strict=True)]
        image += renderGaussians(shape, points, sigma=SIGMA)
    return image


def _writeField(folder, hourAngles=HOUR_ANGLES, seed=11, shape=SHAPE, sources=SOURCES):
    from dcrmodel.fits.exposure import writeExposure

    rng = np.random.default_rng(seed)
    ny, nx = shape
    wcs = makeTanWcs(crval=_fieldCentre(), crpix=((nx - 1) / 2, (ny - 1) / 2), shape=shape)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, hourAngle in enumerate(hourAngles):
        visitInfo = _visitInfo(hourAngle, 100 + i)
        image = _render(visitInfo, wcs, shape, sources) + rng.normal(0.0, NOISE, size=shape)
        maskedImage = MaskedImage.fromArrays(
            image.astype(np.float32), variance=np.full(shape, NOISE**2, dtype=np.float32)
        )
        exposure = Exposure(maskedImage, wcs=wcs, visitInfo=visitInfo, filter=BAND,
                            psf=GaussianPsf(2.3548 * SIGMA))
        path = folder / f"visit{i}.fits"
        writeExposure(exposure, path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def visits(tmp_path_factory):
    return _writeField(tmp_path_factory.mktemp("visits"))


#: A wider field for the direct solver, whose DCR buffer is wider (32 pixels or more):
#: the same sources moved by (48, 48), the bright one on the corner where subregions of
#: 80 pixels meet.
WIDE_SHAPE = (160, 160)
WIDE_TILE = (80, 80)
WIDE_SOURCES = [(x + 48.0, y + 48.0, flux, slope) for x, y, flux, slope in SOURCES]


@pytest.fixture(scope="module")
def wideVisits(tmp_path_factory):
    return _writeField(tmp_path_factory.mktemp("wide"), shape=WIDE_SHAPE,
                       sources=WIDE_SOURCES)


@pytest.fixture(scope="module")
def client():
    with clusterClient(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def serial(visits, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "model"
    return assembleFromFiles(visits, out, config=CONFIG), out


def _assertSameModel(a, b):
    """The two runs' models, counts and coadds agree to float32 rounding."""
    peak = max(float(np.abs(image.array).max()) for image in a.dcrModel)
    for x, y in zip(a.dcrModel, b.dcrModel, strict=True):
        np.testing.assert_allclose(x.array, y.array, rtol=2e-7, atol=2e-7 * peak)
    for x, y in zip(a.nImages, b.nImages, strict=True):
        np.testing.assert_array_equal(x.array, y.array)
    np.testing.assert_allclose(a.coadd.image.array, b.coadd.image.array, rtol=2e-7,
                               atol=2e-7 * peak)


def _assertSameFiles(outA, outB):
    """The two folders hold the same model, to the rounding of the files' float32."""
    from dcrmodel.fits.exposure import readExposure
    from dcrmodel.fits.model import readDcrModel

    a, b = readDcrModel(outA), readDcrModel(outB)
    peak = max(float(np.abs(image.array).max()) for image in a)
    # Worker processes may sum in another order (one BLAS thread, other alignment): a few
    # pixels differ in the last bit of float32.
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.array, y.array, rtol=2.5e-7, atol=2.5e-7 * peak)
    np.testing.assert_allclose(readExposure(outA / STACKED_COADD_NAME).image.array,
                               readExposure(outB / STACKED_COADD_NAME).image.array,
                               rtol=2.5e-7, atol=2.5e-7 * peak)
    from astropy.io import fits

    with fits.open(outA / NIMAGE_NAME) as ha, fits.open(outB / NIMAGE_NAME) as hb:
        for x, y in zip(ha[1:], hb[1:], strict=True):
            np.testing.assert_array_equal(x.data, y.data)


# ------------------------------------------------------------------------------------------
# Within a patch: the same model as the serial run
# ------------------------------------------------------------------------------------------
def test_cluster_run_equals_the_serial_run(visits, client, serial, tmp_path):
    events = []
    out = tmp_path / "model"
    result = assembleDistributed(visits, out, config=CONFIG, client=client,
                                 progress=events.append, traceMemory=True)
    assert len(result.summary["subregions"]) == 4
    _assertSameModel(serial[0], result)
    _assertSameFiles(out, serial[1])
    for a, b in zip(serial[0].summary["subregions"], result.summary["subregions"], strict=True):
        np.testing.assert_allclose(a["convergence"], b["convergence"], rtol=1e-7)
        assert a["stopReason"] == b["stopReason"]
        assert b["worker"].startswith("tcp://")
        assert b["peakMemoryBytes"] > 0
        assert b["workerPeakRssBytes"] > b["peakMemoryBytes"]
    # progress over every subregion, then the patch
    done = [e for e in events if e["event"] == "subregion"]
    assert sorted(e["subregion"] for e in done) == [0, 1, 2, 3]
    assert [e["done"] for e in done] == [1, 2, 3, 4]
    assert all(e["total"] == 4 and not e["resumed"] for e in done)
    assert events[-1]["event"] == "patch" and events[-1]["status"] == "done"
    # no scratch left behind, and the summary says where it ran
    assert not scratchFolder(out).exists()
    assert json.loads((out / SUMMARY_NAME).read_text())["distributed"]["scheduler"]


def test_cluster_run_equals_the_serial_run_with_the_direct_solver(visits, client, tmp_path):
    config = CONFIG.withOverrides(solver="direct")
    serialResult = assembleFromFiles(visits, tmp_path / "serial", config=config)
    result = assembleDistributed(visits, tmp_path / "model", config=config, client=client)
    _assertSameModel(serialResult, result)
    _assertSameFiles(tmp_path / "model", tmp_path / "serial")
    assert all(r["solver"] == "direct" for r in result.summary["subregions"])


@pytest.mark.parametrize(
    "solver",
    [
        "iterative",
        "direct",
    ],
)
def test_no_seams_where_subregions_meet(request, client, tmp_path, solver):
    # A fixed number of iterations, so that every subregion does the same work as the
    # whole patch; the bright source sits on the corner where the four subregions meet.
    if solver == "direct":
        visits, shape, tile, sources = (request.getfixturevalue("wideVisits"), WIDE_SHAPE,
                                        WIDE_TILE, WIDE_SOURCES)
    else:
        visits, shape, tile, sources = request.getfixturevalue("visits"), SHAPE, TILE, SOURCES
    # The damping of 1e-3: the components of the subfilter images that no visit sees grow
    # with it (the default 3e-3: join / elsewhere rms up to 1.17 for one subfilter, while
    # the templates' steps at the joins fall from 0.078 to 0.051 noise sigma), and the
    # stitching is checked on the subfilter images below.
    base = DcrAssembleConfig(useConvergence=False, useProgressiveGain=False, maxNumIter=4,
                             solver=solver, subregionSize=shape, psfDamping=1e-3)
    whole = DcrAssembleCoadd(base).run(visits)
    tiled = assembleDistributed(visits, tmp_path / "tiled", client=client,
                                config=base.withOverrides(subregionSize=tile))
    assert len(tiled.summary["subregions"]) == 4
    # each subregion is solved on less than the patch
    assert all(r["solvedBBox"][2] < shape[1] for r in tiled.summary["subregions"])
    peak = max(float(np.abs(image.array).max()) for image in whole.dcrModel)
    joins = np.zeros(shape, dtype=bool)
    joins[tile[1] - 4:tile[1] + 4, :] = True
    joins[:, tile[0] - 4:tile[0] + 4] = True
    interior = np.zeros(shape, dtype=bool)
    interior[8:-8, 8:-8] = True
    for a, b in zip(whole.dcrModel, tiled.dcrModel, strict=True):
        difference = np.abs(a.array - b.array)
        if solver == "iterative":
            assert difference[joins].max() < 0.005 * peak
            assert np.sqrt((difference[joins] ** 2).mean()) < 0.05 * NOISE
        else:
            # The direct solution's subfilter images differ from the whole patch's by
            # components no training visit sees (cancelling in every template), about
            # 0.2-0.3 noise sigma rms everywhere; the joins must be no worse than the rest
            # (measured: join / elsewhere rms 0.91-1.06 blended, 1.09-1.20 cut hard).
            rms = [np.sqrt((difference[m] ** 2).mean()) for m in (joins, ~joins & interior)]
            assert rms[0] < 1.15 * rms[1]
    # the template of a new visit shows no step across the joins either
    visitInfo = _visitInfo(3.0, 999)
    truth = _render(visitInfo, whole.dcrModel.wcs, shape, sources)
    templates = [m.dcrModel.buildMatchedTemplate(visitInfo=visitInfo, wcs=m.dcrModel.wcs,
                                                 bbox=m.dcrModel.bbox).array
                 for m in (whole, tiled)]
    # no step across the joins beyond a tenth of the noise (and none elsewhere either):
    # far below the noise of the new visit itself and of the template (the model is fitted
    # to 5 visits). Direct solver, measured 0.08 sigma (a hard cut at the joins: 0.98).
    difference = np.abs(templates[0] - templates[1])
    assert difference[joins].max() < 0.1 * NOISE
    assert difference.max() < 0.01 * truth.max()
    if solver == "direct":
        # inside the patch the joins differ no more than the blended bands around them
        # (measured 0.109 against 0.101 counts; a hard cut: 1.95 against 0.055)
        assert difference[joins & interior].max() < 1.5 * difference[~joins & interior].max()


# ------------------------------------------------------------------------------------------
# Faults: a killed worker, an interrupted driver, resume
# ------------------------------------------------------------------------------------------
def _killFirstAttempt(marker, task, *args, **kwargs):
    """Kill the worker process running the first task that gets here; solve the others."""
    from distributed import get_worker

    if not os.path.exists(marker):
        with open(marker, "w") as stream:
            stream.write(json.dumps({"worker": get_worker().address, "index": task.index}))
        os.kill(os.getpid(), signal.SIGKILL)
    # In the worker process this is the module's own function (patched only here).
    from dcrmodel.distributed.runner import solveSubregion

    return solveSubregion(task, *args, **kwargs)


def test_killed_worker_tasks_are_retried_and_outputs_unchanged(visits, client, serial,
                                                               tmp_path, monkeypatch):
    marker = tmp_path / "killed.json"
    monkeypatch.setattr(dd, "solveSubregion",
                        functools.partial(_killFirstAttempt, str(marker)))
    out = tmp_path / "model"
    result = assembleDistributed(visits, out, config=CONFIG, client=client)
    killed = json.loads(marker.read_text())
    # the task that killed its worker ran again elsewhere, and nothing changed
    rerun = result.summary["subregions"][killed["index"]]
    assert rerun["worker"] != killed["worker"]
    _assertSameModel(serial[0], result)
    _assertSameFiles(out, serial[1])
    client.wait_for_workers(2, timeout=30)


class _Interrupt:
    """A progress callback that interrupts the driver after some subregions."""

    def __init__(self, after):
        self.after = after
        self.events = []

    def __call__(self, event):
        self.events.append(event)
        if event["event"] == "subregion" and event["done"] >= self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("useCluster", [True, False], ids=["cluster", "in-process"])
def test_interrupted_driver_writes_nothing_and_resume_reuses_subregions(
    visits, client, serial, tmp_path, useCluster
):
    out = tmp_path / "model"
    where = {"client": client} if useCluster else {}
    with pytest.raises(KeyboardInterrupt):
        assembleDistributed(visits, out, config=CONFIG, resume=True, progress=_Interrupt(2),
                            **where)
    assert not out.exists()
    scratch = scratchFolder(out)
    assert scratch == tmp_path / ".model.scratch"
    saved = sorted(p.name for p in scratch.glob("subregion_*.npz"))
    assert len(saved) >= 2
    # only finished files in the scratch folder (each written atomically)
    assert sorted(p.name for p in scratch.iterdir()) == sorted([*saved, "manifest.json"])

    events = []
    result = assembleDistributed(visits, out, config=CONFIG, resume=True,
                                 progress=events.append, **where)
    reused = [e for e in events if e["event"] == "subregion" and e["resumed"]]
    solved = [e for e in events if e["event"] == "subregion" and not e["resumed"]]
    assert len(reused) == len(saved)
    assert len(reused) + len(solved) == 4
    assert result.summary["distributed"]["resumedSubregions"] == sorted(
        int(name[10:15]) for name in saved)
    _assertSameModel(serial[0], result)
    _assertSameFiles(out, serial[1])
    assert not scratch.exists()


def test_resume_refuses_the_scratch_of_another_run(visits, client, tmp_path):
    out = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        assembleDistributed(visits, out, config=CONFIG, resume=True, progress=_Interrupt(1))
    with pytest.raises(DcrValueError, match="left by a run with other input files or settings"):
        assembleDistributed(visits, out, config=CONFIG.withOverrides(maxNumIter=5),
                            resume=True)
    # without resume the old scratch folder is replaced and the run completes
    result = assembleDistributed(visits[:3], out, resume=False, client=client,
                                 config=CONFIG.withOverrides(maxNumIter=1, subregionSize=SHAPE))
    assert result.summary["subregions"]
    assert not scratchFolder(out).exists()


# ------------------------------------------------------------------------------------------
# Memory
# ------------------------------------------------------------------------------------------
def test_peak_memory_follows_the_subregion_not_the_patch(visits):
    config = CONFIG.withOverrides(useConvergence=False, maxNumIter=1, minNumIter=1)
    records = {}
    for name, size in (("whole", SHAPE), ("tiled", TILE)):
        plan = DcrAssembleCoadd(config.withOverrides(subregionSize=size)).planSubregions(visits)
        records[name] = solveSubregion(plan.subregionTask(0), traceMemory=True).summary
    whole, tiled = records["whole"], records["tiled"]
    assert tiled["solvedPixels"] < 0.6 * whole["solvedPixels"]
    assert tiled["peakMemoryBytes"] < 0.7 * whole["peakMemoryBytes"]
    # the documented bound: J (s + 2b)^2 8 k + c bytes
    buffer = plan.buffer
    for record in (whole, tiled):
        width, height = record["solvedBBox"][2:]
        bound = len(visits) * width * height * 8 * MEMORY_FACTORS["iterative"]
        assert record["peakMemoryBytes"] < bound + MEMORY_OVERHEAD
    assert estimateSubregionMemory(5, TILE, buffer) == (
        5 * (32 + 2 * buffer) ** 2 * 8 * MEMORY_FACTORS["iterative"] + MEMORY_OVERHEAD)


def test_peak_memory_bound_of_the_direct_solver(visits, tmp_path):
    result = assembleDistributed(visits, tmp_path / "direct", resume=True, traceMemory=True,
                                 config=CONFIG.withOverrides(solver="direct"))
    for record in result.summary["subregions"]:
        width, height = record["solvedBBox"][2:]
        bound = len(visits) * width * height * 8 * MEMORY_FACTORS["direct"]
        assert 0 < record["peakMemoryBytes"] < bound + MEMORY_OVERHEAD


def test_subregion_tasks_pickle_to_the_size_of_the_subregion(visits):
    plan = DcrAssembleCoadd(CONFIG.withOverrides(maxNumIter=1)).planSubregions(visits)
    task = plan.subregionTask(0)
    blob = pickle.dumps(task)
    restored = pickle.loads(blob)
    assert isinstance(restored, SubregionTask)
    assert restored.bbox == task.bbox and restored.tile == task.tile
    np.testing.assert_array_equal(restored.model[0].array, task.model[0].array)
    # the coadd cutout and the starting model of the solved box, not of the patch
    assert len(blob) < 0.8 * plan.bbox.area * 4 * (4 + 4 + 4 + 3 * 8)
    result = solveSubregion(restored)
    again = pickle.loads(pickle.dumps(result))
    assert isinstance(again, SubregionResult)
    np.testing.assert_array_equal(again.modelArrays, result.modelArrays)
    assert again.modelArrays.shape == (3, 32, 32)


def test_direct_results_keep_their_blending_band_through_the_scratch_folder(visits, tmp_path):
    # the direct solver's subregions return their model over the tile grown by the
    # blending band; a result saved for --resume comes back with the same box
    plan = DcrAssembleCoadd(CONFIG.withOverrides(solver="direct")).planSubregions(visits)
    result = solveSubregion(plan.subregionTask(0))
    assert plan.feather == plan.buffer // 2 > 0
    assert result.bbox == plan.modelBox(0) == result.tile.grow(plan.feather).clippedTo(plan.bbox)
    assert result.modelArrays.shape == (3, *result.bbox.shape)
    assert result.nImages.shape == (3, *result.tile.shape)
    dscratch.saveResult(tmp_path, result)
    loaded = dscratch._loadResult(dscratch._resultFile(tmp_path, 0))
    assert loaded.bbox == result.bbox and loaded.tile == result.tile
    np.testing.assert_array_equal(loaded.modelArrays, result.modelArrays)
    assert result.coaddSums is None and loaded.coaddSums is None  # visits on the grid
    # a run of warped visits makes its plain coadd from the subregions' sums: kept too
    sums = np.arange(2.0 * result.tile.area).reshape(2, *result.tile.shape)
    dscratch.saveResult(tmp_path, dataclasses.replace(result, coaddSums=sums))
    loaded = dscratch._loadResult(dscratch._resultFile(tmp_path, 0))
    np.testing.assert_array_equal(loaded.coaddSums, sums)


# ------------------------------------------------------------------------------------------
# Many patches
# ------------------------------------------------------------------------------------------
def _writePlan(folder, text):
    path = folder / "plan.toml"
    path.write_text(text)
    return path


def test_assemble_patches_on_the_cluster(visits, client, serial, tmp_path):
    for i, visit in enumerate(visits):
        (tmp_path / "p2").mkdir(exist_ok=True)
        os.symlink(visit, tmp_path / "p2" / f"v{i}.fits")
    visitList = ", ".join(f'"{p}"' for p in visits)
    plan = _writePlan(tmp_path, f"""
[config]
subregionSize = [32, 32]
minNumIter = 1
maxNumIter = 3
solver = "iterative"

[[patch]]
name = "first"
visits = [{visitList}]
out = "models/first"

[[patch]]
visits = "p2/v*.fits"
out = "models/second"
config = {{ maxNumIter = 1, subregionSize = [64, 64] }}

[[patch]]
name = "broken"
visits = [{visitList}]
out = "models/broken"
config = {{ badMaskPlanes = ["NOT_A_PLANE"] }}
""")
    events = []
    rows = assemblePatches(plan, client=client, progress=events.append)
    assert [r["patch"] for r in rows] == ["first", "second", "broken"]
    first, second, broken = rows
    assert first["status"] == "done" and second["status"] == "done"
    assert first["visits"] == len(visits) and second["visits"] == len(visits)
    assert first["subregions"] == 4 and second["subregions"] == 1
    assert second["iterations"] == 1
    assert first["convergence"] > 0 and first["workerPeakRssBytes"] > 0
    assert first["output"] == str(tmp_path / "models" / "first")
    _assertSameFiles(tmp_path / "models" / "first", serial[1])
    assert (tmp_path / "models" / "second" / SUMMARY_NAME).is_file()
    # a patch that fails does not stop the others, and says why
    assert broken["status"] == "failed"
    assert "NOT_A_PLANE" in broken["error"]
    assert not (tmp_path / "models" / "broken").exists()
    done = [e for e in events if e["event"] == "subregion"]
    assert len(done) == 5 and done[-1]["done"] == 5
    table = formatSummaryTable(rows)
    assert "first" in table and "failed" in table and "conv " in table


def test_assemble_patches_one_after_another_without_a_cluster(visits, tmp_path):
    plan = PatchPlan(patches=tuple(
        Patch(name=f"p{i}", visits=tuple(visits[i:i + 3]), out=tmp_path / f"out{i}",
              config=CONFIG.withOverrides(maxNumIter=1, subregionSize=SHAPE))
        for i in range(2)
    ))
    rows = assemblePatches(plan)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert [r["visits"] for r in rows] == [3, 3]
    for i in range(2):
        summary = json.loads((tmp_path / f"out{i}" / SUMMARY_NAME).read_text())
        assert [v["name"] for v in summary["visits"]] == [str(p) for p in visits[i:i + 3]]


# ------------------------------------------------------------------------------------------
# Bad input: clear errors before any work
# ------------------------------------------------------------------------------------------
@pytest.fixture()
def noWork(monkeypatch):
    """Fail the test if a patch is prepared: errors must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(dd, "planPatch", refuse)
    monkeypatch.setattr(DcrAssembleCoadd, "planSubregions", refuse)


@pytest.mark.parametrize(
    "patchText, error, match",
    [
        ('visits = ["missing.fits"]\nout = "m"', DcrValueError,
         r"1 file\(s\) of the plan do not exist: p: .*missing.fits"),
        ('visits = []\nout = "m"', DcrValueError, "the visit list is empty"),
        ('visits = "nowhere/*.fits"\nout = "m"', DcrValueError, "matches no file"),
        ('visits = "v/*.fits"', DcrConfigError, "'out' is missing"),
        ('visits = "v/*.fits"\nout = "m"\ncolour = "red"', DcrConfigError,
         "unknown key"),
        ('visits = "v/*.fits"\nout = "m"\nconfig = { maxNumIter = 0 }', DcrConfigError,
         "patch 'p': maxNumIter must be an integer >= 1"),
        ('visits = "v/*.fits"\nout = "m"\ncoadd = "c.fits"', DcrValueError,
         r"c.fits \(coadd\)"),
        ('visits = ["v/v0.fits", "v/v1.fits"]\nout = "m"', DcrValueError,
         "has 2 visits, fewer than its 3 subfilters"),
        ('visits = ["v/v0.fits", "v/v0.fits", "v/v1.fits"]\nout = "m"', DcrValueError,
         "lists the visit .* twice"),
    ],
)
def test_plan_errors(visits, tmp_path, noWork, patchText, error, match):
    (tmp_path / "v").mkdir()
    for i, visit in enumerate(visits):
        os.symlink(visit, tmp_path / "v" / f"v{i}.fits")
    plan = _writePlan(tmp_path, f'[[patch]]\nname = "p"\n{patchText}\n')
    with pytest.raises(error, match=match):
        assemblePatches(plan)


@pytest.mark.parametrize(
    "outs, match",
    [
        (("same", "same"), "overlapping output folders"),
        (("a", "a/inner"), "overlapping output folders"),
    ],
)
def test_plan_output_folders_must_not_overlap(visits, tmp_path, noWork, outs, match):
    entries = "".join(
        f'[[patch]]\nname = "p{i}"\nvisits = "v/*.fits"\nout = "{out}"\n'
        for i, out in enumerate(outs)
    )
    (tmp_path / "v").mkdir()
    for i, visit in enumerate(visits):
        os.symlink(visit, tmp_path / "v" / f"v{i}.fits")
    with pytest.raises(DcrOutputError, match=match):
        loadPlan(_writePlan(tmp_path, entries))


def test_plan_structure_errors(visits, tmp_path, noWork):
    with pytest.raises(DcrConfigError, match="not valid TOML"):
        loadPlan(_writePlan(tmp_path, "[[patch]\n"))
    with pytest.raises(DcrConfigError, match="cannot read the plan"):
        loadPlan(tmp_path / "absent.toml")
    with pytest.raises(DcrConfigError, match="lists no patch"):
        loadPlan(_writePlan(tmp_path, "[config]\nmaxNumIter = 3\n"))
    with pytest.raises(DcrConfigError, match="unknown top-level key"):
        loadPlan(_writePlan(tmp_path, "patches = 1\n"))
    with pytest.raises(DcrConfigError, match=r"\[config\]: unknown setting"):
        loadPlan(_writePlan(tmp_path, "[config]\nspeed = 3\n[[patch]]\nvisits='x'\nout='o'\n"))
    twice = "".join(f'[[patch]]\nname = "p"\nvisits = ["{visits[0]}", "{visits[1]}", '
                    f'"{visits[2]}"]\nout = "o{i}"\n' for i in range(2))
    with pytest.raises(DcrConfigError, match="two patches are named 'p'"):
        loadPlan(_writePlan(tmp_path, twice))
    with pytest.raises(DcrTypeError, match="plan must be a PatchPlan"):
        assemblePatches(42)


def test_output_folder_holding_other_files(visits, tmp_path, noWork):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("mine")
    text = "[[patch]]\nvisits = [" + ", ".join(f'"{p}"' for p in visits) + ']\nout = "m"\n'
    with pytest.raises(DcrOutputError, match="patch 'm': the output folder .* already holds"):
        loadPlan(_writePlan(tmp_path, text))
    with pytest.raises(DcrOutputError, match="already holds other files"):
        assembleDistributed(visits, tmp_path / "m", resume=True)


def test_unreachable_scheduler_fails_within_the_timeout(visits, tmp_path, noWork):
    tic = time.monotonic()
    with pytest.raises(DcrValueError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        assembleDistributed(visits, tmp_path / "m", scheduler="tcp://127.0.0.1:9",
                            timeout=2.0)
    assert time.monotonic() - tic < 2.0 + 8.0
    assert not (tmp_path / "m").exists()
    assert dcluster.SCHEDULER_TIMEOUT == 10.0


def test_workers_with_another_dcrmodel_version(visits, client, tmp_path, monkeypatch, noWork):
    monkeypatch.setattr(dcrmodel._version, "__version__", "0.0.0-other")
    with pytest.raises(DcrValueError, match="must run dcrmodel 0.0.0-other like this process.*"
                                            "version 0.1.0"):
        assembleDistributed(visits, tmp_path / "m", client=client)


def test_workers_without_the_package(client):
    with pytest.raises(DcrValueError, match="do not have dcrmodel-not-installed installed"):
        dcluster._checkWorkers(client, "dcrmodel-not-installed", "1.0")
    versions = dcluster.checkWorkers(client)
    assert set(versions.values()) == {dcrmodel.__version__}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"workers": 2, "scheduler": "tcp://127.0.0.1:9"}, "at most one of workers, scheduler"),
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"workers": 1.5}, "workers must be an integer >= 1"),
        ({"workers": 1, "timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"resume": True, "retries": -1}, "retries must be an integer >= 0"),
    ],
)
def test_bad_arguments(visits, tmp_path, noWork, kwargs, match):
    with pytest.raises(DcrValueError, match=match):
        assembleDistributed(visits, tmp_path / "m", **kwargs)


def test_missing_distributed_names_the_extra(visits, tmp_path, monkeypatch, noWork):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'dcrmodel\[distributed\]'"):
        assembleDistributed(visits, tmp_path / "m", workers=1)


def test_without_a_cluster_the_serial_path_runs(visits, tmp_path, monkeypatch):
    calls = []

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return "serial result"

    monkeypatch.setattr(dd, "assembleFromFiles", recording)
    assert assembleDistributed(visits, tmp_path / "m", config=CONFIG) == "serial result"
    assert calls[0][1]["config"] is CONFIG
