"""Tests of dcrmodel.physics.subfilters: the DCR across one subfilter and how many a band needs."""

import math

import astropy.units as u
import erfa
import numpy as np
import pytest

from dcrmodel.errors import DcrValueError
from dcrmodel.image import RUBIN_BANDS
from dcrmodel.physics import Observatory, Weather, numSubfiltersFor, subfilterDcrSpread

SITE = Observatory.rubin()
WEATHER = Weather(10.0, 74000.0, 20.0)


def _elevation(airmass):
    return (90.0 - math.degrees(math.acos(1.0 / airmass))) * u.deg


def test_spread_against_erfa_refraction_constants():
    # Independent reference: ERFA's refraction constants A, B (R = A tan z + B tan^3 z) at
    # the bluest subfilter's two edges; the difference is the subfilter's spread (in g:
    # ERFA's dispersion formula departs from Stone's by a few percent below 350 nm).
    effective, width = RUBIN_BANDS["g"]
    lo, hi = effective - width / 2, effective - width / 2 + width / 3
    z = math.radians(60.0)
    refractions = []
    for wavelength in (lo, hi):
        a, b = erfa.refco(WEATHER.airPressure / 100.0, WEATHER.airTemperature,
                          WEATHER.humidity / 100.0, wavelength / 1000.0)
        refractions.append(math.degrees(a * math.tan(z) + b * math.tan(z) ** 3) * 3600.0)
    expected = refractions[0] - refractions[1]
    spread = subfilterDcrSpread(effective, width, 3, 30 * u.deg, SITE, WEATHER)
    assert spread == pytest.approx(expected, rel=0.02)


def test_spread_is_the_bluest_subfilters_and_falls_with_more_subfilters():
    effective, width = RUBIN_BANDS["g"]
    spreads = [subfilterDcrSpread(effective, width, n, 35 * u.deg, SITE) for n in range(1, 9)]
    assert all(a > b > 0 for a, b in zip(spreads, spreads[1:], strict=False))
    # about inversely proportional to the number of subfilters
    assert spreads[5] == pytest.approx(spreads[2] / 2, rel=0.15)
    # zero at the zenith
    assert subfilterDcrSpread(effective, width, 3, 90 * u.deg, SITE) == pytest.approx(0.0)


@pytest.mark.parametrize("airmass", [1.3, 1.6, 2.0, 2.5])
def test_bluer_band_and_larger_airmass_need_more_subfilters(airmass):
    limit = 1.2 * 3.5 * 0.2  # 1.2 FWHM of 3.5 px at 0.2 arcsec per pixel, arcsec
    needs = {band: numSubfiltersFor(*RUBIN_BANDS[band], limit, _elevation(airmass), SITE)
             for band in "ugr"}
    assert needs["u"] >= needs["g"] >= needs["r"] == 3
    higher = numSubfiltersFor(*RUBIN_BANDS["u"], limit, _elevation(airmass + 0.3), SITE)
    assert higher >= needs["u"]
    # the limit is met by the number returned and not by one fewer (above the minimum)
    n = needs["u"]
    assert subfilterDcrSpread(*RUBIN_BANDS["u"], n, _elevation(airmass), SITE) <= limit
    if n > 3:
        assert subfilterDcrSpread(*RUBIN_BANDS["u"], n - 1, _elevation(airmass), SITE) > limit


def test_minimum_and_maximum():
    effective, width = RUBIN_BANDS["u"]
    assert numSubfiltersFor(effective, width, 10.0, 30 * u.deg, SITE) == 3  # never below 3
    assert numSubfiltersFor(effective, width, 10.0, 30 * u.deg, SITE, minimum=1) == 1
    assert numSubfiltersFor(effective, width, 1e-3, 30 * u.deg, SITE, maximum=7) == 7
    assert np.isfinite(subfilterDcrSpread(effective, width, 16, 30 * u.deg, SITE))
    with pytest.raises(DcrValueError, match="maximum at least minimum"):
        numSubfiltersFor(effective, width, 0.5, 30 * u.deg, SITE, minimum=5, maximum=4)
    with pytest.raises(DcrValueError, match="limit"):
        numSubfiltersFor(effective, width, 0.0, 30 * u.deg, SITE)
