"""Destination grids for warps from files: the WCS and box of an exposure file.

`readGrid` reads the pixel grid (celestial WCS and parent box) of an exposure file in the
Rubin layout from the header of its IMAGE HDU alone, without reading pixels: a template,
coadd or patch file written by dcrmodel or the Rubin pipelines serves as the grid onto
which other exposures are warped (`dcrmodel.warp.exposure.warpExposure`). `gridFromSpec`
takes either such a file or the text ``"RA,DEC,WIDTH,HEIGHT,SCALE"`` of a tangent-plane
patch (`dcrmodel.warp.grid.parseGridSpec`), as the ``--grid`` option of ``dcrmodel warp``
does.
"""

from __future__ import annotations

import os
from pathlib import Path

from astropy.wcs import WCS

from .._validate import refuseFolders
from ..errors import DcrFitsError, DcrTypeError, DcrValueError
from ..image import Box
from ..warp import GRID_SPEC_FORMAT, parseGridSpec
from .exposure import _damageIsAnError, checkPlaneHdu, openFits
from .layout import wcsFromHeader

__all__ = ["readGrid", "gridFromSpec"]

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.bz2")


def readGrid(path: str | os.PathLike) -> tuple[WCS, Box]:
    """Return the celestial WCS and parent box of an exposure file's IMAGE HDU.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS file in the Rubin layout (an ``IMAGE`` HDU found by ``EXTNAME``); only
        headers are read.

    Returns
    -------
    wcs : astropy.wcs.WCS
        The celestial WCS of the IMAGE HDU, for 0-based PARENT pixel coordinates (as
        `dcrmodel.fits.exposure.readExposure` gives it).
    bbox : Box
        The parent box of the IMAGE HDU (origin from ``LTV1``/``LTV2`` or the alternate
        WCS ``A``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DcrFitsError
        If the file is not FITS, is truncated, has no IMAGE HDU, or its IMAGE HDU is not a
        2-d image or has no celestial WCS.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.fits import writeExposure
    >>> from dcrmodel.image import Exposure
    >>> from dcrmodel.warp import tangentPlaneGrid
    >>> wcs, box = tangentPlaneGrid(150.0, -30.0, 30, 20, 0.2)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "patch.fits"
    >>> writeExposure(Exposure.fromArrays(np.zeros((20, 30)), wcs=wcs), path)
    >>> gridWcs, gridBox = readGrid(path)
    >>> gridBox
    Box(minX=0, minY=0, width=30, height=20)
    """
    source = Path(os.fspath(path))
    hduList, indices = openFits(source)
    with hduList, _damageIsAnError(source):
        if "IMAGE" not in indices:
            raise DcrFitsError(
                f"{source.name} has no IMAGE HDU (EXTNAME); a grid file is an exposure "
                f"file in the Rubin layout",
                hdus=sorted(indices),
            )
        compressed = source.suffix.lower() in {".gz", ".bz2", ".zip"}
        fileSize = None if compressed else source.stat().st_size
        (ny, nx), (x0, y0) = checkPlaneHdu(hduList, indices["IMAGE"], "IMAGE", source, fileSize)
        where = f"{source.name}, HDU IMAGE"
        wcs = wcsFromHeader(hduList[indices["IMAGE"]].header, x0, y0, where)
    if wcs is None:
        raise DcrFitsError(
            f"{where} has no celestial WCS, so it cannot serve as a grid; give a file with "
            f"a WCS or {GRID_SPEC_FORMAT}",
        )
    return wcs, Box(x0, y0, nx, ny)


def gridFromSpec(spec: str | os.PathLike) -> tuple[WCS, Box]:
    """Return a grid (WCS and parent box) from a file or from ``"RA,DEC,WIDTH,HEIGHT,SCALE"``.

    Parameters
    ----------
    spec : str or os.PathLike
        The path of an exposure file (`readGrid`), or the text
        ``"RA,DEC,WIDTH,HEIGHT,SCALE"`` of a tangent-plane patch (degrees, degrees,
        pixels, pixels, arcsec per pixel; `dcrmodel.warp.grid.parseGridSpec`).

    Returns
    -------
    wcs : astropy.wcs.WCS
    bbox : Box

    Raises
    ------
    FileNotFoundError
        If ``spec`` names a FITS file (by its suffix) that does not exist.
    DcrFitsError
        As `readGrid`, for a file.
    DcrValueError
        If ``spec`` is neither an existing file nor a valid grid text, or is a folder.

    Examples
    --------
    >>> wcs, box = gridFromSpec("150.0,-30.0,200,100,0.2")
    >>> box
    Box(minX=0, minY=0, width=200, height=100)
    """
    if not isinstance(spec, str | os.PathLike):
        raise DcrTypeError(f"a grid is a file path or the text {GRID_SPEC_FORMAT}",
                           grid=type(spec).__name__)
    text = os.fspath(spec)
    refuseFolders([text], "a grid file (an exposure file or " + GRID_SPEC_FORMAT + ")")
    if Path(text).is_file():
        return readGrid(text)
    if text.lower().endswith(_FITS_SUFFIXES):
        raise FileNotFoundError(f"no such grid file: {text}")
    if "," not in text:
        raise DcrValueError(
            f"the grid {text!r} is neither an existing file nor {GRID_SPEC_FORMAT} "
            f"(degrees, degrees, pixels, pixels, arcsec/pixel)",
        )
    return parseGridSpec(text)
