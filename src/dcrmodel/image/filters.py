"""Photometric bands: `Filter` and the Rubin band table `RUBIN_BANDS`."""

from __future__ import annotations

from dataclasses import dataclass

from .._validate import asPositiveFloat
from ..errors import DcrTypeError, DcrValueError

__all__ = ["Filter", "RUBIN_BANDS"]

# Rubin (LSST) bands: effective wavelength and bandwidth in nm. Source: the LSST system
# throughputs, version 1.4 (github.com/lsst/throughputs, described in SMTN-002,
# https://smtn-002.lsst.io), as tabulated in the obs_lsst filter definitions
# (lsst/obs_lsst, python/lsst/obs/lsst/filters.py, the "*_sim_1.4" filters): effective
# wavelength lambdaEff and the band edges lambdaMin, lambdaMax. The bandwidth here is
# lambdaMax - lambdaMin:
#   u 367.070 [308.0, 408.6]   g 482.685 [386.5, 567.0]   r 622.324 [537.0, 706.0]
#   i 754.598 [676.0, 833.0]   z 869.090 [803.0, 938.6]   y 971.028 [908.4, 1096.3]
# A `Filter` spans effectiveWavelength -/+ bandwidth/2, which centres these intervals on
# the effective wavelength (the tabulated edges are not symmetric about it).
RUBIN_BANDS: dict[str, tuple[float, float]] = {
    "u": (367.070, 100.6),
    "g": (482.685, 180.5),
    "r": (622.324, 169.0),
    "i": (754.598, 157.0),
    "z": (869.090, 135.6),
    "y": (971.028, 187.9),
}


@dataclass(frozen=True)
class Filter:
    """A photometric band: name, effective wavelength and bandwidth.

    Parameters
    ----------
    bandName : str
        Band name, for example ``"g"``.
    effectiveWavelength : float
        Effective wavelength of the band, in nm.
    bandwidth : float
        Full width of the band, in nm; the band spans
        ``effectiveWavelength -/+ bandwidth / 2``.

    Raises
    ------
    DcrValueError
        If a wavelength is not positive and finite, or ``bandwidth >= 2 *
        effectiveWavelength`` (the band would reach zero wavelength).

    Examples
    --------
    >>> g = Filter.fromBand("g")
    >>> round(g.lambdaMin, 1), round(g.lambdaMax, 1)
    (392.4, 572.9)
    """

    bandName: str
    effectiveWavelength: float
    bandwidth: float

    def __post_init__(self) -> None:
        if not isinstance(self.bandName, str):
            raise DcrTypeError("bandName must be a string", bandName=self.bandName)
        eff = asPositiveFloat(self.effectiveWavelength, "effectiveWavelength", "nm")
        bw = asPositiveFloat(self.bandwidth, "bandwidth", "nm")
        if bw >= 2.0 * eff:
            raise DcrValueError(
                "bandwidth must be less than twice the effective wavelength "
                "(the band would extend to zero or negative wavelength); check the units (nm)",
                effectiveWavelength=eff,
                bandwidth=bw,
            )
        object.__setattr__(self, "effectiveWavelength", eff)
        object.__setattr__(self, "bandwidth", bw)

    @property
    def lambdaMin(self) -> float:
        """Blue edge of the band, ``effectiveWavelength - bandwidth / 2`` (nm)."""
        return self.effectiveWavelength - self.bandwidth / 2.0

    @property
    def lambdaMax(self) -> float:
        """Red edge of the band, ``effectiveWavelength + bandwidth / 2`` (nm)."""
        return self.effectiveWavelength + self.bandwidth / 2.0

    @classmethod
    def fromBand(cls, name: str) -> Filter:
        """Return the Rubin band ``name`` (u, g, r, i, z or y) from `RUBIN_BANDS`.

        Raises
        ------
        DcrValueError
            If the band is not in the table (the message lists the known bands).
        """
        key = name.strip() if isinstance(name, str) else name
        if key not in RUBIN_BANDS:
            raise DcrValueError(
                f"unknown band {name!r}; known Rubin bands: {' '.join(RUBIN_BANDS)}; "
                "for another band give Filter(bandName, effectiveWavelength, bandwidth) in nm",
                name=name,
            )
        eff, bw = RUBIN_BANDS[key]
        return cls(key, eff, bw)
