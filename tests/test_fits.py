"""Tests of dcrmodel.fits: the Rubin exposure layout, its errors, and DCR model persistence."""

from __future__ import annotations

import os
import pickle
import shutil
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle, SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, Sip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcrmodel.errors import (
    DcrFitsError,
    DcrOutputError,
    DcrTypeError,
    DcrValueError,
    DcrWarning,
)
from dcrmodel.fits import (
    VISIT_KEYS,
    DcrModelDataRef,
    filterFromHeader,
    photoCalibFromHeader,
    readDcrModel,
    readExposure,
    readExposureBBox,
    visitInfoFromHeader,
    visitInfoToHeader,
    writeDcrModel,
    writeExposure,
)
from dcrmodel.image import (
    Box,
    Exposure,
    Filter,
    GaussianPsf,
    Image,
    ImagePsf,
    Mask,
    MaskedImage,
    PhotoCalib,
)
from dcrmodel.model import DcrModel
from dcrmodel.observation import VisitInfo
from dcrmodel.site import Observatory, Weather, defaultWeather
from helpers import makeTanWcs, makeVisitInfo

ORIGIN = (1000, 2000)
SHAPE = (30, 40)  # (ny, nx)
PLANES = {
    "BAD": 0,
    "SAT": 1,
    "INTRP": 2,
    "CR": 3,
    "EDGE": 4,
    "DETECTED": 5,
    "DETECTED_NEGATIVE": 6,
    "SUSPECT": 7,
    "NO_DATA": 8,
    "STREAK": 12,
    "myPlane": 31,
}


_DATE = Time("2026-03-15T04:00:00.123456789", scale="tai")
# The Earth rotation angle of _DATE (IAU 2000, with UT1 - TAI of the bundled IERS tables;
# the last digits do not matter, the angle must only belong to the date within a minute).
_ERA = Angle(232.28786456059703, u.deg)


def _visitInfo() -> VisitInfo:
    """A visit with awkward floats (long reprs) in every numeric field."""
    return VisitInfo(
        boresightRaDec=SkyCoord(150.12345678901234 * u.deg, -30.987654321098765 * u.deg),
        boresightAzAlt=(Angle(271.00000000000006, u.deg), Angle(47.123456789012344, u.deg)),
        boresightAirmass=1.3651234567890123,
        boresightRotAngle=Angle(-0.00012345678901234567, u.deg),
        rotType="SKY",
        observatory=Observatory(-70.749417 * u.deg, -30.244639 * u.deg, 2663.0),
        weather=Weather(11.123456789012345, 74315.12345678901, 13.000000000000002),
        era=_ERA,
        date=_DATE,
        exposureTime=1.2345678901234567e-05,
        id=2026031500123,
    )


def _makeExposure(
    origin: tuple[int, int] = ORIGIN,
    shape: tuple[int, int] = SHAPE,
    seed: int = 1,
    wcs: WCS | None = None,
) -> Exposure:
    rng = np.random.default_rng(seed)
    ny, nx = shape
    image = rng.normal(0.0, 100.0, size=shape).astype(np.float32)
    image[0, 0] = np.float32(-1.5e-42)  # subnormal float32
    image[0, 1] = np.float32(3.4e38)
    variance = rng.uniform(1e-30, 1e4, size=shape).astype(np.float32)
    mask = rng.integers(0, 2**31 - 1, size=shape, dtype=np.int64).astype(np.int32)
    mask[1, 1] = np.int32(-(2**31))  # bit 31 alone
    maskedImage = MaskedImage(
        Image(image, origin=origin),
        Mask(mask, origin=origin, planes=PLANES),
        Image(variance, origin=origin),
    )
    if wcs is None:
        wcs = makeTanWcs(
            rotation=33.0, pixelScale=0.2, crval=(150.1, -30.9),
            crpix=(origin[0] + nx / 2.0 + 0.25, origin[1] + ny / 2.0 - 0.5),
        )
    metadata = fits.Header()
    metadata["OBSERVER"] = "somebody"
    metadata["HIERARCH LONG-KEYWORD-NAME"] = 1.0000000000000002
    metadata["SEEING"] = 0.7
    return Exposure(
        maskedImage,
        wcs=wcs,
        psf=GaussianPsf(3.5, alpha=-0.2, effectiveWavelength=482.685),
        visitInfo=_visitInfo(),
        filter=Filter.fromBand("g"),
        photoCalib=PhotoCalib(0.0575),
        metadata=metadata,
    )


def _parentPixels(bbox: Box) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([bbox.minX, bbox.maxX, bbox.minX + 7.25, bbox.maxX - 3.5, 0.0, -500.0])
    y = np.array([bbox.minY, bbox.maxY, bbox.maxY - 2.75, bbox.minY + 11.0, 0.0, 800.0])
    return x, y


def _assertSameSky(wcs1: WCS, wcs2: WCS, x: np.ndarray, y: np.ndarray) -> None:
    ra1, dec1 = wcs1.pixel_to_world_values(x, y)
    ra2, dec2 = wcs2.pixel_to_world_values(x, y)
    np.testing.assert_allclose(ra1, ra2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(dec1, dec2, rtol=0, atol=1e-10)


def _assertVisitInfoEqual(read: VisitInfo, written: VisitInfo) -> None:
    assert read.boresightRaDec.ra.deg == written.boresightRaDec.ra.deg
    assert read.boresightRaDec.dec.deg == written.boresightRaDec.dec.deg
    assert read.boresightAzAlt[0].deg == written.boresightAzAlt[0].deg
    assert read.boresightAzAlt[1].deg == written.boresightAzAlt[1].deg
    assert read.boresightAirmass == written.boresightAirmass
    assert read.boresightRotAngle.deg == written.boresightRotAngle.deg
    assert read.rotType == written.rotType
    assert read.observatory == written.observatory
    assert read.weather == written.weather
    assert read.era.deg == written.era.deg
    assert read.date.scale == written.date.scale
    assert abs((read.date - written.date).to_value(u.ns)) < 1.0
    assert read.exposureTime == written.exposureTime
    assert read.id == written.id


# --------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------


def test_roundTripKeepsEverything(tmp_path):
    exposure = _makeExposure()
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    read = readExposure(path)

    assert read.bbox == exposure.bbox
    assert read.image.array.dtype == np.float32
    np.testing.assert_array_equal(read.image.array, exposure.image.array)
    np.testing.assert_array_equal(read.variance.array, exposure.variance.array)
    np.testing.assert_array_equal(read.mask.array, exposure.mask.array)
    assert read.mask.planes == PLANES
    for name, bit in PLANES.items():
        assert read.mask.getPlaneBitMask(name) == 1 << bit
    _assertSameSky(read.wcs, exposure.wcs, *_parentPixels(exposure.bbox))
    _assertVisitInfoEqual(read.visitInfo, exposure.visitInfo)
    assert read.filter == exposure.filter
    assert read.photoCalib.calibrationMean == exposure.photoCalib.calibrationMean
    assert isinstance(read.psf, GaussianPsf)
    assert read.psf.fwhm == exposure.psf.fwhm
    assert read.psf.alpha == exposure.psf.alpha
    assert read.psf.effectiveWavelength == exposure.psf.effectiveWavelength
    assert read.metadata["OBSERVER"] == "somebody"
    assert read.metadata["LONG-KEYWORD-NAME"] == 1.0000000000000002
    assert read.metadata["SEEING"] == 0.7
    # Keys that became attributes are not duplicated in the metadata.
    for key in VISIT_KEYS + ("FILTER", "FILT-EFF", "FILT-BW", "PHOTCALIB", "SIMPLE", "NAXIS"):
        assert key not in read.metadata


def test_secondRoundTripIsIdentical(tmp_path):
    exposure = _makeExposure()
    writeExposure(exposure, tmp_path / "a.fits")
    writeExposure(readExposure(tmp_path / "a.fits"), tmp_path / "b.fits")
    headerA = fits.getheader(tmp_path / "a.fits", 0)
    headerB = fits.getheader(tmp_path / "b.fits", 0)
    assert list(headerA.items()) == list(headerB.items())
    for name in ("IMAGE", "MASK", "VARIANCE", "PSF"):
        a = fits.getheader(tmp_path / "a.fits", name)
        b = fits.getheader(tmp_path / "b.fits", name)
        for key in a:
            if key.startswith("CRPIX") and not key.endswith("A"):
                # (c - x0) + x0 - x0 may differ from c - x0 in the last bit.
                assert a[key] == pytest.approx(b[key], rel=0, abs=1e-12)
            else:
                assert a[key] == b[key], key


def test_exposureWithoutMetadataRoundTrips(tmp_path):
    maskedImage = MaskedImage.fromArrays(
        np.arange(12, dtype=np.float32).reshape(3, 4), origin=(-5, 7)
    )
    exposure = Exposure(maskedImage)
    writeExposure(exposure, tmp_path / "bare.fits")
    read = readExposure(tmp_path / "bare.fits")
    assert read.bbox == Box(-5, 7, 4, 3)
    np.testing.assert_array_equal(read.image.array, exposure.image.array)
    np.testing.assert_array_equal(read.variance.array, np.ones((3, 4)))
    assert read.mask.planes == exposure.mask.planes
    assert read.wcs is None
    assert read.visitInfo is None
    assert read.filter is None
    assert read.psf is None
    assert read.photoCalib is None


def test_float64ImageIsWrittenAsFloat32(tmp_path):
    values = np.array([[1.0 + 2.0**-30, -3.25], [1e-3, 7.0]])
    exposure = Exposure(MaskedImage.fromArrays(values))
    writeExposure(exposure, tmp_path / "f64.fits")
    with fits.open(tmp_path / "f64.fits") as hdul:
        assert hdul["IMAGE"].header["BITPIX"] == -32
        assert hdul["VARIANCE"].header["BITPIX"] == -32
        assert hdul["MASK"].header["BITPIX"] == 32
    read = readExposure(tmp_path / "f64.fits")
    np.testing.assert_array_equal(read.image.array, values.astype(np.float32))


def test_gzipFileRoundTrips(tmp_path):
    exposure = _makeExposure(shape=(8, 9))
    path = tmp_path / "visit.fits.gz"
    writeExposure(exposure, path)
    with open(path, "rb") as stream:
        assert stream.read(2) == b"\x1f\x8b"  # gzip magic number
    read = readExposure(path, bbox=Box(ORIGIN[0] + 2, ORIGIN[1] + 1, 3, 4))
    np.testing.assert_array_equal(
        read.image.array, exposure.image.array[1:5, 2:5]
    )


def test_sipWcsRoundTrips(tmp_path):
    wcs = makeTanWcs(rotation=-12.0, crval=(10.0, 5.0), crpix=(1010.0, 2012.0))
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[2, 0], a[0, 2], a[3, 0] = 2.5e-5, -1.25e-5, 3.0e-8
    b[1, 1], b[0, 3] = 1.75e-5, -2.0e-8
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    exposure = _makeExposure(wcs=wcs)
    writeExposure(exposure, tmp_path / "sip.fits")
    read = readExposure(tmp_path / "sip.fits")
    assert read.wcs.sip is not None
    _assertSameSky(read.wcs, exposure.wcs, *_parentPixels(exposure.bbox))


# --------------------------------------------------------------------------------------
# The on-disk layout
# --------------------------------------------------------------------------------------


def test_onDiskWcsIsTheLocalOne(tmp_path):
    """An independent FITS reader sees the right sky at local FITS pixels."""
    exposure = _makeExposure()
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    x0, y0 = ORIGIN
    for name in ("IMAGE", "MASK", "VARIANCE"):
        header = fits.getheader(path, name)
        localWcs = WCS(header)
        i = np.array([0.0, 10.0, 39.0, 3.5])  # local 0-based pixel
        j = np.array([0.0, 20.0, 29.0, 17.25])
        sky = localWcs.pixel_to_world(i, j)
        expected = exposure.wcs.pixel_to_world(i + x0, j + y0)
        np.testing.assert_array_less(sky.separation(expected).to_value(u.deg), 1e-10)
        assert header["LTV1"] == -x0
        assert header["LTV2"] == -y0
        assert header["CTYPE1A"] == "LINEAR"
        assert header["CTYPE2A"] == "LINEAR"
        assert header["CRPIX1A"] == 1
        assert header["CRPIX2A"] == 1
        assert header["CRVAL1A"] == x0
        assert header["CRVAL2A"] == y0
        assert header["WCSNAMEA"] == "PHYSICAL"
        # The alternate WCS maps local 0-based pixels to parent ones.
        physical = WCS(header, key="A")
        np.testing.assert_allclose(physical.pixel_to_world_values(3.0, 4.0), (x0 + 3, y0 + 4))


def test_onDiskLayout(tmp_path):
    exposure = _makeExposure()
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    with fits.open(path) as hdul:
        assert [hdu.name for hdu in hdul] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE", "PSF"]
        assert hdul[0].data is None
        assert hdul["IMAGE"].data.dtype == np.dtype(">f4")
        assert hdul["MASK"].data.dtype == np.dtype(">i4")
        assert hdul["VARIANCE"].data.dtype == np.dtype(">f4")
        maskHeader = hdul["MASK"].header
        for name, bit in PLANES.items():
            assert maskHeader[f"MP_{name}"] == bit
        primary = hdul[0].header
        assert primary["FILTER"] == "g"
        assert primary["FILT-EFF"] == 482.685
        assert primary["PHOTCALIB"] == 0.0575
        assert primary["BORE-RA"] == 150.12345678901234
        assert primary["TIMESYS"] == "TAI"
        assert primary["DATE-AVG"] == "2026-03-15T04:00:00.123456789"
        psfHeader = hdul["PSF"].header
        # makeTanWcs has 0.2 arcsec pixels.
        assert psfHeader["PSF-FWHM"] == pytest.approx(3.5 * 0.2, rel=1e-12)
        assert psfHeader["PSF-ALPH"] == -0.2
        np.testing.assert_allclose(hdul["PSF"].data.sum(), 1.0, rtol=1e-12)


def test_hdusAreFoundByNameAndExtraTablesSkipped(tmp_path):
    """Rubin files have binary tables after the planes; the order of planes may differ."""
    exposure = _makeExposure()
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    with fits.open(path) as hdul:
        primary = hdul[0].copy()
        primary.header["AR_HDU"] = 5
        primary.header["HIERARCH PSF_ID"] = 1
        image, mask, variance = (hdul[n].copy() for n in ("IMAGE", "MASK", "VARIANCE"))
        table1 = fits.BinTableHDU.from_columns(
            [fits.Column(name="id", format="K", array=np.arange(5))], name="ARCHIVE_INDEX"
        )
        table2 = fits.BinTableHDU.from_columns(
            [fits.Column(name="coeff", format="D", array=np.linspace(0, 1, 7))]
        )
        fits.HDUList([primary, variance, image, mask, table1, table2]).writeto(
            tmp_path / "rubin.fits"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The fixture's visit is not self-consistent (its BORE-ALT is not its pointing's).
        warnings.filterwarnings("ignore", message=".*BORE-ALT = ", category=DcrWarning)
        read = readExposure(tmp_path / "rubin.fits")
    np.testing.assert_array_equal(read.image.array, exposure.image.array)
    np.testing.assert_array_equal(read.mask.array, exposure.mask.array)
    np.testing.assert_array_equal(read.variance.array, exposure.variance.array)
    assert read.psf is None
    assert "AR_HDU" not in read.metadata
    assert "PSF_ID" not in read.metadata


def test_tileCompressedPlanesAreRead(tmp_path):
    """Planes stored as tile-compressed HDUs (as some Rubin files are) read the same."""
    exposure = _makeExposure()
    writeExposure(exposure, tmp_path / "plain.fits")
    with fits.open(tmp_path / "plain.fits") as hdul:
        hdus = [hdul[0].copy()]
        for name in ("IMAGE", "MASK", "VARIANCE"):
            options = (
                {"compression_type": "RICE_1"}
                if name == "MASK"
                else {"compression_type": "GZIP_2", "quantize_level": 0.0}  # lossless
            )
            hdus.append(
                fits.CompImageHDU(hdul[name].data, header=hdul[name].header, name=name, **options)
            )
        fits.HDUList(hdus).writeto(tmp_path / "compressed.fits")
    with fits.open(tmp_path / "compressed.fits") as hdul:
        assert isinstance(hdul["IMAGE"], fits.CompImageHDU)
    read = readExposure(tmp_path / "compressed.fits")
    np.testing.assert_array_equal(read.image.array, exposure.image.array)
    np.testing.assert_array_equal(read.mask.array, exposure.mask.array)
    np.testing.assert_array_equal(read.variance.array, exposure.variance.array)
    _assertSameSky(read.wcs, exposure.wcs, *_parentPixels(exposure.bbox))
    box = Box(ORIGIN[0] + 3, ORIGIN[1] + 4, 5, 6)
    cut = readExposure(tmp_path / "compressed.fits", bbox=box)
    np.testing.assert_array_equal(cut.mask.array, exposure[box].mask.array)


def test_imagePsfRoundTrips(tmp_path):
    kernel = np.outer([1.0, 3.0, 7.0, 3.0, 1.0], [1.0, 2.0, 5.0, 2.0, 1.0])
    psf = ImagePsf(kernel, alpha=-0.2)
    exposure = _makeExposure()
    exposure.psf = psf
    writeExposure(exposure, tmp_path / "psf.fits")
    read = readExposure(tmp_path / "psf.fits")
    assert isinstance(read.psf, ImagePsf)
    np.testing.assert_allclose(read.psf.array, psf.array, rtol=1e-15, atol=0)
    assert read.psf.fwhm == psf.fwhm
    assert read.psf.alpha == -0.2
    # The PSF image is at the band's effective wavelength.
    assert read.psf.effectiveWavelength == Filter.fromBand("g").effectiveWavelength


def test_psfFwhmInArcsecIsUsedWithoutPixelKey(tmp_path):
    exposure = _makeExposure()
    writeExposure(exposure, tmp_path / "psf.fits")
    with fits.open(tmp_path / "psf.fits", mode="update") as hdul:
        del hdul["PSF"].header["PSF-FWPX"]
        del hdul["PSF"].header["PSF-MODL"]
    read = readExposure(tmp_path / "psf.fits")
    assert isinstance(read.psf, ImagePsf)
    assert read.psf.fwhm == pytest.approx(3.5, rel=1e-12)  # 0.7 arcsec / 0.2 arcsec per pixel


# --------------------------------------------------------------------------------------
# Section reads
# --------------------------------------------------------------------------------------


def test_bboxReadsTheCutout(tmp_path):
    exposure = _makeExposure()
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    box = Box(ORIGIN[0] + 5, ORIGIN[1] + 3, 11, 7)
    cut = readExposure(path, bbox=box)
    expected = exposure[box]
    assert cut.bbox == box
    np.testing.assert_array_equal(cut.image.array, expected.image.array)
    np.testing.assert_array_equal(cut.mask.array, expected.mask.array)
    np.testing.assert_array_equal(cut.variance.array, expected.variance.array)
    assert cut.mask.planes == PLANES
    _assertSameSky(cut.wcs, exposure.wcs, *_parentPixels(box))


def test_readExposureBBoxReadsHeadersOnly(tmp_path, goodFile, monkeypatch):
    monkeypatch.setattr(fits.ImageHDU, "section", property(lambda self: 1 / 0))
    assert readExposureBBox(goodFile) == Box(ORIGIN[0], ORIGIN[1], SHAPE[1], SHAPE[0])
    monkeypatch.undo()
    path = _rewrite(
        goodFile, tmp_path / "missing.fits", lambda hdus: [h for h in hdus if h.name != "MASK"]
    )
    with pytest.raises(DcrFitsError, match="has no MASK HDU"):
        readExposureBBox(path)


def test_bboxReadNeverLoadsTheWholeImage(tmp_path, monkeypatch):
    exposure = _makeExposure()
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)

    def noFullRead(self):
        raise AssertionError("the whole image was loaded")

    monkeypatch.setattr(fits.ImageHDU, "data", property(noFullRead))
    box = Box(ORIGIN[0] + 1, ORIGIN[1] + 2, 4, 3)
    cut = readExposure(path, bbox=box)
    monkeypatch.undo()
    np.testing.assert_array_equal(cut.image.array, exposure[box].image.array)


@pytest.mark.parametrize(
    "box",
    [
        Box(ORIGIN[0] - 1, ORIGIN[1], 5, 5),
        Box(ORIGIN[0] + 36, ORIGIN[1], 5, 5),
        Box(ORIGIN[0], ORIGIN[1] + 26, 5, 5),
        Box(0, 0, 5, 5),
        Box(ORIGIN[0], ORIGIN[1], 0, 0),
    ],
)
def test_bboxOutsideTheImageIsRejected(tmp_path, box):
    path = tmp_path / "visit.fits"
    writeExposure(_makeExposure(), path)
    with pytest.raises(DcrFitsError, match="bbox is not inside the image"):
        readExposure(path, bbox=box)


def test_bboxMustBeABox(tmp_path):
    path = tmp_path / "visit.fits"
    writeExposure(_makeExposure(), path)
    with pytest.raises(DcrTypeError, match="bbox must be a dcrmodel Box"):
        readExposure(path, bbox=(0, 0, 5, 5))


# --------------------------------------------------------------------------------------
# Visit metadata, filter, calibration
# --------------------------------------------------------------------------------------


def test_visitInfoHeaderRoundTripIsExact():
    visitInfo = _visitInfo()
    header = visitInfoToHeader(visitInfo)
    # Through the text of the cards, as a file stores them.
    reparsed = fits.Header.fromstring(header.tostring())
    _assertVisitInfoEqual(visitInfoFromHeader(reparsed), visitInfo)


def test_visitInfoFromAstropyRoundTrips(tmp_path):
    visitInfo = makeVisitInfo(elevation=38.0, azimuth=120.0, weather=Weather(8.0, 74000.0, 20.0))
    header = fits.Header.fromstring(visitInfoToHeader(visitInfo).tostring())
    _assertVisitInfoEqual(visitInfoFromHeader(header), visitInfo)


def test_mjdUt1MatchesTheEarthRotationAngle():
    """MJD-AVG-UT1 is the UT1 at which the ERA equals AVG-ERA (checked with ERFA's era00)."""
    visitInfo = _visitInfo()
    header = visitInfoToHeader(visitInfo)
    ut1 = Time(header["MJD-AVG-UT1"], format="mjd", scale="ut1")
    era = ut1.earth_rotation_angle(0.0).to_value(u.deg)
    assert era == pytest.approx(header["AVG-ERA"], abs=1e-7)
    # UT1 is within a second of UTC.
    assert abs(header["MJD-AVG-UT1"] - visitInfo.date.utc.mjd) * 86400.0 < 1.0


@pytest.mark.parametrize("scale", ["tt", "tdb", "utc"])
def test_mjdUt1ForDatesInOtherScales(scale):
    """The ERA belongs to the date whatever its scale (TT is 69 s from UT1 in 2026)."""
    visitInfo = _visitInfo().copyWith(date=getattr(_DATE, scale))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        header = visitInfoToHeader(visitInfo)
    assert header["TIMESYS"] == scale.upper()
    assert header["MJD-AVG-UT1"] == visitInfoToHeader(_visitInfo())["MJD-AVG-UT1"]
    read = visitInfoFromHeader(fits.Header.fromstring(header.tostring()))
    assert read.date.scale == scale
    assert abs((read.date - _DATE).to_value(u.ns)) < 1.0


def test_eraOfAnotherTimeFallsBackToTheDate():
    visitInfo = _visitInfo().copyWith(era=Angle(10.0, u.deg))
    with pytest.warns(DcrWarning, match="MJD-AVG-UT1 is computed from the date"):
        header = visitInfoToHeader(visitInfo)
    assert abs(header["MJD-AVG-UT1"] - visitInfo.date.utc.mjd) * 86400.0 < 1.0
    assert header["AVG-ERA"] == 10.0


def test_noVisitKeysGivesNone():
    assert visitInfoFromHeader(fits.Header({"OBJECT": "coadd"})) is None


def test_unknownWeatherBecomesTheSiteDefault():
    header = visitInfoToHeader(_visitInfo())
    header["AIRTEMP"] = "NaN"
    header["HUMIDITY"] = None  # an undefined value
    with pytest.warns(DcrWarning, match="AIRTEMP, HUMIDITY are unknown"):
        visitInfo = visitInfoFromHeader(header)
    default = defaultWeather(2663.0)
    assert visitInfo.weather.airTemperature == default.airTemperature
    assert visitInfo.weather.humidity == default.humidity
    assert visitInfo.weather.airPressure == 74315.12345678901


def test_unknownWeatherWithoutSiteGivesNoWeather():
    header = visitInfoToHeader(_visitInfo())
    for key in ("OBS-LONG", "OBS-LAT", "OBS-ELEV"):
        del header[key]
    header["AIRPRESS"] = "NaN"
    with pytest.warns(DcrWarning, match="no default weather can be made"):
        visitInfo = visitInfoFromHeader(header)
    assert visitInfo.weather is None


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("BORE-AIRMASS", "high", "key BORE-AIRMASS must be a number"),
        ("BORE-RA", True, "key BORE-RA must be a number"),
        ("IDNUM", 1.5, "key IDNUM must be an integer"),
        ("DATE-AVG", "yesterday", "key DATE-AVG is not an ISO-8601 date"),
        ("TIMESYS", "MARS", "key TIMESYS names an unknown time scale"),
        ("ROTTYPE", 3, "key ROTTYPE must be text"),
        ("BORE-AIRMASS", 0.5, "visit metadata is invalid"),
    ],
)
def test_badVisitValuesAreRejected(tmp_path, key, value, match):
    exposure = _makeExposure(shape=(4, 5))
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header[key] = value
    with pytest.raises(DcrFitsError, match=match):
        readExposure(path)


def test_filterFromHeader():
    assert filterFromHeader(fits.Header()) is None
    exact = filterFromHeader(fits.Header({"FILTER": "N540", "FILT-EFF": 540.5, "FILT-BW": 9.25}))
    assert exact == Filter("N540", 540.5, 9.25)
    assert filterFromHeader(fits.Header({"FILTER": "r"})) == Filter.fromBand("r")
    physical = filterFromHeader(fits.Header({"FILTER": "g_6"}))
    assert physical.bandName == "g_6"
    assert physical.effectiveWavelength == Filter.fromBand("g").effectiveWavelength
    assert physical.bandwidth == Filter.fromBand("g").bandwidth
    with pytest.raises(DcrFitsError, match="key FILT-EFF is given without FILT-BW"):
        filterFromHeader(fits.Header({"FILTER": "x", "FILT-EFF": 500.0}))
    with pytest.raises(DcrFitsError, match="FILT-BW must be a number"):
        filterFromHeader(fits.Header({"FILTER": "x", "FILT-EFF": 500.0, "FILT-BW": "wide"}))
    with pytest.raises(DcrFitsError, match="not a valid band"):
        filterFromHeader(fits.Header({"FILTER": "x", "FILT-EFF": 500.0, "FILT-BW": -3.0}))


def test_unknownBandKeepsItsNameInTheMetadata(tmp_path):
    exposure = _makeExposure(shape=(4, 5))
    exposure.filter = None
    exposure.metadata["FILTER"] = "HSC-G"
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    assert fits.getheader(path)["FILTER"] == "HSC-G"
    with pytest.warns(DcrWarning, match="band 'HSC-G' is not in the built-in table"):
        read = readExposure(path)
    assert read.filter is None
    assert read.metadata["FILTER"] == "HSC-G"
    with pytest.warns(DcrWarning, match="HSC-G"):
        writeExposure(read, tmp_path / "again.fits")
        assert readExposure(tmp_path / "again.fits").metadata["FILTER"] == "HSC-G"


def test_photoCalibFromHeader():
    assert photoCalibFromHeader(fits.Header()) is None
    header = fits.Header([fits.Card("HIERARCH PHOTCALIB", 0.25)])
    assert photoCalibFromHeader(header).calibrationMean == 0.25
    # FLUXMAG0 counts for AB magnitude 0 (3631 Jy): 3.631e12 nJy / FLUXMAG0 per count.
    fromZeroPoint = photoCalibFromHeader(fits.Header({"FLUXMAG0": 3.631e12 / 0.0575}))
    assert fromZeroPoint.calibrationMean == pytest.approx(0.0575, rel=1e-14)
    with pytest.raises(DcrFitsError, match="key PHOTCALIB must be positive"):
        photoCalibFromHeader(fits.Header([fits.Card("HIERARCH PHOTCALIB", -1.0)]))


def test_attributesWinOverStaleMetadata(tmp_path):
    exposure = _makeExposure(shape=(4, 5))
    exposure.metadata["HIERARCH BORE-AIRMASS"] = 9.0
    exposure.metadata["FILTER"] = "z"
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    header = fits.getheader(path)
    assert header["BORE-AIRMASS"] == exposure.visitInfo.boresightAirmass
    assert header["FILTER"] == "g"
    assert len(header.cards["FILTER"].image) == 80
    assert list(header.keys()).count("FILTER") == 1


# --------------------------------------------------------------------------------------
# Bad files
# --------------------------------------------------------------------------------------


@pytest.fixture
def goodFile(tmp_path):
    path = tmp_path / "good.fits"
    writeExposure(_makeExposure(), path)
    return path


def _rewrite(source, target, edit):
    with fits.open(source) as hdul:
        hdus = [hdu.copy() for hdu in hdul]
    hdus = edit(hdus)
    fits.HDUList(hdus).writeto(target, overwrite=True)
    return target


def test_notAFitsFile(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("these are not pixels\n" * 200)
    with pytest.raises(DcrFitsError, match="notes.fits is not a readable FITS file"):
        readExposure(path)


def test_missingFile(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such FITS file"):
        readExposure(tmp_path / "absent.fits")


@pytest.mark.parametrize(
    ("keep", "match"),
    [
        (100, "good.fits is not a readable FITS file"),  # inside HDU 0's header
        (-5000, "the header after HDU VARIANCE .* is cut short"),  # the PSF HDU's header
        (-1000, "the data of HDU PSF end 432 bytes past the end"),  # the PSF kernel
        (-100, "the header after HDU PSF .* is cut short"),  # the PSF HDU's data padding
        (-10000, "the data of HDU VARIANCE end .* past the end of the file"),
    ],
)
def test_truncatedFile(tmp_path, goodFile, keep, match):
    data = goodFile.read_bytes()
    path = tmp_path / "good.fits"
    path.write_bytes(data[:keep])
    with pytest.raises(DcrFitsError, match=match):
        readExposure(path)


def test_truncatedVarianceIsNamed(tmp_path, goodFile):
    """Cutting into a plane's data names that HDU, even for a small bbox read.

    VARIANCE holds 30 x 40 float32 = 4800 bytes; 1000 of them are kept.
    """
    with fits.open(goodFile) as hdul:
        end = hdul.fileinfo(hdul.index_of("VARIANCE"))
        cutAt = end["datLoc"] + 1000
    path = tmp_path / "truncated.fits"
    path.write_bytes(goodFile.read_bytes()[:cutAt])
    with pytest.raises(DcrFitsError, match="truncated: the data of HDU VARIANCE end 3800 bytes"):
        readExposure(path, bbox=Box(ORIGIN[0], ORIGIN[1], 2, 2))


@pytest.mark.parametrize("name", ["IMAGE", "MASK", "VARIANCE"])
def test_missingPlaneHdu(tmp_path, goodFile, name):
    path = _rewrite(
        goodFile, tmp_path / "missing.fits", lambda hdus: [h for h in hdus if h.name != name]
    )
    with pytest.raises(DcrFitsError, match=f"has no {name} HDU"):
        readExposure(path)


def test_shapeMismatch(tmp_path, goodFile):
    def edit(hdus):
        for i, hdu in enumerate(hdus):
            if hdu.name == "VARIANCE":
                hdus[i] = fits.ImageHDU(hdu.data[:-1], header=hdu.header, name="VARIANCE")
        return hdus

    path = _rewrite(goodFile, tmp_path / "shape.fits", edit)
    with pytest.raises(DcrFitsError, match=r"HDU VARIANCE has shape \(29, 40\) but IMAGE has"):
        readExposure(path)


def test_originMismatch(tmp_path, goodFile):
    def edit(hdus):
        for hdu in hdus:
            if hdu.name == "MASK":
                hdu.header["LTV1"] = -3.0
                hdu.header["CRVAL1A"] = 3.0
        return hdus

    path = _rewrite(goodFile, tmp_path / "origin.fits", edit)
    with pytest.raises(DcrFitsError, match="HDU MASK has parent origin"):
        readExposure(path)


def test_originFromTheAlternateWcsAlone(tmp_path, goodFile):
    """Without LTV1/LTV2 the PHYSICAL WCS 'A' gives the origin (CRPIXnA need not be 1)."""

    def edit(hdus):
        for hdu in hdus:
            if hdu.name in ("IMAGE", "MASK", "VARIANCE"):
                del hdu.header["LTV1"]
                del hdu.header["LTV2"]
                hdu.header["CRPIX1A"] = 3.0
                hdu.header["CRVAL1A"] = ORIGIN[0] + 2.0
        return hdus

    path = _rewrite(goodFile, tmp_path / "physical.fits", edit)
    read = readExposure(path)
    assert read.bbox.begin == ORIGIN
    _assertSameSky(read.wcs, _makeExposure().wcs, *_parentPixels(read.bbox))


def test_noOriginKeysMeansZero(tmp_path, goodFile):
    def edit(hdus):
        for hdu in hdus:
            for key in ("LTV1", "LTV2", "CTYPE1A", "CTYPE2A"):
                hdu.header.pop(key, None)
        return hdus

    path = _rewrite(goodFile, tmp_path / "plain.fits", edit)
    assert readExposure(path).bbox.begin == (0, 0)


def test_nonIntegerOrigin(tmp_path, goodFile):
    def edit(hdus):
        for hdu in hdus:
            if hdu.name == "IMAGE":
                hdu.header["LTV1"] = -10.5
        return hdus

    path = _rewrite(goodFile, tmp_path / "origin.fits", edit)
    with pytest.raises(DcrFitsError, match="HDU IMAGE: key LTV1 must be a whole number"):
        readExposure(path)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("CRPIX1", "middle", "HDU IMAGE: key CRPIX1 must be a number"),
        ("CTYPE1", "RA---QQQ", "HDU IMAGE: the WCS keys cannot be read"),
    ],
)
def test_brokenWcsKeys(tmp_path, goodFile, key, value, match):
    def edit(hdus):
        for hdu in hdus:
            if hdu.name == "IMAGE":
                hdu.header[key] = value
        return hdus

    path = _rewrite(goodFile, tmp_path / "wcs.fits", edit)
    with pytest.raises(DcrFitsError, match=match):
        readExposure(path)


def test_notTwoDimensional(tmp_path, goodFile):
    def edit(hdus):
        for i, hdu in enumerate(hdus):
            if hdu.name == "IMAGE":
                hdus[i] = fits.ImageHDU(np.zeros((2, 30, 40), np.float32), name="IMAGE")
        return hdus

    path = _rewrite(goodFile, tmp_path / "cube.fits", edit)
    with pytest.raises(DcrFitsError, match="HDU IMAGE must hold a 2-d image"):
        readExposure(path)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("MP_BAD", "zero", "mask plane key MP_BAD must be an integer bit number"),
        ("MP_BAD", 2.5, "mask plane key MP_BAD must be an integer bit number"),
        ("MP_BAD", 40, "gives bit 40, outside 0-31"),
        ("MP_BAD", 1, "MP_SAT and MP_BAD both use bit 1|MP_BAD and MP_SAT both use bit 1"),
        ("MP_", 11, "names no mask plane"),
    ],
)
def test_malformedMaskPlaneKeys(tmp_path, goodFile, key, value, match):
    def edit(hdus):
        for hdu in hdus:
            if hdu.name == "MASK":
                hdu.header[key] = value
        return hdus

    path = _rewrite(goodFile, tmp_path / "mask.fits", edit)
    with pytest.raises(DcrFitsError, match=match):
        readExposure(path)


def test_floatMaskIsRejected(tmp_path, goodFile):
    def edit(hdus):
        for i, hdu in enumerate(hdus):
            if hdu.name == "MASK":
                hdus[i] = fits.ImageHDU(hdu.data.astype(np.float32), header=hdu.header, name="MASK")
        return hdus

    path = _rewrite(goodFile, tmp_path / "mask.fits", edit)
    with pytest.raises(DcrFitsError, match="HDU MASK must hold integers"):
        readExposure(path)


def test_writeRejectsNonExposure(tmp_path):
    with pytest.raises(DcrTypeError, match="writeExposure needs a dcrmodel Exposure"):
        writeExposure(np.zeros((3, 3)), tmp_path / "x.fits")


def test_writeToADirectoryIsRejected(tmp_path):
    with pytest.raises(DcrOutputError, match="the output path is a directory"):
        writeExposure(_makeExposure(shape=(3, 3)), tmp_path)


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------


def test_failedWriteLeavesTheEarlierFile(tmp_path, monkeypatch):
    path = tmp_path / "visit.fits"
    writeExposure(_makeExposure(seed=1), path)
    before = path.read_bytes()
    original = fits.HDUList.writeto

    def failMidway(self, fileobj, *args, **kwargs):
        # Write the first HDUs for real, then fail as a full disk would.
        original(fits.HDUList(self[:2]), fileobj, overwrite=True)
        raise OSError("No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", failMidway)
    with pytest.raises(OSError, match="No space left on device"):
        writeExposure(_makeExposure(seed=2), path)
    monkeypatch.setattr(fits.HDUList, "writeto", original)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["visit.fits"]
    np.testing.assert_array_equal(
        readExposure(path).image.array, _makeExposure(seed=1).image.array
    )


# --------------------------------------------------------------------------------------
# Property-based round trip
# --------------------------------------------------------------------------------------

_planeName = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True)
_float32 = st.floats(
    width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True
)


@st.composite
def _exposures(draw):
    ny = draw(st.integers(1, 9))
    nx = draw(st.integers(1, 9))
    x0 = draw(st.integers(-10**6, 10**6))
    y0 = draw(st.integers(-10**6, 10**6))
    names = draw(st.lists(_planeName, min_size=1, max_size=8, unique=True))
    bits = draw(st.lists(st.integers(0, 31), min_size=len(names), max_size=len(names), unique=True))
    planes = dict(zip(names, bits, strict=True))
    values = draw(st.lists(_float32, min_size=ny * nx, max_size=ny * nx))
    image = np.array(values, dtype=np.float32).reshape(ny, nx)
    variance = np.abs(image[::-1, ::-1]).copy()
    maskBits = draw(st.lists(st.sampled_from(bits), min_size=ny * nx, max_size=ny * nx))
    mask = (np.uint32(1) << np.array(maskBits, dtype=np.uint32)).view(np.int32).reshape(ny, nx)
    rotation = draw(st.floats(0.0, 360.0))
    wcs = makeTanWcs(
        rotation=rotation,
        crval=(draw(st.floats(0.0, 359.0)), draw(st.floats(-80.0, 80.0))),
        crpix=(x0 + draw(st.floats(-50.0, 50.0)), y0 + draw(st.floats(-50.0, 50.0))),
        flipped=draw(st.booleans()),
    )
    maskedImage = MaskedImage(
        Image(image, origin=(x0, y0)),
        Mask(mask, origin=(x0, y0), planes=planes),
        Image(variance, origin=(x0, y0)),
    )
    return Exposure(maskedImage, wcs=wcs)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(exposure=_exposures())
def test_propertyRoundTrip(tmp_path, exposure):
    path = tmp_path / "prop.fits"
    writeExposure(exposure, path)
    read = readExposure(path)
    assert read.bbox == exposure.bbox
    np.testing.assert_array_equal(read.image.array, exposure.image.array)
    assert np.array_equal(
        np.signbit(read.image.array), np.signbit(exposure.image.array)
    )  # -0.0 stays -0.0
    np.testing.assert_array_equal(read.variance.array, exposure.variance.array)
    np.testing.assert_array_equal(read.mask.array, exposure.mask.array)
    assert read.mask.planes == exposure.mask.planes
    _assertSameSky(read.wcs, exposure.wcs, *_parentPixels(exposure.bbox))
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_overwriteLeavesNoTemporaryFiles(tmp_path):
    writeExposure(_makeExposure(shape=(3, 3), seed=1), tmp_path / "a.fits")
    writeExposure(_makeExposure(shape=(3, 3), seed=2), tmp_path / "a.fits")
    assert sorted(os.listdir(tmp_path)) == ["a.fits"]
    np.testing.assert_array_equal(
        readExposure(tmp_path / "a.fits").image.array,
        _makeExposure(shape=(3, 3), seed=2).image.array,
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
    with pytest.raises(DcrOutputError, match="holds files that are not a DCR model"):
        writeDcrModel(model, other)
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(DcrOutputError, match="the output path is a file"):
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
