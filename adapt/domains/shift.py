"""``shift``: synthetic domains with controlled covariate, label and concept shift — ground truth for tests.

A family shares one generative model: ``K`` Gaussian classes in ``d`` dimensions with unit isotropic noise and
class means ``μ_k = separation · q_k`` on orthonormal directions ``q_k`` (fixed by the family ``seed``), so
pairwise class-mean distance is ``separation·√2``. Each domain draws its own samples (seeded by the family
seed and the domain's name) and applies its shifts, each with a severity in ``[0, 1]`` (0 = none):

- ``covariate: s`` — ``x ↦ (x·R)·D + s·2.5·separation·u``: a rotation ``R`` by ``60°·s`` in a random plane, a
  per-feature scale ``D`` drawn in ``[1, 1+2s]`` (plane, scales and direction are fixed by the family seed,
  so equal severities are equal shifts) and a translation along a unit direction ``u`` in the span of the class means. ``p(y|x)``
  moves with ``x`` (the labelling function is the same up to the transform), so alignment can undo it.
- ``label: s`` — class priors ``p_k ∝ exp(−3·s·k/(K−1))``: at ``s=1`` the rarest class is ~20× rarer.
- ``concept: s`` — the label–feature relation changes: the first ``round(s·K)`` classes are permuted
  cyclically (``s=1``: every class is renamed ``k ↦ k+1 mod K``). A source with ``concept: 1`` contradicts a
  target with ``concept: 0``; methods that train on source labels jointly with the target must be hurt.

With no ``shifts`` given the family has the five canonical domains:
``base`` (no shift), ``null`` (same distribution as ``base``, fresh samples), ``covariate`` (``covariate: 1``),
``label`` (``label: 0.8``) and ``concept`` (``concept: 1``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import DataError
from .base import Domain, stable_seed

DEFAULT_SHIFTS = {
    "base": {},
    "null": {},
    "covariate": {"covariate": 1.0},
    "label": {"label": 0.8},
    "concept": {"concept": 1.0},
}
SHIFT_KEYS = ("covariate", "label", "concept")


def make_shift_domain(
    name: str,
    covariate: float = 0.0,
    label: float = 0.0,
    concept: float = 0.0,
    *,
    n_samples: int = 600,
    n_features: int = 16,
    n_classes: int = 4,
    separation: float = 3.0,
    seed: int = 0,
    sample_seed: int | None = None,
) -> Domain:
    """One domain of a ``shift`` family (see the module docstring for the model).

    Domains built with the same ``seed``, ``n_features``, ``n_classes`` and ``separation`` share class means,
    so they are related exactly as their shift parameters say. ``sample_seed`` (default: derived from
    ``seed`` and ``name``) picks the samples; two domains with equal shifts and different names are two
    independent samples of one distribution.
    """
    for key, value in (("covariate", covariate), ("label", label), ("concept", concept)):
        if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise DataError(f"shift domain '{name}': '{key}' must be a severity in [0, 1], got {value!r}")
    if n_classes < 2 or n_features < 2 or n_samples < 2 * n_classes:
        raise DataError(
            f"shift family needs n_classes >= 2, n_features >= 2 and n_samples >= 2*n_classes "
            f"(got {n_classes}, {n_features}, {n_samples})"
        )
    if n_classes > n_features:
        raise DataError(f"shift family needs n_features >= n_classes (got {n_features} < {n_classes})")
    family = np.random.default_rng(seed)
    q, _ = np.linalg.qr(family.normal(size=(n_features, n_features)))
    means = separation * q[:, :n_classes].T  # (K, d)

    rng = np.random.default_rng(stable_seed("shift", seed, name) if sample_seed is None else sample_seed)
    priors = np.exp(-3.0 * label * np.arange(n_classes) / (n_classes - 1))
    priors /= priors.sum()
    # Every class keeps at least two samples so stratified splits stay possible.
    counts = np.maximum(np.floor(priors * n_samples).astype(int), 2)
    counts[0] += n_samples - counts.sum()
    y = np.repeat(np.arange(n_classes), counts)
    x = means[y] + rng.normal(size=(n_samples, n_features))

    if covariate > 0:
        geo = np.random.default_rng(stable_seed("covariate", seed))
        plane, _ = np.linalg.qr(geo.normal(size=(n_features, 2)))
        angle = np.deg2rad(60.0 * covariate)
        rot = np.eye(n_features) + (np.cos(angle) - 1) * (plane @ plane.T)
        rot += np.sin(angle) * (np.outer(plane[:, 1], plane[:, 0]) - np.outer(plane[:, 0], plane[:, 1]))
        scale = 1.0 + 2.0 * covariate * geo.random(n_features)
        # The translation lies in the span of the class means, where it moves samples across class
        # boundaries (a random direction in d dims would be almost orthogonal to them and do little).
        direction = geo.normal(size=n_classes) @ q[:, :n_classes].T
        direction /= np.linalg.norm(direction)
        x = (x @ rot) * scale + covariate * 2.5 * separation * direction

    observed = y.copy()
    n_permuted = int(round(concept * n_classes))
    if n_permuted >= 2:
        mapping = np.arange(n_classes)
        mapping[:n_permuted] = np.roll(np.arange(n_permuted), -1)
        observed = mapping[y]

    order = rng.permutation(n_samples)
    parts = [f"{k}={v}" for k, v in (("covariate", covariate), ("label", label), ("concept", concept)) if v]
    return Domain(
        name=name,
        X=x[order].astype(np.float32),
        y=observed[order],
        kind="vector",
        class_names=[f"class{k}" for k in range(n_classes)],
        description="synthetic Gaussian classes" + (", " + ", ".join(parts) if parts else ", no shift"),
        family="shift",
    )


def load_shift_domains(spec: Mapping | None = None) -> dict[str, Domain]:
    """Build a ``shift`` family from a config mapping.

    Keys: ``n_samples``, ``n_features``, ``n_classes``, ``separation``, ``seed`` (shared by all domains) and
    ``shifts: {name: {covariate, label, concept}}`` (default: the five canonical domains).
    """
    spec = dict(spec or {})
    shared = {k: spec[k] for k in ("n_samples", "n_features", "n_classes", "separation", "seed") if k in spec}
    for key in ("n_samples", "n_features", "n_classes", "seed"):
        if key in shared and (isinstance(shared[key], bool) or not isinstance(shared[key], int)):
            raise DataError(f"config field 'data.{key}': expected an integer, got {shared[key]!r}")
    if "separation" in shared and not isinstance(shared["separation"], (int, float)):
        raise DataError(f"config field 'data.separation': expected a number, got {shared['separation']!r}")
    shifts = spec.get("shifts", DEFAULT_SHIFTS)
    if not isinstance(shifts, Mapping) or not shifts:
        raise DataError("config field 'data.shifts': expected a mapping {domain: {covariate, label, concept}}")
    out = {}
    for name, params in shifts.items():
        params = params or {}
        if not isinstance(params, Mapping):
            raise DataError(f"config field 'data.shifts.{name}': expected a mapping, got {params!r}")
        bad = sorted(set(params) - set(SHIFT_KEYS))
        if bad:
            raise DataError(f"config field 'data.shifts.{name}': unknown key {bad}; expected {list(SHIFT_KEYS)}")
        out[str(name)] = make_shift_domain(str(name), **params, **shared)
    return out
