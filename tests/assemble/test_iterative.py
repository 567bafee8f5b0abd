"""Tests of dcrmodel.assemble.iterative: the progressive gain of the iterative solver.

The iterations themselves are tested through the task (test_task.py).
"""

import pytest

from dcrmodel.assemble.iterative import calculateGain
from dcrmodel.errors import DcrValueError


def test_calculate_gain():
    # Not progressive, or too little history: the base gain.
    assert calculateGain([1.0], [], 0.5, True) == 0.5
    assert calculateGain([1.0, 0.6], [0.5], 0.5, True) == 0.5
    assert calculateGain([1.0, 0.6, 0.4], [0.5, 0.5], 0.5, False) == 0.5
    # A history that follows the prediction exactly (final metric 0, each update with gain
    # g leaves 1/(1+g) of the metric): the gain moves halfway from the last one towards 1.
    g = 0.5
    history = [1.0, 1.0 / (1 + g), 1.0 / (1 + g) ** 2]
    assert calculateGain(history, [g, g], 0.5, True) == pytest.approx((1 + g) / 2)
    # A history far worse than predicted falls back to the base gain.
    assert calculateGain([1.0, 0.5, 0.49], [0.5, 0.5], 0.3, True) >= 0.3
    # By hand: final-metric estimates max(0, 2*0.2 - 1) = 0 and 2*0.19 - 0.2 = 0.18, median
    # 0.09; predicted (0.2 + 0.09)/2 = 0.145 against 0.19 measured, for an expected gain of
    # (0.2 - 0.09)/2 = 0.055: deviation -0.818, new gain (1 - 0.818 + 1)/2.
    assert calculateGain([1.0, 0.2, 0.19], [1.0, 1.0], 0.3, True) == pytest.approx(
        0.5 * (1 - 0.045 / 0.055 + 1.0))
    with pytest.raises(DcrValueError, match="one more value than gainList"):
        calculateGain([1.0, 0.5], [0.5, 0.5], 0.5, True)
