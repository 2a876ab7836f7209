"""Cells: a config expanded into independent units of work, each keyed by a hash of what determines it.

A cell is one (source, target, method, seed, budget) with the model, training and data-protocol settings
that shape its result. Its ``key`` (a hash of all of those, DomainBed-style) names its record file, so a
rerun finds what is done. ``compute_key`` drops what a method does not read: the ``scratch`` baseline never
sees the source, so its result is computed once per (target, seed, budget) and shared by every pair.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from .config import Config, MethodSpec

RECORD_VERSION = 1


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

    def _identity(self, with_source: bool) -> dict:
        ident = asdict(self)
        ident["version"] = RECORD_VERSION
        ident.pop("method")  # a label is a name, not a setting: renaming must not rerun
        if not with_source:
            ident["source"] = None
        return ident

    @property
    def key(self) -> str:
        """Hash naming this cell's record (everything that determines its result, plus the source)."""
        return _digest(self._identity(with_source=True))

    @property
    def compute_key(self) -> str:
        """Hash of what the computation reads: equal for cells whose results must be identical."""
        return _digest(self._identity(with_source=self.method_name != "scratch"))

    @property
    def title(self) -> str:
        return f"{self.source}->{self.target} {self.method} seed={self.seed} budget={self.budget}"


def expand_cells(config: Config, pairs: list[tuple[str, str]]) -> list[Cell]:
    """Every cell of the matrix: pairs × methods × budgets × seeds, in a stable order.

    ``scratch`` needs target labels, so it has no cell at budget 0.
    """
    data_identity = {k: v for k, v in config.data.items()}
    cells = []
    for source, target in pairs:
        for spec in config.methods:
            for budget in config.budgets:
                if spec.name == "scratch" and budget == 0:
                    continue
                for seed in config.seeds:
                    cells.append(_cell(spec, source, target, seed, budget, config, data_identity))
    return cells


def _cell(spec: MethodSpec, source, target, seed, budget, config: Config, data_identity) -> Cell:
    return Cell(source=source, target=target, method=spec.label, method_name=spec.name, seed=seed,
                budget=budget, method_params=dict(spec.params), model=dict(config.model),
                train=dict(config.train), data=data_identity)
