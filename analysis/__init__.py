"""transferlab analysis: records and features in, statistics, distances and scores out (no training loop).

Modules, one concern each:

- :mod:`analysis.results` — :func:`load_results`, :func:`load_curves`, :func:`load_outcomes` (a run's
  ``cells/*.json``);
- :mod:`analysis.stats` — generic statistics: moderated t and its variance prior, BH, exact McNemar, TOST,
  group-sequential boundaries and repeated p-values, a mean's interval, Spearman's ρ;
- :mod:`analysis.negative` — the verdict tables on them: :func:`negative_transfer`, :func:`da_harm`,
  :func:`budget_zero`, :func:`budget_crossover`, the adaptive design's stopping rule :func:`more_seeds` and
  :func:`verdict_counts`;
- :mod:`analysis.distances` — proxy A-distance, MMD (+ permutation test, linear time), CORAL, W₂, OTDD;
- :mod:`analysis.transferability` — LogME, LEEP, NCE, H-score;
- :mod:`analysis.predictors` — which distance predicts gain or harm (Spearman ρ, AUROC);
- :mod:`analysis.simulate` — simulated results frames with known truth (Gaussian or whole-count binomial test
  noise) and the adaptive seed procedure driven through :func:`more_seeds`: calibration, power, study sizing.

Importing this package loads numpy and pandas only; torch, POT, scipy and scikit-learn are imported by
the functions that use them.
"""

from __future__ import annotations

from .distances import (
    DISTANCES,
    bures_wasserstein2,
    class_gaussian_w2,
    coral_distance,
    distance_table,
    domain_distances,
    median_bandwidth,
    mmd2,
    mmd2_linear,
    mmd_permutation_test,
    otdd_distance,
    proxy_a_distance,
    wasserstein_distance,
)
from .negative import (
    budget_crossover,
    budget_zero,
    da_harm,
    more_seeds,
    negative_transfer,
    ok_rows,
    seed_design,
    seed_looks,
    verdict_counts,
)
from .predictors import distance_gain_correlation, harm_auroc
from .results import load_curves, load_outcomes, load_results
from .stats import benjamini_hochberg, mcnemar_exact, paired_stats, sequential_p, tost, variance_prior
from .transferability import h_score, leep, logme, nce

__all__ = [
    "DISTANCES",
    "benjamini_hochberg",
    "budget_crossover",
    "budget_zero",
    "bures_wasserstein2",
    "class_gaussian_w2",
    "coral_distance",
    "da_harm",
    "distance_gain_correlation",
    "distance_table",
    "domain_distances",
    "h_score",
    "harm_auroc",
    "leep",
    "load_curves",
    "load_outcomes",
    "load_results",
    "logme",
    "mcnemar_exact",
    "median_bandwidth",
    "mmd2",
    "mmd2_linear",
    "mmd_permutation_test",
    "more_seeds",
    "nce",
    "ok_rows",
    "negative_transfer",
    "otdd_distance",
    "paired_stats",
    "seed_design",
    "seed_looks",
    "sequential_p",
    "tost",
    "proxy_a_distance",
    "variance_prior",
    "verdict_counts",
    "wasserstein_distance",
]
