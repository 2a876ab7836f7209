"""Calibration: false-positive rates under the null and power under planted effects.

The MMD test runs on the synthetic ``shift`` family (ground truth by construction); ``negative_transfer`` on
simulated transfer matrices (below). Thresholds leave room for sampling noise: with 1000 null draws at α = 0.05
the false-positive rate has a standard error of 0.7 points, so 7 % is ~3 standard errors above the nominal 5 %.

Simulated matrices (``_matrix``): 50 cells, each its own target with a test split of 90, 150, 300 or 600
examples (one example = 1.1 to 0.17 points; accuracies are whole counts, so ties happen); a base accuracy in
[0.5, 0.9]; per seed a split effect shared by both arms (2 points) and independent per-arm noise of 1.7 points
times a log-normal cell factor (spread 0.25); 10 % of null cells have identical counts in both arms on every
seed and 5 % are exactly one example worse on every seed (zero-variance rows). The former test (plain
two-sided paired t, one BH family) on this noise finds what issue #11 measured on the project's matrices (3
seeds: −5 points flagged 1.5 %, −10 points 14 %; 5 seeds: 29 %, 96 %; the issue: 1.3 %, 8.4 %, 20 %, 97 %), so
the noise is about as large as real.

Measured with the default test (moderated t with the test-sampling trend of the variance prior, one-sided per
direction, the default margin max(1 point, 2 test examples); 2000 null tables, 1000 planted tables, seeded;
``python tests/analysis/test_calibration.py`` prints these figures):

============================================  =========  =======
                                              moderated  plain t
============================================  =========  =======
P(≥ 1 false ``negative``), null, 2 seeds          2.4 %    0.0 %
P(≥ 1 false ``negative``), null, 3 seeds          1.1 %    0.6 %
P(≥ 1 false ``negative``), null, 5 seeds          0.3 %    0.4 %
−5 points in 10 of 50 cells, 3 seeds: found      39.3 %    1.9 %
−10 points in 10 of 50 cells, 3 seeds: found     98.6 %   32.4 %
============================================  =========  =======

Monte-Carlo standard errors: ≤ 0.35 points on the null rates, ≤ 1.6 on the found rates. (An earlier version
of this table said the plain t flags 21.7 % of null tables at 2 seeds; re-measured it was 0.0 %: with one df a
row's t needs |t| > 6.3.) With ``min_effect="one-example"`` (the old margin: 0.17 points on a 600-example
split; ``python tests/analysis/test_calibration.py one-example``) the moderated figures are 6.5 / 3.5 / 2.6 %
and 65.2 % / 99.3 %: at 2 seeds that margin is not
calibrated — use the default. A fixed 3 seeds finds a −5-point loss 39 % of the time; the adaptive seeds
(3 → 10) are what find ≥ 90 % (``test_adaptive_calibration.py``). The tests below re-measure with fewer draws
and assert ≤ 5 % false-flag tables at 2, 3 and 5 seeds (400 tables: a standard error of ≤ 0.8 points at the
measured rates), ≥ 30 % and ≥ 95 % found (200 tables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from adapt.domains.shift import make_shift_domain
from analysis import mmd_permutation_test, negative_transfer
from analysis.negative import decide
from analysis.simulate import practical_margin

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


N_CELLS = 50
MARGIN = "practical"  # the default; ``python tests/analysis/test_calibration.py one-example`` for the old one
TEST_SIZES = (90, 150, 300, 600)


def _matrix(rng, seeds: int, planted: int = 0, effect: float = 0.0):
    """Accuracies ``(cells, seeds)`` of a method and its baseline, and each cell's test-set size.

    The first ``planted`` cells lose ``effect`` (a fraction) in expectation; the rest are null (see the module
    docstring for the noise).
    """
    n_test = rng.choice(TEST_SIZES, N_CELLS)
    base_acc = rng.uniform(0.5, 0.9, N_CELLS)[:, None]
    sigma = (0.017 * np.exp(rng.normal(0, 0.25, N_CELLS)))[:, None]
    kind = rng.random(N_CELLS)
    shift = np.where(np.arange(N_CELLS) < planted, effect, 0.0)[:, None]
    split = rng.normal(0, 0.02, (N_CELLS, seeds))
    base = np.clip(base_acc + split + sigma * rng.normal(size=(N_CELLS, seeds)), 0, 1)
    method = np.clip(base_acc + split - shift + sigma * rng.normal(size=(N_CELLS, seeds)), 0, 1)
    k_base, k_method = np.round(base * n_test[:, None]), np.round(method * n_test[:, None])
    null = np.arange(N_CELLS) >= planted
    k_method = np.where((null & (kind < 0.10))[:, None], k_base, k_method)  # identical arms
    k_method = np.where((null & (kind >= 0.10) & (kind < 0.15))[:, None], k_base - 1, k_method)  # one example
    return k_method / n_test[:, None], k_base / n_test[:, None], n_test


def _negative_flags(rng, seeds, planted=0, effect=0.0, test="moderated") -> np.ndarray:
    """``negative`` flags of one simulated matrix, computed as ``negative_transfer`` does (same function)."""
    method, base, n_test = _matrix(rng, seeds, planted, effect)
    margin = 1.0 / n_test if MARGIN == "one-example" else practical_margin(n_test)
    r = decide(method - base, margin, test=test, resolution=1.0 / n_test,
               test_variance=_test_variance(method, base, n_test))
    return r["negative"]


def _test_variance(method, base, n_test):
    """Per seed, the binomial test-sampling variance of the paired difference (what negative_transfer passes)."""
    return (method * (1 - method) + base * (1 - base)) / n_test[:, None]


def _false_flag_rate(seeds, draws, seed, test="moderated") -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([_negative_flags(rng, seeds, test=test).any() for _ in range(draws)]))


def _found(effect, draws, seed, seeds=3, test="moderated") -> float:
    rng = np.random.default_rng(seed)
    return float(np.mean([_negative_flags(rng, seeds, 10, effect, test=test)[:10].mean() for _ in range(draws)]))


def _as_frame(method, base, n_test) -> pd.DataFrame:
    rows = []
    for cell in range(len(n_test)):
        for seed in range(method.shape[1]):
            for name, acc in (("finetune", method[cell, seed]), ("scratch", base[cell, seed])):
                rows.append(dict(source=f"s{cell:02d}", target=f"t{cell:02d}", method=name, seed=seed, budget=5,
                                 accuracy=acc, status="ok", n_test=int(n_test[cell])))
    return pd.DataFrame(rows)


def test_simulation_uses_what_negative_transfer_computes():
    """The simulation's flags are ``negative_transfer``'s flags on the same matrix (through the DataFrame)."""
    rng = np.random.default_rng(3)
    for planted in (0, 10):
        method, base, n_test = _matrix(rng, 3, planted, 0.08)
        out = negative_transfer(_as_frame(method, base, n_test))
        r = decide(method - base, practical_margin(n_test), resolution=1.0 / n_test,
                   test_variance=_test_variance(method, base, n_test))
        np.testing.assert_array_equal(out.flag == "negative", r["negative"])
        np.testing.assert_allclose(out.p_value, r["p"], rtol=1e-4)  # up to the optimiser's tolerance
    assert (out.flag[:10] == "negative").sum() >= 5


def test_null_tables_3_seeds_at_most_5_percent_have_a_false_negative_flag():
    """Measured 1.1 % over 2000 tables (plain t: 0.6 %); this test: 400 tables."""
    assert _false_flag_rate(3, 400, seed=10) <= 0.05


def test_null_tables_5_seeds_at_most_5_percent_have_a_false_negative_flag():
    """Measured 0.3 % over 2000 tables (plain t: 0.4 %); this test: 400 tables."""
    assert _false_flag_rate(5, 400, seed=11) <= 0.05


def test_null_tables_2_seeds_at_most_5_percent_have_a_false_negative_flag():
    """2 seeds (issue 20: fixed 2, 3 and 5 seeds all ≤ 5 %): measured 2.4 % over 2000 tables (plain t: 0.0 %)."""
    assert _false_flag_rate(2, 400, seed=12) <= 0.05


def test_planted_5_point_losses_3_seeds_found_at_least_30_percent():
    """Measured 39.3 % found over 1000 tables at a fixed 3 seeds (the plain t: 1.9 %); this test: 200 tables.
    (The adaptive seeds find ≥ 90 %: test_adaptive_calibration.py.)"""
    assert _found(0.05, 200, seed=13) >= 0.30


def test_planted_10_point_losses_3_seeds_found_at_least_95_percent():
    """Measured 98.6 % found over 1000 tables (the plain t: 32.4 %); this test: 200 tables."""
    assert _found(0.10, 200, seed=14) >= 0.95


def test_plain_t_is_kept_and_underpowered_with_3_seeds():
    """The plain paired t is still there (``test="t"``) and finds almost nothing at 3 seeds, as issue #11 says."""
    assert _found(0.05, 100, seed=15, test="t") < 0.10


if __name__ == "__main__":  # the table of the module docstring
    import sys

    MARGIN = sys.argv[1] if len(sys.argv) > 1 else MARGIN
    for seeds in (2, 3, 5):
        print(f"null, {seeds} seeds:", *(f"{t}={_false_flag_rate(seeds, 2000, 100 + seeds, t):.3f}"
                                         for t in ("moderated", "t")))
    for effect in (0.05, 0.10):
        print(f"planted {effect:.2f}, 3 seeds:", *(f"{t}={_found(effect, 1000, 200, test=t):.3f}"
                                                   for t in ("moderated", "t")))
