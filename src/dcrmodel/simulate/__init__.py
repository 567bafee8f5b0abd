"""Known-truth skies and the known-truth evaluation of templates on them.

Spectra, sources, seeing, rendering, visit plans, detector frames and manifests.
"""

from .config import DETECTOR_FRAME_OPTIONS, ROLES, SimulationConfig, VisitSpec
from .coverage import (
    DEFAULT_MIN_COVERAGE,
    DetectorVisitEvaluation,
    coverageMap,
    evaluateDetectorVisit,
    frameCatalogue,
    restrictTemplate,
    validPixelMap,
)
from .field import (
    COADD_WARP_KERNEL,
    SimulatedField,
    SimulatedVisit,
    runSimulation,
    simulateField,
)
from .frames import (
    VisitFrame,
    frameFromRecord,
    makeFrame,
    makeVisitFrames,
    mapSources,
    offsetPointing,
    radialSipWcs,
    transformProfile,
    wcsCards,
)
from .manifest import MANIFEST_NAME, SimulationManifest, loadManifest
from .plan import makeWcs
from .render import FourierSkyRenderer, TiledSkyRenderer, wavelengthDisplacements
from .seeing import PSF_PROFILES, AtmosphericPsf
from .sources import (
    ExponentialProfile,
    GaussianProfile,
    PointProfile,
    Source,
    SourceComponent,
    meanWavelength,
)
from .spectra import Bandpass, BlackbodySpectrum, PowerLawSpectrum

__all__ = [
    "BlackbodySpectrum",
    "PowerLawSpectrum",
    "Bandpass",
    "PointProfile",
    "ExponentialProfile",
    "GaussianProfile",
    "SourceComponent",
    "Source",
    "AtmosphericPsf",
    "FourierSkyRenderer",
    "TiledSkyRenderer",
    "wavelengthDisplacements",
    "meanWavelength",
    "makeWcs",
    "VisitSpec",
    "SimulationConfig",
    "SimulatedVisit",
    "SimulatedField",
    "SimulationManifest",
    "simulateField",
    "runSimulation",
    "loadManifest",
    "MANIFEST_NAME",
    "ROLES",
    "PSF_PROFILES",
    "DETECTOR_FRAME_OPTIONS",
    "COADD_WARP_KERNEL",
    "VisitFrame",
    "makeFrame",
    "makeVisitFrames",
    "offsetPointing",
    "radialSipWcs",
    "mapSources",
    "transformProfile",
    "frameFromRecord",
    "wcsCards",
    "DEFAULT_MIN_COVERAGE",
    "DetectorVisitEvaluation",
    "validPixelMap",
    "coverageMap",
    "frameCatalogue",
    "restrictTemplate",
    "evaluateDetectorVisit",
]
