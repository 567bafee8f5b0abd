import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dcrmodel.distributed import checkSchedulerAddress
from dcrmodel.errors import DcrValueError
from helpers.safety import tinyField

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "127.0.0.1:8786", "tls://h:1",
                                     "tcp://[::1]:8786", "ws://host.example:80",
                                     "inproc://x", "ucx://h:1"])
def test_addresses_dask_accepts(address):
    assert checkSchedulerAddress(address) == address


@pytest.mark.parametrize(
    "address, match",
    [
        ("not a url", "not a Dask scheduler address \\(it holds a space\\)"),
        ("tcp://host", "it has no port number\\)"),
        ("tcp://host:99999", "no port number in 1-65535"),
        ("tcp://host:0", "no port number in 1-65535"),
        ("tcp://:8786", "it has no host"),
        ("http://host:8786", "unknown scheme 'http' \\(Dask's are tcp, tls"),
        ("tcp://host:8786/path", "a slash after the scheme"),
        ("", "must be a Dask scheduler address"),
        (8786, "must be a Dask scheduler address"),
    ],
)
def test_addresses_no_scheduler_can_have(address, match):
    with pytest.raises(DcrValueError, match=match):
        checkSchedulerAddress(address)


def test_a_malformed_scheduler_is_one_line_at_once_without_a_client(tmp_path_factory):
    """Before: a clear line, then the half-built client's destructor timed out for 20 s and
    printed a traceback. The command runs as a user runs it, in a process of its own."""
    field = tinyField(tmp_path_factory.mktemp("scheduler"))
    out = field.root / "m"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    script = ("import sys\n"
              "import distributed\n"
              "def refuse(*args, **kwargs):\n"
              "    raise SystemExit('a client was made')\n"
              "distributed.Client = refuse\n"
              "from dcrmodel_command import main\n"
              "sys.exit(main())\n")
    done = subprocess.run(
        [sys.executable, "-c", script, "assemble", *map(str, field.training), "--out", str(out),
         "--scheduler", "not a url"],
        env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("dcrmodel assemble: error: 'not a url' is not a Dask scheduler "
                               "address")
    assert not out.exists() and sorted(p.name for p in field.root.iterdir()) == [
        "field", "model"]
