"""Grids read from exposure files or from RA,DEC,WIDTH,HEIGHT,SCALE (dcrmodel.fits.grid)."""

import numpy as np
import pytest
from astropy.io import fits

from dcrmodel.errors import DcrFitsError, DcrTypeError, DcrValueError
from dcrmodel.fits import gridFromSpec, readGrid, writeExposure
from dcrmodel.image import Box, Exposure
from helpers import makeTanWcs
from helpers.warp import sipWcs


def _check_same_grid(wcs, expected, box):
    xs = np.array([box.minX, box.maxX, box.center[0]])
    ys = np.array([box.minY, box.maxY, box.center[1]])
    got = wcs.pixel_to_world(xs, ys)
    want = expected.pixel_to_world(xs, ys)
    assert np.all(got.separation(want).arcsec < 1e-6)


def test_read_grid_of_an_exposure_file(tmp_path):
    wcs = makeTanWcs(23.0, 0.2, (150.0, -30.0), crpix=(1010.0, 2005.0))
    exposure = Exposure.fromArrays(np.zeros((30, 40), np.float32), origin=(1000, 2000), wcs=wcs)
    path = tmp_path / "patch.fits"
    writeExposure(exposure, path)
    gridWcs, box = readGrid(path)
    assert box == Box(1000, 2000, 40, 30)
    _check_same_grid(gridWcs, wcs, box)
    specWcs, specBox = gridFromSpec(str(path))
    assert specBox == box
    _check_same_grid(specWcs, wcs, box)
    assert gridFromSpec(path)[1] == box


def test_read_grid_keeps_sip(tmp_path):
    wcs = sipWcs((64, 64))
    path = tmp_path / "sip.fits"
    writeExposure(Exposure.fromArrays(np.zeros((64, 64)), wcs=wcs), path)
    gridWcs, box = readGrid(path)
    assert gridWcs.sip is not None
    _check_same_grid(gridWcs, wcs, box)


def test_grid_from_text():
    wcs, box = gridFromSpec("150,-30,200,100,0.2")
    assert box == Box(0, 0, 200, 100)
    np.testing.assert_allclose(wcs.wcs.crval, [150.0, -30.0])


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such grid file"):
        gridFromSpec(str(tmp_path / "missing.fits"))
    with pytest.raises(FileNotFoundError):
        readGrid(tmp_path / "missing.fits")
    with pytest.raises(DcrValueError, match="neither an existing file nor RA,DEC,WIDTH"):
        gridFromSpec("somewhere")
    with pytest.raises(DcrValueError, match="RA is not a number"):
        gridFromSpec("a,b,c,d,e")
    with pytest.raises(DcrTypeError, match="a grid is a file path or the text"):
        gridFromSpec(3.5)
    noWcs = tmp_path / "nowcs.fits"
    writeExposure(Exposure.fromArrays(np.zeros((8, 8))), noWcs)
    with pytest.raises(DcrFitsError, match="HDU IMAGE has no celestial WCS"):
        readGrid(noWcs)
    plain = tmp_path / "plain.fits"
    fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4)))]).writeto(plain)
    with pytest.raises(DcrFitsError, match="has no IMAGE HDU"):
        gridFromSpec(str(plain))
    text = tmp_path / "notes.fits"
    text.write_text("not a FITS file")
    with pytest.raises(DcrFitsError, match="not a readable FITS file"):
        readGrid(text)
