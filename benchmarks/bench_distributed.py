"""Scale-out on Dask: serial against a local cluster (issue 8).

Two measurements on simulated visit files, each serial run and cluster run on the same
files one after the other:

1. One patch of ``--size`` squared pixels and ``--visits`` visits: `assembleFromFiles`
   (the serial path) against `assembleDistributed(workers=--workers)`. Printed: wall time
   of each and their ratio (the cluster's start-up is timed apart and not included), the
   peak memory of one subregion task (`tracemalloc`, run once more with tracing on)
   against the module's formula, and the peak resident memory of the serial process and
   of each worker process (``ru_maxrss``, which includes the ~0.2 GB of imports).
2. ``--patches`` patches of ``--patch-size`` squared pixels: `assemblePatches` one after
   another in this process against the same plan on the cluster.

The field: Gaussian stars with power-law spectra, each rendered at 12 wavelengths through
the band, displaced by its differential refraction along the zenith direction of the
visit (the same physics as the test suite, rendered in small stamps so that large fields
are quick to make), plus Gaussian noise. Visits span hour angles -4 h to +4 h on a field
25 deg north of the zenith of Cerro Pachon. Files are cached in ``--workdir``.

The serial runs go through a fresh subprocess, so that the peak resident memory of each
is its own. Timings are wall-clock seconds on the machine that runs this; compare the
ratios. Issue 8's sizes are the defaults (2048^2 x 24 visits; 8 patches of 512^2); give
smaller ones on a small machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.time import Time, TimeDelta
from astropy.wcs import WCS
from scipy.special import erf

from dcrmodel.assemble.config import DcrAssembleConfig
from dcrmodel.image import Exposure, Filter, GaussianPsf, MaskedImage
from dcrmodel.physics.dcr import zenithDirection
from dcrmodel.physics.observation import VisitInfo
from dcrmodel.physics.refraction import differentialRefraction

LOCATION = dict(lon=-70.749417, lat=-30.244639, height=2663.0)
TIME = Time("2026-03-15T04:00:00", scale="utc")
BAND = Filter.fromBand("g")
SIGMA = 1.5
NOISE = 5.0


# ------------------------------------------------------------------------------------------
# Field
# ------------------------------------------------------------------------------------------
def _location():
    from astropy.coordinates import EarthLocation

    return EarthLocation.from_geodetic(lon=LOCATION["lon"] * u.deg, lat=LOCATION["lat"] * u.deg,
                                       height=LOCATION["height"] * u.m)


def _centre():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lst = TIME.sidereal_time("mean", longitude=LOCATION["lon"] * u.deg)
    return SkyCoord(ra=lst.deg * u.deg, dec=-5.0 * u.deg, frame="icrs")


def _wcs(size: int) -> WCS:
    centre = _centre()
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [centre.ra.deg, centre.dec.deg]
    wcs.wcs.crpix = [(size - 1) / 2 + 1, (size - 1) / 2 + 1]
    scale = 0.2 / 3600.0
    wcs.wcs.cd = [[-scale, 0.0], [0.0, scale]]
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.set()
    return wcs


def _stamp(image, x, y, flux, half=8):
    ny, nx = image.shape
    x0, x1 = max(int(x) - half, 0), min(int(x) + half + 1, nx)
    y0, y1 = max(int(y) - half, 0), min(int(y) + half + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return
    norm = np.sqrt(2.0) * SIGMA
    xe = np.arange(x0, x1 + 1) - 0.5
    ye = np.arange(y0, y1 + 1) - 0.5
    cx = np.diff(0.5 * erf((xe - x) / norm))
    cy = np.diff(0.5 * erf((ye - y) / norm))
    image[y0:y1, x0:x1] += flux * np.outer(cy, cx)


def makeField(folder: Path, size: int, numVisits: int, seed: int = 1) -> list[Path]:
    """Write (or reuse) ``numVisits`` visit files of a ``size`` squared field."""
    from dcrmodel.fits.exposure import writeExposure

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"visit{i:03d}.fits" for i in range(numVisits)]
    if all(p.is_file() for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    wcs = _wcs(size)
    numSources = max(size * size // 1500, 4)
    sources = np.column_stack([
        rng.uniform(4, size - 5, numSources), rng.uniform(4, size - 5, numSources),
        10 ** rng.uniform(2.5, 4.3, numSources), rng.choice([-4.0, -2.0, 0.0, 2.0, 4.0],
                                                            numSources),
    ])
    edges = np.linspace(BAND.lambdaMin, BAND.lambdaMax, 13)
    wavelengths = 0.5 * (edges[1:] + edges[:-1])
    spectra = (wavelengths[None, :] / BAND.effectiveWavelength) ** sources[:, 3:4]
    spectra = sources[:, 2:3] * spectra / spectra.sum(axis=1, keepdims=True)
    for i, hourAngle in enumerate(np.linspace(-4.0, 4.0, numVisits)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            visitInfo = VisitInfo.fromAstropy(
                _centre(), TIME + TimeDelta(hourAngle * 3600.0, format="sec"), _location(),
                id=i)
            shifts = differentialRefraction(
                wavelengths, BAND.effectiveWavelength, visitInfo.boresightAzAlt[1],
                visitInfo.observatory, visitInfo.weather).to_value(u.arcsec)
            vy, vx = zenithDirection(visitInfo, wcs)
        image = rng.normal(0.0, NOISE, size=(size, size))
        for (x, y, _, _), spectrum in zip(sources, spectra, strict=True):
            for r, f in zip(shifts, spectrum, strict=True):
                _stamp(image, x + r * vx, y + r * vy, f)
        exposure = Exposure(
            MaskedImage.fromArrays(image.astype(np.float32),
                                   variance=np.full((size, size), NOISE**2, np.float32)),
            wcs=wcs, visitInfo=visitInfo, filter=BAND, psf=GaussianPsf(2.3548 * SIGMA))
        writeExposure(exposure, paths[i])
    return paths


# ------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------
def _maxRssBytes() -> int:
    """Peak resident memory of this process (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _serialChild(kind, args, queue):
    import logging

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    from dcrmodel.assemble.task import assembleFromFiles
    from dcrmodel.distributed.runner import assemblePatches

    tic = time.perf_counter()
    if kind == "patch":
        paths, out, config = args
        result = assembleFromFiles(paths, out, config=config)
        info = {"buffer": result.summary["bufferPixels"]}
    else:
        (plan,) = args
        rows = assemblePatches(plan)
        info = {"rows": rows}
    queue.put({"seconds": time.perf_counter() - tic, "maxRss": _maxRssBytes(), **info})


def _inChild(kind, *args):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_serialChild, args=(kind, args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _gib(value):
    return f"{value / 2**30:.2f} GiB"


def benchPatch(args, workdir: Path, client) -> None:
    from dcrmodel.distributed import assembleDistributed, estimateSubregionMemory

    print(f"\n== one patch: {args.size}^2 pixels x {args.visits} visits, subregions "
          f"{args.subregion}^2, solver {args.solver}, {args.workers} workers ==")
    tic = time.perf_counter()
    paths = makeField(workdir / f"field{args.size}x{args.visits}", args.size, args.visits)
    print(f"field ready in {time.perf_counter() - tic:.1f} s")
    config = DcrAssembleConfig(subregionSize=(args.subregion, args.subregion),
                               solver=args.solver)
    stamp = int(time.time())
    serial = _inChild("patch", paths, workdir / f"serial-{stamp}", config)
    tic = time.perf_counter()
    result = assembleDistributed(paths, workdir / f"cluster-{stamp}", config=config,
                                 client=client)
    seconds = time.perf_counter() - tic
    workerRss = client.run(_maxRssBytes)
    records = result.summary["subregions"]
    # One subregion again, with tracemalloc on (tracing slows a task down, so the timed
    # run above goes without it).
    from dcrmodel.assemble.task import DcrAssembleCoadd
    from dcrmodel.distributed.tasks import solveSubregion

    plan = DcrAssembleCoadd(config).planSubregions(paths)
    traced = client.submit(solveSubregion, plan.subregionTask(0), True, pure=False).result()
    peak = traced.summary["peakMemoryBytes"]
    buffer = result.summary["bufferPixels"]
    estimate = estimateSubregionMemory(args.visits, args.subregion, buffer, args.solver)
    solveSum = sum(r["seconds"] for r in records)
    print(f"serial:  {serial['seconds']:8.1f} s   peak RSS {_gib(serial['maxRss'])}")
    print(f"cluster: {seconds:8.1f} s   peak RSS per worker "
          + ", ".join(_gib(v) for v in workerRss.values()))
    print(f"speed-up {serial['seconds'] / seconds:.2f}x on {args.workers} workers "
          f"({len(records)} subregions; the tasks' own time adds up to {solveSum:.1f} s, "
          f"preparation {result.summary['timings']['prepare']:.1f} s)")
    print(f"a subregion task: tracemalloc peak {_gib(peak)}; formula "
          f"J (s+2b)^2 8 k + c = {_gib(estimate)} (b = {buffer} px)")


def benchPatches(args, workdir: Path, client) -> None:
    from dcrmodel.distributed.runner import assemblePatches, formatSummaryTable

    n, size = args.patches, args.patch_size
    print(f"\n== {n} patches of {size}^2 x {args.patch_visits} visits ==")
    tic = time.perf_counter()
    stamp = int(time.time())
    patches = []
    for i in range(n):
        paths = makeField(workdir / f"patch{i}-{size}x{args.patch_visits}", size,
                          args.patch_visits, seed=100 + i)
        patches.append({"name": f"p{i}", "visits": [str(p) for p in paths]})
    print(f"fields ready in {time.perf_counter() - tic:.1f} s")
    config = {"subregionSize": [args.subregion, args.subregion], "solver": args.solver}

    def plan(label):
        return {"config": config,
                "patch": [{**p, "out": str(workdir / f"{label}-{stamp}" / p["name"])}
                          for p in patches]}

    serial = _inChild("patches", plan("serial"))
    tic = time.perf_counter()
    rows = assemblePatches(plan("cluster"), client=client)
    seconds = time.perf_counter() - tic
    print(formatSummaryTable(rows))
    print(f"one after another: {serial['seconds']:8.1f} s")
    print(f"on the cluster:    {seconds:8.1f} s")
    print(f"speed-up {serial['seconds'] / seconds:.2f}x on {args.workers} workers")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="pixels on a side (patch)")
    parser.add_argument("--visits", type=int, default=24)
    parser.add_argument("--subregion", type=int, default=512, help="subregion side, pixels")
    parser.add_argument("--patches", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=512)
    parser.add_argument("--patch-visits", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--solver", default=DcrAssembleConfig().solver)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-patch", action="store_true")
    parser.add_argument("--skip-patches", action="store_true")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    from dcrmodel.distributed import clusterClient

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    print(f"work folder {workdir}")
    tic = time.perf_counter()
    with clusterClient(workers=args.workers) as client:
        print(f"cluster of {args.workers} workers up in {time.perf_counter() - tic:.1f} s")
        if not args.skip_patch:
            benchPatch(args, workdir, client)
        if not args.skip_patches:
            benchPatches(args, workdir, client)
    print(json.dumps({"argv": sys.argv[1:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
