"""Template quality with partial coverage and with visits on rotated detector frames (issue 13).

A g-band field with known truth is simulated on a North-up grid larger than the patch
(`dcrmodel.simulate`: training visits spanning airmass 1.0 to 2.0 on both sides of the
meridian, held-out visits at about 1.15, 1.55 and 1.9 carrying transients). Each training
visit gets a detector: a square of ``--detector`` pixels rotated by an angle drawn from
0-360 degrees and pointed at an offset of up to ``--offset`` of the patch's width from the
patch centre (the patch is ``--size`` pixels, 1.5 times the detector by default). Three sets
of the same training visits are assembled with the direct solver (the default
configuration) and measured side by side in this process:

- ``full``: every visit on the patch grid, covering all of it (the easy case);
- ``partial``: every visit on the patch grid, ``NO_DATA`` outside its detector's footprint:
  partial coverage without any resampling;
- ``detector``: every visit on its own detector frame, warped onto the patch by the assembly
  (``grid=``). These frames are made by warping the simulated visits (rendered on the larger
  grid) onto the detectors with `dcrmodel.warp.warpExposure` (Lanczos 3): their data have
  been resampled once before the assembly resamples them back, which the real case does not
  have (a 3.5 pixel FWHM PSF is well sampled; the round trip is measured at 2e-3 of the rms
  in ``tests/warp``).

For every held-out visit the DCR-matched template (`DcrModel.buildMatchedExposure`) is
compared with the truth and with the plain coadd (the simulation's coadd of all training
visits over the whole field) over pixel sets chosen by how many detectors cover them: the
residual against the truth over the sources' footprints (`dcrmodel.diffim.metrics`), its
ratio to the coadd's, false 5-sigma detections in the difference image and transients
recovered. Where few visits cover a pixel the plain coadd of just those visits is shown too
(``seenCoadd``): it is what any template can fall back to there.

Partial coverage is also compared with full coverage by the same visits: for the subsets of
visits that cover the most pixels of the well-covered part, a model is built from that subset
alone on the full patch (``subsetFull``) and compared with the partial model over the pixels
seen by exactly that subset.

Run ``python benchmarks/bench_coverage.py`` (about two minutes on two cores), ``--quick``
for a smaller field, ``--help`` for the options. Nothing is asserted.
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

import astropy.units as u
import numpy as np
from astropy.wcs import WCS

from dcrmodel.assemble import DcrAssembleCoadd, DcrAssembleConfig
from dcrmodel.diffim.metrics import evaluateTemplates
from dcrmodel.fits import readExposure
from dcrmodel.image import Box, Exposure
from dcrmodel.simulate import SimulationConfig, loadManifest, makeWcs, runSimulation
from dcrmodel.warp import mapPixels, warpExposure

#: Pixel sets, by the number of detectors covering a pixel: (label, lowest, highest).
COVERAGE_BINS = (("all", None, None), (">=6", 6, None), ("3-5", 3, 5), ("1-2", 1, 2))


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=384, help="patch width in pixels (384)")
    parser.add_argument("--detector", type=int, default=256,
                        help="detector width in pixels (256)")
    parser.add_argument("--training", type=int, default=12, help="training visits (12)")
    parser.add_argument("--test", type=int, default=3, help="held-out visits (3)")
    parser.add_argument("--offset", type=float, default=0.04,
                        help="largest pointing offset, fraction of the patch width (0.04)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="field seeds (0)")
    parser.add_argument("--subsets", type=int, default=3,
                        help="visit subsets compared with full coverage by themselves (3)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to write the simulations (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="write all rows to this file")
    parser.add_argument("--quick", action="store_true",
                        help="small field (256 px patch, 176 px detectors)")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.detector = 256, 176
    return args


# ------------------------------------------------------------------------------------------
# The field and its three sets of training visits
# ------------------------------------------------------------------------------------------
def simulate(args: argparse.Namespace, seed: int, root: Path) -> Any:
    """Simulate a field large enough to hold every rotated, offset detector."""
    reach = args.detector / math.sqrt(2.0) + args.offset * args.size + 8
    size = max(args.size + 32, 2 * math.ceil(reach))
    config = SimulationConfig(size=size, numTraining=args.training, numTest=args.test,
                              band="g", numSubfilters=3, trainingAirmass=(1.0, 2.0),
                              testAirmass=(1.15, 1.9))
    started = time.perf_counter()
    manifest = runSimulation(root / f"field-seed{seed}", config, seed=seed, overwrite=True)
    print(f"simulated {size}^2 px, {args.training} training + {args.test} held-out visits "
          f"(seed {seed}) in {time.perf_counter() - started:.1f} s")
    return manifest


def detectorWcs(gridWcs: WCS, centre: tuple[float, float], rotation: float, size: int) -> WCS:
    """A TAN detector WCS: ``size`` pixels square, centred on a grid point, rotated (deg)."""
    scale = float(np.sqrt(abs(np.linalg.det(gridWcs.pixel_scale_matrix)))) * 3600.0
    return makeWcs(gridWcs.pixel_to_world(*centre), Box(0, 0, size, size), scale,
                   rotation * u.deg)


def trainingSets(manifest: Any, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The full, partial and detector-frame training visits and the detectors' footprints."""
    coadd = readExposure(manifest.coaddPath)
    gridWcs = coadd.wcs
    margin = (coadd.bbox.width - args.size) // 2
    patch = Box(coadd.bbox.minX + margin, coadd.bbox.minY + margin, args.size, args.size)
    rng = np.random.default_rng(1000 + seed)
    ys, xs = np.mgrid[patch.minY:patch.maxY + 1, patch.minX:patch.maxX + 1].astype(float)
    detectorBox = Box(0, 0, args.detector, args.detector)
    full, partial, detector, footprints, rotations = [], [], [], [], []
    for visit in manifest.visits("training"):
        whole = readExposure(manifest.path(visit["file"]))
        full.append(whole[patch])
        rotation = float(rng.uniform(0.0, 360.0))
        dx, dy = rng.uniform(-args.offset, args.offset, 2) * args.size
        wcs = detectorWcs(gridWcs, (patch.center[0] + dx, patch.center[1] + dy), rotation,
                          args.detector)
        detector.append(warpExposure(whole, wcs, detectorBox))
        px, py = mapPixels(gridWcs, wcs, xs, ys)
        inside = ((px >= -0.5) & (px <= detectorBox.maxX + 0.5)
                  & (py >= -0.5) & (py <= detectorBox.maxY + 0.5))
        footprints.append(inside)
        masked = whole[patch].clone()
        masked.mask.array[~inside] |= masked.mask.getPlaneBitMask("NO_DATA")
        masked.image.array[~inside] = 0.0
        partial.append(masked)
        rotations.append(rotation)
    return {"coadd": coadd, "patch": patch, "gridWcs": gridWcs, "full": full,
            "partial": partial, "detector": detector, "footprints": np.array(footprints),
            "rotations": rotations}


def buildModels(sets: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """Assemble the three sets with the default (direct) configuration; time each."""
    models, seconds = {}, {}
    grid = (sets["gridWcs"], sets["patch"])
    for name, options in (("full", {}), ("partial", {}), ("detector", {"grid": grid})):
        started = time.perf_counter()
        models[name] = DcrAssembleCoadd(DcrAssembleConfig()).run(sets[name], **options)
        seconds[name] = time.perf_counter() - started
        print(f"  model {name:<9s} {seconds[name]:6.1f} s")
    return models, seconds


# ------------------------------------------------------------------------------------------
# Measures
# ------------------------------------------------------------------------------------------
def _masked(template: Exposure, select: np.ndarray) -> Exposure:
    """A copy of a template with NO_DATA outside ``select``."""
    copy = template.clone()
    copy.mask.array[~select] |= copy.mask.getPlaneBitMask("NO_DATA")
    return copy


def _seenCoadd(sets: dict[str, Any], reference: Exposure) -> Exposure:
    """The inverse-variance mean of the partial visits' good pixels (no DCR)."""
    numerator = np.zeros(sets["patch"].shape)
    denominator = np.zeros(sets["patch"].shape)
    for visit in sets["partial"]:
        good = ~visit.mask.getBadPixels()
        weight = np.where(good, 1.0 / np.where(good, visit.variance.array, 1.0), 0.0)
        numerator += weight * np.where(good, visit.image.array, 0.0)
        denominator += weight
    coadd = reference.clone()
    covered = denominator > 0
    coadd.image.array[:] = np.where(covered, numerator / np.where(covered, denominator, 1), 0)
    coadd.variance.array[:] = np.where(covered, 1.0 / np.where(covered, denominator, 1), 1)
    coadd.mask.array[~covered] |= coadd.mask.getPlaneBitMask("NO_DATA")
    return coadd


def evaluateField(manifest: Any, sets: dict[str, Any], models: dict[str, Any],
                  seed: int) -> list[dict[str, Any]]:
    """Every template of every held-out visit over every coverage bin, beside the coadd."""
    patch = sets["patch"]
    coverage = sets["footprints"].sum(axis=0)
    plainCoadd = sets["coadd"][patch]
    seenCoadd = _seenCoadd(sets, plainCoadd)
    rows = []
    for visit in manifest.visits("test"):
        science = readExposure(manifest.path(visit["file"]))[patch]
        truth = readExposure(manifest.path(visit["truthStatic"]))[patch]
        templates = {name: model.dcrModel.buildMatchedExposure(exposure=science)
                     for name, model in models.items()}
        templates["seenCoadd"] = seenCoadd
        for label, low, high in COVERAGE_BINS:
            select = np.ones(patch.shape, dtype=bool)
            if low is not None:
                select &= coverage >= low
            if high is not None:
                select &= coverage <= high
            chosen = {name: _masked(t, select) for name, t in templates.items()}
            chosen["coadd"] = _masked(plainCoadd, select)
            try:
                evaluations = evaluateTemplates(science, truth, chosen, manifest["sources"],
                                                manifest.transients(visit["id"]))
            except ValueError:  # no source in this bin
                continue
            base = evaluations["coadd"].residual.relativeResidual
            for name, evaluation in evaluations.items():
                rows.append({
                    "seed": seed, "visit": visit["id"], "airmass": float(visit["airmass"]),
                    "coverage": label, "template": name,
                    "residual": float(evaluation.residual.relativeResidual),
                    "vsCoadd": float(evaluation.residual.relativeResidual / base),
                    "falseDetections": int(evaluation.difference.numFalse),
                    "recovered": int(evaluation.difference.numRecovered),
                    "transients": int(evaluation.difference.numTransients),
                })
    return rows


def compareSubsets(manifest: Any, sets: dict[str, Any], models: dict[str, Any],
                   count: int, seed: int) -> list[dict[str, Any]]:
    """The partial model against full coverage by the same visits, subset by subset."""
    footprints = sets["footprints"]
    coverage = footprints.sum(axis=0)
    code = np.zeros(coverage.shape, dtype=np.int64)
    for j, footprint in enumerate(footprints):
        code |= footprint.astype(np.int64) << j
    well = (coverage >= 6) & (coverage < len(footprints))
    values, counts = np.unique(code[well], return_counts=True)
    rows = []
    patch = sets["patch"]
    for value in values[np.argsort(counts)[::-1][:count]]:
        members = [j for j in range(len(footprints)) if (value >> j) & 1]
        select = code == value
        subset = DcrAssembleCoadd(DcrAssembleConfig()).run([sets["full"][j] for j in members])
        for visit in manifest.visits("test"):
            science = readExposure(manifest.path(visit["file"]))[patch]
            truth = readExposure(manifest.path(visit["truthStatic"]))[patch]
            chosen = {
                "subsetFull": _masked(subset.dcrModel.buildMatchedExposure(exposure=science),
                                      select),
                "partial": _masked(models["partial"].dcrModel.buildMatchedExposure(
                    exposure=science), select),
                "coadd": _masked(sets["coadd"][patch], select),
            }
            try:
                evaluations = evaluateTemplates(science, truth, chosen, manifest["sources"],
                                                manifest.transients(visit["id"]))
            except ValueError:
                continue
            base = evaluations["coadd"].residual.relativeResidual
            rows.append({
                "seed": seed, "visit": visit["id"], "visits": len(members),
                "pixels": int(select.sum()),
                "subsetFull": evaluations["subsetFull"].residual.relativeResidual / base,
                "partial": evaluations["partial"].residual.relativeResidual / base,
            })
    return rows


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------
def printRows(rows: list[dict[str, Any]]) -> None:
    header = (f"{'seed':>4} {'visit':>5} {'airmass':>7} {'coverage':>8} {'template':<10} "
              f"{'residual':>9} {'vs coadd':>9} {'false det.':>10} {'transients':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['seed']:>4} {r['visit']:>5} {r['airmass']:>7.3f} {r['coverage']:>8} "
              f"{r['template']:<10} {r['residual']:>9.4f} {r['vsCoadd']:>9.3f} "
              f"{r['falseDetections']:>10d} {r['recovered']:>5d}/{r['transients']:<4d}")


def summarise(rows: list[dict[str, Any]], subsets: list[dict[str, Any]]) -> dict[str, Any]:
    """Ranges of the residual ratios and totals of false detections, per bin and template."""
    summary: dict[str, Any] = {}
    print("\nresidual / coadd's (min..max over held-out visits), false detections (total):")
    for label, _, _ in COVERAGE_BINS:
        selected = [r for r in rows if r["coverage"] == label]
        if not selected:
            continue
        coaddFalse = sum(r["falseDetections"] for r in selected if r["template"] == "coadd")
        line = f"  coverage {label:>4}: coadd {coaddFalse} false det."
        summary[label] = {"coaddFalseDetections": coaddFalse}
        for name in ("full", "partial", "detector", "seenCoadd"):
            mine = [r for r in selected if r["template"] == name]
            if not mine:
                continue
            ratios = [r["vsCoadd"] for r in mine]
            false = sum(r["falseDetections"] for r in mine)
            summary[label][name] = {"min": min(ratios), "max": max(ratios), "false": false}
            line += f" | {name} {min(ratios):.3f}..{max(ratios):.3f}, {false}"
        print(line)
    if subsets:
        print("\npartial coverage against full coverage by the same visits (residual / "
              "coadd's, pixels seen by exactly that subset):")
        for r in subsets:
            print(f"  seed {r['seed']} visit {r['visit']}: subset of {r['visits']} visits, "
                  f"{r['pixels']} px: full {r['subsetFull']:.3f}, partial {r['partial']:.3f}")
        summary["subsets"] = subsets
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parseArguments(argv)
    warnings.simplefilter("ignore")
    rows: list[dict[str, Any]] = []
    subsetRows: list[dict[str, Any]] = []
    seconds: dict[str, Any] = {}
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for seed in args.seeds:
            manifest = simulate(args, seed, Path(tmp))
            manifest = loadManifest(manifest.directory)
            sets = trainingSets(manifest, args, seed)
            coverage = sets["footprints"].sum(axis=0)
            print(f"  detector rotations (deg): {np.round(sets['rotations']).astype(int).tolist()}")
            counts = np.bincount(coverage.ravel()).tolist()
            print(f"  patch pixels covered by n detectors: {counts}")
            models, seconds[str(seed)] = buildModels(sets)
            rows += evaluateField(manifest, sets, models, seed)
            subsetRows += compareSubsets(manifest, sets, models, args.subsets, seed)
    print()
    printRows(rows)
    summary = summarise(rows, subsetRows)
    if args.json is not None:
        args.json.write_text(json.dumps({"arguments": {k: str(v) for k, v in vars(args).items()},
                                         "modelSeconds": seconds, "rows": rows,
                                         "summary": summary}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
