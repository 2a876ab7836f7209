"""The run report: ``build_report(run_dir)`` writes ``report.md``, a self-contained ``report.html`` and PNGs.

What it reads: the run's records (:func:`analysis.load_results`, :func:`analysis.load_curves`) and its
``run.json`` (see :mod:`transferlab.store`) and the ``distances.csv`` written beside them where the data is
(``transferlab report`` or ``transferlab distances``, :mod:`transferlab.distances`; this package never loads
the data itself). What it writes, into ``out`` (default the run folder)::

    report.md         the report, figures linked as figures/<name>.png
    report.html       the same report with every figure embedded (base64 PNG): one file to send around
    figures/*.png     the figures

Sections: run summary; findings; the ranked worst pairs with their evidence (gain, CI, q, flag, distances);
per method and budget > 0 a gain-vs-scratch heatmap (negative-transfer cells marked "NT") and a
target-accuracy heatmap; the negative-transfer table (vs ``scratch``), the source-effect table (vs
``target-only``, when the run has those cells), unconverged rows with what to change, the budget-0 table,
the DA-harm and budget-crossover tables; distance-vs-gain scatters with permutation tests over domains;
label-budget curves of the worst pairs; training curves of one cell (default: the worst flagged one);
failed cells. Every statistics table names its baseline and says in one sentence what its seeds can show.

Gains follow :func:`analysis.negative_transfer` (the statistics, their model and calibration are in
:mod:`analysis.negative`): ``accuracy(method) − accuracy(baseline)``, seed-paired, at the same label budget
> 0. At budget 0 no target-only baseline can train: those rows are in their own section
(:func:`analysis.negative.budget_zero`, exact tests against chance, their own FDR family), never mixed into
the negative-transfer family. With budgets > 0 but no scratch cells, gains are reported as unavailable.

The figures are bare :class:`matplotlib.figure.Figure` objects saved with the Agg renderer: no display,
no ``pyplot`` state, safe in a headless CLI.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError

from . import plots
from .negative import ok_rows
from .report_document import _Doc
from .negative import BASELINES
from .report_figures import _Figures, section_accuracy_heatmaps, section_gain_heatmaps
from .report_forecast import section_explanations, section_forecast
from .report_sections import (_section_budget_curves, _section_distances, _section_failed, _section_tables,
                              _section_training, _section_worst)
from .report_summary import (RECOMMENDATIONS_FILE, SCRATCH, TARGET_ONLY, _Analysis, _section_findings,
                             _section_run, decision_baseline, recommendations, section_decisions)

#: Distances ``transferlab report`` computes per pair when ``distances.csv`` does not already hold them: each takes about
#: a second per pair on a few thousand samples. ``otdd`` reads target labels (an oracle, for analysis only).
#: ``proxy_a`` (linear) is left out: it is slow on wide features (16 s per Office-Caltech pair on 2 cores), and a
#: linear domain classifier is blind after per-domain z-scoring (every projection has mean 0 in both domains);
#: ``proxy_a_knn`` (5-NN domain classifier, 0.05-0.3 s a pair) sees beyond the first two moments.
REPORT_DISTANCES = ("proxy_a_knn", "mmd2", "coral", "wasserstein", "otdd")
DISTANCES_FILE = "distances.csv"
FIGURES_DIR = "figures"
TOP_PAIRS = 10
BUDGET_CURVE_PAIRS = 4

__all__ = ["build_report", "REPORT_DISTANCES", "RECOMMENDATIONS_FILE"]


# ---------------------------------------------------------------------------------------------- inputs
def _read_run_json(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        warnings.warn(f"{path}: unreadable ({err}); the report goes on without the run's config",
                      stacklevel=3)
        return {}
    return info if isinstance(info, dict) else {}


def _distances(run_dir: Path, out: Path, pairs: list[tuple[str, str]],
               which: Sequence[str] | None) -> tuple[pd.DataFrame | None, str]:
    """The distance table ``source, target, <distance>...`` read from ``distances.csv`` (written where the data
    is: by ``transferlab report`` from the run's config, or ``transferlab distances``), and where it came from.
    ``which`` keeps those columns only (``None``: every one; ``()``: none)."""
    if which is not None and not len(which):
        return None, "not computed (no distances asked for)"
    for path in dict.fromkeys((out / DISTANCES_FILE, run_dir / DISTANCES_FILE)):
        if path.is_file():
            try:
                table = pd.read_csv(path)
            except (OSError, ValueError):
                continue
            have = set(zip(table.get("source", []), table.get("target", [])))
            if {"source", "target"} <= set(table.columns) and set(pairs) <= have:
                if which is not None:
                    table = table[["source", "target", *[c for c in which if c in table.columns]]]
                return table, f"read from `{path}`"
    return None, (f"not computed: no `{DISTANCES_FILE}` covering the run's pairs in the run folder "
                  f"(`transferlab report` computes it from the run's data; or `transferlab distances CONFIG "
                  f"--out {run_dir}`)")


def _analyse(run_dir: Path, out: Path, distances: Sequence[str] | None, alpha: float) -> _Analysis:
    from . import negative
    from .results import load_outcomes, load_results

    with warnings.catch_warnings():  # the header says it instead (other_records)
        warnings.simplefilter("ignore")
        df = load_results(run_dir)
    run_info = _read_run_json(run_dir)
    ok = ok_rows(df)
    domains = [d for d in run_info.get("domains") or [] if d in set(df["source"]) | set(df["target"])]
    domains = domains or plots.domain_order(df)
    methods = list(dict.fromkeys(m["label"] for m in (run_info.get("config") or {}).get("methods", [])
                                 if isinstance(m, Mapping) and "label" in m))
    methods = [m for m in methods if m in set(df["method"])] + sorted(set(df["method"]) - set(methods))
    budgets = sorted(int(b) for b in df["budget"].dropna().unique())
    a = _Analysis(df=df, ok=ok, run_info=run_info, domains=domains, methods=methods, budgets=budgets,
                  has_scratch=bool((ok["method"] == SCRATCH).any()))

    transfer_methods = [m for m in methods if m not in negative.BASELINES]
    try:
        a.outcomes = load_outcomes(run_dir)
    except TransferlabError:
        a.outcomes = None
    tested = ("negative", "positive", "no-effect", "inconclusive")
    if transfer_methods and len(ok):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a.nt_all = negative.negative_transfer(df, alpha=alpha, outcomes=a.outcomes)
        usable = a.nt_all[a.nt_all["flag"].isin(tested)]
        a.nt = usable.reset_index(drop=True) if len(usable) else None
        if a.nt is None and (a.nt_all["untested"] == "unconverged").any():
            a.notes["gain"] = ("No row could be tested: every (pair, method, budget > 0) row with a `scratch` "
                               "baseline has an arm that had not converged (see **Unconverged rows**).")
        elif a.nt is None:
            zero = " (budget-0 rows have their own section: no baseline can train without labels)" \
                if 0 in budgets else ""
            a.notes["gain"] = ("Gains vs scratch are unavailable: the run has no finished `scratch` cells "
                               f"paired with a transfer method at a budget > 0{zero}.")
        if (ok["method"] == TARGET_ONLY).any():
            a.source_all = negative.negative_transfer(df, alpha=alpha, baseline=TARGET_ONLY,
                                                      outcomes=a.outcomes)
            src = a.source_all[a.source_all["flag"].isin(tested)]
            a.source = src.reset_index(drop=True) if len(src) else None
        if (pd.to_numeric(ok["budget"], errors="coerce") == 0).any():
            a.zero = negative.budget_zero(df, alpha=alpha, outcomes=a.outcomes)
    else:
        a.notes["gain"] = ("Gains vs scratch are unavailable: the run has no transfer method with finished "
                           "cells.")

    da = [m for m in transfer_methods if m != "finetune"]
    if "finetune" in set(ok["method"]) and da:
        a.harm = negative.da_harm(df, alpha=alpha, outcomes=a.outcomes)
    else:
        a.notes["harm"] = ("DA harm needs `finetune` and at least one other adaptation method with finished "
                           "cells; this run has " + ", ".join(f"`{m}`" for m in methods) + ".")
    if a.nt is not None and a.nt.groupby(["source", "target", "method"])["budget"].nunique().max() > 1:
        a.crossover = negative.budget_crossover(df)
    else:
        a.notes["crossover"] = "Budget crossover needs gains at two or more budgets for one pair and method."

    pairs = [tuple(p) for p in run_info.get("pairs") or []]
    pairs = pairs or list(dict.fromkeys(zip(df["source"], df["target"])))
    pairs = [p for p in pairs if p[0] != p[1]]
    a.dist, a.dist_note = _distances(run_dir, out, pairs, distances)
    return a


# ---------------------------------------------------------------------------------------------- the cell
def _pick_cell(a: _Analysis, cell) -> tuple[dict, str]:
    """Filters for :func:`load_curves` and a sentence saying which cell and why."""
    keys = ("source", "target", "method", "budget", "seed")
    if cell is None:
        if a.nt is not None:
            flagged = a.nt[[plots.is_flagged(f) for f in a.nt["flag"]]]
            if len(flagged):
                row = flagged.sort_values("gain", kind="mergesort").iloc[0]
                why = "the worst flagged cell (lowest gain among the negative-transfer flags)"
            else:
                row = a.nt.sort_values("gain", kind="mergesort").iloc[0]
                why = "no cell is flagged; the cell with the lowest gain"
        else:
            transfer = a.ok[a.ok["method"] != SCRATCH]
            pool = transfer if len(transfer) else a.ok
            if not len(pool):
                return {}, "no finished cell to show"
            grp = pool.groupby(["source", "target", "method", "budget"])["accuracy"].mean().sort_values()
            row = dict(zip(["source", "target", "method", "budget"], grp.index[0]))
            why = "gains are unavailable; the cell with the lowest mean accuracy"
        filters = {k: _plain(row[k]) for k in keys[:4]}
        return filters, why
    if isinstance(cell, str):
        hit = a.df[(a.df.get("cell_id") == cell) | (a.df.get("key") == cell)]
        if hit.empty:
            raise TransferlabError(f"build_report: no cell record with key {cell!r} in the run")
        row = hit.iloc[0]
        return {k: _plain(row[k]) for k in keys}, f"the cell asked for (`{cell}`)"
    if isinstance(cell, Mapping):
        unknown = sorted(set(cell) - set(keys))
        if unknown:
            raise TransferlabError(f"build_report: cell filters must be among {list(keys)}, got {unknown}")
        return dict(cell), "the cell asked for"
    if isinstance(cell, (tuple, list)) and 2 <= len(cell) <= 5:
        return dict(zip(keys, cell)), "the cell asked for"
    raise TransferlabError("build_report: cell must be a record key, a mapping of source/target/method/budget"
                           f"/seed, or a (source, target, method, budget[, seed]) tuple; got {cell!r}")


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


# ---------------------------------------------------------------------------------------------- build
def build_report(run_dir: str | Path, cell=None, out: str | Path | None = None, *,
                 distances: Sequence[str] | None = None, alpha: float = 0.05,
                 top: int = TOP_PAIRS) -> Path:
    """Build the report of a run folder; returns the path of ``report.md`` (``report.html`` is beside it).

    Parameters
    ----------
    run_dir : str or Path
        A run folder (``results/<name>``: ``run.json`` and ``cells/*.json``).
    cell : optional
        Which cell's training curves to show: a record key (``cells/<key>.json``), a mapping of some of
        ``source, target, method, budget, seed``, or a ``(source, target, method, budget[, seed])`` tuple.
        Default: the worst flagged cell (lowest gain among rows flagged negative transfer), all its seeds.
    out : str or Path, optional
        Folder for ``report.md``, ``report.html`` and ``figures/`` (default ``run_dir``); a ``distances.csv``
        there is read before the run folder's.
    distances : sequence of str, optional
        Columns of ``distances.csv`` to show (default: every one it has; ``()``: no distances section data).
        The table is read, never computed here: ``transferlab report`` fills it from the run's data.
    alpha : float
        FDR level of the negative-transfer and DA-harm flags.
    top : int
        Rows of the ranked worst-pairs table.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir
    a = _analyse(run_dir, out, distances, alpha)
    chosen = _pick_cell(a, cell)  # a bad ``cell`` fails here, before any figure is drawn
    figs = _Figures(out / FIGURES_DIR)
    for stale in figs.folder.glob("*.png"):
        stale.unlink()
    name = a.run_info.get("name") or run_dir.name
    doc = _Doc(title=f"Transfer report: {name}")
    baseline, decided = decision_baseline(a)
    rec = recommendations(decided, baseline) if decided is not None else None
    out.mkdir(parents=True, exist_ok=True)
    if rec is not None:
        rec.to_csv(out / RECOMMENDATIONS_FILE, index=False)

    # The summary: the answer first, then where to read more, then the matrix at a glance.
    doc.para(_one_line(a, run_dir))
    section_decisions(doc, a, rec, alpha)
    doc.heading("Contents")
    doc.contents()
    _section_findings(doc, a, alpha)
    section_gain_heatmaps(doc, decided, baseline, [m for m in a.methods if m not in BASELINES],
                          [b for b in a.budgets if b > 0], a.domains, figs, a.notes.get("gain"))
    section_accuracy_heatmaps(doc, a.df, len(a.ok), a.methods, a.budgets, a.domains, figs)
    section_forecast(doc, run_dir)
    section_explanations(doc, run_dir)
    _section_failed(doc, a)
    # The appendix: every row's statistics, the scatters and the curves.
    doc.heading("Appendix: per-row detail", level=1)
    _section_run(doc, a, run_dir)
    _section_worst(doc, a, top)
    _section_tables(doc, a)
    _section_distances(doc, a, figs)
    _section_budget_curves(doc, a, figs)
    _section_training(doc, a, figs, run_dir, chosen)
    doc.heading("Reproduce")
    doc.para(f"`transferlab report {run_dir}` rebuilds this report from the records; "
             f"`analysis.report.build_report(run_dir, cell=...)` picks another cell for the training curves.")

    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(doc.markdown(out), encoding="utf-8")
    html_path.write_text(doc.html(), encoding="utf-8")
    return md_path


def _one_line(a: _Analysis, run_dir: Path) -> str:
    n_failed = int((a.df["status"].astype(str) != "ok").sum())
    return (f"Run `{run_dir}`: {len(a.domains)} domains, methods " + ", ".join(f"`{m}`" for m in a.methods)
            + f"; {len(a.ok)} finished cells" + (f", {n_failed} failed" if n_failed else "")
            + ". Details of the run are in the appendix.")
