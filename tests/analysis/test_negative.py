"""negative_transfer / da_harm / budget_crossover against hand computations with scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from adapt.errors import TransferlabError
from analysis.negative import benjamini_hochberg, da_harm, negative_transfer, paired_stats

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


def test_plain_t_matches_scipy_hand_computation():
    out = negative_transfer(_rows(), alpha=0.05, test="t", min_effect=0.0)
    keys = sorted(METHOD)
    assert list(zip(out.source, out.target, out.method, out.budget)) == keys
    p_loss, p_gain = [], []
    for row in out.itertuples():
        acc = np.array(METHOD[row.source, row.target, row.method, row.budget])
        ref = np.array(SCRATCH[row.target, row.budget])
        res = stats.ttest_rel(acc, ref)
        ci = res.confidence_interval(0.95)
        assert row.gain == pytest.approx(np.mean(acc - ref))
        assert row.p_two_sided == pytest.approx(res.pvalue)
        assert row.t == pytest.approx(res.statistic)
        assert (row.ci_low, row.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
        assert row.mean_scratch == pytest.approx(ref.mean()) and row.n_seeds == 4 and row.baseline == "scratch"
        p_loss.append(stats.ttest_rel(acc, ref, alternative="less").pvalue)
        p_gain.append(stats.ttest_rel(acc, ref, alternative="greater").pvalue)
        assert row.p_value == pytest.approx(min(p_loss[-1], p_gain[-1]))
    q_loss = stats.false_discovery_control(p_loss)
    q_gain = stats.false_discovery_control(p_gain)
    expected = np.where(q_loss < 0.05, "negative", np.where(q_gain < 0.05, "positive", "inconclusive"))
    assert list(out.flag) == list(expected)
    np.testing.assert_allclose(out.q_value, np.where(out.gain < 0, q_loss, q_gain))
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


def test_degenerate_seed_counts_get_no_t_test():
    one = paired_stats([0.1])
    assert one["n_seeds"] == 1 and one["gain"] == pytest.approx(0.1) and math.isnan(one["p_value"])
    flat = paired_stats([-0.05, -0.05, -0.05])  # zero variance: no t-test, never p = 0
    assert math.isnan(flat["p_value"]) and flat["std"] == 0.0
    single = _rows()[lambda d: d.seed == 0]
    out = negative_transfer(single, test="t")
    assert (out.flag == "inconclusive").all() and out.p_value.isna().all() and (out.n_seeds == 1).all()
    assert out.note.str.contains("one seed").all()


def test_benjamini_hochberg_matches_scipy_and_keeps_nan():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10), [0.03, 0.03]])
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"))
    with_nan = np.array([0.01, np.nan, 0.04, 0.5])
    q = benjamini_hochberg(with_nan)
    assert math.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3]], stats.false_discovery_control([0.01, 0.04, 0.5]))


def test_da_harm_pairs_with_finetune():
    out = da_harm(_rows(), reference="finetune", test="t", min_effect=0.0)
    assert set(out.method) == {"dann"} and (out.reference == "finetune").all()
    for row in out.itertuples():
        acc = np.array(METHOD[row.source, row.target, "dann", row.budget])
        ref = np.array(METHOD[row.source, row.target, "finetune", row.budget])
        assert row.gain == pytest.approx(np.mean(acc - ref))
        assert row.p_two_sided == pytest.approx(stats.ttest_rel(acc, ref).pvalue)
    assert set(out.flag) <= {"harm", "help", "inconclusive"}
    assert out.set_index(["source", "budget"]).loc[("b", 5), "flag"] == "help"
    with pytest.raises(TransferlabError, match="'erm'"):
        da_harm(_rows(), reference="erm")
