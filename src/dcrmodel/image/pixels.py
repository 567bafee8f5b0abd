"""Pixel containers in parent coordinates: `Image`, `Mask` and `MaskedImage`.

In the style of the Rubin pipelines' ``lsst.afw.image`` classes, these are numpy arrays
that know where they sit in a larger parent grid. Pixel ``(x, y)`` of the parent is
element ``array[y - y0, x - x0]`` of an image whose origin is ``(x0, y0)``. Indexing with
a `dcrmodel.image.geometry.Box` returns a view (shared memory) in the same parent coordinates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .._validate import asInt
from ..errors import DcrShapeError, DcrTypeError, DcrValueError
from .geometry import Box

__all__ = ["Image", "Mask", "MaskedImage", "DEFAULT_MASK_PLANES", "BAD_MASK_PLANES"]

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

#: The mask planes whose pixels are not used by default anywhere in dcrmodel: bad pixels,
#: saturation, cosmic rays, pixels with no data and the detector edge. Planes a mask does
#: not define are skipped wherever this list is applied (`Mask.getBadPixels`).
BAD_MASK_PLANES: tuple[str, ...] = ("BAD", "SAT", "NO_DATA", "EDGE", "CR")


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
        """The pixel values, numpy ``(y, x)`` order; ``array[y - y0, x - x0]``.

        Assigning to it (``image.array = values``, as with ``lsst.afw.image``) copies the
        values into the existing pixels: an array of the same shape, or a scalar.
        """
        return self._array

    @array.setter
    def array(self, values: Any) -> None:
        arr = self._valueArray(values, self.shape, "array assignment")
        if isinstance(self, Mask) and np.asarray(arr).dtype.kind not in "biu":
            raise DcrTypeError(
                "mask values must be integers (bits of the mask planes)",
                dtype=str(np.asarray(arr).dtype),
            )
        self._array[...] = arr

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
        bit = asInt(bit, "bit")
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

    def getBadPixels(self, planes: str | Iterable[str] = BAD_MASK_PLANES) -> np.ndarray:
        """Return the boolean map of pixels flagged in any of ``planes``.

        Parameters
        ----------
        planes : str or iterable of str, optional
            Mask plane names; planes this mask does not define are skipped. Defaults to
            `BAD_MASK_PLANES`.

        Returns
        -------
        bad : numpy.ndarray of bool
            True where a pixel is flagged in one of the planes, of the mask's shape.

        Examples
        --------
        >>> from dcrmodel.image import Box, Mask
        >>> mask = Mask.fromBox(Box(0, 0, 3, 1))
        >>> mask.array[0, 1] = mask.getPlaneBitMask("SAT")
        >>> mask.getBadPixels().tolist()
        [[False, True, False]]
        >>> mask.getBadPixels(["BAD", "NOT_A_PLANE"]).tolist()
        [[False, False, False]]
        """
        if isinstance(planes, str):
            planes = (planes,)
        bits = 0
        for name in planes:
            if name in self._planes:
                bits |= 1 << self._planes[name]
        return (self.array & bits) != 0

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
