"""Physics of the atmosphere and the sky: sites and weather, refraction, visit metadata, DCR.

Nothing here knows about images.
"""

from .dcr import (
    calculateDcr,
    calculateImageParallacticAngle,
    wavelengthGenerator,
    zenithDirection,
    zenithDirections,
    zenithDirectionsOfVisits,
)
from .eopcache import CACHE_ENV, earthOrientationCachePath
from .horizontal import (
    erfaPathUsable,
    horizontalToIcrs,
    icrsToHorizontal,
    icrsToPixels,
    observerAstrometry,
    pixelsToIcrs,
)
from .observation import ROT_TYPES, VisitInfo
from .refraction import (
    MAX_WAVELENGTH,
    MIN_WAVELENGTH,
    differentialRefraction,
    refraction,
    refractivity,
    waterVaporPressure,
)
from .site import (
    RUBIN_ELEVATION,
    RUBIN_LATITUDE,
    RUBIN_LONGITUDE,
    Observatory,
    Weather,
    defaultWeather,
    offlineIers,
)
from .subfilters import numSubfiltersFor, subfilterDcrSpread

__all__ = [
    "wavelengthGenerator",
    "calculateDcr",
    "zenithDirection",
    "zenithDirections",
    "zenithDirectionsOfVisits",
    "calculateImageParallacticAngle",
    "VisitInfo",
    "ROT_TYPES",
    "Observatory",
    "Weather",
    "defaultWeather",
    "offlineIers",
    "CACHE_ENV",
    "earthOrientationCachePath",
    "erfaPathUsable",
    "observerAstrometry",
    "icrsToHorizontal",
    "horizontalToIcrs",
    "pixelsToIcrs",
    "icrsToPixels",
    "refraction",
    "differentialRefraction",
    "refractivity",
    "waterVaporPressure",
    "MIN_WAVELENGTH",
    "MAX_WAVELENGTH",
    "RUBIN_LONGITUDE",
    "RUBIN_LATITUDE",
    "RUBIN_ELEVATION",
    "subfilterDcrSpread",
    "numSubfiltersFor",
]
