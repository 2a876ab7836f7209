"""The report's detail sections: the statistics tables, unconverged and budget-0 rows, distances against gain,
label-budget and training curves, failed cells."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots
from .report_document import _ci, _describe_filters, _Doc, _num, _p, _pair, _pts, _slug
from .report_figures import _Figures
from .report_summary import _Analysis, _correlations, _distance_columns, _power_sentence, _with_distances, _worst

BUDGET_CURVE_PAIRS = 4

def _section_worst(doc: _Doc, a: _Analysis, top: int) -> None:
    doc.heading("Worst pairs")
    if a.nt is None:
        doc.para(a.notes.get("gain", "Gains unavailable."))
        return
    worst = _with_distances(_worst(a, top), a)
    rows = []
    for rank, r in enumerate(worst.itertuples(index=False), 1):
        d = r._asdict()
        row = {"rank": rank, "pair": _pair(d["source"], d["target"]), "method": d["method"],
               "budget": d["budget"], "gain (pts)": _pts(d["gain"]), "95% CI": _ci(d["ci_low"], d["ci_high"]),
               "q": _p(d["q_value"]), "flag": d["flag"], "vs": d["baseline"], "seeds": d["n_seeds"]}
        for col in _distance_columns(a):
            row[col] = _num(d.get(col))
        rows.append(row)
    doc.para("Ranked: flagged rows first, then by gain. Gains in accuracy points (method − baseline, "
             "seed-paired; `vs` names the baseline). " + (f"Distances: {a.dist_note}." if a.dist is not None
                                                            else f"Distances {a.dist_note}."))
    doc.table(pd.DataFrame(rows))


def _fmt_stats(table: pd.DataFrame, ref_col: str, ref_name: str) -> pd.DataFrame:
    return pd.DataFrame({
        "pair": [_pair(s, t) for s, t in zip(table["source"], table["target"])],
        "method": table["method"], "budget": table["budget"],
        "gain (pts)": [_pts(g) for g in table["gain"]],
        "95% CI": [_ci(lo, hi) for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "p": [_p(p) for p in table["p_value"]], "q": [_p(q) for q in table["q_value"]],
        "flag": table["flag"], "seeds": table["n_seeds"],
        "accuracy (%)": [_pts(x, signed=False) for x in table["mean_accuracy"]],
        ref_name: [_pts(x, signed=False) for x in table[ref_col]],
        "margin (pts)": [_pts(x, signed=False) for x in table["min_effect"]],
        "MDE (pts)": [_pts(x, signed=False) for x in table["mde"]],
        "seeds needed": [("" if not np.isfinite(v) else ">1000" if np.isinf(v) else str(int(v)))
                         if isinstance(v, float) else "" for v in table["seeds_needed"].astype(float)],
        "note": table["note"],
    })


_STATS_NOTE = ("Moderated t over seeds (variances shrunk toward the family's pooled variance; Smyth 2004), "
               "one-sided per direction against the margin (`margin`: one test example), Benjamini–Hochberg "
               "q per direction over the tested rows at budget > 0. `MDE`: the loss detectable with 80% power "
               "at the row's variance and seeds; `seeds needed`: for inconclusive rows, the seeds at which the "
               "observed effect would be detected. Zero-variance and one-seed rows never get p = 0 (an exact "
               "McNemar test on the per-example outcomes is added where recorded; `note`).")


def _section_tables(doc: _Doc, a: _Analysis) -> None:
    doc.heading("Negative transfer")
    if a.nt is None:
        doc.para(a.notes.get("gain", "Gains unavailable."))
    else:
        doc.para("Baseline: **`scratch`** (random init, target labels only, same seed and budget): does "
                 "transfer beat training from nothing? " + _STATS_NOTE + " " + _power_sentence(a.nt))
        doc.table(_fmt_stats(a.nt, "mean_scratch", "scratch acc (%)"))
    if a.nt_all is not None:
        orphans = a.nt_all[a.nt_all["untested"] == "no-baseline"]
        if len(orphans):
            doc.para(f"`no-baseline` ({len(orphans)} rows, not tested, never compared with chance): "
                     + ", ".join(f"{_pair(r.source, r.target)} `{r.method}` budget {r.budget}"
                                 for r in orphans.head(20).itertuples()) + ("…" if len(orphans) > 20 else "."))

    if a.source is not None:
        doc.heading("Source effect (vs target-only)")
        doc.para("Baseline: **`target-only`** (the transfer methods' initial weights, target labels only): "
                 "does the *source domain* help, beyond the initialisation? (Wang et al.'s negative-transfer "
                 "gap.) " + _STATS_NOTE + " " + _power_sentence(a.source))
        doc.table(_fmt_stats(a.source, "mean_scratch", "target-only acc (%)"))

    _section_unconverged(doc, a)
    _section_budget_zero(doc, a)

    doc.heading("DA harm")
    if a.harm is None:
        doc.para(a.notes.get("harm", "Unavailable."))
    else:
        tested = a.harm[a.harm["flag"].isin(["harm", "help", "no-effect", "inconclusive"])]
        doc.para("Baseline: **`finetune`** on the same pair, seed and budget: does the adaptation term help or "
                 "harm? `harm` when significantly worse. Budget 0 and budget > 0 are separate FDR families. "
                 + _STATS_NOTE + " " + _power_sentence(tested))
        doc.table(_fmt_stats(a.harm, "mean_reference", "finetune acc (%)"))

    doc.heading("Budget crossover")
    if a.crossover is None:
        doc.para(a.notes.get("crossover", "Unavailable."))
    else:
        doc.para("`crossover_budget`: the smallest label budget from which scratch beats the method at that "
                 "and every larger budget (point estimates); `support`: the share of bootstrap resamples of the "
                 "seeds with a crossover, `95% CI` its percentile interval (`inf`: no crossover within the "
                 "budgets run); `confirmed`: the loss at the largest budget is flagged `negative`. A crossover "
                 "that is not confirmed is a point estimate, not a finding.")
        cross = a.crossover.copy()
        cross.insert(0, "pair", [_pair(s, t) for s, t in zip(cross.pop("source"), cross.pop("target"))])
        for col in ("crossover_budget", "first_negative_budget"):
            cross[col] = [("" if not np.isfinite(v) else str(int(v))) for v in cross[col].astype(float)]
        cross["95% CI"] = [("" if not np.isfinite(lo) else f"[{lo:g}, {hi:g}]")
                           for lo, hi in zip(cross.pop("ci_low").astype(float),
                                             cross.pop("ci_high").astype(float))]
        cross["support"] = [_num(v) for v in cross["support"]]
        doc.table(cross)


def _section_unconverged(doc: _Doc, a: _Analysis) -> None:
    tables = [(name, t[t["untested"] == "unconverged"]) for name, t in (("scratch", a.nt_all),
                                                                    ("target-only", a.source_all))
              if t is not None]
    rows = pd.concat([t.assign(vs=name) for name, t in tables if len(t)], ignore_index=True) \
        if any(len(t) for _, t in tables) else None
    if rows is None:
        return
    doc.heading("Unconverged rows")
    doc.para("These rows are **not** tested and never flagged `negative` or `positive`: an arm's training loss "
             "was still falling (or its labelled-target accuracy still climbing) at the end of a phase, so the "
             "gain measures where training stopped, not transfer. To decide them, train longer "
             "(`train.steps`) or with a larger learning rate (`train.lr`), or a schedule that ends lower "
             "(`train.lr_schedule`), then rerun these cells (`transferlab run` resumes).")
    doc.table(pd.DataFrame({
        "pair": [_pair(s, t) for s, t in zip(rows["source"], rows["target"])], "method": rows["method"],
        "budget": rows["budget"], "vs": rows["vs"], "gain (pts)": [_pts(g) for g in rows["gain"]],
        "seeds": rows["n_seeds"], "why": rows["convergence_reason"]}))


def _section_budget_zero(doc: _Doc, a: _Analysis) -> None:
    if a.zero is None or not len(a.zero):
        return
    z = a.zero
    doc.heading("Budget 0 (no target labels)")
    doc.para("Without target labels no target-only baseline can train, so these rows are not in the "
             "negative-transfer family. Accuracy over the test counts pooled over seeds, with the exact "
             "(Clopper–Pearson) 95% interval; one-sided exact binomial tests against chance (1/K), and, "
             "where per-example outcomes are recorded, an exact McNemar test against the source-only model "
             "(`finetune` at budget 0) on the same test examples; all p-values of this table form one "
             "Benjamini–Hochberg family of their own. Pooling treats test predictions as independent, so "
             "these say whether the model family is above chance on these test sets, not how it varies "
             f"over seeds. With {int(z['n'].median()) if z['n'].notna().any() else 'n/a'} pooled test "
             "predictions per row (median), the interval is about ±"
             f"{_half_width(z)} points wide.")
    doc.table(pd.DataFrame({
        "pair": [_pair(s, t) for s, t in zip(z["source"], z["target"])], "method": z["method"],
        "seeds": z["n_seeds"], "accuracy (%)": [_pts(x, signed=False) for x in z["accuracy"]],
        "exact 95% CI": [_ci(lo, hi).replace("+", "") for lo, hi in zip(z["ci_low"], z["ci_high"])],
        "chance (%)": [_pts(x, signed=False) for x in z["chance"]],
        "correct / n": [f"{int(k)}/{int(n)}" if np.isfinite(n) else "n/a"
                        for k, n in zip(z["correct"], z["n"])],
        "q above": [_p(q) for q in z["q_above"]], "q below": [_p(q) for q in z["q_below"]], "flag": z["flag"],
        "vs finetune (pts)": [_pts(g) for g in z["gain_vs_reference"]],
        "q vs finetune": [_p(q) for q in z["q_vs_reference"]], "flag vs finetune": z["flag_vs_reference"],
        "converged": ["yes" if c else "no" for c in z["converged"]]}))


def _half_width(z: pd.DataFrame) -> str:
    w = (z["ci_high"] - z["ci_low"]).to_numpy(float) / 2
    w = w[np.isfinite(w)]
    return f"{100 * np.median(w):.1f}" if len(w) else "n/a"


def _section_distances(doc: _Doc, a: _Analysis, figs: _Figures) -> None:
    doc.heading("Distances vs gain")
    cols = _distance_columns(a)
    if not cols:
        doc.para(f"Domain distances {a.dist_note}.")
        return
    doc.para(f"Distances between the inputs of each pair ({a.dist_note}). `otdd`/`class_w2` read the "
             f"target labels (oracle quantities for analysis, not for model selection).")
    negative = [_pair(s, t) for s, t, v in zip(a.dist["source"], a.dist["target"],
                                                 pd.to_numeric(a.dist.get("mmd2", pd.Series(dtype=float)),
                                                               errors="coerce")) if v < 0]
    if negative:
        doc.para(f"`mmd2` is below 0 for {', '.join(negative)}. It is the unbiased estimate (Gretton et al., JMLR "
                 "2012): the within-sample kernel means leave out the diagonal, so when the two samples are no "
                 "more different than two draws of one distribution it scatters around 0 and can dip below it. "
                 "Read a negative value as 0 — no difference this sample size can see.")
    dist = a.dist.copy()
    dist.insert(0, "pair", [_pair(s, t) for s, t in zip(dist.pop("source"), dist.pop("target"))])
    for c in cols:
        dist[c] = [_num(v) for v in dist[c]]
    doc.table(dist)
    if a.nt is None:
        doc.para(a.notes.get("gain", "Gains unavailable") + " No distance–gain scatter.")
        return
    corr = _correlations(a)
    if corr is not None and len(corr):
        doc.para("Spearman rank correlation of each distance with the gain (a harm predictor has ρ < 0). The "
                 "pairs share domains, so `p_value` permutes the domain labels of the distance matrix (Mantel/QAP; "
                 "with D domains no p below 1/D! exists: 1/24 for 4), and `p_adjusted` corrects for the "
                 "distances tried (max-statistic); `p_spearman` wrongly treats the pairs as independent and "
                 "is shown for reference only.")
        doc.table(corr.assign(rho=[_num(v) for v in corr["rho"]], p_value=[_p(v) for v in corr["p_value"]],
                              p_adjusted=[_p(v) for v in corr["p_adjusted"]],
                              p_spearman=[_p(v) for v in corr["p_spearman"]]))
    joined = _with_distances(a.nt, a)
    ncol = min(3, len(cols))
    nrow = math.ceil(len(cols) / ncol)
    from matplotlib.figure import Figure

    for budget in a.budgets:
        part = joined[joined["budget"] == budget]
        if part.empty:
            continue
        fig = Figure(figsize=(5.6 * ncol, 4.3 * nrow), layout="constrained")
        axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
        for ax, col in zip(axes, cols):
            plots.distance_gain_scatter(part, col, ax=ax)
        for ax in axes[len(cols):]:
            ax.set_axis_off()
        fig.suptitle(f"Gain vs scratch against domain distance, {budget} target labels per class")
        doc.figure(figs.save(fig, f"distance_gain_b{budget}"),
                   f"Gain vs distance at budget {budget}; black rings: flagged NT")


def _section_budget_curves(doc: _Doc, a: _Analysis, figs: _Figures) -> None:
    doc.heading("Label-budget curves")
    if not len(a.ok):
        doc.para("No finished cells.")
        return
    if a.nt is not None:
        pairs = list(dict.fromkeys(zip(_worst(a, len(a.nt))["source"], _worst(a, len(a.nt))["target"])))
        why = "the worst pairs (as ranked above)"
    else:
        means = a.ok.groupby(["source", "target"])["accuracy"].mean().sort_values()
        pairs = list(means.index)
        why = "the pairs with the lowest mean accuracy"
    pairs = pairs[:BUDGET_CURVE_PAIRS]
    doc.para(f"Target accuracy against target labels per class for {why}: mean over seeds with a 95% "
             f"Student-t interval, every method and scratch."
             + (" The run has a single budget, so each curve is one point." if len(a.budgets) == 1 else ""))
    for s, t in pairs:
        fig = plots.budget_curves(a.df, s, t, methods=a.methods)
        doc.figure(figs.save(fig, f"budget_{s}_{t}"), f"Label-budget curve, {_pair(s, t)}")


def _section_training(doc: _Doc, a: _Analysis, figs: _Figures, run_dir: Path,
                      chosen: tuple[dict, str]) -> None:
    from .results import load_curves

    doc.heading("Training curves")
    filters, why = chosen
    if not filters:
        doc.para(why)
        return
    curves = load_curves(run_dir, **filters)
    label = _describe_filters(filters)
    if curves.empty:
        doc.para(f"{label} ({why}): the records hold no training curves (closed-form methods have none).")
        return
    seeds = sorted(curves["seed"].dropna().unique())
    doc.para(f"{label}: {why}; {len(seeds)} seed{'s' if len(seeds) != 1 else ''}. Losses are window means "
             f"between evaluation points; `target_labelled_acc` is accuracy on the labelled target subset "
             f"(training data), not the test split; `disc_acc` (DANN) is the domain discriminator's accuracy "
             f"on the training batches — near 100% it has won and sends almost no reversed gradient, near "
             f"50% the domains are confused.")
    fig = plots.training_curves(curves, title=f"Training curves: {label}")
    doc.figure(figs.save(fig, "training_" + _slug(*filters.values())), f"Training curves, {label}")


def _section_failed(doc: _Doc, a: _Analysis) -> None:
    failed = a.df[a.df["status"].astype(str) != "ok"]
    doc.heading("Failed cells")
    if failed.empty:
        doc.para("None.")
        return
    cols = [c for c in ("source", "target", "method", "budget", "seed", "reason") if c in failed.columns]
    doc.para(f"{len(failed)} cell{'s' if len(failed) != 1 else ''} failed; they are left out of every "
             f"statistic above (a pair with no finished seed shows n/a).")
    doc.table(failed[cols].reset_index(drop=True))
