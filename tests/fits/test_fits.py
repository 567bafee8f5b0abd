"""Tests of dcrmodel.fits.exposure: the Rubin exposure layout and its errors."""

from __future__ import annotations

import mmap
import os
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, Sip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcrmodel.errors import (
    DcrFitsError,
    DcrOutputError,
    DcrTypeError,
    DcrWarning,
)
from dcrmodel.fits.exposure import (
    ExposureFile,
    readExposure,
    readExposureBBox,
    writeExposure,
)
from dcrmodel.fits.headers import (
    VISIT_KEYS,
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
)
from helpers import makeTanWcs
from helpers.fits import (
    ORIGIN,
    PLANES,
    SHAPE,
    _assertSameSky,
    _assertVisitInfoEqual,
    _makeExposure,
    _parentPixels,
)

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


def _isMemoryMapped(array):
    """Whether ``array`` is a view of a memory-mapped file (not pixels copied into memory)."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def test_bboxReadNeverLoadsTheWholeImage(tmp_path, monkeypatch):
    """A cutout of a plain file is a slice of the memory map: no plane is read in full."""
    exposure = _makeExposure()
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    loadData = fits.ImageHDU.data
    planes = set()

    def mappedOnly(self):
        data = loadData.__get__(self, type(self))
        if not _isMemoryMapped(data):
            raise AssertionError("the whole image was loaded into memory")
        planes.add(self.name)
        return data

    def noRowByRowRead(self):
        raise AssertionError("the cutout was read row by row through the section")

    def release(self):
        loadData.__delete__(self)  # astropy drops the map when the file closes

    monkeypatch.setattr(fits.ImageHDU, "data", property(mappedOnly, None, release))
    monkeypatch.setattr(fits.ImageHDU, "section", property(noRowByRowRead))
    box = Box(ORIGIN[0] + 1, ORIGIN[1] + 2, 4, 3)
    cut = readExposure(path, bbox=box)
    monkeypatch.undo()
    assert planes == {"IMAGE", "MASK", "VARIANCE"}
    np.testing.assert_array_equal(cut.image.array, exposure[box].image.array)
    np.testing.assert_array_equal(cut.mask.array, exposure[box].mask.array)
    np.testing.assert_array_equal(cut.variance.array, exposure[box].variance.array)
    # The cutout owns its pixels: it outlives the closed file.
    assert not _isMemoryMapped(cut.image.array)


def test_compressedFileCutoutNeverLoadsTheWholeImage(tmp_path, monkeypatch):
    """A gzip file's cutout goes through the section, never through the whole plane."""
    exposure = _makeExposure()
    path = tmp_path / "visit.fits.gz"
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
# dcrmodel.fits.exposure hands on the names of dcrmodel.fits.headers
# --------------------------------------------------------------------------------------


def test_fitsHandsOnTheNamesOfHeaders():
    import dcrmodel.fits.exposure
    import dcrmodel.fits.headers

    assert sorted(dcrmodel.fits.exposure.__all__) == sorted(
        ["ExposureFile", "readExposure", "readExposureBBox", "writeExposure"]
        + dcrmodel.fits.headers.__all__
    )
    for name in dcrmodel.fits.headers.__all__:
        assert getattr(dcrmodel.fits.exposure, name) is getattr(dcrmodel.fits.headers, name), name


def test_modelReadsGoThroughTheReaderOfDcrmodelFits(tmp_path, monkeypatch):
    """A reader replaced on dcrmodel.fits.exposure (instrumentation) also reads the model files."""
    import dcrmodel.fits.exposure
    from dcrmodel.fits.model import readDcrModel, writeDcrModel
    from dcrmodel.image import Image
    from dcrmodel.model.core import DcrModel

    writeDcrModel(DcrModel([Image(np.zeros((4, 5))) for _ in range(2)]), tmp_path / "m")
    reads = []
    original = dcrmodel.fits.exposure.readExposure

    def recordingRead(path, bbox=None):
        reads.append(os.path.basename(path))
        return original(path, bbox=bbox)

    monkeypatch.setattr(dcrmodel.fits.exposure, "readExposure", recordingRead)
    assert readDcrModel(tmp_path / "m").dcrNumSubfilters == 2
    assert sorted(reads) == ["dcrCoadd_0.fits", "dcrCoadd_1.fits"]


# --------------------------------------------------------------------------------------
# ExposureFile: headers once, many cutouts
# --------------------------------------------------------------------------------------


def _assertSameExposure(a, b):
    assert a.bbox == b.bbox
    np.testing.assert_array_equal(a.image.array, b.image.array)
    np.testing.assert_array_equal(a.mask.array, b.mask.array)
    np.testing.assert_array_equal(a.variance.array, b.variance.array)
    assert a.image.array.dtype == b.image.array.dtype
    assert a.mask.array.dtype == b.mask.array.dtype
    assert a.mask.planes == b.mask.planes
    assert repr(a.psf) == repr(b.psf)
    if a.psf is not None:
        np.testing.assert_array_equal(a.psf.computeKernelImage(),
                                      b.psf.computeKernelImage())
    _assertVisitInfoEqual(a.visitInfo, b.visitInfo)
    assert a.filter == b.filter
    _assertSameSky(a.wcs, b.wcs, *_parentPixels(a.bbox))


@pytest.mark.filterwarnings("ignore::dcrmodel.errors.DcrWarning")
def test_exposureFileCutoutsEqualReadExposure(tmp_path):
    exposure = _makeExposure()
    exposure.psf = GaussianPsf(3.0)
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    visit = ExposureFile(path)
    assert visit.bbox == readExposureBBox(path)
    assert visit._layouts is not None  # the memory-mapped path is the one tested
    for box in (Box(ORIGIN[0] + 3, ORIGIN[1] + 4, 5, 6), Box(ORIGIN[0], ORIGIN[1], 1, 1), None):
        _assertSameExposure(visit.read(box), readExposure(path, bbox=box))


@pytest.mark.filterwarnings("ignore::dcrmodel.errors.DcrWarning")
def test_exposureFileFallsBackForCompressedAndChangedFiles(tmp_path):
    exposure = _makeExposure()
    writeExposure(exposure, tmp_path / "visit.fits.gz")
    compressed = ExposureFile(tmp_path / "visit.fits.gz")
    assert compressed._layouts is None
    box = Box(ORIGIN[0] + 2, ORIGIN[1] + 1, 3, 4)
    _assertSameExposure(compressed.read(box), readExposure(tmp_path / "visit.fits.gz", box))
    # A file rewritten after it was opened is read afresh, not through stale offsets.
    path = tmp_path / "visit.fits"
    writeExposure(exposure, path)
    visit = ExposureFile(path)
    other = _makeExposure(seed=7)
    other.metadata["EXTRA"] = "x" * 60  # moves the data offsets
    writeExposure(other, path)
    os.utime(path, ns=(1, 1))
    np.testing.assert_array_equal(visit.read(box).image.array, other[box].image.array)


def test_exposureFileRefusesBadBoxes(tmp_path):
    path = tmp_path / "visit.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DcrWarning)
        writeExposure(_makeExposure(), path)
        visit = ExposureFile(path)
    with pytest.raises(DcrFitsError, match="not inside the image"):
        visit.read(Box(ORIGIN[0] - 1, ORIGIN[1], 3, 3))
    with pytest.raises(DcrTypeError, match="Box"):
        visit.read((0, 0, 3, 3))
    with pytest.raises(FileNotFoundError):
        ExposureFile(tmp_path / "missing.fits")


def test_header_warnings_name_the_callers_line(tmp_path):
    """A warning about a file's header points at the line that read it, not into dcrmodel,
    through readExposure and ExposureFile alike."""
    path = tmp_path / "visit.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DcrWarning)
        writeExposure(_makeExposure(), path)  # its BORE-ALT disagrees with BORE-RA/DEC
    for read in (readExposure, ExposureFile):
        with pytest.warns(DcrWarning, match="BORE-ALT") as caught:
            read(path)
        assert {w.filename for w in caught} == {__file__}, read


def test_a_gzip_file_named_fits_is_read_not_called_truncated(tmp_path):
    import gzip

    exposure = _makeExposure()
    writeExposure(exposure, tmp_path / "plain.fits")
    (tmp_path / "zipped.fits").write_bytes(gzip.compress((tmp_path / "plain.fits").read_bytes()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = readExposure(tmp_path / "plain.fits")
        zipped = readExposure(tmp_path / "zipped.fits")
        box = Box(1002, 2003, 5, 4)
        cut = readExposure(tmp_path / "zipped.fits", bbox=box)
    np.testing.assert_array_equal(zipped.image.array, plain.image.array)
    np.testing.assert_array_equal(zipped.variance.array, plain.variance.array)
    np.testing.assert_array_equal(cut.image.array, plain[box].image.array)
