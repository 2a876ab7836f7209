"""Domain families: each turns a ``data:`` config into named :class:`Domain` objects (data in, nothing else).

``load_domains(data_cfg, base_dir)`` is the single entry point; families register in ``FAMILIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import DataError
from .base import Domain, Split, encode_labels, stable_seed

__all__ = ["Domain", "Split", "FAMILIES", "load_domains", "encode_labels", "stable_seed"]


def _digits(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    from .digits import load_digits_domains

    return load_digits_domains(cfg.get("names"))


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
    return domains
