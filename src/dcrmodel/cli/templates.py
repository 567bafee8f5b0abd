"""The ``dcrmodel template`` and ``dcrmodel diff`` commands' work, one exposure or a batch.

- ``dcrmodel template MODEL_DIR... EXPOSURE.fits --out TEMPLATE.fits``: a DCR-matched
  template, on the exposure's own grid (any WCS), merged from several models (patches)
  where the exposure spans more than one (`dcrmodel.diffim.templateForExposure`).
- ``dcrmodel diff MODEL_DIR... EXPOSURE.fits --out DIFF.fits``: template, subtraction and
  detections (`dcrmodel.diffim.difference`), the detections in ``DIFF.json``.
- With ``--out-dir DIR`` instead of ``--out``, a batch: ``MODEL_DIR... EXPOSURE.fits...``,
  in one process. The paths that are folders are the models, the files after them the
  exposures (a folder after a file, or a first path that is not a folder, is refused). The
  models are read once and their Fourier transforms made once (reused by every exposure on
  the same padded grid, `dcrmodel.model.templates`); each exposure's output is
  ``DIR/<its file name>`` (``diff``: and ``DIR/<its stem>.json``), written atomically,
  the same file, bit for bit, as the one-exposure command writes. Everything that can be
  checked is checked before any work: two exposures with one file name, an output that
  exists without ``--overwrite`` or that is an input, a missing or unreadable exposure
  file, one without a WCS or visit information; the first such problem refuses the whole
  batch, naming the file. An exposure that fails during the work (for example one that no
  model overlaps) stops the batch with its error; the outputs of the exposures before it
  are complete, and none is half written.

Their arguments are declared in `dcrmodel.cli.parser` (``_addTemplate``, ``_addDiff``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._validate import refuseExistingOutput, refuseFolders, refuseOverwritingInputs
from ..diffim import (
    checkDifferenceOutput,
    detectionsPath,
    makeDifference,
    templateForExposure,
    writeDifference,
)
from ..errors import DcrMetadataError, DcrOutputError, DcrValueError
from ..fits import ExposureFile, readDcrModel, readExposure, writeExposure
from ..model import checkModelsCompatible
from ..progress import reportProgress
from .progress import ProgressBar
from .threads import threaded

__all__: list[str] = []

_log = logging.getLogger(__name__)


def _templateOptions(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"warpingKernel": args.warping_kernel}
    if args.engine is not None:
        options["engine"] = args.engine
    return options


def _readModels(args: argparse.Namespace) -> Any:
    """Read the models (checked to belong together) and the exposure, before any work.

    Returns one model, or a list of them when several were given.
    """
    if len(set(args.models)) != len(args.models):
        raise DcrValueError("a model folder is given twice", models=args.models)
    models = checkModelsCompatible([readDcrModel(path) for path in args.models])
    return models[0] if len(models) == 1 else models


def _writeTemplate(args: argparse.Namespace, model: Any, exposurePath: str, out: Path) -> None:
    """Make the template of one exposure and write it to ``out`` (timings logged)."""
    started = time.perf_counter()
    exposure = readExposure(exposurePath)
    read = time.perf_counter()
    science, template = templateForExposure(model, exposure, **_templateOptions(args))
    made = time.perf_counter()
    writeExposure(template, out)
    _log.info("%s: read in %.3f s, template in %.3f s, written in %.3f s", exposurePath,
              read - started, made - read, time.perf_counter() - made)
    if not getattr(args, "quiet", False):
        print(f"template of {exposurePath} on {science.bbox} written to {out}")


@threaded
def _runTemplate(args: argparse.Namespace) -> int:
    if getattr(args, "out_dir", None) is not None:
        return _runBatch(args, _writeTemplate)
    out = Path(args.out)
    refuseOverwritingInputs(out, [*args.models, args.exposure])
    refuseExistingOutput(out, args.overwrite)
    started = time.perf_counter()
    model = _readModels(args)
    _log.info("models read in %.3f s", time.perf_counter() - started)
    _writeTemplate(args, model, args.exposure, out)
    return 0


def _catalogueOf(out: Path) -> Path:
    """Return the detections' file beside a difference (`dcrmodel.diffim.detectionsPath`)."""
    return detectionsPath(out)


def _writeDiff(args: argparse.Namespace, model: Any, exposurePath: str, out: Path) -> None:
    """Make the difference of one exposure; write it to ``out``, its detections beside."""
    catalogue = _catalogueOf(out)
    started = time.perf_counter()
    exposure = readExposure(exposurePath)
    read = time.perf_counter()
    result = makeDifference(model, exposure, threshold=args.threshold, matchTo=args.matchTo,
                            **_templateOptions(args))
    made = time.perf_counter()
    paths = [str(path) for path in args.models]
    writeDifference(result.difference, {"exposure": str(exposurePath), "model": paths[0],
                                        "models": paths, **result.toDict()}, out)
    _log.info("%s: read in %.3f s, difference in %.3f s, written in %.3f s", exposurePath,
              read - started, made - read, time.perf_counter() - made)
    if not getattr(args, "quiet", False):
        print(f"{len(result.detections)} detections at {args.threshold:g} sigma "
              f"({result.matchTo} convolved); difference written to {out}, detections to "
              f"{catalogue}")


@threaded
def _runDiff(args: argparse.Namespace) -> int:
    if getattr(args, "out_dir", None) is not None:
        return _runBatch(args, _writeDiff)
    for output in (Path(args.out), _catalogueOf(Path(args.out))):
        refuseOverwritingInputs(output, [*args.models, args.exposure])
    out, _ = checkDifferenceOutput(args.out, args.overwrite)
    started = time.perf_counter()
    model = _readModels(args)
    _log.info("models read in %.3f s", time.perf_counter() - started)
    _writeDiff(args, model, args.exposure, out)
    return 0


# ------------------------------------------------------------------------------------------
# batches: --out-dir DIR
# ------------------------------------------------------------------------------------------
def _splitBatch(paths: list[str]) -> tuple[list[str], list[str]]:
    """Split ``MODEL_DIR... EXPOSURE.fits...``: the leading folders, then the files."""
    models: list[str] = []
    for path in paths:
        if not Path(path).is_dir():
            break
        models.append(path)
    exposures = paths[len(models):]
    if not models:
        raise DcrValueError(
            f"{paths[0]} is not a model folder; a batch is MODEL_DIR... EXPOSURE.fits... "
            "--out-dir DIR, the model folders first", path=paths[0],
        )
    if not exposures:
        raise DcrValueError(
            "no exposure file after the model folders; a batch is MODEL_DIR... "
            "EXPOSURE.fits... --out-dir DIR", models=models,
        )
    refuseFolders(exposures, "an exposure file (the model folders come first)")
    return models, exposures


def _batchOutputs(
    exposures: list[str], outDir: Path, models: list[str], overwrite: bool, diff: bool
) -> list[Path]:
    """Each exposure's output in ``outDir``, refusing clashes and existing files."""
    if outDir.exists() and not outDir.is_dir():
        raise DcrOutputError(f"--out-dir {outDir} is a file, not a folder", path=str(outDir))
    if any(outDir.resolve() == Path(model).resolve() for model in models):
        raise DcrOutputError(f"--out-dir {outDir} is a model folder; write to another folder",
                             path=str(outDir))
    inputs = {Path(path).resolve() for path in exposures}
    owners: dict[Path, str] = {}
    outputs = []
    for name in exposures:
        source = Path(name)
        if not source.is_file():
            raise FileNotFoundError(f"no such exposure file: {source}")
        out = outDir / source.name
        for target in (out, _catalogueOf(out)) if diff else (out,):
            if target in owners:
                raise DcrValueError(
                    f"{owners[target]} and {source} would both be written to {target}; give "
                    "exposures with different file names", path=str(target),
                )
            owners[target] = name
            if target.resolve() in inputs:
                raise DcrOutputError(f"{target} is an input exposure; write to another folder",
                                     path=str(target))
            refuseOverwritingInputs(target, [*models, *exposures])
        if diff:
            checkDifferenceOutput(out, overwrite)
        else:
            refuseExistingOutput(out, overwrite)
        outputs.append(out)
    return outputs


def _checkExposure(path: str) -> None:
    """Open an exposure's headers (layout, WCS, PSF, visit) before any work."""
    info = ExposureFile(path).info
    missing = [name for name in ("wcs", "visitInfo") if getattr(info, name) is None]
    if missing:
        raise DcrMetadataError(
            f"{path}: the exposure has no {' and no '.join(missing)}; a template needs both",
            path=path, missing=missing,
        )


def _runBatch(
    args: argparse.Namespace,
    writeOne: Callable[[argparse.Namespace, Any, str, Path], None],
) -> int:
    """Run ``template`` or ``diff`` on every exposure of a batch, the models read once."""
    models, exposures = _splitBatch([*args.models, args.exposure])
    args.models, args.exposure = models, None  # the models, as the one-exposure form has them
    outDir = Path(args.out_dir)
    outputs = _batchOutputs(exposures, outDir, models, args.overwrite, writeOne is _writeDiff)
    for path in exposures:
        _checkExposure(path)
    started = time.perf_counter()
    model = _readModels(args)
    _log.info("models read in %.3f s", time.perf_counter() - started)
    label = "template" if writeOne is _writeTemplate else "diff"
    quiet = getattr(args, "quiet", False) or getattr(args, "no_progress", False)
    bar = ProgressBar(label, enabled=False if quiet else None)
    try:
        for done, (path, out) in enumerate(zip(exposures, outputs, strict=True)):
            reportProgress(bar, os.path.basename(path), done, len(exposures), event=label)
            writeOne(args, model, path, out)
        reportProgress(bar, "done", len(exposures), len(exposures), event=label)
    finally:
        bar.close()
    if not getattr(args, "quiet", False):
        print(f"{len(exposures)} exposures: {label} written to {outDir} in "
              f"{time.perf_counter() - started:.1f} s")
    return 0
