"""Tests of dcrmodel.image.geometry: `Box`.

References used: index arithmetic on arrays whose values encode their parent coordinates
(Box slices).
"""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.image.geometry import Box
from helpers.grid import parentGrid as _parentGrid

coords = st.integers(min_value=-50, max_value=50)
sizes = st.integers(min_value=0, max_value=30)
boxes = st.builds(Box, coords, coords, sizes, sizes)
nonEmptyBoxes = st.builds(Box, coords, coords, st.integers(1, 30), st.integers(1, 30))


# ----------------------------------------------------------------------------------------
# Box
# ----------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(boxes, boxes)
def test_box_intersection_commutative_and_contained(a, b):
    ab = a.intersection(b)
    assert ab == b.intersection(a)
    assert a.contains(ab) and b.contains(ab)
    assert a.clippedTo(b) == ab
    # Every pixel of both boxes is in the intersection, and no other.
    setA = {(x, y) for x in range(a.minX, a.maxX + 1) for y in range(a.minY, a.maxY + 1)}
    setB = {(x, y) for x in range(b.minX, b.maxX + 1) for y in range(b.minY, b.maxY + 1)}
    common = setA & setB
    assert ab.area == len(common)
    assert a.overlaps(b) == bool(common)
    if common:
        assert all(ab.contains(p) for p in common)
    else:
        assert ab.width == 0 and ab.height == 0 and ab.isEmpty()


@settings(max_examples=200, deadline=None)
@given(nonEmptyBoxes, st.integers(0, 10), st.integers(0, 10))
def test_box_grow_shrink_inverse(box, nx, ny):
    grown = box.grow((nx, ny))
    assert grown.width == box.width + 2 * nx and grown.height == box.height + 2 * ny
    assert grown.center == box.center
    assert grown.contains(box)
    assert grown.grow((-nx, -ny)) == box
    assert box.grow(nx).grow(-nx) == box


def test_box_shrink_too_far():
    with pytest.raises(DcrValueError, match="cannot shrink"):
        Box(0, 0, 4, 10).grow(-3)


@settings(max_examples=200, deadline=None)
@given(nonEmptyBoxes, nonEmptyBoxes)
def test_box_contains_consistency(a, b):
    corners = [(b.minX, b.minY), (b.maxX, b.minY), (b.minX, b.maxY), (b.maxX, b.maxY)]
    assert a.contains(b) == all(a.contains(c) for c in corners)
    assert a.contains(b) == (a.intersection(b) == b)
    assert a.contains(a)
    assert a.contains(a.center)
    assert not a.contains((a.maxX + 1, a.minY))
    assert not a.contains((a.minX, a.minY - 0.5))


@settings(max_examples=100, deadline=None)
@given(nonEmptyBoxes, st.data())
def test_box_slices_index_the_right_region(within, data):
    x0 = data.draw(st.integers(within.minX, within.maxX))
    y0 = data.draw(st.integers(within.minY, within.maxY))
    w = data.draw(st.integers(0, within.maxX - x0 + 1))
    h = data.draw(st.integers(0, within.maxY - y0 + 1))
    sub = Box(x0, y0, w, h)
    xs, ys = _parentGrid(within)
    sy, sx = sub.slices(within)
    assert xs[sy, sx].shape == sub.shape
    expectedX, expectedY = _parentGrid(sub)
    np.testing.assert_array_equal(xs[sy, sx], expectedX)
    np.testing.assert_array_equal(ys[sy, sx], expectedY)


@settings(max_examples=100, deadline=None)
@given(nonEmptyBoxes)
def test_box_slices_outside_raises(box):
    with pytest.raises(DcrShapeError, match="not inside"):
        box.shiftedBy(box.width, 0).slices(box)
    with pytest.raises(DcrShapeError, match="not inside"):
        box.grow(1).slices(box)


@settings(max_examples=200, deadline=None)
@given(boxes, st.integers(-5, 5), st.integers(-5, 5))
def test_box_round_trips(box, dx, dy):
    assert Box.fromCorners(*box.begin, *box.end) == box
    assert Box.fromShape(box.shape, origin=box.begin) == box
    assert box.dimensions == (box.width, box.height)
    assert box.shape == (box.height, box.width)
    assert box.area == box.width * box.height
    assert box.end == (box.minX + box.width - 1, box.minY + box.height - 1)
    assert box.center == ((box.minX + box.maxX) / 2, (box.minY + box.maxY) / 2)
    moved = box.shiftedBy(dx, dy)
    assert moved.begin == (box.minX + dx, box.minY + dy) and moved.dimensions == box.dimensions
    assert hash(box) == hash(Box(*box.begin, *box.dimensions))
    assert pickle.loads(pickle.dumps(box)) == box


def test_box_validation():
    with pytest.raises(DcrValueError, match="width and height must be >= 0"):
        Box(0, 0, -1, 3)
    with pytest.raises(DcrValueError, match="width and height must be >= 0"):
        Box(0, 0, 3, -2)
    with pytest.raises(DcrTypeError, match="minX must be a whole number of pixels"):
        Box(0.5, 0, 3, 3)
    with pytest.raises(DcrTypeError, match="dx must be a whole number"):
        Box(0, 0, 3, 3).shiftedBy(1.5, 0)
    with pytest.raises(DcrTypeError, match="width must be a whole number"):
        Box(0, 0, float("nan"), 3)
    assert Box(2.0, -1.0, np.float64(3.0), 4) == Box(2, -1, 3, 4)
    assert isinstance(Box(2.0, 0, 1, 1).minX, int)
    with pytest.raises(DcrValueError, match="reversed"):
        Box.fromCorners(5, 0, 2, 3)
    with pytest.raises(DcrShapeError, match="two-dimensional"):
        Box.fromShape((3, 4, 5))
    with pytest.raises(AttributeError):
        Box(0, 0, 1, 1).minX = 3
    assert Box(np.int64(2), 3, np.int32(4), 5) == Box(2, 3, 4, 5)


def test_box_from_minimum_and_dimensions_pairs():
    assert Box((10, 20), (5, 3)) == Box(10, 20, 5, 3)
    assert Box((10, 20), (5, 3)).end == (14, 22)
    with pytest.raises(DcrTypeError, match="dimensions must be a pair"):
        Box((10, 20), 5)
    with pytest.raises(DcrTypeError, match=r"give Box\(minX, minY, width, height\)"):
        Box(10, 20, 5)
