"""Speed of a template on a visit's own grid (warped back) against one on the model's grid.

A DCR model of a patch ``--patch`` pixels wide (default 1536: 1.5 times the detector, as in
issue 13's field; 3 subfilters of a smooth random sky with stars, a 3.5 pixel FWHM Gaussian
PSF, variance and mask, a North-up tangent-plane WCS) and a ``--size`` x ``--size`` visit
(default 1024) centred on the same sky point, in two geometries:

- *on the grid*: the visit's box in the middle of the patch, on the patch's WCS: the
  template takes the unchanged on-grid path;
- *detector frame*: the visit's own TAN WCS, rotated by 37 degrees and shifted by a
  fraction of a pixel: the template is made on the patch region under the visit and warped
  back onto the visit's WCS and box (the template kernel, `TEMPLATE_WARPING_KERNEL`;
  `dcrmodel.model.visitgrid`).

Both are PSF-matched to the visit's PSF (a Gaussian of 3.8 pixels FWHM; with ``--image-psf``
an elliptical image PSF, which is warped into the patch's frame) with the default engine.
Timed, alternating the two geometries, best of ``--repeats``:

- *first template*: a new model each time (the Fourier engine's transforms of the model
  included);
- *later templates*: the same model again (transforms cached);
- and, for the detector frame, its parts: the patch template over the region alone, and the
  warp of that template (`dcrmodel.warp.warpImage`: mapping and kernel sum).

Ratios are measured side by side in one run (issue 13's target: a template including the
warp back at most 1.5 times one on the grid), of the wall-clock times and of the process's
CPU times (all threads: steadier on a machine shared with other jobs, blind to work spread
over cores). Nothing is asserted. Run
``python benchmarks/bench_template_geometry.py`` (about 2 minutes at the defaults on a
shared 2-core machine); ``--size 512 --patch 768`` for a quick look; ``--json PATH`` keeps
the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from astropy.wcs import WCS
from scipy import ndimage

from dcrmodel.image import Box, Exposure, Filter, GaussianPsf, Image, ImagePsf, Mask, MaskedImage
from dcrmodel.model import TEMPLATE_WARPING_KERNEL, DcrModel, templateRegion
from dcrmodel.physics import VisitInfo
from dcrmodel.warp import localJacobian, warpImage, warpPsf

SITE = EarthLocation.from_geodetic(-70.749417 * u.deg, -30.244639 * u.deg, 2663.0 * u.m)
WHEN = Time("2026-03-15T04:00:00", scale="utc")
BAND = Filter("g", 480.0, 150.0)


def visitInfo(airmass: float = 1.6, azimuth: float = 250.0) -> VisitInfo:
    """A visit at Cerro Pachon at the given airmass and azimuth."""
    altitude = float(np.rad2deg(np.arcsin(1.0 / airmass)))
    with iers.conf.set_temp("auto_download", False):
        sky = SkyCoord(AltAz(alt=altitude * u.deg, az=azimuth * u.deg, obstime=WHEN,
                             location=SITE)).icrs
    return VisitInfo.fromAstropy(SkyCoord(ra=sky.ra, dec=sky.dec), WHEN, SITE)


def tanWcs(crval: tuple[float, float], angle: float, crpix: tuple[float, float]) -> WCS:
    """A TAN WCS of parent pixels at 0.2"/pixel: +y at position angle ``angle`` (deg)."""
    theta = -np.deg2rad(angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(crval)
    wcs.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]
    wcs.wcs.cd = 0.2 / 3600.0 * rot @ np.diag([-1.0, 1.0])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    return wcs


def skyArrays(size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Three subfilter images: stars of random colours on a smooth background (float32)."""
    images = []
    ys, xs = rng.uniform(8, size - 8, size=(2, size * size // 400))
    iy, ix = np.floor(ys).astype(int), np.floor(xs).astype(int)
    colours = rng.uniform(0.3, 1.7, size=(3, iy.size))
    background = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (size, size)), 20.0) * 5.0
    for k in range(3):
        image = background + rng.normal(0.0, 0.05, (size, size))
        image[iy, ix] += 300.0 * colours[k]
        images.append(ndimage.gaussian_filter(image, 3.5 / 2.3548).astype(np.float32))
    return images


def newModel(arrays: list[np.ndarray], wcs: WCS) -> DcrModel:
    """A model on the patch (its own cache, so the first template builds the transforms)."""
    box = Box.fromShape(arrays[0].shape)
    mask = Mask.fromBox(box)
    return DcrModel([Image(array, bbox=box) for array in arrays], filterInfo=BAND,
                    psf=GaussianPsf(3.5), wcs=wcs, mask=mask,
                    variance=Image(np.full(box.shape, 0.1, np.float32), bbox=box))


def best(function: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Fastest of ``repeats`` calls: wall-clock and CPU (all threads) seconds."""
    times, cpu = [], []
    for _ in range(repeats):
        start, cpuStart = time.perf_counter(), time.process_time()
        function()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpuStart)
    return min(times), min(cpu)


def run(size: int, patch: int, repeats: int, imagePsf: bool,
        kernel: str | None = None) -> dict[str, float]:
    """Time both geometries, alternated; return the best times (seconds)."""
    rng = np.random.default_rng(0)
    info = visitInfo()
    crval = (float(info.boresightRaDec.ra.deg), float(info.boresightRaDec.dec.deg))
    centre = (patch - 1) / 2.0
    patchWcs = tanWcs(crval, 0.0, (centre, centre))
    arrays = skyArrays(patch, rng)
    if imagePsf:
        y, x = np.mgrid[-12:13, -12:13]
        psf = ImagePsf(np.exp(-0.5 * ((x / 1.9) ** 2 + (y / 1.4) ** 2)))
    else:
        psf = GaussianPsf(3.8)
    start = (patch - size) // 2
    onGrid = Exposure(MaskedImage(Image(np.zeros((size, size), np.float32),
                                        bbox=Box(start, start, size, size))),
                      wcs=patchWcs, visitInfo=info, filter=BAND, psf=psf)
    visitWcs = tanWcs(crval, 37.0, ((size - 1) / 2.0 + 0.37, (size - 1) / 2.0 - 0.21))
    detector = Exposure(MaskedImage(Image(np.zeros((size, size), np.float32))),
                        wcs=visitWcs, visitInfo=info, filter=BAND, psf=psf)
    model = newModel(arrays, patchWcs)
    times: dict[str, list[float]] = {}

    def timed(name: str, function: Callable[[], Any]) -> None:
        wall, cpu = best(function, 1)
        times.setdefault(name, []).append(wall)
        times.setdefault(f"CPU {name}", []).append(cpu)

    where = templateRegion(model, visitWcs, detector.bbox)
    patchPsf = psf if not imagePsf else warpPsf(
        psf, localJacobian(patchWcs, visitWcs, where.centre))
    onPatch = model.buildMatchedExposure(visitInfo=info, bbox=where.region, wcs=patchWcs,
                                         psf=patchPsf)
    for _ in range(repeats):
        timed("on the grid, first template",
              lambda: newModel(arrays, patchWcs).buildMatchedExposure(exposure=onGrid))
        timed("detector frame, first template",
              lambda: newModel(arrays, patchWcs).buildMatchedExposure(exposure=detector))
        timed("on the grid, later templates", lambda: model.buildMatchedExposure(exposure=onGrid))
        timed("detector frame, later templates",
              lambda: model.buildMatchedExposure(exposure=detector))
        timed("  part: template over the patch region (later)",
              lambda: model.buildMatchedExposure(visitInfo=info, bbox=where.region,
                                                 wcs=patchWcs, psf=patchPsf))
        timed("  part: warp of it onto the visit (warpImage)",
              lambda: warpImage(onPatch.maskedImage, patchWcs, visitWcs, detector.bbox,
                                kernel=TEMPLATE_WARPING_KERNEL))
        if kernel is not None:
            timed(f"detector frame, later templates, {kernel}",
                  lambda: model.buildMatchedExposure(exposure=detector, warpingKernel=kernel))
    for name, values in times.items():
        print(f"  {name}: {min(values):.3f} s", file=sys.stderr)
    result = {name: min(values) for name, values in times.items()}
    result["region pixels"] = float(where.region.area)
    return result


def report(times: dict[str, float], size: int, patch: int, imagePsf: bool) -> None:
    """Print the table of times and ratios."""
    kind = "elliptical image PSF" if imagePsf else "Gaussian PSF"
    print(f"\nTemplate of a {size}^2 visit from a {patch}^2 patch model (3 subfilters, "
          f"PSF-matched, {kind}; best times of this run)\n")
    print("| template | on the grid (s) | detector frame (s) | ratio | CPU on the grid / "
          "detector frame (s) | CPU ratio |")
    print("|---|---|---|---|---|---|")
    for which in ("first template", "later templates"):
        a = times[f"on the grid, {which}"]
        b = times[f"detector frame, {which}"]
        ca = times[f"CPU on the grid, {which}"]
        cb = times[f"CPU detector frame, {which}"]
        print(f"| {which} | {a:.3f} | {b:.3f} | {b / a:.2f}x | {ca:.3f} / {cb:.3f} | "
              f"{cb / ca:.2f}x |")
    later = times["on the grid, later templates"]
    print(f"\nParts of a later detector-frame template, as multiples of a later on-grid one: "
          f"the template over the patch region ({times['region pixels'] / size**2:.2f} times "
          f"the visit's pixels) "
          f"{times['  part: template over the patch region (later)'] / later:.2f}x, the warp "
          f"{times['  part: warp of it onto the visit (warpImage)'] / later:.2f}x.")


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="visit side in pixels (1024)")
    parser.add_argument("--patch", type=int, default=1536, help="patch side in pixels (1536)")
    parser.add_argument("--repeats", type=int, default=3, help="alternated runs, best kept (3)")
    parser.add_argument("--image-psf", action="store_true", dest="imagePsf",
                        help="an elliptical image PSF for the visit (warped into the patch)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--warping-kernel", dest="kernel", default=None,
                        help="also time detector-frame templates warped with this kernel "
                        "(buildMatchedExposure's warpingKernel)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parseArguments(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = run(args.size, args.patch, args.repeats, args.imagePsf, args.kernel)
    report(times, args.size, args.patch, args.imagePsf)
    if args.kernel is not None:
        later = times["on the grid, later templates"]
        other = times[f"detector frame, later templates, {args.kernel}"]
        default = times["detector frame, later templates"]
        print(f"Later detector-frame templates warped with {args.kernel}: {other:.3f} s, "
              f"{other / later:.2f}x an on-grid one ({default / later:.2f}x with the default "
              f"kernel).")
    if args.json is not None:
        args.json.write_text(json.dumps({"size": args.size, "patch": args.patch,
                                         "imagePsf": args.imagePsf, "times": times}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
