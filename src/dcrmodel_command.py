"""Entry point of the ``dcrmodel`` console script.

It lives outside the ``dcrmodel`` package so that importing it is instant: importing
``dcrmodel`` (numpy, scipy, astropy and every subpackage) takes seconds, and a Ctrl-C in
that time would otherwise end in a Python traceback. Here it ends with one line and the
interrupted status, 130, like a Ctrl-C while the command runs (`dcrmodel.cli.main.main`).
"""

from __future__ import annotations

import gc
import sys

__all__ = ["main", "EXIT_INTERRUPTED"]

#: Exit status of an interrupted command (128 + SIGINT), as `dcrmodel.cli.main` returns it.
EXIT_INTERRUPTED = 130


def main() -> int:
    """Import the ``dcrmodel`` command and run it on ``sys.argv``.

    Returns
    -------
    int
        The command's exit status (see `dcrmodel.cli.main.main`); 130 if interrupted
        while the package is imported.

    Notes
    -----
    The process ends when this returns, so the objects left are frozen (`gc.freeze`):
    the interpreter's exit then does not garbage-collect the objects of numpy, scipy and
    astropy (some 90,000, with their modules), which took about 0.1 s of every command.
    Everything the command writes is closed by then; objects are still released as the
    modules are cleared, as at any exit. Call it as the console script does: once, at the
    end of a process.
    """
    try:
        from dcrmodel.cli.main import main as run
    except KeyboardInterrupt:
        print("dcrmodel: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    status = run()
    gc.freeze()
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
