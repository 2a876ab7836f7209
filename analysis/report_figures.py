"""The report's figures: one file per figure under ``figures/``, few of them, panels instead of rows of images.

The figures are bare :class:`matplotlib.figure.Figure` objects saved with the Agg renderer: no display,
no ``pyplot`` state, safe in a headless CLI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from . import plots
from .report_document import _Doc, _slug

DPI = 110

class _Figures:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.written: list[Path] = []

    def save(self, fig, name: str) -> Path:
        path = self.folder / f"{_slug(name)}.png"
        fig.savefig(path, dpi=DPI, facecolor="white")
        self.written.append(path)
        return path



def panels(n: int, width: float, height: float, ncol: int = 3):
    """A figure of ``n`` panels in rows of at most ``ncol``; unused axes are switched off."""
    from matplotlib.figure import Figure

    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(width * ncol, height * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, list(axes[:n])


def _heatmap_size(domains: Sequence[str]) -> tuple[float, float]:
    n = len(domains)
    return 1.15 * n + 2.6, 0.95 * n + 1.6


def section_gain_heatmaps(doc: _Doc, table: pd.DataFrame | None, baseline: str, methods: Sequence[str],
                          budgets: Sequence[int], domains: Sequence[str], figs: _Figures, note: str | None) -> None:
    """All methods' gain heatmaps against ``baseline``: one figure per budget, one panel per method."""
    doc.heading(f"Gain vs {baseline}")
    shown = None if table is None else table[table["flag"].isin(
        ["negative", "positive", "no-effect", "inconclusive", "unconverged"])
        | (table["flag"].eq("untested") & table.get("untested", pd.Series("", index=table.index)).eq("unconverged"))]
    if shown is None or shown.empty:
        doc.para(note or "Gains unavailable.")
        return
    if note:
        doc.para(note)
    doc.para("Mean gain in accuracy points, sources as rows and targets as columns, one panel per method; blue: "
             f"transfer beats `{baseline}`, red: it loses, white: no difference. Boxed, hatched cells marked "
             f"**NT** are flagged negative transfer; cells marked `{plots.UNCONVERGED_MARK}` had an arm that had "
             "not converged and are not tested. The panels of one budget share their colour scale.")
    for budget in budgets:
        part = shown[shown["budget"] == budget]
        here = [m for m in methods if (part["method"] == m).any()]
        if not here:
            continue
        limit = plots.gain_limit(part)
        fig, axes = panels(len(here), *_heatmap_size(domains))
        for ax, method in zip(axes, here):
            plots.gain_heatmap(part, method, budget, domains=domains, limit=limit, ax=ax)
        doc.figure(figs.save(fig, f"gain_b{budget}"),
                   f"Gain vs {baseline} of {', '.join(here)}, {budget} target labels per class")


def section_accuracy_heatmaps(doc: _Doc, df: pd.DataFrame, n_ok: int, methods: Sequence[str],
                              budgets: Sequence[int], domains: Sequence[str], figs: _Figures) -> None:
    """Target accuracy of every method (baselines included): one figure per budget, one panel per method."""
    doc.heading("Target accuracy")
    if not n_ok:
        doc.para("No finished cells.")
        return
    for budget in budgets:
        here = [m for m in methods if ((df["method"] == m) & (df["budget"] == budget)).any()]
        if not here:
            continue
        fig, axes = panels(len(here), *_heatmap_size(domains))
        for ax, method in zip(axes, here):
            plots.accuracy_heatmap(df, method, budget, domains=domains, ax=ax)
        doc.figure(figs.save(fig, f"accuracy_b{budget}"),
                   f"Target test accuracy of {', '.join(here)}, {budget} target labels per class "
                   f"(mean over seeds)")
