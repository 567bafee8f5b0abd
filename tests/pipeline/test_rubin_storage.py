import numpy as np
import pytest

pytest.importorskip("lsst.pipe.base")

from astropy.io import fits  # noqa: E402
from lsst.daf.butler import Butler  # noqa: E402

from dcrmodel import DcrModel, writeDcrModel  # noqa: E402
from dcrmodel.errors import DcrConfigError, DcrValueError  # noqa: E402
from dcrmodel.image import Box, Filter, PhotoCalib  # noqa: E402
from dcrmodel.pipeline import (  # noqa: E402
    DATASET_TYPES,
    checkRepository,
    ingestFiles,
    initRepository,
    subfilterExposures,
)
from helpers import makeExposure, makeVisitAndWcs  # noqa: E402

PATCH = {"skymap": "s", "tract": 0, "patch": 0, "band": "g"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("storage")
    butler = initRepository(root / "repo")
    butler.registry.insertDimensionData(
        "skymap", {"name": "s", "hash": b"s", "tract_max": 1, "patch_nx_max": 1,
                   "patch_ny_max": 1})
    butler.registry.insertDimensionData("tract", {"skymap": "s", "id": 0})
    butler.registry.insertDimensionData(
        "patch", {"skymap": "s", "tract": 0, "id": 0, "cell_x": 0, "cell_y": 0})
    butler.registry.registerRun("run")
    return root, butler


def richExposure():
    visitInfo, wcs = makeVisitAndWcs(elevation=50.0, azimuth=120.0)
    exposure = makeExposure(shape=(24, 30), wcs=wcs, visitInfo=visitInfo, filterName="g",
                            origin=(5, 7))
    exposure.photoCalib = PhotoCalib(2.5)
    exposure.metadata["OBSERVER"] = "test"
    exposure.mask.addMaskPlane("CUSTOM")
    exposure.mask.array[3, 4] |= exposure.mask.getPlaneBitMask("CUSTOM")
    return exposure


def test_exposure_round_trip_keeps_every_attribute(repo):
    _, butler = repo
    exposure = richExposure()
    assert exposure.psf is not None and exposure.visitInfo is not None
    ref = butler.put(exposure, "dcrInputCoadd", run="run", **PATCH)
    read = butler.get(ref)
    np.testing.assert_array_equal(read.image.array, exposure.image.array.astype(np.float32))
    np.testing.assert_array_equal(read.variance.array,
                                  exposure.variance.array.astype(np.float32))
    np.testing.assert_array_equal(read.mask.array, exposure.mask.array)
    assert read.mask.planes == exposure.mask.planes
    assert read.bbox == exposure.bbox
    assert read.filter == exposure.filter
    assert read.photoCalib.calibrationMean == exposure.photoCalib.calibrationMean
    assert read.visitInfo == exposure.visitInfo
    np.testing.assert_allclose(read.wcs.wcs.crval, exposure.wcs.wcs.crval)
    np.testing.assert_allclose(read.wcs.wcs_pix2world([[5.0, 9.0]], 0),
                               exposure.wcs.wcs_pix2world([[5.0, 9.0]], 0), rtol=1e-12)
    np.testing.assert_allclose(read.psf.computeKernelImage(),
                               exposure.psf.computeKernelImage(), rtol=1e-12, atol=1e-15)
    assert read.metadata["OBSERVER"] == "test"
    # bbox is a read parameter: only the cutout is read
    box = Box(10, 12, 6, 4)
    cutout = butler.get(ref, parameters={"bbox": box})
    assert cutout.bbox == box
    np.testing.assert_array_equal(cutout.image.array, read[box].image.array)
    handle = butler.getDeferred(ref)
    assert handle.get(parameters={"bbox": box}).bbox == box


def test_subfilter_files_are_those_of_writeDcrModel(repo, tmp_path):
    _, butler = repo
    coadd = richExposure()
    model = DcrModel.fromImage(coadd, 3, filterInfo=Filter("g", 480.0, 150.0))
    refs = [butler.put(e, "dcrCoadd", run="run", subfilter=k, **PATCH)
            for k, e in enumerate(subfilterExposures(model))]
    writeDcrModel(model, tmp_path / "model")
    for k, ref in enumerate(refs):
        stored = butler.getURI(ref).ospath
        assert open(stored, "rb").read() == (tmp_path / "model" / f"dcrCoadd_{k}.fits").read_bytes()
        header = fits.getheader(stored, 0)
        assert (header["DCR-SUBF"], header["DCR-NSUB"]) == (k, 3)
    read = butler.get(refs[1])
    assert read.metadata["DCR-SUBF"] == 1 and read.metadata["DCR-NSUB"] == 3


def test_subfilter_put_refuses_exposure_without_model_keys(repo):
    _, butler = repo
    butler.registry.registerRun("refused")
    # the datastore wraps the formatter's error in a RuntimeError
    with pytest.raises(RuntimeError) as caught:
        butler.put(richExposure(), "dcrCoadd", run="refused", subfilter=0, **PATCH)
    assert isinstance(caught.value.__cause__, DcrValueError)
    assert "DCR-NSUB" in str(caught.value.__cause__)
    exposure = subfilterExposures(DcrModel.fromImage(richExposure(), 3))[2]
    with pytest.raises(RuntimeError) as caught:
        butler.put(exposure, "dcrCoadd", run="refused", subfilter=1, **PATCH)
    assert "not the dataset's subfilter" in str(caught.value.__cause__)
    assert not butler.query_datasets("dcrCoadd", collections="refused", explain=False)


def test_repository_without_storage_classes_or_dataset_types(tmp_path):
    Butler.makeRepo(tmp_path / "plain")
    plain = Butler.from_config(tmp_path / "plain", writeable=True)
    with pytest.raises(DcrConfigError, match="does not know dcrmodel's storage classes.*"
                                             "dcrmodel butler init"):
        checkRepository(plain)
    with pytest.raises(DcrConfigError, match="does not know dcrmodel's storage classes"):
        ingestFiles(plain, [], "run", coadd="missing.fits")
    ours = initRepository(tmp_path / "ours")
    ours.registry.removeDatasetType("dcrWarp")
    checkRepository(ours)
    with pytest.raises(DcrConfigError, match="no dataset type dcrWarp"):
        checkRepository(ours, ["dcrWarp"])
    assert set(DATASET_TYPES) >= {"dcrWarp", "dcrCoadd", "dcrTemplate"}


def test_init_refuses_an_existing_repository(repo):
    root, _ = repo
    with pytest.raises(DcrConfigError, match="already exists"):
        initRepository(root / "repo")
