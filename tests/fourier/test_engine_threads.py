"""The Fourier template engine gives the same templates bit for bit with any number of threads."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from dcrmodel.fourier import FourierTemplateEngine, cropFromPadded, padToShape, subfilterTransfer
from dcrmodel.parallel import threadLimit


def _model(shape=(70, 53), seed=1):
    rng = np.random.default_rng(seed)
    return [rng.gamma(0.5, 10.0, size=shape).astype(np.float32) for _ in range(3)]


EDGES = [((0.7, -1.3), (0.2, -0.4)), ((0.2, -0.4), (-0.3, 0.5)), ((-0.3, 0.5), (-0.9, 1.4))]


@pytest.mark.parametrize("mode", ["smear", "split", "mean"])
def test_templates_equal_the_one_thread_sum(mode):
    arrays = _model()
    rng = np.random.default_rng(2)
    templates = []
    for workers in (1, 2, 3):
        engine = FourierTemplateEngine(arrays, maxShift=2.0, psfSize=5, workers=workers)
        extra = rng.random((3, engine.paddedShape[0], engine.paddedShape[1] // 2 + 1))
        rng = np.random.default_rng(2)
        templates.append((engine.buildTemplate(EDGES, mode, extra.astype(np.float32)),
                          engine.buildTemplateFromTransfers(engine.transfers(EDGES, mode))))
    # The sum as one thread forms it: every subfilter's whole transfer, in order.
    padded = engine.paddedShape
    total = np.zeros((padded[0], padded[1] // 2 + 1), dtype=np.complex64)
    for k, edge in enumerate(EDGES):
        term = subfilterTransfer(padded, edge, mode, np.complex64)
        term *= scipy.fft.rfft2(padToShape(arrays[k], padded, "edge"), workers=1)
        term *= extra[k].astype(np.float32)
        total += term
    reference = cropFromPadded(scipy.fft.irfft2(total, s=padded, workers=1), arrays[0].shape)
    for template, fromTransfers in templates:
        np.testing.assert_array_equal(template, reference)
        np.testing.assert_array_equal(fromTransfers, templates[0][1])


def test_engine_threads_follow_the_context():
    engine = FourierTemplateEngine(_model(), maxShift=2.0)
    with threadLimit(1):
        one = engine.buildTemplate(EDGES)
    with threadLimit(2):
        two = FourierTemplateEngine(_model(), maxShift=2.0).buildTemplate(EDGES)
    np.testing.assert_array_equal(one, two)
