"""The ``dcrmodel butler`` commands: dcrmodel in a Rubin data butler repository.

- ``dcrmodel butler init REPO [--bands u g r i z y] [--subfilters N]``: a new repository
  that knows dcrmodel's storage classes, dataset types and the bands' subfilter records.
- ``dcrmodel butler ingest REPO FILE... [--coadd COADD.fits | --grid GRID] --run RUN``:
  visits (as visit images on any WCS, and as warps of the patch when on its grid), the
  coadd, the patch's grid and DCR model folders.
- ``dcrmodel butler pipeline``: print the path of the shipped pipeline YAML (task labels
  ``dcrMakeWarp``, ``dcrAssembleCoadd`` and ``dcrTemplate``; subset ``dcrModel``), for
  ``pipetask run -p``.

They need the optional extra ``dcrmodel[rubin]``; `dcrmodel.pipeline` is imported only
when one of them runs (an optional dependency), so the rest of the command line works
without it. The subcommand is declared like those of `dcrmodel.cli.commands`.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from ..fits import gridFromSpec
from ..image import RUBIN_BANDS

__all__ = ["SUBCOMMANDS"]

_TRANSFERS = ("copy", "direct", "symlink", "hardlink", "auto")


def _pipeline() -> Any:
    """Import `dcrmodel.pipeline` (the optional extra), with an install hint if absent."""
    try:
        return importlib.import_module("dcrmodel.pipeline")
    except ImportError as error:
        raise ImportError(
            f"'dcrmodel butler' needs the Rubin middleware ({error}); install it with "
            "pip install 'dcrmodel[rubin]'"
        ) from None


def _addButler(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "butler", parents=[common], help="use dcrmodel in a Rubin data butler repository",
        description="Create a data butler repository that knows dcrmodel, ingest files into "
        "it, and find the pipeline to run with pipetask (needs dcrmodel[rubin]).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    init = actions.add_parser(
        "init", parents=[common], help="create a repository that knows dcrmodel",
        description="Create a repository with dcrmodel's storage classes and formatters, "
        "its dataset types (dcrWarp, dcrInputCoadd, dcrCoadd, dcrStackedCoadd, "
        "dcrVisitImage, dcrTemplate), an instrument with one physical filter per band, and "
        "the bands' subfilter records.",
    )
    init.add_argument("repo", metavar="REPO", help="folder of the new repository")
    init.add_argument("--bands", nargs="+", default=list(RUBIN_BANDS), metavar="BAND",
                      help="bands to insert subfilter records for (default: u g r i z y)")
    init.add_argument("--subfilters", type=int, default=3, metavar="N",
                      help="subfilter records per band (default 3)")
    init.set_defaults(handler=_runInit)

    ingest = actions.add_parser(
        "ingest", parents=[common], help="ingest visits, a coadd and DCR models",
        description="Ingest visit files on any WCS (as dcrVisitImage on detector 0, with "
        "their sky regions; a visit on the patch's pixel grid also as its dcrWarp, the "
        "others get theirs from the pipeline's dcrMakeWarp), a plain coadd (dcrInputCoadd) "
        "and DCR model folders (dcrCoadd), with the dimension records they need. The "
        "patch's grid (dcrPatchGrid) is --grid's, else the coadd's, else the first model's "
        "or visit's.",
    )
    ingest.add_argument("repo", metavar="REPO", help="repository (dcrmodel butler init)")
    ingest.add_argument("files", nargs="*", metavar="FILE",
                        help="visit files and DCR model folders")
    where = ingest.add_mutually_exclusive_group()
    where.add_argument("--coadd", metavar="COADD.fits", help="plain coadd: the patch's grid")
    where.add_argument("--grid", metavar="GRID",
                       help="the patch's grid: an exposure file whose WCS and box are used, "
                       "or RA,DEC,WIDTH,HEIGHT,SCALE (deg, deg, pixels, pixels, "
                       "arcsec/pixel) for a North-up tangent-plane patch")
    ingest.add_argument("--run", required=True, metavar="RUN", help="RUN collection to ingest into")
    ingest.add_argument("--transfer", choices=_TRANSFERS, default="copy",
                        help="copy the files (default) or use them in place (direct)")
    ingest.add_argument("--instrument", default=None, help="instrument name of the visits")
    ingest.add_argument("--skymap", default=None, help="skymap name of the grid")
    ingest.add_argument("--tract", type=int, default=0, help="tract ID (default 0)")
    ingest.add_argument("--patch", type=int, default=0, help="patch ID (default 0)")
    ingest.set_defaults(handler=_runIngest)

    pipeline = actions.add_parser(
        "pipeline", parents=[common], help="print the path of the pipeline YAML",
        description="Print the path of the shipped pipeline YAML (labels dcrMakeWarp, "
        "dcrAssembleCoadd and dcrTemplate; subset dcrModel = dcrMakeWarp and "
        "dcrAssembleCoadd), e.g. pipetask run -b REPO -i RUN -o OUT "
        "-p \"$(dcrmodel butler pipeline)#dcrModel\".",
    )
    pipeline.set_defaults(handler=_runPipeline)


def _runInit(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    butler = pipeline.initRepository(args.repo, bands=args.bands, numSubfilters=args.subfilters)
    pipeline.registerPipelineDatasetTypes(butler)
    if not getattr(args, "quiet", False):
        print(f"created the repository {args.repo} (bands {' '.join(args.bands)}, "
              f"{args.subfilters} subfilters each)")
    return 0


def _runIngest(args: argparse.Namespace) -> int:
    pipeline = _pipeline()
    options: dict[str, Any] = {"tract": args.tract, "patch": args.patch}
    if args.instrument is not None:
        options["instrument"] = args.instrument
    if args.skymap is not None:
        options["skymap"] = args.skymap
    if args.grid is not None:
        options["grid"] = _gridSpec(args.grid)
    butler = pipeline.openRepository(args.repo, writeable=True)
    result = pipeline.ingestFiles(butler, args.files, args.run, coadd=args.coadd,
                                  transfer=args.transfer, **options)
    if not getattr(args, "quiet", False):
        counts = ", ".join(f"{n} {name}" for name, n in result.counts().items())
        grid = result.grid
        print(f"ingested {counts} into {args.run} (skymap {grid['skymap']}, tract "
              f"{grid['tract']}, patch {grid['patch']})")
    return 0


def _gridSpec(spec: str) -> Any:
    """Read ``--grid`` (a file or RA,DEC,WIDTH,HEIGHT,SCALE) before any work."""
    return gridFromSpec(spec)


def _runPipeline(args: argparse.Namespace) -> int:
    print(_pipeline().PIPELINE_PATH)
    return 0


#: The subcommands of this module, for `dcrmodel.cli.main`.
SUBCOMMANDS = [_addButler]
