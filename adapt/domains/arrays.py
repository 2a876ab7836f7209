"""``arrays``: the user's own data — a folder with one file (or a train/test pair of files) per domain.

Formats, by extension:

========== ==================================================================================
``.npz``   arrays ``X`` and ``y`` (names set by ``x_key`` / ``y_key``)
``.mat``   MATLAB v5 via ``scipy.io.loadmat``; ``x_key`` / ``y_key`` name the variables
           (default: the first of ``X, fts, features, data`` and ``y, labels, label, Y`` present)
``.csv``   a header row; ``label_column`` (default ``label``) holds the class, every other column is a
           numeric feature
``.parquet`` as csv
``.svmlight`` / ``.libsvm``  ``label index:value …`` lines (``sklearn.datasets.load_svmlight_file``)
========== ==================================================================================

Domains come from ``files: {domain: file}`` or ``files: {domain: {train: F, test: F}}``; without ``files``
every data file in ``path`` is a domain named by its stem, and a ``<domain>_train.<ext>`` /
``<domain>_test.<ext>`` pair is one domain with that split. Optional ``preprocess`` steps (in order):
``l1`` (divide each row by its L1 norm), ``zscore`` (standardise each feature within each domain, population
std), ``standardize`` (standardise each feature with the mean/std of all domains pooled).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Domain, encode_labels

EXTENSIONS = (".npz", ".mat", ".csv", ".parquet", ".svmlight", ".libsvm")
X_KEY_GUESSES = ("X", "x", "fts", "features", "data")
Y_KEY_GUESSES = ("y", "Y", "labels", "label")


# ------------------------------------------------------------------------------------------- readers
def read_array_file(path: Path, x_key: str | None = None, y_key: str | None = None,
                    label_column: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """Read one file into ``(X (n, d) float, y (n,) raw labels)``; :class:`DataError` names what is wrong."""
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    ext = path.suffix.lower()
    try:
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            X, y = _pick(path, arrays, x_key, y_key)
        elif ext == ".mat":
            from scipy.io import loadmat

            arrays = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
            X, y = _pick(path, arrays, x_key, y_key)
        elif ext in (".csv", ".parquet"):
            X, y = _read_table(path, label_column)
        elif ext in (".svmlight", ".libsvm"):
            from sklearn.datasets import load_svmlight_file

            Xs, y = load_svmlight_file(str(path))
            X = Xs.toarray()
        else:
            raise DataError(f"{path}: unsupported file type '{ext}'; expected one of {list(EXTENSIONS)}")
    except DataError:
        raise
    except Exception as err:  # a corrupt file: name it, say what was expected
        raise DataError(f"{path}: could not read as {ext or 'data'} file ({type(err).__name__}: {err})") from None
    X = np.asarray(X)
    y = np.asarray(y).reshape(-1) if np.asarray(y).size == len(X) else np.asarray(y)
    if X.ndim != 2:
        raise DataError(f"{path}: features must be a 2-d array (samples × features), got shape {X.shape}")
    if len(X) == 0:
        raise DataError(f"{path}: holds no samples (expected at least one row of features and a label)")
    if X.shape[1] == 0:
        raise DataError(f"{path}: has no feature columns (only labels); expected at least one feature")
    if y.ndim != 1 or len(y) != len(X):
        raise DataError(f"{path}: expected one label per sample ({len(X)}), got labels of shape {y.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise DataError(f"{path}: features must be numeric, got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise DataError(f"{path}: features contain NaN or infinite values")
    return X.astype(np.float64), y


def _pick(path: Path, arrays: Mapping[str, np.ndarray], x_key, y_key):
    def choose(key, guesses, what, field):
        if key is not None:
            if key not in arrays:
                raise DataError(
                    f"{path}: no variable '{key}' (data.{field}); the file has {sorted(arrays)}"
                )
            return arrays[key]
        for g in guesses:
            if g in arrays:
                return arrays[g]
        raise DataError(f"{path}: cannot find the {what}; set data.{field} to one of {sorted(arrays)}")

    return choose(x_key, X_KEY_GUESSES, "features", "x_key"), choose(y_key, Y_KEY_GUESSES, "labels", "y_key")


def _read_table(path: Path, label_column: str):
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: is empty (expected a header row, then one row per sample)") from None
    if label_column not in frame.columns:
        raise DataError(
            f"{path}: no label column '{label_column}' (data.label_column); columns are {list(frame.columns)[:8]}"
        )
    if frame.empty:
        raise DataError(f"{path}: has a header but no rows (expected one row per sample)")
    empty = np.flatnonzero(frame[label_column].isna().to_numpy())
    if len(empty):
        rows = ", ".join(str(i + 2) for i in empty[:5])  # +2: 1-based, after the header line
        raise DataError(f"{path}: label column '{label_column}' is empty on line(s) {rows}"
                        f"{' …' if len(empty) > 5 else ''}; expected a class in every row")
    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise DataError(f"{path}: has only the label column '{label_column}'; expected feature columns too")
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise DataError(f"{path}: feature column '{bad[0]}' is not numeric")
    return features.to_numpy(), frame[label_column].to_numpy()


# ------------------------------------------------------------------------------------------- discovery
def discover_files(folder: Path, files: Mapping | None) -> dict[str, dict[str, Path]]:
    """``{domain: {"all": path}}`` or ``{domain: {"train": path, "test": path}}`` for a data folder."""
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found (data.path)")
    if files:
        out = {}
        for domain, spec in files.items():
            if isinstance(spec, str):
                out[str(domain)] = {"all": folder / spec}
            else:
                out[str(domain)] = {"train": folder / spec["train"], "test": folder / spec["test"]}
            for p in out[str(domain)].values():
                if not p.is_file():
                    raise DataError(f"{p}: data file not found (data.files.{domain})")
        return out
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if not found:
        raise DataError(f"{folder}: no data files ({', '.join(EXTENSIONS)}) in data.path")
    by_stem: dict[str, list[Path]] = {}
    for p in found:
        by_stem.setdefault(p.stem, []).append(p)
    clash = next((ps for ps in by_stem.values() if len(ps) > 1), None)
    if clash:
        raise DataError(f"{folder}: {' and '.join(p.name for p in clash)} would both be domain "
                        f"'{clash[0].stem}'; remove one, or name each domain's file in data.files")
    out: dict[str, dict[str, Path]] = {}
    for p in found:
        stem = p.stem
        for part in ("train", "test"):
            if stem.endswith("_" + part):
                out.setdefault(stem[: -len(part) - 1], {})[part] = p
                break
        else:
            out.setdefault(stem, {})["all"] = p
    for domain, parts in out.items():
        if "all" in parts and len(parts) > 1:
            raise DataError(f"{folder}: domain '{domain}' has both a single file and a _train/_test pair")
        if "all" not in parts and set(parts) != {"train", "test"}:
            have = next(iter(parts.values())).name
            raise DataError(f"{folder}: '{have}' has no matching _{'test' if 'train' in parts else 'train'} file")
    return out


# ------------------------------------------------------------------------------------------- preprocessing
def l1_normalise(X: np.ndarray) -> np.ndarray:
    """Divide each row by its L1 norm (rows of zeros stay zero)."""
    norm = np.abs(X).sum(axis=1, keepdims=True)
    return X / np.where(norm == 0, 1.0, norm)


def zscore(X: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> np.ndarray:
    """Standardise each feature (population std, ddof=0); constant features become 0."""
    mean = X.mean(axis=0) if mean is None else mean
    std = X.std(axis=0) if std is None else std
    return (X - mean) / np.where(std == 0, 1.0, std)


def preprocess_domains(parts: dict[str, list[np.ndarray]], steps: list[str]) -> dict[str, list[np.ndarray]]:
    """Apply ``steps`` to each domain's feature blocks (``[X]`` or ``[X_train, X_test]``).

    ``zscore`` statistics come from all of a domain's samples (train and test files together: the
    statistics use no labels, as in the CORAL/GFK protocol); ``standardize`` pools every domain.
    """
    for step in steps:
        if step == "l1":
            parts = {d: [l1_normalise(b) for b in blocks] for d, blocks in parts.items()}
        elif step == "zscore":
            new = {}
            for d, blocks in parts.items():
                stacked = np.concatenate(blocks)
                mean, std = stacked.mean(axis=0), stacked.std(axis=0)
                new[d] = [zscore(b, mean, std) for b in blocks]
            parts = new
        elif step == "standardize":
            stacked = np.concatenate([b for blocks in parts.values() for b in blocks])
            mean, std = stacked.mean(axis=0), stacked.std(axis=0)
            parts = {d: [zscore(b, mean, std) for b in blocks] for d, blocks in parts.items()}
        else:
            raise DataError(f"config field 'data.preprocess': unknown step '{step}'")
    return parts


# ------------------------------------------------------------------------------------------- family
def load_array_domains(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    """Build the ``arrays`` domains a ``data:`` config describes (see the module docstring)."""
    if not cfg.get("path"):
        raise DataError("config field 'data.path': the arrays family needs a folder of data files")
    folder = Path(cfg["path"]).expanduser()
    folder = folder if folder.is_absolute() else base_dir / folder
    layout = discover_files(folder, cfg.get("files"))
    x_key, y_key = cfg.get("x_key"), cfg.get("y_key")
    label_column = cfg.get("label_column", "label")

    blocks: dict[str, list[np.ndarray]] = {}
    labels: dict[str, list[np.ndarray]] = {}
    skipped: list[str] = []
    first_error: DataError | None = None
    for domain, parts in layout.items():
        try:
            read = [read_array_file(parts[p], x_key, y_key, label_column) for p in ("all", "train", "test")
                    if p in parts]
        except DataError as err:
            # An auto-discovered file without the data keys (e.g. Office-Caltech's *_imgs.mat beside the
            # features) is not silently dropped: collect them all and refuse, naming them.
            missing_key = "cannot find the" in str(err) or "no variable" in str(err)
            if cfg.get("files") is None and missing_key:
                skipped.extend(p.name for p in parts.values())
                first_error = first_error or err
                continue
            raise
        blocks[domain] = [X for X, _ in read]
        labels[domain] = [y for _, y in read]
    if skipped and not blocks:
        raise first_error
    if skipped:
        keys = f"'{x_key or '|'.join(X_KEY_GUESSES)}' and '{y_key or '|'.join(Y_KEY_GUESSES)}'"
        raise DataError(f"{folder}: auto-discovery found file(s) without the data arrays {keys}: "
                        f"{', '.join(skipped[:5])}{' …' if len(skipped) > 5 else ''}; list the domains in "
                        f"data.files (or set data.x_key/y_key)")

    dims = {d: b[0].shape[1] for d, b in blocks.items()}
    for d, bs in blocks.items():
        for b in bs[1:]:
            if b.shape[1] != dims[d]:
                raise DataError(f"domain '{d}': train and test files have {dims[d]} vs {b.shape[1]} features")
    if len(set(dims.values())) > 1:
        ref = next(iter(dims))
        odd = next(d for d in dims if dims[d] != dims[ref])
        raise DataError(
            f"domains have different feature counts: '{ref}' has {dims[ref]}, '{odd}' has {dims[odd]}"
        )

    flat = {f"{d}\x00{i}": y for d, ys in labels.items() for i, y in enumerate(ys)}
    per_domain = {d: np.concatenate(ys) for d, ys in labels.items()}
    encode_labels(per_domain)  # raises when domains do not share a label space
    encoded, class_names = encode_labels(flat)
    blocks = preprocess_domains(blocks, list(cfg.get("preprocess") or []))

    out = {}
    for d, bs in blocks.items():
        ys = [encoded[f"{d}\x00{i}"] for i in range(len(bs))]
        given_test = len(bs) == 2
        out[d] = Domain(
            name=d,
            X=bs[0].astype(np.float32),
            y=ys[0],
            X_test=bs[1].astype(np.float32) if given_test else None,
            y_test=ys[1] if given_test else None,
            kind="vector",
            class_names=class_names,
            description=f"{', '.join(p.name for p in layout[d].values())}"
            + (f" ({'+'.join(cfg['preprocess'])})" if cfg.get("preprocess") else ""),
            family="arrays",
        )
    return out
