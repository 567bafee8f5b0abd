"""Pixel containers, filters, PSFs and calibrations in parent coordinates.

This module holds the image data structures that the rest of dcrmodel works on, in the
style of the Rubin pipelines' ``lsst.afw.image`` and ``lsst.geom`` classes:

- `Box`: an integer, inclusive rectangle of pixels in *parent* coordinates.
- `Image`, `Mask`, `MaskedImage`: numpy arrays that know where they sit in a larger
  parent grid. Pixel ``(x, y)`` of the parent is element ``array[y - y0, x - x0]`` of an
  image whose origin is ``(x0, y0)``. Indexing with a `Box` returns a view (shared memory)
  in the same parent coordinates.
- `Exposure`: a masked image with its astropy WCS, PSF, visit information, filter and
  photometric calibration; converts to and from `astropy.nddata.CCDData`.
- `Filter`, `Psf` (`GaussianPsf`, `ImagePsf`), `PhotoCalib`, `StatisticsControl`.

Nothing here knows about differential chromatic refraction.
"""

from __future__ import annotations

import logging
import math
import numbers
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from .errors import DcrShapeError, DcrTypeError, DcrValueError

__all__ = [
    "FWHM_PER_SIGMA",
    "WCS_GRID_TOLERANCE",
    "wcsGridOffset",
    "Box",
    "Image",
    "Mask",
    "MaskedImage",
    "Filter",
    "RUBIN_BANDS",
    "Psf",
    "GaussianPsf",
    "ImagePsf",
    "PhotoCalib",
    "StatisticsControl",
    "Exposure",
    "DEFAULT_MASK_PLANES",
]

log = logging.getLogger(__name__)

#: FWHM of a Gaussian in units of its standard deviation, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Default mask planes and their bits (the defaults of the Rubin pipelines' masks).
DEFAULT_MASK_PLANES: dict[str, int] = {
    "BAD": 0,
    "SAT": 1,
    "INTRP": 2,
    "CR": 3,
    "EDGE": 4,
    "DETECTED": 5,
    "DETECTED_NEGATIVE": 6,
    "SUSPECT": 7,
    "NO_DATA": 8,
}

# Rubin (LSST) bands: effective wavelength and bandwidth in nm. Source: the LSST system
# throughputs, version 1.4 (github.com/lsst/throughputs, described in SMTN-002,
# https://smtn-002.lsst.io), as tabulated in the obs_lsst filter definitions
# (lsst/obs_lsst, python/lsst/obs/lsst/filters.py, the "*_sim_1.4" filters): effective
# wavelength lambdaEff and the band edges lambdaMin, lambdaMax. The bandwidth here is
# lambdaMax - lambdaMin:
#   u 367.070 [308.0, 408.6]   g 482.685 [386.5, 567.0]   r 622.324 [537.0, 706.0]
#   i 754.598 [676.0, 833.0]   z 869.090 [803.0, 938.6]   y 971.028 [908.4, 1096.3]
# A `Filter` spans effectiveWavelength -/+ bandwidth/2, which centres these intervals on
# the effective wavelength (the tabulated edges are not symmetric about it).
RUBIN_BANDS: dict[str, tuple[float, float]] = {
    "u": (367.070, 100.6),
    "g": (482.685, 180.5),
    "r": (622.324, 169.0),
    "i": (754.598, 157.0),
    "z": (869.090, 135.6),
    "y": (971.028, 187.9),
}


# ----------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------


def _asInt(value: Any, name: str) -> int:
    """Return ``value`` as a Python int, or raise `DcrTypeError` if it is not whole."""
    if isinstance(value, bool):
        raise DcrTypeError(f"{name} must be an integer, not a bool", **{name: value})
    try:
        return operator.index(value)
    except TypeError:
        pass
    # Whole-valued floats (2.0, numpy floats) are accepted; fractions are not.
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise DcrTypeError(
        f"{name} must be a whole number of pixels; round it explicitly",
        **{name: value},
    )


def _asPair(value: Any, name: str) -> tuple[Any, Any]:
    """Unpack a 2-sequence, raising `DcrTypeError` naming ``name`` otherwise."""
    try:
        a, b = value
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a pair of numbers (x, y)", **{name: value}) from None
    return a, b


@dataclass(frozen=True)
class Box:
    """An integer rectangle of pixels in parent coordinates, inclusive of both corners.

    Parameters
    ----------
    minX, minY : int
        Parent coordinates (pixels) of the lower-left (lowest ``x``, lowest ``y``) pixel.
    width, height : int
        Number of pixels along ``x`` and ``y``; zero gives an empty box.

    Raises
    ------
    DcrTypeError
        If a value is not an integer.
    DcrValueError
        If ``width`` or ``height`` is negative.

    Notes
    -----
    The box covers pixels ``minX <= x <= maxX`` and ``minY <= y <= maxY`` with
    ``maxX = minX + width - 1``. An array covering the box has shape ``(height, width)``.
    An empty box is contained in every box and overlaps none.

    Examples
    --------
    >>> box = Box(10, 20, 5, 3)
    >>> box.end, box.shape
    ((14, 22), (3, 5))
    >>> box.intersection(Box(12, 0, 100, 21))
    Box(minX=12, minY=20, width=3, height=1)
    """

    minX: int
    minY: int
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("minX", "minY", "width", "height"):
            object.__setattr__(self, name, _asInt(getattr(self, name), name))
        if self.width < 0 or self.height < 0:
            raise DcrValueError(
                "Box width and height must be >= 0 (use 0 for an empty box)",
                width=self.width,
                height=self.height,
            )

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def fromCorners(cls, minX: int, minY: int, maxX: int, maxY: int) -> Box:
        """Make a box from its inclusive corners (parent pixels).

        Parameters
        ----------
        minX, minY, maxX, maxY : int
            Inclusive corner pixels; ``maxX = minX - 1`` gives zero width.

        Raises
        ------
        DcrValueError
            If ``maxX < minX - 1`` or ``maxY < minY - 1``.
        """
        minX, minY = _asInt(minX, "minX"), _asInt(minY, "minY")
        maxX, maxY = _asInt(maxX, "maxX"), _asInt(maxY, "maxY")
        if maxX < minX - 1 or maxY < minY - 1:
            raise DcrValueError(
                "Box corners are reversed; pass (minX, minY, maxX, maxY) with max >= min",
                minX=minX,
                minY=minY,
                maxX=maxX,
                maxY=maxY,
            )
        return cls(minX, minY, maxX - minX + 1, maxY - minY + 1)

    @classmethod
    def fromShape(cls, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> Box:
        """Make the box of an array of ``shape`` ``(ny, nx)`` whose first pixel is ``origin``.

        Parameters
        ----------
        shape : tuple of int
            Array shape ``(ny, nx)`` (numpy order).
        origin : tuple of int, optional
            Parent coordinates ``(x0, y0)`` (pixels) of ``array[0, 0]``.
        """
        if len(tuple(shape)) != 2:
            raise DcrShapeError("shape must be two-dimensional (ny, nx)", shape=shape)
        ny, nx = shape
        x0, y0 = _asPair(origin, "origin")
        return cls(x0, y0, nx, ny)

    # -- properties ----------------------------------------------------------------------
    @property
    def maxX(self) -> int:
        """Largest ``x`` in the box (inclusive; ``minX - 1`` when empty)."""
        return self.minX + self.width - 1

    @property
    def maxY(self) -> int:
        """Largest ``y`` in the box (inclusive; ``minY - 1`` when empty)."""
        return self.minY + self.height - 1

    @property
    def begin(self) -> tuple[int, int]:
        """``(minX, minY)``."""
        return (self.minX, self.minY)

    @property
    def end(self) -> tuple[int, int]:
        """``(maxX, maxY)``, inclusive."""
        return (self.maxX, self.maxY)

    @property
    def dimensions(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return (self.width, self.height)

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(height, width)`` of an array covering the box."""
        return (self.height, self.width)

    @property
    def area(self) -> int:
        """Number of pixels."""
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``((minX + maxX) / 2, (minY + maxY) / 2)`` in parent pixels."""
        return ((self.minX + self.maxX) / 2.0, (self.minY + self.maxY) / 2.0)

    # -- predicates ----------------------------------------------------------------------
    def isEmpty(self) -> bool:
        """Return True if the box holds no pixel."""
        return self.width == 0 or self.height == 0

    def contains(self, other: Box | tuple[float, float]) -> bool:
        """Return True if ``other`` (a `Box` or a point ``(x, y)``) lies inside this box.

        An empty box is contained in every box; a point ``(x, y)`` (parent pixels) is
        inside when ``minX <= x <= maxX`` and ``minY <= y <= maxY``.
        """
        if isinstance(other, Box):
            if other.isEmpty():
                return True
            return (
                other.minX >= self.minX
                and other.minY >= self.minY
                and other.maxX <= self.maxX
                and other.maxY <= self.maxY
            )
        x, y = _asPair(other, "point")
        if not isinstance(x, numbers.Real) or not isinstance(y, numbers.Real):
            raise DcrTypeError("a point must be a pair of numbers (x, y)", point=other)
        return bool(self.minX <= x <= self.maxX and self.minY <= y <= self.maxY)

    def overlaps(self, other: Box) -> bool:
        """Return True if the two boxes share at least one pixel."""
        return not self.intersection(other).isEmpty()

    # -- operations ----------------------------------------------------------------------
    def intersection(self, other: Box) -> Box:
        """Return the pixels common to both boxes.

        Returns
        -------
        Box
            The overlap; an empty box (``width == height == 0``) when the boxes are
            disjoint.
        """
        if not isinstance(other, Box):
            raise DcrTypeError("intersection needs a Box", other=other)
        minX = max(self.minX, other.minX)
        minY = max(self.minY, other.minY)
        maxX = min(self.maxX, other.maxX)
        maxY = min(self.maxY, other.maxY)
        if maxX < minX or maxY < minY:
            return Box(minX, minY, 0, 0)
        return Box(minX, minY, maxX - minX + 1, maxY - minY + 1)

    def clippedTo(self, other: Box) -> Box:
        """Return this box clipped to ``other`` (the same as `intersection`)."""
        return self.intersection(other)

    def grow(self, n: int | tuple[int, int]) -> Box:
        """Return the box grown by ``n`` pixels on every side (shrunk if negative).

        Parameters
        ----------
        n : int or tuple of int
            Pixels to add on each side, or ``(nx, ny)`` for the two axes separately.

        Raises
        ------
        DcrValueError
            If shrinking would give a negative width or height.
        """
        if isinstance(n, tuple | list):
            nx, ny = (_asInt(v, "n") for v in _asPair(n, "n"))
        else:
            nx = ny = _asInt(n, "n")
        width, height = self.width + 2 * nx, self.height + 2 * ny
        if width < 0 or height < 0:
            raise DcrValueError(
                "cannot shrink the box by more than half its size",
                box=self,
                n=n,
            )
        return Box(self.minX - nx, self.minY - ny, width, height)

    def shiftedBy(self, dx: int, dy: int) -> Box:
        """Return the box moved by ``(dx, dy)`` integer pixels."""
        return Box(
            self.minX + _asInt(dx, "dx"), self.minY + _asInt(dy, "dy"), self.width, self.height
        )

    def slices(self, within: Box) -> tuple[slice, slice]:
        """Return ``(slice_y, slice_x)`` selecting this box in an array whose box is ``within``.

        Parameters
        ----------
        within : Box
            The box of the array to index.

        Raises
        ------
        DcrShapeError
            If this box does not lie inside ``within``.
        """
        if not isinstance(within, Box):
            raise DcrTypeError("slices needs the Box of the array being indexed", within=within)
        x0, y0 = self.minX - within.minX, self.minY - within.minY
        if x0 < 0 or y0 < 0 or x0 + self.width > within.width or y0 + self.height > within.height:
            raise DcrShapeError(
                "box is not inside the image's box; clip it first with box.clippedTo(image.bbox)",
                box=self,
                within=within,
            )
        return (slice(y0, y0 + self.height), slice(x0, x0 + self.width))


# ----------------------------------------------------------------------------------------
# Pixel containers
# ----------------------------------------------------------------------------------------


def _resolveBox(shape: tuple[int, ...], bbox: Box | None, origin: Any, what: str) -> Box:
    """Return the box of an array of ``shape`` from either ``bbox`` or ``origin``."""
    if len(shape) != 2:
        raise DcrShapeError(f"{what} array must be two-dimensional (y, x)", shape=shape)
    if bbox is not None:
        if not isinstance(bbox, Box):
            raise DcrTypeError("bbox must be a Box", bbox=bbox)
        if bbox.shape != tuple(shape):
            raise DcrShapeError(
                f"{what} array shape {tuple(shape)} does not match bbox shape {bbox.shape}",
                shape=tuple(shape),
                bbox=bbox,
            )
        if origin is not None and tuple(origin) != bbox.begin:
            raise DcrValueError(
                "origin and bbox disagree; give only one of them", origin=origin, bbox=bbox
            )
        return bbox
    return Box.fromShape(shape, (0, 0) if origin is None else origin)


def _imageArray(array: Any) -> np.ndarray:
    """Return ``array`` as a floating-point ndarray (a view when it already is one)."""
    arr = np.asarray(array)
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "f" and size in (4, 8):
        # Native float32/float64 are used as they are; other byte orders (big-endian
        # FITS data) are converted at the same precision.
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
    if kind == "f" and size < 4:
        return arr.astype(np.float32)
    if kind in "biuf":
        return arr.astype(np.float64)
    raise DcrTypeError(
        "image pixels must be real numbers (float32 or float64)", dtype=str(arr.dtype)
    )


class _PixelArray:
    """Shared behaviour of `Image` and `Mask`: an array placed in parent coordinates."""

    _array: np.ndarray
    _bbox: Box

    @property
    def array(self) -> np.ndarray:
        """The pixel values, numpy ``(y, x)`` order; ``array[y - y0, x - x0]``."""
        return self._array

    @property
    def bbox(self) -> Box:
        """Box (parent pixels) covered by the array."""
        return self._bbox

    @property
    def origin(self) -> tuple[int, int]:
        """Parent coordinates ``(x0, y0)`` of ``array[0, 0]``."""
        return self._bbox.begin

    @property
    def dtype(self) -> np.dtype:
        """Numpy dtype of the pixels."""
        return self._array.dtype

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(height, width)``."""
        return self._array.shape

    def _checkBoxKey(self, key: Any) -> Box:
        if not isinstance(key, Box):
            raise DcrTypeError(
                f"index {type(self).__name__} objects with a Box in parent coordinates; "
                "for array indexing use .array[...]",
                key=key,
            )
        return key

    def _valueArray(self, value: Any, shape: tuple[int, int], what: str) -> Any:
        """Return the array (or scalar) of ``value`` to combine with pixels of ``shape``."""
        if isinstance(value, _PixelArray):
            if type(value) is not type(self):
                raise DcrTypeError(
                    f"cannot combine a {type(self).__name__} with a {type(value).__name__}",
                )
            arr = value.array
        elif np.isscalar(value) or (isinstance(value, np.ndarray) and value.ndim == 0):
            return value
        else:
            arr = np.asarray(value)
        if arr.shape != tuple(shape):
            raise DcrShapeError(
                f"{what}: shape {arr.shape} does not match {tuple(shape)}",
                valueShape=arr.shape,
                targetShape=tuple(shape),
            )
        return arr

    def _checkSameBox(self, other: Any, what: str) -> None:
        if isinstance(other, _PixelArray) and other.bbox != self.bbox:
            raise DcrShapeError(
                f"{what}: boxes differ ({self.bbox} and {other.bbox}); "
                "cut both to a common box first",
                left=self.bbox,
                right=other.bbox,
            )

    def _assignArrays(self, other: _PixelArray, bbox: Box | None) -> None:
        """Copy ``other`` into ``bbox`` (or the overlap), validating everything first."""
        if not isinstance(other, type(self)):
            raise DcrTypeError(f"assign needs a {type(self).__name__}", other=type(other).__name__)
        if bbox is None:
            region = self.bbox.intersection(other.bbox)
            if region.isEmpty():
                return
            target, source = region.slices(self.bbox), other.array[region.slices(other.bbox)]
        else:
            if not isinstance(bbox, Box):
                raise DcrTypeError("bbox must be a Box", bbox=bbox)
            if other.shape != bbox.shape:
                raise DcrShapeError(
                    f"assign: source shape {other.shape} does not match bbox shape {bbox.shape}",
                    sourceShape=other.shape,
                    bbox=bbox,
                )
            target, source = bbox.slices(self.bbox), other.array
        self._beforeWrite(other)
        self._array[target] = source

    def _beforeWrite(self, other: _PixelArray) -> None:
        """Prepare for writing the pixels of ``other`` (called after validation)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bbox={self.bbox!r}, dtype={self.dtype})"


class Image(_PixelArray):
    """A 2-D floating-point pixel array placed in parent coordinates.

    Parameters
    ----------
    array : array_like
        Pixel values, numpy ``(y, x)`` order. float32 and float64 arrays are used
        without copying (the image is a view of them); integer and boolean arrays are
        converted to float64.
    bbox : Box, optional
        Parent box covered by ``array`` (its shape must equal ``array.shape``).
    origin : tuple of int, optional
        Parent coordinates ``(x0, y0)`` of ``array[0, 0]``; ``(0, 0)`` when neither
        ``bbox`` nor ``origin`` is given.

    Raises
    ------
    DcrShapeError
        If ``array`` is not 2-D or does not match ``bbox``.
    DcrTypeError
        If the pixels are not real numbers.

    Notes
    -----
    ``image[box]`` is a view (shared memory) of the pixels inside ``box`` and keeps the
    parent coordinates; ``image[box] = value`` writes an `Image`, array or scalar into
    them. In-place arithmetic (``+= -= *= /=``) takes an `Image` with the same box, an
    array of the same shape, or a scalar; the binary operators return a new `Image`.
    ``==`` is identity: compare ``.array`` values instead.

    Examples
    --------
    >>> import numpy as np
    >>> image = Image(np.zeros((4, 6)), origin=(100, 200))
    >>> image[Box(101, 201, 2, 2)] = 1.0
    >>> float(image.array[1, 1]), image.bbox.end
    (1.0, (105, 203))
    """

    def __init__(
        self,
        array: Any,
        bbox: Box | None = None,
        origin: tuple[int, int] | None = None,
    ) -> None:
        arr = _imageArray(array)
        self._bbox = _resolveBox(arr.shape, bbox, origin, "image")
        self._array = arr

    @classmethod
    def fromBox(cls, bbox: Box, dtype: Any = np.float64, fill: float = 0.0) -> Image:
        """Make an image covering ``bbox`` filled with ``fill``."""
        if not isinstance(bbox, Box):
            raise DcrTypeError("bbox must be a Box", bbox=bbox)
        return cls(np.full(bbox.shape, fill, dtype=dtype), bbox=bbox)

    def __getitem__(self, box: Box) -> Image:
        box = self._checkBoxKey(box)
        return Image(self._array[box.slices(self._bbox)], bbox=box)

    def __setitem__(self, box: Box, value: Image | np.ndarray | float) -> None:
        box = self._checkBoxKey(box)
        sl = box.slices(self._bbox)
        self._array[sl] = self._valueArray(value, box.shape, "image[box] = value")

    def clone(self) -> Image:
        """Return a deep copy."""
        return Image(self._array.copy(), bbox=self._bbox)

    def assign(self, other: Image, bbox: Box | None = None) -> None:
        """Copy pixel values of ``other`` into this image.

        Parameters
        ----------
        other : Image
            Source pixels.
        bbox : Box, optional
            Destination region (parent coordinates) in this image; ``other`` must have
            its shape. When None, the region where the two images overlap in parent
            coordinates is copied (nothing when they are disjoint).
        """
        self._assignArrays(other, bbox)

    # -- arithmetic ----------------------------------------------------------------------
    def _operand(self, other: Any, what: str) -> Any:
        if isinstance(other, Mask | MaskedImage):
            raise DcrTypeError(f"{what}: cannot combine an Image with a {type(other).__name__}")
        self._checkSameBox(other, what)
        return self._valueArray(other, self.shape, what)

    def __iadd__(self, other: Any) -> Image:
        self._array += self._operand(other, "image += value")
        return self

    def __isub__(self, other: Any) -> Image:
        self._array -= self._operand(other, "image -= value")
        return self

    def __imul__(self, other: Any) -> Image:
        self._array *= self._operand(other, "image *= value")
        return self

    def __itruediv__(self, other: Any) -> Image:
        self._array /= self._operand(other, "image /= value")
        return self

    def __add__(self, other: Any) -> Image:
        return Image(self._array + self._operand(other, "image + value"), bbox=self._bbox)

    def __sub__(self, other: Any) -> Image:
        return Image(self._array - self._operand(other, "image - value"), bbox=self._bbox)

    def __mul__(self, other: Any) -> Image:
        return Image(self._array * self._operand(other, "image * value"), bbox=self._bbox)

    def __truediv__(self, other: Any) -> Image:
        return Image(self._array / self._operand(other, "image / value"), bbox=self._bbox)

    def __radd__(self, other: Any) -> Image:
        return Image(self._operand(other, "value + image") + self._array, bbox=self._bbox)

    def __rsub__(self, other: Any) -> Image:
        return Image(self._operand(other, "value - image") - self._array, bbox=self._bbox)

    def __rmul__(self, other: Any) -> Image:
        return Image(self._operand(other, "value * image") * self._array, bbox=self._bbox)

    def __rtruediv__(self, other: Any) -> Image:
        return Image(self._operand(other, "value / image") / self._array, bbox=self._bbox)

    def __neg__(self) -> Image:
        return Image(-self._array, bbox=self._bbox)

    # Keep numpy from broadcasting ``ndarray + Image`` element by element.
    __array_ufunc__ = None


def _checkPlanes(planes: Mapping[str, int]) -> dict[str, int]:
    """Validate a mask-plane dictionary ``name -> bit``."""
    if not isinstance(planes, Mapping):
        raise DcrTypeError("planes must be a dict of plane name -> bit index", planes=planes)
    out: dict[str, int] = {}
    seen: dict[int, str] = {}
    for name, bit in planes.items():
        if not isinstance(name, str) or not name:
            raise DcrTypeError("mask plane names must be non-empty strings", name=name)
        bit = _asInt(bit, "bit")
        if not 0 <= bit < 32:
            raise DcrValueError("mask plane bits must be in 0..31 (int32 mask)", name=name, bit=bit)
        if bit in seen:
            raise DcrValueError(
                f"mask planes {seen[bit]!r} and {name!r} share bit {bit}; give each its own bit",
            )
        seen[bit] = name
        out[name] = bit
    return out


def _maskArray(array: Any) -> np.ndarray:
    """Return ``array`` as an int32 ndarray (a view when it already is one)."""
    arr = np.asarray(array)
    if arr.dtype == np.int32:
        return arr
    if arr.dtype.kind == "b":
        return arr.astype(np.int32)
    if arr.dtype.kind not in "iu":
        raise DcrTypeError(
            "mask pixels must be integers (bit planes), not " + str(arr.dtype),
            dtype=str(arr.dtype),
        )
    if arr.size and (int(arr.min()) < -(2**31) or int(arr.max()) >= 2**32):
        raise DcrValueError(
            "mask values do not fit in 32 bits", min=int(arr.min()), max=int(arr.max())
        )
    if arr.dtype.kind == "u":
        # Values in [2**31, 2**32) have bit 31 set: reinterpret them as int32.
        return arr.astype(np.uint32).view(np.int32)
    return arr.astype(np.int32)


class Mask(_PixelArray):
    """A 2-D int32 array of bit flags with named planes, in parent coordinates.

    Parameters
    ----------
    array : array_like of int, optional
        Mask bits, numpy ``(y, x)`` order. An int32 array is used without copying.
        When None, ``bbox`` is required and the mask is all zeros.
    bbox : Box, optional
        Parent box covered by the mask.
    origin : tuple of int, optional
        Parent coordinates ``(x0, y0)`` of ``array[0, 0]``.
    planes : dict of str to int, optional
        Plane name -> bit index (0..31). Default: `DEFAULT_MASK_PLANES` (BAD 0, SAT 1,
        INTRP 2, CR 3, EDGE 4, DETECTED 5, DETECTED_NEGATIVE 6, SUSPECT 7, NO_DATA 8).

    Notes
    -----
    Views made with ``mask[box]`` share both the pixels and the plane dictionary, so a
    plane added to a view is known to its parent. `clone` copies both.
    """

    def __init__(
        self,
        array: Any = None,
        bbox: Box | None = None,
        origin: tuple[int, int] | None = None,
        planes: Mapping[str, int] | None = None,
    ) -> None:
        if array is None:
            if bbox is None:
                raise DcrValueError("Mask needs an array or a bbox; use Mask.fromBox(box)")
            if not isinstance(bbox, Box):
                raise DcrTypeError("bbox must be a Box", bbox=bbox)
            array = np.zeros(bbox.shape, dtype=np.int32)
        arr = _maskArray(array)
        self._bbox = _resolveBox(arr.shape, bbox, origin, "mask")
        self._array = arr
        self._planes = _checkPlanes(DEFAULT_MASK_PLANES if planes is None else planes)

    @classmethod
    def fromBox(cls, bbox: Box, planes: Mapping[str, int] | None = None) -> Mask:
        """Make an all-zero mask covering ``bbox``."""
        return cls(None, bbox=bbox, planes=planes)

    @classmethod
    def _view(cls, array: np.ndarray, bbox: Box, planes: dict[str, int]) -> Mask:
        mask = cls.__new__(cls)
        mask._array = array
        mask._bbox = bbox
        mask._planes = planes
        return mask

    @property
    def planes(self) -> dict[str, int]:
        """A copy of the plane dictionary ``name -> bit index``."""
        return dict(self._planes)

    def getMaskPlane(self, name: str) -> int:
        """Return the bit index of plane ``name``.

        Raises
        ------
        DcrValueError
            If the plane is unknown (the message lists the known planes).
        """
        if name not in self._planes:
            raise DcrValueError(
                f"unknown mask plane {name!r}; known planes: {', '.join(sorted(self._planes))}; "
                "add it with addMaskPlane",
                name=name,
            )
        return self._planes[name]

    def getPlaneBitMask(self, names: str | Iterable[str]) -> int:
        """Return the OR of ``1 << bit`` over the planes ``names`` (one name or several).

        Raises
        ------
        DcrValueError
            If a plane is unknown (the message lists the known planes).
        """
        if isinstance(names, str):
            names = [names]
        value = 0
        for name in names:
            value |= 1 << self.getMaskPlane(name)
        return value

    def addMaskPlane(self, name: str) -> int:
        """Add plane ``name`` on the lowest free bit and return its bit (existing: its bit).

        Raises
        ------
        DcrValueError
            If all 32 bits are in use.
        """
        if not isinstance(name, str) or not name:
            raise DcrTypeError("mask plane names must be non-empty strings", name=name)
        if name in self._planes:
            return self._planes[name]
        used = set(self._planes.values())
        for bit in range(32):
            if bit not in used:
                self._planes[name] = bit
                return bit
        raise DcrValueError(
            "all 32 mask bits are in use; no bit is left for another plane", name=name
        )

    def __getitem__(self, box: Box) -> Mask:
        box = self._checkBoxKey(box)
        return Mask._view(self._array[box.slices(self._bbox)], box, self._planes)

    def __setitem__(self, box: Box, value: Mask | np.ndarray | int) -> None:
        box = self._checkBoxKey(box)
        sl = box.slices(self._bbox)
        values = self._valueArray(value, box.shape, "mask[box] = value")
        if isinstance(value, Mask):
            self._mergePlanes(value)
        self._array[sl] = values

    def clone(self) -> Mask:
        """Return a deep copy (pixels and planes)."""
        return Mask._view(self._array.copy(), self._bbox, dict(self._planes))

    def assign(self, other: Mask, bbox: Box | None = None) -> None:
        """Copy the bits of ``other`` into this mask (see `Image.assign`).

        Planes of ``other`` that this mask lacks are added on the same bits; a plane
        with a different bit in the two masks raises `DcrValueError`.
        """
        self._assignArrays(other, bbox)

    def _beforeWrite(self, other: _PixelArray) -> None:
        self._mergePlanes(other)

    def _mergePlanes(self, other: Mask) -> None:
        """Add ``other``'s planes to this mask, requiring identical bits for shared names.

        Nothing is changed when a plane conflicts.
        """
        if other._planes is self._planes:
            return
        owner = {bit: name for name, bit in self._planes.items()}
        added: dict[str, int] = {}
        for name, bit in other._planes.items():
            mine = self._planes.get(name)
            if mine == bit:
                continue
            if mine is not None:
                raise DcrValueError(
                    f"mask plane {name!r} is bit {mine} here and bit {bit} in the other mask; "
                    "remap one mask before combining",
                )
            if bit in owner:
                raise DcrValueError(
                    f"mask plane {name!r} of the other mask uses bit {bit}, which is "
                    f"{owner[bit]!r} here; remap one mask before combining",
                )
            added[name] = bit
            owner[bit] = name
        self._planes.update(added)

    def __ior__(self, other: Mask | np.ndarray | int) -> Mask:
        self._checkSameBox(other, "mask |= value")
        value = self._valueArray(other, self.shape, "mask |= value")
        if isinstance(other, Mask):
            self._mergePlanes(other)
        self._array |= _maskArray(value)
        return self

    def __or__(self, other: Mask | np.ndarray | int) -> Mask:
        out = self.clone()
        out |= other
        return out

    __array_ufunc__ = None


class MaskedImage:
    """An `Image` with its `Mask` and variance `Image`, all on the same box.

    Parameters
    ----------
    image : Image
        Pixel values (counts).
    mask : Mask, optional
        Mask bits; all zeros when None.
    variance : Image, optional
        Per-pixel variance (counts squared); all ones when None, that is unit weights.

    Raises
    ------
    DcrTypeError
        If an argument has the wrong class.
    DcrShapeError
        If the image, mask and variance boxes differ.
    """

    def __init__(
        self, image: Image, mask: Mask | None = None, variance: Image | None = None
    ) -> None:
        if not isinstance(image, Image):
            raise DcrTypeError(
                "image must be an Image; use MaskedImage.fromArrays for numpy arrays",
                image=type(image).__name__,
            )
        if mask is None:
            mask = Mask.fromBox(image.bbox)
        elif not isinstance(mask, Mask):
            raise DcrTypeError("mask must be a Mask or None", mask=type(mask).__name__)
        if variance is None:
            variance = Image(np.ones(image.shape, dtype=image.dtype), bbox=image.bbox)
        elif not isinstance(variance, Image):
            raise DcrTypeError(
                "variance must be an Image or None", variance=type(variance).__name__
            )
        for name, other in (("mask", mask), ("variance", variance)):
            if other.bbox != image.bbox:
                raise DcrShapeError(
                    f"image shape {image.shape} and {name} shape {other.shape} "
                    f"(boxes {image.bbox} and {other.bbox}) must match",
                    imageBox=image.bbox,
                    **{f"{name}Box": other.bbox},
                )
        self._image = image
        self._mask = mask
        self._variance = variance

    @classmethod
    def fromArrays(
        cls,
        image: Any,
        mask: Any = None,
        variance: Any = None,
        origin: tuple[int, int] = (0, 0),
    ) -> MaskedImage:
        """Make a masked image from numpy arrays (or `Image`/`Mask` objects).

        Parameters
        ----------
        image : array_like
            Pixel values (counts), ``(y, x)``.
        mask : array_like of int or Mask, optional
            Mask bits with the default planes; zeros when None.
        variance : array_like, optional
            Variance (counts squared); ones when None.
        origin : tuple of int, optional
            Parent coordinates ``(x0, y0)`` of ``image[0, 0]``.
        """
        img = image if isinstance(image, Image) else Image(image, origin=origin)
        shape = img.shape
        if mask is not None and not isinstance(mask, Mask):
            arr = np.asarray(mask)
            if arr.shape != shape:
                raise DcrShapeError(
                    f"image shape {shape} and mask shape {arr.shape} must match",
                    imageShape=shape,
                    maskShape=arr.shape,
                )
            mask = Mask(arr, bbox=img.bbox)
        if variance is not None and not isinstance(variance, Image):
            arr = np.asarray(variance)
            if arr.shape != shape:
                raise DcrShapeError(
                    f"image shape {shape} and variance shape {arr.shape} must match",
                    imageShape=shape,
                    varianceShape=arr.shape,
                )
            variance = Image(arr, bbox=img.bbox)
        return cls(img, mask, variance)

    @property
    def image(self) -> Image:
        """Pixel values."""
        return self._image

    @property
    def mask(self) -> Mask:
        """Mask bits."""
        return self._mask

    @property
    def variance(self) -> Image:
        """Per-pixel variance."""
        return self._variance

    @property
    def bbox(self) -> Box:
        """Parent box of the three planes."""
        return self._image.bbox

    @property
    def shape(self) -> tuple[int, int]:
        """Numpy shape ``(height, width)``."""
        return self._image.shape

    def __getitem__(self, box: Box) -> MaskedImage:
        return MaskedImage(self._image[box], self._mask[box], self._variance[box])

    def __setitem__(self, box: Box, value: MaskedImage) -> None:
        if not isinstance(value, MaskedImage):
            raise DcrTypeError(
                "maskedImage[box] = value needs a MaskedImage", value=type(value).__name__
            )
        self._image[box] = value.image
        self._mask[box] = value.mask
        self._variance[box] = value.variance

    def clone(self) -> MaskedImage:
        """Return a deep copy."""
        return MaskedImage(self._image.clone(), self._mask.clone(), self._variance.clone())

    def assign(self, other: MaskedImage, bbox: Box | None = None) -> None:
        """Copy image, mask and variance of ``other`` into this one (see `Image.assign`)."""
        if not isinstance(other, MaskedImage):
            raise DcrTypeError("assign needs a MaskedImage", other=type(other).__name__)
        self._image.assign(other.image, bbox)
        self._mask.assign(other.mask, bbox)
        self._variance.assign(other.variance, bbox)

    def __repr__(self) -> str:
        return f"MaskedImage(bbox={self.bbox!r}, dtype={self._image.dtype})"


# ----------------------------------------------------------------------------------------
# Filter, PSF, calibration, statistics
# ----------------------------------------------------------------------------------------


def _positiveFinite(value: Any, name: str, unit: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value}) from None
    if not math.isfinite(out) or out <= 0.0:
        raise DcrValueError(f"{name} must be a positive, finite number in {unit}", **{name: value})
    return out


@dataclass(frozen=True)
class Filter:
    """A photometric band: name, effective wavelength and bandwidth.

    Parameters
    ----------
    bandName : str
        Band name, for example ``"g"``.
    effectiveWavelength : float
        Effective wavelength of the band, in nm.
    bandwidth : float
        Full width of the band, in nm; the band spans
        ``effectiveWavelength -/+ bandwidth / 2``.

    Raises
    ------
    DcrValueError
        If a wavelength is not positive and finite, or ``bandwidth >= 2 *
        effectiveWavelength`` (the band would reach zero wavelength).

    Examples
    --------
    >>> g = Filter.fromBand("g")
    >>> round(g.lambdaMin, 1), round(g.lambdaMax, 1)
    (392.4, 572.9)
    """

    bandName: str
    effectiveWavelength: float
    bandwidth: float

    def __post_init__(self) -> None:
        if not isinstance(self.bandName, str):
            raise DcrTypeError("bandName must be a string", bandName=self.bandName)
        eff = _positiveFinite(self.effectiveWavelength, "effectiveWavelength", "nm")
        bw = _positiveFinite(self.bandwidth, "bandwidth", "nm")
        if bw >= 2.0 * eff:
            raise DcrValueError(
                "bandwidth must be less than twice the effective wavelength "
                "(the band would extend to zero or negative wavelength); check the units (nm)",
                effectiveWavelength=eff,
                bandwidth=bw,
            )
        object.__setattr__(self, "effectiveWavelength", eff)
        object.__setattr__(self, "bandwidth", bw)

    @property
    def lambdaMin(self) -> float:
        """Blue edge of the band, ``effectiveWavelength - bandwidth / 2`` (nm)."""
        return self.effectiveWavelength - self.bandwidth / 2.0

    @property
    def lambdaMax(self) -> float:
        """Red edge of the band, ``effectiveWavelength + bandwidth / 2`` (nm)."""
        return self.effectiveWavelength + self.bandwidth / 2.0

    @classmethod
    def fromBand(cls, name: str) -> Filter:
        """Return the Rubin band ``name`` (u, g, r, i, z or y) from `RUBIN_BANDS`.

        Raises
        ------
        DcrValueError
            If the band is not in the table (the message lists the known bands).
        """
        key = name.strip() if isinstance(name, str) else name
        if key not in RUBIN_BANDS:
            raise DcrValueError(
                f"unknown band {name!r}; known Rubin bands: {' '.join(RUBIN_BANDS)}; "
                "for another band give Filter(bandName, effectiveWavelength, bandwidth) in nm",
                name=name,
            )
        eff, bw = RUBIN_BANDS[key]
        return cls(key, eff, bw)


class Psf:
    """Base class of point-spread functions.

    A PSF has a size (`fwhm`, pixels) at the band's effective wavelength and may vary
    with wavelength as ``fwhm(lambda) = fwhm * (lambda / effectiveWavelength) ** alpha``
    (``alpha = -0.2`` for Kolmogorov seeing, 0 for an achromatic PSF).

    Parameters
    ----------
    fwhm : float
        Full width at half maximum at the effective wavelength, in pixels.
    alpha : float, optional
        Chromatic exponent of the PSF size (dimensionless).
    effectiveWavelength : float, optional
        Wavelength (nm) at which the PSF has size ``fwhm``; needed only to evaluate a
        chromatic PSF (``alpha != 0``) at another wavelength.

    Notes
    -----
    Subclasses implement ``_kernel(scale)``, the kernel image with its size multiplied
    by ``scale``.
    """

    def __init__(
        self, fwhm: float, alpha: float = 0.0, effectiveWavelength: float | None = None
    ) -> None:
        try:
            fwhmValue = float(fwhm)
            alphaValue = float(alpha)
        except (TypeError, ValueError):
            raise DcrTypeError(
                "fwhm (pixels) and alpha must be numbers", fwhm=fwhm, alpha=alpha
            ) from None
        if not math.isfinite(fwhmValue) or fwhmValue < 0.0:
            raise DcrValueError("fwhm must be a finite, non-negative number of pixels", fwhm=fwhm)
        if not math.isfinite(alphaValue):
            raise DcrValueError("alpha must be finite", alpha=alpha)
        self._fwhm = fwhmValue
        self._alpha = alphaValue
        self._effectiveWavelength = (
            None
            if effectiveWavelength is None
            else _positiveFinite(effectiveWavelength, "effectiveWavelength", "nm")
        )

    @property
    def fwhm(self) -> float:
        """Full width at half maximum at the effective wavelength (pixels)."""
        return self._fwhm

    @property
    def alpha(self) -> float:
        """Chromatic exponent: size is proportional to ``wavelength ** alpha``."""
        return self._alpha

    @property
    def effectiveWavelength(self) -> float | None:
        """Wavelength (nm) at which the PSF has size `fwhm`, or None."""
        return self._effectiveWavelength

    def _scale(self, wavelength: float | None) -> float:
        if wavelength is None or self._alpha == 0.0:
            if wavelength is not None:
                _positiveFinite(wavelength, "wavelength", "nm")
            return 1.0
        wl = _positiveFinite(wavelength, "wavelength", "nm")
        if self._effectiveWavelength is None:
            raise DcrValueError(
                "this PSF is chromatic (alpha != 0) but has no effectiveWavelength; "
                "give effectiveWavelength (nm) when making it",
                alpha=self._alpha,
                wavelength=wavelength,
            )
        return (wl / self._effectiveWavelength) ** self._alpha

    def computeFwhm(self, wavelength: float | None = None) -> float:
        """Return the FWHM (pixels) at ``wavelength`` (nm; None: the effective wavelength)."""
        return self._fwhm * self._scale(wavelength)

    def computeKernelImage(self, wavelength: float | None = None) -> np.ndarray:
        """Return the PSF image at ``wavelength``.

        Parameters
        ----------
        wavelength : float, optional
            Wavelength in nm; None for the effective wavelength.

        Returns
        -------
        numpy.ndarray
            Odd-sized square float64 array, centred on its middle pixel, summing to 1.
        """
        return self._kernel(self._scale(wavelength))

    def _kernel(self, scale: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define its kernel")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(fwhm={self._fwhm:.4g}, alpha={self._alpha:.4g}, "
            f"effectiveWavelength={self._effectiveWavelength})"
        )


class GaussianPsf(Psf):
    """A circular Gaussian PSF.

    Parameters
    ----------
    fwhm : float
        Full width at half maximum at the effective wavelength, in pixels (> 0).
    alpha : float, optional
        Chromatic exponent of the size (dimensionless; 0: achromatic).
    effectiveWavelength : float, optional
        Wavelength (nm) at which the size is ``fwhm``.
    kernelSize : int, optional
        Odd width (pixels) of the kernel images; by default ``2 * ceil(5 sigma) + 1`` of
        the requested wavelength, at least 3.

    Notes
    -----
    The kernel samples the Gaussian at pixel centres and is normalised to unit sum
    (no extra pixel-response convolution).
    """

    def __init__(
        self,
        fwhm: float,
        alpha: float = 0.0,
        effectiveWavelength: float | None = None,
        kernelSize: int | None = None,
    ) -> None:
        super().__init__(fwhm, alpha, effectiveWavelength)
        if self._fwhm <= 0.0:
            raise DcrValueError("GaussianPsf fwhm must be positive (pixels)", fwhm=fwhm)
        if kernelSize is not None:
            kernelSize = _asInt(kernelSize, "kernelSize")
            if kernelSize < 1 or kernelSize % 2 == 0:
                raise DcrValueError(
                    "kernelSize must be a positive odd integer", kernelSize=kernelSize
                )
        self._kernelSize = kernelSize

    @property
    def sigma(self) -> float:
        """Gaussian standard deviation at the effective wavelength (pixels)."""
        return self._fwhm / FWHM_PER_SIGMA

    def _kernel(self, scale: float) -> np.ndarray:
        sigma = self.sigma * scale
        size = self._kernelSize
        if size is None:
            size = max(2 * math.ceil(5.0 * sigma) + 1, 3)
        half = size // 2
        coord = np.arange(-half, half + 1, dtype=np.float64)
        profile = np.exp(-0.5 * (coord / sigma) ** 2)
        kernel = np.outer(profile, profile)
        return kernel / kernel.sum()


def _measureFwhm(kernel: np.ndarray, upsample: int = 8) -> float:
    """Full width at half maximum (pixels) of a centred kernel image.

    The kernel is resampled ``upsample`` times finer with a cubic spline around its core,
    and the FWHM is the diameter of the circle whose area equals that of the region above
    half the peak: exact for circular profiles of any shape (Gaussian, Moffat,
    Kolmogorov), unlike a second-moment width, which wide wings inflate.
    """
    from scipy import ndimage

    peak = float(kernel.max())
    ys, xs = np.nonzero(kernel >= 0.25 * peak)
    y0, y1 = max(ys.min() - 2, 0), min(ys.max() + 3, kernel.shape[0])
    x0, x1 = max(xs.min() - 2, 0), min(xs.max() + 3, kernel.shape[1])
    core = np.asarray(kernel[y0:y1, x0:x1], dtype=np.float64)
    fine = ndimage.zoom(core, upsample, order=3, mode="nearest", grid_mode=True)
    area = np.count_nonzero(fine >= 0.5 * fine.max()) / upsample**2
    return 2.0 * math.sqrt(area / math.pi)


class ImagePsf(Psf):
    """A PSF given as an image.

    Parameters
    ----------
    array : array_like
        Square kernel with odd size, its peak on the middle pixel, finite values and a
        positive sum; it is copied and normalised to unit sum.
    alpha : float, optional
        Chromatic exponent of the size (dimensionless; 0: achromatic).
    effectiveWavelength : float, optional
        Wavelength (nm) at which ``array`` applies.
    fwhm : float, optional
        FWHM in pixels; measured from the image's half-maximum area when None
        (Gaussian-equivalent width).

    Raises
    ------
    DcrValueError
        If the image is not square with odd sides, is off-centre (its maximum is not the
        middle pixel, or its centroid is more than half a pixel from it), has non-finite
        values or a sum <= 0.

    Notes
    -----
    At another wavelength the kernel is resampled about its centre by the factor
    ``(wavelength / effectiveWavelength) ** alpha`` with a cubic spline
    (`scipy.ndimage.map_coordinates`) on the same grid and renormalised.
    """

    def __init__(
        self,
        array: Any,
        alpha: float = 0.0,
        effectiveWavelength: float | None = None,
        fwhm: float | None = None,
    ) -> None:
        kernel = np.array(array, dtype=np.float64)
        if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
            raise DcrValueError(
                f"PSF image must be square with odd sides so it has a centre pixel; got shape "
                f"{kernel.shape}; pad or crop it to an odd size",
                shape=kernel.shape,
            )
        if not np.all(np.isfinite(kernel)):
            raise DcrValueError(
                "PSF image has NaN or infinite pixels; replace them (e.g. with 0)",
                numBad=int(np.count_nonzero(~np.isfinite(kernel))),
            )
        total = kernel.sum()
        if not total > 0.0:
            raise DcrValueError("PSF image must have a positive sum", sum=float(total))
        half = kernel.shape[0] // 2
        if kernel[half, half] < kernel.max():
            peak = np.unravel_index(int(np.argmax(kernel)), kernel.shape)
            raise DcrValueError(
                f"PSF image is off-centre: its peak is at (y, x) = {tuple(int(v) for v in peak)}, "
                f"not at the centre ({half}, {half}); recentre it",
                peak=tuple(int(v) for v in peak),
                centre=(half, half),
            )
        coord = np.arange(kernel.shape[0], dtype=np.float64) - half
        yc = float((kernel.sum(axis=1) * coord).sum() / total)
        xc = float((kernel.sum(axis=0) * coord).sum() / total)
        if math.hypot(xc, yc) > 0.5:
            raise DcrValueError(
                f"PSF image is off-centre: its centroid is ({xc:.3f}, {yc:.3f}) pixels (x, y) "
                "from the centre pixel; recentre it",
                centroid=(xc, yc),
            )
        kernel /= total
        measured = _measureFwhm(kernel) if fwhm is None else fwhm
        super().__init__(measured, alpha, effectiveWavelength)
        if fwhm is not None and self._fwhm <= 0.0:
            raise DcrValueError("ImagePsf fwhm must be positive (pixels)", fwhm=fwhm)
        self._array = kernel

    @property
    def array(self) -> np.ndarray:
        """A copy of the normalised kernel at the effective wavelength."""
        return self._array.copy()

    def _kernel(self, scale: float) -> np.ndarray:
        if scale == 1.0:
            return self._array.copy()
        from scipy import ndimage

        half = self._array.shape[0] // 2
        coord = np.arange(self._array.shape[0], dtype=np.float64) - half
        yy, xx = np.meshgrid(coord, coord, indexing="ij")
        coords = np.array([yy / scale + half, xx / scale + half])
        kernel = ndimage.map_coordinates(self._array, coords, order=3, mode="constant", cval=0.0)
        total = kernel.sum()
        if not total > 0.0:
            raise DcrValueError(
                "PSF resampled to this wavelength has no flux; the kernel is too small",
                scale=scale,
            )
        return kernel / total


def _scaleValues(values: Any, factor: float) -> Any:
    """Multiply a number, array or `Image` by ``factor``, returning the same kind."""
    if isinstance(values, Image):
        return values * factor
    if np.isscalar(values):
        return float(values) * factor
    return np.asarray(values, dtype=np.float64) * factor


class PhotoCalib:
    """Photometric calibration: a constant factor from counts to nanojansky.

    Parameters
    ----------
    calibrationMean : float
        Flux density in nJy of one count (instrumental flux unit).
    """

    def __init__(self, calibrationMean: float) -> None:
        self._calibrationMean = _positiveFinite(calibrationMean, "calibrationMean", "nJy per count")

    @classmethod
    def fromZeroPoint(cls, zeroPoint: float) -> PhotoCalib:
        """Make the calibration of an AB magnitude zero point (magnitude of one count).

        One nJy is AB magnitude 31.4 (AB: m = -2.5 log10(f / 3631 Jy), Oke & Gunn 1983),
        so one count is ``10 ** ((31.4 - zeroPoint) / 2.5)`` nJy.
        """
        zp = float(zeroPoint)
        if not math.isfinite(zp):
            raise DcrValueError("zeroPoint must be finite (AB mag)", zeroPoint=zeroPoint)
        return cls(10.0 ** ((31.4 - zp) / 2.5))

    @property
    def calibrationMean(self) -> float:
        """Flux density in nJy of one count."""
        return self._calibrationMean

    def getCalibrationMean(self) -> float:
        """Return nJy per count."""
        return self._calibrationMean

    def instFluxToNanojansky(self, instFlux: Any) -> Any:
        """Convert instrumental flux (counts; number, array or `Image`) to nJy."""
        return _scaleValues(instFlux, self._calibrationMean)

    def nanojanskyToInstFlux(self, flux: Any) -> Any:
        """Convert flux density in nJy (number, array or `Image`) to counts."""
        return _scaleValues(flux, 1.0 / self._calibrationMean)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhotoCalib) and other._calibrationMean == self._calibrationMean

    def __hash__(self) -> int:
        return hash(("PhotoCalib", self._calibrationMean))

    def __repr__(self) -> str:
        return f"PhotoCalib(calibrationMean={self._calibrationMean!r})"


class StatisticsControl:
    """Which mask planes exclude pixels from statistics, and how to sigma-clip.

    Parameters
    ----------
    badMaskPlanes : iterable of str, optional
        Mask planes whose pixels are left out.
    numSigmaClip : float, optional
        Clipping threshold, in standard deviations.
    numIter : int, optional
        Maximum number of clipping iterations (0: no clipping).

    Notes
    -----
    Each iteration keeps the pixels within ``numSigmaClip`` standard deviations of the
    median of the pixels kept so far and stops early when nothing changes; the mean and
    population standard deviation (ddof=0) of the survivors are returned. This is the
    algorithm of `astropy.stats.sigma_clipped_stats` with its default median centre and
    ``maxiters=numIter``.
    """

    def __init__(
        self,
        badMaskPlanes: Iterable[str] = ("BAD", "SAT", "NO_DATA", "EDGE", "CR"),
        numSigmaClip: float = 3.0,
        numIter: int = 2,
    ) -> None:
        if isinstance(badMaskPlanes, str):
            badMaskPlanes = (badMaskPlanes,)
        self.badMaskPlanes = tuple(badMaskPlanes)
        for name in self.badMaskPlanes:
            if not isinstance(name, str):
                raise DcrTypeError("badMaskPlanes must be plane names (strings)", name=name)
        self.numSigmaClip = _positiveFinite(numSigmaClip, "numSigmaClip", "standard deviations")
        self.numIter = _asInt(numIter, "numIter")
        if self.numIter < 0:
            raise DcrValueError("numIter must be >= 0", numIter=numIter)

    def getAndMask(self, mask: Mask) -> int:
        """Return the bits of the bad planes that ``mask`` defines (others are skipped)."""
        if not isinstance(mask, Mask):
            raise DcrTypeError("getAndMask needs a Mask", mask=type(mask).__name__)
        planes = mask.planes
        value = 0
        for name in self.badMaskPlanes:
            if name in planes:
                value |= 1 << planes[name]
        return value

    def clippedStats(
        self,
        array: np.ndarray | Image,
        maskArray: np.ndarray | None = None,
        mask: Mask | None = None,
    ) -> tuple[float, float]:
        """Return the sigma-clipped mean and standard deviation of the good pixels.

        Parameters
        ----------
        array : numpy.ndarray or Image
            Pixel values.
        maskArray : numpy.ndarray of int, optional
            Mask bits with the default plane layout (`DEFAULT_MASK_PLANES`).
        mask : Mask, optional
            A mask with its own planes (give ``maskArray`` or ``mask``, not both).

        Returns
        -------
        mean, std : float
            Statistics of the unmasked, finite, unclipped pixels; NaN when no pixel is
            left.
        """
        values = array.array if isinstance(array, Image) else np.asarray(array, dtype=np.float64)
        if maskArray is not None and mask is not None:
            raise DcrValueError("give maskArray or mask, not both")
        good = np.isfinite(values)
        if mask is not None:
            if not isinstance(mask, Mask):
                raise DcrTypeError("mask must be a Mask", mask=type(mask).__name__)
            bits, maskValues = self.getAndMask(mask), mask.array
        elif maskArray is not None:
            maskValues = np.asarray(maskArray)
            bits = self.getAndMask(Mask.fromBox(Box(0, 0, 0, 0)))
        else:
            maskValues, bits = None, 0
        if maskValues is not None:
            if maskValues.shape != values.shape:
                raise DcrShapeError(
                    f"array shape {values.shape} and mask shape {maskValues.shape} must match",
                    arrayShape=values.shape,
                    maskShape=maskValues.shape,
                )
            good &= (maskValues & bits) == 0
        data = values[good].astype(np.float64)
        for _ in range(self.numIter):
            if data.size == 0:
                break
            centre = np.median(data)
            std = data.std()
            keep = np.abs(data - centre) <= self.numSigmaClip * std
            if keep.all():
                break
            data = data[keep]
        if data.size == 0:
            return (math.nan, math.nan)
        return (float(data.mean()), float(data.std()))

    def __repr__(self) -> str:
        return (
            f"StatisticsControl(badMaskPlanes={self.badMaskPlanes!r}, "
            f"numSigmaClip={self.numSigmaClip!r}, numIter={self.numIter!r})"
        )


# ----------------------------------------------------------------------------------------
# Exposure
# ----------------------------------------------------------------------------------------

_EXPOSURE_ATTRIBUTES = ("wcs", "psf", "visitInfo", "filter", "photoCalib", "metadata")


def _checkWcs(wcs: Any) -> WCS | None:
    if wcs is None:
        return None
    if not isinstance(wcs, WCS):
        raise DcrTypeError("wcs must be an astropy.wcs.WCS or None", wcs=type(wcs).__name__)
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise DcrValueError(
            "wcs must be a 2-axis celestial WCS (use wcs.celestial)", naxis=wcs.naxis
        )
    return wcs


def _shiftedWcs(wcs: WCS, dx: float, dy: float) -> WCS:
    """Return a copy of ``wcs`` whose pixel coordinates are shifted by ``-(dx, dy)``.

    A pixel at ``(x, y)`` in the input frame is at ``(x - dx, y - dy)`` in the output
    frame; SIP distortion (defined relative to CRPIX) moves with the reference pixel.
    """
    from astropy.wcs import Sip

    out = wcs.deepcopy()
    out.wcs.crpix = out.wcs.crpix - np.array([dx, dy])
    if out.sip is not None:
        out.sip = Sip(out.sip.a, out.sip.b, out.sip.ap, out.sip.bp, out.wcs.crpix)
    return out


def _isStructuralKey(key: str) -> bool:
    """Return True for FITS keys that describe the data layout rather than the exposure."""
    if key in ("SIMPLE", "BITPIX", "EXTEND", "PCOUNT", "GCOUNT", "XTENSION", "EXTNAME", "BUNIT"):
        return True
    return key.startswith("NAXIS") or key in ("BSCALE", "BZERO")


def _setHeaderKey(header: fits.Header, key: str, value: Any) -> None:
    """Set ``key`` in ``header``, as a HIERARCH card when it is not a standard FITS keyword."""
    upper = key.upper()
    if len(upper) <= 8 and all(c.isupper() or c.isdigit() or c in "-_" for c in upper):
        header[upper] = value
    else:
        header.set(f"HIERARCH {key}", value)


class Exposure:
    """A masked image with its WCS, PSF, visit information, filter and calibration.

    Parameters
    ----------
    maskedImage : MaskedImage
        Pixels, mask and variance.
    wcs : astropy.wcs.WCS, optional
        Celestial WCS mapping PARENT 0-based pixel coordinates ``(x, y)`` to ICRS sky
        coordinates. Cutouts keep the same WCS object.
    psf : Psf, optional
        Point-spread function.
    visitInfo : object, optional
        Visit metadata (`dcrmodel.observation.VisitInfo`).
    filter : Filter, optional
        Band of the exposure.
    photoCalib : PhotoCalib, optional
        Counts to nJy.
    metadata : astropy.io.fits.Header or dict, optional
        Extra header keys.

    Raises
    ------
    DcrTypeError
        If an argument has the wrong class.
    """

    def __init__(
        self,
        maskedImage: MaskedImage,
        wcs: WCS | None = None,
        psf: Psf | None = None,
        visitInfo: Any = None,
        filter: Filter | None = None,
        photoCalib: PhotoCalib | None = None,
        metadata: fits.Header | Mapping[str, Any] | None = None,
    ) -> None:
        # Validated by the property setters below, in argument order.
        self.maskedImage = maskedImage
        self.wcs = wcs
        self.psf = psf
        self.visitInfo = visitInfo
        self.filter = filter
        self.photoCalib = photoCalib
        self.metadata = metadata

    @property
    def maskedImage(self) -> MaskedImage:
        """Pixels, mask and variance."""
        return self._maskedImage

    @maskedImage.setter
    def maskedImage(self, value: MaskedImage) -> None:
        if not isinstance(value, MaskedImage):
            raise DcrTypeError(
                "maskedImage must be a MaskedImage; use Exposure.fromArrays for numpy arrays",
                maskedImage=type(value).__name__,
            )
        self._maskedImage = value

    @property
    def wcs(self) -> WCS | None:
        """Celestial WCS from parent 0-based pixel coordinates ``(x, y)`` to ICRS, or None."""
        return self._wcs

    @wcs.setter
    def wcs(self, value: WCS | None) -> None:
        self._wcs = _checkWcs(value)

    @property
    def psf(self) -> Psf | None:
        """Point-spread function, or None."""
        return self._psf

    @psf.setter
    def psf(self, value: Psf | None) -> None:
        if value is not None and not isinstance(value, Psf):
            raise DcrTypeError(
                "psf must be a Psf (GaussianPsf, ImagePsf) or None", psf=type(value).__name__
            )
        self._psf = value

    @property
    def filter(self) -> Filter | None:
        """Band of the exposure, or None."""
        return self._filter

    @filter.setter
    def filter(self, value: Filter | None) -> None:
        if value is not None and not isinstance(value, Filter):
            raise DcrTypeError(
                "filter must be a Filter or None (for a Rubin band use Filter.fromBand)",
                filter=type(value).__name__,
            )
        self._filter = value

    @property
    def photoCalib(self) -> PhotoCalib | None:
        """Calibration from counts to nJy, or None."""
        return self._photoCalib

    @photoCalib.setter
    def photoCalib(self, value: PhotoCalib | None) -> None:
        if value is not None and not isinstance(value, PhotoCalib):
            raise DcrTypeError(
                "photoCalib must be a PhotoCalib or None", photoCalib=type(value).__name__
            )
        self._photoCalib = value

    @property
    def metadata(self) -> fits.Header:
        """Extra header keys (an astropy Header)."""
        return self._metadata

    @metadata.setter
    def metadata(self, value: fits.Header | Mapping[str, Any] | None) -> None:
        if value is None:
            header = fits.Header()
        elif isinstance(value, fits.Header):
            header = value
        elif isinstance(value, Mapping):
            header = fits.Header()
            for key, item in value.items():
                _setHeaderKey(header, str(key), item)
        else:
            raise DcrTypeError(
                "metadata must be an astropy Header or a dict", metadata=type(value).__name__
            )
        self._metadata = header

    @property
    def image(self) -> Image:
        """Pixel values."""
        return self.maskedImage.image

    @property
    def mask(self) -> Mask:
        """Mask bits."""
        return self.maskedImage.mask

    @property
    def variance(self) -> Image:
        """Per-pixel variance."""
        return self.maskedImage.variance

    @property
    def bbox(self) -> Box:
        """Parent box of the pixels."""
        return self.maskedImage.bbox

    def _with(self, maskedImage: MaskedImage, wcs: WCS | None, metadata: fits.Header) -> Exposure:
        return Exposure(
            maskedImage,
            wcs=wcs,
            psf=self.psf,
            visitInfo=self.visitInfo,
            filter=self.filter,
            photoCalib=self.photoCalib,
            metadata=metadata,
        )

    def __getitem__(self, box: Box) -> Exposure:
        """Return a cutout (a view of the pixels) sharing the WCS and the other metadata."""
        return self._with(self.maskedImage[box], self.wcs, self.metadata)

    def clone(self) -> Exposure:
        """Return a deep copy of the pixels, WCS and header (PSF etc. are shared, immutable)."""
        return self._with(
            self.maskedImage.clone(),
            None if self.wcs is None else self.wcs.deepcopy(),
            self.metadata.copy(),
        )

    @classmethod
    def fromArrays(
        cls,
        image: Any,
        variance: Any = None,
        mask: Any = None,
        origin: tuple[int, int] = (0, 0),
        **metadata: Any,
    ) -> Exposure:
        """Make an exposure from numpy arrays.

        Parameters
        ----------
        image : array_like
            Pixel values (counts), ``(y, x)``.
        variance : array_like, optional
            Variance (counts squared); ones when None.
        mask : array_like of int or Mask, optional
            Mask bits (default planes); zeros when None.
        origin : tuple of int, optional
            Parent coordinates ``(x0, y0)`` of ``image[0, 0]``.
        **metadata
            ``wcs``, ``psf``, ``visitInfo``, ``filter``, ``photoCalib`` and ``metadata``
            set the exposure's attributes; any other keyword with a string, number or
            bool value becomes a header key of `metadata`.
        """
        attributes = {k: metadata.pop(k) for k in list(metadata) if k in _EXPOSURE_ATTRIBUTES}
        header = attributes.pop("metadata", None)
        header = (
            fits.Header()
            if header is None
            else (
                header.copy()
                if isinstance(header, fits.Header)
                else fits.Header(list(dict(header).items()))
            )
        )
        for key, value in metadata.items():
            if not isinstance(value, str | numbers.Number | bool):
                raise DcrTypeError(
                    f"unknown keyword {key!r}; Exposure attributes are "
                    f"{', '.join(_EXPOSURE_ATTRIBUTES)}, and extra header keys take "
                    "string, number or bool values",
                    key=key,
                )
            _setHeaderKey(header, key, value)
        maskedImage = MaskedImage.fromArrays(image, mask=mask, variance=variance, origin=origin)
        return cls(maskedImage, metadata=header, **attributes)

    def toCCDData(
        self,
        unit: str = "adu",
        badMaskPlanes: Iterable[str] = ("BAD", "SAT", "NO_DATA", "EDGE", "CR"),
    ) -> Any:
        """Return an `astropy.nddata.CCDData` copy of this exposure.

        Parameters
        ----------
        unit : str, optional
            Unit of the pixel values.
        badMaskPlanes : iterable of str, optional
            Mask planes whose pixels are flagged in the boolean ``CCDData.mask``; planes
            this mask does not define are skipped.

        Returns
        -------
        astropy.nddata.CCDData
            ``data`` the image; ``uncertainty`` a ``VarianceUncertainty``; ``mask`` True
            where a bad plane is set; ``flags`` the int32 mask bits; ``wcs`` the WCS
            shifted to the array's own 0-based pixels; ``meta`` the header plus
            ``MP_<PLANE> = bit`` for every mask plane and ``LTV1 = -x0``,
            ``LTV2 = -y0`` for the parent origin.

        Notes
        -----
        The PSF, visit information, filter and calibration are not carried; give them to
        `fromCCDData`. ``CCDData.write`` keeps the mask bits only with
        ``hdu_flags="FLAGS"``; the dcrmodel FITS writer keeps everything.
        """
        from astropy.nddata import CCDData, VarianceUncertainty

        meta = self.metadata.copy()
        for name, bit in self.mask.planes.items():
            _setHeaderKey(meta, f"MP_{name}", bit)
        x0, y0 = self.bbox.begin
        meta["LTV1"] = -x0
        meta["LTV2"] = -y0
        wcs = None if self.wcs is None else _shiftedWcs(self.wcs, x0, y0)
        bad = StatisticsControl(badMaskPlanes=badMaskPlanes).getAndMask(self.mask)
        return CCDData(
            self.image.array.copy(),
            unit=unit,
            uncertainty=VarianceUncertainty(self.variance.array.copy()),
            mask=(self.mask.array & bad) != 0,
            flags=self.mask.array.copy(),
            wcs=wcs,
            meta=meta,
        )

    @classmethod
    def fromCCDData(
        cls,
        ccd: Any,
        psf: Psf | None = None,
        visitInfo: Any = None,
        filter: Filter | None = None,
        photoCalib: PhotoCalib | None = None,
    ) -> Exposure:
        """Make an exposure from an `astropy.nddata.CCDData`.

        The parent origin comes from ``LTV1``/``LTV2`` in ``ccd.meta`` (0 when absent),
        mask planes from its ``MP_*`` keys (the default planes when none). Integer
        ``ccd.flags`` are taken as the mask bits; otherwise the boolean ``ccd.mask`` sets
        the BAD plane. A ``VarianceUncertainty``, ``StdDevUncertainty`` or
        ``InverseVariance`` becomes the variance (ones when absent). The WCS is shifted
        from the array's pixels to parent pixels.
        """
        from astropy.nddata import (
            CCDData,
            InverseVariance,
            StdDevUncertainty,
            VarianceUncertainty,
        )

        if not isinstance(ccd, CCDData):
            raise DcrTypeError(
                "fromCCDData needs an astropy.nddata.CCDData", ccd=type(ccd).__name__
            )
        meta = fits.Header()
        planes: dict[str, int] = {}
        for key, value in ccd.meta.items():
            upper = str(key).upper()
            if upper.startswith("MP_"):
                planes[upper[3:]] = int(value)
            elif upper not in ("LTV1", "LTV2") and not _isStructuralKey(upper):
                meta[key] = value
        x0 = -int(round(float(ccd.meta.get("LTV1", 0))))
        y0 = -int(round(float(ccd.meta.get("LTV2", 0))))
        data = np.asarray(ccd.data)
        image = Image(
            np.array(data, dtype=data.dtype if data.dtype.kind == "f" else np.float64),
            origin=(x0, y0),
        )
        uncertainty = ccd.uncertainty
        if uncertainty is None:
            variance = None
        else:
            values = np.asarray(uncertainty.array, dtype=image.dtype)
            if isinstance(uncertainty, VarianceUncertainty):
                variance = values.copy()
            elif isinstance(uncertainty, StdDevUncertainty):
                variance = values**2
            elif isinstance(uncertainty, InverseVariance):
                with np.errstate(divide="ignore"):
                    variance = 1.0 / values
            else:
                raise DcrTypeError(
                    "unsupported uncertainty class; use VarianceUncertainty",
                    uncertainty=type(uncertainty).__name__,
                )
            variance = Image(np.broadcast_to(variance, image.shape).copy(), bbox=image.bbox)
        maskPlanes = planes or None
        flags = getattr(ccd, "flags", None)
        if isinstance(flags, np.ndarray) and flags.dtype.kind in "iu":
            if flags.shape != image.shape:
                raise DcrShapeError(
                    f"CCDData data shape {image.shape} and flags shape {flags.shape} must match",
                )
            mask = Mask(flags.copy(), bbox=image.bbox, planes=maskPlanes)
        else:
            mask = Mask.fromBox(image.bbox, planes=maskPlanes)
            if ccd.mask is not None:
                flagged = np.broadcast_to(np.asarray(ccd.mask, dtype=bool), image.shape)
                mask.addMaskPlane("BAD")
                mask.array[flagged] |= mask.getPlaneBitMask("BAD")
        wcs = None
        if ccd.wcs is not None:
            wcs = _shiftedWcs(ccd.wcs, -x0, -y0)
        return cls(
            MaskedImage(image, mask, variance),
            wcs=wcs,
            psf=psf,
            visitInfo=visitInfo,
            filter=filter,
            photoCalib=photoCalib,
            metadata=meta,
        )

    def __repr__(self) -> str:
        return (
            f"Exposure(bbox={self.bbox!r}, filter={self.filter!r}, "
            f"wcs={'set' if self.wcs is not None else None}, psf={self.psf!r})"
        )


#: Largest offset (pixels) at which two WCSs count as the same pixel grid.
WCS_GRID_TOLERANCE = 1e-3


def wcsGridOffset(wcs: WCS, refWcs: WCS, bbox: Box) -> float:
    """Return how far apart two WCSs put the corners and centre of a box (pixels).

    Each test point's sky position under ``wcs`` is mapped back to pixels with
    ``refWcs``; the result is the largest distance from where it started. Two exposures
    are on one pixel grid when this is below `WCS_GRID_TOLERANCE`.

    Parameters
    ----------
    wcs, refWcs : astropy.wcs.WCS
        Celestial WCSs of parent pixel coordinates.
    bbox : Box
        The region compared.

    Returns
    -------
    offset : float
        Largest offset in pixels (NaN or inf when a point does not map).
    """
    xs = np.array([bbox.minX, bbox.maxX, bbox.minX, bbox.maxX, bbox.center[0]], dtype=float)
    ys = np.array([bbox.minY, bbox.minY, bbox.maxY, bbox.maxY, bbox.center[1]], dtype=float)
    px, py = refWcs.world_to_pixel(wcs.pixel_to_world(xs, ys))
    return float(np.nanmax(np.hypot(np.asarray(px) - xs, np.asarray(py) - ys)))
