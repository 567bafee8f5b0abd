"""Tests of dcrmodel.fits.headers: visit metadata, band and calibration <-> HDU 0 keys."""

from __future__ import annotations

import warnings

import astropy.units as u
import pytest
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time

from dcrmodel.errors import (
    DcrFitsError,
    DcrWarning,
)
from dcrmodel.fits.exposure import (
    readExposure,
    writeExposure,
)
from dcrmodel.fits.headers import (
    filterFromHeader,
    photoCalibFromHeader,
    visitInfoFromHeader,
    visitInfoToHeader,
)
from dcrmodel.image import (
    Filter,
)
from dcrmodel.physics.site import Weather, defaultWeather
from helpers import makeVisitInfo
from helpers.fits import (
    _DATE,
    _assertVisitInfoEqual,
    _makeExposure,
    _visitInfo,
)

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
