"""Tests of dcrmodel.simulate: spectra, bands, the Fourier renderer and the visit generator.

The renderer is checked against analytic cases (pixel-integrated Gaussians, the second
moments of exponential discs, the Moffat and Kolmogorov profiles) and against GalSim's
``ChromaticAtmosphere`` for the differential refraction of a hot and a cool star.
"""

from __future__ import annotations

import math
import warnings

import astropy.units as u
import numpy as np
import pytest
from scipy import fft as sfft
from scipy.special import erf

from dcrmodel.errors import DcrTypeError, DcrValueError
from dcrmodel.image import Box, Filter
from dcrmodel.simulate import (
    AtmosphericPsf,
    Bandpass,
    BlackbodySpectrum,
    ExponentialProfile,
    FourierSkyRenderer,
    GaussianProfile,
    PointProfile,
    PowerLawSpectrum,
    Source,
    SourceComponent,
    wavelengthDisplacements,
)
from dcrmodel.site import Observatory, Weather

G_BAND = Bandpass.topHat(475.0, 150.0, "g")


def _star(x, y, flux=1000.0, temperature=10000.0, id=1):
    colour = "blueStar" if temperature >= 6000 else "redStar"
    component = SourceComponent(PointProfile(), BlackbodySpectrum(temperature), flux)
    return Source(id, x, y, "star", colour, (component,))


def _renderer(sources, bbox, padding=24, band=G_BAND, perSubfilter=14):
    wl, weights, _ = band.sample(3, perSubfilter)
    return FourierSkyRenderer(sources, bbox, wl, weights, padding=padding)


def _moments(image):
    yy, xx = np.indices(image.shape, dtype=float)
    total = image.sum()
    xc = (image * xx).sum() / total
    yc = (image * yy).sum() / total
    return (
        total,
        xc,
        yc,
        (image * (xx - xc) ** 2).sum() / total,
        (image * (yy - yc) ** 2).sum() / total,
        (image * (xx - xc) * (yy - yc)).sum() / total,
    )


# --------------------------------------------------------------------------------------
# Spectra and bands
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Seeing
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Renderer
# --------------------------------------------------------------------------------------


def test_point_source_is_the_pixel_integrated_gaussian_at_its_subpixel_position():
    bbox = Box(10, 20, 64, 48)
    x, y, flux = 40.3, 41.7, 1000.0
    image = _renderer([_star(x, y, flux)], bbox).render(None, AtmosphericPsf("gaussian", 3.0, 475))
    sigma = 3.0 / (2 * math.sqrt(2 * math.log(2)))

    def integrated(start, n, centre):
        edges = np.arange(n + 1) + start - 0.5
        return np.diff(0.5 * (1 + erf((edges - centre) / (math.sqrt(2) * sigma))))

    expected = flux * np.outer(integrated(20, 48, y), integrated(10, 64, x))
    # Only the power beyond the Nyquist frequency (not folded back) differs: ~5e-5 of the peak.
    np.testing.assert_allclose(image, expected, atol=2e-4 * expected.max())
    assert image.sum() == pytest.approx(flux, rel=1e-5)


def test_exponential_disc_has_analytic_second_moments():
    h, q, theta = 3.0, 0.5, 30.0
    disc = SourceComponent(ExponentialProfile(h, q, theta), PowerLawSpectrum(0.0), 5e4)
    galaxy = Source(7, 64.0, 64.0, "galaxy", "galaxy", (disc,))
    bbox = Box(0, 0, 128, 128)
    psfFwhm = 3.0
    image = _renderer([galaxy], bbox, padding=64).render(
        None, AtmosphericPsf("gaussian", psfFwhm, 475)
    )
    total, xc, yc, ixx, iyy, ixy = _moments(image)
    # Exponential disc: <r_major^2> = 3 h^2 per axis; plus the PSF and the pixel (1/12).
    extra = (psfFwhm / 2.354820045) ** 2 + 1 / 12
    c, s = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    a2, b2 = 3 * h * h, 3 * (q * h) ** 2
    assert total == pytest.approx(5e4, rel=2e-3)  # the far wings leave the 128 px stamp
    assert (xc, yc) == pytest.approx((64.0, 64.0), abs=1e-3)
    assert ixx == pytest.approx(a2 * c * c + b2 * s * s + extra, rel=2e-2)
    assert iyy == pytest.approx(a2 * s * s + b2 * c * c + extra, rel=2e-2)
    assert ixy == pytest.approx((a2 - b2) * c * s, rel=2e-2)


def test_gaussian_bulge_moments_and_two_component_flux():
    bulge = SourceComponent(GaussianProfile(2.0, 0.8, 90.0), PowerLawSpectrum(3.0), 2e4)
    disc = SourceComponent(ExponentialProfile(2.5, 0.6, 10.0), PowerLawSpectrum(-1.5), 3e4)
    galaxy = Source(3, 50.5, 49.2, "galaxy", "galaxy", (bulge, disc))
    image = _renderer([galaxy], Box(0, 0, 100, 100), padding=60).render(
        None, AtmosphericPsf("gaussian", 3.0, 475)
    )
    assert image.sum() == pytest.approx(5e4, rel=2e-3)
    bulgeOnly = _renderer(
        [Source(4, 50.0, 50.0, "galaxy", "galaxy", (bulge,))], Box(0, 0, 100, 100)
    ).render(None, AtmosphericPsf("gaussian", 3.0, 475))
    _, _, _, ixx, iyy, _ = _moments(bulgeOnly)
    extra = (3.0 / 2.354820045) ** 2 + 1 / 12
    # Major axis along y (90 deg): sigma 2 along y, 1.6 along x.
    assert iyy == pytest.approx(4.0 + extra, rel=1e-3)
    assert ixx == pytest.approx(2.56 + extra, rel=1e-3)


def test_uniform_displacement_moves_the_source():
    bbox = Box(0, 0, 128, 128)
    renderer = _renderer([_star(62.0, 63.0)], bbox)
    psf = AtmosphericPsf("gaussian", 3.5, 475)
    moved = renderer.render(np.tile([2.25, -1.5], (42, 1)), psf)
    _, xc, yc, *_ = _moments(moved)
    assert (xc, yc) == pytest.approx((60.5, 65.25), abs=1e-4)


def test_chromatic_centroid_is_the_spectrum_weighted_displacement():
    # Displacement proportional to wavelength offset: the centroid must move by the
    # photon-weighted mean offset, bluer for the hot star.
    bbox = Box(0, 0, 64, 64)
    wl, weights, _ = G_BAND.sample(3, 14)
    shifts = np.stack([-(wl - 475.0) / 25.0, np.zeros_like(wl)], axis=1)
    psf = AtmosphericPsf("gaussian", 3.0, 475)
    for temperature in (3500.0, 20000.0):
        image = _renderer([_star(32.0, 32.0, temperature=temperature)], bbox).render(shifts, psf)
        _, _, yc, *_ = _moments(image)
        density = BlackbodySpectrum(temperature).photonDensity(wl) * weights
        expected = 32.0 + (density * shifts[:, 0]).sum() / density.sum()
        assert yc == pytest.approx(expected, abs=1e-4)


def test_subfilter_weights_split_the_light():
    bbox = Box(0, 0, 48, 48)
    renderer = _renderer([_star(24.0, 24.0, flux=3000.0, temperature=5000.0)], bbox)
    psf = AtmosphericPsf("gaussian", 3.0, 475)
    _, _, sub = G_BAND.sample(3, 14)
    parts = [renderer.render(None, psf, sampleWeights=(sub == k).astype(float)) for k in range(3)]
    whole = renderer.render(None, psf)
    np.testing.assert_allclose(sum(parts), whole, atol=1e-9 * whole.max())
    fluxes = [p.sum() for p in parts]
    assert fluxes[0] < fluxes[1] < fluxes[2]  # a 5000 K star is red in g


def test_displacement_beyond_padding_is_refused():
    renderer = _renderer([_star(20.0, 20.0)], Box(0, 0, 40, 40), padding=8)
    with pytest.raises(DcrValueError, match="larger than the padding"):
        renderer.render(np.full((42, 2), 9.0), AtmosphericPsf("gaussian", 3.0, 475))


def test_renderer_refuses_a_cube_too_large_for_memory():
    wl, weights, _ = G_BAND.sample(3, 14)
    with pytest.raises(DcrValueError, match="GB for the wavelength cube"):
        FourierSkyRenderer([], Box(0, 0, 4096, 4096), wl, weights, padding=64, maxMemory=1e8)


def test_refraction_displacements_point_to_the_zenith_for_blue_light():
    wl, _, _ = G_BAND.sample(3, 14)
    d = wavelengthDisplacements(
        wl, 475.0, 45 * u.deg, Observatory.rubin(), None, (0.0, -5.0)
    )
    assert d.shape == (42, 2)
    assert np.all(d[:, 0] == 0.0)
    assert np.all(np.diff(d[:, 1]) > 0)  # bluest moves furthest along -x (the zenith here)
    assert d[0, 1] < 0 < d[-1, 1]
    with pytest.raises(DcrValueError):
        wavelengthDisplacements([100.0], 475.0, 45 * u.deg, Observatory.rubin(), None, (1, 0))


# --------------------------------------------------------------------------------------
# Independent cross-check against GalSim
# --------------------------------------------------------------------------------------


def _galsimCentroid(galsim, temperature, airmass, weather, scale):
    z = math.acos(1.0 / airmass)
    hcOverK = 1.438776877e7  # nm K
    sed = galsim.SED(
        lambda wl: wl**-5 / np.expm1(hcOverK / (wl * temperature)), "nm", "flambda"
    )
    grid = np.linspace(400.0, 550.0, 601)
    band = galsim.Bandpass(galsim.LookupTable(grid, np.ones_like(grid), interpolant="linear"), "nm")
    atmosphere = galsim.ChromaticAtmosphere(
        galsim.Gaussian(fwhm=0.7),
        base_wavelength=475.0,
        zenith_angle=z * galsim.radians,
        parallactic_angle=0.0 * galsim.degrees,
        alpha=0.0,
        temperature=weather.airTemperature + 273.15,
        pressure=weather.airPressure / 1000.0,
        H2O_pressure=0.0,
    )
    star = galsim.Convolve([galsim.DeltaFunction() * sed, atmosphere])
    image = star.drawImage(band, nx=64, ny=64, scale=scale).array
    # GalSim puts North (the zenith at parallactic angle 0) along +y.
    return (image.sum(axis=1) * np.arange(64)).sum() / image.sum() * scale


def _ourCentroid(temperature, airmass, weather, scale):
    wl, weights, _ = G_BAND.sample(3, 14)
    elevation = (90.0 - math.degrees(math.acos(1.0 / airmass))) * u.deg
    shifts = wavelengthDisplacements(
        wl, 475.0, elevation, Observatory.rubin(), weather, (1.0 / scale, 0.0)
    )
    image = FourierSkyRenderer(
        [_star(32.0, 32.0, temperature=temperature)], Box(0, 0, 64, 64), wl, weights, padding=32
    ).render(shifts, AtmosphericPsf("gaussian", 0.7 / scale, 475.0))
    return (image.sum(axis=1) * np.arange(64)).sum() / image.sum() * scale


@pytest.mark.parametrize("airmass", [1.5, 2.0])
def test_hot_minus_cool_centroid_agrees_with_galsim(airmass):
    """Measured: ours/GalSim - 1 = -0.33 % at airmass 1.5 and -0.52 % at airmass 2.0.

    The residual is the difference of the refractive-index formulas (Stone 1996 here,
    Filippenko 1982 / Edlen 1953 in GalSim) and of Stone's tan^3 z term; 1 % is the bound.
    """
    galsim = pytest.importorskip("galsim")
    weather = Weather(10.0, 72000.0, 0.0)
    scale = 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _galsimCentroid(galsim, 20000.0, airmass, weather, scale) - _galsimCentroid(
            galsim, 3500.0, airmass, weather, scale
        )
    ours = _ourCentroid(20000.0, airmass, weather, scale) - _ourCentroid(
        3500.0, airmass, weather, scale
    )
    assert theirs > 0.1  # arcsec toward the zenith: the effect is real and large
    assert ours == pytest.approx(theirs, rel=0.01)
