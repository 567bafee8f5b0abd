"""The ``dcrmodel`` command: its entry point, exit codes and the table of subcommands.

Subcommands:

- ``dcrmodel simulate --out DIR``: a synthetic field with known truth (`dcrmodel.cli.simulation`).
- ``assemble``, ``assemble-patches`` and ``warp``: see `dcrmodel.cli.commands`.
- ``template`` and ``diff`` (one exposure, or a batch with ``--out-dir``): see
  `dcrmodel.cli.templates`.
- ``demo``: see `dcrmodel.cli.demo`.
- ``butler init|ingest|pipeline``: a Rubin data butler repository, see `dcrmodel.cli.butler`.

Each subcommand is one ``_add<Name>(subparsers, common)`` function in `dcrmodel.cli.parser`,
which declares its arguments and names its handler, and one ``_run<Name>(args) -> int``
function that does the work, in the module `_HANDLERS` gives. The parser imports nothing
heavy; the handler's module (and with it numpy, astropy, scipy and the subpackages it
needs) is imported when the subcommand runs, by `_handlerOf`, so ``dcrmodel --help`` and a
mistyped command answer at once. Register a new subcommand by adding its ``_add`` function
to `dcrmodel.cli.parser.SUBCOMMANDS` and its handler to `_HANDLERS`.

A command holds the lock of its ``--out`` (or ``--out-dir``) for its whole run
(`dcrmodel.atomic.outputLock`): a second command writing the same output fails at once.

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
import warnings
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from ..atomic import outputLock
from ..errors import DcrError, DcrOfflineWarning
from .parser import buildParser
from .progress import ProgressBar, logToBar

__all__ = ["main", "buildParser", "ProgressBar", "EXIT_OK", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED"]

_log = logging.getLogger("dcrmodel")

#: Exit status for success, bad input (or usage), and an interrupted run.
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

#: Where each subcommand's work lives: the parser's ``handler`` name -> (module of
#: `dcrmodel.cli`, function). The module is imported by `_handlerOf` when the subcommand
#: runs, never while the parser is built.
_HANDLERS: dict[str, tuple[str, str]] = {
    "simulate": ("simulation", "_runSimulate"),
    "assemble": ("commands", "_runAssemble"),
    "assemble-patches": ("commands", "_runAssemblePatches"),
    "template": ("templates", "_runTemplate"),
    "diff": ("templates", "_runDiff"),
    "warp": ("commands", "_runWarp"),
    "demo": ("demo", "_runDemo"),
    "butler init": ("butler", "_runInit"),
    "butler ingest": ("butler", "_runIngest"),
    "butler pipeline": ("butler", "_runPipeline"),
}


def _handlerOf(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """Return the function that does the parsed subcommand's work, importing its module.

    The one place where the command line imports its own code by name
    (`importlib.import_module`), so that building the parser stays light; the modules
    named in `_HANDLERS` import their subpackages at their top as usual. A handler that
    is already a function (set by a caller of `buildParser`) is returned as it is.
    """
    handler = args.handler
    if callable(handler):
        return handler
    module, function = _HANDLERS[handler]
    return getattr(import_module(f"{__package__}.{module}"), function)


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
    whatever the command; the functions it calls take the same lock again (nested). A
    batch of ``template`` or ``diff`` holds the lock of its ``--out-dir``.
    """
    out = getattr(args, "out", None) or getattr(args, "out_dir", None)
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
            return _handlerOf(args)(args)
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
