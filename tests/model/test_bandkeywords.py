"""Tests of the two ways to give a `DcrModel` its band.

The seed's constructors take ``filterInfo`` (a `Filter` or a Rubin band name); the
reference pipelines' current ones take ``effectiveWavelength`` and ``bandwidth`` (nm).
Both are accepted by `DcrModel` and `DcrModel.fromImage` and build the same `Filter`; mixing
them, or giving one wavelength alone, is refused.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from dcrmodel.errors import DcrMetadataError, DcrTypeError, DcrValueError
from dcrmodel.fits.model import readDcrModel, writeDcrModel
from dcrmodel.image import Box, Filter, GaussianPsf, Image, MaskedImage
from dcrmodel.model.checks import CUSTOM_BAND_NAME, resolveFilter
from dcrmodel.model.core import DcrModel
from helpers import makeExposure, makeVisitAndWcs, renderGaussians

EFF, BW = 480.0, 150.0
CUSTOM = Filter(CUSTOM_BAND_NAME, EFF, BW)


@pytest.fixture(scope="module")
def visitAndWcs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return makeVisitAndWcs(elevation=35.0, azimuth=110.0, rotation=15.0, crpix=(32.0, 32.0))


def sourceImages(shape=(64, 64), fluxes=(100.0, 200.0, 300.0)):
    bbox = Box.fromShape(shape)
    return [
        Image(renderGaussians(shape, [(31.3, 32.6, f)], sigma=2.0), bbox=bbox) for f in fluxes
    ]


def coadd(shape=(64, 64)):
    image = renderGaussians(shape, [(31.3, 32.6, 600.0)], sigma=2.0)
    return MaskedImage.fromArrays(image, variance=np.full(shape, 2.0))


def test_wavelengthKeywordsBuildTheSameFilter():
    model = DcrModel(sourceImages(), effectiveWavelength=EFF, bandwidth=BW)
    assert model.filter == CUSTOM
    assert model.effectiveWavelength == EFF and model.bandwidth == BW
    assert model.filter == DcrModel(sourceImages(), filterInfo=CUSTOM).filter
    assert "filter='custom'" in repr(model)
    # integers are wavelengths too, stored as floats
    model = DcrModel(sourceImages(), effectiveWavelength=480, bandwidth=150)
    assert model.filter == CUSTOM and isinstance(model.effectiveWavelength, float)


def test_fromImageWithWavelengthKeywords():
    model = DcrModel.fromImage(coadd(), 3, effectiveWavelength=EFF, bandwidth=BW)
    assert model.filter == CUSTOM
    assert model.effectiveWavelength == EFF and model.bandwidth == BW
    seed = DcrModel.fromImage(coadd(), 3, filterInfo=CUSTOM)
    for a, b in zip(model, seed, strict=True):
        np.testing.assert_array_equal(a.array, b.array)


def test_fromImageOfAnExposureKeepsItsBandName(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    exposure = makeExposure(shape=(20, 20), wcs=wcs, visitInfo=visitInfo, filterName="r")
    model = DcrModel.fromImage(exposure, 2, effectiveWavelength=EFF, bandwidth=BW)
    # the wavelengths given win over the exposure's band, whose name is kept
    assert model.filter == Filter("r", EFF, BW)
    # without them the exposure's filter is the default, as before
    assert DcrModel.fromImage(exposure, 2).filter == Filter.fromBand("r")


@pytest.mark.parametrize(
    ("keywords", "named"),
    [
        ({"effectiveWavelength": EFF}, "effectiveWavelength"),
        ({"bandwidth": BW}, "bandwidth"),
        ({"effectiveWavelength": EFF, "bandwidth": BW}, "effectiveWavelength and bandwidth"),
    ],
)
@pytest.mark.parametrize("filterInfo", [CUSTOM, "g"])
def test_filterInfoAndWavelengthsTogetherAreRefused(keywords, named, filterInfo):
    message = f"both filterInfo and {named} were given"
    with pytest.raises(DcrValueError, match=message):
        DcrModel(sourceImages(), filterInfo=filterInfo, **keywords)
    with pytest.raises(DcrValueError, match=message):
        DcrModel.fromImage(coadd(), 3, filterInfo=filterInfo, **keywords)


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"effectiveWavelength": EFF}, "effectiveWavelength was given without bandwidth"),
        ({"bandwidth": BW}, "bandwidth was given without effectiveWavelength"),
    ],
)
def test_oneWavelengthAloneIsRefused(keywords, message):
    with pytest.raises(DcrMetadataError, match=message):
        DcrModel(sourceImages(), **keywords)
    with pytest.raises(DcrMetadataError, match=message):
        DcrModel.fromImage(coadd(), 3, **keywords)


def test_badWavelengthsAreRefusedByName():
    with pytest.raises(DcrValueError, match="effectiveWavelength"):
        DcrModel(sourceImages(), effectiveWavelength=-480.0, bandwidth=BW)
    with pytest.raises(DcrValueError, match="bandwidth"):
        DcrModel(sourceImages(), effectiveWavelength=EFF, bandwidth=float("nan"))
    with pytest.raises(DcrValueError, match="twice the effective wavelength"):
        DcrModel.fromImage(coadd(), 3, effectiveWavelength=100.0, bandwidth=300.0)
    with pytest.raises(DcrTypeError, match="effectiveWavelength"):
        DcrModel(sourceImages(), effectiveWavelength="g", bandwidth=BW)


def test_wavelengthsAreKeywordOnly():
    with pytest.raises(TypeError):
        DcrModel(sourceImages(), None, None, None, None, None, None, EFF, BW)


def test_seedPathIsUnchanged():
    assert DcrModel(sourceImages(), CUSTOM).filter is CUSTOM
    assert DcrModel(sourceImages(), "r").filter == Filter.fromBand("r")
    assert DcrModel(sourceImages()).filter is None
    assert resolveFilter(None) is None and resolveFilter(CUSTOM) is CUSTOM


@pytest.mark.parametrize("engine", ["fourier", "spline"])
def test_templatesAreTheSameEitherWay(visitAndWcs, engine):
    visitInfo, wcs = visitAndWcs
    psf = GaussianPsf(2.3548 * 2.0)
    made = {
        "filterInfo": DcrModel(sourceImages(), filterInfo=CUSTOM, psf=psf, wcs=wcs),
        "wavelengths": DcrModel(
            sourceImages(), psf=psf, wcs=wcs, effectiveWavelength=EFF, bandwidth=BW
        ),
        "fromImage filterInfo": DcrModel.fromImage(coadd(), 3, filterInfo=CUSTOM, psf=psf,
                                                   wcs=wcs),
        "fromImage wavelengths": DcrModel.fromImage(
            coadd(), 3, psf=psf, wcs=wcs, effectiveWavelength=EFF, bandwidth=BW
        ),
    }
    bbox = Box(8, 8, 48, 48)
    templates = {
        name: model.buildMatchedTemplate(visitInfo=visitInfo, bbox=bbox, wcs=wcs, engine=engine)
        for name, model in made.items()
    }
    np.testing.assert_array_equal(templates["filterInfo"].array, templates["wavelengths"].array)
    np.testing.assert_array_equal(
        templates["fromImage filterInfo"].array, templates["fromImage wavelengths"].array
    )
    # the templates do depend on the band: another bandwidth gives another template
    other = DcrModel(sourceImages(), psf=psf, wcs=wcs, effectiveWavelength=EFF, bandwidth=60.0)
    different = other.buildMatchedTemplate(visitInfo=visitInfo, bbox=bbox, wcs=wcs, engine=engine)
    assert not np.allclose(different.array, templates["wavelengths"].array, rtol=1e-3, atol=0)


def test_pickleAndFitsRoundTrip(tmp_path):
    model = DcrModel([Image(np.full((4, 5), k, np.float32)) for k in range(3)],
                     effectiveWavelength=EFF, bandwidth=BW)
    assert pickle.loads(pickle.dumps(model)).filter == CUSTOM
    writeDcrModel(model, tmp_path / "model")
    assert readDcrModel(tmp_path / "model").filter == CUSTOM
