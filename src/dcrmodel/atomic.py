"""Writing outputs safely: atomic writes, and one guard for output folders.

A failed write leaves earlier outputs as they were (`atomicPath`, `atomicDirectory`), and
no command writes into a folder that holds anything but its own earlier output
(`guardOutputFolder`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import DcrOutputError

__all__ = ["atomicPath", "atomicDirectory", "guardOutputFolder"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomicPath(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    Parameters
    ----------
    path : str or os.PathLike
        Final location of the file.
    suffix : str, optional
        Suffix of the temporary file (writers such as matplotlib choose the format
        from it); defaults to the suffix of ``path``.

    Yields
    ------
    tmp : pathlib.Path
        Where the caller writes. It is removed if the block raises.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{final.name}.tmp.", suffix=final.suffix if suffix is None else suffix,
        dir=final.parent,
    )
    os.close(fd)
    tmp = Path(name)
    # mkstemp makes owner-only files; give the output the permissions of a plain open().
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomicDirectory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; swap it into place on success.

    An existing directory at ``path`` is replaced only once the new one is complete.

    Parameters
    ----------
    path : str or os.PathLike
        Final location of the directory.

    Yields
    ------
    tmp : pathlib.Path
        The directory the caller fills. It is removed if the block raises.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.rmdir(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def guardOutputFolder(
    path: str | os.PathLike,
    overwrite: bool,
    what: str,
    isOwn: Callable[[Path], bool],
    foreignFiles: Callable[[Path], list[str]] | None = None,
) -> Path:
    """Refuse an output folder that holds anything but an earlier output of the same kind.

    The one guard of every command that writes a folder: call it before any work.

    Parameters
    ----------
    path : str or os.PathLike
        The folder to write (it need not exist).
    overwrite : bool
        Whether an earlier output of the same kind there may be replaced.
    what : str
        What is written, for the messages (``"model"``, ``"simulation"``, ...).
    isOwn : callable
        ``isOwn(folder)`` tells whether a non-empty folder holds an earlier output of this
        kind (for example by its summary or manifest file).
    foreignFiles : callable, optional
        ``foreignFiles(folder)`` lists the files in a folder of ours that the earlier
        output did not write; such a folder is refused too.

    Returns
    -------
    path : pathlib.Path
        The folder.

    Raises
    ------
    DcrOutputError
        If ``path`` is a file; if the folder holds other files; if it holds an earlier
        output and other files; or if it holds an earlier output and ``overwrite`` is
        False. Hidden entries (names starting with ``.``, such as leftovers of
        interrupted atomic writes) are not counted.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise DcrOutputError(
            f"the output path {folder} is a file, not a folder; choose a folder for the {what}",
            path=str(folder),
        )
    if not folder.exists():
        return folder
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    if not entries:
        return folder
    if not isOwn(folder):
        raise DcrOutputError(
            f"the output folder {folder} already holds other files ({', '.join(entries[:5])}),"
            f" not a dcrmodel {what}; refusing to touch them, choose an empty folder or a new "
            "one",
            path=str(folder),
        )
    foreign = foreignFiles(folder) if foreignFiles is not None else []
    if foreign:
        raise DcrOutputError(
            f"the output folder {folder} holds a dcrmodel {what} and other files "
            f"({', '.join(foreign[:5])}); refusing to replace them, choose an empty folder or a "
            "new one",
            path=str(folder),
            foreign=foreign[:5],
        )
    if not overwrite:
        raise DcrOutputError(
            f"the output folder {folder} already holds another run's {what}; pass "
            "--overwrite (overwrite=True) to replace it, or choose another folder",
            path=str(folder),
        )
    return folder
