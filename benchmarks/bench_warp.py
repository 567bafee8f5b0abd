"""Speed of warping an exposure onto another grid (`dcrmodel.warp`), against plain baselines.

A ``--size`` x ``--size`` exposure (float32 image, variance, mask with a few bad pixels, a
Gaussian PSF) on a TAN-SIP grid (about 6 pixels of distortion at the corners of a
1024^2 image) is warped onto a TAN grid rotated by 37 degrees and shifted, and every
timing is printed as a ratio to baselines measured in the same run on the same data:

- ``numpy copy``: a copy of the image array (the memory traffic of touching every pixel);
- ``map_coordinates``: ``scipy.ndimage.map_coordinates`` (cubic spline, order 3) of the image
  alone at the exact source positions (precomputed), the usual way to resample an array.

Measured: the pixel mapping (``mapBox``: exact on a coarse grid, interpolated and checked)
against the exact mapping of every pixel (``mapPixels``); the kernel sum alone
(``resampleArrays`` of image, variance and mask, positions precomputed) for each kernel; and
``warpExposure`` end to end (mapping, kernel sum, PSF), with ``conserve="exactFlux"`` too.
Each figure is the best of ``--repeats`` runs. Timings are wall-clock on whatever machine
runs this: compare the ratios. Nothing is asserted.

With ``--against REV`` (a git revision of this repository, e.g. ``HEAD~3``), the
``dcrmodel.warp`` of that revision is imported beside the current one (its files read with
``git show`` into a temporary folder and imported as ``dcrmodel._warpAgainst``; the layers
below ``warp`` are the current ones) and ``warpExposure`` (both modes) and the kernel sum
of both are timed alternately on the same data, with the largest differences of their
outputs (image and variance relative to the largest value, masks compared exactly).

Run ``python benchmarks/bench_warp.py`` (about a minute at 1024^2); ``--size 512`` for a
quick look, ``--json PATH`` to keep the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from astropy.wcs import WCS, Sip
from scipy import ndimage

from dcrmodel.image import Box, Exposure, GaussianPsf
from dcrmodel.warp import mapBox, mapPixels, resampleArrays, warpExposure

CENTRE = (150.0, -30.0)


def tanWcs(angle: float, scale: float, crpix: tuple[float, float]) -> WCS:
    """A TAN WCS of parent pixels: +y at position angle ``angle`` (deg), East left."""
    theta = -np.deg2rad(angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(CENTRE)
    wcs.wcs.crpix = [crpix[0] + 1.0, crpix[1] + 1.0]
    wcs.wcs.cd = scale / 3600.0 * rot @ np.diag([-1.0, 1.0])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    return wcs


def sipWcs(size: int) -> WCS:
    """The source grid: TAN-SIP, distortion growing as the square of the distance."""
    centre = (size - 1) / 2.0
    wcs = tanWcs(0.0, 0.2, (centre, centre))
    norm = (1024.0 / size) ** 2  # the same distortion in pixels at the corners
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[2, 0], a[0, 2], a[1, 1] = 2e-5 * norm, -1e-5 * norm, 1.5e-5 * norm
    b[0, 2], b[2, 0], b[1, 1] = 2e-5 * norm, 1e-5 * norm, -1e-5 * norm
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def makeExposure(size: int, rng: np.random.Generator) -> Exposure:
    """Stars on noise, with a variance plane, a few bad pixels and a PSF."""
    image = rng.normal(0.0, 1.0, size=(size, size))
    ys, xs = rng.uniform(10, size - 10, size=(2, size // 4))
    iy, ix = np.floor(ys).astype(int), np.floor(xs).astype(int)
    image[iy, ix] += rng.uniform(50.0, 500.0, size=iy.size)
    image = ndimage.gaussian_filter(image, 1.3)
    mask = np.zeros((size, size), dtype=np.int32)
    mask[rng.integers(0, size, 50), rng.integers(0, size, 50)] = 1
    return Exposure.fromArrays(
        image.astype(np.float32), variance=np.ones((size, size), np.float32), mask=mask,
        wcs=sipWcs(size), psf=GaussianPsf(3.0),
    )


def best(function: Callable[[], Any], repeats: int) -> float:
    """Fastest of ``repeats`` calls, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def run(size: int, repeats: int) -> list[dict[str, Any]]:
    """Time every step; return rows of (name, seconds)."""
    rng = np.random.default_rng(0)
    exposure = makeExposure(size, rng)
    box = Box(0, 0, size, size)
    destWcs = tanWcs(37.0, 0.2, ((size - 1) / 2.0 + 5.3, (size - 1) / 2.0 - 3.1))
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    exactX, exactY = mapPixels(destWcs, exposure.wcs, xs, ys)
    image = exposure.image.array
    rows = []

    def add(name: str, function: Callable[[], Any], times: int = repeats) -> None:
        rows.append({"step": name, "seconds": best(function, times)})
        print(f"  {name}: {rows[-1]['seconds']:.3f} s", file=sys.stderr)

    add("numpy copy", image.copy)
    add("map_coordinates (order 3, image only)",
        lambda: ndimage.map_coordinates(image, [exactY, exactX], order=3, mode="constant"))
    add("exact mapping of every pixel (mapPixels)",
        lambda: mapPixels(destWcs, exposure.wcs, xs, ys), max(1, repeats // 2))
    add("mapping on a checked grid (mapBox)", lambda: mapBox(destWcs, exposure.wcs, box))
    for kernel in ("lanczos3", "lanczos4", "lanczos2", "bilinear", "nearest"):
        add(f"kernel sum, {kernel} (image, variance, mask)",
            lambda k=kernel: resampleArrays(image, exactX, exactY, k,
                                            variance=exposure.variance.array,
                                            mask=exposure.mask.array))
    add("kernel sum, lanczos3, image only", lambda: resampleArrays(image, exactX, exactY))
    add("warpExposure (lanczos3)", lambda: warpExposure(exposure, destWcs, box))
    add("warpExposure (lanczos3, exactFlux)",
        lambda: warpExposure(exposure, destWcs, box, conserve="exactFlux"))
    mapping = mapBox(destWcs, exposure.wcs, box)
    error = float(np.nanmax(np.hypot(mapping.x - exactX, mapping.y - exactY)))
    rows.append({"step": "mapBox largest error (pixels)", "seconds": None, "value": error})
    return rows


def loadRevision(revision: str) -> ModuleType:
    """Import ``dcrmodel.warp`` as of a git revision of this repository, beside the current one."""
    import dcrmodel

    repository = Path(__file__).resolve().parent.parent
    folder = Path(tempfile.mkdtemp(prefix="warp-against-"))
    listing = subprocess.run(
        ["git", "-C", str(repository), "ls-tree", "--name-only", revision, "src/dcrmodel/warp/"],
        capture_output=True, text=True, check=True).stdout.split()
    for path in listing:
        text = subprocess.run(["git", "-C", str(repository), "show", f"{revision}:{path}"],
                              capture_output=True, text=True, check=True).stdout
        (folder / Path(path).name).write_text(text)
    name = f"{dcrmodel.__name__}._warpAgainst"
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def largestDifferences(new: Any, old: Any) -> dict[str, Any]:
    """Largest differences of two masked images: image and variance relative to the largest
    value, and whether the masks are identical."""
    image, oldImage = new.image.array.astype(np.float64), old.image.array.astype(np.float64)
    variance = new.variance.array.astype(np.float64)
    oldVariance = old.variance.array.astype(np.float64)
    return {
        "image": float(np.abs(image - oldImage).max() / np.abs(oldImage).max()),
        "variance": float(np.abs(variance - oldVariance).max() / np.abs(oldVariance).max()),
        "maskIdentical": bool(np.array_equal(new.mask.array, old.mask.array)),
    }


def runAgainst(size: int, repeats: int, revision: str) -> list[dict[str, Any]]:
    """Time the current warp and that of ``revision`` alternately on the same data."""
    import dcrmodel.warp as current

    other = loadRevision(revision)
    rng = np.random.default_rng(0)
    exposure = makeExposure(size, rng)
    box = Box(0, 0, size, size)
    destWcs = tanWcs(37.0, 0.2, ((size - 1) / 2.0 + 5.3, (size - 1) / 2.0 - 3.1))
    mapping = mapBox(destWcs, exposure.wcs, box)
    planes = (exposure.image.array, mapping.x, mapping.y)
    extra = {"variance": exposure.variance.array, "mask": exposure.mask.array}
    steps = {
        "warpExposure (lanczos3)": lambda module: module.warpExposure(exposure, destWcs, box),
        "warpExposure (lanczos3, exactFlux)":
            lambda module: module.warpExposure(exposure, destWcs, box, conserve="exactFlux"),
        "kernel sum, lanczos3 (image, variance, mask)":
            lambda module: module.resampleArrays(*planes, **extra),
    }
    rows = []
    for step, function in steps.items():
        times = {"current": [], revision: []}
        for _ in range(repeats):
            for label, module in (("current", current), (revision, other)):
                start = time.perf_counter()
                function(module)
                times[label].append(time.perf_counter() - start)
        row = {"step": step, "current": min(times["current"]), revision: min(times[revision])}
        if step.startswith("warpExposure"):
            row.update(largestDifferences(function(current).maskedImage,
                                          function(other).maskedImage))
        rows.append(row)
        print(f"  {step}: current {row['current']:.3f} s, {revision} {row[revision]:.3f} s",
              file=sys.stderr)
    return rows


def reportAgainst(rows: list[dict[str, Any]], size: int, revision: str) -> None:
    """Print the current warp's timings against those of ``revision``."""
    print(f"\nWarp of a {size}^2 exposure: the current dcrmodel.warp against {revision} "
          "(best times, alternated in one run)\n")
    print(f"| step | current (s) | {revision} (s) | speed-up | image / variance difference "
          "| masks |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        differences = "-"
        masks = "-"
        if "image" in row:
            differences = f"{row['image']:.1e} / {row['variance']:.1e}"
            masks = "identical" if row["maskIdentical"] else "DIFFER"
        print(f"| {row['step']} | {row['current']:.4f} | {row[revision]:.4f} | "
              f"{row[revision] / row['current']:.2f}x | {differences} | {masks} |")


def report(rows: list[dict[str, Any]], size: int) -> None:
    """Print the timings as ratios to the two baselines."""
    seconds = {row["step"]: row["seconds"] for row in rows}
    copy = seconds["numpy copy"]
    spline = seconds["map_coordinates (order 3, image only)"]
    print(f"\nWarp of a {size}^2 exposure (best times; ratios to the baselines of this run)\n")
    print("| step | seconds | / map_coordinates | / numpy copy |")
    print("|---|---|---|---|")
    for row in rows:
        if row["seconds"] is None:
            continue
        t = row["seconds"]
        print(f"| {row['step']} | {t:.4f} | {t / spline:.2f}x | {t / copy:.0f}x |")
    exact = seconds["exact mapping of every pixel (mapPixels)"]
    grid = seconds["mapping on a checked grid (mapBox)"]
    error = next(row["value"] for row in rows if row["seconds"] is None)
    print(f"\nmapBox is {exact / grid:.1f}x faster than the exact mapping; its largest error "
          f"over every pixel: {error:.1e} pixel (tolerance 1e-3)")


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels (1024)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing, best kept (3)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--against", metavar="REV",
                        help="also time the dcrmodel.warp of this git revision, side by side")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parseArguments(argv)
    rows = run(args.size, args.repeats)
    report(rows, args.size)
    figures: dict[str, Any] = {"size": args.size, "rows": rows}
    if args.against is not None:
        against = runAgainst(args.size, args.repeats, args.against)
        reportAgainst(against, args.size, args.against)
        figures.update(against=args.against, againstRows=against)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
