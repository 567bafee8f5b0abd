"""Threads of the direct solver: the same model whatever their number, and the setting's checks.

The per-frequency work runs in blocks of rows of the frequency grid, each element computed
by the same operations in the same order, and ``scipy.fft`` splits whole one-dimensional
transforms among its threads: the models made with 1, 2 and 3 threads are compared bit for
bit, and the single-thread path against the references of ``test_direct.py`` (which it
passes unchanged).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from dcrmodel.assemble import DcrAssembleCoadd, DcrAssembleConfig
from dcrmodel.assemble.direct import solveDirect, solveDirectFromShifts
from dcrmodel.assemble.normal import batchesOf, predict, predictMany
from dcrmodel.errors import DcrConfigError, DcrTypeError, DcrValueError
from dcrmodel.fourier import shiftTransfer, smearTransfer, splitTransfer, visitTransfers
from dcrmodel.image import ImagePsf
from dcrmodel.parallel import threadLimit


def _stack(seed: int = 3, shape: tuple[int, int] = (72, 61), visits: int = 5):
    """Visits of a random sky with masked blocks (so the refinement runs), float32."""
    rng = np.random.default_rng(seed)
    sky = rng.gamma(0.3, 40.0, size=shape)
    images = (sky[None] + rng.normal(0.0, 1.0, (visits, *shape))).astype(np.float32)
    variances = np.ones_like(images)
    bad = np.zeros(images.shape, dtype=bool)
    for j in range(visits):
        y, x = rng.integers(0, shape[0] - 9), rng.integers(0, shape[1] - 9)
        bad[j, y:y + 9, x:x + 9] = True
    angles = np.linspace(0.2, 2.8, visits)
    shifts = [[((1.2 * np.cos(a) * (1 - k), 1.2 * np.sin(a) * (1 - k)),
                (1.2 * np.cos(a) * (0.4 - k), 1.2 * np.sin(a) * (0.4 - k))) for k in range(3)]
              for a in angles]
    return images, variances, bad, shifts


@pytest.mark.parametrize("mode", ["smear", "split", "mean"])
def test_solve_is_the_same_bit_for_bit_with_any_number_of_threads(mode):
    images, variances, bad, shifts = _stack()
    solutions = [solveDirectFromShifts(images, variances, bad, shifts, mode=mode, threads=t)
                 for t in (1, 2, 3)]
    first = solutions[0]
    assert first.passChanges  # the masked pixels were refined
    for other in solutions[1:]:
        np.testing.assert_array_equal(other.modelArrays, first.modelArrays)
        np.testing.assert_array_equal(other.visitResiduals, first.visitResiduals)
        assert other.conditionNumbers == first.conditionNumbers
        assert other.passChanges == first.passChanges


@pytest.mark.parametrize("transferCache", [0, 256 << 20])
def test_transforms_in_batches_give_the_same_solve(transferCache):
    # 9 visits in batches of up to 4 transforms (5 threads: 4, 4, 1), with the transfers
    # kept between the passes and computed again in each.
    images, variances, bad, shifts = _stack(seed=11, shape=(48, 53), visits=9)
    one, five = (solveDirectFromShifts(images, variances, bad, shifts, threads=t,
                                       transferCache=transferCache) for t in (1, 5))
    assert one.passChanges
    np.testing.assert_array_equal(five.modelArrays, one.modelArrays)
    np.testing.assert_array_equal(five.visitResiduals, one.visitResiduals)
    assert five.passChanges == one.passChanges


def test_predictions_of_several_visits_equal_each_visits_own():
    rng = np.random.default_rng(4)
    padded = (30, 27)
    grid = (padded[0], padded[1] // 2 + 1)

    def complexArray(shape):
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)

    transfers = [complexArray((3, *grid)) for _ in range(3)]
    solution = complexArray((3, *grid))
    together = predictMany(transfers, solution, padded, workers=2, threads=2)
    assert together.shape == (3, *padded)
    for transfer, prediction in zip(transfers, together, strict=True):
        np.testing.assert_array_equal(prediction, predict(transfer, solution, padded, 1))
    assert batchesOf([4, 7, 9, 12, 15], 2) == [[4, 7], [9, 12], [15]]
    assert batchesOf([4, 7], 0) == [[4], [7]]
    assert [len(batch) for batch in batchesOf(list(range(9)), 64)] == [4, 4, 1]


def test_float64_solve_with_psf_factors_is_the_same_with_threads():
    images, variances, bad, shifts = _stack(seed=5, shape=(40, 47), visits=4)
    images = images.astype(np.float64)
    rng = np.random.default_rng(0)

    def extra(j, padded):
        return 0.5 + rng.random((3, padded[0], padded[1] // 2 + 1)).astype(np.float32)

    one = solveDirectFromShifts(images, variances, bad, shifts, extraTransfers=extra,
                                psfSize=5, threads=1)
    rng = np.random.default_rng(0)
    two = solveDirectFromShifts(images, variances, bad, shifts, extraTransfers=extra,
                                psfSize=5, threads=2)
    np.testing.assert_array_equal(one.modelArrays, two.modelArrays)


@pytest.mark.parametrize("shape", [(64, 50), (65, 51), (7, 9)])
def test_visit_transfers_in_blocks_equal_the_single_transfers(shape):
    edges = [((0.7, -1.3), (0.2, -0.4)), ((0.0, 0.0), (0.0, 0.0)), ((-2.5, 1.1), (-3.0, 1.9))]
    for threads in (1, 2):
        smear = visitTransfers(shape, edges, "smear", np.complex64, threads)
        split = visitTransfers(shape, edges, "split", np.complex128, threads)
        mean = visitTransfers(shape, edges, "mean", np.complex64, threads)
        for k, edge in enumerate(edges):
            np.testing.assert_array_equal(smear[k], smearTransfer(shape, edge, np.complex64))
            np.testing.assert_array_equal(split[k], splitTransfer(shape, edge, np.complex128))
            np.testing.assert_array_equal(
                mean[k], shiftTransfer(shape, np.mean(edge, axis=0), np.complex64))


def _simulated():
    simulate = pytest.importorskip("dcrmodel.simulate")
    config = simulate.SimulationConfig(size=64, numTraining=6, numTest=1,
                                       transientsPerTestVisit=0, numStars=8, numGalaxies=3)
    field = simulate.simulateField(config, seed=4)
    training = [v.exposure for v in field.visits if v.role == "training"]
    for exposure in training:  # the simulator's PSF images are larger than this field
        half = min(exposure.bbox.shape) // 2 - 1
        centre = exposure.psf.array.shape[0] // 2
        exposure.psf = ImagePsf(
            exposure.psf.array[centre - half:centre + half + 1, centre - half:centre + half + 1],
            alpha=exposure.psf.alpha, effectiveWavelength=exposure.psf.effectiveWavelength)
    return training, field.coadd


def test_assembly_is_the_same_with_one_and_two_threads():
    training, coadd = _simulated()
    results = [DcrAssembleCoadd(DcrAssembleConfig(threads=t, subregionSize=(40, 40)))
               .run(training, coadd=coadd) for t in (1, 2)]
    for k in range(3):
        np.testing.assert_array_equal(results[0].dcrModel[k].array,
                                      results[1].dcrModel[k].array)
    # The default (every core) is the same model too.
    default = DcrAssembleCoadd(DcrAssembleConfig(subregionSize=(40, 40))).run(training,
                                                                             coadd=coadd)
    np.testing.assert_array_equal(default.dcrModel[0].array, results[0].dcrModel[0].array)


def test_threads_default_is_every_core():
    config = DcrAssembleConfig()
    assert config.threads is None
    assert config.resolveThreads() == len(os.sched_getaffinity(0))
    assert DcrAssembleConfig(threads=3).resolveThreads() == 3
    with threadLimit(1):
        assert config.resolveThreads() == 1
        assert DcrAssembleConfig(threads=2).resolveThreads() == 2


@pytest.mark.parametrize("value", [0, -1, 1.5, 2.0, True, "2"])
def test_bad_threads_setting_is_refused(value):
    with pytest.raises(DcrConfigError, match="threads must be an integer >= 1, or None"):
        DcrAssembleConfig(threads=value)
    with pytest.raises(DcrConfigError, match="threads must be an integer >= 1"):
        DcrAssembleConfig().withOverrides(threads=value)


def test_threads_from_a_configuration_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("threads = 2\n")
    assert DcrAssembleConfig.fromToml(path).threads == 2
    path.write_text("threads = 0\n")
    with pytest.raises(DcrConfigError, match=r"threads must be an integer >= 1.*c\.toml"):
        DcrAssembleConfig.fromToml(path)


@pytest.mark.parametrize("value, error", [(0, DcrValueError), (-2, DcrValueError),
                                          (1.0, DcrTypeError), (False, DcrTypeError)])
def test_solver_refuses_bad_threads_before_work(value, error):
    images, variances, bad, shifts = _stack(visits=3)
    with pytest.raises(error, match="threads must be a whole number of threads >= 1"):
        solveDirect(images, variances, bad, lambda j, p: None, maxShift=2.0, threads=value)
