"""Cells: a config expanded into independent units of work, each keyed by a hash of what determines it.

A cell is one (source, target, method, seed, budget) with the model, training and data-protocol settings
that shape its result, and the content fingerprints of its source and target domains as loaded
(:meth:`adapt.domains.Domain.fingerprint`). Its ``key`` (a hash of all of those, DomainBed-style) names its
record file, so a rerun finds what is done — and a rerun on changed data finds nothing: new data, new keys.
``compute_key`` drops what a method does not read: the ``scratch`` and ``target-only`` baselines never see
the source (nor its fingerprint), so their results are computed once per (target, seed, budget) and shared
by every pair.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

# methods trained on target labels only: no cell at budget 0, one result per (target, seed, budget)
SOURCE_FREE_METHODS = ("scratch", "target-only")

# 2: the domains' content fingerprints are part of a cell's identity
# 3: the fair protocol (one lr schedule for all, finetune's full target phase, convergence fields)
RECORD_VERSION = 3
# Settings that change how fast a cell runs or what else it writes, not its result: not part of its identity
# (adapt.features promises identical records with and without its cache; ``save_models`` only keeps the final
# weights beside the record — the training is the same).
SPEED_ONLY_TRAIN_KEYS = ("feature_cache", "save_models")
# Where the data files are, not what they hold: with the domains' content fingerprints in the key, moving the
# data (or writing its path another way) is the same cell.
LOCATION_ONLY_DATA_KEYS = ("path", "files")
# Keys that list which domains a family builds (digits/mnist_uci/torchvision ``names``, shift ``shifts``): each
# domain's content is in its own fingerprint, so adding a domain to the list must not change the other cells.
DOMAIN_LIST_DATA_KEYS = ("names", "shifts")


def _digest(payload: dict) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    """One unit of a transfer matrix (all plain data, so it pickles to Ray/process workers)."""

    source: str
    target: str
    method: str                      # the label records carry (== method_name unless the config set one)
    method_name: str                 # the registered method
    seed: int
    budget: int
    method_params: dict = field(default_factory=dict, hash=False, compare=False)
    model: dict = field(default_factory=dict, hash=False, compare=False)
    train: dict = field(default_factory=dict, hash=False, compare=False)
    data: dict = field(default_factory=dict, hash=False, compare=False)
    source_fingerprint: str = ""     # content hashes of the loaded source / target arrays (identity)
    target_fingerprint: str = ""
    target_labels: int | None = None  # labelled target samples the budget gives (a fact, not identity)
    # plugin code it runs: {"method": identity, "backbone": identity} (adapt.plugins); empty for built-ins
    code: dict = field(default_factory=dict, hash=False, compare=False)
    # a sweep's configuration: the entry's label (``dann`` for ``dann[trade_off=0.3]``; empty outside sweeps) and
    # its grid point — names, not settings (the values are in method_params/train): not identity
    sweep: str = ""
    grid: dict = field(default_factory=dict, hash=False, compare=False)
    grid_index: int = 0              # the configuration's place in its grid (selection's tie-break: first wins)
    # what the cell computes at train time for label-free selection (adapt.selection): the held-out source
    # fraction and the labelled-target folds; it changes what the cell trains on, so it is identity (empty:
    # no selection, and keys as before sweeps existed)
    selection: dict = field(default_factory=dict, hash=False, compare=False)

    def _identity(self, with_source: bool) -> dict:
        ident = asdict(self)
        ident["version"] = RECORD_VERSION
        ident.pop("method")  # a label is a name, not a setting: renaming must not rerun
        ident.pop("target_labels")  # follows from the data, seed and budget, which are all in the key
        ident.pop("sweep")
        ident.pop("grid")
        ident.pop("grid_index")
        if not ident["selection"]:
            ident.pop("selection")
        if not ident["code"]:  # built-ins only: keys stay what they were before plugins existed
            ident.pop("code")
        ident["train"] = {k: v for k, v in ident["train"].items() if k not in SPEED_ONLY_TRAIN_KEYS}
        if self.target_fingerprint:  # content identifies the data; without fingerprints the location must
            ident["data"] = {k: v for k, v in ident["data"].items()
                             if k not in LOCATION_ONLY_DATA_KEYS + DOMAIN_LIST_DATA_KEYS}
        if not with_source:
            ident["source"] = None
            ident["source_fingerprint"] = None
        return ident

    @property
    def key(self) -> str:
        """Hash naming this cell's record (everything that determines its result, plus the source)."""
        return _digest(self._identity(with_source=True))

    @property
    def compute_key(self) -> str:
        """Hash of what the computation reads: equal for cells whose results must be identical."""
        return _digest(self._identity(with_source=self.method_name not in SOURCE_FREE_METHODS))

    @property
    def title(self) -> str:
        return f"{self.source}->{self.target} {self.method} seed={self.seed} budget={self.budget}"
