"""Configuration of DCR coadd assembly.

`DcrAssembleConfig` gathers every knob of the iterative forward-modelling algorithm of
DMTN-037 ("DCR-matched template generation", I. Sullivan, Rubin Observatory technical
note) with the reference defaults, plus the options this package adds (the solver, the
template engine, the subregion buffer). A configuration is immutable: make a changed
copy with `DcrAssembleConfig.withOverrides`, or load one from a TOML file with
`DcrAssembleConfig.fromToml`. Every value is checked when the object is made, so a bad
value fails before any work is done.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Iterable
from typing import Any

from .._validate import readTomlFile
from ..errors import DcrConfigError, DcrError
from ..fourier import TRANSFER_MODES
from ..model import ENGINES
from ..parallel import resolveThreads
from ..psf import MODEL_PSF_POLICIES
from ..warp import DEFAULT_WARPING_KERNEL, WARPING_KERNELS
from .subfilters import AUTO_SUBFILTERS, MIN_AUTO_SUBFILTERS

__all__ = [
    "DcrAssembleConfig",
    "SOLVERS",
]

#: Model solvers known to `DcrAssembleCoadd`.
SOLVERS: tuple[str, ...] = ("iterative", "direct")

#: Shift engines that `DcrModel.buildMatchedTemplate` accepts.

# Fields holding a tuple of mask plane names.
_PLANE_FIELDS = ("convergenceMaskPlanes", "badMaskPlanes")


def _isInt(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _isReal(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class DcrAssembleConfig:
    """Settings of DCR coadd assembly (`dcrmodel.assemble.task.DcrAssembleCoadd`).

    All arguments are keywords with the reference task's defaults. Values are checked on
    construction (`validate`); an out-of-range value raises `DcrConfigError`.

    Attributes
    ----------
    dcrNumSubfilters : int or str
        Number of subfilters (equal-width wavelength slices of the band) in the model, or
        ``"auto"`` (the default; the reference's default is 3): the fewest, at least 3, for
        which the DCR across one subfilter (the refraction between its two edge
        wavelengths) stays within 1.2 times the PSF's FWHM (the median of the visits', or
        the model PSF's when broader) in every training visit; at most the number of
        distinct airmass and zenith-direction configurations of the visits, and 8
        (`dcrmodel.assemble.subfilters`). The choice and its reason are logged and recorded
        in the summary (``subfilters``). An explicit number is used as given, with a
        `DcrWarning` when it is smaller than the automatic choice.
    minNumIter : int or None
        Minimum number of forward-modelling iterations. None: ``dcrNumSubfilters``.
    maxNumIter : int or None
        Maximum number of forward-modelling iterations. None: ``3 * dcrNumSubfilters``.
    convergenceThreshold : float
        Stop iterating once the relative improvement of the convergence metric between
        two iterations falls below this value (dimensionless). Default 0.001.
    useConvergence : bool
        Compute the convergence metric and stop by the rules above. If False, run exactly
        ``maxNumIter`` iterations with the base gain. Default True.
    baseGain : float or None
        Relative weight of the new solution against the previous one when the model is
        updated (`DcrModel.conditionDcrModel`); 1 gives both equal weight. None:
        ``1 / (dcrNumSubfilters - 1)``, for which each update moves the model by
        ``1 / dcrNumSubfilters`` of the back-projected residual, compensating for the
        residual being added to every subfilter. With one subfilter the update is taken
        whole (infinite gain).
    useProgressiveGain : bool
        Let the gain grow from the base gain as the convergence history shows the
        iterations behaving as predicted. Default True.
    accelerateModel : float
        Factor by which the differences between subfilter images and their mean are
        amplified in the forward model during the iterations, to speed convergence; the
        output model carries the amplified differences. 1 disables. Iterative solver
        only. Default 3.
    useModelWeights : bool
        Taper the model to the plain coadd (split evenly) away from detected sources.
        Default True.
    modelWeightsWidth : float
        Width in pixels (Gaussian sigma) of the smoothing of the convergence-mask
        footprint that makes the model weights. Default 3.
    splitSubfilters : bool
        Model each subfilter as the average of two images shifted to its quarter points
        instead of one image shifted by its mean DCR. Default True.
    splitThreshold : float
        Minimum difference in pixels between the DCR of a subfilter's two edges for
        ``splitSubfilters`` to be used in a visit. Default 0.1 pixel.
    regularizeModelIterations : float
        Maximum relative change of the model allowed between iterations
        (`DcrModel.regularizeModelIter`); 0 disables, otherwise > 1. Default 2.
    regularizeModelFrequency : float
        Maximum relative change of the model allowed between subfilters
        (`DcrModel.regularizeModelFreq`); 0 disables, otherwise > 1. Default 4.
    regularizationWidth : int
        Minimum radius in pixels of a region included in the regularisation. Default 2.
    imageInterpOrder : int
        Spline order (0 to 5) of the DCR shifts during the iterations. Default 1.
    doAirmassWeight : bool
        Multiply each visit's weight by its airmass, favouring the visits that constrain
        the chromatic part of the model. Default False, as in the Rubin pipelines (on the
        demo fields the templates' residuals differ by under 4 % either way).
    convergenceMaskPlanes : tuple of str
        Mask planes marking the sources over which convergence is measured and around
        which the model weights are made. Default ``("DETECTED",)``.
    badMaskPlanes : tuple of str
        Mask planes whose pixels are excluded from the coadd and the fit. Default
        ``("BAD", "SAT", "NO_DATA", "EDGE", "CR")``.
    subregionSize : tuple of int
        ``(width, height)`` in pixels of the subregions solved one at a time; memory grows
        with this area times the number of visits. Default ``(512, 512)``.
    subregionBuffer : int or None
        Extra border in pixels solved around each subregion. The iterative solver discards
        it; the direct solver blends neighbouring subregions over its inner half
        (`dcrmodel.assemble.tiling.featherWidth`) and discards the rest.
        None: chosen from the largest DCR shift of any visit
        (`dcrmodel.assemble.tiling.automaticBuffer`): for the iterative solver twice the shift,
        rounded up, plus 2 pixels (the reference uses once the shift plus 1 pixel; the
        wider default keeps the joins between subregions free of seams), for the direct
        solver 8 times the shift and at least 32 pixels.
    detectionThreshold : float
        Signal-to-noise ratio above which pixels of a coadd computed from the inputs are
        marked DETECTED (a coadd given to `DcrAssembleCoadd.run` keeps its own mask).
        Default 5.
    solver : str
        ``"direct"`` (the per-frequency least-squares solver of `dcrmodel.assemble.direct`, with
        each visit's PSF in its forward model; the default) or ``"iterative"`` (the
        forward-modelling algorithm of DMTN-037, which assumes every visit has the same
        PSF: it warns when the inputs' seeing range exceeds 40 %).
    engine : str
        Shift engine of the iterative solver's forward model: ``"spline"`` (reference) or
        ``"fourier"``. Default ``"spline"``. The direct solver always works in Fourier
        space.
    transferMode : str
        Direct solver only: how a subfilter's light enters a visit
        (`dcrmodel.fourier.subfilterTransfer`). ``"smear"`` (default): spread uniformly
        between the DCR shifts of the subfilter's two wavelength edges, exact for a flat
        spectrum across the subfilter; ``"split"``: the reference's average of two copies at
        the quarter points; ``"mean"``: moved by the mean shift.
    usePsf : bool
        Direct solver only: put each visit's PSF in the forward model (subfilter ``k`` of
        visit ``j`` is seen through the visit's PSF at the subfilter's central wavelength
        and the model holds the sky at ``modelPsf``). Inputs without a PSF get one estimated
        from their stars (`dcrmodel.psf.estimatePsf`). False: every visit is taken to have
        the model's PSF (the reference assumption). Default True.
    modelPsf : str or float
        PSF of the model's subfilter images (`dcrmodel.psf.modelPsfFor`). Default
        ``"sharpestInput"``: the sharpest input PSF itself, at the subfilter where it is
        sharpest, the sharpest model the inputs support at every frequency. ``"sharpest"``:
        a Gaussian of that FWHM, which Kolmogorov or Moffat inputs (whose transfer functions
        fall more slowly) do not support at the highest frequencies, so the sharpest visits'
        templates are damped there (on simulated 0.6-1.2 arcsec Kolmogorov seeing: 2-7 false
        detections per held-out visit against 1-3). ``"median"``, or a FWHM in pixels (a
        Gaussian).
    psfDamping : float
        Damping of the PSF matching where a visit is sharper than the model, relative to
        the largest value of the model PSF's transfer function
        (`dcrmodel.psf.psfMatchingTransfer`). Default 3e-3: on six simulated fields with
        constant 0.7 arcsec and variable 0.6-1.2 arcsec seeing (18 held-out visits,
        ``benchmarks/bench_damping.py``), against 1e-3 it lowered the templates' residual
        at every visit (by 1-24 %) and the false detections under variable seeing from 69
        to 19 (Moffat and Gaussian PSFs, 12 more visits: lower or equal at each); 1e-2 was
        worse than 1e-3 at 11 visits, 5e-3 close to 3e-3.
    effectiveWavelength : float or None
        Effective wavelength of the band in nm, overriding the inputs' filter. Give it
        together with ``bandwidth``.
    bandwidth : float or None
        Width of the band in nm, overriding the inputs' filter.
    warpingKernel : str
        Kernel with which visits on another pixel grid than the model's are warped onto it
        (`dcrmodel.warp.WARPING_KERNELS`; `dcrmodel.assemble.placement`). Default
        ``"lanczos3"``, the Rubin pipelines' kernel.
    minCoverage : int or None
        Least number of visits a model pixel must rest on: pixels where fewer visits'
        good pixels cover every subfilter (the smallest of the subfilters' ``nImage``)
        are flagged ``DCR_LOW_COVERAGE`` (`LOW_COVERAGE_PLANE`) in the model's mask.
        None (the default): ``dcrNumSubfilters``. With fewer visits than subfilters the
        N subfilter images are not determined at any spatial frequency (each visit gives
        one equation per frequency): there the direct solver's templates are about as
        good as a plain coadd of the visits that saw the pixels (0.6 to 2.1 times its
        residual, ``benchmarks/bench_coverage.py``), while from N visits on they are
        already markedly better (0.1 to 0.6 times). Raise it for a stricter flag (the
        quality targets of survey geometry are stated over pixels seen by at least 6
        visits).
    threads : int or None
        Threads of the direct solver's FFTs and per-frequency work (an integer >= 1).
        None (the default): every core this process may run on
        (`dcrmodel.parallel.availableCores`), or the default a caller set with
        `dcrmodel.parallel.threadLimit`. The model is the same, bit for bit, whatever the
        number of threads; the memory grows by a few arrays of one visit's transform per
        thread. On a local Dask cluster (``workers``) the default divides the cores among
        the workers.

    Examples
    --------
    >>> config = DcrAssembleConfig(dcrNumSubfilters=4)
    >>> config.resolveMaxNumIter()
    12
    >>> config.withOverrides(baseGain=0.5).baseGain
    0.5
    """

    dcrNumSubfilters: int | str = AUTO_SUBFILTERS
    minNumIter: int | None = None
    maxNumIter: int | None = None
    convergenceThreshold: float = 0.001
    useConvergence: bool = True
    baseGain: float | None = None
    useProgressiveGain: bool = True
    accelerateModel: float = 3.0
    useModelWeights: bool = True
    modelWeightsWidth: float = 3.0
    splitSubfilters: bool = True
    splitThreshold: float = 0.1
    regularizeModelIterations: float = 2.0
    regularizeModelFrequency: float = 4.0
    regularizationWidth: int = 2
    imageInterpOrder: int = 1
    doAirmassWeight: bool = False
    convergenceMaskPlanes: tuple[str, ...] = ("DETECTED",)
    badMaskPlanes: tuple[str, ...] = ("BAD", "SAT", "NO_DATA", "EDGE", "CR")
    subregionSize: tuple[int, int] = (512, 512)
    subregionBuffer: int | None = None
    detectionThreshold: float = 5.0
    solver: str = "direct"
    engine: str = "spline"
    transferMode: str = "smear"
    usePsf: bool = True
    modelPsf: str | float = "sharpestInput"
    psfDamping: float = 3e-3
    effectiveWavelength: float | None = None
    bandwidth: float | None = None
    warpingKernel: str = DEFAULT_WARPING_KERNEL
    minCoverage: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        # Normalise sequences to tuples so the object stays hashable and comparable.
        for name in (*_PLANE_FIELDS, "subregionSize"):
            value = getattr(self, name)
            if isinstance(value, str):
                if name == "subregionSize":
                    raise DcrConfigError(
                        "subregionSize must be two integers (width, height) in pixels",
                        subregionSize=value,
                    )
                value = (value,)
            if isinstance(value, Iterable):
                object.__setattr__(self, name, tuple(value))
        if _isInt(self.subregionSize):
            object.__setattr__(self, "subregionSize", (self.subregionSize, self.subregionSize))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self, mask: Any = None) -> None:
        """Check every value; raise `DcrConfigError` naming the first bad one.

        Parameters
        ----------
        mask : `dcrmodel.image.Mask`, optional
            When given, the mask plane names of ``convergenceMaskPlanes`` must be planes of
            this mask. (Bad mask planes that a mask lacks are skipped, as
            `dcrmodel.image.StatisticsControl` does, so they are not checked.)

        Raises
        ------
        DcrConfigError
            If a value has the wrong type or is out of range.
        """
        self._checkIterations()
        self._checkUpdates()
        self._checkPlanesAndSubregions()
        self._checkChoices()
        self._checkBand()
        if mask is not None:
            self._checkMaskPlanes(mask)

    def _checkIterations(self) -> None:
        """Check the number of subfilters and of iterations."""
        n = self.dcrNumSubfilters
        if n != AUTO_SUBFILTERS and (not _isInt(n) or n < 1):
            raise DcrConfigError(
                f'dcrNumSubfilters must be an integer >= 1 or "{AUTO_SUBFILTERS}"',
                dcrNumSubfilters=n,
            )
        for name in ("minNumIter", "maxNumIter"):
            value = getattr(self, name)
            if value is not None and (not _isInt(value) or value < 1):
                raise DcrConfigError(
                    f"{name} must be an integer >= 1, or None for the default", **{name: value}
                )
        if self.resolveMinNumIter() > self.resolveMaxNumIter():
            raise DcrConfigError(
                "minNumIter must not exceed maxNumIter; lower the first or raise the second",
                minNumIter=self.resolveMinNumIter(),
                maxNumIter=self.resolveMaxNumIter(),
            )

    def _checkUpdates(self) -> None:
        """Check the switches and the settings of the model updates."""
        self._checkReal("convergenceThreshold", minimum=0.0)
        for name in (
            "useConvergence",
            "useProgressiveGain",
            "useModelWeights",
            "splitSubfilters",
            "doAirmassWeight",
            "usePsf",
        ):
            if not isinstance(getattr(self, name), bool):
                raise DcrConfigError(f"{name} must be true or false", **{name: getattr(self, name)})
        if self.baseGain is not None:
            if not _isReal(self.baseGain) or not math.isfinite(self.baseGain) or self.baseGain <= 0:
                raise DcrConfigError(
                    "baseGain must be a finite number > 0, or None for 1/(dcrNumSubfilters - 1)",
                    baseGain=self.baseGain,
                )
        self._checkReal("accelerateModel", minimum=1.0)
        self._checkReal("modelWeightsWidth", minimum=0.0)
        self._checkReal("splitThreshold", minimum=0.0)
        for name in ("regularizeModelIterations", "regularizeModelFrequency"):
            self._checkReal(name, minimum=0.0)
            value = getattr(self, name)
            if 0 < value <= 1:
                raise DcrConfigError(
                    f"{name} is a maximum relative change: use 0 to disable it or a value > 1",
                    **{name: value},
                )
        if not _isInt(self.regularizationWidth) or self.regularizationWidth < 0:
            raise DcrConfigError(
                "regularizationWidth must be an integer >= 0 (pixels)",
                regularizationWidth=self.regularizationWidth,
            )
        if not _isInt(self.imageInterpOrder) or not 0 <= self.imageInterpOrder <= 5:
            raise DcrConfigError(
                "imageInterpOrder must be a spline order from 0 to 5",
                imageInterpOrder=self.imageInterpOrder,
            )

    def _checkPlanesAndSubregions(self) -> None:
        """Check the mask plane names, the subregions and the detection threshold."""
        for name in _PLANE_FIELDS:
            planes = getattr(self, name)
            if not isinstance(planes, tuple) or not all(
                isinstance(p, str) and p for p in planes
            ):
                raise DcrConfigError(f"{name} must be a list of mask plane names", **{name: planes})
        if not self.convergenceMaskPlanes:
            raise DcrConfigError(
                "convergenceMaskPlanes must name at least one mask plane (usually DETECTED)",
                convergenceMaskPlanes=self.convergenceMaskPlanes,
            )
        size = self.subregionSize
        if not (
            isinstance(size, tuple) and len(size) == 2 and all(_isInt(s) and s >= 1 for s in size)
        ):
            raise DcrConfigError(
                "subregionSize must be two integers >= 1 (width, height) in pixels",
                subregionSize=size,
            )
        if self.subregionBuffer is not None and (
            not _isInt(self.subregionBuffer) or self.subregionBuffer < 0
        ):
            raise DcrConfigError(
                "subregionBuffer must be an integer >= 0 (pixels), or None for automatic",
                subregionBuffer=self.subregionBuffer,
            )
        self._checkReal("detectionThreshold", minimum=0.0, strict=True)

    def _checkChoices(self) -> None:
        """Check the solver, engine, transfer mode, model PSF, warping kernel, coverage, threads."""
        if self.solver not in SOLVERS:
            raise DcrConfigError(
                f"unknown solver; choose one of {', '.join(SOLVERS)}", solver=self.solver
            )
        if self.engine not in ENGINES:
            raise DcrConfigError(
                f"unknown engine; choose one of {', '.join(ENGINES)}", engine=self.engine
            )
        if self.transferMode not in TRANSFER_MODES:
            raise DcrConfigError(
                f"unknown transferMode; choose one of {', '.join(TRANSFER_MODES)}",
                transferMode=self.transferMode,
            )
        policy = self.modelPsf
        if isinstance(policy, str):
            if policy not in MODEL_PSF_POLICIES:
                raise DcrConfigError(
                    f"unknown modelPsf policy; choose one of {', '.join(MODEL_PSF_POLICIES)} "
                    "or give a FWHM in pixels",
                    modelPsf=policy,
                )
        elif not _isReal(policy) or not math.isfinite(policy) or policy <= 0:
            raise DcrConfigError(
                "modelPsf must be a policy name or a FWHM in pixels (a finite number > 0)",
                modelPsf=policy,
            )
        self._checkReal("psfDamping", minimum=0.0, strict=True)
        if self.warpingKernel not in WARPING_KERNELS:
            raise DcrConfigError(
                f"unknown warpingKernel; choose one of {', '.join(WARPING_KERNELS)}",
                warpingKernel=self.warpingKernel,
            )
        if self.minCoverage is not None and (not _isInt(self.minCoverage)
                                             or self.minCoverage < 0):
            raise DcrConfigError(
                "minCoverage must be an integer >= 0 (visits), or None for dcrNumSubfilters",
                minCoverage=self.minCoverage,
            )
        if self.threads is not None and (not _isInt(self.threads) or self.threads < 1):
            raise DcrConfigError(
                "threads must be an integer >= 1, or None for every core",
                threads=self.threads,
            )

    def _checkBand(self) -> None:
        """Check the band override (effective wavelength and bandwidth, nm)."""
        if (self.effectiveWavelength is None) != (self.bandwidth is None):
            raise DcrConfigError(
                "give effectiveWavelength and bandwidth together (nm), or neither to use the "
                "inputs' filter",
                effectiveWavelength=self.effectiveWavelength,
                bandwidth=self.bandwidth,
            )
        if self.effectiveWavelength is not None:
            self._checkReal("effectiveWavelength", minimum=0.0, strict=True)
            self._checkReal("bandwidth", minimum=0.0, strict=True)
            if self.bandwidth >= 2 * self.effectiveWavelength:
                raise DcrConfigError(
                    "bandwidth must be smaller than twice the effective wavelength (nm)",
                    effectiveWavelength=self.effectiveWavelength,
                    bandwidth=self.bandwidth,
                )

    def _checkMaskPlanes(self, mask: Any) -> None:
        """Check that ``mask`` has every plane of ``convergenceMaskPlanes``."""
        known = mask.planes
        unknown = [p for p in self.convergenceMaskPlanes if p not in known]
        if unknown:
            raise DcrConfigError(
                f"convergenceMaskPlanes names mask plane(s) {', '.join(unknown)} that the "
                f"mask does not have; known planes: {', '.join(sorted(known))}",
                convergenceMaskPlanes=self.convergenceMaskPlanes,
            )

    def _checkReal(self, name: str, minimum: float, strict: bool = False) -> None:
        value = getattr(self, name)
        bad = not _isReal(value) or not math.isfinite(value)
        if not bad:
            bad = value <= minimum if strict else value < minimum
        if bad:
            relation = ">" if strict else ">="
            raise DcrConfigError(
                f"{name} must be a finite number {relation} {minimum:g}", **{name: value}
            )

    # ------------------------------------------------------------ resolved values
    @property
    def autoSubfilters(self) -> bool:
        """Whether the number of subfilters is chosen from the data (``"auto"``)."""
        return self.dcrNumSubfilters == AUTO_SUBFILTERS

    def leastNumSubfilters(self) -> int:
        """Return the number of subfilters, or the least "auto" chooses (3) for ``"auto"``.

        The settings that default to a multiple of ``dcrNumSubfilters`` (iterations,
        coverage, gain) use this number until a run has chosen (`withSubfilters`).
        """
        return MIN_AUTO_SUBFILTERS if self.autoSubfilters else self.dcrNumSubfilters

    def withSubfilters(self, number: int) -> DcrAssembleConfig:
        """Return the configuration of a run that uses ``number`` subfilters.

        The same settings with ``dcrNumSubfilters=number``. For a configuration with
        ``"auto"`` whose ``maxNumIter`` is set below the chosen number while ``minNumIter``
        is None (the default minimum being the number of subfilters), ``minNumIter``
        becomes ``maxNumIter``.

        Parameters
        ----------
        number : int
            The number of subfilters (>= 1).
        """
        overrides: dict[str, Any] = {"dcrNumSubfilters": number}
        if (self.autoSubfilters and self.minNumIter is None and self.maxNumIter is not None
                and _isInt(number) and number > self.maxNumIter):
            overrides["minNumIter"] = self.maxNumIter
        return self.withOverrides(**overrides)

    def resolveMinNumIter(self) -> int:
        """Return the minimum number of iterations (``dcrNumSubfilters`` when None)."""
        return self.leastNumSubfilters() if self.minNumIter is None else self.minNumIter

    def resolveMaxNumIter(self) -> int:
        """Return the maximum number of iterations (``3 * dcrNumSubfilters`` when None)."""
        if self.maxNumIter is None:
            return max(3 * self.leastNumSubfilters(), self.resolveMinNumIter())
        return self.maxNumIter

    def resolveMinCoverage(self) -> int:
        """Return the least number of visits of a well-covered pixel (``minCoverage``).

        ``dcrNumSubfilters`` when ``minCoverage`` is None.
        """
        return self.leastNumSubfilters() if self.minCoverage is None else self.minCoverage

    def resolveThreads(self) -> int:
        """Return the number of threads: ``threads``, or every core when None.

        None gives the default of `dcrmodel.parallel.resolveThreads`: the caller's
        `dcrmodel.parallel.threadLimit`, else every core this process may run on.
        """
        try:
            return resolveThreads(self.threads)
        except DcrError as exc:  # validated on construction; kept for subclasses
            raise DcrConfigError(exc.message, threads=self.threads) from None

    def resolveBaseGain(self) -> float:
        """Return the base gain: ``baseGain``, or ``1/(dcrNumSubfilters - 1)`` when None.

        With a single subfilter and no ``baseGain`` this is ``math.inf``: the new solution
        replaces the previous one.
        """
        if self.baseGain is not None:
            return float(self.baseGain)
        if self.leastNumSubfilters() == 1:
            return math.inf
        return 1.0 / (self.leastNumSubfilters() - 1)

    # --------------------------------------------------------- construction/IO
    @classmethod
    def fieldNames(cls) -> tuple[str, ...]:
        """Return the names of every setting."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def fromDict(cls, values: dict[str, Any]) -> DcrAssembleConfig:
        """Make a configuration from a mapping of setting names to values.

        Parameters
        ----------
        values : dict
            Settings to change from the defaults. Lists are accepted for the tuple
            settings.

        Raises
        ------
        DcrConfigError
            If a name is not a setting, or a value is out of range.
        """
        if not isinstance(values, dict):
            raise DcrConfigError(
                "configuration values must be a mapping of setting names to values",
                values=values,
            )
        known = cls.fieldNames()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise DcrConfigError(
                f"unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(known)}"
            )
        try:
            return cls(**values)
        except TypeError as exc:  # e.g. unhashable values in comparisons
            raise DcrConfigError(f"bad configuration value: {exc}") from exc

    @classmethod
    def fromToml(cls, path: str | os.PathLike) -> DcrAssembleConfig:
        """Load a configuration from a TOML file.

        The settings are top-level keys of the file, or keys of an ``[assemble]`` table.
        Settings absent from the file keep their defaults. Every key is used or refused:
        next to an ``[assemble]`` table, other tables (for other tools) are not read, so a
        key outside every table, a setting's name in another table, or a table named like
        a misspelt ``[assemble]`` is refused. The file must be UTF-8 (a byte-order mark is
        skipped).

        Parameters
        ----------
        path : str or os.PathLike
            The TOML file.

        Raises
        ------
        DcrConfigError
            If the file cannot be read, is not UTF-8 or not TOML, names an unknown
            setting, places a key where it would not be read, or holds an out-of-range
            value.

        Examples
        --------
        A file holding::

            dcrNumSubfilters = 4
            badMaskPlanes = ["BAD", "SAT"]

        gives ``DcrAssembleConfig(dcrNumSubfilters=4, badMaskPlanes=("BAD", "SAT"))``.
        """
        data = readTomlFile(path, "configuration file")
        try:
            return cls.fromDict(_tomlSettings(data, cls.fieldNames()))
        except DcrConfigError as exc:
            raise DcrConfigError(f"{exc.message} (in {os.fspath(path)})", **exc.values) from None

    def withOverrides(self, **overrides: Any) -> DcrAssembleConfig:
        """Return a copy with some settings changed (checked like a new configuration).

        Parameters
        ----------
        **overrides
            Setting names and their new values.

        Raises
        ------
        DcrConfigError
            If a name is not a setting, or a value is out of range.
        """
        values = self.toDict(jsonSafe=False)
        unknown = sorted(set(overrides) - set(values))
        if unknown:
            raise DcrConfigError(
                f"unknown setting(s) {', '.join(unknown)}; known settings: "
                f"{', '.join(self.fieldNames())}"
            )
        values.update(overrides)
        return self.fromDict(values)

    def toDict(self, jsonSafe: bool = True) -> dict[str, Any]:
        """Return the settings as a dict.

        Parameters
        ----------
        jsonSafe : bool, optional
            Turn tuples into lists so the result can be written as JSON or TOML.
        """
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if jsonSafe:
            values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        return values


def _tomlSettings(data: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """Return the settings of a configuration file's tables: every key used or refused.

    The settings are the top-level keys, or those of the ``[assemble]`` table; next to
    that table a key outside every table, a setting's name in another table (TOML puts a
    key under the table header above it) or a table named like a misspelt ``assemble``
    would be silently ignored, and is refused.
    """
    if not isinstance(data.get("assemble"), dict):
        return data  # top-level settings: fromDict refuses unknown ones
    loose = [key for key, value in data.items() if key != "assemble"
             and not isinstance(value, dict)]
    if loose:
        raise DcrConfigError(
            f"{', '.join(loose)}: key(s) outside the [assemble] table, where they would be "
            "ignored; move them below [assemble] (a key belongs to the table header above "
            "it), or give every setting at the top level without [assemble]",
            keys=loose,
        )
    for table, value in data.items():
        if table == "assemble":
            continue
        misplaced = sorted(_settingKeys(value, known, table))
        if misplaced:
            raise DcrConfigError(
                f"{', '.join(misplaced)}: setting(s) in the table [{table}], where they "
                "would be ignored; settings are read from [assemble] only, move them there",
                keys=misplaced,
            )
        if difflib.get_close_matches(table, ["assemble"], n=1, cutoff=0.75):
            raise DcrConfigError(
                f"the table [{table}] looks like a misspelt [assemble], and would be ignored; "
                "put its settings in [assemble]",
                table=table,
            )
    return data["assemble"]


def _settingKeys(table: dict[str, Any], known: tuple[str, ...], where: str) -> list[str]:
    """Return the dotted names of the keys of ``table`` (and its sub-tables) that are settings."""
    found = []
    for key, value in table.items():
        if key in known:
            found.append(f"{where}.{key}")
        if isinstance(value, dict):
            found += _settingKeys(value, known, f"{where}.{key}")
    return found
