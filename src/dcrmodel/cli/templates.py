"""The ``dcrmodel template`` and ``dcrmodel diff`` commands' work.

- ``dcrmodel template MODEL_DIR... EXPOSURE.fits --out TEMPLATE.fits``: a DCR-matched
  template, on the exposure's own grid (any WCS), merged from several models (patches)
  where the exposure spans more than one (`dcrmodel.diffim.templateForExposure`).
- ``dcrmodel diff MODEL_DIR... EXPOSURE.fits --out DIFF.fits``: template, subtraction and
  detections (`dcrmodel.diffim.difference`).

Their arguments are declared in `dcrmodel.cli.parser` (``_addTemplate``, ``_addDiff``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..atomic import atomicPath
from ..diffim import makeDifference, templateForExposure
from ..errors import DcrOutputError, DcrValueError
from ..fits import readDcrModel, readExposure, writeExposure
from ..model import checkModelsCompatible

__all__: list[str] = []


def _refuseExisting(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise DcrOutputError(f"{path} exists; pass --overwrite to replace it", path=str(path))


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
