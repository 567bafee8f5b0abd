"""Estimating an exposure's PSF from its bright, isolated stars (`estimatePsf`).

An exposure without a PSF gets one measured from its stars, across the zenith direction
where DCR does not broaden them: each star's cross-zenith profile is fitted by the
cross-section of a circular Moffat-like profile, and the estimate (`PsfEstimate`) is the
median over the stars left after clipping outliers.

Conventions are those of `dcrmodel.psf.kernels`: arrays ``(y, x)``, sizes and FWHMs in pixels,
wavelengths in nm.

References
----------
A. F. J. Moffat (1969), A&A 3, 455: the Moffat profile ``(1 + r^2/a^2) ** -beta``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import (
    DcrMetadataError,
    DcrPsfWarning,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
)
from ..image import (
    BAD_MASK_PLANES,
    DEFAULT_MASK_PLANES,
    FWHM_PER_SIGMA,
    Exposure,
    GaussianPsf,
    Image,
    ImagePsf,
    Mask,
    MaskedImage,
    Psf,
)
from ..physics import dcr
from .kernels import asPositiveFloat, finiteFloat, validatePsfAlpha, wholeNumber

__all__ = [
    "DEFAULT_BAD_MASK_PLANES",
    "PsfEstimate",
    "estimatePsf",
]

_log = logging.getLogger(__name__)


#: Mask planes whose pixels disqualify a star from PSF estimation: the default bad planes,
#: and pixels that are suspect or interpolated (they would distort a star's profile).
DEFAULT_BAD_MASK_PLANES = (*BAD_MASK_PLANES, "SUSPECT", "INTRP")

#: Largest Moffat-like index ``eta = 1 / beta`` fitted by `estimatePsf` (beta >= 1.25, so the
#: profile's cross-section, ``(1 + ...) ** -(beta - 1/2)``, has a finite integral).
_MAX_ETA = 0.8


@dataclass(frozen=True, eq=False)
class PsfEstimate:
    """A PSF estimated from the stars of an exposure.

    Attributes
    ----------
    psf : Psf
        The estimate (an `ImagePsf` of the fitted profile, or a `GaussianPsf`).
    fwhm : float
        Median FWHM of the stars used, pixels (pixel response included).
    nStars : int
        Number of stars used.
    fwhmScatter : float
        Robust standard deviation (1.4826 x median absolute deviation) of their FWHMs, pixels.
    beta : float
        Median Moffat index of the fitted profiles (``inf``: Gaussian).
    starPositions : numpy.ndarray
        ``(nStars, 2)`` parent pixel coordinates ``(x, y)`` of the stars used.
    zenithDirection : tuple of float or None
        Unit vector ``(uy, ux)`` of the direction along which widths were NOT measured (the
        zenith direction, or the stars' common elongation when it was not given).
    """

    psf: Psf
    fwhm: float
    nStars: int
    fwhmScatter: float
    beta: float
    starPositions: np.ndarray
    zenithDirection: tuple[float, float] | None

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (for run summaries)."""
        return {
            "psfType": type(self.psf).__name__,
            "fwhm": self.fwhm,
            "nStars": self.nStars,
            "fwhmScatter": self.fwhmScatter,
            "beta": None if math.isinf(self.beta) else self.beta,
            "zenithDirection": None
            if self.zenithDirection is None
            else list(self.zenithDirection),
        }


def _toArray(value: Any, name: str) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, (Image, Mask)):
        return value.array
    array = np.asarray(value)
    if array.ndim != 2:
        raise DcrShapeError(f"{name} must be a 2-d array (y, x)", shape=array.shape)
    return array


def _badPixels(
    mask: Any, shape: tuple[int, int], badMaskPlanes: Sequence[str]
) -> np.ndarray:
    """Boolean map of pixels flagged in ``badMaskPlanes`` (True = do not use)."""
    if mask is None:
        return np.zeros(shape, dtype=bool)
    if isinstance(mask, Mask):
        planes = mask.planes
        array = mask.array
    else:
        array = _toArray(mask, "mask")
        planes = DEFAULT_MASK_PLANES
    if array.shape != shape:
        raise DcrShapeError("mask and image shapes differ", maskShape=array.shape, shape=shape)
    if array.dtype == bool:
        return array.copy()
    if array.dtype.kind not in "iu":
        raise DcrTypeError("mask must be an integer bit mask, a boolean array or a Mask",
                           dtype=array.dtype)
    bits = 0
    for name in badMaskPlanes:
        if name in planes:
            bits |= 1 << planes[name]
    return (array.astype(np.int64) & bits) != 0


def _unpackSource(source: Any) -> tuple[np.ndarray, np.ndarray | None, Any, tuple[int, int]]:
    """Return (image, variance, mask, origin (x0, y0)) of an Exposure, MaskedImage or tuple."""
    if isinstance(source, Exposure):
        source = source.maskedImage
    if isinstance(source, MaskedImage):
        origin = source.image.origin
        return source.image.array, source.variance.array, source.mask, tuple(origin)
    if isinstance(source, (Image, np.ndarray)):
        source = (source, None, None)
    if not isinstance(source, (tuple, list)) or len(source) not in (1, 2, 3):
        raise DcrTypeError(
            "estimatePsf needs an Exposure, a MaskedImage or a tuple (image, variance, mask) "
            "of arrays (variance and mask may be None)",
            source=type(source).__name__,
        )
    parts = list(source) + [None] * (3 - len(source))
    image = _toArray(parts[0], "image")
    if image is None:
        raise DcrValueError("estimatePsf needs an image")
    origin = tuple(parts[0].origin) if isinstance(parts[0], Image) else (0, 0)
    variance = _toArray(parts[1], "variance")
    if variance is not None and variance.shape != image.shape:
        raise DcrShapeError(
            "variance and image shapes differ", varianceShape=variance.shape, shape=image.shape
        )
    return image, variance, parts[2], origin


def _unitDirection(direction: Any) -> tuple[float, float] | None:
    try:
        vy, vx = (float(v) for v in direction)
    except (TypeError, ValueError):
        raise DcrTypeError(
            "zenithDirection must be a pair (vy, vx) of numbers (pixels), None or 'auto'",
            zenithDirection=direction,
        ) from None
    if not (math.isfinite(vy) and math.isfinite(vx)):
        raise DcrValueError("zenithDirection must be finite", zenithDirection=direction)
    norm = math.hypot(vy, vx)
    if norm == 0.0:
        return None
    return vy / norm, vx / norm


def _profileFwhm(width: float, eta: float) -> float:
    """FWHM of ``(1 + eta r^2 / (2 w^2)) ** (-1/eta)`` (the Gaussian ``exp(-r^2/2w^2)`` at 0)."""
    if eta < 1e-8:
        return 2.0 * width * math.sqrt(2.0 * math.log(2.0))
    return 2.0 * width * math.sqrt(2.0 * (2.0**eta - 1.0) / eta)


def _profile(q: np.ndarray, eta: float) -> np.ndarray:
    """Evaluate the circular profile ``(1 + eta q) ** (-1/eta)`` (``exp(-q)`` as eta -> 0)."""
    if eta < 1e-8:
        return np.exp(-q)
    return np.exp(-np.log1p(eta * q) / eta)


def _marginalModel(t: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Cross-section of a circular Moffat-like profile, integrated along the other axis.

    The circular profile ``(1 + eta r^2 / (2 w^2)) ** (-1/eta)`` (a Moffat with ``beta =
    1/eta``; a Gaussian of standard deviation ``w`` as eta -> 0) integrates along one axis to
    ``(1 + eta t^2 / (2 w^2)) ** -(1/eta - 1/2)``.
    """
    amplitude, centre, logWidth, eta, background = params
    q = (t - centre) ** 2 / (2.0 * math.exp(2.0 * logWidth))
    if eta < 1e-8:
        shape = np.exp(-q)
    else:
        shape = np.exp(-(1.0 / eta - 0.5) * np.log1p(eta * q))
    return amplitude * shape + background


def _elongationAxis(
    data: np.ndarray, positions: list[tuple[int, int]], radius: int
) -> tuple[float, float] | None:
    """Median major axis ``(uy, ux)`` of the stars' Gaussian-weighted second moments."""
    e1s, e2s = [], []
    coord = np.arange(-radius, radius + 1, dtype=np.float64)
    yy, xx = np.meshgrid(coord, coord, indexing="ij")
    weight = np.exp(-(xx**2 + yy**2) / (2.0 * (radius / 2.5) ** 2))
    for y, x in positions:
        stamp = data[y - radius : y + radius + 1, x - radius : x + radius + 1] * weight
        total = stamp.sum()
        if not total > 0.0:
            continue
        ixx = (stamp * xx**2).sum() / total
        iyy = (stamp * yy**2).sum() / total
        ixy = (stamp * xx * yy).sum() / total
        trace = ixx + iyy
        if trace > 0.0:
            e1s.append((ixx - iyy) / trace)
            e2s.append(2.0 * ixy / trace)
    if not e1s:
        return None
    angle = 0.5 * math.atan2(float(np.median(e2s)), float(np.median(e1s)))
    return math.sin(angle), math.cos(angle)


def _fitStar(
    data: np.ndarray,
    noiseVar: np.ndarray,
    x0: float,
    y0: float,
    along: tuple[float, float],
    radius: int,
    widthGuess: float,
) -> tuple[float, float] | None:
    """Fit the cross-zenith marginal profile of one star; return (fwhm, eta) or None."""
    zy, zx = along
    uy, ux = zx, -zy  # perpendicular to the zenith direction
    # Work on a local cut-out: the spline prefilter then costs nothing on large images.
    reach = math.ceil(radius * math.sqrt(2.0)) + 3
    iy, ix = int(round(y0)), int(round(x0))
    cutData = data[iy - reach : iy + reach + 1, ix - reach : ix + reach + 1]
    cutVar = noiseVar[iy - reach : iy + reach + 1, ix - reach : ix + reach + 1]
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    tt, ss = np.meshgrid(t, t, indexing="ij")
    xs = x0 - (ix - reach) + tt * ux + ss * zx
    ys = y0 - (iy - reach) + tt * uy + ss * zy
    values = ndimage.map_coordinates(cutData, [ys, xs], order=3, mode="nearest")
    variances = ndimage.map_coordinates(cutVar, [ys, xs], order=0, mode="nearest")
    marginal = values.sum(axis=1)
    sigma = np.sqrt(np.maximum(variances.sum(axis=1), 1e-30))
    edge = np.concatenate([marginal[:2], marginal[-2:]])
    background = float(np.median(edge))
    amplitude = float(marginal.max() - background)
    if not amplitude > 0.0:
        return None
    start = np.array(
        [amplitude, 0.0, math.log(max(widthGuess, 0.5)), 0.15, min(background, 0.0)]
    )
    lower = [0.0, -2.0, math.log(0.2), 0.0, -np.inf]
    upper = [np.inf, 2.0, math.log(2.0 * radius), _MAX_ETA, np.inf]

    def residuals(params: np.ndarray) -> np.ndarray:
        return (_marginalModel(t, params) - marginal) / sigma

    try:
        from scipy import optimize  # imported when a PSF is fitted, not at start-up

        result = optimize.least_squares(residuals, start, bounds=(lower, upper), x_scale="jac")
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not result.success:
        return None
    _, centre, logWidth, eta, _ = result.x
    width = math.exp(logWidth)
    if abs(centre) > 1.5 or width <= 0.2 * 1.001 or width >= 2.0 * radius * 0.999:
        return None
    return _profileFwhm(width, float(eta)), float(eta)


def _clipOutliers(values: np.ndarray, clipSigma: float, floor: float) -> np.ndarray:
    """Boolean keep-mask after iterative median/MAD clipping (at least ``floor`` x median)."""
    keep = np.ones(values.size, dtype=bool)
    for _ in range(10):
        median = float(np.median(values[keep]))
        scatter = 1.4826 * float(np.median(np.abs(values[keep] - median)))
        limit = max(clipSigma * scatter, floor * median)
        newKeep = np.abs(values - median) <= limit
        if not newKeep.any() or np.array_equal(newKeep, keep):
            break
        keep = newKeep
    return keep


def estimatePsf(
    source: Any,
    zenithDirection: Any = "auto",
    *,
    minSnr: float = 50.0,
    minStars: int = 3,
    maxStars: int = 100,
    stampRadius: int | None = None,
    isolationRadius: float | None = None,
    saturation: float | None = None,
    badMaskPlanes: Sequence[str] = DEFAULT_BAD_MASK_PLANES,
    clipSigma: float = 3.0,
    profile: str = "fit",
    alpha: float = 0.0,
    effectiveWavelength: float | None = None,
) -> PsfEstimate:
    """Estimate an exposure's PSF from its bright, isolated, unmasked stars.

    Parameters
    ----------
    source : Exposure, MaskedImage or tuple
        The pixels: an `Exposure`, a `MaskedImage`, or ``(image, variance, mask)`` arrays
        (variance None: the sky noise measured from the image; mask None, an integer bit mask
        with the default planes, a boolean array (True = bad) or a `Mask`). The image should be
        background-subtracted; a residual constant background is measured and removed.
    zenithDirection : tuple of float, None or "auto", optional
        ``(vy, vx)`` (any length) along which DCR smears the stars; widths are measured
        perpendicular to it. ``"auto"``: from the exposure's visit info and WCS
        (`dcrmodel.physics.dcr.zenithDirection`) when ``source`` is an `Exposure` that has both,
        else
        as None. None: unknown; the stars' median elongation axis is used instead.
    minSnr : float, optional
        Minimum signal-to-noise ratio of a star (flux within one FWHM of its peak).
    minStars : int, optional
        Minimum number of usable stars.
    maxStars : int, optional
        At most this many of the brightest usable stars are fitted.
    stampRadius : int, optional
        Half-size (pixels) of the square region measured around each star (None: three times
        a first size estimate, at least 4).
    isolationRadius : float, optional
        Stars with a brighter source closer than this (pixels) are skipped, as are stars with
        a source brighter than 1 % of them inside their stamp (None: twice the stamp radius).
    saturation : float, optional
        Pixel value (image units) at or above which a pixel is treated as saturated, in
        addition to the SAT mask plane.
    badMaskPlanes : sequence of str, optional
        Mask planes that disqualify a star when set anywhere in its stamp.
    clipSigma : float, optional
        Stars whose FWHM differs from the median by more than ``clipSigma`` robust standard
        deviations (and by more than 2 %) are rejected (galaxies, blends, cosmic rays).
    profile : {"fit", "gaussian"}, optional
        ``"fit"``: return an `ImagePsf` of the median fitted profile (Moffat-like, Gaussian in
        the limit); ``"gaussian"``: a `GaussianPsf` of the median FWHM.
    alpha : float, optional
        Chromatic exponent given to the estimate (one broadband image cannot measure it).
    effectiveWavelength : float, optional
        Wavelength (nm) of the estimate (None: the exposure's filter, if any).

    Returns
    -------
    PsfEstimate
        The PSF, its FWHM (pixels), the number of stars used, their FWHM scatter and more.

    Raises
    ------
    DcrValueError
        Fewer than ``minStars`` usable stars (the message says how to supply a PSF instead),
        or bad settings.
    DcrTypeError, DcrShapeError
        Unusable inputs.

    Warns
    -----
    DcrPsfWarning
        Always, on success: the PSF was estimated rather than given.

    Notes
    -----
    Peaks of the image smoothed by a unit Gaussian, at least 5 sigma above the sky, are
    sources, one per connected region above that threshold (its highest peak; a region with a
    second peak above a tenth of the first is a blend and skipped). A source is a candidate
    if its S/N exceeds ``minSnr``, no source brighter than 1 % of it lies inside its stamp
    and none brighter than it within ``isolationRadius``, and its stamp lies inside the
    image and holds no pixel flagged in ``badMaskPlanes``, none at or above ``saturation``
    and none non-finite.

    Each star is resampled (cubic spline) on a grid aligned with the zenith direction and
    summed along it. That cross-zenith profile is exactly independent of DCR: refraction
    moves light along the zenith direction only, and summing along it undoes any such
    movement. The profile is fitted (weighted least squares) by the cross-section of a
    circular Moffat-like profile ``(1 + eta r^2 / (2 w^2)) ** (-1/eta)`` (Moffat 1969, ``beta
    = 1/eta``; a Gaussian of standard deviation ``w`` as ``eta -> 0``), whose integral along
    one axis is ``(1 + eta t^2 / (2 w^2)) ** -(1/eta - 1/2)``. A star's FWHM is that of the
    fitted circular profile, ``2 w sqrt(2 (2^eta - 1) / eta)``. Fitting the profile's shape
    rather than converting a second moment with a Gaussian assumption matters: the
    Gaussian-equivalent width of a Moffat star's second moment overestimates its FWHM by
    10-16 % for beta between 4.8 and 2.5, while the fit recovers Gaussian and Moffat FWHMs to
    0.3 % and that of Kolmogorov seeing (outside the family: its wings fall as r^(-11/3)) to
    about 2 % (low). The widths include the pixel response (the fit is to pixel values), like
    the PSF HDU's images.

    The estimate is the median FWHM and the median ``eta`` of the stars left after clipping
    outliers; the PSF is assumed circular.
    """
    # ---- validation, before any work
    image, variance, mask, origin = _unpackSource(source)
    minSnr = asPositiveFloat(minSnr, "minSnr", "signal-to-noise ratio")
    minStars = wholeNumber(minStars, "minStars", 1)
    maxStars = wholeNumber(maxStars, "maxStars", minStars)
    if stampRadius is not None:
        stampRadius = wholeNumber(stampRadius, "stampRadius", 2)
    if isolationRadius is not None:
        isolationRadius = asPositiveFloat(isolationRadius, "isolationRadius", "pixels")
    if saturation is not None:
        saturation = finiteFloat(saturation, "saturation", "image units")
    if isinstance(badMaskPlanes, str):
        badMaskPlanes = (badMaskPlanes,)
    badMaskPlanes = tuple(badMaskPlanes)
    clipSigma = asPositiveFloat(clipSigma, "clipSigma", "standard deviations")
    if profile not in ("fit", "gaussian"):
        raise DcrValueError("profile must be 'fit' or 'gaussian'", profile=profile)
    alpha = validatePsfAlpha(alpha, "alpha")
    effectiveWavelength = _estimateWavelength(source, effectiveWavelength)
    along = _zenithAxis(source, zenithDirection)
    if image.dtype.kind not in "fiu":
        raise DcrTypeError("image must be a real numeric array", dtype=image.dtype)
    shape = image.shape
    bad = _badPixels(mask, shape, badMaskPlanes)

    # ---- pixels, background, noise (``bad`` gains the unusable pixels)
    data, var = _skySubtracted(image, variance, bad, saturation)

    # ---- detection
    sources = _detectSources(data, ~bad)

    # ---- a first size from the brightest clean peaks: area above half maximum
    firstFwhm = _firstFwhm(data, bad, sources[0], sources[1])
    radius = stampRadius if stampRadius is not None else max(math.ceil(3.0 * firstFwhm), 4)
    isolation = isolationRadius if isolationRadius is not None else 2.0 * radius

    # ---- candidate stars
    candidates = _candidateStars(
        data, var, bad, sources, radius, isolation, firstFwhm, minSnr, maxStars
    )

    # ---- the direction along which widths are not measured
    if along is None and candidates:
        along = _elongationAxis(data, candidates, radius)
    axis = along if along is not None else (1.0, 0.0)

    # ---- measurements
    fwhms, etas, positions = _measureStars(
        data, var, candidates, axis, radius, firstFwhm / FWHM_PER_SIGMA, origin
    )
    fwhmArray = np.array(fwhms)
    keep = _clipOutliers(fwhmArray, clipSigma, 0.02) if fwhmArray.size else fwhmArray.astype(bool)
    nStars = int(keep.sum())
    _checkEnoughStars(nStars, minStars, minSnr, len(candidates))
    kept = fwhmArray[keep]
    fwhm = float(np.median(kept))
    eta = float(np.median(np.array(etas)[keep]))
    scatter = 1.4826 * float(np.median(np.abs(kept - fwhm))) if nStars > 1 else 0.0
    beta = math.inf if eta < 1e-8 else 1.0 / eta

    estimate = PsfEstimate(
        psf=_estimatedPsf(profile, fwhm, eta, shape, alpha, effectiveWavelength),
        fwhm=fwhm,
        nStars=nStars,
        fwhmScatter=scatter,
        beta=beta,
        starPositions=np.array(positions, dtype=np.float64)[keep].reshape(-1, 2),
        zenithDirection=None if along is None else (float(along[0]), float(along[1])),
    )
    _log.info(
        "estimated PSF FWHM %.3f px (scatter %.3f px) from %d stars", fwhm, scatter, nStars
    )
    warnings.warn(
        f"no PSF given: estimated one from {nStars} stars, FWHM {fwhm:.3f} pixels (scatter "
        f"{scatter:.3f}); supply a PSF HDU or an explicit psf to use a measured PSF",
        DcrPsfWarning,
        stacklevel=2,
    )
    return estimate


# ---------------------------------------------------------------------------------------------
# The phases of estimatePsf
# ---------------------------------------------------------------------------------------------


def _estimateWavelength(source: Any, effectiveWavelength: Any) -> float | None:
    """Return the estimate's effective wavelength (nm): given, else the exposure's filter's."""
    if effectiveWavelength is None and isinstance(source, Exposure) and source.filter is not None:
        effectiveWavelength = source.filter.effectiveWavelength
    if effectiveWavelength is not None:
        effectiveWavelength = asPositiveFloat(effectiveWavelength, "effectiveWavelength", "nm")
    return effectiveWavelength


def _zenithAxis(source: Any, zenithDirection: Any) -> tuple[float, float] | None:
    """Return the unit zenith direction ``(uy, ux)`` asked for by `estimatePsf`, or None.

    ``"auto"``: from the visit info and WCS of an `Exposure` that has both (None when they do
    not give it); None: unknown; else the given ``(vy, vx)``, normalised.
    """
    if isinstance(zenithDirection, str):
        if zenithDirection != "auto":
            raise DcrValueError(
                "zenithDirection must be (vy, vx), None or 'auto'", zenithDirection=zenithDirection
            )
        along = None
        if (
            isinstance(source, Exposure)
            and source.visitInfo is not None
            and source.wcs is not None
        ):
            try:
                along = _unitDirection(
                    dcr.zenithDirection(source.visitInfo, source.wcs, source.bbox)
                )
            except DcrMetadataError as error:
                _log.info("zenith direction unknown (%s); using the stars' elongation", error)
    elif zenithDirection is None:
        along = None
    else:
        along = _unitDirection(zenithDirection)
    return along


def _skySubtracted(
    image: np.ndarray, variance: np.ndarray | None, bad: np.ndarray, saturation: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the sky-subtracted image and its variance, both float64 (image units).

    ``bad`` (boolean, True = do not use) is updated in place with the non-finite, saturated
    and zero-variance pixels; there the image is 0 and the variance infinite. Without a
    ``variance`` the sky noise measured from the image is used everywhere.
    """
    shape = image.shape
    data = np.asarray(image, dtype=np.float64)
    bad |= ~np.isfinite(data)
    if saturation is not None:
        bad |= np.where(np.isfinite(data), data, -np.inf) >= saturation
    if variance is not None:
        var = np.asarray(variance, dtype=np.float64)
        bad |= ~np.isfinite(var) | (var <= 0.0)
    good = ~bad
    if good.sum() < 16:
        raise DcrValueError(
            "too few unmasked pixels to estimate a PSF; supply one (a PSF HDU in the file or "
            "an explicit psf argument)",
            goodPixels=int(good.sum()),
        )
    from astropy.stats import sigma_clipped_stats

    _, skyLevel, skyNoise = sigma_clipped_stats(data[good], sigma=3.0, maxiters=5)
    data = np.where(good, data - skyLevel, 0.0)
    if variance is None:
        var = np.full(shape, max(float(skyNoise) ** 2, 1e-30))
    var = np.where(good, var, np.inf)
    return data, var


def _detectSources(
    data: np.ndarray, good: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the sources' peak rows, columns, blend flags and smoothed peak values.

    Sources are ordered by decreasing smoothed peak value.
    """
    from astropy.stats import sigma_clipped_stats

    smooth = ndimage.gaussian_filter(data, 1.0, mode="constant")
    _, _, smoothNoise = sigma_clipped_stats(smooth[good], sigma=3.0, maxiters=5)
    peaks = (
        (smooth == ndimage.maximum_filter(smooth, size=3, mode="constant"))
        & (smooth > 5.0 * max(float(smoothNoise), 1e-30))
        & good
    )
    # One source per connected region above the threshold (the noise bumps on a bright
    # star's wings are local maxima too, but of the same region): its highest peak. A region
    # with a second peak above a tenth of its highest is a blend.
    labels, numRegions = ndimage.label((smooth > 5.0 * max(float(smoothNoise), 1e-30)) & good)
    py, px = np.nonzero(peaks)
    order = np.argsort(-smooth[py, px])
    py, px = py[order], px[order]
    chosen: dict[int, tuple[int, int]] = {}
    blended: set[int] = set()
    for y, x in zip(py, px, strict=True):
        label = int(labels[y, x])
        if label not in chosen:
            chosen[label] = (int(y), int(x))
        elif smooth[y, x] > 0.1 * smooth[chosen[label]]:
            blended.add(label)
    sources = list(chosen.items())
    py = np.array([yx[0] for _, yx in sources], dtype=int)
    px = np.array([yx[1] for _, yx in sources], dtype=int)
    isBlend = np.array([label in blended for label, _ in sources], dtype=bool)
    peakValues = smooth[py, px] if py.size else np.zeros(0)
    _log.debug("%d sources (%d blended) from %d peaks", py.size, int(isBlend.sum()),
               int(peaks.sum()))
    return py, px, isBlend, peakValues


def _firstFwhm(data: np.ndarray, bad: np.ndarray, py: np.ndarray, px: np.ndarray) -> float:
    """Return a first FWHM (pixels) from the brightest clean peaks, 3 when there is none.

    The median over the 50 brightest peaks whose 21 x 21 stamp is inside the image and
    unmasked of the diameter of the circle whose area is that above half their maximum.
    """
    shape = data.shape
    firstSizes = []
    half = 10
    for y, x in zip(py[:50], px[:50], strict=False):
        if y < half or x < half or y + half >= shape[0] or x + half >= shape[1]:
            continue
        stamp = data[y - half : y + half + 1, x - half : x + half + 1]
        if bad[y - half : y + half + 1, x - half : x + half + 1].any():
            continue
        labels, _ = ndimage.label(stamp > 0.5 * stamp[half, half])
        area = np.count_nonzero(labels == labels[half, half])
        firstSizes.append(2.0 * math.sqrt(area / math.pi))
    return float(np.median(firstSizes)) if firstSizes else 3.0


def _candidateStars(
    data: np.ndarray,
    var: np.ndarray,
    bad: np.ndarray,
    sources: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    radius: int,
    isolation: float,
    firstFwhm: float,
    minSnr: float,
    maxStars: int,
) -> list[tuple[int, int]]:
    """Return the peaks ``(y, x)`` of the bright, isolated, unblended, unmasked sources.

    At most ``maxStars``, brightest first; ``sources`` as `_detectSources` returns them.
    """
    py, px, isBlend, peakValues = sources
    shape = data.shape
    reach = math.ceil(radius * math.sqrt(2.0)) + 3  # the rotated stamp plus spline support
    aperture = max(firstFwhm, 1.5)
    points = np.column_stack([py, px]).astype(np.float64)
    candidates: list[tuple[int, int]] = []
    for index, (y, x) in enumerate(zip(py, px, strict=False)):
        if isBlend[index]:
            continue
        if y < reach or x < reach or y + reach >= shape[0] or x + reach >= shape[1]:
            continue
        if bad[y - reach : y + reach + 1, x - reach : x + reach + 1].any():
            continue
        # isolated: no source brighter than 1 % of this one inside its stamp, and none
        # brighter than it within the isolation radius (whose wings would dominate)
        distance = np.hypot(points[:, 0] - y, points[:, 1] - x)
        distance[index] = np.inf
        if np.any((distance < radius) & (peakValues > 0.01 * peakValues[index])) or np.any(
            (distance < isolation) & (peakValues > peakValues[index])
        ):
            continue
        r = math.ceil(aperture)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        inside = yy**2 + xx**2 <= aperture**2
        flux = data[y - r : y + r + 1, x - r : x + r + 1][inside].sum()
        noise = math.sqrt(var[y - r : y + r + 1, x - r : x + r + 1][inside].sum())
        if not flux > minSnr * noise:
            continue
        candidates.append((int(y), int(x)))
        if len(candidates) >= maxStars:
            break
    return candidates


def _measureStars(
    data: np.ndarray,
    var: np.ndarray,
    candidates: list[tuple[int, int]],
    axis: tuple[float, float],
    radius: int,
    widthGuess: float,
    origin: tuple[int, int],
) -> tuple[list[float], list[float], list[tuple[float, float]]]:
    """Fit each candidate's cross-zenith profile (`_fitStar`) about its centroid.

    Returns the FWHMs (pixels), the Moffat-like indices ``eta`` and the parent positions
    ``(x, y)`` of the stars whose fit succeeded.
    """
    fwhms, etas, positions = [], [], []
    for y, x in candidates:
        window = data[y - 1 : y + 2, x - 1 : x + 2]
        weights = np.clip(window, 0.0, None)
        total = weights.sum()
        offsets = np.array([-1.0, 0.0, 1.0])
        yc = y + (weights.sum(axis=1) * offsets).sum() / total if total > 0 else float(y)
        xc = x + (weights.sum(axis=0) * offsets).sum() / total if total > 0 else float(x)
        measured = _fitStar(data, var, xc, yc, axis, radius, widthGuess)
        if measured is None:
            continue
        fwhms.append(measured[0])
        etas.append(measured[1])
        positions.append((xc + origin[0], yc + origin[1]))
    return fwhms, etas, positions


def _checkEnoughStars(nStars: int, minStars: int, minSnr: float, numCandidates: int) -> None:
    """Raise `DcrValueError` saying how to supply a PSF when fewer than ``minStars`` are left."""
    if nStars < minStars:
        raise DcrValueError(
            f"only {nStars} usable stars to estimate the PSF (bright: S/N > {minSnr:g}, "
            f"isolated, unmasked, unsaturated, point-like); at least {minStars} are needed. "
            "Supply the PSF instead: a PSF HDU in the exposure's file (an odd-sized, centred "
            "image summing to 1 with keys PSF-FWHM and PSF-ALPH, see the primer) or an "
            "explicit psf argument (GaussianPsf(fwhm) or ImagePsf(kernel))",
            usableStars=nStars,
            candidates=numCandidates,
            minStars=minStars,
        )


def _estimatedPsf(
    profile: str,
    fwhm: float,
    eta: float,
    shape: tuple[int, int],
    alpha: float,
    effectiveWavelength: float | None,
) -> Psf:
    """Return the PSF of the median profile: a `GaussianPsf` or an `ImagePsf` of the fit.

    ``fwhm`` in pixels; the kernel of an `ImagePsf` is no larger than the image ``shape``.
    """
    if profile == "gaussian":
        psf: Psf = GaussianPsf(fwhm, alpha=alpha, effectiveWavelength=effectiveWavelength)
    else:
        width = fwhm / _profileFwhm(1.0, eta)
        kernelHalf = max(min(math.ceil(4.0 * fwhm), (min(shape) - 1) // 2), 1)
        coord = np.arange(-kernelHalf, kernelHalf + 1, dtype=np.float64)
        rr = coord[:, None] ** 2 + coord[None, :] ** 2
        kernel = _profile(rr / (2.0 * width * width), eta)
        psf = ImagePsf(kernel, alpha=alpha, effectiveWavelength=effectiveWavelength, fwhm=fwhm)
    return psf
