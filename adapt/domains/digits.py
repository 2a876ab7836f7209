"""``digits``: scikit-learn's bundled 8×8 handwritten digits as six offline image domains.

The 1,797 images (Alpaydin & Kaynak 1998, UCI) ship inside scikit-learn, so this family needs no network
and builds in well under a second. Images are split into six disjoint, class-stratified shards (one per
domain), so no underlying digit appears in two domains; each shard is then transformed:

========== ===============================================================================
original   the images as shipped, scaled to [0, 1]
rotated    rotated by 90° (counter-clockwise) — strong covariate shift, same labels
inverted   contrast inverted (1 − x) — ink becomes background
noisy      additive Gaussian noise, σ = 0.25, clipped to [0, 1]
blurred    Gaussian blur, σ = 0.8 px — thick, soft strokes
shifted    translated 2 px right and 1 px down, zero fill — parts of strokes leave the frame
========== ===============================================================================

Each domain is ``kind="image"`` with ``X`` of shape ``(≈300, 1, 8, 8)`` float32 and 10 classes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import DataError
from .base import Domain

DIGITS_DOMAINS = ("original", "rotated", "inverted", "noisy", "blurred", "shifted")

_DESCRIPTIONS = {
    "original": "sklearn digits as shipped, scaled to [0,1]",
    "rotated": "rotated 90 degrees counter-clockwise",
    "inverted": "contrast inverted (1 - x)",
    "noisy": "additive Gaussian noise sigma=0.25, clipped",
    "blurred": "Gaussian blur sigma=0.8 px",
    "shifted": "translated 2 px right, 1 px down, zero fill",
}


def _transform(name: str, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if name == "original":
        return images
    if name == "rotated":
        return np.rot90(images, k=1, axes=(1, 2))
    if name == "inverted":
        return 1.0 - images
    if name == "noisy":
        return np.clip(images + rng.normal(0.0, 0.25, size=images.shape), 0.0, 1.0)
    if name == "blurred":
        return np.clip(ndimage.gaussian_filter(images, sigma=(0, 0.8, 0.8)) * 1.6, 0.0, 1.0)
    if name == "shifted":
        return ndimage.shift(images, shift=(0, 1, 2), order=0, mode="constant", cval=0.0)
    raise AssertionError(name)


def load_digits_domains(names: list[str] | None = None) -> dict[str, Domain]:
    """Build the digits domains (all six, or the ones named)."""
    from sklearn.datasets import load_digits

    names = list(DIGITS_DOMAINS) if names is None else list(names)
    unknown = [n for n in names if n not in DIGITS_DOMAINS]
    if unknown:
        raise DataError(f"digits family has no domain {unknown}; available: {list(DIGITS_DOMAINS)}")
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float64)
    labels = bunch.target.astype(np.int64)
    # Disjoint class-stratified shards: within each class, deal the (fixed-shuffled) images round-robin.
    rng = np.random.default_rng(20161)
    shard_of = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        shard_of[members] = np.arange(len(members)) % len(DIGITS_DOMAINS)
    out = {}
    for shard, name in enumerate(DIGITS_DOMAINS):
        if name not in names:
            continue
        idx = np.flatnonzero(shard_of == shard)
        x = _transform(name, images[idx], np.random.default_rng(1000 + shard))
        out[name] = Domain(
            name=name,
            X=np.ascontiguousarray(x[:, None, :, :], dtype=np.float32),
            y=labels[idx],
            kind="image",
            class_names=[str(d) for d in range(10)],
            description=_DESCRIPTIONS[name],
            family="digits",
        )
    return {n: out[n] for n in names}
