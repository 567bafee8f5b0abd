"""Write and read DCR models as directories of exposure files, one per subfilter.

A DCR model is a directory of one exposure file per subfilter, ``dcrCoadd_<k>.fits``, each
in the Rubin exposure layout of `dcrmodel.fits.exposure` with the subfilter index, the number of
subfilters and the subfilter's wavelength range in its HDU 0 (``DCR-SUBF``, ``DCR-NSUB``,
``DCR-WMIN``, ``DCR-WMAX``), as the Rubin ``dcrCoadd`` datasets have; `DcrModelDataRef`
gives ``DcrModel.fromDataRef`` access to it. `writeDcrModel` builds the directory beside
its target and renames it into place; every read checks the files against each other and
raises `DcrFitsError` naming the file and key at fault.
"""

from __future__ import annotations

import glob
import logging
import math
import numbers
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from ..atomic import atomicDirectory, guardOutputFolder, holdsOutputLock
from ..errors import (
    DcrError,
    DcrFitsError,
    DcrTypeError,
    DcrValueError,
    DcrWarning,
)
from ..image import Box, Exposure, Filter, MaskedImage
from ..model import RUN_ID_KEY, DcrModel, modelIdentity, oddRunIdentity
from ..physics import wavelengthGenerator
from . import exposure as reader
from .headers import headerFloat, headerInt, headerStr, setKey
from .writing import exposureToHduList

if TYPE_CHECKING:
    from ..model import RUN_ID_KEY, DcrModel, modelIdentity, oddRunIdentity

__all__ = [
    "writeDcrModel",
    "readDcrModel",
    "DcrModelDataRef",
]

_log = logging.getLogger(__name__)

_DEFAULT_DATASET = "dcrCoadd"
_DATASET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _checkDatasetType(datasetType: Any) -> str:
    if not isinstance(datasetType, str) or not _DATASET_NAME.match(datasetType):
        raise DcrValueError(
            "datasetType must be a name of letters, digits and '_' (for example 'dcrCoadd')",
            datasetType=datasetType,
        )
    return datasetType


# Suffixes of compressed model files found when ``<datasetType>_<k>.fits`` is absent.
_COMPRESSED_SUFFIXES = (".gz", ".fz")


def _modelFileName(datasetType: str, subfilter: int) -> str:
    return f"{datasetType}_{subfilter}.fits"


def _isModelDirectory(path: Path) -> bool:
    """Return True if ``path`` holds only subfilter files of DCR models (or nothing)."""
    pattern = re.compile(r"^[A-Za-z][A-Za-z0-9_]*_\d+\.fits$")
    entries = [entry for entry in path.iterdir()]
    if not entries:
        return True
    if not all(entry.is_file() and pattern.match(entry.name) for entry in entries):
        return False
    try:
        header = fits.getheader(entries[0], 0)
    except (OSError, ValueError):
        return False
    return "DCR-NSUB" in header and "DCR-SUBF" in header


@holdsOutputLock("path")
def writeDcrModel(
    model: DcrModel, path: str | os.PathLike, datasetType: str = _DEFAULT_DATASET
) -> None:
    """Write a DCR model as a directory of one exposure file per subfilter, atomically.

    Parameters
    ----------
    model : `dcrmodel.model.core.DcrModel`
        The model.
    path : `str` or `os.PathLike`
        Output directory. It receives ``<datasetType>_<k>.fits`` for ``k`` in
        ``0..N-1``: subfilter ``k``'s image with the model's shared mask and variance, WCS,
        PSF, filter and photometric calibration, and in HDU 0 ``DCR-SUBF`` (``k``),
        ``DCR-NSUB`` (``N``) and, when the model has a filter, ``DCR-WMIN``/``DCR-WMAX``
        (the subfilter's wavelength range, nm), and ``DCR-RUN``: the model's identity
        (`dcrmodel.model.modelIdentity`, a digest of its planes), the same in all its
        subfilter files, which readers check, so that a subfilter file of another run is
        never taken for one of this model. The
        directory is built beside ``path`` and
        renamed into place; an existing model directory at ``path`` is replaced only once
        the new one is complete.
    datasetType : `str`, optional
        File name stem, ``'dcrCoadd'`` by default (the Rubin dataset name).

    Raises
    ------
    DcrTypeError
        If ``model`` is not a `DcrModel`.
    DcrOutputError
        If ``path`` is a file, or a directory that holds anything but model files.

    Notes
    -----
    A model without a mask or variance is written with an empty mask and unit variance
    (what `dcrmodel.image.MaskedImage` supplies), and is read back with them.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Filter, Image
    >>> from dcrmodel.model.core import DcrModel
    >>> images = [Image(np.full((4, 5), k, np.float32)) for k in range(3)]
    >>> model = DcrModel(images, filterInfo=Filter.fromBand("g"))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> writeDcrModel(model, path)
    >>> sorted(p.name for p in path.iterdir())
    ['dcrCoadd_0.fits', 'dcrCoadd_1.fits', 'dcrCoadd_2.fits']
    >>> readDcrModel(path).dcrNumSubfilters
    3
    """
    if not isinstance(model, DcrModel):
        raise DcrTypeError("writeDcrModel needs a DcrModel", model=type(model).__name__)
    datasetType = _checkDatasetType(datasetType)
    target = Path(os.fspath(path))
    # a DCR model folder is always replaced as a whole (atomically, below)
    guardOutputFolder(target, True, "model", _isModelDirectory)
    numSubfilters = model.dcrNumSubfilters
    filterInfo = model.filter
    ranges: list[tuple[float, float]] | None = None
    if filterInfo is not None:
        ranges = list(
            wavelengthGenerator(
                filterInfo.effectiveWavelength, filterInfo.bandwidth, numSubfilters
            )
        )
    runId = modelIdentity(model)
    hduLists = []
    for k, modelImage in enumerate(model.modelImages):
        exposure = Exposure(
            MaskedImage(modelImage, model.mask, model.variance),
            wcs=model.wcs,
            psf=model.psf,
            filter=filterInfo,
            photoCalib=model.photoCalib,
        )
        extra = fits.Header()
        setKey(extra, "DCR-SUBF", k, "subfilter index (0 is the bluest)")
        setKey(extra, "DCR-NSUB", numSubfilters, "number of subfilters of the model")
        if ranges is not None:
            setKey(extra, "DCR-WMIN", ranges[k][0], "[nm] subfilter start wavelength")
            setKey(extra, "DCR-WMAX", ranges[k][1], "[nm] subfilter end wavelength")
        setKey(extra, RUN_ID_KEY, runId, "model identity (digest)")
        hduLists.append(exposureToHduList(exposure, extra))
    with atomicDirectory(target) as tmp:
        for k, hduList in enumerate(hduLists):
            hduList.writeto(tmp / _modelFileName(datasetType, k), output_verify="exception")
    _log.debug("wrote a %d-subfilter DCR model to %s", numSubfilters, target)


class DcrModelDataRef:
    """Data reference to a directory of DCR model files, for ``DcrModel.fromDataRef``.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        Directory written by `writeDcrModel` (one patch's model).
    datasetType : `str`, optional
        File name stem of the files whose `numSubfilters` is reported, ``'dcrCoadd'`` by
        default; `get` takes its own ``datasetType``.

    Raises
    ------
    DcrFitsError
        If ``path`` is not a directory (the message tells a file from a missing folder,
        and names the previous model a run killed while replacing it left hidden beside).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from dcrmodel.image import Image
    >>> from dcrmodel.model.core import DcrModel
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> writeDcrModel(DcrModel([Image(np.zeros((4, 5))) for _ in range(3)]), path)
    >>> ref = DcrModelDataRef(path)
    >>> ref.numSubfilters
    3
    >>> ref.get("dcrCoadd", subfilter=2, numSubfilters=3).bbox
    Box(minX=0, minY=0, width=5, height=4)
    >>> DcrModel.fromDataRef(ref).dcrNumSubfilters
    3
    """

    def __init__(self, path: str | os.PathLike, datasetType: str = _DEFAULT_DATASET) -> None:
        self.path = Path(os.fspath(path))
        self.datasetType = _checkDatasetType(datasetType)
        if not self.path.is_dir():
            raise DcrFitsError(_notAModelFolder(self.path), path=str(self.path))

    def __repr__(self) -> str:
        return f"DcrModelDataRef({str(self.path)!r})"

    @property
    def numSubfilters(self) -> int:
        """Number of subfilters of the stored model (``DCR-NSUB`` of subfilter 0's file).

        Files without the key (written by other software) count as one subfilter each,
        numbered from 0 without gaps (with a warning); their ``DCR-SUBF`` is taken from the
        file name. ``DcrModel.fromDataRef`` uses it when called without ``numSubfilters``.
        """
        file = self._file(self.datasetType, 0)
        header = self._header(file)
        where = f"{file.name}, HDU 0"
        value = headerInt(header, "DCR-NSUB", where)
        if value is None and "DCR-NSUB" not in header:
            # Files without the key (another writer): one subfilter per file, numbered
            # from 0 without gaps.
            value = self._countFiles(self.datasetType)
            warnings.warn(
                f"{where}: key DCR-NSUB is missing; the model directory holds {value} "
                f"subfilter files {self.datasetType}_0..{value - 1}, so it has {value} "
                f"subfilters",
                DcrWarning,
                stacklevel=2,
            )
        if value is None or value < 1:
            raise DcrFitsError(
                f"{where}: key DCR-NSUB (number of subfilters) is unknown or below 1",
                key="DCR-NSUB",
                value=header.get("DCR-NSUB"),
            )
        return value

    def _countFiles(self, datasetType: str) -> int:
        """Count the subfilter files ``<datasetType>_0``, ``_1``, ... present without a gap."""
        count = 0
        while True:
            try:
                self._file(datasetType, count)
            except DcrFitsError:
                return count
            count += 1

    def _file(self, datasetType: str, subfilter: int) -> Path:
        file = self.path / _modelFileName(datasetType, subfilter)
        if not file.is_file():
            # Compressed copies (gzip, or fpack's tile compression) of the same layout.
            for suffix in _COMPRESSED_SUFFIXES:
                compressed = file.with_name(file.name + suffix)
                if compressed.is_file():
                    return compressed
            if file.with_suffix(".fz").is_file():
                return file.with_suffix(".fz")
            raise DcrFitsError(
                f"no file {file.name} for subfilter {subfilter} in the model directory",
                path=str(self.path),
                files=sorted(entry.name for entry in self.path.iterdir())[:20],
            )
        return file

    @staticmethod
    def _header(file: Path) -> fits.Header:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AstropyUserWarning)
                header = fits.getheader(file, 0)
        except (OSError, ValueError, TypeError, IndexError) as error:
            raise DcrFitsError(
                f"{file.name} is not a readable FITS file ({error})", path=str(file)
            ) from None
        damage = reader._damagedCard([header], values=True)
        if damage is not None:
            raise DcrFitsError(f"{file.name} is damaged: {damage}; write or copy the file "
                               "again", path=str(file))
        return header

    def get(
        self,
        datasetType: str | None = None,
        subfilter: int | None = None,
        numSubfilters: int | None = None,
        bbox: Box | None = None,
        **kwargs: Any,
    ) -> Exposure:
        """Read subfilter ``subfilter`` of the model as an Exposure.

        Parameters
        ----------
        datasetType : `str`, optional
            File name stem; None means the reference's own ``datasetType``.
        subfilter : `int`
            Subfilter index, 0 (bluest) to ``numSubfilters - 1``.
        numSubfilters : `int`, optional
            Expected number of subfilters, checked against ``DCR-NSUB``.
        bbox : `dcrmodel.image.Box`, optional
            Region to read, in parent pixel coordinates (see `dcrmodel.fits.exposure.readExposure`).
        **kwargs
            Further data-id keys (``tract``, ``patch``, ...) are accepted for
            compatibility with butler data references and ignored: a directory holds one
            patch.

        Returns
        -------
        exposure : `dcrmodel.image.Exposure`
            The subfilter image with the model's mask, variance, WCS, PSF, filter and
            photometric calibration. Without ``FILT-EFF``/``FILT-BW``, the filter's
            wavelengths come from the file's ``DCR-WMIN``/``DCR-WMAX`` (the band of which
            they are subfilter ``DCR-SUBF`` of ``DCR-NSUB``) rather than from the built-in
            table of its ``FILTER`` name, which need not be the model's band.

        Raises
        ------
        DcrValueError
            If ``subfilter`` or ``numSubfilters`` is not a valid integer.
        DcrFitsError
            If the file is missing or its ``DCR-SUBF``/``DCR-NSUB`` disagree with the
            request, or the file is unreadable (see `dcrmodel.fits.exposure.readExposure`).
        """
        datasetType = self.datasetType if datasetType is None else _checkDatasetType(datasetType)
        if isinstance(subfilter, bool) or not isinstance(subfilter, numbers.Integral):
            raise DcrValueError(
                "get needs the subfilter index as an integer, subfilter=k", subfilter=subfilter
            )
        subfilter = int(subfilter)
        if numSubfilters is not None:
            if isinstance(numSubfilters, bool) or not isinstance(numSubfilters, numbers.Integral):
                raise DcrValueError(
                    "numSubfilters must be an integer", numSubfilters=numSubfilters
                )
            numSubfilters = int(numSubfilters)
            if not 0 <= subfilter < numSubfilters:
                raise DcrValueError(
                    f"subfilter must be in 0..{numSubfilters - 1}",
                    subfilter=subfilter,
                    numSubfilters=numSubfilters,
                )
        elif subfilter < 0:
            raise DcrValueError("subfilter must be 0 or more", subfilter=subfilter)
        if kwargs:
            _log.debug("DcrModelDataRef.get ignores data-id keys %s", sorted(kwargs))
        file = self._file(datasetType, subfilter)
        header = self._header(file)
        where = f"{file.name}, HDU 0"
        storedIndex = headerInt(header, "DCR-SUBF", where)
        storedCount = headerInt(header, "DCR-NSUB", where)
        if storedIndex is None and "DCR-SUBF" not in header:
            storedIndex = subfilter  # the file name says which subfilter it holds
        if storedCount is None and "DCR-NSUB" not in header:
            storedCount = (
                numSubfilters if numSubfilters is not None else self._countFiles(datasetType)
            )
        if storedIndex is None or storedCount is None:
            raise DcrFitsError(
                f"{where}: key {'DCR-SUBF' if storedIndex is None else 'DCR-NSUB'} is blank; "
                f"give the subfilter index and count, or leave the keys out",
                key="DCR-SUBF" if storedIndex is None else "DCR-NSUB",
            )
        if storedIndex != subfilter:
            raise DcrFitsError(
                f"{where}: key DCR-SUBF = {storedIndex} but the file name says subfilter "
                f"{subfilter}; the model directory is inconsistent",
                key="DCR-SUBF",
            )
        if numSubfilters is not None and storedCount != numSubfilters:
            raise DcrFitsError(
                f"{where}: key DCR-NSUB = {storedCount}, but numSubfilters={numSubfilters} was "
                f"requested; read the model with numSubfilters={storedCount}",
                key="DCR-NSUB",
            )
        # Looked up on dcrmodel.fits.exposure at call time, so that a replacement of the reader
        # there (instrumentation, tests) reads the model files too.
        exposure = reader.readExposure(file, bbox=bbox)
        if "FILT-EFF" not in header:
            band = self._bandFromRanges(datasetType, header, storedIndex, storedCount, where)
            if band is not None:
                exposure.filter = band
        return exposure

    def _bandFromRanges(
        self, datasetType: str, header: fits.Header, subfilter: int, numSubfilters: int,
        where: str,
    ) -> Filter | None:
        """Band of the model from subfilter 0's DCR-WMIN/DCR-WMAX, checked against this file's.

        Every subfilter gets the same band (computed from one file, so no rounding
        differences between subfilters); a file whose range is not its subfilter of that
        band belongs to another model.
        """
        first = header if subfilter == 0 else self._header(self._file(datasetType, 0))
        firstWhere = where if subfilter == 0 else f"{_modelFileName(datasetType, 0)}, HDU 0"
        band = _bandFromSubfilterRange(first, 0, numSubfilters, firstWhere)
        if band is None or subfilter == 0:
            return band
        own = _bandFromSubfilterRange(header, subfilter, numSubfilters, where)
        if own is None:
            return band

        expected = list(
            wavelengthGenerator(band.effectiveWavelength, band.bandwidth, numSubfilters)
        )[subfilter]
        actual = (header["DCR-WMIN"], header["DCR-WMAX"])
        for key, value, wanted in zip(("DCR-WMIN", "DCR-WMAX"), actual, expected, strict=True):
            if not math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-9):
                raise DcrFitsError(
                    f"{where}: key {key} = {value} nm disagrees with subfilter {subfilter} of "
                    f"the band of {_modelFileName(datasetType, 0)} ({wanted} nm); the files do "
                    f"not belong together",
                    key=key,
                )
        return band


def _bandFromSubfilterRange(
    header: fits.Header, subfilter: int, numSubfilters: int, where: str
) -> Filter | None:
    """Return the band whose subfilter ``subfilter`` of ``numSubfilters`` is DCR-WMIN..DCR-WMAX.

    Subfilter ``k`` of ``N`` covers ``[lambdaMin + k w, lambdaMin + (k+1) w)`` with
    ``w = bandwidth / N`` (primer), so one file's range gives the whole band. A model file
    knows its own wavelengths: they override the built-in table of its FILTER name (another
    pipeline's band of the same name may differ). None without both keys.
    """
    start = headerFloat(header, "DCR-WMIN", where)
    end = headerFloat(header, "DCR-WMAX", where)
    if start is None or end is None or math.isnan(start) or math.isnan(end):
        return None
    width = end - start
    if not width > 0.0 or start <= 0.0:
        raise DcrFitsError(
            f"{where}: keys DCR-WMIN = {start} and DCR-WMAX = {end} are not a wavelength range "
            f"(nm, DCR-WMIN < DCR-WMAX); fix the model file",
            key="DCR-WMIN",
        )
    bandwidth = width * numSubfilters
    lambdaMin = start - width * subfilter
    name = headerStr(header, "FILTER", where) or "unknown"
    try:
        return Filter(name, lambdaMin + bandwidth / 2.0, bandwidth)
    except DcrError as error:
        raise DcrFitsError(
            f"{where}: keys DCR-WMIN/DCR-WMAX do not give a valid band ({error})",
            key="DCR-WMIN",
        ) from None


def readDcrModel(
    path: str | os.PathLike, bbox: Box | None = None, datasetType: str = _DEFAULT_DATASET
) -> DcrModel:
    """Read a DCR model written by `writeDcrModel`.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The model directory: ``<datasetType>_<k>.fits`` for each subfilter ``k``, or
        compressed copies (``.fits.gz``, ``.fits.fz`` or ``.fz``) of them.
    bbox : `dcrmodel.image.Box`, optional
        Region to read, in parent pixel coordinates; None reads everything.
    datasetType : `str`, optional
        File name stem, ``'dcrCoadd'`` by default.

    Returns
    -------
    model : `dcrmodel.model.core.DcrModel`
        The model, built by ``DcrModel.fromDataRef`` over a `DcrModelDataRef`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (the message names the previous model that a run
        killed while replacing it left hidden beside the path).
    DcrFitsError
        If a subfilter file is missing, unreadable or inconsistent (``DCR-SUBF``,
        ``DCR-NSUB``, or ``DCR-WMIN``/``DCR-WMAX`` that disagree with the filter), is of
        another run than the others (``DCR-RUN``; a model none of whose files has one,
        written before run identities, is read), or the directory holds subfilters beyond
        ``DCR-NSUB``.
    """
    directory = Path(os.fspath(path))
    if not directory.exists():
        raise FileNotFoundError(f"no such DCR model directory: {directory}"
                                f"{_midSwapNote(directory)}")
    datasetType = _checkDatasetType(datasetType)
    dataRef = DcrModelDataRef(directory, datasetType)
    numSubfilters = dataRef.numSubfilters
    pattern = re.compile(rf"^{re.escape(datasetType)}_(\d+)\.f(its(\.gz|\.fz)?|z)$")
    extra = sorted(
        entry.name
        for entry in directory.iterdir()
        if (match := pattern.match(entry.name)) and int(match.group(1)) >= numSubfilters
    )
    if extra:
        raise DcrFitsError(
            f"the model directory holds {', '.join(extra)} beyond DCR-NSUB = {numSubfilters}; "
            f"it mixes two models, rewrite it with writeDcrModel",
            path=str(directory),
        )
    _checkRunIdentity(dataRef, datasetType, numSubfilters)
    model = DcrModel.fromDataRef(
        dataRef, datasetType=datasetType, numSubfilters=numSubfilters, bbox=bbox
    )
    if model.filter is not None:
        _checkSubfilterRanges(
            dataRef, datasetType, numSubfilters,
            list(wavelengthGenerator(model.filter.effectiveWavelength, model.filter.bandwidth,
                                     numSubfilters)),
        )
    return model


def _checkRunIdentity(dataRef: DcrModelDataRef, datasetType: str, numSubfilters: int) -> None:
    """Refuse a model folder whose subfilter files are not all of one run (headers only)."""
    files = [dataRef._file(datasetType, k) for k in range(numSubfilters)]
    identities = [dataRef._header(file).get(RUN_ID_KEY) for file in files]
    odd = oddRunIdentity(identities)
    if odd is not None:
        raise DcrFitsError(
            f"{files[odd[0]].name} {odd[1]}: the model folder {dataRef.path} mixes files of "
            "different runs; write the model again (or copy every file from one run)",
            path=str(files[odd[0]]), key=RUN_ID_KEY,
        )


def _checkSubfilterRanges(
    dataRef: DcrModelDataRef,
    datasetType: str,
    numSubfilters: int,
    ranges: Iterable[tuple[float, float]],
) -> None:
    """Check DCR-WMIN/DCR-WMAX of each file against the filter's subfilter ranges."""
    for k, (start, end) in enumerate(ranges):
        file = dataRef._file(datasetType, k)
        header = dataRef._header(file)
        where = f"{file.name}, HDU 0"
        for key, expected in (("DCR-WMIN", start), ("DCR-WMAX", end)):
            value = headerFloat(header, key, where)
            if value is None or math.isnan(value):
                continue
            if not math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9):
                raise DcrFitsError(
                    f"{where}: key {key} = {value} nm disagrees with subfilter {k} of the "
                    f"filter ({expected} nm for {numSubfilters} subfilters); the files do not "
                    f"belong together",
                    key=key,
                )



def _notAModelFolder(path: Path) -> str:
    """Say why ``path`` is not a model folder: a file, or missing (perhaps mid-swap)."""
    if path.exists():
        return (f"{path} is not a directory: a DCR model is a directory of "
                "<datasetType>_<k>.fits files")
    return f"no DCR model at {path}: the folder does not exist{_midSwapNote(path)}"


def _midSwapNote(path: Path) -> str:
    """Name the old model that a run killed mid-swap left hidden beside ``path`` ("" if none).

    Only where the file system cannot exchange two folders in one step
    (`dcrmodel.atomic.exchangePaths`) is a folder replaced by two renames; a run killed
    between them leaves the old folder at ``.<name>.<random>.old``.
    """
    if not path.parent.is_dir():
        return ""
    old = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.old"))
    if not old:
        return ""
    return (f"; a run was killed while replacing it, and the previous model waits beside it "
            f"in {old[-1].name}: run the command that writes {path.name} again (it puts the "
            "previous model back first)")
