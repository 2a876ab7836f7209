r"""Negative transfer and DA harm over a transfer matrix: seed-paired, moderated, calibrated statistics.

**What is tested.** Wang, Dai, Póczos & Carbonell ("Characterizing and Avoiding Negative Transfer", CVPR
2019) define negative transfer as the source making the target error larger than learning without it:
:math:`\mathrm{NTG} = \epsilon_\tau(A(S, \tau)) - \epsilon_\tau(A(\emptyset, \tau))`. We report the *gain*
:math:`= -\mathrm{NTG}` in accuracy, ``accuracy(method) − accuracy(baseline)``, seed-paired at the same
label budget. Two baselines answer two questions: ``scratch`` (random init, target labels only): "does transfer
beat training from nothing?"; ``target-only`` (the transfer methods' initial weights, target labels only):
"does the *source domain* help?" — Wang et al.'s gap proper. Every table says which one it used.

**Model** (per family of rows, e.g. all budget > 0 rows of one call). Row :math:`g` (a ``(source, target,
method, budget)`` cell) has :math:`n_g` seeds with paired differences :math:`d_{gs}`; we assume
:math:`d_{gs} \sim N(\mu_g, \sigma_g^2)` independent over seeds, and, to share information across the
matrix, the hierarchical prior :math:`1/\sigma_g^2 \sim \chi^2_{d_0} / (d_0 s_0^2)` (Smyth 2004, "Linear
models and empirical Bayes methods for assessing differential expression in microarray experiments", Stat.
Appl. Genet. Mol. Biol. 3:3 — limma's moderated t). With :math:`\bar d_g`, the sample variance
:math:`s_g^2` on :math:`\nu_g = n_g - 1` degrees of freedom,

.. math::

    \tilde s_g^2 = \frac{d_0 s_0^2 + \nu_g s_g^2}{d_0 + \nu_g}, \qquad
    \tilde t_g = \frac{\bar d_g}{\tilde s_g / \sqrt{n_g}} \sim t_{d_0 + \nu_g} \text{ under } \mu_g = 0 .

:math:`(s_0^2, d_0)` are fitted by maximum likelihood of the scaled F law of the sample variances,
:math:`s_g^2/s_0^2 \sim F(\nu_g, d_0)` (:func:`variance_prior`); a zero sample variance — whole-count
accuracies tied on every seed — enters *censored* below the counts' resolution instead of as
:math:`\log 0`. (Smyth's method of moments on :math:`\log s_g^2` is dragged to :math:`d_0 \to 0` by the
near-zero variances that ties produce: on simulated 2-seed matrices it flagged zero-variance rows with
:math:`p \approx 0` again.) Large :math:`d_0` means the rows' variances are as alike as sampling alone
explains and every row borrows the pooled variance; small :math:`d_0` leaves each row near its own
variance. Fewer than ``MIN_PRIOR_ROWS`` rows with a positive variance: no moderation (the plain t). A
single seed (:math:`\nu_g = 0`) gets :math:`\tilde s_g = s_0` on :math:`d_0` df. Assumptions: normal
differences, independent seeds, one variance prior per family (heterogeneous noise levels are absorbed by
a smaller :math:`d_0`). The plain paired t (``test="t"``; ``scipy.stats.ttest_rel``) stays available.

**Minimum effect and direction.** A loss smaller than ``min_effect`` :math:`m` (default: one test
example, :math:`1/n_\text{test}`, stated in points per row) is not called negative transfer: with
whole-count accuracies one example is the resolution of the measurement. "Negative transfer" and
"positive transfer" are two questions, each tested one-sided against the margin,

.. math:: p^- = F_t\big((\bar d_g + m)/\widetilde{se}\big) \;(H_0: \mu_g \ge -m), \qquad
          p^+ = 1 - F_t\big((\bar d_g - m)/\widetilde{se}\big) \;(H_0: \mu_g \le m),

each with its own Benjamini–Hochberg family (the false-discovery rate among ``negative`` flags is at most
:math:`\alpha`, and so is the rate among ``positive`` flags). ``p_value``/``q_value`` are those of the
observed direction; ``p_two_sided`` :math:`= \min(1, 2\min(p^-, p^+))` (the usual two-sided p at
:math:`m = 0`). *No harm* is claimed only by the lower half of Schuirmann's TOST: ``no_harm`` when the
BH-adjusted :math:`1 - p^-` is below :math:`\alpha` (the gain is significantly above :math:`-m`).

**Degenerate rows** — zero variance across seeds or a single seed — never get :math:`p = 0`: under
moderation :math:`\tilde s_g > 0`. When per-example outcomes are given (``outcomes=``,
:func:`analysis.load_outcomes`) such a row must also pass an exact McNemar-type test on the test examples
pooled over its seeds: of the examples the arms disagree on, :math:`b` favour the method and :math:`c`
the baseline; with no difference :math:`b \sim \mathrm{Bin}(b + c, 1/2)` (one-sided exact binomial
tests); the row's one-sided p is the larger of the two. With the plain t a degenerate row has no t-test:
its p is the exact test's, or NaN with a ``note``.

**What the data can show.** Per row ``mde``: the smallest loss detected with 80 % power at the row's
(moderated) standard error and df, at the per-test level :math:`\alpha` (before FDR control),
:math:`m + (t_{1-\alpha} + t_{0.8})\,\widetilde{se}`; for inconclusive rows ``seeds_needed``: the seed
count at which the observed effect would reach that power (NaN when it is within the margin).

**Calibration and power, measured** (``tests/analysis/test_calibration.py``: simulated matrices of 50
cells, per-arm seed noise 1.7 points (log-normal spread 0.25 across cells), test sets of 90–600 examples
so accuracies are whole counts, 10 % of cells with identical arms on every seed and 5 % one example apart
on every seed): the figures are in that file's docstring.

**Families and flags.** The family: the budget > 0 rows with their baseline on the same seeds and both
arms converged. Budget 0 is not in it: at budget 0 no target-only baseline can train, so those rows go to
:func:`budget_zero` (exact tests on pooled test counts, its own table and BH family). Outside the family:
``no-baseline`` (no baseline run on any of the row's seeds — never compared with chance or anything else
silently) and ``unconverged`` (a seed of either arm did not converge, per the records' ``converged``;
``convergence_reason`` says which and why; never ``negative`` or ``positive``).

**Which rows count** (one rule, :func:`ok_rows`, shared with :mod:`analysis.plots` and
:mod:`analysis.report`): ``status == "ok"`` (any case; every row when the table has no ``status``) and a
finite accuracy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError

REQUIRED_COLUMNS = ("source", "target", "method", "seed", "budget", "accuracy", "status")
CELL_KEYS = ["source", "target", "method", "budget"]
BASELINES = ("scratch", "target-only")
TESTS = ("moderated", "t")
MIN_PRIOR_ROWS = 3
POWER = 0.8
MAX_SEEDS = 1000
ZERO_VARIANCE = 1e-12  # accuracy² (a standard deviation of 1e-4 points): equal up to float rounding
OK_STATUS = "ok"


# --------------------------------------------------------------------------------------------- which rows
def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows every statistic, plot and report table uses: finished cells with a finite accuracy.

    ``status == "ok"`` (case and surrounding blanks ignored; every row when the table has no ``status``
    column) and ``accuracy`` numeric and finite. Failed or diverged cells never count.
    """
    out = df
    if "status" in out.columns:
        out = out[out["status"].astype(str).str.strip().str.lower() == OK_STATUS]
    if "accuracy" in out.columns:
        out = out.assign(accuracy=pd.to_numeric(out["accuracy"], errors="coerce"))
        out = out[np.isfinite(out["accuracy"])]
    return out


# --------------------------------------------------------------------------------------------- statistics
def paired_stats(diffs: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Plain (unmoderated) paired t statistics of one row's seed differences.

    ``n_seeds, gain, std, t, df, ci_low, ci_high, p_value`` from ``scipy.stats.ttest_1samp(d, 0)`` and its
    ``confidence_interval``. One seed or zero variance: no t-test (``p_value``, ``t`` and the CI are NaN) —
    a zero-variance row says nothing about the seed-to-seed noise, so a t-test would give ``p = 0``.
    """
    from scipy import stats

    d = np.asarray(diffs, dtype=np.float64)
    n = len(d)
    nan = float("nan")
    out = {"n_seeds": n, "gain": float(d.mean()) if n else nan, "std": nan, "t": nan, "df": nan,
           "ci_low": nan, "ci_high": nan, "p_value": nan}
    if n < 2:
        return out
    std = float(d.std(ddof=1))
    out.update(std=std, df=n - 1)
    if std <= 1e-12 * max(1.0, abs(out["gain"])):
        out["std"] = 0.0
        return out
    res = stats.ttest_1samp(d, 0.0)
    ci = res.confidence_interval(confidence)
    out.update(t=float(res.statistic), p_value=float(res.pvalue), ci_low=float(ci.low),
               ci_high=float(ci.high))
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    r"""Benjamini–Hochberg adjusted p-values (q-values), the step-up FDR procedure (BH 1995).

    .. math:: q_{(i)} = \min_{j \ge i} \min\Big(1, \frac{m}{j}\, p_{(j)}\Big)

    over the ``m`` finite p-values (``scipy.stats.false_discovery_control(p, method="bh")``); ``NaN``
    entries stay ``NaN`` and do not count in ``m``.
    """
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return q


def variance_prior(variances, dfs, resolution=None) -> tuple[float, float]:
    r"""Maximum-likelihood fit of the scaled inverse-:math:`\chi^2` variance prior ``(s0², d0)``.

    Under Smyth's (2004) model the sample variances follow a scaled F distribution,
    :math:`s_g^2 / s_0^2 \sim F(\nu_g, d_0)`; its log-likelihood is maximised over :math:`(\log s_0^2,
    \log d_0)` (L-BFGS-B, :math:`d_0 \in [0.2, 10^4]`; the upper end is the no-spread limit, every row
    at :math:`s_0^2`). A zero sample variance of whole-count accuracies only says the variance is below
    what the counts can resolve, so it enters *censored*: :math:`P(F < r_g^2 / (n_g s_0^2))` with
    ``resolution`` :math:`r_g` (one test example, :math:`1/n_\text{test}`; :math:`r^2/n` is the smallest
    non-zero variance of :math:`n` differences on that grid). Smyth's own method-of-moments estimate works
    on :math:`\log s_g^2` and is pulled to :math:`d_0 \to 0, s_0 \to 0` by the near-zero variances ties
    produce (seen on simulated 3-seed matrices); the likelihood is not. Zero variances without a resolution
    are left out. Returns ``(nan, 0.0)`` (no moderation) with fewer than ``MIN_PRIOR_ROWS`` positive
    variances.
    """
    from scipy import optimize
    from scipy.special import betainc, betaln

    s2 = np.asarray(variances, dtype=np.float64)
    nu = np.asarray(dfs, dtype=np.float64)
    res = (np.full(s2.shape, np.nan) if resolution is None
           else np.broadcast_to(np.asarray(resolution, dtype=np.float64), s2.shape))
    valid = np.isfinite(nu) & (nu > 0) & np.isfinite(s2)
    obs = valid & (s2 > 0)
    cens = valid & (s2 == 0) & np.isfinite(res) & (res > 0)
    if obs.sum() < MIN_PRIOR_ROWS:
        return float("nan"), 0.0
    x, a = s2[obs], nu[obs]
    limit, a_c = (res[cens] ** 2) / (nu[cens] + 1), nu[cens]

    def nll(theta):
        log_s0sq, log_d0 = theta
        b = math.exp(log_d0)
        z = x / math.exp(log_s0sq)  # ~ F(a, b): log density written out (scipy.stats.f.logpdf, faster)
        ll = (0.5 * a * np.log(a) + 0.5 * b * math.log(b) + (0.5 * a - 1) * np.log(z)
              - 0.5 * (a + b) * np.log(b + a * z) - betaln(0.5 * a, 0.5 * b)).sum() - len(x) * log_s0sq
        if len(a_c):
            zc = limit / math.exp(log_s0sq)
            ll += np.log(np.maximum(betainc(0.5 * a_c, 0.5 * b, a_c * zc / (a_c * zc + b)), 1e-300)).sum()
        return -ll if np.isfinite(ll) else 1e300

    start = np.array([math.log(float(np.median(x))), math.log(10.0)])
    bounds = [(start[0] - 20, start[0] + 20), (math.log(0.2), math.log(1e4))]
    fit = optimize.minimize(nll, start, method="L-BFGS-B", bounds=bounds)
    return math.exp(float(fit.x[0])), math.exp(float(fit.x[1]))


def _t_cdf(x, df):
    """Student-t CDF, the normal one at ``df = inf`` (``scipy.special.stdtr``, vectorised)."""
    from scipy.special import stdtr

    return stdtr(np.asarray(df, dtype=float), np.asarray(x, dtype=float))


def _t_ppf(q, df):
    from scipy.special import stdtrit

    return stdtrit(np.asarray(df, dtype=float), q)


def _seeds_needed(effect: float, s: float, d0: float, alpha: float) -> float:
    """Smallest seed count ``n`` with ``effect ≥ (t_{1-α} + t_power)·s/√n`` on ``d0 + n − 1`` df."""
    if not (np.isfinite(effect) and effect > 0 and np.isfinite(s) and s > 0):
        return float("nan")
    n = np.arange(2, MAX_SEEDS + 1, dtype=float)
    df = d0 + n - 1
    enough = effect >= (_t_ppf(1 - alpha, df) + _t_ppf(POWER, df)) * s / np.sqrt(n)
    return float(n[np.argmax(enough)]) if enough.any() else math.inf


def _binom_side(b: int, c: int, side: str) -> float:
    """One-sided exact McNemar: ``loss`` — the baseline wins more discordant examples than chance says."""
    from scipy.stats import binomtest

    if b + c == 0:
        return 1.0
    side = "less" if side == "loss" else "greater"
    return float(binomtest(int(b), int(b + c), 0.5, alternative=side).pvalue)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: ``b`` examples only the method gets right, ``c`` only the baseline."""
    from scipy.stats import binomtest

    b, c = int(b), int(c)
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def family_test(gain, var, n_seeds, min_effect, *, alpha: float = 0.05, test: str = "moderated",
                confidence: float = 0.95, p_exact=None, resolution=None) -> dict[str, np.ndarray]:
    """The tests of one FDR family of rows, on arrays (the module docstring gives the model).

    Parameters
    ----------
    gain, var, n_seeds, min_effect : array-like, one entry per row
        Mean paired difference, its sample variance (``ddof=1``; NaN for one seed), seed count, margin.
    alpha, test, confidence
        As in :func:`negative_transfer`.
    resolution : array-like, optional
        One test example per row (``1 / n_test``): zero variances enter the prior as censored below it.
    p_exact : pair of array-likes, optional
        ``(p_loss, p_gain)``: exact one-sided per-example p-values of degenerate rows (NaN elsewhere); such a
        row's one-sided p is the larger of the exact one and the t-test's (the exact one alone when there
        is no t-test).

    Returns
    -------
    dict of numpy arrays
        ``p_loss, p_gain`` (one-sided, against the margin), ``q_loss, q_gain`` (BH within each direction),
        ``p, q`` (those of the observed direction), ``p_two_sided``, ``direction`` (−1 loss, +1 gain),
        ``loss, gain`` (flags: q < alpha), ``ci_low, ci_high, t, df, s`` (moderated standard deviation),
        ``mde, p_no_harm, q_no_harm, degenerate``, and the scalars ``prior_sd, prior_df`` (``d0``; 0 when not
        moderated).
    """
    if test not in TESTS:
        raise TransferlabError(f"test must be one of {list(TESTS)}, got {test!r}")
    gain = np.asarray(gain, dtype=float)
    var = np.asarray(var, dtype=float)
    var = np.where(var < ZERO_VARIANCE, 0.0, var)  # equal differences up to float rounding
    n = np.asarray(n_seeds, dtype=float)
    m = np.broadcast_to(np.asarray(min_effect, dtype=float), gain.shape)
    nu = n - 1
    s0sq, d0 = variance_prior(var, nu, resolution) if test == "moderated" else (float("nan"), 0.0)
    degenerate = (n < 2) | ~(var > 0)
    if np.isfinite(s0sq) and d0 > 0:
        nu_pos = np.where(nu > 0, nu, 0.0)
        v = np.where((nu > 0) & np.isfinite(var), var, 0.0)
        s2 = (d0 * s0sq + nu_pos * v) / (d0 + nu_pos)
        df = d0 + nu_pos
    else:  # plain paired t: no t-test for one seed or zero variance
        d0 = 0.0
        s2 = np.where(degenerate, np.nan, var)
        df = np.where(nu > 0, nu, np.nan)
    se = np.sqrt(s2 / n)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_loss = _t_cdf((gain + m) / se, df)
        p_gain = 1.0 - _t_cdf((gain - m) / se, df)
        half = _t_ppf(0.5 + confidence / 2, df) * se
        mde = m + (_t_ppf(1 - alpha, df) + _t_ppf(POWER, df)) * se
        tstat = gain / se
    p_no_harm = 1.0 - p_loss
    if p_exact is not None:
        for p_t, p_x in zip((p_loss, p_gain), p_exact):
            p_x = np.asarray(p_x, dtype=float)
            use = degenerate & np.isfinite(p_x)
            p_t[:] = np.where(use, np.where(np.isfinite(p_t), np.maximum(p_t, p_x), p_x), p_t)
    q_loss, q_gain = benjamini_hochberg(p_loss), benjamini_hochberg(p_gain)
    direction = np.where(np.nan_to_num(p_loss, nan=1.0) <= np.nan_to_num(p_gain, nan=1.0), -1.0, 1.0)
    loss = np.nan_to_num(q_loss, nan=1.0) < alpha
    won = np.nan_to_num(q_gain, nan=1.0) < alpha
    return {"p_loss": p_loss, "p_gain": p_gain, "q_loss": q_loss, "q_gain": q_gain,
            "p": np.where(direction < 0, p_loss, p_gain), "q": np.where(direction < 0, q_loss, q_gain),
            "p_two_sided": np.minimum(1.0, 2.0 * np.minimum(p_loss, p_gain)), "direction": direction,
            "loss": loss, "gain": won & ~loss, "ci_low": gain - half, "ci_high": gain + half, "t": tstat,
            "df": df, "s": np.sqrt(s2), "mde": mde, "p_no_harm": p_no_harm,
            "q_no_harm": benjamini_hochberg(p_no_harm), "degenerate": degenerate,
            "prior_sd": math.sqrt(s0sq) if np.isfinite(s0sq) else float("nan"), "prior_df": d0}


# --------------------------------------------------------------------------------------------- inputs
def _checked(df: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TransferlabError(f"expected a pandas DataFrame of results, got {type(df).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TransferlabError(f"results table is missing column(s) {missing}; it has {list(df.columns)}")
    return ok_rows(df)


def _converged(rows: pd.DataFrame) -> pd.Series:
    """``converged`` as booleans; an absent column or a missing value (older records) counts as converged."""
    if "converged" not in rows.columns:
        return pd.Series(True, index=rows.index)

    def said_no(v) -> bool:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        if isinstance(v, (bool, np.bool_)):
            return not v
        return str(v).strip().lower() in ("false", "0", "0.0", "no")

    return ~rows["converged"].map(said_no).astype(bool)


def _per_seed(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean accuracy per ``keys + [seed]`` (repeated records of one seed averaged), with ``n_test``,
    ``n_classes``, ``converged`` (every record of the seed) and the convergence ``reason``."""
    extra = {"_conv": _converged(rows),
             "_n_test": pd.to_numeric(rows["n_test"], errors="coerce") if "n_test" in rows else np.nan,
             "_k": pd.to_numeric(rows["n_classes"], errors="coerce") if "n_classes" in rows else np.nan}
    agg = {"accuracy": ("accuracy", "mean"), "n_test": ("_n_test", "mean"), "n_classes": ("_k", "max"),
           "converged": ("_conv", "all")}
    unconverged = not extra["_conv"].all()
    if unconverged:
        extra["_reason"] = rows["convergence_reason"] if "convergence_reason" in rows else None
        agg["reason"] = ("_reason", _reasons)
    out = rows.assign(**extra).groupby(keys + ["seed"], dropna=False, sort=True).agg(**agg).reset_index()
    if not unconverged:
        out["reason"] = ""
    return out


def _discordant(mine, ref) -> tuple[int, int]:
    """Examples of one seed's test split only the method gets right (b), only the baseline (c)."""
    right_m = pd.Series(mine.pred == mine.label, index=mine.test_index)
    right_r = pd.Series(ref.pred == ref.label, index=ref.test_index)
    both = right_m.index.intersection(right_r.index)
    x, y = right_m.loc[both].to_numpy(), right_r.loc[both].to_numpy()
    return int((x & ~y).sum()), int((~x & y).sum())


def _exact_degenerate(rows: pd.DataFrame, paired: pd.DataFrame, outcomes: pd.DataFrame | None,
                      join: list[str], reference: str) -> dict:
    """Discordant counts ``(b, c)`` per degenerate row, pooled over its paired seeds (needs outcomes)."""
    if outcomes is None or outcomes.empty or rows.empty:
        return {}
    by_key = {}
    for o in outcomes.itertuples(index=False):
        by_key.setdefault((o.target, o.seed, o.budget, o.method, o.source), o)
        by_key.setdefault((o.target, o.seed, o.budget, o.method, None), o)
    out = {}
    for idx, row in rows.iterrows():
        sel = paired
        for k in CELL_KEYS:
            sel = sel[sel[k] == row[k]]
        b = c = 0
        for seed in sel["seed"]:
            mine = by_key.get((row["target"], seed, row["budget"], row["method"], row["source"]))
            ref = by_key.get((row["target"], seed, row["budget"], reference,
                              row["source"] if "source" in join else None))
            if mine is None or ref is None:
                break
            db, dc = _discordant(mine, ref)
            b, c = b + db, c + dc
        else:
            if len(sel):
                out[idx] = (b, c)
    return out


def _reasons(values) -> str:
    return "; ".join(sorted({str(v) for v in values if isinstance(v, str) and v}))


def _paired_table(treated: pd.DataFrame, reference: pd.DataFrame, join: list[str], reference_name: str,
                  *, alpha: float, confidence: float, test: str, min_effect, outcomes, families,
                  low: str, high: str) -> pd.DataFrame:
    """One row of statistics per ``CELL_KEYS`` group of ``treated`` (see the module docstring)."""
    if test not in TESTS:
        raise TransferlabError(f"test must be one of {list(TESTS)}, got {test!r}")
    ref = _per_seed(reference, [k for k in join if k != "seed"]).rename(
        columns={"accuracy": "ref", "converged": "ref_converged", "reason": "ref_reason"})
    mine = _per_seed(treated, CELL_KEYS)
    merged = mine.merge(ref[join + ["ref", "ref_converged", "ref_reason"]], on=join, how="left")
    merged["diff"] = merged["accuracy"] - merged["ref"]
    paired = merged[np.isfinite(merged["ref"])]

    base = mine.groupby(CELL_KEYS, dropna=False, sort=True).agg(
        mean_accuracy=("accuracy", "mean"), n_test=("n_test", "mean")).reset_index()
    stats_ = paired.groupby(CELL_KEYS, dropna=False, sort=True).agg(
        n_seeds=("diff", "count"), gain=("diff", "mean"), var=("diff", "var"),
        mean_reference=("ref", "mean"), paired_accuracy=("accuracy", "mean"),
        converged=("converged", "all"), ref_converged=("ref_converged", "all")).reset_index()
    t = base.merge(stats_, on=CELL_KEYS, how="left")
    t["n_seeds"] = t["n_seeds"].fillna(0).astype(int)
    t["var"] = t["var"].where(t["n_seeds"] > 1, np.nan)
    t["var"] = t["var"].where(~(t["var"] < ZERO_VARIANCE), 0.0)
    t["std"] = np.sqrt(t["var"])
    t["mean_accuracy"] = t["paired_accuracy"].where(t["n_seeds"] > 0, t["mean_accuracy"])
    t["min_effect"] = _min_effect(t, min_effect)
    t["baseline"] = reference_name
    t["family"] = families(t)

    t["flag"] = "inconclusive"
    t["note"] = ""
    t["convergence_reason"] = None
    no_base = t["n_seeds"] == 0
    t.loc[no_base, "flag"] = "no-baseline"
    t.loc[no_base, "note"] = f"no `{reference_name}` run on the same seeds"
    conv = t["converged"].fillna(True).astype(bool)
    ref_conv = t["ref_converged"].fillna(True).astype(bool)
    unconv = ~no_base & ~(conv & ref_conv)
    if unconv.any():  # say which arm, on how many seeds, and why (the first seed's reason)
        for i in np.flatnonzero(unconv.to_numpy()):
            seeds = paired
            for k in CELL_KEYS:
                seeds = seeds[seeds[k] == t[k].iloc[i]]
            parts = []
            for arm, flag_col, why_col in ((t["method"].iloc[i], "converged", "reason"),
                                           (reference_name, "ref_converged", "ref_reason")):
                bad = seeds[~seeds[flag_col].astype(bool)]
                if len(bad):
                    first = next((r for r in bad[why_col] if isinstance(r, str) and r), "not converged")
                    parts.append(f"{arm}: {len(bad)} of {len(seeds)} seeds, e.g. seed {bad['seed'].iloc[0]}: "
                                 f"{first.split('; ')[0]}")
            t.loc[t.index[i], "convergence_reason"] = "; ".join(parts)
        t.loc[unconv.to_numpy(), "flag"] = "unconverged"

    cols = {k: np.full(len(t), np.nan) for k in ("p_value", "q_value", "ci_low", "ci_high", "t", "df", "mde",
                                                 "seeds_needed", "p_exact", "s_moderated", "prior_sd",
                                                 "prior_df", "p_two_sided")}
    no_harm = np.zeros(len(t), dtype=bool)
    for fam in [f for f in pd.unique(t["family"]) if f is not None]:
        # Unconverged and baseline-less rows are reported, not tested: they stay out of the FDR family.
        sel = np.flatnonzero((t["family"] == fam).to_numpy() & (t["flag"] == "inconclusive").to_numpy())
        if not len(sel):
            continue
        part = t.iloc[sel]
        degenerate = ((part["n_seeds"] < 2) | ~(part["var"] > 0)).to_numpy()
        exact = _exact_degenerate(part[degenerate], paired, outcomes, join, reference_name)
        p_exact = [np.array([_binom_side(*exact[k], side) if k in exact else np.nan for k in part.index])
                   for side in ("loss", "gain")]
        r = family_test(part["gain"], part["var"], part["n_seeds"], part["min_effect"], alpha=alpha,
                        test=test, confidence=confidence, p_exact=p_exact,
                        resolution=1.0 / part["n_test"].to_numpy(float))
        for j in np.flatnonzero(degenerate):
            what = "one seed" if part["n_seeds"].iloc[j] < 2 else "zero variance across seeds"
            if part.index[j] in exact:
                b, c = exact[part.index[j]]
                note = f"{what}: exact McNemar on {b + c} discordant test examples (b={b}, c={c})"
            elif test == "t":
                note = f"{what}: no t-test (needs per-example outcomes for an exact test)"
            else:
                note = f"{what}: variance from the matrix prior"
            t.loc[part.index[j], "note"] = note
        for name, key in (("p_value", "p"), ("q_value", "q"), ("ci_low", "ci_low"), ("ci_high", "ci_high"),
                          ("t", "t"), ("df", "df"), ("mde", "mde"), ("s_moderated", "s"),
                          ("prior_sd", "prior_sd"), ("prior_df", "prior_df")):
            cols[name][sel] = r[key]
        cols["p_exact"][sel] = np.where(r["direction"] < 0, p_exact[0], p_exact[1])
        cols["p_two_sided"][sel] = r["p_two_sided"]
        flags = np.where(r["loss"], low, np.where(r["gain"], high, "inconclusive"))
        t.loc[part.index, "flag"] = flags
        no_harm[sel] = (np.nan_to_num(r["q_no_harm"], nan=1.0) < alpha) & (flags != low)
        for j in np.flatnonzero(flags == "inconclusive"):
            eff = abs(part["gain"].iloc[j]) - part["min_effect"].iloc[j]
            cols["seeds_needed"][sel[j]] = _seeds_needed(eff, r["s"][j], r["prior_df"], alpha)
    for name, values in cols.items():
        t[name] = values
    t["no_harm"] = no_harm
    t["test"] = test
    return t


def _min_effect(t: pd.DataFrame, min_effect) -> np.ndarray:
    """Per-row margin (a fraction): one test example (``1 / n_test``) by default, 0 when unknown."""
    if min_effect is None or (isinstance(min_effect, str) and min_effect == "one-example"):
        n = t["n_test"].to_numpy(float)
        return np.where(np.isfinite(n) & (n > 0), 1.0 / np.where(n > 0, n, 1.0), 0.0)
    value = float(min_effect)
    if not (0 <= value < 1):
        raise TransferlabError(f"min_effect is a fraction of accuracy in [0, 1), got {min_effect!r}")
    return np.full(len(t), value)


# --------------------------------------------------------------------------------------------- public
NT_COLUMNS = [*CELL_KEYS, "gain", "ci_low", "ci_high", "p_value", "q_value", "flag", "n_seeds",
              "mean_accuracy"]
DETAIL_COLUMNS = ["std", "t", "df", "baseline", "min_effect", "mde", "seeds_needed", "no_harm", "note",
                  "convergence_reason", "p_two_sided", "p_exact", "s_moderated", "prior_sd", "prior_df",
                  "test", "n_test"]


def negative_transfer(df: pd.DataFrame, alpha: float = 0.05, baseline: str = "scratch",
                      confidence: float = 0.95, *, test: str = "moderated", min_effect=None,
                      outcomes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Gain of each transfer method over a target-only baseline, moderated paired tests, FDR control.

    The module docstring gives the model, the tests and the flags.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per trained cell with at least ``source, target, method, seed, budget, accuracy, status``
        (e.g. :func:`analysis.load_results`); optional ``n_test`` (for the default ``min_effect``),
        ``converged`` and ``convergence_reason``. Rows counted: :func:`ok_rows`. Baseline rows are joined on
        ``(target, seed, budget)``, whatever their ``source``.
    alpha : float
        FDR level of the flags.
    baseline : str
        ``"scratch"`` (transfer vs training from nothing) or ``"target-only"`` (the source's effect: same
        initial weights, target labels only), or any other method name.
    confidence : float
        Level of the confidence interval.
    test : {"moderated", "t"}
        Empirical-Bayes moderated t (default) or the plain paired t (``scipy.stats.ttest_rel``).
    min_effect : float or None
        Margin in accuracy (fraction): ``negative`` means significantly worse than ``−min_effect``. Default
        ``None``: one test example (``1 / n_test``) per row, 0 without an ``n_test`` column.
    outcomes : pandas.DataFrame, optional
        :func:`analysis.load_outcomes` of the run: exact per-example tests for degenerate rows.

    Returns
    -------
    pandas.DataFrame
        One row per ``(source, target, method ∉ {scratch, target-only, baseline}, budget > 0)``, sorted by
        those keys, with columns ``source, target, method, budget, gain, ci_low, ci_high, p_value, q_value,
        flag, n_seeds, mean_accuracy, mean_scratch`` (the baseline's mean accuracy on the paired seeds,
        whichever baseline), then ``std, t, df, baseline, min_effect, mde, seeds_needed, no_harm, note,
        convergence_reason, p_exact, s_moderated, prior_sd, prior_df, test, n_test``. ``flag`` is one of
        ``negative, positive, inconclusive, no-baseline, unconverged``. Budget-0 rows: :func:`budget_zero`.
    """
    ok = _checked(df)
    methods = ok["method"].astype(str)
    is_base = methods == baseline
    if not is_base.any():
        warnings.warn(f"negative_transfer: no 'ok' rows of baseline method {baseline!r}; "
                      f"methods present: {sorted(methods.unique())}", stacklevel=2)
    budgets = pd.to_numeric(ok["budget"], errors="coerce")
    treated = ok[~methods.isin([baseline, *BASELINES]) & (budgets > 0)]
    out = _paired_table(treated, ok[is_base], ["target", "seed", "budget"], baseline, alpha=alpha,
                        confidence=confidence, test=test, min_effect=min_effect, outcomes=outcomes,
                        families=lambda t: np.full(len(t), "budget>0", dtype=object),
                        low="negative", high="positive")
    out = out.rename(columns={"mean_reference": "mean_scratch"})
    return out[[*NT_COLUMNS, "mean_scratch", *DETAIL_COLUMNS]].reset_index(drop=True)


def da_harm(df: pd.DataFrame, reference: str = "finetune", alpha: float = 0.05,
            exclude: Sequence[str] = BASELINES, confidence: float = 0.95, *, test: str = "moderated",
            min_effect=None, outcomes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Does a domain-adaptation method help or harm compared with plain fine-tuning on the same pair?

    The statistics of :func:`negative_transfer` with the ``reference`` method's run of the same ``(source,
    target, seed, budget)`` as the baseline: ``gain = accuracy(method) − accuracy(reference)``. Two FDR
    families, each with its own variance prior: budget 0 and budget > 0. Flags ``harm`` / ``help`` /
    ``inconclusive`` / ``no-baseline`` / ``unconverged``.

    Returns
    -------
    pandas.DataFrame
        As :func:`negative_transfer`, with ``mean_reference`` for ``mean_scratch`` and ``reference`` last.
    """
    ok = _checked(df)
    methods = ok["method"].astype(str)
    if not (methods == reference).any():
        raise TransferlabError(f"da_harm: no 'ok' rows of reference method {reference!r}; "
                               f"methods present: {sorted(methods.unique())}")
    treated = ok[~methods.isin([reference, *exclude])]
    out = _paired_table(treated, ok[methods == reference], ["source", "target", "seed", "budget"], reference,
                        alpha=alpha, confidence=confidence, test=test, min_effect=min_effect,
                        outcomes=outcomes,
                        families=lambda t: np.where(t["budget"].astype(float) > 0, "budget>0", "budget=0"),
                        low="harm", high="help")
    out["reference"] = reference
    cols = [*NT_COLUMNS, "mean_reference", *[c for c in DETAIL_COLUMNS if c != "baseline"], "reference"]
    return out[cols].reset_index(drop=True)


def budget_zero(df: pd.DataFrame, alpha: float = 0.05, reference: str = "finetune",
                outcomes: pd.DataFrame | None = None, confidence: float = 0.95) -> pd.DataFrame:
    r"""Budget-0 rows (no target labels): accuracy against chance with exact tests, its own FDR family.

    Per ``(source, target, method)`` at budget 0, the test counts are pooled over seeds:
    :math:`k = \sum_s \mathrm{round}(acc_s \cdot n_{test,s})` correct of :math:`N = \sum_s n_{test,s}`.
    ``ci_low, ci_high``: the exact Clopper–Pearson interval of :math:`k/N`. One-sided exact binomial tests
    against chance :math:`1/K`: ``p_above`` (:math:`H_1`: accuracy > 1/K — the model learnt something) and
    ``p_below`` (:math:`H_1`: accuracy < 1/K — systematically wrong, e.g. permuted classes). Pooling
    treats the :math:`N` test predictions as independent trials: it ignores seed-to-seed variation, so it
    answers "is this model family above chance on these test sets", not a between-seed question.
    Against the source-only model (``reference``, plain fine-tuning at budget 0) on the same seeds, with
    per-example ``outcomes``: the exact McNemar test pooled over seeds (``gain_vs_reference``,
    ``p_vs_reference``). All p-values of the table form one BH family (never mixed with budget > 0 rows).
    ``flag``: ``below-chance`` / ``above-chance`` when that side's q < alpha, else ``at-chance``;
    ``flag_vs_reference``: ``harm`` / ``help`` / ``inconclusive``, or ``unconverged`` when a seed of either
    model had not converged (empty for the reference itself or without outcomes). ``converged``: every
    seed of the row's model converged (the accuracy-vs-chance test describes the model as trained either
    way).

    Returns
    -------
    pandas.DataFrame
        ``source, target, method, n_seeds, accuracy, ci_low, ci_high, chance, correct, n, p_above, q_above,
        p_below, q_below, flag, gain_vs_reference, p_vs_reference, q_vs_reference, flag_vs_reference,
        converged``.
    """
    from scipy.stats import binomtest

    cols = ["source", "target", "method", "n_seeds", "accuracy", "ci_low", "ci_high", "chance", "correct",
            "n", "p_above", "q_above", "p_below", "q_below", "flag", "gain_vs_reference", "p_vs_reference",
            "q_vs_reference", "flag_vs_reference", "converged"]
    ok = _checked(df)
    ok = ok[pd.to_numeric(ok["budget"], errors="coerce") == 0]
    ok = ok[~ok["method"].astype(str).isin(BASELINES)]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    seeds = _per_seed(ok, ["source", "target", "method"])
    rows = []
    for (s, tgt, meth), g in seeds.groupby(["source", "target", "method"], dropna=False, sort=True):
        n_test = g["n_test"].to_numpy(float)
        k_cls = g["n_classes"].max()
        row = {"source": s, "target": tgt, "method": meth, "n_seeds": len(g),
               "accuracy": float(g["accuracy"].mean()), "chance": 1.0 / k_cls if k_cls > 0 else np.nan,
               "converged": bool(g["converged"].all())}
        if np.all(np.isfinite(n_test)) and len(n_test):
            correct = int(np.round(g["accuracy"].to_numpy() * n_test).sum())
            total = int(n_test.sum())
            ci = binomtest(correct, total).proportion_ci(confidence, method="exact")
            row.update(correct=correct, n=total, accuracy=correct / total, ci_low=ci.low, ci_high=ci.high)
            if np.isfinite(row["chance"]):
                row["p_above"] = binomtest(correct, total, row["chance"], alternative="greater").pvalue
                row["p_below"] = binomtest(correct, total, row["chance"], alternative="less").pvalue
        if meth != reference and outcomes is not None and not outcomes.empty:
            mine = outcomes[(outcomes["source"] == s) & (outcomes["target"] == tgt)
                            & (outcomes["method"] == meth) & (outcomes["budget"] == 0)]
            ref = outcomes[(outcomes["source"] == s) & (outcomes["target"] == tgt)
                           & (outcomes["method"] == reference) & (outcomes["budget"] == 0)]
            b = c = 0
            n_right = n_ref_right = total_ex = 0
            for o in mine.itertuples(index=False):
                r = ref[ref["seed"] == o.seed]
                if r.empty:
                    continue
                r = r.iloc[0]
                rm = pd.Series(o.pred == o.label, index=o.test_index)
                rr = pd.Series(r["pred"] == r["label"], index=r["test_index"])
                both = rm.index.intersection(rr.index)
                x, y = rm.loc[both].to_numpy(), rr.loc[both].to_numpy()
                b += int((x & ~y).sum())
                c += int((~x & y).sum())
                n_right, n_ref_right = n_right + int(x.sum()), n_ref_right + int(y.sum())
                total_ex += len(both)
            if total_ex:
                row["gain_vs_reference"] = (n_right - n_ref_right) / total_ex
                row["p_vs_reference"] = mcnemar_exact(b, c)
                row["_dir"] = -1 if c > b else 1
        rows.append(row)
    out = pd.DataFrame(rows)
    for c in cols:
        if c not in out.columns:
            out[c] = np.nan
    family = np.concatenate([out["p_above"].to_numpy(float), out["p_below"].to_numpy(float),
                             out["p_vs_reference"].to_numpy(float)])
    q = benjamini_hochberg(family)
    n = len(out)
    out["q_above"], out["q_below"], out["q_vs_reference"] = q[:n], q[n:2 * n], q[2 * n:]
    above = np.where(np.nan_to_num(out["q_above"], nan=1) < alpha, "above-chance", "at-chance")
    out["flag"] = np.where(np.nan_to_num(out["q_below"], nan=1) < alpha, "below-chance", above)
    direction = out["_dir"] if "_dir" in out else pd.Series(np.nan, index=out.index)
    sig = np.nan_to_num(out["q_vs_reference"], nan=1) < alpha
    out["flag_vs_reference"] = np.where(out["p_vs_reference"].isna(), "",
                                        np.where(sig & (direction < 0), "harm",
                                                 np.where(sig & (direction > 0), "help", "inconclusive")))
    # A comparison with an arm that had not converged is reported, not decided (as in negative_transfer).
    ref_conv = out.set_index(["source", "target", "method"])["converged"].to_dict()
    arm_unconverged = [not (c and ref_conv.get((s, t, reference), True))
                       for s, t, c in zip(out["source"], out["target"], out["converged"])]
    out["flag_vs_reference"] = np.where(np.array(arm_unconverged) & (out["flag_vs_reference"] != ""),
                                        "unconverged", out["flag_vs_reference"])
    return out[cols].reset_index(drop=True)


def budget_crossover(df: pd.DataFrame, baseline: str = "scratch", n_boot: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> pd.DataFrame:
    """Per ``(source, target, method)``: the label budget from which the target-only baseline wins.

    ``crossover_budget`` is the smallest budget ``b`` such that the mean gain (:func:`negative_transfer`)
    is below 0 at ``b`` and at every larger budget evaluated — "from ``b`` on, the baseline beats transfer"
    (Wang et al. 2019 observe negative transfer growing with the label budget); NaN when the gain at the
    largest budget is ``>= 0``. Needs two budgets or more: rows with one budget are left out. A point
    estimate from a few seeds is not a finding, so with the raw results ``df`` the seed-paired differences
    are resampled (a bootstrap over seeds within each budget, ``n_boot`` draws, seeded): ``support`` is the
    fraction of draws with any crossover, ``ci_low, ci_high`` the percentile interval of the crossover budget
    over the draws (a draw without crossover counts as beyond the largest budget: ``inf``).
    ``confirmed``: the row's gain at the largest budget is flagged ``negative`` by :func:`negative_transfer`.
    Given a :func:`negative_transfer` table instead (a ``gain`` column), only the point estimates are
    available (``support`` and the interval NaN).

    Returns
    -------
    pandas.DataFrame
        ``source, target, method, crossover_budget, ci_low, ci_high, support, confirmed,
        first_negative_budget, n_budgets``.
    """
    keys = ["source", "target", "method"]
    cols = [*keys, "crossover_budget", "ci_low", "ci_high", "support", "confirmed", "first_negative_budget",
            "n_budgets"]
    raw = "gain" not in df.columns
    table = negative_transfer(df, baseline=baseline) if raw else df
    missing = [c for c in (*CELL_KEYS, "gain") if c not in table.columns]
    if missing:
        raise TransferlabError(f"budget_crossover: table is missing column(s) {missing}")
    diffs = {}
    if raw:
        ok = _checked(df)
        methods = ok["method"].astype(str)
        ref = _per_seed(ok[methods == baseline], ["target", "budget"]).rename(columns={"accuracy": "ref"})
        mine = _per_seed(ok[~methods.isin([baseline, *BASELINES])], CELL_KEYS)
        m = mine.merge(ref[["target", "budget", "seed", "ref"]], on=["target", "budget", "seed"], how="inner")
        for key, g in m.groupby(CELL_KEYS, dropna=False, sort=True):
            diffs[key] = (g["accuracy"] - g["ref"]).to_numpy(float)
    rng = np.random.default_rng(seed)
    rows = []
    for key, g in table[np.isfinite(table["gain"])].groupby(keys, dropna=False, sort=True):
        g = g.sort_values("budget")
        if len(g) < 2:
            continue
        budgets, gains = g["budget"].to_numpy(float), g["gain"].to_numpy(float)
        point = _crossover(budgets, gains[None, :])[0]
        neg = gains < 0
        row = {**dict(zip(keys, key)), "crossover_budget": point, "ci_low": np.nan, "ci_high": np.nan,
               "support": np.nan,
               "confirmed": bool("flag" in g and g["flag"].iloc[-1] == "negative"),
               "first_negative_budget": budgets[neg][0] if neg.any() else np.nan, "n_budgets": len(g)}
        per_budget = [diffs.get((*key, b)) for b in g["budget"]]
        if raw and all(d is not None and len(d) for d in per_budget):
            draws = np.stack([d[rng.integers(0, len(d), (n_boot, len(d)))].mean(1) for d in per_budget],
                             axis=1)
            cross = _crossover(budgets, draws)
            row["support"] = float(np.isfinite(cross).mean())
            filled = np.where(np.isfinite(cross), cross, np.inf)
            lo, hi = np.quantile(filled, [(1 - confidence) / 2, (1 + confidence) / 2], method="inverted_cdf")
            row["ci_low"], row["ci_high"] = float(lo), float(hi)
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def _crossover(budgets: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Per row of ``gains`` (draws × budgets): the first budget of the all-negative suffix, NaN if none."""
    negative = gains < 0
    tail = np.flip(np.logical_and.accumulate(np.flip(negative, axis=1), axis=1), axis=1)
    first = np.argmax(tail, axis=1)
    return np.where(tail.any(axis=1), budgets[first], np.nan)
