"""The keys of the Rubin exposure layout that its reader and its writer share.

The IMAGE, MASK and VARIANCE HDUs of an exposure file (`PLANE_NAMES`) each carry the
celestial WCS written for their own (local) FITS pixel grid, the parent origin as
``LTV1 = -x0``, ``LTV2 = -y0`` and the alternate linear WCS ``A`` (``WCSNAMEA = 'PHYSICAL'``)
that maps FITS pixels to 0-based parent pixels; the MASK HDU names its planes with one
``MP_<PLANE> = bit`` key each (`MASK_PREFIX`). This module writes those keys
(`wcsToLocalHeader`, `originHeader`, `maskPlanesToHeader`) and reads them back
(`wcsFromHeader`, `originFromHeader`, `hasOriginKeys`, `maskPlanesFromHeader`), raising
`DcrFitsError` with the HDU and key at fault, and tells the structural keys that astropy
writes itself (`isStructuralKey`). The layout as a whole is described in
`dcrmodel.fits.exposure`; these names are shared by the modules of ``dcrmodel.fits`` and are
not handed on by it.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings

from astropy.io import fits
from astropy.wcs import WCS, WCSHDO_P17, FITSFixedWarning
from astropy.wcs.wcs import WCSHDO_SIP

from ..errors import DcrFitsError, DcrTypeError, DcrValueError, DcrWarning, externalStacklevel
from .headers import headerFloat, headerStr, setKey

__all__ = [
    "PLANE_NAMES",
    "MASK_PREFIX",
    "isStructuralKey",
    "wcsToLocalHeader",
    "originHeader",
    "hasOriginKeys",
    "originFromHeader",
    "wcsFromHeader",
    "maskPlanesToHeader",
    "maskPlanesFromHeader",
]

#: EXTNAME of the image planes of an exposure file.
PLANE_NAMES = ("IMAGE", "MASK", "VARIANCE")
#: Prefix of the MASK HDU's keys that give the bit of each mask plane.
MASK_PREFIX = "MP_"

# Keys that describe the structure of an HDU; astropy writes them itself.
_STRUCTURAL_KEYS = frozenset(
    {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME",
     "EXTVER", "BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM", "END"}
)
_NAXIS_KEY = re.compile(r"^NAXIS\d+$")


def isStructuralKey(key: str) -> bool:
    """Return True for the keys that describe an HDU's structure (astropy writes them)."""
    return key in _STRUCTURAL_KEYS or bool(_NAXIS_KEY.match(key))


# --------------------------------------------------------------------------------------
# WCS and origin
# --------------------------------------------------------------------------------------


def wcsToLocalHeader(wcs: WCS, x0: int, y0: int) -> fits.Header:
    """Return the FITS keys of ``wcs`` (parent pixels) for the local grid of origin (x0, y0)."""
    if not isinstance(wcs, WCS):
        raise DcrTypeError("exposure.wcs must be an astropy.wcs.WCS or None", wcs=type(wcs))
    if not wcs.has_celestial or wcs.naxis != 2:
        raise DcrValueError(
            "exposure.wcs must be a two-axis celestial WCS", ctype=list(wcs.wcs.ctype)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        header = wcs.to_header(relax=WCSHDO_P17 | WCSHDO_SIP)
    setKey(header, "CRPIX1", float(wcs.wcs.crpix[0]) - x0, "Pixel coordinate of reference point")
    setKey(header, "CRPIX2", float(wcs.wcs.crpix[1]) - y0, "Pixel coordinate of reference point")
    return header


def originHeader(x0: int, y0: int) -> fits.Header:
    """Return LTV1/LTV2 and the alternate 'PHYSICAL' WCS that give the parent origin."""
    header = fits.Header()
    setKey(header, "LTV1", float(-x0), "parent origin: local pixel = parent pixel + LTV1")
    setKey(header, "LTV2", float(-y0), "parent origin: local pixel = parent pixel + LTV2")
    setKey(header, "WCSNAMEA", "PHYSICAL", "0-based parent pixel coordinates")
    setKey(header, "CTYPE1A", "LINEAR", "")
    setKey(header, "CTYPE2A", "LINEAR", "")
    setKey(header, "CRPIX1A", 1.0, "")
    setKey(header, "CRPIX2A", 1.0, "")
    setKey(header, "CRVAL1A", float(x0), "parent x of the first pixel")
    setKey(header, "CRVAL2A", float(y0), "parent y of the first pixel")
    setKey(header, "CDELT1A", 1.0, "")
    setKey(header, "CDELT2A", 1.0, "")
    return header


def hasOriginKeys(header: fits.Header) -> bool:
    """Return True if ``header`` gives a parent origin (LTV or the alternate WCS 'A')."""
    return any(key in header for key in ("LTV1", "LTV2", "CRVAL1A", "CRVAL2A"))


def originFromHeader(header: fits.Header, where: str) -> tuple[int, int]:
    """Return the parent origin (x0, y0) from LTV1/LTV2, else from the 'A' linear WCS."""
    origin = []
    for axis in (1, 2):
        ltv = headerFloat(header, f"LTV{axis}", where)
        crval = None
        cdelt = headerFloat(header, f"CDELT{axis}A", where)
        if headerStr(header, f"CTYPE{axis}A", where) == "LINEAR" and cdelt in (None, 1.0):
            # A unit-step linear WCS 'A' gives the parent coordinate of FITS pixel CRPIX.
            crval = headerFloat(header, f"CRVAL{axis}A", where)
            crpix = headerFloat(header, f"CRPIX{axis}A", where)
            crpix = 1.0 if crpix is None else crpix
            if crval is not None and not math.isnan(crval + crpix):
                crval = crval - (crpix - 1.0)
        if ltv is not None and not math.isnan(ltv):
            value, key = -ltv, f"LTV{axis}"
        elif crval is not None and not math.isnan(crval):
            value, key = crval, f"CRVAL{axis}A"
        else:
            origin.append(0)
            continue
        if not float(value).is_integer():
            raise DcrFitsError(
                f"{where}: key {key} must be a whole number of pixels (the parent origin)",
                key=key,
                value=header[key],
            )
        if crval is not None and not math.isnan(crval) and crval != value:
            raise DcrFitsError(
                f"{where}: the parent origin from LTV{axis} ({value:g}) disagrees with the "
                f"alternate WCS CRVAL{axis}A ({crval:g}); fix one of them",
                key=f"LTV{axis}",
            )
        origin.append(int(value))
    return origin[0], origin[1]


def wcsFromHeader(header: fits.Header, x0: int, y0: int, where: str) -> WCS | None:
    """Read the celestial WCS of an image HDU and move it to parent pixel coordinates."""
    if "CTYPE1" not in header and "CTYPE2" not in header:
        return None
    local = header.copy(strip=True)
    for key in list(local.keys()):
        # Keep the pixel-shape keys out, so that the WCS does not claim the local image size
        # as the extent of the parent grid.
        if _NAXIS_KEY.match(key) or key == "NAXIS":
            del local[key]
    try:
        crpix1 = headerFloat(header, "CRPIX1", where)
        crpix2 = headerFloat(header, "CRPIX2", where)
        crpix1 = 0.0 if crpix1 is None else crpix1
        crpix2 = 0.0 if crpix2 is None else crpix2
        setKey(local, "CRPIX1", crpix1 + x0)
        setKey(local, "CRPIX2", crpix2 + y0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(local, naxis=2)
    except DcrFitsError:
        raise
    except Exception as error:  # astropy raises several kinds for a broken WCS
        raise DcrFitsError(
            f"{where}: the WCS keys cannot be read ({error}); fix or remove them",
            ctype1=header.get("CTYPE1"),
        ) from None
    if not wcs.has_celestial:
        warnings.warn(
            f"{where}: the WCS is not celestial (CTYPE {list(wcs.wcs.ctype)}); the exposure "
            f"gets no WCS",
            DcrWarning,
            stacklevel=externalStacklevel(),
        )
        return None
    wcs.pixel_shape = None
    return wcs


# --------------------------------------------------------------------------------------
# Mask planes
# --------------------------------------------------------------------------------------


def maskPlanesToHeader(planes: dict[str, int]) -> fits.Header:
    """Return the ``MP_<PLANE> = bit`` keys of a mask."""
    header = fits.Header()
    for name, bit in sorted(planes.items(), key=lambda item: item[1]):
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise DcrValueError(
                "mask plane names may hold only letters, digits, '_' and '-' to be written "
                "as FITS keys; rename the plane",
                plane=name,
            )
        setKey(header, MASK_PREFIX + name, int(bit), "mask plane bit")
    return header


def maskPlanesFromHeader(header: fits.Header, where: str) -> dict[str, int]:
    """Read and check the ``MP_<PLANE> = bit`` keys of a MASK HDU."""
    planes: dict[str, int] = {}
    for key, value in header.items():
        if not key.upper().startswith(MASK_PREFIX):
            continue
        name = key[len(MASK_PREFIX):]
        if not name:
            raise DcrFitsError(f"{where}: key {key} names no mask plane", key=key)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # some writers store every number as a real
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise DcrFitsError(
                f"{where}: mask plane key {key} must be an integer bit number (0-31), "
                f"not {value!r}",
                key=key,
                value=value,
            )
        bit = int(value)
        if not 0 <= bit < 32:
            raise DcrFitsError(
                f"{where}: mask plane key {key} gives bit {bit}, outside 0-31 of an int32 mask",
                key=key,
                value=bit,
            )
        if bit in planes.values():
            other = next(n for n, b in planes.items() if b == bit)
            raise DcrFitsError(
                f"{where}: mask plane keys {MASK_PREFIX}{other} and {key} both use bit {bit}",
                key=key,
                value=bit,
            )
        planes[name] = bit
    return planes
