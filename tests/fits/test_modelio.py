"""Tests of dcrmodel.fits.model: DCR model persistence as a directory of exposure files."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
from astropy.io import fits

from dcrmodel.errors import (
    DcrFitsError,
    DcrOutputError,
    DcrTypeError,
    DcrValueError,
    DcrWarning,
)
from dcrmodel.fits.exposure import (
    readExposure,
)
from dcrmodel.fits.model import (
    DcrModelDataRef,
    readDcrModel,
    writeDcrModel,
)
from dcrmodel.image import (
    Box,
    Filter,
    GaussianPsf,
    Image,
    Mask,
    PhotoCalib,
)
from dcrmodel.model.core import DcrModel
from helpers import makeTanWcs
from helpers.fits import (
    ORIGIN,
    PLANES,
    _assertSameSky,
    _parentPixels,
)

# --------------------------------------------------------------------------------------
# DCR model persistence
# --------------------------------------------------------------------------------------


def _makeModel(numSubfilters: int = 3, seed: int = 5) -> DcrModel:
    rng = np.random.default_rng(seed)
    box = Box(ORIGIN[0], ORIGIN[1], 12, 9)
    images = [
        Image(rng.normal(10.0 * k, 3.0, size=box.shape).astype(np.float32), bbox=box)
        for k in range(numSubfilters)
    ]
    mask = Mask(rng.integers(0, 64, size=box.shape).astype(np.int32), bbox=box, planes=PLANES)
    variance = Image(rng.uniform(1.0, 5.0, size=box.shape).astype(np.float32), bbox=box)
    wcs = makeTanWcs(rotation=20.0, crval=(30.0, -45.0), crpix=(ORIGIN[0] + 6, ORIGIN[1] + 4))
    return DcrModel(
        images,
        filterInfo=Filter.fromBand("r"),
        psf=GaussianPsf(2.8, alpha=-0.2, effectiveWavelength=622.324),
        mask=mask,
        variance=variance,
        photoCalib=PhotoCalib(0.125),
        wcs=wcs,
    )


def _assertModelsEqual(read: DcrModel, model: DcrModel, box: Box | None = None) -> None:
    box = model.bbox if box is None else box
    assert read.dcrNumSubfilters == model.dcrNumSubfilters
    assert read.bbox == box
    for readImage, image in zip(read.modelImages, model.modelImages, strict=True):
        np.testing.assert_array_equal(readImage.array, image[box].array)
    np.testing.assert_array_equal(read.mask.array, model.mask[box].array)
    assert read.mask.planes == model.mask.planes
    np.testing.assert_array_equal(read.variance.array, model.variance[box].array)
    assert read.filter == model.filter
    assert read.photoCalib.calibrationMean == model.photoCalib.calibrationMean
    assert isinstance(read.psf, GaussianPsf)
    assert (read.psf.fwhm, read.psf.alpha) == (model.psf.fwhm, model.psf.alpha)
    _assertSameSky(read.wcs, model.wcs, *_parentPixels(box))


def test_modelRoundTrip(tmp_path):
    model = _makeModel()
    path = tmp_path / "model"
    writeDcrModel(model, path)
    assert sorted(p.name for p in path.iterdir()) == [
        "dcrCoadd_0.fits", "dcrCoadd_1.fits", "dcrCoadd_2.fits"
    ]
    _assertModelsEqual(readDcrModel(path), model)


def test_modelFilesCarryTheSubfilterKeys(tmp_path):
    model = _makeModel()
    writeDcrModel(model, tmp_path / "model")
    eff, bw = Filter.fromBand("r").effectiveWavelength, Filter.fromBand("r").bandwidth
    for k in range(3):
        header = fits.getheader(tmp_path / "model" / f"dcrCoadd_{k}.fits", 0)
        assert header["DCR-SUBF"] == k
        assert header["DCR-NSUB"] == 3
        # Subfilter k covers [lambdaMin + k * bw / N, lambdaMin + (k + 1) * bw / N) (primer).
        assert header["DCR-WMIN"] == pytest.approx(eff - bw / 2 + k * bw / 3, abs=1e-9)
        assert header["DCR-WMAX"] == pytest.approx(eff - bw / 2 + (k + 1) * bw / 3, abs=1e-9)
        # Each file is a plain Rubin-layout exposure.
        exposure = readExposure(tmp_path / "model" / f"dcrCoadd_{k}.fits")
        np.testing.assert_array_equal(exposure.image.array, model[k].array)
        assert exposure.metadata["DCR-SUBF"] == k


def test_modelBboxRead(tmp_path):
    model = _makeModel()
    writeDcrModel(model, tmp_path / "model")
    box = Box(ORIGIN[0] + 3, ORIGIN[1] + 2, 5, 4)
    _assertModelsEqual(readDcrModel(tmp_path / "model", bbox=box), model, box)


def test_dataRefWorksWithFromDataRef(tmp_path):
    model = _makeModel(numSubfilters=2)
    writeDcrModel(model, tmp_path / "model")
    ref = DcrModelDataRef(tmp_path / "model")
    assert ref.numSubfilters == 2
    _assertModelsEqual(DcrModel.fromDataRef(ref), model)
    _assertModelsEqual(DcrModel.fromDataRef(ref, numSubfilters=2, tract=0, patch="1,1"), model)
    exposure = ref.get("dcrCoadd", subfilter=1, numSubfilters=2)
    np.testing.assert_array_equal(exposure.image.array, model[1].array)


def test_dataRefPickles(tmp_path):
    """Dask ships data references to workers."""
    model = _makeModel(numSubfilters=2)
    writeDcrModel(model, tmp_path / "model")
    ref = pickle.loads(pickle.dumps(DcrModelDataRef(tmp_path / "model")))
    box = Box(ORIGIN[0] + 1, ORIGIN[1] + 1, 3, 3)
    exposure = ref.get("dcrCoadd", subfilter=1, numSubfilters=2, bbox=box)
    np.testing.assert_array_equal(exposure.image.array, model[1][box].array)


def test_dataRefValidatesTheRequest(tmp_path):
    writeDcrModel(_makeModel(), tmp_path / "model")
    ref = DcrModelDataRef(tmp_path / "model")
    with pytest.raises(DcrFitsError, match="DCR-NSUB = 3, but numSubfilters=4 was requested"):
        ref.get("dcrCoadd", subfilter=0, numSubfilters=4)
    with pytest.raises(DcrFitsError, match="DCR-NSUB = 3, but numSubfilters=2"):
        DcrModel.fromDataRef(ref, numSubfilters=2)
    with pytest.raises(DcrValueError, match=r"subfilter must be in 0\.\.2"):
        ref.get("dcrCoadd", subfilter=3, numSubfilters=3)
    with pytest.raises(DcrValueError, match="subfilter index as an integer"):
        ref.get("dcrCoadd", numSubfilters=3)
    with pytest.raises(DcrFitsError, match="no file dcrCoadd_7.fits for subfilter 7"):
        ref.get("dcrCoadd", subfilter=7)
    with pytest.raises(DcrFitsError, match="no file dcrCoadd_sub_0.fits"):
        ref.get("dcrCoadd_sub", subfilter=0, numSubfilters=3)
    with pytest.raises(DcrFitsError, match="not a directory"):
        DcrModelDataRef(tmp_path / "model" / "dcrCoadd_0.fits")


def test_inconsistentModelFilesAreRejected(tmp_path):
    path = tmp_path / "model"
    writeDcrModel(_makeModel(), path)
    with fits.open(path / "dcrCoadd_1.fits", mode="update") as hdul:
        hdul[0].header["DCR-SUBF"] = 2
    with pytest.raises(DcrFitsError, match="dcrCoadd_1.fits, HDU 0: key DCR-SUBF = 2"):
        readDcrModel(path)
    writeDcrModel(_makeModel(), path)
    with fits.open(path / "dcrCoadd_2.fits", mode="update") as hdul:
        hdul[0].header["HIERARCH DCR-WMAX"] = 999.0
    with pytest.raises(DcrFitsError, match="key DCR-WMAX = 999.0 nm disagrees"):
        readDcrModel(path)
    writeDcrModel(_makeModel(), path)
    shutil.copy(path / "dcrCoadd_2.fits", path / "dcrCoadd_3.fits")
    with pytest.raises(DcrFitsError, match="holds dcrCoadd_3.fits beyond DCR-NSUB = 3"):
        readDcrModel(path)
    with fits.open(path / "dcrCoadd_0.fits", mode="update") as hdul:
        del hdul[0].header["DCR-NSUB"]
    # Without the key the files are counted (four here), which the others' key contradicts.
    with pytest.warns(DcrWarning, match="DCR-NSUB is missing"), pytest.raises(
        DcrFitsError, match="key DCR-NSUB = 3, but numSubfilters=4"
    ):
        readDcrModel(path)


def test_readDcrModelErrors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such DCR model directory"):
        readDcrModel(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DcrFitsError, match="no file dcrCoadd_0.fits"):
        readDcrModel(tmp_path / "empty")


def test_modelDirectoryReplacementRules(tmp_path):
    path = tmp_path / "model"
    writeDcrModel(_makeModel(numSubfilters=4, seed=1), path)
    # A model directory is replaced whole: no stale dcrCoadd_3 from the 4-subfilter model.
    model = _makeModel(numSubfilters=3, seed=2)
    writeDcrModel(model, path)
    assert len(list(path.iterdir())) == 3
    _assertModelsEqual(readDcrModel(path), model)
    # An empty directory is fine.
    (tmp_path / "empty").mkdir()
    writeDcrModel(model, tmp_path / "empty")
    # A directory of something else is not touched.
    other = tmp_path / "results"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DcrOutputError, match="already holds other files.*not a dcrmodel model"):
        writeDcrModel(model, other)
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(DcrOutputError, match="the output path .* is a file"):
        writeDcrModel(model, other / "notes.txt")
    with pytest.raises(DcrTypeError, match="writeDcrModel needs a DcrModel"):
        writeDcrModel([model[0]], tmp_path / "x")


def test_failedModelWriteLeavesTheEarlierModel(tmp_path, monkeypatch):
    path = tmp_path / "model"
    model = _makeModel(seed=1)
    writeDcrModel(model, path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    original = fits.HDUList.writeto
    calls = []

    def failOnSecond(self, fileobj, *args, **kwargs):
        calls.append(fileobj)
        if len(calls) == 2:
            raise OSError("No space left on device")
        return original(self, fileobj, *args, **kwargs)

    monkeypatch.setattr(fits.HDUList, "writeto", failOnSecond)
    with pytest.raises(OSError, match="No space left on device"):
        writeDcrModel(_makeModel(seed=2), path)
    monkeypatch.setattr(fits.HDUList, "writeto", original)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    _assertModelsEqual(readDcrModel(path), model)
