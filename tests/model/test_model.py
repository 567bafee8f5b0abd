"""Tests of dcrmodel.model.core.DcrModel: every seed attribute and method, and bad input.

Templates are checked two independent ways: against Gaussians rendered analytically
(pixel-integrated, ``helpers.renderGaussians``) at the positions that ``calculateDcr``
predicts, and, with ``calculateDcr`` replaced by whole-pixel shifts, against plain array
slicing, which must agree to rounding error.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from dcrmodel.errors import (
    DcrConfigError,
    DcrMetadataError,
    DcrPsfWarning,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
)
from dcrmodel.image import (
    Box,
    Exposure,
    Filter,
    GaussianPsf,
    Image,
    Mask,
    MaskedImage,
    PhotoCalib,
    StatisticsControl,
)
from dcrmodel.model import templates as templates_module
from dcrmodel.model.core import DcrModel
from dcrmodel.physics.dcr import calculateDcr
from helpers import makeExposure, makeVisitAndWcs, renderGaussians

BAND = Filter("g", 480.0, 150.0)


@pytest.fixture(scope="module")
def visitAndWcs():
    """A visit at elevation 40 deg, west of the meridian, and a North-up TAN WCS."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return makeVisitAndWcs(elevation=40.0, azimuth=250.0, rotation=20.0, crpix=(40.0, 30.0))


def makeModel(n=3, shape=(40, 50), origin=(0, 0), seed=1, withMask=True, **kwargs):
    rng = np.random.default_rng(seed)
    bbox = Box.fromShape(shape, origin=origin)
    images = [Image(rng.normal(10.0, 1.0, size=shape), bbox=bbox) for _ in range(n)]
    mask = Mask(np.zeros(shape, dtype=np.int32), bbox=bbox) if withMask else None
    variance = Image(np.full(shape, 0.5), bbox=bbox)
    kwargs.setdefault("filterInfo", BAND)
    return DcrModel(images, mask=mask, variance=variance, **kwargs)


def pointSourceModel(
    shape=(64, 64),
    origin=(0, 0),
    position=(31.3, 32.6),
    fluxes=(100.0, 200.0, 300.0),
    sigma=2.0,
    wcs=None,
):
    bbox = Box.fromShape(shape, origin=origin)
    images = [
        Image(
            renderGaussians(shape, [(position[0], position[1], f)], sigma=sigma, origin=origin),
            bbox=bbox,
        )
        for f in fluxes
    ]
    return DcrModel(images, filterInfo=BAND, psf=GaussianPsf(2.3548 * sigma), wcs=wcs)


# ----------------------------------------------------------------------------------------
# Construction, attributes, container protocol
# ----------------------------------------------------------------------------------------


def test_attributes():
    psf = GaussianPsf(3.0)
    calib = PhotoCalib(2.0)
    model = makeModel(n=4, origin=(5, 7), psf=psf, photoCalib=calib)
    assert len(model) == model.dcrNumSubfilters == 4
    assert model.bbox == Box(5, 7, 50, 40)
    assert model.filter is BAND
    assert model.psf is psf and model.photoCalib is calib and model.wcs is None
    assert model.mask.bbox == model.bbox and model.variance.bbox == model.bbox
    assert model.effectiveWavelength == 480.0 and model.bandwidth == 150.0
    assert model.modelImages[2] is model[2]
    assert "dcrNumSubfilters=4" in repr(model)


def test_filterFromBandName():
    model = makeModel(filterInfo="r")
    assert model.filter == Filter.fromBand("r")


def test_missingFilterWavelengths():
    model = makeModel(filterInfo=None)
    with pytest.raises(DcrMetadataError, match="no filter.*effective wavelength"):
        _ = model.effectiveWavelength
    with pytest.raises(DcrMetadataError, match="no filter.*bandwidth"):
        _ = model.bandwidth


def test_indexingNegativeAndIteration():
    model = makeModel(n=3)
    images = model.modelImages
    assert model[-1] is images[2] and model[-3] is images[0] and model[np.int64(1)] is images[1]
    assert [img for img in model] == images
    with pytest.raises(IndexError, match="out of range for a model of 3 subfilters"):
        model[3]
    with pytest.raises(IndexError, match="valid: -3 .. 2"):
        model[-4]
    with pytest.raises(DcrTypeError, match="integer"):
        model[1.0]


def test_setitem():
    model = makeModel(n=3, origin=(2, 3))
    new = Image(np.ones(model.bbox.shape), bbox=model.bbox)
    model[-1] = new
    assert model[2] is new
    model[0] = np.full(model.bbox.shape, 4.0)
    assert model[0].bbox == model.bbox and np.all(model[0].array == 4.0)
    with pytest.raises(DcrShapeError, match="covers"):
        model[1] = Image(np.ones(model.bbox.shape))  # origin (0, 0), not the model's
    with pytest.raises(DcrShapeError, match="shape"):
        model[1] = np.ones((3, 3))
    bad = np.ones(model.bbox.shape)
    bad[1, 1] = np.nan
    with pytest.raises(DcrValueError, match="1 NaN or infinite"):
        model[1] = bad


def test_constructorRejectsBadInput():
    shape = (10, 12)
    good = [Image(np.ones(shape)) for _ in range(3)]
    with pytest.raises(DcrValueError, match="at least one subfilter"):
        DcrModel([])
    with pytest.raises(DcrShapeError, match="subfilter image 2 covers"):
        DcrModel([*good[:2], Image(np.ones(shape), origin=(1, 0))])
    with pytest.raises(DcrShapeError, match="shape"):
        DcrModel([*good[:2], np.ones((10, 11))])
    with pytest.raises(DcrShapeError, match="the mask covers"):
        DcrModel(good, mask=Mask(np.zeros((10, 13), dtype=np.int32)))
    with pytest.raises(DcrShapeError, match="the variance covers"):
        DcrModel(good, variance=Image(np.ones(shape), origin=(0, 1)))
    with pytest.raises(DcrTypeError, match="list of Images"):
        DcrModel(good[0])
    with pytest.raises(DcrTypeError, match="filterInfo"):
        DcrModel(good, filterInfo=480.0)
    with pytest.raises(DcrTypeError, match="wcs"):
        DcrModel(good, wcs="TAN")


def test_constructorNonFinite():
    shape = (10, 12)
    images = [Image(np.ones(shape)) for _ in range(2)]
    images[1].array[2, 3] = np.nan
    images[1].array[4, 5] = np.inf
    with pytest.raises(DcrValueError, match="subfilter image 1 holds 2 NaN or infinite"):
        DcrModel(images)
    mask = Mask(np.zeros(shape, dtype=np.int32))
    mask.array[2, 3] = mask.getPlaneBitMask("NO_DATA")
    with pytest.raises(DcrValueError, match="holds 1 NaN"):
        DcrModel(images, mask=mask)
    mask.array[4, 5] = mask.getPlaneBitMask("BAD")
    model = DcrModel(images, mask=mask)
    assert np.all(np.isfinite(model[1].array)) and model[1].array[2, 3] == 0.0
    # DETECTED is not a bad plane: a NaN under it is still an error
    images[0].array[0, 0] = np.nan
    mask.array[0, 0] = mask.getPlaneBitMask("DETECTED")
    with pytest.raises(DcrValueError, match="subfilter image 0 holds 1"):
        DcrModel(images, mask=mask)


# ----------------------------------------------------------------------------------------
# fromImage, fromDataRef, fromQuantum
# ----------------------------------------------------------------------------------------


def makeCoadd(shape=(20, 24), origin=(3, 4), seed=2):
    rng = np.random.default_rng(seed)
    image = rng.normal(30.0, 3.0, size=shape)
    variance = rng.uniform(4.0, 9.0, size=shape)
    mask = np.zeros(shape, dtype=np.int32)
    mask[5, 5] = 1 << 5  # DETECTED
    return MaskedImage.fromArrays(image, mask=mask, variance=variance, origin=origin)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_fromImageSplitsFluxAndVarianceEvenly(n):
    coadd = makeCoadd()
    before = coadd.image.array.copy()
    model = DcrModel.fromImage(coadd, n, filterInfo=BAND)
    assert len(model) == n and model.bbox == coadd.bbox
    for image in model:
        np.testing.assert_allclose(image.array, coadd.image.array / n, rtol=1e-14)
    np.testing.assert_allclose(sum(img.array for img in model), coadd.image.array, rtol=1e-13)
    np.testing.assert_allclose(model.variance.array, coadd.variance.array / n, rtol=1e-14)
    np.testing.assert_array_equal(model.mask.array, coadd.mask.array)
    # independent copies: the coadd and the other subfilters are untouched
    model[0].array[:] = -1.0
    model.mask.array[:] = 0
    np.testing.assert_array_equal(coadd.image.array, before)
    assert coadd.mask.array[5, 5] != 0
    if n > 1:
        np.testing.assert_allclose(model[1].array, before / n)


def test_fromImageTakesExposureMetadata(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    exposure = makeExposure(shape=(20, 20), wcs=wcs, visitInfo=visitInfo, filterName="r")
    exposure.photoCalib = PhotoCalib(3.0)
    model = DcrModel.fromImage(exposure, 2)
    assert model.filter == Filter.fromBand("r")
    assert (
        model.wcs is wcs and model.psf is exposure.psf and model.photoCalib is exposure.photoCalib
    )
    override = DcrModel.fromImage(exposure, 2, filterInfo=BAND)
    assert override.filter is BAND


def test_fromImageRejectsUnmaskedNans():
    coadd = makeCoadd()
    coadd.image.array[1, 2] = np.nan
    coadd.image.array[3, 4] = np.nan
    coadd.image.array[6, 7] = np.inf
    with pytest.raises(ValueError, match="3 NaN or infinite image pixels"):
        DcrModel.fromImage(coadd, 3)
    with pytest.raises(DcrValueError, match="3 NaN or infinite image pixels and 0"):
        DcrModel.fromImage(coadd, 3)
    coadd.variance.array[9, 9] = np.nan
    with pytest.raises(DcrValueError, match="1 NaN or infinite variance pixels"):
        DcrModel.fromImage(coadd, 3)


def test_fromImageZeroesMaskedNans():
    coadd = makeCoadd()
    noData = coadd.mask.getPlaneBitMask("NO_DATA")
    for y, x in [(1, 2), (3, 4)]:
        coadd.image.array[y, x] = np.nan
        coadd.variance.array[y, x] = np.nan
        coadd.mask.array[y, x] |= noData
    model = DcrModel.fromImage(coadd, 3)
    for image in model:
        assert np.all(np.isfinite(image.array))
        assert image.array[1, 2] == 0.0 and image.array[3, 4] == 0.0
    assert np.all(np.isfinite(model.variance.array)) and model.variance.array[3, 4] == 0.0
    assert np.isnan(coadd.image.array[1, 2])  # the coadd itself is not modified


def test_fromImageRejectsZeroSubfilters():
    with pytest.raises(DcrValueError, match="at least 1"):
        DcrModel.fromImage(makeCoadd(), 0)
    with pytest.raises(DcrTypeError, match="integer"):
        DcrModel.fromImage(makeCoadd(), 2.0)
    with pytest.raises(DcrTypeError, match="MaskedImage or Exposure"):
        DcrModel.fromImage(np.ones((4, 4)), 2)


def subfilterExposures(n=3, shape=(16, 18), origin=(10, 20), wcs=None):
    exposures = []
    for k in range(n):
        maskedImage = MaskedImage.fromArrays(
            np.full(shape, float(k + 1)),
            variance=np.full(shape, 0.25),
            mask=np.zeros(shape, dtype=np.int32),
            origin=origin,
        )
        exposures.append(
            Exposure(
                maskedImage, wcs=wcs, psf=GaussianPsf(2.0), filter=BAND, photoCalib=PhotoCalib(1.5)
            )
        )
    return exposures


class DictDataRef:
    """A minimal data reference over a dict {(datasetType, subfilter): Exposure}."""

    def __init__(self, datasets, numSubfilters=None):
        self.datasets = datasets
        self.calls = []
        if numSubfilters is not None:
            self.numSubfilters = numSubfilters

    def get(self, datasetType, subfilter, numSubfilters, **kwargs):
        self.calls.append((datasetType, subfilter, numSubfilters, kwargs))
        return self.datasets[(datasetType, subfilter)]


def test_fromDataRef(visitAndWcs):
    _, wcs = visitAndWcs
    exposures = subfilterExposures(wcs=wcs)
    dataRef = DictDataRef({("dcrCoadd", k): e for k, e in enumerate(exposures)})
    model = DcrModel.fromDataRef(dataRef, numSubfilters=3, tract=9, patch="1,2")
    assert len(model) == 3 and model.bbox == exposures[0].bbox
    for k in range(3):
        assert model[k] is exposures[k].image
    assert model.filter is BAND and model.wcs is wcs and model.photoCalib is exposures[0].photoCalib
    assert model.mask is exposures[0].mask and model.variance is exposures[0].variance
    assert dataRef.calls == [("dcrCoadd", k, 3, {"tract": 9, "patch": "1,2"}) for k in range(3)]
    # another dataset type, and numSubfilters from the data reference
    subRef = DictDataRef(
        {("dcrCoadd_sub", k): e for k, e in enumerate(exposures[:2])}, numSubfilters=2
    )
    model2 = DcrModel.fromDataRef(subRef, datasetType="dcrCoadd_sub")
    assert len(model2) == 2 and model2[1] is exposures[1].image


def test_fromDataRefErrors():
    exposures = subfilterExposures()
    dataRef = DictDataRef({("dcrCoadd", k): e for k, e in enumerate(exposures)})
    with pytest.raises(DcrValueError, match="numSubfilters is not given"):
        DcrModel.fromDataRef(dataRef)
    assert dataRef.calls == []
    with pytest.raises(DcrValueError, match="at least 1"):
        DcrModel.fromDataRef(dataRef, numSubfilters=0)
    with pytest.raises(DcrTypeError, match="get"):
        DcrModel.fromDataRef(object(), numSubfilters=3)
    arrays = DictDataRef({("dcrCoadd", k): np.ones((3, 3)) for k in range(3)})
    with pytest.raises(DcrTypeError, match="returned a ndarray for subfilter 0"):
        DcrModel.fromDataRef(arrays, numSubfilters=3)
    shifted = subfilterExposures()
    shifted[2] = subfilterExposures(origin=(11, 20))[2]
    with pytest.raises(DcrShapeError, match="subfilter 2 covers"):
        DcrModel.fromDataRef(
            DictDataRef({("dcrCoadd", k): e for k, e in enumerate(shifted)}), numSubfilters=3
        )


class Handle:
    """A minimal deferred dataset handle: a dataId and get()."""

    def __init__(self, subfilter, exposure):
        self.dataId = {"tract": 0, "patch": 5, "band": "g", "subfilter": subfilter}
        self.exposure = exposure
        self.gets = 0

    def get(self):
        self.gets += 1
        return self.exposure


def test_fromQuantumOrdersBySubfilter():
    exposures = subfilterExposures(n=4)
    handles = {
        patch: Handle(k, exposures[k]) for patch, k in zip((7, 3, 11, 0), (2, 0, 3, 1), strict=True)
    }
    model = DcrModel.fromQuantum(handles)
    assert len(model) == 4
    for k in range(4):
        assert model[k] is exposures[k].image
    assert model.psf is exposures[0].psf and model.filter is BAND
    assert all(h.gets == 1 for h in handles.values())
    listModel = DcrModel.fromQuantum(list(handles.values()))
    assert [float(img.array[0, 0]) for img in listModel] == [1.0, 2.0, 3.0, 4.0]


def test_fromQuantumErrors():
    exposures = subfilterExposures(n=3)
    missing = {0: Handle(0, exposures[0]), 1: Handle(2, exposures[2]), 2: Handle(3, exposures[1])}
    with pytest.raises(DcrValueError, match=r"missing \[1\], unexpected \[3\]"):
        DcrModel.fromQuantum(missing)
    assert all(h.gets == 0 for h in missing.values())  # checked before any get()
    duplicate = [Handle(0, exposures[0]), Handle(1, exposures[1]), Handle(1, exposures[2])]
    with pytest.raises(DcrValueError, match="subfilter 1 appears more than once"):
        DcrModel.fromQuantum(duplicate)
    with pytest.raises(DcrValueError, match="empty"):
        DcrModel.fromQuantum({})
    noId = Handle(0, exposures[0])
    noId.dataId = {"patch": 1}
    with pytest.raises(DcrTypeError, match=r"dataId\['subfilter'\]"):
        DcrModel.fromQuantum([noId])


# ----------------------------------------------------------------------------------------
# Reference image and assign
# ----------------------------------------------------------------------------------------


def test_getReferenceImage():
    model = makeModel(n=3, origin=(4, 6))
    expected = (model[0].array + model[1].array + model[2].array) / 3.0
    np.testing.assert_allclose(model.getReferenceImage(), expected, rtol=1e-14)
    sub = Box(10, 12, 7, 5)
    ref = model.getReferenceImage(sub)
    assert ref.shape == (5, 7)
    np.testing.assert_allclose(ref, expected[12 - 6 : 17 - 6, 10 - 4 : 17 - 4], rtol=1e-14)
    ref[:] = 0.0  # a new array, not a view of the model
    assert np.all(model[0].array != 0.0)
    with pytest.raises(DcrShapeError, match="not inside the model's box"):
        model.getReferenceImage(Box(0, 0, 5, 5))


def test_assignWithBBox():
    model = makeModel(n=3, shape=(30, 40), origin=(0, 0))
    original = [img.array.copy() for img in model]
    subBox = Box(10, 5, 12, 8)
    subImages = [Image(np.full(subBox.shape, 100.0 + k), bbox=subBox) for k in range(3)]
    subModel = DcrModel(subImages, filterInfo=BAND)

    model.assign(subModel)  # bbox defaults to the sub-model's
    inside = subBox.slices(model.bbox)
    for k in range(3):
        assert np.all(model[k].array[inside] == 100.0 + k)
        outside = np.ones(model.bbox.shape, dtype=bool)
        outside[inside] = False
        np.testing.assert_array_equal(model[k].array[outside], original[k][outside])

    model2 = makeModel(n=3, shape=(30, 40), origin=(0, 0))
    region = Box(12, 6, 3, 2)
    model2.assign(subModel, bbox=region)
    changed = np.zeros(model2.bbox.shape, dtype=bool)
    changed[region.slices(model2.bbox)] = True
    for k in range(3):
        assert np.all(model2[k].array[changed] == 100.0 + k)
        np.testing.assert_array_equal(model2[k].array[~changed], original[k][~changed])

    # a sub-model overhanging the model: only the overlap is copied
    edgeBox = Box(35, 25, 10, 10)
    edgeModel = DcrModel([Image(np.full(edgeBox.shape, -5.0), bbox=edgeBox) for _ in range(3)])
    model.assign(edgeModel)
    assert np.all(model[0].array[25:, 35:] == -5.0) and model[0].array[24, 34] != -5.0


def test_assignErrors():
    model = makeModel(n=3)
    with pytest.raises(ValueError, match="the new model has 2 subfilters but this model has 3"):
        model.assign(makeModel(n=2))
    far = DcrModel([Image(np.ones((4, 4)), origin=(500, 500)) for _ in range(3)])
    with pytest.raises(DcrShapeError, match="no pixel in common"):
        model.assign(far)
    with pytest.raises(DcrTypeError, match="DcrModel"):
        model.assign([np.ones((4, 4))] * 3)


# ----------------------------------------------------------------------------------------
# Templates
# ----------------------------------------------------------------------------------------


def analyticTemplate(shape, origin, position, fluxes, shifts, split, sigma=2.0):
    """Sum of Gaussians rendered at the DCR-shifted positions (quarter points when split)."""
    expected = np.zeros(shape)
    for flux, shift in zip(fluxes, shifts, strict=True):
        if split:
            s0, s1 = np.asarray(shift, dtype=float)
            points = [(0.75 * s0 + 0.25 * s1, 0.5), (0.25 * s0 + 0.75 * s1, 0.5)]
        else:
            points = [(np.asarray(shift, dtype=float), 1.0)]
        for (dy, dx), weight in points:
            source = (position[0] + dx, position[1] + dy, weight * flux)
            expected += renderGaussians(shape, [source], sigma=sigma, origin=origin)
    return expected


@pytest.mark.parametrize("engine", ["spline", "fourier"])
@pytest.mark.parametrize("split", [False, True])
def test_templateOfPointSourceMatchesAnalyticShifts(visitAndWcs, split, engine):
    visitInfo, wcs = visitAndWcs
    origin, shape, position = (10, 5), (64, 64), (41.3, 37.6)
    fluxes = (100.0, 200.0, 300.0)
    model = pointSourceModel(shape=shape, origin=origin, position=position, fluxes=fluxes, wcs=wcs)
    # the reference's quarter-point split (the Fourier engine's default is the exact smear)
    template = model.buildMatchedTemplate(
        visitInfo=visitInfo,
        bbox=model.bbox,
        wcs=wcs,
        splitSubfilters=split,
        engine=engine,
        mode="split" if split else None,
    )
    assert isinstance(template, Image) and template.bbox == model.bbox
    shifts = calculateDcr(visitInfo, wcs, 480.0, 150.0, 3, splitSubfilters=split, bbox=model.bbox)
    # the test is only meaningful if the shifts are well above the interpolation error
    assert max(abs(v) for v in np.ravel(shifts)) > 1.0
    expected = analyticTemplate(shape, origin, position, fluxes, shifts, split)
    # cubic spline interpolation of a sigma = 2 px Gaussian: error ~2e-4 of the peak
    np.testing.assert_allclose(template.array, expected, atol=1e-3 * expected.max())
    # and the template is not just the unshifted model
    unshifted = sum(img.array for img in model)
    assert np.abs(unshifted - expected).max() > 50 * np.abs(template.array - expected).max()


@pytest.mark.filterwarnings("ignore::dcrmodel.errors.DcrPsfWarning")
def test_templateFromExposureUsesItsMetadata(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    model = pointSourceModel(wcs=wcs)
    cut = Box(8, 6, 40, 44)
    exposure = makeExposure(shape=cut.shape, origin=cut.begin, wcs=wcs, visitInfo=visitInfo)
    fromExposure = model.buildMatchedTemplate(exposure)
    # the exposure's PSF (sharper than the model's here) is the template's
    direct = model.buildMatchedTemplate(visitInfo=visitInfo, bbox=cut, wcs=wcs, psf=exposure.psf)
    assert fromExposure.bbox == cut
    np.testing.assert_array_equal(fromExposure.array, direct.array)
    unmatched = model.buildMatchedTemplate(exposure, matchPsf=False)
    np.testing.assert_array_equal(
        unmatched.array, model.buildMatchedTemplate(visitInfo=visitInfo, bbox=cut, wcs=wcs).array
    )
    assert np.abs(unmatched.array - fromExposure.array).max() > 0.1 * unmatched.array.max()


def test_templateOfAnExposureOffTheModelGridIsWarpedOntoIt(visitAndWcs):
    # A visit whose WCS points 0.036 arcsec (0.18 pixel) elsewhere is off the model's grid:
    # its template is made on the model's grid and warped onto the visit's, so its source
    # lands where the visit's WCS puts it (see tests/model/test_templates_visitgrid.py).
    from astropy.wcs import WCS

    from dcrmodel.warp import mapPixels

    visitInfo, wcs = visitAndWcs
    model = pointSourceModel(wcs=wcs)
    shifted = wcs.deepcopy()
    shifted.wcs.crval = wcs.wcs.crval + np.array([0.0, 1e-5])
    shifted.wcs.set()
    onGrid = model.buildMatchedTemplate(visitInfo=visitInfo, bbox=model.bbox, wcs=wcs)
    offGrid = model.buildMatchedTemplate(visitInfo=visitInfo, bbox=model.bbox, wcs=shifted)
    assert offGrid.bbox == model.bbox

    def centroid(array):
        ys, xs = np.indices(array.shape)
        return (xs * array).sum() / array.sum(), (ys * array).sum() / array.sum()

    x0, y0 = centroid(onGrid.array)
    x1, y1 = mapPixels(wcs, shifted, x0, y0)
    assert abs(float(y1) - y0) > 0.1
    # Lanczos 3 does not reproduce a linear ramp: its weights' first moment at a 0.18 pixel
    # offset is 0.161 pixel, which moves a centroid by that much instead.
    np.testing.assert_allclose(centroid(offGrid.array), (float(x1), float(y1)), atol=0.025)
    # the same grid written out and read back (header round trip) is on the grid
    same = WCS(wcs.to_header())
    onSame = model.buildMatchedTemplate(visitInfo=visitInfo, bbox=model.bbox, wcs=same)
    np.testing.assert_allclose(onSame.array, onGrid.array, rtol=0, atol=1e-9)


def test_templateConservesFluxAwayFromEdges(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    shape, origin = (64, 72), (0, 0)
    bbox = Box.fromShape(shape, origin=origin)
    rng = np.random.default_rng(5)
    images = []
    for k in range(3):
        sources = [
            (x, y, rng.uniform(50, 500)) for x, y in [(20.2, 20.7), (50.5, 40.1), (35.9, 30.3)]
        ]
        images.append(Image(renderGaussians(shape, sources, sigma=1.5 + 0.3 * k), bbox=bbox))
    model = DcrModel(images, filterInfo=BAND)
    total = sum(float(img.array.sum()) for img in images)
    # the Fourier engine's interpolation kernel leaves ~1e-8 of the flux in the padding
    for split, engine, rel in [
        (False, "spline", 1e-9), (True, "spline", 1e-9), (False, "fourier", 1e-7),
        (True, "fourier", 1e-7),
    ]:
        template = model.buildMatchedTemplate(
            visitInfo=visitInfo, bbox=bbox, wcs=wcs, splitSubfilters=split, engine=engine
        )
        assert template.array.sum() == pytest.approx(total, rel=rel)
        # per source: a window of +-8 px around the middle source keeps its flux
        window = (slice(30 - 8, 30 + 9), slice(36 - 8, 36 + 9))
        modelWindow = sum(float(img.array[window].sum()) for img in images)
        assert template.array[window].sum() == pytest.approx(modelWindow, rel=1e-3)


def test_templateOfSubBoxMatchesFullTemplate(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    model = pointSourceModel(wcs=wcs, position=(30.0, 33.0))
    full = model.buildMatchedTemplate(visitInfo=visitInfo, bbox=model.bbox, wcs=wcs)
    # a box whose edge cuts through the source: shifting it must see the model beyond it
    sub = Box(24, 20, 10, 30)
    part = model.buildMatchedTemplate(visitInfo=visitInfo, bbox=sub, wcs=wcs)
    # the zenith direction is measured at each box's centre: same within 1e-5 here
    np.testing.assert_allclose(
        part.array, full.array[sub.slices(model.bbox)], atol=2e-4 * full.array.max()
    )


class FakeDcr:
    """Stand-in for calculateDcr returning chosen whole-pixel shifts, recording its call."""

    def __init__(self, shifts, splitShifts=None):
        self.shifts = shifts
        self.splitShifts = splitShifts
        self.calls = []

    def __call__(
        self,
        visitInfo,
        wcs,
        effectiveWavelength,
        bandwidth,
        dcrNumSubfilters,
        splitSubfilters=False,
        bbox=None,
    ):
        self.calls.append((effectiveWavelength, bandwidth, dcrNumSubfilters, splitSubfilters, bbox))
        return self.splitShifts if splitSubfilters else self.shifts


def shiftedBySlicing(model, bbox, shift):
    """Model image values moved by whole pixels (dy, dx), read by plain array indexing."""
    dy, dx = (int(v) for v in shift)
    source = bbox.shiftedBy(-dx, -dy)
    return model.array[source.slices(model.bbox)]


@pytest.fixture
def integerModel():
    """A random model on a box with a non-zero origin, and a WCS (unused by FakeDcr)."""
    rng = np.random.default_rng(11)
    bbox = Box(100, 200, 30, 26)
    images = [Image(rng.normal(5.0, 2.0, size=bbox.shape), bbox=bbox) for _ in range(3)]
    return DcrModel(images, filterInfo=BAND), bbox.grow(-4)


@pytest.mark.parametrize("engine", ["spline", "fourier"])
def test_templateWithWholePixelShiftsIsExact(monkeypatch, integerModel, visitAndWcs, engine):
    model, inner = integerModel
    shifts = [(2.0, 0.0), (0.0, 0.0), (-1.0, 3.0)]
    fake = FakeDcr(shifts)
    monkeypatch.setattr(templates_module, "calculateDcr", fake)
    visit = object()  # any visit: the shifts come from the stand-in
    template = model.buildMatchedTemplate(
        visitInfo=visit, bbox=inner, wcs=visitAndWcs[1], splitSubfilters=False, engine=engine
    )
    expected = sum(shiftedBySlicing(m, inner, s) for m, s in zip(model, shifts, strict=True))
    np.testing.assert_allclose(template.array, expected, rtol=0, atol=1e-10)
    assert fake.calls == [(480.0, 150.0, 3, False, inner)]


@pytest.mark.parametrize("engine", ["spline", "fourier"])
def test_templateSplitAndThresholdWithWholePixelShifts(
    monkeypatch, integerModel, visitAndWcs, engine
):
    model, inner = integerModel
    wcs = visitAndWcs[1]
    # edge shifts whose quarter points are whole pixels: (1, 0)/(-1, 0), (0, 3)/(0, 1), (0, 0)
    edges = [((2.0, 0.0), (-2.0, 0.0)), ((0.0, 4.0), (0.0, 0.0)), ((0.0, 0.0), (0.0, 0.0))]
    monkeypatch.setattr(templates_module, "calculateDcr", FakeDcr(None, splitShifts=edges))
    template = model.buildMatchedTemplate(
        visitInfo=object(), bbox=inner, wcs=wcs, engine=engine, mode="split"
    )
    quarters = [((1, 0), (-1, 0)), ((0, 3), (0, 1)), ((0, 0), (0, 0))]
    expected = sum(
        0.5 * (shiftedBySlicing(m, inner, q0) + shiftedBySlicing(m, inner, q1))
        for m, (q0, q1) in zip(model, quarters, strict=True)
    )
    np.testing.assert_allclose(template.array, expected, rtol=0, atol=1e-10)
    # spans are 4 px: above a threshold of 5 px each subfilter moves once by its edges' mean
    template = model.buildMatchedTemplate(
        visitInfo=object(), bbox=inner, wcs=wcs, splitThreshold=5.0, engine=engine, mode="split"
    )
    means = [(0, 0), (0, 2), (0, 0)]
    expected = sum(shiftedBySlicing(m, inner, s) for m, s in zip(model, means, strict=True))
    np.testing.assert_allclose(template.array, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("engine", ["spline", "fourier"])
def test_templateAmplifyModel(monkeypatch, integerModel, visitAndWcs, engine):
    model, inner = integerModel
    shifts = [(1.0, 1.0), (0.0, -2.0), (-3.0, 0.0)]
    monkeypatch.setattr(templates_module, "calculateDcr", FakeDcr(shifts))
    gain = 2.5
    template = model.buildMatchedTemplate(
        visitInfo=object(),
        bbox=inner,
        wcs=visitAndWcs[1],
        splitSubfilters=False,
        amplifyModel=gain,
        engine=engine,
    )
    reference = Image(model.getReferenceImage(), bbox=model.bbox)
    expected = np.zeros(inner.shape)
    for m, s in zip(model, shifts, strict=True):
        amplified = Image(reference.array + gain * (m.array - reference.array), bbox=model.bbox)
        expected += shiftedBySlicing(amplified, inner, s)
    np.testing.assert_allclose(template.array, expected, rtol=0, atol=1e-10)
    # amplifying the differences leaves the sum of the unshifted subfilters unchanged
    monkeypatch.setattr(templates_module, "calculateDcr", FakeDcr([(0.0, 0.0)] * 3))
    flat = model.buildMatchedTemplate(
        visitInfo=object(), bbox=inner, wcs=visitAndWcs[1], splitSubfilters=False, amplifyModel=7.0
    )
    np.testing.assert_allclose(
        flat.array, 3 * reference.array[inner.slices(model.bbox)], rtol=1e-12
    )


def test_templateBadInput(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    model = pointSourceModel(wcs=wcs)
    with pytest.raises(DcrMetadataError, match="missing: wcs"):
        model.buildMatchedTemplate(visitInfo=visitInfo, bbox=model.bbox)
    with pytest.raises(ValueError, match="missing: visitInfo, bbox"):
        model.buildMatchedTemplate(wcs=wcs)
    exposure = makeExposure(shape=(10, 10), wcs=None, visitInfo=visitInfo)
    with pytest.raises(DcrMetadataError, match="no wcs"):
        model.buildMatchedTemplate(exposure)
    exposure = makeExposure(shape=(10, 10), wcs=wcs, visitInfo=None)
    with pytest.raises(DcrMetadataError, match="no visitInfo"):
        model.buildMatchedTemplate(exposure)
    with pytest.raises(DcrShapeError, match="not inside the model's box"):
        model.buildMatchedTemplate(visitInfo=visitInfo, bbox=Box(50, 50, 20, 20), wcs=wcs)
    noFilter = DcrModel(list(model.modelImages))
    with pytest.raises(DcrMetadataError, match="no filter"):
        noFilter.buildMatchedTemplate(visitInfo=visitInfo, bbox=model.bbox, wcs=wcs)
    kwargs = {"visitInfo": visitInfo, "bbox": model.bbox, "wcs": wcs}
    with pytest.raises(DcrConfigError, match="unknown template engine 'fft'"):
        model.buildMatchedTemplate(engine="fft", **kwargs)
    with pytest.raises(DcrValueError, match="order"):
        model.buildMatchedTemplate(order=7, **kwargs)
    with pytest.raises(DcrValueError, match="splitThreshold must be at least 0"):
        model.buildMatchedTemplate(splitThreshold=-1.0, **kwargs)
    with pytest.raises(DcrValueError, match="amplifyModel must be finite"):
        model.buildMatchedTemplate(amplifyModel=np.nan, **kwargs)
    with pytest.raises(DcrShapeError, match="the mask covers"):
        model.buildMatchedTemplate(mask=Mask.fromBox(Box(0, 0, 5, 5)), **kwargs)


def test_buildMatchedExposure(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    science = makeExposure(shape=(40, 44), noise=2.0, wcs=wcs, visitInfo=visitInfo, filterName="g")
    science.photoCalib = PhotoCalib(4.0)
    model = DcrModel.fromImage(science, 3)
    target = makeExposure(shape=(30, 30), origin=(6, 4), wcs=wcs, visitInfo=visitInfo)
    templateExposure = model.buildMatchedExposure(target)
    assert isinstance(templateExposure, Exposure) and templateExposure.bbox == target.bbox
    np.testing.assert_array_equal(
        templateExposure.image.array, model.buildMatchedTemplate(target).array
    )
    # variance: the sum of 3 independent subfilters of variance V/3 is the coadd's V
    np.testing.assert_allclose(
        templateExposure.variance.array, science.variance.array[target.bbox.slices(science.bbox)]
    )
    np.testing.assert_array_equal(
        templateExposure.mask.array, science.mask.array[target.bbox.slices(science.bbox)]
    )
    assert templateExposure.wcs is wcs and templateExposure.visitInfo is visitInfo
    # PSF-matched to the target, so the template carries the target's PSF
    assert templateExposure.filter == science.filter and templateExposure.psf is target.psf
    assert model.buildMatchedExposure(target, matchPsf=False).psf is science.psf
    assert templateExposure.photoCalib is science.photoCalib
    # an explicit mask, from the separate metadata
    mask = Mask.fromBox(model.bbox)
    mask.array[10, 12] = mask.getPlaneBitMask("SAT")
    other = model.buildMatchedExposure(visitInfo=visitInfo, bbox=target.bbox, wcs=wcs, mask=mask)
    np.testing.assert_array_equal(other.mask.array, mask.array[target.bbox.slices(mask.bbox)])
    other.mask.array[:] = 0  # a copy
    assert mask.array[10, 12] != 0
    with pytest.raises(DcrMetadataError, match="missing: bbox"):
        model.buildMatchedExposure(visitInfo=visitInfo, wcs=wcs)


# ----------------------------------------------------------------------------------------
# Conditioning and regularisation
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("gain", [0.25, 1.0, 3.0])
def test_conditionDcrModel(gain):
    model = makeModel(n=3, origin=(2, 2))
    rng = np.random.default_rng(3)
    bbox = Box(10, 8, 20, 15)
    old = [m.array[bbox.slices(model.bbox)].copy() for m in model]
    new = [Image(rng.normal(0.0, 5.0, size=bbox.shape), bbox=bbox) for _ in range(3)]
    before = [n.array.copy() for n in new]
    assert model.conditionDcrModel(new, bbox, gain=gain) is None
    for n, b, o in zip(new, before, old, strict=True):
        np.testing.assert_allclose(n.array, (gain * b + o) / (1.0 + gain), rtol=1e-13)
    # the model itself is not changed
    np.testing.assert_array_equal(model[0].array[bbox.slices(model.bbox)], old[0])


def test_conditionDcrModelArraysAndDefaultGain():
    model = makeModel(n=2)
    new = [np.zeros(model.bbox.shape), np.full(model.bbox.shape, 2.0)]
    model.conditionDcrModel(new, model.bbox)
    np.testing.assert_allclose(new[0], model[0].array / 2.0)
    np.testing.assert_allclose(new[1], (2.0 + model[1].array) / 2.0)


def test_conditionDcrModelErrors():
    model = makeModel(n=3)
    new = [np.zeros(model.bbox.shape) for _ in range(3)]
    with pytest.raises(DcrValueError, match="2 images given for a model of 3"):
        model.conditionDcrModel(new[:2], model.bbox)
    with pytest.raises(DcrValueError, match="gain must be greater than 0"):
        model.conditionDcrModel(new, model.bbox, gain=0.0)
    with pytest.raises(DcrShapeError, match="shape"):
        model.conditionDcrModel([np.zeros((3, 3))] * 3, model.bbox)


def test_applyImageThresholdsSparesIsolatedPixelsAndClampsRegions():
    image = np.zeros((40, 40))
    image[5, 5] = 3.0  # an isolated noisy pixel
    image[10, 20:22] = 3.0  # two adjacent pixels
    image[30, 3:33] = 3.0  # a one-pixel-wide streak
    image[18:26, 18:26] = 3.0  # an 8x8 region
    image[0:6, 34:40] = 3.0  # a 6x6 region in the corner
    original = image.copy()
    DcrModel.applyImageThresholds(image, highThreshold=np.ones_like(image), regularizationWidth=2)
    assert image[5, 5] == 3.0 and np.all(image[10, 20:22] == 3.0) and np.all(image[30, 3:33] == 3.0)
    region = image[18:26, 18:26]
    # the opening by a disk of radius 2 rounds the corners of the square by 3 pixels each
    assert np.all(region[1:-1, 1:-1] == 1.0) and np.all(region[0, 2:-2] == 1.0)
    assert np.count_nonzero(region == 1.0) == 64 - 4 * 3
    # a region touching the edges is judged by its part inside the image
    assert np.all(image[0:4, 36:40] == 1.0) and np.all(image[0:6, 36:40] == 1.0)
    # nothing else changed
    changed = image != original
    assert np.all(original[changed] == 3.0)

    # width 0: every flagged pixel is clamped
    image = original.copy()
    DcrModel.applyImageThresholds(image, highThreshold=1.0, regularizationWidth=0)
    assert image.max() == 1.0


def test_applyImageThresholdsLow():
    model = makeModel(n=1)
    image = Image(np.full((20, 20), 5.0))
    image.array[2:12, 2:12] = -4.0
    image.array[15, 15] = -4.0
    low = np.full((20, 20), 1.0)
    model.applyImageThresholds(image, lowThreshold=low, regularizationWidth=1)
    assert np.all(image.array[3:11, 3:11] == 1.0) and image.array[15, 15] == -4.0
    # NaN thresholds never flag
    array = np.full((10, 10), 5.0)
    DcrModel.applyImageThresholds(
        array, highThreshold=np.full((10, 10), np.nan), regularizationWidth=0
    )
    assert np.all(array == 5.0)


def test_applyImageThresholdsErrors():
    with pytest.raises(DcrShapeError, match="highThreshold has shape"):
        DcrModel.applyImageThresholds(np.zeros((5, 5)), highThreshold=np.zeros((4, 5)))
    with pytest.raises(DcrTypeError, match="floating-point"):
        DcrModel.applyImageThresholds(np.zeros((5, 5), dtype=int), highThreshold=1.0)
    with pytest.raises(DcrConfigError, match="regularizationWidth"):
        DcrModel.applyImageThresholds(np.zeros((5, 5)), highThreshold=1.0, regularizationWidth=-1)


def test_regularizeModelIter():
    shape = (40, 40)
    bbox = Box.fromShape(shape)
    old = np.full(shape, 10.0)
    old[25:35, 2:12] = -10.0  # negative values in the last solution
    model = DcrModel([Image(old.copy()), Image(np.full(shape, 10.0))], filterInfo=BAND)
    new = old.copy()
    new[3, 3] = 1000.0  # isolated: left alone
    new[5:15, 20:30] = 30.0  # grew by 3x: clamped to 2x
    new[20:23, 30:38] = 2.0  # fell by 5x: clamped to old / 2
    new[16:19, 5:12] = 15.0  # within the limits
    new[25:30, 2:12] = -50.0  # negative, grew 5x in magnitude: clamped to -2|old|
    new[30:35, 2:12] = 50.0  # changed sign: bounded in magnitude by 2|old|
    newImage = Image(new)
    model.regularizeModelIter(0, newImage, bbox, regularizationFactor=2.0, regularizationWidth=1)
    result = newImage.array
    assert result[3, 3] == 1000.0
    assert np.all(result[6:14, 21:29] == 20.0)
    assert np.all(result[21, 31:37] == 5.0)
    assert np.all(result[16:19, 5:12] == 15.0)
    assert np.all(result[26:29, 3:11] == -20.0)
    assert np.all(result[31:34, 3:11] == 20.0)
    # negative subfilter index and an array over a sub-box
    sub = Box(20, 5, 10, 10)
    array = np.full(sub.shape, 100.0)
    model.regularizeModelIter(-1, array, sub, regularizationFactor=4.0, regularizationWidth=2)
    assert np.all(array == 40.0)
    with pytest.raises(DcrConfigError, match="at least 1"):
        model.regularizeModelIter(0, array, sub, regularizationFactor=0.5)
    with pytest.raises(IndexError):
        model.regularizeModelIter(2, array, sub, regularizationFactor=2.0)
    with pytest.raises(DcrShapeError, match="shape"):
        model.regularizeModelIter(0, array, model.bbox, regularizationFactor=2.0)


def test_regularizeModelFreqErrors():
    model = makeModel(n=3)
    new = [m.array.copy() for m in model]
    with pytest.raises(DcrValueError, match="2 images given"):
        model.regularizeModelFreq(new[:2], model.bbox, None, 4.0)
    with pytest.raises(DcrConfigError, match="at least 1"):
        model.regularizeModelFreq(new, model.bbox, None, 0.9)
    with pytest.raises(DcrValueError, match="unknown|NOPE"):
        model.regularizeModelFreq(new, model.bbox, None, 4.0, convergenceMaskPlanes="NOPE")


def test_calculateNoiseCutoff():
    shape = (64, 64)
    rng = np.random.default_rng(8)
    sigma = 2.0
    values = rng.normal(0.0, sigma, size=shape)
    values += renderGaussians(shape, [(20.0, 20.0, 5000.0), (44.0, 40.0, 3000.0)], sigma=2.0)
    mask = Mask.fromBox(Box.fromShape(shape))
    detected = renderGaussians(shape, [(20.0, 20.0, 5000.0), (44.0, 40.0, 3000.0)], sigma=2.0) > 0.5
    mask.array[detected] |= mask.getPlaneBitMask("DETECTED")
    values[:4, :] = 1e6  # a border of garbage, excluded by bufferSize
    values[50:54, 10:14] = -1e4  # saturated and flagged: excluded as bad
    mask.array[50:54, 10:14] |= mask.getPlaneBitMask("SAT")
    model = DcrModel([Image(values)], mask=mask, filterInfo=BAND)
    statsCtrl = StatisticsControl()
    cutoff = model.calculateNoiseCutoff(Image(values), statsCtrl, bufferSize=4)
    assert cutoff == pytest.approx(sigma, rel=0.05)
    assert model.calculateNoiseCutoff(values, statsCtrl, 4, numSigma=3.0) == pytest.approx(
        3 * cutoff
    )
    # the sources must be excluded: flagging nothing as DETECTED raises the estimate
    plain = Mask.fromBox(model.bbox)
    plain.array[50:54, 10:14] = plain.getPlaneBitMask("SAT")
    withSources = model.calculateNoiseCutoff(values, statsCtrl, 4, mask=plain)
    assert withSources > 1.1 * cutoff
    # a sub-box of an Image
    sub = Box(30, 8, 30, 30)
    subCutoff = model.calculateNoiseCutoff(Image(values), statsCtrl, 0, bbox=sub)
    assert subCutoff == pytest.approx(sigma, rel=0.1)
    with pytest.raises(DcrValueError, match="bufferSize 40 leaves no pixels"):
        model.calculateNoiseCutoff(values, statsCtrl, 40)
    everything = Mask.fromBox(model.bbox)
    everything.array[:] = everything.getPlaneBitMask("DETECTED")
    with pytest.raises(DcrValueError, match="no background pixels"):
        model.calculateNoiseCutoff(values, statsCtrl, 4, mask=everything)


def test_pickleRoundTrip(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    model = pointSourceModel(wcs=wcs)
    clone = pickle.loads(pickle.dumps(model))
    assert len(clone) == len(model) and clone.bbox == model.bbox and clone.filter == model.filter
    for a, b in zip(clone, model, strict=True):
        np.testing.assert_array_equal(a.array, b.array)
    kwargs = {"visitInfo": visitInfo, "bbox": model.bbox, "wcs": wcs}
    np.testing.assert_array_equal(
        clone.buildMatchedTemplate(**kwargs).array, model.buildMatchedTemplate(**kwargs).array
    )


@pytest.mark.parametrize(
    ("rotation", "flipped", "azimuth"), [(200.0, True, 100.0), (75.0, False, 30.0)]
)
def test_templateMatchesAnalyticShiftsForAnyOrientation(rotation, flipped, azimuth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        visitInfo, wcs = makeVisitAndWcs(
            elevation=35.0, azimuth=azimuth, rotation=rotation, flipped=flipped, crpix=(30.0, 30.0)
        )
    position, fluxes = (30.4, 29.8), (300.0, 100.0, 50.0)
    model = pointSourceModel(position=position, fluxes=fluxes, wcs=wcs)
    template = model.buildMatchedTemplate(
        visitInfo=visitInfo, bbox=model.bbox, wcs=wcs, mode="split"
    )
    shifts = calculateDcr(visitInfo, wcs, 480.0, 150.0, 3, splitSubfilters=True, bbox=model.bbox)
    expected = analyticTemplate(model.bbox.shape, (0, 0), position, fluxes, shifts, split=True)
    np.testing.assert_allclose(template.array, expected, atol=1e-3 * expected.max())
    # the blue-heavy source's centroid moved toward the zenith: along the bluest edge's shift
    yy, xx = np.indices(model.bbox.shape)
    centroid = np.array([(template.array * yy).sum(), (template.array * xx).sum()])
    centroid /= template.array.sum()
    blue = np.asarray(shifts[0][0])
    assert np.dot(centroid - np.array([position[1], position[0]]), blue) > 0


def test_fourierEngineCacheFollowsModelChanges(monkeypatch, integerModel, visitAndWcs):
    model, inner = integerModel
    shifts = [(1.0, 0.0), (0.0, 2.0), (-2.0, -1.0)]
    monkeypatch.setattr(templates_module, "calculateDcr", FakeDcr(shifts))
    kwargs = {
        "visitInfo": object(),
        "bbox": inner,
        "wcs": visitAndWcs[1],
        "splitSubfilters": False,
        "engine": "fourier",
    }

    def expected():
        return sum(shiftedBySlicing(m, inner, s) for m, s in zip(model, shifts, strict=True))

    model.buildMatchedTemplate(**kwargs)
    engine = model._templateCache.fourier
    model.buildMatchedTemplate(**kwargs)
    assert model._templateCache.fourier is engine  # transforms reused between templates
    model[1] = Image(np.full(model.bbox.shape, 3.0), bbox=model.bbox)  # replaced image
    np.testing.assert_allclose(model.buildMatchedTemplate(**kwargs).array, expected(), atol=1e-10)
    model[0].array[5:10, 5:10] += 50.0  # changed in place
    np.testing.assert_allclose(model.buildMatchedTemplate(**kwargs).array, expected(), atol=1e-10)
    sub = DcrModel([Image(np.full((6, 6), -7.0), origin=(110, 210)) for _ in range(3)])
    model.assign(sub)
    np.testing.assert_allclose(model.buildMatchedTemplate(**kwargs).array, expected(), atol=1e-10)
    # a visit with larger shifts than the engine holds rebuilds it
    shifts[:] = [(9.0, 0.0), (0.0, -9.0), (0.0, 0.0)]
    big = inner.grow(-6)
    kwargs["bbox"] = big
    template = model.buildMatchedTemplate(**kwargs)
    inner = big
    np.testing.assert_allclose(template.array, expected(), atol=1e-10)
    # the cache is not pickled
    assert pickle.loads(pickle.dumps(model))._templateCache.fourier is None


# ----------------------------------------------------------------------------------------
# PSF-matched templates, engines and subfilter modes
# ----------------------------------------------------------------------------------------


def _chromaticVisitTemplate(shape, position, fluxes, shifts, sigmas):
    """Analytic template: subfilter k a pixel-integrated Gaussian of sigma_k at its shift."""
    expected = np.zeros(shape)
    for flux, (dy, dx), sigma in zip(fluxes, shifts, sigmas, strict=True):
        source = (position[0] + dx, position[1] + dy, flux)
        expected += renderGaussians(shape, [source], sigma=sigma)
    return expected


@pytest.mark.parametrize("engine", ["fourier", "spline"])
def test_templateIsMatchedToTheVisitPsfPerSubfilter(visitAndWcs, engine):
    """A broader, chromatic visit PSF: each subfilter re-blurred to its own width."""
    visitInfo, wcs = visitAndWcs
    position, fluxes, sigmaModel = (31.3, 32.6), (300.0, 200.0, 100.0), 1.6
    model = pointSourceModel(position=position, fluxes=fluxes, sigma=sigmaModel, wcs=wcs)
    sigmaVisit, alpha = 2.4, -0.2
    visitPsf = GaussianPsf(2.3548 * sigmaVisit, alpha=alpha, effectiveWavelength=480.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DcrPsfWarning)  # a broader visit is never damped
        template = model.buildMatchedTemplate(
            visitInfo=visitInfo, bbox=model.bbox, wcs=wcs, splitSubfilters=False,
            engine=engine, psf=visitPsf,
        )
    shifts = calculateDcr(visitInfo, wcs, 480.0, 150.0, 3, bbox=model.bbox)
    centres = (430.0, 480.0, 530.0)
    sigmas = [sigmaVisit * (c / 480.0) ** alpha for c in centres]
    expected = _chromaticVisitTemplate(model.bbox.shape, position, fluxes, shifts, sigmas)
    # sampled-Gaussian transfer functions against pixel-integrated Gaussians: ~1e-4 of the
    # peak; the spline shift adds ~2e-4
    np.testing.assert_allclose(template.array, expected, atol=1.5e-3 * expected.max())
    # ignoring the chromatic PSF (one width for all subfilters) is measurably worse
    flat = _chromaticVisitTemplate(model.bbox.shape, position, fluxes, shifts, [sigmaVisit] * 3)
    assert np.abs(flat - expected).max() > 5 * np.abs(template.array - expected).max()


def test_sharperVisitIsFlaggedInTheTemplateMask(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    model = pointSourceModel(position=(31.3, 32.6), fluxes=(3e3, 2e3, 1e3), sigma=2.0, wcs=wcs)
    sharp = makeExposure(shape=(64, 64), wcs=wcs, visitInfo=visitInfo, noise=1.0,
                         psf=GaussianPsf(2.3548 * 1.2))
    with pytest.warns(DcrPsfWarning, match="sharper than the DCR model's PSF"):
        templateExposure = model.buildMatchedExposure(sharp)
    assert templateExposure.psf is sharp.psf
    flagged = templateExposure.mask.array & templateExposure.mask.getPlaneBitMask("PSF_DAMPED")
    flagged = flagged != 0
    yy, xx = np.indices(flagged.shape)
    distance = np.hypot(xx - 31.3, yy - 32.6)
    assert flagged[distance < 3].all() and not flagged[distance > 20].any()
    # warned once per model; the mask given to buildMatchedTemplate gets the plane too
    mask = Mask.fromBox(model.bbox)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DcrPsfWarning)
        model.buildMatchedTemplate(sharp, mask=mask)
    np.testing.assert_array_equal(
        (mask.array & mask.getPlaneBitMask("PSF_DAMPED")) != 0, flagged
    )
    # a broader visit: nothing flagged
    broad = makeExposure(shape=(64, 64), wcs=wcs, visitInfo=visitInfo, noise=1.0,
                         psf=GaussianPsf(2.3548 * 2.6))
    quiet = model.buildMatchedExposure(broad)
    assert "PSF_DAMPED" not in quiet.mask.planes or not (
        quiet.mask.array & quiet.mask.getPlaneBitMask("PSF_DAMPED")
    ).any()


def test_smearModeAndDefaultEngine(visitAndWcs):
    visitInfo, wcs = visitAndWcs
    model = pointSourceModel(wcs=wcs)
    kwargs = {"visitInfo": visitInfo, "bbox": model.bbox, "wcs": wcs}
    default = model.buildMatchedTemplate(**kwargs)
    smear = model.buildMatchedTemplate(engine="fourier", mode="smear", **kwargs)
    np.testing.assert_array_equal(default.array, smear.array)
    # a smear is not the quarter-point split, but close to it for sub-pixel spans
    split = model.buildMatchedTemplate(engine="fourier", mode="split", **kwargs)
    difference = np.abs(smear.array - split.array).max()
    assert 0 < difference < 0.05 * split.array.max()
    # splitSubfilters=False: one shift per subfilter in both engines
    mean = model.buildMatchedTemplate(splitSubfilters=False, **kwargs)
    np.testing.assert_array_equal(
        mean.array, model.buildMatchedTemplate(mode="mean", **kwargs).array
    )
    # an undersampled model PSF makes the spline engine the default
    coarse = DcrModel([img.clone() for img in model], filterInfo=BAND, psf=GaussianPsf(1.5),
                      wcs=wcs)
    np.testing.assert_array_equal(
        coarse.buildMatchedTemplate(**kwargs, matchPsf=False).array,
        coarse.buildMatchedTemplate(**kwargs, engine="spline", matchPsf=False).array,
    )
    with pytest.raises(DcrConfigError, match="mode 'smear'.*needs engine='fourier'"):
        model.buildMatchedTemplate(engine="spline", mode="smear", **kwargs)
    with pytest.raises(DcrConfigError, match="unknown subfilter mode 'box'"):
        model.buildMatchedTemplate(mode="box", **kwargs)
    with pytest.raises(DcrTypeError, match="psf must be a dcrmodel.image.Psf"):
        model.buildMatchedTemplate(psf="seeing", **kwargs)
    with pytest.raises(DcrValueError, match=r"must be in \[-1, 1\]"):
        model.buildMatchedTemplate(psf=GaussianPsf(4.0, alpha=-1.5, effectiveWavelength=480.0),
                                   **kwargs)
    with pytest.raises(DcrValueError, match="psfDamping must be > 0"):
        model.buildMatchedTemplate(psfDamping=0.0, psf=GaussianPsf(5.0), **kwargs)
