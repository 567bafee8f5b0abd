"""Tests of dcrmodel.parallel: the number of threads and work in blocks of rows."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from dcrmodel.errors import DcrTypeError, DcrValueError
from dcrmodel.parallel import (
    availableCores,
    forRowBlocks,
    resolveThreads,
    threadLimit,
)


def test_default_is_the_cores_this_process_may_use():
    assert availableCores() == len(os.sched_getaffinity(0))
    assert resolveThreads() == availableCores()
    assert resolveThreads(3) == 3


def test_thread_limit_sets_the_default_in_its_block_only():
    with threadLimit(1) as count:
        assert count == 1 and resolveThreads() == 1
        with threadLimit(None) as inner:
            assert inner == 1
        assert resolveThreads(2) == 2
    assert resolveThreads() == availableCores()


@pytest.mark.parametrize("value, error", [(0, DcrValueError), (-1, DcrValueError),
                                          (2.5, DcrTypeError), (2.0, DcrTypeError),
                                          (True, DcrTypeError), ("4", DcrTypeError)])
def test_bad_thread_counts_are_refused(value, error):
    with pytest.raises(error, match="threads must be a whole number of threads >= 1"):
        resolveThreads(value)
    with pytest.raises(error, match="threads must be a whole number"), threadLimit(value):
        pass


@pytest.mark.parametrize("threads", [1, 2, 5])
@pytest.mark.parametrize("rows", [1, 7, 100])
def test_blocks_cover_every_row_once(threads, rows):
    seen = np.zeros(rows, dtype=int)
    names = set()

    def block(part: slice) -> None:
        seen[part] += 1
        names.add(threading.current_thread().name)

    forRowBlocks(block, rows, threads, blockRows=8)
    np.testing.assert_array_equal(seen, 1)
    if threads == 1:
        assert names == {threading.current_thread().name}


@pytest.mark.parametrize(("threads", "rows", "expected"), [
    (1, 100, [32, 32, 32, 4]),  # DEFAULT_BLOCK_ROWS in one thread
    (2, 100, [50, 50]),  # one block per thread
    (3, 100, [34, 34, 32]),
    (2, 1, [1]),
])
def test_default_blocks(threads, rows, expected):
    sizes = []
    lock = threading.Lock()

    def block(part: slice) -> None:
        with lock:
            sizes.append((part.start, part.stop - part.start))

    forRowBlocks(block, rows, threads)
    assert [size for _, size in sorted(sizes)] == expected


def test_an_error_in_a_block_is_raised():
    def block(part: slice) -> None:
        if part.start == 0:
            raise DcrValueError("bad block")

    with pytest.raises(DcrValueError, match="bad block"):
        forRowBlocks(block, 64, 2, blockRows=8)


def test_blocks_started_from_a_block_run_in_its_thread():
    outer = np.zeros(4, dtype=int)

    def block(part: slice) -> None:
        here = threading.current_thread().name
        inner = []
        forRowBlocks(lambda rows: inner.append(threading.current_thread().name), 16, 2, 4)
        assert set(inner) == {here}
        outer[part] += 1

    forRowBlocks(block, 4, 2, blockRows=1)
    np.testing.assert_array_equal(outer, 1)

