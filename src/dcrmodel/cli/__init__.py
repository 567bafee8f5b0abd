"""The ``dcrmodel`` command: its parser, subcommands, progress, reports and demo.

Names are imported on first use, like those of the package's top level, so that
``import dcrmodel.cli.main`` (the console script's entry) imports the parser and not the
demo, the reports or the subcommands' work.
"""

import importlib
from typing import TYPE_CHECKING, Any

# The entry point is light and imported at once: ``dcrmodel.cli.main`` is both a module
# and the function it defines, and the package's attribute must stay the function even
# after the module has been imported by name.
from .main import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, ProgressBar, main

if TYPE_CHECKING:  # the names handed on, imported for real on first use (below)
    from .demo import DEMO_FIELDS, DemoResult, runDemo
    from .parser import SUBCOMMANDS, buildParser
    from .progress import logToBar
    from .report import (
        formatMarkdownTable,
        formatTextTable,
        plotConvergence,
        plotDifferenceComparison,
        plotResidualByColour,
    )

#: Where each name of this subpackage lives (module of `dcrmodel.cli`).
_LAZY_NAMES: dict[str, str] = {
    "SUBCOMMANDS": "parser",
    "buildParser": "parser",
    "DEMO_FIELDS": "demo",
    "DemoResult": "demo",
    "runDemo": "demo",
    "logToBar": "progress",
    "plotDifferenceComparison": "report",
    "plotConvergence": "report",
    "plotResidualByColour": "report",
    "formatMarkdownTable": "report",
    "formatTextTable": "report",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "SUBCOMMANDS",
    "DEMO_FIELDS",
    "DemoResult",
    "runDemo",
    "main",
    "buildParser",
    "ProgressBar",
    "EXIT_OK",
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "logToBar",
    "plotDifferenceComparison",
    "plotConvergence",
    "plotResidualByColour",
    "formatMarkdownTable",
    "formatTextTable",
]
