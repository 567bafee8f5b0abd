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
(the maximum-likelihood point-source significance for known background noise; see
Bosch et al. 2018, PASJ 70, S5, on detection in PSF-smoothed images). Connected pixels
above the threshold form a detection; a positive and a negative detection closer than
twice the PSF FWHM are one dipole.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from .._validate import asInt, isNumber
from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from ..fits import readExposure
from ..image import Box, Exposure, GaussianPsf, Image, Mask, MaskedImage

__all__ = [
    "COLOUR_CLASSES",
    "STATIC_COLOUR_CLASSES",
    "Detection",
    "TemplateResidual",
    "DifferenceMetrics",
    "TemplateEvaluation",
    "significanceImage",
    "detectSources",
    "footprintMask",
    "sourceFootprints",
    "templateResidual",
    "subtractTemplate",
    "differenceImageMetrics",
    "evaluateTemplates",
    "evaluateVisit",
    "improvement",
    "describeImprovement",
]

_log = logging.getLogger(__name__)

#: Colour classes of a known-truth catalogue's sources (`dcrmodel.simulate` draws them).
COLOUR_CLASSES = ("blueStar", "redStar", "galaxy", "transient")

#: The classes of the static sky, by which template residuals are split (transients are
#: not in a template).
STATIC_COLOUR_CLASSES = tuple(name for name in COLOUR_CLASSES if name != "transient")


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
    try:
        array = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a 2-d array of numbers or a dcrmodel Image",
                           **{name: type(value).__name__}) from None
    if array.ndim != 2:
        raise DcrShapeError(f"{name} must be a 2-d image", shape=array.shape)
    return array


def _checkKernel(kernel: Any) -> np.ndarray:
    try:
        k = np.asarray(kernel, dtype=np.float64)
    except (TypeError, ValueError):
        raise DcrTypeError("the PSF kernel must be a 2-d array of numbers",
                           kernel=type(kernel).__name__) from None
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
    # imported here: scipy.signal (with scipy.stats) costs a second of start-up to every
    # command that only makes templates
    from scipy.signal import fftconvolve

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
        one dipole; default: twice the kernel's FWHM (from its second moments): the lobes
        of a dipole sit about two filtered-PSF sigmas apart. 0 disables merging.

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
    if not (isNumber(threshold) and math.isfinite(threshold) and threshold > 0):
        raise DcrValueError("threshold must be a positive number of sigma", threshold=threshold)
    if polarity not in ("positive", "negative", "both"):
        raise DcrValueError("polarity must be 'positive', 'negative' or 'both'",
                            polarity=polarity)
    snr = significanceImage(image, variance, kernel, badPixels)
    if mergeRadius is None:
        mergeRadius = 2.0 * _kernelFwhm(_checkKernel(kernel))
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
    grow = asInt(grow, "grow")
    footprints = _asArray(footprints, "footprints") != 0
    if grow <= 0:
        return np.asarray(footprints, dtype=bool)
    r = int(grow)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = xx * xx + yy * yy <= r * r
    return ndimage.binary_dilation(footprints, structure=disc)


def _requireType(value: Any, cls: type, name: str) -> None:
    if not isinstance(value, cls):
        raise DcrTypeError(f"{name} must be of type {cls.__name__}", **{name: type(value).__name__})


# --------------------------------------------------------------------------------------
# Inputs: exposures, images or arrays on a common box
# --------------------------------------------------------------------------------------


@dataclass
class _Plane:
    """Pixels of an input with their parent box, variance and bad-pixel flags."""

    array: np.ndarray
    bbox: Any
    variance: np.ndarray | None
    bad: np.ndarray


def _plane(value: Any, name: str, bbox: Any = None) -> _Plane:
    """Normalise an Exposure, MaskedImage, Image or ndarray (on ``bbox``) to a `_Plane`."""
    if isinstance(value, Exposure):
        value = value.maskedImage
    if isinstance(value, MaskedImage):
        array = np.asarray(value.image.array, dtype=np.float64)
        variance = np.asarray(value.variance.array, dtype=np.float64)
        bad = value.mask.getBadPixels()
        return _Plane(array, value.bbox, variance, bad | ~np.isfinite(array))
    if isinstance(value, Image):
        array = np.asarray(value.array, dtype=np.float64)
        return _Plane(array, value.bbox, None, ~np.isfinite(array))
    if isinstance(value, np.ndarray):
        array = _asArray(value, name)
        box = bbox if bbox is not None else Box.fromShape(array.shape)
        if box.shape != array.shape:
            raise DcrShapeError(
                f"{name} has shape {array.shape} but the box it must cover is {box}; pass an "
                "Image or Exposure to give its position",
                shape=array.shape,
                bbox=box,
            )
        return _Plane(array, box, None, ~np.isfinite(array))
    raise DcrTypeError(
        f"{name} must be an Exposure, MaskedImage, Image or numpy array",
        **{name: type(value).__name__},
    )


def _cut(plane: _Plane, box: Any) -> _Plane:
    sy, sx = box.slices(plane.bbox)
    return _Plane(
        plane.array[sy, sx],
        box,
        None if plane.variance is None else plane.variance[sy, sx],
        plane.bad[sy, sx],
    )


def _common(*planes: _Plane) -> list[_Plane]:
    """Cut the planes to the intersection of their boxes (error when they do not overlap)."""
    box = planes[0].bbox
    for p in planes[1:]:
        box = box.intersection(p.bbox)
    if box.isEmpty():
        raise DcrShapeError(
            "the images do not overlap", boxes=[str(p.bbox) for p in planes]
        )
    return [_cut(p, box) for p in planes]


def _catalogueEntries(catalogue: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(catalogue, str | bytes | Mapping) or not isinstance(catalogue, Iterable):
        raise DcrTypeError("the catalogue must be a list of mappings with 'x' and 'y' (parent "
                           "pixels)", catalogue=type(catalogue).__name__)
    entries = list(catalogue)
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "x" not in entry or "y" not in entry:
            raise DcrTypeError(
                "catalogue entries must be mappings with at least 'x' and 'y' (parent "
                "pixels), as in the simulation manifest's 'sources'",
                entry=i,
            )
    return entries


def _kernelOf(value: Any, fwhm: float | None, name: str) -> np.ndarray:
    psf = getattr(value, "psf", None)
    if psf is not None:
        return np.asarray(psf.computeKernelImage(), dtype=np.float64)
    if fwhm is not None:

        return GaussianPsf(float(fwhm)).computeKernelImage()
    raise DcrValueError(
        f"{name} has no PSF; give fwhm (pixels) or a kernel for the matched filter"
    )


def _fwhmOf(value: Any, fwhm: float | None, name: str) -> float:
    if fwhm is not None:
        out = float(fwhm)
        if not (math.isfinite(out) and out > 0):
            raise DcrValueError("fwhm must be a positive number of pixels", fwhm=fwhm)
        return out
    psf = getattr(value, "psf", None)
    if psf is not None and psf.fwhm:
        return float(psf.fwhm)
    raise DcrValueError(f"{name} has no PSF; give fwhm (pixels) to size the footprints")


# --------------------------------------------------------------------------------------
# Template against truth
# --------------------------------------------------------------------------------------


def sourceFootprints(
    catalogue: Iterable[Mapping[str, Any]],
    bbox: Any,
    fwhm: float,
    footprintScale: float = 2.0,
) -> tuple[np.ndarray, list[Mapping[str, Any]]]:
    """Assign pixels to the catalogue's sources.

    Each source owns a disc of radius ``footprintScale * fwhm + 2 * halfLightRadius``
    around its position (``halfLightRadius`` from the entry, 0 when absent); a pixel in
    several discs goes to the source whose centre is nearest in units of its radius.

    Parameters
    ----------
    catalogue : iterable of mapping
        Entries with ``x``, ``y`` (parent pixels) and optionally ``halfLightRadius``
        (pixels) and ``colourClass``.
    bbox : dcrmodel.image.Box
        The region.
    fwhm : float
        PSF FWHM (pixels).
    footprintScale : float, optional
        Disc radius in units of the FWHM.

    Returns
    -------
    labels : numpy.ndarray of int
        Index of the owning entry for each pixel, -1 outside every footprint.
    entries : list of mapping
        The catalogue entries, in label order.
    """
    entries = _catalogueEntries(catalogue)
    labels = np.full(bbox.shape, -1, dtype=np.int64)
    best = np.full(bbox.shape, np.inf)
    for i, entry in enumerate(entries):
        radius = footprintScale * fwhm + 2.0 * float(entry.get("halfLightRadius", 0.0) or 0.0)
        x, y = float(entry["x"]) - bbox.minX, float(entry["y"]) - bbox.minY
        x0, x1 = max(int(math.floor(x - radius)), 0), min(int(math.ceil(x + radius)) + 1,
                                                           bbox.width)
        y0, y1 = max(int(math.floor(y - radius)), 0), min(int(math.ceil(y + radius)) + 1,
                                                           bbox.height)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        distance = np.hypot(xx - x, yy - y) / radius
        window = best[y0:y1, x0:x1]
        take = (distance <= 1.0) & (distance < window)
        window[take] = distance[take]
        labels[y0:y1, x0:x1][take] = i
    return labels, entries


@dataclass(frozen=True)
class TemplateResidual:
    """How far a template is from the truth.

    Attributes
    ----------
    relativeResidual : float
        ``sqrt(sum (template - truth)^2) / sqrt(sum truth^2)`` over the footprints of all
        catalogue sources.
    byClass : dict
        The same over the footprints of each colour class (``blueStar``, ``redStar``,
        ``galaxy``); NaN for a class without pixels.
    worstSigma : float
        Largest ``|template - truth| / sigma`` over all good pixels, ``sigma`` the science
        visit's noise (square root of its variance plane).
    numPixels : int
        Footprint pixels used.
    numPixelsByClass : dict
        Footprint pixels of each class.
    """

    relativeResidual: float
    byClass: dict[str, float]
    worstSigma: float
    numPixels: int
    numPixelsByClass: dict[str, int] = field(default_factory=dict)

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "relativeResidual": self.relativeResidual,
            "byClass": dict(self.byClass),
            "worstSigma": self.worstSigma,
            "numPixels": self.numPixels,
            "numPixelsByClass": dict(self.numPixelsByClass),
        }


def templateResidual(
    template: Any,
    truth: Any,
    catalogue: Iterable[Mapping[str, Any]],
    variance: Any = None,
    fwhm: float | None = None,
    footprintScale: float = 2.0,
    border: int = 0,
) -> TemplateResidual:
    """Measure a template against the noiseless truth.

    Parameters
    ----------
    template : Exposure, MaskedImage, Image or numpy.ndarray
        The template (for example ``DcrModel.buildMatchedTemplate`` or the plain coadd).
        Its masked (``BAD``, ``SAT``, ``CR``, ``NO_DATA``, ``EDGE``) and non-finite pixels
        are left out.
    truth : Exposure, MaskedImage, Image or numpy.ndarray
        Noiseless static sky as the science visit sees it (``truthStatic`` of the
        simulation manifest). An array must cover the template's box.
    catalogue : iterable of mapping
        Sources (``x``, ``y``, ``colourClass``, ``halfLightRadius``), as the manifest's
        ``sources``.
    variance : Exposure, Image or numpy.ndarray, optional
        The science visit's variance (or the visit itself); default: the truth's
        variance plane (the simulator writes the visit's expected variance there).
    fwhm : float, optional
        PSF FWHM (pixels) for the footprints; default: the truth's PSF.
    footprintScale : float, optional
        Footprint radius in FWHM (see `sourceFootprints`).
    border : int, optional
        Pixels at the edges of the common box left out.

    Returns
    -------
    TemplateResidual

    Raises
    ------
    DcrShapeError
        If the inputs do not overlap.
    DcrValueError
        If no FWHM can be found, no variance is available, or no footprint pixel is left.
    """
    width = _fwhmOf(truth, fwhm, "the truth")
    templatePlane = _plane(template, "template")
    truthPlane = _plane(truth, "truth", templatePlane.bbox)
    if variance is None:
        variancePlane = truthPlane
        if truthPlane.variance is None:
            raise DcrValueError(
                "no variance to express the residual in noise sigmas: pass variance (the "
                "science exposure or its variance plane) or a truth Exposure"
            )
    else:
        variancePlane = _plane(variance, "variance", templatePlane.bbox)
    templatePlane, truthPlane, variancePlane = _common(templatePlane, truthPlane, variancePlane)
    sigma2 = variancePlane.variance if variancePlane.variance is not None else variancePlane.array
    good = ~(templatePlane.bad | truthPlane.bad) & np.isfinite(sigma2) & (sigma2 > 0)
    if border > 0:
        edge = np.ones_like(good)
        edge[border:-border, border:-border] = False
        good &= ~edge
    residual = templatePlane.array - truthPlane.array
    labels, entries = sourceFootprints(catalogue, templatePlane.bbox, width, footprintScale)
    inside = (labels >= 0) & good
    if not inside.any():
        raise DcrValueError("no unmasked footprint pixel: the catalogue has no source in the box")

    def ratio(selection: np.ndarray) -> float:
        denominator = float(np.sum(truthPlane.array[selection] ** 2))
        if not selection.any() or denominator <= 0:
            return float("nan")
        return math.sqrt(float(np.sum(residual[selection] ** 2)) / denominator)

    classes = np.array([str(e.get("colourClass", "")) for e in entries] + [""])
    pixelClass = classes[labels]  # label -1 picks the trailing ""
    byClass: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name in STATIC_COLOUR_CLASSES:
        selection = inside & (pixelClass == name)
        byClass[name] = ratio(selection)
        counts[name] = int(selection.sum())
    worst = float(np.max(np.abs(residual[good]) / np.sqrt(sigma2[good]))) if good.any() else 0.0
    return TemplateResidual(ratio(inside), byClass, worst, int(inside.sum()), counts)


# --------------------------------------------------------------------------------------
# Difference imaging
# --------------------------------------------------------------------------------------


def subtractTemplate(science: Any, template: Any) -> Any:
    """Return ``science - template`` as an exposure (same PSF case: no PSF matching).

    Parameters
    ----------
    science : dcrmodel.image.Exposure
        The science exposure.
    template : Exposure, MaskedImage, Image or numpy.ndarray
        The template on (part of) the science exposure's box; an array must cover the
        whole box.

    Returns
    -------
    dcrmodel.image.Exposure
        On the common box: image ``science - template``, variance the sum of both variances
        (the template's counts only when it has one), mask the science mask with the
        template's bad pixels added as ``NO_DATA``; the science exposure's WCS, PSF, visit
        info, filter and calibration.
    """
    _requireType(science, Exposure, "science")
    sciencePlane = _plane(science, "science")
    templatePlane = _plane(template, "template", science.bbox)
    sciencePlane, templatePlane = _common(sciencePlane, templatePlane)
    box = sciencePlane.bbox
    variance = sciencePlane.variance.copy()
    if templatePlane.variance is not None:
        variance += np.where(np.isfinite(templatePlane.variance), templatePlane.variance, 0.0)
    difference = np.where(templatePlane.bad, 0.0, sciencePlane.array - templatePlane.array)
    mask = Mask(science.mask[box].array.copy(), bbox=box, planes=science.mask.planes)
    mask.array[templatePlane.bad] |= mask.getPlaneBitMask("NO_DATA")
    return Exposure(
        MaskedImage(Image(difference, bbox=box), mask, Image(variance, bbox=box)),
        wcs=science.wcs,
        psf=science.psf,
        visitInfo=science.visitInfo,
        filter=science.filter,
        photoCalib=science.photoCalib,
    )


@dataclass(frozen=True)
class DifferenceMetrics:
    """Detections in a difference image and how they match the injected transients.

    Attributes
    ----------
    numDetections : int
        Detections at or above the threshold (dipoles counted once).
    numFalse : int
        Detections not at an injected transient: DCR dipoles, residuals of bad templates.
    numTransients : int
        Transients injected in the visit.
    numRecovered : int
        Transients with a positive (or dipole) detection within the match radius.
    recoveredFraction : float
        ``numRecovered / numTransients`` (NaN without transients).
    threshold : float
        Detection threshold (sigma).
    detections : tuple of Detection
        All detections.
    falseDetections : tuple of Detection
        The false ones.
    """

    numDetections: int
    numFalse: int
    numTransients: int
    numRecovered: int
    recoveredFraction: float
    threshold: float
    detections: tuple[Detection, ...] = ()
    falseDetections: tuple[Detection, ...] = ()

    def toDict(self, withDetections: bool = False) -> dict[str, Any]:
        """Return a JSON-ready dictionary (optionally with the detections)."""
        out: dict[str, Any] = {
            "numDetections": self.numDetections,
            "numFalse": self.numFalse,
            "numTransients": self.numTransients,
            "numRecovered": self.numRecovered,
            "recoveredFraction": self.recoveredFraction,
            "threshold": self.threshold,
        }
        if withDetections:
            out["detections"] = [d.toDict() for d in self.detections]
            out["falseDetections"] = [d.toDict() for d in self.falseDetections]
        return out


def differenceImageMetrics(
    science: Any,
    template: Any,
    transients: Sequence[Mapping[str, Any]] = (),
    threshold: float = 5.0,
    matchRadius: float | None = None,
    fwhm: float | None = None,
    border: int = 0,
) -> DifferenceMetrics:
    """Subtract a template, detect at ``threshold`` sigma and score the detections.

    Parameters
    ----------
    science : dcrmodel.image.Exposure
        Science exposure, with its variance plane and (preferably) its PSF.
    template : Exposure, MaskedImage, Image or numpy.ndarray
        The template (see `subtractTemplate`).
    transients : sequence of mapping, optional
        Injected transients of this visit, with ``x``, ``y`` (parent pixels).
    threshold : float, optional
        Detection threshold in sigma of the PSF-matched filter.
    matchRadius : float, optional
        A detection within this distance (pixels) of a transient recovers it; default
        ``max(2, FWHM)``.
    fwhm : float, optional
        PSF FWHM (pixels) when the science exposure has no PSF (a Gaussian kernel is used).
    border : int, optional
        Detections closer than this to the edge of the difference image are ignored.

    Returns
    -------
    DifferenceMetrics

    Notes
    -----
    Pixels flagged ``BAD``, ``SAT``, ``CR``, ``NO_DATA`` or ``EDGE`` (in the science mask,
    or bad in the template) are left out of the matched filter. Positive and negative
    detections are both counted (a DCR dipole's lobes are merged into one detection); a
    negative detection never recovers a transient.
    """
    difference = subtractTemplate(science, template)
    kernel = _kernelOf(science, fwhm, "the science exposure")
    width = _kernelFwhm(_checkKernel(kernel)) if fwhm is None else float(fwhm)
    if matchRadius is None:
        matchRadius = max(2.0, width)
    bad = difference.mask.getBadPixels()
    detections, _ = detectSources(
        difference.image.array,
        difference.variance.array,
        kernel,
        threshold,
        badPixels=bad,
        origin=difference.bbox.begin,
    )
    box = difference.bbox
    if border > 0:
        detections = [
            d for d in detections
            if box.minX + border <= d.x <= box.maxX - border
            and box.minY + border <= d.y <= box.maxY - border
        ]
    points = [(float(t["x"]), float(t["y"])) for t in transients]
    recovered = set()
    matched = set()
    for i, d in enumerate(detections):
        if d.kind == "negative":
            continue
        for j, (tx, ty) in enumerate(points):
            if math.hypot(d.x - tx, d.y - ty) <= matchRadius:
                recovered.add(j)
                matched.add(i)
    false = tuple(d for i, d in enumerate(detections) if i not in matched)
    numTransients = len(points)
    return DifferenceMetrics(
        numDetections=len(detections),
        numFalse=len(false),
        numTransients=numTransients,
        numRecovered=len(recovered),
        recoveredFraction=len(recovered) / numTransients if numTransients else float("nan"),
        threshold=float(threshold),
        detections=tuple(detections),
        falseDetections=false,
    )


# --------------------------------------------------------------------------------------
# Comparing templates
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateEvaluation:
    """Both families of measures for one template on one visit."""

    residual: TemplateResidual
    difference: DifferenceMetrics

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {"residual": self.residual.toDict(), "difference": self.difference.toDict()}


def evaluateTemplates(
    science: Any,
    truth: Any,
    templates: Mapping[str, Any],
    catalogue: Iterable[Mapping[str, Any]],
    transients: Sequence[Mapping[str, Any]] = (),
    threshold: float = 5.0,
    footprintScale: float = 2.0,
    border: int = 0,
) -> dict[str, TemplateEvaluation]:
    """Evaluate several templates (for example ``"dcr"`` and ``"coadd"``) on one visit.

    Parameters
    ----------
    science : dcrmodel.image.Exposure
        The science visit.
    truth : Exposure or Image
        Its noiseless static sky (``truthStatic`` of the manifest).
    templates : mapping of str to template
        Templates by name.
    catalogue : iterable of mapping
        The manifest's ``sources``.
    transients : sequence of mapping, optional
        The visit's injected transients.
    threshold, footprintScale, border
        See `templateResidual` and `differenceImageMetrics`.

    Returns
    -------
    dict of str to TemplateEvaluation
    """
    entries = _catalogueEntries(catalogue)
    out = {}
    for name, template in templates.items():
        out[name] = TemplateEvaluation(
            templateResidual(template, truth, entries, variance=science,
                             footprintScale=footprintScale, border=border),
            differenceImageMetrics(science, template, transients, threshold, border=border),
        )
    return out


def evaluateVisit(
    manifest: Any,
    visitId: int,
    templates: Mapping[str, Any],
    includeCoadd: bool = True,
    threshold: float = 5.0,
    border: int = 0,
) -> dict[str, TemplateEvaluation]:
    """Evaluate templates on a visit of a simulation folder, beside the plain coadd.

    Parameters
    ----------
    manifest : dcrmodel.simulate.field.SimulationManifest
        The simulation (`dcrmodel.simulate.field.loadManifest`).
    visitId : int
        The visit.
    templates : mapping of str to template
        Templates by name, on the visit's box.
    includeCoadd : bool, optional
        Add the simulation's plain coadd as the template ``"coadd"``.
    threshold, border
        See `differenceImageMetrics`.

    Returns
    -------
    dict of str to TemplateEvaluation
    """
    if not callable(getattr(manifest, "visit", None)):
        raise DcrTypeError("manifest must be a simulation manifest "
                           "(dcrmodel.simulate.loadManifest)", manifest=type(manifest).__name__)
    visit = manifest.visit(visitId)
    science = readExposure(manifest.path(visit["file"]))
    truth = readExposure(manifest.path(visit["truthStatic"]))
    chosen = dict(templates)
    if includeCoadd:
        if "coadd" in chosen:
            raise DcrValueError("a template is already named 'coadd'; rename it")
        chosen["coadd"] = readExposure(manifest.coaddPath)
    return evaluateTemplates(
        science, truth, chosen, manifest["sources"], manifest.transients(visitId),
        threshold=threshold, border=border,
    )


def improvement(candidate: TemplateEvaluation, baseline: TemplateEvaluation) -> dict[str, float]:
    """Ratios of a baseline's (the plain coadd's) measures to a candidate's.

    Returns
    -------
    dict
        ``residualRatio``: baseline relative residual over the candidate's (how many times
        less residual); ``falseDetectionRatio``: baseline false detections over the
        candidate's (``inf`` when the candidate has none and the baseline some, NaN when
        neither has any); ``recoveredFraction`` of the candidate.
    """
    _requireType(candidate, TemplateEvaluation, "candidate")
    _requireType(baseline, TemplateEvaluation, "baseline")
    res = baseline.residual.relativeResidual / candidate.residual.relativeResidual \
        if candidate.residual.relativeResidual > 0 else math.inf
    a, b = baseline.difference.numFalse, candidate.difference.numFalse
    if b == 0:
        falseRatio = math.inf if a > 0 else math.nan
    else:
        falseRatio = a / b
    return {
        "residualRatio": res,
        "falseDetectionRatio": falseRatio,
        "recoveredFraction": candidate.difference.recoveredFraction,
    }


def describeImprovement(
    candidate: TemplateEvaluation, baseline: TemplateEvaluation, name: str = "plain coadd"
) -> str:
    """One sentence comparing a template with a baseline, honest about zero counts."""
    ratios = improvement(candidate, baseline)
    a, b = baseline.difference.numFalse, candidate.difference.numFalse
    if b == 0 and a == 0:
        falsePart = f"no false detections, as with the {name}"
    elif b == 0:
        falsePart = f"no false detections where the {name} has {a}"
    elif a >= b:
        falsePart = (
            f"{ratios['falseDetectionRatio']:.1f} times fewer false detections than a {name} "
            f"({b} vs {a})"
        )
    else:
        falsePart = f"more false detections than a {name} ({b} vs {a})"
    recovered = candidate.difference
    transientPart = (
        f"; {recovered.numRecovered}/{recovered.numTransients} transients recovered"
        if recovered.numTransients else ""
    )
    return (
        f"{ratios['residualRatio']:.1f} times less residual against the truth than a {name}, "
        f"{falsePart}{transientPart}"
    )
