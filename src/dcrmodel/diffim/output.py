"""A difference image and its detections, written and read as one pair.

``dcrmodel diff`` writes a difference exposure ``D.fits`` and its detections ``D.json``
beside it. The two are one output:

- `writeDifference` writes both completely under temporary names, then puts them in
  place (the image first, then the detections), holding the lock of each (one writer);
  a run that fails or is interrupted before that leaves the earlier pair as it was.
- Both carry one identity, a digest of the new pair's content (``DCR-DIFF`` in the
  image's HDU 0, ``"differenceId"`` in the JSON), so that the instant between the two
  renames, or a run killed there, can never pass a difference image off with another
  run's detections: `readDifference` refuses a pair whose identities differ, and
  `checkDifferenceOutput` tells the next run what it found (a lone image, lone
  detections, or a mismatched pair) and that ``--overwrite`` replaces it.
- Pairs written before identities existed (neither file has one) are read as before.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from astropy.io import fits

from ..atomic import atomicPath
from ..errors import DcrFitsError, DcrOutputError, DcrTypeError
from ..fits import readExposure, writeExposure
from ..image import Exposure, pixelDigest

__all__ = [
    "DIFFERENCE_ID_KEY",
    "detectionsPath",
    "checkDifferenceOutput",
    "writeDifference",
    "readDifference",
]

#: The key of the pair's identity: in the difference image's HDU 0 and in the JSON.
DIFFERENCE_ID_KEY = "DCR-DIFF"

#: The JSON field holding the identity.
_JSON_ID = "differenceId"


def detectionsPath(path: str | os.PathLike) -> Path:
    """Return the detections file of a difference image: ``D.json`` beside ``D.fits``."""
    return Path(os.fspath(path)).with_suffix(".json")


def _imageIdentity(path: Path) -> str | None:
    try:
        return fits.getheader(path, 0).get(DIFFERENCE_ID_KEY)
    except (OSError, ValueError, TypeError, IndexError):
        return "unreadable"


def _jsonIdentity(path: Path) -> str | None:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unreadable"
    return content.get(_JSON_ID) if isinstance(content, dict) else "unreadable"


def _pairState(image: Path, detections: Path) -> str | None:
    """Describe a pair that is not whole (None when it is, or when neither file exists)."""
    hasImage, hasDetections = image.exists(), detections.exists()
    if hasImage and not hasDetections:
        return f"{image} exists without its detections {detections.name}"
    if hasDetections and not hasImage:
        return f"{detections} exists without its difference image {image.name}"
    if not hasImage:
        return None
    one, other = _imageIdentity(image), _jsonIdentity(detections)
    if one != other:
        return (f"{image} and {detections.name} are not one pair (their identities "
                f"{DIFFERENCE_ID_KEY} differ)")
    return None


def checkDifferenceOutput(path: str | os.PathLike, overwrite: bool) -> tuple[Path, Path]:
    """Refuse to replace an earlier difference pair without ``overwrite``, before any work.

    Parameters
    ----------
    path : str or os.PathLike
        The difference image ``D.fits`` (the detections go to ``D.json``).
    overwrite : bool
        Whether an earlier pair (whole or not) may be replaced.

    Returns
    -------
    image, detections : pathlib.Path
        The two files.

    Raises
    ------
    DcrOutputError
        If either file exists and ``overwrite`` is False; the message says whether the
        pair is whole, or what an interrupted earlier run left (a lone file, or files of
        two runs); if either path is a folder.
    """
    image = Path(os.fspath(path))
    detections = detectionsPath(image)
    for each in (image, detections):
        if each.is_dir():
            raise DcrOutputError(f"{each} is a folder; give a file name ending in .fits for "
                                 "the difference image", path=str(each))
    if overwrite or not (image.exists() or detections.exists()):
        return image, detections
    state = _pairState(image, detections)
    if state is not None:
        raise DcrOutputError(
            f"{state}: an earlier run was stopped while writing them; pass --overwrite "
            "(overwrite=True) to replace them with a whole pair", path=str(image),
        )
    raise DcrOutputError(f"{image} and {detections.name} exist; pass --overwrite to replace "
                         "them", path=str(image))


def writeDifference(
    difference: Exposure, summary: dict[str, Any], path: str | os.PathLike
) -> tuple[Path, Path]:
    """Write a difference image and its detections as one pair (module notes).

    Parameters
    ----------
    difference : `dcrmodel.image.Exposure`
        The difference exposure (`DifferenceResult.difference`).
    summary : dict
        What the detections file holds (JSON-ready: `DifferenceResult.toDict` and the
        inputs' names); ``"differenceId"`` is added.
    path : str or os.PathLike
        The difference image ``D.fits``; the detections go to ``D.json``.

    Returns
    -------
    image, detections : pathlib.Path
        The two files.

    Raises
    ------
    DcrTypeError
        If ``difference`` is not an `Exposure` or ``summary`` not a dict.
    DcrOutputError
        If either file cannot be written (the earlier pair is then as it was).
    """
    if not isinstance(difference, Exposure):
        raise DcrTypeError("difference must be a dcrmodel Exposure",
                           difference=type(difference).__name__)
    if not isinstance(summary, dict):
        raise DcrTypeError("summary must be a dict", summary=type(summary).__name__)
    image = Path(os.fspath(path))
    detections = detectionsPath(image)
    body = json.dumps(summary, indent=1, sort_keys=False)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(pixelDigest(difference.image.array).encode())
    digest.update(pixelDigest(difference.mask.array).encode())
    digest.update(body.encode())
    identity = digest.hexdigest()
    metadata = difference.metadata.copy()
    metadata[DIFFERENCE_ID_KEY] = (identity, "pair identity (digest)")
    labelled = Exposure(difference.maskedImage, wcs=difference.wcs, psf=difference.psf,
                        visitInfo=difference.visitInfo, filter=difference.filter,
                        photoCalib=difference.photoCalib, metadata=metadata)
    text = json.dumps({_JSON_ID: identity, **summary}, indent=1)
    with atomicPath(detections) as detectionsTmp, atomicPath(image) as imageTmp:
        writeExposure(labelled, imageTmp)
        detectionsTmp.write_text(text, encoding="utf-8")
        # leaving the blocks renames the image into place, then the detections
    return image, detections


def readDifference(path: str | os.PathLike) -> tuple[Exposure, dict[str, Any]]:
    """Read a difference image and its detections, checked to be one pair.

    Parameters
    ----------
    path : str or os.PathLike
        The difference image ``D.fits``.

    Returns
    -------
    difference : `dcrmodel.image.Exposure`
        The difference exposure.
    detections : dict
        The detections file's content.

    Raises
    ------
    FileNotFoundError
        If either file is missing.
    DcrFitsError
        If the detections file is not JSON, or the two files are not one pair (their
        identities differ, or only one has one).
    """
    image = Path(os.fspath(path))
    detections = detectionsPath(image)
    for each in (image, detections):
        if not each.is_file():
            raise FileNotFoundError(f"no such file: {each} (a difference pair is {image.name} "
                                    f"and {detections.name})")
    try:
        content = json.loads(detections.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DcrFitsError(f"{detections} is not a detections file ({error})",
                           path=str(detections)) from None
    if not isinstance(content, dict):
        raise DcrFitsError(f"{detections} is not a detections file (not a JSON object)",
                           path=str(detections))
    difference = readExposure(image)
    one, other = difference.metadata.get(DIFFERENCE_ID_KEY), content.get(_JSON_ID)
    if one != other:
        raise DcrFitsError(
            f"{image} and {detections.name} are not one pair (identities {one} and {other}): "
            "an earlier run was stopped between writing them; run 'dcrmodel diff' again "
            "with --overwrite", path=str(image),
        )
    return difference, content
