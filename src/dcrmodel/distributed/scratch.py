"""Scratch folders: the solved subregions of a patch, saved as they arrive, and resume.

Each solved subregion is saved as it arrives, atomically, in a scratch folder beside the
patch's output folder, ``.<out>.scratch/`` (`scratchFolder`; one ``subregion_<i>.npz``
each, plus ``manifest.json`` recording the inputs and settings). A rerun with
``resume=True`` reuses the saved subregions when the manifest matches the new run (same
files, same sizes and modification times, same settings and dcrmodel version) and
refuses otherwise (`loadSavedResults`). Without ``resume`` an old scratch folder is
discarded (`prepareScratch`). The driver removes the folder once the outputs are written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .. import _version
from ..assemble import SubregionResult
from ..atomic import atomicPath
from ..errors import DcrValueError
from ..image import Box
from .plan import Patch

__all__ = ["scratchFolder"]

_log = logging.getLogger(__name__)

_SCRATCH_KIND = "dcrmodel-assemble-scratch"
_MANIFEST = "manifest.json"


def scratchFolder(outDir: str | os.PathLike) -> Path:
    """Return the scratch folder of an output folder: ``.<name>.scratch`` beside it."""
    out = Path(os.fspath(outDir)).absolute()
    return out.parent / f".{out.name}.scratch"


def _fileStamp(path: Path) -> list[Any]:
    stat = path.stat()
    return [str(path.absolute()), int(stat.st_size), int(stat.st_mtime_ns)]


def scratchManifest(patch: Patch) -> dict[str, Any]:
    """Return what a patch's scratch folder records of its inputs and settings.

    Parameters
    ----------
    patch : Patch
        The patch.

    Returns
    -------
    dict
        The scratch kind, the dcrmodel version, each input file's path, size (bytes) and
        modification time (ns), the grid (a file's stamp, its text, or a given WCS and box)
        and the settings (but ``threads``, which does not change the model).
    """
    return {
        "kind": _SCRATCH_KIND,
        "dcrmodelVersion": _version.__version__,
        "visits": [_fileStamp(p) for p in patch.visits],
        "coadd": None if patch.coadd is None else _fileStamp(patch.coadd),
        "grid": _gridStamp(patch.grid),
        # The number of threads does not change the model: a run may resume with another.
        "config": {key: value for key, value in patch.config.toDict().items()
                   if key != "threads"},
    }


def _gridStamp(grid: Any) -> Any:
    """Return what a manifest records of a patch's grid (None, a file's stamp or its text)."""
    if grid is None:
        return None
    if isinstance(grid, tuple | list):
        wcs, bbox = grid
        return {"wcs": wcs.to_header_string(relax=True),
                "bbox": [bbox.minX, bbox.minY, bbox.width, bbox.height]}
    path = Path(os.fspath(grid))
    return _fileStamp(path) if path.is_file() else os.fspath(grid)


def _resultFile(scratch: Path, index: int) -> Path:
    return scratch / f"subregion_{index:05d}.npz"


def saveResult(scratch: Path, result: SubregionResult) -> None:
    """Save a solved subregion in a scratch folder, atomically.

    Parameters
    ----------
    scratch : pathlib.Path
        The scratch folder.
    result : dcrmodel.assemble.task.SubregionResult
        The subregion.
    """
    tile = result.tile
    box = result.modelBox
    # the plain coadd's sums over the tile, when the run makes its coadd from them
    extra = {} if result.coaddSums is None else {"coaddSums": result.coaddSums}
    with atomicPath(_resultFile(scratch, result.index)) as tmp, open(tmp, "wb") as stream:
        np.savez(
            stream,
            index=np.int64(result.index),
            tile=np.array([tile.minX, tile.minY, tile.width, tile.height], dtype=np.int64),
            modelArrays=result.modelArrays,
            modelBox=np.array([box.minX, box.minY, box.width, box.height], dtype=np.int64),
            nImages=result.nImages,
            summary=np.array(json.dumps(result.summary, allow_nan=True)),
            **extra,
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
            coaddSums=np.array(data["coaddSums"]) if "coaddSums" in data.files else None,
        )


def loadSavedResults(
    scratch: Path, manifest: dict[str, Any], name: str
) -> dict[int, SubregionResult]:
    """Return the subregions an interrupted run saved, if its inputs and settings match.

    Parameters
    ----------
    scratch : pathlib.Path
        The patch's scratch folder.
    manifest : dict
        The new run's `scratchManifest`.
    name : str
        The patch's name (for messages).

    Returns
    -------
    dict
        Subregion index -> saved result; empty when the folder holds no manifest. An
        unreadable saved subregion is left out (it is solved again).

    Raises
    ------
    DcrValueError
        If the saved manifest is unreadable or describes other inputs or settings.
    """
    manifestPath = scratch / _MANIFEST
    if not manifestPath.is_file():
        return {}
    try:
        saved = json.loads(manifestPath.read_text())
    except (OSError, ValueError) as exc:
        raise DcrValueError(
            f"patch {name!r}: the scratch folder {scratch} has an "
            f"unreadable manifest ({exc}); delete the folder or rerun without resume",
            scratch=str(scratch),
        ) from None
    if saved != json.loads(json.dumps(manifest)):
        raise DcrValueError(
            f"patch {name!r}: the scratch folder {scratch} was left by a "
            "run with other input files or settings; rerun without resume to start over "
            "(the folder is then replaced)",
            scratch=str(scratch),
        )
    results: dict[int, SubregionResult] = {}
    for path in sorted(scratch.glob("subregion_*.npz")):
        try:
            result = _loadResult(path)
        except (OSError, ValueError, KeyError) as exc:
            _log.warning("%s: unreadable saved subregion %s (%s); it is solved again",
                         name, path.name, exc)
            continue
        results[result.index] = result
    _log.info("%s: resuming with %d saved subregion(s) from %s",
              name, len(results), scratch)
    return results


def prepareScratch(scratch: Path, manifest: dict[str, Any], name: str, keep: bool) -> None:
    """Create a scratch folder and its manifest (an old one is discarded unless ``keep``).

    Parameters
    ----------
    scratch : pathlib.Path
        The patch's scratch folder.
    manifest : dict
        The run's `scratchManifest`.
    name : str
        The patch's name (for the log).
    keep : bool
        Keep the folder's saved subregions (they are being resumed).
    """
    if scratch.exists() and not keep:
        _log.info("%s: discarding the scratch folder of an earlier run (%s)",
                  name, scratch)
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    with atomicPath(scratch / _MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))


def removeScratch(scratch: Path) -> None:
    """Remove a scratch folder once the patch's outputs are written (errors ignored).

    Parameters
    ----------
    scratch : pathlib.Path
        The patch's scratch folder.
    """
    shutil.rmtree(scratch, ignore_errors=True)
