"""`lsst.pex.config` fields generated from the settings of `dcrmodel.DcrAssembleConfig`.

`DcrAssembleConfig` is the one definition of the assembly's settings: `assembleFields`
turns each of its dataclass fields into a ``pex_config`` field with the same name, default
and documentation (taken from the class's numpydoc ``Attributes`` section), so the
pipeline task's configuration can never drift from it; `toAssembleConfig` turns such a
configuration back into a checked `DcrAssembleConfig`. ``dcrNumSubfilters`` (a number or
``"auto"``) is an integer field in which 0 means ``"auto"``. A setting of a type this module does
not know how to express is an error at import time, not a silent omission.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

from lsst.pex.config import Field, ListField

from ..assemble import AUTO_SUBFILTERS, DcrAssembleConfig

__all__ = ["assembleFields", "attributeDocs", "toAssembleConfig", "fromAssembleConfig"]

# How each annotation of DcrAssembleConfig is expressed: (field class, dtype, optional).
_KINDS: dict[str, tuple[type, type, bool]] = {
    "int": (Field, int, False),
    "int | None": (Field, int, True),
    "float": (Field, float, False),
    "float | None": (Field, float, True),
    "bool": (Field, bool, False),
    "str": (Field, str, False),
    "tuple[str, ...]": (ListField, str, False),
    "tuple[int, int]": (ListField, int, False),
    # A policy name or a FWHM in pixels: kept as text, numbers parsed back.
    "str | float": (Field, str, False),
    # A number of subfilters or "auto": an integer, 0 meaning "auto" (`_AUTO_CODE`).
    "int | str": (Field, int, False),
}

# How "auto" (dcrNumSubfilters) is written in an integer pex_config field.
_AUTO_CODE = 0


def attributeDocs(cls: type = DcrAssembleConfig) -> dict[str, str]:
    """Return each attribute's description from a class's numpydoc ``Attributes`` section.

    Parameters
    ----------
    cls : type, optional
        The class (default `DcrAssembleConfig`).

    Returns
    -------
    docs : dict of str to str
        Attribute name to its description, joined into one paragraph.
    """
    text = inspect.getdoc(cls) or ""
    section = re.search(r"^Attributes\n-+\n(.*?)(?:^\S.*\n-+\n|\Z)", text, re.S | re.M)
    docs: dict[str, str] = {}
    if section is None:
        return docs
    name = None
    for line in section.group(1).splitlines():
        header = re.match(r"^(\w+) : ", line)
        if header:
            name = header.group(1)
            docs[name] = ""
        elif name is not None and line.strip():
            docs[name] = (docs[name] + " " + line.strip()).strip()
    return docs


def assembleFields() -> dict[str, Field]:
    """Return one ``pex_config`` field per setting of `DcrAssembleConfig`.

    Returns
    -------
    fields : dict of str to lsst.pex.config.Field
        Same names, defaults (tuples as lists) and documentation.

    Raises
    ------
    TypeError
        If a setting has an annotation this module cannot express.
    """
    docs = attributeDocs()
    fields: dict[str, Field] = {}
    for spec in dataclasses.fields(DcrAssembleConfig):
        annotation = spec.type if isinstance(spec.type, str) else str(spec.type)
        if annotation not in _KINDS:
            raise TypeError(
                f"DcrAssembleConfig.{spec.name} has annotation {annotation!r}, which "
                "dcrmodel.pipeline.configfields cannot express as a pex_config field"
            )
        fieldClass, dtype, optional = _KINDS[annotation]
        doc = docs.get(spec.name) or f"DcrAssembleConfig.{spec.name}"
        default = spec.default
        if fieldClass is ListField:
            length = 2 if annotation == "tuple[int, int]" else None
            fields[spec.name] = ListField(
                dtype=dtype, default=list(default), doc=doc, length=length
            )
        else:
            if dtype is str and not isinstance(default, str):
                default = str(default)
            if annotation == "int | str":
                default = _AUTO_CODE if default == AUTO_SUBFILTERS else default
                doc += f" In this configuration {_AUTO_CODE} means {AUTO_SUBFILTERS!r}."
            fields[spec.name] = Field(dtype=dtype, default=default, doc=doc, optional=optional)
    return fields


def _fromText(value: str) -> str | float:
    """Parse a number written as text (``modelPsf`` given as a FWHM); else keep the text."""
    try:
        return float(value)
    except ValueError:
        return value


def toAssembleConfig(config: Any) -> DcrAssembleConfig:
    """Return the `DcrAssembleConfig` of a configuration that has the `assembleFields`.

    Parameters
    ----------
    config : lsst.pex.config.Config
        A configuration with every field of `assembleFields`.

    Returns
    -------
    DcrAssembleConfig
        The settings, checked.

    Raises
    ------
    DcrConfigError
        If a value is out of range (the message of `DcrAssembleConfig`).
    """
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(DcrAssembleConfig):
        value = getattr(config, spec.name)
        annotation = spec.type if isinstance(spec.type, str) else str(spec.type)
        if _KINDS[annotation][0] is ListField:
            value = tuple(value)
        elif annotation == "str | float":
            value = _fromText(value)
        elif annotation == "int | str" and value == _AUTO_CODE:
            value = AUTO_SUBFILTERS
        values[spec.name] = value
    return DcrAssembleConfig.fromDict(values)


def fromAssembleConfig(config: Any, settings: DcrAssembleConfig) -> None:
    """Set a configuration's `assembleFields` from a `DcrAssembleConfig`.

    Parameters
    ----------
    config : lsst.pex.config.Config
        The configuration to change in place.
    settings : DcrAssembleConfig
        The values.
    """
    for name, value in settings.toDict(jsonSafe=True).items():
        if value == AUTO_SUBFILTERS and name == "dcrNumSubfilters":
            value = _AUTO_CODE
        setattr(config, name, str(value) if name == "modelPsf" else value)
