"""Rendering a static sky through differential refraction and seeing, in Fourier space.

Every source is rendered through the band at fine wavelength resolution: each wavelength
sample is weighted by the bandpass and by the source's own spectrum (`dcrmodel.simulate.spectra`),
and displaced by its own differential refraction (Stone 1996, `dcrmodel.physics.refraction`)
relative to the band's effective wavelength, along the zenith direction measured through
the exposure's WCS (`wavelengthDisplacements`). Rendering is exact up to the Nyquist
frequency: for a visit,

    FT(visit) = sum_lambda FT(sky_lambda) * exp(-2 pi i f . d_lambda) * OTF_lambda(f) * P(f)

with ``sky_lambda`` the sum of the sources' analytic profiles (`dcrmodel.simulate.sources`) at their
sub-pixel positions weighted by their photon spectra, ``d_lambda`` the refraction
displacement, ``OTF_lambda`` the transfer function of the seeing (`dcrmodel.simulate.seeing`) and
``P(f) = sinc(fx) sinc(fy)`` the response of square pixels. The grid is padded so that no
light wraps around. The transform of the static sky at each wavelength is computed once
(`FourierSkyRenderer`) and shared by every visit; fields larger than a few hundred pixels
are cut into padded tiles (`TiledSkyRenderer`) so that the cost grows with the area, not
its square.

On a distorted grid (a detector whose WCS has SIP terms) the pixel scale and orientation
change across the image, so one displacement per wavelength and one PSF no longer hold
for every source: `SourceDistortion` gives, per source, the exact displacement of its light
at every wavelength sample and the local Jacobian of the grid. The renderer then draws
each source with its own DCR shifts and its own (affinely transformed) PSF, exactly to
the series' truncation (1e-6 of the phase), still with one sky cube per visit (see
`SourceDistortion`).

References
----------
R. C. Stone, 1996, PASP 108, 1051 (refraction).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from scipy import fft as sfft

from ..errors import DcrValueError
from ..image import Box
from ..physics import differentialRefraction
from .seeing import AtmosphericPsf
from .sources import (
    ExponentialProfile,
    GaussianProfile,
    Profile,
    Source,
    exponentialTransform,
    gaussianTransform,
    quadraticForm,
)

__all__ = [
    "FourierSkyRenderer",
    "TiledSkyRenderer",
    "SourceDistortion",
    "wavelengthDisplacements",
]

#: Largest phase error (radians) of the series that draws sources on a distorted grid: a
#: position error below 3e-7 pixel.
_SERIES_TOLERANCE = 1e-6

#: Degree of the polynomial in the DCR shift fitted to each source's extra shift.
_SHIFT_DEGREE = 5


@dataclass(frozen=True)
class SourceDistortion:
    """How each source is seen on a distorted grid: its own DCR shifts and PSF shape.

    Attributes
    ----------
    displacements : numpy.ndarray
        ``(nWavelength, 2)`` the visit's displacements ``(dy, dx)`` (pixels) at the grid's
        undistorted point, the ones given to ``render``; they must lie on one line (DCR
        moves light along the zenith direction only).
    shifts : mapping of int to numpy.ndarray
        Source id -> ``(nWavelength, 2)``: the exact displacement ``(dy, dx)`` of the
        source's light at each wavelength sample (its refracted position through the
        distorted WCS, minus its position).
    jacobians : mapping of int to numpy.ndarray
        Source id -> the grid's local Jacobian at the source relative to the undistorted
        point, ``[[dx'/dx, dx'/dy], [dy'/dx, dy'/dy]]``: the seeing, circular on the sky,
        is that PSF transformed by it (transfer function at ``|J^T f|``).
    psf : AtmosphericPsf
        The seeing given to ``render``.

    Notes
    -----
    With ``d = s u`` the displacements (``u`` a unit vector, ``s`` pixels), each source's
    extra shift ``e(s) = shift(s) - d(s)`` is fitted as ``sum_j s^j eta_j`` (``j = 1..5``;
    the fit must hold to 1e-6 pixel), and its phase ``exp(-2 pi i f . e(s))`` expanded as
    a power series in ``s`` (the exponential of a polynomial, by the recurrence
    ``m E_m = sum_j j q_j E_(m-j)``), truncated where the phase error is below 1e-6. The
    sky cube then holds, at each wavelength, ``sum_m s^m`` times the sources' transforms
    weighted by ``E_m``: one cube per visit, built ``M + 1`` times more slowly (``M`` the
    order, about 4 for a corner distortion of 0.4 pixel). The PSF's departure from its
    shape at the undistorted point is folded into each source's transform at the
    effective wavelength; with chromatic seeing the chromatic scaling is the
    undistorted one (an error of the order of the distortion's scale change times the
    seeing's chromatic change, 1e-4 of the PSF size for 1 % and -0.2).
    """

    displacements: np.ndarray
    shifts: Mapping[int, np.ndarray]
    jacobians: Mapping[int, np.ndarray]
    psf: AtmosphericPsf


class _DistortionSeries:
    """The per-component terms of a `SourceDistortion`: fitted shifts, PSF shapes, order."""

    def __init__(self, distortion: SourceDistortion, owners: Sequence[int],
                 wavelengths: np.ndarray) -> None:
        d = np.asarray(distortion.displacements, dtype=np.float64)
        n = wavelengths.size
        if d.shape != (n, 2) or not np.all(np.isfinite(d)):
            raise DcrValueError("the distortion's displacements must be a finite "
                                "(nWavelength, 2) array", shape=d.shape)
        largest = int(np.argmax(np.hypot(d[:, 0], d[:, 1])))
        norm = float(np.hypot(*d[largest]))
        unit = d[largest] / norm if norm > 0 else np.array([1.0, 0.0])
        self.s = d @ unit
        if np.max(np.abs(d - self.s[:, None] * unit[None, :])) > 1e-9 * max(norm, 1.0):
            raise DcrValueError("the displacements of a distorted grid must lie on one line "
                                "(the zenith direction)")
        self.displacements = d
        self.psf = distortion.psf
        scale = max(float(np.max(np.abs(self.s))), 1e-300)
        degrees = np.arange(1, _SHIFT_DEGREE + 1)
        powers = (self.s[:, None] / scale) ** degrees[None, :]
        self.eta = np.zeros((len(owners), _SHIFT_DEGREE, 2))
        self.jacobians = np.zeros((len(owners), 2, 2))
        extent = 0.0
        for i, owner in enumerate(owners):
            if owner not in distortion.shifts or owner not in distortion.jacobians:
                raise DcrValueError("the distortion has no shifts or Jacobian for a source",
                                    id=owner)
            shift = np.asarray(distortion.shifts[owner], dtype=np.float64)
            if shift.shape != (n, 2):
                raise DcrValueError("a source's shifts must be (nWavelength, 2)", id=owner)
            extra = shift - d
            if norm > 0:
                self.eta[i], *_ = np.linalg.lstsq(powers, extra, rcond=None)
            misfit = float(np.max(np.abs(powers @ self.eta[i] - extra)))
            self.eta[i] /= (scale ** degrees)[:, None]
            if misfit > 1e-6:
                raise DcrValueError(
                    "a source's shifts on the distorted grid are not a smooth function of "
                    "the DCR shift (fit off by more than 1e-6 pixel)", id=owner, misfit=misfit)
            extent = max(extent, float(np.max(np.hypot(extra[:, 0], extra[:, 1]))))
            self.jacobians[i] = np.asarray(distortion.jacobians[owner], dtype=np.float64)
        # Phase of the extra shift: at most 2 pi |f| |e|, |f| <= 1/sqrt(2) cycle per pixel.
        fMax = 2.0 * math.pi * math.sqrt(0.5)
        x = fMax * extent
        # Terms s^j eta_j whose phase stays below the tolerance are left out.
        sMax = float(np.max(np.abs(self.s))) if n else 0.0
        reach = fMax * np.max(np.hypot(self.eta[:, :, 0], self.eta[:, :, 1]), axis=0,
                              initial=0.0) * sMax ** np.arange(1, _SHIFT_DEGREE + 1)
        self.degrees = [j for j in range(1, _SHIFT_DEGREE + 1)
                        if reach[j - 1] > 0.1 * _SERIES_TOLERANCE]
        self._buffers: np.ndarray | None = None
        self.order = 0
        term = x
        while term > _SERIES_TOLERANCE and self.order < 60:
            self.order += 1
            term *= x / (self.order + 1)

    def block(self, block: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> None:
        """Fold each component's PSF shape into its transforms (in place)."""
        radius = np.hypot(fx, fy)
        base = self.psf.transfer(radius)
        b = self.jacobians
        # |J^T f|^2 with J^T f = (J00 fx + J10 fy, J01 fx + J11 fy).
        u = b[:, 0, 0, None, None] * fx + b[:, 1, 0, None, None] * fy
        v = b[:, 0, 1, None, None] * fx + b[:, 1, 1, None, None] * fy
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = self.psf.transfer(np.hypot(u, v)) / base
        block *= np.where(base > 0, ratio, 0.0).astype(np.float32)

    def chunk(self, block: np.ndarray, fx: np.ndarray, fy: np.ndarray, expand: np.ndarray,
              modes: np.ndarray) -> np.ndarray:
        """Return the cube's rows: ``sum_m s^m W (block E_m)`` (see `SourceDistortion`)."""
        count = block.shape[0]
        flat = block.reshape(count, -1)
        fx32, fy32 = fx.astype(np.float32), fy.astype(np.float32)
        eta = self.eta.astype(np.float32)
        # j q_j: the recurrence's factors, single precision like the cube.
        q = {}
        for j in self.degrees:
            phase = fy32 * eta[:, j - 1, 0, None, None] + fx32 * eta[:, j - 1, 1, None, None]
            q[j] = (phase.reshape(count, -1) * np.complex64(-2j * np.pi * j))
        # The terms' arrays are kept between chunks (fresh memory costs page faults).
        size = flat.size
        if self._buffers is None or self._buffers.shape[1] < size:
            self._buffers = np.empty((self.order + 1, size), dtype=np.complex64)
        terms = [None] + [self._buffers[m, :size].reshape(flat.shape)
                          for m in range(1, self.order + 1)]
        scratch = self._buffers[0, :size].reshape(flat.shape)
        out = expand @ (modes @ flat)
        for m in range(1, self.order + 1):
            term = terms[m]
            term[...] = 0.0
            for j in self.degrees:
                if j == m:
                    term += q[j]  # times E_0 = 1
                elif j < m:
                    np.multiply(q[j], terms[m - j], out=scratch)
                    term += scratch
            term *= np.float32(1.0 / m)
            weights = (self.s**m).astype(np.complex64)[:, None]
            np.multiply(flat, term, out=scratch)
            out += (weights * expand) @ (modes @ scratch)
        return out


def _componentWeights(
    sources: Sequence[Source], wavelengths: np.ndarray, bandWeights: np.ndarray
) -> tuple[list[tuple[float, float, Profile]], np.ndarray]:
    """Flatten sources into components and their counts at each wavelength sample.

    Returns the components ``(x, y, profile)`` and ``W`` of shape ``(nWavelength,
    nComponent)``: counts of each component in each sample, summing to its flux.
    """
    components: list[tuple[float, float, Profile]] = []
    columns: list[np.ndarray] = []
    for source in sources:
        for c in source.components:
            density = c.spectrum.photonDensity(wavelengths) * bandWeights
            total = density.sum()
            if not (total > 0.0 and np.all(np.isfinite(density))):
                raise DcrValueError(
                    "a source's spectrum gives no light in this band; check its spectrum",
                    id=source.id,
                    spectrum=c.spectrum,
                )
            components.append((source.x, source.y, c.profile))
            columns.append(c.flux * density / total)
    if not columns:
        return components, np.zeros((wavelengths.size, 0))
    return components, np.stack(columns, axis=1)


class FourierSkyRenderer:
    """Render a static sky through DCR and seeing, exactly, in Fourier space.

    The transform of the sky at each wavelength sample is computed once at construction;
    each `render` call then costs one multiply-accumulate per wavelength sample on the
    padded half-plane grid and one inverse real FFT.

    Parameters
    ----------
    sources : sequence of Source
        The sources (parent pixel positions).
    bbox : dcrmodel.image.Box
        The region to render (parent pixels).
    wavelengths : numpy.ndarray
        Wavelength samples (nm).
    bandWeights : numpy.ndarray
        Bandpass weight of each sample (transmission times interval, nm).
    padding : int
        Pixels of padding on every side: at least the largest displacement plus the
        extent of the PSF and of the sources, so that no light wraps around.
    maxMemory : float, optional
        Bytes the wavelength cube may use; larger requests raise before any work.
    distortion : SourceDistortion, optional
        On a distorted grid, each source's own DCR shifts and PSF shape; the renderer then
        draws only the displacements and PSF it names. None: one displacement per
        wavelength and one PSF for every source.

    Raises
    ------
    DcrValueError
        If the padding is negative, the samples and weights disagree, or the cube would
        exceed ``maxMemory``.

    Notes
    -----
    A source component at ``(x, y)`` with unit-flux profile transform ``g(f)`` contributes
    ``w(lambda) g(f) exp(-2 pi i (fx u + fy v))`` (``u, v`` its position on the padded grid)
    to the sky at wavelength ``lambda``. A displacement ``d`` multiplies by
    ``exp(-2 pi i f . d)``, the seeing by its transfer function at that wavelength and the
    pixels by ``sinc(fx) sinc(fy)``. Sampling at pixel centres equals pixel integration of
    the band-limited image; the power beyond the Nyquist frequency is not folded back
    (below 1e-3 of the total for FWHM >= 3 pixels).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        bbox: Any,
        wavelengths: np.ndarray,
        bandWeights: np.ndarray,
        padding: int,
        maxMemory: float = 2.0e9,
        distortion: SourceDistortion | None = None,
    ) -> None:
        wavelengths = np.asarray(wavelengths, dtype=np.float64)
        bandWeights = np.asarray(bandWeights, dtype=np.float64)
        if wavelengths.ndim != 1 or wavelengths.shape != bandWeights.shape or wavelengths.size == 0:
            raise DcrValueError(
                "wavelengths and bandWeights must be 1-d arrays of the same, nonzero length",
                wavelengths=wavelengths.shape,
                bandWeights=bandWeights.shape,
            )
        padding = int(padding)
        if padding < 0:
            raise DcrValueError("padding must be >= 0 pixels", padding=padding)
        self._bbox = bbox
        self._padding = padding
        ny, nx = bbox.height, bbox.width
        self._shapeFull = (
            sfft.next_fast_len(ny + 2 * padding, real=True),
            sfft.next_fast_len(nx + 2 * padding, real=True),
        )
        nyFull, nxFull = self._shapeFull
        nxHalf = nxFull // 2 + 1
        cubeBytes = wavelengths.size * nyFull * nxHalf * 8
        if cubeBytes > maxMemory:
            raise DcrValueError(
                f"rendering needs {cubeBytes / 1e9:.1f} GB for the wavelength cube, more than "
                f"the allowed {maxMemory / 1e9:.1f} GB; simulate a smaller field or fewer "
                "wavelength samples",
                shape=(nyFull, nxFull),
                numWavelengths=wavelengths.size,
            )
        self._wavelengths = wavelengths
        self._fy = sfft.fftfreq(nyFull)
        self._fx = sfft.rfftfreq(nxFull)
        self._radius = np.hypot(self._fy[:, None], self._fx[None, :])
        self._pixel = np.sinc(self._fy)[:, None] * np.sinc(self._fx)[None, :]
        self._distortion = None
        if distortion is not None:
            owners = [source.id for source in sources for _ in source.components]
            self._distortion = _DistortionSeries(distortion, owners, wavelengths)
        self._cube = self._skyCube(sources, wavelengths, bandWeights)

    @property
    def wavelengths(self) -> np.ndarray:
        """The wavelength samples (nm)."""
        return self._wavelengths.copy()

    @property
    def padding(self) -> int:
        """Padding on each side (pixels)."""
        return self._padding

    def _skyCube(
        self, sources: Sequence[Source], wavelengths: np.ndarray, bandWeights: np.ndarray
    ) -> np.ndarray:
        nyFull, nxFull = self._shapeFull
        nxHalf = self._fx.size
        cube = np.zeros((wavelengths.size, nyFull, nxHalf), dtype=np.complex64)
        components, weights = _componentWeights(sources, wavelengths, bandWeights)
        if not components:
            return cube
        gx0 = self._bbox.minX - self._padding
        gy0 = self._bbox.minY - self._padding
        u_ = np.array([c[0] - gx0 for c in components])
        v_ = np.array([c[1] - gy0 for c in components])
        # Phases and the block are single precision, like the cube they fill (relative
        # error ~1e-7 of the brightest source).
        phaseX = np.exp(-2j * np.pi * np.outer(u_, self._fx)).astype(np.complex64)
        # Smooth spectra make the (nWavelength, nComp) weights nearly low-rank: project
        # the components onto the leading spectral modes (singular values above 1e-8 of
        # the largest, below the cube's float32 precision), then expand to wavelengths.
        left, singular, right = np.linalg.svd(weights, full_matrices=False)
        rank = max(int(np.sum(singular > 1e-8 * singular[0])), 1)
        modes = (singular[:rank, None] * right[:rank]).astype(np.complex64)  # (rank, nComp)
        expand = left[:, :rank].astype(np.complex64)  # (nWavelength, rank)
        # Extended components, vectorised by profile type: the transform depends on the
        # quadratic form k^2 = A fx^2 + 2 B fx fy + C fy^2 of each ellipse.
        groups = []
        for kind, radial in ((ExponentialProfile, exponentialTransform),
                             (GaussianProfile, gaussianTransform)):
            index = np.array([j for j, c in enumerate(components) if isinstance(c[2], kind)],
                             dtype=np.int64)
            if index.size:
                a, b, c = quadraticForm([components[j][2] for j in index])
                groups.append((index, a[:, None, None], b[:, None, None], c[:, None, None],
                               radial))
        # Rows per chunk: keep the (nComp, rows, nxHalf) complex block near 32 MB (and the
        # series' terms of a distorted grid, as many blocks as its order, near 128 MB).
        rows = max(1, int(32e6 // (8 * len(components) * nxHalf)))
        series = self._distortion
        if series is not None:
            rows = max(1, rows * 4 // (series.order + 4))
        fx = self._fx[None, None, :]
        for start in range(0, nyFull, rows):
            fy = self._fy[start:start + rows]
            phaseY = np.exp(-2j * np.pi * np.outer(v_, fy)).astype(np.complex64)
            block = phaseY[:, :, None] * phaseX[:, None, :]
            fyGrid = fy[None, :, None]
            for index, a, b, c, radial in groups:
                k2 = a * (fx * fx) + 2.0 * b * (fx * fyGrid) + c * (fyGrid * fyGrid)
                block[index] *= radial(k2).astype(np.float32)
            if series is None:
                chunk = expand @ (modes @ block.reshape(len(components), -1))
            else:
                series.block(block, fx, fyGrid)
                chunk = series.chunk(block, fx, fyGrid, expand, modes)
            cube[:, start:start + rows, :] = chunk.reshape(wavelengths.size, fy.size, nxHalf)
        return cube

    def render(
        self,
        displacements: np.ndarray | None,
        psf: AtmosphericPsf,
        sampleWeights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Render the sky for one set of displacements and one PSF.

        Parameters
        ----------
        displacements : numpy.ndarray or None
            ``(nWavelength, 2)`` displacements ``(dy, dx)`` in pixels of each wavelength
            sample; None for no refraction.
        psf : AtmosphericPsf
            The seeing (its chromatic scaling is applied per sample).
        sampleWeights : numpy.ndarray, optional
            Multiplier of each sample (for example 1 inside one subfilter, 0 elsewhere).

        Returns
        -------
        numpy.ndarray
            The image in ``bbox`` (float64, counts per pixel).
        """
        n = self._wavelengths.size
        if displacements is None:
            displacements = np.zeros((n, 2))
        displacements = np.asarray(displacements, dtype=np.float64)
        if displacements.shape != (n, 2) or not np.all(np.isfinite(displacements)):
            raise DcrValueError(
                "displacements must be a finite (nWavelength, 2) array of (dy, dx) pixels",
                shape=displacements.shape,
                numWavelengths=n,
            )
        if self._distortion is not None and not (
            np.array_equal(displacements, self._distortion.displacements)
            and psf.describe() == self._distortion.psf.describe()
        ):
            raise DcrValueError(
                "a renderer made for a distorted grid draws only the displacements and PSF "
                "it was made with (its sky cube holds each source's own DCR and PSF)"
            )
        largest = float(np.max(np.abs(displacements))) if n else 0.0
        if largest > self._padding:
            raise DcrValueError(
                "a displacement is larger than the padding, light would wrap around; "
                "make the renderer with more padding",
                largest=largest,
                padding=self._padding,
            )
        if sampleWeights is None:
            sampleWeights = np.ones(n)
        sampleWeights = np.asarray(sampleWeights, dtype=np.float64)
        achromatic = psf.alpha == 0.0
        acc = np.zeros(self._cube.shape[1:], dtype=np.complex128)
        for i in range(n):
            if sampleWeights[i] == 0.0:
                continue
            dy, dx = displacements[i]
            ramp = np.exp(-2j * np.pi * dy * self._fy)[:, None] * np.exp(
                -2j * np.pi * dx * self._fx
            )[None, :]
            if sampleWeights[i] != 1.0:
                ramp *= sampleWeights[i]
            if not achromatic:
                ramp *= psf.transfer(self._radius, self._wavelengths[i])
            acc += self._cube[i] * ramp
        if achromatic:
            acc *= psf.transfer(self._radius)
        acc *= self._pixel
        full = sfft.irfft2(acc, s=self._shapeFull)
        p = self._padding
        return full[p:p + self._bbox.height, p:p + self._bbox.width]


class TiledSkyRenderer:
    """A `FourierSkyRenderer` per tile of a large field, with the same `render` call.

    The cost of the sky cube grows as the number of sources times the number of
    frequencies, that is as the square of the field's area; tiles make it linear. Each
    tile renders the sources within ``padding`` of it on its own padded grid, which is
    exact as long as no source's light travels farther than ``padding`` (the same
    condition that keeps a single grid from wrapping around). A field no larger than
    ``tileSize`` is one tile.

    Parameters
    ----------
    sources : sequence of Source
        The sources.
    bbox : dcrmodel.image.Box
        The field (parent pixels).
    wavelengths, bandWeights : numpy.ndarray
        Wavelength samples (nm) and their bandpass weights (see `FourierSkyRenderer`).
    padding : int
        Padding of every tile (pixels); at least the largest distance light travels from a
        source (displacement plus PSF plus extent).
    tileSize : int, optional
        Largest tile side (pixels).
    maxMemory : float, optional
        Bytes all tiles' cubes may use together; more raises before any work.
    distortion : SourceDistortion, optional
        Each source's own DCR shifts and PSF shape on a distorted grid (see
        `FourierSkyRenderer`); None: one displacement per wavelength and one PSF for all.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        bbox: Any,
        wavelengths: np.ndarray,
        bandWeights: np.ndarray,
        padding: int,
        tileSize: int = 384,
        maxMemory: float = 2.0e9,
        distortion: SourceDistortion | None = None,
    ) -> None:

        self._bbox = bbox
        nx = max(1, math.ceil(bbox.width / tileSize))
        ny = max(1, math.ceil(bbox.height / tileSize))
        xEdges = np.linspace(bbox.minX, bbox.maxX + 1, nx + 1).round().astype(int)
        yEdges = np.linspace(bbox.minY, bbox.maxY + 1, ny + 1).round().astype(int)
        plans = []
        total = 0.0
        for j in range(ny):
            for i in range(nx):
                tile = Box(int(xEdges[i]), int(yEdges[j]), int(xEdges[i + 1] - xEdges[i]),
                           int(yEdges[j + 1] - yEdges[j]))
                near = [
                    s for s in sources
                    if tile.minX - padding <= s.x <= tile.maxX + padding
                    and tile.minY - padding <= s.y <= tile.maxY + padding
                ]
                plans.append((tile, near))
                if near:
                    total += (
                        len(wavelengths)
                        * sfft.next_fast_len(tile.height + 2 * padding, real=True)
                        * (sfft.next_fast_len(tile.width + 2 * padding, real=True) // 2 + 1)
                        * 8
                    )
        if total > maxMemory:
            raise DcrValueError(
                f"rendering needs {total / 1e9:.1f} GB for the wavelength cubes, more than the "
                f"allowed {maxMemory / 1e9:.1f} GB; simulate a smaller field or fewer "
                "wavelength samples",
                bbox=bbox,
                numWavelengths=len(wavelengths),
            )
        self._tiles = [
            (tile, FourierSkyRenderer(near, tile, wavelengths, bandWeights, padding,
                                      maxMemory=maxMemory, distortion=distortion)
             if near else None)
            for tile, near in plans
        ]

    @property
    def numTiles(self) -> int:
        """Number of tiles."""
        return len(self._tiles)

    def render(
        self,
        displacements: np.ndarray | None,
        psf: AtmosphericPsf,
        sampleWeights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Render the field; see `FourierSkyRenderer.render`."""
        out = np.zeros(self._bbox.shape)
        for tile, renderer in self._tiles:
            if renderer is not None:
                sy, sx = tile.slices(self._bbox)
                out[sy, sx] = renderer.render(displacements, psf, sampleWeights)
        return out


def wavelengthDisplacements(
    wavelengths: np.ndarray,
    effectiveWavelength: float,
    elevation: Angle | u.Quantity,
    observatory: Any,
    weather: Any,
    zenithVector: tuple[float, float],
) -> np.ndarray:
    """Displacement (pixels) of each wavelength by differential refraction.

    Parameters
    ----------
    wavelengths : numpy.ndarray
        Wavelengths (nm).
    effectiveWavelength : float
        Reference wavelength (nm): it is not displaced.
    elevation : astropy.coordinates.Angle
        True elevation of the field.
    observatory : dcrmodel.physics.site.Observatory
        Site.
    weather : dcrmodel.physics.site.Weather or None
        Weather (None: the site's standard atmosphere).
    zenithVector : tuple of float
        ``(vy, vx)``: pixels per arcsec of altitude (`dcrmodel.physics.dcr.zenithDirection`).

    Returns
    -------
    numpy.ndarray
        ``(nWavelength, 2)`` displacements ``(dy, dx)``; bluer than the reference moves
        toward the zenith.
    """
    dr = np.atleast_1d(
        differentialRefraction(
            np.asarray(wavelengths, dtype=np.float64), float(effectiveWavelength), elevation,
            observatory, weather,
        ).to_value(u.arcsec)
    )
    vy, vx = zenithVector
    return np.stack([dr * vy, dr * vx], axis=1)
