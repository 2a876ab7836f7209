"""Selection evidence is computed at train time from training data only: scrambling the target's *test* labels
changes the accuracy, never a field of ``selection_evidence``; the held-out source is never trained on; DEV
and IWCV follow their formulas."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from adapt.cells import Cell
from adapt.domains.shift import load_shift_domains
from adapt.selection import dev_risk, fold_ids, holdout_indices
from adapt.train import prepare_cell, run_cell

TRAIN = {"steps": 30, "batch_size": 16, "eval_every": 10, "lr": 0.003}
MODEL = {"backbone": "mlp", "hidden": [8]}


@pytest.fixture(scope="module")
def domains():
    return load_shift_domains({"n_samples": 120, "n_features": 6, "n_classes": 3, "seed": 5,
                               "shifts": {"a": {}, "b": {"covariate": 0.8}}})


def cell(method="dann", budget=3, folds=3, seed=0, params=None):
    return Cell(source="a", target="b", method=method, method_name=method, seed=seed, budget=budget,
                method_params=params or {}, model=MODEL, train=TRAIN,
                selection={"source_holdout": 0.25, "folds": folds})


def with_test_set(target):
    """The target with a given test set (every third sample), so that its test labels are separate data."""
    test = np.arange(len(target.y)) % 3 == 0
    return dataclasses.replace(target, X=target.X[~test], y=target.y[~test], X_test=target.X[test],
                               y_test=target.y[test])


def scrambled_test_labels(target):
    """The same target with every test label moved to another class."""
    return dataclasses.replace(target, y_test=(target.y_test + 1) % target.n_classes)


@pytest.mark.parametrize("method", ["dann", "finetune"])
def test_evidence_never_reads_target_test_labels(domains, method):
    c = cell(method)
    target = with_test_set(domains["b"])
    honest = run_cell(c, domains["a"], target, device="cpu")
    scrambled = run_cell(c, domains["a"], scrambled_test_labels(target), device="cpu")
    assert honest["accuracy"] != scrambled["accuracy"]  # the scramble reaches what the test split measures
    ev = honest["selection_evidence"]
    assert {"target_cv_acc", "source_val_acc", "dev_risk", "iwcv_risk", "im", "snd", "entropy"} <= set(ev)
    assert scrambled["selection_evidence"] == ev


def test_held_out_source_is_left_out_of_training(domains):
    c = cell("finetune", budget=0, folds=0)
    run, record = prepare_cell(c, domains["a"], domains["b"], device="cpu")
    n = len(domains["a"].y)
    assert len(run.problem.Xs) + len(run.problem.Xs_val) == n and record["n_source"] == len(run.problem.Xs)
    train, held = holdout_indices(domains["a"].y, 0.25, c.seed)
    assert np.array_equal(run.problem.Xs_val, domains["a"].X[held])
    assert not set(map(bytes, run.problem.Xs)) & set(map(bytes, run.problem.Xs_val))
    # stratified: a quarter of every class
    for k in range(3):
        assert (domains["a"].y[held] == k).sum() == round(0.25 * (domains["a"].y == k).sum())


def test_folds_are_stratified_and_cover_every_labelled_sample():
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    ids = fold_ids(y, 3)
    for k in range(3):
        assert sorted(y[ids == k]) == [0, 1, 2]
    assert fold_ids(np.array([0, 0, 1, 1]), 3).max() == 1  # K = min(folds, smallest class count)


def test_target_cv_retrains_per_fold_on_the_other_folds(domains, monkeypatch):
    """Each fold model trains on K-1 folds' labels and is scored on the held-out fold (never the test split)."""
    import adapt.methods.finetune as finetune_module

    seen = []
    real = finetune_module.Finetune.fit_cell.__func__

    def spy(cls, run):
        seen.append((len(run.problem.y_lab), len(run.problem.y_test), run.problem.test_index is None))
        return real(cls, run)

    monkeypatch.setattr(finetune_module.Finetune, "fit_cell", classmethod(spy))
    record = run_cell(cell("finetune"), domains["a"], domains["b"], device="cpu")
    assert seen[0][2] is False and seen[1:] == [(6, 3, True)] * 3  # main fit, then three folds of 2+1 per class
    folds = record["selection_evidence"]["target_cv_folds"]
    assert record["selection_evidence"]["target_cv_acc"] == pytest.approx(np.mean(folds), abs=1e-6)


def test_dev_risk_matches_its_formula_and_iwcv_without_weight_variance():
    rng = np.random.default_rng(0)
    losses, w = rng.exponential(size=200), rng.lognormal(size=200)
    wl = w * losses
    eta = -np.cov(wl, w)[0, 1] / np.var(w, ddof=1)
    assert dev_risk(losses, w) == pytest.approx(wl.mean() + eta * w.mean() - eta)
    assert dev_risk(losses, np.ones(200)) == pytest.approx(losses.mean())  # w ≡ 1: plain validation risk
