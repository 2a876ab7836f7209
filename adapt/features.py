"""Frozen-prefix features, computed once: in memory for a process, on disk across processes and runs.

When a training phase freezes the first K blocks of a backbone and the inputs are not augmented, those K
blocks (in eval mode, no gradients) are a fixed function of each image: the loop asks this module for their
outputs once per domain and trains (and evaluates) only the rest of the network on them
(``backbone.forward_suffix(h, K)``). The result is the same as running the whole network at every step — on
CPU the records are identical for the same seed (``tests/adapt/test_features.py``) — at a fraction of the cost.

Cache key — content, never names: the SHA-256 of
  the prefix's tensors (every parameter and buffer of ``backbone.blocks[:K]``: weights and BatchNorm
  statistics), the data's bytes (dtype, shape and values of the domain's ``X``), K, the preprocessing
  (``backbone.preprocess_spec``: resize/``image_size``, grey → RGB, input scaling), the backbone class, the
  file-format version, the torch version and the device type (CUDA kernels round differently from CPU ones).
A fine-tuned prefix, another ``image_size`` or one changed pixel is another key, so a stale entry is never read.

On disk (``train.feature_cache``: ``true`` = :func:`default_cache_dir`, a path, ``memory`` = this process only,
``false`` = off) each entry is one file ``<dir>/<key[:2]>/<key>.feat``: a magic line, a JSON header (key, dtype,
shape, byte count, SHA-256 of the payload) and the raw float32 payload. It is written to a unique temporary
file and renamed into place (``os.replace`` is atomic), so concurrent workers computing the same entry never
expose a torn file — the last rename wins and both wrote the same bytes. A file that is truncated, corrupt,
or whose header does not match its key is detected on read, counted in ``stats['corrupt']`` and recomputed.
Clear with :func:`clear_cache` or ``python -m adapt.features clear [DIR]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

FORMAT_VERSION = 1
MAGIC = b"TRANSFERLAB-FEATURES\n"
CACHE_ENV = "TRANSFERLAB_FEATURE_CACHE"
MEMORY_LIMIT_BYTES = 1024**3
COMPUTE_BATCH = 256


def default_cache_dir() -> Path:
    """``$TRANSFERLAB_FEATURE_CACHE`` if set, else ``~/.cache/transferlab/features``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "transferlab" / "features"


def prefix_depth(backbone: torch.nn.Module, frozen: int) -> int:
    """How many of the ``frozen`` leading blocks can be served from the cache (0: none, run everything).

    Only backbones that split their forward at block boundaries (``forward_prefix``/``forward_suffix``, see
    :mod:`adapt.models`) qualify; a bottleneck after the backbone is never cached (it is small).
    """
    if frozen <= 0 or not all(hasattr(backbone, a) for a in ("forward_prefix", "forward_suffix", "preprocess_spec")):
        return 0
    return min(frozen, int(getattr(backbone, "prefix_blocks", len(backbone.blocks))))


# ---------------------------------------------------------------------------------------------- keys
def data_fingerprint(X: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    X = np.ascontiguousarray(X)
    h = hashlib.sha256(f"{X.dtype.str}|{X.shape}".encode())
    h.update(memoryview(X).cast("B"))
    return h.hexdigest()


def prefix_fingerprint(backbone: torch.nn.Module, k: int) -> str:
    """SHA-256 of every tensor (name, dtype, shape, values) in the first ``k`` blocks, in order."""
    h = hashlib.sha256()
    for i, block in enumerate(backbone.blocks[:k]):
        for name, t in block.state_dict().items():
            t = t.detach().cpu().contiguous()
            h.update(f"{i}.{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()).cast("B"))
    return h.hexdigest()


def cache_key(backbone: torch.nn.Module, k: int, X: np.ndarray, device: torch.device | str = "cpu") -> str:
    """The content key of ``backbone``'s first ``k`` blocks applied to ``X`` (see the module docstring)."""
    meta = {"format": FORMAT_VERSION, "backbone": type(backbone).__name__, "prefix": int(k),
            "preprocess": backbone.preprocess_spec, "torch": torch.__version__,
            "device": torch.device(device).type}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    h.update(prefix_fingerprint(backbone, k).encode())
    h.update(data_fingerprint(X).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- store
class FeatureStore:
    """Prefix features by content key: an in-process LRU (up to ``MEMORY_LIMIT_BYTES``) over an optional
    on-disk folder. ``stats`` counts memory hits, disk hits, computations and corrupt entries replaced."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory).expanduser() if directory else None
        self.memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.memory_bytes = 0
        self.stats = {"memory_hits": 0, "disk_hits": 0, "computed": 0, "corrupt": 0}

    # ------------------------------------------------------------------ public
    @torch.no_grad()
    def prefix_features(self, backbone: torch.nn.Module, k: int, X: np.ndarray,
                        device: torch.device | str = "cpu", persist: bool = True) -> torch.Tensor:
        """``backbone.forward_prefix(X, k)`` as a float32 CPU tensor, computed at most once per content key.

        The first ``k`` blocks must be frozen (eval mode): their outputs are then a function of the inputs.
        ``persist=False`` keeps a new entry in memory only (a prefix fine-tuned within one cell: no other
        cell or run will ever ask for it, so it is not worth the disk).
        """
        device = torch.device(device)
        if any(m.training for block in backbone.blocks[:k] for m in block.modules() if _owns_state(m)):
            raise RuntimeError("prefix features need the first k blocks in eval mode (frozen)")
        key = cache_key(backbone, k, X, device)
        if key in self.memory:
            self.memory.move_to_end(key)
            self.stats["memory_hits"] += 1
            return self.memory[key]
        feats = self._read(key)
        if feats is None:
            feats = compute_prefix(backbone, k, X, device)
            self.stats["computed"] += 1
            if persist:
                self._write(key, feats)
        else:
            self.stats["disk_hits"] += 1
        self._remember(key, feats)
        return feats

    def path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / key[:2] / f"{key}.feat"

    # ------------------------------------------------------------------ memory
    def _remember(self, key: str, feats: torch.Tensor) -> None:
        size = feats.numel() * feats.element_size()
        if size > MEMORY_LIMIT_BYTES:
            return
        self.memory[key] = feats
        self.memory_bytes += size
        while self.memory_bytes > MEMORY_LIMIT_BYTES:
            _, old = self.memory.popitem(last=False)
            self.memory_bytes -= old.numel() * old.element_size()

    # ------------------------------------------------------------------ disk
    def _read(self, key: str) -> torch.Tensor | None:
        path = self.path(key)
        if path is None or not path.is_file():
            return None
        try:
            return read_entry(path, key)
        except (OSError, ValueError) as err:
            self.stats["corrupt"] += 1
            warnings.warn(f"feature cache: {path} is unreadable ({err}); recomputing it", stacklevel=3)
            return None

    def _write(self, key: str, feats: torch.Tensor) -> None:
        path = self.path(key)
        if path is None:
            return
        try:
            write_entry(path, key, feats)
        except OSError as err:  # a full or read-only disk costs speed, never results
            warnings.warn(f"feature cache: could not write {path} ({err})", stacklevel=3)


def _owns_state(module: torch.nn.Module) -> bool:
    """Has parameters or buffers of its own (block views such as a stem wrapper hold none)."""
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


def write_entry(path: Path, key: str, feats: torch.Tensor) -> None:
    """Write one entry atomically: a unique temporary file in the same folder, fsync, then ``os.replace``."""
    array = np.ascontiguousarray(feats.detach().cpu().numpy().astype(np.float32, copy=False))
    payload = memoryview(array).cast("B")
    header = {"key": key, "dtype": "float32", "shape": list(array.shape), "nbytes": array.nbytes,
              "sha256": hashlib.sha256(payload).hexdigest()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(MAGIC)
            fh.write(json.dumps(header).encode() + b"\n")
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_entry(path: Path, key: str) -> torch.Tensor:
    """Read and verify one entry; ``ValueError`` when anything (magic, header, size, checksum, key) is off."""
    blob = Path(path).read_bytes()
    if not blob.startswith(MAGIC):
        raise ValueError("not a feature-cache file")
    end = blob.find(b"\n", len(MAGIC))
    if end < 0:
        raise ValueError("truncated header")
    try:
        header = json.loads(blob[len(MAGIC):end])
    except json.JSONDecodeError:
        raise ValueError("corrupt header") from None
    payload = memoryview(blob)[end + 1:]
    if header.get("key") != key:
        raise ValueError("entry belongs to another key")
    if len(payload) != header.get("nbytes"):
        raise ValueError(f"{len(payload)} payload bytes, header says {header.get('nbytes')} (partial write)")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise ValueError("checksum mismatch")
    array = np.frombuffer(payload, dtype=np.float32).reshape(header["shape"]).copy()
    return torch.from_numpy(array)


@torch.no_grad()
def compute_prefix(backbone: torch.nn.Module, k: int, X: np.ndarray, device: torch.device | str = "cpu",
                   batch: int = COMPUTE_BATCH) -> torch.Tensor:
    """``forward_prefix`` over ``X`` in batches, with the loop's input convention (uint8 → /255)."""
    device = torch.device(device)
    outs = []
    for start in range(0, len(X), batch):
        x = torch.from_numpy(np.ascontiguousarray(X[start:start + batch])).to(device)
        x = x.float() * (1.0 / 255.0) if x.dtype == torch.uint8 else x.float()
        outs.append(backbone.forward_prefix(x, k).float().cpu())
    if not outs:
        raise ValueError("no samples to compute features for")
    return torch.cat(outs)


# ---------------------------------------------------------------------------------------------- settings
_STORES: dict[str, FeatureStore] = {}


def store_for(setting: bool | str | None) -> FeatureStore | None:
    """The process-wide store for a ``train.feature_cache`` setting (None when the cache is off)."""
    if setting is False or setting is None or setting == "off":
        return None
    directory = None if setting == "memory" else (default_cache_dir() if setting is True else Path(setting))
    name = "memory" if directory is None else str(directory.expanduser().resolve())
    if name not in _STORES:
        _STORES[name] = FeatureStore(directory)
    return _STORES[name]


def clear_cache(directory: str | Path | None = None) -> int:
    """Delete every entry under ``directory`` (default :func:`default_cache_dir`) and this process's memory
    caches; returns the number of files removed."""
    directory = Path(directory).expanduser() if directory else default_cache_dir()
    n = 0
    if directory.is_dir():  # only our own files: a mistyped DIR must not lose anything else
        for f in [*directory.glob("??/*.feat"), *directory.glob("??/.*.tmp")]:
            f.unlink(missing_ok=True)
            n += f.suffix == ".feat"
        for sub in directory.glob("??"):
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()
    for store in _STORES.values():
        store.memory.clear()
        store.memory_bytes = 0
    return n


def _main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("clear", "where"):
        print("usage: python -m adapt.features clear [DIR] | where", file=sys.stderr)
        return 2
    if argv[0] == "where":
        print(default_cache_dir())
        return 0
    target = Path(argv[1]) if len(argv) > 1 else default_cache_dir()
    print(f"removed {clear_cache(target)} cached feature files from {target}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
