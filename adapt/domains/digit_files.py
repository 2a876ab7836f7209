"""``torchvision``: the MNIST / USPS / SVHN digit benchmarks, read from their original files.

Reads the files torchvision's datasets download, in torchvision's layout under ``data.path`` (default
``~/.cache/transferlab/digits``), without needing torchvision itself (whose PyPI wheels do not import beside
the CPU torch build):

====== ===========================================================================================
mnist  ``MNIST/raw/{train,t10k}-images-idx3-ubyte[.gz]`` and ``…-labels-idx1-ubyte[.gz]`` (IDX format)
usps   ``USPS/usps.bz2`` and ``USPS/usps.t.bz2`` (libsvm lines, pixels in [-1, 1], labels 1..10)
svhn   ``SVHN/train_32x32.mat`` and ``SVHN/test_32x32.mat`` (``X`` 32×32×3×n, ``y`` with 10 for digit 0)
====== ===========================================================================================

Missing files are downloaded from the same URLs as torchvision when ``download: true`` (needs internet).
Every domain is resized to ``image_size`` (default 28) and, unless ``grayscale: false``, converted to one
channel so that the three domains share an input shape. Train/test files give the domain's split.
"""

from __future__ import annotations

import bz2
import gzip
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Domain

URLS = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz": "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz": "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz": "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
    },
    "usps": {
        "usps.bz2": "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/usps.bz2",
        "usps.t.bz2": "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/usps.t.bz2",
    },
    "svhn": {
        "train_32x32.mat": "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
        "test_32x32.mat": "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
    },
}
FOLDERS = {"mnist": "MNIST/raw", "usps": "USPS", "svhn": "SVHN"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise DataError(f"{path}: IDX header says {shape} but holds {arr.size} values")
    return arr.reshape(shape)


def read_usps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """USPS from libsvm's bz2 file: 16×16 images in [0, 1], labels 0..9."""
    rows, labels = [], []
    with bz2.open(path, "rt") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                labels.append(int(float(parts[0])) - 1)
                row = np.zeros(256, dtype=np.float32)
                for item in parts[1:]:
                    i, v = item.split(":")
                    row[int(i) - 1] = float(v)
            except ValueError:
                raise DataError(f"{path}: line {line_no} is not 'label index:value ...'") from None
            rows.append(row)
    X = (np.stack(rows).reshape(-1, 16, 16) + 1.0) / 2.0
    return X, np.array(labels, dtype=np.int64)


def _fetch(name: str, folder: Path, download: bool) -> dict[str, Path]:
    paths = {}
    for fname, url in URLS[name].items():
        p = folder / fname
        plain = folder / fname.removesuffix(".gz")
        if not p.exists() and plain.exists():
            p = plain
        if not p.exists():
            if not download:
                raise DataError(f"{p}: missing; set data.download: true (needs internet) or place the file there")
            folder.mkdir(parents=True, exist_ok=True)
            try:
                urllib.request.urlretrieve(url, p)
            except OSError as err:
                raise DataError(f"{url}: download failed ({err}); place {p.name} in {folder} by hand") from None
        paths[fname] = p
    return paths


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """(n, C, H, W) float in [0,1] → (n, C, size, size), bilinear (torch, antialiased)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False).numpy()


def load_digit_file_domains(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    root = Path(cfg.get("path") or "~/.cache/transferlab/digits").expanduser()
    root = root if root.is_absolute() else base_dir / root
    names = cfg.get("names") or ["mnist", "usps"]
    unknown = [n for n in names if n not in URLS]
    if unknown:
        raise DataError(f"config field 'data.names': unknown digit set {unknown}; expected some of {list(URLS)}")
    size = cfg.get("image_size", 28)
    gray = cfg.get("grayscale", True)
    download = bool(cfg.get("download", False))
    out = {}
    for name in names:
        files = _fetch(name, root / FOLDERS[name], download)
        if name == "mnist":
            def pick(prefix):
                return next(p for k, p in files.items() if k.startswith(prefix))
            split = {
                part: (read_idx(pick(f"{part}-images"))[:, None] / 255.0, read_idx(pick(f"{part}-labels")))
                for part in ("train", "t10k")
            }
            (Xtr, ytr), (Xte, yte) = split["train"], split["t10k"]
        elif name == "usps":
            Xtr, ytr = read_usps(files["usps.bz2"])
            Xte, yte = read_usps(files["usps.t.bz2"])
            Xtr, Xte = Xtr[:, None], Xte[:, None]
        else:
            from scipy.io import loadmat

            def svhn(p):
                m = loadmat(str(p))
                return m["X"].transpose(3, 2, 0, 1) / 255.0, m["y"].reshape(-1) % 10
            (Xtr, ytr), (Xte, yte) = svhn(files["train_32x32.mat"]), svhn(files["test_32x32.mat"])
        if gray and Xtr.shape[1] == 3:
            weights = np.array([0.299, 0.587, 0.114])[None, :, None, None]
            Xtr, Xte = (Xtr * weights).sum(1, keepdims=True), (Xte * weights).sum(1, keepdims=True)
        if not gray and Xtr.shape[1] == 1:
            Xtr, Xte = np.repeat(Xtr, 3, axis=1), np.repeat(Xte, 3, axis=1)
        out[name] = Domain(
            name=name, X=_resize(Xtr, size).astype(np.float32), y=np.asarray(ytr, dtype=np.int64),
            X_test=_resize(Xte, size).astype(np.float32), y_test=np.asarray(yte, dtype=np.int64),
            kind="image", class_names=[str(d) for d in range(10)],
            description=f"{name} digits at {size}px from {root / FOLDERS[name]}", family="torchvision",
        )
    return out
