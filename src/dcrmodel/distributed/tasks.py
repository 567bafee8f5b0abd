"""The tasks a cluster runs for a patch, and the memory a subregion task takes.

A patch is prepared once (`planPatch`: `DcrAssembleCoadd.planSubregions`, the checks, the
visits' weights, the plain coadd) by one task; its subregions are listed for the driver
(`planTiles`) and each one's task is cut from the plan (`cutSubregion`) and solved
(`solveSubregion`) on a worker. These functions run on the workers (or in the driver's
process when there is no cluster).

Memory
------
A worker holds one subregion at a time (``threads_per_worker=1``). Every subregion's
summary records the peak resident memory of the worker process that solved it
(``workerPeakRssBytes``, the operating system's high-water mark, imports included). With
``traceMemory=True`` each task also measures its own peak with `tracemalloc` (NumPy
reports its buffers to it; tracing about doubles the time of a task) as
``peakMemoryBytes``. Neither depends on the size of the patch::

    bytes ~= J * (s + 2 b)**2 * 8 * k + c

for ``J`` visits overlapping the subregion, a subregion of ``s x s`` pixels, a DCR buffer
of ``b`` pixels (``bufferPixels`` in the summary), 8-byte (float64) working arrays and
``c`` (about 1 MiB) for everything that does not grow with the subregion. ``k`` is the
number of subregion-sized float64 arrays held per visit. Measured on subregions of 64 to
256 pixels with their buffer: ``k`` = 8.0 to 7.6 for the iterative solver (each visit's
data, weights and current template, the residual and its shifted copies while the update
is stacked) and 20 to 16 for the PSF-aware direct solver (data, variance, weights, and
complex Fourier transforms and PSF transfers on the padded grid). `MEMORY_FACTORS` holds
the bounds used by `estimateSubregionMemory` and checked by the tests (9 and 22). A visit
on its own detector grid is warped onto the patch inside the task
(`dcrmodel.assemble.placement`): one visit at a time, the task also holds the cutout of its
own pixels and the warp's temporaries (a few subregion-sized arrays, freed before the next
visit is read). The driver holds the patch-sized coadd, starting model and solution, as a
serial run does, but never the visits.
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..assemble import (
    AssemblyPlan,
    DcrAssembleCoadd,
    DcrAssembleConfig,
    SubregionResult,
    SubregionTask,
    assembleSubregion,
)
from ..errors import DcrValueError
from ..image import Box
from ..parallel import threadLimit

__all__ = ["MEMORY_FACTORS", "MEMORY_OVERHEAD", "estimateSubregionMemory"]

#: Bound on the number of subregion-sized float64 arrays per visit in a subregion task's
#: peak memory (the ``k`` of the module's formula), per solver; checked by the tests.
MEMORY_FACTORS: dict[str, float] = {"iterative": 9.0, "direct": 22.0}

#: The part of a subregion task's peak memory that does not grow with it, bytes (``c``).
MEMORY_OVERHEAD = 2**20


def planPatch(
    visits: Sequence[Path], coadd: Path | None, config: DcrAssembleConfig, grid: Any = None
) -> AssemblyPlan:
    """Prepare a patch: checks, the visits' weights and the plain coadd.

    Parameters
    ----------
    visits : sequence of pathlib.Path
        The patch's visit files.
    coadd : pathlib.Path or None
        A plain coadd to start from; computed from the visits when None.
    config : DcrAssembleConfig
        The patch's settings.
    grid : str, tuple or None, optional
        The model's grid (`dcrmodel.assemble.resolveGrid`); visits on other grids are
        warped onto it, one subregion at a time, by the subregions' tasks.

    Returns
    -------
    dcrmodel.assemble.task.AssemblyPlan
        The plan its subregion tasks are cut from.
    """
    return DcrAssembleCoadd(config).planSubregions(list(visits), coadd=coadd, grid=grid)


def planTiles(plan: AssemblyPlan) -> list[Box]:
    """Return the subregions of a plan (a small result for the driver).

    Parameters
    ----------
    plan : dcrmodel.assemble.task.AssemblyPlan
        A patch's plan (`planPatch`).

    Returns
    -------
    list of dcrmodel.image.Box
        The subregions, in the plan's order.
    """
    return list(plan.tiles)


def cutSubregion(plan: AssemblyPlan, index: int) -> SubregionTask:
    """Cut the task of one subregion from its plan.

    Parameters
    ----------
    plan : dcrmodel.assemble.task.AssemblyPlan
        A patch's plan (`planPatch`).
    index : int
        The subregion's index in the plan.

    Returns
    -------
    dcrmodel.assemble.task.SubregionTask
        What a worker needs to solve it.
    """
    return plan.subregionTask(index)


def _workerName() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def _peakRss() -> int | None:
    """Return the peak resident memory of this process in bytes (None if unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def solveSubregion(
    task: SubregionTask, traceMemory: bool = False, threads: int | None = None
) -> SubregionResult:
    """Solve one subregion; add the memory it took and the worker to its summary.

    Parameters
    ----------
    task : dcrmodel.assemble.task.SubregionTask
        The subregion (`cutSubregion`).
    traceMemory : bool, optional
        Also measure the task's own peak memory with `tracemalloc` (``peakMemoryBytes``,
        bytes; slower).
    threads : int, optional
        Threads of the solve where the configuration leaves them to the default
        (``threads`` None; `dcrmodel.parallel.threadLimit`). None: every core of the
        worker.

    Returns
    -------
    dcrmodel.assemble.task.SubregionResult
        Its summary also holds ``solvedPixels``, ``worker`` and ``workerPeakRssBytes``
        (bytes, None if unknown).
    """
    started = False
    base = 0
    if traceMemory:
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        else:
            tracemalloc.start()
            started = True
    try:
        with threadLimit(threads):
            result = assembleSubregion(task)
        if traceMemory:
            result.summary["peakMemoryBytes"] = int(tracemalloc.get_traced_memory()[1] - base)
    finally:
        if started:
            tracemalloc.stop()
    box = task.bbox
    result.summary["solvedPixels"] = int(box.area)
    result.summary["worker"] = _workerName()
    result.summary["workerPeakRssBytes"] = _peakRss()
    return result


def estimateSubregionMemory(
    numVisits: int, subregionSize: int | tuple[int, int], buffer: int, solver: str = "iterative"
) -> float:
    """Return the bound on a subregion task's peak memory, bytes (module docstring).

    Parameters
    ----------
    numVisits : int
        Visits overlapping the subregion.
    subregionSize : int or (int, int)
        Side, or ``(width, height)``, of the subregion in pixels.
    buffer : int
        DCR buffer in pixels (``bufferPixels`` of a run's summary).
    solver : str, optional
        ``"iterative"`` or ``"direct"``.

    Returns
    -------
    float
        ``numVisits * (width + 2 buffer) * (height + 2 buffer) * 8 * k + c`` bytes, ``k``
        from `MEMORY_FACTORS` and ``c`` = `MEMORY_OVERHEAD`.

    Examples
    --------
    >>> round(estimateSubregionMemory(24, 512, 12) / 2**20, 1)  # MiB
    474.4
    """
    if solver not in MEMORY_FACTORS:
        raise DcrValueError(
            f"unknown solver; choose one of {', '.join(MEMORY_FACTORS)}", solver=solver
        )
    width, height = (subregionSize, subregionSize) if isinstance(subregionSize, int) else (
        subregionSize)
    pixels = (width + 2 * buffer) * (height + 2 * buffer)
    return float(numVisits * pixels * 8 * MEMORY_FACTORS[solver] + MEMORY_OVERHEAD)
