"""Tests of dcrmodel.simulate.sources: profiles, components and sources reject impossible values.

The parametrised list also covers the checks of the spectra, bands and seeing that a
source is built with, so that every constructor's message is tested in one place.
"""

from __future__ import annotations

import pytest

from dcrmodel.errors import DcrTypeError, DcrValueError
from dcrmodel.simulate.seeing import AtmosphericPsf
from dcrmodel.simulate.sources import ExponentialProfile, PointProfile, SourceComponent
from dcrmodel.simulate.spectra import Bandpass, BlackbodySpectrum


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Bandpass.topHat(-475.0, 150.0), "effectiveWavelength must be positive"),
        (lambda: Bandpass.topHat(475.0, 1000.0), "less than twice"),
        (lambda: Bandpass.curve([400, 500], [1.0, -1.0]), "non-negative"),
        (lambda: Bandpass.curve([500, 400], [1.0, 1.0]), "strictly increasing"),
        (lambda: Bandpass.curve([400, 500], [0.0, 0.0]), "transmits no light"),
        (lambda: BlackbodySpectrum(-10.0), "temperature must be positive"),
        (lambda: ExponentialProfile(2.0, axisRatio=1.5), "axisRatio"),
        (lambda: SourceComponent(PointProfile(), BlackbodySpectrum(5000.0), -5.0),
         "flux must be non-negative"),
        (lambda: AtmosphericPsf("airy", 3.0, 475.0), "unknown PSF profile"),
        (lambda: AtmosphericPsf("gaussian", -3.0, 475.0), "fwhm must be positive"),
    ],
)
def test_bad_values_are_rejected(call, match):
    with pytest.raises(DcrValueError, match=match):
        call()


def test_bare_numbers_and_wrong_types_are_rejected():
    with pytest.raises(DcrTypeError, match="flux must be a number"):
        SourceComponent(PointProfile(), BlackbodySpectrum(5000.0), "bright")
    with pytest.raises(DcrTypeError, match="spectrum must be"):
        SourceComponent(PointProfile(), 5000.0, 1.0)
