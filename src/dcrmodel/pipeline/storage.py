"""Butler storage classes and formatters for dcrmodel's exposures and DCR model images.

Two storage classes, named with a ``Dcrmodel`` prefix so that they never clash with the
Rubin stack's own (``ExposureF`` and friends), hold a `dcrmodel.image.Exposure`:

- ``DcrmodelExposure`` (`EXPOSURE_STORAGE_CLASS`): visits, warps, coadds and templates,
  written by `ExposureFormatter` in the Rubin exposure layout of `dcrmodel.fits`.
- ``DcrmodelSubfilterExposure`` (`SUBFILTER_STORAGE_CLASS`): one subfilter image of a DCR
  model (the ``dcrCoadd`` dataset), written by `SubfilterExposureFormatter` with the
  ``DCR-SUBF``, ``DCR-NSUB``, ``DCR-WMIN`` and ``DCR-WMAX`` keys that
  `dcrmodel.fits.writeDcrModel` writes, so a file in a repository is a file of a model
  directory and the other way round.

Both take the read parameter ``bbox`` (a `dcrmodel.image.Box` in parent pixel
coordinates): only that region's pixels are read, so subregion reads stay cutouts. Their
derived component ``bbox`` (storage class ``DcrmodelBox``) is the parent box of the stored
pixels, read from the headers alone: with it a reader knows where a dataset lies before it
reads any pixel (`dcrmodel.pipeline.handles.HandleReader`).

A third storage class, ``DcrmodelPatchGrid`` (`GRID_STORAGE_CLASS`), holds the pixel grid
of a patch (`PatchGrid`: celestial WCS and parent box), written by `PatchGridFormatter` as
a FITS file whose primary header holds the WCS and the box (no pixels).

The shipped butler configuration (`BUTLER_CONFIG`, ``resources/butler.yaml``) declares
both storage classes and their formatters; `dcrmodel.pipeline.repository.initRepository`
writes it into a new repository.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import math
import warnings
from typing import Any

from astropy.io import fits
from astropy.wcs import WCS, WCSHDO_P17, FITSFixedWarning, WCSHDO_all
from astropy.wcs.wcs import WCSHDO_SIP
from lsst.daf.butler import Config, FormatterV2, StorageClassFactory
from lsst.resources import ResourcePath

from ..errors import DcrFitsError, DcrTypeError, DcrValueError
from ..fits import ExposureFile, readExposure, writeExposure
from ..image import Box, Exposure, Filter, MaskedImage
from ..model import RUN_ID_KEY, DcrModel, modelIdentity
from ..physics import wavelengthGenerator

__all__ = [
    "EXPOSURE_STORAGE_CLASS",
    "SUBFILTER_STORAGE_CLASS",
    "GRID_STORAGE_CLASS",
    "STORAGE_CLASSES",
    "DCR_KEYS",
    "BUTLER_CONFIG",
    "butlerConfig",
    "registerStorageClasses",
    "subfilterHeader",
    "subfilterExposures",
    "ExposureFormatter",
    "SubfilterExposureFormatter",
    "PatchGrid",
    "PatchGridFormatter",
]

_log = logging.getLogger(__name__)

#: Storage class of a `dcrmodel.image.Exposure` (visits, warps, coadds, templates).
EXPOSURE_STORAGE_CLASS = "DcrmodelExposure"

#: Storage class of one subfilter image of a DCR model (the ``dcrCoadd`` dataset).
SUBFILTER_STORAGE_CLASS = "DcrmodelSubfilterExposure"

#: Storage class of a patch's pixel grid (`PatchGrid`, the ``dcrPatchGrid`` dataset).
GRID_STORAGE_CLASS = "DcrmodelPatchGrid"

#: dcrmodel's storage classes that have a formatter (a repository must know them all).
STORAGE_CLASSES = (EXPOSURE_STORAGE_CLASS, SUBFILTER_STORAGE_CLASS, GRID_STORAGE_CLASS)

#: The HDU 0 keys that tie a subfilter file to its model, in the order they are written.
DCR_KEYS = ("DCR-SUBF", "DCR-NSUB", "DCR-WMIN", "DCR-WMAX")

# The comments dcrmodel.fits.writeDcrModel gives the DCR keys.
_COMMENTS = {
    "DCR-SUBF": "subfilter index (0 is the bluest)",
    "DCR-NSUB": "number of subfilters of the model",
    "DCR-WMIN": "[nm] subfilter start wavelength",
    "DCR-WMAX": "[nm] subfilter end wavelength",
}

#: The shipped butler configuration (storage classes and formatters), a package resource.
BUTLER_CONFIG = importlib.resources.files(__package__) / "resources" / "butler.yaml"


def butlerConfig() -> Config:
    """Return the shipped butler configuration: dcrmodel's storage classes and formatters.

    Returns
    -------
    config : lsst.daf.butler.Config
        ``storageClasses`` and ``datastore.formatters`` entries, to merge into a
        repository's configuration.
    """
    return Config(ResourcePath(str(BUTLER_CONFIG)))


def registerStorageClasses() -> None:
    """Make dcrmodel's storage classes known to this process's storage class factory.

    A repository made by ``dcrmodel butler init`` declares them in its own configuration;
    registering them here as well lets a pipeline be resolved against a repository that
    lacks them, so that the tasks can say what is missing instead of failing on an unknown
    name. Registering them twice is harmless.
    """
    StorageClassFactory().addFromConfig(butlerConfig())


def subfilterHeader(subfilter: int, numSubfilters: int, filterInfo: Filter | None) -> fits.Header:
    """Return the DCR keys of one subfilter file, as `dcrmodel.fits.writeDcrModel` writes them.

    Parameters
    ----------
    subfilter : int
        Subfilter index, 0 (bluest) to ``numSubfilters - 1``.
    numSubfilters : int
        Number of subfilters of the model.
    filterInfo : dcrmodel.image.Filter or None
        The model's band; without one, ``DCR-WMIN``/``DCR-WMAX`` are left out.

    Returns
    -------
    header : astropy.io.fits.Header
        ``DCR-SUBF``, ``DCR-NSUB`` and (with a band) ``DCR-WMIN``, ``DCR-WMAX`` (nm).
    """
    header = fits.Header()
    header["DCR-SUBF"] = (subfilter, _COMMENTS["DCR-SUBF"])
    header["DCR-NSUB"] = (numSubfilters, _COMMENTS["DCR-NSUB"])
    if filterInfo is not None:
        start, end = list(
            wavelengthGenerator(filterInfo.effectiveWavelength, filterInfo.bandwidth,
                                numSubfilters)
        )[subfilter]
        header["DCR-WMIN"] = (start, _COMMENTS["DCR-WMIN"])
        header["DCR-WMAX"] = (end, _COMMENTS["DCR-WMAX"])
    return header


def subfilterExposures(model: DcrModel) -> list[Exposure]:
    """Return one Exposure per subfilter of a model, as the ``dcrCoadd`` datasets hold them.

    Parameters
    ----------
    model : dcrmodel.model.DcrModel
        The model.

    Returns
    -------
    exposures : list of dcrmodel.image.Exposure
        Subfilter ``k``'s image with the model's mask, variance, WCS, PSF, filter and
        photometric calibration, and `subfilterHeader` and the model's identity
        (``DCR-RUN``, `dcrmodel.model.modelIdentity`) as its metadata: what
        `dcrmodel.fits.writeDcrModel` writes to ``dcrCoadd_<k>.fits``.

    Raises
    ------
    DcrTypeError
        If ``model`` is not a `DcrModel`.
    """
    if not isinstance(model, DcrModel):
        raise DcrTypeError("subfilterExposures needs a DcrModel", model=type(model).__name__)
    n = model.dcrNumSubfilters
    identity = modelIdentity(model)
    exposures = []
    for k, image in enumerate(model.modelImages):
        metadata = subfilterHeader(k, n, model.filter)
        metadata[RUN_ID_KEY] = (identity, "model identity (digest)")
        exposures.append(Exposure(
            MaskedImage(image, model.mask, model.variance),
            wcs=model.wcs,
            psf=model.psf,
            filter=model.filter,
            photoCalib=model.photoCalib,
            metadata=metadata,
        ))
    return exposures


def _readBox(parameters: dict[str, Any] | None) -> Box | None:
    """Return the ``bbox`` read parameter (None for the whole image), checked."""
    bbox = (parameters or {}).get("bbox")
    if bbox is not None and not isinstance(bbox, Box):
        raise DcrTypeError(
            "the bbox read parameter must be a dcrmodel.image.Box in parent pixel "
            "coordinates", bbox=type(bbox).__name__,
        )
    return bbox


class ExposureFormatter(FormatterV2):
    """Read and write a `dcrmodel.image.Exposure` as a FITS file in the Rubin layout.

    Reading takes the parameter ``bbox`` (`dcrmodel.image.Box`, parent pixel
    coordinates): only that region is read (`dcrmodel.fits.readExposure`).
    """

    default_extension = ".fits"
    supported_extensions = frozenset({".fits", ".fits.gz", ".fits.fz", ".fz"})
    can_read_from_local_file = True

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read the exposure, its ``bbox`` cutout, or (component ``bbox``) its box."""
        if component == "bbox":
            return ExposureFile(path).bbox
        return readExposure(path, bbox=_readBox(self.file_descriptor.parameters))

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write the exposure to a local file in the Rubin layout."""
        writeExposure(self._prepare(in_memory_dataset), uri.ospath)

    def _prepare(self, exposure: Any) -> Any:
        """Return the exposure to write (checked by `dcrmodel.fits.writeExposure`)."""
        return exposure


class SubfilterExposureFormatter(ExposureFormatter):
    """Read and write one subfilter image of a DCR model (the ``dcrCoadd`` dataset).

    The exposure's metadata must carry ``DCR-NSUB`` (and may carry ``DCR-SUBF``,
    ``DCR-WMIN``, ``DCR-WMAX``; `subfilterExposures` sets them all). They are written in
    the order and with the comments of `dcrmodel.fits.writeDcrModel`; ``DCR-SUBF`` must
    agree with the dataset's ``subfilter`` data ID value. On reading the same agreement
    is checked, so a file that belongs to another subfilter is refused.
    """

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read the subfilter exposure (or its ``bbox`` cutout) and check its index."""
        exposure = super().read_from_local_file(path, component, expected_size)
        stored = exposure.metadata.get("DCR-SUBF")
        expected = self._dataIdSubfilter()
        if stored is not None and expected is not None and int(stored) != expected:
            raise DcrFitsError(
                f"{path}: key DCR-SUBF = {stored} but the dataset is subfilter {expected}; "
                "the file was ingested under the wrong data ID",
                key="DCR-SUBF",
            )
        return exposure

    def _dataIdSubfilter(self) -> int | None:
        dataId = self.data_id
        if dataId is None or "subfilter" not in dataId.dimensions.names:
            return None
        return int(dataId["subfilter"])

    def _prepare(self, exposure: Any) -> Any:
        """Put the DCR keys first in the metadata, where writeDcrModel writes them."""
        if not isinstance(exposure, Exposure):
            raise DcrTypeError(
                "a dcrCoadd dataset is a dcrmodel Exposure", exposure=type(exposure).__name__
            )
        metadata = exposure.metadata
        if "DCR-NSUB" not in metadata:
            raise DcrValueError(
                "a DCR model subfilter exposure needs DCR-NSUB in its metadata; make the "
                "exposures with dcrmodel.pipeline.subfilterExposures(model)",
            )
        expected = self._dataIdSubfilter()
        subfilter = metadata.get("DCR-SUBF", expected)
        if subfilter is None or (expected is not None and int(subfilter) != expected):
            raise DcrValueError(
                f"the exposure's DCR-SUBF ({subfilter}) is not the dataset's subfilter "
                f"({expected})", subfilter=subfilter,
            )
        ordered = subfilterHeader(int(subfilter), int(metadata["DCR-NSUB"]), None)
        for key in DCR_KEYS[2:]:
            value = metadata.get(key)
            if isinstance(value, float) and math.isfinite(value):
                ordered[key] = (value, _COMMENTS[key])
        for card in metadata.cards:
            if card.keyword not in DCR_KEYS:
                ordered.append(card, end=True)
        return Exposure(
            exposure.maskedImage, wcs=exposure.wcs, psf=exposure.psf,
            visitInfo=exposure.visitInfo, filter=exposure.filter,
            photoCalib=exposure.photoCalib, metadata=ordered,
        )


# ------------------------------------------------------------------------------------------
# A patch's pixel grid
# ------------------------------------------------------------------------------------------
#: Header keys of a patch grid's box: x and y of its first pixel, its width and height.
_GRID_KEYS = ("DCRGX0", "DCRGY0", "DCRGNX", "DCRGNY")


@dataclasses.dataclass(frozen=True)
class PatchGrid:
    """The pixel grid of a patch: the grid a DCR model of the patch is built on.

    Attributes
    ----------
    wcs : astropy.wcs.WCS
        Celestial WCS of 0-based parent pixel coordinates.
    bbox : dcrmodel.image.Box
        The patch's parent box.
    """

    wcs: WCS
    bbox: Box

    def __post_init__(self) -> None:
        if not isinstance(self.wcs, WCS) or not self.wcs.has_celestial:
            raise DcrTypeError("a patch grid needs a celestial astropy WCS",
                               wcs=type(self.wcs).__name__)
        if not isinstance(self.bbox, Box) or self.bbox.isEmpty():
            raise DcrTypeError("a patch grid needs a non-empty dcrmodel Box",
                               bbox=repr(self.bbox))

    def asTuple(self) -> tuple[WCS, Box]:
        """Return ``(wcs, bbox)``, the form of the ``grid`` argument of the assembly."""
        return self.wcs, self.bbox

    def header(self) -> fits.Header:
        """Return the FITS header that `PatchGridFormatter` writes: the WCS and the box.

        The WCS's numbers are written with 17 significant digits (``WCSHDO_P17``), so that
        the grid read back is the very grid written (astropy's default keeps 14).
        """
        header = self.wcs.to_header(relax=WCSHDO_all | WCSHDO_P17 | WCSHDO_SIP)
        comments = ("first column of the patch (parent pixels)",
                    "first row of the patch (parent pixels)",
                    "patch width (pixels)", "patch height (pixels)")
        values = (self.bbox.minX, self.bbox.minY, self.bbox.width, self.bbox.height)
        for key, value, comment in zip(_GRID_KEYS, values, comments, strict=True):
            header[key] = (int(value), comment)
        return header

    @classmethod
    def fromHeader(cls, header: fits.Header, where: str = "the patch grid") -> PatchGrid:
        """Return the grid of a header written by `header`.

        Raises
        ------
        DcrFitsError
            If a box key is missing or the WCS is not celestial.
        """
        missing = [key for key in _GRID_KEYS if key not in header]
        if missing:
            raise DcrFitsError(f"{where} lacks the keys {', '.join(missing)}", missing=missing)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
        if not wcs.has_celestial:
            raise DcrFitsError(f"{where} has no celestial WCS", ctype=list(wcs.wcs.ctype))
        x0, y0, nx, ny = (int(header[key]) for key in _GRID_KEYS)
        return cls(wcs, Box(x0, y0, nx, ny))


class PatchGridFormatter(FormatterV2):
    """Read and write a `PatchGrid` as a FITS file of one header (no pixels)."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits"})
    can_read_from_local_file = True

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read the grid from the primary header."""
        return PatchGrid.fromHeader(fits.getheader(path, 0), where=path)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write the grid's WCS and box as the primary header."""
        if not isinstance(in_memory_dataset, PatchGrid):
            raise DcrTypeError("a dcrPatchGrid dataset is a dcrmodel.pipeline.PatchGrid",
                               dataset=type(in_memory_dataset).__name__)
        fits.PrimaryHDU(header=in_memory_dataset.header()).writeto(uri.ospath)
