"""Reusable builders for the test suite: WCSs, visits at Rubin's site, small exposures.

Everything here is built from astropy objects, as a user without Rubin files would do:

- `makeTanWcs`: a gnomonic (TAN) WCS at a chosen rotation, pixel scale and parity, mapping
  PARENT 0-based pixel coordinates ``(x, y)`` to ICRS.
- `makeVisitInfo`: a `dcrmodel.physics.observation.VisitInfo` for a pointing at a chosen elevation
(or
  airmass) and azimuth at Cerro Pachon, through ``VisitInfo.fromAstropy``. The azimuth sets the
  parallactic configuration: east of the meridian (azimuth 0-180 deg) the parallactic angle is
  negative, west of it (azimuth 180-360 deg) positive.
- `makeVisitAndWcs`: both at once, the WCS centred on the visit's boresight.
- `renderGaussians`: pixel-integrated circular Gaussians (exact flux per source, up to the part
  that falls off the array).
- `makeExposure`: a small `dcrmodel.image.Exposure` with Gaussian sources, optional noise,
  a constant variance plane and DETECTED set on the sources.
"""

from __future__ import annotations

from collections.abc import Sequence

import astropy.units as u
import numpy as np
from astropy.coordinates import ICRS, AltAz, Angle, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from astropy.wcs import WCS
from scipy.special import erf

__all__ = [
    "RUBIN_LOCATION",
    "DEFAULT_TIME",
    "makeTanWcs",
    "makeVisitInfo",
    "makeVisitAndWcs",
    "renderGaussians",
    "makeExposure",
]

#: Cerro Pachon (primer): longitude -70.749417 deg, latitude -30.244639 deg, 2663 m.
RUBIN_LOCATION = EarthLocation.from_geodetic(
    lon=-70.749417 * u.deg, lat=-30.244639 * u.deg, height=2663.0 * u.m
)

#: A fixed observation time so that every test is reproducible.
DEFAULT_TIME = Time("2026-03-15T04:00:00", scale="utc")


def _toDegrees(value: float | u.Quantity) -> float:
    """Return an angle in degrees from a Quantity/Angle or a plain number taken as degrees."""
    if isinstance(value, u.Quantity):
        return float(value.to_value(u.deg))
    return float(value)


def makeTanWcs(
    rotation: float | u.Quantity = 0.0,
    pixelScale: float = 0.2,
    crval: tuple[float, float] | SkyCoord = (150.0, -30.0),
    crpix: tuple[float, float] = (0.0, 0.0),
    flipped: bool = False,
    shape: tuple[int, int] | None = None,
) -> WCS:
    """Make a celestial TAN WCS for PARENT 0-based pixel coordinates.

    Parameters
    ----------
    rotation : float or Quantity
        Position angle (East of North), degrees, of the pixel grid's +y axis. At 0 the image is
        North up and East left (East right if ``flipped``).
    pixelScale : float
        Pixel scale, arcsec per pixel.
    crval : (float, float) or SkyCoord
        ICRS (RA, Dec) of the reference pixel, degrees.
    crpix : (float, float)
        Reference pixel as PARENT 0-based ``(x, y)`` (the FITS CRPIX is this plus one).
    flipped : bool
        If True the image has East right (the other parity).
    shape : (int, int), optional
        ``(ny, nx)`` of the image, stored as ``wcs.pixel_shape`` = ``(nx, ny)``.

    Returns
    -------
    wcs : astropy.wcs.WCS
    """
    if isinstance(crval, SkyCoord):
        icrs = crval.icrs
        crval = (float(icrs.ra.deg), float(icrs.dec.deg))
    theta = -np.deg2rad(_toDegrees(rotation))
    scale = pixelScale / 3600.0
    parity = 1.0 if flipped else -1.0
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cd = scale * rot @ np.diag([parity, 1.0])
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [float(crval[0]), float(crval[1])]
    wcs.wcs.crpix = [float(crpix[0]) + 1.0, float(crpix[1]) + 1.0]
    wcs.wcs.cd = cd
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    if shape is not None:
        wcs.pixel_shape = (int(shape[1]), int(shape[0]))
    return wcs


def makeVisitInfo(
    elevation: float | u.Quantity | None = None,
    azimuth: float | u.Quantity = 270.0,
    airmass: float | None = None,
    time: Time = DEFAULT_TIME,
    weather=None,
    exposureTime: float = 30.0,
    rotAngle: float | u.Quantity = 0.0,
    id: int = 0,
):
    """Make a VisitInfo for a pointing at a given elevation (or airmass) and azimuth at Rubin.

    Parameters
    ----------
    elevation : float or Quantity, optional
        Elevation of the boresight, degrees. Give this or ``airmass``; default 45 deg.
    azimuth : float or Quantity
        Azimuth of the boresight, degrees East of North. 90 deg: due East (rising, negative
        parallactic angle); 270 deg: due West (setting, positive parallactic angle).
    airmass : float, optional
        Secant of the zenith distance; converted to an elevation of ``asin(1/airmass)``.
    time : astropy.time.Time
        Time of the observation.
    weather : dcrmodel Weather, optional
        Passed on; None gives the standard atmosphere of the site.
    exposureTime : float
        Seconds.
    rotAngle : float or Quantity
        Rotator angle, degrees.
    id : int
        Visit identifier.

    Returns
    -------
    visitInfo : dcrmodel.physics.observation.VisitInfo
    """
    from dcrmodel.physics.observation import VisitInfo

    if elevation is not None and airmass is not None:
        raise ValueError("give elevation or airmass, not both")
    if airmass is not None:
        elevationDeg = float(np.rad2deg(np.arcsin(1.0 / airmass)))
    elif elevation is not None:
        elevationDeg = _toDegrees(elevation)
    else:
        elevationDeg = 45.0
    altAz = AltAz(
        alt=elevationDeg * u.deg,
        az=_toDegrees(azimuth) * u.deg,
        obstime=time,
        location=RUBIN_LOCATION,
    )
    with (
        iers.conf.set_temp("auto_download", False),
        iers.conf.set_temp("auto_max_age", None),
        iers.conf.set_temp("iers_degraded_accuracy", "warn"),
    ):
        icrs = SkyCoord(altAz).transform_to(ICRS())
    skyCoord = SkyCoord(ra=icrs.ra, dec=icrs.dec, frame="icrs")
    return VisitInfo.fromAstropy(
        skyCoord,
        time,
        RUBIN_LOCATION,
        weather=weather,
        exposureTime=exposureTime,
        rotAngle=Angle(_toDegrees(rotAngle), u.deg),
        id=id,
    )


def makeVisitAndWcs(
    elevation: float | u.Quantity | None = None,
    azimuth: float | u.Quantity = 270.0,
    rotation: float | u.Quantity = 0.0,
    pixelScale: float = 0.2,
    crpix: tuple[float, float] = (0.0, 0.0),
    flipped: bool = False,
    shape: tuple[int, int] | None = None,
    **visitKwargs,
):
    """Make a visit and a TAN WCS whose reference pixel points at the visit's boresight.

    Parameters are those of `makeVisitInfo` and `makeTanWcs`; ``crpix`` is PARENT 0-based.

    Returns
    -------
    visitInfo, wcs
    """
    visitInfo = makeVisitInfo(elevation=elevation, azimuth=azimuth, **visitKwargs)
    wcs = makeTanWcs(
        rotation=rotation,
        pixelScale=pixelScale,
        crval=visitInfo.boresightRaDec,
        crpix=crpix,
        flipped=flipped,
        shape=shape,
    )
    return visitInfo, wcs


def renderGaussians(
    shape: tuple[int, int],
    sources: Sequence[tuple[float, float, float]],
    sigma: float = 1.5,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Render pixel-integrated circular Gaussians.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of the array.
    sources : sequence of (x, y, flux)
        PARENT pixel position of each centre (pixel ``(x, y)`` covers ``x-0.5 .. x+0.5``) and its
        total flux, counts.
    sigma : float
        Gaussian standard deviation, pixels.
    origin : (int, int)
        PARENT ``(x0, y0)`` of array index ``[0, 0]``.

    Returns
    -------
    array : numpy.ndarray
        float64 ``(ny, nx)``.
    """
    ny, nx = shape
    xEdges = origin[0] + np.arange(nx + 1) - 0.5
    yEdges = origin[1] + np.arange(ny + 1) - 0.5
    out = np.zeros((ny, nx))
    norm = np.sqrt(2.0) * sigma
    for x, y, flux in sources:
        cx = np.diff(0.5 * erf((xEdges - x) / norm))
        cy = np.diff(0.5 * erf((yEdges - y) / norm))
        out += flux * np.outer(cy, cx)
    return out


def makeExposure(
    shape: tuple[int, int] = (48, 48),
    origin: tuple[int, int] = (0, 0),
    sources: Sequence[tuple[float, float, float]] | None = None,
    sigma: float = 1.5,
    noise: float = 0.0,
    seed: int = 0,
    wcs=None,
    visitInfo=None,
    filterName: str | None = "g",
    detectedThreshold: float | None = None,
    psf=None,
):
    """Make a small Exposure holding Gaussian sources.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)``.
    origin : (int, int)
        PARENT ``(x0, y0)``.
    sources : sequence of (x, y, flux), optional
        PARENT positions (pixels) and fluxes (counts); default one source of 1000 counts at the
        centre.
    sigma : float
        Gaussian standard deviation of the sources, pixels.
    noise : float
        Standard deviation of added white Gaussian noise, counts. The variance plane is
        ``noise**2`` (1.0 when ``noise`` is 0).
    seed : int
        Seed of the noise generator.
    wcs, visitInfo
        Attached as given.
    filterName : str or None
        Rubin band name for ``Filter.fromBand``; None for no filter.
    detectedThreshold : float, optional
        DETECTED is set where the noiseless image exceeds this (counts); default
        ``max(3 * noise, 1e-3 * peak)``.
    psf : dcrmodel Psf, optional
        Default ``GaussianPsf`` of FWHM ``2.3548 * sigma``.

    Returns
    -------
    exposure : dcrmodel.image.Exposure
    """
    from dcrmodel.image import Exposure, Filter, GaussianPsf, Mask, MaskedImage

    ny, nx = shape
    if sources is None:
        sources = [(origin[0] + (nx - 1) / 2.0, origin[1] + (ny - 1) / 2.0, 1000.0)]
    truth = renderGaussians(shape, sources, sigma=sigma, origin=origin)
    rng = np.random.default_rng(seed)
    image = truth + (rng.normal(0.0, noise, size=shape) if noise > 0 else 0.0)
    variance = np.full(shape, noise**2 if noise > 0 else 1.0)
    mask = Mask(np.zeros(shape, dtype=np.int32), origin=origin)
    if detectedThreshold is None:
        detectedThreshold = max(3.0 * noise, 1e-3 * float(truth.max()) if truth.size else 0.0)
    mask.array[truth > detectedThreshold] |= mask.getPlaneBitMask("DETECTED")
    maskedImage = MaskedImage.fromArrays(image, mask=mask.array, variance=variance, origin=origin)
    if psf is None:
        psf = GaussianPsf(2.0 * np.sqrt(2.0 * np.log(2.0)) * sigma)
    filt = Filter.fromBand(filterName) if filterName is not None else None
    return Exposure(maskedImage, wcs=wcs, psf=psf, visitInfo=visitInfo, filter=filt)


def imageMoments(image: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Return total, centroid (x, y) and second moments (xx, yy, xy) of an image (pixels)."""
    yy, xx = np.indices(image.shape, dtype=float)
    total = image.sum()
    xc = (image * xx).sum() / total
    yc = (image * yy).sum() / total
    return (
        total,
        xc,
        yc,
        (image * (xx - xc) ** 2).sum() / total,
        (image * (yy - yc) ** 2).sum() / total,
        (image * (xx - xc) * (yy - yc)).sum() / total,
    )


def meridianFieldCentre() -> SkyCoord:
    """A field on the meridian at DEFAULT_TIME, 25 deg north of the zenith of Cerro Pachon.

    Over +-4 h of hour angle its airmass goes from 1.1 to 2.1, on both sides of the meridian.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lst = DEFAULT_TIME.sidereal_time("mean", longitude=RUBIN_LOCATION.lon)
    return SkyCoord(ra=lst.deg * u.deg, dec=-5.0 * u.deg, frame="icrs")


def meridianVisitInfo(hourAngle: float, visitId: int):
    """A visit of `meridianFieldCentre` at ``hourAngle`` hours from DEFAULT_TIME."""
    import warnings

    from astropy.time import TimeDelta

    from dcrmodel.physics.observation import VisitInfo

    time = DEFAULT_TIME + TimeDelta(hourAngle * 3600.0, format="sec")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VisitInfo.fromAstropy(meridianFieldCentre(), time, RUBIN_LOCATION, id=visitId)
