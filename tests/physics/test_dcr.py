"""Tests of dcrmodel.physics.dcr: subfilter wavelengths, DCR shifts and the zenith direction.

The geometry is checked the independent way: for each case the centre of the region is
taken pixel -> sky through the WCS, to the visit's horizontal frame with astropy (no
refraction), raised in altitude by the differential refraction of each subfilter,
taken back to the sky and to pixels. That finite displacement (not a derivative, not a
parallactic angle) is what ``calculateDcr`` must reproduce within 0.01 pixel, for WCS
rotations over 0-360 deg, both parities, elevations 30-85 deg and azimuths all round.
The refraction magnitudes themselves are tested in test_refraction.py.
"""

import functools
import math
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import ICRS, AltAz, Angle, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st

from dcrmodel.errors import DcrMetadataError, DcrTypeError, DcrValueError
from dcrmodel.image import Box
from dcrmodel.physics import dcr
from dcrmodel.physics.dcr import (
    calculateDcr,
    calculateImageParallacticAngle,
    wavelengthGenerator,
    zenithDirection,
    zenithDirections,
    zenithDirectionsOfVisits,
)
from dcrmodel.physics.observation import VisitInfo
from dcrmodel.physics.refraction import differentialRefraction
from dcrmodel.physics.site import Observatory, Weather
from helpers import DEFAULT_TIME, RUBIN_LOCATION, makeTanWcs, makeVisitAndWcs, makeVisitInfo

pytestmark = pytest.mark.filterwarnings("ignore::dcrmodel.errors.DcrOfflineWarning")

G_EFF, G_BW = 475.0, 150.0  # a g-like band, nm


def _edges(eff, bw, n):
    return np.array([start for start, _ in wavelengthGenerator(eff, bw, n)] + [eff + bw / 2])


# --------------------------------------------------------------------------- wavelengths


def test_wavelength_generator_g_band():
    ranges = list(wavelengthGenerator(G_EFF, G_BW, 3))
    assert ranges == [
        pytest.approx((400.0, 450.0)),
        pytest.approx((450.0, 500.0)),
        pytest.approx((500.0, 550.0)),
    ]
    assert ranges[0][0] == G_EFF - G_BW / 2 and ranges[-1][1] == G_EFF + G_BW / 2
    assert all(isinstance(w, float) for r in ranges for w in r)


@pytest.mark.parametrize("n", [1, 2, 5, 7])
def test_wavelength_generator_is_contiguous_and_equal(n):
    ranges = list(wavelengthGenerator(620.0, 140.0, n))
    assert len(ranges) == n
    assert ranges[0][0] == 550.0 and ranges[-1][1] == 690.0
    for (_, end), (start, _) in zip(ranges[:-1], ranges[1:], strict=True):
        assert end == start
    widths = [end - start for start, end in ranges]
    np.testing.assert_allclose(widths, 140.0 / n, rtol=1e-12)


def test_wavelength_generator_validates_before_iterating():
    with pytest.raises(DcrMetadataError, match="effectiveWavelength is None"):
        wavelengthGenerator(None, 150.0, 3)
    with pytest.raises(DcrMetadataError, match="bandwidth is None"):
        wavelengthGenerator(475.0, None, 3)
    with pytest.raises(DcrValueError, match="at least 1"):
        wavelengthGenerator(475.0, 150.0, 0)
    with pytest.raises(DcrTypeError, match="must be an integer"):
        wavelengthGenerator(475.0, 150.0, 2.5)
    with pytest.raises(DcrValueError, match="bandwidth must be finite and positive"):
        wavelengthGenerator(475.0, -10.0, 3)
    with pytest.raises(DcrValueError, match="effectiveWavelength must be finite"):
        wavelengthGenerator(float("nan"), 10.0, 3)
    with pytest.raises(DcrValueError, match="reaches zero wavelength"):
        wavelengthGenerator(100.0, 250.0, 3)
    with pytest.raises(DcrTypeError, match="plain float"):
        wavelengthGenerator(475.0 * u.nm, 150.0, 3)


# --------------------------------------------------------------------------- the geometry grid


def _gridCases():
    """(elevation, azimuth, rotation, flipped, pixelScale, bbox offset) of each case."""
    cases = []
    i = 0
    for elevation in (30.0, 42.0, 55.0, 70.0, 85.0):
        for azimuth in (0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0):
            rotation = (17.0 + 47.0 * i) % 360.0
            offset = ((i % 3 - 1) * 1500, (i % 5 - 2) * 900)
            cases.append((elevation, azimuth, rotation, i % 2 == 1, 0.1 + 0.1 * (i % 2), offset))
            i += 1
    # Every rotation and both parities at one low pointing.
    for rotation in range(0, 360, 30):
        for flipped in (False, True):
            cases.append((33.0, 250.0, float(rotation), flipped, 0.1, (300, -700)))
    return cases


def _referenceShifts(visits, wcsList, centres, raisesArcsec):
    """Pixel displacement of each region centre raised in altitude by each amount.

    All cases go through astropy in one forward and one backward vectorised transform.
    ``raisesArcsec`` has shape (ncase, m); returns (dy, dx) arrays of shape (ncase, m).
    """
    ra, dec = np.transpose(
        [w.pixel_to_world_values(x, y) for w, (x, y) in zip(wcsList, centres, strict=True)]
    )
    frame = AltAz(obstime=DEFAULT_TIME, location=RUBIN_LOCATION)  # pressure 0: no refraction
    assert all(v.date == DEFAULT_TIME for v in visits)
    with (
        iers.conf.set_temp("auto_download", False),
        iers.conf.set_temp("iers_degraded_accuracy", "warn"),
    ):
        horizontal = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs").transform_to(frame)
        m = raisesArcsec.shape[1]
        alt = horizontal.alt.deg[:, None] + np.hstack([np.zeros((len(ra), 1)), raisesArcsec]) / 3600
        az = np.repeat(horizontal.az.deg[:, None], m + 1, axis=1)
        back = SkyCoord(az=az * u.deg, alt=alt * u.deg, frame=frame).transform_to(ICRS())
    dy = np.empty((len(ra), m))
    dx = np.empty((len(ra), m))
    for k, w in enumerate(wcsList):
        px, py = w.world_to_pixel_values(back.ra.deg[k], back.dec.deg[k])
        dx[k] = px[1:] - px[0]
        dy[k] = py[1:] - py[0]
    return dy, dx


def _gridSetup(nSub):
    cases = _gridCases()
    altAz = SkyCoord(
        az=[c[1] for c in cases] * u.deg,
        alt=[c[0] for c in cases] * u.deg,
        frame=AltAz(obstime=DEFAULT_TIME, location=RUBIN_LOCATION),
    )
    with iers.conf.set_temp("auto_download", False):
        boresights = altAz.transform_to(ICRS())
    observatory = Observatory.fromEarthLocation(RUBIN_LOCATION)
    weather = Weather(8.0, 74000.0, 25.0)
    visits, wcsList, boxes, centres = [], [], [], []
    for k, (elevation, azimuth, rotation, flipped, scale, offset) in enumerate(cases):
        visits.append(
            VisitInfo(
                boresightRaDec=SkyCoord(boresights.ra[k], boresights.dec[k], frame="icrs"),
                boresightAzAlt=(Angle(azimuth, u.deg), Angle(elevation, u.deg)),
                observatory=observatory,
                weather=weather,
                date=DEFAULT_TIME,
            )
        )
        wcsList.append(
            makeTanWcs(
                rotation=rotation,
                pixelScale=scale,
                crval=(boresights.ra.deg[k], boresights.dec.deg[k]),
                crpix=(2000.0, 2000.0),
                flipped=flipped,
            )
        )
        box = Box(2000 + offset[0] - 100, 2000 + offset[1] - 60, 201, 121)
        boxes.append(box)
        centres.append(box.center)
    elevations = np.array([c[0] for c in cases])[:, None] * u.deg
    edges = _edges(G_EFF, G_BW, nSub)
    edgeDr = differentialRefraction(edges[None, :], G_EFF, elevations, observatory, weather).arcsec
    meanDr = 0.5 * (edgeDr[:, :-1] + edgeDr[:, 1:])
    return cases, visits, wcsList, boxes, centres, edgeDr, meanDr


def test_calculate_dcr_matches_astropy_raise_over_rotations_parities_and_pointings():
    nSub = 3
    cases, visits, wcsList, boxes, centres, edgeDr, meanDr = _gridSetup(nSub)
    # Columns: +1 arcsec (the zenith direction), the subfilter means, the edges.
    raises = np.hstack([np.ones((len(cases), 1)), meanDr, edgeDr])
    refDy, refDx = _referenceShifts(visits, wcsList, centres, raises)
    zenithDy, zenithDx = refDy[:, 0], refDx[:, 0]
    meanRef = np.stack([refDy[:, 1 : nSub + 1], refDx[:, 1 : nSub + 1]], axis=-1)
    edgeRef = np.stack([refDy[:, nSub + 1 :], refDx[:, nSub + 1 :]], axis=-1)
    # The grid is sensitive: the largest shift is several pixels, so a 0.4 deg error in
    # direction (ICRS instead of the apparent frame) would exceed the 0.01 px tolerance.
    assert np.max(np.hypot(meanRef[..., 0], meanRef[..., 1])) > 3.0

    errors, splitErrors = [], []
    for k in range(len(cases)):
        shifts = np.array(
            calculateDcr(visits[k], wcsList[k], G_EFF, G_BW, nSub, bbox=boxes[k])
        )
        split = np.array(
            calculateDcr(
                visits[k], wcsList[k], G_EFF, G_BW, nSub, splitSubfilters=True, bbox=boxes[k]
            )
        )
        assert shifts.shape == (nSub, 2) and split.shape == (nSub, 2, 2)
        errors.append(np.max(np.abs(shifts - meanRef[k])))
        splitErrors.append(
            max(np.max(np.abs(split[:, 0] - edgeRef[k, :-1])),
                np.max(np.abs(split[:, 1] - edgeRef[k, 1:])))
        )
        # Bluest subfilter toward the zenith, reddest away from it.
        zenith = np.array([zenithDy[k], zenithDx[k]])
        assert shifts[0] @ zenith > 0
        assert shifts[-1] @ zenith < 0
    # The bar is 0.01 px (the ICRS-parallactic-angle shortcut misses it by 50 %
    # on this grid). The linearised step and the finite raise actually agree to ~1e-7 px
    # (the curvature of a vertical circle over a few arcsec), so hold a tighter bound too.
    assert max(errors) < 0.01, f"worst case {cases[int(np.argmax(errors))]}"
    assert max(splitErrors) < 0.01, f"worst case {cases[int(np.argmax(splitErrors))]}"
    assert max(errors) < 1e-4 and max(splitErrors) < 1e-4


def test_zenith_direction_matches_astropy_raise():
    cases, visits, wcsList, boxes, centres, _, _ = _gridSetup(1)
    refDy, refDx = _referenceShifts(visits, wcsList, centres, np.ones((len(cases), 1)))
    for k in range(0, len(cases), 5):
        vy, vx = zenithDirection(visits[k], wcsList[k], bbox=boxes[k])
        # Pixels per arcsec of altitude: the 1-arcsec raise, whose length is the inverse
        # pixel scale (up to aberration and projection, ~1e-4).
        scale = math.hypot(refDy[k, 0], refDx[k, 0])
        pixelScale = math.sqrt(abs(np.linalg.det(wcsList[k].wcs.cd))) * 3600.0
        assert scale == pytest.approx(1.0 / pixelScale, rel=1e-3)
        assert vy == pytest.approx(refDy[k, 0], abs=1e-6 * scale)
        assert vx == pytest.approx(refDx[k, 0], abs=1e-6 * scale)


# --------------------------------------------------------------------------- analytic checks


@pytest.mark.parametrize(("elevation", "azimuth"), [(30.0, 100.0), (50.0, 250.0), (40.0, 200.0)])
def test_north_up_east_left_parallactic_angle(elevation, azimuth):
    visitInfo, wcs = makeVisitAndWcs(elevation=elevation, azimuth=azimuth)
    theta = calculateImageParallacticAngle(visitInfo, wcs)
    vy, vx = zenithDirection(visitInfo, wcs)
    # Definition: the zenith direction (dx, dy) is along (-sin theta, cos theta).
    norm = math.hypot(vx, vy)
    assert -math.sin(theta.rad) == pytest.approx(vx / norm, abs=1e-12)
    assert math.cos(theta.rad) == pytest.approx(vy / norm, abs=1e-12)
    # Independent: the position angle (ICRS) of the zenith seen from the boresight. They
    # differ only by the gradient of annual aberration across the ~60 deg between them
    # (~1e-4 rad), far below what matters for DCR.
    with iers.conf.set_temp("auto_download", False):
        zenith = SkyCoord(
            AltAz(alt=90 * u.deg, az=0 * u.deg, obstime=DEFAULT_TIME, location=RUBIN_LOCATION)
        ).transform_to(ICRS())
    positionAngle = visitInfo.boresightRaDec.position_angle(zenith)
    assert abs((theta - positionAngle).wrap_at(180 * u.deg).deg) < 0.01
    # The parallactic angle from ICRS hour angle and declination differs by precession
    # (a few tenths of a degree at these elevations in 2026), and no more.
    difference = abs((theta - visitInfo.boresightParAngle).wrap_at(180 * u.deg).deg)
    assert 1e-3 < difference < 0.4
    assert np.sign(theta.deg) == (1 if azimuth > 180 else -1)
    # Without a WCS, the boresight parallactic angle.
    assert calculateImageParallacticAngle(visitInfo).deg == visitInfo.boresightParAngle.deg


@functools.cache
def _symmetryVisit():
    return makeVisitInfo(elevation=35.0, azimuth=120.0)


def test_rotation_and_flip_symmetries():
    visitInfo = _symmetryVisit()
    base = np.array(calculateDcr(visitInfo, makeTanWcs(0.0, crval=visitInfo.boresightRaDec),
                                 G_EFF, G_BW, 3))
    turned = np.array(calculateDcr(visitInfo, makeTanWcs(180.0, crval=visitInfo.boresightRaDec),
                                   G_EFF, G_BW, 3))
    np.testing.assert_allclose(turned, -base, atol=1e-9)
    quarter = np.array(calculateDcr(visitInfo, makeTanWcs(90.0, crval=visitInfo.boresightRaDec),
                                    G_EFF, G_BW, 3))
    # Turning the grid's +y axis 90 deg East of North turns shifts by -90 deg in pixels:
    # (dy, dx) -> (dx, -dy) in the pixel frame of the rotated grid.
    np.testing.assert_allclose(quarter[:, 0], -base[:, 1], atol=1e-9)
    np.testing.assert_allclose(quarter[:, 1], base[:, 0], atol=1e-9)
    flipped = np.array(calculateDcr(
        visitInfo, makeTanWcs(0.0, crval=visitInfo.boresightRaDec, flipped=True), G_EFF, G_BW, 3
    ))
    np.testing.assert_allclose(flipped[:, 0], base[:, 0], atol=1e-9)
    np.testing.assert_allclose(flipped[:, 1], -base[:, 1], atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(rotation=st.floats(0.0, 360.0, exclude_max=True), flipped=st.booleans())
def test_any_rotation_turns_the_shifts_rigidly(rotation, flipped):
    # A grid turned by theta (position angle of +y) sees every sky offset turned by
    # -theta in pixels (by +theta when flipped): (dx, dy)_theta = R(-+theta) (dx, dy)_0.
    visitInfo = _symmetryVisit()
    base = np.array(calculateDcr(visitInfo, makeTanWcs(
        0.0, crval=visitInfo.boresightRaDec, flipped=flipped), G_EFF, G_BW, 3))
    turned = np.array(calculateDcr(visitInfo, makeTanWcs(
        rotation, crval=visitInfo.boresightRaDec, flipped=flipped), G_EFF, G_BW, 3))
    angle = math.radians(rotation if flipped else -rotation)
    c, s = math.cos(angle), math.sin(angle)
    dx0, dy0 = base[:, 1], base[:, 0]
    np.testing.assert_allclose(turned[:, 1], c * dx0 - s * dy0, atol=1e-8)
    np.testing.assert_allclose(turned[:, 0], s * dx0 + c * dy0, atol=1e-8)


def test_single_subfilter_is_mean_of_band_edges():
    visitInfo, wcs = makeVisitAndWcs(elevation=30.0, azimuth=100.0, pixelScale=0.1)
    (shift,) = calculateDcr(visitInfo, wcs, G_EFF, G_BW, 1)
    edgeDr = differentialRefraction(
        np.array([G_EFF - G_BW / 2, G_EFF + G_BW / 2]),
        G_EFF,
        visitInfo.boresightAzAlt[1],
        visitInfo.observatory,
        visitInfo.weather,
    ).arcsec
    expected = 0.5 * (edgeDr[0] + edgeDr[1])
    # Refraction is convex in wavelength: the edges' mean is not zero but a clear,
    # positive shift toward the zenith (about 0.16 arcsec here).
    assert expected > 0.1
    vy, vx = zenithDirection(visitInfo, wcs)
    # (vy, vx) is pixels per arcsec of altitude: 10 px at 0.1 arcsec/px, up to the
    # gradient of annual aberration (~1e-4).
    assert math.hypot(vy, vx) == pytest.approx(10.0, rel=3e-4)
    assert math.hypot(*shift) == pytest.approx(expected * math.hypot(vy, vx), rel=1e-12)
    assert shift[0] * vy + shift[1] * vx > 0


def test_split_edges_bracket_the_mean_shift():
    visitInfo, wcs = makeVisitAndWcs(elevation=40.0, azimuth=300.0, rotation=33.0, flipped=True)
    for n in (1, 3, 4):
        mean = np.array(calculateDcr(visitInfo, wcs, G_EFF, G_BW, n))
        split = np.array(calculateDcr(visitInfo, wcs, G_EFF, G_BW, n, splitSubfilters=True))
        np.testing.assert_allclose(mean, 0.5 * (split[:, 0] + split[:, 1]), atol=1e-12)
        # Adjacent subfilters share an edge.
        np.testing.assert_array_equal(split[1:, 0], split[:-1, 1])
        zenith = np.array(zenithDirection(visitInfo, wcs))
        along = lambda s, z=zenith: s @ z  # noqa: E731
        assert np.all(along(split[:, 0]) > along(mean)) and np.all(along(mean) > along(split[:, 1]))
        # Shifts decrease monotonically from blue to red.
        assert np.all(np.diff(along(mean)) < 0)


def test_zenith_gives_no_shift():
    visitInfo = VisitInfo(
        boresightAzAlt=(Angle(0.0, u.deg), Angle(90.0, u.deg)),
        observatory=Observatory.rubin(),
        date=DEFAULT_TIME,
    )
    # A region near (not at) the zenith: its direction is well defined, but the refraction
    # at the boresight elevation of 90 deg is zero.
    with iers.conf.set_temp("auto_download", False):
        zenith = SkyCoord(
            AltAz(alt=90 * u.deg, az=0 * u.deg, obstime=DEFAULT_TIME, location=RUBIN_LOCATION)
        ).transform_to(ICRS())
    wcs = makeTanWcs(crval=zenith, crpix=(100.0, 100.0))
    for shift in calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3, bbox=Box(0, 0, 50, 50)):
        assert shift == (0.0, 0.0)
    # At the zenith itself there is no direction.
    assert zenithDirection(visitInfo, wcs) == (0.0, 0.0)
    assert calculateImageParallacticAngle(visitInfo, wcs).deg == 0.0


def test_zenith_direction_just_below_the_zenith():
    # 0.4 arcsec from the zenith the altitude step is clipped at 90 deg; the direction
    # still points at the zenith's pixel with the pixel scale's length.
    visitInfo = makeVisitInfo(elevation=90.0 - 0.4 / 3600.0, azimuth=30.0)
    wcs = makeTanWcs(crval=visitInfo.boresightRaDec, pixelScale=0.2)
    vy, vx = zenithDirection(visitInfo, wcs)
    with iers.conf.set_temp("auto_download", False):
        zenith = SkyCoord(
            AltAz(alt=90 * u.deg, az=0 * u.deg, obstime=DEFAULT_TIME, location=RUBIN_LOCATION)
        ).transform_to(ICRS())
    zx, zy = wcs.world_to_pixel(zenith)
    distance = math.hypot(zx, zy)
    assert distance == pytest.approx(2.0, rel=1e-3)
    assert math.hypot(vx, vy) == pytest.approx(5.0, rel=1e-4)
    assert vx / 5.0 == pytest.approx(zx / distance, abs=1e-4)
    assert vy / 5.0 == pytest.approx(zy / distance, abs=1e-4)


def test_zenith_directions_of_many_regions_at_once():
    """One vectorised measurement gives each region's zenithDirection, zenith included;
    calculateDcr given it (zenith=) returns what it measures itself."""
    visitInfo, wcs = makeVisitAndWcs(elevation=35.0, azimuth=120.0)
    boxes = [Box(-3000, 0, 200, 100), Box(0, 0, 50, 50), Box(4000, -2500, 10, 30)]
    together = zenithDirections(visitInfo, wcs, boxes)
    assert len(together) == 3 and all(isinstance(v, float) for pair in together for v in pair)
    for box, pair in zip(boxes, together, strict=True):
        alone = zenithDirection(visitInfo, wcs, bbox=box)
        np.testing.assert_allclose(pair, alone, rtol=0, atol=1e-12 * math.hypot(*alone))
        given = calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3, splitSubfilters=True, bbox=box,
                             zenith=pair)
        measured = calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3, splitSubfilters=True, bbox=box)
        np.testing.assert_allclose(given, measured, rtol=1e-12, atol=0)
    # the directions differ across the regions (otherwise the test above shows nothing)
    assert abs(math.atan2(*together[0]) - math.atan2(*together[2])) > 1e-4
    # a region at the zenith among others
    top = VisitInfo(
        boresightAzAlt=(Angle(0.0, u.deg), Angle(90.0, u.deg)),
        observatory=Observatory.rubin(),
        date=DEFAULT_TIME,
    )
    with iers.conf.set_temp("auto_download", False):
        zenith = SkyCoord(
            AltAz(alt=90 * u.deg, az=0 * u.deg, obstime=DEFAULT_TIME, location=RUBIN_LOCATION)
        ).transform_to(ICRS())
    wcsTop = makeTanWcs(crval=zenith, crpix=(100.0, 100.0))
    pairs = zenithDirections(top, wcsTop, [Box(100, 100, 1, 1), Box(0, 0, 50, 50)])
    assert pairs[0] == (0.0, 0.0)
    assert pairs[1] == pytest.approx(zenithDirection(top, wcsTop, bbox=Box(0, 0, 50, 50)))


def test_zenith_directions_of_many_visits_at_once():
    """One transform for many visits (different times, sites, pointings, rotations and
    WCS parities, a region at the zenith) gives each visit's own zenithDirections."""
    visits, wcss = [], []
    for elevation, azimuth, rotation, flipped in (
        (35.0, 120.0, 0.0, False), (62.0, 250.0, 40.0, True), (80.0, 10.0, -75.0, False)
    ):
        visitInfo, wcs = makeVisitAndWcs(elevation=elevation, azimuth=azimuth,
                                         rotation=rotation, flipped=flipped)
        visits.append(visitInfo)
        wcss.append(wcs)
    # another site and time
    mauna = Observatory(-155.4681 * u.deg, 19.8253 * u.deg, 4139.0)
    later = DEFAULT_TIME + 5.3 * u.hour
    with iers.conf.set_temp("auto_download", False):
        pointing = SkyCoord(
            AltAz(alt=50 * u.deg, az=200 * u.deg, obstime=later,
                  location=mauna.toEarthLocation())
        ).transform_to(ICRS())
    visits.append(VisitInfo.fromAstropy(pointing, later, mauna))
    wcss.append(makeTanWcs(crval=pointing, rotation=12.0))
    # a visit at the zenith
    top = VisitInfo(
        boresightAzAlt=(Angle(0.0, u.deg), Angle(90.0, u.deg)),
        observatory=Observatory.rubin(),
        date=DEFAULT_TIME,
    )
    with iers.conf.set_temp("auto_download", False):
        zenith = SkyCoord(
            AltAz(alt=90 * u.deg, az=0 * u.deg, obstime=DEFAULT_TIME, location=RUBIN_LOCATION)
        ).transform_to(ICRS())
    visits.append(top)
    wcss.append(makeTanWcs(crval=zenith, crpix=(100.0, 100.0)))
    boxes = [[Box(-3000, 0, 200, 100), Box(0, 0, 50, 50)]] * 4 + [[Box(100, 100, 1, 1)]]
    together = zenithDirectionsOfVisits(visits, wcss, boxes)
    for visitInfo, wcs, regions, pairs in zip(visits, wcss, boxes, together, strict=True):
        alone = zenithDirections(visitInfo, wcs, regions)
        for pair, reference in zip(pairs, alone, strict=True):
            np.testing.assert_allclose(pair, reference, rtol=0,
                                       atol=1e-9 * max(math.hypot(*reference), 1.0))
    assert together[-1] == [(0.0, 0.0)]
    assert zenithDirectionsOfVisits([], [], []) == []
    with pytest.raises(DcrValueError, match="one WCS and one list of boxes per visit"):
        zenithDirectionsOfVisits(visits, wcss[:2], boxes)
    with pytest.raises(DcrValueError, match="visit 1: bboxes is empty"):
        zenithDirectionsOfVisits(visits[:2], wcss[:2], [boxes[0], []])


def test_zenith_directions_and_given_zenith_are_checked():
    visitInfo, wcs = makeVisitAndWcs(elevation=35.0, azimuth=120.0)
    with pytest.raises(DcrValueError, match="bboxes is empty"):
        zenithDirections(visitInfo, wcs, [])
    with pytest.raises(DcrTypeError, match="bbox must be a dcrmodel.image.Box"):
        zenithDirections(visitInfo, wcs, [(0, 0)])
    with pytest.raises(DcrTypeError, match=r"zenith must be a \(vy, vx\) pair"):
        calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3, zenith="up")
    with pytest.raises(DcrValueError, match="zenith must be finite"):
        calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3, zenith=(np.nan, 1.0))


def test_default_region_centre():
    visitInfo = makeVisitInfo(elevation=35.0, azimuth=80.0)
    wcs = makeTanWcs(crval=visitInfo.boresightRaDec, crpix=(10.0, 20.0), pixelScale=2.0)
    # No pixel_shape: the reference pixel.
    assert calculateDcr(visitInfo, wcs, G_EFF, G_BW, 2) == calculateDcr(
        visitInfo, wcs, G_EFF, G_BW, 2, bbox=Box(9, 19, 3, 3)
    )
    # With pixel_shape: the centre of the image (here 3 deg wide, so it matters).
    shaped = makeTanWcs(crval=visitInfo.boresightRaDec, crpix=(10.0, 20.0), pixelScale=2.0,
                        shape=(5001, 6001))
    atCentre = calculateDcr(visitInfo, shaped, G_EFF, G_BW, 2, bbox=Box(0, 0, 6001, 5001))
    assert calculateDcr(visitInfo, shaped, G_EFF, G_BW, 2) == atCentre
    atReference = calculateDcr(visitInfo, wcs, G_EFF, G_BW, 2)
    assert np.max(np.abs(np.subtract(atCentre, atReference))) > 1e-3


def test_returns_plain_floats():
    visitInfo, wcs = makeVisitAndWcs(elevation=45.0)
    for shift in calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3):
        assert all(type(v) is float for v in shift)
    for pair in calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3, splitSubfilters=True):
        assert all(type(v) is float for s in pair for v in s)
    assert all(type(v) is float for v in zenithDirection(visitInfo, wcs))
    assert isinstance(calculateImageParallacticAngle(visitInfo, wcs), Angle)


def test_weather_changes_the_magnitude_only():
    visitInfo, wcs = makeVisitAndWcs(elevation=35.0, azimuth=200.0)
    dry = visitInfo.copyWith(weather=Weather(10.0, 60000.0, 0.0))
    dense = visitInfo.copyWith(weather=Weather(-5.0, 101000.0, 50.0))
    a = np.array(calculateDcr(dry, wcs, G_EFF, G_BW, 3))
    b = np.array(calculateDcr(dense, wcs, G_EFF, G_BW, 3))
    ratio = np.hypot(*b.T) / np.hypot(*a.T)
    assert np.all(ratio > 1.5)
    np.testing.assert_allclose(a / np.hypot(*a.T)[:, None], b / np.hypot(*b.T)[:, None],
                               atol=1e-12)


# --------------------------------------------------------------------------- offline and errors


def test_no_iers_download(monkeypatch):
    import astropy.utils.data
    from astropy.utils.iers import iers as iersModule  # noqa: N812

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise OSError("no network in this test")

    monkeypatch.setattr(astropy.utils.data, "download_file", refuse)
    monkeypatch.setattr(iersModule, "download_file", refuse)
    monkeypatch.setattr(iers.conf, "auto_download", True)
    monkeypatch.setattr(iers.IERS_Auto, "iers_table", None)
    wcs = makeTanWcs(crval=(150.0, -30.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA's "dubious year", astropy's IERS notices
        # Far beyond the bundled tables: astropy alone would try to download them.
        date = Time("2040-06-01T05:00:00", scale="utc")
        visitInfo = VisitInfo(
            boresightAzAlt=(Angle(100.0, u.deg), Angle(40.0, u.deg)),
            observatory=Observatory.rubin(),
            date=date,
        )
        shifts = calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3)
    assert calls == []
    assert np.all(np.isfinite(shifts))


def test_missing_metadata_is_named():
    visitInfo, wcs = makeVisitAndWcs(elevation=45.0)
    with pytest.raises(DcrMetadataError, match="no visit info"):
        calculateDcr(None, wcs, G_EFF, G_BW, 3)
    with pytest.raises(DcrMetadataError, match="no WCS"):
        calculateDcr(visitInfo, None, G_EFF, G_BW, 3)
    with pytest.raises(DcrMetadataError, match="filter wavelengths.*effectiveWavelength"):
        calculateDcr(visitInfo, wcs, None, G_BW, 3)
    with pytest.raises(DcrMetadataError, match="filter wavelengths.*bandwidth"):
        calculateDcr(visitInfo, wcs, G_EFF, None, 3)
    with pytest.raises(DcrMetadataError, match="visitInfo.date is missing"):
        calculateDcr(visitInfo.copyWith(date=None), wcs, G_EFF, G_BW, 3)
    with pytest.raises(DcrMetadataError, match="visitInfo.boresightAzAlt is missing"):
        calculateDcr(visitInfo.copyWith(boresightAzAlt=None), wcs, G_EFF, G_BW, 3)
    with pytest.raises(DcrMetadataError, match="visitInfo.observatory is missing"):
        zenithDirection(visitInfo.copyWith(observatory=None), wcs)
    with pytest.raises(DcrMetadataError, match="visitInfo.era is missing"):
        calculateImageParallacticAngle(visitInfo.copyWith(era=None))


def test_bad_values_are_rejected_before_work(monkeypatch):
    visitInfo, wcs = makeVisitAndWcs(elevation=45.0)

    def noWork(*args, **kwargs):
        raise AssertionError("validation must come before any transform")

    monkeypatch.setattr(dcr, "_zenithDirection", noWork)
    monkeypatch.setattr(dcr, "differentialRefraction", noWork)
    with pytest.raises(DcrValueError, match="dcrNumSubfilters must be at least 1"):
        calculateDcr(visitInfo, wcs, G_EFF, G_BW, 0)
    with pytest.raises(DcrTypeError, match="dcrNumSubfilters must be an integer"):
        calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3.0)
    with pytest.raises(DcrTypeError, match="astropy.wcs.WCS"):
        calculateDcr(visitInfo, "wcs", G_EFF, G_BW, 3)
    cube = WCS(naxis=3)
    cube.wcs.ctype = ["RA---TAN", "DEC--TAN", "FREQ"]
    with pytest.raises(DcrValueError, match="2-axis celestial WCS"):
        calculateDcr(visitInfo, cube, G_EFF, G_BW, 3)
    linear = WCS(naxis=2)
    with pytest.raises(DcrValueError, match="2-axis celestial WCS"):
        calculateDcr(visitInfo, linear, G_EFF, G_BW, 3)
    with pytest.raises(DcrTypeError, match="bbox must be a dcrmodel.image.Box"):
        calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3, bbox=(0, 0, 10, 10))
    with pytest.raises(DcrValueError, match="bbox is empty"):
        calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3, bbox=Box(0, 0, 0, 5))
    with pytest.raises(DcrTypeError, match="splitSubfilters must be True or False"):
        calculateDcr(visitInfo, wcs, G_EFF, G_BW, 3, splitSubfilters="yes")


def test_refraction_range_errors_come_through():
    visitInfo, wcs = makeVisitAndWcs(elevation=45.0)
    with pytest.raises(DcrValueError, match="nm"):
        calculateDcr(visitInfo, wcs, 2050.0, 100.0, 3)
    below = visitInfo.copyWith(boresightAzAlt=(Angle(10.0, u.deg), Angle(-5.0, u.deg)))
    with pytest.raises(DcrValueError, match=r"elevation must be within \(0, 90\]"):
        calculateDcr(below, wcs, G_EFF, G_BW, 3)


@pytest.mark.parametrize("rotation", [0.0, 37.0, -120.0, 170.0])
def test_image_parallactic_angle_is_parallactic_minus_rotator_angle(rotation):
    # Reference pipelines' meaning (since November 2025): the angle of the zenith in the
    # image, boresightParAngle - boresightRotAngle, for a SKY rotator angle.
    visitInfo = makeVisitInfo(elevation=40.0, azimuth=250.0, rotAngle=rotation)
    expected = (visitInfo.boresightParAngle - visitInfo.boresightRotAngle).wrap_at(180 * u.deg)
    theta = calculateImageParallacticAngle(visitInfo)
    assert theta.deg == pytest.approx(expected.deg, abs=1e-12)
    assert -180.0 < theta.deg <= 180.0


@pytest.mark.parametrize("rotation", [0.0, 37.0, 160.0])
def test_image_parallactic_angle_from_metadata_agrees_with_the_wcs(rotation):
    # A WCS whose +y axis points at position angle `rotation` (the SKY rotator angle):
    # the metadata-only angle and the angle measured through the WCS agree up to
    # precession between ICRS and the apparent frame (a few tenths of a degree in 2026).
    visitInfo, wcs = makeVisitAndWcs(elevation=45.0, azimuth=230.0, rotation=rotation,
                                     rotAngle=rotation)
    fromMetadata = calculateImageParallacticAngle(visitInfo)
    throughWcs = calculateImageParallacticAngle(visitInfo, wcs)
    assert abs((fromMetadata - throughWcs).wrap_at(180 * u.deg).deg) < 0.4


def test_image_parallactic_angle_needs_a_sky_rotator_angle_without_a_wcs():
    visitInfo = makeVisitInfo(elevation=40.0, azimuth=250.0)
    with pytest.raises(DcrMetadataError, match="needs the rotator angle"):
        calculateImageParallacticAngle(visitInfo.copyWith(boresightRotAngle=None))
    with pytest.raises(DcrMetadataError, match="'HORIZON' convention"):
        calculateImageParallacticAngle(visitInfo.copyWith(rotType="HORIZON"))
