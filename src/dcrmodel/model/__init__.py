"""The DCR model of the sky: the seed's `DcrModel` container and API.

Also its templates (on the model's grid or warped onto a visit's, from one model or merged
from several), conditioning and shifts.
"""

from .construction import (
    RUN_ID_KEY,
    modelIdentity,
    oddRunIdentity,
)
from .core import (
    DcrModel,
)
from .multipatch import (
    LOW_COVERAGE_PLANE,
    buildMatchedExposureFromModels,
    checkModelsCompatible,
    overlappingModels,
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
from .visitgrid import (
    TEMPLATE_WARPING_KERNEL,
    TemplateRegion,
    modelPsfOnVisit,
    onModelGrid,
    templateRegion,
    visitPsfOnModel,
    warpResponse,
)

__all__ = [
    "DcrModel",
    "RUN_ID_KEY",
    "modelIdentity",
    "oddRunIdentity",
    "ENGINES",
    "PSF_DAMPED_PLANE",
    "DEFAULT_PSF_DAMPING",
    "DEFAULT_PSF_MAX_GAIN",
    "applyDcr",
    "LOW_COVERAGE_PLANE",
    "buildMatchedExposureFromModels",
    "checkModelsCompatible",
    "overlappingModels",
    "TEMPLATE_WARPING_KERNEL",
    "TemplateRegion",
    "onModelGrid",
    "templateRegion",
    "visitPsfOnModel",
    "modelPsfOnVisit",
    "warpResponse",
]
