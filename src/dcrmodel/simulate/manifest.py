"""A simulation's manifest: what `dcrmodel.simulate.field.runSimulation` wrote, read back.

The manifest (``manifest.json`` in the simulation folder) describes the configuration,
the sources and transients, every visit and the files written. `loadManifest` reads it
and checks the files it names; `SimulationManifest` gives its entries and their absolute
paths. `checkOutputDirectory` decides whether a folder may receive a new simulation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..atomic import guardOutputFolder
from ..errors import DcrValueError
from .config import ROLES

__all__ = ["MANIFEST_NAME", "SimulationManifest", "loadManifest"]

#: File name of the manifest in an output folder.
MANIFEST_NAME = "manifest.json"

#: ``format`` entry that marks a dcrmodel simulation manifest.
MANIFEST_FORMAT = "dcrmodel-simulation"
#: ``formatVersion`` entry of the manifests written.
MANIFEST_VERSION = 1


def _readOwnManifest(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return None
    return data


def checkOutputDirectory(path: Path, overwrite: bool) -> None:
    """Refuse a folder that holds anything but an earlier simulation (that only with overwrite).

    Parameters
    ----------
    path : pathlib.Path
        The output folder (it may not exist yet).
    overwrite : bool
        Whether an earlier simulation in it may be replaced.

    Raises
    ------
    DcrOutputError
        If ``path`` is a file, holds files an earlier simulation did not write, or holds
        an earlier simulation and ``overwrite`` is False.
    """

    def foreignFiles(folder: Path) -> list[str]:
        earlier = _readOwnManifest(folder / MANIFEST_NAME) or {}
        listed = set(earlier.get("files", [])) | {MANIFEST_NAME}
        present = {
            p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }
        return sorted(present - listed)

    guardOutputFolder(
        path, overwrite, "simulation",
        lambda folder: _readOwnManifest(folder / MANIFEST_NAME) is not None, foreignFiles,
    )


class SimulationManifest(Mapping[str, Any]):
    """A simulation's manifest with the folder it describes (see `loadManifest`).

    Behaves as the manifest's dictionary, plus helpers that return absolute paths.

    Parameters
    ----------
    data : dict
        The manifest.
    directory : pathlib.Path
        The folder holding it.
    """

    def __init__(self, data: dict[str, Any], directory: Path) -> None:
        self._data = data
        self._directory = directory

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def directory(self) -> Path:
        """The simulation folder."""
        return self._directory

    def path(self, relative: str) -> Path:
        """Absolute path of a file named in the manifest."""
        return self._directory / relative

    def visits(self, role: str | None = None) -> list[dict[str, Any]]:
        """Visit entries, optionally of one role (``"training"`` or ``"test"``)."""
        if role is not None and role not in ROLES:
            raise DcrValueError(f"role must be one of {', '.join(ROLES)}", role=role)
        return [v for v in self._data["visits"] if role is None or v["role"] == role]

    def visit(self, visitId: int) -> dict[str, Any]:
        """Return the entry of one visit."""
        for v in self._data["visits"]:
            if v["id"] == visitId:
                return v
        raise DcrValueError("no such visit in the manifest", visit=visitId)

    def transients(self, visitId: int | None = None) -> list[dict[str, Any]]:
        """Injected transients, optionally of one visit."""
        return [t for t in self._data["transients"] if visitId is None or t["visit"] == visitId]

    @property
    def coaddPath(self) -> Path:
        """Path of the plain coadd."""
        return self.path(self._data["coadd"]["file"])

    @property
    def truthModelPath(self) -> Path:
        """Folder of the true subfilter model."""
        return self.path(self._data["truthModel"]["directory"])

    def __repr__(self) -> str:
        return (
            f"SimulationManifest({str(self._directory)!r}, {len(self._data['visits'])} visits, "
            f"seed {self._data['seed']})"
        )


def loadManifest(path: str | os.PathLike) -> SimulationManifest:
    """Read a simulation manifest and check that the files it names exist.

    Parameters
    ----------
    path : str or os.PathLike
        The simulation folder or its ``manifest.json``.

    Returns
    -------
    SimulationManifest

    Raises
    ------
    DcrValueError
        If there is no manifest, it is not a simulation manifest, or it names files that
        do not exist.
    """
    p = Path(os.fspath(path))
    manifestPath = p / MANIFEST_NAME if p.is_dir() else p
    try:
        with open(manifestPath, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        raise DcrValueError(
            f"no simulation manifest at {manifestPath}; run dcrmodel simulate first",
            path=str(manifestPath),
        ) from None
    except (OSError, ValueError) as error:
        raise DcrValueError(
            f"cannot read the manifest {manifestPath}: {error}", path=str(manifestPath)
        ) from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise DcrValueError(
            f"{manifestPath} is not a dcrmodel simulation manifest", path=str(manifestPath)
        )
    directory = manifestPath.parent
    missing = [f for f in data.get("files", []) if not (directory / f).is_file()]
    if missing:
        raise DcrValueError(
            f"the manifest names {len(missing)} file(s) that do not exist in {directory}, "
            f"for example {missing[0]}; the simulation is incomplete or was moved piecemeal, "
            "run dcrmodel simulate again",
            missing=missing[:5],
        )
    return SimulationManifest(data, directory)
