"""``--threads N``: the default number of threads while a command's handler runs."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from ..parallel import threadLimit

__all__ = ["threaded"]


def threaded(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Run ``handler(args)`` with ``args.threads`` as the default number of threads.

    The number is checked (`dcrmodel.parallel.threadLimit`) before the handler does any
    work; None (the option not given) means every core.
    """
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with threadLimit(getattr(args, "threads", None)):
            return handler(args)
    return run
