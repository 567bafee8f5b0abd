"""Reading and checking the visit inputs of an assembly, and the plain coadd made from them.

A visit is an in-memory exposure or an exposure file read one region at a time
(`VisitInput`), as it is or warped onto the model's grid (`VisitInput.warpOnto`). Before any
work every visit is checked: its metadata (`checkMetadata`), its band (`bandOf`), its place
on the model's pixel grid (`dcrmodel.assemble.placement`), its DCR (`measureDcr`), its
pixels (`checkFinite`, `usableInputs`) and its PSF (`estimateMissingPsf` for a visit without
one). The plain coadd the model starts from is a given one
(`loadCoadd`, `prepareGivenCoadd`) or the inverse-variance weighted mean of the visits'
good pixels (`computedCoadd`), whose sources are detected (`detectSources`). What the
preparation found is a `PreparedRun`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.wcs import WCS
from scipy import ndimage

from ..errors import (
    DcrConfigError,
    DcrError,
    DcrMetadataError,
    DcrPsfWarning,
    DcrTypeError,
    DcrValueError,
    DcrWarning,
)
from ..fits import ExposureFile, readExposure
from ..image import (
    Box,
    Exposure,
    Filter,
    Image,
    Mask,
    MaskedImage,
    Psf,
    StatisticsControl,
    checkSameBand,
    checkUsablePixels,
    pixelDigest,
)
from ..physics import calculateDcr, zenithDirections, zenithDirectionsOfVisits
from ..psf import estimatePsf
from ..warp import boxesOverlap
from .config import DcrAssembleConfig

__all__ = [
    "RunScratch",
    "VisitInput",
    "PreparedRun",
    "openInputs",
    "refuseDuplicateVisits",
    "refuseDuplicateFiles",
    "loadCoadd",
    "checkBadMaskPlanes",
    "checkMetadata",
    "bandOf",
    "measureZeniths",
    "measureDcr",
    "goodPixels",
    "checkFinite",
    "usableInputs",
    "estimateMissingPsf",
    "computedCoadd",
    "prepareGivenCoadd",
    "detectSources",
]

_log = logging.getLogger(__name__)


class RunScratch(dict):
    """Values computed once per run and reused by its subregions; pickles empty.

    Subregion tasks sent to other processes carry their inputs; what one process computed
    for its subregions is not worth shipping (and may be large), so it is left behind.
    """

    def __reduce__(self) -> tuple[type, tuple]:
        return (RunScratch, ())


class VisitInput:
    """One visit: an in-memory exposure or a file read one region at a time.

    Parameters
    ----------
    source : `dcrmodel.image.Exposure`, path or region reader
        The exposure, or the path of its file (Rubin layout; its headers are read now), or
        an object read one region at a time like `dcrmodel.fits.ExposureFile` (``bbox``,
        ``info`` and ``read(bbox)``, and optionally ``name``).
    index : int
        The visit's position among the inputs (for its name).

    Notes
    -----
    The preparation of a run fills in ``weight`` (1/counts^2), ``goodPixels``, ``dcr`` (the
    subfilters' edge shifts at the model's centre, pixels), ``psfEstimate`` and the zenith
    directions (``zenith``); ``scratch`` keeps what the solvers computed for the visit. A
    visit on another pixel grid than the model's is set up by `warpOnto`: ``warp`` then
    says how it is warped (None for a visit on the grid), ``bbox`` is its footprint on the
    grid, ``wcs`` the grid's and ``psf`` its PSF on the grid.

    Raises
    ------
    DcrTypeError
        If ``source`` is neither an exposure nor a path.
    DcrValueError
        If the file does not exist.
    """

    def __init__(self, source: Any, index: int) -> None:
        self.index = index
        if isinstance(source, Exposure):
            self.exposure: Exposure | None = source
            self.path: Path | None = None
            self.name = f"exposure {index}"
            if source.visitInfo is not None and source.visitInfo.id is not None:
                self.name = f"exposure {index} (visit {source.visitInfo.id})"
            info = source
            self.bbox = source.bbox
        elif isinstance(source, str | os.PathLike):
            self.exposure = None
            self.path = Path(source)
            self.name = str(self.path)
            self.file = _openFile(self.path)
            self.bbox, info = self.file.bbox, self.file.info
        elif _isRegionReader(source):
            # An object read one region at a time like an exposure file (an
            # `dcrmodel.fits.ExposureFile`, or a data butler handle's reader).
            self.exposure = None
            self.path = None
            self.name = str(getattr(source, "name", f"exposure {index}"))
            self.file = source
            self.bbox, info = source.bbox, source.info
        else:
            raise DcrTypeError(
                "inputs must be dcrmodel Exposures or paths of exposure files",
                index=index,
                type=type(source).__name__,
            )
        self.planes = info.mask.planes
        self.wcs = info.wcs
        self.visitInfo = info.visitInfo
        self.filter = info.filter
        self.psf = info.psf
        self.photoCalib = info.photoCalib
        self.weight = 0.0
        self.goodPixels = 0
        self.dcr: list = []
        self.psfEstimate: dict[str, Any] | None = None
        self.zenith: dict[Box, tuple[float, float]] = {}
        self.scratch = RunScratch()
        self.warp: Any = None

    def warpOnto(self, warp: Any, footprint: Box, psf: Psf | None) -> None:
        """Make this visit one that is warped onto the model's grid as it is read.

        Parameters
        ----------
        warp : `dcrmodel.assemble.placement.VisitWarp`
            How it is warped.
        footprint : `dcrmodel.image.Box`
            The part of the model's box its pixels reach.
        psf : `dcrmodel.image.Psf` or None
            Its PSF on the grid.
        """
        self.warp = warp
        self.bbox = footprint
        self.wcs = warp.gridWcs
        self.psf = psf

    def zenithAt(self, bbox: Box, regions: Callable[[], list[Box]]) -> tuple[float, float]:
        """Return the zenith direction (pixels per arcsec) at the centre of ``bbox``.

        On the first call the directions at the centres of all ``regions()`` (the plan's
        subregions with their buffer) and of ``bbox`` are measured in one vectorised
        transform (`dcrmodel.physics.dcr.zenithDirections`) and kept, so that the subregions of
        a patch share one astropy frame transform per visit instead of one each.
        """
        zenith = self.__dict__.setdefault("zenith", {})
        if bbox not in zenith:
            boxes = list(dict.fromkeys([bbox, *regions()]))
            zenith.update(zip(boxes, zenithDirections(self.visitInfo, self.wcs, boxes),
                              strict=True))
        return zenith[bbox]

    def read(self, bbox: Box) -> Exposure | None:
        """Return the cutout of this visit inside ``bbox`` (None if they do not overlap).

        A warped visit reads only the part of its pixels that the warp onto ``bbox`` needs
        (`readSource`) and returns it warped onto the model's grid (`warped`), with
        ``NO_DATA`` outside its footprint.
        """
        if self.warp is None:
            box = self.bbox.intersection(bbox)
            if box.isEmpty():
                return None
            if self.exposure is not None:
                return self.exposure[box]
            return self.file.read(box)
        source = self.readSource(bbox)
        return None if source is None else self.warped(*source)

    def readSource(self, bbox: Box) -> tuple[Box, Exposure] | None:
        """Return, for a warped visit, the part of ``bbox`` it may cover and its own pixels there.

        Returns
        -------
        box : `dcrmodel.image.Box`
            ``bbox`` clipped to the visit's footprint on the grid.
        cutout : `dcrmodel.image.Exposure`
            The cutout of the visit's own pixels that a warp onto ``box`` reads.

        None when the visit has no pixel there.
        """
        box = self.bbox.intersection(bbox)
        if box.isEmpty():
            return None
        source = self.warp.sourceBox(box)
        if source is None:
            return None
        return box, self.readOwn(source)

    def readOwn(self, box: Box) -> Exposure:
        """Return the visit's own pixels in ``box`` (parent pixels of its own frame)."""
        return self.exposure[box] if self.exposure is not None else self.file.read(box)

    def warped(self, box: Box, cutout: Exposure) -> Exposure | None:
        """Return a cutout of a warped visit's own pixels (`readSource`) warped onto ``box``."""
        maskedImage = self.warp.warp(cutout, box)
        if maskedImage is None:
            return None
        return Exposure(
            maskedImage,
            wcs=self.wcs,
            psf=self.psf,
            visitInfo=self.visitInfo,
            filter=self.filter,
            photoCalib=self.photoCalib,
        )

    def cutTo(self, bbox: Box) -> VisitInput:
        """Return a copy of an in-memory visit holding only what reading ``bbox`` needs.

        Files are referenced by path and read where the copy is used; this visit itself is
        returned for them.
        """
        if self.exposure is None:
            return self
        inp = copy.copy(self)
        inp.bbox = self.bbox.intersection(bbox)
        if inp.bbox.isEmpty():
            inp.exposure = None
        elif self.warp is None:
            inp.exposure = self.exposure[inp.bbox]
        else:
            source = self.warp.sourceBox(inp.bbox)
            if source is None:
                inp.bbox = Box(inp.bbox.minX, inp.bbox.minY, 0, 0)
                inp.exposure = None
            else:
                inp.exposure = self.exposure[source]
                inp.warp = dataclasses.replace(self.warp, sourceBBox=source)
        return inp


def _isRegionReader(source: Any) -> bool:
    """Whether ``source`` reads like an exposure file: ``bbox``, ``info`` and ``read(bbox)``."""
    return (
        callable(getattr(source, "read", None))
        and isinstance(getattr(source, "bbox", None), Box)
        and isinstance(getattr(source, "info", None), Exposure)
    )


def measureZeniths(inputs: list[VisitInput], boxes: list[Box]) -> None:
    """Keep every input's zenith direction at the centres of ``boxes``, measured at once.

    One astropy transform for all visits (`dcrmodel.physics.dcr.zenithDirectionsOfVisits`). If it
    fails (bad metadata), nothing is kept: the per-visit measurements that follow raise
    the error, naming the visit.
    """
    missing = [inp for inp in inputs if any(box not in inp.zenith for box in boxes)]
    if not missing:
        return
    try:
        directions = zenithDirectionsOfVisits(
            [inp.visitInfo for inp in missing], [inp.wcs for inp in missing],
            [boxes] * len(missing),
        )
    except DcrError:
        return
    for inp, values in zip(missing, directions, strict=True):
        inp.zenith.update(zip(boxes, values, strict=True))


def _openFile(path: Path) -> Any:
    """Return the `dcrmodel.fits.exposure.ExposureFile` of an input (headers read once)."""
    if not path.is_file():
        raise DcrValueError("input exposure file does not exist", path=str(path))
    return ExposureFile(path)


def checkMetadata(inp: VisitInput, needAirmass: bool) -> None:
    """Raise DcrMetadataError naming the visit and every piece of metadata DCR needs."""
    missing = []
    if inp.wcs is None:
        missing.append("WCS")
    vi = inp.visitInfo
    if vi is None:
        missing.append("visit info (VisitInfo: date, observatory, boresight)")
    else:
        for attr, label in (
            ("date", "date of observation (visitInfo.date)"),
            ("observatory", "observatory (visitInfo.observatory)"),
            ("boresightAzAlt", "boresight altitude (visitInfo.boresightAzAlt)"),
            ("boresightRaDec", "boresight RA/Dec (visitInfo.boresightRaDec)"),
        ):
            if getattr(vi, attr, None) is None:
                missing.append(label)
        airmass = getattr(vi, "boresightAirmass", None)
        if needAirmass and (airmass is None or not math.isfinite(airmass)):
            missing.append(
                "boresight airmass (visitInfo.boresightAirmass), which doAirmassWeight needs"
            )
    if missing:
        raise DcrMetadataError(
            f"{inp.name} lacks the metadata DCR needs: {'; '.join(missing)}. Give the "
            "exposure a WCS and a VisitInfo (VisitInfo.fromAstropy builds one), or write the "
            "visit keys of the Rubin layout in the file's primary header",
            visit=inp.name,
        )


def bandOf(config: DcrAssembleConfig, inputs: list[VisitInput], coadd: Exposure | None) -> Filter:
    """Return the band: the configuration's override, else the coadd's or inputs' filter.

    Visits of several bands, or a coadd of another band than the visits', are refused
    (`dcrmodel.image.checkSameBand`).
    """
    filters = [inp.filter for inp in inputs if inp.filter is not None]
    # Physical filter names such as 'g_6' name the band before the underscore.
    names = sorted({f.bandName.split("_")[0] for f in filters})
    if len(names) > 1:
        raise DcrValueError(
            f"the inputs are in different bands ({', '.join(names)}); a DCR model is built "
            "from exposures of one band",
            bands=names,
        )
    if coadd is not None and names:
        checkSameBand(filters[0], coadd.filter, "the visits", "the coadd",
                      "give the plain coadd of the visits' band")
    if config.effectiveWavelength is not None:
        name = names[0] if names else (coadd.filter.bandName if coadd and coadd.filter else "")
        return Filter(name or "custom", config.effectiveWavelength, config.bandwidth)
    if coadd is not None and coadd.filter is not None:
        return coadd.filter
    if filters:
        return filters[0]
    raise DcrMetadataError(
        "no filter wavelengths: neither the inputs nor the coadd carry a filter; set "
        "effectiveWavelength and bandwidth (nm) in the configuration, or write FILTER "
        "(and FILT-EFF, FILT-BW) in the files' headers"
    )


def goodPixels(exposure: Exposure, badPlanes: StatisticsControl) -> np.ndarray:
    """Return the boolean map of usable pixels of ``exposure``."""
    bits = badPlanes.getAndMask(exposure.mask)
    return (exposure.mask.array & bits) == 0


def checkFinite(inp: VisitInput, exposure: Exposure, good: np.ndarray) -> None:
    """Raise DcrValueError if a good pixel of ``exposure`` is not finite or has no variance.

    The check every input exposure gets (`dcrmodel.image.checkUsablePixels`).
    """
    checkUsablePixels(exposure.image.array, exposure.variance.array, good, inp.name)


@dataclasses.dataclass
class PreparedRun:
    """What the preparation of a run found: its visits, band, box and plain coadd.

    Attributes
    ----------
    inputs : list of `VisitInput`
        The visits with usable pixels, with their weights and DCR.
    band : `dcrmodel.image.Filter`
        The band (effective wavelength and bandwidth, nm).
    bbox : `dcrmodel.image.Box`
        The model's box, parent pixels (in a `dcrmodel.assemble.plan.SubregionTask`: the
        solved box).
    wcs : `astropy.wcs.WCS`
        The WCS of the model's pixel grid.
    buffer : int
        The DCR buffer solved around each subregion, pixels.
    coadd : `dcrmodel.image.Exposure`
        The plain coadd, masked pixels filled and sources marked.
    coaddGiven : bool
        Whether the coadd was given (else computed from the visits).
    statsCtrl : `dcrmodel.image.StatisticsControl`
        The bad mask planes.
    leftOut : list of str
        The names of the visits without a usable pixel.
    psfAware : bool
        Whether the forward model holds each visit's PSF.
    modelPsf : `dcrmodel.image.Psf` or None
        The model's PSF (PSF-aware model only).
    psfSummary : dict
        The PSF part of the run summary.
    scratch : `RunScratch`
        Values computed once per run and reused by its subregions.
    gridSource : str
        Where the model's grid came from: ``"grid"``, ``"coadd"`` or ``"visits"``
        (`dcrmodel.assemble.placement.modelGrid`).
    skipped : list of str
        The names of the visits left out because they do not overlap the grid.
    coaddDeferred : bool
        Whether the subregions make the plain coadd from their own warps of the visits
        (`dcrmodel.assemble.plaincoadd`); ``coadd`` is then a stand-in until
        `DcrAssembleCoadd.finish` replaces it.
    """

    inputs: list[VisitInput]
    band: Filter
    bbox: Box
    wcs: WCS
    buffer: int
    coadd: Exposure
    coaddGiven: bool
    statsCtrl: StatisticsControl
    leftOut: list[str]
    psfAware: bool = False
    modelPsf: Psf | None = None
    psfSummary: dict[str, Any] = dataclasses.field(default_factory=dict)
    scratch: RunScratch = dataclasses.field(default_factory=lambda: RunScratch())
    gridSource: str = "visits"
    skipped: list[str] = dataclasses.field(default_factory=list)
    coaddDeferred: bool = False


# ------------------------------------------------------------------------------------------
# The checks of a run's inputs, in the order the run makes them
# ------------------------------------------------------------------------------------------
def openInputs(exposures: Any, numSubfilters: int) -> list[VisitInput]:
    """Return the visits of a run, each opened (files: headers read once).

    Parameters
    ----------
    exposures : `dcrmodel.image.Exposure`, path, or a sequence of them
        The visits.
    numSubfilters : int
        The number of subfilters, which is the least number of visits.

    Raises
    ------
    DcrTypeError
        For inputs that are neither exposures nor paths.
    DcrValueError
        For fewer visits than subfilters, or missing files.
    """
    if isinstance(exposures, Exposure | str | os.PathLike):
        exposures = [exposures]
    try:
        sources = list(exposures)
    except TypeError:
        raise DcrTypeError(
            "exposures must be a sequence of Exposures or paths",
            exposures=type(exposures).__name__,
        ) from None
    n = numSubfilters
    if len(sources) < n:
        raise DcrValueError(
            f"{len(sources)} visits cannot constrain {n} subfilters: give at least as "
            "many visits as subfilters (better several times more, at a range of "
            "airmasses on both sides of the meridian), or lower dcrNumSubfilters",
            nVisits=len(sources),
            dcrNumSubfilters=n,
        )
    inputs = [VisitInput(source, i) for i, source in enumerate(sources)]
    refuseDuplicateVisits(inputs)
    return inputs


def _sameFileKey(path: Path) -> tuple[int, int] | str:
    """One key for every name of one file (relative, through a link, a hard link)."""
    try:
        stat = path.stat()
    except OSError:
        return os.path.realpath(path)
    return (stat.st_dev, stat.st_ino)


def _contentKey(inp: VisitInput) -> tuple[Any, ...] | None:
    """Return the cheap part of a visit's identity: date, exposure time, box (None: no date)."""
    info = inp.visitInfo
    date = getattr(info, "date", None)
    if date is None:
        return None  # checkMetadata refuses it
    return (str(getattr(date, "isot", date)), getattr(info, "exposureTime", None), inp.bbox)


def _sameDate(first: VisitInput, second: VisitInput) -> bool:
    """Whether two visits were taken at one time (or either has no date)."""
    one = getattr(first.visitInfo, "date", None)
    other = getattr(second.visitInfo, "date", None)
    if one is None or other is None:
        return True
    return str(getattr(one, "isot", one)) == str(getattr(other, "isot", other))


def _sameSky(first: VisitInput, second: VisitInput) -> bool:
    """Whether two visits' boxes see a common part of the sky (without WCSs: one box)."""
    if first.wcs is None or second.wcs is None:
        return first.bbox == second.bbox
    try:
        return boxesOverlap(first.wcs, first.bbox, second.wcs, second.bbox)
    except (DcrError, ValueError, ArithmeticError):
        return first.bbox == second.bbox


def _digest(inp: VisitInput) -> str:
    if inp.exposure is not None:
        return pixelDigest(inp.exposure.image.array)
    return inp.file.imageDigest()


def refuseDuplicateVisits(inputs: list[VisitInput]) -> None:
    """Refuse a visit given twice, before any work: it would count as two visits.

    Two inputs are one visit when they are one file (under any name: relative, through a
    link) or one in-memory exposure, when they carry one visit id and date and see a
    common part of the sky (two processings of one visit; the detectors of one visit
    share its id but never the sky), or when they share
    their date, exposure time, box and sky and their IMAGE planes are identical (a copy of
    a file; only such pairs are read, and only their IMAGE planes).

    Parameters
    ----------
    inputs : list of `VisitInput`
        The opened visits.

    Raises
    ------
    DcrValueError
        Naming both inputs and how they are one visit.
    """
    seen: dict[Any, VisitInput] = {}
    byVisitId: dict[int, list[VisitInput]] = {}
    candidates: dict[tuple[Any, ...], list[VisitInput]] = {}
    for inp in inputs:
        if inp.path is not None:
            key: Any = ("file", _sameFileKey(inp.path))
            how = "are the same file"
        elif inp.exposure is not None:
            key, how = ("exposure", id(inp.exposure)), "are the same exposure object"
        else:  # a region reader (e.g. a butler handle's): the same reader object twice
            key, how = ("reader", id(inp.file)), "are the same region reader"
        if key in seen:
            _duplicate(seen[key], inp, how)
        seen[key] = inp
        visitId = getattr(inp.visitInfo, "id", None)
        if visitId is not None:
            # the detectors of one visit share its id, but never see the same sky
            for other in byVisitId.get(int(visitId), []):
                if _sameDate(other, inp) and _sameSky(other, inp):
                    _duplicate(other, inp, f"have the same visit id {visitId}, date and sky")
            byVisitId.setdefault(int(visitId), []).append(inp)
        contentKey = _contentKey(inp)
        if contentKey is not None:
            candidates.setdefault(contentKey, []).append(inp)
    for group in candidates.values():
        if len(group) < 2:
            continue
        digests: dict[str, list[VisitInput]] = {}
        for inp in group:
            same = digests.setdefault(_digest(inp), [])
            for other in same:
                if _sameSky(other, inp):
                    _duplicate(other, inp, "have identical pixels, date and exposure time on "
                               "the same sky")
            same.append(inp)


def refuseDuplicateFiles(paths: Sequence[str | os.PathLike]) -> None:
    """Refuse a visit file given twice among ``paths`` (`refuseDuplicateVisits`).

    Only the headers of every file are read, and the IMAGE planes of files that share a
    date, exposure time and box.

    Raises
    ------
    DcrValueError
        Naming both files.
    DcrFitsError
        If a file cannot be read.
    """
    refuseDuplicateVisits([VisitInput(path, i) for i, path in enumerate(paths)])


def _duplicate(first: VisitInput, second: VisitInput, how: str) -> None:
    raise DcrValueError(
        f"{first.name} and {second.name} {how}: one visit given twice would count as two "
        "independent visits; give each visit once",
        visits=[first.name, second.name],
    )


def loadCoadd(coadd: Any) -> Exposure:
    """Return a given coadd: an `dcrmodel.image.Exposure`, or read from its file."""
    if isinstance(coadd, str | os.PathLike):
        if not Path(coadd).is_file():
            raise DcrValueError("coadd file does not exist", path=str(coadd))
        coadd = readExposure(coadd)
    if not isinstance(coadd, Exposure):
        raise DcrTypeError(
            "coadd must be an Exposure or the path of an exposure file",
            coadd=type(coadd).__name__,
        )
    return coadd


def checkBadMaskPlanes(inputs: list[VisitInput], badMaskPlanes: Sequence[str]) -> None:
    """Raise DcrConfigError if a bad mask plane is defined by no input."""
    known: set[str] = set()
    for inp in inputs:
        known.update(inp.planes)
    unknown = [plane for plane in badMaskPlanes if plane not in known]
    if unknown:
        raise DcrConfigError(
            f"badMaskPlanes names mask plane(s) {', '.join(unknown)} that no input "
            f"defines; known planes: {', '.join(sorted(known))}",
            badMaskPlanes=badMaskPlanes,
        )


def measureDcr(inputs: list[VisitInput], band: Filter, bbox: Box, numSubfilters: int) -> float:
    """Keep every visit's DCR at the centre of ``bbox``; return the largest shift, pixels.

    Each visit's ``dcr`` becomes its subfilters' edge shifts (for the buffer and the
    summary); the zenith directions of all visits are measured in one transform.
    """
    measureZeniths(inputs, [bbox])
    maxShift = 0.0
    for inp in inputs:
        try:
            pairs = calculateDcr(
                inp.visitInfo,
                inp.wcs,
                band.effectiveWavelength,
                band.bandwidth,
                numSubfilters,
                splitSubfilters=True,
                bbox=bbox,
                zenith=inp.zenith.get(bbox),
            )
        except DcrError as exc:
            raise type(exc)(f"{inp.name}: {exc.message}", **exc.values) from exc
        inp.dcr = pairs
        for s0, s1 in pairs:
            maxShift = max(maxShift, math.hypot(*s0), math.hypot(*s1))
    return maxShift


def usableInputs(
    inputs: list[VisitInput], config: DcrAssembleConfig, bbox: Box
) -> list[VisitInput]:
    """Return the visits with usable pixels (after the statistics pass), airmass-weighted.

    Warns (`DcrWarning`) for each visit left out; raises `DcrValueError` when all pixels
    are masked or fewer visits than subfilters remain. With ``doAirmassWeight`` the weight
    of every usable visit is multiplied by its airmass.
    """
    n = config.dcrNumSubfilters
    usable = [inp for inp in inputs if inp.goodPixels > 0]
    if not usable:
        raise DcrValueError(
            "all pixels of all visits are masked (bad mask planes "
            f"{', '.join(config.badMaskPlanes)}) inside the model's box; check the "
            "masks or the badMaskPlanes setting",
            bbox=bbox,
        )
    for inp in inputs:
        if inp.goodPixels == 0:
            # Attributed to the caller of DcrAssembleCoadd.planSubregions.
            warnings.warn(
                f"{inp.name} has no usable pixel inside the model's box and is left out",
                DcrWarning,
                stacklevel=4,
            )
    if len(usable) < n:
        raise DcrValueError(
            f"only {len(usable)} visits have usable pixels, fewer than the {n} subfilters",
            nVisits=len(usable),
            dcrNumSubfilters=n,
        )
    if config.doAirmassWeight:
        for inp in usable:
            inp.weight *= float(inp.visitInfo.boresightAirmass)
    return usable


def estimateMissingPsf(inp: VisitInput, band: Filter, bbox: Box) -> None:
    """Estimate the PSF of an input that has none, from its stars (warns)."""
    exposure = inp.read(bbox)
    try:
        if exposure is None:
            raise DcrValueError("the visit does not overlap the model's box")
        with warnings.catch_warnings():
            # estimatePsf warns on its own; the warning below names the visit
            warnings.simplefilter("ignore", DcrPsfWarning)
            estimate = estimatePsf(exposure, effectiveWavelength=band.effectiveWavelength)
    except DcrError as exc:
        raise type(exc)(
            f"{inp.name} has no PSF and none can be estimated from it ({exc.message}); "
            "give the exposure a PSF (Exposure.psf, or a PSF HDU in its file), or use "
            "usePsf=False",
            **exc.values,
        ) from exc
    inp.psf = estimate.psf
    inp.psfEstimate = estimate.toDict()
    warnings.warn(
        f"{inp.name} has no PSF: using one estimated from {estimate.nStars} stars "
        f"(FWHM {estimate.fwhm:.2f} pixels, recorded in the run summary)",
        DcrPsfWarning,
        stacklevel=5,
    )


# ------------------------------------------------------------------------------------------
# The plain coadd
# ------------------------------------------------------------------------------------------
def computedCoadd(
    config: DcrAssembleConfig, numerator: np.ndarray, denominator: np.ndarray, bbox: Box
) -> Exposure:
    """Return the inverse-variance weighted mean of the visits, its sources detected.

    Parameters
    ----------
    config : `DcrAssembleConfig`
        The settings (detection threshold, convergence mask planes).
    numerator, denominator : `numpy.ndarray`
        Sums over the visits of the inverse variance times the image, and of the inverse
        variance, over ``bbox`` (0 where no visit has a good pixel).
    bbox : `dcrmodel.image.Box`
        The model's box.

    Returns
    -------
    `dcrmodel.image.Exposure`
        The coadd without WCS, PSF or filter; pixels without data are flagged NO_DATA and
        get the median variance.
    """
    covered = denominator > 0
    image = np.zeros(bbox.shape)
    variance = np.full(bbox.shape, np.inf)
    image[covered] = numerator[covered] / denominator[covered]
    variance[covered] = 1.0 / denominator[covered]
    mask = Mask.fromBox(bbox)
    noData = mask.getPlaneBitMask("NO_DATA")
    mask.array[~covered] |= noData
    if covered.any():
        fill = float(np.median(variance[covered]))
        variance[~covered] = fill
    else:
        variance[:] = 1.0
    detectSources(config, image, variance, covered, mask)
    return Exposure(MaskedImage(Image(image, bbox=bbox), mask, Image(variance, bbox=bbox)))


def prepareGivenCoadd(
    config: DcrAssembleConfig, coadd: Exposure, statsCtrl: StatisticsControl
) -> Exposure:
    """Return a copy of a given coadd with masked pixels filled and sources marked."""
    coadd = coadd.clone()
    good = goodPixels(coadd, statsCtrl)
    image = coadd.image.array
    variance = coadd.variance.array
    finite = np.isfinite(image)
    if (good & ~finite).any():
        raise DcrValueError(
            f"the coadd has {int((good & ~finite).sum())} unmasked non-finite pixels; "
            "flag them in a bad mask plane (BAD or NO_DATA)"
        )
    image[~good | ~finite] = 0.0
    badVariance = ~np.isfinite(variance) | (variance <= 0)
    if badVariance.any():
        okay = ~badVariance & good
        variance[badVariance] = float(np.median(variance[okay])) if okay.any() else 1.0
    bits = coadd.mask.getPlaneBitMask(config.convergenceMaskPlanes)
    if not (coadd.mask.array & bits).any():
        _log.warning(
            "the coadd marks no pixel in %s; detecting its sources at %.1f sigma",
            ", ".join(config.convergenceMaskPlanes),
            config.detectionThreshold,
        )
        detectSources(config, image, variance, good, coadd.mask)
    return coadd


def detectSources(
    config: DcrAssembleConfig,
    image: np.ndarray,
    variance: np.ndarray,
    good: np.ndarray,
    mask: Mask,
) -> None:
    """Mark the sources of a coadd in its convergence mask planes.

    Pixels whose signal-to-noise ratio exceeds ``config.detectionThreshold`` after a
    light smoothing (a Gaussian of 1 pixel, which favours sources over noise) are
    flagged, then grown by one pixel.
    """
    smooth = ndimage.gaussian_filter(np.where(good, image, 0.0), 1.0, mode="constant")
    norm = ndimage.gaussian_filter(good.astype(float), 1.0, mode="constant")
    # The smoothed noise of white noise with a unit-sum Gaussian kernel of sigma 1 is
    # sigma_pixel / (2 sqrt(pi)).
    noise = np.sqrt(np.where(good, variance, np.inf)) / (2.0 * math.sqrt(math.pi))
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(norm > 0.5, smooth / norm / noise, 0.0)
    detected = ndimage.binary_dilation(snr > config.detectionThreshold, iterations=1) & good
    for plane in config.convergenceMaskPlanes:
        bit = mask.addMaskPlane(plane)
        mask.array[detected] |= 1 << bit
    _log.info(
        "detected %d source pixels in the computed coadd (%.1f sigma)",
        int(detected.sum()),
        config.detectionThreshold,
    )
