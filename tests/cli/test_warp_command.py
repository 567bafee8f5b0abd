"""The ``dcrmodel warp`` command (dcrmodel.cli.commands)."""

import numpy as np
import pytest

from dcrmodel.cli.main import main
from dcrmodel.fits import readExposure, writeExposure
from dcrmodel.image import Box, Exposure, GaussianPsf
from helpers import makeTanWcs, makeVisitInfo, renderGaussians

GRID = "150.0,-30.0,40,36,0.2"


def _visit(path, angle, crval=(150.0, -30.0), visitId=None, wcs=True):
    image = renderGaussians((48, 48), [(23.5, 24.0, 500.0)], sigma=1.3)
    visitInfo = None if visitId is None else makeVisitInfo(elevation=60.0, id=visitId)
    exposure = Exposure.fromArrays(
        image.astype(np.float32), variance=np.ones((48, 48), np.float32),
        wcs=makeTanWcs(angle, 0.2, crval, crpix=(23.5, 23.5)) if wcs else None,
        psf=GaussianPsf(3.0), visitInfo=visitInfo,
    )
    writeExposure(exposure, path)
    return path


@pytest.fixture
def visits(tmp_path):
    folder = tmp_path / "visits"
    folder.mkdir()
    return [
        _visit(folder / "a.fits", 0.0),
        _visit(folder / "b.fits", 37.0, (150.0003, -30.0002)),
        _visit(folder / "far.fits", 0.0, (160.0, -30.0), visitId=7),
    ]


def _lines(text):
    return [line for line in text.splitlines() if line.strip()]


def test_warp_writes_one_file_per_overlapping_visit(tmp_path, visits, capsys):
    out = tmp_path / "warped"
    assert main(["warp", *map(str, visits), "--grid", GRID, "--out", str(out),
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["a.fits", "b.fits"]
    warning = [line for line in _lines(captured.err) if "far.fits" in line]
    assert len(warning) == 1 and "visit 7" in warning[0] and "does not overlap" in warning[0]
    assert "warped 2 of 3 exposures" in captured.out
    for name in ("a.fits", "b.fits"):
        warped = readExposure(out / name)
        assert warped.bbox == Box(0, 0, 40, 36)
        centre = warped.wcs.pixel_to_world(19.5, 17.5)
        assert abs(centre.ra.deg - 150.0) < 1e-9 and abs(centre.dec.deg + 30.0) < 1e-9
        assert warped.psf is not None
        good = (warped.mask.array & warped.mask.getPlaneBitMask("NO_DATA")) == 0
        assert good.sum() > 0.5 * warped.bbox.area
        assert np.all(np.isfinite(warped.image.array))
        # the source (500 counts) lands on the grid with its flux
        assert abs(warped.image.array.sum() / 500.0 - 1.0) < 2e-3

    # the outputs exist: refused without --overwrite, before any work
    before = (out / "a.fits").stat().st_mtime_ns
    assert main(["warp", str(visits[0]), "--grid", GRID, "--out", str(out), "-q"]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "--overwrite" in err[0] and "a.fits" in err[0]
    assert (out / "a.fits").stat().st_mtime_ns == before
    assert main(["warp", str(visits[0]), "--grid", GRID, "--out", str(out), "-q",
                 "--overwrite", "--kernel", "bilinear"]) == 0


def test_grid_from_a_file(tmp_path, visits):
    first = tmp_path / "first"
    assert main(["warp", str(visits[0]), "--grid", GRID, "--out", str(first), "-q"]) == 0
    second = tmp_path / "second"
    assert main(["warp", str(visits[1]), "--grid", str(first / "a.fits"), "--out",
                 str(second), "-q", "--conserve", "flux"]) == 0
    assert readExposure(second / "b.fits").bbox == Box(0, 0, 40, 36)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--grid", "150,-30,40"], "got 3 field"),
        (["--grid", "missing.fits"], "no such grid file"),
        (["--grid", "somewhere"], "neither an existing file nor RA,DEC,WIDTH,HEIGHT,SCALE"),
        (["--grid", "150,-30,40,36,-1"], "scale must be positive"),
    ],
)
def test_bad_grid(tmp_path, visits, capsys, extra, message):
    assert main(["warp", str(visits[0]), "--out", str(tmp_path / "o"), "-q", *extra]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("dcrmodel warp: error:") and message in err[0]
    assert not (tmp_path / "o").exists()


def test_bad_inputs(tmp_path, visits, capsys):
    out = str(tmp_path / "o")
    assert main(["warp", str(visits[2]), "--grid", GRID, "--out", out, "-q"]) == 2
    assert "no exposure overlaps the grid" in capsys.readouterr().err
    noWcs = _visit(tmp_path / "nowcs.fits", 0.0, wcs=False)
    assert main(["warp", str(noWcs), "--grid", GRID, "--out", out, "-q"]) == 2
    assert "has no WCS" in capsys.readouterr().err
    assert main(["warp", str(tmp_path / "nothere.fits"), "--grid", GRID, "--out", out]) == 2
    assert "no such exposure file" in capsys.readouterr().err
    assert main(["warp", str(visits[0]), "--grid", GRID, "--out", out, "--kernel",
                 "cubic"]) == 2
    assert "invalid choice: 'cubic'" in capsys.readouterr().err
    # the input's own folder: the output would replace the input
    folder = str(visits[0].parent)
    assert main(["warp", str(visits[0]), "--grid", GRID, "--out", folder, "-q",
                 "--overwrite"]) == 2
    assert "is the input itself" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    twin = _visit(other / "a.fits", 0.0)
    assert main(["warp", str(visits[0]), str(twin), "--grid", GRID, "--out", out, "-q"]) == 2
    assert "would both be written to" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
