"""Warping: resample exposures onto another WCS and box (real survey geometry).

Kernels (`kernels`), the pixel-to-pixel mapping through two WCSs (`mapping`), the kernel
sum over image, variance and mask (`resample`, its chunks summed by `chunksums`), the PSF
carried by the local Jacobian (`warpedpsf`), the exposure-level warp (`exposure`) and
tangent-plane destination grids (`grid`).
"""

from .chunksums import (
    compiledKernelSums,
)
from .exposure import (
    CONSERVE_MODES,
    EXACT_FLUX_MAX_AREA_RATIO,
    checkWarpInputs,
    warpExposure,
    warpImage,
)
from .grid import (
    GRID_SPEC_FORMAT,
    parseGridSpec,
    tangentPlaneGrid,
)
from .kernels import (
    DEFAULT_WARPING_KERNEL,
    WARPING_KERNELS,
    WarpingKernel,
    getWarpingKernel,
)
from .mapping import (
    DEFAULT_GRID_SPACING,
    MAPPING_TOLERANCE,
    PixelMapping,
    boxesOverlap,
    checkCelestialWcs,
    localJacobian,
    mapBox,
    mapPixels,
)
from .resample import (
    ResampledArrays,
    resampleArrays,
    sourceCoverage,
)
from .warpedpsf import (
    warpPsf,
)

__all__ = [
    "warpExposure",
    "warpImage",
    "checkWarpInputs",
    "CONSERVE_MODES",
    "EXACT_FLUX_MAX_AREA_RATIO",
    "tangentPlaneGrid",
    "parseGridSpec",
    "GRID_SPEC_FORMAT",
    "WarpingKernel",
    "WARPING_KERNELS",
    "DEFAULT_WARPING_KERNEL",
    "getWarpingKernel",
    "PixelMapping",
    "MAPPING_TOLERANCE",
    "DEFAULT_GRID_SPACING",
    "checkCelestialWcs",
    "mapPixels",
    "mapBox",
    "localJacobian",
    "boxesOverlap",
    "ResampledArrays",
    "resampleArrays",
    "sourceCoverage",
    "compiledKernelSums",
    "warpPsf",
]
