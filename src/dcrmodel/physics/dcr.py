"""Differential chromatic refraction of one visit: subfilters, shifts and zenith direction.

A band of effective wavelength ``λeff`` and width ``Δλ`` is cut into ``N`` equal
*subfilters*. In a visit the light of each subfilter lands displaced along the zenith
direction by its differential refraction relative to ``λeff``: the bluer subfilters
toward the zenith, the redder ones away from it. This module turns a visit's metadata
(``VisitInfo``) and an exposure's celestial WCS into those displacements in pixels.

The direction is never taken from a parallactic angle and an assumed image orientation.
It is measured through the exposure's own WCS at the centre of the region of interest:
pixel -> sky (the WCS's frame, ICRS) -> horizontal coordinates of the visit (astropy's
``AltAz``, no refraction) -> a small step up in altitude -> sky -> pixel. That holds for
any rotation, for flipped images and for distorted WCSs, and it includes the rotation
between ICRS and the apparent frame of the date (precession and nutation, about 0.4 deg
in 2026), which a parallactic angle computed from ICRS coordinates would miss.

The magnitude is the differential refraction of Stone (1996) (``dcrmodel.physics.refraction``) at
the visit's boresight elevation and weather. Following the reference algorithm of
DMTN-037 (Sullivan, "DCR-matched template generation"), a subfilter is moved by the mean
of the differential refraction at its two edges; with split subfilters the shifts of
the two edges are returned and the template averages images shifted to the quarter
points between them (``dcrmodel.model.shift.applyDcr``).

References
----------
R. C. Stone (1996), "An Accurate Method for Computing Atmospheric Refraction",
PASP 108, 1051. doi:10.1086/133831
I. Sullivan, DMTN-037, "DCR-matched template generation", https://dmtn-037.lsst.io
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, AltAz, Angle, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.wcs import WCS

from ..errors import DcrMetadataError, DcrTypeError, DcrValueError
from . import horizontal as _erfa
from .refraction import differentialRefraction
from .site import offlineIers

if TYPE_CHECKING:
    from .observation import VisitInfo

# Any box with a ``center`` in parent pixels (x, y) and an ``isEmpty()``, such as
# `dcrmodel.image.Box`; physics takes it by its behaviour and does not import the image layer.
BoxLike = Any

__all__ = [
    "wavelengthGenerator",
    "calculateDcr",
    "zenithDirection",
    "zenithDirections",
    "zenithDirectionsOfVisits",
    "calculateImageParallacticAngle",
]

_log = logging.getLogger(__name__)

# Step in altitude (arcsec) of the finite difference that measures the zenith direction.
# The pixel position is linear in altitude over far larger steps (the curvature of a
# vertical circle on the detector is ~1e-6 pixel over a few arcsec), while the astropy
# round trip sky -> AltAz -> sky is consistent to ~1e-5 micro-arcsec, so a 1 arcsec
# step measures the direction to better than 1e-8 of its length.
_ALTITUDE_STEP_ARCSEC = 1.0

# Closer than this to the zenith (arcsec) there is no zenith direction.
_ZENITH_TOLERANCE_ARCSEC = 1e-3


def _checkBand(effectiveWavelength: Any, bandwidth: Any, dcrNumSubfilters: Any) -> None:
    """Validate a band description and a number of subfilters.

    Raises
    ------
    DcrMetadataError
        If the effective wavelength or the bandwidth is missing (None).
    DcrTypeError
        If a value is not a real number, or the number of subfilters not an integer.
    DcrValueError
        If a wavelength is not finite and positive, the band reaches zero wavelength,
        or the number of subfilters is below 1.
    """
    missing = [
        name
        for name, value in (("effectiveWavelength", effectiveWavelength), ("bandwidth", bandwidth))
        if value is None
    ]
    if missing:
        raise DcrMetadataError(
            f"the filter wavelengths are missing ({', '.join(missing)} is None); DCR needs the "
            "band's effective wavelength and bandwidth in nm: give a Filter with both, or "
            "pass them explicitly",
            effectiveWavelength=effectiveWavelength,
            bandwidth=bandwidth,
        )
    for name, value in (("effectiveWavelength", effectiveWavelength), ("bandwidth", bandwidth)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise DcrTypeError(
                f"{name} must be a real number in nm (a plain float, not a Quantity)",
                **{name: value},
            )
        if not math.isfinite(value) or value <= 0:
            raise DcrValueError(f"{name} must be finite and positive (nm)", **{name: value})
    if bandwidth >= 2.0 * effectiveWavelength:
        raise DcrValueError(
            "the band reaches zero wavelength: bandwidth must be less than twice the "
            "effective wavelength (both in nm)",
            effectiveWavelength=effectiveWavelength,
            bandwidth=bandwidth,
        )
    if isinstance(dcrNumSubfilters, bool) or not isinstance(dcrNumSubfilters, numbers.Integral):
        raise DcrTypeError(
            "dcrNumSubfilters must be an integer (the number of subfilters, 1 or more)",
            dcrNumSubfilters=dcrNumSubfilters,
        )
    if dcrNumSubfilters < 1:
        raise DcrValueError(
            "dcrNumSubfilters must be at least 1 (the number of wavelength slices of the band)",
            dcrNumSubfilters=dcrNumSubfilters,
        )


def wavelengthGenerator(
    effectiveWavelength: float, bandwidth: float, dcrNumSubfilters: int
) -> Iterator[tuple[float, float]]:
    """Iterate over the wavelength ranges of the subfilters of a band.

    Subfilter ``k`` covers ``[λmin + k·Δ, λmin + (k+1)·Δ)`` with ``λmin = λeff − Δλ/2``
    and ``Δ = Δλ/N``; the first range starts at ``λmin`` and the last ends at
    ``λmax = λeff + Δλ/2``.

    Parameters
    ----------
    effectiveWavelength : float
        Effective wavelength of the band, in nm.
    bandwidth : float
        Full width of the band, in nm.
    dcrNumSubfilters : int
        Number of subfilters ``N`` (1 or more).

    Returns
    -------
    iterator of tuple of float
        ``(start, end)`` of each subfilter in nm, from the bluest to the reddest.

    Raises
    ------
    DcrMetadataError
        If ``effectiveWavelength`` or ``bandwidth`` is None.
    DcrTypeError
        If a wavelength is not a real number or ``dcrNumSubfilters`` not an integer.
    DcrValueError
        If a wavelength is not finite and positive, the band reaches zero wavelength,
        or ``dcrNumSubfilters`` is below 1.

    Examples
    --------
    >>> [tuple(round(w, 6) for w in r) for r in wavelengthGenerator(475.0, 150.0, 3)]
    [(400.0, 450.0), (450.0, 500.0), (500.0, 550.0)]
    """
    _checkBand(effectiveWavelength, bandwidth, dcrNumSubfilters)
    edges = _subfilterEdges(float(effectiveWavelength), float(bandwidth), int(dcrNumSubfilters))
    return iter([(float(edges[k]), float(edges[k + 1])) for k in range(int(dcrNumSubfilters))])


def _subfilterEdges(effectiveWavelength: float, bandwidth: float, n: int) -> np.ndarray:
    """Return the ``n + 1`` subfilter edges in nm (validated input)."""
    lambdaMin = effectiveWavelength - bandwidth / 2.0
    # lambdaMin + bandwidth*k/n makes the last edge exactly lambdaMax.
    return lambdaMin + bandwidth * np.arange(n + 1) / n


def _checkVisitInfo(visitInfo: Any, needs: tuple[str, ...], purpose: str) -> None:
    """Raise DcrMetadataError if visitInfo, or one of the attributes in needs, is missing."""
    if visitInfo is None:
        raise DcrMetadataError(
            f"no visit info: {purpose} needs the visit's metadata (VisitInfo with the date, "
            "the observatory and the boresight altitude); give the exposure a visitInfo or "
            "pass visitInfo=",
            visitInfo=visitInfo,
        )
    for name in needs:
        if getattr(visitInfo, name, None) is None:
            raise DcrMetadataError(
                f"visitInfo.{name} is missing: {purpose} needs it; set it on the VisitInfo "
                "(VisitInfo.fromAstropy computes every field from a SkyCoord, a Time and an "
                "EarthLocation)",
                **{name: None},
            )


def _checkWcs(wcs: Any) -> None:
    """Raise DcrMetadataError / DcrTypeError / DcrValueError for an unusable WCS."""
    if wcs is None:
        raise DcrMetadataError(
            "no WCS: the zenith direction in pixels is measured through the exposure's "
            "celestial WCS; give the exposure a wcs or pass wcs= (an astropy.wcs.WCS)",
            wcs=wcs,
        )
    if not isinstance(wcs, WCS):
        raise DcrTypeError(
            "wcs must be an astropy.wcs.WCS mapping 0-based parent pixels (x, y) to the sky",
            wcs=type(wcs).__name__,
        )
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise DcrValueError(
            "wcs must be a 2-axis celestial WCS (for a cube take wcs.celestial)",
            naxis=wcs.naxis,
            ctype=list(wcs.wcs.ctype),
        )


def _regionCentre(wcs: WCS, bbox: BoxLike | None) -> tuple[float, float]:
    """Return the centre (x, y) of the region in 0-based parent pixels."""
    if bbox is not None:
        centre = getattr(bbox, "center", None)
        if centre is None:
            raise DcrTypeError(
                "bbox must be a dcrmodel.image.Box (or None for the WCS's own centre)",
                bbox=type(bbox).__name__,
            )
        if hasattr(bbox, "isEmpty") and bbox.isEmpty():
            raise DcrValueError("bbox is empty: give a region with at least one pixel", bbox=bbox)
        return float(centre[0]), float(centre[1])
    if wcs.pixel_shape is not None:
        nx, ny = wcs.pixel_shape
        return (nx - 1) / 2.0, (ny - 1) / 2.0
    crpix = wcs.wcs.crpix
    return float(crpix[0]) - 1.0, float(crpix[1]) - 1.0


def _zenithDirection(visitInfo: VisitInfo, wcs: WCS, x: float, y: float) -> tuple[float, float]:
    """Pixels per arcsec of altitude at parent pixel (x, y); inputs already validated."""
    vy, vx = _zenithDirections(visitInfo, wcs, np.array([x]), np.array([y]))
    return float(vy[0]), float(vx[0])


def _zenithDirections(
    visitInfo: VisitInfo, wcs: WCS, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per arcsec of altitude at parent pixels (x, y) (1-d arrays); inputs validated.

    One transform of all points to the visit's horizontal frame and one (vectorised over
    two points per point) back: a step of ``_ALTITUDE_STEP_ARCSEC`` centred on each
    point's altitude, clipped at the zenith. Points at the zenith get (0, 0).
    """
    if _erfa.erfaPathUsable(wcs):
        vy, vx = _zenithDirectionsErfa(visitInfo.date, visitInfo.observatory.toEarthLocation(),
                                       [wcs], [np.column_stack([x, y])], None)[0]
        for px, py in zip(x[(vy == 0.0) & (vx == 0.0)], y[(vy == 0.0) & (vx == 0.0)],
                          strict=True):
            _log.debug("region centre (%g, %g) is at the zenith: no zenith direction", px, py)
        return vy, vx
    frame = visitInfo.altAzFrame()  # pressure 0: true altitudes, no refraction
    zenith = 90.0 * 3600.0
    with offlineIers():
        sky = wcs.pixel_to_world(x, y)
        horizontal = sky.transform_to(frame)
        alt = np.asarray(horizontal.alt.to_value(u.arcsec), dtype=float)
        az = np.asarray(horizontal.az.to_value(u.deg), dtype=float)
        atZenith = zenith - alt < _ZENITH_TOLERANCE_ARCSEC
        for px, py in zip(x[atZenith], y[atZenith], strict=True):
            _log.debug("region centre (%g, %g) is at the zenith: no zenith direction", px, py)
        low = alt - _ALTITUDE_STEP_ARCSEC
        high = np.minimum(alt + _ALTITUDE_STEP_ARCSEC, zenith)
        steps = SkyCoord(
            az=np.concatenate([az, az]) * u.deg,
            alt=np.concatenate([low, high]) * u.arcsec,
            frame=frame,
        )
        back = steps.transform_to(sky.frame)
        px, py = wcs.world_to_pixel(back)
    count = len(alt)
    span = high - low
    vx = (np.asarray(px[count:]) - np.asarray(px[:count])) / span
    vy = (np.asarray(py[count:]) - np.asarray(py[:count])) / span
    return np.where(atZenith, 0.0, vy), np.where(atZenith, 0.0, vx)


def zenithDirections(
    visitInfo: VisitInfo, wcs: WCS, bboxes: Sequence[BoxLike]
) -> list[tuple[float, float]]:
    """Measure the zenith direction of a visit at the centres of several regions at once.

    The same as `zenithDirection` for each box (to floating-point rounding), with one
    pair of astropy frame transforms for all of them: use it to give `calculateDcr` the
    directions of every subregion of an image (``zenith=``) at the cost of one.

    Parameters
    ----------
    visitInfo : VisitInfo
        Visit metadata; ``date`` and ``observatory`` are used.
    wcs : astropy.wcs.WCS
        Celestial WCS mapping 0-based parent pixels ``(x, y)`` to the sky.
    bboxes : sequence of dcrmodel.image.Box
        Regions (parent pixels) whose centres are used; at least one.

    Returns
    -------
    list of tuple of float
        ``(vy, vx)`` per box, pixels per arcsec of altitude (see `zenithDirection`).

    Raises
    ------
    DcrMetadataError, DcrTypeError, DcrValueError
        As `zenithDirection`, or if ``bboxes`` is empty.
    """
    _checkVisitInfo(visitInfo, ("date", "observatory"), "the zenith direction")
    _checkWcs(wcs)
    boxes = list(bboxes)
    if not boxes:
        raise DcrValueError("bboxes is empty: give at least one region")
    centres = np.array([_regionCentre(wcs, box) for box in boxes], dtype=float)
    vy, vx = _zenithDirections(visitInfo, wcs, centres[:, 0], centres[:, 1])
    return [(float(a), float(b)) for a, b in zip(vy, vx, strict=True)]


def zenithDirectionsOfVisits(
    visitInfos: Sequence[VisitInfo], wcss: Sequence[WCS], bboxes: Sequence[Sequence[BoxLike]]
) -> list[list[tuple[float, float]]]:
    """Measure the zenith directions of many visits, each at several regions, at once.

    The same as `zenithDirections` for each visit (to floating-point rounding), with one
    pair of astropy frame transforms for all visits together (one horizontal frame whose
    time and place are arrays): a model built from dozens of visits pays the fixed cost
    of a transform once instead of once per visit.

    Parameters
    ----------
    visitInfos : sequence of VisitInfo
        One per visit; ``date`` and ``observatory`` are used.
    wcss : sequence of astropy.wcs.WCS
        One celestial WCS per visit, mapping 0-based parent pixels to the sky.
    bboxes : sequence of sequence of dcrmodel.image.Box
        The regions (parent pixels) of each visit whose centres are used; at least one per
        visit.

    Returns
    -------
    list of list of tuple of float
        ``(vy, vx)`` per visit and box, pixels per arcsec of altitude (see
        `zenithDirection`).

    Raises
    ------
    DcrMetadataError, DcrTypeError, DcrValueError
        As `zenithDirections`, naming the visit; or if the three sequences differ in length.

    Examples
    --------
    >>> from astropy.coordinates import EarthLocation, SkyCoord
    >>> from astropy.time import Time
    >>> from astropy.wcs import WCS
    >>> from dcrmodel.image import Box
    >>> from dcrmodel.physics.observation import VisitInfo
    >>> wcs = WCS(naxis=2)
    >>> wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    >>> wcs.wcs.crval, wcs.wcs.crpix = [30.0, -30.0], [50.0, 50.0]
    >>> wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    >>> site = EarthLocation.from_geodetic(-70.75, -30.24, 2663.0)
    >>> visits = [VisitInfo.fromAstropy(SkyCoord(30.0, -30.0, unit="deg"), Time(t), site)
    ...           for t in ("2024-01-01T01:00:00", "2024-01-01T04:00:00")]
    >>> boxes = [Box(0, 0, 99, 99), Box(0, 0, 10, 10)]
    >>> many = zenithDirectionsOfVisits(visits, [wcs, wcs], [boxes, boxes])
    >>> one = zenithDirections(visits[1], wcs, boxes)
    >>> bool(np.allclose(many[1], one, rtol=1e-9, atol=1e-12))
    True
    """
    visitInfos, wcss, bboxes = list(visitInfos), list(wcss), [list(b) for b in bboxes]
    if not len(visitInfos) == len(wcss) == len(bboxes):
        raise DcrValueError(
            "give one WCS and one list of boxes per visit",
            visits=len(visitInfos),
            wcss=len(wcss),
            bboxes=len(bboxes),
        )
    if not visitInfos:
        return []
    points = []
    for index, (info, wcs, boxes) in enumerate(zip(visitInfos, wcss, bboxes, strict=True)):
        try:
            _checkVisitInfo(info, ("date", "observatory"), "the zenith direction")
            _checkWcs(wcs)
            if not boxes:
                raise DcrValueError("bboxes is empty: give at least one region")
            points.append(np.array([_regionCentre(wcs, box) for box in boxes], dtype=float))
        except (DcrMetadataError, DcrTypeError, DcrValueError) as error:
            raise type(error)(f"visit {index}: {error.message}", **error.values) from error
    counts = np.array([len(centres) for centres in points])
    owner = np.repeat(np.arange(len(points)), counts)
    if all(_erfa.erfaPathUsable(wcs) for wcs in wcss):
        times = Time([info.date for info in visitInfos])[owner]
        geocentric = np.array([[value.to_value(u.m) for value in
                                info.observatory.toEarthLocation().geocentric]
                               for info in visitInfos])
        location = EarthLocation.from_geocentric(*(geocentric[owner].T * u.m))
        directions = _zenithDirectionsErfa(times, location, wcss, points, counts)
        return [[(float(a), float(b)) for a, b in zip(vy, vx, strict=True)]
                for vy, vx in directions]
    return _zenithDirectionsAstropy(visitInfos, wcss, points, counts, owner)


def _zenithDirectionsAstropy(
    visitInfos: list[VisitInfo], wcss: list[WCS], points: list[np.ndarray],
    counts: np.ndarray, owner: np.ndarray,
) -> list[list[tuple[float, float]]]:
    """`zenithDirectionsOfVisits` through astropy's frames (WCSs of frames other than ICRS).

    ``points`` are each visit's region centres (pixels), ``counts`` their numbers and
    ``owner`` the visit of every centre, in order.
    """
    zenith = 90.0 * 3600.0
    with offlineIers():
        skies = [
            wcs.pixel_to_world(centres[:, 0], centres[:, 1]).transform_to(ICRS())
            for wcs, centres in zip(wcss, points, strict=True)
        ]
        ra = np.concatenate([sky.ra.to_value(u.deg) for sky in skies])
        dec = np.concatenate([sky.dec.to_value(u.deg) for sky in skies])
        frames = [info.altAzFrame() for info in visitInfos]
        times = Time([frame.obstime for frame in frames])[owner]
        geocentric = np.array(
            [[value.to_value(u.m) for value in frame.location.geocentric] for frame in frames]
        )
        location = EarthLocation.from_geocentric(*(geocentric[owner].T * u.m))
        frame = AltAz(obstime=times, location=location, pressure=0.0 * u.hPa)
        horizontal = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame=ICRS()).transform_to(frame)
        alt = np.asarray(horizontal.alt.to_value(u.arcsec), dtype=float)
        az = np.asarray(horizontal.az.to_value(u.deg), dtype=float)
        atZenith = zenith - alt < _ZENITH_TOLERANCE_ARCSEC
        low = alt - _ALTITUDE_STEP_ARCSEC
        high = np.minimum(alt + _ALTITUDE_STEP_ARCSEC, zenith)
        doubled = np.concatenate([owner, owner])
        stepFrame = AltAz(
            obstime=times[np.concatenate([np.arange(len(owner))] * 2)],
            location=EarthLocation.from_geocentric(*(geocentric[doubled].T * u.m)),
            pressure=0.0 * u.hPa,
        )
        steps = SkyCoord(
            az=np.concatenate([az, az]) * u.deg,
            alt=np.concatenate([low, high]) * u.arcsec,
            frame=stepFrame,
        ).transform_to(ICRS())
        results = []
        start = 0
        for index, wcs in enumerate(wcss):
            stop = start + counts[index]
            count = len(owner)
            both = np.concatenate([np.arange(start, stop), count + np.arange(start, stop)])
            px, py = wcs.world_to_pixel(steps[both])
            n = stop - start
            span = high[start:stop] - low[start:stop]
            vx = (np.asarray(px[n:]) - np.asarray(px[:n])) / span
            vy = (np.asarray(py[n:]) - np.asarray(py[:n])) / span
            flat = atZenith[start:stop]
            results.append(
                [(0.0, 0.0) if z else (float(a), float(b)) for a, b, z in zip(vy, vx, flat,
                                                                             strict=True)]
            )
            start = stop
    return results


def _zenithDirectionsErfa(
    times: Time, location: EarthLocation, wcss: Sequence[WCS], points: Sequence[np.ndarray],
    counts: np.ndarray | None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Measure the zenith directions of `zenithDirectionsOfVisits` with ERFA directly.

    The same steps as the astropy path (pixel -> ICRS -> horizontal -> a step in altitude
    -> ICRS -> pixel) through `dcrmodel.physics.horizontal`, without building astropy
    frames: the first call of a process takes milliseconds instead of a few hundredths of
    a second. ``times`` and ``location`` are one per point (``counts`` points per visit),
    or scalars for a single visit (``counts`` None). Returns ``(vy, vx)`` arrays per visit,
    (0, 0) at the zenith.
    """
    zenith = 90.0 * 3600.0
    with offlineIers():
        radec = [_erfa.pixelsToIcrs(wcs, centres[:, 0], centres[:, 1])
                 for wcs, centres in zip(wcss, points, strict=True)]
        astrom = _erfa.observerAstrometry(times, location)
        az, alt = _erfa.icrsToHorizontal(np.concatenate([ra for ra, _ in radec]),
                                         np.concatenate([dec for _, dec in radec]), astrom)
        count = len(alt)
        atZenith = zenith - alt < _ZENITH_TOLERANCE_ARCSEC
        low = alt - _ALTITUDE_STEP_ARCSEC
        high = np.minimum(alt + _ALTITUDE_STEP_ARCSEC, zenith)
        if counts is not None:
            astrom = astrom[np.concatenate([np.arange(count)] * 2)]
        ra, dec = _erfa.horizontalToIcrs(np.concatenate([az, az]), np.concatenate([low, high]),
                                         astrom)
        results = []
        start = 0
        for wcs, centres in zip(wcss, points, strict=True):
            stop = start + len(centres)
            both = np.concatenate([np.arange(start, stop), count + np.arange(start, stop)])
            px, py = _erfa.icrsToPixels(wcs, ra[both], dec[both])
            n = stop - start
            span = high[start:stop] - low[start:stop]
            flat = atZenith[start:stop]
            results.append((np.where(flat, 0.0, (py[n:] - py[:n]) / span),
                            np.where(flat, 0.0, (px[n:] - px[:n]) / span)))
            start = stop
    return results


def zenithDirection(
    visitInfo: VisitInfo, wcs: WCS, bbox: BoxLike | None = None
) -> tuple[float, float]:
    """Measure the zenith direction of a visit in the pixels of an exposure.

    The centre of ``bbox`` is taken to the sky through ``wcs``, to the visit's
    horizontal frame (astropy ``AltAz`` at the visit date and observatory, without
    refraction), raised in altitude, and taken back to pixels. The result is the
    displacement in pixels of a source whose altitude rises by one arcsec, so a
    refraction of ``R`` arcsec moves it by ``R * (vy, vx)`` pixels.

    Parameters
    ----------
    visitInfo : VisitInfo
        Visit metadata; ``date`` (astropy ``Time``) and ``observatory`` are used.
    wcs : astropy.wcs.WCS
        Celestial WCS mapping 0-based parent pixels ``(x, y)`` to the sky.
    bbox : dcrmodel.image.Box, optional
        Region (parent pixels) whose centre is used. None: the centre of
        ``wcs.pixel_shape`` if set, else the reference pixel ``CRPIX - 1``.

    Returns
    -------
    tuple of float
        ``(vy, vx)``: pixels per arcsec of altitude. Its length is the inverse pixel scale
        along the vertical circle. ``(0.0, 0.0)`` at the zenith itself (within 1 mas),
        where there is no zenith direction and refraction vanishes.

    Raises
    ------
    DcrMetadataError
        If ``visitInfo``, its ``date`` or ``observatory``, or ``wcs`` is missing.
    DcrTypeError
        If ``wcs`` is not an ``astropy.wcs.WCS`` or ``bbox`` not a ``Box``.
    DcrValueError
        If ``wcs`` is not a 2-axis celestial WCS or ``bbox`` is empty.

    Notes
    -----
    Astropy's bundled Earth-orientation tables are used and nothing is downloaded
    (``dcrmodel.physics.site.offlineIers``); their accuracy is far beyond what a direction needs.
    """
    _checkVisitInfo(visitInfo, ("date", "observatory"), "the zenith direction")
    _checkWcs(wcs)
    x, y = _regionCentre(wcs, bbox)
    return _zenithDirection(visitInfo, wcs, x, y)


def calculateDcr(
    visitInfo: VisitInfo,
    wcs: WCS,
    effectiveWavelength: float,
    bandwidth: float,
    dcrNumSubfilters: int,
    splitSubfilters: bool = False,
    bbox: BoxLike | None = None,
    zenith: tuple[float, float] | None = None,
) -> list[tuple[float, float]] | list[tuple[tuple[float, float], tuple[float, float]]]:
    """Calculate the DCR shift of each subfilter of a band in one visit.

    Parameters
    ----------
    visitInfo : VisitInfo
        Visit metadata: ``boresightAzAlt`` (its altitude is the elevation at which the
        refraction is computed), ``date``, ``observatory`` and ``weather`` (None: the
        standard atmosphere at the observatory's elevation).
    wcs : astropy.wcs.WCS
        Celestial WCS of the exposure, mapping 0-based parent pixels ``(x, y)`` to the sky.
    effectiveWavelength : float
        Effective wavelength of the band, in nm.
    bandwidth : float
        Full width of the band, in nm.
    dcrNumSubfilters : int
        Number of subfilters (1 or more).
    splitSubfilters : bool, optional
        If True, return for each subfilter the shifts of its two edges instead of one
        shift.
    bbox : dcrmodel.image.Box, optional
        Region (parent pixels) at whose centre the zenith direction is measured. None:
        the centre of ``wcs.pixel_shape`` if set, else the reference pixel.
    zenith : tuple of float, optional
        The zenith direction ``(vy, vx)`` in pixels per arcsec of altitude at the centre of
        ``bbox``, already measured (`zenithDirections` for many regions at once); None
        measures it here (`zenithDirection`).

    Returns
    -------
    list
        One entry per subfilter, bluest first. Not split: ``(dy, dx)`` in pixels, the
        shift for the mean of the differential refraction at the subfilter's two edges.
        Split: ``((dy0, dx0), (dy1, dx1))``, the shifts of its blue and red edges (the
        template averages images shifted to ``0.75·s0 + 0.25·s1`` and
        ``0.25·s0 + 0.75·s1``). Shifts are relative to the effective wavelength and point
        toward the zenith for light bluer than it.

    Raises
    ------
    DcrMetadataError
        If ``visitInfo`` (or its ``boresightAzAlt``, ``date``, ``observatory``), ``wcs``,
        or the band's wavelengths are missing.
    DcrTypeError
        For arguments of the wrong type (see ``wavelengthGenerator`` and
        ``zenithDirection``).
    DcrValueError
        If ``dcrNumSubfilters`` < 1, the wavelengths are impossible, the WCS is not
        celestial, or the refraction cannot be computed (wavelength or elevation out of
        range: see ``dcrmodel.physics.refraction``).

    Notes
    -----
    The refraction uses the boresight elevation for every region of the exposure (as the
    reference pipelines do); only the direction is measured at the region's centre. The
    mean of the edges' refraction is not the refraction at the subfilter's centre
    (refraction is convex in wavelength), so even a single subfilter spanning the whole
    band has a nonzero shift toward the zenith: 0.16 arcsec for a 400-550 nm band at
    30 deg elevation from Cerro Pachon.
    """
    _checkVisitInfo(
        visitInfo, ("boresightAzAlt", "date", "observatory"), "the DCR of a visit"
    )
    _checkWcs(wcs)
    _checkBand(effectiveWavelength, bandwidth, dcrNumSubfilters)
    if not isinstance(splitSubfilters, (bool, np.bool_)):
        raise DcrTypeError("splitSubfilters must be True or False", splitSubfilters=splitSubfilters)
    x, y = _regionCentre(wcs, bbox)

    n = int(dcrNumSubfilters)
    edges = _subfilterEdges(float(effectiveWavelength), float(bandwidth), n)
    elevation = visitInfo.boresightAzAlt[1]
    edgeDr = differentialRefraction(
        edges,
        float(effectiveWavelength),
        elevation,
        visitInfo.observatory,
        visitInfo.weather,
    )
    edgeDr = np.broadcast_to(np.asarray(Angle(edgeDr).to_value(u.arcsec), dtype=float), (n + 1,))

    if zenith is None:
        vy, vx = _zenithDirection(visitInfo, wcs, x, y)
    else:
        try:
            vy, vx = (float(value) for value in zenith)
        except (TypeError, ValueError) as error:
            raise DcrTypeError(
                "zenith must be a (vy, vx) pair of numbers (pixels per arcsec), or None",
                zenith=zenith,
            ) from error
        if not (math.isfinite(vy) and math.isfinite(vx)):
            raise DcrValueError("zenith must be finite (pixels per arcsec)", zenith=zenith)

    def toPixels(drArcsec: float) -> tuple[float, float]:
        return float(drArcsec * vy), float(drArcsec * vx)

    if splitSubfilters:
        result: list = [(toPixels(edgeDr[k]), toPixels(edgeDr[k + 1])) for k in range(n)]
    else:
        result = [toPixels(0.5 * (edgeDr[k] + edgeDr[k + 1])) for k in range(n)]
    _log.debug(
        "DCR at (x, y) = (%.1f, %.1f), elevation %s: zenith direction (vy, vx) = (%.4f, %.4f) "
        "px/arcsec, edge DR %s arcsec",
        x,
        y,
        elevation,
        vy,
        vx,
        np.array2string(edgeDr, precision=4),
    )
    return result


def calculateImageParallacticAngle(
    visitInfo: VisitInfo, wcs: WCS | None = None, bbox: BoxLike | None = None
) -> Angle:
    """Return the angle of the zenith in an exposure's image: parallactic minus rotator angle.

    Parameters
    ----------
    visitInfo : VisitInfo
        Visit metadata.
    wcs : astropy.wcs.WCS, optional
        Celestial WCS of the exposure. None: the angle follows from the metadata alone, as
        the Rubin pipelines compute it: ``boresightParAngle - boresightRotAngle``, the
        rotator angle being the position angle of the image's +y axis on the sky (rotator
        convention ``"SKY"``; ``"UNKNOWN"`` is taken as ``"SKY"``, as the pipelines do).
        Given: the angle measured through the WCS at the region's centre, which includes
        the image's true orientation and flip, precession between ICRS and the apparent
        frame of the date, and distortion.
    bbox : dcrmodel.image.Box, optional
        Region (parent pixels) at whose centre the direction is measured with a WCS (see
        ``zenithDirection``).

    Returns
    -------
    astropy.coordinates.Angle
        The angle ``θ`` in (−180, 180] deg such that the zenith direction in pixels is
        ``(dx, dy) ∝ (−sin θ, cos θ)``: measured from the image's +y axis toward −x. On a
        North-up, East-left image (rotator angle 0) it is the parallactic angle, the
        position angle of the zenith from North through East. At the zenith itself,
        where the direction is undefined, 0 deg (with a WCS).

    Raises
    ------
    DcrMetadataError
        If ``visitInfo`` or a field it needs is missing: without a WCS, the rotator angle
        is needed, in the ``"SKY"`` (or ``"UNKNOWN"``) convention.
    DcrTypeError, DcrValueError
        For an unusable ``wcs`` or ``bbox`` (see ``zenithDirection``).

    Notes
    -----
    `calculateDcr` always measures the zenith direction through the WCS; this function
    is the angle a user of the Rubin pipelines' function of the same name expects.

    Examples
    --------
    A visit west of the meridian (positive parallactic angle) with the rotator at 30 deg:

    >>> import astropy.units as u
    >>> from astropy.coordinates import Angle, EarthLocation, SkyCoord
    >>> from astropy.time import Time
    >>> from dcrmodel import VisitInfo, calculateImageParallacticAngle
    >>> site = EarthLocation.from_geodetic(-70.749417 * u.deg, -30.244639 * u.deg, 2663 * u.m)
    >>> visit = VisitInfo.fromAstropy(
    ...     SkyCoord(150 * u.deg, -40 * u.deg), Time("2026-03-01T03:00:00", scale="tai"),
    ...     site, rotAngle=Angle(30, u.deg))
    >>> q = visit.boresightParAngle.deg
    >>> float(round(calculateImageParallacticAngle(visit).deg - (q - 30), 9))
    0.0
    """
    if wcs is None:
        _checkVisitInfo(
            visitInfo, ("boresightRaDec", "era", "observatory"), "the parallactic angle"
        )
        rotAngle = visitInfo.boresightRotAngle
        if rotAngle is None:
            raise DcrMetadataError(
                "the angle of the zenith in the image needs the rotator angle "
                "(visitInfo.boresightRotAngle, BORE-ROTANG) or the exposure's WCS",
                visitId=getattr(visitInfo, "id", None),
            )
        if visitInfo.rotType not in ("SKY", "UNKNOWN"):
            raise DcrMetadataError(
                f"rotator angle in the {visitInfo.rotType!r} convention: the angle of the "
                "zenith in the image needs a SKY rotator angle or the exposure's WCS",
                rotType=visitInfo.rotType,
            )
        angle = Angle(visitInfo.boresightParAngle - rotAngle).wrap_at(180 * u.deg)
        return Angle(180.0, u.deg) if angle.deg <= -180.0 else angle
    vy, vx = zenithDirection(visitInfo, wcs, bbox=bbox)
    theta = math.degrees(math.atan2(-vx, vy))
    if theta <= -180.0:
        theta += 360.0
    return Angle(theta, u.deg)
