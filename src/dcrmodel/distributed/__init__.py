"""Scale-out with Dask: plan files, clusters, scratch and resume, the driver."""

from .runner import (
    MEMORY_FACTORS,
    MEMORY_OVERHEAD,
    SCHEDULER_TIMEOUT,
    Patch,
    PatchPlan,
    assembleDistributed,
    assemblePatches,
    checkWorkers,
    clusterClient,
    estimateSubregionMemory,
    formatSummaryTable,
    loadPlan,
    scratchFolder,
)

__all__ = [
    "SCHEDULER_TIMEOUT",
    "MEMORY_FACTORS",
    "MEMORY_OVERHEAD",
    "Patch",
    "PatchPlan",
    "loadPlan",
    "assembleDistributed",
    "assemblePatches",
    "clusterClient",
    "checkWorkers",
    "scratchFolder",
    "estimateSubregionMemory",
    "formatSummaryTable",
]
