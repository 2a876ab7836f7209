"""Label-free selection among a sweep's configurations, and the oracle gap (an upper reference, never a verdict).

A sweep (``{name: dann, trade_off: [0.3, 1, 3]}``, or lists under ``train:``) trains one cell per configuration;
a *group* is one (source, target, sweep, budget, seed) — at one ``train.steps`` level — and the run's
``selection: {rule: NAME}`` picks one configuration per group from what each cell recorded at train time
(``selection_evidence`` in its record, computed by the trainer from the training data only: the held-out
source, the unlabelled target pool, the budget's labelled target samples). Nothing here reads a record's
``accuracy``, ``outcomes`` or any other quantity computed from target test labels: :func:`select` sees only the
``selection_evidence.*`` columns (tests/analysis/test_selection.py scrambles the test accuracies and checks the
choice does not move).

Rules (higher score wins; a risk is negated):

- ``target-cv`` — K-fold cross-validation on the budget's labelled target samples (stratified; each fold's
  model trained by the same method on the other folds' labels, scored on the held-out fold); score = mean fold
  accuracy. Needs a budget >= 2. (DomainBed's "oracle" with the few labels a budget gives; K models per cell.)
- ``source-val`` — accuracy on held-out source samples (``selection.source_holdout`` of each source class,
  never trained on); DomainBed's training-domain validation. Blind to the shift.
- ``iwcv`` — importance-weighted cross-validation (Sugiyama, Krauledat & Müller, JMLR 2007): the held-out
  source risk with each sample weighted by the density ratio ``w(x) = p_T(x) / p_S(x)``,
  ``R_IWCV = (1/n) Σ_i w_i ℓ_i`` (ℓ = cross-entropy); score = −R.
- ``dev`` — Deep Embedded Validation (You, Wang, Chen, Long & Wang, "Towards Accurate Model Selection in Deep
  Unsupervised Domain Adaptation", ICML 2019): the IWCV risk with ``w`` estimated in the model's feature space by
  a domain classifier (source train vs unlabelled target features, ``w = (n_S/n_T) · P(T|f)/P(S|f)``) and the
  weight as control variate to cut its variance,
  ``R_DEV = mean(w ℓ) + η · mean(w) − η``, ``η = −Cov(w ℓ, w) / Var(w)``; score = −R.
- ``im``, ``snd``, ``entropy`` — pytorch-adapt's validators (Musgrave, Belongie & Lim, "Unsupervised Domain
  Adaptation: A Reality Check", 2021; :mod:`adapt.validators`) on the final model's logits for the unlabelled
  target pool: information maximisation, soft neighbourhood density (Saito et al. 2021), negative entropy.

Ties go to the configuration listed first in the grid (the record's ``grid_index``). A group where no
configuration has the rule's evidence (e.g. ``source-val`` for a method that never reads the source) falls back
to its first configuration and says so in ``selection_rule`` (``"first (no source-val evidence)"``).

The *oracle* of a group is its best configuration by test accuracy: :func:`oracle_gap` reports how far the
selected configuration is from it — how much the rule leaves on the table — and nothing else uses it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

EVIDENCE_PREFIX = "selection_evidence."
# rule -> (evidence field, +1: higher is better / -1: a risk, lower is better)
RULES: dict[str, tuple[str, int]] = {
    "target-cv": ("target_cv_acc", +1),
    "source-val": ("source_val_acc", +1),
    "iwcv": ("iwcv_risk", -1),
    "dev": ("dev_risk", -1),
    "im": ("im", +1),
    "snd": ("snd", +1),
    "entropy": ("entropy", +1),
}
# The rule a sweep gets when its config names none; see README "Sweeps and label-free selection" for the
# measurements and literature behind it.
DEFAULT_RULE = "source-val"
GROUP_COLUMNS = ("source", "target", "sweep", "budget", "seed")
STEPS_COLUMN = "train.steps"


def group_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that make a selection group: (source, target, sweep, budget, seed) and the ``train.steps``
    level when records carry it (the adaptive runner trains a comparison on at doubled steps)."""
    return [*GROUP_COLUMNS, *([STEPS_COLUMN] if STEPS_COLUMN in frame.columns else [])]


def _usable(frame: pd.DataFrame) -> pd.Series:
    """Finished cells (a failed configuration is never selected)."""
    if "status" not in frame.columns:
        return pd.Series(True, index=frame.index)
    return frame["status"].astype(str).str.strip().str.lower() == "ok"


def with_sweep(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``sweep`` column (the configuration's entry label; the ``method`` itself outside sweeps)
    and ``grid_index`` (the configuration's place in its grid; 0 outside sweeps)."""
    out = frame.copy()
    method = out["method"].astype(object)
    if "sweep" not in out.columns:
        out["sweep"] = method
    else:
        sweep = out["sweep"].astype(object)
        out["sweep"] = sweep.where(sweep.notna() & (sweep.astype(str) != ""), method)
    if "grid_index" not in out.columns:
        out["grid_index"] = 0
    out["grid_index"] = pd.to_numeric(out["grid_index"], errors="coerce").fillna(0).astype(int)
    return out


def select(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    """``frame`` with ``selected`` (bool: the configuration ``rule`` picks in its group), ``selection_rule``
    (the rule, or the fallback used) and ``selection_score`` (the rule's score, higher is better; NaN without
    evidence). Reads only the ``selection_evidence.*`` columns, ``status`` and the group columns."""
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; expected one of {list(RULES)}")
    field, sign = RULES[rule]
    out = with_sweep(frame)
    column = EVIDENCE_PREFIX + field
    score = pd.to_numeric(out[column], errors="coerce") * sign if column in out.columns else \
        pd.Series(np.nan, index=out.index)
    usable = _usable(out)
    score = score.where(usable)
    out["selection_score"] = score
    out["selected"] = False
    out["selection_rule"] = None
    keys = group_columns(out)
    for _, group in out[usable].groupby(keys, dropna=False, sort=False):
        scores = score.loc[group.index]
        if scores.notna().any():
            best = scores.max()
            pick = group[scores == best].sort_values("grid_index", kind="mergesort").index[0]
            used = rule
        else:
            pick = group.sort_values("grid_index", kind="mergesort").index[0]
            used = f"first (no {rule} evidence)" if len(group) > 1 else rule
        out.loc[pick, "selected"] = True
        out.loc[group.index, "selection_rule"] = used
    return out


def selected_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the statistics use when ``frame`` has a ``selected`` column: the selected configuration of each
    group, with ``method`` set to its sweep's label (``dann``) and the configuration's label kept in
    ``configuration``. Without a ``selected`` column, ``frame`` itself."""
    if "selected" not in frame.columns:
        return frame
    chosen = frame["selected"].map(lambda v: bool(v) if v == v and v is not None else False).astype(bool)
    out = frame[chosen]
    if "sweep" not in out.columns:
        return out
    sweep = out["sweep"].astype(object)
    named = sweep.notna() & (sweep.astype(str) != "")
    return out.assign(configuration=out["method"], method=sweep.where(named, out["method"]))


def oracle_gap(frame: pd.DataFrame) -> pd.DataFrame:
    """Per group with more than one configuration: the selected configuration's test accuracy, the best one's
    (the *oracle*, chosen on test labels — an upper reference, never used for a verdict) and the gap.

    ``frame`` must carry ``selected`` (:func:`select`, or :func:`analysis.load_results`). Columns: the group
    columns, ``selected_configuration, selected_accuracy, oracle_configuration, oracle_accuracy, gap``
    (oracle − selected, in accuracy fractions, >= 0), ``n_configurations``, ``selection_rule``.
    """
    if "selected" not in frame.columns:
        raise ValueError("oracle_gap needs a 'selected' column (analysis.load_results of a sweep, or select())")
    out = with_sweep(frame)
    out = out[_usable(out)].assign(accuracy=lambda f: pd.to_numeric(f["accuracy"], errors="coerce"))
    out = out[np.isfinite(out["accuracy"])]
    keys = group_columns(out)
    rows = []
    for key, group in out.groupby(keys, dropna=False, sort=True):
        if len(group) < 2:
            continue
        chosen = group[group["selected"].astype(bool)]
        if chosen.empty:
            continue
        best = group.sort_values(["accuracy", "grid_index"], ascending=[False, True], kind="mergesort").iloc[0]
        pick = chosen.iloc[0]
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     "selected_configuration": pick["method"], "selected_accuracy": float(pick["accuracy"]),
                     "oracle_configuration": best["method"], "oracle_accuracy": float(best["accuracy"]),
                     "gap": float(best["accuracy"] - pick["accuracy"]), "n_configurations": len(group),
                     "selection_rule": pick.get("selection_rule")})
    columns = [*keys, "selected_configuration", "selected_accuracy", "oracle_configuration", "oracle_accuracy",
               "gap", "n_configurations", "selection_rule"]
    return pd.DataFrame(rows, columns=columns)


def rule_summary(frame: pd.DataFrame, rules: Sequence[str] | None = None) -> pd.DataFrame:
    """For each rule and sweep (and budget): the mean test accuracy of the configurations it selects, the
    oracle's, the mean gap, and how often it picks each configuration — for comparing rules on one run
    (every rule's evidence must be in the records; ``target-cv`` only where the run computed folds)."""
    rows = []
    for rule in rules or list(RULES):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gaps = oracle_gap(select(frame, rule))
        for (sweep, budget), part in gaps.groupby(["sweep", "budget"], sort=True):
            picks = part["selected_configuration"].value_counts()
            rows.append({"rule": rule, "sweep": sweep, "budget": budget, "groups": len(part),
                         "selected_accuracy": part["selected_accuracy"].mean(),
                         "oracle_accuracy": part["oracle_accuracy"].mean(), "gap": part["gap"].mean(),
                         "fallback": int(part["selection_rule"].astype(str).str.startswith("first").sum()),
                         "most_picked": f"{picks.index[0]} ({picks.iloc[0]}/{len(part)})"})
    return pd.DataFrame(rows, columns=["rule", "sweep", "budget", "groups", "selected_accuracy", "oracle_accuracy",
                                       "gap", "fallback", "most_picked"])
