"""What limits the direct solver's threads on one machine (issue 17, item 3).

Six measurements on the same field, each in a fresh process that builds the model once
untimed (imports, caches) and then times ``--repeats`` builds (fastest kept):

1. *1 thread*: ``DcrAssembleCoadd(DcrAssembleConfig(threads=1)).run`` from the visit files;
2. *T threads*: the same with ``threads=T`` (the solver's own threading: FFT workers and
   blocks of frequencies in a pool of threads);
3. *subregions in T threads*: the run's subregions, which are independent, solved T at a
   time in a pool of T threads, each with ``threads=1``
   (`DcrAssembleCoadd.planSubregions`, `assembleSubregion`, `DcrAssembleCoadd.finish`):
   independent work, sharing only the process (its interpreter lock, its memory);
4. *subregions in T processes*: the same with the subregions solved in a pool of T
   processes forked after the preparation (``multiprocessing``'s ``fork`` start method, so
   the plan is not copied; Linux and macOS), each with ``threads=1``, their results sent
   back to be stitched;
5. *T processes*: T single-thread builds started at the same time in T processes, each
   timed: T times the time alone over the time together is the machine's throughput for
   this work when nothing is shared;
6. *compute-bound numpy*: ``numpy.sin`` over 1e7 doubles in T threads against one
   (numpy releases the interpreter lock for it), a check of the cores themselves.

For 4, the largest peak resident memory of a forked process (pages shared with the parent
included) is reported: each process holds a subregion's arrays (`bench_floor.py --memory`
measures the builds' peak memory). The models of 1 to 5 are compared bit for bit.

``python benchmarks/bench_parallel.py --workdir DIR`` (1024^2 x 24 by default; ``--quick``:
256^2 x 6).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_speed  # noqa: E402
from dcrmodel.assemble.config import DcrAssembleConfig  # noqa: E402
from dcrmodel.assemble.task import DcrAssembleCoadd, assembleSubregion  # noqa: E402
from dcrmodel.parallel import availableCores  # noqa: E402
from dcrmodel.simulate import loadManifest  # noqa: E402

#: The plan of a build whose subregions are solved in forked processes (inherited by them).
_FORKED_PLAN: Any = None


def build(manifest: Any, mode: str, threads: int) -> tuple[Any, int | None]:
    """One build: the solver's own threads (``serial``), or the subregions in a pool of
    threads (``subregions``) or of forked processes (``forked``).

    Returns the result and, for ``forked``, the largest peak resident memory of a process
    of the pool (bytes; None otherwise).
    """
    paths = [manifest.path(v["file"]) for v in manifest.visits("training")]
    if mode == "serial":
        task = DcrAssembleCoadd(DcrAssembleConfig(threads=threads))
        return task.run(paths, coadd=manifest.coaddPath), None
    global _FORKED_PLAN
    task = DcrAssembleCoadd(DcrAssembleConfig(threads=1))
    plan = task.planSubregions(paths, manifest.coaddPath)
    if mode == "subregions":
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(lambda index: assembleSubregion(plan.subregionTask(index)),
                                    range(plan.numSubregions)))
        return task.finish(plan, results), None
    _FORKED_PLAN = plan
    try:
        with multiprocessing.get_context("fork").Pool(threads) as pool:
            solved = pool.map(_forkedSubregion, range(plan.numSubregions), chunksize=1)
    finally:
        _FORKED_PLAN = None
    return (task.finish(plan, [result for result, _ in solved]),
            max(peak for _, peak in solved))


def _forkedSubregion(index: int) -> tuple[Any, int]:
    """Solve subregion ``index`` of the inherited plan; its result and this process's peak."""
    result = assembleSubregion(_FORKED_PLAN.subregionTask(index))
    return result, bench_speed._status("VmHWM")


def digest(result: Any) -> str:
    """A digest of the model's subfilter images (bit for bit)."""
    hasher = hashlib.sha256()
    for image in result.dcrModel.modelImages:
        hasher.update(np.ascontiguousarray(image.array).tobytes())
    return hasher.hexdigest()[:16]


def worker(folder: str, mode: str, threads: int, repeats: int) -> dict[str, Any]:
    """Build once untimed, then ``repeats`` timed builds in this fresh process."""
    warnings.simplefilter("ignore")
    manifest = loadManifest(folder)
    build(manifest, mode, threads)
    seconds = []
    for _ in range(repeats):
        tic = time.perf_counter()
        result, childPeak = build(manifest, mode, threads)
        seconds.append(time.perf_counter() - tic)
    return {"mode": mode, "threads": threads, "seconds": min(seconds), "all": seconds,
            "digest": digest(result), "childPeak": childPeak}


def runWorkers(folder: Path, mode: str, threads: int, repeats: int,
               copies: int = 1) -> list[dict[str, Any]]:
    """Start ``copies`` workers at once and wait for them all."""
    command = [sys.executable, __file__, "--worker", str(folder), mode, str(threads),
               str(repeats)]
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(copies)]
    out = []
    for process in running:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"worker failed: {stderr[-600:]}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def sineSpeedup(threads: int, size: int = 10**7, repeats: int = 5) -> float:
    """``numpy.sin`` over ``size`` doubles: one thread's time over ``threads`` threads'."""
    values = np.random.default_rng(0).random(size)
    out = np.empty_like(values)
    parts = np.array_split(np.arange(size), threads)

    def piece(index: np.ndarray) -> None:
        np.sin(values[index[0]:index[-1] + 1], out=out[index[0]:index[-1] + 1])

    def timed(function: Any) -> float:
        best = np.inf
        for _ in range(repeats):
            tic = time.perf_counter()
            function()
            best = min(best, time.perf_counter() - tic)
        return best

    with ThreadPoolExecutor(threads) as pool:
        alone = timed(lambda: np.sin(values, out=out))
        together = timed(lambda: list(pool.map(piece, parts)))
    return alone / together


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="field size in pixels (1024)")
    parser.add_argument("--visits", type=int, default=24, help="training visits (24)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads and processes to compare with one (default: every core)")
    parser.add_argument("--repeats", type=int, default=3, help="timed builds per process (3)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of the measurements, alternated (2)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the field here")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="a 256^2 x 6 field")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        folder, mode, threads, repeats = args.worker
        print(json.dumps(worker(folder, mode, int(threads), int(repeats))))
        return 0
    if args.quick:
        args.size, args.visits = 256, 6
    threads = args.threads or availableCores()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        manifest = bench_speed.field(workdir, args.size, args.visits, numTest=2)
        folder = manifest.directory
        print(f"== {args.size}^2 x {args.visits}, 1 against {threads} threads / processes, "
              f"load average {os.getloadavg()[0]:.1f} ==", flush=True)
        best: dict[str, dict[str, Any]] = {}
        configurations = [("1 thread", "serial", 1, 1), (f"{threads} threads", "serial",
                          threads, 1), (f"subregions in {threads} threads", "subregions",
                          threads, 1), (f"subregions in {threads} processes", "forked", threads, 1),
                          (f"{threads} processes", "serial", 1, threads)]
        for round_ in range(args.rounds):
            order = configurations if round_ % 2 == 0 else configurations[::-1]
            for name, mode, count, copies in order:
                entries = runWorkers(folder, mode, count, args.repeats, copies)
                seconds = max(entry["seconds"] for entry in entries)
                if name not in best or seconds < best[name]["seconds"]:
                    best[name] = {**entries[0], "seconds": seconds,
                                  "each": [entry["seconds"] for entry in entries]}
                print(f"  round {round_ + 1}: {name}: {seconds:.3f} s", flush=True)
        sine = sineSpeedup(threads)
    alone = best["1 thread"]["seconds"]
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    print("\n| configuration | build (s) | speed-up over 1 thread |")
    print("|---|---|---|")
    for name, _, _, copies in configurations:
        entry = best[name]
        if copies > 1:
            speedup = copies * alone / entry["seconds"]
            label = f"{speedup:.2f} (throughput: {copies} builds in {entry['seconds']:.3f} s)"
        else:
            label = f"{alone / entry['seconds']:.2f}"
        if entry.get("childPeak"):
            label += f" (each process up to {entry['childPeak'] / 2**20:.0f} MiB resident)"
        print(f"| {name} | {entry['seconds']:.3f} | {label} |")
    print(f"| numpy.sin, 1e7 doubles, {threads} threads | | {sine:.2f} |")
    digests = {name: best[name]["digest"] for name, _, _, _ in configurations}
    print(f"\nmodels the same bit for bit: {len(set(digests.values())) == 1} ({digests})")
    if args.json is not None:
        args.json.write_text(json.dumps({"best": best, "sineSpeedup": sine,
                                         "size": args.size, "visits": args.visits},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
