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
from .forecast import EVALUATION_FILE, SUMMARY_FILE, trivial_comparison


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
             f"*Chance* is the 95 % band of each statistic over {perms} relabellings of the domains (rows share "
             "domains, so they are not independent draws; with few domains the band is wide). A predictor "
             "*beats trivial* only when it is above that band and above every trivial baseline: `source_size`, "
             "`knn_source_acc` (1-NN from the source) and `target_only_acc` (how hard the target is alone)." + cost)
    verdicts = summary.get("verdicts")
    if verdicts:
        doc.para(_verdict_sentence(verdicts))
    for line in trivial_comparison(table):
        doc.para(line)
    band = lambda lo, hi: f"{_num(lo)} – {_num(hi)}"  # noqa: E731
    doc.table(pd.DataFrame({
        "predictor": table["predictor"], "kind": table["kind"],
        "AUROC (negative)": [_num(v) for v in table["auroc"]],
        "chance (AUROC)": [band(lo, hi) for lo, hi in zip(table.get("auroc_null_low", []),
                                                          table.get("auroc_null_high", []))],
        "mean τ_w": [_num(v) for v in table["mean_tau_w"]],
        "chance (τ_w)": [band(lo, hi) for lo, hi in zip(table.get("tau_null_low", []),
                                                       table.get("tau_null_high", []))],
        "beats trivial (AUROC / τ_w)": [f"{_yes(a)} / {_yes(t)}" for a, t in
                                        zip(table.get("beats_trivial", []), table.get("beats_trivial_tau", []))],
        "rows": table["n_rows"], "negative": table["n_negative"]}))


def _verdict_sentence(v: dict) -> str:
    """predict's hurt/help verdicts against what was measured, with the base rate beside them."""
    parts = []
    for call, side in (("hurt", "below"), ("help", "above")):
        c = v.get(call) or {}
        if not c.get("pairs"):
            parts.append(f"no `{call}` verdict")
            continue
        flagged = f", {c['flagged']} of them flagged significantly" if c.get("flagged") is not None else ""
        parts.append(f"{c['pairs']} `{call}` verdicts, whose {c['rows']} measured rows were {side} "
                     f"`{v['baseline']}` in {c['right']} ({100 * c['right'] / max(c['rows'], 1):.0f} %{flagged})")
    base = 100 * v["rows_below_baseline"] / v["rows"] if v.get("rows") else float("nan")
    return (f"Verdicts (each checked leave-one-target-out on the other targets' measured rows; `unsure` where the "
            f"predictor had not been right ≥ 80 % there): {'; '.join(parts)}; {v.get('unsure_pairs', 0)} pairs "
            f"unsure. For comparison, {base:.0f} % of all measured rows are below `{v['baseline']}` — what "
            f"saying `hurt` everywhere would score.")


def _yes(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return "yes" if str(v).lower() in ("true", "1", "yes") else "no"


def section_explanations(doc, run_dir: Path) -> None:
    saved = _json(run_dir / EXPLANATIONS_FILE)
    rows = saved.get("rows") or []
    if not rows:
        return
    doc.heading("Why the flagged rows hurt")
    took = f" It took {saved['seconds']:.1f} s, from what the run stored (no retraining)." if saved.get("seconds") \
        else ""
    doc.para(f"`transferlab explain` leads each row flagged `negative` (vs {saved.get('baseline', 'scratch')}) with "
             "that row's own measurements — its gain and the classes that lose most against the baseline on the same "
             "test examples — then the pair's cause: a domain classifier on the inputs, how much renaming classes "
             "would fix a source-trained classifier, and the class priors (BBSE, read only where the inputs are not "
             "separable and a label-shift test on the source model's predictions sees a shift). A cause is named "
             "only when its measurement crosses its threshold (`analysis.explain.THRESHOLDS`); *after adaptation* "
             "is said only of methods that align." + took)
    items = []
    for r in rows:
        ev = r.get("evidence", {})
        measured = []
        if ev.get("discriminator_after") is not None:
            measured.append(f"domain classifier {100 * ev['discriminator_before']:.0f}% on the inputs → "
                            f"{100 * ev['discriminator_after']:.0f}% on {r['method']}'s features")
        # (per-class W2 is in explanations.json, but inputs and features have different scales: no arrow here)
        items.append(f"**{r['source']} → {r['target']}, {r['method']}, budget {r['budget']}**: {r['reading']}"
                     + (f" ({'; '.join(measured)})" if measured else ""))
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
