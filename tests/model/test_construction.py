"""DcrModel.fromQuantum and fromDataRef on handles and butlers without the Rubin middleware."""

import numpy as np
import pytest

from dcrmodel.errors import DcrMetadataError, DcrValueError
from dcrmodel.image import Box, Exposure, Filter, MaskedImage
from dcrmodel.model import DcrModel

BAND = Filter("g", 480.0, 150.0)


def modelExposures(n, value=1.0, band=BAND):
    """What the dcrCoadd datasets of an n-subfilter model hold (with the DCR keys)."""
    edges = np.linspace(band.lambdaMin, band.lambdaMax, n + 1)
    exposures = []
    for k in range(n):
        masked = MaskedImage.fromArrays(np.full((6, 7), value * (k + 1)), origin=(2, 3))
        metadata = {"DCR-SUBF": k, "DCR-NSUB": n, "DCR-WMIN": float(edges[k]),
                    "DCR-WMAX": float(edges[k + 1])}
        exposures.append(Exposure(masked, filter=band, metadata=metadata))
    return exposures


class Handle:
    def __init__(self, exposure, subfilter, patch=0, band="g"):
        self.dataId = {"band": band, "skymap": "s", "tract": 0, "patch": patch,
                       "subfilter": subfilter}
        self.exposure = exposure
        self.gets = 0

    def get(self):
        self.gets += 1
        return self.exposure


class FakeButler:
    """A data butler's get: a data ID and keywords, no numSubfilters."""

    def __init__(self, exposures):
        self.exposures = exposures
        self.calls = []

    def get(self, datasetType, /, dataId=None, *, parameters=None, collections=None,
            **kwargs):
        self.calls.append((datasetType, dataId, parameters, collections, kwargs))
        exposure = self.exposures[kwargs["subfilter"]]
        return exposure if parameters is None else exposure[parameters["bbox"]]


def test_fromQuantum_refuses_handles_of_two_models():
    mixed = modelExposures(3)[:3] + modelExposures(4)[3:]
    found = [Handle(e, k) for k, e in enumerate(mixed)]
    with pytest.raises(DcrMetadataError, match="3-subfilter model but 4 subfilters"):
        DcrModel.fromQuantum(found)
    shifted = modelExposures(3)
    shifted[2].metadata["DCR-WMIN"] = 500.0
    with pytest.raises(DcrMetadataError, match="DCR-WMIN = 500.0 nm but subfilter 2"):
        DcrModel.fromQuantum([Handle(e, k) for k, e in enumerate(shifted)])
    swapped = modelExposures(3)
    swapped[1].metadata["DCR-SUBF"] = 2
    with pytest.raises(DcrMetadataError, match="holds subfilter 2"):
        DcrModel.fromQuantum([Handle(e, k) for k, e in enumerate(swapped)])


def test_fromQuantum_refuses_two_bands_or_patches_before_any_get():
    exposures = modelExposures(3)
    bands = [Handle(e, k, band="r" if k == 1 else "g") for k, e in enumerate(exposures)]
    with pytest.raises(DcrValueError, match="2 different band values"):
        DcrModel.fromQuantum(bands)
    patches = [Handle(e, k, patch=k) for k, e in enumerate(exposures)]
    with pytest.raises(DcrValueError, match="3 different patch values"):
        DcrModel.fromQuantum(patches)
    with pytest.raises(DcrValueError, match="numSubfilters=4"):
        DcrModel.fromQuantum([Handle(e, k) for k, e in enumerate(exposures)], None, None, 4)
    assert all(h.gets == 0 for h in bands + patches)


def test_fromQuantum_takes_the_reference_arguments():
    found = [Handle(e, k) for k, e in enumerate(modelExposures(3))]
    model = DcrModel.fromQuantum(found, 481.0, 149.0, 3)
    assert model.filter == Filter("g", 481.0, 149.0)
    assert DcrModel.fromQuantum(found).filter == BAND
    with pytest.raises(DcrValueError, match="together"):
        DcrModel.fromQuantum(found, 481.0)


def test_fromDataRef_calls_a_butler_once_per_subfilter():
    butler = FakeButler(modelExposures(3))
    dataId = {"skymap": "s", "tract": 0, "patch": 0, "band": "g"}
    model = DcrModel.fromDataRef(butler, numSubfilters=3, dataId=dataId, collections="run")
    assert [float(image.array[0, 0]) for image in model] == [1.0, 2.0, 3.0]
    assert butler.calls == [("dcrCoadd", dataId, None, "run", {"subfilter": k})
                            for k in range(3)]
    box = Box(3, 4, 2, 2)
    cutout = DcrModel.fromDataRef(butler, numSubfilters=3, bbox=box, tract=0, patch=0)
    assert cutout.bbox == box
    assert butler.calls[-1] == ("dcrCoadd", None, {"bbox": box}, None,
                                {"subfilter": 2, "tract": 0, "patch": 0})
    with pytest.raises(DcrMetadataError, match="3-subfilter model but 2 subfilters"):
        DcrModel.fromDataRef(butler, numSubfilters=2, dataId=dataId)
