"""Distances between two domains, each given as a sample matrix ``Xs (n, d)`` and ``Xt (m, d)``.

Every function takes numpy arrays or torch tensors and returns a Python ``float``. Kernel and cost
matrices are computed with torch on ``cuda`` when available (``float32``), else on the CPU in ``float64``;
pass ``device="cpu"`` to force the CPU. Methods whose cost grows faster than ``n²`` subsample each domain to
``max_samples`` rows (seeded by ``seed``); the cap is part of each signature.

Units: every optimal-transport quantity here is the optimal *cost*, i.e. ``W_p^p`` — for ``p = 2`` that is
``W₂²`` in squared feature units (``wasserstein_distance``, ``otdd_distance``, ``class_gaussian_w2`` and
``bures_wasserstein2`` all return squared distances), consistent with ``mmd2`` (squared MMD) and
``coral_distance`` (squared Frobenius norm).

======================  =====================================  =============================  =================
name (``DISTANCES``)    function                               cost                           labels
======================  =====================================  =============================  =================
``proxy_a``             :func:`proxy_a_distance`               k-fold linear classifier       no
``proxy_a_knn``         :func:`proxy_a_distance` (k-NN)        k-fold 5-NN classifier         no
``mmd2``                :func:`mmd2`                           ``O((n+m)² d)``, chunked       no
``mmd2_linear``         :func:`mmd2_linear`                    ``O((n+m) d)``                 no
``mmd_pvalue``          :func:`mmd_permutation_test`           ``O(B (n+m)²)``, subsampled    no
``coral``               :func:`coral_distance`                 ``O((n+m) d²)``                no
``wasserstein``         :func:`wasserstein_distance`           ``O(n³)`` EMD, subsampled      no
``otdd``                :func:`otdd_distance`                  EMD + ``C_s C_t`` SVDs         source and target
``class_w2``            :func:`class_gaussian_w2`              ``C`` SVDs                     source and target
======================  =====================================  =============================  =================

``otdd`` and ``class_w2`` read the *target* labels: oracle quantities for analysing a transfer matrix, not
label-free model-selection criteria.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt.errors import TransferlabError

from ._arrays import ArrayLike, as_labels, as_pair, backend, sq_dists, subsample, to_tensor

Bandwidth = Any  # "median" | float | sequence of floats

#: Kernel/cost blocks are computed this many entries at a time (256 MiB in float64).
_CHUNK_ENTRIES = 2**25


# --------------------------------------------------------------------------------------------- proxy A
def proxy_a_distance(
    Xs: ArrayLike,
    Xt: ArrayLike,
    seed: int = 0,
    classifier: str = "logistic",
    n_folds: int = 5,
    max_samples: int | None = 5000,
    C: float = 1.0,
) -> float:
    r"""Proxy A-distance: how well a linear domain classifier tells the two samples apart.

    .. math::

        \hat d_{\mathcal A} = 2\,(1 - 2\,\epsilon), \qquad \text{clipped to } [0, 2],

    where :math:`\epsilon` is the held-out error of a classifier trained to predict the domain
    (Ben-David et al., "Analysis of representations for domain adaptation", NIPS 2007; "A theory of
    learning from different domains", Machine Learning 2010). ``0``: indistinguishable domains (error
    0.5); ``2``: perfectly separable ones.

    Recipe: a balanced subsample of ``k = min(n, m, max_samples)`` points from each domain (seeded);
    features standardised inside each training fold; ``classifier="logistic"`` (L2 logistic regression,
    inverse strength ``C``) or ``"linear_svm"`` (``LinearSVC``, as in Ben-David et al.); stratified
    ``n_folds``-fold cross-validation (shuffled with ``seed``), so every point is predicted exactly once by a
    classifier that did not see it, and :math:`\epsilon` is the error over all ``2k`` held-out predictions.

    Parameters
    ----------
    Xs, Xt : array of shape (n, d) and (m, d)
    seed : int
        Seeds the subsample and the fold assignment.
    classifier : {"logistic", "linear_svm", "knn"}
        ``"knn"`` (5 nearest neighbours, Euclidean on the fold-standardised inputs) is nonlinear: after
        *per-domain* z-scoring (Office-Caltech10's standard preprocessing) every feature has mean 0 and variance
        1 in both domains, and a linear classifier is blind — ``proxy_a`` reads 0 for all 12 Office pairs,
        ``proxy_a_knn`` 0.05 (dslr–webcam, the known closest pair) to 0.31 (amazon–webcam).
    n_folds : int
        Number of cross-validation folds (``>= 2``).
    max_samples : int or None
        Cap on the points drawn from each domain.
    C : float
        Inverse regularisation strength of the classifier.

    Returns
    -------
    float
        :math:`\hat d_{\mathcal A} \in [0, 2]`.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if n_folds < 2:
        raise TransferlabError(f"proxy_a_distance: n_folds must be >= 2, got {n_folds}")
    xs, xt = as_pair(Xs, Xt, min_rows=n_folds)
    rng = np.random.default_rng(seed)
    k = min(len(xs), len(xt), max_samples or max(len(xs), len(xt)))
    x = np.concatenate([xs[rng.choice(len(xs), k, replace=False)], xt[rng.choice(len(xt), k, replace=False)]])
    y = np.repeat([0, 1], k)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(_domain_classifier(classifier, C), x, y, cv=folds)
    error = float(np.mean(pred != y))
    return float(np.clip(2.0 * (1.0 - 2.0 * error), 0.0, 2.0))


KNN_NEIGHBOURS = 5


def _domain_classifier(name: str, C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    if name == "linear_svm":
        return make_pipeline(StandardScaler(), LinearSVC(C=C, max_iter=20000))
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return make_pipeline(StandardScaler(), KNeighborsClassifier(KNN_NEIGHBOURS))
    raise TransferlabError(f"proxy_a_distance: classifier must be 'logistic', 'linear_svm' or 'knn', got {name!r}")


# --------------------------------------------------------------------------------------------- MMD
def median_bandwidth(Xs: ArrayLike, Xt: ArrayLike, max_samples: int = 1000, seed: int = 0) -> float:
    r"""Median heuristic: the median pairwise Euclidean distance in the pooled sample.

    .. math:: \sigma = \operatorname{median}\{\lVert z_i - z_j \rVert : i < j\},\quad z = X_s \cup X_t

    (Gretton et al., JMLR 2012, Sec. 8). The pooled sample is subsampled to ``max_samples`` rows (seeded).
    Because it depends on the pooled sample only, it is the same for every relabelling of the pool, which
    keeps :func:`mmd_permutation_test` exact. Falls back to the mean non-zero distance, then to ``1.0``,
    when the median is 0 (many duplicate points).
    """
    xs, xt = as_pair(Xs, Xt)
    z = np.concatenate([xs, xt])
    z = z[subsample(z, max_samples, np.random.default_rng(seed))]
    dist = np.sqrt(_np_sq_dists(z, z)[np.triu_indices(len(z), k=1)])
    if dist.size == 0:
        return 1.0
    sigma = float(np.median(dist))
    if sigma > 0:
        return sigma
    positive = dist[dist > 0]
    return float(positive.mean()) if positive.size else 1.0


def _np_sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def _bandwidths(bandwidth: Bandwidth, kernel: str, xs: np.ndarray, xt: np.ndarray) -> tuple[float, ...]:
    if kernel == "linear":
        return ()
    if kernel != "gaussian":
        raise TransferlabError(f"unknown kernel {kernel!r}; expected 'gaussian' or 'linear'")
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise TransferlabError(f"bandwidth must be 'median', a number or a list of numbers, got {bandwidth!r}")
        return (median_bandwidth(xs, xt),)
    values = (bandwidth,) if np.isscalar(bandwidth) else tuple(bandwidth)
    if not values or not all(np.isscalar(v) and float(v) > 0 for v in values):
        raise TransferlabError(f"bandwidths must be positive numbers, got {bandwidth!r}")
    return tuple(float(v) for v in values)


def _kernel(a, b, kernel: str, sigmas: Sequence[float]):
    """Kernel matrix ``k(a_i, b_j)``: the Gaussian kernel summed over ``sigmas``, or the linear kernel."""
    if kernel == "linear":
        return a @ b.T
    d2 = sq_dists(a, b)
    out = None
    for s in sigmas:
        k = (-d2 / (2.0 * s * s)).exp_()
        out = k if out is None else out.add_(k)
    return out


def _kernel_rows(a, b, kernel: str, sigmas: Sequence[float]):
    """Row-wise kernel ``k(a_i, b_i)`` (a vector)."""
    if kernel == "linear":
        return (a * b).sum(1)
    d2 = ((a - b) ** 2).sum(1)
    return sum((-d2 / (2.0 * s * s)).exp() for s in sigmas)


def _kernel_sum(a, b, kernel: str, sigmas: Sequence[float], drop_diagonal: bool = False) -> float:
    """``Σ_ij k(a_i, b_j)`` computed in row blocks of at most ``_CHUNK_ENTRIES`` entries.

    With ``b is a`` only the blocks on and above the diagonal are computed (the kernel is symmetric);
    ``drop_diagonal`` then skips the ``i == j`` terms.
    """
    torch = backend()[0]
    rows = max(1, _CHUNK_ENTRIES // max(len(b), 1))
    symmetric = b is a
    total = 0.0
    for i0 in range(0, len(a), rows):
        i1 = min(i0 + rows, len(a))
        block = _kernel(a[i0:i1], b[i0:] if symmetric else b, kernel, sigmas)
        if not symmetric:
            total += float(block.sum(dtype=torch.float64))
            continue
        square = block[:, : i1 - i0]
        if drop_diagonal:
            square.fill_diagonal_(0.0)
        total += float(square.sum(dtype=torch.float64)) + 2.0 * float(block[:, i1 - i0:].sum(dtype=torch.float64))
    return total


def mmd2(
    Xs: ArrayLike,
    Xt: ArrayLike,
    kernel: str = "gaussian",
    bandwidth: Bandwidth = "median",
    unbiased: bool = True,
    device: str | None = None,
) -> float:
    r"""Squared maximum mean discrepancy between two samples.

    Unbiased U-statistic (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012, Lemma 6):

    .. math::

        \widehat{\mathrm{MMD}}^2_u = \frac{1}{n(n-1)}\sum_{i\ne j} k(x_i, x_j)
          + \frac{1}{m(m-1)}\sum_{i\ne j} k(y_i, y_j) - \frac{2}{nm}\sum_{i,j} k(x_i, y_j),

    with :math:`x = X_s`, :math:`y = X_t`. It can be slightly negative when the distributions are equal.
    ``unbiased=False`` gives the biased V-statistic (diagonal kept, ``1/n²`` and ``1/m²``), always ``>= 0``.

    Kernels: ``"gaussian"`` :math:`k(x, y) = \sum_{\sigma} \exp(-\lVert x-y\rVert^2 / 2\sigma^2)` over
    the bandwidths given (``"median"``: :func:`median_bandwidth`; a float; or a list for a multi-bandwidth
    sum), or ``"linear"`` :math:`k(x, y) = x^\top y`. Cost ``O((n+m)^2 d)`` time, ``O(n + m)`` memory
    beyond a fixed-size block (the kernel matrix is never held whole).

    Parameters
    ----------
    Xs, Xt : array of shape (n, d) and (m, d), ``n, m >= 2``
    kernel : {"gaussian", "linear"}
    bandwidth : "median", float or list of float
    unbiased : bool
    device : str, optional
        Torch device (default: ``cuda`` if available, else ``cpu``).

    Returns
    -------
    float
    """
    xs, xt = as_pair(Xs, Xt, min_rows=2)
    sigmas = _bandwidths(bandwidth, kernel, xs, xt)
    a, b = to_tensor(xs, device), to_tensor(xt, device)
    n, m = len(xs), len(xt)
    kxx = _kernel_sum(a, a, kernel, sigmas, drop_diagonal=unbiased)
    kyy = _kernel_sum(b, b, kernel, sigmas, drop_diagonal=unbiased)
    kxy = _kernel_sum(a, b, kernel, sigmas)
    if unbiased:
        return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2.0 * kxy / (n * m)
    return kxx / n**2 + kyy / m**2 - 2.0 * kxy / (n * m)


def mmd2_linear(
    Xs: ArrayLike,
    Xt: ArrayLike,
    kernel: str = "gaussian",
    bandwidth: Bandwidth = "median",
    device: str | None = None,
) -> float:
    r"""Linear-time unbiased estimate of the squared MMD (Gretton et al., JMLR 2012, Lemma 14).

    With :math:`m_2 = \lfloor \min(n, m) / 2 \rfloor` and the samples taken in the order given,

    .. math::

        \widehat{\mathrm{MMD}}^2_l = \frac{1}{m_2} \sum_{i=1}^{m_2} h(z_{2i-1}, z_{2i}), \qquad
        h(z_a, z_b) = k(x_a, x_b) + k(y_a, y_b) - k(x_a, y_b) - k(x_b, y_a),

    where :math:`z_i = (x_i, y_i)`. Higher variance than :func:`mmd2` but ``O(n d)``: for very large
    samples. Rows beyond ``2 m_2`` are unused (shuffle first if the order is not random). Kernel and
    bandwidth as in :func:`mmd2` (the median heuristic looks at a subsample of 1000 pooled points).
    """
    xs, xt = as_pair(Xs, Xt, min_rows=2)
    sigmas = _bandwidths(bandwidth, kernel, xs, xt)
    half = min(len(xs), len(xt)) // 2
    a, b = to_tensor(xs[: 2 * half], device), to_tensor(xt[: 2 * half], device)
    x1, x2, y1, y2 = a[0::2], a[1::2], b[0::2], b[1::2]
    h = (_kernel_rows(x1, x2, kernel, sigmas) + _kernel_rows(y1, y2, kernel, sigmas)
         - _kernel_rows(x1, y2, kernel, sigmas) - _kernel_rows(x2, y1, kernel, sigmas))
    return float(h.mean())


def mmd_permutation_test(
    Xs: ArrayLike,
    Xt: ArrayLike,
    n_permutations: int = 1000,
    seed: int = 0,
    kernel: str = "gaussian",
    bandwidth: Bandwidth = "median",
    max_samples: int | None = 2000,
    batch_size: int | None = None,
    device: str | None = None,
) -> tuple[float, float]:
    r"""Kernel two-sample permutation test of :math:`P_s = P_t` with the unbiased :math:`\mathrm{MMD}^2_u`.

    The joint kernel matrix :math:`K` of the pooled sample is computed once (bandwidth from the pooled
    sample, hence permutation-invariant); each permutation relabels which ``n`` points form the first
    sample. For a membership vector :math:`s \in \{0,1\}^{n+m}` and :math:`K_0` = :math:`K` with zero
    diagonal, :math:`\sum_{i \ne j \in S} k = s^\top K_0 s`, so a batch of ``B`` permutations costs one
    ``(B, N) @ (N, N)`` product. The p-value counts the observed statistic as one of the permutations
    (Phipson & Smyth 2010), so the test is exact at every level:

    .. math:: p = \frac{1 + \#\{b : \mathrm{MMD}^2_u(\pi_b) \ge \mathrm{MMD}^2_u\}}{1 + B}.

    Gretton et al., "A Kernel Two-Sample Test", JMLR 2012. Each domain is first subsampled to
    ``max_samples`` rows (seeded): the kernel matrix takes ``(n+m)²`` memory.

    Parameters
    ----------
    Xs, Xt : array of shape (n, d) and (m, d), ``n, m >= 2``
    n_permutations : int
    seed : int
        Seeds the subsample and the permutations.
    kernel, bandwidth : see :func:`mmd2`
    max_samples : int or None
    batch_size : int, optional
        Permutations per batch (default: as many as fit in ~32 MB of membership vectors).
    device : str, optional

    Returns
    -------
    (float, float)
        ``(mmd2, p_value)``.
    """
    if n_permutations < 1:
        raise TransferlabError(f"n_permutations must be >= 1, got {n_permutations}")
    xs, xt = as_pair(Xs, Xt, min_rows=2)
    rng = np.random.default_rng(seed)
    xs, xt = xs[subsample(xs, max_samples, rng)], xt[subsample(xt, max_samples, rng)]
    sigmas = _bandwidths(bandwidth, kernel, xs, xt)
    torch, dev, dtype = backend(device)
    z = to_tensor(np.concatenate([xs, xt]), device)
    k0 = _kernel(z, z, kernel, sigmas)
    k0.fill_diagonal_(0.0)
    stat = _membership_mmd(k0, len(xs), len(xt))
    first = torch.zeros(1, len(z), dtype=dtype, device=dev)
    first[0, : len(xs)] = 1.0
    observed = float(stat(first)[0])
    tol = 1e3 * torch.finfo(dtype).eps * max(1.0, float(k0.abs().max()))
    batch = batch_size or max(1, min(n_permutations, 2**22 // len(z)))
    gen = torch.Generator().manual_seed(int(seed))
    exceed, done = 0, 0
    while done < n_permutations:
        b = min(batch, n_permutations - done)
        perm = torch.argsort(torch.rand(b, len(z), generator=gen), dim=1)[:, : len(xs)].to(dev)
        member = torch.zeros(b, len(z), dtype=dtype, device=dev).scatter_(1, perm, 1.0)
        exceed += int((stat(member) >= observed - tol).sum())
        done += b
    return observed, (1 + exceed) / (1 + n_permutations)


def _membership_mmd(k0, n: int, m: int) -> Callable:
    """``stat(S)``: unbiased MMD² for each row of a ``(B, N)`` 0/1 membership matrix ``S``."""
    row = k0.sum(1)
    total = row.sum()

    def stat(member):
        sxx = ((member @ k0) * member).sum(1)  # Σ_{i≠j∈S} k
        sr = member @ row                     # Σ_{i∈S, j} k
        sxy = sr - sxx
        syy = total - 2.0 * sr + sxx
        return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)

    return stat


# --------------------------------------------------------------------------------------------- CORAL
def coral_distance(Xs: ArrayLike, Xt: ArrayLike, device: str | None = None) -> float:
    r"""CORAL distance: squared Frobenius distance of the feature covariances.

    .. math:: d_{\mathrm{CORAL}} = \frac{1}{4d^2}\,\lVert C_S - C_T \rVert_F^2

    with :math:`C = \frac{1}{n-1} (X - \bar X)^\top (X - \bar X)` (the ``n - 1`` denominator of
    ``np.cov``/``torch.cov``). Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain
    Adaptation", ECCV-W 2016, Eq. 1. Cost ``O((n + m) d²)``.
    """
    xs, xt = as_pair(Xs, Xt, min_rows=2)
    torch = backend(device)[0]
    a, b = to_tensor(xs, device), to_tensor(xt, device)
    d = xs.shape[1]
    cs, ct = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))
    return float(((cs - ct) ** 2).sum() / (4.0 * d * d))


# --------------------------------------------------------------------------------------------- OT
def wasserstein_distance(
    Xs: ArrayLike,
    Xt: ArrayLike,
    p: int = 2,
    reg: float | None = None,
    max_samples: int | None = 2000,
    seed: int = 0,
    method: str = "sinkhorn_log",
    num_iter_max: int | None = None,
    device: str | None = None,
) -> float:
    r"""Optimal-transport cost :math:`W_p^p` between the two empirical distributions (uniform weights).

    .. math::

        W_p^p(\hat P_s, \hat P_t) = \min_{\gamma \in \Pi(a, b)} \sum_{ij} \gamma_{ij}\, \lVert x_i - y_j\rVert^p,
        \qquad a = \tfrac{1}{n}\mathbf 1_n,\; b = \tfrac{1}{m}\mathbf 1_m

    (Villani 2009; Peyré & Cuturi, "Computational Optimal Transport", 2019). ``p=2`` (default) returns
    **W₂²** (squared Euclidean ground cost, squared feature units); ``p=1`` returns :math:`W_1`.

    ``reg=None``: exact EMD (``ot.emd2``, network simplex, ``O(n³)`` worst case). ``reg > 0``: entropic OT
    (Cuturi, NeurIPS 2013) via ``ot.sinkhorn2(a, b, M, reg, method=method)``, returning the transport cost
    :math:`\langle \gamma_{reg}, M\rangle` (which exceeds :math:`W_p^p` and tends to it as ``reg → 0``);
    ``reg`` is in the units of the cost matrix (for ``p=2``, squared feature units — scale it with the
    data, e.g. a few percent of the mean squared distance). The default ``sinkhorn_log`` is stable for
    small ``reg``.

    Each domain is subsampled to ``max_samples`` rows first (seeded): EMD at 2000 points takes seconds,
    at 10⁴ minutes, and the cost matrix needs ``n·m`` memory.

    Returns
    -------
    float
        :math:`W_p^p` (``W₂²`` for ``p=2``).
    """
    if p not in (1, 2):
        raise TransferlabError(f"wasserstein_distance: p must be 1 or 2, got {p!r}")
    xs, xt = as_pair(Xs, Xt)
    rng = np.random.default_rng(seed)
    xs, xt = xs[subsample(xs, max_samples, rng)], xt[subsample(xt, max_samples, rng)]
    cost = sq_dists(to_tensor(xs, device), to_tensor(xt, device))
    if p == 1:
        cost = cost.sqrt()
    return _ot_cost(cost, reg, method, num_iter_max)


def _ot_cost(cost, reg: float | None, method: str, num_iter_max: int | None) -> float:
    """EMD (``reg=None``) or Sinkhorn cost for a cost tensor with uniform marginals."""
    import ot

    torch = backend()[0]
    n, m = cost.shape
    if reg is None:
        c = cost.detach().cpu().double().numpy()
        return float(ot.emd2(np.full(n, 1.0 / n), np.full(m, 1.0 / m), c, numItermax=num_iter_max or 10**7))
    if not reg > 0:
        raise TransferlabError(f"reg must be a positive number or None, got {reg!r}")
    a = torch.full((n,), 1.0 / n, dtype=cost.dtype, device=cost.device)
    b = torch.full((m,), 1.0 / m, dtype=cost.dtype, device=cost.device)
    val = ot.sinkhorn2(a, b, cost, float(reg), method=method, numItermax=num_iter_max or 10**4, stopThr=1e-9)
    return float(val)


def bures_wasserstein2(mean1: ArrayLike, cov1: ArrayLike, mean2: ArrayLike, cov2: ArrayLike) -> float:
    r"""Closed-form :math:`W_2^2` between two Gaussians (Bures–Wasserstein; Dowson & Landau 1982).

    .. math::

        W_2^2(\mathcal N(\mu_1, \Sigma_1), \mathcal N(\mu_2, \Sigma_2)) = \lVert \mu_1 - \mu_2 \rVert^2
          + \operatorname{tr}\Big(\Sigma_1 + \Sigma_2 - 2\big(\Sigma_2^{1/2}\Sigma_1\Sigma_2^{1/2}\big)^{1/2}\Big)

    The trace term is computed as the nuclear norm :math:`\lVert \Sigma_1^{1/2}\Sigma_2^{1/2}\rVert_*`
    (same eigenvalues), with symmetric square roots from ``eigh``.
    """
    m1, m2 = np.asarray(mean1, np.float64).ravel(), np.asarray(mean2, np.float64).ravel()
    r1, r2 = _psd_sqrt(np.atleast_2d(cov1)), _psd_sqrt(np.atleast_2d(cov2))
    cross = np.linalg.svd(r1 @ r2, compute_uv=False).sum()
    value = ((m1 - m2) ** 2).sum() + np.trace(r1 @ r1) + np.trace(r2 @ r2) - 2.0 * cross
    return float(max(value, 0.0))


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((np.asarray(cov, np.float64) + np.asarray(cov, np.float64).T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


@dataclass
class _ClassGaussians:
    """Per-class mean and covariance factor ``F`` (``F Fᵀ = Σ``, zero-padded to a common width)."""

    classes: np.ndarray   # (C,)
    means: np.ndarray     # (C, d)
    factors: np.ndarray   # (C, d, k)
    weights: np.ndarray   # (C,) class frequencies


def _class_gaussians(x: np.ndarray, y: np.ndarray) -> _ClassGaussians:
    """Gaussian (mean, covariance with ``n_c - 1`` denominator) of each class; singletons get ``Σ = 0``.

    The factor is the scaled centred data ``(X_c - μ_c)ᵀ / √(n_c - 1)`` (width ``n_c``) when ``n_c < d``,
    else the symmetric square root ``Σ^{1/2}`` (width ``d``): both satisfy ``F Fᵀ = Σ``.
    """
    classes, counts = np.unique(y, return_counts=True)
    d = x.shape[1]
    width = int(min(d, counts.max()))
    means = np.zeros((len(classes), d))
    factors = np.zeros((len(classes), d, width))
    for i, c in enumerate(classes):
        xc = x[y == c]
        means[i] = xc.mean(0)
        if len(xc) < 2:
            continue
        centred = (xc - means[i]) / np.sqrt(len(xc) - 1)
        f = centred.T if len(xc) < d else _psd_sqrt(centred.T @ centred)
        factors[i, :, : f.shape[1]] = f
    return _ClassGaussians(classes, means, factors, counts / counts.sum())


def _bures_pairs(src: _ClassGaussians, tgt: _ClassGaussians, i_s: np.ndarray, i_t: np.ndarray,
                 device: str | None) -> np.ndarray:
    r"""Bures–Wasserstein :math:`W_2^2` between source class ``i_s[p]`` and target class ``i_t[p]`` for each p.

    Trace term: the nonzero eigenvalues of :math:`\Sigma_1\Sigma_2 = F_1F_1^\top F_2F_2^\top` are the
    squared singular values of :math:`F_1^\top F_2`, so each pair is one small SVD (``k × k``,
    ``k ≤ min(d, n_c)``), batched.
    """
    torch = backend(device)[0]
    fs, ft = to_tensor(src.factors[i_s], device), to_tensor(tgt.factors[i_t], device)
    nuclear = torch.linalg.svdvals(fs.transpose(1, 2) @ ft).sum(-1)
    means = ((to_tensor(src.means[i_s], device) - to_tensor(tgt.means[i_t], device)) ** 2).sum(1)
    out = means + (fs**2).sum((1, 2)) + (ft**2).sum((1, 2)) - 2.0 * nuclear
    return out.clamp_min_(0.0).cpu().double().numpy()


def _class_distance_matrix(src: _ClassGaussians, tgt: _ClassGaussians, device: str | None) -> np.ndarray:
    """``(C_s, C_t)`` matrix of Bures–Wasserstein :math:`W_2^2` between all source and target classes."""
    n_t = len(tgt.classes)
    rows = [_bures_pairs(src, tgt, np.full(n_t, i), np.arange(n_t), device) for i in range(len(src.classes))]
    return np.stack(rows)


def otdd_distance(
    Xs: ArrayLike,
    ys: ArrayLike,
    Xt: ArrayLike,
    yt: ArrayLike,
    max_samples: int | None = 2000,
    seed: int = 0,
    reg: float | None = None,
    device: str | None = None,
) -> float:
    r"""Label-aware OT distance between datasets, in the spirit of OTDD, returned squared.

    Alvarez-Melis & Fusi, "Geometric Dataset Distances via Optimal Transport", NeurIPS 2020: each point is
    a pair :math:`z = (x, y)`, the label :math:`y` standing for its class-conditional distribution
    :math:`\alpha_y = P(x \mid y)`, and the ground cost (their Eq. 3 with :math:`p = 2`) is

    .. math::

        c\big((x, y), (x', y')\big) = \lVert x - x' \rVert^2 + W_2^2(\alpha_y, \alpha'_{y'}),
        \qquad \mathrm{OTDD}^2 = \min_{\gamma \in \Pi(a, b)} \sum_{ij} \gamma_{ij}\, c(z_i, z'_j).

    Simplifications (documented choices, not the reference implementation): each :math:`\alpha_y` is
    replaced by the Gaussian :math:`\mathcal N(\mu_y, \Sigma_y)` fitted to that class on the *full* samples
    (the paper's Gaussian approximation), so :math:`W_2^2(\alpha_y, \alpha'_{y'})` is the Bures–Wasserstein
    closed form (:func:`bures_wasserstein2`); the outer problem is exact EMD (or Sinkhorn with ``reg``)
    on uniform weights, after subsampling each domain to ``max_samples`` points (seeded); no feature
    normalisation. Labels need not share a vocabulary across domains: the cost compares distributions, so
    the value does not change when one domain's classes are renamed consistently.

    Parameters
    ----------
    Xs, Xt : array of shape (n, d) and (m, d)
    ys, yt : int array of shape (n,) and (m,)
    max_samples : int or None
    seed : int
    reg : float, optional
        Entropic regularisation for the outer problem (see :func:`wasserstein_distance`).
    device : str, optional

    Returns
    -------
    float
        :math:`\mathrm{OTDD}^2` in squared feature units.
    """
    xs, xt = as_pair(Xs, Xt)
    ys, yt = as_labels(ys, len(xs), "ys"), as_labels(yt, len(xt), "yt")
    src, tgt = _class_gaussians(xs, ys), _class_gaussians(xt, yt)
    label_cost = _class_distance_matrix(src, tgt, device)
    rng = np.random.default_rng(seed)
    i_s, i_t = subsample(xs, max_samples, rng), subsample(xt, max_samples, rng)
    torch = backend(device)[0]
    cost = sq_dists(to_tensor(xs[i_s], device), to_tensor(xt[i_t], device))
    cls_s, cls_t = np.searchsorted(src.classes, ys[i_s]), np.searchsorted(tgt.classes, yt[i_t])
    rows, cols = (torch.as_tensor(c, device=cost.device) for c in (cls_s, cls_t))
    cost += to_tensor(label_cost, device)[rows[:, None], cols[None, :]]
    return _ot_cost(cost, reg, "sinkhorn_log", None)


def class_gaussian_w2(
    Xs: ArrayLike, ys: ArrayLike, Xt: ArrayLike, yt: ArrayLike, device: str | None = None
) -> float:
    r"""Matched-class conditional shift: target-weighted Bures–Wasserstein between same-label Gaussians.

    .. math::

        d = \sum_{k \in \mathcal Y_s \cap \mathcal Y_t} \hat p_t(k)\,
            W_2^2\big(\mathcal N(\mu^s_k, \Sigma^s_k), \mathcal N(\mu^t_k, \Sigma^t_k)\big)
            \Big/ \sum_{k \in \mathcal Y_s \cap \mathcal Y_t} \hat p_t(k)

    Unlike :func:`otdd_distance` it *assumes* class index ``k`` means the same class in both domains (the
    transferlab data convention), so it sees a concept shift that only renames classes, to which OTDD and
    every label-free distance are blind. A diagnostic in the spirit of class-conditional alignment
    (e.g. Long et al., "Conditional Adversarial Domain Adaptation", NeurIPS 2018); returns ``nan`` when the
    domains share no class.
    """
    xs, xt = as_pair(Xs, Xt)
    src = _class_gaussians(xs, as_labels(ys, len(xs), "ys"))
    tgt = _class_gaussians(xt, as_labels(yt, len(xt), "yt"))
    shared, i_s, i_t = np.intersect1d(src.classes, tgt.classes, return_indices=True)
    if shared.size == 0:
        return float("nan")
    cost = _bures_pairs(src, tgt, i_s, i_t, device)
    w = tgt.weights[i_t]
    return float((w * cost).sum() / w.sum())


# --------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class _Distance:
    fn: Callable[..., float]
    needs_labels: bool = False


def _mmd_pvalue(xs, xt, seed, device):
    return mmd_permutation_test(xs, xt, n_permutations=500, seed=seed, device=device)[1]


#: Distances by name, for :func:`domain_distances` (add one here to reach the CLI and the report).
DISTANCES: dict[str, _Distance] = {
    "proxy_a": _Distance(lambda xs, xt, seed, device: proxy_a_distance(xs, xt, seed=seed)),
    "proxy_a_knn": _Distance(lambda xs, xt, seed, device: proxy_a_distance(xs, xt, seed=seed, classifier="knn")),
    "mmd2": _Distance(lambda xs, xt, seed, device: mmd2(xs, xt, device=device)),
    "mmd2_linear": _Distance(lambda xs, xt, seed, device: mmd2_linear(xs, xt, device=device)),
    "mmd_pvalue": _Distance(_mmd_pvalue),
    "coral": _Distance(lambda xs, xt, seed, device: coral_distance(xs, xt, device=device)),
    "wasserstein": _Distance(lambda xs, xt, seed, device: wasserstein_distance(xs, xt, seed=seed, device=device)),
    "otdd": _Distance(lambda xs, ys, xt, yt, seed, device: otdd_distance(xs, ys, xt, yt, seed=seed, device=device),
                      needs_labels=True),
    "class_w2": _Distance(lambda xs, ys, xt, yt, seed, device: class_gaussian_w2(xs, ys, xt, yt, device=device),
                          needs_labels=True),
}
DEFAULT_DISTANCES = ("proxy_a", "proxy_a_knn", "mmd2", "mmd_pvalue", "coral", "wasserstein", "otdd", "class_w2")


def domain_distances(
    Xs: ArrayLike,
    Xt: ArrayLike,
    ys: ArrayLike | None = None,
    yt: ArrayLike | None = None,
    which: Iterable[str] | None = None,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, float]:
    """Several distances between two samples at once, by name (see ``DISTANCES`` and the module table).

    Parameters
    ----------
    Xs, Xt : array of shape (n, d) and (m, d)
    ys, yt : int array, optional
        Labels; the label-aware distances (``otdd``, ``class_w2``) need both.
    which : iterable of str, optional
        Names to compute, in order. Default ``DEFAULT_DISTANCES``, leaving out the label-aware ones when
        labels are missing; asking for a label-aware one explicitly without labels is an error.
    seed : int
        Passed to the subsampling/permutation/cross-validation of each distance.
    device : str, optional

    Returns
    -------
    dict of str to float
        ``{name: value}`` in the order of ``which``.
    """
    has_labels = ys is not None and yt is not None
    names = list(which) if which is not None else [
        n for n in DEFAULT_DISTANCES if has_labels or not DISTANCES[n].needs_labels]
    unknown = [n for n in names if n not in DISTANCES]
    if unknown:
        raise TransferlabError(f"unknown distance {unknown[0]!r}; expected one of {sorted(DISTANCES)}")
    xs, xt = as_pair(Xs, Xt, min_rows=2)
    out: dict[str, float] = {}
    for name in names:
        spec = DISTANCES[name]
        if spec.needs_labels and not has_labels:
            raise TransferlabError(f"distance {name!r} needs labels: pass ys and yt")
        args = (xs, ys, xt, yt) if spec.needs_labels else (xs, xt)
        out[name] = float(spec.fn(*args, seed=seed, device=device))
    return out


def distance_table(
    data: Mapping[str, tuple[ArrayLike, ArrayLike | None]],
    pairs: Iterable[tuple[str, str]],
    which: Iterable[str] | None = None,
    seed: int = 0,
    device: str | None = None,
):
    """:func:`domain_distances` for each ``(source, target)`` pair, as a DataFrame.

    Parameters
    ----------
    data : mapping of str to (X, y)
        Each domain's samples and labels (``y`` may be ``None``).
    pairs : iterable of (str, str)

    Returns
    -------
    pandas.DataFrame
        Columns ``source, target`` then one column per distance; the input of :mod:`analysis.predictors`.
    """
    import pandas as pd

    rows = []
    for source, target in pairs:
        for name in (source, target):
            if name not in data:
                raise TransferlabError(f"distance_table: no data for domain {name!r}; have {sorted(data)}")
        (xs, ys), (xt, yt) = data[source], data[target]
        rows.append({"source": source, "target": target,
                     **domain_distances(xs, xt, ys, yt, which=which, seed=seed, device=device)})
    return pd.DataFrame(rows)
