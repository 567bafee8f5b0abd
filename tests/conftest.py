"""Test-suite settings.

Property-based tests explore new examples on every developer run; under CI (``CI`` set in
the environment) they run a fixed, reproducible set so that a landing never depends on luck.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
