"""analysis.forecast: τ_w and AUROC against independent computations, domain permutations, predictors on `shift`."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from adapt.domains.shift import load_shift_domains
from analysis.forecast import (checked_verdicts, evaluate_predictors, pair_evidence, pair_predictors,
                               pooled_outcomes, rank_sources, target_only_outcomes, trivial_comparison,
                               verdict, verdict_precision, weighted_tau)


def _hand_weighted_tau(x, y):
    """Vigna's τ_w with hyperbolic weights 1/(r+1), no ties, averaged over the rankings by x and by y."""
    def one(order_key):
        rank = np.empty(len(x), int)
        rank[np.argsort(-order_key, kind="stable")] = np.arange(len(x))
        num = den = 0.0
        for i, j in itertools.combinations(range(len(x)), 2):
            w = 1 / (rank[i] + 1) + 1 / (rank[j] + 1)
            num += w * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            den += w
        return num / den
    return 0.5 * (one(x) + one(y))


def test_weighted_tau_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.normal(size=7), rng.normal(size=7)
        assert weighted_tau(x, y) == pytest.approx(_hand_weighted_tau(x, y), abs=1e-12)
    assert np.isnan(weighted_tau([1, 2], [2, 1]))


def _matrix(n_domains=6, seed=0):
    rng = np.random.default_rng(seed)
    doms = [f"d{i}" for i in range(n_domains)]
    rows = [(s, t) for s in doms for t in doms if s != t]
    harm = rng.random(len(rows)) < 0.3
    gain = np.where(harm, -0.1, 0.05) + rng.normal(0, 0.01, len(rows))
    nt = pd.DataFrame({"source": [r[0] for r in rows], "target": [r[1] for r in rows], "method": "dann",
                       "budget": 5, "gain": gain, "flag": np.where(harm, "negative", "inconclusive")})
    pred = nt[["source", "target", "budget"]].assign(
        perfect=gain, noise=rng.normal(size=len(rows)), mmd=-gain + rng.normal(0, 0.05, len(rows)))
    return nt, pred


def test_auroc_matches_a_pairwise_count_and_signs_are_right():
    nt, pred = _matrix()
    out = evaluate_predictors(pred, nt, ["perfect", "noise", "mmd"], n_permutations=99).set_index("predictor")
    harm = nt.flag.eq("negative").to_numpy()
    for name in ("noise", "mmd"):   # names not in GAIN_SIGN are distances: larger = more harm
        score = pred[name].to_numpy()
        pos, neg = score[harm], score[~harm]
        hand = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
        assert out.loc[name, "auroc"] == pytest.approx(hand)
    # "perfect" is unknown too, so read as a distance: larger = more harm, i.e. exactly wrong
    assert out.loc["perfect", "auroc"] == pytest.approx(0.0)
    assert out.loc["mmd", "auroc"] > 0.8
    assert out.loc["mmd", "auroc_p_value"] <= 0.05
    assert out.loc["noise", "auroc_p_value"] > 0.05


def test_gain_signed_predictor_and_tau_over_sources():
    nt, pred = _matrix()
    pred = pred.rename(columns={"perfect": "source_model_acc"})   # a gain-signed predictor
    out = evaluate_predictors(pred, nt, ["source_model_acc"], n_permutations=99).iloc[0]
    assert out.auroc == pytest.approx(1.0)
    assert out.mean_tau_w == pytest.approx(1.0)
    assert out.n_targets == 6 and out.n_negative == nt.flag.eq("negative").sum()
    assert out.tau_p_value == pytest.approx(0.01)   # beats every one of the 99 relabellings


def test_four_domains_cannot_give_a_p_value_below_one_in_twenty_four():
    nt, pred = _matrix(n_domains=4, seed=2)
    out = evaluate_predictors(pred, nt, ["mmd"], n_permutations=999).iloc[0]
    assert out.n_permutations == 23
    assert out.auroc_p_value >= 1 / 24


def test_verdict_needs_two_standard_errors():
    assert verdict(0.9, 0.5, 40) == "help"
    assert verdict(0.2, 0.9, 40) == "hurt"
    assert verdict(0.80, 0.78, 40) == "unsure"


def test_pair_predictors_on_planted_shift_pairs():
    doms = load_shift_domains({"seed": 2})
    T = doms["base"]
    rng = np.random.default_rng(0)
    lab = np.concatenate([rng.choice(np.flatnonzero(T.y == c), 5, replace=False) for c in range(4)])
    rows = []
    for src in ("null", "concept", "covariate"):
        S = doms[src]
        rows.append({"source": src, "target": "base", "budget": 5,
                     **pair_predictors(S.X, S.y, T.X[lab], T.y[lab], 4)})
    table = pd.DataFrame(rows).set_index("source")
    assert table.loc["concept", "verdict"] == "hurt" if "verdict" in table else True
    assert table.loc["concept", "evidence"] == "hurt"            # renamed classes: pooling contradicts the target
    assert table.loc["concept", "pooled_gain"] < -0.2
    assert table.loc["concept", "source_model_acc"] < 0.2
    assert table.loc["null", "source_model_acc"] > 0.8
    assert table.loc["null", "evidence"] in ("help", "unsure")
    assert table.loc["null", "pooled_gain"] > table.loc["concept", "pooled_gain"] + 0.3
    ranked = rank_sources(table.reset_index())
    assert ranked.iloc[0].source == "null" and ranked.iloc[-1].source == "concept"


def test_pooled_and_target_only_are_paired_on_the_same_held_out_samples():
    rng = np.random.default_rng(0)
    xl = rng.normal(size=(30, 3)) + np.repeat(np.eye(3) * 3, 10, axis=0)
    yl = np.repeat(np.arange(3), 10)
    alone = target_only_outcomes(xl, yl)
    assert alone.shape == (30,) and set(np.unique(alone)) <= {0.0, 1.0}
    # a source that repeats the target's own labelled samples adds nothing new: the pooled fit predicts like
    # the target-only one on (nearly) every held-out sample
    same = pooled_outcomes(np.tile(xl, (3, 1)), np.tile(yl, 3), xl, yl)
    contradicting = pooled_outcomes(np.tile(xl, (3, 1)), (np.tile(yl, 3) + 1) % 3, xl, yl)
    assert same.mean() >= alone.mean() - 0.1
    assert contradicting.mean() < alone.mean() - 0.3   # equal total weight: the renamed source fights back
    assert len(target_only_outcomes(xl[:3], yl[:3])) == 0   # one sample a class: no fold can hold one out


def _checked_matrix(seed=0, n_domains=5, methods=("dann", "finetune")):
    """A predictor whose large negative values come with measured harm everywhere."""
    rng = np.random.default_rng(seed)
    doms = [f"d{i}" for i in range(n_domains)]
    pairs = [(s, t) for s in doms for t in doms if s != t]
    value = rng.normal(0, 0.1, len(pairs))
    pred = pd.DataFrame({"source": [p[0] for p in pairs], "target": [p[1] for p in pairs], "budget": 5,
                         "pooled_gain": value,
                         "evidence": np.where(value < -0.05, "hurt", np.where(value > 0.05, "help", "unsure"))})
    nt = pd.concat([pred[["source", "target", "budget"]].assign(
        method=m, gain=pred.pooled_gain + rng.normal(0, 0.01, len(pred)), flag="inconclusive") for m in methods])
    return pred, nt


def test_checked_verdicts_call_hurt_and_help_where_the_other_targets_agree():
    pred, nt = _checked_matrix(n_domains=6)
    out = checked_verdicts(pred, nt)
    own = pred.evidence.to_numpy()
    # a verdict is never made against the pair's own test, and here the other targets agree everywhere
    assert set(out.verdict[own == "unsure"]) == {"unsure"}
    # (a value beyond every calibration call of its kind stays unsure: the threshold is never extrapolated)
    assert (out.verdict[own == "hurt"] == "hurt").mean() > 0.6 and (out.verdict[own == "help"] == "help").mean() > 0.6
    precision = verdict_precision(out, nt)
    assert precision["hurt"]["precision"] == 1.0 and precision["help"]["precision"] == 1.0
    assert (out.checked_calls[out.verdict != "unsure"] >= 3).all()


def test_checked_verdicts_never_read_the_predicted_targets_own_rows():
    """Leave-one-target-out: changing what was measured on target d0 cannot change d0's verdicts."""
    pred, nt = _checked_matrix(seed=1)
    before = checked_verdicts(pred, nt)
    flipped = nt.assign(gain=np.where(nt.target == "d0", -nt.gain, nt.gain))
    after = checked_verdicts(pred, flipped)
    d0 = before.target == "d0"
    assert (before.verdict[d0] != "unsure").any()
    assert before.verdict[d0].tolist() == after.verdict[d0].tolist()
    assert before.verdict_threshold[d0].fillna(9).tolist() == after.verdict_threshold[d0].fillna(9).tolist()
    # ... while the other targets' verdicts, checked partly on d0's rows, may move
    assert before.checked_right[~d0].sum() != after.checked_right[~d0].sum()


def test_checked_verdicts_stay_unsure_when_the_predictor_was_wrong_elsewhere():
    pred, nt = _checked_matrix(seed=2)
    wrong = nt.assign(gain=-nt.gain)                 # every call the predictor would make measured the other way
    out = checked_verdicts(pred, wrong)
    assert set(out.verdict) == {"unsure"}
    assert out.verdict_reason.str.contains("not right often enough|not beyond 2 standard errors").all()
    noise = nt.assign(gain=np.random.default_rng(3).normal(0, 0.1, len(nt)))   # calls right half the time
    out = checked_verdicts(pred, noise)
    assert (out.verdict == "unsure").mean() > 0.8
    assert set(checked_verdicts(pred, None).verdict) == {"unsure"}   # nothing measured yet: nothing checked


def test_checked_verdict_precision_is_shrunk_for_few_calls():
    """(right + 1/2) / (calls + 1) >= 0.8: 3 of 3 pass, 4 of 5 (80 % raw) do not."""
    def one(gains):
        n = len(gains)
        pred = pd.DataFrame({"source": ["a"] * n + ["b"], "target": [f"t{i}" for i in range(n)] + ["x"],
                             "budget": 5, "pooled_gain": -1.0, "evidence": "hurt"})
        nt = pred.iloc[:n][["source", "target", "budget"]].assign(method="dann", gain=gains, flag="inconclusive")
        return checked_verdicts(pred, nt).set_index("target").loc["x", "verdict"]
    assert one([-0.1, -0.1, -0.1]) == "hurt"
    assert one([-0.1, -0.1, -0.1, -0.1, 0.1]) == "unsure"
    assert one([-0.1, -0.1]) == "unsure"            # fewer than MIN_CHECKED_CALLS
    # calls right on one other target only are not a check
    pred = pd.DataFrame({"source": ["a", "b", "c", "a"], "target": ["t", "t", "t", "x"], "budget": 5,
                         "pooled_gain": -1.0, "evidence": "hurt"})
    nt = pred.iloc[:3][["source", "target", "budget"]].assign(method="dann", gain=-0.1, flag="inconclusive")
    assert checked_verdicts(pred, nt).set_index("target").loc["x", "verdict"] == "unsure"


def test_pair_evidence_needs_two_standard_errors():
    assert pair_evidence(-0.2, 0.05, 50) == "hurt" and pair_evidence(0.2, 0.05, 50) == "help"
    assert pair_evidence(-0.05, 0.05, 50) == "unsure" and pair_evidence(float("nan"), 0.1, 50) == "unsure"


def test_trivial_baselines_and_chance_bands():
    nt, pred = _matrix(n_domains=5, seed=4)
    pred = pred.assign(source_size=np.random.default_rng(5).normal(size=len(pred)),
                       knn_source_acc=np.random.default_rng(6).normal(size=len(pred)),
                       copy_of_size=lambda f: -f.source_size)   # a distance-signed copy of a trivial baseline
    out = evaluate_predictors(pred, nt, ["mmd", "noise", "source_size", "knn_source_acc", "copy_of_size"],
                              n_permutations=119).set_index("predictor")
    assert (out.auroc_null_low < 0.5).all() and (out.auroc_null_high > 0.5).all()
    assert out.loc["mmd", "beats_trivial"] is True or out.loc["mmd", "beats_trivial"] == True  # noqa: E712
    assert not out.loc["noise", "beats_trivial"] and not out.loc["copy_of_size", "beats_trivial"]
    lines = " ".join(trivial_comparison(out.reset_index()))
    assert "no better than a trivial predictor or than chance" in lines and "noise" in lines
    assert "better than every trivial predictor and above chance: mmd" in lines
