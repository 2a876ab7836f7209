"""The statistical invariants behind a verdict: moderation, degenerate rows, margins, families, baselines.

Each test checks numbers against an independent computation (scipy) or a property that a broken
implementation would violate (p = 0 from zero variance, a silent chance baseline, budget 0 in the
budget > 0 family, unconverged arms flagged negative).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from analysis import budget_crossover, budget_zero, da_harm, negative_transfer, ok_rows, variance_prior
from analysis.stats import variance_trend_prior
from analysis import plots


def _matrix(n_cells=12, seeds=3, n_test=200, sd=0.02, seed=0, losses=None, budget=5):
    """Seed-paired rows: ``finetune`` vs ``scratch`` on ``n_cells`` targets; ``losses`` {cell: loss}."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_cells):
        for s in range(seeds):
            base = 0.7 + rng.normal(0, 0.02)
            k_ref = round((base + rng.normal(0, sd)) * n_test)
            k = round((base - (losses or {}).get(c, 0.0) + rng.normal(0, sd)) * n_test)
            for method, kk in (("finetune", k), ("scratch", k_ref)):
                rows.append(dict(source=f"s{c:02d}", target=f"t{c:02d}", method=method, seed=s, budget=budget,
                                 accuracy=kk / n_test, status="ok", n_test=n_test, n_classes=10))
    return pd.DataFrame(rows)


def _deterministic_row(df, cell="z", gain_examples=-10, n_test=200, seeds=3):
    """A cell whose arms are identical on every seed but ``gain_examples`` apart: zero variance."""
    rows = []
    for s in range(seeds):
        for method, k in (("finetune", 140 + gain_examples), ("scratch", 140)):
            rows.append(dict(source=f"s{cell}", target=f"t{cell}", method=method, seed=s, budget=5,
                             accuracy=k / n_test, status="ok", n_test=n_test, n_classes=10))
    return pd.concat([df, pd.DataFrame(rows)], ignore_index=True)


# ------------------------------------------------------------------------------------------ the prior
def test_variance_prior_recovers_a_known_prior():
    """ML fit against the truth on a large simulated family (and against scipy's own F likelihood)."""
    rng = np.random.default_rng(0)
    s0sq, d0, nu = 0.02 ** 2, 8.0, 2
    sigma2 = s0sq * d0 / rng.chisquare(d0, 4000)
    s2 = sigma2 * rng.chisquare(nu, 4000) / nu
    est_s0sq, est_d0 = variance_prior(s2, np.full(4000, nu))
    assert est_s0sq == pytest.approx(s0sq, rel=0.1) and est_d0 == pytest.approx(d0, rel=0.25)
    nll = lambda th: -(stats.f.logpdf(s2 / np.exp(th[0]), nu, np.exp(th[1])) - th[0]).sum()  # noqa: E731
    ref = optimize.minimize(nll, [np.log(np.median(s2)), np.log(10)], method="Nelder-Mead")
    assert est_s0sq == pytest.approx(np.exp(ref.x[0]), rel=1e-3) and est_d0 == pytest.approx(np.exp(ref.x[1]),
                                                                                               rel=1e-2)


def test_zero_variances_enter_the_prior_censored_not_as_log_zero():
    rng = np.random.default_rng(1)
    s2 = 0.02 ** 2 * rng.chisquare(2, 60) / 2
    s2[:10] = 0.0
    s0sq, d0 = variance_prior(s2, np.full(60, 2), resolution=np.full(60, 1 / 200))
    assert 0.01 < math.sqrt(s0sq) < 0.04 and d0 > 1  # not dragged to 0 by the ties
    assert variance_prior([0.1, 0.2], [2, 2]) == (pytest.approx(float("nan"), nan_ok=True), 0.0)


def test_moderated_t_matches_the_formula():
    """t, df, p and CI from the limma formula with the prior the table reports: per row s0² = prior_sd², d0."""
    df = _matrix(seed=2)
    out = negative_transfer(df, min_effect=0.0)
    d = (df[df.method == "finetune"].accuracy.to_numpy() - df[df.method == "scratch"].accuracy.to_numpy()).reshape(12, 3)
    s0sq, d0 = out.prior_sd.to_numpy() ** 2, out.prior_df.iloc[0]
    s2 = (d0 * s0sq + 2 * d.var(1, ddof=1)) / (d0 + 2)
    t = d.mean(1) / np.sqrt(s2 / 3)
    np.testing.assert_allclose(out.t, t, rtol=1e-9)
    np.testing.assert_allclose(out.df, d0 + 2)
    np.testing.assert_allclose(out.p_two_sided, 2 * stats.t.sf(np.abs(t), d0 + 2), rtol=1e-9)
    half = stats.t.ppf(0.975, d0 + 2) * np.sqrt(s2 / 3)
    np.testing.assert_allclose(out.ci_low, d.mean(1) - half, rtol=1e-9)
    assert (out.test == "moderated").all()
    # the prior is the trend fit on these rows (zero variances censored below one example)
    a = df[df.method == "finetune"].accuracy.to_numpy().reshape(12, 3)
    b = df[df.method == "scratch"].accuracy.to_numpy().reshape(12, 3)
    c = ((a * (1 - a) + b * (1 - b)) / 200).mean(1)
    tau2, kappa, d0_fit = variance_trend_prior(d.var(1, ddof=1), np.full(12, 2), c, resolution=np.full(12, 1 / 200))
    np.testing.assert_allclose(s0sq, tau2 + kappa * c, rtol=1e-9)
    assert d0 == pytest.approx(d0_fit)


def test_variance_trend_prior_recovers_a_known_trend_and_matches_scipys_likelihood():
    """Rows whose prior variance is tau² + kappa·c (c from test splits of 47 to 600): the ML fit finds
    (tau², kappa, d0), and it is the maximum of scipy's own F likelihood (Nelder–Mead, independent code)."""
    rng = np.random.default_rng(4)
    rows, nu = 3000, 4
    c = rng.uniform(0.4, 0.5, rows) / rng.choice([47, 89, 287, 337, 600], rows)
    tau2, kappa, d0 = 0.01 ** 2, 0.6, 12.0
    sigma2 = (tau2 + kappa * c) * d0 / rng.chisquare(d0, rows)
    s2 = sigma2 * rng.chisquare(nu, rows) / nu
    est = variance_trend_prior(s2, np.full(rows, nu), c)
    assert est[0] == pytest.approx(tau2, rel=0.3) and est[1] == pytest.approx(kappa, rel=0.1)
    assert est[2] == pytest.approx(d0, rel=0.3)

    def nll(th):
        s0 = np.exp(th[0]) + np.exp(th[1]) * c
        return -(stats.f.logpdf(s2 / s0, nu, np.exp(th[2])) - np.log(s0)).sum()

    ref = optimize.minimize(nll, np.log([1e-4, 0.5, 10.0]), method="Nelder-Mead",
                            options=dict(xatol=1e-8, fatol=1e-10, maxiter=4000))
    np.testing.assert_allclose(est, np.exp(ref.x), rtol=2e-3)
    # without a usable covariate the trend fit is the constant prior
    const = variance_trend_prior(s2, np.full(rows, nu), None)
    assert const[1] == 0.0 and (const[0], const[2]) == pytest.approx(variance_prior(s2, np.full(rows, nu)))


# ------------------------------------------------------------------------------------------ degenerate rows
def test_zero_variance_row_never_gets_p_zero():
    df = _deterministic_row(_matrix(seed=3), gain_examples=-3)  # 1.5 points lower on every seed
    out = negative_transfer(df).set_index("source")
    row = out.loc["sz"]
    assert row["std"] == 0 and 0 < row.p_value < 1 and np.isfinite(row.ci_low) and row.ci_low < row.ci_high
    assert "zero variance" in row.note
    plain = negative_transfer(df, test="t").set_index("source").loc["sz"]
    assert math.isnan(plain.p_value) and plain.flag == "inconclusive" and "no t-test" in plain.note


def _outcomes_for(df, right: dict) -> pd.DataFrame:
    """Outcomes where (method, seed) gets the test examples in ``right[method, seed]`` right (of 200)."""
    rows = []
    for (source, target, method, seed, budget), _ in df.groupby(["source", "target", "method", "seed", "budget"]):
        correct = right.get((method, seed))
        if correct is None:
            continue
        label = np.zeros(200, dtype=np.int64)
        pred = np.where(np.isin(np.arange(200), correct), 0, 1)
        rows.append(dict(source=source, target=target, method=method, seed=seed, budget=budget, n_test=200,
                         given_test=False, test_index=np.arange(200) + 1000, pred=pred, label=label))
    return pd.DataFrame(rows)


def test_degenerate_row_uses_an_exact_mcnemar_test_on_outcomes():
    df = _deterministic_row(_matrix(seed=4), gain_examples=-3)
    sz = df[df.source == "sz"]
    # Each seed: scratch right on 0..139; finetune right on 3..139 plus nothing else → 3 discordant per seed.
    right = {("scratch", s): np.arange(140) for s in range(3)} | {("finetune", s): np.arange(3, 140)
                                                                  for s in range(3)}
    plain = negative_transfer(df, test="t", outcomes=_outcomes_for(sz, right)).set_index("source").loc["sz"]
    assert plain.p_exact == pytest.approx(stats.binomtest(0, 9, 0.5, alternative="less").pvalue)
    assert plain.p_value == pytest.approx(plain.p_exact) and "b=0, c=9" in plain.note
    moderated = negative_transfer(df, outcomes=_outcomes_for(sz, right)).set_index("source").loc["sz"]
    assert moderated.p_value >= plain.p_exact  # the larger of the two


# ------------------------------------------------------------------------------------------ margin, power
def test_one_example_losses_are_not_negative_transfer():
    df = _matrix(n_cells=20, seed=5, sd=0.002)  # quiet cells: a tiny constant loss would be "significant"
    df.loc[df.method == "finetune", "accuracy"] -= 1 / 200
    out = negative_transfer(df, min_effect="one-example")
    assert not (out.flag == "negative").any()
    np.testing.assert_allclose(out.min_effect, 1 / 200)
    np.testing.assert_allclose(negative_transfer(df).min_effect, 0.01)  # practical: max(1 pt, 2 examples)
    assert (negative_transfer(df, min_effect=0.0).flag == "negative").sum() >= 10  # without the margin


def test_no_harm_only_claimed_by_the_equivalence_test():
    df = _matrix(n_cells=12, seed=6, losses={0: 0.15})
    df.loc[(df.method == "finetune") & (df.source == "s01"), "accuracy"] += 0.10
    out = negative_transfer(df).set_index("source")
    assert out.loc["s00", "flag"] == "negative" and not out.loc["s00", "no_harm"]
    assert out.loc["s01", "no_harm"]
    p = 1 - stats.t.cdf((out.loc["s01", "gain"] + out.loc["s01", "min_effect"])
                        / (out.loc["s01", "s_moderated"] / math.sqrt(3)), out.loc["s01", "df"])
    assert p < 0.05


def test_minimum_detectable_effect_and_seeds_needed():
    out = negative_transfer(_matrix(seed=7, losses={0: 0.03})).set_index("source")
    for row in out.itertuples():
        se = row.s_moderated / math.sqrt(row.n_seeds)
        assert row.mde == pytest.approx(row.min_effect + (stats.t.ppf(0.95, row.df) + stats.t.ppf(0.8, row.df)) * se)
    inconclusive = out[(out.flag == "inconclusive") & (out.gain.abs() > out.min_effect)]
    assert len(inconclusive) and np.isfinite(inconclusive.seeds_needed).any()
    for row in inconclusive[np.isfinite(inconclusive.seeds_needed)].itertuples():
        n = int(row.seeds_needed)
        power_at = lambda k: ((stats.t.ppf(0.95, row.prior_df + k - 1) + stats.t.ppf(0.8, row.prior_df + k - 1))  # noqa: E731
                              * row.s_moderated / math.sqrt(k))
        assert abs(row.gain) - row.min_effect >= power_at(n) and abs(row.gain) - row.min_effect < power_at(n - 1)


# ------------------------------------------------------------------------------------------ families, baselines
def test_budget_zero_is_its_own_family_with_exact_tests():
    df = _matrix(seed=8, losses={0: 0.05, 1: 0.05})
    zero = df[df.method == "finetune"].assign(budget=0, accuracy=lambda d: np.where(d.source == "s02", 0.0, 0.12))
    both = pd.concat([df, zero], ignore_index=True)
    nt = negative_transfer(both)
    assert (nt.budget > 0).all()
    pd.testing.assert_frame_equal(nt, negative_transfer(df))  # budget-0 rows change nothing in the family
    bz = budget_zero(both).set_index("source")
    row = bz.loc["s00"]
    k, n = round(0.12 * 200) * 3, 600
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert (row.correct, row.n) == (k, n) and (row.ci_low, row.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert row.p_above == pytest.approx(stats.binomtest(k, n, 0.1, alternative="greater").pvalue)
    assert row.p_below == pytest.approx(stats.binomtest(k, n, 0.1, alternative="less").pvalue)
    assert bz.loc["s02", "flag"] == "below-chance"  # 0 of 600 with 10 classes


def test_no_baseline_is_flagged_never_compared_with_chance():
    df = _matrix(seed=9)
    orphan = df[(df.source == "s00") & (df.method == "finetune")].assign(target="lonely", accuracy=0.95)
    out = negative_transfer(pd.concat([df, orphan], ignore_index=True))
    row = out[out.target == "lonely"].iloc[0]
    assert row.flag == "untested" and row.untested == "no-baseline" and row.reason.startswith("no baseline")
    assert math.isnan(row.p_value) and math.isnan(row.q_value) and row.n_seeds == 0
    pd.testing.assert_frame_equal(out[out.target != "lonely"].reset_index(drop=True), negative_transfer(df))


def test_unconverged_rows_are_flagged_apart_with_the_reason():
    df = _matrix(seed=10, losses={0: 0.2, 1: 0.2})
    df["converged"] = True
    df["convergence_reason"] = None
    bad = (df.source == "s00") & (df.method == "scratch") & (df.seed == 1)
    df.loc[bad, "converged"] = False
    df.loc[bad, "convergence_reason"] = "loss still falling 12%/last quarter"
    out = negative_transfer(df).set_index("source")
    assert out.loc["s00", "flag"] == "untested" and math.isnan(out.loc["s00", "q_value"])
    assert out.loc["s00", "untested"] == "unconverged"
    assert out.loc["s00", "convergence_reason"] == "scratch: 1 of 3 seeds, e.g. seed 1: loss still falling 12%/last quarter"
    assert out.loc["s00", "reason"] == "unconverged: " + out.loc["s00", "convergence_reason"]
    assert out.loc["s01", "flag"] == "negative"
    no_column = negative_transfer(df.drop(columns=["converged", "convergence_reason"]))
    assert no_column.set_index("source").loc["s00", "flag"] == "negative"  # old records: converged


def test_target_only_baseline():
    df = _matrix(seed=11, losses={0: 0.2})
    target_only = df[df.method == "scratch"].assign(method="target-only",
                                                     accuracy=lambda d: d.accuracy - 0.3)
    both = pd.concat([df, target_only], ignore_index=True)
    vs_scratch = negative_transfer(both)
    vs_target_only = negative_transfer(both, baseline="target-only")
    assert set(vs_scratch.method) == set(vs_target_only.method) == {"finetune"}
    assert (vs_target_only.baseline == "target-only").all() and (vs_scratch.baseline == "scratch").all()
    np.testing.assert_allclose(vs_target_only.gain, vs_scratch.gain + 0.3)


def test_da_harm_budget_zero_and_positive_budgets_are_separate_families():
    df = _matrix(seed=12)
    dann = df[df.method == "finetune"].assign(method="dann", accuracy=lambda d: d.accuracy - 0.05)
    both = pd.concat([df, dann], ignore_index=True)
    rng = np.random.default_rng(0)
    zero = both[both.method != "scratch"].assign(budget=0)  # at budget 0, dann ~ finetune: null rows
    zero.loc[zero.method == "dann", "accuracy"] = (zero.loc[zero.method == "finetune", "accuracy"].to_numpy()
                                                   + rng.normal(0, 0.03, 36))
    one = da_harm(both)
    two = da_harm(pd.concat([both, zero], ignore_index=True))
    pd.testing.assert_frame_equal(two[two.budget > 0].reset_index(drop=True), one)
    assert (two[two.budget == 0].flag != "harm").sum() >= 1


def test_ok_rows_is_one_rule_for_statistics_plots_and_report():
    from analysis import report

    frame = pd.DataFrame({"status": ["ok", " OK", "failed", None, "ok"], "accuracy": [0.5, 0.6, 0.7, 0.8, np.nan]})
    assert list(ok_rows(frame).index) == [0, 1]
    assert plots.ok_rows is ok_rows and report.ok_rows is ok_rows


def test_budget_crossover_bootstrap_and_one_budget():
    rows = []
    for budget, gain in ((3, 0.05), (10, -0.15), (20, -0.2)):
        for seed, noise in enumerate([0.0, 0.01, -0.01, 0.005, -0.004]):
            rows += [dict(source="a", target="b", method="ft", seed=seed, budget=budget, accuracy=0.6 + gain + noise,
                          status="ok"),
                     dict(source="a", target="b", method="ft2", seed=seed, budget=budget, accuracy=0.6 + noise,
                          status="ok"),
                     dict(source="a", target="b", method="scratch", seed=seed, budget=budget,
                          accuracy=0.6 + noise * 0.5, status="ok")]
    df = pd.DataFrame(rows)
    out = budget_crossover(df).set_index("method")
    assert out.loc["ft", "crossover_budget"] == 10 and out.loc["ft", "support"] == 1.0
    assert out.loc["ft", "ci_low"] == 10 and out.loc["ft", "ci_high"] == 10
    assert out.loc["ft2", "support"] < 1  # a null row: the bootstrap does not promise a crossover
    assert budget_crossover(df[df.budget == 3]).empty  # one budget: nothing reported
