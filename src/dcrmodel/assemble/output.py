"""The outputs of an assembly: the result, its summary and the files it is written to.

`DcrAssembleCoadd.run` returns an `AssembleResult`: the model, the stacked coadd
(`stackedCoadd`), the per-subfilter image counts and the run summary (`runSummary`).
`writeResults` writes one ``dcrCoadd`` exposure per subfilter, the stacked coadd, the
per-subfilter image counts and the JSON summary, atomically, into a folder that
`checkOutputFolder` accepts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits as pyfits
from astropy.wcs import WCS

from .._version import __version__
from ..atomic import atomicDirectory, guardOutputFolder, holdsOutputLock
from ..errors import DcrTypeError
from ..fits import writeDcrModel, writeExposure
from ..image import Exposure, Image, Mask, MaskedImage
from ..model import LOW_COVERAGE_PLANE
from .config import DcrAssembleConfig
from .inputs import PreparedRun
from .tiling import featherWidth

__all__ = [
    "AssembleResult",
    "writeResults",
    "checkOutputFolder",
    "runSummary",
    "stackedCoadd",
    "flagLowCoverage",
    "SUMMARY_NAME",
    "STACKED_COADD_NAME",
    "NIMAGE_NAME",
]

_log = logging.getLogger(__name__)

#: File names inside an output folder.
SUMMARY_NAME = "summary.json"
STACKED_COADD_NAME = "stackedCoadd.fits"
NIMAGE_NAME = "nImage.fits"
_MODEL_PREFIX = "dcrCoadd_"
_SUMMARY_KIND = "dcrmodel-assemble"


@dataclasses.dataclass
class AssembleResult:
    """What `DcrAssembleCoadd.run` returns.

    Attributes
    ----------
    dcrModel : `dcrmodel.model.core.DcrModel`
        The DCR model: one image of the unrefracted sky per subfilter, bluest first, with
        the coadd's mask and the variance of an even split of the coadd.
    coadd : `dcrmodel.image.Exposure`
        The stacked coadd: the sum of the subfilter images (the sky as seen at the
        zenith), with the coadd's mask and variance.
    nImages : list of `dcrmodel.image.Image`
        Per subfilter, the number of visits contributing to each pixel.
    summary : dict
        The run summary (JSON-ready): configuration, band, visits with their airmass,
        parallactic angle and weight, per-subregion convergence and gain histories, and
        timings in seconds.
    """

    dcrModel: Any
    coadd: Exposure
    nImages: list[Image]
    summary: dict[str, Any]


def stackedCoadd(model: Any, prepared: PreparedRun) -> Exposure:
    """Return the stacked coadd of a model: the sum of its subfilter images.

    Parameters
    ----------
    model : `dcrmodel.model.core.DcrModel`
        The model.
    prepared : `dcrmodel.assemble.inputs.PreparedRun`
        The run's preparation: box, WCS, band and plain coadd.

    Returns
    -------
    `dcrmodel.image.Exposure`
        The sum as float32, with the plain coadd's mask, variance and calibration, and the
        model's PSF.
    """
    total = np.zeros(prepared.bbox.shape)
    for image in model:
        total += image.array
    coadd = prepared.coadd
    return Exposure(
        MaskedImage(
            Image(total.astype(np.float32), bbox=prepared.bbox),
            coadd.mask.clone(),
            coadd.variance.clone(),
        ),
        wcs=prepared.wcs,
        psf=model.psf,
        filter=prepared.band,
        photoCalib=coadd.photoCalib,
    )


def flagLowCoverage(nImages: list[Image], minCoverage: int, masks: list[Mask]) -> np.ndarray:
    """Flag the pixels resting on fewer than ``minCoverage`` visits in masks.

    Parameters
    ----------
    nImages : list of `dcrmodel.image.Image`
        Per subfilter, the number of visits covering each pixel.
    minCoverage : int
        The least number of visits of a well-covered pixel.
    masks : list of `dcrmodel.image.Mask`
        Masks on the box of ``nImages`` that receive `LOW_COVERAGE_PLANE` there.

    Returns
    -------
    `numpy.ndarray`
        Boolean: the pixels flagged (the smallest count over the subfilters is below
        ``minCoverage``).
    """
    coverage = np.min([image.array for image in nImages], axis=0)
    low = coverage < minCoverage
    for mask in masks:
        bit = mask.addMaskPlane(LOW_COVERAGE_PLANE)
        mask.array[low] |= np.int32(1 << bit)
    return low


def runSummary(
    config: DcrAssembleConfig,
    prepared: PreparedRun,
    subregions: list[dict[str, Any]],
    timings: dict[str, float],
) -> dict[str, Any]:
    """Return the summary of a run (JSON-ready), as `AssembleResult.summary` holds it.

    Parameters
    ----------
    config : `DcrAssembleConfig`
        The settings.
    prepared : `dcrmodel.assemble.inputs.PreparedRun`
        The run's preparation: visits, band, box, buffer, PSFs.
    subregions : list of dict
        The record of each subregion, in order.
    timings : dict
        Seconds per step.
    """
    visits = []
    for inp in prepared.inputs:
        vi = inp.visitInfo
        parAngle = getattr(vi, "boresightParAngle", None)
        visits.append(
            {
                "name": inp.name,
                "id": vi.id,
                "airmass": None if vi.boresightAirmass is None else float(vi.boresightAirmass),
                "parallacticAngle": None if parAngle is None else float(parAngle.deg),
                "weight": float(inp.weight),
                "goodPixels": int(inp.goodPixels),
                "dcrEdgeShifts": [[list(s0), list(s1)] for s0, s1 in inp.dcr],
                "psfFwhm": None if inp.psf is None else float(inp.psf.fwhm),
                "psfEstimated": inp.psfEstimate is not None,
                "warped": inp.warp is not None,
                "noiseFactor": None if inp.warp is None else float(inp.warp.noiseFactor),
            }
        )
    bbox = prepared.bbox
    return {
        "kind": _SUMMARY_KIND,
        "runId": uuid.uuid4().hex,
        "dcrmodelVersion": __version__,
        "config": config.toDict(),
        "band": {
            "name": prepared.band.bandName,
            "effectiveWavelength": prepared.band.effectiveWavelength,
            "bandwidth": prepared.band.bandwidth,
        },
        "bbox": [bbox.minX, bbox.minY, bbox.width, bbox.height],
        "coadd": "given" if prepared.coaddGiven else "computed",
        "grid": prepared.gridSource,
        "skipped": list(prepared.skipped),
        "bufferPixels": prepared.buffer,
        "featherPixels": featherWidth(prepared.buffer, config.solver),
        "visits": visits,
        "leftOut": list(prepared.leftOut),
        "psf": prepared.psfSummary,
        "subregions": subregions,
        "timings": {k: float(v) for k, v in timings.items()},
    }


def checkOutputFolder(outDir: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an output folder that holds files of another run, before any work.

    Parameters
    ----------
    outDir : str or os.PathLike
        The folder a model is to be written to (it need not exist).
    overwrite : bool
        Whether an earlier model's files there may be replaced.

    Returns
    -------
    path : `pathlib.Path`
        The folder.

    Raises
    ------
    DcrOutputError
        If the path is a file, or the folder holds files that are not a model's, or a
        model's without ``overwrite``.
    """

    def isOwn(folder: Path) -> bool:
        try:
            return json.loads((folder / SUMMARY_NAME).read_text()).get("kind") == _SUMMARY_KIND
        except (OSError, ValueError, AttributeError):
            return False

    def foreignFiles(folder: Path) -> list[str]:
        return [
            p.name for p in sorted(folder.iterdir())
            if not p.name.startswith(".")
            and p.name not in (SUMMARY_NAME, STACKED_COADD_NAME, NIMAGE_NAME)
            and not p.name.startswith(_MODEL_PREFIX)
        ]

    return guardOutputFolder(outDir, overwrite, "model", isOwn, foreignFiles)


def _writeNImages(nImages: list[Image], wcs: WCS | None, path: Path) -> None:
    """Write the per-subfilter image counts as int32 image HDUs ``NIMAGE_<k>``."""
    hdus = [pyfits.PrimaryHDU()]
    for k, image in enumerate(nImages):
        header = wcs.to_header(relax=True) if wcs is not None else pyfits.Header()
        header["EXTNAME"] = f"NIMAGE_{k}"
        header["DCR-SUBF"] = (k, "subfilter index")
        header["LTV1"] = -image.bbox.minX
        header["LTV2"] = -image.bbox.minY
        if wcs is not None:
            # The WCS maps parent pixels; the file's pixel 1 is parent pixel x0.
            header["CRPIX1"] = wcs.wcs.crpix[0] - image.bbox.minX
            header["CRPIX2"] = wcs.wcs.crpix[1] - image.bbox.minY
        hdus.append(pyfits.ImageHDU(np.asarray(image.array, dtype=np.int32), header=header))
    pyfits.HDUList(hdus).writeto(path)


@holdsOutputLock("outDir")
def writeResults(
    result: AssembleResult, outDir: str | os.PathLike, overwrite: bool = False
) -> Path:
    """Write an assembly's outputs into a folder, atomically.

    The folder receives ``dcrCoadd_<k>.fits`` (one exposure per subfilter, as
    `dcrmodel.fits.model.writeDcrModel` writes them), ``stackedCoadd.fits`` (the stacked
    coadd), ``nImage.fits`` (the per-subfilter image counts, HDUs ``NIMAGE_<k>``) and
    ``summary.json``. Everything is written into a temporary folder beside ``outDir`` and
    renamed into place at the end, so an interrupted write leaves no partial output.

    Parameters
    ----------
    result : AssembleResult
        What `DcrAssembleCoadd.run` returned.
    outDir : str or os.PathLike
        The output folder: new, empty, or (with ``overwrite``) holding an earlier model.
    overwrite : bool, optional
        Replace an earlier dcrmodel model in ``outDir``. Folders holding other files are
        never replaced.

    Returns
    -------
    pathlib.Path
        The output folder.

    Raises
    ------
    DcrOutputError
        If ``outDir`` holds another run's files (and ``overwrite`` is False) or files that
        are not a dcrmodel model.
    """
    if not isinstance(result, AssembleResult):
        raise DcrTypeError("result must be an AssembleResult", result=type(result).__name__)
    out = checkOutputFolder(outDir, overwrite)
    with atomicDirectory(out) as tmp:
        modelDir = tmp / "_model"
        writeDcrModel(result.dcrModel, modelDir)
        for item in sorted(modelDir.iterdir()):
            os.replace(item, tmp / item.name)
        shutil.rmtree(modelDir)
        writeExposure(result.coadd, tmp / STACKED_COADD_NAME)
        _writeNImages(result.nImages, result.coadd.wcs, tmp / NIMAGE_NAME)
        (tmp / SUMMARY_NAME).write_text(json.dumps(result.summary, indent=2, allow_nan=True))
    _log.info("wrote the DCR model to %s", out)
    return out
