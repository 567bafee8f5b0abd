"""The PSF-matching damping of the assembly: held-out templates for several values side by side.

`DcrAssembleConfig.psfDamping` sets how strongly the direct solver's forward model damps the
PSF matching of a visit to the model where the visit is sharper than the model at some
frequency (`dcrmodel.psf.psfMatchingTransfer`: ``epsilon = psfDamping * max|OTF_model|``).
Too little damping lets the model's noise through those frequencies, too much loses signal.
This script builds the model of the same fields with each value asked (direct solver, every
other setting at its default) and measures, for every held-out visit, the template made by
`DcrModel.buildMatchedExposure` (its own defaults) against the plain coadd's:

- the relative residual against the true static sky, as a ratio to the coadd's;
- false 5 sigma detections in the difference image (`dcrmodel.diffim.metrics.evaluateVisit`).

Fields (`SimulationConfig`, ``--size`` pixels, 12 training and 3 held-out visits):

- *constant*: 0.7 arcsec Kolmogorov seeing, training airmass 1.0-2.0, held-out visits at
  1.15-1.87 (the field of the survey-geometry benchmarks, without detector frames);
- *variable*: 0.6-1.2 arcsec seeing with a chromatic exponent of -0.2 over two nights (the
  field of ``bench_psf.py``);
- *moffat*, *gaussian*: 0.6-1.1 arcsec seeing with Moffat or Gaussian PSFs, airmasses as
  *constant* (``--fields moffat gaussian``; not run by default).

Run ``python benchmarks/bench_damping.py`` (about 10 minutes on two cores; ``--seeds``,
``--fields``, ``--dampings``, ``--size``; ``--workdir DIR`` keeps the simulations). Nothing
is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dcrmodel.assemble import DcrAssembleCoadd, DcrAssembleConfig
from dcrmodel.diffim.metrics import evaluateVisit
from dcrmodel.fits.exposure import readExposure
from dcrmodel.simulate import SimulationConfig, loadManifest, runSimulation

FIELDS = {
    "constant": {"trainingAirmass": (1.0, 2.0), "testAirmass": (1.15, 1.87)},
    "variable": {"nights": 2, "seeing": (0.6, 1.2), "chromaticSeeing": -0.2},
    "moffat": {"psfProfile": "moffat", "seeing": (0.6, 1.1), "trainingAirmass": (1.0, 2.0),
               "testAirmass": (1.15, 1.87)},
    "gaussian": {"psfProfile": "gaussian", "seeing": (0.6, 1.1), "trainingAirmass": (1.0, 2.0),
                 "testAirmass": (1.15, 1.87)},
}


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dampings", type=float, nargs="+", default=[1e-3, 3e-3, 5e-3, 1e-2],
                        help="values of psfDamping (1e-3 3e-3 5e-3 1e-2)")
    parser.add_argument("--fields", nargs="+", choices=sorted(FIELDS),
                        default=["constant", "variable"], help="fields (constant variable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="simulation seeds (0 1 2)")
    parser.add_argument("--size", type=int, default=384, help="field width in pixels (384)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the fields here")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    return parser.parse_args(argv)


def simulate(folder: Path, field: str, seed: int, size: int) -> Any:
    """The field's simulation in ``folder`` (made once)."""
    if not (folder / "manifest.json").is_file():
        config = SimulationConfig(size=size, numTraining=12, numTest=3, **FIELDS[field])
        runSimulation(folder, config, seed=seed)
    return loadManifest(folder)


def evaluate(manifest: Any, damping: float) -> list[dict[str, Any]]:
    """Build with ``psfDamping = damping``; measure every held-out visit's template."""
    paths = [manifest.path(v["file"]) for v in manifest.visits("training")]
    result = DcrAssembleCoadd(DcrAssembleConfig(psfDamping=damping)).run(
        paths, coadd=manifest.coaddPath)
    model = result.dcrModel
    rows = []
    for visit in manifest.visits("test"):
        science = readExposure(manifest.path(visit["file"]))
        template = model.buildMatchedExposure(exposure=science[model.bbox])
        evaluation = evaluateVisit(manifest, visit["id"], {"dcr": template})
        dcr, coadd = evaluation["dcr"], evaluation["coadd"]
        rows.append({
            "visit": visit["id"],
            "airmass": float(visit["airmass"]),
            "vsCoadd": float(dcr.residual.relativeResidual / coadd.residual.relativeResidual),
            "falseDetections": int(dcr.difference.numFalse),
            "coaddFalseDetections": int(coadd.difference.numFalse),
        })
    return rows


def printTable(results: dict[str, dict[float, list[dict[str, Any]]]],
               dampings: list[float]) -> None:
    header = "| field | visit | airmass | " + " | ".join(f"{d:g}" for d in dampings) + " |"
    print(header)
    print("|---" * (3 + len(dampings)) + "|")
    for name, byDamping in results.items():
        for index, first in enumerate(byDamping[dampings[0]]):
            cells = [f"{row['vsCoadd']:.3f} ({row['falseDetections']})"
                     for row in (byDamping[d][index] for d in dampings)]
            print(f"| {name} | {first['visit']} | {first['airmass']:.2f} | "
                  + " | ".join(cells) + " |")
    means = [np.mean([row["vsCoadd"] for rows in (r[d] for r in results.values())
                      for row in rows]) for d in dampings]
    print("| mean | | | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    print("\ncells: the template's residual over the coadd's (false 5 sigma detections)")


def main(argv: list[str] | None = None) -> int:
    args = parseArguments(argv)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as scratch:
        root = args.workdir or Path(scratch)
        results: dict[str, dict[float, list[dict[str, Any]]]] = {}
        for field in args.fields:
            for seed in args.seeds:
                name = f"{field} {seed}"
                manifest = simulate(root / f"{field}-{seed}-{args.size}", field, seed, args.size)
                results[name] = {}
                for damping in args.dampings:
                    results[name][damping] = evaluate(manifest, damping)
                    print(f"  {name}, psfDamping {damping:g}: "
                          + ", ".join(f"{r['vsCoadd']:.3f}" for r in results[name][damping]),
                          file=sys.stderr, flush=True)
        printTable(results, args.dampings)
    if args.json is not None:
        args.json.write_text(json.dumps(
            {name: {str(d): rows for d, rows in byDamping.items()}
             for name, byDamping in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
