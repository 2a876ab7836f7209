"""Convergence guard: did a training phase end on a plateau, or was it stopped while still learning?

A verdict "source A hurts target B" is an artefact when one arm simply had not finished training. Each phase
of a trained cell is therefore examined over its last ``TAIL`` (20%) of steps:

- **training loss still falling** — the mean classification loss (``loss_cls`` + ``loss_cls_target``, one
  value per step) over the ``WINDOW`` (10%) of steps just before the tail, ``L_a``, against the mean over the
  last 10%, ``L_b``, and over the first 10%, ``L_0``: ``tail_share = (L_a − L_b) / (L_0 − L_b)``, the part of
  the phase's whole decrease that came in its last fifth. Falling when ``tail_share > MAX_TAIL_SHARE`` (5%)
  and ``L_a − L_b > MIN_ABS_DROP`` (0.005 nats: a flat loss is not falling). For an exponential approach
  ``c + a·e^{−t/τ}`` the share is 5% at ``n ≈ 2.7 τ`` (93% of the way), whatever the phase's length: a
  10-step phase loses little in its last 2 steps, yet those carry a fifth of its progress. The relative drop
  ``rel_drop = (L_a − L_b) / L_a`` is recorded too but does not decide: a cross-entropy on a few dozen labels
  keeps halving towards 0 long after the labels are fitted (``rel_drop`` 50%, ``tail_share`` 1%).
- **labelled-target accuracy still rising** (phases that read target labels) — accuracy on the labelled
  target subset (training data, never the test split) at 80% of the phase, ``acc_from``, against its last
  step, ``acc_to``: rising when ``acc_to − acc_from ≥ max(0.02, 2 / n_labelled)`` (at least two more
  labelled samples right).

A phase converged when neither holds. The record carries ``converged`` (every phase converged; ``True`` for
closed-form fits), ``convergence_reason`` (``None``, or e.g. "phase 'target': training loss still falling
(−18% over the last 20% of steps), labelled-target accuracy still rising") and ``convergence`` (per phase:
``steps, loss_from, loss_to, rel_drop, loss_falling, acc_from, acc_to, acc_climbing, converged``).
What to change when a phase did not converge: more ``train.steps``, or a larger ``train.lr``.
"""

from __future__ import annotations

import math

import numpy as np

TAIL = 0.2
WINDOW = 0.1
MAX_TAIL_SHARE = 0.05
MIN_ABS_DROP = 0.005
MIN_ACC_RISE = 0.02


def probe_step(steps: int) -> int:
    """The step within a phase (1-based) where the tail starts: labelled accuracy is measured after it."""
    return max(1, steps - int(round(TAIL * steps)))


def phase_convergence(losses, acc_from: float | None = None, acc_to: float | None = None,
                      n_labelled: int = 0) -> dict:
    """Measurements and verdict for one phase (see the module docstring). ``losses``: one value per step."""
    losses = np.asarray([v for v in losses if v is not None], dtype=float)
    n = len(losses)
    out: dict = {"steps": int(n), "loss_start": None, "loss_from": None, "loss_to": None, "rel_drop": None,
                 "tail_share": None, "loss_falling": False,
                 "acc_from": acc_from, "acc_to": acc_to, "acc_climbing": False, "converged": True}
    if n:
        width = max(1, int(round(WINDOW * n)))
        cut = probe_step(n)
        before = losses[max(0, cut - width):cut] if cut > 0 else losses[:1]
        end = losses[n - width:]
        start, a, b = float(losses[:width].mean()), float(before.mean()), float(end.mean())
        finite = all(math.isfinite(v) for v in (start, a, b))
        rel = (a - b) / a if a > 0 and finite else 0.0
        share = (a - b) / (start - b) if start - b > 1e-12 and finite else (1.0 if a - b > 0 else 0.0)
        out.update(loss_start=round(start, 6), loss_from=round(a, 6), loss_to=round(b, 6), rel_drop=round(rel, 4),
                   tail_share=round(share, 4),
                   loss_falling=bool(finite and a - b > MIN_ABS_DROP and share > MAX_TAIL_SHARE))
    if acc_from is not None and acc_to is not None and n_labelled > 0:
        out["acc_climbing"] = bool(acc_to - acc_from >= max(MIN_ACC_RISE, 2.0 / n_labelled) - 1e-12)
    out["converged"] = not (out["loss_falling"] or out["acc_climbing"])
    return out


def phase_reason(name: str, info: dict) -> str | None:
    """One clause for an unconverged phase, e.g. "phase 'target': training loss still falling (−18% …)"."""
    if info.get("converged", True):
        return None
    parts = []
    if info.get("loss_falling"):
        parts.append(f"training loss still falling (−{100 * info['rel_drop']:.0f}% over the last "
                     f"{100 * TAIL:.0f}% of steps, {100 * info['tail_share']:.0f}% of the phase's decrease)")
    if info.get("acc_climbing"):
        parts.append(f"labelled-target accuracy still rising ({info['acc_from']:.2f} → {info['acc_to']:.2f})")
    return f"phase '{name}': " + ", ".join(parts)


def summarize(per_phase: dict[str, dict]) -> tuple[bool, str | None]:
    """``(converged, reason)`` over phases: converged when every phase did; reasons joined by '; '."""
    reasons = [r for r in (phase_reason(name, info) for name, info in per_phase.items()) if r]
    if not reasons:
        return True, None
    return False, "; ".join(reasons) + " — train longer (train.steps) or with a larger train.lr"
