"""Tests of dcrmodel.image: geometry, pixel containers, filters, PSFs, statistics, exposures.

References used: index arithmetic on arrays whose values encode their parent coordinates
(Box slices, views), GalSim (``galsim.Gaussian`` drawn without pixel convolution, and the
HSM adaptive moments) for the Gaussian PSF, ``astropy.stats.sigma_clipped_stats`` for the
clipped statistics, astropy ``CCDData``/``WCS`` for the conversions, and the AB magnitude
definition (Oke & Gunn 1983) for the calibration.
"""

import math
import pickle

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, InverseVariance, StdDevUncertainty, VarianceUncertainty
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st

from dcrmodel.errors import DcrShapeError, DcrTypeError, DcrValueError
from dcrmodel.image import (
    DEFAULT_MASK_PLANES,
    RUBIN_BANDS,
    Box,
    Exposure,
    Filter,
    GaussianPsf,
    Image,
    ImagePsf,
    Mask,
    MaskedImage,
    PhotoCalib,
    StatisticsControl,
)

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

coords = st.integers(min_value=-50, max_value=50)
sizes = st.integers(min_value=0, max_value=30)
boxes = st.builds(Box, coords, coords, sizes, sizes)
nonEmptyBoxes = st.builds(Box, coords, coords, st.integers(1, 30), st.integers(1, 30))


def _parentGrid(box):
    """Arrays of parent x and y for every pixel of ``box`` (built by index arithmetic)."""
    ys, xs = np.mgrid[0 : box.height, 0 : box.width]
    return xs + box.minX, ys + box.minY


def _tanWcs(crpix=(20.0, 15.0), scale=0.2, rotation=30.0):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, -30.0]
    wcs.wcs.crpix = list(crpix)
    theta = math.radians(rotation)
    s = scale / 3600.0
    wcs.wcs.cd = [
        [-s * math.cos(theta), s * math.sin(theta)],
        [s * math.sin(theta), s * math.cos(theta)],
    ]
    return wcs


def _skyDistance(a, b):
    return a.separation(b).to_value(u.arcsec)


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


# ----------------------------------------------------------------------------------------
# Filter
# ----------------------------------------------------------------------------------------


def test_filter_table_and_edges():
    assert list(RUBIN_BANDS) == ["u", "g", "r", "i", "z", "y"]
    effs = [RUBIN_BANDS[b][0] for b in RUBIN_BANDS]
    assert effs == sorted(effs)
    # LSST throughputs v1.4 effective wavelengths (SMTN-002), nm.
    for band, eff in zip(
        "ugrizy", (367.07, 482.685, 622.324, 754.598, 869.09, 971.028), strict=True
    ):
        f = Filter.fromBand(band)
        assert f.bandName == band and f.effectiveWavelength == pytest.approx(eff)
        assert f.lambdaMax - f.lambdaMin == pytest.approx(f.bandwidth)
        assert (f.lambdaMin + f.lambdaMax) / 2 == pytest.approx(f.effectiveWavelength)
        assert 300 < f.lambdaMin < f.effectiveWavelength < f.lambdaMax < 1100
    g = Filter("g", 480.0, 150.0)
    assert (g.lambdaMin, g.lambdaMax) == (405.0, 555.0)
    assert Filter("g", 480, 150) == g and hash(Filter("g", 480, 150)) == hash(g)
    with pytest.raises(AttributeError):
        g.bandwidth = 3.0


def test_filter_validation():
    with pytest.raises(DcrValueError, match="effectiveWavelength must be a positive"):
        Filter("g", 0.0, 100.0)
    with pytest.raises(DcrValueError, match="bandwidth must be a positive"):
        Filter("g", 480.0, -1.0)
    with pytest.raises(DcrValueError, match="bandwidth must be a positive"):
        Filter("g", 480.0, float("nan"))
    with pytest.raises(DcrValueError, match="less than twice the effective wavelength"):
        Filter("g", 480.0, 960.0)
    with pytest.raises(DcrValueError, match="unknown band 'H'; known Rubin bands: u g r i z y"):
        Filter.fromBand("H")
    with pytest.raises(DcrTypeError, match="bandName must be a string"):
        Filter(3, 480.0, 100.0)


# ----------------------------------------------------------------------------------------
# PSF
# ----------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=1.5, max_value=9.0))
def test_gaussian_psf_against_galsim(fwhm):
    galsim = pytest.importorskip("galsim")
    kernel = GaussianPsf(fwhm).computeKernelImage()
    n = kernel.shape[0]
    assert n % 2 == 1 and kernel.shape == (n, n)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.unravel_index(np.argmax(kernel), kernel.shape) == (n // 2, n // 2)
    # Independent reference: GalSim's Gaussian sampled at pixel centres.
    ref = galsim.Gaussian(fwhm=fwhm).drawImage(nx=n, ny=n, scale=1.0, method="no_pixel").array
    np.testing.assert_allclose(kernel, ref / ref.sum(), rtol=0, atol=1e-7)
    # FWHM measured from the kernel image within 1 %: second moment of the marginal
    # profile, and (where HSM is unbiased, FWHM >= 2.5 pixels) GalSim's adaptive moments.
    offsets = np.arange(n) - n // 2
    secondMoment = (kernel.sum(axis=0) * offsets**2).sum()
    assert math.sqrt(secondMoment) * FWHM_PER_SIGMA == pytest.approx(fwhm, rel=0.01)
    if fwhm >= 2.5:
        moments = galsim.hsm.FindAdaptiveMom(galsim.Image(kernel, scale=1.0))
        assert moments.moments_sigma * FWHM_PER_SIGMA == pytest.approx(fwhm, rel=0.01)


def test_gaussian_psf_chromatic_and_validation():
    galsim = pytest.importorskip("galsim")
    psf = GaussianPsf(4.0, alpha=-0.2, effectiveWavelength=500.0)
    assert psf.fwhm == 4.0 and psf.alpha == -0.2 and psf.effectiveWavelength == 500.0
    for wl in (400.0, 500.0, 650.0):
        expected = 4.0 * (wl / 500.0) ** -0.2
        assert psf.computeFwhm(wl) == pytest.approx(expected)
        kernel = psf.computeKernelImage(wl)
        sigma = galsim.hsm.FindAdaptiveMom(galsim.Image(kernel, scale=1.0)).moments_sigma
        assert sigma * FWHM_PER_SIGMA == pytest.approx(expected, rel=0.01)
    fixed = GaussianPsf(2.0, kernelSize=21)
    assert fixed.computeKernelImage().shape == (21, 21)
    # Achromatic PSFs ignore the wavelength; chromatic ones need the effective wavelength.
    np.testing.assert_array_equal(
        GaussianPsf(3.0).computeKernelImage(700.0), GaussianPsf(3.0).computeKernelImage()
    )
    with pytest.raises(DcrValueError, match="has no effectiveWavelength"):
        GaussianPsf(3.0, alpha=-0.2).computeKernelImage(600.0)
    with pytest.raises(DcrValueError, match="wavelength must be a positive"):
        psf.computeKernelImage(-5.0)
    with pytest.raises(DcrValueError, match="fwhm must be positive"):
        GaussianPsf(0.0)
    with pytest.raises(DcrValueError, match="fwhm must be a finite"):
        GaussianPsf(float("inf"))
    with pytest.raises(DcrValueError, match="kernelSize must be a positive odd"):
        GaussianPsf(2.0, kernelSize=20)


def test_image_psf_normalisation_and_chromatic_resampling():
    galsim = pytest.importorskip("galsim")
    raw = 7.0 * GaussianPsf(3.5, kernelSize=31).computeKernelImage()
    psf = ImagePsf(raw, alpha=-0.2, effectiveWavelength=600.0)
    kernel = psf.computeKernelImage()
    assert kernel.sum() == pytest.approx(1.0) and kernel.shape == (31, 31)
    np.testing.assert_allclose(kernel, raw / raw.sum())
    assert psf.fwhm == pytest.approx(3.5, rel=1e-3)
    assert ImagePsf(raw, fwhm=3.0).fwhm == 3.0
    blue = psf.computeKernelImage(400.0)
    assert blue.sum() == pytest.approx(1.0)
    sigma = galsim.hsm.FindAdaptiveMom(galsim.Image(blue, scale=1.0)).moments_sigma
    assert sigma * FWHM_PER_SIGMA == pytest.approx(3.5 * (400 / 600) ** -0.2, rel=0.01)


def test_image_psf_validation():
    good = GaussianPsf(3.0, kernelSize=15).computeKernelImage()
    with pytest.raises(DcrValueError, match=r"odd sides.*\(14, 14\)"):
        ImagePsf(good[:14, :14])
    with pytest.raises(DcrValueError, match=r"square with odd sides.*\(15, 13\)"):
        ImagePsf(good[:, 1:14])
    shifted = np.roll(good, 2, axis=1)
    with pytest.raises(DcrValueError, match=r"off-centre: its peak is at \(y, x\) = \(7, 9\)"):
        ImagePsf(shifted)
    lopsided = good.copy()
    lopsided[7, 14] = 0.9 * good[7, 7]
    with pytest.raises(DcrValueError, match="off-centre: its centroid"):
        ImagePsf(lopsided)
    bad = good.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DcrValueError, match="NaN or infinite"):
        ImagePsf(bad)
    with pytest.raises(DcrValueError, match="positive sum"):
        ImagePsf(-good)
    with pytest.raises(DcrValueError, match="positive sum"):
        ImagePsf(np.zeros((3, 3)))


# ----------------------------------------------------------------------------------------
# PhotoCalib and StatisticsControl
# ----------------------------------------------------------------------------------------


def test_photocalib():
    calib = PhotoCalib(2.5)
    assert calib.calibrationMean == 2.5 == calib.getCalibrationMean()
    assert calib.instFluxToNanojansky(4.0) == 10.0
    np.testing.assert_allclose(calib.instFluxToNanojansky(np.array([1.0, 2.0])), [2.5, 5.0])
    img = calib.instFluxToNanojansky(Image(np.ones((2, 2)), origin=(3, 4)))
    assert isinstance(img, Image) and img.origin == (3, 4) and np.all(img.array == 2.5)
    assert calib.nanojanskyToInstFlux(10.0) == pytest.approx(4.0)
    # AB: 1 nJy is magnitude 31.4; a zero point of 27 makes one count 10**(4.4/2.5) nJy.
    assert PhotoCalib.fromZeroPoint(31.4).calibrationMean == pytest.approx(1.0)
    zp27 = PhotoCalib.fromZeroPoint(27.0).calibrationMean
    # astropy's AB magnitudes as the reference (1 nJy is 31.4 mag to 1e-5).
    assert zp27 == pytest.approx((27.0 * u.ABmag).to_value(u.nJy), rel=1e-4)
    with pytest.raises(DcrValueError, match="calibrationMean must be a positive"):
        PhotoCalib(0.0)
    assert PhotoCalib(2.5) == calib


def test_statistics_against_astropy():
    rng = np.random.default_rng(42)
    data = rng.normal(10.0, 2.0, size=(60, 70))
    data[5:8, 5:8] = 500.0  # a bright source to clip
    data[40, :] += 25.0
    for numSigma, numIter in ((3.0, 2), (2.5, 5), (4.0, 1)):
        ctrl = StatisticsControl(numSigmaClip=numSigma, numIter=numIter)
        mean, std = ctrl.clippedStats(data)
        refMean, _, refStd = sigma_clipped_stats(data, sigma=numSigma, maxiters=numIter)
        assert mean == pytest.approx(refMean, rel=1e-12)
        assert std == pytest.approx(refStd, rel=1e-12)
    # No clipping: plain mean and std.
    mean, std = StatisticsControl(numIter=0).clippedStats(data)
    assert mean == pytest.approx(data.mean()) and std == pytest.approx(data.std())


def test_statistics_masks():
    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 1.0, size=(30, 30))
    mask = Mask.fromBox(Box(0, 0, 30, 30))
    mask.array[:10, :] = mask.getPlaneBitMask("BAD")
    mask.array[10:12, :] = mask.getPlaneBitMask("DETECTED")  # not a bad plane
    data[:10, :] = 1e6
    data[20, 20] = np.nan
    ctrl = StatisticsControl()
    assert ctrl.getAndMask(mask) == mask.getPlaneBitMask(["BAD", "SAT", "NO_DATA", "EDGE", "CR"])
    good = data[10:, :][np.isfinite(data[10:, :])]
    refMean, _, refStd = sigma_clipped_stats(good, sigma=3.0, maxiters=2)
    for result in (
        ctrl.clippedStats(data, mask=mask),
        ctrl.clippedStats(Image(data), maskArray=mask.array),
    ):
        assert result == pytest.approx((refMean, refStd), rel=1e-12)
    # Planes the mask does not define are skipped.
    sparse = Mask.fromBox(Box(0, 0, 2, 2), planes={"BAD": 3, "DETECTED": 0})
    assert StatisticsControl().getAndMask(sparse) == 8
    allBad = np.full(data.shape, 1, np.int32)
    assert all(math.isnan(v) for v in ctrl.clippedStats(data, maskArray=allBad))
    with pytest.raises(DcrShapeError, match="array shape"):
        ctrl.clippedStats(data, maskArray=np.zeros((3, 3), np.int32))
    with pytest.raises(DcrValueError, match="not both"):
        ctrl.clippedStats(data, maskArray=mask.array, mask=mask)
    with pytest.raises(DcrValueError, match="numSigmaClip must be a positive"):
        StatisticsControl(numSigmaClip=0)
    with pytest.raises(DcrValueError, match="numIter must be >= 0"):
        StatisticsControl(numIter=-1)


# ----------------------------------------------------------------------------------------
# Exposure
# ----------------------------------------------------------------------------------------


def _exposure(origin=(30, 40), shape=(25, 35)):
    rng = np.random.default_rng(7)
    image = rng.normal(size=shape).astype(np.float32)
    variance = rng.uniform(1, 2, size=shape).astype(np.float32)
    mask = np.zeros(shape, np.int32)
    mask[3, 4] = 1 << DEFAULT_MASK_PLANES["SAT"]
    return Exposure.fromArrays(
        image,
        variance=variance,
        mask=mask,
        origin=origin,
        wcs=_tanWcs(crpix=(origin[0] + 18.0, origin[1] + 12.0)),
        psf=GaussianPsf(3.0),
        filter=Filter.fromBand("g"),
        photoCalib=PhotoCalib(1.5),
        visitInfo={"placeholder": 1},
        OBSERVER="me",
        EXPTIME=30.0,
    )


def test_exposure_attributes_and_cutouts():
    exp = _exposure()
    assert exp.bbox == Box(30, 40, 35, 25)
    assert exp.image is exp.maskedImage.image and exp.mask is exp.maskedImage.mask
    assert exp.variance is exp.maskedImage.variance
    assert exp.metadata["OBSERVER"] == "me" and exp.metadata["EXPTIME"] == 30.0
    assert isinstance(exp.metadata, fits.Header)
    box = Box(35, 45, 10, 8)
    cut = exp[box]
    assert cut.bbox == box and cut.wcs is exp.wcs
    assert cut.psf is exp.psf and cut.filter is exp.filter and cut.photoCalib is exp.photoCalib
    assert cut.visitInfo is exp.visitInfo
    assert np.shares_memory(cut.image.array, exp.image.array)
    # The WCS is in parent coordinates: the same parent pixel is the same sky position.
    sky = cut.wcs.pixel_to_world(37, 50)
    assert _skyDistance(sky, exp.wcs.pixel_to_world(37, 50)) == 0.0
    clone = exp.clone()
    assert clone.wcs is not exp.wcs and clone.metadata is not exp.metadata
    assert not np.shares_memory(clone.image.array, exp.image.array)
    assert _skyDistance(clone.wcs.pixel_to_world(1, 2), exp.wcs.pixel_to_world(1, 2)) == 0.0


def test_exposure_validation():
    mi = MaskedImage.fromArrays(np.zeros((3, 3)))
    with pytest.raises(DcrTypeError, match="wcs must be an astropy.wcs.WCS"):
        Exposure(mi, wcs="TAN")
    linear = WCS(naxis=2)
    with pytest.raises(DcrValueError, match="2-axis celestial WCS"):
        Exposure(mi, wcs=linear)
    with pytest.raises(DcrTypeError, match="psf must be a Psf"):
        Exposure(mi, psf=np.ones((3, 3)))
    with pytest.raises(DcrTypeError, match="filter must be a Filter"):
        Exposure(mi, filter="g")
    exp = Exposure(mi)
    with pytest.raises(DcrTypeError, match="filter must be a Filter"):
        exp.filter = "g"
    with pytest.raises(DcrTypeError, match="photoCalib must be a PhotoCalib"):
        exp.photoCalib = 3.0
    with pytest.raises(DcrTypeError, match="maskedImage must be a MaskedImage"):
        exp.maskedImage = np.zeros((3, 3))
    with pytest.raises(DcrValueError, match="2-axis celestial WCS"):
        exp.wcs = linear
    assert exp.wcs is None and exp.filter is None
    with pytest.raises(DcrTypeError, match="use Exposure.fromArrays"):
        Exposure(np.zeros((3, 3)))
    extra = Exposure.fromArrays(np.zeros((2, 2)), exptime=15.0, LONG_KEY_NAME="x")
    assert extra.metadata["EXPTIME"] == 15.0 and extra.metadata["LONG_KEY_NAME"] == "x"
    fromDict = Exposure(mi, metadata={"airmass": 1.2})
    assert fromDict.metadata["AIRMASS"] == 1.2
    with pytest.raises(DcrTypeError, match="metadata must be an astropy Header"):
        Exposure(mi, metadata=[1, 2])
    with pytest.raises(DcrTypeError, match="unknown keyword 'visitinfo'"):
        Exposure.fromArrays(np.zeros((3, 3)), visitinfo=object())
    with pytest.raises(DcrShapeError, match=r"image shape \(3, 3\) and variance shape \(3, 4\)"):
        Exposure.fromArrays(np.zeros((3, 3)), variance=np.ones((3, 4)))


@pytest.mark.parametrize("origin", [(0, 0), (30, 40), (-5, 12)])
def test_ccddata_round_trip(origin):
    exp = _exposure(origin=origin)
    exp.mask.addMaskPlane("STREAK")
    exp.mask.array[1, 1] |= exp.mask.getPlaneBitMask("STREAK")
    ccd = exp.toCCDData()
    assert isinstance(ccd, CCDData) and isinstance(ccd.uncertainty, VarianceUncertainty)
    assert ccd.meta["LTV1"] == -origin[0] and ccd.meta["LTV2"] == -origin[1]
    assert ccd.meta["MP_STREAK"] == 9 and ccd.meta["MP_NO_DATA"] == 8
    # CCDData's WCS works on the array's own pixels: array pixel (i, j) is parent (i+x0, j+y0).
    assert (
        _skyDistance(
            ccd.wcs.pixel_to_world(3, 4), exp.wcs.pixel_to_world(3 + origin[0], 4 + origin[1])
        )
        < 1e-9
    )
    back = Exposure.fromCCDData(ccd, psf=exp.psf, filter=exp.filter)
    assert back.bbox == exp.bbox
    np.testing.assert_array_equal(back.image.array, exp.image.array)
    np.testing.assert_array_equal(back.variance.array, exp.variance.array)
    np.testing.assert_array_equal(back.mask.array, exp.mask.array)
    # The boolean CCDData mask flags the bad planes only (SAT here, not STREAK).
    np.testing.assert_array_equal(ccd.mask, (exp.mask.array & 2) != 0)
    assert ccd.mask[3, 4] and not ccd.mask[1, 1] and ccd.flags[1, 1] == 512
    assert back.mask.planes == exp.mask.planes
    assert back.image.dtype == np.float32
    assert back.metadata["OBSERVER"] == "me" and "LTV1" not in back.metadata
    assert not any(k.startswith("MP_") for k in back.metadata)
    pix = [(0.0, 0.0), (17.3, -4.2), (100.0, 250.0)]
    for x, y in pix:
        assert _skyDistance(back.wcs.pixel_to_world(x, y), exp.wcs.pixel_to_world(x, y)) < 1e-9
    assert back.psf is exp.psf and back.filter == exp.filter


def test_ccddata_fits_file_round_trip(tmp_path):
    exp = _exposure(origin=(5, -3))
    exp.mask.addMaskPlane("STREAK")
    exp.mask.array[0, 0] |= exp.mask.getPlaneBitMask("STREAK")
    path = tmp_path / "ccd.fits"
    exp.toCCDData().write(path, hdu_flags="FLAGS")
    back = Exposure.fromCCDData(CCDData.read(path, hdu_flags="FLAGS"))
    assert back.bbox == exp.bbox and back.image.dtype == np.float32
    assert back.image.dtype.isnative and back.variance.dtype.isnative
    np.testing.assert_array_equal(back.image.array, exp.image.array)
    np.testing.assert_array_equal(back.variance.array, exp.variance.array)
    np.testing.assert_array_equal(back.mask.array, exp.mask.array)
    assert back.mask.planes == exp.mask.planes
    assert set(back.metadata) == {"OBSERVER", "EXPTIME"}
    for x, y in [(5.0, -3.0), (20.0, 11.0)]:
        assert _skyDistance(back.wcs.pixel_to_world(x, y), exp.wcs.pixel_to_world(x, y)) < 1e-6


def test_ccddata_with_sip_and_other_uncertainties():
    exp = _exposure(origin=(12, -7))
    wcs = _tanWcs(crpix=(30.0, 20.0))
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    from astropy.wcs import Sip

    a = np.zeros((3, 3))
    b = np.zeros((3, 3))
    a[2, 0] = 2e-4
    b[0, 2] = -1e-4
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    exp.wcs = wcs
    ccd = exp.toCCDData()
    back = Exposure.fromCCDData(ccd)
    for x, y in [(12.0, -7.0), (40.0, 10.0), (0.0, 0.0)]:
        assert _skyDistance(back.wcs.pixel_to_world(x, y), wcs.pixel_to_world(x, y)) < 1e-9
        assert _skyDistance(ccd.wcs.pixel_to_world(x - 12, y + 7), wcs.pixel_to_world(x, y)) < 1e-9

    data = np.ones((4, 5))
    std = CCDData(data, unit="adu", uncertainty=StdDevUncertainty(np.full((4, 5), 3.0)),
                  mask=np.eye(4, 5, dtype=bool))  # fmt: skip
    fromStd = Exposure.fromCCDData(std)
    assert np.all(fromStd.variance.array == 9.0) and fromStd.bbox == Box(0, 0, 5, 4)
    assert fromStd.image.dtype == np.float64
    np.testing.assert_array_equal(fromStd.mask.array, np.eye(4, 5, dtype=np.int32))
    ivar = CCDData(data, unit="adu", uncertainty=InverseVariance(np.full((4, 5), 0.25)))
    assert np.all(Exposure.fromCCDData(ivar).variance.array == 4.0)
    plain = Exposure.fromCCDData(CCDData(data, unit="adu"))
    assert np.all(plain.variance.array == 1.0) and np.all(plain.mask.array == 0)
    with pytest.raises(DcrTypeError, match="needs an astropy.nddata.CCDData"):
        Exposure.fromCCDData(data)


# ----------------------------------------------------------------------------------------
# Pickling (Dask ships these between processes)
# ----------------------------------------------------------------------------------------


def _roundTrip(obj):
    return pickle.loads(pickle.dumps(obj))


def test_pickle_round_trips():
    exp = _exposure()
    view = exp.image[Box(31, 41, 3, 2)]
    for obj in (Box(1, 2, 3, 4), Filter.fromBand("r"), PhotoCalib(3.0)):
        assert _roundTrip(obj) == obj
    img = _roundTrip(view)
    assert img.bbox == view.bbox and img.dtype == view.dtype
    np.testing.assert_array_equal(img.array, view.array)
    mask = exp.mask.clone()
    mask.addMaskPlane("EXTRA")
    m2 = _roundTrip(mask)
    assert m2.planes == mask.planes and m2.bbox == mask.bbox
    np.testing.assert_array_equal(m2.array, mask.array)
    mi = _roundTrip(exp.maskedImage)
    assert mi.bbox == exp.bbox
    np.testing.assert_array_equal(mi.variance.array, exp.variance.array)
    psfs = (
        GaussianPsf(2.5, alpha=-0.2, effectiveWavelength=480.0, kernelSize=11),
        ImagePsf(GaussianPsf(3.0).computeKernelImage(), alpha=0.1, effectiveWavelength=600.0),
    )
    for psf in psfs:
        p2 = _roundTrip(psf)
        assert type(p2) is type(psf)
        assert (p2.fwhm, p2.alpha, p2.effectiveWavelength) == (
            psf.fwhm,
            psf.alpha,
            psf.effectiveWavelength,
        )
        np.testing.assert_array_equal(p2.computeKernelImage(520.0), psf.computeKernelImage(520.0))
    ctrl = _roundTrip(StatisticsControl(badMaskPlanes=("BAD",), numSigmaClip=2.0, numIter=4))
    assert (ctrl.badMaskPlanes, ctrl.numSigmaClip, ctrl.numIter) == (("BAD",), 2.0, 4)
    e2 = _roundTrip(exp)
    assert e2.bbox == exp.bbox and e2.filter == exp.filter and e2.photoCalib == exp.photoCalib
    assert e2.visitInfo == exp.visitInfo and e2.metadata["OBSERVER"] == "me"
    np.testing.assert_array_equal(e2.image.array, exp.image.array)
    np.testing.assert_array_equal(e2.mask.array, exp.mask.array)
    assert _skyDistance(e2.wcs.pixel_to_world(5, 6), exp.wcs.pixel_to_world(5, 6)) == 0.0
    assert e2.psf.fwhm == exp.psf.fwhm


def test_image_psf_fwhm_is_the_half_maximum_width_for_any_profile():
    # Independent reference: GalSim's analytic FWHM of profiles with wide wings, for which
    # a second-moment width would be far too large (Kolmogorov: ~1.75x).
    import galsim

    for profile in (galsim.Moffat(beta=2.5, fwhm=3.2), galsim.Kolmogorov(fwhm=3.2),
                    galsim.Gaussian(fwhm=4.0)):
        array = profile.drawImage(nx=101, ny=101, scale=1.0, method="no_pixel").array
        psf = ImagePsf(array)
        assert psf.fwhm == pytest.approx(profile.fwhm, rel=0.015)
