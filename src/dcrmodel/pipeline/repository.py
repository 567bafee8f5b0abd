"""A data butler repository that knows dcrmodel: creation, dataset types, subfilters, checks.

`initRepository` makes a repository whose configuration declares dcrmodel's storage
classes and formatters (`dcrmodel.pipeline.storage`), registers the dataset types of
`DATASET_TYPES` and inserts the ``subfilter`` dimension records of every band.
`checkRepository` and `checkSubfilters` turn what a repository lacks into one clear
`DcrConfigError` before any work, naming the command that fixes it.

Dataset types (the names a pipeline's connections use):

========================  ==============================================  ======================
name                      dimensions                                      holds
========================  ==============================================  ======================
``dcrWarp``               instrument, visit, skymap, tract, patch         a visit for a patch
``dcrPatchGrid``          skymap, tract, patch                            a patch's grid (WCS, box)
``dcrInputCoadd``         skymap, tract, patch, band                      a plain coadd (optional)
``dcrCoadd``              skymap, tract, patch, band, subfilter           the DCR model
``dcrStackedCoadd``       skymap, tract, patch, band                      sum of the subfilters
``dcrVisitImage``         instrument, visit, detector                     a science exposure
``dcrTemplate``           instrument, visit, detector                     its DCR-matched template
========================  ==============================================  ======================

A ``dcrWarp`` is a visit on the patch's pixel grid, or, for a visit on its own detector
grid, the part of the visit the patch needs, on the visit's grid: the assembly warps it
onto the patch one subregion at a time (`dcrmodel.pipeline.warptask`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from lsst.daf.butler import Butler, ButlerConfig, DatasetType, MissingDatasetTypeError

from ..errors import DcrConfigError
from ..image import RUBIN_BANDS
from .storage import (
    EXPOSURE_STORAGE_CLASS,
    GRID_STORAGE_CLASS,
    STORAGE_CLASSES,
    SUBFILTER_STORAGE_CLASS,
    butlerConfig,
)

__all__ = [
    "DATASET_TYPES",
    "DEFAULT_NUM_SUBFILTERS",
    "DEFAULT_INSTRUMENT",
    "insertInstrument",
    "initRepository",
    "openRepository",
    "registerDatasetTypes",
    "insertSubfilters",
    "subfilterCount",
    "checkRepository",
    "checkSubfilters",
]

_log = logging.getLogger(__name__)

#: Subfilter records ``dcrmodel butler init`` inserts per band by default.
DEFAULT_NUM_SUBFILTERS = 3

#: Instrument whose physical filters (one per band, named as the band) make the bands known.
DEFAULT_INSTRUMENT = "DcrModel"

#: Largest visit ID plus one of the instrument ``dcrmodel butler init`` registers.
VISIT_MAX = 2**31 - 1

#: dcrmodel's dataset types: name -> (dimensions, storage class).
DATASET_TYPES: dict[str, tuple[tuple[str, ...], str]] = {
    "dcrWarp": (("instrument", "visit", "skymap", "tract", "patch"), EXPOSURE_STORAGE_CLASS),
    "dcrPatchGrid": (("skymap", "tract", "patch"), GRID_STORAGE_CLASS),
    "dcrInputCoadd": (("skymap", "tract", "patch", "band"), EXPOSURE_STORAGE_CLASS),
    "dcrCoadd": (("skymap", "tract", "patch", "band", "subfilter"), SUBFILTER_STORAGE_CLASS),
    "dcrStackedCoadd": (("skymap", "tract", "patch", "band"), EXPOSURE_STORAGE_CLASS),
    "dcrVisitImage": (("instrument", "visit", "detector"), EXPOSURE_STORAGE_CLASS),
    "dcrTemplate": (("instrument", "visit", "detector"), EXPOSURE_STORAGE_CLASS),
}


def registerDatasetTypes(butler: Butler, names: Iterable[str] | None = None) -> None:
    """Register dcrmodel's dataset types (those already registered are left as they are).

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        A writeable butler.
    names : iterable of str, optional
        Which of `DATASET_TYPES`; all by default.

    Raises
    ------
    DcrConfigError
        If a dataset type of that name is registered with other dimensions or another
        storage class.
    """
    universe = butler.dimensions
    for name in names if names is not None else DATASET_TYPES:
        dimensions, storageClass = DATASET_TYPES[name]
        datasetType = DatasetType(name, dimensions, storageClass, universe=universe)
        try:
            butler.registry.registerDatasetType(datasetType)
        except Exception as error:  # ConflictingDefinitionError and friends
            raise DcrConfigError(
                f"the repository already has a dataset type {name} that is not dcrmodel's "
                f"({error}); use another repository",
                datasetType=name,
            ) from None


def insertInstrument(butler: Butler, instrument: str, bands: Iterable[str]) -> None:
    """Make sure an instrument exists, with one physical filter per band named as the band.

    A band is known to a repository only through a physical filter that maps to it, so the
    bands of dcrmodel's files come with an instrument. The instrument has one detector
    (0): each visit file is one detector's image.

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        A writeable butler.
    instrument : str
        Instrument name.
    bands : iterable of str
        Band names; each becomes a physical filter of the same name.
    """
    registry = butler.registry
    registry.syncDimensionData(
        "instrument",
        {"name": instrument, "visit_max": VISIT_MAX, "exposure_max": VISIT_MAX,
         "detector_max": 1, "visit_system": 0},
    )
    registry.syncDimensionData(
        "detector", {"instrument": instrument, "id": 0, "full_name": "0"}
    )
    for band in bands:
        registry.syncDimensionData(
            "physical_filter", {"instrument": instrument, "name": band, "band": band}
        )


def insertSubfilters(butler: Butler, band: str, numSubfilters: int) -> None:
    """Make sure the subfilter records ``0 .. numSubfilters - 1`` exist.

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        A writeable butler.
    band : str
        Band name (for example ``"g"``).
    numSubfilters : int
        Number of subfilters; records already present are kept.
    """
    registry = butler.registry
    for k in range(numSubfilters):
        registry.syncDimensionData("subfilter", {"band": band, "id": k})


def subfilterCount(butler: Butler, band: str) -> int:
    """Return the number of ``subfilter`` records of a band (0 when it has none)."""
    records = butler.query_dimension_records("subfilter", band=band, explain=False)
    return len(records)


def openRepository(root: str | os.PathLike, writeable: bool = False) -> Butler:
    """Return a butler of an existing repository.

    Parameters
    ----------
    root : str or os.PathLike
        The repository's folder (or URI, or butler.yaml).
    writeable : bool, optional
        Whether the butler may write.

    Raises
    ------
    FileNotFoundError
        If there is no repository there.
    """
    path = os.fspath(root)
    if "://" not in path and not os.path.exists(path):
        raise FileNotFoundError(
            f"no repository at {path}; create one with 'dcrmodel butler init {path}'"
        )
    return Butler.from_config(path, writeable=writeable)


def initRepository(
    root: str | os.PathLike,
    bands: Iterable[str] = tuple(RUBIN_BANDS),
    numSubfilters: int = DEFAULT_NUM_SUBFILTERS,
) -> Butler:
    """Create a repository that knows dcrmodel's storage classes and dataset types.

    Parameters
    ----------
    root : str or os.PathLike
        Folder (or URI) of the new repository; it must not hold one already.
    bands : iterable of str, optional
        Bands whose subfilter records are inserted (default: the Rubin bands ugrizy); each
        is a physical filter of the instrument `DEFAULT_INSTRUMENT` (with detector 0).
    numSubfilters : int, optional
        Subfilter records per band (default 3).

    Returns
    -------
    butler : lsst.daf.butler.Butler
        A writeable butler of the new repository.

    Raises
    ------
    DcrConfigError
        If ``root`` already holds a repository, or ``numSubfilters`` < 1.
    """
    if not isinstance(numSubfilters, int) or numSubfilters < 1:
        raise DcrConfigError("numSubfilters must be an integer >= 1", numSubfilters=numSubfilters)
    path = os.fspath(root)
    if os.path.exists(os.path.join(path, "butler.yaml")):
        raise DcrConfigError(
            "a repository already exists there; give a new folder", repository=path
        )
    Butler.makeRepo(path, config=butlerConfig())
    butler = Butler.from_config(path, writeable=True)
    registerDatasetTypes(butler)
    bands = list(bands)
    insertInstrument(butler, DEFAULT_INSTRUMENT, bands)
    for band in bands:
        insertSubfilters(butler, band, numSubfilters)
    _log.info("created the repository %s", path)
    return butler


def _knowsStorageClasses(butler: Butler) -> list[str]:
    """Return the names of dcrmodel's storage classes the repository has no formatter for.

    The formatters are those of the repository's configuration, read with the public
    `lsst.daf.butler.ButlerConfig` from the folder of each of the butler's datastores
    (`lsst.daf.butler.Butler.get_datastore_roots`); where no configuration is found there
    (a datastore elsewhere than its repository, a client/server butler) nothing is checked.
    """
    missing: set[str] = set()
    found = False
    try:
        roots = butler.get_datastore_roots()
    except (NotImplementedError, AttributeError):
        return []
    for root in roots.values():
        if root is None:
            continue
        try:
            config = ButlerConfig(str(root))
        except Exception:  # no butler.yaml there, or not readable: nothing to check
            continue
        found = True
        try:
            formatters = config["datastore", "formatters"]
        except KeyError:
            formatters = {}
        missing.update(name for name in STORAGE_CLASSES if name not in formatters)
    return sorted(missing, key=STORAGE_CLASSES.index) if found else []


def checkRepository(butler: Butler, names: Iterable[str] | None = None) -> None:
    """Check a repository has dcrmodel's formatters and dataset types, before any work.

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        The repository's butler.
    names : iterable of str, optional
        The dataset types that must be registered (default: none).

    Raises
    ------
    DcrConfigError
        If the repository's configuration lacks dcrmodel's formatters (a repository not
        made by ``dcrmodel butler init``), or a dataset type is not registered, or is
        registered with other dimensions or storage class.
    """
    missing = _knowsStorageClasses(butler)
    if missing:
        raise DcrConfigError(
            f"the repository does not know dcrmodel's storage classes ({', '.join(missing)}): "
            "create it with 'dcrmodel butler init REPO', or add the entries of "
            "dcrmodel/pipeline/resources/butler.yaml to its butler.yaml",
            missing=missing,
        )
    for name in names or ():
        try:
            datasetType = butler.get_dataset_type(name)
        except MissingDatasetTypeError:
            raise DcrConfigError(
                f"the repository has no dataset type {name}; register dcrmodel's dataset "
                f"types with 'dcrmodel butler init' (a new repository) or "
                f"dcrmodel.pipeline.registerDatasetTypes(butler)",
                datasetType=name,
            ) from None
        dimensions, storageClass = DATASET_TYPES.get(name, (None, None))
        if dimensions is not None and (
            datasetType.dimensions != butler.dimensions.conform(dimensions)
            or datasetType.storageClass_name != storageClass
        ):
            raise DcrConfigError(
                f"the repository's dataset type {name} has dimensions "
                f"{sorted(datasetType.dimensions.required)} and storage class "
                f"{datasetType.storageClass_name}, not dcrmodel's {sorted(dimensions)} and "
                f"{storageClass}",
                datasetType=name,
            )


def checkSubfilters(
    butler: Butler, band: str, numSubfilters: int | None = None, what: str = ""
) -> int:
    """Check a band has subfilter records (``numSubfilters`` of them, when given).

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        The repository's butler.
    band : str
        Band name.
    numSubfilters : int, optional
        The number the band must have.
    what : str, optional
        What needs them, for the message.

    Returns
    -------
    count : int
        The band's number of subfilter records.

    Raises
    ------
    DcrConfigError
        If the band has none, or not ``numSubfilters``.
    """
    count = subfilterCount(butler, band)
    need = f" ({what})" if what else ""
    if count == 0:
        raise DcrConfigError(
            f"band {band} has no subfilter records in the repository{need}; insert them with "
            f"'dcrmodel butler init' or dcrmodel.pipeline.insertSubfilters(butler, "
            f"{band!r}, N)",
            band=band,
        )
    if numSubfilters is not None and count != numSubfilters:
        raise DcrConfigError(
            f"band {band} has {count} subfilter records in the repository but "
            f"{numSubfilters} are needed{need}; a model's subfilters are the band's "
            "subfilter records, so use a repository (or band) with exactly that many",
            band=band,
            records=count,
            numSubfilters=numSubfilters,
        )
    return count

