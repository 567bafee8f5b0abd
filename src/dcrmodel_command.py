"""Entry point of the ``dcrmodel`` console script.

It lives outside the ``dcrmodel`` package so that importing it is instant: importing
``dcrmodel`` (numpy, scipy, astropy and every subpackage) takes seconds, and a Ctrl-C in
that time would otherwise end in a Python traceback. Here it ends with one line and the
interrupted status, 130, like a Ctrl-C while the command runs (`dcrmodel.cli.main.main`).
"""

from __future__ import annotations

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
    """
    try:
        from dcrmodel.cli.main import main as run
    except KeyboardInterrupt:
        print("dcrmodel: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
