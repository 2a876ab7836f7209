"""Input checks and the torch backend shared by the analysis modules (private).

Torch is imported inside the functions, never at module import, so ``import analysis`` stays light.
Computation runs on ``cuda`` when it is available (``float32``) and on the CPU otherwise (``float64``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adapt.domains.base import integer_labels
from adapt.errors import DataError

ArrayLike = Any  # numpy array, torch tensor, or anything ``np.asarray`` takes


def as_numpy(x: ArrayLike) -> np.ndarray:
    """``x`` as a numpy array (a torch tensor is detached and copied to the CPU)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_samples(x: ArrayLike, name: str, min_rows: int = 1) -> np.ndarray:
    """Check ``x`` is a finite 2-d sample matrix ``(n, d)`` and return it as ``float64``."""
    arr = as_numpy(x)
    if arr.ndim == 1:
        raise DataError(f"{name}: expected a 2-d array (n, d) of samples, got a 1-d array; "
                        f"use x.reshape(-1, 1) for one feature")
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-d array (n, d) of samples, got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise DataError(f"{name}: needs at least {min_rows} samples, got {arr.shape[0]}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: contains NaN or infinite values")
    return arr


def as_pair(xs: ArrayLike, xt: ArrayLike, min_rows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Check two sample matrices with one feature dimension."""
    a = as_samples(xs, "Xs", min_rows)
    b = as_samples(xt, "Xt", min_rows)
    if a.shape[1] != b.shape[1]:
        raise DataError(f"Xs and Xt must have the same number of features, got {a.shape[1]} and {b.shape[1]}")
    return a, b


def as_labels(y: ArrayLike, n: int, name: str) -> np.ndarray:
    """Check ``y`` is a 1-d integer label vector of length ``n`` (the domain layer's rule)."""
    return integer_labels(as_numpy(y), n, name)


def subsample(x: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """Row indices of a uniform subsample of at most ``max_samples`` rows (all rows, in order, if fewer)."""
    n = len(x)
    if max_samples is None or n <= max_samples:
        return np.arange(n)
    return np.sort(rng.choice(n, size=int(max_samples), replace=False))


def backend(device: str | None = None):
    """``(torch, device, dtype)``: ``cuda``/``float32`` when available (or asked), else ``cpu``/``float64``."""
    import torch

    dev = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float64 if dev.type == "cpu" else torch.float32
    return torch, dev, dtype


def to_tensor(x: np.ndarray, device: str | None = None):
    """``x`` as a tensor on the analysis device (see :func:`backend`)."""
    torch, dev, dtype = backend(device)
    return torch.as_tensor(x, dtype=dtype, device=dev)


def sq_dists(a, b):
    """Squared Euclidean distances between the rows of two tensors, clipped at 0 (``(n, m)``)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)
