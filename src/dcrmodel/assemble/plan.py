"""A prepared run split into subregions that are solved independently.

`dcrmodel.assemble.task.DcrAssembleCoadd.planSubregions` returns an `AssemblyPlan`: the
patch-wide products of the preparation and the subregions. `AssemblyPlan.subregionTask` cuts
the `SubregionTask` of one subregion, which `dcrmodel.assemble.task.assembleSubregion` solves
(in this process or in another one) into a `SubregionResult`; `DcrAssembleCoadd.finish`
stitches the results.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import DcrValueError
from ..image import Box, Image
from ..model import DcrModel
from .config import DcrAssembleConfig
from .inputs import PreparedRun
from .tiling import featherWidth

__all__ = [
    "AssemblyPlan",
    "SubregionTask",
    "SubregionResult",
]


@dataclasses.dataclass
class SubregionTask:
    """Everything needed to solve one subregion, holding only its cutouts.

    Made by `AssemblyPlan.subregionTask` and solved by `assembleSubregion`, in this
    process or in another one: the object pickles to the size of the subregion with its
    buffer (visit files are referenced by path and read there one cutout at a time;
    in-memory visits are carried as cutouts, those warped onto the grid as the cutout of
    their own pixels that the warp needs).

    Attributes
    ----------
    index : int
        Position of the subregion in the plan (0-based).
    count : int
        Number of subregions of the plan.
    tile : `dcrmodel.image.Box`
        The subregion, parent pixels.
    bbox : `dcrmodel.image.Box`
        The box solved: ``tile`` grown by the DCR buffer and clipped to the patch.
    config : `DcrAssembleConfig`
        The settings of the run, with the number of subfilters it uses (``"auto"``
        resolved, `dcrmodel.assemble.subfilters`).
    prepared : `dcrmodel.assemble.inputs.PreparedRun`
        The run's preparation (visits with their weights, band, coadd) cut to ``bbox``.
    model : `dcrmodel.model.core.DcrModel`
        The starting model (the coadd split evenly among subfilters) in ``bbox``.
    modelWeights : `numpy.ndarray` or None
        The model weights in ``bbox`` (None when not used).
    """

    index: int
    count: int
    tile: Box
    bbox: Box
    config: DcrAssembleConfig
    prepared: PreparedRun
    model: Any
    modelWeights: np.ndarray | None


@dataclasses.dataclass
class SubregionResult:
    """One solved subregion (what `assembleSubregion` returns).

    Attributes
    ----------
    index : int
        Position of the subregion in the plan (0-based).
    tile : `dcrmodel.image.Box`
        The subregion, parent pixels.
    modelArrays : `numpy.ndarray`
        ``(N, height, width)`` float64 subfilter images over ``bbox``, counts, with the
        subfilter differences amplified by ``accelerateModel`` as in the output model.
    nImages : `numpy.ndarray`
        ``(N, height, width)`` int32 over ``tile``: per subfilter, the number of visits
        contributing to each pixel.
    summary : dict
        The subregion's record (JSON-ready): boxes, number of visits, convergence and gain
        per iteration or the direct solver's residuals, stop reason and seconds.
    bbox : `dcrmodel.image.Box` or None
        The box of ``modelArrays``: the tile grown by the blending band (`featherWidth`)
        and clipped to the patch, which `DcrAssembleCoadd.finish` blends with the
        neighbours' solutions. None: the tile.
    coaddSums : `numpy.ndarray` or None
        For a run whose plain coadd is made from the subregions' warps
        (`dcrmodel.assemble.plaincoadd`): ``(2, height, width)`` float64 over ``tile``, the
        sums of the inverse-variance weighted coadd of the visits it read; None otherwise.
    """

    index: int
    tile: Box
    modelArrays: np.ndarray
    nImages: np.ndarray
    summary: dict[str, Any]
    bbox: Box | None = None
    coaddSums: np.ndarray | None = None

    @property
    def modelBox(self) -> Box:
        """The box of ``modelArrays``, parent pixels."""
        return self.tile if self.bbox is None else self.bbox


@dataclasses.dataclass
class AssemblyPlan:
    """A prepared run split into subregions (what `DcrAssembleCoadd.planSubregions` returns).

    The plan holds the patch-wide products of the preparation (the visits' weights, the
    plain coadd, the starting model and the model weights). `subregionTask` cuts from them
    the independent `SubregionTask` of each subregion, and `DcrAssembleCoadd.finish`
    stitches the `SubregionResult` of every subregion into the `AssembleResult`.

    Attributes
    ----------
    config : `DcrAssembleConfig`
        The settings of the run, with the number of subfilters it uses (``"auto"``
        resolved, `dcrmodel.assemble.subfilters`).
    prepared : `dcrmodel.assemble.inputs.PreparedRun`
        The run's preparation (visits, band, box, WCS, buffer, coadd).
    model : `dcrmodel.model.core.DcrModel`
        The starting model: the coadd split evenly among subfilters.
    modelWeights : `numpy.ndarray` or None
        The patch's model weights (None when not used).
    tiles : list of `dcrmodel.image.Box`
        The subregions, in the order they are numbered.
    timings : dict
        Seconds spent so far (``"prepare"``).
    subfilters : dict
        The number of subfilters and why (`SubfilterChoice.toDict`), for the summary.
    """

    config: DcrAssembleConfig
    prepared: PreparedRun
    model: Any
    modelWeights: np.ndarray | None
    tiles: list[Box]
    timings: dict[str, float]
    subfilters: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def bbox(self) -> Box:
        """The model's box, parent pixels."""
        return self.prepared.bbox

    @property
    def buffer(self) -> int:
        """The DCR buffer solved around each subregion, pixels."""
        return self.prepared.buffer

    @property
    def numSubregions(self) -> int:
        """The number of subregions."""
        return len(self.tiles)

    @property
    def feather(self) -> int:
        """Half-width of the band blending neighbouring subregions, pixels (`featherWidth`)."""
        return featherWidth(self.prepared.buffer, self.config.solver)

    def modelBox(self, index: int) -> Box:
        """Return the box of subregion ``index``'s model: its tile grown by `feather`."""
        return self.tiles[index].grow(self.feather).clippedTo(self.prepared.bbox)

    def solvedBox(self, index: int) -> Box:
        """Return the box solved for subregion ``index``: its tile grown by the buffer."""
        return self.tiles[index].grow(self.prepared.buffer).clippedTo(self.prepared.bbox)

    def subregionTask(self, index: int) -> SubregionTask:
        """Return the task of subregion ``index``, holding only its cutouts.

        Parameters
        ----------
        index : int
            The subregion, 0 to ``numSubregions - 1``.

        Returns
        -------
        SubregionTask
            The subregion's inputs. Its arrays are views of the plan's (pickling copies
            only the views); in-memory visits are cut to the solved box.

        Raises
        ------
        DcrValueError
            If ``index`` is out of range.
        """
        if not 0 <= index < len(self.tiles):
            raise DcrValueError(
                f"subregion index out of range; the plan has {len(self.tiles)} subregions",
                index=index,
            )
        prepared = self.prepared
        bbox = self.solvedBox(index)
        inner = bbox.slices(prepared.bbox)
        inputs = []
        for inp in prepared.inputs:
            # The zenith directions of all subregions, measured on the first task and
            # shared by the later ones (the copies below share the dict; pickled tasks
            # carry it).
            inp.zenithAt(bbox, lambda: [self.solvedBox(i) for i in range(len(self.tiles))])
            inputs.append(inp.cutTo(bbox))
        model = self.model
        cut = DcrModel(
            [Image(image.array[inner], bbox=bbox) for image in model],
            filterInfo=model.filter,
            psf=model.psf,
            variance=Image(model.variance.array[inner], bbox=bbox),
            photoCalib=model.photoCalib,
        )
        return SubregionTask(
            index=index,
            count=len(self.tiles),
            tile=self.tiles[index],
            bbox=bbox,
            config=self.config,
            prepared=dataclasses.replace(
                prepared, inputs=inputs, bbox=bbox, coadd=prepared.coadd[bbox]
            ),
            model=cut,
            modelWeights=None if self.modelWeights is None else self.modelWeights[inner],
        )
