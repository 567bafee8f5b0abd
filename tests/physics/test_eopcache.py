"""The Earth-orientation table kept between processes: the same values, not read again."""

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

#: Zenith directions and UT1 of a visit from astropy's AltAz transform inside offlineIers,
#: printed exactly; with READ_FORBIDDEN set, astropy may not parse its bundled files.
CODE = """
import os, warnings
from astropy.utils import iers
if os.environ.get("READ_FORBIDDEN"):
    def forbidden(*args, **kwargs):
        raise AssertionError("the bundled Earth-orientation files were read")
    iers.IERS_Auto.read = classmethod(forbidden)
import astropy.units as u
from astropy.coordinates import AltAz, SkyCoord
from astropy.time import Time
from astropy.coordinates import EarthLocation
from dcrmodel.physics import offlineIers
from dcrmodel.physics.site import RUBIN_ELEVATION, RUBIN_LATITUDE, RUBIN_LONGITUDE
warnings.simplefilter("ignore")
site = EarthLocation.from_geodetic(RUBIN_LONGITUDE, RUBIN_LATITUDE, RUBIN_ELEVATION)
with offlineIers():
    when = Time("2026-09-16T03:12:45", scale="utc")
    altaz = SkyCoord(10.0 * u.deg, -35.0 * u.deg).transform_to(
        AltAz(obstime=when, location=site))
    print(repr(float(altaz.alt.deg)), repr(float(altaz.az.deg)), repr(float(when.ut1.jd2)))
"""


def _run(cacheDir, **env):
    result = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(SRC), DCRMODEL_CACHE_DIR=str(cacheDir), **env),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_cached_table_gives_the_same_values_without_reading_the_files(tmp_path):
    cache = tmp_path / "cache"
    first = _run(cache)
    files = list(cache.glob("earth-orientation-*.npz"))
    assert len(files) == 1
    assert _run(cache, READ_FORBIDDEN="1") == first
    # a damaged cache is read again from the bundled files and replaced
    files[0].write_bytes(b"not an npz file")
    assert _run(cache) == first
    assert files[0].read_bytes()[:1] != b"n"
    assert _run(cache, READ_FORBIDDEN="1") == first


def test_an_empty_cache_folder_setting_switches_the_cache_off(tmp_path):
    home = tmp_path / "home"
    assert _run("", HOME=str(home), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert not (tmp_path / "xdg").exists() and not home.exists()


def test_the_cached_table_is_astropys_column_for_column(tmp_path, monkeypatch):
    import numpy as np
    from astropy.time import Time
    from astropy.utils import iers

    from dcrmodel.physics import CACHE_ENV
    from dcrmodel.physics.eopcache import loadCachedTable, saveCachedTable

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    saved = iers.IERS_Auto.iers_table
    try:
        with iers.conf.set_temp("auto_download", False):
            iers.IERS_Auto.iers_table = None
            fresh = iers.IERS_Auto.open()
            saveCachedTable()
            (path,) = tmp_path.glob("earth-orientation-*.npz")
            # plain arrays only: readable without unpickling anything
            with np.load(path, allow_pickle=False) as stored:
                assert all(stored[name].dtype != object for name in stored.files)
            iers.IERS_Auto.iers_table = None
            assert loadCachedTable() is False
            cached = iers.IERS_Auto.iers_table
            assert type(cached) is iers.IERS_Auto and cached is not fresh
            assert cached.colnames == fresh.colnames
            for name in fresh.colnames:
                assert type(cached[name]) is type(fresh[name]), name
                assert cached[name].unit == fresh[name].unit, name
                np.testing.assert_array_equal(np.asarray(cached[name]), np.asarray(fresh[name]))
                if hasattr(fresh[name], "mask"):
                    np.testing.assert_array_equal(cached[name].mask, fresh[name].mask)
            assert dict(cached.meta) == dict(fresh.meta)
            when = Time(["2020-01-01T00:00:00", "2026-09-16T03:12:45"], scale="utc")
            assert np.array_equal(cached.ut1_utc(when).value, fresh.ut1_utc(when).value)
            assert np.array_equal(np.array(cached.pm_xy(when)), np.array(fresh.pm_xy(when)))
    finally:
        iers.IERS_Auto.iers_table = saved
