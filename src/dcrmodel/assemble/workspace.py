"""Memory reused between the direct solver's solves: `ArrayPool`.

A model is built one subregion at a time, and the direct solver needs the same large arrays in
every subregion (the visits' stacks and transfers); the pool hands them from one solve to the
next.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ArrayPool"]


class ArrayPool:
    """Arrays handed back for reuse by later solves of the same shapes (memory, not values).

    A model is built one subregion at a time, and every subregion needs the same large
    arrays (the visits' transfers, hundreds of MB). Freshly allocated memory costs a page
    fault per 4 KiB on first use, which on large grids is a noticeable part of a solve;
    a pool kept across the subregions of a run lets each reuse the previous one's memory.
    The values of a taken array are undefined. A request the pool cannot serve (a new shape,
    e.g. a subregion at the patch's edge) first drops every free array, so that the pool
    never holds more than the arrays handed back since the last such request.

    Examples
    --------
    >>> pool = ArrayPool()
    >>> a = pool.take((2, 3), np.float32)
    >>> pool.give(a)
    >>> pool.take((2, 3), np.float32) is a
    True
    >>> pool.take((2, 3), np.float32) is a  # taken already: a new array
    False
    >>> pool.give(a)
    >>> pool.take((4, 3), np.float32) is a  # another shape: the free arrays are dropped
    False
    >>> pool.take((2, 3), np.float32) is a
    False
    """

    def __init__(self) -> None:
        self._free: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = {}

    def take(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Return an array of ``shape`` and ``dtype`` (uninitialised), reused if one is free."""
        key = (tuple(int(v) for v in shape), np.dtype(dtype).str)
        free = self._free.get(key)
        if free:
            return free.pop()
        self._free.clear()
        return np.empty(key[0], dtype=dtype)

    def give(self, array: np.ndarray) -> None:
        """Hand ``array`` back; it must not be used by the caller afterwards."""
        if array.base is None and array.flags.c_contiguous:
            self._free.setdefault((array.shape, array.dtype.str), []).append(array)

    def __reduce__(self) -> tuple[type, tuple]:
        # Sent to another process, a pool carries no memory.
        return (ArrayPool, ())
