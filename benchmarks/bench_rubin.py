"""The Rubin middleware's steps on a detector-frame field, beside the command line's.

A g-band field is simulated with every visit on its own detector grid (``dcrmodel simulate
--detector-frames``: rotations 0-360 degrees, pointing offsets of 3 % of a detector, the
patch 1.5 times a detector's width). The same files then go two ways, each step a command
as a user types it (a fresh process each, start-up included), timed in one run:

- the repository: ``dcrmodel butler init``, ``dcrmodel butler ingest`` (training visits
  into one run, test visits into another, ``--grid`` the coadd file's grid), ``pipetask
  qgraph`` and ``pipetask run`` of the subset ``dcrModel`` (``dcrMakeWarp`` and
  ``dcrAssembleCoadd``) and of ``dcrTemplate`` for the test visits (``-d "visit IN
  (...)"``);
- the command line: ``dcrmodel assemble --grid`` and ``dcrmodel template`` of the test
  visits.

The two models are compared byte for byte, and a test visit's template too. The start-up
of a process that imports the middleware (``import dcrmodel.pipeline``, ``pipetask
--help``) is timed as well: every repository step pays it. Ratios are
the repository's steps over the command line's. Run ``python benchmarks/bench_rubin.py``
(``--size 256 --visits 15 --test-visits 3``; ``--help`` for the options). Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dcrmodel.simulate import loadManifest

BIN = Path(sys.executable).parent


def parseArguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="detector width in pixels (256)")
    parser.add_argument("--visits", type=int, default=15, help="visits in all (15)")
    parser.add_argument("--test-visits", type=int, default=3, dest="testVisits",
                        help="test visits (3)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the field and the outputs (default: a temporary one)")
    return parser.parse_args(argv)


def command(args: list[str], cwd: Path) -> float:
    """Run one command; return its wall-clock seconds."""
    tic = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=os.environ)
    seconds = time.perf_counter() - tic
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    """Simulate the field, run both ways and print the table."""
    options = parseArguments(argv)
    work = options.workdir or Path(tempfile.mkdtemp(prefix="bench-rubin-"))
    work.mkdir(parents=True, exist_ok=True)
    dcr, pipetask = str(BIN / "dcrmodel"), str(BIN / "pipetask")
    command([dcr, "simulate", "--out", "sim", "--size", str(options.size), "--visits",
             str(options.visits), "--test-visits", str(options.testVisits),
             "--detector-frames", "--no-progress", "-q", "--overwrite"], work)
    manifest = loadManifest(work / "sim")
    training = [str(manifest.path(v["file"])) for v in manifest.visits()
                if v["role"] == "training"]
    test = [str(manifest.path(v["file"])) for v in manifest.visits() if v["role"] == "test"]
    grid = str(work / "sim" / "coadd.fits")
    pipeline = subprocess.run([dcr, "butler", "pipeline"], capture_output=True, text=True,
                              check=True).stdout.strip()
    for old in ("repo", "cli-model"):
        subprocess.run(["rm", "-rf", str(work / old)], check=True)
    steps: dict[str, float] = {}
    steps["butler init"] = command([dcr, "butler", "init", "repo", "--bands", "g", "-q"], work)
    steps["ingest"] = command([dcr, "butler", "ingest", "repo", *training, "--grid", grid,
                               "--run", "in", "-q"], work)
    steps["ingest"] += command([dcr, "butler", "ingest", "repo", *test, "--grid", grid,
                                "--run", "in-test", "-q"], work)
    common = ["-b", "repo"]
    steps["graph (model)"] = command(
        [pipetask, "qgraph", *common, "-i", "in", "-o", "model", "-p", f"{pipeline}#dcrModel",
         "--save-qgraph", "model.qgraph"], work)
    steps["run (model)"] = command(
        [pipetask, "run", *common, "-i", "in", "-o", "model", "-g", "model.qgraph"], work)
    testIds = ", ".join(str(v["id"]) for v in manifest.visits() if v["role"] == "test")
    steps["graph (templates)"] = command(
        [pipetask, "qgraph", *common, "-i", "model,in-test", "-o", "templates", "-p",
         f"{pipeline}#dcrTemplate", "-d", f"visit IN ({testIds})",
         "--save-qgraph", "templates.qgraph"], work)
    steps["run (templates)"] = command(
        [pipetask, "run", *common, "-i", "model,in-test", "-o", "templates", "-g",
         "templates.qgraph"], work)
    startup = {
        "start-up: import dcrmodel.pipeline": command(
            [sys.executable, "-c", "import dcrmodel.pipeline"], work),
        "start-up: pipetask --help": command([pipetask, "--help"], work),
    }
    cli = {"assemble --grid": command([dcr, "assemble", *training, "--grid", grid, "--out",
                                       "cli-model", "-q"], work)}
    cli["template"] = 0.0
    for index, visit in enumerate(test):
        cli["template"] += command([dcr, "template", "cli-model", visit, "--out",
                                    f"cli-template-{index}.fits", "--overwrite", "-q"], work)
    same = compare(work, len(test))
    print(f"field: {len(training)} training and {len(test)} test visits of "
          f"{options.size}^2 on their own detector grids; work folder {work}")
    print("| step | repository (s) | command line (s) | ratio |")
    print("|---|---|---|---|")
    for name, seconds in steps.items():
        print(f"| {name} | {seconds:.1f} | | |")
    model = steps["graph (model)"] + steps["run (model)"]
    templates = steps["graph (templates)"] + steps["run (templates)"]
    print(f"| model: graph + run / assemble --grid | {model:.1f} | "
          f"{cli['assemble --grid']:.1f} | {model / cli['assemble --grid']:.2f}x |")
    print(f"| templates: graph + run / template x {len(test)} | {templates:.1f} | "
          f"{cli['template']:.1f} | {templates / cli['template']:.2f}x |")
    total = sum(steps.values())
    cliTotal = sum(cli.values())
    print(f"| everything | {total:.1f} | {cliTotal:.1f} | {total / cliTotal:.2f}x |")
    for name, seconds in startup.items():
        print(f"| {name} | {seconds:.1f} | | |")
    print(f"model files identical: {same[0]}; first test visit's template identical: {same[1]}")


def compare(work: Path, numTest: int) -> tuple[bool, bool]:
    """Return whether the models and the first test visit's templates are the same bytes."""
    from lsst.daf.butler import Butler

    from dcrmodel.fits import readExposure

    butler = Butler.from_config(str(work / "repo"), collections="templates")
    models = []
    for ref in sorted(butler.query_datasets("dcrCoadd", explain=False),
                      key=lambda r: r.dataId["subfilter"]):
        stored = Path(butler.getURI(ref).ospath).read_bytes()
        models.append(stored == (work / "cli-model" /
                                 f"dcrCoadd_{ref.dataId['subfilter']}.fits").read_bytes())
    template = False
    if numTest:
        cliTemplate = work / "cli-template-0.fits"
        visit = int(readExposure(cliTemplate).visitInfo.id)
        ref = butler.find_dataset("dcrTemplate", instrument="DcrModel", visit=visit,
                                  detector=0)
        template = Path(butler.getURI(ref).ospath).read_bytes() == cliTemplate.read_bytes()
    return bool(models) and all(models), template


if __name__ == "__main__":
    main()
