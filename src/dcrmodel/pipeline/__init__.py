"""Running dcrmodel inside the Rubin middleware (data butler, PipelineTasks, BPS).

Needs the optional extra ``dcrmodel[rubin]`` (``lsst-daf-butler``, ``lsst-pipe-base``,
``lsst-ctrl-mpexec``, ``lsst-ctrl-bps``); the rest of dcrmodel never imports this package.

- `dcrmodel.pipeline.storage`: storage classes and formatters of dcrmodel's exposures and
  DCR model subfilter images.
- `dcrmodel.pipeline.repository`: a repository that knows them (``dcrmodel butler init``),
  dcrmodel's dataset types and subfilter records, and checks with clear errors.
- `dcrmodel.pipeline.ingest`: visits, coadds and models into a repository with their
  dimension records (``dcrmodel butler ingest``).
- `dcrmodel.pipeline.configfields`: the ``pex_config`` fields of `dcrmodel.DcrAssembleConfig`.
- `dcrmodel.pipeline.handles`: `HandleReader`, a dataset read one region at a time
  through its butler handle.
- `dcrmodel.pipeline.warptask`: `DcrMakeWarpTask`, each visit's pixels for each patch it
  overlaps.
- `dcrmodel.pipeline.tasks`: `DcrAssembleCoaddTask`, `DcrTemplateTask` and the pipeline
  YAML (`PIPELINE_PATH`, ``dcrmodel butler pipeline``).
- `dcrmodel.pipeline.bps`: a thread-pool Parsl site for BPS on this machine
  (``resources/bps-local.yaml``, `BPS_SITE_PATH`); imported on its own, as BPS does.
"""

from .configfields import (
    assembleFields,
    toAssembleConfig,
)
from .handles import (
    VISIT_BOX_KEYS,
    HandleReader,
    visitBox,
)
from .ingest import (
    DEFAULT_SKYMAP,
    IngestResult,
    footprintRegion,
    ingestFiles,
)
from .repository import (
    DATASET_TYPES,
    DEFAULT_INSTRUMENT,
    DEFAULT_NUM_SUBFILTERS,
    checkRepository,
    checkSubfilters,
    initRepository,
    insertInstrument,
    insertSubfilters,
    openRepository,
    registerDatasetTypes,
    subfilterCount,
)
from .storage import (
    BUTLER_CONFIG,
    DCR_KEYS,
    EXPOSURE_STORAGE_CLASS,
    GRID_STORAGE_CLASS,
    STORAGE_CLASSES,
    SUBFILTER_STORAGE_CLASS,
    ExposureFormatter,
    PatchGrid,
    PatchGridFormatter,
    SubfilterExposureFormatter,
    butlerConfig,
    registerStorageClasses,
    subfilterExposures,
    subfilterHeader,
)
from .tasks import (
    PIPELINE_PATH,
    DcrAssembleCoaddConfig,
    DcrAssembleCoaddConnections,
    DcrAssembleCoaddTask,
    DcrTemplateConfig,
    DcrTemplateConnections,
    DcrTemplateTask,
    registerPipelineDatasetTypes,
)
from .warptask import (
    SOURCE_MARGIN,
    DcrMakeWarpConfig,
    DcrMakeWarpConnections,
    DcrMakeWarpTask,
    warpForPatch,
)

__all__ = [
    "EXPOSURE_STORAGE_CLASS",
    "SUBFILTER_STORAGE_CLASS",
    "GRID_STORAGE_CLASS",
    "STORAGE_CLASSES",
    "DCR_KEYS",
    "BUTLER_CONFIG",
    "butlerConfig",
    "registerStorageClasses",
    "subfilterHeader",
    "subfilterExposures",
    "ExposureFormatter",
    "SubfilterExposureFormatter",
    "PatchGrid",
    "PatchGridFormatter",
    "VISIT_BOX_KEYS",
    "HandleReader",
    "visitBox",
    "DATASET_TYPES",
    "DEFAULT_NUM_SUBFILTERS",
    "DEFAULT_INSTRUMENT",
    "insertInstrument",
    "initRepository",
    "registerDatasetTypes",
    "insertSubfilters",
    "subfilterCount",
    "checkRepository",
    "checkSubfilters",
    "openRepository",
    "DEFAULT_SKYMAP",
    "IngestResult",
    "footprintRegion",
    "ingestFiles",
    "assembleFields",
    "toAssembleConfig",
    "PIPELINE_PATH",
    "DcrAssembleCoaddConnections",
    "DcrAssembleCoaddConfig",
    "DcrAssembleCoaddTask",
    "DcrTemplateConnections",
    "DcrTemplateConfig",
    "DcrTemplateTask",
    "registerPipelineDatasetTypes",
    "SOURCE_MARGIN",
    "DcrMakeWarpConnections",
    "DcrMakeWarpConfig",
    "DcrMakeWarpTask",
    "warpForPatch",
]
