"""Files: the Rubin exposure FITS layout, its header keys, and DCR model folders."""

from .exposure import (
    VISIT_KEYS,
    ExposureFile,
    filterFromHeader,
    filterToHeader,
    photoCalibFromHeader,
    readExposure,
    readExposureBBox,
    visitInfoFromHeader,
    visitInfoToHeader,
)
from .grid import (
    gridFromSpec,
    readGrid,
)
from .model import (
    DcrModelDataRef,
    readDcrModel,
    writeDcrModel,
)
from .writing import (
    writeExposure,
)

__all__ = [
    "ExposureFile",
    "readExposure",
    "readExposureBBox",
    "writeExposure",
    "visitInfoToHeader",
    "visitInfoFromHeader",
    "filterToHeader",
    "filterFromHeader",
    "photoCalibFromHeader",
    "VISIT_KEYS",
    "readGrid",
    "gridFromSpec",
    "writeDcrModel",
    "readDcrModel",
    "DcrModelDataRef",
]
