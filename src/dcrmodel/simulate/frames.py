"""Detector frames: each visit on its own pixel grid, rotated, dithered and distorted.

In a real survey every visit is a detector image with its own WCS: the telescope points a
little differently each time (dithers), the camera rotator turns the detector to any angle
on the sky, and the optics distort the grid. A `VisitFrame` is that grid for one simulated
visit:

- the *boresight* is the field's centre moved by the visit's pointing offset ``(east,
  north)`` in arcsec (`offsetPointing`, astropy's spherical offsets);
- the WCS is a gnomonic projection centred there (`dcrmodel.simulate.plan.makeWcs`), with
  the detector's +y axis at position angle ``rotation`` on the sky (North through East).
  That is the rotator angle in the ``SKY`` convention (``BORE-ROTANG``, ``ROTTYPE = SKY``):
  the zenith then lies at ``parallactic angle - rotation`` in the image
  (`dcrmodel.physics.calculateImageParallacticAngle`), which the tests check through the WCS;
- optionally a radial distortion expressed as SIP polynomials (`radialSipWcs`): a pixel at
  distance ``r`` from the detector's centre is seen at ``r (1 + k r^2 / R^2)``, ``R`` the
  distance of the corner pixels, so the plate scale changes quadratically with radius and
  the corners move outward by ``k R`` pixels (inward for ``k < 0``). The SIP terms vanish
  to first order at the centre, where the frame is the undistorted rotation of the sky.

`mapSources` moves a catalogue drawn on one grid (the patch) onto another (a visit's
frame): positions exactly through both WCSs (distortion included), and the shapes of
extended components through the local Jacobian of that mapping at each source, so that a
galaxy seen by a visit rotated by 37 degrees is the same galaxy rotated by 37 degrees.
On a distorted detector the plate scale also changes across the image, so each source's
DCR shifts and PSF differ from those at the centre: `sourceDistortion` gives them (the
refracted positions through the distorted WCS, the local Jacobian for the seeing) for the
renderer (`dcrmodel.simulate.render.SourceDistortion`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS, WCSHDO_P17, Sip
from astropy.wcs.wcs import WCSHDO_SIP

from ..errors import DcrValueError
from ..image import Box
from ..warp import mapPixels
from .config import SimulationConfig
from .plan import makeWcs
from .render import SourceDistortion
from .sources import ExponentialProfile, GaussianProfile, Source, SourceComponent

__all__ = [
    "VisitFrame",
    "makeVisitFrames",
    "makeFrame",
    "offsetPointing",
    "radialSipWcs",
    "mapSources",
    "transformProfile",
    "frameFromRecord",
    "wcsCards",
    "undistortedWcs",
    "sourceDistortion",
]

#: Order of the fitted inverse SIP polynomials (AP, BP) of `radialSipWcs`.
_INVERSE_ORDER = 5

#: Half-step (pixels) of the central differences that give each source's local Jacobian.
_JACOBIAN_STEP = 1.0


@dataclass(frozen=True)
class VisitFrame:
    """The pixel grid of one visit: its detector box and WCS, and how it was pointed.

    Attributes
    ----------
    bbox : dcrmodel.image.Box
        The detector's pixels (parent coordinates).
    wcs : astropy.wcs.WCS
        The detector's WCS (TAN, or TAN-SIP with a distortion), 0-based parent pixels.
    rotation : float
        Position angle of the detector's +y axis on the sky, North through East (deg,
        [0, 360)): the rotator angle in the ``SKY`` convention.
    offset : tuple of float
        Pointing offset ``(east, north)`` of the boresight from the field's centre
        (arcsec).
    boresight : astropy.coordinates.SkyCoord
        ICRS position of the detector's centre.
    distortion : float
        Radial distortion coefficient ``k`` (see `radialSipWcs`; 0: none).
    """

    bbox: Box
    wcs: WCS
    rotation: float
    offset: tuple[float, float]
    boresight: SkyCoord
    distortion: float

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description (the manifest's ``frame`` of a visit).

        The ``wcs`` entry holds the FITS cards of the WCS for parent pixels (as the
        exposure files carry it for their local pixels); `frameFromRecord` reads it back.
        """
        return {
            "bbox": {
                "minX": self.bbox.minX,
                "minY": self.bbox.minY,
                "width": self.bbox.width,
                "height": self.bbox.height,
            },
            "rotation": self.rotation,
            "offset": [self.offset[0], self.offset[1]],
            "boresight": {
                "ra": float(self.boresight.ra.deg),
                "dec": float(self.boresight.dec.deg),
            },
            "distortion": self.distortion,
            "wcs": wcsCards(self.wcs),
        }


def wcsCards(wcs: WCS) -> dict[str, Any]:
    """Return the FITS cards of a WCS (SIP included) as a JSON-ready dictionary.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        A celestial WCS of 0-based parent pixels.

    Returns
    -------
    dict
        Keyword to value (numbers and strings), without comments.
    """
    header = wcs.to_header(relax=WCSHDO_P17 | WCSHDO_SIP)
    return {key: header[key] for key in header if key not in ("", "COMMENT", "HISTORY")}


def frameFromRecord(record: dict[str, Any]) -> tuple[WCS, Box]:
    """Return the WCS and box of a visit's frame from its manifest ``frame`` entry.

    Parameters
    ----------
    record : dict
        The ``frame`` entry of a visit of a detector-frame simulation's manifest.

    Returns
    -------
    wcs : astropy.wcs.WCS
        The visit's WCS (0-based parent pixels).
    bbox : dcrmodel.image.Box
        Its detector's box.
    """
    box = record["bbox"]
    header = fits.Header(list(record["wcs"].items()))
    return WCS(header), Box(box["minX"], box["minY"], box["width"], box["height"])


def offsetPointing(centre: SkyCoord, east: float, north: float) -> SkyCoord:
    """Return the sky position ``east``, ``north`` arcsec from ``centre`` (ICRS).

    Parameters
    ----------
    centre : astropy.coordinates.SkyCoord
        The field's centre.
    east, north : float
        Offsets along the local East and North directions (arcsec), as astropy's
        ``SkyCoord.spherical_offsets_by`` applies them.

    Returns
    -------
    astropy.coordinates.SkyCoord
        The offset position (ICRS).
    """
    moved = centre.icrs.spherical_offsets_by(east * u.arcsec, north * u.arcsec)
    return SkyCoord(ra=float(moved.ra.deg) * u.deg, dec=float(moved.dec.deg) * u.deg,
                    frame="icrs")


def _sipTerms(x: np.ndarray, y: np.ndarray, order: int) -> tuple[np.ndarray, list]:
    """Columns ``x^p y^q`` for ``1 <= p + q <= order`` and their powers ``(p, q)``."""
    powers = [(p, total - p) for total in range(1, order + 1) for p in range(total + 1)]
    columns = np.stack([x**p * y**q for p, q in powers], axis=1)
    return columns, powers


def radialSipWcs(wcs: WCS, bbox: Box, distortion: float) -> WCS:
    """Return ``wcs`` with a radial distortion as SIP polynomials about the box's centre.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        An undistorted TAN WCS whose reference pixel is the box's centre.
    bbox : dcrmodel.image.Box
        The detector (parent pixels).
    distortion : float
        ``k``: a pixel at ``(u, v)`` from the centre, at distance ``r``, is seen where the
        undistorted WCS puts ``(u, v) (1 + k r^2 / R^2)``; ``R`` is the distance of the
        corner pixels from the centre, so the corners move by ``k R`` pixels and the local
        plate scale at radius ``r`` is ``1 + 3 k r^2 / R^2`` times the centre's along the
        radius. Dimensionless.

    Returns
    -------
    astropy.wcs.WCS
        A ``RA---TAN-SIP``/``DEC--TAN-SIP`` copy: forward ``A``/``B`` of order 3 (exactly
        the distortion: ``A_3_0 = A_1_2 = B_2_1 = B_0_3 = k / R^2``) and inverse
        ``AP``/``BP`` of order 5 fitted by least squares over the detector grown by a
        quarter of its size (largest error about ``3 k^2 R`` pixels; astropy's
        ``all_world2pix`` inverts the forward polynomials exactly by iteration, and the
        inverse ones serve other readers of the files).
    """
    xc, yc = bbox.center
    radius = math.hypot(bbox.width - 1, bbox.height - 1) / 2.0
    coefficient = float(distortion) / radius**2
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = coefficient
    b[2, 1] = b[0, 3] = coefficient
    # Inverse: fit u = U + AP(U, V) on a grid of undistorted offsets, in units of R for
    # the conditioning of the least squares.
    reach = 0.75 * max(bbox.width, bbox.height)
    grid = np.linspace(-reach, reach, 41)
    uu, vv = (g.ravel() for g in np.meshgrid(grid, grid))
    r2 = (uu * uu + vv * vv) * coefficient
    bigU, bigV = uu * (1.0 + r2), vv * (1.0 + r2)
    columns, powers = _sipTerms(bigU / radius, bigV / radius, _INVERSE_ORDER)
    ap = np.zeros((_INVERSE_ORDER + 1, _INVERSE_ORDER + 1))
    bp = np.zeros_like(ap)
    for target, out in ((uu - bigU, ap), (vv - bigV, bp)):
        solution, *_ = np.linalg.lstsq(columns, target, rcond=None)
        for (p, q), value in zip(powers, solution, strict=True):
            out[p, q] = value / radius ** (p + q)
    distorted = wcs.deepcopy()
    distorted.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    crpix = np.array([xc + 1.0, yc + 1.0])
    distorted.wcs.crpix = crpix
    distorted.sip = Sip(a, b, ap, bp, crpix)
    distorted.wcs.set()
    return distorted


def makeFrame(
    centre: SkyCoord,
    bbox: Box,
    pixelScale: float,
    rotation: float,
    offset: tuple[float, float],
    distortion: float,
) -> VisitFrame:
    """Return the frame of one visit.

    Parameters
    ----------
    centre : astropy.coordinates.SkyCoord
        The field's centre.
    bbox : dcrmodel.image.Box
        The detector (parent pixels).
    pixelScale : float
        Arcsec per pixel.
    rotation : float
        Rotator angle, SKY convention (deg).
    offset : tuple of float
        Pointing offset ``(east, north)`` (arcsec).
    distortion : float
        Radial distortion coefficient (dimensionless; 0: a plain TAN WCS).

    Returns
    -------
    VisitFrame
    """
    rotation = float(rotation) % 360.0
    boresight = offsetPointing(centre, float(offset[0]), float(offset[1]))
    wcs = makeWcs(boresight, bbox, pixelScale, rotation * u.deg)
    if distortion != 0.0:
        wcs = radialSipWcs(wcs, bbox, distortion)
    return VisitFrame(bbox, wcs, rotation, (float(offset[0]), float(offset[1])), boresight,
                      float(distortion))


def makeVisitFrames(
    config: SimulationConfig, centre: SkyCoord, numVisits: int, seed: int
) -> list[VisitFrame]:
    """Return the frame of every visit: rotation, pointing offset and distortion.

    Parameters
    ----------
    config : SimulationConfig
        The detector's size (pixels), pixel scale (arcsec per pixel), the given rotator
        angles and offsets (or ``offsetFraction``) and the distortion.
    centre : astropy.coordinates.SkyCoord
        The field's centre.
    numVisits : int
        Number of visits (in the plan's order).
    seed : int
        The simulation's seed. The angles and offsets that are not given are drawn from
        their own generator (``numpy.random.default_rng([seed, 1])``: rotator angles
        uniform in [0, 360) deg, then offsets uniform within ``offsetFraction`` of the
        detector's width and height along East and North), so the rest of the field (sources,
        visit times, seeing, weather) is drawn as without detector frames.

    Returns
    -------
    list of VisitFrame
        One per visit; every detector is ``Box(0, 0, width, height)``.
    """
    width, height = config.resolveSize()
    bbox = Box(0, 0, width, height)
    rng = np.random.default_rng([int(seed), 1])
    rotations = rng.uniform(0.0, 360.0, numVisits)
    scale = float(config.pixelScale)
    fraction = float(config.offsetFraction)
    drawn = rng.uniform(-1.0, 1.0, (numVisits, 2)) * fraction * np.array([width, height])
    given = config.resolveRotations()
    if given is not None:
        rotations = np.array(given, dtype=np.float64)
    offsets = [(float(e) * scale, float(n) * scale) for e, n in drawn]
    if config.offsets is not None:
        offsets = config.resolveOffsets()
    distortion = float(config.distortion)
    return [makeFrame(centre, bbox, scale, float(rotations[i]), offsets[i], distortion)
            for i in range(numVisits)]


def transformProfile(profile: Any, jacobian: np.ndarray) -> Any:
    """Return a profile seen through a linear map of the pixel grid.

    Parameters
    ----------
    profile : PointProfile, ExponentialProfile or GaussianProfile
        The profile on the original grid (pixels, position angle in degrees from +x
        toward +y).
    jacobian : numpy.ndarray
        ``[[dx'/dx, dx'/dy], [dy'/dx, dy'/dy]]``: new pixels per original pixel.

    Returns
    -------
    PointProfile, ExponentialProfile or GaussianProfile
        The same kind of profile on the new grid: an ellipse ``A = R(theta) diag(major,
        minor)`` becomes ``J A``, whose axes and angle come from the eigenvectors of
        ``J A A^T J^T``. Points stay points. The flux is unchanged (a profile has unit flux
        on any grid).
    """
    if not isinstance(profile, (ExponentialProfile, GaussianProfile)):
        return profile
    major = profile.scaleLength if isinstance(profile, ExponentialProfile) else profile.sigma
    minor = major * profile.axisRatio
    theta = math.radians(profile.positionAngle)
    c, s = math.cos(theta), math.sin(theta)
    shape = np.array([[c, -s], [s, c]]) @ np.diag([major, minor])
    moved = np.asarray(jacobian, dtype=np.float64) @ shape
    values, vectors = np.linalg.eigh(moved @ moved.T)
    newMajor = math.sqrt(max(values[1], 0.0))
    newMinor = math.sqrt(max(values[0], 0.0))
    angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1])) % 180.0
    ratio = min(newMinor / newMajor, 1.0)
    if isinstance(profile, ExponentialProfile):
        return ExponentialProfile(newMajor, ratio, angle)
    return GaussianProfile(newMajor, ratio, angle)


def _refine(
    fromWcs: WCS, toWcs: WCS, x: np.ndarray, y: np.ndarray, tx: np.ndarray, ty: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Refine ``(tx, ty)``, the ``toWcs`` pixels of ``fromWcs`` pixels ``(x, y)``.

    Newton's method on ``toWcs -> fromWcs``: the residual of the back-mapped position in
    ``fromWcs`` pixels, divided by the back mapping's Jacobian (central differences of
    1e-3 pixel). Stops at 1e-10 pixel (or after 5 steps); NaN positions stay NaN.
    """
    tx, ty = tx.copy(), ty.copy()
    ok = np.isfinite(tx) & np.isfinite(ty)
    step = 1e-3
    for _ in range(5):
        if not ok.any():
            break
        px, py = tx[ok], ty[ok]
        bx, by = mapPixels(toWcs, fromWcs, np.concatenate([px, px + step, px, px - step, px]),
                           np.concatenate([py, py, py + step, py, py - step]))
        m = px.size
        parts = [(bx[k * m:(k + 1) * m], by[k * m:(k + 1) * m]) for k in range(5)]
        (cx, cy), (ax, ay), (dx, dy), (ex, ey), (fx, fy) = parts
        rx, ry = x[ok] - cx, y[ok] - cy
        j00, j10 = (ax - ex) / (2 * step), (ay - ey) / (2 * step)
        j01, j11 = (dx - fx) / (2 * step), (dy - fy) / (2 * step)
        det = j00 * j11 - j01 * j10
        ux, uy = (j11 * rx - j01 * ry) / det, (-j10 * rx + j00 * ry) / det
        if not (np.all(np.isfinite(ux)) and np.all(np.isfinite(uy))):
            break
        tx[ok] += ux
        ty[ok] += uy
        if np.max(np.hypot(ux, uy)) < 1e-10:
            break
    return tx, ty


def undistortedWcs(wcs: WCS) -> WCS:
    """Return a copy of ``wcs`` without its SIP polynomials (the frame at its centre).

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        A TAN or TAN-SIP WCS.

    Returns
    -------
    astropy.wcs.WCS
        The linear TAN WCS of the same reference point and CD matrix: the detector's
        grid as it would be without distortion (the SIP terms of `radialSipWcs` vanish to
        first order at the reference pixel, so the two agree there to second order).
    """
    plain = wcs.deepcopy()
    plain.sip = None
    plain.wcs.ctype = [c.replace("-SIP", "") for c in plain.wcs.ctype]
    plain.wcs.set()
    return plain


def sourceDistortion(
    sources: Sequence[Source], frame: VisitFrame, displacements: np.ndarray, psf: Any
) -> SourceDistortion:
    """Each source's own DCR shifts and PSF shape on a distorted detector.

    Parameters
    ----------
    sources : sequence of Source
        Sources at their positions on the detector (`mapSources`).
    frame : VisitFrame
        The visit's frame, with a SIP distortion.
    displacements : numpy.ndarray
        ``(nWavelength, 2)`` the visit's DCR displacements ``(dy, dx)`` (pixels) at the
        detector's centre, measured through `undistortedWcs` (where the distortion is the
        identity to first order).
    psf : AtmosphericPsf
        The visit's seeing (circular on the sky).

    Returns
    -------
    dcrmodel.simulate.render.SourceDistortion
        Per source: the exact displacement of its light at each wavelength, that is the
        distorted grid's pixel of its undistorted position moved by the displacement
        (mapped through both WCSs and refined to 1e-10 pixel), minus its position; and
        the Jacobian ``d(detector pixel) / d(undistorted pixel)`` at it (central
        differences of +-1 undistorted pixel), by which its PSF is transformed.
    """
    d = np.asarray(displacements, dtype=np.float64)
    if not sources:
        return SourceDistortion(d, {}, {}, psf)
    plain = undistortedWcs(frame.wcs)
    x = np.array([s.x for s in sources])
    y = np.array([s.y for s in sources])
    ux, uy = mapPixels(frame.wcs, plain, x, y)
    # Undistorted points: each source moved by every displacement, then +-1 pixel.
    steps = np.concatenate([d[:, ::-1], [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]])
    px = (ux[None, :] + steps[:, 0, None]).ravel()
    py = (uy[None, :] + steps[:, 1, None]).ravel()
    tx, ty = mapPixels(plain, frame.wcs, px, py)
    tx, ty = _refine(plain, frame.wcs, px, py, tx, ty)
    tx = tx.reshape(steps.shape[0], -1)
    ty = ty.reshape(steps.shape[0], -1)
    if not (np.all(np.isfinite(tx)) and np.all(np.isfinite(ty))):
        raise DcrValueError("a source's light falls where the distorted WCS has no pixel; "
                            "use a smaller distortion")
    n = d.shape[0]
    shifts: dict[int, np.ndarray] = {}
    jacobians: dict[int, np.ndarray] = {}
    for i, source in enumerate(sources):
        shifts[source.id] = np.stack([ty[:n, i] - source.y, tx[:n, i] - source.x], axis=1)
        jacobians[source.id] = np.array([
            [(tx[n, i] - tx[n + 1, i]) / 2.0, (tx[n + 2, i] - tx[n + 3, i]) / 2.0],
            [(ty[n, i] - ty[n + 1, i]) / 2.0, (ty[n + 2, i] - ty[n + 3, i]) / 2.0],
        ])
    return SourceDistortion(d, shifts, jacobians, psf)


def mapSources(sources: Sequence[Source], fromWcs: WCS, toWcs: WCS) -> list[Source]:
    """Return the sources of one grid seen on another: positions and shapes.

    Parameters
    ----------
    sources : sequence of Source
        Sources with positions on the grid of ``fromWcs`` (parent pixels).
    fromWcs, toWcs : astropy.wcs.WCS
        The WCSs of the two grids (distortion included).

    Returns
    -------
    list of Source
        The same sources (ids, kinds, spectra and fluxes) at their positions on the grid
        of ``toWcs`` (mapped through the sky, refined to 1e-10 pixel), each extended
        component's shape transformed by the local Jacobian of the mapping at the source (central
        differences of +-1 pixel: `transformProfile`). Sources that ``toWcs`` cannot map
        (the far side of its projection) are dropped.

    Raises
    ------
    DcrValueError
        If a source maps to a position but its neighbourhood does not (a source on the
        edge of the region ``toWcs`` can map).
    """
    if not sources:
        return []
    x = np.array([s.x for s in sources])
    y = np.array([s.y for s in sources])
    h = _JACOBIAN_STEP
    xs = np.concatenate([x, x + h, x - h, x, x])
    ys = np.concatenate([y, y, y, y + h, y - h])
    mx, my = mapPixels(fromWcs, toWcs, xs, ys)
    n = len(sources)
    # The positions themselves to 1e-10 pixel (the mapping stops at 1e-4 pixel through a
    # distortion): Newton steps on the forward mapping, with the Jacobians below.
    mx[:n], my[:n] = _refine(fromWcs, toWcs, x, y, mx[:n], my[:n])
    parts = [(mx[k * n:(k + 1) * n], my[k * n:(k + 1) * n]) for k in range(5)]
    (cx, cy), (px, py), (qx, qy), (rx, ry), (sx, sy) = parts
    jacobians = np.empty((n, 2, 2))
    jacobians[:, 0, 0] = (px - qx) / (2 * h)
    jacobians[:, 1, 0] = (py - qy) / (2 * h)
    jacobians[:, 0, 1] = (rx - sx) / (2 * h)
    jacobians[:, 1, 1] = (ry - sy) / (2 * h)
    out = []
    for i, source in enumerate(sources):
        if not (np.isfinite(cx[i]) and np.isfinite(cy[i])):
            continue
        if not np.all(np.isfinite(jacobians[i])):
            raise DcrValueError(
                "a source lies on the edge of the region the visit's WCS can map; move the "
                "field or shrink the patch", id=source.id,
            )
        components = tuple(
            SourceComponent(transformProfile(c.profile, jacobians[i]), c.spectrum, c.flux)
            for c in source.components
        )
        out.append(Source(source.id, float(cx[i]), float(cy[i]), source.kind,
                          source.colourClass, components))
    return out
