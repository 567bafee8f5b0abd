"""Collection settings for the doctests of src: dcrmodel.pipeline needs the extra ``rubin``."""

import importlib.util

collect_ignore = []
try:
    _haveRubin = importlib.util.find_spec("lsst.pipe.base") is not None
except ModuleNotFoundError:
    _haveRubin = False
if not _haveRubin:
    collect_ignore.append("src/dcrmodel/pipeline")
