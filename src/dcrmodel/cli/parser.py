"""The ``dcrmodel`` command's argument parser: every subcommand's arguments, nothing else.

Building the parser imports argparse and the package's root only, so ``dcrmodel --help``,
``dcrmodel --version`` and ``dcrmodel COMMAND --help`` answer as fast as Python starts;
each subcommand's work is imported when it runs (`dcrmodel.cli.main` holds the table of
handlers).

Each subcommand has one ``_add<Name>(subparsers, common)`` function here that declares its
arguments and sets ``handler`` to its name in `dcrmodel.cli.main._HANDLERS`; the work is a
``_run<Name>(args) -> int`` function in the module that table names:

==================  ==========================  ==========================
subcommand          parser (this module)        work
==================  ==========================  ==========================
simulate            ``_addSimulate``            `dcrmodel.cli.simulation`
assemble            ``_addAssemble``            `dcrmodel.cli.commands`
assemble-patches    ``_addAssemblePatches``     `dcrmodel.cli.commands`
template            ``_addTemplate``            `dcrmodel.cli.templates`
diff                ``_addDiff``                `dcrmodel.cli.templates`
warp                ``_addWarp``                `dcrmodel.cli.commands`
demo                ``_addDemo``                `dcrmodel.cli.demo`
butler              ``_addButler``              `dcrmodel.cli.butler`
==================  ==========================  ==========================

The choices the parser offers are mirrored from their homes (`SOLVERS` of
`dcrmodel.assemble`, the warping kernels and conservation modes of `dcrmodel.warp`, ...)
because importing those homes costs a second; ``tests/cli/test_parser.py`` checks that
every mirror equals its home.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .._version import __version__

__all__ = ["buildParser", "SUBCOMMANDS"]

# --------------------------------------------------------------------------------------
# Choices mirrored from their homes (checked equal by tests/cli/test_parser.py)
# --------------------------------------------------------------------------------------

#: `dcrmodel.assemble.SOLVERS`
SOLVERS: tuple[str, ...] = ("iterative", "direct")
#: `dcrmodel.assemble.AUTO_SUBFILTERS`
AUTO_SUBFILTERS = "auto"
#: `dcrmodel.model.ENGINES` (in the order --help always listed them)
ENGINES: tuple[str, ...] = ("fourier", "spline")
#: `dcrmodel.warp.WARPING_KERNELS` and `dcrmodel.warp.DEFAULT_WARPING_KERNEL`
WARPING_KERNELS: tuple[str, ...] = ("lanczos3", "lanczos2", "lanczos4", "lanczos5", "lanczos6",
                                    "lanczos7", "lanczos8", "bilinear", "nearest")
DEFAULT_WARPING_KERNEL = "lanczos3"
#: `dcrmodel.model.TEMPLATE_WARPING_KERNEL`
TEMPLATE_WARPING_KERNEL = "lanczos4"
#: `dcrmodel.warp.CONSERVE_MODES`
CONSERVE_MODES: tuple[str, ...] = ("surfaceBrightness", "flux", "exactFlux")
#: `dcrmodel.warp.GRID_SPEC_FORMAT`
GRID_SPEC_FORMAT = "RA,DEC,WIDTH,HEIGHT,SCALE"
#: the keys of `dcrmodel.image.RUBIN_BANDS`
RUBIN_BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")
#: the keys of `dcrmodel.cli.demo.DEMO_FIELDS`
DEMO_FIELDS: tuple[str, ...] = ("constant-seeing", "variable-seeing", "detector-frames")

_TRANSFERS = ("copy", "direct", "symlink", "hardlink", "auto")


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
    parser.set_defaults(handler="simulate")


# ------------------------------------------------------------------------------------------
# assemble
# ------------------------------------------------------------------------------------------
def _subfilterCount(text: str) -> int | str:
    """Parse ``--subfilters``: a whole number, or ``auto``."""
    if text.strip().lower() == AUTO_SUBFILTERS:
        return AUTO_SUBFILTERS
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of subfilters or {AUTO_SUBFILTERS}, got {text!r}") from None


def _addAssemble(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "assemble", parents=[common], help="build a DCR model from exposures of one patch",
        description="Build a DCR model (one image per subfilter) from exposures of one patch "
        "taken at different airmasses and parallactic angles, and write it with the stacked "
        "coadd, the per-subfilter image counts and a run summary. The model's grid is "
        "--grid's, else --coadd's, else the visits' own (then all on one grid); visits on "
        "other grids (detector frames) are warped onto it, and a visit that does not "
        "overlap it is left out with a warning.",
    )
    parser.add_argument("visits", nargs="+", metavar="VISIT.fits", help="exposure files")
    parser.add_argument("--coadd", metavar="COADD.fits", help="plain coadd to start from")
    parser.add_argument("--grid", metavar="GRID",
                        help="the model's grid: an exposure file whose WCS and box are used, "
                        f"or {GRID_SPEC_FORMAT} (degrees, degrees, pixels, pixels, "
                        "arcsec/pixel) for a North-up tangent-plane patch")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="output folder")
    parser.add_argument("--config", metavar="C.toml", help="configuration file (TOML)")
    parser.add_argument("--subfilters", type=_subfilterCount, metavar="N|auto",
                        help="number of subfilters, or auto (the default): the fewest, at "
                        "least 3, for which the DCR across one subfilter stays within 1.2 "
                        "times the visits' median PSF FWHM in every visit")
    parser.add_argument("--solver", choices=SOLVERS, help="model solver")
    parser.add_argument("--effective-wavelength", type=float, metavar="NM",
                        help="band effective wavelength in nm (with --bandwidth)")
    parser.add_argument("--bandwidth", type=float, metavar="NM", help="band width in nm")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any configuration value (TOML syntax), repeatable")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier model in MODEL_DIR")
    _addClusterOptions(parser)
    parser.set_defaults(handler="assemble")


def _addClusterOptions(parser: argparse.ArgumentParser) -> None:
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="solve subregions on a local Dask cluster of N worker processes")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="solve subregions on a running Dask cluster (e.g. tcp://host:8786)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the subregions an interrupted run finished")
    _addThreads(parser)


def _addThreads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads of the FFTs and per-frequency work (default: every "
                        "core; shared among the workers of --workers)")


# ------------------------------------------------------------------------------------------
# assemble-patches
# ------------------------------------------------------------------------------------------
def _addAssemblePatches(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "assemble-patches", parents=[common], help="build DCR models of many patches",
        description="Build the DCR model of every patch of a plan (TOML: [[patch]] entries "
        "with name, visits, optional coadd and grid, out and config) on a Dask cluster, or "
        "one after another without --workers/--scheduler, and print a summary table.",
    )
    parser.add_argument("plan", metavar="PLAN.toml", help="the plan of patches")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace earlier models in the patches' output folders")
    _addClusterOptions(parser)
    parser.set_defaults(handler="assemble-patches")


# ------------------------------------------------------------------------------------------
# template and diff
# ------------------------------------------------------------------------------------------
def _addModelAndExposure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL_DIR",
                        help="DCR model folder (dcrmodel assemble); several for a visit that "
                        "spans several patches (one band and subfilter count)")
    parser.add_argument("exposure", metavar="EXPOSURE.fits",
                        help="science exposure, on any WCS; with --out-dir, one or more "
                        "(the paths that are folders are the models, the files after "
                        "them the exposures)")
    parser.add_argument("--engine", choices=ENGINES,
                        help="template engine (default: the model's default)")
    parser.add_argument("--warping-kernel", choices=WARPING_KERNELS,
                        default=TEMPLATE_WARPING_KERNEL,
                        help="kernel of the warp of a template onto an exposure on another "
                        f"pixel grid than the model's (default {TEMPLATE_WARPING_KERNEL}; "
                        "lanczos3: the reference pipelines' kernel, a little faster and less "
                        "exact; lanczos5: more exact, slower)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _addThreads(parser)


def _addOutputs(parser: argparse.ArgumentParser, metavar: str, what: str) -> None:
    """``--out FILE`` for one exposure, or ``--out-dir DIR`` for a batch (one of the two)."""
    outputs = parser.add_mutually_exclusive_group(required=True)
    outputs.add_argument("--out", metavar=metavar, help="output file")
    outputs.add_argument("--out-dir", metavar="DIR",
                         help=f"output folder for a batch: MODEL_DIR... EXPOSURE.fits... in one "
                         f"process (the models read and transformed once), {what} of each "
                         "exposure written to DIR under the exposure's file name")


def _addTemplate(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "template", parents=[common], help="make a DCR-matched template for an exposure",
        description="Forward-model the DCR model to the observing conditions of an exposure "
        "and write the DCR-matched template. An exposure on the model's pixel grid gets it "
        "on its box within the model's; an exposure on any other WCS gets it on its own box "
        "and WCS (made on each model's grid and warped, Lanczos 4), merged from several "
        "models (patches) where the exposure spans more than one, NO_DATA where none "
        "covers it.",
    )
    _addModelAndExposure(parser)
    _addOutputs(parser, "TEMPLATE.fits", "the template")
    parser.set_defaults(handler="template")


def _addDiff(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "diff", parents=[common], help="subtract a DCR-matched template and detect",
        description="Subtract a DCR-matched template from an exposure, detect at a threshold "
        "in sigma with the PSF-matched filter, and write the difference exposure (DETECTED "
        "and DETECTED_NEGATIVE mark the detections) and a JSON list of detections beside it. "
        "The exposure may be on any WCS and span several models (patches), as for "
        "'dcrmodel template'; pixels no model covers (NO_DATA) and pixels whose model rests "
        "on too few visits are not searched.",
    )
    _addModelAndExposure(parser)
    _addOutputs(parser, "DIFF.fits", "the difference (and its detections, NAME.json)")
    parser.add_argument("--threshold", type=float, default=5.0, metavar="SIGMA",
                        help="detection threshold in sigma (default 5)")
    parser.add_argument("--match-to", choices=("auto", "template", "science"), default="auto",
                        dest="matchTo",
                        help="which image is convolved to the other's PSF: 'template' (the "
                        "template at the exposure's PSF), 'science' (the exposure convolved "
                        "to the model's PSF, for exposures sharper than the model) or 'auto' "
                        "(science when the exposure is sharper than the model can follow; "
                        "the default)")
    parser.set_defaults(handler="diff")


# ------------------------------------------------------------------------------------------
# warp
# ------------------------------------------------------------------------------------------
def _addWarp(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "warp", parents=[common], help="warp exposures onto one sky grid",
        description="Resample exposures onto one pixel grid (WCS and box): image, variance "
        "and mask through a Lanczos kernel, the PSF rotated and scaled with the pixels. "
        "Writes one file per input into DIR under the input's file name; an exposure that "
        "does not overlap the grid is skipped with a warning.",
    )
    parser.add_argument("exposures", nargs="+", metavar="EXPOSURE.fits",
                        help="exposure files (Rubin layout, with a WCS)")
    parser.add_argument("--grid", required=True, metavar="GRID",
                        help="destination grid: an exposure file whose WCS and box are used, "
                        f"or {GRID_SPEC_FORMAT} (degrees, degrees, pixels, pixels, "
                        "arcsec/pixel) for a North-up tangent-plane patch")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--kernel", choices=WARPING_KERNELS, default=DEFAULT_WARPING_KERNEL,
                        help=f"resampling kernel (default {DEFAULT_WARPING_KERNEL})")
    parser.add_argument("--conserve", choices=CONSERVE_MODES, default=CONSERVE_MODES[0],
                        help="what the pixel values keep: surface brightness (default), "
                        "flux (scaled by the pixel areas) or exactFlux")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files of the same names in DIR")
    parser.set_defaults(handler="warp")


# ------------------------------------------------------------------------------------------
# demo
# ------------------------------------------------------------------------------------------
def _addDemo(subparsers: Any, common: argparse.ArgumentParser) -> None:

    parser = subparsers.add_parser(
        "demo", parents=[common], help="the main job end to end on simulated data",
        description="Simulate fields with known truth (constant and variable seeing), build "
        "DCR models from their training visits, make templates for held-out visits, and "
        "write a report (PNG figures, summary.md) comparing them with a plain coadd.",
    )
    parser.add_argument("--out", default="demo-output", metavar="DIR",
                        help="output folder (default demo-output)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--fields", nargs="+", choices=list(DEMO_FIELDS),
                        default=list(DEMO_FIELDS), help="fields to run (default: all)")
    parser.add_argument("--solvers", nargs="+", choices=SOLVERS, default=list(SOLVERS),
                        help="solvers to compare (default: both)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo")
    parser.set_defaults(handler="demo")


# ------------------------------------------------------------------------------------------
# butler (dcrmodel.cli.butler)
# ------------------------------------------------------------------------------------------
def _addButler(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "butler", parents=[common], help="use dcrmodel in a Rubin data butler repository",
        description="Create a data butler repository that knows dcrmodel, ingest files into "
        "it, and find the pipeline to run with pipetask (needs dcrmodel[rubin]).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    init = actions.add_parser(
        "init", parents=[common], help="create a repository that knows dcrmodel",
        description="Create a repository with dcrmodel's storage classes and formatters, "
        "its dataset types (dcrWarp, dcrInputCoadd, dcrCoadd, dcrStackedCoadd, "
        "dcrVisitImage, dcrTemplate), an instrument with one physical filter per band, and "
        "the bands' subfilter records.",
    )
    init.add_argument("repo", metavar="REPO", help="folder of the new repository")
    init.add_argument("--bands", nargs="+", default=list(RUBIN_BANDS), metavar="BAND",
                      help="bands to insert subfilter records for (default: u g r i z y)")
    init.add_argument("--subfilters", type=int, default=3, metavar="N",
                      help="subfilter records per band (default 3)")
    init.set_defaults(handler="butler init")

    ingest = actions.add_parser(
        "ingest", parents=[common], help="ingest visits, a coadd and DCR models",
        description="Ingest visit files on any WCS (as dcrVisitImage on detector 0, with "
        "their sky regions; a visit on the patch's pixel grid also as its dcrWarp, the "
        "others get theirs from the pipeline's dcrMakeWarp), a plain coadd (dcrInputCoadd) "
        "and DCR model folders (dcrCoadd), with the dimension records they need. The "
        "patch's grid (dcrPatchGrid) is --grid's, else the coadd's, else the first model's "
        "or visit's.",
    )
    ingest.add_argument("repo", metavar="REPO", help="repository (dcrmodel butler init)")
    ingest.add_argument("files", nargs="*", metavar="FILE",
                        help="visit files and DCR model folders")
    where = ingest.add_mutually_exclusive_group()
    where.add_argument("--coadd", metavar="COADD.fits", help="plain coadd: the patch's grid")
    where.add_argument("--grid", metavar="GRID",
                       help="the patch's grid: an exposure file whose WCS and box are used, "
                       "or RA,DEC,WIDTH,HEIGHT,SCALE (deg, deg, pixels, pixels, "
                       "arcsec/pixel) for a North-up tangent-plane patch")
    ingest.add_argument("--run", required=True, metavar="RUN", help="RUN collection to ingest into")
    ingest.add_argument("--transfer", choices=_TRANSFERS, default="copy",
                        help="copy the files (default) or use them in place (direct)")
    ingest.add_argument("--instrument", default=None, help="instrument name of the visits")
    ingest.add_argument("--skymap", default=None, help="skymap name of the grid")
    ingest.add_argument("--tract", type=int, default=0, help="tract ID (default 0)")
    ingest.add_argument("--patch", type=int, default=0, help="patch ID (default 0)")
    ingest.set_defaults(handler="butler ingest")

    pipeline = actions.add_parser(
        "pipeline", parents=[common], help="print the path of the pipeline YAML",
        description="Print the path of the shipped pipeline YAML (labels dcrMakeWarp, "
        "dcrAssembleCoadd and dcrTemplate; subset dcrModel = dcrMakeWarp and "
        "dcrAssembleCoadd), e.g. pipetask run -b REPO -i RUN -o OUT "
        "-p \"$(dcrmodel butler pipeline)#dcrModel\".",
    )
    pipeline.set_defaults(handler="butler pipeline")


# --------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------

#: Functions that add one subcommand each: ``add(subparsers, commonParser)``.
SUBCOMMANDS: list[Callable[[Any, argparse.ArgumentParser], None]] = [
    _addSimulate, _addAssemble, _addAssemblePatches, _addTemplate, _addDiff, _addWarp,
    _addDemo, _addButler,
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
    for add in SUBCOMMANDS:
        add(subparsers, common)
    return parser

