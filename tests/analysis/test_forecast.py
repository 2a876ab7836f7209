"""analysis.forecast: τ_w and AUROC against independent computations, domain permutations, predictors on `shift`."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from adapt.domains.shift import load_shift_domains
from analysis.forecast import evaluate_predictors, pair_predictors, rank_sources, verdict, weighted_tau


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
    assert table.loc["concept", "verdict"] == "hurt"             # renamed classes: the source model is wrong
    assert table.loc["concept", "source_model_acc"] < 0.2
    assert table.loc["null", "source_model_acc"] > 0.8
    assert table.loc["null", "verdict"] in ("help", "unsure")
    ranked = rank_sources(table.reset_index())
    assert ranked.iloc[0].source == "null" and ranked.iloc[-1].source == "concept"
