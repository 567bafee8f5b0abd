"""Every subfilter owns its pixels; thresholds must be in order."""

import numpy as np
import pytest

from dcrmodel.errors import DcrValueError
from dcrmodel.image import Box, Image
from dcrmodel.model import DcrModel


def test_one_array_given_for_every_subfilter_is_copied():
    a = np.ones((8, 8))
    model = DcrModel([a] * 3, filterInfo="g")
    assert model[0].array is a  # the first keeps the caller's array (the model owns it)
    model[0].array[0, 0] = 5.0
    assert [float(model[k].array[0, 0]) for k in range(3)] == [5.0, 1.0, 1.0]
    sub = DcrModel([np.full((8, 8), float(k)) for k in range(3)], filterInfo="g")
    model.assign(sub)
    assert [float(model[k].array[0, 0]) for k in range(3)] == [0.0, 1.0, 2.0]


def test_one_image_or_overlapping_views_are_copied():
    image = Image(np.ones((8, 8)), bbox=Box(10, 20, 8, 8))
    model = DcrModel([image] * 3, filterInfo="g")
    model[2].array[:] = 7.0
    assert float(model[0].array.max()) == 1.0 and model[1].bbox == image.bbox
    cube = np.zeros((3, 8, 8))
    model = DcrModel(list(cube), filterInfo="g")  # distinct planes of one array: kept
    model[1].array[0, 0] = 4.0
    assert cube[1, 0, 0] == 4.0 and cube[0, 0, 0] == 0.0
    big = np.zeros((8, 9))
    model = DcrModel([big[:, :8], big[:, 1:]], filterInfo="g")  # overlapping views: copied
    model[1].array[:] = 3.0
    assert big.max() == 0.0


def test_a_variance_that_is_a_subfilter_image_is_copied():
    arrays = [np.full((8, 8), float(k + 1)) for k in range(3)]
    model = DcrModel(arrays, filterInfo="g", variance=arrays[0])
    model[0].array[0, 0] = -5.0
    assert float(model.variance.array[0, 0]) == 1.0


def test_setting_a_subfilter_to_another_copies_it():
    model = DcrModel([np.full((8, 8), float(k)) for k in range(3)], filterInfo="g")
    model[1] = model[0]
    model[0].array[0, 0] = 9.0
    assert float(model[1].array[0, 0]) == 0.0
    mine = np.full((8, 8), 2.0)
    model[2] = mine
    assert model[2].array is mine  # not shared with another subfilter: kept


@pytest.mark.parametrize(
    "high, low, count",
    [
        (1.0, 2.0, 81),
        (np.ones((9, 9)), np.where(np.arange(81).reshape(9, 9) == 40, 3.0, 0.0), 1),
    ],
)
def test_thresholds_out_of_order_are_refused_before_any_change(high, low, count):
    image = np.linspace(-5, 5, 81).reshape(9, 9)
    before = image.copy()
    with pytest.raises(DcrValueError, match=f"lowThreshold exceeds highThreshold in {count} "
                       r"pixel\(s\) \(first at y=\d, x=\d: 3|2 > 1\)"):
        DcrModel.applyImageThresholds(image, highThreshold=high, lowThreshold=low)
    np.testing.assert_array_equal(image, before)


def test_thresholds_in_order_or_nan_still_apply():
    image = np.zeros((9, 9))
    image[3:, 3:] = 5.0
    high = np.full((9, 9), 1.0)
    low = np.full((9, 9), np.nan)  # NaN thresholds never flag, nor count as out of order
    DcrModel.applyImageThresholds(image, highThreshold=high, lowThreshold=low,
                                  regularizationWidth=1)
    assert float(image[6, 6]) == 1.0
    DcrModel.applyImageThresholds(image, highThreshold=2.0, lowThreshold=2.0,
                                  regularizationWidth=0)
    assert float(image.min()) == 2.0 and float(image.max()) == 2.0
