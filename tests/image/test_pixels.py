"""Tests of dcrmodel.image.pixels: `Image`, `Mask` and `MaskedImage`.

References used: index arithmetic on arrays whose values encode their parent coordinates
(views and cutouts in parent coordinates).
"""

import numpy as np
import pytest

from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.image.geometry import Box
from dcrmodel.image.pixels import DEFAULT_MASK_PLANES, Image, Mask, MaskedImage
from helpers.grid import parentGrid as _parentGrid

# ----------------------------------------------------------------------------------------
# Image
# ----------------------------------------------------------------------------------------


def _codedImage(origin=(100, 200), shape=(12, 15), dtype=np.float64):
    """An image whose pixel value is 1000 * parent x + parent y."""
    box = Box.fromShape(shape, origin)
    xs, ys = _parentGrid(box)
    return Image((1000.0 * xs + ys).astype(dtype), bbox=box)


def test_image_views_share_memory_in_parent_coords():
    image = _codedImage()
    box = Box(103, 205, 4, 3)
    view = image[box]
    assert view.bbox == box and view.origin == (103, 205)
    assert np.shares_memory(view.array, image.array)
    xs, ys = _parentGrid(box)
    np.testing.assert_array_equal(view.array, 1000.0 * xs + ys)
    view.array[:] = -1.0
    assert np.all(image.array[5:8, 3:7] == -1.0)
    # A view of a view keeps parent coordinates.
    inner = view[Box(104, 206, 2, 2)]
    assert np.shares_memory(inner.array, image.array)
    inner += 10.0
    assert image.array[6, 4] == 9.0
    with pytest.raises(DcrShapeError, match="not inside"):
        image[Box(99, 200, 3, 3)]
    with pytest.raises(DcrTypeError, match="index Image objects with a Box"):
        image[0:3, 0:3]


def test_image_construction_and_dtypes():
    ints = Image(np.arange(6).reshape(2, 3))
    assert ints.dtype == np.float64 and ints.origin == (0, 0)
    f32 = np.zeros((2, 3), dtype=np.float32)
    image = Image(f32, origin=(4, 5))
    assert image.dtype == np.float32 and np.shares_memory(image.array, f32)
    assert image.bbox == Box(4, 5, 3, 2) and image.shape == (2, 3)
    assert Image(f32, bbox=Box(4, 5, 3, 2)).bbox == Box(4, 5, 3, 2)
    with pytest.raises(DcrShapeError, match=r"array shape \(2, 3\) does not match bbox shape"):
        Image(f32, bbox=Box(0, 0, 2, 3))
    with pytest.raises(DcrShapeError, match="two-dimensional"):
        Image(np.zeros(5))
    with pytest.raises(DcrTypeError, match="real numbers"):
        Image(np.zeros((2, 2), dtype=complex))
    with pytest.raises(DcrValueError, match="origin and bbox disagree"):
        Image(f32, bbox=Box(4, 5, 3, 2), origin=(0, 0))
    filled = Image.fromBox(Box(1, 2, 3, 4), dtype=np.float32, fill=2.5)
    assert filled.dtype == np.float32 and np.all(filled.array == 2.5)


def test_image_setitem_assign_clone():
    image = _codedImage()
    box = Box(101, 201, 2, 3)
    image[box] = 7.0
    assert np.all(image.array[1:4, 1:3] == 7.0)
    image[box] = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(image.array[1:4, 1:3], np.arange(6.0).reshape(3, 2))
    with pytest.raises(DcrShapeError, match="does not match"):
        image[box] = np.zeros((2, 2))
    with pytest.raises(DcrTypeError, match="cannot combine"):
        image[box] = Mask.fromBox(box)

    clone = image.clone()
    assert not np.shares_memory(clone.array, image.array) and clone.bbox == image.bbox
    clone.array[:] = 0.0
    assert image.array[0, 0] == 100200.0

    # assign without bbox: the overlap in parent coordinates.
    target = Image.fromBox(Box(95, 195, 10, 10))
    target.assign(image)
    overlap = target.bbox.intersection(image.bbox)
    np.testing.assert_array_equal(target[overlap].array, image[overlap].array)
    outside = np.ones(target.shape, bool)
    outside[overlap.slices(target.bbox)] = False
    assert np.all(target.array[outside] == 0.0)
    # disjoint: nothing happens
    far = Image.fromBox(Box(0, 0, 3, 3))
    far.assign(image)
    assert np.all(far.array == 0.0)
    # assign into an explicit bbox: the source's shape must match it
    small = Image(np.full((2, 2), 5.0), origin=(0, 0))
    image.assign(small, bbox=Box(110, 210, 2, 2))
    assert np.all(image.array[10:12, 10:12] == 5.0)
    with pytest.raises(DcrShapeError, match="source shape"):
        image.assign(small, bbox=Box(110, 210, 3, 2))


def test_image_arithmetic():
    a = _codedImage()
    b = _codedImage()
    b.array[:] = 2.0
    ref = a.array.copy()
    same = a
    a += b
    assert a is same
    np.testing.assert_array_equal(a.array, ref + 2.0)
    a -= 2.0
    a *= np.full(a.shape, 3.0)
    a /= b
    np.testing.assert_allclose(a.array, ref * 1.5)
    np.testing.assert_allclose((a + b).array, ref * 1.5 + 2)
    np.testing.assert_allclose((a - 1.0).array, ref * 1.5 - 1)
    np.testing.assert_allclose((2.0 * a).array, ref * 3)
    np.testing.assert_allclose((a / 3.0).array, ref * 0.5)
    np.testing.assert_allclose((1.0 - a).array, 1 - ref * 1.5)
    np.testing.assert_allclose((6.0 / b).array, 3.0)
    np.testing.assert_allclose((-b).array, -2.0)
    np.testing.assert_allclose((np.ones(a.shape) + b).array, 3.0)
    total = a + b
    assert isinstance(total, Image) and total.bbox == a.bbox
    assert not np.shares_memory(total.array, a.array)
    # float32 is kept with Python scalars
    f = Image(np.ones((2, 2), np.float32))
    f *= 2.0
    assert f.dtype == np.float32 and (f + 1.0).dtype == np.float32
    other = Image(np.ones(a.shape), origin=(0, 0))
    with pytest.raises(DcrShapeError, match="boxes differ"):
        a += other
    with pytest.raises(DcrShapeError, match="does not match"):
        a + np.ones((3, 3))
    with pytest.raises(DcrTypeError, match="cannot combine an Image with a Mask"):
        a + Mask.fromBox(a.bbox)


# ----------------------------------------------------------------------------------------
# Mask
# ----------------------------------------------------------------------------------------


def test_mask_planes():
    mask = Mask.fromBox(Box(0, 0, 4, 3))
    assert mask.dtype == np.int32 and np.all(mask.array == 0)
    assert mask.planes == DEFAULT_MASK_PLANES
    assert mask.planes == {
        "BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4,
        "DETECTED": 5, "DETECTED_NEGATIVE": 6, "SUSPECT": 7, "NO_DATA": 8,
    }  # fmt: skip
    assert mask.getPlaneBitMask("SAT") == 2
    assert mask.getPlaneBitMask(["BAD", "NO_DATA", "CR"]) == 1 | 256 | 8
    assert mask.getPlaneBitMask([]) == 0
    assert mask.getMaskPlane("EDGE") == 4
    with pytest.raises(DcrValueError, match=r"unknown mask plane 'STREAK'.*known planes: BAD, CR"):
        mask.getPlaneBitMask(["BAD", "STREAK"])
    with pytest.raises(DcrValueError, match="add it with addMaskPlane"):
        mask.getMaskPlane("STREAK")
    assert mask.addMaskPlane("STREAK") == 9
    assert mask.addMaskPlane("STREAK") == 9
    assert mask.getPlaneBitMask("STREAK") == 512
    # .planes is a copy
    mask.planes["X"] = 30
    assert "X" not in mask.planes


def test_mask_custom_planes_and_validation():
    mask = Mask(np.zeros((2, 2), np.int16), planes={"A": 3, "B": 0})
    assert mask.dtype == np.int32 and mask.addMaskPlane("C") == 1
    with pytest.raises(DcrValueError, match="share bit 2"):
        Mask(np.zeros((2, 2), np.int32), planes={"A": 2, "B": 2})
    with pytest.raises(DcrValueError, match=r"bits must be in 0\.\.31"):
        Mask(np.zeros((2, 2), np.int32), planes={"A": 32})
    with pytest.raises(DcrTypeError, match="must be integers"):
        Mask(np.zeros((2, 2)))
    with pytest.raises(DcrValueError, match="needs an array or a bbox"):
        Mask()
    full = Mask(np.zeros((1, 1), np.int32), planes={f"P{i}": i for i in range(32)})
    with pytest.raises(DcrValueError, match="all 32 mask bits"):
        full.addMaskPlane("MORE")
    # bit 31 from an unsigned array survives
    top = Mask(np.array([[2**31]], dtype=np.uint32))
    assert top.array[0, 0] & np.int32(-(2**31)) != 0


def test_mask_views_or_and_assign():
    mask = Mask.fromBox(Box(10, 20, 6, 5))
    view = mask[Box(11, 21, 2, 2)]
    assert np.shares_memory(view.array, mask.array) and view.bbox == Box(11, 21, 2, 2)
    bit = view.addMaskPlane("GHOST")
    assert mask.getMaskPlane("GHOST") == bit  # planes are shared by views
    view |= view.getPlaneBitMask("GHOST")
    assert np.count_nonzero(mask.array) == 4 and mask.array[1, 1] == 1 << bit

    other = Mask.fromBox(mask.bbox)
    other.array[0, 0] = other.getPlaneBitMask("SAT")
    mask |= other
    assert mask.array[0, 0] == 2
    combined = mask | np.full(mask.shape, 1)
    assert np.all(combined.array & 1) and not np.all(mask.array & 1)

    clone = mask.clone()
    clone.addMaskPlane("ONLY_CLONE")
    clone.array[:] = 0
    assert "ONLY_CLONE" not in mask.planes and mask.array[0, 0] == 2

    conflicting = Mask.fromBox(mask.bbox, planes={"SAT": 5, "ZZZ": 25})
    with pytest.raises(DcrValueError, match="mask plane 'SAT' is bit 1 here and bit 5"):
        mask |= conflicting
    assert "ZZZ" not in mask.planes
    taken = Mask.fromBox(mask.bbox, planes={"OTHER": 0})
    with pytest.raises(DcrValueError, match="'OTHER' of the other mask uses bit 0, which is 'BAD'"):
        mask |= taken
    with pytest.raises(DcrShapeError, match="boxes differ"):
        mask |= Mask.fromBox(Box(0, 0, 6, 5))
    wrongShape = Mask.fromBox(Box(0, 0, 3, 3), planes={**DEFAULT_MASK_PLANES, "LATE": 12})
    with pytest.raises(DcrShapeError, match="does not match"):
        mask[Box(10, 20, 2, 2)] = wrongShape
    assert "LATE" not in mask.planes  # nothing changed on failure

    # A new plane in the source is added when its bit is free.
    src = Mask.fromBox(Box(10, 20, 2, 2), planes={**DEFAULT_MASK_PLANES, "NEW": 20})
    src.array[:] = 1 << 20
    target = Mask.fromBox(Box(9, 19, 3, 3))
    target.assign(src)
    assert target.getMaskPlane("NEW") == 20
    np.testing.assert_array_equal(
        target.array, [[0, 0, 0], [0, 1 << 20, 1 << 20], [0, 1 << 20, 1 << 20]]
    )


# ----------------------------------------------------------------------------------------
# MaskedImage
# ----------------------------------------------------------------------------------------


def test_masked_image_defaults_and_cutouts():
    image = _codedImage(dtype=np.float32)
    mi = MaskedImage(image)
    assert mi.bbox == image.bbox and mi.shape == image.shape
    assert np.all(mi.mask.array == 0) and mi.mask.planes == DEFAULT_MASK_PLANES
    assert np.all(mi.variance.array == 1.0) and mi.variance.dtype == np.float32
    box = Box(102, 203, 5, 4)
    cut = mi[box]
    assert cut.bbox == box
    for part, whole in ((cut.image, mi.image), (cut.mask, mi.mask), (cut.variance, mi.variance)):
        assert part.bbox == box and np.shares_memory(part.array, whole.array)
    cut.variance.array[:] = 4.0
    assert mi.variance.array[3, 2] == 4.0
    copy = mi.clone()
    copy.image.array[:] = 0.0
    assert mi.image.array[0, 0] != 0.0

    target = MaskedImage.fromArrays(np.zeros((3, 3)), origin=(101, 201))
    target.assign(mi)
    np.testing.assert_array_equal(target.image.array, mi.image.array[1:4, 1:4])
    target[Box(101, 201, 1, 1)] = mi[Box(100, 200, 1, 1)]
    assert target.image.array[0, 0] == 100200.0


def test_masked_image_shape_validation():
    image = Image(np.zeros((4, 5)))
    with pytest.raises(DcrShapeError, match=r"image shape \(4, 5\) and mask shape \(5, 4\)"):
        MaskedImage(image, mask=Mask.fromBox(Box(0, 0, 4, 5)))
    with pytest.raises(DcrShapeError, match=r"image shape \(4, 5\) and variance shape \(4, 5\)"):
        MaskedImage(image, variance=Image(np.ones((4, 5)), origin=(1, 0)))
    with pytest.raises(DcrShapeError, match=r"image shape \(4, 5\) and mask shape \(4, 4\)"):
        MaskedImage.fromArrays(np.zeros((4, 5)), mask=np.zeros((4, 4), np.int32))
    with pytest.raises(DcrShapeError, match=r"image shape \(4, 5\) and variance shape \(3, 5\)"):
        MaskedImage.fromArrays(np.zeros((4, 5)), variance=np.ones((3, 5)))
    with pytest.raises(DcrTypeError, match="use MaskedImage.fromArrays"):
        MaskedImage(np.zeros((4, 5)))
    mi = MaskedImage.fromArrays(
        np.ones((4, 5)), mask=np.full((4, 5), 2), variance=np.full((4, 5), 3.0), origin=(7, 8)
    )
    assert mi.bbox == Box(7, 8, 5, 4) and mi.mask.bbox == mi.variance.bbox == mi.bbox
    assert np.all(mi.mask.array == 2) and np.all(mi.variance.array == 3.0)


def test_bad_pixels_from_the_default_planes_and_from_named_ones():
    from dcrmodel.image import BAD_MASK_PLANES, Box

    mask = Mask.fromBox(Box(10, 20, 4, 3))
    for i, plane in enumerate(["BAD", "SAT", "NO_DATA", "DETECTED"]):
        mask.array[0, i] = mask.getPlaneBitMask(plane)
    assert set(BAD_MASK_PLANES) == {"BAD", "SAT", "NO_DATA", "EDGE", "CR"}
    assert mask.getBadPixels()[0].tolist() == [True, True, True, False]
    assert mask.getBadPixels("DETECTED")[0].tolist() == [False, False, False, True]
    # planes the mask does not define are skipped, not an error
    assert not mask.getBadPixels(["NOT_A_PLANE"]).any()
    assert mask.getBadPixels().shape == (3, 4)


def test_array_assignment_copies_into_the_pixels_with_the_shape_checked():
    from dcrmodel.image import Box

    image = Image.fromBox(Box(5, 6, 3, 2), dtype=np.float32)
    view = image.array
    values = np.arange(6.0).reshape(2, 3)
    image.array = values
    assert image.array is view  # the same pixels, now holding the values
    np.testing.assert_array_equal(image.array, values)
    values[0, 0] = 99.0
    assert image.array[0, 0] == 0.0  # a copy, not the caller's array
    image.array = 2.5
    assert (image.array == 2.5).all()
    with pytest.raises(DcrShapeError, match="array assignment"):
        image.array = np.zeros((3, 2))
    mask = Mask.fromBox(Box(0, 0, 2, 2))
    mask.array = np.array([[1, 0], [0, 2]])
    assert mask.array.tolist() == [[1, 0], [0, 2]]
    with pytest.raises(DcrTypeError, match="mask values must be integers"):
        mask.array = np.full((2, 2), 0.5)
