"""Scale-out with Dask: plan files, clusters, scratch and resume, the driver."""

from .cluster import SCHEDULER_TIMEOUT, checkSchedulerAddress, checkWorkers, clusterClient
from .plan import Patch, PatchPlan, loadPlan
from .runner import assembleDistributed, assemblePatches, formatSummaryTable
from .scratch import scratchFolder
from .tasks import MEMORY_FACTORS, MEMORY_OVERHEAD, estimateSubregionMemory

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
    "checkSchedulerAddress",
    "scratchFolder",
    "estimateSubregionMemory",
    "formatSummaryTable",
]
