"""Point-spread functions in DCR work: chromatic kernels, PSF matching, estimation from stars."""

from .estimate import DEFAULT_BAD_MASK_PLANES, PsfEstimate, estimatePsf
from .kernels import (
    effectiveKernelSize,
    maxKernelSize,
    psfAtWavelength,
    psfFwhmAt,
    psfTransfer,
    validatePsf,
    validatePsfAlpha,
    validatePsfImage,
)
from .matching import (
    MODEL_PSF_POLICIES,
    DampedPsfMatcher,
    PsfMatch,
    modelPsfFor,
    modelPsfRidge,
    psfMatchingTransfer,
    sharpestPsf,
)

__all__ = [
    "MODEL_PSF_POLICIES",
    "DEFAULT_BAD_MASK_PLANES",
    "PsfEstimate",
    "PsfMatch",
    "psfAtWavelength",
    "psfFwhmAt",
    "maxKernelSize",
    "effectiveKernelSize",
    "psfTransfer",
    "psfMatchingTransfer",
    "DampedPsfMatcher",
    "modelPsfRidge",
    "estimatePsf",
    "sharpestPsf",
    "modelPsfFor",
    "validatePsfAlpha",
    "validatePsfImage",
    "validatePsf",
]
