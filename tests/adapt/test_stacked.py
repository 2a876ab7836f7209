"""Stacked training (adapt.stacked) equals the one-at-a-time path: in float64 the same accuracy, per-example
outcomes, statuses, convergence and curves for every stacked method; a diverging member fails alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from adapt import stacked
from adapt.cells import Cell
from adapt.train import run_cell

METHOD_PARAMS = {"finetune": {}, "dann": {}, "coral": {}, "scratch": {}, "target-only": {}}


def _domains() -> dict:
    from transferlab.config import parse_config
    from transferlab.plan import plan_matrix

    raw = {"name": "t", "data": {"kind": "shift", "n_samples": 120, "n_features": 6, "n_classes": 3,
                                 "shifts": {"a": {}, "b": {"covariate": 0.5}, "c": {"label": 0.5}}},
           "pairs": "all", "methods": ["finetune"], "budgets": [0], "seeds": 1,
           "model": {"backbone": "mlp", "hidden": [16]}, "train": {"steps": 5}}
    return plan_matrix(parse_config(raw)).domains


def _cells(domains, method, budget, seeds=(0, 1), train=None, pairs=None):
    names = sorted(domains)
    pairs = pairs or [(s, t) for s in names for t in names if s != t][:2]
    tr = {"steps": 30, "batch_size": 16, "lr": 0.01, "eval_every": 10, **(train or {})}
    return [Cell(source=s, target=t, method=method, method_name=method, seed=seed, budget=budget,
                 method_params=dict(METHOD_PARAMS[method]), model={"backbone": "mlp", "hidden": [16]},
                 train=tr, data={"kind": "shift", "test_fraction": 0.3})
            for s, t in pairs for seed in seeds]


@pytest.fixture
def float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _assert_same(seq: dict, stk: dict) -> None:
    assert stk["status"] == seq["status"] and stk["reason"] == seq["reason"]
    assert stk["accuracy"] == seq["accuracy"]
    assert stk.get("outcomes") == seq.get("outcomes")
    assert stk["source_accuracy"] == seq["source_accuracy"]
    for key in ("steps", "converged", "selected_step", "phases", "n_target_labelled", "n_source"):
        assert stk.get(key) == seq.get(key), key
    assert set(stk["curves"]) == set(seq["curves"])
    for name, values in seq["curves"].items():
        other = stk["curves"][name]
        assert len(other) == len(values), name
        for a, b in zip(values, other):
            assert (a is None) == (b is None), name
            if a is not None:
                assert b == pytest.approx(a, abs=2e-6), name
    for phase, info in seq["convergence"].items():
        for k, v in info.items():
            w = stk["convergence"][phase][k]
            assert w == pytest.approx(v, abs=2e-6) if isinstance(v, float) else w == v, (phase, k)


@pytest.mark.parametrize("method,budget,train", [
    ("finetune", 0, None), ("finetune", 3, None), ("dann", 0, None), ("dann", 3, None), ("coral", 3, None),
    ("scratch", 3, None), ("target-only", 3, None),
    ("dann", 3, {"grad_clip": 0.5, "lr_schedule": "anneal", "optimizer": "adamw"}),
])
def test_stacked_equals_sequential_in_float64(float64, method, budget, train):
    domains = _domains()
    cells = _cells(domains, method, budget, train=train)
    seq = [run_cell(c, domains[c.source], domains[c.target]) for c in cells]
    stk = stacked.run_group(cells, domains)
    assert all(r.get("stacked", {}).get("members") == len(cells) for r in stk)
    for a, b in zip(seq, stk):
        _assert_same(a, b)


def test_a_diverging_member_fails_alone(float64):
    domains = dict(_domains())
    names = sorted(domains)
    bad = copy.copy(domains[names[0]])
    bad.X = (np.asarray(bad.X, dtype=np.float64) * 1e200)  # its source losses overflow
    bad.name = "huge"
    domains["huge"] = bad
    cells = _cells(domains, "finetune", 3, pairs=[("huge", names[1]), (names[0], names[1])],
                   train={"grad_clip": 1.0})
    seq = [run_cell(c, domains[c.source], domains[c.target]) for c in cells]
    assert seq[0]["status"] == "failed" and seq[-1]["status"] == "ok"
    stk = stacked.run_group(cells, domains)
    for a, b in zip(seq, stk):
        _assert_same(a, b)


def test_unstackable_cells_run_one_at_a_time_and_say_why():
    domains = _domains()
    cells = _cells(domains, "finetune", 3, train={"selection": "im"}) + _cells(domains, "finetune", 3,
                                                                                 train={"stack": False})
    out = stacked.run_group(cells, domains)
    assert [r["stacked"]["fallback"] for r in out] == ["train.selection im picks a checkpoint per cell"] * 4 \
        + ["train.stack is false"] * 4
    for c, r in zip(cells, out):  # the sequential path itself
        ref = run_cell(c, domains[c.source], domains[c.target])
        assert r["accuracy"] == ref["accuracy"] and r["outcomes"] == ref["outcomes"]
    assert stacked.stack_blocker(_cells(domains, "scratch", 3)[0]) is None
    early = Cell(**{**_cells(domains, "scratch", 3)[0].__dict__, "method_params": {"early_stopping": True}})
    assert "early_stopping" in stacked.stack_blocker(early)


def test_groups_follow_stack_members_and_split_for_workers():
    domains = _domains()
    cells = _cells(domains, "dann", 0, seeds=range(10)) + _cells(domains, "finetune", 0, seeds=range(2))
    assert sorted(len(g) for g in stacked.plan_groups(cells, domains)) == [4, 20]
    sized = [Cell(**{**c.__dict__, "train": {**c.train, "stack_members": 6}}) for c in cells]
    assert sorted(len(g) for g in stacked.plan_groups(sized, domains)) == [2, 4, 6, 6, 6]
    assert sorted(len(g) for g in stacked.plan_groups(cells, domains, workers=2)) == [4, 10, 10]
    assert sorted(len(g) for g in stacked.plan_groups(cells, domains, memory_bytes=1)) == [1] * 24
