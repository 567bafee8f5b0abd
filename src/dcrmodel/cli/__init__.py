"""The ``dcrmodel`` command: its parser, subcommands, progress, reports and demo."""

from .commands import (
    SUBCOMMANDS,
)
from .demo import (
    DEMO_FIELDS,
    DemoResult,
    runDemo,
)
from .main import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ProgressBar,
    buildParser,
    main,
)
from .progress import (
    logToBar,
)
from .report import (
    formatMarkdownTable,
    formatTextTable,
    plotConvergence,
    plotDifferenceComparison,
    plotResidualByColour,
)

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
