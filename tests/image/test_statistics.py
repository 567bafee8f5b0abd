"""Tests of dcrmodel.image.statistics: `StatisticsControl`.

References used: ``astropy.stats.sigma_clipped_stats`` for the clipped statistics.
"""

import math

import numpy as np
import pytest
from astropy.stats import sigma_clipped_stats

from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.image.geometry import Box
from dcrmodel.image.pixels import Image, Mask
from dcrmodel.image.statistics import StatisticsControl

# ----------------------------------------------------------------------------------------
# StatisticsControl
# ----------------------------------------------------------------------------------------


def test_statistics_against_astropy():
    rng = np.random.default_rng(42)
    data = rng.normal(10.0, 2.0, size=(60, 70))
    data[5:8, 5:8] = 500.0  # a bright source to clip
    data[40, :] += 25.0
    for numSigma, numIter in ((3.0, 2), (2.5, 5), (4.0, 1)):
        ctrl = StatisticsControl(numSigmaClip=numSigma, numIter=numIter)
        mean, std = ctrl.clippedStats(data)
        refMean, _, refStd = sigma_clipped_stats(data, sigma=numSigma, maxiters=numIter)
        assert mean == pytest.approx(refMean, rel=1e-12)
        assert std == pytest.approx(refStd, rel=1e-12)
    # No clipping: plain mean and std.
    mean, std = StatisticsControl(numIter=0).clippedStats(data)
    assert mean == pytest.approx(data.mean()) and std == pytest.approx(data.std())


def test_statistics_masks():
    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 1.0, size=(30, 30))
    mask = Mask.fromBox(Box(0, 0, 30, 30))
    mask.array[:10, :] = mask.getPlaneBitMask("BAD")
    mask.array[10:12, :] = mask.getPlaneBitMask("DETECTED")  # not a bad plane
    data[:10, :] = 1e6
    data[20, 20] = np.nan
    ctrl = StatisticsControl()
    assert ctrl.getAndMask(mask) == mask.getPlaneBitMask(["BAD", "SAT", "NO_DATA", "EDGE", "CR"])
    good = data[10:, :][np.isfinite(data[10:, :])]
    refMean, _, refStd = sigma_clipped_stats(good, sigma=3.0, maxiters=2)
    for result in (
        ctrl.clippedStats(data, mask=mask),
        ctrl.clippedStats(Image(data), maskArray=mask.array),
    ):
        assert result == pytest.approx((refMean, refStd), rel=1e-12)
    # Planes the mask does not define are skipped.
    sparse = Mask.fromBox(Box(0, 0, 2, 2), planes={"BAD": 3, "DETECTED": 0})
    assert StatisticsControl().getAndMask(sparse) == 8
    allBad = np.full(data.shape, 1, np.int32)
    assert all(math.isnan(v) for v in ctrl.clippedStats(data, maskArray=allBad))
    with pytest.raises(DcrShapeError, match="array shape"):
        ctrl.clippedStats(data, maskArray=np.zeros((3, 3), np.int32))
    with pytest.raises(DcrValueError, match="not both"):
        ctrl.clippedStats(data, maskArray=mask.array, mask=mask)
    with pytest.raises(DcrValueError, match="numSigmaClip must be positive"):
        StatisticsControl(numSigmaClip=0)
    with pytest.raises(DcrValueError, match="numIter must be >= 0"):
        StatisticsControl(numIter=-1)


def test_afw_style_setters_and_getters():
    from dcrmodel.image import Box, Mask

    ctrl = StatisticsControl()
    ctrl.setNumSigmaClip(4.0)
    ctrl.setNumIter(5)
    assert (ctrl.getNumSigmaClip(), ctrl.getNumIter()) == (4.0, 5)
    mask = Mask.fromBox(Box(0, 0, 2, 1))
    ctrl.setAndMask(mask.getPlaneBitMask(["BAD", "CR"]))
    assert ctrl.badMaskPlanes == ("BAD", "CR")
    assert ctrl.getAndMask() == mask.getPlaneBitMask(["BAD", "CR"])
    assert ctrl.getAndMask(mask) == mask.getPlaneBitMask(["BAD", "CR"])
    ctrl.setAndMask(["SAT"])
    assert ctrl.badMaskPlanes == ("SAT",)
    with pytest.raises(DcrValueError, match="sets bits that no default mask plane has"):
        ctrl.setAndMask(1 << 30)
    for name in ("NanSafe", "Weighted", "CalcErrorFromInputVariance"):
        getattr(ctrl, f"set{name}")(True)
        assert getattr(ctrl, f"get{name}")() is True
        with pytest.raises(DcrTypeError, match="must be True or False"):
            getattr(ctrl, f"set{name}")(1)
    with pytest.raises(DcrValueError, match="numIter must be >= 0"):
        ctrl.setNumIter(-1)


def test_nan_safety_weighting_and_error_from_input_variance():
    values = np.array([1.0, 2.0, 3.0, np.nan])
    variance = np.array([1.0, 4.0, 4.0, 1.0])
    ctrl = StatisticsControl(numIter=0)
    assert ctrl.clippedStats(values) == pytest.approx((2.0, np.std([1.0, 2.0, 3.0])))
    ctrl.setNanSafe(False)
    assert all(math.isnan(v) for v in ctrl.clippedStats(values))
    ctrl.setNanSafe(True)
    ctrl.setWeighted(True)
    # inverse-variance weights 1, 1/4, 1/4 on the finite pixels
    mean, _ = ctrl.clippedStats(values, variance=variance)
    assert mean == pytest.approx((1.0 + 2.0 / 4 + 3.0 / 4) / 1.5)
    ctrl.setCalcErrorFromInputVariance(True)
    _, noise = ctrl.clippedStats(values, variance=variance)
    assert noise == pytest.approx(math.sqrt(3.0))
