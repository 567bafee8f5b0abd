"""The work of the ``dcrmodel`` subcommands that build models and warp exposures.

- ``dcrmodel assemble VISIT.fits... --out MODEL_DIR``: build a DCR model (`dcrmodel.assemble.task`)
  on the grid of ``--grid`` or ``--coadd`` (visits on other grids are warped onto it);
  ``--workers N`` or ``--scheduler ADDRESS`` solve its subregions on Dask
  (`dcrmodel.distributed.runner`).
- ``dcrmodel assemble-patches PLAN.toml``: the models of many patches.
- ``dcrmodel warp EXPOSURE.fits... --grid GRID --out DIR``: exposures warped onto one grid
  (`dcrmodel.warp.exposure`), GRID an exposure file or ``RA,DEC,WIDTH,HEIGHT,SCALE``.

``template`` and ``diff`` are in `dcrmodel.cli.templates`, ``demo`` in `dcrmodel.cli.demo`,
``simulate`` in `dcrmodel.cli.simulation`. Every subcommand's arguments are declared in
`dcrmodel.cli.parser` (``_add<Name>``); its work is a ``_run<Name>(args)`` function that
returns the exit status, found through the table of `dcrmodel.cli.main`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from .._validate import refuseExistingOutput, refuseFolders
from ..assemble import DcrAssembleConfig, assembleFromFiles, resolveGrid
from ..distributed import assembleDistributed, assemblePatches, formatSummaryTable, loadPlan
from ..errors import (
    DcrConfigError,
    DcrOutputError,
    DcrValueError,
    DcrWarning,
    externalStacklevel,
)
from ..fits import gridFromSpec, readExposure, writeExposure
from ..progress import reportProgress
from ..warp import boxesOverlap, warpExposure
from .progress import ProgressBar
from .threads import threaded

__all__: list[str] = []



def _bar(args: argparse.Namespace, label: str) -> Any:
    quiet = getattr(args, "quiet", False) or getattr(args, "no_progress", False)
    return ProgressBar(label, enabled=False if quiet else None)


# ------------------------------------------------------------------------------------------
# assemble
# ------------------------------------------------------------------------------------------
def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    import tomllib


    values: dict[str, Any] = {}
    if args.subfilters is not None:
        values["dcrNumSubfilters"] = args.subfilters
    if args.solver is not None:
        values["solver"] = args.solver
    if (args.effective_wavelength is None) != (args.bandwidth is None):
        raise DcrConfigError("give --effective-wavelength and --bandwidth together")
    if args.effective_wavelength is not None:
        values["effectiveWavelength"] = args.effective_wavelength
        values["bandwidth"] = args.bandwidth
    for item in args.set:
        try:
            values.update(tomllib.loads(item))
        except tomllib.TOMLDecodeError as exc:
            raise DcrConfigError("--set takes KEY=VALUE in TOML syntax, e.g. maxNumIter=12 or "
                                 "solver=\"direct\"", value=item) from exc
    return values


@threaded
def _runAssemble(args: argparse.Namespace) -> int:

    config = DcrAssembleConfig.fromToml(args.config) if args.config else DcrAssembleConfig()
    config = config.withOverrides(**_overrides(args))
    if args.grid is not None:
        resolveGrid(args.grid)  # a malformed grid fails here, before any work
    bar = _bar(args, "assemble")
    try:
        if args.workers is None and args.scheduler is None and not args.resume:
            result = assembleFromFiles(args.visits, args.out, coaddPath=args.coadd,
                                       config=config, overwrite=args.overwrite,
                                       progress=bar, grid=args.grid)
        else:

            result = assembleDistributed(args.visits, args.out, config=config,
                                         coaddPath=args.coadd, workers=args.workers,
                                         scheduler=args.scheduler, resume=args.resume,
                                         overwrite=args.overwrite,
                                         progress=bar, grid=args.grid)
    finally:
        bar.close()
    if not getattr(args, "quiet", False):
        summary = result.summary
        warped = sum(1 for visit in summary.get("visits", []) if visit.get("warped"))
        print(f"DCR model of {len(summary.get('visits', []))} visits"
              + (f" ({warped} warped onto the grid)" if warped else "")
              + f", {result.dcrModel.dcrNumSubfilters} subfilters ({config.solver} solver) "
              f"written to {args.out} in {summary.get('timings', {}).get('total', 0.0):.1f} s")
    return 0


# ------------------------------------------------------------------------------------------
# assemble-patches
# ------------------------------------------------------------------------------------------
@threaded
def _runAssemblePatches(args: argparse.Namespace) -> int:

    plan = loadPlan(args.plan, overwrite=args.overwrite)
    bar = _bar(args, "patches")
    try:
        rows = assemblePatches(plan, workers=args.workers, scheduler=args.scheduler,
                               resume=args.resume, overwrite=args.overwrite,
                               progress=bar)
    finally:
        bar.close()
    failed = [row for row in rows if row.get("status") != "done"]
    if not getattr(args, "quiet", False):
        print(formatSummaryTable(rows))
    for row in failed:
        print(f"dcrmodel assemble-patches: patch {row.get('patch')} failed: {row.get('error')}",
              file=sys.stderr)
    return 2 if failed else 0


# ------------------------------------------------------------------------------------------
# warp
# ------------------------------------------------------------------------------------------
def _warpOutputs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """Pair every input with its output file, refusing clashes before any work."""
    outDir = Path(args.out)
    if outDir.exists() and not outDir.is_dir():
        raise DcrOutputError(f"--out {outDir} is a file, not a folder", path=str(outDir))
    pairs: list[tuple[Path, Path]] = []
    seen: dict[str, Path] = {}
    for name in args.exposures:
        source = Path(name)
        if not source.is_file():
            refuseFolders([source])
            raise FileNotFoundError(f"no such exposure file: {source}")
        target = outDir / source.name
        if source.name in seen:
            raise DcrValueError(
                f"{seen[source.name]} and {source} would both be written to {target}; "
                "give inputs with different file names",
            )
        seen[source.name] = source
        if target.exists() and target.resolve() == source.resolve():
            raise DcrOutputError(
                f"{target} is the input itself; write the warps to another folder",
                path=str(target),
            )
        refuseExistingOutput(target, args.overwrite)
        pairs.append((source, target))
    return pairs


def _runWarp(args: argparse.Namespace) -> int:

    destWcs, destBBox = gridFromSpec(args.grid)
    pairs = _warpOutputs(args)
    bar = _bar(args, "warp")
    written = 0
    try:
        for done, (source, target) in enumerate(pairs):
            reportProgress(bar, source.name, done, len(pairs), event="warp")
            exposure = readExposure(source)
            if exposure.wcs is not None and not boxesOverlap(
                exposure.wcs, exposure.bbox, destWcs, destBBox
            ):
                visit = getattr(exposure.visitInfo, "id", None)
                warnings.warn(
                    f"{source.name}{'' if visit is None else f' (visit {visit})'} does not "
                    f"overlap the grid; skipped",
                    DcrWarning,
                    stacklevel=externalStacklevel(),
                )
                continue
            warped = warpExposure(exposure, destWcs, destBBox, kernel=args.kernel,
                                  conserve=args.conserve)
            writeExposure(warped, target)
            written += 1
        reportProgress(bar, "done", len(pairs), len(pairs), event="warp")
    finally:
        bar.close()
    if written == 0:
        raise DcrValueError("no exposure overlaps the grid; nothing was written",
                            grid=args.grid)
    if not getattr(args, "quiet", False):
        print(f"warped {written} of {len(pairs)} exposures onto the {destBBox.width}x"
              f"{destBBox.height} grid ({args.kernel}); written to {args.out}")
    return 0
