"""DA losses against their formulas and independent implementations; each loss moves the features."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from adapt.losses import (CORALLoss, DomainAdversarialLoss, DomainDiscriminator, coral_transform, dann_lambda,
                          dann_lr_factor, grad_reverse)
from adapt.methods import METHODS, check_method_params



def test_grl_backward_is_minus_lambda_times_incoming_gradient():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(5, 3, dtype=torch.float64)
    for lam in (0.0, 0.37, 1.0, 4.0):
        x.grad = None
        y = grad_reverse(x, lam)
        assert torch.equal(y, x)  # identity forward
        y.backward(upstream)
        assert torch.allclose(x.grad, -lam * upstream)


def test_grl_gradcheck():
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    # d/dx of sum(w * R(x)) = -lam * w; gradcheck compares autograd with finite differences of the
    # *forward* (identity), so check the analytic Jacobian directly instead.
    w = torch.randn(4, 2, dtype=torch.float64)
    (g,) = torch.autograd.grad((w * grad_reverse(x, 0.5)).sum(), x)
    assert torch.allclose(g, -0.5 * w)


def _coral_numpy(a: np.ndarray, b: np.ndarray) -> float:
    d = a.shape[1]
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(np.sum((ca - cb) ** 2) / (4 * d * d))


def test_coral_loss_matches_numpy_and_pytorch_adapt():
    from adapt.validators import import_pytorch_adapt

    PACORALLoss = import_pytorch_adapt("layers.coral_loss").CORALLoss

    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 7))
    b = rng.normal(size=(33, 7)) * 2.0 + 1.0
    ours = CORALLoss()(torch.tensor(a), torch.tensor(b)).item()
    theirs = PACORALLoss()(torch.tensor(a), torch.tensor(b)).item()
    assert ours == pytest.approx(_coral_numpy(a, b), rel=1e-6)
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert CORALLoss()(torch.tensor(a), torch.tensor(a)).item() == pytest.approx(0.0, abs=1e-12)


def test_coral_closed_transform_equals_scipy_sqrtm_closed_form():
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5))
    xt = rng.normal(size=(50, 5)) * np.array([1, 2, 3, 0.5, 1])
    cs = np.cov(xs, rowvar=False) + np.eye(5)
    ct = np.cov(xt, rowvar=False) + np.eye(5)
    expected = xs @ np.real(scipy.linalg.inv(scipy.linalg.sqrtm(cs))) @ np.real(scipy.linalg.sqrtm(ct))
    got = coral_transform(xs, xt, eps=1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8)
    # after the transform the source covariance (+I) equals the target's up to the eps term's effect
    method = METHODS["coral-closed"](check_method_params("coral-closed", {}), 0, 2)
    np.testing.assert_allclose(method.transform(xs, xt), expected.astype(np.float32), rtol=1e-4, atol=1e-4)


def test_coral_closed_recolours_covariance():
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(5000, 3))
    xt = rng.normal(size=(5000, 3)) @ np.array([[2.0, 0.5, 0], [0, 1.0, 0], [0, 0, 0.3]])
    # with eps -> 0 the transformed source covariance is the target covariance
    out = coral_transform(xs, xt, eps=1e-9)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.cov(xt, rowvar=False), atol=1e-6)


def test_dann_schedules():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + np.exp(-10)) - 1)
    assert dann_lr_factor(0.0) == 1.0
    assert dann_lr_factor(1.0) == pytest.approx(1 / 11 ** 0.75)


def test_discriminator_has_one_logit_and_a_real_gradient():
    """One logit + BCE: the loss varies with the features (a softmax over one output would be constant)."""
    torch.manual_seed(0)
    loss_fn = DomainAdversarialLoss(DomainDiscriminator(6, hidden=16))
    assert loss_fn.discriminator(torch.randn(3, 6)).shape == (3,)
    f_s = torch.randn(8, 6)
    l1 = loss_fn(f_s, torch.randn(8, 6)).item()
    l2 = loss_fn(f_s, torch.randn(8, 6) + 3.0).item()
    assert l1 != l2
    disc_params = list(loss_fn.discriminator.parameters())
    loss_fn(f_s, torch.randn(8, 6)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in disc_params)


def _feature_extractor():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5))


def _adaptation_step(method_name: str, params: dict) -> tuple[float, float]:
    """One optimisation step on the adaptation loss alone: (grad norm into the extractor, feature change)."""
    g = _feature_extractor()
    method = METHODS[method_name](check_method_params(method_name, params), 5, 3)
    gen = torch.Generator().manual_seed(1)
    xs = torch.randn(32, 4, generator=gen)
    xt = torch.randn(32, 4, generator=gen) * 2.0 + 1.5
    before = g(xt).detach().clone()
    opt = torch.optim.SGD(list(g.parameters()) + list(method.modules.parameters()), lr=0.05)
    terms = method.extra_loss(g(xs), g(xt), None, None, progress=0.5)
    assert terms, f"{method_name} adds no loss term"
    loss = sum(terms.values())
    opt.zero_grad()
    loss.backward()
    grad = sum(float(p.grad.norm()) for p in g.parameters() if p.grad is not None)
    opt.step()
    return grad, float((g(xt).detach() - before).abs().max())


@pytest.mark.parametrize("method_name,params", [("dann", {}), ("coral", {})])
def test_adaptation_loss_reaches_and_changes_the_features(method_name, params):
    grad, change = _adaptation_step(method_name, params)
    assert grad > 1e-6, f"{method_name}: no gradient reaches the feature extractor"
    assert change > 1e-6, f"{method_name}: the features did not move"


def test_dann_feature_gradient_is_reversed():
    """The extractor gets −λ × the discriminator-loss gradient (it maximises what the discriminator minimises)."""
    torch.manual_seed(0)
    loss_fn = DomainAdversarialLoss(DomainDiscriminator(5, hidden=8))
    f = torch.randn(10, 5, requires_grad=True)
    loss_fn(f[:5], f[5:], coeff=0.7).backward()
    reversed_grad = f.grad.clone()
    f.grad = None
    loss_fn(f[:5], f[5:], coeff=-1.0).backward()  # coeff −1 = the plain gradient of L_d
    assert torch.allclose(reversed_grad, -0.7 * f.grad, atol=1e-7)


def test_check_method_params():
    assert check_method_params("finetune", {})["freeze"] == "none"
    assert check_method_params("finetune", {"freeze": "first:2"})["freeze"] == "first:2"
    with pytest.raises(ValueError, match="param 'freeze': expected none|backbone|first:K, got"):
        check_method_params("finetune", {"freeze": "top"})
    with pytest.raises(ValueError, match="unknown param"):
        check_method_params("coral", {"wieght": 3})
    with pytest.raises(ValueError, match="param 'trade_off'"):
        check_method_params("dann", {"trade_off": -1})
    with pytest.raises(ValueError, match="unknown method"):
        check_method_params("mmd", {})
    assert set(METHODS) == {"finetune", "dann", "coral", "coral-closed", "scratch", "target-only"}
