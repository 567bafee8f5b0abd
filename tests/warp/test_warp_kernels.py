"""Warping kernels: values, taps and names (dcrmodel.warp.kernels)."""

import numpy as np
import pytest

from dcrmodel.errors import DcrConfigError
from dcrmodel.warp.kernels import (
    DEFAULT_WARPING_KERNEL,
    WARPING_KERNELS,
    WarpingKernel,
    getWarpingKernel,
)


@pytest.mark.parametrize("order", [2, 3, 4, 5, 7, 8])
def test_lanczos_values(order):
    kernel = getWarpingKernel(f"lanczos{order}")
    assert (kernel.size, kernel.radius) == (2 * order, float(order))
    d = np.linspace(-order + 0.013, order - 0.013, 101)
    expected = np.sinc(d) * np.sinc(d / order)  # Duchon (1979)
    np.testing.assert_allclose(kernel(d), expected, atol=1e-15)
    whole = np.arange(-order - 2, order + 3, dtype=float)
    values = kernel(whole)
    assert values[whole == 0] == 1.0
    assert np.all(values[whole != 0] == 0.0)  # exact zeros, not 1e-17
    assert np.all(kernel(np.array([order, order + 0.5, -order - 0.1])) == 0.0)


def test_bilinear_and_nearest_taps():
    first, weights = getWarpingKernel("bilinear").taps(np.array([2.25, 7.0]))
    assert first.tolist() == [2, 7]
    np.testing.assert_array_equal(weights, [[0.75, 1.0], [0.25, 0.0]])
    first, weights = getWarpingKernel("nearest").taps(np.array([2.49, 2.5, -0.5, 3.0]))
    assert first.tolist() == [2, 3, 0, 3]
    np.testing.assert_array_equal(weights, [[1.0, 1.0, 1.0, 1.0]])


@pytest.mark.parametrize("name", WARPING_KERNELS)
def test_taps_are_normalised_and_cover_the_support(name):
    kernel = getWarpingKernel(name)
    positions = np.random.default_rng(1).uniform(-5.0, 20.0, size=(7, 9))
    first, weights = kernel.taps(positions)
    assert first.shape == positions.shape and weights.shape == (kernel.size,) + positions.shape
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, rtol=1e-14)
    # every pixel within the support is a tap, and nothing else has weight
    offsets = positions[None] - (first[None] + np.arange(kernel.size)[:, None, None])
    assert np.all(np.abs(offsets[weights != 0]) < kernel.radius + 1e-12)
    assert np.all(positions - (first - 1) >= kernel.radius)
    assert np.all((first + kernel.size) - positions > kernel.radius - 1e-12)


def test_whole_positions_touch_one_pixel():
    for name in ("lanczos2", "lanczos3", "lanczos4", "bilinear", "nearest"):
        _, weights = getWarpingKernel(name).taps(np.array([4.0, -2.0]))
        assert np.count_nonzero(weights, axis=0).tolist() == [1, 1]


def test_names():
    assert DEFAULT_WARPING_KERNEL == "lanczos3" and DEFAULT_WARPING_KERNEL in WARPING_KERNELS
    assert getWarpingKernel("LANCZOS3") is getWarpingKernel("lanczos3")
    kernel = getWarpingKernel("bilinear")
    assert getWarpingKernel(kernel) is kernel and isinstance(kernel, WarpingKernel)


@pytest.mark.parametrize("name", ["lanczos9", "cubic", "", None, 3])
def test_unknown_kernel(name):
    with pytest.raises(DcrConfigError, match="unknown warping kernel .*choose one of lanczos3"):
        getWarpingKernel(name)


@pytest.mark.parametrize("order", [2, 3, 4, 6, 8])
def test_lanczos_taps_match_the_kernel_tap_by_tap(order):
    # The taps' weights come from two sines per position (angle addition); they must be
    # the normalised sinc(d) sinc(d / a) of every tap, with the same exact zeros: at pixel
    # centres, one ulp either side of them (near 0 too, where x - (first + k) rounds) and
    # half-way between pixels.
    kernel = getWarpingKernel(f"lanczos{order}")
    rng = np.random.default_rng(order)
    whole = np.concatenate([np.arange(-12.0, 13.0), rng.integers(-3000, 3000, 200) + 0.0])
    positions = np.concatenate([
        rng.uniform(-40.0, 2100.0, 3000), whole, whole + 0.5,
        np.nextafter(whole, np.inf), np.nextafter(whole, -np.inf),
        np.nextafter(whole + 0.5, np.inf), np.nextafter(whole + 0.5, -np.inf),
    ])
    first, weights = kernel.taps(positions)
    np.testing.assert_array_equal(first, np.floor(positions + 1.0 - order).astype(np.int64))
    offsets = positions[None] - (first[None] + np.arange(2 * order)[:, None])
    expected = kernel(offsets)
    expected /= expected.sum(axis=0)
    np.testing.assert_allclose(weights, expected, rtol=0, atol=2e-15)
    np.testing.assert_array_equal(weights == 0.0, expected == 0.0)
    atCentre = positions == np.round(positions)
    assert np.all(np.count_nonzero(weights[:, atCentre], axis=0) == 1)
    assert np.all(weights[:, atCentre].max(axis=0) == 1.0)


@pytest.mark.parametrize("name", [n for n in WARPING_KERNELS if n.startswith("lanczos")])
def test_tabulated_taps_match_the_exact_ones(name):
    # The table of phases (for float32 warps) gives the taps of `taps`, the same exact
    # zeros (pixel centres, one ulp either side, half-way, near 0) and weights within 1e-8
    kernel = getWarpingKernel(name)
    rng = np.random.default_rng(5)
    whole = np.concatenate([np.arange(-12.0, 13.0), rng.integers(-3000, 3000, 200) + 0.0,
                            [1023.0, 1024.0, 2047.0]])
    positions = np.concatenate([
        rng.uniform(-40.0, 2100.0, 20000), whole, whole + 0.5,
        np.nextafter(whole, np.inf), np.nextafter(whole, -np.inf),
        np.nextafter(whole + 0.5, np.inf), np.nextafter(whole + 0.5, -np.inf),
    ])
    first, exact = kernel.taps(positions)
    firstTable, table = kernel.tabulatedTaps(positions)
    np.testing.assert_array_equal(firstTable, first)
    np.testing.assert_array_equal(table == 0.0, exact == 0.0)
    np.testing.assert_allclose(table, exact, rtol=0, atol=1e-8)
    np.testing.assert_allclose(table.sum(axis=0), 1.0, rtol=0, atol=1e-14)
    atCentre = positions == np.round(positions)
    np.testing.assert_array_equal(table[:, atCentre], exact[:, atCentre])


@pytest.mark.parametrize("name", ["lanczos3", "lanczos2", "lanczos5"])
def test_tabulated_weight_pairs_match_the_exact_weights_and_their_squares(name):
    # float32 weights and squares side by side (float32 kernel sums with a variance): the
    # weights of `taps` to float32 rounding, the same exact zeros, the squares
    kernel = getWarpingKernel(name)
    rng = np.random.default_rng(7)
    whole = np.concatenate([np.arange(-12.0, 13.0), rng.integers(-3000, 3000, 200) + 0.0,
                            [1023.0, 1024.0, 2047.0]])
    positions = np.concatenate([
        rng.uniform(-40.0, 2100.0, 20000), whole, whole + 0.5,
        np.nextafter(whole, np.inf), np.nextafter(whole, -np.inf),
    ])
    first, exact = kernel.taps(positions)
    firstPairs, pairs = kernel.tabulatedWeightPairs(positions, squares=True)
    assert pairs.dtype == np.float32 and pairs.shape == (kernel.size, positions.size, 2)
    np.testing.assert_array_equal(firstPairs, first)
    weights, squares = pairs[..., 0], pairs[..., 1]
    np.testing.assert_array_equal(weights == 0.0, exact == 0.0)
    np.testing.assert_allclose(weights, exact, rtol=0, atol=1e-7)
    np.testing.assert_allclose(squares, exact**2, rtol=0, atol=1e-7)
    atCentre = positions == np.round(positions)
    np.testing.assert_array_equal(weights[:, atCentre], exact[:, atCentre])
    firstAlone, alone = kernel.tabulatedWeightPairs(positions, squares=False)
    np.testing.assert_array_equal(firstAlone, firstPairs)
    np.testing.assert_array_equal(alone[..., 0], pairs[..., 0])


def test_tabulated_taps_of_other_kernels_are_the_exact_ones():
    positions = np.random.default_rng(6).uniform(-5.0, 50.0, 500)
    for name in ("bilinear", "nearest"):
        kernel = getWarpingKernel(name)
        for a, b in zip(kernel.taps(positions), kernel.tabulatedTaps(positions), strict=True):
            np.testing.assert_array_equal(a, b)
