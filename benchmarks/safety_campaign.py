"""A careful user and an adversary against every command: what does each case end in?

Runs a broad set of cases across ``assemble``, ``assemble-patches``, ``template``,
``diff``, ``warp``, ``simulate`` and the Python API on a tiny simulated field (48x48
pixels, 4 training visits, 1 test visit), covering the twelve classes of defect of the
safety issue, and classifies each:

- ``clear``: a one-line error (exit 2, or a `dcrmodel.errors` exception) that says what
  is wrong (it matches what the case expects);
- ``correct``: the command succeeds and its output is right (the case's check);
- ``unclear``: an error whose message does not say what is wrong, or spans lines;
- ``traceback``: a Python traceback (exit 1, or a non-dcrmodel exception from the API);
- ``silently wrong``: success where an error was due, or a wrong output;
- ``damaged``: an earlier output changed by a run that failed;
- ``leftovers``: hidden files left beside an output after the case.

Usage::

    PYTHONPATH=src python benchmarks/safety_campaign.py [--workdir DIR] [--markdown PATH]

It takes about 30 seconds here. ``--markdown`` writes the table (into the section "Last
run" of a document that has one: docs/safety.md holds the last run's).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
#: Run on an older dcrmodel (``PYTHONPATH`` of another checkout) for a before/after table:
#: what is missing there is stood in for by what a user had then.
sys.path.insert(0, str(ROOT / "tests"))

import dcrmodel  # noqa: E402
from dcrmodel.assemble import DcrAssembleCoadd, DcrAssembleConfig, assembleFromFiles  # noqa: E402
from dcrmodel.cli.main import main  # noqa: E402
from dcrmodel.diffim import (  # noqa: E402
    detectSources,
    footprintMask,
    improvement,
    makeDifference,
    templateForExposure,
)
from dcrmodel.errors import DcrError  # noqa: E402
from dcrmodel.fits import readDcrModel, readExposure, writeDcrModel, writeExposure  # noqa: E402
from dcrmodel.image import Filter, Image  # noqa: E402
from dcrmodel.model import DcrModel  # noqa: E402
from dcrmodel.simulate import loadManifest  # noqa: E402
from dcrmodel.warp import warpExposure  # noqa: E402
from helpers.safety import hidden, runChild, snapshot, tinyField  # noqa: E402

CLASSES = {
    1: "model folder replaced in one step",
    2: "one writer per output",
    3: "difference image and detections as one pair",
    4: "science exposure checked (variance, band)",
    5: "coadd of another band",
    6: "duplicate visits",
    7: "configuration keys used or refused",
    8: "model files of one run",
    9: "one-line errors for system errors",
    10: "leftovers of killed runs",
    11: "clear messages for damaged or odd inputs",
    12: "Python API",
    13: "an output that is an input, or another kind of output",
}

#: The section of a document that the table replaces (`--markdown`).
MARKER = "## Last run\n\n"

OUTCOMES = ["clear", "correct", "unclear", "traceback", "silently wrong", "damaged", "leftovers"]


@dataclass
class Case:
    """One case: its defect class, area, description and what it ended in."""

    defect: int
    area: str
    name: str
    outcome: str = ""
    detail: str = ""


class Campaign:
    """The field, the scratch folder and the cases run so far."""

    def __init__(self, work: Path) -> None:
        self.work = work
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.field = tinyField(work)
            self.other = work / "other-model"
            assembleFromFiles(self.field.training, self.other,
                              config=DcrAssembleConfig(doAirmassWeight=True))
        self.manifest = loadManifest(work / "field")
        self.cases: list[Case] = []
        self.count = 0

    # ------------------------------------------------------------------ helpers
    def scratch(self) -> Path:
        self.count += 1
        folder = self.work / f"case{self.count:03d}"
        folder.mkdir()
        return folder

    def exposureWith(self, folder: Path, change: Callable, name: str = "science.fits") -> Path:
        exposure = readExposure(self.field.test)
        change(exposure)
        path = folder / name
        writeExposure(exposure, path)
        return path

    def record(self, defect: int, area: str, name: str, outcome: str, detail: str) -> None:
        detail = " ".join(detail.replace(str(self.work), "…").split())
        detail = re.sub(r" \[(path|folders)=.*?\]$", "", detail)
        self.cases.append(Case(defect, area, name, outcome, detail[:160]))

    def cli(self, defect: int, name: str, argv: list, *, error: str | None = None,
            check: Callable[[], bool] | None = None, protect: Path | None = None,
            folder: Path | None = None) -> None:
        """Run a command in this process; classify by exit status, message and files."""
        before = snapshot(protect) if protect is not None and protect.exists() else None
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    code = main([*map(str, argv), "-q"])
        except BaseException as exc:  # noqa: BLE001 - a traceback is what is measured
            self.record(defect, str(argv[0]), name, "traceback",
                        f"{type(exc).__name__}: {exc}")
            return
        self._classify(defect, str(argv[0]), name, code, stderr.getvalue(), error, check,
                       protect, before, folder)

    def child(self, defect: int, area: str, name: str, function: Callable, *,
              error: str | None = None, check: Callable[[], bool] | None = None,
              protect: Path | None = None, folder: Path | None = None,
              fileSizeLimit: int | None = None, killAfter: float | None = None) -> None:
        """Run ``function(gate)`` in a forked child (kills, file-size limits)."""
        before = snapshot(protect) if protect is not None and protect.exists() else None
        process = runChild(function, fileSizeLimit=fileSizeLimit)
        if killAfter is not None:
            time.sleep(killAfter)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        code, err = process.wait()
        if code == 1 and "Traceback" in err:
            self.record(defect, area, name, "traceback", err.strip().splitlines()[-1])
            return
        self._classify(defect, area, name, code, err, error, check, protect, before, folder)

    def _classify(self, defect, area, name, code, err, error, check, protect, before, folder):
        lines = [line for line in err.strip().splitlines() if line]
        errorLines = [line for line in lines if ": error: " in line or "interrupted" in line]
        if before is not None and protect.exists() and snapshot(protect) != before and (
                error is not None or code != 0):
            self.record(defect, area, name, "damaged", "the earlier output changed")
            return
        if before is not None and not protect.exists():
            self.record(defect, area, name, "damaged", "the earlier output is gone")
            return
        if folder is not None and hidden(folder):
            left = [n for n in hidden(folder) if not n.endswith(".lock")] or hidden(folder)
            self.record(defect, area, name, "leftovers", ", ".join(left))
            return
        if code == 1 or "Traceback" in err:
            self.record(defect, area, name, "traceback", lines[-1] if lines else "")
            return
        if error is not None:
            if code == 0:
                self.record(defect, area, name, "silently wrong", "exit 0")
            elif len(errorLines) == 1 and re.search(error, errorLines[0]):
                self.record(defect, area, name, "clear", errorLines[0])
            else:
                self.record(defect, area, name, "unclear", " | ".join(lines))
            return
        if code != 0:
            self.record(defect, area, name, "unclear", " | ".join(lines))
        elif check is not None and not _passes(check):
            self.record(defect, area, name, "silently wrong", "the output's check failed")
        else:
            self.record(defect, area, name, "correct", "")

    def api(self, defect: int, area: str, name: str, call: Callable, *,
            error: str | None = None, errorType: type = DcrError,
            check: Callable[[object], bool] | None = None) -> None:
        """Call the API; a dcrmodel error matching ``error`` is clear."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = call()
        except errorType as exc:
            if error is None:
                self.record(defect, area, name, "unclear", f"{type(exc).__name__}: {exc}")
            elif re.search(error, str(exc)):
                self.record(defect, area, name, "clear", f"{type(exc).__name__}: {exc}")
            else:
                self.record(defect, area, name, "unclear", f"{type(exc).__name__}: {exc}")
            return
        except BaseException as exc:  # noqa: BLE001
            self.record(defect, area, name, "traceback",
                        f"{type(exc).__name__}: {exc} "
                        f"({traceback.extract_tb(exc.__traceback__)[-1].name})")
            return
        if error is not None:
            self.record(defect, area, name, "silently wrong", "no error")
        elif check is not None and not check(value):
            self.record(defect, area, name, "silently wrong", "the result's check failed")
        else:
            self.record(defect, area, name, "correct", "")


# ------------------------------------------------------------------------------------------
# the cases, by defect class
# ------------------------------------------------------------------------------------------
def _passes(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - a check that cannot run has not passed
        return False


def readDifference(path: Path) -> object:
    """`dcrmodel.diffim.readDifference`; before it existed, the two files as they are."""
    import dcrmodel.diffim

    reader = getattr(dcrmodel.diffim, "readDifference", None)
    if reader is None:
        return readExposure(path), json.loads(path.with_suffix(".json").read_text())
    return reader(path)


def modelFiles(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def casesAtomicModel(c: Campaign) -> None:
    """1 and 10: the model folder is replaced in one step; kills leave nothing behind."""
    f = c.field
    old = snapshot(f.model)
    probe = c.scratch() / "m"
    tic = time.perf_counter()
    assembleFromFiles(f.training, probe, config=DcrAssembleConfig(doAirmassWeight=True))
    seconds = time.perf_counter() - tic
    new = snapshot(probe)
    for fraction in (0.1, 0.4, 0.7, 0.95, 1.3):
        folder = c.scratch()
        out = folder / "m"
        shutil.copytree(f.model, out)

        def run(gate, out=out):
            return assembleFromFiles(f.training, out, overwrite=True,
                                     config=DcrAssembleConfig(doAirmassWeight=True)) and 0

        process = runChild(run)
        time.sleep(fraction * seconds)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
        state = snapshot(out) if out.exists() else None
        fits_ = {k: v for k, v in (state or {}).items() if k.endswith(".fits")}
        whole = state == old or fits_ == {k: v for k, v in new.items() if k.endswith(".fits")}
        c.record(1, "assemble", f"SIGKILL at {fraction:.0%} of a run replacing a model",
                 "correct" if whole else "damaged", "" if whole else str(sorted(state or [])))
        c.cli(10, f"rerun after the SIGKILL at {fraction:.0%}: leftovers removed",
              ["assemble", *f.training, "--out", out, "--overwrite"],
              check=lambda out=out: modelFiles(out) == modelFiles(f.model), folder=folder)
    # a run that fails keeps the old model
    folder = c.scratch()
    out = folder / "m"
    shutil.copytree(f.model, out)
    c.cli(1, "a failing run (bad coadd) keeps the old model",
          ["assemble", *f.training, "--coadd", folder / "none.fits", "--out", out, "--overwrite"],
          error="(coadd file does not exist|not found)", protect=out, folder=folder)
    # leftovers planted as a killed run leaves them
    for kind in ("tmp folder", "old folder", "tmp file"):
        folder = c.scratch()
        out = folder / "m"
        shutil.copytree(f.model, out)
        if kind == "tmp folder":
            (folder / ".m.abc123.tmp").mkdir()
            (folder / ".m.abc123.tmp" / "dcrCoadd_0.fits").write_bytes(b"partial")
        elif kind == "old folder":
            shutil.copytree(f.model, folder / ".m.abc123.old")
        else:
            (folder / ".m.tmp.xyz.fits").write_bytes(b"partial")
        c.cli(10, f"a {kind} left by a killed run is removed by the next run",
              ["assemble", *f.training, "--out", out, "--overwrite"],
              check=lambda out=out: modelFiles(out) == modelFiles(f.model), folder=folder)
    folder = c.scratch()
    (folder / ".t.fits.tmp.xyz.fits").write_bytes(b"partial")
    c.cli(10, "a template's temporary file left by a killed run is removed",
          ["template", f.model, f.test, "--out", folder / "t.fits"],
          check=lambda folder=folder: (folder / "t.fits").is_file(), folder=folder)


def casesWriters(c: Campaign) -> None:
    """2: a second run on an output that another run is writing fails at once."""
    from dcrmodel.atomic import outputLock
    from helpers.safety import waitAtGate

    f = c.field
    commands = {
        "assemble": lambda out: ["assemble", *f.training, "--out", out],
        "template": lambda out: ["template", f.model, f.test, "--out", out],
        "diff": lambda out: ["diff", f.model, f.test, "--out", out],
        "warp": lambda out: ["warp", f.test, "--grid", f.training[0], "--out", out],
        "simulate": lambda out: ["simulate", "--out", out, "--size", "32", "--visits", "3"],
    }
    for name, argv in commands.items():
        folder = c.scratch()
        out = folder / ("o.fits" if name in ("template", "diff") else "o")

        def hold(gate, out=out):
            with outputLock(out):
                (gate.parent / "held").write_text("")
                waitAtGate(gate)

        holder = runChild(hold)
        deadline = time.monotonic() + 30
        while not (holder.gate.parent / "held").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        c.cli(2, f"a second {name} on an output being written", argv(out),
              error=r"another dcrmodel run is writing .* right now")
        holder.open()
        holder.wait()
    folder = c.scratch()
    out = folder / "m"

    def holdModel(gate, out=out):
        with outputLock(out):
            (gate.parent / "held").write_text("")
            waitAtGate(gate)

    holder = runChild(holdModel)
    while not (holder.gate.parent / "held").exists():
        time.sleep(0.01)
    model = readDcrModel(f.model)
    c.api(2, "writeDcrModel", "writeDcrModel on a folder another run writes",
          lambda: writeDcrModel(model, out), error="another dcrmodel run is writing")
    holder.open()
    holder.wait()
    # two runs started together: one writes, the other fails at once (never both exit 0)
    folder = c.scratch()
    out = folder / "m"
    runs = [runChild(lambda gate: main(["assemble", *map(str, f.training), "--out", str(out),
                                        "-q"])) for _ in range(2)]
    codes = sorted(run.wait()[0] for run in runs)
    c.record(2, "assemble", "two assemble runs started together on one new output",
             "correct" if codes in ([0, 2],) and modelFiles(out) == modelFiles(f.model)
             else "silently wrong", f"exit statuses {codes}")


def casesDiffPair(c: Campaign) -> None:
    """3: the difference image and its detections are one pair."""
    f = c.field

    def diffArgs(out, *extra):
        return ["diff", f.model, f.test, "--out", out, *extra]

    folder = c.scratch()
    out = folder / "d.fits"
    c.cli(3, "diff writes a pair that reads back as one", diffArgs(out),
          check=lambda: readDifference(out) is not None, folder=folder)
    c.cli(3, "diff onto a whole earlier pair without --overwrite", diffArgs(out),
          error=r"d.fits and d.json exist; pass --overwrite", protect=folder)
    # killed between the two renames
    real = os.replace

    def killed(gate, out=out):
        def replace(source, target, *args, **kwargs):
            if str(target) == str(out.with_suffix(".json")):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(source, target, *args, **kwargs)

        os.replace = replace
        return main([*map(str, diffArgs(out, "--overwrite", "--threshold", "3")), "-q"])

    runChild(killed).wait()
    c.api(3, "readDifference", "reading a pair whose run was killed between the two files",
          lambda: readDifference(out), error="are not one pair")
    c.cli(3, "rerun without --overwrite after a kill between the two files", diffArgs(out),
          error=r"not one pair .* an earlier run was stopped while writing them; pass "
          "--overwrite")
    c.cli(3, "rerun with --overwrite after a kill between the two files",
          diffArgs(out, "--overwrite"), check=lambda: readDifference(out) is not None,
          folder=folder)
    for lone in ("d.fits", "d.json"):
        folder = c.scratch()
        out = folder / "d.fits"
        main([*map(str, diffArgs(out)), "-q"])
        (folder / ("d.json" if lone == "d.fits" else "d.fits")).unlink()
        c.cli(3, f"diff where only {lone} of an earlier pair is left", diffArgs(out),
              error=f"{lone} exists without its")
        c.cli(3, f"diff --overwrite where only {lone} of an earlier pair is left",
              diffArgs(out, "--overwrite"), check=lambda out=out: readDifference(out) is not None)
    folder = c.scratch()
    out = folder / "d.fits"
    main([*map(str, diffArgs(out)), "-q"])
    c.child(3, "diff", "diff --overwrite on a full disk keeps the earlier pair",
            lambda gate, out=out: main([*map(str, diffArgs(out, "--overwrite")), "-q"]),
            error=r"cannot write .*: (the disk is full or a file-size limit|File too large)",
            protect=folder,
            folder=folder, fileSizeLimit=20_000)


def casesScience(c: Campaign) -> None:
    """4: the science exposure of template and diff is checked as assemble checks visits."""
    f = c.field
    changes = {
        "a 10x10 patch of variance -1": lambda e: e.variance.array.__setitem__(
            (slice(10, 20), slice(10, 20)), -1.0),
        "an all-zero variance plane": lambda e: e.variance.array.__setitem__(slice(None), 0.0),
        "a NaN pixel": lambda e: e.image.array.__setitem__((5, 5), np.nan),
        "an infinite variance": lambda e: e.variance.array.__setitem__((5, 5), np.inf),
    }
    for label, change in changes.items():
        for command in ("template", "diff"):
            folder = c.scratch()
            science = c.exposureWith(folder, change)
            c.cli(4, f"{command} of an exposure with {label}",
                  [command, f.model, science, "--out", folder / "o.fits"],
                  error="unmasked pixels with a non-finite value or a variance that is not "
                  "positive", folder=folder)

    def badMasked(e):
        e.variance.array[10:20, 10:20] = -1.0
        e.mask.array[10:20, 10:20] |= e.mask.getPlaneBitMask("BAD")

    folder = c.scratch()
    science = c.exposureWith(folder, badMasked)
    c.cli(4, "diff of an exposure whose bad-variance patch is masked BAD",
          ["diff", f.model, science, "--out", folder / "o.fits"],
          check=lambda folder=folder: (folder / "o.json").is_file(), folder=folder)

    def toR(e):
        e.filter = Filter.fromBand("r")

    for command in ("template", "diff"):
        folder = c.scratch()
        science = c.exposureWith(folder, toR)
        c.cli(4, f"{command} of an r-band exposure with a g model",
              [command, f.model, science, "--out", folder / "o.fits"],
              error=r"the exposure \(band r\) and the DCR model \(band g\)")
    model = readDcrModel(f.model)
    exposure = readExposure(f.test)
    exposure.filter = Filter.fromBand("r")
    c.api(4, "DcrModel", "buildMatchedExposure of an r-band exposure with a g model",
          lambda: model.buildMatchedExposure(exposure=exposure), error=r"\(band r\)")
    c.api(4, "diffim", "makeDifference of an r-band exposure with a g model",
          lambda: makeDifference(model, exposure), error=r"\(band r\)")
    exposure = readExposure(f.test)
    exposure.filter = Filter("g_6", exposure.filter.effectiveWavelength,
                             exposure.filter.bandwidth)
    c.api(4, "DcrModel", "a physical filter name of the model's band (g_6) is accepted",
          lambda: model.buildMatchedExposure(exposure=exposure))


def casesCoadd(c: Campaign) -> None:
    """5: a coadd of another band than the visits."""
    f = c.field
    folder = c.scratch()
    coadd = readExposure(c.manifest.coaddPath)
    coadd.filter = Filter.fromBand("r")
    path = folder / "coadd-r.fits"
    writeExposure(coadd, path)
    c.cli(5, "assemble --coadd of the r band with g visits",
          ["assemble", *f.training, "--coadd", path, "--out", folder / "m"],
          error=r"the visits \(band g\) and the coadd \(band r\)")
    c.api(5, "DcrAssembleCoadd", "run(coadd=) of another band",
          lambda: DcrAssembleCoadd().run(f.training, coadd=coadd), error="different bands")
    c.cli(5, "assemble --coadd of the visits' band",
          ["assemble", *f.training, "--coadd", c.manifest.coaddPath, "--out", folder / "g"],
          check=lambda: readDcrModel(folder / "g").filter.bandName == "g")


def casesDuplicates(c: Campaign) -> None:
    """6: a visit given twice counts twice unless refused."""
    f = c.field
    first = f.training[0]
    folder = c.scratch()
    copy = folder / "copy.fits"
    shutil.copyfile(first, copy)
    link = folder / "link.fits"
    link.symlink_to(first)
    hard = folder / "hard.fits"
    os.link(first, hard)
    redone = readExposure(first)
    redone.image.array[:] *= 1.01
    writeExposure(redone, folder / "redone.fits")
    variants = {
        "the same path twice": [*f.training, first],
        "one path four times": [first] * 4,
        "a byte-identical copy": [*f.training, copy],
        "a symbolic link to a visit": [*f.training, link],
        "a hard link to a visit": [*f.training, hard],
        "a reprocessing of a visit (same id, date, sky)": [*f.training, folder / "redone.fits"],
        "a relative and an absolute path of one file": [*f.training, os.path.relpath(first)],
    }
    for label, visits in variants.items():
        c.cli(6, f"assemble with {label}", ["assemble", *visits, "--out", folder / "m"],
              error=r"one visit given twice would count as two independent visits")
    exposures = [readExposure(p) for p in f.training]
    c.api(6, "DcrAssembleCoadd", "run() with one exposure object twice",
          lambda: DcrAssembleCoadd().run([*exposures, exposures[0]]), error="same exposure")
    c.api(6, "DcrAssembleCoadd", "run() with a clone of an exposure",
          lambda: DcrAssembleCoadd().run([*exposures, exposures[1].clone()]),
          error="same visit id")
    anonymous = [e.clone() for e in exposures]
    for e in anonymous:
        e.visitInfo = e.visitInfo.copyWith(id=None)
    c.api(6, "DcrAssembleCoadd", "run() with identical pixels and no visit ids",
          lambda: DcrAssembleCoadd().run([*anonymous, anonymous[2].clone()]),
          error="identical pixels")
    c.api(6, "assembleFromFiles", "assembleFromFiles with a path twice",
          lambda: assembleFromFiles([*f.training, first], folder / "api"), error="same file")
    for label, visits in (("a copy", [*f.training, copy]), ("a path twice", [*f.training,
                                                                               first])):
        plan = folder / "plan.toml"
        plan.write_text("[[patch]]\nname = \"p\"\nvisits = [" + ", ".join(
            f'"{v}"' for v in visits) + "]\nout = \"pm\"\n")
        c.cli(6, f"assemble-patches with {label} in a patch", ["assemble-patches", plan],
              error=r"patch 'p'.*(twice|same visit id)")
    from dcrmodel.image import Box

    visit = readExposure(first)
    box = visit.bbox
    halves = [visit[Box(box.minX, box.minY, 20, 48)], visit[Box(box.minX + 28, box.minY, 20, 48)]]
    def detectors():
        import dcrmodel.assemble.inputs as inputs

        if hasattr(inputs, "refuseDuplicateVisits"):  # (an older dcrmodel checks nothing)
            inputs.refuseDuplicateVisits([inputs.VisitInput(h, i) for i, h in enumerate(halves)])

    c.api(6, "assemble.inputs", "two detectors of one visit (one id, different sky) accepted",
          detectors)


def casesConfig(c: Campaign) -> None:
    """7: configuration keys are used or refused."""
    f = c.field
    folder = c.scratch()
    texts = {
        "a top-level key above [assemble]": ("dcrNumSubfilters = 5\n[assemble]\nmaxNumIter = 3\n",
                                             r"dcrNumSubfilters"),
        "an unknown key": ("dcrNumSubfilter = 5\n", r"dcrNumSubfilter"),
        "a value of the wrong type": ("dcrNumSubfilters = \"three\"\n", r"dcrNumSubfilters"),
        "an unknown table": ("[assembly]\nmaxNumIter = 3\n", r"assembly"),
        "invalid TOML": ("dcrNumSubfilters = = 3\n", r"(TOML|line 1)"),
    }
    for label, (text, pattern) in texts.items():
        path = folder / f"{label[:10].replace(' ', '_')}.toml"
        path.write_text(text)
        c.cli(7, f"assemble --config with {label}",
              ["assemble", *f.training, "--config", path, "--out", folder / "m"], error=pattern)
    encoded = {
        "UTF-16": ("maxNumIter = 3\n".encode("utf-16"), "UTF-16"),
        "Latin-1 bytes": ("# caf\xe9\nmaxNumIter = 3\n".encode("latin-1"), "UTF-8"),
    }
    for label, (raw, pattern) in encoded.items():
        path = folder / f"{label[:6]}.toml"
        path.write_bytes(raw)
        c.cli(7, f"assemble --config in {label}",
              ["assemble", *f.training, "--config", path, "--out", folder / "m"], error=pattern)
    bom = folder / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbfmaxNumIter = 3\n")
    c.cli(7, "assemble --config with a UTF-8 byte-order mark is read",
          ["assemble", *f.training, "--config", bom, "--out", folder / "bom"],
          check=lambda: (folder / "bom" / "summary.json").is_file())
    c.cli(7, "assemble --set with bad syntax",
          ["assemble", *f.training, "--set", "maxNumIter", "--out", folder / "m"],
          error="KEY=VALUE")
    c.cli(7, "assemble --set of an unknown key",
          ["assemble", *f.training, "--set", "maxIter=3", "--out", folder / "m"],
          error="maxIter")
    c.cli(7, "assemble --subfilters 0", ["assemble", *f.training, "--subfilters", "0",
                                          "--out", folder / "m"], error="(subfilter|Subfilters)")
    c.cli(7, "assemble --effective-wavelength without --bandwidth",
          ["assemble", *f.training, "--effective-wavelength", "480", "--out", folder / "m"],
          error="together")
    c.cli(7, "assemble with more subfilters than visits",
          ["assemble", *f.training, "--subfilters", "5", "--out", folder / "m"],
          error="cannot constrain 5 subfilters")


def casesIdentity(c: Campaign) -> None:
    """8: the subfilter files of a model folder come from one run."""
    f = c.field
    for k in range(3):
        folder = c.scratch()
        mixed = folder / "mixed"
        shutil.copytree(f.model, mixed)
        shutil.copyfile(c.other / f"dcrCoadd_{k}.fits", mixed / f"dcrCoadd_{k}.fits")
        c.cli(8, f"template with dcrCoadd_{k}.fits from another run",
              ["template", mixed, f.test, "--out", folder / "t.fits"],
              error=rf"dcrCoadd_{k}.fits was written by run .* mixes files of different runs")
    c.cli(8, "diff with a subfilter file from another run",
          ["diff", mixed, f.test, "--out", folder / "d.fits"], error="different runs")
    c.api(8, "readDcrModel", "readDcrModel of a folder mixing two runs",
          lambda: readDcrModel(mixed), error="different runs")
    from dcrmodel.fits import DcrModelDataRef

    c.api(8, "DcrModel", "DcrModel.fromDataRef of a folder mixing two runs",
          lambda: DcrModel.fromDataRef(DcrModelDataRef(mixed), numSubfilters=3),
          error="was written by run")
    folder = c.scratch()
    old = folder / "old"
    shutil.copytree(f.model, old)
    for k in range(3):
        with fits.open(old / f"dcrCoadd_{k}.fits", mode="update") as hdus:
            hdus[0].header.remove("DCR-RUN", ignore_missing=True)
    c.cli(8, "template with a model written before run identities",
          ["template", old, f.test, "--out", folder / "t.fits"],
          check=lambda: (folder / "t.fits").is_file())
    with fits.open(old / "dcrCoadd_0.fits", mode="update") as hdus:
        hdus[0].header["DCR-RUN"] = "0" * 32
    c.cli(8, "template with a model mixing files with and without an identity",
          ["template", old, f.test, "--out", folder / "u.fits"], error="run identity")


def casesSystem(c: Campaign) -> None:
    """9: system errors while writing are one line naming the output."""
    f = c.field
    folder = c.scratch()
    blocker = folder / "file"
    blocker.write_text("x")
    outputs = {
        "assemble": ["assemble", *f.training, "--out", blocker / "m"],
        "template": ["template", f.model, f.test, "--out", blocker / "t.fits"],
        "diff": ["diff", f.model, f.test, "--out", blocker / "d.fits"],
        "warp": ["warp", f.test, "--grid", f.training[0], "--out", blocker / "w"],
        "simulate": ["simulate", "--out", blocker / "s", "--size", "32"],
    }
    for name, argv in outputs.items():
        c.cli(9, f"{name} with its output under a regular file", argv,
              error=r"(is a file, not a folder|cannot write)")
    for name in ("assemble", "template", "diff"):
        folder = c.scratch()
        out = folder / ("m" if name == "assemble" else "o.fits")
        argv = {"assemble": ["assemble", *f.training, "--out", out],
                "template": ["template", f.model, f.test, "--out", out],
                "diff": ["diff", f.model, f.test, "--out", out]}[name]
        main([*map(str, argv), "-q"])
        c.child(9, name, f"{name} --overwrite on a full disk (file-size limit)",
                lambda gate, argv=argv: main([*map(str, argv), "--overwrite", "-q"]),
                error="(the disk is full or a file-size limit|File too large)", protect=folder,
                folder=folder,
                fileSizeLimit=30_000)
    folder = c.scratch()
    c.cli(9, "assemble --scheduler 'not a url'",
          ["assemble", *f.training, "--scheduler", "not a url", "--out", folder / "m"],
          error="(scheduler|address)")
    missing = folder / "nothing.fits"
    for name, argv in {
        "assemble": ["assemble", *f.training, missing, "--out", folder / "m"],
        "template": ["template", f.model, missing, "--out", folder / "t.fits"],
        "diff": ["diff", folder / "no-model", f.test, "--out", folder / "d.fits"],
        "warp": ["warp", missing, "--grid", f.training[0], "--out", folder / "w"],
    }.items():
        c.cli(9, f"{name} of a file that does not exist", argv,
              error="(does not exist|no such|No such|not found)")


def casesMessages(c: Campaign) -> None:
    """11: damaged and odd inputs get messages that say what they are."""
    f = c.field
    folder = c.scratch()
    data = Path(f.training[0]).read_bytes()
    cut = folder / "cut.fits"
    cut.write_bytes(data[: len(data) - 5000])
    c.cli(11, "assemble with a visit cut inside its last HDU",
          ["assemble", *f.training[1:], cut, "--out", folder / "m"], error="truncated")
    import gzip

    gz = folder / "gz.fits"
    gz.write_bytes(gzip.compress(data))
    c.cli(11, "template of a gzip file named .fits (read as FITS)",
          ["template", f.model, gz, "--out", folder / "t.fits"],
          check=lambda: (folder / "t.fits").is_file())
    text = folder / "text.fits"
    text.write_text("not a FITS file\n")
    c.cli(11, "assemble with a text file named .fits",
          ["assemble", *f.training, text, "--out", folder / "m"], error="(not a FITS|FITS)")
    empty = folder / "empty.fits"
    empty.write_bytes(b"")
    c.cli(11, "template of an empty file", ["template", f.model, empty, "--out", folder / "e"],
          error="(empty|truncated|not a FITS)")
    visitFolder = folder / "visit.fits"
    visitFolder.mkdir()
    for name, argv in {
        "assemble": ["assemble", *f.training, visitFolder, "--out", folder / "m"],
        "template": ["template", f.model, visitFolder, "--out", folder / "t2.fits"],
        "diff": ["diff", f.model, visitFolder, "--out", folder / "d.fits"],
        "warp": ["warp", visitFolder, "--grid", f.training[0], "--out", folder / "w"],
    }.items():
        c.cli(11, f"{name} given a folder as the exposure", argv, error="is a folder")
    plan = folder / "plan.toml"
    plan.write_text("[[patch]]\nname = \"p\"\nvisits = [" + ", ".join(
        f'"{v}"' for v in [*f.training, visitFolder]) + "]\nout = \"pm\"\n")
    c.cli(11, "assemble-patches with a folder listed as a visit", ["assemble-patches", plan],
          error="is a folder, not an exposure file")
    flipped = bytearray(data)
    flipped[200] ^= 0x80  # in the comment of NAXIS: harmless
    bad = folder / "flipped-comment.fits"
    bad.write_bytes(bytes(flipped))
    c.cli(11, "assemble with a bit flipped in a header comment (the data are intact)",
          ["assemble", *f.training[1:], bad, "--out", folder / "mc"],
          check=lambda: (folder / "mc" / "summary.json").is_file())
    for key in (b"BORE-AIR", b"DATE-AVG"):
        flipped = bytearray(data)
        at = data.index(key) + 12
        while not chr(flipped[at]).isalnum():
            at += 1
        flipped[at] ^= 0x80
        bad = folder / f"flipped-{key.decode()}.fits"
        bad.write_bytes(bytes(flipped))
        c.cli(11, f"assemble with a bit flipped in the value of {key.decode()}",
              ["assemble", *f.training[1:], bad, "--out", folder / "m"],
              error="(damaged|not printable|must be a number|not an ISO-8601 date)")
    c.cli(11, "template with a model folder that is a file",
          ["template", f.training[0], f.test, "--out", folder / "t3.fits"],
          error="(not a directory|DCR model)")
    emptyModel = folder / "empty-model"
    emptyModel.mkdir()
    c.cli(11, "template with an empty model folder",
          ["template", emptyModel, f.test, "--out", folder / "t4.fits"],
          error="(dcrCoadd_0|model)")
    c.cli(11, "warp onto a malformed grid",
          ["warp", f.test, "--grid", "1,2,3", "--out", folder / "w2"], error="grid")
    c.cli(11, "diff --threshold -1", ["diff", f.model, f.test, "--threshold", "-1", "--out",
                                      folder / "d2.fits"], error="threshold")
    c.cli(11, "diff --threshold nan", ["diff", f.model, f.test, "--threshold", "nan", "--out",
                                       folder / "d3.fits"], error="threshold")
    c.cli(11, "simulate --size 0", ["simulate", "--out", folder / "s", "--size", "0"],
          error="size")
    c.cli(11, "simulate --visits 0", ["simulate", "--out", folder / "s", "--visits", "0"],
          error="visits")
    emptyPlan = folder / "empty.toml"
    emptyPlan.write_text("")
    c.cli(11, "assemble-patches of a plan with no patch", ["assemble-patches", emptyPlan],
          error="no patch")
    plan = folder / "missing.toml"
    plan.write_text("[[patch]]\nname = \"p\"\nvisits = [\"nope.fits\"]\nout = \"pm\"\n")
    c.cli(11, "assemble-patches of a plan whose visit does not exist",
          ["assemble-patches", plan], error="do not exist")


def casesApi(c: Campaign) -> None:
    """12: the Python API refuses what it cannot use, with dcrmodel errors."""
    f = c.field
    model = readDcrModel(f.model)
    exposure = readExposure(f.test)
    array = np.ones((8, 8), np.float32)
    shared = Image(array.copy())

    def owned():
        m = DcrModel([shared] * 3, filterInfo=Filter.fromBand("g"))
        m[0].array[0, 0] = 7.0
        return m

    c.api(12, "DcrModel", "DcrModel([a]*3): each subfilter owns its pixels",
          owned, check=lambda m: m[1].array[0, 0] == 1.0 and m[2].array[0, 0] == 1.0)
    c.api(12, "DcrModel", "applyImageThresholds with low > high",
          lambda: DcrModel.applyImageThresholds(np.ones((4, 4)), highThreshold=1.0,
                                                lowThreshold=2.0), error="(low|high)")
    for label, call in {
        "makeDifference(None, exposure)": lambda: makeDifference(None, exposure),
        "makeDifference(model, None)": lambda: makeDifference(model, None),
        "makeDifference(model, 'x.fits')": lambda: makeDifference(model, "x.fits"),
        "templateForExposure(model, None)": lambda: templateForExposure(model, None),
        "makeDifference(threshold=True)": lambda: makeDifference(model, exposure,
                                                                threshold=True),
        "detectSources(None, ...)": lambda: detectSources(None, array, array),
        "footprintMask(array, 'x')": lambda: footprintMask(array, "x"),
        "improvement(None, None)": lambda: improvement(None, None),
        "assembleFromFiles('one.fits')": lambda: assembleFromFiles(str(f.training[0]), "m"),
        "readDcrModel of a missing folder": lambda: readDcrModel(c.work / "none"),
        "DcrModel.fromImage(None, 3)": lambda: DcrModel.fromImage(None, 3),
        "warpExposure(None, ...)": lambda: warpExposure(None, exposure.wcs, exposure.bbox),
        "buildMatchedExposure(exposure='x')": lambda: model.buildMatchedExposure(exposure="x"),
        "readExposure(None)": lambda: readExposure(None),
    }.items():
        c.api(12, label.split("(")[0], label, call, errorType=(DcrError, FileNotFoundError),
              error=".")
    folder = c.scratch()
    blocker = folder / "file"
    blocker.write_text("x")
    c.api(12, "writeDcrModel", "writeDcrModel under a regular file",
          lambda: writeDcrModel(model, blocker / "m"), error="is a file, not a folder")
    c.api(12, "dcrmodel", "the top-level API of a valid input is unchanged",
          lambda: dcrmodel.readDcrModel(f.model), check=lambda m: len(m) == 3)


def casesOutputs(c: Campaign) -> None:
    """13: an output never replaces an input, nor an output of another kind."""
    f = c.field
    folder = c.scratch()
    science = folder / "science.fits"
    shutil.copyfile(f.test, science)
    link = folder / "link.fits"
    link.symlink_to(science)
    model = folder / "model"
    shutil.copytree(f.model, model)
    for command in ("template", "diff"):
        c.cli(13, f"{command} --out the science exposure itself, --overwrite",
              [command, model, science, "--out", science, "--overwrite"],
              error="is the input .* itself", protect=folder)
        c.cli(13, f"{command} --out the science exposure through a link, --overwrite",
              [command, model, science, "--out", link, "--overwrite"],
              error="is the input .* itself", protect=folder)
        c.cli(13, f"{command} --out a file inside the model folder, --overwrite",
              [command, model, science, "--out", model / "dcrCoadd_0.fits", "--overwrite"],
              error="(inside the input folder|is the input)", protect=folder)
    named = folder / "sci.json"
    shutil.copyfile(f.test, named)
    c.cli(13, "diff whose detections file would be its exposure (sci.json, --out sci.fits)",
          ["diff", model, named, "--out", folder / "sci.fits", "--overwrite"],
          error="is the input .* itself", protect=folder)
    c.cli(13, "warp --out the folder of its input, --overwrite",
          ["warp", science, "--grid", f.training[0], "--out", folder, "--overwrite"],
          error="is the input itself", protect=folder)
    out = c.scratch()
    c.cli(13, "template --out an existing folder", ["template", f.model, f.test, "--out", out],
          error="is a folder")
    c.cli(13, "template --out an existing folder, --overwrite",
          ["template", f.model, f.test, "--out", out, "--overwrite"], error="is a folder")
    other = c.scratch()
    (other / "notes.txt").write_text("mine")
    c.cli(13, "simulate into a folder holding other files",
          ["simulate", "--out", other, "--size", "32", "--visits", "3", "--overwrite"],
          error="holds other files", protect=other)
    c.cli(13, "assemble into a folder holding other files, --overwrite",
          ["assemble", *f.training, "--out", other, "--overwrite"],
          error="holds other files", protect=other)
    c.cli(13, "simulate --overwrite onto a model folder",
          ["simulate", "--out", model, "--size", "32", "--visits", "3", "--overwrite"],
          error="(not a dcrmodel simulation|holds|other files)", protect=model)
    c.cli(13, "assemble --overwrite onto the simulation folder",
          ["assemble", *f.training, "--out", c.work / "field", "--overwrite"],
          error="(holds|other files|not a dcrmodel model)", protect=c.work / "field" / "visits")
    c.cli(13, "assemble --overwrite with --coadd read from the model being replaced",
          ["assemble", *f.training, "--coadd", model / "stackedCoadd.fits", "--out", model,
           "--overwrite"], check=lambda: len(readDcrModel(model)) == 3)


SECTIONS = [casesAtomicModel, casesWriters, casesDiffPair, casesScience, casesCoadd,
            casesDuplicates, casesConfig, casesIdentity, casesSystem, casesMessages, casesApi,
            casesOutputs]


def table(cases: list[Case]) -> str:
    """Return the summary and the list of cases as markdown."""
    lines = ["| defect class | cases | " + " | ".join(OUTCOMES) + " |",
             "|---|---:|" + "---:|" * len(OUTCOMES)]
    for number, label in CLASSES.items():
        counts = Counter(case.outcome for case in cases if case.defect == number)
        lines.append(f"| {number}. {label} | {sum(counts.values())} | "
                     + " | ".join(str(counts.get(o, 0)) for o in OUTCOMES) + " |")
    counts = Counter(case.outcome for case in cases)
    lines.append(f"| **all** | **{len(cases)}** | "
                 + " | ".join(f"**{counts.get(o, 0)}**" for o in OUTCOMES) + " |")
    lines += ["", "| # | class | area | case | outcome | message or finding |",
              "|---:|---:|---|---|---|---|"]
    for i, case in enumerate(cases, 1):
        detail = case.detail.replace("|", "\\|")
        lines.append(f"| {i} | {case.defect} | {case.area} | {case.name} | {case.outcome} | "
                     f"{detail} |")
    return "\n".join(lines) + "\n"


def run(work: Path) -> list[Case]:
    """Run every section of cases on a fresh field in ``work``; return the cases."""
    campaign = Campaign(work)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        for section in SECTIONS:
            try:
                section(campaign)
            except Exception as exc:  # noqa: BLE001 - a broken section is reported, not hidden
                campaign.record(0, section.__name__, "the section itself failed", "traceback",
                                f"{type(exc).__name__}: {exc}")
    finally:
        os.chdir(cwd)
    return campaign.cases


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new one)")
    parser.add_argument("--markdown", type=Path, help="write the table there")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="safety-campaign-"))
    work.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    cases = run(work)
    text = table(cases)
    print(text)
    print(f"{len(cases)} cases in {time.perf_counter() - tic:.0f} s", file=sys.stderr)
    if args.markdown:
        # a document with a "## Last run" section keeps what is above it
        head = ""
        if args.markdown.exists() and MARKER in args.markdown.read_text():
            head = args.markdown.read_text().split(MARKER)[0] + MARKER
        args.markdown.write_text(head + text)
    bad = [case for case in cases if case.outcome not in ("clear", "correct")]
    print(json.dumps([case.__dict__ for case in bad], indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
