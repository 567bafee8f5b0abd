"""A small simulated field in a data butler repository, for the tests of dcrmodel.pipeline.

Import only after ``pytest.importorskip("lsst.pipe.base")``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dcrmodel.cli.main import main
from dcrmodel.pipeline import ingestFiles, initRepository, registerPipelineDatasetTypes
from dcrmodel.simulate import loadManifest

__all__ = ["Field", "simulateField", "makeRepository", "PATCH"]

#: The data ID of the patch the field is ingested as.
PATCH = {"skymap": "dcrmodel", "tract": 0, "patch": 0, "band": "g"}


@dataclasses.dataclass
class Field:
    """Paths of a simulated field: training visits, test visits, the coadd."""

    root: Path
    training: list[Path]
    test: list[Path]
    coadd: Path


def simulateField(root: Path, size: int = 64, visits: int = 8,
                  detectorFrames: bool = False) -> Field:
    """Simulate a small g-band field (``dcrmodel simulate``) under ``root / 'sim'``.

    With ``detectorFrames`` every visit is on its own detector grid of ``size`` pixels and
    the coadd on the patch's grid (1.5 times wider).
    """
    extra = ["--detector-frames"] if detectorFrames else []
    assert main(["simulate", "--out", str(root / "sim"), "--size", str(size), "--visits",
                 str(visits), "--no-progress", "-q", *extra]) == 0
    manifest = loadManifest(root / "sim")
    training = sorted(manifest.path(v["file"]) for v in manifest.visits()
                      if v["role"] == "training")
    test = sorted(manifest.path(v["file"]) for v in manifest.visits() if v["role"] == "test")
    return Field(root, training, test, Path(manifest.coaddPath))


def makeRepository(path: Path, field: Field, run: str = "in", transfer: str = "direct"):
    """Create a repository, register the pipeline's dataset types and ingest the field.

    The training visits become warps of patch 0 (with the coadd); every visit, training
    and test, is a ``dcrVisitImage``.
    """
    butler = initRepository(path)
    registerPipelineDatasetTypes(butler)
    ingestFiles(butler, field.training, run, coadd=field.coadd, transfer=transfer)
    ingestFiles(butler, field.test, run + "-test", coadd=field.coadd, transfer=transfer)
    return butler
