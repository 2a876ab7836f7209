"""Config → plan: load the domains, fingerprint them, run the pre-flight checks, expand the cells.

Nothing here trains or writes: a :class:`Plan` is what a run will do, checked (:mod:`adapt.preflight`) and
identified (each cell's key includes its domains' content fingerprints, :mod:`adapt.cells`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .cells import Cell, expand_cells
from .config import Config, resolve_domains


@dataclass
class Plan:
    """What a config asks for: the loaded domains, the resolved domains and pairs, every cell, and the
    content fingerprint of each domain used."""

    config: Config
    domains: dict
    names: list[str]
    pairs: list[tuple[str, str]]
    cells: list[Cell]
    fingerprints: dict[str, str] = field(default_factory=dict)


def plan_matrix(config: Config) -> Plan:
    """Load the config's domains, check everything checkable before training, and expand its cells
    (raises ConfigError/DataError with a one-line message on bad input)."""
    from .domains import load_domains
    from .preflight import preflight

    domains = load_domains(config.data, config.base_dir)
    names, pairs = resolve_domains(config, domains)
    used = list(dict.fromkeys([*names, *(d for p in pairs for d in p)]))
    target_labels = preflight(config, domains, used, pairs)
    fingerprints = {n: domains[n].fingerprint() for n in used}
    cells = expand_cells(config, pairs, fingerprints, target_labels)
    return Plan(config=config, domains=domains, names=names, pairs=pairs, cells=cells, fingerprints=fingerprints)


def plan_distances(config: Config) -> tuple[dict, list[tuple[str, str]]]:
    """The loaded domains and the config's (source, target) pairs, for distance tables."""
    from .domains import load_domains

    domains = load_domains(config.data, config.base_dir)
    _, pairs = resolve_domains(config, domains)
    return domains, pairs


def default_run_dir(config: Config) -> Path:
    return Path("results") / config.name
