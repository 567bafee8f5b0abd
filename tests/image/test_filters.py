"""Tests of dcrmodel.image.filters: `Filter` and the Rubin band table."""

import pytest

from dcrmodel.errors import DcrTypeError, DcrValueError
from dcrmodel.image.filters import RUBIN_BANDS, Filter

# ----------------------------------------------------------------------------------------
# Filter
# ----------------------------------------------------------------------------------------


def test_filter_table_and_edges():
    assert list(RUBIN_BANDS) == ["u", "g", "r", "i", "z", "y"]
    effs = [RUBIN_BANDS[b][0] for b in RUBIN_BANDS]
    assert effs == sorted(effs)
    # LSST throughputs v1.4 effective wavelengths (SMTN-002), nm.
    for band, eff in zip(
        "ugrizy", (367.07, 482.685, 622.324, 754.598, 869.09, 971.028), strict=True
    ):
        f = Filter.fromBand(band)
        assert f.bandName == band and f.effectiveWavelength == pytest.approx(eff)
        assert f.lambdaMax - f.lambdaMin == pytest.approx(f.bandwidth)
        assert (f.lambdaMin + f.lambdaMax) / 2 == pytest.approx(f.effectiveWavelength)
        assert 300 < f.lambdaMin < f.effectiveWavelength < f.lambdaMax < 1100
    g = Filter("g", 480.0, 150.0)
    assert (g.lambdaMin, g.lambdaMax) == (405.0, 555.0)
    assert Filter("g", 480, 150) == g and hash(Filter("g", 480, 150)) == hash(g)
    with pytest.raises(AttributeError):
        g.bandwidth = 3.0


def test_filter_validation():
    with pytest.raises(DcrValueError, match="effectiveWavelength must be positive"):
        Filter("g", 0.0, 100.0)
    with pytest.raises(DcrValueError, match="bandwidth must be positive"):
        Filter("g", 480.0, -1.0)
    with pytest.raises(DcrValueError, match="bandwidth must be positive"):
        Filter("g", 480.0, float("nan"))
    with pytest.raises(DcrValueError, match="less than twice the effective wavelength"):
        Filter("g", 480.0, 960.0)
    with pytest.raises(DcrValueError, match="unknown band 'H'; known Rubin bands: u g r i z y"):
        Filter.fromBand("H")
    with pytest.raises(DcrTypeError, match="bandName must be a string"):
        Filter(3, 480.0, 100.0)
