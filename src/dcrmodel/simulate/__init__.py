"""Known-truth skies: spectra, sources, seeing, rendering, visit plans and manifests."""

from .config import ROLES, SimulationConfig, VisitSpec
from .field import SimulatedField, SimulatedVisit, runSimulation, simulateField
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
]
