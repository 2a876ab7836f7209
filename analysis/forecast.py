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
             "source_size": 1, "target_only_acc": -1, "predicted_gain": 1}
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
                    target_only: float | None = None, timings: dict | None = None) -> dict[str, float]:
    """The no-training predictors of one pair (see the module docstring). Inputs are flattened to 2-d.

    ``source_model`` (from :func:`fit_source_model` on the same source) and ``target_only`` (from
    :func:`target_only_accuracy` on the same labelled subset) may be passed in to reuse them across pairs.
    ``timings``, when given, accumulates each predictor's seconds under its name.
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
    measures = {
        "source_model_acc": lambda: float(np.mean(probs.argmax(1) == yl)),
        "leep": lambda: float(leep(probs, yl)),
        "nce": lambda: float(nce(probs.argmax(1), yl)),
        "logme": lambda: float(logme(decision, yl)),
        "h_score": lambda: float(h_score(decision, yl)),
        "knn_source_acc": lambda: float(np.mean(KNeighborsClassifier(1).fit(xs, ys_).predict(xl) == yl)),
        "source_size": lambda: float(len(xs)),
        "target_only_acc": lambda: target_only if target_only is not None else target_only_accuracy(xl, yl),
    }
    out = {}
    for name, measure in measures.items():
        t0 = time.perf_counter()
        out[name] = measure()
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
    out["n_labelled"] = float(len(xl))
    out["predicted_gain"] = out["source_model_acc"] - out["target_only_acc"]
    out["verdict"] = verdict(out["source_model_acc"], out["target_only_acc"], len(xl))
    return out


def target_only_accuracy(X_lab: ArrayLike, y_lab: ArrayLike) -> float:
    """Cross-validated accuracy of the logistic regression on the labelled subset alone.

    Stratified k-fold with ``k = min(5, smallest class count)`` (every sample predicted once by a model that
    did not see it); NaN when a class has fewer than 2 samples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xl = _flat(X_lab, "X_lab")
    yl = as_labels(y_lab, len(xl), "y_lab")
    counts = np.bincount(yl)
    counts = counts[counts > 0]
    if len(counts) < 2 or counts.min() < 2:
        return float("nan")
    folds = StratifiedKFold(int(min(5, counts.min())), shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(np.mean(cross_val_predict(model, xl, yl, cv=folds) == yl))


def _flat(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    return as_samples(arr.reshape(len(arr), -1).astype(np.float64), name)


def verdict(source_acc: float, target_only_acc: float, n: int) -> str:
    """``help`` / ``hurt`` when the accuracy difference is beyond 2 binomial standard errors, else ``unsure``."""
    if not (math.isfinite(source_acc) and math.isfinite(target_only_acc)) or n == 0:
        return "unsure"
    se = math.sqrt((source_acc * (1 - source_acc) + target_only_acc * (1 - target_only_acc)) / n)
    diff = source_acc - target_only_acc
    if abs(diff) <= 2 * max(se, 0.5 / n):
        return "unsure"
    return "help" if diff > 0 else "hurt"


def rank_sources(predictions: pd.DataFrame, by: str = "predicted_gain") -> pd.DataFrame:
    """Sources ranked per (target, budget), best predicted first (``rank`` 1 = best)."""
    sign = GAIN_SIGN.get(by, DISTANCE_SIGN)
    out = predictions.copy()
    out["rank"] = (out.groupby(["target", "budget"])[by].rank(ascending=sign < 0, method="min")).astype(int)
    return out.sort_values(["target", "budget", "rank", "source"]).reset_index(drop=True)


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
        predictors = [c for c in predictions.columns if c not in (*KEYS, "n_labelled")
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
        rows.append({"predictor": name, "kind": _kind(name), "mean_tau_w": tau,
                     "tau_p_value": _p_value(tau, null_tau), "n_targets": n_targets, "auroc": auc,
                     "auroc_p_value": _p_value(auc, null_auc), "n_rows": n_rows, "n_negative": n_neg,
                     "n_permutations": len(perms)})
    out = pd.DataFrame(rows)
    return out.sort_values(["auroc", "mean_tau_w"], ascending=False, na_position="last").reset_index(drop=True)


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
