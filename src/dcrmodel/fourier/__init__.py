"""Fourier-space tools: transfer functions of shifts and smears, padding, the template engine."""

from .engine import FourierTemplateEngine, applyTransfer, fourierShift
from .padding import (
    allowedShift,
    cropFromPadded,
    fillBadPixels,
    maxShiftOf,
    paddedShape,
    padToShape,
)
from .transfer import (
    TRANSFER_MODES,
    TransferRows,
    dcrShiftArray,
    frequencyGrid,
    hermitianize,
    shiftTransfer,
    smearTransfer,
    splitTransfer,
    subfilterTransfer,
    transferRows,
    visitTransfers,
)

__all__ = [
    "TRANSFER_MODES",
    "frequencyGrid",
    "shiftTransfer",
    "smearTransfer",
    "splitTransfer",
    "subfilterTransfer",
    "visitTransfers",
    "TransferRows",
    "transferRows",
    "dcrShiftArray",
    "hermitianize",
    "maxShiftOf",
    "paddedShape",
    "allowedShift",
    "padToShape",
    "cropFromPadded",
    "applyTransfer",
    "fourierShift",
    "fillBadPixels",
    "FourierTemplateEngine",
]
