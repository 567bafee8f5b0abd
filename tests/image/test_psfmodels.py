"""Tests of dcrmodel.image.psfmodels: `GaussianPsf` and `ImagePsf`.

References used: GalSim (``galsim.Gaussian`` drawn without pixel convolution, the HSM
adaptive moments, and the analytic FWHM of Moffat and Kolmogorov profiles).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcrmodel.errors import DcrValueError
from dcrmodel.image.psfmodels import GaussianPsf, ImagePsf

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# ----------------------------------------------------------------------------------------
# PSF
# ----------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=1.5, max_value=9.0))
def test_gaussian_psf_against_galsim(fwhm):
    galsim = pytest.importorskip("galsim")
    kernel = GaussianPsf(fwhm).computeKernelImage()
    n = kernel.shape[0]
    assert n % 2 == 1 and kernel.shape == (n, n)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.unravel_index(np.argmax(kernel), kernel.shape) == (n // 2, n // 2)
    # Independent reference: GalSim's Gaussian sampled at pixel centres.
    ref = galsim.Gaussian(fwhm=fwhm).drawImage(nx=n, ny=n, scale=1.0, method="no_pixel").array
    np.testing.assert_allclose(kernel, ref / ref.sum(), rtol=0, atol=1e-7)
    # FWHM measured from the kernel image within 1 %: second moment of the marginal
    # profile, and (where HSM is unbiased, FWHM >= 2.5 pixels) GalSim's adaptive moments.
    offsets = np.arange(n) - n // 2
    secondMoment = (kernel.sum(axis=0) * offsets**2).sum()
    assert math.sqrt(secondMoment) * FWHM_PER_SIGMA == pytest.approx(fwhm, rel=0.01)
    if fwhm >= 2.5:
        moments = galsim.hsm.FindAdaptiveMom(galsim.Image(kernel, scale=1.0))
        assert moments.moments_sigma * FWHM_PER_SIGMA == pytest.approx(fwhm, rel=0.01)


def test_gaussian_psf_chromatic_and_validation():
    galsim = pytest.importorskip("galsim")
    psf = GaussianPsf(4.0, alpha=-0.2, effectiveWavelength=500.0)
    assert psf.fwhm == 4.0 and psf.alpha == -0.2 and psf.effectiveWavelength == 500.0
    for wl in (400.0, 500.0, 650.0):
        expected = 4.0 * (wl / 500.0) ** -0.2
        assert psf.computeFwhm(wl) == pytest.approx(expected)
        kernel = psf.computeKernelImage(wl)
        sigma = galsim.hsm.FindAdaptiveMom(galsim.Image(kernel, scale=1.0)).moments_sigma
        assert sigma * FWHM_PER_SIGMA == pytest.approx(expected, rel=0.01)
    fixed = GaussianPsf(2.0, kernelSize=21)
    assert fixed.computeKernelImage().shape == (21, 21)
    # Achromatic PSFs ignore the wavelength; chromatic ones need the effective wavelength.
    np.testing.assert_array_equal(
        GaussianPsf(3.0).computeKernelImage(700.0), GaussianPsf(3.0).computeKernelImage()
    )
    with pytest.raises(DcrValueError, match="has no effectiveWavelength"):
        GaussianPsf(3.0, alpha=-0.2).computeKernelImage(600.0)
    with pytest.raises(DcrValueError, match="wavelength must be positive"):
        psf.computeKernelImage(-5.0)
    with pytest.raises(DcrValueError, match="fwhm must be positive"):
        GaussianPsf(0.0)
    with pytest.raises(DcrValueError, match="fwhm must be a finite"):
        GaussianPsf(float("inf"))
    with pytest.raises(DcrValueError, match="kernelSize must be a positive odd"):
        GaussianPsf(2.0, kernelSize=20)


def test_image_psf_normalisation_and_chromatic_resampling():
    galsim = pytest.importorskip("galsim")
    raw = 7.0 * GaussianPsf(3.5, kernelSize=31).computeKernelImage()
    psf = ImagePsf(raw, alpha=-0.2, effectiveWavelength=600.0)
    kernel = psf.computeKernelImage()
    assert kernel.sum() == pytest.approx(1.0) and kernel.shape == (31, 31)
    np.testing.assert_allclose(kernel, raw / raw.sum())
    assert psf.fwhm == pytest.approx(3.5, rel=1e-3)
    assert ImagePsf(raw, fwhm=3.0).fwhm == 3.0
    blue = psf.computeKernelImage(400.0)
    assert blue.sum() == pytest.approx(1.0)
    sigma = galsim.hsm.FindAdaptiveMom(galsim.Image(blue, scale=1.0)).moments_sigma
    assert sigma * FWHM_PER_SIGMA == pytest.approx(3.5 * (400 / 600) ** -0.2, rel=0.01)


def test_image_psf_validation():
    good = GaussianPsf(3.0, kernelSize=15).computeKernelImage()
    with pytest.raises(DcrValueError, match=r"odd sides.*\(14, 14\)"):
        ImagePsf(good[:14, :14])
    with pytest.raises(DcrValueError, match=r"square with odd sides.*\(15, 13\)"):
        ImagePsf(good[:, 1:14])
    shifted = np.roll(good, 2, axis=1)
    with pytest.raises(DcrValueError, match=r"off-centre: its peak is at \(y, x\) = \(7, 9\)"):
        ImagePsf(shifted)
    lopsided = good.copy()
    lopsided[7, 14] = 0.9 * good[7, 7]
    with pytest.raises(DcrValueError, match="off-centre: its centroid"):
        ImagePsf(lopsided)
    bad = good.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DcrValueError, match="NaN or infinite"):
        ImagePsf(bad)
    with pytest.raises(DcrValueError, match="positive sum"):
        ImagePsf(-good)
    with pytest.raises(DcrValueError, match="positive sum"):
        ImagePsf(np.zeros((3, 3)))


def test_image_psf_fwhm_is_the_half_maximum_width_for_any_profile():
    # Independent reference: GalSim's analytic FWHM of profiles with wide wings, for which
    # a second-moment width would be far too large (Kolmogorov: ~1.75x).
    import galsim

    for profile in (galsim.Moffat(beta=2.5, fwhm=3.2), galsim.Kolmogorov(fwhm=3.2),
                    galsim.Gaussian(fwhm=4.0)):
        array = profile.drawImage(nx=101, ny=101, scale=1.0, method="no_pixel").array
        psf = ImagePsf(array)
        assert psf.fwhm == pytest.approx(profile.fwhm, rel=0.015)
