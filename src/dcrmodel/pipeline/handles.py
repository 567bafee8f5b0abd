"""Reading an exposure dataset one region at a time through a data butler handle.

`HandleReader` wraps a ``DeferredDatasetHandle`` of a ``DcrmodelExposure`` dataset (a
``dcrWarp``) as the region reader that `dcrmodel.DcrAssembleCoadd` takes in place of an
exposure file: it knows the dataset's box (the storage class's derived component ``bbox``,
read from the headers) and its metadata (a one-pixel cutout) before any pixel is read, and
`HandleReader.read` returns the cutout of a box through
``handle.get(parameters={"bbox": box})``, so that the assembly reads each subregion's
cutouts of the warps, as ``dcrmodel assemble`` reads cutouts of its files, never whole
warps.

A warp written by ``dcrMakeWarp`` for a visit on its own detector grid holds only the part
of the visit that its patch needs (`dcrmodel.pipeline.warptask`); its header records the
visit's whole box (`VISIT_BOX_KEYS`), which the reader reports as its box, so that the
assembly places the visit on the patch exactly as it places the whole visit file.
"""

from __future__ import annotations

from typing import Any

from ..errors import DcrValueError
from ..image import Box, Exposure

__all__ = ["VISIT_BOX_KEYS", "HandleReader", "visitBox"]

#: Header keys of a warp cut from a visit: x and y of the visit's first pixel, its width
#: and height (the visit's whole box, of which the warp holds a part).
VISIT_BOX_KEYS = ("DCRVX0", "DCRVY0", "DCRVNX", "DCRVNY")


def visitBox(exposure: Exposure, stored: Box | None = None) -> Box:
    """Return the whole box of the visit an exposure was cut from.

    Parameters
    ----------
    exposure : dcrmodel.image.Exposure
        A visit, a cutout of one written by ``dcrMakeWarp`` (`VISIT_BOX_KEYS`), or a
        cutout of either (its header is the dataset's).
    stored : Box, optional
        The box of the dataset's stored pixels (default: the exposure's box).

    Returns
    -------
    Box
        The box of `VISIT_BOX_KEYS` when the header has them, else ``stored``.
    """
    metadata = exposure.metadata
    if all(key in metadata for key in VISIT_BOX_KEYS):
        x0, y0, nx, ny = (int(metadata[key]) for key in VISIT_BOX_KEYS)
        return Box(x0, y0, nx, ny)
    return exposure.bbox if stored is None else stored


class HandleReader:
    """A region reader of an exposure dataset, over a deferred dataset handle.

    Parameters
    ----------
    handle : lsst.daf.butler.DeferredDatasetHandle
        Handle of a dataset of storage class ``DcrmodelExposure``.
    name : str, optional
        How the visit is named in messages and the run summary (default: the data ID).

    Attributes
    ----------
    handle : lsst.daf.butler.DeferredDatasetHandle
        The handle.
    name : str
        The visit's name.
    stored : Box
        The box of the stored pixels.
    bbox : Box
        The visit's box: ``stored``, or for a warp cut from a visit the visit's whole box
        (`visitBox`); reads stay within ``stored``.
    info : dcrmodel.image.Exposure
        A one-pixel cutout holding the dataset's metadata (WCS, visit info, filter, PSF,
        photometric calibration, mask planes, header keys).
    reads : int
        The number of pixel reads made so far (`read`).
    """

    def __init__(self, handle: Any, name: str | None = None) -> None:
        self.handle = handle
        self.name = name if name is not None else str(handle.dataId)
        self.stored: Box = handle.get(component="bbox")
        self.info: Exposure = handle.get(
            parameters={"bbox": Box(self.stored.minX, self.stored.minY, 1, 1)}
        )
        self.bbox = visitBox(self.info, self.stored)
        self.reads = 0

    def read(self, bbox: Box) -> Exposure:
        """Return the cutout of ``bbox`` (parent pixels), read through the butler.

        Raises
        ------
        DcrValueError
            If ``bbox`` is not within the stored pixels.
        """
        if not self.stored.contains(bbox):
            raise DcrValueError(
                f"{self.name}: the region {bbox} is not within the stored pixels "
                f"{self.stored}; the warp holds too small a part of its visit",
                bbox=bbox, stored=self.stored,
            )
        self.reads += 1
        return self.handle.get(parameters={"bbox": bbox})

    def __repr__(self) -> str:
        return f"HandleReader({self.name}, bbox={self.bbox})"
