"""Plans of many patches: `Patch`, `PatchPlan` and plan files (`loadPlan`).

A patch is one DCR model to assemble: its visit files, an optional plain coadd, its output
folder and its settings. A plan lists patches, and is checked as a whole before any work
(`PatchPlan.validate`).

Plans of many patches
---------------------
A plan is a TOML file (`loadPlan`)::

    [config]                    # settings of every patch (DcrAssembleConfig names)
    subregionSize = [512, 512]

    [[patch]]
    name = "tract9813-patch42"  # optional; the output folder's name by default
    visits = "visits/p42/*.fits"   # a glob, or a list of files and globs
    coadd = "coadds/p42.fits"   # optional plain coadd
    grid = "150.1,-30.2,4000,4000,0.2"  # optional model grid: RA,DEC,WIDTH,HEIGHT,SCALE
                                # or an exposure file whose IMAGE header gives it
    out = "models/p42"          # output folder (see dcrmodel.assemble.task.writeResults)
    config = { maxNumIter = 6 }  # optional overrides for this patch

Relative paths are taken from the plan file's folder. ``config`` (top level or per
patch) may also be the path of a configuration file (`DcrAssembleConfig.fromToml`). With a
``grid`` (or a ``coadd``) visits on other pixel grids (detector frames) are warped onto the
model's grid as the patch is assembled (`dcrmodel.assemble.placement`).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._validate import readTomlFile, refuseFolders
from ..assemble import DcrAssembleConfig, checkOutputFolder, refuseDuplicateFiles, resolveGrid
from ..errors import DcrConfigError, DcrError, DcrOutputError, DcrTypeError, DcrValueError

__all__ = ["Patch", "PatchPlan", "loadPlan"]

_GLOB_CHARS = frozenset("*?[")


@dataclasses.dataclass(frozen=True)
class Patch:
    """One patch of a plan: its visits, optional coadd, output folder and settings.

    Attributes
    ----------
    name : str
        The patch's name (for the summary table and progress).
    visits : tuple of pathlib.Path
        Exposure files of the visits (Rubin layout), on the patch's pixel grid.
    out : pathlib.Path
        Output folder (`dcrmodel.assemble.task.writeResults`).
    coadd : pathlib.Path or None
        A plain coadd to start from; computed from the visits when None.
    config : DcrAssembleConfig
        The settings of this patch.
    grid : str, tuple or None
        The model's grid (`dcrmodel.assemble.resolveGrid`): the path of an exposure file,
        the text ``"RA,DEC,WIDTH,HEIGHT,SCALE"`` or ``(astropy.wcs.WCS, Box)``; None: the
        coadd's, else the visits'.
    """

    name: str
    visits: tuple[Path, ...]
    out: Path
    coadd: Path | None = None
    config: DcrAssembleConfig = dataclasses.field(default_factory=DcrAssembleConfig)
    grid: Any = None


@dataclasses.dataclass(frozen=True)
class PatchPlan:
    """A list of patches to assemble (`loadPlan`, `PatchPlan.fromDict`).

    Attributes
    ----------
    patches : tuple of Patch
        The patches, in the order they are submitted.
    source : pathlib.Path or None
        The plan file, when it was read from one.
    """

    patches: tuple[Patch, ...]
    source: Path | None = None

    @classmethod
    def fromDict(
        cls, data: Mapping[str, Any], base: str | os.PathLike | None = None
    ) -> PatchPlan:
        """Make a plan from the structure of a plan file (see the module docstring).

        Parameters
        ----------
        data : mapping
            ``{"config": {...}, "patch": [{"name", "visits", "coadd", "grid", "out",
            "config"}, ...]}``.
        base : str or os.PathLike, optional
            Folder that relative paths are taken from (the current one when None).

        Returns
        -------
        PatchPlan
            The plan, with absolute paths and globs expanded (not yet validated:
            `validate` checks the files and output folders).

        Raises
        ------
        DcrConfigError
            For an unknown key, a missing ``out`` or ``visits``, a value of the wrong type
            or a bad setting, naming the patch.
        DcrValueError
            For a glob that matches no file or an empty visit list.
        """
        if not isinstance(data, Mapping):
            raise DcrConfigError("a plan must be a table (mapping)", type=type(data).__name__)
        root = Path(os.getcwd() if base is None else os.fspath(base)).absolute()
        unknown = sorted(set(data) - {"config", "patch"})
        if unknown:
            raise DcrConfigError(
                f"unknown top-level key(s) {', '.join(unknown)} in the plan; a plan has a "
                "[config] table and [[patch]] entries"
            )
        baseConfig = _configFrom(data.get("config"), DcrAssembleConfig(), root, "[config]")
        entries = data.get("patch")
        if entries is None or (isinstance(entries, list) and not entries):
            raise DcrConfigError(
                "the plan lists no patch; add [[patch]] entries with visits and out"
            )
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise DcrConfigError("'patch' must be a list of tables ([[patch]] entries)")
        patches = [_patchFrom(entry, i, baseConfig, root) for i, entry in enumerate(entries)]
        return cls(patches=tuple(patches))

    def validate(self, overwrite: bool = False) -> None:
        """Check every patch before any work; raise on the first kind of problem.

        Checked: at least one patch; unique names; every visit file and coadd exists and
        no visit is listed twice in a patch; every grid reads or parses; at least as many
        visits as subfilters; output folders neither shared nor nested in one another, and
        each new, empty, or (with ``overwrite``) holding an earlier model.

        Parameters
        ----------
        overwrite : bool, optional
            Allow output folders that hold an earlier dcrmodel model.

        Raises
        ------
        DcrConfigError
            For no patch or duplicate names.
        DcrValueError
            For missing files (all of them are listed), duplicate visits, a grid that
            cannot be read or parsed, or too few visits.
        DcrOutputError
            For shared or nested output folders, or one holding other files.
        """
        if not self.patches:
            raise DcrConfigError("the plan lists no patch")
        names: dict[str, int] = {}
        for patch in self.patches:
            if not isinstance(patch, Patch):
                raise DcrTypeError("a plan's patches must be Patch objects",
                                   patch=type(patch).__name__)
            if patch.name in names:
                raise DcrConfigError(
                    f"two patches are named {patch.name!r}; give every patch its own name"
                )
            names[patch.name] = 1
        missing = []
        for patch in self.patches:
            if not patch.visits:
                raise DcrValueError(
                    f"patch {patch.name!r} has no visit; list its visit files", patch=patch.name
                )
            try:
                refuseFolders([*patch.visits, patch.coadd], "an exposure file")
            except DcrValueError as exc:
                raise DcrValueError(f"patch {patch.name!r}: {exc.message}",
                                    **exc.values) from None
            seen: set[Path] = set()
            for path in patch.visits:
                if path in seen:
                    raise DcrValueError(
                        f"patch {patch.name!r} lists the visit {path} twice", patch=patch.name
                    )
                seen.add(path)
                if not path.is_file():
                    missing.append(f"{patch.name}: {path}")
            if patch.coadd is not None and not patch.coadd.is_file():
                missing.append(f"{patch.name}: {patch.coadd} (coadd)")
        if missing:
            shown = "; ".join(missing[:10]) + ("; ..." if len(missing) > 10 else "")
            raise DcrValueError(
                f"{len(missing)} file(s) of the plan do not exist: {shown}",
                nMissing=len(missing),
            )
        for patch in self.patches:
            _refuseDuplicateVisits(patch)
        for patch in self.patches:
            try:
                resolveGrid(patch.grid)
            except (DcrError, FileNotFoundError) as exc:
                raise DcrValueError(f"patch {patch.name!r}: grid {_gridText(patch.grid)}: "
                                    f"{getattr(exc, 'message', exc)}", patch=patch.name) from None
        for patch in self.patches:
            n = patch.config.leastNumSubfilters()
            if len(patch.visits) < n:
                raise DcrValueError(
                    f"patch {patch.name!r} has {len(patch.visits)} visits, fewer than its {n} "
                    "subfilters; add visits or lower dcrNumSubfilters",
                    patch=patch.name,
                )
        outs = [(patch.name, patch.out.absolute()) for patch in self.patches]
        for i, (nameA, outA) in enumerate(outs):
            for nameB, outB in outs[i + 1:]:
                if outA == outB or outA in outB.parents or outB in outA.parents:
                    raise DcrOutputError(
                        f"patches {nameA!r} and {nameB!r} have overlapping output folders "
                        f"({outA} and {outB}); give each patch its own folder, neither "
                        "inside the other",
                        outA=str(outA),
                        outB=str(outB),
                    )
        for patch in self.patches:
            try:
                checkOutputFolder(patch.out, overwrite)
            except DcrOutputError as exc:
                raise DcrOutputError(
                    f"patch {patch.name!r}: {exc.message}", **exc.values
                ) from None


def _gridText(grid: Any) -> str:
    """Return how a patch's grid is named in messages."""
    if isinstance(grid, tuple | list) and len(grid) == 2:
        return f"(WCS, {grid[1]})"
    return repr(os.fspath(grid)) if isinstance(grid, str | os.PathLike) else repr(grid)


def _gridFrom(value: Any, root: Path, where: str) -> str | None:
    """Return a plan entry's grid: a file's absolute path, or the text as it is."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise DcrConfigError(
            f"{where}: grid must be the name of an exposure file or the text "
            "RA,DEC,WIDTH,HEIGHT,SCALE", grid=value,
        )
    path = _resolve(value, root)
    return str(path) if path.is_file() or "," not in value else value


def _configFrom(
    value: Any, base: DcrAssembleConfig, root: Path, where: str
) -> DcrAssembleConfig:
    """Return ``base`` with the settings of a plan's config table (or file) applied."""
    if value is None:
        return base
    if isinstance(value, str):
        loaded = DcrAssembleConfig.fromToml(_resolve(value, root))
        overrides = {
            name: getattr(loaded, name)
            for name in loaded.fieldNames()
            if getattr(loaded, name) != getattr(DcrAssembleConfig(), name)
        }
        value = overrides
    if not isinstance(value, Mapping):
        raise DcrConfigError(
            f"{where}: config must be a table of settings or the path of a configuration "
            "file",
            config=value,
        )
    try:
        return base.withOverrides(**dict(value))
    except DcrConfigError as exc:
        raise DcrConfigError(f"{where}: {exc.message}", **exc.values) from None


def _resolve(value: str, root: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else root / path


def _expandVisits(value: Any, root: Path, where: str) -> tuple[Path, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DcrConfigError(
            f"{where}: visits must be a file name, a glob, or a list of them", visits=value
        )
    paths: list[Path] = []
    for entry in value:
        path = _resolve(entry, root)
        if _GLOB_CHARS & set(entry):
            matches = sorted(glob.glob(os.fspath(path)))
            if not matches:
                raise DcrValueError(
                    f"{where}: the visit pattern {entry!r} matches no file (looked in "
                    f"{path.parent})",
                    pattern=entry,
                )
            paths.extend(Path(m) for m in matches)
        else:
            paths.append(path)
    if not paths:
        raise DcrValueError(f"{where}: the visit list is empty; list the patch's visit files")
    return tuple(paths)


def _patchFrom(entry: Mapping[str, Any], index: int, baseConfig: DcrAssembleConfig,
               root: Path) -> Patch:
    label = entry.get("name", None)
    where = f"patch {label!r}" if isinstance(label, str) else f"patch #{index + 1}"
    unknown = sorted(set(entry) - {"name", "visits", "coadd", "grid", "out", "config"})
    if unknown:
        raise DcrConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a patch has name, visits, coadd, "
            "grid, out and config"
        )
    for key in ("visits", "out"):
        if key not in entry:
            raise DcrConfigError(f"{where}: '{key}' is missing")
    out = entry["out"]
    if not isinstance(out, str) or not out:
        raise DcrConfigError(f"{where}: out must be the name of a folder", out=out)
    outPath = _resolve(out, root)
    name = entry.get("name", outPath.name)
    if not isinstance(name, str) or not name:
        raise DcrConfigError(f"{where}: name must be a non-empty string", name=name)
    coadd = entry.get("coadd")
    if coadd is not None and (not isinstance(coadd, str) or not coadd):
        raise DcrConfigError(f"{where}: coadd must be the name of a file", coadd=coadd)
    return Patch(
        name=name,
        visits=_expandVisits(entry["visits"], root, where),
        out=outPath,
        coadd=None if coadd is None else _resolve(coadd, root),
        config=_configFrom(entry.get("config"), baseConfig, root, where),
        grid=_gridFrom(entry.get("grid"), root, where),
    )


def loadPlan(path: str | os.PathLike, overwrite: bool = False) -> PatchPlan:
    """Read and validate a plan file (TOML; format in the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The plan. Relative paths in it are taken from its folder.
    overwrite : bool, optional
        Allow output folders that hold an earlier dcrmodel model.

    Returns
    -------
    PatchPlan
        The validated plan.

    Raises
    ------
    DcrConfigError
        If the file cannot be read or parsed, or its structure or settings are wrong.
    DcrValueError
        For missing files, empty visit lists or globs that match nothing.
    DcrOutputError
        For overlapping output folders or folders holding other files.
    """
    source = Path(os.fspath(path))
    data = readTomlFile(source, "plan")
    plan = PatchPlan.fromDict(data, base=source.absolute().parent)
    plan = dataclasses.replace(plan, source=source)
    plan.validate(overwrite=overwrite)
    return plan


def asPatchPlan(plan: Any, overwrite: bool) -> PatchPlan:
    """Return a validated plan from a `PatchPlan`, a plan file's path or a mapping.

    Parameters
    ----------
    plan : PatchPlan, str, os.PathLike or mapping
        The plan, the path of a plan file (`loadPlan`), or a mapping in its format (paths
        relative to the current folder).
    overwrite : bool
        Allow output folders that hold an earlier dcrmodel model.

    Returns
    -------
    PatchPlan
        The validated plan.

    Raises
    ------
    DcrTypeError
        For anything else.
    DcrConfigError, DcrValueError, DcrOutputError
        For a bad plan (see `PatchPlan.validate`).
    """
    if isinstance(plan, PatchPlan):
        plan.validate(overwrite=overwrite)
        return plan
    if isinstance(plan, str | os.PathLike):
        return loadPlan(plan, overwrite=overwrite)
    if isinstance(plan, Mapping):
        result = PatchPlan.fromDict(plan)
        result.validate(overwrite=overwrite)
        return result
    raise DcrTypeError(
        "plan must be a PatchPlan, the path of a plan file or a mapping in its format",
        plan=type(plan).__name__,
    )


def _refuseDuplicateVisits(patch: Patch) -> None:
    """Refuse a patch that lists one visit twice under two names (a copy, one visit id).

    Only the visits' headers are read (and the IMAGE planes of files sharing a date and
    exposure time); a file that cannot be read is left for the patch's run to report.
    """
    try:
        refuseDuplicateFiles(patch.visits)
    except DcrValueError as exc:
        if "visits" not in exc.values:
            return
        raise DcrValueError(f"patch {patch.name!r}: {exc.message}", **exc.values) from None
    except (DcrError, OSError):
        return
