"""The PSF of a warped exposure: the source PSF image carried onto the destination grid.

A warp that maps a destination pixel offset ``v`` to the source offset ``u = J v`` (``J``
the local Jacobian of the pixel mapping, `dcrmodel.warp.mapping.localJacobian`) turns a
PSF ``P(u)`` of the source grid into ``P(J v)`` on the destination grid: a visit rotated
by 37 degrees against the destination grid has its elliptical PSF rotated by 37 degrees
there, and a change of pixel scale changes its width in pixels. `warpPsf` samples the
source PSF image at ``J v`` for every destination pixel ``v`` of an odd-sized square with
the warping kernel of the image (so the PSF goes through the same resampling as the
pixels, as ``lsst.meas.algorithms.WarpedPsf`` does in the Rubin pipelines), and normalises
it to sum 1.

One Jacobian serves the whole exposure (that of the destination box's centre): the PSF of
a warped exposure is as constant over the box as the source PSF was, and a non-linear
mapping (distortion) is linearised at the centre.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DcrShapeError, DcrTypeError
from ..image import ImagePsf, Psf
from .kernels import DEFAULT_WARPING_KERNEL, WarpingKernel, getWarpingKernel
from .resample import resampleArrays

__all__ = ["warpPsf"]


def warpPsf(
    psf: Psf, jacobian: np.ndarray, kernel: str | WarpingKernel = DEFAULT_WARPING_KERNEL
) -> ImagePsf:
    """Return the PSF of an exposure after a warp of local Jacobian ``jacobian``.

    Parameters
    ----------
    psf : Psf
        The source exposure's PSF; its image at the effective wavelength is warped.
    jacobian : numpy.ndarray
        2x2 derivative of the destination-to-source pixel mapping
        ``[[dxs/dx, dxs/dy], [dys/dx, dys/dy]]`` (source pixels per destination pixel).
    kernel : str or WarpingKernel, optional
        Warping kernel used to sample the PSF image (that of the image warp).

    Returns
    -------
    ImagePsf
        Odd-sized, centred, summing to 1, large enough to hold the warped source PSF
        image; the same chromatic exponent ``alpha`` and effective wavelength as ``psf``.
        Its FWHM is measured from the warped image.

    Raises
    ------
    DcrTypeError
        If ``psf`` is not a `Psf`.
    DcrShapeError
        If ``jacobian`` is not an invertible 2x2 matrix.

    Notes
    -----
    The centre of the warped image is the centre of the source image (an exact copy). If
    the kernel's ringing makes another pixel brighter (a flat-topped or badly undersampled
    PSF), the PSF is warped with bilinear weights instead, which keep the peak at the
    centre.

    Examples
    --------
    A 90-degree rotation turns a PSF elongated along x into one elongated along y:

    >>> y, x = np.mgrid[-7:8, -7:8]
    >>> psf = ImagePsf(np.exp(-0.5 * ((x / 2.0) ** 2 + (y / 1.0) ** 2)))
    >>> warped = warpPsf(psf, np.array([[0.0, 1.0], [-1.0, 0.0]])).computeKernelImage()
    >>> bool(warped.sum(axis=1).max() < warped.sum(axis=0).max())
    True
    """
    if not isinstance(psf, Psf):
        raise DcrTypeError("psf must be a dcrmodel Psf", psf=type(psf).__name__)
    matrix = np.asarray(jacobian, dtype=np.float64)
    if matrix.shape != (2, 2) or not np.all(np.isfinite(matrix)) or np.linalg.det(matrix) == 0:
        raise DcrShapeError("jacobian must be a finite, invertible 2x2 matrix",
                            jacobian=matrix.tolist())
    warpingKernel = getWarpingKernel(kernel)
    source = np.asarray(psf.computeKernelImage(), dtype=np.float64)
    half = source.shape[0] // 2
    inverse = np.linalg.inv(matrix)
    # Half-size of the destination image: the source square's bounding box there.
    reach = float(np.max(np.abs(inverse).sum(axis=1)))
    destHalf = max(1, math.ceil(half * reach - 1e-9))
    offsets = np.arange(-destHalf, destHalf + 1, dtype=np.float64)
    vy, vx = np.meshgrid(offsets, offsets, indexing="ij")
    pad = warpingKernel.size
    padded = np.pad(source, pad)
    xs = matrix[0, 0] * vx + matrix[0, 1] * vy + half + pad
    ys = matrix[1, 0] * vx + matrix[1, 1] * vy + half + pad
    warped = resampleArrays(padded, xs, ys, warpingKernel).image.astype(np.float64)
    if warped[destHalf, destHalf] < warped.max():
        # The kernel's overshoot beat the centre (a flat-topped or undersampled PSF):
        # bilinear weights never exceed the largest pixel they mix, and the centre is the
        # source's peak itself.
        warped = resampleArrays(padded, xs, ys, "bilinear").image.astype(np.float64)
    warped /= warped.sum()
    return ImagePsf(warped, alpha=psf.alpha, effectiveWavelength=psf.effectiveWavelength)
