"""Tests of dcrmodel.physics.site: Observatory, Weather, defaultWeather and offlineIers."""

from __future__ import annotations

import math
import pickle
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle, EarthLocation, Latitude, Longitude
from astropy.time import Time
from astropy.utils import iers

from dcrmodel.errors import DcrOfflineWarning, DcrTypeError, DcrValueError
from dcrmodel.physics import site
from dcrmodel.physics.site import Observatory, Weather, defaultWeather, offlineIers

# ---------------------------------------------------------------- Observatory


def test_observatory_fields_and_units():
    obs = Observatory(Angle(-70.749417, u.deg), -30.244639 * u.deg, 2663.0)
    assert isinstance(obs.longitude, Angle)
    assert isinstance(obs.latitude, Angle)
    assert obs.longitude.deg == pytest.approx(-70.749417, abs=1e-12)
    assert obs.latitude.deg == pytest.approx(-30.244639, abs=1e-12)
    assert obs.elevation == 2663.0
    assert isinstance(obs.elevation, float)


def test_observatory_rubin_matches_primer():
    obs = Observatory.rubin()
    assert obs.longitude.deg == -70.749417
    assert obs.latitude.deg == -30.244639
    assert obs.elevation == 2663.0


def test_observatory_accepts_radians_km_and_alias():
    obs = Observatory(
        math.radians(-70.749417) * u.rad, Latitude(-30.244639 * u.deg), elevation_m=2663.0
    )
    assert obs.longitude.deg == pytest.approx(-70.749417, abs=1e-12)
    assert obs.elevation == 2663.0
    inKm = Observatory(-70.749417 * u.deg, -30.244639 * u.deg, 2.663 * u.km)
    assert inKm.elevation == pytest.approx(2663.0, abs=1e-9)


def test_observatory_longitude_wraps_to_plus_minus_180():
    east = Observatory(Longitude(289.250583 * u.deg), -30.244639 * u.deg, 2663.0)
    assert east.longitude.deg == pytest.approx(-70.749417, abs=1e-9)
    assert -180.0 <= Observatory(180 * u.deg, 0 * u.deg, 0.0).longitude.deg < 180.0


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((-70.7, -30.2 * u.deg, 2663.0), {}, DcrTypeError, "Angle or Quantity in degrees"),
        ((-70.7 * u.deg, -30.2, 2663.0), {}, DcrTypeError, "latitude must have angular units"),
        ((-70.7 * u.m, -30.2 * u.deg, 2663.0), {}, DcrTypeError, "not of angle"),
        ((-70.7 * u.deg, -95.0 * u.deg, 2663.0), {}, DcrValueError, r"\[-90, 90\]"),
        ((np.nan * u.deg, -30.2 * u.deg, 2663.0), {}, DcrValueError, "finite"),
        ((-70.7 * u.deg, -30.2 * u.deg, np.inf), {}, DcrValueError, "finite"),
        ((-70.7 * u.deg, -30.2 * u.deg, 2663.0 * u.s), {}, DcrTypeError, "metres"),
        ((-70.7 * u.deg, -30.2 * u.deg), {}, DcrTypeError, "elevation above sea level"),
        ((-70.7 * u.deg, -30.2 * u.deg, 1.0), {"elevation_m": 1.0}, DcrTypeError, "once"),
        (([1, 2] * u.deg, -30.2 * u.deg, 1.0), {}, DcrValueError, "single angles"),
    ],
)
def test_observatory_rejects_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        Observatory(*args, **kwargs)


def test_observatory_earth_location_round_trip():
    location = EarthLocation.from_geodetic(lon=-70.749417, lat=-30.244639, height=2663.0)
    obs = Observatory.fromEarthLocation(location)
    assert obs.longitude.deg == pytest.approx(-70.749417, abs=1e-9)
    assert obs.latitude.deg == pytest.approx(-30.244639, abs=1e-9)
    assert obs.elevation == pytest.approx(2663.0, abs=1e-6)
    back = obs.toEarthLocation()
    # Geocentric positions agree to a micrometre.
    difference = (back.get_itrs().cartesian - location.get_itrs().cartesian).norm()
    assert difference.to_value(u.m) < 1e-6
    with pytest.raises(DcrTypeError, match="single astropy EarthLocation"):
        Observatory.fromEarthLocation((1.0, 2.0, 3.0))


def test_observatory_equality_hash_pickle_immutable():
    obs = Observatory.rubin()
    same = Observatory(-70.749417 * u.deg, -30.244639 * u.deg, 2663.0)
    other = Observatory(-70.749417 * u.deg, -30.244639 * u.deg, 2662.0)
    assert obs == same
    assert hash(obs) == hash(same)
    assert obs != other
    assert obs != "Cerro Pachon"
    restored = pickle.loads(pickle.dumps(obs))
    assert restored == obs and hash(restored) == hash(obs)
    with pytest.raises(AttributeError, match="immutable"):
        obs.elevation = 0.0
    assert "2663.0" in repr(obs)


# ---------------------------------------------------------------- Weather


def test_weather_fields():
    weather = Weather(20.0, 73892.0, 10.0)
    assert (weather.airTemperature, weather.airPressure, weather.humidity) == (
        20.0,
        73892.0,
        10.0,
    )
    assert Weather(0, 1, 0).humidity == 0.0  # integers and the edges of the ranges are fine
    assert Weather(-5.0, 60000.0, 100.0).humidity == 100.0


def test_weather_accepts_quantities():
    weather = Weather(293.15 * u.K, 73.892 * u.kPa, 10.0 * u.percent)
    assert weather.airTemperature == pytest.approx(20.0, abs=1e-9)
    assert weather.airPressure == pytest.approx(73892.0, rel=1e-12)
    assert weather.humidity == pytest.approx(10.0, rel=1e-12)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((20.0, 73892.0, -1.0), DcrValueError, r"within \[0, 100\] percent"),
        ((20.0, 73892.0, 100.5), DcrValueError, r"within \[0, 100\] percent"),
        ((20.0, 0.0, 10.0), DcrValueError, "pressure must be finite and positive"),
        ((20.0, -5.0, 10.0), DcrValueError, "pressure must be finite and positive"),
        ((-300.0, 73892.0, 10.0), DcrValueError, "above absolute zero"),
        ((np.nan, 73892.0, 10.0), DcrValueError, "weather=None"),
        ((20.0, np.nan, 10.0), DcrValueError, "weather=None"),
        ((20.0, 73892.0, np.nan), DcrValueError, "weather=None"),
        (("20", 73892.0, 10.0), DcrTypeError, "real number in degrees Celsius"),
        ((20.0, True, 10.0), DcrTypeError, "real number in Pascals"),
        ((20.0, 73892.0 * u.m, 10.0), DcrTypeError, "give it in Pascals"),
    ],
)
def test_weather_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        Weather(*args)


def test_weather_equality_hash_pickle_immutable():
    weather = Weather(20.0, 73892.0, 10.0)
    assert weather == Weather(20, 73892, 10)
    assert hash(weather) == hash(Weather(20.0, 73892.0, 10.0))
    assert weather != Weather(20.0, 73892.0, 11.0)
    assert pickle.loads(pickle.dumps(weather)) == weather
    with pytest.raises(AttributeError, match="immutable"):
        weather.humidity = 50.0


# ---------------------------------------------------------------- defaultWeather


def test_default_weather_sea_level():
    weather = defaultWeather(0.0)
    assert weather.airTemperature == 19.0
    assert weather.airPressure == 101325.0
    assert weather.humidity == 40.0


def test_default_weather_rubin():
    weather = defaultWeather(2663.0)
    # Lapse rate -6.5 degC/km from 19 degC.
    assert weather.airTemperature == pytest.approx(19.0 - 6.5 * 2.663, abs=1e-12)
    # Barometric formula at the site's temperature, with astropy's constants.
    from astropy import constants

    molarMass = 0.0289644 * u.kg / u.mol
    temperature = (weather.airTemperature + 273.15) * u.K
    expected = 101325.0 * np.exp(
        -(constants.g0 * molarMass * 2663.0 * u.m / (constants.R * temperature)).to_value(
            u.dimensionless_unscaled
        )
    )
    assert weather.airPressure == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("altitude", [0.0, 500.0, 1500.0, 2663.0, 4200.0, 5000.0])
def test_default_weather_close_to_standard_atmosphere(altitude):
    # U.S. Standard Atmosphere 1976 troposphere: P = P0 (1 - 2.25577e-5 h)^5.25588. Our
    # default (19 degC at sea level, isothermal barometric formula at the site's
    # temperature) is a different model: 0.05 % higher at 500 m, 1.0 % lower at 2663 m and
    # 2.8 % lower at 5 km. It must stay within 3 % of it below 5 km.
    standard = 101325.0 * (1.0 - 2.25577e-5 * altitude) ** 5.25588
    assert defaultWeather(altitude).airPressure == pytest.approx(standard, rel=0.03)


def test_default_weather_accepts_quantity_and_decreases_with_altitude():
    assert defaultWeather(2.663 * u.km) == defaultWeather(2663.0)
    pressures = [defaultWeather(h).airPressure for h in np.linspace(0.0, 6000.0, 7)]
    assert np.all(np.diff(pressures) < 0)


@pytest.mark.parametrize("altitude", [-1000.0, 12000.0, np.nan])
def test_default_weather_rejects_out_of_range(altitude):
    with pytest.raises(DcrValueError, match="standard-atmosphere default only holds"):
        defaultWeather(altitude)


def test_default_weather_rejects_wrong_units():
    with pytest.raises(DcrTypeError, match="metres"):
        defaultWeather(3.0 * u.deg)


# ---------------------------------------------------------------- offlineIers


def test_offline_iers_sets_and_restores_configuration():
    before = (iers.conf.auto_download, iers.conf.auto_max_age, iers.conf.iers_degraded_accuracy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DcrOfflineWarning)
        with offlineIers():
            assert iers.conf.auto_download is False
            assert iers.conf.auto_max_age is None
            assert iers.conf.iers_degraded_accuracy == "warn"
    after = (iers.conf.auto_download, iers.conf.auto_max_age, iers.conf.iers_degraded_accuracy)
    assert after == before


def test_offline_iers_warns_once():
    site._resetOfflineWarning()
    with pytest.warns(DcrOfflineWarning, match="bundled tables are used"):
        with offlineIers():
            pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with offlineIers():
            pass
    assert not [w for w in caught if issubclass(w.category, DcrOfflineWarning)]


def test_offline_iers_never_downloads(monkeypatch):
    """Earth rotation and AltAz work with every download path made to fail."""
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.utils import data

    def refuse(*args, **kwargs):
        raise AssertionError("dcrmodel tried to download a file")

    monkeypatch.setattr(data, "download_file", refuse)
    monkeypatch.setattr(iers.iers, "download_file", refuse)
    iers.IERS_Auto.close()  # forget any table opened earlier, so it is opened again
    location = Observatory.rubin().toEarthLocation()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with offlineIers():
            # Inside the bundled tables, and years beyond them.
            for isot in ("2026-03-15T04:00:00", "2034-06-01T02:00:00"):
                time = Time(isot, scale="utc")
                era = time.earth_rotation_angle(0.0 * u.deg)
                assert np.isfinite(era.deg)
                frame = AltAz(obstime=time, location=location, pressure=0.0 * u.hPa)
                altAz = SkyCoord(150.0 * u.deg, -30.0 * u.deg).transform_to(frame)
                assert np.isfinite(altAz.alt.deg)
    iers.IERS_Auto.close()


def test_offline_iers_nested_and_interleaved_keep_downloads_off():
    import threading

    before = iers.conf.auto_download
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DcrOfflineWarning)
        with offlineIers():
            with offlineIers():
                assert iers.conf.auto_download is False
            assert iers.conf.auto_download is False  # the inner exit does not restore
        assert iers.conf.auto_download == before

        # Two threads' contexts that do not close in nesting order (A enters, B enters, A
        # leaves): B must still be offline, and the settings come back only after B leaves.
        first, second = offlineIers(), offlineIers()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert iers.conf.auto_download is False
        assert iers.conf.iers_degraded_accuracy == "warn"
        second.__exit__(None, None, None)
        assert iers.conf.auto_download == before

        inside = []

        def worker():
            with offlineIers():
                inside.append(iers.conf.auto_download)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    assert inside == [False] * 4
    assert iers.conf.auto_download == before
