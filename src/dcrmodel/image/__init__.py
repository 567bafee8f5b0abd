"""The image layer: boxes, pixel planes, filters, PSF models, calibration, statistics, exposures.

Nothing here knows about differential chromatic refraction.
"""

from .calibration import (
    PhotoCalib,
)
from .checks import (
    bandKey,
    checkSameBand,
    checkUsablePixels,
    pixelDigest,
)
from .exposure import (
    Exposure,
)
from .filters import (
    RUBIN_BANDS,
    Filter,
)
from .geometry import (
    WCS_GRID_TOLERANCE,
    Box,
    wcsGridOffset,
)
from .pixels import (
    BAD_MASK_PLANES,
    DEFAULT_MASK_PLANES,
    Image,
    Mask,
    MaskedImage,
)
from .psfmodels import (
    FWHM_PER_SIGMA,
    GaussianPsf,
    ImagePsf,
    Psf,
)
from .statistics import (
    StatisticsControl,
)

__all__ = [
    "PhotoCalib",
    "Exposure",
    "Filter",
    "RUBIN_BANDS",
    "Box",
    "WCS_GRID_TOLERANCE",
    "wcsGridOffset",
    "Image",
    "Mask",
    "MaskedImage",
    "DEFAULT_MASK_PLANES",
    "BAD_MASK_PLANES",
    "FWHM_PER_SIGMA",
    "Psf",
    "GaussianPsf",
    "ImagePsf",
    "StatisticsControl",
    "checkUsablePixels",
    "pixelDigest",
    "bandKey",
    "checkSameBand",
]
