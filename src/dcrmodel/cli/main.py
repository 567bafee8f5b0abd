"""The ``dcrmodel`` command.

Subcommands:

- ``dcrmodel simulate --out DIR``: a synthetic field with known truth (`dcrmodel.simulate.field`).
- ``assemble``, ``template``, ``diff``, ``warp`` and ``demo``: see `dcrmodel.cli.commands`.
- ``butler init|ingest|pipeline``: a Rubin data butler repository, see `dcrmodel.cli.butler`.

Each subcommand is one small pair of functions: ``_add<Name>(subparsers)`` declares its
arguments and sets its handler, ``_run<Name>(args) -> int`` does the work. Register a new
subcommand by adding its ``_add`` function to `_SUBCOMMANDS`.

A command holds the lock of its ``--out`` for its whole run (`dcrmodel.atomic.outputLock`):
a second command writing the same output fails at once.

Exit codes (scripts can rely on them): 0 success; 2 bad input or usage (a one-line
message on standard error; every `dcrmodel.errors.DcrError`, file that cannot be read or
written (`OSError`) or missing optional dependency lands here); 130 interrupted (Ctrl-C,
also while the command starts: the ``dcrmodel`` console script enters through
``dcrmodel_command``, which catches an interrupt while the package is imported).
Anything else is a bug and shows its traceback (exit 1).

Options common to every subcommand: ``-q/--quiet`` (errors only, no progress bar) and
``-v/--verbose`` (more log messages; twice for debugging). Progress bars go to standard
error when it is a terminal; ``--no-progress`` switches them off.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .._version import __version__
from ..atomic import outputLock
from ..errors import DcrError, DcrOfflineWarning, DcrValueError
from ..simulate import Bandpass, SimulationConfig, runSimulation
from .butler import SUBCOMMANDS as _BUTLER_SUBCOMMANDS
from .commands import SUBCOMMANDS as _MODEL_SUBCOMMANDS
from .progress import ProgressBar, logToBar

__all__ = ["main", "buildParser", "ProgressBar", "EXIT_OK", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED"]

_log = logging.getLogger("dcrmodel")

#: Exit status for success, bad input (or usage), and an interrupted run.
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


# --------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------


def _positiveInt(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _nonNegativeInt(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _addSimulate(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "simulate",
        parents=[common],
        help="simulate a field with known truth (visits, truth images, coadd, manifest)",
        description=(
            "Simulate stars (blackbodies) and galaxies (disc + bulge, own spectra) observed "
            "through a refracting atmosphere over one or more nights, integrated over the "
            "band at fine wavelength resolution. Writes every visit in the Rubin exposure "
            "layout, noiseless truth images, the true subfilter model, a plain coadd of the "
            "training visits and DIR/manifest.json. The defaults make the demo field: g "
            "band, 320x320 pixels, 18 visits (14 training visits over airmass 1.0-2.1 on "
            "both sides of the meridian, 4 held-out visits at airmass 1.5-2.0 with "
            "transients). With --detector-frames every visit is rendered directly on its "
            "own detector grid (--size pixels), rotated to its rotator angle, dithered and "
            "optionally distorted (a SIP WCS), with its truth in that frame; the plain "
            "coadd (the training visits warped onto it, Lanczos 3) and the true model are "
            "on a patch --patch-scale times wider than a detector."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--seed", type=_nonNegativeInt, default=0,
                        help="random seed: the same seed gives the same files (default 0)")
    parser.add_argument("--size", type=_positiveInt, default=320, metavar="PIXELS",
                        help="width and height of the field in pixels (default 320)")
    parser.add_argument("--visits", type=_positiveInt, default=18, metavar="N",
                        help="number of visits, training and test (default 18)")
    parser.add_argument("--test-visits", type=_nonNegativeInt, default=None, metavar="M",
                        help="held-out test visits among them (default: N // 4, at most 4)")
    parser.add_argument("--nights", type=_positiveInt, default=2,
                        help="nights the visits are spread over (default 2)")
    parser.add_argument("--band", default="g",
                        help="Rubin band of the top-hat bandpass (default g)")
    parser.add_argument("--effective-wavelength", type=float, default=None, metavar="NM",
                        help="top-hat band centre in nm (with --bandwidth; overrides --band)")
    parser.add_argument("--bandwidth", type=float, default=None, metavar="NM",
                        help="top-hat band width in nm (with --effective-wavelength)")
    parser.add_argument("--bandpass", default=None, metavar="FILE",
                        help="transmission curve: a text file of two columns, wavelength (nm) "
                             "and throughput ('#' starts a comment); overrides --band")
    parser.add_argument("--subfilters", type=_positiveInt, default=3, metavar="N",
                        help="subfilters of the intended model (default 3)")
    parser.add_argument("--seeing", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                        help="per-visit seeing FWHM range in arcsec (default 0.7 0.7)")
    parser.add_argument("--chromatic-seeing", type=float, default=0.0, metavar="ALPHA",
                        help="seeing FWHM ~ wavelength**ALPHA (-0.2: Kolmogorov; default 0)")
    parser.add_argument("--psf", choices=("kolmogorov", "moffat", "gaussian"),
                        default="kolmogorov", help="seeing profile (default kolmogorov)")
    parser.add_argument("--ra", type=float, default=None, metavar="DEG",
                        help="field right ascension (default: on the meridian at midnight)")
    parser.add_argument("--dec", type=float, default=-35.0, metavar="DEG",
                        help="field declination (default -35)")
    parser.add_argument("--date", default="2026-09-15",
                        help="UTC date of the first night's evening (default 2026-09-15)")
    parser.add_argument("--transients", type=_nonNegativeInt, default=2, metavar="N",
                        help="transients injected in each test visit (default 2)")
    parser.add_argument("--no-defects", action="store_true",
                        help="no bad columns, cosmic rays or saturated cores")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier simulation in DIR")
    frames = parser.add_argument_group(
        "detector frames", "each visit on its own detector grid (real survey geometry)")
    frames.add_argument("--detector-frames", action="store_true",
                        help="render every visit on its own detector of --size pixels: "
                             "rotated, dithered, optionally distorted; coadd and true model "
                             "on the patch")
    frames.add_argument("--patch-scale", type=float, default=None, metavar="S",
                        help="patch width in detector widths, 1-4 (default 1.5)")
    frames.add_argument("--rotations", type=float, nargs="+", default=None, metavar="DEG",
                        help="rotator angles (SKY: position angle of the detector's +y "
                             "axis): one for every visit, or one per visit in time order "
                             "(default: drawn uniformly in 0-360 per visit)")
    frames.add_argument("--offset-fraction", type=float, default=None, metavar="F",
                        help="largest pointing offset along East and North as a fraction of "
                             "the detector's size, 0-0.25 (default 0.03)")
    frames.add_argument("--sip", type=float, default=None, metavar="K",
                        help="radial distortion as a SIP WCS: the detector's corners move "
                             "outward by K of their distance from its centre (default 0: "
                             "none)")
    parser.set_defaults(handler=_runSimulate)


def _simulationConfig(args: argparse.Namespace) -> Any:
    """Turn the ``simulate`` arguments into a `SimulationConfig` (validated later)."""
    import astropy.units as u
    from astropy.coordinates import Angle


    numTest = args.test_visits
    if numTest is None:
        numTest = min(4, max(1, args.visits // 4))
    if numTest > args.visits:
        raise DcrValueError(
            "--test-visits exceeds --visits", visits=args.visits, testVisits=numTest
        )
    band: Any = args.band
    if (args.effective_wavelength is None) != (args.bandwidth is None):
        raise DcrValueError(
            "give both --effective-wavelength and --bandwidth (nm) for a custom band, or "
            "neither",
        )
    if args.effective_wavelength is not None:
        if args.bandpass is not None:
            raise DcrValueError("give either --bandpass or --effective-wavelength/--bandwidth")
        band = Bandpass.topHat(args.effective_wavelength, args.bandwidth, "custom")
    if args.bandpass is not None:
        band = _readBandpass(args.bandpass)
    seeing = (0.7, 0.7) if args.seeing is None else tuple(args.seeing)
    return SimulationConfig(
        **_frameOptions(args),
        size=args.size,
        band=band,
        numSubfilters=args.subfilters,
        numTraining=args.visits - numTest,
        numTest=numTest,
        nights=args.nights,
        date=args.date,
        fieldRa=None if args.ra is None else Angle(args.ra, u.deg),
        fieldDec=Angle(args.dec, u.deg),
        seeing=seeing,
        chromaticSeeing=args.chromatic_seeing,
        psfProfile=args.psf,
        transientsPerTestVisit=args.transients,
        defectFraction=0.0 if args.no_defects else 0.3,
    )


def _frameOptions(args: argparse.Namespace) -> dict[str, Any]:
    """Return the detector-frame options of ``simulate`` as `SimulationConfig` arguments."""
    import astropy.units as u
    from astropy.coordinates import Angle

    given = {
        "--patch-scale": args.patch_scale, "--rotations": args.rotations,
        "--offset-fraction": args.offset_fraction, "--sip": args.sip,
    }
    if not args.detector_frames:
        used = [flag for flag, value in given.items() if value is not None]
        if used:
            raise DcrValueError(f"{', '.join(used)} needs --detector-frames")
        return {}
    options: dict[str, Any] = {"detectorFrames": True}
    if args.patch_scale is not None:
        options["patchScale"] = args.patch_scale
    if args.offset_fraction is not None:
        options["offsetFraction"] = args.offset_fraction
    if args.sip is not None:
        options["distortion"] = args.sip
    if args.rotations is not None:
        rotations = args.rotations
        options["rotations"] = Angle(rotations[0] if len(rotations) == 1 else rotations, u.deg)
    return options


def _readBandpass(path: str) -> Any:
    """Read a two-column transmission curve (nm, throughput) into a `Bandpass`."""
    from pathlib import Path

    import numpy as np


    try:
        table = np.loadtxt(path, comments="#", ndmin=2)
    except (OSError, ValueError) as error:
        raise DcrValueError(
            f"cannot read the bandpass file {path}: {error}; it must hold two columns, "
            "wavelength (nm) and throughput",
            path=path,
        ) from None
    if table.shape[1] != 2:
        raise DcrValueError(
            "the bandpass file must hold two columns, wavelength (nm) and throughput",
            path=path,
            columns=table.shape[1],
        )
    return Bandpass.curve(table[:, 0], table[:, 1], name=Path(path).stem)


def _runSimulate(args: argparse.Namespace) -> int:

    config = _simulationConfig(args)
    bar = ProgressBar("simulate", enabled=False if args.quiet or args.no_progress else None)
    started = time.monotonic()
    try:
        manifest = runSimulation(
            args.out, config=config, seed=args.seed, overwrite=args.overwrite, progress=bar
        )
    finally:
        bar.close()
    if not args.quiet:
        visits = manifest.visits()
        training = [v for v in visits if v["role"] == "training"]
        test = [v for v in visits if v["role"] == "test"]
        airmass = [v["airmass"] for v in visits]
        bbox = manifest["bbox"]
        grid = f"a {bbox['width']}x{bbox['height']} {manifest['band']['name']}-band field"
        if "detectorFrames" in manifest:
            detector = manifest["detectorFrames"]["detector"]
            grid = (f"{detector['width']}x{detector['height']} detectors over {grid} (the "
                    "patch)")
        print(
            f"simulated {len(visits)} visits ({len(training)} training, {len(test)} test; "
            f"airmass {min(airmass):.2f}-{max(airmass):.2f}) of {grid} with "
            f"{len(manifest['sources'])} sources and {len(manifest['transients'])} "
            f"transients in {time.monotonic() - started:.1f} s"
        )
        print(f"manifest: {manifest.directory / 'manifest.json'}")
    return EXIT_OK


# --------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------

#: Functions that add one subcommand each: ``add(subparsers, commonParser)``.
_SUBCOMMANDS: list[Callable[[Any, argparse.ArgumentParser], None]] = [
    _addSimulate,
    *_MODEL_SUBCOMMANDS,
    *_BUTLER_SUBCOMMANDS,
]


def _commonParser() -> argparse.ArgumentParser:
    """Options every subcommand accepts (defaults suppressed so they never reset)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print errors only; no progress bars")
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="print more (twice: debugging messages)")
    common.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars")
    return common


def buildParser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``dcrmodel`` command."""
    parser = argparse.ArgumentParser(
        prog="dcrmodel",
        description=(
            "Differential Chromatic Refraction models of the sky and DCR-matched templates "
            "for image differencing."
        ),
    )
    parser.add_argument("--version", action="version", version=f"dcrmodel {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="print more (twice: debugging messages)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _commonParser()
    for add in _SUBCOMMANDS:
        add(subparsers, common)
    return parser


def _configureLogging(verbose: int, quiet: bool) -> logging.Handler:
    level = logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(
        verbose, logging.DEBUG
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dcrmodel: %(levelname)s: %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(level)
    _log.propagate = False
    return handler


def _showWarning(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
    """Send warnings to the log as one line (the offline-IERS note only when verbose)."""
    level = logging.INFO if issubclass(category, DcrOfflineWarning) else logging.WARNING
    _log.log(level, "%s: %s", category.__name__, " ".join(str(message).split()))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dcrmodel`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; None: ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 success, 2 bad input or usage, 130 interrupted (also before the
        subcommand starts).
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("dcrmodel: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _errorText(error: BaseException) -> str:
    """One line for an error: ours as they are, a system error with its file and cause."""
    if isinstance(error, OSError) and not isinstance(error, DcrError) and error.strerror:
        where = error.filename if error.filename is not None else ""
        text = f"{where}: {error.strerror}" if where else error.strerror
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _outputLockOf(args: argparse.Namespace) -> contextlib.AbstractContextManager[Any]:
    """Hold the lock of the command's ``--out`` for its whole run: one writer per output.

    A second command writing the same output fails at once (`dcrmodel.atomic.outputLock`),
    whatever the command; the functions it calls take the same lock again (nested).
    """
    out = getattr(args, "out", None)
    if isinstance(out, str) and out:
        return outputLock(out)
    return contextlib.nullcontext()


def _main(argv: Sequence[str] | None) -> int:
    parser = buildParser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse reports usage errors (2) and --help (0) this way
        return int(exit_.code) if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("dcrmodel: error: choose a command (see dcrmodel --help)", file=sys.stderr)
        return EXIT_BAD_INPUT
    handler = _configureLogging(args.verbose or 0, bool(args.quiet))
    previous = warnings.showwarning
    warnings.showwarning = _showWarning
    try:
        with logToBar(_log), _outputLockOf(args):
            return args.handler(args)
    except (DcrError, OSError, ImportError) as error:
        # OSError: files that cannot be read or written (permissions, a full disk, ...)
        print(f"dcrmodel {args.command}: error: {_errorText(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"dcrmodel {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = previous
        _log.removeHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
