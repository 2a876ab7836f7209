"""Transferability scores: how well a source model's features or predictions suit a labelled target task.

Each score is computed from one forward pass of the *source* model over (labelled) target data, with no
training, so it can rank source models or predict which transfers will pay off. Higher is better for all
four. Inputs are numpy arrays or torch tensors; the computations are small (``O(n D²)`` at most) and run
in numpy ``float64``.

==========================  ===========================================  ================================
function                    paper                                        input
==========================  ===========================================  ================================
:func:`logme`               You et al., ICML 2021                        features ``(n, D)``, labels
:func:`leep`                Nguyen et al., ICML 2020                     source class probabilities
:func:`nce`                 Tran et al., ICCV 2019                       hard source predictions
:func:`h_score`             Bao et al., ICIP 2019                        features ``(n, D)``, labels
==========================  ===========================================  ================================
"""

from __future__ import annotations

import math

import numpy as np

from adapt.errors import DataError

from ._arrays import ArrayLike, as_labels, as_numpy, as_samples


def logme(features: ArrayLike, labels: ArrayLike, max_iter: int = 1000, tol: float = 1e-8) -> float:
    r"""LogME: mean per-sample log marginal evidence of a Bayesian linear model on the features.

    You, Liu, Wang & Long, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
    ICML 2021. For each class :math:`k`, the one-hot target :math:`y = \mathbb 1[\text{label} = k] \in
    \mathbb R^n` is modelled as :math:`y = Fw + \varepsilon` with prior :math:`w \sim \mathcal N(0,
    \alpha^{-1} I_D)` and noise :math:`\varepsilon \sim \mathcal N(0, \beta^{-1} I_n)`, so the evidence is
    :math:`p(y \mid F, \alpha, \beta) = \mathcal N(y;\, 0,\, \beta^{-1} I_n + \alpha^{-1} F F^\top)` and

    .. math::

        \log p(y \mid F, \alpha, \beta) = \frac n2 \log\beta + \frac D2 \log\alpha - \frac n2 \log 2\pi
          - \frac\beta2 \lVert Fm - y \rVert^2 - \frac\alpha2 m^\top m - \frac12 \log\lvert A\rvert,

    with :math:`A = \alpha I + \beta F^\top F` and :math:`m = \beta A^{-1} F^\top y`. :math:`\alpha,
    \beta` maximise the evidence by MacKay's fixed point (the paper's Algorithm 1), run in the eigenbasis
    of :math:`F^\top F` (thin SVD :math:`F = U \operatorname{diag}(\sigma) V^\top`, :math:`z = U^\top y`):

    .. math::

        \gamma = \sum_i \frac{\beta\sigma_i^2}{\alpha + \beta\sigma_i^2},\quad
        \alpha \leftarrow \frac{\gamma}{m^\top m},\quad
        \beta \leftarrow \frac{n - \gamma}{\lVert Fm - y\rVert^2},

    until the relative change of :math:`\alpha` and :math:`\beta` is below ``tol``. The score is
    :math:`\frac1K \sum_k \frac1n \log p(y_k \mid F, \alpha_k^*, \beta_k^*)` over the classes present.

    Parameters
    ----------
    features : array of shape (n, D)
        Source-model features of the target samples.
    labels : int array of shape (n,), or float array of shape (n, K)
        Class labels (one-hot targets are built for each class present), or real-valued targets, one
        regression problem per column.
    max_iter, tol : int, float
        Fixed-point iteration limit and relative tolerance.

    Returns
    -------
    float
        Mean log evidence per sample (higher: better transfer expected).
    """
    f = as_samples(features, "features")
    targets = _logme_targets(labels, len(f))
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma2 = np.zeros(f.shape[1])
    sigma2[: len(s)] = s**2
    evidences = [_log_evidence(u, s, sigma2, y, max_iter, tol) for y in targets.T]
    return float(np.mean(evidences))


def _logme_targets(labels: ArrayLike, n: int) -> np.ndarray:
    arr = as_numpy(labels)
    if arr.ndim == 2 and arr.shape[0] == n and arr.shape[1] > 1:
        return arr.astype(np.float64)
    y = as_labels(arr, n, "labels")
    return (y[:, None] == np.unique(y)[None, :]).astype(np.float64)


def _log_evidence(u: np.ndarray, s: np.ndarray, sigma2: np.ndarray, y: np.ndarray,
                  max_iter: int, tol: float) -> float:
    """Maximised log evidence / n for one target column (``sigma2``: all ``D`` eigenvalues of ``FᵀF``)."""
    n, dim = len(y), len(sigma2)
    z = u.T @ y                                   # coordinates of y in the column space of F
    outside = max(float(y @ y - z @ z), 0.0)      # ‖y‖² beyond the column space
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        shrink = beta * s / (alpha + beta * s**2)  # m = V diag(shrink) z
        mm = float(((shrink * z) ** 2).sum())
        res = float(((s * shrink * z - z) ** 2).sum()) + outside
        gamma = float((beta * sigma2 / (alpha + beta * sigma2)).sum())
        new_alpha, new_beta = gamma / max(mm, 1e-300), (n - gamma) / max(res, 1e-300)
        done = abs(new_alpha - alpha) <= tol * alpha and abs(new_beta - beta) <= tol * beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    shrink = beta * s / (alpha + beta * s**2)
    mm = float(((shrink * z) ** 2).sum())
    res = float(((s * shrink * z - z) ** 2).sum()) + outside
    evidence = (n / 2 * math.log(beta) + dim / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
                - beta / 2 * res - alpha / 2 * mm - 0.5 * np.log(alpha + beta * sigma2).sum())
    return float(evidence) / n


def leep(source_probs: ArrayLike, target_labels: ArrayLike) -> float:
    r"""LEEP: log expected empirical prediction (Nguyen, Hassner, Seeger & Archambeau, ICML 2020).

    With :math:`\theta(x) \in \Delta^{Z}` the source model's class probabilities on target sample
    :math:`x` and target labels :math:`y \in \mathcal Y`:

    .. math::

        \hat P(y, z) = \frac1n \sum_{i: y_i = y} \theta(x_i)_z,\qquad
        \hat P(y \mid z) = \frac{\hat P(y, z)}{\sum_{y'} \hat P(y', z)},\qquad
        \mathrm{LEEP} = \frac1n \sum_{i=1}^n \log \Big(\sum_{z} \hat P(y_i \mid z)\, \theta(x_i)_z\Big).

    Parameters
    ----------
    source_probs : array of shape (n, Z)
        Rows are probability vectors (non-negative, summing to 1 within ``1e-6``).
    target_labels : int array of shape (n,)

    Returns
    -------
    float
        ``<= 0``; higher is better.
    """
    theta = as_samples(source_probs, "source_probs")
    if theta.min() < 0 or not np.allclose(theta.sum(1), 1.0, atol=1e-6):
        raise DataError("source_probs: each row must be a probability vector (non-negative, summing to 1); "
                        "apply softmax to logits first")
    y = as_labels(target_labels, len(theta), "target_labels")
    classes, y_idx = np.unique(y, return_inverse=True)
    joint = np.zeros((len(classes), theta.shape[1]))
    np.add.at(joint, y_idx, theta)
    joint /= len(theta)
    pz = joint.sum(0)
    cond = np.divide(joint, pz, out=np.zeros_like(joint), where=pz > 0)   # P(y | z)
    eep = (theta * cond[y_idx]).sum(1)
    return float(np.mean(np.log(eep)))


def nce(source_labels_pred: ArrayLike, target_labels: ArrayLike) -> float:
    r"""NCE: negative conditional entropy of target labels given source-model labels.

    Tran, Nguyen & Hassner, "Transferability and Hardness of Supervised Classification Tasks", ICCV 2019.
    With :math:`z_i` the source model's (hard) predicted label and :math:`y_i` the target label of sample
    :math:`i`, and :math:`\hat P` the empirical joint distribution of :math:`(y, z)`:

    .. math::

        \mathrm{NCE}(Y \mid Z) = -H(Y \mid Z) = \sum_{y, z} \hat P(y, z) \log \frac{\hat P(y, z)}{\hat P(z)}.

    Returns
    -------
    float
        ``<= 0`` (natural log); 0 when ``z`` determines ``y``.
    """
    z = as_labels(source_labels_pred, len(as_numpy(source_labels_pred)), "source_labels_pred")
    y = as_labels(target_labels, len(z), "target_labels")
    _, zi = np.unique(z, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    joint = np.zeros((yi.max() + 1, zi.max() + 1))
    np.add.at(joint, (yi, zi), 1.0)
    joint /= len(y)
    pz = joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log((joint / pz)[nz])).sum())


def h_score(features: ArrayLike, labels: ArrayLike) -> float:
    r"""H-score: how much of the feature covariance the class-conditional means explain.

    Bao, Li, Huang, Wang, Zheng & Tong, "An Information-Theoretic Approach to Transferability in Task
    Transfer Learning", ICIP 2019:

    .. math::

        H(f) = \operatorname{tr}\big(\operatorname{cov}(f(X))^{+}\; \operatorname{cov}(\mathbb E[f(X) \mid Y])\big),

    where :math:`\mathbb E[f(X)\mid Y]` replaces each sample's features by the mean features of its class,
    both covariances use the ``n - 1`` denominator, and :math:`^{+}` is the Moore–Penrose pseudo-inverse
    (``np.linalg.pinv``, ``hermitian=True``), so rank-deficient features are fine.

    Returns
    -------
    float
        Between 0 and ``min(D, K - 1)``; higher is better.
    """
    f = as_samples(features, "features", min_rows=2)
    y = as_labels(labels, len(f), "labels")
    _, yi = np.unique(y, return_inverse=True)
    sums = np.zeros((yi.max() + 1, f.shape[1]))
    np.add.at(sums, yi, f)
    g = (sums / np.bincount(yi)[:, None])[yi]
    cov_f = np.atleast_2d(np.cov(f, rowvar=False))
    cov_g = np.atleast_2d(np.cov(g, rowvar=False))
    return float(np.trace(np.linalg.pinv(cov_f, hermitian=True) @ cov_g))
