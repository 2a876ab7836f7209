"""The run config: one YAML file names everything a transfer matrix needs.

Example (the built-in demo, ``configs/demo.yaml``)::

    name: demo
    data: {kind: digits}
    domains: [original, rotated, inverted, noisy]
    pairs: all
    methods: [finetune, dann, coral, scratch]
    budgets: [0, 5]
    seeds: 3
    model: {backbone: mlp, hidden: [128]}
    train: {steps: 300, batch_size: 64, lr: 0.001}

``load_config(path)`` parses it with ``yaml.safe_load`` and validates every field; any problem raises
:class:`~adapt.errors.ConfigError` whose one-line message names the file, the field and what was expected.
Defaults live in :mod:`adapt.defaults` (``DATA_DEFAULTS``, ``MODEL_DEFAULTS``, ``TRAIN_DEFAULTS``) and nowhere else.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adapt.cells import SOURCE_FREE_METHODS
from adapt.defaults import DATA_DEFAULTS, MODEL_DEFAULTS, TRAIN_DEFAULTS
from adapt.errors import ConfigError, TransferlabError

TOP_LEVEL_KEYS = ("name", "data", "domains", "pairs", "methods", "budgets", "seeds", "model", "train",
                  "budget_policy", "selection")
# Written by Config.to_dict (run.json) and derived again on every load, so ignored when read back.
DERIVED_KEYS = ("plugins",)

# What happens when a budget asks for more labels per class than a target's training split holds:
# "error" (default) refuses before training; "cap" uses what there is and records the real count
# (``target_labels`` in each record).
BUDGET_POLICIES = ("error", "cap")

# Domains whose class sets differ: "strict" (default) refuses, listing the differences; "intersection" keeps
# only the classes every domain has (samples of other classes are dropped); "union" keeps every class (a domain
# then has classes it holds no sample of).
CLASS_POLICIES = ("strict", "intersection", "union")

COMMON_DATA_KEYS = {"kind", "test_fraction", "transductive", "classes"}
# The keys each family reads (anything else under ``data:`` is refused as not applying to that kind). A family
# missing here (a new one) accepts every key of every family until it is added.
FAMILY_DATA_KEYS: dict[str, set[str]] = {
    "digits": {"names"},
    "mnist_uci": {"names", "image_size", "max_per_class"},
    "shift": {"n_samples", "n_features", "n_classes", "separation", "seed", "shifts"},
    "arrays": {"path", "files", "x_key", "y_key", "label_column", "preprocess"},
    "imagefolder": {"path", "image_size", "grayscale", "max_per_class"},
    "torchvision": {"path", "names", "image_size", "grayscale", "download"},
    "hf": {"path", "dataset", "text_column", "label_column", "domain_column", "split", "config_name"},
}
DATA_KEYS = COMMON_DATA_KEYS.union(*FAMILY_DATA_KEYS.values())
PREPROCESS_STEPS = ("l1", "zscore", "standardize")

MODEL_KEYS = {"backbone", "hidden", "dropout", "pretrained", "channels", "model_name", "max_length",
              "head_hidden", "weights", "image_size", "options"}
BACKBONES = ("mlp", "cnn", "resnet18", "resnet50", "efficientnet_lite0", "hf")
# The model keys each backbone reads (adapt.models.build_model); another key under ``model:`` is refused as not
# applying to that backbone (``hidden`` on a ResNet is ignored there: its head layers are ``head_hidden``). A
# backbone missing here accepts every key.
_PRETRAINED_KEYS = {"pretrained", "weights", "image_size", "head_hidden", "dropout"}
BACKBONE_MODEL_KEYS: dict[str, set[str]] = {
    "mlp": {"hidden", "dropout"},
    "cnn": {"hidden", "dropout", "channels"},
    "resnet18": _PRETRAINED_KEYS,
    "resnet50": _PRETRAINED_KEYS,
    "efficientnet_lite0": _PRETRAINED_KEYS,
    "hf": {"model_name", "max_length", "pretrained", "head_hidden", "dropout"},
}
# A plugin backbone (adapt.plugins: an import path or a transferlab.backbones entry point) reads ``options``.
PLUGIN_MODEL_KEYS = {"options"}

# Every key here is read by the trainer or a method; a key read nowhere (e.g. ``patience``) is refused rather
# than silently ignored. ``feature_cache`` is read by adapt.features via the trainer.
# ``save_models`` is read by the executor (transferlab.executors.compute_cell): it keeps each cell's final weights.
TRAIN_KEYS = set(TRAIN_DEFAULTS) | {"momentum", "grad_clip", "source_fraction", "lr_schedule", "flip",
                                   "feature_cache", "save_models"}
SELECTION_RULES = ("last", "im", "snd", "entropy")
# Sweeps (a list is a grid): the train keys a list may give, one configuration per value. Every other train key
# is the comparison's protocol (steps, schedule, evaluation, device …), the same for every arm and every
# configuration, so a list there is refused.
SWEEPABLE_TRAIN_KEYS = ("lr", "weight_decay", "batch_size", "optimizer", "momentum", "grad_clip", "source_fraction")
# The top-level ``selection:`` section (label-free choice among a sweep's configurations, analysis.selection):
# what the cells compute for it at train time (adapt.selection) is part of their identity.
SELECTION_DEFAULTS: dict[str, Any] = {"rule": None, "source_holdout": 0.2, "folds": 3}
OPTIMIZERS = ("adam", "adamw", "sgd")

METHOD_NAMES = ("finetune", "dann", "coral", "coral-closed", "scratch", "target-only")


@dataclass(frozen=True)
class MethodSpec:
    """A method as configured: its registered ``name``, the ``label`` records use, and its parameters."""

    name: str
    label: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    # a plugin's code identity (adapt.plugins.code_identity), empty for a built-in
    code: dict = field(default_factory=dict, hash=False, compare=False)
    # one configuration of a sweep: the label the entry had (``dann``; empty when the entry has no grid), the
    # grid point (``{"trade_off": 0.3, "lr": 0.001}``, method params then train keys) and its train values
    sweep: str = ""
    grid: dict = field(default_factory=dict, hash=False, compare=False)
    train: dict = field(default_factory=dict, hash=False, compare=False)
    grid_index: int = 0


@dataclass
class Config:
    """A validated run config (see the module docstring). ``path`` is where it came from, if a file."""

    name: str
    data: dict
    domains: list[str] | None
    pairs: str | list[tuple[str, str]]
    methods: list[MethodSpec]
    budgets: list[int]
    seeds: list[int]
    model: dict
    train: dict                      # a swept key holds its list of values (each MethodSpec.train one of them)
    budget_policy: str = "error"
    path: Path | None = None
    backbone_code: dict = field(default_factory=dict)  # a plugin backbone's code identity, else empty
    # the methods as written, grids unexpanded (what run.json records); None: one entry per MethodSpec
    method_entries: list[dict] | None = None
    # the top-level ``selection:`` ({rule, source_holdout, folds}); None when the config has no sweep and no section
    selection: dict | None = None

    @property
    def sweeps(self) -> bool:
        """Whether some method or ``train:`` value is a grid."""
        return any(m.sweep for m in self.methods)

    def cell_train(self, spec: MethodSpec) -> dict:
        """The train settings a cell of configuration ``spec`` trains with (the grid point's values filled in)."""
        return {**self.train, **spec.train}

    def selection_protocol(self) -> dict:
        """What every cell computes at train time for the selection rule (part of its key; empty without
        ``selection``): the held-out source fraction, and the folds of labelled-target cross-validation (0 unless
        the rule is ``target-cv``)."""
        if not self.selection:
            return {}
        return {"source_holdout": self.selection["source_holdout"],
                "folds": self.selection["folds"] if self.selection["rule"] == "target-cv" else 0}

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path(".")

    def plugin_code(self, spec: MethodSpec) -> dict:
        """The plugin code a cell of method ``spec`` runs (``{"method": ..., "backbone": ...}``; part of its key)."""
        code = {"method": spec.code} if spec.code else {}
        return {**code, "backbone": self.backbone_code} if self.backbone_code else code

    def to_dict(self) -> dict:
        """The resolved config, as plain data (what ``run.json`` records)."""
        out = {
            "name": self.name,
            "data": copy.deepcopy(self.data),
            "domains": self.domains,
            "pairs": self.pairs if isinstance(self.pairs, str) else [list(p) for p in self.pairs],
            "methods": copy.deepcopy(self.method_entries) if self.method_entries is not None else [
                {"name": m.name, "label": m.label, **({"class": m.code["path"]} if m.code.get("path")
                                                      and not m.code.get("entry_point") else {}),
                 **m.params} for m in self.methods],
            "budgets": list(self.budgets),
            "seeds": list(self.seeds),
            "model": copy.deepcopy(self.model),
            "train": copy.deepcopy(self.train),
            "budget_policy": self.budget_policy,
            **({"selection": dict(self.selection)} if self.selection else {}),
        }
        plugins = {**({"backbone": self.backbone_code} if self.backbone_code else {}),
                   **({"methods": {m.sweep or m.label: m.code for m in self.methods if m.code}}
                      if any(m.code for m in self.methods) else {})}
        if plugins:  # what identifies the plugins' code (transferlab.identity compares it)
            out["plugins"] = copy.deepcopy(plugins)
        return out


# ---------------------------------------------------------------------------------------------- loading
def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise TransferlabError(f"{path}: config file not found")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as err:
        raise TransferlabError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise TransferlabError(f"{path}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise TransferlabError(f"{path}: not a text (UTF-8) YAML file") from None
    except OSError as err:  # unreadable (permissions, a folder, a vanished file): bad input, not a bug
        raise TransferlabError(f"{path}: cannot read the config file ({err.strerror or err})") from None
    return parse_config(raw, source=str(path), path=path)


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names one key twice (plain YAML keeps the last silently)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let SafeLoader report it
                continue
            if first is not None:
                raise DuplicateKeyError(f"key {key!r} appears twice (lines {first} and "
                                        f"{key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def parse_config(raw: Any, source: str | None = None, path: Path | None = None) -> Config:
    """Validate a config given as a mapping (the parsed YAML)."""
    where = source or "config"

    def fail(field_name: str, message: str):
        raise ConfigError(field_name, message, where)

    if raw is None:
        raise TransferlabError(f"{where}: the config is empty; expected a mapping with at least 'name'")
    if not isinstance(raw, Mapping):
        raise TransferlabError(f"{where}: expected a YAML mapping at the top level, got {type(raw).__name__}")
    bad_key = _non_string_key(raw, "")
    if bad_key:
        fail(bad_key[0] or "config", f"key {bad_key[1]!r} is not a string; YAML reads a bare null, true, false "
                                     f"or number as one: quote it")
    unknown = sorted(set(map(str, raw)) - set(TOP_LEVEL_KEYS) - set(DERIVED_KEYS))
    if unknown:
        fail(unknown[0], f"unknown key; expected one of {list(TOP_LEVEL_KEYS)}")

    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        fail("name", f"expected a non-empty string, got {name!r}")
    if any(c in name for c in "/\\") or name in (".", ".."):
        fail("name", f"must be usable as a folder name (no '/' or '\\'), got {name!r}")

    data = _parse_data(raw.get("data"), fail)
    domains = raw.get("domains")
    if domains is not None:
        if not isinstance(domains, list) or not domains or not all(isinstance(d, str) for d in domains):
            fail("domains", f"expected a non-empty list of domain names, got {domains!r}")
        if len(set(domains)) != len(domains):
            fail("domains", f"lists a domain twice: {domains}")

    pairs = _parse_pairs(raw.get("pairs", "all"), fail)
    search = path.resolve().parent if path is not None else None  # plugin modules beside the config
    train, train_grid = _parse_train_grid(raw.get("train"), fail)
    methods, method_entries = _parse_methods(raw.get("methods"), fail, search, train_grid)
    budgets = _parse_budgets(raw.get("budgets", [0]), fail)
    seeds = _parse_seeds(raw.get("seeds", 3), fail)
    model, backbone_code = _parse_model(raw.get("model"), fail, search)
    selection = _parse_selection(raw.get("selection"), fail, sweeps=any(m.sweep for m in methods), budgets=budgets)
    budget_policy = raw.get("budget_policy", "error")
    if budget_policy not in BUDGET_POLICIES:
        fail("budget_policy", f"expected one of {list(BUDGET_POLICIES)}, got {budget_policy!r}")

    if data.get("transductive") and any(b > 0 for b in budgets):
        fail("data.transductive", "the transductive protocol is unsupervised: it needs budgets: [0]")
    if pairs != "all":
        if domains is not None:
            missing = sorted({d for p in pairs for d in p} - set(domains))
            if missing:
                fail("pairs", f"names domain {missing[0]!r}, which is not in 'domains' {domains}")
    source_free = [m.name for m in methods if m.name in SOURCE_FREE_METHODS]
    if budgets == [0] and source_free:
        fail("methods", f"{source_free[0]!r} trains on target labels only and needs a budget > 0 in 'budgets'")
    return Config(name=name.strip(), data=data, domains=domains, pairs=pairs, methods=methods,
                  budgets=budgets, seeds=seeds, model=model, train=train, budget_policy=budget_policy,
                  path=path, backbone_code=backbone_code, method_entries=method_entries, selection=selection)


def _non_string_key(value, where: str) -> tuple[str, Any] | None:
    """The first mapping key anywhere in ``value`` that is not a string, as ``(field, key)`` (cell keys hash the
    config as JSON, and a domain called ``null`` must not silently become ``None``)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return where, key
            found = _non_string_key(item, f"{where}.{key}" if where else key)
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _non_string_key(item, where)
            if found:
                return found
    return None


def resolve_domains(config: Config, available: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """The domain subset and ordered (source, target) pairs of a config, checked against loaded domains."""
    names = list(available)
    if config.domains is not None:
        missing = [d for d in config.domains if d not in available]
        if missing:
            raise ConfigError("domains", f"unknown domain {missing[0]!r}; the data has {names}",
                              str(config.path or "config"))
        names = list(config.domains)
    if config.pairs == "all":
        pairs = [(s, t) for s in names for t in names if s != t]
        if not pairs:
            raise ConfigError("pairs", f"'all' needs at least two domains, the data has {names}",
                              str(config.path or "config"))
    else:
        pairs = list(config.pairs)
        for s, t in pairs:
            for d in (s, t):
                if d not in available:
                    raise ConfigError("pairs", f"names unknown domain {d!r}; the data has {names}",
                                      str(config.path or "config"))
    return names, pairs


# ---------------------------------------------------------------------------------------------- fields
def _section(value, name: str, keys: set, defaults: dict, example: str, fail) -> dict:
    """A mapping section (``data``, ``model``, ``train``): known keys only, defaults filled in."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        fail(name, f"expected a mapping like {example}, got {value!r}")
    bad = sorted(set(map(str, value)) - keys)
    if bad:
        fail(f"{name}.{bad[0]}", f"unknown key; expected one of {sorted(keys)}")
    return {**copy.deepcopy(defaults), **copy.deepcopy(dict(value))}


def _parse_data(data, fail) -> dict:
    out = _section(data, "data", DATA_KEYS, DATA_DEFAULTS, "{kind: digits}", fail)
    from adapt.domains import FAMILIES

    if out["kind"] not in FAMILIES:
        fail("data.kind", f"unknown family {out['kind']!r}; expected one of {sorted(FAMILIES)}")
    applies = FAMILY_DATA_KEYS.get(out["kind"])
    if applies is not None:
        foreign = sorted(set(map(str, data or {})) - applies - COMMON_DATA_KEYS)
        if foreign:
            fail(f"data.{foreign[0]}", f"does not apply to data kind {out['kind']!r} (its keys: "
                                       f"{sorted(applies | COMMON_DATA_KEYS)})")
    if out.get("classes", "strict") not in CLASS_POLICIES:
        fail("data.classes", f"expected one of {list(CLASS_POLICIES)}, got {out['classes']!r}")
    tf = out["test_fraction"]
    if isinstance(tf, bool) or not isinstance(tf, (int, float)) or not 0 < tf < 1:
        fail("data.test_fraction", f"expected a number in (0, 1), got {tf!r}")
    if not isinstance(out["transductive"], bool):
        fail("data.transductive", f"expected true or false, got {out['transductive']!r}")
    if out["kind"] in ("arrays", "imagefolder") and not out.get("path"):
        fail("data.path", f"family {out['kind']!r} needs a folder path")
    if "path" in out and not isinstance(out["path"], str):
        fail("data.path", f"expected a path string, got {out['path']!r}")
    pre = out.get("preprocess", [])
    if pre is None:
        pre = []
    if isinstance(pre, str):
        pre = [pre]
    if not isinstance(pre, list) or not all(isinstance(s, str) for s in pre):
        fail("data.preprocess", f"expected a list of steps from {list(PREPROCESS_STEPS)}, got {pre!r}")
    for step in pre:
        if step not in PREPROCESS_STEPS:
            fail("data.preprocess", f"unknown step {step!r}; expected some of {list(PREPROCESS_STEPS)}")
    if "preprocess" in out:
        out["preprocess"] = pre
    files = out.get("files")
    if files is not None:
        if not isinstance(files, Mapping) or not files:
            fail("data.files", "expected a mapping {domain: file} or {domain: {train: F, test: F}}")
        for dom, spec in files.items():
            if isinstance(spec, str):
                continue
            if isinstance(spec, Mapping) and set(spec) == {"train", "test"} and all(
                isinstance(v, str) for v in spec.values()
            ):
                continue
            fail(f"data.files.{dom}", f"expected a file name or {{train: F, test: F}}, got {spec!r}")
    return out


def _parse_pairs(pairs, fail):
    if pairs == "all":
        return "all"
    if not isinstance(pairs, list):
        fail("pairs", f"expected 'all' or a list of [source, target] pairs, got {pairs!r}")
    if not pairs:
        fail("pairs", "is empty; expected 'all' or at least one [source, target] pair")
    out = []
    for i, p in enumerate(pairs):
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(d, str) for d in p)):
            fail(f"pairs[{i}]", f"expected [source, target] (two domain names), got {p!r}")
        out.append((p[0], p[1]))
    if len(set(out)) != len(out):
        fail("pairs", "lists a pair twice")
    return out


def _parse_methods(methods, fail, search: Path | None = None,
                   train_grid: Mapping[str, list] | None = None) -> tuple[list[MethodSpec], list[dict] | None]:
    """The configurations the ``methods:`` entries ask for, and the entries as written (``None`` when no entry
    and no ``train:`` value is a grid: then ``to_dict`` writes one entry per configuration, as before sweeps).

    A list in a method's parameters is a grid over that parameter, crossed with the ``train:`` grid
    (``train_grid``: key → checked values): one :class:`MethodSpec` per combination, labelled
    ``<label>[<key>=<value>,…]`` (method parameters in the order the method declares them, then train keys).
    """
    if methods is None:
        methods = ["finetune", "dann", "coral", "scratch"]
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, list) or not methods:
        fail("methods", f"expected a non-empty list of methods from {list(METHOD_NAMES)}, got {methods!r}")
    train_grid = dict(train_grid or {})
    out: list[MethodSpec] = []
    entries: list[dict] = []
    for i, m in enumerate(methods):
        if isinstance(m, str):
            name, params = m, {}
        elif isinstance(m, Mapping) and isinstance(m.get("name"), str):
            params = {k: v for k, v in m.items() if k not in ("name", "label", "class")}
            name = m["name"]
        else:
            fail(f"methods[{i}]", f"expected a method name or {{name: ..., <params>}}, got {m!r}")
        class_path = m.get("class") if isinstance(m, Mapping) else None
        label = m.get("label", name) if isinstance(m, Mapping) else name
        if not isinstance(label, str) or not label:
            fail(f"methods[{i}].label", f"expected a non-empty string, got {label!r}")
        if name in METHOD_NAMES and class_path is not None:
            fail(f"methods[{i}].class", f"{name!r} is a built-in method; give the plugin another name")
        if class_path is not None and not isinstance(class_path, str):
            fail(f"methods[{i}].class", f"expected 'module.path:ClassName', got {class_path!r}")
        code: dict = {}
        if name not in METHOD_NAMES:  # a plugin (adapt.plugins): its class path, or an installed entry point
            from adapt.plugins import METHOD_GROUP, PluginError, entry_point_names, resolve_method

            try:
                cls, code = resolve_method(name, class_path, search)
            except PluginError as err:
                hint = "" if class_path else (f"; expected one of {list(METHOD_NAMES)}, an installed plugin "
                                              f"({METHOD_GROUP}: {entry_point_names(METHOD_GROUP) or 'none'}) or "
                                              f"{{name: {name}, class: 'module:Class'}}")
                fail(f"methods[{i}]" + (".class" if class_path else ""), f"{err}{hint}")
            if not class_path:
                code = {**code, "entry_point": name}
        else:
            from adapt.methods import METHODS

            cls = METHODS[name]
        grid = _method_grid(cls, name, params, f"methods[{i}]", fail)
        scalars = {k: v for k, v in params.items() if k not in grid}
        try:
            base = cls.check_params({**scalars, **{k: values[0] for k, values in grid.items()}})
        except (ValueError, TypeError, KeyError) as err:
            fail(f"methods[{i}]", f"{name}: {err}")
        axes = [*((k, grid[k], "params") for k in cls.PARAMS if k in grid),
                *((k, values, "train") for k, values in train_grid.items())]
        written_class = code.get("path") if code.get("path") and not code.get("entry_point") else None
        entry = {"name": name, "label": label, **({"class": written_class} if written_class else {}),
                 **{k: (grid[k] if k in grid else v) for k, v in base.items()}}
        entries.append(entry)
        for index, combo in enumerate(itertools.product(*(values for _, values, _ in axes))):
            point = {k: v for (k, _, _), v in zip(axes, combo)}
            checked = {**base, **{k: v for (k, _, where), v in zip(axes, combo) if where == "params"}}
            train = {k: v for (k, _, where), v in zip(axes, combo) if where == "train"}
            spec_label = f"{label}[{','.join(f'{k}={_grid_value(v)}' for k, v in point.items())}]" if axes else label
            out.append(MethodSpec(name=name, label=spec_label, params=checked, code=code,
                                  sweep=label if axes else "", grid=point, train=train, grid_index=index))
    labels = [m.label for m in out]
    dup = sorted({label for label in labels if labels.count(label) > 1})
    if dup:
        fail("methods", f"method label {dup[0]!r} is used twice; give variants distinct 'label's")
    return out, (entries if any(m.sweep for m in out) else None)


def _method_grid(cls, name: str, params: Mapping, where: str, fail) -> dict[str, list]:
    """The parameters given as lists (grids), each value checked by the method's own declared checker."""
    grid: dict[str, list] = {}
    for key, values in params.items():
        if not isinstance(values, list):
            continue
        if key not in cls.PARAMS:
            fail(f"{where}.{key}", f"{name}: unknown param {key!r}; {name} takes {sorted(cls.PARAMS) or 'none'}")
        if not values:
            fail(f"{where}.{key}", "an empty grid; give at least one value (a list of values is a sweep)")
        checked = []
        for j, value in enumerate(values):
            try:
                checked.append(cls.PARAMS[key][1](key, value))
            except (ValueError, TypeError) as err:
                fail(f"{where}.{key}[{j}]", f"{name}: {err}")
        _no_repeats(checked, f"{where}.{key}", fail)
        grid[key] = checked
    return grid


def _no_repeats(values: list, field_name: str, fail) -> None:
    seen = [_grid_value(v) for v in values]
    twice = sorted({v for v in seen if seen.count(v) > 1})
    if twice:
        fail(field_name, f"the grid lists value {twice[0]} twice; give each value once")


def _grid_value(value) -> str:
    """A grid value as it appears in a configuration's label: ``0.3``, ``1`` (for 1.0), ``0.0001``, ``adam``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-4 or value == 0 else f"{value:.3g}"
    return str(value)


def _parse_budgets(budgets, fail) -> list[int]:
    if isinstance(budgets, int) and not isinstance(budgets, bool):
        budgets = [budgets]
    if not isinstance(budgets, list) or not budgets:
        fail("budgets", f"expected a non-empty list of labels-per-class counts, got {budgets!r}")
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, int):
            fail("budgets", f"expected integers (target labels per class), got {b!r}")
        if b < 0:
            fail("budgets", f"must be >= 0 (0 = unsupervised), got {b}")
    if len(set(budgets)) != len(budgets):
        fail("budgets", f"lists a budget twice: {budgets}")
    return sorted(budgets)


def _parse_seeds(seeds, fail) -> list[int]:
    if isinstance(seeds, bool):
        fail("seeds", f"expected a positive integer (number of seeds) or a list of seeds, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            fail("seeds", f"expected a positive number of seeds, got {seeds}")
        return list(range(seeds))
    integers = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    if integers and seeds:
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            fail("seeds", f"expected distinct non-negative integers, got {seeds}")
        return list(seeds)
    fail("seeds", f"expected a positive integer (number of seeds) or a list of seeds, got {seeds!r}")


def _parse_model(model, fail, search: Path | None = None) -> tuple[dict, dict]:
    out = _section(model, "model", MODEL_KEYS, MODEL_DEFAULTS, "{backbone: mlp, hidden: [128]}", fail)
    code: dict = {}
    if not isinstance(out["backbone"], str):
        fail("model.backbone", f"expected a backbone name, got {out['backbone']!r}")
    if out["backbone"] not in BACKBONES:  # a plugin (adapt.plugins): an import path or an entry point
        from adapt.plugins import BACKBONE_GROUP, PluginError, entry_point_names, resolve_backbone

        try:
            _, code = resolve_backbone(out["backbone"], search)
        except PluginError as err:
            fail("model.backbone", f"{err}; expected one of {list(BACKBONES)}, an installed plugin "
                                   f"({BACKBONE_GROUP}: {entry_point_names(BACKBONE_GROUP) or 'none'}) or "
                                   f"'module.path:make_net'")
        options = out.get("options", {})
        if not isinstance(options, Mapping):
            fail("model.options", f"expected a mapping of keyword arguments for make_net, got {options!r}")
    elif "options" in out:
        fail("model.options", f"only a plugin backbone reads options; {out['backbone']!r} does not")
    applies = BACKBONE_MODEL_KEYS.get(out["backbone"], PLUGIN_MODEL_KEYS if code else None)
    if applies is not None:
        # a default-valued key is what to_dict() writes back for every backbone (run.json round trips)
        foreign = sorted(k for k in set(map(str, model or {})) - applies - {"backbone"}
                         if not (k in MODEL_DEFAULTS and model[k] == MODEL_DEFAULTS[k]))
        if foreign:
            fail(f"model.{foreign[0]}", f"does not apply to backbone {out['backbone']!r} (its keys: "
                                        f"{sorted(applies)})")
    hidden = out["hidden"]
    if not isinstance(hidden, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
    ):
        fail("model.hidden", f"expected a list of positive layer widths (may be empty), got {hidden!r}")
    dropout = out["dropout"]
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        fail("model.dropout", f"expected a number in [0, 1), got {dropout!r}")
    if not isinstance(out["pretrained"], (bool, str)):
        fail("model.pretrained", f"expected true/false or a weights file path, got {out['pretrained']!r}")
    size = out.get("image_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 16):
        fail("model.image_size", f"expected an integer >= 16 (pixels; images are resized to it), got {size!r}")
    return out, code


def _number(value, field_name: str, fail, positive: bool) -> float:
    """A finite number (> 0, or >= 0); YAML reads ``1e-3`` (no dot) as a string, so strings are parsed."""
    v = value
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            pass
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    ok = ok and (v > 0 if positive else v >= 0)
    if not ok:
        fail(field_name, f"expected a {'positive number' if positive else 'number >= 0'}, got {value!r}")
    return float(v)


def _parse_train_grid(train, fail) -> tuple[dict, dict[str, list]]:
    """``train:`` with grids: ``(settings, grid)``. A list under a key of :data:`SWEEPABLE_TRAIN_KEYS` is a grid;
    each value is checked as that key's one value would be. ``settings`` holds the checked lists under the swept
    keys (what run.json records); ``grid`` maps each swept key to its checked values, in the order written."""
    if not isinstance(train, Mapping):
        return _parse_train(train, fail), {}
    lists = {k: v for k, v in train.items() if isinstance(v, list)}
    for key in lists:
        if key not in SWEEPABLE_TRAIN_KEYS and key in TRAIN_KEYS:
            fail(f"train.{key}", f"a list (a grid) is not allowed here: it is the comparison's protocol, the "
                                 f"same for every arm; grids go on {list(SWEEPABLE_TRAIN_KEYS)} or on a method's "
                                 f"parameters")
        if not lists[key]:
            fail(f"train.{key}", "an empty grid; give at least one value (a list of values is a sweep)")
    first = {**train, **{k: v[0] for k, v in lists.items()}}
    settings = _parse_train(first, fail)
    grid: dict[str, list] = {}
    for key, values in lists.items():
        checked = []
        for j, value in enumerate(values):
            def fail_at(field_name: str, message: str, _key=key, _j=j):
                fail(f"train.{_key}[{_j}]" if field_name == f"train.{_key}" else field_name, message)

            checked.append(_parse_train({**first, key: value}, fail_at)[key])
        _no_repeats(checked, f"train.{key}", fail)
        grid[key] = checked
        settings[key] = list(checked)
    return settings, grid


def _parse_selection(selection, fail, *, sweeps: bool, budgets: list[int]) -> dict | None:
    """The top-level ``selection:`` section, defaults filled in; a sweep without one gets the default rule."""
    from analysis.selection import DEFAULT_RULE, RULES

    if selection is None:
        return {**SELECTION_DEFAULTS, "rule": DEFAULT_RULE} if sweeps else None
    if not isinstance(selection, Mapping):
        fail("selection", f"expected a mapping like {{rule: {DEFAULT_RULE}}}, got {selection!r}")
    unknown = sorted(set(map(str, selection)) - set(SELECTION_DEFAULTS))
    if unknown:
        fail(f"selection.{unknown[0]}", f"unknown key; expected some of {list(SELECTION_DEFAULTS)}")
    out = {**SELECTION_DEFAULTS, "rule": DEFAULT_RULE, **dict(selection)}
    if out["rule"] not in RULES:
        fail("selection.rule", f"expected one of {list(RULES)}, got {out['rule']!r}")
    holdout = out["source_holdout"]
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 < holdout <= 0.5:
        fail("selection.source_holdout", f"expected a fraction in (0, 0.5] of each source class held out of "
                                         f"training for validation, got {holdout!r}")
    out["source_holdout"] = float(holdout)
    folds = out["folds"]
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        fail("selection.folds", f"expected an integer >= 2 (folds of the labelled target samples), got {folds!r}")
    if out["rule"] == "target-cv" and min(budgets) < 2:
        fail("selection.rule", f"target-cv cross-validates on the labelled target samples and needs >= 2 per "
                               f"class, but budgets has {min(budgets)}; use another rule (e.g. source-val) or "
                               f"budgets >= 2")
    return out


def _parse_train(train, fail) -> dict:
    example = "{steps: 300, batch_size: 64, lr: 0.001}"
    out = _section(train, "train", TRAIN_KEYS, TRAIN_DEFAULTS, example, fail)
    for key in ("steps", "batch_size", "eval_every"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            fail(f"train.{key}", f"expected a positive integer, got {v!r}")
    out["lr"] = _number(out["lr"], "train.lr", fail, positive=True)
    out["weight_decay"] = _number(out["weight_decay"], "train.weight_decay", fail, positive=False)
    if out["optimizer"] not in OPTIMIZERS:
        fail("train.optimizer", f"expected one of {list(OPTIMIZERS)}, got {out['optimizer']!r}")
    if "momentum" in out:
        out["momentum"] = _number(out["momentum"], "train.momentum", fail, positive=False)
        if out["momentum"] >= 1:
            fail("train.momentum", f"expected a number in [0, 1), got {out['momentum']!r}")
    if out.get("grad_clip") is not None:
        out["grad_clip"] = _number(out["grad_clip"], "train.grad_clip", fail, positive=False)  # 0 = off
    if "source_fraction" in out:
        sf = _number(out["source_fraction"], "train.source_fraction", fail, positive=False)
        if sf > 1:
            fail("train.source_fraction", f"expected a number in [0, 1], got {out['source_fraction']!r}")
        out["source_fraction"] = sf
    if out.get("lr_schedule") is not None:
        from adapt.schedules import LR_SCHEDULES  # the trainer owns the schedule names: one list, read from there

        if out["lr_schedule"] not in LR_SCHEDULES:
            fail("train.lr_schedule", f"expected one of {list(LR_SCHEDULES)}, got {out['lr_schedule']!r}")
    for key in ("augment", "amp", "flip", "save_models"):
        if key in out and not isinstance(out[key], bool):
            fail(f"train.{key}", f"expected true or false, got {out[key]!r}")
    if out["selection"] not in SELECTION_RULES:
        fail("train.selection", f"expected one of {list(SELECTION_RULES)}, got {out['selection']!r}")
    if out["device"] not in ("auto", "cpu", "cuda") and not str(out["device"]).startswith("cuda:"):
        fail("train.device", f"expected auto, cpu, cuda or cuda:N, got {out['device']!r}")
    cache = out.get("feature_cache", True)
    if not (isinstance(cache, bool) or (isinstance(cache, str) and cache.strip())):
        fail("train.feature_cache", f"expected true, false, memory or a folder path, got {cache!r}")
    return out
