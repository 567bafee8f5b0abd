"""The DCR model of the sky: the seed's `DcrModel` container and API.

Also its templates, conditioning and shifts.
"""

from .core import (
    DcrModel,
)
from .shift import (
    applyDcr,
)
from .templates import (
    DEFAULT_PSF_DAMPING,
    DEFAULT_PSF_MAX_GAIN,
    ENGINES,
    PSF_DAMPED_PLANE,
)

__all__ = [
    "DcrModel",
    "ENGINES",
    "PSF_DAMPED_PLANE",
    "DEFAULT_PSF_DAMPING",
    "DEFAULT_PSF_MAX_GAIN",
    "applyDcr",
]
