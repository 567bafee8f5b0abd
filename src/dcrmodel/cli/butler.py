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
without it. Their arguments are declared in `dcrmodel.cli.parser` (``_addButler``).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from ..fits import gridFromSpec

__all__: list[str] = []


def _pipeline() -> Any:
    """Import `dcrmodel.pipeline` (the optional extra), with an install hint if absent."""
    try:
        return importlib.import_module("dcrmodel.pipeline")
    except ImportError as error:
        raise ImportError(
            f"'dcrmodel butler' needs the Rubin middleware ({error}); install it with "
            "pip install 'dcrmodel[rubin]'"
        ) from None


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
