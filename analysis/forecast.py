r"""Predict before training: cheap per-pair predictors of transfer gain, and how well they did once the matrix ran.

:func:`pair_predictors` computes, for one (source, target) pair and one labelled target subset, predictors that
cost seconds rather than a matrix of trained cells:

- a *source model*: L2 logistic regression on the standardised source inputs (or frozen features) — its
  accuracy on the labelled target subset (``source_model_acc``), and on its outputs the transferability
  scores LEEP (class probabilities), NCE (hard predictions), LogME and H-score (decision values as features),
  see :mod:`analysis.transferability`;
- honest baselines (Agostinelli et al., "How stable are transferability metrics evaluations?", ECCV 2022,
  found trivial ones often as good): ``knn_source_acc`` (1-NN with the source as the training set, scored on the
  labelled target subset), ``source_size``, and ``target_only_acc`` (the same logistic regression fit on the
  labelled subset alone, cross-validated — a stand-in for the target-only arm);
- the domain distances the caller adds (:func:`analysis.distances.domain_distances`).

``predicted_gain = source_model_acc − target_only_acc`` gives the verdict: ``help`` / ``hurt`` when it is more
than ``2·se`` from zero, with ``se = √(p₁(1−p₁)/n + p₂(1−p₂)/n)`` over the ``n`` labelled samples, else
``unsure``. This is a forecast of the *sign*, made without training; :func:`evaluate_predictors` checks it.

:func:`evaluate_predictors` joins the predictions with a finished matrix's negative-transfer table
(:func:`analysis.negative_transfer`) and scores every predictor two ways:

- per target, the weighted Kendall :math:`\tau_w` (Vigna, "A weighted correlation index for rankings with
  ties", WWW 2015; ``scipy.stats.weightedtau``, hyperbolic weights, as in the model-ranking literature) between
  the predictor (signed so that higher means more gain) and the measured gain over sources, averaged over
  targets;
- over the matrix, the AUROC of the predictor (signed so that higher means more harm) for the ``negative``
  flag (``sklearn.metrics.roc_auc_score``).

Uncertainty by permutation over *domains* (QAP style, Hubert & Schultz 1976): the rows of a transfer matrix
share domains, so they are not independent draws. Each permutation relabels the domains of the predictor table
with one random bijection (the same for sources and targets), keeping the matrix's structure, and recomputes
both statistics; the one-sided p-value is ``(1 + #{null ≥ observed}) / (1 + B)``. With 4 domains there are only
24 bijections: the p-value cannot go below 1/24 whatever ``B`` is, and the table says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError

from ._arrays import ArrayLike, as_labels, as_samples

#: +1: larger value predicts more gain; −1: larger value predicts more harm (distances).
GAIN_SIGN = {"source_model_acc": 1, "leep": 1, "nce": 1, "logme": 1, "h_score": 1, "knn_source_acc": 1,
             "source_size": 1, "target_only_acc": -1, "predicted_gain": 1, "pooled_acc": 1, "pooled_gain": 1}
#: Columns of a prediction table that are not predictors (bookkeeping, uncertainty, the verdict's own test).
NOT_PREDICTORS = ("n_labelled", "n_seeds", "pooled_gain_se", "rank", "verdict_threshold", "checked_calls",
                  "checked_right")
#: The trivial predictors every score must beat (Agostinelli et al. 2022): source size, 1-NN from the source, and
#: the target-only accuracy (how hard the target is, whatever the source).
TRIVIAL = ("source_size", "knn_source_acc", "target_only_acc")
#: The predictor the verdict reads, and the share of its ``hurt`` / ``help`` calls that must have been right on
#: the other targets' measured rows for it to make one (see :func:`checked_verdicts`).
VERDICT_PREDICTOR = "pooled_gain"
VERDICT_PRECISION = 0.8
MIN_CHECKED_CALLS = 3
MIN_CHECKED_TARGETS = 2  # the calls that pass a threshold must come from this many other targets
#: At most this many source samples enter the pooled model (a stratified-enough uniform subsample, for speed).
POOLED_MAX_SOURCE = 1000
DISTANCE_SIGN = -1  # every distance column: a larger distance predicts less gain
KEYS = ["source", "target", "budget"]
#: What ``transferlab predict`` writes into a run folder (the report reads them).
PREDICTIONS_FILE = "predictions.csv"
EVALUATION_FILE = "predictor_evaluation.csv"
SUMMARY_FILE = "predict.json"


# --------------------------------------------------------------------------------------------- predictors
def fit_source_model(Xs: ArrayLike, ys: ArrayLike):
    """The source model of :func:`pair_predictors`: L2 logistic regression on standardised, flattened inputs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs = _flat(Xs, "Xs")
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(xs, as_labels(ys, len(xs), "ys"))


def pair_predictors(Xs: ArrayLike, ys: ArrayLike, X_lab: ArrayLike, y_lab: ArrayLike,
                    n_classes: int | None = None, *, source_model=None,
                    target_only: np.ndarray | None = None, timings: dict | None = None,
                    seed: int = 0) -> dict[str, float]:
    """The no-training predictors of one pair (see the module docstring). Inputs are flattened to 2-d.

    ``source_model`` (from :func:`fit_source_model` on the same source) and ``target_only`` (the per-example
    outcomes of :func:`target_only_outcomes` on the same labelled subset) may be passed in to reuse them
    across pairs. ``timings``, when given, accumulates each predictor's seconds under its name.
    """
    from sklearn.neighbors import KNeighborsClassifier

    from .transferability import h_score, leep, logme, nce

    xs, xl = _flat(Xs, "Xs"), _flat(X_lab, "X_lab")
    ys_, yl = as_labels(ys, len(xs), "ys"), as_labels(y_lab, len(xl), "y_lab")
    k = int(n_classes or max(ys_.max(), yl.max()) + 1)
    source_model = source_model if source_model is not None else fit_source_model(xs, ys_)
    probs = np.zeros((len(xl), k))
    probs[:, source_model.classes_] = source_model.predict_proba(xl)
    decision = source_model.decision_function(xl)
    decision = decision[:, None] if decision.ndim == 1 else decision
    alone = target_only if target_only is not None else target_only_outcomes(xl, yl)
    measures = {
        "source_model_acc": lambda: float(np.mean(probs.argmax(1) == yl)),
        "leep": lambda: float(leep(probs, yl)),
        "nce": lambda: float(nce(probs.argmax(1), yl)),
        "logme": lambda: float(logme(decision, yl)),
        "h_score": lambda: float(h_score(decision, yl)),
        "knn_source_acc": lambda: float(np.mean(KNeighborsClassifier(1).fit(xs, ys_).predict(xl) == yl)),
        "source_size": lambda: float(len(xs)),
        "target_only_acc": lambda: float(np.mean(alone)) if len(alone) else float("nan"),
        "pooled": lambda: pooled_outcomes(xs, ys_, xl, yl, seed=seed),
    }
    out: dict = {}
    for name, measure in measures.items():
        t0 = time.perf_counter()
        out[name] = measure()
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
    pooled = out.pop("pooled")
    out["n_labelled"] = float(len(xl))
    out["predicted_gain"] = out["source_model_acc"] - out["target_only_acc"]
    if len(pooled) and len(alone):
        diff = pooled - alone
        out["pooled_acc"] = float(pooled.mean())
        out["pooled_gain"] = float(diff.mean())
        out["pooled_gain_se"] = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    else:
        out["pooled_acc"] = out["pooled_gain"] = out["pooled_gain_se"] = float("nan")
    out["evidence"] = pair_evidence(out["pooled_gain"], out["pooled_gain_se"], len(xl))
    return out


def _folds(yl: np.ndarray):
    """Stratified k-fold over the labelled subset, ``k = min(5, smallest class count)``; None below 2 a class."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(yl)
    counts = counts[counts > 0]
    if len(counts) < 2 or counts.min() < 2:
        return None
    return list(StratifiedKFold(int(min(5, counts.min())), shuffle=True, random_state=0).split(yl, yl))


def _logistic():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def target_only_outcomes(X_lab: ArrayLike, y_lab: ArrayLike) -> np.ndarray:
    """Per-example correctness (0/1) of the logistic regression fit on the labelled subset alone, each sample
    predicted by the fold model that did not see it (:func:`_folds`); empty when a class has fewer than 2."""
    xl = _flat(X_lab, "X_lab")
    yl = as_labels(y_lab, len(xl), "y_lab")
    folds = _folds(yl)
    if folds is None:
        return np.array([])
    right = np.zeros(len(yl))
    for train, test in folds:
        right[test] = _logistic().fit(xl[train], yl[train]).predict(xl[test]) == yl[test]
    return right


def target_only_accuracy(X_lab: ArrayLike, y_lab: ArrayLike) -> float:
    """Cross-validated accuracy of :func:`target_only_outcomes` (NaN when a class has fewer than 2 samples)."""
    right = target_only_outcomes(X_lab, y_lab)
    return float(right.mean()) if len(right) else float("nan")


def pooled_outcomes(Xs: ArrayLike, ys: ArrayLike, X_lab: ArrayLike, y_lab: ArrayLike,
                    max_source: int = POOLED_MAX_SOURCE, seed: int = 0) -> np.ndarray:
    r"""Per-example correctness of a logistic regression fit on the source *and* the labelled target, on the
    folds of :func:`target_only_outcomes` (the same held-out samples, so the two are paired).

    A cheap stand-in for what the matrix's methods do — learn from both domains, then be judged on the target —
    where the source model alone (``source_model_acc``) only says how far the domains are: a source that
    contradicts the target drags the pooled fit below the target-only one, an agreeing one lifts it. The target
    samples are weighted so both domains carry the same total weight, :math:`w_t = n_s / n_t`; at most
    ``max_source`` source samples (uniform, seeded) enter, for speed.
    """
    xs, xl = _flat(Xs, "Xs"), _flat(X_lab, "X_lab")
    ys_, yl = as_labels(ys, len(xs), "ys"), as_labels(y_lab, len(xl), "y_lab")
    folds = _folds(yl)
    if folds is None:
        return np.array([])
    keep = np.random.default_rng(seed).permutation(len(xs))[:max_source]
    xs, ys_ = xs[keep], ys_[keep]
    right = np.zeros(len(yl))
    for train, test in folds:
        x = np.vstack([xs, xl[train]])
        y = np.concatenate([ys_, yl[train]])
        w = np.concatenate([np.ones(len(xs)), np.full(len(train), len(xs) / len(train))])
        model = _logistic().fit(x, y, logisticregression__sample_weight=w)
        right[test] = model.predict(xl[test]) == yl[test]
    return right


def _flat(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    return as_samples(arr.reshape(len(arr), -1).astype(np.float64), name)


def pair_evidence(gain: float, se: float, n: int) -> str:
    """The pair's own test: ``help`` / ``hurt`` when the paired accuracy difference is beyond 2 standard errors
    (and beyond half a sample, :math:`0.5/n`), else ``unsure``. Only a precondition of a verdict
    (:func:`checked_verdicts`): on its own it said ``hurt`` for 10 of the 12 demo pairs, most of them wrong."""
    if not (math.isfinite(gain) and n > 0):
        return "unsure"
    se = se if math.isfinite(se) else 0.0
    if abs(gain) <= 2 * max(se, 0.5 / n):
        return "unsure"
    return "help" if gain > 0 else "hurt"


def verdict(source_acc: float, target_only_acc: float, n: int) -> str:
    """``help`` / ``hurt`` when the accuracy difference is beyond 2 binomial standard errors, else ``unsure``
    (the unpaired test of ``predicted_gain``; kept for callers of the source-model forecast)."""
    if not (math.isfinite(source_acc) and math.isfinite(target_only_acc)) or n == 0:
        return "unsure"
    se = math.sqrt((source_acc * (1 - source_acc) + target_only_acc * (1 - target_only_acc)) / n)
    return pair_evidence(source_acc - target_only_acc, se, n)


def rank_sources(predictions: pd.DataFrame, by: str = "predicted_gain") -> pd.DataFrame:
    """Sources ranked per (target, budget), best predicted first (``rank`` 1 = best)."""
    sign = GAIN_SIGN.get(by, DISTANCE_SIGN)
    out = predictions.copy()
    out["rank"] = (out.groupby(["target", "budget"])[by].rank(ascending=sign < 0, method="min")).astype(int)
    return out.sort_values(["target", "budget", "rank", "source"]).reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ verdicts
def checked_verdicts(predictions: pd.DataFrame, measured: pd.DataFrame | None,
                     predictor: str = VERDICT_PREDICTOR, precision: float = VERDICT_PRECISION,
                     min_calls: int = MIN_CHECKED_CALLS) -> pd.DataFrame:
    r"""``hurt`` / ``help`` only where the predictor's calls were right on targets it is not predicting.

    For each target :math:`T`, the calibration set is every measured row (``source, target, method, budget,
    gain`` against the decision baseline) whose target is *not* :math:`T` — leave-one-target-out within the
    run's own records, so no pair's verdict ever reads that pair's measurement, nor anything of :math:`T`'s test
    split. A ``hurt`` call on a calibration row is one whose own paired test (``evidence``,
    :func:`pair_evidence`) says ``hurt`` and whose predictor value is at most a threshold :math:`c`; it is right
    when the measured gain is below 0. The threshold for :math:`T` is the largest :math:`c` for which at least
    ``min_calls`` calls were made and the Jeffreys posterior mean of their precision,
    :math:`(\text{right} + \tfrac12) / (\text{calls} + 1)`, is at least ``precision`` (the shrinkage keeps 4/5
    right from passing for 80 %). :math:`T`'s pairs get ``hurt`` where their own test says so and their value is
    at most :math:`c`; ``help`` mirrors it (value at least :math:`c`, right when the gain is above 0). Where no
    threshold passes — the predictor was not right often enough elsewhere — or nothing was measured, the
    verdict is ``unsure`` and ``verdict_reason`` says why.

    Returns ``predictions`` with ``verdict``, ``verdict_threshold``, ``checked_calls``, ``checked_right`` and
    ``verdict_reason`` (replacing any it had).
    """
    out = predictions.drop(columns=[c for c in ("verdict", "verdict_threshold", "checked_calls", "checked_right",
                                                "verdict_reason") if c in predictions.columns]).copy()
    out["verdict"], out["verdict_threshold"] = "unsure", np.nan
    out["checked_calls"], out["checked_right"] = 0, 0
    if measured is None or measured.empty:
        out["verdict_reason"] = ("not checked: no measured rows of other targets yet (run the matrix, or part "
                                 "of it, then predict again)")
        return out
    out["verdict_reason"] = ""
    rows = measured[[*KEYS, "gain"]].merge(out[[*KEYS, predictor, "evidence"]], on=KEYS, how="inner")
    rows = rows[np.isfinite(rows.gain.astype(float)) & np.isfinite(rows[predictor].astype(float))]
    for target in out.target.unique():
        calibration = rows[rows.target != target]
        here = out.target == target
        found = {}
        for call, sign in (("hurt", -1), ("help", 1)):
            found[call] = _threshold(calibration[calibration.evidence == call], predictor, sign, precision,
                                     min_calls)
        reasons, verdicts, thresholds, calls_col, right_col = [], [], [], [], []
        for value, evidence in zip(out.loc[here, predictor], out.loc[here, "evidence"]):
            hit = found.get(evidence)
            if evidence not in ("hurt", "help"):
                verdicts.append("unsure")
                reasons.append(f"its own test is not beyond 2 standard errors ({predictor} {value:+.3f})")
                thresholds.append(np.nan), calls_col.append(0), right_col.append(0)
                continue
            if hit is None:
                verdicts.append("unsure")
                reasons.append(f"its own test says {evidence}, but on the other targets {predictor}'s {evidence} "
                               f"calls were not right often enough (≥ {precision:.0%} of at least {min_calls}, on "
                               f"{MIN_CHECKED_TARGETS}+ targets)")
                thresholds.append(np.nan), calls_col.append(0), right_col.append(0)
                continue
            c, n, right = hit
            sign = -1 if evidence == "hurt" else 1
            ok = sign * value >= sign * c
            verdicts.append(evidence if ok else "unsure")
            side = "≤" if sign < 0 else "≥"
            reasons.append(f"{predictor} {value:+.3f} {side} {c:+.3f}, where {right} of {n} {evidence} calls on "
                           f"the other targets were right" if ok else
                           f"{predictor} {value:+.3f} is not {side} {c:+.3f}, the threshold at which "
                           f"{evidence} calls on the other targets were right ≥ {precision:.0%}")
            thresholds.append(c), calls_col.append(n), right_col.append(right)
        out.loc[here, "verdict"] = verdicts
        out.loc[here, "verdict_reason"] = reasons
        out.loc[here, "verdict_threshold"] = thresholds
        out.loc[here, "checked_calls"] = calls_col
        out.loc[here, "checked_right"] = right_col
    return out


def _threshold(calls: pd.DataFrame, predictor: str, sign: int, precision: float,
               min_calls: int) -> tuple[float, int, int] | None:
    """The most permissive threshold whose calls (``sign·value ≥ sign·c``) pass, with their count and rights."""
    if calls.empty:
        return None
    value = sign * calls[predictor].to_numpy(float)
    right = (sign * calls.gain.to_numpy(float) > 0)
    targets = calls.target.to_numpy()
    best = None
    for c in np.unique(value):  # ascending: the first passing one admits the most calls
        chosen = value >= c
        n, k = int(chosen.sum()), int(right[chosen].sum())
        spread = len(set(targets[chosen])) >= MIN_CHECKED_TARGETS
        if n >= min_calls and spread and (k + 0.5) / (n + 1) >= precision:
            best = (float(sign * c), n, k)
            break
    return best


def verdict_precision(checked: pd.DataFrame, measured: pd.DataFrame) -> dict:
    """How often each verdict was right against the measured rows (a ``hurt`` is right where the transfer
    measured below the baseline, a ``help`` where above), with the base rate a call must beat."""
    flag = ["flag"] if "flag" in measured.columns else []
    rows = measured[[*KEYS, "gain", *flag]].merge(checked[[*KEYS, "verdict"]], on=KEYS, how="inner")
    rows = rows[np.isfinite(rows.gain.astype(float))]
    out = {"rows": int(len(rows)), "rows_below_baseline": int((rows.gain < 0).sum())}
    for call, sign, significant in (("hurt", -1, "negative"), ("help", 1, "positive")):
        mine = rows[rows.verdict == call]
        right = int((sign * mine.gain > 0).sum())
        out[call] = {"pairs": int((checked.verdict == call).sum()), "rows": int(len(mine)), "right": right,
                     "precision": right / len(mine) if len(mine) else None,
                     # the stricter reading: the row's own statistics flagged it (significant, after FDR)
                     "flagged": int((mine.flag.astype(str) == significant).sum()) if flag else None}
    out["unsure_pairs"] = int((checked.verdict == "unsure").sum())
    return out


# --------------------------------------------------------------------------------------------- evaluation
def weighted_tau(predicted: ArrayLike, measured: ArrayLike) -> float:
    """Weighted Kendall τ (hyperbolic weights) between a predictor and the measured gain; NaN below 3 points."""
    from scipy.stats import weightedtau

    x, y = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(weightedtau(y, x).statistic)


def evaluate_predictors(
    predictions: pd.DataFrame,
    nt_table: pd.DataFrame,
    predictors: Sequence[str] | None = None,
    n_permutations: int = 999,
    seed: int = 0,
) -> pd.DataFrame:
    """Score each predictor against a finished matrix (see the module docstring).

    Parameters
    ----------
    predictions : DataFrame
        ``source, target, budget`` and one numeric column per predictor (as :func:`pair_predictors` gives).
    nt_table : DataFrame
        ``source, target, method, budget, gain, flag`` (:func:`analysis.negative_transfer`); rows of every
        method are pooled (each row is one measured transfer).
    predictors : columns to score (default: every numeric one but ``n_labelled``).

    Returns
    -------
    DataFrame
        ``predictor, kind, mean_tau_w, tau_p_value, n_targets, auroc, auroc_p_value, n_rows, n_negative,
        n_permutations`` sorted by AUROC then τ_w (best first). ``kind`` is ``baseline`` for the trivial
        predictors, ``score`` for transferability scores, ``distance`` otherwise.
    """
    missing = [c for c in KEYS if c not in predictions.columns] + [
        c for c in (*KEYS, "gain", "flag") if c not in nt_table.columns]
    if missing:
        raise TransferlabError(f"evaluate_predictors: missing column(s) {sorted(set(missing))}")
    if predictors is None:
        predictors = [c for c in predictions.columns if c not in (*KEYS, *NOT_PREDICTORS)
                      and pd.api.types.is_numeric_dtype(predictions[c])]
    domains = sorted(set(predictions.source) | set(predictions.target))
    perms = _domain_permutations(domains, n_permutations, seed)
    measured = nt_table[[*KEYS, "gain", "flag"]]
    rows = []
    for name in predictors:
        sign = GAIN_SIGN.get(name, DISTANCE_SIGN)
        table = predictions[[*KEYS, name]].rename(columns={name: "value"})
        tau, auc, n_targets, n_rows, n_neg = _score(table, measured, sign)
        null_tau, null_auc = [], []
        for mapping in perms:
            shuffled = table.assign(source=table.source.map(mapping), target=table.target.map(mapping))
            t, a, *_ = _score(shuffled, measured, sign)
            null_tau.append(t)
            null_auc.append(a)
        tau_band, auc_band = _band(null_tau), _band(null_auc)
        rows.append({"predictor": name, "kind": _kind(name), "mean_tau_w": tau,
                     "tau_p_value": _p_value(tau, null_tau), "tau_null_low": tau_band[0],
                     "tau_null_high": tau_band[1], "n_targets": n_targets, "auroc": auc,
                     "auroc_p_value": _p_value(auc, null_auc), "auroc_null_low": auc_band[0],
                     "auroc_null_high": auc_band[1], "n_rows": n_rows, "n_negative": n_neg,
                     "n_permutations": len(perms)})
    out = pd.DataFrame(rows)
    out["beats_trivial"] = _beats(out, "auroc", "auroc_null_high")
    out["beats_trivial_tau"] = _beats(out, "mean_tau_w", "tau_null_high")
    return out.sort_values(["auroc", "mean_tau_w"], ascending=False, na_position="last").reset_index(drop=True)


def _band(null: list[float]) -> tuple[float, float]:
    """The central 95 % of a statistic under domain relabelling: where chance puts it."""
    null = np.asarray([v for v in null if math.isfinite(v)])
    if not len(null):
        return float("nan"), float("nan")
    return float(np.percentile(null, 2.5)), float(np.percentile(null, 97.5))


def _beats(table: pd.DataFrame, column: str, high: str) -> list:
    """A predictor beats the trivial ones when its statistic is above every trivial baseline's (``TRIVIAL``)
    *and* above the top of its own chance band; a trivial baseline is judged against chance only."""
    trivial = table[table.predictor.isin(TRIVIAL)][column].astype(float)
    best = float(np.nanmax(trivial)) if trivial.notna().any() else float("-inf")
    out = []
    for name, value, top in zip(table.predictor, table[column].astype(float), table[high].astype(float)):
        if not math.isfinite(value):
            out.append(None)
            continue
        above_chance = math.isfinite(top) and value > top
        out.append(bool(above_chance and (name in TRIVIAL or value > best)))
    return out


def trivial_comparison(table: pd.DataFrame) -> list[str]:
    """Plain sentences: which predictors are no better than a trivial one (or than chance), on AUROC and τ_w."""
    lines = []
    trivial = table[table.predictor.isin(TRIVIAL)]
    for column, label, beats in (("auroc", "AUROC", "beats_trivial"), ("mean_tau_w", "weighted τ", "beats_trivial_tau")):
        scored = table[table[column].notna() & ~table.predictor.isin(TRIVIAL)]
        if scored.empty:
            continue
        best = trivial.loc[trivial[column].astype(float).idxmax()] if trivial[column].notna().any() else None
        won = np.array([str(v).lower() in ("true", "1", "1.0") for v in scored[beats]], dtype=bool)
        losers, winners = scored.predictor[~won].tolist(), scored.predictor[won].tolist()
        ref = (f"{best.predictor} ({label} {best[column]:.2f})" if best is not None else "no trivial baseline")
        if losers:
            lines.append(f"On {label}, no better than a trivial predictor or than chance: {', '.join(losers)} "
                         f"(best trivial: {ref}).")
        if winners:
            lines.append(f"On {label}, better than every trivial predictor and above chance: {', '.join(winners)}.")
    return lines


def _score(table: pd.DataFrame, measured: pd.DataFrame, sign: int) -> tuple[float, float, int, int, int]:
    from sklearn.metrics import roc_auc_score

    joined = measured.merge(table, on=KEYS, how="inner")
    joined = joined[np.isfinite(joined.value.astype(float)) & np.isfinite(joined.gain.astype(float))]
    taus = []
    for _, g in joined.groupby(["target", "budget"] + (["method"] if "method" in joined else [])):
        taus.append(weighted_tau(sign * g.value.to_numpy(float), g.gain.to_numpy(float)))
    taus = [t for t in taus if math.isfinite(t)]
    harm = (joined.flag.astype(str) == "negative").to_numpy()
    auc = float(roc_auc_score(harm, -sign * joined.value.to_numpy(float))) if 0 < harm.sum() < len(harm) else (
        float("nan"))
    return (float(np.mean(taus)) if taus else float("nan"), auc, int(joined.target.nunique()), len(joined),
            int(harm.sum()))


def _domain_permutations(domains: list[str], n: int, seed: int) -> list[dict[str, str]]:
    """The relabellings of :func:`analysis.predictors._domain_permutations` (every one when there are at most
    ``n``, else ``n`` random ones), without the identity, as name → name mappings."""
    from .predictors import _domain_permutations as permutations

    perms = permutations(len(domains), n, seed)
    return [dict(zip(domains, (domains[i] for i in p))) for p in perms
            if not np.array_equal(p, np.arange(len(domains)))]


def _p_value(observed: float, null: list[float]) -> float:
    null = np.asarray([v for v in null if math.isfinite(v)])
    if not math.isfinite(observed) or not len(null):
        return float("nan")
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def _kind(name: str) -> str:
    if name in ("knn_source_acc", "source_size", "target_only_acc"):
        return "baseline"
    if name in GAIN_SIGN:
        return "score"
    return "distance"
