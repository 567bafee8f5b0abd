"""The command's parser is light: it imports no heavy module, and its choices are the library's."""

import subprocess
import sys

import pytest

from dcrmodel.cli import parser as cliparser
from dcrmodel.cli.main import _HANDLERS, main


def test_the_parser_and_the_entry_import_nothing_heavy():
    # Building the parser and answering --help must not import numpy, scipy, astropy or the
    # subpackages: each subcommand's work is imported when it runs.
    code = (
        "import sys\n"
        "from dcrmodel.cli.main import main\n"
        "from dcrmodel.cli.parser import buildParser\n"
        "buildParser()\n"
        "try:\n"
        "    main(['template', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('numpy', 'scipy', 'astropy', 'tqdm', 'dcrmodel.assemble', 'dcrmodel.model',\n"
        "         'dcrmodel.fits', 'dcrmodel.image', 'dcrmodel.cli.commands')\n"
        "print(sorted({m.split('.')[0] if not m.startswith('dcrmodel') else m\n"
        "              for m in sys.modules if m.startswith(heavy)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_mirrored_choices_equal_their_homes():
    from dcrmodel.assemble import AUTO_SUBFILTERS, SOLVERS
    from dcrmodel.cli.demo import DEMO_FIELDS
    from dcrmodel.image import RUBIN_BANDS
    from dcrmodel.model import ENGINES, TEMPLATE_WARPING_KERNEL
    from dcrmodel.warp import (
        CONSERVE_MODES,
        DEFAULT_WARPING_KERNEL,
        GRID_SPEC_FORMAT,
        WARPING_KERNELS,
    )

    assert cliparser.SOLVERS == tuple(SOLVERS)
    assert cliparser.AUTO_SUBFILTERS == AUTO_SUBFILTERS
    assert set(cliparser.ENGINES) == set(ENGINES)  # listed in the order --help always gave
    assert cliparser.WARPING_KERNELS == tuple(WARPING_KERNELS)
    assert cliparser.DEFAULT_WARPING_KERNEL == DEFAULT_WARPING_KERNEL
    assert cliparser.TEMPLATE_WARPING_KERNEL == TEMPLATE_WARPING_KERNEL
    assert cliparser.CONSERVE_MODES == tuple(CONSERVE_MODES)
    assert cliparser.GRID_SPEC_FORMAT == GRID_SPEC_FORMAT
    assert cliparser.RUBIN_BANDS == tuple(RUBIN_BANDS)
    assert cliparser.DEMO_FIELDS == tuple(DEMO_FIELDS)


def _handlerNames(parser):
    names = set()
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            handler = sub.get_default("handler")
            if handler is not None:
                names.add(handler)
            if sub._subparsers is not None:
                names |= _handlerNames(sub)
    return names


def test_every_subcommand_has_a_handler_that_exists():
    import importlib

    names = _handlerNames(cliparser.buildParser())
    assert names == set(_HANDLERS)
    for module, function in _HANDLERS.values():
        assert callable(getattr(importlib.import_module(f"dcrmodel.cli.{module}"), function))


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["diff", "--help"]])
def test_help_and_version_answer(argv, capsys):
    assert main(argv) == 0
    assert "dcrmodel" in capsys.readouterr().out


def test_a_command_off_a_terminal_does_not_import_tqdm(tmp_path):
    # Log lines go through tqdm only when they go to a terminal (where the bars are drawn);
    # a command whose standard error is a pipe or a file never imports tqdm (nor asyncio).
    code = (
        "import logging, sys\n"
        "from dcrmodel.cli.main import _configureLogging, main\n"
        "from dcrmodel.cli.progress import logToBar\n"
        f"status = main(['template', {str(tmp_path / 'none')!r}, {str(tmp_path / 'no.fits')!r},"
        f" '--out', {str(tmp_path / 'out.fits')!r}])\n"
        "_configureLogging(0, False)\n"
        "with logToBar(logging.getLogger('dcrmodel')):\n"
        "    logging.getLogger('dcrmodel').warning('a line of its own')\n"
        "print(status, sorted(m for m in ('tqdm', 'asyncio') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "2 []"
    assert result.stderr.endswith("dcrmodel: WARNING: a line of its own\n")
