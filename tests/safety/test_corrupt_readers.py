"""The readers on corrupted files: an error of ours or a correct read, never a traceback.

Exposure files and model folders are cut at random offsets, have random bits flipped and
have HDUs of the wrong kind; `readExposure` (whole and a cutout) and `readDcrModel` must
then raise a `dcrmodel.errors.DcrError` (or FileNotFoundError), or read: a file cut only
in its final padding reads the original pixels, and one with its HDUs reordered too.
"""

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcrmodel.errors import DcrError
from dcrmodel.fits import readDcrModel, readExposure
from dcrmodel.image import Box
from helpers.safety import tinyField

SETTINGS = settings(max_examples=int(os.environ.get("DCRMODEL_TEST_EXAMPLES", 30)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
PLANES = ("IMAGE", "MASK", "VARIANCE")


class _Files(tuple):
    """The field, the exposure file's bytes, its HDU names and where its data end."""

    def __repr__(self):
        return "files"  # not the bytes, in a falsifying example


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    field = tinyField(tmp_path_factory.mktemp("corrupt"))
    with fits.open(field.test) as hdus:
        names = [hdu.name for hdu in hdus]
    return _Files((field, field.test.read_bytes(), names, _dataEnd(field.test)))


def _dataEnd(path):
    """Where the last HDU's data end, without its padding."""
    with fits.open(path) as hdus:
        last = len(hdus) - 1
        header = hdus[last].header
        size = abs(header["BITPIX"]) // 8 * int(np.prod([header.get(f"NAXIS{i}", 0) for i in
                                                         range(1, header["NAXIS"] + 1)]))
        return hdus.fileinfo(last)["datLoc"] + size


def _read(path, bbox=None):
    """Read; return the exposure, or the error of ours; anything else propagates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return readExposure(path, bbox)
        except (DcrError, FileNotFoundError) as error:
            return error


def _planes(exposure):
    mi = exposure.maskedImage
    return mi.image.array, mi.mask.array, mi.variance.array


def _same(a, b):
    return a.bbox == b.bbox and all(np.array_equal(x, y, equal_nan=True)
                                    for x, y in zip(_planes(a), _planes(b), strict=True))


def _cutout(exposure):
    box = exposure.bbox
    return Box(box.minX + 5, box.minY + 7, 11, 9)


@SETTINGS
@given(data=st.data())
def test_exposure_cut_anywhere(files, data):
    field, original, names, dataEnd = files
    reference = readExposure(field.test)
    offset = data.draw(st.integers(0, len(original) - 1), label="offset")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cut.fits"
        path.write_bytes(original[:offset])
        for bbox in (None, _cutout(reference)):
            result = _read(path, bbox)
            if isinstance(result, Exception):
                # cut at the end of an HDU, a file is a valid FITS file without the HDUs after
                assert offset == 0 or any(text in str(result) for text in (
                    "truncated", "not a readable FITS", "HDU (EXTNAME); an exposure file needs")
                ), (offset, result)
                continue
            # only a cut in the final padding may read, and must read the original pixels
            assert offset >= dataEnd, (offset, dataEnd)
            expected = reference if bbox is None else readExposure(field.test, bbox)
            assert _same(result, expected)


def test_exposure_cut_inside_each_plane_says_truncated(files, tmp_path):
    field, original, names, dataEnd = files
    with fits.open(field.test) as hdus:
        for index, name in enumerate(names):
            info = hdus.fileinfo(index)
            if name not in PLANES:
                continue
            path = tmp_path / f"cut-{name}.fits"
            path.write_bytes(original[: info["datLoc"] + info["datSpan"] // 2])
            result = _read(path)
            assert isinstance(result, DcrError), name
            assert "is truncated: the data of HDU " + name in str(result), str(result)


@SETTINGS
@given(data=st.data())
def test_exposure_bits_flipped(files, data):
    field, original, names, dataEnd = files
    reference = readExposure(field.test)
    count = data.draw(st.integers(1, 8), label="flips")
    corrupted = bytearray(original)
    for _ in range(count):
        offset = data.draw(st.integers(0, len(original) - 1), label="offset")
        corrupted[offset] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flipped.fits"
        path.write_bytes(bytes(corrupted))
        for bbox in (None, _cutout(reference)):
            _read(path, bbox)  # an error of ours, or the pixels the file now holds


def _mutations():
    def table(hdus, name):
        index = hdus.index_of(name)
        hdus[index] = fits.BinTableHDU.from_columns(
            [fits.Column(name="x", format="E", array=np.zeros(3))], name=name)

    def oneD(hdus, name):
        index = hdus.index_of(name)
        hdus[index] = fits.ImageHDU(np.zeros(7, dtype=np.float32), name=name)

    def threeD(hdus, name):
        index = hdus.index_of(name)
        hdus[index] = fits.ImageHDU(np.zeros((2, 3, 4), dtype=np.float32), name=name)

    def shape(hdus, name):
        index = hdus.index_of(name)
        data = hdus[index].data
        hdus[index] = fits.ImageHDU(np.zeros((data.shape[0] + 1, data.shape[1]),
                                             dtype=data.dtype), header=hdus[index].header)

    def missing(hdus, name):
        del hdus[hdus.index_of(name)]

    def strings(hdus, name):
        hdus[hdus.index_of(name)].header["BUNIT"] = 42
        hdus[hdus.index_of(name)].header["CRVAL1"] = "north"

    def integers(hdus, name):
        index = hdus.index_of(name)
        data = hdus[index].data
        hdus[index] = fits.ImageHDU(np.asarray(data, dtype=np.int16), header=hdus[index].header)

    def primaryData(hdus, name):
        hdus[0] = fits.PrimaryHDU(np.ones((4, 4)), header=hdus[0].header)

    def compressed(hdus, name):
        index = hdus.index_of(name)
        hdus[index] = fits.CompImageHDU(hdus[index].data, header=hdus[index].header)

    return {"table": table, "1-d": oneD, "3-d": threeD, "shape": shape, "missing": missing,
            "bad keys": strings, "integers": integers, "primary data": primaryData,
            "tile-compressed": compressed}


MUTATIONS = _mutations()


@SETTINGS
@given(data=st.data())
def test_exposure_hdus_of_the_wrong_kind(files, data):
    field, original, names, dataEnd = files
    name = data.draw(st.sampled_from(names[1:]), label="hdu")
    kind = data.draw(st.sampled_from(sorted(MUTATIONS)), label="mutation")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "wrong.fits"
        with fits.open(field.test) as hdus:
            hdus = fits.HDUList([hdu.copy() for hdu in hdus])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                MUTATIONS[kind](hdus, name)
                hdus.writeto(path, output_verify="silentfix")
        result = _read(path)
        if kind in ("table", "1-d", "3-d", "shape") and name in PLANES:
            assert isinstance(result, DcrError), (kind, name)


def test_exposure_hdus_reordered_read_alike(files, tmp_path):
    field, *_ = files
    path = tmp_path / "reordered.fits"
    with fits.open(field.test) as hdus:
        order = [hdus[0], *reversed([hdu.copy() for hdu in hdus[1:]])]
        fits.HDUList(order).writeto(path)
    assert _same(readExposure(path), readExposure(field.test))


def _readModel(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return readDcrModel(path)
        except (DcrError, FileNotFoundError) as error:
            return error


@SETTINGS
@given(data=st.data())
def test_model_with_a_corrupted_subfilter_file(files, data):
    field, *_ = files
    victim = data.draw(st.sampled_from(["dcrCoadd_0.fits", "dcrCoadd_1.fits",
                                        "dcrCoadd_2.fits"]), label="file")
    how = data.draw(st.sampled_from(["cut", "flip", "wrong kind", "gone", "renamed"]),
                    label="how")
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "model"
        shutil.copytree(field.model, model)
        path = model / victim
        raw = path.read_bytes()
        if how == "cut":
            path.write_bytes(raw[: data.draw(st.integers(0, _dataEnd(path) - 1),
                                            label="offset")])
        elif how == "flip":
            corrupted = bytearray(raw)
            offset = data.draw(st.integers(0, len(raw) - 1), label="offset")
            corrupted[offset] ^= 1 << data.draw(st.integers(0, 7), label="bit")
            path.write_bytes(bytes(corrupted))
        elif how == "wrong kind":
            kind = data.draw(st.sampled_from(sorted(MUTATIONS)), label="mutation")
            plane = data.draw(st.sampled_from(PLANES), label="hdu")
            with fits.open(model / victim) as hdus:
                hdus = fits.HDUList([hdu.copy() for hdu in hdus])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    MUTATIONS[kind](hdus, plane)
                    hdus.writeto(path, overwrite=True, output_verify="silentfix")
        elif how == "gone":
            path.unlink()
        else:
            path.rename(model / "dcrCoadd_7.fits")
        result = _readModel(model)
        if how in ("cut", "gone", "renamed"):
            assert isinstance(result, (DcrError, FileNotFoundError)), how
