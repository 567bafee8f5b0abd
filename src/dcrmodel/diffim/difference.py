"""Difference imaging with a DCR-matched template.

One function that does what a survey pipeline does with a DCR model: build the template
matched to a science exposure's observing conditions (`DcrModel.buildMatchedExposure`),
subtract it, and detect what is left at a threshold in sigma with the PSF-matched filter
of `dcrmodel.diffim.metrics`. The difference exposure carries the detections' footprints in its
``DETECTED`` mask plane (and ``DETECTED_NEGATIVE`` for negative ones).

The science exposure may be on any WCS (`templateForExposure`): on the model's pixel grid it
is cut to the model's box and the template made there, as always; on any other grid the
template is made on the model's grid and warped onto the exposure's
(`dcrmodel.model.visitgrid`), merged from several models where the exposure spans several
patches (`dcrmodel.model.buildMatchedExposureFromModels`), and the difference is on the
exposure's own box. Pixels without a template (``NO_DATA``) and pixels whose model rests on
too few visits (`dcrmodel.model.LOW_COVERAGE_PLANE`) are never detected.

Which image is convolved (``matchTo``): by default the template is made at the science
exposure's own PSF (the model's PSF matched to it). A science exposure sharper than the
model's PSF would need that matching to amplify the model's high frequencies (and their
noise); for it the science exposure is convolved to the model's PSF instead and the
template is made at the model's PSF, the usual choice of image differencing for a science
image sharper than its template (Alard & Lupton 1998, ApJ 503, 325, section 2).
``matchTo="auto"`` chooses between the two per exposure (see `chooseMatchTo`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft
from scipy import ndimage

from .._validate import isNumber
from ..errors import (
    DcrMetadataError,
    DcrPsfWarning,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
)
from ..fourier import cropFromPadded, fillBadPixels, paddedShape, padToShape
from ..image import (
    BAD_MASK_PLANES,
    Exposure,
    Image,
    Mask,
    MaskedImage,
    Psf,
    checkSameBand,
    checkUsablePixels,
)
from ..model import (
    DEFAULT_PSF_DAMPING,
    DEFAULT_PSF_MAX_GAIN,
    LOW_COVERAGE_PLANE,
    DcrModel,
    buildMatchedExposureFromModels,
    checkModelsCompatible,
    onModelGrid,
    overlappingModels,
    visitPsfOnModel,
)
from ..psf import effectiveKernelSize, estimatePsf, maxKernelSize, psfMatchingTransfer
from .metrics import (
    Detection,
    detectSources,
    significanceImage,
    subtractTemplate,
)

__all__ = [
    "cropToModel",
    "AUTO_MISSING_FRACTION",
    "MATCH_TO_MODES",
    "DifferenceResult",
    "chooseMatchTo",
    "convolveToPsf",
    "makeDifference",
    "noiseCorrelationFactor",
    "templateForExposure",
]

MATCH_TO_MODES = ("auto", "template", "science")
"""The values of ``matchTo`` in `makeDifference`."""

AUTO_MISSING_FRACTION = 0.05
"""Threshold of ``matchTo="auto"``: the science exposure is convolved instead of the
template when the template, PSF-matched to it with the template's damping and gain limit,
would miss more than this fraction of a point source's flux (`chooseMatchTo`)."""

# Damping of the science-to-model kernel OTF_model / OTF_science (relative to max|OTF|,
# see dcrmodel.psf.matching.psfMatchingTransfer): it only acts where the science OTF is tiny,
# which for a science exposure sharper than the model is where the model's OTF is tinier.
_SCIENCE_DAMPING = 1e-3
# Largest gain of the science kernel without a warning that it sharpens (deconvolves).
_SHARPENING_GAIN = 1.5
# Fraction of the convolution kernel's absolute sum left outside the radius by which bad
# pixels are grown and the border flagged (dcrmodel.psf.kernels.effectiveKernelSize). Bad pixels
# are
# filled with the template first, so what leaks past that radius is at most 1 % of the
# (small) error of the fill; a tighter tail would flag far more, as the quotient of two
# Kolmogorov PSFs has wide, faint wings.
_KERNEL_TAIL = 1e-2


@dataclass
class DifferenceResult:
    """What `makeDifference` returns.

    Attributes
    ----------
    template : `dcrmodel.image.Exposure`
        The DCR-matched template, on the science exposure's box.
    difference : `dcrmodel.image.Exposure`
        ``science - template`` with the summed variance; ``DETECTED`` and
        ``DETECTED_NEGATIVE`` mark the detections' footprints.
    detections : list of `dcrmodel.diffim.metrics.Detection`
        Detections at or above the threshold, brightest first, in parent pixels.
    threshold : float
        The detection threshold (sigma).
    matchTo : str
        The image that was convolved to the other's PSF: ``"template"`` (the template at
        the science exposure's PSF) or ``"science"`` (the science exposure convolved to the
        model's PSF, the template at the model's PSF); never ``"auto"``.
    science : `dcrmodel.image.Exposure`
        The science exposure as subtracted: the input (on the common box) in
        ``"template"`` mode, the convolved one in ``"science"`` mode.
    missingFraction : float or None
        The criterion of ``matchTo="auto"`` (see `chooseMatchTo`), None when it was not
        evaluated (an explicit ``matchTo``, or a PSF missing).
    noiseCorrelation : float
        The factor applied to the convolved science exposure's variance for detection
        (`noiseCorrelationFactor`; 1 in ``"template"`` mode). The variance planes of
        ``science`` and ``difference`` hold the per-pixel variance, without it.
    """

    template: Exposure
    difference: Exposure
    detections: list[Detection]
    threshold: float
    matchTo: str = "template"
    science: Exposure | None = None
    missingFraction: float | None = None
    noiseCorrelation: float = 1.0

    def toDict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (the detections as dictionaries)."""
        return {
            "threshold": self.threshold,
            "matchTo": self.matchTo,
            "missingFraction": self.missingFraction,
            "noiseCorrelation": self.noiseCorrelation,
            "numDetections": len(self.detections),
            "detections": [d.toDict() for d in self.detections],
        }


def _kernelOf(psf: Psf) -> np.ndarray:
    return np.asarray(psf.computeKernelImage(), dtype=float)


def _detectionKernel(exposure: Exposure) -> np.ndarray:
    if exposure.psf is not None:
        return _kernelOf(exposure.psf)

    return np.asarray(estimatePsf(exposure).psf.computeKernelImage(), dtype=float)


def _checkPsf(psf: Any, name: str, fix: str) -> Psf:
    if psf is None:
        raise DcrMetadataError(f"{name} has no PSF; {fix}", psf=None)
    if not isinstance(psf, Psf):
        raise DcrTypeError(f"{name}'s PSF must be a dcrmodel.image.Psf", psf=type(psf).__name__)
    return psf


def _modelPsf(model: Any) -> Psf:
    return _checkPsf(getattr(model, "psf", None), "the DCR model",
                     "build it with PSFs (DcrAssembleConfig usePsf=True, visits with a PSF) "
                     "or use matchTo='template'")


def _sciencePsf(psf: Any) -> Psf:
    return _checkPsf(psf, "the science exposure",
                     "give the exposure a PSF (Exposure.psf, the PSF HDU of its file) or the "
                     "psf option, or use matchTo='template'")


def chooseMatchTo(
    model: Any,
    sciencePsf: Psf,
    psfDamping: float | None = None,
    psfMaxGain: float | None | str = "default",
    missingFraction: float = AUTO_MISSING_FRACTION,
) -> tuple[str, float]:
    """Decide which image to convolve for a difference image: template or science.

    Parameters
    ----------
    model : `dcrmodel.model.core.DcrModel`
        The DCR model; it must have a PSF and a filter.
    sciencePsf : `dcrmodel.image.Psf`
        The science exposure's PSF.
    psfDamping : float, optional
        The damping the template's PSF matching would use (None: the model's default,
        `dcrmodel.model.core.DEFAULT_PSF_DAMPING`).
    psfMaxGain : float or None, optional
        The gain limit the template's PSF matching would use (``"default"``:
        `dcrmodel.model.core.DEFAULT_PSF_MAX_GAIN`; None: no limit).
    missingFraction : float, optional
        Threshold on the missing fraction (dimensionless, default `AUTO_MISSING_FRACTION`).

    Returns
    -------
    matchTo : str
        ``"science"`` if the template, PSF-matched to the science PSF at the band's
        effective wavelength with these damping settings, would miss more than
        ``missingFraction`` of a point source's flux (the L1 norm of
        ``OTF_science - H OTF_model``, `dcrmodel.psf.matching.PsfMatch.residualFraction`), i.e. the
        science exposure is sharper than the model in a way the template cannot follow;
        else ``"template"``.
    fraction : float
        That missing fraction.

    Raises
    ------
    DcrMetadataError
        If the model has no PSF or no filter.

    Notes
    -----
    The fraction is about 0 for a science PSF as broad as the model's or broader, and grows
    quickly once the science PSF is sharper. With the default damping and gain limit 2,
    for Gaussian PSFs against a model of FWHM 3.66 pixels: 0.004 at 3.6 pixels, 0.022 at
    3.3, 0.054 at 3.2, 0.16 at 3.0, 0.57 at 2.5; in ``benchmarks/bench_psf.py`` (d),
    Kolmogorov visits of 0.75-1.2 arcsec against their model (0.73 arcsec) give 0.003 or
    less and a 0.5 arcsec visit 0.42. The threshold 0.05 thus switches to ``"science"``
    once the science PSF is about 12 % sharper than the model's, and lets a science
    exposure a little sharper keep the (slightly damped) matched template.
    """
    modelPsf = _modelPsf(model)
    sciencePsf = _sciencePsf(sciencePsf)
    damping = DEFAULT_PSF_DAMPING if psfDamping is None else psfDamping
    gain = DEFAULT_PSF_MAX_GAIN if isinstance(psfMaxGain, str) else psfMaxGain
    side = max(maxKernelSize([modelPsf, sciencePsf]), 3)
    grid = paddedShape((side, side), 0.0, psfSize=side)
    match = psfMatchingTransfer(
        sciencePsf, modelPsf, grid, effectiveWavelength=model.effectiveWavelength,
        damping=damping, maxGain=gain,
    )
    fraction = match.residualFraction()
    return ("science" if fraction > missingFraction else "template"), fraction


def _badPixels(exposure: Exposure) -> np.ndarray:
    bad = exposure.mask.getBadPixels()
    return bad | ~np.isfinite(exposure.image.array) | ~np.isfinite(exposure.variance.array)


def convolveToPsf(
    science: Exposure,
    targetPsf: Psf,
    effectiveWavelength: float | None = None,
    fill: np.ndarray | None = None,
    damping: float = _SCIENCE_DAMPING,
) -> tuple[Exposure, np.ndarray]:
    """Convolve an exposure to a broader PSF: ``K = OTF_target / OTF_science``.

    Parameters
    ----------
    science : `dcrmodel.image.Exposure`
        The exposure, with a PSF (at the band's effective wavelength).
    targetPsf : `dcrmodel.image.Psf`
        The PSF to convolve to (for a difference image, the DCR model's), broader than the
        exposure's for the kernel to be a smoothing one.
    effectiveWavelength : float, optional
        The band's effective wavelength (nm): both PSFs are taken there (fallback for a PSF
        that carries none).
    fill : numpy.ndarray, optional
        Values (counts, on the exposure's box) put in the bad pixels before convolving, so
        that they do not leak (for a difference image: the template). Bad pixels where it
        is not finite, or all of them without it, get their nearest good neighbour.
    damping : float, optional
        Damping of the quotient relative to ``max|OTF_science|`` (dimensionless), see
        `dcrmodel.psf.matching.psfMatchingTransfer`; it acts only where the exposure's OTF is
        tiny.

    Returns
    -------
    convolved : `dcrmodel.image.Exposure`
        The image convolved with ``K``; the variance convolved with the squared kernel
        ``K**2`` (real space), the exact variance of each pixel for independent input
        pixels, which ignores the correlation the convolution gives the noise (the matched
        filter of a detection sees a slightly larger noise than it assumes); the mask with
        each bad plane (``BAD``, ``SAT``, ``CR``, ``NO_DATA``, ``EDGE``) grown by the
        kernel's radius, non-finite input pixels flagged ``NO_DATA`` and a border of the
        kernel's radius (computed from edge-extended values) flagged ``EDGE``; PSF
        ``targetPsf``; WCS, visit info, filter and calibration of the input.
    kernel : numpy.ndarray
        The convolution kernel in real space, centred, cut to the centred box holding all
        but 1 % of its absolute sum; its radius ``kernel.shape[0] // 2`` (pixels) is the
        one by which bad pixels are grown and the border is flagged ``EDGE``.

    Raises
    ------
    DcrMetadataError
        If the exposure has no PSF.
    DcrShapeError
        If ``fill`` does not have the exposure's shape.
    DcrValueError
        If every pixel of the exposure is bad.

    Warns
    -----
    DcrPsfWarning
        If the kernel amplifies some frequency more than 1.5 times: the exposure is broader
        than ``targetPsf`` and the convolution sharpens it (amplifying its noise).

    Notes
    -----
    The FFT grid is padded (edge values extended) by the larger PSF's whole kernel plus a
    margin, so nothing wraps around. With chromatic seeing the kernel is exact at the
    effective wavelength only; across the band the convolved PSF differs from the target
    by the science PSF's chromatic change.
    """
    _checkExposure(science, "science")
    sciencePsf = _sciencePsf(science.psf)
    _checkPsf(targetPsf, "the target", "give a dcrmodel.image.Psf")
    shape = science.image.array.shape
    if fill is not None and np.shape(fill) != shape:
        raise DcrShapeError("fill must have the exposure's shape", fill=np.shape(fill),
                            shape=shape)
    side = maxKernelSize([targetPsf, sciencePsf])
    padded = paddedShape(shape, 0.0, psfSize=side)
    # psfMatchingTransfer gives H = OTF_first / OTF_second, damped where OTF_second is tiny.
    match = psfMatchingTransfer(targetPsf, sciencePsf, padded,
                                effectiveWavelength=effectiveWavelength, damping=damping)
    transfer = match.transfer
    gain = float(np.abs(transfer).max())
    if gain > _SHARPENING_GAIN:
        warnings.warn(
            f"the science exposure is broader than the target PSF (the kernel amplifies some "
            f"frequencies {gain:.3g} times): convolving it to that PSF sharpens it and "
            "amplifies its noise; for a difference image use matchTo='template' or 'auto'",
            DcrPsfWarning,
            stacklevel=2,
        )
    kernel = scipy.fft.irfft2(transfer, s=padded)  # centred at index (0, 0)
    half = min(padded) // 2 - 1
    centred = np.roll(kernel, (half, half), axis=(0, 1))[: 2 * half + 1, : 2 * half + 1]
    radius = effectiveKernelSize([centred], tailFraction=_KERNEL_TAIL) // 2
    centred = centred[half - radius : half + radius + 1, half - radius : half + radius + 1]

    bad = _badPixels(science)
    image = np.asarray(science.image.array, dtype=float)
    variance = np.asarray(science.variance.array, dtype=float)
    if bad.all():
        raise DcrValueError("every pixel of the science exposure is bad (masked or not finite)")
    if bad.any():
        image = image.copy()
        if fill is not None:
            values = np.asarray(fill, dtype=float)
            usable = bad & np.isfinite(values)
            image[usable] = values[usable]
            image = fillBadPixels(image, bad & ~usable)
        else:
            image = fillBadPixels(image, bad)
        goodVariance = variance[~bad]
        variance = np.where(bad, float(np.median(goodVariance)), variance)
    convolved = scipy.fft.irfft2(scipy.fft.rfft2(padToShape(image, padded)) * transfer,
                                 s=padded)
    squared = scipy.fft.rfft2(kernel * kernel)
    convolvedVariance = scipy.fft.irfft2(scipy.fft.rfft2(padToShape(variance, padded)) * squared,
                                         s=padded)

    mask = Mask(science.mask.array.copy(), bbox=science.bbox, planes=science.mask.planes)
    nonFinite = ~np.isfinite(science.image.array) | ~np.isfinite(science.variance.array)
    if nonFinite.any():
        mask.array[nonFinite] |= np.int32(1 << mask.addMaskPlane("NO_DATA"))
    if radius > 0:
        for plane in (p for p in BAD_MASK_PLANES if p in mask.planes):
            bit = np.int32(mask.getPlaneBitMask(plane))
            flagged = (mask.array & bit) != 0
            if flagged.any():
                # a square of side 2 radius + 1 (separable, so fast for wide kernels)
                mask.array[ndimage.maximum_filter(flagged, size=2 * radius + 1)] |= bit
        border = np.ones(shape, dtype=bool)
        border[radius:-radius, radius:-radius] = False
        mask.array[border] |= np.int32(1 << mask.addMaskPlane("EDGE"))
    masked = MaskedImage(
        Image(cropFromPadded(convolved, shape).copy(), bbox=science.bbox),
        mask,
        Image(np.maximum(cropFromPadded(convolvedVariance, shape), 0.0), bbox=science.bbox),
    )
    return Exposure(masked, wcs=science.wcs, psf=targetPsf, visitInfo=science.visitInfo,
                    filter=science.filter, photoCalib=science.photoCalib), centred


def noiseCorrelationFactor(kernel: np.ndarray, detectionKernel: np.ndarray) -> float:
    """Return how much a convolution raises the matched-filter noise above its per-pixel model.

    White noise of variance ``s2`` convolved with ``kernel`` has per-pixel variance
    ``s2 * sum(kernel**2)``, the variance plane `convolveToPsf` gives. Its pixels are
    correlated, so a matched filter ``D`` (normalised) sums them to a variance
    ``s2 * sum((D * kernel)**2)`` (``*`` convolution), not the ``s2 * sum(kernel**2) *
    sum(D**2)`` that treating the pixels as independent gives. The ratio of the two is
    returned: the factor by which the convolved image's variance must be multiplied for
    matched-filter significances to be right (1 for a delta-function kernel, larger for a
    wider one).

    Parameters
    ----------
    kernel : numpy.ndarray
        The convolution kernel (2-D).
    detectionKernel : numpy.ndarray
        The matched filter (the PSF kernel of the convolved image).

    Returns
    -------
    float
        The factor (dimensionless, >= 0).
    """
    from scipy.signal import fftconvolve

    try:
        k = np.asarray(kernel, dtype=float)
        d = np.asarray(detectionKernel, dtype=float)
    except (TypeError, ValueError):
        raise DcrTypeError("kernel and detectionKernel must be 2-d arrays of numbers",
                           kernel=type(kernel).__name__,
                           detectionKernel=type(detectionKernel).__name__) from None
    if k.ndim != 2 or d.ndim != 2:
        raise DcrShapeError("kernel and detectionKernel must be 2-d arrays",
                            kernel=k.shape, detectionKernel=d.shape)
    d = d / d.sum()
    independent = float(np.sum(k * k) * np.sum(d * d))
    if not independent > 0:
        return 1.0
    return float(np.sum(fftconvolve(d, k, mode="full") ** 2)) / independent


def cropToModel(model: Any, exposure: Exposure) -> Exposure:
    """Return the part of an exposure that lies inside a DCR model's box.

    Parameters
    ----------
    model : `dcrmodel.model.core.DcrModel`
        The DCR model.
    exposure : `dcrmodel.image.Exposure`
        An exposure on the model's pixel grid.

    Returns
    -------
    `dcrmodel.image.Exposure`
        ``exposure`` itself when it lies inside the model's box, else its cutout there.

    Raises
    ------
    DcrShapeError
        If the exposure does not overlap the model.
    """
    _checkExposure(exposure)
    _asModels(model)
    box = exposure.bbox.intersection(model.bbox)
    if box.isEmpty():
        raise DcrShapeError(
            "The exposure does not overlap the DCR model; give an exposure of the model's "
            "patch.", exposure=exposure.bbox, model=model.bbox,
        )
    return exposure[box] if box != exposure.bbox else exposure


def _asModels(model: Any) -> list[Any]:
    """One model (any object with the `DcrModel` API) or a list/tuple of `DcrModel`."""
    if isinstance(model, (list, tuple)):
        return checkModelsCompatible(model)
    if not isinstance(model, DcrModel) and not callable(getattr(model, "buildMatchedExposure",
                                                                None)):
        raise DcrTypeError(
            "model must be a DcrModel (see dcrmodel.readDcrModel) or a list of them",
            model=type(model).__name__,
        )
    return [model]


def _checkExposure(exposure: Any, name: str = "exposure") -> Exposure:
    if not isinstance(exposure, Exposure):
        raise DcrTypeError(f"{name} must be a dcrmodel Exposure (see dcrmodel.readExposure)",
                           type=type(exposure).__name__)
    return exposure


def _checkScience(models: list[Any], exposure: Exposure) -> None:
    """Check the science exposure as the assembly checks its visits, before any work.

    Its band must be the models' (`dcrmodel.image.checkSameBand`), and its unmasked
    pixels finite with a positive variance (`dcrmodel.image.checkUsablePixels`): a
    variance of 0 or below would make a false detection of any residual.
    """
    checkSameBand(exposure.filter, getattr(models[0], "filter", None), "the exposure",
                  "the DCR model",
                  "give an exposure of the model's band, or the model of the exposure's")
    checkUsablePixels(exposure.image.array, exposure.variance.array,
                      ~exposure.mask.getBadPixels(), "the science exposure")


def _onModelGrid(models: list[Any], exposure: Exposure) -> bool:
    """Whether the exposure takes the path of one model on its grid (cropped to its box)."""
    return len(models) == 1 and (
        exposure.wcs is None or getattr(models[0], "wcs", None) is None
        or onModelGrid(models[0], exposure.wcs, exposure.bbox)
    )


def templateForExposure(
    model: Any, exposure: Exposure, **templateOptions: Any
) -> tuple[Exposure, Exposure]:
    """Build the DCR-matched template of an exposure from one model or several.

    Parameters
    ----------
    model : `dcrmodel.model.core.DcrModel` or list of them
        The model of the exposure's patch, or the models of the patches it sees (one band
        and subfilter count, `dcrmodel.model.checkModelsCompatible`).
    exposure : `dcrmodel.image.Exposure`
        The science exposure, on any WCS.
    **templateOptions
        Passed to `DcrModel.buildMatchedExposure` (for example ``engine``).

    Returns
    -------
    science : `dcrmodel.image.Exposure`
        The exposure on the template's box: for one model on the exposure's pixel grid, its
        part inside the model's box (`cropToModel`, as before any other grid was
        accepted); otherwise the whole exposure.
    template : `dcrmodel.image.Exposure`
        The template on that box: ``model.buildMatchedExposure(exposure=science, ...)`` for
        one model on the exposure's grid, else
        `dcrmodel.model.buildMatchedExposureFromModels` (the models' templates warped onto
        the exposure's grid and merged; ``NO_DATA`` where none covers it).

    Raises
    ------
    DcrTypeError
        If ``model`` is not a `DcrModel` (or a list of them) or ``exposure`` not an
        `Exposure`.
    DcrShapeError
        If one model on the exposure's grid does not overlap it.
    DcrValueError
        If no model overlaps the exposure on the sky, or the models do not belong together;
        if the exposure is of another band than the model's, or has unmasked pixels that
        are not finite or whose variance is not positive.
    """
    models = _asModels(model)
    _checkScience(models, _checkExposure(exposure))
    if _onModelGrid(models, exposure):
        science = cropToModel(models[0], exposure)
        return science, models[0].buildMatchedExposure(exposure=science, **templateOptions)
    return exposure, buildMatchedExposureFromModels(models, exposure, **templateOptions)


def _autoMatchTo(
    models: list[Any], onGrid: bool, exposure: Exposure, sciencePsf: Psf,
    templateOptions: dict[str, Any],
) -> tuple[str, float | None]:
    """``matchTo="auto"``: `chooseMatchTo` against every model that sees the exposure.

    Off the model's grid the science PSF is compared with each model's PSF in that model's
    frame (`dcrmodel.model.visitPsfOnModel`); the science exposure is convolved if any
    model asks for it, and the largest missing fraction is reported.
    """
    damping = templateOptions.get("psfDamping")
    gain = templateOptions.get("psfMaxGain", "default")
    if onGrid:
        return chooseMatchTo(models[0], sciencePsf, damping, gain)
    choices = [
        chooseMatchTo(models[index], visitPsfOnModel(models[index], sciencePsf, exposure.wcs,
                                                     exposure.bbox), damping, gain)
        for index in overlappingModels(models, exposure) if models[index].psf is not None
    ]
    if not choices:
        return "template", None
    fraction = max(choice[1] for choice in choices)
    return ("science" if any(c[0] == "science" for c in choices) else "template"), fraction


def _scienceMode(
    models: list[Any], onGrid: bool, exposure: Exposure, sciencePsf: Psf,
    templateOptions: dict[str, Any],
) -> tuple[Exposure, Exposure, np.ndarray, float]:
    """Make the template at the model's PSF and convolve the science exposure to it.

    Returns the science exposure as subtracted, the template, the detection kernel and the
    noise correlation factor.
    """
    options = {k: v for k, v in templateOptions.items() if k != "psf"}
    one = models[0] if len(models) == 1 else models
    science, template = templateForExposure(one, exposure, matchPsf=False, **options)
    # On the grid the model's PSF; off it, the model's PSF carried onto the exposure's grid
    # (of the model giving most of the template's pixels).
    targetPsf = models[0].psf if onGrid else template.psf
    if sciencePsf is not science.psf:
        science = Exposure(science.maskedImage, wcs=science.wcs, psf=sciencePsf,
                           visitInfo=science.visitInfo, filter=science.filter,
                           photoCalib=science.photoCalib)
    science, convolution = convolveToPsf(science, targetPsf, models[0].effectiveWavelength,
                                         fill=template.image.array)
    kernel = _kernelOf(targetPsf)
    return science, template, kernel, noiseCorrelationFactor(convolution, kernel)


def _lowCoverage(template: Exposure, difference: Exposure) -> np.ndarray | None:
    """Difference pixels whose template flags `LOW_COVERAGE_PLANE` (flagged there too)."""
    if LOW_COVERAGE_PLANE not in template.mask.planes:
        return None
    flagged = template.mask[difference.bbox].getBadPixels(LOW_COVERAGE_PLANE)
    if flagged.any():
        bit = difference.mask.addMaskPlane(LOW_COVERAGE_PLANE)
        difference.mask.array[flagged] |= np.int32(1 << bit)
    return flagged


def makeDifference(
    model: Any,
    exposure: Exposure,
    threshold: float = 5.0,
    *,
    matchTo: str = "auto",
    **templateOptions: Any,
) -> DifferenceResult:
    """Subtract a DCR-matched template from an exposure and detect what remains.

    Parameters
    ----------
    model : `dcrmodel.model.core.DcrModel` or list of them
        The DCR model of the field, or the models of the patches the exposure sees (one
        band and subfilter count; the template is merged from them,
        `dcrmodel.model.buildMatchedExposureFromModels`).
    exposure : `dcrmodel.image.Exposure`
        The science exposure, on any WCS. On one model's pixel grid, parts outside the
        model's box are left out; otherwise the difference is on the exposure's own box,
        with ``NO_DATA`` where no model covers it. It needs a WCS, a `VisitInfo` and a PSF
        (without one, the PSF is estimated from its stars, with a warning, in
        ``"template"`` mode).
    threshold : float, optional
        Detection threshold in sigma of the difference image (default 5).
    matchTo : {"auto", "template", "science"}, optional
        Keyword only. ``"template"``: the template is made at the science exposure's PSF
        (`DcrModel.buildMatchedExposure` matches the model's PSF to it). ``"science"``:
        the template is made at the model's PSF (``matchPsf=False``) and the science
        exposure is convolved to the model's PSF (`convolveToPsf`, its bad pixels filled
        with the template first and grown by the kernel's radius); the difference then
        has the model's PSF (off the model's grid: the model's PSF carried onto the
        exposure's grid, `dcrmodel.model.modelPsfOnVisit`, of the model that gives most of
        the template). ``"auto"`` (default): ``"science"`` when the science exposure is
        sharper than the model's PSF by more than the template's PSF matching can follow
        (`chooseMatchTo`; off the grid, in each model's frame, for any model), else
        ``"template"``; ``"template"`` when the model or the exposure has no PSF, or
        ``matchPsf=False`` is given.
    **templateOptions
        Passed to `DcrModel.buildMatchedExposure` (for example ``engine``). In
        ``"science"`` mode ``matchPsf`` may not be given; ``psf`` is then the science
        exposure's PSF.

    Returns
    -------
    DifferenceResult
        The template, the difference exposure, the detections and the mode used.

    Raises
    ------
    DcrTypeError
        If ``model`` is not a `DcrModel` (or a list of them) or ``exposure`` not an
        `Exposure`.
    DcrShapeError
        If the exposure does not overlap the model (on its grid).
    DcrValueError
        For a threshold that is not a positive number, an unknown ``matchTo``, or
        ``matchPsf`` given with ``matchTo="science"``; for models of different bands or
        subfilter counts, or none overlapping the exposure on the sky; for an exposure of
        another band than the model's, or with unmasked pixels that are not finite or
        whose variance is not positive (checked before any work, as the assembly checks
        its visits).
    DcrMetadataError
        With ``matchTo="science"``, if the science exposure or the model has no PSF.

    Notes
    -----
    Detections leave out the difference's bad pixels (`dcrmodel.image.BAD_MASK_PLANES`,
    which include ``NO_DATA``: the science exposure's and the template's) and the pixels
    whose model rests on too few visits (`dcrmodel.model.LOW_COVERAGE_PLANE` of the
    template, carried into the difference's mask).

    In ``"science"`` mode the template's residual against the true sky keeps its meaning,
    but the difference image is that of the convolved science exposure: its sources have
    the model's PSF and its noise is correlated over the kernel. Its variance plane is the
    per-pixel variance (`convolveToPsf`); for detection the science part of it is
    multiplied by `noiseCorrelationFactor` (recorded as
    ``DifferenceResult.noiseCorrelation``), which makes the matched filter's noise right
    for white science noise (the template's own correlated noise is not tracked, in either
    mode).
    """
    models = _asModels(model)
    _checkExposure(exposure)
    if not (isNumber(threshold) and np.isfinite(threshold) and threshold > 0):
        raise DcrValueError("threshold must be a positive number of sigma", threshold=threshold)
    if not isinstance(matchTo, str) or matchTo not in MATCH_TO_MODES:
        raise DcrValueError(
            f"matchTo must be one of {', '.join(repr(m) for m in MATCH_TO_MODES)}",
            matchTo=matchTo,
        )
    _checkScience(models, exposure)
    onGrid = _onModelGrid(models, exposure)
    sciencePsf = templateOptions.get("psf")
    if sciencePsf is None:
        sciencePsf = exposure.psf
    if matchTo == "science":
        if "matchPsf" in templateOptions:
            raise DcrValueError(
                "matchPsf cannot be given with matchTo='science' (the template is made at the "
                "model's PSF); leave it out, or use matchTo='template'",
                matchPsf=templateOptions["matchPsf"],
            )
        _sciencePsf(sciencePsf)
        for each in models:
            _modelPsf(each)
    if onGrid:
        cropToModel(models[0], exposure)  # refuses an exposure off the model before any work
    missing = None
    if matchTo == "auto":
        matchTo = "template"
        if (templateOptions.get("matchPsf", True) and sciencePsf is not None
                and all(getattr(m, "psf", None) is not None for m in models)):
            matchTo, missing = _autoMatchTo(models, onGrid, exposure, sciencePsf,
                                            templateOptions)
    one = models[0] if len(models) == 1 else models
    if matchTo == "science":
        science, template, kernel, correlation = _scienceMode(models, onGrid, exposure,
                                                              sciencePsf, templateOptions)
    else:
        science, template = templateForExposure(one, exposure, **templateOptions)
        kernel = _detectionKernel(science)
        correlation = 1.0
    difference = subtractTemplate(science, template)
    mask = difference.mask
    bad = mask.getBadPixels()
    lowCoverage = _lowCoverage(template, difference)
    if lowCoverage is not None:
        bad = bad | lowCoverage
    variance = difference.variance.array
    if correlation != 1.0:
        variance = variance + (correlation - 1.0) * science.variance[difference.bbox].array
    detections, _ = detectSources(
        difference.image.array, variance, kernel, threshold=threshold,
        badPixels=bad, origin=difference.bbox.begin,
    )
    snr = significanceImage(difference.image.array, variance, kernel, bad)
    for plane, above in (("DETECTED", snr >= threshold), ("DETECTED_NEGATIVE", snr <= -threshold)):
        bit = np.int32(mask.getPlaneBitMask(plane) if plane in mask.planes
                       else 1 << mask.addMaskPlane(plane))
        bits = mask.array
        bits &= ~bit
        bits[above] |= bit
    return DifferenceResult(template, difference, detections, float(threshold), matchTo,
                            science, missing, correlation)
