r"""Generic statistics the analysis tables share: moderated t, variance prior, FDR, exact tests, equivalence,
group-sequential boundaries, one confidence interval of a mean, one rank correlation.

Nothing here knows about transfer matrices: :mod:`analysis.negative` builds the negative-transfer tables on
these functions, :mod:`analysis.plots` and :mod:`analysis.predictors` use the interval and the correlation.

- :func:`benjamini_hochberg` — step-up FDR (Benjamini & Hochberg 1995).
- :func:`variance_prior`, :func:`variance_trend_prior`, :func:`moderated_variance` — Smyth's (2004)
  empirical-Bayes variance prior, fitted by maximum likelihood (constant, or with a test-sampling term as in
  limma-trend), and the moderated variances it gives.
- :func:`t_cdf`, :func:`t_ppf` — Student-t, vectorised over degrees of freedom (normal at ``inf``).
- :func:`paired_stats` — the plain paired t of one row.
- :func:`binom_one_sided`, :func:`mcnemar_exact` — exact tests on discordant test examples.
- :func:`tost` — Schuirmann's (1987) two one-sided tests for equivalence within ``±margin``.
- :func:`spending`, :func:`nominal_levels`, :func:`sequential_p` — group-sequential one-sided boundaries
  with an alpha-spending function (Lan & DeMets 1983) and the repeated p-values they give (Jennison & Turnbull
  2000, *Group Sequential Methods with Applications to Clinical Trials*, §9.1 and ch. 19).
- :func:`mean_ci` — Student-t interval of a mean over seeds; :func:`spearman` — Spearman's ρ over finite pairs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

MIN_PRIOR_ROWS = 3
ZERO_VARIANCE = 1e-12  # accuracy² (a standard deviation of 1e-4 points): equal up to float rounding


# ----------------------------------------------------------------------------------------------- FDR
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


# ----------------------------------------------------------------------------------------------- t
def t_cdf(x, df) -> np.ndarray:
    """Student-t CDF, the normal one at ``df = inf`` (``scipy.special.stdtr``, vectorised)."""
    from scipy.special import stdtr

    return stdtr(np.asarray(df, dtype=float), np.asarray(x, dtype=float))


def t_ppf(q, df) -> np.ndarray:
    """Student-t quantile (``scipy.special.stdtrit``, vectorised)."""
    from scipy.special import stdtrit

    return stdtrit(np.asarray(df, dtype=float), q)


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


# ----------------------------------------------------------------------------------------------- prior
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
    variances. The same likelihood with a test-sampling term is :func:`variance_trend_prior`.
    """
    tau2, _, d0 = _fit_prior(variances, dfs, None, resolution)
    return tau2, d0


def variance_trend_prior(variances, dfs, test_variance=None, resolution=None) -> tuple[float, float, float]:
    r"""The variance prior with a known test-sampling term: ``(tau², kappa, d0)``, per row
    :math:`s_{0g}^2 = \tau^2 + \kappa\, c_g`.

    Why: a row's seed differences vary for two reasons — training (seed-to-seed spread of the trained
    models, the same on any test split) and the *test split's sampling*: an accuracy on :math:`n` test
    examples is a binomial proportion, so one seed's paired difference carries
    :math:`c_g = (a_g(1 - a_g) + b_g(1 - b_g)) / n_g` (``test_variance``; :math:`a, b` the arms'
    accuracies, the variance of a difference of two independent binomial proportions). Across a matrix
    :math:`n_g` runs from 47 (dslr) to 600 (digits): the variances differ six-fold by construction, and one
    constant prior :math:`s_0^2` (:func:`variance_prior`) fits none of them — it shrinks the large-split rows'
    variances *up* (lost power) and the small-split rows' *down*, and the spread it must absorb drives
    :math:`d_0` (the prior's weight) towards 0. Modelling the prior's scale as a function of a known
    covariate is limma-trend (Sartor et al. 2006, "Intensity-based hierarchical Bayes method improves testing
    for differentially expressed genes in microarray experiments", BMC Bioinformatics 7:538; Law, Chen, Shi &
    Smyth 2014, "voom: precision weights unlock linear model analysis tools for RNA-seq read counts", Genome
    Biology 15:R29, where the covariate is a count's mean-variance trend, as here): the model of
    :func:`variance_prior` with :math:`s_g^2 / s_{0g}^2 \sim F(\nu_g, d_0)` and the moderated
    :math:`\tilde s_g^2 = (d_0 s_{0g}^2 + \nu_g s_g^2)/(d_0 + \nu_g)`. :math:`\kappa` is fitted, not fixed at
    1: two models scored on the same examples agree on most of them (:math:`\kappa < 1`), and under
    noise unrelated to the split size it goes to 0 (the constant prior). Fitted by maximum likelihood over
    :math:`(\log \bar s^2, \operatorname{logit} \rho, \log d_0)` with :math:`\bar s^2 = \tau^2 + \kappa
    \tilde c` at the median :math:`\tilde c` and :math:`\rho = \kappa \tilde c / \bar s^2`. Without a
    usable ``test_variance`` (missing, or non-finite for a row with data) :math:`\kappa = 0`:
    :func:`variance_prior`.
    """
    return _fit_prior(variances, dfs, test_variance, resolution)


@functools.lru_cache(maxsize=512)
def _fit_cached(key: bytes, shape: int, trend: bool) -> tuple[float, float, float]:
    """Fits are pure functions of their inputs; the group-sequential test refits the same earlier looks at
    every stage, so the result of each distinct input is kept."""
    arrays = np.frombuffer(key, dtype=np.float64).reshape(4, shape)
    return _fit(*arrays, trend=trend)


def _fit_prior(variances, dfs, test_variance, resolution) -> tuple[float, float, float]:
    s2 = np.asarray(variances, dtype=np.float64).ravel()
    nu = np.broadcast_to(np.asarray(dfs, dtype=np.float64), s2.shape)
    res = (np.full(s2.shape, np.nan) if resolution is None
           else np.broadcast_to(np.asarray(resolution, dtype=np.float64), s2.shape))
    c = (np.full(s2.shape, np.nan) if test_variance is None
         else np.broadcast_to(np.asarray(test_variance, dtype=np.float64), s2.shape))
    valid = np.isfinite(nu) & (nu > 0) & np.isfinite(s2)
    obs = valid & (s2 > 0)
    cens = valid & (s2 == 0) & np.isfinite(res) & (res > 0)
    if obs.sum() < MIN_PRIOR_ROWS:
        return float("nan"), 0.0, 0.0
    used = obs | cens
    trend = bool(np.all(np.isfinite(c[used]) & (c[used] >= 0))) and float(np.median(c[used])) > 0
    # only the rows the likelihood uses, censored ones marked by s2 == 0
    keep = np.stack([s2[used], nu[used], np.where(cens[used], res[used], np.nan),
                     c[used] if trend else np.zeros(int(used.sum()))])
    return _fit_cached(np.ascontiguousarray(keep).tobytes(), int(used.sum()), trend)


def _fit(s2, nu, res, c, *, trend: bool) -> tuple[float, float, float]:
    """Maximise the F likelihood of :func:`variance_trend_prior` (analytic gradient, L-BFGS-B)."""
    from scipy import optimize
    from scipy.special import betainc, betaln, digamma

    obs = s2 > 0
    x, a, a_c = s2[obs], nu[obs], nu[~obs]
    limit = (res[~obs] ** 2) / (a_c + 1)
    c_med = float(np.median(c)) if trend else 1.0
    c_x, c_c = c[obs] / c_med, c[~obs] / c_med  # relative to the median row's

    def value_and_grad(theta):
        s_bar = math.exp(theta[0])
        rho = 1.0 / (1.0 + math.exp(-theta[1])) if trend else 0.0
        b = math.exp(theta[2])
        # log s0² per row and its derivative in theta[1] (logit rho)
        rel_x = 1.0 - rho + rho * c_x
        log_s0 = math.log(s_bar) + np.log(rel_x)
        dlog_s0_dv = rho * (1.0 - rho) * (c_x - 1.0) / rel_x
        z = x * np.exp(-log_s0)  # ~ F(a, b): log density written out (scipy.stats.f.logpdf, faster)
        bz = b + a * z
        ll = (0.5 * a * np.log(a) + 0.5 * b * math.log(b) + (0.5 * a - 1) * np.log(z)
              - 0.5 * (a + b) * np.log(bz) - betaln(0.5 * a, 0.5 * b) - log_s0)
        dll_dl = -0.5 * a + 0.5 * (a + b) * a * z / bz
        dll_db = (0.5 * math.log(b) + 0.5 - 0.5 * np.log(bz) - 0.5 * (a + b) / bz
                  - 0.5 * digamma(0.5 * b) + 0.5 * digamma(0.5 * (a + b)))
        total = ll.sum()
        g = np.array([dll_dl.sum(), (dll_dl * dlog_s0_dv).sum(), b * dll_db.sum()])
        if len(a_c):  # censored rows: log P(F < limit / s0²)
            rel_c = 1.0 - rho + rho * c_c
            zc = limit / (s_bar * rel_c)
            w = a_c * zc / (a_c * zc + b)
            cdf = np.maximum(betainc(0.5 * a_c, 0.5 * b, w), 1e-300)
            log_dens = ((0.5 * a_c - 1) * np.log(w) + (0.5 * b - 1) * np.log1p(-w)
                        - betaln(0.5 * a_c, 0.5 * b))
            ratio = np.exp(log_dens - np.log(cdf))  # d log I / d w
            dl = -ratio * w * (1.0 - w)  # d log I / d log s0²
            h = 1e-6 * b  # the shape parameter's derivative of I has no closed form: central difference
            dshape = (betainc(0.5 * a_c, 0.5 * (b + h), w) - betainc(0.5 * a_c, 0.5 * (b - h), w)) / (2 * h)
            db = ratio * (-w * (1.0 - w) / b) + dshape / cdf
            total += np.log(cdf).sum()
            g += np.array([dl.sum(), (dl * rho * (1.0 - rho) * (c_c - 1.0) / rel_c).sum(), b * db.sum()])
        if not np.isfinite(total):
            return 1e300, np.zeros(3)
        return -total, -g

    start = np.array([math.log(float(np.median(x))), 0.0, math.log(10.0)])
    bounds = [(start[0] - 20, start[0] + 20), (-12.0, 12.0) if trend else (0.0, 0.0),
              (math.log(0.2), math.log(1e4))]
    fit = optimize.minimize(value_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds)
    s_bar = math.exp(float(fit.x[0]))
    rho = 1.0 / (1.0 + math.exp(-float(fit.x[1]))) if trend else 0.0
    return s_bar * (1.0 - rho), (s_bar * rho / c_med if trend else 0.0), math.exp(float(fit.x[2]))


def moderated_variance(var, nu, s0sq, d0: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Posterior variances :math:`\tilde s^2 = (d_0 s_0^2 + \nu s^2)/(d_0 + \nu)` and their df :math:`d_0 + \nu`.

    ``s0sq``: the prior's scale, one number or one per row (:func:`variance_trend_prior`). A row with one seed
    (:math:`\nu = 0`, ``var`` NaN) gets :math:`s_0^2` on :math:`d_0` df. Without a prior (``s0sq`` NaN or
    ``d0 = 0``): the plain variances, NaN where there is none (one seed, zero variance).
    """
    var = np.asarray(var, dtype=float)
    nu = np.asarray(nu, dtype=float)
    s0 = np.asarray(s0sq, dtype=float)
    if np.all(np.isfinite(s0)) and d0 > 0:
        nu_pos = np.where(nu > 0, nu, 0.0)
        v = np.where((nu > 0) & np.isfinite(var), var, 0.0)
        return (d0 * s0 + nu_pos * v) / (d0 + nu_pos), d0 + nu_pos
    degenerate = (nu < 1) | ~(var > 0)
    return np.where(degenerate, np.nan, var), np.where(nu > 0, nu, np.nan)


# ----------------------------------------------------------------------------------------------- exact
def binom_one_sided(b: int, c: int, side: str) -> float:
    """One-sided exact McNemar on ``b`` examples only the method gets right and ``c`` only the baseline.

    ``side="loss"``: p of "the baseline wins more discordant examples than chance says"
    (:math:`b \\sim \\mathrm{Bin}(b + c, 1/2)`, lower tail); ``"gain"``: the upper tail. 1 with no discordant
    example.
    """
    from scipy.stats import binomtest

    if b + c == 0:
        return 1.0
    alternative = "less" if side == "loss" else "greater"
    return float(binomtest(int(b), int(b + c), 0.5, alternative=alternative).pvalue)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: ``b`` examples only the method gets right, ``c`` only the baseline."""
    from scipy.stats import binomtest

    b, c = int(b), int(c)
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


# ----------------------------------------------------------------------------------------------- TOST
def tost(estimate, se, df, margin) -> np.ndarray:
    r"""Schuirmann's (1987) two one-sided tests: p-value of "the true value lies inside ``±margin``".

    :math:`p = \max\big(1 - F_t((\hat\mu + m)/se),\; F_t((\hat\mu - m)/se)\big)` — the larger of the p of
    :math:`H_0: \mu \le -m` and of :math:`H_0: \mu \ge m`; rejecting both at :math:`\alpha` is the same as the
    :math:`1 - 2\alpha` interval lying inside :math:`(-m, m)`. Valid (super-uniform) for every :math:`\mu`
    with :math:`|\mu| \ge m`. NaN where ``se`` is not positive and finite.
    """
    est, se, m = (np.asarray(v, dtype=float) for v in (estimate, se, margin))
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = 1.0 - t_cdf((est + m) / se, df)
        upper = t_cdf((est - m) / se, df)
    return np.where(np.isfinite(se) & (se > 0), np.maximum(lower, upper), np.nan)


# ----------------------------------------------------------------------------------------------- sequential
SPENDING = ("obrien-fleming", "pocock", "linear")
ALPHA_GRID = np.geomspace(1e-12, 0.999, 81)
_GRID = 161  # points of the density grid per look (checked against simulation in the tests)


def spending(t, alpha, kind: str = "obrien-fleming") -> np.ndarray:
    r"""Alpha spent by information fraction :math:`t \in [0, 1]` (Lan & DeMets 1983), one-sided.

    - ``"obrien-fleming"``: :math:`\alpha(t) = 2 - 2\Phi\big(\Phi^{-1}(1 - \alpha/2)/\sqrt t\big)`;
    - ``"pocock"``: :math:`\alpha \ln(1 + (e - 1) t)`;
    - ``"linear"``: :math:`\alpha t`.

    :math:`\alpha(1) = \alpha` for each.
    """
    from scipy.special import ndtr, ndtri

    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    alpha = np.asarray(alpha, dtype=float)
    if kind == "obrien-fleming":
        with np.errstate(divide="ignore"):
            return np.where(t > 0, 2.0 * ndtr(ndtri(alpha / 2.0) / np.sqrt(np.maximum(t, 1e-300))), 0.0)
    if kind == "pocock":
        return alpha * np.log1p((math.e - 1.0) * t)
    if kind == "linear":
        return alpha * t
    raise ValueError(f"spending must be one of {list(SPENDING)}, got {kind!r}")


@functools.lru_cache(maxsize=256)
def _levels(fractions: tuple[float, ...], kind: str) -> np.ndarray:
    """Nominal one-sided levels ``(looks, len(ALPHA_GRID))`` of the boundaries for every overall α of the grid.

    Recursive numerical integration of the Brownian motion :math:`B(t)` (:math:`Z_k = B(t_k)/\\sqrt{t_k}`):
    the sub-density of :math:`B(t_k)` on the continuation region :math:`B < c_k \\sqrt{t_k}` is carried from
    look to look by convolution with the :math:`N(0, t_k - t_{k-1})` increment; :math:`c_k` solves
    :math:`P(\\text{continue to } k-1,\\ Z_k \\ge c_k) = \\alpha(t_k) - \\alpha(t_{k-1})` (bisection).
    """
    from scipy.special import ndtr, ndtri

    t = np.asarray(fractions, dtype=float)
    alpha = ALPHA_GRID
    spent = np.stack([spending(tk, alpha, kind) for tk in t])  # (K, A)
    levels = np.empty((len(t), len(alpha)))
    c = -ndtri(np.clip(spent[0], 1e-300, 1.0))
    levels[0] = spent[0]
    # density of B(t_1) on [lo, c·√t_1], per α (rows): trapezoid weights times the normal density
    sd = math.sqrt(t[0])
    grid = -8.0 * sd + (c[:, None] * sd + 8.0 * sd) * np.linspace(0.0, 1.0, _GRID)[None, :]
    weights = _trapezoid(grid) * np.exp(-0.5 * (grid / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    for k in range(1, len(t)):
        step = math.sqrt(t[k] - t[k - 1])
        want = np.clip(spent[k] - spent[k - 1], 0.0, None)
        sdk = math.sqrt(t[k])
        lo, hi = np.full(len(alpha), -12.0), np.full(len(alpha), 40.0)
        for _ in range(60):  # bisection on c_k, vectorised over α
            mid = 0.5 * (lo + hi)
            cross = (weights * (1.0 - ndtr((mid[:, None] * sdk - grid) / step))).sum(1)
            too_low = cross > want  # boundary too low: crosses more than the increment allows
            lo, hi = np.where(too_low, mid, lo), np.where(too_low, hi, mid)
        c = 0.5 * (lo + hi)
        levels[k] = 1.0 - ndtr(c)
        if k + 1 < len(t):
            new = -8.0 * sdk + (c[:, None] * sdk + 8.0 * sdk) * np.linspace(0.0, 1.0, _GRID)[None, :]
            kernel = np.exp(-0.5 * ((new[:, :, None] - grid[:, None, :]) / step) ** 2) / (step * math.sqrt(2 * math.pi))
            density = (kernel * weights[:, None, :]).sum(2)
            grid, weights = new, _trapezoid(new) * density
    return levels


def _trapezoid(grid: np.ndarray) -> np.ndarray:
    h = np.diff(grid, axis=1)
    w = np.zeros_like(grid)
    w[:, 1:] += h / 2
    w[:, :-1] += h / 2
    return w


def nominal_levels(fractions: Sequence[float], alpha: float, kind: str = "obrien-fleming") -> np.ndarray:
    """Per look, the nominal one-sided p a statistic must reach for an overall one-sided level ``alpha``.

    ``fractions``: information fractions :math:`t_1 < \\dots < t_K \\le 1` of the looks (seeds so far /
    planned maximum). See :func:`_levels` for the computation.
    """
    levels = _levels(tuple(float(f) for f in fractions), kind)
    la = np.log(ALPHA_GRID)
    return np.exp([np.interp(math.log(alpha), la, np.log(np.maximum(row, 1e-300))) for row in levels])


def sequential_p(p_looks, fractions: Sequence[float], kind: str = "obrien-fleming") -> np.ndarray:
    r"""Repeated p-values: the smallest overall level at which a boundary has been crossed by the last look.

    ``p_looks``: nominal one-sided p-values, shape ``(looks, rows)`` (NaN for a look a row did not have),
    ``fractions`` the information fractions of the looks. Look :math:`k`'s nominal p maps to the overall
    level :math:`\alpha_k^*(p)` whose boundary at :math:`k` it just reaches (the inverse of
    :func:`nominal_levels`, interpolated in log–log on a grid of α); the repeated p-value is
    :math:`\min_{k} \alpha_k^*(p_k)`. Whatever rule decides when a row stops, :math:`P(\text{repeated } p
    \le u) \le u` under the null for every :math:`u` (the boundaries for level :math:`u` are crossed with
    probability :math:`u` over all looks), so these p-values can be compared with α or fed to BH at any stage.
    """
    p = np.atleast_2d(np.asarray(p_looks, dtype=float))
    levels = _levels(tuple(float(f) for f in fractions), kind)
    la = np.log(ALPHA_GRID)
    out = np.full(p.shape[1], np.nan)
    for k in range(p.shape[0]):
        lv = np.log(np.maximum(levels[k], 1e-300))
        lp = np.log(np.clip(p[k], 1e-300, 1.0))
        a = np.interp(lp, lv, la)  # below the grid's smallest level: α* = 1e-12, decided at any level
        a = np.where(lp >= lv[-1], 0.0, a)  # above α = 0.999's level: 1
        a = np.where(np.isfinite(p[k]), np.exp(np.minimum(a, 0.0)), np.nan)
        out = np.fmin(out, a)
    return out


# ----------------------------------------------------------------------------------------------- small helpers
def mean_ci(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)``: Student-t confidence interval of the mean over seeds (low = high if n=1)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    m = float(v.mean())
    if n == 1:
        return m, m, m, 1
    half = float(t_ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return m, m - half, m + half, n


def spearman(x, y) -> tuple[float, float, int]:
    """``(rho, p_value, n)`` of the Spearman rank correlation over the finite pairs (NaN when n < 3)."""
    from scipy.stats import spearmanr

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return float("nan"), float("nan"), n
    res = spearmanr(x[keep], y[keep])
    return float(res.statistic), float(res.pvalue), n
