"""Where and when a simulated field is observed: its pointing, its WCS and the visit plan.

The field's centre (`fieldCoord`: by default it crosses the meridian at the first local
midnight) and tangent-plane WCS (`makeWcs`); the visit times (`planVisits`), chosen on a
2-minute grid over one or more nights so that the training visits span their airmass
range on both sides of the meridian and the held-out test visits sit at high airmass;
each visit's seeing, defects and number of transients (`finishPlan`) and its weather
(`drawWeather`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, Angle, SkyCoord
from astropy.time import Time
from astropy.wcs import WCS

from .._validate import asPositiveFloat
from ..errors import DcrValueError
from ..physics import Weather, defaultWeather, offlineIers
from .config import SimulationConfig, asDegrees

__all__ = ["makeWcs"]

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Field geometry
# --------------------------------------------------------------------------------------


def makeWcs(
    center: SkyCoord,
    bbox: Any,
    pixelScale: float,
    rotation: Angle | u.Quantity | None = None,
) -> WCS:
    """Return a tangent-plane WCS centred on a box, North up and East left when unrotated.

    Parameters
    ----------
    center : astropy.coordinates.SkyCoord
        Sky position of the box centre.
    bbox : dcrmodel.image.Box
        The region (parent pixels); the WCS maps parent pixels ``(x, y)``.
    pixelScale : float
        Pixel scale in arcsec per pixel.
    rotation : astropy.coordinates.Angle, optional
        Rotation of the sky on the pixel grid (counter-clockwise, North through East is
        kept: the parity is the sky's).

    Returns
    -------
    astropy.wcs.WCS
        A two-axis ``RA---TAN``/``DEC--TAN`` WCS.
    """
    scale = asPositiveFloat(pixelScale, "pixelScale", "arcsec per pixel") / 3600.0
    theta = math.radians(0.0 if rotation is None else asDegrees(rotation, "rotation"))
    xc, yc = bbox.center
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    icrs = center.icrs
    wcs.wcs.crval = [float(icrs.ra.deg), float(icrs.dec.deg)]
    wcs.wcs.crpix = [xc + 1.0, yc + 1.0]
    c, s = math.cos(theta), math.sin(theta)
    wcs.wcs.cd = np.array([[-scale * c, scale * s], [scale * s, scale * c]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    return wcs


# --------------------------------------------------------------------------------------
# Visit plan
# --------------------------------------------------------------------------------------


@dataclass
class PlannedVisit:
    """One planned visit (`planVisits`); seeing, defects and transients come later.

    Attributes
    ----------
    time : astropy.time.Time
        Middle of the exposure.
    role : str
        ``"training"`` or ``"test"``.
    night : int
        Index of the night (0 for explicit visits).
    seeing : float
        Seeing FWHM at the effective wavelength, arcsec (`finishPlan`).
    defects : bool
        Whether the visit has mask defects (`finishPlan`).
    numTransients : int
        Transients injected in the visit (`finishPlan`).
    """

    time: Time
    role: str
    night: int
    seeing: float = 0.0
    defects: bool = False
    numTransients: int = 0


def _localMidnights(date: Time, longitude: float, nights: int) -> list[Time]:
    """Local mean midnight (UTC) following the evening of ``date``, for each night."""
    hours = (24.0 - longitude / 15.0 - 12.0) % 24.0 + 12.0
    return [date + (k * 24.0 + hours) * u.hour for k in range(nights)]


def _altitudeAndHourAngle(
    coord: SkyCoord, times: Time, observatory: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Return true altitude (deg) and hour angle (deg, [-180, 180), west > 0) at ``times``."""
    location = observatory.toEarthLocation()
    with offlineIers():
        frame = AltAz(obstime=times, location=location, pressure=0.0 * u.hPa)
        altitude = coord.icrs.transform_to(frame).alt.deg
        era = times.earth_rotation_angle(0.0 * u.deg).deg
    hourAngle = (era + observatory.longitude.deg - coord.icrs.ra.deg + 180.0) % 360.0 - 180.0
    return np.atleast_1d(altitude), np.atleast_1d(hourAngle)


def fieldCoord(config: SimulationConfig, observatory: Any) -> SkyCoord:
    """Return the field's centre (on the meridian at the first local midnight by default).

    Parameters
    ----------
    config : SimulationConfig
        The field's coordinates and the first night's date.
    observatory : dcrmodel.physics.site.Observatory
        The site (its longitude places the meridian).

    Returns
    -------
    astropy.coordinates.SkyCoord
        ICRS position of the field's centre.
    """
    dec = asDegrees(config.fieldDec, "fieldDec")
    if config.fieldRa is not None:
        ra = asDegrees(config.fieldRa, "fieldRa") % 360.0
    else:

        midnight = _localMidnights(config.resolveDate(), observatory.longitude.deg, 1)[0]
        with offlineIers():
            era = midnight.earth_rotation_angle(0.0 * u.deg).deg
        ra = (era + observatory.longitude.deg) % 360.0
    return SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs")


def planVisits(
    config: SimulationConfig, coord: SkyCoord, observatory: Any, rng: np.random.Generator
) -> list[PlannedVisit]:
    """Choose the visit times: training on both sides of the meridian, tests at high airmass.

    Parameters
    ----------
    config : SimulationConfig
        The explicit visits, or the numbers of visits, nights, window and airmass ranges.
    coord : astropy.coordinates.SkyCoord
        The field's centre (`fieldCoord`).
    observatory : dcrmodel.physics.site.Observatory
        The site.
    rng : numpy.random.Generator
        The simulation's random generator.

    Returns
    -------
    list of PlannedVisit
        In time order (explicit visits: in the order given); seeing, defects and
        transients are drawn afterwards (`finishPlan`).

    Raises
    ------
    DcrValueError
        If an explicit visit has the field below the horizon, or the window has no time
        with the field up, at a usable airmass, or at the test airmass.
    """
    if config.visits is not None:
        return _explicitVisits(config, coord, observatory)
    grid = _TimeGrid.build(config, coord, observatory)
    chosen = _pickTraining(config, grid, rng) + _pickTest(config, grid)
    jitter = rng.uniform(-50.0, 50.0, len(chosen))
    plan = [
        PlannedVisit(grid.times[i] + jitter[k] * u.s, role, int(grid.night[i]))
        for k, (i, role) in enumerate(chosen)
    ]
    plan.sort(key=lambda v: v.time.jd)
    return plan


def _explicitVisits(
    config: SimulationConfig, coord: SkyCoord, observatory: Any
) -> list[PlannedVisit]:
    """Return the requested `VisitSpec` visits, once the field is checked to be up at each."""
    times = Time([v.time for v in config.visits])
    altitude, _ = _altitudeAndHourAngle(coord, times, observatory)
    below = np.flatnonzero(altitude <= 0.0)
    if below.size:
        i = int(below[0])
        raise DcrValueError(
            f"visit {i} at {config.visits[i].time.utc.isot} has the field below the "
            f"horizon (altitude {altitude[i]:.1f} deg); no visit can be made then",
            visit=i,
            altitude=float(altitude[i]),
        )
    return [PlannedVisit(v.time, v.role, 0) for v in config.visits]


@dataclass
class _TimeGrid:
    """Candidate visit times every 2 minutes of each night's window, and the field then.

    ``used`` marks times already taken, with their neighbours (see `pick`).
    """

    times: Time
    night: np.ndarray
    airmass: np.ndarray
    west: np.ndarray
    usable: np.ndarray
    used: np.ndarray
    window: str

    @classmethod
    def build(cls, config: SimulationConfig, coord: SkyCoord, observatory: Any) -> _TimeGrid:
        """Sample the window; raise if the field is never up or never at a usable airmass."""
        midnights = _localMidnights(config.resolveDate(), observatory.longitude.deg,
                                    config.nights)
        step = 2.0 / 60.0
        offsets = np.arange(-config.nightHours / 2.0, config.nightHours / 2.0 + 1e-9, step)
        times = Time(
            np.concatenate([(m + offsets * u.hour).utc.jd for m in midnights]),
            format="jd",
            scale="utc",
        )
        night = np.repeat(np.arange(config.nights), offsets.size)
        altitude, hourAngle = _altitudeAndHourAngle(coord, times, observatory)
        window = (
            f"{config.nights} night(s) from {config.resolveDate().isot[:10]}, "
            f"{config.nightHours:g} h around local midnight"
        )
        if not np.any(altitude > 0.0):
            raise DcrValueError(
                f"the field (RA {coord.ra.deg:.3f}, Dec {coord.dec.deg:.3f} deg) is never "
                f"above the horizon in the requested window ({window}); choose another "
                "field, date or observatory",
                maxAltitude=float(altitude.max()),
            )
        airmass = np.where(altitude > 0.0,
                           1.0 / np.sin(np.radians(np.clip(altitude, 1e-3, 90))), np.inf)
        west = hourAngle >= 0.0
        trainHi = config.trainingAirmass[1]
        testHi = config.testAirmass[1]
        usable = airmass <= max(trainHi, testHi) + 0.05
        if not np.any(usable):
            raise DcrValueError(
                f"the field never rises above airmass {max(trainHi, testHi) + 0.05:.2f} in "
                f"the requested window ({window}); its lowest airmass there is "
                f"{airmass.min():.2f}. Choose another field or allow higher airmass",
                minAirmass=float(airmass.min()),
            )
        used = np.zeros(airmass.size, dtype=bool)
        return cls(times, night, airmass, west, usable, used, window)

    def pick(self, target: float, isWest: bool, nightIndex: int, minimum: float) -> int | None:
        """Take the free time closest to ``target`` airmass, preferring a side and night.

        Returns its index (it and two times either side are then used), or None.
        """
        airmass = self.airmass
        for sideFirst in (True, False):
            side = isWest if sideFirst else not isWest
            for restrictNight in (True, False):
                sel = (self.usable & ~self.used & (self.west == side)
                       & (airmass >= minimum - 1e-9))
                if restrictNight:
                    sel &= self.night == nightIndex
                if sel.any():
                    candidates = np.flatnonzero(sel)
                    best = int(candidates[np.argmin(np.abs(airmass[candidates] - target))])
                    self.used[max(best - 2, 0):best + 3] = True
                    return best
        return None


def _pickTraining(
    config: SimulationConfig, grid: _TimeGrid, rng: np.random.Generator
) -> list[tuple[int, str]]:
    """Spread the training visits over their airmass range, east then west of the meridian."""
    trainLo, trainHi = config.trainingAirmass
    numTraining, numTest = config.numTraining, config.numTest
    usable, west, airmass = grid.usable, grid.west, grid.airmass
    chosen: list[tuple[int, str]] = []
    sides = [False, True]  # east, west
    haveSide = {s: bool(np.any(usable & (west == s))) for s in sides}
    counts = {False: (numTraining + 1) // 2, True: numTraining // 2}
    if not all(haveSide.values()):
        only = next(s for s in sides if haveSide[s])
        counts = {only: numTraining, not only: 0}
        _log.warning("the window covers only one side of the meridian: the model is "
                     "constrained along one direction only")
    visitNumber = 0
    for side in sides:
        n = counts[side]
        if n == 0:
            continue
        sideAirmass = airmass[usable & (west == side)]
        lo = max(trainLo, float(sideAirmass.min()))
        hi = max(lo, min(trainHi, float(sideAirmass.max())))
        targets = np.linspace(lo, hi, n) if n > 1 else np.array([0.5 * (lo + hi)])
        if n > 2:
            spacing = (hi - lo) / (n - 1)
            targets[1:-1] += rng.uniform(-0.3, 0.3, n - 2) * spacing
        for target in targets:
            index = grid.pick(float(target), side, visitNumber % config.nights, 1.0)
            visitNumber += 1
            if index is None:
                raise DcrValueError(
                    f"the window ({grid.window}) has too few distinct times for "
                    f"{numTraining + numTest} visits; widen it or ask for fewer visits"
                )
            chosen.append((index, "training"))
    return chosen


def _pickTest(config: SimulationConfig, grid: _TimeGrid) -> list[tuple[int, str]]:
    """Place the held-out test visits over their airmass range, alternating sides."""
    testLo, testHi = config.testAirmass
    numTest = config.numTest
    chosen: list[tuple[int, str]] = []
    testTargets = (
        np.linspace(testLo, testHi, numTest) if numTest > 1 else np.array([testLo])
    )[:numTest]
    for j, target in enumerate(testTargets):
        index = grid.pick(float(target), j % 2 == 0, (config.nights - 1 - j) % config.nights,
                          testLo)
        if index is None:
            raise DcrValueError(
                f"no time in the requested window ({grid.window}) has the field at airmass "
                f">= {testLo:g} for the held-out test visits; widen the window, choose "
                "another field, or lower testAirmass",
                testAirmass=(testLo, testHi),
            )
        chosen.append((index, "test"))
    return chosen


def finishPlan(
    config: SimulationConfig, plan: list[PlannedVisit], rng: np.random.Generator
) -> None:
    """Draw each visit's seeing, defects and number of transients.

    Parameters
    ----------
    config : SimulationConfig
        Seeing range (arcsec), defect fraction, transients per test visit, and the
        explicit visits whose given values are kept.
    plan : list of PlannedVisit
        The visits, completed in place.
    rng : numpy.random.Generator
        The simulation's random generator.
    """
    seeingLo, seeingHi = config.seeing
    n = len(plan)
    seeing = rng.uniform(seeingLo, seeingHi, n) if seeingHi > seeingLo else np.full(n, seeingLo)
    numDefects = int(round(config.defectFraction * n))
    defects = np.zeros(n, dtype=bool)
    if numDefects:
        defects[rng.choice(n, numDefects, replace=False)] = True
    specs = config.visits
    for i, visit in enumerate(plan):
        spec = specs[i] if specs is not None else None
        visit.seeing = spec.seeing if spec is not None and spec.seeing is not None else seeing[i]
        visit.defects = (
            spec.defects if spec is not None and spec.defects is not None else bool(defects[i])
        )
        default = config.transientsPerTestVisit if visit.role == "test" else 0
        visit.numTransients = (
            spec.numTransients if spec is not None and spec.numTransients is not None else default
        )


def drawWeather(observatory: Any, rng: np.random.Generator) -> Any:
    """Draw the weather of one visit: the site's standard atmosphere, cooler, with scatter.

    Air temperature 4 degC below the standard atmosphere's with 1.5 degC scatter, pressure
    within 0.2 %, humidity 8-40 % (typical of dry high sites such as Cerro Pachon).

    Parameters
    ----------
    observatory : dcrmodel.physics.site.Observatory
        The site (its elevation, m, sets the standard atmosphere).
    rng : numpy.random.Generator
        The simulation's random generator.

    Returns
    -------
    dcrmodel.physics.Weather
        Air temperature (degC), pressure (Pa) and relative humidity (%).
    """
    standard = defaultWeather(observatory.elevation)
    temperature = standard.airTemperature - 4.0 + rng.normal(0.0, 1.5)
    pressure = standard.airPressure * (1.0 + rng.normal(0.0, 0.002))
    humidity = float(rng.uniform(8.0, 40.0))
    return Weather(float(temperature), float(pressure), humidity)
