"""How many subfilters a band needs: the DCR across one subfilter against a limit.

Within one subfilter the model takes a source's light as one image moved by one shift (or
smeared between the shifts of its two edges), so a subfilter is only a good description
of the sky while the differential refraction between its two edge wavelengths is small
next to the PSF. That spread is largest in the bluest subfilter (refraction grows
steeply toward the blue) and at the lowest elevation. `subfilterDcrSpread` measures it;
`numSubfiltersFor` returns the least number of equal-width subfilters for which it stays
within a limit. Both are pure functions of wavelengths, elevation and site: no images.

The refraction is that of `dcrmodel.physics.refraction` (Stone 1996).
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle

from .._validate import asInt, asPositiveFloat
from ..errors import DcrValueError
from .dcr import wavelengthGenerator
from .refraction import differentialRefraction
from .site import Observatory, Weather

__all__ = ["subfilterDcrSpread", "numSubfiltersFor"]


def subfilterDcrSpread(
    effectiveWavelength: float,
    bandwidth: float,
    numSubfilters: int,
    elevation: Angle | u.Quantity,
    observatory: Observatory,
    weather: Weather | None = None,
) -> float:
    """Return the largest DCR across one subfilter: its blue edge's refraction minus its red.

    Parameters
    ----------
    effectiveWavelength : float
        Effective wavelength of the band, in nm.
    bandwidth : float
        Full width of the band, in nm (the band spans ``effectiveWavelength -/+
        bandwidth / 2``, cut into ``numSubfilters`` equal slices).
    numSubfilters : int
        Number of subfilters (>= 1).
    elevation : astropy.coordinates.Angle or astropy.units.Quantity
        True elevation of the observation, in (0, 90] degrees.
    observatory : Observatory
        Telescope position.
    weather : Weather, optional
        Weather at the telescope; None: the standard atmosphere at the observatory's
        elevation.

    Returns
    -------
    float
        The largest over the subfilters of ``R(lambda_lo) - R(lambda_hi)``, in arcsec
        (>= 0; the bluest subfilter's, refraction being convex in wavelength).

    Raises
    ------
    DcrTypeError, DcrValueError
        For a bad band, number of subfilters, elevation or site (see
        `dcrmodel.physics.dcr.wavelengthGenerator` and
        `dcrmodel.physics.refraction.differentialRefraction`).

    Examples
    --------
    >>> import astropy.units as u
    >>> wide = subfilterDcrSpread(482.7, 180.5, 3, 30 * u.deg, Observatory.rubin())
    >>> narrow = subfilterDcrSpread(482.7, 180.5, 6, 30 * u.deg, Observatory.rubin())
    >>> bool(0 < narrow < wide)
    True
    """
    ranges = list(wavelengthGenerator(effectiveWavelength, bandwidth, numSubfilters))
    blue = np.array([lo for lo, _ in ranges])
    red = np.array([hi for _, hi in ranges])
    spread = differentialRefraction(blue, red, elevation, observatory, weather)
    return float(np.max(Angle(spread).to_value(u.arcsec)))


def numSubfiltersFor(
    effectiveWavelength: float,
    bandwidth: float,
    limit: float,
    elevation: Angle | u.Quantity,
    observatory: Observatory,
    weather: Weather | None = None,
    minimum: int = 3,
    maximum: int = 16,
) -> int:
    """Return the least number of subfilters whose DCR spread stays within a limit.

    Parameters
    ----------
    effectiveWavelength, bandwidth : float
        The band, in nm (see `subfilterDcrSpread`).
    limit : float
        Largest DCR allowed across one subfilter, in arcsec (> 0).
    elevation : astropy.coordinates.Angle or astropy.units.Quantity
        True elevation at which the spread is evaluated (the lowest of the observations).
    observatory : Observatory
        Telescope position.
    weather : Weather, optional
        Weather at the telescope (None: the standard atmosphere).
    minimum : int, optional
        Fewest subfilters returned (>= 1). Default 3.
    maximum : int, optional
        Most subfilters returned (>= ``minimum``); returned when even that many leave a
        larger spread. Default 16.

    Returns
    -------
    int
        The smallest ``N`` in ``[minimum, maximum]`` with
        ``subfilterDcrSpread(..., N, ...) <= limit``, else ``maximum``.

    Raises
    ------
    DcrValueError
        If ``limit`` is not a positive number or ``maximum < minimum``.

    Examples
    --------
    >>> import astropy.units as u
    >>> numSubfiltersFor(367.07, 100.6, 0.7, 30 * u.deg, Observatory.rubin())
    4
    """
    limit = asPositiveFloat(limit, "limit", "arcsec")
    minimum = asInt(minimum, "minimum")
    maximum = asInt(maximum, "maximum")
    if minimum < 1 or maximum < minimum:
        raise DcrValueError("minimum must be >= 1 and maximum at least minimum",
                            minimum=minimum, maximum=maximum)
    for n in range(minimum, maximum + 1):
        if subfilterDcrSpread(effectiveWavelength, bandwidth, n, elevation, observatory,
                              weather) <= limit:
            return n
    return maximum

