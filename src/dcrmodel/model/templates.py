"""DCR-matched templates: the forward modelling of a visit from a DCR model.

A template is the sum over subfilters of the model's subfilter images, each moved by that
subfilter's differential chromatic refraction in the visit (``dcrmodel.physics.dcr.calculateDcr``)
and, when both PSFs are known, re-blurred from the model's PSF to the visit's at the
subfilter's central wavelength (`dcrmodel.psf.matching.psfMatchingTransfer`). Two engines
move the images: the spline path (``dcrmodel.model.shift.applyDcr``, the reference) and the
Fourier path (phase ramps and smears on the model's cached transforms,
``dcrmodel.fourier.engine.FourierTemplateEngine``).

`buildMatchedTemplate` and `buildMatchedExposure` implement the `DcrModel` methods of the
same names for a visit on the model's pixel grid, which document the arguments and the
behaviour in full; they take the model and its `TemplateCache` (the transforms and transfer
functions kept between templates). A visit on any other grid is forward-modelled here on the
model's grid and warped onto its own by `dcrmodel.model.visitgrid`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft
from astropy.wcs import WCS

from ..errors import (
    DcrConfigError,
    DcrMetadataError,
    DcrPsfWarning,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
    externalStacklevel,
)
from ..fourier import (
    TRANSFER_MODES,
    FourierTemplateEngine,
    applyTransfer,
    cropFromPadded,
    paddedShape,
    padToShape,
    subfilterTransfer,
)
from ..image import WCS_GRID_TOLERANCE, Box, Exposure, Image, Mask, MaskedImage, Psf, wcsGridOffset
from ..physics import calculateDcr, wavelengthGenerator
from ..psf import (
    PsfMatch,
    effectiveKernelSize,
    maxKernelSize,
    psfMatchingTransfer,
    psfTransfer,
    validatePsfAlpha,
)
from .checks import checkBox, checkFiniteNumber, checkRegion, isInteger
from .shift import applyDcr

if TYPE_CHECKING:
    from .core import DcrModel

__all__ = [
    "ENGINES",
    "PSF_DAMPED_PLANE",
    "DEFAULT_PSF_DAMPING",
    "DEFAULT_PSF_MAX_GAIN",
    "TemplateCache",
    "buildMatchedTemplate",
    "buildMatchedExposure",
]

_log = logging.getLogger(__name__)

#: Template engines known to `DcrModel.buildMatchedTemplate`: spline shifts
#: (``dcrmodel.model.shift.applyDcr``) or phase ramps on the model's cached Fourier transforms
#: (``dcrmodel.fourier.engine.FourierTemplateEngine``).
#: Template engines: spline shifts in image space, or transfer functions in Fourier space.
ENGINES: tuple[str, ...] = ("spline", "fourier")

#: Mask plane of a PSF-matched template flagging the pixels where the damping of the PSF
#: matching (a visit sharper than the model) lost light above the noise.
PSF_DAMPED_PLANE = "PSF_DAMPED"

#: Default damping of the PSF matching, relative to the largest value of the model's optical
#: transfer function (`dcrmodel.psf.matching.psfMatchingTransfer`).
DEFAULT_PSF_DAMPING = 1e-3

#: Default largest gain of a template's PSF matching (`dcrmodel.psf.matching.psfMatchingTransfer`):
#: where a visit is sharper than the model, a larger gain would amplify the model's noise
#: into the template more than it restores the visit's sharper light.
DEFAULT_PSF_MAX_GAIN = 2.0

#: Fraction of a PSF kernel's flux allowed outside the padding of a PSF-matching grid.
_PSF_TAIL = 1e-2

#: Smallest model PSF FWHM (pixels) for which the Fourier engine is the default: phase ramps
#: of an undersampled image ring, where the spline engine stays accurate.
_MIN_FOURIER_FWHM = 2.0

#: Extra pixels, beyond the largest DCR shift, of model taken around a template's box before
#: shifting, so that the spline prefilter's boundary handling (an IIR filter whose influence
#: falls by a factor ~0.27 per pixel for cubic splines) does not reach the box: 0.27**8 ~ 3e-5.
_SHIFT_MARGIN = 8


class TemplateCache:
    """What a DCR model keeps from one template to the next.

    Parameters
    ----------
    warnedDamping : bool, optional
        Whether the model has already warned that a PSF matching was damped.

    Attributes
    ----------
    fourier : dcrmodel.fourier.engine.FourierTemplateEngine or None
        The Fourier transforms of the model's subfilter images on the padded grid of the
        last Fourier template, kept until the images are replaced or a template needs
        another grid.
    otf : tuple or None
        The model PSF's optical transfer function on the last grid used, with its key
        (PSF, grid shape, dtype).
    warnedDamping : bool
        Whether the model has warned that a PSF matching was damped (once per model).
    """

    def __init__(self, warnedDamping: bool = False) -> None:
        self.fourier: FourierTemplateEngine | None = None
        self.otf: tuple[Any, np.ndarray] | None = None
        self.warnedDamping = warnedDamping

    def modelReplaced(self) -> None:
        """Forget the Fourier engine: a subfilter image was replaced by another."""
        self.fourier = None

    def modelChanged(self) -> None:
        """Have the Fourier engine recompute its transforms: images changed in place."""
        if self.fourier is not None:
            self.fourier.invalidate()

    def withoutCaches(self) -> TemplateCache:
        """Return a copy without the engine and the transfer function (recomputed on demand).

        Returns
        -------
        cache : TemplateCache
            A new cache with the same ``warnedDamping``.
        """
        return TemplateCache(self.warnedDamping)


# ----------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------


def _resolveVisit(
    exposure: Any, visitInfo: Any, bbox: Any, wcs: Any, method: str
) -> tuple[Any, Box, WCS]:
    """Return (visitInfo, bbox, wcs) from an exposure or the separate arguments."""
    if exposure is not None:
        if not isinstance(exposure, Exposure):
            raise DcrTypeError(
                f"{method}: exposure must be a dcrmodel.image.Exposure",
                exposure=type(exposure).__name__,
            )
        missing = [name for name in ("visitInfo", "wcs") if getattr(exposure, name) is None]
        if missing:
            raise DcrMetadataError(
                f"{method}: the exposure has no {' and no '.join(missing)}, which DCR needs; "
                "set them on the exposure",
                missing=[f"exposure.{name}" for name in missing],
            )
        return exposure.visitInfo, exposure.bbox, exposure.wcs
    missing = [
        name
        for name, value in (("visitInfo", visitInfo), ("bbox", bbox), ("wcs", wcs))
        if value is None
    ]
    if missing:
        raise DcrMetadataError(
            f"{method} needs either an exposure or all of visitInfo, bbox and wcs; "
            f"missing: {', '.join(missing)}",
            missing=missing,
        )
    if not isinstance(wcs, WCS):
        raise DcrTypeError(f"{method}: wcs must be an astropy.wcs.WCS", wcs=type(wcs).__name__)
    return visitInfo, checkBox(bbox, "bbox"), wcs


def _checkGrid(model: DcrModel, wcs: WCS, bbox: Box, method: str) -> None:
    """Refuse an exposure whose WCS puts ``bbox`` elsewhere than the model's WCS does."""
    if model.wcs is None:
        return
    offset = wcsGridOffset(wcs, model.wcs, bbox)
    if not np.isfinite(offset) or offset > WCS_GRID_TOLERANCE:
        raise DcrShapeError(
            f"{method}: the exposure is not on the model's pixel grid (its WCS puts the "
            f"box {offset:.3g} pixels from where the model's WCS does); warp it onto the "
            "model's grid (same WCS, parent coordinates) first",
            offsetPixels=offset,
        )


def _checkTemplateMask(mask: Any, bbox: Box) -> Mask | None:
    if mask is None:
        return None
    if not isinstance(mask, Mask):
        raise DcrTypeError("mask must be a dcrmodel.image.Mask", mask=type(mask).__name__)
    if not mask.bbox.contains(bbox):
        raise DcrShapeError(
            f"the mask covers {mask.bbox}, which does not contain the template's box {bbox}",
            maskBBox=mask.bbox,
            bbox=bbox,
        )
    return mask


def _resolveEngine(model: DcrModel, engine: Any) -> str:
    """Return the template engine: ``engine``, or the default for this model (None)."""
    if engine is None:
        psf = model.psf
        if psf is not None and psf.fwhm < _MIN_FOURIER_FWHM:
            return "spline"
        return "fourier"
    if engine not in ENGINES:
        raise DcrConfigError(
            f"unknown template engine {engine!r}; known engines: {', '.join(ENGINES)}",
            engine=engine,
        )
    return str(engine)


def _resolveMode(mode: Any, engine: str, splitSubfilters: bool) -> str:
    """Return how a subfilter's light is represented: "smear", "split" or "mean"."""
    if mode is None:
        if not splitSubfilters:
            return "mean"
        return "smear" if engine == "fourier" else "split"
    if mode not in TRANSFER_MODES:
        raise DcrConfigError(
            f"unknown subfilter mode {mode!r}; known modes: {', '.join(TRANSFER_MODES)}",
            mode=mode,
        )
    if mode == "smear" and engine != "fourier":
        raise DcrConfigError(
            "mode 'smear' (the exact smear of a subfilter between its edge shifts) needs "
            "engine='fourier'; use mode='split' or 'mean' with the spline engine",
            mode=mode,
            engine=engine,
        )
    return str(mode)


def _subfilterCentres(model: DcrModel) -> list[float]:
    """Central wavelengths (nm) of the subfilters, bluest first."""
    return [
        0.5 * (start + end)
        for start, end in wavelengthGenerator(
            model.effectiveWavelength, model.bandwidth, len(model)
        )
    ]


def _targetPsf(model: DcrModel, exposure: Any, psf: Any, matchPsf: Any) -> Psf | None:
    """Return the PSF to match the template to, or None for a template at the model's."""
    if not isinstance(matchPsf, (bool, np.bool_)):
        raise DcrTypeError("matchPsf must be True or False", matchPsf=matchPsf)
    if psf is not None and not isinstance(psf, Psf):
        raise DcrTypeError(
            "psf must be a dcrmodel.image.Psf (the PSF to match the template to) or None",
            psf=type(psf).__name__,
        )
    target = psf if psf is not None else (exposure.psf if exposure is not None else None)
    if not matchPsf or target is None or model.psf is None:
        return None
    validatePsfAlpha(target.alpha, "the target PSF's alpha (PSF-ALPH)")
    return target


def _checkOptions(
    model: DcrModel,
    exposure: Any,
    order: Any,
    splitSubfilters: Any,
    splitThreshold: Any,
    amplifyModel: Any,
    engine: Any,
    mode: Any,
    psf: Any,
    matchPsf: Any,
    psfDamping: Any,
    psfMaxGain: Any,
) -> tuple[float, float, str, str, tuple[float, float | None], Psf | None]:
    """Check a template's options.

    Returns ``(splitThreshold, amplifyModel, engine, mode, (psfDamping, psfMaxGain),
    target PSF)``.
    """
    if not isInteger(order) or not 0 <= order <= 5:
        raise DcrValueError("order must be an integer spline order from 0 to 5", order=order)
    if not isinstance(splitSubfilters, (bool, np.bool_)):
        raise DcrTypeError(
            "splitSubfilters must be True or False", splitSubfilters=splitSubfilters
        )
    splitThreshold = checkFiniteNumber(splitThreshold, "splitThreshold", minimum=0.0)
    amplifyModel = checkFiniteNumber(amplifyModel, "amplifyModel", minimum=0.0)
    engine = _resolveEngine(model, engine)
    mode = _resolveMode(mode, engine, bool(splitSubfilters))
    psfDamping = checkFiniteNumber(psfDamping, "psfDamping", minimum=0.0)
    if not psfDamping > 0:
        raise DcrValueError("psfDamping must be > 0", psfDamping=psfDamping)
    if psfMaxGain is not None:
        psfMaxGain = checkFiniteNumber(psfMaxGain, "psfMaxGain", minimum=0.0)
        if not psfMaxGain > 0:
            raise DcrValueError("psfMaxGain must be > 0 (or None)", psfMaxGain=psfMaxGain)
    target = _targetPsf(model, exposure, psf, matchPsf)
    return splitThreshold, amplifyModel, engine, mode, (psfDamping, psfMaxGain), target


# ----------------------------------------------------------------------------------------
# Templates
# ----------------------------------------------------------------------------------------


def buildMatchedTemplate(
    model: DcrModel,
    cache: TemplateCache,
    exposure: Exposure | None = None,
    order: int = 3,
    visitInfo: Any = None,
    bbox: Box | None = None,
    wcs: WCS | None = None,
    mask: Mask | None = None,
    splitSubfilters: bool = True,
    splitThreshold: float = 0.0,
    amplifyModel: float = 1.0,
    *,
    engine: str | None = None,
    mode: str | None = None,
    psf: Psf | None = None,
    matchPsf: bool = True,
    psfDamping: float = DEFAULT_PSF_DAMPING,
    psfMaxGain: float | None = DEFAULT_PSF_MAX_GAIN,
) -> Image:
    """Create a DCR-matched template image for an exposure (`DcrModel.buildMatchedTemplate`).

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model to forward-model.
    cache : TemplateCache
        The model's cache of transforms and transfer functions.
    exposure, order, visitInfo, bbox, wcs, mask, splitSubfilters, splitThreshold
        As `DcrModel.buildMatchedTemplate`.
    amplifyModel, engine, mode, psf, matchPsf, psfDamping, psfMaxGain
        As `DcrModel.buildMatchedTemplate`.

    Returns
    -------
    templateImage : dcrmodel.image.Image
        The DCR-matched template over the exposure's box.

    Raises
    ------
    DcrMetadataError, DcrShapeError, DcrValueError, DcrConfigError, DcrTypeError
        As `DcrModel.buildMatchedTemplate`.

    Warns
    -----
    DcrPsfWarning
        As `DcrModel.buildMatchedTemplate`.
    """
    template, _ = _matchedTemplate(
        model,
        cache,
        "buildMatchedTemplate",
        exposure,
        order,
        visitInfo,
        bbox,
        wcs,
        mask,
        splitSubfilters,
        splitThreshold,
        amplifyModel,
        engine,
        mode,
        psf,
        matchPsf,
        psfDamping,
        psfMaxGain,
    )
    return template


def _visitShifts(
    model: DcrModel,
    visitInfo: Any,
    wcs: WCS,
    bbox: Box,
    wavelengths: tuple[float, float],
    mode: str,
    splitThreshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the DCR shifts (pixels) of the subfilters and which of them to split.

    ``wavelengths`` is the model's ``(effectiveWavelength, bandwidth)`` (nm).
    """
    edges = mode != "mean"
    dcrShifts = calculateDcr(
        visitInfo,
        wcs,
        wavelengths[0],
        wavelengths[1],
        len(model),
        splitSubfilters=edges,
        bbox=bbox,
    )
    shifts = np.asarray(dcrShifts, dtype=float)
    if edges:
        spans = np.hypot(*(shifts[:, 1] - shifts[:, 0]).T)
        useSplit = spans > splitThreshold
        _log.debug(
            "edge shifts %s px, spans %s px, %s %s",
            shifts.tolist(),
            spans.tolist(),
            mode,
            useSplit.tolist(),
        )
    else:
        useSplit = np.zeros(len(model), dtype=bool)
        _log.debug("shifts %s px", shifts.tolist())
    return shifts, useSplit


def _matchedTemplate(
    model: DcrModel,
    cache: TemplateCache,
    method: str,
    exposure: Any,
    order: Any,
    visitInfo: Any,
    bbox: Any,
    wcs: Any,
    mask: Any,
    splitSubfilters: Any,
    splitThreshold: Any,
    amplifyModel: Any,
    engine: Any,
    mode: Any,
    psf: Any,
    matchPsf: Any,
    psfDamping: Any,
    psfMaxGain: Any,
    dcrBox: Box | None = None,
) -> tuple[Image, Psf | None]:
    """Build a template; flag damped pixels in ``mask``; return it and its PSF.

    ``dcrBox`` (default: the template's box) is the region at whose centre the zenith
    direction is measured.
    """
    visitInfo, bbox, wcs = _resolveVisit(exposure, visitInfo, bbox, wcs, method)
    _checkGrid(model, wcs, bbox, method)
    bbox = checkRegion(bbox, model.bbox)
    mask = _checkTemplateMask(mask, bbox)
    wavelengths = (model.effectiveWavelength, model.bandwidth)
    splitThreshold, amplifyModel, engine, mode, damping, target = _checkOptions(
        model, exposure, order, splitSubfilters, splitThreshold, amplifyModel, engine, mode,
        psf, matchPsf, psfDamping, psfMaxGain,
    )
    shifts, useSplit = _visitShifts(
        model, visitInfo, wcs, bbox if dcrBox is None else dcrBox, wavelengths, mode,
        splitThreshold,
    )
    if engine == "fourier":
        template, damped = _fourierTemplate(
            model, cache, bbox, shifts, useSplit, amplifyModel, mode, target, damping, exposure,
        )
    else:
        template, damped = _splineTemplate(
            model, cache, bbox, shifts, useSplit, amplifyModel, int(order), target, damping,
            exposure,
        )
    if damped is not None and mask is not None:
        bit = mask.addMaskPlane(PSF_DAMPED_PLANE)
        region = mask.array[bbox.slices(mask.bbox)]
        region[damped] |= np.int32(1 << bit)
    image = Image(template.astype(model.modelImages[0].dtype, copy=False), bbox=bbox)
    return image, target


def _meanShift(shift: np.ndarray) -> np.ndarray:
    """Return the single shift of a subfilter: itself, or the mean of its two edge shifts."""
    return shift.mean(axis=0) if shift.ndim == 2 else shift


# ----------------------------------------------------------------------------------------
# PSF matching
# ----------------------------------------------------------------------------------------


def _modelOtf(
    model: DcrModel, cache: TemplateCache, padded: tuple[int, int], cdtype: np.dtype
) -> np.ndarray:
    """Return the model PSF's transfer function on ``padded`` (cached per grid).

    Read-only, so that `dcrmodel.psf.psfMatchingTransfer` keeps its damped inverse too.
    """
    key = (id(model.psf), tuple(padded), np.dtype(cdtype).str)
    cached = cache.otf
    if cached is None or cached[0] != key:
        otf = psfTransfer(model.psf, padded, dtype=cdtype)
        otf.flags.writeable = False
        cached = (key, otf)
        cache.otf = cached
    return cached[1]


def _psfSize(model: DcrModel, target: Psf) -> tuple[int, int]:
    """Kernel widths (pixels) of the target PSF over the subfilters and the model PSF.

    Returns the width to pad by (holding all but 1 % of each kernel,
    `dcrmodel.psf.kernels.effectiveKernelSize`: light wrapped around the grid must cross both
    margins to reach the image) and the widest whole kernel (which the grid must hold).
    """
    centres = _subfilterCentres(model)
    wl = model.effectiveWavelength
    padding = max(
        effectiveKernelSize([target], centres, wl, tailFraction=_PSF_TAIL),
        effectiveKernelSize([model.psf], tailFraction=_PSF_TAIL),
    )
    full = max(maxKernelSize([target], centres, wl), maxKernelSize([model.psf]))
    return padding, full


def _psfMatches(
    model: DcrModel,
    cache: TemplateCache,
    target: Psf,
    padded: tuple[int, int],
    cdtype: np.dtype,
    damping: tuple[float, float | None],
) -> list[PsfMatch]:
    """Return the damped matching transfers from the model PSF to ``target``, per subfilter.

    ``damping`` is ``(psfDamping, psfMaxGain)``.
    """
    otfModel = _modelOtf(model, cache, padded, cdtype)
    return [
        psfMatchingTransfer(
            target,
            otfModel,
            padded,
            wavelength=centre,
            effectiveWavelength=model.effectiveWavelength,
            damping=damping[0],
            dtype=cdtype,
            maxGain=damping[1],
        )
        for centre in _subfilterCentres(model)
    ]


def _noiseFor(
    model: DcrModel, exposure: Any, bbox: Box, templateArray: np.ndarray
) -> np.ndarray:
    """Noise (standard deviation per pixel) against which lost light is judged."""
    if exposure is not None and exposure.variance is not None:
        variance = np.asarray(exposure.variance.array[bbox.slices(exposure.bbox)], float)
        good = np.isfinite(variance) & (variance > 0)
        if good.any():
            return _filledNoise(variance, good)
    if model.variance is not None:
        variance = len(model) * np.asarray(model.variance.array[bbox.slices(model.bbox)], float)
        good = np.isfinite(variance) & (variance > 0)
        if good.any():
            return _filledNoise(variance, good)
    peak = float(np.max(np.abs(templateArray))) if templateArray.size else 0.0
    return np.full(bbox.shape, max(1e-3 * peak, np.finfo(float).tiny))


def _filledNoise(variance: np.ndarray, good: np.ndarray) -> np.ndarray:
    """``sqrt(variance)``, the median of the good values where a value is not good.

    The median (a partition of every good value) is taken only when some value needs it.
    """
    if good.all():
        return np.sqrt(variance)
    return np.sqrt(np.where(good, variance, np.median(variance[good])))


def _dampedPixels(
    model: DcrModel,
    cache: TemplateCache,
    matches: list[PsfMatch],
    models: list[np.ndarray],
    dcrTransfers: np.ndarray | None,
    padded: tuple[int, int],
    cut: tuple[slice, slice],
    noise: Callable[[], np.ndarray],
) -> np.ndarray | None:
    """Template pixels where the damping of the PSF matching lost light above the noise.

    ``noise`` makes the noise map (`_noiseFor`), asked for only when some matching was
    damped.

    ``models`` are the subfilter images on a region embedded (edge-extended) in
    ``padded``, ``cut`` selects the template's box inside that region, and
    ``dcrTransfers`` (or None) moves each subfilter by its DCR. The light that can be
    lost is that of the model's sources: each subfilter image's pixels more than 3
    standard deviations of its noise (from the model's variance, else the image's
    robust scatter) above 0.
    """
    if not any(match.isDamped for match in matches):
        return None
    total = np.zeros((padded[0], padded[1] // 2 + 1), dtype=np.complex128)
    for k, match in enumerate(matches):
        if not match.isDamped:
            continue
        residual = np.abs(scipy.fft.ifftshift(match.residualKernel()))
        image = np.asarray(models[k], dtype=float)
        if model.variance is not None:
            sigma = math.sqrt(max(float(np.median(model.variance.array)), 0.0))
        else:
            sigma = 1.4826 * float(np.median(np.abs(image - np.median(image))))
        sources = np.where(image > 3.0 * sigma, image, 0.0)
        term = scipy.fft.rfft2(padToShape(sources, padded))
        term *= scipy.fft.rfft2(residual)
        if dcrTransfers is not None:
            term *= dcrTransfers[k]
        total += term
    lost = cropFromPadded(scipy.fft.irfft2(total, s=padded), models[0].shape)[cut]
    damped = lost > noise()
    if not damped.any():
        return None
    if not cache.warnedDamping:
        warnings.warn(
            "the visit is sharper than the DCR model's PSF in part of the band, so PSF "
            "matching of the template was damped and it misses some of the visit's "
            "high-frequency light; the pixels concerned are flagged "
            f"{PSF_DAMPED_PLANE} in the template's mask (build the model with a sharper "
            "model PSF to avoid this)",
            DcrPsfWarning,
            stacklevel=externalStacklevel(),
        )
        cache.warnedDamping = True
    _log.info("PSF matching damped: %d template pixels flagged", int(damped.sum()))
    return damped


# ----------------------------------------------------------------------------------------
# Engines
# ----------------------------------------------------------------------------------------


def _splineTemplate(
    model: DcrModel,
    cache: TemplateCache,
    bbox: Box,
    shifts: np.ndarray,
    useSplit: np.ndarray,
    amplifyModel: float,
    order: int,
    target: Psf | None = None,
    psfDamping: tuple[float, float | None] = (DEFAULT_PSF_DAMPING, None),
    exposure: Any = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sum of the subfilter images shifted by splines (``applyDcr``), over ``bbox``.

    With a target PSF each shifted subfilter image is then convolved with its matching
    transfer (one FFT pair per subfilter).
    """
    maxShift = float(np.max(np.abs(shifts))) if shifts.size else 0.0
    psfSize, fullSize = _psfSize(model, target) if target is not None else (0, 0)
    grow = int(math.ceil(maxShift)) + _SHIFT_MARGIN + psfSize // 2
    work = bbox.grow(grow).intersection(model.bbox)
    workSlices = work.slices(model.bbox)
    cut = bbox.slices(work)
    reference = None
    if amplifyModel != 1.0:
        reference = model.getReferenceImage(work).astype(np.float64)
    matches = None
    padded = None
    if target is not None:
        padded = paddedShape(work.shape, 0.0, psfSize)
        padded = tuple(max(p, scipy.fft.next_fast_len(fullSize, real=True)) for p in padded)
        matches = _psfMatches(model, cache, target, padded, np.dtype(np.complex128), psfDamping)
    template = np.zeros(bbox.shape, dtype=np.float64)
    models = []
    for k, (image, shift, split) in enumerate(
        zip(model.modelImages, shifts, useSplit, strict=True)
    ):
        subfilterImage = image.array[workSlices]
        if reference is not None:
            subfilterImage = reference + amplifyModel * (subfilterImage - reference)
        if split:
            shifted = applyDcr(subfilterImage, shift, splitSubfilters=True, order=order)
        else:
            shifted = applyDcr(subfilterImage, _meanShift(shift), order=order)
        if matches is not None:
            models.append(shifted)
            shifted = applyTransfer(
                np.asarray(shifted, dtype=np.float64), matches[k].transfer, padded
            )
        template += shifted[cut]
    damped = None
    if matches is not None:
        damped = _dampedPixels(
            model, cache, matches, models, None, padded, cut,
            lambda: _noiseFor(model, exposure, bbox, template),
        )
    return template, damped


def _fourierEngine(
    model: DcrModel, cache: TemplateCache, maxShift: float, psfSize: int = 0, fullSize: int = 0
) -> FourierTemplateEngine:
    """Return the Fourier engine for one template: the cached one if it is on the right grid.

    The grid is padded by ``psfSize`` (pixels) and holds a whole kernel of ``fullSize``, with
    room for 1.5 times the largest shift (the larger shifts of other visits usually land on
    the same FFT-friendly grid). A template's values depend on its grid at the level of float
    rounding, so the cached engine is reused only when its grid is the one this template
    would get from a new engine: a template never depends on which templates were made
    before it (many visits in one process give the templates of one visit per process, bit
    for bit), and visits of one field, which share the grid, share the model's transforms.
    """
    if min(model.bbox.shape) + psfSize < fullSize:
        psfSize = fullSize
    room = max(1.5 * maxShift, maxShift + 2.0)
    padded = paddedShape(model.bbox.shape, room, psfSize)
    engine = cache.fourier
    if engine is None or engine.paddedShape != padded:
        engine = FourierTemplateEngine(
            [image.array for image in model.modelImages], room, psfSize=psfSize
        )
        cache.fourier = engine
        _log.debug("Fourier engine %r for shifts up to %.2f px", engine, room)
    return engine


def _fourierTemplate(
    model: DcrModel,
    cache: TemplateCache,
    bbox: Box,
    shifts: np.ndarray,
    useSplit: np.ndarray,
    amplifyModel: float,
    mode: str = "split",
    target: Psf | None = None,
    psfDamping: tuple[float, float | None] = (DEFAULT_PSF_DAMPING, None),
    exposure: Any = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sum of the subfilter images moved by phase ramps (or smeared), over ``bbox``.

    Amplification is linear in the model, so it goes into the transfer functions:
    ``sum_k (ref + a (m_k - ref)) H_k = sum_k m_k (a H_k + (1 - a) mean_j H_j)``.
    PSF matching multiplies each ``H_k`` by the subfilter's matching transfer.
    """
    maxShift = float(np.max(np.abs(shifts))) if shifts.size else 0.0
    psfSize, fullSize = _psfSize(model, target) if target is not None else (0, 0)
    engine = _fourierEngine(model, cache, maxShift, psfSize, fullSize)
    padded = engine.paddedShape
    complexType = np.result_type(engine.dtype, np.complex64)
    transfers = np.stack(
        [
            subfilterTransfer(padded, shift, mode, complexType)
            if split
            else subfilterTransfer(padded, _meanShift(shift), "mean", complexType)
            for shift, split in zip(shifts, useSplit, strict=True)
        ]
    )
    matches = None
    dcrTransfers = None
    if target is not None:
        matches = _psfMatches(model, cache, target, padded, np.dtype(complexType), psfDamping)
        if any(match.isDamped for match in matches):  # (only `_dampedPixels` needs them)
            dcrTransfers = transfers.copy()
        for k, match in enumerate(matches):
            transfers[k] *= match.transfer
    if amplifyModel != 1.0:
        mean = transfers.mean(axis=0)
        transfers *= amplifyModel
        transfers += (1.0 - amplifyModel) * mean
    full = engine.buildTemplateFromTransfers(transfers)
    cut = bbox.slices(model.bbox)
    template = np.array(full[cut])  # (a copy in the engine's precision, the model's)
    damped = None
    if matches is not None:
        damped = _dampedPixels(
            model,
            cache,
            matches,
            [image.array for image in model.modelImages],
            dcrTransfers,
            padded,
            cut,
            lambda: _noiseFor(model, exposure, bbox, template),
        )
    return template, damped


# ----------------------------------------------------------------------------------------
# Template exposures
# ----------------------------------------------------------------------------------------


def buildMatchedExposure(
    model: DcrModel,
    cache: TemplateCache,
    exposure: Exposure | None = None,
    visitInfo: Any = None,
    bbox: Box | None = None,
    wcs: WCS | None = None,
    mask: Mask | None = None,
    order: int = 3,
    splitSubfilters: bool = True,
    splitThreshold: float = 0.0,
    *,
    engine: str | None = None,
    mode: str | None = None,
    psf: Psf | None = None,
    matchPsf: bool = True,
    psfDamping: float = DEFAULT_PSF_DAMPING,
    psfMaxGain: float | None = DEFAULT_PSF_MAX_GAIN,
) -> Exposure:
    """Create an exposure from a template image (`DcrModel.buildMatchedExposure`).

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model to forward-model.
    cache : TemplateCache
        The model's cache of transforms and transfer functions.
    exposure, visitInfo, bbox, wcs, mask, order, splitSubfilters, splitThreshold
        As `DcrModel.buildMatchedExposure`.
    engine, mode, psf, matchPsf, psfDamping, psfMaxGain
        As `DcrModel.buildMatchedExposure`.

    Returns
    -------
    templateExposure : dcrmodel.image.Exposure
        The DCR-matched template over the exposure's box, with its mask, variance and
        metadata (see `DcrModel.buildMatchedExposure`).

    Raises
    ------
    DcrMetadataError, DcrShapeError, DcrValueError
        As `DcrModel.buildMatchedTemplate`.
    """
    method = "buildMatchedExposure"
    visitInfo, bbox, wcs = _resolveVisit(exposure, visitInfo, bbox, wcs, method)
    _checkGrid(model, wcs, bbox, method)
    bbox = checkRegion(bbox, model.bbox)
    mask = _checkTemplateMask(mask, bbox)
    sourceMask = mask if mask is not None else model.mask
    if sourceMask is not None:
        templateMask = Mask(
            sourceMask.array[bbox.slices(sourceMask.bbox)].copy(),
            bbox=bbox,
            planes=sourceMask.planes,
        )
    else:
        templateMask = Mask.fromBox(bbox)
    template, target = _matchedTemplate(
        model,
        cache,
        method,
        exposure,
        order,
        visitInfo,
        bbox,
        wcs,
        templateMask,
        splitSubfilters,
        splitThreshold,
        1.0,
        engine,
        mode,
        psf,
        matchPsf,
        psfDamping,
        psfMaxGain,
    )
    templateVariance = None
    if model.variance is not None:
        templateVariance = Image(
            model.variance.array[bbox.slices(model.bbox)] * len(model), bbox=bbox
        )
    maskedImage = MaskedImage(template, mask=templateMask, variance=templateVariance)
    return Exposure(
        maskedImage,
        wcs=wcs,
        psf=target if target is not None else model.psf,
        visitInfo=visitInfo,
        filter=model.filter,
        photoCalib=model.photoCalib,
    )
