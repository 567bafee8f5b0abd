"""Tests of dcrmodel.image.calibration: `PhotoCalib`.

References used: the AB magnitude definition (Oke & Gunn 1983), through astropy's
``u.ABmag``.
"""

import astropy.units as u
import numpy as np
import pytest

from dcrmodel.errors import DcrValueError
from dcrmodel.image.calibration import PhotoCalib
from dcrmodel.image.pixels import Image

# ----------------------------------------------------------------------------------------
# PhotoCalib
# ----------------------------------------------------------------------------------------


def test_photocalib():
    calib = PhotoCalib(2.5)
    assert calib.calibrationMean == 2.5 == calib.getCalibrationMean()
    assert calib.instFluxToNanojansky(4.0) == 10.0
    np.testing.assert_allclose(calib.instFluxToNanojansky(np.array([1.0, 2.0])), [2.5, 5.0])
    img = calib.instFluxToNanojansky(Image(np.ones((2, 2)), origin=(3, 4)))
    assert isinstance(img, Image) and img.origin == (3, 4) and np.all(img.array == 2.5)
    assert calib.nanojanskyToInstFlux(10.0) == pytest.approx(4.0)
    # AB: 1 nJy is magnitude 31.4; a zero point of 27 makes one count 10**(4.4/2.5) nJy.
    assert PhotoCalib.fromZeroPoint(31.4).calibrationMean == pytest.approx(1.0)
    zp27 = PhotoCalib.fromZeroPoint(27.0).calibrationMean
    # astropy's AB magnitudes as the reference (1 nJy is 31.4 mag to 1e-5).
    assert zp27 == pytest.approx((27.0 * u.ABmag).to_value(u.nJy), rel=1e-4)
    with pytest.raises(DcrValueError, match="calibrationMean must be positive"):
        PhotoCalib(0.0)
    assert PhotoCalib(2.5) == calib
