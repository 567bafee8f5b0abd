"""Detector defects in simulated visits: a dead column, cosmic rays, a saturated core.

`applyDefects` corrupts a visit's pixels as real detectors do and flags them in its mask
(``BAD``, ``CR`` and ``SAT``), recording what it did for the manifest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from .config import SimulationConfig
from .sources import Source

__all__ = ["applyDefects"]


def _segmentPixels(x0: float, y0: float, length: float, angle: float) -> list[tuple[int, int]]:
    steps = max(int(math.ceil(length * 2)), 1)
    pixels = []
    for t in np.linspace(0.0, length, steps + 1):
        p = (int(round(y0 + t * math.sin(angle))), int(round(x0 + t * math.cos(angle))))
        if p not in pixels:
            pixels.append(p)
    return pixels


def applyDefects(
    image: np.ndarray,
    mask: Any,
    truth: np.ndarray,
    bbox: Any,
    config: SimulationConfig,
    brightest: Source | None,
    avoid: list[tuple[float, float]],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Corrupt pixels like real detectors do and flag them: BAD, CR and SAT.

    A dead column (partial or whole) reads no charge (the subtracted sky makes it
    negative); cosmic-ray tracks of 1-8 pixels add 500-20000 counts; the brightest star's
    core is clipped at a full-well level set to 45 % of its noiseless peak, and the excess
    charge bleeds up and down its columns.

    Parameters
    ----------
    image : numpy.ndarray
        The visit's image (counts, sky subtracted), corrupted in place.
    mask : dcrmodel.image.Mask
        Its mask; the corrupted pixels are flagged in place.
    truth : numpy.ndarray
        The noiseless image (counts): sets the saturation level.
    bbox : dcrmodel.image.Box
        The field (parent pixels).
    config : SimulationConfig
        Sky level (counts per pixel) and read noise (counts).
    brightest : Source or None
        The star whose core saturates.
    avoid : list of (float, float)
        Parent positions ``(x, y)`` (pixels) the column and cosmic rays keep away from.
    rng : numpy.random.Generator
        The simulation's random generator.

    Returns
    -------
    dict
        The manifest's record: ``badColumns``, ``cosmicRays``, ``saturatedSource`` and,
        when a core saturated, ``saturationLevel`` (counts).
    """
    ny, nx = image.shape
    bad = mask.getPlaneBitMask("BAD")
    crBit = mask.getPlaneBitMask("CR")
    satBit = mask.getPlaneBitMask("SAT")
    record: dict[str, Any] = {"badColumns": [], "cosmicRays": 0, "saturatedSource": None}
    avoidLocal = [(ax - bbox.minX, ay - bbox.minY) for ax, ay in avoid]

    # A dead column.
    for _attempt in range(100):
        column = int(rng.integers(4, nx - 4))
        if all(abs(column - ax) > 6 for ax, _ in avoidLocal):
            break
    start = int(rng.integers(0, ny // 2)) if rng.random() < 0.5 else 0
    image[start:, column] = -config.skyLevel * rng.uniform(0.9, 1.0) + rng.normal(
        0.0, config.readNoise + 1.0, ny - start
    )
    mask.array[start:, column] |= bad
    record["badColumns"].append({"x": column + bbox.minX, "yStart": start + bbox.minY})

    # Cosmic rays.
    numRays = int(rng.integers(4, 10))
    for _ray in range(numRays):
        for _attempt in range(100):
            cx, cy = rng.uniform(2, nx - 3), rng.uniform(2, ny - 3)
            if all(math.hypot(cx - ax, cy - ay) > 8 for ax, ay in avoidLocal):
                break
        track = _segmentPixels(cx, cy, rng.uniform(0.0, 8.0), rng.uniform(0.0, 2 * math.pi))
        for py, px in track:
            if 0 <= py < ny and 0 <= px < nx:
                image[py, px] += rng.uniform(500.0, 20000.0)
                mask.array[py, px] |= crBit
    record["cosmicRays"] = numRays

    # A saturated core with its bleed trail.
    if brightest is not None:
        py = int(round(brightest.y)) - bbox.minY
        px = int(round(brightest.x)) - bbox.minX
        if 0 <= py < ny and 0 <= px < nx and truth[py, px] > 0:
            level = 0.45 * float(truth[py, px])
            above = image >= level
            labels, _ = ndimage.label(above)
            region = labels == labels[py, px] if above[py, px] else np.zeros_like(above)
            if region.any():
                excess = float((image[region] - level).sum())
                image[region] = level
                mask.array[region] |= satBit
                columns = np.flatnonzero(region.any(axis=0))
                share = excess / (2.0 * columns.size)
                for col in columns:
                    rows = np.flatnonzero(region[:, col])
                    for direction, row in ((-1, rows.min() - 1), (1, rows.max() + 1)):
                        charge = share
                        while charge > 0.0 and 0 <= row < ny:
                            need = level - image[row, col]
                            if need > charge:
                                image[row, col] += charge
                                charge = 0.0
                            else:
                                image[row, col] = level
                                charge -= max(need, 0.0)
                            mask.array[row, col] |= satBit
                            row += direction
                record["saturatedSource"] = brightest.id
                record["saturationLevel"] = level
    return record
