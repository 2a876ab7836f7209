r"""Why does a pair hurt? Measured evidence for a negative-transfer flag, and a reading only when it is supported.

Every item is a measurement on arrays the caller provides (labels, predictions, representations); nothing is
guessed from names. The pieces:

- :func:`estimate_label_shift` — black-box shift estimation, BBSE (Lipton, Wang & Smola, "Detecting and
  Correcting for Label Shift with Black Box Predictors", ICML 2018). With a source classifier :math:`f`, its
  joint confusion on held-out *source* data :math:`C_{ij} = P_s(f(x)=i, y=j)` and the distribution of its
  predictions on the *target* :math:`\mu_i = P_t(f(x)=i)`, label shift (:math:`p(x|y)` fixed) gives
  :math:`\mu = C\,w` with importance weights :math:`w_j = q(y=j)/p(y=j)`; so :math:`\hat w = C^{-1}\hat\mu`
  (least squares, clipped at 0) and the target priors :math:`\hat q_j \propto \hat w_j\,\hat p_j`. The shift's
  size is the total-variation distance :math:`\tfrac12\lVert \hat q - \hat p\rVert_1`. Valid only under label
  shift: :func:`explain_pair` therefore reads it only when the domains are not separable in input space.
- :func:`relabelling_gap` — concept shift leaves :math:`p(x)` alone and renames classes. The source
  classifier's target confusion :math:`M_{jk} = \#\{y=j, f(x)=k\}` is then close to a permutation: accuracy
  after the best one-to-one relabelling (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``)
  minus accuracy as labelled is large, and the assignment names which classes were renamed.
- :func:`discriminator_accuracy` — a domain classifier's cross-validated accuracy (the proxy A-distance's
  classifier, :func:`analysis.distances.proxy_a_distance`: :math:`\text{acc} = 1 - \epsilon = \tfrac12 +
  \hat d_{\mathcal A}/4`), before and after adaptation when both representations are given.
- :func:`class_alignment` — per-class Bures–Wasserstein distance between same-label source and target
  Gaussians (as :func:`analysis.distances.class_gaussian_w2`), before and after adaptation.
- the source model's balanced accuracy on held-out source vs on the labelled target: under pure label shift
  it does not move; a large drop means :math:`p(x|y)` changed.
- :func:`per_class_change` — accuracy per class of the flagged method and of its baseline on the same test
  examples (from the records' per-example outcomes): which classes lose.

:func:`explain_pair` gathers them and names a cause only when its measurement crosses a stated threshold
(``THRESHOLDS``); otherwise it says that no single cause is supported. The thresholds were set once on the
``shift`` family with family seed 7 (no test uses that seed; ``python bench/explain_thresholds.py 7``), with a
logistic-regression source model and 5 labelled target samples per class, over all 20 ordered pairs of the five
canonical domains: relabelling gaps 0.70–0.95 on concept pairs without covariate shift against ≤ 0.05 on pairs
without concept shift; prior TV 0.30–0.41 on label-shift pairs against ≤ 0.064 on pairs of equal priors (both
outside covariate shift, where BBSE's assumption fails and its TV reads 0.30–0.63); input discriminator accuracy
≥ 0.972 under covariate shift against ≤ 0.635 elsewhere; the source model's balanced-accuracy drop from
held-out source to the labelled target ≤ 0.08 on pairs where p(x|y) is the same (label shift, null) against
≥ 0.28 where it changed.

A fourth cause, *conditional shift*, covers data where p(x|y) changed without the inputs being linearly
separable (a large balanced-accuracy drop of the source model): BBSE's assumption fails there, so its prior
estimate is not read. On Office-Caltech10 SURF amazon→webcam (coral, budget 3) BBSE alone read a prior shift
of TV 0.21 where the true class frequencies differ by TV ≈ 0.05; the drop rule prevents that misreading.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._arrays import ArrayLike, as_labels, as_numpy, as_pair

#: What ``transferlab explain`` writes into a run folder (the report reads it).
EXPLANATIONS_FILE = "explanations.json"

#: Measurement thresholds for naming a cause (see the module docstring for where they come from).
THRESHOLDS = {
    "separable": 0.75,        # discriminator accuracy on inputs at or above which the domains differ in p(x)
    "relabelling_gap": 0.20,  # accuracy after the best relabelling minus accuracy as labelled
    "prior_tv": 0.15,         # total variation between source and estimated target class priors
    "accuracy_drop": 0.20,    # source model's balanced accuracy, held-out source minus labelled target
    "label_shift_p": 0.05,    # BBSD test level: BBSE's prior estimate is read only below it
}


# --------------------------------------------------------------------------------------------- label shift
def estimate_label_shift(y_source: ArrayLike, pred_source: ArrayLike, pred_target: ArrayLike,
                         n_classes: int | None = None) -> dict:
    """BBSE estimate of the target class priors (see the module docstring).

    Parameters
    ----------
    y_source, pred_source : array of shape (n,)
        True labels and a source-trained classifier's predictions on *held-out* source samples.
    pred_target : array of shape (m,)
        The same classifier's predictions on target samples (no target label is read).
    n_classes : int, optional
        Number of classes (default: one more than the largest label seen).

    Returns
    -------
    dict
        ``source_priors``, ``target_priors`` (estimated), ``weights`` (:math:`\\hat w`, clipped),
        ``tv`` (total variation between the two prior vectors) and ``condition`` (condition number of the
        confusion matrix: large means the estimate is unreliable).
    """
    y_s = _labels(y_source, "y_source")
    p_s = as_labels(pred_source, len(y_s), "pred_source")
    p_t = _labels(pred_target, "pred_target")
    k = int(n_classes or max(y_s.max(), p_s.max(), p_t.max()) + 1)
    confusion = np.zeros((k, k))
    np.add.at(confusion, (p_s, y_s), 1.0)
    confusion /= len(y_s)
    mu = np.bincount(p_t, minlength=k) / len(p_t)
    w = np.clip(np.linalg.lstsq(confusion, mu, rcond=None)[0], 0.0, None)
    prior_s = np.bincount(y_s, minlength=k) / len(y_s)
    q = w * prior_s
    q = q / q.sum() if q.sum() > 0 else prior_s.copy()
    return {"source_priors": prior_s, "target_priors": q, "weights": w,
            "tv": float(0.5 * np.abs(q - prior_s).sum()), "condition": float(np.linalg.cond(confusion))}


def label_shift_test(pred_source: ArrayLike, pred_target: ArrayLike, n_classes: int | None = None) -> float:
    r"""p-value of "the source classifier's predicted classes are distributed alike on held-out source and on the
    target" — the black-box shift detection test (BBSD) of Rabanser, Günnemann & Lipton ("Failing Loudly",
    NeurIPS 2019): under label shift alone the prediction distribution moves with the priors, so no significant
    difference means no label shift this sample can see. Pearson's :math:`\chi^2` on the 2 × K contingency table
    of predicted classes (``scipy.stats.chi2_contingency``; classes predicted in neither sample left out); 1.0
    when only one class is ever predicted."""
    from scipy.stats import chi2_contingency

    p_s = _labels(pred_source, "pred_source")
    p_t = _labels(pred_target, "pred_target")
    k = int(n_classes or max(p_s.max(), p_t.max()) + 1)
    table = np.stack([np.bincount(p_s, minlength=k), np.bincount(p_t, minlength=k)])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(table).pvalue)


# --------------------------------------------------------------------------------------------- concept shift
def relabelling_gap(y_true: ArrayLike, pred: ArrayLike, n_classes: int | None = None) -> dict:
    """Accuracy as labelled vs after the best one-to-one relabelling of the predictions.

    Returns ``accuracy``, ``relabelled_accuracy``, ``gap`` (their difference) and ``renamed``: the
    ``(true class, predicted class, share of that class)`` pairs the best relabelling maps to another class.
    """
    from scipy.optimize import linear_sum_assignment

    y = _labels(y_true, "y_true")
    p = as_labels(pred, len(y), "pred")
    k = int(n_classes or max(y.max(), p.max()) + 1)
    counts = np.zeros((k, k))
    np.add.at(counts, (y, p), 1.0)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    per_class = counts.sum(1)
    renamed = [(int(r), int(c), float(counts[r, c] / per_class[r]))
               for r, c in zip(rows, cols) if r != c and counts[r, c] > 0]
    acc = float(np.trace(counts) / len(y))
    best = float(counts[rows, cols].sum() / len(y))
    return {"accuracy": acc, "relabelled_accuracy": best, "gap": best - acc, "renamed": renamed}


# --------------------------------------------------------------------------------------------- alignment
def discriminator_accuracy(Xs: ArrayLike, Xt: ArrayLike, seed: int = 0, max_samples: int = 2000) -> float:
    """Cross-validated accuracy of a linear domain classifier (0.5: indistinguishable, 1: separable)."""
    from .distances import proxy_a_distance

    return 0.5 + proxy_a_distance(Xs, Xt, seed=seed, max_samples=max_samples) / 4.0


def class_alignment(Xs: ArrayLike, ys: ArrayLike, Xt: ArrayLike, yt: ArrayLike) -> pd.DataFrame:
    """Per-class squared Bures–Wasserstein distance between same-label source and target Gaussians.

    Columns ``class, n_source, n_target, w2``; classes present in one domain only are left out.
    """
    from .distances import _bures_pairs, _class_gaussians

    xs, xt = as_pair(Xs, Xt)
    ys_arr, yt_arr = as_labels(ys, len(xs), "ys"), as_labels(yt, len(xt), "yt")
    src, tgt = _class_gaussians(xs, ys_arr), _class_gaussians(xt, yt_arr)
    shared, i_s, i_t = np.intersect1d(src.classes, tgt.classes, return_indices=True)
    cost = _bures_pairs(src, tgt, i_s, i_t, None) if len(shared) else np.zeros(0)
    return pd.DataFrame({"class": shared.astype(int),
                         "n_source": [int((ys_arr == c).sum()) for c in shared],
                         "n_target": [int((yt_arr == c).sum()) for c in shared],
                         "w2": np.asarray(cost, dtype=float)})


# --------------------------------------------------------------------------------------------- outcomes
def per_class_change(y_true: ArrayLike, pred: ArrayLike, pred_baseline: ArrayLike,
                     n_classes: int | None = None) -> pd.DataFrame:
    """Per-class accuracy of a method and its baseline on the same test examples (pool seeds by concatenating).

    Columns ``class, n, accuracy, baseline_accuracy, change`` (``change`` = accuracy − baseline, fractions),
    sorted by ``change`` (largest loss first).
    """
    y = _labels(y_true, "y_true")
    p = as_labels(pred, len(y), "pred")
    b = as_labels(pred_baseline, len(y), "pred_baseline")
    k = int(n_classes or max(y.max(), p.max(), b.max()) + 1)
    n = np.bincount(y, minlength=k).astype(float)
    hit = np.bincount(y[p == y], minlength=k)
    hit_b = np.bincount(y[b == y], minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc, acc_b = hit / n, hit_b / n
    out = pd.DataFrame({"class": np.arange(k), "n": n.astype(int), "accuracy": acc, "baseline_accuracy": acc_b,
                        "change": acc - acc_b})
    return out[out.n > 0].sort_values(["change", "class"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------- the reading
@dataclass
class Explanation:
    """The evidence for one pair and the cause it supports (``None`` when no measurement crosses its threshold)."""

    cause: str | None
    reading: str
    evidence: dict = field(default_factory=dict)


def explain_pair(
    *,
    X_source: ArrayLike,
    y_source: ArrayLike,
    X_target: ArrayLike,
    heldout_source: tuple[ArrayLike, ArrayLike],
    pred_target: ArrayLike,
    labelled_target: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None,
    after: tuple[ArrayLike, ArrayLike, ArrayLike | None] | None = None,
    method: str | None = None,
    aligns: bool = False,
    n_classes: int | None = None,
    seed: int = 0,
) -> Explanation:
    """Measure the evidence for one (source, target) pair and name the cause it supports.

    Parameters
    ----------
    X_source, y_source, X_target
        The pair's representations *before* adaptation (inputs, or frozen/pretrained features) and the source
        labels; no target test label is read here.
    heldout_source : (y, pred)
        True labels and a source-only classifier's predictions on held-out source samples (for BBSE).
    pred_target : array
        The same classifier's predictions on ``X_target`` (for BBSE).
    labelled_target : (X_lab, y_lab, pred_lab), optional
        The labelled target subset (training data, never the test split), its labels and the source-only
        classifier's predictions on it: for the relabelling gap and class-conditional alignment.
    after : (F_source, F_target, F_lab or None), optional
        Representations after adaptation (of ``X_source``, ``X_target`` and the labelled subset): for the
        domain classifier and class alignment after.
    method, aligns
        The flagged method's name and whether it aligns marginals (DANN, CORAL): the reading then says so.

    Rules, in order (thresholds in ``THRESHOLDS``): inputs separable → *covariate shift*; else a large
    relabelling gap → *concept shift*; else a large drop of the source model's balanced accuracy from held-out
    source to the labelled target → *conditional shift* (p(x|y) changed, so BBSE does not apply); else a large
    BBSE prior shift → *label shift*; else no cause.
    """
    xs, xt = as_pair(X_source, X_target)
    ys = as_labels(y_source, len(xs), "y_source")
    ev: dict = {"discriminator_before": discriminator_accuracy(xs, xt, seed)}
    ev["label_shift_p"] = label_shift_test(heldout_source[1], pred_target, n_classes)
    # BBSE's estimate is evidence only where its assumption can hold (inputs not separable) and the BBSD test
    # sees a shift at all; elsewhere it is not reported (on balanced digits it read a TV of 0.72)
    if ev["discriminator_before"] < THRESHOLDS["separable"] and ev["label_shift_p"] < THRESHOLDS["label_shift_p"]:
        shift = estimate_label_shift(heldout_source[0], heldout_source[1], pred_target, n_classes)
        ev["prior_tv"] = shift["tv"]
        ev["source_priors"] = [round(float(v), 4) for v in shift["source_priors"]]
        ev["target_priors_estimated"] = [round(float(v), 4) for v in shift["target_priors"]]
    else:
        ev["prior_tv"] = None
    ev["source_model_source_accuracy"] = _balanced_accuracy(*heldout_source)
    if labelled_target is not None:
        x_lab, y_lab, pred_lab = labelled_target
        ev["source_model_target_balanced_accuracy"] = _balanced_accuracy(y_lab, pred_lab)
        ev["accuracy_drop"] = ev["source_model_source_accuracy"] - ev["source_model_target_balanced_accuracy"]
        gap = relabelling_gap(y_lab, pred_lab, n_classes)
        ev.update(relabelling_gap=gap["gap"], source_model_target_accuracy=gap["accuracy"],
                  renamed=gap["renamed"])
        ev["class_w2_before"] = _weighted_w2(class_alignment(xs, ys, x_lab, y_lab))
    if after is not None:
        fs, ft = as_pair(after[0], after[1])
        ev["discriminator_after"] = discriminator_accuracy(fs, ft, seed)
        if labelled_target is not None and after[2] is not None:
            ev["class_w2_after"] = _weighted_w2(class_alignment(fs, ys, after[2], labelled_target[1]))
    return Explanation(*read_evidence(ev, method or "the method", aligns), ev)


def after_evidence(F_source: ArrayLike, y_source: ArrayLike, F_target: ArrayLike, F_lab: ArrayLike | None = None,
                   y_lab: ArrayLike | None = None, seed: int = 0) -> dict:
    """Evidence on a trained network's features: the domain classifier's accuracy, and the label-weighted class
    alignment (:func:`class_alignment`) when the labelled target subset's features are given."""
    fs, ft = as_pair(F_source, F_target)
    ev = {"discriminator_after": discriminator_accuracy(fs, ft, seed)}
    if F_lab is not None and y_lab is not None and len(y_lab):
        ev["class_w2_after"] = _weighted_w2(class_alignment(fs, y_source, F_lab, y_lab))
    return ev


def _weighted_w2(table: pd.DataFrame) -> float:
    return float((table.w2 * table.n_target).sum() / table.n_target.sum()) if len(table) else float("nan")


def read_evidence(ev: dict, who: str, aligns: bool) -> tuple[str | None, str]:
    """The cause the measurements ``ev`` support and its sentence, worded for the method ``who``: what happens
    *after adaptation* is said only of a method that aligns (``aligns``, from the method registry)."""
    t = THRESHOLDS
    if ev["discriminator_before"] >= t["separable"]:
        after = ev.get("discriminator_after")
        if aligns and after is not None:
            tail = f"; after {who}'s alignment a domain classifier on its features reaches {after:.0%}"
        elif aligns:
            tail = ""
        else:
            tail = f"; {who} does not align the domains"
        return ("covariate shift", f"covariate shift: a linear domain classifier separates the inputs "
                                   f"({ev['discriminator_before']:.0%} accuracy){tail}")
    if ev.get("relabelling_gap", 0.0) >= t["relabelling_gap"]:
        pairs = ", ".join(f"{a}→{b}" for a, b, _ in ev["renamed"][:6])
        acc = ev["source_model_target_accuracy"]
        return ("concept shift", f"concept shift: the source classifier is {acc:.0%} accurate on the labelled "
                                 f"target as labelled but {acc + ev['relabelling_gap']:.0%} after renaming classes "
                                 f"({pairs}): the source's labels contradict the target's")
    if ev.get("accuracy_drop", 0.0) >= t["accuracy_drop"]:
        # p(x|y) changed, so BBSE's assumption fails and its prior estimate is not read
        return ("conditional shift", f"class-conditional shift: a source-trained classifier's balanced accuracy "
                                     f"falls from {ev['source_model_source_accuracy']:.0%} on held-out source to "
                                     f"{ev['source_model_target_balanced_accuracy']:.0%} on the labelled target, "
                                     f"though a linear domain classifier tells the inputs apart only "
                                     f"{ev['discriminator_before']:.0%} of the time: the classes look different")
    if ev.get("prior_tv") is not None and ev["prior_tv"] >= t["prior_tv"]:
        line = (f"label shift: class priors differ (BBSD test p = {ev['label_shift_p']:.2g}; BBSE estimates "
                f"a total variation of {ev['prior_tv']:.2f})")
        if aligns:
            line += f"; {who} aligned marginals across different class priors"
        return "label shift", line
    gap = f", relabelling gap {ev['relabelling_gap']:.2f}" if "relabelling_gap" in ev else ""
    return None, (f"no single cause is supported by the measurements (domain classifier "
                  f"{ev['discriminator_before']:.0%}, label-shift test p = {ev['label_shift_p']:.2g}{gap})")


def _balanced_accuracy(y_true: ArrayLike, pred: ArrayLike) -> float:
    """Mean per-class recall over the classes present in ``y_true``."""
    y = _labels(y_true, "y_true")
    p = as_labels(pred, len(y), "pred")
    return float(np.mean([np.mean(p[y == c] == c) for c in np.unique(y)]))


def _labels(y: ArrayLike, name: str) -> np.ndarray:
    arr = as_numpy(y)
    return as_labels(arr, len(arr), name)
