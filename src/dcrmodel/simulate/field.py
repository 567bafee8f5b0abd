"""Synthetic skies with known truth: stars and galaxies observed through a refracting atmosphere.

This module simulates and writes a field; the pieces it composes live beside it:

- `dcrmodel.simulate.spectra`: photon spectra (`BlackbodySpectrum`, `PowerLawSpectrum`) and the
  `Bandpass`, sampled at many wavelengths (14 per intended subfilter by default, 42 for
  three subfilters);
- `dcrmodel.simulate.sources`: profiles, `SourceComponent`, `Source` and `meanWavelength`;
- `dcrmodel.simulate.seeing`: the seeing (`AtmosphericPsf`: Gaussian, Moffat or Kolmogorov,
  optionally scaling with wavelength);
- `dcrmodel.simulate.render`: the exact Fourier-space renderer (`FourierSkyRenderer`,
  `TiledSkyRenderer`) and each wavelength's differential refraction
  (`wavelengthDisplacements`, Stone 1996) along the zenith direction measured through the
  exposure's WCS (`dcrmodel.physics.dcr.zenithDirection`);
- `dcrmodel.simulate.config`: the configuration (`SimulationConfig`, `VisitSpec`);
- `dcrmodel.simulate.catalogue`: the catalogue of blue and red stars and galaxies, and the
  transients;
- `dcrmodel.simulate.plan`: the field's pointing and WCS (`makeWcs`) and the visit plan;
- `dcrmodel.simulate.defects`: the mask defects;
- `dcrmodel.simulate.manifest`: the manifest (`SimulationManifest`, `loadManifest`).

Every source is thus rendered through the band at fine wavelength resolution, so the
subfilter model of `dcrmodel.model.core.DcrModel` is tested against a continuous truth, not
against its own approximation. The names of those modules are importable from
`dcrmodel.simulate`.

Here, on top of the static sky: per-visit noise (sky plus source, Gaussian with the Poisson
variance, and the matching variance plane), mask defects in some visits (bad columns,
cosmic rays, a saturated core with its bleed trail, flagged BAD, CR and SAT and corrupted
as in real data), and optional transients (new point sources) in chosen visits. Visits
follow a field through one or more nights so that airmass and parallactic angle vary
naturally on both sides of the meridian; their `VisitInfo` comes from astropy.

`simulateField` returns the field in memory; `runSimulation` writes Rubin-layout exposures
of every visit, noiseless truth images, the true subfilter model, a plain inverse-variance
coadd of the training visits and a manifest (``manifest.json``, read back with
`loadManifest`) describing all of it.

With ``SimulationConfig.detectorFrames`` every visit has its own detector grid
(`dcrmodel.simulate.frames`: rotator angle, pointing offset, optional SIP distortion) and
is rendered directly there, its truth in that frame; the catalogue, the true model and
the plain coadd are on a larger *patch*. The coadd is made the way a survey makes it: each
training visit warped onto the patch (`dcrmodel.warp.warpExposure`, Lanczos 3) and the
warps averaged with inverse-variance weights where they are valid (``NO_DATA`` where none
is). Rendering the coadd's truth directly instead would give a noiseless ideal, not the
baseline a pipeline has, nor the starting point of a DCR model built from these visits.
`dcrmodel.simulate.coverage` measures templates on such visits.

References
----------
R. C. Stone, 1996, PASP 108, 1051 (refraction).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time as _time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.io import fits

from .._version import __version__
from ..atomic import atomicDirectory, holdsOutputLock
from ..diffim import detectSources, footprintMask
from ..errors import DcrTypeError, DcrValueError
from ..fits import writeDcrModel, writeExposure
from ..image import Box, Exposure, Image, ImagePsf, Mask, MaskedImage, PhotoCalib
from ..model import DcrModel
from ..physics import VisitInfo, zenithDirection
from ..progress import ProgressCallback, reportProgress
from ..warp import mapPixels, warpExposure
from .catalogue import makeCatalogue, placeTransients
from .config import SimulationConfig
from .defects import applyDefects
from .frames import (
    VisitFrame,
    makeVisitFrames,
    mapSources,
    sourceDistortion,
    undistortedWcs,
    wcsCards,
)
from .manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    SimulationManifest,
    checkOutputDirectory,
    loadManifest,
)
from .plan import drawWeather, fieldCoord, finishPlan, makeWcs, planVisits
from .render import SourceDistortion, TiledSkyRenderer, wavelengthDisplacements
from .seeing import AtmosphericPsf
from .sources import Source, meanWavelength

__all__ = [
    "SimulatedVisit",
    "SimulatedField",
    "simulateField",
    "runSimulation",
    "COADD_WARP_KERNEL",
]

_log = logging.getLogger(__name__)

#: Kernel with which detector-frame training visits are warped onto the patch for the
#: plain coadd (the reference pipelines' warping kernel).
COADD_WARP_KERNEL = "lanczos3"


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------


@dataclass
class SimulatedVisit:
    """One simulated visit.

    Attributes
    ----------
    id : int
        Visit identifier.
    role : str
        ``"training"`` or ``"test"``.
    exposure : dcrmodel.image.Exposure
        The observation: image with noise and defects, mask, variance, WCS, PSF, visit info.
    truth : dcrmodel.image.Exposure
        Noiseless image of everything in the visit (static sky and transients).
    truthStatic : dcrmodel.image.Exposure
        Noiseless image of the static sky alone, as this visit sees it: what a perfect
        template for the visit would be.
    record : dict
        The visit's manifest entry (conditions, defects, transients).
    frame : dcrmodel.simulate.frames.VisitFrame or None
        The visit's own detector frame (``SimulationConfig.detectorFrames``); None when the
        visit is on the field's grid.
    """

    id: int
    role: str
    exposure: Any
    truth: Any
    truthStatic: Any
    record: dict[str, Any]
    frame: VisitFrame | None = None


@dataclass
class SimulatedField:
    """A whole simulated field in memory (see `simulateField`).

    Attributes
    ----------
    visits : list of SimulatedVisit
        The visits, in time order (explicit `VisitSpec` visits: in the order given).
    coadd : dcrmodel.image.Exposure
        Plain inverse-variance coadd of the training visits, ``DETECTED`` set; on the patch
        with detector frames (the training visits warped onto it).
    truthModel : dcrmodel.model.core.DcrModel
        The true sky in each subfilter, through the reference (sharpest training) seeing;
        on the patch with detector frames.
    manifest : dict
        What `runSimulation` writes as the manifest, without file names.
    """

    visits: list[SimulatedVisit]
    coadd: Any
    truthModel: Any
    manifest: dict[str, Any]




class _Simulation:
    """Plan a field at construction (cheap, validates); render visits on demand."""

    def __init__(self, config: SimulationConfig, seed: int) -> None:

        if not isinstance(config, SimulationConfig):
            raise DcrTypeError("config must be a SimulationConfig", config=type(config).__name__)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or (
            seed < 0
        ):
            raise DcrValueError("seed must be a non-negative integer", seed=seed)
        config.validate()
        self.config = config
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.band = config.resolveBand()
        self.filter = self.band.toFilter()
        self.observatory = config.resolveObservatory()
        # The field's grid: the visits' own without detector frames, else the patch (the
        # coadd's, the true model's and the catalogue's grid).
        width, height = config.resolvePatchSize()
        self.bbox = Box(int(config.origin[0]), int(config.origin[1]), width, height)
        self.coord = fieldCoord(config, self.observatory)
        self.wcs = makeWcs(self.coord, self.bbox, config.pixelScale, config.skyRotation)
        self.photoCalib = PhotoCalib(config.calibrationMean)
        self.wavelengths, self.bandWeights, self.subfilter = self.band.sample(
            config.numSubfilters, config.samplesPerSubfilter
        )
        self.sources = makeCatalogue(config, self.bbox, self.rng)
        self.plan = planVisits(config, self.coord, self.observatory, self.rng)
        finishPlan(config, self.plan, self.rng)
        self.frames: list[VisitFrame] | None = None
        inside = None
        if config.detectorFrames:
            self.frames = makeVisitFrames(config, self.coord, len(self.plan), self.seed)
            inside = self._transientRegion
        self.transients = placeTransients(self.plan, self.sources, self.bbox, config, self.rng,
                                          inside)
        self.frameTransients: dict[int, list[Source]] = {}
        if self.frames is not None:
            self.frameTransients = {
                index: mapSources([t for t, _ in placed], self.wcs, self.frames[index].wcs)
                for index, placed in self.transients.items()
            }
        self._prepareVisits()

    def _transientRegion(self, index: int, x: float, y: float) -> bool:
        """Whether a transient of visit ``index`` may sit at patch pixel ``(x, y)``.

        Inside the visit's detector, at least ``max(edgeMargin, 16)`` pixels from its edges
        (at most an eighth of its side), and within the disc that every undithered detector
        covers whatever its rotation (its inscribed circle about the field's centre, less
        ``edgeMargin``): where the training visits overlap, so that the transient can be
        told from the static sky.
        """
        frame = self.frames[index]
        side = min(frame.bbox.width, frame.bbox.height)
        margin = min(max(self.config.edgeMargin, 16), side // 8)
        xc, yc = self.bbox.center
        radius = 0.5 * side - self.config.edgeMargin
        if math.hypot(x - xc, y - yc) > radius:
            return False
        fx, fy = mapPixels(self.wcs, frame.wcs, x, y)
        box = frame.bbox
        return bool(box.minX + margin <= fx <= box.maxX - margin
                    and box.minY + margin <= fy <= box.maxY - margin)

    def _prepareVisits(self) -> None:

        config = self.config
        self.visitInfos = []
        self.displacements = []
        self.psfs = []
        for index, visit in enumerate(self.plan):
            weather = drawWeather(self.observatory, self.rng)
            if self.frames is None:
                info = VisitInfo.fromAstropy(
                    self.coord,
                    visit.time,
                    self.observatory,
                    weather=weather,
                    exposureTime=config.exposureTime,
                    id=1000 + index,
                )
                vector = zenithDirection(info, self.wcs, self.bbox)
            else:
                # The boresight is the detector's centre; the rotator angle (SKY) is the
                # position angle of its +y axis, as its WCS has it.
                frame = self.frames[index]
                info = VisitInfo.fromAstropy(
                    frame.boresight, visit.time, self.observatory, weather=weather,
                    exposureTime=config.exposureTime, rotAngle=Angle(frame.rotation, u.deg),
                    rotType="SKY", id=1000 + index,
                )
                # At the detector's centre, through its undistorted grid (the distortion's
                # SIP terms vanish there to first order; a finite step through them would
                # pick up their curvature).
                vector = zenithDirection(info, undistortedWcs(frame.wcs), frame.bbox)
            self.visitInfos.append(info)
            self.displacements.append(
                wavelengthDisplacements(
                    self.wavelengths, self.band.effectiveWavelength, info.boresightAzAlt[1],
                    self.observatory, weather, vector,
                )
            )
            self.psfs.append(
                AtmosphericPsf(
                    config.psfProfile,
                    visit.seeing / config.pixelScale,
                    self.band.effectiveWavelength,
                    config.chromaticSeeing,
                    config.moffatBeta,
                )
            )
        training = [i for i, v in enumerate(self.plan) if v.role == "training"]
        sharpest = min(training, key=lambda i: self.plan[i].seeing)
        self.referencePsf = self.psfs[sharpest]
        lo, hi = self.band.support
        self.kernelSize = 2 * max(
            max(p.kernelRadius(lo), p.kernelRadius(hi)) for p in self.psfs
        ) + 1
        # PSF images written with the exposures must fit inside them (odd, centred).
        visitBox = self.bbox if self.frames is None else self.frames[0].bbox
        fieldSide = min(visitBox.width, visitBox.height)
        self.kernelSize = min(self.kernelSize, fieldSide if fieldSide % 2 else fieldSide - 1)
        largestShift = max(float(np.max(np.abs(d))) for d in self.displacements)
        extent = max([s.extent for s in self.sources] + [0.0])
        light = max(max(p.lightRadius(lo), p.lightRadius(hi)) for p in self.psfs)
        # Light travels at most shift + PSF radius + source extent from a source's centre.
        self.padding = int(math.ceil(largestShift + light + extent)) + 4

    # ------------------------------------------------------------------ records

    def sourceRecords(self) -> list[dict[str, Any]]:
        xs = np.array([s.x for s in self.sources])
        ys = np.array([s.y for s in self.sources])
        sky = self.wcs.pixel_to_world(xs, ys) if self.sources else None
        out = []
        for i, s in enumerate(self.sources):
            entry: dict[str, Any] = {
                "id": s.id,
                "type": s.kind,
                "colourClass": s.colourClass,
                "x": s.x,
                "y": s.y,
                "ra": float(sky.ra.deg[i]),
                "dec": float(sky.dec.deg[i]),
                "flux": s.flux,
                "meanWavelength": meanWavelength(s, self.band),
                "halfLightRadius": s.halfLightRadius,
                "components": [c.describe() for c in s.components],
            }
            if s.kind == "star":
                entry["temperature"] = s.components[0].spectrum.temperature
            out.append(entry)
        return out

    def transientRecords(self) -> list[dict[str, Any]]:
        out = []
        for index, placed in self.transients.items():
            for j, (source, host) in enumerate(placed):
                sky = self.wcs.pixel_to_world(source.x, source.y)
                out.append(
                    {
                        "id": source.id,
                        "visit": self.visitInfos[index].id,
                        "x": source.x,
                        "y": source.y,
                        "ra": float(sky.ra.deg),
                        "dec": float(sky.dec.deg),
                        "flux": source.flux,
                        "temperature": source.components[0].spectrum.temperature,
                        "meanWavelength": meanWavelength(source, self.band),
                        "host": host,
                    }
                )
                if self.frames is not None:
                    # Its position in the visit's own frame (x, y are on the patch).
                    mapped = self.frameTransients[index][j]
                    out[-1]["frameX"], out[-1]["frameY"] = mapped.x, mapped.y
        return out

    def visitRecord(self, index: int, defects: dict[str, Any] | None) -> dict[str, Any]:
        visit = self.plan[index]
        info = self.visitInfos[index]
        az, alt = info.boresightAzAlt
        d = self.displacements[index]
        weather = info.weather
        edges = self.band.subfilterEdges(self.config.numSubfilters)
        vy, vx = d[0] - d[-1]
        record = {
            "id": info.id,
            "role": visit.role,
            "night": visit.night,
            "date": info.date.utc.isot,
            "mjd": float(info.date.utc.mjd),
            "airmass": float(info.boresightAirmass),
            "altitude": float(alt.deg),
            "azimuth": float(az.deg),
            "hourAngle": float(info.hourAngle.wrap_at(180 * u.deg).deg),
            "side": "west" if info.hourAngle.wrap_at(180 * u.deg).deg >= 0 else "east",
            "parallacticAngle": float(info.boresightParAngle.wrap_at(180 * u.deg).deg),
            "seeing": float(visit.seeing),
            "seeingPixels": float(visit.seeing / self.config.pixelScale),
            "psf": self.psfs[index].describe(),
            "weather": {
                "airTemperature": weather.airTemperature,
                "airPressure": weather.airPressure,
                "humidity": weather.humidity,
            },
            "dcrSpan": float(math.hypot(vy, vx)),
            "dcrBandEdges": [float(edges[0]), float(edges[-1])],
            "skyLevel": self.config.skyLevel,
            "readNoise": self.config.readNoise,
            "defects": defects,
            "transients": [t.id for t, _ in self.transients.get(index, [])],
        }
        if self.frames is not None:
            record["frame"] = self.frames[index].describe()
        return record

    # ------------------------------------------------------------------ rendering

    def renderer(
        self, sources: Sequence[Source] | None = None, bbox: Box | None = None,
        distortion: SourceDistortion | None = None,
    ) -> TiledSkyRenderer:
        """Return a renderer of ``sources`` (default: the catalogue) on ``bbox`` (the field's)."""
        return TiledSkyRenderer(
            self.sources if sources is None else sources, self.bbox if bbox is None else bbox,
            self.wavelengths, self.bandWeights, self.padding, maxMemory=self.config.maxMemory,
            distortion=distortion,
        )

    def distortion(self, index: int, sources: Sequence[Source]) -> SourceDistortion | None:
        """Each source's own DCR and PSF on visit ``index``'s distorted detector, or None."""
        if self.frames is None or self.frames[index].distortion == 0.0:
            return None
        frame = self.frames[index]
        return sourceDistortion(sources, frame, self.displacements[index], self.psfs[index])

    def _exposure(
        self, image: np.ndarray, variance: np.ndarray, mask: Any, index: int | None,
        psf: Any, metadata: Mapping[str, Any], frame: VisitFrame | None = None,
    ) -> Any:
        """Return an exposure on the field's grid, or on ``frame``'s."""
        bbox = self.bbox if frame is None else frame.bbox
        return Exposure(
            MaskedImage(
                Image(np.asarray(image, dtype=np.float32), bbox=bbox),
                mask,
                Image(np.asarray(variance, dtype=np.float32), bbox=bbox),
            ),
            wcs=self.wcs if frame is None else frame.wcs,
            psf=psf,
            visitInfo=None if index is None else self.visitInfos[index],
            filter=self.filter,
            photoCalib=self.photoCalib,
            metadata=fits.Header(list(metadata.items())),
        )

    def visits(
        self, renderer: TiledSkyRenderer, progress: ProgressCallback | None = None
    ) -> Iterator[SimulatedVisit]:
        """Render every visit in turn (on its own frame with detector frames).

        With detector frames each visit is rendered directly on its own grid: the
        catalogue's positions and shapes are mapped onto it (`mapSources`), its DCR is
        measured through its own WCS at the detector's centre, and the seeing is the same
        circular profile in its pixels (equal pixel scales, a rotation). On a distorted
        detector each source also gets its own DCR shifts and PSF shape through the local
        Jacobian (`sourceDistortion`). Nothing is resampled.
        """
        config = self.config
        stars = [s for s in self.sources if s.kind == "star"]
        brightest = max(stars, key=lambda s: s.flux) if stars else None
        total = len(self.plan)
        for index, visit in enumerate(self.plan):
            psf = self.psfs[index]
            placed = self.transients.get(index, [])
            frame = None if self.frames is None else self.frames[index]
            if frame is None:
                bbox, visitRenderer, visitBrightest = self.bbox, renderer, brightest
                transients = [t for t, _ in placed]
            else:
                bbox = frame.bbox
                mapped = mapSources(self.sources, self.wcs, frame.wcs)
                visitRenderer = self.renderer(mapped, bbox, self.distortion(index, mapped))
                visitBrightest = next(
                    (s for s in mapped if brightest is not None and s.id == brightest.id), None
                )
                transients = self.frameTransients[index]
            static = visitRenderer.render(self.displacements[index], psf)
            full = static
            if placed:
                extra = self.renderer(transients, bbox, self.distortion(index, transients))
                full = static + extra.render(self.displacements[index], psf)
            variance = config.skyLevel + config.readNoise**2 + np.clip(full, 0.0, None)
            image = full + self.rng.standard_normal(full.shape) * np.sqrt(variance)
            mask = Mask.fromBox(bbox)
            defects = None
            if visit.defects:
                defects = applyDefects(
                    image, mask, full, bbox, config, visitBrightest,
                    [(t.x, t.y) for t in transients], self.rng,
                )
            imagePsf = psf.toImagePsf(size=self.kernelSize)
            meta = {"SIMROLE": visit.role, "SIMSEED": self.seed, "SEEING": float(visit.seeing)}
            exposure = self._exposure(image, variance, mask, index, imagePsf, meta, frame)
            truthMeta = dict(meta, SIMTRUTH="FULL")
            truth = self._exposure(full, variance, Mask.fromBox(bbox), index, imagePsf,
                                   truthMeta, frame)
            truthStatic = truth
            if placed:
                truthStatic = self._exposure(
                    static, variance, Mask.fromBox(bbox), index, imagePsf,
                    dict(meta, SIMTRUTH="STATIC"), frame,
                )
            record = self.visitRecord(index, defects)
            if progress is not None:
                reportProgress(progress, f"visit {index + 1}/{total}", index + 1, total,
                               event="simulate")
            yield SimulatedVisit(
                self.visitInfos[index].id, visit.role, exposure, truth, truthStatic, record,
                frame,
            )

    def truthModel(self, renderer: TiledSkyRenderer) -> Any:

        images = []
        for k in range(self.config.numSubfilters):
            weights = (self.subfilter == k).astype(np.float64)
            images.append(Image(renderer.render(None, self.referencePsf, weights), bbox=self.bbox))
        return DcrModel(
            images,
            filterInfo=self.filter,
            psf=self.referencePsf.toImagePsf(size=self.kernelSize),
            mask=Mask.fromBox(self.bbox),
            variance=Image(np.zeros(self.bbox.shape), bbox=self.bbox),
            photoCalib=self.photoCalib,
            wcs=self.wcs,
        )

    def baseManifest(self) -> dict[str, Any]:

        manifest = {
            "format": MANIFEST_FORMAT,
            "formatVersion": MANIFEST_VERSION,
            "dcrmodelVersion": __version__,
            "seed": self.seed,
            "config": self.config.toDict(),
            "band": self.band.describe(),
            "numSubfilters": self.config.numSubfilters,
            "numWavelengthSamples": int(self.wavelengths.size),
            "observatory": {
                "longitude": float(self.observatory.longitude.deg),
                "latitude": float(self.observatory.latitude.deg),
                "elevation": float(self.observatory.elevation),
            },
            "field": {"ra": float(self.coord.ra.deg), "dec": float(self.coord.dec.deg)},
            "pixelScale": self.config.pixelScale,
            "bbox": {
                "minX": self.bbox.minX,
                "minY": self.bbox.minY,
                "width": self.bbox.width,
                "height": self.bbox.height,
            },
            "referencePsf": self.referencePsf.describe(),
            "sources": self.sourceRecords(),
            "transients": self.transientRecords(),
            "visits": [],
        }
        if self.frames is not None:
            manifest["detectorFrames"] = self.framesRecord()
        return manifest

    def framesRecord(self) -> dict[str, Any]:
        """Return the manifest's ``detectorFrames`` entry: the detector and the patch."""
        detector = self.frames[0].bbox
        return {
            "detector": {"width": detector.width, "height": detector.height},
            "patchScale": float(self.config.patchScale),
            "offsetFraction": float(self.config.offsetFraction),
            "distortion": float(self.config.distortion),
            "patchWcs": wcsCards(self.wcs),
            "coaddWarpKernel": COADD_WARP_KERNEL,
        }


class _CoaddAccumulator:
    """Plain inverse-variance coadd: per-visit weights 1 / median variance, bad pixels out."""

    def __init__(self, simulation: _Simulation) -> None:
        shape = simulation.bbox.shape
        self._sim = simulation
        self._sum = np.zeros(shape)
        self._weight = np.zeros(shape)
        self._variance = np.zeros(shape)
        self._kernel = np.zeros((simulation.kernelSize, simulation.kernelSize))
        self._fwhm = 0.0
        self._total = 0.0
        self.visitIds: list[int] = []
        self.weights: dict[int, float] = {}

    def add(self, visit: SimulatedVisit) -> None:
        """Add a training visit: its good pixels, weighted by its inverse median variance.

        A visit on its own detector frame is first warped onto the patch
        (`dcrmodel.warp.warpExposure`, `COADD_WARP_KERNEL`, surface brightness kept); its
        weight still comes from its own pixels' variance, its PSF is its own (circular, the
        same on any grid of the same pixel scale), and the pixels it does not cover
        (``NO_DATA``) or whose kernel touches a bad pixel are left out.
        """
        exposure = visit.exposure
        bad = exposure.mask.getBadPixels()
        good = ~bad
        variance = np.asarray(exposure.variance.array, dtype=np.float64)
        weight = 1.0 / float(np.median(variance[good]))
        if visit.frame is not None:
            exposure = warpExposure(exposure, self._sim.wcs, self._sim.bbox,
                                    kernel=COADD_WARP_KERNEL)
            good = ~exposure.mask.getBadPixels()
            variance = np.asarray(exposure.variance.array, dtype=np.float64)
        self._sum += np.where(good, weight * exposure.image.array, 0.0)
        self._weight += weight * good
        self._variance += np.where(good, weight * weight * variance, 0.0)
        self._kernel += weight * visit.exposure.psf.computeKernelImage()
        self._fwhm += weight * visit.exposure.psf.fwhm
        self._total += weight
        self.visitIds.append(visit.id)
        self.weights[visit.id] = weight

    def finish(self) -> Any:

        sim = self._sim
        covered = self._weight > 0.0
        image = np.zeros_like(self._sum)
        variance = np.zeros_like(self._sum)
        image[covered] = self._sum[covered] / self._weight[covered]
        variance[covered] = self._variance[covered] / self._weight[covered] ** 2
        mask = Mask.fromBox(sim.bbox)
        mask.array[~covered] |= mask.getPlaneBitMask("NO_DATA")
        kernel = self._kernel / self._total
        fwhm = self._fwhm / self._total
        _, footprints = detectSources(
            image, variance, kernel, 5.0, badPixels=~covered, polarity="positive"
        )
        detected = footprintMask(footprints, int(round(fwhm)))
        mask.array[detected] |= mask.getPlaneBitMask("DETECTED")
        psf = ImagePsf(kernel, alpha=self._sim.config.chromaticSeeing,
                       effectiveWavelength=sim.band.effectiveWavelength, fwhm=fwhm)
        meta = {"SIMROLE": "coadd", "SIMSEED": sim.seed, "NINPUTS": len(self.visitIds)}
        return sim._exposure(image, variance, mask, None, psf, meta)


def simulateField(
    config: SimulationConfig | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> SimulatedField:
    """Simulate a field in memory.

    Parameters
    ----------
    config : SimulationConfig, optional
        What to simulate (default: the demo field).
    seed : int, optional
        Seed of the random generator (`numpy.random.default_rng`): the same seed and
        configuration give the same field.
    progress : callable, optional
        Called with a `dcrmodel.progress.ProgressEvent` (``event="simulate"``) after each
        visit.

    Returns
    -------
    SimulatedField

    Raises
    ------
    DcrValueError, DcrTypeError
        For an impossible configuration (see `SimulationConfig.validate`), a field never
        above the horizon in the window, or no time at the requested test airmass; all
        before any rendering.
    """
    sim = _Simulation(SimulationConfig() if config is None else config, seed)
    renderer = sim.renderer()
    visits = []
    coadd = _CoaddAccumulator(sim)
    manifest = sim.baseManifest()
    for visit in sim.visits(renderer, progress):
        visits.append(visit)
        manifest["visits"].append(visit.record)
        if visit.role == "training":
            coadd.add(visit)
    truthModel = sim.truthModel(renderer)
    coaddExposure = coadd.finish()
    manifest["coadd"] = {"visits": coadd.visitIds,
                         "weights": {str(k): v for k, v in coadd.weights.items()}}
    return SimulatedField(visits, coaddExposure, truthModel, manifest)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


@holdsOutputLock("outDir")
def runSimulation(
    outDir: str | os.PathLike,
    config: SimulationConfig | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> SimulationManifest:
    """Simulate a field and write it to a folder, atomically.

    Parameters
    ----------
    outDir : str or os.PathLike
        Output folder. It must not exist, be empty, or hold an earlier simulation (then
        only with ``overwrite``). Everything is written into a temporary folder beside it
        and renamed into place at the end, so an interrupted run leaves the earlier
        contents as they were.
    config : SimulationConfig, optional
        What to simulate (default: the demo field).
    seed : int, optional
        Random seed: the same seed and configuration give the same files.
    overwrite : bool, optional
        Replace an earlier simulation in ``outDir``.
    progress : callable, optional
        a `dcrmodel.progress.ProgressEvent` (``event="simulate"``) after each step.

    Returns
    -------
    SimulationManifest
        The manifest of what was written.

    Raises
    ------
    DcrOutputError
        If ``outDir`` is a file or holds other files (or an earlier simulation without
        ``overwrite``).
    DcrValueError, DcrTypeError
        For an impossible configuration; before anything is rendered or written.

    Examples
    --------
    >>> import tempfile, warnings
    >>> config = SimulationConfig(size=64, numTraining=4, numTest=1, nights=1)
    >>> with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     manifest = runSimulation(folder + "/field", config, seed=1)
    ...     print(len(manifest.visits("training")), len(manifest.visits("test")))
    4 1

    Notes
    -----
    Layout: ``manifest.json``; ``visits/visit_<id>.fits`` (each visit in the Rubin layout,
    with its PSF HDU); ``truth/visit_<id>_static.fits`` (noiseless static sky as the visit
    sees it) and, for visits with transients, ``truth/visit_<id>_full.fits`` (with them);
    ``truth/model/dcrCoadd_<k>.fits`` (the true subfilter images through the sharpest
    training seeing, readable with `dcrmodel.fits.model.readDcrModel`); ``coadd.fits`` (plain
    inverse-variance coadd of the training visits with ``DETECTED`` set). Truth files carry
    the visit's expected variance plane and an empty mask.

    With detector frames, visits and their truth files are on each visit's own detector
    (the WCS in the files, with SIP terms when distorted; ``BORE-ROTANG`` the rotator angle,
    ``ROTTYPE = SKY``); ``coadd.fits`` and the true model on the patch. The manifest adds
    ``detectorFrames`` (detector size, patch scale, distortion, the patch's WCS cards) and,
    per visit, ``frame`` (rotation, offset, boresight, box and WCS cards:
    `dcrmodel.simulate.frames.frameFromRecord`); the sources' ``x``, ``y`` are on the patch,
    and the transients also carry ``frameX``, ``frameY`` on their visit's detector. Which
    training visits saw which patch pixels follows from the frames and the visits' masks
    (`dcrmodel.simulate.coverage.coverageMap`).
    """
    target = Path(os.fspath(outDir))
    checkOutputDirectory(target, bool(overwrite))
    started = _time.monotonic()
    sim = _Simulation(SimulationConfig() if config is None else config, seed)
    total = len(sim.plan) + 2

    def report(message: str, done: int) -> None:
        reportProgress(progress, message, done, total, event="simulate")

    report("rendering the sky", 0)
    renderer = sim.renderer()
    manifest = sim.baseManifest()
    files: list[str] = []
    coadd = _CoaddAccumulator(sim)
    with atomicDirectory(target) as tmp:
        (tmp / "visits").mkdir()
        (tmp / "truth").mkdir()
        for visit in sim.visits(renderer):
            name = f"visit_{visit.id:05d}"
            visitFile = f"visits/{name}.fits"
            staticFile = f"truth/{name}_static.fits"
            writeExposure(visit.exposure, tmp / visitFile)
            writeExposure(visit.truthStatic, tmp / staticFile)
            files += [visitFile, staticFile]
            truthFile = staticFile
            if visit.truth is not visit.truthStatic:
                truthFile = f"truth/{name}_full.fits"
                writeExposure(visit.truth, tmp / truthFile)
                files.append(truthFile)
            record = dict(visit.record, file=visitFile, truth=truthFile, truthStatic=staticFile)
            manifest["visits"].append(record)
            if visit.role == "training":
                coadd.add(visit)
            report(f"visit {len(manifest['visits'])}/{len(sim.plan)}", len(manifest["visits"]))
        model = sim.truthModel(renderer)
        writeDcrModel(model, tmp / "truth" / "model")
        modelFiles = sorted(
            p.relative_to(tmp).as_posix() for p in (tmp / "truth" / "model").iterdir()
        )
        files += modelFiles
        report("truth model", len(sim.plan) + 1)
        writeExposure(coadd.finish(), tmp / "coadd.fits")
        files.append("coadd.fits")
        manifest["coadd"] = {
            "file": "coadd.fits",
            "visits": coadd.visitIds,
            "weights": {str(k): v for k, v in coadd.weights.items()},
        }
        manifest["truthModel"] = {"directory": "truth/model", "files": modelFiles}
        manifest["files"] = files
        manifest["elapsedSeconds"] = round(_time.monotonic() - started, 3)
        with open(tmp / MANIFEST_NAME, "w", encoding="utf-8") as stream:
            json.dump(manifest, stream, indent=1)
            stream.write("\n")
        report("coadd and manifest", total)
    _log.info("simulated %d visits into %s in %.1f s", len(sim.plan), target,
              _time.monotonic() - started)
    return loadManifest(target)

