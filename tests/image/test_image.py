"""Tests of dcrmodel.image: `Exposure`, its CCDData conversion, and pickling of the image layer.

References used: astropy ``CCDData``/``WCS`` for the conversions.
"""

import math
import pickle

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, InverseVariance, StdDevUncertainty, VarianceUncertainty
from astropy.wcs import WCS

from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.image import Exposure
from dcrmodel.image.calibration import PhotoCalib
from dcrmodel.image.filters import Filter
from dcrmodel.image.geometry import Box
from dcrmodel.image.pixels import DEFAULT_MASK_PLANES, MaskedImage
from dcrmodel.image.psfmodels import GaussianPsf, ImagePsf
from dcrmodel.image.statistics import StatisticsControl


def _tanWcs(crpix=(20.0, 15.0), scale=0.2, rotation=30.0):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, -30.0]
    wcs.wcs.crpix = list(crpix)
    theta = math.radians(rotation)
    s = scale / 3600.0
    wcs.wcs.cd = [
        [-s * math.cos(theta), s * math.sin(theta)],
        [s * math.sin(theta), s * math.cos(theta)],
    ]
    return wcs


def _skyDistance(a, b):
    return a.separation(b).to_value(u.arcsec)


# ----------------------------------------------------------------------------------------
# Exposure
# ----------------------------------------------------------------------------------------


def _exposure(origin=(30, 40), shape=(25, 35)):
    rng = np.random.default_rng(7)
    image = rng.normal(size=shape).astype(np.float32)
    variance = rng.uniform(1, 2, size=shape).astype(np.float32)
    mask = np.zeros(shape, np.int32)
    mask[3, 4] = 1 << DEFAULT_MASK_PLANES["SAT"]
    return Exposure.fromArrays(
        image,
        variance=variance,
        mask=mask,
        origin=origin,
        wcs=_tanWcs(crpix=(origin[0] + 18.0, origin[1] + 12.0)),
        psf=GaussianPsf(3.0),
        filter=Filter.fromBand("g"),
        photoCalib=PhotoCalib(1.5),
        visitInfo={"placeholder": 1},
        OBSERVER="me",
        EXPTIME=30.0,
    )


def test_exposure_attributes_and_cutouts():
    exp = _exposure()
    assert exp.bbox == Box(30, 40, 35, 25)
    assert exp.image is exp.maskedImage.image and exp.mask is exp.maskedImage.mask
    assert exp.variance is exp.maskedImage.variance
    assert exp.metadata["OBSERVER"] == "me" and exp.metadata["EXPTIME"] == 30.0
    assert isinstance(exp.metadata, fits.Header)
    box = Box(35, 45, 10, 8)
    cut = exp[box]
    assert cut.bbox == box and cut.wcs is exp.wcs
    assert cut.psf is exp.psf and cut.filter is exp.filter and cut.photoCalib is exp.photoCalib
    assert cut.visitInfo is exp.visitInfo
    assert np.shares_memory(cut.image.array, exp.image.array)
    # The WCS is in parent coordinates: the same parent pixel is the same sky position.
    sky = cut.wcs.pixel_to_world(37, 50)
    assert _skyDistance(sky, exp.wcs.pixel_to_world(37, 50)) == 0.0
    clone = exp.clone()
    assert clone.wcs is not exp.wcs and clone.metadata is not exp.metadata
    assert not np.shares_memory(clone.image.array, exp.image.array)
    assert _skyDistance(clone.wcs.pixel_to_world(1, 2), exp.wcs.pixel_to_world(1, 2)) == 0.0


def test_exposure_validation():
    mi = MaskedImage.fromArrays(np.zeros((3, 3)))
    with pytest.raises(DcrTypeError, match="wcs must be an astropy.wcs.WCS"):
        Exposure(mi, wcs="TAN")
    linear = WCS(naxis=2)
    with pytest.raises(DcrValueError, match="2-axis celestial WCS"):
        Exposure(mi, wcs=linear)
    with pytest.raises(DcrTypeError, match="psf must be a Psf"):
        Exposure(mi, psf=np.ones((3, 3)))
    with pytest.raises(DcrTypeError, match="filter must be a Filter"):
        Exposure(mi, filter="g")
    exp = Exposure(mi)
    with pytest.raises(DcrTypeError, match="filter must be a Filter"):
        exp.filter = "g"
    with pytest.raises(DcrTypeError, match="photoCalib must be a PhotoCalib"):
        exp.photoCalib = 3.0
    with pytest.raises(DcrTypeError, match="maskedImage must be a MaskedImage"):
        exp.maskedImage = np.zeros((3, 3))
    with pytest.raises(DcrValueError, match="2-axis celestial WCS"):
        exp.wcs = linear
    assert exp.wcs is None and exp.filter is None
    with pytest.raises(DcrTypeError, match="use Exposure.fromArrays"):
        Exposure(np.zeros((3, 3)))
    extra = Exposure.fromArrays(np.zeros((2, 2)), exptime=15.0, LONG_KEY_NAME="x")
    assert extra.metadata["EXPTIME"] == 15.0 and extra.metadata["LONG_KEY_NAME"] == "x"
    fromDict = Exposure(mi, metadata={"airmass": 1.2})
    assert fromDict.metadata["AIRMASS"] == 1.2
    with pytest.raises(DcrTypeError, match="metadata must be an astropy Header"):
        Exposure(mi, metadata=[1, 2])
    with pytest.raises(DcrTypeError, match="unknown keyword 'visitinfo'"):
        Exposure.fromArrays(np.zeros((3, 3)), visitinfo=object())
    with pytest.raises(DcrShapeError, match=r"image shape \(3, 3\) and variance shape \(3, 4\)"):
        Exposure.fromArrays(np.zeros((3, 3)), variance=np.ones((3, 4)))


@pytest.mark.parametrize("origin", [(0, 0), (30, 40), (-5, 12)])
def test_ccddata_round_trip(origin):
    exp = _exposure(origin=origin)
    exp.mask.addMaskPlane("STREAK")
    exp.mask.array[1, 1] |= exp.mask.getPlaneBitMask("STREAK")
    ccd = exp.toCCDData()
    assert isinstance(ccd, CCDData) and isinstance(ccd.uncertainty, VarianceUncertainty)
    assert ccd.meta["LTV1"] == -origin[0] and ccd.meta["LTV2"] == -origin[1]
    assert ccd.meta["MP_STREAK"] == 9 and ccd.meta["MP_NO_DATA"] == 8
    # CCDData's WCS works on the array's own pixels: array pixel (i, j) is parent (i+x0, j+y0).
    assert (
        _skyDistance(
            ccd.wcs.pixel_to_world(3, 4), exp.wcs.pixel_to_world(3 + origin[0], 4 + origin[1])
        )
        < 1e-9
    )
    back = Exposure.fromCCDData(ccd, psf=exp.psf, filter=exp.filter)
    assert back.bbox == exp.bbox
    np.testing.assert_array_equal(back.image.array, exp.image.array)
    np.testing.assert_array_equal(back.variance.array, exp.variance.array)
    np.testing.assert_array_equal(back.mask.array, exp.mask.array)
    # The boolean CCDData mask flags the bad planes only (SAT here, not STREAK).
    np.testing.assert_array_equal(ccd.mask, (exp.mask.array & 2) != 0)
    assert ccd.mask[3, 4] and not ccd.mask[1, 1] and ccd.flags[1, 1] == 512
    assert back.mask.planes == exp.mask.planes
    assert back.image.dtype == np.float32
    assert back.metadata["OBSERVER"] == "me" and "LTV1" not in back.metadata
    assert not any(k.startswith("MP_") for k in back.metadata)
    pix = [(0.0, 0.0), (17.3, -4.2), (100.0, 250.0)]
    for x, y in pix:
        assert _skyDistance(back.wcs.pixel_to_world(x, y), exp.wcs.pixel_to_world(x, y)) < 1e-9
    assert back.psf is exp.psf and back.filter == exp.filter


def test_ccddata_fits_file_round_trip(tmp_path):
    exp = _exposure(origin=(5, -3))
    exp.mask.addMaskPlane("STREAK")
    exp.mask.array[0, 0] |= exp.mask.getPlaneBitMask("STREAK")
    path = tmp_path / "ccd.fits"
    exp.toCCDData().write(path, hdu_flags="FLAGS")
    back = Exposure.fromCCDData(CCDData.read(path, hdu_flags="FLAGS"))
    assert back.bbox == exp.bbox and back.image.dtype == np.float32
    assert back.image.dtype.isnative and back.variance.dtype.isnative
    np.testing.assert_array_equal(back.image.array, exp.image.array)
    np.testing.assert_array_equal(back.variance.array, exp.variance.array)
    np.testing.assert_array_equal(back.mask.array, exp.mask.array)
    assert back.mask.planes == exp.mask.planes
    assert set(back.metadata) == {"OBSERVER", "EXPTIME"}
    for x, y in [(5.0, -3.0), (20.0, 11.0)]:
        assert _skyDistance(back.wcs.pixel_to_world(x, y), exp.wcs.pixel_to_world(x, y)) < 1e-6


def test_ccddata_with_sip_and_other_uncertainties():
    exp = _exposure(origin=(12, -7))
    wcs = _tanWcs(crpix=(30.0, 20.0))
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    from astropy.wcs import Sip

    a = np.zeros((3, 3))
    b = np.zeros((3, 3))
    a[2, 0] = 2e-4
    b[0, 2] = -1e-4
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    exp.wcs = wcs
    ccd = exp.toCCDData()
    back = Exposure.fromCCDData(ccd)
    for x, y in [(12.0, -7.0), (40.0, 10.0), (0.0, 0.0)]:
        assert _skyDistance(back.wcs.pixel_to_world(x, y), wcs.pixel_to_world(x, y)) < 1e-9
        assert _skyDistance(ccd.wcs.pixel_to_world(x - 12, y + 7), wcs.pixel_to_world(x, y)) < 1e-9

    data = np.ones((4, 5))
    std = CCDData(data, unit="adu", uncertainty=StdDevUncertainty(np.full((4, 5), 3.0)),
                  mask=np.eye(4, 5, dtype=bool))  # fmt: skip
    fromStd = Exposure.fromCCDData(std)
    assert np.all(fromStd.variance.array == 9.0) and fromStd.bbox == Box(0, 0, 5, 4)
    assert fromStd.image.dtype == np.float64
    np.testing.assert_array_equal(fromStd.mask.array, np.eye(4, 5, dtype=np.int32))
    ivar = CCDData(data, unit="adu", uncertainty=InverseVariance(np.full((4, 5), 0.25)))
    assert np.all(Exposure.fromCCDData(ivar).variance.array == 4.0)
    plain = Exposure.fromCCDData(CCDData(data, unit="adu"))
    assert np.all(plain.variance.array == 1.0) and np.all(plain.mask.array == 0)
    with pytest.raises(DcrTypeError, match="needs an astropy.nddata.CCDData"):
        Exposure.fromCCDData(data)


# ----------------------------------------------------------------------------------------
# Pickling (Dask ships these between processes)
# ----------------------------------------------------------------------------------------


def _roundTrip(obj):
    return pickle.loads(pickle.dumps(obj))


def test_pickle_round_trips():
    exp = _exposure()
    view = exp.image[Box(31, 41, 3, 2)]
    for obj in (Box(1, 2, 3, 4), Filter.fromBand("r"), PhotoCalib(3.0)):
        assert _roundTrip(obj) == obj
    img = _roundTrip(view)
    assert img.bbox == view.bbox and img.dtype == view.dtype
    np.testing.assert_array_equal(img.array, view.array)
    mask = exp.mask.clone()
    mask.addMaskPlane("EXTRA")
    m2 = _roundTrip(mask)
    assert m2.planes == mask.planes and m2.bbox == mask.bbox
    np.testing.assert_array_equal(m2.array, mask.array)
    mi = _roundTrip(exp.maskedImage)
    assert mi.bbox == exp.bbox
    np.testing.assert_array_equal(mi.variance.array, exp.variance.array)
    psfs = (
        GaussianPsf(2.5, alpha=-0.2, effectiveWavelength=480.0, kernelSize=11),
        ImagePsf(GaussianPsf(3.0).computeKernelImage(), alpha=0.1, effectiveWavelength=600.0),
    )
    for psf in psfs:
        p2 = _roundTrip(psf)
        assert type(p2) is type(psf)
        assert (p2.fwhm, p2.alpha, p2.effectiveWavelength) == (
            psf.fwhm,
            psf.alpha,
            psf.effectiveWavelength,
        )
        np.testing.assert_array_equal(p2.computeKernelImage(520.0), psf.computeKernelImage(520.0))
    ctrl = _roundTrip(StatisticsControl(badMaskPlanes=("BAD",), numSigmaClip=2.0, numIter=4))
    assert (ctrl.badMaskPlanes, ctrl.numSigmaClip, ctrl.numIter) == (("BAD",), 2.0, 4)
    e2 = _roundTrip(exp)
    assert e2.bbox == exp.bbox and e2.filter == exp.filter and e2.photoCalib == exp.photoCalib
    assert e2.visitInfo == exp.visitInfo and e2.metadata["OBSERVER"] == "me"
    np.testing.assert_array_equal(e2.image.array, exp.image.array)
    np.testing.assert_array_equal(e2.mask.array, exp.mask.array)
    assert _skyDistance(e2.wcs.pixel_to_world(5, 6), exp.wcs.pixel_to_world(5, 6)) == 0.0
    assert e2.psf.fwhm == exp.psf.fwhm


# ----------------------------------------------------------------------------------------
# dcrmodel.image hands on the whole image layer
# ----------------------------------------------------------------------------------------


def test_image_package_hands_on_the_names_of_its_modules():
    import importlib

    import dcrmodel.image as imagemod

    homes = {
        "Box": "geometry",
        "WCS_GRID_TOLERANCE": "geometry",
        "wcsGridOffset": "geometry",
        "Image": "pixels",
        "Mask": "pixels",
        "MaskedImage": "pixels",
        "DEFAULT_MASK_PLANES": "pixels",
        "BAD_MASK_PLANES": "pixels",
        "Filter": "filters",
        "RUBIN_BANDS": "filters",
        "Psf": "psfmodels",
        "GaussianPsf": "psfmodels",
        "ImagePsf": "psfmodels",
        "FWHM_PER_SIGMA": "psfmodels",
        "PhotoCalib": "calibration",
        "StatisticsControl": "statistics",
        "Exposure": "exposure",
        "checkUsablePixels": "checks",
        "pixelDigest": "checks",
        "bandKey": "checks",
        "checkSameBand": "checks",
    }
    assert sorted(imagemod.__all__) == sorted(homes)
    for name, module in homes.items():
        home = importlib.import_module(f"dcrmodel.image.{module}")
        assert name in home.__all__
        assert getattr(imagemod, name) is getattr(home, name)
    # Pickles written when these classes were defined in dcrmodel.image still load.
    for obj in (Box(1, 2, 3, 4), Filter.fromBand("g"), PhotoCalib(2.0)):
        text = pickle.dumps(obj, protocol=0)
        old = text.replace(f"c{type(obj).__module__}\n".encode(), b"cdcrmodel.image\n")
        assert old != text
        assert pickle.loads(old) == obj
