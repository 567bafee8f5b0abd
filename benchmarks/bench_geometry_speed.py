"""Speed of building a model from detector-frame visits against the same data on the grid.

Issue 13's target: a model built from detector-frame visits costs at most twice the same data
already on the grid (1024^2 x 24). A g-band field is simulated (`dcrmodel.simulate`) on a
North-up grid large enough to hold ``--visits`` detectors of ``--size`` pixels, each rotated
by an angle drawn from 0-360 degrees and pointed up to 4 % of the patch's width from its
centre; the patch is ``--size`` pixels square, as large as a detector. The detector frames are
made from the simulated visits with `dcrmodel.warp.warpExposure` (Lanczos 3) and everything
is written as exposure files, which each build reads as the command line does
(`dcrmodel.assemble.assembleFromFiles`; the default configuration: direct solver, 512-pixel
subregions). Timed, alternated in one process, fastest of ``--repeats``:

- ``grid``: the simulated visits cut to the patch (every visit covers all of it);
- ``prewarped``: the detector frames warped onto the patch beforehand (what ``dcrmodel warp``
  writes: the same pixels and masks the assembly sees once it has warped them), so that the
  solver's work is the same as for the detector frames and only the warping differs; the
  time of that warp itself is reported beside it;
- ``detector``: the detector frames, warped onto the patch by the assembly (``grid=``);
- each again with the simulation's plain coadd given (``+coadd``). With or without it, the
  assembly (direct solver) warps nothing before solving its subregions: without it the
  subregions sum the plain coadd from the warps of their solve.

Ratios are against the runs in the same process, of the wall-clock time (the issue's
measure) and of the process's CPU time (all threads; steadier on a machine shared with other
jobs, but blind to work spread over cores). Run
``python benchmarks/bench_geometry_speed.py``
(1024^2 x 24; about 15 minutes here, most of it the simulation: ``--workdir DIR`` keeps it
for the next run), ``--quick`` for 512^2 x 12, ``--help`` for the options. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import pstats
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.wcs import WCS

from dcrmodel.assemble import DcrAssembleConfig, assembleFromFiles
from dcrmodel.fits import readExposure, writeExposure
from dcrmodel.image import Box
from dcrmodel.simulate import SimulationConfig, loadManifest, makeWcs, runSimulation
from dcrmodel.warp import warpExposure

OFFSET = 0.04  # largest pointing offset, fraction of the patch width


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024,
                        help="patch and detector width in pixels (1024)")
    parser.add_argument("--visits", type=int, default=24, help="training visits (24)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="builds of each kind, alternated; the fastest is kept (2)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the simulation and the visit files here and reuse them")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one build from detector frames (where time goes)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="512^2 x 12")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.visits = 512, 12
    return args


def detectorWcs(gridWcs: WCS, centre: tuple[float, float], rotation: float, size: int) -> WCS:
    """A TAN detector WCS: ``size`` pixels square, centred on a grid point, rotated (deg)."""
    scale = float(np.sqrt(abs(np.linalg.det(gridWcs.pixel_scale_matrix)))) * 3600.0
    return makeWcs(gridWcs.pixel_to_world(*centre), Box(0, 0, size, size), scale,
                   rotation * u.deg)


def prepareFiles(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Simulate (or reuse) the field and write the three sets of visit files."""
    tag = f"{args.size}x{args.visits}"
    folder = root / f"geometry-{tag}"
    done = folder / "files.json"
    if done.is_file():
        print(f"reusing {folder}")
        return json.loads(done.read_text())
    size = 2 * math.ceil(args.size / math.sqrt(2.0) + OFFSET * args.size + 8)
    config = SimulationConfig(size=size, numTraining=args.visits, numTest=1, band="g",
                              numSubfilters=3, trainingAirmass=(1.0, 2.0))
    started = time.perf_counter()
    manifest = runSimulation(folder / "sim", config, seed=3, overwrite=True)
    manifest = loadManifest(manifest.directory)
    print(f"simulated {size}^2 px x {args.visits} visits in "
          f"{time.perf_counter() - started:.0f} s")
    coadd = readExposure(manifest.coaddPath)
    margin = (coadd.bbox.width - args.size) // 2
    patch = Box(margin, margin, args.size, args.size)
    writeExposure(coadd[patch], folder / "coadd.fits")
    rng = np.random.default_rng(5)
    files: dict[str, Any] = {"grid": [], "prewarped": [], "detector": [],
                             "coadd": str(folder / "coadd.fits"), "prewarpSeconds": 0.0}
    detectorBox = Box(0, 0, args.size, args.size)
    for i, visit in enumerate(manifest.visits("training")):
        whole = readExposure(manifest.path(visit["file"]))
        rotation = float(rng.uniform(0.0, 360.0))
        dx, dy = rng.uniform(-OFFSET, OFFSET, 2) * args.size
        wcs = detectorWcs(coadd.wcs, (patch.center[0] + dx, patch.center[1] + dy), rotation,
                          args.size)
        detector = warpExposure(whole, wcs, detectorBox)
        tic = time.perf_counter()
        prewarped = warpExposure(detector, coadd.wcs, patch)
        files["prewarpSeconds"] += time.perf_counter() - tic
        for kind, exposure in (("grid", whole[patch]), ("detector", detector),
                               ("prewarped", prewarped)):
            path = folder / kind / f"visit{i:03d}.fits"
            path.parent.mkdir(parents=True, exist_ok=True)
            writeExposure(exposure, path)
            files[kind].append(str(path))
    files["gridSpec"] = str(folder / "coadd.fits")
    done.write_text(json.dumps(files))
    return files


def timeBuilds(files: dict[str, Any], args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Build every kind ``repeats`` times, alternated; keep the fastest of each."""
    config = DcrAssembleConfig()
    kinds = {
        "grid": (files["grid"], {}),
        "prewarped": (files["prewarped"], {"grid": files["gridSpec"]}),
        "detector": (files["detector"], {"grid": files["gridSpec"]}),
        "grid+coadd": (files["grid"], {"coaddPath": files["coadd"]}),
        "prewarped+coadd": (files["prewarped"], {"coaddPath": files["coadd"]}),
        "detector+coadd": (files["detector"], {"coaddPath": files["coadd"]}),
    }
    best: dict[str, dict[str, float]] = {}
    for repeat in range(args.repeats):
        for name, (paths, options) in kinds.items():
            out = root / f"model-{name}-{repeat}"
            started, cpuStarted = time.perf_counter(), time.process_time()
            result = assembleFromFiles(paths, out, config=config, overwrite=True, **options)
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpuStarted
            timings = result.summary["timings"]
            print(f"  {name:<16s} {seconds:7.2f} s, CPU {cpu:7.2f} s (prepare "
                  f"{timings.get('prepare', 0):.2f}, solve {timings.get('solve', 0):.2f})")
            if name not in best or seconds < best[name]["seconds"]:
                best[name] = {"seconds": seconds, "prepare": timings.get("prepare", 0.0),
                              "solve": timings.get("solve", 0.0)}
            best[name]["cpu"] = min(cpu, best[name].get("cpu", math.inf))
    return best


def profileBuild(files: dict[str, Any], root: Path) -> None:
    """Profile one build from detector frames: the largest cumulative times."""
    profiler = cProfile.Profile()
    profiler.enable()
    assembleFromFiles(files["detector"], root / "model-profile", grid=files["gridSpec"],
                      overwrite=True)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)


def main(argv: list[str] | None = None) -> int:
    args = parseArguments(argv)
    warnings.simplefilter("ignore")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = args.workdir if args.workdir is not None else Path(tmp)
        files = prepareFiles(args, root)
        print(f"{args.size}^2 patch, {args.visits} visits on {args.size}^2 detectors "
              f"(warping them onto the patch beforehand took {files['prewarpSeconds']:.1f} s)")
        best = timeBuilds(files, args, Path(tmp))
        if args.profile:
            profileBuild(files, Path(tmp))
    print(f"\nfastest of {args.repeats} (seconds; ratios in this run):")
    print("| inputs | build (s) | prepare (s) | solve (s) | / grid | / prewarped | CPU (s) "
          "| CPU / prewarped |")
    print("|---|---|---|---|---|---|---|---|")
    for name, figures in best.items():
        suffix = "+coadd" if name.endswith("+coadd") else ""
        grid = best["grid" + suffix]["seconds"]
        prewarped = best["prewarped" + suffix]["seconds"]
        print(f"| {name} | {figures['seconds']:.2f} | {figures['prepare']:.2f} | "
              f"{figures['solve']:.2f} | {figures['seconds'] / grid:.2f}x | "
              f"{figures['seconds'] / prewarped:.2f}x | {figures['cpu']:.2f} | "
              f"{figures['cpu'] / best['prewarped' + suffix]['cpu']:.2f}x |")
    target = best["detector"]["seconds"] / best["prewarped"]["seconds"]
    print(f"\ntarget (issue 13): detector frames <= 2x the same data on the grid: "
          f"{'MET' if target <= 2 else 'NOT MET'} ({target:.2f}x without a coadd, "
          f"{best['detector+coadd']['seconds'] / best['prewarped+coadd']['seconds']:.2f}x "
          "with one)")
    if args.json is not None:
        args.json.write_text(json.dumps({"arguments": {k: str(v) for k, v in vars(args).items()},
                                         "prewarpSeconds": files["prewarpSeconds"],
                                         "best": best}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
