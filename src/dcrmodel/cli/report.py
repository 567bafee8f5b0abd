"""Figures (PNG) and summary tables of a DCR run.

Every figure function takes plain arrays and numbers and writes one PNG atomically, so
the same code serves the demo, the benchmarks and users' own scripts. matplotlib is an
optional dependency (the ``plots`` extra) imported only when a figure is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomicPath
from ..errors import DcrShapeError

__all__ = [
    "plotDifferenceComparison",
    "plotConvergence",
    "plotResidualByColour",
    "formatMarkdownTable",
    "formatTextTable",
]


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Figures need matplotlib: install dcrmodel with the 'plots' extra "
            "(pip install 'dcrmodel[plots]')."
        ) from exc
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    with atomicPath(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plotDifferenceComparison(
    science: np.ndarray,
    coaddDifference: np.ndarray,
    dcrDifference: np.ndarray,
    path: str | os.PathLike,
    noiseSigma: float | None = None,
    title: str | None = None,
) -> Path:
    """Draw a science image beside its plain-coadd and DCR-template differences.

    Parameters
    ----------
    science : numpy.ndarray
        Science image (counts), shape ``(ny, nx)``.
    coaddDifference : numpy.ndarray
        Science minus the plain coadd used as a template (counts).
    dcrDifference : numpy.ndarray
        Science minus the DCR-matched template (counts).
    path : str or os.PathLike
        Output PNG.
    noiseSigma : float, optional
        Noise level (counts) that sets the difference images' stretch to +-5 sigma;
        by default the robust standard deviation of ``dcrDifference``.
    title : str, optional
        Figure title (for example the visit and its airmass).

    Returns
    -------
    path : pathlib.Path
        The PNG written.
    """
    science, coaddDifference, dcrDifference = (
        np.asarray(a, dtype=float) for a in (science, coaddDifference, dcrDifference)
    )
    if not science.shape == coaddDifference.shape == dcrDifference.shape:

        raise DcrShapeError(
            "The science image and the two differences must have one shape.",
            science=science.shape,
            coaddDifference=coaddDifference.shape,
            dcrDifference=dcrDifference.shape,
        )
    if noiseSigma is None:
        finite = dcrDifference[np.isfinite(dcrDifference)]
        mad = np.median(np.abs(finite - np.median(finite))) if finite.size else 1.0
        noiseSigma = float(1.4826 * mad) or 1.0
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.3))
    low, high = np.nanpercentile(science, [1.0, 99.5])
    panels = [
        (science, "science", dict(vmin=low, vmax=high, cmap="gray")),
        (coaddDifference, "science - plain coadd", None),
        (dcrDifference, "science - DCR template", None),
    ]
    for ax, (data, label, style) in zip(axes, panels, strict=True):
        style = style or dict(vmin=-5 * noiseSigma, vmax=5 * noiseSigma, cmap="RdBu_r")
        image = ax.imshow(data, origin="lower", interpolation="nearest", **style)
        ax.set_title(label)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plotConvergence(
    metric: Sequence[float] | Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    gains: Sequence[float] | None = None,
    title: str | None = None,
) -> Path:
    """Draw the convergence metric per iteration (one line per subregion if a mapping).

    Parameters
    ----------
    metric : sequence of float or mapping of str to sequence of float
        Convergence metric per iteration (dimensionless).
    path : str or os.PathLike
        Output PNG.
    gains : sequence of float, optional
        Gain used at each iteration, drawn on a second axis.
    title : str, optional
        Figure title.

    Returns
    -------
    path : pathlib.Path
        The PNG written.
    """
    series = dict(metric) if isinstance(metric, Mapping) else {"metric": metric}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in series.items():
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(len(values)), values, marker="o", label=str(label))
    ax.set_xlabel("iteration")
    ax.set_ylabel("convergence metric")
    ax.set_yscale("log")
    if len(series) > 1 and len(series) <= 10:
        ax.legend(fontsize="small")
    if gains is not None and len(gains):
        twin = ax.twinx()
        twin.plot(np.arange(1, len(gains) + 1), gains, color="gray", linestyle=":", label="gain")
        twin.set_ylabel("gain")
    ax.set_title(title or "DCR model convergence")
    return _save(fig, path)


def plotResidualByColour(
    residuals: Mapping[str, Mapping[str, float]],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Draw relative template residuals by source class as grouped bars.

    Parameters
    ----------
    residuals : mapping of str to mapping of str to float
        ``{template name: {source class: relative residual}}``, for example
        ``{"plain coadd": {"blue stars": 0.2, ...}, "DCR model": {...}}``.
    path : str or os.PathLike
        Output PNG.
    title : str, optional
        Figure title.

    Returns
    -------
    path : pathlib.Path
        The PNG written.
    """
    templates = list(residuals)
    classes = sorted({name for values in residuals.values() for name in values})
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    width = 0.8 / max(len(templates), 1)
    positions = np.arange(len(classes))
    for index, template in enumerate(templates):
        heights = [residuals[template].get(name, np.nan) for name in classes]
        ax.bar(positions + index * width, heights, width=width, label=template)
    ax.set_xticks(positions + width * (len(templates) - 1) / 2)
    ax.set_xticklabels(classes)
    ax.set_ylabel("relative residual vs truth")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(title or "Template residual by source colour")
    return _save(fig, path)


def _cell(value: object) -> str:
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return "n/a"
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def formatMarkdownTable(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """Format rows as a GitHub-flavoured markdown table.

    Parameters
    ----------
    rows : sequence of mapping
        One mapping per row, keyed by column name.
    columns : sequence of str
        Column names, in order.

    Returns
    -------
    table : str
        The table, one line per row, ending with a newline.
    """
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def formatTextTable(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """Format rows as an aligned plain-text table for a terminal.

    Parameters
    ----------
    rows : sequence of mapping
        One mapping per row, keyed by column name.
    columns : sequence of str
        Column names, in order.

    Returns
    -------
    table : str
        The table, ending with a newline.
    """
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines) + "\n"
