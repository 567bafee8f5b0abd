"""Start-up and fixed cost of the ``dcrmodel`` command, and batches of templates (issue 17).

Every figure is the fastest of ``--repeats`` runs of a whole command in a new process
(``--quick`` runs per repeat of the commands under a second; the batches in the first
``--batch-repeats``), printed as a ratio against ``python -c "import numpy"`` timed in the
same run (the machine's speed and load cancel out). Measured:

- the floor: ``python -c "import numpy, astropy.io.fits, astropy.wcs, astropy.coordinates,
  scipy.fft, scipy.ndimage"`` (what every template and assembly imports);
- ``dcrmodel --help``, ``dcrmodel --version``, ``dcrmodel template --help`` and
  ``python -c "import dcrmodel"``;
- a whole ``dcrmodel assemble`` (12 visits of 512^2, direct solver) and a whole
  ``dcrmodel template`` (one visit), with their own work subtracted to give the fixed cost:
  for ``assemble`` the run's total from its ``summary.json`` (reading, coadd, zenith
  directions, solving, stitching; not writing the outputs, which its fixed cost therefore
  includes), for ``template`` the time spent in reading the model and the exposure, making
  the template and writing it (the command's functions timed in the process);
- ``dcrmodel template MODEL VISIT... --out-dir DIR`` on ``--visits`` visits against as many
  one-visit commands: the per-visit cost of a batch;
- the fixed cost on a tiny field (``dcrmodel simulate --size 64 --visits 5 --test-visits 2``):
  a whole ``assemble`` of its 3 training visits and a whole ``template`` of one held-out
  visit, where reading the pixels and solving take a few hundredths of a second. Shown
  whole (an upper bound of the fixed cost) and minus the solve (``summary.json``'s
  ``solve``) or minus the forward model (the time in ``templateForExposure``, which also
  holds the first zenith-direction transform: a slight underestimate);
- where the fixed cost goes: ``python -c pass`` (the interpreter) and the imports of
  ``numpy``, ``scipy.fft, scipy.ndimage`` and ``astropy.wcs`` (which imports
  ``astropy.io.fits``, ``astropy.units`` and ``astropy.coordinates``) by themselves; and
  the tiny field's commands run in phases (`PHASED_COMMAND`: the interpreter's start, the
  imports of numpy, scipy, astropy and dcrmodel's modules one after the other, the
  command, the exit), ``--repeats`` x ``--quick`` times.

``--against SRC`` (a ``src`` folder of another checkout, for example of the commit before
this work, ``git archive BASE src | tar -x -C /tmp/base``) runs the same commands with that
code beside the current one, alternately, so the two can be compared in one run (a batch
is timed against that code's one-visit command if it has no batch form).

    python benchmarks/bench_startup.py --workdir /tmp/bench-startup [--against /tmp/base/src]

The field (``dcrmodel simulate --size 512 --visits 16 --test-visits 4``) and the model are
made in ``--workdir`` on the first run and kept. The current code's Earth-orientation cache
(`dcrmodel.physics.eopcache`) is put in ``WORKDIR/cache`` and filled by a first, untimed run.
Python's compiled bytecode is kept in ``WORKDIR/pycache`` (``PYTHONPYCACHEPREFIX``; a set
``PYTHONDONTWRITEBYTECODE`` is dropped), as an installed package has it: otherwise every
run would compile dcrmodel's modules again (about 0.1 s) and the source trees would be
written into.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: The console script, as pip writes it, with the functions of a template's work timed:
#: the seconds spent in them are printed to standard error as ``WORK <seconds>`` (and
#: ``WORK_<function> <seconds>`` for each).
TIMED_COMMAND = """
import atexit, importlib, sys, time
spent = [0.0]
each = {}
def timed(module, name):
    function = getattr(module, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
            each[name] = each.get(name, 0.0) + time.perf_counter() - start
    setattr(module, name, wrapper)
if sys.argv[1] in ("template", "diff") and "--help" not in sys.argv:
    try:
        module = importlib.import_module("dcrmodel.cli.templates")
    except ImportError:  # the code before the command line was split
        module = importlib.import_module("dcrmodel.cli.commands")
    for name in ("readDcrModel", "readExposure", "templateForExposure", "makeDifference",
                 "writeExposure"):
        timed(module, name)
    atexit.register(lambda: print(f"WORK {spent[0]:.6f}", file=sys.stderr))
    atexit.register(lambda: [print(f"WORK_{k} {v:.6f}", file=sys.stderr)
                             for k, v in each.items()])
from dcrmodel_command import main
sys.exit(main())
"""


#: The third-party modules that every template and assembly needs (FITS, WCS, AltAz
#: transforms, FFTs, image filters): the floor of their start-up.
FLOOR = "import numpy, astropy.io.fits, astropy.wcs, astropy.coordinates, scipy.fft, scipy.ndimage"


def _run(src: Path, argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run one command in a new process; return its wall time (s) and standard error."""
    code = ["-c", TIMED_COMMAND, *argv] if argv and argv[0] != "-c" else argv
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *code], capture_output=True, text=True,
                            env=dict(env, PYTHONPATH=str(src)))
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr}")
    return wall, result.stderr


#: A command run as the console script runs it, with the time stamps of its phases (the
#: imports of numpy, scipy, astropy and dcrmodel's command-line modules, in that order,
#: then the command, then the exit) printed to standard error.
PHASED_COMMAND = """
import sys, time
stamps = [time.time()]
import numpy
stamps.append(time.time())
import scipy.fft, scipy.ndimage
stamps.append(time.time())
import astropy.io.fits, astropy.wcs, astropy.coordinates
stamps.append(time.time())
import dcrmodel.cli.commands, dcrmodel.cli.templates
stamps.append(time.time())
from dcrmodel_command import main
status = main()
stamps.append(time.time())
print("STAMPS", *stamps, file=sys.stderr)
sys.exit(status)
"""

#: The phases of `PHASED_COMMAND`, and the interpreter's start before it and exit after it.
PHASES = ("interpreter start", "numpy", "scipy.fft, scipy.ndimage",
          "astropy.io.fits, .wcs, .coordinates", "dcrmodel's modules",
          "the command after its imports", "exit")


def _phases(src: Path, argv: list[str], env: dict[str, str]) -> list[float]:
    """Run a command once in phases; return the seconds of each of `PHASES`."""
    start = time.time()
    result = subprocess.run([sys.executable, "-c", PHASED_COMMAND, *argv], capture_output=True,
                            text=True, env=dict(env, PYTHONPATH=str(src)))
    end = time.time()
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr}")
    line = [x for x in result.stderr.splitlines() if x.startswith("STAMPS ")][-1]
    stamps = [float(x) for x in line.split()[1:]]
    return ([stamps[0] - start] + [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
            + [end - stamps[-1]])


def _work(stderr: str, name: str = "") -> float:
    prefix = f"WORK_{name} " if name else "WORK "
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    return float(lines[-1].split()[1]) if lines else 0.0


def _hasBatch(src: Path, env: dict[str, str]) -> bool:
    """Whether that code's ``template`` has the batch form (``--out-dir``)."""
    result = subprocess.run([sys.executable, "-c", TIMED_COMMAND, "template", "--help"],
                            capture_output=True, text=True, env=dict(env, PYTHONPATH=str(src)))
    return "--out-dir" in result.stdout


def _prepare(workdir: Path, env: dict[str, str]) -> tuple[Path, list[Path], list[Path]]:
    """The 512^2 field and its model (made once, kept in ``workdir``)."""
    field = workdir / "field"
    if not (field / "manifest.json").exists():
        print("simulating the field (512^2, 16 visits)...", flush=True)
        _run(SRC, ["simulate", "--out", str(field), "--size", "512", "--visits", "16",
                   "--test-visits", "4", "-q", "--overwrite"], env)
    manifest = json.loads((field / "manifest.json").read_text())
    training = [field / v["file"] for v in manifest["visits"] if v["role"] == "training"]
    test = [field / v["file"] for v in manifest["visits"] if v["role"] == "test"]
    model = workdir / "model"
    if not (model / "summary.json").exists():
        print("assembling the model...", flush=True)
        _run(SRC, ["assemble", *map(str, training), "--out", str(model), "-q", "--overwrite"],
             env)
    return model, training, test


def _prepareTiny(workdir: Path, env: dict[str, str]) -> tuple[Path, list[Path], Path]:
    """The tiny field (64^2, 3 training visits, 2 held out) and its model."""
    field = workdir / "tiny"
    if not (field / "manifest.json").exists():
        _run(SRC, ["simulate", "--out", str(field), "--size", "64", "--visits", "5",
                   "--test-visits", "2", "-q", "--overwrite"], env)
    manifest = json.loads((field / "manifest.json").read_text())
    training = [field / v["file"] for v in manifest["visits"] if v["role"] == "training"]
    test = [field / v["file"] for v in manifest["visits"] if v["role"] == "test"]
    model = workdir / "tiny-model"
    if not (model / "summary.json").exists():
        _run(SRC, ["assemble", *map(str, training), "--out", str(model), "-q", "--overwrite"],
             env)
    return model, training, test[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--against", type=Path, help="src folder of the code to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", type=int, default=3,
                        help="runs per repeat of the commands that take under a second")
    parser.add_argument("--batch-repeats", type=int, default=2,
                        help="repeats that time the batch and the one-visit commands")
    parser.add_argument("--visits", type=int, default=8,
                        help="visits of the batch (default 8: the 4 held-out and 4 training)")
    parser.add_argument("--json", type=Path, help="keep the figures")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DCRMODEL_CACHE_DIR=str(args.workdir / "cache"),
               PYTHONPYCACHEPREFIX=str(args.workdir / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    model, training, test = _prepare(args.workdir, env)
    tinyModel, tinyTraining, tinyTest = _prepareTiny(args.workdir, env)
    visits = (test + training)[: args.visits]
    codes = {"current": SRC} | ({"against": args.against} if args.against else {})
    scratch = Path(tempfile.mkdtemp(prefix="bench-startup-", dir=args.workdir))
    hasBatch = {name: _hasBatch(src, env) for name, src in codes.items()}

    def commands(name: str) -> dict[str, list[str]]:
        out = scratch / name
        return {
            "numpy": ["-c", "import numpy"],
            "python -c pass": ["-c", "pass"],
            "import scipy.fft, scipy.ndimage": ["-c", "import scipy.fft, scipy.ndimage"],
            "import astropy.wcs": ["-c", "import astropy.wcs"],
            "floor": ["-c", FLOOR],
            "import dcrmodel": ["-c", "import dcrmodel"],
            "--help": ["--help"],
            "--version": ["--version"],
            "template --help": ["template", "--help"],
            "assemble": ["assemble", *map(str, training), "--out", str(out / "model"), "-q",
                         "--overwrite"],
            "template": ["template", str(model), str(visits[0]), "--out",
                         str(out / "template.fits"), "-q", "--overwrite"],
            "assemble (tiny)": ["assemble", *map(str, tinyTraining), "--out",
                                str(out / "tiny-model"), "-q", "--overwrite"],
            "template (tiny)": ["template", str(tinyModel), str(tinyTest), "--out",
                                str(out / "tiny-template.fits"), "-q", "--overwrite"],
        }

    best: dict[str, dict[str, float]] = {name: {} for name in codes}
    work: dict[str, dict[str, float]] = {name: {} for name in codes}
    for name, src in codes.items():  # warm the file cache and the Earth-orientation cache
        for argv in commands(name).values():
            _run(src, argv, env)
    quick = {"numpy", "python -c pass", "import scipy.fft, scipy.ndimage", "import astropy.wcs",
             "floor", "import dcrmodel", "--help", "--version", "template --help",
             "assemble (tiny)", "template (tiny)"}
    for repeat in range(args.repeats):
        print(f"repeat {repeat + 1} of {args.repeats}", flush=True)
        for name, src in codes.items():
            for label, argv in commands(name).items():
                for _ in range(args.quick if label in quick else 1):
                    wall, stderr = _run(src, argv, env)
                    if label == "assemble":
                        summary = json.loads(
                            (scratch / name / "model" / "summary.json").read_text())
                        spent = summary["timings"]["total"]
                    elif label == "assemble (tiny)":
                        summary = json.loads(
                            (scratch / name / "tiny-model" / "summary.json").read_text())
                        spent = summary["timings"]["solve"]
                    elif label == "template (tiny)":
                        spent = _work(stderr, "templateForExposure")
                    else:
                        spent = _work(stderr)
                    if wall < best[name].get(label, float("inf")):
                        best[name][label], work[name][label] = wall, spent
            if repeat >= args.batch_repeats:
                continue
            # the batch against one command per visit
            out = scratch / name / "batch"
            singles = 0.0
            for visit in visits:
                singles += _run(src, ["template", str(model), str(visit), "--out",
                                      str(out / visit.name), "-q", "--overwrite"], env)[0]
            best[name]["singles"] = min(best[name].get("singles", float("inf")), singles)
            if hasBatch[name]:
                wall, _ = _run(src, ["template", str(model), *map(str, visits), "--out-dir",
                                     str(out), "-q", "--overwrite"], env)
                best[name]["batch"] = min(best[name].get("batch", float("inf")), wall)
    phases: dict[str, dict[str, list[list[float]]]] = {name: {} for name in codes}
    for _ in range(args.repeats * args.quick):  # where the tiny field's fixed cost goes
        for name, src in codes.items():
            for label in ("assemble (tiny)", "template (tiny)"):
                phases[name].setdefault(label, []).append(
                    _phases(src, commands(name)[label], env))
    shutil.rmtree(scratch, ignore_errors=True)
    _report(best, work, codes, len(visits), args)
    _reportPhases(phases, codes)


def _report(best, work, codes, numVisits, args) -> None:
    print(f"\nfastest of {args.repeats} ({args.repeats * args.quick} for the commands under a "
          f"second, {min(args.batch_repeats, args.repeats)} for the batches); ratio = time / "
          "(python -c 'import numpy') of the same code's column\n")
    header = "| command | " + " | ".join(
        f"{name} (s) | {name} / numpy" for name in codes) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(codes)))
    labels = ["numpy", "python -c pass", "import scipy.fft, scipy.ndimage", "import astropy.wcs",
              "floor", "import dcrmodel", "--help", "--version", "template --help",
              "assemble", "template", "assemble (tiny)", "template (tiny)"]
    for label in labels:
        cells = []
        for name in codes:
            wall = best[name][label]
            cells += [f"{wall:.3f}", f"{wall / best[name]['numpy']:.2f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")
        if label in ("assemble", "template", "assemble (tiny)", "template (tiny)"):
            cells = []
            for name in codes:
                fixed = best[name][label] - work[name][label]
                cells += [f"{fixed:.3f}", f"{fixed / best[name]['numpy']:.2f}"]
            what = {"assemble (tiny)": "whole - solve",
                    "template (tiny)": "whole - templateForExposure"}.get(label,
                                                                         "whole - own work")
            print(f"| {label}: fixed ({what}) | " + " | ".join(cells) + " |")
    print()
    reference = best["against" if "against" in codes else "current"]["singles"] / numVisits
    for name in codes:
        single = best[name]["singles"] / numVisits
        line = (f"{name}: {numVisits} one-visit template commands {best[name]['singles']:.2f} s "
                f"({single:.3f} s per visit)")
        if "batch" in best[name]:
            batch = best[name]["batch"] / numVisits
            line += (f"; one batch {best[name]['batch']:.2f} s ({batch:.3f} s per visit): "
                     f"per visit {batch / single:.3f} of this code's one-visit command, "
                     f"{batch / reference:.3f} of the reference's")
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"best": best, "work": work,
                                         "visits": numVisits}, indent=1))


def _reportPhases(phases, codes) -> None:
    print("\nphases of the tiny field's commands, s (median of the runs; the minimum in "
          "brackets):\n")
    labels = [(name, label) for name in codes for label in ("assemble (tiny)", "template (tiny)")]
    print("| phase | " + " | ".join(f"{name}: {label}" for name, label in labels) + " |")
    print("|" + "---|" * (1 + len(labels)))
    for index, phase in enumerate((*PHASES, "whole")):
        cells = []
        for name, label in labels:
            runs = phases[name][label]
            values = [sum(run) if phase == "whole" else run[index] for run in runs]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.3f})")
        print(f"| {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
