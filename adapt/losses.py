"""Domain-adaptation losses as small ``nn.Module``s: the math, the paper and the shapes in each docstring.

- :class:`GradientReverse` / :func:`grad_reverse` — the gradient reversal layer (Ganin & Lempitsky 2015).
- :class:`DomainDiscriminator` + :class:`DomainAdversarialLoss` — DANN (Ganin et al., JMLR 2016).
- :class:`CORALLoss` — Deep CORAL (Sun & Saenko, ECCV-W 2016).
- :func:`coral_transform` — closed-form CORAL (Sun, Feng & Saenko, AAAI 2016), on arrays.
- :func:`dann_lambda`, :func:`dann_lr_factor` — the schedules of Ganin et al. 2016, §5.2.2.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .models import as_float
from .schedules import anneal_factor


# ------------------------------------------------------------------------------------------- schedules
def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    r"""Adaptation factor :math:`\lambda_p = 2 / (1 + \exp(-\gamma p)) - 1`, rising from 0 to ~1.

    ``progress`` ``p`` goes linearly from 0 to 1 over training; ``gamma = 10`` (Ganin et al. 2016, §5.2.2).
    """
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def dann_lr_factor(progress: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    r"""Learning-rate annealing :math:`\mu_p / \mu_0 = 1 / (1 + \alpha p)^\beta` (Ganin et al. 2016, §5.2.2).

    Used only as ``train.lr_schedule: anneal`` (:mod:`adapt.schedules`), for every method of a run alike."""
    return anneal_factor(progress, alpha, beta)


# ------------------------------------------------------------------------------------------- GRL
class _GradientReverseFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.coeff * grad_output, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    r"""Identity forward, :math:`-\lambda\,\partial L/\partial x` backward (Ganin & Lempitsky, ICML 2015)."""
    return _GradientReverseFn.apply(x, float(coeff))


class GradientReverse(nn.Module):
    r"""Gradient reversal layer :math:`R_\lambda`: :math:`R_\lambda(x) = x`, :math:`dR_\lambda/dx = -\lambda I`.

    Placed between the feature extractor and the domain discriminator, it lets one backward pass both
    *minimise* the discriminator's loss (its own weights) and *maximise* it (the features').
    Shape: any; ``coeff`` (λ) may be changed between steps.
    """

    def __init__(self, coeff: float = 1.0):
        super().__init__()
        self.coeff = coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coeff)


# ------------------------------------------------------------------------------------------- DANN
class DomainDiscriminator(nn.Module):
    r"""A 2-layer MLP :math:`G_d: \mathbb{R}^d \to \mathbb{R}` giving ONE logit per sample (source = 1).

    ``Linear(d, h) → ReLU → Linear(h, h) → ReLU → Linear(h, 1)``, as the discriminator of Ganin et al.
    2016 (§5.2.2 uses 1024-1024 for images; ``hidden`` is configurable). The single logit is trained with
    ``BCEWithLogits``. (A softmax over a single output is identically 1: its cross-entropy is a constant
    with zero gradient — a bug to avoid.)  Input ``(N, d)``, output ``(N,)``.
    """

    def __init__(self, in_features: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f).squeeze(-1)


class DomainAdversarialLoss(nn.Module):
    r"""DANN domain loss (Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016, eq. 18).

    .. math::
        L_d = \tfrac12\,\mathrm{BCE}(G_d(R_\lambda(f_s)), 1) + \tfrac12\,\mathrm{BCE}(G_d(R_\lambda(f_t)), 0)

    where :math:`R_\lambda` is the gradient reversal layer: minimising :math:`L_d` trains the discriminator
    :math:`G_d` to tell the domains apart while the feature extractor receives :math:`-\lambda\nabla L_d`
    and learns domain-confusing features. ``f_s`` ``(N_s, d)``, ``f_t`` ``(N_t, d)`` → scalar loss; the
    discriminator accuracy (a proxy of domain separability) is kept in ``self.last_accuracy`` (a tensor,
    no host sync).
    """

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.discriminator = discriminator
        self.last_accuracy: torch.Tensor | None = None

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
        # leading dimensions are members of a stacked model (adapt.stacked): (M, N, d) -> one loss per member
        f = grad_reverse(as_float(torch.cat([f_s, f_t], dim=-2)), coeff)
        logits = self.discriminator(f)
        n_s, n_t = f_s.shape[-2], f_t.shape[-2]
        labels = torch.cat([torch.ones(n_s, device=f.device, dtype=f.dtype),
                            torch.zeros(n_t, device=f.device, dtype=f.dtype)]).expand_as(logits)
        weights = torch.cat([torch.full((n_s,), 0.5 / n_s, device=f.device, dtype=f.dtype),
                             torch.full((n_t,), 0.5 / n_t, device=f.device, dtype=f.dtype)])
        loss = (F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * weights).sum(-1)
        with torch.no_grad():
            self.last_accuracy = ((logits > 0).to(f.dtype) == labels).to(f.dtype).mean(-1)
        return loss


# ------------------------------------------------------------------------------------------- CORAL
def covariance(x: torch.Tensor) -> torch.Tensor:
    r"""Unbiased covariance :math:`\frac{1}{n-1}(X^\top X - \frac1n (\mathbf 1^\top X)^\top(\mathbf 1^\top X))`."""
    n = x.shape[-2]  # rows are samples; leading dimensions (stacked members) are kept
    xc = x - x.mean(dim=-2, keepdim=True)
    return xc.transpose(-1, -2) @ xc / max(n - 1, 1)


class CORALLoss(nn.Module):
    r"""Deep CORAL loss (Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation",
    ECCV 2016 Workshops, eq. 1):

    .. math::
        \ell_{CORAL} = \frac{1}{4d^2}\,\lVert C_S - C_T \rVert_F^2

    with :math:`C_S, C_T` the unbiased feature covariances of a source and a target batch. Inputs
    ``(N_s, d)`` and ``(N_t, d)`` → scalar (``(M, N, d)`` → one per stacked member). Computed in float32 even
    under autocast.

    Because of :math:`1/(4d^2)` the term is tiny for wide features (``d=128``: a unit change in every
    covariance entry costs 0.25); the paper picks its weight so that the CORAL and classification losses
    are of the same order at the end of training — see :mod:`adapt.methods.coral` for our default.
    """

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        f_s, f_t = as_float(f_s), as_float(f_t)
        d = f_s.shape[-1]
        diff = covariance(f_s) - covariance(f_t)
        return (diff * diff).sum(dim=(-2, -1)) / (4.0 * d * d)


def coral_transform(xs: np.ndarray, xt: np.ndarray, eps: float = 1.0) -> np.ndarray:
    r"""Closed-form CORAL (Sun, Feng & Saenko, "Return of Frustratingly Easy Domain Adaptation", AAAI 2016,
    Algorithm 1): whiten the source with :math:`(C_S + \epsilon I)^{-1/2}` and re-colour it with
    :math:`(C_T + \epsilon I)^{1/2}`:

    .. math::
        D_S^* = D_S\,(C_S + \epsilon I)^{-1/2}\,(C_T + \epsilon I)^{1/2}

    (the paper's ``eps = 1``; covariances as numpy's ``cov``, unbiased). Matrix square roots by ``eigh``
    (the matrices are symmetric positive definite). ``xs`` ``(n_s, d)``, ``xt`` ``(n_t, d)`` → ``(n_s, d)``.
    Like the paper's code the source is not re-centred.
    """
    xs = np.asarray(xs, dtype=np.float64)
    xt = np.asarray(xt, dtype=np.float64)
    d = xs.shape[1]
    cs = np.cov(xs, rowvar=False) + eps * np.eye(d)
    ct = np.cov(xt, rowvar=False) + eps * np.eye(d)
    ws, vs = np.linalg.eigh(cs)
    wt, vt = np.linalg.eigh(ct)
    whiten = (vs / np.sqrt(ws)) @ vs.T
    recolour = (vt * np.sqrt(wt)) @ vt.T
    return xs @ whiten @ recolour
