"""Read and write exposures and DCR models as FITS files in the Rubin "Exposure" layout.

An exposure file holds (primer, "The on-disk format"):

- HDU 0: a header only, with the visit metadata (``BORE-RA``, ``BORE-DEC``, ``BORE-AZ``,
  ``BORE-ALT``, ``BORE-AIRMASS``, ``BORE-ROTANG``, ``ROTTYPE``, ``OBS-LONG``, ``OBS-LAT``,
  ``OBS-ELEV``, ``AIRTEMP``, ``AIRPRESS``, ``HUMIDITY``, ``DATE-AVG``, ``TIMESYS``,
  ``MJD-AVG-UT1``, ``AVG-ERA``, ``EXPTIME``, ``IDNUM``), the band (``FILTER``, and
  dcrmodel's optional ``FILT-EFF``/``FILT-BW`` in nm), the photometric calibration
  (``PHOTCALIB``, nJy per count) and any further keys of ``Exposure.metadata``.
- HDUs ``IMAGE`` (float32), ``MASK`` (int32, one ``MP_<PLANE> = bit`` key per mask plane)
  and ``VARIANCE`` (float32). Each carries the celestial WCS written for its own (local)
  FITS pixel grid, so that any FITS viewer shows the right sky coordinates, the parent
  origin as ``LTV1 = -x0``, ``LTV2 = -y0``, and the alternate linear WCS ``A``
  (``WCSNAMEA = 'PHYSICAL'``) that maps FITS pixels to 0-based parent pixels.
- An optional HDU ``PSF``: the PSF image at the band's effective wavelength, with
  ``PSF-FWHM`` (arcsec) and ``PSF-ALPH`` (exponent of the PSF size with wavelength).
- Anything else (the binary tables that the Rubin pipelines append) is skipped.

In memory ``Exposure.wcs`` maps PARENT 0-based pixels ``(x, y)`` to ICRS; on disk the WCS
is that of the local grid: FITS pixel ``p`` (1-based) of an image whose parent origin is
``x0`` is parent pixel ``x0 + p - 1``, so ``CRPIX(disk) = CRPIX(memory) - x0``.

This module reads the layout (`readExposure`, `readExposureBBox`, `ExposureFile`). The HDU 0
keys are converted by `dcrmodel.fits.headers`, whose public names this module hands on; the
plane HDUs' WCS, origin and mask-plane keys by `dcrmodel.fits.layout`, the PSF HDU by
`dcrmodel.fits.psfhdu`; files are written by `dcrmodel.fits.writing`, whose `writeExposure`
this module hands on too. A DCR model is a directory of one exposure file per subfilter,
written and read by `dcrmodel.fits.model` (`writeDcrModel`, `readDcrModel`,
`DcrModelDataRef`).

Every write is atomic (a temporary file or directory beside the target, renamed into
place), and every read checks the layout before it reads pixels, raising `DcrFitsError`
with the name of the HDU or key at fault.

Files written by other software are read as long as their meaning is unambiguous, with a
`DcrWarning` for what had to be completed: a missing ``BORE-AZ``/``BORE-ALT``,
``BORE-AIRMASS`` or ``AVG-ERA`` is computed from the pointing, the date and the site; a
missing ``DATE-AVG`` is the start (``DATE-BEG``/``DATE-OBS``) plus half of ``EXPTIME``; a
MASK without ``MP_`` keys has the Rubin default planes; a plane HDU without origin keys
shares the others'; the WCS may sit on any of the three planes. Values that are impossible
in the layout's units (an air temperature in kelvin, a pressure in hPa) are rejected, and a
``BORE-ALT`` that contradicts the pointing by more than a degree is warned about.
"""


from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS

from ..errors import DcrError, DcrFitsError, DcrTypeError, DcrWarning, externalStacklevel
from ..image import (
    DEFAULT_MASK_PLANES,
    Box,
    Exposure,
    Filter,
    Image,
    Mask,
    MaskedImage,
    Psf,
    pixelDigest,
)
from .headers import (
    CALIB_KEYS,
    FILTER_KEYS,
    VISIT_KEYS,
    filterFromHeader,
    filterToHeader,
    makeCard,
    photoCalibFromHeader,
    visitInfoFromHeader,
    visitInfoToHeader,
)
from .layout import (
    MASK_PREFIX,
    PLANE_NAMES,
    hasOriginKeys,
    isStructuralKey,
    maskPlanesFromHeader,
    originFromHeader,
    wcsFromHeader,
)
from .psfhdu import PSF_EXTNAME, psfFromHdu
from .writing import writeExposure

__all__ = [
    "ExposureFile",
    "readExposure",
    "readExposureBBox",
    "writeExposure",
    "visitInfoToHeader",
    "visitInfoFromHeader",
    "filterToHeader",
    "filterFromHeader",
    "photoCalibFromHeader",
    "VISIT_KEYS",
]

_log = logging.getLogger(__name__)

# Rubin files point from HDU 0 to their binary-table archive with AR_HDU and integer
# "<COMPONENT>_ID" keys; those tables are not copied, so the pointers are dropped on read.
_ARCHIVE_ID_KEY = re.compile(r"^[A-Z0-9]+(_[A-Z0-9]+)*_ID$")


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


#: Leading bytes of the whole-file compressions astropy reads (gzip, bzip2, zip).
_COMPRESSION_MAGIC = (b"\x1f\x8b", b"BZh", b"PK\x03\x04")


def isCompressedFile(path: Path) -> bool:
    """Whether a file is gzip, bzip2 or zip compressed, by its first bytes, whatever its name.

    A compressed file is read through astropy's decompression; its size on disk says
    nothing of where its HDUs end.
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(4)
    except OSError:
        return path.suffix.lower() in {".gz", ".bz2", ".zip"}
    return head.startswith(_COMPRESSION_MAGIC)


def openFits(path: Path) -> tuple[fits.HDUList, dict[str, int]]:
    """Open a FITS file lazily with memory mapping and index its HDUs by EXTNAME.

    Only headers are read. Returns the open HDU list and ``EXTNAME -> index`` (the first
    HDU of each name).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DcrFitsError
        If the file is not FITS, or is truncated or corrupt (a header cut short, data that
        run past the end of the file).
    """
    if not path.exists():
        raise FileNotFoundError(f"no such FITS file: {path}")
    if path.is_dir():
        raise DcrFitsError(f"{path} is a folder, not a FITS file; give the file itself",
                           path=str(path))
    indices: dict[str, int] = {}
    hduList = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyUserWarning)
        warnings.simplefilter("always", fits.verify.VerifyWarning)
        try:
            hduList = fits.open(path, memmap=True, lazy_load_hdus=True, mode="readonly")
            for index, hdu in enumerate(hduList):
                name = str(hdu.header.get("EXTNAME", "")).strip().upper()
                if name and name not in indices:
                    indices[name] = index
        except (OSError, ValueError, TypeError, IndexError, KeyError, VerifyError) as error:
            if hduList is not None:
                hduList.close()
            raise DcrFitsError(
                f"{path.name} is not a readable FITS file ({error}); check that it is a "
                f"complete FITS file",
                path=str(path),
            ) from None
    problems = [
        str(warning.message).splitlines()[0]
        for warning in caught
        if "truncated" in str(warning.message) or "Error validating header" in str(
            warning.message
        )
    ]
    damage = _damagedCard(hdu.header for hdu in hduList)
    if damage is not None:
        hduList.close()
        raise DcrFitsError(
            f"{path.name} is damaged: {damage}; write or copy the file again", path=str(path)
        )
    if problems:
        try:
            where = _truncationPlace(hduList, path)
        except (VerifyError, ValueError, TypeError, KeyError):  # a damaged size key
            where = "its data or a header run past the end of the file"
        hduList.close()
        raise DcrFitsError(
            f"{path.name} is truncated: {where}; the file was cut short, write or copy it "
            f"again",
            path=str(path),
            astropy=problems[0],
        )
    for warning in caught:
        if not issubclass(warning.category, (AstropyUserWarning, fits.verify.VerifyWarning)):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return hduList, indices


def _damagedCard(headers: Iterable[fits.Header], values: bool = False) -> str | None:
    """Say where a header holds a card that cannot be read (None if every card can).

    FITS headers are printable ASCII (standard 4.0, section 4.1.2.1): a card with another
    byte is damage (a flipped bit, a bad copy) that would otherwise surface as an error deep
    inside astropy wherever the key is read. With ``values``, every value is parsed too
    (slower: for the few keys of a model file's HDU 0); otherwise a value that does not
    parse is found where it is read (`_damageIsAnError`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, header in enumerate(headers):
            for number, card in enumerate(header.cards, start=1):
                where = f"card {number} of the header of HDU {index}"
                # the card as read from the file (astropy's own attribute; None if made here)
                image = getattr(card, "_image", None) or ""
                if not (image.isascii() and image.isprintable()):
                    return f"{where} holds bytes that are not printable ASCII"
                if values:
                    try:
                        card.value  # noqa: B018 - parses the value
                    except (VerifyError, ValueError) as error:
                        return f"{where} cannot be read ({' '.join(str(error).split())})"
    return None


@contextlib.contextmanager
def _damageIsAnError(path: Path) -> Iterator[None]:
    """Turn astropy's errors on a damaged header card (read in the block) into ours."""
    try:
        yield
    except DcrError:
        raise
    except (VerifyError, ValueError) as error:
        raise DcrFitsError(
            f"{path.name} is damaged: {' '.join(str(error).split())}; write or copy the file "
            "again",
            path=str(path),
        ) from None


def _hduLabel(hduList: fits.HDUList, index: int) -> str:
    """Return ``'HDU <EXTNAME>'`` (or ``'HDU <index>'`` for an unnamed HDU)."""
    name = str(hduList[index].header.get("EXTNAME", "")).strip()
    return f"HDU {name}" if name else f"HDU {index}"


def _dataBytes(header: fits.Header) -> int:
    """Size in bytes of an HDU's data, without padding (FITS standard 4.0, eq. 2)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    count = 1
    for axis in range(1, naxis + 1):
        count *= int(header.get(f"NAXIS{axis}", 0))
    bitpix = abs(int(header.get("BITPIX", 8)))
    return bitpix // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + count)


def _dataLocation(hduList: fits.HDUList, index: int) -> int:
    """Byte offset of an HDU's data in the file it was read from.

    The HDU's own ``fileinfo`` gives it directly; ``HDUList.fileinfo`` gives the same value
    after checking whether any header was resized, which serialises every header (about
    5 ms per exposure file, the largest part of opening one) and cannot apply to files
    opened read-only, as every file here is.
    """
    info = hduList[index].fileinfo()
    if not info:
        info = hduList.fileinfo(index)
    return int(info["datLoc"])


def _truncationPlace(hduList: fits.HDUList, path: Path) -> str:
    """Say where a truncated file ends: in the data of a named HDU, or in a header."""
    size = path.stat().st_size
    for index in range(len(hduList)):
        info = hduList.fileinfo(index)
        missing = info["datLoc"] + _dataBytes(hduList[index].header) - size
        if missing > 0:
            return (
                f"the data of {_hduLabel(hduList, index)} end {missing} bytes past the end of "
                f"the file"
            )
    last = len(hduList) - 1
    if last < 0:
        return "the first header is cut short"
    return f"the header after {_hduLabel(hduList, last)} (or its padding) is cut short"


def checkPlaneHdu(
    hduList: fits.HDUList, index: int, name: str, path: Path, fileSize: int | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Check one IMAGE/MASK/VARIANCE HDU; return its shape (ny, nx) and origin (x0, y0)."""
    hdu = hduList[index]
    where = f"{path.name}, HDU {name}"
    if not isinstance(hdu, (fits.ImageHDU, fits.CompImageHDU, fits.PrimaryHDU)):
        raise DcrFitsError(
            f"{where} is a {type(hdu).__name__}, not an image", hdu=name
        )
    header = hdu.header
    if isinstance(hdu, fits.CompImageHDU):
        naxis = header.get("ZNAXIS", header.get("NAXIS"))
        shape = tuple(int(header.get(f"ZNAXIS{i}", header.get(f"NAXIS{i}", 0)))
                      for i in (2, 1))
    else:
        naxis = header.get("NAXIS")
        shape = tuple(int(header.get(f"NAXIS{i}", 0)) for i in (2, 1))
    if naxis != 2:
        raise DcrFitsError(f"{where} must hold a 2-d image, not NAXIS = {naxis}", hdu=name)
    if fileSize is not None and not isinstance(hdu, fits.CompImageHDU):
        dataLocation = _dataLocation(hduList, index)
        nbytes = abs(int(header["BITPIX"])) // 8 * shape[0] * shape[1]
        if dataLocation + nbytes > fileSize:
            raise DcrFitsError(
                f"{where}: the file ends {dataLocation + nbytes - fileSize} bytes before "
                f"the end of this HDU's data; the file is truncated",
                hdu=name,
                fileSize=fileSize,
            )
    origin = originFromHeader(header, where)
    return (shape[0], shape[1]), origin


def _readSection(
    hduList: fits.HDUList, index: int, name: str, sy: slice, sx: slice, path: Path
) -> np.ndarray:
    """Read ``[sy, sx]`` of an image HDU, touching only those pixels (a new array).

    An uncompressed image HDU of a plain (not gzip/bzip2/zip) file, without scaling keys,
    is sliced through its memory map and the slice copied: the kernel reads only the
    file pages of the cutout's rows, in one pass. astropy's ``section``, which reads a
    cutout one row at a time through the file object (hundreds of thousands of small
    reads for a model build), is kept for tile-compressed HDUs, compressed files and
    scaled (``BSCALE``/``BZERO``) data, where a memory map of the raw pixels does not
    give the values.
    """
    hdu = hduList[index]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            if _memoryMappable(hdu, path):
                data = np.array(hdu.data[sy, sx], copy=True)
            else:
                data = hdu.section[sy, sx]
    except (OSError, ValueError, TypeError, IndexError) as error:
        raise DcrFitsError(
            f"{path.name}, HDU {name}: the pixels cannot be read ({error}); the file is "
            f"truncated or corrupt",
            hdu=name,
        ) from None
    return np.asarray(data)


def _memoryMappable(hdu: fits.ImageHDU | fits.PrimaryHDU | fits.CompImageHDU, path: Path) -> bool:
    """Whether ``hdu.data`` is a memory map of the file's raw pixels (no copy, no scaling)."""
    if isCompressedFile(path):
        return False
    if not isinstance(hdu, (fits.ImageHDU, fits.PrimaryHDU)) or isinstance(
        hdu, fits.CompImageHDU
    ):
        return False
    header = hdu.header
    return float(header.get("BSCALE", 1)) == 1 and float(header.get("BZERO", 0)) == 0


def _toNative(array: np.ndarray, dtype: type) -> np.ndarray:
    """Return ``array`` as ``dtype`` in native byte order (a new array)."""
    return np.array(array, dtype=np.dtype(dtype).newbyteorder("="), copy=True)


def _imageDtype(array: np.ndarray) -> type:
    """Floating dtype for an image plane: float64 stays float64, all else float32."""
    return np.float64 if array.dtype.kind == "f" and array.dtype.itemsize == 8 else np.float32


def _planesBox(hduList: fits.HDUList, indices: dict[str, int], source: Path) -> Box:
    """Check the IMAGE, MASK and VARIANCE HDUs and return the parent box they cover."""
    missing = [name for name in PLANE_NAMES if name not in indices]
    if missing:
        raise DcrFitsError(
            f"{source.name} has no {', '.join(missing)} HDU (EXTNAME); an exposure file "
            f"needs IMAGE, MASK and VARIANCE image HDUs",
            hdus=sorted(indices),
        )
    fileSize = None if isCompressedFile(source) else source.stat().st_size
    geometry = {
        name: checkPlaneHdu(hduList, indices[name], name, source, fileSize)
        for name in PLANE_NAMES
    }
    # A plane without any origin keys is taken to share the others' origin (the file's
    # writer put them on one HDU only); planes that give one must agree.
    withOrigin = [name for name in PLANE_NAMES
                  if hasOriginKeys(hduList[indices[name]].header)]
    shape = geometry["IMAGE"][0]
    originHdu = withOrigin[0] if withOrigin else "IMAGE"
    origin = geometry[originHdu][1]
    for name in PLANE_NAMES:
        otherShape, otherOrigin = geometry[name]
        if name not in withOrigin:
            otherOrigin = origin
        if otherShape != shape:
            raise DcrFitsError(
                f"{source.name}: HDU {name} has shape {otherShape} but IMAGE has {shape} "
                f"(ny, nx); the planes of an exposure must match",
                hdu=name,
            )
        if otherOrigin != origin:
            raise DcrFitsError(
                f"{source.name}: HDU {name} has parent origin {otherOrigin} but "
                f"{originHdu} has {origin} (LTV1/LTV2); the planes of an exposure must match",
                hdu=name,
            )
    return Box(origin[0], origin[1], shape[1], shape[0])


def readExposureBBox(path: str | os.PathLike) -> Box:
    """Return the parent box of an exposure file, reading only its headers.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        A file in the Rubin layout.

    Returns
    -------
    bbox : `dcrmodel.image.Box`
        The parent pixels that the file's IMAGE, MASK and VARIANCE HDUs cover (origin from
        ``LTV1``/``LTV2``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DcrFitsError
        For the same layout problems as `readExposure` (not FITS, truncated, a plane
        missing, planes of different shapes or origins).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Exposure
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "visit.fits"
    >>> writeExposure(Exposure.fromArrays(np.zeros((20, 30)), origin=(-4, 9)), path)
    >>> readExposureBBox(path)
    Box(minX=-4, minY=9, width=30, height=20)
    """
    source = Path(os.fspath(path))
    hduList, indices = openFits(source)
    with hduList, _damageIsAnError(source):
        return _planesBox(hduList, indices, source)


def readExposure(path: str | os.PathLike, bbox: Box | None = None) -> Exposure:
    """Read an exposure from a FITS file in the Rubin layout.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The file. HDUs ``IMAGE``, ``MASK`` and ``VARIANCE`` are found by ``EXTNAME``
        wherever they are; an HDU ``PSF`` is read if present; other HDUs are skipped.
    bbox : `dcrmodel.image.Box`, optional
        Region to read, in PARENT pixel coordinates; it must lie inside the file's image.
        Only the pixels of this region are read from disk (a slice of the memory-mapped
        file, or astropy's section access for compressed data), so a small cutout of a
        large file is cheap. None reads the whole image.

    Returns
    -------
    exposure : `dcrmodel.image.Exposure`
        The image (float32, or float64 if the file has it), the mask (int32, planes from
        the ``MP_*`` keys, or the Rubin default planes if the MASK HDU has none), the
        variance, the WCS mapping PARENT 0-based pixels to ICRS, the
        visit info, the filter, the photometric calibration, the PSF and the remaining HDU 0
        keys as ``metadata``. The WCS is that of the IMAGE HDU, or of MASK or VARIANCE
        when IMAGE has none.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DcrTypeError
        If ``bbox`` is not a `Box`.
    DcrFitsError
        If the file is not FITS, is truncated, lacks an ``IMAGE``, ``MASK`` or ``VARIANCE``
        HDU, the three differ in shape or origin, a ``MP_`` key is malformed, a metadata
        value is not a number where one is needed, or ``bbox`` is not inside the image.
        The message names the HDU or key.

    Warns
    -----
    DcrWarning
        For unknown weather values (replaced by the site's default weather), a boresight
        azimuth/altitude computed because it is missing (see `visitInfoFromHeader`), a
        mask with bits set but no ``MP_*`` keys (read as the Rubin default planes), and
        for a band with no known wavelengths (the exposure gets no filter).

    Notes
    -----
    The parent origin comes from ``LTV1``/``LTV2`` (``x0 = -LTV1``), or from the alternate
    linear WCS ``A`` if those are missing, or is (0, 0). A plane HDU without any of these
    keys shares the origin of the planes that have them. The metadata holds the HDU 0 keys
    that are not turned into attributes, without the structural keys and without Rubin's
    pointers into its binary-table archive (``AR_HDU`` and integer ``*_ID`` keys), which
    would be wrong in a file that does not carry those tables.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Box, Exposure
    >>> values = np.arange(600, dtype=np.float32).reshape(20, 30)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "visit.fits"
    >>> writeExposure(Exposure.fromArrays(values, origin=(100, 200)), path)
    >>> cutout = readExposure(path, bbox=Box(110, 205, 3, 2))  # parent coordinates
    >>> cutout.image.array
    array([[160., 161., 162.],
           [190., 191., 192.]], dtype=float32)
    """
    if bbox is not None and not isinstance(bbox, Box):
        raise DcrTypeError(
            "bbox must be a dcrmodel Box in parent pixel coordinates, or None",
            bbox=bbox,
        )
    if not isinstance(path, str | os.PathLike):
        raise DcrTypeError("path must be the path of an exposure file (str or os.PathLike)",
                           path=type(path).__name__)
    source = Path(os.fspath(path))
    hduList, indices = openFits(source)
    with hduList, _damageIsAnError(source):
        return _readOpenExposure(
            hduList, indices, source, bbox, _planesBox(hduList, indices, source)
        )


def _readWcsAndPsf(
    hduList: fits.HDUList, indices: dict[str, int], source: Path, origin: tuple[int, int],
    filterInfo: Filter | None,
) -> tuple[WCS | None, Psf | None]:
    """Read the WCS (parent pixels of ``origin``) and the PSF HDU of an open file."""
    # The WCS of the IMAGE HDU, or of the first other plane that has one.
    wcsPlane = next(
        (name for name in PLANE_NAMES
         if any(key in hduList[indices[name]].header for key in ("CTYPE1", "CTYPE2"))),
        "IMAGE",
    )
    wcs = wcsFromHeader(hduList[indices[wcsPlane]].header, origin[0], origin[1],
                        f"{source.name}, HDU {wcsPlane}")
    psf = None
    if PSF_EXTNAME in indices:
        psfHdu = hduList[indices[PSF_EXTNAME]]
        if isinstance(psfHdu, (fits.ImageHDU, fits.CompImageHDU)):
            psf = psfFromHdu(psfHdu, wcs, filterInfo, f"{source.name}, HDU PSF")
        else:
            _log.debug("%s: HDU PSF is a %s; skipped", source.name, type(psfHdu).__name__)
    return wcs, psf


def _readOpenExposure(
    hduList: fits.HDUList, indices: dict[str, int], source: Path, bbox: Box | None,
    fileBox: Box,
) -> Exposure:
    """Read an exposure (or cutout) from an open file whose planes cover ``fileBox``."""
    origin = fileBox.begin
    if bbox is None:
        readBox = fileBox
    else:
        if bbox.isEmpty() or not fileBox.contains(bbox):
            raise DcrFitsError(
                f"{source.name}: the requested bbox is not inside the image (HDU IMAGE "
                f"covers parent x {fileBox.minX}..{fileBox.maxX}, y "
                f"{fileBox.minY}..{fileBox.maxY}); clip it with bbox.clippedTo",
                bbox=bbox,
                imageBox=fileBox,
            )
        readBox = bbox
    maskWhere = f"{source.name}, HDU MASK"
    planes = maskPlanesFromHeader(hduList[indices["MASK"]].header, maskWhere)

    primary = hduList[0].header
    primaryWhere = f"{source.name}, HDU 0"
    visitInfo = visitInfoFromHeader(primary, primaryWhere)
    filterInfo = filterFromHeader(primary, primaryWhere)
    photoCalib = photoCalibFromHeader(primary, primaryWhere)
    wcs, psf = _readWcsAndPsf(hduList, indices, source, origin, filterInfo)

    sy, sx = readBox.slices(fileBox)
    imageData = _readSection(hduList, indices["IMAGE"], "IMAGE", sy, sx, source)
    maskData = _readSection(hduList, indices["MASK"], "MASK", sy, sx, source)
    varianceData = _readSection(hduList, indices["VARIANCE"], "VARIANCE", sy, sx, source)
    if maskData.dtype.kind not in "iu":
        raise DcrFitsError(
            f"{maskWhere} must hold integers (int32), not {maskData.dtype}", hdu="MASK"
        )
    if not planes:
        # No MP_ keys at all: the bits mean what they mean in the Rubin layout.
        planes = dict(DEFAULT_MASK_PLANES)
        if np.any(maskData):
            warnings.warn(
                f"{maskWhere} has no MP_<PLANE> keys; its bits are read as the Rubin "
                f"default planes ({', '.join(f'{n} {b}' for n, b in planes.items())}); "
                f"add the keys if they mean something else",
                DcrWarning,
                stacklevel=externalStacklevel(),
            )
    metadata = _metadataFromHeader(
        primary, keepFilter=filterInfo is None, keepVisit=visitInfo is None
    )

    imageArray = _toNative(imageData, _imageDtype(imageData))
    varianceArray = _toNative(varianceData, _imageDtype(varianceData))
    maskArray = _toNative(maskData, np.int32)
    maskedImage = MaskedImage(
        Image(imageArray, bbox=readBox),
        Mask(maskArray, bbox=readBox, planes=planes),
        Image(varianceArray, bbox=readBox),
    )
    return Exposure(
        maskedImage,
        wcs=wcs,
        psf=psf,
        visitInfo=visitInfo,
        filter=filterInfo,
        photoCalib=photoCalib,
        metadata=metadata,
    )


#: numpy dtype (big-endian, as stored) of each FITS ``BITPIX`` (FITS standard 4.0, table 8).
_BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class ExposureFile:
    """An exposure file whose headers are read once, for reading many cutouts.

    `readExposure` parses every header of the file (WCS, visit information, PSF, mask
    planes) on each call, which costs more than reading a cutout of a few hundred thousand
    pixels. A model build reads each visit once per subregion; an `ExposureFile` parses
    the file once and then reads each cutout's pixels straight from the memory-mapped
    planes, sharing the metadata (the WCS maps parent pixels, so it is the same for every
    cutout).

    Files whose planes cannot be memory-mapped (tile-compressed, gzip/bzip2/zip,
    ``BSCALE``/``BZERO`` scaling), whose MASK HDU has no ``MP_*`` keys, or that changed on
    disk since they were opened (size or modification time), are read by `readExposure`
    for every cutout instead, with the same results and warnings.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        A file in the Rubin layout (see `readExposure`).

    Attributes
    ----------
    path : `pathlib.Path`
        The file.
    bbox : `dcrmodel.image.Box`
        The parent box of its planes.
    info : `dcrmodel.image.Exposure`
        A one-pixel cutout holding the file's metadata (WCS, visit info, filter, PSF,
        photometric calibration, mask planes, metadata keys).

    Raises
    ------
    FileNotFoundError, DcrFitsError
        As `readExposure`, when the file is opened.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Box, Exposure
    >>> values = np.arange(600, dtype=np.float32).reshape(20, 30)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "visit.fits"
    >>> writeExposure(Exposure.fromArrays(values, origin=(100, 200)), path)
    >>> visit = ExposureFile(path)
    >>> visit.bbox
    Box(minX=100, minY=200, width=30, height=20)
    >>> visit.read(Box(110, 205, 3, 2)).image.array
    array([[160., 161., 162.],
           [190., 191., 192.]], dtype=float32)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, str | os.PathLike):
            raise DcrTypeError("path must be the path of an exposure file (str or os.PathLike)",
                               path=type(path).__name__)
        self.path = Path(os.fspath(path))
        hduList, indices = openFits(self.path)
        with hduList, _damageIsAnError(self.path):
            self.bbox = _planesBox(hduList, indices, self.path)
            self._layouts: dict[str, tuple[int, np.dtype, tuple[int, int]]] | None = {}
            maskHeader = hduList[indices["MASK"]].header
            if not any(str(key).startswith(MASK_PREFIX) for key in maskHeader):
                self._layouts = None
            for name in PLANE_NAMES:
                if self._layouts is None:
                    break
                hdu = hduList[indices[name]]
                bitpix = int(hdu.header.get("BITPIX", 0))
                if not _memoryMappable(hdu, self.path) or bitpix not in _BITPIX_DTYPES:
                    self._layouts = None
                    break
                offset = _dataLocation(hduList, indices[name])
                self._layouts[name] = (
                    offset, np.dtype(_BITPIX_DTYPES[bitpix]), self.bbox.shape
                )
            if self._layouts is not None and self._layouts["MASK"][1].kind not in "iu":
                self._layouts = None  # the read below raises the error, naming the HDU
            stat = self.path.stat()
            self._stamp = (stat.st_size, stat.st_mtime_ns)
            self.info = _readOpenExposure(
                hduList, indices, self.path, Box(self.bbox.minX, self.bbox.minY, 1, 1), self.bbox
            )

    def __repr__(self) -> str:
        return f"ExposureFile({str(self.path)!r})"

    def read(self, bbox: Box | None = None) -> Exposure:
        """Read a cutout (parent coordinates) or, with None, the whole exposure.

        Parameters
        ----------
        bbox : `dcrmodel.image.Box`, optional
            Region to read, inside the file's box.

        Returns
        -------
        exposure : `dcrmodel.image.Exposure`
            As `readExposure` returns it; the metadata objects are shared between cutouts,
            the header of ``metadata`` is a copy.

        Raises
        ------
        DcrTypeError, DcrFitsError
            As `readExposure`: a ``bbox`` that is not a `Box` or not inside the image.
        """
        if self._layouts is None or not self._unchanged():
            return readExposure(self.path, bbox)
        if bbox is not None and not isinstance(bbox, Box):
            raise DcrTypeError(
                "bbox must be a dcrmodel Box in parent pixel coordinates, or None",
                bbox=bbox,
            )
        if bbox is not None and (bbox.isEmpty() or not self.bbox.contains(bbox)):
            return readExposure(self.path, bbox)  # raises the error readExposure gives
        readBox = self.bbox if bbox is None else bbox
        sy, sx = readBox.slices(self.bbox)
        planes = {}
        try:
            for name, (offset, dtype, shape) in self._layouts.items():
                mapped = np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape)
                section = mapped[sy, sx]
                target = np.int32 if name == "MASK" else _imageDtype(section)
                planes[name] = _toNative(section, target)
                del mapped, section
        except (OSError, ValueError) as error:
            raise DcrFitsError(
                f"{self.path.name}: the pixels cannot be read ({error}); the file is "
                f"truncated or corrupt",
                path=str(self.path),
            ) from None
        info = self.info
        maskedImage = MaskedImage(
            Image(planes["IMAGE"], bbox=readBox),
            Mask(planes["MASK"], bbox=readBox, planes=dict(info.mask.planes)),
            Image(planes["VARIANCE"], bbox=readBox),
        )
        metadata = info.metadata.copy() if info.metadata is not None else None
        return Exposure(
            maskedImage,
            wcs=info.wcs,
            psf=info.psf,
            visitInfo=info.visitInfo,
            filter=info.filter,
            photoCalib=info.photoCalib,
            metadata=metadata,
        )

    def imageDigest(self) -> str:
        """Return `dcrmodel.image.pixelDigest` of the file's IMAGE plane.

        Reads the IMAGE plane only (memory-mapped where the file allows), to tell a copy
        of a visit from another visit.
        """
        if self._layouts is None or not self._unchanged():
            return pixelDigest(self.read().image.array)
        offset, dtype, shape = self._layouts["IMAGE"]
        try:
            mapped = np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape)
            return pixelDigest(mapped)
        except (OSError, ValueError) as error:
            raise DcrFitsError(
                f"{self.path.name}: the pixels cannot be read ({error}); the file is "
                f"truncated or corrupt",
                path=str(self.path),
            ) from None

    def _unchanged(self) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) == self._stamp


def _metadataFromHeader(primary: fits.Header, keepFilter: bool, keepVisit: bool) -> fits.Header:
    """Return the HDU 0 keys that are not structure, archive pointers or attributes."""
    metadata = fits.Header()
    for card in primary.cards:
        key = card.keyword
        if isStructuralKey(key) or key == "AR_HDU":
            continue
        if _ARCHIVE_ID_KEY.match(key) and isinstance(card.value, int) and not isinstance(
            card.value, bool
        ):
            continue
        if key in FILTER_KEYS and not (keepFilter and key == "FILTER"):
            continue
        if key in CALIB_KEYS or (key in VISIT_KEYS and not keepVisit):
            continue
        metadata.append(makeCard(key, card.value, card.comment), end=True)
    return metadata
