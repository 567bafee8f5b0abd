"""The README's Python example runs as written on a simulated field."""

import re
from pathlib import Path

import numpy as np

from dcrmodel.simulate import SimulationConfig, runSimulation

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch):
    manifest = runSimulation(tmp_path / "sim", config=SimulationConfig(
        size=96, numTraining=6, numTest=1), seed=2)
    visit = [v for v in manifest.visits() if v["role"] == "test"][0]
    (tmp_path / "visit.fits").symlink_to(manifest.path(visit["file"]))
    (tmp_path / "coadd.fits").symlink_to(manifest.coaddPath)
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert np.isfinite(namespace["difference"]).all()
    assert namespace["model"].dcrNumSubfilters == 3
