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

Measured with the default test (moderated t, one-sided per direction, min_effect one example; 2000 null
tables, 1000 planted tables, seeded):

============================================  =========  =======
                                              moderated  plain t
============================================  =========  =======
P(≥ 1 false ``negative``), null, 2 seeds          4.0 %   21.7 %
P(≥ 1 false ``negative``), null, 3 seeds          2.6 %    3.5 %
P(≥ 1 false ``negative``), null, 5 seeds          2.3 %    1.8 %
−5 points in 10 of 50 cells, 3 seeds: found      65.4 %    3.8 %
−10 points in 10 of 50 cells, 3 seeds: found     99.2 %   41.5 %
============================================  =========  =======

(``python tests/analysis/test_calibration.py`` prints this table; the tests below re-measure with fewer
draws and assert the issue's bounds: ≤ 5 % false-flag tables, ≥ 60 % and ≥ 95 % found.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from adapt.domains.shift import make_shift_domain
from analysis import mmd_permutation_test, negative_transfer
from analysis.negative import decide

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
    r = decide(method - base, 1.0 / n_test, test=test, resolution=1.0 / n_test)
    return r["negative"]


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
        out = negative_transfer(_as_frame(method, base, n_test), min_effect="one-example")
        r = decide(method - base, 1.0 / n_test, resolution=1.0 / n_test)
        np.testing.assert_array_equal(out.flag == "negative", r["negative"])
        np.testing.assert_allclose(out.p_value, r["p"], rtol=1e-4)  # up to the optimiser's tolerance
    assert (out.flag[:10] == "negative").sum() >= 5


def test_null_tables_3_seeds_at_most_5_percent_have_a_false_negative_flag():
    """Measured 2.6 % over 2000 tables (plain t: 3.5 %); this test: 400 tables."""
    assert _false_flag_rate(3, 400, seed=10) <= 0.05


def test_null_tables_5_seeds_at_most_5_percent_have_a_false_negative_flag():
    """Measured 2.3 % over 2000 tables (plain t: 1.8 %); this test: 400 tables."""
    assert _false_flag_rate(5, 400, seed=11) <= 0.05


def test_null_tables_2_seeds_stay_near_5_percent():
    """2 seeds (not required by the issue): measured 4.0 % over 2000 tables (the plain t: 21.7 %)."""
    assert _false_flag_rate(2, 400, seed=12) <= 0.07


def test_planted_5_point_losses_3_seeds_found_at_least_60_percent():
    """Measured 65.4 % found over 1000 tables (the plain t: 3.8 %); this test: 200 tables."""
    assert _found(0.05, 200, seed=13) >= 0.60


def test_planted_10_point_losses_3_seeds_found_at_least_95_percent():
    """Measured 99.2 % found over 1000 tables (the plain t: 41.5 %); this test: 200 tables."""
    assert _found(0.10, 200, seed=14) >= 0.95


def test_plain_t_is_kept_and_underpowered_with_3_seeds():
    """The plain paired t is still there (``test="t"``) and finds almost nothing at 3 seeds, as issue #11 says."""
    assert _found(0.05, 100, seed=15, test="t") < 0.10


if __name__ == "__main__":  # the table of the module docstring
    for seeds in (2, 3, 5):
        print(f"null, {seeds} seeds:", *(f"{t}={_false_flag_rate(seeds, 2000, 100 + seeds, t):.3f}"
                                         for t in ("moderated", "t")))
    for effect in (0.05, 0.10):
        print(f"planted {effect:.2f}, 3 seeds:", *(f"{t}={_found(effect, 1000, 200, test=t):.3f}"
                                                   for t in ("moderated", "t")))
