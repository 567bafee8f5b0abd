"""PSF matching: from the model's PSF to a visit's, damped; the choice of the model's PSF.

The PSF factor of a PSF-aware DCR forward model takes a model image, the sky seen through the
model's PSF, to the sky seen through a visit's PSF at a subfilter's wavelength: on the
``rfft2`` grid of a padded array it is the quotient of the two optical transfer functions
(`dcrmodel.psf.kernels.psfTransfer`), which must be damped where the model's is too small to
divide by.

- `psfMatchingTransfer`: ``OTF_visit / OTF_model``, damped where the model's OTF is too small
  to divide by (a visit sharper than the model), with a map of where the damping lost signal
  (`PsfMatch`); `DampedPsfMatcher`: the same transfers for many visit PSFs at once.
- `modelPsfRidge`: the prior that keeps a PSF-aware solution at 0 where the model's PSF has no
  power.
- `modelPsfFor`, `sharpestPsf`: the model PSF chosen from the inputs' PSFs.

Conventions are those of `dcrmodel.psf.kernels`: arrays ``(y, x)``, sizes and FWHMs in pixels,
wavelengths in nm, transfer functions of kernels centred on array index ``(0, 0)``.

References
----------
N. Wiener (1949), *Extrapolation, Interpolation, and Smoothing of Stationary Time Series*,
MIT Press: the damped (Wiener) inverse filter.
I. Sullivan, DMTN-121, "Variable seeing in DCR-matched templates", https://dmtn-121.lsst.io.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.fft

from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from ..image import GaussianPsf, ImagePsf, Psf
from .kernels import (
    asPositiveFloat,
    checkGrid,
    checkPsfType,
    complexType,
    psfAtWavelength,
    psfFwhmAt,
    psfTransfer,
    validatePsfAlpha,
    wholeNumber,
)

__all__ = [
    "MODEL_PSF_POLICIES",
    "PsfMatch",
    "psfMatchingTransfer",
    "DampedPsfMatcher",
    "modelPsfRidge",
    "sharpestPsf",
    "modelPsfFor",
]

_log = logging.getLogger(__name__)


#: Named model-PSF policies of `modelPsfFor` (a number, a FWHM in pixels, or a `Psf` also work).
MODEL_PSF_POLICIES = ("sharpest", "median", "sharpestInput")


# ---------------------------------------------------------------------------------------------
# Matching transfers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PsfMatch:
    """A damped PSF-matching transfer function and where the damping lost signal.

    Attributes
    ----------
    transfer : numpy.ndarray
        Complex ``(ny, nx // 2 + 1)`` transfer ``H`` taking the model's PSF to the visit's.
    loss : numpy.ndarray
        Float ``(ny, nx // 2 + 1)``: ``|OTF_visit - H * OTF_model|``, the part of the visit's
        transfer function that the model cannot supply (0 where no damping acted; the OTFs are
        1 at zero frequency, so this is a fraction of a point source's transform).
    flagged : numpy.ndarray
        Boolean ``(ny, nx // 2 + 1)``: ``loss > threshold``.
    epsilon : float
        Damping level ``damping * max|OTF_model|``.
    threshold : float
        Loss above which a frequency is flagged.
    shape : tuple of int
        ``(ny, nx)`` of the real-space grid.
    """

    transfer: np.ndarray
    loss: np.ndarray
    flagged: np.ndarray
    epsilon: float
    threshold: float
    shape: tuple[int, int]

    @property
    def isDamped(self) -> bool:
        """True if damping lost signal above the threshold at any frequency."""
        return bool(self.flagged.any())

    @property
    def maxLoss(self) -> float:
        """Largest loss over the grid."""
        return float(self.loss.max())

    def residualKernel(self) -> np.ndarray:
        """Return the real-space kernel of ``OTF_visit - H * OTF_model``, centred.

        The sky convolved with it is what the damped template misses (for a point source of
        flux ``F``: ``F`` times this kernel); its centre is at index ``(ny // 2, nx // 2)``.
        """
        otfVisit = self._otfVisit
        otfModel = self._otfModel
        residual = otfVisit - self.transfer * otfModel
        kernel = scipy.fft.irfft2(residual, s=self.shape)
        return scipy.fft.fftshift(kernel)

    def residualFraction(self) -> float:
        """Return the largest fraction of a point source's flux that the template misses.

        This is the L1 norm of `residualKernel`: a point source of flux ``F`` leaves at most
        ``F * residualFraction()`` of summed absolute residual in the template. Small (below
        1e-3 for the cases in the Notes of `psfMatchingTransfer`) when the visit is nowhere
        sharper than the model.
        """
        return float(np.abs(self.residualKernel()).sum())

    # The two OTFs are kept privately for residualKernel; they are not part of the value.
    _otfVisit: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _otfModel: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]


def _modelOtf(modelPsf: Psf | np.ndarray, grid: tuple[int, int], cdtype: Any) -> np.ndarray:
    """Return the model PSF's transfer function on ``grid``: computed, or checked if given."""
    if isinstance(modelPsf, np.ndarray):
        expected = (grid[0], grid[1] // 2 + 1)
        if modelPsf.shape != expected:
            raise DcrShapeError(
                "modelPsf transfer does not match the rfft2 grid (ny, nx // 2 + 1) of shape",
                transferShape=modelPsf.shape,
                expected=expected,
            )
        last = _lastInverse
        checked = last is not None and last[1] is modelPsf  # read-only, checked before
        if not checked and not np.all(np.isfinite(modelPsf)):
            raise DcrValueError("modelPsf transfer has NaN or infinite values")
        return modelPsf.astype(cdtype, copy=False)
    checkPsfType(modelPsf, "modelPsf")
    return psfTransfer(modelPsf, grid, dtype=cdtype)


def _dampedInverse(otfModel: np.ndarray, damping: float, order: int) -> tuple[np.ndarray, float]:
    """Return ``conj(OTF_m) |OTF_m|^(2p-2) / (|OTF_m|^(2p) + eps^(2p))`` and ``eps``.

    The damped inverse of the model's transfer function (see `psfMatchingTransfer`), in the
    precision of ``otfModel`` (computed in float64); real when ``otfModel`` is.
    """
    absModel = np.abs(otfModel).astype(np.float64)
    epsilon = damping * float(absModel.max())
    if not epsilon > 0.0:
        raise DcrValueError("the model PSF's transfer function is zero everywhere")
    power = absModel**2
    weight = power ** (order - 1) / (power**order + epsilon ** (2 * order))
    if np.iscomplexobj(otfModel) and np.any(otfModel.imag != 0):
        return (np.conj(otfModel) * weight).astype(otfModel.dtype), epsilon
    real = otfModel.real if np.iscomplexobj(otfModel) else otfModel
    return (real * weight).astype(real.dtype), epsilon


# The damped inverse of the last read-only model transfer function `psfMatchingTransfer` was
# given: (key, that array, (inverse, epsilon)). A template matches every subfilter to its
# visit through the one model transfer function its cache holds (read-only), so the inverse
# is computed once per grid instead of once per subfilter and template.
_lastInverse: tuple[tuple[int, float, int], np.ndarray, tuple[np.ndarray, float]] | None = None


def _sharedDampedInverse(
    otfModel: np.ndarray, damping: float, order: int
) -> tuple[np.ndarray, float]:
    """`_dampedInverse`, kept for the last read-only ``otfModel`` (which cannot change).

    A writable array may change between calls: its inverse is computed every time.
    """
    global _lastInverse
    if otfModel.flags.writeable:
        return _dampedInverse(otfModel, damping, order)
    last = _lastInverse
    key = (id(otfModel), damping, order)
    if last is not None and last[0] == key and last[1] is otfModel:
        return last[2]
    inverse, epsilon = _dampedInverse(otfModel, damping, order)
    inverse.flags.writeable = False
    _lastInverse = (key, otfModel, (inverse, epsilon))
    return inverse, epsilon


class DampedPsfMatcher:
    """The damped PSF-matching transfers of many visit PSFs to one model PSF, on one grid.

    Gives the same ``H`` as `psfMatchingTransfer` (``maxGain=None``) for any number of visit
    PSFs, without its loss map and flags: the model's damped inverse is computed once, in
    the constructor, and each visit's transfer function in single precision. This is what
    a PSF-aware forward model needs for every visit and subfilter.

    Parameters
    ----------
    modelPsf : Psf or numpy.ndarray
        The model's PSF, or its transfer function on this grid (`psfTransfer`).
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) grid.
    damping : float, optional
        ``epsilon = damping * max|OTF_model|`` (dimensionless, > 0).
    order : int, optional
        Sharpness ``p`` of the damping (>= 1).

    Examples
    --------
    >>> from dcrmodel.image import GaussianPsf
    >>> matcher = DampedPsfMatcher(GaussianPsf(3.0), (32, 32))
    >>> factors = matcher.factors([GaussianPsf(4.0), GaussianPsf(3.0)])
    >>> factors.shape, factors.dtype.name, round(float(factors[1].max()), 6)
    ((2, 32, 17), 'float32', 1.0)
    """

    def __init__(
        self,
        modelPsf: Psf | np.ndarray,
        shape: tuple[int, int],
        damping: float = 1e-3,
        order: int = 2,
    ) -> None:
        grid = checkGrid(shape)
        eps = asPositiveFloat(damping, "damping", "fraction of max |OTF_model|")
        p = wholeNumber(order, "order", 1)
        otfModel = _modelOtf(modelPsf, grid, np.complex128)
        inverse, self.epsilon = _dampedInverse(otfModel, eps, p)
        self.shape = grid
        self._inverse = inverse.astype(
            np.complex64 if np.iscomplexobj(inverse) else np.float32
        )

    def factors(self, visitPsfs: Sequence[Psf]) -> np.ndarray:
        """Return the transfers of ``visitPsfs`` (each at its own effective wavelength).

        Parameters
        ----------
        visitPsfs : sequence of Psf
            The visit PSFs, already at the wavelengths wanted (e.g. `ImagePsf` of
            `psfAtWavelength`).

        Returns
        -------
        factors : numpy.ndarray
            ``(len(visitPsfs), ny, nx // 2 + 1)``: float32 when every kernel and the model
            are point-symmetric (real transfers), else complex64.
        """
        for psf in visitPsfs:
            checkPsfType(psf, "visitPsf")
        otfs = [psfTransfer(psf, self.shape, dtype=np.complex64) for psf in visitPsfs]
        real = not np.iscomplexobj(self._inverse) and not any(np.any(o.imag) for o in otfs)
        out = np.empty(
            (len(otfs), *self._inverse.shape), dtype=np.float32 if real else np.complex64
        )
        for index, otf in enumerate(otfs):
            np.multiply(otf.real if real else otf, self._inverse, out=out[index])
        return out


def psfMatchingTransfer(
    visitPsf: Psf,
    modelPsf: Psf | np.ndarray,
    shape: tuple[int, int],
    wavelength: float | None = None,
    effectiveWavelength: float | None = None,
    damping: float = 1e-3,
    order: int = 2,
    flagThreshold: float | None = None,
    dtype: Any = np.complex128,
    maxGain: float | None = None,
) -> PsfMatch:
    """Return the transfer function from the model's PSF to a visit's PSF, damped.

    Parameters
    ----------
    visitPsf : Psf
        The visit's PSF; evaluated at ``wavelength`` (its size scaled by
        ``(wavelength / effectiveWavelength) ** alpha``).
    modelPsf : Psf or numpy.ndarray
        The model's PSF, evaluated at its effective wavelength (the subfilter images all share
        it), or its transfer function already computed with `psfTransfer` on this grid.
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) grid.
    wavelength : float, optional
        Wavelength (nm) of the subfilter, usually its central wavelength (None: the visit
        PSF's effective wavelength).
    effectiveWavelength : float, optional
        The band's effective wavelength (nm), fallback for PSFs that carry none.
    damping : float, optional
        Damping level relative to ``max|OTF_model|`` (dimensionless, > 0): ``epsilon =
        damping * max|OTF_model|``.
    order : int, optional
        Sharpness ``p`` of the damping (>= 1): ``H = (OTF_v / OTF_m) * |OTF_m|^(2p) /
        (|OTF_m|^(2p) + epsilon^(2p))``. ``p = 1`` is the classic Wiener filter ``OTF_v *
        conj(OTF_m) / (|OTF_m|^2 + epsilon^2)``.
    flagThreshold : float, optional
        Loss above which a frequency is flagged (None: ``epsilon``).
    dtype : numpy dtype, optional
        ``complex128`` (default) or ``complex64``.
    maxGain : float, optional
        Largest allowed ``|H|`` (> 0): where the damped quotient exceeds it, ``H`` keeps its
        phase and is scaled down to ``maxGain``. Where a visit is sharper than the model,
        ``|H| > 1`` amplifies the model's noise along with its signal; a template made from
        a model of ``J`` visits stays below a visit's own noise with a gain of order
        ``sqrt(J)``. None: no limit beyond the damping.

    Returns
    -------
    PsfMatch
        The transfer, the loss map, the flags and the damping level.

    Raises
    ------
    DcrTypeError, DcrValueError, DcrShapeError
        Bad PSFs, grid, wavelengths or damping settings.

    Notes
    -----
    Where the model's PSF is broader than the visit's at some frequency, ``OTF_v / OTF_m``
    amplifies whatever the model holds there (noise, regularisation residue) without bound;
    damping caps the gain at about ``|OTF_v| / epsilon`` (``0.57 |OTF_v| / epsilon`` for
    ``p = 2``, ``|OTF_v| / (2 epsilon)`` for ``p = 1``). The default ``p = 2`` keeps the
    quotient exact to a relative ``(epsilon / |OTF_m|)^4`` wherever the model's OTF is not
    small, so a visit at the model's PSF gets ``H = 1`` to better than 1e-8 wherever
    ``|OTF_m| >= 0.1`` with the default ``damping = 1e-3`` (``p = 1`` would leave 1e-4 there),
    while the gain stays below ``570 |OTF_v|``.

    The default ``damping = 1e-3`` keeps the gain moderate where it matters: the gain is
    also proportional to ``|OTF_v|``, which is itself small where ``|OTF_m| < epsilon``
    unless the visit is much sharper (for Gaussians of FWHM 2.5 and 4 pixels, about 40 at
    most). A larger damping also cuts real signal: a Moffat PSF's transfer function falls
    only exponentially, so at the highest frequencies it exceeds that of a Gaussian model of
    smaller FWHM; with ``damping = 1e-2`` the template of a Moffat visit (beta 3.5, FWHM 4.5
    pixels) from a Gaussian model (FWHM 3 pixels) misses 1.5e-3 of the peak, with ``1e-3``
    1.5e-4. The loss ``|OTF_v - H OTF_m| = |OTF_v| epsilon^(2p) / (|OTF_m|^(2p) +
    epsilon^(2p))`` stays below ``0.57 epsilon`` (``p = 2``) wherever the visit is not sharper
    than the model (``|OTF_v| <= |OTF_m|``), so the default threshold ``epsilon`` flags the
    frequencies at which a visit is sharper than the model and has signal to lose. For the
    total effect on a template use `PsfMatch.residualFraction`, which sums the loss over all
    frequencies.

    Examples
    --------
    >>> from dcrmodel.image import GaussianPsf
    >>> broader = psfMatchingTransfer(GaussianPsf(4.0), GaussianPsf(3.0), (32, 32))
    >>> broader.transfer.shape, broader.isDamped
    ((32, 17), False)
    >>> psfMatchingTransfer(GaussianPsf(2.0), GaussianPsf(4.0), (32, 32)).isDamped
    True
    """
    checkPsfType(visitPsf, "visitPsf")
    grid = checkGrid(shape)
    cdtype = complexType(dtype)
    eps = asPositiveFloat(damping, "damping", "fraction of max |OTF_model|")
    p = wholeNumber(order, "order", 1)
    if flagThreshold is not None:
        flagThreshold = asPositiveFloat(flagThreshold, "flagThreshold", "fraction of the OTF at 0")
    if maxGain is not None:
        cap = asPositiveFloat(maxGain, "maxGain", "dimensionless")
    otfModel = _modelOtf(modelPsf, grid, cdtype)
    otfVisit = psfTransfer(visitPsf, grid, wavelength, effectiveWavelength, dtype=cdtype)

    inverse, epsilon = _sharedDampedInverse(otfModel, eps, p)
    transfer = (otfVisit * inverse).astype(cdtype, copy=False)
    if maxGain is not None:
        gain = np.abs(transfer)
        over = gain > cap
        if over.any():
            transfer[over] *= (cap / gain[over]).astype(transfer.real.dtype)
    loss = np.abs(otfVisit - transfer * otfModel).astype(np.float64)
    threshold = epsilon if flagThreshold is None else flagThreshold
    flagged = loss > threshold
    if flagged.any():
        _log.debug(
            "PSF matching damped: %d of %d frequencies lose more than %.3g",
            int(flagged.sum()),
            flagged.size,
            threshold,
        )
    return PsfMatch(
        transfer=transfer,
        loss=loss,
        flagged=flagged,
        epsilon=epsilon,
        threshold=threshold,
        shape=grid,
        _otfVisit=otfVisit,
        _otfModel=otfModel,
    )


def modelPsfRidge(
    modelPsf: Psf | np.ndarray,
    shape: tuple[int, int],
    damping: float = 1e-3,
    maxValue: float = 1e12,
) -> np.ndarray:
    """Return a per-frequency ridge ``(epsilon / |OTF_model|)^2`` for a PSF-aware solver.

    A model whose images are the sky seen through ``modelPsf`` holds (almost) nothing at
    the frequencies where that PSF's transfer function is small, and a PSF-aware forward
    model (whose factors `psfMatchingTransfer` damps there) does not constrain them: without
    a prior a least-squares solution fills them with amplified noise. Added to the diagonal
    of the normal equations, relative to the total weight, this ridge pulls the model toward
    0 where ``|OTF_model| < epsilon`` and leaves it free (relative bias ``(epsilon /
    |OTF_model|)^2``) elsewhere.

    Parameters
    ----------
    modelPsf : Psf or numpy.ndarray
        The model's PSF, or its transfer function on this grid (`psfTransfer`).
    shape : tuple of int
        ``(ny, nx)`` of the real-space (padded) grid.
    damping : float, optional
        ``epsilon = damping * max|OTF_model|`` (dimensionless, > 0), as in
        `psfMatchingTransfer`.
    maxValue : float, optional
        Upper bound of the ridge (where the OTF vanishes), > 0.

    Returns
    -------
    ridge : numpy.ndarray
        Real float64 ``(ny, nx // 2 + 1)``, >= 0.

    Examples
    --------
    >>> from dcrmodel.image import GaussianPsf
    >>> ridge = modelPsfRidge(GaussianPsf(3.0), (32, 32))
    >>> float(ridge[0, 0]) == 1e-6, bool(ridge.max() > 1.0)
    (True, True)
    """
    grid = checkGrid(shape)
    eps = asPositiveFloat(damping, "damping", "fraction of max |OTF_model|")
    cap = asPositiveFloat(maxValue, "maxValue", "dimensionless")
    otf = np.abs(_modelOtf(modelPsf, grid, np.complex128))
    epsilon = eps * float(otf.max())
    with np.errstate(divide="ignore"):
        ridge = np.where(otf > 0, (epsilon / np.maximum(otf, 1e-300)) ** 2, np.inf)
    return np.minimum(ridge, cap)


# ---------------------------------------------------------------------------------------------
# Model PSF
# ---------------------------------------------------------------------------------------------


def _checkPsfList(psfs: Any) -> list[Psf]:
    if isinstance(psfs, Psf):
        return [psfs]
    try:
        items = list(psfs)
    except TypeError:
        raise DcrTypeError("psfs must be a sequence of Psf objects", psfs=type(psfs)) from None
    if not items:
        raise DcrValueError("psfs is empty; give at least one input PSF")
    for index, psf in enumerate(items):
        if psf is None:
            raise DcrValueError(
                f"input {index} has no PSF; estimate it with estimatePsf, or supply one "
                "(a PSF HDU in its file or an explicit psf argument)",
                index=index,
            )
        checkPsfType(psf, f"psfs[{index}]")
    return items


def _sharpestFwhm(
    psf: Psf, wavelengths: list[float] | None, effectiveWavelength: float | None
) -> float:
    if not wavelengths:
        return psf.fwhm
    return min(psfFwhmAt(psf, wl, effectiveWavelength) for wl in wavelengths)


def modelPsfFor(
    psfs: Sequence[Psf],
    policy: str | float | Psf = "sharpest",
    wavelengths: Iterable[float] | None = None,
    effectiveWavelength: float | None = None,
) -> Psf:
    """Choose the PSF of a DCR model from its inputs' PSFs.

    Parameters
    ----------
    psfs : sequence of Psf
        The input visits' PSFs (none may be None).
    policy : str, float or Psf, optional
        ``"sharpest"`` (default): a `GaussianPsf` with the smallest FWHM among the inputs, the
        sharpest model the inputs support. ``"median"``: a `GaussianPsf` with the median FWHM.
        ``"sharpestInput"``: the sharpest input PSF itself, made achromatic (its kernel at its
        effective wavelength as an `ImagePsf`), so that its visit needs no matching. A number:
        a `GaussianPsf` of that FWHM (pixels). A `Psf`: used as given (validated).
    wavelengths : iterable of float, optional
        Wavelengths (nm), e.g. the subfilters' central wavelengths. A chromatic input's FWHM is
        then its smallest over them (with ``alpha = -0.2`` the reddest is sharpest), so that
        no visit is sharper than the model in any subfilter. None: FWHMs at the effective
        wavelength.
    effectiveWavelength : float, optional
        The band's effective wavelength (nm): fallback for inputs without one, and the
        effective wavelength given to the returned PSF.

    Returns
    -------
    Psf
        The model PSF, achromatic (``alpha = 0``).

    Raises
    ------
    DcrValueError, DcrTypeError
        Empty list, a missing PSF, an unknown policy or a non-positive FWHM.

    Notes
    -----
    A Gaussian model of the same FWHM as a Moffat-like input is not sharper than it at every
    frequency (a Moffat's transfer function falls exponentially, a Gaussian's faster), so the
    PSF matching of the sharpest visit is then damped at the highest frequencies;
    ``"sharpestInput"`` avoids that.
    """
    items = _checkPsfList(psfs)
    waves = None if wavelengths is None else [
        asPositiveFloat(wl, "wavelengths", "nm") for wl in wavelengths
    ]
    lambdaEff = (
        None
        if effectiveWavelength is None
        else asPositiveFloat(effectiveWavelength, "effectiveWavelength", "nm")
    )
    if lambdaEff is None:
        known = {p.effectiveWavelength for p in items if p.effectiveWavelength is not None}
        lambdaEff = known.pop() if len(known) == 1 else None
    if isinstance(policy, Psf):
        validatePsfAlpha(policy.alpha, "policy.alpha (PSF-ALPH)")
        return policy
    if isinstance(policy, numbers.Real) and not isinstance(policy, bool):
        fwhm = asPositiveFloat(policy, "policy (model FWHM)", "pixels")
        return GaussianPsf(fwhm, alpha=0.0, effectiveWavelength=lambdaEff)
    if policy not in MODEL_PSF_POLICIES:
        raise DcrValueError(
            f"unknown model PSF policy; use one of {', '.join(MODEL_PSF_POLICIES)}, a FWHM in "
            "pixels or a Psf",
            policy=policy,
        )
    widths = np.array([_sharpestFwhm(p, waves, effectiveWavelength) for p in items])
    if policy == "median":
        return GaussianPsf(float(np.median(widths)), alpha=0.0, effectiveWavelength=lambdaEff)
    index = int(np.argmin(widths))
    if policy == "sharpest":
        return GaussianPsf(float(widths[index]), alpha=0.0, effectiveWavelength=lambdaEff)
    sharpest = items[index]
    wave = None
    if waves:
        wave = min(waves, key=lambda wl: psfFwhmAt(sharpest, wl, effectiveWavelength))
    kernel = psfAtWavelength(sharpest, wave, effectiveWavelength)
    return ImagePsf(kernel, alpha=0.0, effectiveWavelength=lambdaEff, fwhm=float(widths[index]))


def sharpestPsf(
    psfs: Sequence[Psf],
    wavelengths: Iterable[float] | None = None,
    effectiveWavelength: float | None = None,
) -> GaussianPsf:
    """Return a `GaussianPsf` with the smallest FWHM among ``psfs`` (``modelPsfFor`` default).

    Parameters
    ----------
    psfs : sequence of Psf
        The input PSFs.
    wavelengths : iterable of float, optional
        Wavelengths (nm) over which each input's smallest FWHM is taken.
    effectiveWavelength : float, optional
        The band's effective wavelength (nm).

    Returns
    -------
    GaussianPsf
        Achromatic, FWHM in pixels.
    """
    psf = modelPsfFor(psfs, "sharpest", wavelengths, effectiveWavelength)
    assert isinstance(psf, GaussianPsf)
    return psf
