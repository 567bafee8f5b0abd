"""Ingest dcrmodel's FITS files (visits, coadds, DCR models) into a data butler repository.

`ingestFiles` registers each file as a dataset of `dcrmodel.pipeline.repository`'s dataset
types, with the dimension records it needs:

- a *visit* (an exposure file with visit metadata) becomes ``dcrVisitImage`` on detector 0,
  with the instrument's physical filter of its band, its ``day_obs``, and its ``visit`` and
  ``visit_detector_region`` records, whose sky region is the footprint of its WCS. A visit
  on the patch's pixel grid also becomes that patch's ``dcrWarp`` (the same file), so that
  ``dcrAssembleCoadd`` alone can build the model; a visit on its own detector grid (any
  pointing, rotation, distortion) is not refused: its ``dcrWarp`` of every patch it
  overlaps is made by the pipeline's ``dcrMakeWarp`` (`dcrmodel.pipeline.warptask`), whose
  quanta the graph makes from the visit's and the patches' sky regions;
- the *coadd* (``coadd=``) becomes ``dcrInputCoadd`` of its band;
- a *DCR model* (a folder written by ``dcrmodel assemble`` or `dcrmodel.writeDcrModel`, or
  one of its ``dcrCoadd_<k>.fits`` files) becomes ``dcrCoadd`` datasets, one per
  subfilter, and its band gets the subfilter records it needs.

The *grid* is ``grid=`` (a grid file or ``RA,DEC,WIDTH,HEIGHT,SCALE``, as ``dcrmodel
assemble --grid`` takes it), else the pixel grid of the coadd (or, without one, of the first
model file or the first visit): it becomes patch ``patch`` of tract ``tract`` of skymap
``skymap``, whose region is the grid's footprint (a tract's region grows to hold all its
patches), and the patch's ``dcrPatchGrid`` dataset (its WCS and box).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import astropy.units as u
from astropy.time import Time
from astropy.wcs import WCS
from lsst.daf.butler import Butler, DatasetRef, FileDataset, MissingCollectionError, Timespan
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

from ..errors import DcrMetadataError, DcrValueError
from ..fits import ExposureFile, gridFromSpec
from ..image import WCS_GRID_TOLERANCE, Box, Exposure, wcsGridOffset
from ..warp import checkCelestialWcs
from .repository import (
    DEFAULT_INSTRUMENT,
    checkRepository,
    insertInstrument,
    insertSubfilters,
)
from .storage import PatchGrid

__all__ = [
    "DEFAULT_SKYMAP",
    "TRANSFER_MODES",
    "PATCH_GRID",
    "IngestResult",
    "footprintRegion",
    "ingestFiles",
]

_log = logging.getLogger(__name__)

#: Skymap of the grids that ``dcrmodel butler ingest`` defines.
DEFAULT_SKYMAP = "dcrmodel"

#: How files reach the repository: copied, linked, or used in place (``direct``).
TRANSFER_MODES = ("copy", "direct", "symlink", "hardlink", "auto")

#: Patches per row and column of a tract (patch ID = cell_y * PATCH_GRID + cell_x).
PATCH_GRID = 1000

_TRACT_MAX = 100000
_MODEL_FILE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*_(\d+)\.f(its(\.gz|\.fz)?|z)$")


@dataclasses.dataclass
class IngestResult:
    """What `ingestFiles` registered.

    Attributes
    ----------
    refs : dict of str to list of lsst.daf.butler.DatasetRef
        The datasets, by dataset type.
    grid : dict
        ``skymap``, ``tract`` and ``patch`` of the grid.
    """

    refs: dict[str, list[DatasetRef]]
    grid: dict[str, Any]

    def counts(self) -> dict[str, int]:
        """Return the number of datasets of each dataset type."""
        return {name: len(refs) for name, refs in self.refs.items()}


def footprintRegion(wcs: WCS, bbox: Box) -> ConvexPolygon:
    """Return the sky region of a box of parent pixels (its outer pixel edges).

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        Celestial WCS of parent 0-based pixels.
    bbox : dcrmodel.image.Box
        The box.

    Returns
    -------
    region : lsst.sphgeom.ConvexPolygon
        The convex hull of the box's four outer corners on the sky.
    """
    xs = [bbox.minX - 0.5, bbox.maxX + 0.5, bbox.maxX + 0.5, bbox.minX - 0.5]
    ys = [bbox.minY - 0.5, bbox.minY - 0.5, bbox.maxY + 0.5, bbox.maxY + 0.5]
    ra, dec = wcs.pixel_to_world_values(xs, ys)
    return ConvexPolygon.convexHull(
        [UnitVector3d(LonLat.fromDegrees(float(a), float(d))) for a, d in zip(ra, dec, strict=True)]
    )


def _hull(*regions: ConvexPolygon) -> ConvexPolygon:
    return ConvexPolygon.convexHull([v for region in regions for v in region.getVertices()])


class _File:
    """One input file's metadata (headers only) and its kind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = ExposureFile(path)
        self.info: Exposure = self.file.info
        self.bbox: Box = self.file.bbox
        metadata = self.info.metadata
        self.isModel = "DCR-NSUB" in metadata or "DCR-SUBF" in metadata
        self.subfilter = metadata.get("DCR-SUBF")
        if self.isModel and self.subfilter is None:
            match = _MODEL_FILE.match(path.name)
            self.subfilter = int(match.group(1)) if match else None

    @property
    def band(self) -> str:
        if self.info.filter is None:
            raise DcrMetadataError(
                f"{self.path.name} has no band (FILTER with FILT-EFF/FILT-BW); dcrmodel "
                "needs each file's band", path=str(self.path),
            )
        return self.info.filter.bandName

    def requireWcs(self) -> WCS:
        if self.info.wcs is None:
            raise DcrMetadataError(
                f"{self.path.name} has no WCS; its sky region is unknown", path=str(self.path)
            )
        return self.info.wcs


def _expandPaths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; a folder stands for its model files (``<name>_<k>.fits``)."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            inside = sorted(
                (p for p in path.iterdir() if _MODEL_FILE.match(p.name)),
                key=lambda p: int(_MODEL_FILE.match(p.name).group(1)),
            )
            if not inside:
                raise DcrValueError(
                    "the folder holds no DCR model files (<name>_<k>.fits)", path=str(path)
                )
            files.extend(inside)
        elif not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        else:
            files.append(path)
    return files


def _dayObs(date: Time) -> tuple[int, Timespan]:
    """Return the observing day (YYYYMMDD, the date 12 hours earlier) and its timespan."""
    shifted = (date - 12 * u.hour).utc
    day = int(shifted.strftime("%Y%m%d"))
    start = Time(shifted.strftime("%Y-%m-%dT12:00:00"), scale="utc")
    return day, Timespan(start.tai, (start + 1 * u.day).tai)


def _gridRecords(
    butler: Butler, grid: PatchGrid, skymap: str, tract: int, patch: int
) -> None:
    """Insert (or extend) the skymap, tract and patch records of the grid."""
    registry = butler.registry
    digest = hashlib.sha1(f"dcrmodel grid skymap {skymap}".encode()).digest()
    registry.syncDimensionData(
        "skymap",
        {"name": skymap, "hash": digest, "tract_max": _TRACT_MAX,
         "patch_nx_max": PATCH_GRID, "patch_ny_max": PATCH_GRID},
    )
    region = footprintRegion(grid.wcs, grid.bbox)
    existing = butler.query_dimension_records(
        "tract", skymap=skymap, tract=tract, explain=False
    )
    tractRegion = region if not existing else _hull(existing[0].region, region)
    registry.syncDimensionData(
        "tract", {"skymap": skymap, "id": tract, "region": tractRegion}, update=True
    )
    cellY, cellX = divmod(patch, PATCH_GRID)
    registry.syncDimensionData(
        "patch",
        {"skymap": skymap, "tract": tract, "id": patch, "cell_x": cellX, "cell_y": cellY,
         "region": region},
        update=True,
    )


def _visitRecords(butler: Butler, visit: _File, instrument: str) -> int:
    """Insert the physical filter, day_obs, visit and visit_detector_region of a visit."""
    visitInfo = visit.info.visitInfo
    if visitInfo is None or visitInfo.id is None or visitInfo.date is None:
        raise DcrMetadataError(
            f"{visit.path.name} is not a visit: it lacks visit metadata (IDNUM, DATE-AVG); "
            "give coadds with --coadd and models as folders", path=str(visit.path),
        )
    band = visit.band
    insertInstrument(butler, instrument, [band])
    day, dayTimespan = _dayObs(visitInfo.date)
    registry = butler.registry
    registry.syncDimensionData(
        "day_obs", {"instrument": instrument, "id": day, "timespan": dayTimespan}
    )
    exposureTime = visitInfo.exposureTime or 0.0
    middle = visitInfo.date.tai
    timespan = Timespan(middle - exposureTime / 2 * u.s, middle + exposureTime / 2 * u.s)
    azAlt = visitInfo.boresightAzAlt
    region = footprintRegion(visit.requireWcs(), visit.bbox)
    record = {
        "instrument": instrument, "id": int(visitInfo.id), "name": str(visitInfo.id),
        "day_obs": day, "physical_filter": band, "exposure_time": float(exposureTime),
        "region": region, "timespan": timespan,
    }
    if azAlt is not None:
        record["azimuth"] = float(azAlt[0].deg)
        record["zenith_angle"] = 90.0 - float(azAlt[1].deg)
    registry.syncDimensionData("visit", record)
    registry.syncDimensionData(
        "visit_detector_region",
        {"instrument": instrument, "visit": int(visitInfo.id), "detector": 0, "region": region},
    )
    return int(visitInfo.id)


def _patchGrid(
    grid: Any, coaddFile: _File | None, models: list[_File], visits: list[_File]
) -> PatchGrid:
    """Return the patch's grid: ``grid``, else the coadd's, first model's or first visit's."""
    if grid is not None:
        if coaddFile is not None:
            raise DcrValueError("give the patch's grid by --coadd or by --grid, not both",
                                coadd=str(coaddFile.path), grid=str(grid))
        if isinstance(grid, PatchGrid):
            return grid
        if isinstance(grid, tuple):
            wcs, bbox = grid
        else:
            wcs, bbox = gridFromSpec(grid)
        checkCelestialWcs(wcs, "the grid")
        return PatchGrid(wcs, bbox)
    source = coaddFile or (models[0] if models else visits[0])
    wcs = source.requireWcs()
    checkCelestialWcs(wcs, source.path.name)
    return PatchGrid(wcs, source.bbox)


def _onGrid(visit: _File, grid: PatchGrid) -> bool:
    """Whether a visit is on the patch's pixel grid and shares pixels with its box."""
    try:
        offset = wcsGridOffset(visit.requireWcs(), grid.wcs, visit.bbox)
    except DcrMetadataError:
        raise
    except Exception:  # astropy raises many kinds for WCSs that cannot be compared
        return False
    return offset <= WCS_GRID_TOLERANCE and visit.bbox.overlaps(grid.bbox)


def _storedGrid(butler: Butler, grid: PatchGrid, run: str, patchId: dict[str, Any]) -> bool:
    """Return whether the run holds the patch's grid already; refuse another grid there."""
    try:
        existing = butler.find_dataset("dcrPatchGrid", collections=run, **patchId)
    except MissingCollectionError:
        return False
    if existing is None:
        return False
    stored = butler.get(existing)
    if stored.bbox != grid.bbox or not wcsGridOffset(stored.wcs, grid.wcs, grid.bbox) <= (
        WCS_GRID_TOLERANCE
    ):
        raise DcrValueError(
            f"run {run} already holds another grid of patch {patchId['patch']} of tract "
            f"{patchId['tract']} (box {stored.bbox}); ingest into another run or patch",
            run=run, bbox=grid.bbox,
        )
    return True


def _checkTransfer(transfer: str) -> str | None:
    if transfer not in TRANSFER_MODES:
        raise DcrValueError(
            f"unknown transfer mode; choose one of {', '.join(TRANSFER_MODES)}",
            transfer=transfer,
        )
    return transfer


def ingestFiles(
    butler: Butler,
    paths: Sequence[str | os.PathLike],
    run: str,
    coadd: str | os.PathLike | None = None,
    grid: Any = None,
    transfer: str = "copy",
    instrument: str = DEFAULT_INSTRUMENT,
    skymap: str = DEFAULT_SKYMAP,
    tract: int = 0,
    patch: int = 0,
) -> IngestResult:
    """Ingest visits, a coadd and DCR models into a repository made by ``dcrmodel butler init``.

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        A writeable butler of the repository.
    paths : sequence of str or os.PathLike
        Visit files, DCR model folders and model files (see the module docstring).
    run : str
        RUN collection that receives the datasets (created if needed).
    coadd : str or os.PathLike, optional
        A plain coadd: the grid of the patch, ingested as ``dcrInputCoadd``.
    grid : str, os.PathLike, tuple or PatchGrid, optional
        The grid of the patch instead of a coadd's: an exposure file whose IMAGE header
        gives the WCS and box, the text ``"RA,DEC,WIDTH,HEIGHT,SCALE"``
        (`dcrmodel.fits.gridFromSpec`), a pair ``(astropy.wcs.WCS, Box)`` or a `PatchGrid`.
    transfer : str, optional
        ``"copy"`` (default) copies the files into the repository; ``"direct"`` uses them
        in place (the repository records their absolute paths: do not move them);
        ``"symlink"``, ``"hardlink"``, ``"auto"`` as the butler defines them.
    instrument : str, optional
        Instrument of the visits (created with detector 0 and one physical filter per band
        if needed).
    skymap : str, optional
        Skymap of the grid.
    tract, patch : int, optional
        Tract and patch ID of the grid (patch ID = cell_y * 1000 + cell_x).

    Returns
    -------
    IngestResult
        The datasets registered, by dataset type.

    Raises
    ------
    DcrConfigError
        If the repository lacks dcrmodel's storage classes or dataset types.
    DcrMetadataError
        If a visit lacks visit metadata, or a file its band or WCS.
    DcrValueError
        For an unknown transfer mode, nothing to ingest, a folder without model files, a
        coadd and a grid given together, a malformed grid, or a run that holds another grid
        of the patch.
    FileNotFoundError
        If a file does not exist.
    """
    transferMode = _checkTransfer(transfer)
    checkRepository(
        butler, ["dcrWarp", "dcrVisitImage", "dcrInputCoadd", "dcrCoadd", "dcrPatchGrid"]
    )
    files = [_File(path) for path in _expandPaths(paths)]
    coaddFile = _File(Path(coadd)) if coadd is not None else None
    if not files and coaddFile is None:
        raise DcrValueError("nothing to ingest: give visit files, model folders or --coadd")
    models = [f for f in files if f.isModel]
    visits = [f for f in files if not f.isModel]
    patchGrid = _patchGrid(grid, coaddFile, models, visits)
    for visit in visits:
        visit.requireWcs()
    patchId = {"skymap": skymap, "tract": tract, "patch": patch}
    gridStored = _storedGrid(butler, patchGrid, run, patchId)
    _gridRecords(butler, patchGrid, skymap, tract, patch)
    butler.registry.registerRun(run)
    datasets: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    if coaddFile is not None:
        insertInstrument(butler, instrument, [coaddFile.band])
        datasets.setdefault("dcrInputCoadd", []).append(
            (coaddFile.path, {**patchId, "band": coaddFile.band})
        )
    for model in models:
        numSubfilters = int(model.info.metadata.get("DCR-NSUB", (model.subfilter or 0) + 1))
        insertInstrument(butler, instrument, [model.band])
        insertSubfilters(butler, model.band, max(numSubfilters, int(model.subfilter) + 1))
        datasets.setdefault("dcrCoadd", []).append(
            (model.path, {**patchId, "band": model.band, "subfilter": int(model.subfilter)})
        )
    for visit in visits:
        visitId = _visitRecords(butler, visit, instrument)
        if _onGrid(visit, patchGrid):
            datasets.setdefault("dcrWarp", []).append(
                (visit.path, {**patchId, "instrument": instrument, "visit": visitId})
            )
        datasets.setdefault("dcrVisitImage", []).append(
            (visit.path, {"instrument": instrument, "visit": visitId, "detector": 0})
        )
    result = IngestResult(refs={}, grid=dict(patchId))
    if not gridStored:
        result.refs["dcrPatchGrid"] = [butler.put(patchGrid, "dcrPatchGrid", run=run, **patchId)]
    for name, entries in datasets.items():
        datasetType = butler.get_dataset_type(name)
        fileDatasets = []
        for path, dataId in entries:
            expanded = butler.registry.expandDataId(dataId, dimensions=datasetType.dimensions)
            ref = DatasetRef(datasetType, expanded, run=run)
            fileDatasets.append(FileDataset(path=str(path.resolve()), refs=[ref]))
            result.refs.setdefault(name, []).append(ref)
        butler.ingest(*fileDatasets, transfer=transferMode)
    _log.info("ingested %s into %s", result.counts(), run)
    return result
