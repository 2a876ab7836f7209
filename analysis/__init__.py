"""transferlab analysis: records and features in, statistics, distances and scores out (no training loop).

Modules, one concern each:

- :mod:`analysis.results` — :func:`load_results`, :func:`load_curves`, :func:`load_outcomes` (a run's
  ``cells/*.json``);
- :mod:`analysis.negative` — :func:`negative_transfer`, :func:`da_harm`, :func:`budget_crossover`;
- :mod:`analysis.distances` — proxy A-distance, MMD (+ permutation test, linear time), CORAL, W₂, OTDD;
- :mod:`analysis.transferability` — LogME, LEEP, NCE, H-score;
- :mod:`analysis.predictors` — which distance predicts gain or harm (Spearman ρ, AUROC).

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
    benjamini_hochberg,
    budget_crossover,
    budget_zero,
    da_harm,
    negative_transfer,
    ok_rows,
    paired_stats,
    variance_prior,
)
from .predictors import distance_gain_correlation, harm_auroc
from .results import load_curves, load_outcomes, load_results
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
    "median_bandwidth",
    "mmd2",
    "mmd2_linear",
    "mmd_permutation_test",
    "nce",
    "ok_rows",
    "negative_transfer",
    "otdd_distance",
    "paired_stats",
    "proxy_a_distance",
    "variance_prior",
    "wasserstein_distance",
]
