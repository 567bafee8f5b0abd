"""Writing outputs safely: atomic writes, one writer per output, one output-folder guard.

- `atomicPath` and `atomicDirectory` write to a hidden temporary name beside the output and
  put it in place in one step, so a reader finds either the complete old output or the
  complete new one, and a failed run leaves the old one as it was. On Linux a folder is
  swapped with ``renameat2(RENAME_EXCHANGE)``; where the file system cannot exchange, the old
  folder is first renamed aside and the next run on the same output puts it back if the run
  died in between (the window is two renames).
- `outputLock` lets one run write an output at a time: a second concurrent run fails at once
  with a clear message. The lock is an ``fcntl`` lock on a hidden file beside the output,
  removed when the writer is done. A function that writes one output for the whole of its
  run holds that output's lock from its first line with the decorator `holdsOutputLock`.
- The next run on an output removes what a killed run left (hidden temporary files and
  folders), under that lock.
- Every `OSError` while writing (disk full, quota, file size, permissions, a path under a
  file) becomes a `DcrOutputError` naming the output and the cause.
- `guardOutputFolder` refuses a folder that holds anything but an earlier output of the
  same kind, before any work.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import inspect
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .errors import DcrOutputError

__all__ = [
    "atomicPath",
    "atomicDirectory",
    "outputLock",
    "holdsOutputLock",
    "removeLeftovers",
    "exchangePaths",
    "guardOutputFolder",
]

#: Outputs whose lock this process holds, with how many nested holders.
_HELD: dict[str, int] = {}

_Function = TypeVar("_Function", bound=Callable[..., Any])

#: Errors of writing (not of reading an input) that become a `DcrOutputError`.
_WRITE_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG, errno.EACCES,
                      errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR,
                      errno.EIO, errno.ENAMETOOLONG)
    if code is not None
)

#: The "[Errno 27] " of an error's text.
_ERRNO_PREFIX = re.compile(r"\[Errno \d+\]\s*")

#: A short write as numpy reports it ("8649 requested and 1830 written").
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")

# renameat2(2) constants (linux/fs.h, fcntl.h)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _writeError(path: Path, error: OSError) -> DcrOutputError:
    # astropy re-raises a failed write as a bare OSError holding the original's text
    text = _ERRNO_PREFIX.sub("", " ".join(str(error).split()))
    cause = error.strerror or text or type(error).__name__
    if error.errno in (errno.ENOTDIR, errno.EEXIST) and not path.parent.is_dir():
        cause = f"{_firstFileAbove(path)} is a file, not a folder"
    elif error.errno is None and _SHORT_WRITE.search(cause):
        # numpy's tofile (through astropy, which drops the errno) on a full disk or at a
        # file-size limit
        cause = f"the disk is full or a file-size limit was reached ({cause})"
    return _causedError(path, cause)


def _causedError(path: Path, cause: str) -> DcrOutputError:
    """Return ``cannot write <path>: <cause>``, keeping the cause for an outer writer."""
    outputError = DcrOutputError(f"cannot write {path}: {cause}", path=str(path))
    outputError.writeCause = cause  # type: ignore[attr-defined]
    return outputError


def _outputError(final: Path, tmp: Path, error: OSError) -> DcrOutputError | None:
    """Return the error to raise for ``error`` while ``final`` was written at ``tmp``.

    Errors of writing become a `DcrOutputError` naming ``final`` (not the hidden temporary
    path, also when a nested writer named it); errors with a write errno count, and so do
    errors without one: astropy re-raises a failed write (disk full, file-size limit) as a
    bare `OSError`. None: raise ``error`` as it is.
    """
    if isinstance(error, DcrOutputError):
        inner = Path(error.values.get("path", ""))
        if hasattr(error, "writeCause") and (inner == tmp or tmp in inner.parents):
            return _causedError(final, error.writeCause)
        return None
    if error.errno is None or error.errno in _WRITE_ERRNOS:
        return _writeError(final, error)
    return None


def _firstFileAbove(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return path.parent


def _makeParent(path: Path) -> list[Path]:
    """Make the folders above ``path``; return those made, deepest first."""
    made = [parent for parent in path.parents if not parent.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _writeError(path, error) from None
    return made


def exchangePaths(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Exchange two existing paths in one step; return False where the system cannot.

    Uses Linux's ``renameat2(RENAME_EXCHANGE)`` (kernel 3.15, glibc 2.28): at every instant
    each name refers to one complete folder or file.

    Parameters
    ----------
    first, second : str or os.PathLike
        Two existing paths on one file system.

    Returns
    -------
    bool
        True if exchanged; False if this system or file system does not support it.

    Raises
    ------
    OSError
        For any other failure (the paths are then unchanged).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                       _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first))


def _leftoverPattern(final: Path) -> re.Pattern[str]:
    name = re.escape(final.name)
    return re.compile(rf"^\.{name}\.(?:tmp\..+|.+\.tmp|.+\.old)$")


def removeLeftovers(path: str | os.PathLike) -> list[Path]:
    """Remove what killed runs left beside an output; restore an output caught mid-swap.

    Call it only while holding the output's `outputLock`. Hidden temporary files and
    folders of `atomicPath` and `atomicDirectory` for this output are removed; if the
    output itself is missing and an earlier run died between the two renames of a folder
    swap, the old folder is put back first.

    Parameters
    ----------
    path : str or os.PathLike
        The output.

    Returns
    -------
    list of pathlib.Path
        The leftovers removed (or restored).
    """
    final = Path(path)
    if not final.parent.is_dir():
        return []
    pattern = _leftoverPattern(final)
    found = [p for p in final.parent.iterdir() if pattern.match(p.name)]
    olds = sorted((p for p in found if p.name.endswith(".old")), key=lambda p: p.stat().st_mtime)
    if olds and not final.exists() and not final.is_symlink():
        os.replace(olds[-1], final)
    for leftover in found:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.exists() or leftover.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return found


@contextlib.contextmanager
def outputLock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the one-writer lock of an output for the duration of a ``with`` block.

    A second run (another process) asking for the same output's lock fails at once; the
    same process may nest holders. Leftovers of killed runs are removed on entry. Folders
    made above the output to hold the lock file are removed on exit if they are still
    empty (a run that failed leaves no trace).

    Parameters
    ----------
    path : str or os.PathLike
        The output (file or folder) to be written.

    Yields
    ------
    pathlib.Path
        The output's path.

    Raises
    ------
    DcrOutputError
        If another run is writing the same output, or the lock cannot be made.
    """
    final = Path(path).absolute()
    # one key for every spelling of the output (relative, through a symbolic link), so
    # that this process never waits for its own lock
    key = os.path.join(os.path.realpath(final.parent), final.name)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield final
        finally:
            _HELD[key] -= 1
        return
    made = _makeParent(final)
    lockPath = final.parent / f".{final.name}.lock"
    try:
        fd = _acquire(final, lockPath)
    except BaseException:
        _removeEmpty(made)
        raise
    _HELD[key] = 1
    try:
        removeLeftovers(final)
        yield final
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(lockPath)
        os.close(fd)
        _removeEmpty(made)


def _removeEmpty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that are empty; stop at the first that is not."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def holdsOutputLock(parameter: str) -> Callable[[_Function], _Function]:
    """Decorate a function that writes one output: each call holds the output's lock.

    The output is the value of the function's argument ``parameter`` (a path). The lock
    (`outputLock`) is taken before the function's first line and released when it
    returns or raises, so a second concurrent run on the same output fails at once, not
    after its work; and the checks of the output the function makes cannot be outdated
    by another run before it writes. A value that is not a path (None, a wrong type) is
    passed on unlocked, for the function's own checks to refuse.

    Parameters
    ----------
    parameter : str
        The name of the function's parameter that holds the output's path.

    Returns
    -------
    callable
        The decorator.

    Examples
    --------
    >>> @holdsOutputLock("outDir")
    ... def writeThings(outDir, overwrite=False):
    ...     ...
    """

    def decorate(function: _Function) -> _Function:
        signature = inspect.signature(function)
        if parameter not in signature.parameters:
            raise TypeError(f"{function.__qualname__} has no parameter {parameter!r}")

        @functools.wraps(function)
        def locked(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return function(*args, **kwargs)  # which raises the TypeError
            bound.apply_defaults()
            value = bound.arguments.get(parameter)
            if not isinstance(value, str | os.PathLike) or not os.fspath(value):
                return function(*args, **kwargs)
            with outputLock(value):
                return function(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate


def _acquire(final: Path, lockPath: Path) -> int:
    """Open and lock ``lockPath``; retry if another writer removed it meanwhile."""
    while True:
        try:
            fd = os.open(lockPath, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as error:
            raise _writeError(final, error) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DcrOutputError(
                f"another dcrmodel run is writing {final} right now (it holds {lockPath.name}); "
                "wait for it to finish or choose another output",
                path=str(final),
            ) from None
        try:
            current = os.stat(lockPath)
        except FileNotFoundError:
            os.close(fd)
            continue
        held = os.fstat(fd)
        if (held.st_ino, held.st_dev) == (current.st_ino, current.st_dev):
            return fd
        os.close(fd)


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

    Raises
    ------
    DcrOutputError
        If another run writes the same file, or writing fails (disk full, permissions,
        a path under a file...): the earlier file is then as it was.
    """
    final = Path(path)
    with outputLock(final):
        try:
            fd, name = tempfile.mkstemp(
                prefix=f".{final.name}.tmp.", suffix=final.suffix if suffix is None else suffix,
                dir=final.parent,
            )
        except OSError as error:
            raise _writeError(final, error) from None
        os.close(fd)
        tmp = Path(name)
        try:
            # mkstemp makes owner-only files; give the output the permissions of open().
            os.chmod(tmp, 0o666 & ~_umask())
            yield tmp
            os.replace(tmp, final)
        except OSError as error:
            replacement = _outputError(final, tmp, error)
            if replacement is None:
                raise
            raise replacement from error
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.contextmanager
def atomicDirectory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; swap it into place on success.

    An existing directory at ``path`` is replaced only once the new one is complete, by
    exchanging the two in one step where the system can (see the module notes).

    Parameters
    ----------
    path : str or os.PathLike
        Final location of the directory.

    Yields
    ------
    tmp : pathlib.Path
        The directory the caller fills. It is removed if the block raises.

    Raises
    ------
    DcrOutputError
        If another run writes the same folder, if ``path`` is a file, or writing fails:
        the earlier folder is then as it was.
    """
    final = Path(path)
    with outputLock(final):
        if final.exists() and not final.is_dir():
            raise DcrOutputError(
                f"cannot write the folder {final}: a file of that name exists", path=str(final)
            )
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp",
                                        dir=final.parent))
            os.chmod(tmp, 0o777 & ~_umask())
        except OSError as error:
            raise _writeError(final, error) from None
        try:
            yield tmp
            _swapIntoPlace(tmp, final)
        except OSError as error:
            replacement = _outputError(final, tmp, error)
            if replacement is None:
                raise
            raise replacement from error
        finally:
            # After a swap ``tmp`` holds the old folder; an interrupt while removing it
            # leaves a leftover that the next run removes, never a partial output.
            with contextlib.suppress(KeyboardInterrupt):
                shutil.rmtree(tmp, ignore_errors=True)


def _swapIntoPlace(tmp: Path, final: Path) -> None:
    """Put the complete folder ``tmp`` at ``final``; the old folder ends up at ``tmp``."""
    if not final.exists():
        os.replace(tmp, final)
        return
    if exchangePaths(tmp, final):
        return
    # No exchange on this file system: two renames, recovered by removeLeftovers.
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
    os.rmdir(old)
    os.replace(final, old)
    os.replace(tmp, final)
    os.replace(old, tmp)


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
