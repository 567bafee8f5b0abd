"""Files in the Rubin "Exposure" layout written by other software, read by dcrmodel.

Every file here is composed card by card with `astropy.io.fits`, as another code following
the primer's on-disk format would write it, never with `dcrmodel.fits.exposure.writeExposure`:

- HDU 0 header only, with the visit keys (times in TAI as the Rubin pipelines write them,
  ``AVG-ERA`` from `erfa.era00`, ``BORE-AZ``/``BORE-ALT`` from astropy's ``AltAz``), Rubin
  archive pointers, ``HIERARCH`` keys, ``COMMENT`` and ``HISTORY`` cards;
- IMAGE, MASK and VARIANCE in varying order, each with the celestial WCS of its own
  (local) FITS pixel grid, ``LTV1``/``LTV2`` and the alternate ``PHYSICAL`` WCS ``A``;
- binary tables after (or between) them, as the Rubin pipelines append;
- an optional PSF image HDU with ``PSF-FWHM`` and ``PSF-ALPH``.

The reference values are computed independently from the raw header values: astropy's own
reading of the WCS at local pixels, astropy ``AltAz`` transforms, and `erfa.refco` for the
refraction.
"""

from __future__ import annotations

import functools
import math
import warnings

import astropy.units as u
import erfa
import numpy as np
import pytest
from astropy.coordinates import ICRS, AltAz, EarthLocation, SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.utils import iers
from astropy.wcs import WCS

from dcrmodel.errors import DcrFitsError, DcrWarning
from dcrmodel.fits.exposure import readExposure
from dcrmodel.fits.model import DcrModelDataRef, readDcrModel
from dcrmodel.image import Box, ImagePsf
from dcrmodel.model.core import DcrModel
from dcrmodel.physics.dcr import calculateDcr, calculateImageParallacticAngle
from dcrmodel.physics.refraction import differentialRefraction
from dcrmodel.physics.site import Observatory, defaultWeather

# Site (primer): Cerro Pachon.
LONGITUDE, LATITUDE, ELEVATION = -70.749417, -30.244639, 2663.0
LOCATION = EarthLocation.from_geodetic(LONGITUDE * u.deg, LATITUDE * u.deg, ELEVATION * u.m)
# Mid-exposure time, TAI (the Rubin pipelines write DATE-AVG with TIMESYS = 'TAI').
DATE_TAI = "2026-04-20T02:47:13.250000000"
WEATHER = {"AIRTEMP": 11.5, "AIRPRESS": 74200.0, "HUMIDITY": 23.0}
PIXEL_SCALE = 0.2  # arcsec per pixel
SHAPE = (40, 56)  # (ny, nx)
ORIGIN = (1234, -57)  # parent (x0, y0)
# Reference pixel of the detector-level WCS, PARENT 0-based: outside the cutout, as for a
# cutout of a larger image.
CRPIX_PARENT = (1300.5, -20.25)

# Rubin default planes plus others a processed Rubin exposure carries.
MASK_PLANES = {
    "BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4, "DETECTED": 5,
    "DETECTED_NEGATIVE": 6, "SUSPECT": 7, "NO_DATA": 8, "CROSSTALK": 9,
    "NOT_DEBLENDED": 10, "UNMASKEDNAN": 11, "STREAK": 12,
}
# Written in this order (not by bit).
MASK_KEY_ORDER = ("UNMASKEDNAN", "SAT", "DETECTED_NEGATIVE", "BAD", "CROSSTALK", "NO_DATA",
                  "EDGE", "STREAK", "CR", "INTRP", "SUSPECT", "NOT_DEBLENDED", "DETECTED")


def _offline():
    """Astropy settings that never download Earth-orientation tables (bundled ones cover 2026)."""
    return iers.conf.set_temp("auto_download", False)


@functools.cache
def _visit(azimuth: float, altitude: float, dateTai: str = DATE_TAI,
           target: tuple[float, float] | None = None) -> dict:
    """Header values of a visit pointed at (azimuth, altitude) deg, computed with astropy/ERFA.

    With ``target`` (ICRS RA, Dec in deg) the visit points there instead, at ``dateTai``.
    """
    date = Time(dateTai, format="isot", scale="tai")
    with _offline(), iers.conf.set_temp("auto_max_age", None):
        frame = AltAz(obstime=date, location=LOCATION, pressure=0 * u.hPa)
        if target is None:
            pointing = SkyCoord(az=azimuth * u.deg, alt=altitude * u.deg, frame=frame)
            icrs = pointing.transform_to(ICRS())
            ra, dec = round(float(icrs.ra.deg), 7), round(float(icrs.dec.deg), 7)
        else:
            ra, dec = target
        horizontal = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").transform_to(frame)
        ut1 = date.ut1
        era = math.degrees(erfa.era00(ut1.jd1, ut1.jd2))
        mjdUt1 = float(ut1.mjd)
    alt = float(horizontal.alt.deg)
    return {
        "BORE-RA": ra,
        "BORE-DEC": dec,
        "BORE-AZ": float(horizontal.az.deg),
        "BORE-ALT": alt,
        "BORE-AIRMASS": 1.0 / math.cos(math.radians(90.0 - alt)),
        "BORE-ROTANG": 37.25,
        "AVG-ERA": era,
        "MJD-AVG-UT1": mjdUt1,
        "DATE-AVG": dateTai,
    }


def _cdMatrix(form: str, rotation: float) -> dict:
    """WCS matrix cards: North up East left rotated by ``rotation`` deg, or flipped."""
    s = PIXEL_SCALE / 3600.0
    c, n = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    # Columns: sky (East, North) offsets of a step in x and in y. North-up East-left:
    # step +x goes West (-RA), step +y goes North.
    m = np.array([[-c, n], [n, c]])
    if form.endswith("flipped"):
        m[:, 0] *= -1.0  # x axis mirrored: East right
    if form.startswith("pc"):
        return {"CDELT1": s, "CDELT2": s, "PC1_1": m[0, 0], "PC1_2": m[0, 1],
                "PC2_1": m[1, 0], "PC2_2": m[1, 1]}
    return {"CD1_1": s * m[0, 0], "CD1_2": s * m[0, 1], "CD2_1": s * m[1, 0],
            "CD2_2": s * m[1, 1]}


def _planeHeader(extname: str, x0: int, y0: int, crval: tuple[float, float], form: str,
                 rotation: float, sip: bool) -> fits.Header:
    """Header of an IMAGE/MASK/VARIANCE HDU: local WCS, LTV and the PHYSICAL WCS 'A'."""
    header = fits.Header()
    header["INHERIT"] = True
    header["EXTTYPE"] = extname
    header["EXTNAME"] = extname
    header["RADESYS"] = "ICRS"
    header["EQUINOX"] = 2000.0
    suffix = "-SIP" if sip else ""
    header["CTYPE1"] = "RA---TAN" + suffix
    header["CTYPE2"] = "DEC--TAN" + suffix
    header["CUNIT1"] = "deg"
    header["CUNIT2"] = "deg"
    # Local FITS pixel p (1-based) is parent pixel x0 + p - 1.
    header["CRPIX1"] = CRPIX_PARENT[0] - x0 + 1.0
    header["CRPIX2"] = CRPIX_PARENT[1] - y0 + 1.0
    header["CRVAL1"] = crval[0]
    header["CRVAL2"] = crval[1]
    for key, value in _cdMatrix(form, rotation).items():
        header[key] = value
    if sip:
        header["A_ORDER"] = 2
        header["B_ORDER"] = 2
        header["A_2_0"] = 2.0e-6
        header["A_1_1"] = -1.5e-6
        header["B_0_2"] = 3.0e-6
        header["B_1_1"] = 1.0e-6
    header["LTV1"] = -x0
    header["LTV2"] = -y0
    header["INHERIT"] = True
    header["CTYPE1A"] = "LINEAR"
    header["CTYPE2A"] = "LINEAR"
    header["CRPIX1A"] = 1.0
    header["CRPIX2A"] = 1.0
    header["CRVAL1A"] = x0
    header["CRVAL2A"] = y0
    header["CUNIT1A"] = "PIXEL"
    header["CUNIT2A"] = "PIXEL"
    header["WCSNAMEA"] = "PHYSICAL"
    return header


def _tables() -> list[fits.BinTableHDU]:
    """Binary tables like those the Rubin pipelines append (archive of PSF, WCS, ...)."""
    index = fits.BinTableHDU.from_columns([
        fits.Column("id", "J", array=np.array([1, 2, 3])),
        fits.Column("cat.archive", "J", array=np.array([1, 1, 2])),
        fits.Column("name", "20A", array=np.array(["CoaddPsf", "SkyWcs", "PhotoCalib"])),
    ])
    index.header["EXTTYPE"] = "ARCHIVE_INDEX"
    index.header["AR_CATN"] = 0
    psfTable = fits.BinTableHDU.from_columns([
        fits.Column("coefficients", "10D", array=np.arange(30.0).reshape(3, 10)),
        fits.Column("spatialOrder", "J", array=np.array([2, 2, 2])),
    ])
    psfTable.header["EXTTYPE"] = "ARCHIVE_DATA"
    psfTable.header["AR_NAME"] = "PcaPsf"
    archiveId = fits.BinTableHDU.from_columns([
        fits.Column("ArchiveId", "K", array=np.array([7, 8])),
    ], name="ArchiveId")
    return [index, psfTable, archiveId]


def _key(key: str) -> str:
    """Keys longer than eight characters are written with the HIERARCH convention."""
    return f"HIERARCH {key}" if len(key) > 8 else key


def _primaryHeader(visit: dict, filterName: str, weather: str, optional: bool) -> fits.Header:
    header = fits.Header()
    header["EXTEND"] = True
    header.add_comment("Written by an independent pipeline for the dcrmodel tests")
    header["HIERARCH LSST BUTLER DATASETTYPE"] = "calexp"
    header["HIERARCH LSST BUTLER ID"] = "d2f1c0de-0000-4000-8000-000000000001"
    header["AR_HDU"] = 5
    header["PSF_ID"] = 1
    header["HIERARCH SKYWCS_ID"] = 2
    for key in ("BORE-RA", "BORE-DEC", "BORE-AZ", "BORE-ALT", "BORE-AIRMASS",
                "BORE-ROTANG"):
        header[_key(key)] = visit[key]
    if optional:
        header["ROTTYPE"] = "SKY"
    header["OBS-LONG"] = LONGITUDE
    header["OBS-LAT"] = LATITUDE
    header["OBS-ELEV"] = ELEVATION
    if weather == "full":
        for key, value in WEATHER.items():
            header[key] = value
    elif weather == "nan":
        header["AIRTEMP"] = "NaN"  # unknown, as text
        header["AIRPRESS"] = WEATHER["AIRPRESS"]
        header["HUMIDITY"] = None  # unknown, as an undefined value
    header["DATE-AVG"] = visit["DATE-AVG"]
    header["TIMESYS"] = "TAI"
    header["HIERARCH MJD-AVG-UT1"] = visit["MJD-AVG-UT1"]
    header["AVG-ERA"] = visit["AVG-ERA"]
    header["EXPTIME"] = 30.0
    if optional:
        header["IDNUM"] = 2026042000123
    header["FILTER"] = filterName
    header.add_history("isr; characterizeImage; calibrate")
    header["HIERARCH LSST CALIB BACKGROUND MEAN"] = 1234.5
    return header


def writeForeignExposure(
    path,
    *,
    azimuth: float = 250.0,
    altitude: float = 48.0,
    origin: tuple[int, int] = ORIGIN,
    form: str = "cd",
    rotation: float = 30.0,
    sip: bool = False,
    order: tuple[str, ...] = ("IMAGE", "MASK", "VARIANCE"),
    tablesBetween: bool = False,
    dtype: type = np.float32,
    filterName: str = "g_6",
    weather: str = "full",
    optional: bool = True,
    psf: tuple[np.ndarray, float, float] | None = None,
    image: np.ndarray | None = None,
    seed: int = 0,
    dateTai: str = DATE_TAI,
    target: tuple[float, float] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> dict:
    """Write an exposure file with astropy alone; return what was written.

    ``offset`` (deg): the WCS reference point's offset from the boresight in RA and Dec
    (a detector away from the centre of the focal plane).
    """
    visit = _visit(azimuth, altitude, dateTai, target)
    x0, y0 = origin
    rng = np.random.default_rng(seed)
    if image is None:
        image = rng.normal(100.0, 5.0, SHAPE)
    image = np.asarray(image, dtype=dtype)
    variance = np.asarray(rng.uniform(20.0, 30.0, image.shape), dtype=dtype)
    mask = np.zeros(image.shape, dtype=np.int32)
    mask[3, 4] |= 1 << MASK_PLANES["SAT"]
    mask[10:14, 20:25] |= 1 << MASK_PLANES["DETECTED"]
    mask[0, :] |= 1 << MASK_PLANES["EDGE"]
    mask[7, 9] |= (1 << MASK_PLANES["CROSSTALK"]) | (1 << MASK_PLANES["UNMASKEDNAN"])
    mask[-1, -1] |= 1 << MASK_PLANES["STREAK"]
    crval = (visit["BORE-RA"] + offset[0], visit["BORE-DEC"] + offset[1])
    data = {"IMAGE": image, "MASK": mask, "VARIANCE": variance}
    planes = []
    for name in order:
        header = _planeHeader(name, x0, y0, crval, form, rotation, sip)
        if name == "MASK":
            for plane in MASK_KEY_ORDER:
                header[f"HIERARCH MP_{plane}"] = MASK_PLANES[plane]
        planes.append(fits.ImageHDU(data[name], header=header))
    tables = _tables()
    hdus = [fits.PrimaryHDU(header=_primaryHeader(visit, filterName, weather, optional))]
    if tablesBetween:
        hdus += planes[:1] + tables[:1] + planes[1:] + tables[1:]
    else:
        hdus += planes + tables
    if psf is not None:
        kernel, fwhmArcsec, alpha = psf
        psfHdu = fits.ImageHDU(kernel, name="PSF")
        psfHdu.header["PSF-FWHM"] = fwhmArcsec
        psfHdu.header["PSF-ALPH"] = alpha
        hdus.append(psfHdu)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        fits.HDUList(hdus).writeto(path, overwrite=True)
    return {"visit": visit, "image": image, "mask": mask, "variance": variance,
            "origin": origin}


def _read(path):
    """readExposure, ignoring only dcrmodel's notice that bundled IERS tables are used."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*bundled.*")
        return readExposure(path)


# --------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------


def _rawVisit(path):
    """Site, time and horizontal frame from the raw HDU 0 keys (astropy only)."""
    header = fits.getheader(path, 0)
    location = EarthLocation.from_geodetic(
        header["OBS-LONG"] * u.deg, header["OBS-LAT"] * u.deg, header["OBS-ELEV"] * u.m
    )
    date = Time(header["DATE-AVG"], format="isot", scale=header["TIMESYS"].lower())
    frame = AltAz(obstime=date, location=location, pressure=0 * u.hPa)
    return header, frame


def _refcoRefraction(wavelengths, altitude, temperature, pressure, humidity):
    """Refraction (arcsec) from ERFA's refco: R = A tan z + B tan^3 z."""
    z = math.radians(90.0 - altitude)
    out = []
    for wavelength in np.atleast_1d(wavelengths):
        a, b = erfa.refco(pressure / 100.0, temperature, humidity / 100.0, wavelength / 1000.0)
        out.append(math.degrees(a * math.tan(z) + b * math.tan(z) ** 3) * 3600.0)
    return np.array(out)


def _independentShifts(path, parentXY, edgeShiftsArcsec):
    """Pixel shifts (dy, dx) of raising the altitude by each of ``edgeShiftsArcsec``.

    Parent pixel -> local pixel -> sky by astropy's own reading of HDU IMAGE -> AltAz (no
    refraction) -> altitude raised -> sky -> local pixel.
    """
    header, frame = _rawVisit(path)
    imageHeader = fits.getheader(path, "IMAGE")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = WCS(imageHeader)
    x0, y0 = -imageHeader["LTV1"], -imageHeader["LTV2"]
    lx, ly = parentXY[0] - x0, parentXY[1] - y0
    with _offline():
        sky = local.pixel_to_world(lx, ly)
        horizontal = sky.transform_to(frame)
        shifts = np.asarray(edgeShiftsArcsec, dtype=float)
        raised = SkyCoord(
            az=np.full(shifts.shape, horizontal.az.deg) * u.deg,
            alt=(horizontal.alt.deg + shifts / 3600.0) * u.deg,
            frame=frame,
        ).transform_to(ICRS())
        px, py = local.world_to_pixel(raised)
    return np.stack([np.asarray(py) - ly, np.asarray(px) - lx], axis=-1)


# --------------------------------------------------------------------------------------
# Reading the layout
# --------------------------------------------------------------------------------------

ORDERS = [("IMAGE", "MASK", "VARIANCE"), ("VARIANCE", "IMAGE", "MASK"),
          ("MASK", "VARIANCE", "IMAGE")]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_planesBoxAndPixels(tmp_path, order, dtype):
    path = tmp_path / "calexp.fits"
    written = writeForeignExposure(path, order=order, dtype=dtype, tablesBetween=True)
    exposure = _read(path)
    assert exposure.bbox == Box(ORIGIN[0], ORIGIN[1], SHAPE[1], SHAPE[0])
    np.testing.assert_array_equal(exposure.image.array, written["image"])
    assert exposure.image.array.dtype == dtype
    np.testing.assert_array_equal(exposure.variance.array, written["variance"])
    np.testing.assert_array_equal(exposure.mask.array, written["mask"])


def test_maskPlanesInAnyOrder(tmp_path):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path)
    mask = _read(path).mask
    assert mask.planes == MASK_PLANES
    assert mask.getPlaneBitMask("CROSSTALK") == 1 << 9
    assert mask.getPlaneBitMask(["SAT", "UNMASKEDNAN"]) == (1 << 1) | (1 << 11)
    # Parent pixel (x0 + 9, y0 + 7) carries CROSSTALK and UNMASKEDNAN.
    value = mask.array[7, 9]
    assert value & mask.getPlaneBitMask("UNMASKEDNAN")
    assert value & mask.getPlaneBitMask("CROSSTALK")
    assert not value & mask.getPlaneBitMask("SAT")
    assert np.count_nonzero(mask.array & mask.getPlaneBitMask("DETECTED")) == 20


def test_cutoutOfAForeignFile(tmp_path):
    path = tmp_path / "calexp.fits"
    written = writeForeignExposure(path, order=("VARIANCE", "MASK", "IMAGE"))
    box = Box(ORIGIN[0] + 20, ORIGIN[1] + 10, 5, 4)
    cutout = readExposure(path, bbox=box)
    np.testing.assert_array_equal(cutout.image.array, written["image"][10:14, 20:25])
    assert cutout.mask.array.all()  # the DETECTED block
    assert cutout.bbox == box


@pytest.mark.parametrize(
    ("form", "rotation", "sip"),
    [("cd", 30.0, False), ("cd-flipped", -115.0, False), ("pc", 200.0, False),
     ("pc-flipped", 0.0, False), ("cd", 75.0, True)],
)
def test_wcsMapsParentPixelsLikeAstropyAtLocalPixels(tmp_path, form, rotation, sip):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path, form=form, rotation=rotation, sip=sip)
    exposure = _read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = WCS(fits.getheader(path, "IMAGE"))
    x0, y0 = ORIGIN
    x = x0 + np.array([0.0, 55.0, 17.5, 0.0, 55.0, 3.25])
    y = y0 + np.array([0.0, 39.0, 22.0, 39.0, 0.0, 31.75])
    ours = exposure.wcs.pixel_to_world(x, y)
    theirs = reference.pixel_to_world(x - x0, y - y0)
    np.testing.assert_array_less(ours.separation(theirs).to_value(u.arcsec), 1e-6)
    # And back: astropy's local pixel + origin is our parent pixel.
    px, py = exposure.wcs.world_to_pixel(theirs)
    np.testing.assert_allclose(px, x, atol=1e-7)
    np.testing.assert_allclose(py, y, atol=1e-7)


def test_visitInfoEqualsTheHeader(tmp_path):
    path = tmp_path / "calexp.fits"
    written = writeForeignExposure(path)
    header = fits.getheader(path, 0)
    info = _read(path).visitInfo
    assert info.boresightRaDec.ra.deg == header["BORE-RA"]
    assert info.boresightRaDec.dec.deg == header["BORE-DEC"]
    assert info.boresightAzAlt[0].deg == header["BORE-AZ"]
    assert info.boresightAzAlt[1].deg == header["BORE-ALT"]
    assert info.boresightAirmass == header["BORE-AIRMASS"]
    assert info.boresightRotAngle.deg == header["BORE-ROTANG"]
    assert info.rotType == "SKY"
    assert info.observatory.longitude.deg == pytest.approx(LONGITUDE, abs=1e-12)
    assert info.observatory.latitude.deg == pytest.approx(LATITUDE, abs=1e-12)
    assert info.observatory.elevation == ELEVATION
    assert info.weather.airTemperature == WEATHER["AIRTEMP"]
    assert info.weather.airPressure == WEATHER["AIRPRESS"]
    assert info.weather.humidity == WEATHER["HUMIDITY"]
    assert info.era.deg == pytest.approx(written["visit"]["AVG-ERA"], abs=1e-12)
    assert info.exposureTime == 30.0
    assert info.id == 2026042000123
    reference = Time(DATE_TAI, format="isot", scale="tai")
    assert abs((info.date - reference).to_value(u.s)) < 1e-6
    # The same instant whatever scale it is read in: UT1 agrees with MJD-AVG-UT1.
    with _offline():
        assert abs(info.date.ut1.mjd - header["MJD-AVG-UT1"]) * 86400.0 < 1e-4
    # The hour angle from the written ERA.
    hourAngle = (header["AVG-ERA"] + LONGITUDE - header["BORE-RA"] + 180.0) % 360.0 - 180.0
    assert info.hourAngle.deg == pytest.approx(hourAngle, abs=1e-9)


def test_rubinArchiveKeysAndHierarchCards(tmp_path):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path)
    metadata = _read(path).metadata
    # Pointers into the binary tables are dropped; everything else is kept.
    for key in ("AR_HDU", "PSF_ID", "SKYWCS_ID"):
        assert key not in metadata
    assert metadata["LSST BUTLER DATASETTYPE"] == "calexp"
    assert metadata["LSST CALIB BACKGROUND MEAN"] == 1234.5
    assert "isr; characterizeImage; calibrate" in str(metadata["HISTORY"])
    assert "independent pipeline" in str(metadata["COMMENT"])


def test_optionalKeysMissing(tmp_path):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path, optional=False)
    info = _read(path).visitInfo
    assert info.id is None
    assert info.boresightAzAlt is not None


@pytest.mark.parametrize("name", ["g_6", "g"])
def test_physicalAndBandFilterNames(tmp_path, name):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path, filterName=name)
    filterInfo = _read(path).filter
    assert filterInfo.bandName == name
    assert filterInfo.effectiveWavelength == pytest.approx(482.685)
    assert filterInfo.bandwidth == pytest.approx(180.5)


def test_missingWeatherIsTheStandardAtmosphere(tmp_path):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path, weather="missing")
    exposure = _read(path)
    assert exposure.visitInfo.weather is None
    # DCR then uses the standard atmosphere at the site's elevation.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*bundled.*")
        shifts = calculateDcr(exposure.visitInfo, exposure.wcs, 482.685, 180.5, 3,
                              bbox=exposure.bbox)
    default = defaultWeather(ELEVATION)
    assert default.airTemperature == pytest.approx(19.0 - 6.5 * ELEVATION / 1000.0)
    expected = _refcoShifts(path, exposure.bbox, default.airTemperature,
                            default.airPressure, default.humidity)
    _assertShiftsAgree(shifts, expected)


def test_unknownWeatherValuesBecomeTheDefault(tmp_path):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path, weather="nan")
    with pytest.warns(DcrWarning, match="AIRTEMP, HUMIDITY are unknown"):
        info = readExposure(path).visitInfo
    default = defaultWeather(ELEVATION)
    assert info.weather.airTemperature == default.airTemperature
    assert info.weather.humidity == default.humidity
    assert info.weather.airPressure == WEATHER["AIRPRESS"]


# --------------------------------------------------------------------------------------
# Parallactic angle and DCR against independent astropy / ERFA computations
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("azimuth", "altitude"), [(250.0, 48.0), (110.0, 40.0), (200.0, 62.0)])
def test_parallacticAngleAgreesWithAstropy(tmp_path, azimuth, altitude):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path, azimuth=azimuth, altitude=altitude, form="cd", rotation=0.0)
    exposure = _read(path)
    header, frame = _rawVisit(path)
    target = SkyCoord(header["BORE-RA"] * u.deg, header["BORE-DEC"] * u.deg, frame="icrs")
    with _offline():
        horizontal = target.transform_to(frame)
        up = SkyCoord(az=horizontal.az, alt=horizontal.alt + 10 * u.arcsec, frame=frame)
        # Position angle of the zenith seen from the target, North through East, in ICRS ...
        icrsAngle = target.position_angle(up.transform_to(ICRS())).wrap_at(180 * u.deg).deg
        # ... and in the apparent frame of the date (true equator and equinox).
        apparentFrame = target.transform_to("tete").frame.replicate_without_data(
            obstime=frame.obstime
        )
        apparent = target.transform_to(apparentFrame)
        apparentAngle = apparent.position_angle(up.transform_to(apparentFrame))
        apparentAngle = apparentAngle.wrap_at(180 * u.deg).deg
    ours = exposure.visitInfo.boresightParAngle.deg
    # The sign convention: positive west of the meridian (azimuth 180-360 deg).
    assert math.copysign(1.0, ours) == (1.0 if azimuth > 180.0 else -1.0)
    # From the ICRS right ascension and declination (primer): within the precession
    # (~0.4 deg in 2026) of the ICRS angle; closer to the apparent one (0.03-0.07 deg here),
    # since the hour angle comes from the Earth rotation angle of the date.
    assert abs(ours - icrsAngle) < 0.5
    assert abs(ours - apparentAngle) < 0.15
    # Through the WCS (North up, East left at rotation 0): the ICRS angle, tightly.
    imageAngle = calculateImageParallacticAngle(exposure.visitInfo, exposure.wcs,
                                                bbox=Box(ORIGIN[0] + 28, ORIGIN[1] + 20, 1, 1))
    crpixSky = exposure.wcs.pixel_to_world(ORIGIN[0] + 28, ORIGIN[1] + 20)
    with _offline():
        local = crpixSky.transform_to(frame)
        localUp = SkyCoord(az=local.az, alt=local.alt + 10 * u.arcsec, frame=frame)
        localAngle = crpixSky.position_angle(localUp.transform_to(ICRS())).wrap_at(180 * u.deg)
    # The WCS's North differs from the local meridian's by the convergence of meridians
    # over the few arcsec from CRPIX: tiny.
    assert imageAngle.deg == pytest.approx(localAngle.deg, abs=0.01)


def _refcoShifts(path, bbox, temperature, pressure, humidity, numSubfilters=3, altitude=None):
    """Independent shifts (dy, dx) per subfilter of band g: refco refraction, astropy geometry.

    The refraction is that at ``altitude`` (deg; default: the file's BORE-ALT).
    """
    if altitude is None:
        altitude = fits.getheader(path, 0)["BORE-ALT"]
    eff, bw = 482.685, 180.5
    edges = eff - bw / 2.0 + bw * np.arange(numSubfilters + 1) / numSubfilters
    refraction = _refcoRefraction(np.append(edges, eff), altitude,
                                  temperature, pressure, humidity)
    edgeDr = refraction[:-1] - refraction[-1]
    meanDr = 0.5 * (edgeDr[:-1] + edgeDr[1:])
    return _independentShifts(path, bbox.center, meanDr)


def _assertShiftsAgree(shifts, expected):
    """Within 0.01 px plus 1 % of the shift: Stone (1996) and ERFA's refco differ in the
    dispersion by up to ~0.7 % at the blue edge of g (about 0.005 arcsec at airmass 1.5)."""
    shifts = np.asarray(shifts)
    tolerance = 0.01 + 0.01 * np.hypot(expected[:, 0], expected[:, 1])
    error = np.hypot(*(shifts - expected).T)
    assert np.all(error < tolerance), (shifts, expected)


@pytest.mark.parametrize(
    ("form", "rotation", "azimuth", "altitude", "sip", "offset"),
    [("cd", 30.0, 250.0, 48.0, False, (0.0, 0.0)),
     ("cd-flipped", -115.0, 110.0, 40.0, False, (0.0, 0.0)),
     ("pc", 200.0, 320.0, 55.0, False, (0.0, 0.0)),
     ("cd", 75.0, 30.0, 35.0, True, (0.0, 0.0)),
     ("pc-flipped", 140.0, 200.0, 45.0, False, (1.2, -1.0))],  # 1.5 deg off the boresight
)
def test_calculateDcrAgreesWithAnIndependentCalculation(
    tmp_path, form, rotation, azimuth, altitude, sip, offset
):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path, form=form, rotation=rotation, azimuth=azimuth,
                         altitude=altitude, sip=sip, offset=offset)
    exposure = _read(path)
    box = Box(ORIGIN[0] + 5, ORIGIN[1] + 3, 30, 20)
    f = exposure.filter
    shifts = calculateDcr(exposure.visitInfo, exposure.wcs, f.effectiveWavelength,
                          f.bandwidth, 3, bbox=box)
    expected = _refcoShifts(path, box, WEATHER["AIRTEMP"], WEATHER["AIRPRESS"],
                            WEATHER["HUMIDITY"])
    _assertShiftsAgree(shifts, expected)
    # The geometry alone, with the library's own (Stone) magnitudes: far tighter.
    header = fits.getheader(path, 0)
    edges = f.effectiveWavelength - f.bandwidth / 2 + f.bandwidth * np.arange(4) / 3
    stone = differentialRefraction(
        edges, f.effectiveWavelength, header["BORE-ALT"] * u.deg,
        Observatory(LONGITUDE * u.deg, LATITUDE * u.deg, ELEVATION),
        exposure.visitInfo.weather,
    ).to_value(u.arcsec)
    geometry = _independentShifts(path, box.center, 0.5 * (stone[:-1] + stone[1:]))
    np.testing.assert_allclose(np.asarray(shifts), geometry, atol=1e-4)
    # Split subfilters: the shifts of the edges themselves.
    split = calculateDcr(exposure.visitInfo, exposure.wcs, f.effectiveWavelength,
                         f.bandwidth, 3, splitSubfilters=True, bbox=box)
    edgeShifts = _independentShifts(path, box.center, stone)
    np.testing.assert_allclose(np.asarray(split)[:, 0], edgeShifts[:-1], atol=1e-4)
    np.testing.assert_allclose(np.asarray(split)[:, 1], edgeShifts[1:], atol=1e-4)
    # Blue subfilter toward the zenith, more than 1 px at these airmasses.
    assert np.hypot(*shifts[0]) > 1.0


# --------------------------------------------------------------------------------------
# PSF HDU
# --------------------------------------------------------------------------------------


def _gaussianKernel(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size) - size // 2
    kernel = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma**2)
    return kernel / kernel.sum()


def test_psfHduWrittenByHand(tmp_path):
    path = tmp_path / "calexp.fits"
    sigma = 1.7
    kernel = _gaussianKernel(25, sigma)
    fwhmArcsec = 2.0 * math.sqrt(2.0 * math.log(2.0)) * sigma * PIXEL_SCALE
    writeForeignExposure(path, psf=(kernel, fwhmArcsec, -0.2))
    exposure = _read(path)
    assert isinstance(exposure.psf, ImagePsf)
    np.testing.assert_allclose(exposure.psf.computeKernelImage(), kernel, rtol=1e-12,
                               atol=1e-15)
    assert exposure.psf.alpha == -0.2
    assert exposure.psf.fwhm == pytest.approx(fwhmArcsec / PIXEL_SCALE, rel=1e-9)
    assert exposure.psf.effectiveWavelength == pytest.approx(482.685)


def test_noPsfHduMeansNoPsf(tmp_path):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path)
    assert _read(path).psf is None


# --------------------------------------------------------------------------------------
# DCR model files written by hand, and a matched template
# --------------------------------------------------------------------------------------


def _writeModelFile(path, k, numSubfilters, array, eff=482.685, bw=180.5, **grid):
    """One dcrCoadd_<k>.fits, as another code would write it (no visit keys: a coadd).

    ``grid`` (WCS ``form``, ``rotation`` and the pointing it is centred on) must match the
    visits the model is used with.
    """
    written = writeForeignExposure(path, image=array, optional=False, **grid)
    with fits.open(path, mode="update") as hdus:
        header = hdus[0].header
        for key in [key for key in header if key.startswith(("BORE-", "OBS-", "AIR", "HUM",
                                                                "DATE-", "TIMESYS", "MJD-",
                                                                "AVG-", "EXPTIME"))]:
            del header[key]
        header["FILTER"] = "g"
        header["DCR-SUBF"] = k
        header["DCR-NSUB"] = numSubfilters
        header["DCR-WMIN"] = eff - bw / 2 + bw * k / numSubfilters
        header["DCR-WMAX"] = eff - bw / 2 + bw * (k + 1) / numSubfilters
    return written


def _pointSource(shape, x, y, sigma=1.5):
    yy, xx = np.indices(shape)
    return 1000.0 * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2)


def test_modelDirectoryWrittenByHand(tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    arrays = [np.full(SHAPE, float(k + 1)) for k in range(3)]
    for k, array in enumerate(arrays):
        _writeModelFile(directory / f"dcrCoadd_{k}.fits", k, 3, array)
    model = readDcrModel(directory)
    assert model.dcrNumSubfilters == 3
    assert model.bbox == Box(ORIGIN[0], ORIGIN[1], SHAPE[1], SHAPE[0])
    for k in range(3):
        np.testing.assert_array_equal(model[k].array, arrays[k])
    assert model.filter.effectiveWavelength == pytest.approx(482.685)
    assert model.mask.planes == MASK_PLANES
    viaDataRef = DcrModel.fromDataRef(DcrModelDataRef(directory), numSubfilters=3)
    np.testing.assert_array_equal(viaDataRef[2].array, arrays[2])


def test_matchedTemplateMovesAPointSourceAlongTheZenith(tmp_path):
    # A model whose light is all in the bluest subfilter: the template is that source moved
    # by the blue subfilter's DCR in the visit.
    directory = tmp_path / "model"
    directory.mkdir()
    xs, ys = 27.3, 19.6  # local position of the source
    source = _pointSource(SHAPE, xs, ys)
    arrays = [source, np.zeros(SHAPE), np.zeros(SHAPE)]
    # The model shares the visit's pixel grid (same WCS), as models and warps do.
    grid = {"form": "cd-flipped", "rotation": -115.0, "azimuth": 110.0, "altitude": 40.0}
    for k, array in enumerate(arrays):
        _writeModelFile(directory / f"dcrCoadd_{k}.fits", k, 3, array, **grid)
    model = readDcrModel(directory)
    visitPath = tmp_path / "calexp.fits"
    writeForeignExposure(visitPath, **grid)
    exposure = _read(visitPath)
    template = model.buildMatchedTemplate(exposure).array
    assert template.shape == SHAPE
    assert np.all(np.isfinite(template))
    assert template.sum() == pytest.approx(source.sum(), rel=1e-3)
    yy, xx = np.indices(SHAPE)
    centroid = np.array([(template * yy).sum(), (template * xx).sum()]) / template.sum()
    expected = _refcoShifts(visitPath, exposure.bbox, WEATHER["AIRTEMP"], WEATHER["AIRPRESS"],
                            WEATHER["HUMIDITY"])[0]
    moved = centroid - np.array([ys, xs])
    assert np.hypot(*expected) > 1.0
    assert np.hypot(*(moved - expected)) < 0.02 + 0.01 * np.hypot(*expected), (moved, expected)


def _writeModelDirectory(directory, eff, bw, filterName="g", numSubfilters=3):
    directory.mkdir()
    for k in range(numSubfilters):
        _writeModelFile(directory / f"dcrCoadd_{k}.fits", k, numSubfilters,
                        np.full(SHAPE, float(k)), eff=eff, bw=bw)
        if filterName is None:
            with fits.open(directory / f"dcrCoadd_{k}.fits", mode="update") as hdus:
                del hdus[0].header["FILTER"]


@pytest.mark.parametrize("filterName", ["g", None])
def test_modelBandComesFromTheSubfilterRanges(tmp_path, filterName):
    # Another pipeline's g band (not dcrmodel's built-in table), or no FILTER key at all:
    # the files' own DCR-WMIN/DCR-WMAX say what the subfilters are.
    directory = tmp_path / "model"
    _writeModelDirectory(directory, 477.0, 150.0, filterName=filterName)
    model = readDcrModel(directory)
    assert model.filter.effectiveWavelength == pytest.approx(477.0, abs=1e-9)
    assert model.filter.bandwidth == pytest.approx(150.0, abs=1e-9)
    assert model.filter.bandName == (filterName or "unknown")


def test_modelFilesOfDifferentBandsAreRejected(tmp_path):
    directory = tmp_path / "model"
    _writeModelDirectory(directory, 477.0, 150.0)
    with fits.open(directory / "dcrCoadd_2.fits", mode="update") as hdus:
        hdus[0].header["DCR-WMIN"] = 530.0
        hdus[0].header["DCR-WMAX"] = 580.0
    with pytest.raises(DcrFitsError, match="dcrCoadd_2.fits.*DCR-WMIN.*do not belong together"):
        readDcrModel(directory)
    with fits.open(directory / "dcrCoadd_2.fits", mode="update") as hdus:
        hdus[0].header["DCR-WMAX"] = 520.0
    with pytest.raises(DcrFitsError, match="DCR-WMIN = 530.0 and DCR-WMAX = 520.0"):
        readDcrModel(directory)


# --------------------------------------------------------------------------------------
# Unusual headers: accepted, completed, or rejected with a clear error
# --------------------------------------------------------------------------------------


def _editHeader(path, **keys):
    """Set (value) or delete (None) HDU 0 keys of a written file."""
    with fits.open(path, mode="update") as hdus:
        header = hdus[0].header
        for key, value in keys.items():
            key = key.replace("_", "-")
            if value is None:
                del header[key]
            else:
                header[key] = value


@pytest.mark.parametrize("how", ["missing", "nan"])
def test_missingBoresightAltitudeIsComputed(tmp_path, how):
    path = tmp_path / "calexp.fits"
    written = writeForeignExposure(path, azimuth=110.0, altitude=40.0)
    if how == "missing":
        _editHeader(path, BORE_AZ=None, BORE_ALT=None)
    else:
        _editHeader(path, BORE_ALT="NaN")
    with pytest.warns(DcrWarning, match="BORE-AZ/BORE-ALT are missing or unknown"):
        exposure = readExposure(path)
    az, alt = exposure.visitInfo.boresightAzAlt
    assert alt.deg == pytest.approx(written["visit"]["BORE-ALT"], abs=1e-6)
    assert az.deg == pytest.approx(written["visit"]["BORE-AZ"], abs=1e-6)
    shifts = calculateDcr(exposure.visitInfo, exposure.wcs, 482.685, 180.5, 3,
                          bbox=exposure.bbox)
    expected = _refcoShifts(path, exposure.bbox, *WEATHER.values(),
                            altitude=written["visit"]["BORE-ALT"])
    _assertShiftsAgree(shifts, expected)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("AIRTEMP", 284.65, "AIRTEMP = 284.65 is not a plausible value in degC.*kelvin"),
     ("AIRPRESS", 742.0, "AIRPRESS = 742 is not a plausible value in Pa.*hPa")],
)
def test_weatherInAnotherUnitIsRejected(tmp_path, key, value, match):
    # Read as degC / Pa these would move sources by hundreds of pixels or not at all.
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path)
    _editHeader(path, **{key: value})
    with pytest.raises(DcrFitsError, match=match):
        readExposure(path)


def _editMask(path, edit):
    with fits.open(path, mode="update") as hdus:
        edit(hdus["MASK"])


def test_maskWithoutPlaneKeysHasTheDefaultPlanes(tmp_path):
    path = tmp_path / "calexp.fits"
    written = writeForeignExposure(path)

    def dropKeys(hdu):
        for key in [key for key in hdu.header if key.startswith("MP_")]:
            del hdu.header[key]

    _editMask(path, dropKeys)
    with pytest.warns(DcrWarning, match="no MP_<PLANE> keys.*Rubin default planes"):
        mask = readExposure(path).mask
    assert mask.planes == {name: bit for name, bit in MASK_PLANES.items() if bit <= 8}
    np.testing.assert_array_equal(mask.array, written["mask"])
    assert mask.getPlaneBitMask("DETECTED") == 1 << 5
    # An empty mask without keys is read silently.
    _editMask(path, lambda hdu: hdu.data.fill(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DcrWarning)
        assert readExposure(path).mask.planes["SAT"] == 1


def test_maskPlaneBitsWrittenAsReals(tmp_path):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path)

    def realBits(hdu):
        for key in [key for key in hdu.header if key.startswith("MP_")]:
            hdu.header[key] = float(hdu.header[key])

    _editMask(path, realBits)
    assert _read(path).mask.planes == MASK_PLANES
    _editMask(path, lambda hdu: hdu.header.set("MP_BAD", 0.5))
    with pytest.raises(DcrFitsError, match="MP_BAD must be an integer bit number"):
        readExposure(path)


_ORIGIN_KEYS = ("LTV1", "LTV2", "CTYPE1A", "CTYPE2A", "CRVAL1A", "CRVAL2A", "CRPIX1A",
                "CRPIX2A", "CUNIT1A", "CUNIT2A", "WCSNAMEA")


@pytest.mark.parametrize("keep", ["IMAGE", "MASK"])
def test_originOnOnePlaneOnly(tmp_path, keep):
    # A writer that put the parent origin on one plane HDU only.
    path = tmp_path / "calexp.fits"
    written = writeForeignExposure(path)
    with fits.open(path, mode="update") as hdus:
        for name in ("IMAGE", "MASK", "VARIANCE"):
            if name != keep:
                for key in _ORIGIN_KEYS:
                    del hdus[name].header[key]
    exposure = _read(path)
    assert exposure.bbox.begin == ORIGIN
    np.testing.assert_array_equal(exposure.mask.array, written["mask"])
    # Planes that give different origins are still rejected.
    with fits.open(path, mode="update") as hdus:
        hdus["VARIANCE"].header["LTV1"] = 0
    with pytest.raises(DcrFitsError, match="HDU VARIANCE has parent origin"):
        readExposure(path)


def test_matchedTemplateWithPsfHdusOnACutout(tmp_path):
    # Model files and visit with hand-written PSF HDUs (model sharper than the visit); the
    # template over a cutout of the visit: its centroid moves by the blue subfilter's DCR
    # and its width grows to the visit's PSF.
    directory = tmp_path / "model"
    directory.mkdir()
    xs, ys = 30.2, 18.7
    modelSigma, visitSigma = 1.5, 2.2
    source = _pointSource(SHAPE, xs, ys, sigma=modelSigma)
    fwhm = 2.0 * math.sqrt(2.0 * math.log(2.0)) * PIXEL_SCALE
    grid = {"form": "pc", "rotation": 200.0, "azimuth": 320.0, "altitude": 55.0}
    for k, array in enumerate([source, np.zeros(SHAPE), np.zeros(SHAPE)]):
        path = directory / f"dcrCoadd_{k}.fits"
        _writeModelFile(path, k, 3, array, **grid)
        with fits.open(path, mode="update") as hdus:
            psfHdu = fits.ImageHDU(_gaussianKernel(21, modelSigma), name="PSF")
            psfHdu.header["PSF-FWHM"] = fwhm * modelSigma
            psfHdu.header["PSF-ALPH"] = 0.0
            hdus.append(psfHdu)
    model = readDcrModel(directory)
    assert model.psf is not None
    visitPath = tmp_path / "calexp.fits"
    writeForeignExposure(visitPath, **grid,
                         psf=(_gaussianKernel(31, visitSigma), fwhm * visitSigma, 0.0))
    box = Box(ORIGIN[0] + 12, ORIGIN[1] + 4, 36, 30)
    exposure = readExposure(visitPath, bbox=box)
    template = model.buildMatchedTemplate(exposure).array
    assert template.shape == box.shape
    yy, xx = np.indices(box.shape)
    total = template.sum()
    assert total == pytest.approx(source.sum(), rel=2e-3)
    cy, cx = (template * yy).sum() / total, (template * xx).sum() / total
    expected = _refcoShifts(visitPath, box, *WEATHER.values())[0]
    moved = np.array([cy + box.minY - ORIGIN[1] - ys, cx + box.minX - ORIGIN[0] - xs])
    assert np.hypot(*(moved - expected)) < 0.02 + 0.01 * np.hypot(*expected), (moved, expected)
    # Second moment across the DCR direction: the visit's PSF width.
    along = np.array(expected) / np.hypot(*expected)
    across = (-(yy - cy) * along[1] + (xx - cx) * along[0])
    width = math.sqrt((template * across**2).sum() / total)
    assert width == pytest.approx(visitSigma, rel=0.03)


@pytest.mark.parametrize("key", ["DATE-OBS", "DATE-BEG"])
def test_startDateWithoutDateAvg(tmp_path, key):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path)
    start = Time(DATE_TAI, format="isot", scale="tai") - 15.0 * u.s  # EXPTIME 30 s
    _editHeader(path, DATE_AVG=None, **{"MJD_AVG_UT1": None, key.replace("-", "_"): start.isot})
    with pytest.warns(DcrWarning, match=f"DATE-AVG is missing.*{key}"):
        info = readExposure(path).visitInfo
    assert abs((info.date - Time(DATE_TAI, scale="tai")).to_value(u.s)) < 1e-6


# --------------------------------------------------------------------------------------
# End to end: a model assembled from foreign visit files
# --------------------------------------------------------------------------------------


def test_modelFromForeignVisitsReproducesThem(tmp_path):
    # Eight visits of one field through a night (both sides of the meridian, altitudes
    # 32-59 deg), rendered with the independent (astropy + refco) subfilter shifts: a blue,
    # a red and a grey star. The assembled model puts their light in the right subfilters
    # and its template reproduces a visit to the noise.
    from dcrmodel.assemble.task import assembleFromFiles

    target = (_visit(0.0, 60.0)["BORE-RA"], _visit(0.0, 60.0)["BORE-DEC"])
    start = Time(DATE_TAI, format="isot", scale="tai")
    stars = [(15.3, 12.2, (3000.0, 0.0, 0.0)), (40.7, 25.1, (0.0, 0.0, 3000.0)),
             (28.2, 30.4, (1000.0, 1000.0, 1000.0))]
    sigma, noise = 2.0, 0.5
    yy, xx = np.indices(SHAPE)
    kernel = (_gaussianKernel(25, sigma), 2.0 * math.sqrt(2.0 * math.log(2.0)) * sigma
              * PIXEL_SCALE, 0.0)
    paths = []
    for j, hours in enumerate([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5]):
        date = (start + hours * u.hour).isot
        path = tmp_path / f"visit{j}.fits"
        writeForeignExposure(path, dateTai=date, target=target)
        shifts = _refcoShifts(path, Box(ORIGIN[0], ORIGIN[1], SHAPE[1], SHAPE[0]),
                              *WEATHER.values())
        image = np.random.default_rng(j).normal(0.0, noise, SHAPE)
        for x, y, fluxes in stars:
            for (dy, dx), flux in zip(shifts, fluxes, strict=True):
                r2 = (xx - x - dx) ** 2 + (yy - y - dy) ** 2
                image += flux / (2 * np.pi * sigma**2) * np.exp(-0.5 * r2 / sigma**2)
        writeForeignExposure(path, dateTai=date, target=target, image=image, seed=j,
                             psf=kernel)
        paths.append(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*bundled.*")
        result = assembleFromFiles(paths, tmp_path / "out")
    model = result.dcrModel

    def boxSum(k, x, y):
        return float(model[k].array[round(y) - 3:round(y) + 4, round(x) - 3:round(x) + 4].sum())

    blue = [boxSum(k, *stars[0][:2]) for k in range(3)]
    red = [boxSum(k, *stars[1][:2]) for k in range(3)]
    assert blue[0] > 0.75 * sum(blue) and abs(blue[2]) < 0.1 * sum(blue), blue
    assert red[2] > 0.75 * sum(red) and abs(red[0]) < 0.1 * sum(red), red
    visit = _read(paths[0])
    template = model.buildMatchedTemplate(visit).array
    residual = visit.image.array - template
    assert np.std(residual) < 1.2 * noise
    assert np.abs(residual).max() < 10 * noise


def test_wcsOnTheMaskHduOnly(tmp_path):
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path, form="cd-flipped", rotation=-115.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = WCS(fits.getheader(path, "MASK"))
    with fits.open(path, mode="update") as hdus:
        for name in ("IMAGE", "VARIANCE"):
            for key in [key for key in hdus[name].header
                        if key[:5] in ("CTYPE", "CRPIX", "CRVAL", "CUNIT", "RADES", "EQUIN")
                        or key.startswith("CD")]:
                if not key.endswith("A"):
                    del hdus[name].header[key]
    exposure = _read(path)
    x, y = ORIGIN[0] + 40.0, ORIGIN[1] + 11.0
    ours = exposure.wcs.pixel_to_world(x, y)
    theirs = reference.pixel_to_world(40.0, 11.0)
    assert ours.separation(theirs).to_value(u.arcsec) < 1e-6


@pytest.mark.parametrize("suffix", [".fits.gz", ".fits.fz", ".fz"])
def test_compressedModelFiles(tmp_path, suffix):
    directory = tmp_path / "model"
    directory.mkdir()
    arrays = [np.random.default_rng(k).normal(0.0, 1.0, SHAPE).astype(np.float32)
              for k in range(3)]
    for k, array in enumerate(arrays):
        plain = tmp_path / f"plain_{k}.fits"
        _writeModelFile(plain, k, 3, array)
        target = directory / f"dcrCoadd_{k}{suffix}"
        if suffix == ".fits.gz":
            with fits.open(plain) as hdus:
                hdus.writeto(target)
        else:
            # fpack-style: each plane tile-compressed (lossless for these float32 values).
            with fits.open(plain) as hdus:
                out = [fits.PrimaryHDU(header=hdus[0].header)]
                for hdu in hdus[1:]:
                    if isinstance(hdu, fits.ImageHDU):
                        out.append(fits.CompImageHDU(hdu.data, header=hdu.header,
                                                     compression_type="GZIP_2",
                                                     quantize_level=0.0))
                    else:
                        out.append(hdu)
                fits.HDUList(out).writeto(target)
    model = readDcrModel(directory)
    for k in range(3):
        np.testing.assert_array_equal(model[k].array, arrays[k])
    assert model.bbox.begin == ORIGIN
    assert model.mask.planes == MASK_PLANES


@pytest.mark.parametrize("value", [None, 0.0, -1.0])
def test_missingAirmassIsTheSecantOfTheAltitude(tmp_path, value):
    # The assembly weights visits by airmass (doAirmassWeight), so it must be known; 0 and
    # -1 are placeholders some writers use for "unknown".
    path = tmp_path / "calexp.fits"
    written = writeForeignExposure(path, azimuth=110.0, altitude=40.0)
    _editHeader(path, BORE_AIRMASS=value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = readExposure(path).visitInfo
    messages = [str(warning.message) for warning in caught
                if issubclass(warning.category, DcrWarning)]
    assert any("BORE-AIRMASS is missing or unknown" in message for message in messages)
    if value is not None:
        assert any(f"BORE-AIRMASS = {value:g} is a placeholder" in message
                   for message in messages)
    assert info.boresightAirmass == pytest.approx(written["visit"]["BORE-AIRMASS"], rel=1e-12)


@pytest.mark.parametrize(
    "edit",
    [lambda visit: {"BORE_ALT": 90.0 - visit["BORE-ALT"]},  # a zenith distance
     lambda visit: {"OBS_LONG": -LONGITUDE}],  # a West-positive longitude
    ids=["zenithDistance", "westLongitude"],
)
def test_boresightAltitudeInAnotherConventionIsFlagged(tmp_path, edit):
    path = tmp_path / "calexp.fits"
    written = writeForeignExposure(path, azimuth=110.0, altitude=40.0)
    # A self-consistent file reads without any warning of its own.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DcrWarning)
        readExposure(path)
    _editHeader(path, **edit(written["visit"]))
    with pytest.warns(DcrWarning, match="BORE-ALT = .* check the keys' conventions"):
        readExposure(path)


def test_missingEarthRotationAngleIsComputedFromTheDate(tmp_path):
    path = tmp_path / "calexp.fits"
    written = writeForeignExposure(path)
    _editHeader(path, AVG_ERA=None)
    with pytest.warns(DcrWarning, match="AVG-ERA is missing or unknown"):
        info = readExposure(path).visitInfo
    assert info.era.deg == pytest.approx(written["visit"]["AVG-ERA"], abs=1e-9)
    assert info.boresightParAngle is not None


def test_rotatorTypeOfAnotherConvention(tmp_path):
    # DCR does not use the rotator type: an unknown label must not stop the read.
    path = tmp_path / "calexp.fits"
    writeForeignExposure(path)
    _editHeader(path, ROTTYPE="PARALLACTIC")
    with pytest.warns(DcrWarning, match="ROTTYPE = 'PARALLACTIC' is not one of"):
        info = readExposure(path).visitInfo
    assert info.rotType == "UNKNOWN"
    _editHeader(path, ROTTYPE="sky")
    assert _read(path).visitInfo.rotType == "SKY"


def test_modelFilesWithoutSubfilterKeys(tmp_path):
    # Only the file names say which subfilter each file holds.
    directory = tmp_path / "model"
    _writeModelDirectory(directory, 477.0, 150.0)
    for k in range(3):
        with fits.open(directory / f"dcrCoadd_{k}.fits", mode="update") as hdus:
            del hdus[0].header["DCR-SUBF"]
            del hdus[0].header["DCR-NSUB"]
    with pytest.warns(DcrWarning, match="DCR-NSUB is missing.*3 subfilters"):
        model = readDcrModel(directory)
    assert model.dcrNumSubfilters == 3
    assert model.filter.effectiveWavelength == pytest.approx(477.0, abs=1e-9)
    for k in range(3):
        assert model[k].array[0, 0] == k
    # A gap in the numbering: the files beyond it are named.
    (directory / "dcrCoadd_1.fits").unlink()
    with pytest.warns(DcrWarning, match="DCR-NSUB is missing"), pytest.raises(
        DcrFitsError, match="dcrCoadd_2.fits beyond DCR-NSUB = 1"
    ):
        readDcrModel(directory)
