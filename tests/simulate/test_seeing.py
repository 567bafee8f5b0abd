"""Tests of dcrmodel.simulate.seeing: the atmospheric PSF.

The transfer functions are checked against the analytic FWHM of each profile and the
Moffat one against the Moffat profile itself (Moffat 1969).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import fft as sfft

from dcrmodel.simulate.seeing import AtmosphericPsf


@pytest.mark.parametrize("profile", ["gaussian", "moffat", "kolmogorov"])
def test_psf_transfer_function_has_the_requested_fwhm(profile):
    # Sample the profile finely (FWHM 20 px, no pixel) and find its half maximum.
    psf = AtmosphericPsf(profile, 20.0, 475.0)
    m = 1024
    fy, fx = sfft.fftfreq(m), sfft.rfftfreq(m)
    image = sfft.irfft2(psf.transfer(np.hypot(fy[:, None], fx[None, :])), s=(m, m))
    row = image[0, : m // 2]
    i = int(np.argmax(row < row[0] / 2))
    halfWidth = i - 1 + (row[i - 1] - row[0] / 2) / (row[i - 1] - row[i])
    # Kolmogorov: FWHM = 0.976 lambda / r0 is itself a rounded constant.
    assert 2 * halfWidth == pytest.approx(20.0, rel=2e-3)


def test_moffat_transfer_function_is_the_transform_of_the_moffat_profile():
    beta, fwhm = 3.5, 20.0
    psf = AtmosphericPsf("moffat", fwhm, 475.0, beta=beta)
    m = 1024
    fy, fx = sfft.fftfreq(m), sfft.rfftfreq(m)
    image = sfft.irfft2(psf.transfer(np.hypot(fy[:, None], fx[None, :])), s=(m, m))
    a = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    r = np.arange(0, 80)
    analytic = (beta - 1) / (math.pi * a * a) * (1 + (r / a) ** 2) ** -beta
    np.testing.assert_allclose(image[0, :80], analytic, rtol=1e-4, atol=1e-9 * analytic[0])


def test_psf_kernel_image_is_odd_centred_normalised_and_chromatic():
    psf = AtmosphericPsf("kolmogorov", 3.5, 475.0, alpha=-0.2)
    kernel = psf.computeKernelImage()
    assert kernel.shape[0] % 2 == 1 and kernel.shape[0] == kernel.shape[1]
    assert kernel.sum() == pytest.approx(1.0)
    half = kernel.shape[0] // 2
    assert kernel[half, half] == kernel.max()
    assert psf.computeFwhm(400.0) == pytest.approx(3.5 * (400 / 475) ** -0.2)
    # Bluer light is broader with alpha < 0: lower peak.
    blue = psf.computeKernelImage(400.0, size=kernel.shape[0])
    red = psf.computeKernelImage(550.0, size=kernel.shape[0])
    assert blue.max() < red.max()
    imagePsf = psf.toImagePsf()
    assert imagePsf.fwhm == 3.5 and imagePsf.alpha == -0.2
