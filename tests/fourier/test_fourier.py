"""Tests of dcrmodel.fourier: transfer functions, padding and the Fourier template engine.

References are independent of the module: sources rendered analytically at their shifted (or
smeared) positions (pixel-integrated Gaussians, erf), ``np.roll`` for whole-pixel shifts, and
``scipy.ndimage.shift`` (the spline engine) for agreement with the reference algorithm.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.special import erf

from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.fourier.engine import FourierTemplateEngine, applyTransfer, fourierShift
from dcrmodel.fourier.padding import (
    allowedShift,
    cropFromPadded,
    fillBadPixels,
    maxShiftOf,
    paddedShape,
    padToShape,
)
from dcrmodel.fourier.transfer import (
    dcrShiftArray,
    hermitianize,
    shiftTransfer,
    smearTransfer,
    splitTransfer,
    subfilterTransfer,
    visitTransfers,
)

SIGMA_PER_FWHM = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def renderGaussians(shape, sources, sigma):
    """Pixel-integrated circular Gaussians: sources = [(y0, x0, flux), ...] (pixels)."""
    ny, nx = shape
    y = np.arange(ny)
    x = np.arange(nx)
    root2s = np.sqrt(2.0) * sigma
    out = np.zeros(shape)
    for y0, x0, flux in sources:
        py = 0.5 * (erf((y + 0.5 - y0) / root2s) - erf((y - 0.5 - y0) / root2s))
        px = 0.5 * (erf((x + 0.5 - x0) / root2s) - erf((x - 0.5 - x0) / root2s))
        out += flux * np.outer(py, px)
    return out


def moved(sources, shift):
    return [(y0 + shift[0], x0 + shift[1], f) for y0, x0, f in sources]


def smearRendering(shape, sources, sigma, edges, samples=400):
    """Sources averaged over `samples` positions uniformly spread from edges[0] to edges[1]."""
    s0, s1 = np.asarray(edges, dtype=float)
    t = (np.arange(samples) + 0.5) / samples
    out = np.zeros(shape)
    for ti in t:
        out += renderGaussians(shape, moved(sources, s0 * (1 - ti) + s1 * ti), sigma)
    return out / samples


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(20261125)
    shape = (90, 104)
    sources = [(rng.uniform(16, 74), rng.uniform(16, 88), rng.uniform(10, 100)) for _ in range(14)]
    return shape, sources


INNER = (slice(14, -14), slice(14, -14))


# -- transfer functions ---------------------------------------------------------------------


def test_shift_transfer_is_unit_modulus_ramp_with_shift_theorem_sign():
    shape = (16, 20)
    transfer = shiftTransfer(shape, (0.3, -1.7))
    fy = np.fft.fftfreq(16)[:, None]
    fx = np.fft.rfftfreq(20)[None, :]
    expected = np.exp(-2j * np.pi * (fy * 0.3 + fx * -1.7))
    # Away from the Nyquist row and column the transfer is the plain ramp.
    rows = np.arange(16) != 8
    np.testing.assert_allclose(transfer[rows, :-1], expected[rows, :-1], atol=1e-14)
    # Nyquist coefficients (even axes) average their two aliases f = +-1/2: cos(pi s).
    np.testing.assert_allclose(
        transfer[:8, -1], np.exp(-2j * np.pi * fy[:8, 0] * 0.3) * np.cos(np.pi * -1.7), atol=1e-14
    )
    np.testing.assert_allclose(
        transfer[8, :-1], np.cos(np.pi * 0.3) * np.exp(-2j * np.pi * fx[0, :-1] * -1.7), atol=1e-14
    )
    assert transfer[8, -1] == pytest.approx(np.cos(np.pi * 0.3) * np.cos(np.pi * -1.7))


def test_integer_shift_is_exact_roll(scene):
    shape, sources = scene
    image = renderGaussians(shape, sources, 1.2)
    for shift in [(3, -5), (-7, 2), (0, 11)]:
        out = fourierShift(image, shift)
        expected = np.roll(image, shift, axis=(0, 1))
        np.testing.assert_allclose(out[INNER], expected[INNER], rtol=0, atol=1e-12 * image.max())


def test_integer_shift_exact_in_float32(scene):
    shape, sources = scene
    image = renderGaussians(shape, sources, 1.2).astype(np.float32)
    out = fourierShift(image, (2, -3))
    assert out.dtype == np.float32
    expected = np.roll(image, (2, -3), axis=(0, 1))
    np.testing.assert_allclose(out[INNER], expected[INNER], rtol=0, atol=2e-6 * image.max())


@pytest.mark.parametrize("fwhm", [2.0, 3.0, 5.0])
def test_fourier_shift_against_analytic_truth_and_spline(scene, fwhm):
    shape, sources = scene
    sigma = fwhm * SIGMA_PER_FWHM
    image = renderGaussians(shape, sources, sigma)
    peak = image.max()
    for shift in [(0.5, 0.5), (1.37, -2.61), (-0.25, 0.0)]:
        truth = renderGaussians(shape, moved(sources, shift), sigma)
        fourier = fourierShift(image, shift)
        spline = ndimage.shift(image, shift, order=3, mode="nearest")
        fourierError = np.abs(fourier - truth)[INNER].max() / peak
        splineError = np.abs(spline - truth)[INNER].max() / peak
        # The Fourier shift is never less accurate than the order-3 spline (at FWHM 2 px the
        # spline errs by ~4 % of the peak, the Fourier shift by ~1 %, aliasing of the
        # pixel-integrated Gaussian; both fall fast with FWHM).
        assert fourierError <= splineError
        if fwhm >= 3.0:
            assert fourierError < 1e-3
        if fwhm >= 5.0:
            # Where the spline itself is accurate, the two engines agree to < 1e-3 of the peak.
            assert np.abs(fourier - spline)[INNER].max() / peak < 1e-3


def test_split_transfer_is_average_of_quarter_point_shifts(scene):
    shape, sources = scene
    image = renderGaussians(shape, sources, 5.0 * SIGMA_PER_FWHM)
    edges = np.array([[0.4, -1.1], [1.9, 0.6]])
    q0 = 0.75 * edges[0] + 0.25 * edges[1]
    q1 = 0.25 * edges[0] + 0.75 * edges[1]
    split = fourierShift(image, edges, mode="split")
    twoRamps = 0.5 * (fourierShift(image, q0) + fourierShift(image, q1))
    np.testing.assert_allclose(split, twoRamps, atol=1e-12 * image.max())
    spline = 0.5 * (
        ndimage.shift(image, q0, order=3, mode="nearest")
        + ndimage.shift(image, q1, order=3, mode="nearest")
    )
    assert np.abs(split - spline)[INNER].max() < 1e-3 * image.max()


def test_smear_transfer_matches_dense_rendering(scene):
    shape, sources = scene
    sigma = 1.0
    edges = ((0.3, -0.8), (2.1, 1.5))
    image = renderGaussians(shape, sources, sigma)
    truth = smearRendering(shape, sources, sigma, edges)
    peak = image.max()
    smear = fourierShift(image, edges, mode="smear")
    split = fourierShift(image, edges, mode="split")
    mean = fourierShift(image, edges, mode="mean")
    errors = {
        name: np.abs(out - truth)[INNER].max() / peak
        for name, out in [("smear", smear), ("split", split), ("mean", mean)]
    }
    # Measured: smear 6e-4 (the 400-sample rendering and aliasing), split 3e-2, mean 2e-1.
    assert errors["smear"] < 2e-3
    assert errors["smear"] < errors["split"] < errors["mean"]


def test_smear_of_zero_width_is_shift_and_flux_is_conserved():
    shape = (24, 30)
    same = smearTransfer(shape, ((1.2, -0.4), (1.2, -0.4)))
    np.testing.assert_allclose(same, shiftTransfer(shape, (1.2, -0.4)), atol=1e-15)
    for function in (smearTransfer, splitTransfer):
        transfer = function(shape, ((0.0, 0.0), (2.5, -3.0)))
        assert transfer[0, 0] == pytest.approx(1.0)  # f = 0: flux conserved
        assert np.all(np.abs(transfer) <= 1.0 + 1e-12)


def test_smear_transfer_analytic_value():
    shape = (32, 32)
    edges = np.array([[0.0, 0.0], [0.0, 2.0]])
    transfer = smearTransfer(shape, edges)
    fx = np.fft.rfftfreq(32)
    # Along x only: mean ramp exp(-2 pi i fx) times sin(2 pi fx) / (2 pi fx).
    expected = np.exp(-2j * np.pi * fx) * np.sinc(2.0 * fx)
    np.testing.assert_allclose(transfer[0, 1:-1], expected[1:-1], atol=1e-14)


def test_subfilter_transfer_modes_and_errors():
    shape = (20, 22)
    edges = ((0.1, 0.2), (0.9, -0.4))
    np.testing.assert_allclose(
        subfilterTransfer(shape, edges, "mean"), shiftTransfer(shape, (0.5, -0.1)), atol=1e-15
    )
    np.testing.assert_allclose(
        subfilterTransfer(shape, (0.5, -0.1), "mean"), shiftTransfer(shape, (0.5, -0.1))
    )
    with pytest.raises(DcrValueError, match="needs the two edge shifts"):
        subfilterTransfer(shape, (0.5, -0.1), "smear")
    with pytest.raises(DcrValueError, match="unknown transfer mode"):
        subfilterTransfer(shape, edges, "linear")
    with pytest.raises(DcrValueError, match="finite"):
        smearTransfer(shape, ((0.0, np.nan), (1.0, 1.0)))
    with pytest.raises(DcrShapeError, match="two edge shifts"):
        smearTransfer(shape, (1.0, 2.0, 3.0))
    stack = visitTransfers(shape, [edges, edges], "split", np.complex64)
    assert stack.shape == (2, 20, 12) and stack.dtype == np.complex64


def test_hermitianize_makes_real_operator_adjoint_exact():
    # <T a, b> == <a, T^T b> with T^T built from conj(H), for a sub-pixel shift on even grids.
    rng = np.random.default_rng(3)
    shape = (12, 16)
    a = rng.normal(size=shape)
    b = rng.normal(size=shape)
    transfer = smearTransfer(shape, ((0.3, 0.7), (1.1, -0.2)))
    ta = np.fft.irfft2(np.fft.rfft2(a) * transfer, s=shape)
    tb = np.fft.irfft2(np.fft.rfft2(b) * np.conj(transfer), s=shape)
    assert np.sum(ta * b) == pytest.approx(np.sum(a * tb), rel=1e-12)
    # and the per-frequency multiplier is what the real operator does (diagonal on rfft2)
    np.testing.assert_allclose(np.fft.rfft2(ta), np.fft.rfft2(a) * transfer, atol=1e-12)
    again = hermitianize(transfer.copy(), shape)
    np.testing.assert_allclose(again, transfer, atol=1e-15)


# -- padding ----------------------------------------------------------------------------------


def test_padded_shape_is_fast_and_holds_the_shift():
    padded = paddedShape((100, 77), (3.2, 11.0), psfSize=9)
    assert padded[0] >= 100 + 2 * (4 + 4 + 8) and padded[1] >= 77 + 2 * (11 + 4 + 8)
    for n in padded:
        m = n
        for p in (2, 3, 5, 7, 11):
            while m % p == 0:
                m //= p
        assert m == 1
    allowed = allowedShift((100, 77), padded, psfSize=9)
    assert allowed[0] >= 3.2 and allowed[1] >= 11.0
    with pytest.raises(DcrValueError, match="maxShift must be finite"):
        paddedShape((10, 10), -1.0)
    with pytest.raises(DcrValueError, match="psfSize"):
        paddedShape((10, 10), 1.0, psfSize=-3)
    with pytest.raises(DcrValueError, match="pair of positive ints"):
        paddedShape((0, 10), 1.0)


def test_pad_and_crop_round_trip():
    array = np.arange(30.0).reshape(5, 6)
    padded = padToShape(array, (11, 14))
    assert padded.shape == (11, 14)
    np.testing.assert_array_equal(cropFromPadded(padded, array.shape), array)
    with pytest.raises(DcrValueError, match="padMode"):
        padToShape(array, (11, 14), "wrap")
    with pytest.raises(DcrShapeError, match="smaller"):
        padToShape(array, (3, 14))


def test_large_shift_does_not_wrap():
    # A source near the right edge moved right by 20 px must leave, not reappear on the left.
    shape = (40, 60)
    image = renderGaussians(shape, [(20.0, 55.0, 100.0)], 1.0)
    out = fourierShift(image, (0.0, 20.0), padMode="constant")
    assert np.abs(out[:, :30]).max() < 1e-6 * image.max()


def test_max_shift_of():
    assert maxShiftOf([[((0.1, -2.0), (0.3, 1.0))], [((-0.7, 0.2), (0.0, 0.0))]]) == (0.7, 2.0)
    with pytest.raises(DcrShapeError, match="pairs"):
        maxShiftOf([1.0, 2.0, 3.0])


def test_apply_transfer_validates():
    image = np.ones((8, 8))
    with pytest.raises(DcrShapeError, match="padded grid"):
        applyTransfer(image, np.ones((4, 4), complex), (30, 30))
    bad = image.copy()
    bad[2, 2] = np.nan
    padded = paddedShape((8, 8), 1.0)
    with pytest.raises(DcrValueError, match="NaN"):
        applyTransfer(bad, shiftTransfer(padded, (0.5, 0.5)), padded)


# -- engine -----------------------------------------------------------------------------------


def _subfilterModel(shape, rng, sigma, numSubfilters=3):
    models = []
    for _ in range(numSubfilters):
        sources = [
            (rng.uniform(16, shape[0] - 16), rng.uniform(16, shape[1] - 16), rng.uniform(5, 50))
            for _ in range(6)
        ]
        models.append(renderGaussians(shape, sources, sigma))
    return models


def test_engine_template_is_sum_of_shifted_subfilters():
    rng = np.random.default_rng(5)
    shape = (64, 72)
    models = _subfilterModel(shape, rng, 2.5 * SIGMA_PER_FWHM)
    dcr = [((1.1, -0.6), (0.7, -0.3)), ((0.7, -0.3), (0.2, 0.1)), ((0.2, 0.1), (-0.4, 0.5))]
    engine = FourierTemplateEngine(models, maxShift=2.0)
    padded = engine.paddedShape
    for mode in ("mean", "split", "smear"):
        template = engine.buildTemplate(dcr, mode=mode)
        # one image at a time, on the same grid: equal to rounding
        expected = sum(
            applyTransfer(m, subfilterTransfer(padded, d, mode), padded)
            for m, d in zip(models, dcr, strict=True)
        )
        np.testing.assert_allclose(template, expected, atol=1e-12 * template.max())
        np.testing.assert_allclose(
            engine.buildTemplateFromTransfers(engine.transfers(dcr, mode)), template, atol=1e-13
        )
        # on another padded grid only the far tails of the interpolation kernel differ
        other = sum(fourierShift(m, d, mode=mode) for m, d in zip(models, dcr, strict=True))
        assert np.abs(other - template).max() < 1e-4 * template.max()
    # And against the spline engine (mean shifts), at FWHM 5 px where the spline is accurate.
    models5 = _subfilterModel(shape, rng, 5.0 * SIGMA_PER_FWHM)
    engine.setModel(models5)
    template = engine.buildTemplate(dcr, mode="mean")
    spline = sum(
        ndimage.shift(m, np.mean(d, axis=0), order=3, mode="nearest")
        for m, d in zip(models5, dcr, strict=True)
    )
    assert np.abs(template - spline)[INNER].max() < 1e-3 * spline.max()


def test_engine_agrees_with_package_spline_engine_split():
    from dcrmodel.model.shift import applyDcr

    rng = np.random.default_rng(11)
    shape = (64, 64)
    models = _subfilterModel(shape, rng, 5.0 * SIGMA_PER_FWHM)
    dcr = [((1.4, 0.9), (0.8, 0.5)), ((0.8, 0.5), (0.1, 0.1)), ((0.1, 0.1), (-0.6, -0.4))]
    engine = FourierTemplateEngine(models, maxShift=maxShiftOf(dcr))
    template = engine.buildTemplate(dcr, mode="split")
    spline = sum(applyDcr(m, d, splitSubfilters=True) for m, d in zip(models, dcr, strict=True))
    assert np.abs(template - spline)[INNER].max() < 1e-3 * spline.max()


def test_engine_cache_is_reused_invalidated_and_detects_in_place_changes():
    rng = np.random.default_rng(7)
    shape = (40, 44)
    models = [m.astype(np.float32) for m in _subfilterModel(shape, rng, 1.5)]
    engine = FourierTemplateEngine(models, maxShift=1.0)
    dcr = [(0.5, 0.2), (0.0, 0.0), (-0.5, -0.2)]
    first = engine.buildTemplate(dcr, mode="mean")
    assert first.dtype == np.float32
    cached = engine.modelTransforms
    assert engine.modelTransforms is cached  # reused, not recomputed
    models[1] *= 2.0  # in place: the engine notices and recomputes
    second = engine.buildTemplate(dcr, mode="mean")
    expected = sum(fourierShift(m, d) for m, d in zip(models, dcr, strict=True))
    np.testing.assert_allclose(second, expected, atol=1e-5 * expected.max())
    assert engine.modelTransforms is not cached
    engine.invalidate()
    np.testing.assert_allclose(engine.buildTemplate(dcr, mode="mean"), second, atol=1e-6)


def test_engine_masked_model_pixels_do_not_leak_nans():
    rng = np.random.default_rng(9)
    shape = (48, 50)
    models = _subfilterModel(shape, rng, 1.5)
    bad = np.zeros(shape, dtype=bool)
    bad[20:24, 10:13] = True
    for m in models:
        m[bad] = np.nan
    with pytest.raises(DcrValueError, match="NaN or infinite values at unmasked pixels"):
        FourierTemplateEngine(models, maxShift=1.0)
    engine = FourierTemplateEngine(models, maxShift=2.0, badMask=bad)
    dcr = [((1.5, 0.0), (1.0, 0.0)), ((1.0, 0.0), (0.5, 0.0)), ((0.5, 0.0), (0.0, 0.0))]
    template = engine.buildTemplate(dcr)
    assert np.all(np.isfinite(template))
    affected = engine.templateBadMask(dcr)
    assert affected[bad].all()
    assert affected[25, 11]  # moved down by up to 1.5 px (+1 px interpolation)
    assert not affected[30:, :].any() and not affected[:, 20:].any()


def test_engine_extra_transfer_and_errors():
    rng = np.random.default_rng(13)
    shape = (32, 36)
    models = _subfilterModel(shape, rng, 1.5, numSubfilters=2)
    engine = FourierTemplateEngine(models, maxShift=1.0)
    dcr = [(0.3, 0.0), (-0.3, 0.0)]
    # An extra transfer that is itself a shift moves the whole template.
    extra = shiftTransfer(engine.paddedShape, (2.0, -1.0))
    moved2 = engine.buildTemplate(dcr, mode="mean", extraTransfers=extra)
    expected = fourierShift(engine.buildTemplate(dcr, mode="mean"), (2.0, -1.0))
    np.testing.assert_allclose(moved2[INNER], expected[INNER], atol=1e-10)
    with pytest.raises(DcrShapeError, match="extraTransfers"):
        engine.buildTemplate(dcr, mode="mean", extraTransfers=np.ones((3, 3)))
    with pytest.raises(DcrValueError, match="exceed the padding"):
        engine.buildTemplate([(30.0, 0.0), (0.0, 0.0)], mode="mean")
    with pytest.raises(DcrShapeError, match="one entry per model subfilter"):
        engine.buildTemplate([(0.0, 0.0)], mode="mean")
    with pytest.raises(DcrShapeError, match="same shape"):
        FourierTemplateEngine([np.zeros((4, 4)), np.zeros((4, 5))], maxShift=1.0)
    with pytest.raises(DcrTypeError, match="float32 or float64"):
        FourierTemplateEngine([np.zeros((4, 4), dtype=int)], maxShift=1.0)
    with pytest.raises(DcrValueError, match="no subfilter images"):
        FourierTemplateEngine([], maxShift=1.0)
    with pytest.raises(DcrShapeError, match="badMask must have the model's shape"):
        FourierTemplateEngine(models, maxShift=1.0, badMask=np.zeros((3, 3), dtype=bool))
    assert "FourierTemplateEngine(numSubfilters=2" in repr(engine)


def test_dcr_shift_array_forms():
    edges = [((0.1, 0.2), (0.3, 0.4)), ((0.3, 0.4), (0.5, 0.6))]
    assert dcrShiftArray(edges).shape == (2, 2, 2)
    single = dcrShiftArray([(0.1, 0.2), (0.3, 0.4)], mode="mean")
    np.testing.assert_array_equal(single[:, 0], single[:, 1])
    with pytest.raises(DcrValueError, match="needs the two edge shifts"):
        dcrShiftArray([(0.1, 0.2), (0.3, 0.4)], mode="split")
    with pytest.raises(DcrTypeError, match="one DCR per subfilter"):
        dcrShiftArray([((0.1, 0.2), (0.3, 0.4)), (0.5,)])
    with pytest.raises(DcrShapeError, match="one DCR per subfilter"):
        dcrShiftArray(np.zeros((2, 3, 2)))


def test_fill_bad_pixels_nearest():
    array = np.arange(12.0).reshape(3, 4)
    bad = np.zeros((3, 4), dtype=bool)
    bad[1, 1] = True
    array[1, 1] = np.nan
    filled = fillBadPixels(array, bad)
    assert np.isfinite(filled).all() and filled[1, 1] in (1.0, 4.0, 6.0, 9.0)
    with pytest.raises(DcrValueError, match="every pixel is masked"):
        fillBadPixels(array, np.ones((3, 4), dtype=bool))


def test_engine_set_model_new_shape():
    engine = FourierTemplateEngine([np.zeros((10, 12))], maxShift=1.0)
    engine.setModel([np.ones((20, 16)), np.ones((20, 16))])
    assert engine.shape == (20, 16) and engine.numSubfilters == 2
    template = engine.buildTemplate([(0.3, 0.1), (-0.3, 0.0)], mode="mean")
    np.testing.assert_allclose(template, 2.0, atol=1e-12)  # flat sky stays flat (edge padding)
