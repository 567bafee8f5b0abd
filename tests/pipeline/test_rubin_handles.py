import numpy as np
import pytest

pytest.importorskip("lsst.pipe.base")

from lsst.daf.butler import Butler, CollectionType  # noqa: E402

from dcrmodel import DcrModel  # noqa: E402
from dcrmodel.errors import DcrMetadataError, DcrValueError  # noqa: E402
from dcrmodel.image import Box, Filter, MaskedImage  # noqa: E402
from dcrmodel.pipeline import initRepository, insertSubfilters, subfilterExposures  # noqa: E402

PATCH = {"skymap": "s", "tract": 0, "patch": 0, "band": "g"}
BAND = Filter("g", 480.0, 150.0)


def coadd(value):
    shape = (12, 14)
    return MaskedImage.fromArrays(np.full(shape, value), variance=np.full(shape, 2.0),
                                  origin=(3, 4))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """Runs 'three' and 'four' hold a 3- and a 4-subfilter model of one patch."""
    root = tmp_path_factory.mktemp("handles")
    butler = initRepository(root / "repo")
    insertSubfilters(butler, "g", 4)
    registry = butler.registry
    registry.insertDimensionData(
        "skymap", {"name": "s", "hash": b"s", "tract_max": 1, "patch_nx_max": 2,
                   "patch_ny_max": 1})
    registry.insertDimensionData("tract", {"skymap": "s", "id": 0})
    for patch in (0, 1):
        registry.insertDimensionData(
            "patch", {"skymap": "s", "tract": 0, "id": patch, "cell_x": patch, "cell_y": 0})
    models = {}
    for run, n in (("three", 3), ("four", 4)):
        registry.registerRun(run)
        models[run] = DcrModel.fromImage(coadd(float(n)), n, filterInfo=BAND)
        for k, exposure in enumerate(subfilterExposures(models[run])):
            butler.put(exposure, "dcrCoadd", run=run, subfilter=k, **PATCH)
    registry.registerCollection("chain", CollectionType.CHAINED)
    registry.setCollectionChain("chain", ["three", "four"])
    return butler, models, root / "repo"


def handles(butler, collections):
    refs = butler.query_datasets("dcrCoadd", collections=collections, find_first=True,
                                 explain=False, **PATCH)
    return [butler.getDeferred(ref) for ref in refs]


def assertSameModel(model, expected):
    assert len(model) == len(expected) and model.filter == expected.filter
    for ours, theirs in zip(model, expected, strict=True):
        np.testing.assert_array_equal(ours.array, theirs.array.astype(np.float32))


def test_fromQuantum_on_real_handles(repo):
    butler, models, _ = repo
    found = handles(butler, "four")
    assert type(found[0]).__name__ == "DeferredDatasetHandle"
    assertSameModel(DcrModel.fromQuantum(found[::-1]), models["four"])
    byId = {handle.dataId: handle for handle in found}
    assertSameModel(DcrModel.fromQuantum(byId), models["four"])
    # the reference's extra arguments
    model = DcrModel.fromQuantum(found, 480.0, 150.0, 4)
    assert model.filter == BAND and len(model) == 4
    other = DcrModel.fromQuantum(found, effectiveWavelength=500.0, bandwidth=120.0)
    assert other.filter == Filter("g", 500.0, 120.0)
    with pytest.raises(DcrValueError, match="numSubfilters=3 but the handles hold"):
        DcrModel.fromQuantum(found, 480.0, 150.0, 3)


def test_mixed_run_chain_is_refused(repo):
    butler, _, _ = repo
    found = handles(butler, "chain")
    assert sorted(h.ref.run for h in found) == ["four", "three", "three", "three"]
    with pytest.raises(DcrMetadataError, match=r"belongs to a 3-subfilter model but 4 subfilters"
                                               r".*3, 3, 3, 4"):
        DcrModel.fromQuantum(found)


def test_handles_of_two_patches_are_refused_before_any_read(repo):
    butler, models, _ = repo
    butler.registry.registerRun("patch1")
    exposures = subfilterExposures(models["three"])
    butler.put(exposures[1], "dcrCoadd", run="patch1", subfilter=1,
               **{**PATCH, "patch": 1})
    found = handles(butler, "three")
    other = butler.getDeferred("dcrCoadd", collections="patch1", subfilter=1,
                               **{**PATCH, "patch": 1})
    with pytest.raises(DcrValueError, match="2 different patch values"):
        DcrModel.fromQuantum([found[0], other, found[2]])


def test_fromDataRef_on_a_real_butler(repo):
    butler, models, root = repo
    reader = Butler.from_config(str(root), collections="four")
    model = DcrModel.fromDataRef(reader, numSubfilters=4, dataId=PATCH)
    assertSameModel(model, models["four"])
    keywords = DcrModel.fromDataRef(reader, "dcrCoadd", 4, skymap="s", tract=0, patch=0,
                                    band="g")
    assertSameModel(keywords, models["four"])
    box = Box(5, 6, 4, 3)
    cutout = DcrModel.fromDataRef(butler, numSubfilters=3, collections="three", bbox=box,
                                  **PATCH)
    assert cutout.bbox == box
    with pytest.raises(DcrMetadataError, match="belongs to a 3-subfilter model"):
        DcrModel.fromDataRef(butler, numSubfilters=4, collections="chain", **PATCH)
    with pytest.raises(DcrValueError, match="numSubfilters is not given"):
        DcrModel.fromDataRef(reader, dataId=PATCH)
