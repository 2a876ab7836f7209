"""Domain families: each turns a ``data:`` config into named :class:`Domain` objects (data in, nothing else).

``load_domains(data_cfg, base_dir)`` is the single entry point; families register in ``FAMILIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import DataError
from .base import Domain, Split, encode_labels, restrict_classes, stable_seed

__all__ = ["Domain", "Split", "FAMILIES", "load_domains", "encode_labels", "stable_seed"]


def _digits(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    from .digits import load_digits_domains

    return load_digits_domains(cfg.get("names"))


def _mnist_uci(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    from .mnist_uci import load_mnist_uci_domains

    return load_mnist_uci_domains(cfg)


def _shift(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    from .shift import load_shift_domains

    return load_shift_domains(cfg)


def _arrays(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    from .arrays import load_array_domains

    return load_array_domains(cfg, base_dir)


def _imagefolder(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    from .imagefolder import load_imagefolder_domains

    return load_imagefolder_domains(cfg, base_dir)


def _torchvision(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    from .digit_files import load_digit_file_domains

    return load_digit_file_domains(cfg, base_dir)


def _hf(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    from .hf import load_hf_domains

    return load_hf_domains(cfg, base_dir)


FAMILIES: dict[str, Callable[[Mapping, Path], dict[str, Domain]]] = {
    "digits": _digits,
    "mnist_uci": _mnist_uci,
    "shift": _shift,
    "arrays": _arrays,
    "imagefolder": _imagefolder,
    "torchvision": _torchvision,
    "hf": _hf,
}


def load_domains(data_cfg: Mapping | None = None, base_dir: str | Path = ".") -> dict[str, Domain]:
    """Build every domain a ``data:`` config describes, keyed by name.

    ``data_cfg["kind"]`` picks the family (default ``digits``); relative paths resolve against ``base_dir``
    (the config file's folder). Raises :class:`~adapt.errors.DataError` with a one-line message on bad input.
    """
    data_cfg = dict(data_cfg or {})
    kind = data_cfg.get("kind", "digits")
    if kind not in FAMILIES:
        raise DataError(f"config field 'data.kind': unknown family '{kind}'; expected one of {sorted(FAMILIES)}")
    domains = FAMILIES[kind](data_cfg, Path(base_dir))
    if not domains:
        raise DataError(f"data family '{kind}' produced no domains")
    return apply_class_policy(domains, data_cfg.get("classes", "strict"))


def apply_class_policy(domains: dict[str, Domain], policy: str = "strict") -> dict[str, Domain]:
    """Domains whose class sets differ: ``strict`` refuses (naming what each domain lacks), ``intersection``
    keeps the classes every domain has (re-indexed), ``union`` keeps them as they are (``data.classes``).
    A domain with fewer than two classes is refused under every policy."""
    present = {name: d.classes_present() for name, d in domains.items()}
    for name, classes in present.items():
        if len(classes) < 2:  # before comparing class sets: this is the clearer message for such a domain
            dom = domains[name]
            what = f"one class ({dom.class_names[classes[0]]!r})" if classes else "no labelled samples"
            raise DataError(f"domain '{name}': has {what} in {len(dom)} sample(s); a classifier needs at least "
                            f"two classes per domain")
    every = sorted(set().union(*map(set, present.values())))
    common = sorted(set(every).intersection(*map(set, present.values())))
    if len(common) == len(every) or policy == "union":
        return domains
    some = next(iter(domains.values()))

    def label(i: int) -> str:
        return some.class_names[i] if i < len(some.class_names) else str(i)

    if policy == "intersection":
        if len(common) < 2:
            raise DataError(f"config field 'data.classes': the domains share {len(common)} class(es) "
                            f"({[label(i) for i in common]}); intersection needs at least 2")
        names = [label(i) for i in common]
        return {n: restrict_classes(d, common, names) for n, d in domains.items()}
    lacks = [f"'{n}' lacks {[label(i) for i in sorted(set(every) - set(p))][:6]}"
             for n, p in present.items() if len(p) < len(every)]
    raise DataError(f"domains do not share one class set: {'; '.join(lacks[:4])}"
                    f"{' …' if len(lacks) > 4 else ''} — set data.classes: intersection (keep shared classes) "
                    f"or union (keep all) to accept")
