"""Transferability scores against their papers' definitions, computed directly here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch
from sklearn.metrics import mutual_info_score

from adapt.errors import DataError
from analysis import h_score, leep, logme, nce


def _direct_log_evidence(f, y):
    """max over (α, β) of log N(y; 0, I/β + F Fᵀ/α), by numerical optimisation, divided by n."""
    n = len(y)

    def negative(log_ab):
        alpha, beta = np.exp(log_ab)
        cov = np.eye(n) / beta + f @ f.T / alpha
        return -scipy.stats.multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(y)

    best = min((scipy.optimize.minimize(negative, x0=np.array(x0), method="Nelder-Mead",
                                        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
                for x0 in ([0.0, 0.0], [2.0, 2.0], [-2.0, 1.0])), key=lambda r: r.fun)
    return -best.fun / n


@pytest.mark.parametrize("n,dim", [(40, 5), (12, 20)])
def test_logme_is_the_maximised_evidence(n, dim):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 3, n)
    f = rng.normal(size=(n, dim)) + labels[:, None] * rng.normal(size=dim)
    expected = np.mean([_direct_log_evidence(f, (labels == k).astype(float)) for k in range(3)])
    assert logme(f, labels) == pytest.approx(expected, abs=1e-5)


def test_logme_ranks_informative_features_higher_and_takes_tensors():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    good = np.eye(4)[labels] * 3 + rng.normal(size=(200, 4)) * 0.3
    noise = rng.normal(size=(200, 4))
    assert logme(good, labels) > logme(noise, labels)
    assert logme(torch.tensor(good), torch.tensor(labels)) == pytest.approx(logme(good, labels))


def test_leep_hand_computed_2x2():
    theta = np.array([[0.8, 0.2], [0.4, 0.6]])
    # P(y,z) = [[.4,.1],[.2,.3]], P(z) = [.6,.4], P(y|z) = [[2/3, 1/4],[1/3, 3/4]]
    assert leep(theta, [0, 1]) == pytest.approx(math.log(7 / 12))
    assert leep(theta, [0, 1]) == pytest.approx(math.log(0.4 / 3 + 0.6 * 0.75))


def test_leep_direct_formula_and_one_hot_equals_nce():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(60, 5))
    theta = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 3, 60)
    joint = np.array([[theta[y == a, z].sum() / 60 for z in range(5)] for a in range(3)])
    cond = joint / joint.sum(0)
    expected = np.mean([math.log(sum(cond[y[i], z] * theta[i, z] for z in range(5))) for i in range(60)])
    assert leep(theta, y) == pytest.approx(expected)
    z = rng.integers(0, 4, 60)
    assert leep(np.eye(4)[z], y) == pytest.approx(nce(z, y))


def test_leep_rejects_logits():
    with pytest.raises(DataError, match="softmax"):
        leep(np.array([[2.0, -1.0], [0.5, 0.5]]), [0, 1])


def test_nce_hand_computed_and_mutual_information():
    # P(y,z): (0,0)=.5, (0,1)=.25, (1,1)=.25 → -H(Y|Z) = .25 log .5 + .25 log .5
    assert nce([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(-0.5 * math.log(2))
    assert nce([3, 3, 7, 7], [1, 1, 0, 0]) == pytest.approx(0.0)
    rng = np.random.default_rng(2)
    z, y = rng.integers(0, 4, 300), rng.integers(0, 3, 300)
    h_y = scipy.stats.entropy(np.bincount(y))
    assert nce(z, y) == pytest.approx(mutual_info_score(y, z) - h_y)  # -H(Y|Z) = I(Y;Z) - H(Y)


def test_h_score_hand_computed():
    assert h_score(np.array([[0.0], [0.0], [2.0], [2.0]]), [0, 0, 1, 1]) == pytest.approx(1.0)
    # cov f = 5/3, cov E[f|y] = 4/3
    assert h_score(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1]) == pytest.approx(0.8)


def test_h_score_direct_formula_rank_deficient():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 50)
    base = rng.normal(size=(50, 3)) + y[:, None]
    f = np.hstack([base, base[:, :1] * 2])  # rank-deficient covariance
    mean = f.mean(0)
    cov_f = sum(np.outer(r - mean, r - mean) for r in f) / 49
    g = np.array([f[y == c].mean(0) for c in y])
    cov_g = sum(np.outer(r - g.mean(0), r - g.mean(0)) for r in g) / 49
    expected = np.trace(np.linalg.pinv(cov_f) @ cov_g)
    assert h_score(f, y) == pytest.approx(expected, rel=1e-6)
