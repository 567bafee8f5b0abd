"""The checks every input exposure gets: usable pixels, one band, a digest of its pixels."""

import numpy as np
import pytest

from dcrmodel.errors import DcrValueError
from dcrmodel.image import Filter, bandKey, checkSameBand, checkUsablePixels, pixelDigest


def test_checkUsablePixels_counts_only_unmasked_bad_pixels():
    image = np.ones((4, 5))
    variance = np.ones((4, 5))
    good = np.ones((4, 5), bool)
    checkUsablePixels(image, variance, good, "v")
    image[0, 0] = np.nan
    variance[1, 1] = 0.0
    variance[2, 2] = -3.0
    variance[3, 3] = np.inf
    with pytest.raises(DcrValueError, match="v has 4 unmasked pixels with a non-finite value"):
        checkUsablePixels(image, variance, good, "v")
    good[[0, 1, 2], [0, 1, 2]] = False
    with pytest.raises(DcrValueError, match="v has 1 unmasked pixels"):
        checkUsablePixels(image, variance, good, "v")
    good[3, 3] = False
    checkUsablePixels(image, variance, good, "v")


def test_bands_by_name():
    assert bandKey(Filter.fromBand("g")) == "g"
    assert bandKey(Filter("g_6", 480.0, 150.0)) == "g"
    assert bandKey(Filter("custom", 480.0, 150.0)) is None
    assert bandKey(None) is None
    checkSameBand(Filter.fromBand("g"), Filter("g_6", 480.0, 150.0), "a", "b")
    checkSameBand(Filter.fromBand("g"), None, "a", "b")
    checkSameBand(Filter("custom", 600.0, 100.0), Filter.fromBand("g"), "a", "b")
    with pytest.raises(DcrValueError, match=r"^a \(band r\) and b \(band g\) are of different "
                       "bands; fix it"):
        checkSameBand(Filter.fromBand("r"), Filter.fromBand("g"), "a", "b", "fix it")


def test_pixelDigest_is_of_the_values():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(300, 70)).astype(np.float32)
    digest = pixelDigest(values)
    assert pixelDigest(values.astype(">f4")) == digest
    assert pixelDigest(values.astype(np.float64)) == digest
    assert pixelDigest(np.asfortranarray(values)) == digest
    changed = values.copy()
    changed[299, 69] += 1e-3
    assert pixelDigest(changed) != digest
    assert pixelDigest(values.reshape(70, 300)) != digest
