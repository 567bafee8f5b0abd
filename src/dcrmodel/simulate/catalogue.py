"""The simulated sky's sources: the static catalogue of stars and galaxies, and transients.

`makeCatalogue` draws blue and red stars (blackbodies) and galaxies (an exponential disc
and, for most, a Gaussian bulge, each with its own power-law spectrum) at random positions
inside the field, with fluxes following ``dN/dlog F ~ F^-fluxSlope``. `placeTransients`
draws the new point sources that appear in chosen visits, alternately on a galaxy and in
empty sky, away from bright sources.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import DcrValueError
from .config import SimulationConfig
from .plan import PlannedVisit
from .sources import ExponentialProfile, GaussianProfile, PointProfile, Source, SourceComponent
from .spectra import BlackbodySpectrum, PowerLawSpectrum

__all__ = ["makeCatalogue", "placeTransients"]

#: Blackbody temperature (K) dividing blue from red stars.
_BLUE_STAR_TEMPERATURE = 6500.0


def _logUniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _fluxes(rng: np.random.Generator, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """Fluxes with ``dN/dlog F ~ F^-slope`` between ``lo`` and ``hi``."""
    uniform = rng.random(n)
    if slope == 0.0 or lo == hi:
        return lo * (hi / lo) ** uniform
    a, b = lo**-slope, hi**-slope
    return (a - uniform * (a - b)) ** (-1.0 / slope)


def makeCatalogue(config: SimulationConfig, bbox: Any, rng: np.random.Generator) -> list[Source]:
    """Draw the stars (blackbodies, blue and red) and galaxies (disc + bulge).

    Parameters
    ----------
    config : SimulationConfig
        Numbers or densities of stars and galaxies, their flux ranges (counts) and slope,
        and the edge margin (pixels).
    bbox : dcrmodel.image.Box
        The field (parent pixels).
    rng : numpy.random.Generator
        The simulation's random generator (drawn from in a fixed order).

    Returns
    -------
    list of Source
        Stars first (ids from 1), then galaxies.
    """
    area = bbox.area
    numStars = (
        config.numStars if config.numStars is not None
        else int(round(config.starDensity * area / 1e4))
    )
    numGalaxies = (
        config.numGalaxies if config.numGalaxies is not None
        else int(round(config.galaxyDensity * area / 1e4))
    )
    m = config.edgeMargin

    def positions(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(bbox.minX + m, bbox.maxX - m, n)
        y = rng.uniform(bbox.minY + m, bbox.maxY - m, n)
        return x, y

    sources: list[Source] = []
    sx, sy = positions(numStars)
    blue = rng.random(numStars) < 0.5
    temperature = np.where(
        blue,
        _logUniform(rng, _BLUE_STAR_TEMPERATURE, 30000.0, numStars),
        _logUniform(rng, 3000.0, 5500.0, numStars),
    )
    flux = _fluxes(rng, numStars, *config.starFlux, config.fluxSlope)
    for i in range(numStars):
        component = SourceComponent(PointProfile(), BlackbodySpectrum(temperature[i]), flux[i])
        sources.append(
            Source(
                i + 1, sx[i], sy[i], "star", "blueStar" if blue[i] else "redStar", (component,)
            )
        )
    gx, gy = positions(numGalaxies)
    gflux = _fluxes(rng, numGalaxies, *config.galaxyFlux, config.fluxSlope)
    scale = _logUniform(rng, 1.0, 3.5, numGalaxies)
    axis = rng.uniform(0.35, 1.0, numGalaxies)
    angle = rng.uniform(0.0, 180.0, numGalaxies)
    bulgeFraction = rng.uniform(0.0, 0.5, numGalaxies)
    bulgeScale = rng.uniform(0.35, 0.6, numGalaxies)
    bulgeAxis = np.minimum(axis + rng.uniform(0.1, 0.3, numGalaxies), 1.0)
    discIndex = rng.uniform(-2.0, 0.5, numGalaxies)
    bulgeIndex = rng.uniform(1.5, 4.0, numGalaxies)
    for i in range(numGalaxies):
        components = [
            SourceComponent(
                ExponentialProfile(scale[i], axis[i], angle[i]),
                PowerLawSpectrum(discIndex[i]),
                gflux[i] * (1.0 - bulgeFraction[i]),
            )
        ]
        if bulgeFraction[i] >= 0.05:
            components.append(
                SourceComponent(
                    GaussianProfile(bulgeScale[i] * scale[i], bulgeAxis[i], angle[i]),
                    PowerLawSpectrum(bulgeIndex[i]),
                    gflux[i] * bulgeFraction[i],
                )
            )
        sources.append(
            Source(numStars + i + 1, gx[i], gy[i], "galaxy", "galaxy", tuple(components))
        )
    return sources


def placeTransients(
    plan: list[PlannedVisit],
    sources: list[Source],
    bbox: Any,
    config: SimulationConfig,
    rng: np.random.Generator,
    inside: Callable[[int, float, float], bool] | None = None,
) -> dict[int, list[tuple[Source, int | None]]]:
    """Draw new point sources for each visit: alternately on a galaxy and in empty sky.

    Parameters
    ----------
    plan : list of PlannedVisit
        The visits, with the number of transients of each.
    sources : list of Source
        The static catalogue (transients keep away from its bright sources).
    bbox : dcrmodel.image.Box
        The field (parent pixels).
    config : SimulationConfig
        Edge margin (pixels) and the transients' flux range (counts).
    rng : numpy.random.Generator
        The simulation's random generator.
    inside : callable, optional
        ``inside(visitIndex, x, y)``: whether a position (parent pixels of ``bbox``) may
        hold a transient of that visit, for example inside the visit's own detector;
        candidates elsewhere are drawn again (a transient meant for a host galaxy goes to
        empty sky when 100 candidates near galaxies fail). None: anywhere in ``bbox``.

    Returns
    -------
    dict
        Visit index -> list of ``(transient, host id or None)``.

    Raises
    ------
    DcrValueError
        If no place away from bright sources is found for a transient.
    """
    galaxies = [s for s in sources if s.kind == "galaxy"]
    stars = [s for s in sources if s.kind == "star"]
    brightest = max(stars, key=lambda s: s.flux) if stars else None
    xy = np.array([[s.x, s.y] for s in sources]) if sources else np.zeros((0, 2))
    flux = np.array([s.flux for s in sources]) if sources else np.zeros(0)
    margin = max(config.edgeMargin, 16)
    nextId = (max(s.id for s in sources) if sources else 0) + 1001
    out: dict[int, list[tuple[Source, int | None]]] = {}
    for index, visit in enumerate(plan):
        placed: list[tuple[Source, int | None]] = []
        for j in range(visit.numTransients):
            host: Source | None = None
            for attempt in range(200):
                # With a region, a galaxy host none of whose galaxies lies in it gives way
                # to empty sky after half the attempts.
                onGalaxy = inside is None or attempt < 100
                if j % 2 == 0 and galaxies and onGalaxy:
                    candidate = galaxies[int(rng.integers(len(galaxies)))]
                    r = rng.uniform(0.5, 1.5) * max(candidate.halfLightRadius, 1.0)
                    phi = rng.uniform(0.0, 2.0 * math.pi)
                    x, y = candidate.x + r * math.cos(phi), candidate.y + r * math.sin(phi)
                    host = candidate
                else:
                    x = rng.uniform(bbox.minX + margin, bbox.maxX - margin)
                    y = rng.uniform(bbox.minY + margin, bbox.maxY - margin)
                    host = None
                if not (bbox.minX + margin <= x <= bbox.maxX - margin
                        and bbox.minY + margin <= y <= bbox.maxY - margin):
                    continue
                if brightest is not None and math.hypot(x - brightest.x, y - brightest.y) < 20:
                    continue
                if inside is not None and not inside(index, x, y):
                    continue
                if xy.size:
                    d = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
                    crowded = (d < 8.0) & (flux > 2.0e4)
                    if host is not None:
                        crowded &= np.array([s.id != host.id for s in sources])
                    if host is None and np.any(d < 6.0):
                        continue
                    if np.any(crowded):
                        continue
                if any(math.hypot(x - t.x, y - t.y) < 12.0 for t, _ in placed):
                    continue
                break
            else:
                raise DcrValueError(
                    "no room for a transient away from bright sources; simulate a larger "
                    "field or fewer sources",
                    visit=index,
                )
            temperature = float(_logUniform(rng, 8000.0, 20000.0, 1)[0])
            tflux = float(_fluxes(rng, 1, *config.transientFlux, 0.0)[0])
            component = SourceComponent(PointProfile(), BlackbodySpectrum(temperature), tflux)
            placed.append(
                (Source(nextId, x, y, "transient", "transient", (component,)),
                 None if host is None else host.id)
            )
            nextId += 1
        out[index] = placed
    return out
