"""Calibration: false-positive rates under the null and power under planted effects.

The MMD test runs on the synthetic ``shift`` family (ground truth by construction); negative_transfer on
simulated accuracy tables. Thresholds leave room for sampling noise: with 1000 null draws at α = 0.05 the
false-positive rate has a standard error of 0.7 points, so 7 % is ~3 standard errors above the nominal 5 %.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from adapt.domains.shift import make_shift_domain
from analysis import mmd_permutation_test, negative_transfer

SHAPE = dict(n_samples=1000, n_features=8, n_classes=2)



def _draw(name: str, draw: int, n: int = 50, **shift) -> np.ndarray:
    """``n`` random points of a shift domain.

    A shift domain has fixed class counts (stratified), so two whole domains are closer than two iid
    samples and the test would be conservative; a small random subsample of a large domain is ~iid.
    """
    domain = make_shift_domain(name, **shift, **SHAPE, sample_seed=draw)
    return domain.X[np.random.default_rng(draw).choice(len(domain.X), n, replace=False)]


def _p_values(other: str, draws: int, **shift) -> np.ndarray:
    return np.array([mmd_permutation_test(_draw("base", 2 * i), _draw(other, 2 * i + 1, **shift),
                                          n_permutations=200, seed=i, device="cpu")[1] for i in range(draws)])


def test_mmd_permutation_test_false_positive_rate_under_null():
    p = _p_values("null", draws=1000)
    assert np.mean(p <= 0.05) <= 0.07
    assert 0.45 <= p.mean() <= 0.55  # ~uniform p-values: neither liberal nor conservative


def test_mmd_permutation_test_power_under_covariate_shift():
    assert np.mean(_p_values("covariate", draws=100, covariate=0.3) <= 0.05) >= 0.9


def _simulated_matrix(n_null: int, n_planted: int, seeds: int, effect: float, rng) -> tuple[pd.DataFrame, set]:
    """Cells (source=cell id, target) whose method accuracy equals scratch in law, or is ``effect`` lower.

    Accuracies share a per-seed effect (same split and labelled subset for both arms) plus independent noise.
    """
    rows, planted = [], set()
    for cell in range(n_null + n_planted):
        target = f"t{cell}"
        shift = effect if cell >= n_null else 0.0
        if shift:
            planted.add(f"s{cell}")
        for seed in range(seeds):
            common = 0.75 + rng.normal(0, 0.03)
            rows.append(dict(source=f"s{cell}", target=target, method="finetune", seed=seed, budget=10,
                             accuracy=common - shift + rng.normal(0, 0.02), status="ok"))
            rows.append(dict(source=f"s{cell}", target=target, method="scratch", seed=seed, budget=10,
                             accuracy=common + rng.normal(0, 0.02), status="ok"))
    return pd.DataFrame(rows), planted


def test_negative_transfer_calibration():
    df, planted = _simulated_matrix(n_null=300, n_planted=60, seeds=5, effect=0.12, rng=np.random.default_rng(0))
    out = negative_transfer(df, alpha=0.05)
    is_planted = out.source.isin(planted)
    assert (out.flag[~is_planted] == "negative").mean() <= 0.05
    assert (out.flag[is_planted] == "negative").mean() >= 0.95
    assert not (out.flag == "positive").any() or (out.flag[~is_planted] == "positive").mean() <= 0.05


def test_negative_transfer_null_only_matrix():
    df, _ = _simulated_matrix(n_null=400, n_planted=0, seeds=5, effect=0.0, rng=np.random.default_rng(1))
    out = negative_transfer(df, alpha=0.05)
    assert (out.flag == "negative").mean() <= 0.05
    # Uncorrected p-values are uniform under the null: ~5 % below 0.05.
    assert 0.02 <= (out.p_value < 0.05).mean() <= 0.09
