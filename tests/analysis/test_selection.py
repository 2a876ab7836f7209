"""Label-free selection reads evidence, never test accuracy; verdicts use the selected configuration; the
oracle gap is best-on-test minus selected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import negative_transfer, ok_rows
from analysis.selection import RULES, oracle_gap, select

CONFIGS = ["dann[trade_off=0.3]", "dann[trade_off=1]", "dann[trade_off=3]"]


def sweep_frame(seeds=6, seed=0) -> pd.DataFrame:
    """A sweep of three DANN configurations plus scratch, every rule's evidence random, on two pairs."""
    rng = np.random.default_rng(seed)
    rows = []
    for target in ("b", "c"):
        for s in range(seeds):
            rows.append({"source": "a", "target": target, "method": "scratch", "seed": s, "budget": 3,
                         "accuracy": 0.5 + 0.05 * rng.standard_normal(), "status": "ok", "n_test": 200})
            for i, label in enumerate(CONFIGS):
                rows.append({"source": "a", "target": target, "method": label, "sweep": "dann", "grid_index": i,
                             "seed": s, "budget": 3, "accuracy": 0.6 + 0.05 * rng.standard_normal(),
                             "status": "ok", "n_test": 200,
                             **{f"selection_evidence.{field}": rng.standard_normal()
                                for field, _ in RULES.values()}})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("rule", list(RULES))
def test_selection_never_reads_test_accuracy(rule):
    """Scramble every test accuracy (and drop the per-example outcomes a rule could peek at): the choice
    must not move. A rule that looks at accuracy — the oracle — fails here."""
    df = sweep_frame()
    chosen = select(df, rule)["selected"]
    rng = np.random.default_rng(1)
    scrambled = df.assign(accuracy=rng.permutation(df["accuracy"].to_numpy()))
    assert select(scrambled, rule)["selected"].tolist() == chosen.tolist()
    assert select(scrambled.drop(columns=["accuracy"]), rule)["selected"].tolist() == chosen.tolist()


@pytest.mark.parametrize("rule", list(RULES))
def test_each_group_selects_its_best_evidence(rule):
    field, sign = RULES[rule]
    out = select(sweep_frame(), rule)
    for _, group in out[out["sweep"] == "dann"].groupby(["target", "seed"]):
        assert group["selected"].sum() == 1
        score = sign * group[f"selection_evidence.{field}"]
        assert score[group["selected"]].item() == score.max()
    assert out.loc[out["method"] == "scratch", "selected"].all()  # a single configuration is its own choice


def test_ties_go_to_the_first_configuration_and_missing_evidence_falls_back_to_it():
    df = sweep_frame()
    df["selection_evidence.source_val_acc"] = 0.5
    out = select(df, "source-val")
    assert (out.loc[out["selected"] & (out["sweep"] == "dann"), "grid_index"] == 0).all()
    out = select(df.drop(columns=["selection_evidence.dev_risk"]), "dev")
    assert (out.loc[out["selected"] & (out["sweep"] == "dann"), "grid_index"] == 0).all()
    assert out.loc[out["sweep"] == "dann", "selection_rule"].eq("first (no dev evidence)").all()


def test_a_failed_configuration_is_never_selected():
    df = sweep_frame()
    best = select(df, "im")["selected"]
    df.loc[best & (df["sweep"] == "dann"), "status"] = "failed"
    out = select(df, "im")
    assert not (out["selected"] & (out["status"] != "ok")).any()
    assert out[out["sweep"] == "dann"].groupby(["target", "seed"])["selected"].sum().eq(1).all()


def test_verdicts_judge_the_selected_configuration_under_the_sweeps_label():
    df = select(sweep_frame(), "source-val")
    rows = ok_rows(df)
    assert set(rows["method"]) == {"dann", "scratch"} and len(rows) == 2 * 6 * 2
    nt = negative_transfer(df)
    assert nt["method"].tolist() == ["dann", "dann"]
    for target, row in nt.set_index("target").iterrows():
        chosen = df[df["selected"] & (df["sweep"] == "dann") & (df["target"] == target)]["accuracy"].mean()
        assert row["mean_accuracy"] == pytest.approx(chosen)


def test_oracle_gap_is_best_on_test_minus_selected():
    df = select(sweep_frame(), "snd")
    gaps = oracle_gap(df)
    assert len(gaps) == 2 * 6 and (gaps["gap"] >= 0).all()
    for _, g in gaps.iterrows():
        group = df[(df["sweep"] == "dann") & (df["target"] == g["target"]) & (df["seed"] == g["seed"])]
        assert g["oracle_accuracy"] == group["accuracy"].max()
        assert g["selected_accuracy"] == group.loc[group["selected"], "accuracy"].item()
