"""Tests of `DcrModel.regularizeModelFreq`: each subfilter a smooth colour times a reference.

The truth in these tests is what the method assumes of the sky: subfilter ``k`` is a
reference image times a colour that varies smoothly over the image. The errors added to it
are the ones the iterative assembly produces: oscillations between subfilters that cancel
in their sum (the directions the visits do not constrain), chromatic sidelobes beside a
source with alternating sign from one subfilter to the next, and noise.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dcrmodel.image import Box, Filter, Image, Mask, StatisticsControl
from dcrmodel.model import conditioning
from dcrmodel.model.core import DcrModel
from helpers import renderGaussians

BAND = Filter("g", 480.0, 150.0)
SHAPE = (64, 64)
SOURCES = [
    (20.3, 22.1, 3000.0),
    (40.2, 41.7, 5000.0),
    (15.0, 48.0, 1500.0),
    (50.0, 12.0, 2500.0),
    (33.0, 30.0, 2000.0),
]


def smoothColours(n, shape=SHAPE, amplitude=0.3):
    """Colours ``c_k(y, x)`` of ``n`` subfilters, varying slowly over the image, mean 1."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    slope = amplitude * np.cos(2 * np.pi * x / 64.0) * np.sin(2 * np.pi * y / 80.0 + 0.5)
    offsets = np.linspace(-1.0, 1.0, n)
    return [1.0 + slope * offset for offset in offsets]


def truthImages(n, shape=SHAPE):
    """True subfilter images: the reference sky split by smooth colours (their sum is the sky)."""
    sky = renderGaussians(shape, SOURCES, sigma=2.0)
    return sky, [sky / n * colour for colour in smoothColours(n, shape)]


def oscillation(shape, period, angle):
    """A pixel-scale wave of unit amplitude (an unconstrained direction of the solution)."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    phase = (x * np.cos(angle) + y * np.sin(angle)) / period
    return np.sin(2 * np.pi * phase)


def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def regularize(images, factor=4.0, width=2, statsCtrl=None, mask=None):
    """Regularize copies of ``images`` with a model made of them; return the new arrays.

    The model (whose images the method does not use) holds the finite part of the images.
    """
    model = DcrModel([Image(np.nan_to_num(a, posinf=0.0)) for a in images], filterInfo=BAND,
                     mask=mask)
    new = [a.copy() for a in images]
    model.regularizeModelFreq(
        new, model.bbox, statsCtrl or StatisticsControl(), factor, regularizationWidth=width
    )
    return new


@pytest.mark.parametrize("n", [3, 4, 5])
def test_everySubfilterMovesTowardsTheTruth(n):
    """Errors oscillating between subfilters, plus noise: every subfilter improves.

    The oscillations cancel in the sum over subfilters, as the unconstrained directions of
    the assembly do; two patterns across the subfilters (a tilt and a curvature) perturb
    the middle subfilter too. The rms error against the truth must fall below 0.6 of what
    it was in each subfilter (it falls to about 0.4).
    """
    sky, truth = truthImages(n)
    rng = np.random.default_rng(11)
    peak = sky.max() / n
    waves = [oscillation(SHAPE, 3.1, 0.6), oscillation(SHAPE, 4.3, 2.0)]
    # two patterns across the subfilters, each summing to zero: a tilt and a curvature,
    # so that the middle subfilter is perturbed as well
    k = np.arange(n) - (n - 1) / 2
    tilt = k / np.max(np.abs(k))
    curve = k**2 - np.mean(k**2)
    curve /= np.max(np.abs(curve))
    perturbed = [
        t
        + 0.04 * peak * (tilt[i] * waves[0] + curve[i] * waves[1]) * (sky > 0.01 * sky.max())
        + rng.normal(0.0, 0.5, SHAPE)
        for i, t in enumerate(truth)
    ]
    new = regularize(perturbed)
    for i in range(n):
        before = rms(perturbed[i] - truth[i])
        after = rms(new[i] - truth[i])
        assert after < 0.6 * before, (i, before, after)


def detectedMask(sky):
    mask = Mask.fromBox(Box.fromShape(SHAPE))
    mask.array[ndimage.binary_dilation(sky > 1.0, iterations=2)] = mask.getPlaneBitMask(
        "DETECTED"
    )
    return mask


@pytest.mark.parametrize(("width", "tolerance"), [(1, 0.025), (2, 0.06)])
def test_smoothColourIsKept(width, tolerance):
    """Without errors, a colour that varies slowly is kept on the sources.

    The sources are flagged DETECTED, so the noise level, and the offset, is 0. The ratio
    of the smoothed images is the colour averaged over the source's profile seen through
    the Gaussian: a colour that changes by up to 10 % across a source (period 64 pixels,
    amplitude 0.3) comes back within 2.5 % (width 1) or 6 % (width 2) on the bright pixels.
    """
    sky, truth = truthImages(3)
    new = regularize(truth, factor=4.0, width=width, mask=detectedMask(sky))
    bright = sky > 0.1 * sky.max()
    for t, m in zip(truth, new, strict=True):
        assert np.max(np.abs(m - t)[bright] / t[bright]) < tolerance


def sidelobes(n, kind):
    """A source and, in subfilter ``k``, a sidelobe of sign ``(-1)**k`` beside it."""
    centre = (31.5, 32.0)
    source = renderGaussians(SHAPE, [(centre[0], centre[1], 4000.0)], sigma=2.0) / n
    if kind == "copy":  # a displaced copy at half the flux, 5 pixels away
        lobe = renderGaussians(SHAPE, [(centre[0] + 5.0, centre[1], 2000.0)], sigma=2.0) / n
    else:  # a hole on one side of the source and a wing on the other, 1.5 pixels out
        lobe = renderGaussians(
            SHAPE,
            [(centre[0] + 1.5, centre[1], 2000.0), (centre[0] - 1.5, centre[1], -2000.0)],
            sigma=2.0,
        ) / n
    return source, lobe


@pytest.mark.parametrize("kind", ["copy", "dipole"])
@pytest.mark.parametrize("width", [1, 2])
@pytest.mark.parametrize("n", [3, 4])
def test_sidelobesAreReducedInEverySubfilter(n, width, kind):
    """The amplitude of the sidelobe in each subfilter (its projection on the lobe) falls.

    What the method cannot remove is the mean of the sidelobes, which the sum of the
    subfilters holds and the method keeps: a third of a lobe for three subfilters, none for
    four. A displaced copy 5 pixels out is a sharp change of colour at the scale of the
    smoothing and is mostly removed; a dipole 1.5 pixels across the source is a smoother
    colour gradient and is reduced less, and less with the narrower smoothing.
    """
    source, lobe = sidelobes(n, kind)
    rng = np.random.default_rng(5)
    images = [
        source + (-1) ** k * lobe + rng.normal(0.0, 0.3, SHAPE) for k in range(n)
    ]
    new = regularize(images, width=width)
    norm = float(np.sum(lobe * lobe))
    remaining = abs(sum((-1) ** j for j in range(n))) / n
    for k in range(n):
        before = float(np.sum((images[k] - source) * lobe)) / norm
        after = float(np.sum((new[k] - source) * lobe)) / norm
        assert abs(before) > 0.95
        assert abs(after) < {"copy": 0.6, "dipole": 0.75}[kind] * abs(before), (k, before, after)
        if kind == "copy":
            assert abs(after - remaining) < 0.3 * abs(before - remaining), (k, before, after)


def test_sumOverSubfiltersIsKept(monkeypatch):
    """The sum over subfilters is unchanged to rounding, where the clamp acts and elsewhere.

    The colour ratios ``q_k`` are normalized to sum to ``N`` at every pixel and the unsharp
    mask is linear and keeps a constant, so ``sum_k r q'_k = N r`` exactly in exact
    arithmetic. What remains is float64 rounding in the Gaussian filters and the divisions,
    a few times 1e-16 relative per operation: the tolerance, 1e-12 of the peak, leaves a
    factor of about 1000 for it. The clamp is checked to have acted (the sidelobes are
    clamped), so that the sum is tested where it acts too.
    """
    clamped = []
    original = conditioning.applyImageThresholds

    def recording(image, highThreshold=None, lowThreshold=None, regularizationWidth=2):
        before = np.array(image, copy=True)
        original(image, highThreshold, lowThreshold, regularizationWidth)
        clamped.append(image != before)

    monkeypatch.setattr(conditioning, "applyImageThresholds", recording)
    n = 3
    source, lobe = sidelobes(n, "copy")
    sky, truth = truthImages(n)
    rng = np.random.default_rng(2)
    images = [t + source + (-1) ** k * lobe + rng.normal(0.0, 0.5, SHAPE) for k, t in
              enumerate(truth)]
    new = regularize(images)
    acted = np.logical_or.reduce(clamped)
    assert acted.sum() > 20
    peak = float(np.max(np.abs(sum(images))))
    difference = np.abs(sum(new) - sum(images))
    assert np.max(difference) < 1e-12 * peak
    # and the subfilters did change, well beyond rounding, where the clamp did not act
    assert np.max(np.abs(new[0] - images[0])[~acted]) > 1e-3 * peak


def test_sumOverSubfiltersIsKeptInSinglePrecision():
    """float32 images: the sum is kept to the images' own rounding (1e-6 of the peak).

    The method computes in float64 and stores in float32: each subfilter is rounded to
    2**-24 (6e-8) of its value, so the sum of three differs from the input sum by at most
    a few times 6e-8 of the peak; 1e-6 allows for the input's own float32 rounding too.
    """
    sky, truth = truthImages(3)
    rng = np.random.default_rng(3)
    images = [(t + rng.normal(0.0, 0.5, SHAPE)).astype(np.float32) for t in truth]
    model = DcrModel([Image(a.copy()) for a in images], filterInfo=BAND)
    new = [Image(a.copy()) for a in images]
    model.regularizeModelFreq(new, model.bbox, None, 4.0)
    assert all(image.array.dtype == np.float32 for image in new)
    total = sum(image.array.astype(np.float64) for image in new)
    reference = sum(a.astype(np.float64) for a in images)
    assert np.max(np.abs(total - reference)) < 1e-6 * np.max(np.abs(reference))


def test_subRegionImagesAndArrays():
    """Images over the model's box are changed inside ``bbox`` only; arrays cover ``bbox``."""
    sky, truth = truthImages(3)
    rng = np.random.default_rng(4)
    images = [t + rng.normal(0.0, 0.5, SHAPE) for t in truth]
    model = DcrModel([Image(a.copy()) for a in images], filterInfo=BAND)
    sub = Box(10, 8, 40, 44)
    onModelBox = [Image(a.copy()) for a in images]
    model.regularizeModelFreq(onModelBox, sub, None, 4.0)
    cut = [a[sub.slices(model.bbox)].copy() for a in images]
    model.regularizeModelFreq(cut, sub, None, 4.0)
    inside = np.zeros(SHAPE, dtype=bool)
    inside[sub.slices(model.bbox)] = True
    for image, array, original in zip(onModelBox, cut, images, strict=True):
        np.testing.assert_array_equal(image.array[~inside], original[~inside])
        np.testing.assert_array_equal(image.array[inside].reshape(sub.shape), array)
        assert not np.array_equal(array, original[sub.slices(model.bbox)])


def test_oneSubfilterIsLeftAlone():
    sky, _ = truthImages(1)
    model = DcrModel([Image(sky.copy())], filterInfo=BAND)
    new = [sky + 1.0]
    model.regularizeModelFreq(new, model.bbox, None, 4.0)
    np.testing.assert_array_equal(new[0], sky + 1.0)


def test_nonFinitePixelsStayAndDoNotSpread():
    sky, truth = truthImages(3)
    images = [t.copy() for t in truth]
    images[1][30, 30] = np.nan
    images[2][5, 60] = np.inf
    new = regularize(images)
    assert np.isnan(new[1][30, 30]) and np.isinf(new[2][5, 60])
    # the other subfilters are finite everywhere, and so is every other pixel
    finite = np.ones(SHAPE, dtype=bool)
    finite[30, 30] = finite[5, 60] = False
    for m in new:
        assert np.all(np.isfinite(m[finite]))


def test_noiselessAndEmptyImages():
    """Without noise the offset is 0: no division by zero, and an empty sky stays empty."""
    zeros = [np.zeros((20, 20)) for _ in range(3)]
    new = regularize(zeros)
    for m in new:
        np.testing.assert_array_equal(m, 0.0)
    sky, truth = truthImages(3)
    support = sky > 1e-3
    truth = [t * support for t in truth]  # a background of exact zeros
    mask = Mask.fromBox(Box.fromShape(SHAPE))
    mask.array[support] = mask.getPlaneBitMask("DETECTED")
    model = DcrModel([Image(t.copy()) for t in truth], filterInfo=BAND, mask=mask)
    assert model.calculateNoiseCutoff(truth[0], None, 5) == 0.0
    new = regularize(truth, mask=mask)
    bright = sky > 0.1 * sky.max()
    for t, m in zip(truth, new, strict=True):
        assert np.all(np.isfinite(m))
        assert np.max(np.abs(m - t)[bright] / t[bright]) < 0.06


def test_sourcesFlaggedDetectedAreExcludedFromTheNoise():
    """The noise level, and so the offset, is measured off the DETECTED pixels."""
    sky, truth = truthImages(3)
    rng = np.random.default_rng(6)
    images = [t + rng.normal(0.0, 0.5, SHAPE) for t in truth]
    flagged = regularize(images, mask=detectedMask(sky))
    everything = Mask.fromBox(Box.fromShape(SHAPE))
    everything.array[:] = everything.getPlaneBitMask("DETECTED")
    model = DcrModel([Image(a.copy()) for a in images], filterInfo=BAND, mask=everything)
    with pytest.raises(ValueError, match="no background pixels"):
        model.regularizeModelFreq([a.copy() for a in images], model.bbox, None, 4.0)
    for t, before, after in zip(truth, images, flagged, strict=True):
        assert rms(after - t) < rms(before - t)
