"""What label-free selection needs, computed at train time from training data only (the record's
``selection_evidence``; ``analysis.selection`` turns it into a choice among a sweep's configurations).

A cell with a selection protocol (``Cell.selection``: ``source_holdout`` fraction, ``folds``) trains on the source
minus a held-out part — ``source_holdout`` of each source class, drawn by ``stable_seed("source-holdout", seed)``,
the same for every method and configuration of a seed — and after training records, from its final model:

- ``source_val_acc``, ``source_val_loss`` — accuracy and mean cross-entropy on the held-out source;
- ``iwcv_risk`` — importance-weighted held-out source risk ``(1/n) Σ w_i ℓ_i`` (Sugiyama et al., JMLR 2007);
- ``dev_risk`` — Deep Embedded Validation (You et al., ICML 2019): ``mean(w ℓ) + η mean(w) − η`` with
  ``η = −Cov(w ℓ, w) / Var(w)``. The density ratio ``w(x) = (n_S/n_T) · P(T|f(x)) / P(S|f(x))`` comes from a
  logistic-regression domain classifier on the model's features f (standardised), fitted on the source training
  samples against the unlabelled target pool and applied to the held-out source (``density_ratio_mean``,
  ``domain_classifier_acc`` — its training accuracy, 0.5 = indistinguishable — are recorded with it);
- ``im``, ``snd``, ``entropy`` — pytorch-adapt's validators on the final logits of the unlabelled target pool
  (:mod:`adapt.validators`);
- with ``folds`` > 0 and a budget >= 2: ``target_cv_acc`` (and ``target_cv_folds``, one accuracy per fold) —
  the labelled target samples split into min(folds, smallest class count) stratified folds; per fold, the
  cell's method trains from the same initial model on the other folds' labels (same source, same unlabelled
  pool, same steps) and is scored on the held-out fold.

Target *test* labels are never read: the unlabelled pool is the target's training split, the folds are the
budget's labelled samples (tests/adapt/test_selection_evidence.py scrambles the test labels and checks every
field stays the same).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from .domains.base import stable_seed

if TYPE_CHECKING:  # pragma: no cover
    from .train import CellRun

VALIDATORS = ("im", "snd", "entropy")
DENSITY_SAMPLES = 4000  # at most this many rows per domain fit the domain classifier (a subsample, seeded)


def holdout_indices(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, held_out)`` row indices: ``round(fraction · n_c)`` rows of each class ``c`` held out (at least
    one where the class has two or more, none where it has one), drawn by ``stable_seed("source-holdout", seed)``."""
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(stable_seed("source-holdout", seed))
    held = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        k = int(round(fraction * len(rows)))
        k = min(max(k, 1), len(rows) - 1) if len(rows) >= 2 else 0
        held.append(rng.permutation(rows)[:k])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(len(y)), held_out)
    return train, held_out


def fold_ids(y: np.ndarray, folds: int) -> np.ndarray:
    """Stratified fold of each labelled sample: the i-th sample of a class (in the labelled set's order, which
    the seed drew) goes to fold ``i mod K`` with ``K = min(folds, smallest class count)``."""
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y)
    k = int(min(folds, counts[counts > 0].min())) if len(y) else 0
    out = np.zeros(len(y), np.int64)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        out[rows] = np.arange(len(rows)) % max(k, 1)
    return out


def density_ratio(f_source: np.ndarray, f_target: np.ndarray, f_eval: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """``w(f_eval) = (n_S/n_T) · P(T|f) / P(S|f)`` from a logistic regression trained on source vs target
    features (standardised on their union), and that classifier's training accuracy."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(stable_seed("density-ratio", seed))
    if len(f_source) > DENSITY_SAMPLES:
        f_source = f_source[rng.choice(len(f_source), DENSITY_SAMPLES, replace=False)]
    if len(f_target) > DENSITY_SAMPLES:
        f_target = f_target[rng.choice(len(f_target), DENSITY_SAMPLES, replace=False)]
    X = np.concatenate([f_source, f_target]).astype(np.float64)
    d = np.concatenate([np.zeros(len(f_source)), np.ones(len(f_target))])
    mean, std = X.mean(0), X.std(0) + 1e-8
    clf = LogisticRegression(C=1.0, max_iter=1000)
    clf.fit((X - mean) / std, d)
    acc = float(clf.score((X - mean) / std, d))
    p = np.clip(clf.predict_proba((np.asarray(f_eval, np.float64) - mean) / std)[:, 1], 1e-6, 1 - 1e-6)
    return (len(f_source) / len(f_target)) * p / (1 - p), acc


def dev_risk(losses: np.ndarray, weights: np.ndarray) -> float:
    """Deep Embedded Validation risk (You et al. 2019, Algorithm 1): the importance-weighted loss with the
    weight as control variate, ``mean(w ℓ) + η mean(w) − η``, ``η = −Cov(w ℓ, w) / Var(w)``."""
    wl = weights * losses
    var = float(np.var(weights, ddof=1)) if len(weights) > 1 else 0.0
    eta = -float(np.cov(wl, weights, ddof=1)[0, 1]) / var if var > 0 else 0.0
    return float(wl.mean() + eta * weights.mean() - eta)


@torch.no_grad()
def _features_logits(model, X, kind: str, dev) -> tuple[np.ndarray, torch.Tensor]:
    from .train import EVAL_BATCH, _Data

    model.eval()
    data = _Data(X, kind, dev)
    feats, logits = [], []
    for s in range(0, data.n, EVAL_BATCH):
        f, out = model.features_and_logits(data.take(torch.arange(s, min(s + EVAL_BATCH, data.n))), 0)
        feats.append(f.float().cpu())
        logits.append(out.float().cpu())
    if not feats:
        return np.zeros((0, model.feature_dim), np.float32), torch.zeros(0, model.n_classes)
    return torch.cat(feats).numpy(), torch.cat(logits)


def cell_evidence(run: CellRun, model) -> dict:
    """The record's ``selection_evidence`` for a finished cell (``run``: its :class:`adapt.train.CellRun`; ``model``:
    its final network as evaluated, or None). Fields the cell cannot give are absent; ``note`` says why."""
    from .validators import Selector

    problem, dev, seed = run.problem, run.device, run.cell.seed
    out: dict = {}
    protocol = run.cell.selection or {}
    if model is None or not run.method_cls.exports_model:
        out["note"] = "no network mapping the domain's inputs to logits: no model-based evidence"
    else:
        f_t, logits_t = _features_logits(model, problem.X_unl, problem.kind, dev)
        for rule in VALIDATORS:
            out[rule] = round(Selector(rule).score(logits_t), 6)
        if run.method_cls.uses_source and problem.Xs_val is not None and len(problem.Xs_val):
            f_v, logits_v = _features_logits(model, problem.Xs_val, problem.kind, dev)
            y_v = torch.as_tensor(np.asarray(problem.ys_val), dtype=torch.long)
            losses = F.cross_entropy(logits_v, y_v, reduction="none").numpy().astype(np.float64)
            f_s, _ = _features_logits(model, problem.Xs, problem.kind, dev)
            weights, clf_acc = density_ratio(f_s, f_t, f_v, seed)
            out.update(source_val_acc=round(float((logits_v.argmax(1) == y_v).float().mean()), 6),
                       source_val_loss=round(float(losses.mean()), 6),
                       iwcv_risk=round(float((weights * losses).mean()), 6),
                       dev_risk=round(dev_risk(losses, weights), 6),
                       density_ratio_mean=round(float(weights.mean()), 6),
                       domain_classifier_acc=round(clf_acc, 6), n_source_val=int(len(y_v)))
        elif not run.method_cls.uses_source:
            out["note"] = "the method never reads the source: no source-based evidence"
    folds = int(protocol.get("folds") or 0)
    if folds and run.budget >= 2 and len(problem.y_lab):
        out.update(_target_cv(run, folds))
    return out


def _target_cv(run: CellRun, folds: int) -> dict:
    """Mean and per-fold accuracy of the cell's method retrained on K−1 folds of the labelled target samples."""
    problem = run.problem
    ids = fold_ids(problem.y_lab, folds)
    accs = []
    for k in range(int(ids.max()) + 1):
        keep, held = ids != k, ids == k
        origins = dict(problem.origins) if problem.origins is not None else None
        if origins is not None:
            whole, rows = origins["X_lab"]
            origins["X_lab"] = (whole, np.asarray(rows)[keep])
            origins["X_test"] = (whole, np.asarray(rows)[held])
        fold = replace(problem, X_lab=problem.X_lab[keep], y_lab=problem.y_lab[keep],
                       lab_index=problem.lab_index[keep], X_test=problem.X_lab[held], y_test=problem.y_lab[held],
                       test_index=None, origins=origins)
        fold_run = replace(run, problem=fold, kept={})
        res = run.method_cls.fit_cell(fold_run)
        acc = res.get("accuracy")
        accs.append(None if acc is None or res.get("status") != "ok" else round(float(acc), 6))
    done = [a for a in accs if a is not None]
    return {"target_cv_acc": round(float(np.mean(done)), 6) if done else None, "target_cv_folds": accs}
