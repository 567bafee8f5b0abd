"""Astropy's bundled Earth-orientation table, parsed once per machine instead of once per process.

Inside `dcrmodel.physics.site.offlineIers` astropy reads its bundled IERS-A and IERS-B files
(``astropy.utils.iers.IERS_Auto``, about 20,000 rows of fixed-width text) the first time a
process needs UT1-UTC or polar motion: about a second, the largest fixed cost of a
``dcrmodel template`` or ``assemble`` after the imports. The parsed table is kept as a
pickle in dcrmodel's cache folder and put in astropy's place for it
(``IERS_Auto.iers_table``, where astropy memoizes the table it reads) by later processes:
the same table, value for value, in a few hundredths of a second.

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
import logging
import os
import pickle
from pathlib import Path

import astropy
from astropy.utils import iers

from ..atomic import atomicPath
from ..errors import DcrOutputError

__all__ = ["CACHE_ENV", "earthOrientationCachePath", "loadCachedTable", "saveCachedTable"]

# loadCachedTable and saveCachedTable are used by `dcrmodel.physics.site.offlineIers` only.

_log = logging.getLogger(__name__)

#: Environment variable naming dcrmodel's cache folder (empty: no cache).
CACHE_ENV = "DCRMODEL_CACHE_DIR"

#: Bumped when what is stored changes.
_FORMAT = "1"


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
    parts = [_FORMAT, astropy.__version__, str(pickle.HIGHEST_PROTOCOL)]
    try:
        for name in (iers.IERS_A_FILE, iers.IERS_B_FILE):
            stat = os.stat(name)
            parts += [os.fspath(name), str(stat.st_size), str(stat.st_mtime_ns)]
    except OSError:
        return None
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    return Path(folder) / f"earth-orientation-{key}.pickle"


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
        with open(path, "rb") as stream:
            table = pickle.load(stream)
    except FileNotFoundError:
        return True
    except Exception as error:  # a damaged or foreign file: read the bundled files again
        _log.debug("cannot use the Earth-orientation cache %s: %s", path, error)
        return True
    if type(table) is not iers.IERS_Auto:
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
        with atomicPath(path) as tmp, open(tmp, "wb") as stream:
            pickle.dump(table, stream, protocol=pickle.HIGHEST_PROTOCOL)
    except (OSError, DcrOutputError) as error:
        _log.debug("cannot write the Earth-orientation cache %s: %s", path, error)
