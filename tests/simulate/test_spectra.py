"""Tests of dcrmodel.simulate.spectra: photon spectra and bands.

The blackbody is checked against astropy's Planck law; bands against the analytic
effective wavelength and equivalent width of a Gaussian transmission curve.
"""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest

from dcrmodel.image import Filter
from dcrmodel.simulate.spectra import Bandpass, BlackbodySpectrum, PowerLawSpectrum

G_BAND = Bandpass.topHat(475.0, 150.0, "g")


def test_blackbody_photon_spectrum_matches_astropy_planck():
    from astropy.modeling.physical_models import BlackBody

    wl = np.array([400.0, 450.0, 500.0, 550.0])
    for temperature in (3000.0, 5800.0, 30000.0):
        bnu = BlackBody(temperature * u.K)(wl * u.nm).value
        # Photons per unit wavelength ~ B_lambda * lambda ~ B_nu / lambda.
        expected = bnu / wl
        ours = BlackbodySpectrum(temperature).photonDensity(wl)
        np.testing.assert_allclose(ours / ours[0], expected / expected[0], rtol=1e-7)


def test_blue_and_red_spectra_have_opposite_slopes():
    wl = np.array([400.0, 550.0])
    hot = BlackbodySpectrum(20000.0).photonDensity(wl)
    cool = BlackbodySpectrum(3500.0).photonDensity(wl)
    assert hot[0] > hot[1]
    assert cool[0] < cool[1]
    assert np.allclose(PowerLawSpectrum(2.0).photonDensity(wl), (wl / 500.0) ** 2)


def test_top_hat_sampling_splits_subfilters_exactly():
    wl, weights, sub = G_BAND.sample(3, 14)
    assert wl.size == 42
    assert weights.sum() == pytest.approx(150.0)
    edges = G_BAND.subfilterEdges(3)
    for k in range(3):
        inside = wl[sub == k]
        assert inside.size == 14
        assert np.all((inside > edges[k]) & (inside < edges[k + 1]))
    assert np.all(np.diff(wl) > 0)


def test_curve_band_effective_wavelength_and_bandwidth():
    wl = np.linspace(380.0, 570.0, 200)
    tp = np.exp(-0.5 * ((wl - 470.0) / 30.0) ** 2)
    band = Bandpass.curve(wl, tp, name="gauss")
    assert band.effectiveWavelength == pytest.approx(470.0, abs=0.1)
    # Equivalent width of a Gaussian (truncated at -3.0/+3.3 sigma: 0.2 % less).
    assert band.bandwidth == pytest.approx(30.0 * math.sqrt(2 * math.pi), rel=4e-3)
    samples, weights, sub = band.sample(3, 14)
    # The midpoint rule reproduces the transmission-weighted mean wavelength.
    assert (samples * weights).sum() / weights.sum() == pytest.approx(
        band.effectiveWavelength, abs=0.01
    )
    assert set(sub.tolist()) == {0, 1, 2}


def test_band_from_filter():
    band = Bandpass.fromFilter(Filter.fromBand("g"))
    g = Filter.fromBand("g")
    assert band.effectiveWavelength == g.effectiveWavelength
    assert band.toFilter() == g
