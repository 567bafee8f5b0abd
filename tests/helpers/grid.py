"""Parent-coordinate grids for the tests of the image layer (geometry and pixels)."""

import numpy as np


def parentGrid(box):
    """Arrays of parent x and y for every pixel of ``box`` (built by index arithmetic)."""
    ys, xs = np.mgrid[0 : box.height, 0 : box.width]
    return xs + box.minX, ys + box.minY
