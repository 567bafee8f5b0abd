"""How many subfilters: 3, "auto" and 5 side by side in the g, u and r bands (issue 18).

For each band a field with known truth is simulated (Rubin top-hat band, 12 training visits
spanning airmass 1.0 to 2.0 on both sides of the meridian, 3 held-out visits at airmass
1.15 to 1.91 carrying transients, 0.7 arcsec Kolmogorov seeing); the DCR model is built
with the direct solver's defaults for each number of subfilters asked (``auto``: chosen
from the data, `dcrmodel.assemble.subfilters`), all in this process on the same files, and
for every held-out visit the template made by `DcrModel.buildMatchedExposure` is measured
against the plain coadd's:

- the relative residual against the true static sky, as a ratio to the coadd's;
- false 5 sigma detections in the difference image (matched filter, dipoles merged);
- the build time (the fastest of ``--repeats`` rounds, the builds alternated within each and
  their order reversed every other round, after one warm-up build), as a ratio to the
  3-subfilter build of the same field.

It also prints, per band and number of subfilters, the largest DCR across one subfilter over
the training visits in units of the PSF FWHM the choice uses (`dcrmodel.assemble.psfFwhmFor`;
here the model PSF's): the quantity the automatic choice bounds
(`dcrmodel.assemble.AUTO_SUBFILTER_FRACTION`).

``--bandpass u=FILE`` replaces a band's top hat with a transmission curve (two columns, nm
and throughput; e.g. the LSST u total throughput that GalSim ships as
``galsim/share/bandpasses/LSST_u.dat``); the visits still declare the Rubin band's
effective wavelength and width, as a survey's headers do, so the model's subfilters span
that width while the light follows the curve.

Run ``python benchmarks/bench_subfilters.py`` (a few minutes on two cores);
``--subfilters 3 4 5 6 7 auto`` for the full scan, ``--bands u`` for one band, ``--help``.
Nothing is asserted: the issue's targets are printed as met / not met.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dcrmodel.assemble import AUTO_SUBFILTERS, DcrAssembleCoadd, DcrAssembleConfig
from dcrmodel.diffim.metrics import evaluateVisit
from dcrmodel.fits.exposure import readExposure
from dcrmodel.image import RUBIN_BANDS
from dcrmodel.simulate import Bandpass, SimulationConfig, loadManifest, runSimulation


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bands", nargs="+", default=["g", "u", "r"], help="bands (g u r)")
    parser.add_argument("--subfilters", nargs="+", default=["3", AUTO_SUBFILTERS, "5"],
                        help="numbers of subfilters to compare, or auto (3 auto 5)")
    parser.add_argument("--size", type=int, default=256, help="field width in pixels (256)")
    parser.add_argument("--training", type=int, default=12, help="training visits (12)")
    parser.add_argument("--test", type=int, default=3, help="held-out visits (3)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (0)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to write the simulations (default: a temporary folder)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds of builds; the fastest of each is kept (3)")
    parser.add_argument("--json", type=Path, default=None, help="write all rows to this file")
    parser.add_argument("--bandpass", action="append", default=[], metavar="BAND=FILE",
                        help="a band's transmission curve (nm, throughput) instead of its "
                        "top hat; repeatable")
    args = parser.parse_args(argv)
    try:
        args.bandpass = {key: Path(value) for key, value in
                         (item.split("=", 1) for item in args.bandpass)}
    except ValueError:
        parser.error("--bandpass takes BAND=FILE")
    for spec in args.subfilters:
        if spec != AUTO_SUBFILTERS and not spec.isdigit():
            parser.error(f"--subfilters takes numbers or {AUTO_SUBFILTERS}, not {spec!r}")
    return args


def simulate(args: argparse.Namespace, band: str, root: Path) -> Any:
    """Simulate one band's field; return its manifest."""
    bandInfo: Any = band
    if band in args.bandpass:
        table = np.loadtxt(args.bandpass[band], comments="#", ndmin=2)
        # The visits declare the band as a survey's headers do (the Rubin band's effective
        # wavelength and width, `dcrmodel.image.RUBIN_BANDS`); the light follows the curve.
        effective, width = RUBIN_BANDS.get(band, (None, None))
        bandInfo = Bandpass.curve(table[:, 0], table[:, 1], name=band,
                                  effectiveWavelength=effective, bandwidth=width)
    config = SimulationConfig(size=args.size, numTraining=args.training, numTest=args.test,
                              band=bandInfo, trainingAirmass=(1.0, 2.0),
                              testAirmass=(1.15, 1.91))
    started = time.perf_counter()
    runSimulation(root / f"field-{band}", config, seed=args.seed, overwrite=True)
    print(f"\n== {band} band: simulated {args.size}^2 px, {args.training} training + "
          f"{args.test} held-out visits in {time.perf_counter() - started:.1f} s")
    return loadManifest(root / f"field-{band}")


def _task(spec: str) -> DcrAssembleCoadd:
    number: int | str = spec if spec == AUTO_SUBFILTERS else int(spec)
    return DcrAssembleCoadd(DcrAssembleConfig(dcrNumSubfilters=number))


def buildTimes(manifest: Any, specs: list[str], repeats: int) -> dict[str, float]:
    """Time every build, the specs alternated; the fastest of ``repeats`` rounds each."""
    training = [manifest.path(v["file"]) for v in manifest.visits("training")]
    seconds = dict.fromkeys(specs, math.inf)
    _task(specs[0]).run(training, coadd=manifest.coaddPath)  # warm-up, not timed
    for index in range(repeats):
        # Alternate the order too: the build that follows another runs measurably slower.
        for spec in specs if index % 2 == 0 else specs[::-1]:
            started = time.perf_counter()
            _task(spec).run(training, coadd=manifest.coaddPath)
            seconds[spec] = min(seconds[spec], time.perf_counter() - started)
    return seconds


def buildAndEvaluate(manifest: Any, spec: str, seconds: float) -> dict[str, Any]:
    """Build one model (``spec``: a number or auto) and measure its held-out templates."""
    training = [manifest.path(v["file"]) for v in manifest.visits("training")]
    result = _task(spec).run(training, coadd=manifest.coaddPath)
    model = result.dcrModel
    visits = []
    for visit in manifest.visits("test"):
        science = readExposure(manifest.path(visit["file"]))
        template = model.buildMatchedExposure(exposure=science[model.bbox])
        evaluation = evaluateVisit(manifest, visit["id"], {"dcr": template})
        dcr, coadd = evaluation["dcr"], evaluation["coadd"]
        visits.append({
            "airmass": float(visit["airmass"]),
            "vsCoadd": float(dcr.residual.relativeResidual / coadd.residual.relativeResidual),
            "falseDetections": int(dcr.difference.numFalse),
            "coaddFalseDetections": int(coadd.difference.numFalse),
            "recovered": int(dcr.difference.numRecovered),
            "transients": int(dcr.difference.numTransients),
        })
    choice = result.summary.get("subfilters", {})
    return {"spec": spec, "numSubfilters": model.dcrNumSubfilters, "seconds": seconds,
            "visits": visits, "choice": choice}


def printBand(band: str, runs: list[dict[str, Any]]) -> None:
    """Print one band's runs side by side."""
    base = next((r["seconds"] for r in runs if r["numSubfilters"] == 3), runs[0]["seconds"])
    airmasses = [v["airmass"] for v in runs[0]["visits"]]
    coaddFalse = [v["coaddFalseDetections"] for v in runs[0]["visits"]]
    print(f"held-out airmass: {', '.join(f'{a:.2f}' for a in airmasses)}; "
          f"coadd false detections: {', '.join(str(c) for c in coaddFalse)} "
          f"(total {sum(coaddFalse)})")
    print(f"{'subfilters':<12} {'residual/coadd per visit':<26} {'false det.':<12} "
          f"{'coadd/this':>10} {'time/3':>7} {'spread/FWHM':>11}")
    for run in runs:
        ratios = ", ".join(f"{v['vsCoadd']:.3f}" for v in run["visits"])
        false = [v["falseDetections"] for v in run["visits"]]
        fdRatio = sum(coaddFalse) / sum(false) if sum(false) else math.inf
        spread = run.get("spreadFwhm")
        name = (f"auto={run['numSubfilters']}" if run["spec"] == AUTO_SUBFILTERS
                else str(run["numSubfilters"]))
        print(f"{name:<12} {ratios:<26} {', '.join(map(str, false)):<12} {fdRatio:>10.1f} "
              f"{run['seconds'] / base:>7.2f} "
              f"{'' if spread is None else f'{spread:.2f}':>11}")
    for run in runs:
        if run["spec"] == AUTO_SUBFILTERS:
            print(f"auto: {run['choice'].get('reason')}")


def checks(band: str, runs: list[dict[str, Any]]) -> None:
    """Print the issue's targets for the automatic choice."""
    auto = next((r for r in runs if r["spec"] == AUTO_SUBFILTERS), None)
    three = next((r for r in runs if r["spec"] == "3"), None)
    if auto is None:
        return
    coaddFalse = sum(v["coaddFalseDetections"] for v in auto["visits"])
    false = sum(v["falseDetections"] for v in auto["visits"])
    verdict = {True: "MET", False: "NOT MET"}
    if band == "u":
        ok = all(v["vsCoadd"] <= 0.1 for v in auto["visits"])
        print(f"  [{verdict[ok]:>7}] u auto: every held-out residual <= 1/10 of the coadd's")
        ok = coaddFalse > 0 and 20 * false <= coaddFalse
        print(f"  [{verdict[ok]:>7}] u auto: >= 20x fewer false detections than the coadd "
              f"({coaddFalse} / {false})")
    elif three is not None:
        same = auto["numSubfilters"] == 3
        print(f"  [{verdict[same]:>7}] {band} auto: the reference's 3 subfilters kept "
              f"(auto chose {auto['numSubfilters']})")


def main(argv: list[str] | None = None) -> int:
    args = parseArguments(argv)
    warnings.simplefilter("ignore")
    everything: dict[str, Any] = {}
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for band in args.bands:
            manifest = simulate(args, band, Path(tmp))
            runs = []
            seconds = buildTimes(manifest, args.subfilters, args.repeats)
            for spec in args.subfilters:
                run = buildAndEvaluate(manifest, spec, seconds[spec])
                choice = run["choice"]
                if choice.get("psfFwhm"):
                    run["spreadFwhm"] = choice["spreadPixels"] / choice["psfFwhm"]
                runs.append(run)
            printBand(band, runs)
            checks(band, runs)
            everything[band] = runs
    if args.json is not None:
        args.json.write_text(json.dumps(everything, indent=1, default=str))
    mean = {band: float(np.mean([r["seconds"] for r in runs])) for band, runs in everything.items()}
    print("\nmean build seconds per band: "
          + ", ".join(f"{band} {seconds:.1f}" for band, seconds in mean.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
