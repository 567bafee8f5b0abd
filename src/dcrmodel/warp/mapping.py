"""Pixel-to-pixel mapping between two celestial WCSs, exact and on a coarse grid.

A warp needs, for every destination pixel, the position in the source image that sees the
same point of the sky. `mapPixels` computes it exactly: destination parent pixels to sky
with the destination WCS (``all_pix2world``, distortion such as SIP or TPV included), a
change of celestial frame when the two WCSs differ in it, then sky to source parent pixels
(``all_world2pix``). Points that the source WCS cannot map (the far side of a TAN
projection, a distortion polynomial that does not invert there) come back as NaN: every
solution is checked by mapping it back to the sky.

`mapBox` does the same for every pixel of a box, fast: the exact mapping is evaluated on a
coarse grid of nodes (every `DEFAULT_GRID_SPACING` pixels) and interpolated with a bicubic
spline (evaluated as two products with its B-spline design matrices). The interpolation
is then checked against the exact mapping at the centre and the
edge midpoints of every grid cell; the pixels of every cell where it is off by more than
the tolerance (`MAPPING_TOLERANCE`, 1e-3 pixel) are mapped exactly instead. The Rubin
pipelines do the same with a linear interpolation every 10 pixels
(``lsst.afw.math.WarpingControl`` ``interpLength``) and no check.

`localJacobian` is the derivative of the mapping at a point, and `boxesOverlap` tells
whether two boxes on two WCSs see a common part of the sky.

All pixel coordinates are PARENT 0-based ``(x, y)``, as `dcrmodel.image.Exposure.wcs`
takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame

from ..errors import DcrMetadataError, DcrTypeError, DcrValueError
from ..image import Box

if TYPE_CHECKING:
    from scipy.interpolate import RectBivariateSpline

__all__ = [
    "MAPPING_TOLERANCE",
    "DEFAULT_GRID_SPACING",
    "PixelMapping",
    "checkCelestialWcs",
    "mapPixels",
    "mapBox",
    "localJacobian",
    "boxesOverlap",
]

#: Largest error (pixels) accepted from the interpolated mapping of `mapBox`.
MAPPING_TOLERANCE = 1e-3

#: Distance (pixels) between the nodes at which `mapBox` evaluates the exact mapping.
DEFAULT_GRID_SPACING = 32

# A source position whose sky position is further than this (source pixels) from the one
# it should see is not a solution of the inverse mapping (all_world2pix stops at 1e-4).
_ROUND_TRIP_TOLERANCE = 1e-2


def checkCelestialWcs(wcs: Any, what: str) -> WCS:
    """Return ``wcs`` if it is a two-axis celestial astropy WCS; raise otherwise.

    Parameters
    ----------
    wcs : object
        The WCS to check.
    what : str
        What the WCS belongs to, for the message (e.g. ``"the exposure"``).

    Raises
    ------
    DcrMetadataError
        If ``wcs`` is None.
    DcrTypeError
        If it is not an `astropy.wcs.WCS`.
    DcrValueError
        If it is not a two-axis celestial WCS.
    """
    if wcs is None:
        raise DcrMetadataError(f"{what} has no WCS; a warp needs a celestial WCS")
    if not isinstance(wcs, WCS):
        raise DcrTypeError(f"the WCS of {what} must be an astropy.wcs.WCS",
                           wcs=type(wcs).__name__)
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise DcrValueError(
            f"the WCS of {what} is not a two-axis celestial WCS; a warp needs sky "
            "coordinates", ctype=list(wcs.wcs.ctype),
        )
    return wcs


def _toSky(wcs: WCS, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (longitude, latitude) in degrees of parent pixels, distortion included."""
    world = wcs.all_pix2world(x, y, 0)
    return np.asarray(world[wcs.wcs.lng]), np.asarray(world[wcs.wcs.lat])


def _toPixels(wcs: WCS, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return parent pixels (x, y) of sky positions (degrees); NaN where there is none."""
    world = [None, None]
    world[wcs.wcs.lng] = lon
    world[wcs.wcs.lat] = lat
    with np.errstate(invalid="ignore"):
        x, y = wcs.all_world2pix(world[0], world[1], 0, quiet=True)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        # all_world2pix returns its last iterate where it did not converge: keep only the
        # positions that map back onto the sky position asked for.
        lon2, lat2 = _toSky(wcs, x, y)
        dLon = (lon2 - lon + 180.0) % 360.0 - 180.0
        offset = np.hypot(dLon * np.cos(np.deg2rad(lat)), lat2 - lat)
        scale = _pixelScaleDegrees(wcs)
        bad = ~(offset <= _ROUND_TRIP_TOLERANCE * scale)
    x[bad] = np.nan
    y[bad] = np.nan
    return x, y


def _pixelScaleDegrees(wcs: WCS) -> float:
    """Square root of the linear pixel area at the reference pixel (degrees)."""
    # (a two-axis celestial WCS is its own celestial part: `celestial` would copy it)
    matrix = (wcs if wcs.naxis == 2 else wcs.celestial).pixel_scale_matrix
    return float(np.sqrt(abs(np.linalg.det(matrix))))


def _celestialFrame(wcs: WCS) -> Any:
    """Return the astropy frame of a WCS, or None when astropy cannot name it."""
    try:
        return wcs_to_celestial_frame(wcs)
    except ValueError:
        return None


def mapPixels(
    destWcs: WCS, srcWcs: WCS, x: Any, y: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Map destination parent pixels to source parent pixels through the sky, exactly.

    Parameters
    ----------
    destWcs, srcWcs : astropy.wcs.WCS
        Celestial WCSs of the destination and source parent pixels.
    x, y : array_like
        Destination parent pixel coordinates (any matching shapes).

    Returns
    -------
    xSource, ySource : numpy.ndarray
        Source parent pixel coordinates (float64, the shape of ``x``); NaN where the
        source WCS has no pixel for that sky position.

    Notes
    -----
    When the two WCSs are in different celestial frames (ICRS and Galactic, or FK5 of
    another equinox), the sky positions are transformed between them with astropy; a WCS
    whose frame astropy cannot name is taken to share the other's.

    Examples
    --------
    >>> from dcrmodel.warp.grid import tangentPlaneGrid
    >>> wcs, box = tangentPlaneGrid(150.0, -30.0, 10, 10, 0.2)
    >>> xs, ys = mapPixels(wcs, wcs, [0.0, 4.5], [3.0, 9.0])
    >>> np.round(xs, 9).tolist(), np.round(ys, 9).tolist()
    ([0.0, 4.5], [3.0, 9.0])
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    shape = np.broadcast(x, y).shape
    x, y = np.broadcast_to(x, shape).ravel(), np.broadcast_to(y, shape).ravel()
    lon, lat = _toSky(destWcs, x, y)
    destFrame, srcFrame = _celestialFrame(destWcs), _celestialFrame(srcWcs)
    if not (destFrame is None or srcFrame is None or destFrame.is_equivalent_frame(srcFrame)):
        sky = SkyCoord(lon, lat, unit="deg", frame=destFrame).transform_to(srcFrame)
        lon = np.asarray(sky.spherical.lon.deg)
        lat = np.asarray(sky.spherical.lat.deg)
    xs, ys = _toPixels(srcWcs, lon, lat)
    return xs.reshape(shape), ys.reshape(shape)


@dataclass(frozen=True)
class PixelMapping:
    """Source parent pixel positions of every pixel of a destination box.

    Attributes
    ----------
    bbox : Box
        The destination box.
    x, y : numpy.ndarray
        Source parent pixel coordinates, shape ``bbox.shape``; NaN where none.
    maxError : float
        Largest difference (pixels) between the interpolated and the exact mapping at the
        points checked (centre and edge midpoints of every grid cell), after the cells
        that exceeded the tolerance were mapped exactly; 0 when everything was exact.
    numExact : int
        Number of pixels mapped exactly (refined cells, or all pixels of a small box).
    """

    bbox: Box
    x: np.ndarray
    y: np.ndarray
    maxError: float
    numExact: int


def _gridNodes(lo: int, hi: int, spacing: int) -> np.ndarray:
    """Nodes from ``lo`` to ``hi`` (inclusive) every ``spacing`` pixels, ``hi`` included."""
    nodes = np.arange(lo, hi + 1, spacing, dtype=np.float64)
    if nodes[-1] != hi:
        nodes = np.append(nodes, float(hi))
    return nodes


def _exactBox(destWcs: WCS, srcWcs: WCS, bbox: Box) -> PixelMapping:
    ys, xs = np.mgrid[bbox.minY:bbox.maxY + 1, bbox.minX:bbox.maxX + 1].astype(np.float64)
    sx, sy = mapPixels(destWcs, srcWcs, xs, ys)
    return PixelMapping(bbox, sx, sy, 0.0, bbox.area)


def mapBox(
    destWcs: WCS,
    srcWcs: WCS,
    destBBox: Box,
    gridSpacing: int = DEFAULT_GRID_SPACING,
    tolerance: float = MAPPING_TOLERANCE,
) -> PixelMapping:
    """Map every pixel of a destination box to source parent pixels.

    Parameters
    ----------
    destWcs, srcWcs : astropy.wcs.WCS
        Celestial WCSs of the destination and source parent pixels.
    destBBox : Box
        Destination pixels (parent coordinates).
    gridSpacing : int, optional
        Pixels between the nodes where the mapping is evaluated exactly (>= 2).
    tolerance : float, optional
        Largest interpolation error (pixels) accepted; cells that exceed it are mapped
        exactly.

    Returns
    -------
    PixelMapping
        The source positions and how far the interpolation is from the exact mapping.

    Notes
    -----
    Boxes of fewer than four nodes along an axis, and boxes where some node has no
    source position (NaN: the box reaches where the source WCS is undefined), are mapped
    exactly pixel by pixel (one vectorised WCS call).
    """
    if gridSpacing < 2:
        raise DcrValueError("gridSpacing must be at least 2 pixels", gridSpacing=gridSpacing)
    xNodes = _gridNodes(destBBox.minX, destBBox.maxX, gridSpacing)
    yNodes = _gridNodes(destBBox.minY, destBBox.maxY, gridSpacing)
    if len(xNodes) < 4 or len(yNodes) < 4:
        return _exactBox(destWcs, srcWcs, destBBox)
    gx, gy = mapPixels(destWcs, srcWcs, xNodes[np.newaxis, :], yNodes[:, np.newaxis])
    if not (np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))):
        return _exactBox(destWcs, srcWcs, destBBox)
    # imported here: scipy.interpolate (with scipy.optimize) is half a second of start-up
    from scipy.interpolate import RectBivariateSpline

    splines = [RectBivariateSpline(yNodes, xNodes, g, kx=3, ky=3, s=0) for g in (gx, gy)]
    xAll = np.arange(destBBox.minX, destBBox.maxX + 1, dtype=np.float64)
    yAll = np.arange(destBBox.minY, destBBox.maxY + 1, dtype=np.float64)
    sx, sy = _evaluateOnGrid(splines, yAll, xAll)
    cellError = _cellErrors(destWcs, srcWcs, xNodes, yNodes, splines)
    refine = cellError > tolerance
    numExact = 0
    if refine.any():
        # The cell of every pixel; a pixel on a node line between two cells is taken as
        # in the one above (right of) it: the edge midpoint that checks it counts for both.
        rowCell = np.clip(np.searchsorted(yNodes, yAll, side="right") - 1, 0, len(yNodes) - 2)
        colCell = np.clip(np.searchsorted(xNodes, xAll, side="right") - 1, 0, len(xNodes) - 2)
        yy, xx = np.nonzero(refine[np.ix_(rowCell, colCell)])
        ex, ey = mapPixels(destWcs, srcWcs, xAll[xx], yAll[yy])
        sx[yy, xx] = ex
        sy[yy, xx] = ey
        numExact = int(len(yy))
    remaining = np.where(refine, 0.0, cellError)
    return PixelMapping(destBBox, sx, sy, float(remaining.max()), numExact)


def _evaluateOnGrid(
    splines: list[RectBivariateSpline], ys: np.ndarray, xs: np.ndarray
) -> list[np.ndarray]:
    """Evaluate bicubic splines on every point of the grid ``ys x xs``.

    A tensor-product spline is ``B_y C B_x^T``, with ``B_y``, ``B_x`` the (sparse) B-spline
    design matrices of the grid's rows and columns and ``C`` the coefficients: two matrix
    products, about four times faster than FITPACK's grid evaluation, and equal to it to
    rounding (about 1e-13 of the values).
    """
    from scipy.interpolate import BSpline  # deferred with the splines (start-up cost)

    ty, tx, _ = splines[0].tck
    degree = 3
    rows = BSpline.design_matrix(ys, ty, degree)
    columns = BSpline.design_matrix(xs, tx, degree)
    values = []
    for spline in splines:
        splineTy, splineTx, coefficients = spline.tck
        if not (np.array_equal(splineTy, ty) and np.array_equal(splineTx, tx)):
            values.append(spline(ys, xs))  # not the knots of the first: no shared matrices
            continue
        grid = coefficients.reshape(len(ty) - degree - 1, len(tx) - degree - 1)
        # (the rows' product last, so that the result is in row order: a kernel sum reads
        # the positions flattened, which would copy an array in column order)
        values.append(np.asarray(rows @ np.ascontiguousarray((columns @ grid.T).T)))
    return values


def _cellErrors(
    destWcs: WCS,
    srcWcs: WCS,
    xNodes: np.ndarray,
    yNodes: np.ndarray,
    splines: list[RectBivariateSpline],
) -> np.ndarray:
    """Interpolation error (pixels) of every grid cell: the largest at its check points.

    The check points of a cell are its centre and the midpoints of its four edges.
    """
    xMid = 0.5 * (xNodes[:-1] + xNodes[1:])
    yMid = 0.5 * (yNodes[:-1] + yNodes[1:])

    def error(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        ex, ey = mapPixels(destWcs, srcWcs, xx, yy)
        ix = splines[0].ev(yy, xx)
        iy = splines[1].ev(yy, xx)
        err = np.hypot(ix - ex, iy - ey)
        return np.where(np.isfinite(err), err, np.inf)

    centre = error(yMid, xMid)
    horizontal = error(yNodes, xMid)  # midpoints of the cells' bottom and top edges
    vertical = error(yMid, xNodes)  # midpoints of their left and right edges
    return np.maximum.reduce([
        centre, horizontal[:-1], horizontal[1:], vertical[:, :-1], vertical[:, 1:]
    ])


def localJacobian(
    destWcs: WCS, srcWcs: WCS, point: tuple[float, float], step: float = 1.0
) -> np.ndarray:
    """Return the derivative of the destination-to-source pixel mapping at a point.

    Parameters
    ----------
    destWcs, srcWcs : astropy.wcs.WCS
        Celestial WCSs of the destination and source parent pixels.
    point : tuple of float
        Destination parent pixel ``(x, y)``.
    step : float, optional
        Half-step (pixels) of the central differences.

    Returns
    -------
    jacobian : numpy.ndarray
        ``[[dxs/dx, dxs/dy], [dys/dx, dys/dy]]``: a destination pixel offset ``(dx, dy)``
        is the source offset ``jacobian @ (dx, dy)``. Its determinant is the area of a
        destination pixel in source pixels.

    Raises
    ------
    DcrValueError
        If the source WCS has no pixel near ``point``.
    """
    x, y = float(point[0]), float(point[1])
    xs = np.array([x + step, x - step, x, x])
    ys = np.array([y, y, y + step, y - step])
    sx, sy = mapPixels(destWcs, srcWcs, xs, ys)
    jacobian = np.array([
        [(sx[0] - sx[1]) / (2 * step), (sx[2] - sx[3]) / (2 * step)],
        [(sy[0] - sy[1]) / (2 * step), (sy[2] - sy[3]) / (2 * step)],
    ])
    if not np.all(np.isfinite(jacobian)):
        raise DcrValueError(
            "the source WCS has no pixels near this destination point", point=(x, y)
        )
    return jacobian


def _samplePoints(bbox: Box, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Return a grid of at most ``samples`` x ``samples`` points over a box, edges included."""
    xs = np.unique(np.linspace(bbox.minX - 0.5, bbox.maxX + 0.5, min(samples, bbox.width + 1)))
    ys = np.unique(np.linspace(bbox.minY - 0.5, bbox.maxY + 0.5, min(samples, bbox.height + 1)))
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return xx.ravel(), yy.ravel()


def _inside(bbox: Box, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (
            (x >= bbox.minX - 0.5) & (x <= bbox.maxX + 0.5)
            & (y >= bbox.minY - 0.5) & (y <= bbox.maxY + 0.5)
        )


def boxesOverlap(
    srcWcs: WCS, srcBBox: Box, destWcs: WCS, destBBox: Box, samples: int = 33
) -> bool:
    """Return whether two boxes, each on its WCS, see a common part of the sky.

    Parameters
    ----------
    srcWcs, destWcs : astropy.wcs.WCS
        Celestial WCSs of the two boxes' parent pixels.
    srcBBox, destBBox : Box
        The boxes (parent pixels; a pixel covers its centre +- 1/2).
    samples : int, optional
        Points along each axis of each box that are mapped into the other.

    Returns
    -------
    bool
        True if some sample point of either box falls inside the other.

    Notes
    -----
    The test samples each box on a ``samples`` x ``samples`` grid (edges included): an
    overlap narrower than a grid step of both boxes (1/32 of their sides by default)
    may go unseen. Empty boxes overlap nothing.
    """
    if srcBBox.isEmpty() or destBBox.isEmpty():
        return False
    x, y = _samplePoints(destBBox, samples)
    sx, sy = mapPixels(destWcs, srcWcs, x, y)
    if _inside(srcBBox, sx, sy).any():
        return True
    x, y = _samplePoints(srcBBox, samples)
    dx, dy = mapPixels(srcWcs, destWcs, x, y)
    return bool(_inside(destBBox, dx, dy).any())
