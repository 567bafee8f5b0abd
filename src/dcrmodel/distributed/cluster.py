"""Dask clusters: starting or connecting to one (`clusterClient`) and checking its workers.

Scheduler address and timeout
-----------------------------
``scheduler`` is a Dask scheduler address (``tcp://host:8786``), checked for its form
before any connection (`checkSchedulerAddress`). Connecting gives up
after ``timeout`` seconds (`SCHEDULER_TIMEOUT`, 10 s), and so does waiting for the first
worker; both raise `dcrmodel.errors.DcrValueError` naming the address. Every worker must
import the same dcrmodel version as the driver: this is checked before any work
(`checkWorkers`). A local cluster (``workers=N``) starts its workers as new Python
processes, which import the calling script again: a script that asks for one must keep
its work under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from typing import Any

from .. import _version
from ..errors import DcrValueError
from ..physics import offlineIers

__all__ = ["SCHEDULER_TIMEOUT", "clusterClient", "checkWorkers", "checkSchedulerAddress"]

#: Seconds to wait for a scheduler to answer, and for its first worker, before giving up.
SCHEDULER_TIMEOUT = 10.0

_EXTRA_HINT = "install the optional extra: pip install 'dcrmodel[distributed]'"

#: Address schemes of Dask's communication back ends (`distributed.comm`).
_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")


def importDistributed() -> Any:
    """Import dask.distributed, or raise an ImportError naming the extra to install.

    Returns
    -------
    module
        The ``distributed`` package.

    Raises
    ------
    ImportError
        If it is not installed; the message names the extra to install.
    """
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"running on a Dask cluster needs dask.distributed; {_EXTRA_HINT}"
        ) from exc
    return distributed


def _workerVersion() -> str:
    """Return the dcrmodel version that a worker imports."""
    return _version.__version__


def checkWorkers(client: Any) -> dict[str, str]:
    """Check that every worker of a cluster imports this process's dcrmodel version.

    Parameters
    ----------
    client : distributed.Client
        A connected client.

    Returns
    -------
    dict
        Worker address -> dcrmodel version.

    Raises
    ------
    DcrValueError
        If the cluster has no worker, a worker lacks dcrmodel, or imports another version;
        the message names the workers.
    """
    versions = _checkWorkers(client, "dcrmodel", _version.__version__)
    client.run(_warmUp)
    return versions


def _checkWorkers(client: Any, distribution: str, expected: str) -> dict[str, str]:
    import importlib.metadata

    installed = client.run(importlib.metadata.version, distribution, on_error="return")
    if not installed:
        raise DcrValueError(
            "the Dask cluster has no worker; start workers for its scheduler",
            scheduler=schedulerAddress(client),
        )
    absent = sorted(addr for addr, v in installed.items() if isinstance(v, BaseException))
    if absent:
        raise DcrValueError(
            f"{len(absent)} of {len(installed)} Dask worker(s) do not have {distribution} "
            f"installed ({', '.join(absent[:5])}); install {distribution}=={expected} in the "
            "workers' environment",
            workers=absent[:5],
        )
    if distribution == "dcrmodel":
        versions = client.run(_workerVersion, on_error="return")
    else:
        versions = installed
    problems = {}
    for addr, version in versions.items():
        if isinstance(version, BaseException):
            problems[addr] = f"cannot import it ({type(version).__name__}: {version})"
        elif version != expected:
            problems[addr] = f"version {version}"
    if problems:
        listed = "; ".join(f"{addr}: {text}" for addr, text in sorted(problems.items())[:5])
        raise DcrValueError(
            f"the Dask workers must run {distribution} {expected} like this process; "
            f"{listed}. Install {distribution}=={expected} in the workers' environment",
            expected=expected,
        )
    return dict(versions)


def _warmUp() -> bool:
    """Import what the tasks use and prime astropy's sky-to-AltAz transform on a worker.

    The first transform of a process loads tables (about a second); done here, it is not
    counted in the first task's time and memory.
    """
    import importlib

    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    for name in ("dcrmodel.assemble", "dcrmodel.model", "dcrmodel.fits", "scipy.ndimage",
                 "scipy.fft"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    frame = AltAz(obstime=Time("2026-01-01T00:00:00", scale="utc"),
                  location=EarthLocation.from_geodetic(0 * u.deg, 0 * u.deg, 0 * u.m))
    with offlineIers(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SkyCoord(10 * u.deg, 10 * u.deg, frame="icrs").transform_to(frame)
    return True


def checkSchedulerAddress(scheduler: Any) -> str:
    """Refuse a scheduler address that no Dask scheduler can have, before connecting.

    A malformed address makes ``distributed.Client`` fail half-built; the client's
    destructor then waits 20 s to close a connection that never was, and prints a
    traceback. Checked here, the address gets a one-line error at once.

    Parameters
    ----------
    scheduler : str
        ``[scheme://]host:port``; the schemes are Dask's (``tcp``, ``tls``, ``ws``,
        ``wss``, ``ucx``, ``inproc``), ``tcp`` when none is given.

    Returns
    -------
    str
        The address, unchanged.

    Raises
    ------
    DcrValueError
        If it is not a string, is empty, has an unknown scheme, or (for the network
        schemes) lacks a host or a port in 1-65535, or holds spaces.

    Examples
    --------
    >>> checkSchedulerAddress("tcp://127.0.0.1:8786")
    'tcp://127.0.0.1:8786'
    """
    example = "e.g. tcp://host:8786"
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise DcrValueError(f"the scheduler must be a Dask scheduler address, {example}",
                            scheduler=scheduler)
    scheme, _, location = scheduler.rpartition("://")
    scheme = scheme or "tcp"
    if scheme not in _SCHEMES:
        raise DcrValueError(
            f"{scheduler!r} is not a Dask scheduler address: unknown scheme {scheme!r} "
            f"(Dask's are {', '.join(_SCHEMES)}), {example}",
            scheduler=scheduler,
        )
    if scheme in ("ucx", "inproc"):
        return scheduler
    host, colon, port = location.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    problem = None
    if any(c.isspace() for c in location):
        problem = "it holds a space"
    elif "/" in location:
        problem = "it holds a slash after the scheme"
    elif not colon:
        problem = "it has no port number"
    elif not host:
        problem = "it has no host"
    elif not port.isdigit() or not 1 <= int(port) <= 65535:
        problem = "it has no port number in 1-65535"
    if problem:
        raise DcrValueError(
            f"{scheduler!r} is not a Dask scheduler address ({problem}); give "
            f"[scheme://]host:port, {example}",
            scheduler=scheduler,
        )
    return scheduler


def schedulerAddress(client: Any) -> str | None:
    """Return the address of a client's scheduler (None if it cannot be told).

    Parameters
    ----------
    client : distributed.Client
        A client.

    Returns
    -------
    str or None
        The scheduler's address, e.g. ``tcp://host:8786``.
    """
    with contextlib.suppress(Exception):
        return client.scheduler.address
    return None


@contextlib.contextmanager
def clusterClient(
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    timeout: float = SCHEDULER_TIMEOUT,
) -> Iterator[Any]:
    """Yield a checked Dask client, or None for a run in this process.

    Parameters
    ----------
    workers : int, optional
        Start a `distributed.LocalCluster` of this many worker processes, one thread each
        (closed on exit).
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) to connect to (the connection
        is closed on exit, the cluster is left running).
    client : distributed.Client, optional
        A client to use as it is (left open).
    timeout : float, optional
        Seconds to wait for the scheduler to answer and for its first worker.

    Yields
    ------
    distributed.Client or None
        None when neither of the three is given.

    Raises
    ------
    DcrValueError
        For more than one of ``workers``, ``scheduler`` and ``client``, a number of workers
        below 1, an unreachable scheduler, a cluster without workers, or workers without
        this dcrmodel version.
    ImportError
        If dask.distributed is not installed.
    """
    given = [name for name, value in (("workers", workers), ("scheduler", scheduler),
                                      ("client", client)) if value is not None]
    if len(given) > 1:
        raise DcrValueError(
            f"give at most one of workers, scheduler and client (got {', '.join(given)})"
        )
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise DcrValueError("workers must be an integer >= 1", workers=workers)
    if not isinstance(timeout, int | float) or not timeout > 0:
        raise DcrValueError("timeout must be a number of seconds > 0", timeout=timeout)
    if not given:
        yield None
        return
    distributed = importDistributed()
    if client is not None:
        checkWorkers(client)
        yield client
        return
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            checkSchedulerAddress(scheduler)
            tic = time.monotonic()
            try:
                client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise DcrValueError(
                    f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s "
                    f"({type(exc).__name__}: {exc}); check the address and that the "
                    "scheduler is running and reachable from here",
                    scheduler=scheduler,
                ) from None
            stack.callback(client.close)
            remaining = max(timeout - (time.monotonic() - tic), 1.0)
            try:
                client.wait_for_workers(1, timeout=remaining)
            except (TimeoutError, OSError) as exc:
                raise DcrValueError(
                    f"the Dask scheduler at {scheduler} has no worker after {timeout:g} s; "
                    "start workers for it",
                    scheduler=scheduler,
                ) from exc
        else:
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            stack.callback(cluster.close)
            client = distributed.Client(cluster, set_as_default=False)
            stack.callback(client.close)
        checkWorkers(client)
        yield client
