"""The ``dcrmodel`` subcommands that build and use DCR models.

- ``dcrmodel assemble VISIT.fits... --out MODEL_DIR``: build a DCR model (`dcrmodel.assemble.task`)
  on the grid of ``--grid`` or ``--coadd`` (visits on other grids are warped onto it);
  ``--workers N`` or ``--scheduler ADDRESS`` solve its subregions on Dask
  (`dcrmodel.distributed.runner`).
- ``dcrmodel assemble-patches PLAN.toml``: the models of many patches.
- ``dcrmodel template MODEL_DIR... EXPOSURE.fits --out TEMPLATE.fits``: a DCR-matched
  template, on the exposure's own grid (any WCS), merged from several models (patches)
  where the exposure spans more than one (`dcrmodel.diffim.templateForExposure`).
- ``dcrmodel diff MODEL_DIR... EXPOSURE.fits --out DIFF.fits``: template, subtraction and
  detections (`dcrmodel.diffim.difference`).
- ``dcrmodel warp EXPOSURE.fits... --grid GRID --out DIR``: exposures warped onto one grid
  (`dcrmodel.warp.exposure`), GRID an exposure file or ``RA,DEC,WIDTH,HEIGHT,SCALE``.
- ``dcrmodel demo [--out DIR]``: the main job on built-in simulated data (`dcrmodel.cli.demo`).

Each is a pair of functions like those of `dcrmodel.cli.main`: ``_add<Name>`` declares the
arguments, ``_run<Name>`` does the work and returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from .._validate import refuseFolders
from ..assemble import SOLVERS, DcrAssembleConfig, assembleFromFiles, resolveGrid
from ..atomic import atomicPath
from ..diffim import makeDifference, templateForExposure
from ..distributed import assembleDistributed, assemblePatches, formatSummaryTable, loadPlan
from ..errors import (
    DcrConfigError,
    DcrOutputError,
    DcrValueError,
    DcrWarning,
    externalStacklevel,
)
from ..fits import gridFromSpec, readDcrModel, readExposure, writeExposure
from ..model import checkModelsCompatible
from ..parallel import threadLimit
from ..progress import reportProgress
from ..warp import (
    CONSERVE_MODES,
    DEFAULT_WARPING_KERNEL,
    GRID_SPEC_FORMAT,
    WARPING_KERNELS,
    boxesOverlap,
    warpExposure,
)
from .demo import DEMO_FIELDS, runDemo, summaryTable
from .progress import ProgressBar

__all__ = ["SUBCOMMANDS"]



def _bar(args: argparse.Namespace, label: str) -> Any:
    quiet = getattr(args, "quiet", False) or getattr(args, "no_progress", False)
    return ProgressBar(label, enabled=False if quiet else None)


def _addThreads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads of the FFTs and per-frequency work (default: every "
                        "core; shared among the workers of --workers)")


def _threaded(handler: Any) -> Any:
    """Run a command's handler with ``--threads`` as the default number of threads."""
    def run(args: argparse.Namespace) -> int:
        with threadLimit(args.threads):
            return handler(args)
    return run


def _refuseExisting(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise DcrOutputError(f"{path} exists; pass --overwrite to replace it", path=str(path))


# ------------------------------------------------------------------------------------------
# assemble
# ------------------------------------------------------------------------------------------
def _addAssemble(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "assemble", parents=[common], help="build a DCR model from exposures of one patch",
        description="Build a DCR model (one image per subfilter) from exposures of one patch "
        "taken at different airmasses and parallactic angles, and write it with the stacked "
        "coadd, the per-subfilter image counts and a run summary. The model's grid is "
        "--grid's, else --coadd's, else the visits' own (then all on one grid); visits on "
        "other grids (detector frames) are warped onto it, and a visit that does not "
        "overlap it is left out with a warning.",
    )
    parser.add_argument("visits", nargs="+", metavar="VISIT.fits", help="exposure files")
    parser.add_argument("--coadd", metavar="COADD.fits", help="plain coadd to start from")
    parser.add_argument("--grid", metavar="GRID",
                        help="the model's grid: an exposure file whose WCS and box are used, "
                        f"or {GRID_SPEC_FORMAT} (degrees, degrees, pixels, pixels, "
                        "arcsec/pixel) for a North-up tangent-plane patch")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="output folder")
    parser.add_argument("--config", metavar="C.toml", help="configuration file (TOML)")
    parser.add_argument("--subfilters", type=int, metavar="N", help="number of subfilters")
    parser.add_argument("--solver", choices=SOLVERS, help="model solver")
    parser.add_argument("--effective-wavelength", type=float, metavar="NM",
                        help="band effective wavelength in nm (with --bandwidth)")
    parser.add_argument("--bandwidth", type=float, metavar="NM", help="band width in nm")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any configuration value (TOML syntax), repeatable")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier model in MODEL_DIR")
    _addClusterOptions(parser)
    parser.set_defaults(handler=_threaded(_runAssemble))


def _addClusterOptions(parser: argparse.ArgumentParser) -> None:
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="solve subregions on a local Dask cluster of N worker processes")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="solve subregions on a running Dask cluster (e.g. tcp://host:8786)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the subregions an interrupted run finished")
    _addThreads(parser)


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
def _addAssemblePatches(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "assemble-patches", parents=[common], help="build DCR models of many patches",
        description="Build the DCR model of every patch of a plan (TOML: [[patch]] entries "
        "with name, visits, optional coadd and grid, out and config) on a Dask cluster, or "
        "one after another without --workers/--scheduler, and print a summary table.",
    )
    parser.add_argument("plan", metavar="PLAN.toml", help="the plan of patches")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace earlier models in the patches' output folders")
    _addClusterOptions(parser)
    parser.set_defaults(handler=_threaded(_runAssemblePatches))


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
# template and diff
# ------------------------------------------------------------------------------------------
def _addModelAndExposure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL_DIR",
                        help="DCR model folder (dcrmodel assemble); several for a visit that "
                        "spans several patches (one band and subfilter count)")
    parser.add_argument("exposure", metavar="EXPOSURE.fits",
                        help="science exposure, on any WCS")
    parser.add_argument("--engine", choices=("fourier", "spline"),
                        help="template engine (default: the model's default)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _addThreads(parser)


def _addTemplate(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "template", parents=[common], help="make a DCR-matched template for an exposure",
        description="Forward-model the DCR model to the observing conditions of an exposure "
        "and write the DCR-matched template. An exposure on the model's pixel grid gets it "
        "on its box within the model's; an exposure on any other WCS gets it on its own box "
        "and WCS (made on each model's grid and warped, Lanczos 3), merged from several "
        "models (patches) where the exposure spans more than one, NO_DATA where none "
        "covers it.",
    )
    _addModelAndExposure(parser)
    parser.add_argument("--out", required=True, metavar="TEMPLATE.fits", help="output file")
    parser.set_defaults(handler=_threaded(_runTemplate))


def _templateOptions(args: argparse.Namespace) -> dict[str, Any]:
    return {} if args.engine is None else {"engine": args.engine}


def _readModels(args: argparse.Namespace) -> Any:
    """Read the models (checked to belong together) and the exposure, before any work.

    Returns one model, or a list of them when several were given.
    """
    if len(set(args.models)) != len(args.models):
        raise DcrValueError("a model folder is given twice", models=args.models)
    models = checkModelsCompatible([readDcrModel(path) for path in args.models])
    return models[0] if len(models) == 1 else models


def _runTemplate(args: argparse.Namespace) -> int:

    out = Path(args.out)
    _refuseExisting(out, args.overwrite)
    model = _readModels(args)
    exposure = readExposure(args.exposure)
    science, template = templateForExposure(model, exposure, **_templateOptions(args))
    writeExposure(template, out)
    if not getattr(args, "quiet", False):
        print(f"template of {args.exposure} on {science.bbox} written to {out}")
    return 0


def _addDiff(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "diff", parents=[common], help="subtract a DCR-matched template and detect",
        description="Subtract a DCR-matched template from an exposure, detect at a threshold "
        "in sigma with the PSF-matched filter, and write the difference exposure (DETECTED "
        "and DETECTED_NEGATIVE mark the detections) and a JSON list of detections beside it. "
        "The exposure may be on any WCS and span several models (patches), as for "
        "'dcrmodel template'; pixels no model covers (NO_DATA) and pixels whose model rests "
        "on too few visits are not searched.",
    )
    _addModelAndExposure(parser)
    parser.add_argument("--out", required=True, metavar="DIFF.fits", help="output file")
    parser.add_argument("--threshold", type=float, default=5.0, metavar="SIGMA",
                        help="detection threshold in sigma (default 5)")
    parser.add_argument("--match-to", choices=("auto", "template", "science"), default="auto",
                        dest="matchTo",
                        help="which image is convolved to the other's PSF: 'template' (the "
                        "template at the exposure's PSF), 'science' (the exposure convolved "
                        "to the model's PSF, for exposures sharper than the model) or 'auto' "
                        "(science when the exposure is sharper than the model can follow; "
                        "the default)")
    parser.set_defaults(handler=_threaded(_runDiff))


def _runDiff(args: argparse.Namespace) -> int:

    out = Path(args.out)
    catalogue = out.with_suffix(".json")
    _refuseExisting(out, args.overwrite)
    _refuseExisting(catalogue, args.overwrite)
    model = _readModels(args)
    exposure = readExposure(args.exposure)
    result = makeDifference(model, exposure, threshold=args.threshold, matchTo=args.matchTo,
                            **_templateOptions(args))
    writeExposure(result.difference, out)
    paths = [str(path) for path in args.models]
    with atomicPath(catalogue) as tmp:
        tmp.write_text(json.dumps({"exposure": str(args.exposure), "model": paths[0],
                                   "models": paths, **result.toDict()}, indent=1))
    if not getattr(args, "quiet", False):
        print(f"{len(result.detections)} detections at {args.threshold:g} sigma "
              f"({result.matchTo} convolved); difference written to {out}, detections to "
              f"{catalogue}")
    return 0


# ------------------------------------------------------------------------------------------
# warp
# ------------------------------------------------------------------------------------------
def _addWarp(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "warp", parents=[common], help="warp exposures onto one sky grid",
        description="Resample exposures onto one pixel grid (WCS and box): image, variance "
        "and mask through a Lanczos kernel, the PSF rotated and scaled with the pixels. "
        "Writes one file per input into DIR under the input's file name; an exposure that "
        "does not overlap the grid is skipped with a warning.",
    )
    parser.add_argument("exposures", nargs="+", metavar="EXPOSURE.fits",
                        help="exposure files (Rubin layout, with a WCS)")
    parser.add_argument("--grid", required=True, metavar="GRID",
                        help="destination grid: an exposure file whose WCS and box are used, "
                        f"or {GRID_SPEC_FORMAT} (degrees, degrees, pixels, pixels, "
                        "arcsec/pixel) for a North-up tangent-plane patch")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--kernel", choices=WARPING_KERNELS, default=DEFAULT_WARPING_KERNEL,
                        help=f"resampling kernel (default {DEFAULT_WARPING_KERNEL})")
    parser.add_argument("--conserve", choices=CONSERVE_MODES, default=CONSERVE_MODES[0],
                        help="what the pixel values keep: surface brightness (default), "
                        "flux (scaled by the pixel areas) or exactFlux")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files of the same names in DIR")
    parser.set_defaults(handler=_runWarp)


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
        _refuseExisting(target, args.overwrite)
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


# ------------------------------------------------------------------------------------------
# demo
# ------------------------------------------------------------------------------------------
def _addDemo(subparsers: Any, common: argparse.ArgumentParser) -> None:

    parser = subparsers.add_parser(
        "demo", parents=[common], help="the main job end to end on simulated data",
        description="Simulate fields with known truth (constant and variable seeing), build "
        "DCR models from their training visits, make templates for held-out visits, and "
        "write a report (PNG figures, summary.md) comparing them with a plain coadd.",
    )
    parser.add_argument("--out", default="demo-output", metavar="DIR",
                        help="output folder (default demo-output)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--fields", nargs="+", choices=list(DEMO_FIELDS),
                        default=list(DEMO_FIELDS), help="fields to run (default: all)")
    parser.add_argument("--solvers", nargs="+", choices=SOLVERS, default=list(SOLVERS),
                        help="solvers to compare (default: both)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo")
    parser.set_defaults(handler=_runDemo)


def _runDemo(args: argparse.Namespace) -> int:

    if not getattr(args, "quiet", False):
        print(f"dcrmodel demo: fields {', '.join(args.fields)}; solvers "
              f"{', '.join(args.solvers)}; output in {args.out}", file=sys.stderr)
    bar = _bar(args, "demo")
    try:
        result = runDemo(args.out, seed=args.seed, fields=args.fields, solvers=args.solvers,
                         overwrite=args.overwrite, progress=bar)
    finally:
        bar.close()
    if not getattr(args, "quiet", False):
        print(summaryTable(result))
        print(f"report: {result.summaryMarkdown}")
    return 0


#: The subcommands of this module, for `dcrmodel.cli.main`.
SUBCOMMANDS = [_addAssemble, _addAssemblePatches, _addTemplate, _addDiff, _addWarp, _addDemo]
