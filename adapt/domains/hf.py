"""``hf``: text domains from a Hugging Face ``datasets`` dataset or a local csv / json(l) file.

One table holds every domain: ``text_column`` (default ``text``) is the input, ``label_column`` (default
``label``) the class and ``domain_column`` (default ``domain``) names each row's domain (e.g. the product
category in Amazon reviews). ``path`` is a local ``.csv`` / ``.json`` / ``.jsonl`` / ``.parquet`` file, or
``dataset`` names a hub dataset (``config_name``, ``split`` optional; needs internet the first time, then
the ``datasets`` cache; tests run with ``HF_DATASETS_OFFLINE=1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Domain, encode_labels

LOCAL_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def load_hf_domains(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    import datasets

    datasets.disable_progress_bars()  # a bar on stderr would break the one-line error contract
    text_col = cfg.get("text_column", "text")
    label_col = cfg.get("label_column", "label")
    domain_col = cfg.get("domain_column", "domain")
    split = cfg.get("split", "train")
    if cfg.get("path"):
        path = Path(cfg["path"]).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise DataError(f"{path}: text data file not found (data.path)")
        builder = LOCAL_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(f"{path}: expected a {', '.join(LOCAL_BUILDERS)} file for the hf family")
        try:
            table = datasets.load_dataset(builder, data_files=str(path), split="train")
        except Exception as err:
            raise DataError(f"{path}: could not read ({type(err).__name__}: {err})") from None
        where = str(path)
    elif cfg.get("dataset"):
        try:
            table = datasets.load_dataset(cfg["dataset"], cfg.get("config_name"), split=split)
        except Exception as err:
            raise DataError(f"dataset '{cfg['dataset']}': could not load ({type(err).__name__}: {err})") from None
        where = f"dataset '{cfg['dataset']}'"
    else:
        raise DataError("config field 'data.path': the hf family needs a local file (path) or a hub 'dataset'")
    for field, col in (("text_column", text_col), ("label_column", label_col), ("domain_column", domain_col)):
        if col not in table.column_names:
            raise DataError(f"{where}: no column '{col}' (data.{field}); columns are {table.column_names}")
    frame = table.select_columns([text_col, label_col, domain_col]).to_pandas()
    for field, col in (("text_column", text_col), ("label_column", label_col), ("domain_column", domain_col)):
        empty = frame[col].isna().to_numpy().nonzero()[0]
        if len(empty):
            rows = ", ".join(str(i + 1) for i in empty[:5])
            raise DataError(f"{where}: column '{col}' (data.{field}) is empty in data row(s) {rows}"
                            f"{' …' if len(empty) > 5 else ''}; expected a value in every row")
    raw = {str(d): g[label_col].to_numpy() for d, g in frame.groupby(domain_col, sort=True)}
    if not raw:
        raise DataError(f"{where}: no rows")
    encoded, classes = encode_labels(raw)
    out = {}
    for d, g in frame.groupby(domain_col, sort=True):
        d = str(d)
        out[d] = Domain(
            name=d, X=np.array(g[text_col].astype(str).tolist(), dtype=object), y=encoded[d], kind="text",
            class_names=classes, description=f"{where}, {domain_col} == {d}", family="hf",
        )
    return out
