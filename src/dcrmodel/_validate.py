"""Checks of the plain values that dcrmodel's objects are built from.

The one home for argument validation shared across the package: each function turns a
value into a Python number of the kind wanted, or raises a `dcrmodel.errors` exception
that names the argument, its unit and what to do. A `bool` is never accepted as a number.
Lists of paths (`asPathList`) and TOML files (`readTomlFile`) are checked here too.
"""

from __future__ import annotations

import codecs
import math
import numbers
import operator
import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DcrConfigError, DcrOutputError, DcrTypeError, DcrValueError

__all__ = [
    "asFiniteFloat",
    "asPositiveFloat",
    "asInt",
    "asThreadCount",
    "isNumber",
    "asPathList",
    "refuseFolders",
    "refuseOverwritingInputs",
    "refuseExistingOutput",
    "readTomlFile",
]

#: Byte-order marks of the encodings that TOML files must not use (TOML is UTF-8).
_OTHER_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}


def isNumber(value: Any) -> bool:
    """Return whether ``value`` is a real number and not a `bool`."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def asFiniteFloat(value: Any, name: str, unit: str) -> float:
    """Return ``value`` as a finite float, or raise an error naming ``name``.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        The argument's name, used in the message.
    unit : str
        The unit the number is in, used in the message.

    Raises
    ------
    DcrTypeError
        If ``value`` is not a number (a `bool` is not one).
    DcrValueError
        If it is not finite.
    """
    if isinstance(value, (bool, np.bool_)):
        raise DcrTypeError(f"{name} must be a number in {unit}, not a bool", **{name: value})
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value}) from None
    if not math.isfinite(out):
        raise DcrValueError(f"{name} must be finite ({unit})", **{name: value})
    return out


def asPositiveFloat(value: Any, name: str, unit: str, allowZero: bool = False) -> float:
    """Return ``value`` as a positive (or, with ``allowZero``, non-negative) finite float.

    Raises
    ------
    DcrTypeError
        If ``value`` is not a number (a `bool` is not one).
    DcrValueError
        If it is not finite, or negative, or zero without ``allowZero``.
    """
    if isinstance(value, (bool, np.bool_)):
        raise DcrTypeError(f"{name} must be a number in {unit}, not a bool", **{name: value})
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DcrTypeError(f"{name} must be a number in {unit}", **{name: value}) from None
    if not math.isfinite(out) or out < 0.0 or (out == 0.0 and not allowZero):
        relation = "non-negative" if allowZero else "positive"
        raise DcrValueError(
            f"{name} must be {relation} and finite ({unit}); got {out:g}", **{name: value}
        )
    return out


def asInt(value: Any, name: str) -> int:
    """Return ``value`` as a Python int, or raise `DcrTypeError` if it is not whole.

    Whole-valued floats (``2.0``, numpy floats) are accepted; fractions and `bool` are not.
    """
    if isinstance(value, (bool, np.bool_)):
        raise DcrTypeError(f"{name} must be an integer, not a bool", **{name: value})
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise DcrTypeError(
        f"{name} must be a whole number of pixels; round it explicitly",
        **{name: value},
    )


def asThreadCount(value: Any, name: str = "threads") -> int:
    """Return a number of threads as a Python int >= 1, or raise naming ``name``.

    Parameters
    ----------
    value : int
        The number of threads: a whole number >= 1 (numpy integers accepted; `bool`,
        fractions, whole-valued floats and text are not).
    name : str, optional
        The argument's name, used in the message.

    Returns
    -------
    int
        ``value``.

    Raises
    ------
    DcrTypeError
        If ``value`` is not an integer.
    DcrValueError
        If it is below 1.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise DcrTypeError(
            f"{name} must be a whole number of threads >= 1 (or None for every core)",
            **{name: value},
        )
    if value < 1:
        raise DcrValueError(
            f"{name} must be a whole number of threads >= 1 (or None for every core)",
            **{name: int(value)},
        )
    return int(value)


def asPathList(value: Any, name: str, what: str = "exposure files") -> list[Path]:
    """Return a list of paths, refusing one path where a list of them is wanted.

    A `str` is a sequence of characters: iterated, ``"visit.fits"`` would become the
    paths ``v``, ``i``, ``s``, ... Refused, the message names the fix.

    Parameters
    ----------
    value : sequence of str or os.PathLike
        The paths.
    name : str
        The argument's name, used in the message.
    what : str, optional
        What the paths are, used in the message.

    Returns
    -------
    list of pathlib.Path
        The paths.

    Raises
    ------
    DcrTypeError
        If ``value`` is one path (a `str`, `bytes` or `os.PathLike`), is not iterable, or
        holds something that is not a path.

    Examples
    --------
    >>> [str(p) for p in asPathList(["a.fits", "b.fits"], "paths")]
    ['a.fits', 'b.fits']
    >>> asPathList("a.fits", "paths")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dcrmodel.errors.DcrTypeError: paths must be a list of exposure files, not one path; ...
    """
    if isinstance(value, str | bytes | os.PathLike):
        raise DcrTypeError(
            f"{name} must be a list of {what}, not one path; for one file pass [{name}]",
            **{name: os.fsdecode(value)},
        )
    try:
        items = list(value)
    except TypeError:
        raise DcrTypeError(f"{name} must be a list of {what}",
                           **{name: type(value).__name__}) from None
    bad = [type(item).__name__ for item in items if not isinstance(item, str | os.PathLike)]
    if bad:
        raise DcrTypeError(f"{name} must be a list of {what} (paths), not of {bad[0]}",
                           **{name: bad[0]})
    return [Path(item) for item in items]


def refuseFolders(
    paths: Iterable[str | os.PathLike | None], what: str = "an exposure file"
) -> None:
    """Refuse folders given where files are wanted, before any work.

    Said as it is: a folder given as a visit exists, and calling it "not found" would send
    the user looking for a missing file.

    Parameters
    ----------
    paths : iterable of str, os.PathLike or None
        The paths given (None entries are skipped).
    what : str, optional
        What each path should be, used in the message.

    Raises
    ------
    DcrValueError
        If a path is a folder; the message names the first (and counts the others).
    """
    folders = [os.fspath(p) for p in paths if p is not None and Path(p).is_dir()]
    if folders:
        more = f" (and {len(folders) - 1} more folder(s))" if len(folders) > 1 else ""
        raise DcrValueError(
            f"{folders[0]} is a folder, not {what}{more}; give the file itself",
            folders=folders[:5],
        )


def refuseExistingOutput(path: str | os.PathLike, overwrite: bool) -> None:
    """Refuse an output file that is a folder, or that exists without ``overwrite``.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    overwrite : bool
        Whether an existing file may be replaced (``--overwrite``).

    Raises
    ------
    DcrOutputError
        Naming the path and the fix.
    """
    out = Path(path)
    if out.is_dir():
        raise DcrOutputError(f"{out} is a folder; give a file name ending in .fits",
                             path=str(out))
    if out.exists() and not overwrite:
        raise DcrOutputError(f"{out} exists; pass --overwrite to replace it", path=str(out))


def refuseOverwritingInputs(
    output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]
) -> None:
    """Refuse an output that is one of the inputs, or lies inside an input folder.

    With ``--overwrite``, ``dcrmodel template MODEL visit.fits --out visit.fits`` would
    replace the science exposure with its template, and an output inside a model folder
    would change the model. Checked before any work, for any spelling of the paths
    (relative, through links).

    Parameters
    ----------
    output : str or os.PathLike
        The output file.
    inputs : iterable of str, os.PathLike or None
        The input files and folders (None entries and missing paths are skipped).

    Raises
    ------
    DcrOutputError
        Naming the output and the input.
    """
    out = Path(output)
    resolved = Path(os.path.realpath(out))
    for source in inputs:
        if source is None or not Path(source).exists():
            continue
        given = Path(os.path.realpath(source))
        if resolved == given or (out.exists() and os.path.samefile(out, source)):
            raise DcrOutputError(
                f"the output {out} is the input {source} itself; write the output elsewhere",
                path=str(out),
            )
        if given.is_dir() and given in resolved.parents:
            raise DcrOutputError(
                f"the output {out} is inside the input folder {source}; write the output "
                "elsewhere", path=str(out),
            )


def readTomlFile(path: str | os.PathLike, what: str = "configuration file") -> dict[str, Any]:
    """Read a TOML file, with a one-line error naming the file for every way it can fail.

    TOML files are UTF-8. A UTF-8 byte-order mark, which some editors write at the start,
    is skipped; a file in another encoding (UTF-16, Latin-1, ...) is refused with the fix.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str, optional
        What the file is, used in the messages (``"configuration file"``, ``"plan"``).

    Returns
    -------
    dict
        The file's tables and keys.

    Raises
    ------
    DcrConfigError
        If the file cannot be read (missing, a folder, permissions), is not UTF-8 text, or
        is not valid TOML; the message names the file and, for the last two, the line.
    """
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise DcrConfigError(f"cannot read the {what}: {exc.strerror or exc}",
                             path=source) from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    for bom, encoding in _OTHER_BOMS.items():
        if raw.startswith(bom):
            raise DcrConfigError(
                f"the {what} is {encoding} text, but TOML files are UTF-8; save it as UTF-8",
                path=source,
            )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DcrConfigError(
            f"the {what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}), but "
            "TOML files are UTF-8; save it as UTF-8",
            path=source,
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DcrConfigError(f"the {what} is not valid TOML: {exc}", path=source) from None
