"""The domain: a named, labelled sample set with deterministic seeded splits and label budgets.

Every family (``digits``, ``shift``, ``arrays``, ``imagefolder``, ``torchvision``, ``hf``) produces
:class:`Domain` objects and nothing else; training and analysis only ever see this class.

Data convention (one for everyone):

- ``kind="vector"``: ``X`` is ``float32`` of shape ``(n, d)``;
- ``kind="image"``: ``X`` is ``float32`` in ``[0, 1]`` or ``uint8`` in ``[0, 255]``, shape ``(n, C, H, W)``;
- ``kind="text"``: ``X`` is a 1-d ``object`` array of ``str``;
- ``y`` is ``int64`` of shape ``(n,)`` with values in ``0 .. n_classes-1``; the class index means the same
  class in every domain of a family (``class_names`` says which).
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError

KINDS = ("vector", "image", "text")


def stable_seed(*parts: object) -> int:
    """A seed derived from ``parts`` that is the same in every process and Python version.

    (Python's ``hash`` of a string is salted per process, so it cannot key reproducible splits.)
    """
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Split:
    """One seed's train/test split of a domain: index arrays into ``Domain.X`` (or its test part).

    ``train`` indexes the training pool; ``test`` indexes the held-out evaluation set. When the domain
    came with its own test file, ``test`` indexes ``Domain.X_test`` (``given_test`` is True).
    """

    train: np.ndarray
    test: np.ndarray
    given_test: bool = False
    transductive: bool = False


@dataclass(eq=False)
class Domain:
    """A named labelled sample set.

    Parameters
    ----------
    name : str
        Domain name as used in configs (``pairs: [[amazon, webcam]]``).
    X, y : arrays
        Samples and integer labels (see the module docstring for shapes per ``kind``). When the data came
        as a train/test pair of files, these hold the train file.
    kind : {"vector", "image", "text"}
    class_names : list of str
        Name of each class index, shared across the domains of one family.
    X_test, y_test : arrays, optional
        A given test set (``<domain>_test.<ext>``); when present, splits use it instead of drawing one.
    description : str
        One line on how the domain was made (shown by ``transferlab status`` and reports).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    kind: str = "vector"
    class_names: list[str] = field(default_factory=list)
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    description: str = ""
    family: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"domain '{self.name}': kind must be one of {KINDS}, got '{self.kind}'")
        self.y = _check_labels(self.name, self.y, len(self.X))
        if self.X_test is not None:
            if self.y_test is None:
                raise DataError(f"domain '{self.name}': X_test given without y_test")
            self.y_test = _check_labels(self.name + " (test)", self.y_test, len(self.X_test))
        if not self.class_names:
            top = int(max(self.y.max(initial=-1), -1 if self.y_test is None else self.y_test.max(initial=-1)))
            self.class_names = [str(i) for i in range(top + 1)]

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """A content hash of the domain as loaded (after preprocessing): kind, class names, and every array's
        dtype, shape and bytes (``X, y`` and the given test set, if any). Equal data gives an equal
        fingerprint in any process; one changed value changes it. The name is not part of it: identical
        data under two names has one fingerprint. Computed once per object (SHA-256, first 16 hex digits).
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            h = hashlib.sha256()
            h.update(f"{self.kind}|{len(self.class_names)}|{'|'.join(self.class_names)}".encode())
            for part in (self.X, self.y, self.X_test, self.y_test):
                _hash_array(h, part)
            cached = self.__dict__["_fingerprint"] = h.hexdigest()[:16]
        return cached

    def classes_present(self) -> list[int]:
        """Class indices with at least one sample (train or given test)."""
        present = set(np.unique(self.y).tolist())
        if self.y_test is not None:
            present |= set(np.unique(self.y_test).tolist())
        return sorted(present)

    # ------------------------------------------------------------------ shape facts
    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (``(d,)``, ``(C, H, W)``, or ``()`` for text)."""
        return tuple(np.shape(self.X)[1:]) if self.kind != "text" else ()

    def __len__(self) -> int:
        return len(self.X) + (0 if self.X_test is None else len(self.X_test))

    def __repr__(self) -> str:
        test = "" if self.X_test is None else f", given test n={len(self.X_test)}"
        return (
            f"Domain({self.name!r}, kind={self.kind}, n={len(self.X)}{test}, "
            f"input={self.input_shape}, classes={self.n_classes})"
        )

    # ------------------------------------------------------------------ splits and budgets
    def split(self, seed: int, test_fraction: float = 0.3, transductive: bool = False) -> Split:
        """The seeded train/test split of this domain.

        Stratified by class; the same ``(domain name, seed, test_fraction)`` always gives the same split, in
        any process. With a given test file the split is that file. ``transductive=True`` is the classic
        unsupervised protocol: every sample is both in the (unlabelled) training pool and in the test set.
        """
        n = len(self.X)
        if transductive:
            idx = np.arange(n)
            return Split(train=idx, test=idx if self.X_test is None else np.arange(len(self.X_test)),
                         given_test=self.X_test is not None, transductive=True)
        if self.X_test is not None:
            return Split(train=np.arange(n), test=np.arange(len(self.X_test)), given_test=True)
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
        rng = np.random.default_rng(stable_seed("split", self.name, seed))
        test = []
        for c in np.unique(self.y):
            members = np.flatnonzero(self.y == c)
            rng.shuffle(members)
            n_test = int(round(len(members) * test_fraction))
            if len(members) >= 2:
                n_test = min(max(n_test, 1), len(members) - 1)
            test.append(members[:n_test])
        test_idx = np.sort(np.concatenate(test)) if test else np.array([], dtype=np.int64)
        train_idx = np.setdiff1d(np.arange(n), test_idx)
        return Split(train=train_idx.astype(np.int64), test=test_idx.astype(np.int64))

    def train_test(self, split: Split):
        """``(X_train, y_train, X_test, y_test)`` for a split."""
        X_test, y_test = (self.X_test, self.y_test) if split.given_test else (self.X, self.y)
        return self.X[split.train], self.y[split.train], X_test[split.test], y_test[split.test]

    def labelled_subset(self, split: Split, k: int, seed: int) -> np.ndarray:
        """The label budget: ``k`` labelled samples per class drawn from ``split.train``.

        Returns indices into ``Domain.X`` (a subset of ``split.train``), seeded by ``(name, seed, k)`` and
        nested across budgets for one seed is *not* promised. Classes with fewer than ``k`` training samples
        contribute all they have. ``k=0`` gives an empty array.
        """
        if k < 0:
            raise DataError(f"label budget must be >= 0, got {k}")
        if k == 0:
            return np.array([], dtype=np.int64)
        rng = np.random.default_rng(stable_seed("budget", self.name, seed, k))
        pool_y = self.y[split.train]
        chosen = []
        for c in np.unique(pool_y):
            members = split.train[pool_y == c]
            chosen.append(rng.permutation(members)[:k])
        return np.sort(np.concatenate(chosen)).astype(np.int64)


def _hash_array(h, array) -> None:
    if array is None:
        h.update(b"none;")
        return
    a = np.asarray(array)
    if a.dtype == object:  # text: each string's length and UTF-8 bytes, so ["ab", "c"] != ["a", "bc"]
        h.update(f"text{a.shape};".encode())
        for item in a.reshape(-1).tolist():
            b = str(item).encode("utf-8")
            h.update(len(b).to_bytes(8, "little") + b)
        return
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape};".encode())
    h.update(memoryview(a).cast("B"))


def restrict_classes(domain: Domain, keep: list[int], class_names: list[str]) -> Domain:
    """``domain`` with only the samples of classes ``keep`` (old indices), re-indexed ``0..len(keep)-1``
    with ``class_names`` (the kept classes' names, in ``keep``'s order)."""
    lookup = np.full(max(len(domain.class_names), max(keep, default=0) + 1), -1, dtype=np.int64)
    lookup[np.asarray(keep, dtype=np.int64)] = np.arange(len(keep))

    def part(X, y):
        mask = np.isin(y, keep)
        return X[mask], lookup[y[mask]]

    X, y = part(domain.X, domain.y)
    X_test = y_test = None
    if domain.X_test is not None:
        X_test, y_test = part(domain.X_test, domain.y_test)
    return Domain(name=domain.name, X=X, y=y, kind=domain.kind, class_names=list(class_names), X_test=X_test,
                  y_test=y_test, description=f"{domain.description} (classes: intersection)",
                  family=domain.family)


def integer_labels(y, n: int, what: str) -> np.ndarray:
    """``y`` as an ``int64`` vector of ``n`` labels (a column vector or whole-valued floats are accepted).

    Raises :class:`DataError` naming ``what`` when the shape or the values do not fit.
    """
    y = np.asarray(y)
    if y.ndim != 1 and y.size == n:
        y = y.reshape(-1)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{what}: labels must be a 1-d array of {n} values, got shape {np.shape(y)}")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{what}: labels must be integers 0..K-1, got dtype {y.dtype}")
    return y.astype(np.int64)


def _check_labels(name: str, y, n: int) -> np.ndarray:
    y = integer_labels(y, n, f"domain '{name}'")
    if n and y.min() < 0:
        raise DataError(f"domain '{name}': labels must be >= 0, got {int(y.min())}")
    return y


def encode_labels(named_labels: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Map raw labels (ints or strings, per domain) to shared class indices ``0..K-1``.

    The class order is the sorted union of all domains' labels, so one class means one index everywhere.
    Raises :class:`DataError` when the label types differ across domains, or when a domain holds labels that
    no other domain has (the domains then do not share a label space).
    """
    kinds = {name: ("str" if np.asarray(v).dtype.kind in "OUS" else "num") for name, v in named_labels.items()}
    if len(set(kinds.values())) > 1:
        detail = ", ".join(f"{n}: {k}" for n, k in kinds.items())
        raise DataError(f"labels do not match across domains: some are text, some numbers ({detail})")
    raw_sets = {name: set(np.unique(np.asarray(v)).tolist()) for name, v in named_labels.items()}
    if len(raw_sets) > 1:
        for name, labels in raw_sets.items():
            others = set().union(*(s for n, s in raw_sets.items() if n != name))
            if not labels & others:
                raise DataError(
                    f"labels do not match across domains: domain '{name}' shares no label with the others "
                    f"(its labels: {sorted(labels)[:5]}…, others: {sorted(others)[:5]}…)"
                )
    classes = sorted(set().union(*raw_sets.values()))
    index = {c: i for i, c in enumerate(classes)}
    encoded = {name: np.array([index[v] for v in np.asarray(vals).tolist()], dtype=np.int64)
               for name, vals in named_labels.items()}
    return encoded, [str(c) for c in classes]
