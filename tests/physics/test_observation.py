"""Tests of dcrmodel.physics.observation.VisitInfo.

The parallactic angle is checked against astropy (the position angle of the zenith seen from
the target, with the zenith taken from an AltAz frame without refraction) and against the
analytic properties of the formula; ``fromAstropy`` against astropy's AltAz and ERFA's
Earth rotation angle.
"""

from __future__ import annotations

import math
import pickle
import warnings

import astropy.units as u
import erfa
import numpy as np
import pytest
from astropy.coordinates import CIRS, AltAz, Angle, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers

from dcrmodel import physics
from dcrmodel.errors import (
    DcrMetadataError,
    DcrOfflineWarning,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
)
from dcrmodel.physics import observation, site
from dcrmodel.physics.observation import ROT_TYPES, VisitInfo
from dcrmodel.physics.site import Observatory, Weather, offlineIers

RUBIN = Observatory.rubin()
LOCATION = RUBIN.toEarthLocation()
TIME = Time("2026-03-15T04:00:00", scale="utc")


@pytest.fixture(autouse=True)
def _quietAstropy():
    """Keep astropy's Earth-orientation and leap-second notices out of the test output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DcrOfflineWarning)
        warnings.filterwarnings("ignore", module="astropy")
        warnings.filterwarnings("ignore", category=erfa.ErfaWarning)
        yield


def _targetAt(azimuth: float, altitude: float, time: Time = TIME) -> SkyCoord:
    """ICRS position of the point at (azimuth, true altitude) in degrees at time."""
    frame = AltAz(obstime=time, location=LOCATION, pressure=0.0 * u.hPa)
    with offlineIers():
        icrs = SkyCoord(az=azimuth * u.deg, alt=altitude * u.deg, frame=frame).icrs
    return SkyCoord(icrs.ra, icrs.dec, frame="icrs")


def _astropyZenithPositionAngle(target: SkyCoord, time: Time) -> tuple[float, float]:
    """Position angle (deg) of the zenith seen from target, in CIRS and in ICRS, via astropy."""
    frame = AltAz(obstime=time, location=LOCATION, pressure=0.0 * u.hPa)
    with offlineIers():
        zenith = SkyCoord(az=0.0 * u.deg, alt=90.0 * u.deg, frame=frame)
        cirs = CIRS(obstime=time)
        inCirs = target.transform_to(cirs).position_angle(zenith.transform_to(cirs))
        inIcrs = target.position_angle(zenith.icrs)
    return (
        float(Angle(inCirs).wrap_at(180 * u.deg).deg),
        float(Angle(inIcrs).wrap_at(180 * u.deg).deg),
    )


def _angleDifference(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


# ---------------------------------------------------------------- parallactic angle


@pytest.mark.parametrize(
    ("azimuth", "altitude"),
    [(60.0, 40.0), (120.0, 55.0), (150.0, 75.0), (200.0, 65.0), (250.0, 35.0), (300.0, 50.0),
     (20.0, 30.0), (340.0, 80.0)],
)
def test_parallactic_angle_matches_astropy(azimuth, altitude):
    target = _targetAt(azimuth, altitude)
    pa, paIcrs = _astropyZenithPositionAngle(target, TIME)
    with offlineIers():
        era = TIME.earth_rotation_angle(0.0 * u.deg)
        cirs = target.transform_to(CIRS(obstime=TIME))

    # With the right ascension and declination of date (CIRS, whose origin is the one the
    # Earth rotation angle is measured from), the formula is the exact position angle of the
    # zenith, up to diurnal aberration and polar motion (about 1 arcsec here): agree within
    # 1e-3 deg.
    ofDate = VisitInfo(
        boresightRaDec=SkyCoord(cirs.ra, cirs.dec, frame="icrs"),
        observatory=RUBIN,
        era=era,
    )
    assert _angleDifference(ofDate.boresightParAngle.deg, pa) < 1e-3

    # With ICRS coordinates (what VisitInfo stores), the result is the ICRS position angle of
    # the zenith to within the precession of the equator since J2000 (0.4 deg in 2026; up to
    # 0.38 deg for these pointings, most near the zenith where q changes fastest).
    visit = VisitInfo.fromAstropy(target, TIME, LOCATION)
    assert _angleDifference(visit.boresightParAngle.deg, paIcrs) < 0.5
    assert _angleDifference(visit.boresightParAngle.deg, pa) < 0.5

    # Sign convention: positive west of the meridian (azimuth 180-360 deg).
    assert (visit.boresightParAngle.deg > 0) == (azimuth > 180.0)
    assert (visit.hourAngle.deg > 0) == (azimuth > 180.0)


def _visitAt(hourAngle: float, dec: float, latitude: float = RUBIN.latitude.deg) -> VisitInfo:
    """A VisitInfo with chosen hour angle (deg) and declination via era and RA."""
    observatory = Observatory(10.0 * u.deg, latitude * u.deg, 1000.0)
    ra = 123.0
    era = ra + hourAngle - 10.0
    return VisitInfo(
        boresightRaDec=SkyCoord(ra * u.deg, dec * u.deg, frame="icrs"),
        observatory=observatory,
        era=Angle(era, u.deg),
    )


@pytest.mark.parametrize("dec", [-80.0, -50.0, -30.0, -10.0, 20.0])
@pytest.mark.parametrize("hourAngle", [5.0, 30.0, 60.0, 100.0, 150.0])
def test_parallactic_angle_is_odd_in_hour_angle(hourAngle, dec):
    west = _visitAt(hourAngle, dec).boresightParAngle.deg
    east = _visitAt(-hourAngle, dec).boresightParAngle.deg
    assert west == pytest.approx(-east, abs=1e-9)
    assert west > 0


def test_parallactic_angle_on_the_meridian():
    # Southern site: targets south of the zenith (dec < latitude) have the zenith due North.
    for dec in (-85.0, -60.0, -40.0):
        assert _visitAt(0.0, dec).boresightParAngle.deg == pytest.approx(0.0, abs=1e-9)
    # North of the zenith: the zenith is due South.
    for dec in (-20.0, 0.0, 40.0):
        assert abs(_visitAt(0.0, dec).boresightParAngle.deg) == pytest.approx(180.0, abs=1e-9)
    # Northern site, target south of the zenith: 0 as well.
    assert _visitAt(0.0, 10.0, latitude=40.0).boresightParAngle.deg == pytest.approx(
        0.0, abs=1e-9
    )


def test_parallactic_angle_analytic_cases():
    # At the south celestial pole q equals the hour angle (sin dec = -1, cos dec = 0).
    for hourAngle in (-120.0, -45.0, 30.0, 90.0, 170.0):
        q = _visitAt(hourAngle, -90.0).boresightParAngle.deg
        assert q == pytest.approx(hourAngle, abs=1e-9)
    # Equator site, target on the equator: the zenith is due East or West (q = -+90 deg).
    assert _visitAt(40.0, 0.0, latitude=0.0).boresightParAngle.deg == pytest.approx(90.0)
    assert _visitAt(-40.0, 0.0, latitude=0.0).boresightParAngle.deg == pytest.approx(-90.0)
    # Sine rule in the triangle pole-zenith-target: sin q / cos(phi) = sin H / sin z.
    latitude, dec, hourAngle = RUBIN.latitude.deg, -10.0, 35.0
    phi, delta, h = (math.radians(v) for v in (latitude, dec, hourAngle))
    cosZ = math.sin(phi) * math.sin(delta) + math.cos(phi) * math.cos(delta) * math.cos(h)
    sinZ = math.sqrt(1.0 - cosZ**2)
    q = math.radians(_visitAt(hourAngle, dec).boresightParAngle.deg)
    assert math.sin(q) == pytest.approx(math.cos(phi) * math.sin(h) / sinZ, rel=1e-12)


def test_hour_angle_definition_and_wrap():
    visit = VisitInfo(
        boresightRaDec=SkyCoord(350.0 * u.deg, -20.0 * u.deg),
        observatory=RUBIN,
        era=Angle(10.0, u.deg),
    )
    expected = 10.0 + RUBIN.longitude.deg - 350.0 + 360.0  # wrapped into [-180, 180)
    assert visit.hourAngle.deg == pytest.approx(expected, abs=1e-12)
    assert -180.0 <= visit.hourAngle.deg < 180.0


def test_derived_angles_are_none_when_unknown():
    assert VisitInfo().boresightParAngle is None
    assert VisitInfo().hourAngle is None
    partial = VisitInfo(boresightRaDec=SkyCoord(1 * u.deg, 2 * u.deg), observatory=RUBIN)
    assert partial.hourAngle is None and partial.boresightParAngle is None


# ---------------------------------------------------------------- fromAstropy


def test_from_astropy_geometry_matches_astropy_without_refraction():
    target = _targetAt(250.0, 42.0)
    visit = VisitInfo.fromAstropy(target, TIME, LOCATION, exposureTime=15.0, id=7)
    frame = AltAz(obstime=TIME, location=LOCATION, pressure=0.0 * u.hPa)
    with offlineIers():
        altAz = target.transform_to(frame)
        refracted = target.transform_to(
            AltAz(obstime=TIME, location=LOCATION, pressure=730.0 * u.hPa,
                  temperature=10.0 * u.deg_C, relative_humidity=0.2, obswl=0.5 * u.um)
        )
    az, alt = visit.boresightAzAlt
    assert isinstance(az, Angle) and isinstance(alt, Angle)
    assert alt.deg == pytest.approx(42.0, abs=1e-8)
    assert az.deg == pytest.approx(250.0, abs=1e-8)
    assert alt.deg == pytest.approx(altAz.alt.deg, abs=1e-10)
    # The stored altitude is the true one: about a minute of arc below the refracted one.
    assert (refracted.alt - alt).to_value(u.arcsec) > 40.0
    assert visit.boresightAirmass == pytest.approx(float(altAz.secz), rel=1e-12)
    assert visit.boresightAirmass == pytest.approx(1.0 / math.sin(math.radians(42.0)), rel=1e-9)
    assert visit.exposureTime == 15.0 and visit.id == 7
    assert visit.rotType == "SKY"
    assert visit.boresightRotAngle.deg == 0.0
    assert visit.date is TIME or visit.date == TIME
    assert visit.observatory == Observatory.fromEarthLocation(LOCATION)
    assert visit.weather is None
    assert visit.boresightRaDec.frame.name == "icrs"
    assert visit.boresightRaDec.separation(target).arcsec < 1e-6


def test_from_astropy_era_matches_erfa():
    visit = VisitInfo.fromAstropy(_targetAt(100.0, 60.0), TIME, LOCATION)
    with offlineIers():
        ut1 = TIME.ut1
    expected = math.degrees(erfa.era00(ut1.jd1, ut1.jd2))
    assert _angleDifference(visit.era.deg, expected) < 1e-6
    assert 0.0 <= visit.era.deg < 360.0


def test_from_astropy_accepts_observatory_other_frames_and_options():
    target = _targetAt(150.0, 70.0)
    weather = Weather(12.0, 74000.0, 20.0)
    visit = VisitInfo.fromAstropy(
        target.galactic, TIME, RUBIN, weather=weather, rotAngle=30 * u.deg, rotType="horizon",
        exposureTime=0.0,
    )
    assert visit.boresightRaDec.separation(target).arcsec < 1e-6
    assert visit.weather == weather
    assert visit.boresightRotAngle.deg == pytest.approx(30.0)
    assert visit.rotType == "HORIZON"
    assert visit.exposureTime == 0.0


def test_from_astropy_warns_offline_once_and_never_downloads(monkeypatch):
    from astropy.utils import data

    def refuse(*args, **kwargs):
        raise AssertionError("dcrmodel tried to download a file")

    monkeypatch.setattr(data, "download_file", refuse)
    monkeypatch.setattr(iers.iers, "download_file", refuse)
    iers.IERS_Auto.close()
    target = _targetAt(200.0, 50.0)
    site._resetOfflineWarning()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = VisitInfo.fromAstropy(target, TIME, LOCATION)
        second = VisitInfo.fromAstropy(target, TIME, LOCATION)
        # Years beyond the bundled Earth-orientation tables work too (with a warning).
        later = VisitInfo.fromAstropy(target, Time("2034-03-15T04:00:00", scale="utc"), LOCATION)
    offline = [w for w in caught if issubclass(w.category, DcrOfflineWarning)]
    assert len(offline) == 1
    assert "bundled tables are used" in str(offline[0].message)
    assert first == second
    assert np.isfinite(later.era.deg)
    iers.IERS_Auto.close()


def test_from_astropy_rejects_bad_input():
    target = _targetAt(200.0, 50.0)
    with pytest.raises(DcrValueError, match="below the horizon"):
        # Due North at 20 deg (dec +40) culminates at 20 deg: 12 hours later it is down.
        VisitInfo.fromAstropy(_targetAt(0.0, 20.0), TIME + 12 * u.hour, LOCATION)
    with pytest.raises(DcrShapeError, match="single position"):
        VisitInfo.fromAstropy(SkyCoord([1, 2] * u.deg, [3, 4] * u.deg), TIME, LOCATION)
    with pytest.raises(DcrTypeError, match="SkyCoord"):
        VisitInfo.fromAstropy((150.0, -30.0), TIME, LOCATION)
    with pytest.raises(DcrTypeError, match="astropy Time"):
        VisitInfo.fromAstropy(target, "2026-03-15T04:00:00", LOCATION)
    with pytest.raises(DcrShapeError, match="single time"):
        VisitInfo.fromAstropy(target, Time([TIME, TIME]), LOCATION)
    with pytest.raises(DcrTypeError, match="EarthLocation or a dcrmodel Observatory"):
        VisitInfo.fromAstropy(target, TIME, (-70.7, -30.2, 2663.0))
    with pytest.raises(DcrTypeError, match="Angle or Quantity in degrees"):
        VisitInfo.fromAstropy(target, TIME, LOCATION, rotAngle=30.0)
    with pytest.raises(DcrValueError, match="unknown rotType"):
        VisitInfo.fromAstropy(target, TIME, LOCATION, rotType="SIDEWAYS")


# ---------------------------------------------------------------- AltAz frame


def test_alt_az_frame_has_no_refraction_and_round_trips():
    visit = VisitInfo.fromAstropy(_targetAt(300.0, 33.0), TIME, LOCATION)
    frame = visit.altAzFrame()
    assert isinstance(frame, AltAz)
    assert frame.pressure.to_value(u.hPa) == 0.0
    assert frame.obstime == TIME
    with offlineIers():
        altAz = visit.boresightRaDec.transform_to(frame)
    assert altAz.alt.deg == pytest.approx(visit.boresightAzAlt[1].deg, abs=1e-9)
    assert altAz.az.deg == pytest.approx(visit.boresightAzAlt[0].deg, abs=1e-9)
    with pytest.raises(DcrMetadataError, match="needs its date and observatory"):
        VisitInfo(observatory=RUBIN).altAzFrame()


# ---------------------------------------------------------------- container behaviour


def _fullVisit() -> VisitInfo:
    return VisitInfo.fromAstropy(
        _targetAt(230.0, 48.0), TIME, LOCATION, weather=Weather(8.0, 73500.0, 25.0),
        exposureTime=30.0, rotAngle=12.5 * u.deg, id=42,
    )


def test_pickle_round_trip_and_equality():
    visit = _fullVisit()
    restored = pickle.loads(pickle.dumps(visit))
    assert restored == visit
    assert hash(restored) == hash(visit)
    assert restored.boresightParAngle.deg == visit.boresightParAngle.deg
    assert restored.date == visit.date
    assert restored.weather == visit.weather
    assert visit != "visit"


@pytest.mark.parametrize(
    "change",
    [
        {"id": 43},
        {"exposureTime": 31.0},
        {"weather": Weather(8.0, 73500.0, 26.0)},
        {"era": Angle(1.0, u.deg)},
        {"date": TIME + 1 * u.s},
        {"boresightAirmass": 1.5},
        {"boresightRotAngle": Angle(0.0, u.deg)},
        {"rotType": "MOUNT"},
        {"boresightRaDec": SkyCoord(1.0 * u.deg, 2.0 * u.deg)},
        {"boresightAzAlt": (Angle(1.0, u.deg), Angle(2.0, u.deg))},
        {"observatory": Observatory(0 * u.deg, 0 * u.deg, 0.0)},
    ],
)
def test_any_field_change_breaks_equality(change):
    visit = _fullVisit()
    changed = visit.copyWith(**change)
    assert changed != visit
    assert changed.copyWith(**{k: getattr(visit, k) for k in change}) == visit


def test_copy_with_rejects_unknown_fields_and_object_is_immutable():
    visit = _fullVisit()
    with pytest.raises(DcrTypeError, match="unknown VisitInfo field"):
        visit.copyWith(airmass=2.0)
    with pytest.raises(AttributeError, match="immutable"):
        visit.id = 3
    assert "id=42" in repr(visit)


def test_defaults_are_unknown():
    visit = VisitInfo()
    assert visit.boresightRaDec is None
    assert visit.boresightAzAlt is None
    assert visit.boresightAirmass is None
    assert visit.boresightRotAngle is None
    assert visit.rotType == "UNKNOWN"
    assert visit.observatory is None and visit.weather is None
    assert visit.era is None and visit.date is None
    assert visit.exposureTime is None and visit.id is None
    assert visit == VisitInfo()
    assert set(ROT_TYPES) == {"UNKNOWN", "SKY", "HORIZON", "MOUNT"}


def test_constructor_normalises_angles():
    visit = VisitInfo(
        boresightAzAlt=(-90.0 * u.deg, math.radians(30.0) * u.rad),
        era=Angle(370.0, u.deg),
        boresightRaDec=SkyCoord(l=0 * u.deg, b=0 * u.deg, frame="galactic"),
    )
    assert visit.boresightAzAlt[0].deg == pytest.approx(270.0)
    assert visit.boresightAzAlt[1].deg == pytest.approx(30.0)
    assert visit.era.deg == pytest.approx(10.0)
    # The Galactic centre in ICRS (Reid & Brunthaler 2004 convention used by astropy).
    assert visit.boresightRaDec.ra.deg == pytest.approx(266.405, abs=1e-3)
    assert visit.boresightRaDec.dec.deg == pytest.approx(-28.936, abs=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"era": 10.0}, DcrTypeError, "Angle or Quantity in degrees"),
        ({"boresightRotAngle": 5}, DcrTypeError, "Angle or Quantity in degrees"),
        ({"boresightAzAlt": (10.0, 20.0)}, DcrTypeError, "Angle or Quantity in degrees"),
        ({"boresightAzAlt": (10.0 * u.deg,)}, DcrTypeError, "pair"),
        ({"boresightAzAlt": (10.0 * u.deg, 95.0 * u.deg)}, DcrValueError, r"\[-90, 90\]"),
        ({"boresightAirmass": 0.5}, DcrValueError, "at least 1"),
        ({"boresightAirmass": np.nan}, DcrValueError, "finite"),
        ({"boresightAirmass": "1.2"}, DcrTypeError, "real number"),
        ({"exposureTime": -1.0}, DcrValueError, "non-negative"),
        ({"id": "3"}, DcrTypeError, "integer"),
        ({"id": True}, DcrTypeError, "integer"),
        ({"rotType": "SIDEWAYS"}, DcrValueError, "unknown rotType"),
        ({"rotType": 1}, DcrTypeError, "rotType must be one of"),
        ({"date": "2026-03-15"}, DcrTypeError, "astropy Time"),
        ({"boresightRaDec": (1.0, 2.0)}, DcrTypeError, "SkyCoord"),
        ({"observatory": LOCATION}, DcrTypeError, "fromEarthLocation"),
        ({"weather": (1.0, 2.0, 3.0)}, DcrTypeError, "dcrmodel Weather"),
    ],
)
def test_constructor_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        VisitInfo(**kwargs)


def test_site_names_have_one_home():
    # Observatory, Weather, defaultWeather and offlineIers live in site only; the physics
    # facade hands each on once, from there.
    assert set(observation.__all__) == {"VisitInfo", "ROT_TYPES"}
    for name in ("Observatory", "Weather", "defaultWeather", "offlineIers"):
        assert name in site.__all__
        assert physics.__all__.count(name) == 1
        assert getattr(physics, name) is getattr(site, name)
    assert VisitInfo(observatory=RUBIN).observatory is RUBIN
    assert isinstance(LOCATION, EarthLocation)
