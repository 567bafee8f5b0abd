"""The PSF carried by the local Jacobian of a warp (dcrmodel.warp.warpedpsf)."""

import numpy as np
import pytest

from dcrmodel.errors import DcrShapeError, DcrTypeError
from dcrmodel.image import GaussianPsf, ImagePsf
from dcrmodel.warp.warpedpsf import warpPsf
from helpers.warp import orientation, secondMoments


def _ellipticalPsf(sigmaMajor=2.2, sigmaMinor=1.3, angle=0.0, half=12, **kwargs):
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    t = np.deg2rad(angle)
    u = np.cos(t) * x + np.sin(t) * y
    v = -np.sin(t) * x + np.cos(t) * y
    return ImagePsf(np.exp(-0.5 * ((u / sigmaMajor) ** 2 + (v / sigmaMinor) ** 2)), **kwargs)


def _rotation(angle):
    t = np.deg2rad(angle)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


@pytest.mark.parametrize("angle", [37.0, -37.0, 90.0])
def test_rotation_turns_the_psf(angle):
    psf = _ellipticalPsf(angle=10.0, alpha=-0.2, effectiveWavelength=480.0)
    # a destination offset v is the source offset J v: the PSF turns by -angle
    warped = warpPsf(psf, _rotation(angle))
    image = warped.computeKernelImage()
    assert image.shape[0] == image.shape[1] and image.shape[0] % 2 == 1
    assert abs(image.sum() - 1.0) < 1e-12
    turned = (orientation(image) - orientation(psf.computeKernelImage()) + 90) % 180 - 90
    assert abs(turned - ((-angle + 90) % 180 - 90)) < 0.2
    # a rotation keeps the moments' eigenvalues (the size and the ellipticity)
    before = np.linalg.eigvalsh(_momentMatrix(psf.computeKernelImage()))
    after = np.linalg.eigvalsh(_momentMatrix(image))
    np.testing.assert_allclose(after, before, rtol=0.02)
    assert warped.alpha == -0.2 and warped.effectiveWavelength == 480.0
    assert abs(warped.fwhm - psf.fwhm) < 0.05 * psf.fwhm


def _momentMatrix(image):
    mxx, myy, mxy = secondMoments(image)
    return np.array([[mxx, mxy], [mxy, myy]])


def test_scale_change_and_identity():
    psf = GaussianPsf(3.0)
    same = warpPsf(psf, np.eye(2)).computeKernelImage()
    np.testing.assert_allclose(same, psf.computeKernelImage(), atol=1e-15)
    # destination pixels twice as large: the PSF is half as wide in pixels
    half = warpPsf(psf, 2.0 * np.eye(2), "lanczos3")
    assert abs(half.fwhm - 1.5) < 0.1
    assert half.computeKernelImage().shape[0] < psf.computeKernelImage().shape[0]
    # a mirror (flipped parity) keeps a circular PSF circular
    mirrored = warpPsf(psf, np.diag([-1.0, 1.0])).computeKernelImage()
    np.testing.assert_allclose(mirrored, psf.computeKernelImage(), atol=1e-15)


def test_flat_topped_psf_keeps_its_peak_in_the_centre():
    kernel = np.zeros((9, 9))
    kernel[3:6, 3:6] = 1.0
    kernel[4, 4] = 1.0001
    warped = warpPsf(ImagePsf(kernel), _rotation(10.0)).computeKernelImage()
    half = warped.shape[0] // 2
    assert warped[half, half] == warped.max() and np.all(warped >= 0.0)


def test_errors():
    with pytest.raises(DcrTypeError, match="psf must be a dcrmodel Psf"):
        warpPsf(np.ones((3, 3)), np.eye(2))
    with pytest.raises(DcrShapeError, match="invertible 2x2"):
        warpPsf(GaussianPsf(2.0), np.zeros((2, 2)))
    with pytest.raises(DcrShapeError, match="invertible 2x2"):
        warpPsf(GaussianPsf(2.0), np.eye(3))
