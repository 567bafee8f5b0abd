"""Astropy's bundled Earth-orientation table, parsed once per machine instead of once per process.

Inside `dcrmodel.physics.site.offlineIers` astropy reads its bundled IERS-A and IERS-B files
(``astropy.utils.iers.IERS_Auto``, about 20,000 rows of fixed-width text) the first time a
process needs UT1-UTC or polar motion: about a second, the largest fixed cost of a
``dcrmodel template`` or ``assemble`` after the imports. The parsed table is kept in
dcrmodel's cache folder and put in astropy's place for it (``IERS_Auto.iers_table``, where
astropy memoizes the table it reads) by later processes: the same table, value for value,
in about 7 ms. It is stored as plain arrays (a numpy ``.npz`` file read with
``allow_pickle=False``: one record array of every column's values and masks, and the
columns' names, kinds and units and the table's metadata as JSON text), never as a pickle:
a file in the cache folder holds numbers and text only, and reading it runs no code (a
pickle would take 3 ms).

The cache is keyed by the astropy version and the bundled files' paths, sizes and
modification times, so a new astropy or astropy-iers-data makes a new one. It is used only
where astropy itself would read the bundled files: downloads off (as `offlineIers` has
them), no table loaded yet, and no ``finals2000A.all`` in the working directory (which
astropy would read instead). The folder is ``$DCRMODEL_CACHE_DIR``, else
``$XDG_CACHE_HOME/dcrmodel``, else ``~/.cache/dcrmodel``; an empty ``DCRMODEL_CACHE_DIR``
switches the cache off. A cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import astropy
import astropy.units as u
import numpy as np
from astropy.table import Column, MaskedColumn
from astropy.utils import iers

from ..atomic import atomicPath
from ..errors import DcrOutputError

__all__ = ["CACHE_ENV", "earthOrientationCachePath", "loadCachedTable", "saveCachedTable"]

# loadCachedTable and saveCachedTable are used by `dcrmodel.physics.site.offlineIers` only.

_log = logging.getLogger(__name__)

#: Environment variable naming dcrmodel's cache folder (empty: no cache).
CACHE_ENV = "DCRMODEL_CACHE_DIR"

#: Bumped when what is stored changes.
_FORMAT = "2"

#: How a column is stored and rebuilt.
_KINDS = {Column: "column", MaskedColumn: "masked", u.Quantity: "quantity"}


def earthOrientationCachePath() -> Path | None:
    """Return the file of the cached table for this astropy and its bundled files.

    Returns
    -------
    path : `pathlib.Path` or None
        None when the cache is off, or astropy would not read its bundled files.
    """
    folder = os.environ.get(CACHE_ENV)
    if folder is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        folder = os.path.join(base, "dcrmodel")
    if not folder or os.path.exists("finals2000A.all"):
        return None
    parts = [_FORMAT, astropy.__version__, np.__version__]
    try:
        for name in (iers.IERS_A_FILE, iers.IERS_B_FILE):
            stat = os.stat(name)
            parts += [os.fspath(name), str(stat.st_size), str(stat.st_mtime_ns)]
    except OSError:
        return None
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    return Path(folder) / f"earth-orientation-{key}.npz"


def loadCachedTable() -> bool:
    """Put the cached table in astropy's place if none is loaded; downloads must be off.

    Returns
    -------
    missing : bool
        True when astropy will read its bundled files (no usable cache): call
        `saveCachedTable` once it has.
    """
    if iers.conf.auto_download or iers.IERS_Auto.iers_table is not None:
        return False
    path = earthOrientationCachePath()
    if path is None:
        return False
    try:
        table = _readTable(path)
    except FileNotFoundError:
        return True
    except Exception as error:  # a damaged or foreign file: read the bundled files again
        _log.debug("cannot use the Earth-orientation cache %s: %s", path, error)
        return True
    iers.IERS_Auto.iers_table = table
    return False


def saveCachedTable() -> None:
    """Keep the table astropy has read from its bundled files in the cache."""
    table = iers.IERS_Auto.iers_table
    path = earthOrientationCachePath()
    if table is None or path is None or iers.conf.auto_download:
        return
    if os.fspath(table.meta.get("data_path", "")) != os.fspath(iers.IERS_A_FILE):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = _tableArrays(table)
        with atomicPath(path) as tmp, open(tmp, "wb") as stream:
            np.savez(stream, **arrays)
    except (OSError, DcrOutputError, TypeError, ValueError) as error:
        _log.debug("cannot write the Earth-orientation cache %s: %s", path, error)


def _tableArrays(table: iers.IERS_Auto) -> dict[str, np.ndarray]:
    """Return the table as plain arrays: its records and its layout.

    ``records`` holds one record per row, with every column's value and mask; ``layout``
    is JSON text of each column's name, kind and unit, and of the table's metadata.

    Raises
    ------
    TypeError
        For a column or metadata value of a kind that is not stored (nothing is written).
    """
    fields: list[tuple[str, np.dtype]] = []
    values: dict[str, np.ndarray] = {}
    layout = []
    for index, name in enumerate(table.colnames):
        column = table[name]
        kind = _KINDS.get(type(column))
        if kind is None:
            raise TypeError(f"column {name} is a {type(column).__name__}")
        data = column.value if kind == "quantity" else np.asarray(column.data)
        if data.dtype.kind not in "biufU" or data.ndim != 1:
            raise TypeError(f"column {name} holds {data.dtype} of {data.ndim} dimensions")
        fields.append((f"c{index}", data.dtype))
        values[f"c{index}"] = data
        if kind == "masked":
            fields.append((f"m{index}", np.dtype(bool)))
            values[f"m{index}"] = np.asarray(column.mask, dtype=bool)
        unit = column.unit.to_string() if column.unit is not None else None
        layout.append({"name": name, "kind": kind, "unit": unit})
    records = np.empty(len(table), dtype=fields)
    for field, data in values.items():
        records[field] = data
    meta = {key: (value.item() if isinstance(value, np.generic) else value)
            for key, value in table.meta.items()}
    return {"records": records,
            "layout": np.array(json.dumps({"columns": layout, "meta": meta}))}


def _readTable(path: Path) -> iers.IERS_Auto:
    """Rebuild the table that `_tableArrays` stored in ``path`` (no pickled objects)."""
    with np.load(path, allow_pickle=False) as stored:
        layout: dict[str, Any] = json.loads(str(stored["layout"]))
        records = stored["records"]
    columns: list[Any] = []
    for index, column in enumerate(layout["columns"]):
        data = np.ascontiguousarray(records[f"c{index}"])
        unit = None if column["unit"] is None else u.Unit(column["unit"])
        if column["kind"] == "quantity":
            columns.append(u.Quantity(data, unit, copy=False))
        elif column["kind"] == "masked":
            columns.append(MaskedColumn(data, mask=records[f"m{index}"].copy(), unit=unit))
        else:
            columns.append(Column(data, unit=unit))
    names = [column["name"] for column in layout["columns"]]
    return iers.IERS_Auto(columns, names=names, meta=layout["meta"], copy=False)
