"""Pre-flight: everything about a run that can be checked before the first cell trains, checked at once.

:func:`preflight` takes a config and its loaded domains and raises a :class:`~adapt.errors.TransferlabError`
whose one line names the field or domain and what was expected; a run that passes starts no cell that was
bound to fail for a reason visible up front. Checks, in order:

- the backbone reads the data kind (``cnn``/``resnet*`` need images, ``hf`` needs text, text needs ``hf``);
- a ``model.weights`` (or ``pretrained: <path>``) file exists;
- every domain has at least one feature (vectors); (at least two classes per domain, and one class set
  across domains, are checked when the domains load: :func:`adapt.domains.apply_class_policy`);
- without a given test set (and outside the transductive protocol) every class has at least two samples, so
  the seeded split can put one in the test set and one in the training pool;
- every budget fits every target's training split, per seed: a class with fewer training samples than the
  budget is an error, unless ``budget_policy: cap`` (then the cell uses what there is and its record says
  how many: ``target_labels``).

Label checks live in the domain layer so that ``distances`` and runs see the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .config import Config
from adapt.errors import ConfigError, DataError

# Which data kinds each backbone reads; a backbone missing here (a new one) is not checked.
BACKBONE_KINDS: dict[str, tuple[str, ...]] = {
    "mlp": ("vector", "image"),
    "cnn": ("image",),
    "resnet18": ("image",),
    "resnet50": ("image",),
    "efficientnet_lite0": ("image",),
    "hf": ("text",),
}
SUGGESTED_BACKBONE = {"vector": "mlp", "image": "cnn (or mlp, resnet18, resnet50, efficientnet_lite0)", "text": "hf"}


def preflight(config: Config, domains: Mapping, names: Sequence[str], pairs: Sequence[tuple[str, str]]) -> dict:
    """Check the run before any training; returns ``{(target, seed, budget): labelled target samples}``."""
    where = str(config.path or "config")
    used = [domains[n] for n in names]
    _check_backbone(config, used, where)
    _check_weights(config, where)
    for dom in used:
        _check_domain(dom, config)
    targets = list(dict.fromkeys(t for _, t in pairs))
    return _check_budgets(config, {t: domains[t] for t in targets}, where)


def _check_backbone(config: Config, domains: Sequence, where: str) -> None:
    backbone = config.model.get("backbone", "mlp")
    readable = BACKBONE_KINDS.get(backbone)
    if readable is None:
        return
    for dom in domains:
        if dom.kind not in readable:
            raise ConfigError("model.backbone", f"{backbone!r} cannot read domain '{dom.name}' ({dom.kind} data, "
                                                f"input {tuple(dom.input_shape)}); for {dom.kind} data use "
                                                f"{SUGGESTED_BACKBONE[dom.kind]}", where)
        if backbone == "cnn" and len(dom.input_shape) != 3:
            raise ConfigError("model.backbone", f"'cnn' needs images (C, H, W); domain '{dom.name}' has input "
                                                f"{tuple(dom.input_shape)}", where)


def _check_weights(config: Config, where: str) -> None:
    model = config.model
    for field in ("weights", "pretrained"):
        path = model.get(field)
        if isinstance(path, str) and path and not Path(path).expanduser().is_file():
            raise ConfigError(f"model.{field}", f"no weights file {path!r} (relative paths are read from the "
                                                f"current folder, {Path.cwd()})", where)


def _check_domain(dom, config: Config) -> None:
    if dom.kind == "vector" and (len(dom.input_shape) != 1 or dom.input_shape[0] == 0):
        raise DataError(f"domain '{dom.name}': has {tuple(dom.input_shape)} features per sample; expected at "
                        f"least one feature column")
    present = dom.classes_present()  # at least two: adapt.domains.apply_class_policy refuses fewer
    if dom.X_test is None and not config.data.get("transductive"):
        counts = np.bincount(dom.y, minlength=dom.n_classes)
        thin = [(dom.class_names[c], int(counts[c])) for c in present if counts[c] < 2]
        if thin:
            listed = ", ".join(f"{name!r}: {n}" for name, n in thin[:5])
            raise DataError(f"domain '{dom.name}': class(es) with fewer than 2 samples ({listed}); the "
                            f"train/test split (data.test_fraction) needs at least 2 per class")


def _check_budgets(config: Config, targets: Mapping, where: str) -> dict:
    labels: dict[tuple[str, int, int], int] = {}
    budgets = [b for b in config.budgets if b > 0]
    if not budgets:
        return labels
    tf, transductive = config.data["test_fraction"], bool(config.data.get("transductive"))
    for name, dom in targets.items():
        present = dom.classes_present()
        for seed in config.seeds:
            split = dom.split(seed, tf, transductive)
            pool = np.bincount(dom.y[split.train], minlength=dom.n_classes)
            for budget in budgets:
                short = [(dom.class_names[c], int(pool[c])) for c in present if pool[c] < budget]
                if short and config.budget_policy != "cap":
                    listed = ", ".join(f"{c!r} has {n}" for c, n in short[:4])
                    raise ConfigError("budgets", f"budget {budget} asks for {budget} target labels per class, but "
                                                 f"the training split of domain '{name}' (seed {seed}) is smaller: "
                                                 f"{listed}; lower the budget, or set budget_policy: cap to "
                                                 f"use what there is (records keep the real count)", where)
                labels[(name, seed, budget)] = int(sum(min(int(pool[c]), budget) for c in present))
    return labels
