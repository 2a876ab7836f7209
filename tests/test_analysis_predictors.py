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
        assert out.loc[col, "p_value"] == pytest.approx(ref.pvalue)
        assert out.loc[col, "n"] == len(joined)
    assert out.loc["mmd2", "rho"] < -0.8


def test_spearman_by_group_and_mapping_input(tables):
    nt, dist = tables
    mapping = {(r.source, r.target): {"mmd2": r.mmd2} for r in dist.itertuples()}
    out = distance_gain_correlation(nt, mapping, by=["method"])
    assert list(out.method) == ["dann", "finetune"] and (out.n == 12).all()
    sub = nt[nt.method == "dann"].merge(dist, on=["source", "target"])
    assert out.rho.iloc[0] == pytest.approx(spearmanr(sub.mmd2, sub.gain).statistic)


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
