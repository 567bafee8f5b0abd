"""The compiled kernel sums equal the array code's, bit for bit (dcrmodel.warp.chunksums)."""

import dataclasses
import os

import numpy as np
import pytest

from dcrmodel.warp import chunksums
from dcrmodel.warp.chunksums import SourcePlanes, _arrayChunk, _compiledChunk
from dcrmodel.warp.kernels import TAP_TABLE_PHASES, getWarpingKernel
from dcrmodel.warp.resample import resampleArrays

needsCompiled = pytest.mark.skipif(
    not chunksums.compiledKernelSums(), reason="the compiled kernel sums are not built"
)


def test_the_compiled_sums_are_built_where_required():
    """`make test` (and CI) sets DCRMODEL_REQUIRE_COMPILED: a failed build must show."""
    if os.environ.get("DCRMODEL_REQUIRE_COMPILED") != "1":
        pytest.skip("DCRMODEL_REQUIRE_COMPILED is not set")
    assert chunksums.compiledKernelSums()


def _positions(rng, shape, n):
    """Positions of every kind: inside, near and beyond the edges, on pixel centres, at the
    very end of a table interval, near 0 (where the exact kernel is used) and undefined."""
    ny, nx = shape
    x = rng.uniform(-20.0, nx + 20.0, n)
    y = rng.uniform(-20.0, ny + 20.0, n)
    k = n // 8
    x[:k], y[:k] = np.round(x[:k]), np.round(y[:k])  # pixel centres
    x[k:2 * k] = np.floor(x[k:2 * k]) + 1.0 - 0.3 / TAP_TABLE_PHASES * 1e-4  # end of a phase
    y[2 * k:3 * k] = rng.uniform(-8.0, 8.0, k)  # near 0: exact weights
    x[3 * k:3 * k + 5] = np.nan
    y[3 * k + 5:3 * k + 9] = np.inf
    x[3 * k + 9:3 * k + 12] = 1e9  # far out (clipped)
    return x, y


@needsCompiled
@pytest.mark.parametrize("kernel", ["lanczos2", "lanczos3", "lanczos5", "lanczos8"])
@pytest.mark.parametrize("withVariance", [True, False])
@pytest.mark.parametrize("withBad", [True, False])
def test_compiled_chunk_equals_the_array_chunk(kernel, withVariance, withBad):
    rng = np.random.default_rng(7)
    shape = (53, 71)
    image = rng.normal(size=shape).astype(np.float32)
    variance = rng.uniform(0.5, 2.0, shape).astype(np.float32) if withVariance else None
    mask = None
    if withBad:
        image[10, 20] = np.nan
        mask = np.zeros(shape, np.int32)
        mask[rng.integers(0, shape[0], 12), rng.integers(0, shape[1], 12)] = 4
    warpingKernel = getWarpingKernel(kernel)
    planes = SourcePlanes.fromArrays(image, variance, mask, None, warpingKernel.size)
    xs, ys = _positions(rng, shape, 4000)
    expected = _arrayChunk(planes, xs, ys, warpingKernel, False)
    result = _compiledChunk(planes, xs, ys, warpingKernel, False)
    for got, want in zip(result, expected, strict=True):
        if want is None:
            assert got is None
        else:
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    finite = np.isfinite(xs) & np.isfinite(ys)
    expected = _arrayChunk(planes, xs[finite], ys[finite], warpingKernel, True)
    result = _compiledChunk(planes, xs[finite], ys[finite], warpingKernel, True)
    for got, want in zip(result, expected, strict=True):
        if want is not None:
            np.testing.assert_array_equal(got, want)


@needsCompiled
def test_a_rotated_warp_is_the_same_with_and_without_the_compiled_sums(monkeypatch):
    rng = np.random.default_rng(3)
    image = rng.normal(size=(120, 90)).astype(np.float32)
    variance = rng.uniform(1.0, 2.0, image.shape).astype(np.float32)
    ys, xs = np.mgrid[0:100, 0:100].astype(float)
    t = np.deg2rad(37.0)
    x = np.cos(t) * (xs - 50) - np.sin(t) * (ys - 50) + 45.3
    y = np.sin(t) * (xs - 50) + np.cos(t) * (ys - 50) + 60.2
    compiled = resampleArrays(image, x, y, variance=variance, threads=2)
    monkeypatch.setattr(chunksums, "_kernelsum", None)
    array = resampleArrays(image, x, y, variance=variance, threads=1)
    np.testing.assert_array_equal(compiled.image, array.image)
    np.testing.assert_array_equal(compiled.variance, array.variance)
    np.testing.assert_array_equal(compiled.noData, array.noData)
    assert (~compiled.noData).sum() > 3000


def test_big_endian_float32_is_summed_as_native_float32():
    """FITS data arrive big-endian: they take the float32 path (compiled where built)."""
    rng = np.random.default_rng(5)
    image = rng.normal(size=(40, 50)).astype(np.float32)
    variance = rng.uniform(1.0, 2.0, image.shape).astype(np.float32)
    ys, xs = np.mgrid[0:30, 0:30].astype(float)
    x, y = xs * 0.9 + 5.3, ys * 0.8 + 4.6 + 0.1 * xs
    native = resampleArrays(image, x, y, variance=variance)
    swapped = resampleArrays(image.astype(">f4"), x, y, variance=variance.astype(">f4"))
    assert swapped.image.dtype == np.float32
    np.testing.assert_array_equal(swapped.image, native.image)
    np.testing.assert_array_equal(swapped.variance, native.variance)


@needsCompiled
def test_kernels_wider_than_the_compiled_buffers_are_left_to_the_array_code():
    planes = SourcePlanes.fromArrays(np.ones((20, 20), np.float32), None, None, None, 6)
    lanczos8 = getWarpingKernel("lanczos8")
    assert chunksums.usesCompiledSums(planes, lanczos8)
    wider = dataclasses.replace(lanczos8, name="lanczos9", size=18, radius=9.0)
    assert not chunksums.usesCompiledSums(planes, wider)
    table, slope = lanczos8.phaseTables(True)
    with pytest.raises(ValueError, match="do not fit"):
        chunksums._kernelsum.kernelSums(
            np.zeros(1), np.zeros(1), planes.pixels.view(np.float32), planes.width,
            planes.margin, 20, 20, table, slope, 18, 2, 13, 1e-8, np.empty(1, np.float32),
            np.empty(1, np.float32), np.empty(1, np.uint8), np.empty(1, np.uint8),
            np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.int32),
            np.empty(0, np.uint8), np.empty(0, np.uint8),
        )
