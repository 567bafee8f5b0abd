"""Damaged header cards are one error of ours naming the file, not astropy's deep inside."""

import numpy as np
import pytest

from dcrmodel.errors import DcrFitsError
from dcrmodel.fits import readDcrModel, readExposure, readExposureBBox, writeDcrModel
from dcrmodel.fits.exposure import ExposureFile
from dcrmodel.image import Exposure, Image
from dcrmodel.model import DcrModel


def _replace(path, old: bytes, new: bytes):
    """Replace the first ``old`` in the file (same length: the layout stays)."""
    raw = path.read_bytes()
    assert old in raw and len(old) == len(new)
    path.write_bytes(raw.replace(old, new, 1))


@pytest.fixture
def exposure(tmp_path):
    path = tmp_path / "e.fits"
    exposure = Exposure.fromArrays(np.arange(30.0, dtype=np.float32).reshape(5, 6),
                                   origin=(10, 20))
    exposure.metadata["OBSERVER"] = "somebody"
    from dcrmodel.fits import writeExposure

    writeExposure(exposure, path)
    return path


def test_a_byte_that_is_not_printable_ascii(exposure):
    _replace(exposure, b"'somebody'", b"'some\x00ody'")
    for read in (readExposure, readExposureBBox, ExposureFile):
        with pytest.raises(DcrFitsError, match=r"e.fits is damaged: card \d+ of the header of "
                           r"HDU 0 holds bytes that are not printable ASCII; write or copy"):
            read(exposure)


def test_a_value_that_does_not_parse(exposure):
    raw = exposure.read_bytes()
    start = raw.index(b"LTV1    =")
    card = raw[start:start + 80]
    damaged = card[:10] + b"  1.0.0e+x".rjust(20) + card[30:]
    _replace(exposure, card, damaged)
    with pytest.raises(DcrFitsError, match=r"e.fits(, HDU IMAGE: key LTV1 must be a number| is "
                       r"damaged)"):
        readExposure(exposure)


def test_a_damaged_key_of_a_model_file(tmp_path):
    path = tmp_path / "model"
    writeDcrModel(DcrModel([Image(np.zeros((4, 5))) for _ in range(3)]), path)
    file = path / "dcrCoadd_1.fits"
    raw = file.read_bytes()
    start = raw.index(b"DCR-SUBF=")
    card = raw[start:start + 80]
    _replace(file, card, card[:10] + b"1x".rjust(20) + card[30:])
    with pytest.raises(DcrFitsError, match=r"dcrCoadd_1.fits is damaged: card \d+ of the "
                       r"header of HDU 0 cannot be read \(Unparsable card \(DCR-SUBF\)"):
        readDcrModel(path)
