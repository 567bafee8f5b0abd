"""dcrmodel: Differential Chromatic Refraction models of the sky for image differencing.

The package builds a DCR model of the sky (one image per wavelength slice of a band) from
many exposures and forward-models DCR-matched templates for new exposures. The public API
of `DcrModel` follows the Rubin science pipelines' class of the same name.
"""

from .assemble import AssembleResult, DcrAssembleCoadd, assembleFromFiles, writeResults
from .config import DcrAssembleConfig
from .dcr import (
    calculateDcr,
    calculateImageParallacticAngle,
    wavelengthGenerator,
    zenithDirection,
)
from .diffim import makeDifference
from .direct import DirectSolution, solveDirect, solveDirectFromShifts
from .distributed import Patch, PatchPlan, assembleDistributed, assemblePatches, loadPlan
from .errors import (
    DcrConfigError,
    DcrError,
    DcrFitsError,
    DcrMetadataError,
    DcrOfflineWarning,
    DcrOutputError,
    DcrPsfWarning,
    DcrShapeError,
    DcrTypeError,
    DcrValueError,
    DcrWarning,
)
from .fits import readExposure, readExposureBBox, writeExposure
from .fourier import FourierTemplateEngine
from .image import (
    RUBIN_BANDS,
    Box,
    Exposure,
    Filter,
    GaussianPsf,
    Image,
    ImagePsf,
    Mask,
    MaskedImage,
    PhotoCalib,
    Psf,
    StatisticsControl,
)
from .metrics import differenceImageMetrics, evaluateVisit, templateResidual
from .model import DcrModel
from .modelio import DcrModelDataRef, readDcrModel, writeDcrModel
from .observation import Observatory, VisitInfo, Weather, defaultWeather
from .psf import PsfEstimate, estimatePsf, psfAtWavelength, psfMatchingTransfer, psfTransfer
from .refraction import differentialRefraction, refraction
from .shift import applyDcr
from .simulate import SimulationConfig, loadManifest, runSimulation, simulateField

__version__ = "0.1.0"

__all__ = [
    "DcrModel",
    "DcrAssembleCoadd",
    "DcrAssembleConfig",
    "AssembleResult",
    "assembleFromFiles",
    "writeResults",
    "FourierTemplateEngine",
    "solveDirect",
    "solveDirectFromShifts",
    "DirectSolution",
    "estimatePsf",
    "PsfEstimate",
    "psfAtWavelength",
    "psfTransfer",
    "psfMatchingTransfer",
    "SimulationConfig",
    "runSimulation",
    "simulateField",
    "loadManifest",
    "evaluateVisit",
    "templateResidual",
    "differenceImageMetrics",
    "makeDifference",
    "assembleDistributed",
    "assemblePatches",
    "loadPlan",
    "PatchPlan",
    "Patch",
    "applyDcr",
    "calculateDcr",
    "calculateImageParallacticAngle",
    "wavelengthGenerator",
    "zenithDirection",
    "refraction",
    "differentialRefraction",
    "Weather",
    "Observatory",
    "defaultWeather",
    "VisitInfo",
    "Box",
    "Image",
    "Mask",
    "MaskedImage",
    "Exposure",
    "Filter",
    "RUBIN_BANDS",
    "Psf",
    "GaussianPsf",
    "ImagePsf",
    "PhotoCalib",
    "StatisticsControl",
    "readExposure",
    "readExposureBBox",
    "writeExposure",
    "readDcrModel",
    "writeDcrModel",
    "DcrModelDataRef",
    "DcrError",
    "DcrValueError",
    "DcrTypeError",
    "DcrShapeError",
    "DcrMetadataError",
    "DcrFitsError",
    "DcrConfigError",
    "DcrOutputError",
    "DcrWarning",
    "DcrOfflineWarning",
    "DcrPsfWarning",
]
