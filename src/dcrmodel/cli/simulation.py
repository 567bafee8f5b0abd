"""The ``dcrmodel simulate`` command's work: a synthetic field with known truth.

Its arguments are declared in `dcrmodel.cli.parser` (``_addSimulate``); the field is made by
`dcrmodel.simulate.field`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..errors import DcrValueError
from ..simulate import Bandpass, SimulationConfig, runSimulation
from .main import EXIT_OK
from .progress import ProgressBar

__all__: list[str] = []


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
