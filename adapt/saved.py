"""Saved models: a cell's final weights beside its record, and the network rebuilt from them.

With ``train.save_models: true`` the executor keeps each cell's trained network (the one its ``accuracy`` was
measured on, after model selection) as ``cells/<key>.pt`` in the run folder: a plain ``state_dict`` of CPU
tensors, loadable with ``torch.load(path, weights_only=True)``. The record says ``weights: "<key>.pt"`` and
``saved_model: {kind, input_shape, input_dtype, n_classes}`` — what :func:`load_model` needs to rebuild the
architecture from the record's ``model`` section (``adapt.models.build_model``) before loading the weights.
A method whose network does not read the domain's inputs (``exports_model = False``: coral-closed) saves
none and says ``weights: null``.

This module reads run folders itself (``cells/<key>.json`` and its ``.pt``) so that :mod:`adapt` needs
nothing above it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import TransferlabError

CELLS_DIR = "cells"
WEIGHTS_SUFFIX = ".pt"
# The result field that carries the serialised weights from a worker to the driver (never in a record).
WEIGHTS_FIELD = "_weights_bytes"


def weights_name(key: str) -> str:
    return f"{key}{WEIGHTS_SUFFIX}"


def state_bytes(model: torch.nn.Module) -> bytes:
    """The network's ``state_dict`` on the CPU, serialised (bytes cross process and Ray boundaries as is)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def saved_model_fields(model: torch.nn.Module | None, target, exports: bool) -> dict:
    """Result fields for a cell trained with ``save_models``: the weights and how to rebuild the network."""
    if model is None or not exports:
        return {"weights": None}
    X = target.X
    return {WEIGHTS_FIELD: state_bytes(model),
            "saved_model": {"kind": target.kind, "input_shape": [int(s) for s in target.input_shape],
                            "input_dtype": str(getattr(X, "dtype", "object")), "n_classes": int(model.n_classes)}}


def find_record(run_dir: str | Path, key: str) -> tuple[Path, dict]:
    """The record ``cells/<key>.json`` of a run folder; ``key`` may be a unique prefix of a record key."""
    cells = Path(run_dir) / CELLS_DIR
    if not cells.is_dir():
        raise TransferlabError(f"{run_dir}: not a run folder (no {CELLS_DIR}/); 'transferlab run CONFIG' makes one")
    path = cells / f"{key}.json"
    if not path.is_file():
        matches = sorted(cells.glob(f"{key}*.json")) if key else []
        if len(matches) != 1:
            what = "no record" if not matches else f"{len(matches)} records"
            raise TransferlabError(f"--cell {key!r}: {what} in {cells} with that key (the key is a record's "
                                   f"file name, or a unique prefix of it; 'transferlab status' lists cells)")
        path = matches[0]
    try:
        return path, json.loads(path.read_text())
    except ValueError:
        raise TransferlabError(f"{path}: not a valid record (JSON)") from None


def load_model(run_dir: str | Path, key: str) -> torch.nn.Module:
    """The trained network of cell ``key`` (a record key or a unique prefix), in eval mode.

    It maps a batch as the training loop feeds it (images as float in [0, 1]: uint8 domain images divided by
    255) to logits; :func:`transferlab.export` wraps that for raw loader batches. Needs a run made with
    ``train.save_models: true``.
    """
    from .models import build_model

    path, record = find_record(run_dir, key)
    weights = record.get("weights")
    if not weights:
        why = ("its method keeps no network that reads the domain's inputs" if "weights" in record
               else "the run did not keep weights: rerun with train.save_models: true")
        raise TransferlabError(f"{path}: no saved model ({why})")
    spec = record.get("saved_model")
    if not isinstance(spec, Mapping):
        raise TransferlabError(f"{path}: the record has weights but no 'saved_model' description")
    file = path.parent / weights
    if not file.is_file():
        raise TransferlabError(f"{file}: the record's weights file is missing")
    cfg = dict(record.get("model") or {})
    # the architecture only: the weights come from the file (no pretrained download or lookup)
    cfg.update(pretrained=False, weights=None)
    model = build_model(cfg, spec["kind"], tuple(spec["input_shape"]), int(spec["n_classes"]))
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    model.info = dict(record.get("model_info") or model.info)
    return model.eval()
