"""What the report reads first: the run's analysis (:class:`_Analysis`), the decision per target
(``recommendations.csv``), the verdict counts, and the run and findings sections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots
from .report_document import _ci, _Doc, _p, _pair, _pts

SCRATCH = "scratch"
TARGET_ONLY = "target-only"

# ---------------------------------------------------------------------------------------------- analysis
@dataclass
class _Analysis:
    df: pd.DataFrame
    ok: pd.DataFrame
    run_info: dict
    domains: list[str]
    methods: list[str]
    budgets: list[int]
    has_scratch: bool
    nt: pd.DataFrame | None = None  # tested rows vs scratch (budget > 0, baseline present, converged)
    nt_all: pd.DataFrame | None = None  # every row of negative_transfer, unconverged and no-baseline included
    source: pd.DataFrame | None = None  # tested rows vs target-only (the source's own effect)
    source_all: pd.DataFrame | None = None
    zero: pd.DataFrame | None = None  # budget_zero: accuracy vs chance, exact tests, own family
    outcomes: pd.DataFrame | None = None
    harm: pd.DataFrame | None = None
    crossover: pd.DataFrame | None = None
    dist: pd.DataFrame | None = None
    dist_note: str = ""
    notes: dict[str, str] = field(default_factory=dict)



def _distance_columns(a: _Analysis) -> list[str]:
    if a.dist is None:
        return []
    return [c for c in a.dist.columns if c not in ("source", "target")
            and pd.api.types.is_numeric_dtype(a.dist[c])]


def _with_distances(table: pd.DataFrame, a: _Analysis) -> pd.DataFrame:
    cols = _distance_columns(a)
    if not cols:
        return table
    return table.merge(a.dist[["source", "target", *cols]], on=["source", "target"], how="left")


def _worst(a: _Analysis, top: int) -> pd.DataFrame:
    """NT rows, flagged first, then by gain (lowest first)."""
    nt = a.nt.assign(_flag=[not plots.is_flagged(f) for f in a.nt["flag"]])
    return nt.sort_values(["_flag", "gain"], kind="mergesort").drop(columns="_flag").head(top)



# ---------------------------------------------------------------------------------------------- sections
def _section_run(doc: _Doc, a: _Analysis, run_dir: Path) -> None:
    cfg = a.run_info.get("config") or {}
    n_ok = len(a.ok)
    n_failed = int((a.df["status"].astype(str) != "ok").sum())
    items = [f"run folder: `{run_dir}`",
             f"data: `{(cfg.get('data') or {}).get('kind', '?')}`; domains: " + ", ".join(a.domains),
             "methods: " + ", ".join(f"`{m}`" for m in a.methods),
             "budgets (target labels per class): " + ", ".join(map(str, a.budgets)),
             f"seeds: {len(cfg.get('seeds') or a.df['seed'].dropna().unique())}",
             f"cells: {len(a.df)} recorded, {n_ok} finished, {n_failed} failed"]
    expected = len(a.run_info.get("cells") or [])
    if expected and expected != len(a.df):
        items[-1] += f" ({expected} expected by run.json: {expected - len(a.df)} missing)"
    others = int(a.df.attrs.get("other_records", 0))
    if others:
        items.append(f"{others} other record(s) in `cells/` belong to cells this config does not ask for (an "
                     f"earlier question of this folder, see run.json's history); not reported here")
    git = a.run_info.get("git") or {}
    if isinstance(git, Mapping) and git.get("commit"):
        items.append(f"code: git `{str(git['commit'])[:12]}`" + (" (dirty)" if git.get("dirty") else ""))
    if cfg.get("train"):
        tr = cfg["train"]
        items.append(f"training: {tr.get('steps')} steps, batch {tr.get('batch_size')}, lr {tr.get('lr')}, "
                     f"selection `{tr.get('selection', 'last')}`; "
                     f"model `{(cfg.get('model') or {}).get('backbone')}`")
    items.append(f"report built {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    doc.heading("Run")
    doc.bullets(items)


def _section_findings(doc: _Doc, a: _Analysis, alpha: float) -> None:
    doc.heading("Findings")
    items = []
    baseline, table = decision_baseline(a)
    tested = None if table is None else table[table["flag"].astype(str).isin(TESTED_FLAGS).to_numpy()]
    if tested is not None and len(tested):
        flagged = tested[tested["flag"] == "negative"]
        items.append(counts_sentence(verdict_counts(table, baseline), baseline, short=True)
                     + f" `negative`: gain significantly below −min_effect (one-sided moderated t, "
                     f"Benjamini–Hochberg q < {alpha}); `untested`: an arm had not converged or had no baseline "
                     f"on the same seeds (see **Unconverged rows**).")
        for row in flagged.sort_values("gain").head(5).itertuples():
            items.append(f"NT: {_pair(row.source, row.target)}, `{row.method}`, budget {row.budget}: gain "
                         f"{_pts(row.gain)} points vs `{baseline}`, 95% CI {_ci(row.ci_low, row.ci_high)}, "
                         f"q = {_p(row.q_value)}")
        if flagged.empty:
            for row in tested[tested["gain"] < 0].sort_values("gain").head(3).itertuples():
                items.append(f"Largest loss, not significant: {_pair(row.source, row.target)}, "
                             f"`{row.method}`, budget {row.budget}: gain {_pts(row.gain)} points, 95% CI "
                             f"{_ci(row.ci_low, row.ci_high)}, q = {_p(row.q_value)}")
        items.append(f"At {_seed_text(tested)}: {_power_sentence(tested)}")
        if baseline != SCRATCH and a.nt is not None:
            items.append("Against `scratch` (random init) the same rows are tested in the appendix "
                         "(**Negative transfer**).")
    if "gain" in a.notes:
        items.append(a.notes["gain"])
    if a.zero is not None and len(a.zero):
        above = int((a.zero["flag"] == "above-chance").sum())
        below = int((a.zero["flag"] == "below-chance").sum())
        items.append(f"Budget 0 (no target labels; its own table and FDR family): {above} of {len(a.zero)} "
                     f"rows above chance, {below} below chance (exact binomial tests on the pooled test "
                     f"counts).")
    if a.harm is not None:
        harm = a.harm[a.harm["flag"] == "harm"]
        tested = int(a.harm["flag"].isin(["harm", "help", "no-effect", "inconclusive"]).sum())
        unconv = int((a.harm["untested"] == "unconverged").sum())
        items.append(f"DA harm: {len(harm)} of {tested} tested adaptation rows are significantly worse than "
                     f"plain `finetune` on the same pair" + (f" ({unconv} more not tested: an arm had not "
                                                             f"converged)" if unconv else "")
                     + (":" if len(harm) else "."))
        for row in harm.sort_values("gain").head(5).itertuples():
            items.append(f"harm: {_pair(row.source, row.target)}, `{row.method}`, budget {row.budget}: "
                         f"{_pts(row.gain)} points vs finetune, 95% CI {_ci(row.ci_low, row.ci_high)}, "
                         f"q = {_p(row.q_value)}")
    if a.nt is not None and a.dist is not None:
        corr = _correlations(a)
        if corr is not None and corr["rho"].notna().any():
            best = corr.loc[corr["rho"].abs().idxmax()]
            n_tried = int(corr["rho"].notna().sum())
            verdict = ("significant after adjusting for the distances tried"
                       if best["p_adjusted"] < alpha else "not significant once the distances tried are "
                       "accounted for")
            items.append(f"Strongest distance–gain association of {n_tried} tried: `{best['distance']}` for "
                         f"`{best['method']}` at budget {best['budget']} (Spearman ρ = {best['rho']:+.2f}, "
                         f"n = {int(best['n'])} pairs of {int(best['n_domains'])} domains; permutation over "
                         f"domains p = {_p(best['p_value'])}, max-statistic adjusted p = "
                         f"{_p(best['p_adjusted'])}: {verdict}).")
    doc.bullets(items or ["No finished cells."])


def _power_sentence(table: pd.DataFrame) -> str:
    """One sentence on what the table's seeds can show: typical detectable loss, seeds an effect needs."""
    mde = table["mde"].to_numpy(float)
    mde = mde[np.isfinite(mde)]
    if not len(mde):
        return ""
    text = (f"With these seeds a loss is detected (80% power, per-test level) from about "
            f"{100 * np.median(mde):.1f} points (median over rows; {100 * mde.min():.1f}–{100 * mde.max():.1f})")
    need = table.loc[table["flag"] == "inconclusive", "seeds_needed"].to_numpy(float)
    finite = need[np.isfinite(need)]
    if len(finite):
        text += (f"; the inconclusive rows' observed effects would need a median of {int(np.median(finite))} "
                 f"seeds")
    unreachable = int((~np.isfinite(need)).sum())
    if unreachable:
        text += f" ({unreachable} are within the margin or need more than 1000)"
    return text + "."


def _seed_text(nt: pd.DataFrame) -> str:
    n = nt["n_seeds"].dropna()
    if n.empty:
        return "this number of seeds"
    low, high = int(n.min()), int(n.max())
    return f"{high} seeds" if low == high else f"{low}–{high} seeds"


def _correlations(a: _Analysis) -> pd.DataFrame | None:
    from .predictors import distance_gain_correlation

    cols = _distance_columns(a)
    if a.nt is None or not cols:
        return None
    return distance_gain_correlation(a.nt, a.dist, columns=cols, by=("method", "budget"))


# ---------------------------------------------------------------------------------------------- decisions
RECOMMENDATIONS_FILE = "recommendations.csv"
TARGET_ALONE = "the target alone"
#: Flags that mean "tested"; everything else (``unconverged``, ``no-baseline``, ``untested``) was not.
TESTED_FLAGS = ("negative", "positive", "no-effect", "inconclusive")
RECOMMENDATION_COLUMNS = ["target", "budget", "baseline", "choice", "source", "method", "accuracy", "gain",
                          "ci_low", "ci_high", "q_value", "verdict", "runner_up", "runner_up_gain",
                          "runner_up_verdict", "baseline_accuracy", "n_rows", "n_positive", "n_negative"]


def decision_baseline(a: _Analysis) -> tuple[str, pd.DataFrame | None]:
    """The baseline the decisions are made against and its full table (every row, tested or not):
    ``target-only`` when the run has it (does the source help beyond the initialisation?), else ``scratch``."""
    if a.source_all is not None:
        return TARGET_ONLY, a.source_all
    return SCRATCH, a.nt_all


def recommendations(table: pd.DataFrame, baseline: str = TARGET_ONLY) -> pd.DataFrame:
    """One decision per (target, budget) from a :func:`analysis.negative_transfer` table against ``baseline``.

    The recommended choice is the transfer row (source + method) with the largest gain among the rows flagged
    ``positive`` — significantly better than ``baseline`` after the one-sided Benjamini–Hochberg correction —
    or ``the target alone`` (train on the target's labels only) when no row is. The runner-up is the next
    positive row, or, after the last one, the target alone; when the target alone wins, the runner-up is the
    tested transfer row with the largest gain (with its flag: why it was not chosen). Rows that were not tested
    (an arm unconverged, no baseline on the same seeds) are never recommended.
    """
    rows = []
    if table is None or not len(table):
        return pd.DataFrame(columns=RECOMMENDATION_COLUMNS)
    for (target, budget), g in table.groupby(["target", "budget"], sort=True):
        flags = g["flag"].astype(str)
        tested = g[flags.isin(TESTED_FLAGS).to_numpy()]
        positive = tested[tested["flag"] == "positive"].sort_values(["gain", "q_value"],
                                                                     ascending=[False, True], kind="mergesort")
        base_acc = float(np.nanmedian(g["mean_scratch"].to_numpy(float))) if g["mean_scratch"].notna().any() \
            else float("nan")
        row = {"target": target, "budget": int(budget), "baseline": baseline, "baseline_accuracy": base_acc,
               "n_rows": len(g), "n_positive": len(positive), "n_negative": int((flags == "negative").sum())}
        if len(positive):
            best = positive.iloc[0]
            row.update(choice=f"{best['source']} + {best['method']}", source=best["source"],
                       method=best["method"], accuracy=float(best["mean_accuracy"]), gain=float(best["gain"]),
                       ci_low=float(best["ci_low"]), ci_high=float(best["ci_high"]),
                       q_value=float(best["q_value"]), verdict="positive")
            if len(positive) > 1:
                second = positive.iloc[1]
                row.update(runner_up=f"{second['source']} + {second['method']}", runner_up_gain=float(second["gain"]),
                           runner_up_verdict="positive")
            else:
                row.update(runner_up=TARGET_ALONE, runner_up_gain=0.0, runner_up_verdict="baseline")
        else:
            pool = tested if len(tested) else g
            verdict = ("no transfer row significantly better" if len(tested)
                       else "no transfer row could be tested")
            row.update(choice=TARGET_ALONE, source="", method=baseline, accuracy=base_acc, gain=0.0,
                       ci_low=float("nan"), ci_high=float("nan"), q_value=float("nan"), verdict=verdict)
            if len(pool):
                best = pool.sort_values("gain", ascending=False, kind="mergesort").iloc[0]
                row.update(runner_up=f"{best['source']} + {best['method']}", runner_up_gain=float(best["gain"]),
                           runner_up_verdict=str(best["flag"]))
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=RECOMMENDATION_COLUMNS)


def verdict_counts(table: pd.DataFrame | None, baseline: str) -> dict[str, int]:
    """The verdict counts of a negative-transfer table: ``analysis.verdict_counts`` when the statistics module
    has it (the one definition shown everywhere), else the same counts from the flags: ``untested`` gathers the
    rows no test was run on (``unconverged``, ``no-baseline``)."""
    if table is None or not len(table):
        return {}
    from . import negative

    counter = getattr(negative, "verdict_counts", None)
    if counter is not None:
        counts = counter(table, baseline=baseline)  # also has rows/decided/untested_reasons/line: the flags only
        return {k: int(counts[k]) for k in negative.FLAGS if k in counts}
    flags = table["flag"].astype(str).replace({"unconverged": "untested", "no-baseline": "untested"})
    order = ["negative", "positive", "no-effect", "inconclusive", "untested"]
    counts = flags.value_counts()
    return {k: int(counts.get(k, 0)) for k in order if k in counts or k != "no-effect"}


def counts_sentence(counts: Mapping[str, int], baseline: str, short: bool = False) -> str:
    """The verdict counts in words (the one sentence the report, ``transferlab run`` and predict show)."""
    total = sum(counts.values())
    parts = ", ".join(f"**{v}** {k}" for k, v in counts.items())
    text = f"Verdicts of the {total} (source, target, method, budget > 0) rows against `{baseline}`: {parts}."
    return text if short else text + " These are the counts shown everywhere in this report."


def section_decisions(doc: _Doc, a: _Analysis, rec: pd.DataFrame | None, alpha: float) -> None:
    doc.heading("Decision per target")
    baseline, table = decision_baseline(a)
    if rec is None or not len(rec):
        doc.para(a.notes.get("gain", "No decision is possible: the run has no transfer row with a baseline at a "
                                     "label budget > 0."))
        return
    several = rec["budget"].nunique() > 1
    doc.para(f"For each target: the source and method to use, or **{TARGET_ALONE}** (train on its labelled "
             f"samples only, `{baseline}`) when no transfer row is significantly better than `{baseline}` "
             f"(one-sided moderated t over seeds, Benjamini–Hochberg q < {alpha}). Gain: accuracy minus "
             f"`{baseline}` accuracy, seed-paired, in points, with its 95% interval. Also in "
             f"`{RECOMMENDATIONS_FILE}`.")
    shown = pd.DataFrame({
        "target": rec["target"], **({"budget": rec["budget"]} if several else {}),
        "use": list(rec["choice"]),
        "accuracy (%)": [_pts(x, signed=False) for x in rec["accuracy"]],
        f"gain vs {baseline} (pts)": [_pts(g) if c != TARGET_ALONE else "—" for g, c in zip(rec["gain"], rec["choice"])],
        "95% CI": [_ci(lo, hi) if c != TARGET_ALONE else "—"
                   for lo, hi, c in zip(rec["ci_low"], rec["ci_high"], rec["choice"])],
        "verdict": [v if c == TARGET_ALONE else f"positive, q = {_p(q)}"
                    for v, c, q in zip(rec["verdict"], rec["choice"], rec["q_value"])],
        "runner-up": [("" if not isinstance(r, str) else
                       f"{r} ({_pts(g)} pts, {v})" if r != TARGET_ALONE else r)
                      for r, g, v in zip(rec["runner_up"], rec["runner_up_gain"], rec["runner_up_verdict"])],
    })
    doc.table(shown)
    counts = verdict_counts(table, baseline)
    if counts:
        doc.para(counts_sentence(counts, baseline))
