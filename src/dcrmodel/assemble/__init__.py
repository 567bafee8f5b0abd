"""Building a DCR model from many exposures: configuration, inputs, tiling, both solvers, output."""

from .config import (
    SOLVERS,
    DcrAssembleConfig,
)
from .direct import (
    DEFAULT_REGULARIZATION,
    DEFAULT_RIDGE,
    DEFAULT_TRANSFER_CACHE,
    DirectSolution,
    regularizerMatrix,
    solveDirect,
    solveDirectFromShifts,
    visitWeights,
)
from .inputs import refuseDuplicateFiles
from .iterative import calculateGain
from .output import (
    NIMAGE_NAME,
    STACKED_COADD_NAME,
    SUMMARY_NAME,
    AssembleResult,
    checkOutputFolder,
    writeResults,
)
from .placement import GRID_SOURCES, VisitWarp, resolveGrid
from .plan import AssemblyPlan, SubregionResult, SubregionTask
from .subfilters import (
    AUTO_SUBFILTER_FRACTION,
    AUTO_SUBFILTERS,
    MAX_AUTO_SUBFILTERS,
    MIN_AUTO_SUBFILTERS,
    SubfilterChoice,
    chooseSubfilters,
    distinctConfigurations,
    psfFwhmFor,
)
from .task import (
    SEEING_RANGE_LIMIT,
    DcrAssembleCoadd,
    assembleFromFiles,
    assembleSubregion,
)
from .tiling import automaticBuffer, featherWidth, stitchWeights, subregionTiles
from .workspace import ArrayPool

__all__ = [
    "refuseDuplicateFiles",
    "DcrAssembleConfig",
    "SOLVERS",
    "GRID_SOURCES",
    "VisitWarp",
    "resolveGrid",
    "ArrayPool",
    "DEFAULT_REGULARIZATION",
    "DEFAULT_RIDGE",
    "DEFAULT_TRANSFER_CACHE",
    "DirectSolution",
    "visitWeights",
    "regularizerMatrix",
    "solveDirect",
    "solveDirectFromShifts",
    "AssembleResult",
    "AssemblyPlan",
    "SubregionTask",
    "SubregionResult",
    "DcrAssembleCoadd",
    "assembleSubregion",
    "writeResults",
    "assembleFromFiles",
    "calculateGain",
    "automaticBuffer",
    "featherWidth",
    "stitchWeights",
    "subregionTiles",
    "checkOutputFolder",
    "SEEING_RANGE_LIMIT",
    "SUMMARY_NAME",
    "STACKED_COADD_NAME",
    "NIMAGE_NAME",
    "AUTO_SUBFILTERS",
    "AUTO_SUBFILTER_FRACTION",
    "MIN_AUTO_SUBFILTERS",
    "MAX_AUTO_SUBFILTERS",
    "SubfilterChoice",
    "chooseSubfilters",
    "distinctConfigurations",
    "psfFwhmFor",
]
