"""dcrmodel: Differential Chromatic Refraction models of the sky for image differencing.

The package builds a DCR model of the sky (one image per wavelength slice of a band) from
many exposures and forward-models DCR-matched templates for new exposures. The public API
of `DcrModel` follows the Rubin science pipelines' class of the same name.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
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
from .progress import ProgressCallback, ProgressEvent

if TYPE_CHECKING:  # the names handed on, imported for real on first use (below)
    from .assemble import (
        AssembleResult,
        DcrAssembleCoadd,
        DcrAssembleConfig,
        DirectSolution,
        assembleFromFiles,
        solveDirect,
        solveDirectFromShifts,
        writeResults,
    )
    from .diffim import differenceImageMetrics, evaluateVisit, makeDifference, templateResidual
    from .distributed import Patch, PatchPlan, assembleDistributed, assemblePatches, loadPlan
    from .fits import (
        DcrModelDataRef,
        readDcrModel,
        readExposure,
        readExposureBBox,
        writeDcrModel,
        writeExposure,
    )
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
    from .model import DcrModel, applyDcr
    from .physics import (
        Observatory,
        VisitInfo,
        Weather,
        calculateDcr,
        calculateImageParallacticAngle,
        defaultWeather,
        differentialRefraction,
        refraction,
        wavelengthGenerator,
        zenithDirection,
    )
    from .psf import PsfEstimate, estimatePsf, psfAtWavelength, psfMatchingTransfer, psfTransfer
    from .simulate import SimulationConfig, loadManifest, runSimulation, simulateField

#: Where each name of the package's top level lives; imported when first used, so that
#: ``import dcrmodel`` stays as fast as importing numpy (scikit-image's lazy loading).
_LAZY_NAMES: dict[str, str] = {
    "AssembleResult": "assemble",
    "DcrAssembleCoadd": "assemble",
    "DcrAssembleConfig": "assemble",
    "DirectSolution": "assemble",
    "assembleFromFiles": "assemble",
    "solveDirect": "assemble",
    "solveDirectFromShifts": "assemble",
    "writeResults": "assemble",
    "differenceImageMetrics": "diffim",
    "evaluateVisit": "diffim",
    "makeDifference": "diffim",
    "templateResidual": "diffim",
    "Patch": "distributed",
    "PatchPlan": "distributed",
    "assembleDistributed": "distributed",
    "assemblePatches": "distributed",
    "loadPlan": "distributed",
    "DcrModelDataRef": "fits",
    "readDcrModel": "fits",
    "readExposure": "fits",
    "readExposureBBox": "fits",
    "writeDcrModel": "fits",
    "writeExposure": "fits",
    "FourierTemplateEngine": "fourier",
    "RUBIN_BANDS": "image",
    "Box": "image",
    "Exposure": "image",
    "Filter": "image",
    "GaussianPsf": "image",
    "Image": "image",
    "ImagePsf": "image",
    "Mask": "image",
    "MaskedImage": "image",
    "PhotoCalib": "image",
    "Psf": "image",
    "StatisticsControl": "image",
    "DcrModel": "model",
    "applyDcr": "model",
    "Observatory": "physics",
    "VisitInfo": "physics",
    "Weather": "physics",
    "calculateDcr": "physics",
    "calculateImageParallacticAngle": "physics",
    "defaultWeather": "physics",
    "differentialRefraction": "physics",
    "refraction": "physics",
    "wavelengthGenerator": "physics",
    "zenithDirection": "physics",
    "PsfEstimate": "psf",
    "estimatePsf": "psf",
    "psfAtWavelength": "psf",
    "psfMatchingTransfer": "psf",
    "psfTransfer": "psf",
    "SimulationConfig": "simulate",
    "loadManifest": "simulate",
    "runSimulation": "simulate",
    "simulateField": "simulate",
}

#: The subpackages, importable as attributes too (``dcrmodel.simulate``).
_SUBPACKAGES = frozenset({
    "physics", "image", "fourier", "psf", "warp", "model", "fits", "assemble", "diffim",
    "simulate", "distributed", "pipeline", "cli",
})


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBPACKAGES)


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
    "ProgressCallback",
    "ProgressEvent",
]
