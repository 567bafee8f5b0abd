"""Measures of a good template: residuals against the truth and difference-image detections.

Two families of measures, both computed the same way for a DCR-matched template and for
the plain coadd used as a template, so that a report can state "the DCR template leaves
N times less residual and M times fewer false detections than a plain coadd":

- Template against truth (`templateResidual`): over the footprints of the catalogue's
  sources, the relative residual ``sqrt(sum (template - truth)^2) / sqrt(sum truth^2)``,
  the same split by source colour (blue stars, red stars, galaxies), and the worst
  residual in units of the science visit's noise.
- Difference imaging (`differenceImageMetrics`): subtract the template from the science
  exposure (the same-PSF case: no PSF matching), detect at 5 sigma with a PSF-matched
  filter and the variance plane (`detectSources`), and count false detections (not at an
  injected transient) and the fraction of injected transients recovered.

Detection follows the standard matched filter: the image is correlated with the PSF
kernel ``K`` and divided by the noise of that sum, ``S/N = sum(K d) / sqrt(sum(K^2 var))``
(the maximum-likelihood point-source significance for known background noise; e.g.
Bosch et al. 2018, PASJ 70, S5, section 4.7). Connected pixels above the threshold form a
detection; a positive and a negative detection closer than the PSF FWHM are one dipole.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.signal import fftconvolve

from .errors import DcrShapeError, DcrTypeError, DcrValueError

__all__ = [
    "Detection",
    "significanceImage",
    "detectSources",
    "footprintMask",
]

_log = logging.getLogger(__name__)

#: Mask planes whose pixels are never used for detection or residuals.
BAD_MASK_PLANES = ("BAD", "SAT", "CR", "NO_DATA", "EDGE")


@dataclass(frozen=True)
class Detection:
    """One detection in an image.

    Attributes
    ----------
    x, y : float
        Parent pixel position of the peak significance (for a dipole: of the positive lobe
        when it has one, else of the negative lobe).
    significance : float
        Peak matched-filter signal to noise (negative for a negative detection; for a
        dipole, the larger in absolute value).
    kind : str
        ``"positive"``, ``"negative"`` or ``"dipole"``.
    numPixels : int
        Pixels above the threshold.
    """

    x: float
    y: float
    significance: float
    kind: str
    numPixels: int

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "x": self.x,
            "y": self.y,
            "significance": self.significance,
            "kind": self.kind,
            "numPixels": self.numPixels,
        }


def _asArray(value: Any, name: str) -> np.ndarray:
    array = getattr(value, "array", value)
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise DcrShapeError(f"{name} must be a 2-d image", shape=array.shape)
    return array


def _checkKernel(kernel: Any) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise DcrValueError("the PSF kernel must be a 2-d array with odd sides", shape=k.shape)
    if not np.all(np.isfinite(k)) or not k.sum() > 0.0:
        raise DcrValueError("the PSF kernel must be finite with a positive sum")
    return k / k.sum()


def significanceImage(
    image: Any, variance: Any, kernel: Any, badPixels: np.ndarray | None = None
) -> np.ndarray:
    """Return the PSF-matched-filter signal-to-noise image.

    Parameters
    ----------
    image : numpy.ndarray or dcrmodel.image.Image
        Background-subtracted image (counts).
    variance : numpy.ndarray or dcrmodel.image.Image
        Its variance (counts^2).
    kernel : numpy.ndarray
        PSF kernel (odd, centred); normalised here.
    badPixels : numpy.ndarray of bool, optional
        Pixels to leave out of the sums (their value and variance are set to zero).

    Returns
    -------
    numpy.ndarray
        ``sum(K d) / sqrt(sum(K^2 var))`` at every pixel; 0 where no good pixel
        contributes.
    """
    data = _asArray(image, "image")
    var = _asArray(variance, "variance")
    if var.shape != data.shape:
        raise DcrShapeError("image and variance differ in shape", image=data.shape,
                            variance=var.shape)
    k = _checkKernel(kernel)
    good = np.isfinite(data) & np.isfinite(var) & (var >= 0.0)
    if badPixels is not None:
        bad = np.asarray(badPixels, dtype=bool)
        if bad.shape != data.shape:
            raise DcrShapeError("badPixels differs in shape from the image", shape=bad.shape)
        good &= ~bad
    data = np.where(good, data, 0.0)
    var = np.where(good, var, 0.0)
    flipped = k[::-1, ::-1]
    signal = fftconvolve(data, flipped, mode="same")
    noise2 = fftconvolve(var, flipped * flipped, mode="same")
    # Below the FFT round-off a noise estimate is meaningless.
    floor = 1e-10 * float(np.max(noise2)) if noise2.size and np.max(noise2) > 0 else 0.0
    out = np.zeros_like(signal)
    ok = noise2 > floor
    out[ok] = signal[ok] / np.sqrt(noise2[ok])
    return out


def detectSources(
    image: Any,
    variance: Any,
    kernel: Any,
    threshold: float = 5.0,
    badPixels: np.ndarray | None = None,
    origin: tuple[int, int] = (0, 0),
    polarity: str = "both",
    mergeRadius: float | None = None,
) -> tuple[list[Detection], np.ndarray]:
    """Detect sources at ``threshold`` sigma with a PSF-matched filter.

    Parameters
    ----------
    image, variance : numpy.ndarray or dcrmodel.image.Image
        Image and variance (counts, counts^2).
    kernel : numpy.ndarray
        PSF kernel (odd, centred).
    threshold : float, optional
        Detection threshold in sigma (> 0).
    badPixels : numpy.ndarray of bool, optional
        Pixels left out (masked).
    origin : tuple of int, optional
        Parent coordinates ``(x0, y0)`` of ``image[0, 0]``; detections are reported in
        parent coordinates.
    polarity : str, optional
        ``"positive"``, ``"negative"`` or ``"both"``.
    mergeRadius : float, optional
        A positive and a negative detection whose peaks are closer than this (pixels) are
        one dipole; default: the kernel's FWHM (from its second moments). 0 disables it.

    Returns
    -------
    detections : list of Detection
        Detections, brightest first.
    footprints : numpy.ndarray of bool
        Pixels above the threshold (either sign, as requested).

    Raises
    ------
    DcrValueError
        For a threshold <= 0, an unknown polarity or a bad kernel.
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise DcrValueError("threshold must be a positive number of sigma", threshold=threshold)
    if polarity not in ("positive", "negative", "both"):
        raise DcrValueError("polarity must be 'positive', 'negative' or 'both'",
                            polarity=polarity)
    snr = significanceImage(image, variance, kernel, badPixels)
    if mergeRadius is None:
        mergeRadius = _kernelFwhm(_checkKernel(kernel))
    x0, y0 = int(origin[0]), int(origin[1])
    found: list[tuple[str, float, int, int, int]] = []
    footprints = np.zeros(snr.shape, dtype=bool)
    for sign, kind in ((1.0, "positive"), (-1.0, "negative")):
        if polarity not in (kind, "both"):
            continue
        above = sign * snr >= threshold
        footprints |= above
        labels, count = ndimage.label(above, structure=np.ones((3, 3)))
        if count == 0:
            continue
        index = np.arange(1, count + 1)
        peaks = ndimage.maximum_position(sign * snr, labels, index)
        sizes = ndimage.sum_labels(np.ones_like(snr), labels, index)
        for (py, px), size in zip(peaks, sizes, strict=True):
            found.append((kind, float(snr[py, px]), int(px), int(py), int(size)))
    detections = _mergeDipoles(found, mergeRadius, x0, y0)
    detections.sort(key=lambda d: -abs(d.significance))
    return detections, footprints


def _mergeDipoles(
    found: list[tuple[str, float, int, int, int]], radius: float, x0: int, y0: int
) -> list[Detection]:
    positives = [f for f in found if f[0] == "positive"]
    negatives = [f for f in found if f[0] == "negative"]
    usedNegative: set[int] = set()
    out: list[Detection] = []
    for kind, sig, px, py, size in positives:
        best = None
        if radius > 0:
            for j, (_, _, nx, ny, _) in enumerate(negatives):
                if j in usedNegative:
                    continue
                dist = math.hypot(nx - px, ny - py)
                if dist <= radius and (best is None or dist < best[0]):
                    best = (dist, j)
        if best is None:
            out.append(Detection(float(px + x0), float(py + y0), sig, kind, size))
        else:
            j = best[1]
            usedNegative.add(j)
            nsig, nsize = negatives[j][1], negatives[j][4]
            peak = sig if abs(sig) >= abs(nsig) else nsig
            out.append(Detection(float(px + x0), float(py + y0), peak, "dipole", size + nsize))
    for j, (kind, sig, px, py, size) in enumerate(negatives):
        if j not in usedNegative:
            out.append(Detection(float(px + x0), float(py + y0), sig, kind, size))
    return out


def _kernelFwhm(kernel: np.ndarray) -> float:
    """Gaussian-equivalent FWHM (pixels) of a normalised kernel from its second moments."""
    ny, nx = kernel.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    w = np.clip(kernel, 0.0, None)
    w = w / w.sum()
    xc, yc = (w * xx).sum(), (w * yy).sum()
    var = 0.5 * ((w * (xx - xc) ** 2).sum() + (w * (yy - yc) ** 2).sum())
    return 2.0 * math.sqrt(2.0 * math.log(2.0)) * math.sqrt(max(var, 0.0))


def footprintMask(footprints: np.ndarray, grow: int) -> np.ndarray:
    """Grow boolean footprints by ``grow`` pixels with a disc (for ``DETECTED`` planes)."""
    if grow <= 0:
        return np.asarray(footprints, dtype=bool)
    r = int(grow)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = xx * xx + yy * yy <= r * r
    return ndimage.binary_dilation(footprints, structure=disc)


def _badPixelsFromMask(mask: Any, planes: Iterable[str] = BAD_MASK_PLANES) -> np.ndarray | None:
    """Boolean array of pixels flagged in any of ``planes`` that the mask defines."""
    if mask is None:
        return None
    known = [p for p in planes if p in mask.planes]
    if not known:
        return np.zeros(mask.array.shape, dtype=bool)
    return (mask.array & mask.getPlaneBitMask(known)) != 0


def _requireType(value: Any, cls: type, name: str) -> None:
    if not isinstance(value, cls):
        raise DcrTypeError(f"{name} must be a {cls.__name__}", **{name: type(value).__name__})
