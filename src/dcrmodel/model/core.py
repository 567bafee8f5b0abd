"""The DCR model of the sky: the container and the API of `DcrModel`.

A `DcrModel` holds one image of the true, unrefracted sky per *subfilter* (equal-width
wavelength slices of a band), on a common pixel grid, with a common mask and variance.
It forward-models a visit: each subfilter image is moved by that subfilter's differential
chromatic refraction in the visit (``dcrmodel.physics.dcr.calculateDcr``,
``dcrmodel.model.shift.applyDcr``)
and the shifted images are summed into a DCR-matched template
(`DcrModel.buildMatchedTemplate`, `DcrModel.buildMatchedExposure`; the machinery is in
`dcrmodel.model.templates`).

It also carries the conditioning steps that the iterative forward-modelling assembly of the
model uses between iterations (DMTN-037): averaging two iterations' solutions with a gain
(`DcrModel.conditionDcrModel`), limiting the change of a subfilter between iterations
(`DcrModel.regularizeModelIter`) and between subfilters (`DcrModel.regularizeModelFreq`),
both through `DcrModel.applyImageThresholds`, which ignores isolated noisy pixels by a
binary opening (erosion then dilation) of the flagged pixels (implemented in
`dcrmodel.model.conditioning`).

The public names, arguments and documented behaviour follow ``lsst.ip.diffim.DcrModel``;
where its documentation is silent the choices made here are stated in the Notes of each
method.

References
----------
I. Sullivan, DMTN-037, "DCR-matched template generation", https://dmtn-037.lsst.io
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from astropy.wcs import WCS

from ..errors import DcrTypeError
from ..image import (
    Box,
    Exposure,
    Filter,
    Image,
    Mask,
    MaskedImage,
    PhotoCalib,
    Psf,
    StatisticsControl,
)
from . import conditioning, visitgrid
from .checks import (
    assignedRegion,
    checkExposureBand,
    checkNewImage,
    checkRegion,
    ownPixels,
    requireFilter,
    subfilterIndex,
)
from .construction import (
    bandArgument,
    checkHandleIds,
    checkRunIdentities,
    checkSubfilterExposures,
    coaddArguments,
    dataRefGetter,
    exposureArguments,
    handlesBySubfilter,
    modelParts,
    readSubfilters,
)
from .templates import (
    DEFAULT_PSF_DAMPING,
    DEFAULT_PSF_MAX_GAIN,
    PSF_DAMPED_PLANE,
    TemplateCache,
)
from .visitgrid import TEMPLATE_WARPING_KERNEL

# The template constants are defined in dcrmodel.model.templates and handed on here.
__all__ = ["DcrModel", "PSF_DAMPED_PLANE", "DEFAULT_PSF_DAMPING", "DEFAULT_PSF_MAX_GAIN"]

# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------


class DcrModel:
    """A model of the true sky after correcting chromatic effects.

    The model holds one image per subfilter of a band, all on the same box of the parent
    pixel grid, plus a common mask and a common variance. It can be forward-modelled to
    produce Differential Chromatic Refraction (DCR) matched templates for a visit, and
    provides the utilities that condition the model during its iterative assembly.

    Parameters
    ----------
    modelImages : list of dcrmodel.image.Image
        One image per subfilter, bluest first, all with the same box. The images are
        kept, not copied (the model owns them, as the reference's does): the conditioning
        methods and ``model[k] = ...`` work on them. An image whose pixels are those of an
        earlier subfilter (the same image or array given twice, as in ``[a] * 3``) is
        copied, so that every subfilter, and the variance, owns its pixels.
        2-D numpy arrays are accepted and placed on the box of the first image (at the
        origin ``(0, 0)`` if the first is an array too).
    filterInfo : dcrmodel.image.Filter or str, optional
        The band (effective wavelength and bandwidth in nm), or the name of a Rubin band.
        Required for any calculation of DCR, including matched templates.
    psf : dcrmodel.image.Psf, optional
        Point spread function of the model.
    mask : dcrmodel.image.Mask, optional
        Common mask of the subfilter images; same box.
    variance : dcrmodel.image.Image, optional
        Common variance of each subfilter image (counts²); same box.
    photoCalib : dcrmodel.image.PhotoCalib, optional
        Calibration from counts to nJy.
    wcs : astropy.wcs.WCS, optional
        Celestial WCS of the model's pixel grid (0-based parent pixels to ICRS).
    effectiveWavelength, bandwidth : float, optional
        Keyword only: the band's effective wavelength and full width in nm (the reference
        pipelines' keywords), in place of ``filterInfo``; both or neither. They make
        ``Filter("custom", effectiveWavelength, bandwidth)``.

    Raises
    ------
    DcrValueError
        If there are no subfilter images, or a subfilter image (or the variance) holds NaN
        or infinite values in pixels that no bad mask plane flags, or ``filterInfo`` is
        given with ``effectiveWavelength`` or ``bandwidth``.
    DcrMetadataError
        If only one of ``effectiveWavelength`` and ``bandwidth`` is given.
    DcrShapeError
        If the subfilter images, the mask and the variance do not share one box.
    DcrTypeError
        If an argument has the wrong type.

    Examples
    --------
    >>> import numpy as np
    >>> from dcrmodel.image import Filter, MaskedImage
    >>> coadd = MaskedImage.fromArrays(np.ones((8, 8)), variance=np.full((8, 8), 3.0))
    >>> model = DcrModel.fromImage(coadd, 3, filterInfo=Filter("g", 480.0, 150.0))
    >>> len(model), round(float(model[-1].array[0, 0]), 4), float(model.variance.array[0, 0])
    (3, 0.3333, 1.0)
    >>> model.getReferenceImage().shape
    (8, 8)

    Notes
    -----
    Non-finite values in pixels flagged by a bad mask plane (``BAD``, ``SAT``, ``NO_DATA``,
    ``EDGE``, ``CR``: `StatisticsControl` defaults) are set to 0 in place, in the images and
    the variance, so that no NaN is spread over the template by the spline shifts.
    """

    def __init__(
        self, modelImages: Sequence[Image], filterInfo: Filter | str | None = None,
        psf: Psf | None = None, mask: Mask | None = None, variance: Image | None = None,
        photoCalib: PhotoCalib | None = None, wcs: WCS | None = None, *,
        effectiveWavelength: float | None = None, bandwidth: float | None = None,
    ) -> None:
        images, variance, band = modelParts(modelImages, filterInfo, psf, mask, variance,
                                            photoCalib, wcs, effectiveWavelength, bandwidth)
        self._modelImages: list[Image] = images
        self._filter = band
        self._psf = psf
        self._mask = mask
        self._variance = variance
        self._photoCalib = photoCalib
        self._wcs = wcs
        self._templateCache = TemplateCache()

    # ------------------------------------------------------------------ construction

    @classmethod
    def fromImage(
        cls, maskedImage: MaskedImage | Exposure, dcrNumSubfilters: int,
        filterInfo: Filter | str | None = None, psf: Psf | None = None,
        photoCalib: PhotoCalib | None = None, wcs: WCS | None = None, *,
        effectiveWavelength: float | None = None, bandwidth: float | None = None,
    ) -> DcrModel:
        """Initialize a DcrModel by dividing a coadd between the subfilters.

        Parameters
        ----------
        maskedImage : dcrmodel.image.MaskedImage or dcrmodel.image.Exposure
            Input coadded image (counts) to divide equally between the subfilters. An
            Exposure also provides the defaults of ``filterInfo``, ``psf``, ``photoCalib``
            and ``wcs``.
        dcrNumSubfilters : int
            Number of subfilters used to model chromatic effects within a band.
        filterInfo : dcrmodel.image.Filter or str, optional
            The band (nm). Required for any calculation of DCR, including matched templates.
        psf : dcrmodel.image.Psf, optional
            Point spread function of the model.
        photoCalib : dcrmodel.image.PhotoCalib, optional
            Calibration to convert counts to nJy.
        wcs : astropy.wcs.WCS, optional
            Celestial WCS of the coadd's pixel grid.
        effectiveWavelength, bandwidth : float, optional
            Keyword only: the band in nm, in place of ``filterInfo`` (both or neither), as
            for `DcrModel`; named as an Exposure's filter, if it has one, else "custom".

        Returns
        -------
        dcrModel : DcrModel
            Each subfilter image is ``image / dcrNumSubfilters``; the mask is a copy of the
            coadd's; the variance is ``variance / dcrNumSubfilters``.

        Raises
        ------
        DcrValueError
            (a ``ValueError``) If there are NaN or infinite values in pixels of the image or
            the variance that no bad mask plane flags (the message gives their number), or
            ``dcrNumSubfilters`` < 1, or ``filterInfo`` is given with a wavelength.
        DcrMetadataError
            If only one of ``effectiveWavelength`` and ``bandwidth`` is given.
        DcrTypeError
            If ``maskedImage`` is not a MaskedImage or Exposure.

        Notes
        -----
        The subfilters are taken as independent, so each gets 1/N of the coadd's variance:
        the sum of the N subfilter images (a template) has the coadd's variance again.
        The coadd's own inputs are not changed. Non-finite values in pixels flagged by a
        bad mask plane (`StatisticsControl` defaults: ``BAD``, ``SAT``, ``NO_DATA``,
        ``EDGE``, ``CR``) are set to 0 in the model's image and variance.
        """
        return cls(**coaddArguments(maskedImage, dcrNumSubfilters, filterInfo, psf, photoCalib,
                                    wcs, effectiveWavelength, bandwidth))

    @classmethod
    def fromDataRef(
        cls, dataRef: Any, datasetType: str = "dcrCoadd", numSubfilters: int | None = None,
        **kwargs: Any,
    ) -> DcrModel:
        """Load an existing DcrModel from a data reference or a data butler.

        Parameters
        ----------
        dataRef : object
            Either a data butler (``lsst.daf.butler.Butler``, or any object whose ``get``
            takes ``dataId`` and has no ``numSubfilters`` keyword), called once per
            subfilter as ``get(datasetType, subfilter=k, **kwargs)``; or a data reference
            with a method ``get(datasetType, subfilter=k, numSubfilters=N, **kwargs)``
            (for example ``dcrmodel.fits.model.DcrModelDataRef`` over a directory of model
            files). Each call returns the `Exposure` of subfilter ``k``.
        datasetType : str, optional
            Name of the model's dataset, {"dcrCoadd", "dcrCoadd_sub"}.
        numSubfilters : int, optional
            Number of subfilters used to model chromatic effects within a band. None: the
            data reference's own ``numSubfilters`` attribute.
        **kwargs
            Additional keyword arguments passed on to ``dataRef.get``: for a butler the
            data ID (``dataId={...}`` and/or keys such as ``tract``, ``patch``, ``band``,
            ``skymap``), ``collections``, and ``bbox`` (passed as the read parameter);
            for a data reference for example tract, patch, bbox.

        Returns
        -------
        dcrModel : DcrModel
            Best fit model of the true sky after correcting chromatic effects. Its filter,
            PSF, photometric calibration and WCS are the first ones the subfilter exposures
            carry; its mask and variance are those of subfilter 0.

        Raises
        ------
        DcrValueError
            If ``numSubfilters`` is None and the data reference has no ``numSubfilters``, or
            it is less than 1.
        DcrTypeError
            If ``dataRef`` has no ``get`` method or ``get`` does not return an Exposure.
        DcrShapeError
            If the subfilter exposures do not share one box.
        DcrMetadataError
            If the exposures carry different model identities (``DCR-RUN``); (from a
            butler) if they do not form one model: see `fromQuantum`.
        """
        get, n = dataRefGetter(dataRef, datasetType, numSubfilters)
        exposures, fromButler = readSubfilters(get, datasetType, n, kwargs)
        source = f"dataRef.get({datasetType!r}, ...)"
        arguments = exposureArguments(exposures, source)
        if fromButler:
            checkSubfilterExposures(exposures, arguments["filterInfo"], source)
        checkRunIdentities(exposures, source)
        return cls(**arguments)

    @classmethod
    def fromQuantum(
        cls, availableCoaddRefs: Mapping[Any, Any] | Iterable[Any],
        effectiveWavelength: float | None = None, bandwidth: float | None = None,
        numSubfilters: int | None = None,
    ) -> DcrModel:
        """Load an existing DcrModel from a set of dataset handles.

        Parameters
        ----------
        availableCoaddRefs : dict or iterable of handles
            Handles of the subfilter coadds of one patch (the values are used when it is a
            dict), such as the data butler's ``DeferredDatasetHandle``. Each has
            ``dataId["subfilter"]`` (its subfilter index) and a ``get()`` method returning
            its `Exposure`.
        effectiveWavelength, bandwidth : float, optional
            The band's effective wavelength and width in nm (the reference's extra
            arguments); when given they define the model's band, else the exposures' own.
        numSubfilters : int, optional
            The number of subfilters expected; checked against the handles.

        Returns
        -------
        dcrModel : DcrModel
            Best fit model of the true sky after correcting chromatic effects, with its
            subfilters in the order of their index.

        Raises
        ------
        DcrValueError
            If there are no handles, a subfilter index is repeated, the indices are not
            exactly 0 .. N-1 (the message names the missing ones), N is not
            ``numSubfilters``, or the handles' data IDs name different bands, skymaps,
            tracts or patches. Checked before any ``get()``.
        DcrMetadataError
            If the exposures do not form one model: a ``DCR-NSUB`` that is not N, a
            ``DCR-SUBF`` that is not the handle's subfilter, a ``DCR-WMIN``/``DCR-WMAX``
            that is not the subfilter's range of the band, or two bands.
        DcrTypeError
            If a handle lacks ``dataId["subfilter"]`` or ``get``, or ``get()`` does not
            return an Exposure.
        """
        handles = handlesBySubfilter(availableCoaddRefs)
        checkHandleIds(handles, numSubfilters)
        exposures = [handle.get() for handle in handles]
        arguments = exposureArguments(exposures, "handle.get()")
        checkSubfilterExposures(exposures, arguments["filterInfo"], "handle.get()")
        arguments["filterInfo"] = bandArgument(
            arguments["filterInfo"], effectiveWavelength, bandwidth
        )
        return cls(**arguments)

    # ------------------------------------------------------------------ container protocol

    def __len__(self) -> int:
        """Return the number of subfilters."""
        return len(self._modelImages)

    def __getitem__(self, subfilter: int) -> Image:
        """Return the model image of one subfilter (negative indices count from the end).

        Parameters
        ----------
        subfilter : int
            Index of the subfilter, ``-N .. N-1``.

        Returns
        -------
        modelImage : dcrmodel.image.Image
            The image itself, not a copy.
        """
        return self._modelImages[subfilterIndex(subfilter, len(self._modelImages))]

    def __setitem__(self, subfilter: int, maskedImage: Image | np.ndarray) -> None:
        """Replace the model image of one subfilter.

        Parameters
        ----------
        subfilter : int
            Index of the subfilter, ``-N .. N-1``.
        maskedImage : dcrmodel.image.Image or numpy.ndarray
            The new image, with the model's box (an array must have its shape). Kept, not
            copied, unless its pixels are another subfilter's or the variance's (then a
            copy is kept: ``model[1] = model[0]`` gives subfilter 1 the values of 0).

        Raises
        ------
        DcrShapeError
            If the image's box (or the array's shape) differs from the model's.
        DcrValueError
            If it holds NaN or infinite values in pixels no bad mask plane flags.
        """
        index = subfilterIndex(subfilter, len(self._modelImages))
        image = checkNewImage(maskedImage, self.bbox, self._mask, subfilter)
        others = [im for k, im in enumerate(self._modelImages) if k != index]
        self._modelImages[index] = ownPixels(image, [*others, self._variance])
        self._templateCache.modelReplaced()

    def __iter__(self) -> Iterator[Image]:
        """Iterate over the subfilter images, bluest first."""
        return iter(list(self._modelImages))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # Caches: recomputed on demand, not shipped.
        state["_templateCache"] = self._templateCache.withoutCaches()
        return state

    def __repr__(self) -> str:
        band = self._filter.bandName if self._filter is not None else None
        return f"DcrModel(dcrNumSubfilters={len(self)}, bbox={self.bbox!r}, filter={band!r})"

    # ------------------------------------------------------------------ attributes

    @property
    def modelImages(self) -> list[Image]:
        """The list of subfilter images, bluest first (the list itself)."""
        return self._modelImages

    @property
    def dcrNumSubfilters(self) -> int:
        """Number of subfilters used to model chromatic effects within the band."""
        return len(self._modelImages)

    @property
    def bbox(self) -> Box:
        """Return the common bounding box of each subfilter image."""
        return self._modelImages[0].bbox

    @property
    def filter(self) -> Filter | None:
        """Return the filter of the model (None if unknown)."""
        return self._filter

    @property
    def mask(self) -> Mask | None:
        """Return the common mask of each subfilter image."""
        return self._mask

    @property
    def psf(self) -> Psf | None:
        """Return the psf of the model."""
        return self._psf

    @property
    def variance(self) -> Image | None:
        """Return the common variance of each subfilter image (counts²)."""
        return self._variance

    @property
    def photoCalib(self) -> PhotoCalib | None:
        """Return the photometric calibration of the model (counts to nJy)."""
        return self._photoCalib

    @property
    def wcs(self) -> WCS | None:
        """Return the celestial WCS of the model's pixel grid."""
        return self._wcs

    @property
    def effectiveWavelength(self) -> float:
        """Return the effective wavelength of the model's band, in nm.

        Raises
        ------
        DcrMetadataError
            If the model has no filter.
        """
        return float(requireFilter(self._filter, "effective wavelength").effectiveWavelength)

    @property
    def bandwidth(self) -> float:
        """Return the full width of the model's band, in nm.

        Raises
        ------
        DcrMetadataError
            If the model has no filter.
        """
        return float(requireFilter(self._filter, "bandwidth").bandwidth)

    # ------------------------------------------------------------------ regions

    def getReferenceImage(self, bbox: Box | None = None) -> np.ndarray:
        """Calculate a reference image from the average of the subfilter images.

        Parameters
        ----------
        bbox : dcrmodel.image.Box, optional
            Sub-region of the model (parent pixels). Returns the entire image if None.

        Returns
        -------
        refImage : numpy.ndarray
            The reference image with no chromatic effects applied: the mean of the
            subfilter images over ``bbox``, a new array.

        Raises
        ------
        DcrShapeError
            If ``bbox`` is not inside the model's box.
        """
        bbox = self.bbox if bbox is None else checkRegion(bbox, self.bbox)
        return conditioning.referenceImage(self._modelImages, bbox.slices(self.bbox))

    def assign(self, dcrSubModel: DcrModel, bbox: Box | None = None) -> None:
        """Update a sub-region of the DcrModel with new values.

        Parameters
        ----------
        dcrSubModel : DcrModel
            New model of the true scene after correcting chromatic effects.
        bbox : dcrmodel.image.Box, optional
            Sub-region of the model. Defaults to the bounding box of ``dcrSubModel``.

        Raises
        ------
        DcrValueError
            (a ``ValueError``) If the new model has a different number of subfilters.
        DcrShapeError
            If ``bbox``, this model's box and the sub-model's box have no pixel in common.

        Notes
        -----
        The subfilter images are copied over the overlap of ``bbox``, this model's box and
        the sub-model's box. The mask and the variance, which describe the input data
        rather than the solution, are not changed.
        """
        if not isinstance(dcrSubModel, DcrModel):
            raise DcrTypeError(
                "dcrSubModel must be a DcrModel", dcrSubModel=type(dcrSubModel).__name__
            )
        region = assignedRegion(len(dcrSubModel), len(self), bbox, self.bbox, dcrSubModel.bbox)
        target = region.slices(self.bbox)
        source = region.slices(dcrSubModel.bbox)
        for model, subModel in zip(self._modelImages, dcrSubModel.modelImages, strict=True):
            model.array[target] = subModel.array[source]
        self._templateCache.modelChanged()

    # ------------------------------------------------------------------ templates

    def buildMatchedTemplate(
        self, exposure: Exposure | None = None, order: int = 3, visitInfo: Any = None,
        bbox: Box | None = None, wcs: WCS | None = None, mask: Mask | None = None,
        splitSubfilters: bool = True, splitThreshold: float = 0.0, amplifyModel: float = 1.0,
        *, engine: str | None = None, mode: str | None = None, psf: Psf | None = None,
        matchPsf: bool = True, psfDamping: float = DEFAULT_PSF_DAMPING,
        psfMaxGain: float | None = DEFAULT_PSF_MAX_GAIN,
        warpingKernel: str = TEMPLATE_WARPING_KERNEL,
    ) -> Image:
        """Create a DCR-matched template image for an exposure.

        Parameters
        ----------
        exposure : dcrmodel.image.Exposure, optional
            The input exposure to build a matched template for. May be omitted if all of
            the metadata is supplied separately.
        order : int, optional
            Interpolation (spline) order of the DCR shift, 0 to 5 (spline engine only).
        visitInfo : dcrmodel.physics.observation.VisitInfo, optional
            Metadata for the exposure. Ignored if exposure is set.
        bbox : dcrmodel.image.Box, optional
            Sub-region of the model (parent pixels). Ignored if exposure is set.
        wcs : astropy.wcs.WCS, optional
            Coordinate system definition (wcs) for the exposure. Ignored if exposure is set.
        mask : dcrmodel.image.Mask, optional
            Reference mask to use for the template image. Checked to cover the template's
            box. The template image itself does not depend on it; when the template is
            PSF-matched and the damping of the matching (see Notes) loses significant light,
            the affected pixels are flagged in its ``PSF_DAMPED`` plane (added if missing).
        splitSubfilters : bool, optional
            Represent each subfilter's light by its spread between the DCR of the
            subfilter's two wavelength edges rather than by one shift at its midpoint:
            the exact uniform smear between the two edge shifts (Fourier engine, default) or
            the reference's average of two copies shifted to the quarter points between
            them (spline engine, or ``mode="split"``). Default: True.
        splitThreshold : float, optional
            Minimum DCR difference (pixels) between the two edges of a subfilter required to
            use ``splitSubfilters``; below it, or at it, the subfilter is shifted once by the
            mean of its edge shifts.
        amplifyModel : float, optional
            Multiplication factor to amplify differences between model planes, used to
            speed the convergence of iterative forward modelling: each subfilter image
            ``m_k`` is replaced by ``ref + amplifyModel * (m_k - ref)``, ``ref`` being the
            reference image (`getReferenceImage`).
        engine : {"fourier", "spline"}, optional
            Keyword only. ``"fourier"``: exact phase ramps (and smears) on the model's
            Fourier transforms, computed once and cached on the model (``order`` is not
            used). ``"spline"``: the reference, ``dcrmodel.model.shift.applyDcr`` with a spline of
            ``order``. None (default): ``"fourier"``, except for a model whose PSF is
            undersampled (FWHM below 2 pixels), where phase ramps ring and the spline is the
            more accurate.
        mode : {"smear", "split", "mean"}, optional
            Keyword only. How a subfilter's light is represented, overriding
            ``splitSubfilters``: ``"smear"`` (Fourier engine only), ``"split"`` or
            ``"mean"``. None (default): as described under ``splitSubfilters``.
        psf : dcrmodel.image.Psf, optional
            Keyword only. The PSF to give the template (None: the exposure's PSF, if any).
        matchPsf : bool, optional
            Keyword only. Give the template the target PSF (``psf`` or the exposure's) when
            both it and the model's PSF are known (default True). False, or either PSF
            unknown: the template is at the model's PSF.
        psfDamping : float, optional
            Keyword only. Damping level of the PSF matching relative to the largest value of
            the model's optical transfer function (`dcrmodel.psf.matching.psfMatchingTransfer`).
        psfMaxGain : float or None, optional
            Keyword only. Largest gain ``|H|`` of the PSF matching (default 2): where the
            visit is sharper than the model, larger gains put more of the model's noise into
            the template than they restore of the visit's light (a model of ``J`` visits has
            about ``1 / sqrt(J)`` of a visit's noise). None: damping only.
        warpingKernel : str, optional
            Keyword only. Kernel of the warp onto a visit on another pixel grid
            (`dcrmodel.warp.WARPING_KERNELS`; unused on the model's grid). Default
            ``"lanczos4"`` (`dcrmodel.model.TEMPLATE_WARPING_KERNEL`); ``"lanczos3"`` is the
            Rubin pipelines' kernel. A wider Lanczos kernel interpolates the well-sampled
            template more exactly at a higher cost: on simulated detector-frame fields
            ``"lanczos4"`` gave 1.5-9 % lower residuals against the truth than
            ``"lanczos3"`` at all 9 held-out visits, ``"lanczos5"`` 3-12 %, for a later
            template costing about 1.3 and 1.5 times one on the grid, against 1.2 times
            (``benchmarks/README.md``, bench_geometry.py).

        Returns
        -------
        templateImage : dcrmodel.image.Image
            The DCR-matched template over the exposure's box: the sum over subfilters of the
            model moved by each subfilter's DCR in the visit (and, PSF-matched, re-blurred
            from the model's PSF to the visit's at the subfilter's central wavelength). Same
            dtype as the model.

        Raises
        ------
        DcrMetadataError
            (a ``ValueError``) If neither exposure nor all of visitInfo, bbox and wcs are
            set (the message names what is missing), if the exposure lacks a WCS or visit
            info, or if the model has no filter wavelengths.
        DcrShapeError
            If the template's box is not inside the model's box, or the mask does not
            cover it.
        DcrValueError, DcrConfigError, DcrTypeError
            For an impossible ``order``, ``splitThreshold``, ``amplifyModel``, ``engine``,
            ``mode``, ``psf`` or ``psfDamping``; a target PSF whose ``alpha`` is outside
            [-1, 1]; an exposure of another band than the model's (both named).

        Warns
        -----
        DcrPsfWarning
            Once per model, the first time a template's PSF matching is damped (the visit is
            sharper than the model somewhere in the band): the template misses part of the
            visit's high-frequency light there (flagged in ``PSF_DAMPED``).

        Notes
        -----
        The shift is measured at the centre of the template's box (``calculateDcr`` with
        ``bbox``). Each subfilter image is shifted over the template's box grown by the
        largest shift plus a margin (within the model's box), then cut to the box, so that
        the template does not depend on how the model was cut into regions; beyond the
        model's edges the edge pixels are repeated (``mode="nearest"``). The Fourier engine
        transforms the whole model (padded by repeating its edge pixels) once, caches the
        transforms until the model images change, and cuts each template to ``bbox``.

        PSF matching. The model's subfilter images are the sky seen through the model's PSF
        (`psf`). The visit sees subfilter ``k`` through its own PSF at the subfilter's
        central wavelength (size scaled by ``(lambda_k / lambda_eff) ** alpha``), so each
        subfilter's transfer is multiplied by ``OTF_visit,k / OTF_model``, damped where the
        model's OTF is too small to divide by (`dcrmodel.psf.matching.psfMatchingTransfer`).
        Where the visit is sharper than the model the damping removes light the model does
        not hold; the template then lacks, for each subfilter, the model convolved with the
        residual kernel of the matching. Pixels where the sum over subfilters of ``|model|``
        convolved with ``|residual kernel|`` (moved by the DCR) exceeds the noise (the
        exposure's standard deviation, else that of the template from the model's variance,
        else 1e-3 of the template's peak) are flagged.

        A visit on another pixel grid (its WCS puts its box more than
        `dcrmodel.image.WCS_GRID_TOLERANCE` pixels from where the model's WCS does; any
        rotation, dither or distortion) gets its template forward-modelled on the model's
        grid, with the visit's DCR and PSF carried into the model's frame, and warped onto
        the visit's box with a Lanczos 4 kernel (``warpingKernel``,
        `dcrmodel.model.visitgrid`); ``mask`` is
        then on the visit's grid and gets ``NO_DATA`` where the model does not cover the
        visit, and the template is 0 there. A visit on the model's grid takes the path
        described above, unchanged.
        """
        checkExposureBand(self.filter, exposure, "buildMatchedTemplate")
        return visitgrid.buildMatchedTemplate(
            self, self._templateCache, exposure, order, visitInfo, bbox, wcs, mask,
            splitSubfilters, splitThreshold, amplifyModel, engine=engine, mode=mode, psf=psf,
            matchPsf=matchPsf, psfDamping=psfDamping, psfMaxGain=psfMaxGain,
            warpingKernel=warpingKernel,
        )

    def buildMatchedExposure(
        self, exposure: Exposure | None = None, visitInfo: Any = None, bbox: Box | None = None,
        wcs: WCS | None = None, mask: Mask | None = None, order: int = 3,
        splitSubfilters: bool = True, splitThreshold: float = 0.0,
        *, engine: str | None = None, mode: str | None = None, psf: Psf | None = None,
        matchPsf: bool = True, psfDamping: float = DEFAULT_PSF_DAMPING,
        psfMaxGain: float | None = DEFAULT_PSF_MAX_GAIN,
        warpingKernel: str = TEMPLATE_WARPING_KERNEL,
    ) -> Exposure:
        """Create an exposure from a template image (a wrapper of `buildMatchedTemplate`).

        Parameters
        ----------
        exposure : dcrmodel.image.Exposure, optional
            The input exposure to build a matched template for. May be omitted if all of
            the metadata is supplied separately.
        visitInfo : dcrmodel.physics.observation.VisitInfo, optional
            Metadata for the exposure. Ignored if exposure is set.
        bbox : dcrmodel.image.Box, optional
            Sub-region of the model. Ignored if exposure is set.
        wcs : astropy.wcs.WCS, optional
            Coordinate system definition (wcs) for the exposure. Ignored if exposure is set.
        mask : dcrmodel.image.Mask, optional
            Reference mask to use for the template image. None: the model's mask.
        order, splitSubfilters, splitThreshold
            Passed to `buildMatchedTemplate`.
        engine, mode, psf, matchPsf, psfDamping, psfMaxGain, warpingKernel
            Keyword only; passed to `buildMatchedTemplate`.

        Returns
        -------
        templateExposure : dcrmodel.image.Exposure
            The DCR-matched template over the exposure's box, with the visit's WCS and
            visit info, the model's filter and photometric calibration, and the PSF of the
            template: the target PSF when it was PSF-matched, else the model's.

        Raises
        ------
        DcrMetadataError, DcrShapeError, DcrValueError
            As `buildMatchedTemplate`.

        Notes
        -----
        - Mask: a copy of ``mask`` (or of the model's mask) cut to the box; all zero if the
          model has none. Pixels where the PSF matching was damped enough to lose light
          above the noise are flagged in its ``PSF_DAMPED`` plane (see
          `buildMatchedTemplate`).
        - Variance: the template is the sum of ``N`` subfilter images, each with the
          model's (per-subfilter) variance and taken as independent, so its variance is
          ``N`` times the model's. For a model made by `fromImage` this is the variance of
          the coadd it was made from. The correlation the interpolating shifts (and the
          PSF matching) introduce between neighbouring pixels is not tracked. If the model
          has no variance the exposure gets the unit variance of a `MaskedImage` without
          one.
        - A visit on another pixel grid (see `buildMatchedTemplate`) gets the template
          forward-modelled on the model's grid and warped onto its WCS and box (Lanczos 4,
          `dcrmodel.model.visitgrid`): the variance is warped as ``sum w^2 var``, the
          model's mask (or ``mask``, then on the visit's grid) is carried with every plane
          grown by the kernel's reach, and ``NO_DATA`` flags the visit pixels the model
          does not cover; the PSF is the visit's when PSF-matched (the matching is done on
          the model's grid, to the visit's PSF carried there by the local Jacobian), else
          the model's carried onto the visit's grid. For several models (patches), see
          `dcrmodel.model.buildMatchedExposureFromModels`.
        """
        checkExposureBand(self.filter, exposure, "buildMatchedExposure")
        return visitgrid.buildMatchedExposure(
            self, self._templateCache, exposure, visitInfo, bbox, wcs, mask, order,
            splitSubfilters, splitThreshold, engine=engine, mode=mode, psf=psf,
            matchPsf=matchPsf, psfDamping=psfDamping, psfMaxGain=psfMaxGain,
            warpingKernel=warpingKernel,
        )

    # ------------------------------------------------------------------ conditioning

    def calculateNoiseCutoff(
        self, image: Image | np.ndarray, statsCtrl: StatisticsControl | None, bufferSize: int,
        convergenceMaskPlanes: str | Sequence[str] = "DETECTED", mask: Mask | None = None,
        bbox: Box | None = None, numSigma: float = 1.0,
    ) -> float:
        """Calculate the background noise level of an image.

        Parameters
        ----------
        image : dcrmodel.image.Image or numpy.ndarray
            The input image to evaluate the background noise properties of (counts). An
            array is taken to cover ``bbox`` (default: the model's box).
        statsCtrl : dcrmodel.image.StatisticsControl or None
            Which mask planes are bad, and the sigma clipping. None: the defaults.
        bufferSize : int
            Number of additional pixels to exclude from the edges of the bounding box.
        convergenceMaskPlanes : str or list of str, optional
            Mask planes that mark sources (default ``DETECTED``); their pixels are excluded.
        mask : dcrmodel.image.Mask, optional
            Optional alternate mask; default the model's mask.
        bbox : dcrmodel.image.Box, optional
            Sub-region to calculate the noise level over. Default: the image's box (for an
            Image) or the model's box.
        numSigma : float, optional
            The cutoff in units of the noise's standard deviation.

        Returns
        -------
        noiseCutoff : float
            The threshold value to treat pixels as noise in an image (counts).

        Raises
        ------
        DcrValueError
            If ``bufferSize`` leaves no pixels, or no background pixel remains.
        DcrShapeError
            If the image or the mask does not cover ``bbox``.
        DcrConfigError
            If a mask plane is unknown (from the mask) or the arguments are malformed.

        Notes
        -----
        The background pixels are those of ``bbox`` shrunk by ``bufferSize`` on every side
        that are finite, not in a bad mask plane of ``statsCtrl`` and not in a convergence
        mask plane. The cutoff is ``numSigma`` times their sigma-clipped standard deviation
        (``statsCtrl.clippedStats``: ``numSigmaClip`` and ``numIter``), so that a few
        unflagged faint sources do not raise it. Without any mask every pixel counts.
        """
        return conditioning.calculateNoiseCutoff(
            self, image, statsCtrl, bufferSize, convergenceMaskPlanes, mask, bbox, numSigma
        )

    def conditionDcrModel(
        self, modelImages: Sequence[Image | np.ndarray], bbox: Box, gain: float = 1.0
    ) -> None:
        """Average two iterations' solutions to reduce oscillations.

        Parameters
        ----------
        modelImages : list of dcrmodel.image.Image or numpy.ndarray
            The new DCR model images from the current iteration, one per subfilter, covering
            ``bbox``. The values will be modified in place.
        bbox : dcrmodel.image.Box
            Sub-region of the model.
        gain : float, optional
            Relative weight to give the new solution when updating the model. Defaults to
            1.0, which gives equal weight to both solutions.

        Raises
        ------
        DcrValueError
            If the number of images differs from the model's, or ``gain`` is not a positive
            finite number.
        DcrShapeError
            If an image does not cover ``bbox`` or ``bbox`` is outside the model.

        Notes
        -----
        ``new <- (gain * new + old) / (1 + gain)`` pixel by pixel, ``old`` being this model's
        image of the same subfilter over ``bbox``.
        """
        conditioning.conditionDcrModel(self, modelImages, bbox, gain)

    def regularizeModelIter(
        self, subfilter: int, newModel: Image | np.ndarray, bbox: Box,
        regularizationFactor: float, regularizationWidth: int = 2,
    ) -> None:
        """Restrict large variations in the model between iterations.

        Parameters
        ----------
        subfilter : int
            Index of the current subfilter within the full band.
        newModel : dcrmodel.image.Image or numpy.ndarray
            The new DCR model for one subfilter from the current iteration, covering
            ``bbox``. Values in newModel that are extreme compared with the last iteration
            are modified in place.
        bbox : dcrmodel.image.Box
            Sub-region of the model.
        regularizationFactor : float
            Maximum relative change of the model allowed between iterations (>= 1).
        regularizationWidth : int, optional
            Minimum radius of a region to include in regularization, in pixels.

        Raises
        ------
        DcrConfigError
            If ``regularizationFactor`` < 1 or ``regularizationWidth`` is not an integer >= 0.
        DcrShapeError
            If ``newModel`` does not cover ``bbox`` or ``bbox`` is outside the model.

        Notes
        -----
        With ``old`` this model's image of the subfilter and ``f`` the factor, the new value
        may grow to at most ``f * |old|``; where ``old`` is positive it may not fall below
        ``old / f``, and where ``old`` is negative or zero not below ``-f * |old|`` (a relative
        bound on a value near zero or below it is only meaningful in magnitude). Pixels
        outside these limits are clamped to them by `applyImageThresholds`, which leaves
        regions narrower than ``regularizationWidth`` alone.
        """
        conditioning.regularizeModelIter(
            self, subfilter, newModel, bbox, regularizationFactor, regularizationWidth
        )

    def regularizeModelFreq(
        self, modelImages: Sequence[Image | np.ndarray], bbox: Box,
        statsCtrl: StatisticsControl | None, regularizationFactor: float,
        regularizationWidth: int = 2, mask: Mask | None = None,
        convergenceMaskPlanes: str | Sequence[str] = "DETECTED",
    ) -> None:
        """Restrict large variations in the model between subfilters.

        Parameters
        ----------
        modelImages : list of dcrmodel.image.Image or numpy.ndarray
            The new DCR model images from the current iteration, one per subfilter, covering
            ``bbox``. The values will be modified in place.
        bbox : dcrmodel.image.Box
            Sub-region of the model.
        statsCtrl : dcrmodel.image.StatisticsControl or None
            Statistics control (bad mask planes, clipping) for the noise level.
        regularizationFactor : float
            Maximum relative change of the model allowed between subfilters (>= 1).
        regularizationWidth : int, optional
            Minimum radius of a region to include in regularization, and the standard
            deviation of the smoothing Gaussian, in pixels.
        mask : dcrmodel.image.Mask, optional
            Optional alternate mask; default the model's mask.
        convergenceMaskPlanes : str or list of str, optional
            Mask planes of the sources, excluded from the noise estimate.

        Raises
        ------
        DcrValueError
            If the number of images differs from the model's.
        DcrConfigError
            If ``regularizationFactor`` < 1, ``regularizationWidth`` < 0, or a mask plane is
            unknown.
        DcrShapeError
            If an image or the mask does not cover ``bbox``.

        Notes
        -----
        This implementation of frequency regularization restricts each subfilter image to
        be a smoothly-varying function times a reference image (DMTN-037, and the reference
        pipelines since December 2018). With ``m_k`` the ``N`` new images over ``bbox``,
        ``G_s`` a Gaussian filter of standard deviation ``s = regularizationWidth`` pixels
        (edges mirrored; 0 does not smooth) and ``f = regularizationFactor``:

        1. Reference ``r = mean_k m_k``; offset ``c = 3 sigma``, ``sigma`` the rms over ``k``
           of the noise of ``G_s(m_k)`` (`calculateNoiseCutoff`, one sigma, over ``bbox``
           less a border of up to 5 pixels).
        2. Clamp each ``m_k`` to ``[R / sqrt(f), R * sqrt(f)]``, ``R = G_s(r) + c`` (where
           ``R > 0``), with `applyImageThresholds` (regions narrower than
           ``regularizationWidth`` in radius, such as isolated noisy pixels, are spared).
        3. Colour ratio ``q_k = N n_k / sum_j n_j``, ``n_k = G_s(m'_k) + c`` (``m'_k``
           clamped, ``n_k`` floored at ``1e-6 c``): smoothed subfilter over smoothed
           reference, both offset so that ``q_k`` tends to 1 where there is little light.
        4. Unsharp mask: ``q'_k = q_k + 3 (q_k - G_{s/3}(q_k))``; then ``m_k <- r q'_k``.

        As ``sum_k q'_k = N``, the sum over subfilters, which the visits constrain best, is
        unchanged (to rounding): only the colour is regularized. Chromatic sidelobes of
        degenerate solutions (a hole beside a source in one subfilter, a wing in another)
        and oscillations between subfilters are removed; a smoothly varying colour is kept.
        `dcrmodel.model.conditioning.regularizeModelFreq` says how this differs from the
        reference pipelines.
        """
        conditioning.regularizeModelFreq(
            self, modelImages, bbox, statsCtrl, regularizationFactor, regularizationWidth,
            mask, convergenceMaskPlanes,
        )

    @staticmethod
    def applyImageThresholds(
        image: np.ndarray | Image, highThreshold: np.ndarray | float | None = None,
        lowThreshold: np.ndarray | float | None = None, regularizationWidth: int = 2,
    ) -> None:
        """Restrict image values to be between upper and lower limits.

        This method flags all pixels in an image that are outside of the given threshold
        values. The threshold values are taken from a reference image, so noisy pixels are
        likely to get flagged. In order to exclude those noisy pixels, the array of flags is
        eroded and dilated, which removes isolated pixels outside of the thresholds from the
        list of pixels to be modified. Pixels that remain flagged after this operation have
        their values set to the appropriate upper or lower threshold value.

        Parameters
        ----------
        image : numpy.ndarray or dcrmodel.image.Image
            The image to apply the thresholds to (floating point). The values will be
            modified in place.
        highThreshold : numpy.ndarray or float, optional
            Array of upper limit values for each pixel of image (same units as image).
        lowThreshold : numpy.ndarray or float, optional
            Array of lower limit values for each pixel of image.
        regularizationWidth : int, optional
            Minimum radius of a region to include in regularization, in pixels.

        Raises
        ------
        DcrShapeError
            If a threshold array does not match the image's shape.
        DcrTypeError
            If the image is not a floating-point 2-D array or Image.
        DcrConfigError
            If ``regularizationWidth`` is not an integer >= 0.
        DcrValueError
            If ``lowThreshold`` exceeds ``highThreshold`` in any pixel (the image is then
            left as it was).

        Notes
        -----
        The erosion and dilation use a disk of radius ``regularizationWidth``
        (``scipy.ndimage`` binary morphology): a flagged pixel is kept only if it lies in a
        flagged region that contains a whole disk of that radius, so isolated pixels and
        thin streaks are left as they are. Regions touching the image's edge are judged by
        their part inside the image. A width of 0 clamps every flagged pixel. NaN
        thresholds never flag.

        Examples
        --------
        >>> import numpy as np
        >>> image = np.zeros((9, 9))
        >>> image[0, 0] = 5.0  # an isolated pixel above the threshold
        >>> image[3:, 3:] = 5.0  # a region above the threshold
        >>> DcrModel.applyImageThresholds(image, highThreshold=1.0, regularizationWidth=1)
        >>> float(image[0, 0]), float(image[6, 6])
        (5.0, 1.0)
        """
        conditioning.applyImageThresholds(image, highThreshold, lowThreshold, regularizationWidth)
