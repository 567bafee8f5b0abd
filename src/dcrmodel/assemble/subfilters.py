"""The number of subfilters of an assembly: chosen from the band and the visits ("auto").

A subfilter is modelled as one image moved by its DCR, so the differential refraction
between a subfilter's two edge wavelengths (its *spread*) must stay small next to the
model's PSF, or the light of a subfilter is smeared along the zenith direction in a way
the model cannot hold (dipoles and false detections in the difference images of visits at
high airmass). The spread grows steeply toward the blue: with the reference's 3
subfilters it is about 0.4 of the PSF's FWHM in r at airmass 2 (0.7 arcsec seeing), 1.05
in g and 1.27 in u.

``dcrNumSubfilters="auto"`` (`AUTO_SUBFILTERS`, the default) takes the least number ``N``
of subfilters for which the spread of every subfilter, in every training visit (its own
elevation, observatory and weather, in pixels of the model's grid along the visit's zenith
direction), stays within `AUTO_SUBFILTER_FRACTION` times the FWHM of the model's PSF. The
fraction was chosen by measurement (``benchmarks/bench_subfilters.py``, the g, u and r
fields of ``benchmarks/README.md``): on them 3 subfilters leave false detections in u
(spread 1.27 FWHM) but none in g (1.05), and 4 leave none in u (0.99).

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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DcrError, DcrWarning
from ..image import Filter
from ..physics import numSubfiltersFor, subfilterDcrSpread

__all__ = [
    "AUTO_SUBFILTERS",
    "AUTO_SUBFILTER_FRACTION",
    "MIN_AUTO_SUBFILTERS",
    "MAX_AUTO_SUBFILTERS",
    "SubfilterChoice",
    "chooseSubfilters",
    "distinctConfigurations",
]

#: The value of ``dcrNumSubfilters`` that chooses the number from the data.
AUTO_SUBFILTERS = "auto"

#: Largest DCR across one subfilter, as a fraction of the model PSF's FWHM (measured).
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
    limitPixels : float or None
        ``fraction * modelPsfFwhm``, pixels.
    spreadPixels : float
        Largest DCR across one subfilter over the visits with ``number`` subfilters, pixels.
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


def _visitSpread(inp: Any, band: Filter, box: Any, n: int) -> float:
    """Return a visit's largest DCR across one of ``n`` subfilters, pixels on the grid."""
    vi = inp.visitInfo
    scale = math.hypot(*inp.zenith[box])  # pixels per arcsec along the zenith direction
    try:
        spread = subfilterDcrSpread(band.effectiveWavelength, band.bandwidth, n,
                                    vi.boresightAzAlt[1], vi.observatory, vi.weather)
    except DcrError as exc:
        raise type(exc)(f"{inp.name}: {exc.message}", **exc.values) from exc
    return spread * scale


def _visitNeeds(inp: Any, band: Filter, box: Any, limitPixels: float, cap: int) -> int:
    """Return the subfilters a visit needs for its spread to stay within the limit."""
    vi = inp.visitInfo
    scale = math.hypot(*inp.zenith[box])
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
        The training visits on the model's grid, with their visit info and their zenith
        directions measured at the centre of ``box``.
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
    maxAirmass = max(airmasses) if airmasses else None
    limit = None if modelPsfFwhm is None else fraction * float(modelPsfFwhm)
    needed = None
    deciding = None
    if limit is not None:
        needs = [_visitNeeds(inp, band, box, limit, cap) for inp in visits]
        needed = max(needs)
        if needed > cap:
            needed = None  # more than the cap: not determined beyond it
    auto = requested == AUTO_SUBFILTERS
    if limit is None:
        number = MIN_AUTO_SUBFILTERS if auto else int(requested)
    elif auto:
        number = cap if needed is None else min(needed, cap)
    else:
        number = int(requested)
    spreads = [_visitSpread(inp, band, box, number) for inp in visits]
    worst = max(range(len(visits)), key=lambda i: spreads[i])
    deciding = visits[worst].name
    spread = spreads[worst]
    airmassText = ("" if visits[worst].visitInfo.boresightAirmass is None
                   else f" at airmass {float(visits[worst].visitInfo.boresightAirmass):.2f}")
    autoNumber = cap if needed is None else needed
    if limit is None:
        reason = (f"{number} subfilters: no PSF is known, so the DCR across a subfilter "
                  f"({spread:.2f} px{airmassText}) cannot be compared with one")
    elif not auto:
        reason = (f"{number} subfilters as configured: the DCR across one subfilter reaches "
                  f"{spread:.2f} px{airmassText} ({deciding}), the limit is {fraction:g} x the "
                  f"model PSF FWHM {modelPsfFwhm:.2f} px = {limit:.2f} px")
    elif needed is None:
        reason = (f"{number} subfilters (auto): the most the visits can constrain "
                  f"({distinct} distinct airmass and zenith-direction configurations, at most "
                  f"{MAX_AUTO_SUBFILTERS}); the DCR across one subfilter still reaches "
                  f"{spread:.2f} px{airmassText} ({deciding}), above {fraction:g} x the model "
                  f"PSF FWHM {modelPsfFwhm:.2f} px = {limit:.2f} px")
    else:
        reason = (f"{number} subfilters (auto): the fewest (at least {MIN_AUTO_SUBFILTERS}) for "
                  f"which the DCR across one subfilter, {spread:.2f} px{airmassText} "
                  f"({deciding}), stays within {fraction:g} x the model PSF FWHM "
                  f"{modelPsfFwhm:.2f} px = {limit:.2f} px")
    choice = SubfilterChoice(
        requested=requested, number=number, needed=needed, cap=cap,
        distinctConfigurations=distinct, fraction=float(fraction),
        modelPsfFwhm=None if modelPsfFwhm is None else float(modelPsfFwhm),
        limitPixels=limit, spreadPixels=float(spread), maxAirmass=maxAirmass,
        decidingVisit=deciding, reason=reason,
    )
    if not auto and limit is not None and number < min(autoNumber, cap) and spread > limit:
        warnings.warn(
            f"dcrNumSubfilters={number} is too few for these visits: the DCR across one "
            f"subfilter reaches {spread:.2f} pixels{airmassText} ({deciding}), more than "
            f"{fraction:g} x the model PSF FWHM ({modelPsfFwhm:.2f} px) = {limit:.2f} px; "
            f"dcrNumSubfilters=\"auto\" would choose {min(autoNumber, cap)}",
            DcrWarning,
            stacklevel=5,
        )
    return choice
