"""Report sections for what ``transferlab predict`` and ``transferlab explain`` left in a run folder.

"What would have predicted this": the predictors scored against the finished matrix
(``predictor_evaluation.csv``, :func:`analysis.forecast.evaluate_predictors`), best first, the trivial baselines
beside the scores, and what prediction cost next to the matrix. "Why the flagged rows hurt": the measured
evidence per ``negative`` row (``explanations.json``, :mod:`analysis.explain`). Both sections are absent when
the files are.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .explain import EXPLANATIONS_FILE
from .forecast import EVALUATION_FILE, SUMMARY_FILE


def section_forecast(doc, run_dir: Path) -> None:
    path = run_dir / EVALUATION_FILE
    if not path.is_file():
        return
    table = pd.read_csv(path)
    doc.heading("What would have predicted this")
    summary = _json(run_dir / SUMMARY_FILE)
    cost = ""
    if summary.get("seconds", {}).get("total") and summary.get("matrix_seconds"):
        cost = (f" Prediction took {summary['seconds']['total']:.1f} s against {summary['matrix_seconds']:.0f} s "
                f"of cell training time for the matrix.")
    perms = int(table["n_permutations"].max()) if len(table) else 0
    doc.para("`transferlab predict` scored each cheap predictor against this run's verdicts: AUROC for the "
             "`negative` flag over all rows with a budget (0.5 = no better than chance), and the weighted Kendall "
             "τ between predictor and measured gain over the sources of each target, averaged over targets. "
             f"p-values come from {perms} relabellings of the domains (rows share domains, so they are not "
             "independent); with few domains they cannot get small. Baselines are trivial predictors that a "
             "score must beat to be worth its cost." + cost)
    doc.table(pd.DataFrame({
        "predictor": table["predictor"], "kind": table["kind"],
        "AUROC (negative)": [_num(v) for v in table["auroc"]],
        "p (AUROC)": [_num(v, 3) for v in table["auroc_p_value"]], "mean τ_w": [_num(v) for v in table["mean_tau_w"]],
        "p (τ_w)": [_num(v, 3) for v in table["tau_p_value"]],
        "rows": table["n_rows"], "negative": table["n_negative"]}))


def section_explanations(doc, run_dir: Path) -> None:
    saved = _json(run_dir / EXPLANATIONS_FILE)
    rows = saved.get("rows") or []
    if not rows:
        return
    doc.heading("Why the flagged rows hurt")
    doc.para(f"`transferlab explain` measured, for each row flagged `negative` (vs {saved.get('baseline', 'scratch')}): "
             "a domain classifier on the inputs, the class-prior shift estimated by BBSE, how much renaming classes "
             "would fix a source-trained classifier, and the per-class accuracy change against the baseline on the "
             "same test examples. A cause is named only when its measurement crosses its threshold "
             "(`analysis.explain.THRESHOLDS`).")
    items = []
    for r in rows:
        losers = [c for c in r.get("per_class", []) if (c.get("change") or 0) < 0][:3]
        lost = "; ".join(f"{c['class_name']} {100 * c['change']:+.0f} pts" for c in losers)
        ev = r.get("evidence", {})
        measured = []
        if ev.get("discriminator_after") is not None:
            measured.append(f"domain classifier {100 * ev['discriminator_before']:.0f}% before adaptation → "
                            f"{100 * ev['discriminator_after']:.0f}% after")
        # (per-class W2 is in explanations.json, but inputs and features have different scales: no arrow here)
        items.append(f"**{r['source']} → {r['target']}, {r['method']}, budget {r['budget']}**: {r['reading']}"
                     + (f" ({'; '.join(measured)})" if measured else "")
                     + (f" — classes that lose most: {lost}" if lost else ""))
    doc.bullets(items)


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _num(v, digits: int = 2) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if not math.isfinite(v) else f"{v:.{digits}f}"
