"""Scale DCR model assembly out on Dask's distributed scheduler.

A survey's template production is many patches, each built from tens to hundreds of
visits. This module runs `dcrmodel.assemble.task.DcrAssembleCoadd` on a Dask cluster (a
`distributed.LocalCluster` on one machine, or any running scheduler: SLURM through
dask-jobqueue, Kubernetes, ...) without a scheduler of its own.

Units of work
-------------
A patch is prepared once (`DcrAssembleCoadd.planSubregions`: the checks, the visits'
weights, the plain coadd) by one task. Each subregion, with its DCR buffer, is then one
task (`dcrmodel.assemble.task.assembleSubregion`): it reads only its cutouts of the visit
files (FITS section reads), solves it with the configured solver (iterative or direct)
through the same code as a serial run, and returns its model cutout, its image counts and
its summary. The driver (the process that calls `assembleDistributed` or
`assemblePatches`) stitches the subregions (`DcrAssembleCoadd.finish`) and writes the
outputs with `dcrmodel.assemble.task.writeResults`, atomically. The result is the serial
run's, bit for bit up to the float32 rounding of the files: each subregion is solved from
the same numbers by the same code wherever it runs.

Faults
------
- A worker that dies (killed, out of memory, node lost) while running a task: the
  scheduler runs the task again on another worker (up to
  ``distributed.scheduler.allowed-failures`` times, 3 by default), and recomputes any
  lost intermediate result from its inputs. A task that raises is re-run ``retries``
  times (default 1), then its patch fails with the task's error.
- Each solved subregion is saved as it arrives, atomically, in a scratch folder beside
  the patch's output folder, ``.<out>.scratch/`` (one ``subregion_<i>.npz`` each, plus
  ``manifest.json`` recording the inputs and settings). Outputs are written only once
  every subregion is solved, so an interrupted driver leaves no half-written output; a
  rerun with ``resume=True`` (``--resume``) reuses the saved subregions when the manifest
  matches the new run (same files, same sizes and modification times, same settings and
  dcrmodel version) and refuses otherwise. The scratch folder is removed once the
  outputs are written. Without ``resume`` an old scratch folder is discarded.
- One driver per output: a run holds the lock of every output folder of its plan
  (`dcrmodel.atomic.outputLock`) from before its first task to the end, so a second run
  on any of them fails at once.

The pieces live beside this driver: plan files (`dcrmodel.distributed.plan`), clusters and
their workers (`dcrmodel.distributed.cluster`), the tasks and their memory
(`dcrmodel.distributed.tasks`) and the scratch folders (`dcrmodel.distributed.scratch`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import refuseFolders
from ..assemble import (
    AssembleResult,
    AssemblyPlan,
    DcrAssembleCoadd,
    DcrAssembleConfig,
    SubregionResult,
    assembleFromFiles,
    resolveGrid,
    subregionTiles,
    writeResults,
)
from ..atomic import outputLock
from ..errors import DcrError, DcrTypeError, DcrValueError
from ..fits import readExposureBBox
from ..image import Box
from ..parallel import resolveThreads
from ..progress import ProgressCallback
from .cluster import SCHEDULER_TIMEOUT, clusterClient, importDistributed, schedulerAddress
from .plan import Patch, PatchPlan, asPatchPlan
from .scratch import (
    loadSavedResults,
    prepareScratch,
    removeScratch,
    saveResult,
    scratchFolder,
    scratchManifest,
)
from .tasks import cutSubregion, planPatch, planTiles, solveSubregion

__all__ = [
    "assembleDistributed",
    "assemblePatches",
    "formatSummaryTable",
]

_log = logging.getLogger(__name__)



# ------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------
class _Job:
    """The driver's record of one patch."""

    def __init__(self, patch: Patch, position: int, resume: bool, overwrite: bool) -> None:
        self.patch = patch
        self.position = position
        self.overwrite = overwrite
        self.scratch = scratchFolder(patch.out)
        self.manifest = scratchManifest(patch)
        self.results: dict[int, SubregionResult] = {}
        self.resumed: set[int] = set()
        self.tiles: list[Box] | None = None
        self.estimate = self._estimateTiles()
        self.status = "pending"
        self.error: BaseException | None = None
        self.result: AssembleResult | None = None
        self.seconds = 0.0
        self.start = time.perf_counter()
        self.futures: dict[str, Any] = {}
        self.planFuture: Any = None
        if resume:
            self.results = loadSavedResults(self.scratch, self.manifest, patch.name)
            self.resumed = set(self.results)

    def _estimateTiles(self) -> int:
        """Return the number of subregions from the files' headers (the plan has the list)."""
        patch = self.patch
        if patch.grid is not None:
            bbox = resolveGrid(patch.grid)[1]
        elif patch.coadd is not None:
            bbox = readExposureBBox(patch.coadd)
        else:
            boxes = [readExposureBBox(p) for p in patch.visits]
            bbox = Box.fromCorners(
                min(b.minX for b in boxes), min(b.minY for b in boxes),
                max(b.maxX for b in boxes), max(b.maxY for b in boxes),
            )
        return len(subregionTiles(bbox, patch.config.subregionSize))

    def openScratch(self) -> None:
        """Create the scratch folder and its manifest (an old one is discarded)."""
        prepareScratch(self.scratch, self.manifest, self.patch.name, keep=bool(self.resumed))

    def setTiles(self, tiles: list[Box]) -> list[int]:
        """Record the plan's subregions; return the indices still to solve."""
        self.tiles = list(tiles)
        for index in list(self.results):
            if index >= len(tiles) or self.results[index].tile != tiles[index]:
                del self.results[index]
                self.resumed.discard(index)
        return [i for i in range(len(tiles)) if i not in self.results]

    @property
    def numSubregions(self) -> int:
        return len(self.tiles) if self.tiles is not None else self.estimate

    def record(self, result: SubregionResult) -> None:
        saveResult(self.scratch, result)
        self.results[result.index] = result

    @property
    def complete(self) -> bool:
        return self.tiles is not None and len(self.results) == len(self.tiles)

    def finish(self, plan: AssemblyPlan, client: Any) -> None:
        """Stitch, write the outputs atomically and remove the scratch folder."""
        patch = self.patch
        task = DcrAssembleCoadd(patch.config)
        results = [self.results[i] for i in range(plan.numSubregions)]
        solve = float(sum(r.summary.get("seconds", 0.0) for r in results))
        result = task.finish(plan, results, timings={"solve": solve})
        def largest(key: str) -> int | None:
            values = [r.summary.get(key) for r in results]
            return max((v for v in values if v is not None), default=None)

        result.summary["distributed"] = {
            "scheduler": None if client is None else schedulerAddress(client),
            "resumedSubregions": sorted(self.resumed),
            "peakMemoryBytes": largest("peakMemoryBytes"),
            "workerPeakRssBytes": largest("workerPeakRssBytes"),
            "wallSeconds": time.perf_counter() - self.start,
        }
        writeResults(result, patch.out, overwrite=self.overwrite)
        removeScratch(self.scratch)
        self.result = result
        self.status = "done"
        self.seconds = time.perf_counter() - self.start

    def fail(self, error: BaseException) -> None:
        self.status = "failed"
        self.error = error
        self.seconds = time.perf_counter() - self.start
        _log.error("patch %s failed: %s", self.patch.name, error)

    def row(self) -> dict[str, Any]:
        """Return the patch's line of the summary table."""
        patch = self.patch
        row: dict[str, Any] = {
            "patch": patch.name,
            "visits": len(patch.visits),
            "subregions": self.numSubregions,
            "resumed": len(self.resumed),
            "seconds": round(self.seconds, 3),
            "solver": patch.config.solver,
            "convergence": None,
            "solverResidual": None,
            "iterations": None,
            "peakMemoryBytes": None,
            "workerPeakRssBytes": None,
            "output": str(patch.out),
            "status": self.status,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
        }
        if self.result is not None:
            records = self.result.summary["subregions"]
            finals = [r["convergence"][-1] for r in records if r.get("convergence")]
            if finals:
                row["convergence"] = float(np.max(finals))
            iterations = [r["iterations"] for r in records if r.get("iterations") is not None]
            if iterations:
                row["iterations"] = int(max(iterations))
            residuals = [v for r in records for v in r.get("visitResiduals", [])]
            if residuals:
                row["solverResidual"] = float(np.median(residuals))
            for key in ("peakMemoryBytes", "workerPeakRssBytes"):
                row[key] = self.result.summary["distributed"][key]
        return row


class _Progress:
    """Progress over every subregion of every patch, through the caller's callback."""

    def __init__(self, jobs: list[_Job], callback: ProgressCallback | None) -> None:
        self.jobs = jobs
        self.callback = callback
        self.done = 0

    @property
    def total(self) -> int:
        return sum(job.numSubregions for job in self.jobs)

    def subregion(self, job: _Job, result: SubregionResult, resumed: bool) -> None:
        self.done += 1
        if self.callback is None:
            return
        self.callback(
            {
                "event": "subregion",
                "message": f"patch {job.patch.name} subregion {result.index + 1}"
                + (" (resumed)" if resumed else ""),
                "patch": job.patch.name,
                "subregion": result.index,
                "nSubregions": job.numSubregions,
                "resumed": resumed,
                "worker": result.summary.get("worker"),
                "seconds": result.summary.get("seconds"),
                "done": self.done,
                "total": self.total,
            }
        )

    def patch(self, job: _Job) -> None:
        if self.callback is None:
            return
        self.callback(
            {
                "event": "patch",
                "message": f"patch {job.patch.name} {job.status}",
                "patch": job.patch.name,
                "status": job.status,
                "output": str(job.patch.out),
                "done": self.done,
                "total": self.total,
            }
        )


def _runLocal(jobs: list[_Job], progress: _Progress, traceMemory: bool,
              raiseErrors: bool) -> None:
    """Run the patches one after another in this process."""
    for job in jobs:
        job.start = time.perf_counter()
        try:
            job.openScratch()
            plan = planPatch(job.patch.visits, job.patch.coadd, job.patch.config,
                             job.patch.grid)
            todo = job.setTiles(plan.tiles)
            for index in sorted(job.resumed):
                progress.subregion(job, job.results[index], resumed=True)
            for index in todo:
                result = solveSubregion(plan.subregionTask(index), traceMemory)
                job.record(result)
                progress.subregion(job, result, resumed=False)
            job.finish(plan, None)
        except DcrError as exc:
            if raiseErrors:
                raise
            job.fail(exc)
        progress.patch(job)


class _ClusterRun:
    """The driver's side of a run on a cluster: the tasks it submitted and their outcomes."""

    def __init__(self, client: Any, progress: _Progress, traceMemory: bool, retries: int,
                 raiseErrors: bool, threads: int | None = None) -> None:
        distributed = importDistributed()
        self.client = client
        self.threads = threads
        self.progress = progress
        self.traceMemory = traceMemory
        self.retries = retries
        self.raiseErrors = raiseErrors
        self.token = uuid.uuid4().hex[:8]
        self.tags: dict[str, tuple[_Job, str, int]] = {}
        self.queue = distributed.as_completed(loop=client.loop)

    def submit(self, func: Callable[..., Any], *args: Any, key: str, job: _Job, kind: str,
               index: int = -1, watch: bool = False) -> Any:
        """Submit a task of a patch; with ``watch`` its outcome is handled on arrival."""
        future = self.client.submit(func, *args, key=f"{key}-{self.token}",
                                    retries=self.retries, pure=False)
        job.futures[future.key] = future
        if watch:
            self.tags[future.key] = (job, kind, index)
            self.queue.add(future)
        return future

    def release(self, job: _Job) -> None:
        """Cancel a patch's unfinished tasks and forget all of them."""
        pending = [f for f in job.futures.values() if not f.done()]
        if pending:
            self.client.cancel(pending)
        job.futures = {}
        job.planFuture = None

    def start(self, job: _Job) -> None:
        """Open the patch's scratch folder and submit its preparation."""
        job.start = time.perf_counter()
        job.openScratch()
        patch = job.patch
        job.planFuture = self.submit(planPatch, patch.visits, patch.coadd, patch.config,
                                     patch.grid, key=f"dcrmodel-plan-{job.position}",
                                     job=job, kind="plan")
        self.submit(planTiles, job.planFuture, key=f"dcrmodel-tiles-{job.position}", job=job,
                    kind="tiles", watch=True)

    def handle(self, future: Any) -> None:
        """Act on a watched task that ended: a failure, a patch's tiles, or a subregion."""
        job, kind, index = self.tags.pop(future.key)
        if job.status != "pending":
            return
        if future.status != "finished":
            self._fail(job, future)
            return
        if kind == "tiles":
            self._submitSubregions(job, future.result())
        else:
            result = future.result()
            job.record(result)
            # The subregion's task and result are no longer needed on the cluster.
            job.futures.pop(future.key, None)
            job.futures.pop(future.key.replace("dcrmodel-solve-", "dcrmodel-cut-"), None)
            self.progress.subregion(job, result, resumed=False)
        if job.complete:
            try:
                job.finish(job.planFuture.result(), self.client)
            except DcrError as exc:
                if self.raiseErrors:
                    raise
                job.fail(exc)
            self.release(job)
            self.progress.patch(job)

    def _fail(self, job: _Job, future: Any) -> None:
        """Fail a patch whose task raised (or was lost); raise with ``raiseErrors``."""
        if future.status == "error":
            error = future.exception()
        else:
            error = DcrValueError(
                f"patch {job.patch.name!r}: a task was {future.status}",
                task=future.key,
            )
        self.release(job)
        if self.raiseErrors:
            raise error
        job.fail(error)
        self.progress.patch(job)

    def _submitSubregions(self, job: _Job, tiles: list[Box]) -> None:
        """Record a patch's subregions; report the reused ones and submit the others."""
        todo = job.setTiles(tiles)
        for i in sorted(job.resumed):
            self.progress.subregion(job, job.results[i], resumed=True)
        for i in todo:
            cut = self.submit(cutSubregion, job.planFuture, i,
                              key=f"dcrmodel-cut-{job.position}-{i}", job=job, kind="cut")
            self.submit(solveSubregion, cut, self.traceMemory, self.threads,
                        key=f"dcrmodel-solve-{job.position}-{i}", job=job, kind="solve",
                        index=i, watch=True)


def _runCluster(jobs: list[_Job], client: Any, progress: _Progress, traceMemory: bool,
                retries: int, raiseErrors: bool, threads: int | None = None) -> None:
    """Run the patches on a cluster: prepare, cut and solve tasks; stitch on arrival."""
    run = _ClusterRun(client, progress, traceMemory, retries, raiseErrors, threads)
    for job in jobs:
        run.start(job)
    try:
        for future in run.queue:
            run.handle(future)
    finally:
        for job in jobs:
            if job.futures:
                run.release(job)


def _run(plan: PatchPlan, clientArgs: dict[str, Any], progress: ProgressCallback | None,
         resume: bool, overwrite: bool, traceMemory: bool, retries: int,
         raiseErrors: bool) -> list[_Job]:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise DcrValueError("retries must be an integer >= 0", retries=retries)
    with contextlib.ExitStack() as locks:
        # One writer per output: a second run on any of these folders fails here, at once.
        for patch in plan.patches:
            locks.enter_context(outputLock(patch.out))
        jobs = [_Job(patch, i, resume, overwrite) for i, patch in enumerate(plan.patches)]
        with clusterClient(**clientArgs) as client:
            tracker = _Progress(jobs, progress)
            if client is None:
                _runLocal(jobs, tracker, traceMemory, raiseErrors)
            else:
                _runCluster(jobs, client, tracker, traceMemory, retries, raiseErrors,
                            _workerThreads(clientArgs.get("workers")))
    return jobs


def _workerThreads(workers: int | None) -> int | None:
    """Threads of each worker of a local cluster: this process's threads shared among them.

    Two workers on two cores with two threads each would run four threads on two cores;
    each gets ``threads // workers`` instead (at least 1), the threads being this process's
    (`dcrmodel.parallel.resolveThreads`: every core, or the ``threadLimit`` of the
    caller, as ``dcrmodel --threads`` sets it). None (a cluster elsewhere): every core of
    each worker. A configuration's own ``threads`` is used as it is.
    """
    if workers is None:
        return None
    return max(1, resolveThreads() // workers)


# ------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------
def assembleDistributed(
    paths: Sequence[str | os.PathLike],
    outDir: str | os.PathLike,
    config: DcrAssembleConfig | None = None,
    coaddPath: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
    client: Any = None,
    timeout: float = SCHEDULER_TIMEOUT,
    retries: int = 1,
    traceMemory: bool = False,
    grid: Any = None,
) -> AssembleResult:
    """Build a DCR model from exposure files with its subregions solved on a Dask cluster.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Exposure files (Rubin layout) of the visits, readable by the workers under the
        same names: on the model's grid, or on their own (detector) grids, warped onto it
        by each subregion's task as in a serial run.
    outDir : str or os.PathLike
        Output folder (`dcrmodel.assemble.task.writeResults`); checked before any work.
    config : DcrAssembleConfig, optional
        Settings; defaults when None. ``subregionSize`` sets the unit of work.
    coaddPath : str or os.PathLike, optional
        A plain coadd to start from; computed from the visits when None.
    workers : int, optional
        Start a local cluster of this many worker processes (one thread each).
    scheduler : str, optional
        Address of a running Dask scheduler to use instead.
    resume : bool, optional
        Reuse the subregions saved in the scratch folder ``.<outDir>.scratch`` by an
        interrupted run with the same inputs and settings.
    progress : callable, optional
        Called with a dict for every solved (or reused) subregion: ``event``
        ``"subregion"``, ``patch``, ``subregion``, ``nSubregions``, ``resumed``,
        ``worker``, ``seconds``, ``done`` and ``total``; and once the outputs are written:
        ``event`` ``"patch"``, ``status``, ``output``. Without a cluster and without
        ``resume`` this is the serial run's callback (`DcrAssembleCoadd.run`).
    overwrite : bool, optional
        Replace an earlier model in ``outDir``.
    client : distributed.Client, optional
        A connected client to use instead of ``workers`` or ``scheduler``.
    timeout : float, optional
        Seconds to wait for the scheduler and its first worker (`SCHEDULER_TIMEOUT`).
    retries : int, optional
        Times a task that raised is run again (worker deaths are retried by the scheduler
        regardless).
    traceMemory : bool, optional
        Also measure each task's own peak memory with `tracemalloc` (``peakMemoryBytes``
        in the subregion summaries; about doubles the time of a task). The workers' peak
        resident memory (``workerPeakRssBytes``) is always recorded.
    grid : tuple or str or os.PathLike, optional
        The model's grid (`dcrmodel.assemble.resolveGrid`): ``(WCS, Box)``, an exposure
        file or ``"RA,DEC,WIDTH,HEIGHT,SCALE"``.

    Returns
    -------
    dcrmodel.assemble.task.AssembleResult
        The result, also written to ``outDir``. Its summary has a ``distributed`` entry
        (scheduler, reused subregions, largest task peak memory, wall time).

    Raises
    ------
    DcrValueError
        For missing files, folders given as files, an unreachable scheduler, workers
        without this dcrmodel version, a scratch folder of another run with ``resume``,
        and the bad inputs of `dcrmodel.assemble.task.DcrAssembleCoadd.run`.
    DcrOutputError
        If ``outDir`` holds another run's files (and ``overwrite`` is False).
    ImportError
        If a cluster is asked for and dask.distributed is not installed.

    Notes
    -----
    Without ``workers``, ``scheduler`` or ``client`` and without ``resume`` this is
    `dcrmodel.assemble.task.assembleFromFiles`, the serial path. With ``resume`` alone the
    subregions are solved one after another in this process, saved as they finish.
    """
    if config is None:
        config = DcrAssembleConfig()
    if not isinstance(config, DcrAssembleConfig):
        raise DcrTypeError("config must be a DcrAssembleConfig", config=type(config).__name__)
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    refuseFolders([*paths, coaddPath])
    if workers is None and scheduler is None and client is None and not resume:
        return assembleFromFiles(paths, outDir, coaddPath=coaddPath, config=config,
                                 overwrite=overwrite, progress=progress, grid=grid)
    out = Path(os.fspath(outDir)).absolute()
    patch = Patch(
        name=out.name,
        visits=tuple(Path(os.fspath(p)).absolute() for p in paths),
        out=out,
        coadd=None if coaddPath is None else Path(os.fspath(coaddPath)).absolute(),
        config=config,
        grid=_absoluteGrid(grid),
    )
    plan = PatchPlan(patches=(patch,))
    plan.validate(overwrite=overwrite)
    (job,) = _run(plan, dict(workers=workers, scheduler=scheduler, client=client,
                             timeout=timeout), progress, resume, overwrite, traceMemory,
                  retries, raiseErrors=True)
    if job.result is None:  # pragma: no cover - errors are raised above
        raise DcrValueError(f"the assembly of {out} did not finish", error=str(job.error))
    return job.result


def _absoluteGrid(grid: Any) -> Any:
    """Return a grid with a file named by its absolute path (workers may run elsewhere)."""
    if isinstance(grid, str | os.PathLike) and Path(os.fspath(grid)).is_file():
        return str(Path(os.fspath(grid)).absolute())
    return grid


def assemblePatches(
    plan: PatchPlan | str | os.PathLike | Mapping[str, Any],
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    resume: bool = False,
    overwrite: bool = False,
    timeout: float = SCHEDULER_TIMEOUT,
    retries: int = 1,
    traceMemory: bool = False,
) -> list[dict[str, Any]]:
    """Assemble every patch of a plan, on a Dask cluster or one after another here.

    All patches are submitted at once: their preparations and subregions share the
    workers, and each patch is written as soon as its last subregion arrives.

    Parameters
    ----------
    plan : PatchPlan, str, os.PathLike or mapping
        The plan, the path of a plan file (`loadPlan`), or a mapping in its format (paths
        relative to the current folder). Validated before any work.
    client : distributed.Client, optional
        A connected client (for example a notebook's).
    workers : int, optional
        Start a local cluster of this many worker processes instead.
    scheduler : str, optional
        Address of a running Dask scheduler instead.
    progress : callable, optional
        Called with a dict for every solved or reused subregion and every finished patch
        (see `assembleDistributed`); ``done`` and ``total`` count subregions over all
        patches.
    resume : bool, optional
        Reuse the subregions saved by an interrupted run (per patch, in its scratch
        folder).
    overwrite : bool, optional
        Replace earlier models in the output folders.
    timeout : float, optional
        Seconds to wait for the scheduler and its first worker.
    retries : int, optional
        Times a task that raised is run again.
    traceMemory : bool, optional
        Also measure each task's own peak memory (`tracemalloc`; slower).

    Returns
    -------
    list of dict
        One row per patch, in the plan's order: ``patch``, ``visits``, ``subregions``,
        ``resumed`` (subregions reused), ``seconds`` (wall time from its submission until
        it is written), ``solver``, ``convergence`` (largest final convergence metric of
        its subregions, iterative solver), ``iterations`` (most iterations of a subregion),
        ``solverResidual`` (median reduced chi of the visits, direct solver),
        ``peakMemoryBytes`` (largest task, with ``traceMemory``), ``workerPeakRssBytes``
        (largest peak resident memory of a worker that solved it), ``output``, ``status``
        (``"done"`` or
        ``"failed"``) and ``error`` (the failure, else None). A patch that fails does not
        stop the others.

    Raises
    ------
    DcrConfigError, DcrValueError, DcrOutputError
        For a bad plan (see `PatchPlan.validate`), an unreachable scheduler or workers
        without this dcrmodel version, before any work.
    """
    patchPlan = asPatchPlan(plan, overwrite)
    jobs = _run(patchPlan, dict(workers=workers, scheduler=scheduler, client=client,
                                timeout=timeout), progress, resume, overwrite, traceMemory,
                retries, raiseErrors=False)
    rows = [job.row() for job in jobs]
    for job in jobs:
        job.result = None
    return rows


def formatSummaryTable(rows: Sequence[Mapping[str, Any]]) -> str:
    """Return the rows of `assemblePatches` as a plain-text table.

    Parameters
    ----------
    rows : sequence of mapping
        What `assemblePatches` returned.

    Returns
    -------
    str
        One line per patch: name, visits, seconds, convergence or solver residual, status
        and output folder.

    Examples
    --------
    >>> print(formatSummaryTable([{"patch": "p1", "visits": 12, "seconds": 3.5,
    ...     "convergence": 0.0123, "solverResidual": None, "status": "done",
    ...     "output": "models/p1"}]))
    patch  visits  seconds  convergence/residual  status  output
    p1         12      3.5          conv 0.01230  done    models/p1
    """
    header = ["patch", "visits", "seconds", "convergence/residual", "status", "output"]
    lines = []
    for row in rows:
        if row.get("convergence") is not None:
            quality = f"conv {row['convergence']:.5f}"
        elif row.get("solverResidual") is not None:
            quality = f"chi {row['solverResidual']:.4f}"
        else:
            quality = "-"
        lines.append([
            str(row.get("patch", "")),
            str(row.get("visits", "")),
            f"{row.get('seconds', math.nan):.1f}",
            quality,
            str(row.get("status", "")),
            str(row.get("output", "")),
        ])
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(header)]
    right = {1, 2, 3}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([fmt(header)] + [fmt(line) for line in lines])
