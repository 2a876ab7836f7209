"""distance_gain_correlation / harm_auroc against scipy and sklearn called directly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from adapt.errors import TransferlabError
from analysis import distance_gain_correlation, harm_auroc


@pytest.fixture
def tables():
    rng = np.random.default_rng(0)
    pairs = [(s, t) for s in "abcd" for t in "abcd" if s != t]
    dist = pd.DataFrame({"source": [p[0] for p in pairs], "target": [p[1] for p in pairs],
                         "mmd2": rng.uniform(size=len(pairs)), "coral": rng.uniform(size=len(pairs)),
                         "note": ["x"] * len(pairs)})
    rows = []
    for method in ("finetune", "dann"):
        for (s, t), d in zip(pairs, dist.mmd2):
            gain = 0.1 - 0.3 * d + rng.normal(0, 0.02)
            rows.append({"source": s, "target": t, "method": method, "budget": 5, "gain": gain,
                         "flag": "negative" if gain < -0.05 else "inconclusive"})
    return pd.DataFrame(rows), dist


def test_spearman_matches_scipy(tables):
    nt, dist = tables
    out = distance_gain_correlation(nt, dist).set_index("distance")
    assert list(out.index) == ["mmd2", "coral"]  # numeric columns only
    joined = nt.merge(dist, on=["source", "target"])
    for col in ("mmd2", "coral"):
        ref = spearmanr(joined[col], joined.gain)
        assert out.loc[col, "rho"] == pytest.approx(ref.statistic)
        assert out.loc[col, "p_spearman"] == pytest.approx(ref.pvalue)
        assert out.loc[col, "n"] == len(joined)
    assert out.loc["mmd2", "rho"] < -0.8


def test_spearman_by_group_and_mapping_input(tables):
    nt, dist = tables
    mapping = {(r.source, r.target): {"mmd2": r.mmd2} for r in dist.itertuples()}
    out = distance_gain_correlation(nt, mapping, by=["method"])
    assert list(out.method) == ["dann", "finetune"] and (out.n == 12).all()
    sub = nt[nt.method == "dann"].merge(dist, on=["source", "target"])
    assert out.rho.iloc[0] == pytest.approx(spearmanr(sub.mmd2, sub.gain).statistic)


def test_permutation_over_domains_matches_brute_force(tables):
    """Mantel/QAP p and the max-statistic adjustment, recomputed pair by pair with scipy."""
    import itertools

    nt, dist = tables
    nt = nt[nt.method == "finetune"]
    out = distance_gain_correlation(nt, dist).set_index("distance")
    lookup = {c: {(r.source, r.target): getattr(r, c) for r in dist.itertuples()} for c in ("mmd2", "coral")}
    obs = {c: abs(spearmanr([lookup[c][s, t] for s, t in zip(nt.source, nt.target)], nt.gain).statistic)
           for c in lookup}
    perm_rho = {c: [] for c in lookup}
    for perm in itertools.permutations("abcd"):
        move = dict(zip("abcd", perm))
        for c in lookup:
            x = [lookup[c][move[s], move[t]] for s, t in zip(nt.source, nt.target)]
            perm_rho[c].append(abs(spearmanr(x, nt.gain).statistic))
    biggest = np.maximum(perm_rho["mmd2"], perm_rho["coral"])
    for c in lookup:
        assert out.loc[c, "p_value"] == pytest.approx(np.mean(np.array(perm_rho[c]) >= obs[c] - 1e-12))
        assert out.loc[c, "p_adjusted"] == pytest.approx(np.mean(biggest >= obs[c] - 1e-12))
        assert out.loc[c, "n_domains"] == 4
    assert out.loc["mmd2", "p_value"] >= 1 / 24  # 4 domains cannot give less


def test_permutation_test_is_calibrated_under_the_null():
    """Gains unrelated to the distances, 5 domains (120 permutations), 2 distances: measured 3.0 % of 300
    matrices with an adjusted p ≤ 0.05 (scipy's independent-pairs p, either distance: 6.0 %)."""
    rng = np.random.default_rng(1)
    doms = "abcde"
    pairs = [(s, t) for s in doms for t in doms if s != t]
    hits = naive = 0
    for _ in range(300):
        pts = {d: rng.normal(size=2) for d in doms}
        dist = pd.DataFrame({"source": [p[0] for p in pairs], "target": [p[1] for p in pairs],
                             "a": [np.linalg.norm(pts[s] - pts[t]) for s, t in pairs],
                             "b": [abs(pts[s][0] - pts[t][0]) for s, t in pairs]})
        effect = {d: rng.normal() for d in doms}  # per-target effects: pairs share domains, as in a matrix
        nt = pd.DataFrame({"source": [p[0] for p in pairs], "target": [p[1] for p in pairs],
                           "gain": [effect[t] + 0.3 * rng.normal() for s, t in pairs]})
        out = distance_gain_correlation(nt, dist)
        hits += bool((out.p_adjusted <= 0.05).any())
        naive += bool((out.p_spearman <= 0.05).any())
    assert hits / 300 <= 0.07
    assert naive / 300 > hits / 300


def test_auroc_matches_sklearn_and_nan_for_one_class(tables):
    nt, dist = tables
    out = harm_auroc(nt, dist, columns=["mmd2"]).iloc[0]
    joined = nt.merge(dist, on=["source", "target"])
    assert out.auroc == pytest.approx(roc_auc_score(joined.flag == "negative", joined.mmd2))
    assert out.n_positive == (joined.flag == "negative").sum() > 0 and out.auroc > 0.9
    none_harmed = nt.assign(flag="inconclusive")
    assert math.isnan(harm_auroc(none_harmed, dist).auroc.iloc[0])


def test_predictor_errors(tables):
    nt, dist = tables
    with pytest.raises(TransferlabError, match="'gain'"):
        distance_gain_correlation(nt.drop(columns="gain"), dist)
    with pytest.raises(TransferlabError, match="no \\(source, target\\) pair"):
        distance_gain_correlation(nt.assign(source="zzz"), dist)
    with pytest.raises(TransferlabError, match="wasserstein"):
        harm_auroc(nt, dist, columns=["wasserstein"])
