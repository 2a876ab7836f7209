"""One question per run folder: is a config the same question as the run already in a folder?

A run folder answers one question: *these* data (by content), *this* model, *these* training settings, *these*
methods with their parameters. A config may add cells to it — more seeds, methods, budgets, pairs or
domains — and a rerun then extends the run, reusing every finished cell byte for byte. A config that changes
what existing cells mean is refused before anything is written, with one line naming the keys that differ:

- ``data.*`` (family, preprocessing, split, class policy…), ``model.*`` and ``train.*`` — except where the data
  files are (``data.path``, ``data.files``: content is compared by fingerprint) and speed-only settings
  (``train.feature_cache``);
- the parameters of a method under a label the folder already has (``methods[dann]``);
- the content fingerprint of a domain the folder already has (the data files changed on disk).

A folder written before fingerprints existed has none to compare; its records (keyed without them) are never
reused or reported as the current config's cells, and the run says so.

The way out is a new ``--out`` folder, or ``--supersede``: the folder's question becomes the new config, the
old records stay in ``cells/`` (their keys differ, so they are never reported as the new question's) and
``run.json``'s ``history`` says what was asked before and until when.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from adapt.cells import DOMAIN_LIST_DATA_KEYS, LOCATION_ONLY_DATA_KEYS, SPEED_ONLY_TRAIN_KEYS
from adapt.errors import DataError, TransferlabError

MEANING_SECTIONS = ("data", "model", "train")
# Keys that do not change what a cell means: speed settings, where the data lives, and which domains a family
# lists (each domain's content is compared by fingerprint instead, so adding a domain extends the run).
NOT_MEANING = {f"train.{k}" for k in SPEED_ONLY_TRAIN_KEYS} | {
    f"data.{k}" for k in LOCATION_ONLY_DATA_KEYS + DOMAIN_LIST_DATA_KEYS}


def _flat(value, prefix: str) -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}"))
        return out
    return {prefix: json.dumps(value, sort_keys=True, default=str)}


def _methods(config: Mapping) -> dict[str, dict]:
    return {m.get("label", m.get("name")): m for m in config.get("methods") or [] if isinstance(m, Mapping)}


def question_differences(previous: Mapping, config: Mapping, fingerprints: Mapping[str, str]) -> list[str]:
    """The keys on which ``config`` (``Config.to_dict()``) and ``fingerprints`` change what the cells of
    ``previous`` (a ``run.json``) mean, e.g. ``["train.steps (300 → 100)", "data fingerprint of 'a'"]``."""
    old = previous.get("config") or {}
    diffs: list[str] = []
    for section in MEANING_SECTIONS:
        before, after = _flat(old.get(section) or {}, section), _flat(config.get(section) or {}, section)
        for key in sorted(set(before) | set(after)):
            if ".".join(key.split(".")[:2]) in NOT_MEANING:
                continue
            if before.get(key) != after.get(key):
                diffs.append(f"{key} ({before.get(key, 'unset')} → {after.get(key, 'unset')})")
    old_methods, new_methods = _methods(old), _methods(config)
    for label in sorted(set(old_methods) & set(new_methods)):
        if old_methods[label] != new_methods[label]:
            diffs.append(f"methods[{label}] parameters")
    # plugin code (adapt.plugins): an edited plugin file changes what its cells mean
    old_code, new_code = old.get("plugins") or {}, config.get("plugins") or {}
    if "backbone" in old_code and old_code.get("backbone") != new_code.get("backbone"):
        diffs.append(f"plugin code of backbone {old_code['backbone'].get('path')!r} (its source changed)")
    for label in sorted(set(old_code.get("methods") or {}) & set(new_methods)):
        if old_code["methods"][label] != (new_code.get("methods") or {}).get(label):
            diffs.append(f"plugin code of methods[{label}] (its source changed)")
    old_prints = previous.get("fingerprints")
    # A folder from before fingerprints: nothing to compare, and nothing to confuse either — its records' keys
    # (record version 1) never equal a cell's key now, so they are kept as other records, never reused.
    if isinstance(old_prints, Mapping):
        for name in sorted(set(old_prints) & set(fingerprints)):
            if old_prints[name] != fingerprints[name]:
                diffs.append(f"data fingerprint of domain '{name}' (the data changed)")
    return diffs


def check_same_question(root: Path, previous: Mapping | None, config: Mapping, fingerprints: Mapping[str, str],
                        supersede: bool) -> list[str]:
    """Refuse (``TransferlabError``) a config that changes the meaning of the run in ``root``; returns the
    differences (empty when the config is the same question or only adds cells, or without a previous run).
    With ``supersede`` the differences are returned instead of refused."""
    if not previous:
        return []
    diffs = question_differences(previous, config, fingerprints)
    if diffs and not supersede:
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        raise TransferlabError(
            f"{root}: holds a run of a different question — {shown}. Use a new --out folder, or add "
            f"--supersede to make this config the folder's question (old records are kept, not reported)")
    return diffs


def verify_fingerprints(domains: Mapping, recorded: Mapping[str, str] | None, where: str, use: str) -> None:
    """Refuse (``DataError``) reading a finished run against domains whose content is not the run's: a domain
    in both whose fingerprint differs from ``run.json``'s (``recorded``; nothing to check when absent).
    ``use`` says what would have been wrong, e.g. "explanations would describe other data"."""
    if not isinstance(recorded, Mapping):
        return
    changed = [n for n in sorted(set(domains) & set(recorded)) if domains[n].fingerprint() != recorded[n]]
    if changed:
        raise DataError(f"{where}: the data changed on disk since the run (fingerprint of domain(s) "
                        f"{', '.join(repr(n) for n in changed)} differs from run.json's); {use}")
