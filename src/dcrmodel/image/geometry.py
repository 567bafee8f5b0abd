"""Pixel geometry in parent coordinates: boxes and pixel-grid comparison of WCSs.

In the style of the Rubin pipelines' ``lsst.geom`` classes:

- `Box`: an integer, inclusive rectangle of pixels in *parent* coordinates.
- `wcsGridOffset`, `WCS_GRID_TOLERANCE`: whether two WCSs put a box on one pixel grid.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.wcs import WCS

from .._validate import asInt
from ..errors import DcrShapeError, DcrTypeError, DcrValueError

__all__ = ["Box", "WCS_GRID_TOLERANCE", "wcsGridOffset"]


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
        ``Box((minX, minY), (width, height))`` builds the same box from a minimum and
        dimensions pairs, the way ``lsst.geom.Box2I(Point2I, Extent2I)`` is built.
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
    >>> Box((10, 20), (5, 3)) == box
    True
    >>> box.intersection(Box(12, 0, 100, 21))
    Box(minX=12, minY=20, width=3, height=1)
    """

    minX: int
    minY: int
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if self.width is None and self.height is None:
            # Box((minX, minY), (width, height)), as lsst.geom.Box2I(Point2I, Extent2I)
            minimum, dimensions = self.minX, self.minY
            minX, minY = _asPair(minimum, "minimum")
            width, height = _asPair(dimensions, "dimensions")
            for name, value in zip(("minX", "minY", "width", "height"),
                                   (minX, minY, width, height), strict=True):
                object.__setattr__(self, name, value)
        elif self.width is None or self.height is None:
            raise DcrTypeError(
                "give Box(minX, minY, width, height) or Box((minX, minY), (width, height))",
                width=self.width, height=self.height,
            )
        for name in ("minX", "minY", "width", "height"):
            object.__setattr__(self, name, asInt(getattr(self, name), name))
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
        minX, minY = asInt(minX, "minX"), asInt(minY, "minY")
        maxX, maxY = asInt(maxX, "maxX"), asInt(maxY, "maxY")
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
            nx, ny = (asInt(v, "n") for v in _asPair(n, "n"))
        else:
            nx = ny = asInt(n, "n")
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
            self.minX + asInt(dx, "dx"), self.minY + asInt(dy, "dy"), self.width, self.height
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
