"""Domain distances against independent computations (direct loops, POT/scipy called here)."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import ot
import pytest
import scipy.linalg
import scipy.stats
from scipy.spatial.distance import cdist, pdist

from adapt.domains.shift import make_shift_domain
from adapt.errors import DataError, TransferlabError
from analysis import distances as D


def _gauss(a, b, sigmas):
    return sum(np.exp(-np.sum((a - b) ** 2) / (2 * s * s)) for s in sigmas)


def _mmd2_loop(x, y, k, unbiased=True):
    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j or not unbiased)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j or not unbiased)
    kxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    if unbiased:
        return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (n * m)
    return kxx / n**2 + kyy / m**2 - 2 * kxy / (n * m)


@pytest.fixture
def xy():
    rng = np.random.default_rng(1)
    return rng.normal(size=(12, 3)), rng.normal(loc=0.7, size=(9, 3))


@pytest.mark.parametrize("bandwidth", [1.3, [0.5, 2.0]])
@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd2_matches_double_loop(xy, bandwidth, unbiased):
    x, y = xy
    sigmas = [bandwidth] if np.isscalar(bandwidth) else bandwidth
    expected = _mmd2_loop(x, y, lambda a, b: _gauss(a, b, sigmas), unbiased)
    got = D.mmd2(x, y, bandwidth=bandwidth, unbiased=unbiased, device="cpu")
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_mmd2_median_heuristic_and_linear_kernel(xy):
    x, y = xy
    sigma = np.median(pdist(np.vstack([x, y])))
    assert D.median_bandwidth(x, y) == pytest.approx(sigma)
    assert D.mmd2(x, y) == pytest.approx(_mmd2_loop(x, y, lambda a, b: _gauss(a, b, [sigma])), rel=1e-10)
    assert D.mmd2(x, y, kernel="linear") == pytest.approx(_mmd2_loop(x, y, lambda a, b: a @ b), rel=1e-10)


def test_mmd2_chunked_equals_whole(xy, monkeypatch):
    x, y = xy
    whole = D.mmd2(x, y, bandwidth=1.0)
    monkeypatch.setattr(D, "_CHUNK_ENTRIES", 20)  # row blocks of 1-2 rows
    assert D.mmd2(x, y, bandwidth=1.0) == pytest.approx(whole, rel=1e-12)


def test_mmd2_linear_matches_lemma14(xy):
    x, y = xy
    k = lambda a, b: _gauss(a, b, [0.9])  # noqa: E731
    half = min(len(x), len(y)) // 2
    h = [k(x[2 * i], x[2 * i + 1]) + k(y[2 * i], y[2 * i + 1]) - k(x[2 * i], y[2 * i + 1])
         - k(x[2 * i + 1], y[2 * i]) for i in range(half)]
    assert D.mmd2_linear(x, y, bandwidth=0.9) == pytest.approx(np.mean(h), rel=1e-10)


def test_mmd_permutation_pvalue_matches_exact_enumeration():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4, 2)), rng.normal(loc=0.8, size=(4, 2))
    z = np.vstack([x, y])
    k = lambda a, b: _gauss(a, b, [1.0])  # noqa: E731
    observed = _mmd2_loop(x, y, k)
    splits = [_mmd2_loop(z[list(s)], z[[i for i in range(8) if i not in s]], k)
              for s in itertools.combinations(range(8), 4)]
    exact = np.mean(np.array(splits) >= observed - 1e-12)
    stat, p = D.mmd_permutation_test(x, y, n_permutations=20000, bandwidth=1.0, seed=0)
    assert stat == pytest.approx(observed, rel=1e-10)
    assert p == pytest.approx(exact, abs=0.01)
    assert D.mmd_permutation_test(x, y, n_permutations=500, bandwidth=1.0, seed=5) == \
        D.mmd_permutation_test(x, y, n_permutations=500, bandwidth=1.0, seed=5, batch_size=7)


def test_coral_matches_formula():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(30, 5)) * np.arange(1, 6)
    cs = (x - x.mean(0)).T @ (x - x.mean(0)) / (len(x) - 1)
    ct = (y - y.mean(0)).T @ (y - y.mean(0)) / (len(y) - 1)
    assert D.coral_distance(x, y) == pytest.approx(np.sum((cs - ct) ** 2) / (4 * 25), rel=1e-10)
    assert D.coral_distance(x, x + 3.0) == pytest.approx(0.0, abs=1e-12)


def test_wasserstein_emd_and_sinkhorn_match_pot():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 4)), rng.normal(loc=1.0, size=(25, 4))
    cost = cdist(x, y, "sqeuclidean")
    a, b = np.full(30, 1 / 30), np.full(25, 1 / 25)
    assert D.wasserstein_distance(x, y) == pytest.approx(ot.emd2(a, b, cost), rel=1e-9)
    assert D.wasserstein_distance(x, y, p=1) == pytest.approx(ot.emd2(a, b, cdist(x, y)), rel=1e-9)
    sink = ot.sinkhorn2(a, b, cost, 0.5, method="sinkhorn_log", numItermax=10**4, stopThr=1e-9)
    assert D.wasserstein_distance(x, y, reg=0.5) == pytest.approx(float(sink), rel=1e-6)
    assert D.wasserstein_distance(x, y, reg=0.5) >= D.wasserstein_distance(x, y)


def test_wasserstein_one_dimensional_closed_forms():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=50), rng.exponential(size=50)
    assert D.wasserstein_distance(x[:, None], y[:, None], p=1) == \
        pytest.approx(scipy.stats.wasserstein_distance(x, y), rel=1e-9)
    assert D.wasserstein_distance(x[:, None], y[:, None], p=2) == \
        pytest.approx(np.mean((np.sort(x) - np.sort(y)) ** 2), rel=1e-9)


def test_wasserstein_subsamples_reproducibly():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(300, 3)), rng.normal(size=(280, 3))
    one = D.wasserstein_distance(x, y, max_samples=50, seed=1)
    assert one == D.wasserstein_distance(x, y, max_samples=50, seed=1)
    assert one != D.wasserstein_distance(x, y, max_samples=50, seed=2)


def test_proxy_a_distance_extremes():
    a = make_shift_domain("base", n_samples=400)
    b = make_shift_domain("null", n_samples=400)
    assert D.proxy_a_distance(a.X, b.X) <= 0.25
    assert D.proxy_a_distance(a.X, a.X + 50.0) == 2.0
    assert D.proxy_a_distance(a.X, a.X + 50.0, classifier="linear_svm") == 2.0
    assert 0.0 <= D.proxy_a_distance(a.X, b.X, classifier="linear_svm") <= 0.25


def test_proxy_a_knn_sees_domains_a_linear_classifier_cannot_after_per_domain_zscoring():
    """Same per-feature mean and variance in both domains (z-scored per domain, as Office-Caltech10 is), different
    joint structure: the linear classifier reads 0, the 5-NN one does not (issue 24)."""
    a = make_shift_domain("base", n_samples=400, n_features=8).X
    b = make_shift_domain("cov", covariate=1.0, n_samples=400, n_features=8).X
    z = lambda x: (x - x.mean(0)) / x.std(0)  # noqa: E731
    a, b = a.astype(np.float64), b.astype(np.float64)
    za, zb = z(a), z(b)
    assert np.allclose(za.mean(0), zb.mean(0), atol=1e-9) and np.allclose(za.std(0), zb.std(0))
    assert D.proxy_a_distance(za, zb) <= 0.2
    assert D.proxy_a_distance(za, zb, classifier="knn") >= 0.5
    null = z(make_shift_domain("null", n_samples=400, n_features=8).X)
    assert D.proxy_a_distance(za, null, classifier="knn") <= 0.25
    assert D.domain_distances(a, b, which=["proxy_a_knn"])["proxy_a_knn"] == D.proxy_a_distance(a, b, classifier="knn")


def test_every_distance_grows_with_covariate_severity():
    """On the `shift` family, covariate severity 0 -> 1: every distance rises with it (Spearman >= 0.9), and the
    MMD test's p-value falls from 'same distribution' to 'different'."""
    severities = [0.0, 0.25, 0.5, 0.75, 1.0]
    base = make_shift_domain("base", n_samples=300, seed=3)
    shifted = [make_shift_domain(f"cov{s}", covariate=s, n_samples=300, seed=3) for s in severities]
    names = [n for n in D.DISTANCES if n != "mmd_pvalue"]
    values = {n: [] for n in names}
    pvalues = []
    for d in shifted:
        got = D.domain_distances(base.X, d.X, base.y, d.y, which=[*names, "mmd_pvalue"], seed=0)
        for n in names:
            values[n].append(got[n])
        pvalues.append(got["mmd_pvalue"])
    for n in names:
        rho = scipy.stats.spearmanr(severities, values[n]).statistic
        assert rho >= 0.9, (n, values[n])
    assert pvalues[0] > 0.05 and pvalues[-1] < 0.01


def _bures_sqrtm(m1, c1, m2, c2):
    r2 = scipy.linalg.sqrtm(c2)
    cross = np.real(scipy.linalg.sqrtm(r2 @ c1 @ r2))
    return np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * cross)


def test_bures_wasserstein_matches_sqrtm():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    c1, c2 = a @ a.T + 0.1 * np.eye(4), b @ b.T
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    assert D.bures_wasserstein2(m1, c1, m2, c2) == pytest.approx(_bures_sqrtm(m1, c1, m2, c2), rel=1e-8)
    assert D.bures_wasserstein2(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-9)


def _otdd_direct(xs, ys, xt, yt):
    label = {}
    for a in np.unique(ys):
        for b in np.unique(yt):
            ca, cb = xs[ys == a], xt[yt == b]
            label[a, b] = _bures_sqrtm(ca.mean(0), np.cov(ca, rowvar=False), cb.mean(0), np.cov(cb, rowvar=False))
    cost = cdist(xs, xt, "sqeuclidean") + np.array([[label[a, b] for b in yt] for a in ys])
    return ot.emd2(np.full(len(xs), 1 / len(xs)), np.full(len(xt), 1 / len(xt)), cost)


def test_otdd_matches_direct_computation():
    # d=5; class sizes 3 (< d: factor path) and 12 (>= d: square-root path).
    rng = np.random.default_rng(8)
    xs = np.vstack([rng.normal(size=(3, 5)), rng.normal(loc=2, size=(12, 5))])
    ys = np.repeat([0, 1], [3, 12])
    xt = np.vstack([rng.normal(loc=0.5, size=(10, 5)), 1.5 * rng.normal(loc=-1, size=(4, 5))])
    yt = np.repeat([0, 2], [10, 4])
    assert D.otdd_distance(xs, ys, xt, yt) == pytest.approx(_otdd_direct(xs, ys, xt, yt), rel=1e-7)


def test_otdd_single_label_is_w2_plus_gaussian_term():
    rng = np.random.default_rng(9)
    xs = rng.exponential(size=(40, 3))
    reflected = 2 * xs.mean(0) - xs  # same mean and covariance, different point cloud
    zeros = np.zeros(40, dtype=int)
    w2 = D.wasserstein_distance(xs, reflected)
    assert w2 > 0.1
    assert D.otdd_distance(xs, zeros, reflected, zeros) == pytest.approx(w2, rel=1e-7, abs=1e-9)
    other = rng.normal(size=(35, 3))
    gauss = _bures_sqrtm(xs.mean(0), np.cov(xs, rowvar=False), other.mean(0), np.cov(other, rowvar=False))
    assert D.otdd_distance(xs, zeros, other, np.zeros(35, int)) == \
        pytest.approx(D.wasserstein_distance(xs, other) + gauss, rel=1e-7)


def test_otdd_label_structure():
    a = make_shift_domain("base", n_samples=200, n_features=8, n_classes=4)
    b = make_shift_domain("null", n_samples=200, n_features=8, n_classes=4)
    base = D.otdd_distance(a.X, a.y, b.X, b.y)
    shuffled = np.random.default_rng(0).permutation(b.y)
    assert D.otdd_distance(a.X, a.y, b.X, shuffled) > 1.5 * base
    # OTDD compares label *distributions*: renaming the target's classes changes nothing ...
    assert D.otdd_distance(a.X, a.y, b.X, (b.y + 1) % 4) == pytest.approx(base, rel=1e-9)
    # ... while the matched-class distance sees the renaming (a concept shift).
    same = D.class_gaussian_w2(a.X, a.y, b.X, b.y)
    assert D.class_gaussian_w2(a.X, a.y, b.X, (b.y + 1) % 4) > 5 * same


def test_class_gaussian_w2_matches_weighted_bures():
    rng = np.random.default_rng(10)
    xs, ys = rng.normal(size=(30, 3)), rng.integers(0, 3, 30)
    xt, yt = rng.normal(loc=1, size=(20, 3)), np.repeat([1, 2, 3], [5, 5, 10])
    terms = {k: _bures_sqrtm(xs[ys == k].mean(0), np.cov(xs[ys == k], rowvar=False),
                             xt[yt == k].mean(0), np.cov(xt[yt == k], rowvar=False)) for k in (1, 2)}
    assert D.class_gaussian_w2(xs, ys, xt, yt) == pytest.approx((terms[1] + terms[2]) / 2, rel=1e-8)


def test_domain_distances_and_table():
    a = make_shift_domain("base", n_samples=120, n_features=6, n_classes=3)
    c = make_shift_domain("covariate", covariate=1.0, n_samples=120, n_features=6, n_classes=3)
    no_labels = D.domain_distances(a.X, c.X)
    assert list(no_labels) == [n for n in D.DEFAULT_DISTANCES if not D.DISTANCES[n].needs_labels]
    both = D.domain_distances(a.X, c.X, a.y, c.y, which=["coral", "otdd"])
    assert both["coral"] == pytest.approx(D.coral_distance(a.X, c.X))
    assert both["otdd"] == pytest.approx(D.otdd_distance(a.X, a.y, c.X, c.y))
    with pytest.raises(TransferlabError, match="needs labels"):
        D.domain_distances(a.X, c.X, which=["otdd"])
    with pytest.raises(TransferlabError, match="unknown distance 'nope'"):
        D.domain_distances(a.X, c.X, which=["nope"])
    table = D.distance_table({"a": (a.X, a.y), "c": (c.X, c.y)}, [("a", "c"), ("c", "a")], which=["mmd2"])
    assert list(table.columns) == ["source", "target", "mmd2"] and len(table) == 2
    assert table["mmd2"].iloc[0] > 0.1


def test_bad_inputs_are_clear():
    x = np.zeros((10, 3))
    with pytest.raises(DataError, match="same number of features"):
        D.mmd2(x, np.zeros((10, 4)))
    with pytest.raises(DataError, match="2-d"):
        D.coral_distance(np.zeros(10), x)
    with pytest.raises(DataError, match="NaN"):
        D.wasserstein_distance(np.full((5, 3), np.nan), x)
    with pytest.raises(TransferlabError, match="bandwidth"):
        D.mmd2(x, x + 1, bandwidth=-1.0)
    with pytest.raises(DataError, match="labels"):
        D.otdd_distance(x, np.zeros(9), x, np.zeros(10))


def test_import_analysis_is_light():
    code = ("import sys, adapt.errors; before = set(sys.modules); import analysis; "
            "new = set(sys.modules) - before; "
            "print(sorted(m for m in ('torch', 'ot', 'sklearn', 'scipy') if m in new))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
