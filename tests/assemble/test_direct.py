"""Tests of dcrmodel.assemble.direct: the per-frequency least-squares DCR model.

The data are simulated independently of the solver: point sources rendered analytically
(pixel-integrated Gaussians, erf) at every one of many wavelength samples across the band, each
sample displaced along the visit's zenith direction by a differential refraction linear in
wavelength (the continuous truth that an N-subfilter model approximates). Subfilter truths are
the same sources unshifted, with the flux of each subfilter's wavelength range.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import ndimage
from scipy.special import erf

from dcrmodel.assemble.direct import (
    DEFAULT_REGULARIZATION,
    regularizerMatrix,
    solveDirect,
    solveDirectFromShifts,
    visitWeights,
)
from dcrmodel.assemble.workspace import ArrayPool
from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError, DcrWarning
from dcrmodel.fourier import (
    FourierTemplateEngine,
    applyTransfer,
    maxShiftOf,
    paddedShape,
    visitTransfers,
)

SIGMA_PER_FWHM = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
N = 3
SHAPE = (64, 64)


def profile(n, centre, sigma):
    x = np.arange(n)
    r = np.sqrt(2.0) * sigma
    return 0.5 * (erf((x + 0.5 - centre) / r) - erf((x - 0.5 - centre) / r))


def bandShift(span, angle, t):
    """DCR at band coordinate t in [0, 1] (0 = blue edge): linear in wavelength, along angle."""
    return span * (0.5 - t) * np.array([np.cos(angle), np.sin(angle)])


def edgeShifts(span, angle, n=N):
    t = np.linspace(0.0, 1.0, n + 1)
    return [
        (tuple(bandShift(span, angle, t[k])), tuple(bandShift(span, angle, t[k + 1])))
        for k in range(n)
    ]


def renderVisit(sources, sigma, span, angle, samples=40, shape=SHAPE):
    """Continuous-spectrum rendering: each source summed over `samples` wavelengths."""
    t = (np.arange(samples) + 0.5) / samples
    out = np.zeros(shape)
    for y0, x0, spectrum in sources:
        weights = spectrum(t) / samples
        for ti, wi in zip(t, weights, strict=True):
            dy, dx = bandShift(span, angle, ti)
            out += wi * np.outer(
                profile(shape[0], y0 + dy, sigma), profile(shape[1], x0 + dx, sigma)
            )
    return out


def subfilterTruth(sources, sigma, samples=600, shape=SHAPE):
    out = np.zeros((N, *shape))
    t = (np.arange(samples) + 0.5) / samples
    for y0, x0, spectrum in sources:
        image = np.outer(profile(shape[0], y0, sigma), profile(shape[1], x0, sigma))
        weights = spectrum(t) / samples
        for k in range(N):
            inside = (t >= k / N) & (t < (k + 1) / N)
            out[k] += weights[inside].sum() * image
    return out


def template(modelArrays, span, angle, mode="smear"):
    engine = FourierTemplateEngine(modelArrays, maxShift=maxShiftOf(edgeShifts(span, angle)))
    return engine.buildTemplate(edgeShifts(span, angle), mode=mode)


def boxSpectrum(k, flux):
    return lambda t: flux * N * ((t >= k / N) & (t < (k + 1) / N))


# Training visits: zenith directions on both sides of the meridian, DCR spans 0.5-4 px across
# the band; held-out visits at large spans.
TRAIN_SPANS = np.array([0.6, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 0.8, 1.8, 2.8, 3.8])
TRAIN_ANGLES = np.array([0.3, -0.4, 0.9, -1.0, 0.2, -0.2, 1.1, -0.8, -1.2, 0.6, -0.6, 0.0])
HELD_OUT = [(3.9, 0.45), (3.5, -0.7), (2.5, 0.0)]


@pytest.fixture(scope="module")
def boxScene():
    """Distinct point sources in each subfilter (flat spectra inside one subfilter only)."""
    rng = np.random.default_rng(2026)
    sigma = 2.5 * SIGMA_PER_FWHM
    sources = []
    for k in range(N):
        for _ in range(3):
            sources.append(
                (rng.uniform(12, 52), rng.uniform(12, 52), boxSpectrum(k, rng.uniform(50, 200)))
            )
    visits = np.array(
        [
            renderVisit(sources, sigma, s, a, samples=300)
            for s, a in zip(TRAIN_SPANS, TRAIN_ANGLES, strict=True)
        ]
    )
    held = [renderVisit(sources, sigma, s, a, samples=300) for s, a in HELD_OUT]
    dcr = [edgeShifts(s, a) for s, a in zip(TRAIN_SPANS, TRAIN_ANGLES, strict=True)]
    return {
        "sigma": sigma,
        "sources": sources,
        "visits": visits,
        "held": held,
        "dcr": dcr,
        "truth": subfilterTruth(sources, sigma),
    }


def unitInputs(visits):
    return np.ones_like(visits), np.zeros(visits.shape, dtype=bool)


INNER = (slice(6, -6), slice(6, -6))


# -- forward model --------------------------------------------------------------------------


def test_transfers_reproduce_independent_rendering(boxScene):
    """The smear forward model of the subfilter truths equals the dense rendering of the visit."""
    truth = boxScene["truth"]
    peak = truth.max()
    for (span, angle), observed in zip(HELD_OUT, boxScene["held"], strict=True):
        dcr = edgeShifts(span, angle)
        padded = paddedShape(SHAPE, maxShiftOf(dcr))
        transfers = visitTransfers(padded, dcr, "smear")
        model = sum(applyTransfer(truth[k], transfers[k], padded) for k in range(N))
        # 300-sample rendering vs exact smear: ~1e-4 of the peak.
        assert np.abs(model - observed)[INNER].max() < 1e-3 * peak
        # the mean shift misses the smear by far more
        mean = sum(
            applyTransfer(truth[k], t, padded)
            for k, t in enumerate(visitTransfers(padded, dcr, "mean"))
        )
        assert np.abs(mean - observed)[INNER].max() > 10 * np.abs(model - observed)[INNER].max()


def test_spline_forward_model_recovered_with_mean_mode():
    """Visits made with scipy.ndimage.shift (mean shifts) of well-sampled subfilter images."""
    rng = np.random.default_rng(5)
    sigma = 5.0 * SIGMA_PER_FWHM
    truth = np.zeros((N, *SHAPE))
    for k in range(N):
        for _ in range(3):
            y0, x0 = rng.uniform(14, 50, size=2)
            truth[k] += rng.uniform(100, 300) * np.outer(
                profile(64, y0, sigma), profile(64, x0, sigma)
            )
    dcr = [edgeShifts(s, a) for s, a in zip(TRAIN_SPANS, TRAIN_ANGLES, strict=True)]
    visits = np.array(
        [
            sum(
                ndimage.shift(truth[k], np.mean(d[k], axis=0), order=3, mode="nearest")
                for k in range(N)
            )
            for d in dcr
        ]
    )
    variances, bad = unitInputs(visits)
    solution = solveDirectFromShifts(visits, variances, bad, dcr, mode="mean", regularization=1e-8)
    peak = truth.max()
    # Broad sources carry little power where the subfilters' phases differ, so the subfilter
    # images are recovered to ~2.5 % of the peak, and templates far better.
    assert np.abs(solution.modelArrays - truth)[(slice(None), *INNER)].max() < 0.04 * peak
    span, angle = HELD_OUT[0]
    heldTruth = sum(
        ndimage.shift(
            truth[k], np.mean(edgeShifts(span, angle)[k], axis=0), order=3, mode="nearest"
        )
        for k in range(N)
    )
    heldTemplate = template(solution.modelArrays, span, angle, mode="mean")
    assert np.abs(heldTemplate - heldTruth)[INNER].max() < 1e-3 * peak


# -- recovery ----------------------------------------------------------------------------------


def test_small_lambda_noiseless_recovers_truth(boxScene):
    visits = boxScene["visits"]
    truth = boxScene["truth"]
    variances, bad = unitInputs(visits)
    solution = solveDirectFromShifts(
        visits, variances, bad, boxScene["dcr"], regularization=1e-8, ridge=1e-12
    )
    peak = truth.max()
    assert solution.modelArrays.shape == (N, *SHAPE)
    # Each subfilter's own sources are recovered (flux in the right subfilter), to ~1 % of the peak.
    assert np.abs(solution.modelArrays - truth).max() < 0.015 * peak
    for k in range(N):
        for y0, x0, spectrum in boxScene["sources"]:
            inThisSubfilter = spectrum(np.array([(k + 0.5) / N]))[0] > 0
            value = solution.modelArrays[k, int(round(y0)), int(round(x0))]
            expected = truth[k, int(round(y0)), int(round(x0))]
            assert value == pytest.approx(expected, abs=0.015 * peak)
            if not inThisSubfilter:
                assert abs(value) < 0.015 * peak
    for (span, angle), held in zip(HELD_OUT, boxScene["held"], strict=True):
        assert np.abs(template(solution.modelArrays, span, angle) - held)[INNER].max() < 1e-3 * peak
    assert np.all(solution.visitResiduals < 1e-2)  # reduced chi against unit variance
    assert solution.conditionNumbers["max"] > solution.conditionNumbers["median"] >= 1.0


def _noisyRun(boxScene, sigmaNoise, seed, **kwargs):
    """Solve the noisy scene and the same scene without noise (the solver is linear in the data,
    so their difference is the propagated noise and the noiseless solve's error the bias)."""
    rng = np.random.default_rng(seed)
    clean = boxScene["visits"]
    noisy = clean + rng.normal(0.0, sigmaNoise, clean.shape)
    variances = np.full(clean.shape, sigmaNoise**2)
    bad = np.zeros(clean.shape, dtype=bool)
    solutions = [
        solveDirectFromShifts(v, variances, bad, boxScene["dcr"], **kwargs) for v in (noisy, clean)
    ]
    return noisy, solutions


def test_noisy_held_out_templates_systematics_far_below_noise(boxScene):
    sigmaNoise = 0.2
    _, (solution, noiseless) = _noisyRun(boxScene, sigmaNoise, 17)
    coadd = boxScene["visits"].mean(axis=0)
    for (span, angle), held in zip(HELD_OUT, boxScene["held"], strict=True):
        total = template(solution.modelArrays, span, angle) - held
        bias = np.sqrt(np.mean((template(noiseless.modelArrays, span, angle) - held)[INNER] ** 2))
        # The systematic part is << the noise of one visit (measured 0.016 sigma at most)...
        assert bias < 0.05 * sigmaNoise
        # ... and the propagated noise is that of a least-squares fit of N subfilters to J
        # visits: sqrt(N / J) = 0.5 sigma inside the training range, a little more beyond it.
        assert np.sqrt(np.mean(total[INNER] ** 2)) < 0.75 * sigmaNoise
        # The plain coadd's DCR mismatch is 30x (measured ~100x) larger than the model's.
        assert np.sqrt(np.mean((coadd - held)[INNER] ** 2)) > 30 * bias
    # The visits fit to their noise: N of the J degrees of freedom per pixel go into the model,
    # so the mean reduced chi^2 is (J - N) / J = 0.75 (each visit by its own leverage).
    assert np.mean(solution.visitResiduals**2) == pytest.approx((12 - N) / 12, abs=0.03)
    assert np.all((solution.visitResiduals > 0.6) & (solution.visitResiduals < 1.0))
    np.testing.assert_allclose(solution.weights, 1.0 / sigmaNoise**2)


def test_lambda_stability_over_decades(boxScene):
    """Held-out templates are insensitive to lambda over a decade either side of the default."""
    sigmaNoise = 0.05  # peak signal-to-noise ~600 per visit
    span, angle = HELD_OUT[0]
    held = boxScene["held"][0]
    totals, biases = {}, {}
    for factor in (0.1, 1.0, 10.0):
        _, (solution, noiseless) = _noisyRun(
            boxScene, sigmaNoise, 23, regularization=factor * DEFAULT_REGULARIZATION
        )
        totals[factor] = np.sqrt(
            np.mean((template(solution.modelArrays, span, angle) - held)[INNER] ** 2)
        )
        biases[factor] = np.sqrt(
            np.mean((template(noiseless.modelArrays, span, angle) - held)[INNER] ** 2)
        )
    # measured total/sigma 0.656, 0.655, 0.691; bias/sigma 0.03, 0.06, 0.26
    for factor in totals:
        assert totals[factor] < 0.75 * sigmaNoise, factor
        assert abs(totals[factor] / totals[1.0] - 1.0) < 0.1, factor
    assert biases[0.1] < biases[1.0] < 0.1 * sigmaNoise < biases[10.0] < 0.5 * sigmaNoise
    # Far too much regularisation flattens the spectrum and the template degrades, so the
    # checks above can fail.
    _, (strong, _) = _noisyRun(boxScene, sigmaNoise, 23, regularization=1.0)
    strongRms = np.sqrt(np.mean((template(strong.modelArrays, span, angle) - held)[INNER] ** 2))
    assert strongRms > 2 * sigmaNoise


def test_zero_frequency_split_is_flat():
    """A uniform sky constrains only the sum of the subfilters: R splits it evenly."""
    visits = np.full((5, 24, 28), 9.0)
    variances, bad = unitInputs(visits)
    dcr = [
        edgeShifts(s, a) for s, a in [(1.0, 0.1), (2.0, -0.4), (0.5, 1.0), (3.0, 0.3), (1.5, -1.0)]
    ]
    solution = solveDirectFromShifts(visits, variances, bad, dcr)
    np.testing.assert_allclose(solution.modelArrays, 3.0, atol=1e-6)


def test_extra_transfer_psf_in_forward_model():
    """Visits seen through broader PSFs: the extra transfer (PSF ratio) recovers the sharp model."""
    rng = np.random.default_rng(29)
    modelSigma = 1.0
    visitSigma = np.linspace(1.0, 1.8, 12)
    sources = [
        (rng.uniform(12, 52), rng.uniform(12, 52), boxSpectrum(k, rng.uniform(80, 200)))
        for k in range(N)
        for _ in range(2)
    ]
    visits = np.array(
        [
            renderVisit(sources, s, span, angle, samples=120)
            for s, span, angle in zip(visitSigma, TRAIN_SPANS, TRAIN_ANGLES, strict=True)
        ]
    )
    dcr = [edgeShifts(s, a) for s, a in zip(TRAIN_SPANS, TRAIN_ANGLES, strict=True)]
    truth = subfilterTruth(sources, modelSigma)

    def psfRatio(j, padded):
        fy = np.fft.fftfreq(padded[0])[:, None]
        fx = np.fft.rfftfreq(padded[1])[None, :]
        extra = visitSigma[j] ** 2 - modelSigma**2
        return np.exp(-2 * np.pi**2 * extra * (fy**2 + fx**2))

    variances, bad = unitInputs(visits)
    solution = solveDirectFromShifts(
        visits, variances, bad, dcr, extraTransfers=psfRatio, psfSize=11, regularization=1e-7
    )
    assert np.abs(solution.modelArrays - truth)[(slice(None), *INNER)].max() < 0.03 * truth.max()
    unaware = solveDirectFromShifts(visits, variances, bad, dcr, regularization=1e-7)
    assert (
        np.abs(unaware.modelArrays - truth).max() > 3 * np.abs(solution.modelArrays - truth).max()
    )


# -- masks -------------------------------------------------------------------------------------


def test_masked_pixels_recovered_from_other_visits(boxScene):
    visits = boxScene["visits"].copy()
    variances, bad = unitInputs(visits)
    y0, x0, _ = boxScene["sources"][0]
    cy, cx = int(round(y0)), int(round(x0))
    bad[:4, cy - 3 : cy + 4, cx - 3 : cx + 4] = True  # a source core lost in 4 visits
    bad[5:8, :, 30] = True  # a bad column in 3 visits
    bad[:, 40:43, 2:6] = True  # no data anywhere
    visits[bad] = np.nan
    solution = solveDirectFromShifts(visits, variances, bad, boxScene["dcr"], regularization=1e-8)
    assert np.all(np.isfinite(solution.modelArrays))
    assert np.array_equal(solution.noDataMask, bad.all(axis=0))
    assert solution.noDataMask.sum() == 12
    # no data there: the model holds the neighbouring (empty) sky, stable and bounded
    peak = boxScene["truth"].max()
    assert np.abs(solution.modelArrays[:, 40:43, 2:6]).max() < 0.01 * peak
    clean = solveDirectFromShifts(
        boxScene["visits"], *unitInputs(boxScene["visits"]), boxScene["dcr"], regularization=1e-8
    )
    away = np.ones(SHAPE, dtype=bool)
    away[36:47, 0:10] = False  # near the no-data hole the model is unconstrained
    difference = np.abs(solution.modelArrays - clean.modelArrays)[:, away]
    assert difference.max() < 0.01 * peak
    span, angle = HELD_OUT[1]
    held = template(solution.modelArrays, span, angle)
    assert np.abs(held - boxScene["held"][1])[INNER][away[INNER]].max() < 2e-3 * peak
    # the refinement converged: model change of the last iteration is small
    assert solution.passChanges[-1] < 0.01


def test_masked_pixels_need_refinement(boxScene):
    """Without the conjugate-gradient refinement the coadd fill biases the masked source."""
    visits = boxScene["visits"].copy()
    variances, bad = unitInputs(visits)
    y0, x0, _ = boxScene["sources"][0]
    cy, cx = int(round(y0)), int(round(x0))
    bad[:4, cy - 3 : cy + 4, cx - 3 : cx + 4] = True
    span, angle = HELD_OUT[1]
    errors = []
    for passes in (0, 8):
        solution = solveDirectFromShifts(
            visits, variances, bad, boxScene["dcr"], regularization=1e-8, maskPasses=passes
        )
        held = template(solution.modelArrays, span, angle)
        errors.append(np.abs(held - boxScene["held"][1])[INNER].max())
    assert errors[1] < 0.1 * errors[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transfers_are_computed_once_when_they_fit(boxScene, dtype):
    """Kept transfers (default) and recomputed ones (transferCache=0) give the same model
    (identical in single precision, to rounding in double, the kept ones being single);
    with them kept, each visit's transfers are computed once, not in every pass."""
    visits = boxScene["visits"].astype(dtype)
    variances, bad = unitInputs(visits)
    bad[:, 20:24, 30:33] = True  # masked in every visit: the refinement runs
    bad[2, 40:45, 10:14] = True
    shifts = boxScene["dcr"]
    padded = paddedShape(SHAPE, maxShiftOf(shifts))
    calls = []

    def transfers(j, grid):
        calls.append(j)
        return visitTransfers(grid, np.asarray(shifts[j], dtype=float), "smear")

    results = {}
    for limit in (0, None):
        calls.clear()
        options = {} if limit is None else {"transferCache": limit}
        solution = solveDirect(visits, variances, bad, transfers, padded=padded, **options)
        assert solution.passChanges  # refinement passes happened
        results[limit] = (solution, sorted(calls))
    (recomputed, callsRecomputed), (kept, callsKept) = results[0], results[None]
    assert callsKept == list(range(len(visits)))
    assert len(callsRecomputed) > 2 * len(visits)
    if dtype == np.float32:
        np.testing.assert_array_equal(kept.modelArrays, recomputed.modelArrays)
        np.testing.assert_array_equal(kept.visitResiduals, recomputed.visitResiduals)
    else:
        scale = np.abs(recomputed.modelArrays).max()
        np.testing.assert_allclose(kept.modelArrays, recomputed.modelArrays, atol=1e-5 * scale)
        np.testing.assert_allclose(kept.visitResiduals, recomputed.visitResiduals, rtol=1e-5)


def test_transfer_cache_must_be_a_byte_count(boxScene):
    visits = boxScene["visits"]
    variances, bad = unitInputs(visits)
    with pytest.raises(DcrValueError, match="transferCache must be an int >= 0"):
        solveDirectFromShifts(visits, variances, bad, boxScene["dcr"], transferCache=-1)


def test_workspace_reuses_memory_between_solves(boxScene):
    """Solves sharing an ArrayPool give the same model as solves without one, and the second
    takes the first's transfer arrays instead of new ones."""
    visits = boxScene["visits"].astype(np.float32)
    variances, bad = unitInputs(visits)
    bad[2, 40:45, 10:14] = True
    pool = ArrayPool()
    alone = solveDirectFromShifts(visits, variances, bad, boxScene["dcr"])
    first = solveDirectFromShifts(visits, variances, bad, boxScene["dcr"], workspace=pool)
    handedBack = [id(a) for arrays in pool._free.values() for a in arrays]
    assert len(handedBack) == len(visits)
    taken = []
    original = pool.take

    def recordingTake(shape, dtype):
        array = original(shape, dtype)
        taken.append(id(array))
        return array

    pool.take = recordingTake
    second = solveDirectFromShifts(visits, variances, bad, boxScene["dcr"], workspace=pool)
    assert sorted(taken) == sorted(handedBack)
    for solution in (first, second):
        np.testing.assert_array_equal(solution.modelArrays, alone.modelArrays)
        np.testing.assert_array_equal(solution.visitResiduals, alone.visitResiduals)
    with pytest.raises(DcrTypeError, match="workspace must be a dcrmodel.*ArrayPool"):
        solveDirectFromShifts(visits, variances, bad, boxScene["dcr"], workspace={})
    # a pool sent to another process carries no arrays
    assert pickle.loads(pickle.dumps(pool))._free == {}


# -- continuous spectra: smear vs split vs mean ---------------------------------------------------


def test_subfilter_representation_ordering_on_continuous_spectra():
    """Sources with smooth spectra (exp(b (t - 1/2)), b in [-3, 3]) integrated over 40
    wavelengths: held-out template residual against the truth, smear <= split < mean."""
    rng = np.random.default_rng(3)
    sigma = 2.5 * SIGMA_PER_FWHM
    sources = []
    for _ in range(12):
        flux, slope = rng.uniform(50, 300), rng.uniform(-3, 3)
        sources.append(
            (
                rng.uniform(8, 56),
                rng.uniform(8, 56),
                lambda t, f=flux, b=slope: f * np.exp(b * (t - 0.5)),
            )
        )
    spans = rng.uniform(0.5, 5.0, 12)
    angles = rng.uniform(0.2, 1.2, 12) * np.where(np.arange(12) % 2, 1, -1)
    visits = np.array(
        [renderVisit(sources, sigma, s, a) for s, a in zip(spans, angles, strict=True)]
    )
    dcr = [edgeShifts(s, a) for s, a in zip(spans, angles, strict=True)]
    variances, bad = unitInputs(visits)
    heldOut = [(5.0, 0.9), (4.0, -0.5), (4.5, 0.0)]
    truths = [renderVisit(sources, sigma, s, a) for s, a in heldOut]
    residual = {}
    for mode in ("smear", "split", "mean"):
        solution = solveDirectFromShifts(visits, variances, bad, dcr, mode=mode)
        residual[mode] = np.array(
            [
                np.sqrt(
                    np.sum((template(solution.modelArrays, s, a, mode) - truth) ** 2)
                    / np.sum(truth**2)
                )
                for (s, a), truth in zip(heldOut, truths, strict=True)
            ]
        )
    coadd = visits.mean(axis=0)
    coaddResidual = np.array([np.sqrt(np.sum((coadd - t) ** 2) / np.sum(t**2)) for t in truths])
    # measured: smear 0.005-0.04, split 0.007-0.055, mean 0.014-0.12 of the coadd's residual
    assert np.all(residual["smear"] <= residual["split"])
    assert np.all(residual["split"] < residual["mean"])
    assert np.all(residual["smear"] < 0.05 * coaddResidual)
    assert np.all(residual["mean"] > 1.5 * residual["smear"])


# -- API: transfers as arrays, float32, weights, DcrModel ------------------------------------------


def test_transfer_array_and_callable_agree_and_float32(boxScene):
    visits = boxScene["visits"][:6]
    dcr = boxScene["dcr"][:6]
    variances, bad = unitInputs(visits)
    padded = paddedShape(SHAPE, maxShiftOf(dcr))
    stack = np.array([visitTransfers(padded, d, "smear") for d in dcr])
    fromArray = solveDirect(visits, variances, bad, stack, padded=padded, diagnostics=False)
    fromShifts = solveDirectFromShifts(visits, variances, bad, dcr, diagnostics=False)
    np.testing.assert_allclose(fromArray.modelArrays, fromShifts.modelArrays, atol=1e-10)
    assert fromArray.visitResiduals is None and fromArray.conditionNumbers == {}
    single = solveDirectFromShifts(
        visits.astype(np.float32), variances.astype(np.float32), bad, dcr, diagnostics=False
    )
    assert single.modelArrays.dtype == np.float32
    peak = fromShifts.modelArrays.max()
    np.testing.assert_allclose(single.modelArrays, fromShifts.modelArrays, atol=2e-4 * peak)


def test_visit_weights_and_explicit_weights():
    variances = np.stack([np.full((4, 5), 2.0), np.full((4, 5), 8.0)])
    bad = np.zeros(variances.shape, dtype=bool)
    bad[1, 0, :] = True
    variances[1, 0, :] = -1.0  # masked: ignored
    np.testing.assert_allclose(visitWeights(variances, bad), [0.5, 0.125])
    allBad = bad.copy()
    allBad[1] = True
    with pytest.warns(DcrWarning, match="weight 0"):
        assert visitWeights(variances, allBad)[1] == 0.0


def test_zero_weight_visit_is_ignored(boxScene):
    visits = boxScene["visits"][:6].copy()
    dcr = boxScene["dcr"][:6]
    variances, bad = unitInputs(visits)
    reference = solveDirectFromShifts(
        visits[:5], variances[:5], bad[:5], dcr[:5], diagnostics=False
    )
    visits[5] = 1e6  # garbage, but weight 0
    solution = solveDirectFromShifts(
        visits, variances, bad, dcr, weights=[1.0] * 5 + [0.0], diagnostics=False
    )
    np.testing.assert_allclose(solution.modelArrays, reference.modelArrays, atol=1e-9)


def test_ragged_shifts_rejected(boxScene):
    visits = boxScene["visits"][:2]
    variances, bad = unitInputs(visits)
    with pytest.raises(DcrTypeError, match="visit 1: dcrShifts must hold one DCR per subfilter"):
        solveDirectFromShifts(
            visits, variances, bad, [boxScene["dcr"][0], [((0, 0), (1, 1)), (2,)]]
        )
    with pytest.raises(DcrShapeError, match="same number of subfilters"):
        solveDirectFromShifts(visits, variances, bad, [boxScene["dcr"][0], boxScene["dcr"][1][:2]])


def test_to_dcr_model(boxScene):
    visits = boxScene["visits"][:4].copy()
    variances, bad = unitInputs(visits)
    bad[:, 0:2, 0:3] = True
    visits[bad] = np.nan
    solution = solveDirectFromShifts(visits, variances, bad, boxScene["dcr"][:4], maskPasses=2)
    model = solution.toDcrModel(filterInfo="g", origin=(100, 200))
    assert len(model) == N
    np.testing.assert_array_equal(model[1].array, solution.modelArrays[1])
    assert model.bbox.minX == 100 and model.bbox.minY == 200
    noData = model.mask.getPlaneBitMask("NO_DATA")
    assert np.array_equal((model.mask.array & noData) != 0, solution.noDataMask)


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_errors(boxScene):
    visits = boxScene["visits"][:4].copy()
    dcr = boxScene["dcr"][:4]
    variances, bad = unitInputs(visits)
    with pytest.raises(DcrShapeError, match="same"):
        solveDirectFromShifts(visits, variances[:, :10], bad, dcr)
    with pytest.raises(DcrTypeError, match="badMasks must be boolean"):
        solveDirectFromShifts(visits, variances, bad.astype(int), dcr)
    nan = visits.copy()
    nan[2, 5, 5] = np.nan
    with pytest.raises(
        DcrValueError, match="visit 2 has NaN or infinite pixels that are not masked"
    ):
        solveDirectFromShifts(nan, variances, bad, dcr)
    negative = variances.copy()
    negative[1, 3, 3] = 0.0
    with pytest.raises(DcrValueError, match="non-positive variance"):
        solveDirectFromShifts(visits, negative, bad, dcr)
    with pytest.raises(DcrValueError, match="non-finite weights"):
        solveDirectFromShifts(visits, variances, bad, dcr, weights=[1.0, np.inf, 1.0, 1.0])
    with pytest.raises(DcrShapeError, match="one number per visit"):
        solveDirectFromShifts(visits, variances, bad, dcr, weights=[1.0, 1.0])
    with pytest.raises(DcrValueError, match="every visit has weight 0"):
        solveDirectFromShifts(visits, variances, bad, dcr, weights=[0.0] * 4)
    with pytest.raises(DcrShapeError, match="one entry per visit"):
        solveDirectFromShifts(visits, variances, bad, dcr[:3])
    with pytest.raises(DcrValueError, match="unknown transfer mode"):
        solveDirectFromShifts(visits, variances, bad, dcr, mode="linear")
    single = [[np.mean(e, axis=0) for e in d] for d in dcr]
    with pytest.raises(DcrValueError, match="visit 0: mode 'smear' needs the two edge shifts"):
        solveDirectFromShifts(visits, variances, bad, single)
    with pytest.raises(DcrValueError, match="every pixel of every visit is masked"):
        solveDirectFromShifts(visits, variances, np.ones(visits.shape, dtype=bool), dcr)
    with pytest.raises(DcrValueError, match="regularization must be a finite number"):
        solveDirectFromShifts(visits, variances, bad, dcr, regularization=-1.0)
    with pytest.raises(DcrValueError, match="need padded"):
        solveDirect(visits, variances, bad, np.ones((4, N, 8, 5), complex))
    with pytest.raises(DcrValueError, match="give maxShift"):
        solveDirect(visits, variances, bad, lambda j, p: visitTransfers(p, dcr[j]))

    def broken(j, padded):
        out = visitTransfers(padded, dcr[j])
        out[0, 1, 1] = np.nan
        return out

    with pytest.raises(DcrValueError, match="transfers of visit 0 have NaN"):
        solveDirect(visits, variances, bad, broken, maxShift=maxShiftOf(dcr))
    with pytest.raises(DcrShapeError, match="must be .N, ny, nx // 2 \\+ 1. on the padded grid"):
        solveDirect(visits, variances, bad, lambda j, p: np.ones((N, 4, 4), complex), maxShift=2.0)


def test_regularizer_matrix():
    np.testing.assert_array_equal(
        regularizerMatrix("difference", 3), [[1, -1, 0], [-1, 2, -1], [0, -1, 1]]
    )
    np.testing.assert_array_equal(regularizerMatrix("identity", 2), np.eye(2))
    with pytest.raises(DcrValueError, match="unknown regularizer"):
        regularizerMatrix("smooth", 3)
    with pytest.raises(DcrValueError, match="positive semi-definite"):
        regularizerMatrix(-np.eye(3), 3)
    with pytest.raises(DcrShapeError, match="must be .N, N."):
        regularizerMatrix(np.eye(2), 3)


# -- with the package's own DCR ------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::dcrmodel.errors.DcrOfflineWarning")
def test_solve_with_calculate_dcr_shifts():
    """Shifts from dcrmodel.physics.dcr.calculateDcr (split: edge pairs) drive the solver
    directly."""
    from dcrmodel.physics.dcr import calculateDcr
    from helpers import makeVisitAndWcs

    effectiveWavelength, bandwidth = 477.0, 147.0  # g band, nm
    pointings = [
        (40, 80),
        (55, 120),
        (70, 150),
        (45, 250),
        (60, 210),
        (35, 290),
        (80, 100),
        (50, 300),
    ]
    rng = np.random.default_rng(31)
    sigma = 2.5 * SIGMA_PER_FWHM
    truth = np.zeros((N, *SHAPE))
    sources = []
    for k in range(N):
        for _ in range(2):
            y0, x0, flux = rng.uniform(14, 50), rng.uniform(14, 50), rng.uniform(80, 200)
            sources.append((k, y0, x0, flux))
            truth[k] += flux * np.outer(profile(64, y0, sigma), profile(64, x0, sigma))

    def observe(dcr, samples=100):
        out = np.zeros(SHAPE)
        t = (np.arange(samples) + 0.5) / samples
        for k, y0, x0, flux in sources:
            s0, s1 = np.asarray(dcr[k], dtype=float)
            for ti in t:
                dy, dx = s0 * (1 - ti) + s1 * ti
                out += (
                    flux
                    / samples
                    * np.outer(profile(64, y0 + dy, sigma), profile(64, x0 + dx, sigma))
                )
        return out

    allShifts = []
    for elevation, azimuth in pointings + [(38, 200)]:
        visitInfo, wcs = makeVisitAndWcs(
            elevation=elevation, azimuth=azimuth, rotation=30.0, shape=SHAPE
        )
        split = calculateDcr(
            visitInfo, wcs, effectiveWavelength, bandwidth, N, splitSubfilters=True
        )
        mean = calculateDcr(visitInfo, wcs, effectiveWavelength, bandwidth, N)
        # the contract mode="mean" relies on: the unsplit shift is the mean of the two edges
        np.testing.assert_allclose(np.mean(np.asarray(split), axis=1), np.asarray(mean), atol=1e-6)
        allShifts.append(split)
    visits = np.array([observe(d) for d in allShifts[:-1]])
    variances, bad = unitInputs(visits)
    solution = solveDirectFromShifts(visits, variances, bad, allShifts[:-1])
    engine = FourierTemplateEngine(solution.modelArrays, maxShift=maxShiftOf(allShifts))
    held = observe(allShifts[-1])
    assert np.abs(engine.buildTemplate(allShifts[-1]) - held)[INNER].max() < 2e-3 * truth.max()
