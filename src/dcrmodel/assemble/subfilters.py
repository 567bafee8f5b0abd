"""The number of subfilters of an assembly: chosen from the band and the visits ("auto").

A subfilter is modelled as one image moved by its DCR, so the differential refraction
between a subfilter's two edge wavelengths (its *spread*) must stay small next to the
model's PSF, or the light of a subfilter is smeared along the zenith direction in a way
the model cannot hold (dipoles and false detections in the difference images of visits at
high airmass). The spread grows steeply toward the blue: with the reference's 3
subfilters it is 0.40 of the PSF's FWHM in r at airmass 2 (0.7 arcsec seeing), 1.07 in g
and 1.30 in u.

``dcrNumSubfilters="auto"`` (`AUTO_SUBFILTERS`, the default) takes the least number ``N``
of subfilters for which the spread of every subfilter, in every training visit (its own
elevation, observatory and weather, in pixels of the model's grid along the visit's zenith
direction), stays within `AUTO_SUBFILTER_FRACTION` times the PSF's FWHM: the median of the
visits' PSF FWHMs, or the model PSF's when that is broader (`psfFwhmFor`; with constant
seeing both are the model PSF's). The fraction was chosen by measurement
(``benchmarks/bench_subfilters.py``, the g, u and r fields of ``benchmarks/README.md``): on
four fields per band, a spread of 1.07 FWHM (g, 3 subfilters) left no more false detections
than 5 subfilters, 1.30 (u, 3) left 2 to 9 per field where 4 subfilters (1.01) left 0 to 2,
as many as 5. The visits' median FWHM, rather than the model PSF's alone, is the scale
because the PSF-aware model's PSF is the sharpest input's: on g fields of 0.6-1.2 arcsec
seeing, comparing the spread with it (or with a sharp visit's own PSF at high airmass)
asked for 4 subfilters, whose templates had more false detections than those of 3 (24 -> 52
and 3 -> 6 over 4 held-out visits; the demo's variable-seeing field 17 -> 37); with seeing
that variable more subfilters did not help in u either.

``N`` is never below `MIN_AUTO_SUBFILTERS` (3, the reference's number) and never above
the number of distinct DCR configurations of the visits (airmass to 0.01 and zenith
direction on the grid to 1 degree: visits alike in both see the subfilters shifted alike
and add no independent equation to the per-frequency solve, which needs at least as many
as there are subfilters), nor above `MAX_AUTO_SUBFILTERS` (beyond it the templates of the
measured fields no longer improve while the build time grows).

An explicit number is used as given; when it is smaller than the automatic choice (its
spread above the limit) a `DcrWarning` says so in pixels and names the number "auto"
would choose.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DcrError, DcrWarning
from ..image import Filter
from ..physics import numSubfiltersFor, subfilterDcrSpread, zenithDirection

__all__ = [
    "AUTO_SUBFILTERS",
    "AUTO_SUBFILTER_FRACTION",
    "MIN_AUTO_SUBFILTERS",
    "MAX_AUTO_SUBFILTERS",
    "SubfilterChoice",
    "chooseSubfilters",
    "distinctConfigurations",
    "psfFwhmFor",
]

#: The value of ``dcrNumSubfilters`` that chooses the number from the data.
AUTO_SUBFILTERS = "auto"

#: Largest DCR across one subfilter, as a fraction of the PSF's FWHM (measured).
AUTO_SUBFILTER_FRACTION = 1.2

#: Fewest subfilters "auto" chooses (the reference pipelines' number).
MIN_AUTO_SUBFILTERS = 3

#: Most subfilters "auto" chooses.
MAX_AUTO_SUBFILTERS = 8

# Visits whose airmass and zenith direction agree to these steps are one configuration.
_AIRMASS_STEP = 0.01
_ANGLE_STEP_DEG = 1.0


@dataclass(frozen=True)
class SubfilterChoice:
    """The number of subfilters of a run and why.

    Attributes
    ----------
    requested : int or str
        ``dcrNumSubfilters`` as configured (a number or ``"auto"``).
    number : int
        The number used.
    needed : int or None
        The least number meeting the criterion (before the caps; None without a PSF).
    cap : int
        The most subfilters the visits support (distinct configurations, at most
        `MAX_AUTO_SUBFILTERS`, at least `MIN_AUTO_SUBFILTERS`).
    distinctConfigurations : int
        Distinct airmass and zenith-direction configurations among the visits.
    fraction : float
        `AUTO_SUBFILTER_FRACTION`.
    modelPsfFwhm : float or None
        FWHM of the model's PSF, pixels (None when no PSF is known).
    psfFwhm : float or None
        The FWHM the spreads are compared with (`psfFwhmFor`), pixels.
    limitPixels : float or None
        ``fraction * psfFwhm``, pixels.
    spreadPixels : float
        Largest DCR across one of ``number`` subfilters over the visits, pixels.
    maxAirmass : float or None
        Largest airmass among the visits.
    decidingVisit : str or None
        The visit with the largest spread.
    reason : str
        One sentence saying why.
    """

    requested: int | str
    number: int
    needed: int | None
    cap: int
    distinctConfigurations: int
    fraction: float
    modelPsfFwhm: float | None
    psfFwhm: float | None
    limitPixels: float | None
    spreadPixels: float
    maxAirmass: float | None
    decidingVisit: str | None
    reason: str

    def toDict(self) -> dict[str, Any]:
        """Return the choice as a JSON-ready dict (camelCase keys)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def distinctConfigurations(visits: Sequence[Any], box: Any) -> int:
    """Return the number of distinct DCR configurations among assembly inputs.

    Parameters
    ----------
    visits : sequence of `dcrmodel.assemble.inputs.VisitInput`
        The visits, their zenith directions measured at ``box`` (``zenith[box]``).
    box : `dcrmodel.image.Box`
        The region at whose centre the directions were measured.

    Returns
    -------
    int
        The number of distinct pairs (airmass rounded to 0.01, zenith direction on the
        grid rounded to 1 degree); a visit without either counts on its own.
    """
    keys = set()
    for i, inp in enumerate(visits):
        airmass = inp.visitInfo.boresightAirmass if inp.visitInfo is not None else None
        zenith = inp.zenith.get(box)
        if airmass is None or zenith is None:
            keys.add(("visit", i))
            continue
        angle = math.degrees(math.atan2(zenith[1], zenith[0])) % 360.0
        keys.add((round(float(airmass) / _AIRMASS_STEP),
                  round(angle / _ANGLE_STEP_DEG) % round(360.0 / _ANGLE_STEP_DEG)))
    return len(keys)


def _pixelsPerArcsec(inp: Any, box: Any) -> float:
    """Return a visit's grid pixels per arcsec of altitude along its zenith direction."""
    zenith = inp.zenith.get(box)
    if zenith is None:
        zenith = zenithDirection(inp.visitInfo, inp.wcs, box)
        inp.zenith[box] = zenith
    return math.hypot(*zenith)


def _visitSpread(inp: Any, band: Filter, box: Any, n: int) -> float:
    """Return a visit's largest DCR across one of ``n`` subfilters, pixels on the grid."""
    vi = inp.visitInfo
    scale = _pixelsPerArcsec(inp, box)
    if scale == 0.0:  # at the zenith: no DCR
        return 0.0
    try:
        spread = subfilterDcrSpread(band.effectiveWavelength, band.bandwidth, n,
                                    vi.boresightAzAlt[1], vi.observatory, vi.weather)
    except DcrError as exc:
        raise type(exc)(f"{inp.name}: {exc.message}", **exc.values) from exc
    return spread * scale


def psfFwhmFor(visits: Sequence[Any], modelPsfFwhm: float | None) -> float | None:
    """Return the FWHM (pixels) the DCR across a subfilter is compared with.

    The median of the visits' PSF FWHMs (on the model's grid), or the model PSF's when that
    is broader or no visit has a PSF; None when no PSF is known at all.
    """
    known = [float(inp.psf.fwhm) for inp in visits if inp.psf is not None]
    values = [float(statistics.median(known))] if known else []
    if modelPsfFwhm is not None:
        values.append(float(modelPsfFwhm))
    return max(values) if values else None


def _visitNeeds(inp: Any, band: Filter, box: Any, limitPixels: float, cap: int) -> int:
    """Return the subfilters a visit needs for its spread to stay within the limit."""
    vi = inp.visitInfo
    scale = _pixelsPerArcsec(inp, box)
    if scale == 0.0:  # at the zenith: no DCR
        return MIN_AUTO_SUBFILTERS
    return numSubfiltersFor(band.effectiveWavelength, band.bandwidth, limitPixels / scale,
                            vi.boresightAzAlt[1], vi.observatory, vi.weather,
                            minimum=MIN_AUTO_SUBFILTERS, maximum=cap + 1)


def chooseSubfilters(
    requested: int | str,
    visits: Sequence[Any],
    band: Filter,
    box: Any,
    modelPsfFwhm: float | None,
    fraction: float = AUTO_SUBFILTER_FRACTION,
) -> SubfilterChoice:
    """Choose the number of subfilters of a run (``"auto"``), or check an explicit one.

    Parameters
    ----------
    requested : int or str
        ``dcrNumSubfilters``: a number (kept; warned about when too small) or ``"auto"``.
    visits : sequence of `dcrmodel.assemble.inputs.VisitInput`
        The training visits on the model's grid, with their visit info, WCS and zenith
        directions (``zenith``: measured at the centre of ``box`` here when missing).
    band : `dcrmodel.image.Filter`
        The band (effective wavelength and bandwidth, nm).
    box : `dcrmodel.image.Box`
        The model's box.
    modelPsfFwhm : float or None
        FWHM of the model's PSF in pixels; None when no PSF is known (then "auto" keeps
        `MIN_AUTO_SUBFILTERS`).
    fraction : float, optional
        Largest spread as a fraction of the FWHM (`AUTO_SUBFILTER_FRACTION`).

    Returns
    -------
    SubfilterChoice
        The number and its reason.

    Warns
    -----
    DcrWarning
        When an explicit number is smaller than the one "auto" chooses.
    """
    distinct = distinctConfigurations(visits, box)
    cap = max(MIN_AUTO_SUBFILTERS, min(MAX_AUTO_SUBFILTERS, distinct))
    airmasses = [float(inp.visitInfo.boresightAirmass) for inp in visits
                 if inp.visitInfo.boresightAirmass is not None]
    fwhm = psfFwhmFor(visits, modelPsfFwhm)
    limit = None if fwhm is None else fraction * fwhm
    needed = None
    if limit is not None:
        needed = max(_visitNeeds(inp, band, box, limit, cap) for inp in visits)
        if needed > cap:
            needed = None  # more than the cap: not determined beyond it
    auto = requested == AUTO_SUBFILTERS
    if auto:
        number = MIN_AUTO_SUBFILTERS if limit is None else (cap if needed is None else needed)
    else:
        number = int(requested)
    spreads = [_visitSpread(inp, band, box, number) for inp in visits]
    worst = max(range(len(visits)), key=lambda j: spreads[j])
    deciding = visits[worst].name
    spread = spreads[worst]
    airmass = visits[worst].visitInfo.boresightAirmass
    airmassText = "" if airmass is None else f" at airmass {float(airmass):.2f}"
    autoNumber = cap if needed is None else needed
    known = limit is not None
    within = f"{fraction:g} x the PSF FWHM {fwhm:.2f} px = {limit:.2f} px" if known else ""
    if not known:
        reason = (f"{number} subfilters{' (auto)' if auto else ''}: no PSF is known, so the "
                  f"DCR across a subfilter ({spread:.2f} px{airmassText}) cannot be compared "
                  "with one")
    elif not auto:
        reason = (f"{number} subfilters as configured: the DCR across one subfilter reaches "
                  f"{spread:.2f} px{airmassText} ({deciding}), against a limit of {within}")
    elif needed is None:
        reason = (f"{number} subfilters (auto): the most the visits can constrain "
                  f"({distinct} distinct airmass and zenith-direction configurations, at most "
                  f"{MAX_AUTO_SUBFILTERS}); the DCR across one subfilter still reaches "
                  f"{spread:.2f} px{airmassText} ({deciding}), above {within}")
    else:
        reason = (f"{number} subfilters (auto): the fewest (at least {MIN_AUTO_SUBFILTERS}) for "
                  f"which the DCR across one subfilter, at most {spread:.2f} px{airmassText} "
                  f"({deciding}), stays within {within}")
    choice = SubfilterChoice(
        requested=requested, number=number, needed=needed, cap=cap,
        distinctConfigurations=distinct, fraction=float(fraction),
        modelPsfFwhm=None if modelPsfFwhm is None else float(modelPsfFwhm),
        psfFwhm=fwhm, limitPixels=limit, spreadPixels=float(spread),
        maxAirmass=max(airmasses) if airmasses else None, decidingVisit=deciding,
        reason=reason,
    )
    if not auto and known and number < autoNumber and spread > limit:
        warnings.warn(
            f"dcrNumSubfilters={number} is too few for these visits: the DCR across one "
            f"subfilter reaches {spread:.2f} pixels{airmassText} ({deciding}), more than "
            f"{within}; dcrNumSubfilters=\"auto\" would choose {autoNumber}",
            DcrWarning,
            stacklevel=5,
        )
    return choice
