"""Helpers of the fault-injection tests: a tiny field, runs in forked children, snapshots.

- `tinyField`: a small simulated field (48x48 pixels, 4 training visits, 1 test visit) and
  a model assembled from it, made once per test module.
- `runChild`: run a function in a forked child (the parent's imports are reused, so a
  child costs no start-up time), with an optional file-size limit and a gate the child
  can wait at; returns the child's exit status (negative: killed by that signal) and what
  it wrote to standard error.
- `snapshot` / `hidden`: the bytes of every file under a folder; the hidden entries
  (leftovers, lock files) beside an output.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TinyField", "tinyField", "runChild", "Child", "waitAtGate", "snapshot", "hidden",
           "MODEL_FILES"]

#: The files of a model folder written by ``dcrmodel assemble``.
MODEL_FILES = ["dcrCoadd_0.fits", "dcrCoadd_1.fits", "dcrCoadd_2.fits", "nImage.fits",
               "stackedCoadd.fits", "summary.json"]


@dataclass
class TinyField:
    """A simulated field and a model of it."""

    root: Path
    training: list[Path]
    test: Path
    model: Path


def tinyField(root: Path) -> TinyField:
    """Simulate a 48x48 field (4 training visits, 1 test visit) and assemble its model."""
    from dcrmodel import SimulationConfig, assembleFromFiles, runSimulation

    config = SimulationConfig(size=48, numTraining=4, numTest=1, nights=1,
                              transientsPerTestVisit=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manifest = runSimulation(root / "field", config, seed=3)
        training = [manifest.path(v["file"]) for v in manifest.visits("training")]
        test = manifest.path(manifest.visits("test")[0]["file"])
        assembleFromFiles(training, root / "model")
    return TinyField(root, training, test, root / "model")


@dataclass
class Child:
    """A forked child: its pid, the file its standard error goes to, and its gate."""

    pid: int
    stderrPath: Path
    gate: Path

    def open(self) -> None:
        """Let a child waiting at its gate go on."""
        self.gate.write_text("go")

    def wait(self, timeout: float = 120.0) -> tuple[int, str]:
        """Wait for the child; return its exit status (-N: killed by signal N) and stderr."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise TimeoutError(f"child {self.pid} still running after {timeout} s")
            time.sleep(0.01)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return code, self.stderrPath.read_text()

    def kill(self) -> None:
        """Kill the child at once (SIGKILL: no cleanup runs)."""
        os.kill(self.pid, signal.SIGKILL)


def waitAtGate(gate: Path, timeout: float = 60.0) -> None:
    """In a child: wait until the parent opens the gate (`Child.open`)."""
    deadline = time.monotonic() + timeout
    while not gate.exists():
        if time.monotonic() > deadline:
            os._exit(99)
        time.sleep(0.01)


def runChild(function: Callable[[Path], int | None], fileSizeLimit: int | None = None) -> Child:
    """Run ``function(gate)`` in a forked child and return at once.

    The child's standard error (file descriptor 2 and ``sys.stderr``) goes to a file; it
    exits with the function's return value (0 for None), or 1 after printing the traceback
    of an exception. ``fileSizeLimit`` (bytes) sets ``RLIMIT_FSIZE`` in the child: writing
    beyond it fails with EFBIG, like a full disk (Python ignores SIGXFSZ).
    """
    folder = Path(tempfile.mkdtemp(prefix="child-"))
    stderrPath = folder / "stderr"
    gate = folder / "gate"
    stderrPath.touch()  # exists even if the child is killed before it opens it
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            stream = open(stderrPath, "a")  # noqa: SIM115 - lives until os._exit
            os.dup2(stream.fileno(), 2)
            sys.stderr = stream
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if fileSizeLimit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fileSizeLimit, fileSizeLimit))
            result = function(gate)
            code = 0 if result is None else int(result)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    return Child(pid, stderrPath, gate)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Return the bytes of every file under ``folder`` by relative path ({} if absent)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def hidden(folder: Path) -> list[str]:
    """Return the hidden entries of ``folder`` (leftovers of writes, lock files)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))
