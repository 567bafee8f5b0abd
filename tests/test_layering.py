"""The package's architecture, checked from its source: imports run one way only.

Every module of ``src/dcrmodel`` is read with `ast` (imports inside functions and
``TYPE_CHECKING`` blocks included) and each import of our own code is held against the
layers of ``docs/architecture.md``:

    root -> {physics, image, fourier} -> psf -> warp -> model -> fits
         -> {assemble, diffim} -> {simulate, distributed, pipeline} -> cli

A module may import from the root, from its own subpackage, and from any subpackage of a
lower layer; never from its own layer's siblings (physics, image and fourier know nothing
of each other) nor upward. Names with a leading underscore are never imported from another
subpackage. The root modules import nothing of the subpackages.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dcrmodel"

#: Layer of each subpackage; the root (top-level modules) is layer 0.
LAYERS = {
    "physics": 1, "image": 1, "fourier": 1,
    "psf": 2,
    "warp": 3,
    "model": 4,
    "fits": 5,
    "assemble": 6, "diffim": 6,
    "simulate": 7, "distributed": 7, "pipeline": 7,
    "cli": 8,
}

#: Optional dependencies whose imports may be deferred into functions.
OPTIONAL = ("dask", "distributed", "galsim", "matplotlib", "lsst", "tqdm")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _dotted(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return parts


def _room(parts: list[str]) -> str:
    """Subpackage a module (dotted parts under dcrmodel) lives in; "" for the root."""
    return parts[0] if len(parts) > 1 or (parts and (PACKAGE / parts[0]).is_dir()) else ""


def _ownImports(path: Path) -> list[tuple[int, list[str], list[str], bool]]:
    """(line, target module parts under dcrmodel, imported names, at top level) per import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    topLevel = {id(node) for node in tree.body}
    for node in tree.body:  # TYPE_CHECKING blocks and try/except at top level count as top
        if isinstance(node, (ast.If, ast.Try)):
            topLevel.update(id(sub) for sub in ast.walk(node))
    here = _dotted(path)
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "dcrmodel":
                target = node.module.split(".")[1:]
            else:
                continue
            found.append((node.lineno, target, names, id(node) in topLevel))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dcrmodel":
                    found.append((node.lineno, alias.name.split(".")[1:], [], id(node) in topLevel))
    return found


def _violations() -> list[str]:
    problems = []
    for path in _modules():
        here = _dotted(path)
        room = _room(here) if here else ""
        where = f"{path.relative_to(PACKAGE.parent)}"
        for line, target, names, top in _ownImports(path):
            # `from . import x` in a package names a module: resolve it to the subpackage
            if target == [] and names:
                targets = [[n] for n in names]
            else:
                targets = [target]
            for tgt in targets:
                other = tgt[0] if tgt and tgt[0] in LAYERS else ""
                if room == "" and other and here != []:
                    problems.append(f"{where}:{line}: the root imports {'.'.join(tgt)}")
                elif other and other != room and room:
                    if LAYERS[other] >= LAYERS[room]:
                        problems.append(
                            f"{where}:{line}: {room} (layer {LAYERS[room]}) imports "
                            f"{'.'.join(tgt)} (layer {LAYERS[other]})"
                        )
                if other and other != room:
                    private = [n for n in names if n.startswith("_")]
                    deep = [p for p in tgt[1:] if p.startswith("_")]
                    if private or deep:
                        problems.append(
                            f"{where}:{line}: private name {private or deep} imported from "
                            f"subpackage {other}"
                        )
            if not top and here:
                problems.append(f"{where}:{line}: import of {'.'.join(target)} inside a function")
    return problems


def test_imports_run_one_way_and_sit_at_the_top():
    problems = _violations()
    assert not problems, "\n".join(problems)


def test_every_subpackage_has_a_layer():
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert rooms <= set(LAYERS), f"subpackages without a layer: {rooms - set(LAYERS)}"


def test_no_module_over_a_thousand_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules()
            if (n := len(p.read_text().splitlines())) > 1000}
    assert not long, long


@pytest.mark.parametrize(
    "source, problem",
    [
        ("from ..model import DcrModel\n", "imports model"),
        ("from ..fourier import paddedShape\n", "imports fourier"),
        ("from ..psf.kernels import _private\n", "private name"),
        ("def f():\n    from ..image import Box\n", "inside a function"),
    ],
)
def test_the_checker_catches_each_kind_of_violation(tmp_path, monkeypatch, source, problem):
    package = tmp_path / "dcrmodel"
    for room in ("image", "physics", "model", "fourier", "psf"):
        (package / room).mkdir(parents=True)
        (package / room / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "physics" / "bad.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert any(problem in p for p in _violations())


def test_the_checker_accepts_imports_down_the_layers(tmp_path, monkeypatch):
    package = tmp_path / "dcrmodel"
    for room in ("image", "model", "psf"):
        (package / room).mkdir(parents=True)
        (package / room / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from .model import DcrModel\n")
    (package / "errors.py").write_text("")
    (package / "model" / "core.py").write_text(
        "from ..errors import DcrError\nfrom ..image import Box\nfrom ..psf import estimatePsf\n"
        "from .shift import applyDcr\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert _violations() == []
