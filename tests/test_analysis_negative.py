"""negative_transfer / da_harm / budget_crossover against hand computations with scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from adapt.errors import TransferlabError
from analysis.negative import benjamini_hochberg, budget_crossover, da_harm, negative_transfer, paired_stats

SCRATCH = {  # (target, budget) -> accuracy per seed 0..3
    ("b", 5): [0.60, 0.62, 0.58, 0.61],
    ("b", 10): [0.70, 0.71, 0.69, 0.72],
    ("a", 5): [0.55, 0.57, 0.50, 0.52],
}
METHOD = {  # (source, target, method, budget) -> accuracy per seed
    ("a", "b", "finetune", 5): [0.70, 0.69, 0.73, 0.66],
    ("a", "b", "finetune", 10): [0.68, 0.66, 0.69, 0.66],
    ("a", "b", "dann", 5): [0.72, 0.75, 0.70, 0.71],
    ("a", "b", "dann", 10): [0.69, 0.72, 0.70, 0.70],
    ("b", "a", "finetune", 5): [0.40, 0.45, 0.43, 0.41],
    ("b", "a", "dann", 5): [0.56, 0.52, 0.57, 0.50],
}


def _rows(scratch_per_pair: bool = True) -> pd.DataFrame:
    rows = []
    for (source, target, method, budget), accs in METHOD.items():
        rows += [dict(source=source, target=target, method=method, seed=s, budget=budget, accuracy=a, status="ok")
                 for s, a in enumerate(accs)]
    pairs = {("a", "b"), ("b", "a")}
    for (target, budget), accs in SCRATCH.items():
        sources = [s for s, t in pairs if t == target] if scratch_per_pair else [np.nan]
        for source in sources:
            rows += [dict(source=source, target=target, method="scratch", seed=s, budget=budget, accuracy=a,
                          status="ok") for s, a in enumerate(accs)]
    return pd.DataFrame(rows)


def test_negative_transfer_matches_scipy_hand_computation():
    out = negative_transfer(_rows(), alpha=0.05)
    keys = sorted(METHOD)
    assert list(zip(out.source, out.target, out.method, out.budget)) == \
        sorted(keys, key=lambda k: (k[0], k[1], k[2], k[3]))
    expected_p = []
    for row in out.itertuples():
        acc = np.array(METHOD[row.source, row.target, row.method, row.budget])
        ref = np.array(SCRATCH[row.target, row.budget])
        test = stats.ttest_rel(acc, ref)
        lo, hi = stats.t.interval(0.95, 3, loc=np.mean(acc - ref), scale=stats.sem(acc - ref))
        assert row.gain == pytest.approx(np.mean(acc - ref))
        assert row.p_value == pytest.approx(test.pvalue)
        assert row.t == pytest.approx(test.statistic)
        assert (row.ci_low, row.ci_high) == (pytest.approx(lo), pytest.approx(hi))
        assert row.mean_scratch == pytest.approx(ref.mean()) and row.n_seeds == 4
        assert row.baseline == "scratch"
        expected_p.append(test.pvalue)
    q = stats.false_discovery_control(expected_p, method="bh")
    np.testing.assert_allclose(out.q_value, q)
    expected_flag = np.where(q < 0.05, np.where(out.gain < 0, "negative", "positive"), "inconclusive")
    assert list(out.flag) == list(expected_flag)
    assert {"negative", "positive"} <= set(out.flag)  # the fixture plants both


def test_scratch_rows_without_source_give_the_same_table():
    pd.testing.assert_frame_equal(negative_transfer(_rows(True)), negative_transfer(_rows(False)))


def test_failed_and_nan_rows_are_excluded():
    df = _rows()
    bad = pd.DataFrame([
        dict(source="a", target="b", method="finetune", seed=0, budget=5, accuracy=0.0, status="failed"),
        dict(source="a", target="b", method="scratch", seed=1, budget=5, accuracy=0.99, status="failed"),
        dict(source="a", target="b", method="dann", seed=2, budget=5, accuracy=np.nan, status="ok"),
    ])
    pd.testing.assert_frame_equal(negative_transfer(pd.concat([df, bad], ignore_index=True)), negative_transfer(df))


def test_missing_column_is_named():
    with pytest.raises(TransferlabError, match="'budget'"):
        negative_transfer(_rows().drop(columns="budget"))
    with pytest.raises(TransferlabError, match="DataFrame"):
        negative_transfer([{"a": 1}])


def test_budget_zero_uses_chance_or_is_inconclusive():
    rows = [dict(source="a", target="b", method="finetune", seed=s, budget=0, accuracy=acc, status="ok", n_classes=4)
            for s, acc in enumerate([0.10, 0.12, 0.15, 0.11])]
    df = pd.concat([_rows(), pd.DataFrame(rows)], ignore_index=True)
    df["n_classes"] = 4
    row = negative_transfer(df).query("budget == 0").iloc[0]
    diffs = np.array([0.10, 0.12, 0.15, 0.11]) - 0.25
    assert row.baseline == "chance" and row.mean_scratch == 0.25
    assert row.gain == pytest.approx(diffs.mean())
    assert row.p_value == pytest.approx(stats.ttest_1samp(diffs, 0.0).pvalue)
    assert row.flag == "negative"
    row = negative_transfer(df.drop(columns="n_classes")).query("budget == 0").iloc[0]
    assert row.baseline == "none" and row.flag == "inconclusive"
    assert math.isnan(row.gain) and math.isnan(row.p_value) and math.isnan(row.q_value)


def test_degenerate_seed_counts():
    one = paired_stats([0.1])
    assert one["n_seeds"] == 1 and one["gain"] == pytest.approx(0.1) and math.isnan(one["p_value"])
    flat = paired_stats([-0.05, -0.05, -0.05])
    assert flat["p_value"] == 0.0 and flat["ci_low"] == flat["ci_high"] == pytest.approx(-0.05)
    zero = paired_stats([0.0, 0.0])
    assert zero["p_value"] == 1.0 and zero["gain"] == 0.0
    df = _rows()
    single = df[(df.seed == 0)]
    out = negative_transfer(single)
    assert (out.flag == "inconclusive").all() and out.p_value.isna().all() and (out.n_seeds == 1).all()


def test_benjamini_hochberg_matches_scipy_and_keeps_nan():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10), [0.03, 0.03]])
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"))
    with_nan = np.array([0.01, np.nan, 0.04, 0.5])
    q = benjamini_hochberg(with_nan)
    assert math.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3]], stats.false_discovery_control([0.01, 0.04, 0.5]))


def test_da_harm_pairs_with_finetune():
    out = da_harm(_rows(), reference="finetune")
    assert set(out.method) == {"dann"} and (out.reference == "finetune").all()
    p = []
    for row in out.itertuples():
        acc = np.array(METHOD[row.source, row.target, "dann", row.budget])
        ref = np.array(METHOD[row.source, row.target, "finetune", row.budget])
        assert row.gain == pytest.approx(np.mean(acc - ref))
        assert row.p_value == pytest.approx(stats.ttest_rel(acc, ref).pvalue)
        p.append(row.p_value)
    np.testing.assert_allclose(out.q_value, stats.false_discovery_control(p))
    assert set(out.flag) <= {"harm", "help", "inconclusive"}
    assert out.set_index(["source", "budget"]).loc[("b", 5), "flag"] == "help"
    with pytest.raises(TransferlabError, match="'erm'"):
        da_harm(_rows(), reference="erm")


def test_budget_crossover():
    rows = []
    gains = {("a", "b", "ft"): {1: 0.2, 5: 0.1, 10: -0.05, 20: -0.1},   # crossover at 10
             ("a", "b", "dann"): {1: -0.1, 5: 0.05, 10: -0.02, 20: -0.03},  # first negative 1, from 10 on
             ("b", "a", "ft"): {1: 0.2, 5: 0.1, 10: 0.05, 20: -0.01 + 0.02}}  # never
    for (source, target, method), by_budget in gains.items():
        for budget, gain in by_budget.items():
            for seed, noise in enumerate([0.0, 0.01, -0.01]):
                rows.append(dict(source=source, target=target, method=method, seed=seed, budget=budget,
                                 accuracy=0.5 + gain + noise, status="ok"))
                rows.append(dict(source=source, target=target, method="scratch", seed=seed, budget=budget,
                                 accuracy=0.5 + noise, status="ok"))
    out = budget_crossover(pd.DataFrame(rows)).set_index(["source", "target", "method"])
    assert out.loc[("a", "b", "ft"), "crossover_budget"] == 10
    assert out.loc[("a", "b", "dann"), "crossover_budget"] == 10
    assert out.loc[("a", "b", "dann"), "first_negative_budget"] == 1
    assert math.isnan(out.loc[("b", "a", "ft"), "crossover_budget"])
    assert (out.n_budgets == 4).all()
    table = negative_transfer(pd.DataFrame(rows))
    pd.testing.assert_frame_equal(budget_crossover(table), budget_crossover(pd.DataFrame(rows)))
