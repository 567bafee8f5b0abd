"""The direct solver beside the floor of its work, and its speed-up with threads (issue 17).

The *floor* of a direct-solver build is the work no implementation can skip, timed with plain
numpy/scipy on the same data, on the same grids as the solver:

1. *read*: every input pixel once: the image, mask and variance planes of every visit file
   and of the coadd (astropy, memory-mapped, copied to native byte order);
2. *forward FFTs*: one ``scipy.fft.rfft2`` per visit and subregion, of the padded grid the
   solver uses there (taken from a solve of the same field);
3. *solves*: the small N x N systems, one per frequency of every subregion's half-plane grid,
   by one batched ``numpy.linalg.solve`` (complex128, Hermitian positive definite);
4. *inverse FFTs*: one ``scipy.fft.irfft2`` per subfilter and subregion.

The floor with T threads runs the FFTs with ``workers=T`` and the batched solves in T
blocks in a pool of T threads; reading is one pass in one thread. Beside it, the whole build
(`DcrAssembleCoadd.run` from the visit files, default configuration but ``threads``), in the
same process, alternated with the floor operations, fastest of ``--repeats``. The solver's
threads speed-up is its time with 1 thread over its time with all cores, measured alternately
too. ``--memory`` adds the peak memory of the build in a fresh process per configuration
(the method of ``bench_speed.py``: the kernel's high-water mark of resident memory reset
after the imports), for the direct solver with 1 thread and with all cores and for the
iterative solver.

Run against an older tree with ``PYTHONPATH=OLD/src python benchmarks/bench_floor.py``: a
tree whose configuration has no ``threads`` runs the solver as it is (its default) and
reports it under every thread count.

Fields are `SimulationConfig(size=S, numTraining=J)` simulations (``bench_speed.field``,
kept in ``--workdir``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
import scipy.fft
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_speed  # noqa: E402
import dcrmodel.assemble.direct as directModule  # noqa: E402, N812
from dcrmodel.assemble.config import DcrAssembleConfig  # noqa: E402
from dcrmodel.assemble.task import DcrAssembleCoadd  # noqa: E402
from dcrmodel.simulate import loadManifest  # noqa: E402

HAS_THREADS = "threads" in {f.name for f in dataclasses.fields(DcrAssembleConfig)}


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def configFor(threads: int | None, solver: str = "direct") -> DcrAssembleConfig:
    """The default configuration with ``threads`` (when this tree has the setting)."""
    if HAS_THREADS and threads is not None:
        return DcrAssembleConfig(solver=solver, threads=threads)
    return DcrAssembleConfig(solver=solver)


def inputsOf(manifest: Any) -> tuple[list[Path], Path]:
    """The training visits' files and the coadd's."""
    return [manifest.path(v["file"]) for v in manifest.visits("training")], manifest.coaddPath


def solverGrids(manifest: Any) -> tuple[list[tuple[tuple[int, int], tuple[int, int]]], int]:
    """(box shape, padded grid) of every subregion the direct solver solves, and N."""
    grids: list[tuple[tuple[int, int], tuple[int, int]]] = []
    original = directModule.solveDirect

    def recording(images: Any, *args: Any, **kwargs: Any) -> Any:
        solution = original(images, *args, **kwargs)
        grids.append((tuple(np.shape(images)[1:]), tuple(solution.paddedShape)))
        return solution

    directModule.solveDirect = recording
    try:
        paths, coadd = inputsOf(manifest)
        result = DcrAssembleCoadd(configFor(None)).run(paths, coadd=coadd)
    finally:
        directModule.solveDirect = original
    return grids, result.dcrModel.dcrNumSubfilters


def readAll(paths: list[Path]) -> dict[Path, np.ndarray]:
    """Read every pixel of the IMAGE, MASK and VARIANCE planes of every file once."""
    images = {}
    for path in paths:
        with fits.open(path, memmap=True) as hdus:
            for name in ("IMAGE", "MASK", "VARIANCE"):
                data = hdus[name].data
                array = np.array(data, dtype=data.dtype.newbyteorder("="), copy=True)
                if name == "IMAGE":
                    images[path] = array
    return images


class Floor:
    """The floor operations on one field, data prepared once."""

    def __init__(self, manifest: Any, grids: list, numSubfilters: int, seed: int = 1) -> None:
        self.paths, self.coadd = inputsOf(manifest)
        images = readAll(self.paths)
        self.grids = grids
        self.n = numSubfilters
        rng = np.random.default_rng(seed)
        # The visits' pixels on each subregion's padded grid (zeros in the margin: the FFT's
        # cost does not depend on the values).
        self.padded = []
        for shape, padded in grids:
            stack = np.zeros((len(self.paths), *padded), dtype=np.float32)
            for j, path in enumerate(self.paths):
                image = images[path]
                stack[j, : min(shape[0], image.shape[0]), : min(shape[1], image.shape[1])] = (
                    image[: shape[0], : shape[1]])
            self.padded.append(stack)
        # Hermitian positive definite N x N systems and right-hand sides per frequency.
        self.systems = []
        for _, padded in grids:
            count = padded[0] * (padded[1] // 2 + 1)
            a = (rng.standard_normal((count, 2 * self.n, self.n))
                 + 1j * rng.standard_normal((count, 2 * self.n, self.n)))
            matrix = np.conj(np.swapaxes(a, 1, 2)) @ a + 1e-3 * np.eye(self.n)
            rhs = (rng.standard_normal((count, self.n, 1))
                   + 1j * rng.standard_normal((count, self.n, 1)))
            self.systems.append((matrix, rhs))
        self.spectra = [
            scipy.fft.rfft2(stack[: self.n], workers=-1) for stack in self.padded
        ]

    def read(self, threads: int) -> float:
        tic = time.perf_counter()
        readAll([*self.paths, self.coadd])
        return time.perf_counter() - tic

    def forward(self, threads: int) -> float:
        tic = time.perf_counter()
        for stack in self.padded:
            for visit in stack:
                scipy.fft.rfft2(visit, workers=threads)
        return time.perf_counter() - tic

    def solves(self, threads: int) -> float:
        tic = time.perf_counter()
        for matrix, rhs in self.systems:
            if threads == 1:
                np.linalg.solve(matrix, rhs)
                continue
            bounds = np.linspace(0, len(matrix), threads + 1).astype(int)
            blocks = [(matrix[a:b], rhs[a:b]) for a, b in zip(bounds[:-1], bounds[1:],
                                                               strict=True)]
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda block: np.linalg.solve(*block), blocks))
        return time.perf_counter() - tic

    def inverse(self, threads: int) -> float:
        tic = time.perf_counter()
        for spectra, (_, padded) in zip(self.spectra, self.grids, strict=True):
            for k in range(self.n):
                scipy.fft.irfft2(spectra[k], s=padded, workers=threads)
        return time.perf_counter() - tic


def buildSeconds(manifest: Any, threads: int | None, solver: str = "direct") -> float:
    """Wall-clock seconds of one whole build from the files."""
    paths, coadd = inputsOf(manifest)
    task = DcrAssembleCoadd(configFor(threads, solver))
    tic = time.perf_counter()
    task.run(paths, coadd=coadd)
    return time.perf_counter() - tic


def measure(manifest: Any, threadCounts: list[int], repeats: int) -> dict[str, Any]:
    """Floor operations and solver builds, alternated, fastest of ``repeats`` each."""
    grids, n = solverGrids(manifest)
    floor = Floor(manifest, grids, n)
    parts = ("read", "forward", "solves", "inverse")
    best: dict[str, float] = {}
    for repeat in range(repeats):
        order = threadCounts if repeat % 2 == 0 else threadCounts[::-1]
        for threads in order:
            for part in parts:
                key = f"{part}-{threads}"
                best[key] = min(best.get(key, np.inf), getattr(floor, part)(threads))
            key = f"solver-{threads}"
            best[key] = min(best.get(key, np.inf), buildSeconds(manifest, threads))
            print(f"  repeat {repeat + 1}, {threads} thread(s): solver {best[key]:.2f} s so far",
                  flush=True)
    rows = []
    for threads in threadCounts:
        total = sum(best[f"{part}-{threads}"] for part in parts)
        rows.append({"threads": threads, **{part: best[f"{part}-{threads}"] for part in parts},
                     "floor": total, "solver": best[f"solver-{threads}"],
                     "ratio": best[f"solver-{threads}"] / total})
    return {"grids": [list(g) for g in grids], "numSubfilters": n, "rows": rows}


def memoryWorker(folder: str, solver: str, threads: str) -> dict[str, Any]:
    """Build once in this fresh process; peak memory of the build (bench_speed's method)."""
    warnings.simplefilter("ignore")
    manifest = loadManifest(folder)
    reset = bench_speed._resetPeakRss()
    baseline = bench_speed._status("VmRSS")
    seconds = buildSeconds(manifest, None if threads == "default" else int(threads), solver)
    peak = bench_speed._status("VmHWM")
    return {"solver": solver, "threads": threads, "seconds": seconds,
            "buildBytes": peak - baseline, "peakReset": reset}


def measureMemory(folder: Path, solver: str, threads: str) -> dict[str, Any] | None:
    command = [sys.executable, __file__, "--memory-worker", str(folder), solver, threads]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  memory worker failed: {done.stderr[-400:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="field size in pixels (1024)")
    parser.add_argument("--visits", type=int, default=24, help="training visits (24)")
    parser.add_argument("--threads", type=int, nargs="*", default=None,
                        help="thread counts to compare (default: 1 and every core)")
    parser.add_argument("--repeats", type=int, default=3, help="alternated repeats (3)")
    parser.add_argument("--memory", action="store_true",
                        help="peak memory of the builds, a fresh process each")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the fields here")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="a 256^2 x 6 field")
    parser.add_argument("--memory-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        print(json.dumps(memoryWorker(*args.memory_worker)))
        return 0
    warnings.simplefilter("ignore")
    if args.quick:
        args.size, args.visits = 256, 6
    threadCounts = args.threads or sorted({1, cores()})
    results: dict[str, Any] = {"size": args.size, "visits": args.visits,
                               "threadsSetting": HAS_THREADS, "cores": cores()}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        manifest = bench_speed.field(workdir, args.size, args.visits, numTest=2)
        print(f"== floor and solver, {args.size}^2 x {args.visits}, threads {threadCounts}"
              f"{'' if HAS_THREADS else ' (this tree has no threads setting)'} ==", flush=True)
        results.update(measure(manifest, threadCounts, args.repeats))
        print("\n| threads | read (s) | forward FFTs (s) | solves (s) | inverse FFTs (s) | "
              "floor (s) | solver (s) | solver / floor |")
        print("|---|---|---|---|---|---|---|---|")
        for row in results["rows"]:
            print(f"| {row['threads']} | {row['read']:.3f} | {row['forward']:.3f} | "
                  f"{row['solves']:.3f} | {row['inverse']:.3f} | {row['floor']:.3f} | "
                  f"{row['solver']:.3f} | {row['ratio']:.2f} |")
        rows = results["rows"]
        if len(rows) > 1:
            print(f"\nthreads speed-up ({rows[0]['threads']} -> {rows[-1]['threads']}): solver "
                  f"x{rows[0]['solver'] / rows[-1]['solver']:.2f}, floor "
                  f"x{rows[0]['floor'] / rows[-1]['floor']:.2f}")
        if args.memory:
            memory = {}
            for solver, threads in (("direct", "1"), ("direct", "default"),
                                    ("iterative", "default")):
                entry = measureMemory(manifest.directory, solver, threads)
                memory[f"{solver}-{threads}"] = entry
                if entry:
                    print(f"  peak memory {solver}, threads {threads}: "
                          f"{entry['buildBytes'] / 2**20:.0f} MiB ({entry['seconds']:.1f} s)")
            results["memory"] = memory
            iterative = memory.get("iterative-default")
            for key in ("direct-1", "direct-default"):
                if iterative and memory.get(key):
                    ratio = memory[key]["buildBytes"] / iterative["buildBytes"]
                    print(f"  {key} / iterative: {ratio:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
