"""Threads of one process: how many to use, and work split into blocks of rows among them.

The direct solver and the Fourier template engine work on arrays over a grid of spatial
frequencies where every frequency is computed on its own (products, sums over visits and
subfilters, small per-frequency solves). `forRowBlocks` runs such work on blocks of rows of
the grid, in a pool of threads: numpy releases the interpreter lock inside its loops, so
the blocks run on several cores at once. Each element is computed by the same operations in
the same order whatever the number of threads, so the results do not depend on it (bit for
bit). One thread works in blocks of a few dozen rows, which keep each block's temporaries in
the processor's cache. Several threads each take one long block (the rows split evenly
among them): a block's work is a string of short numpy calls, and between them a thread
holds the interpreter lock, so with blocks of a few dozen rows the threads mostly wait for
each other (measured on a 1024^2 x 24 build with 2 threads: 32-row blocks 4.60 s, 128-row
blocks 4.04 s, one block per thread 3.74 s, one thread 4.34 s). The FFTs use
``scipy.fft``'s own threads (``workers=``), which split the one-dimensional transforms among
them and give the same values as one thread.

How many threads: `resolveThreads` turns a setting (an int >= 1, or None) into a count;
None means the default of the current context (`threadLimit`), else every core this process
may run on (``os.sched_getaffinity``, which honours ``taskset`` and the CPU sets of batch
schedulers).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar

from ._validate import asThreadCount

__all__ = [
    "DEFAULT_BLOCK_ROWS",
    "availableCores",
    "resolveThreads",
    "threadLimit",
    "forRowBlocks",
]

#: Rows of a frequency grid per block of `forRowBlocks` in one thread: on a grid of a few
#: hundred columns a block of one complex64 array is some tens of kB, so the dozen arrays
#: that a block's work touches stay in a core's cache.
DEFAULT_BLOCK_ROWS = 32

_defaultThreads: ContextVar[int | None] = ContextVar("dcrmodelThreads", default=None)

#: The pools of this process, by number of threads (remade after a fork).
_pools: dict[int, ThreadPoolExecutor] = {}
_poolsPid = os.getpid()
_poolsLock = threading.Lock()

#: Set in the threads of the pools: work they start runs in their own thread.
_inPool = threading.local()


def availableCores() -> int:
    """Return the number of cores this process may run on (at least 1).

    Returns
    -------
    int
        ``len(os.sched_getaffinity(0))`` where the system has it (Linux: honours
        ``taskset`` and the CPU sets of batch schedulers), else ``os.cpu_count()``.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolveThreads(threads: int | None = None) -> int:
    """Return the number of threads to use for a setting.

    Parameters
    ----------
    threads : int or None, optional
        A number of threads >= 1, or None: the default of the current context
        (`threadLimit`), else every core (`availableCores`).

    Returns
    -------
    int
        The number of threads, >= 1.

    Raises
    ------
    DcrTypeError
        If ``threads`` is not an integer (a `bool` or a fraction included).
    DcrValueError
        If it is below 1.
    """
    if threads is None:
        threads = _defaultThreads.get()
        if threads is None:
            return availableCores()
    return asThreadCount(threads)


@contextlib.contextmanager
def threadLimit(threads: int | None) -> Iterator[int]:
    """Make ``threads`` the default of `resolveThreads` within a ``with`` block.

    Parameters
    ----------
    threads : int or None
        A number of threads >= 1; None leaves the default as it is.

    Yields
    ------
    int
        The number of threads that `resolveThreads` gives in the block.

    Raises
    ------
    DcrTypeError, DcrValueError
        For a ``threads`` that is not an integer >= 1.

    Examples
    --------
    >>> with threadLimit(1) as count:
    ...     resolveThreads()
    1
    """
    if threads is None:
        yield resolveThreads()
        return
    token = _defaultThreads.set(asThreadCount(threads))
    try:
        yield resolveThreads()
    finally:
        _defaultThreads.reset(token)


def _markPoolThread() -> None:
    _inPool.active = True


def _pool(threads: int) -> ThreadPoolExecutor:
    """Return this process's pool of ``threads`` threads (made on first use, and after a fork)."""
    global _poolsPid
    with _poolsLock:
        if _poolsPid != os.getpid():  # a forked child: its parent's pools have no threads
            _pools.clear()
            _poolsPid = os.getpid()
        pool = _pools.get(threads)
        if pool is None:
            pool = ThreadPoolExecutor(threads, thread_name_prefix="dcrmodel",
                                      initializer=_markPoolThread)
            _pools[threads] = pool
        return pool


def forRowBlocks(
    function: Callable[[slice], None],
    numRows: int,
    threads: int = 1,
    blockRows: int | None = None,
) -> None:
    """Call ``function(rows)`` for blocks of rows covering ``range(numRows)``, in threads.

    Every block is a ``slice`` of consecutive rows; the blocks do not overlap and cover all
    rows. ``function`` must write only to its block's rows (nothing else shared), so that
    the blocks may run in any order and at the same time; the values it computes then do
    not depend on ``threads``.

    Parameters
    ----------
    function : callable
        ``function(rows)``; its return value is not used.
    numRows : int
        Number of rows.
    threads : int, optional
        Threads to run the blocks in (default 1: in the calling thread, block after block).
        Work started from a block (a thread of the pool) runs in that thread.
    blockRows : int, optional
        Rows per block. By default `DEFAULT_BLOCK_ROWS` in one thread and, with several, the
        rows split evenly into one block per thread. With several threads, blocks are made
        smaller if there would be fewer blocks than threads.

    Raises
    ------
    Exception
        The first exception raised by ``function``, once every block has run.
    """
    numRows = int(numRows)
    if numRows <= 0:
        return
    threads = max(1, int(threads))
    if getattr(_inPool, "active", False):
        threads = 1
    if blockRows is None:
        blockRows = DEFAULT_BLOCK_ROWS if threads == 1 else math.ceil(numRows / threads)
    size = max(1, int(blockRows))
    if threads > 1:
        size = max(1, min(size, math.ceil(numRows / threads)))
    blocks = [slice(start, min(numRows, start + size)) for start in range(0, numRows, size)]
    if threads == 1 or len(blocks) == 1:
        for rows in blocks:
            function(rows)
        return
    # ``threads - 1`` threads of the pool and this one take the next block until none is
    # left; this thread then waits only for the blocks others have taken. A helper that
    # starts late (its core busy with other work) finds nothing left and returns: the
    # caller never waits for a thread that has not started.
    condition = threading.Condition()
    state = {"next": 0, "finished": 0}
    errors: list[BaseException] = []

    def take() -> slice | None:
        with condition:
            index = state["next"]
            if index >= len(blocks):
                return None
            state["next"] = index + 1
            return blocks[index]

    def work() -> None:
        while (rows := take()) is not None:
            try:
                function(rows)
            except BaseException as error:  # noqa: BLE001 - raised below, in the caller
                errors.append(error)
            finally:
                with condition:
                    state["finished"] += 1
                    condition.notify_all()

    helpers = min(threads, len(blocks)) - 1
    pool = _pool(helpers)
    for _ in range(helpers):
        pool.submit(work)
    nested = getattr(_inPool, "active", False)
    _inPool.active = True
    try:
        work()
    finally:
        _inPool.active = nested
        with condition:
            while state["finished"] < state["next"]:
                condition.wait()
    if errors:
        raise errors[0]

