"""DCR-matched templates for a visit on its own pixel grid (any WCS).

A DCR model lives on the pixel grid of a sky patch; a science visit is a detector image with
its own WCS (any rotation, dithers, distortion). The template of such a visit is made the
way the Rubin pipelines' ``GetDcrTemplateTask`` makes it, in three steps:

1. **Where.** The outline of the visit's box is mapped onto the model's pixel grid through
   both WCSs (`dcrmodel.warp.mapPixels`, distortion included); the bounding box of those
   positions, grown by the warping kernel's reach (`templateRegion`), is the *region* of
   the patch that the warp back reads. The image of the outline bounds the image of the
   whole box, since the mapping is continuous and one to one.
2. **Forward model on the patch.** The template is built on that region exactly as for a
   visit on the model's grid (`dcrmodel.model.templates`), with the visit's DCR: its zenith
   direction is measured through the *patch* WCS at the centre of the visit's footprint
   there (the visit's date, site and pointing with the patch's pixels), so the subfilter
   shifts are the visit's refraction expressed in patch pixels. No extra margin for the DCR
   is added to the region: the template engines already read the model beyond a template's
   box by the largest shift (and the PSF kernel's half width) before cutting it.
3. **Warp back.** The patch template (image, variance ``N`` times the model's, the model's
   mask with its ``PSF_DAMPED`` plane) is warped onto the visit's WCS and box with
   `dcrmodel.warp.warpImage` and the Lanczos 4 kernel (`TEMPLATE_WARPING_KERNEL`; the
   reference warps its templates with Lanczos 3): variance ``sum w^2 var``; every mask bit
   of a patch pixel the kernel touches is carried (the model's bad planes and its
   low-coverage plane grow by the kernel's reach); visit pixels whose kernel reaches
   beyond the model's box get ``NO_DATA`` (image and variance 0).

PSF matching happens on the patch
---------------------------------
The model's PSF is known on the patch, and the template's PSF matching is per subfilter
(each subfilter's light is matched at its own wavelength before the subfilters are summed),
so it cannot be done after the warp without warping every subfilter separately. The visit's
PSF is therefore carried into the patch frame first: ``P_patch(v) = P_visit(J v)``, ``J``
the local Jacobian of the patch-to-visit pixel mapping at the visit's centre
(`dcrmodel.warp.localJacobian`, `dcrmodel.warp.warpPsf`: a visit rotated by 37 degrees
against the patch has its elliptical PSF rotated by 37 degrees there). The template is
matched to that PSF on the patch and warped back, which undoes the Jacobian: on the visit's
grid it has the visit's PSF (convolved with the small smoothing of the Lanczos 3 kernel), and
the template exposure carries the visit's own PSF, as a template on the grid does. The
noise against which the damping of the matching is judged is the model's (the visit's
variance is on another grid).

The warp back smooths: interpolating the patch template at the visit's pixel centres
multiplies its spectrum, on average over their sub-pixel phases, by the kernel's mean
response ``R(fx) R(fy)`` along the patch's axes (`warpResponse`; for a rotated visit and
Lanczos 3 within 1.2 % of 1 up to 0.3 cycle per pixel, 0.82 at 0.4). The template is
therefore matched on the patch to the visit's PSF divided by that response
(`COMPENSATE_WARP_RESPONSE`, on by default; gain at most 2, near the Nyquist frequency
only), so that after the warp back it has the visit's PSF on average rather than the visit's
PSF smoothed by the kernel. The phases are measured from the visit's own mapping onto the
patch, so a visit on the patch's pixels shifted by whole pixels (phases 0) is left alone. On
issue 13's detector-frame field (seed 0) this lowers the template's residual against the
truth by 3-5 % at the three held-out visits (`benchmarks/README.md`; at two other seeds
the figures move by at most 2e-3 of the coadd's residual either way); what remains of the
warp's error
depends on each pixel's phase, which no mean response removes (a wider kernel does:
``lanczos5`` for the warp back lowers it by 5-7 % but costs 2.8 times the warp).

A circular Gaussian PSF under a mapping that only rotates and
scales is carried as the circular Gaussian it stays, without resampling its image; any
other PSF's image is sampled with Lanczos 8 (`_TARGET_PSF_KERNEL`), not with the warp's
kernel: the warp back's smoothing is compensated once, above, and a Lanczos 3 sampling of
the PSF would smooth the target a second time (on issue 13's field, seeds 0-2, Lanczos 8
lowers the residuals of all nine held-out templates, by 0.1-8 % of theirs).

A visit on the model's grid (`onModelGrid`: its WCS puts its box within `WCS_GRID_TOLERANCE`
pixels of where the model's does) takes the unchanged path of `dcrmodel.model.templates`,
bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.wcs import WCS

from ..errors import DcrValueError
from ..image import (
    WCS_GRID_TOLERANCE,
    Box,
    Exposure,
    GaussianPsf,
    Image,
    ImagePsf,
    Mask,
    MaskedImage,
    Psf,
    wcsGridOffset,
)
from ..warp import (
    boxesOverlap,
    checkCelestialWcs,
    getWarpingKernel,
    localJacobian,
    mapPixels,
    warpImage,
    warpPsf,
)
from . import templates
from .templates import DEFAULT_PSF_DAMPING, DEFAULT_PSF_MAX_GAIN, PSF_DAMPED_PLANE

__all__ = [
    "TEMPLATE_WARPING_KERNEL",
    "TemplateRegion",
    "onModelGrid",
    "templateRegion",
    "visitPsfOnModel",
    "modelPsfOnVisit",
    "warpResponse",
    "COMPENSATE_WARP_RESPONSE",
    "buildMatchedTemplate",
    "buildMatchedExposure",
]

#: Kernel of the warp of a template from the model's grid to a visit's. Lanczos 4, not the
#: reference's Lanczos 3: on issue 13's detector-frame fields (3 seeds, 9 held-out visits)
#: it lowered every template's residual against the truth, by 1.5-9 %, and put all nine
#: within 1/10 of the plain coadd's residual (Lanczos 3: 0.1027 at one of them), for a
#: later template costing 1.31-1.34 times one on the grid instead of 1.20-1.28 times
#: (`benchmarks/README.md`). ``warpingKernel="lanczos3"`` gives the reference's.
TEMPLATE_WARPING_KERNEL = "lanczos4"

#: Whether a template warped back onto a visit is matched on the patch to the visit's PSF
#: divided by the warp back's mean response (`warpResponse`; see the module notes).
COMPENSATE_WARP_RESPONSE = True

#: Kernel that samples a visit's image PSF at the patch pixels it falls on, when it becomes
#: the PSF a template is matched to on the patch (`_carryPsf`). The warp back's smoothing
#: is compensated separately (`COMPENSATE_WARP_RESPONSE`), so this carries the PSF as
#: exactly as it can: Lanczos 8 keeps a well-sampled image to about 1e-3 (Lanczos 3 would
#: smooth it a second time, by about the warp back's response).
_TARGET_PSF_KERNEL = "lanczos8"

#: Largest gain of that compensation (near the Nyquist frequency only).
_MAX_COMPENSATION = 2.0

#: Visit pixels per axis whose phases on the model's grid give the warp's mean response.
_PHASE_SAMPLES = 32

#: Visit pixels between the points of its outline mapped onto the model's grid.
_OUTLINE_STEP = 16

#: Largest relative difference of a Jacobian's singular values for which a circular
#: Gaussian PSF is carried as a circular Gaussian (its width then errs by at most half this).
_SIMILAR = 1e-3


@dataclass(frozen=True)
class TemplateRegion:
    """Where a visit's box lies on a DCR model's pixel grid.

    Attributes
    ----------
    footprint : Box
        Bounding box (model parent pixels) of the visit's pixel centres mapped onto the
        model's grid, grown by the warping kernel's reach; it may extend beyond the model.
    region : Box
        ``footprint`` clipped to the model's box: the pixels a template is built on.
    centre : tuple of float
        The visit box's centre ``(x, y)`` in model parent pixels, where the Jacobian of the
        mapping between the frames is taken.
    """

    footprint: Box
    region: Box
    centre: tuple[float, float]


def onModelGrid(model: Any, wcs: WCS | None, bbox: Box) -> bool:
    """Return whether a box on ``wcs`` lies on a DCR model's pixel grid.

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model.
    wcs : astropy.wcs.WCS or None
        The visit's WCS (0-based parent pixels to the sky).
    bbox : Box
        The visit's box (parent pixels).

    Returns
    -------
    bool
        True when the model or the visit has no WCS (nothing to compare: the visit is taken
        to be on the model's grid, as it always was), or when ``wcs`` puts the corners and
        centre of ``bbox`` within `WCS_GRID_TOLERANCE` pixels of where the model's WCS does
        (`dcrmodel.image.wcsGridOffset`); False otherwise, and when a point does not map.
    """
    if model.wcs is None or wcs is None:
        return True
    offset = wcsGridOffset(wcs, model.wcs, bbox)
    return bool(np.isfinite(offset) and offset <= WCS_GRID_TOLERANCE)


def _outline(bbox: Box) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres along the edges of a box, every `_OUTLINE_STEP` pixels, corners included."""
    xs = np.unique(np.append(np.arange(bbox.minX, bbox.maxX, _OUTLINE_STEP), bbox.maxX))
    ys = np.unique(np.append(np.arange(bbox.minY, bbox.maxY, _OUTLINE_STEP), bbox.maxY))
    x = np.concatenate([xs, xs, np.full(ys.size, bbox.minX), np.full(ys.size, bbox.maxX)])
    y = np.concatenate([np.full(xs.size, bbox.minY), np.full(xs.size, bbox.maxY), ys, ys])
    return x.astype(np.float64), y.astype(np.float64)


def templateRegion(
    model: Any, wcs: WCS, bbox: Box, kernel: str = TEMPLATE_WARPING_KERNEL
) -> TemplateRegion:
    """Return the part of a model's grid that a template warped onto a visit's box reads.

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model; it needs a celestial WCS.
    wcs : astropy.wcs.WCS
        The visit's celestial WCS.
    bbox : Box
        The visit's box (parent pixels).
    kernel : str, optional
        The warping kernel, whose reach (``size // 2 + 1`` pixels: Lanczos 3 reads 2 pixels
        below and 3 above the floor of a position) grows the footprint.

    Returns
    -------
    TemplateRegion
        The footprint, the region on the model and the visit's centre there.

    Raises
    ------
    DcrValueError
        If the visit's box and the model's box see no common part of the sky
        (`dcrmodel.warp.boxesOverlap`), or a WCS is not celestial.

    Notes
    -----
    If a point of the outline has no position on the model's grid (the model's WCS is
    undefined there), the whole model box is the region.
    """
    checkCelestialWcs(model.wcs, "the DCR model")
    checkCelestialWcs(wcs, "the exposure")
    if not boxesOverlap(wcs, bbox, model.wcs, model.bbox):
        raise DcrValueError(
            f"the exposure's box {bbox} does not overlap the DCR model's box {model.bbox} "
            "on the sky; give a model of the patch the exposure sees",
            bbox=bbox, modelBBox=model.bbox,
        )
    reach = getWarpingKernel(kernel).size // 2 + 1
    x, y = _outline(bbox)
    px, py = mapPixels(wcs, model.wcs, x, y)
    if np.all(np.isfinite(px)) and np.all(np.isfinite(py)):
        footprint = Box.fromCorners(
            math.floor(px.min()) - reach, math.floor(py.min()) - reach,
            math.ceil(px.max()) + reach, math.ceil(py.max()) + reach,
        )
    else:
        footprint = model.bbox
    region = footprint.intersection(model.bbox)
    cx, cy = mapPixels(wcs, model.wcs, bbox.center[0], bbox.center[1])
    centre = (float(cx), float(cy))
    if region.isEmpty():
        raise DcrValueError(
            f"the exposure's box {bbox} does not overlap the DCR model's box {model.bbox}",
            bbox=bbox, modelBBox=model.bbox,
        )
    if not (math.isfinite(centre[0]) and math.isfinite(centre[1])):
        centre = region.center
    return TemplateRegion(footprint, region, centre)


def _carryPsf(psf: Psf, jacobian: np.ndarray, kernel: str) -> Psf:
    """Return ``psf`` (source pixels) seen on a grid whose offsets map to ``jacobian @ v``.

    A circular `GaussianPsf` under a mapping that only rotates, mirrors and scales (its two
    singular values within `_SIMILAR` of each other) stays a circular Gaussian, of FWHM
    divided by the scale: it is carried exactly, without resampling its image (whose
    interpolation leaves a floor of a few 1e-4 in the transfer function near the Nyquist
    frequency, which a PSF matching divides by). Any other PSF is warped by
    `dcrmodel.warp.warpPsf`.
    """
    if isinstance(psf, GaussianPsf):
        large, small = np.linalg.svd(np.asarray(jacobian, float), compute_uv=False)
        if large - small <= _SIMILAR * large:
            return GaussianPsf(psf.fwhm / math.sqrt(large * small), alpha=psf.alpha,
                               effectiveWavelength=psf.effectiveWavelength)
    return warpPsf(psf, jacobian, kernel)


def warpResponse(
    kernel: str, positions: np.ndarray, frequencies: np.ndarray
) -> np.ndarray:
    """Return the mean response of an interpolation at ``positions`` to ``frequencies``.

    Parameters
    ----------
    kernel : str
        Warping kernel (`dcrmodel.warp.WARPING_KERNELS`).
    positions : numpy.ndarray
        Positions sampled along one axis of the source grid (pixels; only their phase
        within a pixel matters).
    frequencies : numpy.ndarray
        Spatial frequencies along that axis, cycles per source pixel.

    Returns
    -------
    numpy.ndarray
        ``R(f) = mean_p Re sum_k w_k(p) exp(2 pi i f (n_k - x_p))`` for each frequency:
        a sinusoid of frequency ``f`` sampled on the source grid and interpolated at
        ``x_p`` with the kernel's taps ``n_k`` and weights ``w_k`` comes out multiplied by
        ``R(f)`` on average over the positions. 1 at ``f = 0``; a grid shifted by whole
        pixels (every phase 0) gives 1 everywhere; for phases spread evenly over a pixel
        (a rotated grid) Lanczos 3 gives 1.002 at 0.1 cycle per pixel, 1.012 at 0.2,
        0.989 at 0.3, 0.82 at 0.4 and 0.50 at 0.5 (Lanczos 5: 1.001, 0.999, 1.006, 0.95,
        0.50).
    """
    warpingKernel = getWarpingKernel(kernel)
    x = np.asarray(positions, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.ones(np.shape(frequencies))
    first, weights = warpingKernel.taps(x)
    offsets = first[np.newaxis] + np.arange(warpingKernel.size)[:, np.newaxis] - x
    f = np.asarray(frequencies, dtype=np.float64).ravel()
    phase = 2.0 * np.pi * offsets[..., np.newaxis] * f
    response = np.einsum("kp,kpf->f", weights, np.cos(phase)) / x.size
    return response.reshape(np.shape(frequencies))


def _compensatedPsf(psf: Psf, modelWcs: WCS, wcs: WCS, bbox: Box, kernel: str) -> Psf:
    """Return the patch PSF a template is matched to so that the warp back gives ``psf``.

    The warp back onto the visit interpolates the patch template at the visit's pixel
    centres; on average over their phases this multiplies the template's spectrum by
    ``R(fx) R(fy)`` (`warpResponse`, along the patch's axes, the kernel being separable
    along them), which smooths it slightly beyond the visit's PSF. The patch PSF is
    divided by that response (its gain limited to `_MAX_COMPENSATION`, reached only near
    the Nyquist frequency, where a PSF has no power), so that the warped template has
    the visit's PSF on average. The phases are those of a grid of ``_PHASE_SAMPLES`` x
    ``_PHASE_SAMPLES`` visit pixels mapped onto the model's grid; when all are 0 (the
    visit's pixels on the model's, shifted by whole pixels) ``psf`` is returned as it is.
    """
    # pixel centres (whole parent coordinates)
    xs = np.unique(np.round(np.linspace(bbox.minX, bbox.maxX, _PHASE_SAMPLES)))
    ys = np.unique(np.round(np.linspace(bbox.minY, bbox.maxY, _PHASE_SAMPLES)))
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    px, py = mapPixels(wcs, modelWcs, xx, yy)
    image = np.asarray(psf.computeKernelImage(), dtype=np.float64)
    pad = getWarpingKernel(kernel).size
    padded = np.pad(image, pad)
    # R is even in f (its real part): evaluated at |f| once, then spread over the spectrum
    fy, iy = np.unique(np.abs(np.fft.fftfreq(padded.shape[0])), return_inverse=True)
    fx, ix = np.unique(np.abs(np.fft.fftfreq(padded.shape[1])), return_inverse=True)
    response = np.outer(warpResponse(kernel, py, fy)[iy], warpResponse(kernel, px, fx)[ix])
    if np.all(response == 1.0):  # every phase 0: the warp back copies pixels
        return psf
    spectrum = np.fft.fft2(padded) / np.maximum(response, 1.0 / _MAX_COMPENSATION)
    sharpened = np.fft.ifft2(spectrum).real[pad:-pad, pad:-pad]
    sharpened /= sharpened.sum()
    return ImagePsf(sharpened, alpha=psf.alpha, effectiveWavelength=psf.effectiveWavelength)


def visitPsfOnModel(
    model: Any, psf: Psf, wcs: WCS, bbox: Box, kernel: str = TEMPLATE_WARPING_KERNEL
) -> Psf:
    """Return a visit's PSF carried onto a model's pixel grid (at the visit's centre).

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model; it needs a celestial WCS.
    psf : dcrmodel.image.Psf
        The visit's PSF, in its own pixels.
    wcs : astropy.wcs.WCS
        The visit's WCS.
    bbox : Box
        The visit's box; the Jacobian is taken at its centre.
    kernel : str, optional
        Kernel that samples the PSF image (`dcrmodel.warp.warpPsf`).

    Returns
    -------
    dcrmodel.image.Psf
        ``P_visit(J v)`` for a model pixel offset ``v``, ``J`` the patch-to-visit Jacobian:
        a `GaussianPsf` for a circular Gaussian under a rotation and change of scale, else
        an `ImagePsf` (`dcrmodel.warp.warpPsf`).

    Raises
    ------
    DcrValueError
        If the visit does not overlap the model (`templateRegion`).
    """
    centre = templateRegion(model, wcs, bbox, kernel).centre
    return _carryPsf(psf, localJacobian(model.wcs, wcs, centre), kernel)


def modelPsfOnVisit(
    model: Any, wcs: WCS, bbox: Box, kernel: str = TEMPLATE_WARPING_KERNEL
) -> Psf | None:
    """Return a model's PSF carried onto a visit's pixel grid (at the visit's centre).

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model; it needs a celestial WCS.
    wcs : astropy.wcs.WCS
        The visit's WCS.
    bbox : Box
        The visit's box; the Jacobian is taken at its centre.
    kernel : str, optional
        Kernel that samples the PSF image (`dcrmodel.warp.warpPsf`).

    Returns
    -------
    dcrmodel.image.Psf or None
        The model's PSF in the visit's pixels (as `visitPsfOnModel`); None if the model
        has none.
    """
    if model.psf is None:
        return None
    try:
        jacobian = localJacobian(wcs, model.wcs, bbox.center)
    except DcrValueError:
        # The model's WCS is undefined at the visit's centre: take the Jacobian where the
        # part of the visit on the model lies.
        region = templateRegion(model, wcs, bbox, kernel).region
        x, y = mapPixels(model.wcs, wcs, region.center[0], region.center[1])
        jacobian = localJacobian(wcs, model.wcs, (float(x), float(y)))
    return _carryPsf(model.psf, jacobian, kernel)


# ----------------------------------------------------------------------------------------
# The template of a visit off the model's grid
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WarpedTemplate:
    """A template forward-modelled on the patch and warped onto the visit's grid."""

    maskedImage: MaskedImage
    target: Psf | None  # the PSF it was matched to, in the visit's pixels
    region: TemplateRegion


def _offGridTemplate(
    model: Any,
    cache: templates.TemplateCache,
    method: str,
    exposure: Any,
    visit: tuple[Any, Box, WCS],
    order: Any,
    splitSubfilters: Any,
    splitThreshold: Any,
    amplifyModel: Any,
    options: dict[str, Any],
) -> _WarpedTemplate:
    """Forward-model the visit on the model's grid and warp it onto the visit's.

    ``options`` holds the keyword options of the template (engine, mode, psf, matchPsf,
    psfDamping, psfMaxGain) and the warping kernel (``warpingKernel``, checked by
    `_keywordOptions`). Every argument is checked before any pixel is touched.
    """
    visitInfo, bbox, wcs = visit
    *_, target = templates._checkOptions(
        model, exposure, order, splitSubfilters, splitThreshold, amplifyModel,
        options["engine"], options["mode"], options["psf"], options["matchPsf"],
        options["psfDamping"], options["psfMaxGain"],
    )
    kernel = options["warpingKernel"]
    where = templateRegion(model, wcs, bbox, kernel)
    patchPsf = None
    if target is not None:
        patchPsf = _carryPsf(target, localJacobian(model.wcs, wcs, where.centre),
                             _TARGET_PSF_KERNEL)
        if COMPENSATE_WARP_RESPONSE:
            patchPsf = _compensatedPsf(patchPsf, model.wcs, wcs, bbox, kernel)
    region = where.region
    if model.mask is not None:
        patchMask = Mask(model.mask.array[region.slices(model.bbox)].copy(), bbox=region,
                         planes=model.mask.planes)
    else:
        patchMask = Mask.fromBox(region)
    image, _ = templates._matchedTemplate(
        model, cache, method, None, order, visitInfo, region, model.wcs, patchMask,
        splitSubfilters, splitThreshold, amplifyModel, options["engine"], options["mode"],
        patchPsf, options["matchPsf"], options["psfDamping"], options["psfMaxGain"],
        dcrBox=where.footprint,
    )
    variance = None
    if model.variance is not None:
        variance = Image(model.variance.array[region.slices(model.bbox)] * len(model),
                         bbox=region)
    warped = warpImage(MaskedImage(image, patchMask, variance), model.wcs, wcs, bbox,
                       kernel=kernel)
    if model.variance is None:
        # Unit variance where there is a template, as a template on the grid has.
        noData = warped.mask.getBadPixels("NO_DATA")
        warped.variance.array[...] = np.where(noData, 0.0, 1.0)
    return _WarpedTemplate(warped, target, where)


def _templateMask(warped: Mask, mask: Mask | None, bbox: Box) -> Mask:
    """Return the template's mask: ``mask`` (on the visit's grid) or the warped model mask.

    A given mask replaces the model's mask, as on the grid; the pixels without a template
    (``NO_DATA``) and those where the PSF matching was damped (``PSF_DAMPED``) are flagged
    in it (in a copy).
    """
    if mask is None:
        return warped
    result = Mask(mask.array[bbox.slices(mask.bbox)].copy(), bbox=bbox, planes=mask.planes)
    _flagFrom(result, warped, ("NO_DATA", PSF_DAMPED_PLANE))
    return result


def _flagFrom(target: Mask, source: Mask, planes: tuple[str, ...]) -> None:
    """OR the ``planes`` of ``source`` into ``target`` (same box), adding them if needed."""
    for plane in planes:
        if plane not in source.planes:
            continue
        flagged = source.getBadPixels(plane)
        if flagged.any():
            target.array[flagged] |= np.int32(1 << target.addMaskPlane(plane))


#: The keyword options of a template on the model's grid and their defaults (see
#: `DcrModel.buildMatchedTemplate`); off the grid, ``warpingKernel`` too.
_TEMPLATE_OPTIONS: dict[str, Any] = {
    "engine": None, "mode": None, "psf": None, "matchPsf": True,
    "psfDamping": DEFAULT_PSF_DAMPING, "psfMaxGain": DEFAULT_PSF_MAX_GAIN,
}


def _keywordOptions(options: dict[str, Any], method: str) -> tuple[dict[str, Any], str]:
    """Return the template's keyword options (defaults filled in) and its warping kernel.

    Raises
    ------
    TypeError
        For an option that does not exist, as Python would for a keyword argument.
    DcrConfigError
        For an unknown warping kernel (the message names the known ones).
    """
    unknown = sorted(set(options) - set(_TEMPLATE_OPTIONS) - {"warpingKernel"})
    if unknown:
        raise TypeError(f"{method}() got an unexpected keyword argument {unknown[0]!r}")
    kernel = getWarpingKernel(options.get("warpingKernel", TEMPLATE_WARPING_KERNEL)).name
    return {key: options.get(key, value) for key, value in _TEMPLATE_OPTIONS.items()}, kernel


def buildMatchedTemplate(
    model: Any,
    cache: templates.TemplateCache,
    exposure: Exposure | None = None,
    order: int = 3,
    visitInfo: Any = None,
    bbox: Box | None = None,
    wcs: WCS | None = None,
    mask: Mask | None = None,
    splitSubfilters: bool = True,
    splitThreshold: float = 0.0,
    amplifyModel: float = 1.0,
    **options: Any,
) -> Image:
    """`DcrModel.buildMatchedTemplate` for a visit on any grid.

    A visit on the model's grid (`onModelGrid`) takes
    `dcrmodel.model.templates.buildMatchedTemplate` unchanged. Off the grid the template is
    forward-modelled on the model's grid and warped onto the visit's box (module notes);
    ``mask``, if given, is on the visit's grid (covering its box) and gets the warped
    template's ``NO_DATA`` and ``PSF_DAMPED`` pixels.

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model to forward-model.
    cache : dcrmodel.model.templates.TemplateCache
        The model's cache of transforms and transfer functions.
    exposure, order, visitInfo, bbox, wcs, mask, splitSubfilters, splitThreshold
        As `DcrModel.buildMatchedTemplate`.
    amplifyModel
        As `DcrModel.buildMatchedTemplate`.
    **options
        Keyword only: ``engine``, ``mode``, ``psf``, ``matchPsf``, ``psfDamping``,
        ``psfMaxGain`` and ``warpingKernel``, as `DcrModel.buildMatchedTemplate` (the same
        defaults).

    Returns
    -------
    dcrmodel.image.Image
        The template over the visit's box; 0 where no model covers it.

    Raises
    ------
    DcrValueError
        Off the grid, if the visit does not overlap the model; else as
        `DcrModel.buildMatchedTemplate`.
    """
    method = "buildMatchedTemplate"
    options, kernel = _keywordOptions(options, method)
    visit = templates._resolveVisit(exposure, visitInfo, bbox, wcs, method)
    if onModelGrid(model, visit[2], visit[1]):
        return templates.buildMatchedTemplate(
            model, cache, exposure, order, visitInfo, bbox, wcs, mask, splitSubfilters,
            splitThreshold, amplifyModel, **options,
        )
    mask = templates._checkTemplateMask(mask, visit[1])
    warped = _offGridTemplate(model, cache, method, exposure, visit, order, splitSubfilters,
                              splitThreshold, amplifyModel, {**options, "warpingKernel": kernel})
    if mask is not None:
        _flagFrom(mask[visit[1]], warped.maskedImage.mask, ("NO_DATA", PSF_DAMPED_PLANE))
    return warped.maskedImage.image


def buildMatchedExposure(
    model: Any,
    cache: templates.TemplateCache,
    exposure: Exposure | None = None,
    visitInfo: Any = None,
    bbox: Box | None = None,
    wcs: WCS | None = None,
    mask: Mask | None = None,
    order: int = 3,
    splitSubfilters: bool = True,
    splitThreshold: float = 0.0,
    **options: Any,
) -> Exposure:
    """`DcrModel.buildMatchedExposure` for a visit on any grid.

    A visit on the model's grid (`onModelGrid`) takes
    `dcrmodel.model.templates.buildMatchedExposure` unchanged. Off the grid the template is
    forward-modelled on the model's grid and warped onto the visit's WCS and box (module
    notes).

    Parameters
    ----------
    model : dcrmodel.model.core.DcrModel
        The model to forward-model.
    cache : dcrmodel.model.templates.TemplateCache
        The model's cache of transforms and transfer functions.
    exposure, visitInfo, bbox, wcs, mask, order, splitSubfilters, splitThreshold
        As `DcrModel.buildMatchedExposure`. Off the grid, ``mask`` is on the visit's grid.
    **options
        Keyword only: ``engine``, ``mode``, ``psf``, ``matchPsf``, ``psfDamping``,
        ``psfMaxGain`` and ``warpingKernel``, as `DcrModel.buildMatchedExposure` (the same
        defaults).

    Returns
    -------
    dcrmodel.image.Exposure
        The template on the visit's box and WCS. Off the grid: the warped image and
        variance; the warped model mask (or ``mask``) with ``NO_DATA`` where no model
        covers a pixel; the visit's PSF when PSF-matched (the target PSF, as on the grid),
        else the model's PSF carried onto the visit's grid (`modelPsfOnVisit`); the visit
        info, the model's filter and photometric calibration.

    Raises
    ------
    DcrValueError
        Off the grid, if the visit does not overlap the model; else as
        `DcrModel.buildMatchedExposure`.
    """
    method = "buildMatchedExposure"
    options, kernel = _keywordOptions(options, method)
    visit = templates._resolveVisit(exposure, visitInfo, bbox, wcs, method)
    if onModelGrid(model, visit[2], visit[1]):
        return templates.buildMatchedExposure(
            model, cache, exposure, visitInfo, bbox, wcs, mask, order, splitSubfilters,
            splitThreshold, **options,
        )
    visitInfo, bbox, wcs = visit
    mask = templates._checkTemplateMask(mask, bbox)
    warped = _offGridTemplate(model, cache, method, exposure, visit, order, splitSubfilters,
                              splitThreshold, 1.0, {**options, "warpingKernel": kernel})
    maskedImage = MaskedImage(
        warped.maskedImage.image,
        _templateMask(warped.maskedImage.mask, mask, bbox),
        warped.maskedImage.variance,
    )
    templatePsf = warped.target
    if templatePsf is None:
        templatePsf = modelPsfOnVisit(model, wcs, bbox, kernel)
    return Exposure(
        maskedImage,
        wcs=wcs,
        psf=templatePsf,
        visitInfo=visitInfo,
        filter=model.filter,
        photoCalib=model.photoCalib,
    )
