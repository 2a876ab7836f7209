"""adapt.convergence: the per-phase measurements against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from adapt.convergence import phase_convergence, summarize


def test_falling_loss_is_measured_over_the_last_fifth():
    losses = np.linspace(2.0, 1.0, 100)  # still falling steeply
    info = phase_convergence(losses)
    a, b = losses[70:80].mean(), losses[90:].mean()  # the 10% before the tail vs the last 10%
    start = losses[:10].mean()
    assert info["loss_from"] == pytest.approx(a, abs=1e-6) and info["loss_to"] == pytest.approx(b, abs=1e-6)
    assert info["rel_drop"] == pytest.approx((a - b) / a, abs=1e-4)
    assert info["tail_share"] == pytest.approx((a - b) / (start - b), abs=1e-4)
    assert info["loss_falling"] and not info["converged"]


def test_plateau_and_tiny_losses_count_as_converged():
    assert phase_convergence(np.r_[np.linspace(2, 0.5, 50), np.full(50, 0.5)])["converged"]
    tiny = phase_convergence(np.linspace(0.02, 0.005, 100))  # a fifth of its decrease, but < 0.005 nats
    assert tiny["tail_share"] > 0.05 and tiny["converged"]
    t = np.arange(300)
    memorised = 2.3 * np.exp(-t / 40.0) + 0.05 * np.exp(-t / 100.0)  # fitted labels: CE keeps halving towards 0
    info = phase_convergence(memorised)
    assert info["rel_drop"] > 0.3 and info["tail_share"] < 0.05 and info["converged"]


def test_a_short_phase_is_judged_by_its_share_of_the_decrease():
    short = phase_convergence(0.5 + 0.6 * np.exp(-np.arange(10) / 8.0))  # −7% over the last 2 steps, 14% of progress
    assert short["rel_drop"] < 0.10 and short["tail_share"] > 0.05 and not short["converged"]
    decay = 0.3 + np.exp(-np.arange(300) / 50.0)  # n = 6 τ: 0.3% of the decrease in the last fifth
    assert phase_convergence(decay)["converged"]


def test_rising_labelled_accuracy_is_not_converged():
    flat = np.full(50, 0.3)
    assert not phase_convergence(flat, acc_from=0.8, acc_to=0.9, n_labelled=50)["converged"]
    assert phase_convergence(flat, acc_from=0.88, acc_to=0.9, n_labelled=50)["converged"]  # one sample
    assert phase_convergence(flat, acc_from=0.9, acc_to=0.8, n_labelled=50)["converged"]


def test_summary_names_each_unconverged_phase():
    ok = phase_convergence(np.full(20, 0.5))
    bad = phase_convergence(np.linspace(2.0, 1.0, 100), acc_from=0.5, acc_to=0.7, n_labelled=20)
    converged, reason = summarize({"source": ok, "target": bad})
    assert not converged
    assert reason.startswith("phase 'target': training loss still falling (−")
    assert "labelled-target accuracy still rising (0.50 → 0.70)" in reason and "source" not in reason
    assert summarize({"source": ok}) == (True, None)
