"""Tests of dcrmodel.assemble.tiling: the subregions' blending weights and bands."""

import numpy as np
import pytest

from dcrmodel.assemble.tiling import featherWidth, stitchWeights
from dcrmodel.image import Box


@pytest.mark.parametrize("width", [0, 3, 12])
def test_stitch_weights_blend_neighbours_and_add_up_to_one(width):
    patch = Box(5, -3, 50, 37)
    tiles = [Box.fromCorners(x, y, min(x + 19, patch.maxX), min(y + 15, patch.maxY))
             for y in range(patch.minY, patch.maxY + 1, 16)
             for x in range(patch.minX, patch.maxX + 1, 20)]
    weights = np.zeros((len(tiles), *patch.shape))
    owner = np.zeros(patch.shape, dtype=int)
    for i, tile in enumerate(tiles):
        box = tile.grow(width).clippedTo(patch)
        weight = stitchWeights(tile, box, patch, width)
        assert weight.shape == box.shape
        assert weight.min() >= 0 and weight.max() <= 1
        weights[i][box.slices(patch)] = weight
        owner[tile.slices(patch)] = i
        inside = weight[tile.slices(box)]
        if width == 0:
            # a hard cut: the tile alone, whole
            assert weight.sum() == inside.sum() == tile.area
            np.testing.assert_array_equal(inside, 1.0)
        else:
            # smooth ramps: no step larger than the sine's over one pixel, twice that where
            # a tile narrower than the band holds two of them (width 12 here)
            for axis in (0, 1):
                bound = (2 if width > 8 else 1) * np.sin(np.pi / (4 * width)) + 1e-12
                assert np.abs(np.diff(weight, axis=axis)).max() <= bound
    # a partition of unity over the patch, up to its edges, in which each pixel's own
    # tile weighs the most
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.argmax(weights, axis=0), owner)
    if width:
        # the neighbours reach exactly `width` pixels past each join
        assert np.count_nonzero(weights[0]) == (20 + width) * (16 + width)


def test_feather_width_per_solver():
    assert featherWidth(40, "direct") == 20
    assert featherWidth(41, "direct") == 20
    # the iterative solver keeps the hard cut at the joins
    assert featherWidth(40, "iterative") == 0
