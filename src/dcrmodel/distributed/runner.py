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
the bounds used by `estimateSubregionMemory` and checked by the tests (9 and 22). The
driver holds the patch-sized coadd, starting model and solution, as a serial run does, but
never the visits.

Scheduler address and timeout
-----------------------------
``scheduler`` is a Dask scheduler address (``tcp://host:8786``). Connecting gives up
after ``timeout`` seconds (`SCHEDULER_TIMEOUT`, 10 s), and so does waiting for the first
worker; both raise `dcrmodel.errors.DcrValueError` naming the address. Every worker must
import the same dcrmodel version as the driver: this is checked before any work. A local
cluster (``workers=N``) starts its workers as new Python processes, which import the
calling script again: a script that asks for one must keep its work under
``if __name__ == "__main__":``.

Plans of many patches
---------------------
A plan is a TOML file (`loadPlan`)::

    [config]                    # settings of every patch (DcrAssembleConfig names)
    subregionSize = [512, 512]

    [[patch]]
    name = "tract9813-patch42"  # optional; the output folder's name by default
    visits = "visits/p42/*.fits"   # a glob, or a list of files and globs
    coadd = "coadds/p42.fits"   # optional plain coadd
    out = "models/p42"          # output folder (see dcrmodel.assemble.task.writeResults)
    config = { maxNumIter = 6 }  # optional overrides for this patch

Relative paths are taken from the plan file's folder. ``config`` (top level or per
patch) may also be the path of a configuration file (`DcrAssembleConfig.fromToml`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import logging
import math
import os
import shutil
import sys
import time
import tomllib
import tracemalloc
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import _version
from ..assemble import (
    AssembleResult,
    AssemblyPlan,
    DcrAssembleCoadd,
    DcrAssembleConfig,
    SubregionResult,
    SubregionTask,
    assembleFromFiles,
    assembleSubregion,
    checkOutputFolder,
    subregionTiles,
    writeResults,
)
from ..atomic import atomicPath
from ..errors import DcrConfigError, DcrError, DcrOutputError, DcrTypeError, DcrValueError
from ..fits import readExposureBBox
from ..image import Box
from ..physics import offlineIers

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

_log = logging.getLogger(__name__)

#: Seconds to wait for a scheduler to answer, and for its first worker, before giving up.
SCHEDULER_TIMEOUT = 10.0

#: Bound on the number of subregion-sized float64 arrays per visit in a subregion task's
#: peak memory (the ``k`` of the module's formula), per solver; checked by the tests.
MEMORY_FACTORS: dict[str, float] = {"iterative": 9.0, "direct": 22.0}

#: The part of a subregion task's peak memory that does not grow with it, bytes (``c``).
MEMORY_OVERHEAD = 2**20

_EXTRA_HINT = "install the optional extra: pip install 'dcrmodel[distributed]'"
_SCRATCH_KIND = "dcrmodel-assemble-scratch"
_MANIFEST = "manifest.json"
_GLOB_CHARS = frozenset("*?[")

ProgressCallback = Callable[[dict[str, Any]], None]


def _distributed() -> Any:
    """Import dask.distributed, or raise an ImportError naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"running on a Dask cluster needs dask.distributed; {_EXTRA_HINT}"
        ) from exc
    return distributed


# ------------------------------------------------------------------------------------------
# Plans
# ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Patch:
    """One patch of a plan: its visits, optional coadd, output folder and settings.

    Attributes
    ----------
    name : str
        The patch's name (for the summary table and progress).
    visits : tuple of pathlib.Path
        Exposure files of the visits (Rubin layout), on the patch's pixel grid.
    out : pathlib.Path
        Output folder (`dcrmodel.assemble.task.writeResults`).
    coadd : pathlib.Path or None
        A plain coadd to start from; computed from the visits when None.
    config : DcrAssembleConfig
        The settings of this patch.
    """

    name: str
    visits: tuple[Path, ...]
    out: Path
    coadd: Path | None = None
    config: DcrAssembleConfig = dataclasses.field(default_factory=DcrAssembleConfig)


@dataclasses.dataclass(frozen=True)
class PatchPlan:
    """A list of patches to assemble (`loadPlan`, `PatchPlan.fromDict`).

    Attributes
    ----------
    patches : tuple of Patch
        The patches, in the order they are submitted.
    source : pathlib.Path or None
        The plan file, when it was read from one.
    """

    patches: tuple[Patch, ...]
    source: Path | None = None

    @classmethod
    def fromDict(
        cls, data: Mapping[str, Any], base: str | os.PathLike | None = None
    ) -> PatchPlan:
        """Make a plan from the structure of a plan file (see the module docstring).

        Parameters
        ----------
        data : mapping
            ``{"config": {...}, "patch": [{"name", "visits", "coadd", "out", "config"},
            ...]}``.
        base : str or os.PathLike, optional
            Folder that relative paths are taken from (the current one when None).

        Returns
        -------
        PatchPlan
            The plan, with absolute paths and globs expanded (not yet validated:
            `validate` checks the files and output folders).

        Raises
        ------
        DcrConfigError
            For an unknown key, a missing ``out`` or ``visits``, a value of the wrong type
            or a bad setting, naming the patch.
        DcrValueError
            For a glob that matches no file or an empty visit list.
        """
        if not isinstance(data, Mapping):
            raise DcrConfigError("a plan must be a table (mapping)", type=type(data).__name__)
        root = Path(os.getcwd() if base is None else os.fspath(base)).absolute()
        unknown = sorted(set(data) - {"config", "patch"})
        if unknown:
            raise DcrConfigError(
                f"unknown top-level key(s) {', '.join(unknown)} in the plan; a plan has a "
                "[config] table and [[patch]] entries"
            )
        baseConfig = _configFrom(data.get("config"), DcrAssembleConfig(), root, "[config]")
        entries = data.get("patch")
        if entries is None or (isinstance(entries, list) and not entries):
            raise DcrConfigError(
                "the plan lists no patch; add [[patch]] entries with visits and out"
            )
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise DcrConfigError("'patch' must be a list of tables ([[patch]] entries)")
        patches = [_patchFrom(entry, i, baseConfig, root) for i, entry in enumerate(entries)]
        return cls(patches=tuple(patches))

    def validate(self, overwrite: bool = False) -> None:
        """Check every patch before any work; raise on the first kind of problem.

        Checked: at least one patch; unique names; every visit file and coadd exists and
        no visit is listed twice in a patch; at least as many visits as subfilters; output
        folders neither shared nor nested in one another, and each new, empty, or (with
        ``overwrite``) holding an earlier model.

        Parameters
        ----------
        overwrite : bool, optional
            Allow output folders that hold an earlier dcrmodel model.

        Raises
        ------
        DcrConfigError
            For no patch or duplicate names.
        DcrValueError
            For missing files (all of them are listed), duplicate visits or too few visits.
        DcrOutputError
            For shared or nested output folders, or one holding other files.
        """
        if not self.patches:
            raise DcrConfigError("the plan lists no patch")
        names: dict[str, int] = {}
        for patch in self.patches:
            if not isinstance(patch, Patch):
                raise DcrTypeError("a plan's patches must be Patch objects",
                                   patch=type(patch).__name__)
            if patch.name in names:
                raise DcrConfigError(
                    f"two patches are named {patch.name!r}; give every patch its own name"
                )
            names[patch.name] = 1
        missing = []
        for patch in self.patches:
            if not patch.visits:
                raise DcrValueError(
                    f"patch {patch.name!r} has no visit; list its visit files", patch=patch.name
                )
            seen: set[Path] = set()
            for path in patch.visits:
                if path in seen:
                    raise DcrValueError(
                        f"patch {patch.name!r} lists the visit {path} twice", patch=patch.name
                    )
                seen.add(path)
                if not path.is_file():
                    missing.append(f"{patch.name}: {path}")
            if patch.coadd is not None and not patch.coadd.is_file():
                missing.append(f"{patch.name}: {patch.coadd} (coadd)")
        if missing:
            shown = "; ".join(missing[:10]) + ("; ..." if len(missing) > 10 else "")
            raise DcrValueError(
                f"{len(missing)} file(s) of the plan do not exist: {shown}",
                nMissing=len(missing),
            )
        for patch in self.patches:
            n = patch.config.dcrNumSubfilters
            if len(patch.visits) < n:
                raise DcrValueError(
                    f"patch {patch.name!r} has {len(patch.visits)} visits, fewer than its {n} "
                    "subfilters; add visits or lower dcrNumSubfilters",
                    patch=patch.name,
                )
        outs = [(patch.name, patch.out.absolute()) for patch in self.patches]
        for i, (nameA, outA) in enumerate(outs):
            for nameB, outB in outs[i + 1:]:
                if outA == outB or outA in outB.parents or outB in outA.parents:
                    raise DcrOutputError(
                        f"patches {nameA!r} and {nameB!r} have overlapping output folders "
                        f"({outA} and {outB}); give each patch its own folder, neither "
                        "inside the other",
                        outA=str(outA),
                        outB=str(outB),
                    )
        for patch in self.patches:
            try:
                checkOutputFolder(patch.out, overwrite)
            except DcrOutputError as exc:
                raise DcrOutputError(
                    f"patch {patch.name!r}: {exc.message}", **exc.values
                ) from None


def _configFrom(
    value: Any, base: DcrAssembleConfig, root: Path, where: str
) -> DcrAssembleConfig:
    """Return ``base`` with the settings of a plan's config table (or file) applied."""
    if value is None:
        return base
    if isinstance(value, str):
        loaded = DcrAssembleConfig.fromToml(_resolve(value, root))
        overrides = {
            name: getattr(loaded, name)
            for name in loaded.fieldNames()
            if getattr(loaded, name) != getattr(DcrAssembleConfig(), name)
        }
        value = overrides
    if not isinstance(value, Mapping):
        raise DcrConfigError(
            f"{where}: config must be a table of settings or the path of a configuration "
            "file",
            config=value,
        )
    try:
        return base.withOverrides(**dict(value))
    except DcrConfigError as exc:
        raise DcrConfigError(f"{where}: {exc.message}", **exc.values) from None


def _resolve(value: str, root: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else root / path


def _expandVisits(value: Any, root: Path, where: str) -> tuple[Path, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DcrConfigError(
            f"{where}: visits must be a file name, a glob, or a list of them", visits=value
        )
    paths: list[Path] = []
    for entry in value:
        path = _resolve(entry, root)
        if _GLOB_CHARS & set(entry):
            matches = sorted(glob.glob(os.fspath(path)))
            if not matches:
                raise DcrValueError(
                    f"{where}: the visit pattern {entry!r} matches no file (looked in "
                    f"{path.parent})",
                    pattern=entry,
                )
            paths.extend(Path(m) for m in matches)
        else:
            paths.append(path)
    if not paths:
        raise DcrValueError(f"{where}: the visit list is empty; list the patch's visit files")
    return tuple(paths)


def _patchFrom(entry: Mapping[str, Any], index: int, baseConfig: DcrAssembleConfig,
               root: Path) -> Patch:
    label = entry.get("name", None)
    where = f"patch {label!r}" if isinstance(label, str) else f"patch #{index + 1}"
    unknown = sorted(set(entry) - {"name", "visits", "coadd", "out", "config"})
    if unknown:
        raise DcrConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a patch has name, visits, coadd, "
            "out and config"
        )
    for key in ("visits", "out"):
        if key not in entry:
            raise DcrConfigError(f"{where}: '{key}' is missing")
    out = entry["out"]
    if not isinstance(out, str) or not out:
        raise DcrConfigError(f"{where}: out must be the name of a folder", out=out)
    outPath = _resolve(out, root)
    name = entry.get("name", outPath.name)
    if not isinstance(name, str) or not name:
        raise DcrConfigError(f"{where}: name must be a non-empty string", name=name)
    coadd = entry.get("coadd")
    if coadd is not None and (not isinstance(coadd, str) or not coadd):
        raise DcrConfigError(f"{where}: coadd must be the name of a file", coadd=coadd)
    return Patch(
        name=name,
        visits=_expandVisits(entry["visits"], root, where),
        out=outPath,
        coadd=None if coadd is None else _resolve(coadd, root),
        config=_configFrom(entry.get("config"), baseConfig, root, where),
    )


def loadPlan(path: str | os.PathLike, overwrite: bool = False) -> PatchPlan:
    """Read and validate a plan file (TOML; format in the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The plan. Relative paths in it are taken from its folder.
    overwrite : bool, optional
        Allow output folders that hold an earlier dcrmodel model.

    Returns
    -------
    PatchPlan
        The validated plan.

    Raises
    ------
    DcrConfigError
        If the file cannot be read or parsed, or its structure or settings are wrong.
    DcrValueError
        For missing files, empty visit lists or globs that match nothing.
    DcrOutputError
        For overlapping output folders or folders holding other files.
    """
    source = Path(os.fspath(path))
    try:
        with open(source, "rb") as stream:
            data = tomllib.load(stream)
    except OSError as exc:
        raise DcrConfigError(f"cannot read the plan: {exc.strerror}", path=str(source)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise DcrConfigError(f"the plan is not valid TOML: {exc}", path=str(source)) from exc
    plan = PatchPlan.fromDict(data, base=source.absolute().parent)
    plan = dataclasses.replace(plan, source=source)
    plan.validate(overwrite=overwrite)
    return plan


def _asPlan(plan: Any, overwrite: bool) -> PatchPlan:
    if isinstance(plan, PatchPlan):
        plan.validate(overwrite=overwrite)
        return plan
    if isinstance(plan, str | os.PathLike):
        return loadPlan(plan, overwrite=overwrite)
    if isinstance(plan, Mapping):
        result = PatchPlan.fromDict(plan)
        result.validate(overwrite=overwrite)
        return result
    raise DcrTypeError(
        "plan must be a PatchPlan, the path of a plan file or a mapping in its format",
        plan=type(plan).__name__,
    )


# ------------------------------------------------------------------------------------------
# Cluster
# ------------------------------------------------------------------------------------------
def _workerVersion() -> str:
    """Return the dcrmodel version that a worker imports."""
    return _version.__version__


def checkWorkers(client: Any) -> dict[str, str]:
    """Check that every worker of a cluster imports this process's dcrmodel version.

    Parameters
    ----------
    client : distributed.Client
        A connected client.

    Returns
    -------
    dict
        Worker address -> dcrmodel version.

    Raises
    ------
    DcrValueError
        If the cluster has no worker, a worker lacks dcrmodel, or imports another version;
        the message names the workers.
    """
    versions = _checkWorkers(client, "dcrmodel", _version.__version__)
    client.run(_warmUp)
    return versions


def _checkWorkers(client: Any, distribution: str, expected: str) -> dict[str, str]:
    import importlib.metadata

    installed = client.run(importlib.metadata.version, distribution, on_error="return")
    if not installed:
        raise DcrValueError(
            "the Dask cluster has no worker; start workers for its scheduler",
            scheduler=_address(client),
        )
    absent = sorted(addr for addr, v in installed.items() if isinstance(v, BaseException))
    if absent:
        raise DcrValueError(
            f"{len(absent)} of {len(installed)} Dask worker(s) do not have {distribution} "
            f"installed ({', '.join(absent[:5])}); install {distribution}=={expected} in the "
            "workers' environment",
            workers=absent[:5],
        )
    if distribution == "dcrmodel":
        versions = client.run(_workerVersion, on_error="return")
    else:
        versions = installed
    problems = {}
    for addr, version in versions.items():
        if isinstance(version, BaseException):
            problems[addr] = f"cannot import it ({type(version).__name__}: {version})"
        elif version != expected:
            problems[addr] = f"version {version}"
    if problems:
        listed = "; ".join(f"{addr}: {text}" for addr, text in sorted(problems.items())[:5])
        raise DcrValueError(
            f"the Dask workers must run {distribution} {expected} like this process; "
            f"{listed}. Install {distribution}=={expected} in the workers' environment",
            expected=expected,
        )
    return dict(versions)


def _warmUp() -> bool:
    """Import what the tasks use and prime astropy's sky-to-AltAz transform on a worker.

    The first transform of a process loads tables (about a second); done here, it is not
    counted in the first task's time and memory.
    """
    import importlib

    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    for name in ("dcrmodel.assemble", "dcrmodel.model", "dcrmodel.fits", "scipy.ndimage",
                 "scipy.fft"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    frame = AltAz(obstime=Time("2026-01-01T00:00:00", scale="utc"),
                  location=EarthLocation.from_geodetic(0 * u.deg, 0 * u.deg, 0 * u.m))
    with offlineIers(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SkyCoord(10 * u.deg, 10 * u.deg, frame="icrs").transform_to(frame)
    return True


def _address(client: Any) -> str | None:
    with contextlib.suppress(Exception):
        return client.scheduler.address
    return None


@contextlib.contextmanager
def clusterClient(
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    timeout: float = SCHEDULER_TIMEOUT,
) -> Iterator[Any]:
    """Yield a checked Dask client, or None for a run in this process.

    Parameters
    ----------
    workers : int, optional
        Start a `distributed.LocalCluster` of this many worker processes, one thread each
        (closed on exit).
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) to connect to (the connection
        is closed on exit, the cluster is left running).
    client : distributed.Client, optional
        A client to use as it is (left open).
    timeout : float, optional
        Seconds to wait for the scheduler to answer and for its first worker.

    Yields
    ------
    distributed.Client or None
        None when neither of the three is given.

    Raises
    ------
    DcrValueError
        For more than one of ``workers``, ``scheduler`` and ``client``, a number of workers
        below 1, an unreachable scheduler, a cluster without workers, or workers without
        this dcrmodel version.
    ImportError
        If dask.distributed is not installed.
    """
    given = [name for name, value in (("workers", workers), ("scheduler", scheduler),
                                      ("client", client)) if value is not None]
    if len(given) > 1:
        raise DcrValueError(
            f"give at most one of workers, scheduler and client (got {', '.join(given)})"
        )
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise DcrValueError("workers must be an integer >= 1", workers=workers)
    if not isinstance(timeout, int | float) or not timeout > 0:
        raise DcrValueError("timeout must be a number of seconds > 0", timeout=timeout)
    if not given:
        yield None
        return
    distributed = _distributed()
    if client is not None:
        checkWorkers(client)
        yield client
        return
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            if not isinstance(scheduler, str) or not scheduler:
                raise DcrValueError(
                    "scheduler must be the address of a Dask scheduler, e.g. "
                    "tcp://host:8786",
                    scheduler=scheduler,
                )
            tic = time.monotonic()
            try:
                client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise DcrValueError(
                    f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s "
                    f"({type(exc).__name__}: {exc}); check the address and that the "
                    "scheduler is running and reachable from here",
                    scheduler=scheduler,
                ) from None
            stack.callback(client.close)
            remaining = max(timeout - (time.monotonic() - tic), 1.0)
            try:
                client.wait_for_workers(1, timeout=remaining)
            except (TimeoutError, OSError) as exc:
                raise DcrValueError(
                    f"the Dask scheduler at {scheduler} has no worker after {timeout:g} s; "
                    "start workers for it",
                    scheduler=scheduler,
                ) from exc
        else:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            stack.callback(cluster.close)
            client = distributed.Client(cluster, set_as_default=False)
            stack.callback(client.close)
        checkWorkers(client)
        yield client


# ------------------------------------------------------------------------------------------
# Tasks (run on the workers)
# ------------------------------------------------------------------------------------------
def _planPatch(
    visits: Sequence[Path], coadd: Path | None, config: DcrAssembleConfig
) -> AssemblyPlan:
    """Prepare a patch: checks, the visits' weights and the plain coadd."""
    return DcrAssembleCoadd(config).planSubregions(list(visits), coadd=coadd)


def _planTiles(plan: AssemblyPlan) -> list[Box]:
    """Return the subregions of a plan (a small result for the driver)."""
    return list(plan.tiles)


def _cutSubregion(plan: AssemblyPlan, index: int) -> SubregionTask:
    """Cut the task of one subregion from its plan."""
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


def _solveSubregion(task: SubregionTask, traceMemory: bool = False) -> SubregionResult:
    """Solve one subregion; add the memory it took and the worker to its summary."""
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


# ------------------------------------------------------------------------------------------
# Scratch folder
# ------------------------------------------------------------------------------------------
def scratchFolder(outDir: str | os.PathLike) -> Path:
    """Return the scratch folder of an output folder: ``.<name>.scratch`` beside it."""
    out = Path(os.fspath(outDir)).absolute()
    return out.parent / f".{out.name}.scratch"


def _fileStamp(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path.absolute()), int(stat.st_size), int(stat.st_mtime_ns)]


def _manifest(patch: Patch) -> dict[str, Any]:

    return {
        "kind": _SCRATCH_KIND,
        "dcrmodelVersion": _version.__version__,
        "visits": [_fileStamp(p) for p in patch.visits],
        "coadd": None if patch.coadd is None else _fileStamp(patch.coadd),
        "config": patch.config.toDict(),
    }


def _resultFile(scratch: Path, index: int) -> Path:
    return scratch / f"subregion_{index:05d}.npz"


def _saveResult(scratch: Path, result: SubregionResult) -> None:
    tile = result.tile
    box = result.modelBox
    with atomicPath(_resultFile(scratch, result.index)) as tmp, open(tmp, "wb") as stream:
        np.savez(
            stream,
            index=np.int64(result.index),
            tile=np.array([tile.minX, tile.minY, tile.width, tile.height], dtype=np.int64),
            modelArrays=result.modelArrays,
            modelBox=np.array([box.minX, box.minY, box.width, box.height], dtype=np.int64),
            nImages=result.nImages,
            summary=np.array(json.dumps(result.summary, allow_nan=True)),
        )


def _loadResult(path: Path) -> SubregionResult:
    with np.load(path, allow_pickle=False) as data:
        minX, minY, width, height = (int(v) for v in data["tile"])
        modelBox = None
        if "modelBox" in data.files:
            modelBox = Box(*(int(v) for v in data["modelBox"]))
        return SubregionResult(
            index=int(data["index"]),
            tile=Box(minX, minY, width, height),
            modelArrays=np.array(data["modelArrays"]),
            nImages=np.array(data["nImages"]),
            summary=json.loads(str(data["summary"])),
            bbox=modelBox,
        )


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
        self.manifest = _manifest(patch)
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
            self._loadScratch()

    def _estimateTiles(self) -> int:
        """Return the number of subregions from the files' headers (the plan has the list)."""
        patch = self.patch
        if patch.coadd is not None:
            bbox = readExposureBBox(patch.coadd)
        else:
            boxes = [readExposureBBox(p) for p in patch.visits]
            bbox = Box.fromCorners(
                min(b.minX for b in boxes), min(b.minY for b in boxes),
                max(b.maxX for b in boxes), max(b.maxY for b in boxes),
            )
        return len(subregionTiles(bbox, patch.config.subregionSize))

    def _loadScratch(self) -> None:
        manifestPath = self.scratch / _MANIFEST
        if not manifestPath.is_file():
            return
        try:
            saved = json.loads(manifestPath.read_text())
        except (OSError, ValueError) as exc:
            raise DcrValueError(
                f"patch {self.patch.name!r}: the scratch folder {self.scratch} has an "
                f"unreadable manifest ({exc}); delete the folder or rerun without resume",
                scratch=str(self.scratch),
            ) from None
        if saved != json.loads(json.dumps(self.manifest)):
            raise DcrValueError(
                f"patch {self.patch.name!r}: the scratch folder {self.scratch} was left by a "
                "run with other input files or settings; rerun without resume to start over "
                "(the folder is then replaced)",
                scratch=str(self.scratch),
            )
        for path in sorted(self.scratch.glob("subregion_*.npz")):
            try:
                result = _loadResult(path)
            except (OSError, ValueError, KeyError) as exc:
                _log.warning("%s: unreadable saved subregion %s (%s); it is solved again",
                             self.patch.name, path.name, exc)
                continue
            self.results[result.index] = result
            self.resumed.add(result.index)
        _log.info("%s: resuming with %d saved subregion(s) from %s",
                  self.patch.name, len(self.results), self.scratch)

    def openScratch(self) -> None:
        """Create the scratch folder and its manifest (an old one is discarded)."""
        if self.scratch.exists() and not self.resumed:
            _log.info("%s: discarding the scratch folder of an earlier run (%s)",
                      self.patch.name, self.scratch)
            shutil.rmtree(self.scratch)
        self.scratch.mkdir(parents=True, exist_ok=True)
        with atomicPath(self.scratch / _MANIFEST) as tmp:
            tmp.write_text(json.dumps(self.manifest, indent=1))

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
        _saveResult(self.scratch, result)
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
            "scheduler": None if client is None else _address(client),
            "resumedSubregions": sorted(self.resumed),
            "peakMemoryBytes": largest("peakMemoryBytes"),
            "workerPeakRssBytes": largest("workerPeakRssBytes"),
            "wallSeconds": time.perf_counter() - self.start,
        }
        writeResults(result, patch.out, overwrite=self.overwrite)
        shutil.rmtree(self.scratch, ignore_errors=True)
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
            plan = _planPatch(job.patch.visits, job.patch.coadd, job.patch.config)
            todo = job.setTiles(plan.tiles)
            for index in sorted(job.resumed):
                progress.subregion(job, job.results[index], resumed=True)
            for index in todo:
                result = _solveSubregion(plan.subregionTask(index), traceMemory)
                job.record(result)
                progress.subregion(job, result, resumed=False)
            job.finish(plan, None)
        except DcrError as exc:
            if raiseErrors:
                raise
            job.fail(exc)
        progress.patch(job)


def _runCluster(jobs: list[_Job], client: Any, progress: _Progress, traceMemory: bool,
                retries: int, raiseErrors: bool) -> None:
    """Run the patches on a cluster: prepare, cut and solve tasks; stitch on arrival."""
    distributed = _distributed()
    token = uuid.uuid4().hex[:8]
    tags: dict[str, tuple[_Job, str, int]] = {}
    queue = distributed.as_completed(loop=client.loop)

    def submit(func: Callable[..., Any], *args: Any, key: str, job: _Job, kind: str,
               index: int = -1, watch: bool = False) -> Any:
        future = client.submit(func, *args, key=f"{key}-{token}", retries=retries, pure=False)
        job.futures[future.key] = future
        if watch:
            tags[future.key] = (job, kind, index)
            queue.add(future)
        return future

    def release(job: _Job) -> None:
        pending = [f for f in job.futures.values() if not f.done()]
        if pending:
            client.cancel(pending)
        job.futures = {}
        job.planFuture = None

    for job in jobs:
        job.start = time.perf_counter()
        job.openScratch()
        patch = job.patch
        job.planFuture = submit(_planPatch, patch.visits, patch.coadd, patch.config,
                                key=f"dcrmodel-plan-{job.position}", job=job, kind="plan")
        submit(_planTiles, job.planFuture, key=f"dcrmodel-tiles-{job.position}", job=job,
               kind="tiles", watch=True)
    try:
        for future in queue:
            job, kind, index = tags.pop(future.key)
            if job.status != "pending":
                continue
            if future.status != "finished":
                if future.status == "error":
                    error = future.exception()
                else:
                    error = DcrValueError(
                        f"patch {job.patch.name!r}: a task was {future.status}",
                        task=future.key,
                    )
                release(job)
                if raiseErrors:
                    raise error
                job.fail(error)
                progress.patch(job)
                continue
            if kind == "tiles":
                todo = job.setTiles(future.result())
                for i in sorted(job.resumed):
                    progress.subregion(job, job.results[i], resumed=True)
                for i in todo:
                    cut = submit(_cutSubregion, job.planFuture, i,
                                 key=f"dcrmodel-cut-{job.position}-{i}", job=job, kind="cut")
                    submit(_solveSubregion, cut, traceMemory,
                           key=f"dcrmodel-solve-{job.position}-{i}", job=job, kind="solve",
                           index=i, watch=True)
            else:
                result = future.result()
                job.record(result)
                # The subregion's task and result are no longer needed on the cluster.
                job.futures.pop(future.key, None)
                job.futures.pop(future.key.replace("dcrmodel-solve-", "dcrmodel-cut-"), None)
                progress.subregion(job, result, resumed=False)
            if job.complete:
                try:
                    job.finish(job.planFuture.result(), client)
                except DcrError as exc:
                    if raiseErrors:
                        raise
                    job.fail(exc)
                release(job)
                progress.patch(job)
    finally:
        for job in jobs:
            if job.futures:
                release(job)


def _run(plan: PatchPlan, clientArgs: dict[str, Any], progress: ProgressCallback | None,
         resume: bool, overwrite: bool, traceMemory: bool, retries: int,
         raiseErrors: bool) -> list[_Job]:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise DcrValueError("retries must be an integer >= 0", retries=retries)
    jobs = [_Job(patch, i, resume, overwrite) for i, patch in enumerate(plan.patches)]
    with clusterClient(**clientArgs) as client:
        tracker = _Progress(jobs, progress)
        if client is None:
            _runLocal(jobs, tracker, traceMemory, raiseErrors)
        else:
            _runCluster(jobs, client, tracker, traceMemory, retries, raiseErrors)
    return jobs


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
) -> AssembleResult:
    """Build a DCR model from exposure files with its subregions solved on a Dask cluster.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Exposure files (Rubin layout) of the visits, on the coadd's pixel grid, readable
        by the workers under the same names.
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

    Returns
    -------
    dcrmodel.assemble.task.AssembleResult
        The result, also written to ``outDir``. Its summary has a ``distributed`` entry
        (scheduler, reused subregions, largest task peak memory, wall time).

    Raises
    ------
    DcrValueError
        For missing files, an unreachable scheduler, workers without this dcrmodel
        version, a scratch folder of another run with ``resume``, and the bad inputs of
        `dcrmodel.assemble.task.DcrAssembleCoadd.run`.
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
    if workers is None and scheduler is None and client is None and not resume:
        return assembleFromFiles(paths, outDir, coaddPath=coaddPath, config=config,
                                 overwrite=overwrite, progress=progress)
    out = Path(os.fspath(outDir)).absolute()
    patch = Patch(
        name=out.name,
        visits=tuple(Path(os.fspath(p)).absolute() for p in paths),
        out=out,
        coadd=None if coaddPath is None else Path(os.fspath(coaddPath)).absolute(),
        config=config,
    )
    plan = PatchPlan(patches=(patch,))
    plan.validate(overwrite=overwrite)
    (job,) = _run(plan, dict(workers=workers, scheduler=scheduler, client=client,
                             timeout=timeout), progress, resume, overwrite, traceMemory,
                  retries, raiseErrors=True)
    if job.result is None:  # pragma: no cover - errors are raised above
        raise DcrValueError(f"the assembly of {out} did not finish", error=str(job.error))
    return job.result


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
    patchPlan = _asPlan(plan, overwrite)
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
